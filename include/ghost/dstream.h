/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The dstream API: dynamic streams for cluster-aware programs, the KerNet
 * socket interface of the Dynamic Streams report (Figure 2, section 3.2).
 *
 *	P1 (node 1)                          P2 (node 2)
 *	ds_create(DS_DIRECT, 2, &id);
 *	ds_attach(id, &ep1);                 ds_attach(id, &ep2);
 *	ds_wait(ep1, -1);                    ds_wait(ep2, -1);
 *	n = ds_recv(ep1, buf, sizeof(buf), -1);  ds_send(ep2, "ch", 2);
 *	ds_send(ep1, "ch", 2);               ds_suspend(ep2, handle, sizeof(handle));
 *	                                     exit
 *	                                     P3 (node 3)
 *	                                     ds_wakeup(handle, &ep3);
 *	                                     n = ds_recv(ep3, buf, sizeof(buf), -1);
 *
 * A stream has a type and a fixed number of endpoints (KerNet sockets). A
 * process attaches to a free endpoint and gets a struct ds_ep; messages
 * then go straight between the processes of linked endpoints: a
 * socketpair when they share a node, else a direct TCP connection between
 * their two nodes, never through a daemon or a third node. ds_suspend()
 * detaches an endpoint from its process and gives a handle; ds_wakeup()
 * with that handle, on any node, makes it an attached endpoint again there,
 * with nothing lost or duplicated in either direction (below). The control
 * path goes through the node's ghostd ($GHOST_CONTROL, else
 * /run/ghost/ghostd.sock), which must be the daemon of the node the process
 * runs on.
 *
 * Types:
 *   DS_DIRECT  2 endpoints, each sends to and receives from the other.
 *   DS_FIFO    endpoint 0 reads, endpoints 1..n-1 write (n >= 2). The reader
 *              merges whole messages; those of one writer arrive in the order
 *              sent, those of several writers oldest first (by send time)
 *              among the messages that have arrived.
 *   DS_LIFO    as DS_FIFO, but the reader gets the most recent message that
 *              has arrived first (by send time; one writer's come newest
 *              first).
 * ds_attach() takes the lowest free endpoint, so the first process to attach
 * to a FIFO or LIFO stream is its reader.
 *
 * Messages are whole: one ds_send() is one ds_recv(), 1 to DS_MSG_MAX bytes.
 *
 * In flight across a suspend and wakeup of endpoint B, whose peer is A:
 *   B to A: every message ds_send() on B returned for before ds_suspend()
 *           reaches A, before any message sent after the wakeup.
 *   A to B: messages A sent before the wakeup (those B's process had read
 *           but not yet taken with ds_recv() included) are held with the
 *           endpoint and read first where it wakes up, in order; those A
 *           sends after it follow. While B is suspended A may go on sending
 *           until the kernel's buffers are full; ds_send() then blocks until
 *           the wakeup.
 * A suspended endpoint stays suspended (held by the ghostd of the node where
 * it was suspended) until it is woken up or the stream is destroyed. The
 * woken endpoint reads what a peer sent before the wakeup once that peer's
 * process has called into the library (any call on its endpoint, or the
 * one it is blocked in): it switches its sending to the new connection
 * there, between two messages.
 *
 * ds_unattach() closes an endpoint for good: what it did not receive is
 * lost, its peers read what it sent and then the end of the stream (a
 * ds_recv() of 0 once every writer is closed) and ds_send() to it fails
 * with -EPIPE.
 *
 * Errors: every call returns >= 0 on success and a negative errno on
 * failure; ds_errmsg() then says what failed in one line. -EHOSTDOWN: the
 * stream's home node (where its directory entry lives) or the node holding
 * a suspended endpoint is down: the stream, or that endpoint, is lost.
 * Calls on one ds_ep are not thread-safe; different ds_eps may be used by
 * different threads.
 */
#ifndef GHOST_DSTREAM_H
#define GHOST_DSTREAM_H

#include <stddef.h>
#include <stdint.h>

enum ds_type {
	DS_DIRECT = 1,
	DS_FIFO = 2,
	DS_LIFO = 3,
};

/* The most endpoints of a stream. */
#define DS_MAX_ENDPOINTS 64
/* The largest message. */
#define DS_MSG_MAX (1u << 20)
/* Room for a handle and its NUL. */
#define DS_HANDLE_MAX 96

struct ds_ep;

/* Create a stream of type with n endpoints (DS_DIRECT: 2; else 2 to
 * DS_MAX_ENDPOINTS); its id in *ret_id. It belongs to the caller's user:
 * only that user (and root) may attach, wake up or destroy it. */
int ds_create(enum ds_type type, unsigned n, uint64_t *ret_id);
/* Destroy a stream: nothing may attach to it or wake up in it any more, its
 * suspended endpoints are dropped, and calls on its attached endpoints fail
 * with -EIDRM. -ENOENT: no such stream. */
int ds_destroy(uint64_t id);
/* Attach to the lowest free endpoint of stream id. -ENOENT (no such
 * stream), -EBUSY (no free endpoint), -EPERM (another user's stream). */
int ds_attach(uint64_t id, struct ds_ep **ret);
/* Wait until the stream is ready for this endpoint: a connection to each
 * endpoint it exchanges messages with (or that endpoint closed). timeout_ms
 * < 0: no limit. 0, or -ETIMEDOUT. */
int ds_wait(struct ds_ep *ep, int timeout_ms);
/* Send one message of len bytes (1 to DS_MSG_MAX): it is in the kernel's
 * hands on return. Blocks while the peer's buffers are full, or until the
 * endpoint has a connection. -EPIPE: the peer unattached; -EOPNOTSUPP: the
 * reader of a FIFO or LIFO stream. */
int ds_send(struct ds_ep *ep, const void *buf, size_t len);
/* Receive one message into buf: its length, or 0 at the end of the stream
 * (every peer it receives from unattached, and all they sent was read; or
 * was lost with its node, and all that came from it was read).
 * -EMSGSIZE: the next message is larger than cap (it stays next);
 * -ETIMEDOUT (timeout_ms >= 0); -EOPNOTSUPP: a writer of a FIFO or LIFO. */
int ds_recv(struct ds_ep *ep, void *buf, size_t cap, int timeout_ms);
/* Suspend the endpoint: it leaves this process (ep is freed, whatever the
 * outcome) and is held by this node's ghostd; its handle, a printable
 * string of less than DS_HANDLE_MAX bytes with a secret part, goes into
 * handle. On failure the endpoint is closed, as by ds_unattach(). */
int ds_suspend(struct ds_ep *ep, char *handle, size_t size);
/* Make the suspended endpoint of handle an attached endpoint of this
 * process, on this node. -EINVAL (not a handle), -EACCES (its secret does
 * not match), -EALREADY (woken up already, or closed), -ENOENT (no such
 * stream), -EHOSTDOWN. */
int ds_wakeup(const char *handle, struct ds_ep **ret);
/* Close the endpoint for good and free ep. NULL ok. */
int ds_unattach(struct ds_ep *ep);

uint64_t ds_ep_stream(const struct ds_ep *ep);
/* Which endpoint of its stream it is: 0 .. n-1. */
unsigned ds_ep_index(const struct ds_ep *ep);

/* What the calling thread's last failed call failed on, in one line. */
const char *ds_errmsg(void);

#endif

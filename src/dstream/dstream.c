/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The dstream library (include/ghost/dstream.h): a process's side of its
 * endpoints. The control path is the endpoint's connection to the node's
 * ghostd (src/node/dsclient.c); the data path is the link sockets that
 * ghostd hands over, which this file reads and writes directly.
 *
 * A link (to one peer endpoint) is, over time, a sequence of sockets. Each
 * socket carries whole messages in each direction and ends, in each
 * direction, with its writer's shutdown: the writer moved on to the next
 * socket (a wakeup of either end built one) or was suspended. So:
 *
 *   receiving: the link's chain is the sockets still to read, in order; a
 *     socket read to its end is dropped and the next one read. A feed (the
 *     bytes a woken endpoint held where it was suspended) is a chain socket
 *     too, ahead of the new link socket.
 *   sending: on the link's newest socket. A new one (CTL_DS_LINK) moves the
 *     sending to it, but only between two messages: the old socket is shut
 *     down after the last whole message, so whoever reads it to its end got
 *     exactly the messages sent before the switch.
 *
 * Every call first takes the events that came (without blocking), and a
 * call that blocks polls the control connection with its sockets, so a
 * switch never waits for a process that is blocked in the library.
 *
 * A message on a socket: u32 length (1..DS_MSG_MAX), u32 zero, u64 send
 * time (CLOCK_REALTIME ns, for FIFO and LIFO merging), all little-endian,
 * then the bytes.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "ghost/dstream.h"
#include "node/node.h"
#include "base/banned.h"

#define MSG_HDR 16
/* Bytes read from a socket at a time. */
#define READ_CHUNK (64u << 10)
/* Messages a LIFO reader keeps in memory to choose the newest from. */
#define LIFO_MAX_BYTES (64u << 20)

static __thread char errmsg[512];

const char *ds_errmsg(void)
{
	return errmsg;
}

static int seterr(int r, const char *fmt, ...) _printf_(2, 3);
static int seterr(int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
	va_end(ap);
	return r;
}

static int seterr_buf(int r, const struct buf *err)
{
	return seterr(r, "%s", err->data ? err->data : strerror(-r));
}

struct dlink {
	bool expected;  /* this endpoint exchanges messages with that one */
	bool seen;      /* a link socket came */
	bool closed;    /* the peer unattached: the link ends after its chain */
	bool lost;      /* closed with its node: the chain ends with what has come */
	int send_fd;    /* the newest link socket, -1 */
	bool send_in_chain; /* send_fd is also still to be read */
	int *chain;     /* sockets to read, in order */
	int feed_fd;    /* the feed in the chain (its first), -1 */
	size_t n_chain;
	struct buf in;  /* read from chain[0], not yet delivered */
	size_t in_off;
	int *pending;   /* link sockets that came while a message was half-sent */
	size_t n_pending;
};

/* LIFO: a message taken off its link, waiting to be chosen. */
struct dmsg {
	uint64_t ts;
	uint32_t link;
	uint32_t len;
	uint8_t *data;
};

struct ds_ep {
	struct node_ds *c;
	bool ctl_lost;
	bool destroyed;
	uint64_t id;
	uint32_t index, type, n;
	struct dlink *links;
	uint32_t rr;        /* FIFO: where the next search starts, for fairness */
	struct dmsg *stack; /* LIFO, oldest first */
	size_t n_stack, stack_bytes;
	bool half_sent;     /* a message is partly written */
};

uint64_t ds_ep_stream(const struct ds_ep *ep)
{
	return ep ? ep->id : 0;
}

unsigned ds_ep_index(const struct ds_ep *ep)
{
	return ep ? ep->index : 0;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Milliseconds left before deadline for poll(): -1 without one. */
static int left_ms(uint64_t deadline)
{
	uint64_t now;

	if (deadline == UINT64_MAX)
		return -1;
	now = mono_ms();
	return now >= deadline ? 0 : (int)MIN(deadline - now, (uint64_t)INT32_MAX);
}

static uint64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? UINT64_MAX : mono_ms() + (uint64_t)timeout_ms;
}

static bool ds_pair(uint32_t type, uint32_t i, uint32_t j)
{
	if (i == j)
		return false;
	if (type == DS_DIRECT)
		return true;
	return (i == 0) != (j == 0);
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0 && !(fl & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int push_fd(int **fds, size_t *n, int fd)
{
	int *p = realloc(*fds, (*n + 1) * sizeof(int));

	if (!p)
		return -ENOMEM;
	*fds = p;
	p[(*n)++] = fd;
	return 0;
}

static void link_release(struct dlink *l)
{
	for (size_t k = 0; k < l->n_chain; k++)
		if (l->chain[k] != l->send_fd)
			safe_close(l->chain[k]);
	for (size_t k = 0; k < l->n_pending; k++)
		safe_close(l->pending[k]);
	safe_close(l->send_fd);
	free(l->chain);
	free(l->pending);
	buf_release(&l->in);
	memset(l, 0, sizeof(*l));
	l->send_fd = -1;
	l->feed_fd = -1;
}

static struct ds_ep *ep_free(struct ds_ep *ep)
{
	if (!ep)
		return NULL;
	for (uint32_t j = 0; ep->links && j < ep->n; j++)
		link_release(&ep->links[j]);
	for (size_t k = 0; k < ep->n_stack; k++)
		free(ep->stack[k].data);
	free(ep->stack);
	free(ep->links);
	node_ds_free(ep->c);
	free(ep);
	return NULL;
}

/* Sending moves to the link's new socket: the old one ends for sending
 * (its reader gets to its end after our last message on it). */
static int link_switch(struct dlink *l, int fd)
{
	int r;

	set_nonblock(fd);
	r = push_fd(&l->chain, &l->n_chain, fd);
	if (r < 0) {
		safe_close(fd);
		return r;
	}
	if (l->send_fd >= 0) {
		(void)shutdown(l->send_fd, SHUT_WR);
		if (!l->send_in_chain)
			safe_close(l->send_fd);
	}
	l->send_fd = fd;
	l->send_in_chain = true;
	l->seen = true;
	return 0;
}

static int apply(struct ds_ep *ep, const struct node_ds_event *ev)
{
	struct dlink *l;

	if (ev->kind == NODE_DS_DESTROYED) {
		ep->destroyed = true;
		return 0;
	}
	if (ev->kind == NODE_DS_SUSPEND_GO)
		return 0;
	if (ev->peer >= ep->n) {
		safe_close(ev->fd);
		return 0;
	}
	l = &ep->links[ev->peer];
	switch (ev->kind) {
	case NODE_DS_LINK:
		if (ep->half_sent)
			return push_fd(&l->pending, &l->n_pending, ev->fd) < 0
				       ? (safe_close(ev->fd), -ENOMEM) : 0;
		return link_switch(l, ev->fd);
	case NODE_DS_FEED:
		set_nonblock(ev->fd);
		if (push_fd(&l->chain, &l->n_chain, ev->fd) < 0) {
			safe_close(ev->fd);
			return -ENOMEM;
		}
		l->feed_fd = ev->fd;
		return 0;
	case NODE_DS_CLOSED:
		l->closed = true;
		l->lost |= ev->lost;
		return 0;
	default:
		safe_close(ev->fd);
		return 0;
	}
}

/* Take every event that came, without blocking. A lost connection to the
 * daemon leaves the links working; only suspending needs it. */
static int take_events(struct ds_ep *ep, bool *ret_go)
{
	struct buf err = BUF_INIT;
	int r = 0;

	while (!ep->ctl_lost) {
		struct node_ds_event ev;

		r = node_ds_next(ep->c, &ev, &err);
		if (r == 0)
			break;
		if (r < 0) {
			ep->ctl_lost = true;
			r = seterr_buf(r, &err);
			break;
		}
		if (ev.kind == NODE_DS_SUSPEND_GO && ret_go)
			*ret_go = true;
		r = apply(ep, &ev);
		if (r < 0) {
			r = seterr(r, "out of memory");
			break;
		}
	}
	buf_release(&err);
	return r;
}

/* The link sockets that came while a message was half-sent, now. */
static int apply_pending(struct ds_ep *ep)
{
	int r = 0;

	for (uint32_t j = 0; j < ep->n; j++) {
		struct dlink *l = &ep->links[j];

		for (size_t k = 0; k < l->n_pending; k++) {
			int q = link_switch(l, l->pending[k]);

			if (q < 0 && r >= 0)
				r = q;
		}
		l->n_pending = 0;
	}
	return r;
}

static int ep_new(struct node_ds *c, const struct node_ds_info *info, struct ds_ep **ret)
{
	struct ds_ep *ep = calloc(1, sizeof(*ep));

	if (!ep) {
		node_ds_free(c);
		return seterr(-ENOMEM, "out of memory");
	}
	ep->c = c;
	ep->id = info->id;
	ep->index = info->index;
	ep->type = info->type;
	ep->n = info->n;
	ep->links = calloc(info->n, sizeof(*ep->links));
	if (!ep->links) {
		ep_free(ep);
		return seterr(-ENOMEM, "out of memory");
	}
	for (uint32_t j = 0; j < ep->n; j++) {
		ep->links[j].send_fd = -1;
		ep->links[j].feed_fd = -1;
		ep->links[j].expected = ds_pair(ep->type, ep->index, j);
	}
	*ret = ep;
	return 0;
}

/* ---- control calls ---------------------------------------------------------- */

int ds_create(enum ds_type type, unsigned n, uint64_t *ret_id)
{
	struct buf err = BUF_INIT;
	int r;

	if (!ret_id || (type != DS_DIRECT && type != DS_FIFO && type != DS_LIFO) || n < 2 ||
	    n > DS_MAX_ENDPOINTS || (type == DS_DIRECT && n != 2))
		return seterr(-EINVAL, "a stream is DIRECT with 2 endpoints, or FIFO or LIFO with "
			      "2 to %d", DS_MAX_ENDPOINTS);
	r = node_ds_create(NULL, type, n, ret_id, &err);
	if (r < 0)
		seterr_buf(r, &err);
	buf_release(&err);
	return r;
}

int ds_destroy(uint64_t id)
{
	struct buf err = BUF_INIT;
	int r;

	if (id == 0)
		return seterr(-EINVAL, "no stream id");
	r = node_ds_destroy(NULL, id, &err);
	if (r < 0)
		seterr_buf(r, &err);
	buf_release(&err);
	return r;
}

int ds_attach(uint64_t id, struct ds_ep **ret)
{
	struct buf err = BUF_INIT;
	struct node_ds_info info;
	struct node_ds *c;
	int r;

	if (!ret || id == 0)
		return seterr(-EINVAL, "no stream id");
	r = node_ds_attach(NULL, id, &c, &info, &err);
	if (r < 0)
		seterr_buf(r, &err);
	buf_release(&err);
	if (r < 0)
		return r;
	return ep_new(c, &info, ret);
}

int ds_wakeup(const char *handle, struct ds_ep **ret)
{
	struct buf err = BUF_INIT;
	struct node_ds_info info;
	struct node_ds *c;
	int r;

	if (!ret || !handle || strlen(handle) >= DS_HANDLE_MAX)
		return seterr(-EINVAL, "not a dstream handle");
	r = node_ds_wakeup(NULL, handle, &c, &info, &err);
	if (r < 0)
		seterr_buf(r, &err);
	buf_release(&err);
	if (r < 0)
		return r;
	return ep_new(c, &info, ret);
}

static bool ready(const struct ds_ep *ep)
{
	for (uint32_t j = 0; j < ep->n; j++) {
		const struct dlink *l = &ep->links[j];

		if (l->expected && !l->seen && !l->closed)
			return false;
	}
	return true;
}

/* Wait for an event (or for one of fds to have events) until deadline:
 * 0, or -ETIMEDOUT. */
static int wait_some(struct ds_ep *ep, struct pollfd *extra, size_t n_extra, uint64_t deadline)
{
	struct pollfd p[1 + DS_MAX_ENDPOINTS];
	size_t n = 0;
	int r, ms;

	if (!ep->ctl_lost)
		p[n++] = (struct pollfd){ .fd = node_ds_fd(ep->c), .events = POLLIN };
	for (size_t k = 0; k < n_extra && n < ARRAY_SIZE(p); k++)
		p[n++] = extra[k];
	ms = left_ms(deadline);
	if (ms == 0)
		return -ETIMEDOUT;
	r = poll(p, n, ms);
	if (r < 0 && errno != EINTR)
		return -errno;
	return 0;
}

int ds_wait(struct ds_ep *ep, int timeout_ms)
{
	uint64_t deadline = deadline_of(timeout_ms);

	if (!ep)
		return seterr(-EINVAL, "no endpoint");
	for (;;) {
		int r;

		(void)take_events(ep, NULL);
		if (ep->destroyed)
			return seterr(-EIDRM, "stream %" PRIx64 " was destroyed", ep->id);
		if (ready(ep))
			return 0;
		if (ep->ctl_lost)
			return seterr(-ECONNRESET, "the node's ghostd is gone: the stream cannot "
				      "become ready");
		r = wait_some(ep, NULL, 0, deadline);
		if (r < 0)
			return seterr(r, "endpoint %u of stream %" PRIx64 " not ready in %d ms",
				      ep->index, ep->id, timeout_ms);
	}
}

/* ---- receiving -------------------------------------------------------------- */

static uint32_t get_le32(const void *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t get_le64(const void *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

/* The length of the whole message at the front of l->in: > 0, 0 if it is
 * not all there, -EPROTO if the header is not a message's. */
static int front(const struct dlink *l)
{
	size_t have = l->in.len - l->in_off;
	uint32_t len;

	if (have < MSG_HDR)
		return 0;
	len = get_le32(l->in.data + l->in_off);
	if (len == 0 || len > DS_MSG_MAX || get_le32(l->in.data + l->in_off + 4) != 0)
		return -EPROTO;
	return have >= MSG_HDR + (size_t)len ? (int)len : 0;
}

static void consume(struct dlink *l, size_t len)
{
	l->in_off += MSG_HDR + len;
	if (l->in_off == l->in.len) {
		buf_reset(&l->in);
		l->in_off = 0;
	}
}

/* The chain's first socket is read to its end: drop it. */
static void chain_pop(struct dlink *l)
{
	int fd = l->chain[0];

	memmove(l->chain, l->chain + 1, --l->n_chain * sizeof(int));
	if (fd == l->feed_fd)
		l->feed_fd = -1;
	if (fd == l->send_fd)
		l->send_in_chain = false;
	else
		safe_close(fd);
	/* Each socket ends between two messages; what is left is a message
	 * cut short by a writer that died in the middle of it. */
	buf_reset(&l->in);
	l->in_off = 0;
}

/* Read l until a whole message is at its front: 1, 0 (nothing more for
 * now), -errno. */
static int link_fill(struct dlink *l)
{
	for (;;) {
		int r = front(l);
		ssize_t n;

		if (r != 0)
			return r < 0 ? r : 1;
		if (l->n_chain == 0)
			return 0;
		if (l->in_off > 0 && l->in_off > l->in.len / 2) {
			memmove(l->in.data, l->in.data + l->in_off, l->in.len - l->in_off);
			l->in.len -= l->in_off;
			l->in_off = 0;
		}
		r = buf_reserve(&l->in, READ_CHUNK);
		if (r < 0)
			return r;
		n = read(l->chain[0], l->in.data + l->in.len, READ_CHUNK);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN && (!l->lost || l->chain[0] == l->feed_fd))
				return 0;
			if (errno != EAGAIN && errno != ECONNRESET)
				return -errno;
			/* A reset ends the socket as its end would. So does
			 * nothing more to read from a peer lost with its node:
			 * its sockets may never end (nothing comes from a dead
			 * machine, and a process whose node's daemon died may
			 * hold its end open for ever), but the home said it was
			 * lost msg's failure timeout after its node went silent:
			 * all it sent before has come. Not the feed: the node
			 * that held this endpoint writes it, and ends it. */
			n = 0;
		}
		if (n == 0) {
			chain_pop(l);
			continue;
		}
		l->in.len += (size_t)n;
		l->in.data[l->in.len] = '\0';
	}
}

static bool link_ended(const struct dlink *l)
{
	return !l->expected || (l->closed && l->n_chain == 0 && l->in.len == l->in_off);
}

static int deliver(const void *data, size_t len, void *buf, size_t cap)
{
	if (len > cap)
		return seterr(-EMSGSIZE, "the next message has %zu bytes, more than %zu", len, cap);
	memcpy(buf, data, len);
	return (int)len;
}

/* LIFO: take every whole message that has come off the links. */
static int lifo_gather(struct ds_ep *ep)
{
	for (uint32_t j = 0; j < ep->n; j++) {
		struct dlink *l = &ep->links[j];

		while (l->expected && ep->stack_bytes < LIFO_MAX_BYTES) {
			struct dmsg m, *st;
			size_t at;
			int r = link_fill(l);

			if (r <= 0) {
				if (r < 0)
					return r;
				break;
			}
			m.len = (uint32_t)front(l);
			m.ts = get_le64(l->in.data + l->in_off + 8);
			m.link = j;
			m.data = malloc(m.len);
			st = realloc(ep->stack, (ep->n_stack + 1) * sizeof(*st));
			if (!m.data || !st) {
				free(m.data);
				if (st)
					ep->stack = st;
				return -ENOMEM;
			}
			ep->stack = st;
			memcpy(m.data, l->in.data + l->in_off + MSG_HDR, m.len);
			consume(l, m.len);
			/* Kept in send-time order; the newest at the end. */
			for (at = ep->n_stack; at > 0 && st[at - 1].ts > m.ts; at--)
				;
			memmove(st + at + 1, st + at, (ep->n_stack - at) * sizeof(*st));
			st[at] = m;
			ep->n_stack++;
			ep->stack_bytes += m.len;
		}
	}
	return 0;
}

/* One message if there is one: its length, 0 at the end of the stream,
 * -EAGAIN if none has come, -errno. */
static int try_recv(struct ds_ep *ep, void *buf, size_t cap)
{
	bool ended = true;
	int r;

	if (ep->type == DS_LIFO) {
		r = lifo_gather(ep);
		if (r < 0)
			return seterr(r, "cannot read the stream: %s", strerror(-r));
		if (ep->n_stack > 0) {
			struct dmsg *m = &ep->stack[ep->n_stack - 1];

			r = deliver(m->data, m->len, buf, cap);
			if (r < 0)
				return r;
			free(m->data);
			ep->stack_bytes -= m->len;
			ep->n_stack--;
			return r;
		}
	} else {
		struct dlink *best = NULL;
		uint64_t best_ts = UINT64_MAX;

		for (uint32_t k = 0; k < ep->n; k++) {
			uint32_t j = (ep->rr + k) % ep->n;
			struct dlink *l = &ep->links[j];
			uint64_t ts;

			if (!l->expected)
				continue;
			r = link_fill(l);
			if (r < 0)
				return seterr(r, "cannot read the stream from endpoint %u: %s", j,
					      r == -EPROTO ? "not a message" : strerror(-r));
			if (r == 0)
				continue;
			ts = get_le64(l->in.data + l->in_off + 8);
			if (!best || ts < best_ts) {
				best = l;
				best_ts = ts;
			}
		}
		if (best) {
			int len = front(best);

			r = deliver(best->in.data + best->in_off + MSG_HDR, (size_t)len, buf, cap);
			if (r < 0)
				return r;
			consume(best, (size_t)len);
			ep->rr = (uint32_t)(best - ep->links + 1) % ep->n;
			return r;
		}
	}
	for (uint32_t j = 0; j < ep->n; j++)
		ended &= link_ended(&ep->links[j]);
	return ended ? 0 : -EAGAIN;
}

int ds_recv(struct ds_ep *ep, void *buf, size_t cap, int timeout_ms)
{
	uint64_t deadline = deadline_of(timeout_ms);

	if (!ep || (!buf && cap))
		return seterr(-EINVAL, "no endpoint or buffer");
	if (ep->type != DS_DIRECT && ep->index != 0)
		return seterr(-EOPNOTSUPP, "endpoint %u of a %s stream writes; endpoint 0 reads",
			      ep->index, ep->type == DS_FIFO ? "FIFO" : "LIFO");
	for (;;) {
		struct pollfd p[DS_MAX_ENDPOINTS];
		size_t n = 0;
		int r;

		(void)take_events(ep, NULL);
		if (ep->destroyed)
			return seterr(-EIDRM, "stream %" PRIx64 " was destroyed", ep->id);
		r = try_recv(ep, buf, cap);
		if (r != -EAGAIN)
			return r;
		for (uint32_t j = 0; j < ep->n; j++)
			if (ep->links[j].expected && ep->links[j].n_chain > 0)
				p[n++] = (struct pollfd){ .fd = ep->links[j].chain[0], .events = POLLIN };
		if (n == 0 && ep->ctl_lost)
			return seterr(-ECONNRESET, "the node's ghostd is gone, and with it the "
				      "endpoint's next connection");
		r = wait_some(ep, p, n, deadline);
		if (r < 0)
			return seterr(r, "no message in %d ms", timeout_ms);
	}
}

/* ---- sending ------------------------------------------------------------------ */

int ds_send(struct ds_ep *ep, const void *buf, size_t len)
{
	uint8_t hdr[MSG_HDR];
	size_t off = 0, total = MSG_HDR + len;
	struct dlink *l;
	uint32_t to, le;
	uint64_t ts;
	int r = 0;

	if (!ep || !buf || len == 0 || len > DS_MSG_MAX)
		return seterr(-EINVAL, "a message has 1 to %u bytes", DS_MSG_MAX);
	if (ep->type != DS_DIRECT && ep->index == 0)
		return seterr(-EOPNOTSUPP, "endpoint 0 of a %s stream reads; the others write",
			      ep->type == DS_FIFO ? "FIFO" : "LIFO");
	to = ep->type == DS_DIRECT ? 1 - ep->index : 0;
	l = &ep->links[to];
	ts = htole64(real_ns());
	le = htole32((uint32_t)len);
	memcpy(hdr, &le, 4);
	memset(hdr + 4, 0, 4);
	memcpy(hdr + 8, &ts, 8);
	while (off < total) {
		struct iovec iov[2];
		struct msghdr mh = { .msg_iov = iov };
		ssize_t n;

		(void)take_events(ep, NULL);
		if (ep->destroyed) {
			r = seterr(-EIDRM, "stream %" PRIx64 " was destroyed", ep->id);
			break;
		}
		if (off == 0 && l->closed) {
			r = seterr(-EPIPE, "endpoint %u unattached", to);
			break;
		}
		if (l->send_fd < 0) {
			if (ep->ctl_lost) {
				r = seterr(-ECONNRESET, "the node's ghostd is gone before the stream "
					   "was ready");
				break;
			}
			(void)wait_some(ep, NULL, 0, UINT64_MAX);
			continue;
		}
		if (off < MSG_HDR) {
			iov[mh.msg_iovlen++] = (struct iovec){ hdr + off, MSG_HDR - off };
			iov[mh.msg_iovlen++] = (struct iovec){ (void *)buf, len };
		} else {
			iov[mh.msg_iovlen++] =
				(struct iovec){ (uint8_t *)buf + (off - MSG_HDR), total - off };
		}
		n = sendmsg(l->send_fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd p = { .fd = l->send_fd, .events = POLLOUT };

				(void)wait_some(ep, &p, 1, UINT64_MAX);
				continue;
			}
			if (errno == EPIPE || errno == ECONNRESET)
				r = seterr(-EPIPE, "endpoint %u is gone", to);
			else
				r = seterr(-errno, "cannot send: %s", strerror(errno));
			break;
		}
		off += (size_t)n;
		/* A new link socket now waits until this message is whole. */
		ep->half_sent = off < total;
	}
	ep->half_sent = false;
	if (apply_pending(ep) < 0 && r >= 0)
		r = seterr(-ENOMEM, "out of memory");
	return r;
}

/* ---- suspend, unattach -------------------------------------------------------- */

/* LIFO: the messages taken off a link go back in front of what was read. */
static int lifo_put_back(struct ds_ep *ep, uint32_t j, struct buf *pre)
{
	for (size_t k = 0; k < ep->n_stack; k++) {
		struct dmsg *m = &ep->stack[k];
		uint8_t hdr[MSG_HDR];
		uint64_t ts = htole64(m->ts);
		uint32_t len = htole32(m->len);
		int r;

		if (m->link != j)
			continue;
		memcpy(hdr, &len, 4);
		memset(hdr + 4, 0, 4);
		memcpy(hdr + 8, &ts, 8);
		r = buf_append(pre, hdr, sizeof(hdr));
		if (r >= 0)
			r = buf_append(pre, m->data, m->len);
		if (r < 0)
			return r;
	}
	return 0;
}

int ds_suspend(struct ds_ep *ep, char *handle, size_t size)
{
	struct buf err = BUF_INIT;
	bool go = false;
	int r;

	if (!ep || !handle || size == 0) {
		ep_free(ep);
		return seterr(-EINVAL, "no endpoint or handle buffer");
	}
	if (ep->ctl_lost) {
		ep_free(ep);
		return seterr(-ECONNRESET, "the node's ghostd is gone: the endpoint cannot be held");
	}
	r = node_ds_suspend_begin(ep->c, &err);
	/* Every event up to the daemon's go ahead: after it, none comes. */
	while (r >= 0 && !go) {
		r = take_events(ep, &go);
		if (r >= 0 && ep->ctl_lost)
			r = -ECONNRESET;
		if (r >= 0 && !go)
			(void)wait_some(ep, NULL, 0, UINT64_MAX);
	}
	if (r < 0) {
		if (!err.len)
			(void)buf_printf(&err, "%s", errmsg);
		goto out;
	}
	if (ep->destroyed) {
		r = seterr(-EIDRM, "stream %" PRIx64 " was destroyed", ep->id);
		ep_free(ep);
		return r;
	}
	for (uint32_t j = 0; j < ep->n && r >= 0; j++) {
		struct dlink *l = &ep->links[j];
		struct buf pre = BUF_INIT;

		if (!l->expected)
			continue;
		/* Nothing more goes out from here: the peer reads to the end. */
		if (l->send_fd >= 0) {
			(void)shutdown(l->send_fd, SHUT_WR);
			if (!l->send_in_chain)
				l->send_fd = safe_close(l->send_fd);
		}
		if (ep->type == DS_LIFO)
			r = lifo_put_back(ep, j, &pre);
		if (r >= 0 && l->in.len > l->in_off)
			r = buf_append(&pre, l->in.data + l->in_off, l->in.len - l->in_off);
		if (r < 0)
			(void)buf_printf(&err, "out of memory");
		else if (pre.len || l->n_chain)
			r = node_ds_hand(ep->c, j, pre.data, pre.len, l->chain, l->n_chain, &err);
		buf_release(&pre);
	}
	if (r >= 0)
		r = node_ds_suspend_end(ep->c, handle, size, &err);
out:
	if (r < 0)
		seterr(r, "cannot suspend endpoint %u of stream %" PRIx64 ": %s", ep->index, ep->id,
		       err.data ? err.data : strerror(-r));
	buf_release(&err);
	ep_free(ep);
	return r;
}

int ds_unattach(struct ds_ep *ep)
{
	if (!ep)
		return 0;
	/* Everything sent is in the kernel's hands; the peers read to its end. */
	for (uint32_t j = 0; j < ep->n; j++)
		if (ep->links[j].send_fd >= 0)
			(void)shutdown(ep->links[j].send_fd, SHUT_WR);
	ep_free(ep);
	return 0;
}

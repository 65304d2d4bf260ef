/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Inside the node module: the attribute encoding shared by the control
 * protocol and the daemon-to-daemon messages, the control protocol's frame
 * and message numbers, and the daemon's objects (shared by daemon.c,
 * control.c, proc.c, run.c, req.c, move.c, keep.c, stream.c, chain.c and
 * dstream.c).
 */
#ifndef NODE_NODE_INT_H
#define NODE_NODE_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/buf.h"
#include "ghost/ghost.h"
#include "loop/loop.h"
#include "msg/msg.h"
#include "node/node.h"

/* Doubly-linked intrusive lists: head is a pointer, items have next/prev. */
#define LIST_PREPEND(head, item)                                                                   \
	do {                                                                                       \
		(item)->prev = NULL;                                                               \
		(item)->next = (head);                                                             \
		if (head)                                                                          \
			(head)->prev = (item);                                                     \
		(head) = (item);                                                                   \
	} while (0)
#define LIST_REMOVE(head, item)                                                                    \
	do {                                                                                       \
		if ((item)->next)                                                                  \
			(item)->next->prev = (item)->prev;                                         \
		if ((item)->prev)                                                                  \
			(item)->prev->next = (item)->next;                                         \
		else                                                                               \
			(head) = (item)->next;                                                     \
		(item)->next = (item)->prev = NULL;                                                \
	} while (0)

/* ---- attributes (proto.c) -------------------------------------------------
 *
 * A payload is a sequence of attributes, each a little-endian header
 * (u16 type, u16 zero, u32 length) followed by length bytes. Integers are
 * little-endian u32 or u64; strings carry no NUL; repeated attributes make
 * lists; an attribute may hold a nested payload. Readers skip attributes
 * they do not know, so either side may add some without a new version.
 */
#define ATTR_HDR_SIZE 8

enum attr_type {
	A_ERRNO = 1, /* u32: a positive errno, 0 for success */
	A_MESSAGE,   /* str: one line for the user */
	A_NODE,      /* u32: a node id */
	A_PID,       /* u32 */
	A_SIGNAL,    /* u32 */
	A_FLAGS,     /* u32: enum run_wire_flags, enum ps_flags, ... */
	A_ARG,       /* str, repeated: argv */
	A_ENV,       /* str, repeated: environ */
	A_CWD,       /* str */
	A_TERMIOS,   /* bytes: a struct termios */
	A_ROWS,      /* u32 */
	A_COLS,      /* u32 */
	A_DATA,      /* bytes */
	A_FD,        /* u32: 1 stdout, 2 stderr */
	A_BYTES,     /* u64 */
	A_EXIT_CODE, /* u32 */
	A_EXIT_SIGNAL, /* u32 */
	A_ADDRESS,   /* str */
	A_STATE,     /* str */
	A_LOAD,      /* u32: load average times 100 */
	A_NPROCS,    /* u32 */
	A_UID,       /* u32 */
	A_GID,       /* u32 */
	A_GROUP,     /* u32, repeated */
	A_RSS,       /* u64: KiB */
	A_COMMAND,   /* str */
	A_START,     /* u64: seconds since the epoch */
	A_SESSION,   /* u64: a run session id, unique on its caller's node */
	A_REQ,       /* u64: a request id, unique on its origin node */
	A_ORIGIN,    /* u32: the node that asked */
	A_OFFSET,    /* u64 */
	A_PROC,      /* nested: one process */
	A_HOPS,      /* u32: times a request was forwarded */
	A_VERSION,   /* u32: protocol version spoken */
	A_XFER,      /* u64: a transfer id, unique on its source node */
	A_PORT,      /* u32: a TCP port */
	A_KEY,       /* bytes: a one-time transfer key */
	A_PATH,      /* str: a file's path */
	A_PAGES,     /* u64 */
	A_TOTAL_NS,  /* u64: a duration, ns */
	A_FROZEN_NS, /* u64 */
	A_EXPORT_NS, /* u64 */
	A_IMPORT_NS, /* u64 */
	A_DONE,      /* u64: progress, bytes done */
	A_TOTAL,     /* u64: progress, bytes in all */
	A_FORKED_FROM, /* u32: the PID a process was duplicated from (ghost fork) */
	A_PPID = 70,   /* u32: the parent's PID, when it is no daemon (stand-in.c) */
	A_WSTATUS,     /* u32: a wait status */
	A_CHILD_PID = 72, /* u32: a child's PID (PROC_CHILD_EXITED) */
	A_CHILD = 73,     /* nested: a child of a moving process: A_PID, A_UID, A_GID, A_COMMAND */
	A_CHILD_EXIT = 74, /* nested: a child that exited: A_PID, A_WSTATUS */
	A_CHILD_GONE = 75, /* u32: a child its parent waited for just before its export */
	/* memory checkpoints (keep.c) */
	A_CKPT_ID = 50,    /* u64: a checkpoint id, holder node << 32 | number */
	A_CKPT = 51,       /* nested: one kept checkpoint */
	A_CREATED = 52,    /* u64: seconds since the epoch */
	A_MEM_USED = 53,   /* u64: bytes of checkpoint memory in use on a node */
	A_MEM_LIMIT = 54,  /* u64: bytes of checkpoint memory a node may use */
	A_HOLDER = 55,     /* u32: the node keeping a checkpoint */
	A_ESTIMATE = 56,   /* u64: bytes a checkpoint is expected to take */
	A_CALLER = 60, /* u32: the node of a run session's caller (the client's daemon) */
	A_STDIO = 61,  /* u32: how fds 0-2 of a process reach its session: RUN_STDIO_KIND() */
	A_PREV = 62,   /* u32: the node a process moved from (names a stint with A_XFER) */
	/* streams (stream.c) */
	A_STREAM = 80,    /* u64: a stream id, its first coordinator's node << 40 | number */
	A_INDEX = 81,     /* u32: which end of a stream (bit 0), and the operation's
			     generation (bits 8 and up) */
	A_END = 82,       /* nested: one end: A_PID, A_FD..., A_FD_FLAGS..., A_STATUS,
			     A_FLAGS (enum stream_end_flags), A_INODE */
	A_FD_FLAGS = 83,  /* u32, repeated: FD_CLOEXEC of each A_FD */
	A_STATUS = 84,    /* u32: an open file description's status flags */
	A_KIND = 85,      /* u32: enum stream_kind */
	A_INODE = 86,     /* u64: the inode of a kernel object */
	A_LOCAL = 87,     /* str: a TCP connection's local address, as /proc/net/tcp has it */
	A_REMOTE = 88,    /* str: its remote address */
	A_DEV = 89,       /* u64: the device of a kernel object (with A_INODE) */
	/* dstream API streams (dstream.c) */
	A_COUNT = 90,     /* u32: a dstream's number of endpoints; of fds a frame carries */
	A_PEER = 91,      /* u32: the endpoint at the other end of a link */
	A_HANDLE = 92,    /* str: a suspended endpoint's handle */
	A_SECRET = 93,    /* bytes: the secret of a suspended endpoint */
	A_LINKED = 94,    /* u64: bit j set: the endpoint has a link with endpoint j */
	A_CLOSED = 95,    /* u64: bit j set: endpoint j is closed (unattached) */
	/* chains: writers of a pipe on other nodes than its readers' (chain.c) */
	A_CHAIN = 96,     /* u64: a chain id (a stream id of the move that made it) */
	A_AFTER = 97,     /* u64: the chain whose first A_OFFSET bytes go into the pipe
			     before this one's */
};

int attr_put(struct buf *b, uint16_t type, const void *data, size_t len);
int attr_put_u32(struct buf *b, uint16_t type, uint32_t v);
int attr_put_u64(struct buf *b, uint16_t type, uint64_t v);
int attr_put_str(struct buf *b, uint16_t type, const char *s);

struct attr_iter {
	const uint8_t *p;
	size_t left;
};

struct attr {
	uint16_t type;
	const void *data;
	size_t len;
};

void attr_iter_init(struct attr_iter *it, const void *data, size_t len);
/* 1 with the next attribute in ret, 0 at the end, -EBADMSG if malformed. */
int attr_next(struct attr_iter *it, struct attr *ret);
/* -EBADMSG unless the attribute has the right size. */
int attr_u32(const struct attr *a, uint32_t *ret);
int attr_u64(const struct attr *a, uint64_t *ret);
/* The first attribute of this type in data: 0 with it in ret, -ENOENT if
 * there is none, -EBADMSG if the payload is malformed before it. */
int attr_find(const void *data, size_t len, uint16_t type, struct attr *ret);
/* A NUL-terminated copy; -EBADMSG if it holds a NUL, -ENOMEM. */
int attr_strdup(const struct attr *a, char **ret);
/* Copy into a fixed buffer, truncating; -EBADMSG if it holds a NUL. */
int attr_strcpy(const struct attr *a, char *dst, size_t size);
/* The A_PORT and A_KEY of a receiver's answer (a worker or keeper that
 * listens for a direct channel); -EBADMSG unless both are there and valid. */
int attr_find_channel(const void *data, size_t len, uint16_t *ret_port,
		      uint8_t ret_key[MSG_CHAN_KEY_SIZE]);

/* ---- control protocol (docs/ghostd.md) ----------------------------------- */

#define CTL_MAGIC 0x54534847u /* "GHST" read as little-endian bytes */
#define CTL_VERSION 1
#define CTL_HDR_SIZE 12
/* Most fds one frame may carry (SCM_RIGHTS with its first byte). */
#define CTL_FRAME_FDS 16
/* Largest payload: a RUN carries argv and the environment. */
#define CTL_MAX_PAYLOAD (4u << 20)
/* Bytes of output or input a run session may have in flight per direction. */
#define RUN_WINDOW (256u << 10)
/* Largest data attribute of one output or input frame. */
#define RUN_CHUNK (64u << 10)
/* Largest chunk of a log file in one reply. */
#define LOGS_CHUNK (256u << 10)

/* Frame header: u32 magic, u16 version, u16 type, u32 payload length, all
 * little-endian; the payload is attributes. */
enum ctl_type {
	/* client to daemon: requests, one per connection */
	CTL_NODES = 1,   /* -> CTL_NODE..., CTL_END */
	CTL_PS,          /* A_FLAGS (PS_ALL) -> CTL_PROC..., CTL_WARNING..., CTL_END */
	CTL_KILL,        /* A_PID, A_SIGNAL -> CTL_OK */
	CTL_LOGS,        /* A_PID -> CTL_LOG_DATA..., CTL_END */
	CTL_RUN,         /* A_NODE, A_FLAGS, A_ARG..., A_ENV..., A_CWD, A_TERMIOS, A_ROWS,
			    A_COLS; fds 0-2 by SCM_RIGHTS -> CTL_STARTED, then CTL_EXIT */
	CTL_MIGRATE,     /* A_PID, A_NODE, A_FLAGS (MOVE_F_FORK) -> CTL_PROGRESS..., CTL_MOVED */
	/* a child stand-in to its daemon (standin.c) */
	CTL_STANDIN = 16,        /* -> stays open; CTL_STANDIN_EXIT when the process ends */
	CTL_STANDIN_SIGNAL = 17, /* A_SIGNAL: the stand-in received it */
	CTL_STANDIN_CHILD = 18,  /* A_PID, A_WSTATUS: the stand-in reaped a child of its own */
	/* memory checkpoints (keep.c) */
	CTL_CKPT_SAVE = 10,    /* A_PID, A_HOLDER (0: where it runs), A_FLAGS (enum keep_wire_flags)
				  -> CTL_PROGRESS..., CTL_CKPT_SAVED */
	CTL_CKPT_RESTORE = 11, /* A_CKPT_ID, A_NODE (0: the holder) -> CTL_PROGRESS...,
				  CTL_CKPT_RESTORED */
	CTL_CKPT_LIST = 12,    /* -> CTL_CKPT..., CTL_CKPT_NODE..., CTL_WARNING..., CTL_END */
	CTL_CKPT_DROP = 13,    /* A_CKPT_ID -> CTL_CKPT_DROPPED */
	/* the dstream API (dstream.c, dsclient.c) */
	CTL_DS_CREATE = 40,  /* A_KIND, A_COUNT -> CTL_DS_CREATED */
	CTL_DS_DESTROY = 41, /* A_STREAM -> CTL_OK */
	CTL_DS_ATTACH = 42,  /* A_STREAM -> CTL_DS_ATTACHED, then endpoint events; the
				connection is the endpoint's from then on */
	CTL_DS_WAKEUP = 43,  /* A_HANDLE -> as CTL_DS_ATTACH */
	/* on an endpoint's connection */
	CTL_DS_SUSPEND = 44, /* -> CTL_DS_SUSPEND_GO: no more events after it */
	CTL_DS_HAND = 45,    /* A_PEER, [A_DATA], A_COUNT: one link's undelivered bytes and
				the A_COUNT sockets it reads next, passed with the frame */
	CTL_DS_HANDED = 46,  /* every link handed -> CTL_DS_SUSPENDED */
	/* client to daemon: during a run */
	CTL_STDIN = 20,  /* A_DATA */
	CTL_STDIN_EOF,
	CTL_SIGNAL,      /* A_SIGNAL */
	CTL_WINSIZE,     /* A_ROWS, A_COLS */
	CTL_ACK,         /* A_BYTES: output consumed */
	CTL_CLOSE_OUT,   /* A_FD: the client can no longer write that output */
	/* daemon to client */
	CTL_ERROR = 100, /* A_ERRNO, A_MESSAGE, A_FLAGS (ERR_EXEC); ends the request */
	CTL_OK,          /* ends the request */
	CTL_END,         /* ends a list */
	CTL_NODE,        /* A_NODE, A_ADDRESS, A_STATE, [A_LOAD, A_NPROCS] */
	CTL_PROC,        /* the process attributes (see proc_put_info()) */
	CTL_WARNING,     /* A_MESSAGE */
	CTL_LOG_DATA,    /* A_DATA */
	CTL_STARTED,     /* A_PID, A_NODE, A_FLAGS (RUN_RELAY) */
	CTL_OUTPUT,      /* A_FD, A_DATA */
	CTL_STDIN_ACK,   /* A_BYTES: input delivered */
	CTL_EXIT,        /* A_EXIT_CODE or A_EXIT_SIGNAL; ends the request */
	CTL_PROGRESS,    /* A_DONE, A_TOTAL: bytes of page data moved so far */
	CTL_MOVED,       /* A_PID, A_NODE (from), A_BYTES, A_PAGES, A_TOTAL_NS, A_FROZEN_NS,
			    A_EXPORT_NS, A_IMPORT_NS; ends the request */
	CTL_STANDIN_EXIT = 130, /* A_EXIT_CODE or A_EXIT_SIGNAL: end the same way */
	CTL_STANDIN_TURN = 131, /* with an fd, the stand-in's end of a job socket: turn
				   into the arriving process (worker_host_turn()) */
	CTL_CKPT_SAVED = 120,    /* A_CKPT_ID, A_PID, A_NODE (where it runs), A_HOLDER, A_BYTES,
				    A_PAGES, A_TOTAL_NS, A_FROZEN_NS, A_EXPORT_NS, A_FLAGS;
				    ends the request */
	CTL_CKPT_RESTORED = 121, /* A_CKPT_ID, A_PID, A_NODE (where it runs now), A_HOLDER,
				    A_BYTES, A_TOTAL_NS, A_IMPORT_NS; ends the request */
	CTL_CKPT = 122,          /* one kept checkpoint: A_CKPT_ID, A_HOLDER, A_NODE, A_PID,
				    A_UID, A_COMMAND, A_BYTES, A_PAGES, A_CREATED, A_STATE */
	CTL_CKPT_NODE = 123,     /* A_NODE, A_MEM_USED, A_MEM_LIMIT: one node's checkpoint memory */
	CTL_CKPT_DROPPED = 124,  /* A_CKPT_ID, A_HOLDER, A_BYTES (freed); ends the request */
	CTL_RELAY = 125, /* A_STDIO, A_NODE: the process left this node; relay stdio from now on */
	/* dstream API (dstream.c) */
	CTL_DS_CREATED = 140,    /* A_STREAM; ends the request */
	CTL_DS_ATTACHED = 141,   /* A_STREAM, A_INDEX, A_KIND, A_COUNT */
	CTL_DS_LINK = 142,       /* A_PEER, an fd: the link's next socket; send on it from now on */
	CTL_DS_FEED = 143,       /* A_PEER, an fd: bytes the link reads next (receive only) */
	CTL_DS_CLOSED = 144,     /* A_PEER, A_FLAGS (enum ds_closed_flags): that endpoint closed */
	CTL_DS_DESTROYED = 145,  /* the stream was destroyed */
	CTL_DS_SUSPEND_GO = 146, /* no event follows: hand the links over */
	CTL_DS_SUSPENDED = 147,  /* A_HANDLE; ends the request */
};

enum ps_flags {
	PS_ALL = 1 << 0, /* exited detached processes too */
};

enum err_flags {
	ERR_EXEC = 1 << 0, /* the command itself could not be executed */
};

/* A_FLAGS of CTL_RUN and of the daemon-to-daemon RUN_START. */
enum run_wire_flags {
	RUN_DETACH = 1 << 0,
	RUN_TTY = 1 << 1,   /* give the process a pseudo-terminal (remote only) */
	RUN_RELAY = 1 << 2, /* CTL_STARTED: stdio goes through the control socket */
};

/* A_FLAGS of CTL_STDIN, RUN_IN and RUN_MOVE_INPUT. */
enum run_in_flags {
	RUN_IN_ECHOED = 1 << 0, /* a terminal showed these bytes already: do not echo them */
};

/* A_STDIO: two bits per fd, fd i at bits 2i and 2i+1. */
enum run_stdio_kind {
	RUN_STDIO_NONE = 0, /* a file, /dev/null, closed: not relayed (moves as a file) */
	RUN_STDIO_PIPE = 1, /* a pipe or socket to the session */
	RUN_STDIO_TTY = 2,  /* a terminal */
};
#define RUN_STDIO_KIND(map, fd) (((map) >> (2 * (fd))) & 3u)

int ctl_frame_begin(struct buf *b, uint16_t type);
/* Fill in the length of the frame begun at offset start; -EMSGSIZE. */
int ctl_frame_end(struct buf *b, size_t start);
/* Parse a header; -EBADMSG (magic, length) or -EPROTONOSUPPORT (version). */
int ctl_frame_parse(const void *hdr, uint16_t *ret_type, uint32_t *ret_len);

/* ---- daemon-to-daemon messages ------------------------------------------- */

/* msg channels used by ghostd. */
enum node_channel {
	NODE_CH_MEMBER = 16, /* membership: load reports, leaving */
	NODE_CH_PROC = 17,   /* process table: ps, kill, logs */
	NODE_CH_RUN = 18,    /* run sessions: start, stdio, signals, exit */
	NODE_CH_MOVE = 19,   /* migrations: between the source and destination daemons */
	NODE_CH_KEEP = 20,   /* memory checkpoints: requests, stores, restores (keep.c) */
	NODE_CH_STREAM = 21, /* dynamic streams: suspend and wakeup (stream.c) */
	NODE_CH_DSTREAM = 22, /* the dstream API's streams: directory, links (dstream.c) */
};

enum member_type {
	MEMBER_LOAD = 1, /* A_LOAD, A_NPROCS */
	MEMBER_LEAVE,    /* the sender is shutting down cleanly */
};

enum proc_type {
	PROC_PS_REQ = 1, /* A_REQ, A_FLAGS -> PROC_PS_REP */
	PROC_PS_REP,     /* A_REQ, A_PROC... */
	PROC_KILL_REQ,   /* A_REQ, A_ORIGIN, A_PID, A_SIGNAL, A_UID, A_HOPS -> PROC_REPLY */
	PROC_LOGS_REQ,   /* A_REQ, A_ORIGIN, A_PID, A_UID, A_OFFSET, A_HOPS -> PROC_LOGS_REP */
	PROC_REPLY,      /* A_REQ, A_ERRNO, A_MESSAGE */
	PROC_LOGS_REP,   /* A_REQ, A_ERRNO, A_MESSAGE, A_DATA, A_FLAGS (LOGS_EOF) */
	PROC_MOVE_REQ,   /* A_REQ, A_ORIGIN, A_PID, A_UID, A_NODE (to), A_HOPS
			    -> PROC_MOVE_PROGRESS..., PROC_MOVE_REP */
	PROC_MOVE_PROGRESS, /* A_REQ, A_DONE, A_TOTAL */
	PROC_MOVE_REP,   /* A_REQ, A_ERRNO, A_MESSAGE, and on success the CTL_MOVED attributes */
	PROC_WHERE,      /* A_PID, A_NODE: to the birth node, the process runs on NODE now */
	PROC_GONE,       /* A_PID: to the birth node, the sender forgot the process */
	PROC_EXITED = 40, /* A_PID, A_WSTATUS: to the birth node, it exited here */
	PROC_CHILD_EXITED = 41, /* A_PID (parent), A_CHILD_PID, A_WSTATUS, A_HOPS: to where the
				   parent runs, its child exited (reaped by its stand-in here) */
};

/* A_FLAGS of CTL_MIGRATE, PROC_MOVE_REQ and MOVE_PREPARE (with RUN_DETACH). */
enum move_wire_flags {
	MOVE_F_FORK = 1 << 8, /* ghost fork: a copy with a new PID; the original runs on */
	MOVE_F_STOPPED = 1 << 9, /* MOVE_COMMIT: it was stopped (SIGSTOP...): it stays so */
};

/* Between the source (S) and destination (D) daemons of a migration, all
 * with A_XFER (the source's transfer id). */
enum move_type {
	MOVE_PREPARE = 1, /* S->D: A_PID, A_UID, A_GID, A_COMMAND, A_START, A_FLAGS
			     (RUN_DETACH), A_PATH (the log), A_PPID, A_RSS, A_CHILD... */
	MOVE_READY,       /* D->S: A_PORT, A_KEY: the import worker listens */
	MOVE_IMPORTED,    /* D->S: the process is imported and held stopped; A_PID, A_IMPORT_NS */
	MOVE_FAILED,      /* D->S: A_ERRNO, A_MESSAGE */
	MOVE_COMMIT,      /* S->D: the original is gone: let the process run; A_SIGNAL...
			     (signals sent meanwhile), A_FLAGS (MOVE_F_STOPPED),
			     A_CHILD_EXIT... (children whose exit the source learnt),
			     A_CHILD_GONE... (children it waited for before the freeze) */
	MOVE_DONE,        /* D->S: it runs */
	MOVE_ABORT,       /* S->D: give up; kill what was imported */
};

/* A_FLAGS of CTL_CKPT_SAVE and KEEP_SAVE_REQ. */
enum keep_wire_flags {
	KEEP_F_STOP = 1 << 0, /* leave the process stopped after the checkpoint */
	KEEP_F_KILL = 1 << 1, /* end the process once its checkpoint is kept */
};

/* On the keep channel (docs/ghostd.md). C is the node whose client asked, B
 * a PID's birth node, S the node where the process runs, H the holder of a
 * checkpoint, T the node a checkpoint is restored on. */
enum keep_type {
	KEEP_SAVE_REQ = 1,    /* C->B(->S): A_REQ, A_ORIGIN, A_PID, A_UID, A_HOLDER, A_FLAGS,
				 A_HOPS */
	KEEP_PROGRESS = 2,    /* ->C: A_REQ, A_DONE, A_TOTAL (also a keep-alive) */
	KEEP_SAVE_REP = 3,    /* S->C: A_REQ, A_ERRNO, A_MESSAGE, or the CTL_CKPT_SAVED ones */
	KEEP_RESTORE_REQ = 4, /* C->H: A_REQ, A_ORIGIN, A_CKPT_ID, A_UID, A_NODE */
	KEEP_RESTORE_REP = 5, /* H->C: A_REQ, A_ERRNO, A_MESSAGE, or the CTL_CKPT_RESTORED ones */
	KEEP_LIST_REQ = 6,    /* C->all: A_REQ, A_UID */
	KEEP_LIST_REP = 7,    /* ->C: A_REQ, A_MEM_USED, A_MEM_LIMIT, A_CKPT... */
	KEEP_DROP_REQ = 8,    /* C->H: A_REQ, A_ORIGIN, A_CKPT_ID, A_UID */
	KEEP_DROP_REP = 9,    /* H->C: A_REQ, A_ERRNO, A_MESSAGE, or A_CKPT_ID, A_BYTES */
	/* a checkpoint being stored: S and H, with A_XFER (S's id) */
	KEEP_STORE = 10,        /* S->H: A_PID, A_UID, A_GID, A_COMMAND, A_START, A_FLAGS
				   (RUN_DETACH), A_PATH, A_ESTIMATE */
	KEEP_STORE_READY = 11,  /* H->S: A_PORT, A_KEY, A_CKPT_ID: the keeper listens */
	KEEP_STORED = 12,       /* H->S: A_BYTES: the keeper holds a verified image */
	KEEP_STORE_FAILED = 13, /* H->S: A_ERRNO, A_MESSAGE */
	KEEP_STORE_COMMIT = 14, /* S->H: A_PAGES: the client is told; keep it */
	KEEP_STORE_ABORT = 15,  /* S->H: give up; free it */
	/* a checkpoint being restored: H, B and T, with A_XFER (H's id) */
	KEEP_PROBE = 16,       /* H->B(->S): A_ORIGIN, A_PID, A_HOPS: does the PID still run? */
	KEEP_PROBE_REP = 17,   /* ->H: A_STATE ("running" or "free"), A_NODE */
	KEEP_LOAD = 18,        /* H->T: A_CKPT_ID and the KEEP_STORE identity attributes */
	KEEP_LOAD_READY = 19,  /* T->H: A_PORT, A_KEY: the import worker listens */
	KEEP_LOADED = 20,      /* T->H: A_PID, A_IMPORT_NS: the process runs */
	KEEP_LOAD_FAILED = 21, /* T->H: A_ERRNO, A_MESSAGE */
	KEEP_LOAD_ABORT = 22,  /* H->T: give up; kill what was imported */
};

/* On the stream channel, between a stream operation's coordinator (C, the
 * source of a migration) and the nodes of the stream's ends (E); all with
 * A_XFER (C's move id), A_STREAM, A_INDEX (stream.c). */
enum stream_type {
	STREAM_HOLD = 1,      /* C->E: A_KIND, A_END (A_PID 0: the end of a cross-node
				 channel E installed, or with A_LOCAL, A_REMOTE: of that
				 TCP connection) -> HELD */
	STREAM_HELD = 2,      /* E->C: the end's attributes (fd flags, status, end flags) */
	STREAM_DRAIN = 3,     /* C->E: read what is queued towards the holder -> DRAINED */
	STREAM_DRAINED = 4,   /* E->C: [A_DATA], A_FLAGS (1: more chunks follow) */
	STREAM_WAKE = 5,      /* C->E: A_KIND, A_FLAGS (enum stream_wake), A_END, a second
				 A_END (LOCAL), A_KEY, A_NODE (the peer's), A_ADDRESS, A_PORT
				 (CONNECT); after the STREAM_DATA it needs -> [LISTENING], WOKEN */
	STREAM_LISTENING = 6, /* E->C: A_PORT */
	STREAM_WOKEN = 7,     /* E->C: installed */
	STREAM_RELEASE = 8,   /* C->E: let every process held for A_XFER go */
	STREAM_FAILED = 9,    /* E->C: A_ERRNO, A_MESSAGE */
	STREAM_DATA = 10,     /* C->E: A_DATA: bytes end A_INDEX's holder reads first, in
				 chunks, ahead of the WAKE */
	/* Chains (chain.c): between the node of writers of a pipe (X) and the
	 * node of its readers (R); all with A_CHAIN. An OPEN or FLUSH names the
	 * stream operation it is for (A_ORIGIN: C, A_XFER, A_STREAM, A_INDEX),
	 * and its answer repeats them. */
	STREAM_CHAIN_OPEN = 11,    /* X->R: A_DEV, A_INODE (the pipe on R), A_PID, [A_AFTER,
				      A_OFFSET] -> CHAIN_OPENED */
	STREAM_CHAIN_OPENED = 12,  /* R->X: A_ERRNO (EPIPE: the pipe has no reader left) */
	STREAM_CHAIN_DATA = 13,    /* X->R: A_DATA...: one packet (one write) each */
	STREAM_CHAIN_ACK = 14,     /* R->X: A_OFFSET: bytes written into the pipe so far */
	STREAM_CHAIN_FLUSH = 15,   /* X->R: A_OFFSET: bytes sent so far -> CHAIN_FLUSHED */
	STREAM_CHAIN_FLUSHED = 16, /* R->X: A_OFFSET */
	STREAM_CHAIN_END = 17,     /* X->R: A_OFFSET (bytes sent in all): the pump's writers
				      are all gone */
	STREAM_CHAIN_CLOSED = 18,  /* R->X: the pipe has no reader left: close the pump */
};

/* On the dstream channel (dstream.c, docs/ghostd.md "The dstream API"). H is
 * a stream's home node, E the node of an endpoint (X: where it attaches or
 * wakes up, S: where it was held, Y: its peer's). */
enum ds_msg_type {
	DSM_CREATE = 1,     /* E->H: A_REQ, A_STREAM, A_KIND, A_COUNT, A_UID -> DSM_REPLY */
	DSM_DESTROY = 2,    /* E->H: A_REQ, A_STREAM, A_UID -> DSM_REPLY */
	DSM_ATTACH = 3,     /* X->H: A_REQ, A_STREAM, A_UID -> DSM_ATTACH_REP */
	DSM_WAKEUP = 4,     /* X->H: A_REQ, A_STREAM, A_INDEX, A_SECRET, A_UID -> DSM_ATTACH_REP */
	DSM_SUSPEND = 5,    /* E->H: A_REQ, A_STREAM, A_INDEX, A_SECRET -> DSM_REPLY */
	DSM_UNATTACH = 6,   /* E->H: A_STREAM, A_INDEX */
	DSM_REPLY = 7,      /* H->E: A_REQ, A_ERRNO, A_MESSAGE */
	DSM_ATTACH_REP = 8, /* H->X: A_REQ, A_ERRNO, A_MESSAGE, or A_INDEX, A_KIND, A_COUNT, and
			       for a wakeup A_NODE (S), A_LINKED, A_CLOSED */
	DSM_LINK = 10,         /* H->X: A_STREAM, A_INDEX, A_PEER, A_FLAGS (enum ds_link_how),
				  A_NODE (the peer's), A_KEY -> DSM_LINKED */
	DSM_LINK_CONNECT = 11, /* X->Y: A_STREAM, A_INDEX (Y's end), A_PEER, A_ADDRESS, A_PORT,
				  A_KEY -> DSM_LINKED (to H) */
	DSM_LINKED = 12,       /* X,Y->H: A_STREAM, A_INDEX, A_PEER, A_ERRNO: that end is installed */
	DSM_PEER_CLOSED = 13,  /* H->Y: A_STREAM, A_INDEX, A_PEER (closed) */
	DSM_DESTROYED = 14,    /* H->E: A_STREAM */
	DSM_TAKE = 15,         /* X->S: A_STREAM, A_INDEX: send what the held endpoint has */
	DSM_FEED = 16,         /* S->X: A_STREAM, A_INDEX, A_PEER, [A_DATA], A_FLAGS (1: the
				  link's last) */
	DSM_TAKEN = 17,        /* S->X: A_STREAM, A_INDEX, A_ERRNO: nothing more comes */
	DSM_DROP = 18,         /* H->S: A_STREAM, A_INDEX, A_NODE (X): the endpoint woke up on
				  X, which failed; drop what it held unless another took it */
};

/* A_FLAGS of DSM_PEER_CLOSED and CTL_DS_CLOSED. */
enum ds_closed_flags {
	DS_CLOSED_LOST = 1 << 0, /* with its node: its sockets may never end */
};

enum ds_link_how {
	DS_LINK_LOCAL = 1,  /* both ends on this node: a socketpair */
	DS_LINK_LISTEN = 2, /* listen; the peer's node connects */
};

enum logs_flags {
	LOGS_EOF = 1 << 0,
};

enum run_type {
	RUN_START = 1, /* A_SESSION, A_FLAGS, A_ARG..., A_ENV..., A_CWD, A_UID, A_GID,
			  A_GROUP..., A_TERMIOS, A_ROWS, A_COLS */
	RUN_STARTED,   /* A_SESSION, A_PID */
	RUN_FAILED,    /* A_SESSION, A_ERRNO, A_MESSAGE, A_FLAGS (ERR_EXEC) */
	RUN_IN,        /* A_SESSION, A_DATA */
	RUN_IN_EOF,    /* A_SESSION */
	RUN_IN_ACK,    /* A_SESSION, A_BYTES */
	RUN_OUT,       /* A_SESSION, A_FD, A_DATA */
	RUN_OUT_ACK,   /* A_SESSION, A_BYTES */
	RUN_SIGNAL,    /* A_SESSION, A_SIGNAL */
	RUN_WINSIZE,   /* A_SESSION, A_ROWS, A_COLS */
	RUN_EXIT,      /* A_SESSION, A_EXIT_CODE or A_EXIT_SIGNAL */
	RUN_CLOSE,     /* A_SESSION: the caller is gone */
	RUN_CLOSE_OUT, /* A_SESSION, A_FD */
	/* A session follows its migrating process (run.c). A stint is named by
	 * the move that brought the process: its source node and A_XFER. From
	 * the old stint to the new one, with A_XFER, and also RUN_IN,
	 * RUN_IN_EOF, RUN_SIGNAL, RUN_WINSIZE, RUN_OUT_ACK, RUN_CLOSE and
	 * RUN_CLOSE_OUT passed on as they came: */
	RUN_MOVE_INPUT = 20, /* A_SESSION, A_XFER, [A_DATA, A_FLAGS (RUN_IN_ECHOED)]: stdin the
				process had not read (acknowledged); [A_TERMIOS, A_ROWS,
				A_COLS] its terminal's */
	RUN_MOVE_END = 21,   /* A_SESSION, A_XFER: nothing more comes from the old stint */
	RUN_MOVED = 22,      /* old stint -> caller: A_SESSION, A_NODE (now), A_XFER, A_BYTES
				(output in flight): all its output was sent */
	RUN_RESUME = 23,     /* caller -> new stint: A_SESSION, A_PREV, A_XFER, A_BYTES (output
				in flight): send output */
	RUN_HANDED = 24,     /* caller -> old stint: A_SESSION: nothing more comes from it */
};

/* ---- the daemon's objects ------------------------------------------------ */

struct ctl_conn;
struct run_session;
struct pending;
struct move;
struct standin;
struct parent_standin;
struct keep;
struct keep_req;
struct dsep;

enum node_state {
	NODE_STATE_SELF,
	NODE_STATE_UP,
	NODE_STATE_DOWN,
	NODE_STATE_FAILED,
	_NODE_STATE_MAX,
	_NODE_STATE_INVALID = -EINVAL,
};

struct node_peer {
	uint32_t id;
	char address[64];
	enum node_state state;
	uint64_t incarnation;      /* while UP */
	uint64_t left_incarnation; /* the incarnation that said MEMBER_LEAVE */
	bool have_load;
	uint32_t load;             /* times 100 */
	uint32_t nprocs;
};

enum mproc_state {
	MPROC_SPAWNING,  /* cloned, exec not yet confirmed */
	MPROC_RUNNING,   /* a live managed process of this node */
	MPROC_EXITED,    /* reaped; kept a while so that ps -a and logs know it */
	MPROC_ELSEWHERE, /* born here, running on node (the birth table entry) */
};

struct mproc {
	struct mproc *hnext;             /* hash chain */
	struct mproc *next, *prev;       /* the exited list, oldest last */
	pid_t pid;
	uint32_t node;                   /* where it runs */
	enum mproc_state state;
	uid_t uid;
	gid_t gid;
	char *command;
	uint64_t start_time;
	bool detached;
	char *log_path;                  /* detached: its output */
	int wstatus;                     /* MPROC_EXITED */
	int exec_fd;                     /* MPROC_SPAWNING: the exec status pipe */
	bool exec_failed;                /* MPROC_SPAWNING: exec failed, waiting to reap */
	struct loop_io *exec_io;
	struct run_session *session;     /* the run session waiting for it, or NULL */
	bool moving;                     /* a migration of it is under way */
	bool arriving;                   /* imported, held stopped until the source commits */
	pid_t forked_from;               /* a ghost fork copy: the original's PID */
	bool adopted;                    /* a descendant of a managed process, not our child */
	struct loop_io *pidfd_io;        /* adopted: its exit */
	int pidfd;
	struct node_daemon *daemon;      /* adopted: for the exit watch */
	bool keeping;                    /* a memory checkpoint of it is under way */
	uint32_t elsewhere;              /* arriving at its birth node: where its entry
					    said it ran (0: it had none) */
};

struct node_daemon {
	struct loop *loop;
	struct msg *msg;
	struct node_config config;
	uint32_t self;
	struct node_peer *peers;
	size_t n_peers;
	char *control_path;
	char *log_dir;
	int control_fd;
	struct loop_io *control_io;
	struct ctl_conn *conns;
	unsigned n_conns;
	struct loop_defer *gc;
	struct loop_timer *load_timer;
	struct loop_timer *leave_timer;
	struct loop_signal *sig_term, *sig_int, *sig_chld, *sig_hup;
	/* managed processes (proc.c) */
	struct mproc **ptable;
	size_t ptable_buckets;
	size_t n_procs;    /* entries of the table */
	size_t n_running;  /* MPROC_SPAWNING + MPROC_RUNNING */
	size_t n_exited;
	struct mproc *exited; /* newest first */
	struct mproc *exited_tail;
	pid_t pid_first, pid_last, pid_next; /* the daemon hands out the lower half */
	bool own_proc;     /* /proc shows this PID namespace */
	/* run sessions (run.c) and requests waiting for other nodes (req.c) */
	struct run_session *sessions;
	struct pending *pending;
	/* migrations (move.c) and the stand-ins they leave (standin.c) */
	struct move *moves;
	struct standin *standins;
	struct parent_standin *parent_standins;
	pid_t quiet[256];  /* stand-ins and moved originals whose end is no exit */
	size_t n_quiet;
	struct {
		pid_t pid;
		uint32_t node;
	} departed[64];    /* where the last processes that left went (a ring) */
	size_t departed_next;
	/* memory checkpoints (keep.c) */
	struct keep *keep;
	/* dynamic streams (stream.c) and their chains (chain.c) */
	struct stream_mgr *streams;
	struct chain_mgr *chains;
	/* the dstream API's streams (dstream.c) */
	struct ds_mgr *dstreams;
	char *config_path;
	uint64_t next_id;
	bool leaving;
	uint64_t leave_deadline;
	int exit_code;
};

/* daemon.c */
/* Put the formatted message into err (replacing it) and return r; the
 * _errno flavour appends ": " and the text of r. */
int node_err(struct buf *err, int r, const char *fmt, ...) _printf_(3, 4);
int node_err_errno(struct buf *err, int r, const char *fmt, ...) _printf_(3, 4);
struct node_peer *node_peer_find(struct node_daemon *d, uint32_t id);
const char *node_state_to_string(enum node_state s);
/* The node whose PID range holds pid, or 0. */
uint32_t node_of_pid(const struct node_daemon *d, pid_t pid);
/* Answer request req of node origin: A_REQ, then attrs (may be NULL). */
void node_answer(struct node_daemon *d, uint32_t origin, uint16_t channel, uint32_t type,
		 uint64_t req, const struct buf *attrs);
/* The same with A_ERRNO (err < 0) and A_MESSAGE (formatted). */
void node_answer_verror(struct node_daemon *d, uint32_t origin, uint16_t channel, uint32_t type,
			uint64_t req, int err, const char *fmt, va_list ap) _printf_(7, 0);
/* An id for requests and sessions, never 0. */
uint64_t node_new_id(struct node_daemon *d);
/* The number of running managed processes changed. */
void node_procs_changed(struct node_daemon *d);
/* Answer CTL_NODES. */
void node_list_nodes(struct node_daemon *d, struct ctl_conn *c);

/* control.c: the control socket */
struct ctl_request {
	uint16_t type;
	const void *payload;
	size_t len;
};

int ctl_listen(struct node_daemon *d, struct buf *err);
void ctl_shutdown(struct node_daemon *d);
/* Queue a frame with this payload (attributes; may be NULL) and try to send
 * it. Errors kill the connection and are returned. */
int ctl_send(struct ctl_conn *c, uint16_t type, const struct buf *payload);
/* Send CTL_ERROR (err < 0, message formatted) and close after it. */
void ctl_send_error(struct ctl_conn *c, int err, unsigned flags, const char *fmt, ...)
	_printf_(4, 5);
/* The request is answered: close once everything is sent. */
void ctl_finish(struct ctl_conn *c);
/* Close now; the connection is freed later, from the loop. */
void ctl_conn_kill(struct ctl_conn *c);
size_t ctl_out_pending(const struct ctl_conn *c);
/* So much output is queued that producers should wait for run_conn_drained(). */
bool ctl_out_high(const struct ctl_conn *c);
bool ctl_conn_alive(const struct ctl_conn *c);
uid_t ctl_conn_uid(const struct ctl_conn *c);
gid_t ctl_conn_gid(const struct ctl_conn *c);
const gid_t *ctl_conn_groups(const struct ctl_conn *c, size_t *ret_n);
/* Take the fds received with SCM_RIGHTS (at most 3); returns how many. */
size_t ctl_conn_take_fds(struct ctl_conn *c, int ret_fds[3]);
/* Take at most max of them, the oldest first; returns how many. */
size_t ctl_conn_take_fds_n(struct ctl_conn *c, int *ret_fds, size_t max);
/* As ctl_send(), passing fd (consumed, even on failure; -1: none) with the
 * frame's first byte. */
int ctl_send_fd(struct ctl_conn *c, uint16_t type, const struct buf *payload, int fd);
void ctl_conn_set_dsep(struct ctl_conn *c, struct dsep *e);
void ctl_conn_set_session(struct ctl_conn *c, struct run_session *s);
void ctl_conn_set_pending(struct ctl_conn *c, struct pending *p);
void ctl_conn_set_standin(struct ctl_conn *c, struct standin *s);
pid_t ctl_conn_pid(const struct ctl_conn *c);
void ctl_conn_set_keep(struct ctl_conn *c, struct keep_req *k);

/* proc.c: managed processes and the PID table */
int proc_init(struct node_daemon *d, struct buf *err);
void proc_done(struct node_daemon *d);
struct mproc *proc_find(struct node_daemon *d, pid_t pid);
/* Reap every child that has exited. */
void proc_reap(struct node_daemon *d);
/* A process of this node exited with wstatus, reaped by someone else (a
 * parent stand-in). */
void proc_child_exited(struct node_daemon *d, pid_t pid, int wstatus);
/* The entry of pid for a request on behalf of uid: a process that is no
 * managed one but descends from one (forked by it) is adopted first, so that
 * it can be signalled and moved. NULL if there is neither. */
struct mproc *proc_find_or_adopt(struct node_daemon *d, pid_t pid);
/* Managed process pid of this node has a parent here that reaps it (a parent
 * stand-in turned into the parent): watch its end as an adopted one's. */
int proc_parent_reaps(struct node_daemon *d, pid_t pid);
/* The parent of a process of this node, from /proc; 0 if unknown. */
pid_t proc_parent(pid_t pid);
/* Its real user and group; its name (/proc/PID/comm). */
int proc_ids(pid_t pid, uid_t *ret_uid, gid_t *ret_gid);
int proc_comm(pid_t pid, char *comm, size_t size);
/* Does it exist and has not ended (no zombie)? */
bool proc_alive(pid_t pid);
/* Is it stopped by a signal (SIGSTOP, SIGTSTP...), not merely traced? */
bool proc_job_stopped(pid_t pid);
/* Does it run with just its user's rights (every UID is uid, no capability)?
 * A process that ran a setuid program does not: only root may export it. */
bool proc_plain_creds(pid_t pid, uid_t uid);
/* Its children (of all its threads), at most max in ret, how many in ret_n
 * (which may exceed max). -errno if it cannot be read. */
int proc_children(pid_t pid, pid_t *ret, size_t max, size_t *ret_n);
/* The node where process pid runs, as far as this node knows: this one, the
 * one its entry or a recent departure names, else its birth node (0 if
 * none), which knows. */
uint32_t proc_locate(struct node_daemon *d, pid_t pid);
/* Resident bytes of a process of this node (0 if unknown). */
uint64_t proc_rss_bytes(pid_t pid);
/* Bytes of memory this node can still give a process: the smaller of the
 * machine's MemAvailable and what the daemon's memory cgroup allows. */
uint64_t proc_memory_available(void);
/* Keep the kernel's PIDs for descendants in the upper half of the range. */
void proc_tick(struct node_daemon *d);

struct spawn_req {
	char **argv;
	char **envp;
	const char *cwd;
	uid_t uid;
	gid_t gid;
	const gid_t *groups;
	size_t n_groups;
	int fds[3];        /* the process's stdin, stdout, stderr (not consumed) */
	bool ctty;         /* make fds[0] its controlling terminal */
	bool detached;
};

/* Clone a process with a free PID of this node's range and exec the command
 * in it. The exec's outcome comes later, through run_proc_exec(); its exit
 * through run_proc_exited(). Errors: -EAGAIN (no free PID), clone errors. */
int proc_spawn(struct node_daemon *d, const struct spawn_req *r, struct run_session *s,
	       struct mproc **ret);
/* A detached log file for a process not yet born: open it under a temporary
 * name; proc_log_rename() gives it its PID's name. */
int proc_log_open(struct node_daemon *d, uid_t uid, gid_t gid, char **ret_path);
int proc_log_rename(struct node_daemon *d, const char *tmp_path, pid_t pid, char **ret_path);
/* The process's session is gone (p may be NULL or already reaped). */
void proc_detach_session(struct node_daemon *d, struct mproc *p);
/* Append the ps attributes of p to b. */
int proc_put_info(struct node_daemon *d, const struct mproc *p, struct buf *b);
/* Append an A_PROC for every managed process of this node to b. */
int proc_put_all(struct node_daemon *d, bool all, struct buf *b);
/* Signal a managed process of this node on behalf of uid. 0 or -errno with a
 * message in err. */
int proc_kill(struct node_daemon *d, pid_t pid, int sig, uid_t uid, struct buf *err);
/* Read up to LOGS_CHUNK bytes of pid's log at offset for uid. Returns 1 at
 * the end of the file, 0 if there is more, -errno with err set. */
int proc_read_log(struct node_daemon *d, pid_t pid, uid_t uid, uint64_t offset, struct buf *data,
		  struct buf *err);

/* A process that arrives by migration, as the source describes it. */
struct proc_arrival {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	const char *command;
	uint64_t start_time;
	bool detached;
	const char *log_path; /* may be NULL */
	pid_t forked_from;    /* 0, or the original of a ghost fork copy */
};

/* Enter an imported process (held stopped, not yet committed) in the table:
 * RUNNING with arriving set; an ELSEWHERE entry of the same PID (the process
 * comes home) is replaced. -EEXIST if the PID has another live entry. */
int proc_arrive(struct node_daemon *d, const struct proc_arrival *a, struct mproc **ret);
/* A free PID of this node's range for a process that arrives (ghost fork). */
int proc_pick_pid(struct node_daemon *d, pid_t *ret);
/* The process left for node to (its original is being killed): born here, the
 * entry becomes ELSEWHERE; else it is forgotten. The original's exit is then
 * reaped as an unmanaged child. */
void proc_depart(struct node_daemon *d, struct mproc *p, uint32_t to);
/* The arrival was abandoned: forget the entry (the caller kills the process);
 * at its birth node, the entry names where it still runs again. */
void proc_arrival_cancel(struct node_daemon *d, struct mproc *p);
/* The birth node's side: PROC_WHERE and PROC_GONE. */
void proc_where(struct node_daemon *d, pid_t pid, uint32_t node);
void proc_gone(struct node_daemon *d, pid_t pid, uint32_t from);

/* worker.c: transfer worker processes */
struct worker_export_job {
	pid_t pid;
	unsigned flags;        /* enum ghost_export_flags */
	uint32_t dest;
	const char *host;      /* numeric address of the destination */
	uint16_t port;
	uint8_t key[MSG_CHAN_KEY_SIZE];
	bool encrypt;
	const int *carried;    /* fds whose streams the daemon moves (stream.c) */
	size_t n_carried;
};

struct worker_import_job {
	int listen_fd;         /* consumed by the worker; the daemon closes its copy */
	int stdio[3];          /* the process's shell-job stdio (-1: /dev/null); the
				  worker keeps them, the daemon closes its copies */
	unsigned flags;        /* enum ghost_import_flags */
	pid_t pid;             /* 0: the image's; else the copy's new PID */
	pid_t parent;          /* else 0: the worker takes this PID and stays as the
				  process's parent stand-in (standin.c) */
	uid_t parent_uid;
	int job_fd;            /* with parent: the stand-in's end of its job socket,
				  by which the imports of the parent's other
				  children reach it (worker_host_send()) */
	/* Stand-ins of the children the process left on its source, made as
	 * its children by the import (standin.c). */
	const struct ghost_import_child *children;
	size_t n_children;
	/* With GHOST_IMPORT_BECOME (a job for a parent stand-in, which turns
	 * into the arriving parent itself): the stand-in's children that are
	 * the process's own here; each must still be its child, unwaited. */
	const pid_t *own_kids;
	size_t n_own_kids;
	uint32_t source;
	uint8_t key[MSG_CHAN_KEY_SIZE];
	bool encrypt;
};

enum worker_report_kind {
	WORKER_PROGRESS = 1,
	WORKER_DONE,
	WORKER_SIGNAL,     /* a parent stand-in received signal `done` */
	WORKER_CHILD_EXIT, /* a parent stand-in reaped `pid` with wait status `done` */
};

/* What a worker writes on its report pipe: smaller than PIPE_BUF. */
struct worker_report {
	uint32_t kind;
	int32_t err;               /* WORKER_DONE: 0 or -errno/GHOST_E* */
	int32_t pid;               /* import: the new process */
	uint32_t pad;
	uint64_t done, total;      /* WORKER_PROGRESS */
	uint64_t freeze_start_ns;  /* export: CLOCK_MONOTONIC when the engine started */
	struct ghost_stats stats;
	char msg[512];             /* WORKER_DONE with an error: one line */
};

/* The error is the transfer connection's, not the engine's own. */
bool worker_link_error(int r);
/* Fork a worker; its report pipe's read end (non-blocking) in ret_fd. */
int worker_export_start(const struct worker_export_job *j, pid_t *ret_pid, int *ret_fd);
int worker_import_start(const struct worker_import_job *j, pid_t *ret_pid, int *ret_fd);
/* The job socket of an import worker that stays as a parent stand-in: the
 * daemon's end and the worker's (worker_import_job.job_fd). */
int worker_job_socket(int *ret_daemon_fd, int *ret_worker_fd);
struct standin_spawn;
/* Hand an import to the parent stand-in at the other end of job_fd, which
 * runs it itself, so that the new process is its child too (standin.c):
 * j's fds and spawn (NULL: no children) are sent, not consumed. The import's
 * reports come on a new pipe: its read end (non-blocking) in ret_fd. */
int worker_host_send(int job_fd, const struct worker_import_job *j,
		     const struct standin_spawn *spawn, int *ret_fd);
/* In a stand-in of a moved process, told to turn into it: receive the job
 * (GHOST_IMPORT_BECOME) on job_fd and run it. Back only if the import failed
 * before the stand-in began to turn (the failure reported on the job's
 * report pipe); never back once it did. */
void worker_host_turn(int job_fd);
/* 1 with a report, 0 if none is ready, -EPIPE at end of file, -EBADMSG, -errno. */
int worker_read_report(int fd, struct worker_report *ret);

/* What worker_next_report() found. */
enum worker_next {
	WORKER_NEXT_NONE = 0, /* nothing yet */
	WORKER_NEXT_PROGRESS, /* a progress report */
	WORKER_NEXT_FINAL,    /* its final report */
};

/* The next report of an export or import worker (what: "export" or
 * "import") of this node: a worker that ended without a final report gives
 * a final one of -EIO, "the WHAT worker on node NODE died". */
enum worker_next worker_next_report(int fd, const char *what, uint32_t node,
				    struct worker_report *ret);

/* The parts of a worker that the keeper (keeper.c) shares. */
#define WORKER_KEEP_MAX 5
typedef void (*worker_fn)(const void *job, int report_fd);
/* Fork a worker: it keeps only the fds in keep_fds[] and the write end of its
 * report pipe, gets the default signal handling (SIGPIPE ignored), dies with
 * the daemon if asked, and runs fn(job, report_fd), which must not return.
 * The pipe's read end (non-blocking) in ret_fd. */
int worker_fork(const int *keep_fds, size_t n_keep, bool die_with_daemon, worker_fn fn,
		const void *job, pid_t *ret_pid, int *ret_fd);
/* In a worker: write a report (atomic; errors are ignored: the daemon may be gone). */
void worker_report_send(int fd, const struct worker_report *rep);
/* In a worker: the final report, an error with one line; then _exit(1). */
_Noreturn void worker_fail(int fd, struct worker_report *rep, int err, const char *fmt, ...)
	_printf_(4, 5);
/* Socket timeouts, so that a stalled peer fails the transfer instead of hanging it. */
void worker_set_stall_timeouts(int fd);
/* Start a pump process between the worker and the sealed connection of cs;
 * the worker's end of a socketpair in ret_fd. seal: the worker writes, the
 * pump seals; else the pump opens, the worker reads. cs's socket is closed
 * here, so that the connection ends when the pump does. */
int worker_pump_start(struct msg_chan_session *cs, bool seal, int *ret_fd, pid_t *ret_pid);
/* The receiving side of a transfer: accept the connection on listen_fd
 * (authenticated with key, within the workers' timeout), set its stall
 * timeouts and, with encrypt, start the opening pump. The plain stream in
 * ret_fd, the pump in ret_pump (-1: none); on failure a one-line reason
 * naming the source node in msg. listen_fd stays the caller's. */
int worker_accept_stream(int listen_fd, const uint8_t *key, bool encrypt, uint32_t source,
			 int *ret_fd, pid_t *ret_pump, char *msg, size_t msg_len);
/* Reap the pump (pid <= 0: none): 0, or its failure: -EBADMSG (integrity),
 * -ECONNRESET (cut or truncated), -EIO. */
int worker_pump_wait(pid_t pid);
/* Progress reports, at most every 200 ms and always the last one. */
struct worker_progress {
	int fd;
	uint64_t last_ns;
};
void worker_progress(struct worker_progress *wp, uint64_t done, uint64_t total);

/* keeper.c: the keeper process of a memory checkpoint, on its holder node.
 * It accepts the image from the source's export worker (a direct
 * connection, as a migration's), verifies it, and keeps it in its memory;
 * then, on each KEEPER_SEND command, streams it to an import worker. Its
 * reports: WORKER_DONE for the store (err, stats.image_bytes), then for each
 * send WORKER_PROGRESS... and WORKER_DONE. It dies with its daemon, and ends
 * when its command pipe is closed. Its name (comm) is "ghost-keeper". */
struct keeper_job {
	int listen_fd;        /* consumed by the keeper; the daemon closes its copy */
	uint32_t source;      /* the node exporting */
	uint32_t self;        /* the holder */
	uint8_t key[MSG_CHAN_KEY_SIZE];
	bool encrypt;
	uint64_t limit;       /* the most bytes it may hold */
};

enum keeper_cmd_kind {
	KEEPER_SEND = 1,
};

/* A command on the keeper's pipe: smaller than PIPE_BUF. */
struct keeper_cmd {
	uint32_t kind;
	uint32_t dest;        /* the node to send to */
	uint16_t port;
	uint8_t encrypt;
	uint8_t pad;
	char host[48];        /* numeric address of dest */
	uint8_t key[MSG_CHAN_KEY_SIZE];
};

/* Fork a keeper: its report pipe's read end (non-blocking) in ret_report_fd,
 * its command pipe's write end in ret_cmd_fd. */
int keeper_start(const struct keeper_job *j, pid_t *ret_pid, int *ret_report_fd,
		 int *ret_cmd_fd);
/* Send a command (non-blocking write of one record). */
int keeper_command(int cmd_fd, const struct keeper_cmd *c);

/* holder.c: a process frozen in place by a worker, for its fds to be swapped */
#define STREAM_MAX_FDS 8
struct holder;
/* Freeze pid (waits until it is held). 0, or -errno with why set. */
int holder_start(pid_t pid, struct holder **ret, char *why, size_t why_len);
/* Make each of the process's fds[i] refer to our newfd's open file description,
 * with FD_CLOEXEC as fd_flags[i] says. */
int holder_install(struct holder *h, const int *fds, const int *fd_flags, size_t n, int newfd,
		   char *why, size_t why_len);
/* Let the process go on as it was (running, or stopped); frees h. NULL ok. */
struct holder *holder_release(struct holder *h);

/* stream.c: dynamic streams */
struct stream_op;
/* The outcome of stream_switch() or stream_abort(): err 0, or why it failed
 * (the streams are then back in place for the process where it was). */
typedef void (*stream_done_fn)(struct stream_op *op, int err, const char *msg, void *userdata);
int stream_init(struct node_daemon *d);
/* Find the streams of process pid, about to migrate to node dest in move
 * xfer (fork: a copy goes there, the process stays and keeps its fds): the
 * fds they hold in carried[] (at most max), for the export to leave to us;
 * the operation in *ret (NULL: no streams). -errno with msg when one cannot
 * move (or be shared with a copy on dest). */
int stream_prepare(struct node_daemon *d, pid_t pid, uint64_t xfer, uint32_t dest, bool fork,
		   struct stream_op **ret, int *carried, size_t *n_carried, size_t max, char *msg,
		   size_t size);
/* The process is exported (stopped here) and imported (held on dest as
 * new_pid): suspend its streams, drain them and wake them up between dest
 * and the peers' nodes; then done(). The peers stay frozen until
 * stream_release(). A fork's copy (new_pid) gets its fds as fork() would
 * give them: nothing of the process or its peers is held or drained. */
void stream_switch(struct stream_op *op, uint32_t dest, pid_t new_pid, stream_done_fn done,
		   void *userdata);
/* The move failed: put the streams back for the process here (if they had
 * been touched), then done(). */
void stream_abort(struct stream_op *op, int err, const char *why, stream_done_fn done,
		  void *userdata);
/* Let every held process go; free op. NULL ok. */
void stream_release(struct stream_op *op);
void stream_node_down(struct node_daemon *d, uint32_t node);
void stream_free_all(struct node_daemon *d);

/* chain.c: the writers of a pipe on other nodes than its readers' (the
 * stream manager's FIFO streams). X is a writers' node, R the readers'. */
struct chain_out;
/* The stream operation end an answer is for (stream.c's). */
struct chain_ctx {
	uint32_t coord;
	uint64_t xfer, id;
	uint32_t index;
};
/* An answer: err 0 or -errno; offset: bytes of the chain sent to R (a
 * flush), or the offset waited for (a wait). */
typedef void (*chain_answer_fn)(struct node_daemon *d, const struct chain_ctx *ctx, int err,
				uint64_t offset);
int chain_init(struct node_daemon *d);
/* A STREAM_CHAIN_* message from node. */
void chain_recv(struct node_daemon *d, uint32_t node, uint32_t type, const void *data,
		size_t len);
void chain_node_down(struct node_daemon *d, uint32_t node);
void chain_free_all(struct node_daemon *d);
/* X: the open chain whose pump is the pipe (dev, ino) a writer holds, or NULL. */
struct chain_out *chain_out_by_pump(struct node_daemon *d, uint64_t dev, uint64_t ino);
uint64_t chain_out_id(const struct chain_out *co);
uint32_t chain_out_reader(const struct chain_out *co);
/* The pipe on R that the chain writes into. */
void chain_out_pipe(const struct chain_out *co, uint64_t *ret_dev, uint64_t *ret_ino);
/* X: a chain id into the pipe (pipe_dev, pipe_ino) of node reader, not
 * started; the write end of its pump (O_DIRECT) for the writer in *ret_fd,
 * the caller's to close. */
int chain_out_new(struct node_daemon *d, uint64_t id, uint32_t reader, uint64_t pipe_dev,
		  uint64_t pipe_ino, struct chain_out **ret, int *ret_fd);
/* Forget a chain never started (its writer never got the pump). NULL ok. */
void chain_out_drop(struct chain_out *co);
/* Open it at R (after_id: a chain whose first after_off bytes go in
 * first, 0 for none) and send what its writers write; fn(ctx) once R has
 * its write description, or found no reader (then the writers get EPIPE).
 * On failure co is freed. */
int chain_out_start(struct chain_out *co, pid_t pid, uint64_t after_id, uint64_t after_off,
		    const struct chain_ctx *ctx, chain_answer_fn fn);
/* X: send what the pump holds now whatever the window, then fn(ctx, 0,
 * offset) once R has every byte up to offset (a writer is frozen for a
 * move: that is all it wrote through this chain). */
int chain_out_flush(struct chain_out *co, const struct chain_ctx *ctx, chain_answer_fn fn);
/* R: does a chain write into the pipe (dev, ino) here? */
bool chain_merges(struct node_daemon *d, uint64_t dev, uint64_t ino);
/* R: 1 if chain after_id has written after_off bytes or is gone; else 0,
 * and fn(ctx) once it has, or fn(ctx, -ETIMEDOUT) after timeout_ms. */
int chain_wait(struct node_daemon *d, uint64_t after_id, uint64_t after_off, unsigned timeout_ms,
	       const struct chain_ctx *ctx, chain_answer_fn fn);
void chain_wait_cancel(struct node_daemon *d, const struct chain_ctx *ctx);
/* R: a new write description of the pipe (dev, ino), O_NONBLOCK, opened
 * through a process here that holds it: -ENXIO when it has no reader,
 * -ENOENT when nobody here holds it. */
int chain_pipe_open(struct node_daemon *d, uint64_t dev, uint64_t ino, int *ret_fd);

/* dstream.c: the dstream API's streams: directory, endpoints, links */
int dstream_init(struct node_daemon *d);
/* A CTL_DS_CREATE, _DESTROY, _ATTACH or _WAKEUP request. */
void dstream_request(struct node_daemon *d, struct ctl_conn *c, const struct ctl_request *req);
/* A frame on an endpoint's connection. */
void dstream_conn_frame(struct dsep *e, const struct ctl_request *req);
/* The connection of an endpoint (or of a request) is gone. */
void dstream_conn_gone(struct dsep *e);
void dstream_node_down(struct node_daemon *d, uint32_t node);
void dstream_free_all(struct node_daemon *d);

/* fault.c: fault injection for tests. One item of $var for this node: the
 * message names[type] is handled delay_ms late. */
struct node_fault {
	uint32_t type;
	uint32_t delay_ms;
};
/* Read $var ("MSG@NODE:MS" items, comma separated; MSG one of names[],
 * whose NULL entries are no message): this node's items into ret (at most
 * max), their number; each is logged. Items for other nodes are skipped; a
 * malformed or unknown one is logged and ignored (a daemon does not refuse
 * to start over a test knob). */
size_t node_faults_parse(const struct node_daemon *d, const char *var,
			 const char *const *names, size_t n_names, struct node_fault *ret,
			 size_t max);

/* move.c: migrations */
void move_register(struct node_daemon *d);
/* A PROC_MOVE_REQ for a process of this node, as req.c parsed it. */
struct move_request {
	uint64_t req;
	uint32_t origin; /* the node to answer */
	pid_t pid;
	uid_t uid;       /* on whose behalf */
	uint32_t to;
	uint32_t flags;  /* MOVE_F_FORK */
};

void move_question(struct node_daemon *d, const struct move_request *q);
void move_node_down(struct node_daemon *d, uint32_t node);
/* A signal for a process being moved: kept and delivered where it ends up
 * (true), or to be sent now (false: SIGKILL, stop/continue, no move). */
bool move_defer_signal(struct node_daemon *d, struct mproc *p, int sig);
/* The process of a move died: the move fails. */
void move_proc_exited(struct node_daemon *d, struct mproc *p);
/* A child that is no managed process here was reaped (maybe a moved original). */
void move_reaped(struct node_daemon *d, pid_t pid);
void move_free_all(struct node_daemon *d);

/* standin.c: stand-ins for a moved process's parent and children */
/* A child of a moving process, as MOVE_PREPARE carries it (A_CHILD). */
struct move_kid {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	char comm[16];
	bool standin; /* source: it is a stand-in there (the process is elsewhere) */
	bool gone;    /* source: the process waited for it before its export froze it */
};
#define MOVE_MAX_KIDS 64
/* The stand-ins an import makes for the children of the process it
 * imports (ghost_import_opts.children), with what their argv points to. */
struct standin_spawn_argv {
	const char *argv[8];
	char comm[16], daemon_pid[16], uid[16], gid[16];
};
struct standin_spawn {
	char exe[32];
	char control[108];     /* the daemon's control socket, argv[2] */
	size_t n;
	struct ghost_import_child child[MOVE_MAX_KIDS];
	struct standin_spawn_argv a[MOVE_MAX_KIDS];
};
/* Turn the stopped original of a moved process into its stand-in: for its
 * parent here (for_parent: it lives until the process ends) or only for its
 * children here. node: where the process goes. */
int standin_make(struct node_daemon *d, pid_t pid, uid_t uid, gid_t gid, uint32_t node,
		 bool for_parent, char *why, size_t why_len);
/* Fill ret for the import of a process with these children. */
int standin_spawn_fill(struct node_daemon *d, const struct move_kid *kids, size_t n,
		       struct standin_spawn *ret);
/* Point s's children and argv at s's own strings again, after a copy. */
void standin_spawn_relink(struct standin_spawn *s);
/* An import is about to make a stand-in with PID pid, a child of the
 * process parent, whose real process runs on node: expect it to call in. */
int standin_expect(struct node_daemon *d, const struct move_kid *k, pid_t parent, uint32_t node);
/* The import of parent failed or was abandoned: its children's stand-ins go
 * quietly. Committed: they stay; the A_CHILD_EXIT of the commit end them. */
void standin_arrivals_cancel(struct node_daemon *d, pid_t parent);
void standin_arrivals_commit(struct node_daemon *d, pid_t parent, const void *data, size_t len);
/* Before parent (held stopped) runs: it had waited for kid before its export
 * froze it, so kid's stand-in ends and parent reaps it unseen. */
void standin_arrival_unseen(struct node_daemon *d, pid_t parent, pid_t kid);
/* The parent of stand-in kid moved away (committed): put kid's exit, if known,
 * into the commit message and let the stand-in go quietly. */
int standin_hand_over(struct node_daemon *d, pid_t kid, struct buf *commit);
/* The end of process pid here is no exit of the process it was (a moved
 * original, a stand-in that goes): its reaping is not reported as one. */
void standin_quiet(struct node_daemon *d, pid_t pid);
/* The daemon reaped pid itself. */
void standin_reaped(struct node_daemon *d, pid_t pid);
/* Is pid marked quiet here: ending, its PID soon free? */
bool standin_ending(struct node_daemon *d, pid_t pid);
/* Process parent of this node ended: its children's stand-ins go quietly. */
void standin_parent_exited(struct node_daemon *d, pid_t parent);
/* PROC_CHILD_EXITED. */
void standin_recv_child_exited(struct node_daemon *d, const void *data, size_t len);
/* Is pid held here by a child stand-in? By a parent stand-in? */
bool standin_holds(struct node_daemon *d, pid_t pid);
/* If k->pid is a stand-in's here, fill in the user, group and name of the
 * process it stands in for, and return true. */
bool standin_describe(struct node_daemon *d, struct move_kid *k);
bool standin_is_parent(struct node_daemon *d, pid_t pid);
void standin_hello(struct node_daemon *d, struct ctl_conn *c);
void standin_conn_frame(struct standin *s, struct node_daemon *d, const struct ctl_request *req);
void standin_conn_gone(struct standin *s, struct node_daemon *d);
/* The birth node's side of PROC_EXITED. */
void standin_proc_exited(struct node_daemon *d, pid_t pid, int wstatus);
void standin_node_down(struct node_daemon *d, uint32_t node);
/* An import worker that stays as the parent of what it imported: watch its
 * reports (report_fd and job_fd, the daemon's end of its job socket, are
 * consumed). */
int standin_parent_adopt(struct node_daemon *d, pid_t pid, pid_t child, int report_fd,
			 int job_fd);
/* The import of another child of parent, by parent's stand-in here if there
 * is one that takes imports (-ENOENT if not): see worker_host_send(). */
int standin_parent_host(struct node_daemon *d, pid_t parent, const struct worker_import_job *j,
			const struct standin_spawn *spawn, int *ret_fd);
/* That import is over (its move ended, whichever way). */
void standin_parent_host_done(struct node_daemon *d, pid_t parent);
/* Can the parent stand-in holding pid here turn into the arriving process
 * pid (GHOST_IMPORT_BECOME)? 0 yes; -ENOENT there is none; -ESTALE it is
 * going (its PID comes free soon); -EBUSY an import of a child or its own
 * turning is under way. */
int standin_parent_ready(struct node_daemon *d, pid_t pid);
/* Hand it that job (as standin_parent_host()); it is turning from then on. */
int standin_parent_turn(struct node_daemon *d, pid_t pid, const struct worker_import_job *j,
			const struct standin_spawn *spawn, int *ret_fd);
/* Can the child stand-in (ghostd --stand-in) holding pid here turn into the
 * arriving process pid, whose parent is ppid (0: a daemon)? 0 yes; -ENOENT
 * there is none; -EBUSY it is not ready or already turning; -EPERM it does
 * not run as root; -ECHILD its parent here is another. */
int standin_turn_ready(struct node_daemon *d, pid_t pid, pid_t ppid);
/* Tell it to (its job as in standin_parent_host(): the reports in ret_fd). */
int standin_turn(struct node_daemon *d, pid_t pid, const struct worker_import_job *j,
		 const struct standin_spawn *spawn, int *ret_fd);
/* The move of that turn is over: one that failed before the stand-in began
 * to turn leaves it a stand-in. */
void standin_turn_done(struct node_daemon *d, pid_t pid);
/* It turned into the process: forget it, quietly. */
void standin_turned(struct node_daemon *d, pid_t pid);
/* The copy it turned into is discarded (the move failed after the import):
 * its parent here sees its child die, so the process, still on node (the
 * source), is killed too. */
void standin_turn_lost(struct node_daemon *d, pid_t pid, uint32_t node);
/* Is it turning into its process (a job of standin_parent_turn() under way)? */
bool standin_parent_turning(struct node_daemon *d, pid_t pid);
/* It turned into the process: it is a stand-in no more. */
void standin_parent_turned(struct node_daemon *d, pid_t pid);
void standin_free_all(struct node_daemon *d);
/* keep.c: memory checkpoints */
int keep_init(struct node_daemon *d, struct buf *err);
/* A CTL_CKPT_* request. */
void keep_request(struct node_daemon *d, struct ctl_conn *c, const struct ctl_request *req);
void keep_conn_gone(struct keep_req *k);
void keep_node_down(struct node_daemon *d, uint32_t node);
/* The process of a checkpoint under way died (or was ended by --kill). */
void keep_proc_exited(struct node_daemon *d, struct mproc *p);
/* SIGHUP: read checkpoint-memory from the configuration file again. */
void keep_reload(struct node_daemon *d);
/* Shutting down: no process stays frozen, every keeper is killed. */
void keep_free_all(struct node_daemon *d);
/* Free what keep_init() made (after keep_free_all()). */
void keep_done(struct node_daemon *d);

/* run.c: run sessions */
void run_register(struct node_daemon *d);
/* A CTL_RUN request; fds were received with it. */
void run_request(struct node_daemon *d, struct ctl_conn *c, const struct ctl_request *req);
/* A frame of a running session. */
void run_conn_frame(struct run_session *s, const struct ctl_request *req);
/* The connection of the session is gone. */
void run_conn_gone(struct run_session *s);
/* The connection can take more output. */
void run_conn_drained(struct run_session *s);
/* The process of a session: exec done (0) or failed (-errno). */
void run_proc_exec(struct run_session *s, struct mproc *p, int err, const char *what);
void run_proc_exited(struct run_session *s, struct mproc *p);
/* A node went DOWN: end the sessions that involve it. */
void run_node_down(struct node_daemon *d, uint32_t node);
void run_free_all(struct node_daemon *d);
/* Migration of a process attached to a `ghost run`: its session follows it.
 * At the source: may p move (or be forked)? 0 or -errno with a message. */
int run_move_check(struct node_daemon *d, struct mproc *p, char *msg, size_t size);
/* At the source: append the session's part of MOVE_PREPARE to b (nothing
 * for a detached process). */
int run_move_prepare(struct node_daemon *d, struct mproc *p, struct buf *b);
/* At the source: the copy is held on node to, the original is stopped and
 * about to be killed: hand its session over (before MOVE_COMMIT is sent). */
void run_move_commit(struct node_daemon *d, struct mproc *p, uint32_t to, uint64_t xfer);
/* At the destination, for the move (from, xfer) of pid described by the
 * MOVE_PREPARE payload: create the process's stdio for the import worker in
 * stdio (-1: none; the caller closes them once the worker has them). 0 or
 * -errno with a message. */
int run_arrival_prepare(struct node_daemon *d, uint32_t from, uint64_t xfer, pid_t pid, bool fork,
			const void *data, size_t len, int stdio[3], char *msg, size_t size);
/* At the destination: the move committed; p runs. */
void run_arrival_commit(struct node_daemon *d, uint32_t from, uint64_t xfer, struct mproc *p);
/* At the destination: the move ended; drop its stdio unless it committed. */
void run_arrival_drop(struct node_daemon *d, uint32_t from, uint64_t xfer);

/* client.c: the client side of the control protocol, shared with dsclient.c */
struct client {
	int fd;
	const char *path;
	struct buf in;
	size_t in_off;
};

/* Connect to the daemon at path (NULL: node_control_path()); answers are
 * awaited for at most a minute. */
int client_connect(struct client *cl, const char *path, struct buf *err);
void client_release(struct client *cl);
/* Send one frame, with fds (at most CTL_FRAME_FDS; may be NULL) attached to
 * its first byte. */
int client_send(struct client *cl, uint16_t type, const struct buf *payload, const int *fds,
		size_t n_fds);
/* The next whole frame in the input buffer, if there is one: 1 and the
 * frame, 0, or -errno. The payload is valid until the next call. */
int client_take_frame(struct client *cl, uint16_t *ret_type, const void **ret_payload,
		      size_t *ret_len);
/* The connection failed with r (0: end of file): -errno with a message. */
int client_lost(struct client *cl, int r, struct buf *err);
/* Turn a CTL_ERROR into -errno and its message. */
int client_error_frame(const void *payload, size_t len, struct buf *err, uint32_t *ret_flags);

/* req.c: ps, kill, logs across nodes */
void req_register(struct node_daemon *d);
void req_request(struct node_daemon *d, struct ctl_conn *c, const struct ctl_request *req);
void req_conn_gone(struct pending *p);
void req_conn_drained(struct pending *p);
void req_node_down(struct node_daemon *d, uint32_t node);
void req_free_all(struct node_daemon *d);

#endif

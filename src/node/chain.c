/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Chains: the writers of a pipe or named FIFO that run on another node than
 * its readers (the report's FIFO streams, docs/ghostd.md "Streams"). The
 * readers keep the pipe itself on their node R. A writer that leaves R (or
 * the copy `ghost fork` makes of a writer elsewhere) gets, on its node X,
 * the write end of a pump: a pipe in packet mode (O_DIRECT), where each
 * write of up to PIPE_BUF bytes is one packet. X's daemon reads the pump a
 * packet at a time and sends the packets to R's daemon, which writes each
 * with one write() into a write description of the pipe of its own: a
 * record of up to PIPE_BUF bytes stays whole next to the other writers',
 * local ones included, as it would on one node. The data goes from X to R
 * and nowhere else: a writer that moves on from X to Y gets a chain of
 * its own from Y.
 *
 *   X (the writers' node)                     R (the readers' node)
 *   CHAIN_OPEN (the pipe, after) ----------->  open a write description
 *                   <-----------------------  CHAIN_OPENED (or: no reader left)
 *   CHAIN_DATA (packets) ------------------->  write each packet, in order;
 *                                              EAGAIN: wait until writable
 *                   <-----------------------  CHAIN_ACK (bytes written)
 *   CHAIN_FLUSH (bytes sent) --------------->  (a writer moves: all is here)
 *                   <-----------------------  CHAIN_FLUSHED
 *   CHAIN_END (the pump's end of file) ----->  write the rest, close
 *                   <-----------------------  CHAIN_CLOSED (no reader left:
 *                                              X closes the pump, its
 *                                              writers get EPIPE)
 *
 * A chain on X (struct chain_out) and on R (struct chain_in):
 *
 *   X:  new --start: OPEN--> open --the pump's end of file: END--> ended
 *                             |
 *                             +--CLOSED, R down or out of reach--> closed (pump closed)
 *       ended, closed --every OPENED/FLUSHED awaited has come--> freed
 *
 *   R:  OPEN --A_AFTER--> waiting --that chain wrote A_OFFSET, or is gone--> writing
 *         |                                                                   ^
 *         +-------------------------------------------------------------------+
 *       writing --END, and all written--> freed
 *       waiting, writing --no reader left: CLOSED sent--> freed
 *
 * Invariants:
 *   1. X reads a pump only while fewer than CHAIN_WINDOW bytes it sent are
 *      unacknowledged (a flush apart, which takes what the pump holds): a
 *      slow reader holds the writers back, as a full pipe does.
 *   2. R writes a chain's packets in order, each with one write(). A chain
 *      that comes after another (its writer moved on: A_AFTER, A_OFFSET)
 *      writes nothing until the other has written the bytes sent before
 *      the move (or is gone): each writer's records keep their order.
 *   3. R holds a write description of the pipe exactly while a chain to it
 *      is open, so its readers see end of file once every writer
 *      everywhere has closed its end, and only then.
 *   4. X never holds a pump's write end: the pump's end of file is its
 *      writers'.
 *   5. A chain a move makes is open at R (CHAIN_OPENED) before the move
 *      commits, so the writer's new chain holds the pipe open before its
 *      old chain can end.
 *
 *   event                              function
 *   the pump is readable (X)           on_pump_io() -> pump_send()
 *   CHAIN_OPEN, _DATA, _FLUSH, _END    on_open(), on_data(), on_flush(), on_end()
 *   the pipe is writable, or has no
 *   reader left (R)                    on_merge_io() -> merge()
 *   CHAIN_OPENED, _FLUSHED, _ACK,
 *   _CLOSED (X)                        on_answer(), on_ack(), on_closed()
 *   node down                          chain_node_down()
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_PREFIX "chain"
#include "base/fileio.h"
#include "base/log.h"
#include "node/node-int.h"
#include "base/banned.h"

/* Bytes a chain may have sent and not seen written. */
#define CHAIN_WINDOW (256u << 10)
/* Bytes of packets per CHAIN_DATA. */
#define CHAIN_BATCH (64u << 10)
/* A queue this long at R comes from a sender that ignores the window. */
#define CHAIN_QUEUE_MAX (16u << 20)
/* A packet read from a pump: one write of the writer, or a part of one
 * above a page (the kernel cuts those into pages); more than either. */
#define PACKET_MAX 65536

/* An answer X awaits from R for a stream operation. */
struct chain_req {
	struct chain_req *next;
	uint32_t type;         /* STREAM_CHAIN_OPENED or STREAM_CHAIN_FLUSHED */
	struct chain_ctx ctx;
	chain_answer_fn fn;
};

/* X: the pump of the writers of a pipe whose readers are on another node. */
struct chain_out {
	struct chain_out *next, *prev;
	struct node_daemon *d;
	uint64_t id;
	uint32_t reader;       /* R */
	pid_t pid;             /* the first process that writes into it (logs) */
	uint64_t pipe_dev, pipe_ino;  /* the pipe, on R */
	int pump;              /* its read end, non-blocking */
	uint64_t pump_dev, pump_ino;
	struct loop_io *io;    /* while the window has room */
	uint64_t sent, acked;
	bool started;
	bool ended;            /* end of file sent */
	bool closed;           /* R has no reader left, or is gone: the pump is closed */
	struct chain_req *reqs;
};

/* R: one chain's packets on their way into the pipe. */
struct chain_in {
	struct chain_in *next, *prev;
	struct node_daemon *d;
	uint64_t id;
	uint32_t writer;       /* X */
	pid_t pid;
	uint64_t pipe_dev, pipe_ino;
	int fd;                /* our write description of the pipe, O_NONBLOCK */
	struct loop_io *io;    /* its errors; writable, while a packet waits */
	struct buf queue;      /* packets: u32 length, bytes */
	size_t head;           /* the next packet in queue */
	size_t part;           /* bytes of it written (a packet above PIPE_BUF) */
	uint64_t written, acked;
	bool ended;
	uint64_t after_id, after_off;  /* invariant 2: 0 once met */
};

/* R: a stream operation waiting for a chain to write up to an offset. */
struct chain_wait {
	struct chain_wait *next, *prev;
	struct node_daemon *d;
	struct chain_ctx ctx;
	chain_answer_fn fn;
	uint64_t after_id, after_off;
	struct loop_timer *timer;
};

struct chain_mgr {
	struct chain_out *outs;
	struct chain_in *ins;
	struct chain_wait *waits;
};

static struct chain_mgr *cmgr(struct node_daemon *d)
{
	return d->chains;
}

static unsigned char packet[PACKET_MAX];

/* ---- messages --------------------------------------------------------------- */

static bool ctx_eq(const struct chain_ctx *a, const struct chain_ctx *b)
{
	return a->coord == b->coord && a->xfer == b->xfer && a->id == b->id &&
	       a->index == b->index;
}

static int put_ctx(struct buf *b, const struct chain_ctx *ctx)
{
	int r = attr_put_u32(b, A_ORIGIN, ctx->coord);

	if (r >= 0)
		r = attr_put_u64(b, A_XFER, ctx->xfer);
	if (r >= 0)
		r = attr_put_u64(b, A_STREAM, ctx->id);
	if (r >= 0)
		r = attr_put_u32(b, A_INDEX, ctx->index);
	return r;
}

/* The attributes of a message: its chain, offset, errno and asker. */
struct chain_msg {
	uint64_t chain, offset, dev, ino, after;
	uint32_t err;
	pid_t pid;
	struct chain_ctx ctx;
};

static void parse_msg(const void *data, size_t len, struct chain_msg *m)
{
	struct attr_iter it;
	struct attr a;
	uint32_t v;

	memset(m, 0, sizeof(*m));
	attr_iter_init(&it, data, len);
	while (attr_next(&it, &a) > 0) {
		switch (a.type) {
		case A_CHAIN:
			(void)attr_u64(&a, &m->chain);
			break;
		case A_OFFSET:
			(void)attr_u64(&a, &m->offset);
			break;
		case A_DEV:
			(void)attr_u64(&a, &m->dev);
			break;
		case A_INODE:
			(void)attr_u64(&a, &m->ino);
			break;
		case A_AFTER:
			(void)attr_u64(&a, &m->after);
			break;
		case A_ERRNO:
			(void)attr_u32(&a, &m->err);
			break;
		case A_PID:
			if (attr_u32(&a, &v) >= 0)
				m->pid = (pid_t)v;
			break;
		case A_ORIGIN:
			(void)attr_u32(&a, &m->ctx.coord);
			break;
		case A_XFER:
			(void)attr_u64(&a, &m->ctx.xfer);
			break;
		case A_STREAM:
			(void)attr_u64(&a, &m->ctx.id);
			break;
		case A_INDEX:
			(void)attr_u32(&a, &m->ctx.index);
			break;
		default:
			break;
		}
	}
}

/* A message about chain id with an offset (and, if ctx, the asker's ids). */
static int send_chain(struct node_daemon *d, uint32_t node, uint32_t type, uint64_t id,
		      uint64_t offset, const struct chain_ctx *ctx)
{
	struct buf b = BUF_INIT;
	int r;

	r = attr_put_u64(&b, A_CHAIN, id);
	if (r >= 0)
		r = attr_put_u64(&b, A_OFFSET, offset);
	if (r >= 0 && ctx)
		r = put_ctx(&b, ctx);
	if (r >= 0)
		r = msg_send(d->msg, node, NODE_CH_STREAM, type, b.data, b.len);
	buf_release(&b);
	return r;
}

/* ---- X: pumps ---------------------------------------------------------------- */

static struct chain_out *out_find(struct node_daemon *d, uint64_t id)
{
	for (struct chain_out *co = cmgr(d)->outs; co; co = co->next)
		if (co->id == id)
			return co;
	return NULL;
}

struct chain_out *chain_out_by_pump(struct node_daemon *d, uint64_t dev, uint64_t ino)
{
	for (struct chain_out *co = cmgr(d)->outs; co; co = co->next)
		if (co->pump >= 0 && co->pump_dev == dev && co->pump_ino == ino)
			return co;
	return NULL;
}

uint64_t chain_out_id(const struct chain_out *co)
{
	return co->id;
}

uint32_t chain_out_reader(const struct chain_out *co)
{
	return co->reader;
}

void chain_out_pipe(const struct chain_out *co, uint64_t *ret_dev, uint64_t *ret_ino)
{
	*ret_dev = co->pipe_dev;
	*ret_ino = co->pipe_ino;
}

static void out_free(struct chain_out *co)
{
	struct node_daemon *d = co->d;

	while (co->reqs) {
		struct chain_req *q = co->reqs;

		co->reqs = q->next;
		free(q);
	}
	co->io = loop_io_free(co->io);
	co->pump = safe_close(co->pump);
	LIST_REMOVE(cmgr(d)->outs, co);
	free(co);
}

/* Close the pump: its writers get EPIPE from now on. */
static void out_close(struct chain_out *co)
{
	co->io = loop_io_free(co->io);
	co->pump = safe_close(co->pump);
	co->closed = true;
}

/* Forget a chain that has nothing left to do. */
static void out_gc(struct chain_out *co)
{
	if ((co->ended || co->closed) && !co->reqs)
		out_free(co);
}

/* Answer every request of a chain that cannot be answered any more. */
static void out_fail_reqs(struct chain_out *co, int err)
{
	while (co->reqs) {
		struct chain_req *q = co->reqs;

		co->reqs = q->next;
		q->fn(co->d, &q->ctx, err, co->sent);
		free(q);
	}
}

static void on_pump_io(struct loop_io *io, int fd, unsigned events, void *userdata);

/* Watch the pump while the window has room (invariant 1). */
static void out_watch(struct chain_out *co)
{
	bool room = co->sent - co->acked < CHAIN_WINDOW;

	if (co->ended || co->closed || !co->started || !room) {
		co->io = loop_io_free(co->io);
		return;
	}
	if (!co->io && loop_io_new(co->d->loop, co->pump, LOOP_READ, on_pump_io, co, &co->io) < 0) {
		log_warn("cannot watch the pump of chain %llx: closing it",
			 (unsigned long long)co->id);
		out_close(co);
	}
}

static int send_batch(struct chain_out *co, struct buf *b)
{
	int r = msg_send(co->d->msg, co->reader, NODE_CH_STREAM, STREAM_CHAIN_DATA, b->data, b->len);

	buf_reset(b);
	return r;
}

/* Read packets from the pump and send them to R: while the window has room,
 * or, for a flush, what the pump holds now. A failure to reach R closes the
 * pump; its end of file ends the chain. */
static void pump_send(struct chain_out *co, bool flush)
{
	struct buf b = BUF_INIT;
	size_t want = 0, got = 0;
	bool eof = false;
	int r = 0;

	if (co->pump < 0)
		return;
	if (flush) {
		int avail = 0;

		if (ioctl(co->pump, FIONREAD, &avail) == 0 && avail > 0)
			want = (size_t)avail;
	}
	for (;;) {
		ssize_t n;

		if (flush ? got >= want : co->sent - co->acked >= CHAIN_WINDOW)
			break;
		if (b.len >= CHAIN_BATCH && (r = send_batch(co, &b)) < 0)
			break;
		n = read(co->pump, packet, sizeof(packet));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			/* Not a pipe error we know: its writers are better told. */
			log_warn_errno(errno, "cannot read the pump of chain %llx",
				       (unsigned long long)co->id);
			eof = true;
			break;
		}
		if (n == 0) {
			eof = true;
			break;
		}
		if (b.len == 0)
			r = attr_put_u64(&b, A_CHAIN, co->id);
		if (r >= 0)
			r = attr_put(&b, A_DATA, packet, (size_t)n);
		if (r < 0)
			break;
		co->sent += (uint64_t)n;
		got += (size_t)n;
	}
	if (r >= 0 && b.len)
		r = send_batch(co, &b);
	buf_release(&b);
	if (r >= 0 && eof) {
		r = send_chain(co->d, co->reader, STREAM_CHAIN_END, co->id, co->sent, NULL);
		if (r >= 0) {
			log_info("chain %llx of process %d ended: %llu bytes sent to node %u",
				 (unsigned long long)co->id, (int)co->pid,
				 (unsigned long long)co->sent, co->reader);
			co->ended = true;
			co->io = loop_io_free(co->io);
			co->pump = safe_close(co->pump);
			return;
		}
	}
	if (r < 0) {
		log_warn_errno(r, "chain %llx of process %d: its writers get EPIPE, for it cannot "
				  "send to node %u",
			       (unsigned long long)co->id, (int)co->pid, co->reader);
		out_close(co);
		return;
	}
	out_watch(co);
}

static void on_pump_io(struct loop_io *io, int fd, unsigned events, void *userdata)
{
	struct chain_out *co = userdata;

	(void)io;
	(void)fd;
	(void)events;
	pump_send(co, false);
	out_gc(co);
}

int chain_out_new(struct node_daemon *d, uint64_t id, uint32_t reader, uint64_t pipe_dev,
		  uint64_t pipe_ino, struct chain_out **ret, int *ret_fd)
{
	struct chain_out *co;
	struct stat st;
	int p[2];

	/* Non-blocking for us; the writer's end gets its own status flags
	 * when it is installed, O_DIRECT kept. */
	if (pipe2(p, O_CLOEXEC | O_DIRECT | O_NONBLOCK) < 0)
		return -errno;
	co = calloc(1, sizeof(*co));
	if (!co || fstat(p[0], &st) < 0) {
		free(co);
		safe_close(p[0]);
		safe_close(p[1]);
		return -ENOMEM;
	}
	co->d = d;
	co->id = id;
	co->reader = reader;
	co->pipe_dev = pipe_dev;
	co->pipe_ino = pipe_ino;
	co->pump = p[0];
	co->pump_dev = st.st_dev;
	co->pump_ino = st.st_ino;
	LIST_PREPEND(cmgr(d)->outs, co);
	*ret = co;
	*ret_fd = p[1];
	return 0;
}

void chain_out_drop(struct chain_out *co)
{
	if (co)
		out_free(co);
}

static int add_req(struct chain_out *co, uint32_t type, const struct chain_ctx *ctx,
		   chain_answer_fn fn)
{
	struct chain_req *q = calloc(1, sizeof(*q)), **pp;

	if (!q)
		return -ENOMEM;
	q->type = type;
	q->ctx = *ctx;
	q->fn = fn;
	for (pp = &co->reqs; *pp; pp = &(*pp)->next)
		;
	*pp = q;
	return 0;
}

int chain_out_start(struct chain_out *co, pid_t pid, uint64_t after_id, uint64_t after_off,
		    const struct chain_ctx *ctx, chain_answer_fn fn)
{
	struct buf b = BUF_INIT;
	int r;

	co->pid = pid;
	r = add_req(co, STREAM_CHAIN_OPENED, ctx, fn);
	if (r >= 0)
		r = attr_put_u64(&b, A_CHAIN, co->id);
	if (r >= 0)
		r = attr_put_u64(&b, A_DEV, co->pipe_dev);
	if (r >= 0)
		r = attr_put_u64(&b, A_INODE, co->pipe_ino);
	if (r >= 0)
		r = attr_put_u32(&b, A_PID, (uint32_t)pid);
	if (r >= 0 && after_id)
		r = attr_put_u64(&b, A_AFTER, after_id);
	if (r >= 0 && after_id)
		r = attr_put_u64(&b, A_OFFSET, after_off);
	if (r >= 0)
		r = put_ctx(&b, ctx);
	if (r >= 0)
		r = msg_send(co->d->msg, co->reader, NODE_CH_STREAM, STREAM_CHAIN_OPEN, b.data,
			     b.len);
	buf_release(&b);
	if (r < 0) {
		out_free(co);
		return r;
	}
	co->started = true;
	log_info("chain %llx: process %d writes from here into the pipe of node %u%s",
		 (unsigned long long)co->id, (int)pid, co->reader,
		 after_id ? " after its previous chain" : "");
	out_watch(co);
	return 0;
}

int chain_out_flush(struct chain_out *co, const struct chain_ctx *ctx, chain_answer_fn fn)
{
	int r;

	pump_send(co, true);
	r = add_req(co, STREAM_CHAIN_FLUSHED, ctx, fn);
	if (r < 0)
		return r;
	r = send_chain(co->d, co->reader, STREAM_CHAIN_FLUSH, co->id, co->sent, ctx);
	if (r < 0) {
		/* Nothing will answer: the request goes with the chain. */
		out_close(co);
		out_fail_reqs(co, r);
		out_gc(co);
	}
	return 0;
}

/* CHAIN_OPENED or CHAIN_FLUSHED: the request it answers. */
static void on_answer(struct node_daemon *d, uint32_t node, uint32_t type,
		      const struct chain_msg *m)
{
	struct chain_out *co = out_find(d, m->chain);
	struct chain_req **pp, *q = NULL;

	if (!co || co->reader != node)
		return;
	for (pp = &co->reqs; *pp; pp = &(*pp)->next)
		if ((*pp)->type == type && ctx_eq(&(*pp)->ctx, &m->ctx)) {
			q = *pp;
			*pp = q->next;
			break;
		}
	if (type == STREAM_CHAIN_OPENED && m->err) {
		log_info("chain %llx of process %d: no reader of the pipe is left on node %u",
			 (unsigned long long)co->id, (int)co->pid, node);
		out_close(co);
	}
	if (q) {
		/* No reader left is no failure: the writer gets EPIPE, as it would
		 * where it was. */
		q->fn(d, &q->ctx, 0, m->offset);
		free(q);
	}
	out_gc(co);
}

static void on_ack(struct node_daemon *d, uint32_t node, const struct chain_msg *m)
{
	struct chain_out *co = out_find(d, m->chain);

	if (!co || co->reader != node || m->offset <= co->acked || m->offset > co->sent)
		return;
	co->acked = m->offset;
	out_watch(co);
}

static void on_closed(struct node_daemon *d, uint32_t node, const struct chain_msg *m)
{
	struct chain_out *co = out_find(d, m->chain);

	if (!co || co->reader != node || co->closed)
		return;
	log_info("chain %llx of process %d: the readers on node %u are gone, %llu bytes sent: "
		 "its writers get EPIPE",
		 (unsigned long long)co->id, (int)co->pid, node, (unsigned long long)co->sent);
	out_close(co);
	out_gc(co);
}

/* ---- R: merging into the pipe ------------------------------------------------- */

static struct chain_in *in_find(struct node_daemon *d, uint64_t id)
{
	for (struct chain_in *ci = cmgr(d)->ins; ci; ci = ci->next)
		if (ci->id == id)
			return ci;
	return NULL;
}

bool chain_merges(struct node_daemon *d, uint64_t dev, uint64_t ino)
{
	for (struct chain_in *ci = cmgr(d)->ins; ci; ci = ci->next)
		if (ci->fd >= 0 && ci->pipe_dev == dev && ci->pipe_ino == ino)
			return true;
	return false;
}

/* Has chain id written off bytes? A chain that is gone has written all it
 * ever will (invariant 2). */
static bool after_done(struct node_daemon *d, uint64_t id, uint64_t off)
{
	struct chain_in *ci;

	if (id == 0)
		return true;
	ci = in_find(d, id);
	return !ci || ci->written >= off;
}

static void merge(struct chain_in *ci);

/* Chain id wrote more, or is gone: what waited for it goes on. */
static void kick(struct node_daemon *d, uint64_t id)
{
	bool again = true;

	while (again) {
		again = false;
		for (struct chain_wait *w = cmgr(d)->waits; w; w = w->next) {
			if (w->after_id != id || !after_done(d, id, w->after_off))
				continue;
			LIST_REMOVE(cmgr(d)->waits, w);
			loop_timer_free(w->timer);
			w->fn(d, &w->ctx, 0, w->after_off);
			free(w);
			again = true;
			break;
		}
		if (again)
			continue;
		for (struct chain_in *ci = cmgr(d)->ins; ci; ci = ci->next) {
			if (ci->after_id != id || !after_done(d, id, ci->after_off))
				continue;
			/* merge() may free any chain: look again from the start. */
			ci->after_id = 0;
			merge(ci);
			again = true;
			break;
		}
	}
}

/* Forget a chain; tell X when its writers must learn there is no reader. */
static void in_free(struct chain_in *ci, bool no_reader)
{
	struct node_daemon *d = ci->d;
	uint64_t id = ci->id;

	if (no_reader) {
		log_info("chain %llx from node %u: the pipe has no reader left, %llu bytes written",
			 (unsigned long long)id, ci->writer, (unsigned long long)ci->written);
		(void)send_chain(d, ci->writer, STREAM_CHAIN_CLOSED, id, ci->written, NULL);
	} else {
		log_info("chain %llx from node %u ended: %llu bytes written into the pipe",
			 (unsigned long long)id, ci->writer, (unsigned long long)ci->written);
	}
	ci->io = loop_io_free(ci->io);
	ci->fd = safe_close(ci->fd);
	buf_release(&ci->queue);
	LIST_REMOVE(cmgr(d)->ins, ci);
	free(ci);
	kick(d, id);
}

/* Write the queued packets, each whole, in order (invariant 2). */
static void merge(struct chain_in *ci)
{
	struct node_daemon *d = ci->d;
	uint64_t before = ci->written;
	bool blocked = false;

	if (!after_done(d, ci->after_id, ci->after_off))
		return;
	ci->after_id = 0;
	while (ci->head < ci->queue.len) {
		uint32_t len;
		ssize_t n;

		memcpy(&len, ci->queue.data + ci->head, sizeof(len));
		n = write(ci->fd, ci->queue.data + ci->head + sizeof(len) + ci->part,
			  len - ci->part);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			blocked = true;
			break;
		}
		if (n < 0) {
			if (errno != EPIPE)
				log_warn_errno(errno, "cannot write chain %llx into the pipe",
					       (unsigned long long)ci->id);
			in_free(ci, true);
			return;
		}
		ci->part += (size_t)n;
		ci->written += (uint64_t)n;
		if (ci->part == len) {
			ci->head += sizeof(len) + len;
			ci->part = 0;
		}
	}
	if (ci->head == ci->queue.len) {
		buf_reset(&ci->queue);
		ci->head = 0;
	} else if (ci->head > CHAIN_WINDOW) {
		memmove(ci->queue.data, ci->queue.data + ci->head, ci->queue.len - ci->head);
		ci->queue.len -= ci->head;
		ci->head = 0;
	}
	if (loop_io_set_events(ci->io, blocked ? LOOP_WRITE : 0) < 0) {
		log_warn("cannot watch the pipe of chain %llx", (unsigned long long)ci->id);
		in_free(ci, true);
		return;
	}
	if (ci->written - ci->acked >= CHAIN_WINDOW / 4 ||
	    (ci->queue.len == 0 && ci->written > ci->acked)) {
		if (send_chain(d, ci->writer, STREAM_CHAIN_ACK, ci->id, ci->written, NULL) >= 0)
			ci->acked = ci->written;
	}
	if (ci->queue.len == 0 && ci->ended) {
		in_free(ci, false);
		return;
	}
	if (ci->written != before)
		kick(d, ci->id);
}

static void on_merge_io(struct loop_io *io, int fd, unsigned events, void *userdata)
{
	struct chain_in *ci = userdata;

	(void)io;
	(void)fd;
	if (events & LOOP_ERROR) {
		/* A write end polls an error once its pipe has no reader. */
		in_free(ci, true);
		return;
	}
	merge(ci);
}

/* A write description of the pipe, through fd (ours or a holder's). */
static int open_through(const char *path, uint64_t dev, uint64_t ino, int *ret_fd)
{
	struct stat st;
	int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode) || st.st_dev != dev || st.st_ino != ino) {
		safe_close(fd);
		return -ESTALE;
	}
	*ret_fd = fd;
	return 0;
}

int chain_pipe_open(struct node_daemon *d, uint64_t dev, uint64_t ino, int *ret_fd)
{
	char path[64];
	struct dirent *de;
	DIR *proc;
	int r = -ENOENT;

	for (struct chain_in *ci = cmgr(d)->ins; ci; ci = ci->next) {
		if (ci->fd < 0 || ci->pipe_dev != dev || ci->pipe_ino != ino)
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", ci->fd);
		r = open_through(path, dev, ino, ret_fd);
		if (r != -ESTALE)
			return r;
	}
	/* Through any process of this node that holds it, reader or writer. */
	proc = opendir("/proc");
	if (!proc)
		return -errno;
	while ((de = readdir(proc))) {
		struct dirent *fe;
		pid_t q;
		DIR *fds;

		if (parse_pid(de->d_name, &q) < 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd", (int)q);
		fds = opendir(path);
		if (!fds)
			continue;
		while ((fe = readdir(fds))) {
			struct stat st;
			int fd;

			if (parse_int(fe->d_name, &fd) < 0)
				continue;
			snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)q, fd);
			if (stat(path, &st) < 0 || st.st_dev != dev || st.st_ino != ino)
				continue;
			r = open_through(path, dev, ino, ret_fd);
			if (r != -ESTALE && r != -ENOENT)
				break;
		}
		closedir(fds);
		if (r != -ESTALE && r != -ENOENT)
			break;
	}
	closedir(proc);
	return r == -ESTALE ? -ENOENT : r;
}

static void on_open(struct node_daemon *d, uint32_t node, const struct chain_msg *m)
{
	struct chain_in *ci;
	struct buf b = BUF_INIT;
	int fd = -1, r;

	if (in_find(d, m->chain))
		return; /* msg never repeats a message */
	r = chain_pipe_open(d, m->dev, m->ino, &fd);
	ci = r >= 0 ? calloc(1, sizeof(*ci)) : NULL;
	if (ci) {
		ci->d = d;
		ci->id = m->chain;
		ci->writer = node;
		ci->pid = m->pid;
		ci->pipe_dev = m->dev;
		ci->pipe_ino = m->ino;
		ci->fd = fd;
		ci->after_id = m->after;
		ci->after_off = m->offset;
		if (loop_io_new(d->loop, fd, 0, on_merge_io, ci, &ci->io) < 0) {
			free(ci);
			ci = NULL;
			r = -ENOMEM;
		}
	}
	if (!ci) {
		safe_close(fd);
		/* No reader left here (or none ever will be): the writer gets EPIPE. */
		if (r == -ENXIO || r == -ENOENT)
			log_info("chain %llx from node %u (process %d): the pipe has no reader "
				 "left here",
				 (unsigned long long)m->chain, node, (int)m->pid);
		else
			log_warn_errno(r, "chain %llx from node %u (process %d): cannot open the "
					  "pipe",
				       (unsigned long long)m->chain, node, (int)m->pid);
	} else {
		LIST_PREPEND(cmgr(d)->ins, ci);
		log_info("chain %llx from node %u: process %d writes into pipe %llu here%s",
			 (unsigned long long)ci->id, node, (int)ci->pid,
			 (unsigned long long)ci->pipe_ino,
			 ci->after_id ? " after its previous chain" : "");
	}
	if (attr_put_u64(&b, A_CHAIN, m->chain) >= 0 &&
	    attr_put_u32(&b, A_ERRNO, ci ? 0 : EPIPE) >= 0 && put_ctx(&b, &m->ctx) >= 0)
		(void)msg_send(d->msg, node, NODE_CH_STREAM, STREAM_CHAIN_OPENED, b.data, b.len);
	buf_release(&b);
}

static void on_data(struct node_daemon *d, uint32_t node, const void *data, size_t len)
{
	struct chain_in *ci = NULL;
	struct attr_iter it;
	struct attr a;
	uint64_t id;

	attr_iter_init(&it, data, len);
	while (attr_next(&it, &a) > 0) {
		if (a.type == A_CHAIN && attr_u64(&a, &id) >= 0) {
			ci = in_find(d, id);
			if (!ci || ci->writer != node)
				return; /* closed: its writer has been told */
		} else if (a.type == A_DATA && ci) {
			uint32_t n = (uint32_t)a.len;

			if (ci->queue.len + a.len > CHAIN_QUEUE_MAX ||
			    buf_append(&ci->queue, &n, sizeof(n)) < 0 ||
			    buf_append(&ci->queue, a.data, a.len) < 0) {
				log_warn("chain %llx from node %u: cannot keep %zu more bytes",
					 (unsigned long long)ci->id, node, ci->queue.len);
				in_free(ci, true);
				return;
			}
		}
	}
	if (ci)
		merge(ci);
}

static void on_flush(struct node_daemon *d, uint32_t node, const struct chain_msg *m)
{
	/* Everything the chain sent before this is here (msg keeps the order). */
	(void)send_chain(d, node, STREAM_CHAIN_FLUSHED, m->chain, m->offset, &m->ctx);
}

static void on_end(struct node_daemon *d, uint32_t node, const struct chain_msg *m)
{
	struct chain_in *ci = in_find(d, m->chain);

	if (!ci || ci->writer != node)
		return;
	ci->ended = true;
	if (ci->queue.len == 0)
		in_free(ci, false);
	else
		merge(ci);
}

static void on_wait_timer(struct loop_timer *t, void *userdata)
{
	struct chain_wait *w = userdata;
	struct node_daemon *d = w->d;

	(void)t;
	LIST_REMOVE(cmgr(d)->waits, w);
	loop_timer_free(w->timer);
	w->fn(d, &w->ctx, -ETIMEDOUT, 0);
	free(w);
}

int chain_wait(struct node_daemon *d, uint64_t after_id, uint64_t after_off, unsigned timeout_ms,
	       const struct chain_ctx *ctx, chain_answer_fn fn)
{
	struct chain_wait *w;

	if (after_done(d, after_id, after_off))
		return 1;
	w = calloc(1, sizeof(*w));
	if (!w || loop_timer_new(d->loop, on_wait_timer, w, &w->timer) < 0) {
		free(w);
		return -ENOMEM;
	}
	w->d = d;
	w->ctx = *ctx;
	w->fn = fn;
	w->after_id = after_id;
	w->after_off = after_off;
	loop_timer_arm(w->timer, (uint64_t)timeout_ms * 1000);
	LIST_PREPEND(cmgr(d)->waits, w);
	return 0;
}

void chain_wait_cancel(struct node_daemon *d, const struct chain_ctx *ctx)
{
	struct chain_wait *w, *next;

	for (w = cmgr(d)->waits; w; w = next) {
		next = w->next;
		if (!ctx_eq(&w->ctx, ctx))
			continue;
		LIST_REMOVE(cmgr(d)->waits, w);
		loop_timer_free(w->timer);
		free(w);
	}
}

/* ---- both -------------------------------------------------------------------- */

void chain_recv(struct node_daemon *d, uint32_t node, uint32_t type, const void *data,
		size_t len)
{
	struct chain_msg m;

	if (type == STREAM_CHAIN_DATA) {
		on_data(d, node, data, len);
		return;
	}
	parse_msg(data, len, &m);
	switch (type) {
	case STREAM_CHAIN_OPEN:
		on_open(d, node, &m);
		break;
	case STREAM_CHAIN_FLUSH:
		on_flush(d, node, &m);
		break;
	case STREAM_CHAIN_END:
		on_end(d, node, &m);
		break;
	case STREAM_CHAIN_OPENED:
	case STREAM_CHAIN_FLUSHED:
		on_answer(d, node, type, &m);
		break;
	case STREAM_CHAIN_ACK:
		on_ack(d, node, &m);
		break;
	case STREAM_CHAIN_CLOSED:
		on_closed(d, node, &m);
		break;
	default:
		break;
	}
}

int chain_init(struct node_daemon *d)
{
	d->chains = calloc(1, sizeof(struct chain_mgr));
	return d->chains ? 0 : -ENOMEM;
}

void chain_node_down(struct node_daemon *d, uint32_t node)
{
	struct chain_out *co, *con;
	struct chain_in *ci, *cin;

	if (!d->chains)
		return;
	/* Its readers are out of reach: our writers get EPIPE. */
	for (co = cmgr(d)->outs; co; co = con) {
		con = co->next;
		if (co->reader != node)
			continue;
		log_info("chain %llx of process %d: node %u is down: its writers get EPIPE",
			 (unsigned long long)co->id, (int)co->pid, node);
		out_close(co);
		out_fail_reqs(co, -EHOSTDOWN);
		out_free(co);
	}
	/* Its writers are gone: what they sent goes in, then the chain ends. */
	for (ci = cmgr(d)->ins; ci; ci = cin) {
		cin = ci->next;
		if (ci->writer != node)
			continue;
		ci->ended = true;
	}
	for (bool again = true; again;) {
		again = false;
		for (ci = cmgr(d)->ins; ci; ci = ci->next)
			if (ci->writer == node && ci->ended && ci->queue.len == 0) {
				in_free(ci, false);
				again = true;
				break;
			}
	}
}

void chain_free_all(struct node_daemon *d)
{
	if (!d->chains)
		return;
	while (cmgr(d)->outs)
		out_free(cmgr(d)->outs);
	while (cmgr(d)->ins) {
		struct chain_in *ci = cmgr(d)->ins;

		ci->io = loop_io_free(ci->io);
		safe_close(ci->fd);
		buf_release(&ci->queue);
		LIST_REMOVE(cmgr(d)->ins, ci);
		free(ci);
	}
	while (cmgr(d)->waits) {
		struct chain_wait *w = cmgr(d)->waits;

		LIST_REMOVE(cmgr(d)->waits, w);
		loop_timer_free(w->timer);
		free(w);
	}
	free(d->chains);
	d->chains = NULL;
}

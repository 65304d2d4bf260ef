/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Requests on the cluster's processes: ps (asks every node that is up),
 * kill, logs and migrate/fork (go to the PID's birth node, which knows where
 * the process runs now and forwards the request there once; a migration is
 * then run by move.c on that node, which reports progress and the outcome
 * straight to the asking node). Every request goes through
 * msg, to this node too, so that one path serves all. Answers go straight
 * back to the node that asked (A_ORIGIN).
 *
 * A request waiting for other nodes (struct pending):
 *
 *   client request --> WAITING --every answer--> answered, freed
 *                        |   \
 *                        |    +-- LOGS: a chunk --> more wanted: next chunk
 *                        |        (asked when the client has taken the last)
 *                        +-- node down, timeout: error (ps: a warning), freed
 *                        +-- client gone: freed, late answers dropped
 *
 * 1. A pending request is in d->pending until freed, and its connection
 *    points at it while both live.
 * 2. A ps request waits for exactly the nodes in waiting[].
 *
 *   event               function
 *   client request      req_request()
 *   a node's question   on_question() -> ps_answer(), kill_answer(), logs_answer()
 *   a node's answer     on_answer()
 *   node down           req_node_down()
 *   timeout             on_timeout()
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_PREFIX "req"
#include "base/log.h"
#include "node/node-int.h"
#include "base/banned.h"

#define REQ_TIMEOUT_USEC (10ull * 1000 * 1000)

enum pending_kind {
	PEND_PS,
	PEND_KILL,
	PEND_LOGS,
	PEND_MOVE,
};

struct pending {
	struct pending *next, *prev;
	struct node_daemon *d;
	enum pending_kind kind;
	uint64_t id;
	struct ctl_conn *conn;
	struct loop_timer *timer;
	uint32_t *waiting; /* PS */
	size_t n_waiting;
	uint32_t node;     /* KILL, LOGS, MOVE: the birth node asked */
	uint32_t current;  /* MOVE: the node moving it, once it reported */
	uint32_t to;       /* MOVE: the destination */
	uint32_t flags;    /* MOVE: MOVE_F_FORK */
	pid_t pid;
	uid_t uid;
	uint64_t offset;   /* LOGS */
	bool want_next;    /* LOGS: ask for the next chunk once the client drained */
};

static struct pending *pending_free(struct pending *p)
{
	if (!p)
		return NULL;
	LIST_REMOVE(p->d->pending, p);
	if (p->conn) {
		ctl_conn_set_pending(p->conn, NULL);
		p->conn = NULL;
	}
	p->timer = loop_timer_free(p->timer);
	free(p->waiting);
	free(p);
	return NULL;
}

/* End the request with an error to the client. */
static void pending_fail(struct pending *p, int err, const char *fmt, ...) _printf_(3, 4);
static void pending_fail(struct pending *p, int err, const char *fmt, ...)
{
	struct ctl_conn *c = p->conn;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pending_free(p);
	if (c)
		ctl_send_error(c, err, 0, "%s", msg);
}

/* End the request with this frame (CTL_OK, CTL_END). */
static void pending_done(struct pending *p, uint16_t type)
{
	struct ctl_conn *c = p->conn;

	pending_free(p);
	if (c && ctl_send(c, type, NULL) >= 0)
		ctl_finish(c);
}

static const char *down_text(struct node_daemon *d, uint32_t node)
{
	struct node_peer *peer = node_peer_find(d, node);

	return peer ? node_state_to_string(peer->state) : "unknown";
}

static void warn_client(struct ctl_conn *c, const char *fmt, ...) _printf_(2, 3);
static void warn_client(struct ctl_conn *c, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (attr_put_str(&b, A_MESSAGE, msg) >= 0)
		(void)ctl_send(c, CTL_WARNING, &b);
	buf_release(&b);
}

static void on_timeout(struct loop_timer *t, void *userdata)
{
	struct pending *p = userdata;

	(void)t;
	if (p->kind == PEND_PS) {
		for (size_t i = 0; i < p->n_waiting; i++)
			if (p->conn)
				warn_client(p->conn, "node %u did not answer: its processes are "
					    "not listed", p->waiting[i]);
		pending_done(p, CTL_END);
		return;
	}
	pending_fail(p, -ETIMEDOUT, "node %u did not answer in time", p->node);
}

static struct pending *pending_new(struct node_daemon *d, struct ctl_conn *c,
				   enum pending_kind kind)
{
	struct pending *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->d = d;
	p->kind = kind;
	p->id = node_new_id(d);
	if (loop_timer_new(d->loop, on_timeout, p, &p->timer) < 0) {
		free(p);
		return NULL;
	}
	loop_timer_arm(p->timer, REQ_TIMEOUT_USEC);
	LIST_PREPEND(d->pending, p);
	p->conn = c;
	ctl_conn_set_pending(c, p);
	return p;
}

static struct pending *pending_find(struct node_daemon *d, uint64_t id)
{
	for (struct pending *p = d->pending; p; p = p->next)
		if (p->id == id)
			return p;
	return NULL;
}

/* Ask node for the next part of a LOGS or a KILL. */
static int ask(struct pending *p, uint32_t type, int sig)
{
	struct node_daemon *d = p->d;
	struct buf b = BUF_INIT;
	int r;

	r = attr_put_u64(&b, A_REQ, p->id);
	if (r >= 0)
		r = attr_put_u32(&b, A_ORIGIN, d->self);
	if (r >= 0)
		r = attr_put_u32(&b, A_PID, (uint32_t)p->pid);
	if (r >= 0)
		r = attr_put_u32(&b, A_UID, (uint32_t)p->uid);
	if (r >= 0)
		r = attr_put_u32(&b, A_HOPS, 0);
	if (r >= 0 && type == PROC_KILL_REQ)
		r = attr_put_u32(&b, A_SIGNAL, (uint32_t)sig);
	if (r >= 0 && type == PROC_LOGS_REQ)
		r = attr_put_u64(&b, A_OFFSET, p->offset);
	if (r >= 0 && type == PROC_MOVE_REQ)
		r = attr_put_u32(&b, A_NODE, p->to);
	if (r >= 0 && type == PROC_MOVE_REQ && p->flags)
		r = attr_put_u32(&b, A_FLAGS, p->flags);
	if (r >= 0)
		r = msg_send(d->msg, p->node, NODE_CH_PROC, type, b.data, b.len);
	buf_release(&b);
	return r;
}

static void start_ps(struct node_daemon *d, struct ctl_conn *c, uint32_t flags)
{
	struct pending *p = pending_new(d, c, PEND_PS);
	struct buf b = BUF_INIT;
	int r;

	if (!p) {
		ctl_send_error(c, -ENOMEM, 0, "out of memory");
		return;
	}
	p->waiting = NEW_ARRAY(uint32_t, d->n_peers);
	r = p->waiting ? attr_put_u64(&b, A_REQ, p->id) : -ENOMEM;
	if (r >= 0)
		r = attr_put_u32(&b, A_FLAGS, flags);
	if (r < 0) {
		buf_release(&b);
		pending_fail(p, r, "out of memory");
		return;
	}
	for (size_t i = 0; i < d->n_peers; i++) {
		const struct node_peer *peer = &d->peers[i];

		if (peer->state != NODE_STATE_SELF && peer->state != NODE_STATE_UP) {
			warn_client(c, "node %u is %s: its processes are not listed", peer->id,
				    node_state_to_string(peer->state));
			continue;
		}
		r = msg_send(d->msg, peer->id, NODE_CH_PROC, PROC_PS_REQ, b.data, b.len);
		if (r < 0) {
			warn_client(c, "cannot ask node %u: %s", peer->id, strerror(-r));
			continue;
		}
		p->waiting[p->n_waiting++] = peer->id;
	}
	buf_release(&b);
	if (p->n_waiting == 0)
		pending_done(p, CTL_END);
}

static uint32_t question_type(enum pending_kind kind)
{
	switch (kind) {
	case PEND_KILL:
		return PROC_KILL_REQ;
	case PEND_LOGS:
		return PROC_LOGS_REQ;
	default:
		return PROC_MOVE_REQ;
	}
}

/* Start a KILL, LOGS or MOVE at the birth node of pid. */
static void start_routed(struct node_daemon *d, struct ctl_conn *c, enum pending_kind kind,
			 pid_t pid, int sig, uint32_t to, uint32_t flags)
{
	uint32_t birth = node_of_pid(d, pid);
	struct node_peer *peer;
	struct pending *p;
	int r;

	if (pid <= 0 || birth == 0) {
		ctl_send_error(c, -ESRCH,
			       0, "no managed process %d: no node hands out that PID", (int)pid);
		return;
	}
	peer = node_peer_find(d, birth);
	if (peer->state != NODE_STATE_SELF && peer->state != NODE_STATE_UP) {
		struct mproc *mp = proc_find(d, pid);

		/* It runs here (moved, or restarted from a memory checkpoint)
		 * while its birth node is down: this node answers for it. */
		if (mp && (mp->state == MPROC_RUNNING || mp->state == MPROC_EXITED))
			birth = d->self;
		else {
			ctl_send_error(c, -EHOSTDOWN, 0,
				       "process %d belongs to node %u, which is %s", (int)pid,
				       birth, node_state_to_string(peer->state));
			return;
		}
	}
	p = pending_new(d, c, kind);
	if (!p) {
		ctl_send_error(c, -ENOMEM, 0, "out of memory");
		return;
	}
	p->node = birth;
	p->pid = pid;
	p->uid = ctl_conn_uid(c);
	p->to = to;
	p->flags = flags;
	r = ask(p, question_type(kind), sig);
	if (r < 0)
		pending_fail(p, r, "cannot ask node %u: %s", birth, strerror(-r));
}

void req_request(struct node_daemon *d, struct ctl_conn *c, const struct ctl_request *req)
{
	struct attr_iter it;
	struct attr a;
	uint32_t flags = 0, pid = 0, sig = SIGTERM, node = 0;
	int r;

	attr_iter_init(&it, req->payload, req->len);
	while ((r = attr_next(&it, &a)) > 0) {
		if (a.type == A_FLAGS)
			r = attr_u32(&a, &flags);
		else if (a.type == A_PID)
			r = attr_u32(&a, &pid);
		else if (a.type == A_SIGNAL)
			r = attr_u32(&a, &sig);
		else if (a.type == A_NODE)
			r = attr_u32(&a, &node);
		if (r < 0)
			break;
	}
	if (r < 0) {
		ctl_send_error(c, -EBADMSG, 0, "malformed request");
		return;
	}
	switch (req->type) {
	case CTL_PS:
		start_ps(d, c, flags);
		break;
	case CTL_KILL:
		if (sig >= (uint32_t)NSIG) {
			ctl_send_error(c, -EINVAL, 0, "bad signal %u", sig);
			return;
		}
		start_routed(d, c, PEND_KILL, (pid_t)pid, (int)sig, 0, 0);
		break;
	case CTL_LOGS:
		start_routed(d, c, PEND_LOGS, (pid_t)pid, 0, 0, 0);
		break;
	case CTL_MIGRATE:
		if (!node_peer_find(d, node)) {
			ctl_send_error(c, -EHOSTUNREACH, 0, "no node %u in the cluster", node);
			return;
		}
		start_routed(d, c, PEND_MOVE, (pid_t)pid, 0, node, flags & MOVE_F_FORK);
		break;
	default:
		ctl_send_error(c, -EPROTO, 0, "unknown request");
		break;
	}
}

/* ---- questions from other nodes ------------------------------------------ */

struct question {
	uint64_t req;
	uint32_t origin, pid, uid, sig, hops, flags, node;
	uint64_t offset;
};

static int parse_question(const void *data, size_t len, struct question *q)
{
	struct attr_iter it;
	struct attr a;
	int r;

	attr_iter_init(&it, data, len);
	while ((r = attr_next(&it, &a)) > 0) {
		switch (a.type) {
		case A_REQ:
			r = attr_u64(&a, &q->req);
			break;
		case A_ORIGIN:
			r = attr_u32(&a, &q->origin);
			break;
		case A_PID:
			r = attr_u32(&a, &q->pid);
			break;
		case A_UID:
			r = attr_u32(&a, &q->uid);
			break;
		case A_SIGNAL:
			r = attr_u32(&a, &q->sig);
			break;
		case A_HOPS:
			r = attr_u32(&a, &q->hops);
			break;
		case A_FLAGS:
			r = attr_u32(&a, &q->flags);
			break;
		case A_OFFSET:
			r = attr_u64(&a, &q->offset);
			break;
		case A_NODE:
			r = attr_u32(&a, &q->node);
			break;
		default:
			break;
		}
		if (r < 0)
			return r;
	}
	return r;
}

static void reply(struct node_daemon *d, uint32_t to, uint32_t type, uint64_t req, int err,
		  const char *msg, const struct buf *data, bool eof)
{
	struct buf b = BUF_INIT;
	int r;

	r = attr_put_u64(&b, A_REQ, req);
	if (r >= 0)
		r = attr_put_u32(&b, A_ERRNO, (uint32_t)(err < 0 ? -err : err));
	if (r >= 0 && msg)
		r = attr_put_str(&b, A_MESSAGE, msg);
	if (r >= 0 && data)
		r = attr_put(&b, A_DATA, data->data, data->len);
	if (r >= 0 && eof)
		r = attr_put_u32(&b, A_FLAGS, LOGS_EOF);
	if (r >= 0)
		r = msg_send(d->msg, to, NODE_CH_PROC, type, b.data, b.len);
	if (r < 0)
		log_debug_errno(r, "cannot answer node %u", to);
	buf_release(&b);
}

/* The process was born here but runs elsewhere: pass the question on. */
static bool forward(struct node_daemon *d, uint32_t type, const struct question *q,
		    const void *data, size_t len)
{
	struct mproc *p = proc_find(d, (pid_t)q->pid);
	struct buf b = BUF_INIT;
	struct attr_iter it;
	struct attr a;
	int r = 0;

	if (!p || p->state != MPROC_ELSEWHERE || q->hops > 0)
		return false;
	attr_iter_init(&it, data, len);
	while (r >= 0 && attr_next(&it, &a) > 0)
		if (a.type != A_HOPS)
			r = attr_put(&b, a.type, a.data, a.len);
	if (r >= 0)
		r = attr_put_u32(&b, A_HOPS, q->hops + 1);
	if (r >= 0)
		r = msg_send(d->msg, p->node, NODE_CH_PROC, type, b.data, b.len);
	buf_release(&b);
	if (r < 0) {
		char msg[256];

		snprintf(msg, sizeof(msg), "process %u runs on node %u, which is %s", q->pid,
			 p->node, down_text(d, p->node));
		reply(d, q->origin,
		      type == PROC_KILL_REQ   ? PROC_REPLY
		      : type == PROC_LOGS_REQ ? PROC_LOGS_REP
					      : PROC_MOVE_REP,
		      q->req, -EHOSTDOWN, msg, NULL, false);
	}
	return true;
}

static void on_question(struct node_daemon *d, uint32_t node, uint32_t type, const void *data,
			size_t len)
{
	struct question q = { 0 };
	struct buf out = BUF_INIT, err = BUF_INIT;
	int r;

	if (parse_question(data, len, &q) < 0 ||
	    (q.req == 0 && type != PROC_WHERE && type != PROC_GONE && type != PROC_EXITED)) {
		log_warn("malformed process request from node %u, ignoring", node);
		return;
	}
	switch (type) {
	case PROC_PS_REQ:
		r = attr_put_u64(&out, A_REQ, q.req);
		if (r >= 0)
			r = proc_put_all(d, q.flags & PS_ALL, &out);
		if (r >= 0)
			r = msg_send(d->msg, node, NODE_CH_PROC, PROC_PS_REP, out.data, out.len);
		if (r < 0)
			log_warn_errno(r, "cannot answer a ps request from node %u", node);
		break;
	case PROC_KILL_REQ:
		if (!q.origin || forward(d, type, &q, data, len))
			break;
		r = proc_kill(d, (pid_t)q.pid, (int)q.sig, (uid_t)q.uid, &err);
		reply(d, q.origin, PROC_REPLY, q.req, r, r < 0 ? err.data : NULL, NULL, false);
		break;
	case PROC_MOVE_REQ:
		if (!q.origin || forward(d, type, &q, data, len))
			break;
		move_question(d, &(struct move_request){ .req = q.req,
							 .origin = q.origin,
							 .pid = (pid_t)q.pid,
							 .uid = (uid_t)q.uid,
							 .to = q.node,
							 .flags = q.flags });
		break;
	case PROC_WHERE:
		if (q.pid && q.node)
			proc_where(d, (pid_t)q.pid, q.node);
		break;
	case PROC_GONE:
		if (q.pid)
			proc_gone(d, (pid_t)q.pid, node);
		break;
	case PROC_EXITED: {
		struct attr a;
		uint32_t ws;

		if (q.pid && attr_find(data, len, A_WSTATUS, &a) >= 0 && attr_u32(&a, &ws) >= 0)
			standin_proc_exited(d, (pid_t)q.pid, (int)ws);
		break;
	}
	case PROC_LOGS_REQ:
		if (!q.origin || forward(d, type, &q, data, len))
			break;
		r = proc_read_log(d, (pid_t)q.pid, (uid_t)q.uid, q.offset, &out, &err);
		reply(d, q.origin, PROC_LOGS_REP, q.req, r < 0 ? r : 0, r < 0 ? err.data : NULL,
		      r < 0 ? NULL : &out, r > 0);
		break;
	default:
		break;
	}
	buf_release(&out);
	buf_release(&err);
}

/* ---- answers ------------------------------------------------------------- */

/* Progress goes to the client as it comes; the reply ends the request. */
static void move_answer(struct pending *p, uint32_t node, uint32_t type, const void *data,
			size_t len, uint32_t err, const char *msg)
{
	static const uint16_t progress_attrs[] = { A_DONE, A_TOTAL };
	static const uint16_t moved_attrs[] = { A_PID,	     A_NODE,	  A_BYTES,
						A_PAGES,     A_TOTAL_NS,  A_FROZEN_NS,
						A_EXPORT_NS, A_IMPORT_NS, A_FORKED_FROM };
	const uint16_t *keep = type == PROC_MOVE_PROGRESS ? progress_attrs : moved_attrs;
	size_t n_keep = type == PROC_MOVE_PROGRESS ? ARRAY_SIZE(progress_attrs)
						   : ARRAY_SIZE(moved_attrs);
	struct ctl_conn *c = p->conn;
	struct attr_iter it;
	struct attr a;
	struct buf b = BUF_INIT;
	int r = 0;

	p->current = node;
	if (type == PROC_MOVE_REP && err) {
		pending_fail(p, -(int)err, "%s", msg[0] ? msg : strerror((int)err));
		return;
	}
	attr_iter_init(&it, data, len);
	while (r >= 0 && attr_next(&it, &a) > 0)
		for (size_t i = 0; i < n_keep; i++)
			if (a.type == keep[i])
				r = attr_put(&b, a.type, a.data, a.len);
	if (type == PROC_MOVE_PROGRESS) {
		loop_timer_arm(p->timer, REQ_TIMEOUT_USEC);
		if (c && r >= 0)
			(void)ctl_send(c, CTL_PROGRESS, &b);
		buf_release(&b);
		return;
	}
	pending_free(p);
	if (c && r >= 0 && ctl_send(c, CTL_MOVED, &b) >= 0)
		ctl_finish(c);
	buf_release(&b);
}

static void ps_answer(struct pending *p, uint32_t node, const void *data, size_t len)
{
	struct attr_iter it;
	struct attr a;
	size_t i;
	int r;

	for (i = 0; i < p->n_waiting; i++)
		if (p->waiting[i] == node)
			break;
	if (i == p->n_waiting)
		return;
	p->waiting[i] = p->waiting[--p->n_waiting];
	attr_iter_init(&it, data, len);
	while ((r = attr_next(&it, &a)) > 0) {
		struct buf b = BUF_INIT;

		if (a.type != A_PROC || !p->conn)
			continue;
		if (buf_append(&b, a.data, a.len) >= 0)
			(void)ctl_send(p->conn, CTL_PROC, &b);
		buf_release(&b);
	}
	if (r < 0 && p->conn)
		warn_client(p->conn, "node %u sent a malformed process list", node);
	if (p->n_waiting == 0)
		pending_done(p, CTL_END);
}

static void on_answer(struct node_daemon *d, uint32_t node, uint32_t type, const void *data,
		      size_t len)
{
	struct attr_iter it;
	struct attr a, adata = { 0 };
	uint64_t id = 0;
	uint32_t err = 0, flags = 0;
	char msg[512] = "";
	struct pending *p;
	bool have_data = false;

	attr_iter_init(&it, data, len);
	while (attr_next(&it, &a) > 0) {
		if (a.type == A_REQ)
			(void)attr_u64(&a, &id);
		else if (a.type == A_ERRNO)
			(void)attr_u32(&a, &err);
		else if (a.type == A_MESSAGE)
			(void)attr_strcpy(&a, msg, sizeof(msg));
		else if (a.type == A_FLAGS)
			(void)attr_u32(&a, &flags);
		else if (a.type == A_DATA) {
			adata = a;
			have_data = true;
		}
	}
	p = pending_find(d, id);
	if (!p)
		return;
	if (p->kind == PEND_MOVE && (type == PROC_MOVE_PROGRESS || type == PROC_MOVE_REP)) {
		move_answer(p, node, type, data, len, err, msg);
		return;
	}
	if (type == PROC_PS_REP) {
		if (p->kind == PEND_PS)
			ps_answer(p, node, data, len);
		return;
	}
	if (err) {
		pending_fail(p, -(int)err, "%s", msg[0] ? msg : strerror((int)err));
		return;
	}
	if (type == PROC_REPLY && p->kind == PEND_KILL) {
		pending_done(p, CTL_OK);
		return;
	}
	if (type != PROC_LOGS_REP || p->kind != PEND_LOGS)
		return;
	if (have_data && adata.len > 0 && p->conn) {
		struct buf b = BUF_INIT;

		if (attr_put(&b, A_DATA, adata.data, adata.len) >= 0)
			(void)ctl_send(p->conn, CTL_LOG_DATA, &b);
		buf_release(&b);
		p->offset += adata.len;
	}
	if ((flags & LOGS_EOF) || !have_data || adata.len == 0) {
		pending_done(p, CTL_END);
		return;
	}
	loop_timer_arm(p->timer, REQ_TIMEOUT_USEC);
	if (p->conn && ctl_out_high(p->conn)) {
		p->want_next = true;
		return;
	}
	if (ask(p, PROC_LOGS_REQ, 0) < 0)
		pending_fail(p, -EHOSTDOWN, "node %u is %s", p->node, down_text(d, p->node));
}

static void proc_recv(struct msg *m, uint32_t node, uint16_t channel, uint32_t type,
		      const void *data, size_t len, void *userdata)
{
	struct node_daemon *d = userdata;

	(void)m;
	(void)channel;
	if (d->leaving)
		return;
	switch (type) {
	case PROC_PS_REQ:
	case PROC_KILL_REQ:
	case PROC_LOGS_REQ:
	case PROC_MOVE_REQ:
	case PROC_WHERE:
	case PROC_GONE:
	case PROC_EXITED:
		on_question(d, node, type, data, len);
		break;
	case PROC_CHILD_EXITED:
		standin_recv_child_exited(d, data, len);
		break;
	case PROC_PS_REP:
	case PROC_REPLY:
	case PROC_LOGS_REP:
	case PROC_MOVE_PROGRESS:
	case PROC_MOVE_REP:
		on_answer(d, node, type, data, len);
		break;
	default:
		break;
	}
}

void req_register(struct node_daemon *d)
{
	struct msg_handler h = { .recv = proc_recv };

	(void)msg_register(d->msg, NODE_CH_PROC, &h, d);
}

void req_conn_gone(struct pending *p)
{
	p->conn = NULL;
	pending_free(p);
}

void req_conn_drained(struct pending *p)
{
	if (!p->want_next)
		return;
	p->want_next = false;
	if (ask(p, PROC_LOGS_REQ, 0) < 0)
		pending_fail(p, -EHOSTDOWN, "node %u is %s", p->node, down_text(p->d, p->node));
}

void req_node_down(struct node_daemon *d, uint32_t node)
{
	struct pending *p, *next;

	for (p = d->pending; p; p = next) {
		next = p->next;
		if (p->kind == PEND_PS) {
			for (size_t i = 0; i < p->n_waiting; i++) {
				if (p->waiting[i] != node)
					continue;
				p->waiting[i] = p->waiting[--p->n_waiting];
				if (p->conn)
					warn_client(p->conn, "node %u is %s: its processes are not "
						    "listed", node, down_text(d, node));
				break;
			}
			if (p->n_waiting == 0)
				pending_done(p, CTL_END);
			continue;
		}
		/* A forwarded question may be answered by another node: only the
		 * birth node's loss is certain to leave it unanswered. */
		if (p->node == node || (p->kind == PEND_MOVE && p->current == node))
			pending_fail(p, -EHOSTDOWN, "node %u is %s", node, down_text(d, node));
	}
}

void req_free_all(struct node_daemon *d)
{
	while (d->pending)
		pending_free(d->pending);
}

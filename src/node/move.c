/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Migrations (ghost migrate), as the source and destination daemons run
 * them. The request reaches the daemon of the node where the process runs
 * (req.c routes it through the birth node, like a kill); that daemon is the
 * source (S) and talks to the destination (D) on the move channel:
 *
 *   S                                           D
 *   PREPARE (identity) ------------------------>  listen, fork import worker
 *          <-------------------------- READY (port, one-time key)
 *   fork export worker ====== image, direct TCP =====> import worker
 *     (the process is frozen: SIGSTOP at the end)      (held stopped)
 *          <-------------------------- IMPORTED
 *   SIGKILL the original
 *   COMMIT (signals received meanwhile) -------->  SIGCONT, tell the birth node
 *          <-------------------------- DONE
 *   answer the client (what moved, how long it was frozen)
 *
 * The original is the process until S kills it, which S does only once D
 * holds a complete, stopped copy; D lets its copy run only on COMMIT. So
 * before the kill, any failure (the export or import fails, D's daemon or
 * node fails, the link breaks: the workers' sockets time out) makes S let the
 * original go (SIGCONT) and D kill its copy; there are never two running
 * copies. After the kill, the process is D's.
 *
 * Source side, struct move (role OUT):
 *
 *   PREPARING --READY--> EXPORTING --worker ok + IMPORTED--> COMMITTING --DONE--> answered
 *       |                    |                                    |
 *       +-- FAILED, D down --+-- worker failed, FAILED, D down -->+-- D down: answered
 *           (answered)            ABORTING (wait for the worker)       with an error
 *                                  -> SIGCONT, answered
 *
 * Destination side, struct move (role IN):
 *
 *   IMPORTING --worker ok--> HELD --COMMIT--> (runs; freed)
 *       |                      |
 *       +-- worker failed: FAILED sent, freed
 *       +-- ABORT, S down: wait for the worker, kill the copy, freed
 *
 * A process attached to a `ghost run` takes its session along: run.c adds
 * the session to PREPARE, hands it over at the commit (run_move_commit(),
 * before the kill) and creates the copy's stdio on D (run_arrival_*()).
 *
 * 1. A process has at most one move (p->moving on S).
 * 2. While a worker of a move runs, the move stays allocated: its report
 *    pipe is watched until the final report or end of file.
 *
 *   event                       function
 *   PROC_MOVE_REQ (current)     move_question()
 *   move messages               move_recv()
 *   worker report               on_worker_io()
 *   node down                   move_node_down()
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOG_PREFIX "move"
#include "base/clock.h"
#include "base/log.h"
#include "node/node-int.h"
#include "base/banned.h"

/* Progress (or a keep-alive) goes to the asking node at least this often,
 * so that its request does not time out during a long transfer. */
#define KEEPALIVE_USEC (1000 * 1000)
#define MAX_DEFERRED_SIGNALS 64
/* How long a source whose transfer broke waits for the destination's reason. */
#define REASON_WAIT_USEC (2000 * 1000)

enum move_role {
	ROLE_OUT,
	ROLE_IN,
};

enum move_state {
	MOVE_S_PREPARING,
	MOVE_S_EXPORTING,
	MOVE_S_ABORTING,
	MOVE_S_COMMITTING,
	MOVE_S_STREAMS,
	MOVE_S_IMPORTING,
	MOVE_S_HELD,
};

struct move {
	struct move *next, *prev;
	struct node_daemon *d;
	enum move_role role;
	enum move_state state;
	uint64_t xfer;         /* the source's id */
	uint32_t peer;         /* OUT: the destination; IN: the source */
	pid_t pid;
	/* OUT: who asked */
	uint32_t origin;
	uint64_t req;
	uid_t uid;
	struct mproc *proc;    /* OUT: the original; IN: the entry once imported */
	/* the worker */
	pid_t worker;          /* -1 when hosted */
	int report_fd;
	int job_fd;            /* IN, with ppid: the daemon's end of the job socket
				  of the worker that stays as the parent's stand-in */
	bool hosted;           /* IN: a parent stand-in here imports it */
	pid_t host_pid;        /* IN, hosted: that stand-in's PID */
	/* IN: the stand-in holding its PID here turns into it
	 * (GHOST_IMPORT_BECOME): a parent stand-in (the import worker that
	 * holds it for its children here) or, with child_standin, a child
	 * stand-in (ghostd --stand-in, for its parent here); own[] are the
	 * stand-in's children here, which are the process's and stay */
	bool become;
	bool child_standin;
	pid_t own[MOVE_MAX_KIDS];
	size_t n_own;
	struct loop_io *report_io;
	bool worker_done;
	struct worker_report result;
	struct loop_timer *timer;
	/* OUT: figures and outcome */
	uint64_t start_ns;
	uint64_t done, total;  /* progress */
	bool imported;
	bool dest_done;        /* MOVE_DONE came */
	bool orig_gone;        /* the killed original was reaped (its PID is free here) */
	unsigned reap_ticks;   /* keep-alive ticks spent waiting for that */
	uint64_t import_ns;
	int err;
	bool err_weak;         /* err is a broken connection: a better reason may come */
	bool wait_reason;      /* waiting a little for it before rolling back */
	char errmsg[512];
	int signals[MAX_DEFERRED_SIGNALS];
	size_t n_signals;
	bool fork;             /* ghost fork: a copy with a new PID, the original runs on */
	bool was_stopped;      /* OUT: stopped by a signal before the move: it stays stopped */
	pid_t copy_pid;        /* OUT, fork: the copy's PID */
	pid_t orig_pid;        /* IN, fork: the original's PID */
	pid_t ppid;            /* its parent here (not the daemon), or 0 */
	bool standin;          /* OUT: the original becomes a stand-in for its parent */
	/* Its children: OUT, those it has here; IN, those that get stand-ins
	 * here, made by the import (spawn) */
	struct move_kid kids[MOVE_MAX_KIDS];
	size_t n_kids;
	struct standin_spawn *spawn;
	bool committed;        /* IN: the copy runs; its children's stand-ins stay */
	/* OUT: the streams it holds (stream.c) */
	struct stream_op *streams;
	int carried[64];
	size_t n_carried;
	bool streams_switched;
	bool streams_aborting;
	/* IN */
	bool aborted;
	struct buf prepare;    /* the MOVE_PREPARE payload */
};

static struct move *move_find(struct node_daemon *d, enum move_role role, uint32_t peer,
			      uint64_t xfer)
{
	for (struct move *m = d->moves; m; m = m->next)
		if (m->role == role && m->peer == peer && m->xfer == xfer)
			return m;
	return NULL;
}

static struct move *move_of_proc(struct node_daemon *d, const struct mproc *p)
{
	for (struct move *m = d->moves; m; m = m->next)
		if (m->role == ROLE_OUT && m->proc == p)
			return m;
	return NULL;
}

static void move_free(struct move *m)
{
	if (!m)
		return;
	LIST_REMOVE(m->d->moves, m);
	if (m->proc && m->role == ROLE_OUT)
		m->proc->moving = false;
	if (m->role == ROLE_IN)
		run_arrival_drop(m->d, m->peer, m->xfer);
	if (m->role == ROLE_IN && m->n_kids && !m->committed)
		standin_arrivals_cancel(m->d, m->pid);
	free(m->spawn);
	stream_release(m->streams);
	m->report_io = loop_io_free(m->report_io);
	m->report_fd = safe_close(m->report_fd);
	m->job_fd = safe_close(m->job_fd);
	if (m->hosted && m->child_standin)
		standin_turn_done(m->d, m->host_pid);
	else if (m->hosted)
		standin_parent_host_done(m->d, m->host_pid);
	m->timer = loop_timer_free(m->timer);
	buf_release(&m->prepare);
	free(m);
}

static void on_timer(struct loop_timer *t, void *userdata);

static struct move *move_new(struct node_daemon *d, enum move_role role)
{
	struct move *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->d = d;
	m->role = role;
	m->report_fd = -1;
	m->job_fd = -1;
	m->worker = -1;
	if (loop_timer_new(d->loop, on_timer, m, &m->timer) < 0) {
		free(m);
		return NULL;
	}
	LIST_PREPEND(d->moves, m);
	return m;
}

static int send_move(struct move *m, uint32_t type, struct buf *extra)
{
	struct buf b = BUF_INIT;
	int r;

	r = attr_put_u64(&b, A_XFER, m->xfer);
	if (r >= 0 && extra && extra->len)
		r = buf_append(&b, extra->data, extra->len);
	if (r >= 0)
		r = msg_send(m->d->msg, m->peer, NODE_CH_MOVE, type, b.data, b.len);
	buf_release(&b);
	if (r < 0)
		log_debug_errno(r, "cannot send move message %u to node %u", type, m->peer);
	return r;
}

/* ---- answers to the asking node ------------------------------------------ */

static void answer(struct node_daemon *d, uint32_t origin, uint64_t req, uint32_t type,
		   const struct buf *attrs)
{
	node_answer(d, origin, NODE_CH_PROC, type, req, attrs);
}

static void answer_error(struct node_daemon *d, uint32_t origin, uint64_t req, int err,
			 const char *fmt, ...) _printf_(5, 6);
static void answer_error(struct node_daemon *d, uint32_t origin, uint64_t req, int err,
			 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	node_answer_verror(d, origin, NODE_CH_PROC, PROC_MOVE_REP, req, err, fmt, ap);
	va_end(ap);
}

static void send_progress(struct move *m)
{
	struct buf b = BUF_INIT;

	if (attr_put_u64(&b, A_DONE, m->done) >= 0 && attr_put_u64(&b, A_TOTAL, m->total) >= 0)
		answer(m->d, m->origin, m->req, PROC_MOVE_PROGRESS, &b);
	buf_release(&b);
}

/* ---- source side ---------------------------------------------------------- */

static void out_fail(struct move *m, int err, const char *fmt, ...) _printf_(3, 4);

/* Remember the first failure; the move ends once the worker is done. A
 * broken transfer connection is only the symptom when the destination
 * failed: its own reason (MOVE_FAILED) replaces it. */
static void out_fail(struct move *m, int err, const char *fmt, ...)
{
	va_list ap;

	if (m->err == 0 || (m->err_weak && !worker_link_error(err))) {
		m->err_weak = worker_link_error(err);
		m->err = err < 0 ? err : -EIO;
		va_start(ap, fmt);
		vsnprintf(m->errmsg, sizeof(m->errmsg), fmt, ap);
		va_end(ap);
	}
}

static void out_rollback(struct move *m);

static void on_streams_aborted(struct stream_op *op, int err, const char *msg, void *userdata)
{
	struct move *m = userdata;

	(void)err;
	(void)msg;
	m->streams = NULL;
	stream_release(op);
	out_rollback(m);
}

/* The original goes on where it was; tell the asker why it did not move. */
static void out_rollback(struct move *m)
{
	struct node_daemon *d = m->d;

	if (m->streams) {
		/* Its streams first: back in place, before it runs again. */
		if (!m->streams_aborting) {
			m->streams_aborting = true;
			stream_abort(m->streams, m->err, m->errmsg, on_streams_aborted, m);
		}
		return;
	}
	if (m->state != MOVE_S_PREPARING) {
		(void)send_move(m, MOVE_ABORT, NULL);
		/* A fork's export does not stop the original. */
		if (m->proc && !m->fork) {
			/* The export froze it (or failed and let it go: harmless);
			 * one that was stopped before stays stopped. */
			if (!m->was_stopped && kill(m->pid, SIGCONT) < 0)
				log_warn_errno(errno, "cannot resume process %d", (int)m->pid);
			for (size_t i = 0; i < m->n_signals; i++)
				(void)kill(m->pid, m->signals[i]);
		}
	} else {
		(void)send_move(m, MOVE_ABORT, NULL);
	}
	log_warn("process %d stays on node %u: %s", (int)m->pid, d->self, m->errmsg);
	answer_error(d, m->origin, m->req, m->err, "cannot %s process %d to node %u: %s",
		     m->fork ? "fork" : "move", (int)m->pid, m->peer, m->errmsg);
	move_free(m);
}

static void out_done(struct move *m);

/* Does it have real children here, which stay with its stand-in? */
static bool kids_stay(const struct move *m)
{
	for (size_t i = 0; i < m->n_kids; i++)
		if (!m->kids[i].standin && !m->kids[i].gone)
			return true;
	return false;
}

/* Frozen now: which children the destination made stand-ins for did it
 * wait for in the short while before the export stopped it? Those stand-ins
 * must go unseen. (A child it forked meanwhile stays here, a child of its
 * stand-in, unseen by the copy.) */
static void mark_kids_gone(struct move *m)
{
	pid_t now[MOVE_MAX_KIDS * 2];
	size_t n;

	if (proc_children(m->pid, now, ARRAY_SIZE(now), &n) < 0)
		n = 0;
	for (size_t k = 0; k < m->n_kids; k++) {
		size_t i = 0;

		while (i < n && i < ARRAY_SIZE(now) && now[i] != m->kids[k].pid)
			i++;
		m->kids[k].gone = i == n || i == ARRAY_SIZE(now);
	}
}

static void out_commit(struct move *m)
{
	struct node_daemon *d = m->d;
	struct buf b = BUF_INIT;
	int r = 0;

	if (m->fork) {
		/* The original runs on: the copy may start. */
		(void)send_move(m, MOVE_COMMIT, NULL);
		m->state = MOVE_S_COMMITTING;
		return;
	}

	/* The copy is complete and held on the destination, its streams woken
	 * up there: their peers may go on, and the original goes, or stays as a
	 * stand-in that its parent keeps waiting for; its run session follows
	 * the copy. */
	stream_release(m->streams);
	m->streams = NULL;
	run_move_commit(d, m->proc, m->peer, m->xfer);
	if (m->standin || kids_stay(m)) {
		char why[512];

		r = standin_make(d, m->pid, m->proc->uid, m->proc->gid, m->peer, m->standin, why,
				 sizeof(why));
		if (r < 0) {
			out_fail(m, r, "%s", why);
			out_rollback(m);
			return;
		}
		/* Its PID stays in use here: nothing to wait for. */
		m->orig_gone = true;
	} else if (kill(m->pid, SIGKILL) < 0 && errno != ESRCH) {
		out_fail(m, -errno, "cannot end the original of process %d: %s", (int)m->pid,
			 strerror(errno));
		out_rollback(m);
		return;
	}
	/* A parent whose stand-in is here: the end of the original here is
	 * never the process's. */
	if (m->ppid && !m->standin)
		standin_quiet(d, m->pid);
	/* The stand-ins of its children that moved away earlier: those on the
	 * destination take over, told what these already learnt. */
	for (size_t i = 0; i < m->n_kids && r >= 0; i++)
		if (m->kids[i].gone)
			r = attr_put_u32(&b, A_CHILD_GONE, (uint32_t)m->kids[i].pid);
		else if (m->kids[i].standin)
			r = standin_hand_over(d, m->kids[i].pid, &b);
	for (size_t i = 0; i < m->n_signals && r >= 0; i++)
		r = attr_put_u32(&b, A_SIGNAL, (uint32_t)m->signals[i]);
	if (r >= 0 && m->was_stopped)
		r = attr_put_u32(&b, A_FLAGS, MOVE_F_STOPPED);
	m->n_signals = 0;
	(void)send_move(m, MOVE_COMMIT, &b);
	buf_release(&b);
	proc_depart(d, m->proc, m->peer);
	m->proc = NULL;
	m->state = MOVE_S_COMMITTING;
}

void move_reaped(struct node_daemon *d, pid_t pid)
{
	for (struct move *m = d->moves; m; m = m->next)
		if (m->role == ROLE_OUT && !m->fork && m->pid == pid &&
		    m->state == MOVE_S_COMMITTING) {
			m->orig_gone = true;
			/* Answer only now: a move straight back must find the PID free. */
			if (m->dest_done)
				out_done(m);
			return;
		}
}

static void out_done(struct move *m)
{
	struct node_daemon *d = m->d;
	uint64_t now = now_ns();
	struct buf b = BUF_INIT;
	int r;

	uint64_t frozen = m->fork ? m->result.stats.frozen_ns : now - m->result.freeze_start_ns;

	r = attr_put_u32(&b, A_ERRNO, 0);
	if (r >= 0)
		r = attr_put_u32(&b, A_PID, (uint32_t)(m->fork ? m->copy_pid : m->pid));
	if (r >= 0 && m->fork)
		r = attr_put_u32(&b, A_FORKED_FROM, (uint32_t)m->pid);
	if (r >= 0)
		r = attr_put_u32(&b, A_NODE, d->self);
	if (r >= 0)
		r = attr_put_u64(&b, A_BYTES, m->result.stats.image_bytes);
	if (r >= 0)
		r = attr_put_u64(&b, A_PAGES, m->result.stats.pages);
	if (r >= 0)
		r = attr_put_u64(&b, A_TOTAL_NS, now - m->start_ns);
	if (r >= 0)
		r = attr_put_u64(&b, A_FROZEN_NS, frozen);
	if (r >= 0)
		r = attr_put_u64(&b, A_EXPORT_NS, m->result.stats.total_ns);
	if (r >= 0)
		r = attr_put_u64(&b, A_IMPORT_NS, m->import_ns);
	if (r >= 0)
		answer(d, m->origin, m->req, PROC_MOVE_REP, &b);
	buf_release(&b);
	if (m->fork)
		log_info("process %d copied to node %u as %d: %llu bytes", (int)m->pid, m->peer,
			 (int)m->copy_pid, (unsigned long long)m->result.stats.image_bytes);
	else
		log_info("process %d moved to node %u: %llu bytes, frozen %llu ms", (int)m->pid,
			 m->peer, (unsigned long long)m->result.stats.image_bytes,
			 (unsigned long long)(frozen / 1000000));
	move_free(m);
}

static void on_streams_switched(struct stream_op *op, int err, const char *msg, void *userdata)
{
	struct move *m = userdata;

	if (err < 0) {
		/* Back in place here already. */
		m->streams = NULL;
		stream_release(op);
		out_fail(m, err, "%s", msg);
		out_rollback(m);
		return;
	}
	m->streams_switched = true;
	m->state = MOVE_S_EXPORTING;
	out_commit(m);
}

/* Both halves of the transfer are known: go on or roll back. */
static void out_step(struct move *m)
{
	if (m->state == MOVE_S_ABORTING || (m->state == MOVE_S_EXPORTING && m->err)) {
		m->state = MOVE_S_ABORTING;
		if (!m->worker_done)
			return;
		if (m->err_weak && !m->wait_reason && m->err != -EHOSTDOWN) {
			/* The destination's MOVE_FAILED, if it comes, says why. */
			m->wait_reason = true;
			loop_timer_arm(m->timer, REASON_WAIT_USEC);
			return;
		}
		out_rollback(m);
		return;
	}
	if (m->state == MOVE_S_EXPORTING && m->worker_done && m->imported) {
		if (!m->fork && !m->streams_switched)
			mark_kids_gone(m);
		if (m->streams && !m->streams_switched) {
			m->state = MOVE_S_STREAMS;
			stream_switch(m->streams, m->peer, m->fork ? m->copy_pid : m->pid,
				      on_streams_switched, m);
			return;
		}
		out_commit(m);
	}
}

static void on_worker_io(struct loop_io *io, int fd, unsigned events, void *userdata);

static int watch_worker(struct move *m)
{
	return loop_io_new(m->d->loop, m->report_fd, LOOP_READ, on_worker_io, m, &m->report_io);
}

static void out_ready(struct move *m, const void *data, size_t len)
{
	struct node_daemon *d = m->d;
	const struct node_config_node *cn = node_config_find(&d->config, m->peer);
	struct worker_export_job j = {
		.pid = m->pid,
		/* A migration keeps it stopped until the copy is safe; a fork lets it go.
		 * An attached process's stdio are replaced on the destination. */
		.flags = (m->fork ? 0 : GHOST_EXPORT_STOP) |
			 (m->proc && !m->proc->detached ? GHOST_EXPORT_SHELL_JOB : 0),
		.dest = m->peer,
		.encrypt = d->config.encrypt,
	};
	int r;

	if (!cn || attr_find_channel(data, len, &j.port, j.key) < 0) {
		out_fail(m, -EPROTO, "node %u sent a malformed answer", m->peer);
		out_rollback(m);
		return;
	}
	j.host = cn->address;
	{
		char msg[512];

		/* A fork's copy gets its streams as fork() would give them. */
		r = stream_prepare(d, m->pid, m->xfer, m->peer, m->fork, &m->streams, m->carried,
				   &m->n_carried, ARRAY_SIZE(m->carried), msg, sizeof(msg));
		if (r < 0) {
			out_fail(m, r, "%s", msg);
			out_rollback(m);
			return;
		}
		j.carried = m->carried;
		j.n_carried = m->n_carried;
	}
	m->state = MOVE_S_EXPORTING;
	r = worker_export_start(&j, &m->worker, &m->report_fd);
	memset(j.key, 0, sizeof(j.key));
	if (r >= 0)
		r = watch_worker(m);
	if (r < 0) {
		out_fail(m, r, "cannot start the export of process %d: %s", (int)m->pid,
			 strerror(-r));
		m->worker_done = m->worker < 0 || m->report_fd < 0;
		if (m->worker_done)
			out_rollback(m);
		else
			m->state = MOVE_S_ABORTING;
	}
}

static void out_recv(struct move *m, uint32_t type, const void *data, size_t len)
{
	struct attr_iter it;
	struct attr a;
	uint32_t err = EIO;
	char msg[512] = "";

	switch (type) {
	case MOVE_READY:
		if (m->state == MOVE_S_PREPARING)
			out_ready(m, data, len);
		break;
	case MOVE_IMPORTED:
		attr_iter_init(&it, data, len);
		while (attr_next(&it, &a) > 0) {
			uint32_t v;

			if (a.type == A_IMPORT_NS)
				(void)attr_u64(&a, &m->import_ns);
			else if (a.type == A_PID && attr_u32(&a, &v) >= 0)
				m->copy_pid = (pid_t)v;
		}
		m->imported = true;
		out_step(m);
		break;
	case MOVE_FAILED:
		attr_iter_init(&it, data, len);
		while (attr_next(&it, &a) > 0) {
			if (a.type == A_ERRNO)
				(void)attr_u32(&a, &err);
			else if (a.type == A_MESSAGE)
				(void)attr_strcpy(&a, msg, sizeof(msg));
		}
		if (m->state == MOVE_S_COMMITTING)
			break;
		out_fail(m, -(int)err, "%s", msg[0] ? msg : "the destination failed");
		m->err_weak = false;
		if (m->state == MOVE_S_PREPARING || m->wait_reason)
			out_rollback(m);
		else
			out_step(m);
		break;
	case MOVE_DONE:
		m->dest_done = true;
		if (m->state == MOVE_S_COMMITTING && (m->fork || m->orig_gone))
			out_done(m);
		break;
	default:
		break;
	}
}

/* The children of a process about to move, each to get a stand-in on the
 * destination: its real children (running or not yet waited for) stay here
 * with its stand-in; stand-ins of children that moved away are replaced. */
static int collect_kids(struct node_daemon *d, pid_t pid, struct move_kid *kids, size_t *ret_n,
			char *msg, size_t size)
{
	pid_t all[MOVE_MAX_KIDS];
	size_t n;
	int r;

	*ret_n = 0;
	r = proc_children(pid, all, ARRAY_SIZE(all), &n);
	if (r < 0) {
		snprintf(msg, size, "cannot read the children of process %d: %s", (int)pid,
			 strerror(-r));
		return r;
	}
	if (n > ARRAY_SIZE(all)) {
		snprintf(msg, size,
			 "process %d has %zu children; a parent moves with at most %zu of them",
			 (int)pid, n, ARRAY_SIZE(all));
		return -E2BIG;
	}
	for (size_t i = 0; i < n; i++) {
		struct mproc *kp = proc_find(d, all[i]);
		struct move_kid *k = &kids[*ret_n];

		if (kp && kp->moving) {
			snprintf(msg, size, "process %d has a child, %d, that is moving; try again",
				 (int)pid, (int)all[i]);
			return -EBUSY;
		}
		k->pid = all[i];
		k->standin = standin_describe(d, k);
		/* One reaped since the list was read is no child any more. */
		if (!k->standin && (proc_ids(all[i], &k->uid, &k->gid) < 0 ||
				    proc_comm(all[i], k->comm, sizeof(k->comm)) < 0))
			continue;
		(*ret_n)++;
	}
	return 0;
}

/* Is the process one we can move, for uid? 0 or -errno with a message. */
static int check_movable(struct node_daemon *d, struct mproc *p, pid_t pid, uid_t uid,
			 uint32_t to, bool fork, char *msg, size_t size)
{
	struct node_peer *peer = node_peer_find(d, to);

	if (!p || p->state == MPROC_ELSEWHERE || p->exec_failed) {
		snprintf(msg, size, "no managed process %d", (int)pid);
		return -ESRCH;
	}
	if (p->state == MPROC_EXITED) {
		snprintf(msg, size, "process %d has exited", (int)pid);
		return -ESRCH;
	}
	if (uid != 0 && uid != p->uid) {
		snprintf(msg, size, "not allowed to move process %d: it belongs to another user",
			 (int)pid);
		return -EPERM;
	}
	if (uid != 0 && !proc_plain_creds(pid, uid)) {
		snprintf(msg, size,
			 "not allowed to %s process %d: it runs with other rights than its user's "
			 "(a setuid program?); only root may",
			 fork ? "fork" : "move", (int)pid);
		return -EPERM;
	}
	if (!peer) {
		snprintf(msg, size, "no node %u in the cluster", to);
		return -EHOSTUNREACH;
	}
	if (to == d->self && !fork) {
		snprintf(msg, size, "process %d already runs on node %u", (int)pid, to);
		return -EALREADY;
	}
	if (peer->state != NODE_STATE_UP && to != d->self) {
		snprintf(msg, size, "node %u is %s", to, node_state_to_string(peer->state));
		return -EHOSTDOWN;
	}
	if (p->state == MPROC_SPAWNING || p->arriving) {
		snprintf(msg, size, "process %d is starting; try again", (int)pid);
		return -EAGAIN;
	}
	if (p->moving) {
		snprintf(msg, size, "process %d is already moving", (int)pid);
		return -EBUSY;
	}
	if (!fork) {
		struct mproc *pp = proc_find(d, proc_parent(pid));

		/* Its parent lists its children for stand-ins now. */
		if (pp && pp->moving) {
			snprintf(msg, size, "the parent of process %d, %d, is moving; try again",
				 (int)pid, (int)pp->pid);
			return -EBUSY;
		}
		/* Its parent's stand-in here is turning into its parent: the
		 * child must be its child when it does. */
		if (standin_parent_turning(d, proc_parent(pid))) {
			snprintf(msg, size, "the parent of process %d, %d, is arriving; try again",
				 (int)pid, (int)proc_parent(pid));
			return -EBUSY;
		}
	}
	if (p->keeping) {
		snprintf(msg, size, "process %d is being checkpointed; try again", (int)pid);
		return -EBUSY;
	}
	return run_move_check(d, p, msg, size);
}

static int put_kid(struct buf *b, const struct move_kid *k)
{
	struct buf one = BUF_INIT;
	int r;

	r = attr_put_u32(&one, A_PID, (uint32_t)k->pid);
	if (r >= 0)
		r = attr_put_u32(&one, A_UID, (uint32_t)k->uid);
	if (r >= 0)
		r = attr_put_u32(&one, A_GID, (uint32_t)k->gid);
	if (r >= 0)
		r = attr_put_str(&one, A_COMMAND, k->comm);
	if (r >= 0)
		r = attr_put(b, A_CHILD, one.data, one.len);
	buf_release(&one);
	return r;
}

void move_question(struct node_daemon *d, const struct move_request *q)
{
	uint32_t origin = q->origin, to = q->to, flags = q->flags;
	uint64_t req = q->req;
	pid_t pid = q->pid;
	uid_t uid = q->uid;
	struct buf b = BUF_INIT;
	struct mproc *p;
	struct move *m;
	char msg[512];
	int r;

	p = proc_find_or_adopt(d, pid);
	r = check_movable(d, p, pid, uid, to, flags & MOVE_F_FORK, msg, sizeof(msg));
	if (r < 0) {
		answer_error(d, origin, req, r, "%s", msg);
		return;
	}
	m = move_new(d, ROLE_OUT);
	if (!m) {
		answer_error(d, origin, req, -ENOMEM, "out of memory on node %u", d->self);
		return;
	}
	if (!(flags & MOVE_F_FORK)) {
		r = collect_kids(d, pid, m->kids, &m->n_kids, msg, sizeof(msg));
		if (r < 0) {
			answer_error(d, origin, req, r, "%s", msg);
			move_free(m);
			return;
		}
	}
	m->xfer = node_new_id(d);
	m->peer = to;
	m->pid = pid;
	m->origin = origin;
	m->req = req;
	m->uid = uid;
	m->proc = p;
	m->fork = flags & MOVE_F_FORK;
	m->start_ns = now_ns();
	m->state = MOVE_S_PREPARING;
	/* A process stopped by job control stays stopped where it goes (and
	 * where it stays if the move fails), as it would after a checkpoint. */
	m->was_stopped = !m->fork && proc_job_stopped(pid);
	p->moving = true;
	if (!m->fork) {
		pid_t ppid = proc_parent(pid);

		/* A parent other than the daemon keeps seeing its child (standin.c):
		 * a real one through a stand-in left here, a stand-in itself
		 * through the one that is there already. */
		if (ppid > 1 && ppid != getpid()) {
			m->ppid = ppid;
			m->standin = !standin_is_parent(d, ppid) && !standin_holds(d, ppid);
		}
	}
	r = attr_put_u32(&b, A_PID, (uint32_t)pid);
	if (r >= 0)
		r = attr_put_u32(&b, A_UID, (uint32_t)p->uid);
	if (r >= 0)
		r = attr_put_u32(&b, A_GID, (uint32_t)p->gid);
	if (r >= 0)
		r = attr_put_str(&b, A_COMMAND, p->command);
	if (r >= 0)
		r = attr_put_u64(&b, A_START, p->start_time);
	if (r >= 0)
		r = attr_put_u32(&b, A_FLAGS,
				 (p->detached ? RUN_DETACH : 0) | (m->fork ? MOVE_F_FORK : 0));
	if (r >= 0 && p->log_path)
		r = attr_put_str(&b, A_PATH, p->log_path);
	if (r >= 0 && m->ppid)
		r = attr_put_u32(&b, A_PPID, (uint32_t)m->ppid);
	for (size_t i = 0; i < m->n_kids && r >= 0; i++)
		r = put_kid(&b, &m->kids[i]);
	if (r >= 0)
		r = attr_put_u64(&b, A_RSS, proc_rss_bytes(pid) / 1024);
	if (r >= 0)
		r = run_move_prepare(d, p, &b);
	if (r >= 0)
		r = send_move(m, MOVE_PREPARE, &b);
	buf_release(&b);
	if (r < 0) {
		out_fail(m, r, "cannot reach node %u: %s", to, strerror(-r));
		out_rollback(m);
		return;
	}
	loop_timer_arm(m->timer, KEEPALIVE_USEC);
	log_info("process %d: %s to node %u for uid %u", (int)pid,
		 m->fork ? "copying" : "moving", to, (unsigned)uid);
}

bool move_defer_signal(struct node_daemon *d, struct mproc *p, int sig)
{
	struct move *m = move_of_proc(d, p);

	/* Stop and continue signals would fight the freeze; SIGKILL must act now. */
	if (!m || m->fork || sig == 0 || sig == SIGKILL || sig == SIGSTOP || sig == SIGCONT ||
	    m->n_signals >= MAX_DEFERRED_SIGNALS)
		return false;
	m->signals[m->n_signals++] = sig;
	return true;
}

void move_proc_exited(struct node_daemon *d, struct mproc *p)
{
	struct move *m = move_of_proc(d, p);

	if (!m)
		return;
	p->moving = false;
	m->proc = NULL;
	out_fail(m, -ESRCH, "process %d exited before it could move", (int)m->pid);
	if (m->state == MOVE_S_PREPARING)
		out_rollback(m);
	else
		out_step(m);
}

/* ---- destination side ----------------------------------------------------- */

static void in_fail(struct move *m, int err, const char *fmt, ...) _printf_(3, 4);
static void in_fail(struct move *m, int err, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("process %d from node %u: %s", (int)m->pid, m->peer, msg);
	if (attr_put_u32(&b, A_ERRNO, (uint32_t)(err < 0 ? -err : EIO)) >= 0 &&
	    attr_put_str(&b, A_MESSAGE, msg) >= 0)
		(void)send_move(m, MOVE_FAILED, &b);
	buf_release(&b);
}

/* Kill a copy that must not run, and forget it. */
static void in_discard(struct move *m)
{
	/* A stand-in that turned into the copy is lost with it: its parent
	 * here sees its child killed, its children here lose their parent. */
	if (m->become && m->child_standin && m->result.pid > 0)
		standin_turn_lost(m->d, m->pid, m->peer);
	else if (m->become && m->result.pid > 0)
		log_warn("process %d: its stand-in here had turned into it; its children here "
			 "lose their parent",
			 (int)m->pid);
	if (m->proc) {
		proc_arrival_cancel(m->d, m->proc);
		m->proc = NULL;
	}
	if (m->result.pid > 0 && kill(m->result.pid, SIGKILL) < 0 && errno != ESRCH)
		log_warn_errno(errno, "cannot kill the abandoned copy of process %d",
			       (int)m->result.pid);
	move_free(m);
}

static struct proc_arrival *arrival_parse(const void *data, size_t len, struct proc_arrival *a,
					  char *command, size_t csize, char *path, size_t psize,
					  uint32_t *ret_flags)
{
	struct attr_iter it;
	struct attr at;
	uint32_t v, flags = 0;

	memset(a, 0, sizeof(*a));
	command[0] = path[0] = '\0';
	attr_iter_init(&it, data, len);
	while (attr_next(&it, &at) > 0) {
		switch (at.type) {
		case A_PID:
			if (attr_u32(&at, &v) >= 0)
				a->pid = (pid_t)v;
			break;
		case A_UID:
			if (attr_u32(&at, &v) >= 0)
				a->uid = (uid_t)v;
			break;
		case A_GID:
			if (attr_u32(&at, &v) >= 0)
				a->gid = (gid_t)v;
			break;
		case A_COMMAND:
			(void)attr_strcpy(&at, command, csize);
			break;
		case A_START:
			(void)attr_u64(&at, &a->start_time);
			break;
		case A_FLAGS:
			(void)attr_u32(&at, &flags);
			break;
		case A_PATH:
			(void)attr_strcpy(&at, path, psize);
			break;
		default:
			break;
		}
	}
	a->detached = flags & RUN_DETACH;
	*ret_flags = flags;
	a->command = command;
	a->log_path = path[0] ? path : NULL;
	return a->pid > 0 ? a : NULL;
}

/* The children the process has on its source (A_CHILD): each gets a
 * stand-in here, made by the import as the process's child. Their PIDs must
 * be free here. */
static int arrival_kids(struct move *m, const void *data, size_t len, char *msg, size_t size)
{
	struct node_daemon *d = m->d;
	struct attr_iter it;
	struct attr a;
	int r;

	attr_iter_init(&it, data, len);
	while (attr_next(&it, &a) > 0) {
		struct move_kid *k;
		struct mproc *kp;
		struct attr f;
		uint32_t v;

		if (a.type != A_CHILD)
			continue;
		if (m->n_kids == ARRAY_SIZE(m->kids)) {
			snprintf(msg, size, "process %d has too many children", (int)m->pid);
			return -E2BIG;
		}
		k = &m->kids[m->n_kids];
		memset(k, 0, sizeof(*k));
		if (attr_find(a.data, a.len, A_PID, &f) < 0 || attr_u32(&f, &v) < 0 || v <= 1 ||
		    v > INT32_MAX) {
			snprintf(msg, size, "malformed move request");
			return -EPROTO;
		}
		k->pid = (pid_t)v;
		if (attr_find(a.data, a.len, A_UID, &f) >= 0 && attr_u32(&f, &v) >= 0)
			k->uid = (uid_t)v;
		if (attr_find(a.data, a.len, A_GID, &f) >= 0 && attr_u32(&f, &v) >= 0)
			k->gid = (gid_t)v;
		if (attr_find(a.data, a.len, A_COMMAND, &f) >= 0)
			(void)attr_strcpy(&f, k->comm, sizeof(k->comm));
		kp = proc_find(d, k->pid);
		if (m->become && proc_parent(k->pid) == m->pid) {
			/* A child of the stand-in that turns into the process: its
			 * own child again, with no stand-in. */
			if (kp && kp->moving) {
				snprintf(msg, size,
					 "process %d has a child, %d, that is moving; try again",
					 (int)m->pid, (int)k->pid);
				return -EBUSY;
			}
			if (m->n_own == ARRAY_SIZE(m->own)) {
				snprintf(msg, size, "process %d has too many children",
					 (int)m->pid);
				return -E2BIG;
			}
			m->own[m->n_own++] = k->pid;
			continue;
		}
		if (kp && kp->state == MPROC_RUNNING) {
			snprintf(msg, size,
				 "process %d cannot move to node %u, where its child %d runs, but "
				 "not as a child of a stand-in of it",
				 (int)m->pid, d->self, (int)k->pid);
			return -EBUSY;
		}
		/* A stand-in of an earlier stay that is ending is no
		 * obstacle: the import waits for its PID. */
		if (!standin_ending(d, k->pid) &&
		    (standin_holds(d, k->pid) || standin_is_parent(d, k->pid) ||
		     kill(k->pid, 0) == 0 || errno != ESRCH)) {
			snprintf(msg, size, "PID %d, a child of process %d, is in use on node %u",
				 (int)k->pid, (int)m->pid, d->self);
			return -EEXIST;
		}
		m->n_kids++;
	}
	if (!m->n_kids)
		return 0;
	m->spawn = calloc(1, sizeof(*m->spawn));
	if (!m->spawn) {
		snprintf(msg, size, "out of memory on node %u", d->self);
		return -ENOMEM;
	}
	r = standin_spawn_fill(d, m->kids, m->n_kids, m->spawn);
	if (r < 0) {
		snprintf(msg, size, "cannot prepare the stand-ins of the children of process %d: %s",
			 (int)m->pid, strerror(-r));
		return r;
	}
	for (size_t i = 0; i < m->n_kids; i++) {
		r = standin_expect(d, &m->kids[i], m->pid, m->peer);
		if (r < 0) {
			snprintf(msg, size, "out of memory on node %u", d->self);
			return r;
		}
	}
	return 0;
}

static void in_prepare(struct node_daemon *d, uint32_t from, uint64_t xfer, const void *data,
		       size_t len)
{
	const struct node_config_node *self = node_config_find(&d->config, d->self);
	struct worker_import_job j = {
		/* Managed processes lead their session; an attached one's stdio
		 * is the new session stint's, below. */
		.flags = GHOST_IMPORT_STOPPED | GHOST_IMPORT_SESSION | GHOST_IMPORT_OWN_STDIO |
			 GHOST_IMPORT_CARRIED,
		.stdio = { -1, -1, -1 },
		.job_fd = -1,
		.source = from,
		.encrypt = d->config.encrypt,
	};
	struct proc_arrival a;
	char command[4096], path[4096], msg[512];
	struct mproc *old;
	struct buf b = BUF_INIT;
	struct move *m;
	struct attr pa;
	uint32_t flags, ppid;
	uint64_t rss_kib;
	uint16_t port;
	int lfd = -1, r;

	if (move_find(d, ROLE_IN, from, xfer))
		return; /* a duplicate: msg never sends one */
	m = move_new(d, ROLE_IN);
	if (!m) {
		log_warn("out of memory: refusing a process from node %u", from);
		return;
	}
	m->xfer = xfer;
	m->peer = from;
	m->state = MOVE_S_IMPORTING;
	if (!arrival_parse(data, len, &a, command, sizeof(command), path, sizeof(path), &flags)) {
		in_fail(m, -EPROTO, "malformed move request");
		move_free(m);
		return;
	}
	m->pid = a.pid;
	m->fork = flags & MOVE_F_FORK;
	if (m->fork) {
		/* The copy gets a PID of this node's range. */
		m->orig_pid = a.pid;
		r = proc_pick_pid(d, &m->pid);
		if (r < 0) {
			in_fail(m, r, "no free PID left in the range of node %u", d->self);
			move_free(m);
			return;
		}
		j.pid = m->pid;
	}
	old = proc_find(d, m->pid);
	if (old && old->state != MPROC_ELSEWHERE && old->state != MPROC_EXITED) {
		in_fail(m, -EEXIST, "PID %d is taken on node %u", (int)a.pid, d->self);
		move_free(m);
		return;
	}
	if (attr_find(data, len, A_RSS, &pa) >= 0 && attr_u64(&pa, &rss_kib) >= 0) {
		uint64_t avail = proc_memory_available();

		/* Refuse now rather than have the copy killed for memory midway. */
		if (rss_kib * 1024 > avail) {
			in_fail(m, -ENOMEM,
				"node %u is out of memory: process %d needs %llu MiB, node %u can "
				"give %llu MiB",
				d->self, (int)a.pid, (unsigned long long)(rss_kib >> 10), d->self,
				(unsigned long long)(avail >> 20));
			move_free(m);
			return;
		}
	}
	if (!m->fork && standin_holds(d, m->pid)) {
		/* Back where its stand-in holds its PID, for its parent or its
		 * children here: the stand-in turns into it. */
		ppid = 0;
		if (attr_find(data, len, A_PPID, &pa) >= 0)
			(void)attr_u32(&pa, &ppid);
		r = standin_turn_ready(d, m->pid, (pid_t)ppid);
		if (r < 0) {
			if (r == -ECHILD)
				in_fail(m, r,
					"process %d cannot come back to node %u: its stand-in holds "
					"its PID there under another parent",
					(int)m->pid, d->self);
			else
				in_fail(m, r,
					"process %d cannot come back to node %u yet: its stand-in "
					"there is not ready; try again",
					(int)m->pid, d->self);
			move_free(m);
			return;
		}
		m->become = m->child_standin = true;
	} else if (!m->fork) {
		/* A stand-in of it holds its PID here for its children: it turns
		 * into the process, so that they are its children again. (One
		 * that is going leaves the PID free in a moment: the import waits.) */
		r = standin_parent_ready(d, m->pid);
		if (r == -EBUSY) {
			in_fail(m, r,
				"process %d cannot move to node %u yet: a child of it is arriving "
				"there; try again",
				(int)m->pid, d->self);
			move_free(m);
			return;
		}
		if (r == 0 && attr_find(data, len, A_PPID, &pa) >= 0) {
			in_fail(m, -EBUSY,
				"process %d cannot move to node %u, where a child of it runs, while "
				"it has a parent of its own",
				(int)m->pid, d->self);
			move_free(m);
			return;
		}
		m->become = r == 0;
	}
	if (!m->fork) {
		r = arrival_kids(m, data, len, msg, sizeof(msg));
		if (r < 0) {
			in_fail(m, r, "%s", msg);
			move_free(m);
			return;
		}
		j.children = m->spawn ? m->spawn->child : NULL;
		j.n_children = m->n_kids;
	}
	if (m->child_standin && a.uid != 0 && m->n_kids) {
		/* It runs as the process's user: no PIDs of its choosing. */
		in_fail(m, -EPERM,
			"process %d cannot come back to node %u: its stand-in there runs as uid "
			"%u, which cannot give the stand-ins of its children on other nodes "
			"their PIDs",
			(int)m->pid, d->self, (unsigned)a.uid);
		move_free(m);
		return;
	}
	if (!m->fork && !m->become && attr_find(data, len, A_PPID, &pa) >= 0 &&
	    attr_u32(&pa, &ppid) >= 0 && ppid > 1) {
		/* The import worker takes the parent's PID and stays its stand-in. */
		m->ppid = (pid_t)ppid;
		j.parent = (pid_t)ppid;
		j.parent_uid = a.uid;
		/* Its parent's stand-in here is becoming the parent itself. */
		if (standin_parent_turning(d, m->ppid)) {
			in_fail(m, -EBUSY,
				"the parent of process %d, %d, is arriving on node %u; try again",
				(int)m->pid, (int)m->ppid, d->self);
			move_free(m);
			return;
		}
	}
	r = msg_chan_listen(self->address, &lfd, &port);
	if (r < 0) {
		in_fail(m, r, "node %u cannot listen for the transfer: %s", d->self, strerror(-r));
		move_free(m);
		return;
	}
	j.listen_fd = lfd;
	r = run_arrival_prepare(d, from, xfer, m->pid, m->fork, data, len, j.stdio, msg,
				sizeof(msg));
	if (r < 0) {
		safe_close(lfd);
		in_fail(m, r, "%s", msg);
		move_free(m);
		return;
	}
	r = msg_chan_key_new(j.key);
	if (r >= 0 && m->become) {
		j.flags |= GHOST_IMPORT_BECOME;
		j.own_kids = m->own;
		j.n_own_kids = m->n_own;
		if (m->child_standin)
			r = standin_turn(d, m->pid, &j, m->spawn, &m->report_fd);
		else
			r = standin_parent_turn(d, m->pid, &j, m->spawn, &m->report_fd);
		m->hosted = r >= 0;
		m->host_pid = m->pid;
	} else if (r >= 0 && j.parent) {
		/* A sibling's import worker holds the parent's PID here already:
		 * it imports this one too, as its child. */
		r = standin_parent_host(d, j.parent, &j, m->spawn, &m->report_fd);
		m->hosted = r >= 0;
		m->host_pid = j.parent;
		if (m->hosted)
			log_info("process %d: the stand-in of its parent %d here imports it",
				 (int)m->pid, (int)j.parent);
		else if (r == -ENOENT)
			r = 0;
	}
	if (r >= 0 && !m->hosted && j.parent)
		r = worker_job_socket(&m->job_fd, &j.job_fd);
	if (r >= 0 && !m->hosted)
		r = worker_import_start(&j, &m->worker, &m->report_fd);
	if (j.parent && !m->hosted)
		safe_close(j.job_fd);
	safe_close(lfd);
	for (int i = 0; i < 3; i++)
		safe_close(j.stdio[i]);
	if (r == -EEXIST && j.parent) {
		in_fail(m, r,
			"PID %d, the parent of process %d, is in use on node %u (by another of its "
			"children's parent stand-in, or another process)",
			(int)j.parent, (int)m->pid, d->self);
		move_free(m);
		return;
	}
	if (r >= 0 && watch_worker(m) < 0) {
		/* Without a watch the outcome would never be read. (A hosted
		 * import sees its report pipe close, and fails.) */
		if (m->worker > 0)
			(void)kill(m->worker, SIGKILL);
		m->report_fd = safe_close(m->report_fd);
		r = -ENOMEM;
	}
	if (r >= 0)
		r = attr_put_u32(&b, A_PORT, port);
	if (r >= 0)
		r = attr_put(&b, A_KEY, j.key, sizeof(j.key));
	if (r >= 0)
		r = send_move(m, MOVE_READY, &b);
	memset(j.key, 0, sizeof(j.key));
	buf_release(&b);
	if (r < 0) {
		in_fail(m, r, "node %u cannot start the import: %s", d->self, strerror(-r));
		/* The worker gives up when nobody connects. */
		m->aborted = true;
		if (m->report_fd < 0)
			move_free(m);
		return;
	}
	/* Keep what the source said about the process for proc_arrive(). */
	if (buf_append(&m->prepare, data, len) < 0) {
		in_fail(m, -ENOMEM, "out of memory on node %u", d->self);
		m->aborted = true;
	}
}

static void in_imported(struct move *m)
{
	struct node_daemon *d = m->d;
	struct proc_arrival a;
	char command[4096], path[4096];
	struct buf b = BUF_INIT;
	uint32_t flags;
	int r;

	if (m->result.err < 0 || m->result.pid <= 0) {
		in_fail(m, m->result.err < 0 ? m->result.err : -EIO, "%s",
			m->result.msg[0] ? m->result.msg : "the import failed");
		move_free(m);
		return;
	}
	if (m->aborted) {
		in_discard(m);
		return;
	}
	if (!arrival_parse(m->prepare.data, m->prepare.len, &a, command, sizeof(command), path,
			   sizeof(path), &flags) ||
	    m->pid != m->result.pid) {
		in_fail(m, -EPROTO, "the image holds process %d, not %d", (int)m->result.pid,
			(int)m->pid);
		in_discard(m);
		return;
	}
	if (m->fork) {
		a.pid = m->pid;
		a.forked_from = m->orig_pid;
	}
	r = proc_arrive(d, &a, &m->proc);
	if (r < 0) {
		in_fail(m, r, "cannot enter process %d in the table of node %u: %s", (int)a.pid,
			d->self, strerror(-r));
		in_discard(m);
		return;
	}
	if (m->become) {
		/* Its stand-in is the process now, and its children here its own:
		 * it reaps them, we only watch (and it, if its parent here does). */
		if (m->child_standin)
			standin_turned(d, m->pid);
		else
			standin_parent_turned(d, m->pid);
		if (proc_parent(m->pid) != getpid() && proc_parent_reaps(d, m->pid) < 0)
			log_warn("process %d: cannot watch it", (int)m->pid);
		for (size_t i = 0; i < m->n_own; i++)
			if (proc_parent_reaps(d, m->own[i]) < 0)
				log_warn("process %d: cannot watch its child %d", (int)m->pid,
					 (int)m->own[i]);
	}
	m->state = MOVE_S_HELD;
	r = attr_put_u64(&b, A_IMPORT_NS, m->result.stats.total_ns);
	if (r >= 0)
		r = attr_put_u32(&b, A_PID, (uint32_t)m->pid);
	if (r >= 0)
		r = send_move(m, MOVE_IMPORTED, &b);
	buf_release(&b);
	if (r < 0)
		in_discard(m); /* the source is gone: its original stays */
}

static bool is_own_kid(const struct move *m, pid_t kid)
{
	for (size_t i = 0; i < m->n_own; i++)
		if (m->own[i] == kid)
			return true;
	return false;
}

/* A child the parent waited for (through its stand-in on the source) just
 * before its export, here its own child: it must not find it again. (Its
 * stand-in there can end only with the child's end, which the stand-in here
 * did not reap once it began to turn: a zombie, or a child killed with its
 * stand-in.) */
static void own_kid_unseen(struct move *m, pid_t kid)
{
	char why[256];

	if (ghost_reap_child(m->pid, kid, why, sizeof(why)) < 0)
		log_warn("%s: process %d may see a child %d it had already waited for", why,
			 (int)m->pid, (int)kid);
}

static void in_commit(struct move *m, const void *data, size_t len)
{
	struct node_daemon *d = m->d;
	uint32_t birth = node_of_pid(d, m->pid);
	struct attr_iter it;
	struct attr a;
	uint32_t sig, kid, flags = 0;

	/* Before anything reaches it: the children it waited for just before
	 * its export go unseen. */
	attr_iter_init(&it, data, len);
	while (attr_next(&it, &a) > 0)
		if (a.type == A_CHILD_GONE && attr_u32(&a, &kid) >= 0) {
			if (is_own_kid(m, (pid_t)kid))
				own_kid_unseen(m, (pid_t)kid);
			else
				standin_arrival_unseen(d, m->pid, (pid_t)kid);
		}
	/* Signals sent while it was frozen, before it runs again. */
	attr_iter_init(&it, data, len);
	while (attr_next(&it, &a) > 0) {
		if (a.type == A_SIGNAL && attr_u32(&a, &sig) >= 0 && sig > 0 && sig < NSIG)
			(void)kill(m->pid, (int)sig);
		else if (a.type == A_FLAGS)
			(void)attr_u32(&a, &flags);
	}
	run_arrival_commit(d, m->peer, m->xfer, m->proc);
	m->proc->arriving = false;
	if (m->n_kids) {
		standin_arrivals_commit(d, m->pid, data, len);
		m->committed = true;
	}
	/* Held by a SIGSTOP since the import: one that was stopped stays so,
	 * until someone sends it SIGCONT as before. */
	if (!(flags & MOVE_F_STOPPED) && kill(m->pid, SIGCONT) < 0)
		log_warn_errno(errno, "cannot let process %d run", (int)m->pid);
	if (birth != d->self && birth != 0) {
		struct buf b = BUF_INIT;

		if (attr_put_u32(&b, A_PID, (uint32_t)m->pid) >= 0 &&
		    attr_put_u32(&b, A_NODE, d->self) >= 0 &&
		    msg_send(d->msg, birth, NODE_CH_PROC, PROC_WHERE, b.data, b.len) < 0)
			log_warn("cannot tell node %u that process %d runs here now", birth,
				 (int)m->pid);
		buf_release(&b);
	}
	(void)send_move(m, MOVE_DONE, NULL);
	if (m->fork)
		log_info("process %d: a copy of process %d from node %u", (int)m->pid,
			 (int)m->orig_pid, m->peer);
	else
		log_info("process %d arrived from node %u", (int)m->pid, m->peer);
	m->proc = NULL;
	move_free(m);
}

static void in_recv(struct move *m, uint32_t type, const void *data, size_t len)
{
	switch (type) {
	case MOVE_COMMIT:
		if (m->state == MOVE_S_HELD)
			in_commit(m, data, len);
		break;
	case MOVE_ABORT:
		if (m->state == MOVE_S_HELD)
			in_discard(m);
		else
			m->aborted = true; /* the worker fails soon: nothing is sent any more */
		break;
	default:
		break;
	}
}

/* ---- workers, timers, messages -------------------------------------------- */

static void worker_finished(struct move *m)
{
	m->worker_done = true;
	m->report_io = loop_io_free(m->report_io);
	if (m->role == ROLE_IN && m->ppid && !m->hosted && m->result.err == 0 &&
	    m->result.pid > 0) {
		/* The worker stays as the process's parent stand-in. */
		if (standin_parent_adopt(m->d, m->ppid, m->result.pid, m->report_fd,
					 m->job_fd) >= 0)
			m->report_fd = m->job_fd = -1;
		else
			(void)kill(m->worker, SIGKILL);
	}
	m->report_fd = safe_close(m->report_fd);
	if (m->role == ROLE_IN) {
		in_imported(m);
		return;
	}
	if (m->result.err < 0) {
		/* The export's own refusal is the cause, whatever the destination
		 * said first about the image it was left with (truncated). */
		if (!worker_link_error(m->result.err))
			m->err = 0;
		out_fail(m, m->result.err, "%s",
			 m->result.msg[0] ? m->result.msg : "the export failed");
	}
	else {
		m->done = m->total = m->result.stats.image_bytes;
	}
	out_step(m);
}

static void on_worker_io(struct loop_io *io, int fd, unsigned events, void *userdata)
{
	struct move *m = userdata;
	struct worker_report rep;
	enum worker_next next;

	(void)io;
	(void)fd;
	(void)events;
	for (;;) {
		next = worker_next_report(m->report_fd, m->role == ROLE_OUT ? "export" : "import",
					  m->d->self, &rep);
		if (next == WORKER_NEXT_NONE)
			return;
		if (next == WORKER_NEXT_PROGRESS) {
			if (m->role == ROLE_OUT) {
				m->done = rep.done;
				m->total = rep.total;
				send_progress(m);
				loop_timer_arm(m->timer, KEEPALIVE_USEC);
			}
			continue;
		}
		m->result = rep;
		worker_finished(m);
		return;
	}
}

static void on_timer(struct loop_timer *t, void *userdata)
{
	struct move *m = userdata;

	(void)t;
	if (m->role != ROLE_OUT)
		return;
	if (m->wait_reason) {
		out_rollback(m);
		return;
	}
	/* The original should be reaped within moments of its SIGKILL; never
	 * keep the asker waiting on it for long. */
	if (m->state == MOVE_S_COMMITTING && m->dest_done && ++m->reap_ticks >= 5) {
		out_done(m);
		return;
	}
	send_progress(m);
	loop_timer_arm(m->timer, KEEPALIVE_USEC);
}

static void move_recv(struct msg *msg, uint32_t node, uint16_t channel, uint32_t type,
		      const void *data, size_t len, void *userdata)
{
	struct node_daemon *d = userdata;
	struct attr a;
	uint64_t xfer = 0;
	struct move *m;

	(void)msg;
	(void)channel;
	if (d->leaving)
		return;
	if (attr_find(data, len, A_XFER, &a) >= 0)
		(void)attr_u64(&a, &xfer);
	if (xfer == 0)
		return;
	if (type == MOVE_PREPARE) {
		in_prepare(d, node, xfer, data, len);
		return;
	}
	if (type == MOVE_COMMIT || type == MOVE_ABORT) {
		m = move_find(d, ROLE_IN, node, xfer);
		if (m)
			in_recv(m, type, data, len);
		return;
	}
	m = move_find(d, ROLE_OUT, node, xfer);
	if (m)
		out_recv(m, type, data, len);
}

void move_register(struct node_daemon *d)
{
	struct msg_handler h = { .recv = move_recv };

	(void)msg_register(d->msg, NODE_CH_MOVE, &h, d);
}

void move_node_down(struct node_daemon *d, uint32_t node)
{
	struct move *m, *next;

	for (m = d->moves; m; m = next) {
		next = m->next;
		if (m->peer != node)
			continue;
		if (m->role == ROLE_IN) {
			/* The original is the process until the commit. */
			if (m->state == MOVE_S_HELD)
				in_discard(m);
			else
				m->aborted = true;
			continue;
		}
		switch (m->state) {
		case MOVE_S_PREPARING:
			out_fail(m, -EHOSTDOWN, "node %u failed before the transfer began", node);
			out_rollback(m);
			break;
		case MOVE_S_EXPORTING:
		case MOVE_S_ABORTING:
			out_fail(m, -EHOSTDOWN, "node %u failed during the transfer", node);
			out_step(m);
			break;
		case MOVE_S_STREAMS:
			break; /* the stream operation fails and says so */
		case MOVE_S_COMMITTING:
			if (m->dest_done)
				break; /* it runs there: the answer waits for the reap */
			answer_error(d, m->origin, m->req, -EHOSTDOWN,
				     "node %u failed just after process %d moved there", node,
				     (int)m->pid);
			move_free(m);
			break;
		default:
			break;
		}
	}
}

void move_free_all(struct node_daemon *d)
{
	while (d->moves) {
		struct move *m = d->moves;

		/* Shutting down mid-move: no process may stay frozen. */
		if (m->role == ROLE_OUT && m->proc && m->state != MOVE_S_COMMITTING) {
			if (m->worker > 0 && !m->worker_done)
				while (waitpid(m->worker, NULL, 0) < 0 && errno == EINTR)
					;
			(void)send_move(m, MOVE_ABORT, NULL);
			if (!m->was_stopped)
				(void)kill(m->pid, SIGCONT);
			for (size_t i = 0; i < m->n_signals; i++)
				(void)kill(m->pid, m->signals[i]);
		} else if (m->role == ROLE_IN) {
			if (m->worker > 0 && !m->worker_done)
				(void)kill(m->worker, SIGKILL);
			if (m->state == MOVE_S_HELD && m->result.pid > 0)
				(void)kill(m->result.pid, SIGKILL);
		}
		move_free(m);
	}
}

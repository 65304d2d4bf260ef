/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Memory checkpoints through the daemons (ghost checkpoint --memory, ghost
 * restart --from-memory, ghost checkpoints, ghost checkpoint --drop). A
 * checkpoint is kept in the memory of a keeper process (keeper.c) on its
 * holder node H; its id encodes H (H << 32 | number), as a PID's range
 * encodes its birth node, so requests about it go straight to H. The image
 * travels on direct data channels, as in a migration: from the export worker
 * of the node S where the process runs to H's keeper, and from the keeper to
 * the import worker of the node T it restarts on. No daemon and no third
 * node is on the data path. Four roles, each in its own struct:
 *
 *   C  the node whose client asked (struct keep_req): routes, waits, answers
 *   S  where the process runs (struct save): the export and its outcome
 *   H  the holder (struct kept): the keeper, the budget, restores
 *   T  where a checkpoint restarts (struct load): the import
 *
 * Taking one (C asks the PID's birth node, which passes it on once to S):
 *
 *   S                                           H
 *   STORE (identity, size estimate) ----------->  budget, fork the keeper
 *          <---------------------------- STORE_READY (port, key, id)
 *   fork the export worker ===== image =====>  keeper: verify, keep
 *     (the process is frozen meanwhile)
 *          <---------------------------- STORED
 *   STORE_COMMIT ------------------------------>  listed from now on
 *   (--kill: SIGKILL the process) answer C
 *
 * Restarting one (C asks H):
 *
 *   H: PROBE the PID's birth node (which asks where it runs): still running? refuse
 *   H                                           T
 *   LOAD (identity) --------------------------->  PID free? fork the import worker
 *          <---------------------------- LOAD_READY (port, key)
 *   keeper SEND ======== image ==============>  import, enter the table, SIGCONT
 *          <---------------------------- LOADED (or LOAD_FAILED)
 *   answer C
 *
 * A save (S):
 *
 *   PREPARING --STORE_READY--> EXPORTING --worker ok + STORED--> commit, answered, freed
 *       |                          |
 *       +-- STORE_FAILED, H down --+-- worker failed, STORE_FAILED, H down:
 *           (answered, freed)          wait for the worker, SIGCONT if held
 *                                      stopped, STORE_ABORT, answered, freed
 *
 * A kept checkpoint (H):
 *
 *   STORING --keeper ok--> STORED --STORE_COMMIT--> KEPT --restore--> KEPT ...
 *      |                     |                        |
 *      +-- keeper failed, STORE_ABORT, S down --------+-- drop, keeper died: freed
 *
 * Invariants:
 * 1. The process is untouched unless the checkpoint is kept: any failure
 *    before STORED lets it run on (SIGCONT when --stop or --kill held it),
 *    and --kill kills it only after STORE_COMMIT has gone to H.
 * 2. A checkpoint is listed, restarted and dropped only once KEPT.
 * 3. H's memory in use (k->used) is the sum of the KEPT and STORED images'
 *    sizes and of the STORING ones' reservations, and never exceeds the
 *    budget when a store starts; a keeper cannot hold more than its
 *    reservation.
 * 4. A checkpoint has at most one restore at a time, and its keeper sends at
 *    most one image at a time (kept->sending).
 * 5. A restarted process runs only from a complete, verified image (the
 *    import verifies every record) and only if the PID's birth node did not
 *    see it running; when that node is down, nobody knows, and it goes ahead.
 *
 *   event                          function
 *   CTL_CKPT_* request             keep_request()
 *   a node's question              keep_recv() -> save_question(), kept_store(),
 *                                  restore_question(), probe_question(), load_start(),
 *                                  list_answer(), drop_question()
 *   answers to C                   req_answer()
 *   worker or keeper report        on_save_io(), on_kept_io(), on_load_io()
 *   timers                         on_req_timer(), on_save_timer(), on_kept_timer()
 *   node down                      keep_node_down()
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX "keep"
#include "base/clock.h"
#include "base/fileio.h"
#include "base/log.h"
#include "node/node-int.h"
#include "base/banned.h"

/* A client request waits this long for news from the nodes it involves. */
#define REQ_TIMEOUT_USEC (10ull * 1000 * 1000)
/* Progress (or a keep-alive) goes to the asking node at least this often. */
#define TICK_USEC (1000 * 1000)
/* Ticks a side waits for the other's verdict once its own worker is done. */
#define VERDICT_TICKS 30
/* Ticks a source waits for the holder's reason after a broken connection. */
#define REASON_TICKS 2
/* Ticks a holder waits for the birth node to say whether the PID runs,
 * beyond the time msg takes to declare a silent node failed. */
#define PROBE_TICKS 3
/* A keeper may hold up to twice the estimate, and at least this much more. */
#define RESERVE_SLACK (64ull << 20)
/* Memory a node keeps free beside the checkpoints it accepts. */
#define MEM_MARGIN (64ull << 20)
#define MSG_SIZE 512

struct keep_req;
struct save;
struct kept;
struct load;

struct keep {
	struct node_daemon *d;
	struct keep_req *reqs;
	struct save *saves;
	struct kept *kept;
	struct load *loads;
	uint32_t next_seq;
	uint64_t limit; /* checkpoint memory of this node, bytes */
	uint64_t used;  /* invariant 3 */
};

/* What a restarted process is, as S described it. */
struct ident {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	uint64_t start_time;
	bool detached;
	char *command;
	char *log_path; /* may be NULL */
};

static void ident_release(struct ident *id)
{
	free(id->command);
	free(id->log_path);
	*id = (struct ident){ 0 };
}

static int ident_parse(const void *data, size_t len, struct ident *ret)
{
	struct ident id = { 0 };
	struct attr_iter it;
	struct attr a;
	uint32_t v;
	int r;

	attr_iter_init(&it, data, len);
	while ((r = attr_next(&it, &a)) > 0) {
		switch (a.type) {
		case A_PID:
			r = attr_u32(&a, &v);
			id.pid = (pid_t)v;
			break;
		case A_UID:
			r = attr_u32(&a, &v);
			id.uid = (uid_t)v;
			break;
		case A_GID:
			r = attr_u32(&a, &v);
			id.gid = (gid_t)v;
			break;
		case A_START:
			r = attr_u64(&a, &id.start_time);
			break;
		case A_FLAGS:
			r = attr_u32(&a, &v);
			id.detached = v & RUN_DETACH;
			break;
		case A_COMMAND:
			free(id.command);
			id.command = NULL;
			r = attr_strdup(&a, &id.command);
			break;
		case A_PATH:
			free(id.log_path);
			id.log_path = NULL;
			r = attr_strdup(&a, &id.log_path);
			break;
		default:
			break;
		}
		if (r < 0)
			break;
	}
	if (r >= 0 && !id.command)
		id.command = strdup("");
	if (r >= 0 && !id.command)
		r = -ENOMEM;
	if (r >= 0 && (id.pid <= 0 || id.pid >= NODE_PID_LIMIT))
		r = -EBADMSG;
	if (r < 0) {
		ident_release(&id);
		return r;
	}
	*ret = id;
	return 0;
}

static int ident_put(const struct ident *id, struct buf *b)
{
	int r;

	r = attr_put_u32(b, A_PID, (uint32_t)id->pid);
	if (r >= 0)
		r = attr_put_u32(b, A_UID, (uint32_t)id->uid);
	if (r >= 0)
		r = attr_put_u32(b, A_GID, (uint32_t)id->gid);
	if (r >= 0)
		r = attr_put_str(b, A_COMMAND, id->command ? id->command : "");
	if (r >= 0)
		r = attr_put_u64(b, A_START, id->start_time);
	if (r >= 0)
		r = attr_put_u32(b, A_FLAGS, id->detached ? RUN_DETACH : 0);
	if (r >= 0 && id->log_path)
		r = attr_put_str(b, A_PATH, id->log_path);
	return r;
}

/* ---- small helpers -------------------------------------------------------- */

static const char *ckpt_text(uint64_t id, char buf[24])
{
	snprintf(buf, 24, "%u.%u", (unsigned)(id >> 32), (unsigned)(id & 0xffffffffu));
	return buf;
}

static const char *mib_text(uint64_t bytes, char buf[32])
{
	snprintf(buf, 32, "%.1f MiB", (double)bytes / (1 << 20));
	return buf;
}

static bool node_up(struct node_daemon *d, uint32_t node)
{
	struct node_peer *p = node_peer_find(d, node);

	return p && (p->state == NODE_STATE_SELF || p->state == NODE_STATE_UP);
}

static const char *node_state_text(struct node_daemon *d, uint32_t node)
{
	struct node_peer *p = node_peer_find(d, node);

	return p ? node_state_to_string(p->state) : "unknown";
}

/* A field of /proc/meminfo in bytes, or 0. */
static uint64_t meminfo(const char *key)
{
	struct buf b = BUF_INIT;
	size_t klen = strlen(key);
	uint64_t v = 0;

	if (read_file_at(AT_FDCWD, "/proc/meminfo", &b) >= 0 && b.data) {
		for (char *line = b.data; line && *line;) {
			char *nl = strchr(line, '\n');
			unsigned long long kib;

			if (strncmp(line, key, klen) == 0 && line[klen] == ':' &&
			    sscanf(line + klen + 1, "%llu", &kib) == 1) {
				v = (uint64_t)kib << 10;
				break;
			}
			line = nl ? nl + 1 : NULL;
		}
	}
	buf_release(&b);
	return v;
}

/* Bytes of a process's memory that its image would hold: its anonymous and
 * shared memory, resident or swapped; 0 if unknown. */
static uint64_t estimate_image(struct node_daemon *d, pid_t pid)
{
	static const char *const keys[] = { "RssAnon", "RssShmem", "VmSwap" };
	struct buf b = BUF_INIT;
	char path[64];
	uint64_t sum = 0;

	if (!d->own_proc)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (read_file_at(AT_FDCWD, path, &b) < 0 || !b.data) {
		buf_release(&b);
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		const char *p = strstr(b.data, keys[i]);
		unsigned long long kib;

		if (p && p[strlen(keys[i])] == ':' &&
		    sscanf(p + strlen(keys[i]) + 1, "%llu", &kib) == 1)
			sum += (uint64_t)kib << 10;
	}
	buf_release(&b);
	/* Registers, mappings, files: small next to the pages. */
	return sum + (1u << 20);
}

static uint64_t compute_limit(const struct node_config *c)
{
	if (c->ckpt_memory_pct)
		return meminfo("MemTotal") / 100 * c->ckpt_memory_pct;
	return c->ckpt_memory;
}

static int send_keep(struct node_daemon *d, uint32_t node, uint32_t type, uint64_t xfer,
		     const struct buf *extra)
{
	struct buf b = BUF_INIT;
	int r;

	r = attr_put_u64(&b, A_XFER, xfer);
	if (r >= 0 && extra && extra->len)
		r = buf_append(&b, extra->data, extra->len);
	if (r >= 0)
		r = msg_send(d->msg, node, NODE_CH_KEEP, type, b.data, b.len);
	buf_release(&b);
	if (r < 0)
		log_debug_errno(r, "cannot send keep message %u to node %u", type, node);
	return r;
}

static int send_error_msg(struct node_daemon *d, uint32_t node, uint32_t type, uint64_t xfer,
			  int err, const char *msg)
{
	struct buf b = BUF_INIT;
	int r;

	r = attr_put_u32(&b, A_ERRNO, (uint32_t)(err < 0 ? -err : EIO));
	if (r >= 0)
		r = attr_put_str(&b, A_MESSAGE, msg);
	if (r >= 0)
		r = send_keep(d, node, type, xfer, &b);
	buf_release(&b);
	return r;
}

/* An answer to the asking node C: A_REQ, then attrs. */
static void answer(struct node_daemon *d, uint32_t origin, uint64_t req, uint32_t type,
		   const struct buf *attrs)
{
	node_answer(d, origin, NODE_CH_KEEP, type, req, attrs);
}

static void answer_error(struct node_daemon *d, uint32_t origin, uint64_t req, uint32_t type,
			 int err, const char *fmt, ...) _printf_(6, 7);
static void answer_error(struct node_daemon *d, uint32_t origin, uint64_t req, uint32_t type,
			 int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	node_answer_verror(d, origin, NODE_CH_KEEP, type, req, err, fmt, ap);
	va_end(ap);
}

static void send_progress(struct node_daemon *d, uint32_t origin, uint64_t req, uint64_t done,
			  uint64_t total)
{
	struct buf b = BUF_INIT;

	if (attr_put_u64(&b, A_DONE, done) >= 0 && attr_put_u64(&b, A_TOTAL, total) >= 0)
		answer(d, origin, req, KEEP_PROGRESS, &b);
	buf_release(&b);
}

/* Whatever a node may ask or answer: the common attributes. */
struct question {
	uint64_t req, xfer, ckpt;
	uint32_t origin, pid, uid, holder, node, flags, hops;
};

static int parse_question(const void *data, size_t len, struct question *q)
{
	struct attr_iter it;
	struct attr a;
	int r;

	*q = (struct question){ 0 };
	attr_iter_init(&it, data, len);
	while ((r = attr_next(&it, &a)) > 0) {
		switch (a.type) {
		case A_REQ:
			r = attr_u64(&a, &q->req);
			break;
		case A_XFER:
			r = attr_u64(&a, &q->xfer);
			break;
		case A_CKPT_ID:
			r = attr_u64(&a, &q->ckpt);
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
		case A_HOLDER:
			r = attr_u32(&a, &q->holder);
			break;
		case A_NODE:
			r = attr_u32(&a, &q->node);
			break;
		case A_FLAGS:
			r = attr_u32(&a, &q->flags);
			break;
		case A_HOPS:
			r = attr_u32(&a, &q->hops);
			break;
		default:
			break;
		}
		if (r < 0)
			return r;
	}
	return r;
}

/* Pass a question on to node, one hop more; false if node is down. */
static bool forward(struct node_daemon *d, uint32_t node, uint32_t type, const void *data,
		    size_t len, uint32_t hops)
{
	struct buf b = BUF_INIT;
	struct attr_iter it;
	struct attr a;
	int r = 0;

	attr_iter_init(&it, data, len);
	while (r >= 0 && attr_next(&it, &a) > 0)
		if (a.type != A_HOPS)
			r = attr_put(&b, a.type, a.data, a.len);
	if (r >= 0)
		r = attr_put_u32(&b, A_HOPS, hops + 1);
	if (r >= 0)
		r = msg_send(d->msg, node, NODE_CH_KEEP, type, b.data, b.len);
	buf_release(&b);
	return r >= 0;
}

/* ---- C: client requests ----------------------------------------------------- */

enum req_kind {
	KR_SAVE,
	KR_RESTORE,
	KR_LIST,
	KR_DROP,
};

struct keep_req {
	struct keep_req *next, *prev;
	struct keep *k;
	enum req_kind kind;
	uint64_t id;
	struct ctl_conn *conn;
	struct loop_timer *timer;
	uint32_t node;     /* the node asked */
	uint32_t current;  /* SAVE: the node taking it, once it said so */
	uint32_t *waiting; /* LIST */
	size_t n_waiting;
	uint64_t ckpt;
};

static struct keep_req *req_free(struct keep_req *r)
{
	if (!r)
		return NULL;
	LIST_REMOVE(r->k->reqs, r);
	if (r->conn) {
		ctl_conn_set_keep(r->conn, NULL);
		r->conn = NULL;
	}
	r->timer = loop_timer_free(r->timer);
	free(r->waiting);
	free(r);
	return NULL;
}

static void req_fail(struct keep_req *r, int err, const char *fmt, ...) _printf_(3, 4);
static void req_fail(struct keep_req *r, int err, const char *fmt, ...)
{
	struct ctl_conn *c = r->conn;
	char msg[MSG_SIZE];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	req_free(r);
	if (c)
		ctl_send_error(c, err, 0, "%s", msg);
}

static void req_done(struct keep_req *r, uint16_t type, const struct buf *payload)
{
	struct ctl_conn *c = r->conn;

	req_free(r);
	if (c && ctl_send(c, type, payload) >= 0)
		ctl_finish(c);
}

static void warn_client(struct ctl_conn *c, const char *fmt, ...) _printf_(2, 3);
static void warn_client(struct ctl_conn *c, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	char msg[MSG_SIZE];
	va_list ap;

	if (!c)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (attr_put_str(&b, A_MESSAGE, msg) >= 0)
		(void)ctl_send(c, CTL_WARNING, &b);
	buf_release(&b);
}

static void on_req_timer(struct loop_timer *t, void *userdata)
{
	struct keep_req *r = userdata;

	(void)t;
	if (r->kind == KR_LIST) {
		for (size_t i = 0; i < r->n_waiting; i++)
			warn_client(r->conn,
				    "node %u did not answer: its checkpoints are not listed",
				    r->waiting[i]);
		req_done(r, CTL_END, NULL);
		return;
	}
	req_fail(r, -ETIMEDOUT, "node %u did not answer in time",
		 r->current ? r->current : r->node);
}

static struct keep_req *req_new(struct keep *k, struct ctl_conn *c, enum req_kind kind)
{
	struct keep_req *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->k = k;
	r->kind = kind;
	r->id = node_new_id(k->d);
	if (loop_timer_new(k->d->loop, on_req_timer, r, &r->timer) < 0) {
		free(r);
		return NULL;
	}
	loop_timer_arm(r->timer, REQ_TIMEOUT_USEC);
	LIST_PREPEND(k->reqs, r);
	r->conn = c;
	ctl_conn_set_keep(c, r);
	return r;
}

static struct keep_req *req_find(struct keep *k, uint64_t id)
{
	for (struct keep_req *r = k->reqs; r; r = r->next)
		if (r->id == id)
			return r;
	return NULL;
}

static void start_list(struct keep *k, struct ctl_conn *c)
{
	struct node_daemon *d = k->d;
	struct keep_req *r = req_new(k, c, KR_LIST);
	struct buf b = BUF_INIT;
	int e;

	if (!r) {
		ctl_send_error(c, -ENOMEM, 0, "out of memory");
		return;
	}
	r->waiting = NEW_ARRAY(uint32_t, d->n_peers);
	e = r->waiting ? attr_put_u64(&b, A_REQ, r->id) : -ENOMEM;
	if (e >= 0)
		e = attr_put_u32(&b, A_UID, (uint32_t)ctl_conn_uid(c));
	if (e < 0) {
		buf_release(&b);
		req_fail(r, e, "out of memory");
		return;
	}
	for (size_t i = 0; i < d->n_peers; i++) {
		const struct node_peer *p = &d->peers[i];

		if (p->state != NODE_STATE_SELF && p->state != NODE_STATE_UP) {
			warn_client(c, "node %u is %s: its checkpoints are not listed", p->id,
				    node_state_to_string(p->state));
			continue;
		}
		e = msg_send(d->msg, p->id, NODE_CH_KEEP, KEEP_LIST_REQ, b.data, b.len);
		if (e < 0) {
			warn_client(c, "cannot ask node %u: %s", p->id, strerror(-e));
			continue;
		}
		r->waiting[r->n_waiting++] = p->id;
	}
	buf_release(&b);
	if (r->n_waiting == 0)
		req_done(r, CTL_END, NULL);
}

/* Where a question about the managed process pid goes: its birth node, or
 * this node when the birth node is down but the process runs here. */
static int route_pid(struct node_daemon *d, struct ctl_conn *c, pid_t pid, uint32_t *ret)
{
	uint32_t birth = node_of_pid(d, pid);
	struct mproc *p;

	if (pid <= 0 || birth == 0) {
		ctl_send_error(c, -ESRCH, 0, "no managed process %d: no node hands out that PID",
			       (int)pid);
		return -ESRCH;
	}
	if (node_up(d, birth)) {
		*ret = birth;
		return 0;
	}
	p = proc_find(d, pid);
	if (p && (p->state == MPROC_RUNNING || p->state == MPROC_SPAWNING)) {
		*ret = d->self;
		return 0;
	}
	ctl_send_error(c, -EHOSTDOWN, 0, "process %d belongs to node %u, which is %s", (int)pid,
		       birth, node_state_text(d, birth));
	return -EHOSTDOWN;
}

/* The holder of a checkpoint id, if it can be asked. */
static int route_ckpt(struct node_daemon *d, struct ctl_conn *c, uint64_t ckpt, uint32_t *ret)
{
	uint32_t holder = (uint32_t)(ckpt >> 32);
	char id[24];

	if (holder == 0 || (ckpt & 0xffffffffu) == 0 || !node_peer_find(d, holder)) {
		ctl_send_error(c, -ENOENT, 0, "no checkpoint %s: no node %u in the cluster",
			       ckpt_text(ckpt, id), holder);
		return -ENOENT;
	}
	if (!node_up(d, holder)) {
		ctl_send_error(c, -EHOSTDOWN, 0,
			       "checkpoint %s is kept on node %u, which is %s", ckpt_text(ckpt, id),
			       holder, node_state_text(d, holder));
		return -EHOSTDOWN;
	}
	*ret = holder;
	return 0;
}

void keep_request(struct node_daemon *d, struct ctl_conn *c, const struct ctl_request *req)
{
	struct keep *k = d->keep;
	struct question q;
	struct keep_req *r;
	struct buf b = BUF_INIT;
	uint32_t to = 0, type;
	enum req_kind kind;
	int e;

	if (parse_question(req->payload, req->len, &q) < 0) {
		ctl_send_error(c, -EBADMSG, 0, "malformed request");
		return;
	}
	switch (req->type) {
	case CTL_CKPT_LIST:
		start_list(k, c);
		return;
	case CTL_CKPT_SAVE:
		if (q.holder && !node_peer_find(d, q.holder)) {
			ctl_send_error(c, -EHOSTUNREACH, 0, "no node %u in the cluster", q.holder);
			return;
		}
		if (route_pid(d, c, (pid_t)q.pid, &to) < 0)
			return;
		kind = KR_SAVE;
		type = KEEP_SAVE_REQ;
		break;
	case CTL_CKPT_RESTORE:
		if (q.node && !node_peer_find(d, q.node)) {
			ctl_send_error(c, -EHOSTUNREACH, 0, "no node %u in the cluster", q.node);
			return;
		}
		if (route_ckpt(d, c, q.ckpt, &to) < 0)
			return;
		kind = KR_RESTORE;
		type = KEEP_RESTORE_REQ;
		break;
	case CTL_CKPT_DROP:
		if (route_ckpt(d, c, q.ckpt, &to) < 0)
			return;
		kind = KR_DROP;
		type = KEEP_DROP_REQ;
		break;
	default:
		ctl_send_error(c, -EPROTO, 0, "unknown request");
		return;
	}
	r = req_new(k, c, kind);
	if (!r) {
		ctl_send_error(c, -ENOMEM, 0, "out of memory");
		return;
	}
	r->node = to;
	r->ckpt = q.ckpt;
	e = attr_put_u64(&b, A_REQ, r->id);
	if (e >= 0)
		e = attr_put_u32(&b, A_ORIGIN, d->self);
	if (e >= 0)
		e = attr_put_u32(&b, A_UID, (uint32_t)ctl_conn_uid(c));
	if (e >= 0 && kind == KR_SAVE) {
		e = attr_put_u32(&b, A_PID, q.pid);
		if (e >= 0)
			e = attr_put_u32(&b, A_HOLDER, q.holder);
		if (e >= 0)
			e = attr_put_u32(&b, A_FLAGS, q.flags & (KEEP_F_STOP | KEEP_F_KILL));
		if (e >= 0)
			e = attr_put_u32(&b, A_HOPS, 0);
	}
	if (e >= 0 && kind != KR_SAVE)
		e = attr_put_u64(&b, A_CKPT_ID, q.ckpt);
	if (e >= 0 && kind == KR_RESTORE)
		e = attr_put_u32(&b, A_NODE, q.node);
	if (e >= 0)
		e = msg_send(d->msg, to, NODE_CH_KEEP, type, b.data, b.len);
	buf_release(&b);
	if (e < 0)
		req_fail(r, e, "cannot ask node %u: %s", to, strerror(-e));
}

void keep_conn_gone(struct keep_req *r)
{
	r->conn = NULL;
	req_free(r);
}

static void list_reply(struct keep_req *r, uint32_t node, const void *data, size_t len)
{
	struct buf b = BUF_INIT;
	struct attr_iter it;
	struct attr a;
	uint64_t used = 0, limit = 0;
	size_t i;
	int e;

	for (i = 0; i < r->n_waiting; i++)
		if (r->waiting[i] == node)
			break;
	if (i == r->n_waiting)
		return;
	r->waiting[i] = r->waiting[--r->n_waiting];
	attr_iter_init(&it, data, len);
	while ((e = attr_next(&it, &a)) > 0) {
		if (a.type == A_MEM_USED)
			(void)attr_u64(&a, &used);
		else if (a.type == A_MEM_LIMIT)
			(void)attr_u64(&a, &limit);
		else if (a.type == A_CKPT && r->conn) {
			buf_reset(&b);
			if (buf_append(&b, a.data, a.len) >= 0)
				(void)ctl_send(r->conn, CTL_CKPT, &b);
		}
	}
	if (e < 0)
		warn_client(r->conn, "node %u sent a malformed checkpoint list", node);
	buf_reset(&b);
	if (r->conn && attr_put_u32(&b, A_NODE, node) >= 0 &&
	    attr_put_u64(&b, A_MEM_USED, used) >= 0 && attr_put_u64(&b, A_MEM_LIMIT, limit) >= 0)
		(void)ctl_send(r->conn, CTL_CKPT_NODE, &b);
	buf_release(&b);
	if (r->n_waiting == 0)
		req_done(r, CTL_END, NULL);
}

/* An answer from another node for one of our clients. */
static void req_answer(struct keep *k, uint32_t node, uint32_t type, const void *data,
		       size_t len)
{
	struct attr_iter it;
	struct attr a;
	uint64_t id = 0;
	uint32_t err = 0;
	char msg[MSG_SIZE] = "";
	struct buf b = BUF_INIT;
	struct keep_req *r;
	uint16_t ctl;
	int e = 0;

	attr_iter_init(&it, data, len);
	while (attr_next(&it, &a) > 0) {
		if (a.type == A_REQ)
			(void)attr_u64(&a, &id);
		else if (a.type == A_ERRNO)
			(void)attr_u32(&a, &err);
		else if (a.type == A_MESSAGE)
			(void)attr_strcpy(&a, msg, sizeof(msg));
	}
	r = req_find(k, id);
	if (!r)
		return; /* its client is gone */
	if (type == KEEP_LIST_REP) {
		if (r->kind == KR_LIST)
			list_reply(r, node, data, len);
		return;
	}
	if (r->kind == KR_LIST)
		return;
	if (type == KEEP_PROGRESS) {
		if (r->kind == KR_SAVE)
			r->current = node;
		loop_timer_arm(r->timer, REQ_TIMEOUT_USEC);
		attr_iter_init(&it, data, len);
		while (e >= 0 && attr_next(&it, &a) > 0)
			if (a.type == A_DONE || a.type == A_TOTAL)
				e = attr_put(&b, a.type, a.data, a.len);
		if (e >= 0 && r->conn)
			(void)ctl_send(r->conn, CTL_PROGRESS, &b);
		buf_release(&b);
		return;
	}
	if ((type == KEEP_SAVE_REP && r->kind != KR_SAVE) ||
	    (type == KEEP_RESTORE_REP && r->kind != KR_RESTORE) ||
	    (type == KEEP_DROP_REP && r->kind != KR_DROP))
		return;
	if (err) {
		req_fail(r, -(int)err, "%s", msg[0] ? msg : strerror((int)err));
		return;
	}
	ctl = type == KEEP_SAVE_REP ? CTL_CKPT_SAVED
	      : type == KEEP_RESTORE_REP ? CTL_CKPT_RESTORED
					 : CTL_CKPT_DROPPED;
	attr_iter_init(&it, data, len);
	while (e >= 0 && attr_next(&it, &a) > 0)
		if (a.type != A_REQ && a.type != A_ERRNO && a.type != A_MESSAGE)
			e = attr_put(&b, a.type, a.data, a.len);
	if (e < 0)
		req_fail(r, e, "out of memory");
	else
		req_done(r, ctl, &b);
	buf_release(&b);
}

/* ---- S: taking a checkpoint of a process that runs here ------------------- */

enum save_state {
	SAVE_PREPARING,
	SAVE_EXPORTING,
	SAVE_ENDING, /* --kill: kept; waiting for the process to be reaped */
};

struct save {
	struct save *next, *prev;
	struct keep *k;
	enum save_state state;
	uint64_t xfer;
	uint32_t holder;
	uint32_t origin;
	uint64_t req;
	pid_t pid;
	uid_t uid;
	uint32_t flags;         /* KEEP_F_STOP, KEEP_F_KILL */
	pid_t worker;
	int report_fd;
	struct loop_io *report_io;
	bool worker_started, worker_done;
	struct worker_report result;
	bool stored;            /* STORED came */
	bool holder_failed;     /* STORE_FAILED came, or H went down */
	int herr;
	char hmsg[MSG_SIZE];
	uint64_t ckpt, bytes;
	uint64_t start_ns, done, total;
	unsigned ticks;         /* since the worker was done, waiting for H */
	struct loop_timer *timer;
};

static struct save *save_find(struct keep *k, uint32_t holder, uint64_t xfer)
{
	for (struct save *s = k->saves; s; s = s->next)
		if (s->holder == holder && s->xfer == xfer)
			return s;
	return NULL;
}

static void save_free(struct save *s)
{
	struct mproc *p = proc_find(s->k->d, s->pid);

	if (p)
		p->keeping = false;
	LIST_REMOVE(s->k->saves, s);
	s->report_io = loop_io_free(s->report_io);
	s->report_fd = safe_close(s->report_fd);
	s->timer = loop_timer_free(s->timer);
	free(s);
}

/* The process goes on as it was; tell C why there is no checkpoint. */
static void save_fail(struct save *s, int err, const char *fmt, ...) _printf_(3, 4);
static void save_fail(struct save *s, int err, const char *fmt, ...)
{
	struct node_daemon *d = s->k->d;
	char msg[MSG_SIZE];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* The export held it stopped (or failed and let it go: harmless). */
	if (s->worker_started && (s->flags & (KEEP_F_STOP | KEEP_F_KILL)) &&
	    kill(s->pid, SIGCONT) < 0 && errno != ESRCH)
		log_warn_errno(errno, "cannot resume process %d", (int)s->pid);
	/* H frees what it holds (nothing, if it failed itself or is down). */
	(void)send_keep(d, s->holder, KEEP_STORE_ABORT, s->xfer, NULL);
	log_warn("process %d: no checkpoint on node %u: %s", (int)s->pid, s->holder, msg);
	answer_error(d, s->origin, s->req, KEEP_SAVE_REP, err,
		     "cannot checkpoint process %d to node %u: %s", (int)s->pid, s->holder, msg);
	save_free(s);
}

static void save_answer(struct save *s)
{
	struct node_daemon *d = s->k->d;
	const struct ghost_stats *st = &s->result.stats;
	struct buf b = BUF_INIT;
	char id[24], size[32];
	int r;

	r = attr_put_u32(&b, A_ERRNO, 0);
	if (r >= 0)
		r = attr_put_u64(&b, A_CKPT_ID, s->ckpt);
	if (r >= 0)
		r = attr_put_u32(&b, A_PID, (uint32_t)s->pid);
	if (r >= 0)
		r = attr_put_u32(&b, A_NODE, d->self);
	if (r >= 0)
		r = attr_put_u32(&b, A_HOLDER, s->holder);
	if (r >= 0)
		r = attr_put_u64(&b, A_BYTES, s->bytes ? s->bytes : st->image_bytes);
	if (r >= 0)
		r = attr_put_u64(&b, A_PAGES, st->pages);
	if (r >= 0)
		r = attr_put_u64(&b, A_TOTAL_NS, now_ns() - s->start_ns);
	if (r >= 0)
		r = attr_put_u64(&b, A_FROZEN_NS, st->frozen_ns);
	if (r >= 0)
		r = attr_put_u64(&b, A_EXPORT_NS, st->total_ns);
	if (r >= 0)
		r = attr_put_u32(&b, A_FLAGS, s->flags);
	if (r >= 0)
		answer(d, s->origin, s->req, KEEP_SAVE_REP, &b);
	buf_release(&b);
	log_info("process %d: checkpoint %s kept on node %u, %s%s", (int)s->pid,
		 ckpt_text(s->ckpt, id), s->holder, mib_text(s->bytes, size),
		 (s->flags & KEEP_F_KILL) ? ", process ended" : "");
	save_free(s);
}

static void save_done(struct save *s)
{
	struct node_daemon *d = s->k->d;
	struct buf b = BUF_INIT;
	struct mproc *p;
	int r;

	r = attr_put_u64(&b, A_PAGES, s->result.stats.pages);
	if (r >= 0)
		r = send_keep(d, s->holder, KEEP_STORE_COMMIT, s->xfer, &b);
	buf_release(&b);
	if (r < 0) {
		/* H is gone, and the checkpoint with it. */
		s->holder_failed = true;
		save_fail(s, -EHOSTDOWN, "node %u failed just as it took the checkpoint",
			  s->holder);
		return;
	}
	if (!(s->flags & KEEP_F_KILL)) {
		save_answer(s);
		return;
	}
	/* Committed: only now may the process go. Answer once it is reaped, so
	 * that a restart right after finds its PID free. */
	if (kill(s->pid, SIGKILL) < 0 && errno != ESRCH)
		log_warn_errno(errno, "cannot end process %d after its checkpoint", (int)s->pid);
	p = proc_find(d, s->pid);
	if (!p || (p->state != MPROC_RUNNING && p->state != MPROC_SPAWNING)) {
		save_answer(s);
		return;
	}
	s->state = SAVE_ENDING;
	s->ticks = 0;
}

void keep_proc_exited(struct node_daemon *d, struct mproc *p)
{
	for (struct save *s = d->keep ? d->keep->saves : NULL; s; s = s->next)
		if (s->pid == p->pid) {
			if (s->state == SAVE_ENDING)
				save_answer(s);
			return;
		}
}

/* What is known of both halves decides. */
static void save_step(struct save *s)
{
	int werr = s->result.err;

	if (s->state == SAVE_PREPARING) {
		if (s->holder_failed)
			save_fail(s, s->herr, "%s", s->hmsg);
		return;
	}
	if (s->state == SAVE_ENDING) {
		/* Never keep the asker waiting on the reap for long. */
		if (s->ticks >= REASON_TICKS)
			save_answer(s);
		return;
	}
	if (!s->worker_done)
		return;
	if (werr >= 0 && s->stored) {
		save_done(s);
		return;
	}
	if (werr < 0 && !worker_link_error(werr)) {
		/* The engine's own reason is the real one. */
		save_fail(s, werr, "%s", s->result.msg[0] ? s->result.msg : "the export failed");
		return;
	}
	if (s->holder_failed) {
		save_fail(s, s->herr, "%s", s->hmsg);
		return;
	}
	if (werr < 0 && s->ticks >= REASON_TICKS) {
		save_fail(s, werr, "%s", s->result.msg[0] ? s->result.msg : "the export failed");
		return;
	}
	if (werr >= 0 && s->ticks >= VERDICT_TICKS) {
		save_fail(s, -ETIMEDOUT, "node %u did not confirm the checkpoint", s->holder);
		return;
	}
	/* Wait for H's verdict (its timer ticks). */
}

static void on_save_timer(struct loop_timer *t, void *userdata)
{
	struct save *s = userdata;
	struct keep *k = s->k;
	uint32_t holder = s->holder;
	uint64_t xfer = s->xfer;

	(void)t;
	send_progress(k->d, s->origin, s->req, s->done, s->total);
	if (s->worker_done) {
		s->ticks++;
		save_step(s);
		if (save_find(k, holder, xfer) != s)
			return; /* decided and freed */
	}
	loop_timer_arm(s->timer, TICK_USEC);
}

static void on_save_io(struct loop_io *io, int fd, unsigned events, void *userdata)
{
	struct save *s = userdata;
	struct worker_report rep;
	enum worker_next next;

	(void)io;
	(void)fd;
	(void)events;
	for (;;) {
		next = worker_next_report(s->report_fd, "export", s->k->d->self, &rep);
		if (next == WORKER_NEXT_NONE)
			return;
		if (next == WORKER_NEXT_PROGRESS) {
			s->done = rep.done;
			s->total = rep.total;
			send_progress(s->k->d, s->origin, s->req, s->done, s->total);
			continue;
		}
		s->result = rep;
		s->worker_done = true;
		s->report_io = loop_io_free(s->report_io);
		s->report_fd = safe_close(s->report_fd);
		if (rep.err >= 0)
			s->done = s->total = rep.stats.image_bytes;
		save_step(s);
		return;
	}
}

static void save_ready(struct save *s, const void *data, size_t len)
{
	struct node_daemon *d = s->k->d;
	const struct node_config_node *cn = node_config_find(&d->config, s->holder);
	struct worker_export_job j = {
		.pid = s->pid,
		.flags = (s->flags & (KEEP_F_STOP | KEEP_F_KILL)) ? GHOST_EXPORT_STOP : 0,
		.dest = s->holder,
		.encrypt = d->config.encrypt,
	};
	struct attr a;
	int r;

	if (attr_find(data, len, A_CKPT_ID, &a) >= 0)
		(void)attr_u64(&a, &s->ckpt);
	if (!cn || attr_find_channel(data, len, &j.port, j.key) < 0 || s->ckpt == 0) {
		save_fail(s, -EPROTO, "node %u sent a malformed answer", s->holder);
		return;
	}
	j.host = cn->address;
	s->state = SAVE_EXPORTING;
	r = worker_export_start(&j, &s->worker, &s->report_fd);
	explicit_bzero(j.key, sizeof(j.key));
	if (r < 0) {
		save_fail(s, r, "cannot start the export of process %d: %s", (int)s->pid,
			  strerror(-r));
		return;
	}
	s->worker_started = true;
	r = loop_io_new(d->loop, s->report_fd, LOOP_READ, on_save_io, s, &s->report_io);
	if (r < 0) {
		/* Without a watch the outcome would never be read: wait for it now. */
		while (waitpid(s->worker, NULL, 0) < 0 && errno == EINTR)
			;
		save_fail(s, r, "out of memory on node %u", d->self);
	}
}

static void save_recv(struct save *s, uint32_t type, const void *data, size_t len)
{
	struct attr_iter it;
	struct attr a;
	uint32_t err = EIO;

	switch (type) {
	case KEEP_STORE_READY:
		if (s->state == SAVE_PREPARING)
			save_ready(s, data, len);
		return;
	case KEEP_STORED:
		attr_iter_init(&it, data, len);
		while (attr_next(&it, &a) > 0)
			if (a.type == A_BYTES)
				(void)attr_u64(&a, &s->bytes);
		s->stored = true;
		save_step(s);
		return;
	case KEEP_STORE_FAILED:
		attr_iter_init(&it, data, len);
		while (attr_next(&it, &a) > 0) {
			if (a.type == A_ERRNO)
				(void)attr_u32(&a, &err);
			else if (a.type == A_MESSAGE)
				(void)attr_strcpy(&a, s->hmsg, sizeof(s->hmsg));
		}
		if (!s->hmsg[0])
			snprintf(s->hmsg, sizeof(s->hmsg), "node %u failed to keep it", s->holder);
		s->herr = -(int)(err ? err : EIO);
		s->holder_failed = true;
		save_step(s);
		return;
	default:
		return;
	}
}

static int check_savable(struct node_daemon *d, struct mproc *p, const struct question *q,
			 uint32_t holder, char *msg, size_t size)
{
	pid_t pid = (pid_t)q->pid;

	if (!p || p->state == MPROC_ELSEWHERE || p->exec_failed) {
		snprintf(msg, size, "no managed process %d", (int)pid);
		return -ESRCH;
	}
	if (p->state == MPROC_EXITED) {
		snprintf(msg, size, "process %d has exited", (int)pid);
		return -ESRCH;
	}
	if (q->uid != 0 && q->uid != p->uid) {
		snprintf(msg, size,
			 "not allowed to checkpoint process %d: it belongs to another user",
			 (int)pid);
		return -EPERM;
	}
	if (q->uid != 0 && !proc_plain_creds(pid, q->uid)) {
		snprintf(msg, size,
			 "not allowed to checkpoint process %d: it runs with other rights than its "
			 "user's (a setuid program?); only root may",
			 (int)pid);
		return -EPERM;
	}
	if (!node_peer_find(d, holder)) {
		snprintf(msg, size, "no node %u in the cluster", holder);
		return -EHOSTUNREACH;
	}
	if (!node_up(d, holder)) {
		snprintf(msg, size, "node %u is %s", holder, node_state_text(d, holder));
		return -EHOSTDOWN;
	}
	if (p->state == MPROC_SPAWNING || p->arriving) {
		snprintf(msg, size, "process %d is starting; try again", (int)pid);
		return -EAGAIN;
	}
	if (p->moving) {
		snprintf(msg, size, "process %d is moving; try again", (int)pid);
		return -EBUSY;
	}
	if (p->keeping) {
		snprintf(msg, size, "process %d is already being checkpointed", (int)pid);
		return -EBUSY;
	}
	if (p->session) {
		snprintf(msg, size,
			 "process %d is attached to a 'ghost run'; only detached processes "
			 "(ghost run -d) can be checkpointed to memory for now",
			 (int)pid);
		return -EOPNOTSUPP;
	}
	return 0;
}

static void save_question(struct keep *k, const void *data, size_t len)
{
	struct node_daemon *d = k->d;
	struct question q;
	struct mproc *p;
	struct save *s;
	struct ident id;
	struct buf b = BUF_INIT;
	uint32_t holder;
	char msg[MSG_SIZE];
	int r;

	if (parse_question(data, len, &q) < 0 || !q.req || !q.origin) {
		log_warn("malformed checkpoint request, ignoring");
		return;
	}
	p = proc_find(d, (pid_t)q.pid);
	if (p && p->state == MPROC_ELSEWHERE && q.hops == 0) {
		if (!forward(d, p->node, KEEP_SAVE_REQ, data, len, q.hops))
			answer_error(d, q.origin, q.req, KEEP_SAVE_REP, -EHOSTDOWN,
				     "process %u runs on node %u, which is %s", q.pid, p->node,
				     node_state_text(d, p->node));
		return;
	}
	holder = q.holder ? q.holder : d->self;
	r = check_savable(d, p, &q, holder, msg, sizeof(msg));
	if (r < 0) {
		answer_error(d, q.origin, q.req, KEEP_SAVE_REP, r, "%s", msg);
		return;
	}
	s = calloc(1, sizeof(*s));
	if (!s || loop_timer_new(d->loop, on_save_timer, s, &s->timer) < 0) {
		free(s);
		answer_error(d, q.origin, q.req, KEEP_SAVE_REP, -ENOMEM, "out of memory on node %u",
			     d->self);
		return;
	}
	s->k = k;
	s->report_fd = -1;
	s->worker = -1;
	s->xfer = node_new_id(d);
	s->holder = holder;
	s->origin = q.origin;
	s->req = q.req;
	s->pid = (pid_t)q.pid;
	s->uid = (uid_t)q.uid;
	s->flags = q.flags & (KEEP_F_STOP | KEEP_F_KILL);
	s->start_ns = now_ns();
	LIST_PREPEND(k->saves, s);
	p->keeping = true;
	id = (struct ident){ .pid = p->pid,
			     .uid = p->uid,
			     .gid = p->gid,
			     .start_time = p->start_time,
			     .detached = p->detached,
			     .command = p->command,
			     .log_path = p->log_path };
	r = ident_put(&id, &b);
	if (r >= 0)
		r = attr_put_u64(&b, A_ESTIMATE, estimate_image(d, s->pid));
	if (r >= 0)
		r = send_keep(d, holder, KEEP_STORE, s->xfer, &b);
	buf_release(&b);
	if (r < 0) {
		s->holder_failed = true;
		save_fail(s, r, "cannot reach node %u: %s", holder, strerror(-r));
		return;
	}
	loop_timer_arm(s->timer, TICK_USEC);
	log_info("process %d: checkpoint to the memory of node %u for uid %u", (int)s->pid, holder,
		 (unsigned)s->uid);
}

/* ---- H: the checkpoints kept here ------------------------------------------ */

enum kept_state {
	KEPT_STORING,
	KEPT_STORED,
	KEPT_READY,
};

enum restore_state {
	RESTORE_NONE,
	RESTORE_PROBING,
	RESTORE_LOADING, /* LOAD sent, waiting for LOAD_READY */
	RESTORE_SENDING,
};

struct kept {
	struct kept *next, *prev;
	struct keep *k;
	enum kept_state state;
	uint64_t id;
	uint32_t from;          /* S */
	uint64_t xfer;          /* S's id, while storing */
	struct ident ident;
	uint64_t bytes, pages, created;
	uint64_t reserved;      /* budget held while storing */
	pid_t keeper;
	int report_fd, cmd_fd;
	struct loop_io *report_io;
	bool sending;           /* the keeper streams the image (invariant 4) */
	struct loop_timer *timer;
	/* the restore under way */
	enum restore_state restore;
	uint32_t r_origin;
	uint64_t r_req;
	uid_t r_uid;
	uint32_t r_target;
	uint64_t r_xfer;        /* H's id, for PROBE and LOAD */
	uint64_t r_start_ns, r_done;
	unsigned r_ticks;
	bool r_sent;            /* the keeper's send is over */
	int r_send_err;
	char r_send_msg[MSG_SIZE];
};

static struct kept *kept_find(struct keep *k, uint64_t id)
{
	for (struct kept *e = k->kept; e; e = e->next)
		if (e->id == id)
			return e;
	return NULL;
}

static struct kept *kept_find_store(struct keep *k, uint32_t from, uint64_t xfer)
{
	for (struct kept *e = k->kept; e; e = e->next)
		if (e->state != KEPT_READY && e->from == from && e->xfer == xfer)
			return e;
	return NULL;
}

static struct kept *kept_find_restore(struct keep *k, uint64_t r_xfer)
{
	for (struct kept *e = k->kept; e; e = e->next)
		if (e->restore != RESTORE_NONE && e->r_xfer == r_xfer)
			return e;
	return NULL;
}

static uint64_t kept_charge(const struct kept *e)
{
	return e->state == KEPT_STORING ? e->reserved : e->bytes;
}

static void restore_fail(struct kept *e, int err, const char *fmt, ...) _printf_(3, 4);

static void kept_free(struct kept *e)
{
	struct keep *k = e->k;

	if (e->restore != RESTORE_NONE)
		restore_fail(e, -ENOENT, "the checkpoint was lost");
	k->used -= MIN(k->used, kept_charge(e));
	LIST_REMOVE(k->kept, e);
	e->report_io = loop_io_free(e->report_io);
	e->report_fd = safe_close(e->report_fd);
	/* Closing the command pipe ends an idle keeper; SIGKILL a busy one. */
	e->cmd_fd = safe_close(e->cmd_fd);
	if (e->keeper > 0)
		(void)kill(e->keeper, SIGKILL);
	e->timer = loop_timer_free(e->timer);
	ident_release(&e->ident);
	free(e);
}

static int put_entry(const struct kept *e, struct node_daemon *d, struct buf *b)
{
	int r;

	r = attr_put_u64(b, A_CKPT_ID, e->id);
	if (r >= 0)
		r = attr_put_u32(b, A_HOLDER, d->self);
	if (r >= 0)
		r = attr_put_u32(b, A_NODE, e->from);
	if (r >= 0)
		r = attr_put_u32(b, A_PID, (uint32_t)e->ident.pid);
	if (r >= 0)
		r = attr_put_u32(b, A_UID, (uint32_t)e->ident.uid);
	if (r >= 0)
		r = attr_put_str(b, A_COMMAND, e->ident.command);
	if (r >= 0)
		r = attr_put_u64(b, A_BYTES, e->bytes);
	if (r >= 0)
		r = attr_put_u64(b, A_PAGES, e->pages);
	if (r >= 0)
		r = attr_put_u64(b, A_CREATED, e->created);
	if (r >= 0)
		r = attr_put_str(b, A_STATE, e->restore != RESTORE_NONE ? "restoring" : "kept");
	return r;
}

static void restore_answer_ok(struct kept *e, pid_t pid, uint64_t import_ns)
{
	struct node_daemon *d = e->k->d;
	struct buf b = BUF_INIT;
	char id[24];
	int r;

	r = attr_put_u32(&b, A_ERRNO, 0);
	if (r >= 0)
		r = attr_put_u64(&b, A_CKPT_ID, e->id);
	if (r >= 0)
		r = attr_put_u32(&b, A_PID, (uint32_t)pid);
	if (r >= 0)
		r = attr_put_u32(&b, A_NODE, e->r_target);
	if (r >= 0)
		r = attr_put_u32(&b, A_HOLDER, d->self);
	if (r >= 0)
		r = attr_put_u64(&b, A_BYTES, e->bytes);
	if (r >= 0)
		r = attr_put_u64(&b, A_TOTAL_NS, now_ns() - e->r_start_ns);
	if (r >= 0)
		r = attr_put_u64(&b, A_IMPORT_NS, import_ns);
	if (r >= 0)
		answer(d, e->r_origin, e->r_req, KEEP_RESTORE_REP, &b);
	buf_release(&b);
	log_info("checkpoint %s: process %d restarted on node %u", ckpt_text(e->id, id), (int)pid,
		 e->r_target);
	e->restore = RESTORE_NONE;
	if (!e->sending)
		loop_timer_disarm(e->timer);
}

static void restore_fail(struct kept *e, int err, const char *fmt, ...)
{
	struct node_daemon *d = e->k->d;
	char msg[MSG_SIZE], id[24];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (e->restore == RESTORE_LOADING || e->restore == RESTORE_SENDING)
		(void)send_keep(d, e->r_target, KEEP_LOAD_ABORT, e->r_xfer, NULL);
	log_warn("checkpoint %s: no restart on node %u: %s", ckpt_text(e->id, id), e->r_target,
		 msg);
	answer_error(d, e->r_origin, e->r_req, KEEP_RESTORE_REP, err,
		     "cannot restart checkpoint %s on node %u: %s", ckpt_text(e->id, id),
		     e->r_target, msg);
	e->restore = RESTORE_NONE;
	if (!e->sending)
		loop_timer_disarm(e->timer);
}

static void restore_load(struct kept *e)
{
	struct node_daemon *d = e->k->d;
	struct buf b = BUF_INIT;
	int r;

	r = attr_put_u64(&b, A_CKPT_ID, e->id);
	if (r >= 0)
		r = ident_put(&e->ident, &b);
	if (r >= 0)
		r = send_keep(d, e->r_target, KEEP_LOAD, e->r_xfer, &b);
	buf_release(&b);
	if (r < 0) {
		restore_fail(e, r, "cannot reach node %u: %s", e->r_target, strerror(-r));
		return;
	}
	e->restore = RESTORE_LOADING;
	e->r_ticks = 0;
}

/* LOAD_READY: the import worker listens; the keeper sends. */
static void restore_send(struct kept *e, const void *data, size_t len)
{
	struct node_daemon *d = e->k->d;
	const struct node_config_node *cn = node_config_find(&d->config, e->r_target);
	struct keeper_cmd c = { .kind = KEEPER_SEND, .dest = e->r_target,
				.encrypt = d->config.encrypt };
	int r;

	if (!cn || attr_find_channel(data, len, &c.port, c.key) < 0) {
		restore_fail(e, -EPROTO, "node %u sent a malformed answer", e->r_target);
		return;
	}
	snprintf(c.host, sizeof(c.host), "%s", cn->address);
	r = keeper_command(e->cmd_fd, &c);
	explicit_bzero(c.key, sizeof(c.key));
	if (r < 0) {
		restore_fail(e, r, "the keeper of the checkpoint does not answer: %s",
			     strerror(-r));
		return;
	}
	e->sending = true;
	e->r_sent = false;
	e->r_send_err = 0;
	e->r_send_msg[0] = '\0';
	e->restore = RESTORE_SENDING;
	e->r_ticks = 0;
}

static void restore_recv(struct kept *e, uint32_t node, uint32_t type, const void *data,
			 size_t len)
{
	struct attr_iter it;
	struct attr a;
	uint32_t v, err = EIO;
	uint64_t import_ns = 0;
	pid_t pid = 0;
	char msg[MSG_SIZE] = "", state[16] = "";

	attr_iter_init(&it, data, len);
	while (attr_next(&it, &a) > 0) {
		if (a.type == A_STATE)
			(void)attr_strcpy(&a, state, sizeof(state));
		else if (a.type == A_NODE && attr_u32(&a, &v) >= 0)
			node = v;
		else if (a.type == A_PID && attr_u32(&a, &v) >= 0)
			pid = (pid_t)v;
		else if (a.type == A_IMPORT_NS)
			(void)attr_u64(&a, &import_ns);
		else if (a.type == A_ERRNO)
			(void)attr_u32(&a, &err);
		else if (a.type == A_MESSAGE)
			(void)attr_strcpy(&a, msg, sizeof(msg));
	}
	switch (type) {
	case KEEP_PROBE_REP:
		if (e->restore != RESTORE_PROBING)
			return;
		if (strcmp(state, "running") == 0) {
			restore_fail(e, -EEXIST,
				     "process %d still runs on node %u: end it first (ghost kill "
				     "-KILL %d)",
				     (int)e->ident.pid, node, (int)e->ident.pid);
			return;
		}
		restore_load(e);
		return;
	case KEEP_LOAD_READY:
		if (e->restore == RESTORE_LOADING)
			restore_send(e, data, len);
		return;
	case KEEP_LOADED:
		if (e->restore == RESTORE_LOADING || e->restore == RESTORE_SENDING)
			restore_answer_ok(e, pid, import_ns);
		return;
	case KEEP_LOAD_FAILED:
		if (e->restore == RESTORE_LOADING || e->restore == RESTORE_SENDING) {
			e->restore = RESTORE_PROBING; /* no LOAD_ABORT: T gave up itself */
			restore_fail(e, -(int)(err ? err : EIO), "%s",
				     msg[0] ? msg : "the import failed");
		}
		return;
	default:
		return;
	}
}

static void on_kept_timer(struct loop_timer *t, void *userdata)
{
	struct kept *e = userdata;
	struct node_daemon *d = e->k->d;

	(void)t;
	if (e->restore == RESTORE_NONE)
		return;
	send_progress(d, e->r_origin, e->r_req, e->r_done, e->bytes);
	e->r_ticks++;
	if (e->restore == RESTORE_PROBING &&
	    e->r_ticks >= PROBE_TICKS + d->config.timeout_ms / 1000) {
		restore_fail(e, -ETIMEDOUT, "node %u did not say whether process %d still runs",
			     node_of_pid(d, e->ident.pid), (int)e->ident.pid);
		return;
	}
	if (e->restore == RESTORE_LOADING && e->r_ticks >= VERDICT_TICKS) {
		restore_fail(e, -ETIMEDOUT, "node %u did not answer", e->r_target);
		return;
	}
	if (e->restore == RESTORE_SENDING && e->r_sent && e->r_ticks >= VERDICT_TICKS) {
		restore_fail(e, e->r_send_err < 0 ? e->r_send_err : -ETIMEDOUT, "%s",
			     e->r_send_msg[0] ? e->r_send_msg : "the import did not finish");
		return;
	}
	loop_timer_arm(e->timer, TICK_USEC);
}

/* The keeper's store is over. */
static void kept_stored(struct kept *e, const struct worker_report *rep)
{
	struct keep *k = e->k;
	struct node_daemon *d = k->d;
	struct buf b = BUF_INIT;
	char id[24];
	int r;

	if (rep->err < 0) {
		log_warn("checkpoint %s of process %d from node %u: %s", ckpt_text(e->id, id),
			 (int)e->ident.pid, e->from, rep->msg);
		(void)send_error_msg(d, e->from, KEEP_STORE_FAILED, e->xfer, rep->err, rep->msg);
		kept_free(e);
		return;
	}
	k->used -= MIN(k->used, e->reserved);
	e->reserved = 0;
	e->bytes = rep->stats.image_bytes;
	k->used += e->bytes;
	e->state = KEPT_STORED;
	r = attr_put_u64(&b, A_BYTES, e->bytes);
	if (r >= 0)
		r = attr_put_u64(&b, A_CKPT_ID, e->id);
	if (r >= 0)
		r = send_keep(d, e->from, KEEP_STORED, e->xfer, &b);
	buf_release(&b);
	if (r < 0)
		kept_free(e); /* S is gone: nobody would commit it */
}

static void on_kept_io(struct loop_io *io, int fd, unsigned events, void *userdata)
{
	struct kept *e = userdata;
	struct worker_report rep;
	char id[24];
	int r;

	(void)io;
	(void)fd;
	(void)events;
	for (;;) {
		r = worker_read_report(e->report_fd, &rep);
		if (r == 0)
			return;
		if (r < 0) {
			/* The keeper is gone, and the image with it. */
			e->keeper = -1;
			if (e->state == KEPT_STORING) {
				rep = (struct worker_report){ .kind = WORKER_DONE, .err = -EIO };
				snprintf(rep.msg, sizeof(rep.msg),
					 "the keeper on node %u died (out of memory?)",
					 e->k->d->self);
				kept_stored(e, &rep);
				return;
			}
			log_warn("checkpoint %s of process %d is lost: its keeper died",
				 ckpt_text(e->id, id), (int)e->ident.pid);
			if (e->restore != RESTORE_NONE)
				restore_fail(e, -EIO, "the keeper of the checkpoint died");
			kept_free(e);
			return;
		}
		if (e->state == KEPT_STORING) {
			if (rep.kind == WORKER_DONE) {
				kept_stored(e, &rep);
				return;
			}
			continue;
		}
		if (rep.kind == WORKER_PROGRESS) {
			e->r_done = rep.done;
			if (e->restore != RESTORE_NONE)
				send_progress(e->k->d, e->r_origin, e->r_req, rep.done, rep.total);
			continue;
		}
		/* A send is over; T's verdict ends the restore. */
		e->sending = false;
		e->r_sent = true;
		e->r_send_err = rep.err;
		snprintf(e->r_send_msg, sizeof(e->r_send_msg), "%s", rep.msg);
		e->r_ticks = 0;
	}
}

static void kept_store(struct keep *k, uint32_t from, uint64_t xfer, const void *data,
		       size_t len)
{
	struct node_daemon *d = k->d;
	const struct node_config_node *self = node_config_find(&d->config, d->self);
	struct keeper_job j = { .source = from, .self = d->self, .encrypt = d->config.encrypt };
	uint64_t estimate = 0, avail, left;
	struct kept *e = NULL;
	struct buf b = BUF_INIT;
	char msg[MSG_SIZE], s1[32], s2[32], s3[32];
	struct attr a;
	uint16_t port;
	int lfd = -1, r;

	if (kept_find_store(k, from, xfer))
		return; /* a duplicate: msg never sends one */
	if (attr_find(data, len, A_ESTIMATE, &a) >= 0)
		(void)attr_u64(&a, &estimate);
	left = k->limit > k->used ? k->limit - k->used : 0;
	if (k->limit == 0) {
		snprintf(msg, sizeof(msg),
			 "node %u keeps no memory checkpoints (checkpoint-memory 0 in its "
			 "configuration)",
			 d->self);
		r = -ENOSPC;
		goto fail;
	}
	if (estimate > left) {
		snprintf(msg, sizeof(msg),
			 "it needs about %s, more than the %s of checkpoint memory node %u has "
			 "left (%s in use; see checkpoint-memory in cluster.conf)",
			 mib_text(estimate, s1), mib_text(left, s2), d->self,
			 mib_text(k->used, s3));
		r = -ENOSPC;
		goto fail;
	}
	avail = meminfo("MemAvailable");
	if (avail && estimate + MEM_MARGIN > avail) {
		snprintf(msg, sizeof(msg), "it needs about %s, and node %u has only %s available",
			 mib_text(estimate, s1), d->self, mib_text(avail, s2));
		r = -ENOMEM;
		goto fail;
	}
	e = calloc(1, sizeof(*e));
	if (!e || loop_timer_new(d->loop, on_kept_timer, e, &e->timer) < 0) {
		free(e);
		e = NULL;
		snprintf(msg, sizeof(msg), "out of memory on node %u", d->self);
		r = -ENOMEM;
		goto fail;
	}
	e->k = k;
	e->keeper = -1;
	e->report_fd = e->cmd_fd = -1;
	e->from = from;
	e->xfer = xfer;
	e->state = KEPT_STORING;
	if (++k->next_seq == 0)
		k->next_seq = 1;
	e->id = (uint64_t)d->self << 32 | k->next_seq;
	/* Unknown (0): all that is left. */
	e->reserved = estimate ? MIN(left, MAX(estimate * 2, estimate + RESERVE_SLACK)) : left;
	k->used += e->reserved;
	LIST_PREPEND(k->kept, e);
	r = ident_parse(data, len, &e->ident);
	if (r < 0) {
		snprintf(msg, sizeof(msg), "malformed checkpoint request");
		goto fail;
	}
	r = msg_chan_listen(self->address, &lfd, &port);
	if (r < 0) {
		snprintf(msg, sizeof(msg), "node %u cannot listen for the transfer: %s", d->self,
			 strerror(-r));
		goto fail;
	}
	j.listen_fd = lfd;
	j.limit = e->reserved;
	r = msg_chan_key_new(j.key);
	if (r >= 0)
		r = keeper_start(&j, &e->keeper, &e->report_fd, &e->cmd_fd);
	safe_close(lfd);
	if (r >= 0)
		r = loop_io_new(d->loop, e->report_fd, LOOP_READ, on_kept_io, e, &e->report_io);
	if (r < 0) {
		explicit_bzero(j.key, sizeof(j.key));
		snprintf(msg, sizeof(msg), "node %u cannot start a keeper: %s", d->self,
			 strerror(-r));
		goto fail;
	}
	r = attr_put_u32(&b, A_PORT, port);
	if (r >= 0)
		r = attr_put(&b, A_KEY, j.key, sizeof(j.key));
	if (r >= 0)
		r = attr_put_u64(&b, A_CKPT_ID, e->id);
	if (r >= 0)
		r = send_keep(d, from, KEEP_STORE_READY, xfer, &b);
	explicit_bzero(j.key, sizeof(j.key));
	buf_release(&b);
	if (r < 0)
		kept_free(e); /* S is gone */
	return;
fail:
	log_warn("refusing a checkpoint from node %u: %s", from, msg);
	(void)send_error_msg(d, from, KEEP_STORE_FAILED, xfer, r, msg);
	if (e)
		kept_free(e);
}

static void kept_commit(struct kept *e, const void *data, size_t len)
{
	struct attr a;
	char id[24], size[32];

	if (e->state != KEPT_STORED)
		return;
	if (attr_find(data, len, A_PAGES, &a) >= 0)
		(void)attr_u64(&a, &e->pages);
	e->state = KEPT_READY;
	e->created = (uint64_t)time(NULL);
	log_info("checkpoint %s of process %d (%s) from node %u: %s kept", ckpt_text(e->id, id),
		 (int)e->ident.pid, e->ident.command, e->from, mib_text(e->bytes, size));
}

/* The ready checkpoint a restart or drop request names, if uid may have it
 * (what: "restart" or "drop"); else the asker is answered with rep and NULL
 * is returned. */
static struct kept *kept_for_question(struct keep *k, const struct question *q, uint32_t rep,
				      const char *what)
{
	struct node_daemon *d = k->d;
	struct kept *e = kept_find(k, q->ckpt);
	char id[24];

	if (!e || e->state != KEPT_READY) {
		answer_error(d, q->origin, q->req, rep, -ENOENT, "no checkpoint %s on node %u",
			     ckpt_text(q->ckpt, id), d->self);
		return NULL;
	}
	if (q->uid != 0 && q->uid != e->ident.uid) {
		answer_error(d, q->origin, q->req, rep, -EPERM,
			     "not allowed to %s checkpoint %s: it belongs to another user", what,
			     ckpt_text(q->ckpt, id));
		return NULL;
	}
	if (e->restore != RESTORE_NONE || e->sending) {
		answer_error(d, q->origin, q->req, rep, -EBUSY,
			     "checkpoint %s is being restarted; try again once that is done",
			     ckpt_text(q->ckpt, id));
		return NULL;
	}
	return e;
}

static void restore_question(struct keep *k, const void *data, size_t len)
{
	struct node_daemon *d = k->d;
	struct question q;
	struct kept *e;
	uint32_t target, birth;
	char id[24];

	if (parse_question(data, len, &q) < 0 || !q.req || !q.origin) {
		log_warn("malformed restart request, ignoring");
		return;
	}
	e = kept_for_question(k, &q, KEEP_RESTORE_REP, "restart");
	if (!e)
		return;
	target = q.node ? q.node : d->self;
	if (!node_peer_find(d, target)) {
		answer_error(d, q.origin, q.req, KEEP_RESTORE_REP, -EHOSTUNREACH,
			     "no node %u in the cluster", target);
		return;
	}
	if (!node_up(d, target)) {
		answer_error(d, q.origin, q.req, KEEP_RESTORE_REP, -EHOSTDOWN, "node %u is %s",
			     target, node_state_text(d, target));
		return;
	}
	e->restore = RESTORE_PROBING;
	e->r_origin = q.origin;
	e->r_req = q.req;
	e->r_uid = (uid_t)q.uid;
	e->r_target = target;
	e->r_xfer = node_new_id(d);
	e->r_start_ns = now_ns();
	e->r_done = 0;
	e->r_ticks = 0;
	loop_timer_arm(e->timer, TICK_USEC);
	log_info("checkpoint %s: restarting process %d on node %u for uid %u",
		 ckpt_text(e->id, id), (int)e->ident.pid, target, (unsigned)q.uid);
	/* Invariant 5: ask the PID's birth node whether it still runs. */
	birth = node_of_pid(d, e->ident.pid);
	if (birth != 0 && node_up(d, birth)) {
		struct buf b = BUF_INIT;
		int r;

		r = attr_put_u32(&b, A_ORIGIN, d->self);
		if (r >= 0)
			r = attr_put_u32(&b, A_PID, (uint32_t)e->ident.pid);
		if (r >= 0)
			r = attr_put_u32(&b, A_HOPS, 0);
		if (r >= 0)
			r = send_keep(d, birth, KEEP_PROBE, e->r_xfer, &b);
		buf_release(&b);
		if (r >= 0)
			return;
	}
	log_info("node %u is %s: nobody can tell whether process %d still runs; going ahead",
		 birth, node_state_text(d, birth), (int)e->ident.pid);
	restore_load(e);
}

static void drop_question(struct keep *k, const void *data, size_t len)
{
	struct node_daemon *d = k->d;
	struct question q;
	struct kept *e;
	struct buf b = BUF_INIT;
	uint64_t bytes;
	char id[24], size[32];
	int r;

	if (parse_question(data, len, &q) < 0 || !q.req || !q.origin) {
		log_warn("malformed drop request, ignoring");
		return;
	}
	e = kept_for_question(k, &q, KEEP_DROP_REP, "drop");
	if (!e)
		return;
	bytes = e->bytes;
	log_info("checkpoint %s of process %d dropped for uid %u: %s freed", ckpt_text(e->id, id),
		 (int)e->ident.pid, (unsigned)q.uid, mib_text(bytes, size));
	kept_free(e);
	r = attr_put_u32(&b, A_ERRNO, 0);
	if (r >= 0)
		r = attr_put_u64(&b, A_CKPT_ID, q.ckpt);
	if (r >= 0)
		r = attr_put_u32(&b, A_HOLDER, d->self);
	if (r >= 0)
		r = attr_put_u64(&b, A_BYTES, bytes);
	if (r >= 0)
		answer(d, q.origin, q.req, KEEP_DROP_REP, &b);
	buf_release(&b);
}

static void list_answer(struct keep *k, uint32_t node, const void *data, size_t len)
{
	struct node_daemon *d = k->d;
	struct buf b = BUF_INIT, one = BUF_INIT;
	struct question q;
	int r;

	if (parse_question(data, len, &q) < 0 || !q.req) {
		log_warn("malformed checkpoint list request from node %u, ignoring", node);
		return;
	}
	r = attr_put_u64(&b, A_REQ, q.req);
	if (r >= 0)
		r = attr_put_u64(&b, A_MEM_USED, k->used);
	if (r >= 0)
		r = attr_put_u64(&b, A_MEM_LIMIT, k->limit);
	for (struct kept *e = k->kept; e && r >= 0; e = e->next) {
		if (e->state != KEPT_READY || (q.uid != 0 && q.uid != e->ident.uid))
			continue;
		buf_reset(&one);
		r = put_entry(e, d, &one);
		if (r >= 0)
			r = attr_put(&b, A_CKPT, one.data, one.len);
	}
	if (r >= 0)
		r = msg_send(d->msg, node, NODE_CH_KEEP, KEEP_LIST_REP, b.data, b.len);
	if (r < 0)
		log_warn_errno(r, "cannot answer a checkpoint list request from node %u", node);
	buf_release(&b);
	buf_release(&one);
}

/* ---- B: does a PID still run? ---------------------------------------------- */

static void probe_question(struct keep *k, uint32_t node, const void *data, size_t len)
{
	struct node_daemon *d = k->d;
	struct question q;
	struct mproc *p;
	struct buf b = BUF_INIT;
	bool running;
	uint32_t where = d->self;

	(void)node;
	if (parse_question(data, len, &q) < 0 || !q.xfer || !q.origin)
		return;
	p = proc_find(d, (pid_t)q.pid);
	if (p && p->state == MPROC_ELSEWHERE && q.hops == 0 &&
	    forward(d, p->node, KEEP_PROBE, data, len, q.hops))
		return;
	if (p && p->state == MPROC_ELSEWHERE)
		where = p->node; /* there, and that node is down */
	running = p && (p->state == MPROC_RUNNING || p->state == MPROC_SPAWNING);
	if (attr_put_str(&b, A_STATE, running ? "running" : "free") >= 0 &&
	    attr_put_u32(&b, A_NODE, where) >= 0)
		(void)send_keep(d, q.origin, KEEP_PROBE_REP, q.xfer, &b);
	buf_release(&b);
}

/* ---- T: a checkpoint restarting here ---------------------------------------- */

struct load {
	struct load *next, *prev;
	struct keep *k;
	uint32_t holder;
	uint64_t xfer;         /* H's id */
	uint64_t ckpt;
	struct ident ident;
	pid_t worker;
	int report_fd;
	struct loop_io *report_io;
	bool aborted;
};

static struct load *load_find(struct keep *k, uint32_t holder, uint64_t xfer)
{
	for (struct load *l = k->loads; l; l = l->next)
		if (l->holder == holder && l->xfer == xfer)
			return l;
	return NULL;
}

static void load_free(struct load *l)
{
	LIST_REMOVE(l->k->loads, l);
	l->report_io = loop_io_free(l->report_io);
	l->report_fd = safe_close(l->report_fd);
	ident_release(&l->ident);
	free(l);
}

static void load_fail(struct load *l, int err, const char *fmt, ...) _printf_(3, 4);
static void load_fail(struct load *l, int err, const char *fmt, ...)
{
	char msg[MSG_SIZE], id[24];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("checkpoint %s of process %d: %s", ckpt_text(l->ckpt, id), (int)l->ident.pid,
		 msg);
	(void)send_error_msg(l->k->d, l->holder, KEEP_LOAD_FAILED, l->xfer, err, msg);
}

static void load_finished(struct load *l, const struct worker_report *rep)
{
	struct node_daemon *d = l->k->d;
	uint32_t birth = node_of_pid(d, l->ident.pid);
	struct proc_arrival a = {
		.pid = l->ident.pid,
		.uid = l->ident.uid,
		.gid = l->ident.gid,
		.command = l->ident.command,
		.start_time = l->ident.start_time,
		.detached = l->ident.detached,
		.log_path = l->ident.log_path,
	};
	struct buf b = BUF_INIT;
	struct mproc *p;
	char id[24];
	int r;

	if (rep->err < 0 || rep->pid <= 0) {
		load_fail(l, rep->err < 0 ? rep->err : -EIO, "%s",
			  rep->msg[0] ? rep->msg : "the import failed");
		return;
	}
	if (l->aborted || rep->pid != l->ident.pid) {
		if (kill(rep->pid, SIGKILL) < 0 && errno != ESRCH)
			log_warn_errno(errno, "cannot kill the abandoned process %d",
				       (int)rep->pid);
		if (!l->aborted)
			load_fail(l, -EPROTO, "the image holds process %d, not %d", (int)rep->pid,
				  (int)l->ident.pid);
		return;
	}
	r = proc_arrive(d, &a, &p);
	if (r < 0) {
		(void)kill(rep->pid, SIGKILL);
		load_fail(l, r, "cannot enter process %d in the table of node %u: %s",
			  (int)a.pid, d->self, strerror(-r));
		return;
	}
	p->arriving = false;
	if (kill(a.pid, SIGCONT) < 0)
		log_warn_errno(errno, "cannot let process %d run", (int)a.pid);
	if (birth != d->self && birth != 0) {
		if (attr_put_u32(&b, A_PID, (uint32_t)a.pid) >= 0 &&
		    attr_put_u32(&b, A_NODE, d->self) >= 0 &&
		    msg_send(d->msg, birth, NODE_CH_PROC, PROC_WHERE, b.data, b.len) < 0)
			log_warn("cannot tell node %u that process %d runs here now", birth,
				 (int)a.pid);
		buf_reset(&b);
	}
	log_info("process %d restarted from checkpoint %s of node %u", (int)a.pid,
		 ckpt_text(l->ckpt, id), l->holder);
	if (attr_put_u32(&b, A_PID, (uint32_t)a.pid) >= 0 &&
	    attr_put_u64(&b, A_IMPORT_NS, rep->stats.total_ns) >= 0)
		(void)send_keep(d, l->holder, KEEP_LOADED, l->xfer, &b);
	buf_release(&b);
}

static void on_load_io(struct loop_io *io, int fd, unsigned events, void *userdata)
{
	struct load *l = userdata;
	struct worker_report rep;
	enum worker_next next;

	(void)io;
	(void)fd;
	(void)events;
	for (;;) {
		next = worker_next_report(l->report_fd, "import", l->k->d->self, &rep);
		if (next == WORKER_NEXT_NONE)
			return;
		if (next == WORKER_NEXT_PROGRESS)
			continue;
		load_finished(l, &rep);
		load_free(l);
		return;
	}
}

static bool pid_in_use(struct node_daemon *d, pid_t pid)
{
	char path[32];

	if (!d->own_proc)
		return false;
	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	return access(path, F_OK) == 0;
}

static void load_start(struct keep *k, uint32_t holder, uint64_t xfer, const void *data,
		       size_t len)
{
	struct node_daemon *d = k->d;
	const struct node_config_node *self = node_config_find(&d->config, d->self);
	struct worker_import_job j = {
		.flags = GHOST_IMPORT_STOPPED,
		.job_fd = -1,
		.source = holder,
		.encrypt = d->config.encrypt,
	};
	struct buf b = BUF_INIT;
	struct mproc *old;
	struct load *l;
	struct attr a;
	uint16_t port;
	int lfd = -1, r;

	if (load_find(k, holder, xfer))
		return;
	l = calloc(1, sizeof(*l));
	if (!l) {
		(void)send_error_msg(d, holder, KEEP_LOAD_FAILED, xfer, -ENOMEM, "out of memory");
		return;
	}
	l->k = k;
	l->holder = holder;
	l->xfer = xfer;
	l->report_fd = -1;
	l->worker = -1;
	LIST_PREPEND(k->loads, l);
	if (attr_find(data, len, A_CKPT_ID, &a) >= 0)
		(void)attr_u64(&a, &l->ckpt);
	r = ident_parse(data, len, &l->ident);
	if (r < 0) {
		load_fail(l, -EPROTO, "malformed restart request");
		load_free(l);
		return;
	}
	old = proc_find(d, l->ident.pid);
	if ((old && old->state != MPROC_ELSEWHERE && old->state != MPROC_EXITED) ||
	    pid_in_use(d, l->ident.pid)) {
		load_fail(l, -EEXIST, "PID %d is in use on node %u", (int)l->ident.pid, d->self);
		load_free(l);
		return;
	}
	r = msg_chan_listen(self->address, &lfd, &port);
	if (r < 0) {
		load_fail(l, r, "node %u cannot listen for the transfer: %s", d->self,
			  strerror(-r));
		load_free(l);
		return;
	}
	j.listen_fd = lfd;
	r = msg_chan_key_new(j.key);
	if (r >= 0)
		r = worker_import_start(&j, &l->worker, &l->report_fd);
	safe_close(lfd);
	if (r >= 0 &&
	    loop_io_new(d->loop, l->report_fd, LOOP_READ, on_load_io, l, &l->report_io) < 0) {
		/* Without a watch the outcome would never be read. */
		(void)kill(l->worker, SIGKILL);
		r = -ENOMEM;
	}
	if (r < 0) {
		explicit_bzero(j.key, sizeof(j.key));
		load_fail(l, r, "node %u cannot start the import: %s", d->self, strerror(-r));
		load_free(l);
		return;
	}
	r = attr_put_u32(&b, A_PORT, port);
	if (r >= 0)
		r = attr_put(&b, A_KEY, j.key, sizeof(j.key));
	if (r >= 0)
		r = send_keep(d, holder, KEEP_LOAD_READY, xfer, &b);
	explicit_bzero(j.key, sizeof(j.key));
	buf_release(&b);
	/* If H is gone, the worker gives up when nobody connects. */
	if (r < 0)
		l->aborted = true;
}

/* ---- messages, nodes, budget ---------------------------------------------------- */

static void keep_recv(struct msg *m, uint32_t node, uint16_t channel, uint32_t type,
		      const void *data, size_t len, void *userdata)
{
	struct node_daemon *d = userdata;
	struct keep *k = d->keep;
	uint64_t xfer = 0;
	struct attr a;
	struct kept *e;
	struct save *s;
	struct load *l;

	(void)m;
	(void)channel;
	if (d->leaving || !k)
		return;
	switch (type) {
	case KEEP_SAVE_REQ:
		save_question(k, data, len);
		return;
	case KEEP_RESTORE_REQ:
		restore_question(k, data, len);
		return;
	case KEEP_LIST_REQ:
		list_answer(k, node, data, len);
		return;
	case KEEP_DROP_REQ:
		drop_question(k, data, len);
		return;
	case KEEP_PROGRESS:
	case KEEP_SAVE_REP:
	case KEEP_RESTORE_REP:
	case KEEP_LIST_REP:
	case KEEP_DROP_REP:
		req_answer(k, node, type, data, len);
		return;
	case KEEP_PROBE:
		probe_question(k, node, data, len);
		return;
	default:
		break;
	}
	if (attr_find(data, len, A_XFER, &a) >= 0)
		(void)attr_u64(&a, &xfer);
	if (xfer == 0)
		return;
	switch (type) {
	case KEEP_STORE:
		kept_store(k, node, xfer, data, len);
		break;
	case KEEP_STORE_COMMIT:
	case KEEP_STORE_ABORT:
		e = kept_find_store(k, node, xfer);
		if (e && type == KEEP_STORE_COMMIT)
			kept_commit(e, data, len);
		else if (e)
			kept_free(e);
		break;
	case KEEP_STORE_READY:
	case KEEP_STORED:
	case KEEP_STORE_FAILED:
		s = save_find(k, node, xfer);
		if (s)
			save_recv(s, type, data, len);
		break;
	case KEEP_PROBE_REP:
	case KEEP_LOAD_READY:
	case KEEP_LOADED:
	case KEEP_LOAD_FAILED:
		e = kept_find_restore(k, xfer);
		if (e && (type == KEEP_PROBE_REP || node == e->r_target))
			restore_recv(e, node, type, data, len);
		break;
	case KEEP_LOAD:
		load_start(k, node, xfer, data, len);
		break;
	case KEEP_LOAD_ABORT:
		l = load_find(k, node, xfer);
		if (l)
			l->aborted = true;
		break;
	default:
		break;
	}
}

void keep_node_down(struct node_daemon *d, uint32_t node)
{
	struct keep *k = d->keep;

	if (!k)
		return;
	for (struct keep_req *r = k->reqs, *next; r; r = next) {
		next = r->next;
		if (r->kind == KR_LIST) {
			for (size_t i = 0; i < r->n_waiting; i++) {
				if (r->waiting[i] != node)
					continue;
				r->waiting[i] = r->waiting[--r->n_waiting];
				warn_client(r->conn,
					    "node %u is %s: its checkpoints are not listed", node,
					    node_state_text(d, node));
				break;
			}
			if (r->n_waiting == 0)
				req_done(r, CTL_END, NULL);
			continue;
		}
		/* A forwarded save may still be answered by the node taking it. */
		if (node == r->current || (node == r->node && r->current == 0)) {
			char id[24];

			if (r->kind == KR_SAVE)
				req_fail(r, -EHOSTDOWN, "node %u is %s", node,
					 node_state_text(d, node));
			else
				req_fail(r, -EHOSTDOWN,
					 "node %u is %s: checkpoint %s is lost with it", node,
					 node_state_text(d, node), ckpt_text(r->ckpt, id));
		}
	}
	for (struct save *s = k->saves, *next; s; s = next) {
		next = s->next;
		if (s->holder != node || s->holder_failed)
			continue;
		s->holder_failed = true;
		s->herr = -EHOSTDOWN;
		snprintf(s->hmsg, sizeof(s->hmsg), "node %u failed during the checkpoint", node);
		save_step(s);
	}
	for (struct kept *e = k->kept, *next; e; e = next) {
		next = e->next;
		if (e->state != KEPT_READY && e->from == node) {
			kept_free(e); /* nobody will commit it */
			continue;
		}
		if (e->restore == RESTORE_NONE)
			continue;
		if (e->r_target == node)
			restore_fail(e, -EHOSTDOWN, "node %u failed during the restart", node);
		else if (e->restore == RESTORE_PROBING && node_of_pid(d, e->ident.pid) == node) {
			log_info("node %u failed: nobody can tell whether process %d still runs; "
				 "going ahead",
				 node, (int)e->ident.pid);
			restore_load(e);
		}
	}
	/* T: an import whose holder failed ends on its own (its stream breaks), or
	 * completes: the process then runs. */
}

static void set_limit(struct keep *k, bool reload)
{
	struct node_daemon *d = k->d;
	uint64_t old = k->limit;
	char s1[32], s2[32], s3[32];

	k->limit = compute_limit(&d->config);
	if (!reload)
		log_info("checkpoint memory: %s%s", mib_text(k->limit, s1),
			 d->config.ckpt_memory_pct ? " (a share of the RAM)" : "");
	else if (old != k->limit)
		log_info("checkpoint memory: %s, was %s (%s in use)", mib_text(k->limit, s1),
			 mib_text(old, s2), mib_text(k->used, s3));
	else
		log_info("checkpoint memory unchanged: %s", mib_text(k->limit, s1));
}

int keep_init(struct node_daemon *d, struct buf *err)
{
	struct msg_handler h = { .recv = keep_recv };
	struct keep *k;
	int r;

	k = calloc(1, sizeof(*k));
	if (!k)
		return node_err(err, -ENOMEM, "out of memory");
	k->d = d;
	d->keep = k;
	set_limit(k, false);
	r = msg_register(d->msg, NODE_CH_KEEP, &h, d);
	if (r < 0)
		return node_err_errno(err, r, "cannot register the checkpoint channel");
	return 0;
}

void keep_reload(struct node_daemon *d)
{
	struct node_config c = NODE_CONFIG_INIT;
	struct buf err = BUF_INIT;

	if (!d->keep || !d->config_path)
		return;
	if (node_config_load(d->config_path, &c, &err) < 0) {
		log_warn("SIGHUP: %s; keeping the configuration, ignoring", err.data);
		buf_release(&err);
		return;
	}
	d->config.ckpt_memory = c.ckpt_memory;
	d->config.ckpt_memory_pct = c.ckpt_memory_pct;
	node_config_release(&c);
	buf_release(&err);
	set_limit(d->keep, true);
}

void keep_free_all(struct node_daemon *d)
{
	struct keep *k = d->keep;

	if (!k)
		return;
	while (k->reqs)
		req_free(k->reqs);
	while (k->saves) {
		struct save *s = k->saves;

		/* Shutting down mid-checkpoint: no process may stay frozen. */
		if (s->worker_started && !s->worker_done)
			while (waitpid(s->worker, NULL, 0) < 0 && errno == EINTR)
				;
		if (s->worker_started && (s->flags & (KEEP_F_STOP | KEEP_F_KILL)))
			(void)kill(s->pid, SIGCONT);
		(void)send_keep(d, s->holder, KEEP_STORE_ABORT, s->xfer, NULL);
		save_free(s);
	}
	while (k->kept) {
		k->kept->restore = RESTORE_NONE;
		kept_free(k->kept);
	}
	while (k->loads) {
		struct load *l = k->loads;

		if (l->worker > 0)
			(void)kill(l->worker, SIGKILL);
		load_free(l);
	}
	k->used = 0;
}

void keep_done(struct node_daemon *d)
{
	keep_free_all(d);
	free(d->keep);
	d->keep = NULL;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The node daemon: configuration, the msg endpoint, membership and the node
 * table, load reports, signals and shutdown. Processes, run sessions,
 * requests and the control socket live in proc.c, run.c, req.c, control.c.
 *
 * Membership, per configured node other than this one:
 *
 *               msg UP                      msg DOWN, no MEMBER_LEAVE
 *   DOWN --------------------> UP ----------------------------------> FAILED
 *    ^  <---------------------  ^                                       |
 *    |   MEMBER_LEAVE, or msg    \________________ msg UP _____________/
 *    |   DOWN after it                  (rejoin: a new incarnation)
 *  start
 *
 * 1. A node is UP exactly while msg has a session with it that did not
 *    announce its leaving; msg declares it DOWN after timeout ms of silence.
 * 2. Leaving or failing ends, at once, every run session and request that
 *    waits for the node (run_node_down(), req_node_down()).
 * 3. Load figures are those of the node's current session only.
 *
 *   event               function
 *   msg UP/DOWN         peer_event()
 *   MEMBER_LOAD/LEAVE   member_recv()
 *   load timer          load_tick()
 *   SIGTERM/SIGINT      on_stop() -> leave_tick() -> loop_exit()
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define LOG_PREFIX NULL
#include "base/fileio.h"
#include "base/log.h"
#include "node/node-int.h"
#include "base/banned.h"

/* How long a leaving daemon waits for its MEMBER_LEAVE to be acknowledged. */
#define LEAVE_WAIT_USEC (1000 * 1000)
#define LEAVE_POLL_USEC (20 * 1000)

static const char *const state_names[_NODE_STATE_MAX] = {
	[NODE_STATE_SELF] = "self",
	[NODE_STATE_UP] = "up",
	[NODE_STATE_DOWN] = "down",
	[NODE_STATE_FAILED] = "failed",
};

static int vset_err(struct buf *err, int r, bool with_errno, const char *fmt, va_list ap)
	_printf_(4, 0);
static int vset_err(struct buf *err, int r, bool with_errno, const char *fmt, va_list ap)
{
	if (!err)
		return r;
	buf_reset(err);
	(void)buf_vprintf(err, fmt, ap);
	if (with_errno)
		(void)buf_printf(err, ": %s", strerror(r < 0 ? -r : r));
	return r;
}

int node_err(struct buf *err, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	r = vset_err(err, r, false, fmt, ap);
	va_end(ap);
	return r;
}

int node_err_errno(struct buf *err, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	r = vset_err(err, r, true, fmt, ap);
	va_end(ap);
	return r;
}

const char *node_state_to_string(enum node_state s)
{
	if (s < 0 || s >= _NODE_STATE_MAX)
		return "unknown";
	return state_names[s];
}

struct node_peer *node_peer_find(struct node_daemon *d, uint32_t id)
{
	for (size_t i = 0; i < d->n_peers; i++)
		if (d->peers[i].id == id)
			return &d->peers[i];
	return NULL;
}

uint32_t node_of_pid(const struct node_daemon *d, pid_t pid)
{
	uint32_t id;

	if (pid <= 0)
		return 0;
	id = (uint32_t)pid / d->config.pid_range;
	for (size_t i = 0; i < d->n_peers; i++)
		if (d->peers[i].id == id)
			return id;
	return 0;
}

void node_answer(struct node_daemon *d, uint32_t origin, uint16_t channel, uint32_t type,
		 uint64_t req, const struct buf *attrs)
{
	struct buf b = BUF_INIT;
	int r;

	r = attr_put_u64(&b, A_REQ, req);
	if (r >= 0 && attrs && attrs->len)
		r = buf_append(&b, attrs->data, attrs->len);
	if (r >= 0)
		r = msg_send(d->msg, origin, channel, type, b.data, b.len);
	if (r < 0)
		log_debug_errno(r, "cannot answer node %u", origin);
	buf_release(&b);
}

void node_answer_verror(struct node_daemon *d, uint32_t origin, uint16_t channel, uint32_t type,
			uint64_t req, int err, const char *fmt, va_list ap)
{
	struct buf b = BUF_INIT;
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (attr_put_u32(&b, A_ERRNO, (uint32_t)(err < 0 ? -err : EIO)) >= 0 &&
	    attr_put_str(&b, A_MESSAGE, msg) >= 0)
		node_answer(d, origin, channel, type, req, &b);
	buf_release(&b);
}

uint64_t node_new_id(struct node_daemon *d)
{
	if (++d->next_id == 0)
		d->next_id = 1;
	return d->next_id;
}

static uint32_t read_load(void)
{
	struct buf b = BUF_INIT;
	uint32_t load = 0;
	double v;

	if (read_file_at(AT_FDCWD, "/proc/loadavg", &b) >= 0 && b.data &&
	    sscanf(b.data, "%lf", &v) == 1 && v >= 0 && v < 1e6)
		load = (uint32_t)(v * 100 + 0.5);
	buf_release(&b);
	return load;
}

static void update_self(struct node_daemon *d)
{
	struct node_peer *self = node_peer_find(d, d->self);

	self->have_load = true;
	self->load = read_load();
	self->nprocs = (uint32_t)d->n_running;
}

static void send_load(struct node_daemon *d, uint32_t to)
{
	struct node_peer *self = node_peer_find(d, d->self);
	struct buf b = BUF_INIT;
	int r;

	r = attr_put_u32(&b, A_LOAD, self->load);
	if (r >= 0)
		r = attr_put_u32(&b, A_NPROCS, self->nprocs);
	if (r >= 0)
		r = msg_send(d->msg, to, NODE_CH_MEMBER, MEMBER_LOAD, b.data, b.len);
	if (r < 0 && r != -EHOSTDOWN)
		log_debug_errno(r, "cannot send load to node %u", to);
	buf_release(&b);
}

static uint32_t load_interval_ms(const struct node_daemon *d)
{
	return MAX(200u, MIN(1000u, d->config.timeout_ms / 2));
}

static void load_tick(struct loop_timer *t, void *userdata)
{
	struct node_daemon *d = userdata;

	update_self(d);
	proc_tick(d);
	for (size_t i = 0; i < d->n_peers; i++)
		if (d->peers[i].state == NODE_STATE_UP)
			send_load(d, d->peers[i].id);
	loop_timer_arm(t, (uint64_t)load_interval_ms(d) * 1000);
}

void node_procs_changed(struct node_daemon *d)
{
	/* Tell the others at once rather than at the next tick. */
	if (d->load_timer && !d->leaving)
		loop_timer_arm(d->load_timer, 0);
}

static void node_gone(struct node_daemon *d, struct node_peer *p, enum node_state state)
{
	bool was_up = p->state == NODE_STATE_UP;

	p->state = state;
	p->have_load = false;
	if (was_up) {
		run_node_down(d, p->id);
		req_node_down(d, p->id);
		move_node_down(d, p->id);
		standin_node_down(d, p->id);
		keep_node_down(d, p->id);
		stream_node_down(d, p->id);
		dstream_node_down(d, p->id);
	}
}

static void peer_event(struct msg *m, uint32_t node, enum msg_peer_event event,
		       uint64_t incarnation, void *userdata)
{
	struct node_daemon *d = userdata;
	struct node_peer *p = node_peer_find(d, node);

	(void)m;
	if (!p || node == d->self)
		return;
	if (event == MSG_PEER_UP) {
		if (p->state == NODE_STATE_FAILED)
			log_info("node %u (%s) is back", node, p->address);
		else
			log_info("node %u (%s) is up", node, p->address);
		p->state = NODE_STATE_UP;
		p->incarnation = incarnation;
		p->have_load = false;
		update_self(d);
		send_load(d, node);
		return;
	}
	if (p->left_incarnation == incarnation) {
		if (p->state == NODE_STATE_UP)
			node_gone(d, p, NODE_STATE_DOWN);
		return;
	}
	if (p->state == NODE_STATE_UP) {
		log_warn("node %u (%s) failed: nothing heard from it for %u ms", node, p->address,
			 d->config.timeout_ms);
		node_gone(d, p, NODE_STATE_FAILED);
	}
}

static void member_recv(struct msg *m, uint32_t node, uint16_t channel, uint32_t type,
			const void *data, size_t len, void *userdata)
{
	struct node_daemon *d = userdata;
	struct node_peer *p = node_peer_find(d, node);
	struct attr_iter it;
	struct attr a;
	uint32_t v;
	int r;

	(void)m;
	(void)channel;
	if (!p || node == d->self || p->state != NODE_STATE_UP)
		return;
	if (type == MEMBER_LEAVE) {
		log_info("node %u (%s) is leaving the cluster", node, p->address);
		p->left_incarnation = p->incarnation;
		node_gone(d, p, NODE_STATE_DOWN);
		return;
	}
	if (type != MEMBER_LOAD)
		return;
	attr_iter_init(&it, data, len);
	while ((r = attr_next(&it, &a)) > 0) {
		if (a.type == A_LOAD && attr_u32(&a, &v) >= 0)
			p->load = v;
		else if (a.type == A_NPROCS && attr_u32(&a, &v) >= 0)
			p->nprocs = v;
	}
	if (r < 0) {
		log_warn("malformed load report from node %u, ignoring", node);
		return;
	}
	p->have_load = true;
}

void node_list_nodes(struct node_daemon *d, struct ctl_conn *c)
{
	struct buf b = BUF_INIT;
	int r = 0;

	update_self(d);
	for (size_t i = 0; i < d->n_peers && r >= 0; i++) {
		const struct node_peer *p = &d->peers[i];

		buf_reset(&b);
		r = attr_put_u32(&b, A_NODE, p->id);
		if (r >= 0)
			r = attr_put_str(&b, A_ADDRESS, p->address);
		if (r >= 0)
			r = attr_put_str(&b, A_STATE, node_state_to_string(p->state));
		if (r >= 0 && p->have_load) {
			r = attr_put_u32(&b, A_LOAD, p->load);
			if (r >= 0)
				r = attr_put_u32(&b, A_NPROCS, p->nprocs);
		}
		if (r >= 0)
			r = ctl_send(c, CTL_NODE, &b);
	}
	buf_release(&b);
	if (r == -ENOMEM) {
		ctl_send_error(c, r, 0, "out of memory");
		return;
	}
	if (r >= 0 && ctl_send(c, CTL_END, NULL) >= 0)
		ctl_finish(c);
}

/* ---- shutdown ------------------------------------------------------------ */

static bool leave_acknowledged(struct node_daemon *d)
{
	for (size_t i = 0; i < d->n_peers; i++) {
		struct msg_peer_info info;

		if (d->peers[i].state != NODE_STATE_UP)
			continue;
		if (msg_peer_get_info(d->msg, d->peers[i].id, &info) >= 0 && info.connected &&
		    info.queued_bytes > 0)
			return false;
	}
	return true;
}

static void leave_tick(struct loop_timer *t, void *userdata)
{
	struct node_daemon *d = userdata;

	if (leave_acknowledged(d) || loop_now(d->loop) >= d->leave_deadline) {
		loop_exit(d->loop, d->exit_code);
		return;
	}
	loop_timer_arm(t, LEAVE_POLL_USEC);
}

static void on_stop(struct loop_signal *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct node_daemon *d = userdata;

	(void)s;
	if (d->leaving) {
		log_info("second signal: exiting now");
		loop_exit(d->loop, d->exit_code);
		return;
	}
	log_info("%s: leaving the cluster; managed processes keep running",
		 si->ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
	d->leaving = true;
	run_free_all(d);
	req_free_all(d);
	move_free_all(d);
	stream_free_all(d);
	dstream_free_all(d);
	standin_free_all(d);
	keep_free_all(d);
	ctl_shutdown(d);
	for (size_t i = 0; i < d->n_peers; i++)
		if (d->peers[i].state == NODE_STATE_UP)
			(void)msg_send(d->msg, d->peers[i].id, NODE_CH_MEMBER, MEMBER_LEAVE, NULL,
				       0);
	d->leave_deadline = loop_now(d->loop) + LEAVE_WAIT_USEC;
	loop_timer_arm(d->leave_timer, LEAVE_POLL_USEC);
}

static void on_chld(struct loop_signal *s, const struct signalfd_siginfo *si, void *userdata)
{
	(void)s;
	(void)si;
	proc_reap(userdata);
}

static void on_hup(struct loop_signal *s, const struct signalfd_siginfo *si, void *userdata)
{
	(void)s;
	(void)si;
	log_info("SIGHUP: reading checkpoint-memory again (the rest of the configuration is "
		 "read at start only)");
	keep_reload(userdata);
}

/* As PID 1 of a PID namespace, the kernel drops signals whose action is the
 * default one before they can reach the signalfd; a handler that is never
 * run (the signals stay blocked) makes them arrive. */
static void no_op(int sig)
{
	(void)sig;
}

static int setup_signals(struct node_daemon *d, struct buf *err)
{
	struct sigaction sa = { .sa_handler = no_op };
	static const int sigs[] = { SIGTERM, SIGINT, SIGCHLD, SIGHUP };
	int r;

	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		if (sigaction(sigs[i], &sa, NULL) < 0)
			return node_err_errno(err, -errno, "cannot set a handler for signal %d",
					      sigs[i]);
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) < 0)
		return node_err_errno(err, -errno, "cannot ignore SIGPIPE");
	r = loop_signal_new(d->loop, SIGTERM, on_stop, d, &d->sig_term);
	if (r >= 0)
		r = loop_signal_new(d->loop, SIGINT, on_stop, d, &d->sig_int);
	if (r >= 0)
		r = loop_signal_new(d->loop, SIGCHLD, on_chld, d, &d->sig_chld);
	if (r >= 0)
		r = loop_signal_new(d->loop, SIGHUP, on_hup, d, &d->sig_hup);
	if (r < 0)
		return node_err_errno(err, r, "cannot watch signals");
	return 0;
}

static int mkdir_p(const char *path, mode_t mode)
{
	_cleanup_free_ char *p = strdup(path);

	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int start_msg(struct node_daemon *d, struct buf *err)
{
	struct msg_config mc = MSG_CONFIG_INIT;
	struct msg_handler h = { .recv = member_recv };
	struct msg_peer_config *pc;
	int r;

	pc = NEW_ARRAY(struct msg_peer_config, d->n_peers);
	if (!pc)
		return node_err(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < d->n_peers; i++) {
		pc[i].id = d->peers[i].id;
		pc[i].address = d->peers[i].address;
	}
	mc.node_id = d->self;
	mc.peers = pc;
	mc.n_peers = d->n_peers;
	mc.encrypt = d->config.encrypt;
	mc.peer_timeout_ms = d->config.timeout_ms;
	mc.heartbeat_ms = MAX(10u, MIN(500u, d->config.timeout_ms / 4));
	r = node_key_load(d->config.key_file, mc.key, err);
	if (r >= 0) {
		r = msg_new(d->loop, &mc, &d->msg);
		if (r < 0)
			node_err_errno(err, r, "cannot listen on %s",
				       node_peer_find(d, d->self)->address);
	}
	memset(mc.key, 0, sizeof(mc.key));
	free(pc);
	if (r < 0)
		return r;
	msg_set_peer_fn(d->msg, peer_event, d);
	r = msg_register(d->msg, NODE_CH_MEMBER, &h, d);
	if (r < 0)
		return node_err_errno(err, r, "cannot register the membership channel");
	return 0;
}

int node_daemon_new(const struct node_daemon_opts *opts, struct node_daemon **ret,
		    struct buf *err)
{
	const char *config_path = opts->config_path ? opts->config_path : NODE_DEFAULT_CONFIG;
	struct node_daemon *d;
	int r;

	d = calloc(1, sizeof(*d));
	if (!d)
		return node_err(err, -ENOMEM, "out of memory");
	d->config = (struct node_config)NODE_CONFIG_INIT;
	d->control_fd = -1;
	r = node_config_load(config_path, &d->config, err);
	if (r < 0)
		goto fail;
	if (opts->node_id) {
		if (!node_config_find(&d->config, opts->node_id)) {
			r = node_err(err, -ENOENT, "node %u is not in '%s'", opts->node_id,
				     config_path);
			goto fail;
		}
		d->self = opts->node_id;
	} else {
		r = node_config_find_local(&d->config, &d->self, err);
		if (r < 0)
			goto fail;
	}
	d->peers = NEW_ARRAY(struct node_peer, d->config.n_nodes);
	d->control_path = strdup(opts->control_path ? opts->control_path : NODE_DEFAULT_CONTROL);
	d->config_path = strdup(config_path);
	d->log_dir = strdup(opts->log_dir ? opts->log_dir : NODE_DEFAULT_LOG_DIR);
	if (!d->peers || !d->control_path || !d->log_dir || !d->config_path) {
		r = node_err(err, -ENOMEM, "out of memory");
		goto fail;
	}
	d->n_peers = d->config.n_nodes;
	for (size_t i = 0; i < d->n_peers; i++) {
		const struct node_config_node *n = &d->config.nodes[i];

		d->peers[i].id = n->id;
		d->peers[i].state = n->id == d->self ? NODE_STATE_SELF : NODE_STATE_DOWN;
		snprintf(d->peers[i].address, sizeof(d->peers[i].address),
			 strchr(n->address, ':') ? "[%s]:%u" : "%s:%u", n->address, n->port);
	}
	r = mkdir_p(d->log_dir, 0755);
	if (r < 0) {
		node_err_errno(err, r, "cannot create the log directory '%s'", d->log_dir);
		goto fail;
	}
	r = loop_new(&d->loop);
	if (r < 0) {
		node_err_errno(err, r, "cannot create the event loop");
		goto fail;
	}
	r = setup_signals(d, err);
	if (r >= 0)
		r = proc_init(d, err);
	/* The control socket first: a second daemon meant for the same node
	 * is told so, rather than that the port is taken. */
	if (r >= 0)
		r = ctl_listen(d, err);
	if (r >= 0)
		r = start_msg(d, err);
	if (r < 0)
		goto fail;
	req_register(d);
	run_register(d);
	move_register(d);
	r = stream_init(d);
	if (r < 0) {
		node_err_errno(err, r, "cannot set up the stream manager");
		goto fail;
	}
	r = dstream_init(d);
	if (r < 0) {
		node_err_errno(err, r, "cannot set up the dstream manager");
		goto fail;
	}
	r = keep_init(d, err);
	if (r < 0)
		goto fail;
	r = loop_timer_new(d->loop, load_tick, d, &d->load_timer);
	if (r >= 0)
		r = loop_timer_new(d->loop, leave_tick, d, &d->leave_timer);
	if (r < 0) {
		node_err_errno(err, r, "cannot create timers");
		goto fail;
	}
	loop_timer_arm(d->load_timer, 0);
	log_info("node %u of %zu: messages on %s, control socket '%s', PIDs %d-%d%s", d->self,
		 d->n_peers, node_peer_find(d, d->self)->address, d->control_path,
		 (int)d->pid_first, (int)d->pid_last, d->config.encrypt ? "" : ", no encryption");
	*ret = d;
	return 0;
fail:
	node_daemon_free(d);
	return r;
}

int node_daemon_run(struct node_daemon *d)
{
	return loop_run(d->loop);
}

struct node_daemon *node_daemon_free(struct node_daemon *d)
{
	if (!d)
		return NULL;
	run_free_all(d);
	req_free_all(d);
	move_free_all(d);
	stream_free_all(d);
	dstream_free_all(d);
	standin_free_all(d);
	keep_done(d);
	ctl_shutdown(d);
	d->msg = msg_free(d->msg);
	proc_done(d);
	d->loop = loop_free(d->loop);
	node_config_release(&d->config);
	free(d->peers);
	free(d->control_path);
	free(d->config_path);
	free(d->log_dir);
	free(d);
	return NULL;
}

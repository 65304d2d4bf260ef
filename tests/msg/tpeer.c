/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The msg test endpoint (see tpeer.h). Termination: once a node has sent and
 * received all its traffic and every byte it sent is acknowledged, it sends
 * FIN to each other node; it stops when it holds every other node's FIN and
 * its own FINs are acknowledged (or their receiver, having sent its own FIN,
 * is gone), so no node leaves while another still needs it.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tpeer.h"
#include "traffic.h"
#include "base/macro.h"

#define FIN_TYPE 1
#define STREAM_WRITE (256u << 10)

struct run;

struct node {
	struct run *run;
	uint32_t id;
	bool up, fin_rx, fin_sent, gone;
	uint64_t tx_next, rx_next, since_fault;
	unsigned fault_idx;
	struct msg_stream *stream;
	uint64_t s_off;
	bool s_closed, s_done;
	uint64_t srx_off, srx_total;
	bool srx_done;
};

struct run {
	const struct tpeer_opts *o;
	struct loop *loop;
	struct msg *m;
	struct node *nodes;
	size_t n;
	int status;
	bool finished;
	uint8_t *buf;
	size_t buf_size;
	struct loop_timer *tick;
	struct loop_signal *sigterm, *sigint, *sigusr1;
};

static void event(struct run *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void event(struct run *run, const char *fmt, ...)
{
	va_list ap;

	if (!run->o->events)
		return;
	va_start(ap, fmt);
	vfprintf(run->o->events, fmt, ap);
	va_end(ap);
	fputc('\n', run->o->events);
	fflush(run->o->events);
}

static void fail(struct run *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct run *run, const char *fmt, ...)
{
	va_list ap;

	if (run->status)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "tpeer %u: ", run->o->id);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	run->status = 1;
	event(run, "failed");
	loop_exit(run->loop, 1);
}

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		fail(__VA_ARGS__);                                                                 \
		return;                                                                            \
	} while (0)

static struct node *find_node(struct run *run, uint32_t id)
{
	for (size_t i = 0; i < run->n; i++)
		if (run->nodes[i].id == id)
			return &run->nodes[i];
	return NULL;
}

static void check_done(struct run *run);

static void stream_pump(struct node *n)
{
	struct run *run = n->run;
	uint64_t total = run->o->stream_bytes;

	while (n->stream && !n->s_closed) {
		size_t len;
		int r;

		if (n->s_off == total) {
			r = msg_stream_close(n->stream);
			if (r < 0)
				FAIL(run, "closing stream to %u: %d", n->id, r);
			n->s_closed = true;
			return;
		}
		len = (size_t)(total - n->s_off < STREAM_WRITE ? total - n->s_off : STREAM_WRITE);
		traffic_stream_fill(run->o->id, n->id, n->s_off, run->buf, len);
		r = msg_stream_write(n->stream, run->buf, len);
		if (r == -EAGAIN)
			return;
		if (r < 0)
			FAIL(run, "writing stream to %u: %d", n->id, r);
		n->s_off += len;
	}
}

static void pump(struct node *n)
{
	struct run *run = n->run;
	const struct tpeer_opts *o = run->o;

	while (n->up && n->tx_next < o->count) {
		size_t len;
		int r;

		r = msg_peer_writable(run->m, n->id);
		if (r == 0)
			break;
		if (r < 0)
			FAIL(run, "node %u not writable: %d", n->id, r);
		len = traffic_size(o->id, n->id, n->tx_next, o->max_size);
		traffic_fill(o->id, n->id, n->tx_next, run->buf, len);
		r = msg_send(run->m, n->id, TPEER_CHANNEL, (uint32_t)n->tx_next, run->buf, len);
		if (r < 0)
			FAIL(run, "sending to %u: %d", n->id, r);
		n->tx_next++;
	}
	stream_pump(n);
}

static void on_stream_writable(struct msg_stream *s _unused_, void *userdata)
{
	stream_pump(userdata);
}

static void on_stream_done(struct msg_stream *s _unused_, int error, void *userdata)
{
	struct node *n = userdata;

	n->stream = NULL;
	if (error < 0 && n->run->o->linger) {
		event(n->run, "stream-failed %u", n->id);
		return;
	}
	if (error < 0)
		FAIL(n->run, "stream to %u ended with %d", n->id, error);
	n->s_done = true;
	check_done(n->run);
}

static void on_peer(struct msg *m, uint32_t id, enum msg_peer_event ev, uint64_t inc,
		    void *userdata)
{
	static const struct msg_stream_ops ops = {
		.writable = on_stream_writable,
		.done = on_stream_done,
	};
	struct run *run = userdata;
	struct node *n = find_node(run, id);
	uint8_t total[8];
	int r;

	if (!n)
		return;
	if (ev == MSG_PEER_DOWN) {
		n->up = false;
		event(run, "down %u", id);
		/* A send to a node that is down fails at once. */
		event(run, "send %u %d", id, msg_send(m, id, TPEER_CONTROL_CHANNEL, 0, NULL, 0));
		if (n->fin_rx)
			n->gone = true;
		else if (!run->o->linger)
			FAIL(run, "node %u went down", id);
		check_done(run);
		return;
	}
	/* A new session: everything starts again from message 0. */
	memset(&n->tx_next, 0, sizeof(*n) - offsetof(struct node, tx_next));
	n->up = true;
	n->fin_rx = n->fin_sent = n->gone = false;
	run->finished = false;
	event(run, "up %u %016llx", id, (unsigned long long)inc);
	if (run->o->stream_bytes) {
		for (int i = 0; i < 8; i++)
			total[i] = (uint8_t)(run->o->stream_bytes >> (8 * i));
		r = msg_stream_open(m, id, TPEER_CHANNEL, 0, total, sizeof(total), &ops, n,
				    &n->stream);
		if (r < 0)
			FAIL(run, "opening stream to %u: %d", id, r);
	}
	pump(n);
}

static void inject_fault(struct node *n)
{
	static const enum msg_fault rotation[] = { MSG_FAULT_CUT, MSG_FAULT_CORRUPT,
						   MSG_FAULT_GARBAGE, MSG_FAULT_OVERSIZE };
	struct run *run = n->run;
	enum msg_fault f = MSG_FAULT_CUT;

	if (run->o->all_faults)
		f = rotation[n->fault_idx++ % 4];
	(void)msg_fault_inject(run->m, n->id, f);
}

static void on_recv(struct msg *m _unused_, uint32_t id, uint16_t channel _unused_,
		    uint32_t type, const void *data, size_t len, void *userdata)
{
	struct run *run = userdata;
	const struct tpeer_opts *o = run->o;
	struct node *n = find_node(run, id);
	size_t want;

	if (!n)
		FAIL(run, "message from unknown node %u", id);
	if (n->rx_next >= o->count)
		FAIL(run, "message %u from %u beyond the %llu expected", type, id,
			    (unsigned long long)o->count);
	if (type != (uint32_t)n->rx_next)
		FAIL(run, "from %u: got message %u, expected %llu", id, type,
			    (unsigned long long)n->rx_next);
	want = traffic_size(id, o->id, n->rx_next, o->max_size);
	if (len != want || traffic_check(id, o->id, n->rx_next, data, len) < 0)
		FAIL(run, "from %u: message %llu corrupt (%zu bytes, expected %zu)", id,
			    (unsigned long long)n->rx_next, len, want);
	n->rx_next++;
	if (o->fault_every && ++n->since_fault >= o->fault_every) {
		n->since_fault = 0;
		inject_fault(n);
	}
	if (n->rx_next == o->count)
		check_done(run);
}

static void on_failed(struct msg *m _unused_, uint32_t id, uint16_t channel, uint32_t type,
		      const void *data _unused_, size_t len _unused_, int error, void *userdata)
{
	struct run *run = userdata;

	if (!run->o->linger)
		fail(run, "message %u on channel %u to %u failed: %d", type, channel, id, error);
}

static void on_writable(struct msg *m _unused_, uint32_t id, void *userdata)
{
	struct node *n = find_node(userdata, id);

	if (n)
		pump(n);
}

static int on_stream_open(struct msg_stream *s, uint32_t id, uint32_t type _unused_,
			  const void *data, size_t len, void *userdata)
{
	struct run *run = userdata;
	struct node *n = find_node(run, id);
	const uint8_t *p = data;

	if (!n || len != 8)
		return -EINVAL;
	n->srx_total = 0;
	for (int i = 0; i < 8; i++)
		n->srx_total |= (uint64_t)p[i] << (8 * i);
	n->srx_off = 0;
	msg_stream_set_userdata(s, n);
	return 0;
}

static void on_stream_data(struct msg_stream *s _unused_, const void *data, size_t len,
			   void *userdata)
{
	struct node *n = userdata;

	if (traffic_stream_check(n->id, n->run->o->id, n->srx_off, data, len) < 0)
		FAIL(n->run, "stream from %u corrupt at %llu", n->id,
			    (unsigned long long)n->srx_off);
	n->srx_off += len;
}

static void on_stream_end(struct msg_stream *s _unused_, int error, void *userdata)
{
	struct node *n = userdata;

	if (error < 0 && n->run->o->linger) {
		event(n->run, "stream-failed %u", n->id);
		return;
	}
	if (error < 0 || n->srx_off != n->srx_total)
		FAIL(n->run, "stream from %u ended with %d after %llu of %llu bytes", n->id,
			    error, (unsigned long long)n->srx_off,
			    (unsigned long long)n->srx_total);
	n->srx_done = true;
	check_done(n->run);
}

static void on_control(struct msg *m _unused_, uint32_t id, uint16_t channel _unused_,
		       uint32_t type, const void *data _unused_, size_t len _unused_,
		       void *userdata)
{
	struct run *run = userdata;
	struct node *n = find_node(run, id);

	if (n && type == FIN_TYPE) {
		n->fin_rx = true;
		check_done(run);
	}
}

static bool traffic_done(struct run *run, struct node *n)
{
	const struct tpeer_opts *o = run->o;
	struct msg_peer_info info;

	if (!n->up || n->tx_next < o->count || n->rx_next < o->count)
		return false;
	if (o->stream_bytes && (!n->s_done || !n->srx_done))
		return false;
	return msg_peer_get_info(run->m, n->id, &info) == 0 && info.queued_bytes == 0;
}

static void print_stats(struct run *run)
{
	struct msg_stats st;

	msg_get_stats(run->m, &st);
	for (size_t i = 0; i < run->n; i++) {
		struct msg_peer_info info;

		if (msg_peer_get_info(run->m, run->nodes[i].id, &info) < 0)
			continue;
		event(run,
		      "stats %u sent=%llu received=%llu retransmitted=%llu duplicates=%llu "
		      "connections=%llu sessions=%llu peak=%llu",
		      run->nodes[i].id, (unsigned long long)info.sent,
		      (unsigned long long)info.received, (unsigned long long)info.retransmitted,
		      (unsigned long long)info.duplicates, (unsigned long long)info.connections,
		      (unsigned long long)info.sessions, (unsigned long long)info.queued_peak);
	}
	event(run, "stats handshakes=%llu auth_failures=%llu bad_frames=%llu",
	      (unsigned long long)st.handshakes, (unsigned long long)st.auth_failures,
	      (unsigned long long)st.bad_frames);
}

static void check_done(struct run *run)
{
	bool all = true;

	if (run->finished)
		return;
	for (size_t i = 0; i < run->n; i++) {
		struct node *n = &run->nodes[i];

		if (!n->fin_sent && traffic_done(run, n)) {
			if (msg_send(run->m, n->id, TPEER_CONTROL_CHANNEL, FIN_TYPE, NULL, 0) < 0)
				FAIL(run, "cannot send FIN to %u", n->id);
			n->fin_sent = true;
		}
	}
	for (size_t i = 0; i < run->n && all; i++) {
		struct node *n = &run->nodes[i];
		struct msg_peer_info info;

		if (n->gone)
			continue;
		all = n->fin_sent && n->fin_rx &&
		      msg_peer_get_info(run->m, n->id, &info) == 0 && info.queued_bytes == 0;
	}
	if (!all)
		return;
	run->finished = true;
	print_stats(run);
	event(run, "done");
	if (!run->o->linger)
		loop_exit(run->loop, 0);
}

static void on_tick(struct loop_timer *t, void *userdata)
{
	check_done(userdata);
	loop_timer_arm(t, 20000);
}

static void on_signal(struct loop_signal *s _unused_, const struct signalfd_siginfo *si,
		      void *userdata)
{
	struct run *run = userdata;

	if (si->ssi_signo == SIGUSR1) {
		print_stats(run);
		return;
	}
	loop_exit(run->loop, run->status);
}

int tpeer_run(const struct tpeer_opts *o)
{
	static const struct msg_handler data_handler = {
		.recv = on_recv,
		.failed = on_failed,
		.writable = on_writable,
		.stream_open = on_stream_open,
		.stream_data = on_stream_data,
		.stream_end = on_stream_end,
	};
	static const struct msg_handler control_handler = {
		.recv = on_control,
		.failed = on_failed,
	};
	struct msg_config cfg = MSG_CONFIG_INIT;
	struct run run = { .o = o };
	int lfd = o->listen_fd, r;

	cfg.node_id = o->id;
	cfg.peers = o->nodes;
	cfg.n_peers = o->n_nodes;
	memcpy(cfg.key, o->key, sizeof(cfg.key));
	cfg.encrypt = !o->plain;
	cfg.listen_fd = -1;
	cfg.heartbeat_ms = o->heartbeat_ms;
	cfg.peer_timeout_ms = o->timeout_ms;
	cfg.reconnect_min_ms = o->reconnect_min_ms;
	cfg.window = o->window;

	run.buf_size = o->max_size > STREAM_WRITE ? o->max_size : STREAM_WRITE;
	run.buf = malloc(run.buf_size);
	run.nodes = calloc(o->n_nodes, sizeof(*run.nodes));
	if (!run.buf || !run.nodes) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < o->n_nodes; i++) {
		if (o->nodes[i].id == o->id)
			continue;
		run.nodes[run.n].run = &run;
		run.nodes[run.n].id = o->nodes[i].id;
		run.n++;
	}
	r = loop_new(&run.loop);
	if (r < 0)
		goto out;
	cfg.listen_fd = lfd;
	lfd = -1;
	r = msg_new(run.loop, &cfg, &run.m);
	if (r < 0)
		goto out;
	msg_set_peer_fn(run.m, on_peer, &run);
	r = msg_register(run.m, TPEER_CHANNEL, &data_handler, &run);
	if (r >= 0)
		r = msg_register(run.m, TPEER_CONTROL_CHANNEL, &control_handler, &run);
	if (r >= 0)
		r = loop_timer_new(run.loop, on_tick, &run, &run.tick);
	if (r >= 0)
		r = loop_signal_new(run.loop, SIGTERM, on_signal, &run, &run.sigterm);
	if (r >= 0)
		r = loop_signal_new(run.loop, SIGINT, on_signal, &run, &run.sigint);
	if (r >= 0)
		r = loop_signal_new(run.loop, SIGUSR1, on_signal, &run, &run.sigusr1);
	if (r < 0)
		goto out;
	loop_timer_arm(run.tick, 20000);
	event(&run, "ready %u port %d", o->id, msg_local_port(run.m));
	r = loop_run(run.loop);
	if (r >= 0)
		r = run.status;
	if (!run.finished)
		print_stats(&run);
	if (o->ret_queued_peak) {
		*o->ret_queued_peak = 0;
		for (size_t i = 0; i < run.n; i++) {
			struct msg_peer_info info;

			if (msg_peer_get_info(run.m, run.nodes[i].id, &info) == 0 &&
			    info.queued_peak > *o->ret_queued_peak)
				*o->ret_queued_peak = info.queued_peak;
		}
	}
out:
	loop_signal_free(run.sigterm);
	loop_signal_free(run.sigint);
	loop_signal_free(run.sigusr1);
	loop_timer_free(run.tick);
	msg_free(run.m);
	loop_free(run.loop);
	free(run.nodes);
	free(run.buf);
	safe_close(lfd);
	return r;
}

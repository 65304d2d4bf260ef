/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The message endpoint: configuration, peers, sessions, sequencing and
 * acknowledgement, liveness, and the send/receive interface of msg.h.
 *
 * A session is what two nodes share while each holds the other UP: the
 * sequence numbers of both directions and the frames not yet acknowledged.
 * Connections (conn.c) come and go under a session; a session ends only when
 * a peer is declared failed or turns out to have restarted.
 *
 *                      handshake, new session (MSG_PEER_UP)
 *          +------+ ------------------------------------------> +----+
 *          | DOWN |                                             | UP |<--+
 *          +------+ <------------------------------------------ +----+   |
 *                    msg_peer_fail: silence for peer_timeout_ms,      |      |
 *                    or a handshake showing the peer forgot       +------+
 *                    the session (MSG_PEER_DOWN, failed       handshake resuming the
 *                    messages and streams reported)           session: resend the
 *                                                             frames it lacks
 *
 * Resume or new session: both hellos carry the sender's incarnation and the
 * incarnation it holds for the other side in its session (0 for none). The
 * session resumes iff each side names the other's current incarnation; both
 * sides see both hellos, so both reach the same verdict. Otherwise a session
 * that was UP ends (DOWN with its unacknowledged messages failed), and a new
 * one starts at sequence 1 (UP). So a peer that restarted (new random
 * incarnation, state lost) never receives the old session's frames: the old
 * session's unacknowledged messages are reported failed to their senders,
 * because whatever they referred to died with the peer's old process. A peer
 * that was merely unreachable resumes and gets exactly what it lacks, unless
 * either side already declared the other failed, which ends the session on
 * both sides at the next handshake.
 *
 * One exception: the dialer takes a new session when the acceptor's hello
 * checks out, the acceptor only when the dialer's MAC does, so a connection
 * that breaks in between leaves the session on one side only. The next hello
 * from the other side then names no session (0) but the same incarnation.
 * Until a record of the peer shows that it holds the session too
 * (p->confirmed), nothing of the session can have been received or
 * acknowledged by either side, so the side holding it keeps it, with no DOWN
 * and no failures, and the other side starts it, with its UP: a cut in the
 * first handshake is as invisible as any other.
 *
 * Invariants:
 *   1. Frames to a peer carry seq 1, 2, ... in queueing order; the queue
 *      holds exactly tx_acked + 1 .. tx_seq, and tx_acked <= tx_sent <= tx_seq.
 *   2. A sequenced frame is delivered iff its seq is rx_seq + 1; then rx_seq
 *      grows. Lower seqs are duplicates and dropped, higher ones protocol errors.
 *   3. A DOWN peer has an empty queue, no streams, inc == 0 and refuses sends.
 *   4. At most one established connection per peer (p->conn); a newer one
 *      replaces it. Only the lower node id dials; the acceptor never dials.
 *
 *   transition               function
 *   DOWN -> UP               msg_peer_attach (new session)
 *   UP -> UP (resume)        msg_peer_attach
 *   UP -> DOWN               msg_peer_fail (from on_liveness or msg_peer_attach)
 *
 * Plain mode (encrypt = false): the handshake is the same, so only holders of
 * the key connect, and every frame header carries a SipHash MAC keyed per
 * connection and direction, over the length, a record counter and the header.
 * Forged, replayed, reordered or resized frames and garbage are caught; the
 * payload bytes are not covered. Covering them would cost as much as the AEAD
 * itself (with AES-NI, AES-GCM runs about as fast as any MAC of libsodium), so
 * the only point of switching encryption off - no per-byte cryptography on a
 * trusted network, at plain TCP's speed - would be lost.
 */
#include <assert.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <string.h>

#define LOG_PREFIX "msg"
#include "msg/msg-int.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/banned.h"

_Static_assert(offsetof(struct frame, data) == offsetof(struct frame, hdr) + WIRE_HDR_SIZE,
	       "frame header and payload must be contiguous");

#define DEFAULT_HEARTBEAT_MS 500
#define DEFAULT_PEER_TIMEOUT_MS 5000
#define DEFAULT_HANDSHAKE_TIMEOUT_MS 3000
#define DEFAULT_RECONNECT_MIN_MS 20
#define DEFAULT_RECONNECT_MAX_MS 1000
#define DEFAULT_WINDOW (16u << 20)

/* ---- frames ---- */

struct frame *msg_frame_new(uint8_t kind, uint16_t channel, uint32_t type, uint64_t stream,
			const void *data, size_t len)
{
	struct frame *f;

	if (len > MSG_MAX_MESSAGE)
		return NULL;
	f = malloc(sizeof(*f) + len);
	if (!f)
		return NULL;
	memset(f, 0, sizeof(*f));
	f->kind = kind;
	f->channel = channel;
	f->type = type;
	f->stream = stream;
	f->len = (uint32_t)len;
	f->payload = f->data;
	if (len)
		memcpy(f->data, data, len);
	return f;
}

struct frame *msg_frame_new_take(uint8_t kind, uint16_t channel, uint32_t type, uint64_t stream,
			     void *data, size_t len)
{
	struct frame *f;

	if (len > MSG_MAX_MESSAGE) {
		free(data);
		return NULL;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		free(data);
		return NULL;
	}
	f->kind = kind;
	f->channel = channel;
	f->type = type;
	f->stream = stream;
	f->len = (uint32_t)len;
	f->payload = data;
	f->taken = true;
	return f;
}

struct frame *msg_frame_free(struct frame *f)
{
	if (f) {
		if (f->taken)
			free(f->payload);
		free(f);
	}
	return NULL;
}

/* ---- peers ---- */

static int peer_cmp(const void *a, const void *b)
{
	const struct peer *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

struct peer *msg_peer_find(struct msg *m, uint32_t id)
{
	struct peer key = { .id = id };

	return bsearch(&key, m->peers, m->n_peers, sizeof(*m->peers), peer_cmp);
}

void msg_peer_heard(struct peer *p)
{
	p->last_rx = loop_now(p->msg->loop);
}

static void arm_liveness(struct peer *p)
{
	loop_timer_arm_at(p->liveness, p->last_rx + p->msg->timeout_us);
}

static void notify_writable(struct peer *p)
{
	struct msg *m = p->msg;

	p->want_writable = false;
	msg_streams_writable(p);
	for (unsigned ch = 0; ch < MSG_CHANNELS; ch++) {
		struct handler_slot *slot = &m->handlers[ch];

		if (p->state != MSG_PEER_STATE_UP || p->want_writable)
			break;
		if (slot->used && slot->h.writable)
			slot->h.writable(m, p->id, slot->userdata);
	}
}

int msg_peer_on_ack(struct peer *p, uint64_t ack)
{
	struct msg *m = p->msg;

	if (ack <= p->tx_acked)
		return 0;
	if (ack > p->tx_sent || (p->conn && msg_conn_references(p->conn, ack)))
		return -EPROTO;
	p->tx_acked = ack;
	while (p->q_head && p->q_head->seq <= ack) {
		struct frame *f = p->q_head;

		p->q_head = f->next;
		if (!p->q_head)
			p->q_tail = NULL;
		p->q_bytes -= f->len;
		if (f->kind == WIRE_STREAM_END)
			msg_stream_on_end_acked(p, f->stream);
		msg_frame_free(f);
	}
	if (p->want_writable && p->q_bytes < m->window / 2)
		notify_writable(p);
	return 0;
}

int msg_peer_on_frame(struct peer *p, const struct wire_hdr *h, const uint8_t *payload, size_t len)
{
	struct msg *m = p->msg;
	struct handler_slot *slot;
	int r;

	if (h->seq <= p->rx_seq) {
		p->info.duplicates++;
		return 0;
	}
	if (h->seq != p->rx_seq + 1)
		return -EPROTO;
	p->rx_seq = h->seq;
	p->rx_unacked_bytes += WIRE_HDR_SIZE + len;
	p->rx_unacked_frames++;
	p->info.received++;
	if (h->kind != WIRE_DATA) {
		r = msg_stream_on_frame(p, h, payload, len);
		if (r == -ENOMEM) {
			/* Not taken: the connection drops and the frame comes again. */
			p->rx_seq--;
			p->info.received--;
		}
		return r;
	}
	slot = &m->handlers[h->channel];
	if (slot->used && slot->h.recv)
		slot->h.recv(m, p->id, h->channel, h->type, payload, len, slot->userdata);
	else
		log_debug("message from node %u on channel %u with no handler, dropped", p->id,
			  h->channel);
	return 0;
}

int msg_peer_queue(struct peer *p, struct frame *f)
{
	if (!f)
		return -ENOMEM;
	f->seq = ++p->tx_seq;
	f->next = NULL;
	if (p->q_tail)
		p->q_tail->next = f;
	else
		p->q_head = f;
	p->q_tail = f;
	p->q_bytes += f->len;
	p->info.sent++;
	if (p->q_bytes > p->info.queued_peak)
		p->info.queued_peak = p->q_bytes;
	if (p->conn) {
		if (!p->conn->tx_next)
			p->conn->tx_next = f;
		msg_conn_kick(p->conn);
	}
	return 0;
}

static void reset_session(struct peer *p)
{
	p->inc = 0;
	p->confirmed = false;
	p->tx_seq = p->tx_acked = p->tx_sent = 0;
	p->q_head = p->q_tail = NULL;
	p->q_bytes = 0;
	p->want_writable = false;
	p->rx_seq = p->ack_sent = 0;
	p->rx_unacked_bytes = 0;
	p->rx_unacked_frames = 0;
	p->streams = NULL;
}

void msg_peer_fail(struct peer *p, int error)
{
	struct msg *m = p->msg;
	struct frame *q = p->q_head;
	struct msg_stream *streams = p->streams;
	uint64_t inc = p->inc;

	if (p->state != MSG_PEER_STATE_UP)
		return;
	log_debug_errno(error, "node %u (incarnation %016llx) is down", p->id,
			(unsigned long long)inc);
	p->state = MSG_PEER_STATE_DOWN;
	if (p->conn)
		msg_conn_close(p->conn, error, "peer declared down");
	reset_session(p);
	loop_timer_disarm(p->liveness);

	if (m->peer_fn)
		m->peer_fn(m, p->id, MSG_PEER_DOWN, inc, m->peer_userdata);
	while (q) {
		struct frame *f = q;
		struct handler_slot *slot = &m->handlers[f->channel];

		q = f->next;
		if (f->kind == WIRE_DATA && slot->used && slot->h.failed)
			slot->h.failed(m, p->id, f->channel, f->type, f->payload, f->len,
				       -EHOSTDOWN, slot->userdata);
		msg_frame_free(f);
	}
	msg_streams_fail(streams, -EHOSTDOWN);
}

int msg_peer_attach(struct peer *p, struct conn *c)
{
	struct msg *m = p->msg;
	const struct hs_hello *ph = &c->peer_hello;
	bool resume, fresh = false, adopted = false;
	int r;

	resume = c->my_hello.your_incarnation == ph->incarnation &&
		 ph->your_incarnation == m->incarnation;
	if (!resume && p->state == MSG_PEER_STATE_UP && !p->confirmed &&
	    ph->incarnation == p->inc && c->my_hello.your_incarnation == p->inc &&
	    ph->your_incarnation == 0) {
		/* The connection that started our session broke after our side of
		 * the handshake took it and before the peer's did: the peer starts
		 * the session now, ours goes on. Nothing in it was ever received
		 * or acknowledged, so both sides stand at its beginning. */
		assert(p->rx_seq == 0 && p->tx_acked == 0 && ph->rx_seq == 0);
		adopted = true;
		resume = true;
	}
	if (resume) {
		if (p->state != MSG_PEER_STATE_UP || p->inc != ph->incarnation)
			/* Our session ended after our hello went out: start over. */
			return -ESTALE;
		if (ph->rx_seq > p->tx_sent) {
			m->stats.bad_frames++;
			log_warn("node %u claims frames that were never sent, dropping connection",
				 p->id);
			return -EPROTO;
		}
		if (p->conn && p->conn != c)
			msg_conn_close(p->conn, 0, "replaced by a newer connection");
		r = msg_peer_on_ack(p, ph->rx_seq);
		if (r < 0)
			return r;
		if (c->state == CONN_CLOSED)
			return -ECONNRESET;
		for (struct frame *f = p->q_head; f && f->seq <= p->tx_sent; f = f->next)
			p->info.retransmitted++;
	} else {
		if (p->state == MSG_PEER_STATE_UP)
			msg_peer_fail(p, -ECONNRESET);
		if (c->state == CONN_CLOSED)
			return -ECONNRESET;
		if (p->conn && p->conn != c)
			msg_conn_close(p->conn, 0, "replaced by a newer connection");
		reset_session(p);
		p->inc = ph->incarnation;
		p->state = MSG_PEER_STATE_UP;
		p->info.sessions++;
		fresh = true;
	}
	if (p->dialing == c)
		p->dialing = NULL;
	p->conn = c;
	c->tx_next = p->q_head;
	p->backoff_us = m->reconnect_min_us;
	p->info.connections++;
	msg_peer_heard(p);
	arm_liveness(p);
	if (!adopted)
		p->confirmed = !fresh;
	log_debug("node %u connected (%s session, incarnation %016llx)", p->id,
		  fresh ? "new" : adopted ? "its new, our unconfirmed" : "resumed",
		  (unsigned long long)p->inc);
	if (fresh && m->peer_fn)
		m->peer_fn(m, p->id, MSG_PEER_UP, p->inc, m->peer_userdata);
	msg_conn_kick(c);
	return 0;
}

static void schedule_redial(struct peer *p, uint64_t delay)
{
	loop_timer_arm(p->redial, delay);
}

void msg_peer_conn_lost(struct peer *p, struct conn *c, bool was_established)
{
	struct msg *m = p->msg;

	if (!c->dialer || !p->redial)
		return;
	if (was_established) {
		schedule_redial(p, m->reconnect_min_us);
	} else {
		schedule_redial(p, p->backoff_us);
		p->backoff_us = MIN(p->backoff_us * 2, m->reconnect_max_us);
	}
}

static void on_redial(struct loop_timer *t _unused_, void *userdata)
{
	struct peer *p = userdata;
	int r;

	if (p->conn || p->dialing)
		return;
	r = msg_conn_dial(p);
	if (r < 0) {
		log_debug_errno(r, "cannot dial node %u", p->id);
		schedule_redial(p, p->backoff_us);
		p->backoff_us = MIN(p->backoff_us * 2, p->msg->reconnect_max_us);
	}
}

static void on_liveness(struct loop_timer *t _unused_, void *userdata)
{
	struct peer *p = userdata;
	struct msg *m = p->msg;

	if (p->state != MSG_PEER_STATE_UP)
		return;
	if (loop_now(m->loop) < p->last_rx + m->timeout_us) {
		arm_liveness(p);
		return;
	}
	msg_peer_fail(p, -ETIMEDOUT);
}

/* ---- local delivery ---- */

static void on_local(struct loop_defer *d _unused_, void *userdata)
{
	struct msg *m = userdata;
	struct peer *self = m->self;
	struct frame *f;

	/* Deliver what is queued now; what these callbacks send waits a round. */
	f = self->q_head;
	self->q_head = self->q_tail = NULL;
	while (f) {
		struct frame *next = f->next;
		struct handler_slot *slot = &m->handlers[f->channel];

		if (slot->used && slot->h.recv)
			slot->h.recv(m, m->node_id, f->channel, f->type, f->payload, f->len,
				     slot->userdata);
		msg_frame_free(f);
		f = next;
	}
}

/* ---- setup ---- */

static int parse_address(const char *s, struct sockaddr_storage *ss, socklen_t *ret_len)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon, *h = s, *port;
	size_t hlen;
	uint64_t pv;

	if (!s)
		return -EINVAL;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		h = s + 1;
		hlen = (size_t)(close - h);
		port = close + 2;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hlen = (size_t)(colon - s);
		port = colon + 1;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (parse_u64(port, 10, &pv) < 0 || pv > 65535)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (s[0] != '[') {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -EINVAL;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)pv);
		*ret_len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -EINVAL;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)pv);
		*ret_len = sizeof(*sin6);
	}
	return 0;
}

static int listen_on(const struct peer *self, int *ret_fd)
{
	_cleanup_close_ int fd = -1;
	int one = 1;

	fd = socket(self->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		return -errno;
	if (bind(fd, (const struct sockaddr *)&self->addr, self->addrlen) < 0)
		return -errno;
	if (listen(fd, 128) < 0)
		return -errno;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static void on_listen_again(struct loop_timer *t _unused_, void *userdata)
{
	struct msg *m = userdata;

	(void)loop_io_set_events(m->listen_io, LOOP_READ);
}

static void on_listen(struct loop_io *io, int fd, unsigned events _unused_, void *userdata)
{
	struct msg *m = userdata;

	for (int i = 0; i < 32; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		int r;

		if (cfd < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			log_debug_errno(-errno, "accept failed");
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* The connection stays queued: pause rather than spin. */
				(void)loop_io_set_events(io, 0);
				loop_timer_arm(m->listen_pause, 100000);
			}
			return;
		}
		r = msg_conn_accept(m, cfd);
		if (r < 0)
			log_debug_errno(r, "cannot take an incoming connection");
	}
}

static void on_reap(struct loop_defer *d _unused_, void *userdata)
{
	struct msg *m = userdata;

	while (m->graveyard) {
		struct conn *c = m->graveyard;

		m->graveyard = c->grave_next;
		msg_conn_free(c);
	}
}

static int check_config(const struct msg_config *cfg)
{
	uint32_t hb = cfg->heartbeat_ms ? cfg->heartbeat_ms : DEFAULT_HEARTBEAT_MS;
	uint32_t to = cfg->peer_timeout_ms ? cfg->peer_timeout_ms : DEFAULT_PEER_TIMEOUT_MS;

	if (!cfg->peers || cfg->n_peers == 0 || cfg->n_peers > 65536)
		return -EINVAL;
	if (hb >= to)
		return -EINVAL;
	if (cfg->reconnect_max_ms && cfg->reconnect_min_ms > cfg->reconnect_max_ms)
		return -EINVAL;
	return 0;
}

static uint64_t ms_or(uint32_t v, uint32_t def)
{
	return (uint64_t)(v ? v : def) * 1000u;
}

int msg_new(struct loop *loop, const struct msg_config *cfg, struct msg **ret)
{
	_cleanup_close_ int lfd = cfg ? cfg->listen_fd : -1;
	struct msg *m;
	int r;

	if (!loop || !cfg || !ret)
		return -EINVAL;
	r = check_config(cfg);
	if (r < 0)
		return r;
	if (sodium_init() < 0)
		return -EIO;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->loop = loop;
	m->listen_fd = -1;
	m->node_id = cfg->node_id;
	m->encrypt = cfg->encrypt;
	m->heartbeat_us = ms_or(cfg->heartbeat_ms, DEFAULT_HEARTBEAT_MS);
	m->timeout_us = ms_or(cfg->peer_timeout_ms, DEFAULT_PEER_TIMEOUT_MS);
	m->hs_timeout_us = ms_or(cfg->handshake_timeout_ms, DEFAULT_HANDSHAKE_TIMEOUT_MS);
	m->reconnect_min_us = ms_or(cfg->reconnect_min_ms, DEFAULT_RECONNECT_MIN_MS);
	m->reconnect_max_us = ms_or(cfg->reconnect_max_ms, DEFAULT_RECONNECT_MAX_MS);
	if (m->reconnect_max_us < m->reconnect_min_us)
		m->reconnect_max_us = m->reconnect_min_us;
	m->window = cfg->window ? cfg->window : DEFAULT_WINDOW;
	m->incarnation = cfg->incarnation;
	while (m->incarnation == 0)
		randombytes_buf(&m->incarnation, sizeof(m->incarnation));
	msg_hs_keys_derive(cfg->key, &m->keys);

	m->peers = NEW_ARRAY(struct peer, cfg->n_peers);
	if (!m->peers) {
		r = -ENOMEM;
		goto fail;
	}
	m->n_peers = cfg->n_peers;
	for (size_t i = 0; i < cfg->n_peers; i++) {
		struct peer *p = &m->peers[i];

		p->id = cfg->peers[i].id;
		r = parse_address(cfg->peers[i].address, &p->addr, &p->addrlen);
		if (r < 0)
			goto fail;
	}
	qsort(m->peers, m->n_peers, sizeof(*m->peers), peer_cmp);
	for (size_t i = 1; i < m->n_peers; i++)
		if (m->peers[i].id == m->peers[i - 1].id) {
			r = -EINVAL;
			goto fail;
		}
	m->self = msg_peer_find(m, m->node_id);
	if (!m->self) {
		r = -EINVAL;
		goto fail;
	}
	m->self->self = true;

	r = loop_defer_new(loop, on_reap, m, &m->reaper);
	if (r < 0)
		goto fail;
	r = loop_defer_new(loop, on_local, m, &m->local);
	if (r < 0)
		goto fail;
	for (size_t i = 0; i < m->n_peers; i++) {
		struct peer *p = &m->peers[i];

		p->msg = m;
		p->backoff_us = m->reconnect_min_us;
		if (p->self)
			continue;
		r = loop_timer_new(loop, on_liveness, p, &p->liveness);
		if (r < 0)
			goto fail;
		if (p->id > m->node_id) {
			r = loop_timer_new(loop, on_redial, p, &p->redial);
			if (r < 0)
				goto fail;
			loop_timer_arm(p->redial, 0);
		}
	}

	if (lfd < 0) {
		r = listen_on(m->self, &lfd);
		if (r < 0)
			goto fail;
	} else if (fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK) < 0) {
		r = -errno;
		goto fail;
	}
	r = loop_io_new(loop, lfd, LOOP_READ, on_listen, m, &m->listen_io);
	if (r < 0)
		goto fail;
	r = loop_timer_new(loop, on_listen_again, m, &m->listen_pause);
	if (r < 0)
		goto fail;
	m->listen_fd = TAKE_FD(lfd);
	*ret = m;
	return 0;
fail:
	msg_free(m);
	return r;
}

struct msg *msg_free(struct msg *m)
{
	if (!m)
		return NULL;
	/* Without redial timers, closing connections schedules nothing. */
	for (size_t i = 0; m->peers && i < m->n_peers; i++)
		m->peers[i].redial = loop_timer_free(m->peers[i].redial);
	for (struct conn *c = m->conns, *next; c; c = next) {
		next = c->next;
		msg_conn_goodbye(c);
	}
	while (m->conns)
		msg_conn_close(m->conns, 0, "endpoint closing");
	on_reap(NULL, m);
	for (size_t i = 0; m->peers && i < m->n_peers; i++) {
		struct peer *p = &m->peers[i];

		loop_timer_free(p->liveness);
		while (p->q_head) {
			struct frame *f = p->q_head;

			p->q_head = f->next;
			msg_frame_free(f);
		}
		msg_streams_free(p->streams);
	}
	loop_io_free(m->listen_io);
	loop_timer_free(m->listen_pause);
	safe_close(m->listen_fd);
	loop_defer_free(m->reaper);
	loop_defer_free(m->local);
	sodium_memzero(&m->keys, sizeof(m->keys));
	free(m->peers);
	free(m);
	return NULL;
}

/* ---- API ---- */

uint32_t msg_node_id(const struct msg *m)
{
	return m->node_id;
}

uint64_t msg_incarnation(const struct msg *m)
{
	return m->incarnation;
}

int msg_local_port(const struct msg *m)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (!m)
		return -EINVAL;
	if (getsockname(m->listen_fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -EAFNOSUPPORT;
}

void msg_set_peer_fn(struct msg *m, msg_peer_fn fn, void *userdata)
{
	m->peer_fn = fn;
	m->peer_userdata = userdata;
}

int msg_register(struct msg *m, uint16_t channel, const struct msg_handler *h, void *userdata)
{
	struct handler_slot *slot;

	if (!m || !h || channel >= MSG_CHANNELS)
		return -EINVAL;
	slot = &m->handlers[channel];
	if (slot->used)
		return -EBUSY;
	slot->h = *h;
	slot->userdata = userdata;
	slot->used = true;
	return 0;
}

int msg_unregister(struct msg *m, uint16_t channel)
{
	if (!m || channel >= MSG_CHANNELS)
		return -EINVAL;
	if (!m->handlers[channel].used)
		return -ENOENT;
	memset(&m->handlers[channel], 0, sizeof(m->handlers[channel]));
	return 0;
}

/* The peer a send to node goes to, or why there is none. */
static int send_target(struct msg *m, uint32_t node, uint16_t channel, size_t len,
		       struct peer **ret)
{
	struct peer *p;

	if (!m || channel >= MSG_CHANNELS)
		return -EINVAL;
	if (len > MSG_MAX_MESSAGE)
		return -EMSGSIZE;
	p = msg_peer_find(m, node);
	if (!p)
		return -EHOSTUNREACH;
	if (!p->self && p->state != MSG_PEER_STATE_UP)
		return -EHOSTDOWN;
	*ret = p;
	return 0;
}

static int queue_local(struct msg *m, struct frame *f)
{
	struct peer *self = m->self;

	if (!f)
		return -ENOMEM;
	f->next = NULL;
	if (self->q_tail)
		self->q_tail->next = f;
	else
		self->q_head = f;
	self->q_tail = f;
	loop_defer_schedule(m->local);
	return 0;
}

int msg_send(struct msg *m, uint32_t node, uint16_t channel, uint32_t type, const void *data,
	     size_t len)
{
	struct peer *p;
	struct frame *f;
	int r;

	if (len && !data)
		return -EINVAL;
	r = send_target(m, node, channel, len, &p);
	if (r < 0)
		return r;
	f = msg_frame_new(WIRE_DATA, channel, type, 0, data, len);
	return p->self ? queue_local(m, f) : msg_peer_queue(p, f);
}

int msg_send_take(struct msg *m, uint32_t node, uint16_t channel, uint32_t type, void *data,
		  size_t len)
{
	struct peer *p;
	struct frame *f;
	int r;

	if (len && !data) {
		free(data);
		return -EINVAL;
	}
	r = send_target(m, node, channel, len, &p);
	if (r < 0) {
		free(data);
		return r;
	}
	f = msg_frame_new_take(WIRE_DATA, channel, type, 0, data, len);
	return p->self ? queue_local(m, f) : msg_peer_queue(p, f);
}

int msg_peer_writable(struct msg *m, uint32_t node)
{
	struct peer *p;
	int r;

	r = send_target(m, node, 0, 0, &p);
	if (r < 0)
		return r;
	if (p->self || p->q_bytes < m->window)
		return 1;
	p->want_writable = true;
	return 0;
}

int msg_peer_get_info(struct msg *m, uint32_t node, struct msg_peer_info *ret)
{
	struct peer *p;

	if (!m || !ret)
		return -EINVAL;
	p = msg_peer_find(m, node);
	if (!p)
		return -EHOSTUNREACH;
	*ret = p->info;
	ret->state = p->self ? MSG_PEER_STATE_UP : p->state;
	ret->connected = p->conn != NULL;
	ret->incarnation = p->self ? m->incarnation : p->inc;
	ret->queued_bytes = p->self ? 0 : p->q_bytes;
	return 0;
}

void msg_get_stats(const struct msg *m, struct msg_stats *ret)
{
	*ret = m->stats;
}

int msg_fault_inject(struct msg *m, uint32_t node, enum msg_fault fault)
{
	struct peer *p;

	if (!m || fault < 0 || fault >= _MSG_FAULT_MAX)
		return -EINVAL;
	p = msg_peer_find(m, node);
	if (!p)
		return -EHOSTUNREACH;
	if (!p->conn)
		return -ENOTCONN;
	return msg_conn_fault(p->conn, fault);
}

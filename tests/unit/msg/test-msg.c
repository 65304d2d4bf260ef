/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the msg layer: the wire format, the handshake (spoken by the
 * test itself to check replays and sequencing from the wire), endpoints in
 * one loop (faults, retransmission, failure, restart, streams) and endpoints
 * in separate processes (many messages with repeated cuts, a long stream in
 * bounded memory). Only 127.0.0.1 and ephemeral ports are used.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "msg/msg-int.h"
#include "base/log.h"
#include "tpeer.h"
#include "traffic.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#define CH 5
#define LIMIT_US (30 * 1000000ull)

static const uint8_t key_a[MSG_KEY_SIZE] = "0123456789abcdef0123456789abcde";
static const uint8_t key_b[MSG_KEY_SIZE] = "another key, not the cluster's";

/* ---- helpers ---- */

static int make_listener(int port, int *ret_port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	socklen_t len = sizeof(sin);
	int fd, one = 1;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*ret_port = ntohs(sin.sin_port);
	return fd;
}

struct ep {
	struct world *w;
	struct msg *m;
	uint32_t id;
	int ups, downs;
	uint64_t up_inc, down_inc;
	uint64_t down_at;
	uint64_t rx, rx_bad;
	uint32_t rx_next;
	int failed;
	uint32_t failed_types[32];
	bool failed_after_down;
	uint64_t cut_after; /* cut the connection after this many messages, 0: never */
	uint32_t cut_node;
	/* streams */
	int s_open, s_end;
	int s_end_error;
	uint64_t s_bytes;
	bool s_refuse;
	int s_done;
	int s_done_error;
	int s_writable;
};

struct world {
	struct loop *loop;
	int port[3];
	char addr[3][32];
	struct msg_peer_config peers[2];
	struct ep ep[3]; /* ep[1] is node 1, ep[2] node 2 */
};

static void on_peer(struct msg *m _unused_, uint32_t node _unused_, enum msg_peer_event ev,
		    uint64_t inc, void *userdata)
{
	struct ep *e = userdata;

	if (ev == MSG_PEER_UP) {
		e->ups++;
		e->up_inc = inc;
	} else {
		e->downs++;
		e->down_inc = inc;
		e->down_at = loop_now(e->w->loop);
	}
}

static void on_recv(struct msg *m, uint32_t node, uint16_t channel, uint32_t type,
		    const void *data, size_t len, void *userdata)
{
	struct ep *e = userdata;

	assert_int_equal(channel, CH);
	if (type != e->rx_next || len != traffic_size(node, msg_node_id(m), type, 65536) ||
	    traffic_check(node, msg_node_id(m), type, data, len) < 0)
		e->rx_bad++;
	e->rx_next = type + 1;
	e->rx++;
	if (e->cut_after && e->rx == e->cut_after)
		assert_int_equal(msg_fault_inject(m, e->cut_node, MSG_FAULT_CUT), 0);
}

static void on_failed(struct msg *m _unused_, uint32_t node _unused_, uint16_t channel,
		      uint32_t type, const void *data _unused_, size_t len _unused_, int error,
		      void *userdata)
{
	struct ep *e = userdata;

	assert_int_equal(channel, CH);
	assert_int_equal(error, -EHOSTDOWN);
	if (e->failed < 32)
		e->failed_types[e->failed] = type;
	e->failed++;
	e->failed_after_down = e->downs > 0;
}

static void on_writable(struct msg *m _unused_, uint32_t node _unused_, void *userdata)
{
	struct ep *e = userdata;

	e->s_writable++;
}

static int on_stream_open(struct msg_stream *s, uint32_t node _unused_, uint32_t type,
			  const void *data _unused_, size_t len, void *userdata)
{
	struct ep *e = userdata;

	assert_int_equal(type, 77);
	assert_int_equal(len, 3);
	e->s_open++;
	e->s_bytes = 0;
	msg_stream_set_userdata(s, e);
	return e->s_refuse ? -EPERM : 0;
}

static void on_stream_data(struct msg_stream *s, const void *data, size_t len, void *userdata)
{
	struct ep *e = userdata;

	if (traffic_stream_check(msg_stream_node(s), msg_node_id(e->m), e->s_bytes, data, len) <
	    0)
		e->rx_bad++;
	e->s_bytes += len;
}

static void on_stream_end(struct msg_stream *s _unused_, int error, void *userdata)
{
	struct ep *e = userdata;

	e->s_end++;
	e->s_end_error = error;
}

#define CH_BIG 6
#define BIG_LEN ((5u << 20) + 3)

static void on_recv_big(struct msg *m, uint32_t node, uint16_t channel _unused_,
			uint32_t type, const void *data, size_t len, void *userdata)
{
	struct ep *e = userdata;

	if (len != BIG_LEN - type ||
	    traffic_stream_check(node, msg_node_id(m), type, data, len) < 0)
		e->rx_bad++;
	e->rx++;
	if (e->cut_after && e->rx == e->cut_after)
		assert_int_equal(msg_fault_inject(m, e->cut_node, MSG_FAULT_CUT), 0);
}

static const struct msg_handler big_handler = {
	.recv = on_recv_big,
};

static const struct msg_handler handler = {
	.recv = on_recv,
	.failed = on_failed,
	.writable = on_writable,
	.stream_open = on_stream_open,
	.stream_data = on_stream_data,
	.stream_end = on_stream_end,
};

struct ep_opts {
	const uint8_t *key;
	bool plain;
	uint32_t timeout_ms;
	uint32_t window;
};

static void world_init(struct world *w)
{
	memset(w, 0, sizeof(*w));
	assert_int_equal(loop_new(&w->loop), 0);
	for (int i = 1; i <= 2; i++) {
		int fd = make_listener(0, &w->port[i]);

		close(fd);
		snprintf(w->addr[i], sizeof(w->addr[i]), "127.0.0.1:%d", w->port[i]);
		w->peers[i - 1] =
			(struct msg_peer_config){ .id = (uint32_t)i, .address = w->addr[i] };
		w->ep[i].w = w;
		w->ep[i].id = (uint32_t)i;
	}
}

static int ep_start(struct world *w, int i, const struct ep_opts *o)
{
	struct msg_config cfg = MSG_CONFIG_INIT;
	struct ep *e = &w->ep[i];
	int port, r;

	cfg.node_id = (uint32_t)i;
	cfg.peers = w->peers;
	cfg.n_peers = 2;
	memcpy(cfg.key, o && o->key ? o->key : key_a, MSG_KEY_SIZE);
	cfg.encrypt = !(o && o->plain);
	cfg.heartbeat_ms = 50;
	cfg.peer_timeout_ms = o && o->timeout_ms ? o->timeout_ms : 2000;
	cfg.handshake_timeout_ms = 1000;
	cfg.reconnect_min_ms = 1;
	cfg.reconnect_max_ms = 50;
	cfg.window = o ? o->window : 0;
	/* Same port each time, so a restarted node is where its peer looks. */
	cfg.listen_fd = make_listener(w->port[i], &port);
	assert_int_equal(port, w->port[i]);
	r = msg_new(w->loop, &cfg, &e->m);
	if (r < 0)
		return r;
	msg_set_peer_fn(e->m, on_peer, e);
	assert_int_equal(msg_register(e->m, CH, &handler, e), 0);
	assert_int_equal(msg_register(e->m, CH, &handler, e), -EBUSY);
	assert_int_equal(msg_register(e->m, CH_BIG, &big_handler, e), 0);
	return 0;
}

static void ep_stop(struct world *w, int i)
{
	w->ep[i].m = msg_free(w->ep[i].m);
}

static void world_release(struct world *w)
{
	ep_stop(w, 1);
	ep_stop(w, 2);
	loop_free(w->loop);
}

typedef bool (*cond_fn)(struct world *w, void *arg);

static void run_until(struct world *w, cond_fn cond, void *arg)
{
	uint64_t start = loop_now_update(w->loop);

	while (!cond(w, arg)) {
		assert_int_equal(loop_run_once(w->loop, 10000), 0);
		if (loop_now(w->loop) - start > LIMIT_US)
			fail_msg("condition not reached in %llu s", LIMIT_US / 1000000ull);
	}
}

static void run_for(struct world *w, uint64_t usec)
{
	uint64_t start = loop_now_update(w->loop);

	while (loop_now(w->loop) - start < usec)
		assert_int_equal(loop_run_once(w->loop, 5000), 0);
}

static bool both_up(struct world *w, void *arg _unused_)
{
	struct msg_peer_info a, b;

	return msg_peer_get_info(w->ep[1].m, 2, &a) == 0 &&
	       msg_peer_get_info(w->ep[2].m, 1, &b) == 0 && a.state == MSG_PEER_STATE_UP &&
	       b.state == MSG_PEER_STATE_UP && a.connected && b.connected;
}

static bool both_up_2(struct world *w, void *arg _unused_)
{
	struct msg_peer_info b;

	return msg_peer_get_info(w->ep[2].m, 1, &b) == 0 && b.state == MSG_PEER_STATE_UP &&
	       b.connected;
}

static bool received(struct world *w, void *arg)
{
	const uint64_t *want = arg;

	return w->ep[1].rx >= want[1] && w->ep[2].rx >= want[2];
}

static bool all_acked(struct world *w, void *arg _unused_)
{
	struct msg_peer_info a, b;

	return msg_peer_get_info(w->ep[1].m, 2, &a) == 0 &&
	       msg_peer_get_info(w->ep[2].m, 1, &b) == 0 && a.queued_bytes == 0 &&
	       b.queued_bytes == 0;
}

/* Queue messages first .. first + n - 1 from node src to the other node. */
static void send_range(struct world *w, int src, uint32_t first, uint32_t n)
{
	static uint8_t buf[65536];
	uint32_t dst = src == 1 ? 2 : 1;

	for (uint32_t i = first; i < first + n; i++) {
		size_t len = traffic_size((uint32_t)src, dst, i, sizeof(buf));

		traffic_fill((uint32_t)src, dst, i, buf, len);
		assert_int_equal(msg_send(w->ep[src].m, dst, CH, i, buf, len), 0);
	}
}

/* ---- wire format ---- */

static void test_wire_header(void **state _unused_)
{
	struct wire_hdr h = { .kind = WIRE_DATA, .channel = 200, .type = 0xdeadbeef, .seq = 42,
			      .ack = 41, .stream = 1ull << 60 }, out;
	uint8_t b[WIRE_HDR_SIZE];

	msg_wire_hdr_pack(&h, b);
	assert_int_equal(msg_wire_hdr_unpack(b, &out), 0);
	assert_memory_equal(&h, &out, sizeof(h));
	/* Little-endian on the wire. */
	assert_int_equal(b[0], WIRE_DATA);
	assert_int_equal(b[2], 200);
	assert_int_equal(b[4], 0xef);
	assert_int_equal(b[8], 42);

	b[1] = WIRE_F_MORE; /* a frame continued in the next record */
	assert_int_equal(msg_wire_hdr_unpack(b, &out), 0);
	assert_int_equal(out.flags, WIRE_F_MORE);
	b[1] = 2; /* unknown flag */
	assert_int_equal(msg_wire_hdr_unpack(b, &out), -EBADMSG);
	h.kind = _WIRE_KIND_MAX;
	msg_wire_hdr_pack(&h, b);
	assert_int_equal(msg_wire_hdr_unpack(b, &out), -EBADMSG);
	h.kind = WIRE_ACK; /* unsequenced kinds carry seq 0 */
	msg_wire_hdr_pack(&h, b);
	assert_int_equal(msg_wire_hdr_unpack(b, &out), -EBADMSG);
	h.seq = 0;
	msg_wire_hdr_pack(&h, b);
	assert_int_equal(msg_wire_hdr_unpack(b, &out), 0);
	h.flags = WIRE_F_MORE; /* and are always one record */
	msg_wire_hdr_pack(&h, b);
	assert_int_equal(msg_wire_hdr_unpack(b, &out), -EBADMSG);
	h.flags = 0;
	h.kind = WIRE_DATA; /* sequenced kinds do not */
	msg_wire_hdr_pack(&h, b);
	assert_int_equal(msg_wire_hdr_unpack(b, &out), -EBADMSG);
	h.seq = 1;
	h.channel = MSG_CHANNELS;
	msg_wire_hdr_pack(&h, b);
	assert_int_equal(msg_wire_hdr_unpack(b, &out), -EBADMSG);
}

static void seal_open_roundtrip(bool encrypt, bool aes)
{
	uint8_t key[WIRE_KEY_SIZE], in[WIRE_HDR_SIZE + 1000], rec[2][WIRE_HDR_SIZE + 1000 + 64];
	uint8_t saved[2][WIRE_HDR_SIZE + 1000 + 64];
	struct wire_cipher tx, rx;
	uint8_t *body;
	size_t n, size;

	memset(key, 7, sizeof(key));
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 31);
	assert_int_equal(msg_wire_cipher_init(&tx, encrypt, key), 0);
	assert_int_equal(msg_wire_cipher_init(&rx, encrypt, key), 0);
	if (encrypt && !aes) {
		tx.aes_ok = false;
		rx.aes_ok = false;
	}
	size = msg_wire_overhead(&tx) + sizeof(in);
	msg_wire_seal(&tx, in, sizeof(in), rec[0]);
	msg_wire_seal(&tx, in, sizeof(in), rec[1]);
	assert_int_equal(get_le32(rec[0]), size - WIRE_LEN_SIZE);
	if (encrypt) /* the payload is not in clear, and nonces differ */
		assert_memory_not_equal(rec[0] + WIRE_LEN_SIZE, in, 64);
	assert_memory_not_equal(rec[0], rec[1], size);

	memcpy(saved[0], rec[0], size);
	memcpy(saved[1], rec[1], size);
	/* Out of order: record 1 does not open as record 0. */
	assert_int_equal(msg_wire_open(&rx, rec[1], size, &body, &n), -EBADMSG);
	assert_int_equal(msg_wire_open(&rx, rec[0], size, &body, &n), 0);
	assert_int_equal(n, sizeof(in));
	assert_memory_equal(body, in, n);
	memcpy(rec[1], saved[1], size);
	assert_int_equal(msg_wire_open(&rx, rec[1], size, &body, &n), 0);
	assert_memory_equal(body, in, n);
	/* Replayed: record 0 again fails. */
	memcpy(rec[0], saved[0], size);
	assert_int_equal(msg_wire_open(&rx, rec[0], size, &body, &n), -EBADMSG);

	/* A flipped bit in the length, the header or the tag fails. */
	for (size_t pos = 0; pos < size; pos += encrypt ? 97 : 1) {
		struct wire_cipher t2 = tx, r2 = rx;

		if (!encrypt && pos >= WIRE_PLAIN_BODY + WIRE_HDR_SIZE)
			break; /* plain mode covers headers only */
		msg_wire_seal(&t2, in, sizeof(in), rec[0]);
		rec[0][pos] ^= 0x10;
		assert_int_equal(msg_wire_open(&r2, rec[0], size, &body, &n), -EBADMSG);
	}
	/* Sealing in place gives the same record. */
	{
		struct wire_cipher t2 = tx, t3 = tx;
		size_t off = encrypt ? WIRE_LEN_SIZE : WIRE_PLAIN_BODY;

		msg_wire_seal(&t2, in, sizeof(in), rec[0]);
		memcpy(rec[1] + off, in, sizeof(in));
		msg_wire_seal(&t3, rec[1] + off, sizeof(in), rec[1]);
		assert_memory_equal(rec[0], rec[1], size);
	}
	/* Too short, or length field and size disagree. */
	assert_int_equal(msg_wire_open(&rx, rec[0], 3, &body, &n), -EBADMSG);
	assert_int_equal(msg_wire_open(&rx, rec[0], size - 1, &body, &n), -EBADMSG);
	msg_wire_cipher_wipe(&tx);
	msg_wire_cipher_wipe(&rx);
}

static void test_wire_seal_open(void **state _unused_)
{
	assert_true(sodium_init() >= 0);
	seal_open_roundtrip(true, true);
	seal_open_roundtrip(true, false);
	seal_open_roundtrip(false, false);
}

static void test_hello_and_keys(void **state _unused_)
{
	struct hs_hello h = { .version = HS_VERSION, .flags = HS_F_ENCRYPT, .from = 3, .to = 9,
			      .incarnation = 11, .your_incarnation = 12, .rx_seq = 13 }, out;
	uint8_t b[HS_HELLO_SIZE], b2[HS_HELLO_SIZE], th[32], th2[32];
	uint8_t mac_a[HS_MAC_SIZE], mac_d[HS_MAC_SIZE], k1[32], k2[32], k3[32], k4[32];
	struct hs_keys keys, other;

	memset(h.nonce, 0xab, sizeof(h.nonce));
	msg_hs_hello_pack(&h, b);
	assert_int_equal(msg_hs_hello_unpack(b, sizeof(b), &out), 0);
	assert_int_equal(out.version, h.version);
	assert_int_equal(out.flags, h.flags);
	assert_int_equal(out.from, h.from);
	assert_int_equal(out.to, h.to);
	assert_int_equal(out.incarnation, h.incarnation);
	assert_int_equal(out.your_incarnation, h.your_incarnation);
	assert_int_equal(out.rx_seq, h.rx_seq);
	assert_memory_equal(out.nonce, h.nonce, sizeof(h.nonce));
	assert_int_equal(msg_hs_hello_unpack(b, sizeof(b) - 1, &out), -EBADMSG);
	memcpy(b2, b, sizeof(b));
	b2[0] ^= 1;
	assert_int_equal(msg_hs_hello_unpack(b2, sizeof(b2), &out), -EBADMSG);
	h.version = 2;
	msg_hs_hello_pack(&h, b2);
	assert_int_equal(msg_hs_hello_unpack(b2, sizeof(b2), &out), -EBADMSG);
	h.version = HS_VERSION;
	h.incarnation = 0;
	msg_hs_hello_pack(&h, b2);
	assert_int_equal(msg_hs_hello_unpack(b2, sizeof(b2), &out), -EBADMSG);

	msg_hs_keys_derive(key_a, &keys);
	msg_hs_keys_derive(key_b, &other);
	assert_memory_not_equal(keys.auth, keys.kdf, 32);
	msg_hs_transcript(b, b, th);
	msg_hs_mac(&keys, true, th, mac_a);
	msg_hs_mac(&keys, false, th, mac_d);
	/* The role is in the MAC: an acceptor's MAC cannot be reflected. */
	assert_memory_not_equal(mac_a, mac_d, HS_MAC_SIZE);
	msg_hs_mac(&other, true, th, mac_d);
	assert_memory_not_equal(mac_a, mac_d, HS_MAC_SIZE);
	/* Keys depend on the transcript (nonces, ids) and differ per direction. */
	msg_hs_session_keys(&keys, th, k1, k2);
	assert_memory_not_equal(k1, k2, 32);
	b[60] ^= 1;
	msg_hs_transcript(b, b, th2);
	msg_hs_session_keys(&keys, th2, k3, k4);
	assert_memory_not_equal(k1, k3, 32);
	assert_memory_not_equal(k2, k4, 32);
}

/* ---- the test speaks the protocol: a fake node 1 against a real node 2 ---- */

struct fake {
	int fd;
	uint8_t hello_d[HS_HELLO_SIZE], hello_a[HS_HELLO_SIZE];
	uint8_t auth_rec[WIRE_LEN_SIZE + HS_MAC_SIZE];
	struct wire_cipher tx, rx;
};

/* Close the connection and free its ciphers (which the next handshake sets up again). */
static void fake_close(struct fake *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	msg_wire_cipher_wipe(&f->tx);
	msg_wire_cipher_wipe(&f->rx);
}

static int fake_connect(struct world *w, int i)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)w->port[i]) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

static void send_all(int fd, const void *data, size_t len)
{
	assert_int_equal(send(fd, data, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Read exactly len bytes while the loop runs; 0 at EOF before any byte. */
static size_t fake_read(struct world *w, int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;
	uint64_t start = loop_now_update(w->loop);

	while (got < len) {
		ssize_t n = recv(fd, buf + got, len - got, MSG_DONTWAIT);

		if (n == 0)
			break;
		if (n < 0) {
			assert_true(errno == EAGAIN || errno == ECONNRESET);
			if (errno == ECONNRESET)
				break;
			assert_int_equal(loop_run_once(w->loop, 2000), 0);
			if (loop_now(w->loop) - start > LIMIT_US)
				fail_msg("no answer from the endpoint");
			continue;
		}
		got += (size_t)n;
	}
	return got;
}

/* True once the endpoint closed fd (whatever it sent before is skipped). */
static bool fake_eof(struct world *w, int fd)
{
	uint8_t b[256];

	while (fake_read(w, fd, b, 1) == 1)
		;
	return true;
}

/* Run the dialer's side of the handshake as node 1 with key. Returns true if
 * node 2 answered with a MAC we could check. */
static void fake_handshake(struct world *w, struct fake *f, const uint8_t *key)
{
	struct hs_hello h = { .version = HS_VERSION, .flags = HS_F_ENCRYPT, .from = 1, .to = 2,
			      .incarnation = 0x1111 }, ha;
	uint8_t rec[WIRE_LEN_SIZE + HS_HELLO_SIZE + HS_MAC_SIZE], th[32], mac[HS_MAC_SIZE];
	uint8_t d2a[32], a2d[32];
	struct hs_keys keys;

	msg_hs_keys_derive(key, &keys);
	randombytes_buf(h.nonce, sizeof(h.nonce));
	msg_hs_hello_pack(&h, f->hello_d);
	f->fd = fake_connect(w, 2);
	put_le32(rec, HS_HELLO_SIZE);
	memcpy(rec + WIRE_LEN_SIZE, f->hello_d, HS_HELLO_SIZE);
	send_all(f->fd, rec, WIRE_LEN_SIZE + HS_HELLO_SIZE);

	assert_int_equal(fake_read(w, f->fd, rec, sizeof(rec)), sizeof(rec));
	assert_int_equal(get_le32(rec), HS_HELLO_SIZE + HS_MAC_SIZE);
	assert_int_equal(msg_hs_hello_unpack(rec + WIRE_LEN_SIZE, HS_HELLO_SIZE, &ha), 0);
	assert_int_equal(ha.from, 2);
	assert_int_equal(ha.to, 1);
	assert_true(ha.flags & HS_F_ACCEPTOR);
	memcpy(f->hello_a, rec + WIRE_LEN_SIZE, HS_HELLO_SIZE);
	msg_hs_transcript(f->hello_d, f->hello_a, th);
	msg_hs_mac(&keys, true, th, mac);
	if (key == key_a)
		assert_memory_equal(mac, rec + WIRE_LEN_SIZE + HS_HELLO_SIZE, HS_MAC_SIZE);
	msg_hs_mac(&keys, false, th, mac);
	put_le32(f->auth_rec, HS_MAC_SIZE);
	memcpy(f->auth_rec + WIRE_LEN_SIZE, mac, HS_MAC_SIZE);
	send_all(f->fd, f->auth_rec, sizeof(f->auth_rec));
	msg_hs_session_keys(&keys, th, d2a, a2d);
	assert_int_equal(msg_wire_cipher_init(&f->tx, true, d2a), 0);
	assert_int_equal(msg_wire_cipher_init(&f->rx, true, a2d), 0);
}

static void fake_frame(struct fake *f, uint8_t kind, uint64_t seq, uint64_t ack, uint32_t type)
{
	uint8_t in[WIRE_HDR_SIZE + 4], rec[WIRE_HDR_SIZE + 4 + 64];
	struct wire_hdr h = { .kind = kind, .channel = CH, .type = type, .seq = seq, .ack = ack };
	size_t len = traffic_size(1, 2, type, 65536) <= 4 ? traffic_size(1, 2, type, 65536) : 0;

	/* Small messages only: the test picks types whose size fits. */
	msg_wire_hdr_pack(&h, in);
	traffic_fill(1, 2, type, in + WIRE_HDR_SIZE, len);
	msg_wire_seal(&f->tx, in, WIRE_HDR_SIZE + len, rec);
	send_all(f->fd, rec, msg_wire_overhead(&f->tx) + WIRE_HDR_SIZE + len);
}

static void start_node2_alone(struct world *w, const struct ep_opts *o)
{
	world_init(w);
	assert_int_equal(ep_start(w, 2, o), 0);
}

static void test_handshake_replay(void **state _unused_)
{
	struct world w;
	struct fake f = { .fd = -1 }, g = { .fd = -1 };
	struct msg_stats st;
	struct msg_peer_info info;
	uint8_t hello_a2[WIRE_LEN_SIZE + HS_HELLO_SIZE + HS_MAC_SIZE];

	start_node2_alone(&w, NULL);
	fake_handshake(&w, &f, key_a);
	run_until(&w, both_up_2, NULL);
	msg_get_stats(w.ep[2].m, &st);
	assert_int_equal(st.handshakes, 1);
	assert_int_equal(w.ep[2].ups, 1);
	assert_int_equal(w.ep[2].up_inc, 0x1111);

	/* Replay the recorded hello and MAC on a new connection. */
	g.fd = fake_connect(&w, 2);
	{
		uint8_t rec[WIRE_LEN_SIZE + HS_HELLO_SIZE];

		put_le32(rec, HS_HELLO_SIZE);
		memcpy(rec + WIRE_LEN_SIZE, f.hello_d, HS_HELLO_SIZE);
		send_all(g.fd, rec, sizeof(rec));
	}
	assert_int_equal(fake_read(&w, g.fd, hello_a2, sizeof(hello_a2)), sizeof(hello_a2));
	/* A fresh nonce, so the old MAC cannot fit. */
	assert_memory_not_equal(hello_a2 + WIRE_LEN_SIZE, f.hello_a, HS_HELLO_SIZE);
	send_all(g.fd, f.auth_rec, sizeof(f.auth_rec));
	assert_true(fake_eof(&w, g.fd));
	msg_get_stats(w.ep[2].m, &st);
	assert_int_equal(st.auth_failures, 1);
	assert_int_equal(st.handshakes, 1);
	/* The genuine session is untouched. */
	assert_int_equal(msg_peer_get_info(w.ep[2].m, 1, &info), 0);
	assert_int_equal(info.state, MSG_PEER_STATE_UP);
	assert_true(info.connected);
	assert_int_equal(info.connections, 1);
	assert_int_equal(w.ep[2].downs, 0);

	fake_close(&f);
	fake_close(&g);
	world_release(&w);
}

static void test_sequencing_from_the_wire(void **state _unused_)
{
	struct world w;
	struct fake f = { .fd = -1 };
	struct msg_stats st;
	struct msg_peer_info info;
	uint32_t t[4], nt = 0;

	/* Pick message types small enough for fake_frame. */
	for (uint32_t i = 0; nt < 4; i++)
		if (traffic_size(1, 2, i, 65536) <= 4)
			t[nt++] = i;

	start_node2_alone(&w, NULL);
	fake_handshake(&w, &f, key_a);
	run_until(&w, both_up_2, NULL);

	/* seq 1, 1 again (duplicate), 2, then a heartbeat: two deliveries. */
	w.ep[2].rx_next = t[0];
	fake_frame(&f, WIRE_DATA, 1, 0, t[0]);
	fake_frame(&f, WIRE_DATA, 1, 0, t[0]);
	fake_frame(&f, WIRE_DATA, 2, 0, t[1]);
	fake_frame(&f, WIRE_PING, 0, 0, 0);
	run_until(&w, received, (uint64_t[]){ 0, 0, 2 });
	run_for(&w, 20000);
	assert_int_equal(w.ep[2].rx, 2);
	assert_int_equal(msg_peer_get_info(w.ep[2].m, 1, &info), 0);
	assert_int_equal(info.duplicates, 1);
	assert_int_equal(info.received, 2);
	/* Node 2 acknowledges both, in sealed records we can open ... */
	for (int i = 0;; i++) {
		uint8_t rec[WIRE_LEN_SIZE + WIRE_HDR_SIZE + WIRE_TAG_SIZE], *body;
		struct wire_hdr h;
		size_t n;

		assert_true(i < 100);
		assert_int_equal(fake_read(&w, f.fd, rec, sizeof(rec)), sizeof(rec));
		assert_int_equal(msg_wire_open(&f.rx, rec, sizeof(rec), &body, &n), 0);
		assert_int_equal(msg_wire_hdr_unpack(body, &h), 0);
		assert_true(h.kind == WIRE_ACK || h.kind == WIRE_PING);
		if (h.ack == 2)
			break;
	}
	/* ... and a gap in the sequence costs the connection. */
	fake_frame(&f, WIRE_DATA, 4, 0, t[2]);
	assert_true(fake_eof(&w, f.fd));
	msg_get_stats(w.ep[2].m, &st);
	assert_int_equal(st.bad_frames, 1);
	assert_int_equal(w.ep[2].rx, 2);
	fake_close(&f);

	/* A resumed connection that acknowledges frames never sent is dropped too. */
	fake_handshake(&w, &f, key_a);
	run_until(&w, both_up_2, NULL);
	fake_frame(&f, WIRE_PING, 0, 1000, 0);
	assert_true(fake_eof(&w, f.fd));
	msg_get_stats(w.ep[2].m, &st);
	assert_int_equal(st.bad_frames, 2);
	fake_close(&f);
	world_release(&w);
}

static void test_wrong_key_and_garbage(void **state _unused_)
{
	struct world w;
	struct fake f = { .fd = -1 };
	struct msg_stats st;
	const struct ep_opts wrong = { .key = key_b };
	int fd;

	/* A stranger with another key: refused by the endpoint. */
	start_node2_alone(&w, NULL);
	fake_handshake(&w, &f, key_b);
	assert_true(fake_eof(&w, f.fd));
	fake_close(&f);
	msg_get_stats(w.ep[2].m, &st);
	assert_int_equal(st.auth_failures, 1);
	assert_int_equal(w.ep[2].ups, 0);

	/* Garbage, and an oversized handshake record: refused, nothing else. */
	fd = fake_connect(&w, 2);
	send_all(fd, "GET / HTTP/1.0\r\n\r\n", 18);
	assert_true(fake_eof(&w, fd));
	close(fd);
	fd = fake_connect(&w, 2);
	send_all(fd, "\xff\xff\xff\x7f", 4);
	assert_true(fake_eof(&w, fd));
	close(fd);
	msg_get_stats(w.ep[2].m, &st);
	assert_int_equal(st.auth_failures, 3);

	/* A real node 1 with the wrong key never gets UP either side. */
	assert_int_equal(ep_start(&w, 1, &wrong), 0);
	run_for(&w, 200000);
	msg_get_stats(w.ep[1].m, &st);
	assert_true(st.auth_failures >= 2);
	assert_int_equal(w.ep[1].ups, 0);
	assert_int_equal(w.ep[2].ups, 0);
	assert_int_equal(msg_send(w.ep[1].m, 2, CH, 0, NULL, 0), -EHOSTDOWN);
	assert_int_equal(msg_send(w.ep[1].m, 3, CH, 0, NULL, 0), -EHOSTUNREACH);

	/* The endpoint carried on: the right key gets in. */
	ep_stop(&w, 1);
	assert_int_equal(ep_start(&w, 1, NULL), 0);
	run_until(&w, both_up, NULL);
	send_range(&w, 1, 0, 10);
	run_until(&w, received, (uint64_t[]){ 0, 0, 10 });
	assert_int_equal(w.ep[2].rx_bad, 0);
	world_release(&w);
}

/* ---- endpoints in one loop ---- */

static void start_pair(struct world *w, const struct ep_opts *o)
{
	world_init(w);
	assert_int_equal(ep_start(w, 1, o), 0);
	assert_int_equal(ep_start(w, 2, o), 0);
	run_until(w, both_up, NULL);
}

static void test_messages_and_local(void **state _unused_)
{
	struct world w;
	struct msg_peer_info info;

	start_pair(&w, NULL);
	assert_int_equal(w.ep[1].ups, 1);
	assert_int_equal(w.ep[2].ups, 1);
	assert_int_equal(w.ep[1].up_inc, msg_incarnation(w.ep[2].m));
	assert_int_equal(w.ep[2].up_inc, msg_incarnation(w.ep[1].m));
	send_range(&w, 1, 0, 300);
	send_range(&w, 2, 0, 300);
	run_until(&w, received, (uint64_t[]){ 0, 300, 300 });
	run_until(&w, all_acked, NULL);
	assert_int_equal(w.ep[1].rx_bad + w.ep[2].rx_bad, 0);

	/* To itself: delivered from the loop, not inside msg_send. */
	w.ep[1].rx_next = 0;
	w.ep[1].rx = 0;
	{
		static uint8_t buf[65536];
		size_t len = traffic_size(1, 1, 0, sizeof(buf));

		traffic_fill(1, 1, 0, buf, len);
		assert_int_equal(msg_send(w.ep[1].m, 1, CH, 0, buf, len), 0);
	}
	assert_int_equal(w.ep[1].rx, 0);
	run_until(&w, received, (uint64_t[]){ 0, 1, 0 });
	assert_int_equal(w.ep[1].rx_bad, 0);

	/* Arguments. */
	assert_int_equal(msg_send(w.ep[1].m, 2, MSG_CHANNELS, 0, NULL, 0), -EINVAL);
	assert_int_equal(msg_send(w.ep[1].m, 2, CH, 0, NULL, 1), -EINVAL);
	assert_int_equal(msg_send(w.ep[1].m, 2, CH, 0, "", MSG_MAX_MESSAGE + 1), -EMSGSIZE);
	assert_int_equal(msg_send_take(w.ep[1].m, 9, CH, 0, malloc(8), 8), -EHOSTUNREACH);
	assert_int_equal(msg_peer_get_info(w.ep[1].m, 9, &info), -EHOSTUNREACH);
	assert_int_equal(msg_fault_inject(w.ep[1].m, 2, _MSG_FAULT_MAX), -EINVAL);
	assert_int_equal(msg_unregister(w.ep[1].m, CH + 10), -ENOENT);
	assert_true(msg_local_port(w.ep[1].m) == w.port[1]);

	/* Zero-copy sending takes the buffer. */
	{
		size_t len = traffic_size(1, 2, 300, 65536);
		uint8_t *buf = malloc(len ? len : 1);

		assert_non_null(buf);
		traffic_fill(1, 2, 300, buf, len);
		assert_int_equal(msg_send_take(w.ep[1].m, 2, CH, 300, buf, len), 0);
		run_until(&w, received, (uint64_t[]){ 0, 1, 301 });
		assert_int_equal(w.ep[2].rx_bad, 0);
	}
	world_release(&w);
}

/* Messages of several MiB: several records each when encrypted, one
 * zero-copy record in plain mode; a cut in the middle of one. */
static void check_big_messages(bool plain)
{
	const struct ep_opts o = { .plain = plain };
	struct world w;
	uint8_t *buf = malloc(BIG_LEN);

	assert_non_null(buf);
	start_pair(&w, &o);
	w.ep[2].cut_after = 2;
	w.ep[2].cut_node = 1;
	for (uint32_t i = 0; i < 6; i++) {
		traffic_stream_fill(1, 2, i, buf, BIG_LEN - i);
		if (i % 2) {
			assert_int_equal(msg_send(w.ep[1].m, 2, CH_BIG, i, buf, BIG_LEN - i), 0);
		} else {
			uint8_t *copy = malloc(BIG_LEN - i);

			assert_non_null(copy);
			memcpy(copy, buf, BIG_LEN - i);
			assert_int_equal(
				msg_send_take(w.ep[1].m, 2, CH_BIG, i, copy, BIG_LEN - i), 0);
		}
	}
	run_until(&w, received, (uint64_t[]){ 0, 0, 6 });
	run_until(&w, all_acked, NULL);
	assert_int_equal(w.ep[2].rx, 6);
	assert_int_equal(w.ep[2].rx_bad, 0);
	free(buf);
	world_release(&w);
}

static void test_big_messages(void **state _unused_)
{
	check_big_messages(false);
	check_big_messages(true);
}

static void check_retransmit_after_cut(bool plain)
{
	const struct ep_opts o = { .plain = plain };
	struct world w;
	struct msg_peer_info a, b;

	start_pair(&w, &o);
	/* All 2000 are written before node 2 reads any; it cuts after 10. */
	w.ep[2].cut_after = 10;
	w.ep[2].cut_node = 1;
	send_range(&w, 1, 0, 2000);
	run_until(&w, received, (uint64_t[]){ 0, 0, 2000 });
	run_until(&w, all_acked, NULL);
	run_until(&w, both_up, NULL);
	assert_int_equal(w.ep[2].rx, 2000);
	assert_int_equal(w.ep[2].rx_bad, 0);
	assert_int_equal(msg_peer_get_info(w.ep[1].m, 2, &a), 0);
	assert_int_equal(msg_peer_get_info(w.ep[2].m, 1, &b), 0);
	assert_true(a.retransmitted > 0);
	assert_int_equal(b.duplicates, 0);
	assert_int_equal(b.received, 2000);
	assert_true(a.connections >= 2);
	assert_int_equal(a.sessions, 1);
	assert_int_equal(w.ep[1].ups, 1);
	assert_int_equal(w.ep[1].downs + w.ep[2].downs, 0);
	world_release(&w);
}

static void test_retransmit_after_cut(void **state _unused_)
{
	check_retransmit_after_cut(false);
	check_retransmit_after_cut(true);
}

static void check_faults(bool plain)
{
	static const enum msg_fault faults[] = { MSG_FAULT_CORRUPT, MSG_FAULT_GARBAGE,
						 MSG_FAULT_OVERSIZE, MSG_FAULT_CUT };
	const struct ep_opts o = { .plain = plain };
	struct world w;
	struct msg_stats s1, s2;
	uint32_t sent = 0;
	uint64_t bad = 0;

	start_pair(&w, &o);
	for (size_t i = 0; i < 2 * ARRAY_SIZE(faults); i++) {
		int from = i % 2 ? 2 : 1, to = 3 - from;
		enum msg_fault f = faults[i / 2];

		send_range(&w, 1, sent, 50);
		send_range(&w, 2, sent, 50);
		assert_int_equal(msg_fault_inject(w.ep[from].m, (uint32_t)to, f), 0);
		sent += 50;
		run_until(&w, received, (uint64_t[]){ 0, sent, sent });
		run_until(&w, both_up, NULL);
		msg_get_stats(w.ep[to].m, &s2);
		msg_get_stats(w.ep[from].m, &s1);
		if (f != MSG_FAULT_CUT)
			bad++;
		/* The receiving side saw a broken frame and dropped the connection. */
		run_until(&w, all_acked, NULL);
	}
	msg_get_stats(w.ep[1].m, &s1);
	msg_get_stats(w.ep[2].m, &s2);
	assert_int_equal(s1.bad_frames + s2.bad_frames, bad);
	assert_int_equal(s1.bad_frames, bad / 2);
	assert_int_equal(w.ep[1].rx_bad + w.ep[2].rx_bad, 0);
	assert_int_equal(w.ep[1].rx, sent);
	assert_int_equal(w.ep[2].rx, sent);
	/* One session throughout: connections broke, the session did not. */
	assert_int_equal(w.ep[1].ups + w.ep[2].ups, 2);
	assert_int_equal(w.ep[1].downs + w.ep[2].downs, 0);
	assert_int_equal(msg_fault_inject(w.ep[1].m, 2, MSG_FAULT_CUT), 0);
	assert_int_equal(msg_fault_inject(w.ep[1].m, 2, MSG_FAULT_CUT), -ENOTCONN);
	world_release(&w);
}

static void test_bad_frames(void **state _unused_)
{
	check_faults(false);
	check_faults(true);
}

/* Shut down every connection of m that is not closed yet, in whatever state
 * of its handshake, as `ss -K` does from outside. */
static int cut_every_connection(struct msg *m)
{
	int n = 0;

	for (struct conn *c = m->conns; c; c = c->next) {
		if (c->state == CONN_CLOSED || c->fd < 0)
			continue;
		(void)shutdown(c->fd, SHUT_RDWR);
		n++;
	}
	return n;
}

static bool state_is(struct msg *m, uint32_t node, enum msg_peer_state state)
{
	struct msg_peer_info info;

	return msg_peer_get_info(m, node, &info) == 0 && info.state == state;
}

/* Cuts at every point of the first handshake and of later ones, as a cut
 * from outside would land: a brief disconnection never shows, even when it
 * lands after the dialer has taken the new session and before the acceptor
 * has. Each round cuts once after `step` loop iterations from the start, then
 * again `step` iterations into the next handshake. */
static void test_cuts_during_handshake(void **state _unused_)
{
	bool split_seen = false;

	for (int step = 0; step < 24; step++) {
		struct world w;
		bool first_split = false;
		uint32_t sent = 0;

		world_init(&w);
		assert_int_equal(ep_start(&w, 1, NULL), 0);
		assert_int_equal(ep_start(&w, 2, NULL), 0);
		for (int i = 0; i < step; i++)
			assert_int_equal(loop_run_once(w.loop, 10000), 0);
		/* The dialer holds the session, the acceptor does not yet. */
		if (state_is(w.ep[1].m, 2, MSG_PEER_STATE_UP) &&
		    state_is(w.ep[2].m, 1, MSG_PEER_STATE_DOWN))
			first_split = split_seen = true;
		cut_every_connection(w.ep[step % 2 ? 2 : 1].m);
		if (state_is(w.ep[1].m, 2, MSG_PEER_STATE_UP)) {
			send_range(&w, 1, sent, 20);
			sent += 20;
		}
		run_until(&w, both_up, NULL);
		send_range(&w, 1, sent, 20);
		send_range(&w, 2, 0, 20);
		sent += 20;
		for (int round = 0; round < 3; round++) {
			assert_int_equal(msg_fault_inject(w.ep[1].m, 2, MSG_FAULT_CUT), 0);
			for (int i = 0; i < step; i++)
				assert_int_equal(loop_run_once(w.loop, 10000), 0);
			cut_every_connection(w.ep[round % 2 ? 1 : 2].m);
			run_until(&w, both_up, NULL);
		}
		run_until(&w, received, (uint64_t[]){ 0, 20, sent });
		run_until(&w, all_acked, NULL);
		assert_int_equal(w.ep[1].rx_bad + w.ep[2].rx_bad, 0);
		assert_int_equal(w.ep[1].failed + w.ep[2].failed, 0);
		if (w.ep[1].downs + w.ep[2].downs != 0 || w.ep[1].ups != 1 || w.ep[2].ups != 1)
			fail_msg("step %d%s: %d/%d ups, %d/%d downs", step,
				 first_split ? " (cut between the two sides' UP)" : "",
				 w.ep[1].ups, w.ep[2].ups, w.ep[1].downs, w.ep[2].downs);
		world_release(&w);
	}
	assert_true(split_seen);
}

/* Cuts from outside at a high rate on both sides, during handshakes as well,
 * while messages flow both ways: every message arrives once, in order, and
 * neither side ever sees the other go down. */
static void test_cuts_at_high_rate(void **state _unused_)
{
	const struct ep_opts o = { .timeout_ms = 1000 };
	struct world w;
	uint32_t sent = 0;
	uint64_t start, cuts = 0;

	world_init(&w);
	assert_int_equal(ep_start(&w, 1, &o), 0);
	assert_int_equal(ep_start(&w, 2, &o), 0);
	start = loop_now_update(w.loop);
	for (unsigned i = 0; loop_now(w.loop) - start < 3000000; i++) {
		assert_int_equal(loop_run_once(w.loop, 1000), 0);
		if (sent < 4000 && both_up(&w, NULL)) {
			send_range(&w, 1, sent, 20);
			send_range(&w, 2, sent, 20);
			sent += 20;
		}
		/* Every few iterations, from either side: in any state. */
		if (i % 7 == 3)
			cuts += (uint64_t)cut_every_connection(w.ep[1 + (i / 7) % 2].m);
	}
	run_until(&w, received, (uint64_t[]){ 0, sent, sent });
	run_until(&w, all_acked, NULL);
	assert_true(cuts > 100);
	assert_true(sent > 0);
	assert_int_equal(w.ep[1].rx_bad + w.ep[2].rx_bad, 0);
	assert_int_equal(w.ep[1].failed + w.ep[2].failed, 0);
	assert_int_equal(w.ep[1].downs + w.ep[2].downs, 0);
	assert_int_equal(w.ep[1].ups, 1);
	assert_int_equal(w.ep[2].ups, 1);
	world_release(&w);
}

static bool down_1(struct world *w, void *arg _unused_)
{
	return w->ep[1].downs > 0;
}

static bool up_again_1(struct world *w, void *arg)
{
	const int *ups = arg;

	return w->ep[1].ups >= *ups && both_up(w, NULL);
}

static void test_peer_failure_and_rejoin(void **state _unused_)
{
	const struct ep_opts o = { .timeout_ms = 300 };
	struct world w;
	struct msg_peer_info info;
	uint64_t last_heard, inc2 = 0;
	int want = 2;

	start_pair(&w, &o);
	send_range(&w, 1, 0, 5);
	run_until(&w, received, (uint64_t[]){ 0, 0, 5 });
	run_until(&w, all_acked, NULL);

	/* Node 2 dies; five more messages go to it before anyone knows. */
	inc2 = msg_incarnation(w.ep[2].m);
	ep_stop(&w, 2);
	last_heard = loop_now_update(w.loop);
	send_range(&w, 1, 5, 5);
	run_until(&w, down_1, NULL);
	print_message("# node 2 declared down %llu ms after it stopped (timeout 300 ms)\n",
		      (unsigned long long)(w.ep[1].down_at - last_heard) / 1000);
	assert_int_equal(w.ep[1].down_inc, inc2);
	assert_int_equal(w.ep[1].failed, 5);
	assert_true(w.ep[1].failed_after_down);
	for (int i = 0; i < 5; i++)
		assert_int_equal(w.ep[1].failed_types[i], 5 + i);
	assert_int_equal(msg_send(w.ep[1].m, 2, CH, 0, NULL, 0), -EHOSTDOWN);
	assert_int_equal(msg_peer_writable(w.ep[1].m, 2), -EHOSTDOWN);
	assert_int_equal(msg_peer_get_info(w.ep[1].m, 2, &info), 0);
	assert_int_equal(info.state, MSG_PEER_STATE_DOWN);
	assert_int_equal(info.queued_bytes, 0);

	/* It comes back (new incarnation) and rejoins: a new session from 0. */
	memset(&w.ep[2], 0, sizeof(w.ep[2]));
	w.ep[2].w = &w;
	w.ep[2].id = 2;
	assert_int_equal(ep_start(&w, 2, &o), 0);
	run_until(&w, up_again_1, &want);
	assert_int_equal(w.ep[1].up_inc, msg_incarnation(w.ep[2].m));
	assert_true(w.ep[1].up_inc != inc2);
	w.ep[1].rx_next = 0;
	w.ep[1].rx = 0;
	send_range(&w, 1, 0, 20);
	send_range(&w, 2, 0, 20);
	run_until(&w, received, (uint64_t[]){ 0, 20, 20 });
	assert_int_equal(w.ep[1].rx_bad + w.ep[2].rx_bad, 0);
	world_release(&w);
}

static void test_restart_before_timeout(void **state _unused_)
{
	struct world w;
	uint64_t inc2;
	int want = 2;

	start_pair(&w, NULL);
	/* Queued but never sent: node 2 restarts before the loop runs again. */
	send_range(&w, 1, 0, 3);
	inc2 = msg_incarnation(w.ep[2].m);
	ep_stop(&w, 2);
	memset(&w.ep[2], 0, sizeof(w.ep[2]));
	w.ep[2].w = &w;
	w.ep[2].id = 2;
	assert_int_equal(ep_start(&w, 2, NULL), 0);
	run_until(&w, up_again_1, &want);
	/* The old session ended (its messages failed), a new one began. */
	assert_int_equal(w.ep[1].downs, 1);
	assert_int_equal(w.ep[1].down_inc, inc2);
	assert_int_equal(w.ep[1].failed, 3);
	assert_true(w.ep[1].failed_after_down);
	assert_int_equal(w.ep[1].up_inc, msg_incarnation(w.ep[2].m));
	assert_int_equal(w.ep[2].rx, 0);
	send_range(&w, 1, 0, 10);
	run_until(&w, received, (uint64_t[]){ 0, 0, 10 });
	assert_int_equal(w.ep[2].rx_bad, 0);
	world_release(&w);
}

/* ---- streams in one loop ---- */

static void on_done(struct msg_stream *s _unused_, int error, void *userdata)
{
	struct ep *e = userdata;

	e->s_done++;
	e->s_done_error = error;
}

static void on_stream_writable(struct msg_stream *s _unused_, void *userdata)
{
	struct ep *e = userdata;

	e->s_writable++;
}

static bool stream_ended(struct world *w, void *arg _unused_)
{
	return w->ep[1].s_done > 0 && w->ep[2].s_end > 0;
}

static bool stream_refused(struct world *w, void *arg _unused_)
{
	return w->ep[1].s_done > 0;
}

static bool stream_aborted(struct world *w, void *arg _unused_)
{
	return w->ep[2].s_end > 0;
}

static bool writable_again(struct world *w, void *arg _unused_)
{
	return w->ep[1].s_writable > 0;
}

static void test_streams(void **state _unused_)
{
	static const struct msg_stream_ops ops = {
		.writable = on_stream_writable,
		.done = on_done,
	};
	const struct ep_opts o = { .window = 1 << 20 };
	static uint8_t buf[300000];
	struct world w;
	struct msg_stream *s;
	uint64_t off = 0;
	int r;

	start_pair(&w, &o);
	assert_int_equal(msg_stream_open(w.ep[1].m, 1, CH, 77, "abc", 3, &ops, &w.ep[1], &s),
			 -EINVAL);
	assert_int_equal(msg_stream_open(w.ep[1].m, 2, CH, 77, "abc", 3, NULL, &w.ep[1], &s),
			 -EINVAL);

	/* Normal: write until the window is full, wait, go on, close. */
	assert_int_equal(msg_stream_open(w.ep[1].m, 2, CH, 77, "abc", 3, &ops, &w.ep[1], &s), 0);
	while (off < (8u << 20)) {
		traffic_stream_fill(1, 2, off, buf, sizeof(buf));
		r = msg_stream_write(s, buf, sizeof(buf));
		if (r == -EAGAIN) {
			struct msg_peer_info info;

			assert_int_equal(msg_peer_get_info(w.ep[1].m, 2, &info), 0);
			assert_true(info.queued_bytes + sizeof(buf) > (1u << 20));
			w.ep[1].s_writable = 0;
			run_until(&w, writable_again, NULL);
			continue;
		}
		assert_int_equal(r, 0);
		off += sizeof(buf);
	}
	assert_int_equal(msg_stream_close(s), 0);
	assert_int_equal(msg_stream_close(s), -EALREADY);
	assert_int_equal(msg_stream_write(s, buf, 1), -EPIPE);
	run_until(&w, stream_ended, NULL);
	assert_int_equal(w.ep[1].s_done_error, 0);
	assert_int_equal(w.ep[2].s_end_error, 0);
	assert_int_equal(w.ep[2].s_bytes, off);
	assert_int_equal(w.ep[2].rx_bad, 0);
	{
		struct msg_peer_info info;

		assert_int_equal(msg_peer_get_info(w.ep[1].m, 2, &info), 0);
		/* Bounded by the window plus the one write that filled it. */
		assert_true(info.queued_peak <= (1u << 20) + sizeof(buf));
	}

	/* Refused by the receiver. */
	w.ep[1].s_done = w.ep[2].s_end = 0;
	w.ep[2].s_refuse = true;
	assert_int_equal(msg_stream_open(w.ep[1].m, 2, CH, 77, "abc", 3, &ops, &w.ep[1], &s), 0);
	run_until(&w, stream_refused, NULL);
	assert_int_equal(w.ep[1].s_done_error, -ECONNABORTED);
	assert_int_equal(w.ep[2].s_end, 0);

	/* Aborted by the sender. */
	w.ep[1].s_done = 0;
	w.ep[2].s_refuse = false;
	assert_int_equal(msg_stream_open(w.ep[1].m, 2, CH, 77, "abc", 3, &ops, &w.ep[1], &s), 0);
	traffic_stream_fill(1, 2, 0, buf, 1000);
	assert_int_equal(msg_stream_write(s, buf, 1000), 0);
	msg_stream_abort(s);
	run_until(&w, stream_aborted, NULL);
	assert_int_equal(w.ep[2].s_end_error, -ECONNABORTED);
	assert_int_equal(w.ep[2].s_bytes, 1000);
	assert_int_equal(w.ep[1].s_done, 0);

	/* Ended by the peer going down. */
	w.ep[1].s_done = 0;
	assert_int_equal(msg_stream_open(w.ep[1].m, 2, CH, 77, "abc", 3, &ops, &w.ep[1], &s), 0);
	ep_stop(&w, 2);
	run_until(&w, stream_refused, NULL);
	assert_int_equal(w.ep[1].s_done_error, -EHOSTDOWN);
	world_release(&w);
}

/* ---- endpoints in separate processes ---- */

struct proc_opts {
	struct tpeer_opts o;
	uint64_t max_peak;   /* if set: most bytes ever queued for the other node */
	long max_rss_kib;    /* if set and not under ASan: peak resident memory */
};

static pid_t spawn(struct proc_opts *p, int listen_fd, int other_fd)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		uint64_t peak = 0;
		struct rusage ru;
		int r;

		close(other_fd);
		p->o.listen_fd = listen_fd;
		p->o.ret_queued_peak = &peak;
		r = tpeer_run(&p->o);
		if (r != 0)
			_exit(1);
		if (p->max_peak && peak > p->max_peak) {
			fprintf(stderr, "node %u: %llu bytes queued, more than %llu\n", p->o.id,
				(unsigned long long)peak, (unsigned long long)p->max_peak);
			_exit(1);
		}
		if (p->max_rss_kib && !UNDER_ASAN && getrusage(RUSAGE_SELF, &ru) == 0 &&
		    ru.ru_maxrss > p->max_rss_kib) {
			fprintf(stderr, "node %u: peak RSS %ld KiB, more than %ld\n", p->o.id,
				ru.ru_maxrss, p->max_rss_kib);
			_exit(1);
		}
		_exit(0);
	}
	return pid;
}

static void run_two_processes(struct proc_opts *p1, struct proc_opts *p2)
{
	struct msg_peer_config nodes[2];
	char addr[2][32];
	int port[2], fd[2], status[2] = { -1, -1 };
	pid_t pid[2];
	int waited = 0;

	for (int i = 0; i < 2; i++) {
		fd[i] = make_listener(0, &port[i]);
		snprintf(addr[i], sizeof(addr[i]), "127.0.0.1:%d", port[i]);
		nodes[i] = (struct msg_peer_config){ .id = (uint32_t)i + 1, .address = addr[i] };
	}
	p1->o.id = 1;
	p2->o.id = 2;
	p1->o.nodes = p2->o.nodes = nodes;
	p1->o.n_nodes = p2->o.n_nodes = 2;
	memcpy(p1->o.key, key_a, MSG_KEY_SIZE);
	memcpy(p2->o.key, key_a, MSG_KEY_SIZE);
	fflush(NULL);
	pid[0] = spawn(p1, fd[0], fd[1]);
	pid[1] = spawn(p2, fd[1], fd[0]);
	close(fd[0]);
	close(fd[1]);
	/* A safety net only: the harness's timeout would catch a hang too. */
	for (int tries = 0; waited < 2 && tries < 2400; tries++) {
		for (int i = 0; i < 2; i++) {
			if (status[i] != -1)
				continue;
			if (waitpid(pid[i], &status[i], WNOHANG) == pid[i])
				waited++;
			else
				status[i] = -1;
		}
		if (waited < 2)
			usleep(50000);
	}
	for (int i = 0; i < 2; i++) {
		if (status[i] == -1) {
			kill(pid[i], SIGKILL);
			waitpid(pid[i], &status[i], 0);
			fail_msg("node %d did not finish", i + 1);
		}
		assert_true(WIFEXITED(status[i]));
		assert_int_equal(WEXITSTATUS(status[i]), 0);
	}
}

static void test_many_messages_with_cuts(void **state _unused_)
{
	struct proc_opts p1 = { .o = TPEER_OPTS_INIT }, p2 = { .o = TPEER_OPTS_INIT };

	/* 100,000 each way, sizes 0..64 KiB; node 1 cuts every 4,000 messages it
	 * receives, node 2 breaks the link with every kind of fault every 7,000. */
	p1.o.count = p2.o.count = 100000;
	p1.o.reconnect_min_ms = p2.o.reconnect_min_ms = 1;
	p1.o.fault_every = 4000;
	p2.o.fault_every = 7000;
	p2.o.all_faults = true;
	run_two_processes(&p1, &p2);
}

static void test_many_messages_plain(void **state _unused_)
{
	struct proc_opts p1 = { .o = TPEER_OPTS_INIT }, p2 = { .o = TPEER_OPTS_INIT };

	p1.o.count = p2.o.count = 30000;
	p1.o.plain = p2.o.plain = true;
	p1.o.reconnect_min_ms = p2.o.reconnect_min_ms = 1;
	p1.o.fault_every = 3000;
	p2.o.fault_every = 2500;
	p2.o.all_faults = true;
	run_two_processes(&p1, &p2);
}

static void test_stream_bounded_memory(void **state _unused_)
{
	struct proc_opts p1 = { .o = TPEER_OPTS_INIT }, p2 = { .o = TPEER_OPTS_INIT };

	/* 192 MiB each way through a 4 MiB window, with a few cuts. */
	p1.o.stream_bytes = p2.o.stream_bytes = 192ull << 20;
	p1.o.window = p2.o.window = 4u << 20;
	p1.o.count = p2.o.count = 2000;
	p1.o.fault_every = 700;
	p1.o.reconnect_min_ms = p2.o.reconnect_min_ms = 1;
	p1.max_peak = p2.max_peak = (4u << 20) + (128u << 10);
	p1.max_rss_kib = p2.max_rss_kib = 64 << 10;
	run_two_processes(&p1, &p2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wire_header),
		cmocka_unit_test(test_wire_seal_open),
		cmocka_unit_test(test_hello_and_keys),
		cmocka_unit_test(test_handshake_replay),
		cmocka_unit_test(test_sequencing_from_the_wire),
		cmocka_unit_test(test_wrong_key_and_garbage),
		cmocka_unit_test(test_messages_and_local),
		cmocka_unit_test(test_big_messages),
		cmocka_unit_test(test_retransmit_after_cut),
		cmocka_unit_test(test_bad_frames),
		cmocka_unit_test(test_cuts_during_handshake),
		cmocka_unit_test(test_cuts_at_high_rate),
		cmocka_unit_test(test_peer_failure_and_rejoin),
		cmocka_unit_test(test_restart_before_timeout),
		cmocka_unit_test(test_streams),
		cmocka_unit_test(test_many_messages_with_cuts),
		cmocka_unit_test(test_many_messages_plain),
		cmocka_unit_test(test_stream_bounded_memory),
	};

	log_set_level_from_string(getenv("GHOST_LOG") ? getenv("GHOST_LOG") : "err");
	return cmocka_run_group_tests_name("msg", tests, NULL, NULL);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The connection handshake: mutual authentication with the cluster key,
 * per-connection keys, and the resume information a session needs. The
 * dialer (D, the lower node id) talks first; the acceptor (A) answers.
 *
 *   D -> A  HELLO_D = hello(from D, to A, inc_D, A's inc as D knows it, D's rx_seq, nonce_D)
 *   A -> D  HELLO_A = hello(from A, to D, inc_A, D's inc as A knows it, A's rx_seq, nonce_A)
 *           | MAC(k_auth, "acceptor" | th)
 *   D -> A  MAC(k_auth, "dialer" | th)
 *           then sealed frames both ways
 *
 *   th = BLAKE2b-256(HELLO_D | HELLO_A), the transcript hash
 *   k_auth, k_kdf = crypto_kdf subkeys 1 and 2 of the cluster key
 *   k_d2a | k_a2d = BLAKE2b-512 keyed with k_kdf over ("ghost-msg keys" | th)
 *
 * Each side proves knowledge of the key with a MAC over a transcript that
 * holds the other side's fresh random nonce, so recorded handshakes replayed
 * in either direction fail; the role label stops a MAC being reflected back;
 * and node ids, incarnations, sequence numbers and the encryption flag are in
 * the transcript, so none can be altered. Session keys come from the key, both
 * nonces and both ids, through th. MACs are compared in constant time.
 *
 * State machine (conn->state; conn.c owns CONNECTING and CLOSED):
 *
 *   dialer:   CONNECTING --connected/msg_hs_start--> HELLO_SENT
 *             HELLO_SENT --HELLO_A ok, send MAC--> ESTABLISHED
 *   acceptor: (accept) HELLO_WAIT --HELLO_D ok, send HELLO_A--> AUTH_WAIT
 *             AUTH_WAIT --MAC ok--> ESTABLISHED
 *   any state --bad length, bad hello, bad MAC, timeout--> CLOSED
 *
 * Invariants:
 *   1. A connection reaches ESTABLISHED only after verifying the other side's MAC.
 *   2. The acceptor sends no frame before the dialer's MAC checks out; the
 *      dialer may send frames right after its MAC (TCP keeps them behind it).
 *   3. Only the lower node id dials: an acceptor refuses a hello from a higher id.
 *   4. Each handshake state accepts exactly one record length (msg_hs_expected_len).
 *
 *   transition                 function
 *   CONNECTING -> HELLO_SENT   msg_hs_start
 *   HELLO_WAIT -> AUTH_WAIT    on_dialer_hello
 *   HELLO_SENT -> ESTABLISHED  on_acceptor_hello
 *   AUTH_WAIT -> ESTABLISHED   on_dialer_mac
 */
#include <string.h>

#define LOG_PREFIX "msg"
#include "msg/msg-int.h"
#include "base/log.h"
#include "base/banned.h"

static const uint8_t hello_magic[8] = { 'G', 'H', 'O', 'S', 'T', 'M', 'S', 'G' };

void msg_hs_hello_pack(const struct hs_hello *h, uint8_t out[HS_HELLO_SIZE])
{
	memcpy(out, hello_magic, 8);
	put_le16(out + 8, h->version);
	put_le16(out + 10, h->flags);
	put_le32(out + 12, h->from);
	put_le32(out + 16, h->to);
	put_le32(out + 20, 0);
	put_le64(out + 24, h->incarnation);
	put_le64(out + 32, h->your_incarnation);
	put_le64(out + 40, h->rx_seq);
	memcpy(out + 48, h->nonce, HS_NONCE_SIZE);
}

int msg_hs_hello_unpack(const uint8_t *in, size_t len, struct hs_hello *ret)
{
	struct hs_hello h;

	if (len != HS_HELLO_SIZE || memcmp(in, hello_magic, 8) != 0)
		return -EBADMSG;
	h.version = get_le16(in + 8);
	h.flags = get_le16(in + 10);
	h.from = get_le32(in + 12);
	h.to = get_le32(in + 16);
	h.incarnation = get_le64(in + 24);
	h.your_incarnation = get_le64(in + 32);
	h.rx_seq = get_le64(in + 40);
	memcpy(h.nonce, in + 48, HS_NONCE_SIZE);
	if (h.version != HS_VERSION || (h.flags & ~(HS_F_ENCRYPT | HS_F_ACCEPTOR)) ||
	    get_le32(in + 20) != 0 || h.incarnation == 0)
		return -EBADMSG;
	*ret = h;
	return 0;
}

void msg_hs_keys_derive(const uint8_t master[MSG_KEY_SIZE], struct hs_keys *ret)
{
	_Static_assert(crypto_kdf_KEYBYTES == MSG_KEY_SIZE, "key size");
	crypto_kdf_derive_from_key(ret->auth, sizeof(ret->auth), 1, "ghostmsg", master);
	crypto_kdf_derive_from_key(ret->kdf, sizeof(ret->kdf), 2, "ghostmsg", master);
}

void msg_hs_transcript(const uint8_t hello_c[HS_HELLO_SIZE], const uint8_t hello_s[HS_HELLO_SIZE],
		   uint8_t th[32])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, hello_c, HS_HELLO_SIZE);
	crypto_generichash_update(&st, hello_s, HS_HELLO_SIZE);
	crypto_generichash_final(&st, th, 32);
}

void msg_hs_mac(const struct hs_keys *k, bool acceptor, const uint8_t th[32],
	    uint8_t mac[HS_MAC_SIZE])
{
	static const char label_a[] = "ghost-msg acceptor";
	static const char label_d[] = "ghost-msg dialer";
	crypto_generichash_state st;

	crypto_generichash_init(&st, k->auth, sizeof(k->auth), HS_MAC_SIZE);
	if (acceptor)
		crypto_generichash_update(&st, (const uint8_t *)label_a, sizeof(label_a));
	else
		crypto_generichash_update(&st, (const uint8_t *)label_d, sizeof(label_d));
	crypto_generichash_update(&st, th, 32);
	crypto_generichash_final(&st, mac, HS_MAC_SIZE);
}

void msg_hs_session_keys(const struct hs_keys *k, const uint8_t th[32], uint8_t c2s[WIRE_KEY_SIZE],
		     uint8_t s2c[WIRE_KEY_SIZE])
{
	static const char label[] = "ghost-msg keys";
	crypto_generichash_state st;
	uint8_t out[2 * WIRE_KEY_SIZE];

	crypto_generichash_init(&st, k->kdf, sizeof(k->kdf), sizeof(out));
	crypto_generichash_update(&st, (const uint8_t *)label, sizeof(label));
	crypto_generichash_update(&st, th, 32);
	crypto_generichash_final(&st, out, sizeof(out));
	memcpy(c2s, out, WIRE_KEY_SIZE);
	memcpy(s2c, out + WIRE_KEY_SIZE, WIRE_KEY_SIZE);
	sodium_memzero(out, sizeof(out));
}

size_t msg_hs_expected_len(const struct conn *c)
{
	switch (c->state) {
	case CONN_HELLO_WAIT:
		return HS_HELLO_SIZE;
	case CONN_HELLO_SENT:
		return HS_HELLO_SIZE + HS_MAC_SIZE;
	case CONN_AUTH_WAIT:
		return HS_MAC_SIZE;
	default:
		return 0;
	}
}

/* Our side of the session, as it stands when our hello goes out. */
static void fill_hello(struct conn *c, struct peer *p, bool acceptor)
{
	struct msg *m = c->msg;
	struct hs_hello *h = &c->my_hello;

	memset(h, 0, sizeof(*h));
	h->version = HS_VERSION;
	h->flags = (uint16_t)((m->encrypt ? HS_F_ENCRYPT : 0) | (acceptor ? HS_F_ACCEPTOR : 0));
	h->from = m->node_id;
	h->to = p->id;
	h->incarnation = m->incarnation;
	if (p->state == MSG_PEER_STATE_UP) {
		h->your_incarnation = p->inc;
		h->rx_seq = p->rx_seq;
	}
	randombytes_buf(h->nonce, sizeof(h->nonce));
}

static int refuse(struct conn *c, const char *what)
{
	c->msg->stats.auth_failures++;
	log_warn("refusing connection from '%s': %s", c->remote, what);
	return -EACCES;
}

int msg_hs_start(struct conn *c)
{
	fill_hello(c, c->peer, false);
	msg_hs_hello_pack(&c->my_hello, c->hello_c);
	c->state = CONN_HELLO_SENT;
	return msg_conn_send_record(c, c->hello_c, HS_HELLO_SIZE);
}

static int check_flags(struct conn *c, const struct hs_hello *h, bool from_acceptor)
{
	if (!!(h->flags & HS_F_ACCEPTOR) != from_acceptor)
		return refuse(c, "hello from the wrong side");
	if (!!(h->flags & HS_F_ENCRYPT) != c->msg->encrypt)
		return refuse(c, "encryption setting differs from ours");
	return 0;
}

static int on_dialer_hello(struct conn *c, const uint8_t *body, size_t len)
{
	struct msg *m = c->msg;
	uint8_t rec[HS_HELLO_SIZE + HS_MAC_SIZE], th[32];
	struct hs_hello h;
	struct peer *p;
	int r;

	if (msg_hs_hello_unpack(body, len, &h) < 0)
		return refuse(c, "not a ghost hello");
	r = check_flags(c, &h, false);
	if (r < 0)
		return r;
	if (h.to != m->node_id)
		return refuse(c, "hello meant for another node");
	p = msg_peer_find(m, h.from);
	if (!p || p->self)
		return refuse(c, "unknown node id");
	if (h.from > m->node_id)
		return refuse(c, "a higher node id may not dial");
	c->peer = p;
	c->peer_hello = h;
	memcpy(c->hello_c, body, HS_HELLO_SIZE);

	fill_hello(c, p, true);
	msg_hs_hello_pack(&c->my_hello, c->hello_s);
	msg_hs_transcript(c->hello_c, c->hello_s, th);
	memcpy(rec, c->hello_s, HS_HELLO_SIZE);
	msg_hs_mac(&m->keys, true, th, rec + HS_HELLO_SIZE);
	c->state = CONN_AUTH_WAIT;
	return msg_conn_send_record(c, rec, sizeof(rec));
}

static int on_acceptor_hello(struct conn *c, const uint8_t *body, size_t len)
{
	struct msg *m = c->msg;
	uint8_t th[32], mac[HS_MAC_SIZE], d2a[WIRE_KEY_SIZE], a2d[WIRE_KEY_SIZE];
	struct hs_hello h;
	int r;

	if (len != HS_HELLO_SIZE + HS_MAC_SIZE || msg_hs_hello_unpack(body, HS_HELLO_SIZE, &h) < 0)
		return refuse(c, "not a ghost hello");
	r = check_flags(c, &h, true);
	if (r < 0)
		return r;
	if (h.to != m->node_id || h.from != c->peer->id)
		return refuse(c, "hello from the wrong node");
	memcpy(c->hello_s, body, HS_HELLO_SIZE);
	msg_hs_transcript(c->hello_c, c->hello_s, th);
	msg_hs_mac(&m->keys, true, th, mac);
	if (sodium_memcmp(mac, body + HS_HELLO_SIZE, HS_MAC_SIZE) != 0)
		return refuse(c, "authentication failed (wrong cluster key?)");
	c->peer_hello = h;

	msg_hs_mac(&m->keys, false, th, mac);
	r = msg_conn_send_record(c, mac, sizeof(mac));
	if (r < 0)
		return r;
	msg_hs_session_keys(&m->keys, th, d2a, a2d);
	r = msg_conn_establish(c, d2a, a2d);
	sodium_memzero(d2a, sizeof(d2a));
	sodium_memzero(a2d, sizeof(a2d));
	if (r < 0)
		return r;
	m->stats.handshakes++;
	return msg_peer_attach(c->peer, c);
}

static int on_dialer_mac(struct conn *c, const uint8_t *body, size_t len)
{
	struct msg *m = c->msg;
	uint8_t th[32], mac[HS_MAC_SIZE], d2a[WIRE_KEY_SIZE], a2d[WIRE_KEY_SIZE];
	int r;

	if (len != HS_MAC_SIZE)
		return refuse(c, "malformed authentication");
	msg_hs_transcript(c->hello_c, c->hello_s, th);
	msg_hs_mac(&m->keys, false, th, mac);
	if (sodium_memcmp(mac, body, HS_MAC_SIZE) != 0)
		return refuse(c, "authentication failed (wrong cluster key or replay?)");
	msg_hs_session_keys(&m->keys, th, d2a, a2d);
	r = msg_conn_establish(c, a2d, d2a);
	sodium_memzero(d2a, sizeof(d2a));
	sodium_memzero(a2d, sizeof(a2d));
	if (r < 0)
		return r;
	m->stats.handshakes++;
	return msg_peer_attach(c->peer, c);
}

int msg_hs_on_record(struct conn *c, const uint8_t *body, size_t len)
{
	switch (c->state) {
	case CONN_HELLO_WAIT:
		return on_dialer_hello(c, body, len);
	case CONN_HELLO_SENT:
		return on_acceptor_hello(c, body, len);
	case CONN_AUTH_WAIT:
		return on_dialer_mac(c, body, len);
	default:
		return -EPROTO;
	}
}

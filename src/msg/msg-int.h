/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Inside the msg module: the wire format (wire.c), the handshake (handshake.c),
 * connections (conn.c), peers and sessions (msg.c) and streams (stream.c).
 * Nothing here is for other modules; the unit tests use the wire helpers.
 */
#ifndef MSG_MSG_INT_H
#define MSG_MSG_INT_H

#include <netinet/in.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "msg/msg.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- wire.c: records ----
 *
 * Every record is a little-endian u32 length followed by that many bytes.
 * In a session, the bytes seal a 32-byte frame header and the payload:
 *
 *   encrypted: len | AEAD(hdr | payload) | tag16      AD = len, nonce = counter
 *   plain:     len | mac8 | hdr | payload             mac8 = SipHash(len, counter, hdr)
 *
 * Encrypted frames above 256 KiB are cut into several records (WIRE_F_MORE),
 * so sealing, sending and opening overlap; plain frames are one record each.
 *
 * The counter counts the records of one direction of one connection, from 0;
 * each direction of each connection has its own key (handshake.c).
 */
#define WIRE_LEN_SIZE 4
#define WIRE_HDR_SIZE 32
#define WIRE_TAG_SIZE 16
#define WIRE_HMAC_SIZE 8
#define WIRE_KEY_SIZE 32
/* The largest length field a session accepts. */
#define WIRE_MAX_LEN (WIRE_HDR_SIZE + MSG_MAX_MESSAGE + WIRE_TAG_SIZE)

enum wire_kind {
	WIRE_DATA = 1,     /* a message: channel, type, payload */
	WIRE_ACK,          /* unsequenced: carries only the cumulative ack */
	WIRE_PING,         /* unsequenced heartbeat */
	WIRE_STREAM_OPEN,  /* stream id, channel, type, opening payload */
	WIRE_STREAM_DATA,  /* stream id, bytes */
	WIRE_STREAM_END,   /* stream id: no more bytes */
	WIRE_STREAM_ABORT, /* stream id: the sender abandons its stream */
	WIRE_STREAM_STOP,  /* stream id: the receiver refuses or abandons a stream */
	_WIRE_KIND_MAX,
	_WIRE_KIND_INVALID = -EINVAL,
};

/* Frame header, 32 bytes little-endian: kind u8, flags u8, channel u16,
 * type u32, seq u64 (0 when unsequenced), ack u64, stream u64. A frame may
 * span several records: all but the last carry WIRE_F_MORE. */
enum wire_flags {
	WIRE_F_MORE = 1 << 0,
};

struct wire_hdr {
	uint8_t kind;
	uint8_t flags;
	uint16_t channel;
	uint32_t type;
	uint64_t seq;
	uint64_t ack;
	uint64_t stream;
};

void msg_wire_hdr_pack(const struct wire_hdr *h, uint8_t out[WIRE_HDR_SIZE]);
/* -EBADMSG for an unknown kind or flag, or a seq that does not fit the kind. */
int msg_wire_hdr_unpack(const uint8_t in[WIRE_HDR_SIZE], struct wire_hdr *ret);

struct wire_cipher {
	struct evp_cipher_ctx_st *aes; /* OpenSSL's EVP_CIPHER_CTX, when aes_ok */
	uint8_t key[WIRE_KEY_SIZE];
	uint64_t counter;
	bool encrypt;
	bool aes_ok;
};

/* Set up one direction. With encrypt, AES-256-GCM (OpenSSL's, one context
 * per direction, kept for the connection's life) if the CPU has AES-NI, else
 * libsodium's ChaCha20-Poly1305-IETF. -ENOMEM, -EIO. A copy of c shares its
 * context; only one of them may be wiped. */
int msg_wire_cipher_init(struct wire_cipher *c, bool encrypt, const uint8_t key[WIRE_KEY_SIZE]);
void msg_wire_cipher_wipe(struct wire_cipher *c);
/* Bytes a record adds to its n = WIRE_HDR_SIZE + payload bytes. */
size_t msg_wire_overhead(const struct wire_cipher *c);
/* Offset of hdr | payload inside a plain record (len, mac). */
#define WIRE_PLAIN_BODY (WIRE_LEN_SIZE + WIRE_HMAC_SIZE)
/* Seal n bytes (header then payload) into out, which holds msg_wire_overhead() + n
 * bytes. in may equal out + WIRE_LEN_SIZE (encrypted) or out + WIRE_PLAIN_BODY
 * (plain) to seal in place. -EIO if the cipher fails. */
int msg_wire_seal(struct wire_cipher *c, const uint8_t *in, size_t n, uint8_t *out);
/* Plain only: write the WIRE_PLAIN_BODY bytes that go before in[0..n). */
void msg_wire_seal_prefix(struct wire_cipher *c, const uint8_t *in, size_t n, uint8_t *out);
/* Check and open a whole record of size bytes (length field included) in
 * place. On success *ret_body is its header and payload, *ret_n their size.
 * -EBADMSG if the record is malformed or fails its check. */
int msg_wire_open(struct wire_cipher *c, uint8_t *rec, size_t size, uint8_t **ret_body,
	      size_t *ret_n);

static inline void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* ---- handshake.c ---- */

#define HS_NONCE_SIZE 32
#define HS_MAC_SIZE 32
#define HS_HELLO_SIZE 80
#define HS_VERSION 1

enum hs_flags {
	HS_F_ENCRYPT = 1 << 0,  /* the sender seals frames with the AEAD */
	HS_F_ACCEPTOR = 1 << 1, /* the sender is the accepting side */
};

struct hs_hello {
	uint16_t version;
	uint16_t flags;
	uint32_t from;
	uint32_t to;
	uint64_t incarnation;      /* the sender's */
	uint64_t your_incarnation; /* the receiver's, as the sender's session knows it; 0: none */
	uint64_t rx_seq;           /* last frame the sender received in that session */
	uint8_t nonce[HS_NONCE_SIZE];
};

/* Keys derived once from the cluster key. */
struct hs_keys {
	uint8_t auth[32]; /* handshake MACs */
	uint8_t kdf[32];  /* session keys */
};

void msg_hs_hello_pack(const struct hs_hello *h, uint8_t out[HS_HELLO_SIZE]);
/* -EBADMSG unless len == HS_HELLO_SIZE and magic and version match. */
int msg_hs_hello_unpack(const uint8_t *in, size_t len, struct hs_hello *ret);
void msg_hs_keys_derive(const uint8_t master[MSG_KEY_SIZE], struct hs_keys *ret);
void msg_hs_transcript(const uint8_t hello_c[HS_HELLO_SIZE], const uint8_t hello_s[HS_HELLO_SIZE],
		   uint8_t th[32]);
void msg_hs_mac(const struct hs_keys *k, bool acceptor, const uint8_t th[32],
	    uint8_t mac[HS_MAC_SIZE]);
void msg_hs_session_keys(const struct hs_keys *k, const uint8_t th[32], uint8_t c2s[WIRE_KEY_SIZE],
		     uint8_t s2c[WIRE_KEY_SIZE]);

struct conn;
/* Dialer: the TCP connection is up; send our hello. */
int msg_hs_start(struct conn *c);
/* A handshake record arrived (body without its length field). < 0: drop the
 * connection; the reason is logged here. */
int msg_hs_on_record(struct conn *c, const uint8_t *body, size_t len);
/* The only record length the current handshake state accepts. */
size_t msg_hs_expected_len(const struct conn *c);

/* ---- frames queued for a peer (msg.c) ---- */

struct frame {
	struct frame *next;
	uint64_t seq;
	uint64_t stream;
	uint32_t type;
	uint32_t len;
	uint16_t channel;
	uint8_t kind;
	bool taken;       /* payload was malloc()ed by the caller, not data[] */
	uint8_t *payload; /* len bytes */
	/* Packed at each transmission; data[] follows with no gap, so hdr | data
	 * is one contiguous run to seal. */
	uint8_t hdr[WIRE_HDR_SIZE];
	uint8_t data[];
};

struct frame *msg_frame_new(uint8_t kind, uint16_t channel, uint32_t type, uint64_t stream,
			const void *data, size_t len);
/* Consumes data, even on failure (then returns NULL). */
struct frame *msg_frame_new_take(uint8_t kind, uint16_t channel, uint32_t type, uint64_t stream,
			     void *data, size_t len);
struct frame *msg_frame_free(struct frame *f);

/* ---- connections (conn.c) ---- */

enum conn_state {
	CONN_CONNECTING,  /* dialer: non-blocking connect() in progress */
	CONN_HELLO_SENT,  /* dialer: hello sent, waiting for the acceptor's */
	CONN_HELLO_WAIT,  /* acceptor: waiting for the dialer's hello */
	CONN_AUTH_WAIT,   /* acceptor: hello sent, waiting for the dialer's MAC */
	CONN_ESTABLISHED, /* authenticated: frames flow */
	CONN_CLOSED,      /* dead, waiting to be freed */
	_CONN_STATE_MAX,
	_CONN_STATE_INVALID = -EINVAL,
};

/* A run of bytes to write: out[off, off + len) or, with ext, ext[0, len). */
struct seg {
	const uint8_t *ext;
	size_t off;
	size_t len;
	uint64_t seq_done; /* highest frame seq that ends in this run, 0 if none */
};

#define CONN_SEGS 64

struct conn {
	struct msg *msg;
	struct conn *prev, *next; /* msg->conns */
	struct peer *peer;        /* NULL until an acceptor learns who dialed */
	int fd;
	enum conn_state state;
	bool dialer;
	char remote[64]; /* "addr:port" for log lines */
	struct loop_io *io;
	struct loop_timer *timer;     /* handshake deadline, then heartbeat tick */
	struct loop_timer *ack_timer; /* delayed acknowledgement */
	struct loop_defer *flush;

	/* handshake */
	uint8_t nonce[HS_NONCE_SIZE];
	uint8_t hello_c[HS_HELLO_SIZE];
	uint8_t hello_s[HS_HELLO_SIZE];
	struct hs_hello peer_hello;
	struct hs_hello my_hello;

	/* session */
	struct wire_cipher tx, rx;
	struct frame *tx_next; /* next frame of the peer's queue to send */
	size_t tx_off;         /* bytes of tx_next already sent in earlier records */
	uint8_t *out;
	size_t out_len, out_cap;
	struct seg segs[CONN_SEGS];
	unsigned n_segs, seg_pos;
	size_t seg_off;
	uint8_t *in;
	size_t in_start, in_end, in_cap;
	/* a frame arriving in several records */
	bool asm_active;
	struct wire_hdr asm_hdr;
	uint8_t *asm_buf;
	size_t asm_len, asm_cap;
	uint64_t last_rx, last_tx;
	bool ack_now; /* send an acknowledgement without waiting */
	bool ping;    /* send a heartbeat */
	int fault;    /* pending enum msg_fault, or -1 */
	struct conn *grave_next;
};

int msg_conn_dial(struct peer *p);
int msg_conn_accept(struct msg *m, int fd);
/* Close now (idempotent); the memory goes at the end of the loop iteration,
 * so callers up the stack may still look at c->state. error < 0 and why are
 * for the log. */
void msg_conn_close(struct conn *c, int error, const char *why);
/* Free a closed connection (msg.c's reaper). */
void msg_conn_free(struct conn *c);
/* Queue a handshake record. */
int msg_conn_send_record(struct conn *c, const uint8_t *body, size_t len);
/* Handshake done: install the keys and start heartbeats. */
int msg_conn_establish(struct conn *c, const uint8_t tx_key[WIRE_KEY_SIZE],
		    const uint8_t rx_key[WIRE_KEY_SIZE]);
/* Write soon (end of this loop iteration). */
void msg_conn_kick(struct conn *c);
int msg_conn_fault(struct conn *c, enum msg_fault fault);
/* Whether a frame numbered seq or lower is still being written from its own memory. */
bool msg_conn_references(const struct conn *c, uint64_t seq);
/* Best effort, non-blocking: send what is buffered and an acknowledgement. */
void msg_conn_goodbye(struct conn *c);

/* ---- peers and the endpoint (msg.c) ---- */

struct peer {
	struct msg *msg;
	uint32_t id;
	bool self;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	enum msg_peer_state state;
	uint64_t inc; /* the peer's incarnation in the current session, 0 if none */
	/* A session record came from the peer in this session, so it holds the
	 * session too; until then, only our side of the handshake may have. */
	bool confirmed;

	/* sending: queue holds frames tx_acked + 1 .. tx_seq */
	uint64_t tx_seq;
	uint64_t tx_acked;
	uint64_t tx_sent; /* highest seq ever put on a connection */
	struct frame *q_head, *q_tail;
	uint64_t q_bytes;
	bool want_writable;

	/* receiving */
	uint64_t rx_seq;
	uint64_t ack_sent;
	uint64_t rx_unacked_bytes;
	uint32_t rx_unacked_frames;
	uint64_t last_rx;

	struct conn *conn;    /* the established connection, if any */
	struct conn *dialing; /* dialer: the connection being set up */
	struct loop_timer *liveness;
	struct loop_timer *redial;
	uint64_t backoff_us;

	struct msg_stream *streams; /* both directions */
	struct msg_peer_info info;
};

struct handler_slot {
	struct msg_handler h;
	void *userdata;
	bool used;
};

struct msg {
	struct loop *loop;
	uint32_t node_id;
	uint64_t incarnation;
	bool encrypt;
	struct hs_keys keys;
	uint64_t heartbeat_us, timeout_us, hs_timeout_us, reconnect_min_us, reconnect_max_us;
	uint64_t window;

	struct peer *peers; /* sorted by id */
	size_t n_peers;
	struct peer *self;

	int listen_fd;
	struct loop_io *listen_io;
	struct loop_timer *listen_pause; /* accept() ran out of fds: try again later */
	struct conn *conns; /* every live connection */
	unsigned n_handshaking; /* incoming connections not yet authenticated */
	struct conn *graveyard;
	struct loop_defer *reaper;
	struct loop_defer *local; /* delivers messages sent to this node */

	struct handler_slot handlers[MSG_CHANNELS];
	msg_peer_fn peer_fn;
	void *peer_userdata;
	uint64_t next_stream_id;
	struct msg_stats stats;
};

struct peer *msg_peer_find(struct msg *m, uint32_t id);
/* Handshake done on c (c->peer_hello, c->my_hello): resume the session or
 * start a new one and make c the peer's connection. < 0: drop c. */
int msg_peer_attach(struct peer *p, struct conn *c);
/* c, which belonged to p (established or being dialed), is gone. */
void msg_peer_conn_lost(struct peer *p, struct conn *c, bool was_established);
/* A session frame arrived on p's connection. < 0: protocol violation. */
int msg_peer_on_frame(struct peer *p, const struct wire_hdr *h, const uint8_t *payload, size_t len);
/* Cumulative acknowledgement ack from p. < 0 if it acknowledges frames not
 * (wholly) sent. */
int msg_peer_on_ack(struct peer *p, uint64_t ack);
/* Number, queue and send a frame (consumed, even on failure). */
int msg_peer_queue(struct peer *p, struct frame *f);
/* Note bytes heard from p. */
void msg_peer_heard(struct peer *p);
/* Give up on p's session: MSG_PEER_DOWN, failed messages, ended streams. */
void msg_peer_fail(struct peer *p, int error);

/* ---- streams (stream.c) ---- */

int msg_stream_on_frame(struct peer *p, const struct wire_hdr *h, const uint8_t *payload,
		    size_t len);
/* An END frame of ours was acknowledged. */
void msg_stream_on_end_acked(struct peer *p, uint64_t id);
/* End every stream in list (detached from its peer) with error. */
void msg_streams_fail(struct msg_stream *list, int error);
/* Room in p's window: run blocked writers. */
void msg_streams_writable(struct peer *p);
/* Free every stream in list without callbacks. */
void msg_streams_free(struct msg_stream *list);

#endif

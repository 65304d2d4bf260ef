/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * msg: the node-to-node message layer (Gimli/Gloin of the Dynamic Streams
 * report, section 5). One endpoint per node daemon, driven by its event loop.
 *
 * Messages are reliable and ordered per (source, destination) pair, and each
 * carries a channel (which service handles it) and a type (what it means to
 * that service). Services register a handler per channel and send with
 * msg_send(). Underneath, one authenticated TCP connection per pair of nodes
 * carries sequenced frames with cumulative acknowledgements; a dropped
 * connection is re-established (the node with the lower id dials) and exactly
 * the frames the peer has not received are sent again, so a reset loses and
 * duplicates nothing. Large payloads go through streams, whose writers wait
 * while too many bytes are unacknowledged.
 *
 * Security: every connection starts with a mutual handshake proving both ends
 * know the cluster key (fresh nonces from both sides, MACs over the whole
 * transcript, per-connection keys). By default every frame is then sealed
 * with an AEAD (AES-256-GCM where the CPU has it, else ChaCha20-Poly1305).
 * With encrypt = false, payloads travel in clear and only frame headers carry
 * a MAC: see msg.c for why. A peer without the key, or a frame that fails its
 * check, costs that connection, never the endpoint.
 *
 * Peers: a peer is UP from its first handshake (MSG_PEER_UP) until nothing
 * has been heard from it for peer_timeout_ms (MSG_PEER_DOWN); a brief
 * disconnection in between is invisible. Sending to a node that is not UP
 * fails at once; messages still unacknowledged when their node goes DOWN come
 * back through the channel's failed callback. A node whose daemon restarted
 * comes back with a new incarnation: the old session ends (DOWN, failures)
 * and a new one starts (UP) with fresh sequence numbers.
 *
 * Calling context: everything runs on the loop's thread. Callbacks may call
 * any function here except msg_free(). Pointers handed to callbacks are valid
 * during the call only. Errors are -errno; this module logs at debug level,
 * except refused peers and broken frames, which are logged as warnings.
 */
#ifndef MSG_MSG_H
#define MSG_MSG_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop/loop.h"

struct msg;
struct msg_stream;

#define MSG_KEY_SIZE 32
/* Channels are 0 .. MSG_CHANNELS - 1. */
#define MSG_CHANNELS 256
/* Largest message payload; larger data goes through a stream. */
#define MSG_MAX_MESSAGE (16u << 20)
/* Stream writes are cut into frames of at most this many bytes. */
#define MSG_STREAM_CHUNK (1u << 20)

struct msg_peer_config {
	uint32_t id;
	/* Numeric "a.b.c.d:port" or "[v6addr]:port"; no name lookups. */
	const char *address;
};

struct msg_config {
	uint32_t node_id;
	/* Every node of the cluster, this one included (its address is where we listen). */
	const struct msg_peer_config *peers;
	size_t n_peers;
	uint8_t key[MSG_KEY_SIZE];
	/* Seal every frame with an AEAD (default); false: authentication only. */
	bool encrypt;
	/* A bound, listening TCP socket to accept on instead of binding our own
	 * address; -1 for none. Consumed by msg_new(), even on failure. */
	int listen_fd;
	/* 0 selects the default shown. */
	uint32_t heartbeat_ms;         /* 500: idle connections send a heartbeat this often */
	uint32_t peer_timeout_ms;      /* 5000: silence after which a peer is DOWN */
	uint32_t handshake_timeout_ms; /* 3000 */
	uint32_t reconnect_min_ms;     /* 20: first delay before dialing again */
	uint32_t reconnect_max_ms;     /* 1000: the delay doubles up to this */
	/* Bytes queued or unacknowledged per peer above which stream writers
	 * wait and msg_peer_writable() says no; 0: 16 MiB. */
	uint32_t window;
	/* Identifies this run of the node; 0: random. Must differ after a restart. */
	uint64_t incarnation;
};

#define MSG_CONFIG_INIT { .encrypt = true, .listen_fd = -1 }

enum msg_peer_event {
	MSG_PEER_UP,
	MSG_PEER_DOWN,
};

/* incarnation: the peer's, for UP; the one that ended, for DOWN. */
typedef void (*msg_peer_fn)(struct msg *m, uint32_t node, enum msg_peer_event event,
			    uint64_t incarnation, void *userdata);

/* A service's callbacks on one channel; any may be NULL. userdata is the one
 * given to msg_register(), except for stream_data/stream_end, which get the
 * stream's (see msg_stream_set_userdata()). */
struct msg_handler {
	/* A message arrived from node. */
	void (*recv)(struct msg *m, uint32_t node, uint16_t channel, uint32_t type,
		     const void *data, size_t len, void *userdata);
	/* A message sent on this channel was still unacknowledged when node went
	 * DOWN (error -EHOSTDOWN): node may or may not have processed it. Called
	 * after the MSG_PEER_DOWN event, in sending order. */
	void (*failed)(struct msg *m, uint32_t node, uint16_t channel, uint32_t type,
		       const void *data, size_t len, int error, void *userdata);
	/* node's send window has room again after msg_peer_writable() said 0. */
	void (*writable)(struct msg *m, uint32_t node, void *userdata);
	/* node opened a stream on this channel; data/len is what it passed to
	 * msg_stream_open(). Return < 0 to refuse it (the sender's stream ends with
	 * -ECONNABORTED). The stream is valid until stream_end returns. */
	int (*stream_open)(struct msg_stream *s, uint32_t node, uint32_t type, const void *data,
			   size_t len, void *userdata);
	/* The next bytes of the stream, in order. */
	void (*stream_data)(struct msg_stream *s, const void *data, size_t len, void *userdata);
	/* The stream ended: 0 after all its data, -ECONNABORTED if the sender
	 * aborted, -EHOSTDOWN if the sender went DOWN. The stream is freed after. */
	void (*stream_end)(struct msg_stream *s, int error, void *userdata);
};

/* The config is copied; msg_new() seeds libsodium and starts dialing. Errors:
 * -EINVAL (bad config: duplicate or unparsable peers, no address to listen
 * on, heartbeat not below the peer timeout), -ENOMEM, socket errors. */
int msg_new(struct loop *loop, const struct msg_config *config, struct msg **ret);
/* Closes every connection (trying to send pending acknowledgements first) and
 * frees all; no callback runs. Not from a callback. Returns NULL. */
struct msg *msg_free(struct msg *m);

uint32_t msg_node_id(const struct msg *m);
uint64_t msg_incarnation(const struct msg *m);
/* The local TCP port accepted on, or -errno. */
int msg_local_port(const struct msg *m);

void msg_set_peer_fn(struct msg *m, msg_peer_fn fn, void *userdata);
/* -EBUSY if the channel has a handler, -EINVAL if out of range. h is copied. */
int msg_register(struct msg *m, uint16_t channel, const struct msg_handler *h, void *userdata);
int msg_unregister(struct msg *m, uint16_t channel);

/* Queue a message (copied) for node; it is delivered once, in order, or
 * reported through the channel's failed callback. Sending to this node itself
 * delivers from the loop, later. Never blocks and never waits for the window
 * (see msg_peer_writable()). Errors: -EHOSTUNREACH (node not configured),
 * -EHOSTDOWN (node not UP), -EMSGSIZE, -EINVAL, -ENOMEM. */
int msg_send(struct msg *m, uint32_t node, uint16_t channel, uint32_t type, const void *data,
	     size_t len);
/* As msg_send(), but takes data, a malloc()ed buffer, instead of copying it,
 * and frees it when done. Consumes data even on failure. */
int msg_send_take(struct msg *m, uint32_t node, uint16_t channel, uint32_t type, void *data,
		  size_t len);

/* 1 if node's queued and unacknowledged bytes are below the window, 0 if not
 * (then every channel's writable callback runs once there is room again),
 * -EHOSTUNREACH/-EHOSTDOWN as msg_send(). */
int msg_peer_writable(struct msg *m, uint32_t node);

enum msg_peer_state {
	MSG_PEER_STATE_DOWN,
	MSG_PEER_STATE_UP,
	_MSG_PEER_STATE_MAX,
	_MSG_PEER_STATE_INVALID = -EINVAL,
};

struct msg_peer_info {
	enum msg_peer_state state;
	bool connected;          /* an authenticated connection is up now */
	uint64_t incarnation;    /* the peer's, 0 while DOWN */
	uint64_t queued_bytes;   /* payload bytes queued or unacknowledged */
	uint64_t queued_peak;    /* highest queued_bytes ever */
	uint64_t sent;           /* sequenced frames queued for the peer */
	uint64_t received;       /* sequenced frames accepted from the peer */
	uint64_t retransmitted;  /* frames sent again after a reconnection */
	uint64_t duplicates;     /* frames received twice and dropped */
	uint64_t connections;    /* authenticated connections */
	uint64_t sessions;       /* times the peer came UP */
};

/* -EHOSTUNREACH if node is not configured. */
int msg_peer_get_info(struct msg *m, uint32_t node, struct msg_peer_info *ret);

struct msg_stats {
	uint64_t accepted;      /* incoming TCP connections */
	uint64_t dialed;        /* outgoing connection attempts */
	uint64_t handshakes;    /* handshakes that succeeded */
	uint64_t auth_failures; /* handshakes refused: wrong key, unknown node, replay, ... */
	uint64_t bad_frames;    /* connections dropped for a garbage, oversized or forged frame */
};

void msg_get_stats(const struct msg *m, struct msg_stats *ret);

/*
 * Streams: an ordered byte stream to one node on a channel, for payloads too
 * large to hold in memory. The writer gets -EAGAIN when the node's window is
 * full and its ops->writable runs when it may write again. The receiver's
 * stream_data callback gets the bytes in order, in chunks of at most
 * MSG_STREAM_CHUNK.
 */
struct msg_stream_ops {
	/* Room in the window again after a write returned -EAGAIN. */
	void (*writable)(struct msg_stream *s, void *userdata);
	/* Required. The stream ended: 0 once the receiver has acknowledged
	 * everything after msg_stream_close(); -ECONNABORTED if the receiver
	 * refused or aborted it; -EHOSTDOWN if the node went DOWN. The stream is
	 * freed when done returns. */
	void (*done)(struct msg_stream *s, int error, void *userdata);
};

/* Open a stream; data/len (at most MSG_MAX_MESSAGE, may be empty) goes to the
 * receiver's stream_open. The handle lives until ops->done returns. Errors as
 * msg_send(); -EINVAL for the local node. */
int msg_stream_open(struct msg *m, uint32_t node, uint16_t channel, uint32_t type,
		    const void *data, size_t len, const struct msg_stream_ops *ops, void *userdata,
		    struct msg_stream **ret);
/* Queue all of data (copied) or nothing: -EAGAIN when the window is full
 * (a write into an empty window always succeeds), -EPIPE after close. */
int msg_stream_write(struct msg_stream *s, const void *data, size_t len);
/* No more data; ops->done reports the outcome. */
int msg_stream_close(struct msg_stream *s);
/* Abandon a stream of either side; the other side sees -ECONNABORTED. Frees
 * s at once (from inside stream_open: when it returns), and no done or
 * stream_end callback follows. Does nothing from inside done or stream_end. */
void msg_stream_abort(struct msg_stream *s);

uint32_t msg_stream_node(const struct msg_stream *s);
uint16_t msg_stream_channel(const struct msg_stream *s);
uint32_t msg_stream_type(const struct msg_stream *s);
void *msg_stream_get_userdata(const struct msg_stream *s);
void msg_stream_set_userdata(struct msg_stream *s, void *userdata);

/*
 * Fault injection, for tests: break the connection to node as a network or
 * an attacker would. Every fault makes the receiving end drop the connection;
 * the dialer then reconnects and nothing is lost. -ENOTCONN if no
 * authenticated connection to node is up.
 */
enum msg_fault {
	MSG_FAULT_CUT,      /* shut the TCP connection down now */
	MSG_FAULT_GARBAGE,  /* send random bytes where the next frame starts */
	MSG_FAULT_CORRUPT,  /* flip one bit of the next frame sent */
	MSG_FAULT_OVERSIZE, /* send a frame header announcing more than the maximum */
	_MSG_FAULT_MAX,
	_MSG_FAULT_INVALID = -EINVAL,
};

int msg_fault_inject(struct msg *m, uint32_t node, enum msg_fault fault);

/*
 * Direct data channel (chan.c): one TCP connection between two worker
 * processes for a bulk transfer (a process image streamed from the exporting
 * node's worker to the importing node's worker), outside the message layer
 * and its event loop. The node daemons agree on a one-time transfer key over
 * msg first (msg_chan_key_new() on one side, then msg_send()); with it the
 * receiving worker listens and accepts, the sending worker connects, and a
 * mutual handshake proves to each end that the other knows the key:
 *
 *   S -> R  "GHCH" | u32le version 1 | Ns                         40 bytes
 *   R -> S  Nr | MAC_r = BLAKE2b-256(key; "ghost chan r" | Ns | Nr)  64 bytes
 *   S -> R  MAC_s = BLAKE2b-256(key; "ghost chan s" | Ns | Nr)       32 bytes
 *   session key = BLAKE2b-256(key; "ghost chan k" | Ns | Nr)
 *
 * Ns and Nr are 32 fresh random bytes, so neither side accepts a recorded
 * handshake, and every connection has its own session key.
 *
 * With encryption on, the sender runs msg_chan_seal_pump() and the receiver
 * msg_chan_open_pump(): the data travels as msg records (msg_wire_seal(), the
 * AEAD of the message layer, counter nonces from 0) sealed with the session
 * key, each carrying a 32-byte header (kind: DATA 1 or END 2, then 31 zero
 * bytes) and up to MSG_CHAN_RECORD_MAX data bytes; a sealed END record closes
 * the stream, so truncation, replay, reordering and tampering are all caught.
 * With encryption off, the pumps are not used at all: after the handshake the
 * caller hands the session's socket itself to the engine, which reads or
 * writes the stream in clear, unauthenticated past the handshake.
 *
 * Calling context: every call here blocks (bounded by its timeout, except
 * the pumps), so they belong in a worker or a forked helper, never on an
 * event loop. Errors are -errno; nothing is logged above debug level.
 */
#define MSG_CHAN_KEY_SIZE 32
/* The most data bytes one sealed record carries. */
#define MSG_CHAN_RECORD_MAX (256u << 10)

/* A connected, authenticated channel: a value type, owned by whoever holds it. */
struct msg_chan_session {
	int fd;                         /* blocking, O_CLOEXEC TCP socket, or -1 */
	uint8_t key[MSG_CHAN_KEY_SIZE]; /* session key from the handshake */
};

#define MSG_CHAN_SESSION_INIT { .fd = -1 }

/* Fill key with a new random transfer key (libsodium's randombytes_buf()).
 * Use one key for one transfer. -EIO if libsodium cannot be initialised. */
int msg_chan_key_new(uint8_t key[MSG_CHAN_KEY_SIZE]);

/* Receiver: a listening TCP socket on host, a numeric IPv4 or IPv6 address
 * without brackets or scope (no name lookups), on a port the kernel chooses.
 * The socket is O_CLOEXEC and O_NONBLOCK (msg_chan_accept() polls it); it
 * belongs to the caller, who closes it. Errors: -EINVAL (bad arguments or not
 * a numeric address), socket(), bind() and listen() errors. Nothing is written
 * to the ret_ outputs on failure. */
int msg_chan_listen(const char *host, int *ret_fd, uint16_t *ret_port);

/* Receiver: accept connections on listen_fd (from msg_chan_listen(), or any
 * non-blocking listening TCP socket) until one completes the handshake with
 * key, for at most timeout_ms in all. Handshakes run side by side (up to 16;
 * a new connection then displaces the oldest), so a client that connects and
 * stays silent does not hold up the real sender; connections that fail the
 * handshake (wrong magic or version, wrong key, closed early) are closed,
 * logged at debug level, and accepting goes on. On success *ret receives the
 * session: its fd is a blocking O_CLOEXEC socket, now the caller's (release
 * it with msg_chan_session_release()). listen_fd stays open and the
 * caller's. Errors: -EINVAL, -ETIMEDOUT (no sender completed in time), -EIO
 * (libsodium), accept() errors that are not about a single connection
 * (-EMFILE, -ENFILE, -ENOMEM, ...); *ret is untouched on failure. */
int msg_chan_accept(int listen_fd, const uint8_t key[MSG_CHAN_KEY_SIZE], unsigned timeout_ms,
		    struct msg_chan_session *ret);

/* Sender: connect to host (numeric, as msg_chan_listen()) port and do the
 * handshake with key, for at most timeout_ms in all. On success *ret receives
 * the session (as msg_chan_accept()). Errors: -EINVAL, -EIO, -ECONNREFUSED,
 * -ETIMEDOUT (connection or handshake too slow), -EACCES (the receiver does
 * not know the key), -ECONNRESET (the receiver closed the connection during
 * the handshake, as it does for a version it does not speak), other socket
 * errors; *ret is untouched on failure. The sender is done once it has sent
 * MAC_s; a receiver that still refuses it (only a tampered connection can
 * make it) closes the connection, and the seal pump fails with -EPIPE. */
int msg_chan_connect(const char *host, uint16_t port, const uint8_t key[MSG_CHAN_KEY_SIZE],
		     unsigned timeout_ms, struct msg_chan_session *ret);

/* Close the session's socket (if any) and wipe its key; *s is then
 * MSG_CHAN_SESSION_INIT. Accepts a session that is already released. */
void msg_chan_session_release(struct msg_chan_session *s);

/*
 * The same handshake without blocking, for a caller on an event loop (the
 * node daemon building a direct connection for a dstream): each side is a
 * struct msg_chan_hs, stepped whenever its fd has the events
 * msg_chan_hs_events() names (POLLIN or POLLOUT). The receiver reads exactly
 * the handshake's bytes, as msg_chan_accept() does. No timeout here: the
 * caller bounds it with a timer and frees the handshake.
 */
struct msg_chan_hs;

/* Sender: start connecting to host (numeric) port. Errors: -EINVAL, -EIO,
 * socket() and connect() errors that come at once. */
int msg_chan_hs_connect(const char *host, uint16_t port, const uint8_t key[MSG_CHAN_KEY_SIZE],
			struct msg_chan_hs **ret);
/* Receiver: authenticate fd, a connection accepted from a listening socket
 * (consumed, even on failure; made non-blocking). */
int msg_chan_hs_accept(int fd, const uint8_t key[MSG_CHAN_KEY_SIZE], struct msg_chan_hs **ret);
int msg_chan_hs_fd(const struct msg_chan_hs *hs);
short msg_chan_hs_events(const struct msg_chan_hs *hs);
/* Go as far as the socket allows: 0 while under way (wait for the events
 * again; the fd may change only by completion), 1 once authenticated (*ret
 * gets the session: its fd, now the caller's, stays non-blocking), or the
 * errors of msg_chan_connect() and msg_chan_accept(). After 1 or an error,
 * only msg_chan_hs_free() may follow. */
int msg_chan_hs_step(struct msg_chan_hs *hs, struct msg_chan_session *ret);
/* Closes the socket unless a session took it. NULL ok; returns NULL. */
struct msg_chan_hs *msg_chan_hs_free(struct msg_chan_hs *hs);

/* Sender, encryption on: read in_fd (blocking, any kind of fd) until end of
 * file, cut the bytes into records of at most MSG_CHAN_RECORD_MAX data bytes,
 * seal each with the session key and write it to the session's socket; then
 * a sealed END record. A record goes out when it is full or when in_fd has
 * nothing more to read at that moment, so a slow writer is not held back.
 * There is no timeout: a caller that gives up kills the helper running the
 * pump. Neither in_fd nor the session is closed. Returns 0 once END is
 * written (handed to the kernel: the receiver's outcome comes back another
 * way), or -EINVAL, -ENOMEM, -EIO (cipher failure), -errno from reading
 * in_fd, -EPIPE when the receiver is gone (EPIPE or ECONNRESET on the
 * socket; never SIGPIPE), -errno for other socket errors. */
int msg_chan_seal_pump(const struct msg_chan_session *s, int in_fd);

/* Receiver, encryption on: read sealed records from the session's socket,
 * check and open each, and write its data to out_fd (blocking) until the END
 * record; 0 then. END must be empty and last: bytes already waiting behind it
 * are an error, and nothing after it is ever read. Only records that passed
 * their check are written out, so on error out_fd has received a prefix of
 * the stream and nothing more; the caller closes it, and a reader at its
 * other end sees a truncated stream. No timeout (as msg_chan_seal_pump()).
 * Neither out_fd nor the session is closed. Errors: -EINVAL, -ENOMEM, -EIO,
 * -EBADMSG (a record is malformed, fails its check, or comes out of order,
 * replayed, after END or with an unknown kind), -ECONNRESET (the stream ends,
 * cleanly or not, before END: truncated), -EPIPE (out_fd's reader is gone;
 * SIGPIPE is held blocked while the pump runs and one it caused is
 * discarded), -errno from the socket or from writing out_fd. */
int msg_chan_open_pump(const struct msg_chan_session *s, int out_fd);

#endif

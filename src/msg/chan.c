/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The direct data channel between two workers: a TCP connection
 * authenticated with a one-time transfer key, and the pumps that seal a byte
 * stream into msg records on one end and check and open them on the other.
 * Everything blocks; the handshake is bounded by the caller's timeout.
 *
 * Handshake (msg.h has the messages), per connection:
 *
 *   sender:    CONNECTING --connected, send hello--> REPLY_WAIT
 *              REPLY_WAIT --MAC_r ok, send MAC_s--> DONE (session)
 *   receiver:  (accepted) HELLO_WAIT --hello ok, send Nr | MAC_r--> MAC_WAIT
 *              MAC_WAIT --MAC_s ok--> DONE (session)
 *   any state --bad magic or version, bad MAC, EOF, error, deadline--> CLOSED
 *   receiver:  HELLO_WAIT or MAC_WAIT --too many handshakes, oldest--> CLOSED
 *
 * Invariants:
 *   1. A side returns a session only after checking the other side's MAC
 *      over both fresh nonces (the sender MAC_r, the receiver MAC_s).
 *   2. The receiver reads exactly the handshake's bytes and never past
 *      MAC_s, so the records the sender writes right after stay queued in
 *      the socket for the open pump.
 *   3. Every wait of the handshake is bounded by the caller's deadline, and
 *      the receiver runs its handshakes side by side, so no single client
 *      can hold up the others.
 *   4. Records of a session are sealed and opened with one cipher each,
 *      counter from 0; the open pump writes out a record's data only after
 *      the record passed its check, so out_fd gets a verified prefix.
 *
 *   transition                   function
 *   CONNECTING -> REPLY_WAIT     msg_chan_connect
 *   REPLY_WAIT -> DONE           msg_chan_connect
 *   HELLO_WAIT -> MAC_WAIT       on_hello
 *   MAC_WAIT -> DONE             on_mac
 *   -> CLOSED (receiver)         msg_chan_accept
 *
 * Records: msg_wire_seal() needs a body of at least WIRE_HDR_SIZE bytes, so
 * each record's body is a 32-byte header (kind, then 31 zero bytes checked
 * on open) followed by the data. The seal pump reads straight into the
 * record buffer behind that header and seals in place.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX "msg"
#include "msg/msg-int.h"
#include "base/clock.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/banned.h"

#define CHAN_VERSION 1
#define CHAN_NONCE_SIZE 32
#define CHAN_MAC_SIZE 32
#define CHAN_HELLO_SIZE (4 + 4 + CHAN_NONCE_SIZE)
#define CHAN_REPLY_SIZE (CHAN_NONCE_SIZE + CHAN_MAC_SIZE)
/* Handshakes the receiver runs at once; a new connection evicts the oldest. */
#define CHAN_PENDING_MAX 16

#define CHAN_HDR_SIZE WIRE_HDR_SIZE
/* Where a record's data starts in its buffer: length field, then header. */
#define CHAN_DATA_OFF (WIRE_LEN_SIZE + CHAN_HDR_SIZE)
#define CHAN_REC_SIZE (CHAN_DATA_OFF + MSG_CHAN_RECORD_MAX + WIRE_TAG_SIZE)

enum chan_kind {
	CHAN_DATA = 1,
	CHAN_END = 2,
};

_Static_assert(MSG_CHAN_KEY_SIZE == WIRE_KEY_SIZE, "key size");
_Static_assert(MSG_CHAN_KEY_SIZE >= crypto_generichash_KEYBYTES_MIN &&
		       MSG_CHAN_KEY_SIZE <= crypto_generichash_KEYBYTES_MAX,
	       "key size");
_Static_assert(CHAN_HDR_SIZE + MSG_CHAN_RECORD_MAX + WIRE_TAG_SIZE <= WIRE_MAX_LEN,
	       "record size");

static const uint8_t chan_magic[4] = { 'G', 'H', 'C', 'H' };

/* ---- time ---- */

static uint64_t deadline_after(unsigned timeout_ms)
{
	return now_ns() + (uint64_t)timeout_ms * 1000000u;
}

/* Milliseconds left until deadline, rounded up, for poll(); 0 once past it. */
static int remaining_ms(uint64_t deadline)
{
	uint64_t now = now_ns(), ms;

	if (now >= deadline)
		return 0;
	ms = (deadline - now + 999999u) / 1000000u;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* ---- sockets ---- */

static int parse_host(const char *host, uint16_t port, struct sockaddr_storage *ss,
		      socklen_t *ret_len)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*ret_len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*ret_len = sizeof(*sin6);
		return 0;
	}
	return -EINVAL;
}

static void format_address(const struct sockaddr_storage *ss, char *out, size_t size)
{
	char host[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(out, size, "%s:%u", host, ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(out, size, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else {
		snprintf(out, size, "?");
	}
}

static void set_nodelay(int fd)
{
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int set_blocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0)
		return -errno;
	if ((flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* Wait until fd has one of events, or deadline: -ETIMEDOUT. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int r = poll(&p, 1, remaining_ms(deadline));

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r > 0)
			return 0;
		if (now_ns() >= deadline)
			return -ETIMEDOUT;
	}
}

/* Handshake I/O on a non-blocking socket: move bytes *off up to len of p
 * without waiting. 1 once all are moved, 0 when the socket would block,
 * -errno; an early end of stream is -ECONNRESET. */
static int send_some(int fd, const uint8_t *p, size_t *off, size_t len)
{
	while (*off < len) {
		ssize_t n = send(fd, p + *off, len - *off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		*off += (size_t)n;
	}
	return 1;
}

static int recv_some(int fd, uint8_t *p, size_t *off, size_t len)
{
	while (*off < len) {
		ssize_t n = recv(fd, p + *off, len - *off, MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		if (n == 0)
			return -ECONNRESET;
		*off += (size_t)n;
	}
	return 1;
}

/* The same, waiting as needed, bounded by deadline. */
static int send_until(int fd, const uint8_t *p, size_t len, uint64_t deadline)
{
	size_t off = 0;
	int r;

	while ((r = send_some(fd, p, &off, len)) == 0) {
		r = wait_fd(fd, POLLOUT, deadline);
		if (r < 0)
			return r;
	}
	return r < 0 ? r : 0;
}

static int recv_until(int fd, uint8_t *p, size_t len, uint64_t deadline)
{
	size_t off = 0;
	int r;

	while ((r = recv_some(fd, p, &off, len)) == 0) {
		r = wait_fd(fd, POLLIN, deadline);
		if (r < 0)
			return r;
	}
	return r < 0 ? r : 0;
}

/* ---- handshake ---- */

/* BLAKE2b-256 keyed with the transfer key over label | Ns | Nr. */
static void chan_mac(const uint8_t key[MSG_CHAN_KEY_SIZE], const char *label,
		     const uint8_t ns[CHAN_NONCE_SIZE], const uint8_t nr[CHAN_NONCE_SIZE],
		     uint8_t out[CHAN_MAC_SIZE])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, key, MSG_CHAN_KEY_SIZE, CHAN_MAC_SIZE);
	crypto_generichash_update(&st, (const uint8_t *)label, strlen(label));
	crypto_generichash_update(&st, ns, CHAN_NONCE_SIZE);
	crypto_generichash_update(&st, nr, CHAN_NONCE_SIZE);
	crypto_generichash_final(&st, out, CHAN_MAC_SIZE);
	sodium_memzero(&st, sizeof(st));
}

#define LABEL_R "ghost chan r"
#define LABEL_S "ghost chan s"
#define LABEL_K "ghost chan k"

int msg_chan_key_new(uint8_t key[MSG_CHAN_KEY_SIZE])
{
	if (!key)
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;
	randombytes_buf(key, MSG_CHAN_KEY_SIZE);
	return 0;
}

int msg_chan_listen(const char *host, int *ret_fd, uint16_t *ret_port)
{
	_cleanup_close_ int fd = -1;
	struct sockaddr_storage ss;
	socklen_t len;
	int r, one = 1;

	if (!host || !ret_fd || !ret_port)
		return -EINVAL;
	r = parse_host(host, 0, &ss, &len);
	if (r < 0)
		return r;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		return -errno;
	if (bind(fd, (const struct sockaddr *)&ss, len) < 0)
		return -errno;
	if (listen(fd, 16) < 0)
		return -errno;
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	*ret_port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						  : ((struct sockaddr_in6 *)&ss)->sin6_port);
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int msg_chan_connect(const char *host, uint16_t port, const uint8_t key[MSG_CHAN_KEY_SIZE],
		     unsigned timeout_ms, struct msg_chan_session *ret)
{
	uint8_t hello[CHAN_HELLO_SIZE], reply[CHAN_REPLY_SIZE], mac[CHAN_MAC_SIZE];
	uint8_t ns[CHAN_NONCE_SIZE], session_key[MSG_CHAN_KEY_SIZE];
	uint64_t deadline = deadline_after(timeout_ms);
	_cleanup_close_ int fd = -1;
	struct sockaddr_storage ss;
	socklen_t len, errlen;
	int r, err;

	if (!host || port == 0 || !key || !ret)
		return -EINVAL;
	r = parse_host(host, port, &ss, &len);
	if (r < 0)
		return r;
	if (sodium_init() < 0)
		return -EIO;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	set_nodelay(fd);
	/* CONNECTING */
	if (connect(fd, (const struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS &&
	    errno != EINTR)
		return -errno;
	r = wait_fd(fd, POLLOUT, deadline);
	if (r < 0)
		return r;
	errlen = sizeof(err);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0)
		return -errno;
	if (err != 0)
		return -err;

	randombytes_buf(ns, sizeof(ns));
	memcpy(hello, chan_magic, sizeof(chan_magic));
	put_le32(hello + 4, CHAN_VERSION);
	memcpy(hello + 8, ns, sizeof(ns));
	r = send_until(fd, hello, sizeof(hello), deadline);
	if (r < 0)
		return r;

	/* REPLY_WAIT */
	r = recv_until(fd, reply, sizeof(reply), deadline);
	if (r < 0)
		return r;
	chan_mac(key, LABEL_R, ns, reply, mac);
	if (sodium_memcmp(mac, reply + CHAN_NONCE_SIZE, CHAN_MAC_SIZE) != 0)
		return log_debug_errno(-EACCES, "channel to '%s:%u' failed authentication", host,
				       port);
	chan_mac(key, LABEL_S, ns, reply, mac);
	r = send_until(fd, mac, sizeof(mac), deadline);
	if (r < 0)
		return r;
	r = set_blocking(fd);
	if (r < 0)
		return r;

	/* DONE */
	chan_mac(key, LABEL_K, ns, reply, session_key);
	ret->fd = TAKE_FD(fd);
	memcpy(ret->key, session_key, sizeof(session_key));
	sodium_memzero(session_key, sizeof(session_key));
	return 0;
}

/* A connection the receiver is authenticating. */
struct pending {
	int fd;
	bool mac_wait; /* false: HELLO_WAIT, true: MAC_WAIT */
	size_t have;   /* bytes of the awaited message in in[] */
	uint8_t in[CHAN_HELLO_SIZE];
	uint8_t ns[CHAN_NONCE_SIZE];
	uint8_t nr[CHAN_NONCE_SIZE];
	char remote[INET6_ADDRSTRLEN + 16];
};

static int on_hello(struct pending *p, const uint8_t key[MSG_CHAN_KEY_SIZE])
{
	uint8_t reply[CHAN_REPLY_SIZE];
	ssize_t n;

	if (memcmp(p->in, chan_magic, sizeof(chan_magic)) != 0)
		return -EPROTO;
	if (get_le32(p->in + 4) != CHAN_VERSION)
		return -EPROTONOSUPPORT;
	memcpy(p->ns, p->in + 8, CHAN_NONCE_SIZE);
	randombytes_buf(p->nr, CHAN_NONCE_SIZE);
	memcpy(reply, p->nr, CHAN_NONCE_SIZE);
	chan_mac(key, LABEL_R, p->ns, p->nr, reply + CHAN_NONCE_SIZE);
	/* A fresh connection's send buffer is empty: the reply goes out whole. */
	do
		n = send(p->fd, reply, sizeof(reply), MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n != sizeof(reply))
		return -EIO;
	p->mac_wait = true;
	return 0;
}

static int on_mac(struct pending *p, const uint8_t key[MSG_CHAN_KEY_SIZE],
		  uint8_t ret_key[MSG_CHAN_KEY_SIZE])
{
	uint8_t mac[CHAN_MAC_SIZE];

	chan_mac(key, LABEL_S, p->ns, p->nr, mac);
	if (sodium_memcmp(mac, p->in, CHAN_MAC_SIZE) != 0)
		return -EACCES;
	chan_mac(key, LABEL_K, p->ns, p->nr, ret_key);
	return 1;
}

/* Read what p's socket has; 0: more to come, 1: authenticated (session key
 * in ret_key), < 0: drop p. Never reads past the awaited message. */
static int pending_step(struct pending *p, const uint8_t key[MSG_CHAN_KEY_SIZE],
			uint8_t ret_key[MSG_CHAN_KEY_SIZE])
{
	size_t need = p->mac_wait ? CHAN_MAC_SIZE : CHAN_HELLO_SIZE;
	int r = recv_some(p->fd, p->in, &p->have, need);

	if (r <= 0)
		return r;
	p->have = 0;
	if (!p->mac_wait)
		return on_hello(p, key);
	return on_mac(p, key, ret_key);
}

static void pending_drop(struct pending *p, int error, const char *why)
{
	log_debug_errno(error, "channel connection from '%s' closed: %s", p->remote, why);
	p->fd = safe_close(p->fd);
	sodium_memzero(p, sizeof(*p));
}

/* Take one connection off listen_fd into pend[]. 0 also when there was none. */
static int accept_one(int listen_fd, struct pending *pend, size_t *n_pend)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct pending *p;
	int fd;

	fd = accept4(listen_fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		switch (errno) {
		/* Nothing there, or trouble with that one connection only (accept(2)). */
		case EAGAIN:
		case EINTR:
		case ECONNABORTED:
		case EPROTO:
		case EPERM:
		case ENETDOWN:
		case ENOPROTOOPT:
		case EHOSTDOWN:
		case ENONET:
		case EHOSTUNREACH:
		case EOPNOTSUPP:
		case ENETUNREACH:
			return 0;
		default:
			return -errno;
		}
	}
	if (*n_pend == CHAN_PENDING_MAX) {
		pending_drop(&pend[0], -EBUSY, "too many handshakes at once");
		memmove(pend, pend + 1, (CHAN_PENDING_MAX - 1) * sizeof(*pend));
		(*n_pend)--;
	}
	p = &pend[(*n_pend)++];
	memset(p, 0, sizeof(*p));
	p->fd = fd;
	format_address(&ss, p->remote, sizeof(p->remote));
	set_nodelay(fd);
	return 0;
}

int msg_chan_accept(int listen_fd, const uint8_t key[MSG_CHAN_KEY_SIZE], unsigned timeout_ms,
		    struct msg_chan_session *ret)
{
	struct pending pend[CHAN_PENDING_MAX];
	struct pollfd pfd[1 + CHAN_PENDING_MAX];
	uint8_t session_key[MSG_CHAN_KEY_SIZE];
	uint64_t deadline = deadline_after(timeout_ms);
	size_t n_pend = 0;
	int r, won_fd = -1;

	if (listen_fd < 0 || !key || !ret)
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;
	for (;;) {
		size_t kept = 0;

		pfd[0] = (struct pollfd){ .fd = listen_fd, .events = POLLIN };
		for (size_t i = 0; i < n_pend; i++)
			pfd[1 + i] = (struct pollfd){ .fd = pend[i].fd, .events = POLLIN };
		r = poll(pfd, 1 + n_pend, remaining_ms(deadline));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		for (size_t i = 0; i < n_pend; i++) {
			if (won_fd < 0 && pfd[1 + i].revents) {
				r = pending_step(&pend[i], key, session_key);
				if (r > 0) {
					won_fd = pend[i].fd;
					log_debug("channel connection from '%s' authenticated",
						  pend[i].remote);
					sodium_memzero(&pend[i], sizeof(pend[i]));
					continue;
				}
				if (r < 0) {
					pending_drop(&pend[i], r, "handshake failed");
					continue;
				}
			}
			if (kept != i)
				pend[kept] = pend[i];
			kept++;
		}
		n_pend = kept;
		if (won_fd >= 0) {
			r = 0;
			break;
		}
		if (pfd[0].revents) {
			r = accept_one(listen_fd, pend, &n_pend);
			if (r < 0)
				break;
		}
		if (now_ns() >= deadline) {
			r = -ETIMEDOUT;
			break;
		}
	}
	for (size_t i = 0; i < n_pend; i++)
		pending_drop(&pend[i], r < 0 ? r : -ECANCELED,
			     r < 0 ? "giving up" : "another sender authenticated");
	if (r >= 0) {
		r = set_blocking(won_fd);
		if (r < 0)
			won_fd = safe_close(won_fd);
	}
	if (r >= 0) {
		ret->fd = won_fd;
		memcpy(ret->key, session_key, sizeof(session_key));
	}
	sodium_memzero(session_key, sizeof(session_key));
	return r;
}

/* ---- the handshake without blocking, for an event loop ---- */

enum hs_state {
	HS_CONNECTING, /* sender: waiting for the TCP connection */
	HS_SENDING,    /* sender: hello, or MAC_s, partly written */
	HS_REPLY_WAIT, /* sender: reading Nr | MAC_r */
	HS_RECEIVING,  /* receiver: the pending struct reads hello, then MAC_s */
	HS_DONE,
	HS_FAILED,
};

struct msg_chan_hs {
	enum hs_state state;
	bool sender;
	int fd;
	uint8_t key[MSG_CHAN_KEY_SIZE];
	/* sender */
	uint8_t ns[CHAN_NONCE_SIZE];
	uint8_t out[CHAN_HELLO_SIZE];
	size_t out_len, out_off;
	bool mac_sent;      /* out holds MAC_s: DONE once it is written */
	uint8_t reply[CHAN_REPLY_SIZE];
	size_t have;
	uint8_t session_key[MSG_CHAN_KEY_SIZE];
	/* receiver */
	struct pending p;
};

int msg_chan_hs_connect(const char *host, uint16_t port, const uint8_t key[MSG_CHAN_KEY_SIZE],
			struct msg_chan_hs **ret)
{
	struct msg_chan_hs *hs;
	struct sockaddr_storage ss;
	socklen_t len;
	int r;

	if (!host || port == 0 || !key || !ret)
		return -EINVAL;
	r = parse_host(host, port, &ss, &len);
	if (r < 0)
		return r;
	if (sodium_init() < 0)
		return -EIO;
	hs = calloc(1, sizeof(*hs));
	if (!hs)
		return -ENOMEM;
	hs->sender = true;
	hs->p.fd = -1;
	memcpy(hs->key, key, MSG_CHAN_KEY_SIZE);
	hs->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (hs->fd < 0) {
		r = -errno;
		msg_chan_hs_free(hs);
		return r;
	}
	set_nodelay(hs->fd);
	if (connect(hs->fd, (const struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS &&
	    errno != EINTR) {
		r = -errno;
		msg_chan_hs_free(hs);
		return r;
	}
	hs->state = HS_CONNECTING;
	*ret = hs;
	return 0;
}

int msg_chan_hs_accept(int fd, const uint8_t key[MSG_CHAN_KEY_SIZE], struct msg_chan_hs **ret)
{
	struct msg_chan_hs *hs;
	int flags;

	if (fd < 0 || !key || !ret) {
		safe_close(fd);
		return -EINVAL;
	}
	if (sodium_init() < 0) {
		safe_close(fd);
		return -EIO;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)) {
		int r = -errno;

		safe_close(fd);
		return r;
	}
	hs = calloc(1, sizeof(*hs));
	if (!hs) {
		safe_close(fd);
		return -ENOMEM;
	}
	memcpy(hs->key, key, MSG_CHAN_KEY_SIZE);
	hs->fd = -1;
	hs->p.fd = fd;
	set_nodelay(fd);
	hs->state = HS_RECEIVING;
	*ret = hs;
	return 0;
}

int msg_chan_hs_fd(const struct msg_chan_hs *hs)
{
	return hs->sender ? hs->fd : hs->p.fd;
}

short msg_chan_hs_events(const struct msg_chan_hs *hs)
{
	return hs->state == HS_CONNECTING || hs->state == HS_SENDING ? POLLOUT : POLLIN;
}

/* Write what is left of out[]; 1 once all of it is written, 0 if the socket is full. */
static int hs_flush(struct msg_chan_hs *hs)
{
	return send_some(hs->fd, hs->out, &hs->out_off, hs->out_len);
}

static int hs_sender_step(struct msg_chan_hs *hs)
{
	uint8_t mac[CHAN_MAC_SIZE];
	socklen_t errlen;
	int r, err;

	switch (hs->state) {
	case HS_CONNECTING:
		errlen = sizeof(err);
		if (getsockopt(hs->fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0)
			return -errno;
		if (err == EINPROGRESS || err == EALREADY)
			return 0;
		if (err != 0)
			return -err;
		{
			struct pollfd p = { .fd = hs->fd, .events = POLLOUT };

			/* Still connecting when SO_ERROR is 0 and the socket is not writable. */
			if (poll(&p, 1, 0) <= 0)
				return 0;
		}
		randombytes_buf(hs->ns, sizeof(hs->ns));
		memcpy(hs->out, chan_magic, sizeof(chan_magic));
		put_le32(hs->out + 4, CHAN_VERSION);
		memcpy(hs->out + 8, hs->ns, sizeof(hs->ns));
		hs->out_len = CHAN_HELLO_SIZE;
		hs->out_off = 0;
		hs->state = HS_SENDING;
		/* fall through */
	case HS_SENDING:
		r = hs_flush(hs);
		if (r <= 0)
			return r;
		if (hs->mac_sent) {
			hs->state = HS_DONE;
			return 1;
		}
		hs->state = HS_REPLY_WAIT;
		/* fall through */
	case HS_REPLY_WAIT:
		r = recv_some(hs->fd, hs->reply, &hs->have, sizeof(hs->reply));
		if (r <= 0)
			return r;
		chan_mac(hs->key, LABEL_R, hs->ns, hs->reply, mac);
		if (sodium_memcmp(mac, hs->reply + CHAN_NONCE_SIZE, CHAN_MAC_SIZE) != 0)
			return log_debug_errno(-EACCES, "channel peer failed authentication");
		chan_mac(hs->key, LABEL_S, hs->ns, hs->reply, hs->out);
		chan_mac(hs->key, LABEL_K, hs->ns, hs->reply, hs->session_key);
		hs->out_len = CHAN_MAC_SIZE;
		hs->out_off = 0;
		hs->mac_sent = true;
		hs->state = HS_SENDING;
		r = hs_flush(hs);
		if (r <= 0)
			return r;
		hs->state = HS_DONE;
		return 1;
	default:
		return -EINVAL;
	}
}

int msg_chan_hs_step(struct msg_chan_hs *hs, struct msg_chan_session *ret)
{
	int r;

	if (!hs || !ret)
		return -EINVAL;
	if (hs->state == HS_FAILED || hs->state == HS_DONE)
		return -EINVAL;
	if (hs->sender) {
		r = hs_sender_step(hs);
		if (r > 0) {
			ret->fd = TAKE_FD(hs->fd);
			memcpy(ret->key, hs->session_key, MSG_CHAN_KEY_SIZE);
		}
	} else {
		uint8_t session_key[MSG_CHAN_KEY_SIZE];

		/* The receiver's steps are those of msg_chan_accept(): exactly
		 * the handshake's bytes are read, never what follows MAC_s. */
		r = pending_step(&hs->p, hs->key, session_key);
		if (r > 0) {
			ret->fd = TAKE_FD(hs->p.fd);
			memcpy(ret->key, session_key, MSG_CHAN_KEY_SIZE);
			hs->state = HS_DONE;
		}
		sodium_memzero(session_key, sizeof(session_key));
	}
	if (r < 0)
		hs->state = HS_FAILED;
	return r;
}

struct msg_chan_hs *msg_chan_hs_free(struct msg_chan_hs *hs)
{
	if (!hs)
		return NULL;
	safe_close(hs->fd);
	safe_close(hs->p.fd);
	sodium_memzero(hs, sizeof(*hs));
	free(hs);
	return NULL;
}

void msg_chan_session_release(struct msg_chan_session *s)
{
	if (!s)
		return;
	s->fd = safe_close(s->fd);
	sodium_memzero(s->key, sizeof(s->key));
}

/* ---- pumps ---- */

/* Write all of p to a socket, waiting out a full buffer; a vanished peer is
 * -EPIPE, without SIGPIPE. */
static int send_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EPIPE || errno == ECONNRESET)
				return -EPIPE;
			if (errno != EAGAIN)
				return -errno;
			(void)poll(&(struct pollfd){ .fd = fd, .events = POLLOUT }, 1, -1);
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static bool readable_now(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

/* Read up to max bytes of fd into p: until p is full, end of file, or fd has
 * nothing more for now after something was read. */
static int fill(int fd, uint8_t *p, size_t max, size_t *ret_n, bool *ret_eof)
{
	size_t n = 0;

	*ret_eof = false;
	while (n < max) {
		ssize_t k = read(fd, p + n, max - n);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			if (n > 0)
				break;
			(void)poll(&(struct pollfd){ .fd = fd, .events = POLLIN }, 1, -1);
			continue;
		}
		if (k == 0) {
			*ret_eof = true;
			break;
		}
		n += (size_t)k;
		if (n < max && !readable_now(fd))
			break;
	}
	*ret_n = n;
	return 0;
}

/* Seal rec (n data bytes at CHAN_DATA_OFF) as a record of kind, in place,
 * and send it. */
static int seal_send(struct wire_cipher *c, int fd, uint8_t *rec, enum chan_kind kind, size_t n)
{
	size_t body = CHAN_HDR_SIZE + n;
	int r;

	rec[WIRE_LEN_SIZE] = (uint8_t)kind;
	memset(rec + WIRE_LEN_SIZE + 1, 0, CHAN_HDR_SIZE - 1);
	r = msg_wire_seal(c, rec + WIRE_LEN_SIZE, body, rec);
	if (r < 0)
		return r;
	return send_all(fd, rec, msg_wire_overhead(c) + body);
}

int msg_chan_seal_pump(const struct msg_chan_session *s, int in_fd)
{
	struct wire_cipher c;
	bool eof = false;
	uint8_t *rec;
	int r;

	if (!s || s->fd < 0 || in_fd < 0)
		return -EINVAL;
	r = msg_wire_cipher_init(&c, true, s->key);
	if (r < 0)
		return r;
	rec = malloc(CHAN_REC_SIZE);
	if (!rec) {
		r = -ENOMEM;
		goto wipe;
	}
	while (!eof) {
		size_t n = 0;

		r = fill(in_fd, rec + CHAN_DATA_OFF, MSG_CHAN_RECORD_MAX, &n, &eof);
		if (r < 0)
			goto out;
		if (n > 0) {
			r = seal_send(&c, s->fd, rec, CHAN_DATA, n);
			if (r < 0)
				goto out;
		}
	}
	r = seal_send(&c, s->fd, rec, CHAN_END, 0);
out:
	free(rec);
wipe:
	msg_wire_cipher_wipe(&c);
	return r;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/* Read, check and deliver one record: 0 after DATA, 1 after END. */
static int open_one(struct wire_cipher *c, int fd, uint8_t *rec, int out_fd)
{
	uint8_t *body, peek;
	size_t len, n;
	ssize_t k;

	k = read_full(fd, rec, WIRE_LEN_SIZE);
	if (k < 0)
		return (int)k;
	if (k < WIRE_LEN_SIZE)
		return -ECONNRESET;
	len = get_le32(rec);
	if (len < CHAN_HDR_SIZE + WIRE_TAG_SIZE || len > CHAN_REC_SIZE - WIRE_LEN_SIZE)
		return -EBADMSG;
	k = read_full(fd, rec + WIRE_LEN_SIZE, len);
	if (k < 0)
		return (int)k;
	if ((size_t)k < len)
		return -ECONNRESET;
	if (msg_wire_open(c, rec, WIRE_LEN_SIZE + len, &body, &n) < 0)
		return -EBADMSG;
	if (n < CHAN_HDR_SIZE || !all_zero(body + 1, CHAN_HDR_SIZE - 1))
		return -EBADMSG;
	switch (body[0]) {
	case CHAN_DATA:
		if (n == CHAN_HDR_SIZE)
			return -EBADMSG;
		return write_full(out_fd, body + CHAN_HDR_SIZE, n - CHAN_HDR_SIZE);
	case CHAN_END:
		if (n != CHAN_HDR_SIZE)
			return -EBADMSG;
		/* END is last: anything already queued behind it is an error. */
		do
			k = recv(fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT);
		while (k < 0 && errno == EINTR);
		if (k > 0)
			return -EBADMSG;
		return 1;
	default:
		return -EBADMSG;
	}
}

int msg_chan_open_pump(const struct msg_chan_session *s, int out_fd)
{
	sigset_t pipe_set, old;
	struct wire_cipher c;
	uint8_t *rec;
	int r;

	if (!s || s->fd < 0 || out_fd < 0)
		return -EINVAL;
	r = msg_wire_cipher_init(&c, true, s->key);
	if (r < 0)
		return r;
	rec = malloc(CHAN_REC_SIZE);
	if (!rec) {
		r = -ENOMEM;
		goto wipe;
	}
	/* out_fd may be a pipe or socket: a vanished reader must give EPIPE,
	 * not kill the process. */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	r = -pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	if (r < 0)
		goto out;
	do
		r = open_one(&c, s->fd, rec, out_fd);
	while (r == 0);
	if (r > 0)
		r = 0;
	if (r == -EPIPE && !sigismember(&old, SIGPIPE)) {
		/* Discard the SIGPIPE we caused before unblocking it. */
		const struct timespec zero = { 0, 0 };

		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
out:
	free(rec);
wipe:
	msg_wire_cipher_wipe(&c);
	return r;
}

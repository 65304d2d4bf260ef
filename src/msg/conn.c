/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One TCP connection to a peer: non-blocking connect or accept, the handshake
 * records (handshake.c decides what they mean), then sealed frames both ways.
 * A connection is disposable: whatever it carried that was not acknowledged
 * is still in the peer's queue (msg.c) and goes out again on the next one.
 *
 *            msg_conn_dial                     msg_conn_accept
 *                  |                                 |
 *                  v                                 v
 *             CONNECTING --connected--> handshake states (handshake.c)
 *                  |                                 |
 *                  |                         both MACs checked
 *                  |                                 v
 *                  |                            ESTABLISHED
 *                  |                                 |
 *                  +---------------------------------+--> CLOSED --reaper--> freed
 *          connect error, EOF, read/write error, bad record, handshake or
 *          heartbeat timeout, replaced by a newer connection, fault, msg_free
 *
 * Invariants:
 *   1. Records are parsed in order and a record is used only once whole; its
 *      length field is checked as soon as it is in, before the buffer grows
 *      for it: exactly the one length each handshake state expects, at most
 *      WIRE_MAX_LEN afterwards.
 *   2. In ESTABLISHED every record goes through msg_wire_open() before anything
 *      else looks at it; one that fails closes the connection.
 *   3. The write queue (segs) only ever holds whole records, so a fault or a
 *      close never leaves a half record that a later one could complete, and
 *      c->tx_next walks the peer's queue in sequence order. The records of
 *      one frame are consecutive; the receiver reassembles them per
 *      connection, so a frame cut by a reconnection is simply sent again.
 *   4. A frame's memory is referenced by segs (zero-copy payloads) only until
 *      its last byte is written, and an acknowledgement covering a frame not
 *      yet wholly written is a protocol error (msg_conn_references), so no
 *      frame is freed while in use.
 *   5. Once CLOSED, a connection does no I/O and runs no callback; its memory
 *      lives until the reaper, so code up the stack may still test c->state.
 *
 *   transition                  function
 *   -> CONNECTING               msg_conn_dial
 *   CONNECTING -> HELLO_SENT    on_connected (msg_hs_start)
 *   -> HELLO_WAIT               msg_conn_accept
 *   handshake -> ESTABLISHED    msg_conn_establish (from handshake.c)
 *   any -> CLOSED               msg_conn_close
 */
#include <assert.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#define LOG_PREFIX "msg"
#include "msg/msg-int.h"
#include "base/log.h"
#include "base/banned.h"

/* Read buffer size while authenticated, and the most bytes read per wakeup. */
#define IN_SIZE (256u << 10)
#define READ_BUDGET (8u << 20)
/* Stop encoding frames once this much is ready to write. */
#define FILL_TARGET (256u << 10)
/* Encrypted frames are cut into records of at most this much payload. */
#define REC_CHUNK (256u << 10)
/* In plain mode, payloads from this size on are written from the frame itself. */
#define ZERO_COPY_MIN (16u << 10)
#define WRITE_BUDGET (8u << 20)
/* Acknowledge after this much unacknowledged input, or after ACK_DELAY_US. */
#define ACK_BYTES (256u << 10)
#define ACK_FRAMES 64
#define ACK_DELAY_US 2000
/* Incoming connections still in their handshake; more are closed at once. */
#define MAX_HANDSHAKING 64

static void on_io(struct loop_io *io, int fd, unsigned events, void *userdata);
static void on_timer(struct loop_timer *t, void *userdata);
static void on_ack_timer(struct loop_timer *t, void *userdata);
static void on_flush(struct loop_defer *d, void *userdata);

static const char *peer_name(const struct conn *c, char *buf, size_t size)
{
	if (c->peer)
		snprintf(buf, size, "node %u (%s)", c->peer->id, c->remote);
	else
		snprintf(buf, size, "'%s'", c->remote);
	return buf;
}

static void format_addr(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, size, "%s:%u", host, ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, size, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else {
		snprintf(buf, size, "?");
	}
}

static int conn_new(struct msg *m, int fd, bool dialer, struct conn **ret)
{
	struct conn *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->msg = m;
	c->fd = fd;
	c->dialer = dialer;
	c->fault = -1;
	c->state = dialer ? CONN_CONNECTING : CONN_HELLO_WAIT;
	r = loop_io_new(m->loop, fd, dialer ? LOOP_WRITE : LOOP_READ, on_io, c, &c->io);
	if (r >= 0)
		r = loop_timer_new(m->loop, on_timer, c, &c->timer);
	if (r >= 0)
		r = loop_timer_new(m->loop, on_ack_timer, c, &c->ack_timer);
	if (r >= 0)
		r = loop_defer_new(m->loop, on_flush, c, &c->flush);
	if (r < 0) {
		loop_io_free(c->io);
		loop_timer_free(c->timer);
		loop_timer_free(c->ack_timer);
		free(c);
		return r;
	}
	loop_timer_arm(c->timer, m->hs_timeout_us);
	c->next = m->conns;
	if (m->conns)
		m->conns->prev = c;
	m->conns = c;
	if (!dialer)
		m->n_handshaking++;
	*ret = c;
	return 0;
}

void msg_conn_free(struct conn *c)
{
	if (!c)
		return;
	assert(c->state == CONN_CLOSED);
	free(c->in);
	free(c->out);
	free(c->asm_buf);
	free(c);
}

void msg_conn_close(struct conn *c, int error, const char *why)
{
	struct msg *m = c->msg;
	struct peer *p = c->peer;
	bool was_established = c->state == CONN_ESTABLISHED;
	char name[96];

	if (c->state == CONN_CLOSED)
		return;
	log_debug_errno(error, "connection to %s closed: %s", peer_name(c, name, sizeof(name)),
			why);
	if (!was_established && !c->dialer)
		m->n_handshaking--;
	c->state = CONN_CLOSED;
	c->io = loop_io_free(c->io);
	c->fd = safe_close(c->fd);
	c->timer = loop_timer_free(c->timer);
	c->ack_timer = loop_timer_free(c->ack_timer);
	c->flush = loop_defer_free(c->flush);
	msg_wire_cipher_wipe(&c->tx);
	msg_wire_cipher_wipe(&c->rx);
	c->tx_next = NULL;
	c->n_segs = c->seg_pos = 0;

	if (c->prev)
		c->prev->next = c->next;
	else
		m->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	c->grave_next = m->graveyard;
	m->graveyard = c;
	loop_defer_schedule(m->reaper);

	if (p && (p->conn == c || p->dialing == c)) {
		if (p->conn == c)
			p->conn = NULL;
		if (p->dialing == c)
			p->dialing = NULL;
		msg_peer_conn_lost(p, c, was_established);
	}
}

/* A record that breaks the rules: count it, say so, drop the connection. */
static int bad_record(struct conn *c, int error, const char *what)
{
	char name[96];

	c->msg->stats.bad_frames++;
	log_warn("dropping connection to %s: %s", peer_name(c, name, sizeof(name)), what);
	msg_conn_close(c, error, what);
	return error;
}

static void set_events(struct conn *c)
{
	unsigned ev = LOOP_READ;

	if (c->state == CONN_CLOSED)
		return;
	/* Also with frames still to encode: a write cut short by its budget
	 * resumes when epoll says the socket is writable. */
	if (c->state == CONN_CONNECTING || c->seg_pos < c->n_segs ||
	    (c->state == CONN_ESTABLISHED && c->tx_next))
		ev |= LOOP_WRITE;
	(void)loop_io_set_events(c->io, ev);
}

void msg_conn_kick(struct conn *c)
{
	if (c && c->state != CONN_CLOSED && c->state != CONN_CONNECTING)
		loop_defer_schedule(c->flush);
}

/* ---- output ---- */

static int out_reserve(struct conn *c, size_t need)
{
	size_t cap;
	uint8_t *p;

	if (c->out_cap - c->out_len >= need)
		return 0;
	if (__builtin_add_overflow(c->out_len, need, &cap))
		return -ENOMEM;
	cap = MAX(cap, MAX(c->out_cap * 2, (size_t)FILL_TARGET + 4096));
	p = realloc(c->out, cap);
	if (!p)
		return -ENOMEM;
	c->out = p;
	c->out_cap = cap;
	return 0;
}

/* Account for len bytes just put at out + out_len. */
static void out_commit(struct conn *c, size_t len, uint64_t seq_done)
{
	struct seg *s = c->n_segs > c->seg_pos ? &c->segs[c->n_segs - 1] : NULL;

	/* Extend the last run if it is still to be written and ends here. */
	if (s && !s->ext && s->off + s->len == c->out_len) {
		s->len += len;
	} else {
		assert(c->n_segs < CONN_SEGS);
		s = &c->segs[c->n_segs++];
		*s = (struct seg){ .off = c->out_len, .len = len };
	}
	if (seq_done)
		s->seq_done = seq_done;
	c->out_len += len;
}

static void ext_commit(struct conn *c, const uint8_t *data, size_t len, uint64_t seq_done)
{
	assert(c->n_segs < CONN_SEGS);
	c->segs[c->n_segs++] = (struct seg){ .ext = data, .len = len, .seq_done = seq_done };
}

int msg_conn_send_record(struct conn *c, const uint8_t *body, size_t len)
{
	int r;

	if (c->seg_pos == c->n_segs) {
		c->n_segs = c->seg_pos = 0;
		c->seg_off = 0;
		c->out_len = 0;
	}
	if (c->n_segs >= CONN_SEGS - 1)
		return -ENOBUFS;
	r = out_reserve(c, WIRE_LEN_SIZE + len);
	if (r < 0)
		return r;
	put_le32(c->out + c->out_len, (uint32_t)len);
	memcpy(c->out + c->out_len + WIRE_LEN_SIZE, body, len);
	out_commit(c, WIRE_LEN_SIZE + len, 0);
	loop_defer_schedule(c->flush);
	return 0;
}

static void apply_boundary_fault(struct conn *c)
{
	uint8_t junk[64];

	if (c->fault == MSG_FAULT_GARBAGE) {
		/* A plausible length, so the receiver reads on and checks it. */
		randombytes_buf(junk, sizeof(junk));
		put_le32(junk, sizeof(junk) - WIRE_LEN_SIZE);
	} else if (c->fault == MSG_FAULT_OVERSIZE) {
		memset(junk, 0, sizeof(junk));
		put_le32(junk, WIRE_MAX_LEN + 1);
	} else {
		return;
	}
	if (out_reserve(c, sizeof(junk)) < 0)
		return;
	memcpy(c->out + c->out_len, junk, sizeof(junk));
	out_commit(c, sizeof(junk), 0);
	c->fault = -1;
}

/* Seal the next record of frame f into the write queue: the whole frame,
 * or with encryption its next REC_CHUNK bytes, so that the receiver opens
 * one record while the next is still being sealed and sent. *ret_done says
 * whether that was the frame's last record. */
static int encode_frame(struct conn *c, struct frame *f, bool *ret_done)
{
	struct peer *p = c->peer;
	size_t off = c->tx_off, chunk = f->len - off, n, start = c->out_len;
	bool more = c->tx.encrypt && chunk > REC_CHUNK;
	struct wire_hdr h = {
		.kind = f->kind,
		.flags = more ? WIRE_F_MORE : 0,
		.channel = f->channel,
		.type = f->type,
		.seq = f->seq,
		.ack = p->rx_seq,
		.stream = f->stream,
	};
	int r;

	if (more)
		chunk = REC_CHUNK;
	n = WIRE_HDR_SIZE + chunk;
	msg_wire_hdr_pack(&h, f->hdr);
	if (!c->tx.encrypt && f->len >= ZERO_COPY_MIN) {
		/* Prefix (and header, if it is not next to the payload) from out,
		 * the rest straight from the frame. */
		r = out_reserve(c, WIRE_PLAIN_BODY + WIRE_HDR_SIZE);
		if (r < 0)
			return r;
		msg_wire_seal_prefix(&c->tx, f->hdr, n, c->out + start);
		if (f->taken) {
			memcpy(c->out + start + WIRE_PLAIN_BODY, f->hdr, WIRE_HDR_SIZE);
			out_commit(c, WIRE_PLAIN_BODY + WIRE_HDR_SIZE, 0);
			ext_commit(c, f->payload, f->len, f->seq);
		} else {
			out_commit(c, WIRE_PLAIN_BODY, 0);
			ext_commit(c, f->hdr, n, f->seq);
		}
	} else {
		size_t body = c->tx.encrypt ? WIRE_LEN_SIZE : WIRE_PLAIN_BODY;

		r = out_reserve(c, msg_wire_overhead(&c->tx) + n);
		if (r < 0)
			return r;
		if (f->taken || off > 0) {
			memcpy(c->out + start + body, f->hdr, WIRE_HDR_SIZE);
			memcpy(c->out + start + body + WIRE_HDR_SIZE, f->payload + off, chunk);
			r = msg_wire_seal(&c->tx, c->out + start + body, n, c->out + start);
		} else {
			/* hdr and the payload's start are contiguous */
			r = msg_wire_seal(&c->tx, f->hdr, n, c->out + start);
		}
		if (r < 0)
			return r;
		out_commit(c, msg_wire_overhead(&c->tx) + n, more ? 0 : f->seq);
	}
	c->tx_off = more ? off + chunk : 0;
	if (!more && f->seq > p->tx_sent)
		p->tx_sent = f->seq;
	if (c->fault == MSG_FAULT_CORRUPT) {
		/* The tag's or the MAC's first byte: always in out, always checked. */
		c->out[start + WIRE_LEN_SIZE] ^= 0x20;
		c->fault = -1;
	}
	*ret_done = !more;
	return 0;
}

static int encode_control(struct conn *c, uint8_t kind)
{
	struct peer *p = c->peer;
	struct wire_hdr h = { .kind = kind, .ack = p->rx_seq };
	uint8_t hdr[WIRE_HDR_SIZE];
	size_t start = c->out_len;
	int r;

	r = out_reserve(c, msg_wire_overhead(&c->tx) + WIRE_HDR_SIZE);
	if (r < 0)
		return r;
	msg_wire_hdr_pack(&h, hdr);
	r = msg_wire_seal(&c->tx, hdr, WIRE_HDR_SIZE, c->out + start);
	if (r < 0)
		return r;
	out_commit(c, msg_wire_overhead(&c->tx) + WIRE_HDR_SIZE, 0);
	if (c->fault == MSG_FAULT_CORRUPT) {
		c->out[start + WIRE_LEN_SIZE] ^= 0x20;
		c->fault = -1;
	}
	return 0;
}

/* Fill the empty write queue with the next frames, or an ack or heartbeat. */
static int fill(struct conn *c)
{
	struct peer *p = c->peer;
	bool any = false;
	int r;

	assert(c->seg_pos == c->n_segs);
	c->n_segs = c->seg_pos = 0;
	c->seg_off = 0;
	c->out_len = 0;
	apply_boundary_fault(c);
	while (c->tx_next && c->n_segs < CONN_SEGS - 2 && c->out_len < FILL_TARGET) {
		bool done;

		r = encode_frame(c, c->tx_next, &done);
		if (r < 0)
			return r;
		if (done)
			c->tx_next = c->tx_next->next;
		any = true;
	}
	if (!any && (c->ping || (c->ack_now && p->rx_seq > p->ack_sent))) {
		r = encode_control(c, p->rx_seq > p->ack_sent ? WIRE_ACK : WIRE_PING);
		if (r < 0)
			return r;
		any = true;
	}
	if (any) {
		p->ack_sent = p->rx_seq;
		p->rx_unacked_bytes = 0;
		p->rx_unacked_frames = 0;
		c->ack_now = false;
		c->ping = false;
		loop_timer_disarm(c->ack_timer);
	}
	return 0;
}

static void conn_write(struct conn *c)
{
	size_t budget = WRITE_BUDGET;
	struct iovec iov[CONN_SEGS];

	while (c->state != CONN_CLOSED && c->state != CONN_CONNECTING) {
		unsigned cnt = 0;
		ssize_t n;

		if (c->seg_pos == c->n_segs) {
			int r;

			if (c->state != CONN_ESTABLISHED)
				break;
			r = fill(c);
			if (r < 0) {
				msg_conn_close(c, r, "cannot encode frames");
				return;
			}
			if (c->n_segs == 0)
				break;
		}
		for (unsigned i = c->seg_pos; i < c->n_segs; i++, cnt++) {
			const struct seg *s = &c->segs[i];
			const uint8_t *base = s->ext ? s->ext : c->out + s->off;
			size_t skip = i == c->seg_pos ? c->seg_off : 0;

			iov[cnt].iov_base = (void *)(base + skip);
			iov[cnt].iov_len = s->len - skip;
		}
		/* sendmsg() for MSG_NOSIGNAL: a peer's reset must not raise SIGPIPE. */
		n = sendmsg(c->fd, &(struct msghdr){ .msg_iov = iov, .msg_iovlen = cnt },
			    MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			msg_conn_close(c, -errno, "write failed");
			return;
		}
		c->last_tx = loop_now(c->msg->loop);
		budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
		while (n > 0) {
			const struct seg *s = &c->segs[c->seg_pos];
			size_t left = s->len - c->seg_off;

			if ((size_t)n < left) {
				c->seg_off += (size_t)n;
				break;
			}
			n -= (ssize_t)left;
			c->seg_pos++;
			c->seg_off = 0;
		}
		if (budget == 0)
			break;
	}
	set_events(c);
}

static void on_flush(struct loop_defer *d _unused_, void *userdata)
{
	conn_write(userdata);
}

/* ---- input ---- */

static int in_make_room(struct conn *c)
{
	size_t avail = c->in_end - c->in_start, want, need = WIRE_LEN_SIZE;
	uint8_t *p;

	if (avail == 0)
		c->in_start = c->in_end = 0;
	if (avail >= WIRE_LEN_SIZE)
		need = WIRE_LEN_SIZE + (size_t)get_le32(c->in + c->in_start);
	want = c->state == CONN_ESTABLISHED ? MAX((size_t)IN_SIZE, need) : 1024;
	if (c->in_cap < want) {
		p = realloc(c->in, want);
		if (!p)
			return -ENOMEM;
		c->in = p;
		c->in_cap = want;
	}
	if (c->in_start > 0 && (c->in_end == c->in_cap || c->in_cap - c->in_start < need)) {
		memmove(c->in, c->in + c->in_start, avail);
		c->in_start = 0;
		c->in_end = avail;
	}
	return 0;
}

/* Append a record of a frame sent as several; all carry the same header but
 * for flags and ack. */
static int reassemble(struct conn *c, const struct wire_hdr *h, const uint8_t *payload,
		      size_t len)
{
	const struct wire_hdr *a = &c->asm_hdr;

	if (!c->asm_active) {
		c->asm_hdr = *h;
		c->asm_active = true;
		c->asm_len = 0;
	} else if (h->kind != a->kind || h->seq != a->seq || h->channel != a->channel ||
		   h->type != a->type || h->stream != a->stream) {
		return -EPROTO;
	}
	if (len > MSG_MAX_MESSAGE - c->asm_len)
		return -EMSGSIZE;
	if (c->asm_cap - c->asm_len < len) {
		size_t cap = MAX(c->asm_len + len, MIN(2 * c->asm_cap, (size_t)MSG_MAX_MESSAGE));
		uint8_t *b = realloc(c->asm_buf, cap);

		if (!b)
			return -ENOMEM;
		c->asm_buf = b;
		c->asm_cap = cap;
	}
	memcpy(c->asm_buf + c->asm_len, payload, len);
	c->asm_len += len;
	return 0;
}

static int on_session_record(struct conn *c, uint8_t *rec, size_t size)
{
	struct peer *p = c->peer;
	struct wire_hdr h;
	uint8_t *body, *payload;
	size_t n, len;
	int r;

	r = msg_wire_open(&c->rx, rec, size, &body, &n);
	if (r < 0)
		return bad_record(c, r, "frame failed its integrity check");
	p->confirmed = true;
	r = msg_wire_hdr_unpack(body, &h);
	if (r < 0)
		return bad_record(c, r, "malformed frame header");
	r = msg_peer_on_ack(p, h.ack);
	if (r < 0)
		return bad_record(c, r, "acknowledgement of frames never sent");
	if (c->state == CONN_CLOSED || h.kind == WIRE_ACK || h.kind == WIRE_PING)
		return 0;
	payload = body + WIRE_HDR_SIZE;
	len = n - WIRE_HDR_SIZE;
	if ((h.flags & WIRE_F_MORE) || c->asm_active) {
		r = reassemble(c, &h, payload, len);
		if (r < 0)
			return bad_record(c, r, "frame records do not fit together");
		if (h.flags & WIRE_F_MORE)
			return 0;
		h = c->asm_hdr;
		payload = c->asm_buf;
		len = c->asm_len;
		c->asm_active = false;
		c->asm_len = 0;
	}
	r = msg_peer_on_frame(p, &h, payload, len);
	if (r < 0)
		return bad_record(c, r, "frame out of sequence or malformed");
	return 0;
}

/* Use every whole record in the buffer. < 0 when the connection was closed. */
static int parse(struct conn *c)
{
	while (c->state != CONN_CLOSED) {
		size_t avail = c->in_end - c->in_start, len, limit;
		uint8_t *rec;
		int r;

		if (avail < WIRE_LEN_SIZE)
			break;
		len = get_le32(c->in + c->in_start);
		if (c->state == CONN_ESTABLISHED) {
			limit = WIRE_MAX_LEN;
			if (len > limit)
				return bad_record(c, -EMSGSIZE, "oversized frame");
		} else {
			limit = msg_hs_expected_len(c);
			if (len != limit) {
				c->msg->stats.auth_failures++;
				log_warn("refusing connection from '%s': not a ghost handshake",
					 c->remote);
				msg_conn_close(c, -EBADMSG, "not a ghost handshake");
				return -EBADMSG;
			}
		}
		if (avail < WIRE_LEN_SIZE + len)
			break;
		rec = c->in + c->in_start;
		c->in_start += WIRE_LEN_SIZE + len;
		if (c->state == CONN_ESTABLISHED) {
			r = on_session_record(c, rec, WIRE_LEN_SIZE + len);
		} else {
			r = msg_hs_on_record(c, rec + WIRE_LEN_SIZE, len);
			if (r < 0)
				msg_conn_close(c, r, "handshake failed");
		}
		if (r < 0)
			return r;
	}
	return c->state == CONN_CLOSED ? -ECONNRESET : 0;
}

static void after_input(struct conn *c)
{
	struct peer *p = c->peer;

	if (c->state != CONN_ESTABLISHED || p->rx_seq <= p->ack_sent)
		return;
	if (p->rx_unacked_bytes >= ACK_BYTES || p->rx_unacked_frames >= ACK_FRAMES) {
		c->ack_now = true;
		msg_conn_kick(c);
	} else if (!loop_timer_armed(c->ack_timer)) {
		loop_timer_arm(c->ack_timer, ACK_DELAY_US);
	}
}

static void on_readable(struct conn *c)
{
	size_t budget = READ_BUDGET;

	while (c->state != CONN_CLOSED && budget > 0) {
		size_t room;
		ssize_t n;
		int r;

		r = in_make_room(c);
		if (r < 0) {
			msg_conn_close(c, r, "out of memory for input");
			return;
		}
		room = c->in_cap - c->in_end;
		n = read(c->fd, c->in + c->in_end, room);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				msg_conn_close(c, -errno, "read failed");
			break;
		}
		if (n == 0) {
			msg_conn_close(c, 0, "closed by the other end");
			return;
		}
		c->in_end += (size_t)n;
		budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
		if (c->state == CONN_ESTABLISHED) {
			c->last_rx = loop_now(c->msg->loop);
			msg_peer_heard(c->peer);
		}
		if (parse(c) < 0)
			return;
		if ((size_t)n < room)
			break;
	}
	after_input(c);
}

/* ---- events ---- */

static void on_connected(struct conn *c)
{
	int r;

	r = msg_hs_start(c);
	if (r < 0) {
		msg_conn_close(c, r, "cannot start the handshake");
		return;
	}
	conn_write(c);
}

static void on_io(struct loop_io *io _unused_, int fd, unsigned events, void *userdata)
{
	struct conn *c = userdata;

	if (c->state == CONN_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			msg_conn_close(c, -err, "connect failed");
			return;
		}
		if (events & (LOOP_WRITE | LOOP_ERROR | LOOP_HANGUP))
			on_connected(c);
		return;
	}
	if (events & (LOOP_READ | LOOP_ERROR | LOOP_HANGUP))
		on_readable(c);
	if (c->state != CONN_CLOSED && (events & LOOP_WRITE))
		conn_write(c);
}

static void on_timer(struct loop_timer *t, void *userdata)
{
	struct conn *c = userdata;
	struct msg *m = c->msg;
	uint64_t now = loop_now(m->loop), tick = MAX(m->heartbeat_us / 2, (uint64_t)1000);

	if (c->state != CONN_ESTABLISHED) {
		msg_conn_close(c, -ETIMEDOUT, "handshake timed out");
		return;
	}
	if (now - c->last_rx >= 3 * m->heartbeat_us) {
		msg_conn_close(c, -ETIMEDOUT, "nothing heard for three heartbeats");
		return;
	}
	if (now - c->last_tx >= tick) {
		c->ping = true;
		msg_conn_kick(c);
	}
	loop_timer_arm(t, tick);
}

static void on_ack_timer(struct loop_timer *t _unused_, void *userdata)
{
	struct conn *c = userdata;

	c->ack_now = true;
	msg_conn_kick(c);
}

/* ---- setup ---- */

static void set_nodelay(int fd)
{
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int msg_conn_dial(struct peer *p)
{
	struct msg *m = p->msg;
	_cleanup_close_ int fd = -1;
	struct conn *c;
	int r;

	fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	set_nodelay(fd);
	m->stats.dialed++;
	r = connect(fd, (const struct sockaddr *)&p->addr, p->addrlen);
	if (r < 0 && errno != EINPROGRESS)
		return -errno;
	r = conn_new(m, fd, true, &c);
	if (r < 0)
		return r;
	TAKE_FD(fd);
	c->peer = p;
	format_addr(&p->addr, c->remote, sizeof(c->remote));
	p->dialing = c;
	return 0;
}

int msg_conn_accept(struct msg *m, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct conn *c;
	int r;

	if (m->n_handshaking >= MAX_HANDSHAKING) {
		safe_close(fd);
		return -EBUSY;
	}
	set_nodelay(fd);
	r = conn_new(m, fd, false, &c);
	if (r < 0) {
		safe_close(fd);
		return r;
	}
	if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
		format_addr(&ss, c->remote, sizeof(c->remote));
	else
		snprintf(c->remote, sizeof(c->remote), "?");
	m->stats.accepted++;
	return 0;
}

int msg_conn_establish(struct conn *c, const uint8_t tx_key[WIRE_KEY_SIZE],
		       const uint8_t rx_key[WIRE_KEY_SIZE])
{
	struct msg *m = c->msg;
	int r;

	r = msg_wire_cipher_init(&c->tx, m->encrypt, tx_key);
	if (r >= 0)
		r = msg_wire_cipher_init(&c->rx, m->encrypt, rx_key);
	if (r < 0)
		return r; /* the caller closes c, which wipes both */
	c->state = CONN_ESTABLISHED;
	if (!c->dialer)
		m->n_handshaking--;
	c->last_rx = c->last_tx = loop_now(m->loop);
	loop_timer_arm(c->timer, MAX(m->heartbeat_us / 2, (uint64_t)1000));
	return 0;
}

int msg_conn_fault(struct conn *c, enum msg_fault fault)
{
	if (c->state != CONN_ESTABLISHED)
		return -ENOTCONN;
	if (fault == MSG_FAULT_CUT) {
		(void)shutdown(c->fd, SHUT_RDWR);
		msg_conn_close(c, -ECONNRESET, "cut by fault injection");
		return 0;
	}
	log_debug("fault %d injected on the connection to node %u", fault, c->peer->id);
	c->fault = fault;
	if (fault == MSG_FAULT_CORRUPT)
		c->ping = true;
	msg_conn_kick(c);
	return 0;
}

bool msg_conn_references(const struct conn *c, uint64_t seq)
{
	for (unsigned i = c->seg_pos; i < c->n_segs; i++)
		if (c->segs[i].ext && c->segs[i].seq_done <= seq)
			return true;
	return false;
}

void msg_conn_goodbye(struct conn *c)
{
	if (c->state != CONN_ESTABLISHED)
		return;
	c->ack_now = true;
	conn_write(c);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Streams: ordered byte streams inside a session, for payloads too large to
 * hold whole (process images). A stream is a run of sequenced frames, OPEN,
 * DATA..., END, sharing the session's order and reliability; its id is chosen
 * by the sender. Flow control is the session's: a writer waits while the
 * peer's queued and unacknowledged bytes exceed the window, and since the
 * receiver handles each chunk before reading more, a slow receiver slows the
 * writer through TCP and the window. Memory on both sides is thus bounded by
 * the window plus one chunk, whatever the stream's length.
 *
 *   sender:   msg_stream_open -> OPEN --close--> CLOSING --END acked--> done(0)
 *             OPEN/CLOSING --STOP received--> done(-ECONNABORTED)
 *             OPEN/CLOSING --peer DOWN--> done(-EHOSTDOWN)
 *             OPEN/CLOSING --msg_stream_abort--> freed, ABORT sent
 *   receiver: OPEN frame -> stream_open() --refused--> STOP sent, freed
 *             --DATA--> stream_data() --END--> stream_end(0)
 *             --ABORT--> stream_end(-ECONNABORTED); --peer DOWN--> stream_end(-EHOSTDOWN)
 *             --msg_stream_abort--> freed, STOP sent
 *
 * Invariants:
 *   1. A stream is on its peer's list from creation until its final callback
 *      (or abort), and only while that peer's session lasts.
 *   2. Exactly one final callback (done or stream_end) per stream, unless
 *      the owner aborted it; the handle is freed right after it.
 *   3. Aborting never fails: the ABORT or STOP frame is allocated up front.
 *   4. Frames of a stream name it by id only, so a stream freed while its
 *      frames are still queued leaves nothing dangling; frames for unknown
 *      ids (refused or aborted streams) are dropped.
 *
 *   transition                    function
 *   -> OPEN (sender)              msg_stream_open
 *   OPEN -> CLOSING               msg_stream_close
 *   CLOSING -> done(0)            msg_stream_on_end_acked
 *   -> open (receiver)            on_open
 *   open -> ended                 msg_stream_on_frame, msg_streams_fail (stream_finish)
 *   any -> freed without callback msg_stream_abort (stream_kill)
 */
#include <string.h>

#define LOG_PREFIX "msg"
#include "msg/msg-int.h"
#include "base/log.h"
#include "base/banned.h"

struct msg_stream {
	struct msg *msg;
	struct peer *peer; /* NULL once unlinked */
	uint32_t node;
	struct msg_stream *prev, *next;
	uint64_t id;
	uint32_t type;
	uint16_t channel;
	bool outgoing;
	bool closing;     /* outgoing: END queued */
	bool blocked;     /* outgoing: a write got -EAGAIN */
	bool notify;      /* scratch for msg_streams_writable() */
	bool in_callback; /* stream_open, done or stream_end is running */
	bool aborted;     /* aborted from inside stream_open */
	struct frame *abort_frame;
	struct msg_stream_ops ops;
	void *userdata;
};

static void stream_link(struct peer *p, struct msg_stream *s)
{
	s->peer = p;
	s->node = p->id;
	s->prev = NULL;
	s->next = p->streams;
	if (p->streams)
		p->streams->prev = s;
	p->streams = s;
}

static void stream_unlink(struct msg_stream *s)
{
	struct peer *p = s->peer;

	if (!p)
		return;
	if (s->prev)
		s->prev->next = s->next;
	else if (p->streams == s)
		p->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
	s->peer = NULL;
}

static struct msg_stream *stream_find(struct peer *p, uint64_t id, bool outgoing)
{
	for (struct msg_stream *s = p->streams; s; s = s->next)
		if (s->id == id && s->outgoing == outgoing)
			return s;
	return NULL;
}

static void stream_free(struct msg_stream *s)
{
	msg_frame_free(s->abort_frame);
	free(s);
}

static struct msg_stream *stream_new(struct msg *m, uint64_t id, uint16_t channel, uint32_t type,
				     bool outgoing)
{
	struct msg_stream *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->abort_frame = msg_frame_new(outgoing ? WIRE_STREAM_ABORT : WIRE_STREAM_STOP, channel, 0,
				   id, NULL, 0);
	if (!s->abort_frame) {
		free(s);
		return NULL;
	}
	s->msg = m;
	s->id = id;
	s->channel = channel;
	s->type = type;
	s->outgoing = outgoing;
	return s;
}

/* Send the stream's ABORT or STOP frame, then free it. */
static void stream_kill(struct msg_stream *s)
{
	struct peer *p = s->peer;

	stream_unlink(s);
	if (p && p->state == MSG_PEER_STATE_UP)
		(void)msg_peer_queue(p, TAKE_PTR(s->abort_frame));
	stream_free(s);
}

/* Run the final callback and free. s must be unlinked already. */
static void stream_finish(struct msg_stream *s, int error)
{
	struct msg *m = s->msg;
	struct handler_slot *slot = &m->handlers[s->channel];

	s->in_callback = true;
	if (s->outgoing)
		s->ops.done(s, error, s->userdata);
	else if (slot->used && slot->h.stream_end)
		slot->h.stream_end(s, error, s->userdata);
	stream_free(s);
}

/* ---- sender ---- */

int msg_stream_open(struct msg *m, uint32_t node, uint16_t channel, uint32_t type,
		    const void *data, size_t len, const struct msg_stream_ops *ops, void *userdata,
		    struct msg_stream **ret)
{
	struct msg_stream *s;
	struct frame *f;
	struct peer *p;
	int r;

	if (!m || !ops || !ops->done || !ret || channel >= MSG_CHANNELS || (len && !data))
		return -EINVAL;
	if (len > MSG_MAX_MESSAGE)
		return -EMSGSIZE;
	p = msg_peer_find(m, node);
	if (!p)
		return -EHOSTUNREACH;
	if (p->self)
		return -EINVAL;
	if (p->state != MSG_PEER_STATE_UP)
		return -EHOSTDOWN;
	s = stream_new(m, ++m->next_stream_id, channel, type, true);
	if (!s)
		return -ENOMEM;
	f = msg_frame_new(WIRE_STREAM_OPEN, channel, type, s->id, data, len);
	if (!f) {
		stream_free(s);
		return -ENOMEM;
	}
	s->ops = *ops;
	s->userdata = userdata;
	r = msg_peer_queue(p, f);
	if (r < 0) {
		stream_free(s);
		return r;
	}
	stream_link(p, s);
	*ret = s;
	return 0;
}

int msg_stream_write(struct msg_stream *s, const void *data, size_t len)
{
	struct frame *head = NULL, **tail = &head;
	struct peer *p;
	size_t off;

	if (!s || !s->outgoing || (len && !data))
		return -EINVAL;
	if (s->closing)
		return -EPIPE;
	p = s->peer;
	if (!p)
		return -EPIPE;
	if (len == 0)
		return 0;
	if (p->q_bytes > 0 && p->q_bytes + len > s->msg->window) {
		s->blocked = true;
		p->want_writable = true;
		return -EAGAIN;
	}
	/* All frames first, so a failed allocation queues nothing. */
	for (off = 0; off < len; off += MSG_STREAM_CHUNK) {
		size_t n = MIN((size_t)MSG_STREAM_CHUNK, len - off);
		struct frame *f = msg_frame_new(WIRE_STREAM_DATA, s->channel, 0, s->id,
					    (const uint8_t *)data + off, n);

		if (!f) {
			while (head) {
				f = head;
				head = f->next;
				msg_frame_free(f);
			}
			return -ENOMEM;
		}
		*tail = f;
		tail = &f->next;
	}
	while (head) {
		struct frame *f = head;

		head = f->next;
		(void)msg_peer_queue(p, f);
	}
	return 0;
}

int msg_stream_close(struct msg_stream *s)
{
	struct frame *f;
	int r;

	if (!s || !s->outgoing)
		return -EINVAL;
	if (s->closing)
		return -EALREADY;
	if (!s->peer)
		return -EPIPE;
	f = msg_frame_new(WIRE_STREAM_END, s->channel, 0, s->id, NULL, 0);
	r = msg_peer_queue(s->peer, f);
	if (r < 0)
		return r;
	s->closing = true;
	return 0;
}

void msg_stream_abort(struct msg_stream *s)
{
	if (!s)
		return;
	if (s->in_callback) {
		/* From stream_open, on_open() sends STOP and frees; from the final
		 * callback (unlinked by then) there is nothing left to abort. */
		if (s->peer)
			s->aborted = true;
		return;
	}
	stream_kill(s);
}

uint32_t msg_stream_node(const struct msg_stream *s)
{
	return s->node;
}

uint16_t msg_stream_channel(const struct msg_stream *s)
{
	return s->channel;
}

uint32_t msg_stream_type(const struct msg_stream *s)
{
	return s->type;
}

void *msg_stream_get_userdata(const struct msg_stream *s)
{
	return s->userdata;
}

void msg_stream_set_userdata(struct msg_stream *s, void *userdata)
{
	s->userdata = userdata;
}

void msg_stream_on_end_acked(struct peer *p, uint64_t id)
{
	struct msg_stream *s = stream_find(p, id, true);

	if (!s)
		return;
	stream_unlink(s);
	stream_finish(s, 0);
}

void msg_streams_writable(struct peer *p)
{
	for (struct msg_stream *s = p->streams; s; s = s->next)
		s->notify = s->outgoing && s->blocked;
	for (;;) {
		struct msg_stream *s;

		for (s = p->streams; s && !s->notify; s = s->next)
			;
		if (!s)
			return;
		s->notify = false;
		s->blocked = false;
		if (s->ops.writable)
			s->ops.writable(s, s->userdata);
		if (p->want_writable)
			return;
	}
}

/* ---- receiver ---- */

static int on_open(struct peer *p, const struct wire_hdr *h, const uint8_t *payload, size_t len)
{
	struct msg *m = p->msg;
	struct handler_slot *slot = &m->handlers[h->channel];
	struct msg_stream *s;
	int r = -ECONNREFUSED;

	if (stream_find(p, h->stream, false))
		return -EPROTO;
	s = stream_new(m, h->stream, h->channel, h->type, false);
	if (!s)
		return -ENOMEM;
	s->userdata = slot->userdata;
	stream_link(p, s);
	if (slot->used && slot->h.stream_open) {
		s->in_callback = true;
		r = slot->h.stream_open(s, p->id, h->type, payload, len, slot->userdata);
		s->in_callback = false;
	}
	if (r < 0 || s->aborted) {
		log_debug("stream %llu from node %u on channel %u refused",
			  (unsigned long long)h->stream, p->id, h->channel);
		stream_kill(s);
	}
	return 0;
}

int msg_stream_on_frame(struct peer *p, const struct wire_hdr *h, const uint8_t *payload,
		    size_t len)
{
	struct msg *m = p->msg;
	struct handler_slot *slot;
	struct msg_stream *s;

	switch (h->kind) {
	case WIRE_STREAM_OPEN:
		return on_open(p, h, payload, len);
	case WIRE_STREAM_DATA:
		s = stream_find(p, h->stream, false);
		if (!s)
			return 0;
		slot = &m->handlers[s->channel];
		if (slot->used && slot->h.stream_data)
			slot->h.stream_data(s, payload, len, s->userdata);
		return 0;
	case WIRE_STREAM_END:
	case WIRE_STREAM_ABORT:
		s = stream_find(p, h->stream, false);
		if (!s)
			return 0;
		stream_unlink(s);
		stream_finish(s, h->kind == WIRE_STREAM_END ? 0 : -ECONNABORTED);
		return 0;
	case WIRE_STREAM_STOP:
		s = stream_find(p, h->stream, true);
		if (!s)
			return 0;
		stream_unlink(s);
		stream_finish(s, -ECONNABORTED);
		return 0;
	default:
		return -EPROTO;
	}
}

void msg_streams_fail(struct msg_stream *list, int error)
{
	while (list) {
		struct msg_stream *s = list;

		list = s->next;
		s->prev = s->next = NULL;
		s->peer = NULL;
		stream_finish(s, error);
	}
}

void msg_streams_free(struct msg_stream *list)
{
	while (list) {
		struct msg_stream *s = list;

		list = s->next;
		stream_free(s);
	}
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The streams of the dstream API (include/ghost/dstream.h): the daemon's
 * side. Three roles, any of which a node may play for a given stream:
 *
 * Home (H): each stream has a home node, a function of its id over the
 * configured nodes (home_of()). The home keeps the stream's directory
 * entry (struct dsdir): its type, owner, and per endpoint its state and
 * node. Every change of place (attach, suspend, wakeup, unattach) goes
 * through it, and nothing else: the data path never does.
 *
 *   endpoint:  FREE --attach--> ATTACHED --suspend--> SUSPENDED
 *                                  ^  |                   |
 *                                  |  +--unattach-----+   |
 *                                  +------wakeup------|---+
 *                                                     v
 *                                                  CLOSED (for good)
 *
 * Links: two endpoints that exchange messages (ds_pair()) are joined by a
 * link, a sequence of sockets over time. When an endpoint attaches or
 * wakes up on node X, the home builds, for each peer attached or
 * suspended on node Y, the link's next socket: a socketpair made by X when
 * X == Y, else a direct TCP connection that X listens for and Y connects
 * to, authenticated with a one-time key (msg_chan_hs_*: no blocking call
 * here). Each end goes to its endpoint's process (CTL_DS_LINK, with the
 * fd) or, if that endpoint is suspended, into what the node holds for it.
 * The home runs one such operation per stream at a time: requests that
 * come meanwhile wait in its queue until every end reported DSM_LINKED.
 *
 * Suspend (node S): the process stops sending on every link socket
 * (shutdown: its peers read to the end of it and wait for the next one),
 * and hands the sockets it still reads and the bytes it read but did not
 * deliver to S (CTL_DS_HAND); S keeps them (EP_HELD): the peers' messages
 * wait in the kernel's buffers, and flow control holds the peers back.
 *
 * Wakeup (node X): X asks S for what it holds (DSM_TAKE). S sends the
 * undelivered bytes, then reads each held socket to its end and sends
 * that (DSM_FEED); X writes it into a socketpair whose other end the woken
 * process reads first (CTL_DS_FEED), ahead of the link's new socket. A
 * peer ends its old socket when it moves its sending to the new one, which
 * it does between two messages, so a held socket's end is exactly the
 * last message the peer sent on it: nothing is lost or read twice. A peer
 * whose node failed never ends it: S ends it then (held_end_from()).
 *
 * On an endpoint's node (struct dsep; a link builder is struct dsbuild):
 *
 *   REQUEST --answer--> ATTACHED --SUSPEND--> SUSPENDING --HANDED--> HELD
 *      |                   |                      |                  |
 *      |                   +---- connection gone (unattach) ---+     | DSM_TAKE
 *      +-- error ----------+---------------------------------+ |     v
 *                                                            v v   TAKING --all sent--> gone
 *                                                            gone   (HELD: destroyed, home lost;
 *                                                                    HELD, TAKING: woken up on a node
 *                                                                    that failed)
 *
 * Invariants:
 *   1. The home runs one attach or wakeup of a stream at a time and starts
 *      the next only once every end of the links it asked for reported
 *      DSM_LINKED (or 10 s): a take finds every socket its held endpoint
 *      will ever get.
 *   2. A process switches its sending to a new socket only between two
 *      messages, and ends the old one then: a socket's end, in each
 *      direction, is a message boundary.
 *   3. Every reader of a link, a process or a take, reads its sockets in
 *      order, each to its end: a link's messages come in the order sent.
 *   4. The watch of an fd is freed before the fd leaves the daemon (closed,
 *      or handed to a process): epoll watches the file, which outlives our
 *      fd, and would report events for a freed watch.
 *   5. Nothing here blocks: handshakes are msg_chan_hs_*, held sockets and
 *      feeds are read and written as the loop says they may be.
 *
 *   event                                function
 *   CTL_DS_CREATE/DESTROY/ATTACH/WAKEUP  dstream_request() -> ep_ask()
 *   answer from the home                 ep_reply() -> ep_attached()
 *   CTL_DS_SUSPEND, _HAND, _HANDED       suspend_begin(), suspend_hand(), suspend_end()
 *   endpoint connection gone             dstream_conn_gone() -> ep_close()
 *   DSM_* at the home                    home_recv()
 *   DSM_LINK, DSM_LINK_CONNECT           on_link(), on_link_connect() -> on_hs_io() -> give()
 *   DSM_TAKE (S)                         on_take() -> take_step(), on_take_io()
 *   DSM_FEED, DSM_TAKEN (X)              on_feed(), on_taken() -> feed_flush()
 *   DSM_PEER_CLOSED, DSM_DESTROYED       on_peer_closed(), on_destroyed()
 *   DSM_DROP (S)                         on_drop() -> drop_woken()
 *   node down                            dstream_node_down()
 *   $GHOST_DS_FAULT (tests)              dsm_recv() -> fault_delays(), take_fault_hold()
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_PREFIX "dstream"
#include "base/log.h"
#include "ghost/dstream.h"
#include "node/node-int.h"
#include "base/banned.h"

/* A request to the home, or a link being built, fails after this long. */
#define DS_TIMEOUT_USEC (10ull * 1000 * 1000)
/* Bytes of held data per DSM_FEED. */
#define FEED_CHUNK (256u << 10)
/* A feed holds this much at most for a process that does not read it:
 * what peers can send to a held endpoint is bounded by the kernel's socket
 * buffers, far below it, so only a broken or hostile sender gets there. */
#define FEED_MAX (256u << 20)
/* Ids a create tries before giving up (taken, or their home down). */
#define CREATE_TRIES 8
/* Handshakes a listening link end runs at once. */
#define BUILD_HS_MAX 4
#define SECRET_SIZE 16

/* Fault injection for tests: $GHOST_DS_FAULT holds "MSG@NODE:MS" items
 * (comma separated, read by node_faults_parse()). Node NODE handles the
 * dstream message MSG (a name of fault_names[]) MS milliseconds late, and
 * the messages its sender sends after it wait behind it: the protocol
 * counts on msg's order between two nodes (an ATTACH_REP before the LINK
 * that needs its endpoint). MSG "feed" is the other way round: node NODE,
 * sending what it held for an endpoint woken up elsewhere, holds the rest
 * back MS ms after the first chunk. Each logs "holding the MSG from (to)
 * node N back", so that a test fails a node at a known point of a wakeup
 * without racing it. */
#define FAULT_ENV "GHOST_DS_FAULT"
#define FAULTS_MAX 4

/* ---- directory entries, at the home ------------------------------------- */

enum dsdir_state {
	DIR_FREE,
	DIR_ATTACHED,
	DIR_SUSPENDED,
	DIR_CLOSED,
};

struct dsdir_ep {
	enum dsdir_state state;
	uint32_t node;
	uint8_t secret[SECRET_SIZE];
	uint64_t linked; /* bit j: a link with endpoint j was built */
	uint32_t held_on; /* woken up: the node that held it (0: none), which may
			     not have handed what it held to `node` yet */
};

/* A request that waits for the stream's operation under way. */
struct dsq {
	struct dsq *next;
	uint32_t from;
	uint32_t type;
	size_t len;
	uint8_t data[];
};

struct dsdir {
	struct dsdir *next, *prev;
	struct node_daemon *d;
	uint64_t id;
	uint32_t type, n;
	uid_t uid;
	/* the operation under way: the nodes whose DSM_LINKED it awaits */
	uint32_t *waits;
	size_t n_waits;
	struct loop_timer *timer;
	struct dsq *queue, *queue_tail;
	struct dsdir_ep ep[];
};

/* ---- endpoints, on their node -------------------------------------------- */

enum ep_state {
	EP_REQUEST,    /* the connection's request waits for the home */
	EP_ATTACHED,   /* a process has it, through conn */
	EP_SUSPENDING, /* its process hands its links over */
	EP_HELD,       /* suspended here (once the home knows, its handle is out) */
	EP_TAKING,     /* woken up elsewhere: what it held goes there */
};

struct dsitem {
	int fd;
	bool feed;
};

/* One link of an endpoint that is not in a process. */
struct dslink {
	struct buf pre;        /* bytes its process read and did not deliver */
	int *fds;              /* sockets it reads next, in order */
	size_t n_fds;
	struct dsitem *later;  /* SUSPENDING: sockets that came meanwhile */
	size_t n_later;
};

/* The writing end of a feed: held bytes from S for the process's link. */
struct dsfeed {
	struct dsep *e;
	uint32_t peer;
	int fd;
	struct loop_io *io;
	struct buf out;
	size_t off;
	bool last;
};

struct dsep {
	struct dsep *next, *prev;
	struct node_daemon *d;
	enum ep_state state;
	uint64_t id;
	uint32_t index, type, n, home;
	uid_t uid;
	struct ctl_conn *conn;
	/* a request to the home under way (EP_REQUEST, or a suspend) */
	uint16_t ctl_type;
	uint64_t req;
	uint32_t req_node;
	struct loop_timer *timer;
	unsigned tries;
	uint32_t create_type, create_n;
	bool orphan;           /* its process went before it got the handle */
	uint8_t secret[SECRET_SIZE];
	struct dslink *links;  /* [n]: SUSPENDING, HELD, TAKING */
	struct dsfeed **feeds; /* [n]: where it woke up */
	uint32_t feed_from;
	/* TAKING */
	uint32_t take_to;
	bool take_started;
	uint32_t take_link;
	size_t take_pos;
	bool take_pre_sent;
	bool take_paused;      /* msg's window to take_to is full */
	bool take_held;        /* fault injection holds the rest back (timer) */
	bool take_fault_done;
	struct loop_io *take_io;
};

/* ---- links being built ----------------------------------------------------- */

struct dsbuild;

struct dshs {
	struct dsbuild *b;
	struct msg_chan_hs *hs;
	struct loop_io *io;
};

struct dsbuild {
	struct dsbuild *next, *prev;
	struct node_daemon *d;
	uint64_t id;
	uint32_t index, peer, peer_node;
	uint8_t key[MSG_CHAN_KEY_SIZE];
	int listen_fd;         /* the listening end; -1 when dialing */
	struct loop_io *listen_io;
	struct dshs *hs[BUILD_HS_MAX];
	size_t n_hs;
	struct loop_timer *timer;
};

/* A message fault injection holds back: with a timer, the one that is
 * late; without, one that came after it from the same node. */
struct dsdelayed {
	struct dsdelayed *next;
	struct node_daemon *d;
	struct loop_timer *timer;
	uint32_t node, type;
	size_t len;
	uint8_t data[];
};

struct ds_mgr {
	struct dsdir *dirs;
	struct dsep *eps;
	struct dsbuild *builds;
	struct dsdelayed *delayed; /* in the order they came */
	struct node_fault faults[FAULTS_MAX];
	size_t n_faults;
};

static struct ds_mgr *mgr(struct node_daemon *d)
{
	return d->dstreams;
}

/* ---- small things ---------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

/* The home node of a stream: the same on every node of the cluster. */
static uint32_t home_of(const struct node_daemon *d, uint64_t id)
{
	return d->config.nodes[mix64(id) % d->config.n_nodes].id;
}

static bool node_up(struct node_daemon *d, uint32_t node)
{
	struct node_peer *p = node_peer_find(d, node);

	return p && (p->state == NODE_STATE_SELF || p->state == NODE_STATE_UP);
}

/* Do endpoints i and j of a stream of this type exchange messages? */
static bool ds_pair(uint32_t type, uint32_t i, uint32_t j)
{
	if (i == j)
		return false;
	if (type == DS_DIRECT)
		return true;
	return (i == 0) != (j == 0);
}

static const char *type_name(uint32_t type)
{
	switch (type) {
	case DS_DIRECT:
		return "DIRECT";
	case DS_FIFO:
		return "FIFO";
	case DS_LIFO:
		return "LIFO";
	default:
		return "?";
	}
}

static int random_bytes(void *p, size_t n)
{
	uint8_t k[MSG_CHAN_KEY_SIZE];
	int r;

	while (n > 0) {
		size_t m = MIN(n, sizeof(k));

		r = msg_chan_key_new(k);
		if (r < 0)
			return r;
		memcpy(p, k, m);
		p = (uint8_t *)p + m;
		n -= m;
	}
	return 0;
}

static bool secret_eq(const uint8_t *a, const uint8_t *b)
{
	uint8_t diff = 0;

	for (size_t i = 0; i < SECRET_SIZE; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

/* Attributes in one go: a put that fails leaves *r < 0 and the rest do nothing. */
static void put32(struct buf *b, int *r, uint16_t t, uint32_t v)
{
	if (*r >= 0)
		*r = attr_put_u32(b, t, v);
}

static void put64(struct buf *b, int *r, uint16_t t, uint64_t v)
{
	if (*r >= 0)
		*r = attr_put_u64(b, t, v);
}

static void putb(struct buf *b, int *r, uint16_t t, const void *p, size_t n)
{
	if (*r >= 0)
		*r = attr_put(b, t, p, n);
}

static void puts_(struct buf *b, int *r, uint16_t t, const char *s)
{
	if (*r >= 0)
		*r = attr_put_str(b, t, s);
}

/* Send b (released here) on the dstream channel. */
static int dsend(struct node_daemon *d, uint32_t node, uint32_t type, struct buf *b, int r)
{
	if (r >= 0)
		r = msg_send(d->msg, node, NODE_CH_DSTREAM, type, b->data, b->len);
	if (r < 0)
		log_debug_errno(r, "cannot send message %u to node %u", type, node);
	buf_release(b);
	return r;
}

/* Everything a dstream message may carry. */
struct dsattrs {
	uint64_t req, id, linked, closed;
	uint32_t index, peer, kind, count, uid, node, flags, port, err;
	const void *data;
	size_t data_len;
	const uint8_t *key, *secret;
	char address[64];
	char message[400];
	char handle[DS_HANDLE_MAX];
};

static int parse(const void *data, size_t len, struct dsattrs *a)
{
	struct attr_iter it;
	struct attr at;
	int r;

	memset(a, 0, sizeof(*a));
	a->index = a->peer = a->node = UINT32_MAX;
	attr_iter_init(&it, data, len);
	while ((r = attr_next(&it, &at)) > 0) {
		switch (at.type) {
		case A_REQ:
			r = attr_u64(&at, &a->req);
			break;
		case A_STREAM:
			r = attr_u64(&at, &a->id);
			break;
		case A_LINKED:
			r = attr_u64(&at, &a->linked);
			break;
		case A_CLOSED:
			r = attr_u64(&at, &a->closed);
			break;
		case A_INDEX:
			r = attr_u32(&at, &a->index);
			break;
		case A_PEER:
			r = attr_u32(&at, &a->peer);
			break;
		case A_KIND:
			r = attr_u32(&at, &a->kind);
			break;
		case A_COUNT:
			r = attr_u32(&at, &a->count);
			break;
		case A_UID:
			r = attr_u32(&at, &a->uid);
			break;
		case A_NODE:
			r = attr_u32(&at, &a->node);
			break;
		case A_FLAGS:
			r = attr_u32(&at, &a->flags);
			break;
		case A_PORT:
			r = attr_u32(&at, &a->port);
			break;
		case A_ERRNO:
			r = attr_u32(&at, &a->err);
			break;
		case A_DATA:
			a->data = at.data;
			a->data_len = at.len;
			break;
		case A_KEY:
			if (at.len != MSG_CHAN_KEY_SIZE)
				return -EBADMSG;
			a->key = at.data;
			break;
		case A_SECRET:
			if (at.len != SECRET_SIZE)
				return -EBADMSG;
			a->secret = at.data;
			break;
		case A_ADDRESS:
			r = attr_strcpy(&at, a->address, sizeof(a->address));
			break;
		case A_MESSAGE:
			r = attr_strcpy(&at, a->message, sizeof(a->message));
			break;
		case A_HANDLE:
			if (at.len >= sizeof(a->handle))
				return -EBADMSG;
			r = attr_strcpy(&at, a->handle, sizeof(a->handle));
			break;
		default:
			break;
		}
		if (r < 0)
			return r;
	}
	return r;
}

/* "ds:ID:INDEX:SECRET", ID in hex, SECRET 32 hex digits. */
static void handle_format(uint64_t id, uint32_t index, const uint8_t *secret,
			  char out[DS_HANDLE_MAX])
{
	int n = snprintf(out, DS_HANDLE_MAX, "ds:%" PRIx64 ":%" PRIu32 ":", id, index);

	for (size_t i = 0; i < SECRET_SIZE && n > 0 && (size_t)n + 2 < DS_HANDLE_MAX; i++)
		n += snprintf(out + n, DS_HANDLE_MAX - (size_t)n, "%02x", secret[i]);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int handle_parse(const char *h, uint64_t *ret_id, uint32_t *ret_index,
			uint8_t secret[SECRET_SIZE])
{
	uint64_t id = 0;
	uint32_t index = 0;
	const char *p = h;
	size_t digits = 0;

	if (strncmp(p, "ds:", 3) != 0)
		return -EINVAL;
	for (p += 3; *p && *p != ':'; p++, digits++) {
		int v = hexval(*p);

		if (v < 0 || digits >= 16)
			return -EINVAL;
		id = id << 4 | (uint64_t)v;
	}
	if (*p != ':' || digits == 0 || id == 0)
		return -EINVAL;
	for (p++, digits = 0; *p && *p != ':'; p++, digits++) {
		if (*p < '0' || *p > '9' || digits >= 2)
			return -EINVAL;
		index = index * 10 + (uint32_t)(*p - '0');
	}
	if (*p != ':' || digits == 0 || index >= DS_MAX_ENDPOINTS)
		return -EINVAL;
	p++;
	for (size_t i = 0; i < SECRET_SIZE; i++) {
		int hi = hexval(p[2 * i]), lo = hi < 0 ? -1 : hexval(p[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		secret[i] = (uint8_t)(hi << 4 | lo);
	}
	if (p[2 * SECRET_SIZE] != '\0')
		return -EINVAL;
	*ret_id = id;
	*ret_index = index;
	return 0;
}

/* ---- the home: directory entries --------------------------------------------- */

static struct dsdir *dir_find(struct node_daemon *d, uint64_t id)
{
	for (struct dsdir *x = mgr(d)->dirs; x; x = x->next)
		if (x->id == id)
			return x;
	return NULL;
}

static void dir_free(struct dsdir *x)
{
	struct dsq *q;

	LIST_REMOVE(mgr(x->d)->dirs, x);
	while ((q = x->queue)) {
		x->queue = q->next;
		free(q);
	}
	loop_timer_free(x->timer);
	free(x->waits);
	free(x);
}

static void home_reply(struct node_daemon *d, uint32_t to, uint32_t type, uint64_t req, int err,
		       const char *fmt, ...) _printf_(6, 7);
static void home_reply(struct node_daemon *d, uint32_t to, uint32_t type, uint64_t req, int err,
		       const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	node_answer_verror(d, to, NODE_CH_DSTREAM, type, req, err, fmt, ap);
	va_end(ap);
}

static bool may_use(const struct dsdir *x, uint32_t uid)
{
	return uid == 0 || uid == (uint32_t)x->uid;
}

static bool dir_busy(const struct dsdir *x)
{
	return x->n_waits > 0;
}

static int dir_wait_for(struct dsdir *x, uint32_t node)
{
	uint32_t *w = realloc(x->waits, (x->n_waits + 1) * sizeof(*w));

	if (!w)
		return -ENOMEM;
	x->waits = w;
	w[x->n_waits++] = node;
	loop_timer_arm(x->timer, DS_TIMEOUT_USEC);
	return 0;
}

static void home_recv(struct node_daemon *d, uint32_t from, uint32_t type, const void *data,
		      size_t len);

/* The operation is over: serve the requests that waited for it. */
static void dir_next(struct dsdir *x)
{
	struct node_daemon *d = x->d;

	loop_timer_disarm(x->timer);
	while (!dir_busy(x) && x->queue) {
		struct dsq *q = x->queue;

		x->queue = q->next;
		if (!x->queue)
			x->queue_tail = NULL;
		/* Only ATTACH and WAKEUP wait here, and neither frees x. */
		home_recv(d, q->from, q->type, q->data, q->len);
		free(q);
	}
}

static int dir_enqueue(struct dsdir *x, uint32_t from, uint32_t type, const void *data,
		       size_t len)
{
	struct dsq *q = malloc(sizeof(*q) + len);

	if (!q)
		return -ENOMEM;
	q->next = NULL;
	q->from = from;
	q->type = type;
	q->len = len;
	memcpy(q->data, data, len);
	if (x->queue_tail)
		x->queue_tail->next = q;
	else
		x->queue = q;
	x->queue_tail = q;
	return 0;
}

static void on_dir_timeout(struct loop_timer *t, void *userdata)
{
	struct dsdir *x = userdata;

	(void)t;
	log_warn("stream %" PRIx64 ": links not built in %llu s, going on", x->id,
		 DS_TIMEOUT_USEC / 1000000);
	x->n_waits = 0;
	dir_next(x);
}

/* Build the next socket of every link of endpoint i with an attached or
 * suspended peer; the operation lasts until each end is installed. */
static void build_links(struct dsdir *x, uint32_t i)
{
	struct node_daemon *d = x->d;
	uint32_t nx = x->ep[i].node;

	for (uint32_t j = 0; j < x->n; j++) {
		uint8_t key[MSG_CHAN_KEY_SIZE];
		uint32_t ny = x->ep[j].node;
		struct buf b = BUF_INIT;
		int r = 0;

		if (!ds_pair(x->type, i, j) ||
		    (x->ep[j].state != DIR_ATTACHED && x->ep[j].state != DIR_SUSPENDED))
			continue;
		r = msg_chan_key_new(key);
		put64(&b, &r, A_STREAM, x->id);
		put32(&b, &r, A_INDEX, i);
		put32(&b, &r, A_PEER, j);
		put32(&b, &r, A_FLAGS, nx == ny ? DS_LINK_LOCAL : DS_LINK_LISTEN);
		put32(&b, &r, A_NODE, ny);
		putb(&b, &r, A_KEY, key, sizeof(key));
		r = dsend(d, nx, DSM_LINK, &b, r);
		if (r < 0) {
			log_warn_errno(r, "stream %" PRIx64 ": cannot have node %u build the link of "
				       "endpoints %u and %u", x->id, nx, i, j);
			continue;
		}
		x->ep[i].linked |= 1ull << j;
		x->ep[j].linked |= 1ull << i;
		if (dir_wait_for(x, nx) < 0 || (nx != ny && dir_wait_for(x, ny) < 0))
			log_warn("stream %" PRIx64 ": out of memory, not waiting for its links",
				 x->id);
	}
}

/* Endpoint i closed: its peers learn it (suspended ones when they wake up);
 * flags: enum ds_closed_flags. */
static void close_endpoint(struct dsdir *x, uint32_t i, uint32_t flags)
{
	x->ep[i].state = DIR_CLOSED;
	x->ep[i].held_on = 0;
	memset(x->ep[i].secret, 0, SECRET_SIZE);
	for (uint32_t j = 0; j < x->n; j++) {
		struct buf b = BUF_INIT;
		int r = 0;

		if (!ds_pair(x->type, i, j) || x->ep[j].state != DIR_ATTACHED)
			continue;
		put64(&b, &r, A_STREAM, x->id);
		put32(&b, &r, A_INDEX, j);
		put32(&b, &r, A_PEER, i);
		put32(&b, &r, A_FLAGS, flags);
		dsend(x->d, x->ep[j].node, DSM_PEER_CLOSED, &b, r);
	}
}

static uint64_t closed_mask(const struct dsdir *x)
{
	uint64_t m = 0;

	for (uint32_t j = 0; j < x->n; j++)
		if (x->ep[j].state == DIR_CLOSED)
			m |= 1ull << j;
	return m;
}

static void home_create(struct node_daemon *d, uint32_t from, const struct dsattrs *a)
{
	struct dsdir *x;
	int r;

	if (a->id == 0 || (a->kind != DS_DIRECT && a->kind != DS_FIFO && a->kind != DS_LIFO) ||
	    a->count < 2 || a->count > DS_MAX_ENDPOINTS || (a->kind == DS_DIRECT && a->count != 2))
		return home_reply(d, from, DSM_REPLY, a->req, -EINVAL, "malformed stream creation");
	if (dir_find(d, a->id))
		return home_reply(d, from, DSM_REPLY, a->req, -EEXIST, "stream %" PRIx64 " exists",
				  a->id);
	x = calloc(1, sizeof(*x) + a->count * sizeof(x->ep[0]));
	if (!x)
		return home_reply(d, from, DSM_REPLY, a->req, -ENOMEM, "out of memory on node %u",
				  d->self);
	x->d = d;
	x->id = a->id;
	x->type = a->kind;
	x->n = a->count;
	x->uid = (uid_t)a->uid;
	r = loop_timer_new(d->loop, on_dir_timeout, x, &x->timer);
	if (r < 0) {
		free(x);
		return home_reply(d, from, DSM_REPLY, a->req, r, "out of memory on node %u",
				  d->self);
	}
	LIST_PREPEND(mgr(d)->dirs, x);
	log_debug("stream %" PRIx64 ": %s, %u endpoints, created from node %u", x->id,
		  type_name(x->type), x->n, from);
	node_answer(d, from, NODE_CH_DSTREAM, DSM_REPLY, a->req, NULL);
}

static void home_destroy(struct dsdir *x, uint32_t from, const struct dsattrs *a)
{
	struct node_daemon *d = x->d;
	uint64_t told = 0;

	if (!may_use(x, a->uid))
		return home_reply(d, from, DSM_REPLY, a->req, -EPERM,
				  "stream %" PRIx64 " belongs to another user", x->id);
	/* Every node with an endpoint, once each. */
	for (uint32_t i = 0; i < x->n; i++) {
		struct buf b = BUF_INIT;
		uint32_t node = x->ep[i].node;
		bool seen = false;
		int r = 0;

		if (x->ep[i].state != DIR_ATTACHED && x->ep[i].state != DIR_SUSPENDED)
			continue;
		for (uint32_t k = 0; k < i; k++)
			if ((told >> k & 1) && x->ep[k].node == node)
				seen = true;
		told |= 1ull << i;
		if (seen)
			continue;
		put64(&b, &r, A_STREAM, x->id);
		dsend(d, node, DSM_DESTROYED, &b, r);
	}
	/* What waited for it is answered as if it had come after. */
	while (x->queue) {
		struct dsq *q = x->queue;
		struct dsattrs qa;

		x->queue = q->next;
		if (parse(q->data, q->len, &qa) >= 0)
			home_reply(d, q->from, q->type == DSM_ATTACH || q->type == DSM_WAKEUP
					       ? DSM_ATTACH_REP : DSM_REPLY,
				   qa.req, -ENOENT, "stream %" PRIx64 " was destroyed", x->id);
		free(q);
	}
	x->queue_tail = NULL;
	log_debug("stream %" PRIx64 " destroyed from node %u", x->id, from);
	dir_free(x);
	node_answer(d, from, NODE_CH_DSTREAM, DSM_REPLY, a->req, NULL);
}

static int put_attached(struct buf *b, const struct dsdir *x, uint32_t i)
{
	int r = 0;

	put32(b, &r, A_INDEX, i);
	put32(b, &r, A_KIND, x->type);
	put32(b, &r, A_COUNT, x->n);
	put32(b, &r, A_UID, (uint32_t)x->uid);
	return r;
}

static void home_attach(struct dsdir *x, uint32_t from, const struct dsattrs *a)
{
	struct node_daemon *d = x->d;
	unsigned attached = 0, suspended = 0, closed = 0;
	struct buf b = BUF_INIT;
	uint32_t i;
	int r;

	if (!may_use(x, a->uid))
		return home_reply(d, from, DSM_ATTACH_REP, a->req, -EPERM,
				  "stream %" PRIx64 " belongs to another user", x->id);
	for (i = 0; i < x->n && x->ep[i].state != DIR_FREE; i++) {
		attached += x->ep[i].state == DIR_ATTACHED;
		suspended += x->ep[i].state == DIR_SUSPENDED;
		closed += x->ep[i].state == DIR_CLOSED;
	}
	if (i == x->n)
		return home_reply(d, from, DSM_ATTACH_REP, a->req, -EBUSY,
				  "stream %" PRIx64 " has no free endpoint: of its %u, %u attached, "
				  "%u suspended, %u closed", x->id, x->n, attached, suspended, closed);
	x->ep[i].state = DIR_ATTACHED;
	x->ep[i].node = from;
	r = put_attached(&b, x, i);
	if (r >= 0)
		node_answer(d, from, NODE_CH_DSTREAM, DSM_ATTACH_REP, a->req, &b);
	buf_release(&b);
	log_debug("stream %" PRIx64 ": endpoint %u attached on node %u", x->id, i, from);
	build_links(x, i);
}

static void home_wakeup(struct dsdir *x, uint32_t from, const struct dsattrs *a)
{
	struct node_daemon *d = x->d;
	struct buf b = BUF_INIT;
	uint32_t i = a->index, held;
	int r;

	if (!may_use(x, a->uid))
		return home_reply(d, from, DSM_ATTACH_REP, a->req, -EPERM,
				  "stream %" PRIx64 " belongs to another user", x->id);
	if (i >= x->n || !a->secret)
		return home_reply(d, from, DSM_ATTACH_REP, a->req, -EINVAL,
				  "stream %" PRIx64 " has no endpoint %u", x->id, a->index);
	if (x->ep[i].state != DIR_SUSPENDED)
		return home_reply(d, from, DSM_ATTACH_REP, a->req, -EALREADY,
				  "endpoint %u of stream %" PRIx64 " is not suspended (woken up "
				  "already, or closed)", i, x->id);
	if (!secret_eq(x->ep[i].secret, a->secret))
		return home_reply(d, from, DSM_ATTACH_REP, a->req, -EACCES,
				  "the handle's secret does not match endpoint %u of stream %" PRIx64,
				  i, x->id);
	held = x->ep[i].node;
	if (!node_up(d, held))
		return home_reply(d, from, DSM_ATTACH_REP, a->req, -EHOSTDOWN,
				  "node %u, which holds endpoint %u of stream %" PRIx64 ", is down",
				  held, i, x->id);
	x->ep[i].state = DIR_ATTACHED;
	x->ep[i].node = from;
	x->ep[i].held_on = held == from ? 0 : held;
	memset(x->ep[i].secret, 0, SECRET_SIZE);
	r = put_attached(&b, x, i);
	put32(&b, &r, A_NODE, held);
	put64(&b, &r, A_LINKED, x->ep[i].linked);
	put64(&b, &r, A_CLOSED, closed_mask(x));
	if (r >= 0)
		node_answer(d, from, NODE_CH_DSTREAM, DSM_ATTACH_REP, a->req, &b);
	buf_release(&b);
	log_debug("stream %" PRIx64 ": endpoint %u woken up on node %u (held on node %u)", x->id,
		  i, from, held);
	build_links(x, i);
}

static void home_suspend(struct dsdir *x, uint32_t from, const struct dsattrs *a)
{
	struct node_daemon *d = x->d;
	uint32_t i = a->index;

	if (i >= x->n || !a->secret || x->ep[i].state != DIR_ATTACHED || x->ep[i].node != from)
		return home_reply(d, from, DSM_REPLY, a->req, -EPROTO,
				  "endpoint %u of stream %" PRIx64 " is not attached on node %u",
				  a->index, x->id, from);
	x->ep[i].state = DIR_SUSPENDED;
	x->ep[i].held_on = 0;
	memcpy(x->ep[i].secret, a->secret, SECRET_SIZE);
	log_debug("stream %" PRIx64 ": endpoint %u suspended on node %u", x->id, i, from);
	node_answer(d, from, NODE_CH_DSTREAM, DSM_REPLY, a->req, NULL);
}

static void home_unattach(struct dsdir *x, uint32_t from, const struct dsattrs *a)
{
	uint32_t i = a->index;

	if (i >= x->n || x->ep[i].node != from ||
	    (x->ep[i].state != DIR_ATTACHED && x->ep[i].state != DIR_SUSPENDED))
		return;
	log_debug("stream %" PRIx64 ": endpoint %u closed on node %u", x->id, i, from);
	close_endpoint(x, i, 0);
}

static void home_linked(struct dsdir *x, uint32_t from, const struct dsattrs *a)
{
	if (a->err)
		log_warn_errno(-(int)a->err, "stream %" PRIx64 ": node %u could not install the "
			       "link of endpoints %u and %u (%s)", x->id, from, a->index, a->peer,
			       a->message);
	for (int pass = 0; pass < 2; pass++) {
		uint32_t node = pass == 0 ? from : a->node;

		if (pass == 1 && (a->node == UINT32_MAX || a->node == from))
			break;
		for (size_t k = 0; k < x->n_waits; k++) {
			if (x->waits[k] != node)
				continue;
			x->waits[k] = x->waits[--x->n_waits];
			break;
		}
	}
	if (!dir_busy(x))
		dir_next(x);
}

static void home_recv(struct node_daemon *d, uint32_t from, uint32_t type, const void *data,
		      size_t len)
{
	struct dsattrs a;
	struct dsdir *x;
	uint32_t rep = type == DSM_ATTACH || type == DSM_WAKEUP ? DSM_ATTACH_REP : DSM_REPLY;

	if (parse(data, len, &a) < 0) {
		log_warn("malformed dstream message %u from node %u, ignoring", type, from);
		return;
	}
	if (home_of(d, a.id) != d->self) {
		if (type != DSM_UNATTACH && type != DSM_LINKED)
			home_reply(d, from, rep, a.req, -EPROTO, "node %u is not the home of stream "
				   "%" PRIx64, d->self, a.id);
		return;
	}
	if (type == DSM_CREATE)
		return home_create(d, from, &a);
	x = dir_find(d, a.id);
	if (!x) {
		if (type != DSM_UNATTACH && type != DSM_LINKED)
			home_reply(d, from, rep, a.req, -ENOENT, "no stream %" PRIx64 " (never "
				   "created, destroyed, or lost with its home node %u)", a.id,
				   d->self);
		return;
	}
	/* A change of place waits for the links of the one under way. */
	if ((type == DSM_ATTACH || type == DSM_WAKEUP) && dir_busy(x)) {
		if (dir_enqueue(x, from, type, data, len) < 0)
			home_reply(d, from, rep, a.req, -ENOMEM, "out of memory on node %u",
				   d->self);
		return;
	}
	switch (type) {
	case DSM_DESTROY:
		home_destroy(x, from, &a);
		break;
	case DSM_ATTACH:
		home_attach(x, from, &a);
		break;
	case DSM_WAKEUP:
		home_wakeup(x, from, &a);
		break;
	case DSM_SUSPEND:
		home_suspend(x, from, &a);
		break;
	case DSM_UNATTACH:
		home_unattach(x, from, &a);
		break;
	case DSM_LINKED:
		home_linked(x, from, &a);
		break;
	default:
		break;
	}
}

/* ---- endpoints on their node --------------------------------------------------- */

static struct dsep *ep_find(struct node_daemon *d, uint64_t id, uint32_t index, bool held)
{
	for (struct dsep *e = mgr(d)->eps; e; e = e->next) {
		if (e->id != id || e->index != index)
			continue;
		if (held ? e->state == EP_HELD || e->state == EP_TAKING
			 : e->state == EP_ATTACHED || e->state == EP_SUSPENDING ||
				   (e->state == EP_HELD && !e->orphan))
			return e;
	}
	return NULL;
}

static struct dsep *ep_find_req(struct node_daemon *d, uint64_t req)
{
	for (struct dsep *e = mgr(d)->eps; e; e = e->next)
		if (e->req == req && req != 0)
			return e;
	return NULL;
}

static void link_release(struct dslink *l)
{
	buf_release(&l->pre);
	for (size_t k = 0; k < l->n_fds; k++)
		safe_close(l->fds[k]);
	for (size_t k = 0; k < l->n_later; k++)
		safe_close(l->later[k].fd);
	free(l->fds);
	free(l->later);
	memset(l, 0, sizeof(*l));
}

static struct dsfeed *feed_free(struct dsfeed *f)
{
	if (!f)
		return NULL;
	loop_io_free(f->io);
	safe_close(f->fd);
	buf_release(&f->out);
	free(f);
	return NULL;
}

static void ep_free(struct dsep *e)
{
	if (!e)
		return;
	LIST_REMOVE(mgr(e->d)->eps, e);
	if (e->conn)
		ctl_conn_set_dsep(e->conn, NULL);
	loop_timer_free(e->timer);
	loop_io_free(e->take_io);
	for (uint32_t j = 0; e->links && j < e->n; j++)
		link_release(&e->links[j]);
	for (uint32_t j = 0; e->feeds && j < e->n; j++)
		feed_free(e->feeds[j]);
	free(e->links);
	free(e->feeds);
	memset(e->secret, 0, sizeof(e->secret));
	free(e);
}

/* Endpoint e closes for good while its stream's home is down: no
 * directory can tell its peers, and nobody else knows where they are, so
 * every node that is up hears it (its own node by msg too). Without this
 * a peer would wait for the endpoint's next socket for ever. */
static void peers_closed_everywhere(struct dsep *e)
{
	struct node_daemon *d = e->d;

	for (size_t k = 0; k < d->config.n_nodes; k++) {
		uint32_t node = d->config.nodes[k].id;

		if (!node_up(d, node))
			continue;
		for (uint32_t j = 0; j < e->n; j++) {
			struct buf b = BUF_INIT;
			int r = 0;

			if (!ds_pair(e->type, e->index, j))
				continue;
			put64(&b, &r, A_STREAM, e->id);
			put32(&b, &r, A_INDEX, j);
			put32(&b, &r, A_PEER, e->index);
			dsend(d, node, DSM_PEER_CLOSED, &b, r);
		}
	}
}

/* The endpoint is closed for good: the home learns it, the rest goes. */
static void ep_close(struct dsep *e)
{
	struct buf b = BUF_INIT;
	int r = 0;

	if (e->state != EP_REQUEST && e->state != EP_TAKING) {
		if (!node_up(e->d, e->home)) {
			peers_closed_everywhere(e);
		} else {
			put64(&b, &r, A_STREAM, e->id);
			put32(&b, &r, A_INDEX, e->index);
			dsend(e->d, e->home, DSM_UNATTACH, &b, r);
		}
	}
	ep_free(e);
}

static int ep_alloc_links(struct dsep *e)
{
	if (!e->links)
		e->links = NEW_ARRAY(struct dslink, e->n);
	return e->links ? 0 : -ENOMEM;
}

static int fds_push(int **fds, size_t *n, int fd)
{
	int *p = realloc(*fds, (*n + 1) * sizeof(int));

	if (!p)
		return -ENOMEM;
	*fds = p;
	p[(*n)++] = fd;
	return 0;
}

/* A held link gets another socket: it is read after the others, and the
 * link's older sockets end for sending (a held endpoint sends nothing), so
 * that the peer reads to the end of each and moves on. */
static void held_add(struct dsep *e, uint32_t peer, int fd, bool feed)
{
	struct dslink *l = &e->links[peer];

	if (!feed)
		for (size_t k = 0; k < l->n_fds; k++)
			(void)shutdown(l->fds[k], SHUT_WR);
	if (fds_push(&l->fds, &l->n_fds, fd) < 0) {
		log_warn("stream %" PRIx64 ": out of memory holding a socket of endpoint %u", e->id,
			 e->index);
		safe_close(fd);
	}
}

/* Give the next socket of a link (or a feed) to its endpoint here. */
static void give(struct dsep *e, uint32_t peer, int fd, bool feed)
{
	struct buf b = BUF_INIT;
	int r = 0;

	if (!e || peer >= e->n) {
		safe_close(fd);
		return;
	}
	switch (e->state) {
	case EP_ATTACHED:
		put32(&b, &r, A_PEER, peer);
		if (r >= 0)
			r = ctl_send_fd(e->conn, feed ? CTL_DS_FEED : CTL_DS_LINK, &b, TAKE_FD(fd));
		buf_release(&b);
		safe_close(fd);
		break;
	case EP_SUSPENDING: {
		struct dslink *l = &e->links[peer];
		struct dsitem *it = realloc(l->later, (l->n_later + 1) * sizeof(*it));

		if (!it) {
			safe_close(fd);
			break;
		}
		l->later = it;
		it[l->n_later++] = (struct dsitem){ .fd = fd, .feed = feed };
		break;
	}
	case EP_HELD:
		held_add(e, peer, fd, feed);
		break;
	default:
		safe_close(fd);
		break;
	}
}

static void on_ep_timeout(struct loop_timer *t, void *userdata);

static struct dsep *ep_new(struct node_daemon *d, struct ctl_conn *c, uint16_t ctl_type)
{
	struct dsep *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->d = d;
	e->conn = c;
	e->ctl_type = ctl_type;
	e->index = UINT32_MAX;
	e->state = EP_REQUEST;
	e->uid = ctl_conn_uid(c);
	if (loop_timer_new(d->loop, on_ep_timeout, e, &e->timer) < 0) {
		free(e);
		return NULL;
	}
	LIST_PREPEND(mgr(d)->eps, e);
	ctl_conn_set_dsep(c, e);
	return e;
}

/* Send the request of e to the home of e->id. */
static int ep_ask(struct dsep *e, uint32_t type, struct buf *b, int r)
{
	struct node_daemon *d = e->d;

	e->req = node_new_id(d);
	e->req_node = home_of(d, e->id);
	/* A node that left is down at once for us, before msg gives up on it. */
	if (r >= 0 && !node_up(d, e->req_node))
		r = -EHOSTDOWN;
	if (r >= 0)
		r = attr_put_u64(b, A_REQ, e->req);
	r = dsend(d, e->req_node, type, b, r);
	if (r >= 0)
		loop_timer_arm(e->timer, DS_TIMEOUT_USEC);
	else
		e->req = 0;
	return r;
}

/* Answer the connection's request with an error: the request is over, and
 * an endpoint it had is closed. */
static void ep_fail(struct dsep *e, int err, const char *fmt, ...) _printf_(3, 4);
static void ep_fail(struct dsep *e, int err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (e->conn) {
		ctl_conn_set_dsep(e->conn, NULL);
		ctl_send_error(e->conn, err, 0, "%s", msg);
		e->conn = NULL;
	}
	ep_close(e);
}

/* The home of e's stream cannot be reached (r): the request fails, with
 * the same line wherever that is found (docs/ghostd.md, "Failures"). */
static void ep_fail_home(struct dsep *e, int r)
{
	ep_fail(e, r, "the home node %u of stream %" PRIx64 " cannot be reached: %s (the stream "
		"is lost with it)", home_of(e->d, e->id), e->id, strerror(-r));
}

static int create_try(struct dsep *e)
{
	struct node_daemon *d = e->d;
	struct buf b = BUF_INIT;
	int r = 0;

	for (;;) {
		uint64_t rnd = 0;

		if (e->tries++ >= CREATE_TRIES)
			return -EHOSTDOWN;
		r = random_bytes(&rnd, sizeof(rnd));
		if (r < 0)
			return r;
		/* The creator's node in the top bits, for whoever reads logs. */
		e->id = (uint64_t)d->self << 40 | (rnd & ((1ull << 40) - 1));
		if (e->id != 0 && node_up(d, home_of(d, e->id)))
			break;
	}
	put64(&b, &r, A_STREAM, e->id);
	put32(&b, &r, A_KIND, e->create_type);
	put32(&b, &r, A_COUNT, e->create_n);
	put32(&b, &r, A_UID, (uint32_t)e->uid);
	return ep_ask(e, DSM_CREATE, &b, r);
}

static bool in_node(struct ctl_conn *c)
{
	/* A process of another PID namespace (another node) shows as 0. */
	return ctl_conn_pid(c) > 0;
}

void dstream_request(struct node_daemon *d, struct ctl_conn *c, const struct ctl_request *req)
{
	struct dsattrs a;
	struct buf b = BUF_INIT;
	struct dsep *e;
	int r = 0;

	if (parse(req->payload, req->len, &a) < 0) {
		ctl_send_error(c, -EBADMSG, 0, "malformed dstream request");
		return;
	}
	if ((req->type == CTL_DS_ATTACH || req->type == CTL_DS_WAKEUP) && !in_node(c)) {
		ctl_send_error(c, -EPERM, 0, "the caller does not run on node %u: a dstream "
			       "endpoint must use the ghostd of its own node ($%s)", d->self,
			       NODE_CONTROL_ENV);
		return;
	}
	e = ep_new(d, c, req->type);
	if (!e) {
		ctl_send_error(c, -ENOMEM, 0, "out of memory on node %u", d->self);
		return;
	}
	switch (req->type) {
	case CTL_DS_CREATE:
		if ((a.kind != DS_DIRECT && a.kind != DS_FIFO && a.kind != DS_LIFO) ||
		    a.count < 2 || a.count > DS_MAX_ENDPOINTS ||
		    (a.kind == DS_DIRECT && a.count != 2))
			return ep_fail(e, -EINVAL, "a stream is DIRECT with 2 endpoints, or FIFO or "
				       "LIFO with 2 to %d", DS_MAX_ENDPOINTS);
		e->create_type = a.kind;
		e->create_n = a.count;
		r = create_try(e);
		if (r < 0)
			return ep_fail(e, r, "cannot create a stream: %s", r == -EHOSTDOWN
				       ? "the home nodes tried are down" : strerror(-r));
		return;
	case CTL_DS_DESTROY:
	case CTL_DS_ATTACH:
		if (a.id == 0)
			return ep_fail(e, -EINVAL, "no stream id");
		e->id = a.id;
		put64(&b, &r, A_STREAM, a.id);
		put32(&b, &r, A_UID, (uint32_t)e->uid);
		r = ep_ask(e, req->type == CTL_DS_ATTACH ? DSM_ATTACH : DSM_DESTROY, &b, r);
		break;
	case CTL_DS_WAKEUP: {
		uint8_t secret[SECRET_SIZE];
		uint32_t index;

		if (handle_parse(a.handle, &e->id, &index, secret) < 0)
			return ep_fail(e, -EINVAL, "'%s' is not a dstream handle", a.handle);
		put64(&b, &r, A_STREAM, e->id);
		put32(&b, &r, A_INDEX, index);
		putb(&b, &r, A_SECRET, secret, SECRET_SIZE);
		put32(&b, &r, A_UID, (uint32_t)e->uid);
		r = ep_ask(e, DSM_WAKEUP, &b, r);
		memset(secret, 0, sizeof(secret));
		break;
	}
	default:
		return ep_fail(e, -EPROTO, "unknown dstream request");
	}
	if (r < 0)
		ep_fail_home(e, r);
}

/* The endpoint's process has it; send the attach answer, with the feeds
 * of a wakeup and the peers that closed. */
static void ep_attached(struct dsep *e, const struct dsattrs *a, bool wakeup)
{
	struct node_daemon *d = e->d;
	struct buf b = BUF_INIT;
	int r = 0;

	e->index = a->index;
	e->type = a->kind;
	e->n = a->count;
	e->home = home_of(d, e->id);
	e->state = EP_ATTACHED;
	e->req = 0;
	loop_timer_disarm(e->timer);
	if (!e->conn) {
		/* Its process went meanwhile. */
		ep_close(e);
		return;
	}
	put64(&b, &r, A_STREAM, e->id);
	put32(&b, &r, A_INDEX, e->index);
	put32(&b, &r, A_KIND, e->type);
	put32(&b, &r, A_COUNT, e->n);
	if (r >= 0)
		r = ctl_send(e->conn, CTL_DS_ATTACHED, &b);
	buf_release(&b);
	if (r < 0)
		return; /* the connection is gone: dstream_conn_gone() closes it */
	if (wakeup) {
		e->feeds = NEW_ARRAY(struct dsfeed *, e->n);
		e->feed_from = a->node;
		if (!e->feeds) {
			ep_fail(e, -ENOMEM, "out of memory on node %u", d->self);
			return;
		}
		/* A feed for each link it had: what the held node sends is
		 * read there first. The link's own sockets come after it. */
		for (uint32_t j = 0; j < e->n; j++) {
			struct dsfeed *f;
			int sp[2];

			if (!(a->linked >> j & 1))
				continue;
			f = calloc(1, sizeof(*f));
			if (!f || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
					     sp) < 0) {
				free(f);
				ep_fail(e, -ENOMEM, "cannot make the feed of a woken endpoint");
				return;
			}
			f->e = e;
			f->peer = j;
			f->fd = sp[1];
			e->feeds[j] = f;
			give(e, j, sp[0], true);
		}
		/* Where it was held, the node learns it is woken up now. */
		if (a->node == d->self) {
			struct dsep *old = ep_find(d, e->id, e->index, true);

			if (old && old != e)
				old->state = EP_TAKING;
		}
		buf_init(&b);
		r = 0;
		put64(&b, &r, A_STREAM, e->id);
		put32(&b, &r, A_INDEX, e->index);
		if (dsend(d, a->node, DSM_TAKE, &b, r) < 0) {
			for (uint32_t j = 0; j < e->n; j++)
				e->feeds[j] = feed_free(e->feeds[j]);
			log_warn("stream %" PRIx64 ": cannot reach node %u for what endpoint %u held",
				 e->id, a->node, e->index);
		}
	}
	for (uint32_t j = 0; j < e->n; j++) {
		if (!(a->closed >> j & 1) || !ds_pair(e->type, e->index, j))
			continue;
		buf_init(&b);
		r = 0;
		put32(&b, &r, A_PEER, j);
		if (r >= 0)
			(void)ctl_send(e->conn, CTL_DS_CLOSED, &b);
		buf_release(&b);
	}
}

static void ep_reply(struct node_daemon *d, uint32_t from, uint32_t type, const struct dsattrs *a)
{
	struct dsep *e = ep_find_req(d, a->req);
	struct buf b = BUF_INIT;
	int err = a->err ? -(int)a->err : 0;
	int r = 0;

	if (!e || from != e->req_node)
		return;
	if (e->state == EP_HELD) {
		/* The home knows the endpoint is suspended: the handle is out. */
		char handle[DS_HANDLE_MAX];

		e->req = 0;
		loop_timer_disarm(e->timer);
		if (err < 0 || !e->conn || e->orphan) {
			ep_fail(e, err < 0 ? err : -ECONNRESET, "cannot suspend: %s", a->message);
			return;
		}
		handle_format(e->id, e->index, e->secret, handle);
		puts_(&b, &r, A_HANDLE, handle);
		if (r >= 0)
			r = ctl_send(e->conn, CTL_DS_SUSPENDED, &b);
		buf_release(&b);
		memset(handle, 0, sizeof(handle));
		if (r >= 0)
			ctl_finish(e->conn);
		ctl_conn_set_dsep(e->conn, NULL);
		e->conn = NULL;
		return;
	}
	if (e->state != EP_REQUEST)
		return;
	if (err == -EEXIST && e->ctl_type == CTL_DS_CREATE) {
		r = create_try(e);
		if (r < 0)
			ep_fail(e, r, "cannot create a stream: %s", strerror(-r));
		return;
	}
	if (err < 0)
		return ep_fail(e, err, "%s", a->message[0] ? a->message : strerror(-err));
	switch (e->ctl_type) {
	case CTL_DS_CREATE:
		put64(&b, &r, A_STREAM, e->id);
		if (e->conn && r >= 0 && ctl_send(e->conn, CTL_DS_CREATED, &b) >= 0)
			ctl_finish(e->conn);
		buf_release(&b);
		ep_free(e);
		break;
	case CTL_DS_DESTROY:
		if (e->conn && ctl_send(e->conn, CTL_OK, NULL) >= 0)
			ctl_finish(e->conn);
		ep_free(e);
		break;
	case CTL_DS_ATTACH:
	case CTL_DS_WAKEUP:
		if (type != DSM_ATTACH_REP || a->index >= DS_MAX_ENDPOINTS || a->count < 2 ||
		    a->count > DS_MAX_ENDPOINTS || a->index >= a->count) {
			ep_fail(e, -EPROTO, "malformed answer from node %u", from);
			break;
		}
		ep_attached(e, a, e->ctl_type == CTL_DS_WAKEUP);
		break;
	default:
		break;
	}
}

static void take_resume(struct dsep *e);

static void on_ep_timeout(struct loop_timer *t, void *userdata)
{
	struct dsep *e = userdata;

	(void)t;
	if (e->state == EP_TAKING && e->take_held) {
		/* A take has no request: the timer was fault injection's. */
		log_warn("fault injection: sending the feed to node %u on now", e->take_to);
		e->take_held = false;
		take_resume(e);
		return;
	}
	if (!e->req)
		return;
	if (e->state == EP_HELD) {
		/* Nobody knows the handle: the endpoint cannot be woken up. */
		ep_fail(e, -ETIMEDOUT, "the home node %u of stream %" PRIx64 " did not answer",
			e->req_node, e->id);
		return;
	}
	ep_fail(e, -ETIMEDOUT, "the home node %u of stream %" PRIx64 " did not answer in %llu s",
		e->req_node, e->id, DS_TIMEOUT_USEC / 1000000);
}

/* ---- suspend: the process hands its links over ------------------------------- */

static void suspend_begin(struct dsep *e)
{
	if (ep_alloc_links(e) < 0) {
		ep_fail(e, -ENOMEM, "out of memory on node %u", e->d->self);
		return;
	}
	e->state = EP_SUSPENDING;
	(void)ctl_send(e->conn, CTL_DS_SUSPEND_GO, NULL);
}

static void suspend_hand(struct dsep *e, const struct ctl_request *req)
{
	int fds[CTL_FRAME_FDS];
	struct dslink *l;
	struct dsattrs a;
	size_t n;

	if (parse(req->payload, req->len, &a) < 0 || a.peer >= e->n || a.count > CTL_FRAME_FDS) {
		ep_fail(e, -EBADMSG, "malformed hand-over of a link");
		return;
	}
	n = ctl_conn_take_fds_n(e->conn, fds, a.count);
	l = &e->links[a.peer];
	if (n != a.count || (a.data_len && buf_append(&l->pre, a.data, a.data_len) < 0)) {
		for (size_t k = 0; k < n; k++)
			safe_close(fds[k]);
		ep_fail(e, n != a.count ? -EBADMSG : -ENOMEM, "cannot take the links over");
		return;
	}
	for (size_t k = 0; k < n; k++) {
		int fl = fcntl(fds[k], F_GETFL);
		struct stat st;

		/* Only sockets: what is held is read to its end at the wakeup. */
		if (fstat(fds[k], &st) < 0 || !S_ISSOCK(st.st_mode)) {
			for (; k < n; k++)
				safe_close(fds[k]);
			ep_fail(e, -EBADF, "a link handed over is not a socket");
			return;
		}
		if (fl >= 0 && !(fl & O_NONBLOCK))
			(void)fcntl(fds[k], F_SETFL, fl | O_NONBLOCK);
		if (fds_push(&l->fds, &l->n_fds, fds[k]) < 0) {
			safe_close(fds[k]);
			ep_fail(e, -ENOMEM, "out of memory on node %u", e->d->self);
			return;
		}
	}
}

static void suspend_end(struct dsep *e)
{
	struct buf b = BUF_INIT;
	int r = 0;

	e->state = EP_HELD;
	/* What came meanwhile is read after what the process handed. */
	for (uint32_t j = 0; j < e->n; j++) {
		struct dslink *l = &e->links[j];

		for (size_t k = 0; k < l->n_later; k++)
			held_add(e, j, l->later[k].fd, l->later[k].feed);
		free(l->later);
		l->later = NULL;
		l->n_later = 0;
	}
	r = random_bytes(e->secret, sizeof(e->secret));
	put64(&b, &r, A_STREAM, e->id);
	put32(&b, &r, A_INDEX, e->index);
	putb(&b, &r, A_SECRET, e->secret, sizeof(e->secret));
	r = ep_ask(e, DSM_SUSPEND, &b, r);
	if (r < 0)
		ep_fail_home(e, r);
}

void dstream_conn_frame(struct dsep *e, const struct ctl_request *req)
{
	switch (req->type) {
	case CTL_DS_SUSPEND:
		if (e->state == EP_ATTACHED)
			return suspend_begin(e);
		break;
	case CTL_DS_HAND:
		if (e->state == EP_SUSPENDING)
			return suspend_hand(e, req);
		break;
	case CTL_DS_HANDED:
		if (e->state == EP_SUSPENDING)
			return suspend_end(e);
		break;
	default:
		break;
	}
	ep_fail(e, -EPROTO, "unexpected frame %u on a dstream endpoint's connection", req->type);
}

void dstream_conn_gone(struct dsep *e)
{
	e->conn = NULL;
	switch (e->state) {
	case EP_REQUEST:
		/* The answer finds no one; an attach is undone then. */
		break;
	case EP_HELD:
		if (e->req)
			e->orphan = true; /* nobody will get its handle */
		break;
	default:
		ep_close(e);
		break;
	}
}

/* ---- feeds: what a woken endpoint reads first -------------------------------- */

static void feed_flush(struct dsfeed *f);

static void on_feed_io(struct loop_io *io, int fd, unsigned events, void *userdata)
{
	(void)io;
	(void)fd;
	(void)events;
	feed_flush(userdata);
}

static void feed_flush(struct dsfeed *f)
{
	struct dsep *e = f->e;
	uint32_t peer = f->peer;

	while (f->off < f->out.len) {
		ssize_t n = send(f->fd, f->out.data + f->off, f->out.len - f->off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			/* Its reader is gone (the process closed it). */
			log_debug_errno(errno, "stream %" PRIx64 ": feed of endpoint %u", e->id,
					e->index);
			e->feeds[peer] = feed_free(f);
			return;
		}
		f->off += (size_t)n;
	}
	if (f->off == f->out.len) {
		buf_reset(&f->out);
		f->off = 0;
		if (f->last) {
			e->feeds[peer] = feed_free(f);
			return;
		}
	}
	if (!f->io && f->off < f->out.len &&
	    loop_io_new(e->d->loop, f->fd, LOOP_WRITE, on_feed_io, f, &f->io) < 0) {
		log_warn("stream %" PRIx64 ": cannot watch the feed of endpoint %u", e->id, e->index);
		e->feeds[peer] = feed_free(f);
		return;
	}
	if (f->io)
		(void)loop_io_set_events(f->io, f->off < f->out.len ? LOOP_WRITE : 0);
}

/* The endpoint fed by node from; one woken up (or held) here again is
 * preferred to one that has left since (TAKING: its feeds are still read). */
static struct dsep *ep_find_fed(struct node_daemon *d, uint64_t id, uint32_t index,
				uint32_t from)
{
	struct dsep *taking = NULL;

	for (struct dsep *e = mgr(d)->eps; e; e = e->next) {
		if (e->id != id || e->index != index || !e->feeds || e->feed_from != from)
			continue;
		if (e->state != EP_TAKING)
			return e;
		taking = e;
	}
	return taking;
}

static void on_feed(struct node_daemon *d, uint32_t from, const struct dsattrs *a)
{
	struct dsep *e = ep_find_fed(d, a->id, a->index, from);
	struct dsfeed *f;

	if (!e || a->peer >= e->n || !(f = e->feeds[a->peer]))
		return;
	if (f->out.len - f->off + a->data_len > FEED_MAX ||
	    (a->data_len && buf_append(&f->out, a->data, a->data_len) < 0)) {
		log_warn("stream %" PRIx64 ": out of memory for what endpoint %u held", e->id,
			 e->index);
		e->feeds[a->peer] = feed_free(f);
		return;
	}
	if (a->flags & 1)
		f->last = true;
	feed_flush(f);
}

static void on_taken(struct node_daemon *d, uint32_t from, const struct dsattrs *a)
{
	struct dsep *e = ep_find_fed(d, a->id, a->index, from);

	if (!e)
		return;
	if (a->err)
		log_warn("stream %" PRIx64 ": node %u could not send what endpoint %u held: %s",
			 e->id, from, e->index, a->message);
	/* Every feed ends with what it has. */
	for (uint32_t j = 0; j < e->n; j++) {
		if (!e->feeds[j])
			continue;
		e->feeds[j]->last = true;
		feed_flush(e->feeds[j]);
	}
}

/* ---- take: a held endpoint goes where it woke up ----------------------------- */

static void take_step(struct dsep *e);

static int feed_send(struct dsep *e, uint32_t peer, const void *data, size_t len, bool last)
{
	struct buf b = BUF_INIT;
	int r = 0;

	put64(&b, &r, A_STREAM, e->id);
	put32(&b, &r, A_INDEX, e->index);
	put32(&b, &r, A_PEER, peer);
	if (len)
		putb(&b, &r, A_DATA, data, len);
	put32(&b, &r, A_FLAGS, last ? 1 : 0);
	return dsend(e->d, e->take_to, DSM_FEED, &b, r);
}

static const struct node_fault *fault_find(struct node_daemon *d, uint32_t type)
{
	for (size_t i = 0; i < mgr(d)->n_faults; i++)
		if (mgr(d)->faults[i].type == type)
			return &mgr(d)->faults[i];
	return NULL;
}

/* Fault injection ("feed"): once the first chunk of a take is sent, the
 * rest waits for the endpoint's timer. True if it does. */
static bool take_fault_hold(struct dsep *e)
{
	const struct node_fault *f = fault_find(e->d, DSM_FEED);

	if (!f || e->take_fault_done)
		return false;
	e->take_fault_done = true;
	e->take_held = true;
	loop_timer_arm(e->timer, (uint64_t)f->delay_ms * 1000);
	log_warn("fault injection: holding the feed to node %u back for %u ms", e->take_to,
		 f->delay_ms);
	return true;
}

static void take_done(struct dsep *e, int err, const char *why)
{
	struct buf b = BUF_INIT;
	int r = 0;

	put64(&b, &r, A_STREAM, e->id);
	put32(&b, &r, A_INDEX, e->index);
	if (err < 0) {
		put32(&b, &r, A_ERRNO, (uint32_t)-err);
		puts_(&b, &r, A_MESSAGE, why);
		log_warn("stream %" PRIx64 ": what endpoint %u held here is lost: %s", e->id,
			 e->index, why);
	}
	dsend(e->d, e->take_to, DSM_TAKEN, &b, r);
	log_debug("stream %" PRIx64 ": endpoint %u taken to node %u", e->id, e->index,
		  e->take_to);
	ep_free(e);
}

static void on_take_io(struct loop_io *io, int fd, unsigned events, void *userdata)
{
	struct dsep *e = userdata;
	struct dslink *l = &e->links[e->take_link];
	static uint8_t chunk[FEED_CHUNK];
	size_t got = 0;
	bool end = false, held;

	(void)io;
	(void)events;
	while (got < sizeof(chunk)) {
		ssize_t n = read(fd, chunk + got, sizeof(chunk) - got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			/* A reset: the peer is gone; what came before it is all. */
			end = true;
			break;
		}
		if (n == 0) {
			end = true;
			break;
		}
		got += (size_t)n;
	}
	if (got && feed_send(e, e->take_link, chunk, got, false) < 0)
		return take_done(e, -EHOSTDOWN, "its new node is down");
	held = got && take_fault_hold(e);
	if (!end) {
		if (held) {
			(void)loop_io_set_events(e->take_io, 0);
			return;
		}
		/* Read no faster than the new node takes it: msg's window. */
		if (msg_peer_writable(e->d->msg, e->take_to) == 0) {
			e->take_paused = true;
			(void)loop_io_set_events(e->take_io, 0);
		}
		return;
	}
	e->take_io = loop_io_free(e->take_io);
	l->fds[e->take_pos] = safe_close(l->fds[e->take_pos]);
	e->take_pos++;
	if (!held)
		take_step(e);
}

/* The take goes on after fault injection held it back. */
static void take_resume(struct dsep *e)
{
	if (!e->take_io)
		take_step(e);
	else if (!e->take_paused)
		(void)loop_io_set_events(e->take_io, LOOP_READ);
}

/* Send the held links one after the other: the undelivered bytes, then
 * each socket read to its end. */
static void take_step(struct dsep *e)
{
	while (e->take_link < e->n) {
		struct dslink *l = &e->links[e->take_link];
		int r;

		if (!ds_pair(e->type, e->index, e->take_link)) {
			e->take_link++;
			continue;
		}
		if (!e->take_pre_sent) {
			bool sent = l->pre.len > 0;

			e->take_pre_sent = true;
			if (sent && feed_send(e, e->take_link, l->pre.data, l->pre.len, false) < 0)
				return take_done(e, -EHOSTDOWN, "its new node is down");
			buf_release(&l->pre);
			if (sent && take_fault_hold(e))
				return; /* the timer goes on */
		}
		if (e->take_pos < l->n_fds) {
			r = loop_io_new(e->d->loop, l->fds[e->take_pos], LOOP_READ, on_take_io, e,
					&e->take_io);
			if (r < 0)
				return take_done(e, r, "cannot watch a held socket");
			return;
		}
		if (feed_send(e, e->take_link, NULL, 0, true) < 0)
			return take_done(e, -EHOSTDOWN, "its new node is down");
		e->take_link++;
		e->take_pos = 0;
		e->take_pre_sent = false;
	}
	take_done(e, 0, NULL);
}

static void on_writable(struct msg *m, uint32_t node, void *userdata)
{
	struct node_daemon *d = userdata;

	(void)m;
	if (!d->dstreams)
		return;
	for (struct dsep *e = mgr(d)->eps; e; e = e->next) {
		if (e->state != EP_TAKING || e->take_to != node || !e->take_paused)
			continue;
		e->take_paused = false;
		if (e->take_io && !e->take_held)
			(void)loop_io_set_events(e->take_io, LOOP_READ);
	}
}

static void on_take(struct node_daemon *d, uint32_t from, const struct dsattrs *a)
{
	struct dsep *e = ep_find(d, a->id, a->index, true);

	if (!e || e->take_started || e->req) {
		struct buf b = BUF_INIT;
		int r = 0;

		put64(&b, &r, A_STREAM, a->id);
		put32(&b, &r, A_INDEX, a->index);
		put32(&b, &r, A_ERRNO, ENOENT);
		puts_(&b, &r, A_MESSAGE, "the endpoint is not held there");
		dsend(d, from, DSM_TAKEN, &b, r);
		return;
	}
	e->state = EP_TAKING;
	e->take_started = true;
	e->take_to = from;
	take_step(e);
}

/* ---- links: building their sockets ----------------------------------------- */

static struct dsbuild *build_free(struct dsbuild *b)
{
	if (!b)
		return NULL;
	LIST_REMOVE(mgr(b->d)->builds, b);
	for (size_t k = 0; k < b->n_hs; k++) {
		loop_io_free(b->hs[k]->io);
		msg_chan_hs_free(b->hs[k]->hs);
		free(b->hs[k]);
	}
	loop_io_free(b->listen_io);
	safe_close(b->listen_fd);
	loop_timer_free(b->timer);
	memset(b->key, 0, sizeof(b->key));
	free(b);
	return NULL;
}

/* Tell the home that the end of this node is installed (err 0), or not.
 * both: a listening end that failed before its peer's node heard of the
 * link answers for that end too. */
static void linked_ends(struct node_daemon *d, uint64_t id, uint32_t index, uint32_t peer,
			int err, const char *why, uint32_t both)
{
	struct buf b = BUF_INIT;
	int r = 0;

	put64(&b, &r, A_STREAM, id);
	put32(&b, &r, A_INDEX, index);
	put32(&b, &r, A_PEER, peer);
	if (both)
		put32(&b, &r, A_NODE, both);
	if (err < 0) {
		put32(&b, &r, A_ERRNO, (uint32_t)-err);
		puts_(&b, &r, A_MESSAGE, why);
	}
	dsend(d, home_of(d, id), DSM_LINKED, &b, r);
}

static void linked(struct node_daemon *d, uint64_t id, uint32_t index, uint32_t peer, int err,
		   const char *why)
{
	linked_ends(d, id, index, peer, err, why, 0);
}

static void build_fail(struct dsbuild *b, int err, const char *why)
{
	log_warn_errno(err, "stream %" PRIx64 ": the link of endpoints %u and %u (node %u): %s",
		       b->id, b->index, b->peer, b->peer_node, why);
	linked(b->d, b->id, b->index, b->peer, err, why);
	build_free(b);
}

static void hs_drop(struct dsbuild *b, size_t k)
{
	loop_io_free(b->hs[k]->io);
	msg_chan_hs_free(b->hs[k]->hs);
	free(b->hs[k]);
	b->hs[k] = b->hs[--b->n_hs];
}

static void on_hs_io(struct loop_io *io, int fd, unsigned events, void *userdata)
{
	struct dshs *h = userdata;
	struct dsbuild *b = h->b;
	struct msg_chan_session s = MSG_CHAN_SESSION_INIT;
	size_t k;
	int r;

	(void)io;
	(void)fd;
	(void)events;
	r = msg_chan_hs_step(h->hs, &s);
	for (k = 0; k < b->n_hs && b->hs[k] != h; k++)
		;
	if (r == 0) {
		(void)loop_io_set_events(h->io, msg_chan_hs_events(h->hs) == POLLOUT ? LOOP_WRITE
										  : LOOP_READ);
		return;
	}
	if (r < 0) {
		log_debug_errno(r, "stream %" PRIx64 ": a link handshake failed", b->id);
		hs_drop(b, k);
		if (b->listen_fd < 0)
			build_fail(b, r, "cannot connect");
		return;
	}
	/* Authenticated: the socket is the link's, for the endpoint here. Its
	 * watch goes first: epoll would keep watching the socket's file after
	 * our fd is closed, while the process that gets it holds it. */
	h->io = loop_io_free(h->io);
	log_debug("stream %" PRIx64 ": endpoint %u linked to endpoint %u on node %u", b->id,
		  b->index, b->peer, b->peer_node);
	give(ep_find(b->d, b->id, b->index, false), b->peer, TAKE_FD(s.fd), false);
	msg_chan_session_release(&s);
	linked(b->d, b->id, b->index, b->peer, 0, NULL);
	build_free(b);
}

static int hs_add(struct dsbuild *b, struct msg_chan_hs *hs)
{
	struct dshs *h;
	int r;

	if (b->n_hs == BUILD_HS_MAX)
		hs_drop(b, 0); /* a silent stranger does not hold up the peer */
	h = calloc(1, sizeof(*h));
	if (!h) {
		msg_chan_hs_free(hs);
		return -ENOMEM;
	}
	h->b = b;
	h->hs = hs;
	r = loop_io_new(b->d->loop, msg_chan_hs_fd(hs),
			msg_chan_hs_events(hs) == POLLOUT ? LOOP_WRITE : LOOP_READ, on_hs_io, h,
			&h->io);
	if (r < 0) {
		msg_chan_hs_free(hs);
		free(h);
		return r;
	}
	b->hs[b->n_hs++] = h;
	return 0;
}

static void on_build_accept(struct loop_io *io, int fd, unsigned events, void *userdata)
{
	struct dsbuild *b = userdata;

	(void)io;
	(void)events;
	for (;;) {
		struct msg_chan_hs *hs;
		int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (cfd < 0)
			return;
		if (msg_chan_hs_accept(cfd, b->key, &hs) < 0 || hs_add(b, hs) < 0)
			log_debug("stream %" PRIx64 ": cannot take a link connection", b->id);
	}
}

static void on_build_timeout(struct loop_timer *t, void *userdata)
{
	struct dsbuild *b = userdata;

	(void)t;
	build_fail(b, -ETIMEDOUT, b->listen_fd >= 0 ? "no connection came" : "cannot connect");
}

static struct dsbuild *build_new(struct node_daemon *d, const struct dsattrs *a,
				 uint32_t peer_node)
{
	struct dsbuild *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->d = d;
	b->id = a->id;
	b->index = a->index;
	b->peer = a->peer;
	b->peer_node = peer_node;
	b->listen_fd = -1;
	memcpy(b->key, a->key, sizeof(b->key));
	if (loop_timer_new(d->loop, on_build_timeout, b, &b->timer) < 0) {
		free(b);
		return NULL;
	}
	loop_timer_arm(b->timer, DS_TIMEOUT_USEC);
	LIST_PREPEND(mgr(d)->builds, b);
	return b;
}

static void on_link(struct node_daemon *d, uint32_t from, const struct dsattrs *a)
{
	const struct node_config_node *self = node_config_find(&d->config, d->self);
	struct dsep *e = ep_find(d, a->id, a->index, false);
	struct dsbuild *b;
	struct buf m = BUF_INIT;
	uint16_t port;
	int r = 0;

	(void)from;
	if (a->peer >= DS_MAX_ENDPOINTS || a->index >= DS_MAX_ENDPOINTS || !a->key)
		return linked(d, a->id, a->index, a->peer, -EBADMSG, "malformed link request");
	if (a->flags == DS_LINK_LOCAL) {
		struct dsep *f = ep_find(d, a->id, a->peer, false);
		int sp[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) < 0)
			return linked(d, a->id, a->index, a->peer, -errno,
				      "cannot make a socketpair");
		log_debug("stream %" PRIx64 ": endpoints %u and %u linked here", a->id, a->index,
			  a->peer);
		give(e, a->peer, sp[0], false);
		give(f, a->index, sp[1], false);
		return linked(d, a->id, a->index, a->peer, 0, NULL);
	}
	if (a->flags != DS_LINK_LISTEN || !self || a->node == UINT32_MAX)
		return linked_ends(d, a->id, a->index, a->peer, -EBADMSG, "malformed link request",
				   a->node);
	if (!e)
		return linked_ends(d, a->id, a->index, a->peer, -ENOENT, "no such endpoint here",
				   a->node);
	b = build_new(d, a, a->node);
	if (!b)
		return linked_ends(d, a->id, a->index, a->peer, -ENOMEM, "out of memory", a->node);
	r = msg_chan_listen(self->address, &b->listen_fd, &port);
	if (r >= 0)
		r = loop_io_new(d->loop, b->listen_fd, LOOP_READ, on_build_accept, b,
				&b->listen_io);
	if (r < 0) {
		linked_ends(d, a->id, a->index, a->peer, r, "cannot listen", a->node);
		build_free(b);
		return;
	}
	r = 0;
	put64(&m, &r, A_STREAM, a->id);
	put32(&m, &r, A_INDEX, a->peer);
	put32(&m, &r, A_PEER, a->index);
	puts_(&m, &r, A_ADDRESS, self->address);
	put32(&m, &r, A_PORT, port);
	putb(&m, &r, A_KEY, a->key, MSG_CHAN_KEY_SIZE);
	r = dsend(d, a->node, DSM_LINK_CONNECT, &m, r);
	if (r < 0) {
		linked_ends(d, a->id, a->index, a->peer, r, "cannot reach the peer's node", a->node);
		build_free(b);
	}
}

static void on_link_connect(struct node_daemon *d, uint32_t from, const struct dsattrs *a)
{
	struct msg_chan_hs *hs;
	struct dsbuild *b;
	int r;

	if (!a->key || a->port == 0 || a->port > 65535 || !a->address[0] ||
	    a->peer >= DS_MAX_ENDPOINTS)
		return linked(d, a->id, a->index, a->peer, -EBADMSG, "malformed link request");
	if (!ep_find(d, a->id, a->index, false))
		return linked(d, a->id, a->index, a->peer, -ENOENT, "no such endpoint here");
	b = build_new(d, a, from);
	if (!b)
		return linked(d, a->id, a->index, a->peer, -ENOMEM, "out of memory");
	r = msg_chan_hs_connect(a->address, (uint16_t)a->port, b->key, &hs);
	if (r >= 0)
		r = hs_add(b, hs);
	if (r < 0)
		build_fail(b, r, "cannot connect");
}

/* ---- messages at an endpoint's node --------------------------------------- */

static void on_peer_closed(struct node_daemon *d, const struct dsattrs *a)
{
	struct dsep *e = ep_find(d, a->id, a->index, false);
	struct buf b = BUF_INIT;
	int r = 0;

	if (!e || e->state != EP_ATTACHED || a->peer >= e->n)
		return;
	put32(&b, &r, A_PEER, a->peer);
	put32(&b, &r, A_FLAGS, a->flags & DS_CLOSED_LOST);
	if (r >= 0)
		(void)ctl_send(e->conn, CTL_DS_CLOSED, &b);
	buf_release(&b);
}

/* What the endpoint held here is for node, which failed: nobody else will
 * ever take it. */
static void drop_woken(struct dsep *e, uint32_t node)
{
	log_warn("stream %" PRIx64 ": endpoint %u woke up on node %u, which is down: dropping "
		 "what it held here", e->id, e->index, node);
	ep_free(e);
}

/* The endpoint held here woke up on a node that failed (the home says so,
 * for a take that may not have started: that node's DSM_TAKE never came). */
static void on_drop(struct node_daemon *d, const struct dsattrs *a)
{
	struct dsep *e = ep_find(d, a->id, a->index, true);

	if (!e || e->req || (e->state == EP_TAKING && e->take_to != a->node))
		return;
	drop_woken(e, a->node);
}

static void on_destroyed(struct node_daemon *d, const struct dsattrs *a)
{
	struct dsep *e, *next;

	for (e = mgr(d)->eps; e; e = next) {
		next = e->next;
		if (e->id != a->id || e->state == EP_REQUEST || e->state == EP_TAKING)
			continue;
		if (e->state == EP_ATTACHED) {
			/* The process learns it; its connection ends with it. */
			if (ctl_send(e->conn, CTL_DS_DESTROYED, NULL) >= 0)
				ctl_finish(e->conn);
			ep_free(e);
		} else if (e->state == EP_SUSPENDING) {
			ep_fail(e, -EIDRM, "stream %" PRIx64 " was destroyed", e->id);
		} else if (!e->req) {
			ep_free(e);
		}
	}
}

static void dsm_dispatch(struct node_daemon *d, uint32_t node, uint32_t type, const void *data,
			 size_t len)
{
	struct dsattrs a;

	switch (type) {
	case DSM_CREATE:
	case DSM_DESTROY:
	case DSM_ATTACH:
	case DSM_WAKEUP:
	case DSM_SUSPEND:
	case DSM_UNATTACH:
	case DSM_LINKED:
		home_recv(d, node, type, data, len);
		return;
	default:
		break;
	}
	if (parse(data, len, &a) < 0) {
		log_warn("malformed dstream message %u from node %u, ignoring", type, node);
		return;
	}
	switch (type) {
	case DSM_REPLY:
	case DSM_ATTACH_REP:
		ep_reply(d, node, type, &a);
		break;
	case DSM_LINK:
		on_link(d, node, &a);
		break;
	case DSM_LINK_CONNECT:
		on_link_connect(d, node, &a);
		break;
	case DSM_PEER_CLOSED:
		on_peer_closed(d, &a);
		break;
	case DSM_DESTROYED:
		on_destroyed(d, &a);
		break;
	case DSM_TAKE:
		on_take(d, node, &a);
		break;
	case DSM_FEED:
		on_feed(d, node, &a);
		break;
	case DSM_TAKEN:
		on_taken(d, node, &a);
		break;
	case DSM_DROP:
		on_drop(d, &a);
		break;
	default:
		break;
	}
}

/* ---- fault injection: messages handled late ---------------------------------- */

static const char *const fault_names[] = {
	[DSM_CREATE] = "create",
	[DSM_DESTROY] = "destroy",
	[DSM_ATTACH] = "attach",
	[DSM_WAKEUP] = "wakeup",
	[DSM_SUSPEND] = "suspend",
	[DSM_UNATTACH] = "unattach",
	[DSM_REPLY] = "reply",
	[DSM_ATTACH_REP] = "attached",
	[DSM_LINK] = "link",
	[DSM_LINK_CONNECT] = "connect",
	[DSM_LINKED] = "linked",
	[DSM_PEER_CLOSED] = "closed",
	[DSM_DESTROYED] = "destroyed",
	[DSM_TAKE] = "take",
	[DSM_FEED] = "feed", /* held back where it is sent: take_fault_hold() */
	[DSM_TAKEN] = "taken",
	[DSM_DROP] = "drop",
};

static struct dsdelayed *delayed_free(struct dsdelayed *x)
{
	struct ds_mgr *g = mgr(x->d);

	for (struct dsdelayed **pp = &g->delayed; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			break;
		}
	loop_timer_free(x->timer);
	free(x);
	return NULL;
}

/* Handle what is held back from node, in the order it came. */
static void delayed_release(struct node_daemon *d, uint32_t node)
{
	for (;;) {
		struct dsdelayed *x = mgr(d)->delayed;

		while (x && x->node != node)
			x = x->next;
		if (!x)
			return;
		if (x->timer)
			log_warn("fault injection: handling the %s from node %u now",
				 fault_names[x->type], node);
		dsm_dispatch(d, node, x->type, x->data, x->len);
		delayed_free(x);
	}
}

static void on_delayed(struct loop_timer *t, void *userdata)
{
	struct dsdelayed *x = userdata;

	(void)t;
	delayed_release(x->d, x->node);
}

/* True if fault injection holds this message back: it is late, or one
 * from the same node is. */
static bool fault_delays(struct node_daemon *d, uint32_t node, uint32_t type, const void *data,
			 size_t len)
{
	const struct node_fault *f = type == DSM_FEED ? NULL : fault_find(d, type);
	struct dsdelayed *x, **tail = &mgr(d)->delayed;
	bool behind = false;

	for (; *tail; tail = &(*tail)->next)
		behind |= (*tail)->node == node;
	if (!f && !behind)
		return false;
	x = calloc(1, sizeof(*x) + len);
	if (!x) {
		log_warn("fault injection: out of memory, handling the message %u now", type);
		return false;
	}
	x->d = d;
	x->node = node;
	x->type = type;
	x->len = len;
	memcpy(x->data, data, len);
	if (!behind) {
		if (loop_timer_new(d->loop, on_delayed, x, &x->timer) < 0) {
			free(x);
			return false;
		}
		loop_timer_arm(x->timer, (uint64_t)f->delay_ms * 1000);
		log_warn("fault injection: holding the %s from node %u back for %u ms",
			 fault_names[type], node, f->delay_ms);
	}
	*tail = x;
	return true;
}

static void dsm_recv(struct msg *m, uint32_t node, uint16_t channel, uint32_t type,
		     const void *data, size_t len, void *userdata)
{
	struct node_daemon *d = userdata;

	(void)m;
	(void)channel;
	if (!d->dstreams)
		return; /* shutting down */
	if (mgr(d)->n_faults && fault_delays(d, node, type, data, len))
		return;
	dsm_dispatch(d, node, type, data, len);
}

int dstream_init(struct node_daemon *d)
{
	struct msg_handler h = { .recv = dsm_recv, .writable = on_writable };

	d->dstreams = calloc(1, sizeof(struct ds_mgr));
	if (!d->dstreams)
		return -ENOMEM;
	mgr(d)->n_faults = node_faults_parse(d, FAULT_ENV, fault_names, ARRAY_SIZE(fault_names),
					     mgr(d)->faults, FAULTS_MAX);
	return msg_register(d->msg, NODE_CH_DSTREAM, &h, d);
}

/* Is fd a TCP connection to address (numeric, as in cluster.conf)? */
static bool sock_peer_is(int fd, const char *address)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	uint8_t want[sizeof(struct in6_addr)];

	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0 ||
	    inet_pton(ss.ss_family, address, want) != 1)
		return false;
	if (ss.ss_family == AF_INET)
		return !memcmp(&((struct sockaddr_in *)&ss)->sin_addr, want, sizeof(struct in_addr));
	if (ss.ss_family == AF_INET6)
		return !memcmp(&((struct sockaddr_in6 *)&ss)->sin6_addr, want,
			       sizeof(struct in6_addr));
	return false;
}

/* The node of a held endpoint's peer failed: the held sockets from there
 * end with what has come (a read then gets their end). Else a take would
 * wait for their end for ever: the peer's process ends its old socket when
 * it moves to the link's next one, which only its node's daemon gives it,
 * and nothing at all comes from a dead machine. */
static void held_end_from(struct dsep *e, const char *address)
{
	for (uint32_t j = 0; j < e->n; j++) {
		struct dslink *l = &e->links[j];

		for (size_t k = 0; k < l->n_fds; k++)
			if (l->fds[k] >= 0 && sock_peer_is(l->fds[k], address))
				(void)shutdown(l->fds[k], SHUT_RD);
	}
}

void dstream_node_down(struct node_daemon *d, uint32_t node)
{
	const struct node_config_node *gone = node_config_find(&d->config, node);
	struct dsdir *x, *xn;
	struct dsep *e, *en;
	struct dsbuild *b, *bn;

	if (!d->dstreams)
		return;
	/* What fault injection held back from the node came before it failed. */
	delayed_release(d, node);
	/* As the home: endpoints there are lost, their peers learn it. One
	 * that woke up there may have left what it held on the node that
	 * held it: nobody else will ever take that. */
	for (x = mgr(d)->dirs; x; x = xn) {
		xn = x->next;
		for (uint32_t i = 0; i < x->n; i++) {
			struct dsdir_ep *p = &x->ep[i];

			if ((p->state != DIR_ATTACHED && p->state != DIR_SUSPENDED) ||
			    p->node != node)
				continue;
			log_info("stream %" PRIx64 ": endpoint %u lost with node %u", x->id, i,
				 node);
			if (p->state == DIR_ATTACHED && p->held_on && node_up(d, p->held_on)) {
				struct buf m = BUF_INIT;
				int r = 0;

				put64(&m, &r, A_STREAM, x->id);
				put32(&m, &r, A_INDEX, i);
				put32(&m, &r, A_NODE, node);
				dsend(d, p->held_on, DSM_DROP, &m, r);
			}
			close_endpoint(x, i, DS_CLOSED_LOST);
		}
		for (size_t k = 0; k < x->n_waits;)
			if (x->waits[k] == node)
				x->waits[k] = x->waits[--x->n_waits];
			else
				k++;
		if (!dir_busy(x))
			dir_next(x);
	}
	for (e = mgr(d)->eps; e; e = en) {
		en = e->next;
		if (e->req && e->req_node == node) {
			ep_fail_home(e, -EHOSTDOWN);
			continue;
		}
		if (e->state == EP_TAKING && e->take_to == node) {
			drop_woken(e, node);
			continue;
		}
		if (e->home == node && e->state == EP_HELD) {
			/* Its handle can no longer be used: nobody knows it is
			 * suspended. It is closed for good. */
			log_warn("stream %" PRIx64 ": endpoint %u held here is lost with its home "
				 "node %u", e->id, e->index, node);
			peers_closed_everywhere(e);
			ep_free(e);
			continue;
		}
		if (gone && e->links && (e->state == EP_HELD || e->state == EP_TAKING))
			held_end_from(e, gone->address);
		if (e->feeds && e->feed_from == node)
			for (uint32_t j = 0; j < e->n; j++)
				if (e->feeds[j]) {
					log_warn("stream %" PRIx64 ": node %u failed before it sent "
						 "all endpoint %u held", e->id, node, e->index);
					e->feeds[j]->last = true;
					feed_flush(e->feeds[j]);
				}
	}
	for (b = mgr(d)->builds; b; b = bn) {
		bn = b->next;
		if (b->peer_node == node)
			build_free(b);
	}
}

void dstream_free_all(struct node_daemon *d)
{
	if (!d->dstreams)
		return;
	while (mgr(d)->delayed)
		delayed_free(mgr(d)->delayed);
	while (mgr(d)->builds)
		build_free(mgr(d)->builds);
	while (mgr(d)->eps)
		ep_free(mgr(d)->eps);
	while (mgr(d)->dirs)
		dir_free(mgr(d)->dirs);
	free(d->dstreams);
	d->dstreams = NULL;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The control socket: a Unix stream socket for the command line. Each
 * connection carries one request, authorized by the caller's credentials
 * (SO_PEERCRED, SO_PEERGROUPS), then the frames of its answer; the daemon
 * closes it once the answer is sent. Nothing a client sends or fails to
 * send can harm the daemon: frames are size-checked before they are
 * buffered, a malformed one ends its connection with an error, and writes
 * never block.
 *
 * A connection:
 *
 *   accept --> IDLE --request--> BUSY --answer sent--> FINISHING --flushed--> DEAD
 *               |                 |                                           ^
 *               +-- EOF, error, malformed frame -----------------------------+
 *
 * 1. A DEAD connection has no fd and no io source; the gc defer tells its
 *    session or request (run_conn_gone(), req_conn_gone()) and frees it,
 *    never a callback that may still use it.
 * 2. Only a BUSY connection with a run session accepts session frames, and
 *    only one that attached a dstream endpoint accepts endpoint frames.
 * 3. An fd queued with an answer (ctl_send_fd()) goes out with the first
 *    byte of its frame, and fds received come out in the order they came
 *    (ctl_conn_take_fds_n()): a frame that announces fds takes them from
 *    the front of the queue.
 *
 *   event                  function
 *   new connection         on_accept()
 *   readable               on_conn_io() -> conn_read() -> dispatch()
 *   writable               on_conn_io() -> conn_flush()
 *   answer complete        ctl_finish()
 *   any error              ctl_conn_kill()
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define LOG_PREFIX "control"
#include "base/log.h"
#include "node/node-int.h"
#include "base/banned.h"

#define MAX_CONNS 256
/* Connections one user other than root may hold open at once. */
#define MAX_CONNS_PER_USER 32
/* A connection must send its request this soon after it is accepted. */
#define IDLE_USEC (10ull * 1000 * 1000)
#define READ_CHUNK (64u << 10)
/* Output buffered for a connection above which its producers pause. */
#define OUT_HIGH (1u << 20)
/* Fds a connection may have received and not yet taken. */
#define IN_FDS_MAX 64

/* An fd to pass with the frame that starts at byte `at` of the output. */
struct out_fd {
	size_t at;
	int fd;
};

struct ctl_conn {
	struct node_daemon *d;
	struct ctl_conn *next, *prev;
	int fd;
	struct loop_io *io;
	struct loop_timer *idle;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	gid_t *groups;
	size_t n_groups;
	struct buf in;
	struct buf out;
	size_t out_off;
	int fds[IN_FDS_MAX];
	size_t n_fds;
	struct out_fd *out_fds;
	size_t n_out_fds;
	bool dead, finishing, busy;
	struct run_session *session;
	struct pending *pending;
	struct standin *standin;
	struct keep_req *keep;
	struct dsep *dsep;
};

bool ctl_conn_alive(const struct ctl_conn *c)
{
	return c && !c->dead;
}

uid_t ctl_conn_uid(const struct ctl_conn *c)
{
	return c->uid;
}

gid_t ctl_conn_gid(const struct ctl_conn *c)
{
	return c->gid;
}

const gid_t *ctl_conn_groups(const struct ctl_conn *c, size_t *ret_n)
{
	*ret_n = c->n_groups;
	return c->groups;
}

size_t ctl_out_pending(const struct ctl_conn *c)
{
	return c->out.len - c->out_off;
}

void ctl_conn_set_session(struct ctl_conn *c, struct run_session *s)
{
	c->session = s;
}

void ctl_conn_set_pending(struct ctl_conn *c, struct pending *p)
{
	c->pending = p;
}

void ctl_conn_set_standin(struct ctl_conn *c, struct standin *s)
{
	c->standin = s;
}

pid_t ctl_conn_pid(const struct ctl_conn *c)
{
	return c->pid;
}

void ctl_conn_set_keep(struct ctl_conn *c, struct keep_req *k)
{
	c->keep = k;
}

void ctl_conn_set_dsep(struct ctl_conn *c, struct dsep *e)
{
	c->dsep = e;
}

size_t ctl_conn_take_fds_n(struct ctl_conn *c, int *ret_fds, size_t max)
{
	size_t n = MIN(max, c->n_fds);

	for (size_t i = 0; i < n; i++)
		ret_fds[i] = c->fds[i];
	memmove(c->fds, c->fds + n, (c->n_fds - n) * sizeof(int));
	c->n_fds -= n;
	return n;
}

size_t ctl_conn_take_fds(struct ctl_conn *c, int ret_fds[3])
{
	return ctl_conn_take_fds_n(c, ret_fds, 3);
}

static void close_fds(struct ctl_conn *c)
{
	for (size_t i = 0; i < c->n_fds; i++)
		safe_close(c->fds[i]);
	c->n_fds = 0;
	for (size_t i = 0; i < c->n_out_fds; i++)
		safe_close(c->out_fds[i].fd);
	c->n_out_fds = 0;
}

/* The session or request of a connection learns that it is gone only from
 * the gc, so that nothing is freed under a caller of ctl_send(). */
void ctl_conn_kill(struct ctl_conn *c)
{
	if (!c || c->dead)
		return;
	c->dead = true;
	c->io = loop_io_free(c->io);
	c->idle = loop_timer_free(c->idle);
	c->fd = safe_close(c->fd);
	close_fds(c);
	if (c->d->gc)
		loop_defer_schedule(c->d->gc);
}

static struct ctl_conn *conn_free(struct ctl_conn *c)
{
	struct run_session *s;
	struct pending *p;
	struct standin *si;
	struct keep_req *k;
	struct dsep *e;

	ctl_conn_kill(c);
	s = TAKE_PTR(c->session);
	p = TAKE_PTR(c->pending);
	si = TAKE_PTR(c->standin);
	k = TAKE_PTR(c->keep);
	e = TAKE_PTR(c->dsep);
	if (s)
		run_conn_gone(s);
	if (p)
		req_conn_gone(p);
	if (si)
		standin_conn_gone(si, c->d);
	if (k)
		keep_conn_gone(k);
	if (e)
		dstream_conn_gone(e);
	buf_release(&c->in);
	buf_release(&c->out);
	free(c->out_fds);
	free(c->groups);
	free(c);
	return NULL;
}

static void on_gc(struct loop_defer *defer, void *userdata)
{
	struct node_daemon *d = userdata;
	struct ctl_conn *c, *next;

	(void)defer;
	for (c = d->conns; c; c = next) {
		next = c->next;
		if (!c->dead)
			continue;
		LIST_REMOVE(d->conns, c);
		d->n_conns--;
		conn_free(c);
	}
}

static void update_events(struct ctl_conn *c)
{
	unsigned ev = LOOP_READ;

	if (c->dead)
		return;
	if (ctl_out_pending(c) > 0)
		ev |= LOOP_WRITE;
	(void)loop_io_set_events(c->io, ev);
}

/* Send len bytes of the output at most, with the first queued fd if asked. */
static ssize_t send_some(struct ctl_conn *c, size_t len, bool with_fd)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} cmsg;
	struct iovec iov = { .iov_base = c->out.data + c->out_off, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (with_fd) {
		struct cmsghdr *cm;

		memset(&cmsg, 0, sizeof(cmsg));
		mh.msg_control = cmsg.buf;
		mh.msg_controllen = sizeof(cmsg.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &c->out_fds[0].fd, sizeof(int));
	}
	return sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static int conn_flush(struct ctl_conn *c)
{
	size_t before = ctl_out_pending(c);

	while (ctl_out_pending(c) > 0) {
		size_t len = ctl_out_pending(c);
		bool with_fd = false;
		ssize_t n;

		/* An fd goes with the first byte of its frame: send up to the
		 * next such frame, then that frame with its fd. */
		if (c->n_out_fds > 0) {
			if (c->out_fds[0].at > c->out_off)
				len = c->out_fds[0].at - c->out_off;
			else {
				with_fd = true;
				if (c->n_out_fds > 1)
					len = c->out_fds[1].at - c->out_off;
			}
		}
		n = send_some(c, len, with_fd);
		if (n > 0 && with_fd) {
			safe_close(c->out_fds[0].fd);
			memmove(c->out_fds, c->out_fds + 1, --c->n_out_fds * sizeof(*c->out_fds));
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			log_debug_errno(errno, "cannot write to client, closing");
			ctl_conn_kill(c);
			return -ECONNRESET;
		}
		c->out_off += (size_t)n;
	}
	if (ctl_out_pending(c) == 0) {
		buf_reset(&c->out);
		c->out_off = 0;
		assert(c->n_out_fds == 0);
		if (c->finishing) {
			ctl_conn_kill(c);
			return 0;
		}
	} else if (c->out_off > (256u << 10)) {
		memmove(c->out.data, c->out.data + c->out_off, ctl_out_pending(c));
		c->out.len -= c->out_off;
		for (size_t i = 0; i < c->n_out_fds; i++)
			c->out_fds[i].at -= c->out_off;
		c->out_off = 0;
	}
	update_events(c);
	if (before >= OUT_HIGH / 2 && ctl_out_pending(c) < OUT_HIGH / 2) {
		if (c->session)
			run_conn_drained(c->session);
		if (c->pending)
			req_conn_drained(c->pending);
	}
	return 0;
}

int ctl_send(struct ctl_conn *c, uint16_t type, const struct buf *payload)
{
	return ctl_send_fd(c, type, payload, -1);
}

int ctl_send_fd(struct ctl_conn *c, uint16_t type, const struct buf *payload, int fd)
{
	size_t start;
	int r;

	if (!ctl_conn_alive(c)) {
		safe_close(fd);
		return -ECONNRESET;
	}
	start = c->out.len;
	if (fd >= 0) {
		struct out_fd *q = realloc(c->out_fds, (c->n_out_fds + 1) * sizeof(*q));

		if (!q) {
			safe_close(fd);
			log_warn_errno(ENOMEM, "cannot queue an answer for a client, closing it");
			ctl_conn_kill(c);
			return -ENOMEM;
		}
		c->out_fds = q;
		q[c->n_out_fds++] = (struct out_fd){ .at = start, .fd = fd };
	}
	r = ctl_frame_begin(&c->out, type);
	if (r >= 0 && payload && payload->len)
		r = buf_append(&c->out, payload->data, payload->len);
	if (r >= 0)
		r = ctl_frame_end(&c->out, start);
	if (r < 0) {
		c->out.len = start;
		if (fd >= 0)
			c->out_fds[--c->n_out_fds].fd = safe_close(fd);
		log_warn_errno(r, "cannot queue an answer for a client, closing it");
		ctl_conn_kill(c);
		return r;
	}
	return conn_flush(c);
}

bool ctl_out_high(const struct ctl_conn *c)
{
	return ctl_out_pending(c) >= OUT_HIGH;
}

void ctl_send_error(struct ctl_conn *c, int err, unsigned flags, const char *fmt, ...)
{
	struct buf b = BUF_INIT, m = BUF_INIT;
	va_list ap;
	int r;

	if (!ctl_conn_alive(c))
		return;
	va_start(ap, fmt);
	r = buf_vprintf(&m, fmt, ap);
	va_end(ap);
	if (r >= 0)
		r = attr_put_u32(&b, A_ERRNO, (uint32_t)(err < 0 ? -err : err));
	if (r >= 0)
		r = attr_put_str(&b, A_MESSAGE, m.data ? m.data : "");
	if (r >= 0 && flags)
		r = attr_put_u32(&b, A_FLAGS, flags);
	if (r >= 0)
		r = ctl_send(c, CTL_ERROR, &b);
	buf_release(&b);
	buf_release(&m);
	if (r < 0)
		ctl_conn_kill(c);
	else
		ctl_finish(c);
}

void ctl_finish(struct ctl_conn *c)
{
	if (!ctl_conn_alive(c))
		return;
	c->finishing = true;
	if (ctl_out_pending(c) == 0)
		ctl_conn_kill(c);
}

static void dispatch(struct ctl_conn *c, const struct ctl_request *req)
{
	struct node_daemon *d = c->d;

	if (c->finishing)
		return;
	if (c->busy) {
		if (c->session && req->type >= CTL_STDIN && req->type <= CTL_CLOSE_OUT) {
			run_conn_frame(c->session, req);
			return;
		}
		if (req->type >= CTL_STDIN && req->type <= CTL_CLOSE_OUT)
			return; /* late input for a session that already ended */
		if (c->standin) {
			standin_conn_frame(c->standin, d, req);
			return;
		}
		if (c->dsep) {
			dstream_conn_frame(c->dsep, req);
			return;
		}
		ctl_send_error(c, -EPROTO, 0, "one request per connection (got frame type %u)",
			       req->type);
		return;
	}
	c->busy = true;
	loop_timer_disarm(c->idle);
	if (d->leaving) {
		ctl_send_error(c, -ESHUTDOWN, 0, "ghostd on node %u is shutting down", d->self);
		return;
	}
	switch (req->type) {
	case CTL_NODES:
		node_list_nodes(d, c);
		break;
	case CTL_PS:
	case CTL_KILL:
	case CTL_LOGS:
	case CTL_MIGRATE:
		req_request(d, c, req);
		break;
	case CTL_RUN:
		run_request(d, c, req);
		break;
	case CTL_STANDIN:
		standin_hello(d, c);
		break;
	case CTL_CKPT_SAVE:
	case CTL_CKPT_RESTORE:
	case CTL_CKPT_LIST:
	case CTL_CKPT_DROP:
		keep_request(d, c, req);
		break;
	case CTL_DS_CREATE:
	case CTL_DS_DESTROY:
	case CTL_DS_ATTACH:
	case CTL_DS_WAKEUP:
		dstream_request(d, c, req);
		break;
	default:
		ctl_send_error(c, -EPROTO, 0, "unknown request type %u", req->type);
		break;
	}
}

/* Queue the fds that came; 1 if there were some. */
static int take_cmsg(struct ctl_conn *c, struct msghdr *mh)
{
	int got = 0;

	if (mh->msg_flags & MSG_CTRUNC)
		log_debug("client pid %d sent more fds than a frame may carry", (int)c->pid);
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		size_t n;
		int fds[CTL_FRAME_FDS];

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		n = MIN(n, ARRAY_SIZE(fds));
		memcpy(fds, CMSG_DATA(cm), n * sizeof(int));
		got = 1;
		for (size_t i = 0; i < n; i++) {
			if (c->n_fds < ARRAY_SIZE(c->fds))
				c->fds[c->n_fds++] = fds[i];
			else
				safe_close(fds[i]);
		}
	}
	return got;
}

/* Returns 1 at end of file, 0 when it would block, -errno. */
static int conn_read(struct ctl_conn *c)
{
	for (int rounds = 0; rounds < 16; rounds++) {
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(CTL_FRAME_FDS * sizeof(int))];
		} cmsg;
		struct iovec iov;
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;
		int r, fds;

		r = buf_reserve(&c->in, READ_CHUNK);
		if (r < 0)
			return r;
		iov.iov_base = c->in.data + c->in.len;
		iov.iov_len = READ_CHUNK;
		mh.msg_control = cmsg.buf;
		mh.msg_controllen = sizeof(cmsg.buf);
		n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -errno;
		}
		fds = take_cmsg(c, &mh);
		if (n == 0)
			return 1;
		c->in.len += (size_t)n;
		c->in.data[c->in.len] = '\0';
		if (c->in.len >= CTL_HDR_SIZE + CTL_MAX_PAYLOAD)
			return 0;
		/* The frame these fds came with is handled before more come. */
		if (fds)
			return 0;
	}
	return 0;
}

/* Handle every whole frame in the input buffer. */
static void process_input(struct ctl_conn *c)
{
	size_t off = 0;

	while (!c->dead && c->in.len - off >= CTL_HDR_SIZE) {
		struct ctl_request req;
		uint32_t len;
		int r;

		r = ctl_frame_parse(c->in.data + off, &req.type, &len);
		if (r == -EPROTONOSUPPORT) {
			ctl_send_error(c, r, 0, "control protocol version not supported (ghostd "
				       "speaks version %d): use a ghost of the same release",
				       CTL_VERSION);
			return;
		}
		if (r < 0) {
			log_debug("malformed control frame from uid %u, closing", (unsigned)c->uid);
			ctl_send_error(c, -EBADMSG, 0, "malformed control frame");
			return;
		}
		if (c->in.len - off - CTL_HDR_SIZE < len)
			break;
		req.payload = c->in.data + off + CTL_HDR_SIZE;
		req.len = len;
		off += CTL_HDR_SIZE + len;
		dispatch(c, &req);
	}
	if (c->dead)
		return;
	if (off > 0) {
		memmove(c->in.data, c->in.data + off, c->in.len - off);
		c->in.len -= off;
		c->in.data[c->in.len] = '\0';
	}
}

static void on_conn_io(struct loop_io *io, int fd, unsigned events, void *userdata)
{
	struct ctl_conn *c = userdata;
	int r;

	(void)io;
	(void)fd;
	if (c->dead)
		return;
	if (events & LOOP_WRITE) {
		if (conn_flush(c) < 0 || c->dead)
			return;
	}
	if (!(events & (LOOP_READ | LOOP_HANGUP | LOOP_ERROR)))
		return;
	r = conn_read(c);
	process_input(c);
	if (c->dead)
		return;
	if (r < 0) {
		log_debug_errno(r, "cannot read from client, closing");
		ctl_conn_kill(c);
	} else if (r > 0) {
		/* The client hung up (or shut its side): nothing more will come. */
		ctl_conn_kill(c);
	}
}

static void on_idle(struct loop_timer *t, void *userdata)
{
	struct ctl_conn *c = userdata;

	(void)t;
	log_debug("client pid %d sent no request in time, closing", (int)c->pid);
	ctl_conn_kill(c);
}

static unsigned conns_of(const struct node_daemon *d, uid_t uid)
{
	unsigned n = 0;

	for (const struct ctl_conn *c = d->conns; c; c = c->next)
		/* Stand-ins stay connected as their user: they do not count. */
		if (!c->dead && c->uid == uid && !c->standin)
			n++;
	return n;
}

static int peer_groups(struct ctl_conn *c)
{
	socklen_t len = 64 * sizeof(gid_t);

	for (int tries = 0; tries < 4; tries++) {
		gid_t *g = malloc(len);

		if (!g)
			return -ENOMEM;
		if (getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0) {
			c->groups = g;
			c->n_groups = len / sizeof(gid_t);
			return 0;
		}
		free(g);
		if (errno != ERANGE)
			return -errno;
	}
	return -ERANGE;
}

static void on_accept(struct loop_io *io, int fd, unsigned events, void *userdata)
{
	struct node_daemon *d = userdata;

	(void)io;
	(void)events;
	for (int i = 0; i < 16; i++) {
		struct ctl_conn *c;
		struct ucred cred;
		socklen_t len = sizeof(cred);
		int cfd, r;

		cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn_errno(errno,
					       "cannot accept a control connection, ignoring");
			return;
		}
		if (d->n_conns >= MAX_CONNS) {
			log_debug("%u control connections open: refusing another", d->n_conns);
			safe_close(cfd);
			continue;
		}
		if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
			log_warn_errno(errno, "cannot get a client's credentials, refusing it");
			safe_close(cfd);
			continue;
		}
		if (cred.uid != 0 && conns_of(d, cred.uid) >= MAX_CONNS_PER_USER) {
			log_debug("uid %u holds %d control connections: refusing another",
				  (unsigned)cred.uid, MAX_CONNS_PER_USER);
			safe_close(cfd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			log_warn_errno(ENOMEM, "cannot accept a control connection");
			safe_close(cfd);
			continue;
		}
		c->d = d;
		c->fd = cfd;
		c->uid = cred.uid;
		c->gid = cred.gid;
		c->pid = cred.pid;
		r = peer_groups(c);
		if (r >= 0)
			r = loop_timer_new(d->loop, on_idle, c, &c->idle);
		if (r >= 0)
			r = loop_io_new(d->loop, cfd, LOOP_READ, on_conn_io, c, &c->io);
		if (r < 0) {
			log_warn_errno(r, "cannot set up a control connection, refusing it");
			c->idle = loop_timer_free(c->idle);
			safe_close(cfd);
			free(c->groups);
			free(c);
			continue;
		}
		loop_timer_arm(c->idle, IDLE_USEC);
		LIST_PREPEND(d->conns, c);
		d->n_conns++;
		log_debug("client pid %d uid %u connected", (int)c->pid, (unsigned)c->uid);
	}
}

static int mkdir_parent(const char *path)
{
	_cleanup_free_ char *p = strdup(path);
	char *slash;

	if (!p)
		return -ENOMEM;
	slash = strrchr(p, '/');
	if (!slash || slash == p)
		return 0;
	*slash = '\0';
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int ctl_listen(struct node_daemon *d, struct buf *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1, probe = -1;
	const char *path = d->control_path;
	struct stat st;
	int r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return node_err(err, -ENAMETOOLONG, "control socket path '%s' is too long", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	r = mkdir_parent(path);
	if (r < 0)
		return node_err_errno(err, r, "cannot create the directory of '%s'", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return node_err_errno(err, -errno, "cannot create the control socket");
	/* A socket file left by a dead daemon is replaced; a live one is not,
	 * nor is anything that is not a socket. */
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return node_err(err, -EADDRINUSE,
				"another ghostd is serving the control socket '%s'", path);
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
		return node_err(err, -EEXIST, "'%s' exists and is not a socket", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return node_err_errno(err, -errno, "cannot remove the old control socket '%s'",
				      path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return node_err_errno(err, -errno, "cannot bind the control socket '%s'", path);
	/* Everyone may connect: each request is authorized by its credentials. */
	if (chmod(path, 0666) < 0)
		r = node_err_errno(err, -errno, "cannot chmod the control socket '%s'", path);
	else if (listen(fd, 64) < 0)
		r = node_err_errno(err, -errno, "cannot listen on the control socket '%s'", path);
	if (r >= 0)
		r = loop_defer_new(d->loop, on_gc, d, &d->gc);
	if (r >= 0) {
		r = loop_io_new(d->loop, fd, LOOP_READ, on_accept, d, &d->control_io);
		if (r < 0)
			node_err_errno(err, r, "cannot watch the control socket");
	}
	if (r < 0) {
		(void)unlink(path);
		return r;
	}
	d->control_fd = TAKE_FD(fd);
	return 0;
}

void ctl_shutdown(struct node_daemon *d)
{
	struct ctl_conn *c;

	if (d->control_fd >= 0) {
		d->control_io = loop_io_free(d->control_io);
		d->control_fd = safe_close(d->control_fd);
		(void)unlink(d->control_path);
	}
	for (c = d->conns; c; c = c->next)
		if (!c->dead && c->busy)
			ctl_send_error(c, -ESHUTDOWN, 0, "ghostd on node %u is shutting down",
				       d->self);
	for (c = d->conns; c; c = c->next)
		ctl_conn_kill(c);
	while (d->conns) {
		c = d->conns;
		LIST_REMOVE(d->conns, c);
		d->n_conns--;
		conn_free(c);
	}
	d->gc = loop_defer_free(d->gc);
}

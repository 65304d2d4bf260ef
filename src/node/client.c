/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The client side of the control protocol, for the ghost command line: one
 * connection per request; list requests read frames until CTL_END; a run
 * is a session driven by an event loop that relays stdio (when the process
 * runs on another node), forwards signals and waits for CTL_EXIT.
 *
 * A run, seen from here:
 *
 *   connect, CTL_RUN --> STARTING --CTL_STARTED--> RUNNING --CTL_EXIT--> done
 *                           |                        |  ^
 *                           +-- CTL_ERROR -----------+--|-- CTL_ERROR, EOF --> failed
 *                                                       |
 *                                 CTL_RELAY: a process that had our own stdio
 *                                 moved to another node; relay from now on
 *
 * 1. At most RUN_WINDOW bytes of stdin are sent and not yet acknowledged.
 * 2. Each output frame is acknowledged once written (or dropped because its
 *    fd is broken), so the remote process never gets ahead of our writes by
 *    more than a window.
 * 3. The terminal is in raw mode exactly while a remote pseudo-terminal
 *    serves it, and is restored on every way out (to its settings when
 *    ghost run started).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "base/fileio.h"
#include "loop/loop.h"
#include "node/node-int.h"
#include "base/banned.h"

extern char **environ;

/* Longest wait for an answer to a list request. */
#define CLIENT_TIMEOUT_SEC 60

const char *node_control_path(void)
{
	const char *p = getenv(NODE_CONTROL_ENV);

	return p && *p ? p : NODE_DEFAULT_CONTROL;
}

void client_release(struct client *cl)
{
	cl->fd = safe_close(cl->fd);
	buf_release(&cl->in);
}

int client_connect(struct client *cl, const char *path, struct buf *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = CLIENT_TIMEOUT_SEC };

	*cl = (struct client){ .fd = -1, .path = path ? path : node_control_path() };
	if (strlen(cl->path) >= sizeof(sa.sun_path))
		return buf_set_error(err, -ENAMETOOLONG, "control socket path '%s' is too long",
			       cl->path);
	memcpy(sa.sun_path, cl->path, strlen(cl->path) + 1);
	cl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cl->fd < 0)
		return buf_set_error(err, -errno, "cannot create a socket: %s", strerror(errno));
	if (connect(cl->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		cl->fd = safe_close(cl->fd);
		if (r == -ENOENT || r == -ECONNREFUSED)
			return buf_set_error(err, r, "cannot reach ghostd at '%s': %s (is it running? "
				       "$%s names another socket)", cl->path, strerror(-r),
				       NODE_CONTROL_ENV);
		return buf_set_error(err, r, "cannot reach ghostd at '%s': %s", cl->path,
			       strerror(-r));
	}
	(void)setsockopt(cl->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return 0;
}

int client_send(struct client *cl, uint16_t type, const struct buf *payload, const int *fds,
		size_t n_fds)
{
	struct buf f = BUF_INIT;
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(CTL_FRAME_FDS * sizeof(int))];
	} cmsg;
	size_t off = 0;
	int r;

	if (n_fds > CTL_FRAME_FDS)
		return -EINVAL;
	r = ctl_frame_begin(&f, type);
	if (r >= 0 && payload && payload->len)
		r = buf_append(&f, payload->data, payload->len);
	if (r >= 0)
		r = ctl_frame_end(&f, 0);
	while (r >= 0 && off < f.len) {
		struct iovec iov = { .iov_base = f.data + off, .iov_len = f.len - off };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (off == 0 && n_fds > 0) {
			struct cmsghdr *cm;

			memset(&cmsg, 0, sizeof(cmsg));
			mh.msg_control = cmsg.buf;
			mh.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
			cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
			memcpy(CMSG_DATA(cm), fds, n_fds * sizeof(int));
		}
		n = sendmsg(cl->fd, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd p = { .fd = cl->fd, .events = POLLOUT };

				(void)poll(&p, 1, -1);
				continue;
			}
			r = -errno;
			break;
		}
		off += (size_t)n;
	}
	buf_release(&f);
	return r;
}

int client_take_frame(struct client *cl, uint16_t *ret_type, const void **ret_payload,
		      size_t *ret_len)
{
	uint32_t len;
	int r;

	if (cl->in_off > 0 && cl->in_off == cl->in.len) {
		buf_reset(&cl->in);
		cl->in_off = 0;
	}
	if (cl->in.len - cl->in_off < CTL_HDR_SIZE)
		return 0;
	r = ctl_frame_parse(cl->in.data + cl->in_off, ret_type, &len);
	if (r < 0)
		return r;
	if (cl->in.len - cl->in_off - CTL_HDR_SIZE < len)
		return 0;
	*ret_payload = cl->in.data + cl->in_off + CTL_HDR_SIZE;
	*ret_len = len;
	cl->in_off += CTL_HDR_SIZE + len;
	return 1;
}

/* Read more bytes: >0, 0 at end of file, -errno (-EAGAIN when non-blocking). */
static ssize_t client_fill(struct client *cl)
{
	ssize_t n;
	int r;

	if (cl->in_off > 0) {
		memmove(cl->in.data, cl->in.data + cl->in_off, cl->in.len - cl->in_off);
		cl->in.len -= cl->in_off;
		cl->in_off = 0;
	}
	r = buf_reserve(&cl->in, 64u << 10);
	if (r < 0)
		return r;
	do
		n = read(cl->fd, cl->in.data + cl->in.len, cl->in.cap - cl->in.len - 1);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	cl->in.len += (size_t)n;
	cl->in.data[cl->in.len] = '\0';
	return n;
}

int client_lost(struct client *cl, int r, struct buf *err)
{
	if (r == -EAGAIN || r == -EWOULDBLOCK)
		return buf_set_error(err, -ETIMEDOUT, "ghostd at '%s' did not answer in %d s", cl->path,
			       CLIENT_TIMEOUT_SEC);
	if (r == 0 || r == -ECONNRESET)
		return buf_set_error(err, -ECONNRESET, "ghostd at '%s' closed the connection",
			       cl->path);
	if (r == -EBADMSG || r == -EMSGSIZE || r == -EPROTONOSUPPORT)
		return buf_set_error(err, -EPROTO, "ghostd at '%s' sent a malformed answer", cl->path);
	return buf_set_error(err, r, "cannot read from ghostd at '%s': %s", cl->path, strerror(-r));
}

/* Blocking: the next frame. */
static int client_recv(struct client *cl, uint16_t *ret_type, const void **ret_payload,
		       size_t *ret_len, struct buf *err)
{
	for (;;) {
		ssize_t n;
		int r = client_take_frame(cl, ret_type, ret_payload, ret_len);

		if (r > 0)
			return 0;
		if (r < 0)
			return client_lost(cl, r, err);
		n = client_fill(cl);
		if (n <= 0)
			return client_lost(cl, (int)n, err);
	}
}

int client_error_frame(const void *payload, size_t len, struct buf *err, uint32_t *ret_flags)
{
	struct attr_iter it;
	struct attr a;
	uint32_t e = EIO, flags = 0;
	char msg[1024] = "";

	attr_iter_init(&it, payload, len);
	while (attr_next(&it, &a) > 0) {
		if (a.type == A_ERRNO)
			(void)attr_u32(&a, &e);
		else if (a.type == A_MESSAGE)
			(void)attr_strcpy(&a, msg, sizeof(msg));
		else if (a.type == A_FLAGS)
			(void)attr_u32(&a, &flags);
	}
	if (e == 0 || e > 4095)
		e = EIO;
	if (ret_flags)
		*ret_flags = flags;
	return buf_set_error(err, -(int)e, "%s", msg[0] ? msg : strerror((int)e));
}

static int unexpected(struct client *cl, uint16_t type, struct buf *err)
{
	return buf_set_error(err, -EPROTO, "ghostd at '%s' sent an unexpected frame (type %u)",
		       cl->path, type);
}

/* ---- lists --------------------------------------------------------------- */

int node_client_nodes(const char *path, struct node_info **ret, size_t *ret_n, struct buf *err)
{
	struct node_info *list = NULL;
	struct client cl;
	size_t n = 0;
	int r;

	r = client_connect(&cl, path, err);
	if (r >= 0)
		r = client_send(&cl, CTL_NODES, NULL, NULL, 0);
	if (r < 0 && cl.fd >= 0)
		r = buf_set_error(err, r, "cannot send to ghostd: %s", strerror(-r));
	while (r >= 0) {
		const void *payload;
		struct node_info *nl, ni = { 0 };
		struct attr_iter it;
		struct attr a;
		uint16_t type;
		size_t len;
		uint32_t v;

		r = client_recv(&cl, &type, &payload, &len, err);
		if (r < 0)
			break;
		if (type == CTL_END)
			break;
		if (type == CTL_ERROR) {
			r = client_error_frame(payload, len, err, NULL);
			break;
		}
		if (type != CTL_NODE) {
			r = unexpected(&cl, type, err);
			break;
		}
		attr_iter_init(&it, payload, len);
		while (attr_next(&it, &a) > 0) {
			if (a.type == A_NODE)
				(void)attr_u32(&a, &ni.id);
			else if (a.type == A_ADDRESS)
				(void)attr_strcpy(&a, ni.address, sizeof(ni.address));
			else if (a.type == A_STATE)
				(void)attr_strcpy(&a, ni.state, sizeof(ni.state));
			else if (a.type == A_LOAD && attr_u32(&a, &v) >= 0) {
				ni.load = v / 100.0;
				ni.have_load = true;
			} else if (a.type == A_NPROCS)
				(void)attr_u32(&a, &ni.nprocs);
		}
		nl = realloc(list, (n + 1) * sizeof(*nl));
		if (!nl) {
			r = buf_set_error(err, -ENOMEM, "out of memory");
			break;
		}
		list = nl;
		list[n++] = ni;
	}
	client_release(&cl);
	if (r < 0) {
		free(list);
		return r;
	}
	*ret = list;
	*ret_n = n;
	return 0;
}

void node_proc_info_free_array(struct node_proc_info *p, size_t n)
{
	if (!p)
		return;
	for (size_t i = 0; i < n; i++)
		free(p[i].command);
	free(p);
}

static int parse_proc(const void *payload, size_t len, struct node_proc_info *pi)
{
	struct attr_iter it;
	struct attr a;
	uint32_t v;
	int r;

	*pi = (struct node_proc_info){ .exit_code = -1 };
	attr_iter_init(&it, payload, len);
	while ((r = attr_next(&it, &a)) > 0) {
		switch (a.type) {
		case A_PID:
			if (attr_u32(&a, &v) >= 0)
				pi->pid = (pid_t)v;
			break;
		case A_NODE:
			(void)attr_u32(&a, &pi->node);
			break;
		case A_UID:
			if (attr_u32(&a, &v) >= 0)
				pi->uid = (uid_t)v;
			break;
		case A_STATE:
			(void)attr_strcpy(&a, pi->state, sizeof(pi->state));
			break;
		case A_RSS:
			(void)attr_u64(&a, &pi->rss_kib);
			break;
		case A_START:
			(void)attr_u64(&a, &pi->start_time);
			break;
		case A_FLAGS:
			if (attr_u32(&a, &v) >= 0)
				pi->detached = v & RUN_DETACH;
			break;
		case A_EXIT_CODE:
			if (attr_u32(&a, &v) >= 0)
				pi->exit_code = (int)v;
			break;
		case A_EXIT_SIGNAL:
			if (attr_u32(&a, &v) >= 0)
				pi->exit_signal = (int)v;
			break;
		case A_FORKED_FROM:
			if (attr_u32(&a, &v) >= 0)
				pi->forked_from = (pid_t)v;
			break;
		case A_COMMAND:
			free(pi->command);
			pi->command = NULL;
			if (attr_strdup(&a, &pi->command) < 0) {
				free(pi->command);
				return -ENOMEM;
			}
			break;
		default:
			break;
		}
	}
	if (!pi->command) {
		pi->command = strdup("");
		if (!pi->command)
			return -ENOMEM;
	}
	return 0;
}

int node_client_ps(const char *path, bool all, struct node_proc_info **ret, size_t *ret_n,
		   struct buf *warnings, struct buf *err)
{
	struct node_proc_info *list = NULL;
	struct buf req = BUF_INIT;
	struct client cl;
	size_t n = 0;
	int r;

	r = client_connect(&cl, path, err);
	if (r >= 0) {
		r = attr_put_u32(&req, A_FLAGS, all ? PS_ALL : 0);
		if (r >= 0)
			r = client_send(&cl, CTL_PS, &req, NULL, 0);
		if (r < 0)
			r = buf_set_error(err, r, "cannot send to ghostd: %s", strerror(-r));
	}
	buf_release(&req);
	while (r >= 0) {
		const void *payload;
		struct node_proc_info *nl;
		uint16_t type;
		size_t len;

		r = client_recv(&cl, &type, &payload, &len, err);
		if (r < 0 || type == CTL_END)
			break;
		if (type == CTL_ERROR) {
			r = client_error_frame(payload, len, err, NULL);
			break;
		}
		if (type == CTL_WARNING) {
			struct attr_iter it;
			struct attr a;

			attr_iter_init(&it, payload, len);
			while (warnings && attr_next(&it, &a) > 0)
				if (a.type == A_MESSAGE)
					(void)buf_printf(warnings, "%.*s\n", (int)MIN(a.len, 1024u),
							 (const char *)a.data);
			continue;
		}
		if (type != CTL_PROC) {
			r = unexpected(&cl, type, err);
			break;
		}
		nl = realloc(list, (n + 1) * sizeof(*nl));
		if (!nl) {
			r = buf_set_error(err, -ENOMEM, "out of memory");
			break;
		}
		list = nl;
		r = parse_proc(payload, len, &list[n]);
		if (r < 0) {
			r = buf_set_error(err, r, "out of memory");
			break;
		}
		n++;
	}
	client_release(&cl);
	if (r < 0) {
		node_proc_info_free_array(list, n);
		return r;
	}
	*ret = list;
	*ret_n = n;
	return 0;
}

int node_client_kill(const char *path, pid_t pid, int sig, struct buf *err)
{
	struct buf req = BUF_INIT;
	const void *payload;
	struct client cl;
	uint16_t type;
	size_t len;
	int r;

	r = client_connect(&cl, path, err);
	if (r >= 0) {
		r = attr_put_u32(&req, A_PID, (uint32_t)pid);
		if (r >= 0)
			r = attr_put_u32(&req, A_SIGNAL, (uint32_t)sig);
		if (r >= 0)
			r = client_send(&cl, CTL_KILL, &req, NULL, 0);
		if (r < 0)
			r = buf_set_error(err, r, "cannot send to ghostd: %s", strerror(-r));
	}
	buf_release(&req);
	if (r >= 0)
		r = client_recv(&cl, &type, &payload, &len, err);
	if (r >= 0 && type == CTL_ERROR)
		r = client_error_frame(payload, len, err, NULL);
	else if (r >= 0 && type != CTL_OK)
		r = unexpected(&cl, type, err);
	client_release(&cl);
	return r;
}

static int parse_moved(const void *payload, size_t len, struct node_move_result *ret)
{
	struct attr_iter it;
	struct attr a;
	uint32_t v;
	int r;

	attr_iter_init(&it, payload, len);
	while ((r = attr_next(&it, &a)) > 0) {
		switch (a.type) {
		case A_PID:
			r = attr_u32(&a, &v);
			ret->pid = (pid_t)v;
			break;
		case A_NODE:
			r = attr_u32(&a, &ret->from);
			break;
		case A_BYTES:
			r = attr_u64(&a, &ret->bytes);
			break;
		case A_PAGES:
			r = attr_u64(&a, &ret->pages);
			break;
		case A_TOTAL_NS:
			r = attr_u64(&a, &ret->total_ns);
			break;
		case A_FROZEN_NS:
			r = attr_u64(&a, &ret->frozen_ns);
			break;
		case A_EXPORT_NS:
			r = attr_u64(&a, &ret->export_ns);
			break;
		case A_IMPORT_NS:
			r = attr_u64(&a, &ret->import_ns);
			break;
		case A_FORKED_FROM:
			r = attr_u32(&a, &v);
			ret->forked_from = (pid_t)v;
			break;
		default:
			break;
		}
		if (r < 0)
			return r;
	}
	return r;
}

static int client_move(const char *path, pid_t pid, uint32_t to, uint32_t flags,
		       node_progress_fn progress, void *userdata, struct node_move_result *ret,
		       struct buf *err)
{
	struct node_move_result res = { .pid = pid, .to = to };
	struct buf req = BUF_INIT;
	struct client cl;
	int r;

	r = client_connect(&cl, path, err);
	if (r >= 0) {
		r = attr_put_u32(&req, A_PID, (uint32_t)pid);
		if (r >= 0)
			r = attr_put_u32(&req, A_NODE, to);
		if (r >= 0 && flags)
			r = attr_put_u32(&req, A_FLAGS, flags);
		if (r >= 0)
			r = client_send(&cl, CTL_MIGRATE, &req, NULL, 0);
		if (r < 0)
			r = buf_set_error(err, r, "cannot send to ghostd: %s", strerror(-r));
	}
	buf_release(&req);
	while (r >= 0) {
		const void *payload;
		uint16_t type;
		size_t len;

		r = client_recv(&cl, &type, &payload, &len, err);
		if (r < 0)
			break;
		if (type == CTL_ERROR) {
			r = client_error_frame(payload, len, err, NULL);
			break;
		}
		if (type == CTL_PROGRESS) {
			struct attr_iter it;
			struct attr a;
			uint64_t done = 0, total = 0;

			attr_iter_init(&it, payload, len);
			while (attr_next(&it, &a) > 0) {
				if (a.type == A_DONE)
					(void)attr_u64(&a, &done);
				else if (a.type == A_TOTAL)
					(void)attr_u64(&a, &total);
			}
			if (progress)
				progress(done, total, userdata);
			continue;
		}
		if (type != CTL_MOVED) {
			r = unexpected(&cl, type, err);
			break;
		}
		r = parse_moved(payload, len, &res);
		if (r < 0)
			r = client_lost(&cl, -EBADMSG, err);
		else
			res.to = to;
		break;
	}
	client_release(&cl);
	if (r >= 0 && ret)
		*ret = res;
	return r < 0 ? r : 0;
}

int node_client_migrate(const char *path, pid_t pid, uint32_t to, node_progress_fn progress,
			void *userdata, struct node_move_result *ret, struct buf *err)
{
	return client_move(path, pid, to, 0, progress, userdata, ret, err);
}

int node_client_fork(const char *path, pid_t pid, uint32_t to, node_progress_fn progress,
		     void *userdata, struct node_move_result *ret, struct buf *err)
{
	return client_move(path, pid, to, MOVE_F_FORK, progress, userdata, ret, err);
}

int node_client_logs(const char *path, pid_t pid, int out_fd, struct buf *err)
{
	struct buf req = BUF_INIT;
	struct client cl;
	int r;

	r = client_connect(&cl, path, err);
	if (r >= 0) {
		r = attr_put_u32(&req, A_PID, (uint32_t)pid);
		if (r >= 0)
			r = client_send(&cl, CTL_LOGS, &req, NULL, 0);
		if (r < 0)
			r = buf_set_error(err, r, "cannot send to ghostd: %s", strerror(-r));
	}
	buf_release(&req);
	while (r >= 0) {
		const void *payload;
		struct attr_iter it;
		struct attr a;
		uint16_t type;
		size_t len;

		r = client_recv(&cl, &type, &payload, &len, err);
		if (r < 0 || type == CTL_END)
			break;
		if (type == CTL_ERROR) {
			r = client_error_frame(payload, len, err, NULL);
			break;
		}
		if (type != CTL_LOG_DATA) {
			r = unexpected(&cl, type, err);
			break;
		}
		attr_iter_init(&it, payload, len);
		while (r >= 0 && attr_next(&it, &a) > 0)
			if (a.type == A_DATA) {
				r = write_full(out_fd, a.data, a.len);
				if (r < 0)
					r = buf_set_error(err, r, "cannot write the log: %s",
						    strerror(-r));
			}
	}
	client_release(&cl);
	return r;
}

/* ---- run ----------------------------------------------------------------- */

/* Signals sent to ghost run that go on to the process. */
static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH };

struct session {
	struct client cl;
	struct loop *loop;
	struct loop_io *sock_io, *stdin_io;
	struct loop_defer *stdin_defer; /* stdin that epoll cannot watch (a file) */
	struct loop_signal *sigs[5];
	struct buf out;        /* frames waiting to be sent */
	size_t out_off;
	bool relay;            /* stdio goes through the socket */
	bool tty;              /* the remote side has a pseudo-terminal */
	bool raw;              /* our terminal is in raw mode: restore saved */
	bool have_saved;
	struct termios saved;  /* our terminal's settings when we started */
	bool stdin_eof;
	bool sock_broken;      /* the daemon no longer reads: frames are dropped */
	bool stdout_broken[3];
	uint64_t in_flight;    /* stdin bytes sent, not yet acknowledged */
	int status;            /* wait status, once CTL_EXIT came */
	int result;            /* 0, or -errno with err set */
	struct buf *err;
};

static void session_update(struct session *s);

static int queue_frame(struct session *s, uint16_t type, const struct buf *payload)
{
	size_t start = s->out.len;
	int r;

	r = ctl_frame_begin(&s->out, type);
	if (r >= 0 && payload && payload->len)
		r = buf_append(&s->out, payload->data, payload->len);
	if (r >= 0)
		r = ctl_frame_end(&s->out, start);
	if (r < 0) {
		s->out.len = start;
		return r;
	}
	return 0;
}

static void session_end(struct session *s, int r, const char *fmt, ...) _printf_(3, 4);
static void session_end(struct session *s, int r, const char *fmt, ...)
{
	va_list ap;

	if (s->result == 0 && r < 0 && fmt) {
		buf_reset(s->err);
		va_start(ap, fmt);
		(void)buf_vprintf(s->err, fmt, ap);
		va_end(ap);
	}
	if (s->result == 0)
		s->result = r;
	loop_exit(s->loop, 0);
}

static void flush_out(struct session *s)
{
	if (s->sock_broken)
		s->out_off = s->out.len;
	while (s->out.len > s->out_off) {
		ssize_t n = send(s->cl.fd, s->out.data + s->out_off, s->out.len - s->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			/* The daemon may have closed after its last frame (CTL_EXIT):
			 * read on; the end of the stream tells what happened. */
			s->sock_broken = true;
			s->out_off = s->out.len;
			break;
		}
		s->out_off += (size_t)n;
	}
	if (s->out_off == s->out.len) {
		buf_reset(&s->out);
		s->out_off = 0;
	}
}

static void send_u(struct session *s, uint16_t type, uint16_t attr, uint64_t v, bool wide)
{
	struct buf b = BUF_INIT;
	int r = 0;

	if (attr)
		r = wide ? attr_put_u64(&b, attr, v) : attr_put_u32(&b, attr, (uint32_t)v);
	if (r >= 0)
		r = queue_frame(s, type, &b);
	buf_release(&b);
	if (r < 0)
		session_end(s, r, "out of memory");
}

/* Write all of data to fd, waiting when it is non-blocking and full. */
static int write_out(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };

			(void)poll(&p, 1, -1);
			continue;
		}
		if (n < 0)
			return -errno;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

static void start_relay(struct session *s, uint32_t map);

static void handle_frame(struct session *s, uint16_t type, const void *payload, size_t len)
{
	struct attr_iter it;
	struct attr a;
	uint32_t v, fd = 1;
	uint64_t n;

	attr_iter_init(&it, payload, len);
	switch (type) {
	case CTL_OUTPUT: {
		const void *data = NULL;
		size_t dlen = 0;

		while (attr_next(&it, &a) > 0) {
			if (a.type == A_FD)
				(void)attr_u32(&a, &fd);
			else if (a.type == A_DATA) {
				data = a.data;
				dlen = a.len;
			}
		}
		/* 0: the echo of a terminal that is only our stdin */
		if (fd > 2)
			fd = 1;
		if (dlen > 0 && !s->stdout_broken[fd] && write_out((int)fd, data, dlen) < 0) {
			s->stdout_broken[fd] = true;
			send_u(s, CTL_CLOSE_OUT, A_FD, fd, false);
		}
		if (dlen > 0)
			send_u(s, CTL_ACK, A_BYTES, dlen, true);
		break;
	}
	case CTL_STDIN_ACK:
		while (attr_next(&it, &a) > 0)
			if (a.type == A_BYTES && attr_u64(&a, &n) >= 0)
				s->in_flight = n > s->in_flight ? 0 : s->in_flight - n;
		break;
	case CTL_RELAY:
		while (attr_next(&it, &a) > 0)
			if (a.type == A_STDIO && attr_u32(&a, &v) >= 0)
				start_relay(s, v);
		break;
	case CTL_EXIT:
		s->status = 0;
		while (attr_next(&it, &a) > 0) {
			if (a.type == A_EXIT_CODE && attr_u32(&a, &v) >= 0)
				s->status = (int)((v & 0xff) << 8);
			else if (a.type == A_EXIT_SIGNAL && attr_u32(&a, &v) >= 0)
				s->status = (int)(v & 0x7f);
		}
		session_end(s, 0, NULL);
		break;
	case CTL_ERROR: {
		int r = client_error_frame(payload, len, s->err, NULL);

		if (s->result == 0)
			s->result = r;
		loop_exit(s->loop, 0);
		break;
	}
	default:
		break;
	}
}

static void on_sock(struct loop_io *io, int fd, unsigned events, void *userdata)
{
	struct session *s = userdata;

	(void)io;
	(void)fd;
	if (events & LOOP_WRITE)
		flush_out(s);
	if (events & (LOOP_READ | LOOP_HANGUP | LOOP_ERROR)) {
		ssize_t n = client_fill(&s->cl);

		if (n < 0 && n != -EAGAIN) {
			session_end(s, -ECONNRESET, "lost the connection to ghostd: %s",
				    strerror((int)-n));
			return;
		}
		for (;;) {
			const void *payload;
			uint16_t type;
			size_t len;
			int r = client_take_frame(&s->cl, &type, &payload, &len);

			if (r < 0) {
				session_end(s, -EPROTO, "ghostd sent a malformed frame");
				return;
			}
			if (r == 0)
				break;
			handle_frame(s, type, payload, len);
			if (loop_exiting(s->loop))
				return;
		}
		if (n == 0) {
			session_end(s, -ECONNRESET, "ghostd closed the connection (did it stop?)");
			return;
		}
	}
	flush_out(s);
	session_update(s);
}

static void read_stdin(struct session *s)
{
	char data[RUN_CHUNK];
	size_t want = (size_t)MIN((uint64_t)sizeof(data), RUN_WINDOW - s->in_flight);
	struct buf b = BUF_INIT;
	ssize_t n;

	do
		n = read(STDIN_FILENO, data, want);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		s->stdin_eof = true;
		send_u(s, CTL_STDIN_EOF, 0, 0, false);
		return;
	}
	if (attr_put(&b, A_DATA, data, (size_t)n) < 0 || queue_frame(s, CTL_STDIN, &b) < 0)
		session_end(s, -ENOMEM, "out of memory");
	buf_release(&b);
	s->in_flight += (uint64_t)n;
}

static bool want_stdin(const struct session *s)
{
	return s->relay && !s->stdin_eof && !s->sock_broken && s->in_flight < RUN_WINDOW &&
	       s->out.len - s->out_off < RUN_WINDOW;
}

static void on_stdin(struct loop_io *io, int fd, unsigned events, void *userdata)
{
	struct session *s = userdata;

	(void)io;
	(void)fd;
	(void)events;
	if (want_stdin(s))
		read_stdin(s);
	flush_out(s);
	session_update(s);
}

static void on_stdin_defer(struct loop_defer *d, void *userdata)
{
	on_stdin(NULL, STDIN_FILENO, LOOP_READ, userdata);
	(void)d;
}

static void session_update(struct session *s)
{
	bool out = s->out.len > s->out_off && !s->sock_broken;

	if (loop_exiting(s->loop))
		return;
	(void)loop_io_set_events(s->sock_io, LOOP_READ | (out ? LOOP_WRITE : 0));
	if (s->stdin_io)
		(void)loop_io_set_events(s->stdin_io, want_stdin(s) ? LOOP_READ : 0);
	else if (s->stdin_defer && want_stdin(s))
		loop_defer_schedule(s->stdin_defer);
}

static void send_winsize(struct session *s)
{
	struct winsize ws;
	struct buf b = BUF_INIT;

	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0)
		return;
	if (attr_put_u32(&b, A_ROWS, ws.ws_row) >= 0 && attr_put_u32(&b, A_COLS, ws.ws_col) >= 0)
		(void)queue_frame(s, CTL_WINSIZE, &b);
	buf_release(&b);
}

static void on_signal(struct loop_signal *ls, const struct signalfd_siginfo *si, void *userdata)
{
	struct session *s = userdata;

	(void)ls;
	if (si->ssi_signo == SIGWINCH && s->tty)
		send_winsize(s);
	else
		send_u(s, CTL_SIGNAL, A_SIGNAL, si->ssi_signo, false);
	flush_out(s);
	session_update(s);
}

static int watch_stdin(struct session *s)
{
	int r = loop_io_new(s->loop, STDIN_FILENO, LOOP_READ, on_stdin, s, &s->stdin_io);

	if (r == -EPERM) /* a regular file or the like: always readable */
		r = loop_defer_new(s->loop, on_stdin_defer, s, &s->stdin_defer);
	return r;
}

/* The process had our own stdio and moved to another node: from now on
 * its stdin, stdout and stderr go through the daemon (map: which of them
 * it still had, and which a terminal). */
static void start_relay(struct session *s, uint32_t map)
{
	bool tty_in = RUN_STDIO_KIND(map, 0) == RUN_STDIO_TTY;
	struct buf b = BUF_INIT;
	int avail = 0;

	if (s->relay)
		return;
	s->relay = true;
	for (int i = 0; i < 3; i++)
		s->tty |= RUN_STDIO_KIND(map, i) == RUN_STDIO_TTY;
	if (RUN_STDIO_KIND(map, 0) == RUN_STDIO_NONE) {
		s->stdin_eof = true; /* not the process's: never read */
		return;
	}
	if (watch_stdin(s) < 0) {
		session_end(s, -ENOMEM, "cannot relay stdin");
		return;
	}
	if (!tty_in || !s->have_saved || !isatty(STDIN_FILENO))
		return;
	{
		struct termios t;

		if (tcgetattr(STDIN_FILENO, &t) < 0)
			return;
		cfmakeraw(&t);
		s->raw = tcsetattr(STDIN_FILENO, TCSADRAIN, &t) == 0;
	}
	/* What was typed and not yet read (the line being typed too, now that
	 * the terminal is raw) was echoed here already. */
	if (s->raw && ioctl(STDIN_FILENO, FIONREAD, &avail) == 0 && avail > 0) {
		char data[4096];
		ssize_t n = read(STDIN_FILENO, data, MIN(sizeof(data), (size_t)avail));

		if (n > 0 && attr_put(&b, A_DATA, data, (size_t)n) >= 0 &&
		    attr_put_u32(&b, A_FLAGS, RUN_IN_ECHOED) >= 0 &&
		    queue_frame(s, CTL_STDIN, &b) >= 0)
			s->in_flight += (uint64_t)n;
		buf_release(&b);
	}
}

static int run_session(struct session *s)
{
	int r;

	r = loop_new(&s->loop);
	if (r < 0)
		return buf_set_error(s->err, r, "cannot create an event loop: %s", strerror(-r));
	if (fcntl(s->cl.fd, F_SETFL, O_NONBLOCK) < 0) {
		r = buf_set_error(s->err, -errno, "cannot set up the connection: %s", strerror(errno));
		goto out;
	}
	r = loop_io_new(s->loop, s->cl.fd, LOOP_READ, on_sock, s, &s->sock_io);
	for (size_t i = 0; i < ARRAY_SIZE(forwarded) && r >= 0; i++) {
		struct sigaction sa;

		if (sigaction(forwarded[i], NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
			continue;
		r = loop_signal_new(s->loop, forwarded[i], on_signal, s, &s->sigs[i]);
	}
	if (r >= 0 && s->relay)
		r = watch_stdin(s);
	if (r < 0) {
		r = buf_set_error(s->err, r, "cannot set up the session: %s", strerror(-r));
		goto out;
	}
	/* Frames that came with CTL_STARTED. */
	for (;;) {
		const void *payload;
		uint16_t type;
		size_t len;

		r = client_take_frame(&s->cl, &type, &payload, &len);
		if (r <= 0)
			break;
		handle_frame(s, type, payload, len);
		if (loop_exiting(s->loop))
			break;
	}
	if (r < 0) {
		r = buf_set_error(s->err, -EPROTO, "ghostd sent a malformed frame");
		goto out;
	}
	if (!loop_exiting(s->loop)) {
		/* A reader of our stdout that goes away is the process's
		 * business (CTL_CLOSE_OUT gives it its SIGPIPE), not a reason
		 * for us to die. */
		struct sigaction ign = { .sa_handler = SIG_IGN }, old_pipe;
		bool pipe_saved;

		sigemptyset(&ign.sa_mask);
		pipe_saved = sigaction(SIGPIPE, &ign, &old_pipe) == 0;
		flush_out(s);
		session_update(s);
		r = loop_run(s->loop);
		if (r < 0)
			(void)buf_set_error(s->err, r, "event loop failed: %s", strerror(-r));
		if (pipe_saved)
			(void)sigaction(SIGPIPE, &old_pipe, NULL);
	}
	r = r < 0 ? r : s->result;
out:
	s->loop = loop_free(s->loop);
	return r;
}

static int put_request(struct buf *b, const struct node_run_opts *o, bool tty)
{
	uint32_t flags = ((o->flags & NODE_RUN_DETACH) ? RUN_DETACH : 0) | (tty ? RUN_TTY : 0);
	char cwd[4096];
	int r = 0;

	if (o->node)
		r = attr_put_u32(b, A_NODE, o->node);
	if (r >= 0)
		r = attr_put_u32(b, A_FLAGS, flags);
	for (size_t i = 0; o->argv[i] && r >= 0; i++)
		r = attr_put_str(b, A_ARG, o->argv[i]);
	for (size_t i = 0; environ && environ[i] && r >= 0; i++)
		r = attr_put_str(b, A_ENV, environ[i]);
	if (r >= 0 && getcwd(cwd, sizeof(cwd)))
		r = attr_put_str(b, A_CWD, cwd);
	if (r >= 0 && tty) {
		struct termios t;
		struct winsize ws;

		if (tcgetattr(STDIN_FILENO, &t) == 0)
			r = attr_put(b, A_TERMIOS, &t, sizeof(t));
		if (r >= 0 && ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) {
			r = attr_put_u32(b, A_ROWS, ws.ws_row);
			if (r >= 0)
				r = attr_put_u32(b, A_COLS, ws.ws_col);
		}
	}
	return r;
}

int node_client_run(const char *path, const struct node_run_opts *o, pid_t *ret_pid,
		    uint32_t *ret_node, int *ret_status, struct buf *err)
{
	struct session s = { .err = err };
	bool detach = o->flags & NODE_RUN_DETACH;
	bool tty = !detach && !(o->flags & NODE_RUN_NO_TTY) && isatty(STDIN_FILENO) &&
		   isatty(STDOUT_FILENO);
	int fds[3], nullfd = -1;
	struct buf req = BUF_INIT;
	const void *payload;
	struct attr_iter it;
	struct attr a;
	uint32_t v, flags = 0, pid = 0, node = 0;
	uint16_t type;
	size_t len;
	int r;

	*ret_pid = 0;
	if (!o->argv || !o->argv[0])
		return buf_set_error(err, -EINVAL, "no command to run");
	/* Signals that come while the process starts wait for the session,
	 * which forwards them. Ignored ones stay ignored (nohup). */
	if (!detach) {
		sigset_t mask;

		sigemptyset(&mask);
		for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
			sigaddset(&mask, forwarded[i]);
		(void)sigprocmask(SIG_BLOCK, &mask, NULL);
	}
	r = client_connect(&s.cl, path, err);
	if (r < 0)
		return r;
	/* Restored at the end if a remote terminal takes ours over, now or
	 * once the process moves. */
	s.have_saved = !detach && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &s.saved) == 0;
	r = put_request(&req, o, tty);
	if (r < 0) {
		r = buf_set_error(err, r, r == -ENOMEM ? "out of memory" : "argument list too long");
		goto out;
	}
	if (req.len > CTL_MAX_PAYLOAD) {
		r = buf_set_error(err, -E2BIG, "argument list and environment too long");
		goto out;
	}
	for (int i = 0; i < 3; i++) {
		fds[i] = i;
		if (fcntl(i, F_GETFD) < 0) {
			if (nullfd < 0)
				nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
			fds[i] = nullfd;
		}
	}
	r = client_send(&s.cl, CTL_RUN, &req, detach ? NULL : fds, detach ? 0 : 3);
	safe_close(nullfd);
	if (r < 0) {
		r = buf_set_error(err, r, "cannot send to ghostd: %s", strerror(-r));
		goto out;
	}
	/* Starting a process may take a moment, but not a minute. */
	r = client_recv(&s.cl, &type, &payload, &len, err);
	if (r < 0)
		goto out;
	if (type == CTL_ERROR) {
		r = client_error_frame(payload, len, err, &flags);
		if (flags & ERR_EXEC)
			r = 1;
		goto out;
	}
	if (type != CTL_STARTED) {
		r = unexpected(&s.cl, type, err);
		goto out;
	}
	flags = 0;
	attr_iter_init(&it, payload, len);
	while (attr_next(&it, &a) > 0) {
		if (a.type == A_PID)
			(void)attr_u32(&a, &pid);
		else if (a.type == A_NODE)
			(void)attr_u32(&a, &node);
		else if (a.type == A_FLAGS && attr_u32(&a, &v) >= 0)
			flags = v;
	}
	*ret_pid = (pid_t)pid;
	*ret_node = node;
	if (detach) {
		r = 0;
		goto out;
	}
	s.relay = flags & RUN_RELAY;
	s.tty = s.relay && tty;
	if (s.tty && s.have_saved) {
		struct termios t = s.saved;

		cfmakeraw(&t);
		s.raw = tcsetattr(STDIN_FILENO, TCSADRAIN, &t) == 0;
	}
	r = run_session(&s);
	if (s.raw)
		(void)tcsetattr(STDIN_FILENO, TCSADRAIN, &s.saved);
	if (r >= 0)
		*ret_status = s.status;
out:
	buf_release(&req);
	buf_release(&s.out);
	client_release(&s.cl);
	return r;
}

/* ---- memory checkpoints --------------------------------------------------- */

int node_ckpt_id_parse(const char *s, uint64_t *ret)
{
	const char *dot = s ? strchr(s, '.') : NULL;
	char node[16];
	uint64_t h, n;

	if (!dot || (size_t)(dot - s) >= sizeof(node) || !ret)
		return -EINVAL;
	memcpy(node, s, (size_t)(dot - s));
	node[dot - s] = '\0';
	if (parse_u64(node, 10, &h) < 0 || parse_u64(dot + 1, 10, &n) < 0 || h == 0 ||
	    h > UINT32_MAX || n == 0 || n > UINT32_MAX)
		return -EINVAL;
	*ret = h << 32 | n;
	return 0;
}

const char *node_ckpt_id_format(uint64_t id, char buf[NODE_CKPT_ID_MAX])
{
	snprintf(buf, NODE_CKPT_ID_MAX, "%u.%u", (unsigned)(id >> 32),
		 (unsigned)(id & 0xffffffffu));
	return buf;
}

static int parse_ckpt_result(const void *payload, size_t len, struct node_ckpt_result *ret)
{
	struct attr_iter it;
	struct attr a;
	uint32_t v;
	int r;

	attr_iter_init(&it, payload, len);
	while ((r = attr_next(&it, &a)) > 0) {
		switch (a.type) {
		case A_CKPT_ID:
			r = attr_u64(&a, &ret->id);
			break;
		case A_PID:
			r = attr_u32(&a, &v);
			ret->pid = (pid_t)v;
			break;
		case A_NODE:
			r = attr_u32(&a, &ret->node);
			break;
		case A_HOLDER:
			r = attr_u32(&a, &ret->holder);
			break;
		case A_BYTES:
			r = attr_u64(&a, &ret->bytes);
			break;
		case A_PAGES:
			r = attr_u64(&a, &ret->pages);
			break;
		case A_TOTAL_NS:
			r = attr_u64(&a, &ret->total_ns);
			break;
		case A_FROZEN_NS:
			r = attr_u64(&a, &ret->frozen_ns);
			break;
		case A_EXPORT_NS:
			r = attr_u64(&a, &ret->export_ns);
			break;
		case A_IMPORT_NS:
			r = attr_u64(&a, &ret->import_ns);
			break;
		default:
			break;
		}
		if (r < 0)
			return r;
	}
	return r;
}

/* One request, progress frames, then the frame `done` (or an error). */
static int client_ckpt(const char *path, uint16_t type, const struct buf *req, uint16_t done,
		       node_progress_fn progress, void *userdata, struct node_ckpt_result *ret,
		       struct buf *err)
{
	struct node_ckpt_result res = { 0 };
	struct client cl;
	int r;

	r = client_connect(&cl, path, err);
	if (r >= 0) {
		r = client_send(&cl, type, req, NULL, 0);
		if (r < 0)
			r = buf_set_error(err, r, "cannot send to ghostd: %s", strerror(-r));
	}
	while (r >= 0) {
		const void *payload;
		uint16_t t;
		size_t len;

		r = client_recv(&cl, &t, &payload, &len, err);
		if (r < 0)
			break;
		if (t == CTL_ERROR) {
			r = client_error_frame(payload, len, err, NULL);
			break;
		}
		if (t == CTL_PROGRESS) {
			struct attr_iter it;
			struct attr a;
			uint64_t d = 0, total = 0;

			attr_iter_init(&it, payload, len);
			while (attr_next(&it, &a) > 0) {
				if (a.type == A_DONE)
					(void)attr_u64(&a, &d);
				else if (a.type == A_TOTAL)
					(void)attr_u64(&a, &total);
			}
			if (progress)
				progress(d, total, userdata);
			continue;
		}
		if (t != done) {
			r = unexpected(&cl, t, err);
			break;
		}
		if (parse_ckpt_result(payload, len, &res) < 0)
			r = client_lost(&cl, -EBADMSG, err);
		break;
	}
	client_release(&cl);
	if (r >= 0 && ret)
		*ret = res;
	return r < 0 ? r : 0;
}

int node_client_checkpoint(const char *path, pid_t pid, uint32_t holder, unsigned flags,
			   node_progress_fn progress, void *userdata,
			   struct node_ckpt_result *ret, struct buf *err)
{
	uint32_t wire = ((flags & NODE_CKPT_STOP) ? KEEP_F_STOP : 0) |
			((flags & NODE_CKPT_KILL) ? KEEP_F_KILL : 0);
	struct buf req = BUF_INIT;
	int r;

	r = attr_put_u32(&req, A_PID, (uint32_t)pid);
	if (r >= 0)
		r = attr_put_u32(&req, A_HOLDER, holder);
	if (r >= 0)
		r = attr_put_u32(&req, A_FLAGS, wire);
	if (r >= 0)
		r = client_ckpt(path, CTL_CKPT_SAVE, &req, CTL_CKPT_SAVED, progress, userdata, ret,
				err);
	else
		r = buf_set_error(err, r, "out of memory");
	buf_release(&req);
	return r;
}

int node_client_restore(const char *path, uint64_t id, uint32_t node, node_progress_fn progress,
			void *userdata, struct node_ckpt_result *ret, struct buf *err)
{
	struct buf req = BUF_INIT;
	int r;

	r = attr_put_u64(&req, A_CKPT_ID, id);
	if (r >= 0)
		r = attr_put_u32(&req, A_NODE, node);
	if (r >= 0)
		r = client_ckpt(path, CTL_CKPT_RESTORE, &req, CTL_CKPT_RESTORED, progress,
				userdata, ret, err);
	else
		r = buf_set_error(err, r, "out of memory");
	buf_release(&req);
	return r;
}

int node_client_drop(const char *path, uint64_t id, struct node_ckpt_result *ret,
		     struct buf *err)
{
	struct buf req = BUF_INIT;
	int r;

	r = attr_put_u64(&req, A_CKPT_ID, id);
	if (r >= 0)
		r = client_ckpt(path, CTL_CKPT_DROP, &req, CTL_CKPT_DROPPED, NULL, NULL, ret, err);
	else
		r = buf_set_error(err, r, "out of memory");
	buf_release(&req);
	return r;
}

void node_ckpt_info_free_array(struct node_ckpt_info *c, size_t n)
{
	if (!c)
		return;
	for (size_t i = 0; i < n; i++)
		free(c[i].command);
	free(c);
}

static int parse_ckpt_info(const void *payload, size_t len, struct node_ckpt_info *ci)
{
	struct attr_iter it;
	struct attr a;
	uint32_t v;
	int r;

	*ci = (struct node_ckpt_info){ 0 };
	attr_iter_init(&it, payload, len);
	while ((r = attr_next(&it, &a)) > 0) {
		switch (a.type) {
		case A_CKPT_ID:
			(void)attr_u64(&a, &ci->id);
			break;
		case A_HOLDER:
			(void)attr_u32(&a, &ci->holder);
			break;
		case A_NODE:
			(void)attr_u32(&a, &ci->node);
			break;
		case A_PID:
			if (attr_u32(&a, &v) >= 0)
				ci->pid = (pid_t)v;
			break;
		case A_UID:
			if (attr_u32(&a, &v) >= 0)
				ci->uid = (uid_t)v;
			break;
		case A_BYTES:
			(void)attr_u64(&a, &ci->bytes);
			break;
		case A_PAGES:
			(void)attr_u64(&a, &ci->pages);
			break;
		case A_CREATED:
			(void)attr_u64(&a, &ci->created);
			break;
		case A_STATE:
			(void)attr_strcpy(&a, ci->state, sizeof(ci->state));
			break;
		case A_COMMAND:
			free(ci->command);
			ci->command = NULL;
			if (attr_strdup(&a, &ci->command) < 0)
				return -ENOMEM;
			break;
		default:
			break;
		}
	}
	if (!ci->command)
		ci->command = strdup("");
	return ci->command ? 0 : -ENOMEM;
}

int node_client_checkpoints(const char *path, struct node_ckpt_info **ret, size_t *ret_n,
			    struct node_ckpt_usage **ret_usage, size_t *ret_n_usage,
			    struct buf *warnings, struct buf *err)
{
	struct node_ckpt_info *list = NULL;
	struct node_ckpt_usage *usage = NULL;
	size_t n = 0, nu = 0;
	struct client cl;
	int r;

	r = client_connect(&cl, path, err);
	if (r >= 0) {
		r = client_send(&cl, CTL_CKPT_LIST, NULL, NULL, 0);
		if (r < 0)
			r = buf_set_error(err, r, "cannot send to ghostd: %s", strerror(-r));
	}
	while (r >= 0) {
		const void *payload;
		struct attr_iter it;
		struct attr a;
		uint16_t type;
		size_t len;

		r = client_recv(&cl, &type, &payload, &len, err);
		if (r < 0 || type == CTL_END)
			break;
		if (type == CTL_ERROR) {
			r = client_error_frame(payload, len, err, NULL);
			break;
		}
		attr_iter_init(&it, payload, len);
		if (type == CTL_WARNING) {
			while (warnings && attr_next(&it, &a) > 0)
				if (a.type == A_MESSAGE)
					(void)buf_printf(warnings, "%.*s\n", (int)MIN(a.len, 1024u),
							 (const char *)a.data);
			continue;
		}
		if (type == CTL_CKPT_NODE) {
			struct node_ckpt_usage u = { 0 }, *nl;

			while (attr_next(&it, &a) > 0) {
				if (a.type == A_NODE)
					(void)attr_u32(&a, &u.node);
				else if (a.type == A_MEM_USED)
					(void)attr_u64(&a, &u.used);
				else if (a.type == A_MEM_LIMIT)
					(void)attr_u64(&a, &u.limit);
			}
			nl = realloc(usage, (nu + 1) * sizeof(*nl));
			if (!nl) {
				r = buf_set_error(err, -ENOMEM, "out of memory");
				break;
			}
			usage = nl;
			usage[nu++] = u;
			continue;
		}
		if (type != CTL_CKPT) {
			r = unexpected(&cl, type, err);
			break;
		}
		{
			struct node_ckpt_info *nl = realloc(list, (n + 1) * sizeof(*nl));

			if (!nl) {
				r = buf_set_error(err, -ENOMEM, "out of memory");
				break;
			}
			list = nl;
		}
		r = parse_ckpt_info(payload, len, &list[n]);
		if (r < 0) {
			r = buf_set_error(err, r, "out of memory");
			break;
		}
		n++;
	}
	client_release(&cl);
	if (r < 0) {
		node_ckpt_info_free_array(list, n);
		free(usage);
		return r;
	}
	*ret = list;
	*ret_n = n;
	if (ret_usage)
		*ret_usage = usage;
	else
		free(usage);
	if (ret_n_usage)
		*ret_n_usage = nu;
	return 0;
}

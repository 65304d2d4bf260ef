/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Holders: a process frozen in place while the stream manager (stream.c)
 * swaps its stream descriptors. The freeze is a ptrace hold of the engine
 * (ghost_hold_new()), and a tracer must stay the same thread for as long as
 * the hold lasts, so each hold lives in a small worker process of its own:
 * the daemon keeps serving, and the daemon's own waitpid() never sees the
 * tracee's stops.
 *
 * The daemon talks to the worker over a SOCK_SEQPACKET socketpair, one
 * request and one answer at a time, synchronously: every request is a few
 * injected system calls (about a millisecond). A worker whose daemon goes
 * away lets its process go (the socket reads end of file), as does a
 * worker that is killed: the kernel detaches a tracer's tracees when it
 * exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOG_PREFIX "holder"
#include "base/fileio.h"
#include "base/log.h"
#include "ghost/ghost.h"
#include "node/node-int.h"
#include "base/banned.h"

/* How long the daemon waits for an answer from a holder. */
#define HOLDER_TIMEOUT_MS 5000

enum holder_cmd {
	HOLDER_INSTALL = 1,
	HOLDER_RELEASE,
};

struct holder_request {
	uint32_t cmd;
	uint32_t n;
	int32_t fds[STREAM_MAX_FDS];
	int32_t fd_flags[STREAM_MAX_FDS];
};

struct holder_answer {
	int32_t err;
	char msg[400];
};

struct holder {
	pid_t pid;
	pid_t worker;
	int sock;
};

struct holder_job {
	pid_t pid;
	int sock;
};

static void answer(int sock, int err, const char *msg)
{
	struct holder_answer a = { .err = err };

	snprintf(a.msg, sizeof(a.msg), "%s", msg ? msg : "");
	(void)!send(sock, &a, sizeof(a), MSG_NOSIGNAL);
}

/* Receive one request and the fd that comes with an install. */
static ssize_t recv_request(int sock, struct holder_request *rq, int *ret_fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov = { .iov_base = rq, .iov_len = sizeof(*rq) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	ssize_t n;

	*ret_fd = -1;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(ret_fd, CMSG_DATA(c), sizeof(int));
	return n;
}

static _Noreturn void holder_main(const void *job, int report_fd)
{
	const struct holder_job *j = job;
	struct ghost_hold *h = NULL;
	char why[400];
	int r;

	safe_close(report_fd);
	r = ghost_hold_new(j->pid, &h, why, sizeof(why));
	answer(j->sock, r < 0 ? r : 0, r < 0 ? why : NULL);
	if (r < 0)
		_exit(1);
	for (;;) {
		struct holder_request rq;
		ssize_t n;
		int fd;

		n = recv_request(j->sock, &rq, &fd);
		if (n <= 0 || rq.cmd == HOLDER_RELEASE || n != (ssize_t)sizeof(rq)) {
			safe_close(fd);
			break;
		}
		r = -EINVAL;
		snprintf(why, sizeof(why), "malformed request to the holder of process %d",
			 (int)j->pid);
		if (rq.cmd == HOLDER_INSTALL && fd >= 0 && rq.n > 0 && rq.n <= STREAM_MAX_FDS) {
			r = 0;
			for (uint32_t i = 0; i < rq.n && r >= 0; i++)
				r = ghost_hold_install(h, rq.fds[i], fd, rq.fd_flags[i], why,
						       sizeof(why));
		}
		safe_close(fd);
		answer(j->sock, r < 0 ? r : 0, r < 0 ? why : NULL);
	}
	h = ghost_hold_release(h);
	answer(j->sock, 0, NULL);
	_exit(0);
}

/* The answer to the last request, within the timeout. */
static int wait_answer(struct holder *h, char *why, size_t why_len)
{
	struct pollfd p = { .fd = h->sock, .events = POLLIN };
	struct holder_answer a;
	ssize_t n;
	int r;

	do
		r = poll(&p, 1, HOLDER_TIMEOUT_MS);
	while (r < 0 && errno == EINTR);
	if (r == 0) {
		snprintf(why, why_len, "the holder of process %d does not answer", (int)h->pid);
		return -ETIMEDOUT;
	}
	n = recv(h->sock, &a, sizeof(a), MSG_DONTWAIT);
	if (n != (ssize_t)sizeof(a)) {
		snprintf(why, why_len, "the holder of process %d is gone", (int)h->pid);
		return -EIO;
	}
	a.msg[sizeof(a.msg) - 1] = '\0';
	if (a.err < 0)
		snprintf(why, why_len, "%s", a.msg);
	return a.err;
}

int holder_start(pid_t pid, struct holder **ret, char *why, size_t why_len)
{
	struct holder *h;
	struct holder_job j = { .pid = pid };
	int sv[2], report = -1, r;

	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->pid = pid;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		free(h);
		snprintf(why, why_len, "socketpair: %s", strerror(-r));
		return r;
	}
	j.sock = sv[1];
	r = worker_fork(&sv[1], 1, true, holder_main, &j, &h->worker, &report);
	safe_close(sv[1]);
	safe_close(report);
	h->sock = sv[0];
	if (r < 0) {
		snprintf(why, why_len, "cannot start a holder for process %d: %s", (int)pid,
			 strerror(-r));
		safe_close(h->sock);
		free(h);
		return r;
	}
	r = wait_answer(h, why, why_len);
	if (r < 0) {
		(void)kill(h->worker, SIGKILL);
		safe_close(h->sock);
		free(h);
		return r;
	}
	*ret = h;
	return 0;
}

int holder_install(struct holder *h, const int *fds, const int *fd_flags, size_t n, int newfd,
		   char *why, size_t why_len)
{
	struct holder_request rq = { .cmd = HOLDER_INSTALL, .n = (uint32_t)n };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov = { .iov_base = &rq, .iov_len = sizeof(rq) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;

	if (n == 0 || n > STREAM_MAX_FDS)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		rq.fds[i] = fds[i];
		rq.fd_flags[i] = fd_flags[i];
	}
	memset(&u, 0, sizeof(u));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &newfd, sizeof(int));
	if (sendmsg(h->sock, &mh, MSG_NOSIGNAL) != (ssize_t)sizeof(rq)) {
		snprintf(why, why_len, "the holder of process %d is gone", (int)h->pid);
		return -EIO;
	}
	return wait_answer(h, why, why_len);
}

struct holder *holder_release(struct holder *h)
{
	struct holder_request rq = { .cmd = HOLDER_RELEASE };
	char why[128];

	if (!h)
		return NULL;
	if (send(h->sock, &rq, sizeof(rq), MSG_NOSIGNAL) == (ssize_t)sizeof(rq))
		(void)wait_answer(h, why, sizeof(why));
	else
		(void)kill(h->worker, SIGKILL);
	/* proc_reap() reaps the worker. */
	safe_close(h->sock);
	free(h);
	return NULL;
}

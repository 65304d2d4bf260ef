/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Transfer workers: the processes that move a ghost between two nodes. The
 * engine blocks for as long as an export or an import takes and traces the
 * process it works on, so the daemon forks a worker for each side of a
 * transfer and keeps serving meanwhile:
 *
 *   source node                                  destination node
 *   export worker  --- direct TCP (msg chan) --> import worker
 *   ghost_export() into the socket                ghost_import() from it
 *
 * The bytes go straight from one worker to the other: no daemon and no
 * third node is on the data path. The connection is authenticated with a
 * one-time key that the daemons exchanged over msg; with encryption on (the
 * cluster's default) a pump process on each side seals or opens the stream
 * between the engine and the socket, so that the engine still reads and
 * writes a plain byte stream.
 *
 * A worker tells its daemon how it is doing through a pipe of fixed-size
 * reports (smaller than PIPE_BUF, so each write is atomic): progress now and
 * then, and one final report with the outcome. A worker that dies without a
 * final report failed; the daemon reads end of file.
 *
 * The imported process is the import worker's child. It is created stopped
 * (GHOST_IMPORT_STOPPED); when the worker exits it is reparented to the
 * daemon, which is a child subreaper, and it runs once the daemon sends it
 * SIGCONT (on the source's commit).
 *
 * The keeper of a memory checkpoint (keeper.c) is a worker too: it shares
 * worker_fork(), the reports, the stall timeouts and the pumps.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX "worker"
#include "base/clock.h"
#include "base/fileio.h"
#include "base/log.h"
#include "ghost/ghost.h"
#include "node/node-int.h"
#include "base/banned.h"

/* A worker waits this long for its peer to connect or answer. */
#define CHAN_TIMEOUT_MS 10000
/* A transfer that makes no progress for this long fails. */
#define STALL_TIMEOUT_SEC 15
/* Progress reports at most this often. */
#define PROGRESS_EVERY_NS (200ull * 1000 * 1000)

/* Close every fd from 3 up except those in keep[] (sorted or not). */
static void close_all_but(const int *keep, size_t n)
{
	int lo = 3;

	for (;;) {
		int next = -1;

		for (size_t i = 0; i < n; i++)
			if (keep[i] >= lo && (next < 0 || keep[i] < next))
				next = keep[i];
		if (next < 0) {
			(void)syscall(SYS_close_range, (unsigned)lo, ~0U, 0U);
			return;
		}
		if (next > lo)
			(void)syscall(SYS_close_range, (unsigned)lo, (unsigned)next - 1, 0U);
		lo = next + 1;
	}
}

/* In a freshly forked worker: nothing of the daemon's signal handling. */
static void worker_setup(const int *keep, size_t n)
{
	struct sigaction sa = { .sa_handler = SIG_DFL };
	sigset_t none;

	sigemptyset(&sa.sa_mask);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGPIPE)
			(void)sigaction(s, &sa, NULL);
	/* A vanished peer must be -EPIPE, never a signal. */
	sa.sa_handler = SIG_IGN;
	(void)sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	close_all_but(keep, n);
}

void worker_report_send(int fd, const struct worker_report *rep)
{
	/* Atomic: smaller than PIPE_BUF. The daemon may be gone: ignore errors. */
	(void)!write(fd, rep, sizeof(*rep));
}

_Noreturn void worker_fail(int fd, struct worker_report *rep, int err, const char *fmt, ...)
{
	va_list ap;

	rep->kind = WORKER_DONE;
	rep->err = err < 0 ? err : -EIO;
	va_start(ap, fmt);
	vsnprintf(rep->msg, sizeof(rep->msg), fmt, ap);
	va_end(ap);
	worker_report_send(fd, rep);
	_exit(1);
}

/* A stalled peer must not hang the engine forever: the engine fails with
 * -EAGAIN and, on export, lets the process go. */
void worker_set_stall_timeouts(int fd)
{
	struct timeval tv = { .tv_sec = STALL_TIMEOUT_SEC };
	unsigned user_timeout = STALL_TIMEOUT_SEC * 1000;

	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
}

/* The pump's exit codes, so the worker can say what went wrong. */
enum pump_exit {
	PUMP_OK = 0,
	PUMP_BADMSG = 1,
	PUMP_RESET = 2,
	PUMP_OTHER = 3,
};

static int pump_exit_code(int r)
{
	if (r >= 0)
		return PUMP_OK;
	if (r == -EBADMSG)
		return PUMP_BADMSG;
	if (r == -ECONNRESET || r == -EPIPE)
		return PUMP_RESET;
	return PUMP_OTHER;
}

/* Start a pump process between the engine and the sealed connection; the
 * engine's end of a socketpair in ret_fd. seal: engine writes, pump seals;
 * else pump opens, engine reads. The caller's copy of the connection is
 * closed, so that it ends when the pump does. */
int worker_pump_start(struct msg_chan_session *cs, bool seal, int *ret_fd, pid_t *ret_pid)
{
	int sp[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return -errno;
	/* Room for a few of the engine's writes and the pump's records in
	 * flight: fewer, larger hand-overs between the two processes. */
	for (int k = 0; k < 2; k++) {
		int sz = 4 << 20;

		if (setsockopt(sp[k], SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) < 0)
			(void)setsockopt(sp[k], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	}
	pid = fork();
	if (pid < 0) {
		int r = -errno;

		safe_close(sp[0]);
		safe_close(sp[1]);
		return r;
	}
	if (pid == 0) {
		int keep[2] = { cs->fd, sp[0] };
		int r;

		close_all_but(keep, 2);
		/* The pump lives and dies with its worker. */
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		r = seal ? msg_chan_seal_pump(cs, sp[0]) : msg_chan_open_pump(cs, sp[0]);
		_exit(pump_exit_code(r));
	}
	safe_close(sp[0]);
	cs->fd = safe_close(cs->fd);
	*ret_fd = sp[1];
	*ret_pid = pid;
	return 0;
}

int worker_accept_stream(int listen_fd, const uint8_t *key, bool encrypt, uint32_t source,
			 int *ret_fd, pid_t *ret_pump, char *msg, size_t msg_len)
{
	struct msg_chan_session cs = MSG_CHAN_SESSION_INIT;
	int r;

	*ret_pump = -1;
	r = msg_chan_accept(listen_fd, key, CHAN_TIMEOUT_MS, &cs);
	if (r < 0) {
		snprintf(msg, msg_len, "node %u did not open the transfer connection: %s", source,
			 strerror(-r));
		return r;
	}
	worker_set_stall_timeouts(cs.fd);
	if (encrypt) {
		r = worker_pump_start(&cs, false, ret_fd, ret_pump);
		if (r < 0)
			snprintf(msg, msg_len, "cannot start the opening pump: %s", strerror(-r));
	} else {
		*ret_fd = cs.fd;
		cs.fd = -1; /* the stream is the socket itself */
	}
	/* The session key is the pump's alone now. */
	msg_chan_session_release(&cs);
	return r;
}

int worker_pump_wait(pid_t pid)
{
	int status;

	if (pid <= 0)
		return 0;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -ECHILD;
	if (!WIFEXITED(status))
		return -EIO;
	switch (WEXITSTATUS(status)) {
	case PUMP_OK:
		return 0;
	case PUMP_BADMSG:
		return -EBADMSG;
	case PUMP_RESET:
		return -ECONNRESET;
	default:
		return -EIO;
	}
}

bool worker_link_error(int r)
{
	return r == -EPIPE || r == -ECONNRESET || r == -EAGAIN || r == -ETIMEDOUT ||
	       r == -ENOTCONN || r == -ECONNABORTED;
}

void worker_progress(struct worker_progress *wp, uint64_t done, uint64_t total)
{
	struct worker_report rep = { .kind = WORKER_PROGRESS };
	uint64_t now = now_ns();

	if (now - wp->last_ns < PROGRESS_EVERY_NS && done < total)
		return;
	wp->last_ns = now;
	rep.done = done;
	rep.total = total;
	worker_report_send(wp->fd, &rep);
}

static void on_progress(const struct ghost_progress *p, void *userdata)
{
	worker_progress(userdata, p->done, p->total);
}

static _Noreturn void export_main(const struct worker_export_job *j, int report_fd)
{
	struct worker_report rep = { .kind = WORKER_DONE };
	struct worker_progress pc = { .fd = report_fd };
	struct ghost_export_opts opts = { .flags = j->flags, .progress = on_progress,
					  .carried_fds = j->carried, .n_carried = j->n_carried,
					  .userdata = &pc };
	struct msg_chan_session cs;
	struct ghost *g = NULL;
	pid_t pump = -1;
	int data_fd, r, rp;

	r = msg_chan_connect(j->host, j->port, j->key, CHAN_TIMEOUT_MS, &cs);
	if (r < 0)
		worker_fail(report_fd, &rep, r, "cannot open the transfer connection to node %u: %s",
			    j->dest, strerror(-r));
	worker_set_stall_timeouts(cs.fd);
	data_fd = cs.fd;
	if (j->encrypt) {
		r = worker_pump_start(&cs, true, &data_fd, &pump);
		if (r < 0)
			worker_fail(report_fd, &rep, r, "cannot start the sealing pump: %s",
				    strerror(-r));
	}
	r = ghost_new(&g);
	if (r >= 0)
		r = ghost_plug(g, GHOST_NET_SEND);
	if (r >= 0)
		r = ghost_associate_socket(g, data_fd);
	if (r < 0)
		worker_fail(report_fd, &rep, r, "cannot set up the export: %s", ghost_strerror(r));
	rep.freeze_start_ns = now_ns();
	r = ghost_export(g, j->pid, &opts);
	rep.stats = *ghost_get_stats(g);
	if (worker_link_error(r))
		snprintf(rep.msg, sizeof(rep.msg), "the transfer connection to node %u broke: %s",
			 j->dest, strerror(-r));
	else if (r < 0)
		snprintf(rep.msg, sizeof(rep.msg), "%s", ghost_errmsg(g));
	g = ghost_free(g);
	safe_close(data_fd);
	rp = worker_pump_wait(pump);
	if (r >= 0 && rp < 0) {
		r = rp;
		snprintf(rep.msg, sizeof(rep.msg), "the transfer connection to node %u broke: %s",
			 j->dest, strerror(-rp));
	}
	rep.err = r < 0 ? r : 0;
	worker_report_send(report_fd, &rep);
	_exit(r < 0 ? 1 : 0);
}

/* A hosted import as it crosses the job socket: the job with its pointers
 * and fds cleared, and the stand-ins its process gets. The fds come as
 * SCM_RIGHTS in this order: the report pipe, the listening socket, then
 * those of stdio that have_stdio names. */
struct host_job {
	struct worker_import_job j;
	struct standin_spawn spawn;
	bool have_spawn;
	uint8_t have_stdio; /* bit i: stdio[i] came */
	uint32_t n_own;
	pid_t own[MOVE_MAX_KIDS]; /* j.own_kids */
};

#define HOST_FDS_MAX 5

/* The whole stream, into a fresh memory file (rewound) in ret_fd: a
 * process that becomes the image's needs all of it at hand. */
static int stream_take_whole(int data_fd, int *ret_fd)
{
	static uint8_t chunk[1 << 20];
	int fd = memfd_create("ghost-image", MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(data_fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int r = n < 0 ? -errno : 0;

			if (r == 0 && lseek(fd, 0, SEEK_SET) < 0)
				r = -errno;
			if (r < 0) {
				safe_close(fd);
				return r;
			}
			*ret_fd = fd;
			return 0;
		}
		if (write_full(fd, chunk, (size_t)n) < 0) {
			int r = -errno;

			safe_close(fd);
			return r;
		}
	}
}

/* The stream ended early (err, or the pump's rp): say why in msg. (When the
 * engine failed for a reason of its own, the pump only saw its reader go.) */
static int stream_broke(const struct worker_import_job *j, int rp, char *msg, size_t size)
{
	if (rp == -EBADMSG)
		snprintf(msg, size, "the stream from node %u failed its integrity check", j->source);
	else
		snprintf(msg, size, "the transfer connection from node %u broke: %s", j->source,
			 strerror(-rp));
	return rp;
}

/*
 * Run the import of j, reporting its progress and its outcome (one
 * WORKER_DONE) on report_fd; 0 with the new process's PID in ret_pid, or
 * < 0. It returns rather than exits: a parent stand-in runs it too.
 *
 * With GHOST_IMPORT_BECOME the caller turns into the process: the stream is
 * taken whole first, and on success (or a failure once the caller had begun
 * to turn) the engine's helper, not the caller, reports and exits here.
 */
static int import_run(const struct worker_import_job *j, int report_fd, pid_t *ret_pid)
{
	struct worker_report rep = { .kind = WORKER_DONE };
	struct worker_progress pc = { .fd = report_fd };
	struct ghost_import_opts opts = {
		.flags = j->flags,
		.caller_uid = 0,
		.caller_gid = 0,
		.stdio = { j->stdio[0], j->stdio[1], j->stdio[2] },
		.pid = j->pid,
		.children = j->children,
		.n_children = j->n_children,
		.progress = on_progress,
		.userdata = &pc,
	};
	bool become = j->flags & GHOST_IMPORT_BECOME;
	struct ghost *g = NULL;
	pid_t pump = -1, pid = -1, me = getpid();
	int data_fd, image_fd = -1, r, rp;

	r = worker_accept_stream(j->listen_fd, j->key, j->encrypt, j->source, &data_fd, &pump,
				 rep.msg, sizeof(rep.msg));
	if (r < 0)
		goto out;
	if (become) {
		r = stream_take_whole(data_fd, &image_fd);
		data_fd = safe_close(data_fd);
		rp = worker_pump_wait(pump);
		pump = -1;
		/* The pump's reason first: a short read is only its symptom. */
		if (rp < 0 || r < 0) {
			r = stream_broke(j, rp < 0 ? rp : r, rep.msg, sizeof(rep.msg));
			goto out;
		}
	}
	r = ghost_new(&g);
	if (r >= 0)
		r = ghost_plug(g, become ? GHOST_FILE_READ : GHOST_NET_RECV);
	if (r >= 0)
		r = become ? ghost_associate_file(g, image_fd) : ghost_associate_socket(g, data_fd);
	if (r >= 0) {
		r = ghost_import(g, &opts, &pid);
		rep.stats = *ghost_get_stats(g);
		if (r < 0)
			snprintf(rep.msg, sizeof(rep.msg), "%s", ghost_errmsg(g));
	} else {
		snprintf(rep.msg, sizeof(rep.msg), "cannot set up the import: %s",
			 ghost_strerror(r));
	}
	g = ghost_free(g);
	safe_close(data_fd);
	safe_close(image_fd);
	rp = worker_pump_wait(pump);
	/* The stream ended early: the pump knows better why. */
	if (rp < 0 && (r == GHOST_ETRUNCATED || worker_link_error(r)))
		r = stream_broke(j, rp, rep.msg, sizeof(rep.msg));
out:
	rep.err = r < 0 ? r : 0;
	rep.pid = r < 0 ? 0 : pid;
	worker_report_send(report_fd, &rep);
	if (getpid() != me)
		_exit(r < 0 ? 1 : 0); /* the helper of GHOST_IMPORT_BECOME */
	*ret_pid = pid;
	return r < 0 ? r : 0;
}

int worker_job_socket(int *ret_daemon_fd, int *ret_worker_fd)
{
	int sp[2];

	/* Datagrams: a job and its fds arrive whole or not at all. */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return -errno;
	*ret_daemon_fd = sp[0];
	*ret_worker_fd = sp[1];
	return 0;
}

int worker_host_send(int job_fd, const struct worker_import_job *j,
		     const struct standin_spawn *spawn, int *ret_fd)
{
	struct host_job *h = calloc(1, sizeof(*h));
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * HOST_FDS_MAX)];
	} u;
	struct iovec iov;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf };
	struct cmsghdr *cm;
	int fds[HOST_FDS_MAX], p[2], r = 0;
	size_t n = 0;

	if (!h)
		return -ENOMEM;
	if (pipe2(p, O_CLOEXEC) < 0) {
		free(h);
		return -errno;
	}
	h->j = *j;
	h->j.children = NULL;
	h->j.n_children = 0;
	h->j.own_kids = NULL;
	h->j.n_own_kids = 0;
	h->n_own = (uint32_t)MIN(j->n_own_kids, ARRAY_SIZE(h->own));
	if (h->n_own)
		memcpy(h->own, j->own_kids, h->n_own * sizeof(h->own[0]));
	h->j.listen_fd = h->j.job_fd = -1;
	if (spawn) {
		h->spawn = *spawn;
		h->have_spawn = true;
	}
	fds[n++] = p[1];
	fds[n++] = j->listen_fd;
	for (int i = 0; i < 3; i++) {
		h->j.stdio[i] = -1;
		if (j->stdio[i] >= 0) {
			h->have_stdio |= 1u << i;
			fds[n++] = j->stdio[i];
		}
	}
	iov = (struct iovec){ h, sizeof(*h) };
	mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
	memset(u.buf, 0, sizeof(u.buf));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
	/* One datagram on an idle socket: it fits, or the stand-in is gone. */
	if (sendmsg(job_fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)sizeof(*h))
		r = errno ? -errno : -EIO;
	explicit_bzero(h, sizeof(*h)); /* the key */
	free(h);
	safe_close(p[1]);
	if (r >= 0 && fcntl(p[0], F_SETFL, O_NONBLOCK) < 0)
		r = -errno;
	if (r < 0) {
		safe_close(p[0]);
		return r;
	}
	*ret_fd = p[0];
	return 0;
}

/* Receive a hosted import from the job socket: 1 with it (fds set in h->j,
 * its report pipe in ret_report), 0 at end of file, < 0 for a datagram that
 * is no job (its fds closed). */
static int host_recv(int job_fd, struct host_job *h, int *ret_report)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * HOST_FDS_MAX)];
	} u;
	struct iovec iov = { h, sizeof(*h) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	int fds[HOST_FDS_MAX];
	size_t n = 0, want = 2;
	ssize_t got;

	do
		got = recvmsg(job_fd, &mh, MSG_CMSG_CLOEXEC);
	while (got < 0 && errno == EINTR);
	if (got == 0)
		return 0;
	if (got < 0)
		return errno == EAGAIN ? -EAGAIN : 0; /* a broken socket: as good as closed */
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			memcpy(fds, CMSG_DATA(cm), n * sizeof(int));
		}
	if (got == (ssize_t)sizeof(*h))
		for (int i = 0; i < 3; i++)
			want += (h->have_stdio >> i) & 1;
	if (got != (ssize_t)sizeof(*h) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || n != want) {
		for (size_t i = 0; i < n; i++)
			safe_close(fds[i]);
		return -EBADMSG;
	}
	*ret_report = fds[0];
	h->j.listen_fd = fds[1];
	n = 2;
	for (int i = 0; i < 3; i++)
		h->j.stdio[i] = (h->have_stdio >> i) & 1 ? fds[n++] : -1;
	h->j.own_kids = h->own;
	h->j.n_own_kids = MIN(h->n_own, ARRAY_SIZE(h->own));
	if (h->have_spawn) {
		h->spawn.n = MIN(h->spawn.n, ARRAY_SIZE(h->spawn.child));
		h->spawn.control[sizeof(h->spawn.control) - 1] = '\0';
		standin_spawn_relink(&h->spawn);
		h->j.children = h->spawn.child;
		h->j.n_children = h->spawn.n;
	}
	return 1;
}

/* Is each of the parent's children here still ours, not waited for? One
 * that ended and was reaped (and reported) meanwhile is no longer. */
static int own_kids_check(const struct worker_import_job *j, struct worker_report *rep)
{
	for (size_t i = 0; i < j->n_own_kids; i++) {
		siginfo_t si;

		if (waitid(P_PID, (id_t)j->own_kids[i], &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
			snprintf(rep->msg, sizeof(rep->msg),
				 "process %d, a child of process %d, ended meanwhile; try again",
				 (int)j->own_kids[i], (int)getpid());
			return -EAGAIN;
		}
	}
	return 0;
}

/*
 * A hosted import: receive the job on job_fd and run it here, with root's
 * user IDs for as long as it takes (the caller's real and saved ones are
 * back afterwards). A failed one leaves nothing behind (the engine reaps
 * its own stub). With GHOST_IMPORT_BECOME the caller turns into the process
 * and is never back, unless the import fails before it began to turn. 0 at
 * end of file, 1 after a job, < 0 for a datagram that was no job.
 */
static int host_run(int job_fd)
{
	static struct host_job job;
	struct host_job *h = &job;
	struct worker_report rep = { .kind = WORKER_DONE };
	int report_fd = -1, r;
	uid_t ruid, euid, suid;
	pid_t pid;

	memset(h, 0, sizeof(*h));
	r = host_recv(job_fd, h, &report_fd);
	if (r > 0) {
		rep.err = h->j.flags & GHOST_IMPORT_BECOME ? own_kids_check(&h->j, &rep) : 0;
		if (rep.err < 0) {
			worker_report_send(report_fd, &rep);
		} else {
			(void)getresuid(&ruid, &euid, &suid);
			(void)!setresuid(0, 0, 0);
			(void)import_run(&h->j, report_fd, &pid);
			(void)!setresuid(ruid, euid, suid);
		}
		safe_close(report_fd);
		safe_close(h->j.listen_fd);
		for (int i = 0; i < 3; i++)
			safe_close(h->j.stdio[i]);
	}
	explicit_bzero(h, sizeof(*h)); /* the key */
	return r;
}

void worker_host_turn(int job_fd)
{
	(void)host_run(job_fd);
}

/*
 * After the import, as the parent's stand-in (standin.c): hold the process
 * as a child, pass on the signals it sends to its parent, and report the end
 * of each child. The daemon hands it the imports of the parent's other
 * children that come to this node (host_run()), so that it is their parent
 * too. It goes when the daemon closes the job socket and no child is left.
 * Real and saved user IDs are the parent's, so that its children may signal
 * it as they could signal their parent.
 */
static _Noreturn void parent_standin(const struct worker_import_job *j, int report_fd)
{
	struct worker_report rep = { 0 };
	bool jobs_open = j->job_fd >= 0;
	sigset_t all;
	int sfd;

	sigfillset(&all);
	(void)sigprocmask(SIG_SETMASK, &all, NULL);
	sfd = signalfd(-1, &all, SFD_CLOEXEC | SFD_NONBLOCK);
	(void)prctl(PR_SET_NAME, "ghost-parent");
	/* On failure only the signals of another user would reach us: go on. */
	(void)!setresuid(j->parent_uid, 0, j->parent_uid);
	for (;;) {
		struct pollfd pf[2] = { { sfd, POLLIN, 0 }, { jobs_open ? j->job_fd : -1, POLLIN, 0 } };
		struct signalfd_siginfo si;
		int st;
		pid_t w;

		while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
			rep = (struct worker_report){ .kind = WORKER_CHILD_EXIT, .pid = w,
						      .done = (uint64_t)(unsigned)st };
			worker_report_send(report_fd, &rep);
		}
		if (w < 0 && errno == ECHILD && !jobs_open)
			_exit(0);
		/* Without a signalfd, look for ended children now and then. */
		if (poll(pf, 2, sfd < 0 ? 100 : -1) < 0) {
			if (errno != EINTR)
				_exit(1);
			continue;
		}
		if (pf[1].revents & POLLIN)
			jobs_open = host_run(j->job_fd) != 0;
		else if (pf[1].revents & (POLLHUP | POLLERR))
			jobs_open = false;
		while (sfd >= 0 && read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			if (si.ssi_signo == SIGCHLD)
				continue;
			rep = (struct worker_report){ .kind = WORKER_SIGNAL, .pid = (int32_t)si.ssi_pid,
						      .done = si.ssi_signo };
			worker_report_send(report_fd, &rep);
		}
	}
}

static _Noreturn void import_main(const struct worker_import_job *j, int report_fd)
{
	pid_t pid;
	int r;

	r = import_run(j, report_fd, &pid);
	safe_close(j->listen_fd);
	if (r >= 0 && j->parent > 0)
		parent_standin(j, report_fd);
	_exit(r < 0 ? 1 : 0);
}

static pid_t fork_at(pid_t want)
{
	struct clone_args args = {
		.exit_signal = SIGCHLD,
		.set_tid = (uint64_t)(uintptr_t)&want,
		.set_tid_size = 1,
	};

	if (want <= 0)
		return fork();
	return (pid_t)syscall(SYS_clone3, &args, sizeof(args));
}

/* worker_fork(), the worker with PID want unless 0. */
static int worker_fork_at(pid_t want, const int *keep_fds, size_t n_keep, bool die_with_daemon,
			  worker_fn fn, const void *job, pid_t *ret_pid, int *ret_fd)
{
	int p[2];
	pid_t pid;

	if (n_keep > WORKER_KEEP_MAX)
		return -EINVAL;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork_at(want);
	if (pid < 0) {
		int r = -errno;

		safe_close(p[0]);
		safe_close(p[1]);
		return r;
	}
	if (pid == 0) {
		int keep[WORKER_KEEP_MAX + 1] = { p[1] };
		size_t n = 1;

		/* -1 entries are skipped. */
		for (size_t i = 0; i < n_keep; i++)
			if (keep_fds[i] >= 0)
				keep[n++] = keep_fds[i];
		worker_setup(keep, n);
		/* An import is useless once its daemon is gone: nobody would let
		 * the copy run. An export must end on its own: stopping the engine
		 * midway could leave its process with injected state. */
		if (die_with_daemon && prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
			_exit(1);
		fn(job, p[1]);
		_exit(1);
	}
	safe_close(p[1]);
	if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0) {
		int r = -errno;

		/* Cannot happen on a fresh pipe; the worker sees EPIPE and stops. */
		safe_close(p[0]);
		return r;
	}
	*ret_pid = pid;
	*ret_fd = p[0];
	return 0;
}

int worker_fork(const int *keep_fds, size_t n_keep, bool die_with_daemon, worker_fn fn,
		const void *job, pid_t *ret_pid, int *ret_fd)
{
	return worker_fork_at(0, keep_fds, n_keep, die_with_daemon, fn, job, ret_pid, ret_fd);
}

static void run_export(const void *job, int fd)
{
	export_main(job, fd);
}

static void run_import(const void *job, int fd)
{
	import_main(job, fd);
}

int worker_export_start(const struct worker_export_job *j, pid_t *ret_pid, int *ret_fd)
{
	return worker_fork(NULL, 0, false, run_export, j, ret_pid, ret_fd);
}

int worker_import_start(const struct worker_import_job *j, pid_t *ret_pid, int *ret_fd)
{
	int keep[5] = { j->listen_fd, j->stdio[0], j->stdio[1], j->stdio[2],
			j->parent > 0 ? j->job_fd : -1 };

	return worker_fork_at(j->parent, keep, ARRAY_SIZE(keep), true, run_import, j, ret_pid,
			      ret_fd);
}

int worker_read_report(int fd, struct worker_report *ret)
{
	ssize_t n;

	do
		n = read(fd, ret, sizeof(*ret));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? 0 : -errno;
	if (n == 0)
		return -EPIPE;
	if (n != (ssize_t)sizeof(*ret))
		return -EBADMSG;
	ret->msg[sizeof(ret->msg) - 1] = '\0';
	return 1;
}

enum worker_next worker_next_report(int fd, const char *what, uint32_t node,
				    struct worker_report *ret)
{
	int r = worker_read_report(fd, ret);

	if (r == 0)
		return WORKER_NEXT_NONE;
	if (r > 0)
		return ret->kind == WORKER_PROGRESS ? WORKER_NEXT_PROGRESS : WORKER_NEXT_FINAL;
	*ret = (struct worker_report){ .kind = WORKER_DONE, .err = -EIO };
	snprintf(ret->msg, sizeof(ret->msg), "the %s worker on node %u died", what, node);
	return WORKER_NEXT_FINAL;
}

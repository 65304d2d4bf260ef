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
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
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

static void report(int fd, const struct worker_report *rep)
{
	/* Atomic: smaller than PIPE_BUF. The daemon may be gone: ignore errors. */
	(void)!write(fd, rep, sizeof(*rep));
}

static _Noreturn void report_fail(int fd, struct worker_report *rep, int err, const char *fmt, ...)
	_printf_(4, 5);
static _Noreturn void report_fail(int fd, struct worker_report *rep, int err, const char *fmt, ...)
{
	va_list ap;

	rep->kind = WORKER_DONE;
	rep->err = err < 0 ? err : -EIO;
	va_start(ap, fmt);
	vsnprintf(rep->msg, sizeof(rep->msg), fmt, ap);
	va_end(ap);
	report(fd, rep);
	_exit(1);
}

/* A stalled peer must not hang the engine forever: the engine fails with
 * -EAGAIN and, on export, lets the process go. */
static void set_stall_timeouts(int fd)
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
static int start_pump(struct msg_chan_session *cs, bool seal, int report_fd, int *ret_fd,
		      pid_t *ret_pid)
{
	int sp[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return -errno;
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

		(void)report_fd;
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

/* 0, or the pump's failure as -errno. */
static int wait_pump(pid_t pid)
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

struct progress_ctx {
	int fd;
	uint64_t last_ns;
};

static void on_progress(const struct ghost_progress *p, void *userdata)
{
	struct progress_ctx *pc = userdata;
	struct worker_report rep = { .kind = WORKER_PROGRESS };
	uint64_t now = now_ns();

	if (now - pc->last_ns < PROGRESS_EVERY_NS && p->done < p->total)
		return;
	pc->last_ns = now;
	rep.done = p->done;
	rep.total = p->total;
	report(pc->fd, &rep);
}

static _Noreturn void export_main(const struct worker_export_job *j, int report_fd)
{
	struct worker_report rep = { .kind = WORKER_DONE };
	struct progress_ctx pc = { .fd = report_fd };
	struct ghost_export_opts opts = { .flags = j->flags, .progress = on_progress,
					  .userdata = &pc };
	struct msg_chan_session cs;
	struct ghost *g = NULL;
	pid_t pump = -1;
	int data_fd, r, rp;

	r = msg_chan_connect(j->host, j->port, j->key, CHAN_TIMEOUT_MS, &cs);
	if (r < 0)
		report_fail(report_fd, &rep, r, "cannot open the transfer connection to node %u: %s",
			    j->dest, strerror(-r));
	set_stall_timeouts(cs.fd);
	data_fd = cs.fd;
	if (j->encrypt) {
		r = start_pump(&cs, true, report_fd, &data_fd, &pump);
		if (r < 0)
			report_fail(report_fd, &rep, r, "cannot start the sealing pump: %s",
				    strerror(-r));
	}
	r = ghost_new(&g);
	if (r >= 0)
		r = ghost_plug(g, GHOST_NET_SEND);
	if (r >= 0)
		r = ghost_associate_socket(g, data_fd);
	if (r < 0)
		report_fail(report_fd, &rep, r, "cannot set up the export: %s", ghost_strerror(r));
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
	rp = wait_pump(pump);
	if (r >= 0 && rp < 0) {
		r = rp;
		snprintf(rep.msg, sizeof(rep.msg), "the transfer connection to node %u broke: %s",
			 j->dest, strerror(-rp));
	}
	rep.err = r < 0 ? r : 0;
	report(report_fd, &rep);
	_exit(r < 0 ? 1 : 0);
}

static _Noreturn void import_main(const struct worker_import_job *j, int report_fd)
{
	struct worker_report rep = { .kind = WORKER_DONE };
	struct progress_ctx pc = { .fd = report_fd };
	struct ghost_import_opts opts = {
		.flags = j->flags,
		.caller_uid = 0,
		.caller_gid = 0,
		.stdio = { j->stdio[0], j->stdio[1], j->stdio[2] },
		.pid = j->pid,
		.progress = on_progress,
		.userdata = &pc,
	};
	struct msg_chan_session cs;
	struct ghost *g = NULL;
	pid_t pump = -1, pid = -1;
	int data_fd, r, rp;

	r = msg_chan_accept(j->listen_fd, j->key, CHAN_TIMEOUT_MS, &cs);
	safe_close(j->listen_fd);
	if (r < 0)
		report_fail(report_fd, &rep, r,
			    "node %u did not open the transfer connection: %s", j->source,
			    strerror(-r));
	set_stall_timeouts(cs.fd);
	data_fd = cs.fd;
	if (j->encrypt) {
		r = start_pump(&cs, false, report_fd, &data_fd, &pump);
		if (r < 0)
			report_fail(report_fd, &rep, r, "cannot start the opening pump: %s",
				    strerror(-r));
	}
	r = ghost_new(&g);
	if (r >= 0)
		r = ghost_plug(g, GHOST_NET_RECV);
	if (r >= 0)
		r = ghost_associate_socket(g, data_fd);
	if (r < 0)
		report_fail(report_fd, &rep, r, "cannot set up the import: %s", ghost_strerror(r));
	r = ghost_import(g, &opts, &pid);
	rep.stats = *ghost_get_stats(g);
	if (r < 0)
		snprintf(rep.msg, sizeof(rep.msg), "%s", ghost_errmsg(g));
	g = ghost_free(g);
	safe_close(data_fd);
	rp = wait_pump(pump);
	if (rp < 0 && (r == GHOST_ETRUNCATED || worker_link_error(r))) {
		/* The stream ended early: the pump knows better why. (When the
		 * engine failed for a reason of its own, the pump only saw its
		 * reader go away.) */
		if (rp == -EBADMSG)
			snprintf(rep.msg, sizeof(rep.msg),
				 "the stream from node %u failed its integrity check", j->source);
		else
			snprintf(rep.msg, sizeof(rep.msg),
				 "the transfer connection from node %u broke: %s", j->source,
				 strerror(-rp));
		r = rp;
	}
	rep.err = r < 0 ? r : 0;
	rep.pid = r < 0 ? 0 : pid;
	report(report_fd, &rep);
	_exit(r < 0 ? 1 : 0);
}

/* Fork a worker with a report pipe; the child keeps the n_keep fds of keep
 * (-1 entries are skipped), runs fn and never returns. */
static int fork_worker(const int *keep, size_t n_keep, bool die_with_daemon, pid_t *ret_pid,
		       int *ret_fd, void (*fn)(const void *, int), const void *job)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int r = -errno;

		safe_close(p[0]);
		safe_close(p[1]);
		return r;
	}
	if (pid == 0) {
		int kept[8] = { p[1] };
		size_t n = 1;

		for (size_t i = 0; i < n_keep && n < ARRAY_SIZE(kept); i++)
			if (keep[i] >= 0)
				kept[n++] = keep[i];
		worker_setup(kept, n);
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
	return fork_worker(NULL, 0, false, ret_pid, ret_fd, run_export, j);
}

int worker_import_start(const struct worker_import_job *j, pid_t *ret_pid, int *ret_fd)
{
	int keep[4] = { j->listen_fd, j->stdio[0], j->stdio[1], j->stdio[2] };

	return fork_worker(keep, ARRAY_SIZE(keep), true, ret_pid, ret_fd, run_import, j);
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

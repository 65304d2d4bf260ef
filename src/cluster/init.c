/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The node init: PID 1 of one node's PID namespace, run in the clone the
 * keeper makes. It gives the node its own /proc and hostname, says "ready"
 * on its control socket, starts the node's ghostd when the keeper says
 * "ghostd" (once the node's network is up), then reaps every process the
 * node's namespace hands it until told to stop (SIGTERM, or the keeper's end
 * of the control socket closing). When it exits the kernel kills whatever is
 * left in the node.
 *
 *   start --(mounts, /proc, hostname)--> ready --(SIGTERM | ctl EOF)--> stopping
 *     |                                  |  ^                              |
 *     +--(any step fails: "error")--> exit  +-- SIGCHLD: reap all          +--> exit
 *                                        +-- "ghostd": fork and exec it,
 *                                            answer "started PID" or "error ERRNO TEXT"
 *
 * Messages to the keeper after "ready": the answer to "ghostd", and
 * "ghostd-exit STATUS" (a wait status) when the daemon ends; it is not
 * restarted, so that its failure is seen by the other nodes.
 *
 * stopping: SIGTERM to ghostd alone, wait up to DAEMON_GRACE_MS for it (it
 * tells the other nodes it leaves), then SIGTERM to every other process of
 * the node, reap for up to STOP_GRACE_MS, exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fileio.h"
#include "cluster/cluster-int.h"
#include "base/banned.h"

#define STOP_GRACE_MS 1000
#define DAEMON_GRACE_MS 1500

/* The node's ghostd, as the node's PID namespace sees it; 0 when none runs. */
static pid_t daemon_pid;

static _Noreturn void init_fail(int ctl, int r, const char *what)
{
	char msg[256];
	int len = snprintf(msg, sizeof(msg), "error %d %s", -r, what);

	if (len > 0)
		(void)send(ctl, msg, MIN((size_t)len, sizeof(msg) - 1), MSG_NOSIGNAL);
	_exit(1);
}

/* Reap every child that has ended, telling the keeper (ctl >= 0) when the
 * daemon is among them; false once there are none left. */
static bool reap_all(int ctl)
{
	for (;;) {
		int st = 0;
		pid_t p = waitpid(-1, &st, WNOHANG);

		if (p > 0 && p == daemon_pid) {
			char msg[64];
			int len = snprintf(msg, sizeof(msg), "ghostd-exit %d", st);

			daemon_pid = 0;
			if (ctl >= 0 && len > 0)
				(void)send(ctl, msg, (size_t)len, MSG_NOSIGNAL);
		}
		if (p > 0)
			continue;
		return !(p < 0 && errno == ECHILD);
	}
}

static void drain_signals(int sfd, bool *stop)
{
	struct signalfd_siginfo si;

	while (read(sfd, &si, sizeof(si)) == sizeof(si))
		if (si.ssi_signo == SIGTERM)
			*stop = true;
}

static _Noreturn void stop_node(int sfd)
{
	uint64_t end = cl_now_ms() + DAEMON_GRACE_MS;
	bool unused = false;

	/* The daemon first, while the node's processes still run: it says to the
	 * other nodes that it leaves. */
	if (daemon_pid > 0 && kill(daemon_pid, SIGTERM) == 0) {
		while (daemon_pid > 0 && reap_all(-1)) {
			struct pollfd p = { .fd = sfd, .events = POLLIN };
			uint64_t now = cl_now_ms();

			if (now >= end)
				break;
			(void)poll(&p, 1, (int)MIN(end - now, 50));
			drain_signals(sfd, &unused);
		}
	}
	end = cl_now_ms() + STOP_GRACE_MS;
	/* -1 from the init of a PID namespace: every process of the node but us. */
	(void)kill(-1, SIGTERM);
	while (reap_all(-1)) {
		struct pollfd p = { .fd = sfd, .events = POLLIN };
		uint64_t now = cl_now_ms();

		if (now >= end)
			break;
		(void)poll(&p, 1, (int)(end - now));
		drain_signals(sfd, &unused);
	}
	_exit(0);
}

/* In the child: only fds 0-2 (stdin /dev/null, stdout and stderr the log),
 * default signal dispositions, an empty mask, a session of its own. A
 * failure is written as an errno to errfd (close-on-exec). */
static _Noreturn void exec_daemon(const char *log, const char *const argv[], int errfd)
{
	int keep[] = { STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO, errfd };
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	int null, fd, e;
	sigset_t none;

	null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (null < 0 || fd < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0 ||
	    dup2(fd, STDERR_FILENO) < 0)
		goto fail;
	cl_close_all_fds_but(keep, ARRAY_SIZE(keep));
	for (int sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &dfl, NULL);
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
		goto fail;
	(void)setsid();
	(void)prctl(PR_SET_NAME, "ghostd");
	execv(argv[0], (char *const *)argv);
fail:
	e = errno;
	(void)write_full(errfd, &e, sizeof(e));
	_exit(127);
}

/* Start the node's ghostd and answer the keeper: "started PID" or "error ERRNO TEXT". */
static void start_daemon(const struct cluster_node *n, const char *dir, const char *ghostd,
			 int ctl)
{
	struct buf conf = BUF_INIT, id = BUF_INIT, sock = BUF_INIT, logs = BUF_INIT,
		   log = BUF_INIT;
	char msg[256];
	int p[2] = { -1, -1 }, r = 0, e = 0, len;
	const char *what = "out of memory";
	pid_t pid;

	if (daemon_pid > 0) {
		r = -EBUSY;
		what = "ghostd already runs";
		goto answer;
	}
	if (buf_printf(&conf, "%s/%s", dir, CLUSTER_CONFIG_FILE) < 0 ||
	    buf_printf(&id, "%u", n->id) < 0 ||
	    buf_printf(&sock, "%s/node%u/%s", dir, n->id, CLUSTER_GHOSTD_SOCKET) < 0 ||
	    buf_printf(&logs, "%s/node%u/%s", dir, n->id, CLUSTER_GHOSTD_LOG_DIR) < 0 ||
	    buf_printf(&log, "%s/node%u/%s", dir, n->id, CLUSTER_GHOSTD_LOG) < 0) {
		r = -ENOMEM;
		goto answer;
	}
	{
		const char *argv[] = { ghostd, "--config", conf.data, "--node", id.data,
				 "--control", sock.data, "--log-dir", logs.data, NULL };

		if (pipe2(p, O_CLOEXEC) < 0) {
			r = -errno;
			what = "cannot make a pipe";
			goto answer;
		}
		pid = fork();
		if (pid == 0) {
			close(p[0]);
			exec_daemon(log.data, argv, p[1]);
		}
	}
	if (pid < 0) {
		r = -errno;
		what = "cannot fork ghostd";
		goto answer;
	}
	close(p[1]);
	p[1] = -1;
	if (read_full(p[0], &e, sizeof(e)) == (ssize_t)sizeof(e)) {
		(void)waitpid(pid, NULL, 0);
		r = e > 0 ? -e : -EIO;
		what = "cannot run ghostd";
		goto answer;
	}
	daemon_pid = pid;
answer:
	if (r < 0)
		len = snprintf(msg, sizeof(msg), "error %d %s '%s'", -r, what, ghostd);
	else
		len = snprintf(msg, sizeof(msg), "started %d", (int)daemon_pid);
	if (len > 0)
		(void)send(ctl, msg, MIN((size_t)len, sizeof(msg) - 1), MSG_NOSIGNAL);
	safe_close(p[0]);
	safe_close(p[1]);
	buf_release(&conf);
	buf_release(&id);
	buf_release(&sock);
	buf_release(&logs);
	buf_release(&log);
}

_Noreturn void cl_node_init_main(const struct cluster_node *n, const char *dir,
				 const char *ghostd, int ctl, bool fault)
{
	int keep[] = { STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO, ctl };
	sigset_t mask;
	bool stop = false;
	int sfd;

	cl_close_all_fds_but(keep, ARRAY_SIZE(keep));
	(void)prctl(PR_SET_NAME, "ghost-init");
	(void)setsid();

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	/* Blocked signals reach a namespace's init even without a handler. */
	if (sigprocmask(SIG_SETMASK, &mask, NULL) < 0)
		init_fail(ctl, -errno, "cannot block signals");
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		init_fail(ctl, -errno, "cannot make a signalfd");
	if (fault)
		init_fail(ctl, -EIO, "failure injected by GHOST_CLUSTER_FAULT=init");

	/* Slave, not private: the host's later mounts and unmounts still reach
	 * the node (no mount stays pinned here after the host unmounts it), and
	 * nothing mounted here reaches the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		init_fail(ctl, -errno, "cannot make the node's mounts slaves of the host's");
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		init_fail(ctl, -errno, "cannot mount the node's /proc");
	if (sethostname(n->hostname, strlen(n->hostname)) < 0)
		init_fail(ctl, -errno, "cannot set the hostname");
	if (send(ctl, "ready", 5, MSG_NOSIGNAL) < 0)
		stop_node(sfd);

	while (!stop) {
		struct pollfd p[2] = {
			{ .fd = sfd, .events = POLLIN },
			{ .fd = ctl, .events = POLLIN },
		};

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents) {
			drain_signals(sfd, &stop);
			(void)reap_all(ctl);
		}
		/* "ghostd" from the keeper; anything else, EOF included, means stop. */
		if (p[1].revents) {
			char msg[64];
			ssize_t len = recv(ctl, msg, sizeof(msg) - 1, MSG_DONTWAIT);

			if (len < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (len > 0) {
				msg[len] = '\0';
				if (strcmp(msg, "ghostd") == 0 && ghostd) {
					start_daemon(n, dir, ghostd, ctl);
					continue;
				}
			}
			stop = true;
		}
	}
	stop_node(sfd);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The node init: PID 1 of one node's PID namespace, run in the clone the
 * keeper makes. It gives the node its own /proc and hostname, says "ready"
 * on its control socket, then reaps every process the node's namespace hands
 * it until told to stop (SIGTERM, or the keeper's end of the control socket
 * closing). When it exits the kernel kills whatever is left in the node.
 *
 *   start --(mounts, /proc, hostname)--> ready --(SIGTERM | ctl EOF)--> stopping
 *     |                                  |  ^                              |
 *     +--(any step fails: "error")--> exit  +-- SIGCHLD: reap all          +--> exit
 *
 * stopping: SIGTERM to every other process of the node, reap for up to
 * STOP_GRACE_MS, exit.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster/cluster-int.h"
#include "base/banned.h"

#define STOP_GRACE_MS 1000

static _Noreturn void init_fail(int ctl, int r, const char *what)
{
	char msg[256];
	int len = snprintf(msg, sizeof(msg), "error %d %s", -r, what);

	if (len > 0)
		(void)send(ctl, msg, MIN((size_t)len, sizeof(msg) - 1), MSG_NOSIGNAL);
	_exit(1);
}

/* Reap every child that has ended; false once there are none left. */
static bool reap_all(void)
{
	for (;;) {
		pid_t p = waitpid(-1, NULL, WNOHANG);

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
	uint64_t end = cl_now_ms() + STOP_GRACE_MS;
	bool unused = false;

	/* -1 from the init of a PID namespace: every process of the node but us. */
	(void)kill(-1, SIGTERM);
	while (reap_all()) {
		struct pollfd p = { .fd = sfd, .events = POLLIN };
		uint64_t now = cl_now_ms();

		if (now >= end)
			break;
		(void)poll(&p, 1, (int)(end - now));
		drain_signals(sfd, &unused);
	}
	_exit(0);
}

_Noreturn void cl_node_init_main(const struct cluster_node *n, int ctl, bool fault)
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
			(void)reap_all();
		}
		/* The keeper says nothing after "ready": any event is its end closing. */
		if (p[1].revents)
			stop = true;
	}
	stop_node(sfd);
}

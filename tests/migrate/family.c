/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A parent and its child, to move the child between nodes and check that
 * the family holds (tests/migrate/migrate-family.sh). Output goes to
 * standard output, one line per event, flushed:
 *
 *   family CHILD-PID [CHILD-PID]     the parent, once its children exist
 *   ppid CHILD ok|bad N              a child, every 100 ms: getppid() is (not) N
 *   child usr1 N                     the child got its Nth SIGUSR1 (one child)
 *   child CHILD usr1 N               child CHILD got its Nth SIGUSR1 (two)
 *   parent usr2 N                    the parent got its Nth SIGUSR2
 *   waited CHILD exit N | signal N   the parent's waitpid() for a child
 *
 * Signals:
 *   parent SIGUSR1  -> the parent does kill(child, SIGUSR1) for each child
 *   child  SIGHUP   -> the child does kill(getppid(), SIGUSR2)
 *   child  SIGTERM  -> the child exits with status 42
 * The parent exits 0 once it has waited for every child.
 *
 * "family lazy": the parent does not wait for its child until it gets
 * SIGINT (so that an exited child stays a zombie meanwhile); it says
 * "waiting" when it starts to. "family two": two children.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t usr1, usr2, hup, term, intr;

static void on_signal(int sig)
{
	switch (sig) {
	case SIGUSR1:
		usr1++;
		break;
	case SIGUSR2:
		usr2++;
		break;
	case SIGHUP:
		hup++;
		break;
	case SIGTERM:
		term = 1;
		break;
	case SIGINT:
		intr = 1;
		break;
	}
}

static void handle(int sig)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: the loops below notice signals at once. */
	sigaction(sig, &sa, NULL);
}

static void nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int child_main(pid_t parent, int named)
{
	int seen_usr1 = 0, seen_hup = 0;

	for (;;) {
		if (term)
			exit(42);
		while (seen_usr1 < usr1) {
			if (named)
				printf("child %d usr1 %d\n", (int)getpid(), ++seen_usr1);
			else
				printf("child usr1 %d\n", ++seen_usr1);
		}
		while (seen_hup < hup) {
			seen_hup++;
			kill(getppid(), SIGUSR2);
		}
		printf("ppid %d %s %d\n", (int)getpid(), getppid() == parent ? "ok" : "bad",
		       (int)getppid());
		fflush(stdout);
		nap(100);
	}
}

static void print_waited(pid_t child, int st)
{
	if (WIFEXITED(st))
		printf("waited %d exit %d\n", (int)child, WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		printf("waited %d signal %d\n", (int)child, WTERMSIG(st));
	else
		printf("waited %d other %#x\n", (int)child, st);
}

int main(int argc, char **argv)
{
	int seen_usr2 = 0, forwarded = 0, st;
	pid_t parent = getpid(), child[2];
	int lazy = argc > 1 && strcmp(argv[1], "lazy") == 0, waiting = 0;
	int n = argc > 1 && strcmp(argv[1], "two") == 0 ? 2 : 1, left;

	setvbuf(stdout, NULL, _IOLBF, 0);
	handle(SIGUSR1);
	handle(SIGUSR2);
	handle(SIGHUP);
	handle(SIGTERM);
	for (int i = 0; i < n; i++) {
		child[i] = fork();
		if (child[i] < 0) {
			perror("fork");
			return 1;
		}
		if (child[i] == 0)
			return child_main(parent, n > 1);
	}
	/* The parent ignores SIGTERM and SIGHUP: only its children end it. */
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	handle(SIGINT);
	if (n > 1)
		printf("family %d %d\n", (int)child[0], (int)child[1]);
	else
		printf("family %d\n", (int)child[0]);
	for (left = n; left > 0;) {
		if (!waiting && (!lazy || intr)) {
			waiting = 1;
			if (lazy)
				printf("waiting\n");
		}
		while (seen_usr2 < usr2)
			printf("parent usr2 %d\n", ++seen_usr2);
		while (forwarded < usr1) {
			forwarded++;
			for (int i = 0; i < n; i++)
				if (child[i] > 0)
					kill(child[i], SIGUSR1);
		}
		for (int i = 0; waiting && i < n; i++) {
			pid_t w;

			if (child[i] <= 0)
				continue;
			w = waitpid(child[i], &st, WNOHANG);
			if (w < 0 && errno != EINTR) {
				perror("waitpid");
				return 1;
			}
			if (w == child[i]) {
				print_waited(child[i], st);
				child[i] = 0;
				left--;
			}
		}
		if (left > 0)
			nap(50);
	}
	return 0;
}

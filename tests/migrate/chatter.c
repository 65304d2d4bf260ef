/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A process attached to a `ghost run`, for the tests of migrations that
 * keep its stdio. Usage:
 *
 *	chatter [PERIOD_MS [TAG]]
 *
 * (TAG only names it in ghost ps.) Every PERIOD_MS ms (default 10) it
 * writes "out N" to stdout and "err N" to stderr, N = 1, 2, ... Each line it
 * reads on stdin is answered on stdout:
 *
 *	exit N    "bye", then it exits with status N
 *	kill SIG  it kills itself with signal SIG
 *	hold      "held", then it reads nothing more until SIGUSR1 ("released")
 *	tty       "tty rows=R cols=C ctty=yes|no fg=yes|no icanon=0|1 echo=0|1"
 *	          about its stdin
 *	flags     "flags nonblock=0|1 0|1 0|1" for its fds 0, 1, 2
 *	nonblock  makes its stdin non-blocking: "nonblock set"
 *	LINE      "echo LINE"
 *
 * At the end of its input it writes "eof" and counts on.
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
#include <termios.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t released;

static void on_usr1(int sig)
{
	(void)sig;
	released = 1;
}

/* All of it, whatever the fd's blocking mode. */
static void put(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(int fd, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	size_t off = 0;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	while (off < (size_t)n) {
		ssize_t w = write(fd, line + off, (size_t)n - off);

		if (w < 0 && (errno == EINTR || errno == EAGAIN)) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };

			(void)poll(&p, 1, 100);
			continue;
		}
		if (w < 0)
			exit(98);
		off += (size_t)w;
	}
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl >= 0 && (fl & O_NONBLOCK);
}

static void tty_report(void)
{
	struct winsize ws = { 0 };
	struct termios t;
	int ctty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	int have = tcgetattr(0, &t) == 0;

	(void)ioctl(0, TIOCGWINSZ, &ws);
	put(1, "tty rows=%u cols=%u ctty=%s fg=%s icanon=%d echo=%d\n", ws.ws_row, ws.ws_col,
	    ctty >= 0 ? "yes" : "no", tcgetpgrp(0) == getpgrp() ? "yes" : "no",
	    have && (t.c_lflag & ICANON) ? 1 : 0, have && (t.c_lflag & ECHO) ? 1 : 0);
	if (ctty >= 0)
		close(ctty);
}

static void do_line(char *line, int *held)
{
	size_t n = strlen(line);

	while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == '\n'))
		line[--n] = '\0';
	if (strncmp(line, "exit ", 5) == 0) {
		put(1, "bye\n");
		exit(atoi(line + 5));
	}
	if (strncmp(line, "kill ", 5) == 0) {
		int sig = atoi(line + 5);

		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	if (strcmp(line, "hold") == 0) {
		released = 0;
		*held = 1;
		put(1, "held\n");
		return;
	}
	if (strcmp(line, "tty") == 0) {
		tty_report();
		return;
	}
	if (strcmp(line, "nonblock") == 0) {
		(void)fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
		put(1, "nonblock set\n");
		return;
	}
	if (strcmp(line, "flags") == 0) {
		put(1, "flags nonblock=%d %d %d\n", nonblock(0), nonblock(1), nonblock(2));
		return;
	}
	put(1, "echo %s\n", line);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	long period = argc > 1 ? atol(argv[1]) : 10;
	long long next = now_ms() + period;
	unsigned long long count = 0;
	char buf[8192];
	size_t have = 0;
	int eof = 0, held = 0;

	if (period <= 0)
		period = 10;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	for (;;) {
		long long t = now_ms();
		struct pollfd p = { .fd = 0, .events = POLLIN };
		int wait = t >= next ? 0 : (int)(next - t);

		if (t >= next) {
			count++;
			put(1, "out %llu\n", count);
			put(2, "err %llu\n", count);
			next += period;
			if (next < t)
				next = t + period;
			continue;
		}
		if (held && released) {
			held = 0;
			put(1, "released\n");
		}
		if (eof || held) {
			(void)poll(NULL, 0, wait);
			continue;
		}
		if (poll(&p, 1, wait) <= 0)
			continue;
		{
			ssize_t n = read(0, buf + have, sizeof(buf) - 1 - have);
			char *nl, *start;

			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0) {
				eof = 1;
				put(1, "eof\n");
				continue;
			}
			have += (size_t)n;
			buf[have] = '\0';
			start = buf;
			/* Line by line; after "hold", the rest stays unread here,
			 * as it would in a line-at-a-time reader. */
			while (!held && (nl = memchr(start, '\n', have - (size_t)(start - buf)))) {
				*nl = '\0';
				do_line(start, &held);
				start = nl + 1;
			}
			have -= (size_t)(start - buf);
			memmove(buf, start, have);
			if (have == sizeof(buf) - 1)
				have = 0;
		}
	}
}

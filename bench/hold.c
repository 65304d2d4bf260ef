/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench/hold: how long a process is frozen while one of its descriptors is
 * swapped (ghost_hold_new + take + install + release), the engine's part of
 * suspending a dynamic stream. A child blocked in read() on a pipe gets a new
 * pipe at the same number COUNT times in a row; after each swap one byte sent
 * into the new pipe must come back on its report pipe, so every swap is
 * checked. Prints the median, 10th and 90th percentiles and maximum of the
 * whole swap and of each step, for one and for two installs per hold.
 */
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "ghost/ghost.h"

#include "bench.h"

#define STREAM_FD 20
#define REPORT_FD 21
#define MAX_COUNT 100000u

enum { STEP_NEW, STEP_TAKE, STEP_INSTALL, STEP_RELEASE, STEP_TOTAL, _STEP_MAX };
static const char *const step_names[_STEP_MAX] = { "new", "take", "install", "release",
						   "swap" };

/* Echo every byte read on STREAM_FD to REPORT_FD, until end of file. */
static __attribute__((noreturn)) void echo_main(void)
{
	char c;

	for (;;) {
		ssize_t n = read(STREAM_FD, &c, 1);

		if (n <= 0)
			_exit(n == 0 ? 0 : 1);
		if (write(REPORT_FD, &c, 1) != 1)
			_exit(2);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void print_row(const char *what, double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	printf("  %-8s median %7.0f us   p10 %7.0f   p90 %7.0f   max %7.0f\n", what, v[n / 2],
	       v[n / 10], v[n * 9 / 10], v[n - 1]);
}

/* One swap of fd STREAM_FD (and, with two, of REPORT_FD too, by an equal
 * pipe) in pid; then one byte must make the round trip. */
static int swap_once(pid_t pid, int installs, int *stream_wr, int *report_rd, double t[])
{
	struct ghost_hold *h = NULL;
	int fd_flags = 0, status = 0, old = -1, b[2] = { -1, -1 }, c[2] = { -1, -1 }, r = -1;
	struct pollfd p;
	uint64_t t0, t1, t2, t3, t4;
	char why[256], byte = 'x';

	if (pipe2(b, O_CLOEXEC) < 0 || (installs > 1 && pipe2(c, O_CLOEXEC) < 0)) {
		bench_err("pipe: %m");
		goto out;
	}
	t0 = bench_now_ns();
	if (ghost_hold_new(pid, &h, why, sizeof(why)) < 0)
		goto fail;
	t1 = bench_now_ns();
	if (ghost_hold_take(h, STREAM_FD, &old, &fd_flags, &status, why, sizeof(why)) < 0)
		goto fail;
	t2 = bench_now_ns();
	if (ghost_hold_install(h, STREAM_FD, b[0], fd_flags, why, sizeof(why)) < 0)
		goto fail;
	if (installs > 1 && ghost_hold_install(h, REPORT_FD, c[1], 0, why, sizeof(why)) < 0)
		goto fail;
	t3 = bench_now_ns();
	h = ghost_hold_release(h);
	t4 = bench_now_ns();
	t[STEP_NEW] = (double)(t1 - t0) / 1e3;
	t[STEP_TAKE] = (double)(t2 - t1) / 1e3;
	t[STEP_INSTALL] = (double)(t3 - t2) / 1e3;
	t[STEP_RELEASE] = (double)(t4 - t3) / 1e3;
	t[STEP_TOTAL] = (double)(t4 - t0) / 1e3;

	/* The new pipes are the child's now: ours are what we write to and
	 * read from next. */
	safe_close(*stream_wr);
	*stream_wr = TAKE_FD(b[1]);
	if (installs > 1) {
		safe_close(*report_rd);
		*report_rd = TAKE_FD(c[0]);
	}
	p = (struct pollfd){ .fd = *report_rd, .events = POLLIN };
	if (write(*stream_wr, &byte, 1) != 1 || poll(&p, 1, 10000) != 1 ||
	    read(*report_rd, &byte, 1) != 1) {
		bench_err("the byte sent after swap did not come back");
		goto out;
	}
	r = 0;
	goto out;
fail:
	bench_err("%s", why);
out:
	ghost_hold_release(h);
	safe_close(old);
	safe_close(b[0]);
	safe_close(b[1]);
	safe_close(c[0]);
	safe_close(c[1]);
	return r;
}

static int run(unsigned count, int installs)
{
	double *v[_STEP_MAX] = { NULL };
	int a[2] = { -1, -1 }, rep[2] = { -1, -1 }, st, r = -1;
	pid_t pid = 0;

	for (int k = 0; k < _STEP_MAX; k++) {
		v[k] = calloc(count, sizeof(double));
		if (!v[k]) {
			bench_err("out of memory");
			goto out;
		}
	}
	if (pipe2(a, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0) {
		bench_err("pipe: %m");
		goto out;
	}
	r = bench_fork(&pid);
	if (r < 0) {
		bench_err("fork: %s", strerror(-r));
		r = -1;
		goto out;
	}
	r = -1;
	if (pid == 0) {
		if (dup2(a[0], STREAM_FD) < 0 || dup2(rep[1], REPORT_FD) < 0)
			_exit(3);
		close_range(3, STREAM_FD - 1, 0);
		close_range(REPORT_FD + 1, ~0U, 0);
		echo_main();
	}
	a[0] = safe_close(a[0]);
	rep[1] = safe_close(rep[1]);
	for (unsigned i = 0; i < count; i++) {
		double t[_STEP_MAX];

		/* Let it block in read() again. */
		usleep(1000);
		if (swap_once(pid, installs, &a[1], &rep[0], t) < 0)
			goto out;
		for (int k = 0; k < _STEP_MAX; k++)
			v[k][i] = t[k];
	}
	printf("%u swaps, %d install%s per hold:\n", count, installs, installs > 1 ? "s" : "");
	for (int k = 0; k < _STEP_MAX; k++)
		print_row(step_names[k], v[k], count);
	r = 0;
out:
	safe_close(a[0]);
	safe_close(a[1]);
	safe_close(rep[0]);
	safe_close(rep[1]);
	if (pid > 0) {
		kill(pid, SIGKILL);
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		bench_untrack_pid(pid);
	}
	for (int k = 0; k < _STEP_MAX; k++)
		free(v[k]);
	return r;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	unsigned long count = 300;
	int c;

	while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			count = strtoul(optarg, NULL, 10);
			if (count < 10 || count > MAX_COUNT) {
				bench_err("--count must be 10..%u", MAX_COUNT);
				return 2;
			}
			break;
		case 'h':
			printf("usage: %s [--count N]\n", argv[0]);
			return 0;
		default:
			return 2;
		}
	}
	if (geteuid() != 0) {
		bench_err("needs root (ptrace)");
		return 1;
	}
	if (bench_install_signals() < 0)
		return 1;
	if (run((unsigned)count, 1) < 0 || run((unsigned)count, 2) < 0) {
		bench_cleanup();
		return 1;
	}
	return 0;
}

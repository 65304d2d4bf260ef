/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Blocked in a sleep: nanosleep, relative clock_nanosleep, or absolute
 * clock_nanosleep (argument: nanosleep | clock-rel | clock-abs), 4 s,
 * checkpointed mid-sleep. SIGUSR1 is blocked during the sleep, so only the
 * checkpoint/restart can interrupt it. The sleep must last at least the
 * requested time. A relative sleep may come back with EINTR once per restart
 * (its restart block cannot be carried; the caller then sleeps the remaining
 * time, which the kernel wrote back); the optional second argument is the
 * number of restarts (default 1). An absolute sleep must be restarted
 * transparently: no EINTR at all.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib.h"

#define SLEEP_SEC 4

int main(int argc, char **argv)
{
	struct timespec req = { SLEEP_SEC, 0 }, rem, deadline;
	sigset_t usr1, wait_mask;
	const char *mode = argc > 1 ? argv[1] : "nanosleep";
	int eintr = 0, max_eintr;
	double t0, elapsed;

	test_init("block-sleep");
	if (strcmp(mode, "nanosleep") && strcmp(mode, "clock-rel") && strcmp(mode, "clock-abs"))
		test_abort("usage: block-sleep nanosleep|clock-rel|clock-abs [RESTARTS]");
	max_eintr = strcmp(mode, "clock-abs") == 0 ? 0 : argc > 2 ? atoi(argv[2]) : 1;
	test_wake_handler(0);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	MUST(sigprocmask(SIG_BLOCK, &usr1, &wait_mask));
	sigdelset(&wait_mask, SIGUSR1);

	test_ready();
	t0 = now_mono();
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += SLEEP_SEC;
	for (;;) {
		long r;

		memset(&rem, 0, sizeof(rem));
		if (strcmp(mode, "nanosleep") == 0)
			r = syscall(SYS_nanosleep, &req, &rem);
		else if (strcmp(mode, "clock-rel") == 0)
			r = syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &req, &rem);
		else
			r = syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline,
				    NULL);
		if (r == 0)
			break;
		if (errno != EINTR) {
			test_fail("%s: %m", mode);
			break;
		}
		eintr++;
		if (eintr > 5)
			break;
		if (strcmp(mode, "clock-abs") != 0) {
			CHECK(rem.tv_sec < req.tv_sec ||
				      (rem.tv_sec == req.tv_sec && rem.tv_nsec <= req.tv_nsec),
			      "%s: remaining time %ld.%09ld above the request %ld.%09ld", mode,
			      (long)rem.tv_sec, rem.tv_nsec, (long)req.tv_sec, req.tv_nsec);
			CHECK(rem.tv_sec > 0 || rem.tv_nsec > 0, "%s: EINTR with no remaining time",
			      mode);
			req = rem;
		}
	}
	elapsed = now_mono() - t0;

	while (!test_woken)
		sigsuspend(&wait_mask);
	CHECK(elapsed >= SLEEP_SEC, "%s slept %.6f s, want >= %d s", mode, elapsed, SLEEP_SEC);
	CHECK(eintr <= max_eintr, "%s came back with EINTR %d times, want <= %d", mode, eintr,
	      max_eintr);
	return test_done();
}

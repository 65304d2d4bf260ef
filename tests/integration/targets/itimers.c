/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Interval timers: ITIMER_REAL, ITIMER_VIRTUAL and ITIMER_PROF, all
 * periodic. The target waits in a busy loop (so CPU time advances). After
 * restart the intervals are the same and all three timers keep firing.
 *
 * With the argument "blocked", SIGALRM is blocked from before ready, so an
 * expired ITIMER_REAL sits with its signal pending: the kernel reloads a
 * periodic ITIMER_REAL only when SIGALRM is dequeued, and until then
 * getitimer() shows a value of 0 with the interval still set. Unblocking
 * after restart must deliver SIGALRM and the timer must go on firing.
 */
#include <signal.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>
#include <sys/time.h>

#include "lib.h"

static volatile sig_atomic_t alrm, vtalrm, prof;

static void on_timer(int sig)
{
	if (sig == SIGALRM)
		alrm++;
	else if (sig == SIGVTALRM)
		vtalrm++;
	else if (sig == SIGPROF)
		prof++;
	test_signals++;
}

static void arm(int which, long usec)
{
	struct itimerval it = { { 0, usec }, { 0, usec } };

	MUST(setitimer(which, &it, NULL));
}

static void check_timer(int which, const char *name, long usec, bool value)
{
	struct itimerval it;

	if (getitimer(which, &it) < 0) {
		test_fail("getitimer(%s): %m", name);
		return;
	}
	CHECK(it.it_interval.tv_sec == 0 && it.it_interval.tv_usec == usec,
	      "%s interval is %ld.%06ld, want 0.%06ld", name, (long)it.it_interval.tv_sec,
	      (long)it.it_interval.tv_usec, usec);
	CHECK(!value || (it.it_value.tv_sec == 0 && it.it_value.tv_usec > 0 &&
			 it.it_value.tv_usec <= usec),
	      "%s value is %ld.%06ld, want in (0, 0.%06ld]", name, (long)it.it_value.tv_sec,
	      (long)it.it_value.tv_usec, usec);
}

int main(int argc, char **argv)
{
	bool blocked = argc > 1 && strcmp(argv[1], "blocked") == 0;
	struct sigaction sa;
	sigset_t alarm_set;
	int a0, v0, p0;
	double t0;

	test_init("itimers");
	test_wake_handler(0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_timer;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	MUST(sigaction(SIGALRM, &sa, NULL));
	MUST(sigaction(SIGVTALRM, &sa, NULL));
	MUST(sigaction(SIGPROF, &sa, NULL));
	arm(ITIMER_REAL, 50000);
	arm(ITIMER_VIRTUAL, 30000);
	arm(ITIMER_PROF, 40000);
	sigemptyset(&alarm_set);
	sigaddset(&alarm_set, SIGALRM);
	if (blocked) {
		MUST(sigprocmask(SIG_BLOCK, &alarm_set, NULL));
		/* let it expire: SIGALRM pending, ITIMER_REAL not reloaded */
		for (t0 = now_mono(); now_mono() - t0 < 0.2;)
			;
	}

	test_ready();
	while (!test_woken)
		;

	check_timer(ITIMER_REAL, "ITIMER_REAL", 50000, !blocked);
	check_timer(ITIMER_VIRTUAL, "ITIMER_VIRTUAL", 30000, true);
	check_timer(ITIMER_PROF, "ITIMER_PROF", 40000, true);
	if (blocked) {
		sigset_t pending;

		MUST(sigpending(&pending));
		CHECK(sigismember(&pending, SIGALRM), "SIGALRM is not pending");
		CHECK_EQ("SIGALRM delivered while blocked", alrm, 0);
		MUST(sigprocmask(SIG_UNBLOCK, &alarm_set, NULL));
		CHECK_EQ("SIGALRM delivered when unblocked", alrm, 1);
		check_timer(ITIMER_REAL, "ITIMER_REAL after SIGALRM", 50000, true);
	}
	a0 = alrm;
	v0 = vtalrm;
	p0 = prof;
	t0 = now_mono();
	while (now_mono() - t0 < 1.0)
		;
	/* in 1 s: 20 SIGALRM; up to 33 SIGVTALRM and 25 SIGPROF on a free CPU */
	CHECK(alrm - a0 >= 10, "%d SIGALRM in 1 s after restart, want >= 10", alrm - a0);
	CHECK(vtalrm - v0 >= 5, "%d SIGVTALRM in 1 s after restart, want >= 5", vtalrm - v0);
	CHECK(prof - p0 >= 5, "%d SIGPROF in 1 s after restart, want >= 5", prof - p0);
	return test_done();
}

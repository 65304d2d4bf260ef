/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Resource limits: lower some soft and hard limits (never raise one), then
 * wait in a nanosleep loop; every limit must be the same after restart.
 */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "lib.h"

#define MIB (1024ull * 1024)

static void lower(int res, rlim_t soft, rlim_t hard)
{
	struct rlimit rl;

	MUST(getrlimit(res, &rl));
	if (hard < rl.rlim_max)
		rl.rlim_max = hard;
	rl.rlim_cur = soft < rl.rlim_max ? soft : rl.rlim_max;
	MUST(setrlimit(res, &rl));
}

int main(void)
{
	static char limits_before[8192], limits_after[8192];
	struct rlimit before[RLIM_NLIMITS];

	test_init("rlimits");
	test_wake_handler(0);

	lower(RLIMIT_NOFILE, 200, 300);
	lower(RLIMIT_CORE, 0, MIB);
	lower(RLIMIT_STACK, 4 * MIB, 32 * MIB);
	lower(RLIMIT_CPU, 3600, 7200);
	lower(RLIMIT_FSIZE, 1024 * MIB, 2048 * MIB);
	lower(RLIMIT_MSGQUEUE, 400000, 500000);
	lower(RLIMIT_NPROC, 10000, 20000);
	for (int i = 0; i < RLIM_NLIMITS; i++)
		MUST(getrlimit(i, &before[i]));
	if (file_read("/proc/self/limits", limits_before, sizeof(limits_before)) < 0)
		test_abort("read /proc/self/limits: %m");

	test_ready();
	while (!test_woken) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}

	for (int i = 0; i < RLIM_NLIMITS; i++) {
		struct rlimit now;
		char what[64];

		if (getrlimit(i, &now) < 0) {
			test_fail("getrlimit(%d): %m", i);
			continue;
		}
		snprintf(what, sizeof(what), "rlimit %d soft", i);
		CHECK_EQ(what, now.rlim_cur, before[i].rlim_cur);
		snprintf(what, sizeof(what), "rlimit %d hard", i);
		CHECK_EQ(what, now.rlim_max, before[i].rlim_max);
	}
	if (file_read("/proc/self/limits", limits_after, sizeof(limits_after)) < 0)
		test_fail("read /proc/self/limits: %m");
	else
		CHECK(strcmp(limits_before, limits_after) == 0,
		      "/proc/self/limits differs:\n%s\nwant:\n%s", limits_after, limits_before);
	return test_done();
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Nice value, CPU affinity and personality: the target lowers its priority,
 * pins itself to one CPU and sets ADDR_NO_RANDOMIZE (harmless: it only
 * affects later execs), then waits in sched_yield() calls checking it stays on
 * its CPU.
 */
#include <errno.h>
#include <sched.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "lib.h"

#define NICE 7

int main(void)
{
	cpu_set_t set, now;
	int cpu = -1, pers;

	test_init("sched");
	test_wake_handler(0);

	MUST(setpriority(PRIO_PROCESS, 0, NICE));
	MUST(sched_getaffinity(0, sizeof(set), &set));
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &set))
			cpu = i; /* the highest allowed CPU: not the default CPU 0 */
	if (cpu < 0)
		test_abort("empty affinity mask");
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	MUST(sched_setaffinity(0, sizeof(set), &set));
	pers = personality(0xffffffff);
	MUST(pers);
	MUST(personality((unsigned long)pers | ADDR_NO_RANDOMIZE));
	pers = personality(0xffffffff);

	test_ready();
	while (!test_woken) {
		struct timespec ts = { 0, 5 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}

	errno = 0;
	CHECK_EQ("getpriority", getpriority(PRIO_PROCESS, 0), NICE);
	CHECK_EQ("personality", personality(0xffffffff), pers);
	if (sched_getaffinity(0, sizeof(now), &now) < 0)
		test_fail("sched_getaffinity: %m");
	else
		CHECK(CPU_EQUAL(&now, &set), "affinity mask differs: %d CPUs, want only CPU %d",
		      CPU_COUNT(&now), cpu);
	for (int i = 0; i < 20; i++) {
		int c;

		sched_yield();
		c = sched_getcpu();
		if (c != cpu) {
			test_fail("running on CPU %d, pinned to CPU %d", c, cpu);
			break;
		}
	}
	CHECK_EQ("sched_getscheduler", sched_getscheduler(0), SCHED_OTHER);
	return test_done();
}

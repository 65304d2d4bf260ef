/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Blocked in pause(): only the SIGUSR1 wake-up may end it, exactly once,
 * with EINTR after the handler ran.
 */
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib.h"

int main(void)
{
	int returns = 0;

	test_init("block-pause");
	test_wake_handler(0);
	test_ready();
	while (!test_woken) {
		sig_atomic_t before = test_signals;
		long r = syscall(SYS_pause);

		returns++;
		if (r != -1 || errno != EINTR)
			test_fail("pause returned %ld (%m), want -1 EINTR", r);
		else
			CHECK(test_signals != before, "pause returned EINTR but no handler ran");
	}
	CHECK_EQ("pause returns", returns, 1);
	return test_done();
}

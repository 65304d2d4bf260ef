/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Blocked in poll() on an empty pipe (argument: timeout | infinite).
 * timeout: poll with a 3 s timeout while SIGUSR1 is blocked; it must time out
 * (return 0) no earlier than 3 s after it started, EINTR at most once (the
 * caller then polls again for the time left).
 * infinite: poll with no timeout, woken by SIGUSR1 (EINTR). poll() keeps its
 * state in a restart block even without a timeout, so an interrupted poll may
 * come back once with EINTR after a restart, as if a signal had been handled
 * (callers of poll must handle EINTR); more than that, or any other return,
 * means the restart broke the call.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib.h"

#define TIMEOUT_MS 3000

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "timeout";
	struct pollfd pfd;
	int p[2];

	test_init("block-poll");
	test_wake_handler(0);
	MUST(pipe(p));
	pfd.fd = p[0];
	pfd.events = POLLIN;

	if (strcmp(mode, "timeout") == 0) {
		sigset_t usr1, wait_mask;
		double t0, left;
		int eintr = 0;
		long r;

		sigemptyset(&usr1);
		sigaddset(&usr1, SIGUSR1);
		MUST(sigprocmask(SIG_BLOCK, &usr1, &wait_mask));
		sigdelset(&wait_mask, SIGUSR1);
		test_ready();
		t0 = now_mono();
		for (left = TIMEOUT_MS;;) {
			pfd.revents = 0;
			r = syscall(SYS_poll, &pfd, 1, (int)left);
			if (r >= 0 || errno != EINTR || ++eintr > 5)
				break;
			left = TIMEOUT_MS - (now_mono() - t0) * 1000;
			if (left < 0)
				left = 0;
		}
		CHECK(r == 0, "poll returned %ld (%s), want 0 (timeout)", r,
		      r < 0 ? strerror(errno) : "ready");
		CHECK((now_mono() - t0) * 1000 >= TIMEOUT_MS - 1, "poll timed out after %.3f s",
		      now_mono() - t0);
		CHECK(eintr <= 1, "poll came back with EINTR %d times, want <= 1", eintr);
		while (!test_woken)
			sigsuspend(&wait_mask);
	} else if (strcmp(mode, "infinite") == 0) {
		int spurious = 0;
		long r;

		test_ready();
		do {
			sig_atomic_t before = test_signals;

			pfd.revents = 0;
			r = syscall(SYS_poll, &pfd, 1, -1);
			if (r != -1 || errno != EINTR) {
				test_fail("poll returned %ld (%m), want -1 EINTR", r);
				break;
			}
			if (test_signals == before)
				spurious++;
		} while (!test_woken && spurious <= 1);
		CHECK(spurious <= 1, "poll returned EINTR %d times with no handler run, want <= 1",
		      spurious);
	} else
		test_abort("usage: block-poll timeout|infinite");
	{
		char c;

		CHECK(write(p[1], "y", 1) == 1 && read(p[0], &c, 1) == 1 && c == 'y',
		      "the pipe does not work");
	}
	return test_done();
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Blocked in read(): the target reads from an empty pipe whose write end it
 * holds. A one-shot ITIMER_REAL, armed to fire 2 s after ready, has an
 * SA_RESTART handler that writes one byte into the pipe. The checkpoint
 * catches the process inside read(); after restart the read must go on
 * (restarted, never EINTR) and return exactly that byte, once.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include "lib.h"

#define RFD 90
#define WFD 91

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
	test_signals++;
	if (write(WFD, "x", 1) != 1)
		alarms += 100;
}

int main(void)
{
	struct itimerval it = { { 0, 0 }, { 2, 0 } };
	struct sigaction sa;
	char buf[16];
	long r;
	int p[2];

	test_init("block-read");
	test_wake_handler(SA_RESTART);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	MUST(sigaction(SIGALRM, &sa, NULL));
	MUST(pipe(p));
	MUST(dup2(p[0], RFD));
	MUST(dup2(p[1], WFD));
	close(p[0]);
	close(p[1]);

	MUST(setitimer(ITIMER_REAL, &it, NULL));
	test_ready();
	r = syscall(SYS_read, RFD, buf, sizeof(buf));

	CHECK(r == 1, "read returned %ld (%s), want 1 byte", r, r < 0 ? strerror(errno) : "ok");
	CHECK(r != 1 || buf[0] == 'x', "read returned '%c', want 'x'", buf[0]);
	CHECK_EQ("SIGALRM handler calls", alarms, 1);
	{
		struct itimerval now;

		if (getitimer(ITIMER_REAL, &now) == 0)
			CHECK(now.it_value.tv_sec == 0 && now.it_value.tv_usec == 0,
			      "the one-shot timer is still armed");
	}
	test_wait_pause();
	return test_done();
}

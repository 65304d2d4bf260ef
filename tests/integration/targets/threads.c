/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A second thread, which the engine does not carry yet: a checkpoint must be
 * refused, naming the threads, and leave both threads running and untraced.
 */
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "lib.h"

static volatile sig_atomic_t stop;
static volatile unsigned long ticks;

static void *worker(void *arg)
{
	(void)arg;
	while (!stop) {
		struct timespec ts = { 0, 1000 * 1000 };

		nanosleep(&ts, NULL);
		ticks++;
	}
	return NULL;
}

int main(void)
{
	pthread_t t;
	sigset_t usr1;
	unsigned long t0;

	test_init("threads");
	test_wake_handler(0);
	/* SIGUSR1 goes to the main thread only */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	MUST(pthread_sigmask(SIG_BLOCK, &usr1, NULL));
	if (pthread_create(&t, NULL, worker, NULL))
		test_abort("pthread_create failed");
	MUST(pthread_sigmask(SIG_UNBLOCK, &usr1, NULL));

	test_ready();
	test_wait_pause();

	t0 = ticks;
	{
		struct timespec ts = { 0, 100 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
	CHECK(ticks > t0, "the second thread is not running any more");
	stop = 1;
	if (pthread_join(t, NULL))
		test_fail("pthread_join failed");
	return test_done();
}

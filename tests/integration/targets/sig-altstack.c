/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sigaltstack: the target waits inside a SIGUSR2 handler running on the
 * alternate stack, so the checkpoint catches it on that stack with a signal
 * frame to return through. The SIGUSR1 wake-up (also SA_ONSTACK) nests on
 * the same stack. After the handler returns, the main stack and the
 * sigaltstack settings must be intact, and the next handler uses the
 * alternate stack again.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib.h"

#define ALT_SIZE (64 * 1024)
#define SEED 0xa175

static unsigned char *alt;
static volatile sig_atomic_t usr2_calls, wait_in_handler = 1;
static volatile int usr1_on_alt = -1, usr2_on_alt = -1, usr2_flags = -1, frame_ok = -1;

static bool on_alt(const void *p)
{
	return (const unsigned char *)p >= alt && (const unsigned char *)p < alt + ALT_SIZE;
}

static void on_usr1(int sig)
{
	char here;

	(void)sig;
	usr1_on_alt = on_alt(&here);
	test_woken = 1;
	test_signals++;
}

static void on_usr2(int sig, siginfo_t *si, void *ctx)
{
	volatile uint64_t local[16];
	stack_t cur;

	(void)sig;
	(void)si;
	(void)ctx;
	usr2_calls++;
	usr2_on_alt = on_alt((const void *)local);
	sigaltstack(NULL, &cur);
	usr2_flags = cur.ss_flags;
	if (!wait_in_handler)
		return;
	for (int i = 0; i < 16; i++)
		local[i] = pattern_word(SEED, (uint64_t)i);
	test_ready();
	test_wait_pause();
	frame_ok = 1;
	for (int i = 0; i < 16; i++)
		if (local[i] != pattern_word(SEED, (uint64_t)i))
			frame_ok = 0;
	sigaltstack(NULL, &cur);
	if (cur.ss_flags != SS_ONSTACK)
		usr2_flags = cur.ss_flags;
}

int main(void)
{
	volatile uint64_t main_local[16];
	struct sigaction sa;
	stack_t ss, cur;

	test_init("sig-altstack");
	alt = mmap(NULL, ALT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (alt == MAP_FAILED)
		test_abort("mmap: %m");
	ss.ss_sp = alt;
	ss.ss_size = ALT_SIZE;
	ss.ss_flags = 0;
	MUST(sigaltstack(&ss, NULL));

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	MUST(sigaction(SIGUSR1, &sa, NULL));
	sa.sa_sigaction = on_usr2;
	sa.sa_flags = SA_ONSTACK | SA_SIGINFO;
	MUST(sigaction(SIGUSR2, &sa, NULL));

	for (int i = 0; i < 16; i++)
		main_local[i] = pattern_word(SEED + 1, (uint64_t)i);
	raise(SIGUSR2); /* returns after the wake-up */

	CHECK_EQ("SIGUSR2 handler calls", usr2_calls, 1);
	CHECK_EQ("SIGUSR2 handler on the alternate stack", usr2_on_alt, 1);
	CHECK_EQ("SIGUSR1 handler on the alternate stack", usr1_on_alt, 1);
	CHECK_EQ("sigaltstack flags inside the handler", usr2_flags, SS_ONSTACK);
	CHECK_EQ("handler frame intact", frame_ok, 1);
	for (int i = 0; i < 16; i++)
		CHECK(main_local[i] == pattern_word(SEED + 1, (uint64_t)i),
		      "main stack word %d differs", i);
	if (sigaltstack(NULL, &cur) < 0)
		test_fail("sigaltstack: %m");
	else
		CHECK(cur.ss_sp == (void *)alt && cur.ss_size == ALT_SIZE && cur.ss_flags == 0,
		      "sigaltstack is {%p, %zu, %d}, want {%p, %d, 0}", cur.ss_sp, cur.ss_size,
		      cur.ss_flags, (void *)alt, ALT_SIZE);

	/* once more, without waiting */
	wait_in_handler = 0;
	usr2_on_alt = -1;
	raise(SIGUSR2);
	CHECK_EQ("SIGUSR2 handler calls", usr2_calls, 2);
	CHECK_EQ("second SIGUSR2 handler on the alternate stack", usr2_on_alt, 1);
	return test_done();
}

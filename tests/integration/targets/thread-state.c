/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Per-thread kernel state: fs_base (thread-local variables), gs_base (set to
 * a buffer of ours and read through %gs), the rseq registration glibc made,
 * the robust futex list head and clear_child_tid. The target waits in
 * sigsuspend().
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifdef __x86_64__
#include <asm/prctl.h>
#endif
#if __has_include(<sys/rseq.h>)
#include <sys/rseq.h>
#define HAVE_RSEQ 1
#endif

#include "lib.h"

#define SEED 0x7150

static __thread uint64_t tls_word = 0x1122334455667788ull;
static __thread uint64_t tls_buf[64];
static uint64_t gs_buf[8] __attribute__((aligned(64)));

#ifdef __x86_64__
static unsigned long get_base(int code)
{
	unsigned long v = 0;

	if (syscall(SYS_arch_prctl, code, &v) < 0)
		test_fail("arch_prctl(%#x): %m", code);
	return v;
}

static uint64_t read_gs0(void)
{
	uint64_t v;

	__asm__ volatile("mov %%gs:0, %0" : "=r"(v));
	return v;
}
#endif

#ifdef HAVE_RSEQ
#ifndef RSEQ_SIG
#define RSEQ_SIG 0x53053053
#endif
/*
 * Probe the kernel's registration without changing it: registering again
 * with the same area, length and signature fails with EBUSY; with another
 * length or area, EINVAL; with another signature, EPERM.
 */
static int rseq_probe(void *area, unsigned len)
{
	long r = syscall(SYS_rseq, area, len, 0, RSEQ_SIG);

	if (r == 0) {
		/* it was not registered and now is: undo */
		syscall(SYS_rseq, area, len, 1 /* RSEQ_FLAG_UNREGISTER */, RSEQ_SIG);
		return 0;
	}
	return errno;
}
#endif

int main(void)
{
	sigset_t block, wait_mask;
	unsigned long fs = 0, gs = 0;
	void *robust_head = NULL, *robust_now = NULL;
	size_t robust_len = 0, robust_len_now = 0;
	int *ctid = NULL, *ctid_now = NULL;
	uint64_t *tls_addr = &tls_word;
#ifdef HAVE_RSEQ
	struct rseq *rs = NULL;
	unsigned rseq_len = 0;
#endif

	test_init("thread-state");
	test_wake_handler(0);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	MUST(sigprocmask(SIG_BLOCK, &block, &wait_mask));
	sigdelset(&wait_mask, SIGUSR1);

	tls_word ^= 0xffff;
	for (int i = 0; i < 64; i++)
		tls_buf[i] = pattern_word(SEED, (uint64_t)i);
	MUST(syscall(SYS_get_robust_list, 0, &robust_head, &robust_len));
	MUST(prctl(PR_GET_TID_ADDRESS, &ctid, 0, 0, 0));
#ifdef __x86_64__
	fs = get_base(ARCH_GET_FS);
	for (int i = 0; i < 8; i++)
		gs_buf[i] = pattern_word(SEED + 1, (uint64_t)i);
	MUST(syscall(SYS_arch_prctl, ARCH_SET_GS, (unsigned long)gs_buf));
	gs = get_base(ARCH_GET_GS);
#endif
#ifdef HAVE_RSEQ
	if (__rseq_size > 0) {
		static const unsigned lens[] = { 32, 20, 64, 128 };

		rs = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]) && !rseq_len; i++)
			if (rseq_probe(rs, lens[i]) == EBUSY)
				rseq_len = lens[i];
		if (!rseq_len)
			test_abort("glibc's rseq registration not found");
	}
#endif

	test_ready();
	while (!test_woken)
		sigsuspend(&wait_mask);

	CHECK(&tls_word == tls_addr, "TLS variable moved from %p to %p", (void *)tls_addr,
	      (void *)&tls_word);
	CHECK_EQ("TLS word", tls_word, 0x1122334455667788ull ^ 0xffff);
	for (int i = 0; i < 64; i++)
		CHECK(tls_buf[i] == pattern_word(SEED, (uint64_t)i), "TLS buffer word %d differs", i);
#ifdef __x86_64__
	CHECK_EQ("fs_base", get_base(ARCH_GET_FS), fs);
	CHECK_EQ("gs_base", get_base(ARCH_GET_GS), gs);
	CHECK_EQ("first word read through %gs", read_gs0(), gs_buf[0]);
#endif
	if (syscall(SYS_get_robust_list, 0, &robust_now, &robust_len_now) < 0)
		test_fail("get_robust_list: %m");
	CHECK(robust_now == robust_head, "robust list head is %p, want %p", robust_now, robust_head);
	CHECK_EQ("robust list length", robust_len_now, robust_len);
	if (prctl(PR_GET_TID_ADDRESS, &ctid_now, 0, 0, 0) < 0)
		test_fail("PR_GET_TID_ADDRESS: %m");
	CHECK(ctid_now == ctid, "clear_child_tid is %p, want %p", (void *)ctid_now, (void *)ctid);
#ifdef HAVE_RSEQ
	if (rs) {
		int e = rseq_probe(rs, rseq_len);
		int cpu;

		CHECK(e == EBUSY, "rseq is not registered at %p (len %u) any more: probe gave %s",
		      (void *)rs, rseq_len, e ? strerror(e) : "success");
		sched_yield();
		cpu = sched_getcpu();
		CHECK(cpu >= 0, "sched_getcpu: %m");
		CHECK((int)rs->cpu_id >= 0, "rseq cpu_id is %d", (int)rs->cpu_id);
		CHECK((int)rs->cpu_id == cpu || cpu != sched_getcpu(),
		      "rseq cpu_id %d but sched_getcpu() %d", (int)rs->cpu_id, cpu);
	}
#endif
	return test_done();
}

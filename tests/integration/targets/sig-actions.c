/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Signal dispositions and the blocked mask: handlers with SA_SIGINFO,
 * SA_RESTART, SA_ONSTACK, SA_NODEFER, SA_RESETHAND and masks, ignored
 * signals, and a blocked set. After restart the kernel's view of every action
 * (handler, flags, restorer, mask) is byte for byte the same, and the
 * handlers run with the right mask, stack and siginfo.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib.h"

struct kaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

#define NSIG_K 64

static struct kaction before[NSIG_K + 1];
static unsigned char altstack[64 * 1024] __attribute__((aligned(16)));

static volatile sig_atomic_t got[NSIG_K + 1];
static volatile sig_atomic_t bad_mask[NSIG_K + 1];
static volatile sig_atomic_t bad_stack[NSIG_K + 1];
static volatile sig_atomic_t bad_info[NSIG_K + 1];
static sigset_t want_mask[NSIG_K + 1];

static void check_context(int sig, bool want_altstack)
{
	sigset_t now;
	char here;
	bool on_alt = (unsigned char *)&here >= altstack &&
		      (unsigned char *)&here < altstack + sizeof(altstack);

	got[sig]++;
	test_signals++;
	sigprocmask(SIG_BLOCK, NULL, &now);
	for (int s = 1; s <= NSIG_K; s++) {
		if (s == 32 || s == 33)
			continue; /* glibc's internal signals */
		if (sigismember(&now, s) != sigismember(&want_mask[sig], s))
			bad_mask[sig] = s;
	}
	if (on_alt != want_altstack)
		bad_stack[sig] = 1;
}

static void on_info(int sig, siginfo_t *si, void *ctx)
{
	(void)ctx;
	check_context(sig, true);
	if (si->si_signo != sig || si->si_code != SI_TKILL || si->si_pid != getpid())
		bad_info[sig] = 1;
}

static void on_plain(int sig)
{
	check_context(sig, false);
}

static void get_actions(struct kaction *a)
{
	for (int s = 1; s <= NSIG_K; s++) {
		memset(&a[s], 0, sizeof(a[s]));
		if (s == SIGKILL || s == SIGSTOP)
			continue;
		if (syscall(SYS_rt_sigaction, s, NULL, &a[s], 8) < 0)
			test_fail("rt_sigaction(%d): %m", s);
	}
}

static void install(int sig, void (*h)(int), void (*hi)(int, siginfo_t *, void *), int flags,
		    const int *mask_sigs)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	if (hi)
		sa.sa_sigaction = hi;
	else
		sa.sa_handler = h;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	for (; mask_sigs && *mask_sigs; mask_sigs++)
		sigaddset(&sa.sa_mask, *mask_sigs);
	MUST(sigaction(sig, &sa, NULL));
}

int main(void)
{
	static const int mask_a[] = { SIGINT, SIGTERM, 0 };
	const int mask_b[] = { SIGRTMIN + 1, SIGALRM, 0 };
	sigset_t blocked, now;
	stack_t ss;
	struct kaction after[NSIG_K + 1];
	char status_blk[64], v[64];

	test_init("sig-actions");
	test_wake_handler(0);

	ss.ss_sp = altstack;
	ss.ss_size = sizeof(altstack);
	ss.ss_flags = 0;
	MUST(sigaltstack(&ss, NULL));
	install(SIGUSR2, NULL, on_info, SA_SIGINFO | SA_RESTART | SA_ONSTACK, mask_a);
	install(SIGHUP, on_plain, NULL, SA_NODEFER | SA_RESETHAND, NULL);
	install(SIGTERM, on_plain, NULL, SA_RESTART, mask_b);
	install(SIGRTMIN + 2, NULL, on_info, SA_SIGINFO | SA_ONSTACK, NULL);
	install(SIGCHLD, on_plain, NULL, SA_NOCLDSTOP | SA_RESTART, NULL);
	install(SIGINT, SIG_IGN, NULL, 0, NULL);
	install(SIGPIPE, SIG_IGN, NULL, 0, NULL);
	install(SIGTSTP, SIG_IGN, NULL, 0, NULL);
	install(SIGURG, SIG_DFL, NULL, SA_RESTART, NULL);

	sigemptyset(&blocked);
	sigaddset(&blocked, SIGQUIT);
	sigaddset(&blocked, SIGWINCH);
	sigaddset(&blocked, SIGRTMIN + 5);
	sigaddset(&blocked, SIGRTMAX);
	MUST(sigprocmask(SIG_BLOCK, &blocked, NULL));
	MUST(sigprocmask(SIG_BLOCK, NULL, &blocked));
	if (proc_status("SigBlk", status_blk, sizeof(status_blk)) < 0)
		test_abort("no SigBlk in /proc/self/status");
	get_actions(before);

	test_ready();
	test_wait_pause();

	get_actions(after);
	for (int s = 1; s <= NSIG_K; s++) {
		if (memcmp(&after[s], &before[s], sizeof(after[s])) == 0)
			continue;
		test_fail("signal %d: action {%p, %#lx, %p, %#llx}, want {%p, %#lx, %p, %#llx}", s,
			  after[s].handler, after[s].flags, after[s].restorer,
			  (unsigned long long)after[s].mask, before[s].handler, before[s].flags,
			  before[s].restorer, (unsigned long long)before[s].mask);
	}
	MUST(sigprocmask(SIG_BLOCK, NULL, &now));
	for (int s = 1; s <= NSIG_K; s++)
		if (s != 32 && s != 33)
			CHECK(sigismember(&now, s) == sigismember(&blocked, s),
			      "signal %d is %s", s, sigismember(&now, s) ? "blocked" : "not blocked");
	if (proc_status("SigBlk", v, sizeof(v)) < 0)
		test_fail("no SigBlk in /proc/self/status");
	else
		CHECK(strcmp(v, status_blk) == 0, "SigBlk is %s, want %s", v, status_blk);
	{
		stack_t cur;

		if (sigaltstack(NULL, &cur) < 0)
			test_fail("sigaltstack: %m");
		else
			CHECK(cur.ss_sp == (void *)altstack && cur.ss_size == sizeof(altstack) &&
				      cur.ss_flags == 0,
			      "sigaltstack is {%p, %zu, %d}", cur.ss_sp, cur.ss_size, cur.ss_flags);
	}

	/* deliver: each handler must see its mask, its stack and its siginfo */
	{
		static const int handled[] = { SIGUSR2, SIGHUP, SIGTERM, 0 };
		const int rt = SIGRTMIN + 2;

		for (int i = 0; handled[i]; i++) {
			want_mask[handled[i]] = blocked;
			if (handled[i] != SIGHUP)
				sigaddset(&want_mask[handled[i]], handled[i]);
		}
		sigaddset(&want_mask[SIGUSR2], SIGINT);
		sigaddset(&want_mask[SIGUSR2], SIGTERM);
		sigaddset(&want_mask[SIGTERM], SIGRTMIN + 1);
		sigaddset(&want_mask[SIGTERM], SIGALRM);
		want_mask[rt] = blocked;
		sigaddset(&want_mask[rt], rt);

		raise(SIGUSR2);
		raise(SIGHUP);
		raise(SIGTERM);
		raise(rt);
		raise(SIGINT);  /* ignored */
		raise(SIGPIPE); /* ignored */
		for (int i = 0; handled[i]; i++) {
			int s = handled[i];

			CHECK_EQ("handler calls", got[s], 1);
			CHECK(!bad_mask[s], "signal %d handler: signal %d blocked state wrong", s,
			      bad_mask[s]);
			CHECK(!bad_stack[s], "signal %d handler ran on the %s stack", s,
			      s == SIGUSR2 ? "normal" : "alternate");
			CHECK(!bad_info[s], "signal %d handler: wrong siginfo", s);
		}
		CHECK_EQ("SIGRTMIN+2 handler calls", got[rt], 1);
		CHECK(!bad_mask[rt] && !bad_stack[rt] && !bad_info[rt],
		      "SIGRTMIN+2 handler: mask %d stack %d info %d", bad_mask[rt], bad_stack[rt],
		      bad_info[rt]);
		/* SA_RESETHAND: back to SIG_DFL after the first delivery */
		{
			struct sigaction cur;

			sigaction(SIGHUP, NULL, &cur);
			CHECK(cur.sa_handler == SIG_DFL, "SIGHUP not reset by SA_RESETHAND");
		}
	}
	return test_done();
}

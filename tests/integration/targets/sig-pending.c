/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pending signals: blocked SIGUSR2 sent with kill() (process-wide queue),
 * blocked SIGWINCH raised (thread queue), two queued SIGRTMIN+3 with values.
 * SIGUSR1 is blocked too and the target waits in sigsuspend() with a mask
 * that lets only SIGUSR1 in, so after the wake-up the original mask must come
 * back. After restart the same signals are pending in the same queues;
 * unblocking delivers each with its siginfo, the real-time ones in order.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib.h"

#define RT_SIG (SIGRTMIN + 3)
#define MAXREC 16

struct rec {
	int sig, code, value;
	pid_t pid;
};

static struct rec recs[MAXREC];
static volatile sig_atomic_t nrecs;

static void on_sig(int sig, siginfo_t *si, void *ctx)
{
	(void)ctx;
	if (nrecs < MAXREC) {
		recs[nrecs].sig = sig;
		recs[nrecs].code = si->si_code;
		recs[nrecs].value = si->si_value.sival_int;
		recs[nrecs].pid = si->si_pid;
		nrecs++;
	}
}

int main(void)
{
	sigset_t block, wait_mask, pending, mask_now;
	struct sigaction sa;
	char sigpnd[64], shdpnd[64], v[64];
	pid_t pid = getpid();
	int sigsuspend_returns = 0;

	test_init("sig-pending");
	test_wake_handler(0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sig;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	MUST(sigaction(SIGUSR2, &sa, NULL));
	MUST(sigaction(SIGWINCH, &sa, NULL));
	MUST(sigaction(RT_SIG, &sa, NULL));

	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGWINCH);
	sigaddset(&block, RT_SIG);
	MUST(sigprocmask(SIG_BLOCK, &block, NULL));
	MUST(sigprocmask(SIG_BLOCK, NULL, &block));
	wait_mask = block;
	sigdelset(&wait_mask, SIGUSR1);

	MUST(kill(pid, SIGUSR2));
	MUST(raise(SIGWINCH));
	MUST(sigqueue(pid, RT_SIG, (union sigval){ .sival_int = 0x1234 }));
	MUST(sigqueue(pid, RT_SIG, (union sigval){ .sival_int = 0x5678 }));
	if (proc_status("SigPnd", sigpnd, sizeof(sigpnd)) < 0 ||
	    proc_status("ShdPnd", shdpnd, sizeof(shdpnd)) < 0)
		test_abort("no SigPnd/ShdPnd in /proc/self/status");

	test_ready();
	while (!test_woken) {
		sigsuspend(&wait_mask);
		sigsuspend_returns++;
	}

	CHECK_EQ("sigsuspend returns", sigsuspend_returns, 1);
	CHECK_EQ("signals delivered while waiting", nrecs, 0);
	MUST(sigprocmask(SIG_BLOCK, NULL, &mask_now));
	for (int s = 1; s < 65; s++)
		if (s != 32 && s != 33)
			CHECK(sigismember(&mask_now, s) == sigismember(&block, s),
			      "after sigsuspend signal %d is %s", s,
			      sigismember(&mask_now, s) ? "blocked" : "not blocked");
	if (proc_status("SigPnd", v, sizeof(v)) < 0)
		test_fail("no SigPnd");
	else
		CHECK(strcmp(v, sigpnd) == 0, "SigPnd (thread) is %s, want %s", v, sigpnd);
	if (proc_status("ShdPnd", v, sizeof(v)) < 0)
		test_fail("no ShdPnd");
	else
		CHECK(strcmp(v, shdpnd) == 0, "ShdPnd (process) is %s, want %s", v, shdpnd);
	MUST(sigpending(&pending));
	CHECK(sigismember(&pending, SIGUSR2), "SIGUSR2 not pending");
	CHECK(sigismember(&pending, SIGWINCH), "SIGWINCH not pending");
	CHECK(sigismember(&pending, RT_SIG), "SIGRTMIN+3 not pending");

	MUST(sigprocmask(SIG_UNBLOCK, &wait_mask, NULL));
	/* delivery order: standard signals by number, then real-time ones queued in order */
	CHECK_EQ("signals delivered", nrecs, 4);
	for (int i = 0; i < nrecs; i++) {
		struct rec *r = &recs[i];

		if (r->sig == SIGUSR2)
			CHECK(r->code == SI_USER && r->pid == pid, "SIGUSR2: code %d pid %d", r->code,
			      (int)r->pid);
		else if (r->sig == SIGWINCH)
			CHECK(r->code == SI_TKILL && r->pid == pid, "SIGWINCH: code %d pid %d",
			      r->code, (int)r->pid);
		else if (r->sig != RT_SIG)
			test_fail("unexpected signal %d", r->sig);
	}
	{
		int k = 0;
		static const int values[] = { 0x1234, 0x5678 };

		for (int i = 0; i < nrecs; i++) {
			if (recs[i].sig != RT_SIG)
				continue;
			CHECK(recs[i].code == SI_QUEUE, "SIGRTMIN+3: code %d", recs[i].code);
			CHECK(k < 2 && recs[i].value == values[k],
			      "SIGRTMIN+3 #%d carries %#x, want %#x", k, recs[i].value,
			      k < 2 ? values[k] : 0);
			k++;
		}
		CHECK_EQ("SIGRTMIN+3 deliveries", k, 2);
	}
	return test_done();
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Credentials: started as root, the target takes a supplementary group list
 * and distinct real/effective/saved ids (uid and gid 65534, saved 65533),
 * which drops every capability and makes it non-dumpable, then waits in
 * sigsuspend(). Everything must be the same after restart: a restored process
 * must not come back with more privilege than it had.
 */
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "lib.h"

#define ID 65534
#define SAVED 65533

static const gid_t groups[] = { 100, 4242, 65534 };
static const char *const status_keys[] = { "Uid",    "Gid",    "Groups", "CapInh", "CapPrm",
					    "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp" };
#define NKEYS (sizeof(status_keys) / sizeof(status_keys[0]))

int main(void)
{
	char before[NKEYS][256];
	sigset_t block, wait_mask;
	int dumpable;

	test_init("creds");
	if (geteuid() != 0)
		test_skip("needs to start as root");
	test_wake_handler(0);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	MUST(sigprocmask(SIG_BLOCK, &block, &wait_mask));
	sigdelset(&wait_mask, SIGUSR1);

	MUST(setgroups(sizeof(groups) / sizeof(groups[0]), groups));
	MUST(setresgid(ID, ID, SAVED));
	MUST(setresuid(ID, ID, SAVED));
	dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	for (size_t i = 0; i < NKEYS; i++)
		if (proc_status(status_keys[i], before[i], sizeof(before[i])) < 0)
			test_abort("no %s in /proc/self/status", status_keys[i]);

	test_ready();
	while (!test_woken)
		sigsuspend(&wait_mask);

	{
		uid_t r, e, s;
		gid_t gr, ge, gs;

		if (getresuid(&r, &e, &s) < 0)
			test_fail("getresuid: %m");
		else {
			CHECK_EQ("real uid", r, ID);
			CHECK_EQ("effective uid", e, ID);
			CHECK_EQ("saved uid", s, SAVED);
		}
		if (getresgid(&gr, &ge, &gs) < 0)
			test_fail("getresgid: %m");
		else {
			CHECK_EQ("real gid", gr, ID);
			CHECK_EQ("effective gid", ge, ID);
			CHECK_EQ("saved gid", gs, SAVED);
		}
	}
	{
		gid_t now[64];
		int n = getgroups(64, now);

		CHECK_EQ("number of supplementary groups", n, sizeof(groups) / sizeof(groups[0]));
		for (int i = 0; i < n && i < (int)(sizeof(groups) / sizeof(groups[0])); i++)
			CHECK_EQ("supplementary group", now[i], groups[i]);
	}
	for (size_t i = 0; i < NKEYS; i++) {
		char v[256];

		if (proc_status(status_keys[i], v, sizeof(v)) < 0)
			test_fail("no %s in /proc/self/status", status_keys[i]);
		else
			CHECK(strcmp(v, before[i]) == 0, "/proc/self/status %s is '%s', want '%s'",
			      status_keys[i], v, before[i]);
	}
	CHECK_EQ("PR_GET_DUMPABLE", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), dumpable);
	return test_done();
}

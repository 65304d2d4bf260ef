/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * PID, comm, cwd and umask: the target renames itself, moves into a fresh
 * subdirectory and sets an unusual umask, then waits in pause().
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib.h"

#define COMM "ghost-identity"

int main(void)
{
	char cwd[PATH_MAX], now[PATH_MAX], comm[32], procpid[64];
	pid_t pid;
	mode_t old;

	test_init("proc-identity");
	test_wake_handler(0);

	MUST(mkdir("cwd-dir.d", 0755));
	MUST(chdir("cwd-dir.d"));
	if (!getcwd(cwd, sizeof(cwd)))
		test_abort("getcwd: %m");
	MUST(prctl(PR_SET_NAME, COMM, 0, 0, 0));
	umask(0027);
	pid = getpid();

	test_ready();
	test_wait_pause();

	CHECK_EQ("getpid()", getpid(), pid);
	CHECK_EQ("syscall(SYS_getpid)", syscall(SYS_getpid), pid);
	CHECK_EQ("gettid()", syscall(SYS_gettid), pid);
	snprintf(procpid, sizeof(procpid), "%d", (int)pid);
	{
		char link[64];
		ssize_t n = readlink("/proc/self", link, sizeof(link) - 1);

		if (n < 0)
			test_fail("readlink /proc/self: %m");
		else {
			link[n] = 0;
			CHECK(strcmp(link, procpid) == 0, "/proc/self is '%s', want '%s'", link,
			      procpid);
		}
	}

	memset(comm, 0, sizeof(comm));
	MUST(prctl(PR_GET_NAME, comm, 0, 0, 0));
	CHECK(strcmp(comm, COMM) == 0, "PR_GET_NAME is '%s', want '%s'", comm, COMM);
	if (file_read("/proc/self/comm", comm, sizeof(comm)) < 0)
		test_fail("read /proc/self/comm: %m");
	else
		CHECK(strcmp(comm, COMM "\n") == 0, "/proc/self/comm is '%s'", comm);

	if (!getcwd(now, sizeof(now)))
		test_fail("getcwd: %m");
	else
		CHECK(strcmp(now, cwd) == 0, "cwd is '%s', want '%s'", now, cwd);
	{
		struct stat a, b;

		if (stat(".", &a) < 0 || stat(cwd, &b) < 0)
			test_fail("stat cwd: %m");
		else
			CHECK(a.st_ino == b.st_ino && a.st_dev == b.st_dev,
			      "'.' is not the directory '%s'", cwd);
	}

	old = umask(0);
	CHECK_EQ("umask", old, 0027);
	umask(old);
	{
		char v[32];

		if (proc_status("Umask", v, sizeof(v)) < 0)
			test_fail("no Umask in /proc/self/status");
		else
			CHECK(strcmp(v, "0027") == 0, "/proc/self/status Umask is '%s'", v);
	}
	return test_done();
}

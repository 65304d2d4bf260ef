/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Keeps a zombie child: forks a child that exits at once and does not reap
 * it before the wake-up. Writes the zombie's PID into zombie.pid (in its
 * cwd) before ready. After the wake-up it reaps the child, which must have
 * exited with status 42: the zombie was left alone.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib.h"

int main(void)
{
	char line[32];
	pid_t child;
	int status = 0, fd, n;

	test_init("zombie");
	test_wake_handler(0);
	child = fork();
	MUST(child);
	if (child == 0)
		_exit(42);
	/* wait until it is a zombie, without reaping it */
	{
		siginfo_t si;

		memset(&si, 0, sizeof(si));
		MUST(waitid(P_PID, (id_t)child, &si, WEXITED | WNOWAIT));
	}
	n = snprintf(line, sizeof(line), "%d\n", (int)child);
	fd = open("zombie.pid", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	MUST(fd);
	MUST(write_all(fd, line, (size_t)n));
	close(fd);

	test_ready();
	test_wait_pause();

	if (waitpid(child, &status, 0) != child)
		test_fail("waitpid(%d): %m", (int)child);
	else
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 42,
		      "the zombie's status is %#x, want exit 42", status);
	return test_done();
}

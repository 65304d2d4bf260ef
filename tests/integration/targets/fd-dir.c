/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Directory fds: a directory opened O_DIRECTORY (openat and fchdir through it
 * still work after restart) and the root directory.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib.h"

int main(void)
{
	char cwd[PATH_MAX], want_dir[PATH_MAX + 8], now[PATH_MAX];
	struct stat st_dir, st_root, st;
	int dfd = 50, rfd = 51, flags_d, flags_r;

	test_init("fd-dir");
	test_wake_handler(0);

	if (!getcwd(cwd, sizeof(cwd)))
		test_abort("getcwd: %m");
	MUST(mkdir("dir.d", 0755));
	{
		int fd = open("dir.d/known", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		MUST(fd);
		MUST(write_all(fd, "hello", 5));
		close(fd);
	}
	{
		int fd = open("dir.d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		MUST(fd);
		MUST(dup3(fd, dfd, O_CLOEXEC));
		close(fd);
		fd = open("/", O_RDONLY | O_DIRECTORY);
		MUST(fd);
		MUST(dup2(fd, rfd));
		close(fd);
	}
	snprintf(want_dir, sizeof(want_dir), "%s/dir.d", cwd);
	MUST(fstat(dfd, &st_dir));
	MUST(fstat(rfd, &st_root));
	flags_d = fcntl(dfd, F_GETFL);
	flags_r = fcntl(rfd, F_GETFL);

	test_ready();
	test_wait_pause();

	if (fstat(dfd, &st) < 0)
		test_fail("fstat(%d): %m", dfd);
	else
		CHECK(S_ISDIR(st.st_mode) && st.st_ino == st_dir.st_ino &&
			      st.st_dev == st_dir.st_dev,
		      "fd %d is not the directory any more", dfd);
	if (fstat(rfd, &st) < 0)
		test_fail("fstat(%d): %m", rfd);
	else
		CHECK(st.st_ino == st_root.st_ino && st.st_dev == st_root.st_dev,
		      "fd %d is not / any more", rfd);
	CHECK_EQ("flags of the directory fd", fcntl(dfd, F_GETFL), flags_d);
	CHECK_EQ("flags of the / fd", fcntl(rfd, F_GETFL), flags_r);
	CHECK_EQ("FD_CLOEXEC of the directory fd", fcntl(dfd, F_GETFD), FD_CLOEXEC);
	CHECK_EQ("FD_CLOEXEC of the / fd", fcntl(rfd, F_GETFD), 0);
	{
		char text[16] = { 0 };
		int fd = openat(dfd, "known", O_RDONLY | O_CLOEXEC);

		if (fd < 0)
			test_fail("openat(dirfd, \"known\"): %m");
		else {
			CHECK(read(fd, text, sizeof(text) - 1) == 5 && strcmp(text, "hello") == 0,
			      "dir.d/known holds '%s'", text);
			close(fd);
		}
		fd = openat(dfd, "created", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0)
			test_fail("openat(dirfd, \"created\", O_CREAT): %m");
		else
			close(fd);
		CHECK(access("dir.d/created", F_OK) == 0, "file created through the dirfd is not there");
	}
	if (fchdir(dfd) < 0)
		test_fail("fchdir: %m");
	else {
		if (!getcwd(now, sizeof(now)))
			test_fail("getcwd: %m");
		else
			CHECK(strcmp(now, want_dir) == 0, "after fchdir cwd is '%s', want '%s'", now,
			      want_dir);
		MUST(chdir(cwd));
	}
	CHECK(faccessat(rfd, "proc", F_OK, 0) == 0, "faccessat(/ fd, \"proc\"): %m");
	return test_done();
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Open files that were deleted: their content must be carried in the image.
 * A 300 KiB file read at an offset, an empty one, and an O_APPEND one; after
 * restart content, offsets, flags and "(deleted)" are kept and writes work.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib.h"

#define SIZE (300 * 1024 + 123)
#define SEED 0xde1

static int make(const char *name, int flags, int want_fd, const void *data, size_t len)
{
	int fd = open(name, flags | O_CREAT | O_TRUNC, 0600);

	if (fd < 0)
		test_abort("open '%s': %m", name);
	if (len && write_all(fd, data, len) < 0)
		test_abort("write '%s': %m", name);
	if (dup2(fd, want_fd) < 0)
		test_abort("dup2: %m");
	close(fd);
	MUST(unlink(name));
	return want_fd;
}

static void check_deleted(int fd, const char *name, const char *want_link)
{
	struct stat st;
	char link[PATH_MAX + 32], path[64];
	ssize_t n;

	if (fstat(fd, &st) < 0) {
		test_fail("fstat(%d) (%s): %m", fd, name);
		return;
	}
	CHECK_EQ("st_nlink of a deleted file", st.st_nlink, 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	CHECK(strcmp(link, want_link) == 0, "fd %d links to '%s', want '%s'", fd, link, want_link);
}

int main(void)
{
	static unsigned char data[SIZE], buf[SIZE];
	char links[3][PATH_MAX + 32];
	int big, empty, app;
	int flags[3];
	off_t pos = 4097;

	test_init("fd-deleted");
	test_wake_handler(0);

	pattern_fill(data, sizeof(data), SEED);
	big = make("big.deleted", O_RDWR, 40, data, sizeof(data));
	MUST(lseek(big, pos, SEEK_SET));
	empty = make("empty.deleted", O_RDWR, 41, NULL, 0);
	app = make("append.deleted", O_WRONLY | O_APPEND, 42, "abc", 3);
	for (int i = 0; i < 3; i++) {
		char path[64];
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", 40 + i);
		n = readlink(path, links[i], sizeof(links[i]) - 1);
		links[i][n > 0 ? n : 0] = 0;
		if (!strstr(links[i], " (deleted)"))
			test_abort("fd %d: '%s' is not deleted", 40 + i, links[i]);
		flags[i] = fcntl(40 + i, F_GETFL);
	}

	test_ready();
	test_wait_pause();

	check_deleted(big, "big.deleted", links[0]);
	check_deleted(empty, "empty.deleted", links[1]);
	check_deleted(app, "append.deleted", links[2]);
	for (int i = 0; i < 3; i++)
		CHECK(fcntl(40 + i, F_GETFL) == flags[i], "fd %d: flags %#o, want %#o", 40 + i,
		      fcntl(40 + i, F_GETFL), flags[i]);
	CHECK_EQ("offset of the big deleted file", lseek(big, 0, SEEK_CUR), pos);
	{
		struct stat st;

		if (fstat(big, &st) == 0)
			CHECK_EQ("size of the big deleted file", st.st_size, SIZE);
		if (fstat(empty, &st) == 0)
			CHECK_EQ("size of the empty deleted file", st.st_size, 0);
	}
	if (read_full(big, buf, SIZE - (size_t)pos) != (ssize_t)(SIZE - pos))
		test_fail("read the big deleted file from its offset: %m");
	else
		CHECK(memcmp(buf, data + pos, SIZE - (size_t)pos) == 0,
		      "big deleted file: content after the offset differs");
	if (pread(big, buf, SIZE, 0) != SIZE)
		test_fail("pread the big deleted file: %m");
	else
		CHECK(memcmp(buf, data, SIZE) == 0, "big deleted file: content differs");
	CHECK(pwrite(big, "zz", 2, 10) == 2, "pwrite to the deleted file: %m");
	CHECK(pwrite(empty, "e", 1, 0) == 1, "pwrite to the empty deleted file: %m");
	CHECK(write_all(app, "def", 3) == 0, "write the O_APPEND deleted file: %m");
	{
		char text[8] = { 0 };
		char path[64];
		int fd;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", app);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || pread(fd, text, 6, 0) != 6)
			test_fail("read back the O_APPEND deleted file: %m");
		else
			CHECK(strcmp(text, "abcdef") == 0, "O_APPEND deleted file holds '%s'", text);
		if (fd >= 0)
			close(fd);
	}
	return test_done();
}

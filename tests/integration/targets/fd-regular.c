/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Regular files: numbers, flags and offsets of fds on regular files. An
 * O_APPEND writer (writes continue at the end), an O_RDWR fd at offset N
 * (reading continues at N) and a dup of it (still sharing the offset), a
 * second independent open of the same file, an O_NONBLOCK fd, an FD_CLOEXEC
 * fd, an O_SYNC fd, and fds at numbers 100 and 1000. Also checks that stdout
 * and stderr still share one open file description.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib.h"

#define DATA_SIZE (256 * 1024)
#define SEED 0xf0e

struct fdinfo {
	int fd;
	const char *what;
	int fdflags, flflags;
	off_t pos;
	struct stat st;
	char link[PATH_MAX];
};

static struct fdinfo fds[16];
static int nfds;

static void take(struct fdinfo *f, int fd, const char *what)
{
	ssize_t n;

	f->fd = fd;
	f->what = what;
	f->fdflags = fcntl(fd, F_GETFD);
	f->flflags = fcntl(fd, F_GETFL);
	f->pos = lseek(fd, 0, SEEK_CUR);
	if (fstat(fd, &f->st) < 0)
		test_fail("fstat(%d): %m", fd);
	{
		char path[64];

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, f->link, sizeof(f->link) - 1);
		f->link[n > 0 ? n : 0] = 0;
	}
}

static int open_at(const char *path, int flags, int want_fd)
{
	int fd = open(path, flags, 0644);

	if (fd < 0)
		test_abort("open '%s': %m", path);
	if (fd != want_fd) {
		if (dup3(fd, want_fd, flags & O_CLOEXEC) < 0)
			test_abort("dup3 to %d: %m", want_fd);
		close(fd);
	}
	return want_fd;
}

int main(void)
{
	static unsigned char data[DATA_SIZE];
	static const char log_head[] = "first line\n", log_tail[] = "after restart\n";
	char buf[4096];
	int fd_append, fd_rdwr, fd_dup, fd_second, fd_nonblock, fd_cloexec, fd_sync, fd_100,
		fd_1000;
	off_t rdwr_pos = 12345, second_pos = 777, high_pos = 99999;

	test_init("fd-regular");
	test_wake_handler(0);

	pattern_fill(data, sizeof(data), SEED);
	{
		int fd = open("data.bin", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		MUST(fd);
		MUST(write_all(fd, data, sizeof(data)));
		close(fd);
	}
	fd_append = open_at("log.txt", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 10);
	MUST(write_all(fd_append, log_head, strlen(log_head)));
	MUST(lseek(fd_append, 3, SEEK_SET)); /* O_APPEND writes ignore the offset */
	fd_rdwr = open_at("data.bin", O_RDWR, 11);
	MUST(lseek(fd_rdwr, rdwr_pos, SEEK_SET));
	fd_dup = 20;
	MUST(dup2(fd_rdwr, fd_dup));
	fd_second = open_at("data.bin", O_RDONLY, 12);
	MUST(lseek(fd_second, second_pos, SEEK_SET));
	fd_nonblock = open_at("data.bin", O_RDONLY | O_NONBLOCK, 13);
	fd_cloexec = open_at("data.bin", O_RDONLY | O_CLOEXEC, 14);
	fd_sync = open_at("sync.txt", O_WRONLY | O_CREAT | O_TRUNC | O_SYNC, 15);
	fd_100 = open_at("data.bin", O_RDONLY, 100);
	MUST(lseek(fd_100, high_pos, SEEK_SET));
	fd_1000 = open_at("high.txt", O_WRONLY | O_CREAT | O_TRUNC, 1000);
	MUST(write_all(fd_1000, "x", 1));

	take(&fds[nfds++], 0, "stdin");
	take(&fds[nfds++], 1, "stdout");
	take(&fds[nfds++], 2, "stderr");
	take(&fds[nfds++], fd_append, "O_APPEND writer");
	take(&fds[nfds++], fd_rdwr, "O_RDWR reader");
	take(&fds[nfds++], fd_dup, "dup of the O_RDWR reader");
	take(&fds[nfds++], fd_second, "second open");
	take(&fds[nfds++], fd_nonblock, "O_NONBLOCK");
	take(&fds[nfds++], fd_cloexec, "FD_CLOEXEC");
	take(&fds[nfds++], fd_sync, "O_SYNC");
	take(&fds[nfds++], fd_100, "fd 100");
	take(&fds[nfds++], fd_1000, "fd 1000");

	test_ready();
	test_wait_pause();

	for (int i = 0; i < nfds; i++) {
		struct fdinfo now;
		const struct fdinfo *f = &fds[i];

		take(&now, f->fd, f->what);
		if (now.fdflags < 0) {
			test_fail("%s: fd %d is not open", f->what, f->fd);
			continue;
		}
		CHECK(now.fdflags == f->fdflags, "%s (fd %d): fd flags %#x, want %#x", f->what, f->fd,
		      now.fdflags, f->fdflags);
		CHECK(now.flflags == f->flflags, "%s (fd %d): file flags %#o, want %#o", f->what,
		      f->fd, now.flflags, f->flflags);
		CHECK(now.pos == f->pos, "%s (fd %d): offset %lld, want %lld", f->what, f->fd,
		      (long long)now.pos, (long long)f->pos);
		CHECK(now.st.st_ino == f->st.st_ino && now.st.st_dev == f->st.st_dev,
		      "%s (fd %d): another file", f->what, f->fd);
		CHECK(strcmp(now.link, f->link) == 0, "%s (fd %d): path '%s', want '%s'", f->what,
		      f->fd, now.link, f->link);
	}

	/* reading continues at the offset, and the dup shares it */
	if (read_full(fd_rdwr, buf, 100) != 100)
		test_fail("read fd %d: %m", fd_rdwr);
	else
		CHECK(memcmp(buf, data + rdwr_pos, 100) == 0, "read at offset %lld: wrong bytes",
		      (long long)rdwr_pos);
	CHECK_EQ("offset of the dup after reading the original", lseek(fd_dup, 0, SEEK_CUR),
		 rdwr_pos + 100);
	CHECK_EQ("offset of the independent open", lseek(fd_second, 0, SEEK_CUR), second_pos);
	if (read_full(fd_100, buf, 100) != 100)
		test_fail("read fd 100: %m");
	else
		CHECK(memcmp(buf, data + high_pos, 100) == 0, "fd 100: wrong bytes");
	if (read_full(fd_second, buf, 10) != 10)
		test_fail("read fd %d: %m", fd_second);
	else
		CHECK(memcmp(buf, data + second_pos, 10) == 0, "second open: wrong bytes");
	CHECK_EQ("offset of the O_RDWR fd after reading the other open",
		 lseek(fd_rdwr, 0, SEEK_CUR), rdwr_pos + 100);

	/* writes continue at the end of the O_APPEND file */
	MUST(write_all(fd_append, log_tail, strlen(log_tail)));
	{
		char text[256], want[256];

		snprintf(want, sizeof(want), "%s%s", log_head, log_tail);
		if (file_read("log.txt", text, sizeof(text)) < 0)
			test_fail("read log.txt: %m");
		else
			CHECK(strcmp(text, want) == 0, "log.txt is '%s', want '%s'", text, want);
	}
	/* the other writers work */
	CHECK(write_all(fd_sync, "sync", 4) == 0, "write O_SYNC fd: %m");
	CHECK(write_all(fd_1000, "y", 1) == 0, "write fd 1000: %m");
	{
		char text[16];

		CHECK(file_read("high.txt", text, sizeof(text)) == 2 && strcmp(text, "xy") == 0,
		      "high.txt is not 'xy'");
	}
	/* stdout and stderr: one open file description (offsets move together) */
	{
		struct stat a, b;

		if (fstat(1, &a) == 0 && fstat(2, &b) == 0 && S_ISREG(a.st_mode)) {
			off_t o1 = lseek(1, 0, SEEK_CUR);

			CHECK(a.st_ino == b.st_ino, "stdout and stderr are different files");
			MUST(lseek(2, o1 + 1, SEEK_SET));
			CHECK(lseek(1, 0, SEEK_CUR) == o1 + 1,
			      "stdout and stderr do not share their offset any more");
			MUST(lseek(2, o1, SEEK_SET));
		}
	}
	return test_done();
}

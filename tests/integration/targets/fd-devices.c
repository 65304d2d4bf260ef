/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Character devices: /dev/null, /dev/zero and /dev/urandom, with their
 * numbers, flags and device numbers kept, and working after restart.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "lib.h"

struct dev {
	const char *path;
	int flags, fd;
	dev_t rdev;
	int flflags, fdflags;
};

int main(void)
{
	struct dev devs[] = {
		{ "/dev/null", O_RDWR, 60, 0, 0, 0 },
		{ "/dev/zero", O_RDONLY | O_CLOEXEC, 61, 0, 0, 0 },
		{ "/dev/urandom", O_RDONLY | O_NONBLOCK, 62, 0, 0, 0 },
		{ "/dev/null", O_WRONLY | O_APPEND, 300, 0, 0, 0 },
	};
	const int n = sizeof(devs) / sizeof(devs[0]);

	test_init("fd-devices");
	test_wake_handler(0);

	for (int i = 0; i < n; i++) {
		struct stat st;
		int fd = open(devs[i].path, devs[i].flags);

		MUST(fd);
		MUST(dup3(fd, devs[i].fd, devs[i].flags & O_CLOEXEC));
		close(fd);
		MUST(fstat(devs[i].fd, &st));
		devs[i].rdev = st.st_rdev;
		devs[i].flflags = fcntl(devs[i].fd, F_GETFL);
		devs[i].fdflags = fcntl(devs[i].fd, F_GETFD);
	}

	test_ready();
	test_wait_pause();

	for (int i = 0; i < n; i++) {
		struct stat st;

		if (fstat(devs[i].fd, &st) < 0) {
			test_fail("%s (fd %d): %m", devs[i].path, devs[i].fd);
			continue;
		}
		CHECK(S_ISCHR(st.st_mode) && st.st_rdev == devs[i].rdev,
		      "%s (fd %d): device %u:%u, want %u:%u", devs[i].path, devs[i].fd,
		      major(st.st_rdev), minor(st.st_rdev), major(devs[i].rdev),
		      minor(devs[i].rdev));
		CHECK(fcntl(devs[i].fd, F_GETFL) == devs[i].flflags,
		      "%s (fd %d): flags %#o, want %#o", devs[i].path, devs[i].fd,
		      fcntl(devs[i].fd, F_GETFL), devs[i].flflags);
		CHECK(fcntl(devs[i].fd, F_GETFD) == devs[i].fdflags,
		      "%s (fd %d): fd flags %#x, want %#x", devs[i].path, devs[i].fd,
		      fcntl(devs[i].fd, F_GETFD), devs[i].fdflags);
	}
	{
		char buf[256];

		CHECK(write(60, "x", 1) == 1, "write /dev/null: %m");
		CHECK(read(60, buf, sizeof(buf)) == 0, "read /dev/null is not at EOF");
		CHECK(write(300, "x", 1) == 1, "write /dev/null (fd 300): %m");
		memset(buf, 0xff, sizeof(buf));
		CHECK(read(61, buf, sizeof(buf)) == (ssize_t)sizeof(buf) &&
			      zero_check(buf, sizeof(buf)) < 0,
		      "/dev/zero does not read zeros");
		memset(buf, 0, sizeof(buf));
		CHECK(read(62, buf, sizeof(buf)) == (ssize_t)sizeof(buf) &&
			      zero_check(buf, sizeof(buf)) >= 0,
		      "/dev/urandom does not read random bytes");
	}
	return test_done();
}

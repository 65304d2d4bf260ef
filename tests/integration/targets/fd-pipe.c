/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pipes whose both ends the process holds, with bytes in flight: a pipe with
 * 3000 unread bytes; a 256 KiB pipe (F_SETPIPE_SZ) holding 200 KiB; a full
 * 64 KiB pipe with a non-blocking write end; an empty non-blocking pipe. After
 * restart the bytes come out in order, sizes and flags are the same, and more
 * bytes flow. (A pipe whose other end nobody holds any more is not here: from
 * outside it looks like a pipe to another process, which a checkpoint refuses
 * without --shell-job.)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "lib.h"

#define SEED 0x919e

struct pipe_case {
	const char *name;
	int rfd, wfd;        /* wanted numbers */
	size_t bytes;        /* in flight */
	int size;            /* F_SETPIPE_SZ, 0 to keep */
	int rflags, wflags;  /* extra O_ flags */
	int rfl, wfl;        /* F_GETFL at ready */
	int psize;           /* F_GETPIPE_SZ at ready */
};

static void place(int fd, int want)
{
	if (fd == want)
		return;
	if (dup2(fd, want) < 0)
		test_abort("dup2 %d -> %d: %m", fd, want);
	close(fd);
}

int main(void)
{
	static unsigned char buf[256 * 1024], data[256 * 1024];
	struct pipe_case cases[] = {
		{ "small", 70, 71, 3000, 0, 0, 0, 0, 0, 0 },
		{ "large", 72, 73, 200 * 1024, 256 * 1024, 0, 0, 0, 0, 0 },
		{ "full", 74, 75, 64 * 1024, 0, 0, O_NONBLOCK, 0, 0, 0 },
		{ "empty non-blocking", 77, 78, 0, 0, O_NONBLOCK, 0, 0, 0, 0 },
	};
	const int n = sizeof(cases) / sizeof(cases[0]);

	test_init("fd-pipe");
	test_wake_handler(0);

	for (int i = 0; i < n; i++) {
		struct pipe_case *c = &cases[i];
		int p[2];

		MUST(pipe(p));
		place(p[0], c->rfd);
		place(p[1], c->wfd);
		if (c->size)
			MUST(fcntl(c->rfd, F_SETPIPE_SZ, c->size));
		if (c->rflags)
			MUST(fcntl(c->rfd, F_SETFL, fcntl(c->rfd, F_GETFL) | c->rflags));
		pattern_fill(data, c->bytes, SEED + (uint64_t)i);
		MUST(write_all(c->wfd, data, c->bytes));
		if (c->wflags)
			MUST(fcntl(c->wfd, F_SETFL, fcntl(c->wfd, F_GETFL) | c->wflags));
		c->rfl = fcntl(c->rfd, F_GETFL);
		c->wfl = fcntl(c->wfd, F_GETFL);
		c->psize = fcntl(c->rfd, F_GETPIPE_SZ);
	}

	test_ready();
	test_wait_pause();

	for (int i = 0; i < n; i++) {
		struct pipe_case *c = &cases[i];
		int avail = -1;

		CHECK(fcntl(c->rfd, F_GETFL) == c->rfl, "%s pipe: read end flags %#o, want %#o",
		      c->name, fcntl(c->rfd, F_GETFL), c->rfl);
		CHECK(fcntl(c->wfd, F_GETFL) == c->wfl, "%s pipe: write end flags %#o, want %#o",
		      c->name, fcntl(c->wfd, F_GETFL), c->wfl);
		CHECK(fcntl(c->rfd, F_GETPIPE_SZ) == c->psize, "%s pipe: size %d, want %d", c->name,
		      fcntl(c->rfd, F_GETPIPE_SZ), c->psize);
		if (ioctl(c->rfd, FIONREAD, &avail) < 0)
			test_fail("%s pipe: FIONREAD: %m", c->name);
		CHECK(avail == (int)c->bytes, "%s pipe: %d bytes in flight, want %zu", c->name,
		      avail, c->bytes);
		if (c->wflags & O_NONBLOCK) {
			errno = 0;
			CHECK(write(c->wfd, "x", 1) < 0 && errno == EAGAIN,
			      "%s pipe: write to the full pipe did not fail with EAGAIN (%m)",
			      c->name);
		}
		if (c->bytes) {
			pattern_fill(data, c->bytes, SEED + (uint64_t)i);
			if (read_full(c->rfd, buf, c->bytes) != (ssize_t)c->bytes)
				test_fail("%s pipe: short read: %m", c->name);
			else
				CHECK(memcmp(buf, data, c->bytes) == 0,
				      "%s pipe: bytes differ or are out of order", c->name);
		}
		if (c->rflags & O_NONBLOCK) {
			errno = 0;
			CHECK(read(c->rfd, buf, 1) < 0 && errno == EAGAIN,
			      "%s pipe: read did not fail with EAGAIN (%m)", c->name);
		}
		/* more bytes flow */
		CHECK(write_all(c->wfd, "more", 4) == 0, "%s pipe: write: %m", c->name);
		CHECK(read_full(c->rfd, buf, 4) == 4 && memcmp(buf, "more", 4) == 0,
		      "%s pipe: new bytes do not flow", c->name);
	}
	return test_done();
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unix socketpairs whose both ends the process holds, with queued data in
 * both directions: SOCK_STREAM (bytes in order) and SOCK_DGRAM (datagram
 * boundaries and order kept). More data flows after restart.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib.h"

#define SEED 0x50c

static const size_t dgram_a[] = { 1, 100, 1500, 7000, 0 };
static const size_t dgram_b[] = { 3, 4000, 0 };

static void place(int fd, int want)
{
	if (dup2(fd, want) < 0)
		test_abort("dup2: %m");
	close(fd);
}

static int sock_int(int fd, int opt)
{
	int v = -1;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, opt, &v, &len) < 0)
		return -1;
	return v;
}

static void send_dgrams(int fd, const size_t *sizes, uint64_t seed)
{
	static unsigned char buf[8192];

	for (int i = 0; sizes[i]; i++) {
		pattern_fill(buf, sizes[i], seed + (uint64_t)i);
		if (send(fd, buf, sizes[i], 0) != (ssize_t)sizes[i])
			test_abort("send: %m");
	}
}

static void check_dgrams(int fd, const size_t *sizes, uint64_t seed, const char *dir)
{
	static unsigned char buf[8192];

	for (int i = 0; sizes[i]; i++) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);

		if (n < 0) {
			test_fail("%s: datagram %d missing: %m", dir, i);
			return;
		}
		CHECK(n == (ssize_t)sizes[i], "%s: datagram %d has %zd bytes, want %zu", dir, i, n,
		      sizes[i]);
		if (n == (ssize_t)sizes[i])
			CHECK(pattern_check(buf, sizes[i], seed + (uint64_t)i) < 0,
			      "%s: datagram %d content differs", dir, i);
	}
	errno = 0;
	CHECK(recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == EAGAIN,
	      "%s: more datagrams than sent", dir);
}

static void check_stream(int fd, size_t len, uint64_t seed, const char *dir)
{
	static unsigned char buf[65536];
	int avail = -1;

	ioctl(fd, FIONREAD, &avail);
	CHECK(avail == (int)len, "%s: %d bytes queued, want %zu", dir, avail, len);
	if (read_full(fd, buf, len) != (ssize_t)len)
		test_fail("%s: short read: %m", dir);
	else
		CHECK(pattern_check(buf, len, seed) < 0, "%s: bytes differ or are out of order", dir);
}

int main(void)
{
	static unsigned char buf[65536];
	int st[2], dg[2];
	const size_t a_to_b = 5000, b_to_a = 3000;

	test_init("fd-socketpair");
	test_wake_handler(0);

	MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, st));
	place(st[0], 80);
	place(st[1], 81);
	MUST(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dg));
	place(dg[0], 82);
	place(dg[1], 83);
	MUST(fcntl(82, F_SETFD, FD_CLOEXEC));
	MUST(fcntl(81, F_SETFL, O_NONBLOCK));

	pattern_fill(buf, a_to_b, SEED);
	MUST(write_all(80, buf, a_to_b));
	pattern_fill(buf, b_to_a, SEED + 1);
	MUST(write_all(81, buf, b_to_a));
	send_dgrams(82, dgram_a, SEED + 100);
	send_dgrams(83, dgram_b, SEED + 200);

	test_ready();
	test_wait_pause();

	CHECK_EQ("fd 80 SO_TYPE", sock_int(80, SO_TYPE), SOCK_STREAM);
	CHECK_EQ("fd 81 SO_TYPE", sock_int(81, SO_TYPE), SOCK_STREAM);
	CHECK_EQ("fd 82 SO_TYPE", sock_int(82, SO_TYPE), SOCK_DGRAM);
	CHECK_EQ("fd 83 SO_TYPE", sock_int(83, SO_TYPE), SOCK_DGRAM);
	CHECK_EQ("fd 80 SO_DOMAIN", sock_int(80, SO_DOMAIN), AF_UNIX);
	CHECK_EQ("fd 82 SO_DOMAIN", sock_int(82, SO_DOMAIN), AF_UNIX);
	CHECK_EQ("fd 81 O_NONBLOCK", fcntl(81, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
	CHECK_EQ("fd 80 O_NONBLOCK", fcntl(80, F_GETFL) & O_NONBLOCK, 0);
	CHECK_EQ("fd 82 FD_CLOEXEC", fcntl(82, F_GETFD), FD_CLOEXEC);
	CHECK_EQ("fd 83 FD_CLOEXEC", fcntl(83, F_GETFD), 0);
	CHECK_EQ("fd 80 FD_CLOEXEC", fcntl(80, F_GETFD), 0);

	check_stream(81, a_to_b, SEED, "stream 80->81");
	check_stream(80, b_to_a, SEED + 1, "stream 81->80");
	check_dgrams(83, dgram_a, SEED + 100, "dgram 82->83");
	check_dgrams(82, dgram_b, SEED + 200, "dgram 83->82");

	/* still a pair: more data flows both ways */
	CHECK(write_all(80, "ping", 4) == 0 && read_full(81, buf, 4) == 4 &&
		      memcmp(buf, "ping", 4) == 0,
	      "stream 80->81 does not flow");
	CHECK(write_all(81, "pong", 4) == 0 && read_full(80, buf, 4) == 4 &&
		      memcmp(buf, "pong", 4) == 0,
	      "stream 81->80 does not flow");
	CHECK(send(83, "d", 1, 0) == 1 && recv(82, buf, sizeof(buf), MSG_DONTWAIT) == 1,
	      "dgram 83->82 does not flow");
	CHECK(send(82, "dd", 2, 0) == 2 && recv(83, buf, sizeof(buf), MSG_DONTWAIT) == 2,
	      "dgram 82->83 does not flow");
	return test_done();
}

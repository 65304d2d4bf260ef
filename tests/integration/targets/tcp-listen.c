/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Holds a TCP socket listening on 127.0.0.1, which the engine cannot carry:
 * a checkpoint must be refused, naming it, and leave the process running and
 * untraced with a working socket. With the argument "dropped", a restored
 * process (stage "restored") must no longer have the socket: checkpoint
 * --drop-unsupported dropped it; everything else is kept.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib.h"

#define SFD 95

static void check_listener(void)
{
	struct sockaddr_in addr;
	socklen_t len = sizeof(addr);
	int c, a;
	char b = 0;

	if (getsockname(SFD, (struct sockaddr *)&addr, &len) < 0) {
		test_fail("getsockname(%d): %m", SFD);
		return;
	}
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&addr, len) < 0) {
		test_fail("connect to the listening socket: %m");
		if (c >= 0)
			close(c);
		return;
	}
	a = accept4(SFD, NULL, NULL, SOCK_CLOEXEC);
	if (a < 0)
		test_fail("accept: %m");
	else {
		CHECK(write(c, "t", 1) == 1 && read(a, &b, 1) == 1 && b == 't',
		      "no data over the accepted connection");
		close(a);
	}
	close(c);
}

int main(int argc, char **argv)
{
	bool may_drop = argc > 1 && strcmp(argv[1], "dropped") == 0;
	struct sockaddr_in addr;
	int fd, pfd[2];

	test_init("tcp-listen");
	test_wake_handler(0);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	MUST(fd);
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	MUST(bind(fd, (struct sockaddr *)&addr, sizeof(addr)));
	MUST(listen(fd, 4));
	MUST(dup2(fd, SFD));
	close(fd);
	/* some state that must survive next to the dropped socket */
	MUST(pipe(pfd));
	MUST(write_all(pfd[1], "kept", 4));

	test_ready();
	test_wait_pause();

	if (may_drop && test_restored()) {
		int type = -1;
		socklen_t len = sizeof(type);

		test_fd_ignore(SFD);
		if (fcntl(SFD, F_GETFD) < 0)
			CHECK(errno == EBADF, "fd %d: %m", SFD);
		else
			CHECK(getsockopt(SFD, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
				      getsockname(SFD, (struct sockaddr *)&addr,
						  &(socklen_t){ sizeof(addr) }) < 0 ||
				      addr.sin_family != AF_INET,
			      "fd %d is still a TCP socket after --drop-unsupported", SFD);
	} else
		check_listener();
	{
		char b[4];

		CHECK(read_full(pfd[0], b, 4) == 4 && memcmp(b, "kept", 4) == 0,
		      "the pipe next to the socket lost its bytes");
	}
	return test_done();
}

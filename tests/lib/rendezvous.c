/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Rendezvous of two stream endpoints through the shared file system: Unix
 * sockets at a path, TCP ports published in a file, fd passing (see
 * rendezvous.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "rendezvous.h"

#define RETRY_MS 2

uint64_t rdv_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void pause_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int close_keep_errno(int fd, int r)
{
	if (fd >= 0)
		close(fd);
	return r;
}

static int unix_addr(const char *path, struct sockaddr_un *ret)
{
	*ret = (struct sockaddr_un){ .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(ret->sun_path))
		return -ENAMETOOLONG;
	memcpy(ret->sun_path, path, strlen(path) + 1);
	return 0;
}

int rdv_unix_listen(const char *path)
{
	struct sockaddr_un sa;
	int fd, r;

	r = unix_addr(path, &sa);
	if (r < 0)
		return r;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0)
		return close_keep_errno(fd, -errno);
	return rdv_above_stdio(fd);
}

int rdv_unix_connect(const char *path, unsigned timeout_ms)
{
	uint64_t deadline = rdv_now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	struct sockaddr_un sa;
	int r;

	r = unix_addr(path, &sa);
	if (r < 0)
		return r;
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return rdv_above_stdio(fd);
		r = -errno;
		close(fd);
		if (r != -ENOENT && r != -ECONNREFUSED && r != -EINTR)
			return r;
		if (rdv_now_ns() > deadline)
			return -ETIMEDOUT;
		pause_ms(RETRY_MS);
	}
}

int rdv_accept(int lfd, unsigned timeout_ms)
{
	uint64_t deadline = rdv_now_ns() + (uint64_t)timeout_ms * 1000000ULL;

	for (;;) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		uint64_t now = rdv_now_ns();
		int n, fd;

		if (now > deadline)
			return -ETIMEDOUT;
		n = poll(&p, 1, (int)((deadline - now) / 1000000ULL) + 1);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n <= 0)
			continue;
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			return rdv_above_stdio(fd);
		if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
			return -errno;
	}
}

int rdv_node_addr(char *buf, size_t len)
{
	struct ifaddrs *list, *i;
	int r = -ENOENT;

	if (getifaddrs(&list) < 0)
		return -errno;
	for (i = list; i && r < 0; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET ||
		    !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
			continue;
		if (!inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, buf,
			       (socklen_t)len))
			r = -errno;
		else
			r = 0;
	}
	freeifaddrs(list);
	if (r == -ENOENT) {
		if (len < sizeof("127.0.0.1"))
			return -ENAMETOOLONG;
		memcpy(buf, "127.0.0.1", sizeof("127.0.0.1"));
		r = 0;
	}
	return r;
}

int rdv_tcp_listen(const char *publish_path, uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	socklen_t sl = sizeof(sa);
	char addr[INET_ADDRSTRLEN], line[64];
	int fd, one = 1, r;

	r = rdv_node_addr(addr, sizeof(addr));
	if (r < 0)
		return r;
	sa.sin_addr.s_addr = htonl(INADDR_ANY);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
		return close_keep_errno(fd, -errno);
	snprintf(line, sizeof(line), "%s %u\n", addr, (unsigned)ntohs(sa.sin_port));
	r = rdv_write_file(publish_path, line);
	if (r < 0)
		return close_keep_errno(fd, r);
	return rdv_above_stdio(fd);
}

/* "ADDRESS PORT" from path: 0, -ENOENT while it is not there, or -errno. */
static int read_published(const char *path, struct sockaddr_in *ret)
{
	char buf[64], addr[INET_ADDRSTRLEN];
	unsigned port;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	if (sscanf(buf, "%15s %u", addr, &port) != 2 || port == 0 || port > 65535)
		return -EBADMSG;
	*ret = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	return inet_pton(AF_INET, addr, &ret->sin_addr) == 1 ? 0 : -EBADMSG;
}

int rdv_tcp_connect(const char *publish_path, unsigned timeout_ms, int nodelay)
{
	uint64_t deadline = rdv_now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	struct sockaddr_in sa;
	int r;

	for (;;) {
		int fd;

		r = read_published(publish_path, &sa);
		if (r < 0 && r != -ENOENT)
			return r;
		if (r == 0) {
			fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (fd < 0)
				return -errno;
			if (nodelay && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay,
						  sizeof(nodelay)) < 0)
				return close_keep_errno(fd, -errno);
			if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
				return rdv_above_stdio(fd);
			r = -errno;
			close(fd);
			if (r != -ECONNREFUSED && r != -EINTR)
				return r;
		}
		if (rdv_now_ns() > deadline)
			return -ETIMEDOUT;
		pause_ms(RETRY_MS);
	}
}

int rdv_send_fd(int sock, int fd)
{
	char byte = 'F';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = u.buf,
		.msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *c;

	memset(&u, 0, sizeof(u));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	for (;;) {
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);

		if (n == 1)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

int rdv_recv_fd(int sock, int *ret_fd)
{
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = u.buf,
		.msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *c;
	ssize_t n;
	int fd;

	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -EPIPE;
	c = CMSG_FIRSTHDR(&mh);
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN(sizeof(int)) || (mh.msg_flags & MSG_CTRUNC))
		return -EBADMSG;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	fd = rdv_above_stdio(fd);
	if (fd < 0)
		return fd;
	*ret_fd = fd;
	return 0;
}

int rdv_write_file(const char *path, const char *text)
{
	char tmp[4096];
	size_t len = strlen(text), off = 0;
	int fd;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int r = -errno;

			close(fd);
			unlink(tmp);
			return r;
		}
		off += (size_t)n;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		int r = -errno;

		unlink(tmp);
		return r;
	}
	return 0;
}

int rdv_above_stdio(int fd)
{
	int nfd;

	if (fd < 0 || fd > 2)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (nfd < 0)
		return close_keep_errno(fd, -errno);
	close(fd);
	return nfd;
}

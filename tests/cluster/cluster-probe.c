/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cluster-probe: network checks the cluster tests run inside nodes with
 * `ghost cluster exec` (no ping or netcat needed on the machine).
 *
 *   cluster-probe serve PORT        listen on PORT, then go to the background
 *                                   (adopted by the node's init) and answer
 *                                   every connection with the hostname
 *   cluster-probe connect ADDR PORT connect, print what the server says
 *   cluster-probe ping ADDR         one ICMP echo over a raw socket, answered
 *                                   by the kernel of the node at ADDR
 *
 * Exit status 0 on success, 1 on failure (with a message), 2 on usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define TIMEOUT_MS 3000

static int die(const char *what)
{
	fprintf(stderr, "cluster-probe: %s: %s\n", what, strerror(errno));
	return 1;
}

static int parse_port(const char *s, uint16_t *ret)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end || v < 1 || v > 65535)
		return -1;
	*ret = (uint16_t)v;
	return 0;
}

static int serve(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1, fd, null;
	char host[256] = "?";
	pid_t pid;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0)
		return die("bind/listen");
	gethostname(host, sizeof(host) - 1);
	pid = fork();
	if (pid < 0)
		return die("fork");
	if (pid > 0) {
		/* Listening already: the caller may connect as soon as we exit. */
		printf("%d\n", (int)pid);
		return 0;
	}
	setsid();
	null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		if (null > 2)
			close(null);
	}
	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

		if (c < 0)
			continue;
		/* A client that left early is no concern of ours. */
		if (write(c, host, strlen(host)) == (ssize_t)strlen(host))
			(void)!write(c, "\n", 1);
		close(c);
	}
}

static int do_connect(const char *addr, uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct pollfd p;
	char buf[256];
	ssize_t n, got = 0;
	int fd;

	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "cluster-probe: bad address '%s'\n", addr);
		return 2;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return die("socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		return die("connect");
	for (;;) {
		p = (struct pollfd){ .fd = fd, .events = POLLIN };
		if (poll(&p, 1, TIMEOUT_MS) <= 0) {
			errno = ETIMEDOUT;
			return die("connect/read");
		}
		n = read(fd, buf + got, sizeof(buf) - 1 - (size_t)got);
		if (n < 0)
			return die("read");
		if (n == 0)
			break;
		got += n;
		if ((size_t)got >= sizeof(buf) - 1)
			break;
	}
	buf[got] = '\0';
	fputs(buf, stdout);
	close(fd);
	return 0;
}

static uint16_t checksum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

static int ping(const char *addr)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct icmphdr req = { .type = ICMP_ECHO };
	uint16_t id = (uint16_t)getpid();
	int fd;

	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "cluster-probe: bad address '%s'\n", addr);
		return 2;
	}
	fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
	if (fd < 0)
		return die("raw socket");
	req.un.echo.id = htons(id);
	req.un.echo.sequence = htons(1);
	req.checksum = checksum(&req, sizeof(req));
	if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return die("sendto");
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		uint8_t buf[1500];
		const struct iphdr *ip = (const struct iphdr *)buf;
		const struct icmphdr *r;
		ssize_t n;

		if (poll(&p, 1, TIMEOUT_MS) <= 0) {
			fprintf(stderr, "cluster-probe: no echo reply from %s\n", addr);
			return 1;
		}
		n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		if (n < 0)
			return die("recvfrom");
		if ((size_t)n < sizeof(*ip) || (size_t)n < ip->ihl * 4u + sizeof(*r))
			continue;
		r = (const struct icmphdr *)(buf + ip->ihl * 4);
		if (r->type == ICMP_ECHOREPLY && ntohs(r->un.echo.id) == id &&
		    from.sin_addr.s_addr == sa.sin_addr.s_addr) {
			printf("echo reply from %s\n", addr);
			return 0;
		}
	}
}

int main(int argc, char **argv)
{
	uint16_t port;

	if (argc == 3 && strcmp(argv[1], "serve") == 0 && parse_port(argv[2], &port) == 0)
		return serve(port);
	if (argc == 4 && strcmp(argv[1], "connect") == 0 && parse_port(argv[3], &port) == 0)
		return do_connect(argv[2], port);
	if (argc == 3 && strcmp(argv[1], "ping") == 0)
		return ping(argv[2]);
	fprintf(stderr, "usage: cluster-probe serve PORT | connect ADDR PORT | ping ADDR\n");
	return 2;
}

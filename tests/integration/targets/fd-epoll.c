/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Epoll instances (argument: wait | stale).
 *
 * wait: an instance (O_CLOEXEC, also dup'ed at fd 100) watching a pipe with
 * a byte in it (level-triggered), a socketpair end with bytes that came after
 * the registration (EPOLLET: one edge pending), a pipe with a byte whose
 * EPOLLONESHOT registration has fired (disarmed), a pipe with a byte watched
 * with EPOLLEXCLUSIVE, and a second instance that watches a pipe with a byte;
 * data values are pointers to the target's own variables, or patterns using
 * all 64 bits. The target waits blocked in epoll_wait() on a third instance,
 * which watches an empty pipe, until SIGUSR1 (EINTR; an interrupted
 * epoll_wait may come back once more with EINTR after a restart, as after any
 * stop). Then every registration must be as it was in /proc/self/fdinfo
 * (fd number, events, data), and the instances must report exactly: the
 * level-triggered, exclusive and nested ones, each time; the edge once; the
 * disarmed one-shot never until re-armed, then once; and more bytes must wake
 * the third instance.
 *
 * stale: fd 5 is registered, then replaced by dup2() while the registered pipe
 * lives on at another fd. The checkpoint must be refused (that registration
 * can no longer be named by fd number); the process, left running, checks that
 * its instance still reports the registered pipe under its data.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib.h"

#define DUP_FD 100

static int level_tag, edge_tag, exclusive_tag;

static const uint64_t ONESHOT_DATA = 0x0123456789abcdefull;
static const uint64_t NESTED_DATA = 0xfedcba9876543210ull;
static const uint64_t INNER_DATA = 0x8000000000000001ull;
static const uint64_t WAITER_DATA = 0x77;

static void must_add(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		test_abort("epoll_ctl(ADD %d): %m", fd);
}

static void must_write(int fd, const char *s)
{
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		test_abort("write: %m");
}

static int line_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The "tfd: events: data:" part of each registration line of fdinfo, sorted:
 * the kernel lists them by file address, which a restart changes. */
static void registrations(int ep, char *buf, size_t size)
{
	char path[64], all[8192], *lines[64];
	size_t len = 0, n = 0;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", ep);
	buf[0] = '\0';
	if (file_read(path, all, sizeof(all)) < 0) {
		test_fail("cannot read %s: %m", path);
		return;
	}
	for (char *l = strstr(all, "tfd:"); l && n < 64; l = strstr(l, "tfd:")) {
		char *pos = strstr(l, " pos:");

		if (!pos)
			break;
		*pos = '\0';
		lines[n++] = l;
		l = pos + 1;
	}
	qsort(lines, n, sizeof(lines[0]), line_cmp);
	for (size_t i = 0; i < n; i++) {
		size_t k = strlen(lines[i]);

		if (len + k + 2 > size)
			break;
		memcpy(buf + len, lines[i], k);
		len += k;
		buf[len++] = '\n';
		buf[len] = '\0';
	}
}

struct want {
	uint64_t data;
	uint32_t events;
	bool seen;
};

/* epoll_wait(ep, timeout 0) must report exactly the n events of want. */
static void expect_events(const char *what, int ep, struct want *want, int n)
{
	struct epoll_event got[16];
	int k = epoll_wait(ep, got, 16, 0);

	for (int j = 0; j < n; j++)
		want[j].seen = false;
	CHECK(k == n, "%s: epoll_wait reported %d events, want %d", what, k, n);
	for (int i = 0; i < k; i++) {
		int j;

		for (j = 0; j < n && (want[j].seen || want[j].data != got[i].data.u64); j++)
			;
		if (j == n) {
			test_fail("%s: unexpected event %#x with data %#llx", what, got[i].events,
				  (unsigned long long)got[i].data.u64);
			continue;
		}
		want[j].seen = true;
		CHECK(got[i].events == want[j].events, "%s: data %#llx came with events %#x, want %#x",
		      what, (unsigned long long)want[j].data, got[i].events, want[j].events);
	}
}

static int run_wait(void)
{
	int ep, inner, waiter, level[2], edge[2], oneshot[2], excl[2], nested[2], empty[2];
	char before[3][2048], after[3][2048];
	struct epoll_event ev;
	int spurious = 0;
	char c;

	test_wake_handler(0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	inner = epoll_create1(0);
	waiter = epoll_create1(0);
	MUST(ep);
	MUST(inner);
	MUST(waiter);
	MUST(dup2(ep, DUP_FD));
	MUST(pipe(level));
	MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, edge));
	MUST(pipe(oneshot));
	MUST(pipe(excl));
	MUST(pipe(nested));
	MUST(pipe(empty));

	/* The one-shot fires once, before anything else is registered. */
	must_write(oneshot[1], "o");
	must_add(ep, oneshot[0], EPOLLIN | EPOLLONESHOT, ONESHOT_DATA);
	if (epoll_wait(ep, &ev, 1, 0) != 1 || ev.data.u64 != ONESHOT_DATA)
		test_abort("the one-shot registration did not fire");
	must_write(level[1], "l");
	must_add(ep, level[0], EPOLLIN, (uint64_t)(uintptr_t)&level_tag);
	must_add(ep, edge[0], EPOLLIN | EPOLLET, (uint64_t)(uintptr_t)&edge_tag);
	must_write(edge[1], "e");
	must_write(excl[1], "x");
	must_add(ep, excl[0], EPOLLIN | EPOLLEXCLUSIVE, (uint64_t)(uintptr_t)&exclusive_tag);
	must_write(nested[1], "n");
	must_add(inner, nested[0], EPOLLIN, INNER_DATA);
	must_add(ep, inner, EPOLLIN, NESTED_DATA);
	must_add(waiter, empty[0], EPOLLIN, WAITER_DATA);
	registrations(ep, before[0], sizeof(before[0]));
	registrations(inner, before[1], sizeof(before[1]));
	registrations(waiter, before[2], sizeof(before[2]));

	test_ready();
	while (!test_woken && spurious <= 1) {
		sig_atomic_t signals = test_signals;
		int k = epoll_wait(waiter, &ev, 1, -1);

		if (k != -1 || errno != EINTR) {
			test_fail("epoll_wait returned %d (%m), want -1 EINTR", k);
			break;
		}
		if (test_signals == signals)
			spurious++;
	}
	CHECK(spurious <= 1, "epoll_wait returned EINTR %d times with no handler run, want <= 1",
	      spurious);

	registrations(ep, after[0], sizeof(after[0]));
	registrations(inner, after[1], sizeof(after[1]));
	registrations(waiter, after[2], sizeof(after[2]));
	for (int i = 0; i < 3; i++)
		CHECK(strcmp(before[i], after[i]) == 0, "instance %d registrations:\n%swant:\n%s", i,
		      after[i], before[i]);
	CHECK(strstr(after[0], "events: 40000000") != NULL,
	      "the one-shot registration is not disarmed:\n%s", after[0]);
	CHECK_EQ("fd 100 is the instance", fcntl(DUP_FD, F_GETFD), 0);
	CHECK_EQ("FD_CLOEXEC of the instance", fcntl(ep, F_GETFD), FD_CLOEXEC);

	{
		struct want first[] = {
			{ (uint64_t)(uintptr_t)&level_tag, EPOLLIN },
			{ (uint64_t)(uintptr_t)&edge_tag, EPOLLIN },
			{ (uint64_t)(uintptr_t)&exclusive_tag, EPOLLIN },
			{ NESTED_DATA, EPOLLIN },
		};
		struct want again[] = {
			{ (uint64_t)(uintptr_t)&level_tag, EPOLLIN },
			{ (uint64_t)(uintptr_t)&exclusive_tag, EPOLLIN },
			{ NESTED_DATA, EPOLLIN },
		};
		struct want inner_want[] = { { INNER_DATA, EPOLLIN } };
		struct want rearmed[] = {
			{ (uint64_t)(uintptr_t)&level_tag, EPOLLIN },
			{ (uint64_t)(uintptr_t)&exclusive_tag, EPOLLIN },
			{ NESTED_DATA, EPOLLIN },
			{ ONESHOT_DATA, EPOLLIN },
		};
		struct want edge_again[] = {
			{ (uint64_t)(uintptr_t)&level_tag, EPOLLIN },
			{ (uint64_t)(uintptr_t)&edge_tag, EPOLLIN },
			{ (uint64_t)(uintptr_t)&exclusive_tag, EPOLLIN },
			{ NESTED_DATA, EPOLLIN },
		};
		struct want woken[] = { { WAITER_DATA, EPOLLIN } };

		expect_events("first wait", ep, first, 4);
		expect_events("second wait", ep, again, 3);
		expect_events("inner instance", inner, inner_want, 1);
		ev = (struct epoll_event){ .events = EPOLLIN | EPOLLONESHOT, .data.u64 = ONESHOT_DATA };
		CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, oneshot[0], &ev) == 0, "re-arming: %m");
		expect_events("re-armed", ep, rearmed, 4);
		expect_events("after the one-shot", ep, again, 3);
		must_write(edge[1], "E");
		expect_events("a new edge", ep, edge_again, 4);
		expect_events("waiter before bytes", waiter, woken, 0);
		must_write(empty[1], "w");
		expect_events("waiter", waiter, woken, 1);
	}
	CHECK(read(level[0], &c, 1) == 1 && c == 'l', "the level-triggered pipe lost its byte");
	CHECK(read(oneshot[0], &c, 1) == 1 && c == 'o', "the one-shot pipe lost its byte");
	return test_done();
}

static int run_stale(void)
{
	int ep, p[2], other[2];
	struct epoll_event ev;

	test_wake_handler(0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	MUST(ep);
	MUST(pipe(p));
	MUST(pipe(other));
	/* Clear of fd 5, whatever numbers the pipes got. */
	for (int i = 0; i < 2; i++) {
		p[i] = fcntl(p[i], F_DUPFD, 10);
		other[i] = fcntl(other[i], F_DUPFD, 10);
		MUST(p[i]);
		MUST(other[i]);
	}
	close(5);
	MUST(dup2(p[0], 5));
	must_add(ep, 5, EPOLLIN, (uint64_t)(uintptr_t)&level_tag);
	/* fd 5 now holds another pipe; the registered one lives on at p[0]. */
	MUST(dup2(other[0], 5));
	test_ready();
	test_wait_pause();
	must_write(p[1], "s");
	CHECK(epoll_wait(ep, &ev, 1, 1000) == 1 && ev.data.u64 == (uint64_t)(uintptr_t)&level_tag,
	      "the instance lost its registration");
	return test_done();
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "wait";

	test_init("fd-epoll");
	if (strcmp(mode, "wait") == 0)
		return run_wait();
	if (strcmp(mode, "stale") == 0)
		return run_stale();
	test_abort("usage: fd-epoll wait|stale");
}

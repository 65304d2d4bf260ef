/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A process that checks it survived its migrations. Usage:
 *
 *	migrant FILE HEAP_MIB
 *
 * It fills HEAP_MIB MiB of heap with a pattern, opens FILE for appending,
 * and runs on an interval timer (SIGALRM every 20 ms): each tick appends
 * "tick N PID" to FILE and rewrites one heap page, keeping a running
 * checksum. SIGUSR1 is counted by a handler. On SIGTERM it checks
 * everything it can about itself: the heap against the checksum and the
 * pattern, its PID, its file's offset and flags, its handlers and the timer
 * still armed, then appends "verified ok usr1=K ticks=N" (or "verified BAD
 * what") and exits 0 (or 1).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define PAGE 4096

static volatile sig_atomic_t ticks_pending, usr1, term;

static void on_alarm(int sig)
{
	(void)sig;
	ticks_pending++;
}

static void on_usr1(int sig)
{
	(void)sig;
	usr1++;
}

static void on_term(int sig)
{
	(void)sig;
	term = 1;
}

static uint64_t page_value(uint64_t page, uint64_t gen)
{
	return (page * 0x9e3779b97f4a7c15ull) ^ (gen * 0xbf58476d1ce4e5b9ull);
}

static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(int fd, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (write(fd, line, (size_t)n) != n)
		exit(3);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { 0 };
	struct itimerval it = { .it_interval = { 0, 20000 }, .it_value = { 0, 20000 } };
	uint64_t *heap, *gens, npages, tick = 0, sum = 0;
	pid_t pid = getpid();
	sigset_t block, old;
	int fd;

	if (argc != 3) {
		fprintf(stderr, "usage: migrant FILE HEAP_MIB\n");
		return 2;
	}
	npages = strtoull(argv[2], NULL, 10) * (1 << 20) / PAGE;
	if (npages == 0)
		npages = 1;
	heap = malloc(npages * PAGE);
	gens = calloc(npages, sizeof(*gens));
	if (!heap || !gens)
		return 2;
	for (uint64_t p = 0; p < npages; p++)
		for (size_t w = 0; w < PAGE / 8; w++)
			heap[p * (PAGE / 8) + w] = page_value(p, 0) + w;
	fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return 2;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
	say(fd, "start %d pages=%llu\n", (int)pid, (unsigned long long)npages);

	sigemptyset(&block);
	sigaddset(&block, SIGALRM);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &old);
	while (!term) {
		while (!ticks_pending && !term)
			sigsuspend(&old);
		while (ticks_pending > 0) {
			uint64_t p;

			ticks_pending--;
			tick++;
			p = (tick * 7919) % npages;
			gens[p]++;
			for (size_t w = 0; w < PAGE / 8; w++)
				heap[p * (PAGE / 8) + w] = page_value(p, gens[p]) + w;
			sum += page_value(p, gens[p]);
			say(fd, "tick %llu %d\n", (unsigned long long)tick, (int)pid);
		}
	}

	/* Check everything. */
	{
		uint64_t check = 0;
		struct sigaction cur;
		struct itimerval left;
		int fl = fcntl(fd, F_GETFL);

		for (uint64_t p = 0; p < npages; p++)
			for (size_t w = 0; w < PAGE / 8; w++)
				if (heap[p * (PAGE / 8) + w] != page_value(p, gens[p]) + w) {
					say(fd, "verified BAD heap page %llu\n", (unsigned long long)p);
					return 1;
				}
		for (uint64_t p = 0; p < npages; p++)
			for (uint64_t g = 1; g <= gens[p]; g++)
				check += page_value(p, g);
		if (check != sum) {
			say(fd, "verified BAD checksum\n");
			return 1;
		}
		if (getpid() != pid) {
			say(fd, "verified BAD pid %d, was %d\n", (int)getpid(), (int)pid);
			return 1;
		}
		if (!(fl & O_APPEND) || !(fcntl(fd, F_GETFD) & FD_CLOEXEC)) {
			say(fd, "verified BAD file flags %#x\n", fl);
			return 1;
		}
		if (sigaction(SIGUSR1, NULL, &cur) < 0 || cur.sa_handler != on_usr1 ||
		    !(cur.sa_flags & SA_RESTART)) {
			say(fd, "verified BAD SIGUSR1 handler\n");
			return 1;
		}
		if (getitimer(ITIMER_REAL, &left) < 0 || left.it_interval.tv_usec != 20000) {
			say(fd, "verified BAD timer\n");
			return 1;
		}
		say(fd, "verified ok usr1=%d ticks=%llu\n", (int)usr1, (unsigned long long)tick);
	}
	return 0;
}

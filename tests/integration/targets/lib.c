/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Code shared by the integration targets: ready signalling, the SIGUSR1
 * wake-up, failure collection, the verdict and small /proc readers.
 */
#include "lib.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t test_woken;
volatile sig_atomic_t test_signals;

static const char *test_name = "target";
static unsigned failures;

#define MAX_FDS 4096
static int fds_ready[MAX_FDS];
static int nfds_ready = -1;
static int fds_ignored[64];
static int nfds_ignored;

void test_init(const char *name)
{
	test_name = name;
	setvbuf(stdout, NULL, _IONBF, 0);
	setvbuf(stderr, NULL, _IONBF, 0);
}

static void __attribute__((format(printf, 2, 0))) vmsg(const char *kind, const char *fmt, va_list ap)
{
	char line[1024];
	int n;

	n = snprintf(line, sizeof(line), "%s: %s", test_name, kind);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	dprintf(STDERR_FILENO, "%s\n", line);
}

void test_fail(const char *fmt, ...)
{
	va_list ap;

	failures++;
	va_start(ap, fmt);
	vmsg("FAIL: ", fmt, ap);
	va_end(ap);
}

void test_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg("", fmt, ap);
	va_end(ap);
}

void test_skip(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg("SKIP: ", fmt, ap);
	va_end(ap);
	exit(TEST_SKIP);
}

void test_abort(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg("setup failed: ", fmt, ap);
	va_end(ap);
	exit(1);
}

unsigned test_failures(void)
{
	return failures;
}

static void on_wake(int sig)
{
	(void)sig;
	test_woken = 1;
	test_signals++;
}

void test_wake_handler(int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_wake;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	MUST(sigaction(SIGUSR1, &sa, NULL));
}

/* Open fds, sorted, without the one used to list them; count or -1. */
static int list_fds(int *out, int max)
{
	char buf[4096];
	int dfd, n = 0;

	dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	for (;;) {
		long len = syscall(SYS_getdents64, dfd, buf, sizeof(buf));
		long off;

		if (len < 0) {
			close(dfd);
			return -1;
		}
		if (len == 0)
			break;
		for (off = 0; off < len;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);
			char *end;
			long fd;

			off += d->d_reclen;
			if (d->d_name[0] == '.')
				continue;
			fd = strtol(d->d_name, &end, 10);
			if (*end || fd == dfd || n >= max)
				continue;
			out[n++] = (int)fd;
		}
	}
	close(dfd);
	/* insertion sort: the lists are short */
	for (int i = 1; i < n; i++) {
		int v = out[i], j = i;

		while (j > 0 && out[j - 1] > v) {
			out[j] = out[j - 1];
			j--;
		}
		out[j] = v;
	}
	return n;
}

void test_ready(void)
{
	const char *path = getenv("GHOST_TEST_READY");
	static const char line[] = "ready\n";
	int fd;

	nfds_ready = list_fds(fds_ready, MAX_FDS);
	if (!path)
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0)
		test_abort("cannot open ready file '%s': %m", path);
	if (write_all(fd, line, sizeof(line) - 1) < 0)
		test_abort("cannot write ready file '%s': %m", path);
	close(fd);
}

void test_fd_ignore(int fd)
{
	if (nfds_ignored < (int)(sizeof(fds_ignored) / sizeof(fds_ignored[0])))
		fds_ignored[nfds_ignored++] = fd;
}

static bool fd_ignored(int fd)
{
	for (int i = 0; i < nfds_ignored; i++)
		if (fds_ignored[i] == fd)
			return true;
	return false;
}

static bool fd_in(const int *list, int n, int fd)
{
	for (int i = 0; i < n; i++)
		if (list[i] == fd)
			return true;
	return false;
}

static void check_fds(void)
{
	static int now[MAX_FDS];
	int n;

	if (nfds_ready < 0)
		return;
	n = list_fds(now, MAX_FDS);
	if (n < 0) {
		test_fail("cannot list /proc/self/fd: %m");
		return;
	}
	for (int i = 0; i < n; i++)
		if (!fd_ignored(now[i]) && !fd_in(fds_ready, nfds_ready, now[i]))
			test_fail("fd %d is open but was not at ready time", now[i]);
	for (int i = 0; i < nfds_ready; i++)
		if (!fd_ignored(fds_ready[i]) && !fd_in(now, n, fds_ready[i]))
			test_fail("fd %d was open at ready time but is not any more", fds_ready[i]);
}

void test_wait_pause(void)
{
	while (!test_woken) {
		sig_atomic_t before = test_signals;
		int r = pause();

		if (r != -1 || errno != EINTR)
			test_fail("pause() returned %d (%m), want -1 EINTR", r);
		else if (test_signals == before)
			test_fail("pause() returned EINTR but no signal handler ran");
	}
}

const char *test_stage(void)
{
	static char stage[32];
	const char *path = getenv("GHOST_TEST_STAGE");
	ssize_t n;

	if (!path)
		return "original";
	n = file_read(path, stage, sizeof(stage));
	if (n <= 0)
		return "original";
	stage[strcspn(stage, "\n")] = 0;
	return stage;
}

bool test_restored(void)
{
	return strcmp(test_stage(), "restored") == 0;
}

int test_done(void)
{
	const char *path = getenv("GHOST_TEST_RESULT");

	check_fds();
	if (failures)
		test_log("%u check(s) failed", failures);
	if (path) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);

		if (fd >= 0) {
			const char *v = failures ? "fail\n" : "pass\n";

			if (write_all(fd, v, strlen(v)) < 0)
				test_log("cannot write result file: %m");
			close(fd);
		}
	}
	return failures ? 1 : 0;
}

/* --- helpers ------------------------------------------------------------- */

uint64_t pattern_word(uint64_t seed, uint64_t i)
{
	/* splitmix64 of (seed, i), with bit 0 forced so a word is never zero */
	uint64_t z = seed * 0x9e3779b97f4a7c15ull + i + 1;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return (z ^ (z >> 31)) | 1;
}

void pattern_fill(void *p, size_t len, uint64_t seed)
{
	unsigned char *c = p;

	for (size_t i = 0; i < len; i += 8) {
		uint64_t w = pattern_word(seed, i / 8);
		size_t n = len - i < 8 ? len - i : 8;

		memcpy(c + i, &w, n);
	}
}

ssize_t pattern_check(const void *p, size_t len, uint64_t seed)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < len; i += 8) {
		uint64_t w = pattern_word(seed, i / 8);
		size_t n = len - i < 8 ? len - i : 8;

		if (memcmp(c + i, &w, n)) {
			const unsigned char *wb = (const unsigned char *)&w;

			for (size_t k = 0; k < n; k++)
				if (c[i + k] != wb[k])
					return (ssize_t)(i + k);
		}
	}
	return -1;
}

ssize_t zero_check(const void *p, size_t len)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < len; i++)
		if (c[i])
			return (ssize_t)i;
	return -1;
}

ssize_t file_read(const char *path, char *buf, size_t size)
{
	size_t n = 0;
	int fd;

	if (size == 0)
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while (n < size - 1) {
		ssize_t r = read(fd, buf + n, size - 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;

			close(fd);
			errno = e;
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = 0;
	return (ssize_t)n;
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t r = write(fd, p, len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

ssize_t read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t n = 0;

	while (n < len) {
		ssize_t r = read(fd, p + n, len - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	return (ssize_t)n;
}

int proc_status(const char *key, char *buf, size_t size)
{
	static char text[8192];
	size_t klen = strlen(key);
	char *line;

	if (file_read("/proc/self/status", text, sizeof(text)) < 0)
		return -1;
	for (line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			const char *v = line + klen + 1;
			size_t n;

			while (*v == ' ' || *v == '\t')
				v++;
			n = strcspn(v, "\n");
			if (n >= size)
				n = size - 1;
			memcpy(buf, v, n);
			buf[n] = 0;
			return 0;
		}
	}
	return -1;
}

unsigned long long proc_stat_field(int n)
{
	static char text[4096];
	char *p;
	int field;

	if (file_read("/proc/self/stat", text, sizeof(text)) < 0)
		return 0;
	/* comm (field 2) may hold spaces and parentheses: start after the last ')' */
	p = strrchr(text, ')');
	if (!p || n < 3)
		return 0;
	p++;
	for (field = 3; field <= n; field++) {
		while (*p == ' ')
			p++;
		if (field == n)
			return strtoull(p, NULL, 10);
		p = strchr(p, ' ');
		if (!p)
			return 0;
	}
	return 0;
}

/* Walk a /proc/self file whose entries start with "start-end ". */
static int find_entry(const char *path, const void *addr, const char *key, char *buf, size_t size)
{
	static char text[1 << 20];
	uintptr_t a = (uintptr_t)addr;
	bool inside = false;
	char *line, *next;

	if (file_read(path, text, sizeof(text)) < 0)
		return -1;
	for (line = text; *line; line = next) {
		unsigned long start, end;
		char *nl = strchr(line, '\n');

		next = nl ? nl + 1 : line + strlen(line);
		if (nl)
			*nl = 0;
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 && strchr(line, '-') &&
		    strchr(line, '-') < strchr(line, ' ')) {
			if (inside)
				return -1;
			inside = a >= start && a < end;
			if (inside && !key) {
				snprintf(buf, size, "%s", line);
				return 0;
			}
			continue;
		}
		if (inside && key && strncmp(line, key, strlen(key)) == 0) {
			const char *v = line + strlen(key);

			while (*v == ' ' || *v == '\t')
				v++;
			snprintf(buf, size, "%s", v);
			return 0;
		}
	}
	return -1;
}

int maps_line(const void *addr, char *buf, size_t size)
{
	return find_entry("/proc/self/maps", addr, NULL, buf, size);
}

int maps_perms(const void *addr, char perms[5])
{
	char line[512];
	const char *sp;

	if (maps_line(addr, line, sizeof(line)) < 0)
		return -1;
	sp = strchr(line, ' ');
	if (!sp || strlen(sp) < 5)
		return -1;
	memcpy(perms, sp + 1, 4);
	perms[4] = 0;
	return 0;
}

int smaps_vmflags(const void *addr, char *buf, size_t size)
{
	return find_entry("/proc/self/smaps", addr, "VmFlags:", buf, size);
}

bool vmflags_has(const char *flags, const char *flag)
{
	for (const char *p = flags; *p;) {
		size_t n;

		while (*p == ' ')
			p++;
		n = strcspn(p, " ");
		if (n == strlen(flag) && strncmp(p, flag, n) == 0)
			return true;
		p += n;
	}
	return false;
}

double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers shared by the benchmark programs: time, medians, lists, target
 * processes and the cleanup registry (see bench.h).
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include <linux/magic.h>

#include "bench.h"

#define MAX_PIDS     64
#define MAX_DIRS     8
#define RM_MAX_DEPTH 8

static volatile pid_t tracked_pids[MAX_PIDS];
static char tracked_dirs[MAX_DIRS][PATH_MAX];
static volatile sig_atomic_t tracked_dirs_n;

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

double bench_busy_ms(void)
{
	unsigned long long user, nice, sys, idle, iowait, irq, softirq;
	char line[256];
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/stat", "re");
	int n;

	if (!f)
		return NAN;
	n = fgets(line, sizeof(line), f)
		    ? sscanf(line, "cpu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys,
			     &idle, &iowait, &irq, &softirq)
		    : 0;
	fclose(f);
	if (n != 7 || hz <= 0)
		return NAN;
	return (double)(user + nice + sys + irq + softirq) * 1000.0 / (double)hz;
}

unsigned bench_ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (unsigned)n : 1;
}

double bench_ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bench_median(double *v, size_t n)
{
	size_t m = 0;

	for (size_t i = 0; i < n; i++)
		if (!isnan(v[i]))
			v[m++] = v[i];
	if (m == 0)
		return NAN;
	qsort(v, m, sizeof(*v), cmp_double);
	if (m % 2)
		return v[m / 2];
	return (v[m / 2 - 1] + v[m / 2]) / 2;
}

int bench_parse_list(const char *s, uint64_t *v, size_t max, size_t *ret_n)
{
	size_t n = 0;

	if (!s || !*s)
		return -EINVAL;
	for (;;) {
		char *end;
		unsigned long long x;

		if (*s < '0' || *s > '9')
			return -EINVAL;
		errno = 0;
		x = strtoull(s, &end, 10);
		if (errno || end == s || n == max)
			return -EINVAL;
		v[n++] = x;
		if (*end == '\0')
			break;
		if (*end != ',')
			return -EINVAL;
		s = end + 1;
	}
	*ret_n = n;
	return 0;
}

static void _printf_(1, 0) verr(const char *fmt, va_list ap)
{
	fflush(stdout);
	fputs("bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void bench_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr(fmt, ap);
	va_end(ap);
}

int bench_err_r(int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr(fmt, ap);
	va_end(ap);
	return r;
}

int bench_track_pid(pid_t pid)
{
	for (size_t i = 0; i < MAX_PIDS; i++)
		if (tracked_pids[i] == 0) {
			tracked_pids[i] = pid;
			return 0;
		}
	return -ENOSPC;
}

void bench_untrack_pid(pid_t pid)
{
	for (size_t i = 0; i < MAX_PIDS; i++)
		if (tracked_pids[i] == pid)
			tracked_pids[i] = 0;
}

int bench_track_dir(const char *path)
{
	int n = tracked_dirs_n;

	if (n >= MAX_DIRS || strlen(path) >= PATH_MAX)
		return -ENOSPC;
	memcpy(tracked_dirs[n], path, strlen(path) + 1);
	tracked_dirs_n = n + 1;
	return 0;
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static int empty_dir(int dfd, int depth);

/* Remove one entry of the directory dfd, a subdirectory with its contents. */
static int remove_entry(int dfd, const char *name, int depth)
{
	int sub;

	if (unlinkat(dfd, name, 0) == 0)
		return 1;
	if (errno != EISDIR)
		return 0;
	sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub < 0)
		return 0;
	empty_dir(sub, depth + 1);
	close(sub);
	return unlinkat(dfd, name, AT_REMOVEDIR) == 0;
}

/* Empty the directory open at dfd; only syscalls, so safe in a signal handler. */
static int empty_dir(int dfd, int depth)
{
	char buf[4096] __attribute__((aligned(8)));
	int removed;

	if (depth > RM_MAX_DEPTH)
		return -ELOOP;
	/* entries removed while reading may hide others: read again until a pass removes none */
	do {
		long n;

		removed = 0;
		if (lseek(dfd, 0, SEEK_SET) < 0)
			return -errno;
		while ((n = syscall(SYS_getdents64, dfd, buf, sizeof(buf))) > 0) {
			for (long off = 0; off < n;) {
				struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);

				off += d->d_reclen;
				if (strcmp(d->d_name, ".") && strcmp(d->d_name, ".."))
					removed += remove_entry(dfd, d->d_name, depth);
			}
		}
		if (n < 0)
			return -errno;
	} while (removed > 0);
	return 0;
}

int bench_rm_rf(const char *path)
{
	int fd, r;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	r = empty_dir(fd, 0);
	close(fd);
	if (rmdir(path) < 0 && errno != ENOENT)
		return -errno;
	return r;
}

/* Parse decimal PIDs separated by spaces from buf[0..n). */
static int kill_listed(const char *buf, ssize_t n)
{
	int killed = 0;
	pid_t pid = 0;

	for (ssize_t i = 0; i <= n; i++) {
		if (i < n && buf[i] >= '0' && buf[i] <= '9') {
			pid = pid * 10 + (buf[i] - '0');
			continue;
		}
		if (pid > 0) {
			kill(pid, SIGKILL);
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
				;
			bench_untrack_pid(pid);
			killed++;
		}
		pid = 0;
	}
	return killed;
}

int bench_kill_children(void)
{
	int total = 0;

	/* killing a child may hand us its orphans: repeat until none is left */
	for (int round = 0; round < 16; round++) {
		char buf[4096];
		ssize_t n;
		int fd, k;

		fd = open("/proc/thread-self/children", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			break;
		n = read(fd, buf, sizeof(buf));
		close(fd);
		if (n <= 0)
			break;
		k = kill_listed(buf, n);
		if (k == 0)
			break;
		total += k;
	}
	/* zombies are not listed; reap them */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	return total;
}

static const int cleanup_sigs[] = { SIGINT, SIGTERM, SIGHUP };

void bench_signals_block(sigset_t *ret_old)
{
	sigset_t set;

	sigemptyset(&set);
	for (size_t i = 0; i < ARRAY_SIZE(cleanup_sigs); i++)
		sigaddset(&set, cleanup_sigs[i]);
	sigprocmask(SIG_BLOCK, &set, ret_old);
}

void bench_signals_restore(const sigset_t *old)
{
	sigprocmask(SIG_SETMASK, old, NULL);
}

void bench_cleanup(void)
{
	int saved = errno;

	for (size_t i = 0; i < MAX_PIDS; i++) {
		pid_t pid = tracked_pids[i];

		if (pid > 0) {
			kill(pid, SIGKILL);
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
				;
			tracked_pids[i] = 0;
		}
	}
	bench_kill_children();
	for (int i = tracked_dirs_n - 1; i >= 0; i--)
		bench_rm_rf(tracked_dirs[i]);
	tracked_dirs_n = 0;
	errno = saved;
}

static void on_signal(int sig)
{
	bench_cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

int bench_install_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigfillset(&sa.sa_mask);
	for (size_t i = 0; i < ARRAY_SIZE(cleanup_sigs); i++)
		if (sigaction(cleanup_sigs[i], &sa, NULL) < 0)
			return -errno;
	return 0;
}

char *bench_path_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *p = malloc(la + lb + 2);

	if (!p)
		return NULL;
	memcpy(p, a, la);
	p[la] = '/';
	memcpy(p + la + 1, b, lb + 1);
	return p;
}

int bench_mkdtemp(const char *parent, char **ret_path)
{
	_cleanup_free_ char *p = bench_path_join(parent, "ghost-bench.XXXXXX");
	int r;

	if (!p)
		return -ENOMEM;
	if (!mkdtemp(p))
		return -errno;
	r = bench_track_dir(p);
	if (r < 0) {
		rmdir(p);
		return r;
	}
	*ret_path = p;
	p = NULL;
	return 0;
}

int bench_self_dir(char **ret)
{
	char buf[PATH_MAX];
	ssize_t n;
	char *slash;

	n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (!slash)
		return -EINVAL;
	*slash = '\0';
	*ret = strdup(buf);
	return *ret ? 0 : -ENOMEM;
}

int bench_is_tmpfs(const char *path)
{
	struct statfs sfs;

	if (statfs(path, &sfs) < 0)
		return -errno;
	return sfs.f_type == TMPFS_MAGIC;
}

static void child_stdio_null(void)
{
	int fd = open("/dev/null", O_RDWR);

	if (fd < 0)
		_exit(127);
	for (int i = 0; i < 3; i++)
		if (dup2(fd, i) < 0)
			_exit(127);
}

/*
 * fork() with all signals blocked until the child is tracked, so that the
 * cleanup handler always knows it; the child gets default handlers back.
 */
int bench_fork(pid_t *ret_pid)
{
	sigset_t all, old;
	pid_t pid;
	int r;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid < 0) {
		r = -errno;
		sigprocmask(SIG_SETMASK, &old, NULL);
		return r;
	}
	if (pid == 0) {
		for (size_t i = 0; i < ARRAY_SIZE(cleanup_sigs); i++)
			signal(cleanup_sigs[i], SIG_DFL);
		sigprocmask(SIG_SETMASK, &old, NULL);
		*ret_pid = 0;
		return 0;
	}
	r = bench_track_pid(pid);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return r;
	}
	*ret_pid = pid;
	return 0;
}

int bench_spawn_target(const char *const *argv, const char *ready_path, pid_t *ret_pid)
{
	pid_t pid;
	int r;

	if (unlink(ready_path) < 0 && errno != ENOENT)
		return -errno;
	r = bench_fork(&pid);
	if (r < 0)
		return r;
	if (pid == 0) {
		child_stdio_null();
		close_range(3, ~0U, 0);
		if (setenv("GHOST_TEST_READY", ready_path, 1) < 0 || chdir("/") < 0)
			_exit(127);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	*ret_pid = pid;
	return 0;
}

static bool warm_disabled;

void bench_warm_disable(void)
{
	warm_disabled = true;
}

static void warm_here(size_t bytes)
{
	long page = sysconf(_SC_PAGESIZE);
	char *p;

	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return; /* only the figures suffer */
	for (size_t off = 0; off < bytes; off += (size_t)page)
		p[off] = 1;
	munmap(p, bytes);
}

void bench_warm_memory(size_t bytes)
{
	pid_t kids[CPU_SETSIZE];
	size_t nkids = 0;
	cpu_set_t mine;

	if (warm_disabled || bytes == 0)
		return;
	if (sched_getaffinity(0, sizeof(mine), &mine) < 0) {
		warm_here(bytes);
		return;
	}
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		cpu_set_t one;
		pid_t pid;

		if (!CPU_ISSET(cpu, &mine))
			continue;
		if (bench_fork(&pid) < 0) {
			warm_here(bytes); /* only the figures suffer */
			break;
		}
		if (pid == 0) {
			/* Pinned, or the pages would land in some other CPU's list. */
			CPU_ZERO(&one);
			CPU_SET(cpu, &one);
			if (sched_setaffinity(0, sizeof(one), &one) == 0)
				warm_here(bytes);
			_exit(0);
		}
		kids[nkids++] = pid;
	}
	for (size_t i = 0; i < nkids; i++) {
		while (waitpid(kids[i], NULL, 0) < 0 && errno == EINTR)
			;
		bench_untrack_pid(kids[i]);
	}
}

void bench_sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int bench_wait_ready(pid_t pid, const char *ready_path, unsigned timeout_ms)
{
	uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000ULL;

	for (;;) {
		char buf[16];
		int fd, status;
		ssize_t n = 0;

		fd = open(ready_path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			n = read(fd, buf, sizeof(buf) - 1);
			close(fd);
		}
		if (n == 6 && !memcmp(buf, "ready\n", 6)) {
			unlink(ready_path);
			return 0;
		}
		if (waitpid(pid, &status, WNOHANG) == pid) {
			bench_untrack_pid(pid);
			return -ECHILD;
		}
		if (bench_now_ns() > deadline)
			return -ETIMEDOUT;
		bench_sleep_ms(1);
	}
}

int bench_wait_exit(pid_t pid, unsigned timeout_ms, int *ret_status)
{
	uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000ULL;

	for (;;) {
		int status;
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid) {
			bench_untrack_pid(pid);
			if (ret_status)
				*ret_status = status;
			return 0;
		}
		if (r < 0 && errno != EINTR) {
			int e = -errno;

			bench_untrack_pid(pid);
			return e;
		}
		if (bench_now_ns() > deadline) {
			bench_kill_reap(pid);
			return -ETIMEDOUT;
		}
		bench_sleep_ms(1);
	}
}

void bench_kill_reap(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	bench_untrack_pid(pid);
}

int bench_verify_target(pid_t pid, unsigned timeout_ms)
{
	int r, status;

	if (kill(pid, SIGUSR1) < 0) {
		r = -errno;
		bench_kill_reap(pid);
		return r;
	}
	r = bench_wait_exit(pid, timeout_ms, &status);
	if (r < 0)
		return r;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -EBADMSG;
	return 0;
}

int bench_run(const char *const *argv, char **ret_out, int *ret_status)
{
	_cleanup_free_ char *out = NULL;
	size_t len = 0, cap = 0;
	int p[2], status, r;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	r = bench_fork(&pid);
	if (r < 0) {
		close(p[0]);
		close(p[1]);
		return r;
	}
	if (pid == 0) {
		if (dup2(p[1], STDOUT_FILENO) < 0)
			_exit(127);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			char *n_out = realloc(out, cap + 65536);

			if (!n_out) {
				close(p[0]);
				bench_kill_reap(pid);
				return -ENOMEM;
			}
			out = n_out;
			cap += 65536;
		}
		n = read(p[0], out + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(p[0]);
	out[len] = '\0';
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			r = -errno;
			bench_untrack_pid(pid);
			return r;
		}
	bench_untrack_pid(pid);
	*ret_status = status;
	if (ret_out) {
		*ret_out = out;
		out = NULL;
	}
	return 0;
}

struct capture {
	int fd;
	char *buf;
	size_t len, cap;
};

/* Read what is there into c; 1 at the end of the stream, 0, or -errno. */
static int capture_read(struct capture *c)
{
	ssize_t n;

	if (c->cap - c->len < 4096) {
		char *grown = realloc(c->buf, c->cap + 65536);

		if (!grown)
			return -ENOMEM;
		c->buf = grown;
		c->cap += 65536;
	}
	n = read(c->fd, c->buf + c->len, c->cap - c->len - 1);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -errno;
	if (n == 0)
		return 1;
	c->len += (size_t)n;
	return 0;
}

static char *capture_take(struct capture *c)
{
	char *s = c->buf ? c->buf : calloc(1, 1);

	if (s)
		s[c->len] = '\0';
	c->buf = NULL;
	return s;
}

int bench_cmd(const char *const *argv, unsigned flags, unsigned timeout_ms, char **ret_out,
	      char **ret_err, double *ret_ms)
{
	uint64_t t0 = bench_now_ns(), deadline = t0 + (uint64_t)timeout_ms * 1000000ULL;
	struct capture cap[2] = { { .fd = -1 }, { .fd = -1 } };
	int p[2][2] = { { -1, -1 }, { -1, -1 } }, r = 0, status;
	bool want[2] = { ret_out != NULL, ret_err != NULL };
	pid_t pid;

	for (int i = 0; i < 2; i++)
		if (want[i] && pipe2(p[i], O_CLOEXEC) < 0) {
			r = -errno;
			goto fail_pipes;
		}
	r = bench_fork(&pid);
	if (r < 0)
		goto fail_pipes;
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (flags & BENCH_CMD_OWN_PGRP)
			setpgid(0, 0);
		if (null < 0 || dup2(null, STDIN_FILENO) < 0 ||
		    dup2(want[0] ? p[0][1] : null, STDOUT_FILENO) < 0 ||
		    (want[1] && dup2(p[1][1], STDERR_FILENO) < 0))
			_exit(127);
		execvp(argv[0], (char *const *)argv);
		fprintf(stderr, "bench: cannot run '%s': %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	for (int i = 0; i < 2; i++) {
		cap[i].fd = p[i][0];
		p[i][1] = safe_close(p[i][1]);
	}
	while (cap[0].fd >= 0 || cap[1].fd >= 0) {
		struct pollfd pfd[2] = { { .fd = cap[0].fd, .events = POLLIN },
					 { .fd = cap[1].fd, .events = POLLIN } };
		uint64_t now = bench_now_ns();
		int n;

		if (now >= deadline) {
			r = -ETIMEDOUT;
			break;
		}
		n = poll(pfd, 2, (int)((deadline - now) / 1000000ULL) + 1);
		if (n < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
		for (int i = 0; i < 2 && n > 0 && r >= 0; i++) {
			if (cap[i].fd < 0 || !pfd[i].revents)
				continue;
			r = capture_read(&cap[i]);
			if (r == 1) {
				cap[i].fd = safe_close(cap[i].fd);
				r = 0;
			}
		}
		if (r < 0)
			break;
	}
	for (int i = 0; i < 2; i++)
		cap[i].fd = safe_close(cap[i].fd);
	if (r < 0) {
		bench_kill_reap(pid);
		goto out;
	}
	{
		uint64_t now = bench_now_ns();

		r = bench_wait_exit(pid, now >= deadline ? 1 : (unsigned)((deadline - now) / 1000000ULL),
				    &status);
	}
	if (r < 0)
		goto out;
	if (ret_ms)
		*ret_ms = bench_ms(bench_now_ns() - t0);
	if (ret_out)
		*ret_out = capture_take(&cap[0]);
	if (ret_err)
		*ret_err = capture_take(&cap[1]);
	if ((ret_out && !*ret_out) || (ret_err && !*ret_err)) {
		if (ret_out) {
			free(*ret_out);
			*ret_out = NULL;
		}
		if (ret_err) {
			free(*ret_err);
			*ret_err = NULL;
		}
		r = -ENOMEM;
		goto out;
	}
	r = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
out:
	free(cap[0].buf);
	free(cap[1].buf);
	return r;
fail_pipes:
	for (int i = 0; i < 2; i++) {
		safe_close(p[i][0]);
		safe_close(p[i][1]);
	}
	return r;
}

int bench_json_number(const char *json, const char *key, double *ret)
{
	char pat[64];
	const char *p;
	char *end;
	double v;

	snprintf(pat, sizeof(pat), "\"%s\"", key);
	p = strstr(json, pat);
	if (!p)
		return -ENOENT;
	p += strlen(pat);
	while (*p == ' ' || *p == ':')
		p++;
	v = strtod(p, &end);
	if (end == p)
		return -EINVAL;
	*ret = v;
	return 0;
}

void bench_cell(double v, int width, int prec)
{
	if (isnan(v))
		printf(" %*s", width, "-");
	else
		printf(" %*.*f", width, prec, v);
}

char *bench_exe_path(const char *path)
{
	char *abs = realpath(path, NULL);

	if (abs && access(abs, X_OK) < 0) {
		free(abs);
		return NULL;
	}
	return abs;
}

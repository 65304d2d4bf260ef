/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Physical limits of checkpoint and restore on this machine: copying memory
 * out of another process, writing a file, and filling fresh memory of another
 * process (see limits.h for the definitions).
 */
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "bench.h"
#include "limits.h"

#define MAX_REPS 64

int limits_buffer_new(size_t size, void **ret)
{
	uint64_t *p;

	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	/* children forked while it exists need not copy its page tables */
	madvise(p, size, MADV_DONTFORK);
	for (size_t i = 0; i < size / sizeof(*p); i++)
		p[i] = 0xA5A5A5A5A5A5A5A5ULL ^ i;
	*ret = p;
	return 0;
}

void *limits_buffer_free(void *buf, size_t size)
{
	if (buf)
		munmap(buf, size);
	return NULL;
}

/*
 * Fork a child that maps size bytes of anonymous memory, touches them or not,
 * sends the address over a pipe and waits to be killed.
 */
static int child_with_memory(size_t size, bool touch, pid_t *ret_pid, uintptr_t *ret_addr)
{
	uintptr_t addr;
	int p[2], r;
	pid_t pid;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	r = bench_fork(&pid);
	if (r < 0) {
		close(p[0]);
		close(p[1]);
		return r;
	}
	if (pid == 0) {
		char *m;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(p[0]);
		m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			_exit(1);
		if (touch)
			memset(m, 0x5A, size);
		addr = (uintptr_t)m;
		if (write(p[1], &addr, sizeof(addr)) != sizeof(addr))
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	do
		n = read(p[0], &addr, sizeof(addr));
	while (n < 0 && errno == EINTR);
	close(p[0]);
	if (n != sizeof(addr)) {
		bench_kill_reap(pid);
		return -ECHILD;
	}
	*ret_pid = pid;
	*ret_addr = addr;
	return 0;
}

/* Copy size bytes between buf and the child's addr, in either direction. */
static int vm_copy(pid_t pid, void *buf, uintptr_t addr, size_t size, bool to_child)
{
	size_t done = 0;

	while (done < size) {
		struct iovec local = { .iov_base = (char *)buf + done, .iov_len = size - done };
		struct iovec remote = { .iov_base = (void *)(addr + done), .iov_len = size - done };
		ssize_t n;

		if (to_child)
			n = process_vm_writev(pid, &local, 1, &remote, 1, 0);
		else
			n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

int limit_readv(void *buf, size_t size, unsigned reps, double *ret_ms, double *ret_cpu_ms)
{
	double t[MAX_REPS], cpu[MAX_REPS];
	uintptr_t addr;
	pid_t pid;
	int r = 0;

	if (reps == 0 || reps > MAX_REPS)
		return -EINVAL;
	r = child_with_memory(size, true, &pid, &addr);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < reps && r >= 0; i++) {
		uint64_t t0;

		cpu[i] = bench_busy_ms();
		t0 = bench_now_ns();
		r = vm_copy(pid, buf, addr, size, false);
		t[i] = bench_ms(bench_now_ns() - t0);
		cpu[i] = bench_busy_ms() - cpu[i];
	}
	bench_kill_reap(pid);
	if (r < 0)
		return r;
	*ret_ms = bench_median(t, reps);
	if (ret_cpu_ms)
		*ret_cpu_ms = bench_median(cpu, reps);
	return 0;
}

static int write_all(int fd, const void *buf, size_t size)
{
	size_t done = 0;

	while (done < size) {
		ssize_t n = write(fd, (const char *)buf + done, size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return 0;
}

static int write_once(const void *buf, size_t size, const char *path, bool sync, double *ret_ms)
{
	uint64_t t0;
	int fd, r;

	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	t0 = bench_now_ns();
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	r = write_all(fd, buf, size);
	if (r >= 0 && sync)
		r = RET_ERRNO(fsync(fd));
	if (close(fd) < 0 && r >= 0)
		r = -errno;
	*ret_ms = bench_ms(bench_now_ns() - t0);
	if (r < 0)
		return r;
	if (!sync) {
		/* leave no dirty pages behind to slow the next measurement down */
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			fsync(fd);
			close(fd);
		}
	}
	return 0;
}

int limit_write(const void *buf, size_t size, const char *dir, bool sync, unsigned reps,
		double *ret_ms)
{
	_cleanup_free_ char *path = bench_path_join(dir, "limit-write");
	double t[MAX_REPS];
	int r = 0;

	if (!path)
		return -ENOMEM;
	if (reps == 0 || reps > MAX_REPS)
		return -EINVAL;
	for (unsigned i = 0; i < reps && r >= 0; i++) {
		bench_warm_memory(size + size / 4);
		r = write_once(buf, size, path, sync, &t[i]);
	}
	unlink(path);
	if (r < 0)
		return r;
	*ret_ms = bench_median(t, reps);
	return 0;
}

int limit_restore(const void *buf, size_t size, unsigned reps, double *ret_ms,
		  double *ret_cpu_ms)
{
	double t[MAX_REPS], cpu[MAX_REPS];
	int r = 0;

	if (reps == 0 || reps > MAX_REPS)
		return -EINVAL;
	for (unsigned i = 0; i < reps && r >= 0; i++) {
		uintptr_t addr;
		uint64_t t0;
		pid_t pid;

		r = child_with_memory(size, false, &pid, &addr);
		if (r < 0)
			break;
		bench_warm_memory(size + size / 4);
		cpu[i] = bench_busy_ms();
		t0 = bench_now_ns();
		r = vm_copy(pid, (void *)buf, addr, size, true);
		t[i] = bench_ms(bench_now_ns() - t0);
		cpu[i] = bench_busy_ms() - cpu[i];
		bench_kill_reap(pid);
	}
	if (r < 0)
		return r;
	*ret_ms = bench_median(t, reps);
	if (ret_cpu_ms)
		*ret_cpu_ms = bench_median(cpu, reps);
	return 0;
}

static void keep_first(int *r, int q)
{
	if (q < 0 && *r >= 0)
		*r = q;
}

int limits_measure(size_t size, unsigned reps, const char *tmpfs_dir, const char *disk_dir,
		   struct limits *ret)
{
	struct limits l = { NAN, NAN, NAN, NAN, NAN };
	void *buf;
	int r;

	r = limits_buffer_new(size, &buf);
	if (r < 0)
		return r;
	keep_first(&r, limit_readv(buf, size, reps, &l.readv_ms, NULL));
	keep_first(&r, limit_write(buf, size, tmpfs_dir, false, reps, &l.write_tmpfs_ms));
	if (disk_dir) {
		keep_first(&r, limit_write(buf, size, disk_dir, false, reps, &l.write_disk_ms));
		keep_first(&r, limit_write(buf, size, disk_dir, true, reps, &l.write_disk_sync_ms));
	}
	keep_first(&r, limit_restore(buf, size, reps, &l.restore_ms, NULL));
	limits_buffer_free(buf, size);
	*ret = l;
	return r;
}

/* The larger of two times; unknown (NAN) if either is. */
static double max_known(double a, double b)
{
	if (isnan(a) || isnan(b))
		return NAN;
	return a > b ? a : b;
}

double limits_ckpt_tmpfs_ms(const struct limits *l)
{
	return max_known(l->readv_ms, l->write_tmpfs_ms);
}

double limits_ckpt_disk_ms(const struct limits *l)
{
	return max_known(l->readv_ms, l->write_disk_sync_ms);
}

/* "  123.4 ms (8.70 GB/s)" style cell: milliseconds and throughput. */
static void print_cell(double ms, size_t size)
{
	if (isnan(ms))
		printf(" %9s %6s", "-", "");
	else
		printf(" %9.1f %6.2f", ms, (double)size / (ms / 1e3) / 1e9);
}

void limits_print_header(void)
{
	printf("%8s %16s %16s %16s %16s %16s %16s %16s\n", "", "readv", "write tmpfs",
	       "write disk", "write disk+sync", "restore", "ckpt lim tmpfs", "ckpt lim disk");
	printf("%8s", "MiB");
	for (int i = 0; i < 7; i++)
		printf(" %9s %6s", "ms", "GB/s");
	printf("\n");
}

void limits_print_row(size_t size, const struct limits *l)
{
	printf("%8zu", size / MIB);
	print_cell(l->readv_ms, size);
	print_cell(l->write_tmpfs_ms, size);
	print_cell(l->write_disk_ms, size);
	print_cell(l->write_disk_sync_ms, size);
	print_cell(l->restore_ms, size);
	print_cell(limits_ckpt_tmpfs_ms(l), size);
	print_cell(limits_ckpt_disk_ms(l), size);
	printf("\n");
	fflush(stdout);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of src/io: round trips through the memory, file and socket
 * interfaces (odd sizes, empty writes, more than IO_RESERVE_MAX and more than
 * the file writer's ring), the forked file writer and its error paths,
 * streaming between processes over pipes and socketpairs, sticky errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/io.h"

#define MiB (1L << 20)
#define RMAX ((long)IO_RESERVE_MAX)

/* Byte i of every test stream: not periodic at any power of two. */
static uint8_t pattern_byte(uint64_t i)
{
	return (uint8_t)((i * 131) ^ (i >> 9) ^ (i >> 17));
}

static void fill_pattern(void *p, uint64_t off, size_t n)
{
	uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		b[i] = pattern_byte(off + i);
}

static bool check_pattern(const void *p, uint64_t off, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != pattern_byte(off + i))
			return false;
	return true;
}

/* A script of writes: positive = io_write, negative = reservation of -n bytes. */
static const long write_script[] = {
	0,	    1,		-0,	   7,	      4096,	   -4097,   65539,
	-(4 * MiB + 40), -(4 * MiB + 40), 3,  MiB,	   -RMAX, 5,
	-(RMAX - 1), 9 * MiB + 11, -1, 2, -(3 * MiB), 4 * MiB, -(4 * MiB + 40),
};

/* Reads: positive = io_read, negative = io_read_ptr of -n bytes. */
static const long read_script[] = {
	1,	  -24,	    -(4096 + 16), 5 * MiB + 3,	-RMAX, 13,
	-(4 * MiB + 40), 20 * MiB + 1, -0, 0, -(2 * MiB + 5), 777,
};

/* Write rounds of the script until at least min_total bytes; returns the total. */
static uint64_t write_stream(struct ghost_io *io, uint64_t min_total)
{
	uint64_t off = 0;
	uint8_t *tmp = malloc(10 * MiB + 64);

	assert_non_null(tmp);
	while (off < min_total || off == 0) {
		for (size_t i = 0; i < sizeof(write_script) / sizeof(write_script[0]); i++) {
			long n = write_script[i];

			if (n >= 0) {
				fill_pattern(tmp, off, (size_t)n);
				assert_int_equal(io_write(io, tmp, (size_t)n), 0);
				off += (uint64_t)n;
			} else {
				void *p = NULL;

				assert_int_equal(io_write_reserve(io, (size_t)-n, &p), 0);
				assert_non_null(p);
				fill_pattern(p, off, (size_t)-n);
				assert_int_equal(io_write_commit(io), 0);
				off += (uint64_t)-n;
			}
			assert_int_equal(io_offset(io), off);
		}
	}
	free(tmp);
	return off;
}

/* Read the stream from offset off up to total with the read script, check
 * every byte, then expect the end. */
static void read_stream(struct ghost_io *io, uint64_t off, uint64_t total)
{
	uint64_t start = off - io_offset(io);
	uint8_t *tmp = malloc(21 * MiB);
	size_t i = 0;

	assert_non_null(tmp);
	while (off < total) {
		long n = read_script[i++ % (sizeof(read_script) / sizeof(read_script[0]))];
		size_t len = (size_t)(n >= 0 ? n : -n);

		if (len > total - off)
			len = (size_t)(total - off);
		if (n >= 0) {
			assert_int_equal(io_read(io, tmp, len), 0);
			assert_true(check_pattern(tmp, off, len));
		} else {
			const void *p = NULL;

			assert_int_equal(io_read_ptr(io, len, &p), 0);
			assert_non_null(p);
			assert_true(check_pattern(p, off, len));
		}
		off += len;
		assert_int_equal(io_offset(io) + start, off);
	}
	assert_int_equal(io_at_eof(io), 1);
	assert_int_equal(io_read(io, tmp, 1), GHOST_ETRUNCATED);
	assert_int_equal(io_read(io, tmp, 0), GHOST_ETRUNCATED); /* sticky */
	free(tmp);
}

/* Children of this process, from /proc; -1 when the kernel does not say.
 * The first one's PID in *ret_first when there is one. */
static int list_children(pid_t *ret_first)
{
	char path[64], text[4096];
	int fd, n = 0;
	ssize_t len;

	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	len = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (len < 0)
		return -1;
	text[len] = '\0';
	for (ssize_t i = 0; i < len; i++)
		if (text[i] == ' ')
			n++;
	if (ret_first && n > 0)
		*ret_first = (pid_t)strtol(text, NULL, 10);
	return n;
}

static int count_children(void)
{
	return list_children(NULL);
}

static void assert_no_zombie(void)
{
	errno = 0;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static int memfd(void)
{
	int fd = memfd_create("test-io", MFD_CLOEXEC);

	assert_true(fd >= 0);
	return fd;
}

/* --- memory ------------------------------------------------------------------------ */

static void test_buffer_basics(void **state)
{
	struct ghost_buffer *b;
	char out[16];

	(void)state;
	assert_int_equal(ghost_buffer_new(0, &b), 0);
	assert_int_equal(ghost_buffer_size(b), 0);
	assert_int_equal(ghost_buffer_write(b, "hello", 5), 0);
	assert_int_equal(ghost_buffer_write(b, NULL, 0), 0);
	assert_int_equal(ghost_buffer_write(b, " world", 6), 0);
	assert_int_equal(ghost_buffer_size(b), 11);
	assert_memory_equal(ghost_buffer_data(b), "hello world", 11);
	assert_int_equal(ghost_buffer_read(b, 6, out, sizeof(out)), 5);
	assert_memory_equal(out, "world", 5);
	assert_int_equal(ghost_buffer_read(b, 11, out, 1), 0);
	assert_int_equal(ghost_buffer_read(b, 100, out, 1), 0);
	assert_ptr_equal(ghost_buffer_ref(b), b);
	assert_null(ghost_buffer_unref(b));
	assert_int_equal(ghost_buffer_size(b), 11); /* still one reference */
	assert_null(ghost_buffer_unref(b));
	assert_null(ghost_buffer_unref(NULL));
	assert_int_equal(ghost_buffer_new(0, NULL), -EINVAL);
}

static void test_memory_roundtrip(void **state)
{
	struct ghost_buffer *b;
	struct ghost_io *w, *r;
	const void *all;
	size_t len;
	uint64_t total;

	(void)state;
	assert_int_equal(ghost_buffer_new(4096, &b), 0);
	assert_int_equal(io_memory_new(b, IO_WRITE, &w), 0);
	total = write_stream(w, 2 * IO_RESERVE_MAX);
	assert_true(total > 2 * IO_RESERVE_MAX);
	assert_int_equal(io_finish(w), 0);
	assert_int_equal(io_finish(w), 0);
	w = io_free(w);
	assert_int_equal(ghost_buffer_size(b), total);
	assert_true(check_pattern(ghost_buffer_data(b), 0, total));

	assert_int_equal(io_memory_new(b, IO_READ, &r), 0);
	assert_int_equal(io_map_all(r, &all, &len), 0);
	assert_ptr_equal(all, ghost_buffer_data(b)); /* zero copy */
	assert_int_equal(len, total);
	read_stream(r, 0, total);
	io_free(r);

	/* read_ptr lends the buffer itself */
	assert_int_equal(io_memory_new(b, IO_READ, &r), 0);
	assert_int_equal(io_read_ptr(r, 10, &all), 0);
	assert_ptr_equal(all, ghost_buffer_data(b));
	assert_int_equal(io_map_all(r, &all, &len), 0);
	assert_ptr_equal(all, (const uint8_t *)ghost_buffer_data(b) + 10);
	assert_int_equal(len, total - 10);
	io_free(r);
	ghost_buffer_unref(b);
}

static void test_memory_reserve_is_in_buffer(void **state)
{
	struct ghost_buffer *b;
	struct ghost_io *w;
	void *p;

	(void)state;
	assert_int_equal(ghost_buffer_new(0, &b), 0);
	assert_int_equal(io_memory_new(b, IO_WRITE, &w), 0);
	assert_int_equal(io_write(w, "ab", 2), 0);
	assert_int_equal(io_write_reserve(w, 3, &p), 0);
	assert_ptr_equal(p, (const uint8_t *)ghost_buffer_data(b) + 2);
	memcpy(p, "cde", 3);
	assert_int_equal(ghost_buffer_write(b, "x", 1), -EBUSY);
	assert_int_equal(io_write_commit(w), 0);
	assert_int_equal(ghost_buffer_size(b), 5);
	assert_memory_equal(ghost_buffer_data(b), "abcde", 5);
	/* an abandoned reservation appends nothing */
	assert_int_equal(io_write_reserve(w, 100, &p), 0);
	io_free(w);
	assert_int_equal(ghost_buffer_size(b), 5);
	assert_int_equal(ghost_buffer_write(b, "f", 1), 0);
	ghost_buffer_unref(b);
}

static void test_memory_sticky_errors(void **state)
{
	struct ghost_buffer *b;
	struct ghost_io *w, *r;
	char c[8];
	void *p;
	const void *cp;
	size_t len;

	(void)state;
	assert_int_equal(ghost_buffer_new(0, &b), 0);

	assert_int_equal(io_memory_new(b, IO_WRITE, &w), 0);
	assert_int_equal(io_write_commit(w), -EINVAL); /* commit without reserve */
	assert_int_equal(io_write(w, "a", 1), -EINVAL);
	assert_int_equal(io_write_reserve(w, 1, &p), -EINVAL);
	assert_int_equal(io_finish(w), -EINVAL);
	assert_int_equal(io_offset(w), 0);
	io_free(w);

	assert_int_equal(io_memory_new(b, IO_WRITE, &w), 0);
	assert_int_equal(io_write_reserve(w, IO_RESERVE_MAX + 1, &p), -EINVAL);
	assert_int_equal(io_write(w, "a", 1), -EINVAL);
	io_free(w);

	assert_int_equal(io_memory_new(b, IO_WRITE, &w), 0);
	assert_int_equal(io_write_reserve(w, 1, &p), 0);
	assert_int_equal(io_write_reserve(w, 1, &p), -EINVAL); /* one at a time */
	assert_int_equal(io_write_commit(w), -EINVAL);
	io_free(w);

	assert_int_equal(io_memory_new(b, IO_WRITE, &w), 0);
	assert_int_equal(io_read(w, c, 1), -EINVAL); /* wrong direction */
	assert_int_equal(io_write(w, "a", 1), -EINVAL);
	io_free(w);

	assert_int_equal(io_memory_new(b, IO_WRITE, &w), 0);
	assert_int_equal(io_write(w, "abc", 3), 0);
	assert_int_equal(io_finish(w), 0);
	assert_int_equal(io_write(w, "d", 1), -EINVAL); /* after finish */
	io_free(w);

	assert_int_equal(io_memory_new(b, IO_READ, &r), 0);
	assert_int_equal(io_write(r, "a", 1), -EINVAL);
	assert_int_equal(io_read(r, c, 1), -EINVAL);
	io_free(r);

	assert_int_equal(io_memory_new(b, IO_READ, &r), 0);
	assert_int_equal(io_at_eof(r), 0);
	assert_int_equal(io_read(r, c, 2), 0);
	assert_int_equal(io_read_ptr(r, 2, &cp), GHOST_ETRUNCATED);
	assert_int_equal(io_read(r, c, 0), GHOST_ETRUNCATED);
	assert_int_equal(io_at_eof(r), GHOST_ETRUNCATED);
	assert_int_equal(io_map_all(r, &cp, &len), GHOST_ETRUNCATED);
	assert_int_equal(io_offset(r), 2);
	io_free(r);

	assert_int_equal(io_memory_new(b, IO_READ, &r), 0);
	assert_int_equal(io_read_ptr(r, IO_RESERVE_MAX + 1, &cp), -EINVAL);
	assert_int_equal(io_read(r, c, 1), -EINVAL);
	io_free(r);

	assert_int_equal(io_memory_new(NULL, IO_READ, &r), -EINVAL);
	assert_int_equal(io_memory_new(b, (enum io_mode)7, &r), -EINVAL);
	assert_int_equal(io_write(NULL, "a", 1), -EINVAL);
	assert_int_equal(io_finish(NULL), -EINVAL);
	assert_null(io_free(NULL));
	ghost_buffer_unref(b);
}

/* --- file ---------------------------------------------------------------------------- */

static void test_file_small_no_helper(void **state)
{
	struct ghost_io *w, *r;
	const void *all;
	size_t len;
	char buf[100];
	int fd = memfd();

	(void)state;
	assert_int_equal(io_file_new(fd, IO_WRITE, IO_FILE_SYNC, &w), 0);
	fill_pattern(buf, 0, sizeof(buf));
	for (int i = 0; i < 1000; i++) {
		fill_pattern(buf, (uint64_t)i * 100, 100);
		assert_int_equal(io_write(w, buf, 100), 0);
	}
	if (count_children() >= 0)
		assert_int_equal(count_children(), 0); /* small images do not fork */
	assert_int_equal(io_finish(w), 0);
	io_free(w);
	assert_int_equal(lseek(fd, 0, SEEK_END), 100000);

	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(io_file_new(fd, IO_READ, 0, &r), 0);
	assert_int_equal(io_read(r, buf, 7), 0);
	assert_true(check_pattern(buf, 0, 7));
	assert_int_equal(io_map_all(r, &all, &len), 0);
	assert_int_equal(len, 100000 - 7);
	assert_true(check_pattern(all, 7, len));
	read_stream(r, 7, 100000); /* continues from the mapping */
	io_free(r);
	close(fd);
}

static void test_file_large_roundtrip(void **state)
{
	struct ghost_io *w, *r;
	uint64_t total;
	int fd = memfd();

	(void)state;
	assert_int_equal(io_file_new(fd, IO_WRITE, 0, &w), 0);
	total = write_stream(w, 100 * MiB); /* more than the ring */
	if (count_children() >= 0)
		assert_int_equal(count_children(), 1); /* the writer helper */
	assert_int_equal(io_finish(w), 0);
	if (count_children() >= 0)
		assert_int_equal(count_children(), 0); /* reaped by io_finish */
	io_free(w);
	assert_no_zombie();
	assert_int_equal((uint64_t)lseek(fd, 0, SEEK_END), total);

	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(io_file_new(fd, IO_READ, 0, &r), 0);
	read_stream(r, 0, total);
	io_free(r);

	/* the same, through a mapping taken at an offset that is not page aligned */
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(io_file_new(fd, IO_READ, 0, &r), 0);
	{
		const void *p, *all;
		size_t len;

		assert_int_equal(io_read_ptr(r, 12345, &p), 0);
		assert_true(check_pattern(p, 0, 12345));
		assert_int_equal(io_map_all(r, &all, &len), 0);
		assert_int_equal(len, total - 12345);
		assert_true(check_pattern(all, 12345, len));
		assert_int_equal(io_read_ptr(r, 4 * MiB, &p), 0);
		assert_ptr_equal(p, all); /* served from the mapping */
		assert_int_equal(io_map_all(r, &all, &len), 0);
		assert_int_equal(len, total - 12345 - 4 * MiB);
	}
	io_free(r);
	close(fd);
}

static void test_file_sync_and_offset(void **state)
{
	struct ghost_io *w, *r;
	char buf[64];
	const void *all;
	size_t len;
	int fd = memfd();

	(void)state;
	/* the interface starts at the fd's offset and leaves it at the end */
	assert_int_equal(write(fd, "prefix", 6), 6);
	assert_int_equal(io_file_new(fd, IO_WRITE, IO_FILE_SYNC, &w), 0);
	write_stream(w, 12 * MiB);
	assert_int_equal(io_finish(w), 0);
	io_free(w);
	assert_no_zombie();

	assert_int_equal(lseek(fd, 6, SEEK_SET), 6);
	assert_int_equal(io_file_new(fd, IO_READ, 0, &r), 0);
	assert_int_equal(io_read(r, buf, 64), 0);
	assert_true(check_pattern(buf, 0, 64));
	assert_int_equal(io_map_all(r, &all, &len), 0);
	assert_true(check_pattern(all, 64, 4096));
	io_free(r);
	close(fd);
	assert_int_equal(io_file_new(-1, IO_READ, 0, &r), -EINVAL);
	assert_int_equal(io_file_new(0, IO_READ, 0x100, &r), -EINVAL);
}

static void write_until_error(struct ghost_io *w, uint64_t total, int expect)
{
	uint64_t off = 0;
	int r = 0;

	while (off < total && r == 0) {
		void *p;

		r = io_write_reserve(w, 4 * MiB, &p);
		if (r == 0) {
			memset(p, 0x5a, 4 * MiB);
			r = io_write_commit(w);
		}
		off += 4 * MiB;
	}
	if (r == 0)
		r = io_finish(w);
	assert_int_equal(r, expect);
	/* sticky */
	assert_int_equal(io_write(w, "x", 1), expect);
	assert_int_equal(io_finish(w), expect);
}

static void test_file_errors(void **state)
{
	struct ghost_io *w;
	int fd, p[2];
	sigset_t pending;

	(void)state;
	/* a full device, small (written at finish) and large (by the helper) */
	fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(io_file_new(fd, IO_WRITE, 0, &w), 0);
	assert_int_equal(io_write(w, "abc", 3), 0);
	assert_int_equal(io_finish(w), -ENOSPC);
	assert_int_equal(io_write(w, "abc", 3), -ENOSPC);
	io_free(w);
	assert_int_equal(io_file_new(fd, IO_WRITE, 0, &w), 0);
	write_until_error(w, 200 * MiB, -ENOSPC);
	io_free(w);
	assert_no_zombie();
	close(fd);

	/* a read-only fd */
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(io_file_new(fd, IO_WRITE, 0, &w), 0);
	write_until_error(w, 200 * MiB, -EBADF);
	io_free(w);
	assert_no_zombie();
	close(fd);

	/* a pipe whose reader is gone: -EPIPE, not SIGPIPE, not a hang */
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	assert_int_equal(io_file_new(p[1], IO_WRITE, 0, &w), 0);
	assert_int_equal(io_write(w, "abc", 3), 0);
	assert_int_equal(io_finish(w), -EPIPE);
	io_free(w);
	assert_int_equal(io_file_new(p[1], IO_WRITE, 0, &w), 0);
	write_until_error(w, 200 * MiB, -EPIPE);
	io_free(w);
	assert_no_zombie();
	close(p[1]);
	assert_int_equal(sigpending(&pending), 0);
	assert_int_equal(sigismember(&pending, SIGPIPE), 0);
}

static void test_file_free_without_finish(void **state)
{
	struct ghost_io *w;
	int p[2];

	(void)state;
	/* the helper blocks on a pipe nobody reads: io_free() must still return
	 * (three slots: enough to start the helper, fewer than the ring holds) */
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(io_file_new(p[1], IO_WRITE, 0, &w), 0);
	{
		void *ptr;

		for (int i = 0; i < 3; i++) {
			assert_int_equal(io_write_reserve(w, 4 * MiB, &ptr), 0);
			memset(ptr, 1, 4 * MiB);
			assert_int_equal(io_write_commit(w), 0);
		}
	}
	if (count_children() >= 0)
		assert_int_equal(count_children(), 1);
	io_free(w);
	assert_no_zombie();
	close(p[0]);
	close(p[1]);
}

static void test_file_helper_killed(void **state)
{
	struct ghost_io *w;
	pid_t helper = 0;
	int fd = memfd();
	void *ptr;

	(void)state;
	/* a helper that dies is an error for the caller, not a hang */
	assert_int_equal(io_file_new(fd, IO_WRITE, 0, &w), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(io_write_reserve(w, 4 * MiB, &ptr), 0);
		memset(ptr, 1, 4 * MiB);
		assert_int_equal(io_write_commit(w), 0);
	}
	if (list_children(&helper) != 1) {
		io_free(w);
		close(fd);
		skip();
	}
	assert_int_equal(kill(helper, SIGKILL), 0);
	write_until_error(w, 200 * MiB, -EPIPE);
	io_free(w);
	assert_no_zombie();
	close(fd);
}

/* A child writes the stream into fd through an interface made by make(). */
static pid_t spawn_writer(int fd, int close_fd, bool socket, uint64_t min_total)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct ghost_io *w;
		int r;

		close(close_fd);
		r = socket ? io_socket_new(fd, IO_WRITE, &w) : io_file_new(fd, IO_WRITE, 0, &w);
		if (r < 0)
			_exit(2);
		write_stream(w, min_total);
		r = io_finish(w);
		io_free(w);
		_exit(r < 0 ? 3 : 0);
	}
	return pid;
}

static uint64_t stream_total(uint64_t min_total)
{
	struct ghost_buffer *b;
	struct ghost_io *w;
	uint64_t total;

	/* the script is deterministic: measure it on memory */
	assert_int_equal(ghost_buffer_new(0, &b), 0);
	assert_int_equal(io_memory_new(b, IO_WRITE, &w), 0);
	total = write_stream(w, min_total);
	io_free(w);
	ghost_buffer_unref(b);
	return total;
}

static void wait_ok(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_pipe_streaming(void **state)
{
	struct ghost_io *r;
	const void *all;
	size_t len;
	uint64_t total = stream_total(40 * MiB);
	int p[2];
	pid_t pid;

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = spawn_writer(p[1], p[0], false, 40 * MiB);
	close(p[1]);
	assert_int_equal(io_file_new(p[0], IO_READ, 0, &r), 0);
	assert_int_equal(io_map_all(r, &all, &len), -EOPNOTSUPP);
	read_stream(r, 0, total); /* not sticky: reading still works */
	io_free(r);
	close(p[0]);
	wait_ok(pid);
}

static void test_socket_streaming(void **state)
{
	struct ghost_io *r;
	const void *all;
	size_t len;
	uint64_t total = stream_total(40 * MiB);
	int sv[2];
	pid_t pid;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = spawn_writer(sv[1], sv[0], true, 40 * MiB);
	close(sv[1]);
	assert_int_equal(io_socket_new(sv[0], IO_READ, &r), 0);
	assert_int_equal(io_map_all(r, &all, &len), -EOPNOTSUPP);
	read_stream(r, 0, total);
	io_free(r);
	close(sv[0]);
	wait_ok(pid);
}

static void test_socket_errors(void **state)
{
	struct ghost_io *w;
	int sv[2], fd;
	sigset_t pending;

	(void)state;
	fd = memfd();
	assert_int_equal(io_socket_new(fd, IO_WRITE, &w), -ENOTSOCK);
	close(fd);
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(io_socket_new(sv[0], IO_WRITE, &w), -EPROTOTYPE);
	close(sv[0]);
	close(sv[1]);

	/* the peer went away */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	assert_int_equal(io_socket_new(sv[0], IO_WRITE, &w), 0);
	assert_int_equal(io_write(w, "abc", 3), 0);
	assert_int_equal(io_finish(w), -EPIPE);
	assert_int_equal(io_write(w, "abc", 3), -EPIPE);
	io_free(w);
	assert_int_equal(io_socket_new(sv[0], IO_WRITE, &w), 0);
	write_until_error(w, 40 * MiB, -EPIPE);
	io_free(w);
	close(sv[0]);
	assert_int_equal(sigpending(&pending), 0);
	assert_int_equal(sigismember(&pending, SIGPIPE), 0);
}

static void test_socket_finish_shuts_down(void **state)
{
	struct ghost_io *w, *r;
	char buf[4];
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(io_socket_new(sv[0], IO_WRITE, &w), 0);
	assert_int_equal(io_socket_new(sv[1], IO_READ, &r), 0);
	assert_int_equal(io_write(w, "ping", 4), 0);
	assert_int_equal(io_finish(w), 0);
	assert_int_equal(io_read(r, buf, 4), 0);
	assert_memory_equal(buf, "ping", 4);
	assert_int_equal(io_at_eof(r), 1);
	assert_int_equal(io_read(r, buf, 1), GHOST_ETRUNCATED);
	io_free(w);
	io_free(r);
	close(sv[0]);
	close(sv[1]);
}

static void test_file_reader_truncated(void **state)
{
	struct ghost_io *r;
	char buf[16];
	int fd = memfd();

	(void)state;
	assert_int_equal(write(fd, "0123456789", 10), 10);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(io_file_new(fd, IO_READ, 0, &r), 0);
	assert_int_equal(io_read(r, buf, 4), 0);
	assert_int_equal(io_at_eof(r), 0);
	assert_int_equal(io_read(r, buf, 7), GHOST_ETRUNCATED);
	assert_int_equal(io_read(r, buf, 1), GHOST_ETRUNCATED);
	io_free(r);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buffer_basics),
		cmocka_unit_test(test_memory_roundtrip),
		cmocka_unit_test(test_memory_reserve_is_in_buffer),
		cmocka_unit_test(test_memory_sticky_errors),
		cmocka_unit_test(test_file_small_no_helper),
		cmocka_unit_test(test_file_large_roundtrip),
		cmocka_unit_test(test_file_sync_and_offset),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_file_free_without_finish),
		cmocka_unit_test(test_file_helper_killed),
		cmocka_unit_test(test_file_reader_truncated),
		cmocka_unit_test(test_pipe_streaming),
		cmocka_unit_test(test_socket_streaming),
		cmocka_unit_test(test_socket_errors),
		cmocka_unit_test(test_socket_finish_shuts_down),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The kind-independent half of struct ghost_io: argument and state checks, the
 * sticky error, the offset, and the fd helpers the file and socket kinds share.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "io/io-int.h"
#include "base/banned.h"

void io_init(struct ghost_io *io, const struct io_ops *ops, enum io_mode mode)
{
	*io = (struct ghost_io){ .ops = ops, .mode = mode };
}

static int fail(struct ghost_io *io, int r)
{
	if (r < 0 && io->error == 0)
		io->error = r;
	return r;
}

/* Common entry checks: NULL, the sticky error, the direction. */
static int enter(struct ghost_io *io, enum io_mode mode)
{
	if (!io)
		return -EINVAL;
	if (io->error)
		return io->error;
	if (io->mode != mode)
		return fail(io, -EINVAL);
	return 0;
}

struct ghost_io *io_free(struct ghost_io *io)
{
	if (io)
		io->ops->free(io);
	return NULL;
}

int io_write(struct ghost_io *io, const void *data, size_t len)
{
	int r = enter(io, IO_WRITE);

	if (r < 0)
		return r;
	if (io->reserved || io->finished || (!data && len))
		return fail(io, -EINVAL);
	if (len == 0)
		return 0;
	r = io->ops->write(io, data, len);
	if (r < 0)
		return fail(io, r);
	io->offset += len;
	return 0;
}

int io_write_reserve(struct ghost_io *io, size_t len, void **ret_ptr)
{
	void *p = NULL;
	int r = enter(io, IO_WRITE);

	if (r < 0)
		return r;
	if (io->reserved || io->finished || len > IO_RESERVE_MAX || !ret_ptr)
		return fail(io, -EINVAL);
	r = io->ops->reserve(io, len, &p);
	if (r < 0)
		return fail(io, r);
	io->reserved = true;
	io->reserve_len = len;
	*ret_ptr = p;
	return 0;
}

int io_write_commit(struct ghost_io *io)
{
	int r = enter(io, IO_WRITE);

	if (r < 0)
		return r;
	if (!io->reserved)
		return fail(io, -EINVAL);
	io->reserved = false;
	r = io->ops->commit(io, io->reserve_len);
	if (r < 0)
		return fail(io, r);
	io->offset += io->reserve_len;
	io->reserve_len = 0;
	return 0;
}

int io_finish(struct ghost_io *io)
{
	int r;

	if (!io)
		return -EINVAL;
	if (io->finished)
		return io->error ? io->error : io->finish_r;
	if (io->error)
		return io->error;
	if (io->reserved)
		return fail(io, -EINVAL);
	io->finished = true;
	if (io->mode == IO_READ || !io->ops->finish)
		return 0;
	r = io->ops->finish(io);
	io->finish_r = r;
	return fail(io, r);
}

int io_read(struct ghost_io *io, void *data, size_t len)
{
	int r = enter(io, IO_READ);

	if (r < 0)
		return r;
	if (!data && len)
		return fail(io, -EINVAL);
	if (len == 0)
		return 0;
	r = io->ops->read(io, data, len);
	if (r < 0)
		return fail(io, r);
	io->offset += len;
	return 0;
}

int io_read_ptr(struct ghost_io *io, size_t len, const void **ret_ptr)
{
	const void *p = NULL;
	int r = enter(io, IO_READ);

	if (r < 0)
		return r;
	if (len > IO_RESERVE_MAX || !ret_ptr)
		return fail(io, -EINVAL);
	r = io->ops->read_ptr(io, len, &p);
	if (r < 0)
		return fail(io, r);
	io->offset += len;
	*ret_ptr = p;
	return 0;
}

int io_at_eof(struct ghost_io *io)
{
	int r = enter(io, IO_READ);

	if (r < 0)
		return r;
	r = io->ops->at_eof(io);
	return r < 0 ? fail(io, r) : r;
}

int io_map_all(struct ghost_io *io, const void **ret_ptr, size_t *ret_len)
{
	const void *p = NULL;
	size_t len = 0;
	int r = enter(io, IO_READ);

	if (r < 0)
		return r;
	if (!ret_ptr || !ret_len)
		return fail(io, -EINVAL);
	if (!io->ops->map_all)
		return -EOPNOTSUPP; /* a question about the kind, not a failure */
	r = io->ops->map_all(io, &p, &len);
	if (r == -EOPNOTSUPP)
		return r;
	if (r < 0)
		return fail(io, r);
	*ret_ptr = p;
	*ret_len = len;
	return 0;
}

uint64_t io_offset(const struct ghost_io *io)
{
	return io ? io->offset : 0;
}

void *io_map_anon(size_t len, bool shared)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static int wait_fd(int fd, short events)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	for (;;) {
		int n = poll(&pfd, 1, -1);

		if (n >= 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

static int write_loop(int fd, const char *p, size_t len, bool socket)
{
	while (len > 0) {
		ssize_t n = socket ? send(fd, p, len, MSG_NOSIGNAL) : write(fd, p, len);

		if (n < 0) {
			int r;

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			r = wait_fd(fd, POLLOUT);
			if (r < 0)
				return r;
			continue;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int io_fd_write_all(int fd, const void *data, size_t len, bool socket, bool block_sigpipe)
{
	sigset_t pipe_set, old, pending;
	bool was_pending;
	int r;

	if (socket || !block_sigpipe)
		return write_loop(fd, data, len, socket);

	/*
	 * A library must not change the caller's signal dispositions, so hold
	 * SIGPIPE off for the duration of the write and swallow the one a dead
	 * reader raises (unless one was already pending before us).
	 */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	if (sigprocmask(SIG_BLOCK, &pipe_set, &old) < 0)
		return -errno;
	was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
	r = write_loop(fd, data, len, false);
	if (r == -EPIPE && !was_pending) {
		const struct timespec zero = { 0, 0 };

		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	return r;
}

ssize_t io_fd_read_some(int fd, void *data, size_t len)
{
	for (;;) {
		ssize_t n = read(fd, data, len);

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			int r = wait_fd(fd, POLLIN);

			if (r < 0)
				return r;
			continue;
		}
		return -errno;
	}
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Socket interface on an already-connected stream socket. Writes are gathered
 * in one staging buffer and sent a few MiB at a time with MSG_NOSIGNAL (a
 * vanished peer is -EPIPE, never a signal); reservations are lent from that
 * buffer. io_finish() sends the rest and shuts the write side down, so the
 * peer reads end of file. The reading side is reader.c.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "io/io-int.h"
#include "base/banned.h"

/* The buffer holds any reservation; it is sent once this full. */
#define SOCK_BUF_CAP ((size_t)IO_RESERVE_MAX)
#define SOCK_FLUSH ((size_t)4 << 20)

struct sock_writer {
	struct ghost_io io;
	int fd;
	uint8_t *buf; /* SOCK_BUF_CAP bytes, mapped on first use */
	size_t fill;
};

static int flush(struct sock_writer *s)
{
	int r;

	if (s->fill == 0)
		return 0;
	r = io_fd_write_all(s->fd, s->buf, s->fill, true, false);
	s->fill = 0;
	return r;
}

static int buf_alloc(struct sock_writer *s)
{
	if (s->buf)
		return 0;
	s->buf = io_map_anon(SOCK_BUF_CAP, false);
	return s->buf ? 0 : -ENOMEM;
}

static int sw_write(struct ghost_io *io, const void *data, size_t len)
{
	struct sock_writer *s = container_of(io, struct sock_writer, io);
	const uint8_t *p = data;
	int r;

	if (s->fill == 0 && len >= SOCK_FLUSH)
		return io_fd_write_all(s->fd, data, len, true, false); /* no copy */
	r = buf_alloc(s);
	if (r < 0)
		return r;
	while (len > 0) {
		size_t n = MIN(len, SOCK_FLUSH - s->fill);

		memcpy(s->buf + s->fill, p, n);
		s->fill += n;
		p += n;
		len -= n;
		if (s->fill >= SOCK_FLUSH) {
			r = flush(s);
			if (r < 0)
				return r;
			if (len >= SOCK_FLUSH)
				return io_fd_write_all(s->fd, p, len, true, false);
		}
	}
	return 0;
}

static int sw_reserve(struct ghost_io *io, size_t len, void **ret_ptr)
{
	struct sock_writer *s = container_of(io, struct sock_writer, io);
	int r = buf_alloc(s);

	if (r < 0)
		return r;
	if (s->fill + len > SOCK_BUF_CAP) {
		r = flush(s);
		if (r < 0)
			return r;
	}
	*ret_ptr = s->buf + s->fill;
	return 0;
}

static int sw_commit(struct ghost_io *io, size_t len)
{
	struct sock_writer *s = container_of(io, struct sock_writer, io);

	s->fill += len;
	return s->fill >= SOCK_FLUSH ? flush(s) : 0;
}

static int sw_finish(struct ghost_io *io)
{
	struct sock_writer *s = container_of(io, struct sock_writer, io);
	int r = flush(s);

	if (r < 0)
		return r;
	if (shutdown(s->fd, SHUT_WR) < 0)
		return -errno;
	return 0;
}

static void sw_free(struct ghost_io *io)
{
	struct sock_writer *s = container_of(io, struct sock_writer, io);

	if (s->buf)
		munmap(s->buf, SOCK_BUF_CAP);
	free(s);
}

static const struct io_ops sock_writer_ops = {
	.write = sw_write,
	.reserve = sw_reserve,
	.commit = sw_commit,
	.finish = sw_finish,
	.free = sw_free,
};

int io_socket_new(int fd, enum io_mode mode, struct ghost_io **ret)
{
	struct sock_writer *s;
	int type;
	socklen_t sl = sizeof(type);

	if (fd < 0 || !ret || (mode != IO_WRITE && mode != IO_READ))
		return -EINVAL;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &sl) < 0)
		return -errno;
	if (type != SOCK_STREAM)
		return -EPROTOTYPE;
	if (mode == IO_READ)
		return io_fd_reader_new(fd, true, ret);
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	io_init(&s->io, &sock_writer_ops, IO_WRITE);
	s->fd = fd;
	*ret = &s->io;
	return 0;
}

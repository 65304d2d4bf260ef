/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared inside src/io only: the table of operations every kind of interface
 * implements, the common part of struct ghost_io, and fd helpers.
 */
#ifndef IO_IO_INT_H
#define IO_IO_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/io.h"
#include "base/macro.h"

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/*
 * io.c checks direction, reservation state and the sticky error before it
 * calls an operation, and records any failure it returns; an operation only
 * does its kind's work. NULL operations are not supported by that kind.
 */
struct io_ops {
	int (*write)(struct ghost_io *io, const void *data, size_t len);
	int (*reserve)(struct ghost_io *io, size_t len, void **ret_ptr);
	int (*commit)(struct ghost_io *io, size_t len);
	int (*finish)(struct ghost_io *io);
	int (*read)(struct ghost_io *io, void *data, size_t len);
	int (*read_ptr)(struct ghost_io *io, size_t len, const void **ret_ptr);
	int (*at_eof)(struct ghost_io *io);
	int (*map_all)(struct ghost_io *io, const void **ret_ptr, size_t *ret_len);
	void (*free)(struct ghost_io *io);
};

/* Embedded first in each kind's own struct. */
struct ghost_io {
	const struct io_ops *ops;
	enum io_mode mode;
	int error;       /* sticky: 0, or the first failure */
	int finish_r;    /* result of the first io_finish() */
	bool reserved;   /* a reservation is open */
	bool finished;   /* io_finish() was called */
	size_t reserve_len;
	uint64_t offset; /* bytes committed (IO_WRITE) or consumed (IO_READ) */
};

void io_init(struct ghost_io *io, const struct io_ops *ops, enum io_mode mode);

/* Anonymous mapping of len bytes (shared between processes when shared), or NULL. */
void *io_map_anon(size_t len, bool shared);

/*
 * Write all len bytes to fd, retrying on EINTR and short writes and waiting
 * with poll() when the fd is non-blocking. A socket uses send(MSG_NOSIGNAL); a
 * pipe has SIGPIPE held off while writing when block_sigpipe is set, so a
 * vanished reader gives -EPIPE instead of killing the caller.
 */
int io_fd_write_all(int fd, const void *data, size_t len, bool socket, bool block_sigpipe);
/* One read() of at most len bytes: > 0 bytes read, 0 at end of stream, -errno. */
ssize_t io_fd_read_some(int fd, void *data, size_t len);

/* Buffered reader on a file, pipe or socket (reader.c). */
int io_fd_reader_new(int fd, bool socket, struct ghost_io **ret);

#endif

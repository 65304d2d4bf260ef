/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Resource access interfaces (the Ghost report's section 3): where the bytes
 * of a ghost go to or come from. Three kinds: a memory buffer, a file, and an
 * already-connected stream socket. Every interface is one pass and never seeks,
 * so an importer can consume a ghost while the exporter still produces it.
 *
 * A struct ghost_io is opened in one direction (IO_WRITE or IO_READ). Besides
 * plain io_write()/io_read(), it offers zero-copy access that the engine uses
 * for page data: io_write_reserve() lends a pointer into the interface's own
 * storage (the memory buffer itself, a staging ring for files and sockets) that
 * the caller fills, e.g. with process_vm_readv(), before io_write_commit();
 * io_read_ptr() lends a pointer to the next bytes without a copy where the
 * storage allows it.
 *
 * Errors: -errno from the underlying calls, GHOST_ETRUNCATED when a reader hits
 * the end early, -EINVAL on misuse (wrong direction, commit without reserve).
 * After any error the interface is in a sticky failed state: every later call
 * returns the same error. The one exception is io_map_all()'s -EOPNOTSUPP,
 * which answers a question about the kind of interface and changes nothing.
 *
 * Calling context: one process, one thread; an interface is not shared across
 * fork() (a child must not use or free its parent's interfaces).
 */
#ifndef IO_IO_H
#define IO_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ghost/ghost.h"

struct ghost_io;

enum io_mode {
	IO_WRITE,
	IO_READ,
};

enum io_file_flags {
	IO_FILE_SYNC = 1 << 0, /* io_finish() fsyncs the file */
};

/*
 * Memory buffer (Listing 2 of the Ghost report). A buffer owns an mmap()ed
 * region that grows with mremap(), so growing never copies and page data is
 * written straight into it. Buffers are reference counted: a ghost_io made on a
 * buffer takes a reference.
 */
/* ghost_buffer_new/ref/unref/data/size are declared in ghost/ghost.h. */
/* buff_write: append len bytes. */
int ghost_buffer_write(struct ghost_buffer *b, const void *src, size_t len);
/* buff_read: copy up to len bytes from offset; returns the count copied. */
ssize_t ghost_buffer_read(const struct ghost_buffer *b, size_t offset, void *dst, size_t len);
/*
 * Growing a buffer (ghost_buffer_write(), io_write() or io_write_reserve() on
 * it) may move its data: pointers from ghost_buffer_data(), io_read_ptr() or
 * io_map_all() on the same buffer die. While an interface holds a
 * reservation on the buffer, ghost_buffer_write() fails with -EBUSY.
 */

/* An interface on a memory buffer: IO_WRITE appends to it, IO_READ reads it from the start. */
int io_memory_new(struct ghost_buffer *b, enum io_mode mode, struct ghost_io **ret);
/*
 * An interface on a file descriptor (regular file, pipe, anything read()/write()
 * accept). The fd is borrowed: the caller keeps it open until io_free() and
 * closes it after. Reading or writing starts at the fd's current offset.
 *
 * Writes are overlapped with the caller's work by a forked writer process
 * sharing a ring buffer: once more than one 1 MiB slot of data has been
 * produced, a helper child is forked that write()s full slots while the
 * caller fills the next (smaller streams are written by the caller at
 * io_finish(), without a fork; so is everything if fork() fails). The
 * helper runs no atexit handler, holds no fd but the target, and is reaped by
 * io_finish() or killed and reaped by io_free(), through a pidfd: a caller
 * that reaps children with waitpid(-1, ...) meanwhile does no harm (the exit
 * status is not needed). A write error in the helper reaches the caller at a
 * later call or at io_finish(), and is sticky. A pipe whose reader went away
 * gives -EPIPE, never SIGPIPE.
 *
 * Reads go through a large buffer; io_read_ptr() lends a pointer into it.
 * After io_map_all() on a regular file, reads are served from the mapping.
 */
int io_file_new(int fd, enum io_mode mode, enum io_file_flags flags, struct ghost_io **ret);
/* An interface on a connected stream socket (TCP or Unix). The fd is borrowed.
 * Writes are gathered into a few MiB and sent with MSG_NOSIGNAL (a vanished
 * peer is -EPIPE). IO_WRITE shuts down the write side at io_finish().
 * -ENOTSOCK or -EPROTOTYPE when fd is not a stream socket. */
int io_socket_new(int fd, enum io_mode mode, struct ghost_io **ret);

struct ghost_io *io_free(struct ghost_io *io);

int io_write(struct ghost_io *io, const void *data, size_t len);
/*
 * Lend len writable bytes at the current end of the stream. The pointer stays
 * valid until io_write_commit(), which appends exactly the len bytes (whatever
 * they hold). Only one reservation may be open at a time. len is at most
 * IO_RESERVE_MAX.
 */
#define IO_RESERVE_MAX (8u << 20)
int io_write_reserve(struct ghost_io *io, size_t len, void **ret_ptr);
int io_write_commit(struct ghost_io *io);
/* Flush everything written; fsync for IO_FILE_SYNC; shut down a socket's write side.
 * A second call returns the first one's result; on a reader it does nothing. */
int io_finish(struct ghost_io *io);

/* Read exactly len bytes; GHOST_ETRUNCATED if the stream ends first. */
int io_read(struct ghost_io *io, void *data, size_t len);
/* Consume len (<= IO_RESERVE_MAX) bytes and lend a pointer to them, valid until
 * the next call on io. GHOST_ETRUNCATED if the stream ends first. */
int io_read_ptr(struct ghost_io *io, size_t len, const void **ret_ptr);
/* True when the reader has consumed everything and the stream is at its end:
 * 1 or 0, or a negative error. May block on a stream until a byte or the end
 * arrives. */
int io_at_eof(struct ghost_io *io);

/*
 * For readers on memory or on a regular file: lend the whole remaining
 * contents at once (the buffer itself or a read-only mapping of the file, made
 * once from the current offset to the file's end as it is then, and faulted
 * in as it is read), so the importer can verify every checksum before a byte
 * reaches a new process. -EOPNOTSUPP on streams (not sticky). Does not consume anything; the
 * pointer stays valid until io_free() (memory: until the buffer grows), and
 * later reads lend pointers into the same mapping.
 */
int io_map_all(struct ghost_io *io, const void **ret_ptr, size_t *ret_len);

/* Bytes written or consumed so far. */
uint64_t io_offset(const struct ghost_io *io);

#endif

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Whole reads and writes on fds, small files, number parsing. */
#ifndef BASE_FILEIO_H
#define BASE_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/buf.h"

/* Read exactly len bytes, retrying on EINTR and short reads. Returns the bytes
 * read (< len only at end of file) or -errno. */
ssize_t read_full(int fd, void *data, size_t len);
/* Write all len bytes or fail with -errno. */
int write_full(int fd, const void *data, size_t len);
/* The same at a file offset (pread/pwrite); an early end of file is -EIO. */
int pread_full(int fd, void *data, size_t len, off_t offset);
int pwrite_full(int fd, const void *data, size_t len, off_t offset);
/* Read a whole (small, /proc-like) file into b, replacing its contents. */
int read_file_at(int dirfd, const char *path, struct buf *b);
/* Write a whole string to a file (e.g. a /proc knob). */
int write_string_file(const char *path, const char *s);

/* Strict decimal/hex parsers: the whole string must be a number in range. */
int parse_u64(const char *s, int base, uint64_t *ret);
int parse_int(const char *s, int *ret);
int parse_pid(const char *s, pid_t *ret);

#endif

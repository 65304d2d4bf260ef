/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The reading side of file and socket interfaces: read() into one large
 * buffer, lent out by io_read_ptr(). A refill asks for what the caller needs
 * plus a read-ahead, so the tail moved back to the buffer's start when it
 * wraps is small. On a regular file io_map_all() maps the rest of the file
 * and every later read is served from that mapping without a copy.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io-int.h"
#include "base/banned.h"

/* Bytes a refill reads beyond what the caller asked for, when there is room. */
#define READ_AHEAD (256u << 10)
/* Any read_ptr() request fits, with the read-ahead after it. */
#define READ_BUF_CAP (IO_RESERVE_MAX + READ_AHEAD)

struct fd_reader {
	struct ghost_io io;
	int fd;
	bool regular; /* io_map_all() works */
	bool eof;     /* read() returned 0 */
	off_t start;  /* file offset at creation (regular files) */

	uint8_t *buf; /* READ_BUF_CAP bytes, mapped on first use */
	size_t pos;   /* next byte to hand out */
	size_t end;   /* bytes of buf holding data */

	bool mapped;      /* reads are served from map */
	uint8_t *map;     /* whole pages: NULL when nothing was left */
	size_t map_size;  /* bytes mapped */
	size_t map_skip;  /* offset of the first unconsumed byte at mapping time */
	size_t map_pos;   /* bytes consumed since then */
	size_t map_len;   /* bytes available since then */
};

static int buf_alloc(struct fd_reader *f)
{
	if (f->buf)
		return 0;
	f->buf = io_map_anon(READ_BUF_CAP, false);
	return f->buf ? 0 : -ENOMEM;
}

/* Make at least need (<= IO_RESERVE_MAX) bytes available at buf + pos. */
static int fill(struct fd_reader *f, size_t need)
{
	size_t avail = f->end - f->pos;
	int r;

	if (avail >= need)
		return 0;
	if (f->eof)
		return GHOST_ETRUNCATED;
	r = buf_alloc(f);
	if (r < 0)
		return r;
	if (avail == 0)
		f->pos = f->end = 0;
	else if (f->pos + need > READ_BUF_CAP) {
		memmove(f->buf, f->buf + f->pos, avail);
		f->pos = 0;
		f->end = avail;
	}
	while (f->end - f->pos < need) {
		size_t want = MAX(need - (f->end - f->pos), (size_t)READ_AHEAD);
		ssize_t n;

		want = MIN(want, READ_BUF_CAP - f->end);
		n = io_fd_read_some(f->fd, f->buf + f->end, want);
		if (n < 0)
			return (int)n;
		if (n == 0) {
			f->eof = true;
			return GHOST_ETRUNCATED;
		}
		f->end += (size_t)n;
	}
	return 0;
}

static int map_take(struct fd_reader *f, size_t len, const void **ret_ptr)
{
	if (f->map_len - f->map_pos < len) {
		f->map_pos = f->map_len;
		return GHOST_ETRUNCATED;
	}
	*ret_ptr = f->map ? f->map + f->map_skip + f->map_pos : (const void *)f;
	f->map_pos += len;
	return 0;
}

static int reader_read_ptr(struct ghost_io *io, size_t len, const void **ret_ptr)
{
	struct fd_reader *f = container_of(io, struct fd_reader, io);
	int r;

	if (f->mapped)
		return map_take(f, len, ret_ptr);
	r = fill(f, len);
	if (r < 0)
		return r;
	*ret_ptr = f->buf ? f->buf + f->pos : (const void *)f;
	f->pos += len;
	return 0;
}

static int reader_read(struct ghost_io *io, void *data, size_t len)
{
	struct fd_reader *f = container_of(io, struct fd_reader, io);
	uint8_t *p = data;
	size_t n;

	if (f->mapped) {
		const void *src;
		int r = map_take(f, len, &src);

		if (r >= 0)
			memcpy(data, src, len);
		return r;
	}

	n = MIN(len, f->end - f->pos);
	if (n > 0) {
		memcpy(p, f->buf + f->pos, n);
		f->pos += n;
		p += n;
		len -= n;
	}
	if (len == 0)
		return 0;
	if (len < READ_AHEAD) {
		int r = fill(f, len);

		if (r < 0)
			return r;
		memcpy(p, f->buf + f->pos, len);
		f->pos += len;
		return 0;
	}
	/* Large reads bypass the buffer. */
	while (len > 0) {
		ssize_t k;

		if (f->eof)
			return GHOST_ETRUNCATED;
		k = io_fd_read_some(f->fd, p, len);
		if (k < 0)
			return (int)k;
		if (k == 0) {
			f->eof = true;
			return GHOST_ETRUNCATED;
		}
		p += k;
		len -= (size_t)k;
	}
	return 0;
}

static int reader_at_eof(struct ghost_io *io)
{
	struct fd_reader *f = container_of(io, struct fd_reader, io);
	ssize_t n;
	int r;

	if (f->mapped)
		return f->map_pos >= f->map_len;
	if (f->end > f->pos)
		return 0;
	if (f->eof)
		return 1;
	r = buf_alloc(f);
	if (r < 0)
		return r;
	f->pos = f->end = 0;
	n = io_fd_read_some(f->fd, f->buf, READ_AHEAD);
	if (n < 0)
		return (int)n;
	if (n == 0) {
		f->eof = true;
		return 1;
	}
	f->end = (size_t)n;
	return 0;
}

static int reader_map_all(struct ghost_io *io, const void **ret_ptr, size_t *ret_len)
{
	struct fd_reader *f = container_of(io, struct fd_reader, io);
	struct stat st;
	uint64_t abs;
	long ps = sysconf(_SC_PAGESIZE);
	off_t aligned;
	void *p;

	if (!f->regular)
		return -EOPNOTSUPP;
	if (!f->mapped) {
		if (fstat(f->fd, &st) < 0)
			return -errno;
		abs = (uint64_t)f->start + io->offset;
		if (ps <= 0)
			ps = 4096;
		if ((uint64_t)st.st_size > abs) {
			aligned = (off_t)(abs & ~((uint64_t)ps - 1));
			if ((uint64_t)st.st_size - (uint64_t)aligned > SIZE_MAX)
				return -EFBIG;
			f->map_size = (size_t)((uint64_t)st.st_size - (uint64_t)aligned);
			p = mmap(NULL, f->map_size, PROT_READ, MAP_PRIVATE, f->fd,
				 aligned);
			if (p == MAP_FAILED)
				return -errno;
			/* Not copied into children: the engine clones the new process
			 * from itself while this mapping is in use. */
			(void)madvise(p, f->map_size, MADV_DONTFORK);
			/* Read front to back (verified, then copied). It also
			 * keeps munmap() from marking every page accessed and
			 * moving it on the LRU, which took 7% of a 1 GiB restart
			 * here, on the caller's time after the new process runs. */
			(void)madvise(p, f->map_size, MADV_SEQUENTIAL);
			f->map = p;
			f->map_skip = (size_t)(abs - (uint64_t)aligned);
			f->map_len = (size_t)((uint64_t)st.st_size - abs);
		}
		f->mapped = true;
		f->pos = f->end; /* the buffered bytes are the mapping's first bytes */
	}
	*ret_ptr = f->map ? f->map + f->map_skip + f->map_pos : (const void *)f;
	*ret_len = f->map_len - f->map_pos;
	return 0;
}

static void reader_free(struct ghost_io *io)
{
	struct fd_reader *f = container_of(io, struct fd_reader, io);

	if (f->buf)
		munmap(f->buf, READ_BUF_CAP);
	if (f->map)
		munmap(f->map, f->map_size);
	free(f);
}

static const struct io_ops reader_ops = {
	.read = reader_read,
	.read_ptr = reader_read_ptr,
	.at_eof = reader_at_eof,
	.map_all = reader_map_all,
	.free = reader_free,
};

int io_fd_reader_new(int fd, bool socket, struct ghost_io **ret)
{
	struct fd_reader *f;
	struct stat st;

	if (fd < 0 || !ret)
		return -EINVAL;
	if (fstat(fd, &st) < 0)
		return -errno;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	io_init(&f->io, &reader_ops, IO_READ);
	f->fd = fd;
	if (!socket && S_ISREG(st.st_mode)) {
		f->start = lseek(fd, 0, SEEK_CUR);
		f->regular = f->start >= 0;
	}
	*ret = &f->io;
	return 0;
}

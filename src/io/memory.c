/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Memory buffers (Listing 2 of the Ghost report) and the interface on them. A
 * buffer is one anonymous private mapping grown with mremap(MREMAP_MAYMOVE):
 * the kernel moves page tables, never bytes, so growing costs no copy however
 * large the ghost, and io_write_reserve() lends the mapping itself.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "io/io-int.h"
#include "base/banned.h"

#define BUFFER_MIN_CAP (64u << 10)

struct ghost_buffer {
	unsigned refs;
	bool reserved; /* an interface lent [size, size + reservation) */
	uint8_t *data; /* NULL while cap == 0 */
	size_t size;   /* bytes holding data */
	size_t cap;    /* bytes mapped */
};

struct mem_io {
	struct ghost_io io;
	struct ghost_buffer *b;
	size_t pos; /* IO_READ: next byte to consume */
};

static size_t page_size(void)
{
	long p = sysconf(_SC_PAGESIZE);

	return p > 0 ? (size_t)p : 4096;
}

/* Make room for need bytes in total; may move data. */
static int buffer_grow(struct ghost_buffer *b, size_t need)
{
	size_t cap, ps = page_size();
	void *p;

	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : BUFFER_MIN_CAP;
	while (cap < need)
		if (__builtin_mul_overflow(cap, 2, &cap))
			return -ENOMEM;
	if (__builtin_add_overflow(cap, ps - 1, &cap))
		return -ENOMEM;
	cap &= ~(ps - 1);

	if (!b->data)
		p = io_map_anon(cap, false);
	else {
		p = mremap(b->data, b->cap, cap, MREMAP_MAYMOVE);
		if (p == MAP_FAILED)
			p = NULL;
	}
	if (!p)
		return -ENOMEM;
	/* A ghost can be gigabytes: a fork of its holder (the engine clones the
	 * new process from itself) must not copy its page tables, and faulting
	 * it in 4 KiB at a time costs more than the copy into it (a 1 GiB
	 * checkpoint to memory took 0.7 s with small pages, 0.35-0.4 s with
	 * transparent huge pages). mremap keeps both flags. Failure costs only
	 * speed. */
	if (!b->data) {
		(void)madvise(p, cap, MADV_DONTFORK);
		(void)madvise(p, cap, MADV_HUGEPAGE);
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

int ghost_buffer_new(size_t size_hint, struct ghost_buffer **ret)
{
	struct ghost_buffer *b;
	int r;

	if (!ret)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->refs = 1;
	if (size_hint > 0) {
		r = buffer_grow(b, size_hint);
		if (r < 0) {
			free(b);
			return r;
		}
	}
	*ret = b;
	return 0;
}

struct ghost_buffer *ghost_buffer_ref(struct ghost_buffer *b)
{
	if (b)
		b->refs++;
	return b;
}

struct ghost_buffer *ghost_buffer_unref(struct ghost_buffer *b)
{
	if (!b || --b->refs > 0)
		return NULL;
	if (b->data)
		munmap(b->data, b->cap);
	free(b);
	return NULL;
}

size_t ghost_buffer_size(const struct ghost_buffer *b)
{
	return b ? b->size : 0;
}

const void *ghost_buffer_data(const struct ghost_buffer *b)
{
	return b ? b->data : NULL;
}

int ghost_buffer_write(struct ghost_buffer *b, const void *src, size_t len)
{
	size_t need;
	int r;

	if (!b || (!src && len))
		return -EINVAL;
	if (b->reserved)
		return -EBUSY;
	if (len == 0)
		return 0;
	if (__builtin_add_overflow(b->size, len, &need))
		return -ENOMEM;
	r = buffer_grow(b, need);
	if (r < 0)
		return r;
	memcpy(b->data + b->size, src, len);
	b->size = need;
	return 0;
}

ssize_t ghost_buffer_read(const struct ghost_buffer *b, size_t offset, void *dst, size_t len)
{
	size_t n;

	if (!b || (!dst && len))
		return -EINVAL;
	if (offset >= b->size)
		return 0;
	n = MIN(len, b->size - offset);
	if (n > (size_t)SSIZE_MAX)
		n = (size_t)SSIZE_MAX;
	memcpy(dst, b->data + offset, n);
	return (ssize_t)n;
}

/* --- the interface --------------------------------------------------------- */

static int mem_write(struct ghost_io *io, const void *data, size_t len)
{
	struct mem_io *m = container_of(io, struct mem_io, io);

	return ghost_buffer_write(m->b, data, len);
}

static int mem_reserve(struct ghost_io *io, size_t len, void **ret_ptr)
{
	struct mem_io *m = container_of(io, struct mem_io, io);
	struct ghost_buffer *b = m->b;
	size_t need;
	int r;

	if (b->reserved)
		return -EBUSY; /* another interface on the same buffer holds one */
	if (__builtin_add_overflow(b->size, len, &need))
		return -ENOMEM;
	/* Never lend NULL, not even for an empty reservation. */
	r = buffer_grow(b, MAX(need, (size_t)1));
	if (r < 0)
		return r;
	b->reserved = true;
	*ret_ptr = b->data + b->size;
	return 0;
}

static int mem_commit(struct ghost_io *io, size_t len)
{
	struct mem_io *m = container_of(io, struct mem_io, io);

	m->b->reserved = false;
	m->b->size += len;
	return 0;
}

static int mem_read_ptr(struct ghost_io *io, size_t len, const void **ret_ptr)
{
	static const uint8_t empty[1];
	struct mem_io *m = container_of(io, struct mem_io, io);
	struct ghost_buffer *b = m->b;

	if (b->size - m->pos < len) {
		m->pos = b->size;
		return GHOST_ETRUNCATED;
	}
	*ret_ptr = b->data ? b->data + m->pos : empty;
	m->pos += len;
	return 0;
}

static int mem_read(struct ghost_io *io, void *data, size_t len)
{
	const void *p;
	int r = mem_read_ptr(io, len, &p);

	if (r < 0)
		return r;
	memcpy(data, p, len);
	return 0;
}

static int mem_at_eof(struct ghost_io *io)
{
	struct mem_io *m = container_of(io, struct mem_io, io);

	return m->pos >= m->b->size;
}

static int mem_map_all(struct ghost_io *io, const void **ret_ptr, size_t *ret_len)
{
	static const uint8_t empty[1];
	struct mem_io *m = container_of(io, struct mem_io, io);
	struct ghost_buffer *b = m->b;

	*ret_ptr = b->data ? b->data + m->pos : empty;
	*ret_len = b->size - m->pos;
	return 0;
}

static void mem_free(struct ghost_io *io)
{
	struct mem_io *m = container_of(io, struct mem_io, io);

	if (io->reserved)
		m->b->reserved = false; /* abandoned reservation: nothing appended */
	ghost_buffer_unref(m->b);
	free(m);
}

static const struct io_ops mem_ops = {
	.write = mem_write,
	.reserve = mem_reserve,
	.commit = mem_commit,
	.read = mem_read,
	.read_ptr = mem_read_ptr,
	.at_eof = mem_at_eof,
	.map_all = mem_map_all,
	.free = mem_free,
};

int io_memory_new(struct ghost_buffer *b, enum io_mode mode, struct ghost_io **ret)
{
	struct mem_io *m;

	if (!b || !ret || (mode != IO_WRITE && mode != IO_READ))
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	io_init(&m->io, &mem_ops, mode);
	m->b = ghost_buffer_ref(b);
	*ret = &m->io;
	return 0;
}

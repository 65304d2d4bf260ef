/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for the image reader: the same bytes go to img_verify(),
 * to the streaming reader through a memory interface, and to img_show() as
 * text and JSON. Nothing may crash, and whatever img_verify() accepts the
 * others must accept too.
 */
#include <stdint.h>
#include <stdlib.h>

#include "image/image.h"
#include "io/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ghost_io *memory_reader(const uint8_t *data, size_t size, struct ghost_buffer **ret)
{
	struct ghost_buffer *b;
	struct ghost_io *io;

	if (ghost_buffer_new(size, &b) < 0)
		return NULL;
	if (ghost_buffer_write(b, data, size) < 0 || io_memory_new(b, IO_READ, &io) < 0) {
		ghost_buffer_unref(b);
		return NULL;
	}
	*ret = b;
	return io;
}

static int stream(const uint8_t *data, size_t size)
{
	struct ghost_buffer *b;
	struct ghost_io *io = memory_reader(data, size, &b);
	struct img_reader *r;
	struct img_record rec;
	int k;

	if (!io)
		return -1;
	k = img_reader_new(io, IMG_READ_ANY_KERNEL, &r);
	if (k == 0) {
		while ((k = img_read_record(r, &rec)) > 0)
			if (img_rec_check(rec.type, rec.payload, rec.len) != 0)
				__builtin_trap(); /* handed out a payload that does not check */
		img_reader_free(r);
	}
	io_free(io);
	ghost_buffer_unref(b);
	return k;
}

static int show(const uint8_t *data, size_t size, bool json)
{
	struct buf out = BUF_INIT;
	struct ghost_buffer *b;
	struct ghost_io *io = memory_reader(data, size, &b);
	int k;

	if (!io)
		return -1;
	k = img_show(io, IMG_READ_ANY_KERNEL, json, &out);
	buf_release(&out);
	io_free(io);
	ghost_buffer_unref(b);
	return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int v = img_verify(data, size, IMG_READ_ANY_KERNEL);
	int s = stream(data, size);
	int t = show(data, size, false);
	int j = show(data, size, true);

	if (v == 0 && (s != 0 || t != 0 || j != 0))
		__builtin_trap();
	if (t != j || t != s)
		__builtin_trap(); /* show reads exactly what the stream reader reads */
	return 0;
}

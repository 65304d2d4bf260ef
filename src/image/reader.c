/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Reading images: the streaming reader, which hands out one verified record at
 * a time straight from the interface's storage (io_read_ptr), and
 * img_verify(), which walks a whole image in memory before anything is used.
 */
#include <errno.h>
#include <string.h>

#include "image/image-int.h"
#include "io/io.h"
#include "base/banned.h"

int img_reader_alloc(struct ghost_io *io, unsigned flags, struct img_reader **ret)
{
	struct img_reader *r;

	if (!io || !ret || (flags & ~(IMG_READ_ANY_KERNEL | IMG_READ_VERIFIED)))
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->io = io;
	r->flags = flags;
	r->counts.skip_checksums = flags & IMG_READ_VERIFIED;
	*ret = r;
	return 0;
}

int img_reader_read_header(struct img_reader *r)
{
	uint8_t prefix[IMG_HEADER_PREFIX];
	const void *rest;
	uint8_t whole[IMG_HEADER_MAX];
	int size, k;

	k = io_read(r->io, prefix, sizeof(prefix));
	if (k < 0)
		return r->error = k;
	size = img_header_prefix_check(prefix);
	if (size < 0)
		return r->error = size;
	k = io_read_ptr(r->io, (size_t)size - sizeof(prefix), &rest);
	if (k < 0)
		return r->error = k;
	memcpy(whole, prefix, sizeof(prefix));
	memcpy(whole + sizeof(prefix), rest, (size_t)size - sizeof(prefix));
	r->have_header = true;
	k = img_header_check(whole, (size_t)size, r->flags, &r->hdr);
	if (k < 0)
		return r->error = k;
	return 0;
}

int img_reader_new(struct ghost_io *io, enum img_reader_flags flags, struct img_reader **ret)
{
	struct img_reader *r;
	int k;

	if (!ret)
		return -EINVAL;
	k = img_reader_alloc(io, flags, &r);
	if (k < 0)
		return k;
	k = img_reader_read_header(r);
	if (k < 0) {
		img_reader_free(r);
		return k;
	}
	*ret = r;
	return 0;
}

struct img_reader *img_reader_free(struct img_reader *r)
{
	free(r);
	return NULL;
}

void img_reader_set_verified(struct img_reader *r)
{
	if (r)
		r->counts.skip_checksums = true;
}

const struct img_file_header *img_reader_header(const struct img_reader *r)
{
	return r && r->have_header ? &r->hdr : NULL;
}

int img_read_record(struct img_reader *r, struct img_record *rec)
{
	if (!r || !rec)
		return -EINVAL;
	for (;;) {
		struct img_rec_header h;
		const void *payload;
		int k;

		if (r->error)
			return r->error;
		if (r->ended) {
			*rec = (struct img_record){
				.type = IMG_REC_END, .payload = &r->end, .len = sizeof(r->end)
			};
			return 0;
		}
		k = io_read(r->io, &h, sizeof(h));
		if (k < 0)
			return r->error = k;
		if (h.len > IMG_REC_MAX)
			return r->error = GHOST_ECORRUPT;
		k = io_read_ptr(r->io, (size_t)h.len, &payload);
		if (k < 0)
			return r->error = k;
		k = img_rec_validate(&r->counts, &h, payload);
		if (k < 0)
			return r->error = k;
		if (k == 2)
			continue;
		if (k == 0) {
			r->ended = true;
			memcpy(&r->end, payload, sizeof(r->end));
		}
		*rec = (struct img_record){
			.type = h.type, .flags = h.flags, .payload = payload, .len = (size_t)h.len
		};
		return k;
	}
}

int img_verify(const void *data, size_t len, enum img_reader_flags flags)
{
	return img_verify_cb(data, len, flags, NULL, NULL);
}

int img_verify_cb(const void *data, size_t len, enum img_reader_flags flags,
		  void (*between)(void *userdata), void *userdata)
{
	struct img_file_header hdr;
	struct img_counts counts = { 0 };
	const uint8_t *p = data;
	size_t pos;
	int k;

	if ((!data && len) || (flags & ~IMG_READ_ANY_KERNEL))
		return -EINVAL;
	if (len == 0)
		return GHOST_ETRUNCATED;
	if (len < IMG_HEADER_PREFIX)
		return memcmp(p, IMG_MAGIC, MIN(len, strlen(IMG_MAGIC))) == 0 ? GHOST_ETRUNCATED
									    : GHOST_EBADMAGIC;
	k = img_header_prefix_check(p);
	if (k < 0)
		return k;
	if ((size_t)k > len)
		return GHOST_ETRUNCATED;
	pos = (size_t)k;
	k = img_header_check(p, pos, flags, &hdr);
	if (k < 0)
		return k;

	for (;;) {
		struct img_rec_header h;

		if (len - pos < sizeof(h))
			return GHOST_ETRUNCATED;
		memcpy(&h, p + pos, sizeof(h));
		pos += sizeof(h);
		if (h.len > IMG_REC_MAX)
			return GHOST_ECORRUPT;
		if (len - pos < h.len)
			return GHOST_ETRUNCATED;
		k = img_rec_validate(&counts, &h, p + pos);
		if (k < 0)
			return k;
		pos += (size_t)h.len;
		if (between)
			between(userdata);
		if (k == 0)
			return pos == len ? 0 : GHOST_ECORRUPT; /* nothing may follow END */
	}
}

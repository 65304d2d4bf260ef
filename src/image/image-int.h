/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared inside src/image only: the checks common to the streaming reader and
 * img_verify(), and the reader's state, which img_show() looks into to print
 * a header that failed its checks.
 */
#ifndef IMAGE_IMAGE_INT_H
#define IMAGE_IMAGE_INT_H

#include "image/image.h"
#include "base/macro.h"

/* Bytes of the header prefix that say how long the whole header is. */
#define IMG_HEADER_PREFIX 16u
/* Longest header a reader accepts (later versions may grow it). */
#define IMG_HEADER_MAX 4096u

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the image format is little-endian");
_Static_assert(sizeof(struct img_file_header) == 144, "header layout");
_Static_assert(sizeof(struct img_rec_header) == 24, "record header layout");

/* Running totals that END must match. */
struct img_counts {
	uint64_t nrecords;
	uint64_t payload_bytes;
	uint64_t page_count;
	bool skip_checksums; /* the bytes were verified by img_verify() already */
};

/* This machine's arch and kernel release, as the header stores them. */
uint32_t img_host_arch(void);
int img_host_kernel(char ret[64]);

/* The first IMG_HEADER_PREFIX bytes: magic, version, header_size. Returns
 * header_size or GHOST_EBADMAGIC, GHOST_EVERSION, GHOST_ECORRUPT. */
int img_header_prefix_check(const void *data);
/*
 * The whole header, size bytes (from img_header_prefix_check()): checksum,
 * arch, page size, kernel. ret gets the decoded header first, so a caller can
 * show what a rejected header said.
 */
int img_header_check(const void *data, size_t size, unsigned flags, struct img_file_header *ret);

/*
 * One record, its payload in memory: length bound, checksum, type, payload
 * check, END counts. Returns 1 for a record to hand out, 2 for one to skip
 * (unknown and optional), 0 for a sound END, < 0 on error. Counts non-END
 * records into c.
 */
int img_rec_validate(struct img_counts *c, const struct img_rec_header *h, const void *payload);

struct img_reader {
	struct ghost_io *io;
	unsigned flags;
	int error;        /* sticky */
	bool have_header; /* hdr holds a whole header as read, checked or not */
	bool ended;
	struct img_file_header hdr;
	struct img_counts counts;
	struct img_end end;
};

/* img_reader_new() in two steps, so that img_show() sees a header that fails. */
int img_reader_alloc(struct ghost_io *io, unsigned flags, struct img_reader **ret);
int img_reader_read_header(struct img_reader *r);

#endif

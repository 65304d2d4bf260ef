/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Writing images. A record is built inside a reservation of the interface's
 * own storage: the payload is copied (or, for pages, written by the caller)
 * after room for the record header, hashed where it lies, and the header is
 * filled in last. Only a payload too large for one reservation is hashed
 * piecewise and written with three io_write() calls.
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "image/image-int.h"
#include "io/io.h"
#include "base/banned.h"

struct img_writer {
	struct ghost_io *io;
	int error; /* sticky */
	bool finished;
	bool pages_open;
	uint8_t *pages_rec; /* the open page record's reservation */
	struct img_pages pages;
	struct img_counts counts;
};

static int fail(struct img_writer *w, int r)
{
	if (r < 0 && w->error == 0)
		w->error = r;
	return r;
}

int img_writer_new(struct ghost_io *io, struct img_writer **ret)
{
	struct img_file_header h = {
		.version = IMG_VERSION,
		.header_size = sizeof(struct img_file_header),
		.arch = img_host_arch(),
		.page_size = IMG_PAGE_SIZE,
	};
	struct img_writer *w;
	struct timespec ts;
	char host[256] = "";
	int r;

	if (!io || !ret)
		return -EINVAL;
	memcpy(h.magic, IMG_MAGIC, sizeof(h.magic));
	if (clock_gettime(CLOCK_REALTIME, &ts) == 0)
		h.created_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	r = img_host_kernel(h.kernel);
	if (r < 0)
		return r;
	if (gethostname(host, sizeof(host) - 1) == 0)
		memcpy(h.machine, host, strnlen(host, sizeof(h.machine) - 1));
	h.checksum = XXH3_64bits(&h, offsetof(struct img_file_header, checksum));

	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->io = io;
	r = io_write(io, &h, sizeof(h));
	if (r < 0) {
		free(w);
		return r;
	}
	*ret = w;
	return 0;
}

struct img_writer *img_writer_free(struct img_writer *w)
{
	free(w);
	return NULL;
}

static void copy_joined(void *dst, size_t n, const void *a, size_t alen, const void *b)
{
	size_t k = MIN(n, alen);

	if (k)
		memcpy(dst, a, k);
	if (n > k)
		memcpy((uint8_t *)dst + k, b, n - k);
}

static void count(struct img_writer *w, uint32_t type, const struct img_pages *pages, size_t len)
{
	w->counts.nrecords++;
	w->counts.payload_bytes += len;
	if (type == IMG_REC_PAGES && pages)
		w->counts.page_count += pages->npages;
}

/* A payload too large for one reservation. */
static int write_split(struct img_writer *w, struct img_rec_header *h, const void *fixed,
		      size_t fixed_len, const void *var, size_t var_len)
{
	XXH3_state_t *st = XXH3_createState();
	int r;

	if (!st)
		return -ENOMEM;
	if (XXH3_64bits_reset_withSeed(st, img_rec_seed(h->type, h->flags, h->len)) != XXH_OK ||
	    XXH3_64bits_update(st, fixed, fixed_len) != XXH_OK ||
	    XXH3_64bits_update(st, var, var_len) != XXH_OK) {
		XXH3_freeState(st);
		return -EINVAL;
	}
	h->checksum = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	r = io_write(w->io, h, sizeof(*h));
	if (r >= 0)
		r = io_write(w->io, fixed, fixed_len);
	if (r >= 0)
		r = io_write(w->io, var, var_len);
	return r;
}

int img_write_record_flags(struct img_writer *w, uint32_t type, uint32_t flags, const void *fixed,
			   size_t fixed_len, const void *var, size_t var_len)
{
	struct img_rec_header h = { .type = type, .flags = flags };
	struct img_pages pages, *pp = NULL;
	size_t len;
	uint8_t *res;
	int r;

	if (!w)
		return -EINVAL;
	if (w->error)
		return w->error;
	if (type == 0 || type == IMG_REC_END || w->pages_open || w->finished ||
	    (!fixed && fixed_len) || (!var && var_len) ||
	    __builtin_add_overflow(fixed_len, var_len, &len) || len > IMG_REC_MAX)
		return fail(w, -EINVAL);
	h.len = len;
	if (type == IMG_REC_PAGES && len >= sizeof(pages)) {
		copy_joined(&pages, sizeof(pages), fixed, fixed_len, var);
		pp = &pages;
	}

	if (len > IO_RESERVE_MAX - sizeof(h)) {
		r = write_split(w, &h, fixed, fixed_len, var, var_len);
		if (r < 0)
			return fail(w, r);
		count(w, type, pp, len);
		return 0;
	}

	r = io_write_reserve(w->io, sizeof(h) + len, (void **)&res);
	if (r < 0)
		return fail(w, r);
	copy_joined(res + sizeof(h), len, fixed, fixed_len, var);
	h.checksum = XXH3_64bits_withSeed(res + sizeof(h), len, img_rec_seed(type, flags, len));
	memcpy(res, &h, sizeof(h));
	r = io_write_commit(w->io);
	if (r < 0)
		return fail(w, r);
	count(w, type, pp, len);
	return 0;
}

int img_write_record(struct img_writer *w, uint32_t type, const void *fixed, size_t fixed_len,
		     const void *var, size_t var_len)
{
	return img_write_record_flags(w, type, 0, fixed, fixed_len, var, var_len);
}

int img_write_pages_begin(struct img_writer *w, uint64_t vaddr, uint32_t npages, void **ret_data)
{
	size_t len;
	int r;

	if (!w || !ret_data)
		return -EINVAL;
	if (w->error)
		return w->error;
	if (w->pages_open || w->finished || npages == 0 || npages > IMG_PAGES_PER_REC ||
	    (vaddr & (IMG_PAGE_SIZE - 1)) || vaddr + (uint64_t)npages * IMG_PAGE_SIZE - 1 < vaddr)
		return fail(w, -EINVAL);
	len = sizeof(struct img_rec_header) + sizeof(struct img_pages) +
	      (size_t)npages * IMG_PAGE_SIZE;
	r = io_write_reserve(w->io, len, (void **)&w->pages_rec);
	if (r < 0)
		return fail(w, r);
	w->pages = (struct img_pages){ .vaddr = vaddr, .npages = npages };
	w->pages_open = true;
	*ret_data = w->pages_rec + sizeof(struct img_rec_header) + sizeof(struct img_pages);
	return 0;
}

int img_write_pages_commit(struct img_writer *w)
{
	struct img_rec_header h = { .type = IMG_REC_PAGES };
	uint8_t *payload;
	int r;

	if (!w)
		return -EINVAL;
	if (w->error)
		return w->error;
	if (!w->pages_open)
		return fail(w, -EINVAL);
	w->pages_open = false;
	payload = w->pages_rec + sizeof(h);
	h.len = sizeof(struct img_pages) + (uint64_t)w->pages.npages * IMG_PAGE_SIZE;
	memcpy(payload, &w->pages, sizeof(w->pages));
	h.checksum = XXH3_64bits_withSeed(payload, (size_t)h.len, img_rec_seed(h.type, 0, h.len));
	memcpy(w->pages_rec, &h, sizeof(h));
	w->pages_rec = NULL;
	r = io_write_commit(w->io);
	if (r < 0)
		return fail(w, r);
	count(w, IMG_REC_PAGES, &w->pages, (size_t)h.len);
	return 0;
}

int img_writer_finish(struct img_writer *w)
{
	struct img_rec_header h = { .type = IMG_REC_END, .len = sizeof(struct img_end) };
	struct img_end end;
	uint8_t rec[sizeof(h) + sizeof(end)];
	int r;

	if (!w)
		return -EINVAL;
	if (w->error)
		return w->error;
	if (w->finished)
		return 0;
	if (w->pages_open)
		return fail(w, -EINVAL);
	end = (struct img_end){
		.nrecords = w->counts.nrecords,
		.payload_bytes = w->counts.payload_bytes,
		.page_count = w->counts.page_count,
	};
	h.checksum = XXH3_64bits_withSeed(&end, sizeof(end), img_rec_seed(h.type, 0, h.len));
	memcpy(rec, &h, sizeof(h));
	memcpy(rec + sizeof(h), &end, sizeof(end));
	r = io_write(w->io, rec, sizeof(rec));
	if (r >= 0)
		r = io_finish(w->io);
	if (r < 0)
		return fail(w, r);
	w->finished = true;
	return 0;
}

uint64_t img_writer_pages(const struct img_writer *w)
{
	return w ? w->counts.page_count : 0;
}

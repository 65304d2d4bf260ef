/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What makes an image sound: the header checks, the record checksum and its
 * seed, and the internal consistency of every known payload, shared by the
 * streaming reader, img_verify() and img_show(). After these checks the
 * engine may index arrays and copy strings from a payload without looking.
 */
#include <limits.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <xxhash.h>

#include "image/image-int.h"
#include "base/macro.h"
#include "ghost/error.h"
#include "base/banned.h"

#define REC_SEED_SALT UINT64_C(0x4748535452454331) /* "GHSTREC1" */
#define MAX_PID 4194304u                            /* PID_MAX_LIMIT */
#define MAX_GROUPS 65536u                           /* NGROUPS_MAX */

/*
 * A fuzzer cannot forge checksums, so a fuzzing build accepts wrong ones and
 * lets it reach the payload checks behind them (the libpng/OpenSSL practice).
 */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define CHECKSUM_BAD(a, b) ((void)(a), (void)(b), false)
#else
#define CHECKSUM_BAD(a, b) ((a) != (b))
#endif

uint64_t img_rec_seed(uint32_t type, uint32_t flags, uint64_t len)
{
	uint8_t b[16];

	memcpy(b, &type, 4);
	memcpy(b + 4, &flags, 4);
	memcpy(b + 8, &len, 8);
	return XXH3_64bits_withSeed(b, sizeof(b), REC_SEED_SALT);
}

uint32_t img_host_arch(void)
{
#if defined(__x86_64__)
	return IMG_ARCH_X86_64;
#else
	return 0; /* no other architecture yet: its images are refused */
#endif
}

int img_host_kernel(char ret[64])
{
	struct utsname u;

	memset(ret, 0, 64);
	if (uname(&u) < 0)
		return -errno;
	memcpy(ret, u.release, strnlen(u.release, 63));
	return 0;
}

static const struct {
	const char *name;
	size_t size;
} rec_types[_IMG_REC_MAX] = {
	[IMG_REC_PROCESS] = { "process", sizeof(struct img_process) },
	[IMG_REC_CREDS] = { "creds", sizeof(struct img_creds) },
	[IMG_REC_RLIMITS] = { "rlimits", sizeof(struct img_rlimits) },
	[IMG_REC_SCHED] = { "sched", sizeof(struct img_sched) },
	[IMG_REC_MM] = { "mm", sizeof(struct img_mm) },
	[IMG_REC_VMA] = { "vma", sizeof(struct img_vma) },
	[IMG_REC_FILE] = { "file", sizeof(struct img_file) },
	[IMG_REC_FILE_DATA] = { "file_data", sizeof(struct img_file_data) },
	[IMG_REC_FD] = { "fd", sizeof(struct img_fd) },
	[IMG_REC_SIGACTIONS] = { "sigactions", sizeof(struct img_sigactions) },
	[IMG_REC_SIGPENDING] = { "sigpending", sizeof(struct img_sigpending) },
	[IMG_REC_ITIMERS] = { "itimers", sizeof(struct img_itimers) },
	[IMG_REC_THREAD] = { "thread", sizeof(struct img_thread) },
	[IMG_REC_PAGES] = { "pages", sizeof(struct img_pages) },
	[IMG_REC_END] = { "end", sizeof(struct img_end) },
	[IMG_REC_PAGEMAP] = { "pagemap", sizeof(struct img_pagemap) },
	[IMG_REC_EPOLL] = { "epoll", sizeof(struct img_epoll) },
};

static bool known(uint32_t type)
{
	return type > 0 && type < _IMG_REC_MAX;
}

size_t img_rec_min_size(uint32_t type)
{
	return known(type) ? rec_types[type].size : 0;
}

const char *img_rec_type_name(uint32_t type)
{
	return known(type) ? rec_types[type].name : "unknown";
}

/* A path of len bytes at p: bounded, no NUL inside. */
static bool path_ok(const void *p, uint64_t len)
{
	return len <= IMG_PATH_MAX && (len == 0 || !memchr(p, 0, (size_t)len));
}

/* The payload is exactly the struct followed by var bytes. */
static bool var_is(size_t len, size_t fixed, uint64_t var)
{
	return len >= fixed && (uint64_t)(len - fixed) == var;
}

static bool page_aligned(uint64_t v)
{
	return (v & (IMG_PAGE_SIZE - 1)) == 0;
}

static int check_process(const struct img_process *p, size_t len)
{
	const char *var = (const char *)(p + 1);
	uint64_t total = (uint64_t)p->cwd_len + p->exe_len + p->root_len;

	if (!var_is(len, sizeof(*p), total))
		return GHOST_ECORRUPT;
	if (p->pid == 0 || p->pid > MAX_PID || p->nthreads == 0 || p->nthreads > MAX_PID)
		return GHOST_ECORRUPT;
	if (!path_ok(var, p->cwd_len) || !path_ok(var + p->cwd_len, p->exe_len) ||
	    !path_ok(var + p->cwd_len + p->exe_len, p->root_len))
		return GHOST_ECORRUPT;
	return 0;
}

static int check_rlimits(const struct img_rlimits *p)
{
	for (size_t i = 0; i < IMG_RLIMITS; i++)
		if (p->lim[i].cur > p->lim[i].max)
			return GHOST_ECORRUPT;
	return 0;
}

static int check_vma(const struct img_vma *p, size_t len)
{
	if (!var_is(len, sizeof(*p), p->path_len) || !path_ok(p + 1, p->path_len))
		return GHOST_ECORRUPT;
	if (p->start >= p->end || !page_aligned(p->start) || !page_aligned(p->end) ||
	    !page_aligned(p->pgoff) || p->kind >= _IMG_VMA_KIND_MAX)
		return GHOST_ECORRUPT;
	return 0;
}

static int check_file(const struct img_file *p, size_t len)
{
	if (!var_is(len, sizeof(*p), p->path_len) || !path_ok(p + 1, p->path_len))
		return GHOST_ECORRUPT;
	if (p->id == 0 || p->peer_id == p->id || p->kind >= _IMG_FILE_KIND_MAX || p->stdio_fd > 2)
		return GHOST_ECORRUPT;
	if ((p->kind == IMG_FILE_CARRIED || p->kind == IMG_FILE_EPOLL) && p->peer_id)
		return GHOST_ECORRUPT;
	return 0;
}

static int check_itimers(const struct img_itimers *p)
{
	for (size_t i = 0; i < ARRAY_SIZE(p->timer); i++) {
		if (p->timer[i].interval_sec < 0 || p->timer[i].value_sec < 0 ||
		    p->timer[i].interval_usec < 0 || p->timer[i].interval_usec >= 1000000 ||
		    p->timer[i].value_usec < 0 || p->timer[i].value_usec >= 1000000)
			return GHOST_ECORRUPT;
	}
	return 0;
}

static int check_pages(const struct img_pages *p, size_t len)
{
	uint64_t bytes, last;

	if (p->npages == 0 || p->npages > IMG_PAGES_PER_REC || !page_aligned(p->vaddr))
		return GHOST_ECORRUPT;
	bytes = (uint64_t)p->npages * IMG_PAGE_SIZE;
	if (!var_is(len, sizeof(*p), bytes) || __builtin_add_overflow(p->vaddr, bytes - 1, &last))
		return GHOST_ECORRUPT;
	return 0;
}

static int check_pagemap(const struct img_pagemap *p, size_t len)
{
	const uint8_t *run = (const uint8_t *)(p + 1);
	uint64_t next = 0;

	if (!var_is(len, sizeof(*p), (uint64_t)p->count * sizeof(struct img_page_run)))
		return GHOST_ECORRUPT;
	for (uint32_t i = 0; i < p->count; i++) {
		struct img_page_run r;
		uint64_t end;

		memcpy(&r, run + (size_t)i * sizeof(r), sizeof(r));
		if (!page_aligned(r.vaddr) || r.npages == 0 || r.vaddr < next ||
		    r.npages > UINT64_MAX / IMG_PAGE_SIZE ||
		    __builtin_add_overflow(r.vaddr, r.npages * IMG_PAGE_SIZE, &end))
			return GHOST_ECORRUPT;
		next = end;
	}
	return 0;
}

static int check_epoll(const struct img_epoll *p, size_t len)
{
	const uint8_t *tfd = (const uint8_t *)(p + 1);

	if (p->file_id == 0 ||
	    !var_is(len, sizeof(*p), (uint64_t)p->count * sizeof(struct img_epoll_tfd)))
		return GHOST_ECORRUPT;
	for (uint32_t i = 0; i < p->count; i++) {
		struct img_epoll_tfd t;

		memcpy(&t, tfd + (size_t)i * sizeof(t), sizeof(t));
		/* An instance cannot watch itself (the kernel refuses it). */
		if (t.tfd > INT_MAX || t.file_id == 0 || t.file_id == p->file_id)
			return GHOST_ECORRUPT;
	}
	return 0;
}

int img_rec_check(uint32_t type, const void *payload, size_t len)
{
	if (!known(type))
		return 0;
	if (len < rec_types[type].size || !payload)
		return GHOST_ECORRUPT;

	switch (type) {
	case IMG_REC_PROCESS:
		return check_process(payload, len);
	case IMG_REC_CREDS: {
		const struct img_creds *p = payload;

		if (p->ngroups > MAX_GROUPS || !var_is(len, sizeof(*p), (uint64_t)p->ngroups * 4))
			return GHOST_ECORRUPT;
		return 0;
	}
	case IMG_REC_RLIMITS:
		return check_rlimits(payload);
	case IMG_REC_SCHED: {
		const struct img_sched *p = payload;

		return var_is(len, sizeof(*p), p->affinity_len) ? 0 : GHOST_ECORRUPT;
	}
	case IMG_REC_MM: {
		const struct img_mm *p = payload;

		if (p->auxv_len % 16 || !var_is(len, sizeof(*p), p->auxv_len))
			return GHOST_ECORRUPT;
		return 0;
	}
	case IMG_REC_VMA:
		return check_vma(payload, len);
	case IMG_REC_FILE:
		return check_file(payload, len);
	case IMG_REC_FILE_DATA: {
		const struct img_file_data *p = payload;

		return p->file_id ? 0 : GHOST_ECORRUPT;
	}
	case IMG_REC_FD: {
		const struct img_fd *p = payload;

		return p->file_id && p->fd <= INT_MAX ? 0 : GHOST_ECORRUPT;
	}
	case IMG_REC_SIGACTIONS:
		return 0;
	case IMG_REC_SIGPENDING: {
		const struct img_sigpending *p = payload;

		if (p->shared > 1 ||
		    !var_is(len, sizeof(*p), (uint64_t)p->count * IMG_SIGINFO_SIZE))
			return GHOST_ECORRUPT;
		return 0;
	}
	case IMG_REC_ITIMERS:
		return check_itimers(payload);
	case IMG_REC_THREAD: {
		const struct img_thread *p = payload;

		if (p->tid == 0 || !var_is(len, sizeof(*p), p->xstate_len))
			return GHOST_ECORRUPT;
		return 0;
	}
	case IMG_REC_PAGES:
		return check_pages(payload, len);
	case IMG_REC_END:
		return 0;
	case IMG_REC_PAGEMAP:
		return check_pagemap(payload, len);
	case IMG_REC_EPOLL:
		return check_epoll(payload, len);
	}
	return 0;
}

int img_rec_validate(struct img_counts *c, const struct img_rec_header *h, const void *payload)
{
	uint64_t sum;
	int r;

	if (h->len > IMG_REC_MAX)
		return GHOST_ECORRUPT;
	if (!c->skip_checksums) {
		sum = XXH3_64bits_withSeed(payload, (size_t)h->len,
					   img_rec_seed(h->type, h->flags, h->len));
		if (CHECKSUM_BAD(sum, h->checksum))
			return GHOST_ECHECKSUM;
	}
	if (!known(h->type)) {
		if (!(h->flags & IMG_RECF_OPTIONAL))
			return GHOST_ECORRUPT;
		c->nrecords++;
		c->payload_bytes += h->len;
		return 2;
	}
	r = img_rec_check(h->type, payload, (size_t)h->len);
	if (r < 0)
		return r;
	if (h->type == IMG_REC_END) {
		const struct img_end *e = payload;

		if (e->nrecords != c->nrecords || e->payload_bytes != c->payload_bytes ||
		    e->page_count != c->page_count)
			return GHOST_ECORRUPT;
		return 0;
	}
	c->nrecords++;
	c->payload_bytes += h->len;
	if (h->type == IMG_REC_PAGES)
		c->page_count += ((const struct img_pages *)payload)->npages;
	return 1;
}

int img_header_prefix_check(const void *data)
{
	const struct img_file_header *h = data;

	if (memcmp(h->magic, IMG_MAGIC, sizeof(h->magic)) != 0)
		return GHOST_EBADMAGIC;
	if (h->version != IMG_VERSION)
		return GHOST_EVERSION;
	if (h->header_size < sizeof(struct img_file_header) || h->header_size > IMG_HEADER_MAX)
		return GHOST_ECORRUPT;
	return (int)h->header_size;
}

int img_header_check(const void *data, size_t size, unsigned flags, struct img_file_header *ret)
{
	const uint8_t *p = data;
	uint64_t sum, stored;
	char kernel[64];
	long ps;
	int r;

	/* The checksum is the header's last field, wherever a later version ends it. */
	memcpy(ret, p, sizeof(*ret) - sizeof(ret->checksum));
	memcpy(&stored, p + size - sizeof(stored), sizeof(stored));
	ret->checksum = stored;
	sum = XXH3_64bits(p, size - sizeof(stored));
	if (CHECKSUM_BAD(sum, stored))
		return GHOST_ECHECKSUM;
	ps = sysconf(_SC_PAGESIZE);
	if (ret->arch != img_host_arch() || ret->page_size != IMG_PAGE_SIZE ||
	    (ps > 0 && (unsigned long)ps != IMG_PAGE_SIZE))
		return GHOST_EARCH;
	if (!(flags & IMG_READ_ANY_KERNEL)) {
		r = img_host_kernel(kernel);
		if (r < 0)
			return r;
		if (strncmp(kernel, ret->kernel, sizeof(kernel)) != 0)
			return GHOST_EKERNEL;
	}
	return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of src/image: round trips of every record type through memory,
 * file and socket interfaces; every truncation and every flipped bit of a
 * small image is refused; header checks (magic, version, arch, kernel,
 * checksum); record length, END counts, unknown types, payload checks;
 * img_show() in text and JSON on sound and damaged images, carried streams
 * and epoll instances included.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <cmocka.h>

#include "image/image.h"
#include "io/io.h"

#define HDR_SIZE sizeof(struct img_file_header)
#define CHECKSUM_OFF offsetof(struct img_file_header, checksum)
#define MiB (1u << 20)

/* --- expected records ------------------------------------------------------------ */

struct expect {
	uint32_t type;
	size_t len;
	uint8_t *payload;
};

static struct expect expected[256];
static size_t nexpected;

static void expect_reset(void)
{
	for (size_t i = 0; i < nexpected; i++)
		free(expected[i].payload);
	nexpected = 0;
}

static void put(struct img_writer *w, uint32_t type, const void *fixed, size_t flen,
		const void *var, size_t vlen)
{
	struct expect *e;

	assert_int_equal(img_write_record(w, type, fixed, flen, var, vlen), 0);
	assert_true(nexpected < 256);
	e = &expected[nexpected++];
	e->type = type;
	e->len = flen + vlen;
	e->payload = malloc(e->len + 1);
	assert_non_null(e->payload);
	if (flen)
		memcpy(e->payload, fixed, flen);
	if (vlen)
		memcpy(e->payload + flen, var, vlen);
}

static uint8_t page_byte(uint64_t vaddr, size_t i)
{
	return (uint8_t)((vaddr >> 12) * 7 + i * 13 + (i >> 10));
}

static void put_pages(struct img_writer *w, uint64_t vaddr, uint32_t npages)
{
	size_t bytes = (size_t)npages * IMG_PAGE_SIZE;
	struct img_pages hdr = { .vaddr = vaddr, .npages = npages };
	struct expect *e;
	uint8_t *data;

	assert_int_equal(img_write_pages_begin(w, vaddr, npages, (void **)&data), 0);
	for (size_t i = 0; i < bytes; i++)
		data[i] = page_byte(vaddr, i);
	assert_true(nexpected < 256);
	e = &expected[nexpected++];
	e->type = IMG_REC_PAGES;
	e->len = sizeof(hdr) + bytes;
	e->payload = malloc(e->len);
	assert_non_null(e->payload);
	memcpy(e->payload, &hdr, sizeof(hdr));
	memcpy(e->payload + sizeof(hdr), data, bytes);
	assert_int_equal(img_write_pages_commit(w), 0);
}

/* Every record type, then page_recs page records (1, 2, 3, ... pages). */
static void write_sample(struct img_writer *w, unsigned page_recs)
{
	static const char paths[] = "/tmp"
				    "/usr/bin/sample"
				    "/";
	struct img_process proc = {
		.pid = 1234, .ppid = 1, .pgid = 1234, .sid = 1000, .nthreads = 2,
		.umask = 022, .exit_signal = 17, .comm = "sample", .exe_size = 12345,
		.exe_mtime_ns = 42, .cwd_len = 4, .exe_len = 15, .root_len = 1,
	};
	struct img_creds creds = { .uid = 1000, .euid = 1000, .suid = 1000, .fsuid = 1000,
				   .gid = 100, .egid = 100, .sgid = 100, .fsgid = 100,
				   .cap_bnd = 0x1ffffffffff, .ngroups = 2 };
	uint32_t groups[2] = { 100, 27 };
	struct img_rlimits lim;
	struct img_sched sched = { .nice = 5, .policy = 0, .affinity_len = 8 };
	uint8_t mask[8] = { 0x0d, 0, 0, 0, 0, 0, 0, 0x80 };
	struct img_mm mm = { .start_code = 0x400000, .end_code = 0x401000, .start_brk = 0x600000,
			     .brk = 0x621000, .start_stack = 0x7ffffffde000, .auxv_len = 32,
			     .dumpable = 1 };
	uint64_t auxv[4] = { 6, 4096, 0, 0 };
	struct img_vma vmas[3] = {
		{ .start = 0x400000, .end = 0x401000, .prot = 5, .kind = IMG_VMA_FILE_PRIVATE,
		  .path_len = 15 },
		{ .start = 0x7f0000000000, .end = 0x7f0000010000, .prot = 3, .kind = IMG_VMA_ANON,
		  .flags = IMG_VMAF_DONTDUMP | IMG_VMAF_HUGEPAGE },
		{ .start = 0x7ffffffde000, .end = 0x7ffffffff000, .prot = 3, .kind = IMG_VMA_STACK,
		  .flags = IMG_VMAF_GROWSDOWN },
	};
	struct img_file files[6] = {
		{ .id = 1, .kind = IMG_FILE_REG, .flags = 02, .pos = 77, .size = 1000,
		  .mode = 0100644, .path_len = 11 },
		{ .id = 2, .kind = IMG_FILE_PIPE, .flags = 0, .peer_id = 3, .pipe_size = 65536 },
		{ .id = 3, .kind = IMG_FILE_PIPE, .flags = 01, .peer_id = 2, .pipe_size = 65536 },
		/* streams carried by the exporter's caller */
		{ .id = 4, .kind = IMG_FILE_CARRIED, .flags = 0, .mode = 010600, .ino = 4242,
		  .path_len = 11 },
		{ .id = 5, .kind = IMG_FILE_CARRIED, .flags = 04002, .mode = 0140777,
		  .sock_type = 1, .ino = 99, .path_len = 11 },
		/* an epoll instance (O_RDWR | O_NONBLOCK) */
		{ .id = 6, .kind = IMG_FILE_EPOLL, .flags = 04002 },
	};
	struct img_file_data fdata = { .file_id = 2 };
	struct img_fd fds[6] = { { .fd = 0, .file_id = 1 },
				 { .fd = 3, .file_id = 2 },
				 { .fd = 4, .file_id = 3, .fd_flags = 1 },
				 { .fd = 20, .file_id = 4 },
				 { .fd = 21, .file_id = 5, .fd_flags = 1 },
				 { .fd = 7, .file_id = 6, .fd_flags = 1 } };
	/* level-triggered, edge-triggered, a one-shot that fired */
	struct img_epoll ep = { .file_id = 6, .count = 3 };
	struct img_epoll_tfd tfds[3] = {
		{ .tfd = 3, .file_id = 2, .events = 0x19, .data = 0x1122334455667788 },
		{ .tfd = 21, .file_id = 5, .events = 0x80000019, .data = 2 },
		{ .tfd = 4, .file_id = 3, .events = 0x40000000, .data = 3 },
	};
	struct img_sigactions *acts = calloc(1, sizeof(*acts));
	struct img_sigpending pend = { .shared = 1, .count = 1 };
	uint8_t siginfo[IMG_SIGINFO_SIZE] = { 10 }; /* SIGUSR1 */
	struct img_itimers timers = { .timer = { { 1, 500000, 0, 250000 } } };
	struct img_thread th = { .tid = 1234, .xstate_len = 64 };
	uint8_t xstate[64];

	assert_non_null(acts);
	for (int i = 0; i < IMG_RLIMITS; i++)
		lim.lim[i].cur = lim.lim[i].max = UINT64_MAX;
	lim.lim[7].cur = 1024;
	lim.lim[7].max = 4096;
	acts->act[1].handler = 0x401000; /* SIGINT */
	acts->act[1].mask = 1u << 14;
	acts->act[12].handler = 1; /* SIGPIPE ignored */
	memset(xstate, 0xab, sizeof(xstate));
	th.regs[16] = 0x401234;
	th.regs[19] = 0x7ffffffde100;

	put(w, IMG_REC_PROCESS, &proc, sizeof(proc), paths, 20);
	put(w, IMG_REC_CREDS, &creds, sizeof(creds), groups, sizeof(groups));
	put(w, IMG_REC_RLIMITS, &lim, sizeof(lim), NULL, 0);
	put(w, IMG_REC_SCHED, &sched, sizeof(sched), mask, sizeof(mask));
	put(w, IMG_REC_MM, &mm, sizeof(mm), auxv, sizeof(auxv));
	put(w, IMG_REC_VMA, &vmas[0], sizeof(vmas[0]), "/usr/bin/sample", 15);
	put(w, IMG_REC_VMA, &vmas[1], sizeof(vmas[1]), NULL, 0);
	put(w, IMG_REC_VMA, &vmas[2], sizeof(vmas[2]), NULL, 0);
	put(w, IMG_REC_FILE, &files[0], sizeof(files[0]), "/etc/passwd", 11);
	put(w, IMG_REC_FILE, &files[1], sizeof(files[1]), NULL, 0);
	put(w, IMG_REC_FILE, &files[2], sizeof(files[2]), NULL, 0);
	put(w, IMG_REC_FILE, &files[3], sizeof(files[3]), "pipe:[4242]", 11);
	put(w, IMG_REC_FILE, &files[4], sizeof(files[4]), "socket:[99]", 11);
	put(w, IMG_REC_FILE, &files[5], sizeof(files[5]), NULL, 0);
	put(w, IMG_REC_FILE_DATA, &fdata, sizeof(fdata), "queued", 6);
	for (int i = 0; i < 6; i++)
		put(w, IMG_REC_FD, &fds[i], sizeof(fds[i]), NULL, 0);
	put(w, IMG_REC_EPOLL, &ep, sizeof(ep), tfds, sizeof(tfds));
	put(w, IMG_REC_SIGACTIONS, acts, sizeof(*acts), NULL, 0);
	put(w, IMG_REC_SIGPENDING, &pend, sizeof(pend), siginfo, sizeof(siginfo));
	put(w, IMG_REC_ITIMERS, &timers, sizeof(timers), NULL, 0);
	/* an optional record of a type from the future: skipped, zero length */
	assert_int_equal(img_write_record_flags(w, 200, IMG_RECF_OPTIONAL, NULL, 0, NULL, 0), 0);
	put(w, IMG_REC_THREAD, &th, sizeof(th), xstate, sizeof(xstate));
	th.tid = 1235;
	put(w, IMG_REC_THREAD, &th, sizeof(th), xstate, sizeof(xstate));
	{
		struct img_pagemap pm = { .count = 2 };
		struct img_page_run runs[2] = { { 0x100000000, 1 }, { 0x7f0000000000, 16 } };

		put(w, IMG_REC_PAGEMAP, &pm, sizeof(pm), runs, sizeof(runs));
	}
	for (unsigned i = 0; i < page_recs; i++)
		put_pages(w, 0x7f0000000000 + (uint64_t)i * 0x4000, i % 4 + 1);
	put_pages(w, 0x100000000, 1); /* outside every VMA */
	free(acts);
}

static uint64_t sample_pages(unsigned page_recs)
{
	uint64_t n = 1;

	for (unsigned i = 0; i < page_recs; i++)
		n += i % 4 + 1;
	return n;
}

/* The sample image in a fresh malloc()ed array. */
static uint8_t *make_sample(unsigned page_recs, size_t *ret_len)
{
	struct ghost_buffer *b;
	struct ghost_io *io;
	struct img_writer *w;
	uint8_t *copy;

	expect_reset();
	assert_int_equal(ghost_buffer_new(0, &b), 0);
	assert_int_equal(io_memory_new(b, IO_WRITE, &io), 0);
	assert_int_equal(img_writer_new(io, &w), 0);
	write_sample(w, page_recs);
	assert_int_equal(img_writer_pages(w), sample_pages(page_recs));
	assert_int_equal(img_writer_finish(w), 0);
	img_writer_free(w);
	io_free(io);
	*ret_len = ghost_buffer_size(b);
	copy = malloc(*ret_len);
	assert_non_null(copy);
	memcpy(copy, ghost_buffer_data(b), *ret_len);
	ghost_buffer_unref(b);
	return copy;
}

/* Stream data through the reader; 0 when a sound END was reached. */
static int read_image(const void *data, size_t len, unsigned flags, bool compare)
{
	struct ghost_buffer *b;
	struct ghost_io *io;
	struct img_reader *r;
	struct img_record rec;
	size_t i = 0;
	int k;

	assert_int_equal(ghost_buffer_new(len, &b), 0);
	assert_int_equal(ghost_buffer_write(b, data, len), 0);
	assert_int_equal(io_memory_new(b, IO_READ, &io), 0);
	k = img_reader_new(io, flags, &r);
	if (k == 0) {
		while ((k = img_read_record(r, &rec)) > 0) {
			assert_int_equal(img_rec_check(rec.type, rec.payload, rec.len), 0);
			if (compare) {
				assert_true(i < nexpected);
				assert_int_equal(rec.type, expected[i].type);
				assert_int_equal(rec.len, expected[i].len);
				assert_memory_equal(rec.payload, expected[i].payload, rec.len);
			}
			i++;
		}
		if (k == 0) {
			assert_int_equal(rec.type, IMG_REC_END);
			if (compare)
				assert_int_equal(i, nexpected);
			/* after END, END again */
			assert_int_equal(img_read_record(r, &rec), 0);
			assert_int_equal(rec.type, IMG_REC_END);
		} else {
			/* sticky */
			assert_int_equal(img_read_record(r, &rec), k);
		}
		img_reader_free(r);
	}
	io_free(io);
	ghost_buffer_unref(b);
	return k;
}

static void rehash_header(uint8_t *img)
{
	uint64_t sum = XXH3_64bits(img, CHECKSUM_OFF);

	memcpy(img + CHECKSUM_OFF, &sum, sizeof(sum));
}

/* Append one raw record with a correct checksum. */
static size_t raw_record(uint8_t *dst, uint32_t type, uint32_t flags, const void *payload,
			 uint64_t len)
{
	struct img_rec_header h = { .type = type, .flags = flags, .len = len };

	h.checksum = XXH3_64bits_withSeed(payload, (size_t)len, img_rec_seed(type, flags, len));
	memcpy(dst, &h, sizeof(h));
	if (len)
		memcpy(dst + sizeof(h), payload, (size_t)len);
	return sizeof(h) + (size_t)len;
}

/* A header of this machine followed by records built by the caller. */
static size_t raw_header(uint8_t *dst)
{
	struct ghost_buffer *b;
	struct ghost_io *io;
	struct img_writer *w;

	assert_int_equal(ghost_buffer_new(0, &b), 0);
	assert_int_equal(io_memory_new(b, IO_WRITE, &io), 0);
	assert_int_equal(img_writer_new(io, &w), 0);
	assert_int_equal(ghost_buffer_size(b), HDR_SIZE);
	memcpy(dst, ghost_buffer_data(b), HDR_SIZE);
	img_writer_free(w);
	io_free(io);
	ghost_buffer_unref(b);
	return HDR_SIZE;
}

static size_t raw_end(uint8_t *dst, uint64_t nrecords, uint64_t payload_bytes, uint64_t pages)
{
	struct img_end e = { nrecords, payload_bytes, pages };

	return raw_record(dst, IMG_REC_END, 0, &e, sizeof(e));
}

/* Both the streaming reader and img_verify() give r. */
static void assert_both(const uint8_t *img, size_t len, unsigned flags, int r)
{
	assert_int_equal(img_verify(img, len, flags), r);
	assert_int_equal(read_image(img, len, flags, false), r);
}

/* --- a tiny JSON syntax checker ------------------------------------------------------ */

static const char *json_value(const char *p, int depth);

static const char *json_ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	return p;
}

static const char *json_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	while (*p && *p != '"') {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
						return NULL;
				p += 4;
			} else if (!*p || !strchr("\"\\/bfnrt", *p)) {
				return NULL;
			}
		}
		p++;
	}
	return *p == '"' ? p + 1 : NULL;
}

static const char *json_seq(const char *p, char close, bool members, int depth)
{
	p = json_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (members) {
			p = json_string(json_ws(p));
			if (!p)
				return NULL;
			p = json_ws(p);
			if (*p++ != ':')
				return NULL;
		}
		p = json_value(p, depth + 1);
		if (!p)
			return NULL;
		p = json_ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *json_value(const char *p, int depth)
{
	if (depth > 32)
		return NULL;
	p = json_ws(p);
	switch (*p) {
	case '{':
		return json_seq(p, '}', true, depth);
	case '[':
		return json_seq(p, ']', false, depth);
	case '"':
		return json_string(p);
	case 't':
		return strncmp(p, "true", 4) ? NULL : p + 4;
	case 'f':
		return strncmp(p, "false", 5) ? NULL : p + 5;
	case 'n':
		return strncmp(p, "null", 4) ? NULL : p + 4;
	default: {
		char *end;

		if (*p != '-' && (*p < '0' || *p > '9'))
			return NULL;
		(void)strtod(p, &end);
		return end == p ? NULL : end;
	}
	}
}

static bool json_valid(const char *text)
{
	const char *p = json_value(text, 0);

	return p && *json_ws(p) == '\0';
}

/* img_show() of data; returns its result and leaves the text in out. */
static int show(const void *data, size_t len, unsigned flags, bool json, struct buf *out)
{
	struct ghost_buffer *b;
	struct ghost_io *io;
	int k;

	buf_reset(out);
	assert_int_equal(ghost_buffer_new(len, &b), 0);
	assert_int_equal(ghost_buffer_write(b, data, len), 0);
	assert_int_equal(io_memory_new(b, IO_READ, &io), 0);
	k = img_show(io, flags, json, out);
	io_free(io);
	ghost_buffer_unref(b);
	if (json)
		assert_true(json_valid(out->data ? out->data : ""));
	return k;
}

/* --- tests ------------------------------------------------------------------------- */

static void test_roundtrip_memory(void **state)
{
	size_t len;
	uint8_t *img = make_sample(6, &len);
	struct ghost_buffer *b;
	struct ghost_io *io;
	struct img_reader *r;
	const struct img_file_header *h;
	struct img_record rec;
	struct utsname u;

	(void)state;
	assert_int_equal(img_verify(img, len, 0), 0);
	assert_int_equal(read_image(img, len, 0, true), 0);

	assert_int_equal(ghost_buffer_new(0, &b), 0);
	assert_int_equal(ghost_buffer_write(b, img, len), 0);
	assert_int_equal(io_memory_new(b, IO_READ, &io), 0);
	assert_int_equal(img_reader_new(io, 0, &r), 0);
	h = img_reader_header(r);
	assert_non_null(h);
	assert_int_equal(uname(&u), 0);
	assert_string_equal(h->kernel, u.release);
	assert_int_equal(h->version, IMG_VERSION);
	assert_int_equal(h->arch, IMG_ARCH_X86_64);
	assert_int_equal(h->page_size, IMG_PAGE_SIZE);
	while (img_read_record(r, &rec) > 0)
		;
	assert_int_equal(rec.type, IMG_REC_END);
	assert_int_equal(((const struct img_end *)rec.payload)->page_count, sample_pages(6));
	/* the optional unknown record is counted in END */
	assert_int_equal(((const struct img_end *)rec.payload)->nrecords, nexpected + 1);
	assert_int_equal(io_offset(io), len);
	img_reader_free(r);
	io_free(io);
	ghost_buffer_unref(b);
	free(img);
	expect_reset();
}

static void test_roundtrip_file_large(void **state)
{
	int fd = memfd_create("test-image", MFD_CLOEXEC);
	struct ghost_io *io;
	struct img_writer *w;
	const void *all;
	size_t len;
	const uint64_t base = 0x7f0000000000;
	const unsigned nrec = 40; /* 160 MiB of pages: more than the writer's ring */

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(io_file_new(fd, IO_WRITE, IO_FILE_SYNC, &io), 0);
	assert_int_equal(img_writer_new(io, &w), 0);
	for (unsigned i = 0; i < nrec; i++) {
		uint64_t vaddr = base + (uint64_t)i * IMG_PAGES_PER_REC * IMG_PAGE_SIZE;
		uint64_t *data;

		assert_int_equal(img_write_pages_begin(w, vaddr, IMG_PAGES_PER_REC, (void **)&data),
				 0);
		for (size_t k = 0; k < IMG_PAGES_PER_REC * IMG_PAGE_SIZE / 8; k++)
			data[k] = vaddr + k;
		assert_int_equal(img_write_pages_commit(w), 0);
	}
	assert_int_equal(img_writer_finish(w), 0);
	assert_int_equal(img_writer_finish(w), 0);
	assert_int_equal(img_writer_pages(w), (uint64_t)nrec * IMG_PAGES_PER_REC);
	img_writer_free(w);
	io_free(io);

	/* whole-image verification on a mapping, then a streaming read */
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(io_file_new(fd, IO_READ, 0, &io), 0);
	assert_int_equal(io_map_all(io, &all, &len), 0);
	assert_int_equal(img_verify(all, len, 0), 0);
	{
		struct img_reader *r;
		struct img_record rec;
		unsigned n = 0;
		int k;

		assert_int_equal(img_reader_new(io, 0, &r), 0);
		while ((k = img_read_record(r, &rec)) > 0) {
			const struct img_pages *p = rec.payload;
			const uint64_t *data = (const void *)(p + 1);

			assert_int_equal(rec.type, IMG_REC_PAGES);
			assert_int_equal(p->vaddr,
					 base + (uint64_t)n * IMG_PAGES_PER_REC * IMG_PAGE_SIZE);
			for (size_t i = 0; i < IMG_PAGES_PER_REC * IMG_PAGE_SIZE / 8; i += 4099)
				assert_int_equal(data[i], p->vaddr + i);
			n++;
		}
		assert_int_equal(k, 0);
		assert_int_equal(n, nrec);
		img_reader_free(r);
	}
	io_free(io);
	close(fd);
}

static void test_roundtrip_socket(void **state)
{
	int sv[2], status;
	pid_t pid;
	struct ghost_io *io;
	struct img_reader *r;
	struct img_record rec;
	size_t i = 0;
	int k;

	(void)state;
	expect_reset();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct img_writer *w;

		close(sv[0]);
		if (io_socket_new(sv[1], IO_WRITE, &io) < 0 || img_writer_new(io, &w) < 0)
			_exit(2);
		write_sample(w, 30);
		_exit(img_writer_finish(w) < 0 ? 3 : 0);
	}
	close(sv[1]);
	/* the same records, to compare */
	{
		size_t len;

		free(make_sample(30, &len));
	}
	assert_int_equal(io_socket_new(sv[0], IO_READ, &io), 0);
	assert_int_equal(img_reader_new(io, 0, &r), 0);
	while ((k = img_read_record(r, &rec)) > 0) {
		assert_true(i < nexpected);
		assert_int_equal(rec.type, expected[i].type);
		assert_int_equal(rec.len, expected[i].len);
		assert_memory_equal(rec.payload, expected[i].payload, rec.len);
		i++;
	}
	assert_int_equal(k, 0);
	assert_int_equal(i, nexpected);
	assert_int_equal(io_at_eof(io), 1);
	img_reader_free(r);
	io_free(io);
	close(sv[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	expect_reset();
}

static void test_truncated_everywhere(void **state)
{
	size_t len;
	uint8_t *img = make_sample(2, &len);
	struct buf out = BUF_INIT;

	(void)state;
	for (size_t cut = 0; cut < len; cut++) {
		int v = img_verify(img, cut, 0);
		int r = read_image(img, cut, 0, false);

		assert_int_equal(v, GHOST_ETRUNCATED);
		assert_int_equal(r, GHOST_ETRUNCATED);
		if (cut % 7 == 0)
			assert_int_equal(show(img, cut, 0, cut % 2, &out), GHOST_ETRUNCATED);
	}
	assert_int_equal(read_image(img, len, 0, false), 0);
	buf_release(&out);
	free(img);
	expect_reset();
}

static void test_bitflip_everywhere(void **state)
{
	size_t len;
	uint8_t *img = make_sample(2, &len);
	struct buf out = BUF_INIT;

	(void)state;
	for (size_t i = 0; i < len; i++)
		for (int bit = 0; bit < 8; bit++) {
			int v, r;

			img[i] ^= (uint8_t)(1u << bit);
			v = img_verify(img, len, IMG_READ_ANY_KERNEL);
			r = read_image(img, len, IMG_READ_ANY_KERNEL, false);
			if (v >= 0 || r >= 0)
				fail_msg("flip of bit %d at byte %zu not detected (%d, %d)", bit,
					 i, v, r);
			if (bit == (int)(i % 8) && i % 5 == 0)
				assert_true(show(img, len, IMG_READ_ANY_KERNEL, i % 2, &out) < 0);
			img[i] ^= (uint8_t)(1u << bit);
		}
	assert_int_equal(img_verify(img, len, 0), 0);
	buf_release(&out);
	free(img);
	expect_reset();
}

static void test_header_checks(void **state)
{
	size_t len;
	uint8_t *img = make_sample(1, &len);
	uint8_t *bad = malloc(len);
	struct img_file_header h;

	(void)state;
	assert_non_null(bad);
	memcpy(&h, img, sizeof(h));

	/* magic */
	memcpy(bad, img, len);
	bad[0] = 'X';
	rehash_header(bad);
	assert_both(bad, len, 0, GHOST_EBADMAGIC);
	assert_int_equal(img_verify("GHO", 3, 0), GHOST_ETRUNCATED);
	assert_int_equal(img_verify("ELF", 3, 0), GHOST_EBADMAGIC);
	assert_int_equal(img_verify("", 0, 0), GHOST_ETRUNCATED);

	/* version */
	memcpy(bad, img, len);
	h.version = IMG_VERSION + 1;
	memcpy(bad, &h, sizeof(h));
	rehash_header(bad);
	assert_both(bad, len, IMG_READ_ANY_KERNEL, GHOST_EVERSION);
	memcpy(&h, img, sizeof(h));

	/* arch and page size */
	memcpy(bad, img, len);
	h.arch = 183; /* EM_AARCH64 */
	memcpy(bad, &h, sizeof(h));
	rehash_header(bad);
	assert_both(bad, len, IMG_READ_ANY_KERNEL, GHOST_EARCH);
	memcpy(&h, img, sizeof(h));
	h.page_size = 16384;
	memcpy(bad, &h, sizeof(h));
	rehash_header(bad);
	assert_both(bad, len, IMG_READ_ANY_KERNEL, GHOST_EARCH);
	memcpy(&h, img, sizeof(h));

	/* kernel release */
	memcpy(bad, img, len);
	memset(h.kernel, 0, sizeof(h.kernel));
	memcpy(h.kernel, "2.6.32-other", 12);
	memcpy(bad, &h, sizeof(h));
	rehash_header(bad);
	assert_both(bad, len, 0, GHOST_EKERNEL);
	assert_both(bad, len, IMG_READ_ANY_KERNEL, 0);
	memcpy(&h, img, sizeof(h));

	/* header checksum */
	memcpy(bad, img, len);
	bad[40] ^= 1; /* in created_ns */
	assert_both(bad, len, 0, GHOST_ECHECKSUM);

	/* header size out of range */
	memcpy(bad, img, len);
	h.header_size = 100;
	memcpy(bad, &h, sizeof(h));
	rehash_header(bad);
	assert_both(bad, len, 0, GHOST_ECORRUPT);
	memcpy(&h, img, sizeof(h));

	free(bad);
	free(img);
	expect_reset();
}

static void test_larger_header_accepted(void **state)
{
	/* A later writer with a longer header: the checksum moves to its end. */
	uint8_t img[HDR_SIZE + 64 + 128];
	struct img_file_header h;
	size_t pos;
	uint32_t size = HDR_SIZE + 64;
	uint64_t sum;

	(void)state;
	raw_header(img);
	memcpy(&h, img, sizeof(h));
	h.header_size = size;
	memcpy(img, &h, sizeof(h));
	memset(img + CHECKSUM_OFF, 0x11, size - CHECKSUM_OFF - 8);
	sum = XXH3_64bits(img, size - 8);
	memcpy(img + size - 8, &sum, 8);
	pos = size;
	pos += raw_end(img + pos, 0, 0, 0);
	assert_both(img, pos, 0, 0);
}

static void test_record_checks(void **state)
{
	uint8_t img[64 << 10];
	uint8_t payload[256] = { 0 };
	size_t pos, base;
	struct img_rec_header h;

	(void)state;
	base = raw_header(img);

	/* oversized length: refused before anything is read */
	pos = base;
	h = (struct img_rec_header){ .type = IMG_REC_FILE_DATA, .len = IMG_REC_MAX + 1 };
	memcpy(img + pos, &h, sizeof(h));
	pos += sizeof(h);
	assert_both(img, pos, 0, GHOST_ECORRUPT);
	h.len = UINT64_MAX;
	memcpy(img + base, &h, sizeof(h));
	assert_both(img, pos, 0, GHOST_ECORRUPT);

	/* END counts */
	pos = base;
	pos += raw_end(img + pos, 0, 0, 0);
	assert_both(img, pos, 0, 0);
	pos = base;
	pos += raw_end(img + pos, 1, 0, 0);
	assert_both(img, pos, 0, GHOST_ECORRUPT);
	pos = base;
	{
		struct img_fd fd = { .fd = 1, .file_id = 1 };

		pos += raw_record(img + pos, IMG_REC_FD, 0, &fd, sizeof(fd));
		base = pos;
		pos += raw_end(img + pos, 1, sizeof(fd), 0);
		assert_both(img, pos, 0, 0);
		pos = base + raw_end(img + base, 1, sizeof(fd) + 1, 0);
		assert_both(img, pos, 0, GHOST_ECORRUPT);
		pos = base + raw_end(img + base, 1, sizeof(fd), 1);
		assert_both(img, pos, 0, GHOST_ECORRUPT);
		pos = base + raw_end(img + base, 2, sizeof(fd), 0);
		assert_both(img, pos, 0, GHOST_ECORRUPT);
	}
	/* END too short */
	base = raw_header(img);
	pos = base + raw_record(img + base, IMG_REC_END, 0, payload, 8);
	assert_both(img, pos, 0, GHOST_ECORRUPT);

	/* unknown types: optional ones are skipped and counted */
	pos = base + raw_record(img + base, 99, 0, payload, 10);
	pos += raw_end(img + pos, 1, 10, 0);
	assert_both(img, pos, 0, GHOST_ECORRUPT);
	pos = base + raw_record(img + base, 99, IMG_RECF_OPTIONAL, payload, 10);
	pos += raw_end(img + pos, 1, 10, 0);
	assert_both(img, pos, 0, 0);
	pos = base + raw_record(img + base, 0, IMG_RECF_OPTIONAL, payload, 0);
	pos += raw_end(img + pos, 1, 0, 0);
	assert_both(img, pos, 0, 0);

	/* a malformed known payload is refused by the reader, not handed out */
	{
		struct img_vma v = { .start = 0x2000, .end = 0x1000 };

		pos = base + raw_record(img + base, IMG_REC_VMA, 0, &v, sizeof(v));
		pos += raw_end(img + pos, 1, sizeof(v), 0);
		assert_both(img, pos, 0, GHOST_ECORRUPT);
	}

	/* bytes after END: verify refuses them, a stream stops at END */
	pos = base + raw_end(img + base, 0, 0, 0);
	img[pos++] = 0;
	assert_int_equal(img_verify(img, pos, 0), GHOST_ECORRUPT);
	assert_int_equal(read_image(img, pos, 0, false), 0);

	/* a wrong checksum */
	pos = base + raw_end(img + base, 0, 0, 0);
	img[base + 16] ^= 0x80;
	assert_both(img, pos, 0, GHOST_ECHECKSUM);
}

static void test_big_record(void **state)
{
	struct ghost_buffer *b;
	struct ghost_io *io;
	struct img_writer *w;
	struct img_file_data fd = { .file_id = 9 };
	size_t n = IMG_REC_MAX - sizeof(fd);
	uint8_t *data = malloc(n);

	(void)state;
	assert_non_null(data);
	for (size_t i = 0; i < n; i++)
		data[i] = (uint8_t)(i * 7);
	assert_int_equal(ghost_buffer_new(0, &b), 0);
	assert_int_equal(io_memory_new(b, IO_WRITE, &io), 0);
	assert_int_equal(img_writer_new(io, &w), 0);
	assert_int_equal(img_write_record(w, IMG_REC_FILE_DATA, &fd, sizeof(fd), data, n), 0);
	assert_int_equal(img_write_record(w, IMG_REC_FILE_DATA, &fd, sizeof(fd), data, n + 1),
			 -EINVAL);
	assert_int_equal(img_writer_finish(w), -EINVAL); /* sticky */
	img_writer_free(w);
	io_free(io);
	ghost_buffer_unref(b);

	assert_int_equal(ghost_buffer_new(0, &b), 0);
	assert_int_equal(io_memory_new(b, IO_WRITE, &io), 0);
	assert_int_equal(img_writer_new(io, &w), 0);
	assert_int_equal(img_write_record(w, IMG_REC_FILE_DATA, &fd, sizeof(fd), data, n), 0);
	assert_int_equal(img_writer_finish(w), 0);
	img_writer_free(w);
	io_free(io);
	assert_int_equal(img_verify(ghost_buffer_data(b), ghost_buffer_size(b), 0), 0);
	assert_int_equal(read_image(ghost_buffer_data(b), ghost_buffer_size(b), 0, false), 0);
	ghost_buffer_unref(b);
	free(data);
}

static void test_writer_misuse(void **state)
{
	struct ghost_buffer *b;
	struct ghost_io *io;
	struct img_writer *w;
	void *p;
	struct img_fd fd = { .fd = 1, .file_id = 1 };

	(void)state;
	assert_int_equal(ghost_buffer_new(0, &b), 0);
	assert_int_equal(io_memory_new(b, IO_WRITE, &io), 0);
	assert_int_equal(img_writer_new(io, &w), 0);
	assert_int_equal(img_write_pages_begin(w, 0x1000, 1, &p), 0);
	assert_int_equal(img_write_record(w, IMG_REC_FD, &fd, sizeof(fd), NULL, 0), -EINVAL);
	img_writer_free(w);
	io_free(io);

	assert_int_equal(io_memory_new(b, IO_WRITE, &io), 0);
	assert_int_equal(img_writer_new(io, &w), 0);
	assert_int_equal(img_write_pages_begin(w, 0x1001, 1, &p), -EINVAL);
	img_writer_free(w);
	assert_int_equal(img_writer_new(io, &w), 0);
	assert_int_equal(img_write_pages_begin(w, 0x1000, 0, &p), -EINVAL);
	img_writer_free(w);
	assert_int_equal(img_writer_new(io, &w), 0);
	assert_int_equal(img_write_pages_begin(w, 0x1000, IMG_PAGES_PER_REC + 1, &p), -EINVAL);
	img_writer_free(w);
	assert_int_equal(img_writer_new(io, &w), 0);
	assert_int_equal(img_write_pages_begin(w, UINT64_MAX - 4095, 2, &p), -EINVAL);
	img_writer_free(w);
	assert_int_equal(img_writer_new(io, &w), 0);
	assert_int_equal(img_write_pages_commit(w), -EINVAL);
	img_writer_free(w);
	assert_int_equal(img_writer_new(io, &w), 0);
	assert_int_equal(img_write_record(w, IMG_REC_END, &fd, sizeof(fd), NULL, 0), -EINVAL);
	img_writer_free(w);
	assert_int_equal(img_writer_new(io, &w), 0);
	assert_int_equal(img_write_record(w, 0, &fd, sizeof(fd), NULL, 0), -EINVAL);
	assert_int_equal(img_write_record(w, IMG_REC_FD, &fd, sizeof(fd), NULL, 0), -EINVAL);
	img_writer_free(w);
	io_free(io);

	/* an interface error reaches the writer and stays */
	assert_int_equal(io_memory_new(b, IO_READ, &io), 0);
	assert_int_equal(img_writer_new(io, &w), -EINVAL);
	io_free(io);

	assert_int_equal(img_writer_new(NULL, &w), -EINVAL);
	assert_null(img_writer_free(NULL));
	assert_null(img_reader_free(NULL));
	assert_int_equal(img_writer_pages(NULL), 0);
	ghost_buffer_unref(b);
}

static void test_rec_check(void **state)
{
	uint8_t p[8192] = { 0 };

	(void)state;
	assert_int_equal(img_rec_min_size(IMG_REC_VMA), sizeof(struct img_vma));
	assert_int_equal(img_rec_min_size(IMG_REC_END), sizeof(struct img_end));
	assert_int_equal(img_rec_min_size(0), 0);
	assert_int_equal(img_rec_min_size(_IMG_REC_MAX), 0);
	assert_string_equal(img_rec_type_name(IMG_REC_PAGES), "pages");
	assert_string_equal(img_rec_type_name(12345), "unknown");
	assert_int_equal(img_rec_check(12345, p, 0), 0);
	for (uint32_t t = 1; t < _IMG_REC_MAX; t++)
		assert_int_equal(img_rec_check(t, p, img_rec_min_size(t) - 1), GHOST_ECORRUPT);

	/* process */
	{
		struct img_process *x = (void *)p;

		memset(p, 0, sizeof(p));
		x->pid = 1;
		x->nthreads = 1;
		x->cwd_len = 1;
		x->exe_len = 2;
		x->root_len = 3;
		memcpy(x + 1, "/abcdef", 6);
		assert_int_equal(img_rec_check(IMG_REC_PROCESS, p, sizeof(*x) + 6), 0);
		assert_int_equal(img_rec_check(IMG_REC_PROCESS, p, sizeof(*x) + 5), GHOST_ECORRUPT);
		assert_int_equal(img_rec_check(IMG_REC_PROCESS, p, sizeof(*x) + 7), GHOST_ECORRUPT);
		((char *)(x + 1))[2] = '\0';
		assert_int_equal(img_rec_check(IMG_REC_PROCESS, p, sizeof(*x) + 6), GHOST_ECORRUPT);
		((char *)(x + 1))[2] = 'x';
		x->cwd_len = UINT32_MAX; /* the sum must not wrap */
		x->exe_len = 7;
		x->root_len = 0;
		assert_int_equal(img_rec_check(IMG_REC_PROCESS, p, sizeof(*x) + 6), GHOST_ECORRUPT);
		x->cwd_len = 1;
		x->exe_len = 2;
		x->root_len = 3;
		x->nthreads = 0;
		assert_int_equal(img_rec_check(IMG_REC_PROCESS, p, sizeof(*x) + 6), GHOST_ECORRUPT);
		x->nthreads = 1;
		x->pid = 0;
		assert_int_equal(img_rec_check(IMG_REC_PROCESS, p, sizeof(*x) + 6), GHOST_ECORRUPT);
	}
	/* creds */
	{
		struct img_creds *x = (void *)p;

		memset(p, 0, sizeof(p));
		x->ngroups = 3;
		assert_int_equal(img_rec_check(IMG_REC_CREDS, p, sizeof(*x) + 12), 0);
		assert_int_equal(img_rec_check(IMG_REC_CREDS, p, sizeof(*x) + 8), GHOST_ECORRUPT);
		x->ngroups = 1u << 30;
		assert_int_equal(img_rec_check(IMG_REC_CREDS, p, sizeof(*x)), GHOST_ECORRUPT);
	}
	/* rlimits: longer payloads of fixed-only types are accepted */
	{
		struct img_rlimits *x = (void *)p;

		memset(p, 0, sizeof(p));
		assert_int_equal(img_rec_check(IMG_REC_RLIMITS, p, sizeof(*x) + 8), 0);
		x->lim[3].cur = 2;
		x->lim[3].max = 1;
		assert_int_equal(img_rec_check(IMG_REC_RLIMITS, p, sizeof(*x)), GHOST_ECORRUPT);
	}
	/* sched, mm */
	{
		struct img_sched *x = (void *)p;
		struct img_mm *m = (void *)p;

		memset(p, 0, sizeof(p));
		x->affinity_len = 16;
		assert_int_equal(img_rec_check(IMG_REC_SCHED, p, sizeof(*x) + 16), 0);
		assert_int_equal(img_rec_check(IMG_REC_SCHED, p, sizeof(*x) + 15), GHOST_ECORRUPT);
		memset(p, 0, sizeof(p));
		m->auxv_len = 32;
		assert_int_equal(img_rec_check(IMG_REC_MM, p, sizeof(*m) + 32), 0);
		m->auxv_len = 31;
		assert_int_equal(img_rec_check(IMG_REC_MM, p, sizeof(*m) + 31), GHOST_ECORRUPT);
	}
	/* vma */
	{
		struct img_vma *x = (void *)p;

		memset(p, 0, sizeof(p));
		x->start = 0x1000;
		x->end = 0x3000;
		x->path_len = 4;
		memcpy(x + 1, "/bin", 4);
		assert_int_equal(img_rec_check(IMG_REC_VMA, p, sizeof(*x) + 4), 0);
		assert_int_equal(img_rec_check(IMG_REC_VMA, p, sizeof(*x) + 5), GHOST_ECORRUPT);
		x->end = 0x3001;
		assert_int_equal(img_rec_check(IMG_REC_VMA, p, sizeof(*x) + 4), GHOST_ECORRUPT);
		x->end = 0x1000;
		assert_int_equal(img_rec_check(IMG_REC_VMA, p, sizeof(*x) + 4), GHOST_ECORRUPT);
		x->end = 0x3000;
		x->kind = _IMG_VMA_KIND_MAX;
		assert_int_equal(img_rec_check(IMG_REC_VMA, p, sizeof(*x) + 4), GHOST_ECORRUPT);
		x->kind = 0;
		x->pgoff = 1;
		assert_int_equal(img_rec_check(IMG_REC_VMA, p, sizeof(*x) + 4), GHOST_ECORRUPT);
		x->pgoff = 0;
		x->path_len = IMG_PATH_MAX + 1;
		memset(x + 1, 'a', IMG_PATH_MAX + 1);
		assert_int_equal(img_rec_check(IMG_REC_VMA, p, sizeof(*x) + IMG_PATH_MAX + 1),
				 GHOST_ECORRUPT);
	}
	/* file, file data, fd */
	{
		struct img_file *x = (void *)p;
		struct img_file_data *d = (void *)p;
		struct img_fd *f = (void *)p;

		memset(p, 0, sizeof(p));
		x->id = 1;
		x->kind = IMG_FILE_PIPE;
		x->peer_id = 2;
		assert_int_equal(img_rec_check(IMG_REC_FILE, p, sizeof(*x)), 0);
		x->peer_id = 1;
		assert_int_equal(img_rec_check(IMG_REC_FILE, p, sizeof(*x)), GHOST_ECORRUPT);
		x->peer_id = 0;
		x->id = 0;
		assert_int_equal(img_rec_check(IMG_REC_FILE, p, sizeof(*x)), GHOST_ECORRUPT);
		x->id = 1;
		x->kind = _IMG_FILE_KIND_MAX;
		assert_int_equal(img_rec_check(IMG_REC_FILE, p, sizeof(*x)), GHOST_ECORRUPT);
		x->kind = IMG_FILE_STDIO;
		x->stdio_fd = 3;
		assert_int_equal(img_rec_check(IMG_REC_FILE, p, sizeof(*x)), GHOST_ECORRUPT);
		x->stdio_fd = 0;
		x->kind = IMG_FILE_CARRIED;
		assert_int_equal(img_rec_check(IMG_REC_FILE, p, sizeof(*x)), 0);
		x->peer_id = 2; /* a carried stream has no peer in the image */
		assert_int_equal(img_rec_check(IMG_REC_FILE, p, sizeof(*x)), GHOST_ECORRUPT);
		x->kind = IMG_FILE_EPOLL; /* nor has an epoll instance */
		assert_int_equal(img_rec_check(IMG_REC_FILE, p, sizeof(*x)), GHOST_ECORRUPT);
		x->peer_id = 0;
		assert_int_equal(img_rec_check(IMG_REC_FILE, p, sizeof(*x)), 0);

		memset(p, 0, sizeof(p));
		assert_int_equal(img_rec_check(IMG_REC_FILE_DATA, p, sizeof(*d) + 9), GHOST_ECORRUPT);
		d->file_id = 4;
		assert_int_equal(img_rec_check(IMG_REC_FILE_DATA, p, sizeof(*d) + 9), 0);

		memset(p, 0, sizeof(p));
		assert_int_equal(img_rec_check(IMG_REC_FD, p, sizeof(*f)), GHOST_ECORRUPT);
		f->file_id = 1;
		assert_int_equal(img_rec_check(IMG_REC_FD, p, sizeof(*f)), 0);
		f->fd = 0x80000000u;
		assert_int_equal(img_rec_check(IMG_REC_FD, p, sizeof(*f)), GHOST_ECORRUPT);
	}
	/* sigpending, itimers, thread */
	{
		struct img_sigpending *x = (void *)p;
		struct img_itimers *t = (void *)p;
		struct img_thread *th = (void *)p;

		memset(p, 0, sizeof(p));
		x->count = 2;
		assert_int_equal(img_rec_check(IMG_REC_SIGPENDING, p, sizeof(*x) + 256), 0);
		assert_int_equal(img_rec_check(IMG_REC_SIGPENDING, p, sizeof(*x) + 128),
				 GHOST_ECORRUPT);
		x->shared = 2;
		assert_int_equal(img_rec_check(IMG_REC_SIGPENDING, p, sizeof(*x) + 256),
				 GHOST_ECORRUPT);

		memset(p, 0, sizeof(p));
		assert_int_equal(img_rec_check(IMG_REC_ITIMERS, p, sizeof(*t)), 0);
		t->timer[1].value_usec = 1000000;
		assert_int_equal(img_rec_check(IMG_REC_ITIMERS, p, sizeof(*t)), GHOST_ECORRUPT);
		t->timer[1].value_usec = 0;
		t->timer[2].interval_sec = -1;
		assert_int_equal(img_rec_check(IMG_REC_ITIMERS, p, sizeof(*t)), GHOST_ECORRUPT);

		memset(p, 0, sizeof(p));
		th->tid = 5;
		th->xstate_len = 100;
		assert_int_equal(img_rec_check(IMG_REC_THREAD, p, sizeof(*th) + 100), 0);
		assert_int_equal(img_rec_check(IMG_REC_THREAD, p, sizeof(*th) + 99), GHOST_ECORRUPT);
		th->tid = 0;
		assert_int_equal(img_rec_check(IMG_REC_THREAD, p, sizeof(*th) + 100), GHOST_ECORRUPT);
	}
	/* pages */
	{
		static uint8_t big[sizeof(struct img_pages) + 2 * IMG_PAGE_SIZE];
		struct img_pages *x = (void *)big;

		x->vaddr = 0x1000;
		x->npages = 2;
		assert_int_equal(img_rec_check(IMG_REC_PAGES, big, sizeof(big)), 0);
		assert_int_equal(img_rec_check(IMG_REC_PAGES, big, sizeof(big) - 1), GHOST_ECORRUPT);
		x->vaddr = 0x1001;
		assert_int_equal(img_rec_check(IMG_REC_PAGES, big, sizeof(big)), GHOST_ECORRUPT);
		x->vaddr = UINT64_MAX - 4095;
		assert_int_equal(img_rec_check(IMG_REC_PAGES, big, sizeof(big)), GHOST_ECORRUPT);
		x->vaddr = 0x1000;
		x->npages = 0;
		assert_int_equal(img_rec_check(IMG_REC_PAGES, big, sizeof(*x)), GHOST_ECORRUPT);
		x->npages = IMG_PAGES_PER_REC + 1;
		assert_int_equal(img_rec_check(IMG_REC_PAGES, big, sizeof(big)), GHOST_ECORRUPT);
	}
	/* pagemap */
	{
		struct img_pagemap *x = (void *)p;
		struct img_page_run *run = (void *)(x + 1);
		size_t two = sizeof(*x) + 2 * sizeof(*run);

		memset(p, 0, sizeof(p));
		x->count = 2;
		run[0] = (struct img_page_run){ 0x1000, 2 };
		run[1] = (struct img_page_run){ 0x3000, 1 }; /* right after: fine */
		assert_int_equal(img_rec_check(IMG_REC_PAGEMAP, p, two), 0);
		assert_int_equal(img_rec_check(IMG_REC_PAGEMAP, p, two - 1), GHOST_ECORRUPT);
		assert_int_equal(img_rec_check(IMG_REC_PAGEMAP, p, two + 16), GHOST_ECORRUPT);
		run[1].vaddr = 0x2000; /* overlaps the first */
		assert_int_equal(img_rec_check(IMG_REC_PAGEMAP, p, two), GHOST_ECORRUPT);
		run[1].vaddr = 0x3001;
		assert_int_equal(img_rec_check(IMG_REC_PAGEMAP, p, two), GHOST_ECORRUPT);
		run[1] = (struct img_page_run){ 0x3000, 0 };
		assert_int_equal(img_rec_check(IMG_REC_PAGEMAP, p, two), GHOST_ECORRUPT);
		run[1] = (struct img_page_run){ UINT64_MAX - 4095, 1 }; /* wraps */
		assert_int_equal(img_rec_check(IMG_REC_PAGEMAP, p, two), GHOST_ECORRUPT);
		run[1] = (struct img_page_run){ 0x3000, UINT64_MAX / 4096 + 1 };
		assert_int_equal(img_rec_check(IMG_REC_PAGEMAP, p, two), GHOST_ECORRUPT);
		x->count = 0;
		assert_int_equal(img_rec_check(IMG_REC_PAGEMAP, p, sizeof(*x)), 0);
		x->count = UINT32_MAX; /* count * 16 must not wrap into a match */
		assert_int_equal(img_rec_check(IMG_REC_PAGEMAP, p, sizeof(*x)), GHOST_ECORRUPT);
	}
	/* epoll */
	{
		struct img_epoll *x = (void *)p;
		struct img_epoll_tfd *t = (void *)(x + 1);
		size_t two = sizeof(*x) + 2 * sizeof(*t);

		memset(p, 0, sizeof(p));
		x->file_id = 7;
		x->count = 2;
		t[0] = (struct img_epoll_tfd){ .tfd = 3, .file_id = 1, .events = 0x19, .data = 1 };
		t[1] = (struct img_epoll_tfd){ .tfd = 9, .file_id = 8, .events = 0x40000000 };
		assert_int_equal(img_rec_check(IMG_REC_EPOLL, p, two), 0);
		assert_int_equal(img_rec_check(IMG_REC_EPOLL, p, two - 1), GHOST_ECORRUPT);
		assert_int_equal(img_rec_check(IMG_REC_EPOLL, p, two + sizeof(*t)), GHOST_ECORRUPT);
		x->file_id = 0;
		assert_int_equal(img_rec_check(IMG_REC_EPOLL, p, two), GHOST_ECORRUPT);
		x->file_id = 8; /* watching itself */
		assert_int_equal(img_rec_check(IMG_REC_EPOLL, p, two), GHOST_ECORRUPT);
		x->file_id = 7;
		t[1].file_id = 0;
		assert_int_equal(img_rec_check(IMG_REC_EPOLL, p, two), GHOST_ECORRUPT);
		t[1].file_id = 8;
		t[1].tfd = 0x80000000u;
		assert_int_equal(img_rec_check(IMG_REC_EPOLL, p, two), GHOST_ECORRUPT);
		t[1].tfd = 9;
		x->count = 0;
		assert_int_equal(img_rec_check(IMG_REC_EPOLL, p, sizeof(*x)), 0);
		x->count = UINT32_MAX; /* count * 24 must not wrap into a match */
		assert_int_equal(img_rec_check(IMG_REC_EPOLL, p, sizeof(*x)), GHOST_ECORRUPT);
	}
	/* record seeds differ in every field */
	assert_true(img_rec_seed(1, 0, 10) != img_rec_seed(2, 0, 10));
	assert_true(img_rec_seed(1, 0, 10) != img_rec_seed(1, 1, 10));
	assert_true(img_rec_seed(1, 0, 10) != img_rec_seed(1, 0, 11));
}

static void test_show(void **state)
{
	size_t len;
	uint8_t *img = make_sample(5, &len);
	struct buf out = BUF_INIT;
	static const char *const text_has[] = {
		"header version=1 arch=x86_64",
		"process pid=1234 ppid=1",
		"comm='sample' exe='/usr/bin/sample' cwd='/tmp' root='/'",
		"creds uid=1000",
		"groups=100,27",
		"rlimit name=nofile cur=1024 max=4096",
		"rlimit name=cpu cur=unlimited",
		"sched nice=5 policy=other",
		"cpus=0,2-3,63",
		"vma range=0x400000-0x401000 prot=r-xp kind=file-private flags=- "
		"path='/usr/bin/sample'",
		"vma range=0x7f0000000000-0x7f0000010000 prot=rw-p kind=anon "
		"flags=dontdump,hugepage",
		"kind=stack flags=growsdown",
		"file id=2 kind=pipe access=r",
		"file_data file=2 offset=0 bytes=6",
		"fd fd=0 file=1 cloexec=no kind=reg access=rw flags=0x2 pos=77 path='/etc/passwd'",
		"fd fd=4 file=3 cloexec=yes kind=pipe access=w",
		"file id=4 kind=carried access=r flags=0x0 pos=0 size=0 mode=010600 "
		"stream='the read end of a pipe' ino=4242 path='pipe:[4242]'",
		"file id=5 kind=carried access=rw flags=0x802 pos=0 size=0 mode=0140777 "
		"stream='a stream socket' sock_type=1 ino=99 path='socket:[99]'",
		"fd fd=20 file=4 cloexec=no kind=carried access=r flags=0x0 pos=0 "
		"stream='the read end of a pipe' path='pipe:[4242]'",
		"fd fd=21 file=5 cloexec=yes kind=carried access=rw",
		"file id=6 kind=epoll access=rw flags=0x802",
		"fd fd=7 file=6 cloexec=yes kind=epoll access=rw flags=0x802",
		"epoll file=6 fd=7 registrations=3",
		"epoll_tfd file=6 tfd=3 target=2 kind=pipe events=0x19 flags=in,err,hup "
		"data=0x1122334455667788",
		"epoll_tfd file=6 tfd=21 target=5 kind=carried events=0x80000019 "
		"flags=in,err,hup,et data=0x2",
		"epoll_tfd file=6 tfd=4 target=3 kind=pipe events=0x40000000 "
		"flags=oneshot,disarmed data=0x3",
		"size record=epoll count=1",
		"sigaction signal=SIGINT handler=0x401000",
		"mask=SIGTERM",
		"sigaction signal=SIGPIPE handler=ignore",
		"sigpending queue=process count=1 signals=SIGUSR1",
		"itimer which=real interval=1.500000 value=0.250000",
		"thread tid=1234 rip=0x401234 rsp=0x7ffffffde100",
		"thread tid=1235",
		"pagemap runs=2 pages=17 span=0x100000000-0x7f0000010000",
		"end records=",
		"pages vma=0x7f0000000000-0x7f0000010000 records=4 pages=10 bytes=40960",
		"pages vma=none records=2 pages=2 bytes=8192",
		"size record=vma count=3",
		"size record=pages count=6",
		"totals image_bytes=",
	};

	(void)state;
	assert_int_equal(show(img, len, 0, false, &out), 0);
	for (size_t i = 0; i < sizeof(text_has) / sizeof(text_has[0]); i++)
		if (!strstr(out.data, text_has[i]))
			fail_msg("'%s' missing from:\n%s", text_has[i], out.data);
	assert_null(strstr(out.data, "signal=SIGTERM"));
	assert_null(strstr(out.data, "error"));

	assert_int_equal(show(img, len, 0, true, &out), 0);
	assert_non_null(strstr(out.data, "\"error\":null"));
	assert_non_null(strstr(out.data, "{\"type\":\"vma\",\"range\":\"0x400000-0x401000\""));
	assert_non_null(strstr(out.data, "\"groups\":[\"100\",\"27\"]"));
	assert_non_null(strstr(out.data, "\"path\":\"/etc/passwd\""));
	assert_non_null(strstr(out.data, "{\"type\":\"fd\",\"fd\":20,\"file\":4,\"cloexec\":\"no\","
					 "\"kind\":\"carried\",\"access\":\"r\",\"flags\":\"0x0\","
					 "\"pos\":0,\"stream\":\"the read end of a pipe\""));
	assert_non_null(strstr(out.data, "\"stream\":\"a stream socket\",\"sock_type\":1,"
					 "\"ino\":99,\"path\":\"socket:[99]\""));
	assert_non_null(strstr(out.data, "{\"type\":\"epoll\",\"file\":6,\"fd\":7,"
					 "\"registrations\":3}"));
	assert_non_null(strstr(out.data, "{\"type\":\"epoll_tfd\",\"file\":6,\"tfd\":21,"
					 "\"target\":5,\"kind\":\"carried\","
					 "\"events\":\"0x80000019\","
					 "\"flags\":[\"in\",\"err\",\"hup\",\"et\"],\"data\":\"0x2\"}"));

	/* damaged: what was sound is printed, then the error */
	img[len - 30] ^= 4;
	assert_int_equal(show(img, len, 0, false, &out), GHOST_ECHECKSUM);
	assert_non_null(strstr(out.data, "process pid=1234"));
	assert_non_null(strstr(out.data, "error: image record failed its checksum"));
	assert_int_equal(show(img, len, 0, true, &out), GHOST_ECHECKSUM);
	assert_non_null(strstr(out.data, "\"error\":\"image record failed its checksum\""));
	img[len - 30] ^= 4;

	/* a header from another kernel is shown, then refused */
	{
		struct img_file_header h;

		memcpy(&h, img, sizeof(h));
		memset(h.kernel, 0, sizeof(h.kernel));
		memcpy(h.kernel, "1.0\"'\n", 6);
		memcpy(img, &h, sizeof(h));
		rehash_header(img);
		assert_int_equal(show(img, len, 0, false, &out), GHOST_EKERNEL);
		assert_non_null(strstr(out.data, "kernel='1.0\"\\'\\x0a'"));
		assert_null(strstr(out.data, "process"));
		assert_int_equal(show(img, len, 0, true, &out), GHOST_EKERNEL);
		assert_non_null(strstr(out.data, "\"kernel\":\"1.0\\\"'\\u000a\""));
		assert_int_equal(show(img, len, IMG_READ_ANY_KERNEL, true, &out), 0);
	}

	/* not an image at all */
	assert_int_equal(show("hello world, this is text", 25, 0, true, &out), GHOST_EBADMAGIC);
	assert_non_null(strstr(out.data, "\"header\":null"));
	assert_int_equal(show("", 0, 0, false, &out), GHOST_ETRUNCATED);
	assert_non_null(strstr(out.data, "error: image is truncated"));
	buf_release(&out);
	free(img);
	expect_reset();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_memory),
		cmocka_unit_test(test_roundtrip_file_large),
		cmocka_unit_test(test_roundtrip_socket),
		cmocka_unit_test(test_truncated_everywhere),
		cmocka_unit_test(test_bitflip_everywhere),
		cmocka_unit_test(test_header_checks),
		cmocka_unit_test(test_larger_header_accepted),
		cmocka_unit_test(test_record_checks),
		cmocka_unit_test(test_big_record),
		cmocka_unit_test(test_writer_misuse),
		cmocka_unit_test(test_rec_check),
		cmocka_unit_test(test_show),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

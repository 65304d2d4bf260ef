/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Writes the fuzzer's seed corpus with the real writer, so the seeds follow
 * the format as it is built: gen-seeds DIR creates DIR/seed-*.ghost.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/image.h"
#include "io/io.h"
#include "base/fileio.h"

struct seed {
	const char *name;
	void (*fill)(struct img_writer *w);
};

static int rec(struct img_writer *w, uint32_t type, const void *fixed, size_t flen,
	       const void *var, size_t vlen)
{
	return img_write_record(w, type, fixed, flen, var, vlen);
}

static void pages(struct img_writer *w, uint64_t vaddr, uint32_t n)
{
	uint8_t *data;

	if (img_write_pages_begin(w, vaddr, n, (void **)&data) < 0)
		return;
	for (size_t i = 0; i < (size_t)n * IMG_PAGE_SIZE; i++)
		data[i] = (uint8_t)(i % 251);
	img_write_pages_commit(w);
}

static void fill_minimal(struct img_writer *w)
{
	(void)w;
}

static void fill_process(struct img_writer *w)
{
	struct img_process p = { .pid = 4242, .ppid = 1, .pgid = 4242, .sid = 4242,
				 .nthreads = 1, .umask = 022, .exit_signal = 17,
				 .comm = "seed", .cwd_len = 5, .exe_len = 9, .root_len = 1 };
	struct img_creds c = { .uid = 1000, .euid = 1000, .ngroups = 1 };
	uint32_t groups[1] = { 1000 };
	struct img_rlimits l;
	struct img_sched s = { .affinity_len = 8 };
	uint8_t mask[8] = { 3 };
	struct img_mm mm = { .start_brk = 0x600000, .brk = 0x601000, .auxv_len = 16 };
	uint64_t auxv[2] = { 0, 0 };
	struct img_vma v[2] = {
		{ .start = 0x400000, .end = 0x402000, .prot = 5, .kind = IMG_VMA_FILE_PRIVATE,
		  .path_len = 9 },
		{ .start = 0x600000, .end = 0x601000, .prot = 3, .kind = IMG_VMA_HEAP },
	};
	struct img_sigactions *a = calloc(1, sizeof(*a));
	struct img_sigpending sp = { .shared = 0, .tid = 4242, .count = 1 };
	uint8_t info[IMG_SIGINFO_SIZE] = { 15 };
	struct img_itimers it = { .timer = { { 0, 0, 3, 0 } } };
	struct img_thread t = { .tid = 4242, .xstate_len = 16 };
	uint8_t xstate[16] = { 0 };

	for (int i = 0; i < IMG_RLIMITS; i++)
		l.lim[i].cur = l.lim[i].max = UINT64_MAX;
	rec(w, IMG_REC_PROCESS, &p, sizeof(p), "/home/bin/seed/", 15);
	rec(w, IMG_REC_CREDS, &c, sizeof(c), groups, sizeof(groups));
	rec(w, IMG_REC_RLIMITS, &l, sizeof(l), NULL, 0);
	rec(w, IMG_REC_SCHED, &s, sizeof(s), mask, sizeof(mask));
	rec(w, IMG_REC_MM, &mm, sizeof(mm), auxv, sizeof(auxv));
	rec(w, IMG_REC_VMA, &v[0], sizeof(v[0]), "/bin/seed", 9);
	rec(w, IMG_REC_VMA, &v[1], sizeof(v[1]), NULL, 0);
	if (a) {
		a->act[1].handler = 0x401000;
		a->act[12].handler = 1; /* SIGPIPE */
		rec(w, IMG_REC_SIGACTIONS, a, sizeof(*a), NULL, 0);
		free(a);
	}
	rec(w, IMG_REC_SIGPENDING, &sp, sizeof(sp), info, sizeof(info));
	rec(w, IMG_REC_ITIMERS, &it, sizeof(it), NULL, 0);
	rec(w, IMG_REC_THREAD, &t, sizeof(t), xstate, sizeof(xstate));
	pages(w, 0x400000, 2);
	pages(w, 0x600000, 1);
}

static void fill_files(struct img_writer *w)
{
	struct img_file f[6] = {
		{ .id = 1, .kind = IMG_FILE_REG, .flags = 0, .pos = 3, .path_len = 10 },
		{ .id = 2, .kind = IMG_FILE_PIPE, .peer_id = 3 },
		{ .id = 3, .kind = IMG_FILE_PIPE, .flags = 1, .peer_id = 2 },
		{ .id = 4, .kind = IMG_FILE_STDIO, .stdio_fd = 1 },
		{ .id = 5, .kind = IMG_FILE_CARRIED, .flags = 2, .mode = 0140777, .sock_type = 1,
		  .path_len = 10 },
		{ .id = 6, .kind = IMG_FILE_EPOLL, .flags = 2 },
	};
	struct img_file_data d = { .file_id = 2 };
	struct img_fd fds[6] = { { 0, 1, 0, 0 }, { 1, 4, 0, 0 }, { 5, 2, 1, 0 }, { 6, 3, 1, 0 },
				 { 7, 5, 1, 0 }, { 8, 6, 1, 0 } };
	/* level-triggered on the pipe, edge-triggered on the carried socket,
	 * a one-shot that fired on the pipe's write end */
	struct img_epoll ep = { .file_id = 6, .count = 3 };
	struct img_epoll_tfd t[3] = { { 5, 2, 0x19, 0, 0x1122334455667788 },
				      { 7, 5, 0x80000019, 0, 2 },
				      { 6, 3, 0x40000000, 0, 3 } };

	for (int i = 0; i < 6; i++)
		rec(w, IMG_REC_FILE, &f[i], sizeof(f[i]), "/etc/hosts", f[i].path_len);
	rec(w, IMG_REC_FILE_DATA, &d, sizeof(d), "data in the pipe", 16);
	for (int i = 0; i < 6; i++)
		rec(w, IMG_REC_FD, &fds[i], sizeof(fds[i]), NULL, 0);
	rec(w, IMG_REC_EPOLL, &ep, sizeof(ep), t, sizeof(t));
}

static void fill_optional(struct img_writer *w)
{
	img_write_record_flags(w, 77, IMG_RECF_OPTIONAL, "future", 6, NULL, 0);
	fill_files(w);
}

static int write_seed(const char *dir, const struct seed *s)
{
	char path[4096];
	struct ghost_io *io;
	struct img_writer *w;
	int fd, r;

	snprintf(path, sizeof(path), "%s/%s", dir, s->name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	r = io_file_new(fd, IO_WRITE, 0, &io);
	if (r >= 0) {
		r = img_writer_new(io, &w);
		if (r >= 0) {
			s->fill(w);
			r = img_writer_finish(w);
			img_writer_free(w);
		}
		io_free(io);
	}
	close(fd);
	return r;
}

int main(int argc, char **argv)
{
	static const struct seed seeds[] = {
		{ "seed-minimal.ghost", fill_minimal },
		{ "seed-process.ghost", fill_process },
		{ "seed-files.ghost", fill_files },
		{ "seed-optional.ghost", fill_optional },
	};

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return EXIT_FAILURE;
	}
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		int r = write_seed(argv[1], &seeds[i]);

		if (r < 0) {
			fprintf(stderr, "cannot write '%s': %s\n", seeds[i].name, strerror(-r));
			return EXIT_FAILURE;
		}
	}
	return EXIT_SUCCESS;
}

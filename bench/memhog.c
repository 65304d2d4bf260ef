/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Benchmark target: holds MIB MiB of anonymous memory, every byte written with
 * a position-dependent non-zero pattern, and optionally a sparse mapping of
 * which only a few pages are touched. It writes "ready\n" to the file named by
 * GHOST_TEST_READY, then waits; SIGUSR1 makes it check its memory and exit 0
 * (intact) or 1 (damaged).
 *
 *	memhog MIB [--sparse MIB:PAGES]
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "target.h"

#define PAGE           4096UL
#define WORDS_PER_PAGE (PAGE / sizeof(uint64_t))

static uint64_t *dense;
static size_t dense_words;
static unsigned char *sparse;
static size_t sparse_pages, sparse_touched, sparse_stride;

/* Non-zero for every i: an odd multiplier is a bijection and x ^ (x >> 31) is zero only for 0. */
static inline uint64_t pattern(uint64_t i, uint64_t seed)
{
	uint64_t x = (i + 1 + seed) * 0x9E3779B97F4A7C15ULL;

	return x ^ (x >> 31);
}

static void fill(uint64_t *w, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		w[i] = pattern(i, seed);
}

static int check(const uint64_t *w, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		if (w[i] != pattern(i, seed))
			return -1;
	return 0;
}

static int check_all(void)
{
	if (check(dense, dense_words, 0) < 0)
		return -1;
	for (size_t p = 0; p < sparse_pages; p++) {
		const uint64_t *w = (const uint64_t *)(sparse + p * PAGE);
		bool touched = p % sparse_stride == 0 && p / sparse_stride < sparse_touched;

		if (touched) {
			if (check(w, WORDS_PER_PAGE, 1 + p) < 0)
				return -1;
		} else if (p % 64 == 1) {
			/* a sample of the untouched pages must read as zeros */
			for (size_t i = 0; i < WORDS_PER_PAGE; i++)
				if (w[i])
					return -1;
		}
	}
	return 0;
}

static void on_usr1(int sig)
{
	(void)sig;
	_exit(check_all() < 0 ? 1 : 0);
}

/* Parse a decimal number ending at '\0' or at stop; the end in ret_end. */
static int parse_ulong(const char *s, char stop, unsigned long *ret, const char **ret_end)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*ret = strtoul(s, &end, 10);
	if (errno || (*end && *end != stop))
		return -1;
	*ret_end = end;
	return 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	unsigned long mib, sp_mib = 0, sp_pages = 0;
	const char *end;

	if (argc != 2 && !(argc == 4 && !strcmp(argv[2], "--sparse"))) {
		fprintf(stderr, "usage: memhog MIB [--sparse MIB:PAGES]\n");
		return 2;
	}
	if (parse_ulong(argv[1], '\0', &mib, &end) < 0 || mib > (1UL << 20)) {
		fprintf(stderr, "memhog: bad size '%s'\n", argv[1]);
		return 2;
	}
	if (argc == 4) {
		if (parse_ulong(argv[3], ':', &sp_mib, &end) < 0 || *end != ':' ||
		    parse_ulong(end + 1, '\0', &sp_pages, &end) < 0 || sp_mib > (1UL << 20) ||
		    sp_pages == 0 || sp_pages > sp_mib * (1024 * 1024 / PAGE)) {
			fprintf(stderr, "memhog: bad sparse spec '%s'\n", argv[3]);
			return 2;
		}
	}

	if (mib) {
		dense_words = mib * 1024 * 1024 / sizeof(uint64_t);
		dense = mmap(NULL, mib * 1024 * 1024, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (dense == MAP_FAILED) {
			perror("memhog: mmap");
			return 1;
		}
		fill(dense, dense_words, 0);
	}
	if (sp_mib) {
		sparse_pages = sp_mib * 1024 * 1024 / PAGE;
		sparse_touched = sp_pages;
		sparse_stride = sparse_pages / sp_pages;
		sparse = mmap(NULL, sp_mib * 1024 * 1024, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (sparse == MAP_FAILED) {
			perror("memhog: mmap");
			return 1;
		}
		for (size_t k = 0; k < sparse_touched; k++) {
			size_t p = k * sparse_stride;

			fill((uint64_t *)(sparse + p * PAGE), WORDS_PER_PAGE, 1 + p);
		}
	}

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0 || target_signal_ready() < 0) {
		perror("memhog");
		return 1;
	}
	for (;;)
		pause();
}

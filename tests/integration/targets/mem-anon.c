/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Anonymous private memory: 9 MiB holding a pattern, pages never touched,
 * pages written then zeroed, pages with a single non-zero byte, pages only
 * read (mapped to the zero page). Content must be the same after restart and
 * the mapping must still be private.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib.h"

#define PAGE 4096ul
#define NPAGES 2304ul
#define SEED 0xa11ce

enum kind { PATTERN, UNTOUCHED, ZEROED, ONE_BYTE_FIRST, ONE_BYTE_LAST, READ_ONLY };

static enum kind page_kind(unsigned long i)
{
	if (i < 1024)
		return PATTERN;
	if (i < 1280)
		return UNTOUCHED;
	if (i < 1536)
		return ZEROED;
	if (i < 2048)
		return i % 3 == 0 ? PATTERN : i % 3 == 1 ? ONE_BYTE_FIRST : ONE_BYTE_LAST;
	return READ_ONLY;
}

int main(void)
{
	unsigned char *mem;
	volatile unsigned char sink = 0;

	test_init("mem-anon");
	test_wake_handler(0);

	mem = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		   0);
	if (mem == MAP_FAILED)
		test_abort("mmap: %m");
	for (unsigned long i = 0; i < NPAGES; i++) {
		unsigned char *p = mem + i * PAGE;

		switch (page_kind(i)) {
		case PATTERN:
			pattern_fill(p, PAGE, SEED + i);
			break;
		case ZEROED:
			pattern_fill(p, PAGE, SEED + i);
			memset(p, 0, PAGE);
			break;
		case ONE_BYTE_FIRST:
			p[0] = (unsigned char)(i | 1);
			break;
		case ONE_BYTE_LAST:
			p[PAGE - 1] = (unsigned char)(i | 1);
			break;
		case READ_ONLY:
			sink ^= p[PAGE / 2];
			break;
		case UNTOUCHED:
			break;
		}
	}

	test_ready();
	test_wait_pause();

	for (unsigned long i = 0; i < NPAGES; i++) {
		unsigned char *p = mem + i * PAGE;
		ssize_t off = -1;
		unsigned char want = (unsigned char)(i | 1);

		switch (page_kind(i)) {
		case PATTERN:
			off = pattern_check(p, PAGE, SEED + i);
			break;
		case UNTOUCHED:
		case ZEROED:
		case READ_ONLY:
			off = zero_check(p, PAGE);
			break;
		case ONE_BYTE_FIRST:
			if (p[0] != want)
				off = 0;
			else if ((off = zero_check(p + 1, PAGE - 1)) >= 0)
				off++;
			break;
		case ONE_BYTE_LAST:
			if (p[PAGE - 1] != want)
				off = PAGE - 1;
			else
				off = zero_check(p, PAGE - 1);
			break;
		}
		if (off >= 0) {
			test_fail("page %lu (kind %d) differs at byte %zd: %#x", i, page_kind(i),
				  off, p[off]);
			if (test_failures() > 10)
				break;
		}
	}
	{
		char perms[5];

		if (maps_perms(mem, perms) < 0)
			test_fail("mapping not found in /proc/self/maps");
		else
			CHECK(strcmp(perms, "rw-p") == 0, "perms are '%s', want rw-p", perms);
	}

	/* still private: a child's write must not reach the parent */
	{
		pid_t child = fork();
		int status;

		if (child == 0) {
			memset(mem, 0xee, PAGE);
			_exit(0);
		}
		if (child < 0 || waitpid(child, &status, 0) != child)
			test_fail("fork/wait: %m");
		CHECK(pattern_check(mem, PAGE, SEED) < 0, "a child's write reached the parent");
	}
	(void)sink;
	return test_done();
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Heap and brk: blocks from malloc (small ones from the brk heap, large ones
 * mmap'ed by malloc) and a region from sbrk(). After restart the content is
 * the same, sbrk(0) is the same, and both malloc and brk keep working.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib.h"

#define NBLOCKS 2000
#define SBRK_SIZE (64 * 1024)
#define SEED 0x4ea9

static void *blocks[NBLOCKS];
static size_t sizes[NBLOCKS];

static size_t block_size(int i)
{
	if (i % 500 == 7)
		return (size_t)(1 << 20) + (size_t)i; /* above the mmap threshold */
	return 16 + (size_t)(pattern_word(SEED, (uint64_t)i) % 3000);
}

int main(void)
{
	char heap_line[512], line[512];
	unsigned char *region;
	void *brk_end;
	unsigned long long start_brk;

	test_init("mem-heap");
	test_wake_handler(0);

	for (int i = 0; i < NBLOCKS; i++) {
		sizes[i] = block_size(i);
		blocks[i] = malloc(sizes[i]);
		if (!blocks[i])
			test_abort("malloc(%zu) failed", sizes[i]);
		pattern_fill(blocks[i], sizes[i], SEED + (uint64_t)i);
	}
	/* free some to leave holes in the heap */
	for (int i = 0; i < NBLOCKS; i += 7) {
		free(blocks[i]);
		blocks[i] = NULL;
	}
	region = sbrk(SBRK_SIZE);
	if (region == (void *)-1)
		test_abort("sbrk: %m");
	pattern_fill(region, SBRK_SIZE, SEED);
	brk_end = sbrk(0);
	start_brk = proc_stat_field(47);
	if (maps_line(region, heap_line, sizeof(heap_line)) < 0)
		test_abort("sbrk region not in /proc/self/maps");

	test_ready();
	test_wait_pause();

	CHECK(sbrk(0) == brk_end, "sbrk(0) is %p, want %p", sbrk(0), brk_end);
	CHECK_EQ("start_brk (/proc/self/stat field 47)", proc_stat_field(47), start_brk);
	if (maps_line(region, line, sizeof(line)) < 0)
		test_fail("sbrk region not in /proc/self/maps");
	else
		CHECK(strcmp(line, heap_line) == 0, "heap is '%s', want '%s'", line, heap_line);
	CHECK(pattern_check(region, SBRK_SIZE, SEED) < 0, "sbrk region differs");
	for (int i = 0; i < NBLOCKS; i++) {
		if (!blocks[i])
			continue;
		if (pattern_check(blocks[i], sizes[i], SEED + (uint64_t)i) >= 0) {
			test_fail("malloc block %d (%zu bytes) differs", i, sizes[i]);
			if (test_failures() > 10)
				break;
		}
	}

	/* the allocator still works: free everything, allocate again */
	for (int i = 0; i < NBLOCKS; i++) {
		free(blocks[i]);
		blocks[i] = NULL;
	}
	for (int i = 0; i < NBLOCKS; i++) {
		blocks[i] = malloc(sizes[i]);
		if (!blocks[i]) {
			test_fail("malloc(%zu) failed after restart", sizes[i]);
			break;
		}
		memset(blocks[i], i & 0xff, sizes[i]);
	}
	for (int i = 0; i < NBLOCKS; i++)
		free(blocks[i]);

	/* brk still moves */
	{
		void *old = sbrk(0);
		unsigned char *more = sbrk(8192);

		if (more == (void *)-1)
			test_fail("sbrk(8192) after restart: %m");
		else {
			CHECK(more == old, "sbrk returned %p, want %p", (void *)more, old);
			memset(more, 0x5a, 8192);
			if (sbrk(-8192) == (void *)-1)
				test_fail("sbrk(-8192): %m");
		}
	}
	return test_done();
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A sparse 1 GiB anonymous mapping with 16 touched pages: their content must
 * survive, the rest must read as zeros, and the restored mapping must not have
 * become resident (restoring it must cost nothing).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib.h"

#define PAGE 4096ul
#define SIZE (1ul << 30)
#define NPAGES (SIZE / PAGE)
#define NTOUCHED 16
#define SEED 0x5ba25e

static unsigned long touched[NTOUCHED];

static bool is_touched(unsigned long i)
{
	for (int k = 0; k < NTOUCHED; k++)
		if (touched[k] == i)
			return true;
	return false;
}

static unsigned long resident_pages(unsigned char *mem)
{
	static unsigned char vec[NPAGES];
	unsigned long n = 0;

	if (mincore(mem, SIZE, vec) < 0) {
		test_fail("mincore: %m");
		return 0;
	}
	for (unsigned long i = 0; i < NPAGES; i++)
		n += vec[i] & 1;
	return n;
}

int main(void)
{
	unsigned char *mem;
	unsigned long resident;

	test_init("mem-sparse");
	test_wake_handler(0);

	/* first, last, neighbours, and scattered pages */
	touched[0] = 0;
	touched[1] = 1;
	touched[2] = NPAGES - 1;
	touched[3] = NPAGES / 2;
	touched[4] = NPAGES / 2 + 1;
	for (int k = 5; k < NTOUCHED; k++)
		touched[k] = (pattern_word(SEED, (uint64_t)k) % (NPAGES - 4)) + 2;

	mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		   -1, 0);
	if (mem == MAP_FAILED)
		test_abort("mmap 1 GiB: %m");
	/* keep the count of resident pages exact: no transparent huge pages here */
	MUST(madvise(mem, SIZE, MADV_NOHUGEPAGE));
	for (int k = 0; k < NTOUCHED; k++)
		pattern_fill(mem + touched[k] * PAGE, PAGE, SEED + touched[k]);

	test_ready();
	test_wait_pause();

	resident = resident_pages(mem);
	CHECK(resident <= 2 * NTOUCHED, "%lu pages of the sparse mapping are resident, want <= %d",
	      resident, 2 * NTOUCHED);
	for (int k = 0; k < NTOUCHED; k++) {
		ssize_t off = pattern_check(mem + touched[k] * PAGE, PAGE, SEED + touched[k]);

		CHECK(off < 0, "touched page %lu differs at byte %zd", touched[k], off);
	}
	/* sample untouched pages: every 61st, and the neighbours of touched ones */
	for (unsigned long i = 0; i < NPAGES; i += 61)
		if (!is_touched(i))
			CHECK(zero_check(mem + i * PAGE, PAGE) < 0, "untouched page %lu is not zero",
			      i);
	for (int k = 0; k < NTOUCHED; k++) {
		unsigned long n[2] = { touched[k] - 1, touched[k] + 1 };

		for (int j = 0; j < 2; j++)
			if (n[j] < NPAGES && !is_touched(n[j]))
				CHECK(zero_check(mem + n[j] * PAGE, PAGE) < 0,
				      "untouched page %lu is not zero", n[j]);
	}
	{
		char line[512], flags[256];

		if (maps_line(mem, line, sizeof(line)) < 0)
			test_fail("mapping not found in /proc/self/maps");
		else {
			unsigned long start, end;

			if (sscanf(line, "%lx-%lx", &start, &end) != 2 ||
			    start != (unsigned long)mem || end != (unsigned long)mem + SIZE)
				test_fail("mapping is '%s', want %p-%p", line, (void *)mem,
					  (void *)(mem + SIZE));
		}
		if (smaps_vmflags(mem, flags, sizeof(flags)) < 0)
			test_fail("mapping not found in /proc/self/smaps");
		else
			CHECK(vmflags_has(flags, "nh"), "VmFlags '%s' lost nh (MADV_NOHUGEPAGE)",
			      flags);
	}
	return test_done();
}

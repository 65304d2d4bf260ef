/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * MAP_SHARED|MAP_ANONYMOUS memory: content kept, and the region is still
 * shared after restart (a child's writes show in the parent).
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib.h"

#define PAGE 4096ul
#define NPAGES 64ul
#define SEED 0x5a4ed

int main(void)
{
	unsigned char *mem;
	char perms[5];

	test_init("mem-shared-anon");
	test_wake_handler(0);

	mem = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		test_abort("mmap: %m");
	/* every page but a few untouched ones */
	for (unsigned long i = 0; i < NPAGES; i++)
		if (i % 8 != 3)
			pattern_fill(mem + i * PAGE, PAGE, SEED + i);

	test_ready();
	test_wait_pause();

	for (unsigned long i = 0; i < NPAGES; i++) {
		ssize_t off = i % 8 != 3 ? pattern_check(mem + i * PAGE, PAGE, SEED + i)
					 : zero_check(mem + i * PAGE, PAGE);

		CHECK(off < 0, "page %lu differs at byte %zd", i, off);
	}
	if (maps_perms(mem, perms) < 0)
		test_fail("mapping not in /proc/self/maps");
	else
		CHECK(strcmp(perms, "rw-s") == 0, "perms are '%s', want rw-s", perms);
	{
		pid_t child = fork();
		int status;

		if (child == 0) {
			pattern_fill(mem + 5 * PAGE, PAGE, 0xc41d);
			_exit(0);
		}
		if (child < 0 || waitpid(child, &status, 0) != child)
			test_fail("fork/wait: %m");
		CHECK(pattern_check(mem + 5 * PAGE, PAGE, 0xc41d) < 0,
		      "a child's write does not show in the parent: not shared any more");
	}
	return test_done();
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * madvise flags that matter: MADV_DONTFORK ("dc" in VmFlags) and
 * MADV_DONTDUMP ("dd"). After restart the flags, the content and the
 * behaviour (a child does not get a DONTFORK region) are the same.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib.h"

#define PAGE 4096ul
#define NPAGES 8ul

static bool has_flag(void *addr, const char *flag)
{
	char flags[256];

	if (smaps_vmflags(addr, flags, sizeof(flags)) < 0) {
		test_fail("%p not in /proc/self/smaps", addr);
		return false;
	}
	return vmflags_has(flags, flag);
}

int main(void)
{
	unsigned char *dontfork, *dontdump, *plain;

	test_init("mem-madvise");
	test_wake_handler(0);

	dontfork = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			-1, 0);
	dontdump = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			-1, 0);
	plain = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		     0);
	if (dontfork == MAP_FAILED || dontdump == MAP_FAILED || plain == MAP_FAILED)
		test_abort("mmap: %m");
	MUST(madvise(dontfork, NPAGES * PAGE, MADV_DONTFORK));
	MUST(madvise(dontdump, NPAGES * PAGE, MADV_DONTDUMP));
	pattern_fill(dontfork, NPAGES * PAGE, 1);
	pattern_fill(dontdump, NPAGES * PAGE, 2);
	pattern_fill(plain, NPAGES * PAGE, 3);
	if (!has_flag(dontfork, "dc") || !has_flag(dontdump, "dd"))
		test_abort("madvise flags not visible in smaps");

	test_ready();
	test_wait_pause();

	CHECK(has_flag(dontfork, "dc"), "MADV_DONTFORK region lost VmFlags dc");
	CHECK(!has_flag(dontfork, "dd"), "MADV_DONTFORK region gained VmFlags dd");
	CHECK(has_flag(dontdump, "dd"), "MADV_DONTDUMP region lost VmFlags dd");
	CHECK(!has_flag(dontdump, "dc"), "MADV_DONTDUMP region gained VmFlags dc");
	CHECK(!has_flag(plain, "dc") && !has_flag(plain, "dd"), "plain region gained dc or dd");
	CHECK(pattern_check(dontfork, NPAGES * PAGE, 1) < 0, "MADV_DONTFORK region differs");
	CHECK(pattern_check(dontdump, NPAGES * PAGE, 2) < 0, "MADV_DONTDUMP region differs");
	CHECK(pattern_check(plain, NPAGES * PAGE, 3) < 0, "plain region differs");
	{
		pid_t child = fork();
		int status = 0;

		if (child == 0) {
			char line[512];

			/* 0: DONTFORK region absent and the others present */
			_exit(maps_line(dontfork, line, sizeof(line)) == 0 ? 1
			      : maps_line(dontdump, line, sizeof(line)) < 0 ? 2
									 : 0);
		}
		if (child < 0 || waitpid(child, &status, 0) != child)
			test_fail("fork/wait: %m");
		else
			CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "in a child: %s",
			      WIFEXITED(status) && WEXITSTATUS(status) == 1
				      ? "the MADV_DONTFORK region is mapped"
				      : "the MADV_DONTDUMP region is missing");
	}
	return test_done();
}

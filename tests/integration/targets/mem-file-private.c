/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A private mapping of a file, some pages modified: modified pages keep their
 * content (and the file does not see them); unmodified pages still reflect the
 * file, so a write to the file after restart shows through them.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib.h"

#define PAGE 4096ul
#define NPAGES 32ul
#define FILE_SEED 0xf11e
#define DIRTY_SEED 0xd1e7
#define NEW_SEED 0x2e3

static bool dirty(unsigned long i)
{
	return i % 4 == 1 || i == NPAGES - 1;
}

int main(void)
{
	static unsigned char buf[NPAGES * PAGE];
	char path[PATH_MAX], want_link[PATH_MAX + 64], line[PATH_MAX + 128];
	unsigned char *map;
	int fd;

	test_init("mem-file-private");
	test_wake_handler(0);

	if (!getcwd(path, sizeof(path) - 32))
		test_abort("getcwd: %m");
	strcat(path, "/private.data");
	pattern_fill(buf, sizeof(buf), FILE_SEED);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	MUST(fd);
	MUST(write_all(fd, buf, sizeof(buf)));
	map = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		test_abort("mmap: %m");
	close(fd);
	for (unsigned long i = 0; i < NPAGES; i++) {
		if (dirty(i))
			pattern_fill(map + i * PAGE, PAGE, DIRTY_SEED + i);
		else if (i % 2 == 0) {
			volatile unsigned char c = map[i * PAGE]; /* read-faulted, still clean */

			(void)c;
		}
	}
	if (maps_line(map, want_link, sizeof(want_link)) < 0)
		test_abort("mapping not in /proc/self/maps");

	test_ready();
	test_wait_pause();

	if (maps_line(map, line, sizeof(line)) < 0)
		test_fail("mapping not in /proc/self/maps");
	else
		CHECK(strcmp(line, want_link) == 0, "maps line is '%s', want '%s'", line,
		      want_link);
	for (unsigned long i = 0; i < NPAGES; i++) {
		unsigned char *p = map + i * PAGE;
		ssize_t off;

		if (dirty(i))
			off = pattern_check(p, PAGE, DIRTY_SEED + i);
		else
			off = memcmp(p, buf + i * PAGE, PAGE) ? 0 : -1;
		CHECK(off < 0, "%s page %lu differs after restart", dirty(i) ? "dirty" : "clean", i);
	}

	/* the file never saw the private writes */
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		test_fail("open '%s': %m", path);
		return test_done();
	}
	{
		static unsigned char now[NPAGES * PAGE];

		if (pread(fd, now, sizeof(now), 0) != (ssize_t)sizeof(now))
			test_fail("pread: %m");
		else
			CHECK(memcmp(now, buf, sizeof(buf)) == 0, "the file changed");
	}
	/* clean pages are still the file's: a change to the file shows through */
	for (unsigned long i = 0; i < NPAGES; i++) {
		unsigned char page[PAGE];

		if (dirty(i))
			continue;
		pattern_fill(page, PAGE, NEW_SEED + i);
		if (pwrite(fd, page, PAGE, (off_t)(i * PAGE)) != (ssize_t)PAGE) {
			test_fail("pwrite: %m");
			break;
		}
		CHECK(memcmp(map + i * PAGE, page, PAGE) == 0,
		      "clean page %lu does not reflect the file any more", i);
		if (dirty(i + 1) && i + 1 < NPAGES)
			CHECK(pattern_check(map + (i + 1) * PAGE, PAGE, DIRTY_SEED + i + 1) < 0,
			      "dirty page %lu changed with the file", i + 1);
	}
	close(fd);
	return test_done();
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A shared mapping of a file: the file is the truth. Writes made before the
 * checkpoint are in the file and in the mapping after restart; writes through
 * the mapping after restart reach the file, and writes to the file show in
 * the mapping.
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
#define NPAGES 16ul
#define FILE_SEED 0x54a7
#define MAP_SEED 0x3a9

int main(void)
{
	static unsigned char want[NPAGES * PAGE], now[NPAGES * PAGE];
	char path[PATH_MAX], perms[5];
	unsigned char *map;
	int fd;

	test_init("mem-file-shared");
	test_wake_handler(0);

	if (!getcwd(path, sizeof(path) - 32))
		test_abort("getcwd: %m");
	strcat(path, "/shared.data");
	pattern_fill(want, sizeof(want), FILE_SEED);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	MUST(fd);
	MUST(write_all(fd, want, sizeof(want)));
	map = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		test_abort("mmap: %m");
	close(fd);
	/* write half of the pages through the mapping, without msync */
	for (unsigned long i = 0; i < NPAGES; i += 2) {
		pattern_fill(map + i * PAGE, PAGE, MAP_SEED + i);
		memcpy(want + i * PAGE, map + i * PAGE, PAGE);
	}

	test_ready();
	test_wait_pause();

	CHECK(memcmp(map, want, sizeof(want)) == 0, "mapping content differs after restart");
	if (maps_perms(map, perms) < 0)
		test_fail("mapping not in /proc/self/maps");
	else
		CHECK(strcmp(perms, "rw-s") == 0, "perms are '%s', want rw-s", perms);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		test_fail("open '%s': %m", path);
		return test_done();
	}
	if (pread(fd, now, sizeof(now), 0) != (ssize_t)sizeof(now))
		test_fail("pread: %m");
	else
		CHECK(memcmp(now, want, sizeof(want)) == 0,
		      "the file does not hold the writes made before the checkpoint");

	/* after restart: mapping -> file */
	pattern_fill(map + PAGE, PAGE, 0x77);
	MUST(msync(map, NPAGES * PAGE, MS_SYNC));
	if (pread(fd, now, PAGE, PAGE) != (ssize_t)PAGE)
		test_fail("pread: %m");
	else
		CHECK(pattern_check(now, PAGE, 0x77) < 0,
		      "a write through the mapping did not reach the file");
	/* file -> mapping */
	pattern_fill(now, PAGE, 0x99);
	if (pwrite(fd, now, PAGE, 3 * PAGE) != (ssize_t)PAGE)
		test_fail("pwrite: %m");
	else
		CHECK(pattern_check(map + 3 * PAGE, PAGE, 0x99) < 0,
		      "a write to the file does not show in the mapping");
	close(fd);
	return test_done();
}

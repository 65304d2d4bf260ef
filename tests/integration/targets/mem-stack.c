/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A deep stack: 3000 nested calls each holding values in its frame, plus one
 * 1 MiB frame, wait at the bottom; every frame checks its values while the
 * calls return after restart.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lib.h"

#define DEPTH 3000
#define SEED 0x57ac

static uint64_t __attribute__((noinline)) big_frame(void)
{
	volatile uint64_t big[(1 << 20) / 8];
	uint64_t sum = 0;

	for (size_t i = 0; i < sizeof(big) / 8; i++)
		big[i] = pattern_word(SEED, i);
	test_ready();
	test_wait_pause();
	for (size_t i = 0; i < sizeof(big) / 8; i++) {
		if (big[i] != pattern_word(SEED, i)) {
			test_fail("1 MiB frame differs at word %zu", i);
			break;
		}
		sum += big[i];
	}
	return sum;
}

static uint64_t __attribute__((noinline)) descend(int depth)
{
	volatile uint64_t local[8];
	uint64_t r;

	for (int i = 0; i < 8; i++)
		local[i] = pattern_word(SEED + (uint64_t)depth, (uint64_t)i);
	if (depth == DEPTH)
		r = big_frame();
	else
		r = descend(depth + 1);
	for (int i = 0; i < 8; i++)
		if (local[i] != pattern_word(SEED + (uint64_t)depth, (uint64_t)i)) {
			test_fail("frame at depth %d differs in word %d", depth, i);
			break;
		}
	return r + local[depth % 8];
}

int main(void)
{
	char line[512], line2[512];
	char marker;

	test_init("mem-stack");
	test_wake_handler(0);
	if (maps_line(&marker, line, sizeof(line)) < 0)
		test_abort("stack not in /proc/self/maps");
	CHECK(strstr(line, "[stack]") != NULL, "'%s' is not [stack]", line);

	if (descend(0) == 0)
		test_fail("stack sum is 0");
	if (maps_line(&marker, line2, sizeof(line2)) < 0)
		test_fail("stack not in /proc/self/maps");
	else
		CHECK(strstr(line2, "[stack]") != NULL, "'%s' is not [stack]", line2);
	CHECK_EQ("start_stack (/proc/self/stat field 28)", proc_stat_field(28) != 0, 1);
	return test_done();
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of src/base: struct buf keeps its terminator through every way
 * of growing it, read_file_at() hands out a C string for any file (an empty
 * one included), and the strict number parsers. Run with MALLOC_PERTURB_ set
 * (see meson.build) so that fresh heap memory is never zero by luck: a
 * missing terminator shows as a wrong string, not as a crash elsewhere.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/fileio.h"

/* A temporary file holding len bytes of data; its path in path. */
static void make_file(char *path, size_t size, const void *data, size_t len)
{
	int fd;

	snprintf(path, size, "%s/ghost-test-base-XXXXXX", getenv("TMPDIR") ?: "/tmp");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write_full(fd, data, len), 0);
	assert_int_equal(close(fd), 0);
}

static void test_reserve_terminates(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(buf_reserve(&b, 100), 0);
	assert_non_null(b.data);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	/* Growing again keeps what is there and its terminator. */
	assert_int_equal(buf_append(&b, "abc", 3), 0);
	assert_int_equal(buf_reserve(&b, 100000), 0);
	assert_int_equal(b.len, 3);
	assert_string_equal(b.data, "abc");
	buf_release(&b);
	assert_null(b.data);
	assert_int_equal(b.cap, 0);
}

static void test_append_printf_reset(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(buf_append(&b, "", 0), 0);
	assert_string_equal(b.data, "");
	assert_int_equal(buf_printf(&b, "%d-%s", 42, "x"), 0);
	assert_int_equal(buf_append(&b, "yz", 2), 0);
	assert_int_equal(b.len, 6);
	assert_string_equal(b.data, "42-xyz");
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	buf_release(&b);
}

static void test_read_empty_file(void **state)
{
	char path[256];
	struct buf b = BUF_INIT;
	int r;

	(void)state;
	make_file(path, sizeof(path), "", 0);
	/* The case that corrupted a daemon's heap: a /proc "children" file of a
	 * process without children is empty, and the buffer was new. */
	r = read_file_at(AT_FDCWD, path, &b);
	/* Gone before any check can fail. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(r, 0);
	assert_non_null(b.data);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	buf_release(&b);
}

static void test_read_replaces_contents(void **state)
{
	static char big[20000];
	char path[256];
	struct buf b = BUF_INIT;
	int r;

	(void)state;
	assert_int_equal(buf_append(&b, "old contents", 12), 0);
	make_file(path, sizeof(path), "1 2 3\n", 6);
	r = read_file_at(AT_FDCWD, path, &b);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(r, 0);
	assert_string_equal(b.data, "1 2 3\n");

	/* Larger than one read: grows and stays terminated. */
	memset(big, 'q', sizeof(big));
	make_file(path, sizeof(path), big, sizeof(big));
	r = read_file_at(AT_FDCWD, path, &b);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(r, 0);
	assert_int_equal(b.len, sizeof(big));
	assert_int_equal(strlen(b.data), sizeof(big));

	assert_int_equal(read_file_at(AT_FDCWD, path, &b), -ENOENT);
	buf_release(&b);
}

static void test_parsers(void **state)
{
	uint64_t v;
	int i;
	pid_t p;

	(void)state;
	assert_int_equal(parse_u64("18446744073709551615", 10, &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(parse_u64("ff", 16, &v), 0);
	assert_true(v == 255);
	assert_true(parse_u64("18446744073709551616", 10, &v) < 0);
	assert_true(parse_u64("", 10, &v) < 0);
	assert_true(parse_u64("12x", 10, &v) < 0);
	assert_true(parse_u64("-1", 10, &v) < 0);
	assert_int_equal(parse_int("-7", &i), 0);
	assert_int_equal(i, -7);
	assert_true(parse_int("2147483648", &i) < 0);
	assert_int_equal(parse_pid("100000", &p), 0);
	assert_int_equal(p, 100000);
	assert_true(parse_pid("0", &p) < 0);
	assert_true(parse_pid("-5", &p) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reserve_terminates),
		cmocka_unit_test(test_append_printf_reset),
		cmocka_unit_test(test_read_empty_file),
		cmocka_unit_test(test_read_replaces_contents),
		cmocka_unit_test(test_parsers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

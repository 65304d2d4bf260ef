/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The mm layout: /proc/self/stat fields start_code..env_end, cmdline,
 * environ, auxv, the executable link and the whole /proc/self/maps must be
 * identical after restart (PR_SET_MM_MAP restores what maps labels [heap] and
 * [stack] from, and what ps shows as the command line).
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib.h"

/* stat fields (proc(5)): startcode endcode startstack, start_data .. env_end */
static const int fields[] = { 26, 27, 28, 45, 46, 47, 48, 49, 50, 51 };
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

struct snap {
	unsigned long long stat[NFIELDS];
	char cmdline[4096];
	ssize_t cmdline_len;
	char environ_[65536];
	ssize_t environ_len;
	char auxv[4096];
	ssize_t auxv_len;
	char exe[PATH_MAX];
	char maps[1 << 16];
};

static struct snap before, after;

static ssize_t read_raw(const char *path, char *buf, size_t size)
{
	ssize_t n = file_read(path, buf, size);

	if (n < 0 || (size_t)n >= size - 1)
		test_fail("read %s: %s", path, n < 0 ? "error" : "too large");
	return n;
}

static void take(struct snap *s)
{
	ssize_t n;

	for (size_t i = 0; i < NFIELDS; i++)
		s->stat[i] = proc_stat_field(fields[i]);
	s->cmdline_len = read_raw("/proc/self/cmdline", s->cmdline, sizeof(s->cmdline));
	s->environ_len = read_raw("/proc/self/environ", s->environ_, sizeof(s->environ_));
	s->auxv_len = read_raw("/proc/self/auxv", s->auxv, sizeof(s->auxv));
	n = readlink("/proc/self/exe", s->exe, sizeof(s->exe) - 1);
	s->exe[n > 0 ? n : 0] = 0;
	read_raw("/proc/self/maps", s->maps, sizeof(s->maps));
}

/* Print the first line that differs between two maps texts. */
static void maps_diff(const char *a, const char *b)
{
	while (*a || *b) {
		size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");

		if (la != lb || memcmp(a, b, la)) {
			test_fail("/proc/self/maps differs: '%.*s' was '%.*s'", (int)lb, b, (int)la,
				  a);
			return;
		}
		a += la + (a[la] ? 1 : 0);
		b += lb + (b[lb] ? 1 : 0);
	}
}

int main(int argc, char **argv)
{
	test_init("mm-fields");
	test_wake_handler(0);
	if (argc < 3)
		test_abort("usage: mm-fields ARG ARG... (a few arguments, to have a command line)");

	take(&before);
	test_ready();
	test_wait_pause();
	take(&after);

	for (size_t i = 0; i < NFIELDS; i++) {
		char what[64];

		snprintf(what, sizeof(what), "/proc/self/stat field %d", fields[i]);
		CHECK_EQ(what, after.stat[i], before.stat[i]);
	}
	CHECK(after.cmdline_len == before.cmdline_len &&
		      memcmp(after.cmdline, before.cmdline, (size_t)before.cmdline_len) == 0,
	      "/proc/self/cmdline differs");
	CHECK(after.environ_len == before.environ_len &&
		      memcmp(after.environ_, before.environ_, (size_t)before.environ_len) == 0,
	      "/proc/self/environ differs");
	CHECK(after.auxv_len == before.auxv_len &&
		      memcmp(after.auxv, before.auxv, (size_t)before.auxv_len) == 0,
	      "/proc/self/auxv differs");
	CHECK(strcmp(after.exe, before.exe) == 0, "/proc/self/exe is '%s', want '%s'", after.exe,
	      before.exe);
	maps_diff(before.maps, after.maps);

	/* argv still points at the command line */
	{
		const char *p = before.cmdline;

		for (int i = 0; i < argc; i++) {
			CHECK(strcmp(argv[i], p) == 0, "argv[%d] is '%s', want '%s'", i, argv[i], p);
			p += strlen(p) + 1;
		}
		CHECK((unsigned long long)(uintptr_t)argv[0] == before.stat[6],
		      "argv[0] is not at arg_start");
	}
	return test_done();
}

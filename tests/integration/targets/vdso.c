/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The vDSO and vvar: at their original addresses after restart, and the
 * clocks read through them keep working and stay monotonic. The target waits
 * in a busy loop reading CLOCK_MONOTONIC and checking that it never goes
 * back, so it is checkpointed while running, between two vDSO calls or inside
 * one.
 */
#include <elf.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/time.h>
#include <time.h>

#include "lib.h"

static char vdso_line[512], vvar_line[512];

static int find_line(const char *name, char *out, size_t size)
{
	static char maps[1 << 16];
	char *p;

	if (file_read("/proc/self/maps", maps, sizeof(maps)) < 0)
		return -1;
	for (p = maps; *p;) {
		char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		if (len > strlen(name) && memcmp(p + len - strlen(name), name, strlen(name)) == 0) {
			snprintf(out, size, "%.*s", (int)len, p);
			return 0;
		}
		p += len + (nl ? 1 : 0);
	}
	return -1;
}

/* Address of a symbol exported by the vDSO at base, or NULL. */
static void *vdso_sym(uintptr_t base, const char *name)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
	const Elf64_Phdr *ph = (const Elf64_Phdr *)(base + eh->e_phoff);
	const Elf64_Shdr *sh = (const Elf64_Shdr *)(base + eh->e_shoff);
	uintptr_t bias = 0;

	for (int i = 0; i < eh->e_phnum; i++)
		if (ph[i].p_type == PT_LOAD) {
			bias = base + ph[i].p_offset - ph[i].p_vaddr;
			break;
		}
	for (int i = 0; i < eh->e_shnum; i++) {
		const Elf64_Sym *sym;
		const char *str;
		size_t n;

		if (sh[i].sh_type != SHT_DYNSYM)
			continue;
		sym = (const Elf64_Sym *)(base + sh[i].sh_offset);
		str = (const char *)(base + sh[sh[i].sh_link].sh_offset);
		n = sh[i].sh_size / sizeof(*sym);
		for (size_t k = 0; k < n; k++)
			if (sym[k].st_name && strcmp(str + sym[k].st_name, name) == 0)
				return (void *)(bias + sym[k].st_value);
	}
	return NULL;
}

static double ts_sec(const struct timespec *ts)
{
	return (double)ts->tv_sec + (double)ts->tv_nsec / 1e9;
}

int main(void)
{
	struct timespec last, now, real_before;
	struct timeval tv_before, tv;
	unsigned long ehdr;
	int (*vdso_gettime)(clockid_t, struct timespec *);
	unsigned long long loops = 0;
	char line[512];

	test_init("vdso");
	test_wake_handler(0);

	ehdr = getauxval(AT_SYSINFO_EHDR);
	if (!ehdr)
		test_skip("no vDSO");
	if (find_line("[vdso]", vdso_line, sizeof(vdso_line)) < 0 ||
	    find_line("[vvar]", vvar_line, sizeof(vvar_line)) < 0)
		test_abort("no [vdso] or [vvar] in /proc/self/maps");
	vdso_gettime = (int (*)(clockid_t, struct timespec *))vdso_sym(ehdr, "__vdso_clock_gettime");
	if (!vdso_gettime)
		test_abort("__vdso_clock_gettime not found in the vDSO");
	clock_gettime(CLOCK_REALTIME, &real_before);
	gettimeofday(&tv_before, NULL);
	clock_gettime(CLOCK_MONOTONIC, &last);

	test_ready();
	while (!test_woken) {
		if (clock_gettime(CLOCK_MONOTONIC, &now) < 0) {
			test_fail("clock_gettime: %m");
			break;
		}
		if (ts_sec(&now) < ts_sec(&last)) {
			test_fail("CLOCK_MONOTONIC went back from %.9f to %.9f", ts_sec(&last),
				  ts_sec(&now));
			break;
		}
		last = now;
		loops++;
	}

	CHECK_EQ("AT_SYSINFO_EHDR", getauxval(AT_SYSINFO_EHDR), ehdr);
	if (find_line("[vdso]", line, sizeof(line)) < 0)
		test_fail("no [vdso] in /proc/self/maps");
	else
		CHECK(strcmp(line, vdso_line) == 0, "[vdso] is '%s', want '%s'", line, vdso_line);
	if (find_line("[vvar]", line, sizeof(line)) < 0)
		test_fail("no [vvar] in /proc/self/maps");
	else
		CHECK(strcmp(line, vvar_line) == 0, "[vvar] is '%s', want '%s'", line, vvar_line);
	CHECK(loops > 0, "the busy loop never ran");

	/* every clock, through libc and straight through the vDSO */
	{
		static const clockid_t clocks[] = { CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_BOOTTIME,
						    CLOCK_MONOTONIC_RAW, CLOCK_MONOTONIC_COARSE,
						    CLOCK_REALTIME_COARSE };

		for (size_t i = 0; i < sizeof(clocks) / sizeof(clocks[0]); i++) {
			struct timespec a, b, c;

			if (clock_gettime(clocks[i], &a) < 0 || vdso_gettime(clocks[i], &b) != 0 ||
			    clock_gettime(clocks[i], &c) < 0) {
				test_fail("clock %d: clock_gettime failed", (int)clocks[i]);
				continue;
			}
			CHECK(ts_sec(&a) <= ts_sec(&b) && ts_sec(&b) <= ts_sec(&c),
			      "clock %d not monotonic across calls: %.9f %.9f %.9f",
			      (int)clocks[i], ts_sec(&a), ts_sec(&b), ts_sec(&c));
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	CHECK(ts_sec(&now) >= ts_sec(&last), "CLOCK_MONOTONIC went back after the loop");
	clock_gettime(CLOCK_REALTIME, &now);
	CHECK(ts_sec(&now) >= ts_sec(&real_before), "CLOCK_REALTIME is before the ready time");
	if (gettimeofday(&tv, NULL) < 0)
		test_fail("gettimeofday: %m");
	else
		CHECK(tv.tv_sec > tv_before.tv_sec ||
			      (tv.tv_sec == tv_before.tv_sec && tv.tv_usec >= tv_before.tv_usec),
		      "gettimeofday went back");
	CHECK(time(NULL) >= real_before.tv_sec, "time() is before the ready time");
	{
		struct timespec a, b;

		clock_gettime(CLOCK_REALTIME, &a);
		CHECK(a.tv_sec - (long)time(NULL) <= 1 && (long)time(NULL) - a.tv_sec <= 1,
		      "time() and CLOCK_REALTIME disagree");
		clock_gettime(CLOCK_MONOTONIC, &a);
		vdso_gettime(CLOCK_MONOTONIC, &b);
		CHECK(ts_sec(&b) - ts_sec(&a) < 1.0, "vDSO and libc disagree on CLOCK_MONOTONIC");
	}
	return test_done();
}

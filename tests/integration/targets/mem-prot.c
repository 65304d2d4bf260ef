/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Protections: a PROT_NONE guard page between two writable pages, a region
 * made read-only with mprotect, a write-only one, an executable page holding
 * code, and a large PROT_NONE reservation. After restart the maps lines are
 * identical and the protections are enforced (faults where there must be).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib.h"

#define PAGE 4096ul
#define SEED 0x9607

static sigjmp_buf jump;
static volatile sig_atomic_t faults;
static void *volatile fault_addr;

static void on_segv(int sig, siginfo_t *si, void *ctx)
{
	(void)sig;
	(void)ctx;
	faults++;
	fault_addr = si->si_addr;
	siglongjmp(jump, 1);
}

/* Whether touching p (read or write) faults at p. */
static bool faults_at(volatile unsigned char *p, bool write)
{
	int before = faults;

	if (sigsetjmp(jump, 1) == 0) {
		if (write)
			*p = 1;
		else
			(void)*p;
		return false;
	}
	return faults == before + 1 && fault_addr == (void *)p;
}

struct region {
	const char *name;
	unsigned char *addr;
	const char *perms;
	char line[512];
};

int main(void)
{
	struct region r[5];
	unsigned char *guarded, *ro, *wo, *code, *reserve;
	struct sigaction sa;
	int n = 0;

	test_init("mem-prot");
	test_wake_handler(0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	MUST(sigaction(SIGSEGV, &sa, NULL));

	guarded = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ro = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	wo = mmap(NULL, PAGE, PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	code = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	reserve = mmap(NULL, 256 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);
	if (guarded == MAP_FAILED || ro == MAP_FAILED || wo == MAP_FAILED || code == MAP_FAILED ||
	    reserve == MAP_FAILED)
		test_abort("mmap: %m");
	pattern_fill(guarded, PAGE, SEED);
	pattern_fill(guarded + 2 * PAGE, PAGE, SEED + 2);
	MUST(mprotect(guarded + PAGE, PAGE, PROT_NONE));
	pattern_fill(ro, 4 * PAGE, SEED + 10);
	MUST(mprotect(ro, 4 * PAGE, PROT_READ));
	memset(wo, 0x3c, 16);
#ifdef __x86_64__
	{
		/* mov $42, %eax; ret */
		static const unsigned char insn[] = { 0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3 };

		memcpy(code, insn, sizeof(insn));
	}
#endif
	MUST(mprotect(code, PAGE, PROT_READ | PROT_EXEC));

	r[n++] = (struct region){ "guard page", guarded + PAGE, "---p", "" };
	r[n++] = (struct region){ "read-only region", ro, "r--p", "" };
	r[n++] = (struct region){ "write-only page", wo, "-w-p", "" };
	r[n++] = (struct region){ "code page", code, "r-xp", "" };
	r[n++] = (struct region){ "PROT_NONE reservation", reserve, "---p", "" };
	for (int i = 0; i < n; i++)
		if (maps_line(r[i].addr, r[i].line, sizeof(r[i].line)) < 0)
			test_abort("%s not in /proc/self/maps", r[i].name);

	test_ready();
	test_wait_pause();

	for (int i = 0; i < n; i++) {
		char line[512], perms[5];

		if (maps_line(r[i].addr, line, sizeof(line)) < 0) {
			test_fail("%s not in /proc/self/maps", r[i].name);
			continue;
		}
		CHECK(strcmp(line, r[i].line) == 0, "%s is '%s', want '%s'", r[i].name, line,
		      r[i].line);
		if (maps_perms(r[i].addr, perms) == 0)
			CHECK(strcmp(perms, r[i].perms) == 0, "%s has perms %s, want %s",
			      r[i].name, perms, r[i].perms);
	}
	CHECK(pattern_check(guarded, PAGE, SEED) < 0, "page before the guard differs");
	CHECK(pattern_check(guarded + 2 * PAGE, PAGE, SEED + 2) < 0, "page after the guard differs");
	CHECK(pattern_check(ro, 4 * PAGE, SEED + 10) < 0, "read-only region differs");
	CHECK(faults_at(guarded + PAGE, false), "reading the guard page does not fault");
	CHECK(faults_at(ro + PAGE, true), "writing the read-only region does not fault");
	CHECK(faults_at(reserve + 100 * PAGE, false), "reading the reservation does not fault");
	CHECK(!faults_at(guarded + 2 * PAGE, true), "writing the page after the guard faults");
#ifdef __x86_64__
	{
		int (*fn)(void) = (int (*)(void))(void *)code;

		CHECK_EQ("code page returns", fn(), 42);
	}
#endif
	return test_done();
}

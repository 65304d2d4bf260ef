/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Registers and the extended state: a hand-written loop holds patterns in the
 * general-purpose registers, the eight x87 registers, the x87 control word,
 * MXCSR and every vector register the CPU has (xmm0-15, ymm0-15, or zmm0-31
 * and k0-7), and spins on a flag set by the SIGUSR1 handler. It is
 * checkpointed while running at an arbitrary instruction of that loop; after
 * the wake-up it stores the registers and they must hold the patterns.
 */
#include <stdio.h>
#include <string.h>

#include "lib.h"

#ifndef __x86_64__
int main(void)
{
	test_init("fpu");
	test_skip("x86-64 only");
}
#else

/* layout of the register buffers, shared with the assembly below */
#define OFF_GPR 0    /* 12 x 8: rax rbx rcx rbp r8 r9 r10 r11 r12 r13 r14 r15 */
#define OFF_ST 128   /* 8 x 16: x87 st registers as 80-bit values */
#define OFF_FCW 256  /* 2 */
#define OFF_MXCSR 260 /* 4 */
#define OFF_VEC 320  /* 32 x 64 */
#define OFF_K 2368   /* 8 x 8 */
#define REGS_SIZE 4096

enum level { LEVEL_SSE = 0, LEVEL_AVX = 1, LEVEL_AVX512 = 2 };

/* void fpu_hold(const void *in, void *out, volatile sig_atomic_t *flag, long level) */
void fpu_hold(const void *in, void *out, volatile sig_atomic_t *flag, long level);

#define S(x) #x
#define STR(x) S(x)
#define VEC(i) STR(OFF_VEC + 64 * i)
#define KOF(i) STR(OFF_K + 8 * i)
#define STO(i) STR(OFF_ST + 16 * i)

#define SSE_LOAD(i) "movdqu " VEC(i) "(%rdi), %xmm" #i "\n"
#define SSE_STORE(i) "movdqu %xmm" #i ", " VEC(i) "(%rsi)\n"
#define AVX_LOAD(i) "vmovdqu " VEC(i) "(%rdi), %ymm" #i "\n"
#define AVX_STORE(i) "vmovdqu %ymm" #i ", " VEC(i) "(%rsi)\n"
#define Z_LOAD(i) "vmovdqu64 " VEC(i) "(%rdi), %zmm" #i "\n"
#define Z_STORE(i) "vmovdqu64 %zmm" #i ", " VEC(i) "(%rsi)\n"
#define K_LOAD(i) "kmovw " KOF(i) "(%rdi), %k" #i "\n"
#define K_STORE(i) "kmovw %k" #i ", " KOF(i) "(%rsi)\n"

#define X16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define X32(M) X16(M) M(16) M(17) M(18) M(19) M(20) M(21) M(22) M(23) \
	M(24) M(25) M(26) M(27) M(28) M(29) M(30) M(31)
#define X8(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)

__asm__(".text\n"
	".globl fpu_hold\n"
	".type fpu_hold, @function\n"
	"fpu_hold:\n"
	"push %rbx\n push %rbp\n push %r12\n push %r13\n push %r14\n push %r15\n"
	"push %rcx\n"              /* level at 8(%rsp) after the next sub */
	"sub $8, %rsp\n"
	"fnstcw 0(%rsp)\n"         /* caller's control word and MXCSR */
	"stmxcsr 4(%rsp)\n"
	"cmp $1, %rcx\n"
	"jb 10f\n"
	"je 11f\n"
	X32(Z_LOAD) X8(K_LOAD)
	"jmp 12f\n"
	"10:\n" X16(SSE_LOAD)
	"jmp 12f\n"
	"11:\n" X16(AVX_LOAD)
	"12:\n"
	"fldt " STO(0) "(%rdi)\n fldt " STO(1) "(%rdi)\n fldt " STO(2) "(%rdi)\n"
	"fldt " STO(3) "(%rdi)\n fldt " STO(4) "(%rdi)\n fldt " STO(5) "(%rdi)\n"
	"fldt " STO(6) "(%rdi)\n fldt " STO(7) "(%rdi)\n"
	"fldcw " STR(OFF_FCW) "(%rdi)\n"
	"ldmxcsr " STR(OFF_MXCSR) "(%rdi)\n"
	"mov 0(%rdi), %rax\n mov 8(%rdi), %rbx\n mov 16(%rdi), %rcx\n mov 24(%rdi), %rbp\n"
	"mov 32(%rdi), %r8\n mov 40(%rdi), %r9\n mov 48(%rdi), %r10\n mov 56(%rdi), %r11\n"
	"mov 64(%rdi), %r12\n mov 72(%rdi), %r13\n mov 80(%rdi), %r14\n mov 88(%rdi), %r15\n"
	"1:\n"
	"cmpl $0, (%rdx)\n"
	"jne 2f\n"
	"pause\n"
	"jmp 1b\n"
	"2:\n"
	"mov %rax, 0(%rsi)\n mov %rbx, 8(%rsi)\n mov %rcx, 16(%rsi)\n mov %rbp, 24(%rsi)\n"
	"mov %r8, 32(%rsi)\n mov %r9, 40(%rsi)\n mov %r10, 48(%rsi)\n mov %r11, 56(%rsi)\n"
	"mov %r12, 64(%rsi)\n mov %r13, 72(%rsi)\n mov %r14, 80(%rsi)\n mov %r15, 88(%rsi)\n"
	"fnstcw " STR(OFF_FCW) "(%rsi)\n"
	"stmxcsr " STR(OFF_MXCSR) "(%rsi)\n"
	"fstpt " STO(7) "(%rsi)\n fstpt " STO(6) "(%rsi)\n fstpt " STO(5) "(%rsi)\n"
	"fstpt " STO(4) "(%rsi)\n fstpt " STO(3) "(%rsi)\n fstpt " STO(2) "(%rsi)\n"
	"fstpt " STO(1) "(%rsi)\n fstpt " STO(0) "(%rsi)\n"
	"mov 8(%rsp), %rcx\n"
	"cmp $1, %rcx\n"
	"jb 20f\n"
	"je 21f\n"
	X32(Z_STORE) X8(K_STORE)
	"vzeroupper\n"
	"jmp 22f\n"
	"20:\n" X16(SSE_STORE)
	"jmp 22f\n"
	"21:\n" X16(AVX_STORE)
	"vzeroupper\n"
	"22:\n"
	"fldcw 0(%rsp)\n"
	"ldmxcsr 4(%rsp)\n"
	"add $16, %rsp\n"
	"pop %r15\n pop %r14\n pop %r13\n pop %r12\n pop %rbp\n pop %rbx\n"
	"ret\n"
	".size fpu_hold, .-fpu_hold\n");

static unsigned char in[REGS_SIZE] __attribute__((aligned(64)));
static unsigned char out[REGS_SIZE] __attribute__((aligned(64)));

static void set_st(int i, long double v)
{
	memcpy(in + OFF_ST + 16 * i, &v, 10);
}

int main(void)
{
	static const char *const gpr[] = { "rax", "rbx", "rcx", "rbp", "r8",  "r9",
					   "r10", "r11", "r12", "r13", "r14", "r15" };
	enum level level = LEVEL_SSE;
	int nvec = 16, vlen = 16;
	uint16_t fcw = 0x0a7f;     /* 53-bit precision, round up, exceptions masked */
	uint32_t mxcsr = 0xff80;   /* flush to zero, round toward zero, exceptions masked */

	test_init("fpu");
	test_wake_handler(0);

	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f")) {
		level = LEVEL_AVX512;
		nvec = 32;
		vlen = 64;
	} else if (__builtin_cpu_supports("avx")) {
		level = LEVEL_AVX;
		vlen = 32;
	}
	pattern_fill(in, REGS_SIZE, 0xf9);
	for (int i = 0; i < 8; i++)
		set_st(i, (long double)(i + 1) * 3.14159265358979323846264338327950288L / 7.0L);
	memcpy(in + OFF_FCW, &fcw, sizeof(fcw));
	memcpy(in + OFF_MXCSR, &mxcsr, sizeof(mxcsr));
	memset(out, 0, sizeof(out));

	test_ready();
	fpu_hold(in, out, &test_woken, level);

	for (int i = 0; i < 12; i++)
		CHECK(memcmp(in + OFF_GPR + 8 * i, out + OFF_GPR + 8 * i, 8) == 0,
		      "%s differs", gpr[i]);
	for (int i = 0; i < 8; i++)
		CHECK(memcmp(in + OFF_ST + 16 * i, out + OFF_ST + 16 * i, 10) == 0,
		      "st(%d) differs", 7 - i);
	CHECK(memcmp(in + OFF_FCW, out + OFF_FCW, 2) == 0, "x87 control word differs");
	CHECK(memcmp(in + OFF_MXCSR, out + OFF_MXCSR, 4) == 0, "MXCSR differs");
	for (int i = 0; i < nvec; i++)
		for (int part = 0; part < vlen; part += 16)
			CHECK(memcmp(in + OFF_VEC + 64 * i + part, out + OFF_VEC + 64 * i + part,
				     16) == 0,
			      "%s%d bytes %d-%d differ", vlen == 64 ? "zmm" : vlen == 32 ? "ymm" : "xmm",
			      i, part, part + 15);
	if (level == LEVEL_AVX512)
		for (int i = 0; i < 8; i++)
			CHECK(memcmp(in + OFF_K + 8 * i, out + OFF_K + 8 * i, 2) == 0,
			      "k%d differs", i);
	return test_done();
}
#endif

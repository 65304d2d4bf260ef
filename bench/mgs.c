/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Benchmark target, the Ghost report's workload: Modified Gram-Schmidt
 * orthonormalisation of an N x N matrix of doubles. It builds A (column-major,
 * deterministic), computes A = Q R in place (Q overwrites A, R is kept as a
 * packed upper triangle), writes "ready\n" to the file named by
 * GHOST_TEST_READY and waits. SIGUSR1 makes it check the result on a sample of
 * columns (Q^T Q = I and Q R = A, A being regenerated) and exit 0 or 1.
 *
 *	mgs N
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "target.h"

#define SAMPLES   16
#define TOLERANCE 1e-9

static size_t n;
static double *q; /* n x n, column j at q + j * n */
static double *r; /* packed upper triangle: R(i, j), i <= j, at r[j * (j + 1) / 2 + i] */

/* A(i, j): uniform in [-1, 1) from a hash of the position, plus 2 on the diagonal. */
static double a_elem(size_t i, size_t j)
{
	uint64_t x = ((uint64_t)i << 32 | (uint64_t)j) + 0x632BE59BD9B4E019ULL;

	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	x ^= x >> 31;
	return (double)(x >> 11) / (double)(1ULL << 52) - 1.0 + (i == j ? 2.0 : 0.0);
}

static double *col(size_t j)
{
	return q + j * n;
}

static double dot(const double *x, const double *y)
{
	double s = 0;

	for (size_t i = 0; i < n; i++)
		s += x[i] * y[i];
	return s;
}

static int mgs(void)
{
	for (size_t k = 0; k < n; k++) {
		double *qk = col(k);
		double norm = sqrt(dot(qk, qk));

		if (norm == 0)
			return -1;
		r[k * (k + 1) / 2 + k] = norm;
		for (size_t i = 0; i < n; i++)
			qk[i] /= norm;
		for (size_t j = k + 1; j < n; j++) {
			double *aj = col(j);
			double rkj = dot(qk, aj);

			r[j * (j + 1) / 2 + k] = rkj;
			for (size_t i = 0; i < n; i++)
				aj[i] -= rkj * qk[i];
		}
	}
	return 0;
}

static size_t sample(size_t s)
{
	return s * (n - 1) / (SAMPLES - 1);
}

static int check(void)
{
	for (size_t s = 0; s < SAMPLES; s++) {
		size_t j = sample(s);
		double err = 0, scale = 0;

		for (size_t t = 0; t < SAMPLES; t++) {
			size_t k = sample(t);
			double d = dot(col(j), col(k)) - (j == k ? 1.0 : 0.0);

			if (!(fabs(d) < TOLERANCE))
				return -1;
		}
		/* column j of Q R against column j of A, computed afresh */
		for (size_t i = 0; i < n; i++) {
			double x = 0, a = a_elem(i, j);

			for (size_t k = 0; k <= j; k++)
				x += col(k)[i] * r[j * (j + 1) / 2 + k];
			err += (x - a) * (x - a);
			scale += a * a;
		}
		if (!(sqrt(err) <= TOLERANCE * sqrt(scale)))
			return -1;
	}
	return 0;
}

static void on_usr1(int sig)
{
	(void)sig;
	_exit(check() < 0 ? 1 : 0);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	unsigned long v;
	char *end;

	if (argc != 2 || argv[1][0] < '0' || argv[1][0] > '9') {
		fprintf(stderr, "usage: mgs N\n");
		return 2;
	}
	errno = 0;
	v = strtoul(argv[1], &end, 10);
	if (errno || *end || v < 2 || v > 65536) {
		fprintf(stderr, "mgs: bad matrix size '%s'\n", argv[1]);
		return 2;
	}
	n = v;
	q = malloc(n * n * sizeof(*q));
	r = calloc(n * (n + 1) / 2, sizeof(*r));
	if (!q || !r) {
		fprintf(stderr, "mgs: out of memory\n");
		return 1;
	}
	for (size_t j = 0; j < n; j++)
		for (size_t i = 0; i < n; i++)
			col(j)[i] = a_elem(i, j);
	if (mgs() < 0) {
		fprintf(stderr, "mgs: singular matrix\n");
		return 1;
	}

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0 || target_signal_ready() < 0) {
		perror("mgs");
		return 1;
	}
	for (;;)
		pause();
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench/limits: print this machine's checkpoint and restore limits (see
 * limits.h) for a list of sizes, without Ghost. bench/checkpoint measures the
 * same limits in its own run.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "limits.h"

#define MAX_SIZES 16

static void usage(FILE *f)
{
	fprintf(f, "usage: limits [--sizes MIB,...] [--reps N] [--tmpfs-dir DIR]\n"
		   "              [--disk-dir DIR | --no-disk]\n"
		   "Measures process_vm_readv, file write (tmpfs, disk, disk+fsync) and\n"
		   "process_vm_writev into fresh memory for each size; medians of N runs.\n"
		   "Defaults: --sizes 16,256,1024 --reps 5 --tmpfs-dir /dev/shm\n"
		   "          --disk-dir /var/tmp\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "sizes", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ "tmpfs-dir", required_argument, NULL, 't' },
		{ "disk-dir", required_argument, NULL, 'd' },
		{ "no-disk", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	uint64_t sizes[MAX_SIZES] = { 16, 256, 1024 }, reps = 5;
	size_t n_sizes = 3, n;
	const char *tmpfs_parent = "/dev/shm", *disk_parent = "/var/tmp";
	_cleanup_free_ char *tmpfs_dir = NULL, *disk_dir = NULL;
	int c, r, failed = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		switch (c) {
		case 's':
			if (bench_parse_list(optarg, sizes, MAX_SIZES, &n_sizes) < 0) {
				bench_err("bad size list '%s'", optarg);
				return 2;
			}
			break;
		case 'r':
			if (bench_parse_list(optarg, &reps, 1, &n) < 0 || reps < 1 || reps > 64) {
				bench_err("bad repetition count '%s'", optarg);
				return 2;
			}
			break;
		case 't':
			tmpfs_parent = optarg;
			break;
		case 'd':
			disk_parent = optarg;
			break;
		case 'n':
			disk_parent = NULL;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < n_sizes; i++)
		if (sizes[i] == 0 || sizes[i] > (1ULL << 20)) {
			bench_err("size %llu MiB out of range", (unsigned long long)sizes[i]);
			return 2;
		}

	r = bench_install_signals();
	if (r >= 0)
		r = bench_mkdtemp(tmpfs_parent, &tmpfs_dir);
	if (r >= 0 && disk_parent)
		r = bench_mkdtemp(disk_parent, &disk_dir);
	if (r < 0) {
		bench_err("cannot set up temporary directories: %s", strerror(-r));
		bench_cleanup();
		return 1;
	}
	if (bench_is_tmpfs(tmpfs_dir) != 1)
		bench_err("warning: '%s' is not on tmpfs", tmpfs_parent);
	if (disk_dir && bench_is_tmpfs(disk_dir) != 0)
		bench_err("warning: '%s' is not on a disk file system", disk_parent);

	printf("limits: medians of %llu runs; tmpfs %s, disk %s\n", (unsigned long long)reps,
	       tmpfs_parent, disk_parent ? disk_parent : "(none)");
	limits_print_header();
	for (size_t i = 0; i < n_sizes; i++) {
		struct limits l;

		r = limits_measure(sizes[i] * MIB, (unsigned)reps, tmpfs_dir, disk_dir, &l);
		limits_print_row(sizes[i] * MIB, &l);
		if (r < 0) {
			bench_err("measuring %llu MiB failed: %s", (unsigned long long)sizes[i],
				  strerror(-r));
			failed = 1;
		}
	}
	bench_cleanup();
	return failed;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The physical limits a checkpoint or a restart of S bytes is measured
 * against, each the median of a few runs, measured in the calling process:
 *
 *   readv    process_vm_readv() of S bytes of touched memory of another process
 *            (a forked child) into a ready, pre-faulted buffer;
 *   write    write() of S bytes from a ready buffer into a new file in a given
 *            directory (tmpfs, or a disk file system with and without fsync()),
 *            open() to close() included;
 *   restore  process_vm_writev() of S bytes from a ready buffer into freshly
 *            mmap()ed, never touched anonymous memory of another process: page
 *            allocation and zeroing in the target dominate.
 *
 * Checkpoint limit = max(readv, write) on the same file system: a checkpoint
 * cannot be faster than either copy. Restore limit = restore.
 */
#ifndef BENCH_LIMITS_H
#define BENCH_LIMITS_H

#include <stdbool.h>
#include <stddef.h>

struct limits {
	double readv_ms;
	double write_tmpfs_ms;
	double write_disk_ms;      /* NAN when no disk directory was given */
	double write_disk_sync_ms; /* write + fsync; NAN without a disk directory */
	double restore_ms;
};

/* A ready buffer of size bytes: mmap()ed, MADV_DONTFORK, every page written. */
int limits_buffer_new(size_t size, void **ret);
void *limits_buffer_free(void *buf, size_t size);

/* Each measures reps times and stores the median in ret_ms. buf is a ready
 * buffer of at least size bytes. */
int limit_readv(void *buf, size_t size, unsigned reps, double *ret_ms, double *ret_cpu_ms);
int limit_write(const void *buf, size_t size, const char *dir, bool sync, unsigned reps,
		double *ret_ms);
/* ret_cpu_ms, unless NULL: the median of the machine's busy CPU time during
 * each copy (bench_busy_ms()). */
int limit_restore(const void *buf, size_t size, unsigned reps, double *ret_ms,
		  double *ret_cpu_ms);

/* All of the above for size bytes; disk_dir may be NULL. Fields that could not
 * be measured are NAN; the first error is returned after trying them all. */
int limits_measure(size_t size, unsigned reps, const char *tmpfs_dir, const char *disk_dir,
		   struct limits *ret);

double limits_ckpt_tmpfs_ms(const struct limits *l);
double limits_ckpt_disk_ms(const struct limits *l);

/* The limits table: header, then one row per size. */
void limits_print_header(void);
void limits_print_row(size_t size, const struct limits *l);

#endif

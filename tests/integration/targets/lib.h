/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Code shared by the integration targets: the ready file, the SIGUSR1 wake-up,
 * checks that collect failures, and the verdict. The protocol is described in
 * tests/integration/README.md.
 *
 * A target prints nothing on success after test_ready(): its stdout and stderr
 * are a regular log file held open across the checkpoint, and a file that grew
 * between checkpoint and restart may be refused at restart.
 */
#ifndef TARGETS_LIB_H
#define TARGETS_LIB_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Exit status that tells the driver (and meson) the scenario was skipped. */
#define TEST_SKIP 77

/* Set by the SIGUSR1 handler that test_wake_handler() installs. */
extern volatile sig_atomic_t test_woken;

/* Remember the target's name for messages. Call first. */
void test_init(const char *name);

/*
 * Install the SIGUSR1 handler that sets test_woken. `flags` is OR-ed into
 * sa_flags: 0 makes SIGUSR1 interrupt blocking calls with EINTR, SA_RESTART
 * makes them restart.
 */
void test_wake_handler(int flags);

/*
 * Tell the driver that the state is set up: open $GHOST_TEST_READY, write
 * "ready\n", close it (no fd is kept). Also records the set of open fds, which
 * test_done() compares with the set open at the end. Async-signal-safe apart
 * from the fd snapshot, which uses only open/getdents64/close.
 */
void test_ready(void);

/* Leave fd out of the comparison of open fds made by test_done(). */
void test_fd_ignore(int fd);

/*
 * Wait in pause() until SIGUSR1 arrives. Each return of pause() must come with
 * EINTR after a handled signal; a return while no handler ran is a failure
 * (the blocked call was cut short). Handlers other than SIGUSR1 must bump
 * test_signals so they do not count as spurious returns.
 */
void test_wait_pause(void);
extern volatile sig_atomic_t test_signals;

/*
 * Which run is being verified, as written by the driver into
 * $GHOST_TEST_STAGE before it sends SIGUSR1: "original" or "restored".
 * "original" when the variable is unset.
 */
const char *test_stage(void);
bool test_restored(void);

/* Record a failed check and print it on stderr. */
void test_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print a line on stderr (only before test_ready(), or on failure paths). */
void test_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print why and exit with TEST_SKIP. */
void test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Print why and exit 1 at once: setup failed, the scenario cannot run. */
void test_abort(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/*
 * The verdict: compares the open fds with those at test_ready(), writes
 * "pass\n" or "fail\n" into $GHOST_TEST_RESULT when set, returns the exit
 * status (0 or 1).
 */
int test_done(void);

unsigned test_failures(void);

#define CHECK(cond, ...)                  \
	do {                              \
		if (!(cond))              \
			test_fail(__VA_ARGS__); \
	} while (0)

#define CHECK_EQ(what, got, want)                                                        \
	do {                                                                             \
		long long got_ = (long long)(got), want_ = (long long)(want);            \
		if (got_ != want_)                                                       \
			test_fail("%s: got %lld (%#llx), want %lld (%#llx)", (what), got_, \
				  (unsigned long long)got_, want_, (unsigned long long)want_); \
	} while (0)

/* Setup step that must succeed: abort with errno's text otherwise. */
#define MUST(expr)                                                   \
	do {                                                         \
		if ((expr) < 0)                                      \
			test_abort("%s:%d: %s: %m", __FILE__, __LINE__, #expr); \
	} while (0)

/* --- helpers ------------------------------------------------------------- */

/* The word at index i of a pattern: never zero, depends on seed and i. */
uint64_t pattern_word(uint64_t seed, uint64_t i);
void pattern_fill(void *p, size_t len, uint64_t seed);
/* Offset of the first byte that differs from the pattern, or -1. */
ssize_t pattern_check(const void *p, size_t len, uint64_t seed);
/* Offset of the first non-zero byte, or -1. */
ssize_t zero_check(const void *p, size_t len);

/* Read a whole small file into buf (NUL-terminated); bytes read or -1. No malloc. */
ssize_t file_read(const char *path, char *buf, size_t size);
/* Write a whole buffer to fd, retrying short writes; 0 or -1. */
int write_all(int fd, const void *buf, size_t len);
/* Read exactly len bytes (retrying on EINTR and short reads); bytes read or -1. */
ssize_t read_full(int fd, void *buf, size_t len);

/* Value of a "Key:" line of /proc/self/status into buf; 0 or -1. */
int proc_status(const char *key, char *buf, size_t size);
/* Field n (1-based, as in proc(5)) of /proc/self/stat. */
unsigned long long proc_stat_field(int n);
/* The /proc/self/maps line of the mapping holding addr, without newline; 0 or -1. */
int maps_line(const void *addr, char *buf, size_t size);
/* Permission field ("rw-p") of the mapping holding addr; 0 or -1. */
int maps_perms(const void *addr, char perms[5]);
/* The VmFlags value of the smaps entry holding addr; 0 or -1. */
int smaps_vmflags(const void *addr, char *buf, size_t size);
/* Whether a two-letter flag (e.g. "dc") appears in a VmFlags value. */
bool vmflags_has(const char *flags, const char *flag);

/* CLOCK_MONOTONIC in seconds. */
double now_mono(void);

#endif

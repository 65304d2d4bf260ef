/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers shared by the benchmark programs: monotonic time, medians, number
 * lists, target processes that signal readiness through a file, and the
 * cleanup registry that kills what the benchmark started and removes its
 * temporary directories, also when a signal ends the run.
 */
#ifndef BENCH_BENCH_H
#define BENCH_BENCH_H

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include "base/macro.h"

#define MIB ((size_t)1024 * 1024)

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);
double bench_ms(uint64_t ns);
/*
 * CPU time the whole machine has spent busy so far, in ms, summed over its
 * cores (/proc/stat: user, nice, system, irq and softirq; idle, iowait and
 * steal left out): the difference around a step is what the step cost every
 * process and the kernel's network processing, wherever it ran. NAN when
 * /proc/stat cannot be read. Its unit is a clock tick (10 ms here).
 */
double bench_busy_ms(void);
/* The number of online CPUs (at least 1). */
unsigned bench_ncpus(void);
/* Median of n values (sorts v in place); NAN when n == 0. NANs are skipped. */
double bench_median(double *v, size_t n);

/*
 * Touch bytes of fresh memory and free it again, right before a timed step
 * that allocates about that much, so that the step (Ghost's or a limit's
 * alike) gets memory the machine already backs. A virtual machine's host may
 * back guest memory only when the guest first touches it and take freed
 * pages back a few seconds later (virtio-balloon free page reporting): a
 * page it must back again costs several times a warm one, and which step
 * meets such pages is luck (seen here: the same 1 GiB restore limit from 0.4
 * to 3.2 s in one run). Does nothing after bench_warm_disable(). The memory
 * goes back to the kernel, which hands out the pages freed last first.
 *
 * It is touched and freed once on every CPU the benchmark may run on, by a
 * child pinned there, all at once: the kernel keeps freed pages in per-CPU
 * lists (here up to about 580 MiB each) and hands a CPU only its own before
 * the shared free lists, the ones the host takes back. Warmed from one CPU
 * only, a step's process on the other (Ghost's writer helper, a restored
 * process) met cold pages: the same tmpfs checkpoint took 0.4 or 1.8 s.
 */
void bench_warm_memory(size_t bytes);
void bench_warm_disable(void);

/* Sleep ms milliseconds, whatever signals come. */
void bench_sleep_ms(unsigned ms);
/* The number after "key": in a JSON text (the CLI's --json output); -ENOENT
 * if absent, -EINVAL if no number follows. */
int bench_json_number(const char *json, const char *key, double *ret);
/* One table cell: " %*.*f", or "-" right-aligned for NAN. */
void bench_cell(double v, int width, int prec);
/* The absolute path of an executable file, malloc()ed; NULL if it is not one. */
char *bench_exe_path(const char *path);

/* Parse "16,256,1024" into at most max values. -EINVAL on junk or overflow. */
int bench_parse_list(const char *s, uint64_t *v, size_t max, size_t *ret_n);

/* Error output: "bench: ..." on stderr. bench_err_r() returns r, to log
 * and return in one statement. */
void bench_err(const char *fmt, ...) _printf_(1, 2);
int bench_err_r(int r, const char *fmt, ...) _printf_(2, 3);

/*
 * Cleanup registry. Every process the benchmark starts is registered with
 * bench_track_pid() until it has been reaped (bench_untrack_pid()); every
 * temporary directory with bench_track_dir(). bench_cleanup() SIGKILLs and
 * reaps the tracked processes, by PID, then any other child left (see
 * bench_kill_children()), and removes the tracked directories with their
 * contents. It is async-signal-safe: bench_install_signals() runs
 * it on SIGINT, SIGTERM and SIGHUP before dying of the signal.
 */
int bench_track_pid(pid_t pid);
void bench_untrack_pid(pid_t pid);
int bench_track_dir(const char *path);
void bench_cleanup(void);
int bench_install_signals(void);
/* SIGKILL and reap every remaining child (including orphans we reaped as a
 * subreaper) by PID; returns how many there were. Async-signal-safe. */
int bench_kill_children(void);
/* Hold off the cleanup signals around a step that must not be cut in two,
 * e.g. an import until its new process is tracked. */
void bench_signals_block(sigset_t *ret_old);
void bench_signals_restore(const sigset_t *old);

/* mkdtemp() of "<parent>/ghost-bench.XXXXXX", tracked; ret_path is malloc()ed. */
int bench_mkdtemp(const char *parent, char **ret_path);
/* Remove a directory tree (async-signal-safe); missing is not an error. */
int bench_rm_rf(const char *path);
/* "<a>/<b>" in a malloc()ed string, NULL on OOM. */
char *bench_path_join(const char *a, const char *b);
/* The directory holding the running executable, malloc()ed. */
int bench_self_dir(char **ret);
/* Is path on tmpfs? 1 yes, 0 no, -errno. */
int bench_is_tmpfs(const char *path);

/* fork(); the child (ret_pid 0) gets default signal handlers, the parent
 * tracks it before any signal can run the cleanup. */
int bench_fork(pid_t *ret_pid);

/*
 * Start argv[0] (a path) with stdin, stdout and stderr on /dev/null, cwd "/",
 * no other fds, and GHOST_TEST_READY=ready_path in its environment. The child
 * is tracked. bench_wait_ready() waits until the file says "ready\n"; it
 * fails if the process dies first or the timeout passes.
 */
int bench_spawn_target(const char *const *argv, const char *ready_path, pid_t *ret_pid);
int bench_wait_ready(pid_t pid, const char *ready_path, unsigned timeout_ms);

/* Wait for a child to end, up to timeout_ms; on timeout SIGKILL and reap it
 * and return -ETIMEDOUT. The child is untracked once reaped. */
int bench_wait_exit(pid_t pid, unsigned timeout_ms, int *ret_status);
/* SIGKILL a child by PID and reap it; pid <= 0 is a no-op. */
void bench_kill_reap(pid_t pid);
/* Send SIGUSR1 and expect exit status 0 within timeout_ms: 0, or -errno, or
 * -EBADMSG when the process reported a failed self-check. */
int bench_verify_target(pid_t pid, unsigned timeout_ms);

/*
 * Run argv (PATH lookup) with stdout captured into a malloc()ed, NUL-terminated
 * string (stderr is passed through), wait for it, and return its wait status in
 * ret_status. ret_out may be NULL to discard the output.
 */
int bench_run(const char *const *argv, char **ret_out, int *ret_status);

enum bench_cmd_flags {
	BENCH_CMD_OWN_PGRP = 1 << 0, /* a process group of its own: a terminal's ^C misses it */
};

/*
 * Run argv (argv[0] a path, or a name looked up in PATH) to its end, stdin
 * on /dev/null. Its stdout goes to *ret_out and its stderr to *ret_err
 * (malloc()ed, NUL-terminated); a NULL ret_out sends stdout to /dev/null, a
 * NULL ret_err passes stderr through. *ret_ms, unless NULL, is the time
 * from fork to reap. Returns its exit code (128 + N after signal N), or
 * -errno; after timeout_ms it is killed and -ETIMEDOUT returned. On
 * failure no output is returned. The child is tracked while it runs.
 */
int bench_cmd(const char *const *argv, unsigned flags, unsigned timeout_ms, char **ret_out,
	      char **ret_err, double *ret_ms);

#endif

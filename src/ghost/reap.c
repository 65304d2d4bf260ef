/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ghost_reap_child(): make a stopped process end one of its children and
 * reap it, from outside, before the process runs again: it never sees that
 * child. A migration uses it when a parent waited for a child in the moment
 * before its export froze it: the copy was already given a stand-in of that
 * child, which must go unseen. The child is killed and reaped by injected
 * kill() and wait4() calls; the SIGCHLD its end raises is taken back unless
 * one was pending already.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX "reap"
#include "base/buf.h"
#include "base/fileio.h"
#include "base/log.h"
#include "ghost/ghost-int.h"
#include "base/banned.h"

/* Is SIGCHLD pending for the process (shared or for its main thread)? */
static bool sigchld_pending(pid_t pid)
{
	static const char *const keys[] = { "\nShdPnd:", "\nSigPnd:" };
	unsigned long long mask;
	struct buf b = BUF_INIT;
	char path[64];
	bool pending = false;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (read_file_at(AT_FDCWD, path, &b) < 0)
		return true; /* unknown: leave whatever comes */
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		const char *at = strstr(b.data, keys[i]);

		if (at && sscanf(at + strlen(keys[i]), "%llx", &mask) == 1 &&
		    (mask & (1ull << (SIGCHLD - 1))))
			pending = true;
	}
	buf_release(&b);
	return pending;
}

static int find_vdso_syscall(struct tracee *t, pid_t pid)
{
	struct proc_maps maps = { 0 };
	int r = -ENOENT;

	if (proc_read_maps(pid, &maps) < 0)
		return -ESRCH;
	for (size_t i = 0; i < maps.n; i++)
		if (maps.vma[i].path && strcmp(maps.vma[i].path, "[vdso]") == 0) {
			r = tracee_find_syscall(t, maps.vma[i].start, maps.vma[i].end);
			break;
		}
	proc_maps_release(&maps);
	return r;
}

/* Take back one pending SIGCHLD: rt_sigtimedwait() with a zero timeout,
 * its arguments in a scratch page. */
static int take_sigchld(struct tracee *t)
{
	struct {
		uint64_t set;
		struct timespec zero;
	} args = { .set = 1ull << (SIGCHLD - 1) };
	long ret;
	int r;

	r = tracee_scratch_map(t, 0, 4096);
	if (r >= 0)
		r = tracee_write_mem(t, t->scratch, &args, sizeof(args));
	if (r >= 0)
		r = tracee_syscall(t, SYS_rt_sigtimedwait, t->scratch, 0,
				   t->scratch + offsetof(__typeof__(args), zero), 8, 0, 0, &ret);
	return r;
}

int ghost_reap_child(pid_t pid, pid_t child, char *why, size_t why_len)
{
	struct tracee t;
	bool had_sigchld;
	long ret = 0;
	int r;

	if (pid <= 0 || child <= 0)
		return -EINVAL;
	had_sigchld = sigchld_pending(pid);
	r = tracee_seize(&t, pid, why, why_len);
	if (r < 0)
		return r;
	r = find_vdso_syscall(&t, pid);
	if (r < 0) {
		snprintf(why, why_len, "no system call instruction in the vDSO of process %d",
			 (int)pid);
		goto out;
	}
	/* Its handlers must not run for what we do. */
	r = tracee_block_signals(&t);
	if (r >= 0)
		r = tracee_syscall(&t, SYS_kill, (uint64_t)child, SIGKILL, 0, 0, 0, 0, &ret);
	if (r >= 0 && ret >= 0)
		r = tracee_syscall(&t, SYS_wait4, (uint64_t)child, 0, __WALL, 0, 0, 0, &ret);
	if (r >= 0 && ret < 0)
		r = (int)ret;
	if (r < 0) {
		snprintf(why, why_len, "process %d cannot end its child %d: %s", (int)pid,
			 (int)child, ghost_strerror(r));
		goto out;
	}
	if (!had_sigchld && take_sigchld(&t) < 0)
		log_debug("process %d: a SIGCHLD for its child %d stays pending", (int)pid,
			  (int)child);
out:
	/* Registers, mask and scratch back; it stays stopped if it was. */
	tracee_release(&t, false, false);
	return r;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ghost_replace_program(): make a process run another program in its place,
 * from outside. The process is seized, every signal is blocked, the program's
 * path and arguments are written into a scratch mapping, and an execve is
 * injected. Only the kernel's execve changes the process, so it keeps what
 * execve keeps: its PID, its parent, its credentials, its blocked mask and
 * pending signals, and its descriptors without FD_CLOEXEC (the new program
 * closes what it does not want).
 *
 * Used when a process that has a parent on its node migrates: the original
 * becomes a stand-in of the same PID that its parent keeps waiting for.
 * If the execve fails, the process is released exactly as it was found.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOG_PREFIX "replace"
#include "base/buf.h"
#include "base/fileio.h"
#include "base/log.h"
#include "ghost/ghost-int.h"
#include "base/banned.h"

#define SCRATCH_MAX (64u << 10)

/* Lay out path, argv[] and an empty envp[] for the tracee at base: the
 * strings first, then the pointer arrays. Offsets of argv and envp in the
 * returned buffer in *ret_argv and *ret_envp. */
static int build_args(uint64_t base, const char *path, const char *const argv[], struct buf *out,
		      size_t *ret_argv, size_t *ret_envp)
{
	size_t n = 0, at;
	uint64_t *ptrs;
	int r;

	while (argv[n])
		n++;
	ptrs = calloc(n + 2, sizeof(*ptrs));
	if (!ptrs)
		return -ENOMEM;
	r = buf_append(out, path, strlen(path) + 1);
	for (size_t i = 0; i < n && r >= 0; i++) {
		ptrs[i] = base + out->len;
		r = buf_append(out, argv[i], strlen(argv[i]) + 1);
	}
	/* Pointers 8-byte aligned. */
	while (r >= 0 && out->len % 8)
		r = buf_append(out, "", 1);
	at = out->len;
	if (r >= 0)
		r = buf_append(out, ptrs, (n + 1) * sizeof(*ptrs)); /* argv, NULL-terminated */
	if (r >= 0)
		r = buf_append(out, &ptrs[n + 1], sizeof(*ptrs)); /* envp: { NULL } */
	free(ptrs);
	if (r < 0)
		return r;
	if (out->len > SCRATCH_MAX)
		return -E2BIG;
	*ret_argv = at;
	*ret_envp = at + (n + 1) * sizeof(uint64_t);
	return 0;
}

static int find_syscall(struct tracee *t, pid_t pid)
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

int ghost_replace_program(pid_t pid, const char *path, const char *const argv[], char *why,
			  size_t why_len)
{
	struct tracee t;
	struct buf args = BUF_INIT;
	size_t argv_off = 0, envp_off = 0;
	int r, st;

	if (pid <= 0 || !path || !argv || !argv[0])
		return -EINVAL;
	r = tracee_seize(&t, pid, why, why_len);
	if (r < 0)
		return r;
	r = find_syscall(&t, pid);
	if (r < 0) {
		snprintf(why, why_len, "no system call instruction in the vDSO of process %d", pid);
		goto fail;
	}
	/* Blocked across the execve: the new program decides what to do with
	 * what is pending before a default action could end it. */
	r = tracee_block_signals(&t);
	if (r >= 0)
		r = tracee_scratch_map(&t, 0, SCRATCH_MAX);
	if (r < 0) {
		snprintf(why, why_len, "cannot prepare process %d: %s", pid, ghost_strerror(r));
		goto fail;
	}
	r = build_args(t.scratch, path, argv, &args, &argv_off, &envp_off);
	if (r >= 0)
		r = tracee_write_mem(&t, t.scratch, args.data, args.len);
	if (r < 0) {
		snprintf(why, why_len, "cannot write the arguments into process %d: %s", pid,
			 ghost_strerror(r));
		goto fail;
	}
	if (ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACEEXEC) < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot trace the execve of process %d: %s", pid,
			 ghost_strerror(r));
		goto fail;
	}
	r = tracee_syscall_start(&t, SYS_execve, t.scratch, t.scratch + argv_off,
				 t.scratch + envp_off, 0, 0, 0);
	if (r < 0) {
		snprintf(why, why_len, "cannot run execve in process %d: %s", pid,
			 ghost_strerror(r));
		goto fail;
	}
	for (;;) {
		if (waitpid(pid, &st, __WALL) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (WIFEXITED(st) || WIFSIGNALED(st)) {
			r = -ESRCH;
			break;
		}
		if (WIFSTOPPED(st) && (st >> 8) == (SIGTRAP | (PTRACE_EVENT_EXEC << 8))) {
			/* The new program is in place: nothing of the old one to put back. */
			t.in_syscall = false;
			t.regs_dirty = t.mask_dirty = false;
			t.scratch = 0;
			if (t.sigstop_seen)
				kill(pid, SIGSTOP);
			(void)tracee_detach(&t);
			buf_release(&args);
			return 0;
		}
		if (WIFSTOPPED(st) && (st >> 16) == PTRACE_EVENT_STOP) {
			struct user_regs_struct regs;

			/* A trap left over from seizing a stopped process: the
			 * execve has not run yet. */
			if (ptrace(PTRACE_GETREGS, pid, 0, &regs) == 0 && regs.rip == t.syscall_ip &&
			    ptrace(PTRACE_SINGLESTEP, pid, 0, 0) == 0)
				continue;
		}
		/* The execve returned: it failed; the process is as it was. */
		t.pending_status = st;
		t.have_pending_status = true;
		{
			long ret = 0;

			r = tracee_syscall_finish(&t, &ret);
			if (r >= 0)
				r = ret < 0 ? (int)ret : -EIO;
		}
		break;
	}
	snprintf(why, why_len, "cannot run %s in place of process %d: %s", path, pid,
		 ghost_strerror(r));
fail:
	(void)ptrace(PTRACE_SETOPTIONS, pid, 0, 0);
	buf_release(&args);
	/* As found: registers, mask and memory back; it stays stopped if it was. */
	tracee_release(&t, false, false);
	return r;
}

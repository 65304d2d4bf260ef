/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Holding a process from outside with ptrace: seize and stop it, read its
 * registers, run system calls inside it, and let it go exactly as it was.
 *
 * System calls are injected by pointing the instruction pointer at a `syscall`
 * instruction of the tracee's own vDSO and single-stepping over it, with
 * orig_rax = -1 so the kernel's syscall-restart logic leaves our registers
 * alone. Every signal is blocked in the tracee (PTRACE_SETSIGMASK) while we
 * work, so nothing is delivered or lost during an injection; the original mask
 * and registers are put back before the tracee is let go. SIGSTOP, which no
 * mask blocks, is taken out when it shows up during an injection and sent
 * again when the tracee is let go.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOG_PREFIX "ptrace"
#include "base/fileio.h"
#include "base/log.h"
#include "ghost/ghost-int.h"
#include "base/banned.h"

static bool parent_is_us(pid_t pid)
{
	struct proc_stat st;

	return proc_read_stat(pid, &st) == 0 && (pid_t)st.f[4] == getpid();
}

void tracee_collect_exit(pid_t pid)
{
	int st;

	/* Our own child: the caller's wait reaps it and gets its status. */
	if (parent_is_us(pid))
		return;
	while (waitpid(pid, &st, __WALL | WNOHANG) < 0 && errno == EINTR)
		;
}

/*
 * The next stop of the tracee, or -ESRCH once it has ended. Its end is looked
 * at without reaping it first: if we are its parent as well as its tracer, the
 * end stays for the caller's own waitpid() (a daemon that holds its own child
 * keeps the exit status); otherwise the tracer's report is collected so the
 * real parent gets its own.
 */
static int wait_stop(pid_t pid, int *ret_status)
{
	int st;

	for (;;) {
		siginfo_t si = { 0 };
		pid_t w;

		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WSTOPPED | __WALL | WNOWAIT) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (si.si_code == CLD_EXITED || si.si_code == CLD_KILLED ||
		    si.si_code == CLD_DUMPED) {
			tracee_collect_exit(pid);
			return -ESRCH;
		}
		w = waitpid(pid, &st, __WALL | WNOHANG);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			continue;
		if (WIFEXITED(st) || WIFSIGNALED(st))
			return -ESRCH;
		if (WIFSTOPPED(st)) {
			*ret_status = st;
			return 0;
		}
	}
}

static bool is_group_stop_sig(int sig)
{
	return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

/* (Re)open /proc/PID/mem, through which the tracee's memory is read and
 * written: at the seize, and after an execve replaced that memory. */
static int open_mem(struct tracee *t)
{
	char path[64];

	safe_close(t->mem_fd);
	snprintf(path, sizeof(path), "/proc/%d/mem", t->pid);
	t->mem_fd = open(path, O_RDWR | O_CLOEXEC);
	return t->mem_fd < 0 ? -errno : 0;
}

int tracee_seize(struct tracee *t, pid_t pid, char *why, size_t why_len)
{
	struct iovec iov;
	int st, r;

	*t = (struct tracee){ .pid = pid, .mem_fd = -1 };
	if (ptrace(PTRACE_SEIZE, pid, 0, 0) < 0) {
		r = -errno;
		if (r == -EPERM)
			snprintf(why, why_len,
				 "not permitted to trace process %d (needs CAP_SYS_PTRACE or the same user)",
				 pid);
		else
			snprintf(why, why_len, "cannot trace process %d: %s", pid, ghost_strerror(r));
		return r;
	}
	t->seized = true;

	if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) < 0) {
		r = -errno;
		goto fail;
	}
	/*
	 * The first stop may be the delivery of a signal that was already on its
	 * way. Let it be delivered (its handler frame becomes part of the state)
	 * and stop again, so no signal is swallowed.
	 */
	for (int tries = 0;; tries++) {
		int sig, event;

		r = wait_stop(pid, &st);
		if (r < 0)
			goto fail;
		sig = WSTOPSIG(st);
		event = st >> 16;
		if (event == PTRACE_EVENT_STOP)
			break;
		if (tries > 64) {
			r = -EBUSY;
			goto fail;
		}
		if (is_group_stop_sig(sig) || sig == SIGTRAP)
			log_debug("process %d: delivering signal %d before export", pid, sig);
		if (ptrace(PTRACE_CONT, pid, 0, sig) < 0 || ptrace(PTRACE_INTERRUPT, pid, 0, 0) < 0) {
			r = -errno;
			goto fail;
		}
	}

	if (ptrace(PTRACE_GETREGS, pid, 0, &t->regs) < 0) {
		r = -errno;
		goto fail;
	}
	t->xstate = malloc(XSTATE_MAX);
	if (!t->xstate) {
		r = -ENOMEM;
		goto fail;
	}
	iov = (struct iovec){ .iov_base = t->xstate, .iov_len = XSTATE_MAX };
	if (ptrace(PTRACE_GETREGSET, pid, NT_X86_XSTATE, &iov) < 0) {
		r = -errno;
		goto fail;
	}
	t->xstate_len = iov.iov_len;
	if (ptrace(PTRACE_GETSIGMASK, pid, sizeof(uint64_t), &t->sigmask) < 0) {
		r = -errno;
		goto fail;
	}
	r = open_mem(t);
	if (r < 0)
		goto fail;
	return 0;
fail:
	if (r == -ESRCH)
		snprintf(why, why_len, "process %d exited while being stopped", pid);
	else
		snprintf(why, why_len, "cannot stop process %d: %s", pid, ghost_strerror(r));
	tracee_release(t, false, false);
	return r;
}

int tracee_block_signals(struct tracee *t)
{
	uint64_t all = ~0ull;

	if (ptrace(PTRACE_SETSIGMASK, t->pid, sizeof(all), &all) < 0)
		return -errno;
	t->mask_dirty = true;
	return 0;
}

int tracee_find_syscall(struct tracee *t, uint64_t start, uint64_t end)
{
	_cleanup_free_ uint8_t *code = NULL;
	size_t len = end - start;
	int r;

	if (end <= start || len > (1u << 20))
		return -EINVAL;
	code = malloc(len);
	if (!code)
		return -ENOMEM;
	r = tracee_read_mem(t, start, code, len);
	if (r < 0)
		return r;
	for (size_t i = 0; i + 1 < len; i++)
		if (code[i] == 0x0f && code[i + 1] == 0x05) {
			t->syscall_ip = start + i;
			return 0;
		}
	return -ENOENT;
}

int tracee_syscall_start(struct tracee *t, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
			 uint64_t a4, uint64_t a5, uint64_t a6)
{
	struct user_regs_struct r = t->regs;

	if (!t->syscall_ip || t->in_syscall)
		return -EINVAL;
	r.rax = (uint64_t)nr;
	r.orig_rax = (uint64_t)-1;
	r.rdi = a1;
	r.rsi = a2;
	r.rdx = a3;
	r.r10 = a4;
	r.r8 = a5;
	r.r9 = a6;
	r.rip = t->syscall_ip;
	r.eflags &= ~(1ull << 8); /* TF: the kernel sets it for the step */
	if (ptrace(PTRACE_SETREGS, t->pid, 0, &r) < 0)
		return -errno;
	t->regs_dirty = true;
	if (ptrace(PTRACE_SINGLESTEP, t->pid, 0, 0) < 0)
		return -errno;
	t->in_syscall = true;
	t->syscall_nr = nr;
	return 0;
}

int tracee_syscall_finish(struct tracee *t, long *ret)
{
	struct user_regs_struct r;
	int st, e;

	if (!t->in_syscall)
		return -EINVAL;
	t->in_syscall = false;
	for (;;) {
		if (t->have_pending_status) {
			st = t->pending_status;
			t->have_pending_status = false;
		} else {
			e = wait_stop(t->pid, &st);
			if (e < 0)
				return e;
		}
		if ((st >> 16) == PTRACE_EVENT_STOP) {
			/* A trap left over from seizing a process in group-stop is no
			 * signal: if the call has not run yet, step again. */
			if (ptrace(PTRACE_GETREGS, t->pid, 0, &r) < 0)
				return -errno;
			if (r.rip != t->syscall_ip)
				break;
		} else if ((st >> 16) == 0 && WSTOPSIG(st) == SIGSTOP) {
			/* SIGSTOP cannot be blocked: it arrived while we held the
			 * process and was taken out before the call ran. Drop it
			 * here and send it again at tracee_release(). */
			t->sigstop_seen = true;
		} else {
			break;
		}
		if (ptrace(PTRACE_SINGLESTEP, t->pid, 0, 0) < 0)
			return -errno;
	}
	if (WSTOPSIG(st) != SIGTRAP && (st >> 16) != PTRACE_EVENT_STOP) {
		log_debug("process %d: signal %d during injected syscall %ld", t->pid,
			  WSTOPSIG(st), t->syscall_nr);
		return -EIO;
	}
	if (ptrace(PTRACE_GETREGS, t->pid, 0, &r) < 0)
		return -errno;
	if (r.rip != t->syscall_ip + 2)
		return -EIO;
	*ret = (long)r.rax;
	return 0;
}

int tracee_syscall_poll(struct tracee *t, long *ret)
{
	int st;
	pid_t w;

	if (!t->in_syscall)
		return -EINVAL;
	w = waitpid(t->pid, &st, WNOHANG | __WALL);
	if (w == 0)
		return 0;
	if (w < 0)
		return errno == EINTR ? 0 : -errno;
	if (WIFEXITED(st) || WIFSIGNALED(st)) {
		t->in_syscall = false;
		return -ESRCH;
	}
	/* Stopped: collect it exactly as tracee_syscall_finish() would. */
	t->pending_status = st;
	t->have_pending_status = true;
	return tracee_syscall_finish(t, ret) < 0 ? -EIO : 1;
}

int tracee_syscall(struct tracee *t, long nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
		   uint64_t a5, uint64_t a6, long *ret)
{
	int r = tracee_syscall_start(t, nr, a1, a2, a3, a4, a5, a6);

	if (r < 0)
		return r;
	return tracee_syscall_finish(t, ret);
}

/*
 * The tracee runs execve(path, {path}, {}) and stops before the first
 * instruction of the new program. A successful execve shows as
 * PTRACE_EVENT_EXEC; stepping on from there stops at the return to user
 * space, where the step's SIGTRAP is taken and never delivered (the next
 * injection resumes with no signal). Its old memory is gone with the call:
 * the scratch mapping and the syscall instruction with it, and mem_fd is
 * opened again on the new one. Needs the syscall instruction and no scratch
 * mapping of the caller's; -errno of a failed execve, the tracee unchanged.
 */
int tracee_exec(struct tracee *t, const char *path)
{
	size_t len = strlen(path) + 1, argv_at = ALIGN_UP(len, 8);
	uint64_t argv[2] = { 0, 0 };
	bool execed = false;
	long ret;
	int st, r;

	if (argv_at + sizeof(argv) > PAGE_SIZE_X)
		return -ENAMETOOLONG;
	if (t->scratch)
		return -EBUSY;
	r = tracee_scratch_map(t, 0, PAGE_SIZE_X);
	if (r < 0)
		return r;
	argv[0] = t->scratch;
	r = tracee_write_mem(t, t->scratch, path, len);
	if (r >= 0)
		r = tracee_write_mem(t, t->scratch + argv_at, argv, sizeof(argv));
	if (r >= 0 && ptrace(PTRACE_SETOPTIONS, t->pid, 0, PTRACE_O_TRACEEXEC) < 0)
		r = -errno;
	if (r >= 0)
		r = tracee_syscall_start(t, SYS_execve, t->scratch, t->scratch + argv_at,
					 t->scratch + argv_at + 8, 0, 0, 0);
	if (r < 0) {
		(void)tracee_scratch_unmap(t);
		return r;
	}
	t->in_syscall = false;
	for (;;) {
		r = wait_stop(t->pid, &st);
		if (r < 0)
			return r;
		if ((st >> 16) == PTRACE_EVENT_EXEC) {
			execed = true;
		} else if ((st >> 16) == 0 && WSTOPSIG(st) == SIGSTOP) {
			t->sigstop_seen = true; /* as in tracee_syscall_finish() */
		} else if ((st >> 16) == PTRACE_EVENT_STOP && !execed) {
			struct user_regs_struct regs;

			/* A trap left over from the seize: the call has not run yet. */
			if (ptrace(PTRACE_GETREGS, t->pid, 0, &regs) < 0)
				return -errno;
			if (regs.rip != t->syscall_ip)
				return -EIO;
		} else if (WSTOPSIG(st) == SIGTRAP && (st >> 16) == 0) {
			break;
		} else {
			log_debug("process %d: stop %#x during execve", t->pid, st);
			return -EIO;
		}
		if (ptrace(PTRACE_SINGLESTEP, t->pid, 0, 0) < 0)
			return -errno;
	}
	if (!execed) {
		struct user_regs_struct regs;

		if (ptrace(PTRACE_GETREGS, t->pid, 0, &regs) < 0)
			return -errno;
		ret = (long)regs.rax;
		(void)tracee_scratch_unmap(t);
		return ret < 0 ? (int)ret : -EIO;
	}
	t->scratch = 0;
	t->syscall_ip = 0;
	return open_mem(t);
}

int tracee_scratch_map(struct tracee *t, uint64_t hint, size_t len)
{
	long addr;
	int r;

	r = tracee_syscall(t, SYS_mmap, hint, len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | (hint ? MAP_FIXED_NOREPLACE : 0), (uint64_t)-1,
			   0, &addr);
	if (r < 0)
		return r;
	if (addr < 0 && addr > -4096)
		return (int)addr;
	t->scratch = (uint64_t)addr;
	t->scratch_len = len;
	return 0;
}

int tracee_scratch_unmap(struct tracee *t)
{
	long ret;
	int r;

	if (!t->scratch)
		return 0;
	r = tracee_syscall(t, SYS_munmap, t->scratch, t->scratch_len, 0, 0, 0, 0, &ret);
	if (r < 0)
		return r;
	if (ret < 0)
		return (int)ret;
	t->scratch = 0;
	return 0;
}

int tracee_write_mem(struct tracee *t, uint64_t addr, const void *data, size_t len)
{
	struct iovec local = { .iov_base = (void *)data, .iov_len = len };
	struct iovec remote = { .iov_base = (void *)addr, .iov_len = len };
	ssize_t n = process_vm_writev(t->pid, &local, 1, &remote, 1, 0);

	if (n == (ssize_t)len)
		return 0;
	/* Memory without write permission: /proc/PID/mem forces the access. */
	return pwrite_full(t->mem_fd, data, len, (off_t)addr);
}

int tracee_read_mem(struct tracee *t, uint64_t addr, void *data, size_t len)
{
	struct iovec local = { .iov_base = data, .iov_len = len };
	struct iovec remote = { .iov_base = (void *)addr, .iov_len = len };
	ssize_t n = process_vm_readv(t->pid, &local, 1, &remote, 1, 0);

	if (n == (ssize_t)len)
		return 0;
	/* Memory without read permission: /proc/PID/mem forces the access. */
	return pread_full(t->mem_fd, data, len, (off_t)addr);
}

int tracee_detach(struct tracee *t)
{
	int r = 0;

	if (t->seized && ptrace(PTRACE_DETACH, t->pid, 0, 0) < 0)
		r = -errno;
	t->seized = false;
	t->mem_fd = safe_close(t->mem_fd);
	free(t->xstate);
	t->xstate = NULL;
	return r;
}

void tracee_release(struct tracee *t, bool stop, bool kill_it)
{
	if (!t->seized) {
		t->mem_fd = safe_close(t->mem_fd);
		free(t->xstate);
		t->xstate = NULL;
		return;
	}
	if (t->in_syscall && !kill_it) {
		long ignored;

		if (tracee_syscall_finish(t, &ignored) < 0)
			log_warn("process %d: injected system call did not finish, ignoring", t->pid);
	}
	if (kill_it) {
		int st;

		/* Killed while still stopped: it runs no further instruction. As its
		 * tracer we collect the exit report so the real parent gets it. */
		kill(t->pid, SIGKILL);
		for (;;) {
			if (waitpid(t->pid, &st, __WALL) < 0) {
				if (errno == EINTR)
					continue;
				break;
			}
			if (WIFEXITED(st) || WIFSIGNALED(st))
				break;
		}
		t->seized = false;
		tracee_detach(t);
		return;
	}
	if (t->scratch && tracee_scratch_unmap(t) < 0)
		log_warn("process %d: cannot unmap scratch page at %#lx, ignoring", t->pid,
			 (unsigned long)t->scratch);
	if (t->regs_dirty && ptrace(PTRACE_SETREGS, t->pid, 0, &t->regs) < 0)
		log_warn("process %d: cannot restore registers: %m, ignoring", t->pid);
	if (t->mask_dirty && ptrace(PTRACE_SETSIGMASK, t->pid, sizeof(t->sigmask), &t->sigmask) < 0)
		log_warn("process %d: cannot restore signal mask: %m, ignoring", t->pid);
	if (stop || t->sigstop_seen)
		kill(t->pid, SIGSTOP);
	tracee_detach(t);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * import_process(): make a live process from a ghost.
 *
 *   read the small records (identity, creds, files, vmas, signals, thread),
 *     each checksum-verified as it is read
 *     -> checks: credentials assumable by the caller, carried fds expected
 *        (GHOST_IMPORT_CARRIED), files unchanged, PID free
 *     -> open every file in the engine, above a staging base
 *     -> clone3(set_tid = PID): the stub, a copy of the engine, installs fds,
 *        its session and controlling terminal (GHOST_IMPORT_SESSION), cwd,
 *        umask, personality, handlers, altstack, robust list, pending
 *        signals itself, then waits
 *     -> seize the stub; from outside: drop its rseq, unmap everything but the
 *        vDSO, move the vDSO to the old address, map the old VMAs
 *     -> image in memory or a file: verify every record of the whole image
 *        while the stub allocates the memory the pages will fill; a stream:
 *        each page record is verified as it arrives
 *     -> copy the pages in (UFFDIO_COPY into private anonymous memory, see
 *        below), protections, mm fields, comm, timers, limits,
 *        scheduling, credentials, rseq, then xstate, registers and mask
 *     -> detach
 *
 * GHOST_IMPORT_BECOME: the caller is the stub. The whole image is verified
 * first; the caller makes the new process's children, forks a helper (through
 * an intermediate, so the helper is not its child) and runs the stub's part;
 * the helper does ours. Up to the fork, a failure returns to the caller as it
 * was. A caller without root has the helper make it execve() the image's
 * executable right after the seize (exec_program()), and gets back what
 * the execve reset by injection (redo_after_exec()).
 *
 * Corruption anywhere is found before a byte of page data reaches the stub.
 * Invariant: the stub never executes an instruction of the restored program
 * before everything succeeded; on any failure it is killed and reaped, so a
 * failed import leaves no process behind.
 */
#include <dirent.h>
#include <errno.h>
#include <elf.h>
#include <fcntl.h>
#include <linux/prctl.h>
#include <linux/sched.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX "import"
#include "base/clock.h"
#include "base/fileio.h"
#include "base/log.h"
#include "ghost/ghost-int.h"
#include "io/io.h"
#include "base/banned.h"

#ifndef CLONE_ARGS_SIZE_VER2
#error "linux/sched.h too old for clone3 set_tid"
#endif

#define RSEQ_FLAG_UNREGISTER_ 1
#define CLOSE_RANGE_CLOEXEC_ (1U << 2)
/* How long the stub waits for a child's PID to come free. */
#define CHILD_PID_WAIT_MS 3000

struct ksigaction {
	uint64_t handler, flags, restorer, mask;
};

/* What the stub reports back over the ready pipe. */
struct stub_status {
	int step;
	int err;
	int fd, tfd; /* STUB_EPOLL: the epoll fd and the fd it failed to register;
			STUB_CHILDREN: fd is the index of the child that failed */
};

enum stub_step {
	STUB_OK,
	STUB_FDS,
	STUB_CWD,
	STUB_ROOT,
	STUB_PERSONALITY,
	STUB_SIGACTION,
	STUB_ALTSTACK,
	STUB_SIGQUEUE,
	STUB_SESSION,
	STUB_EPOLL,
	STUB_CHILDREN,
};

static const char *const stub_step_name[] = {
	[STUB_OK] = "ok",
	[STUB_FDS] = "installing file descriptors",
	[STUB_CWD] = "changing to the working directory",
	[STUB_ROOT] = "changing the root directory",
	[STUB_PERSONALITY] = "setting the personality",
	[STUB_SIGACTION] = "setting signal handlers",
	[STUB_ALTSTACK] = "setting the signal stack",
	[STUB_SIGQUEUE] = "queueing pending signals",
	[STUB_SESSION] = "starting its session",
	[STUB_EPOLL] = "registering its fds with epoll",
	[STUB_CHILDREN] = "making its children",
};

/*
 * Page allocation in the new process, ahead of the copy. Allocating and zeroing
 * pages is the dearest part of a restore, so the new process itself does it
 * (an injected, asynchronous madvise(MADV_POPULATE_WRITE) of one chunk at a
 * time) on the other core while we verify and copy. It writes zeros, never a
 * byte of the image. The ranges come from the image: the PAGES records of an
 * image mapped whole, or the PAGEMAP records a stream announces before its
 * pages (without them a stream is copied as it comes, without help).
 *
 *  - mapped image (POP_UP): chunks in address order, the next one while every
 *    record is verified and then copied; the copy of a record waits for the
 *    chunks below its end (verification already gave the stub a head start).
 *  - stream (POP_DOWN): the copy is paced by the arriving data, so the work is
 *    shared instead of waited for: the stub populates chunks from the top down
 *    while the copy goes up, faulting in its pages itself, until the two meet;
 *    the copy waits only for a chunk the stub is working on.
 */
#define POPULATE_CHUNK (32ull << 20)
#define POPULATE_CHUNK_DOWN (16ull << 20)
#define POPULATE_MIN (1ull << 20)
#define MADV_POPULATE_WRITE_ 23

struct populate_chunk {
	uint64_t start, end;
};

enum populate_order {
	POP_UP,
	POP_DOWN,
};

struct populate {
	struct populate_chunk *chunk; /* ascending, disjoint */
	size_t n, cap;
	enum populate_order order;
	uint64_t run_start, run_end; /* planning: the run being coalesced */
	/* POP_UP: chunks [0, next) are populated or given up, chunk[next] is in
	 * flight if inflight. POP_DOWN: chunks [next, n) are, chunk[next - 1] is
	 * in flight if inflight; the copy has passed the chunks below floor and
	 * has written up to copied, and the stub takes no chunk starting below. */
	size_t next;
	size_t floor;
	uint64_t copied;
	bool inflight;
};

/*
 * Page data for private anonymous memory goes in with UFFDIO_COPY: the kernel
 * allocates each page and copies into it, where process_vm_writev() faults
 * the page in (allocated and zeroed) and then copies, so a page costs one
 * write instead of two (a third less time per GiB here). The stub opens the
 * userfaultfd (an injected syscall), we take it with pidfd_getfd() and
 * register the mappings for missing pages; UFFD_USER_MODE_ONLY, so that a
 * kernel access to a registered page not yet copied fails with EFAULT instead
 * of waiting for us. Closing our fd after the last page unregisters them, and
 * the rest of the mappings fault in zeros as usual. No population ahead for
 * these mappings: nothing needs zeroing. Shared anonymous memory, private file
 * mappings and MADV_HUGEPAGE ranges (UFFDIO_COPY makes small pages) keep the
 * write path, as does everything when the kernel refuses a userfaultfd.
 */
#define UFFD_USER_MODE_ONLY_ 1

struct import_ctx {
	struct ghost *g;
	const struct ghost_import_opts *opts;
	unsigned flags;
	struct ghost_io *io;
	struct img_reader *rd;

	struct img_process proc;
	char *cwd, *exe, *root;
	bool have_proc, have_creds, have_mm, have_thread, have_sa, have_rl, have_sched, have_it;
	struct img_creds creds;
	uint32_t *groups;
	struct img_rlimits rl;
	struct img_sched sched;
	cpu_set_t affinity;
	struct img_mm mm;
	uint64_t *auxv;
	struct img_vma *vmas;
	char **vma_paths;
	size_t nvmas;
	int *vma_fds;
	struct files_restore fr;
	struct img_sigactions sa;
	struct buf sigq_thread, sigq_shared; /* siginfo_t arrays */
	struct img_itimers it;
	struct img_thread th;
	uint8_t *xstate;

	int base; /* staging fds are >= base */
	int exe_fd;
	int ready[2], go[2];
	int *staged; /* per FILE, staged fd */
	pid_t pid;
	pid_t stub;
	bool become; /* GHOST_IMPORT_BECOME: the stub is the caller, we its helper */
	bool by_exec; /* ...and it is no root: its executable comes by execve() */
	const void *image; /* the image mapped whole, if it is */
	size_t image_len;
	struct tracee t;
	uint64_t pages;
	uint64_t pages_end; /* end of the last PAGES record */
	struct populate pop;
	int uffd;	  /* ours, -1 when the pages go in by writing */
	bool *vma_uffd;	  /* per VMA: registered with uffd */
};

static int corrupt(struct import_ctx *c, const char *what)
{
	return ghost_fail(c->g, GHOST_ECORRUPT, "image is malformed: %s", what);
}

/* --- reading the records before the pages ------------------------------------------ */

static int take_record(struct import_ctx *c, const struct img_record *rec)
{
	const char *var;
	int r;

	if (rec->type != IMG_REC_PROCESS && !c->have_proc)
		return corrupt(c, "first record is not the process");
	switch (rec->type) {
	case IMG_REC_PROCESS: {
		const struct img_process *p = rec->payload;

		if (c->have_proc)
			return ghost_fail(c->g, GHOST_EUNSUPPORTED,
					  "image holds several processes; process trees are not supported yet");
		c->proc = *p;
		var = (const char *)(p + 1);
		c->cwd = strndup(var, p->cwd_len);
		c->exe = strndup(var + p->cwd_len, p->exe_len);
		c->root = strndup(var + p->cwd_len + p->exe_len, p->root_len);
		if (!c->cwd || !c->exe || !c->root)
			return -ENOMEM;
		if (p->nthreads != 1)
			return ghost_fail(c->g, GHOST_EUNSUPPORTED,
					  "image holds %u threads; threads are not supported yet",
					  p->nthreads);
		c->have_proc = true;
		return 0;
	}
	case IMG_REC_CREDS: {
		const struct img_creds *cr = rec->payload;

		c->creds = *cr;
		free(c->groups);
		c->groups = NEW_ARRAY(uint32_t, cr->ngroups);
		if (!c->groups)
			return -ENOMEM;
		memcpy(c->groups, cr + 1, (size_t)cr->ngroups * sizeof(uint32_t));
		c->have_creds = true;
		return 0;
	}
	case IMG_REC_RLIMITS:
		memcpy(&c->rl, rec->payload, sizeof(c->rl));
		c->have_rl = true;
		return 0;
	case IMG_REC_SCHED: {
		const struct img_sched *s = rec->payload;

		c->sched = *s;
		CPU_ZERO(&c->affinity);
		memcpy(&c->affinity, s + 1, MIN((size_t)s->affinity_len, sizeof(c->affinity)));
		c->have_sched = true;
		return 0;
	}
	case IMG_REC_MM: {
		const struct img_mm *m = rec->payload;

		c->mm = *m;
		free(c->auxv);
		c->auxv = malloc(m->auxv_len ? m->auxv_len : 1);
		if (!c->auxv)
			return -ENOMEM;
		memcpy(c->auxv, m + 1, m->auxv_len);
		c->have_mm = true;
		return 0;
	}
	case IMG_REC_VMA: {
		const struct img_vma *v = rec->payload;
		struct img_vma *nv;
		char **np;

		if (c->nvmas && v->start < c->vmas[c->nvmas - 1].end)
			return corrupt(c, "mappings overlap or are out of order");
		if (v->end > TASK_SIZE_X)
			return corrupt(c, "mapping beyond the user address space");
		nv = reallocarray(c->vmas, c->nvmas + 1, sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		c->vmas = nv;
		np = reallocarray(c->vma_paths, c->nvmas + 1, sizeof(*np));
		if (!np)
			return -ENOMEM;
		c->vma_paths = np;
		c->vmas[c->nvmas] = *v;
		c->vma_paths[c->nvmas] = v->path_len ? strndup((const char *)(v + 1), v->path_len)
						     : NULL;
		if (v->path_len && !c->vma_paths[c->nvmas])
			return -ENOMEM;
		if ((v->kind == IMG_VMA_FILE_PRIVATE || v->kind == IMG_VMA_FILE_SHARED) &&
		    !v->path_len) {
			free(c->vma_paths[c->nvmas]);
			return corrupt(c, "file mapping without a path");
		}
		c->nvmas++;
		return 0;
	}
	case IMG_REC_FILE:
	case IMG_REC_FILE_DATA:
	case IMG_REC_FD:
	case IMG_REC_EPOLL:
		r = files_restore_add_record(c->g, &c->fr, rec);
		if (r == -ENOMEM)
			return ghost_fail(c->g, r, "out of memory");
		return r;
	case IMG_REC_SIGACTIONS:
		memcpy(&c->sa, rec->payload, sizeof(c->sa));
		c->have_sa = true;
		return 0;
	case IMG_REC_SIGPENDING: {
		const struct img_sigpending *sp = rec->payload;
		struct buf *q = sp->shared ? &c->sigq_shared : &c->sigq_thread;

		return buf_append(q, sp + 1, (size_t)sp->count * sizeof(siginfo_t));
	}
	case IMG_REC_ITIMERS:
		memcpy(&c->it, rec->payload, sizeof(c->it));
		c->have_it = true;
		return 0;
	case IMG_REC_THREAD: {
		const struct img_thread *th = rec->payload;

		if (c->have_thread)
			return ghost_fail(c->g, GHOST_EUNSUPPORTED,
					  "image holds several threads; threads are not supported yet");
		c->th = *th;
		c->xstate = malloc(th->xstate_len ? th->xstate_len : 1);
		if (!c->xstate)
			return -ENOMEM;
		memcpy(c->xstate, th + 1, th->xstate_len);
		c->have_thread = true;
		return 0;
	}
	default:
		/* Optional records of a newer writer. */
		return 0;
	}
}

/* --- checks ------------------------------------------------------------------------------ */

static int check_creds(struct import_ctx *c)
{
	const struct img_creds *cr = &c->creds;
	uid_t u = c->opts ? c->opts->caller_uid : getuid();
	gid_t gid = c->opts ? c->opts->caller_gid : getgid();

	/* A caller turning without root sets its own IDs: the kernel's rules. */
	if (c->by_exec) {
		u = geteuid();
		gid = getegid();
	}

	if (u == 0)
		return 0;
	if (cr->uid != u || cr->euid != u || cr->suid != u || cr->fsuid != u)
		return ghost_fail(c->g, GHOST_EPERM,
				  "image runs as uid %u, which uid %u may not assume", cr->euid, u);
	if (cr->gid != gid || cr->egid != gid || cr->sgid != gid || cr->fsgid != gid)
		return ghost_fail(c->g, GHOST_EPERM,
				  "image runs as gid %u, which uid %u (gid %u) may not assume",
				  cr->egid, u, gid);
	if (cr->cap_prm || cr->cap_eff || cr->cap_amb || cr->cap_inh)
		return ghost_fail(c->g, GHOST_EPERM,
				  "image holds capabilities, which uid %u may not assume", u);
	{
		gid_t mine[256];
		int n = getgroups(256, mine);

		for (uint32_t i = 0; i < cr->ngroups; i++) {
			bool found = c->groups[i] == gid;

			for (int j = 0; !found && j < n; j++)
				found = mine[j] == c->groups[i];
			if (!found)
				return ghost_fail(c->g, GHOST_EPERM,
						  "image belongs to group %u, which uid %u may not assume",
						  c->groups[i], u);
		}
	}
	return 0;
}

static int check_file(struct import_ctx *c, const char *path, uint64_t size, int64_t mtime_ns,
		      const char *what)
{
	struct stat sb;

	if (stat(path, &sb) < 0)
		return ghost_fail(c->g, -errno, "%s '%s' is missing: %m", what, path);
	if ((uint64_t)sb.st_size != size ||
	    (int64_t)sb.st_mtim.tv_sec * 1000000000ll + sb.st_mtim.tv_nsec != mtime_ns)
		return ghost_fail(c->g, GHOST_EFILECHANGED, "%s '%s' changed since the checkpoint",
				  what, path);
	return 0;
}

static int check_image(struct import_ctx *c)
{
	int r;

	if (!c->have_proc || !c->have_creds || !c->have_mm || !c->have_thread || !c->have_sa)
		return corrupt(c, "a required record is missing");
	r = check_creds(c);
	if (r < 0)
		return r;
	r = files_restore_check_carried(c->g, &c->fr, c->flags & GHOST_IMPORT_CARRIED);
	if (r < 0)
		return r;
	r = files_restore_plan_epoll(c->g, &c->fr);
	if (r < 0)
		return r;
	r = check_file(c, c->exe, c->proc.exe_size, c->proc.exe_mtime_ns, "executable");
	if (r < 0)
		return r;
	for (size_t i = 0; i < c->nvmas; i++) {
		const struct img_vma *v = &c->vmas[i];

		if (v->kind == IMG_VMA_FILE_PRIVATE) {
			r = check_file(c, c->vma_paths[i], v->file_size, v->file_mtime_ns,
				       "mapped file");
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* --- staging ------------------------------------------------------------------------------- */

static int highest_fd(void)
{
	struct rlimit rl;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int hi = 2;

	while (d && (de = readdir(d))) {
		int fd;

		if (parse_int(de->d_name, &fd) >= 0 && fd > hi)
			hi = fd;
	}
	if (d)
		closedir(d);
	/* Staged fds go above everything: allow as many as the hard limit lets us. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	return hi;
}

static int stage(struct import_ctx *c, int fd)
{
	int s = fcntl(fd, F_DUPFD_CLOEXEC, c->base);

	if (s < 0)
		return ghost_fail(c->g, -errno, "cannot stage fd %d above %d: %m", fd, c->base);
	return s;
}

static int prepare_files(struct import_ctx *c)
{
	int maxfd = 2, r;

	for (size_t i = 0; i < c->fr.nfds; i++)
		maxfd = MAX(maxfd, (int)c->fr.fds[i].fd);
	c->base = MAX(maxfd, highest_fd()) + 1;

	r = files_restore_open(c->g, &c->fr, c->opts ? c->opts->stdio : NULL,
			       c->flags & GHOST_IMPORT_OWN_STDIO);
	if (r < 0)
		return r == -ENOMEM ? ghost_fail(c->g, r, "out of memory") : r;
	c->staged = NEW_ARRAY(int, c->fr.nfiles);
	c->vma_fds = NEW_ARRAY(int, c->nvmas);
	if (!c->staged || !c->vma_fds)
		return ghost_fail(c->g, -ENOMEM, "out of memory");
	for (size_t i = 0; i < c->nvmas; i++)
		c->vma_fds[i] = -1;
	for (size_t i = 0; i < c->fr.nfiles; i++) {
		c->staged[i] = stage(c, c->fr.opened[i]);
		if (c->staged[i] < 0)
			return c->staged[i];
		c->fr.opened[i] = safe_close(c->fr.opened[i]);
	}
	for (size_t i = 0; i < c->nvmas; i++) {
		const struct img_vma *v = &c->vmas[i];
		int fd;

		if (v->kind != IMG_VMA_FILE_PRIVATE && v->kind != IMG_VMA_FILE_SHARED)
			continue;
		fd = -1;
		if (v->kind == IMG_VMA_FILE_SHARED)
			fd = open(c->vma_paths[i], O_RDWR | O_CLOEXEC);
		if (fd < 0)
			fd = open(c->vma_paths[i], O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return ghost_fail(c->g, -errno, "cannot open mapped file '%s': %m",
					  c->vma_paths[i]);
		c->vma_fds[i] = stage(c, fd);
		safe_close(fd);
		if (c->vma_fds[i] < 0)
			return c->vma_fds[i];
	}
	{
		struct stat mine, theirs;
		int fd;

		/* The stub already runs our executable: if it is the image's too, the
		 * kernel keeps it (and refuses a change while it is mapped). A caller
		 * turning without root gets it by execve() (exec_program()). */
		if (c->by_exec)
			goto pipes;
		if (stat("/proc/self/exe", &mine) == 0 && stat(c->exe, &theirs) == 0 &&
		    mine.st_dev == theirs.st_dev && mine.st_ino == theirs.st_ino) {
			c->exe_fd = -1;
			goto pipes;
		}
		fd = open(c->exe, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return ghost_fail(c->g, -errno, "cannot open executable '%s': %m", c->exe);
		c->exe_fd = stage(c, fd);
		safe_close(fd);
		if (c->exe_fd < 0)
			return c->exe_fd;
	}
pipes:
	if (pipe2(c->ready, O_CLOEXEC) < 0 || pipe2(c->go, O_CLOEXEC) < 0)
		return ghost_fail(c->g, -errno, "pipe: %m");
	for (int k = 0; k < 2; k++) {
		int s = stage(c, c->ready[k]);

		if (s < 0)
			return s;
		safe_close(c->ready[k]);
		c->ready[k] = s;
		s = stage(c, c->go[k]);
		if (s < 0)
			return s;
		safe_close(c->go[k]);
		c->go[k] = s;
	}
	return 0;
}

/* --- the stub: runs in the new process, before it is taken over ----------------------- */

static void stub_report(struct import_ctx *c, int step, int err, int fd, int tfd)
{
	struct stub_status st = { step, err, fd, tfd };

	(void)!write(c->ready[1], &st, sizeof(st));
}

static bool is_target_fd(const struct import_ctx *c, int fd)
{
	for (size_t i = 0; i < c->fr.nfds; i++)
		if ((int)c->fr.fds[i].fd == fd)
			return true;
	return false;
}

static pid_t clone_with_pid(pid_t pid);

/* End and reap the first made children of opts->children: a failed import
 * (or a caller that cannot become the process after all) leaves none. */
static void end_children(struct import_ctx *c, size_t made)
{
	for (size_t i = 0; i < made; i++) {
		kill(c->opts->children[i].pid, SIGKILL);
		while (waitpid(c->opts->children[i].pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
}

/* In the stub: clone child k with its PID and have it run its program. The
 * close-on-exec pipe tells whether the execve happened; a child whose
 * execve failed is reaped here. -1 with errno on failure. */
static int stub_make_child(const struct ghost_import_child *k)
{
	char *const envp[] = { NULL };
	int p[2], err = 0;
	ssize_t n;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	/* A PID still held by a process that is ending (not yet reaped)
	 * comes free within moments. */
	for (unsigned waited = 0;; waited += 10) {
		pid = clone_with_pid(k->pid);
		if (pid >= 0 || errno != EEXIST || waited >= CHILD_PID_WAIT_MS)
			break;
		usleep(10000);
	}
	if (pid == 0) {
		/* Nothing of the engine's survives the execve (p[1] included). */
		syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC_);
		execve(k->path, (char *const *)k->argv, envp);
		err = errno;
		(void)!write(p[1], &err, sizeof(err));
		_exit(127);
	}
	err = errno;
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		errno = err;
		return -1;
	}
	do
		n = read(p[0], &err, sizeof(err));
	while (n < 0 && errno == EINTR);
	close(p[0]);
	if (n == (ssize_t)sizeof(err)) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		errno = err;
		return -1;
	}
	return 0;
}

/* Signal sig's handler as the image has it, in the kernel's layout. */
static struct ksigaction image_sigaction(const struct import_ctx *c, int sig)
{
	const struct img_sigaction *a = &c->sa.act[sig - 1];

	return (struct ksigaction){ a->handler, a->flags, a->restorer, a->mask };
}

/* The image's alternate signal stack, as sigaltstack() takes it. */
static stack_t image_altstack(const struct import_ctx *c)
{
	stack_t ss = { .ss_sp = (void *)(uintptr_t)c->th.altstack_sp,
		       .ss_size = c->th.altstack_size,
		       .ss_flags = (int)(c->th.altstack_flags & ~(uint32_t)SS_ONSTACK) };

	if (ss.ss_flags & SS_DISABLE)
		ss = (stack_t){ .ss_flags = SS_DISABLE };
	return ss;
}

static __attribute__((noreturn)) void stub_main(struct import_ctx *c)
{
	uint64_t all = ~0ull;
	int step = STUB_FDS, epfd = -1, tfd = -1, err;
	size_t made = 0;
	char byte;

	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, NULL, 8);
	prctl(PR_SET_PDEATHSIG, 0);
	close(c->ready[0]);
	close(c->go[1]);

	/* Its children first, while nothing of the image is in the stub yet:
	 * they inherit only what their execve keeps. (A caller that becomes
	 * the process made them before it started to turn.) */
	step = STUB_CHILDREN;
	if (c->become && c->opts)
		made = c->opts->n_children;
	for (; !c->become && c->opts && made < c->opts->n_children; made++)
		if (stub_make_child(&c->opts->children[made]) < 0) {
			tfd = (int)made;
			goto fail;
		}
	step = STUB_FDS;

	for (size_t i = 0; i < c->fr.nfds; i++) {
		const struct img_fd *f = &c->fr.fds[i];
		size_t k;

		for (k = 0; k < c->fr.nfiles; k++)
			if (c->fr.files[k].id == f->file_id)
				break;
		/* (Through an execve, FD_CLOEXEC comes later: redo_after_exec().) */
		if (dup3(c->staged[k], (int)f->fd,
			 (f->fd_flags & FD_CLOEXEC) && !c->by_exec ? O_CLOEXEC : 0) < 0)
			goto fail;
	}
	/* The mapped files are mapped after the execve. */
	for (size_t i = 0; c->by_exec && i < c->nvmas; i++)
		if (c->vma_fds[i] >= 0 && fcntl(c->vma_fds[i], F_SETFD, 0) < 0)
			goto fail;
	for (int fd = 0; fd < c->base; fd++)
		if (!is_target_fd(c, fd))
			close(fd);

	/* The kernel keys a registration by file and fd number: only now, with
	 * every fd at its number, can the process make them again. */
	step = STUB_EPOLL;
	{
		int k = ep_restore(c->fr.regs, c->fr.nregs, &epfd, &tfd);

		if (k < 0) {
			errno = -k;
			goto fail;
		}
	}

	/* A session leader (a process ghostd started) leads a session again,
	 * with its terminal, if it had one, as controlling terminal. */
	step = STUB_SESSION;
	if ((c->flags & GHOST_IMPORT_SESSION) && c->proc.sid == c->proc.pid) {
		/* (A caller that becomes the process may lead one already.) */
		if (getsid(0) != getpid() && setsid() < 0)
			goto fail;
		for (size_t i = 0; i < c->fr.nfds; i++) {
			const struct img_fd *f = &c->fr.fds[i];
			struct termios t;
			size_t k;

			for (k = 0; k < c->fr.nfiles; k++)
				if (c->fr.files[k].id == f->file_id)
					break;
			if (k == c->fr.nfiles || c->fr.files[k].kind != IMG_FILE_STDIO ||
			    tcgetattr((int)f->fd, &t) < 0)
				continue;
			if (ioctl((int)f->fd, TIOCSCTTY, 0) < 0)
				goto fail;
			break;
		}
	}

	step = STUB_PERSONALITY;
	if (c->have_sched && personality(c->sched.personality) < 0)
		goto fail;
	step = STUB_CWD;
	if (chdir(c->cwd) < 0)
		goto fail;
	step = STUB_ROOT;
	if (strcmp(c->root, "/") != 0 && chroot(c->root) < 0)
		goto fail;
	umask((mode_t)c->proc.umask);

	step = STUB_SIGACTION;
	for (int sig = 1; sig <= 64; sig++) {
		struct ksigaction k = image_sigaction(c, sig);

		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (syscall(SYS_rt_sigaction, sig, &k, NULL, 8) < 0 && errno != EINVAL)
			goto fail;
	}
	step = STUB_ALTSTACK;
	{
		stack_t ss = image_altstack(c);

		if (sigaltstack(&ss, NULL) < 0)
			goto fail;
	}
	/* (An execve would drop both, and use the one on the old memory.) */
	if (!c->by_exec) {
		syscall(SYS_set_robust_list, (void *)(uintptr_t)c->th.robust_list,
			(size_t)c->th.robust_list_len);
		syscall(SYS_set_tid_address, (void *)(uintptr_t)c->th.clear_child_tid);
	}

	step = STUB_SIGQUEUE;
	for (size_t off = 0; off + sizeof(siginfo_t) <= c->sigq_shared.len; off += sizeof(siginfo_t)) {
		siginfo_t si;

		memcpy(&si, c->sigq_shared.data + off, sizeof(si));
		if (syscall(SYS_rt_sigqueueinfo, getpid(), si.si_signo, &si) < 0)
			goto fail;
	}
	for (size_t off = 0; off + sizeof(siginfo_t) <= c->sigq_thread.len; off += sizeof(siginfo_t)) {
		siginfo_t si;

		memcpy(&si, c->sigq_thread.data + off, sizeof(si));
		if (syscall(SYS_rt_tgsigqueueinfo, getpid(), getpid(), si.si_signo, &si) < 0)
			goto fail;
	}

	stub_report(c, STUB_OK, 0, -1, -1);
	/* Wait to be taken over; EOF means the engine is gone. */
	while (read(c->go[0], &byte, 1) < 0 && errno == EINTR)
		;
	_exit(127);
fail:
	err = errno;
	end_children(c, made);
	errno = err;
	if (step == STUB_CHILDREN)
		stub_report(c, step, errno, tfd, -1);
	else
		stub_report(c, step, errno, epfd, tfd);
	_exit(127);
}

/* --- creating the stub with the original PID ------------------------------------------- */

static pid_t clone_with_pid(pid_t pid)
{
	struct clone_args args = {
		.exit_signal = SIGCHLD,
		.set_tid = (uint64_t)(uintptr_t)&pid,
		.set_tid_size = 1,
	};

	return (pid_t)syscall(SYS_clone3, &args, sizeof(args));
}

static bool pid_is_live(pid_t pid, char comm[16])
{
	struct proc_stat st;

	if (proc_read_stat(pid, &st) < 0)
		return false;
	memcpy(comm, st.comm, 16);
	return st.f[3] != 'Z' && st.f[3] != 'X';
}

static int wait_pid_free(struct import_ctx *c, pid_t pid, unsigned ms)
{
	char comm[16];
	int st;

	for (unsigned waited = 0;; waited += 10) {
		/* Our own child: reap it ourselves. */
		if (waitpid(pid, &st, WNOHANG) == pid)
			return 0;
		if (kill(pid, 0) < 0 && errno == ESRCH)
			return 0;
		if (waited >= ms) {
			if (pid_is_live(pid, comm))
				return ghost_fail(c->g, GHOST_EPIDBUSY,
						  "PID %d is still in use by '%s'", pid, comm);
			return ghost_fail(c->g, GHOST_EPIDBUSY,
					  "PID %d is held by a dead process nobody has reaped (waited %u ms)",
					  pid, ms);
		}
		usleep(10000);
	}
}

static int make_stub(struct import_ctx *c)
{
	unsigned wait_ms = c->opts && c->opts->pid_wait_ms ? c->opts->pid_wait_ms : 3000;
	pid_t pid = c->pid, child;
	char comm[16];
	int r;

	if (pid_is_live(pid, comm)) {
		if (!(c->flags & GHOST_IMPORT_REPLACE))
			return ghost_fail(c->g, GHOST_EPIDBUSY,
					  "PID %d is in use by '%s'; use --replace to end it first",
					  pid, comm);
		if (kill(pid, SIGKILL) < 0 && errno != ESRCH)
			return ghost_fail(c->g, -errno, "cannot end process %d holding the PID: %m",
					  pid);
	}
	for (int attempt = 0;; attempt++) {
		if (c->flags & GHOST_IMPORT_DETACH) {
			/* Clone from an intermediate that exits at once: the new process is
			 * not our child (it goes to the nearest subreaper or init). */
			int p[2];
			pid_t mid;

			if (pipe2(p, O_CLOEXEC) < 0)
				return ghost_fail(c->g, -errno, "pipe: %m");
			mid = fork();
			if (mid < 0) {
				safe_close(p[0]);
				safe_close(p[1]);
				return ghost_fail(c->g, -errno, "fork: %m");
			}
			if (mid == 0) {
				pid_t s = clone_with_pid(pid);
				int e = errno;

				if (s == 0)
					stub_main(c);
				s = s < 0 ? -e : s;
				(void)!write(p[1], &s, sizeof(s));
				_exit(0);
			}
			safe_close(p[1]);
			if (read_full(p[0], &child, sizeof(child)) != sizeof(child))
				child = -EIO;
			safe_close(p[0]);
			while (waitpid(mid, NULL, 0) < 0 && errno == EINTR)
				;
			if (child < 0)
				errno = -child;
			else
				errno = 0;
			child = child < 0 ? -1 : child;
		} else {
			child = clone_with_pid(pid);
			if (child == 0)
				stub_main(c);
		}
		if (child > 0)
			break;
		r = -errno;
		if (r == -EPERM)
			return ghost_fail(c->g, r,
					  "cannot create a process with PID %d: needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN",
					  pid);
		if (r != -EEXIST || attempt > 0)
			return ghost_fail(c->g, r, "cannot create a process with PID %d: %s", pid,
					  ghost_strerror(r));
		r = wait_pid_free(c, pid, wait_ms);
		if (r < 0)
			return r;
	}
	c->stub = child;
	return 0;
}

/*
 * A caller without root turns by the kernel's rules for any process: the
 * executable comes by execve(), and what needs a capability must already
 * be as the image wants it. Find out now, while the caller can back out.
 */
static int check_turn_without_root(struct import_ctx *c)
{
	uid_t u = geteuid();

	if (c->opts && c->opts->n_children)
		return ghost_fail(c->g, -EPERM,
				  "a process of uid %u cannot become one with children elsewhere: making them with their PIDs needs CAP_CHECKPOINT_RESTORE",
				  u);
	if (strcmp(c->root, "/") != 0)
		return ghost_fail(c->g, -EPERM,
				  "a process of uid %u cannot take the root directory '%s': chroot needs CAP_SYS_CHROOT",
				  u, c->root);
	if (access(c->exe, R_OK | X_OK) < 0)
		return ghost_fail(c->g, -errno, "cannot run the executable '%s' as uid %u: %m",
				  c->exe, u);
	{
		gid_t mine[512];
		int n = getgroups(512, mine);
		bool same = n >= 0 && (uint32_t)n == c->creds.ngroups;

		for (int i = 0; same && i < n; i++) {
			bool found = false;

			for (uint32_t j = 0; !found && j < c->creds.ngroups; j++)
				found = c->groups[j] == mine[i];
			same = found;
		}
		if (!same)
			return ghost_fail(c->g, -EPERM,
					  "a process of uid %u cannot take the image's supplementary groups: setgroups needs CAP_SETGID",
					  u);
	}
	if (c->have_sched) {
		struct rlimit nice_rl = { 0, 0 };
		rlim_t allowed;
		int now;

		/* The kernel asks the process's RLIMIT_NICE, the image's by then
		 * (finish_outside() sets the limits first, below our hard one). */
		errno = 0;
		now = getpriority(PRIO_PROCESS, 0);
		(void)getrlimit(RLIMIT_NICE, &nice_rl);
		allowed = c->have_rl ? MIN((rlim_t)c->rl.lim[RLIMIT_NICE].cur, nice_rl.rlim_max)
				     : nice_rl.rlim_cur;
		if (errno == 0 && c->sched.nice < now && (rlim_t)(20 - c->sched.nice) > allowed)
			return ghost_fail(c->g, -EPERM,
					  "a process of uid %u cannot lower its nice value from %d to %d: needs CAP_SYS_NICE",
					  u, now, c->sched.nice);
		if ((c->sched.policy == SCHED_FIFO || c->sched.policy == SCHED_RR) &&
		    (int)c->sched.policy != sched_getscheduler(0))
			return ghost_fail(c->g, -EPERM,
					  "a process of uid %u cannot take scheduling policy %u: needs CAP_SYS_NICE",
					  u, c->sched.policy);
	}
	return 0;
}

/*
 * GHOST_IMPORT_BECOME: the caller is the stub. First, while it can still
 * back out, it makes the new process's children and forks the helper that
 * will take it over (through an intermediate that exits at once, so that
 * the new process never finds the helper among its children); then it runs
 * stub_main() and is never back. Returns 1 in the helper, < 0 in the caller
 * as it was.
 */
static int become_stub(struct import_ctx *c)
{
	sigset_t all, old;
	size_t made = 0;
	int st, r, subreaper = 0, dumpable = 1;
	pid_t mid;

	/* What stub_main() will do that can fail, checked while the caller can
	 * still back out. */
	if (c->by_exec) {
		r = check_turn_without_root(c);
		if (r < 0)
			return r;
	}
	if ((c->flags & GHOST_IMPORT_SESSION) && c->proc.sid == c->proc.pid &&
	    getsid(0) != getpid() && getpgid(0) == getpid())
		return ghost_fail(c->g, -EPERM,
				  "the caller cannot lead a session: it leads a process group");
	if (access(c->cwd, X_OK) < 0)
		return ghost_fail(c->g, -errno, "cannot change to the working directory '%s': %m",
				  c->cwd);
	if (strcmp(c->root, "/") != 0 && access(c->root, X_OK) < 0)
		return ghost_fail(c->g, -errno, "cannot change the root directory to '%s': %m",
				  c->root);

	/* Without root, its helper may trace it only if it is dumpable (one
	 * that changed its IDs is not); the image says what it is to be. */
	if (c->by_exec) {
		dumpable = prctl(PR_GET_DUMPABLE);
		if (dumpable != 1 && prctl(PR_SET_DUMPABLE, 1) < 0)
			return ghost_fail(c->g, -errno, "cannot let the helper trace the caller: %m");
	}
	/* A child subreaper would get the helper back as its child: as a new
	 * process, the caller is none (an image does not say it was one). */
	(void)prctl(PR_GET_CHILD_SUBREAPER, &subreaper);
	if (subreaper)
		(void)prctl(PR_SET_CHILD_SUBREAPER, 0);
	/* As stub_main() would: the children start with every signal blocked. */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	for (; c->opts && made < c->opts->n_children; made++)
		if (stub_make_child(&c->opts->children[made]) < 0) {
			pid_t kid = c->opts->children[made].pid;

			r = -errno;
			if (r == -EEXIST)
				r = ghost_fail(c->g, GHOST_EPIDBUSY,
					       "PID %d for a child of the new process is in use", kid);
			else
				r = ghost_fail(c->g, r, "cannot make child %d of the new process: %s",
					       kid, ghost_strerror(r));
			goto undo;
		}
	/* The image is mapped out of reach of forks (io.c): the helper needs it.
	 * (A private file mapping costs the forks nothing; a memory buffer, its
	 * page tables.) */
	{
		uintptr_t lo = (uintptr_t)c->image & ~(uintptr_t)(PAGE_SIZE_X - 1);
		uintptr_t hi = ((uintptr_t)c->image + c->image_len + PAGE_SIZE_X - 1) &
			       ~(uintptr_t)(PAGE_SIZE_X - 1);

		if (madvise((void *)lo, hi - lo, MADV_DOFORK) < 0) {
			r = ghost_fail(c->g, -errno, "cannot share the image with the helper: %m");
			goto undo;
		}
	}
	mid = fork();
	if (mid == 0) {
		pid_t helper = fork();

		if (helper == 0) {
			c->stub = c->pid;
			sigprocmask(SIG_SETMASK, &old, NULL);
			return 1;
		}
		_exit(helper < 0 ? 1 : 0);
	}
	if (mid < 0) {
		r = ghost_fail(c->g, -errno, "fork: %m");
		goto undo;
	}
	while (waitpid(mid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		r = ghost_fail(c->g, -EAGAIN, "cannot fork the helper of the import");
		goto undo;
	}
	stub_main(c);
undo:
	end_children(c, made);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (subreaper)
		(void)prctl(PR_SET_CHILD_SUBREAPER, 1);
	if (dumpable != 1)
		(void)prctl(PR_SET_DUMPABLE, dumpable);
	return r;
}

static int wait_stub_ready(struct import_ctx *c)
{
	struct stub_status st;
	ssize_t n;

	safe_close(c->ready[1]);
	c->ready[1] = -1;
	n = read_full(c->ready[0], &st, sizeof(st));
	if (n != sizeof(st))
		return ghost_fail(c->g, -EIO, "the new process died while being set up");
	if (st.step == STUB_CHILDREN && st.fd >= 0 && c->opts &&
	    (size_t)st.fd < c->opts->n_children) {
		pid_t kid = c->opts->children[st.fd].pid;

		if (st.err == EEXIST)
			return ghost_fail(c->g, GHOST_EPIDBUSY,
					  "PID %d for a child of the new process is in use", kid);
		return ghost_fail(c->g, -st.err, "new process failed making its child %d: %s",
				  kid, ghost_strerror(-st.err));
	}
	if (st.step == STUB_EPOLL)
		return ghost_fail(c->g, -st.err,
				  "new process failed registering fd %d with epoll fd %d: %s", st.tfd,
				  st.fd, ghost_strerror(-st.err));
	if (st.step != STUB_OK)
		return ghost_fail(c->g, -st.err, "new process failed %s: %s",
				  st.step < (int)ARRAY_SIZE(stub_step_name) ? stub_step_name[st.step]
									     : "setting up",
				  ghost_strerror(-st.err));
	return 0;
}

/* --- building the address space from outside ------------------------------------------- */

static int inj(struct import_ctx *c, const char *what, long nr, uint64_t a1, uint64_t a2,
	       uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, long *ret)
{
	long v;
	int r = tracee_syscall(&c->t, nr, a1, a2, a3, a4, a5, a6, &v);

	if (r < 0)
		return ghost_fail(c->g, r, "cannot run %s in the new process: %s", what,
				  ghost_strerror(r));
	if (v < 0 && v > -4096)
		return ghost_fail(c->g, (int)v, "%s in the new process failed: %s", what,
				  ghost_strerror((int)v));
	if (ret)
		*ret = v;
	return 0;
}

static bool vma_is_special(uint32_t kind)
{
	return kind == IMG_VMA_VDSO || kind == IMG_VMA_VVAR || kind == IMG_VMA_VVAR_VCLOCK;
}

static bool vma_has_pages(uint32_t kind)
{
	return kind == IMG_VMA_ANON || kind == IMG_VMA_ANON_SHARED || kind == IMG_VMA_HEAP ||
	       kind == IMG_VMA_STACK || kind == IMG_VMA_FILE_PRIVATE;
}

/* Move the stub's vDSO block (vvar, vvar_vclock, vdso) where the image had it. */
static int place_vdso(struct import_ctx *c, const struct proc_maps *sm)
{
	struct {
		uint64_t start, end;
		uint32_t kind;
	} cur[4], want[4];
	size_t ncur = 0, nwant = 0;
	uint64_t lo = UINT64_MAX, hi = 0, ilo = UINT64_MAX;
	int r;

	for (size_t i = 0; i < sm->n && ncur < 4; i++) {
		const char *p = sm->vma[i].path;
		uint32_t kind = !p				      ? 0
				: strcmp(p, "[vdso]") == 0	      ? IMG_VMA_VDSO
				: strcmp(p, "[vvar]") == 0	      ? IMG_VMA_VVAR
				: strcmp(p, "[vvar_vclock]") == 0 ? IMG_VMA_VVAR_VCLOCK
								  : 0;
		if (!kind)
			continue;
		cur[ncur].start = sm->vma[i].start;
		cur[ncur].end = sm->vma[i].end;
		cur[ncur++].kind = kind;
		lo = MIN(lo, sm->vma[i].start);
		hi = MAX(hi, sm->vma[i].end);
	}
	for (size_t i = 0; i < c->nvmas && nwant < 4; i++)
		if (vma_is_special(c->vmas[i].kind)) {
			want[nwant].start = c->vmas[i].start;
			want[nwant].end = c->vmas[i].end;
			want[nwant++].kind = c->vmas[i].kind;
			ilo = MIN(ilo, c->vmas[i].start);
		}
	if (!ncur)
		return ghost_fail(c->g, GHOST_EUNSUPPORTED, "the new process has no vDSO");
	if (ncur != nwant)
		return ghost_fail(c->g, GHOST_EKERNEL, "the vDSO layout of this kernel differs from the image's");
	for (size_t i = 0; i < ncur; i++)
		if (cur[i].kind != want[i].kind || cur[i].end - cur[i].start != want[i].end - want[i].start ||
		    cur[i].start - lo != want[i].start - ilo)
			return ghost_fail(c->g, GHOST_EKERNEL,
					  "the vDSO layout of this kernel differs from the image's");

	/* Everything but the vDSO block goes: the syscall instruction lives there. */
	r = inj(c, "munmap", SYS_munmap, 0, lo, 0, 0, 0, 0, NULL);
	if (r >= 0 && hi < TASK_SIZE_X)
		r = inj(c, "munmap", SYS_munmap, hi, TASK_SIZE_X - hi, 0, 0, 0, 0, NULL);
	if (r < 0)
		return r;
	if (ilo == lo)
		return 0;
	{
		uint64_t size = hi - lo;
		/* A stop-over address clear of both the current and the wanted block. */
		uint64_t tmp = (ilo > lo ? lo : ilo + size) + 0;
		int64_t delta;

		tmp = ALIGN_DOWN((MAX(hi, ilo + size) + (1ull << 30)), 1ull << 21);
		if (tmp + size > TASK_SIZE_X)
			tmp = ALIGN_DOWN(MIN(lo, ilo) - size - (1ull << 30), 1ull << 21);
		for (int pass = 0; pass < 2; pass++) {
			uint64_t from = pass == 0 ? lo : tmp;
			uint64_t to = pass == 0 ? tmp : ilo;

			for (size_t i = 0; i < ncur; i++) {
				uint64_t len = cur[i].end - cur[i].start;
				uint64_t src = from + (cur[i].start - lo);
				uint64_t dst = to + (cur[i].start - lo);

				r = inj(c, "mremap of the vDSO", SYS_mremap, src, len, len,
					MREMAP_MAYMOVE | MREMAP_FIXED, dst, 0, NULL);
				if (r < 0)
					return r;
			}
			delta = (int64_t)to - (int64_t)from;
			c->t.syscall_ip = (uint64_t)((int64_t)c->t.syscall_ip + delta);
		}
	}
	return 0;
}

static int map_vmas(struct import_ctx *c)
{
	for (size_t i = 0; i < c->nvmas; i++) {
		const struct img_vma *v = &c->vmas[i];
		uint64_t prot = v->prot, flags = MAP_FIXED;
		int64_t fd = -1;
		uint64_t off = 0;
		int r;

		if (vma_is_special(v->kind))
			continue;
		if (vma_has_pages(v->kind))
			prot |= PROT_WRITE;
		switch (v->kind) {
		case IMG_VMA_ANON_SHARED:
			flags |= MAP_SHARED | MAP_ANONYMOUS;
			break;
		case IMG_VMA_FILE_PRIVATE:
			flags |= MAP_PRIVATE;
			fd = c->vma_fds[i];
			off = v->pgoff;
			break;
		case IMG_VMA_FILE_SHARED:
			flags |= MAP_SHARED;
			fd = c->vma_fds[i];
			off = v->pgoff;
			break;
		default:
			flags |= MAP_PRIVATE | MAP_ANONYMOUS;
			if (v->flags & IMG_VMAF_GROWSDOWN)
				flags |= MAP_GROWSDOWN;
			break;
		}
		r = inj(c, "mmap", SYS_mmap, v->start, v->end - v->start, prot, flags,
			(uint64_t)fd, off, NULL);
		if (r < 0)
			return ghost_fail(c->g, r, "cannot map %#llx-%#llx%s%s",
					  (unsigned long long)v->start, (unsigned long long)v->end,
					  c->vma_paths[i] ? " of " : "",
					  c->vma_paths[i] ? c->vma_paths[i] : "");
		/* Huge pages or not decide how the pages are allocated: before the
		 * first one is (the other advice waits until the pages are in). */
		if (v->flags & (IMG_VMAF_HUGEPAGE | IMG_VMAF_NOHUGEPAGE)) {
			r = inj(c, "madvise", SYS_madvise, v->start, v->end - v->start,
				(v->flags & IMG_VMAF_HUGEPAGE) ? MADV_HUGEPAGE : MADV_NOHUGEPAGE, 0,
				0, 0, NULL);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static ssize_t find_vma(const struct import_ctx *c, uint64_t addr)
{
	size_t lo = 0, hi = c->nvmas;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (addr < c->vmas[mid].start)
			hi = mid;
		else if (addr >= c->vmas[mid].end)
			lo = mid + 1;
		else
			return (ssize_t)mid;
	}
	return -1;
}

static int populate_add(struct populate *p, uint64_t start, uint64_t end)
{
	uint64_t size = p->order == POP_DOWN ? POPULATE_CHUNK_DOWN : POPULATE_CHUNK;

	while (start < end) {
		uint64_t e = MIN(end, start + size);

		if (p->n == p->cap) {
			size_t ncap = p->cap ? p->cap * 2 : 64;
			struct populate_chunk *nc = reallocarray(p->chunk, ncap, sizeof(*nc));

			if (!nc)
				return -ENOMEM;
			p->chunk = nc;
			p->cap = ncap;
		}
		p->chunk[p->n++] = (struct populate_chunk){ start, e };
		start = e;
	}
	return 0;
}

/* The coalesced run [start, end), cut to the mappings that hold pages; too
 * small runs are not worth an injection. */
static int populate_add_run(struct import_ctx *c, uint64_t start, uint64_t end)
{
	struct populate *p = &c->pop;

	if (end - start < POPULATE_MIN)
		return 0;
	for (size_t i = 0; i < c->nvmas && start < end; i++) {
		const struct img_vma *v = &c->vmas[i];
		uint64_t s = MAX(start, v->start), e = MIN(end, v->end);
		int r;

		if (v->end <= start || !vma_has_pages(v->kind) || s >= e ||
		    (c->vma_uffd && c->vma_uffd[i]))
			continue;
		/* Chunks stay ascending: a run below the last one is dropped. */
		if (p->n && s < p->chunk[p->n - 1].end)
			continue;
		r = populate_add(p, s, e);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Plan the range [start, end) of pages that will come; runs arrive in address
 * order. populate_plan_end() closes the last one. */
static int populate_note(struct import_ctx *c, uint64_t start, uint64_t end)
{
	struct populate *p = &c->pop;
	int r = 0;

	if (start != p->run_end || p->run_end == p->run_start) {
		r = populate_add_run(c, p->run_start, p->run_end);
		p->run_start = start;
	}
	p->run_end = end;
	return r;
}

static int populate_plan_end(struct import_ctx *c)
{
	struct populate *p = &c->pop;
	int r = populate_add_run(c, p->run_start, p->run_end);

	p->run_start = p->run_end = 0;
	if (p->order == POP_DOWN)
		p->next = p->n;
	return r;
}

/* Walk the image mapped whole for the ranges its page records fill. */
static int populate_plan(struct import_ctx *c, const void *all, size_t len)
{
	const char *base = all;
	struct img_file_header fh;
	size_t pos;
	int r;

	c->pop.order = POP_UP;
	memcpy(&fh, base, sizeof(fh));
	for (pos = fh.header_size; pos + sizeof(struct img_rec_header) <= len;) {
		struct img_rec_header rh;
		struct img_pages pg;

		memcpy(&rh, base + pos, sizeof(rh));
		if (rh.type == IMG_REC_END || rh.len > len - pos - sizeof(rh))
			break;
		if (rh.type == IMG_REC_PAGES && rh.len >= sizeof(pg)) {
			memcpy(&pg, base + pos + sizeof(rh), sizeof(pg));
			r = populate_note(c, pg.vaddr, pg.vaddr + (uint64_t)pg.npages * PAGE_SIZE_X);
			if (r < 0)
				return r;
		}
		pos += sizeof(rh) + rh.len;
	}
	return populate_plan_end(c);
}

/* A verified PAGEMAP record of a stream: plan its runs. */
static int populate_plan_pagemap(struct import_ctx *c, const struct img_record *rec)
{
	const struct img_pagemap *pm = rec->payload;
	const uint8_t *runs = (const uint8_t *)(pm + 1);

	c->pop.order = POP_DOWN;
	for (uint32_t i = 0; i < pm->count; i++) {
		struct img_page_run run;
		int r;

		memcpy(&run, runs + (size_t)i * sizeof(run), sizeof(run));
		if (run.vaddr >= TASK_SIZE_X || run.npages > (TASK_SIZE_X - run.vaddr) / PAGE_SIZE_X)
			continue; /* not ours to populate; PAGES will say what is wrong */
		r = populate_note(c, run.vaddr, run.vaddr + run.npages * PAGE_SIZE_X);
		if (r < 0)
			return r;
	}
	return 0;
}

static size_t inflight_index(const struct populate *p)
{
	return p->order == POP_UP ? p->next : p->next - 1;
}

static void populate_finish_one(struct import_ctx *c)
{
	struct populate *p = &c->pop;
	long ret;

	if (!p->inflight)
		return;
	p->inflight = false;
	/* A failed populate only costs speed: the copy faults the pages in itself. */
	if (tracee_syscall_finish(&c->t, &ret) < 0 || ret < 0)
		log_debug("populating %#llx-%#llx failed, ignoring",
			  (unsigned long long)p->chunk[inflight_index(p)].start,
			  (unsigned long long)p->chunk[inflight_index(p)].end);
	if (p->order == POP_UP)
		p->next++;
	else
		p->next--;
}

static void populate_start_next(struct import_ctx *c)
{
	struct populate *p = &c->pop;
	const struct populate_chunk *k;

	if (p->inflight)
		return;
	if (p->order == POP_UP ? p->next >= p->n
			       : p->next <= p->floor || p->chunk[p->next - 1].start < p->copied)
		return;
	k = &p->chunk[p->order == POP_UP ? p->next : p->next - 1];
	if (tracee_syscall_start(&c->t, SYS_madvise, k->start, k->end - k->start,
				 MADV_POPULATE_WRITE_, 0, 0, 0) == 0)
		p->inflight = true;
	else if (p->order == POP_UP)
		p->next++;
	else
		p->next--;
}

/* Without waiting: if the chunk in flight is done, start the next one. */
static void populate_pump(void *userdata)
{
	struct import_ctx *c = userdata;
	struct populate *p = &c->pop;
	long ret;
	int r;

	if (!p->inflight)
		return;
	r = tracee_syscall_poll(&c->t, &ret);
	if (r == 0)
		return;
	p->inflight = false;
	if (p->order == POP_UP)
		p->next++;
	else
		p->next--;
	if (r > 0)
		populate_start_next(c);
}

/* Before copying into [start, end). POP_UP: every chunk below end is
 * populated, and the next one is on its way. POP_DOWN: the stub is not
 * working on [start, end) any more, and takes no chunk at or below it. */
static void populate_ensure(struct import_ctx *c, uint64_t start, uint64_t end)
{
	struct populate *p = &c->pop;

	if (p->order == POP_UP) {
		while (p->next < p->n && p->chunk[p->next].start < end) {
			populate_start_next(c);
			populate_finish_one(c);
		}
		populate_start_next(c);
		return;
	}
	while (p->floor < p->next && p->chunk[p->floor].end <= end)
		p->floor++;
	p->copied = MAX(p->copied, end);
	populate_pump(c);
	if (p->inflight) {
		const struct populate_chunk *k = &p->chunk[p->next - 1];

		if (k->start < end && start < k->end) {
			populate_finish_one(c);
			populate_start_next(c);
		}
	} else {
		populate_start_next(c);
	}
}

static void populate_drain(struct import_ctx *c)
{
	populate_finish_one(c);
}

/* --- pages into private anonymous memory by UFFDIO_COPY --------------------------------- */

static bool vma_takes_uffd(const struct img_vma *v)
{
	return (v->kind == IMG_VMA_ANON || v->kind == IMG_VMA_HEAP || v->kind == IMG_VMA_STACK) &&
	       !(v->flags & IMG_VMAF_HUGEPAGE);
}

/* Chunks planned for population before the mappings were registered: drop
 * those in registered mappings (populating them would fail on EFAULT). */
static void populate_forget_uffd(struct import_ctx *c)
{
	struct populate *p = &c->pop;
	size_t n = 0;

	for (size_t i = 0; i < p->n; i++) {
		ssize_t k = find_vma(c, p->chunk[i].start);

		if (k < 0 || !c->vma_uffd[k])
			p->chunk[n++] = p->chunk[i];
	}
	p->n = n;
	p->next = p->order == POP_DOWN ? n : 0;
}

/*
 * Open a userfaultfd in the new process and register its private anonymous
 * mappings, after map_vmas() and before any page is copied or populated.
 * Returns < 0 only for a failed injection (the stub is then unusable); a
 * userfaultfd the kernel refuses leaves c->uffd at -1: the pages are written.
 */
static int uffd_setup(struct import_ctx *c)
{
	struct uffdio_api api = { .api = UFFD_API };
	_cleanup_close_ int pidfd = -1;
	size_t nreg = 0;
	long fd;
	int r;

	for (size_t i = 0; i < c->nvmas && !nreg; i++)
		nreg += vma_takes_uffd(&c->vmas[i]);
	if (!nreg)
		return 0;
	r = tracee_syscall(&c->t, SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY_,
			   0, 0, 0, 0, 0, &fd);
	if (r < 0)
		return ghost_fail(c->g, r, "cannot run userfaultfd in the new process: %s",
				  ghost_strerror(r));
	if (fd < 0) {
		log_debug("no userfaultfd in the new process (%s): pages are written",
			  ghost_strerror((int)fd));
		return 0;
	}
	pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
	if (pidfd >= 0)
		c->uffd = (int)syscall(SYS_pidfd_getfd, pidfd, (int)fd, 0);
	r = inj(c, "close", SYS_close, (uint64_t)fd, 0, 0, 0, 0, 0, NULL);
	if (r < 0)
		return r;
	if (c->uffd < 0 || ioctl(c->uffd, UFFDIO_API, &api) < 0) {
		log_debug_errno(-errno, "cannot take the new process's userfaultfd: pages are written");
		c->uffd = safe_close(c->uffd);
		return 0;
	}
	c->vma_uffd = NEW_ARRAY(bool, c->nvmas);
	if (!c->vma_uffd)
		return ghost_fail(c->g, -ENOMEM, "out of memory");
	for (size_t i = 0; i < c->nvmas; i++) {
		struct uffdio_register reg = {
			.range = { c->vmas[i].start, c->vmas[i].end - c->vmas[i].start },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};

		if (!vma_takes_uffd(&c->vmas[i]))
			continue;
		if (ioctl(c->uffd, UFFDIO_REGISTER, &reg) == 0)
			c->vma_uffd[i] = true;
		else
			log_debug_errno(-errno, "cannot register %#llx-%#llx with userfaultfd",
					(unsigned long long)c->vmas[i].start,
					(unsigned long long)c->vmas[i].end);
	}
	populate_forget_uffd(c);
	return 0;
}

/* Copy len bytes (whole pages) to addr of a registered mapping. */
static int uffd_copy(struct import_ctx *c, uint64_t addr, const void *data, uint64_t len)
{
	uint64_t done = 0;

	while (done < len) {
		struct uffdio_copy u = {
			.dst = addr + done,
			.src = (uint64_t)(uintptr_t)data + done,
			.len = len - done,
			.mode = UFFDIO_COPY_MODE_DONTWAKE,
		};

		if (ioctl(c->uffd, UFFDIO_COPY, &u) == 0)
			return 0;
		if (u.copy > 0)
			done += (uint64_t)u.copy;
		else if (errno == EEXIST)
			return corrupt(c, "page data given twice or out of address order");
		else if (errno != EAGAIN && errno != EINTR)
			return -errno;
	}
	return 0;
}

/* After the last page: the mappings go back to ordinary faults. */
static void uffd_done(struct import_ctx *c)
{
	c->uffd = safe_close(c->uffd);
}

static int write_pages(struct import_ctx *c, const struct img_record *rec, uint64_t total)
{
	const struct img_pages *p = rec->payload;
	uint64_t len = (uint64_t)p->npages * PAGE_SIZE_X;
	ssize_t k = find_vma(c, p->vaddr);
	int r;

	if (k < 0 || p->vaddr + len > c->vmas[k].end || !vma_has_pages(c->vmas[k].kind))
		return corrupt(c, "page data outside the mappings that may hold it");
	/* An export writes each page once, in address order; a page copied in
	 * once is there for good (UFFDIO_COPY refuses a second copy). */
	if (p->vaddr < c->pages_end)
		return corrupt(c, "page data given twice or out of address order");
	c->pages_end = p->vaddr + len;
	if (c->uffd >= 0 && c->vma_uffd[k]) {
		r = uffd_copy(c, p->vaddr, p + 1, len);
	} else {
		populate_ensure(c, p->vaddr, p->vaddr + len);
		r = tracee_write_mem(&c->t, p->vaddr, p + 1, len);
	}
	if (r == GHOST_ECORRUPT)
		return r;
	if (r < 0)
		return ghost_fail(c->g, r, "cannot write memory of the new process at %#llx: %s",
				  (unsigned long long)p->vaddr, ghost_strerror(r));
	c->pages += p->npages;
	if (c->opts && c->opts->progress && (c->pages % 16384 < p->npages)) {
		struct ghost_progress prog = { c->pages * PAGE_SIZE_X, total };

		c->opts->progress(&prog, c->opts->userdata);
	}
	return 0;
}

static int finish_vmas(struct import_ctx *c)
{
	static const struct {
		uint32_t flag;
		int advice;
	} adv[] = {
		{ IMG_VMAF_DONTFORK, MADV_DONTFORK },	{ IMG_VMAF_DONTDUMP, MADV_DONTDUMP },
		{ IMG_VMAF_RANDOM, MADV_RANDOM },	{ IMG_VMAF_SEQUENTIAL, MADV_SEQUENTIAL },
		{ IMG_VMAF_WIPEONFORK, MADV_WIPEONFORK },
	};

	for (size_t i = 0; i < c->nvmas; i++) {
		const struct img_vma *v = &c->vmas[i];
		uint64_t len = v->end - v->start;
		int r;

		if (vma_is_special(v->kind))
			continue;
		if (vma_has_pages(v->kind) && !(v->prot & PROT_WRITE)) {
			r = inj(c, "mprotect", SYS_mprotect, v->start, len, v->prot, 0, 0, 0, NULL);
			if (r < 0)
				return r;
		}
		for (size_t a = 0; a < ARRAY_SIZE(adv); a++)
			if (v->flags & adv[a].flag) {
				r = inj(c, "madvise", SYS_madvise, v->start, len, (uint64_t)adv[a].advice,
					0, 0, 0, NULL);
				if (r < 0)
					return r;
			}
	}
	return 0;
}

/*
 * What the execve of exec_program() reset and the stub had done: FD_CLOEXEC,
 * the handlers (with their flags, masks and restorers), the alternate
 * signal stack, the robust futex list and clear_child_tid. Through the
 * scratch mapping at s.
 */
static int redo_after_exec(struct import_ctx *c, uint64_t s)
{
	struct ksigaction all[64];
	stack_t ss = image_altstack(c);
	int r;

	for (size_t i = 0; i < c->fr.nfds; i++) {
		const struct img_fd *f = &c->fr.fds[i];

		if (!(f->fd_flags & FD_CLOEXEC))
			continue;
		r = inj(c, "fcntl(F_SETFD)", SYS_fcntl, f->fd, F_SETFD, FD_CLOEXEC, 0, 0, 0, NULL);
		if (r < 0)
			return r;
	}
	for (int sig = 1; sig <= 64; sig++)
		all[sig - 1] = image_sigaction(c, sig);
	r = tracee_write_mem(&c->t, s, all, sizeof(all));
	if (r < 0)
		return ghost_fail(c->g, r, "cannot write scratch memory: %s", ghost_strerror(r));
	for (int sig = 1; sig <= 64; sig++) {
		long ret;

		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		r = tracee_syscall(&c->t, SYS_rt_sigaction, (uint64_t)sig,
				   s + (uint64_t)(sig - 1) * sizeof(all[0]), 0, 8, 0, 0, &ret);
		if (r < 0)
			return ghost_fail(c->g, r, "cannot set the handler of signal %d: %s", sig,
					  ghost_strerror(r));
		/* As in the stub: a number the kernel has no signal for. */
		if (ret < 0 && ret != -EINVAL)
			return ghost_fail(c->g, (int)ret, "cannot set the handler of signal %d: %s",
					  sig, ghost_strerror((int)ret));
	}
	r = tracee_write_mem(&c->t, s, &ss, sizeof(ss));
	if (r < 0)
		return ghost_fail(c->g, r, "cannot write scratch memory: %s", ghost_strerror(r));
	r = inj(c, "sigaltstack", SYS_sigaltstack, s, 0, 0, 0, 0, 0, NULL);
	if (r >= 0 && c->th.robust_list)
		r = inj(c, "set_robust_list", SYS_set_robust_list, c->th.robust_list,
			c->th.robust_list_len, 0, 0, 0, 0, NULL);
	if (r >= 0)
		r = inj(c, "set_tid_address", SYS_set_tid_address, c->th.clear_child_tid, 0, 0, 0,
			0, 0, NULL);
	return r;
}

static int finish_process(struct import_ctx *c)
{
	struct prctl_mm_map map = {
		.start_code = c->mm.start_code,
		.end_code = c->mm.end_code,
		.start_data = c->mm.start_data,
		.end_data = c->mm.end_data,
		.start_brk = c->mm.start_brk,
		.brk = c->mm.brk,
		.start_stack = c->mm.start_stack,
		.arg_start = c->mm.arg_start,
		.arg_end = c->mm.arg_end,
		.env_start = c->mm.env_start,
		.env_end = c->mm.env_end,
		.auxv_size = c->mm.auxv_len,
		.exe_fd = c->exe_fd >= 0 ? (uint32_t)c->exe_fd : (uint32_t)-1,
	};
	uint64_t s;
	int r;

	r = tracee_scratch_map(&c->t, 0, 4 * PAGE_SIZE_X);
	if (r < 0)
		return ghost_fail(c->g, r, "cannot map a scratch page in the new process: %s",
				  ghost_strerror(r));
	s = c->t.scratch;
	map.auxv = (__u64 *)(uintptr_t)(s + 1024);
	if (c->mm.auxv_len > 2048)
		return corrupt(c, "auxv too long");
	r = tracee_write_mem(&c->t, s, &map, sizeof(map));
	if (r >= 0)
		r = tracee_write_mem(&c->t, s + 1024, c->auxv, c->mm.auxv_len);
	if (r < 0)
		return ghost_fail(c->g, r, "cannot write scratch memory: %s", ghost_strerror(r));
	r = inj(c, "prctl(PR_SET_MM_MAP)", SYS_prctl, PR_SET_MM, PR_SET_MM_MAP, s, sizeof(map), 0, 0,
		NULL);
	if (r < 0)
		return r;

	{
		char comm[16] = { 0 };

		memcpy(comm, c->proc.comm, 15);
		r = tracee_write_mem(&c->t, s, comm, sizeof(comm));
		if (r < 0)
			return ghost_fail(c->g, r, "cannot write scratch memory: %s",
					  ghost_strerror(r));
		r = inj(c, "prctl(PR_SET_NAME)", SYS_prctl, PR_SET_NAME, s, 0, 0, 0, 0, NULL);
		if (r < 0)
			return r;
	}
	if (c->mm.dumpable <= 1) {
		r = inj(c, "prctl(PR_SET_DUMPABLE)", SYS_prctl, PR_SET_DUMPABLE, c->mm.dumpable, 0, 0,
			0, 0, NULL);
		if (r < 0)
			return r;
	}
	if (c->mm.thp_disabled) {
		r = inj(c, "prctl(PR_SET_THP_DISABLE)", SYS_prctl, PR_SET_THP_DISABLE, 1, 0, 0, 0, 0,
			NULL);
		if (r < 0)
			return r;
	}
	if (c->have_it)
		for (int w = 0; w < 3; w++) {
			struct itimerval v = {
				.it_interval = { c->it.timer[w].interval_sec,
						 c->it.timer[w].interval_usec },
				.it_value = { c->it.timer[w].value_sec, c->it.timer[w].value_usec },
			};

			if (!v.it_value.tv_sec && !v.it_value.tv_usec)
				continue;
			r = tracee_write_mem(&c->t, s, &v, sizeof(v));
			if (r < 0)
				return ghost_fail(c->g, r, "cannot write scratch memory: %s",
						  ghost_strerror(r));
			r = inj(c, "setitimer", SYS_setitimer, (uint64_t)w, s, 0, 0, 0, 0, NULL);
			if (r < 0)
				return r;
		}

	/* The staged fds, the exe fd and the pipes to us. */
	r = inj(c, "close_range", SYS_close_range, (uint64_t)c->base, ~0u, 0, 0, 0, 0, NULL);
	if (r < 0)
		return r;

	if (c->by_exec) {
		r = redo_after_exec(c, s);
		if (r < 0)
			return r;
	}

	/* Credentials last but rseq: after this the process may lose its privileges.
	 * (A caller turning without root has the image's groups already, and
	 * could not set them: check_turn_without_root().) */
	if (c->creds.ngroups > 512)
		return corrupt(c, "too many supplementary groups");
	r = tracee_write_mem(&c->t, s, c->groups, (size_t)c->creds.ngroups * sizeof(uint32_t));
	if (r < 0)
		return ghost_fail(c->g, r, "cannot write scratch memory: %s", ghost_strerror(r));
	if (!c->by_exec)
		r = inj(c, "setgroups", SYS_setgroups, c->creds.ngroups, s, 0, 0, 0, 0, NULL);
	if (r >= 0)
		r = inj(c, "setresgid", SYS_setresgid, c->creds.gid, c->creds.egid, c->creds.sgid, 0,
			0, 0, NULL);
	if (r >= 0)
		r = inj(c, "setfsgid", SYS_setfsgid, c->creds.fsgid, 0, 0, 0, 0, 0, NULL);
	if (r >= 0)
		r = inj(c, "setresuid", SYS_setresuid, c->creds.uid, c->creds.euid, c->creds.suid, 0,
			0, 0, NULL);
	if (r >= 0)
		r = inj(c, "setfsuid", SYS_setfsuid, c->creds.fsuid, 0, 0, 0, 0, 0, NULL);
	if (r < 0)
		return r;

	if (c->th.rseq_ptr) {
		r = inj(c, "rseq", SYS_rseq, c->th.rseq_ptr, c->th.rseq_len, 0, c->th.rseq_sig, 0, 0,
			NULL);
		if (r < 0)
			return r;
	}
	r = tracee_scratch_unmap(&c->t);
	if (r < 0)
		return ghost_fail(c->g, r, "cannot unmap the scratch page: %s", ghost_strerror(r));
	return 0;
}

/* Limits and scheduling can be set from outside. */
static int finish_outside(struct import_ctx *c)
{
	pid_t pid = c->pid;

	if (c->have_rl)
		for (int i = 0; i < IMG_RLIMITS; i++) {
			struct rlimit64 want = { c->rl.lim[i].cur, c->rl.lim[i].max }, now;

			if (prlimit64(pid, (enum __rlimit_resource)i, NULL, &now) < 0)
				continue;
			if (want.rlim_max > now.rlim_max) {
				/* Raising a hard limit needs CAP_SYS_RESOURCE: keep ours and say so. */
				log_warn("limit %d: hard limit %llu above this one's %llu cannot be restored, keeping %llu",
					 i, (unsigned long long)want.rlim_max,
					 (unsigned long long)now.rlim_max,
					 (unsigned long long)now.rlim_max);
				want.rlim_max = now.rlim_max;
				want.rlim_cur = MIN(want.rlim_cur, want.rlim_max);
			}
			if (prlimit64(pid, (enum __rlimit_resource)i, &want, NULL) < 0)
				return ghost_fail(c->g, -errno, "cannot restore limit %d: %m", i);
		}
	if (c->have_sched) {
		if (setpriority(PRIO_PROCESS, (id_t)pid, c->sched.nice) < 0)
			return ghost_fail(c->g, -errno, "cannot restore nice value %d: %m",
					  c->sched.nice);
		if (c->sched.policy != SCHED_OTHER) {
			struct sched_param sp = { .sched_priority = (int)c->sched.rt_priority };

			if (sched_setscheduler(pid, (int)c->sched.policy, &sp) < 0)
				return ghost_fail(c->g, -errno, "cannot restore scheduling policy %u: %m",
						  c->sched.policy);
		}
		if (sched_setaffinity(pid, sizeof(c->affinity), &c->affinity) < 0)
			return ghost_fail(c->g, -errno, "cannot restore the CPU affinity: %m");
	}
	return 0;
}

static int set_thread_state(struct import_ctx *c)
{
	struct user_regs_struct regs;
	struct iovec iov = { .iov_base = c->xstate, .iov_len = c->th.xstate_len };

	/* As stored: an interrupted system call keeps orig_rax and its -ERESTART*
	 * value, and the kernel restarts it when we let the process go, or turns it
	 * into EINTR if a signal handler runs first (see normalize_regs()). */
	memcpy(&regs, c->th.regs, sizeof(regs));
	if (c->pid != (pid_t)c->proc.pid && c->th.clear_child_tid) {
		int32_t tid = c->pid;
		/* (Through /proc/PID/mem when a helper without root may no longer
		 * write otherwise: the process is not dumpable by now.) */
		int r = tracee_write_mem(&c->t, c->th.clear_child_tid, &tid, sizeof(tid));

		if (r < 0)
			return ghost_fail(c->g, r, "cannot give the copy its TID: %s",
					  ghost_strerror(r));
	}
	if (c->th.xstate_len && ptrace(PTRACE_SETREGSET, c->pid, NT_X86_XSTATE, &iov) < 0)
		return ghost_fail(c->g, -errno, "cannot set the FPU/vector state: %m");
	if (ptrace(PTRACE_SETREGS, c->pid, 0, &regs) < 0)
		return ghost_fail(c->g, -errno, "cannot set the registers: %m");
	if (ptrace(PTRACE_SETSIGMASK, c->pid, sizeof(c->th.sigmask), &c->th.sigmask) < 0)
		return ghost_fail(c->g, -errno, "cannot set the signal mask: %m");
	return 0;
}

/* The stub's maps in sm, and the syscall instruction of its vDSO. */
static int read_stub_maps(struct import_ctx *c, struct proc_maps *sm)
{
	int r = proc_read_maps(c->pid, sm);

	if (r < 0)
		return ghost_fail(c->g, r, "cannot read the maps of the new process: %s",
				  ghost_strerror(r));
	for (size_t i = 0; i < sm->n; i++)
		if (sm->vma[i].path && strcmp(sm->vma[i].path, "[vdso]") == 0)
			r = tracee_find_syscall(&c->t, sm->vma[i].start, sm->vma[i].end);
	if (r < 0 || !c->t.syscall_ip) {
		proc_maps_release(sm);
		return ghost_fail(c->g, r < 0 ? r : -ENOENT, "no syscall instruction in the vDSO");
	}
	return 0;
}

/*
 * A caller turning without root runs the image's executable: the kernel
 * makes it the process's executable (/proc/PID/exe) as for any execve,
 * which PR_SET_MM_MAP would only do with CAP_CHECKPOINT_RESTORE. Not an
 * instruction of it runs (tracee_exec()). What execve keeps (fds without
 * FD_CLOEXEC, session, cwd, umask, pending signals, children) the stub did
 * already; what it resets comes back in redo_after_exec().
 */
static int exec_program(struct import_ctx *c, struct proc_maps *sm)
{
	int r;

	proc_maps_release(sm);
	r = tracee_exec(&c->t, c->exe);
	if (r < 0)
		return ghost_fail(c->g, r, "cannot run '%s' in the new process: %s", c->exe,
				  ghost_strerror(r));
	r = read_stub_maps(c, sm);
	if (r < 0)
		return r;
	/* The program's ELF notes may have changed it (READ_IMPLIES_EXEC). */
	if (c->have_sched)
		r = inj(c, "personality", SYS_personality, c->sched.personality, 0, 0, 0, 0, 0,
			NULL);
	return r;
}

static int take_over(struct import_ctx *c)
{
	struct __ptrace_rseq_configuration rseq = { 0 };
	struct proc_maps sm = { 0 };
	char why[256];
	int r;

	r = tracee_seize(&c->t, c->pid, why, sizeof(why));
	if (r < 0)
		return ghost_fail(c->g, r, "%s", why);
	r = read_stub_maps(c, &sm);
	if (r >= 0 && c->by_exec)
		r = exec_program(c, &sm);
	if (r < 0) {
		proc_maps_release(&sm);
		return r;
	}
	/* The stub inherited our rseq registration; it must go before its memory does. */
	if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, c->pid, sizeof(rseq), &rseq) >= 0 &&
	    rseq.rseq_abi_pointer)
		r = inj(c, "rseq unregister", SYS_rseq, rseq.rseq_abi_pointer, rseq.rseq_abi_size,
			RSEQ_FLAG_UNREGISTER_, rseq.signature, 0, 0, NULL);
	if (r >= 0)
		r = place_vdso(c, &sm);
	proc_maps_release(&sm);
	if (r < 0)
		return r;
	return map_vmas(c);
}

static void kill_stub(struct import_ctx *c)
{
	int st;

	if (c->stub <= 0)
		return;
	/* Its children first, while the stub (not yet reaped) still holds them:
	 * a PID whose parent is the stub is surely one of them. */
	for (size_t i = 0; c->opts && i < c->opts->n_children; i++) {
		struct proc_stat ps;
		pid_t kid = c->opts->children[i].pid;

		if (proc_read_stat(kid, &ps) >= 0 && (pid_t)ps.f[4] == c->stub)
			kill(kid, SIGKILL);
	}
	kill(c->stub, SIGKILL);
	if (c->t.seized) {
		c->t.seized = false;
		tracee_detach(&c->t);
	}
	while (waitpid(c->stub, &st, __WALL) < 0 && errno == EINTR)
		;
	c->stub = 0;
}

static void ctx_release(struct import_ctx *c)
{
	free(c->cwd);
	free(c->exe);
	free(c->root);
	free(c->groups);
	free(c->auxv);
	for (size_t i = 0; i < c->nvmas; i++) {
		free(c->vma_paths[i]);
		if (c->vma_fds)
			safe_close(c->vma_fds[i]);
	}
	free(c->vma_paths);
	free(c->vmas);
	free(c->vma_fds);
	if (c->staged)
		for (size_t i = 0; i < c->fr.nfiles; i++)
			safe_close(c->staged[i]);
	free(c->staged);
	files_restore_release(&c->fr);
	buf_release(&c->sigq_thread);
	buf_release(&c->sigq_shared);
	free(c->xstate);
	free(c->pop.chunk);
	free(c->vma_uffd);
	safe_close(c->uffd);
	safe_close(c->exe_fd);
	for (int k = 0; k < 2; k++) {
		safe_close(c->ready[k]);
		safe_close(c->go[k]);
	}
	tracee_release(&c->t, false, false);
}

int ghost_import(struct ghost *g, const struct ghost_import_opts *opts, pid_t *ret_pid)
{
	struct import_ctx c = {
		.g = g, .opts = opts, .exe_fd = -1, .ready = { -1, -1 }, .go = { -1, -1 },
		.uffd = -1,
	};
	struct img_record rec;
	enum img_reader_flags rflags = 0;
	uint64_t t0 = now_ns(), total = 0;
	int subreaper = 0, r;
	bool have_record = false, reaper_set = false;
	const void *mapped_all = NULL;
	size_t mapped_len = 0;

	if (!g || !ret_pid)
		return -EINVAL;
	g->errmsg[0] = '\0';
	g->stats = (struct ghost_stats){ 0 };
	c.flags = opts ? opts->flags : 0;
	files_restore_init(&c.fr);
	c.t.mem_fd = -1;
	if (c.flags & GHOST_IMPORT_ANY_KERNEL)
		rflags |= IMG_READ_ANY_KERNEL;

	r = ghost_open_io(g, false, false, &c.io);
	if (r < 0)
		goto out;
	{
		const void *all;
		size_t len;

		/* With the whole image at hand, every record is verified before the
		 * pages are copied (below); the reader checks the header now. */
		if (io_map_all(c.io, &all, &len) >= 0) {
			mapped_all = all;
			mapped_len = len;
			total = len;
		}
	}
	if ((c.flags & GHOST_IMPORT_BECOME) && !mapped_all) {
		r = ghost_fail(g, -EINVAL,
			       "to become the process, the caller needs the image whole (memory or "
			       "file)");
		goto out;
	}
	r = img_reader_new(c.io, rflags, &c.rd);
	if (r == GHOST_EKERNEL && mapped_len >= sizeof(struct img_file_header)) {
		const struct img_file_header *h = mapped_all;
		struct utsname u;

		uname(&u);
		ghost_fail(g, r,
			   "image was made on kernel '%.*s', this is '%s' (--any-kernel to try anyway)",
			   (int)strnlen(h->kernel, sizeof(h->kernel)), h->kernel, u.release);
	}
	if (r < 0) {
		ghost_fail(g, r, "image is unusable: %s", ghost_strerror(r));
		goto out;
	}
	for (;;) {
		r = img_read_record(c.rd, &rec);
		if (r < 0) {
			ghost_fail(g, r, "image is unusable: %s", ghost_strerror(r));
			goto out;
		}
		if (r == 0 || rec.type == IMG_REC_PAGES) {
			have_record = r > 0;
			break;
		}
		r = take_record(&c, &rec);
		if (r >= 0 && rec.type == IMG_REC_PAGEMAP && !mapped_all)
			r = populate_plan_pagemap(&c, &rec);
		if (r < 0) {
			if (r == -ENOMEM)
				ghost_fail(g, r, "out of memory");
			goto out;
		}
	}
	if (!mapped_all && populate_plan_end(&c) < 0) {
		r = ghost_fail(g, -ENOMEM, "out of memory");
		goto out;
	}
	c.pid = opts && opts->pid > 0 ? opts->pid : (pid_t)c.proc.pid;
	if (c.flags & GHOST_IMPORT_BECOME) {
		c.become = true;
		if (c.flags & (GHOST_IMPORT_DETACH | GHOST_IMPORT_REPLACE) ||
		    (opts->pid > 0 && opts->pid != getpid())) {
			r = ghost_fail(g, -EINVAL, "the caller can only become the process itself");
			goto out;
		}
		/* Without root, the executable cannot be set from inside: the
		 * caller runs it by execve() (take_over()). */
		c.by_exec = geteuid() != 0;
		c.pid = getpid();
		c.image = mapped_all;
		c.image_len = mapped_len;
		/* All of it, before the caller starts to turn. */
		r = img_verify(mapped_all, mapped_len, rflags);
		if (r < 0) {
			ghost_fail(g, r, "image is unusable: %s", ghost_strerror(r));
			goto out;
		}
		img_reader_set_verified(c.rd);
	}
	r = check_image(&c);
	if (r < 0)
		goto out;
	r = prepare_files(&c);
	if (r < 0)
		goto out;
	if (c.flags & GHOST_IMPORT_DETACH) {
		prctl(PR_GET_CHILD_SUBREAPER, &subreaper);
		/* So that on failure the orphaned stub comes back to us to be reaped. */
		if (!subreaper && prctl(PR_SET_CHILD_SUBREAPER, 1) == 0)
			reaper_set = true;
	}
	r = c.become ? become_stub(&c) : make_stub(&c);
	if (r < 0)
		goto out;
	r = wait_stub_ready(&c);
	if (r < 0)
		goto out;
	r = take_over(&c);
	if (r >= 0)
		r = uffd_setup(&c);
	if (r < 0)
		goto out;
	if (mapped_all && c.become) {
		/* Verified already: the new process allocates ahead of the copy. */
		if (populate_plan(&c, mapped_all, mapped_len) < 0) {
			r = ghost_fail(g, -ENOMEM, "out of memory");
			goto out;
		}
		populate_start_next(&c);
	} else if (mapped_all) {
		/* The new process allocates its memory while we verify every record
		 * (allocation writes zeros, not a byte of the image). */
		if (populate_plan(&c, mapped_all, mapped_len) < 0) {
			r = ghost_fail(g, -ENOMEM, "out of memory");
			goto out;
		}
		populate_start_next(&c);
		r = img_verify_cb(mapped_all, mapped_len, rflags, populate_pump, &c);
		if (r < 0) {
			ghost_fail(g, r, "image is unusable: %s", ghost_strerror(r));
			goto out;
		}
		img_reader_set_verified(c.rd);
	} else {
		/* A stream: the new process allocates what the PAGEMAP records
		 * announced while the pages arrive. */
		populate_start_next(&c);
	}

	/* Pages, streamed: each record is verified before a byte of it is written. */
	while (have_record) {
		if (rec.type == IMG_REC_PAGES) {
			r = write_pages(&c, &rec, total);
			if (r < 0)
				goto out;
		}
		r = img_read_record(c.rd, &rec);
		if (r < 0) {
			ghost_fail(g, r, "image is unusable: %s", ghost_strerror(r));
			goto out;
		}
		have_record = r > 0;
	}
	/* Limits and scheduling before the credentials change: prlimit() on a
	 * process of another user needs CAP_SYS_RESOURCE. */
	populate_drain(&c);
	uffd_done(&c);
	r = finish_vmas(&c);
	if (r >= 0)
		r = finish_outside(&c);
	if (r >= 0)
		r = finish_process(&c);
	if (r >= 0)
		r = set_thread_state(&c);
	if (r < 0)
		goto out;
	if ((c.flags & GHOST_IMPORT_STOPPED) || c.t.sigstop_seen)
		kill(c.pid, SIGSTOP);
	r = tracee_detach(&c.t);
	if (r < 0) {
		ghost_fail(g, r, "cannot let the new process go: %s", ghost_strerror(r));
		goto out;
	}
	*ret_pid = c.pid;
	c.stub = 0;
	g->stats.pages = c.pages;
	g->stats.vmas = c.nvmas;
	g->stats.fds = c.fr.nfds;
	g->stats.image_bytes = io_offset(c.io);
	r = 0;
out:
	if (r < 0)
		kill_stub(&c);
	if (reaper_set)
		prctl(PR_SET_CHILD_SUBREAPER, 0);
	img_reader_free(c.rd);
	io_free(c.io);
	ctx_release(&c);
	g->stats.total_ns = now_ns() - t0;
	if (r < 0 && !g->errmsg[0])
		ghost_fail(g, r, "import failed: %s", ghost_strerror(r));
	return r;
}

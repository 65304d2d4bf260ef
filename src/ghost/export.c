/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * export_process(): read a live single-threaded process from outside and write
 * it as a ghost through the plugged resource access interface, in one pass.
 *
 *   checks -> seize -> mask signals -> scratch page -> injected queries
 *          -> records (process, creds, limits, mm, vmas, files, signals, thread)
 *          -> pages -> END -> let go (resume | stop | kill)
 *
 * Invariant: from seize on, every failure path goes through tracee_release(),
 * which puts the registers and mask back and detaches, so a failed export
 * leaves the process running and untraced. --kill happens only after the
 * interface has been finished without error.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX "export"
#include "base/clock.h"
#include "base/fileio.h"
#include "base/log.h"
#include "ghost/ghost-int.h"
#include "io/io.h"
#include "base/banned.h"

/* PAGEMAP_SCAN (Linux 6.7); Debian 12's headers predate it. */
#ifndef PAGEMAP_SCAN
struct page_region {
	uint64_t start, end, categories;
};
struct pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#endif

#define ERESTARTNOHAND_ 514
#define ERESTART_RESTARTBLOCK_ 516

struct page_run {
	uint64_t start;
	uint64_t npages;
	bool readable;
};

struct export_ctx {
	struct ghost *g;
	pid_t pid;
	unsigned flags;
	struct tracee t;
	struct proc_status st;
	struct proc_stat stat;
	struct proc_maps maps;
	uint32_t *kinds; /* per VMA: enum img_vma_kind, or UINT32_MAX to skip */
	struct page_run *runs;
	size_t nruns, runs_cap;
	uint64_t total_pages;
	struct ghost_io *io;
	struct img_writer *w;
	const struct ghost_export_opts *opts;
};

static int readlink_alloc(const char *path, char **ret)
{
	char buf[4096];
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);

	if (n < 0)
		return -errno;
	buf[n] = '\0';
	*ret = strdup(buf);
	return *ret ? 0 : -ENOMEM;
}

static int inject(struct export_ctx *c, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
		  uint64_t a4, long *ret)
{
	int r = tracee_syscall(&c->t, nr, a1, a2, a3, a4, 0, 0, ret);

	if (r < 0)
		return ghost_fail(c->g, r, "cannot run system call %ld in process %d: %s", nr,
				  c->pid, ghost_strerror(r));
	return 0;
}

/* --- checks before anything is touched ------------------------------------------ */

static int check_target(struct export_ctx *c)
{
	struct ghost *g = c->g;
	int r;

	if (c->pid <= 0)
		return ghost_fail(g, -EINVAL, "invalid PID %d", c->pid);
	if (c->pid == getpid())
		return ghost_fail(g, -EINVAL, "cannot export the calling process itself");
	r = proc_read_status(c->pid, &c->st);
	if (r == -ENOENT || r == -ESRCH)
		return ghost_fail(g, -ESRCH, "no process with PID %d", c->pid);
	if (r < 0)
		return ghost_fail(g, r, "cannot read /proc/%d/status: %s", c->pid, ghost_strerror(r));
	if (c->st.kthread)
		return ghost_fail(g, GHOST_EUNSUPPORTED, "process %d is a kernel thread", c->pid);
	if (c->st.state == 'Z' || c->st.state == 'X')
		return ghost_fail(g, GHOST_EUNSUPPORTED, "process %d is a zombie", c->pid);
	if (c->st.threads > 1)
		return ghost_fail(g, GHOST_EUNSUPPORTED,
				  "process %d has %d threads; multi-threaded processes are not supported yet",
				  c->pid, c->st.threads);
	if (c->st.tracer)
		return ghost_fail(g, -EBUSY, "process %d is already traced by process %d", c->pid,
				  c->st.tracer);
	return 0;
}

/* --- memory layout ---------------------------------------------------------------- */

static int classify_vma(struct export_ctx *c, const struct proc_vma *v, uint32_t *ret)
{
	const char *p = v->path;

	if (p && p[0] == '[') {
		if (strcmp(p, "[vdso]") == 0)
			*ret = IMG_VMA_VDSO;
		else if (strcmp(p, "[vvar]") == 0)
			*ret = IMG_VMA_VVAR;
		else if (strcmp(p, "[vvar_vclock]") == 0)
			*ret = IMG_VMA_VVAR_VCLOCK;
		else if (strcmp(p, "[vsyscall]") == 0)
			*ret = UINT32_MAX;
		else if (strcmp(p, "[heap]") == 0)
			*ret = IMG_VMA_HEAP;
		else if (strcmp(p, "[stack]") == 0)
			*ret = IMG_VMA_STACK;
		else if (strncmp(p, "[anon:", 6) == 0 || strncmp(p, "[anon_shmem:", 12) == 0)
			*ret = v->shared ? IMG_VMA_ANON_SHARED : IMG_VMA_ANON;
		else
			return ghost_fail(c->g, GHOST_EUNSUPPORTED,
					  "process %d has a special mapping %s at %#llx", c->pid, p,
					  (unsigned long long)v->start);
		return 0;
	}
	if (!p || v->ino == 0) {
		*ret = v->shared ? IMG_VMA_ANON_SHARED : IMG_VMA_ANON;
		return 0;
	}
	if (v->deleted) {
		if (v->shared && strcmp(p, "/dev/zero") == 0) {
			*ret = IMG_VMA_ANON_SHARED;
			return 0;
		}
		return ghost_fail(c->g, GHOST_EUNSUPPORTED,
				  "process %d maps the deleted file '%s' at %#llx", c->pid, p,
				  (unsigned long long)v->start);
	}
	*ret = v->shared ? IMG_VMA_FILE_SHARED : IMG_VMA_FILE_PRIVATE;
	return 0;
}

static int add_run(struct export_ctx *c, uint64_t start, uint64_t end, bool readable)
{
	if (c->nruns == c->runs_cap) {
		size_t ncap = c->runs_cap ? c->runs_cap * 2 : 256;
		struct page_run *n = reallocarray(c->runs, ncap, sizeof(*n));

		if (!n)
			return -ENOMEM;
		c->runs = n;
		c->runs_cap = ncap;
	}
	c->runs[c->nruns++] = (struct page_run){ start, (end - start) / PAGE_SIZE_X, readable };
	c->total_pages += (end - start) / PAGE_SIZE_X;
	return 0;
}

/*
 * Find the pages worth storing with PAGEMAP_SCAN: present or swapped, minus the
 * shared zero page (never written), and for private file mappings minus the
 * pages still backed by the file (only copied-on-write pages are ours).
 */
static int scan_pages(struct export_ctx *c, int pagemap_fd, const struct proc_vma *v, uint32_t kind)
{
	struct page_region regs[512];
	uint64_t addr = v->start;
	bool file = kind == IMG_VMA_FILE_PRIVATE;
	int r;

	while (addr < v->end) {
		struct pm_scan_arg arg = {
			.size = sizeof(arg),
			.start = addr,
			.end = v->end,
			.vec = (uint64_t)(uintptr_t)regs,
			.vec_len = ARRAY_SIZE(regs),
			.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
			/* Asking for PAGE_IS_FILE makes the kernel look up every
			 * present page's struct page: 5 of the 9 ms a 1 GiB
			 * anonymous mapping took. Only file mappings need it. */
			.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_PFNZERO |
				       (file ? PAGE_IS_FILE : 0),
		};
		long n = ioctl(pagemap_fd, PAGEMAP_SCAN, &arg);

		if (n < 0)
			return ghost_fail(c->g, -errno, "PAGEMAP_SCAN of process %d failed: %m",
					  c->pid);
		for (long i = 0; i < n; i++) {
			if (regs[i].categories & PAGE_IS_PFNZERO)
				continue;
			if (file && (regs[i].categories & PAGE_IS_FILE))
				continue;
			r = add_run(c, regs[i].start, regs[i].end, v->prot & PROT_READ);
			if (r < 0)
				return ghost_fail(c->g, r, "out of memory");
		}
		if (arg.walk_end <= addr)
			break;
		addr = arg.walk_end;
	}
	return 0;
}

static int write_vmas(struct export_ctx *c)
{
	char path[64];
	_cleanup_close_ int pm = -1;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", c->pid);
	pm = open(path, O_RDONLY | O_CLOEXEC);
	if (pm < 0)
		return ghost_fail(c->g, -errno, "cannot open %s: %m", path);

	c->kinds = NEW_ARRAY(uint32_t, c->maps.n);
	if (!c->kinds)
		return ghost_fail(c->g, -ENOMEM, "out of memory");
	for (size_t i = 0; i < c->maps.n; i++) {
		const struct proc_vma *v = &c->maps.vma[i];
		struct img_vma rec = { 0 };
		const char *p = v->path && v->path[0] != '[' && v->ino ? v->path : NULL;
		uint32_t kind = UINT32_MAX;

		r = classify_vma(c, v, &kind);
		if (r < 0)
			return r;
		c->kinds[i] = kind;
		if (kind == UINT32_MAX)
			continue;
		rec.start = v->start;
		rec.end = v->end;
		rec.pgoff = v->pgoff;
		rec.prot = v->prot;
		rec.kind = kind;
		rec.flags = v->vmflags;
		rec.dev = v->dev;
		rec.ino = v->ino;
		if (kind == IMG_VMA_FILE_PRIVATE || kind == IMG_VMA_FILE_SHARED) {
			struct stat sb;

			if (stat(p, &sb) < 0)
				return ghost_fail(c->g, -errno, "cannot stat mapped file '%s': %m", p);
			if (sb.st_ino != v->ino)
				return ghost_fail(c->g, GHOST_EFILECHANGED,
						  "mapped file '%s' was replaced while mapped", p);
			rec.file_size = (uint64_t)sb.st_size;
			rec.file_mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000ll +
					    sb.st_mtim.tv_nsec;
		} else {
			p = NULL;
		}
		rec.path_len = p ? (uint32_t)strlen(p) : 0;
		r = img_write_record(c->w, IMG_REC_VMA, &rec, sizeof(rec), p, rec.path_len);
		if (r < 0)
			return ghost_fail(c->g, r, "cannot write the image: %s", ghost_strerror(r));

		if (kind == IMG_VMA_ANON || kind == IMG_VMA_ANON_SHARED || kind == IMG_VMA_HEAP ||
		    kind == IMG_VMA_STACK || kind == IMG_VMA_FILE_PRIVATE) {
			r = scan_pages(c, pm, v, kind);
			if (r < 0)
				return r;
		}
	}
	c->g->stats.vmas = c->maps.n;
	return 0;
}

/*
 * Announce the page runs before their data (IMG_REC_PAGEMAP), so that a
 * streaming importer can have the new process allocate its memory while the
 * data is still on its way. Adjacent runs are merged.
 */
static int write_pagemap(struct export_ctx *c)
{
	struct buf runs = BUF_INIT;
	struct img_pagemap pm = { 0 };
	int r = 0;

	for (size_t i = 0; i <= c->nruns; i++) {
		struct img_page_run cur;

		if (i == c->nruns || pm.count == IMG_PAGEMAP_RUNS_PER_REC) {
			if (pm.count) {
				r = img_write_record_flags(c->w, IMG_REC_PAGEMAP, IMG_RECF_OPTIONAL,
							   &pm, sizeof(pm), runs.data, runs.len);
				if (r < 0)
					break;
			}
			pm.count = 0;
			runs.len = 0;
			if (i == c->nruns)
				break;
		}
		cur = (struct img_page_run){ c->runs[i].start, c->runs[i].npages };
		if (pm.count) {
			struct img_page_run *prev =
				(struct img_page_run *)(void *)(runs.data + runs.len - sizeof(*prev));

			if (prev->vaddr + prev->npages * PAGE_SIZE_X == cur.vaddr) {
				prev->npages += cur.npages;
				continue;
			}
		}
		r = buf_append(&runs, &cur, sizeof(cur));
		if (r < 0)
			break;
		pm.count++;
	}
	buf_release(&runs);
	if (r < 0)
		return ghost_fail(c->g, r, "cannot write the image: %s", ghost_strerror(r));
	return 0;
}

/*
 * Pages per PAGES record written (the format allows up to IMG_PAGES_PER_REC):
 * 1 MiB records keep the file writer's ring, where each record is read out of
 * the process and then written out, small enough to stay in cache (file.c).
 */
#define EXPORT_PAGES_PER_REC 256u

static int write_pages(struct export_ctx *c)
{
	uint64_t done = 0;
	struct ghost_progress prog = { 0, c->total_pages * PAGE_SIZE_X };

	for (size_t i = 0; i < c->nruns; i++) {
		const struct page_run *run = &c->runs[i];

		for (uint64_t off = 0; off < run->npages;) {
			uint32_t n = (uint32_t)MIN(run->npages - off, (uint64_t)EXPORT_PAGES_PER_REC);
			uint64_t addr = run->start + off * PAGE_SIZE_X;
			void *data;
			int r;

			r = img_write_pages_begin(c->w, addr, n, &data);
			if (r < 0)
				return ghost_fail(c->g, r, "cannot write the image: %s",
						  ghost_strerror(r));
			r = tracee_read_mem(&c->t, addr, data, (size_t)n * PAGE_SIZE_X);
			if (r < 0)
				return ghost_fail(c->g, r,
						  "cannot read memory of process %d at %#llx: %s",
						  c->pid, (unsigned long long)addr, ghost_strerror(r));
			r = img_write_pages_commit(c->w);
			if (r < 0)
				return ghost_fail(c->g, r, "cannot write the image: %s",
						  ghost_strerror(r));
			off += n;
			done += n;
			if (c->opts && c->opts->progress && (done % 16384 < n || done == c->total_pages)) {
				prog.done = done * PAGE_SIZE_X;
				c->opts->progress(&prog, c->opts->userdata);
			}
		}
	}
	c->g->stats.pages = done;
	return 0;
}

/* --- process-wide state ------------------------------------------------------------ */

static int write_process(struct export_ctx *c, uint32_t flags)
{
	char path[64];
	_cleanup_free_ char *cwd = NULL, *exe = NULL, *root = NULL;
	struct img_process p = { 0 };
	struct stat sb;
	struct buf var = BUF_INIT;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/cwd", c->pid);
	r = readlink_alloc(path, &cwd);
	if (r < 0)
		return ghost_fail(c->g, r, "cannot read the cwd of process %d: %s", c->pid,
				  ghost_strerror(r));
	snprintf(path, sizeof(path), "/proc/%d/exe", c->pid);
	r = readlink_alloc(path, &exe);
	if (r < 0)
		return ghost_fail(c->g, r, "cannot read the executable of process %d: %s", c->pid,
				  ghost_strerror(r));
	if (stat(path, &sb) < 0)
		return ghost_fail(c->g, -errno, "cannot stat the executable of process %d: %m",
				  c->pid);
	snprintf(path, sizeof(path), "/proc/%d/root", c->pid);
	r = readlink_alloc(path, &root);
	if (r < 0)
		return ghost_fail(c->g, r, "cannot read the root of process %d: %s", c->pid,
				  ghost_strerror(r));
	if (strstr(cwd, " (deleted)") || strstr(exe, " (deleted)"))
		return ghost_fail(c->g, GHOST_EUNSUPPORTED,
				  "process %d has a deleted %s ('%s')", c->pid,
				  strstr(cwd, " (deleted)") ? "working directory" : "executable",
				  strstr(cwd, " (deleted)") ? cwd : exe);

	p.pid = (uint32_t)c->pid;
	p.ppid = (uint32_t)c->stat.f[4];
	p.pgid = (uint32_t)c->stat.f[5];
	p.sid = (uint32_t)c->stat.f[6];
	p.nthreads = 1;
	p.flags = flags;
	p.umask = c->st.umask;
	p.exit_signal = (uint32_t)c->stat.f[38];
	memcpy(p.comm, c->stat.comm, sizeof(p.comm));
	p.exe_size = (uint64_t)sb.st_size;
	p.exe_mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000ll + sb.st_mtim.tv_nsec;
	p.cwd_len = (uint32_t)strlen(cwd);
	p.exe_len = (uint32_t)strlen(exe);
	p.root_len = (uint32_t)strlen(root);
	r = buf_append(&var, cwd, p.cwd_len);
	if (r >= 0)
		r = buf_append(&var, exe, p.exe_len);
	if (r >= 0)
		r = buf_append(&var, root, p.root_len);
	if (r >= 0)
		r = img_write_record(c->w, IMG_REC_PROCESS, &p, sizeof(p), var.data, var.len);
	buf_release(&var);
	if (r < 0)
		return ghost_fail(c->g, r, "cannot write the image: %s", ghost_strerror(r));
	return 0;
}

/*
 * Limits from /proc/PID/limits: prlimit() on a process of another user needs
 * CAP_SYS_RESOURCE, which root may lack. Lines follow the resource numbers, with
 * the soft and hard values at fixed columns ("%-25s %-20s %-20s").
 */
static int read_limits(struct export_ctx *c, struct img_rlimits *rl)
{
	struct buf b = BUF_INIT;
	char path[64];
	char *line, *next;
	int i = -1, r;

	snprintf(path, sizeof(path), "/proc/%d/limits", c->pid);
	r = read_file_at(AT_FDCWD, path, &b);
	if (r < 0) {
		buf_release(&b);
		return ghost_fail(c->g, r, "cannot read %s: %s", path, ghost_strerror(r));
	}
	for (line = b.data; line && *line; line = next, i++) {
		uint64_t v[2];

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (i < 0)
			continue; /* the heading */
		if (i >= IMG_RLIMITS || strlen(line) < 47)
			break;
		for (int k = 0; k < 2; k++) {
			const char *f = line + 26 + 21 * k;

			if (strncmp(f, "unlimited", 9) == 0)
				v[k] = RLIM64_INFINITY;
			else
				v[k] = strtoull(f, NULL, 10);
		}
		rl->lim[i].cur = v[0];
		rl->lim[i].max = v[1];
	}
	buf_release(&b);
	if (i != IMG_RLIMITS)
		return ghost_fail(c->g, -EPROTO, "cannot parse %s", path);
	return 0;
}

static int write_creds_limits_sched(struct export_ctx *c)
{
	struct img_creds cr = { 0 };
	struct img_rlimits rl = { 0 };
	struct img_sched sc = { 0 };
	cpu_set_t cpus;
	struct buf b = BUF_INIT;
	char path[64];
	int r;

	cr.uid = c->st.uid[0];
	cr.euid = c->st.uid[1];
	cr.suid = c->st.uid[2];
	cr.fsuid = c->st.uid[3];
	cr.gid = c->st.gid[0];
	cr.egid = c->st.gid[1];
	cr.sgid = c->st.gid[2];
	cr.fsgid = c->st.gid[3];
	cr.cap_inh = c->st.cap_inh;
	cr.cap_prm = c->st.cap_prm;
	cr.cap_eff = c->st.cap_eff;
	cr.cap_bnd = c->st.cap_bnd;
	cr.cap_amb = c->st.cap_amb;
	cr.ngroups = c->st.ngroups;
	r = img_write_record(c->w, IMG_REC_CREDS, &cr, sizeof(cr), c->st.groups,
			     (size_t)c->st.ngroups * sizeof(uint32_t));
	if (r < 0)
		goto io_fail;

	r = read_limits(c, &rl);
	if (r < 0)
		return r;
	r = img_write_record(c->w, IMG_REC_RLIMITS, &rl, sizeof(rl), NULL, 0);
	if (r < 0)
		goto io_fail;

	errno = 0;
	sc.nice = getpriority(PRIO_PROCESS, (id_t)c->pid);
	if (errno)
		return ghost_fail(c->g, -errno, "cannot read the nice value of process %d: %m",
				  c->pid);
	{
		int pol = sched_getscheduler(c->pid);
		struct sched_param sp;

		if (pol < 0 || sched_getparam(c->pid, &sp) < 0)
			return ghost_fail(c->g, -errno, "cannot read the scheduler of process %d: %m",
					  c->pid);
		sc.policy = (uint32_t)pol;
		sc.rt_priority = (uint32_t)sp.sched_priority;
	}
	snprintf(path, sizeof(path), "/proc/%d/personality", c->pid);
	r = read_file_at(AT_FDCWD, path, &b);
	if (r < 0) {
		buf_release(&b);
		return ghost_fail(c->g, r, "cannot read %s: %s", path, ghost_strerror(r));
	}
	sc.personality = (uint32_t)strtoul(b.data, NULL, 16);
	buf_release(&b);
	CPU_ZERO(&cpus);
	if (sched_getaffinity(c->pid, sizeof(cpus), &cpus) < 0)
		return ghost_fail(c->g, -errno, "cannot read the CPU affinity of process %d: %m",
				  c->pid);
	sc.affinity_len = sizeof(cpus);
	r = img_write_record(c->w, IMG_REC_SCHED, &sc, sizeof(sc), &cpus, sizeof(cpus));
	if (r < 0)
		goto io_fail;
	return 0;
io_fail:
	return ghost_fail(c->g, r, "cannot write the image: %s", ghost_strerror(r));
}

static int write_mm(struct export_ctx *c)
{
	struct img_mm mm = { 0 };
	struct buf auxv = BUF_INIT;
	char path[64];
	long brk_now;
	int r;

	r = inject(c, SYS_brk, 0, 0, 0, 0, &brk_now);
	if (r < 0)
		return r;
	mm.start_code = c->stat.f[26];
	mm.end_code = c->stat.f[27];
	mm.start_stack = c->stat.f[28];
	mm.start_data = c->stat.f[45];
	mm.end_data = c->stat.f[46];
	mm.start_brk = c->stat.f[47];
	mm.brk = (uint64_t)brk_now;
	mm.arg_start = c->stat.f[48];
	mm.arg_end = c->stat.f[49];
	mm.env_start = c->stat.f[50];
	mm.env_end = c->stat.f[51];
	{
		long d;

		r = inject(c, SYS_prctl, PR_GET_DUMPABLE, 0, 0, 0, &d);
		if (r < 0)
			return r;
		mm.dumpable = (uint32_t)d;
		r = inject(c, SYS_prctl, PR_GET_THP_DISABLE, 0, 0, 0, &d);
		if (r < 0)
			return r;
		mm.thp_disabled = (uint64_t)d;
	}
	snprintf(path, sizeof(path), "/proc/%d/auxv", c->pid);
	r = read_file_at(AT_FDCWD, path, &auxv);
	if (r < 0) {
		buf_release(&auxv);
		return ghost_fail(c->g, r, "cannot read %s: %s", path, ghost_strerror(r));
	}
	mm.auxv_len = (uint32_t)(auxv.len & ~(size_t)15);
	r = img_write_record(c->w, IMG_REC_MM, &mm, sizeof(mm), auxv.data, mm.auxv_len);
	buf_release(&auxv);
	if (r < 0)
		return ghost_fail(c->g, r, "cannot write the image: %s", ghost_strerror(r));
	return 0;
}

/* Kernel struct sigaction layout for rt_sigaction. */
struct ksigaction {
	uint64_t handler, flags, restorer, mask;
};

static int write_signals(struct export_ctx *c)
{
	struct img_sigactions sa = { 0 };
	struct img_itimers it = { 0 };
	long ret;
	int r;

	for (int sig = 1; sig <= 64; sig++) {
		struct ksigaction k;

		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		r = inject(c, SYS_rt_sigaction, (uint64_t)sig, 0, c->t.scratch, 8, &ret);
		if (r < 0)
			return r;
		if (ret < 0)
			return ghost_fail(c->g, (int)ret, "cannot read the handler of signal %d: %s",
					  sig, ghost_strerror((int)ret));
		r = tracee_read_mem(&c->t, c->t.scratch, &k, sizeof(k));
		if (r < 0)
			return ghost_fail(c->g, r, "cannot read scratch memory: %s",
					  ghost_strerror(r));
		sa.act[sig - 1] = (struct img_sigaction){ k.handler, k.flags, k.restorer, k.mask };
	}
	r = img_write_record(c->w, IMG_REC_SIGACTIONS, &sa, sizeof(sa), NULL, 0);
	if (r < 0)
		goto io_fail;

	/* Pending signals, the process-wide queue and the thread's own. */
	for (int shared = 0; shared <= 1; shared++) {
		struct img_sigpending sp = { .shared = (uint32_t)shared, .tid = (uint32_t)c->pid };
		siginfo_t si[64];
		struct buf all = BUF_INIT;

		for (uint64_t off = 0;; off += ARRAY_SIZE(si)) {
			struct __ptrace_peeksiginfo_args a = {
				.off = off,
				.flags = shared ? PTRACE_PEEKSIGINFO_SHARED : 0,
				.nr = ARRAY_SIZE(si),
			};
			long n = ptrace(PTRACE_PEEKSIGINFO, c->pid, &a, si);

			if (n < 0) {
				buf_release(&all);
				return ghost_fail(c->g, -errno,
						  "cannot read pending signals of process %d: %m",
						  c->pid);
			}
			if (n == 0)
				break;
			r = buf_append(&all, si, (size_t)n * sizeof(siginfo_t));
			if (r < 0) {
				buf_release(&all);
				return ghost_fail(c->g, r, "out of memory");
			}
			if (n < (long)ARRAY_SIZE(si))
				break;
		}
		sp.count = (uint32_t)(all.len / sizeof(siginfo_t));
		r = img_write_record(c->w, IMG_REC_SIGPENDING, &sp, sizeof(sp), all.data, all.len);
		buf_release(&all);
		if (r < 0)
			goto io_fail;
	}

	for (int which = 0; which < 3; which++) {
		struct itimerval v;

		r = inject(c, SYS_getitimer, (uint64_t)which, c->t.scratch, 0, 0, &ret);
		if (r < 0)
			return r;
		if (ret < 0)
			return ghost_fail(c->g, (int)ret, "cannot read interval timer %d: %s", which,
					  ghost_strerror((int)ret));
		r = tracee_read_mem(&c->t, c->t.scratch, &v, sizeof(v));
		if (r < 0)
			return ghost_fail(c->g, r, "cannot read scratch memory: %s",
					  ghost_strerror(r));
		it.timer[which].interval_sec = v.it_interval.tv_sec;
		it.timer[which].interval_usec = v.it_interval.tv_usec;
		it.timer[which].value_sec = v.it_value.tv_sec;
		it.timer[which].value_usec = v.it_value.tv_usec;
		/* A periodic timer whose signal is still pending reads 0 until the
		 * kernel reloads it at delivery; restoring 0 would disarm it. */
		if (!v.it_value.tv_sec && !v.it_value.tv_usec) {
			it.timer[which].value_sec = v.it_interval.tv_sec;
			it.timer[which].value_usec = v.it_interval.tv_usec;
		}
	}
	r = img_write_record(c->w, IMG_REC_ITIMERS, &it, sizeof(it), NULL, 0);
	if (r < 0)
		goto io_fail;
	return 0;
io_fail:
	return ghost_fail(c->g, r, "cannot write the image: %s", ghost_strerror(r));
}

/*
 * Registers as the restored process must see them. They are kept as the kernel
 * left them at the stop: an interrupted system call shows orig_rax = its number
 * and rax = -ERESTART*, and the importer resumes the new process from a ptrace
 * stop, so the kernel's own restart logic runs on them: the call is restarted,
 * or returns EINTR when a handler runs first, exactly as it would have here.
 * Only ERESTART_RESTARTBLOCK needs care, as the restart block itself stays in
 * this kernel: calls that can simply run again with the same arguments (poll
 * without timeout, absolute clock_nanosleep) become ERESTARTNOHAND; the others
 * (relative sleeps, poll with a timeout) return EINTR, as CRIU does.
 */
static void normalize_regs(struct user_regs_struct *regs)
{
	long nr = (long)regs->orig_rax;
	bool rerun;

	if (nr < 0 || (long)regs->rax != -ERESTART_RESTARTBLOCK_)
		return;
	rerun = (nr == SYS_poll && (int)regs->rdx < 0) || (nr == SYS_ppoll && regs->rdx == 0) ||
		(nr == SYS_clock_nanosleep && (regs->rsi & TIMER_ABSTIME));
	if (rerun) {
		regs->rax = (uint64_t)-ERESTARTNOHAND_;
	} else {
		regs->rax = (uint64_t)-EINTR;
		regs->orig_rax = (uint64_t)-1;
	}
}

static int write_thread(struct export_ctx *c)
{
	struct img_thread th = { .tid = (uint32_t)c->pid };
	struct __ptrace_rseq_configuration rseq = { 0 };
	struct user_regs_struct regs = c->t.regs;
	stack_t ss;
	long ret;
	int r;

	normalize_regs(&regs);
	_Static_assert(sizeof(regs) == sizeof(th.regs), "user_regs_struct size");
	memcpy(th.regs, &regs, sizeof(th.regs));
	th.sigmask = c->t.sigmask;
	th.xstate_len = (uint32_t)c->t.xstate_len;

	r = inject(c, SYS_sigaltstack, 0, c->t.scratch, 0, 0, &ret);
	if (r < 0)
		return r;
	if (ret < 0)
		return ghost_fail(c->g, (int)ret, "cannot read the signal stack of process %d: %s",
				  c->pid, ghost_strerror((int)ret));
	r = tracee_read_mem(&c->t, c->t.scratch, &ss, sizeof(ss));
	if (r < 0)
		return ghost_fail(c->g, r, "cannot read scratch memory: %s", ghost_strerror(r));
	th.altstack_sp = (uint64_t)(uintptr_t)ss.ss_sp;
	th.altstack_size = ss.ss_size;
	th.altstack_flags = (uint32_t)ss.ss_flags;

	r = inject(c, SYS_prctl, PR_GET_TID_ADDRESS, c->t.scratch, 0, 0, &ret);
	if (r < 0)
		return r;
	if (ret < 0)
		return ghost_fail(c->g, (int)ret, "cannot read the tid address of process %d: %s",
				  c->pid, ghost_strerror((int)ret));
	r = tracee_read_mem(&c->t, c->t.scratch, &th.clear_child_tid, sizeof(th.clear_child_tid));
	if (r < 0)
		return ghost_fail(c->g, r, "cannot read scratch memory: %s", ghost_strerror(r));

	{
		uint64_t head = 0;
		size_t len = 0;

		if (syscall(SYS_get_robust_list, c->pid, &head, &len) < 0)
			return ghost_fail(c->g, -errno, "cannot read the robust list of process %d: %m",
					  c->pid);
		th.robust_list = head;
		th.robust_list_len = len;
	}
	if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, c->pid, sizeof(rseq), &rseq) < 0)
		return ghost_fail(c->g, -errno, "cannot read the rseq registration of process %d: %m",
				  c->pid);
	th.rseq_ptr = rseq.rseq_abi_pointer;
	th.rseq_len = rseq.rseq_abi_size;
	th.rseq_sig = rseq.signature;

	r = img_write_record(c->w, IMG_REC_THREAD, &th, sizeof(th), c->t.xstate, c->t.xstate_len);
	if (r < 0)
		return ghost_fail(c->g, r, "cannot write the image: %s", ghost_strerror(r));
	return 0;
}

static int find_vdso_syscall(struct export_ctx *c)
{
	for (size_t i = 0; i < c->maps.n; i++) {
		const struct proc_vma *v = &c->maps.vma[i];

		if (v->path && strcmp(v->path, "[vdso]") == 0) {
			int r = tracee_find_syscall(&c->t, v->start, v->end);

			if (r < 0)
				return ghost_fail(c->g, r,
						  "no system call instruction in the vDSO of process %d",
						  c->pid);
			return 0;
		}
	}
	return ghost_fail(c->g, GHOST_EUNSUPPORTED, "process %d has no vDSO", c->pid);
}

int ghost_export(struct ghost *g, pid_t pid, const struct ghost_export_opts *opts)
{
	struct export_ctx c = { .g = g, .pid = pid, .opts = opts };
	struct files_dump_opts fo = { 0 };
	uint64_t t0 = now_ns(), t_frozen = 0;
	char why[256];
	bool ok = false;
	int r;

	if (!g)
		return -EINVAL;
	g->errmsg[0] = '\0';
	g->stats = (struct ghost_stats){ 0 };
	c.flags = opts ? opts->flags : 0;
	fo.shell_job = c.flags & GHOST_EXPORT_SHELL_JOB;
	fo.drop_unsupported = c.flags & GHOST_EXPORT_DROP_UNSUPPORTED;
	if (opts && opts->n_carried) {
		if (!opts->carried_fds)
			return ghost_fail(g, -EINVAL, "carried fds announced but not given");
		for (size_t i = 0; i < opts->n_carried; i++)
			if (opts->carried_fds[i] < 0)
				return ghost_fail(g, -EINVAL, "invalid carried fd %d",
						  opts->carried_fds[i]);
		fo.carried = opts->carried_fds;
		fo.n_carried = opts->n_carried;
	}
	if ((c.flags & GHOST_EXPORT_KILL) && (c.flags & GHOST_EXPORT_STOP))
		return ghost_fail(g, -EINVAL, "--kill and --stop exclude each other");

	r = check_target(&c);
	if (r < 0)
		goto out;

	r = tracee_seize(&c.t, pid, why, sizeof(why));
	if (r < 0) {
		ghost_fail(g, r, "%s", why);
		goto out;
	}
	t_frozen = now_ns();
	/* Read again now that it cannot change under us. */
	proc_status_release(&c.st);
	r = proc_read_status(pid, &c.st);
	if (r >= 0)
		r = proc_read_stat(pid, &c.stat);
	if (r >= 0)
		r = proc_read_maps(pid, &c.maps);
	if (r < 0) {
		ghost_fail(g, r, "cannot read /proc/%d: %s", pid, ghost_strerror(r));
		goto out;
	}
	r = tracee_block_signals(&c.t);
	if (r < 0) {
		ghost_fail(g, r, "cannot block signals in process %d: %s", pid, ghost_strerror(r));
		goto out;
	}
	r = find_vdso_syscall(&c);
	if (r < 0)
		goto out;
	r = tracee_scratch_map(&c.t, 0, PAGE_SIZE_X);
	if (r < 0) {
		ghost_fail(g, r, "cannot map a scratch page in process %d: %s", pid,
			   ghost_strerror(r));
		goto out;
	}

	r = ghost_open_io(g, true, c.flags & GHOST_EXPORT_SYNC, &c.io);
	if (r < 0)
		goto out;
	r = img_writer_new(c.io, &c.w);
	if (r < 0) {
		ghost_fail(g, r, "cannot write the image header: %s", ghost_strerror(r));
		goto out;
	}
	r = write_process(&c, fo.shell_job ? IMG_PROC_SHELL_JOB : 0);
	if (r >= 0)
		r = write_creds_limits_sched(&c);
	if (r >= 0)
		r = write_mm(&c);
	if (r >= 0)
		r = write_vmas(&c);
	if (r >= 0)
		r = files_dump(g, c.w, pid, &fo, &g->stats.fds);
	if (r >= 0)
		r = write_signals(&c);
	if (r >= 0)
		r = write_thread(&c);
	if (r >= 0)
		r = write_pagemap(&c);
	if (r >= 0)
		r = write_pages(&c);
	if (r >= 0) {
		r = img_writer_finish(c.w);
		if (r < 0)
			ghost_fail(g, r, "cannot finish the image: %s", ghost_strerror(r));
	}
	if (r < 0)
		goto out;
	g->stats.image_bytes = io_offset(c.io);
	ok = true;
out:
	if (c.t.seized) {
		tracee_release(&c.t, ok && (c.flags & GHOST_EXPORT_STOP),
			       ok && (c.flags & GHOST_EXPORT_KILL));
		g->stats.frozen_ns = now_ns() - t_frozen;
	} else {
		tracee_release(&c.t, false, false);
	}
	img_writer_free(c.w);
	io_free(c.io);
	proc_status_release(&c.st);
	proc_maps_release(&c.maps);
	free(c.kinds);
	free(c.runs);
	g->stats.total_ns = now_ns() - t0;
	if (r < 0 && !g->errmsg[0])
		ghost_fail(g, r, "export of process %d failed: %s", pid, ghost_strerror(r));
	return r < 0 ? r : 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internals of the ghost engine, shared by its files only: the traced-process
 * handle (ptrace.c), /proc readers (procfs.c), file descriptors (files.c),
 * epoll instances (epoll.c), export (export.c) and import (import.c).
 */
#ifndef GHOST_GHOST_INT_H
#define GHOST_GHOST_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "base/buf.h"
#include "ghost/ghost.h"
#include "image/image.h"

#define PAGE_SIZE_X 4096ul
#define TASK_SIZE_X 0x7ffffffff000ul /* x86-64 with 4-level page tables */
#define XSTATE_MAX (16u << 10)

/* --- the ghost object -------------------------------------------------------- */

struct ghost {
	enum ghost_access access;
	bool plugged;
	struct ghost_buffer *buffer;
	int fd; /* borrowed */
	struct ghost_stats stats;
	char errmsg[512];
};

/* Record "what failed: why" for ghost_errmsg() and return r (a negative code). */
int ghost_fail(struct ghost *g, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Open the interface the ghost is plugged into, in the given direction. */
int ghost_open_io(struct ghost *g, bool writing, bool sync, struct ghost_io **ret);

/* --- a traced process (ptrace.c) ------------------------------------------------ */

/*
 * A process we hold stopped under PTRACE_SEIZE. Undo of every step:
 *   seized            -> tracee_release(): original registers and mask back, detach
 *   signals masked    -> original mask restored by tracee_release()
 *   scratch mapped    -> tracee_scratch_unmap() (called by tracee_release())
 */
struct tracee {
	pid_t pid;
	bool seized;
	bool regs_dirty;    /* registers were changed by injection */
	bool mask_dirty;    /* blocked mask was changed */
	struct user_regs_struct regs; /* as found at seize time */
	uint64_t sigmask;             /* as found at seize time */
	uint64_t syscall_ip;          /* address of a `syscall` instruction in the tracee */
	uint64_t scratch;             /* injected scratch mapping, 0 if none */
	size_t scratch_len;
	uint8_t *xstate;
	size_t xstate_len;
	int mem_fd; /* /proc/PID/mem, for memory without read permission */
	bool in_syscall; /* an injected system call was started and not finished */
	long syscall_nr;
	bool have_pending_status; /* its stop was collected by tracee_syscall_poll() */
	int pending_status;
	bool sigstop_seen; /* a SIGSTOP arrived during an injection: sent again at release */
};

/* Seize and stop pid; registers, xstate and mask are read into t. On failure
 * nothing is left traced. */
int tracee_seize(struct tracee *t, pid_t pid, char *why, size_t why_len);
/* Block every signal in the tracee while we work (undone by tracee_release). */
int tracee_block_signals(struct tracee *t);
/* Find a syscall instruction in [start, end) of the tracee (its vDSO). */
int tracee_find_syscall(struct tracee *t, uint64_t start, uint64_t end);
/* Run one system call in the tracee; its return value (-errno on error) in *ret. */
int tracee_syscall(struct tracee *t, long nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
		   uint64_t a5, uint64_t a6, long *ret);
/* The same in two halves: the tracee runs the call while we do other work
 * (nothing but tracee_syscall_finish() may touch it with ptrace meanwhile). */
int tracee_syscall_start(struct tracee *t, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
			 uint64_t a4, uint64_t a5, uint64_t a6);
int tracee_syscall_finish(struct tracee *t, long *ret);
/* Without waiting: 1 and *ret when the call finished, 0 while it runs, < 0 on error. */
int tracee_syscall_poll(struct tracee *t, long *ret);
/* Have the tracee execve() path (argv {path}, no environment), held before the
 * first instruction of the new program; -errno of a failed execve. */
int tracee_exec(struct tracee *t, const char *path);
int tracee_scratch_map(struct tracee *t, uint64_t hint, size_t len);
int tracee_scratch_unmap(struct tracee *t);
/* Copy to/from the tracee's memory. */
int tracee_write_mem(struct tracee *t, uint64_t addr, const void *data, size_t len);
int tracee_read_mem(struct tracee *t, uint64_t addr, void *data, size_t len);
/* Put the original registers and mask back and detach; the process runs on
 * (or stays stopped with stop=true, or dies with kill=true). Never fails the caller. */
void tracee_release(struct tracee *t, bool stop, bool kill);
/* Detach with the registers currently set (used after an import). */
int tracee_detach(struct tracee *t);
/* Process pid, which we trace, has ended: collect the report its tracer gets,
 * so its real parent is told, unless we are that parent too (then the end is
 * left for our own waitpid()). */
void tracee_collect_exit(pid_t pid);

/* --- /proc (procfs.c) ------------------------------------------------------------ */

struct proc_vma {
	uint64_t start, end, pgoff;
	uint32_t prot;
	bool shared;
	uint64_t dev, ino;
	char *path;       /* NULL for anonymous; "[heap]" style names are kept */
	uint32_t vmflags; /* enum img_vma_flags from VmFlags */
	bool deleted;
};

struct proc_maps {
	struct proc_vma *vma;
	size_t n;
};

int proc_read_maps(pid_t pid, struct proc_maps *ret);
void proc_maps_release(struct proc_maps *m);

struct proc_status {
	char state;
	int threads;
	uint32_t uid[4], gid[4];
	uint32_t *groups;
	uint32_t ngroups;
	uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb;
	uint32_t umask;
	uint64_t sig_ign, sig_cgt;
	pid_t ppid, tracer;
	bool kthread;
};

int proc_read_status(pid_t pid, struct proc_status *ret);
void proc_status_release(struct proc_status *s);

/* Fields 4..52 of /proc/PID/stat, by their stat(5) number (index 1 = pid). */
struct proc_stat {
	uint64_t f[53];
	char comm[16];
};
int proc_read_stat(pid_t pid, struct proc_stat *ret);

/* --- epoll instances (epoll.c) -------------------------------------------------- */

struct stat;

/* One registration of an epoll instance, as /proc/PID/fdinfo shows it. */
struct ep_tfd {
	int tfd;         /* the fd number it was registered under */
	unsigned toff;   /* registrations listed before it with the same tfd */
	uint32_t events; /* as the kernel keeps them (EPOLLERR, EPOLLHUP added) */
	uint64_t data;
	uint64_t ino;    /* the registered file's inode and device (st_dev) */
	dev_t dev;
};

/* "anon_inode:[eventpoll]": a /proc/PID/fd link of an epoll instance. */
bool ep_is_link(const char *link);
/* An EPOLLONESHOT registration that fired: it waits for nothing. */
bool ep_disarmed(uint32_t events);
/* The registrations of epoll fd epfd of (stopped) process pid, in the order
 * fdinfo lists them; *ret is malloc()ed (NULL when there are none). */
int ep_tfds_read(pid_t pid, int epfd, struct ep_tfd **ret, size_t *ret_n);
/* 1 when registration t of epfd is for the file now at fd t->tfd of pid (sb:
 * that fd's stat), 0 when that fd holds another file (the registered one
 * was closed there or replaced since), -errno when it cannot tell. */
int ep_tfd_is_current(pid_t pid, int epfd, const struct ep_tfd *t, const struct stat *sb);

/* A registration of the file at some fd, in the epoll instance at epfd. */
struct ep_watch {
	int epfd;
	uint32_t events;
	uint64_t data;
};

/* The epoll instances process pid holds, each once whatever its number of
 * fds: one fd number of each; *ret is malloc()ed (NULL when there are none). */
int ep_instances_of(pid_t pid, int **ret, size_t *ret_n);
/* Every registration of the file now at fd (sb: its stat) under fd, in the
 * epoll instances at instances[0..ninst) (from ep_instances_of()); *ret is
 * malloc()ed (NULL when there are none). */
int ep_watchers_of(pid_t pid, const int *instances, size_t ninst, int fd, const struct stat *sb,
		   struct ep_watch **ret, size_t *ret_n);

/* A registration to make in a new process: every fd is at its number. */
struct ep_reg {
	int epfd;
	int tfd;
	uint32_t events;
	uint64_t data;
};

/*
 * EPOLL_CTL_ADD of each registration, in order, run by the new process itself
 * (the import stub): async-signal-safe, no allocation. The order must put an
 * instance's registrations after those of every instance it watches, and an
 * instance's disarmed one-shot registrations before its others (they come
 * back disarmed by firing once; see epoll.c). On failure -errno, and the pair
 * that failed in *ret_epfd, *ret_tfd.
 */
int ep_restore(const struct ep_reg *regs, size_t n, int *ret_epfd, int *ret_tfd);

/* --- files (files.c) ----------------------------------------------------------- */

struct files_dump_opts {
	bool shell_job;
	bool drop_unsupported;
	const int *carried; /* fds the caller carries: IMG_FILE_CARRIED, no data */
	size_t n_carried;
};

/* Describe every fd of the (stopped) process as FILE, FILE_DATA and FD records. */
int files_dump(struct ghost *g, struct img_writer *w, pid_t pid, const struct files_dump_opts *o,
	       uint64_t *ret_nfds);

/* An fd the restorer prepared in the engine, to be installed in the new process. */
struct files_plan_fd {
	int target;   /* fd number in the restored process */
	int staged;   /* our fd (>= the staging base) */
	bool cloexec;
};

/* A registration of an EPOLL record, and the instance it belongs to. */
struct files_ep {
	uint32_t epoll_id;
	struct img_epoll_tfd t;
};

struct files_restore {
	struct img_file *files; /* copies of the FILE records */
	char **paths;
	size_t nfiles;
	struct img_fd *fds;
	size_t nfds;
	int *opened;   /* per file, our fd or -1 */
	struct buf *data; /* per file, queued bytes / content */
	struct files_ep *ep; /* epoll registrations, as the image lists them */
	size_t nep;
	struct ep_reg *regs; /* the same, checked and in the order ep_restore() needs */
	size_t nregs;
};

void files_restore_init(struct files_restore *fr);
void files_restore_release(struct files_restore *fr);
int files_restore_add_record(struct ghost *g, struct files_restore *fr, const struct img_record *rec);
/* Check the epoll registrations against the FD records (each fd holds the
 * file it names; each instance has an fd; no key twice; no instance watches
 * itself through others) and order them into fr->regs for ep_restore(). */
int files_restore_plan_epoll(struct ghost *g, struct files_restore *fr);
/* Refuse, naming the lowest such fd, an image with carried fds unless the
 * caller will replace them (GHOST_IMPORT_CARRIED). */
int files_restore_check_carried(struct ghost *g, const struct files_restore *fr, bool allowed);
/* Open every file and pipe, fill queues, check regular files, make empty
 * epoll instances; -errno/GHOST_E* with errmsg.
 * own_stdio: the stdio fds belong to the new process and get the image's O_NONBLOCK.
 * Carried fds get a placeholder: /dev/null with their access mode and status
 * flags, or, for one an epoll instance watches, a pipe of ours with them
 * (epoll cannot watch /dev/null), whose registration ghost_hold_install()
 * then moves to the file that replaces it. */
int files_restore_open(struct ghost *g, struct files_restore *fr, const int stdio[3],
		       bool own_stdio);

#endif

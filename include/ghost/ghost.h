/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Ghost engine: process virtualization after the Ghost Process report
 * (Vallée et al., INRIA RR-5510). A running process is *exported* into a ghost;
 * a ghost is *imported* to make a live process again. Where the ghost's bytes
 * go is a resource access interface plugged into the ghost: memory, file or
 * network. Checkpoint, restart, migration and duplication are short
 * compositions of these calls:
 *
 *	struct ghost *g;
 *	ghost_new(&g);                             create_new_ghost()
 *	ghost_plug(g, GHOST_FILE_WRITE);           plug_resource_interface()
 *	ghost_associate_file(g, fd);               associate_file_to_ghost()
 *	ghost_export(g, pid, &opts);               export_process()
 *	ghost_free(g);
 *
 * All calls return >= 0 on success, a negative errno or GHOST_E* code on
 * failure; ghost_errmsg() then says what failed and why in one line. A failed
 * export leaves the process running and untraced; a failed import leaves no
 * process behind.
 *
 * The engine must run with CAP_SYS_PTRACE (export) and CAP_CHECKPOINT_RESTORE
 * or CAP_SYS_ADMIN (import keeps the PID through clone3 set_tid).
 */
#ifndef GHOST_GHOST_H
#define GHOST_GHOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ghost/error.h"

struct ghost;
struct ghost_buffer;

/* The resource access interfaces (Listing 1: the api_id). */
enum ghost_access {
	GHOST_MEMORY_WRITE,
	GHOST_MEMORY_READ,
	GHOST_FILE_WRITE,
	GHOST_FILE_READ,
	GHOST_NET_SEND, /* an already-connected stream socket */
	GHOST_NET_RECV,
	_GHOST_ACCESS_MAX,
	_GHOST_ACCESS_INVALID = -22,
};

int ghost_new(struct ghost **ret);
/* Accepts NULL; returns NULL. Closes nothing the caller associated. */
struct ghost *ghost_free(struct ghost *g);

/* Choose the interface; then associate its resource. */
int ghost_plug(struct ghost *g, enum ghost_access access);
/* Memory buffer (Listing 2); the ghost takes a reference. */
int ghost_buffer_new(size_t size_hint, struct ghost_buffer **ret);
struct ghost_buffer *ghost_buffer_ref(struct ghost_buffer *b);
struct ghost_buffer *ghost_buffer_unref(struct ghost_buffer *b);
size_t ghost_buffer_size(const struct ghost_buffer *b);
const void *ghost_buffer_data(const struct ghost_buffer *b);
int ghost_associate_buffer(struct ghost *g, struct ghost_buffer *b);
/* File (Listing 4/5) or socket: the fd is borrowed until ghost_free(). */
int ghost_associate_file(struct ghost *g, int fd);
int ghost_associate_socket(struct ghost *g, int fd);

enum ghost_export_flags {
	GHOST_EXPORT_KILL = 1 << 0,      /* SIGKILL the process after a successful export */
	GHOST_EXPORT_STOP = 1 << 1,      /* leave it stopped (SIGSTOP) after the export */
	GHOST_EXPORT_SHELL_JOB = 1 << 2, /* terminals and outside pipes on fds become stdio */
	GHOST_EXPORT_SYNC = 1 << 3,      /* fsync a file interface at the end */
	GHOST_EXPORT_DROP_UNSUPPORTED = 1 << 4, /* drop fds the engine cannot carry, don't refuse */
};

struct ghost_progress {
	uint64_t done, total; /* bytes of page data */
};
typedef void (*ghost_progress_fn)(const struct ghost_progress *p, void *userdata);

struct ghost_export_opts {
	unsigned flags; /* enum ghost_export_flags */
	ghost_progress_fn progress;
	void *userdata;
	/*
	 * Fds the caller carries itself (the streams of a migration: pipes,
	 * sockets or FIFOs it moves on its own). Each is recorded with its
	 * number, FD_CLOEXEC, status flags and what it was, and no data,
	 * whatever it is: never refused, and never an outside pipe or stdio
	 * for GHOST_EXPORT_SHELL_JOB. Every fd must be open in the process, and
	 * an fd sharing an open file description (or a pipe or socketpair) with
	 * a carried fd in the process must be carried too. Importing the image
	 * needs GHOST_IMPORT_CARRIED.
	 */
	const int *carried_fds;
	size_t n_carried;
};

struct ghost_stats {
	uint64_t image_bytes;
	uint64_t pages;      /* pages stored */
	uint64_t vmas;
	uint64_t fds;
	uint64_t frozen_ns;  /* time the process was stopped */
	uint64_t total_ns;
};

/* Export the process into the plugged interface. */
int ghost_export(struct ghost *g, pid_t pid, const struct ghost_export_opts *opts);

enum ghost_import_flags {
	GHOST_IMPORT_DETACH = 1 << 0,  /* the new process is not left a child of the caller */
	GHOST_IMPORT_REPLACE = 1 << 1, /* SIGKILL a live process holding the PID first */
	GHOST_IMPORT_ANY_KERNEL = 1 << 2,
	GHOST_IMPORT_STOPPED = 1 << 3, /* leave the new process stopped (SIGSTOP) */
	/* If the process led its session in the image (sid == pid), the new one
	 * leads a new session too (setsid()), and the first terminal among its
	 * shell-job stdio becomes its controlling terminal. */
	GHOST_IMPORT_SESSION = 1 << 4,
	/* opts->stdio are the new process's own (not the restarter's): they get
	 * the image's O_NONBLOCK. */
	GHOST_IMPORT_OWN_STDIO = 1 << 5,
	/*
	 * The caller replaces the image's carried fds (ghost_export_opts.
	 * carried_fds): each gets a placeholder at its number with its
	 * FD_CLOEXEC, /dev/null opened with its access mode, O_APPEND and
	 * O_NONBLOCK (ghost_hold_take() of it tells them), or a pipe so
	 * opened when an epoll instance of the image watches it (epoll cannot
	 * watch /dev/null; the install moves the registration), for the caller to
	 * swap with ghost_hold_install() before the process runs (with
	 * GHOST_IMPORT_STOPPED, then SIGCONT). Without it, an image with
	 * carried fds is refused before any process is made.
	 */
	GHOST_IMPORT_CARRIED = 1 << 6,
	/*
	 * The caller itself becomes the process, keeping its PID, its parent
	 * and its children: what a migration needs when the PID is held by a
	 * process whose place in the family nothing else can take (a parent
	 * stand-in whose children the arriving parent must have). The image
	 * must be at hand whole (memory or file interface): every record is
	 * verified before the caller changes. Not with DETACH, REPLACE or a pid
	 * other than the caller's. See ghost_import() for where it returns.
	 *
	 * A caller that is not root (effective UID) turns by the kernel's rules
	 * for any process: it runs the image's executable by execve() (held by
	 * its helper before the program's first instruction, so that the
	 * kernel, not a capability, sets /proc/PID/exe), and is refused up
	 * front what would need a capability: opts->children (their PIDs),
	 * IDs or supplementary groups other than its own, another root
	 * directory, a lower nice value than RLIMIT_NICE allows, a real-time
	 * policy. It must be able to read the executable. It is made dumpable
	 * for its helper (the image sets what it is to be).
	 */
	GHOST_IMPORT_BECOME = 1 << 7,
};

/*
 * A child the new process has from its start (ghost_import_opts.children):
 * cloned by the new process itself with PID pid (clone3 set_tid), before
 * anything of the image is put in, so that the new process is its parent as
 * if it had forked it. It runs the program at path with argv and an empty
 * environment, with the caller's credentials, every signal blocked, fds 0-2
 * of the caller and no other. A migration uses it to give a moved parent
 * stand-ins of the children it left behind.
 */
struct ghost_import_child {
	pid_t pid;
	const char *path;
	const char *const *argv;
};

struct ghost_import_opts {
	unsigned flags; /* enum ghost_import_flags */
	/* The caller's credentials: the image's must be assumable by them.
	 * caller_uid == 0 may assume anything. */
	uid_t caller_uid;
	gid_t caller_gid;
	/* stdio for IMG_FILE_STDIO fds (shell job); -1 for /dev/null. An fd
	 * that shared one open file description with others in the image
	 * (a terminal on 0, 1 and 2) gets stdio[the lowest of those fds]. */
	int stdio[3];
	/* How long to wait for an unreaped PID to come free, in ms. */
	unsigned pid_wait_ms;
	/* 0: the image's PID. Else make the process with this PID instead (a
	 * duplicate: remote fork); as fork() does with CLONE_CHILD_SETTID, the
	 * new TID is written where the image's clear_child_tid points, which is
	 * where the C library keeps the thread's own TID. */
	pid_t pid;
	/* Its children from the start (see struct ghost_import_child). A PID
	 * still in use after 3 s fails the import (GHOST_EPIDBUSY), as does a
	 * program that cannot be run; a failed import leaves none of them
	 * behind. */
	const struct ghost_import_child *children;
	size_t n_children;
	ghost_progress_fn progress;
	void *userdata;
};

/*
 * Import the ghost from the plugged interface; the new process's PID in ret_pid.
 * Unless GHOST_IMPORT_DETACH, the new process is a child of the caller.
 *
 * Side effects on the caller: the new process is cloned from the calling
 * process, so call it from a single-threaded process; the caller's soft
 * RLIMIT_NOFILE is raised to its hard limit (files are staged at high fd
 * numbers); a dead, unreaped child of the caller holding the PID to restore is
 * reaped; with GHOST_IMPORT_DETACH the caller is a child subreaper for the
 * duration of the call.
 */
int ghost_import(struct ghost *g, const struct ghost_import_opts *opts, pid_t *ret_pid);

/*
 * With GHOST_IMPORT_BECOME, ghost_import() returns in one process only:
 *
 *  - in the caller, on a failure before the caller was touched: < 0, and the
 *    caller is as it was (its signal mask, fds and children included; the
 *    soft RLIMIT_NOFILE excepted, as always);
 *  - else in a helper process that did the import: forked from the caller
 *    (so getpid() tells which one is returning) and not its child, it
 *    returns 0 once the caller is the image's process (its PID in ret_pid;
 *    with GHOST_IMPORT_STOPPED it is held stopped), or < 0 if the import
 *    failed after the caller had started turning: the caller was killed then.
 *    The helper holds copies of the caller's fds and has every signal blocked:
 *    it should report and _exit() at once.
 *
 * The caller's children from before stay its children, and the new process
 * finds them as its own; opts->children are made by the caller before it
 * changes. Signals pending on the caller stay pending for the new process.
 * Everything of the caller but its PID, parent, children, pending signals and
 * process group is replaced (its session too, with GHOST_IMPORT_SESSION).
 */

/*
 * Make process pid run the program at path with argv (and an empty
 * environment) in its place, as if it had called execve itself: it keeps its
 * PID, parent, credentials and descriptors without FD_CLOEXEC, and starts
 * with every signal blocked (what was pending stays pending). A process that
 * was stopped stays stopped. On failure the process is left exactly as it
 * was, and why holds one line.
 */
int ghost_replace_program(pid_t pid, const char *path, const char *const argv[], char *why,
			  size_t why_len);

/*
 * Make process pid, stopped, end its child child (SIGKILL) and reap it, as if
 * it had called kill() and wait4() itself, before it runs again: it never
 * sees that child, nor (unless one was pending already) a SIGCHLD for it.
 * The process stays stopped. On failure why holds one line; the child may
 * be gone already.
 */
int ghost_reap_child(pid_t pid, pid_t child, char *why, size_t why_len);

/*
 * Holding a process to swap its descriptors (the engine's half of a dynamic
 * stream's suspension): freeze a process where it is, take copies of its
 * descriptors, put other open file descriptions at their numbers, and let it
 * go exactly as it was.
 *
 *	struct ghost_hold *h;
 *	ghost_hold_new(pid, &h, why, sizeof(why));
 *	ghost_hold_take(h, 3, &old, &fd_flags, &status_flags, why, sizeof(why));
 *	... drain old, write its bytes into the new channel first ...
 *	fcntl(new, F_SETFL, status_flags);
 *	ghost_hold_install(h, 3, new, fd_flags, why, sizeof(why));
 *	h = ghost_hold_release(h);
 *
 * A system call the process was blocked in (read, write, poll, select,
 * nanosleep...) runs again after the release, and one that names an fd looks
 * it up again: a read() blocked on the old fd 3 reads from the new one
 * (epoll_wait() is never restarted: it returns EINTR, as after any stop). Every
 * call fails with a negative errno or GHOST_E* code and one line in why
 * (why may be NULL). The caller needs CAP_SYS_PTRACE or the process's user; the
 * process may run as any user. A process that is already traced (by a
 * debugger, or by an export in progress) cannot be held (-EBUSY), nor can a
 * held process be exported: release it first. Single-threaded
 * processes only (others are refused with GHOST_EUNSUPPORTED). A process that
 * exits while held makes every call fail with -ESRCH ("exited while held");
 * if the caller is its parent, its exit status is left for the caller's own
 * waitpid(), which the engine never takes.
 */
struct ghost_hold;

/*
 * Freeze process pid in place (PTRACE_SEIZE + PTRACE_INTERRUPT) so the caller
 * can take and replace its descriptors. Works on a running process, one
 * blocked in a system call, and one stopped by SIGSTOP (it stays stopped after
 * the release). Nothing runs in the process and nothing about it changes until
 * the first ghost_hold_install(). Signals sent to it while it is held stay
 * pending and are delivered after the release (a SIGSTOP too, a SIGCONT lifts
 * an earlier stop); SIGKILL ends it at once. The handle in *ret; nothing is
 * held on failure.
 */
int ghost_hold_new(pid_t pid, struct ghost_hold **ret, char *why, size_t why_len);

/*
 * A copy of the process's descriptor fd, in *ret_copy (ours, O_CLOEXEC, sharing
 * the open file description: reading from it takes bytes from the process's
 * stream), its FD_CLOEXEC in *ret_fd_flags (0 or FD_CLOEXEC) and the status
 * flags of its open file description (O_ACCMODE, O_NONBLOCK, O_APPEND, ...,
 * as F_GETFL gives them) in *ret_status_flags. ret_fd_flags and
 * ret_status_flags may be NULL (not reading the fd flags spares a /proc read).
 * Runs nothing in the process. -EBADF when the process has no such fd.
 */
int ghost_hold_take(struct ghost_hold *h, int fd, int *ret_copy, int *ret_fd_flags,
		    int *ret_status_flags, char *why, size_t why_len);

/*
 * Make the process's descriptor fd refer to our descriptor newfd's open file
 * description, as dup3() would at the same number, with FD_CLOEXEC set iff
 * fd_flags has it (fd_flags is 0 or FD_CLOEXEC, else -EINVAL). fd need not be
 * open in the process. Status flags (O_NONBLOCK...) belong to the open file
 * description: the caller sets them on newfd beforehand. newfd stays ours. The
 * descriptor is passed with SCM_RIGHTS over a socketpair made in the process,
 * so it works whatever user the process runs as. The first call also blocks
 * every signal in the process until the release. Every epoll instance of the
 * process that watched the file at fd under that number watches newfd's file
 * there instead, with the same events and data, and no longer the old one
 * (one the process had let fire as EPOLLONESHOT comes back armed for EPOLLERR
 * and EPOLLHUP only); a newfd that epoll cannot watch as the old file was
 * watched is refused (-EPERM, -EINVAL) before anything changes. On failure the process's fd and its registrations
 * are as they were, and the hold can still be released (and, unless why says
 * an earlier step failed, used again). Several installs in one hold share
 * their setup: the first runs three system calls in the process, the next ones
 * two, and two more per epoll registration of the file at fd (and the release
 * one more, in all).
 */
int ghost_hold_install(struct ghost_hold *h, int fd, int newfd, int fd_flags, char *why,
		       size_t why_len);

/*
 * Close what the engine opened in the process, put back its registers, signal
 * mask and the bytes it used for scratch, and let it go exactly as it was:
 * running, back in the system call it was blocked in (restarted, on whatever
 * fd is now at its number), or stopped. Accepts NULL; returns NULL; never fails.
 */
struct ghost_hold *ghost_hold_release(struct ghost_hold *h);

/* Statistics of the last export or import. */
const struct ghost_stats *ghost_get_stats(const struct ghost *g);
/* One line: what failed and why, for the last failing call; "" if none. */
const char *ghost_errmsg(const struct ghost *g);

#endif

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Managed processes and global PIDs. Node ID hands out PIDs from its range
 * [ID * R, ID * R + R - 1] (R = pid-range): each process is cloned with
 * clone3(set_tid) at the next free PID of the range, as a child of the
 * daemon, so that its PID is unique in the whole cluster (Kerrighed's global
 * PIDs) and the daemon gets its exit status. The table keyed by PID holds
 * the processes running here and, for processes born here, where they run
 * now (the cluster-wide process table: a PID's range names its birth node,
 * whose table names its current node).
 *
 * A table entry:
 *
 *   proc_spawn()           exec ok                 reaped
 *   -----------> SPAWNING ---------> RUNNING ------------------> EXITED --> freed
 *                   |                                  (detached: kept for   (evicted
 *                   | exec failed: reaped, freed         ps -a and logs)     oldest first)
 *                   v                                  (attached: freed at once)
 *
 *   ELSEWHERE: born here, running on another node (set by a migration).
 *
 * 1. An entry's PID is unique in the table; a PID in the table is never
 *    handed out again until its entry is freed.
 * 2. n_running counts SPAWNING and RUNNING entries.
 * 3. p->session, when set, is a run session that p reports to; either side
 *    clears the link before it goes away.
 *
 *   event               function
 *   spawn               proc_spawn() -> child_exec() in the child
 *   exec status pipe    on_exec_io() -> exec_check()
 *   SIGCHLD             proc_reap()
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX NULL
#include "base/fileio.h"
#include "base/log.h"
#include "node/node-int.h"
#include "base/banned.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define BUCKETS 1024
/* Exited detached processes remembered for ps -a and logs. */
#define MAX_EXITED 1000
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

extern char **environ;

enum child_step {
	STEP_SETUP = 1,
	STEP_TERMINAL,
	STEP_CREDS,
	STEP_EXEC,
};

struct exec_status {
	int err;
	int step;
};

static size_t bucket(const struct node_daemon *d, pid_t pid)
{
	return (size_t)pid % d->ptable_buckets;
}

struct mproc *proc_find(struct node_daemon *d, pid_t pid)
{
	if (!d->ptable)
		return NULL;
	for (struct mproc *p = d->ptable[bucket(d, pid)]; p; p = p->hnext)
		if (p->pid == pid)
			return p;
	return NULL;
}

static void table_remove(struct node_daemon *d, struct mproc *p)
{
	struct mproc **pp = &d->ptable[bucket(d, p->pid)];

	while (*pp && *pp != p)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = p->hnext;
	d->n_procs--;
}

static void exited_remove(struct node_daemon *d, struct mproc *p)
{
	if (d->exited_tail == p)
		d->exited_tail = p->prev;
	LIST_REMOVE(d->exited, p);
	d->n_exited--;
}

static void unwatch_adopted(struct mproc *p)
{
	p->pidfd_io = loop_io_free(p->pidfd_io);
	if (p->adopted)
		p->pidfd = safe_close(p->pidfd);
}

static struct mproc *mproc_free(struct node_daemon *d, struct mproc *p)
{
	if (!p)
		return NULL;
	assert(!p->session);
	p->exec_io = loop_io_free(p->exec_io);
	p->exec_fd = safe_close(p->exec_fd);
	unwatch_adopted(p);
	(void)d;
	free(p->command);
	free(p->log_path);
	free(p);
	return NULL;
}

/* Tell the birth node of a process that arrived here by migration that it
 * is no longer here, so that it frees the PID. */
static void tell_gone(struct node_daemon *d, pid_t pid)
{
	uint32_t birth = node_of_pid(d, pid);
	struct buf b = BUF_INIT;

	if (birth == 0 || birth == d->self || d->leaving)
		return;
	if (attr_put_u32(&b, A_PID, (uint32_t)pid) >= 0 &&
	    msg_send(d->msg, birth, NODE_CH_PROC, PROC_GONE, b.data, b.len) < 0)
		log_debug("cannot tell node %u that process %d is gone", birth, (int)pid);
	buf_release(&b);
}

/* Take p out of the table and free it. */
static void forget(struct node_daemon *d, struct mproc *p)
{
	if (p->state == MPROC_EXITED && p->detached)
		exited_remove(d, p);
	if (p->state == MPROC_SPAWNING || p->state == MPROC_RUNNING) {
		d->n_running--;
		node_procs_changed(d);
	}
	if (p->state != MPROC_ELSEWHERE && !p->arriving)
		tell_gone(d, p->pid);
	table_remove(d, p);
	mproc_free(d, p);
}

static void table_add(struct node_daemon *d, struct mproc *p)
{
	p->hnext = d->ptable[bucket(d, p->pid)];
	d->ptable[bucket(d, p->pid)] = p;
	d->n_procs++;
}

int proc_arrive(struct node_daemon *d, const struct proc_arrival *a, struct mproc **ret)
{
	struct mproc *old = proc_find(d, a->pid), *p;

	if (old && old->state != MPROC_ELSEWHERE && old->state != MPROC_EXITED)
		return -EEXIST;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->exec_fd = -1;
	p->command = strdup(a->command ? a->command : "");
	p->log_path = a->log_path ? strdup(a->log_path) : NULL;
	if (!p->command || (a->log_path && !p->log_path)) {
		mproc_free(d, p);
		return -ENOMEM;
	}
	if (old) {
		/* Back home (ELSEWHERE), or an old exited namesake. */
		if (old->state == MPROC_ELSEWHERE)
			p->elsewhere = old->node;
		if (old->state == MPROC_EXITED && old->detached)
			exited_remove(d, old);
		table_remove(d, old);
		mproc_free(d, old);
	}
	p->pid = a->pid;
	p->node = d->self;
	p->state = MPROC_RUNNING;
	p->arriving = true;
	p->uid = a->uid;
	p->gid = a->gid;
	p->start_time = a->start_time;
	p->detached = a->detached;
	p->forked_from = a->forked_from;
	table_add(d, p);
	d->n_running++;
	node_procs_changed(d);
	*ret = p;
	return 0;
}

/* The daemon hands out the lower half of the range; the kernel gives the
 * upper half to the processes that managed processes fork (proc_tick()). */
static pid_t own_last(const struct node_daemon *d)
{
	if (d->config.pid_range < 4)
		return d->pid_last;
	return d->pid_first + (pid_t)(d->config.pid_range / 2) - 1;
}

static bool pid_visible(pid_t pid)
{
	char path[32];

	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	return access(path, F_OK) == 0;
}

int proc_pick_pid(struct node_daemon *d, pid_t *ret)
{
	for (uint32_t tries = 0; tries < d->config.pid_range; tries++) {
		pid_t want = d->pid_next;

		d->pid_next = want == own_last(d) ? d->pid_first : want + 1;
		if (proc_find(d, want) || (d->own_proc && pid_visible(want)))
			continue;
		*ret = want;
		return 0;
	}
	return -EAGAIN;
}

void proc_arrival_cancel(struct node_daemon *d, struct mproc *p)
{
	assert(p->arriving);
	if (p->elsewhere) {
		/* Back home, but not after all: it runs where it ran. */
		p->state = MPROC_ELSEWHERE;
		p->node = p->elsewhere;
		p->arriving = false;
		d->n_running--;
		node_procs_changed(d);
		return;
	}
	forget(d, p);
}

void proc_depart(struct node_daemon *d, struct mproc *p, uint32_t to)
{
	struct run_session *s = TAKE_PTR(p->session);

	/* An attached process's run session let go of it (run_move_commit()). */
	assert(!s);
	(void)s;
	p->moving = false;
	unwatch_adopted(p);
	d->n_running--;
	node_procs_changed(d);
	/* Word for it may still come here before its birth node knows. */
	d->departed[d->departed_next].pid = p->pid;
	d->departed[d->departed_next].node = to;
	d->departed_next = (d->departed_next + 1) % ARRAY_SIZE(d->departed);
	if (node_of_pid(d, p->pid) == d->self) {
		p->state = MPROC_ELSEWHERE;
		p->node = to;
		return;
	}
	/* The destination tells the birth node (PROC_WHERE). */
	table_remove(d, p);
	mproc_free(d, p);
}

void proc_where(struct node_daemon *d, pid_t pid, uint32_t node)
{
	struct mproc *p = proc_find(d, pid);

	if (node_of_pid(d, pid) != d->self || node == d->self)
		return;
	if (p && p->state == MPROC_EXITED) {
		/* Restarted there from a memory checkpoint: it lives again. */
		forget(d, p);
		p = NULL;
	}
	if (p) {
		if (p->state == MPROC_ELSEWHERE)
			p->node = node;
		else
			log_warn("node %u says process %d runs there, but it is here, ignoring",
				 node, (int)pid);
		return;
	}
	/* The entry went with an earlier move; make it again. */
	p = calloc(1, sizeof(*p));
	if (!p) {
		log_warn("out of memory: process %d on node %u is not in the table", (int)pid,
			 node);
		return;
	}
	p->exec_fd = -1;
	p->command = strdup("");
	if (!p->command) {
		free(p);
		return;
	}
	p->pid = pid;
	p->node = node;
	p->state = MPROC_ELSEWHERE;
	table_add(d, p);
}

void proc_gone(struct node_daemon *d, pid_t pid, uint32_t from)
{
	struct mproc *p = proc_find(d, pid);

	if (p && p->state == MPROC_ELSEWHERE && p->node == from)
		forget(d, p);
}

static int raise_pid_max(struct node_daemon *d, struct buf *err)
{
	struct buf b = BUF_INIT;
	uint64_t max = 0;
	char text[32];
	int r;

	r = read_file_at(AT_FDCWD, "/proc/sys/kernel/pid_max", &b);
	if (r >= 0) {
		while (b.len && b.data[b.len - 1] == '\n')
			b.data[--b.len] = '\0';
		r = parse_u64(b.data, 10, &max);
	}
	buf_release(&b);
	if (r < 0)
		return node_err_errno(err, r, "cannot read /proc/sys/kernel/pid_max");
	if ((uint64_t)d->pid_last < max)
		return 0;
	snprintf(text, sizeof(text), "%d", (int)d->pid_last + 1);
	r = write_string_file("/proc/sys/kernel/pid_max", text);
	if (r < 0)
		return node_err_errno(err, r,
				      "PIDs of node %u (%d-%d) are above pid_max %llu of this PID "
				      "namespace, and raising it failed",
				      d->self, (int)d->pid_first, (int)d->pid_last,
				      (unsigned long long)max);
	log_info("raised /proc/sys/kernel/pid_max from %llu to %s for the PIDs of node %u",
		 (unsigned long long)max, text, d->self);
	return 0;
}

int proc_init(struct node_daemon *d, struct buf *err)
{
	char self[32], want[32];
	ssize_t n;
	int r;

	d->pid_first = (pid_t)(d->self * d->config.pid_range);
	d->pid_last = (pid_t)(d->pid_first + (pid_t)d->config.pid_range - 1);
	d->pid_next = d->pid_first;
	r = raise_pid_max(d, err);
	if (r < 0)
		return r;
	d->ptable_buckets = BUCKETS;
	d->ptable = NEW_ARRAY(struct mproc *, d->ptable_buckets);
	if (!d->ptable)
		return node_err(err, -ENOMEM, "out of memory");
	n = readlink("/proc/self", self, sizeof(self) - 1);
	snprintf(want, sizeof(want), "%d", (int)getpid());
	d->own_proc = n > 0 && (self[n] = '\0', strcmp(self, want) == 0);
	if (!d->own_proc)
		log_warn("/proc is not the one of this PID namespace: ps cannot show the state "
			 "and memory of processes, ignoring");
	/* Orphans of managed processes come back to us, not to an init that
	 * may reap late (the node's PIDs must be freed at once). */
	if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		log_warn_errno(errno, "cannot become a child subreaper, ignoring");
	proc_tick(d);
	return 0;
}

void proc_done(struct node_daemon *d)
{
	if (!d->ptable)
		return;
	for (size_t i = 0; i < d->ptable_buckets; i++)
		while (d->ptable[i])
			forget(d, d->ptable[i]);
	free(d->ptable);
	d->ptable = NULL;
}

/* ---- spawning ------------------------------------------------------------ */

static _Noreturn void child_fail(int status_fd, int step)
{
	struct exec_status st = { .err = errno ? errno : EIO, .step = step };

	(void)write(status_fd, &st, sizeof(st));
	_exit(127);
}

/* In the new process: never returns. */
static _Noreturn void child_exec(const struct spawn_req *r, int status_fd)
{
	struct sigaction sa = { .sa_handler = SIG_DFL };
	sigset_t none;
	int fds[3];

	sigemptyset(&sa.sa_mask);
	for (int s = 1; s < NSIG; s++)
		(void)sigaction(s, &sa, NULL);
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
		child_fail(status_fd, STEP_SETUP);
	if (setsid() < 0)
		child_fail(status_fd, STEP_SETUP);
	for (int i = 0; i < 3; i++) {
		fds[i] = fcntl(r->fds[i], F_DUPFD_CLOEXEC, 3);
		if (fds[i] < 0)
			child_fail(status_fd, STEP_SETUP);
	}
	for (int i = 0; i < 3; i++)
		if (dup2(fds[i], i) < 0)
			child_fail(status_fd, STEP_SETUP);
	if (r->ctty && ioctl(0, TIOCSCTTY, 0) < 0)
		child_fail(status_fd, STEP_TERMINAL);
	/* Nothing of the daemon's but stdio survives the exec. */
	if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		child_fail(status_fd, STEP_SETUP);
	if (geteuid() == 0) {
		if (setgroups(r->n_groups, r->groups) < 0 ||
		    setresgid(r->gid, r->gid, r->gid) < 0 || setresuid(r->uid, r->uid, r->uid) < 0)
			child_fail(status_fd, STEP_CREDS);
	} else if (r->uid != geteuid()) {
		errno = EPERM;
		child_fail(status_fd, STEP_CREDS);
	}
	/* After dropping privileges, so that only a directory the user may
	 * enter becomes the working directory. */
	if (!r->cwd || chdir(r->cwd) < 0)
		(void)chdir("/");
	umask(022);
	environ = r->envp;
	if (!getenv("PATH"))
		(void)setenv("PATH", DEFAULT_PATH, 1);
	execvp(r->argv[0], r->argv);
	child_fail(status_fd, STEP_EXEC);
}

static pid_t clone_at(pid_t pid)
{
	struct clone_args args = {
		.exit_signal = SIGCHLD,
		.set_tid = (uint64_t)(uintptr_t)&pid,
		.set_tid_size = 1,
	};

	return (pid_t)syscall(SYS_clone3, &args, sizeof(args));
}


static const char *step_text(int step)
{
	switch (step) {
	case STEP_TERMINAL:
		return "cannot attach the terminal";
	case STEP_CREDS:
		return "cannot take the caller's user and groups";
	case STEP_EXEC:
		return NULL;
	default:
		return "cannot set the process up";
	}
}

/* Learn the exec's outcome; blocking is fine once the child is gone. */
static void exec_check(struct mproc *p)
{
	struct exec_status st;
	struct run_session *s;
	ssize_t n;

	if (p->exec_fd < 0)
		return;
	do
		n = read(p->exec_fd, &st, sizeof(st));
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return;
	p->exec_io = loop_io_free(p->exec_io);
	p->exec_fd = safe_close(p->exec_fd);
	s = p->session;
	if (n == (ssize_t)sizeof(st)) {
		p->exec_failed = true;
		p->session = NULL;
		if (p->log_path)
			(void)unlink(p->log_path);
		log_debug("process %d: exec step %d failed: %s", (int)p->pid, st.step,
			  strerror(st.err));
		if (s)
			run_proc_exec(s, p, -st.err, step_text(st.step));
		return;
	}
	p->state = MPROC_RUNNING;
	if (p->detached)
		log_info("process %d started for uid %u: %s", (int)p->pid, (unsigned)p->uid,
			 p->command);
	if (s)
		run_proc_exec(s, p, 0, NULL);
}

static void on_exec_io(struct loop_io *io, int fd, unsigned events, void *userdata)
{
	struct mproc *p = userdata;

	(void)io;
	(void)fd;
	(void)events;
	exec_check(p);
}

static char *join_argv(char **argv)
{
	struct buf b = BUF_INIT;

	for (size_t i = 0; argv[i]; i++)
		if (buf_printf(&b, "%s%s", i ? " " : "", argv[i]) < 0) {
			buf_release(&b);
			return NULL;
		}
	return buf_detach(&b, NULL);
}

int proc_spawn(struct node_daemon *d, const struct spawn_req *r, struct run_session *s,
	       struct mproc **ret)
{
	_cleanup_close_ int rd = -1, wr = -1;
	int pipefd[2], err = -EAGAIN;
	struct mproc *p;
	pid_t pid = -1;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->exec_fd = -1;
	p->command = join_argv(r->argv);
	if (!p->command) {
		free(p);
		return -ENOMEM;
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		err = -errno;
		goto fail;
	}
	rd = pipefd[0];
	wr = pipefd[1];
	for (uint32_t tries = 0; tries < d->config.pid_range; tries++) {
		pid_t want = d->pid_next;

		d->pid_next = want == own_last(d) ? d->pid_first : want + 1;
		if (proc_find(d, want) || (d->own_proc && pid_visible(want)))
			continue;
		pid = clone_at(want);
		if (pid == 0)
			child_exec(r, wr);
		if (pid > 0)
			break;
		if (errno != EEXIST) {
			err = -errno;
			log_debug_errno(err, "clone3 with PID %d", (int)want);
			goto fail;
		}
	}
	if (pid < 0)
		goto fail;
	wr = safe_close(wr);
	p->pid = pid;
	p->node = d->self;
	p->state = MPROC_SPAWNING;
	p->uid = r->uid;
	p->gid = r->gid;
	p->start_time = (uint64_t)time(NULL);
	p->detached = r->detached;
	p->session = s;
	if (fcntl(rd, F_SETFL, O_NONBLOCK) < 0 ||
	    loop_io_new(d->loop, rd, LOOP_READ, on_exec_io, p, &p->exec_io) < 0) {
		/* Without a watch, the status is read when the child is reaped. */
		log_debug("process %d: exec status read at exit", (int)pid);
	}
	p->exec_fd = TAKE_FD(rd);
	table_add(d, p);
	d->n_running++;
	node_procs_changed(d);
	*ret = p;
	return 0;
fail:
	free(p->command);
	free(p);
	return err;
}

void proc_detach_session(struct node_daemon *d, struct mproc *p)
{
	(void)d;
	if (p)
		p->session = NULL;
}

/* Tell the birth node of a process that arrived here that it exited, with
 * its status: a stand-in there may have to end the same way. */
static void tell_exited(struct node_daemon *d, pid_t pid, int status)
{
	uint32_t birth = node_of_pid(d, pid);
	struct buf b = BUF_INIT;

	if (birth == 0 || birth == d->self)
		return;
	if (attr_put_u32(&b, A_PID, (uint32_t)pid) >= 0 &&
	    attr_put_u32(&b, A_WSTATUS, (uint32_t)status) >= 0 &&
	    msg_send(d->msg, birth, NODE_CH_PROC, PROC_EXITED, b.data, b.len) < 0)
		log_debug("cannot tell node %u that process %d exited", birth, (int)pid);
	buf_release(&b);
}

static void exited(struct node_daemon *d, pid_t pid, int status)
{
	struct run_session *s;
	struct mproc *p = proc_find(d, pid);

	if (!p || (p->state != MPROC_SPAWNING && p->state != MPROC_RUNNING)) {
		log_debug("reaped process %d, not managed", (int)pid);
		standin_reaped(d, pid);
		move_reaped(d, pid);
		return;
	}
	unwatch_adopted(p);
	if (p->moving)
		move_proc_exited(d, p);
	if (p->keeping)
		keep_proc_exited(d, p);
	if (p->state == MPROC_SPAWNING)
		exec_check(p);
	if (p->exec_failed) {
		forget(d, p);
		return;
	}
	d->n_running--;
	node_procs_changed(d);
	p->state = MPROC_EXITED;
	p->wstatus = status;
	if (!p->arriving)
		tell_exited(d, pid, status);
	standin_parent_exited(d, pid);
	if (p->detached) {
		if (WIFSIGNALED(status))
			log_info("process %d killed by signal %d", (int)pid, WTERMSIG(status));
		else
			log_info("process %d exited with status %d", (int)pid, WEXITSTATUS(status));
	}
	s = TAKE_PTR(p->session);
	if (s)
		run_proc_exited(s, p);
	if (!p->detached) {
		table_remove(d, p);
		mproc_free(d, p);
		return;
	}
	LIST_PREPEND(d->exited, p);
	if (!d->exited_tail)
		d->exited_tail = p;
	d->n_exited++;
	if (d->n_exited > MAX_EXITED)
		forget(d, d->exited_tail);
}

void proc_child_exited(struct node_daemon *d, pid_t pid, int wstatus)
{
	exited(d, pid, wstatus);
}

void proc_reap(struct node_daemon *d)
{
	for (;;) {
		int status;
		pid_t pid;

		pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0) {
			if (pid < 0 && errno == EINTR)
				continue;
			return;
		}
		exited(d, pid, status);
	}
}

/* ---- descendants of managed processes ------------------------------------ */

/* The fields of /proc/PID/stat after "PID (COMM) ", in buf; NULL if unknown. */
static const char *stat_after_comm(pid_t pid, char *buf, size_t size)
{
	char path[64], *e;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	n = read(fd, buf, size - 1);
	safe_close(fd);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	/* COMM may hold anything, even ')'. */
	e = strrchr(buf, ')');
	return e && e[1] == ' ' ? e + 2 : NULL;
}

pid_t proc_parent(pid_t pid)
{
	char buf[512];
	const char *f = stat_after_comm(pid, buf, sizeof(buf));
	int ppid;

	if (!f || sscanf(f, "%*c %d", &ppid) != 1)
		return 0;
	return (pid_t)ppid;
}

/* The state letter of /proc/PID/stat ('R', 'S', 'T'...); 0 if unknown. */
static char stat_state(pid_t pid)
{
	char buf[512];
	const char *f = stat_after_comm(pid, buf, sizeof(buf));

	return f ? f[0] : 0;
}

bool proc_job_stopped(pid_t pid)
{
	return stat_state(pid) == 'T';
}

bool proc_alive(pid_t pid)
{
	char state = stat_state(pid);

	return state != 0 && state != 'Z' && state != 'X';
}

int proc_children(pid_t pid, pid_t *ret, size_t max, size_t *ret_n)
{
	char path[320];
	struct dirent *de;
	DIR *tasks;

	*ret_n = 0;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	tasks = opendir(path);
	if (!tasks)
		return -errno;
	while ((de = readdir(tasks))) {
		struct buf b = BUF_INIT;
		char *save = NULL;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/children", (int)pid, de->d_name);
		if (read_file_at(AT_FDCWD, path, &b) < 0)
			continue;
		for (char *w = strtok_r(b.data, " \n", &save); w; w = strtok_r(NULL, " \n", &save)) {
			uint64_t v;

			if (parse_u64(w, 10, &v) < 0 || v == 0 || v > INT32_MAX)
				continue;
			if (*ret_n < max)
				ret[*ret_n] = (pid_t)v;
			(*ret_n)++;
		}
		buf_release(&b);
	}
	closedir(tasks);
	return 0;
}

uint32_t proc_locate(struct node_daemon *d, pid_t pid)
{
	struct mproc *p = proc_find(d, pid);
	size_t n = ARRAY_SIZE(d->departed);

	if (p && (p->state == MPROC_RUNNING || p->state == MPROC_SPAWNING))
		return d->self;
	if (p && p->state == MPROC_ELSEWHERE)
		return p->node;
	/* The newest departure first. */
	for (size_t i = 1; i <= n; i++) {
		size_t k = (d->departed_next + n - i) % n;

		if (d->departed[k].pid == pid)
			return d->departed[k].node;
	}
	return node_of_pid(d, pid);
}

static int read_proc_text(pid_t pid, const char *what, struct buf *out)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
	return read_file_at(AT_FDCWD, path, out);
}

int proc_ids(pid_t pid, uid_t *ret_uid, gid_t *ret_gid)
{
	struct buf b = BUF_INIT;
	const char *u, *g;
	int r;

	r = read_proc_text(pid, "status", &b);
	if (r >= 0) {
		u = strstr(b.data, "\nUid:");
		g = strstr(b.data, "\nGid:");
		if (!u || !g || sscanf(u + 5, "%u", ret_uid) != 1 ||
		    sscanf(g + 5, "%u", ret_gid) != 1)
			r = -EIO;
	}
	buf_release(&b);
	return r;
}

bool proc_plain_creds(pid_t pid, uid_t uid)
{
	unsigned r, e, sv, fs;
	unsigned long long cap = 1;
	struct buf b = BUF_INIT;
	const char *u, *c;
	bool ok = false;

	if (read_proc_text(pid, "status", &b) >= 0) {
		u = strstr(b.data, "\nUid:");
		c = strstr(b.data, "\nCapPrm:");
		ok = u && c && sscanf(u + 5, "%u %u %u %u", &r, &e, &sv, &fs) == 4 &&
		     sscanf(c + 8, "%llx", &cap) == 1 && r == uid && e == uid && sv == uid &&
		     fs == uid && cap == 0;
	}
	buf_release(&b);
	return ok;
}

int proc_comm(pid_t pid, char *comm, size_t size)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, comm, size - 1);
	safe_close(fd);
	if (n <= 0)
		return -EIO;
	comm[n] = '\0';
	comm[strcspn(comm, "\n")] = '\0';
	return 0;
}

static char *read_command(pid_t pid)
{
	struct buf b = BUF_INIT;

	if (read_proc_text(pid, "cmdline", &b) < 0 || b.len == 0) {
		buf_release(&b);
		return strdup("");
	}
	for (size_t i = 0; i + 1 < b.len; i++)
		if (b.data[i] == '\0')
			b.data[i] = ' ';
	return buf_detach(&b, NULL);
}

static void on_adopted_exit(struct loop_io *io, int fd, unsigned events, void *userdata);

/* Watch the end of p, whose parent is not us, with a pidfd. */
static int watch_adopted(struct node_daemon *d, struct mproc *p, pid_t pid)
{
	int r;

	p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (p->pidfd < 0)
		return -errno;
	r = loop_io_new(d->loop, p->pidfd, LOOP_READ, on_adopted_exit, p, &p->pidfd_io);
	if (r < 0) {
		p->pidfd = safe_close(p->pidfd);
		return r;
	}
	p->adopted = true;
	p->daemon = d;
	return 0;
}

struct mproc *proc_find_or_adopt(struct node_daemon *d, pid_t pid)
{
	struct mproc *p = proc_find(d, pid), *anc = NULL;
	bool standin = false;
	pid_t at = pid;

	if (p || !d->own_proc || pid <= 1 || node_of_pid(d, pid) != d->self)
		return p;
	/* Up the family to a managed process or a stand-in of one (a moved
	 * parent's children stay with it), never past the daemon. */
	for (int depth = 0; depth < 64; depth++) {
		at = proc_parent(at);
		if (at <= 1 || at == getpid())
			return NULL;
		standin = standin_holds(d, at);
		anc = standin ? NULL : proc_find(d, at);
		if (standin || anc)
			break;
	}
	if (!standin && (!anc || anc->state != MPROC_RUNNING))
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->exec_fd = -1;
	p->command = read_command(pid);
	p->log_path = anc && anc->log_path ? strdup(anc->log_path) : NULL;
	if (!p->command || (anc && anc->log_path && !p->log_path) ||
	    proc_ids(pid, &p->uid, &p->gid) < 0 || watch_adopted(d, p, pid) < 0) {
		free(p->command);
		free(p->log_path);
		free(p);
		return NULL;
	}
	p->pid = pid;
	p->node = d->self;
	p->state = MPROC_RUNNING;
	/* Its output goes where its ancestor's goes. */
	p->detached = true;
	p->start_time = (uint64_t)time(NULL);
	table_add(d, p);
	d->n_running++;
	node_procs_changed(d);
	log_info("process %d, a child of managed process %d's family, is managed now", (int)pid,
		 (int)at);
	return p;
}

int proc_parent_reaps(struct node_daemon *d, pid_t pid)
{
	struct mproc *p = proc_find(d, pid);

	if (!p || p->state != MPROC_RUNNING || p->adopted)
		return 0;
	return watch_adopted(d, p, pid);
}

static void on_adopted_exit(struct loop_io *io, int fd, unsigned events, void *userdata)
{
	struct mproc *p = userdata;
	struct node_daemon *d = NULL;

	(void)io;
	(void)fd;
	(void)events;
	/* Its parent reaps it: there is no status here. */
	d = p->daemon;
	unwatch_adopted(p);
	if (p->state != MPROC_RUNNING)
		return;
	if (p->moving)
		move_proc_exited(d, p);
	if (p->keeping)
		keep_proc_exited(d, p);
	forget(d, p);
}

uint64_t proc_rss_bytes(pid_t pid)
{
	struct buf b = BUF_INIT;
	unsigned long long size = 0, resident = 0;

	if (read_proc_text(pid, "statm", &b) >= 0 &&
	    sscanf(b.data, "%llu %llu", &size, &resident) != 2)
		resident = 0;
	buf_release(&b);
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* The number after "KEY" (and a colon or blanks) on a line of a text file. */
static bool read_keyed(const char *path, const char *key, uint64_t *ret)
{
	struct buf b = BUF_INIT;
	size_t klen = strlen(key);
	bool found = false;

	if (read_file_at(AT_FDCWD, path, &b) < 0)
		return false;
	for (char *line = b.data; line && !found; line = strchr(line, '\n')) {
		unsigned long long v;

		if (*line == '\n')
			line++;
		if (strncmp(line, key, klen) == 0 && (line[klen] == ' ' || line[klen] == ':') &&
		    sscanf(line + klen + 1, " %llu", &v) == 1) {
			*ret = v;
			found = true;
		}
	}
	buf_release(&b);
	return found;
}

/* A file holding one number ("max" and the like are no number). */
static bool read_number(const char *path, uint64_t *ret)
{
	struct buf b = BUF_INIT;
	bool ok = false;

	if (read_file_at(AT_FDCWD, path, &b) >= 0) {
		b.data[strcspn(b.data, "\n")] = '\0';
		ok = parse_u64(b.data, 10, ret) >= 0;
	}
	buf_release(&b);
	return ok;
}

/* What the memory cgroup at path (v1 when v1, else v2) still allows. */
static uint64_t cgroup_room(const char *cgpath, bool v1)
{
	uint64_t limit, usage;
	char path[4096];

	if (v1) {
		/* The hierarchical limit counts the parents' too. */
		snprintf(path, sizeof(path), "/sys/fs/cgroup/memory%s/memory.stat", cgpath);
		if (!read_keyed(path, "hierarchical_memory_limit", &limit))
			return UINT64_MAX;
		snprintf(path, sizeof(path), "/sys/fs/cgroup/memory%s/memory.usage_in_bytes", cgpath);
	} else {
		snprintf(path, sizeof(path), "/sys/fs/cgroup%s/memory.max", cgpath);
		if (!read_number(path, &limit))
			return UINT64_MAX;
		snprintf(path, sizeof(path), "/sys/fs/cgroup%s/memory.current", cgpath);
	}
	if (!read_number(path, &usage))
		return UINT64_MAX;
	return limit > usage ? limit - usage : 0;
}

uint64_t proc_memory_available(void)
{
	uint64_t avail = UINT64_MAX, kib;
	struct buf cg = BUF_INIT;
	char *save = NULL;

	if (read_keyed("/proc/meminfo", "MemAvailable", &kib))
		avail = kib * 1024;
	/* The memory cgroup of the daemon, and so of its import workers. */
	if (read_file_at(AT_FDCWD, "/proc/self/cgroup", &cg) < 0)
		return avail;
	for (char *line = strtok_r(cg.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *ctrl = strchr(line, ':'), *cgpath = ctrl ? strchr(ctrl + 1, ':') : NULL;

		if (!cgpath)
			continue;
		*cgpath++ = '\0';
		ctrl++;
		if (strcmp(ctrl, "memory") == 0)
			avail = MIN(avail, cgroup_room(cgpath, true));
		else if (ctrl[0] == '\0')
			avail = MIN(avail, cgroup_room(cgpath, false));
	}
	buf_release(&cg);
	return avail;
}

void proc_tick(struct node_daemon *d)
{
	uint64_t last = 0;
	char text[32];

	if (!d->own_proc || d->config.pid_range < 4)
		return;
	if (!read_number("/proc/sys/kernel/ns_last_pid", &last))
		last = 0;
	if (last >= (uint64_t)own_last(d) && last < (uint64_t)d->pid_last)
		return;
	snprintf(text, sizeof(text), "%d", (int)own_last(d));
	if (write_string_file("/proc/sys/kernel/ns_last_pid", text) < 0)
		log_debug("cannot set ns_last_pid to %s", text);
}

/* ---- logs ---------------------------------------------------------------- */

int proc_log_open(struct node_daemon *d, uid_t uid, gid_t gid, char **ret_path)
{
	struct buf path = BUF_INIT;
	int fd, r;

	r = buf_printf(&path, "%s/.new-XXXXXX", d->log_dir);
	if (r < 0)
		return r;
	fd = mkostemp(path.data, O_CLOEXEC | O_APPEND);
	if (fd < 0) {
		r = -errno;
		buf_release(&path);
		return r;
	}
	if (fchown(fd, uid, gid) < 0 && geteuid() == 0) {
		r = -errno;
		(void)unlink(path.data);
		safe_close(fd);
		buf_release(&path);
		return r;
	}
	*ret_path = buf_detach(&path, NULL);
	return fd;
}

int proc_log_rename(struct node_daemon *d, const char *tmp_path, pid_t pid, char **ret_path)
{
	struct buf path = BUF_INIT;
	int r;

	r = buf_printf(&path, "%s/%d.log", d->log_dir, (int)pid);
	if (r >= 0 && rename(tmp_path, path.data) < 0)
		r = -errno;
	if (r < 0) {
		buf_release(&path);
		return r;
	}
	*ret_path = buf_detach(&path, NULL);
	return 0;
}

int proc_read_log(struct node_daemon *d, pid_t pid, uid_t uid, uint64_t offset, struct buf *data,
		  struct buf *err)
{
	struct mproc *p = proc_find(d, pid);
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = -1;
	struct stat st;
	size_t want;
	ssize_t n;
	int r;

	if (p && !p->detached)
		return buf_set_error(err, -ENOENT,
			       "process %d is not detached: its output goes to its caller",
			       (int)pid);
	if (p && p->log_path) {
		path = strdup(p->log_path);
	} else {
		struct buf b = BUF_INIT;

		if (buf_printf(&b, "%s/%d.log", d->log_dir, (int)pid) < 0) {
			buf_release(&b);
			return buf_set_error(err, -ENOMEM, "out of memory");
		}
		path = buf_detach(&b, NULL);
	}
	if (!path)
		return buf_set_error(err, -ENOMEM, "out of memory");
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT && !p)
			return buf_set_error(err, -ESRCH, "no managed process %d", (int)pid);
		return buf_set_error(err, -errno, "cannot open the log of process %d on node %u: %s",
			       (int)pid, d->self, strerror(errno));
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return buf_set_error(err, -EIO, "the log of process %d on node %u is not a file",
			       (int)pid, d->self);
	if (uid != 0 && uid != (p ? p->uid : st.st_uid))
		return buf_set_error(err, -EPERM, "process %d belongs to another user", (int)pid);
	if ((uint64_t)st.st_size <= offset)
		return 1;
	want = (size_t)MIN((uint64_t)LOGS_CHUNK, (uint64_t)st.st_size - offset);
	r = buf_reserve(data, want);
	if (r < 0)
		return buf_set_error(err, r, "out of memory");
	do
		n = pread(fd, data->data + data->len, want, (off_t)offset);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return buf_set_error(err, -errno, "cannot read the log of process %d on node %u: %s",
			       (int)pid, d->self, strerror(errno));
	data->len += (size_t)n;
	data->data[data->len] = '\0';
	return offset + (uint64_t)n >= (uint64_t)st.st_size ? 1 : 0;
}

/* ---- ps and kill --------------------------------------------------------- */

static const char *proc_state(struct node_daemon *d, const struct mproc *p, uint64_t *ret_rss)
{
	char path[64];
	struct buf b = BUF_INIT;
	const char *state = "running";
	unsigned long long size, rss;

	*ret_rss = 0;
	if (p->state == MPROC_EXITED)
		return "exited";
	if (p->state == MPROC_SPAWNING)
		return "starting";
	if (!d->own_proc)
		return "running";
	switch (stat_state(p->pid)) {
	case 'R':
		state = "running";
		break;
	case 'S':
		state = "sleeping";
		break;
	case 'D':
		state = "disk-sleep";
		break;
	case 'T':
		state = "stopped";
		break;
	case 't':
		state = "traced";
		break;
	case 'Z':
		state = "zombie";
		break;
	case 'I':
		state = "idle";
		break;
	case 0:
		break; /* unreadable (it just exited): left "running" */
	default:
		state = "unknown";
		break;
	}
	snprintf(path, sizeof(path), "/proc/%d/statm", (int)p->pid);
	if (read_file_at(AT_FDCWD, path, &b) >= 0 && b.data &&
	    sscanf(b.data, "%llu %llu", &size, &rss) == 2)
		*ret_rss = (uint64_t)rss * ((uint64_t)sysconf(_SC_PAGESIZE) / 1024);
	buf_release(&b);
	return state;
}

int proc_put_info(struct node_daemon *d, const struct mproc *p, struct buf *b)
{
	uint64_t rss;
	const char *state = proc_state(d, p, &rss);
	int r;

	r = attr_put_u32(b, A_PID, (uint32_t)p->pid);
	if (r >= 0)
		r = attr_put_u32(b, A_NODE, p->node);
	if (r >= 0)
		r = attr_put_u32(b, A_UID, (uint32_t)p->uid);
	if (r >= 0)
		r = attr_put_str(b, A_STATE, state);
	if (r >= 0)
		r = attr_put_u64(b, A_RSS, rss);
	if (r >= 0)
		r = attr_put_u64(b, A_START, p->start_time);
	if (r >= 0)
		r = attr_put_str(b, A_COMMAND, p->command);
	if (r >= 0)
		r = attr_put_u32(b, A_FLAGS, p->detached ? RUN_DETACH : 0);
	if (r >= 0 && p->forked_from)
		r = attr_put_u32(b, A_FORKED_FROM, (uint32_t)p->forked_from);
	if (r >= 0 && p->state == MPROC_EXITED) {
		if (WIFSIGNALED(p->wstatus))
			r = attr_put_u32(b, A_EXIT_SIGNAL, (uint32_t)WTERMSIG(p->wstatus));
		else
			r = attr_put_u32(b, A_EXIT_CODE, (uint32_t)WEXITSTATUS(p->wstatus));
	}
	return r;
}

int proc_put_all(struct node_daemon *d, bool all, struct buf *b)
{
	struct buf one = BUF_INIT;
	int r = 0;

	for (size_t i = 0; i < d->ptable_buckets && r >= 0; i++)
		for (struct mproc *p = d->ptable[i]; p && r >= 0; p = p->hnext) {
			if (p->state == MPROC_ELSEWHERE || p->exec_failed)
				continue;
			if (p->state == MPROC_EXITED && !all)
				continue;
			buf_reset(&one);
			r = proc_put_info(d, p, &one);
			if (r >= 0)
				r = attr_put(b, A_PROC, one.data, one.len);
		}
	buf_release(&one);
	return r;
}

int proc_kill(struct node_daemon *d, pid_t pid, int sig, uid_t uid, struct buf *err)
{
	struct mproc *p = proc_find_or_adopt(d, pid);

	if (!p || p->state == MPROC_ELSEWHERE || p->exec_failed)
		return buf_set_error(err, -ESRCH, "no managed process %d", (int)pid);
	if (p->state == MPROC_EXITED)
		return buf_set_error(err, -ESRCH, "process %d has exited", (int)pid);
	if (uid != 0 && uid != p->uid)
		return buf_set_error(err, -EPERM,
			       "not allowed to signal process %d: it belongs to another user",
			       (int)pid);
	if (sig < 0 || sig >= NSIG)
		return buf_set_error(err, -EINVAL, "bad signal %d", sig);
	if (p->moving && move_defer_signal(d, p, sig)) {
		log_info("process %d: signal %d for uid %u kept until its move ends", (int)pid,
			 sig, (unsigned)uid);
		return 0;
	}
	if (kill(pid, sig) < 0)
		return buf_set_error(err, -errno, "cannot signal process %d: %s", (int)pid,
			       strerror(errno));
	log_info("process %d: signal %d sent for uid %u", (int)pid, sig, (unsigned)uid);
	return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Stand-ins: how a process keeps its parent and its parent's view of it
 * across a migration. Linux ties a parent and a child to one kernel: the
 * parent's wait() sees only its own children, and the child's getppid()
 * names its parent in its own PID namespace. So when a process C whose
 * parent P lives on node A moves to node B (or P moves away from C), two
 * small processes stand in:
 *
 *   node A                                 node B
 *   P (the real parent)                    X: parent stand-in, PID = P
 *   `- C: child stand-in, PID = C             `- C (the real process)
 *
 * One rule keeps every family whole: for each parent P and child C on
 * different nodes, P's node holds a child stand-in with PID C (P's child)
 * and C's node a parent stand-in with PID P (C's parent).
 * A process has at most one stand-in on a node, serving all its relatives
 * there (P's original left on A is both the child stand-in its own parent
 * waits for and the parent stand-in of its children), and no stand-in ever
 * passes anything through another.
 *
 * - A child stand-in runs "ghostd --stand-in". When C moves away from P,
 *   it is C's original itself: once B holds the complete copy, instead of
 *   SIGKILL the source daemon makes the original execve it
 *   (ghost_replace_program()), so P never sees its child go: same PID, same
 *   parent, no SIGCHLD. When P moves away from C, the import makes it: the
 *   new P clones it with PID C before anything of P's image is in place
 *   (ghost_import_opts.children), so P's first wait() already finds it. The
 *   stand-in calls in on the control socket; every signal it receives (a
 *   kill() by a process of its node, ghost kill, a terminal) is forwarded to
 *   C wherever C runs; when C exits, its parent stand-in reaps it and its
 *   daemon sends the status to wherever P runs (PROC_CHILD_EXITED, routed
 *   as a kill, and after a parent that just moved on), whose daemon tells
 *   the stand-in (CTL_STANDIN_EXIT); the stand-in ends the same way, so P's
 *   waitpid() returns C's real exit status. If the stand-in is killed
 *   (SIGKILL cannot be caught), C is killed too: the parent already saw its
 *   child die.
 * - A parent stand-in holds P's PID where C runs. When C moves away from P,
 *   it is the import worker of the move, cloned with P's PID: C is created
 *   as its child, so C's getppid() is still P; after the import it stays,
 *   reaps C and reports, and forwards the signals it receives (C's
 *   kill(getppid(), ...)) to P. When P moves away from its children, it is
 *   P's original, made to execve "ghostd --stand-in" as above: the same
 *   program also reaps its own children and reports each (CTL_STANDIN_CHILD).
 *   One kept only for its children goes once it has none left; one whose
 *   own parent is there (it is P's child stand-in too) lives until P ends.
 * - Ends that are no exit: a moved process's original killed under a
 *   parent stand-in, a stand-in that is no longer needed (its parent moved
 *   on or ended: it is retired, told to end quietly), are marked quiet
 *   (standin_quiet()); their reaping is not reported as an exit.
 *
 * No stand-in is on any data path: it only mirrors exit status and signals,
 * as the Ghost report's migration keeps no forwarding of data.
 *
 * - Siblings: a second child of P that comes to a node where P's parent
 *   stand-in runs is imported by that stand-in itself (the daemon hands it
 *   the job: standin_parent_host(), worker_host_send()), so that it is the
 *   parent of both; it goes once it has no child and no import left.
 *
 * - Coming back: a process that moves to a node where a stand-in holds its
 *   PID (C back to A, P to where its children run under its parent
 *   stand-in, P back to where its original stands in for its children) has
 *   that stand-in turn into it (GHOST_IMPORT_BECOME): the stand-in keeps
 *   its PID, its parent and its children, and imports the process into
 *   itself, so the family there is real again. A parent stand-in gets the
 *   job on its job socket (standin_parent_turn()), a child stand-in with
 *   CTL_STANDIN_TURN (standin_turn()). A stand-in of a user other than
 *   root turns by the kernel's rules (the engine has it execve() the
 *   process's executable): it cannot make children with their PIDs, so a
 *   process of such a user with children elsewhere is refused there.
 *
 * Limits (refused with a message): a process of a user other than root
 * with children on other nodes cannot come back to its stand-in's node; a
 * parent with a parent of its own cannot join its children where its
 * parent stand-in is; a parent moves with at most MOVE_MAX_KIDS children.
 *
 *   event                         function
 *   move commits (source)         standin_make(), standin_hand_over()
 *   import of a parent            standin_expect(), standin_arrivals_*()
 *   CTL_STANDIN (the stand-in)    standin_hello()
 *   CTL_STANDIN_SIGNAL, _CHILD    standin_conn_frame()
 *   PROC_EXITED (birth node)      standin_proc_exited()
 *   PROC_CHILD_EXITED             standin_recv_child_exited()
 *   a parent of this node ended   standin_parent_exited()
 *   stand-in connection gone      standin_conn_gone()
 *   stand-in process ended        on_standin_end()
 *   parent stand-in report        on_parent_io()
 *   import of a sibling here      standin_parent_host(), _host_done()
 *   the process comes back here   standin_turn_ready(), standin_turn(),
 *                                 standin_parent_ready(), _parent_turn(),
 *                                 standin_turned(), _parent_turned()
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOG_PREFIX "standin"
#include "base/fileio.h"
#include "base/log.h"
#include "ghost/ghost.h"
#include "node/node-int.h"
#include "base/banned.h"

struct standin {
	struct standin *next, *prev;
	struct node_daemon *d;
	pid_t pid;              /* the PID it holds: the process it stands in for */
	pid_t parent;           /* its parent here, which sees it as that process */
	uint32_t node;          /* where that process ran when the stand-in was made */
	uid_t uid;              /* the process's user, group and name, which it takes */
	gid_t gid;
	char comm[16];
	bool for_parent;        /* its parent waits for it: it lives until the process ends */
	bool arriving;          /* made by an import that is not committed yet */
	struct ctl_conn *conn;  /* once it called in */
	/* Its end, seen even before it called in: a SIGKILL may come first. */
	int pidfd;
	struct loop_io *pid_io;
	bool have_exit;         /* the process exited: mirror wstatus */
	int wstatus;
	bool exit_sent;         /* told to end (the process's way, or quietly): the
				   process must not be killed when it goes */
	bool turning;           /* told to turn into the process, which arrives here */
};

struct parent_standin {
	struct parent_standin *next, *prev;
	struct node_daemon *d;
	pid_t pid;              /* the parent's PID, which it holds here */
	pid_t child;            /* the first process it held as its child */
	int report_fd;
	struct loop_io *report_io;
	int job_fd;             /* imports of the parent's other children go this
				   way; closed to let it go once it has no child */
	unsigned jobs;          /* moves of those imports not yet ended */
	bool turning;           /* its job is to become the parent itself */
};

/* ---- the stand-in program (ghostd --stand-in) ------------------------------ */

static int send_frame(int fd, uint16_t type, const struct buf *attrs)
{
	struct buf b = BUF_INIT;
	size_t start = 0;
	int r;

	r = ctl_frame_begin(&b, type);
	if (r >= 0 && attrs && attrs->len)
		r = buf_append(&b, attrs->data, attrs->len);
	if (r >= 0)
		r = ctl_frame_end(&b, start);
	if (r >= 0 && write_full(fd, b.data, b.len) < 0)
		r = -errno;
	buf_release(&b);
	return r;
}

/* End the way the moved process ended. */
static _Noreturn void mirror_exit(const void *data, size_t len)
{
	struct attr a;
	uint32_t v;
	sigset_t set;

	if (attr_find(data, len, A_EXIT_SIGNAL, &a) >= 0 && attr_u32(&a, &v) >= 0 && v > 0 &&
	    v < NSIG) {
		struct sigaction sa = { .sa_handler = SIG_DFL };
		int sig = (int)v;

		sigemptyset(&sa.sa_mask);
		(void)sigaction(sig, &sa, NULL);
		sigemptyset(&set);
		sigaddset(&set, sig);
		(void)kill(getpid(), sig);
		(void)sigprocmask(SIG_UNBLOCK, &set, NULL);
		/* A signal whose default is to be ignored ends nothing. */
		_exit(128 + sig);
	}
	if (attr_find(data, len, A_EXIT_CODE, &a) >= 0 && attr_u32(&a, &v) >= 0)
		_exit((int)(v & 0xff));
	_exit(255);
}

/* Its node is gone, or it never heard back: end as a lost process would. */
static _Noreturn void die_lost(void)
{
	(void)kill(getpid(), SIGKILL);
	_exit(137);
}

/* Reap every child that ended and report each one: its stand-in elsewhere
 * (or the daemon) decides what its end means. */
static void reap_children(int cfd)
{
	for (;;) {
		struct buf b = BUF_INIT;
		int st, r;
		pid_t kid = waitpid(-1, &st, WNOHANG);

		if (kid < 0 && errno == EINTR)
			continue;
		if (kid <= 0)
			return;
		r = attr_put_u32(&b, A_PID, (uint32_t)kid);
		if (r >= 0)
			r = attr_put_u32(&b, A_WSTATUS, (uint32_t)st);
		if (r < 0 || send_frame(cfd, CTL_STANDIN_CHILD, &b) < 0)
			die_lost();
		buf_release(&b);
	}
}

/* A stand-in made by an import runs as the import worker: take the user of
 * the process it stands in for, so that its parent may signal it. */
static int take_user(const char *uid_text, const char *gid_text)
{
	uint64_t uid, gid;

	if (parse_u64(uid_text, 10, &uid) < 0 || parse_u64(gid_text, 10, &gid) < 0 ||
	    uid > UINT32_MAX - 1 || gid > UINT32_MAX - 1)
		return -EINVAL;
	if (geteuid() != 0)
		return geteuid() == (uid_t)uid ? 0 : -EPERM;
	if (setgroups(0, NULL) < 0 || setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) < 0 ||
	    setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) < 0)
		return -errno;
	return 0;
}

/* read() from the control connection, taking the fd that may come with the
 * bytes (CTL_STANDIN_TURN's): one at a time, an older one unused is closed. */
static ssize_t recv_with_fd(int fd, void *data, size_t size, int *ret_fd)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} u;
	struct iovec iov = { data, size };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	ssize_t n;

	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	for (struct cmsghdr *cm = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL; cm; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int fds[4];

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS || k > 4)
			continue;
		memcpy(fds, CMSG_DATA(cm), k * sizeof(int));
		for (size_t i = 0; i < k; i++) {
			safe_close(*ret_fd);
			*ret_fd = fds[i];
		}
	}
	return n;
}

int node_standin_main(int argc, char **argv)
{
	const char *control;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct rlimit core = { 0, 0 };
	sigset_t all;
	pid_t daemon_pid;
	uint64_t v;
	int sfd, cfd, nul, job_fd = -1;
	struct buf in = BUF_INIT;

	/* argv: ghostd --stand-in CONTROL COMM DAEMON-PID [UID GID] */
	if (argc != 5 && argc != 7)
		return 2;
	control = argv[2];
	if (parse_u64(argv[4], 10, &v) < 0 || v == 0 || v > INT32_MAX)
		return 2;
	daemon_pid = (pid_t)v;
	/* Nothing of the original but what a stand-in needs: its signals stay
	 * blocked (ghost_replace_program() or the import blocked them) and come
	 * by signalfd. */
	sigfillset(&all);
	(void)sigprocmask(SIG_SETMASK, &all, NULL);
	(void)syscall(SYS_close_range, 0U, ~0U, 0U);
	nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul >= 0) {
		(void)dup2(nul, 0);
		(void)dup2(nul, 1);
		(void)dup2(nul, 2);
		if (nul > 2)
			safe_close(nul);
	}
	if (argc == 7 && take_user(argv[5], argv[6]) < 0)
		die_lost();
	(void)prctl(PR_SET_NAME, argv[3]);
	/* No core of a stand-in; the hard limit stays the process's, should
	 * it come back and turn. */
	if (getrlimit(RLIMIT_CORE, &core) == 0) {
		core.rlim_cur = 0;
		(void)setrlimit(RLIMIT_CORE, &core);
	}
	sfd = signalfd(-1, &all, SFD_CLOEXEC);
	if (strlen(control) >= sizeof(sa.sun_path))
		die_lost();
	memcpy(sa.sun_path, control, strlen(control) + 1);
	cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sfd < 0 || cfd < 0 || connect(cfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    send_frame(cfd, CTL_STANDIN, NULL) < 0)
		die_lost();
	/* Children that ended before it took over (zombies of the original). */
	reap_children(cfd);
	for (;;) {
		struct pollfd p[2] = { { .fd = sfd, .events = POLLIN },
				       { .fd = cfd, .events = POLLIN } };

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die_lost();
		}
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			struct buf b = BUF_INIT;

			if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
				continue;
			/* The daemon's SIGCONT ends the freeze of the move: not for C. */
			if (si.ssi_signo == SIGCONT && (pid_t)si.ssi_pid == daemon_pid)
				continue;
			/* A child of its own changed state: reap, not pass on. */
			if (si.ssi_signo == SIGCHLD && si.ssi_code > 0) {
				reap_children(cfd);
				continue;
			}
			if (attr_put_u32(&b, A_SIGNAL, si.ssi_signo) < 0 ||
			    send_frame(cfd, CTL_STANDIN_SIGNAL, &b) < 0)
				die_lost();
			buf_release(&b);
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			uint8_t chunk[4096];
			ssize_t n = recv_with_fd(cfd, chunk, sizeof(chunk), &job_fd);

			if (n <= 0 || buf_append(&in, chunk, (size_t)n) < 0)
				die_lost();
			while (in.len >= CTL_HDR_SIZE) {
				uint16_t type;
				uint32_t len;

				if (ctl_frame_parse(in.data, &type, &len) < 0)
					die_lost();
				if (in.len < CTL_HDR_SIZE + len)
					break;
				if (type == CTL_STANDIN_EXIT)
					mirror_exit(in.data + CTL_HDR_SIZE, len);
				if (type == CTL_STANDIN_TURN && job_fd >= 0) {
					/* Back only if it could not turn: a stand-in still. */
					worker_host_turn(job_fd);
					job_fd = safe_close(job_fd);
				}
				if (type == CTL_ERROR)
					die_lost();
				memmove(in.data, in.data + CTL_HDR_SIZE + len,
					in.len - CTL_HDR_SIZE - len);
				in.len -= CTL_HDR_SIZE + len;
			}
		}
	}
}

/* ---- the daemon's side: stand-ins ------------------------------------------ */

static int daemon_exe(char *exe, size_t size)
{
	ssize_t n = readlink("/proc/self/exe", exe, size - 1);

	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	exe[n] = '\0';
	return 0;
}

static struct standin *standin_find(struct node_daemon *d, pid_t pid)
{
	for (struct standin *s = d->standins; s; s = s->next)
		if (s->pid == pid)
			return s;
	return NULL;
}

bool standin_holds(struct node_daemon *d, pid_t pid)
{
	return standin_find(d, pid) != NULL;
}

bool standin_describe(struct node_daemon *d, struct move_kid *k)
{
	struct standin *s = standin_find(d, k->pid);

	if (!s)
		return false;
	/* What it is to look like, whether or not it got there yet. */
	k->uid = s->uid;
	k->gid = s->gid;
	snprintf(k->comm, sizeof(k->comm), "%s", s->comm);
	return true;
}

static void standin_free(struct node_daemon *d, struct standin *s)
{
	LIST_REMOVE(d->standins, s);
	if (s->conn)
		ctl_conn_set_standin(s->conn, NULL);
	loop_io_free(s->pid_io);
	safe_close(s->pidfd);
	free(s);
}

static struct standin *standin_new(struct node_daemon *d, pid_t pid, pid_t parent, uid_t uid,
				   gid_t gid, const char *comm, uint32_t node, bool for_parent)
{
	struct standin *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->d = d;
	s->pidfd = -1;
	s->pid = pid;
	s->parent = parent;
	s->uid = uid;
	s->gid = gid;
	snprintf(s->comm, sizeof(s->comm), "%s", comm);
	s->node = node;
	s->for_parent = for_parent;
	LIST_PREPEND(d->standins, s);
	return s;
}

/* ---- ends that are no exit ---------------------------------------------------- */

void standin_quiet(struct node_daemon *d, pid_t pid)
{
	if (d->n_quiet == ARRAY_SIZE(d->quiet)) {
		/* The oldest is long reaped, or its report long lost. */
		memmove(d->quiet, d->quiet + 1, (d->n_quiet - 1) * sizeof(d->quiet[0]));
		d->n_quiet--;
	}
	d->quiet[d->n_quiet++] = pid;
}

static bool quiet_take(struct node_daemon *d, pid_t pid)
{
	for (size_t i = 0; i < d->n_quiet; i++)
		if (d->quiet[i] == pid) {
			memmove(d->quiet + i, d->quiet + i + 1,
				(d->n_quiet - i - 1) * sizeof(d->quiet[0]));
			d->n_quiet--;
			return true;
		}
	return false;
}

bool standin_ending(struct node_daemon *d, pid_t pid)
{
	for (size_t i = 0; i < d->n_quiet; i++)
		if (d->quiet[i] == pid)
			return true;
	return false;
}

void standin_reaped(struct node_daemon *d, pid_t pid)
{
	(void)quiet_take(d, pid);
}

/* The stand-in is no longer needed (its parent went, or the process it
 * stands in for is now another stand-in's): it ends with status 0 and its
 * end means nothing for the process. A stand-in that has not called in yet
 * is forgotten: it is refused when it does, and ends. */
static void standin_retire(struct node_daemon *d, struct standin *s)
{
	struct buf b = BUF_INIT;

	s->exit_sent = true;
	standin_quiet(d, s->pid);
	if (!s->conn) {
		standin_free(d, s);
		return;
	}
	if (attr_put_u32(&b, A_EXIT_CODE, 0) < 0 || ctl_send(s->conn, CTL_STANDIN_EXIT, &b) < 0)
		ctl_conn_kill(s->conn);
	buf_release(&b);
}

/* The stand-in process ended. Once it has called in, its connection's end
 * says so too and standin_conn_gone() decides; before that (killed while
 * it was starting) only this does. */
static void on_standin_end(struct loop_io *io, int fd, unsigned events, void *userdata)
{
	struct standin *s = userdata;

	(void)io;
	(void)fd;
	(void)events;
	s->pid_io = loop_io_free(s->pid_io);
	s->pidfd = safe_close(s->pidfd);
	if (!s->conn)
		standin_conn_gone(s, s->d);
}

/* Watch the stand-in process with a pidfd. One gone already is taken as
 * ended now. */
static void standin_watch(struct node_daemon *d, struct standin *s)
{
	s->pidfd = (int)syscall(SYS_pidfd_open, s->pid, 0);
	if (s->pidfd >= 0 &&
	    loop_io_new(d->loop, s->pidfd, LOOP_READ, on_standin_end, s, &s->pid_io) >= 0)
		return;
	if (s->pidfd < 0 && errno == ESRCH) {
		on_standin_end(NULL, -1, 0, s);
		return;
	}
	/* Without a watch it is seen ending only once it has called in. */
	log_warn_errno(errno, "process %d: cannot watch its stand-in", (int)s->pid);
	s->pidfd = safe_close(s->pidfd);
}

/* ---- making stand-ins ---------------------------------------------------------- */

int standin_make(struct node_daemon *d, pid_t pid, uid_t uid, gid_t gid, uint32_t node,
		 bool for_parent, char *why, size_t why_len)
{
	char exe[4096], comm[16], daemon_pid[16];
	const char *argv[] = { "ghostd", "--stand-in", d->control_path, comm, daemon_pid, NULL };
	struct standin *s;
	int r;

	r = daemon_exe(exe, sizeof(exe));
	if (r < 0) {
		snprintf(why, why_len, "cannot find the ghostd program: %s", strerror(-r));
		return r;
	}
	r = proc_comm(pid, comm, sizeof(comm));
	if (r < 0)
		snprintf(comm, sizeof(comm), "stand-in");
	snprintf(daemon_pid, sizeof(daemon_pid), "%d", (int)getpid());
	s = standin_new(d, pid, proc_parent(pid), uid, gid, comm, node, for_parent);
	if (!s) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	r = ghost_replace_program(pid, exe, argv, why, why_len);
	if (r < 0) {
		standin_free(d, s);
		return r;
	}
	standin_watch(d, s);
	/* The freeze of the move stopped it: let the stand-in run. */
	(void)kill(pid, SIGCONT);
	log_info("process %d: a stand-in keeps its PID here for its %s", (int)pid,
		 for_parent ? "parent" : "children");
	return 0;
}

int standin_spawn_fill(struct node_daemon *d, const struct move_kid *kids, size_t n,
		       struct standin_spawn *ret)
{
	if (n > ARRAY_SIZE(ret->child))
		return -E2BIG;
	/* The import's new process is a copy of the import worker, itself a
	 * copy of the daemon: this is the daemon's program, even if its file
	 * was replaced meanwhile. */
	snprintf(ret->exe, sizeof(ret->exe), "/proc/self/exe");
	if (snprintf(ret->control, sizeof(ret->control), "%s", d->control_path) >=
	    (int)sizeof(ret->control))
		return -ENAMETOOLONG; /* cannot be: it is a socket's path */
	for (size_t i = 0; i < n; i++) {
		struct standin_spawn_argv *a = &ret->a[i];

		snprintf(a->comm, sizeof(a->comm), "%s", kids[i].comm);
		snprintf(a->daemon_pid, sizeof(a->daemon_pid), "%d", (int)getpid());
		snprintf(a->uid, sizeof(a->uid), "%u", (unsigned)kids[i].uid);
		snprintf(a->gid, sizeof(a->gid), "%u", (unsigned)kids[i].gid);
		ret->child[i].pid = kids[i].pid;
	}
	ret->n = n;
	standin_spawn_relink(ret);
	return 0;
}

void standin_spawn_relink(struct standin_spawn *s)
{
	for (size_t i = 0; i < s->n && i < ARRAY_SIZE(s->child); i++) {
		struct standin_spawn_argv *a = &s->a[i];

		a->argv[0] = "ghostd";
		a->argv[1] = "--stand-in";
		a->argv[2] = s->control;
		a->argv[3] = a->comm;
		a->argv[4] = a->daemon_pid;
		a->argv[5] = a->uid;
		a->argv[6] = a->gid;
		a->argv[7] = NULL;
		s->child[i].path = s->exe;
		s->child[i].argv = a->argv;
	}
}

int standin_expect(struct node_daemon *d, const struct move_kid *k, pid_t parent, uint32_t node)
{
	struct standin *s = standin_new(d, k->pid, parent, k->uid, k->gid, k->comm, node, true);

	if (!s)
		return -ENOMEM;
	s->arriving = true;
	return 0;
}

void standin_arrivals_cancel(struct node_daemon *d, pid_t parent)
{
	struct standin *s, *next;

	for (s = d->standins; s; s = next) {
		next = s->next;
		if (s->arriving && s->parent == parent)
			standin_retire(d, s);
	}
}

void standin_arrivals_commit(struct node_daemon *d, pid_t parent, const void *data, size_t len)
{
	struct standin *s, *next;
	struct attr_iter it;
	struct attr a;

	for (s = d->standins; s; s = next) {
		next = s->next;
		if (s->arriving && s->parent == parent) {
			s->arriving = false;
			standin_watch(d, s);
		}
	}
	/* Children whose exit the source knew: their stand-ins here end so. */
	attr_iter_init(&it, data, len);
	while (attr_next(&it, &a) > 0) {
		struct attr pa, wa;
		uint32_t kid, ws;

		if (a.type != A_CHILD_EXIT || attr_find(a.data, a.len, A_PID, &pa) < 0 ||
		    attr_u32(&pa, &kid) < 0 || attr_find(a.data, a.len, A_WSTATUS, &wa) < 0 ||
		    attr_u32(&wa, &ws) < 0)
			continue;
		standin_proc_exited(d, (pid_t)kid, (int)ws);
	}
}

void standin_arrival_unseen(struct node_daemon *d, pid_t parent, pid_t kid)
{
	struct standin *s = standin_find(d, kid);
	char why[256];

	if (!s || s->parent != parent)
		return;
	/* Its end means nothing: its connection going must kill nobody. */
	s->exit_sent = true;
	if (ghost_reap_child(parent, kid, why, sizeof(why)) < 0)
		log_warn("%s: process %d may see a child %d it had already waited for",
			 why, (int)parent, (int)kid);
	else
		log_info("process %d: the stand-in of its child %d, which it had waited for, is "
			 "gone", (int)parent, (int)kid);
	if (!s->conn)
		standin_free(d, s);
}

int standin_hand_over(struct node_daemon *d, pid_t kid, struct buf *commit)
{
	struct standin *s = standin_find(d, kid);
	struct buf one = BUF_INIT;
	int r = 0;

	if (!s)
		return 0;
	if (s->have_exit) {
		r = attr_put_u32(&one, A_PID, (uint32_t)kid);
		if (r >= 0)
			r = attr_put_u32(&one, A_WSTATUS, (uint32_t)s->wstatus);
		if (r >= 0)
			r = attr_put(commit, A_CHILD_EXIT, one.data, one.len);
		buf_release(&one);
		if (r < 0)
			return r;
	}
	standin_retire(d, s);
	return 0;
}

void standin_parent_exited(struct node_daemon *d, pid_t parent)
{
	struct standin *s, *next;

	/* Orphans: nobody waits for them any more, and the processes they
	 * stand in for go on. (One that died already was seen dying by its
	 * parent: its connection's end kills the process.) */
	for (s = d->standins; s; s = next) {
		next = s->next;
		if (s->parent == parent && !s->exit_sent && proc_alive(s->pid)) {
			log_info("process %d: its parent %d ended; its stand-in here goes",
				 (int)s->pid, (int)parent);
			standin_retire(d, s);
		}
	}
}

void standin_hello(struct node_daemon *d, struct ctl_conn *c)
{
	struct standin *s = standin_find(d, ctl_conn_pid(c));

	if (!s || s->conn || s->exit_sent) {
		ctl_send_error(c, -EPERM, 0, "process %d is no stand-in of this node",
			       (int)ctl_conn_pid(c));
		return;
	}
	s->conn = c;
	ctl_conn_set_standin(c, s);
	if (s->have_exit)
		standin_proc_exited(d, s->pid, s->wstatus);
}

/* ---- turning into the process ---------------------------------------------------- */

static void signal_on(struct node_daemon *d, uint32_t node, pid_t pid, int sig);

int standin_turn_ready(struct node_daemon *d, pid_t pid, pid_t ppid)
{
	struct standin *s = standin_find(d, pid);
	pid_t parent = proc_parent(pid);

	if (!s)
		return -ENOENT;
	if (s->turning || !s->conn || s->exit_sent || s->arriving)
		return -EBUSY;
	/* Its parent here must be the one the process has (or the daemon). */
	if (ppid > 0 ? parent != ppid : parent != getpid())
		return -ECHILD;
	return 0;
}

int standin_turn(struct node_daemon *d, pid_t pid, const struct worker_import_job *j,
		 const struct standin_spawn *spawn, int *ret_fd)
{
	struct standin *s = standin_find(d, pid);
	int ours, theirs, r;

	if (!s || !s->conn)
		return -ENOENT;
	r = worker_job_socket(&ours, &theirs);
	if (r < 0)
		return r;
	r = worker_host_send(ours, j, spawn, ret_fd);
	safe_close(ours);
	if (r < 0) {
		safe_close(theirs);
		return r;
	}
	r = ctl_send_fd(s->conn, CTL_STANDIN_TURN, NULL, theirs);
	if (r < 0) {
		*ret_fd = safe_close(*ret_fd);
		return r;
	}
	s->turning = true;
	log_info("process %d: its stand-in here turns into it", (int)pid);
	return 0;
}

void standin_turn_done(struct node_daemon *d, pid_t pid)
{
	struct standin *s = standin_find(d, pid);

	/* Failed before it began to turn: a stand-in as before. */
	if (s && s->turning && s->conn)
		s->turning = false;
}

void standin_turn_lost(struct node_daemon *d, pid_t pid, uint32_t node)
{
	/* Its parent here saw its child die: the process must not live on. */
	log_info("process %d: the stand-in that turned into it is killed; killing it on node %u",
		 (int)pid, node);
	signal_on(d, node, pid, SIGKILL);
}

void standin_turned(struct node_daemon *d, pid_t pid)
{
	struct standin *s = standin_find(d, pid);

	if (s && s->turning) {
		log_info("process %d: the stand-in that held its PID here is the process now",
			 (int)pid);
		standin_free(d, s);
	}
}

/* ---- signals and exits ---------------------------------------------------------- */

/* Send sig to process pid wherever it runs, on behalf of root: the kernel
 * already allowed whoever sent it to the stand-in. */
static void forward_signal(struct node_daemon *d, pid_t pid, int sig)
{
	struct mproc *p = proc_find(d, pid);

	/* Through its birth node, which knows where it runs now. */
	signal_on(d, p && p->state == MPROC_ELSEWHERE ? p->node : node_of_pid(d, pid), pid, sig);
}

/* Send sig to process pid on node (this one: 0 or d->self), on behalf of root. */
static void signal_on(struct node_daemon *d, uint32_t node, pid_t pid, int sig)
{
	struct buf b = BUF_INIT, err = BUF_INIT;
	int r;

	if (node == d->self || node == 0) {
		if (proc_kill(d, pid, sig, 0, &err) < 0)
			log_debug("signal %d for process %d: %s", sig, (int)pid, err.data);
		buf_release(&err);
		return;
	}
	r = attr_put_u64(&b, A_REQ, node_new_id(d));
	if (r >= 0)
		r = attr_put_u32(&b, A_ORIGIN, d->self);
	if (r >= 0)
		r = attr_put_u32(&b, A_PID, (uint32_t)pid);
	if (r >= 0)
		r = attr_put_u32(&b, A_SIGNAL, (uint32_t)sig);
	if (r >= 0)
		r = attr_put_u32(&b, A_UID, 0);
	if (r >= 0)
		r = msg_send(d->msg, node, NODE_CH_PROC, PROC_KILL_REQ, b.data, b.len);
	if (r < 0)
		log_warn("cannot pass signal %d on to process %d on node %u", sig, (int)pid,
			 node);
	buf_release(&b);
}

/* Most times a PROC_CHILD_EXITED is passed on looking for its parent. */
#define CHILD_EXIT_HOPS 8

static void send_child_exited(struct node_daemon *d, uint32_t node, pid_t parent, pid_t kid,
			      int wstatus, uint32_t hops)
{
	struct buf b = BUF_INIT;
	int r;

	r = attr_put_u32(&b, A_PID, (uint32_t)parent);
	if (r >= 0)
		r = attr_put_u32(&b, A_CHILD_PID, (uint32_t)kid);
	if (r >= 0)
		r = attr_put_u32(&b, A_WSTATUS, (uint32_t)wstatus);
	if (r >= 0)
		r = attr_put_u32(&b, A_HOPS, hops);
	if (r >= 0)
		r = msg_send(d->msg, node, NODE_CH_PROC, PROC_CHILD_EXITED, b.data, b.len);
	if (r < 0)
		log_warn("cannot tell node %u that process %d, a child of %d, exited", node,
			 (int)kid, (int)parent);
	buf_release(&b);
}

/* Child kid of parent, which runs elsewhere, was reaped here by parent's
 * stand-in with wstatus: the real parent's stand-in of kid ends the same
 * way. An end that is no exit (a moved process's original) is dropped. */
static void child_reaped(struct node_daemon *d, pid_t parent, pid_t kid, int wstatus)
{
	uint32_t node;

	bool quiet = quiet_take(d, kid);

	/* The table's side first: a managed process ended, or a moved one's
	 * original is gone (its move may wait for that). */
	proc_child_exited(d, kid, wstatus);
	if (quiet)
		return;
	node = proc_locate(d, parent);
	if (node == d->self) {
		standin_proc_exited(d, kid, wstatus);
		return;
	}
	if (node != 0)
		send_child_exited(d, node, parent, kid, wstatus, 0);
}

void standin_recv_child_exited(struct node_daemon *d, const void *data, size_t len)
{
	uint32_t parent = 0, kid = 0, ws = 0, hops = 0, node;
	struct attr_iter it;
	struct attr a;

	attr_iter_init(&it, data, len);
	while (attr_next(&it, &a) > 0) {
		if (a.type == A_PID)
			(void)attr_u32(&a, &parent);
		else if (a.type == A_CHILD_PID)
			(void)attr_u32(&a, &kid);
		else if (a.type == A_WSTATUS)
			(void)attr_u32(&a, &ws);
		else if (a.type == A_HOPS)
			(void)attr_u32(&a, &hops);
	}
	if (parent == 0 || kid == 0)
		return;
	if (standin_holds(d, (pid_t)kid)) {
		standin_proc_exited(d, (pid_t)kid, (int)ws);
		return;
	}
	/* The parent moved on (or just came from here): after it. */
	node = proc_locate(d, (pid_t)parent);
	if (node != d->self && node != 0 && hops < CHILD_EXIT_HOPS)
		send_child_exited(d, node, (pid_t)parent, (pid_t)kid, (int)ws, hops + 1);
	else
		log_debug("process %d, a child of %d, exited; no stand-in of it is left",
			  (int)kid, (int)parent);
}

static bool has_children(pid_t pid)
{
	pid_t kids[1];
	size_t n = 0;

	return proc_children(pid, kids, ARRAY_SIZE(kids), &n) < 0 || n > 0;
}

void standin_conn_frame(struct standin *s, struct node_daemon *d, const struct ctl_request *req)
{
	struct attr a;
	uint32_t sig, kid, ws;

	if (req->type == CTL_STANDIN_CHILD) {
		if (attr_find(req->payload, req->len, A_PID, &a) < 0 || attr_u32(&a, &kid) < 0 ||
		    attr_find(req->payload, req->len, A_WSTATUS, &a) < 0 || attr_u32(&a, &ws) < 0)
			return;
		child_reaped(d, s->pid, (pid_t)kid, (int)ws);
		/* Kept for its children only: with the last one gone, it goes. */
		if (!s->for_parent && !s->exit_sent && !has_children(s->pid)) {
			log_info("process %d: its stand-in here has no children left; it goes",
				 (int)s->pid);
			standin_retire(d, s);
		}
		return;
	}
	if (req->type != CTL_STANDIN_SIGNAL ||
	    attr_find(req->payload, req->len, A_SIGNAL, &a) < 0 || attr_u32(&a, &sig) < 0 ||
	    sig == 0 || sig >= NSIG)
		return;
	log_info("process %d: signal %u to its stand-in passed on", (int)s->pid, sig);
	forward_signal(d, s->pid, (int)sig);
}

void standin_conn_gone(struct standin *s, struct node_daemon *d)
{
	s->conn = NULL;
	/* Turning, it closes every fd it had: its end, or the turn's
	 * outcome (standin_turned()), decides. */
	if (s->turning && s->pidfd >= 0)
		return;
	if (!s->exit_sent) {
		/* It was killed (SIGKILL cannot be caught): its parent saw its
		 * child die, so the process must not live on elsewhere. */
		log_info("process %d: its stand-in was killed; killing the process", (int)s->pid);
		forward_signal(d, s->pid, SIGKILL);
	}
	standin_free(d, s);
}

void standin_proc_exited(struct node_daemon *d, pid_t pid, int wstatus)
{
	struct standin *s = standin_find(d, pid);
	struct buf b = BUF_INIT;
	int r;

	if (!s || s->exit_sent)
		return;
	s->have_exit = true;
	s->wstatus = wstatus;
	if (!s->conn)
		return;
	if (WIFSIGNALED(wstatus))
		r = attr_put_u32(&b, A_EXIT_SIGNAL, (uint32_t)WTERMSIG(wstatus));
	else
		r = attr_put_u32(&b, A_EXIT_CODE, (uint32_t)WEXITSTATUS(wstatus));
	if (r >= 0 && ctl_send(s->conn, CTL_STANDIN_EXIT, &b) >= 0)
		s->exit_sent = true;
	buf_release(&b);
}

void standin_node_down(struct node_daemon *d, uint32_t node)
{
	for (struct standin *s = d->standins; s; s = s->next) {
		struct mproc *p = proc_find(d, s->pid);
		uint32_t at = p && p->state == MPROC_ELSEWHERE ? p->node : s->node;

		/* The process was lost with its node. */
		if (at == node && !s->have_exit && !s->exit_sent)
			standin_proc_exited(d, s->pid, SIGKILL);
	}
}

/* ---- the daemon's side: parent stand-ins ------------------------------------- */

static struct parent_standin *parent_free(struct parent_standin *ps)
{
	LIST_REMOVE(ps->d->parent_standins, ps);
	ps->report_io = loop_io_free(ps->report_io);
	ps->report_fd = safe_close(ps->report_fd);
	ps->job_fd = safe_close(ps->job_fd);
	free(ps);
	return NULL;
}

static struct parent_standin *parent_find(struct node_daemon *d, pid_t pid)
{
	for (struct parent_standin *ps = d->parent_standins; ps; ps = ps->next)
		if (ps->pid == pid)
			return ps;
	return NULL;
}

bool standin_is_parent(struct node_daemon *d, pid_t pid)
{
	return parent_find(d, pid) != NULL;
}

/* No child left and no import of one on its way: let it go (it ends when it
 * sees its job socket close). */
static void parent_maybe_close(struct parent_standin *ps)
{
	if (ps->job_fd < 0 || ps->jobs > 0 || has_children(ps->pid))
		return;
	log_info("process %d: its stand-in here has no children left; it goes", (int)ps->pid);
	ps->job_fd = safe_close(ps->job_fd);
}

static void on_parent_io(struct loop_io *io, int fd, unsigned events, void *userdata)
{
	struct parent_standin *ps = userdata;
	struct node_daemon *d = ps->d;
	struct worker_report rep;
	int r;

	(void)io;
	(void)fd;
	(void)events;
	for (;;) {
		r = worker_read_report(ps->report_fd, &rep);
		if (r == 0)
			return;
		if (r < 0) {
			/* Gone: its child, if alive, is the daemon's now (subreaper). */
			parent_free(ps);
			return;
		}
		if (rep.kind == WORKER_SIGNAL) {
			log_info("process %d: signal %d to its parent's stand-in passed on",
				 rep.pid > 0 ? (int)rep.pid : (int)ps->child, (int)rep.done);
			forward_signal(d, ps->pid, (int)rep.done);
		} else if (rep.kind == WORKER_CHILD_EXIT) {
			/* First, so that it is going before anyone hears of the end. */
			parent_maybe_close(ps);
			child_reaped(d, ps->pid, rep.pid, (int)rep.done);
		}
	}
}

int standin_parent_adopt(struct node_daemon *d, pid_t pid, pid_t child, int report_fd,
			 int job_fd)
{
	struct parent_standin *ps = calloc(1, sizeof(*ps));
	int r;

	if (!ps)
		return -ENOMEM;
	ps->d = d;
	ps->pid = pid;
	ps->child = child;
	ps->report_fd = report_fd;
	ps->job_fd = job_fd;
	r = loop_io_new(d->loop, report_fd, LOOP_READ, on_parent_io, ps, &ps->report_io);
	if (r < 0) {
		free(ps);
		return r;
	}
	LIST_PREPEND(d->parent_standins, ps);
	return 0;
}

int standin_parent_host(struct node_daemon *d, pid_t parent, const struct worker_import_job *j,
			const struct standin_spawn *spawn, int *ret_fd)
{
	struct parent_standin *ps = parent_find(d, parent);
	int r;

	if (!ps || ps->job_fd < 0)
		return -ENOENT;
	r = worker_host_send(ps->job_fd, j, spawn, ret_fd);
	if (r < 0)
		return r;
	ps->jobs++;
	return 0;
}

void standin_parent_host_done(struct node_daemon *d, pid_t parent)
{
	struct parent_standin *ps = parent_find(d, parent);

	if (!ps || ps->jobs == 0)
		return;
	ps->jobs--;
	ps->turning = false;
	parent_maybe_close(ps);
}

int standin_parent_ready(struct node_daemon *d, pid_t pid)
{
	struct parent_standin *ps = parent_find(d, pid);

	if (!ps)
		return -ENOENT;
	if (ps->job_fd < 0)
		return -ESTALE;
	return ps->jobs > 0 ? -EBUSY : 0;
}

int standin_parent_turn(struct node_daemon *d, pid_t pid, const struct worker_import_job *j,
			const struct standin_spawn *spawn, int *ret_fd)
{
	struct parent_standin *ps = parent_find(d, pid);
	int r = standin_parent_ready(d, pid);

	if (r < 0)
		return r;
	r = standin_parent_host(d, pid, j, spawn, ret_fd);
	if (r >= 0) {
		ps->turning = true;
		log_info("process %d: its parent stand-in here turns into it", (int)pid);
	}
	return r;
}

bool standin_parent_turning(struct node_daemon *d, pid_t pid)
{
	struct parent_standin *ps = parent_find(d, pid);

	return ps && ps->turning;
}

void standin_parent_turned(struct node_daemon *d, pid_t pid)
{
	struct parent_standin *ps = parent_find(d, pid);

	if (ps && ps->turning) {
		log_info("process %d: the stand-in that held its PID here is the process now",
			 (int)pid);
		parent_free(ps);
	}
}

void standin_free_all(struct node_daemon *d)
{
	while (d->standins)
		standin_free(d, d->standins);
	while (d->parent_standins)
		parent_free(d->parent_standins);
}

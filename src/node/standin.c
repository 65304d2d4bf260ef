/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Stand-ins: how a process keeps its parent and its parent's view of it
 * across a migration. Linux ties a parent and a child to one kernel: the
 * parent's wait() sees only its own children, and the child's getppid()
 * names its parent in its own PID namespace. So when a process C whose
 * parent P lives on node A moves to node B, two small processes stand in:
 *
 *   node A                                 node B
 *   P (the real parent)                    X: parent stand-in, PID = P
 *   `- C: child stand-in, PID = C             `- C (the real process)
 *
 * - The child stand-in is C's original itself: once B holds the complete
 *   copy, instead of SIGKILL the source daemon makes the original execve
 *   "ghostd --stand-in" (ghost_replace_program()). So P never sees its child
 *   go: same PID, same parent, no SIGCHLD. The stand-in calls in on the
 *   control socket; every signal it receives (a kill() by a process of node
 *   A, ghost kill, a terminal) is forwarded to C wherever C runs; when C
 *   exits, its node reports the status (PROC_EXITED) to C's birth node,
 *   which tells the stand-in (CTL_STANDIN_EXIT); the stand-in ends the same
 *   way, so P's waitpid() returns C's real exit status. If the stand-in is
 *   killed (SIGKILL cannot be caught), C is killed too: the parent already
 *   saw its child die.
 * - The parent stand-in is the import worker of the move, cloned with P's
 *   PID: C is created as its child, so C's getppid() is still P. After the
 *   import it stays, reaps C and reports C's exit status to its daemon
 *   (which handles it as if it had reaped C itself), and forwards the
 *   signals it receives (C's kill(getppid(), ...)) to P.
 *
 * Neither is on any data path: a stand-in only mirrors exit status and
 * signals, as the Ghost report's migration keeps no forwarding of data.
 *
 * Limits (refused with a message): a process with children of its own does
 * not move (its children would lose their parent); C cannot come back to
 * node A while its stand-in holds its PID there; two children of one parent
 * cannot be on the same other node at once (one PID for both stand-ins).
 *
 *   event                         function
 *   move commits (source)         standin_make()
 *   CTL_STANDIN (the stand-in)    standin_hello()
 *   CTL_STANDIN_SIGNAL            standin_conn_frame()
 *   PROC_EXITED (birth node)      standin_proc_exited()
 *   stand-in connection gone      standin_conn_gone()
 *   parent stand-in report        on_parent_io()
 */
#include <errno.h>
#include <fcntl.h>
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
	pid_t pid;              /* the stand-in's PID: the moved process's */
	uid_t uid;
	struct ctl_conn *conn;  /* once it called in */
	bool have_exit;         /* the process exited: mirror wstatus */
	int wstatus;
	bool exit_sent;
};

struct parent_standin {
	struct parent_standin *next, *prev;
	struct node_daemon *d;
	pid_t pid;              /* the parent's PID, which it holds here */
	pid_t child;            /* the process it holds as its child */
	int report_fd;
	struct loop_io *report_io;
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

int node_standin_main(int argc, char **argv)
{
	const char *control;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct rlimit no_core = { 0, 0 };
	sigset_t all;
	pid_t daemon_pid;
	uint64_t v;
	int sfd, cfd, nul;
	struct buf in = BUF_INIT;

	/* argv: ghostd --stand-in CONTROL COMM DAEMON-PID */
	if (argc != 5)
		return 2;
	control = argv[2];
	if (parse_u64(argv[4], 10, &v) < 0 || v == 0 || v > INT32_MAX)
		return 2;
	daemon_pid = (pid_t)v;
	/* Nothing of the original but what a stand-in needs: its signals stay
	 * blocked (ghost_replace_program() blocked them) and come by signalfd. */
	(void)syscall(SYS_close_range, 0U, ~0U, 0U);
	nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul >= 0) {
		(void)dup2(nul, 0);
		(void)dup2(nul, 1);
		(void)dup2(nul, 2);
		if (nul > 2)
			safe_close(nul);
	}
	(void)prctl(PR_SET_NAME, argv[3]);
	(void)setrlimit(RLIMIT_CORE, &no_core);
	sigfillset(&all);
	(void)sigprocmask(SIG_SETMASK, &all, NULL);
	sfd = signalfd(-1, &all, SFD_CLOEXEC);
	if (strlen(control) >= sizeof(sa.sun_path))
		die_lost();
	memcpy(sa.sun_path, control, strlen(control) + 1);
	cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sfd < 0 || cfd < 0 || connect(cfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    send_frame(cfd, CTL_STANDIN, NULL) < 0)
		die_lost();
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
			if (attr_put_u32(&b, A_SIGNAL, si.ssi_signo) < 0 ||
			    send_frame(cfd, CTL_STANDIN_SIGNAL, &b) < 0)
				die_lost();
			buf_release(&b);
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			uint8_t chunk[4096];
			ssize_t n = read(cfd, chunk, sizeof(chunk));

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
				if (type == CTL_ERROR)
					die_lost();
				memmove(in.data, in.data + CTL_HDR_SIZE + len,
					in.len - CTL_HDR_SIZE - len);
				in.len -= CTL_HDR_SIZE + len;
			}
		}
	}
}

/* ---- the daemon's side: child stand-ins -------------------------------------- */

static int read_comm(pid_t pid, char *comm, size_t size)
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

static void standin_free(struct node_daemon *d, struct standin *s)
{
	LIST_REMOVE(d->standins, s);
	if (s->conn)
		ctl_conn_set_standin(s->conn, NULL);
	free(s);
}

int standin_make(struct node_daemon *d, pid_t pid, uid_t uid, char *why, size_t why_len)
{
	char exe[4096], comm[32], daemon_pid[16];
	const char *argv[] = { "ghostd", "--stand-in", d->control_path, comm, daemon_pid, NULL };
	struct standin *s;
	ssize_t n;
	int r;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		snprintf(why, why_len, "cannot find the ghostd program: %s", strerror(errno));
		return -errno;
	}
	exe[n] = '\0';
	r = read_comm(pid, comm, sizeof(comm));
	if (r < 0)
		snprintf(comm, sizeof(comm), "stand-in");
	snprintf(daemon_pid, sizeof(daemon_pid), "%d", (int)getpid());
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	r = ghost_replace_program(pid, exe, argv, why, why_len);
	if (r < 0) {
		free(s);
		return r;
	}
	s->pid = pid;
	s->uid = uid;
	LIST_PREPEND(d->standins, s);
	/* The freeze of the move stopped it: let the stand-in run. */
	(void)kill(pid, SIGCONT);
	log_info("process %d: a stand-in keeps its PID here for its parent", (int)pid);
	return 0;
}

void standin_hello(struct node_daemon *d, struct ctl_conn *c)
{
	struct standin *s = standin_find(d, ctl_conn_pid(c));

	if (!s || s->conn) {
		ctl_send_error(c, -EPERM, 0, "process %d is no stand-in of this node",
			       (int)ctl_conn_pid(c));
		return;
	}
	s->conn = c;
	ctl_conn_set_standin(c, s);
	if (s->have_exit)
		standin_proc_exited(d, s->pid, s->wstatus);
}

/* Send sig to process pid wherever it runs, on behalf of root: the kernel
 * already allowed whoever sent it to the stand-in. */
static void forward_signal(struct node_daemon *d, pid_t pid, int sig)
{
	struct mproc *p = proc_find(d, pid);
	uint32_t node = p && p->state == MPROC_ELSEWHERE ? p->node : node_of_pid(d, pid);
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

void standin_conn_frame(struct standin *s, struct node_daemon *d, const struct ctl_request *req)
{
	struct attr a;
	uint32_t sig;

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

	if (!s)
		return;
	s->have_exit = true;
	s->wstatus = wstatus;
	if (!s->conn || s->exit_sent)
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

		/* The process was lost with its node. */
		if (p && p->state == MPROC_ELSEWHERE && p->node == node && !s->have_exit)
			standin_proc_exited(d, s->pid, SIGKILL);
	}
}

/* ---- the daemon's side: parent stand-ins ------------------------------------- */

static struct parent_standin *parent_free(struct parent_standin *ps)
{
	LIST_REMOVE(ps->d->parent_standins, ps);
	ps->report_io = loop_io_free(ps->report_io);
	ps->report_fd = safe_close(ps->report_fd);
	free(ps);
	return NULL;
}

bool standin_is_parent(struct node_daemon *d, pid_t pid)
{
	for (struct parent_standin *ps = d->parent_standins; ps; ps = ps->next)
		if (ps->pid == pid)
			return true;
	return false;
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
				 (int)ps->child, (int)rep.done);
			forward_signal(d, ps->pid, (int)rep.done);
		} else if (rep.kind == WORKER_CHILD_EXIT) {
			proc_child_exited(d, rep.pid, (int)rep.done);
		}
	}
}

int standin_parent_adopt(struct node_daemon *d, pid_t pid, pid_t child, int report_fd)
{
	struct parent_standin *ps = calloc(1, sizeof(*ps));
	int r;

	if (!ps)
		return -ENOMEM;
	ps->d = d;
	ps->pid = pid;
	ps->child = child;
	ps->report_fd = report_fd;
	r = loop_io_new(d->loop, report_fd, LOOP_READ, on_parent_io, ps, &ps->report_io);
	if (r < 0) {
		free(ps);
		return r;
	}
	LIST_PREPEND(d->parent_standins, ps);
	return 0;
}

void standin_free_all(struct node_daemon *d)
{
	while (d->standins)
		standin_free(d, d->standins);
	while (d->parent_standins)
		parent_free(d->parent_standins);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Run sessions: `ghost run` as seen by the daemons. A session has one of
 * three roles:
 *
 *   LOCAL   the process runs on this node, with the client's own stdin,
 *           stdout and stderr (passed with SCM_RIGHTS); the session reports
 *           its start and exit to the client and forwards its signals;
 *   CALLER  the process runs on another node: the session relays the
 *           client's frames to the TARGET session there and back;
 *   TARGET  the process runs here for a CALLER elsewhere: its stdio are
 *           pipes (or a pseudo-terminal) that this session pumps.
 *
 * Output and input are flow controlled end to end: the TARGET sends at most
 * RUN_WINDOW bytes of output the client has not acknowledged (CTL_ACK ->
 * RUN_OUT_ACK), and the client sends at most RUN_WINDOW bytes of input the
 * process has not consumed (RUN_IN_ACK -> CTL_STDIN_ACK). So no daemon holds
 * more than a window per session and direction, and a slow reader slows
 * only its own process.
 *
 *                 exec ok                 process reaped
 *   STARTING ------------------> RUNNING ----------------> DRAINING --------> (freed)
 *     |   (LOCAL, TARGET: spawn;   |  ^  (TARGET: output     all output sent,
 *     |    CALLER: RUN_START sent) |  |   still in pipes)    RUN_EXIT / CTL_EXIT
 *     |                            |  | commit
 *     +-- exec failed, node down, -+  |
 *         client gone: error       | ARRIVING (TARGET at a migration's destination)
 *         to the client, freed     |
 *                                  +-- client gone (CALLER: RUN_CLOSE),
 *                                  |   RUN_CLOSE or caller down (TARGET:
 *                                  |   SIGHUP to the process), node down
 *                                  |   (CALLER: error to the client): freed
 *                                  |
 *                                  +-- migrated (move.c commits, the original is killed):
 *                                        LOCAL: becomes a CALLER of the destination,
 *                                               CTL_RELAY tells the client to relay
 *                                        TARGET: MOVED --output drained--> RUN_MOVED sent
 *                                               --RUN_HANDED and predecessor done-->
 *                                               RUN_MOVE_END sent, freed
 *
 *   Detached runs end their session once the process is started.
 *
 * Migration: every place the process has run at since its start is a
 * *stint*, a TARGET session of the destination named by the move that
 * brought the process there (its predecessor's node and transfer id). The
 * caller (CALLER) always talks to one stint, and stints hand the session on:
 *
 *   old stint S              destination stint D              caller C
 *   (MOVE_PREPARE: D opens pipes or a pty for the import: ARRIVING)
 *   commit, original stopped:
 *   RUN_MOVE_INPUT (stdin the process had not read, termios) --> D
 *   RUN_IN (input S had not yet written) ----------------------> D
 *   (MOVE_COMMIT: D lets the process run)
 *   drain S's pipes: RUN_OUT... ----------------------------------------------> C
 *   RUN_MOVED (D, output in flight) ------------------------------------------> C
 *                                                   <-------- RUN_RESUME (output in flight)
 *           <-------------------------------------------------- RUN_HANDED
 *   input that reached S meanwhile, forwarded ------> D
 *   RUN_MOVE_END ------------------------------------> D
 *
 * D lets output flow only on RUN_RESUME (so S's output reaches the client
 * first), and takes input from C only after RUN_MOVE_END (so S's comes
 * first). A process started LOCAL has no old stint: at the commit its
 * session sends D an empty RUN_MOVE_INPUT, RUN_MOVE_END and RUN_RESUME
 * itself, becomes D's CALLER, and CTL_RELAY makes the client relay from
 * then on. Before the commit nothing of a session changes, so a failed move
 * leaves it as it was; the destination's ARRIVING stint is dropped.
 *
 * 1. A session is in d->sessions from its creation to session_free().
 * 2. s->conn and the connection's session point at each other, or both are
 *    NULL; likewise s->proc and the process's session.
 * 3. A TARGET never has more than RUN_WINDOW bytes of output in flight nor
 *    buffers more than 2 * RUN_WINDOW bytes of input the client has not
 *    had acknowledged (a caller sending more breaks the protocol and loses
 *    its session); input carried from an old stint was acknowledged there.
 * 4. Output of all stints of a session reaches the client in order: a stint
 *    sends output only once resumed, and is resumed only after its
 *    predecessor has sent all of its own. The output in flight and not
 *    acknowledged is handed on with RUN_MOVED/RUN_RESUME, so the window
 *    holds across stints.
 * 5. Input reaches the process in the order the client sent it: a stint
 *    takes the caller's input only after its predecessor's RUN_MOVE_END,
 *    and a MOVED stint forwards what it gets, in order.
 * 6. A stint sends nothing to the caller before it is resumed (acks wait),
 *    so the caller never hears from a node it does not talk to yet.
 *
 *   event                        function
 *   CTL_RUN                      run_request() -> start_local() / start_remote()
 *   RUN_START (TARGET)           target_start()
 *   exec outcome                 run_proc_exec()
 *   process reaped               run_proc_exited()
 *   client frames                run_conn_frame()
 *   daemon messages              run_recv() -> caller_recv() / target_recv()
 *   pipe or pty ready (TARGET)   on_end_io() -> pump_out() / pump_in()
 *   client gone                  run_conn_gone()
 *   node down                    run_node_down()
 *   migration, source            run_move_check(), run_move_prepare(), run_move_commit()
 *   migration, destination       run_arrival_prepare(), run_arrival_commit(),
 *                                run_arrival_drop()
 *   moved original exited        on_orig_exit()
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define LOG_PREFIX "run"
#include "base/log.h"
#include "node/node-int.h"
#include "base/banned.h"

#define MAX_ARGS 65536

enum run_role {
	ROLE_LOCAL,
	ROLE_CALLER,
	ROLE_TARGET,
};

enum run_state {
	STATE_STARTING,
	STATE_ARRIVING, /* TARGET: a migration brings the process; not committed yet */
	STATE_RUNNING,
	STATE_DRAINING,
	STATE_MOVED,    /* TARGET: the process left; handing the session on */
};

/* One fd of a TARGET's process stdio, seen from the daemon. */
struct end {
	int fd;
	struct loop_io *io;
	bool in;       /* input for the process is written here */
	bool out;      /* output of the process is read here */
	bool tty;      /* a pseudo-terminal's master */
	uint32_t fdno; /* out: 1 stdout, 2 stderr */
	bool out_eof;
	bool out_idle; /* the last read found nothing */
};

struct run_session {
	struct run_session *next, *prev;
	struct node_daemon *d;
	enum run_role role;
	enum run_state state;
	uint64_t sid;
	uint32_t peer;         /* CALLER: the target node; TARGET: the caller's node */
	struct ctl_conn *conn; /* LOCAL, CALLER */
	struct mproc *proc;    /* LOCAL, TARGET, while it lives */
	pid_t pid;
	bool detached;
	bool pty;
	char *log_tmp;         /* detached: the log file until the PID is known */
	int wstatus;
	/* TARGET stdio */
	struct end ends[3];
	size_t n_ends;
	uint64_t out_credit;
	struct buf inbuf;
	size_t in_off;
	bool in_eof;           /* no more input will come */
	bool in_broken;        /* the process closed its stdin: input is dropped */
	size_t in_preacked;    /* leading bytes of inbuf acknowledged already */
	dev_t in_dev;          /* the process's stdin: a pipe (device, inode) or a */
	ino_t in_ino;          /*   pty slave (in_dev: its rdev, in_ino 0); in_dev 0: none */
	uint64_t ack_owed;     /* input acknowledgements held until resumed */
	/* migration (see the top of the file) */
	uint32_t stdio_map;    /* A_STDIO: how fds 0-2 reach the session */
	uint32_t arr_from;     /* a stint: the predecessor's node */
	uint64_t arr_xfer;     /*   and the move that brought the process here */
	uint32_t next_node;    /* MOVED: where the process went */
	uint64_t next_xfer;
	bool resumed;          /* the caller talks to this stint: output may flow */
	bool src_done;         /* the predecessor sent RUN_MOVE_END (or there is none) */
	bool handed;           /* MOVED: the caller sent RUN_HANDED */
	bool reported;         /* MOVED: RUN_MOVED sent */
	bool caller_gone;      /* the client left while the process was moving */
	bool moved;            /* CALLER: the process has moved at least once */
	bool fork_copy;        /* ARRIVING: a ghost fork copy, which runs detached */
	bool orig_exited;      /* MOVED: the killed original is gone */
	int orig_fd;           /* MOVED: a pidfd of the original */
	struct loop_io *orig_io;
	struct buf later;      /* the caller's input, waiting for src_done */
	bool later_eof;
};

/* What a CTL_RUN or RUN_START asks for. */
struct run_params {
	char **argv;
	size_t argc;
	char **envp;
	size_t envc;
	char *cwd;
	uint32_t flags;
	uint32_t node;
	struct termios tio;
	bool have_tio;
	uint32_t rows, cols;
	uint64_t sid;
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	size_t n_groups;
	bool have_uid, have_gid;
};

static void params_release(struct run_params *p)
{
	for (size_t i = 0; i < p->argc; i++)
		free(p->argv[i]);
	for (size_t i = 0; i < p->envc; i++)
		free(p->envp[i]);
	free(p->argv);
	free(p->envp);
	free(p->cwd);
	free(p->groups);
}

static int push_str(char ***arr, size_t *n, const struct attr *a)
{
	char **na, *s;
	int r;

	if (*n >= MAX_ARGS)
		return -E2BIG;
	r = attr_strdup(a, &s);
	if (r < 0)
		return r;
	na = realloc(*arr, (*n + 2) * sizeof(char *));
	if (!na) {
		free(s);
		return -ENOMEM;
	}
	na[(*n)++] = s;
	na[*n] = NULL;
	*arr = na;
	return 0;
}

static int parse_params(const void *data, size_t len, struct run_params *p)
{
	struct attr_iter it;
	struct attr a;
	uint32_t v;
	int r;

	attr_iter_init(&it, data, len);
	while ((r = attr_next(&it, &a)) > 0) {
		switch (a.type) {
		case A_ARG:
			r = push_str(&p->argv, &p->argc, &a);
			break;
		case A_ENV:
			r = push_str(&p->envp, &p->envc, &a);
			break;
		case A_CWD:
			free(p->cwd);
			p->cwd = NULL;
			r = attr_strdup(&a, &p->cwd);
			break;
		case A_FLAGS:
			r = attr_u32(&a, &p->flags);
			break;
		case A_NODE:
			r = attr_u32(&a, &p->node);
			break;
		case A_TERMIOS:
			if (a.len == sizeof(p->tio)) {
				memcpy(&p->tio, a.data, sizeof(p->tio));
				p->have_tio = true;
			}
			break;
		case A_ROWS:
			r = attr_u32(&a, &p->rows);
			break;
		case A_COLS:
			r = attr_u32(&a, &p->cols);
			break;
		case A_SESSION:
			r = attr_u64(&a, &p->sid);
			break;
		case A_UID:
			r = attr_u32(&a, &v);
			p->uid = (uid_t)v;
			p->have_uid = true;
			break;
		case A_GID:
			r = attr_u32(&a, &v);
			p->gid = (gid_t)v;
			p->have_gid = true;
			break;
		case A_GROUP: {
			gid_t *ng;

			r = attr_u32(&a, &v);
			if (r < 0)
				break;
			if (p->n_groups >= 65536) {
				r = -E2BIG;
				break;
			}
			ng = realloc(p->groups, (p->n_groups + 1) * sizeof(gid_t));
			if (!ng) {
				r = -ENOMEM;
				break;
			}
			ng[p->n_groups++] = (gid_t)v;
			p->groups = ng;
			break;
		}
		default:
			break;
		}
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	if (p->argc == 0 || p->argv[0][0] == '\0')
		return -EINVAL;
	if (!p->envp) {
		p->envp = calloc(1, sizeof(char *));
		if (!p->envp)
			return -ENOMEM;
	}
	return 0;
}

static struct run_session *session_new(struct node_daemon *d, enum run_role role)
{
	struct run_session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->d = d;
	s->role = role;
	s->state = STATE_STARTING;
	s->resumed = true;
	s->src_done = true;
	s->orig_fd = -1;
	for (size_t i = 0; i < ARRAY_SIZE(s->ends); i++)
		s->ends[i].fd = -1;
	LIST_PREPEND(d->sessions, s);
	return s;
}

static void session_free(struct run_session *s)
{
	if (!s)
		return;
	LIST_REMOVE(s->d->sessions, s);
	if (s->conn) {
		ctl_conn_set_session(s->conn, NULL);
		s->conn = NULL;
	}
	if (s->proc) {
		proc_detach_session(s->d, s->proc);
		s->proc = NULL;
	}
	for (size_t i = 0; i < s->n_ends; i++) {
		s->ends[i].io = loop_io_free(s->ends[i].io);
		s->ends[i].fd = safe_close(s->ends[i].fd);
	}
	if (s->log_tmp) {
		(void)unlink(s->log_tmp);
		free(s->log_tmp);
	}
	s->orig_io = loop_io_free(s->orig_io);
	s->orig_fd = safe_close(s->orig_fd);
	buf_release(&s->inbuf);
	buf_release(&s->later);
	free(s);
}

static struct run_session *session_find(struct node_daemon *d, enum run_role role, uint32_t peer,
					uint64_t sid)
{
	for (struct run_session *s = d->sessions; s; s = s->next)
		if (s->role == role && s->peer == peer && s->sid == sid)
			return s;
	return NULL;
}

/* The TARGET a caller's message is for: of the stints of the session here
 * (a process may come back to a node before its old stint there is done),
 * the oldest the caller has not yet left with RUN_HANDED. The caller talks
 * to them in that order. */
static struct run_session *target_find(struct node_daemon *d, uint32_t caller, uint64_t sid)
{
	struct run_session *found = NULL;

	for (struct run_session *s = d->sessions; s; s = s->next)
		if (s->role == ROLE_TARGET && s->peer == caller && s->sid == sid && !s->handed)
			found = s; /* the list is newest first */
	return found;
}

/* The stint the move (from, xfer) brought here. */
static struct run_session *stint_find(struct node_daemon *d, uint32_t from, uint64_t xfer)
{
	if (xfer == 0)
		return NULL;
	for (struct run_session *s = d->sessions; s; s = s->next)
		if (s->role == ROLE_TARGET && s->arr_from == from && s->arr_xfer == xfer)
			return s;
	return NULL;
}

/* Signal the process's group (a terminal would), or the process alone if
 * it left its group. */
static void signal_process(pid_t pid, int sig)
{
	if (pid <= 0 || sig <= 0 || sig >= NSIG)
		return;
	if (kill(-pid, sig) < 0 && kill(pid, sig) < 0)
		log_debug_errno(errno, "cannot signal process %d", (int)pid);
}

/* A signal for the process of s: kept for its destination while it moves
 * (delivered there, or here if the move fails), else sent now. */
static void deliver_signal(struct run_session *s, int sig)
{
	if (!s->proc)
		return;
	if (s->proc->moving && move_defer_signal(s->d, s->proc, sig))
		return;
	signal_process(s->pid, sig);
}

static int send_run(struct run_session *s, uint32_t type, struct buf *b)
{
	int r = msg_send(s->d->msg, s->peer, NODE_CH_RUN, type, b ? b->data : NULL,
			 b ? b->len : 0);

	if (r < 0)
		log_debug_errno(r, "cannot send run message %u to node %u", type, s->peer);
	return r;
}

/* A message with just the session id and, optionally, one u32 or u64. */
static int send_simple(struct run_session *s, uint32_t type, uint16_t attr, uint64_t v, bool wide)
{
	struct buf b = BUF_INIT;
	int r;

	r = attr_put_u64(&b, A_SESSION, s->sid);
	if (r >= 0 && attr)
		r = wide ? attr_put_u64(&b, attr, v) : attr_put_u32(&b, attr, (uint32_t)v);
	if (r >= 0)
		r = send_run(s, type, &b);
	buf_release(&b);
	return r;
}

/* To the stint of s's session that the move (self, xfer) made on node to:
 * the attributes of b (may be NULL), with the session and the transfer. */
static int send_stint(struct run_session *s, uint32_t to, uint64_t xfer, uint32_t type,
		      const struct buf *extra)
{
	struct buf b = BUF_INIT;
	int r;

	r = attr_put_u64(&b, A_SESSION, s->sid);
	if (r >= 0)
		r = attr_put_u64(&b, A_XFER, xfer);
	if (r >= 0 && extra && extra->len)
		r = buf_append(&b, extra->data, extra->len);
	if (r >= 0)
		r = msg_send(s->d->msg, to, NODE_CH_RUN, type, b.data, b.len);
	if (r < 0)
		log_debug_errno(r, "cannot send run message %u to node %u", type, to);
	buf_release(&b);
	return r;
}

/* MOVED: pass a message on to the next stint, as it came (but for the
 * transfer id, which names the next move). */
static int forward(struct run_session *s, uint32_t type, const void *data, size_t len)
{
	struct attr_iter it;
	struct attr a;
	struct buf b = BUF_INIT;
	int r = 0;

	attr_iter_init(&it, data, len);
	while (r >= 0 && attr_next(&it, &a) > 0)
		if (a.type != A_SESSION && a.type != A_XFER && a.type != A_PREV)
			r = attr_put(&b, a.type, a.data, a.len);
	if (r >= 0)
		r = send_stint(s, s->next_node, s->next_xfer, type, &b);
	buf_release(&b);
	return r;
}

static int put_exit(struct buf *b, int wstatus)
{
	if (WIFSIGNALED(wstatus))
		return attr_put_u32(b, A_EXIT_SIGNAL, (uint32_t)WTERMSIG(wstatus));
	return attr_put_u32(b, A_EXIT_CODE, (uint32_t)WEXITSTATUS(wstatus));
}

static void conn_started(struct run_session *s, pid_t pid, uint32_t node, uint32_t flags)
{
	struct buf b = BUF_INIT;
	int r;

	r = attr_put_u32(&b, A_PID, (uint32_t)pid);
	if (r >= 0)
		r = attr_put_u32(&b, A_NODE, node);
	if (r >= 0)
		r = attr_put_u32(&b, A_FLAGS, flags);
	if (r >= 0)
		r = ctl_send(s->conn, CTL_STARTED, &b);
	buf_release(&b);
}

/* End a LOCAL or CALLER session with an error to its client. */
static void fail_conn(struct run_session *s, int err, unsigned flags, const char *msg)
{
	struct ctl_conn *c = s->conn;

	if (c) {
		ctl_conn_set_session(c, NULL);
		s->conn = NULL;
		ctl_send_error(c, err, flags, "%s", msg);
	}
	session_free(s);
}

/* ---- spawning (LOCAL and TARGET) ----------------------------------------- */

/* A pseudo-terminal with these settings: its master becomes an end of s
 * (input if in, output to the client's fd fdno if fdno), its slave goes to
 * ret_slave. */
static int open_pty(struct run_session *s, uid_t uid, const struct termios *tio, uint32_t rows,
		    uint32_t cols, bool in, uint32_t fdno, int *ret_slave)
{
	_cleanup_close_ int master = -1, slave = -1;
	char name[64];

	if (s->n_ends >= ARRAY_SIZE(s->ends))
		return -EINVAL;
	master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		return -errno;
	if (grantpt(master) < 0 || unlockpt(master) < 0 || ptsname_r(master, name, sizeof(name)))
		return negative_errno();
	slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0)
		return -errno;
	if (geteuid() == 0 && (fchown(slave, uid, (gid_t)-1) < 0 || fchmod(slave, 0620) < 0))
		return -errno;
	if (tio)
		(void)tcsetattr(slave, TCSANOW, tio);
	if (rows && cols && rows < 65536 && cols < 65536) {
		struct winsize ws = { .ws_row = (unsigned short)rows,
				      .ws_col = (unsigned short)cols };

		(void)ioctl(slave, TIOCSWINSZ, &ws);
	}
	if (fcntl(master, F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	s->ends[s->n_ends++] = (struct end){ .fd = TAKE_FD(master), .in = in, .out = fdno != 0,
					     .tty = true, .fdno = fdno };
	if (in) {
		struct stat st;

		if (fstat(slave, &st) == 0) {
			s->in_dev = st.st_rdev;
			s->in_ino = 0;
		}
	}
	s->pty = true;
	*ret_slave = TAKE_FD(slave);
	return 0;
}

/* A pipe for the process's fd i (0: its stdin): ours becomes an end of s,
 * the process's goes to ret_child. */
static int open_pipe(struct run_session *s, int i, int *ret_child)
{
	int fds[2];

	if (s->n_ends >= ARRAY_SIZE(s->ends))
		return -EINVAL;
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	*ret_child = fds[i == 0 ? 0 : 1];
	s->ends[s->n_ends++] = (struct end){ .fd = fds[i == 0 ? 1 : 0], .in = i == 0,
					     .out = i != 0, .fdno = (uint32_t)i };
	if (i == 0) {
		struct stat st;

		if (fstat(fds[0], &st) == 0) {
			s->in_dev = st.st_dev;
			s->in_ino = st.st_ino;
		}
	}
	/* Our end (a file description of its own) is non-blocking. */
	if (fcntl(fds[i == 0 ? 1 : 0], F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* Pipes for stdin, stdout, stderr: the process's ends in child[]. */
static int open_pipes(struct run_session *s, int child[3])
{
	for (int i = 0; i < 3; i++) {
		int r = open_pipe(s, i, &child[i]);

		if (r < 0)
			return r;
	}
	return 0;
}

static void on_end_io(struct loop_io *io, int fd, unsigned events, void *userdata);

/* Spawn p's command for session s with stdio fds. Returns 0 or -errno with
 * a message in err. */
static int spawn(struct run_session *s, const struct run_params *p, const int fds[3], bool ctty,
		 struct buf *err)
{
	struct node_daemon *d = s->d;
	struct spawn_req req = {
		.argv = p->argv,
		.envp = p->envp,
		.cwd = p->cwd,
		.uid = p->uid,
		.gid = p->gid,
		.groups = p->groups,
		.n_groups = p->n_groups,
		.ctty = ctty,
		.detached = s->detached,
	};
	struct mproc *m;
	int r;

	memcpy(req.fds, fds, sizeof(req.fds));
	r = proc_spawn(d, &req, s, &m);
	if (r < 0) {
		if (r == -EAGAIN)
			buf_printf(err, "no free PID left in the range of node %u", d->self);
		else
			buf_printf(err, "cannot create a process on node %u: %s", d->self,
				   strerror(-r));
		log_warn("%s", err->data ? err->data : "cannot create a process");
		return r;
	}
	s->proc = m;
	s->pid = m->pid;
	if (s->log_tmp) {
		r = proc_log_rename(d, s->log_tmp, m->pid, &m->log_path);
		if (r < 0)
			log_warn_errno(r, "cannot name the log of process %d, ignoring",
				       (int)m->pid);
		else {
			free(s->log_tmp);
			s->log_tmp = NULL;
		}
	}
	return 0;
}

/* Start the process of a LOCAL or TARGET session. fds: the client's stdio
 * (LOCAL, not detached), else NULL. */
static int start_process(struct run_session *s, struct run_params *p, const int *fds,
			 struct buf *err)
{
	struct node_daemon *d = s->d;
	int child[3] = { -1, -1, -1 }, slave = -1, nullfd = -1, logfd = -1, r;
	bool ctty = false;

	if (s->detached) {
		nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (nullfd < 0) {
			r = -errno;
			buf_printf(err, "cannot open /dev/null on node %u: %s", d->self,
				   strerror(errno));
			goto out;
		}
		logfd = proc_log_open(d, p->uid, p->gid, &s->log_tmp);
		if (logfd < 0) {
			r = logfd;
			buf_printf(err, "cannot create a log file in '%s' on node %u: %s",
				   d->log_dir, d->self, strerror(-r));
			goto out;
		}
		child[0] = nullfd;
		child[1] = child[2] = logfd;
	} else if (fds) {
		memcpy(child, fds, sizeof(child));
	} else if (p->flags & RUN_TTY) {
		r = open_pty(s, p->uid, p->have_tio ? &p->tio : NULL, p->rows, p->cols, true, 1,
			     &slave);
		if (r < 0) {
			buf_printf(err, "cannot open a pseudo-terminal on node %u: %s", d->self,
				   strerror(-r));
			goto out;
		}
		child[0] = child[1] = child[2] = slave;
		ctty = true;
	} else {
		r = open_pipes(s, child);
		if (r < 0) {
			buf_printf(err, "cannot create pipes on node %u: %s", d->self,
				   strerror(-r));
			goto out;
		}
	}
	r = spawn(s, p, child, ctty, err);
out:
	if (!s->detached && !fds && !s->pty)
		for (int i = 0; i < 3; i++)
			safe_close(child[i]);
	safe_close(slave);
	safe_close(nullfd);
	safe_close(logfd);
	if (r < 0)
		return r;
	s->out_credit = RUN_WINDOW;
	return 0;
}

/* ---- TARGET: pumping the process's stdio ---------------------------------- */

static void target_finish(struct run_session *s);
static bool moved_step(struct run_session *s);

/* Watch an end only while there is something to do with it: a pipe whose
 * other side is closed reports a hangup until it is read or closed. */
static void update_end(struct run_session *s, struct end *e)
{
	unsigned ev = 0;
	int r;

	if (e->fd < 0)
		return;
	if (e->out && !e->out_eof && s->out_credit > 0 && s->resumed)
		ev |= LOOP_READ;
	if (e->in && s->inbuf.len > s->in_off)
		ev |= LOOP_WRITE;
	if (ev == 0) {
		e->io = loop_io_free(e->io);
		return;
	}
	if (e->io)
		r = loop_io_set_events(e->io, ev);
	else
		r = loop_io_new(s->d->loop, e->fd, ev, on_end_io, s, &e->io);
	if (r < 0)
		log_warn_errno(r, "cannot watch the stdio of process %d, ignoring", (int)s->pid);
}

static void update_ends(struct run_session *s)
{
	for (size_t i = 0; i < s->n_ends; i++)
		update_end(s, &s->ends[i]);
}

static void close_end(struct end *e)
{
	e->io = loop_io_free(e->io);
	e->fd = safe_close(e->fd);
}

/* Read what output there is, within the credit. Returns -errno if the
 * session is lost. */
static int pump_out(struct run_session *s, struct end *e)
{
	char data[RUN_CHUNK];

	while (!e->out_eof && s->out_credit > 0 && s->resumed) {
		size_t want = (size_t)MIN((uint64_t)sizeof(data), s->out_credit);
		struct buf b = BUF_INIT;
		ssize_t n;
		int r;

		n = read(e->fd, data, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			e->out_idle = true;
			break;
		}
		if (n <= 0) {
			/* EOF, or EIO from a pty master once the last slave is closed. */
			e->out_eof = true;
			break;
		}
		e->out_idle = false;
		r = attr_put_u64(&b, A_SESSION, s->sid);
		if (r >= 0)
			r = attr_put_u32(&b, A_FD, e->fdno);
		if (r >= 0)
			r = attr_put(&b, A_DATA, data, (size_t)n);
		if (r >= 0)
			r = send_run(s, RUN_OUT, &b);
		buf_release(&b);
		if (r < 0)
			return r;
		s->out_credit -= (uint64_t)n;
	}
	return 0;
}

static void close_input(struct run_session *s, struct end *e)
{
	(void)s;
	if (e->tty)
		return; /* the terminal stays: EOF of a terminal is a ^D the user types */
	close_end(e);
}

/* n bytes of input were written or dropped: acknowledge those the client
 * has not had acknowledged yet, once the caller talks to this stint. */
static int ack_input(struct run_session *s, size_t n)
{
	size_t pre = MIN(n, s->in_preacked);

	s->in_preacked -= pre;
	n -= pre;
	if (n == 0)
		return 0;
	if (!s->resumed) {
		s->ack_owed += n;
		return 0;
	}
	return send_simple(s, RUN_IN_ACK, A_BYTES, n, true);
}

static int pump_in(struct run_session *s, struct end *e)
{
	size_t done = 0;

	while (s->inbuf.len > s->in_off && e->fd >= 0) {
		ssize_t n = write(e->fd, s->inbuf.data + s->in_off, s->inbuf.len - s->in_off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			/* The process closed its stdin: drop input from now on. */
			s->in_broken = true;
			done += s->inbuf.len - s->in_off;
			s->in_off = s->inbuf.len;
			close_input(s, e);
			break;
		}
		s->in_off += (size_t)n;
		done += (size_t)n;
	}
	if (s->in_off == s->inbuf.len) {
		buf_reset(&s->inbuf);
		s->in_off = 0;
		if (s->in_eof && e->fd >= 0)
			close_input(s, e);
	}
	if (done > 0)
		return ack_input(s, done);
	return 0;
}

static struct end *input_end(struct run_session *s)
{
	for (size_t i = 0; i < s->n_ends; i++)
		if (s->ends[i].in && s->ends[i].fd >= 0)
			return &s->ends[i];
	return NULL;
}

static struct end *tty_end(struct run_session *s)
{
	for (size_t i = 0; i < s->n_ends; i++)
		if (s->ends[i].tty && s->ends[i].fd >= 0)
			return &s->ends[i];
	return NULL;
}

/* The slave of a pseudo-terminal end, opened anew (the process has its own). */
static int open_slave(const struct end *e)
{
	char name[64];
	int fd;

	if (ptsname_r(e->fd, name, sizeof(name)) != 0)
		return -ENOTTY;
	fd = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	return fd < 0 ? -errno : fd;
}

/* Give a terminal the process's settings (a master's ioctls act on its slave). */
static int tty_set(const struct end *e, const struct termios *tio)
{
	return tcsetattr(e->fd, TCSANOW, tio) < 0 ? -errno : 0;
}

/* Put input into a terminal as if typed, without echoing it: it was shown
 * already, by the terminal the process had before. Returns how many bytes
 * went in, or -errno if none did. */
static ssize_t tty_inject(const struct end *e, const void *data, size_t len)
{
	_cleanup_close_ int fd = open_slave(e);
	struct termios orig, quiet;
	const char *p = data;
	size_t i;

	if (fd < 0)
		return fd;
	if (tcgetattr(fd, &orig) < 0)
		return -errno;
	quiet = orig;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	if (tcsetattr(fd, TCSANOW, &quiet) < 0)
		return -errno;
	for (i = 0; i < len; i++)
		if (ioctl(fd, TIOCSTI, p + i) < 0)
			break;
	(void)tcsetattr(fd, TCSANOW, &orig);
	return i > 0 || len == 0 ? (ssize_t)i : -EIO;
}

/* All output read up to now? (A pipe a background child still holds open
 * does not keep the session waiting.) Never before the caller talks to us. */
static bool output_drained(struct run_session *s)
{
	if (!s->resumed)
		return false;
	for (size_t i = 0; i < s->n_ends; i++) {
		struct end *e = &s->ends[i];

		if (e->fd >= 0 && e->out && !e->out_eof && !e->out_idle)
			return false;
	}
	return true;
}

/* After pumping: the session's next step, if it has one. Returns true if
 * the session was freed. */
static bool target_step(struct run_session *s)
{
	if (s->state == STATE_DRAINING && output_drained(s)) {
		target_finish(s);
		return true;
	}
	if (s->state == STATE_MOVED && moved_step(s))
		return true;
	update_ends(s);
	return false;
}

static void target_pump(struct run_session *s)
{
	for (size_t i = 0; i < s->n_ends; i++) {
		struct end *e = &s->ends[i];

		if (e->fd >= 0 && e->out && pump_out(s, e) < 0) {
			target_finish(s);
			return;
		}
	}
	(void)target_step(s);
}

static void on_end_io(struct loop_io *io, int fd, unsigned events, void *userdata)
{
	struct run_session *s = userdata;
	struct end *e = NULL;

	(void)io;
	for (size_t i = 0; i < s->n_ends; i++)
		if (s->ends[i].fd == fd)
			e = &s->ends[i];
	if (!e)
		return;
	if (e->in && (events & (LOOP_WRITE | LOOP_ERROR))) {
		if (pump_in(s, e) < 0) {
			target_finish(s);
			return;
		}
	}
	if (e->out && (events & (LOOP_READ | LOOP_HANGUP | LOOP_ERROR))) {
		e->out_idle = false;
		if (pump_out(s, e) < 0) {
			target_finish(s);
			return;
		}
	}
	(void)target_step(s);
}

/* The process exited and its output went out, or the caller is lost: send
 * the exit status if the process ended, and free the session. */
static void target_finish(struct run_session *s)
{
	if (s->state == STATE_DRAINING) {
		struct buf b = BUF_INIT;

		if (attr_put_u64(&b, A_SESSION, s->sid) >= 0 && put_exit(&b, s->wstatus) >= 0)
			(void)send_run(s, RUN_EXIT, &b);
		buf_release(&b);
	}
	session_free(s);
}

/* The caller is gone: hang the process up, as a closed terminal would. A
 * process in the middle of a move gets it where it ends up; its session
 * stays until then, to tell the destination (run_move_commit()). */
static void target_close(struct run_session *s)
{
	if (s->state == STATE_MOVED) {
		(void)forward(s, RUN_CLOSE, NULL, 0);
		session_free(s);
		return;
	}
	if (s->proc) {
		log_debug("process %d: its caller is gone, sending SIGHUP", (int)s->pid);
		deliver_signal(s, SIGHUP);
		if (s->proc->moving) {
			/* As if freed (the process finds its stdio closed if the
			 * move fails), but remembered until the move ends. */
			s->caller_gone = true;
			for (size_t i = 0; i < s->n_ends; i++)
				close_end(&s->ends[i]);
			buf_reset(&s->inbuf);
			s->in_off = 0;
			return;
		}
	}
	session_free(s);
}

static void target_failed(struct node_daemon *d, uint32_t caller, uint64_t sid, int err,
			  unsigned flags, const char *msg)
{
	struct buf b = BUF_INIT;
	int r;

	r = attr_put_u64(&b, A_SESSION, sid);
	if (r >= 0)
		r = attr_put_u32(&b, A_ERRNO, (uint32_t)-err);
	if (r >= 0)
		r = attr_put_str(&b, A_MESSAGE, msg);
	if (r >= 0 && flags)
		r = attr_put_u32(&b, A_FLAGS, flags);
	if (r >= 0)
		(void)msg_send(d->msg, caller, NODE_CH_RUN, RUN_FAILED, b.data, b.len);
	buf_release(&b);
}

static void target_start(struct node_daemon *d, uint32_t caller, const void *data, size_t len)
{
	struct run_params p = { 0 };
	struct buf err = BUF_INIT;
	struct run_session *s;
	int r;

	r = parse_params(data, len, &p);
	if (r >= 0 && (!p.sid || !p.have_uid || !p.have_gid))
		r = -EBADMSG;
	if (r < 0) {
		log_warn_errno(r, "malformed run request from node %u, ignoring", caller);
		if (p.sid)
			target_failed(d, caller, p.sid, r, 0, "malformed run request");
		goto out;
	}
	if (session_find(d, ROLE_TARGET, caller, p.sid))
		goto out; /* a duplicate: msg never sends one, a broken peer might */
	s = session_new(d, ROLE_TARGET);
	if (!s) {
		target_failed(d, caller, p.sid, -ENOMEM, 0, "out of memory");
		goto out;
	}
	s->sid = p.sid;
	s->peer = caller;
	s->detached = p.flags & RUN_DETACH;
	r = start_process(s, &p, NULL, &err);
	if (r < 0) {
		target_failed(d, caller, p.sid, r, 0, err.data ? err.data : "cannot start");
		session_free(s);
	}
out:
	buf_release(&err);
	params_release(&p);
}

/* ---- the process's news (LOCAL and TARGET) ------------------------------- */

void run_proc_exec(struct run_session *s, struct mproc *p, int err, const char *what)
{
	struct buf msg = BUF_INIT;

	if (err < 0) {
		/* The process is gone (or going): it is reaped without us. */
		s->proc = NULL;
		if (what)
			buf_printf(&msg, "%s on node %u: %s", what, s->d->self, strerror(-err));
		else
			buf_printf(&msg, "cannot run '%s' on node %u: %s", p->command,
				   s->d->self, strerror(-err));
		if (s->role == ROLE_TARGET) {
			target_failed(s->d, s->peer, s->sid, err, what ? 0 : ERR_EXEC,
				      msg.data ? msg.data : "cannot run");
			session_free(s);
		} else {
			fail_conn(s, err, what ? 0 : ERR_EXEC, msg.data ? msg.data : "cannot run");
		}
		buf_release(&msg);
		return;
	}
	s->state = STATE_RUNNING;
	if (s->role == ROLE_TARGET) {
		if (send_simple(s, RUN_STARTED, A_PID, (uint64_t)s->pid, false) < 0 ||
		    s->detached) {
			session_free(s);
			return;
		}
		update_ends(s);
		return;
	}
	conn_started(s, s->pid, s->d->self, 0);
	if (s->detached) {
		ctl_finish(s->conn);
		session_free(s);
	}
}

void run_proc_exited(struct run_session *s, struct mproc *p)
{
	s->proc = NULL;
	s->wstatus = p->wstatus;
	if (s->role == ROLE_TARGET) {
		s->state = STATE_DRAINING;
		for (size_t i = 0; i < s->n_ends; i++)
			s->ends[i].out_idle = false;
		target_pump(s);
		return;
	}
	if (s->conn) {
		struct ctl_conn *c = s->conn;
		struct buf b = BUF_INIT;

		ctl_conn_set_session(c, NULL);
		s->conn = NULL;
		if (put_exit(&b, p->wstatus) >= 0 && ctl_send(c, CTL_EXIT, &b) >= 0)
			ctl_finish(c);
		buf_release(&b);
	}
	session_free(s);
}

/* ---- requests from the client (LOCAL and CALLER) ------------------------- */

static void start_local(struct node_daemon *d, struct ctl_conn *c, struct run_params *p,
			int *fds, size_t n_fds)
{
	struct buf err = BUF_INIT;
	struct run_session *s;
	int r;

	if (!(p->flags & RUN_DETACH) && n_fds != 3) {
		ctl_send_error(c, -EBADMSG, 0,
			       "a run request must carry 3 file descriptors (it has %zu)", n_fds);
		return;
	}
	s = session_new(d, ROLE_LOCAL);
	if (!s) {
		ctl_send_error(c, -ENOMEM, 0, "out of memory");
		return;
	}
	s->conn = c;
	ctl_conn_set_session(c, s);
	s->peer = d->self;
	s->detached = p->flags & RUN_DETACH;
	r = start_process(s, p, s->detached ? NULL : fds, &err);
	if (r < 0)
		fail_conn(s, r, 0, err.data ? err.data : "cannot start the process");
	buf_release(&err);
}

static int copy_attrs(struct buf *b, const struct ctl_request *req)
{
	struct attr_iter it;
	struct attr a;
	int r;

	attr_iter_init(&it, req->payload, req->len);
	while ((r = attr_next(&it, &a)) > 0) {
		switch (a.type) {
		case A_ARG:
		case A_ENV:
		case A_CWD:
		case A_FLAGS:
		case A_TERMIOS:
		case A_ROWS:
		case A_COLS:
			r = attr_put(b, a.type, a.data, a.len);
			if (r < 0)
				return r;
			break;
		default:
			break;
		}
	}
	return r;
}

static void start_remote(struct node_daemon *d, struct ctl_conn *c, const struct ctl_request *req,
			 const struct run_params *p)
{
	struct node_peer *peer = node_peer_find(d, p->node);
	struct run_session *s;
	const gid_t *groups;
	size_t n_groups;
	struct buf b = BUF_INIT;
	int r;

	if (!peer) {
		ctl_send_error(c, -EHOSTUNREACH, 0, "no node %u in the cluster", p->node);
		return;
	}
	if (peer->state != NODE_STATE_UP) {
		ctl_send_error(c, -EHOSTDOWN, 0, "node %u is %s", p->node,
			       node_state_to_string(peer->state));
		return;
	}
	s = session_new(d, ROLE_CALLER);
	if (!s) {
		ctl_send_error(c, -ENOMEM, 0, "out of memory");
		return;
	}
	s->conn = c;
	ctl_conn_set_session(c, s);
	s->sid = node_new_id(d);
	s->peer = p->node;
	s->detached = p->flags & RUN_DETACH;
	groups = ctl_conn_groups(c, &n_groups);
	r = attr_put_u64(&b, A_SESSION, s->sid);
	if (r >= 0)
		r = attr_put_u32(&b, A_UID, (uint32_t)ctl_conn_uid(c));
	if (r >= 0)
		r = attr_put_u32(&b, A_GID, (uint32_t)ctl_conn_gid(c));
	for (size_t i = 0; i < n_groups && r >= 0; i++)
		r = attr_put_u32(&b, A_GROUP, (uint32_t)groups[i]);
	if (r >= 0)
		r = copy_attrs(&b, req);
	if (r >= 0)
		r = send_run(s, RUN_START, &b);
	buf_release(&b);
	if (r < 0)
		fail_conn(s, r, 0,
			  r == -EHOSTDOWN ? "the node is down" : "cannot send the run request");
}

void run_request(struct node_daemon *d, struct ctl_conn *c, const struct ctl_request *req)
{
	struct run_params p = { 0 };
	int fds[3] = { -1, -1, -1 };
	size_t n_fds;
	int r;

	n_fds = ctl_conn_take_fds(c, fds);
	r = parse_params(req->payload, req->len, &p);
	if (r < 0) {
		if (r == -EINVAL)
			ctl_send_error(c, r, 0, "no command to run");
		else if (r == -E2BIG)
			ctl_send_error(c, r, 0, "argument list too long");
		else
			ctl_send_error(c, r, 0, "malformed run request");
		goto out;
	}
	p.uid = ctl_conn_uid(c);
	p.gid = ctl_conn_gid(c);
	{
		size_t n;
		const gid_t *g = ctl_conn_groups(c, &n);

		if (n > 0) {
			p.groups = malloc(n * sizeof(gid_t));
			if (!p.groups) {
				ctl_send_error(c, -ENOMEM, 0, "out of memory");
				goto out;
			}
			memcpy(p.groups, g, n * sizeof(gid_t));
			p.n_groups = n;
		}
	}
	if (p.node == 0 || p.node == d->self)
		start_local(d, c, &p, fds, n_fds);
	else
		start_remote(d, c, req, &p);
out:
	for (size_t i = 0; i < n_fds; i++)
		safe_close(fds[i]);
	params_release(&p);
}

static int frame_u32(const struct ctl_request *req, uint16_t type, uint32_t *ret)
{
	struct attr a;
	int r = attr_find(req->payload, req->len, type, &a);

	return r < 0 ? r : attr_u32(&a, ret);
}

static int frame_attr(const struct ctl_request *req, uint16_t type, struct attr *ret)
{
	return attr_find(req->payload, req->len, type, ret);
}

void run_conn_frame(struct run_session *s, const struct ctl_request *req)
{
	struct attr a;
	uint32_t v, v2;
	uint64_t n;

	if (s->role == ROLE_LOCAL) {
		/* The process has the client's own stdio: only signals matter. */
		if (req->type == CTL_SIGNAL && frame_u32(req, A_SIGNAL, &v) >= 0)
			deliver_signal(s, (int)v);
		return;
	}
	if (s->state == STATE_STARTING)
		return;
	switch (req->type) {
	case CTL_STDIN:
		if (frame_attr(req, A_DATA, &a) >= 0) {
			struct buf b = BUF_INIT;
			int r;

			r = attr_put_u64(&b, A_SESSION, s->sid);
			if (r >= 0)
				r = attr_put(&b, A_DATA, a.data, a.len);
			if (r >= 0 && frame_u32(req, A_FLAGS, &v) >= 0)
				r = attr_put_u32(&b, A_FLAGS, v & RUN_IN_ECHOED);
			if (r >= 0)
				(void)send_run(s, RUN_IN, &b);
			buf_release(&b);
		}
		break;
	case CTL_STDIN_EOF:
		(void)send_simple(s, RUN_IN_EOF, 0, 0, false);
		break;
	case CTL_SIGNAL:
		if (frame_u32(req, A_SIGNAL, &v) >= 0)
			(void)send_simple(s, RUN_SIGNAL, A_SIGNAL, v, false);
		break;
	case CTL_WINSIZE:
		if (frame_u32(req, A_ROWS, &v) >= 0 && frame_u32(req, A_COLS, &v2) >= 0) {
			struct buf b = BUF_INIT;

			if (attr_put_u64(&b, A_SESSION, s->sid) >= 0 &&
			    attr_put_u32(&b, A_ROWS, v) >= 0 && attr_put_u32(&b, A_COLS, v2) >= 0)
				(void)send_run(s, RUN_WINSIZE, &b);
			buf_release(&b);
		}
		break;
	case CTL_ACK:
		if (frame_attr(req, A_BYTES, &a) >= 0 && attr_u64(&a, &n) >= 0)
			(void)send_simple(s, RUN_OUT_ACK, A_BYTES, n, true);
		break;
	case CTL_CLOSE_OUT:
		if (frame_u32(req, A_FD, &v) >= 0)
			(void)send_simple(s, RUN_CLOSE_OUT, A_FD, v, false);
		break;
	default:
		break;
	}
}

void run_conn_gone(struct run_session *s)
{
	s->conn = NULL;
	if (s->role == ROLE_CALLER) {
		(void)send_simple(s, RUN_CLOSE, 0, 0, false);
		session_free(s);
		return;
	}
	/* LOCAL */
	if (s->proc && !s->detached && s->state == STATE_RUNNING) {
		log_debug("process %d: its caller is gone, sending SIGHUP", (int)s->pid);
		deliver_signal(s, SIGHUP);
		if (s->proc->moving) {
			/* Remembered until the move ends (run_move_commit()). */
			s->caller_gone = true;
			return;
		}
	}
	session_free(s);
}

void run_conn_drained(struct run_session *s)
{
	(void)s;
}

/* ---- messages from other daemons ------------------------------------------ */

static void caller_recv(struct run_session *s, uint32_t type, const void *data, size_t len)
{
	struct attr_iter it;
	struct attr a;
	uint32_t pid = 0, err = EIO, flags = 0;
	char msg[512] = "";
	struct buf b = BUF_INIT;
	int r;

	switch (type) {
	case RUN_STARTED:
		attr_iter_init(&it, data, len);
		while (attr_next(&it, &a) > 0)
			if (a.type == A_PID)
				(void)attr_u32(&a, &pid);
		s->pid = (pid_t)pid;
		s->state = STATE_RUNNING;
		conn_started(s, s->pid, s->peer, s->detached ? 0 : RUN_RELAY);
		if (s->detached) {
			ctl_finish(s->conn);
			session_free(s);
		}
		return;
	case RUN_FAILED:
		attr_iter_init(&it, data, len);
		while (attr_next(&it, &a) > 0) {
			if (a.type == A_ERRNO)
				(void)attr_u32(&a, &err);
			else if (a.type == A_MESSAGE)
				(void)attr_strcpy(&a, msg, sizeof(msg));
			else if (a.type == A_FLAGS)
				(void)attr_u32(&a, &flags);
		}
		fail_conn(s, -(int)err, flags, msg[0] ? msg : "the process could not start");
		return;
	case RUN_OUT:
		/* Forward the attributes (fd, data) as they are. */
		r = 0;
		attr_iter_init(&it, data, len);
		while (r >= 0 && attr_next(&it, &a) > 0)
			if (a.type == A_FD || a.type == A_DATA)
				r = attr_put(&b, a.type, a.data, a.len);
		if (r >= 0)
			(void)ctl_send(s->conn, CTL_OUTPUT, &b);
		break;
	case RUN_IN_ACK:
		attr_iter_init(&it, data, len);
		while (attr_next(&it, &a) > 0)
			if (a.type == A_BYTES)
				(void)attr_put(&b, A_BYTES, a.data, a.len);
		(void)ctl_send(s->conn, CTL_STDIN_ACK, &b);
		break;
	case RUN_MOVED: {
		/* The process runs on another node now and all output of the
		 * old one went out: talk to the new one from here on. */
		uint32_t node = 0, old = s->peer;
		uint64_t xfer = 0, unacked = 0;

		attr_iter_init(&it, data, len);
		while (attr_next(&it, &a) > 0) {
			if (a.type == A_NODE)
				(void)attr_u32(&a, &node);
			else if (a.type == A_XFER)
				(void)attr_u64(&a, &xfer);
			else if (a.type == A_BYTES)
				(void)attr_u64(&a, &unacked);
		}
		if (node == 0 || xfer == 0)
			break;
		(void)send_simple(s, RUN_HANDED, 0, 0, false);
		s->peer = node;
		s->moved = true;
		r = attr_put_u64(&b, A_SESSION, s->sid);
		if (r >= 0)
			r = attr_put_u32(&b, A_PREV, old);
		if (r >= 0)
			r = attr_put_u64(&b, A_XFER, xfer);
		if (r >= 0)
			r = attr_put_u64(&b, A_BYTES, unacked);
		if (r >= 0)
			r = send_run(s, RUN_RESUME, &b);
		buf_release(&b);
		if (r < 0) {
			snprintf(msg, sizeof(msg), "node %u failed while process %d moved there",
				 node, (int)s->pid);
			fail_conn(s, r, 0, msg);
		}
		return;
	}
	case RUN_EXIT: {
		struct ctl_conn *c = s->conn;

		attr_iter_init(&it, data, len);
		while (attr_next(&it, &a) > 0)
			if (a.type == A_EXIT_CODE || a.type == A_EXIT_SIGNAL)
				(void)attr_put(&b, a.type, a.data, a.len);
		ctl_conn_set_session(c, NULL);
		s->conn = NULL;
		if (ctl_send(c, CTL_EXIT, &b) >= 0)
			ctl_finish(c);
		buf_release(&b);
		session_free(s);
		return;
	}
	default:
		break;
	}
	buf_release(&b);
}

/* Input for the process, in the order the client sent it: write it (or
 * inject it into the terminal, ECHOED data that its old terminal already
 * showed), or pass it on from a MOVED stint. acked: the client had it
 * acknowledged already. Returns true if the session was freed. */
static bool take_input(struct run_session *s, const void *data, size_t len, uint32_t flags,
		       bool acked)
{
	struct end *in;
	size_t unacked;

	if (len == 0)
		return false;
	if (s->state == STATE_MOVED) {
		struct buf b = BUF_INIT;

		/* Acknowledged input the next stint takes as carried input. */
		if (attr_put(&b, A_DATA, data, len) >= 0 &&
		    (!flags || attr_put_u32(&b, A_FLAGS, flags) >= 0))
			(void)send_stint(s, s->next_node, s->next_xfer,
					 acked ? RUN_MOVE_INPUT : RUN_IN, &b);
		buf_release(&b);
		return false;
	}
	in = input_end(s);
	if (s->in_broken || s->in_eof || !in) {
		/* stdin is gone: acknowledge so that the client goes on */
		if (!acked && ack_input(s, len) < 0) {
			target_finish(s);
			return true;
		}
		return false;
	}
	if (in->tty && (flags & RUN_IN_ECHOED) && s->inbuf.len == s->in_off) {
		ssize_t k = tty_inject(in, data, len);

		if (k > 0) {
			if (!acked && ack_input(s, (size_t)k) < 0) {
				target_finish(s);
				return true;
			}
			data = (const char *)data + k;
			len -= (size_t)k;
			if (len == 0)
				return false;
		}
	}
	unacked = s->inbuf.len - s->in_off - s->in_preacked;
	if (!acked && unacked + len > 2 * RUN_WINDOW) {
		log_warn("node %u overran the input window of process %d, dropping its session",
			 s->peer, (int)s->pid);
		target_close(s);
		return true;
	}
	if (buf_append(&s->inbuf, data, len) < 0) {
		log_warn("out of memory: dropping the session of process %d", (int)s->pid);
		target_close(s);
		return true;
	}
	if (acked && s->in_preacked == s->inbuf.len - s->in_off - len)
		s->in_preacked += len;
	if (pump_in(s, in) < 0) {
		target_finish(s);
		return true;
	}
	return false;
}

static void take_eof(struct run_session *s)
{
	struct end *in;

	if (s->state == STATE_MOVED) {
		(void)send_stint(s, s->next_node, s->next_xfer, RUN_IN_EOF, NULL);
		return;
	}
	s->in_eof = true;
	in = input_end(s);
	if (in && s->inbuf.len == s->in_off)
		close_input(s, in);
}

/* The predecessor has sent all it will: the caller's input may go in. */
static bool release_later(struct run_session *s)
{
	s->src_done = true;
	if (s->later.len) {
		struct buf later = s->later;

		s->later = (struct buf)BUF_INIT;
		if (take_input(s, later.data, later.len, 0, false)) {
			buf_release(&later);
			return true;
		}
		buf_release(&later);
	}
	if (s->later_eof) {
		s->later_eof = false;
		take_eof(s);
	}
	return false;
}

/* Input carried from the old stint (RUN_MOVE_INPUT): what the process had
 * not read of its stdin there, and its terminal's settings. */
static bool carry_in(struct run_session *s, const void *data, size_t len)
{
	struct attr_iter it;
	struct attr a;
	const void *bytes = NULL;
	size_t n = 0;
	uint32_t rows = 0, cols = 0, flags = 0;
	struct termios tio;
	bool have_tio = false;
	struct end *t = tty_end(s);

	attr_iter_init(&it, data, len);
	while (attr_next(&it, &a) > 0) {
		if (a.type == A_DATA) {
			bytes = a.data;
			n = a.len;
		} else if (a.type == A_TERMIOS && a.len == sizeof(tio)) {
			memcpy(&tio, a.data, sizeof(tio));
			have_tio = true;
		} else if (a.type == A_ROWS) {
			(void)attr_u32(&a, &rows);
		} else if (a.type == A_COLS) {
			(void)attr_u32(&a, &cols);
		} else if (a.type == A_FLAGS) {
			(void)attr_u32(&a, &flags);
		}
	}
	if (s->state == STATE_MOVED)
		/* Cannot happen (the carry precedes the commit); pass it on. */
		return take_input(s, bytes, n, flags, true);
	if (t && have_tio)
		(void)tty_set(t, &tio);
	if (t && rows && cols && rows < 65536 && cols < 65536) {
		struct winsize ws = { .ws_row = (unsigned short)rows,
				      .ws_col = (unsigned short)cols };

		(void)ioctl(t->fd, TIOCSWINSZ, &ws);
	}
	return take_input(s, bytes, n, flags, true);
}

/* A MOVED stint: report once all its output went out; end once neither
 * the caller nor the predecessor will send anything more. Returns true if
 * the session was freed. */
static bool moved_step(struct run_session *s)
{
	if (!s->reported && s->resumed) {
		struct buf b = BUF_INIT;
		int r;

		for (size_t i = 0; i < s->n_ends; i++) {
			struct end *e = &s->ends[i];

			/* A pipe or terminal that still has a writer and nothing
			 * to read counts once the original is gone (its writes all
			 * arrived): only a background child could write more. */
			if (e->fd >= 0 && e->out && !e->out_eof && !(s->orig_exited && e->out_idle))
				return false;
		}
		r = attr_put_u64(&b, A_SESSION, s->sid);
		if (r >= 0)
			r = attr_put_u32(&b, A_NODE, s->next_node);
		if (r >= 0)
			r = attr_put_u64(&b, A_XFER, s->next_xfer);
		if (r >= 0)
			r = attr_put_u64(&b, A_BYTES, RUN_WINDOW - MIN(s->out_credit,
								       (uint64_t)RUN_WINDOW));
		if (r >= 0)
			r = send_run(s, RUN_MOVED, &b);
		buf_release(&b);
		s->reported = true;
		for (size_t i = 0; i < s->n_ends; i++)
			close_end(&s->ends[i]);
		if (r < 0) {
			session_free(s);
			return true;
		}
	}
	if (s->reported && s->handed && s->src_done) {
		(void)send_stint(s, s->next_node, s->next_xfer, RUN_MOVE_END, NULL);
		log_debug("process %d: session handed over to node %u", (int)s->pid, s->next_node);
		session_free(s);
		return true;
	}
	return false;
}

/* A message for a TARGET stint; from_prev: it comes from the stint's
 * predecessor (in order with the input it carried), else from the caller. */
static void target_recv(struct run_session *s, uint32_t type, const void *data, size_t len,
			bool from_prev)
{
	struct attr_iter it;
	struct attr a;
	uint32_t v = 0, rows = 0, cols = 0, flags = 0;
	uint64_t n;
	bool moved = s->state == STATE_MOVED;

	attr_iter_init(&it, data, len);
	switch (type) {
	case RUN_IN:
		if (attr_find(data, len, A_FLAGS, &a) >= 0)
			(void)attr_u32(&a, &flags);
		while (attr_next(&it, &a) > 0) {
			if (a.type != A_DATA)
				continue;
			if (!from_prev && !s->src_done) {
				/* Input the predecessor forwards goes first. */
				if (s->later.len + a.len > 2 * RUN_WINDOW ||
				    buf_append(&s->later, a.data, a.len) < 0) {
					log_warn("node %u overran the input window of process %d, "
						 "dropping its session",
						 s->peer, (int)s->pid);
					target_close(s);
					return;
				}
				continue;
			}
			if (take_input(s, a.data, a.len, flags & RUN_IN_ECHOED, false))
				return;
		}
		break;
	case RUN_IN_EOF:
		if (!from_prev && !s->src_done)
			s->later_eof = true;
		else
			take_eof(s);
		break;
	case RUN_MOVE_INPUT:
		if (from_prev && carry_in(s, data, len))
			return;
		break;
	case RUN_MOVE_END:
		if (from_prev && release_later(s))
			return;
		break;
	case RUN_RESUME:
		if (s->resumed)
			break;
		n = 0;
		while (attr_next(&it, &a) > 0)
			if (a.type == A_BYTES)
				(void)attr_u64(&a, &n);
		s->resumed = true;
		s->out_credit = MIN(s->out_credit + RUN_WINDOW - MIN(n, (uint64_t)RUN_WINDOW),
				    (uint64_t)RUN_WINDOW);
		if (s->ack_owed) {
			uint64_t owed = s->ack_owed;

			s->ack_owed = 0;
			(void)send_simple(s, RUN_IN_ACK, A_BYTES, owed, true);
		}
		for (size_t i = 0; i < s->n_ends; i++)
			s->ends[i].out_idle = false;
		target_pump(s);
		return;
	case RUN_HANDED:
		if (moved)
			s->handed = true;
		break;
	case RUN_OUT_ACK:
		if (moved && s->reported) {
			(void)forward(s, type, data, len);
			break;
		}
		while (attr_next(&it, &a) > 0)
			if (a.type == A_BYTES && attr_u64(&a, &n) >= 0)
				s->out_credit = MIN(s->out_credit + n, (uint64_t)RUN_WINDOW);
		target_pump(s);
		return;
	case RUN_SIGNAL:
		if (moved) {
			(void)forward(s, type, data, len);
			break;
		}
		while (attr_next(&it, &a) > 0)
			if (a.type == A_SIGNAL && attr_u32(&a, &v) >= 0)
				deliver_signal(s, (int)v);
		break;
	case RUN_WINSIZE: {
		struct end *t = tty_end(s);

		if (moved) {
			(void)forward(s, type, data, len);
			break;
		}
		while (attr_next(&it, &a) > 0) {
			if (a.type == A_ROWS)
				(void)attr_u32(&a, &rows);
			else if (a.type == A_COLS)
				(void)attr_u32(&a, &cols);
		}
		if (t && rows && cols && rows < 65536 && cols < 65536) {
			struct winsize ws = { .ws_row = (unsigned short)rows,
					      .ws_col = (unsigned short)cols };

			(void)ioctl(t->fd, TIOCSWINSZ, &ws);
		}
		break;
	}
	case RUN_CLOSE:
		target_close(s);
		return;
	case RUN_CLOSE_OUT:
		if (moved)
			(void)forward(s, type, data, len);
		while (attr_next(&it, &a) > 0) {
			if (a.type != A_FD || attr_u32(&a, &v) < 0)
				continue;
			for (size_t i = 0; i < s->n_ends; i++)
				if (s->ends[i].out && !s->ends[i].tty && s->ends[i].fdno == v)
					close_end(&s->ends[i]);
		}
		break;
	default:
		break;
	}
	(void)target_step(s);
}

static void run_recv(struct msg *m, uint32_t node, uint16_t channel, uint32_t type,
		     const void *data, size_t len, void *userdata)
{
	struct node_daemon *d = userdata;
	struct run_session *s;
	struct attr a;
	uint64_t sid = 0, xfer = 0;
	uint32_t prev = 0;
	bool to_target, from_prev = false;

	(void)m;
	(void)channel;
	if (d->leaving)
		return;
	if (type == RUN_START) {
		target_start(d, node, data, len);
		return;
	}
	if (attr_find(data, len, A_SESSION, &a) >= 0)
		(void)attr_u64(&a, &sid);
	if (attr_find(data, len, A_XFER, &a) >= 0)
		(void)attr_u64(&a, &xfer);
	to_target = type == RUN_IN || type == RUN_IN_EOF || type == RUN_OUT_ACK ||
		    type == RUN_SIGNAL || type == RUN_WINSIZE || type == RUN_CLOSE ||
		    type == RUN_CLOSE_OUT || type == RUN_MOVE_INPUT || type == RUN_MOVE_END ||
		    type == RUN_RESUME || type == RUN_HANDED;
	if (type == RUN_RESUME) {
		/* From the caller, naming the stint by the move that made it. */
		if (attr_find(data, len, A_PREV, &a) >= 0)
			(void)attr_u32(&a, &prev);
		s = stint_find(d, prev, xfer);
		if (s && (s->peer != node || s->sid != sid))
			s = NULL;
	} else if (to_target && xfer) {
		/* From the stint before, through the move that brought the process. */
		s = stint_find(d, node, xfer);
		if (s && s->sid != sid)
			s = NULL;
		from_prev = true;
	} else if (to_target) {
		s = target_find(d, node, sid);
	} else {
		s = session_find(d, ROLE_CALLER, node, sid);
	}
	if (!s) {
		/* The session ended here. */
		log_debug("run message %u for unknown session %llu from node %u", type,
			  (unsigned long long)sid, node);
		return;
	}
	if (to_target)
		target_recv(s, type, data, len, from_prev);
	else
		caller_recv(s, type, data, len);
}

void run_register(struct node_daemon *d)
{
	struct msg_handler h = { .recv = run_recv };

	(void)msg_register(d->msg, NODE_CH_RUN, &h, d);
}

/* A caller that lost its process's node, after a migration: stints of the
 * session elsewhere may wait for it; tell every node. */
static void caller_lost(struct run_session *s)
{
	struct node_daemon *d = s->d;

	if (!s->moved)
		return;
	for (size_t i = 0; i < d->n_peers; i++)
		if (d->peers[i].state == NODE_STATE_UP || d->peers[i].state == NODE_STATE_SELF) {
			uint32_t peer = s->peer;

			s->peer = d->peers[i].id;
			(void)send_simple(s, RUN_CLOSE, 0, 0, false);
			s->peer = peer;
		}
}

void run_node_down(struct node_daemon *d, uint32_t node)
{
	struct node_peer *p = node_peer_find(d, node);
	const char *how = p && p->state == NODE_STATE_FAILED ? "failed" : "left the cluster";
	struct run_session *s, *next;

	for (s = d->sessions; s; s = next) {
		char msg[256];

		next = s->next;
		if (s->role == ROLE_LOCAL)
			continue;
		if (s->role == ROLE_TARGET) {
			if (s->state == STATE_MOVED && s->next_node == node && s->peer != node) {
				/* The process was lost with the node it moved to. */
				if (!s->reported) {
					snprintf(msg, sizeof(msg),
						 "node %u %s just after process %d moved there",
						 node, how, (int)s->pid);
					target_failed(d, s->peer, s->sid, -EHOSTDOWN, 0, msg);
				}
				session_free(s);
				continue;
			}
			if (s->peer == node) {
				target_close(s);
				continue;
			}
			/* The predecessor is gone: what it had not forwarded is lost. */
			if (s->arr_from == node && s->arr_xfer && !s->src_done &&
			    s->state != STATE_ARRIVING && release_later(s))
				continue;
			if (s->state == STATE_MOVED && moved_step(s))
				continue;
			continue;
		}
		if (s->peer != node)
			continue;
		if (s->state == STATE_STARTING)
			snprintf(msg, sizeof(msg), "node %u %s before the process started", node,
				 how);
		else
			snprintf(msg, sizeof(msg), "node %u %s while running process %d", node,
				 how, (int)s->pid);
		caller_lost(s);
		fail_conn(s, -EHOSTDOWN, 0, msg);
	}
}

void run_free_all(struct node_daemon *d)
{
	while (d->sessions) {
		struct run_session *s = d->sessions;

		if (s->role == ROLE_CALLER)
			(void)send_simple(s, RUN_CLOSE, 0, 0, false);
		session_free(s);
	}
}

/* ---- migration: the session follows its process ------------------------------ */

static bool is_terminal(const struct stat *st)
{
	unsigned maj = major(st->st_rdev);

	return S_ISCHR(st->st_mode) && (maj == 4 || maj == 5 || (maj >= 136 && maj <= 143));
}

/* A_STDIO: how the process's fds 0-2 reach the outside, as the engine sees
 * them with GHOST_EXPORT_SHELL_JOB: a terminal, a pipe or socket (those are
 * replaced by the destination's), or neither (files, /dev/null: they move
 * as files). -EOPNOTSUPP for one socket as both input and output: the
 * destination could not give it back as one object. */
static int stdio_map(pid_t pid, uint32_t *ret)
{
	struct stat st[3];
	bool have[3];
	uint32_t map = 0;

	for (int i = 0; i < 3; i++) {
		char path[64];
		uint32_t kind = RUN_STDIO_NONE;

		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, i);
		have[i] = stat(path, &st[i]) == 0;
		if (have[i] && is_terminal(&st[i]))
			kind = RUN_STDIO_TTY;
		else if (have[i] && (S_ISFIFO(st[i].st_mode) || S_ISSOCK(st[i].st_mode)))
			kind = RUN_STDIO_PIPE;
		map |= kind << (2 * i);
	}
	for (int i = 1; i < 3; i++)
		if (have[0] && have[i] && S_ISSOCK(st[0].st_mode) && S_ISSOCK(st[i].st_mode) &&
		    st[0].st_dev == st[i].st_dev && st[0].st_ino == st[i].st_ino)
			return -EOPNOTSUPP;
	*ret = map;
	return 0;
}

/* Our own copy of fd of process pid (pidfd_getfd), or -errno. */
static int grab_fd(pid_t pid, int fd)
{
	_cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	int r;

	if (pidfd < 0)
		return -errno;
	r = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	return r < 0 ? -errno : r;
}

/* The settings and size of the process's terminal, if it has one. */
static int put_terminal(pid_t pid, uint32_t map, struct buf *b)
{
	for (int i = 0; i < 3; i++) {
		_cleanup_close_ int fd = -1;
		struct termios tio;
		struct winsize ws;
		int r = 0;

		if (RUN_STDIO_KIND(map, i) != RUN_STDIO_TTY)
			continue;
		fd = grab_fd(pid, i);
		if (fd < 0)
			continue;
		if (tcgetattr(fd, &tio) == 0)
			r = attr_put(b, A_TERMIOS, &tio, sizeof(tio));
		if (r >= 0 && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
			r = attr_put_u32(b, A_ROWS, ws.ws_row);
			if (r >= 0)
				r = attr_put_u32(b, A_COLS, ws.ws_col);
		}
		return r;
	}
	return 0;
}

int run_move_check(struct node_daemon *d, struct mproc *p, char *msg, size_t size)
{
	uint32_t map;

	(void)d;
	if (p->detached)
		return 0;
	if (stdio_map(p->pid, &map) == -EOPNOTSUPP) {
		snprintf(msg, size,
			 "process %d has one socket as its standard input and output; it "
			 "cannot be relayed from another node",
			 (int)p->pid);
		return -EOPNOTSUPP;
	}
	return 0;
}

int run_move_prepare(struct node_daemon *d, struct mproc *p, struct buf *b)
{
	struct run_session *s = p->session;
	uint32_t map = 0;
	int r;

	if (p->detached)
		return 0;
	r = stdio_map(p->pid, &map);
	if (r >= 0)
		r = attr_put_u32(b, A_STDIO, map);
	if (r >= 0 && s) {
		if (s->role == ROLE_LOCAL && s->sid == 0)
			s->sid = node_new_id(d);
		s->stdio_map = map;
		r = attr_put_u32(b, A_CALLER, s->role == ROLE_LOCAL ? d->self : s->peer);
		if (r >= 0)
			r = attr_put_u64(b, A_SESSION, s->sid);
	}
	if (r >= 0)
		r = put_terminal(p->pid, map, b);
	return r;
}

/* Is st (the process's stdin) the pipe or terminal the session gave it?
 * (Our end of the pipe may be closed already, after the client's EOF.) */
static bool stdin_is_ours(const struct run_session *s, const struct stat *st)
{
	if (s->in_dev == 0)
		return false;
	if (s->in_ino == 0)
		return S_ISCHR(st->st_mode) && st->st_rdev == s->in_dev;
	return S_ISFIFO(st->st_mode) && st->st_dev == s->in_dev && st->st_ino == s->in_ino;
}

/* What a pipe holds, without blocking on it (the process is stopped: nobody
 * else reads). */
static int read_pipe_input(int fd, struct buf *data)
{
	int avail = 0;

	if (ioctl(fd, FIONREAD, &avail) < 0 || avail <= 0)
		return 0;
	for (size_t got = 0; got < (size_t)avail;) {
		char chunk[RUN_CHUNK];
		ssize_t n = read(fd, chunk, MIN(sizeof(chunk), (size_t)avail - got));
		int r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		r = buf_append(data, chunk, (size_t)n);
		if (r < 0)
			return r;
		got += (size_t)n;
	}
	return 0;
}

/* What a terminal holds, whole lines and the line being typed: switched to
 * non-canonical mode for a moment, it gives up all it has. */
static int read_tty_input(int fd, struct buf *data)
{
	struct termios orig, raw;
	int r = 0;

	if (tcgetattr(fd, &orig) < 0)
		return 0;
	raw = orig;
	raw.c_lflag &= ~(tcflag_t)ICANON;
	raw.c_cc[VMIN] = 0;
	raw.c_cc[VTIME] = 0;
	if (tcsetattr(fd, TCSANOW, &raw) < 0)
		return 0;
	for (;;) {
		char chunk[4096];
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		r = buf_append(data, chunk, (size_t)n);
		if (r < 0)
			break;
	}
	(void)tcsetattr(fd, TCSANOW, &orig);
	return r;
}

/* RUN_MOVE_INPUT's data: what the (stopped) process has not read of its
 * stdin, then input acknowledged here and not yet written. */
static int put_unread(struct run_session *s, struct buf *b)
{
	uint32_t kind = RUN_STDIO_KIND(s->stdio_map, 0);
	struct buf data = BUF_INIT;
	uint32_t flags = 0;
	int r = 0;

	if (kind != RUN_STDIO_NONE) {
		_cleanup_close_ int fd = grab_fd(s->pid, 0);
		struct stat st;

		if (fd >= 0 && fstat(fd, &st) == 0 && stdin_is_ours(s, &st)) {
			if (s->in_ino == 0) {
				r = read_tty_input(fd, &data);
				flags |= RUN_IN_ECHOED;
			} else {
				r = read_pipe_input(fd, &data);
			}
		}
	}
	if (r >= 0 && s->in_preacked)
		r = buf_append(&data, s->inbuf.data + s->in_off, s->in_preacked);
	if (r >= 0 && data.len)
		r = attr_put(b, A_DATA, data.data, data.len);
	if (r >= 0 && flags)
		r = attr_put_u32(b, A_FLAGS, flags);
	buf_release(&data);
	return r;
}

static void on_orig_exit(struct loop_io *io, int fd, unsigned events, void *userdata)
{
	struct run_session *s = userdata;

	(void)io;
	(void)fd;
	(void)events;
	s->orig_io = loop_io_free(s->orig_io);
	s->orig_fd = safe_close(s->orig_fd);
	s->orig_exited = true;
	for (size_t i = 0; i < s->n_ends; i++)
		s->ends[i].out_idle = false;
	target_pump(s);
}

/* A TARGET stint whose process left: pass on the input it holds, then send
 * the output still in the pipes before the caller turns to the next. */
static void target_moved(struct run_session *s, uint32_t to, uint64_t xfer)
{
	size_t unacked = s->inbuf.len - s->in_off - s->in_preacked;
	int r;

	s->state = STATE_MOVED;
	s->next_node = to;
	s->next_xfer = xfer;
	if (unacked) {
		struct buf b = BUF_INIT;

		if (attr_put(&b, A_DATA, s->inbuf.data + s->inbuf.len - unacked, unacked) >= 0)
			(void)send_stint(s, to, xfer, RUN_IN, &b);
		buf_release(&b);
	}
	if (s->in_eof)
		(void)send_stint(s, to, xfer, RUN_IN_EOF, NULL);
	buf_reset(&s->inbuf);
	s->in_off = 0;
	s->in_preacked = 0;
	for (size_t i = 0; i < s->n_ends; i++) {
		struct end *e = &s->ends[i];

		e->out_idle = false;
		if (!e->in)
			continue;
		e->in = false;
		if (!e->out)
			close_end(e);
	}
	/* The original is about to be killed: its exit closes its stdio. */
	s->orig_fd = (int)syscall(SYS_pidfd_open, s->pid, 0);
	r = s->orig_fd < 0 ? -errno
			   : loop_io_new(s->d->loop, s->orig_fd, LOOP_READ, on_orig_exit, s,
					 &s->orig_io);
	if (r < 0) {
		log_debug_errno(r, "cannot watch the exit of process %d", (int)s->pid);
		s->orig_fd = safe_close(s->orig_fd);
		s->orig_exited = true;
	}
	log_info("process %d: its stdio follows it to node %u", (int)s->pid, to);
	target_pump(s);
}

/* A LOCAL session whose process left: it becomes the destination's caller,
 * and the client relays from now on. */
static void local_moved(struct run_session *s, uint32_t to, uint64_t xfer)
{
	struct node_daemon *d = s->d;
	struct buf b = BUF_INIT;
	int r;

	(void)send_stint(s, to, xfer, RUN_MOVE_END, NULL);
	r = attr_put_u32(&b, A_PREV, d->self);
	if (r >= 0)
		r = attr_put_u64(&b, A_BYTES, 0);
	if (r >= 0)
		r = send_stint(s, to, xfer, RUN_RESUME, &b);
	buf_release(&b);
	s->role = ROLE_CALLER;
	s->peer = to;
	s->moved = true;
	s->state = STATE_RUNNING;
	if (r < 0) {
		fail_conn(s, r, 0, "cannot reach the node the process moved to");
		return;
	}
	r = attr_put_u32(&b, A_STDIO, s->stdio_map);
	if (r >= 0)
		r = attr_put_u32(&b, A_NODE, to);
	if (r >= 0)
		(void)ctl_send(s->conn, CTL_RELAY, &b);
	buf_release(&b);
	log_info("process %d: its client relays its stdio to node %u from now on", (int)s->pid,
		 to);
}

void run_move_commit(struct node_daemon *d, struct mproc *p, uint32_t to, uint64_t xfer)
{
	struct run_session *s = p->session;
	struct buf b = BUF_INIT;

	(void)d;
	if (!s)
		return;
	s->proc = NULL;
	p->session = NULL;
	if (s->caller_gone) {
		(void)send_stint(s, to, xfer, RUN_CLOSE, NULL);
		session_free(s);
		return;
	}
	/* The process is stopped: what it has not read and its terminal's
	 * settings go first, before MOVE_COMMIT lets the copy run. */
	if (put_terminal(s->pid, s->stdio_map, &b) >= 0 &&
	    (s->role != ROLE_TARGET || put_unread(s, &b) >= 0))
		(void)send_stint(s, to, xfer, RUN_MOVE_INPUT, &b);
	buf_release(&b);
	if (s->role == ROLE_LOCAL)
		local_moved(s, to, xfer);
	else
		target_moved(s, to, xfer);
}

/* A ghost fork copy of an attached process runs detached: stdin /dev/null,
 * output to a log of its own. */
static int fork_stdio(struct node_daemon *d, uint32_t from, uint64_t xfer, pid_t pid, uid_t uid,
		      gid_t gid, int stdio[3], char *msg, size_t size)
{
	_cleanup_close_ int logfd = -1;
	char *tmp = NULL, *path = NULL;
	struct run_session *s;
	int r;

	logfd = proc_log_open(d, uid, gid, &tmp);
	if (logfd < 0) {
		snprintf(msg, size, "cannot create a log file in '%s' on node %u: %s", d->log_dir,
			 d->self, strerror(-logfd));
		return logfd;
	}
	r = proc_log_rename(d, tmp, pid, &path);
	if (r < 0) {
		(void)unlink(tmp);
		free(tmp);
		snprintf(msg, size, "cannot name the log of process %d: %s", (int)pid,
			 strerror(-r));
		return r;
	}
	free(tmp);
	s = session_new(d, ROLE_TARGET);
	if (!s) {
		(void)unlink(path);
		free(path);
		snprintf(msg, size, "out of memory on node %u", d->self);
		return -ENOMEM;
	}
	s->state = STATE_ARRIVING;
	s->fork_copy = true;
	s->arr_from = from;
	s->arr_xfer = xfer;
	s->pid = pid;
	s->log_tmp = path; /* removed if the fork fails */
	stdio[0] = open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY);
	stdio[1] = fcntl(logfd, F_DUPFD_CLOEXEC, 3);
	stdio[2] = fcntl(logfd, F_DUPFD_CLOEXEC, 3);
	if (stdio[0] < 0 || stdio[1] < 0 || stdio[2] < 0) {
		r = -errno;
		for (int i = 0; i < 3; i++)
			stdio[i] = safe_close(stdio[i]);
		session_free(s);
		snprintf(msg, size, "cannot set up the stdio of process %d: %s", (int)pid,
			 strerror(-r));
		return r;
	}
	return 0;
}

int run_arrival_prepare(struct node_daemon *d, uint32_t from, uint64_t xfer, pid_t pid, bool fork,
			const void *data, size_t len, int stdio[3], char *msg, size_t size)
{
	struct attr_iter it;
	struct attr a;
	uint32_t map = 0, caller = 0, v, fdno = 0, uid = 0, gid = 0, rows = 0, cols = 0;
	uint64_t sid = 0;
	bool have_map = false, have_caller = false, have_tio = false, tty = false;
	struct termios tio;
	struct run_session *s;
	int slave = -1, r = 0;

	stdio[0] = stdio[1] = stdio[2] = -1;
	attr_iter_init(&it, data, len);
	while (attr_next(&it, &a) > 0) {
		switch (a.type) {
		case A_STDIO:
			have_map = attr_u32(&a, &map) >= 0;
			break;
		case A_CALLER:
			have_caller = attr_u32(&a, &caller) >= 0 && caller != 0;
			break;
		case A_SESSION:
			(void)attr_u64(&a, &sid);
			break;
		case A_UID:
			(void)attr_u32(&a, &uid);
			break;
		case A_GID:
			(void)attr_u32(&a, &gid);
			break;
		case A_TERMIOS:
			if (a.len == sizeof(tio)) {
				memcpy(&tio, a.data, sizeof(tio));
				have_tio = true;
			}
			break;
		case A_ROWS:
			(void)attr_u32(&a, &rows);
			break;
		case A_COLS:
			(void)attr_u32(&a, &cols);
			break;
		default:
			break;
		}
	}
	if (!have_map)
		return 0; /* detached: its stdio are files */
	if (fork)
		return fork_stdio(d, from, xfer, pid, (uid_t)uid, (gid_t)gid, stdio, msg, size);
	if (!have_caller || sid == 0)
		return 0; /* its caller left long ago: /dev/null in place of its stdio */
	s = session_new(d, ROLE_TARGET);
	if (!s) {
		snprintf(msg, size, "out of memory on node %u", d->self);
		return -ENOMEM;
	}
	s->state = STATE_ARRIVING;
	s->peer = caller;
	s->sid = sid;
	s->pid = pid;
	s->arr_from = from;
	s->arr_xfer = xfer;
	s->stdio_map = map;
	s->resumed = false;
	s->src_done = false;
	s->out_credit = 0;
	for (int i = 0; i < 3; i++)
		tty |= RUN_STDIO_KIND(map, i) == RUN_STDIO_TTY;
	if (tty) {
		/* Output of the terminal goes where the client's terminal is. */
		if (RUN_STDIO_KIND(map, 1) == RUN_STDIO_TTY)
			fdno = 1;
		else if (RUN_STDIO_KIND(map, 2) == RUN_STDIO_TTY)
			fdno = 2;
		r = open_pty(s, (uid_t)uid, have_tio ? &tio : NULL, rows, cols,
			     RUN_STDIO_KIND(map, 0) == RUN_STDIO_TTY, fdno, &slave);
		if (r >= 0 && fdno == 0) {
			/* Only stdin is a terminal: its echo goes to the client's. */
			s->ends[s->n_ends - 1].out = true;
		}
	}
	for (int i = 0; i < 3 && r >= 0; i++) {
		v = RUN_STDIO_KIND(map, i);
		if (v == RUN_STDIO_TTY) {
			stdio[i] = fcntl(slave, F_DUPFD_CLOEXEC, 3);
			if (stdio[i] < 0)
				r = -errno;
		} else if (v == RUN_STDIO_PIPE) {
			r = open_pipe(s, i, &stdio[i]);
		}
	}
	safe_close(slave);
	if (r < 0) {
		for (int i = 0; i < 3; i++)
			stdio[i] = safe_close(stdio[i]);
		session_free(s);
		snprintf(msg, size, "cannot create the stdio of process %d on node %u: %s",
			 (int)pid, d->self, strerror(-r));
		return r;
	}
	return 0;
}

void run_arrival_commit(struct node_daemon *d, uint32_t from, uint64_t xfer, struct mproc *p)
{
	struct run_session *s = stint_find(d, from, xfer);

	if (!s || s->state != STATE_ARRIVING)
		return;
	if (s->fork_copy) {
		p->detached = true;
		free(p->log_path);
		p->log_path = TAKE_PTR(s->log_tmp);
		session_free(s);
		return;
	}
	s->proc = p;
	p->session = s;
	s->state = STATE_RUNNING;
	log_debug("process %d: stdio relayed for node %u here now", (int)s->pid, s->peer);
	(void)target_step(s);
}

void run_arrival_drop(struct node_daemon *d, uint32_t from, uint64_t xfer)
{
	struct run_session *s = stint_find(d, from, xfer);

	if (s && s->state == STATE_ARRIVING)
		session_free(s);
}

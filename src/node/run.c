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
 *     |   (LOCAL, TARGET: spawn;   |     (TARGET: output     all output sent,
 *     |    CALLER: RUN_START sent) |      still in pipes)    RUN_EXIT / CTL_EXIT
 *     |                            |
 *     +-- exec failed, node down, -+-- client gone (CALLER: RUN_CLOSE),
 *         client gone: error           RUN_CLOSE or caller down (TARGET:
 *         to the client, freed         SIGHUP to the process), node down
 *                                      (CALLER: error to the client): freed
 *
 *   Detached runs end their session once the process is started.
 *
 * 1. A session is in d->sessions from its creation to run_session_free().
 * 2. s->conn and the connection's session point at each other, or both are
 *    NULL; likewise s->proc and the process's session.
 * 3. A TARGET never has more than RUN_WINDOW bytes of output in flight nor
 *    buffers more than 2 * RUN_WINDOW bytes of input (a caller sending more
 *    breaks the protocol and loses its session).
 *
 *   event                        function
 *   CTL_RUN                      run_request() -> start_local() / start_remote()
 *   RUN_START (TARGET)           target_start()
 *   exec outcome                 run_proc_exec()
 *   process reaped               run_proc_exited()
 *   client frames                run_conn_frame()
 *   daemon messages              run_recv()
 *   pipe or pty ready (TARGET)   on_end_io() -> pump_out() / pump_in()
 *   client gone                  run_conn_gone()
 *   node down                    run_node_down()
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
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
	STATE_RUNNING,
	STATE_DRAINING,
};

/* One fd of a TARGET's process stdio, seen from the daemon. */
struct end {
	int fd;
	struct loop_io *io;
	bool in;       /* input for the process is written here */
	bool out;      /* output of the process is read here */
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
	buf_release(&s->inbuf);
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

/* Signal the process's group (a terminal would), or the process alone if
 * it left its group. */
static void signal_process(pid_t pid, int sig)
{
	if (pid <= 0 || sig <= 0 || sig >= NSIG)
		return;
	if (kill(-pid, sig) < 0 && kill(pid, sig) < 0)
		log_debug_errno(errno, "cannot signal process %d", (int)pid);
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

static int open_pty(struct run_session *s, const struct run_params *p, int *ret_slave)
{
	_cleanup_close_ int master = -1, slave = -1;
	char name[64];

	master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		return -errno;
	if (grantpt(master) < 0 || unlockpt(master) < 0 || ptsname_r(master, name, sizeof(name)))
		return negative_errno();
	slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0)
		return -errno;
	if (geteuid() == 0 && (fchown(slave, p->uid, (gid_t)-1) < 0 || fchmod(slave, 0620) < 0))
		return -errno;
	if (p->have_tio)
		(void)tcsetattr(slave, TCSANOW, &p->tio);
	if (p->rows && p->cols) {
		struct winsize ws = { .ws_row = (unsigned short)p->rows,
				      .ws_col = (unsigned short)p->cols };

		(void)ioctl(slave, TIOCSWINSZ, &ws);
	}
	s->ends[0] = (struct end){ .fd = TAKE_FD(master), .in = true, .out = true, .fdno = 1 };
	s->n_ends = 1;
	*ret_slave = TAKE_FD(slave);
	return 0;
}

/* Pipes for stdin, stdout, stderr: the process's ends in child[]. */
static int open_pipes(struct run_session *s, int child[3])
{
	int fds[2];

	for (int i = 0; i < 3; i++) {
		if (pipe2(fds, O_CLOEXEC) < 0)
			return -errno;
		/* Our end (a file description of its own) is non-blocking. */
		child[i] = fds[i == 0 ? 0 : 1];
		s->ends[i].fd = fds[i == 0 ? 1 : 0];
		s->ends[i].in = i == 0;
		s->ends[i].out = i != 0;
		s->ends[i].fdno = (uint32_t)i;
		s->n_ends = (size_t)i + 1;
		if (fcntl(s->ends[i].fd, F_SETFL, O_NONBLOCK) < 0)
			return -errno;
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
		r = open_pty(s, p, &slave);
		if (r < 0) {
			buf_printf(err, "cannot open a pseudo-terminal on node %u: %s", d->self,
				   strerror(-r));
			goto out;
		}
		s->pty = true;
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

/* Watch an end only while there is something to do with it: a pipe whose
 * other side is closed reports a hangup until it is read or closed. */
static void update_end(struct run_session *s, struct end *e)
{
	unsigned ev = 0;
	int r;

	if (e->fd < 0)
		return;
	if (e->out && !e->out_eof && s->out_credit > 0)
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

/* Read what output there is, within the credit. Returns -errno if the
 * session is lost. */
static int pump_out(struct run_session *s, struct end *e)
{
	char data[RUN_CHUNK];

	while (!e->out_eof && s->out_credit > 0) {
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
	if (s->pty)
		return; /* the terminal stays: EOF of a terminal is a ^D the user types */
	e->io = loop_io_free(e->io);
	e->fd = safe_close(e->fd);
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
		return send_simple(s, RUN_IN_ACK, A_BYTES, done, true);
	return 0;
}

static struct end *input_end(struct run_session *s)
{
	for (size_t i = 0; i < s->n_ends; i++)
		if (s->ends[i].in && s->ends[i].fd >= 0)
			return &s->ends[i];
	return NULL;
}

/* All output read up to now? (A pipe a background child still holds open
 * does not keep the session waiting.) */
static bool output_drained(struct run_session *s)
{
	for (size_t i = 0; i < s->n_ends; i++) {
		struct end *e = &s->ends[i];

		if (e->fd >= 0 && e->out && !e->out_eof && !e->out_idle)
			return false;
	}
	return true;
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
	if (s->state == STATE_DRAINING && output_drained(s)) {
		target_finish(s);
		return;
	}
	update_ends(s);
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
	if (s->state == STATE_DRAINING && output_drained(s)) {
		target_finish(s);
		return;
	}
	update_ends(s);
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

/* The caller is gone: hang the process up, as a closed terminal would. */
static void target_close(struct run_session *s)
{
	if (s->proc) {
		log_debug("process %d: its caller is gone, sending SIGHUP", (int)s->pid);
		signal_process(s->pid, SIGHUP);
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
		if (req->type == CTL_SIGNAL && frame_u32(req, A_SIGNAL, &v) >= 0 && s->proc)
			signal_process(s->pid, (int)v);
		return;
	}
	if (s->state == STATE_STARTING)
		return;
	switch (req->type) {
	case CTL_STDIN:
		if (frame_attr(req, A_DATA, &a) >= 0) {
			struct buf b = BUF_INIT;

			if (attr_put_u64(&b, A_SESSION, s->sid) >= 0 &&
			    attr_put(&b, A_DATA, a.data, a.len) >= 0)
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
		signal_process(s->pid, SIGHUP);
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

static void target_recv(struct run_session *s, uint32_t type, const void *data, size_t len)
{
	struct attr_iter it;
	struct attr a;
	uint32_t v = 0, rows = 0, cols = 0;
	uint64_t n;
	struct end *in;

	attr_iter_init(&it, data, len);
	switch (type) {
	case RUN_IN:
		while (attr_next(&it, &a) > 0) {
			if (a.type != A_DATA)
				continue;
			if (s->in_broken || s->in_eof) {
				(void)send_simple(s, RUN_IN_ACK, A_BYTES, a.len, true);
				continue;
			}
			if (s->inbuf.len - s->in_off + a.len > 2 * RUN_WINDOW ||
			    buf_append(&s->inbuf, a.data, a.len) < 0) {
				log_warn("node %u overran the input window of process %d, "
					 "dropping its session",
					 s->peer, (int)s->pid);
				target_close(s);
				return;
			}
		}
		in = input_end(s);
		if (!in) {
			/* stdin is gone: acknowledge so that the client goes on */
			size_t drop = s->inbuf.len - s->in_off;

			buf_reset(&s->inbuf);
			s->in_off = 0;
			if (drop)
				(void)send_simple(s, RUN_IN_ACK, A_BYTES, drop, true);
			return;
		}
		if (pump_in(s, in) < 0) {
			target_finish(s);
			return;
		}
		break;
	case RUN_IN_EOF:
		s->in_eof = true;
		in = input_end(s);
		if (in && s->inbuf.len == s->in_off)
			close_input(s, in);
		break;
	case RUN_OUT_ACK:
		while (attr_next(&it, &a) > 0)
			if (a.type == A_BYTES && attr_u64(&a, &n) >= 0)
				s->out_credit = MIN(s->out_credit + n, (uint64_t)RUN_WINDOW);
		target_pump(s);
		return;
	case RUN_SIGNAL:
		while (attr_next(&it, &a) > 0)
			if (a.type == A_SIGNAL && attr_u32(&a, &v) >= 0 && s->proc)
				signal_process(s->pid, (int)v);
		break;
	case RUN_WINSIZE:
		while (attr_next(&it, &a) > 0) {
			if (a.type == A_ROWS)
				(void)attr_u32(&a, &rows);
			else if (a.type == A_COLS)
				(void)attr_u32(&a, &cols);
		}
		if (s->pty && rows && cols && rows < 65536 && cols < 65536) {
			struct winsize ws = { .ws_row = (unsigned short)rows,
					      .ws_col = (unsigned short)cols };

			(void)ioctl(s->ends[0].fd, TIOCSWINSZ, &ws);
		}
		break;
	case RUN_CLOSE:
		target_close(s);
		return;
	case RUN_CLOSE_OUT:
		while (attr_next(&it, &a) > 0) {
			if (a.type != A_FD || attr_u32(&a, &v) < 0 || s->pty)
				continue;
			for (size_t i = 0; i < s->n_ends; i++)
				if (s->ends[i].out && s->ends[i].fdno == v) {
					s->ends[i].io = loop_io_free(s->ends[i].io);
					s->ends[i].fd = safe_close(s->ends[i].fd);
				}
		}
		break;
	default:
		break;
	}
	if (s->state == STATE_DRAINING && output_drained(s)) {
		target_finish(s);
		return;
	}
	update_ends(s);
}

static void run_recv(struct msg *m, uint32_t node, uint16_t channel, uint32_t type,
		     const void *data, size_t len, void *userdata)
{
	struct node_daemon *d = userdata;
	struct run_session *s;
	struct attr a;
	uint64_t sid = 0;
	bool to_target;

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
	to_target = type == RUN_IN || type == RUN_IN_EOF || type == RUN_OUT_ACK ||
		    type == RUN_SIGNAL || type == RUN_WINSIZE || type == RUN_CLOSE ||
		    type == RUN_CLOSE_OUT;
	s = session_find(d, to_target ? ROLE_TARGET : ROLE_CALLER, node, sid);
	if (!s) {
		/* The session ended here; tell a caller still sending to it. */
		log_debug("run message %u for unknown session %llu from node %u", type,
			  (unsigned long long)sid, node);
		return;
	}
	if (to_target)
		target_recv(s, type, data, len);
	else
		caller_recv(s, type, data, len);
}

void run_register(struct node_daemon *d)
{
	struct msg_handler h = { .recv = run_recv };

	(void)msg_register(d->msg, NODE_CH_RUN, &h, d);
}

void run_node_down(struct node_daemon *d, uint32_t node)
{
	struct node_peer *p = node_peer_find(d, node);
	const char *how = p && p->state == NODE_STATE_FAILED ? "failed" : "left the cluster";
	struct run_session *s, *next;

	for (s = d->sessions; s; s = next) {
		char msg[256];

		next = s->next;
		if (s->peer != node || s->role == ROLE_LOCAL)
			continue;
		if (s->role == ROLE_TARGET) {
			target_close(s);
			continue;
		}
		if (s->state == STATE_STARTING)
			snprintf(msg, sizeof(msg), "node %u %s before the process started", node,
				 how);
		else
			snprintf(msg, sizeof(msg), "node %u %s while running process %d", node,
				 how, (int)s->pid);
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

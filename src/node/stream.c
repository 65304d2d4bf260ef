/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Dynamic streams: the pipes, socketpairs, connected Unix stream sockets,
 * named FIFOs and TCP connections that a migrating process shares with
 * another managed process keep working, rebuilt between the processes'
 * current nodes (the Dynamic Streams report, docs/ghostd.md "Streams").
 *
 * While nobody moves, a stream is the plain kernel object and Ghost knows
 * nothing of it. When a holder migrates, the source daemon, as the
 * coordinator (C) of the stream operation, finds its streams before the
 * export (stream_prepare(): the export then carries those fds as
 * placeholders) and, once the copy is imported and held stopped, switches
 * each of them (stream_switch()):
 *
 *   C                                 node of each end (E)
 *   HOLD (pid, fds) -------------->   freeze the holder (holder.c), take a copy
 *                   <--------------   HELD (fd flags, status flags, end flags)
 *   DRAIN ------------------------>   read what is queued towards the holder
 *                                     (TCP: shutdown the copy, read to EOF)
 *                   <--------------   DRAINED (the bytes)
 *   WAKE (placement, bytes) ------>   build the new channel, put the bytes
 *                                     first, install it at the same fd numbers
 *                   <--------------   WOKEN
 *   RELEASE ---------------------->   let the holder go
 *
 * Placement: both ends on one node get a local kernel channel again (a pipe,
 * a socketpair, TCP over loopback for TCP); ends on two nodes get a direct
 * TCP connection between those nodes (WAKE LISTEN to one, its port in
 * LISTENING, WAKE CONNECT to the other; authenticated with a one-time key
 * sent over msg). Data then never passes through a daemon, the old node or
 * a third node. An end whose peer is gone gets a channel holding what was
 * queued for it, then end of file (ALONE).
 *
 * Every switch starts from drained buffers, so a failure after the drain is
 * mended by switching again to the old placement (the moving process stays
 * on the source): nothing queued is lost, and every holder is released.
 *
 * A node remembers the ends of its cross-node channels (struct stream_rec)
 * by the channel's inode: that is how a stream is recognized when one of
 * its holders moves again, and where its other end is.
 *
 * A pipe with more holders than one reader and one writer (several
 * writers, or readers: children that inherited it, writers of a named
 * FIFO) keeps its pipe where its readers are. A writer that leaves the
 * readers' node writes into a pump instead, whose packets its new node's
 * daemon sends to the readers' node to be written into the pipe (a chain,
 * chain.c): a SSTREAM_CHAIN stream, whose end[1] is the readers' node and
 * is neither held nor drained. Its DRAIN flushes the writer's old chain,
 * if it had one, and says up to where; its WAKE is WAKE_CHAIN where the
 * writer goes (a new pump and chain, after the old one), or WAKE_MERGED on
 * the readers' node (the pipe again, once the old chain has written its
 * bytes). The process's own fd is never changed, so a rollback has
 * nothing to undo: the copy goes, with its chain. Its readers cannot leave
 * their node while chains write into their pipe.
 *
 * `ghost fork` gives the copy its fds as fork() would: on the same node
 * the same open file descriptions (SSTREAM_SHARE); on another node a
 * pipe's write end becomes one more writer (SSTREAM_CHAIN), while a read
 * end or a socket, which two nodes could not share, is refused. Nothing of
 * the process or its peers is held or drained.
 *
 *   event                          function
 *   msg on NODE_CH_STREAM          stream_recv() (chains: chain_recv())
 *   node down                      stream_node_down()
 */
#include <arpa/inet.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOG_PREFIX "stream"
#include "base/clock.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/sockdiag.h"
#include "node/node-int.h"
#include "base/banned.h"

/* A stream operation that has not finished by then fails. */
#define OP_TIMEOUT_USEC (10 * 1000 * 1000)
/* How long an end may take to read its TCP stream to the end. */
#define DRAIN_TIMEOUT_MS 5000
/* How long a WAKE may take to connect or to write what was queued. */
#define WAKE_TIMEOUT_MS 5000
/* A process held this long without word from its coordinator is let go. */
#define HOLD_MAX_USEC (2 * OP_TIMEOUT_USEC)
/* Bytes of stream data per message (msg's limit is 16 MiB). */
#define DATA_CHUNK (4u << 20)
/* The most bytes one stream may have queued when it is switched. */
#define DRAIN_MAX (64u << 20)

enum stream_kind {
	STREAM_PIPE = 1, /* a pipe or named FIFO: ends READER and WRITER */
	STREAM_UNIX = 2, /* a connected AF_UNIX stream socket pair */
	STREAM_TCP = 3,  /* a TCP connection */
};

/* A_FLAGS of an end. */
enum stream_end_flags {
	SEND_READER = 1 << 0,  /* the read end of a pipe */
	SEND_WRITER = 1 << 1,  /* the write end of a pipe */
	SEND_SHUT_WR = 1 << 2, /* its holder shut its sending down */
	SEND_NODELAY = 1 << 3, /* TCP_NODELAY was on */
};

/* A_FLAGS of a WAKE. */
enum stream_wake {
	WAKE_LOCAL = 1,   /* both ends here: two A_END */
	WAKE_LISTEN = 2,  /* one end here, the peer connects: answer LISTENING */
	WAKE_CONNECT = 3, /* one end here: connect to A_ADDRESS A_PORT */
	WAKE_ALONE = 4,   /* one end here, its peer is gone */
	WAKE_CHAIN = 5,   /* a pipe's writer here, its readers on A_NODE: a pump and a chain */
	WAKE_MERGED = 6,  /* a pipe's writer here with its readers: the pipe, after its chain */
};

/* How a stream is switched. */
enum sstream_mode {
	SSTREAM_PAIR = 0,  /* two holders: a new channel between their nodes */
	SSTREAM_CHAIN = 1, /* a pipe's writer; its readers and their pipe stay on end[1]'s node */
	SSTREAM_SHARE = 2, /* a fork's copy on the same node: the same description */
};

static const char *const kind_names[] = {
	[STREAM_PIPE] = "pipe",
	[STREAM_UNIX] = "Unix socket",
	[STREAM_TCP] = "TCP connection",
};

/* ---- one end, as the coordinator and the end's node describe it ---------- */

struct send {
	uint32_t node;
	pid_t pid;             /* 0: the node finds it by stream id (stream_rec) */
	int fds[STREAM_MAX_FDS];
	int fd_flags[STREAM_MAX_FDS];
	size_t n_fds;
	uint32_t status;       /* the description's status flags */
	uint32_t flags;        /* enum stream_end_flags */
	uint64_t dev, ino;     /* the kernel object now */
	/* coordinator */
	bool held, drained, woken, gone;
	struct buf data;       /* drained: queued towards this end's holder */
};

struct sstream {
	uint64_t id;
	uint32_t kind;
	/* a TCP connection to another node: end[1]'s addresses, as its node's
	 * /proc/net/tcp prints them */
	char tcp_local[40], tcp_remote[40];
	struct send end[2];   /* end[0]: the moving process's */
	uint8_t key[MSG_CHAN_KEY_SIZE];
	enum sstream_mode mode;
	/* SSTREAM_CHAIN: the pipe on its readers' node, and the writer's chain
	 * now (0: none) with the bytes it sent through it (its DRAIN says) */
	uint64_t pipe_dev, pipe_ino;
	uint64_t after_id, after_off;
	/* SSTREAM_SHARE: our copy of the process's description */
	int share_fd;
};

enum op_phase {
	OP_HOLD,
	OP_DRAIN,
	OP_WAKE,
	OP_WOKEN,
};

struct stream_op {
	struct stream_op *next, *prev;
	struct node_daemon *d;
	uint64_t xfer;
	pid_t pid;
	enum op_phase phase;
	uint32_t target;       /* where end[0] is woken up: the destination, or here */
	pid_t target_pid;
	bool rolling_back;
	bool fork;             /* the process stays: its copy gets fds as fork() gives them */
	uint32_t gen;          /* bumped by a rollback: older answers are ignored */
	unsigned pending;      /* answers awaited */
	int err;
	char errmsg[512];
	stream_done_fn done;
	void *userdata;
	struct loop_timer *timer;
	/* now_ns() when the switch began and when each phase ended (logged) */
	uint64_t t_begin, t_held, t_drained;
	size_t n;
	struct sstream s[];
};

/* ---- a node's side ---------------------------------------------------------- */

/* A holder of a process frozen for coordinator coord's operation xfer. */
struct shold {
	struct shold *next, *prev;
	uint32_t coord;
	uint64_t xfer;
	pid_t pid;
	struct holder *h;
	uint64_t since;        /* loop time it was held */
};

/* An end being switched here. */
struct slocal {
	struct slocal *next, *prev;
	struct node_daemon *d;
	uint32_t coord;
	uint64_t xfer;
	uint64_t id;
	uint32_t index;        /* which end of the stream */
	uint32_t kind;
	struct send e;
	int copy;              /* our copy of the holder's fd */
	bool tcp;              /* the channel is a TCP connection (whatever the stream's kind) */
	struct loop_io *io;    /* TCP drain, or a LISTEN's accept */
	struct buf data;
	/* LISTEN */
	int listen_fd;
	uint8_t key[MSG_CHAN_KEY_SIZE];
	struct buf prefill;
	uint32_t peer_node;
	/* WAKE_MERGED: the pipe to install, once a chain has written its bytes */
	uint64_t pipe_dev, pipe_ino;
	bool waiting;
};

/* Bytes that an end's holder must read first, sent ahead of a WAKE. */
struct sdata {
	struct sdata *next, *prev;
	uint32_t coord;
	uint64_t xfer;
	uint64_t id;
	uint32_t index;        /* whose holder reads them: 0 or 1 */
	uint32_t gen;          /* the operation's generation (A_INDEX >> 8) */
	struct buf data;
};

/* The end of a cross-node channel that this node installed. */
struct stream_rec {
	struct stream_rec *next, *prev;
	uint64_t id;
	uint32_t kind;
	uint32_t flags;        /* SEND_READER / SEND_WRITER of a pipe */
	pid_t pid;
	int fds[STREAM_MAX_FDS];
	size_t n_fds;
	uint64_t dev, ino;     /* the channel's socket */
	uint32_t peer_node;
};

/* A message held back by fault injection (see stream_faults_parse()). */
struct sdelayed {
	struct sdelayed *next;
	struct node_daemon *d;
	struct loop_timer *timer;
	uint32_t node, type;
	size_t len;
	uint8_t data[];
};

/* Fault injection for tests: $GHOST_FAULT holds "MSG@NODE:MS" items (comma
 * separated; MSG is hold, drain or wake): node NODE handles that message
 * MS milliseconds late, so a test can fail a node or kill a holder at a
 * known point of a switch without racing it (fault.c reads it). */
#define FAULT_ENV "GHOST_FAULT"
#define MAX_FAULTS 4

struct stream_mgr {
	struct loop_timer *watchdog; /* lets go of holds nobody released */
	struct stream_op *ops;
	struct shold *holds;
	struct slocal *locals;
	struct sdata *datas;
	struct stream_rec *recs;
	struct sdelayed *delayed;
	struct node_fault faults[MAX_FAULTS];
	size_t n_faults;
};

static struct stream_mgr *mgr(struct node_daemon *d)
{
	return d->streams;
}

/* ---- the kernel objects behind fds ----------------------------------------- */

static int fd_object(pid_t pid, int fd, struct stat *ret)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
	return stat(path, ret) < 0 ? -errno : 0;
}

/* The fd's status flags and its FD_CLOEXEC, from fdinfo. */
static int fd_flags_of(pid_t pid, int fd, uint32_t *ret_status, int *ret_fd_flags)
{
	struct buf b = BUF_INIT;
	char path[64], *p;
	uint32_t flags;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid, fd);
	r = read_file_at(AT_FDCWD, path, &b);
	if (r >= 0) {
		p = strstr(b.data, "flags:");
		flags = p ? (uint32_t)strtoul(p + 6, NULL, 8) : 0;
		*ret_fd_flags = (flags & O_CLOEXEC) ? FD_CLOEXEC : 0;
		*ret_status = flags & ~(uint32_t)O_CLOEXEC;
	}
	buf_release(&b);
	return r;
}

/* A TCP socket of this network namespace, from /proc/net/tcp{,6}: its
 * local and remote addresses as the kernel prints them, and its state. */
struct tcp_line {
	char local[40], remote[40];
	unsigned state;
	uint64_t ino;
};

static int tcp_lines(struct tcp_line **ret, size_t *ret_n)
{
	static const char *const files[] = { "/proc/net/tcp", "/proc/net/tcp6" };
	struct tcp_line *v = NULL;
	size_t n = 0, cap = 0;

	for (size_t f = 0; f < ARRAY_SIZE(files); f++) {
		struct buf b = BUF_INIT;
		char *save = NULL, *line;

		if (read_file_at(AT_FDCWD, files[f], &b) < 0) {
			buf_release(&b);
			continue;
		}
		line = strtok_r(b.data, "\n", &save); /* the header */
		while ((line = strtok_r(NULL, "\n", &save))) {
			struct tcp_line t;
			unsigned long long ino;

			if (sscanf(line, " %*u: %39s %39s %x %*s %*s %*s %*u %*u %llu", t.local,
				   t.remote, &t.state, &ino) != 4)
				continue;
			t.ino = ino;
			if (n == cap) {
				struct tcp_line *nv = realloc(v, (cap ? cap * 2 : 64) * sizeof(*v));

				if (!nv) {
					buf_release(&b);
					free(v);
					return -ENOMEM;
				}
				v = nv;
				cap = cap ? cap * 2 : 64;
			}
			v[n++] = t;
		}
		buf_release(&b);
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* The node (not this one) whose IPv4 address a /proc/net/tcp address
 * ("0100000A:1F90") has, or 0. */
static uint32_t node_of_address(struct node_daemon *d, const char *procaddr)
{
	unsigned long v;
	char *end;

	v = strtoul(procaddr, &end, 16);
	if (end - procaddr != 8 || *end != ':')
		return 0; /* IPv6: not yet */
	for (size_t i = 0; i < d->config.n_nodes; i++) {
		const struct node_config_node *cn = &d->config.nodes[i];
		struct in_addr in;

		/* The kernel prints the address as the u32 it stores, in network order. */
		if (cn->id != d->self && inet_pton(AF_INET, cn->address, &in) == 1 &&
		    in.s_addr == (uint32_t)v)
			return cn->id;
	}
	return 0;
}

/* ---- records of cross-node channels ------------------------------------- */

static struct stream_rec *rec_by_ino(struct node_daemon *d, uint64_t dev, uint64_t ino)
{
	for (struct stream_rec *r = mgr(d)->recs; r; r = r->next)
		if (r->dev == dev && r->ino == ino)
			return r;
	return NULL;
}

/* A node holds at most one end of a cross-node channel. */
static struct stream_rec *rec_by_id(struct node_daemon *d, uint64_t id)
{
	for (struct stream_rec *r = mgr(d)->recs; r; r = r->next)
		if (r->id == id)
			return r;
	return NULL;
}

static void rec_free(struct node_daemon *d, struct stream_rec *r)
{
	LIST_REMOVE(mgr(d)->recs, r);
	free(r);
}

/* Forget records whose process no longer holds the channel. */
static void recs_gc(struct node_daemon *d)
{
	struct stream_rec *r, *next;

	for (r = mgr(d)->recs; r; r = next) {
		bool held = false;

		next = r->next;
		for (size_t i = 0; i < r->n_fds && !held; i++) {
			struct stat st;

			held = fd_object(r->pid, r->fds[i], &st) >= 0 && st.st_dev == r->dev &&
			       st.st_ino == r->ino;
		}
		if (!held)
			rec_free(d, r);
	}
}

/* ---- finding the streams of a process (the coordinator, before export) ---- */

/* One object the process holds, and who else holds it. */
struct cand {
	uint64_t dev, ino;     /* the process's object */
	uint32_t kind;
	uint32_t flags;
	int fds[STREAM_MAX_FDS];
	size_t n_fds;
	bool inside;           /* both ends are in the process: the engine's */
	/* the peer's object and its holders on this node */
	uint64_t pdev, pino;
	pid_t peer;
	int peer_fds[STREAM_MAX_FDS];
	size_t n_peer_fds;
	pid_t other;           /* a third process holding either object */
	pid_t sharer;          /* another process holding the process's own side */
	bool fifo;             /* a pipe or FIFO itself (not a channel standing for one) */
	bool daemon_holds;     /* the daemon holds the peer object (a run session's stdio) */
	bool peer_overflow;
	struct stream_rec *rec;
	/* a pipe: the pump of a chain to its readers' node (the process writes
	 * through it), or a pipe chains write into here */
	struct chain_out *pump;
	bool merged;
	enum sstream_mode mode;
	/* TCP: the connection as /proc/net/tcp prints it, and the node its
	 * remote address belongs to when that is another node */
	char local[40], remote[40];
	uint32_t remote_node;
};

static struct cand *cand_find(struct cand *c, size_t n, uint64_t dev, uint64_t ino, uint32_t fl)
{
	for (size_t i = 0; i < n; i++)
		if (c[i].dev == dev && c[i].ino == ino && (!c[i].fifo || c[i].flags == fl))
			return &c[i];
	return NULL;
}

static uint32_t pipe_side(uint32_t status)
{
	return (status & O_ACCMODE) == O_RDONLY ? SEND_READER : SEND_WRITER;
}

/* Classify the fds of pid into candidates. */
static int list_cands(struct node_daemon *d, pid_t pid, struct cand **ret, size_t *ret_n,
		      char *msg, size_t size)
{
	struct tcp_line *tl = NULL;
	size_t n_tl = 0, n = 0;
	struct cand *c = NULL;
	char path[64];
	struct dirent *de;
	DIR *dir;
	int r = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir) {
		snprintf(msg, size, "cannot list the descriptors of process %d: %s", (int)pid,
			 strerror(errno));
		return -errno;
	}
	while ((de = readdir(dir))) {
		struct stat st;
		uint32_t status, kind = 0, flags = 0, type, shut;
		uint64_t peer = 0;
		int fd, fdf;
		struct cand *x;

		if (parse_int(de->d_name, &fd) < 0 || fd_object(pid, fd, &st) < 0 ||
		    fd_flags_of(pid, fd, &status, &fdf) < 0)
			continue;
		if (S_ISFIFO(st.st_mode)) {
			kind = STREAM_PIPE;
			flags = pipe_side(status);
			if ((status & O_ACCMODE) == O_RDWR)
				continue; /* a FIFO opened for both: the engine refuses it */
		} else if (S_ISSOCK(st.st_mode)) {
			if (sockdiag_unix(st.st_ino, &type, &peer, &shut) >= 0) {
				if (type != SOCK_STREAM || peer == 0)
					continue;
				kind = STREAM_UNIX;
			} else {
				if (!tl && tcp_lines(&tl, &n_tl) < 0) {
					r = -ENOMEM;
					break;
				}
				for (size_t i = 0; i < n_tl && !kind; i++)
					if (tl[i].ino == st.st_ino && tl[i].state != 10 /* LISTEN */)
						kind = STREAM_TCP;
				if (!kind)
					continue;
			}
		} else {
			continue;
		}
		x = cand_find(c, n, st.st_dev, st.st_ino, flags);
		if (!x) {
			struct cand *nc = realloc(c, (n + 1) * sizeof(*c));

			if (!nc) {
				r = -ENOMEM;
				break;
			}
			c = nc;
			x = &c[n++];
			memset(x, 0, sizeof(*x));
			x->dev = st.st_dev;
			x->ino = st.st_ino;
			x->kind = kind;
			x->flags = flags;
			x->fifo = kind == STREAM_PIPE;
			x->rec = rec_by_ino(d, st.st_dev, st.st_ino);
			if (x->fifo) {
				x->pump = chain_out_by_pump(d, st.st_dev, st.st_ino);
				x->merged = chain_merges(d, st.st_dev, st.st_ino);
			}
			if (x->rec) {
				x->kind = x->rec->kind;
				x->flags = x->rec->flags;
			} else if (kind == STREAM_PIPE) {
				x->pdev = st.st_dev;
				x->pino = st.st_ino;
			} else if (kind == STREAM_UNIX) {
				x->pdev = st.st_dev;
				x->pino = peer;
			}
		}
		if (x->n_fds == STREAM_MAX_FDS) {
			snprintf(msg, size, "process %d holds one stream at more than %d fds",
				 (int)pid, STREAM_MAX_FDS);
			r = -EOPNOTSUPP;
			break;
		}
		x->fds[x->n_fds++] = fd;
	}
	closedir(dir);
	/* TCP: the peer socket on this node, if there is one. */
	for (size_t i = 0; r >= 0 && i < n; i++) {
		struct tcp_line *me = NULL;

		if (c[i].kind != STREAM_TCP || c[i].rec)
			continue;
		for (size_t k = 0; k < n_tl && !me; k++)
			if (tl[k].ino == c[i].ino)
				me = &tl[k];
		if (me) {
			snprintf(c[i].local, sizeof(c[i].local), "%s", me->local);
			snprintf(c[i].remote, sizeof(c[i].remote), "%s", me->remote);
			c[i].remote_node = node_of_address(d, me->remote);
		}
		for (size_t k = 0; me && k < n_tl; k++)
			if (strcmp(tl[k].local, me->remote) == 0 &&
			    strcmp(tl[k].remote, me->local) == 0) {
				c[i].pdev = c[i].dev;
				c[i].pino = tl[k].ino;
			}
	}
	free(tl);
	/* A pipe whose both ends the process holds is the engine's. */
	for (size_t i = 0; r >= 0 && i < n; i++)
		for (size_t k = 0; k < n; k++)
			if (k != i && c[k].kind == c[i].kind && c[k].dev == c[i].pdev &&
			    c[k].ino == c[i].pino && (!c[i].fifo || c[k].flags != c[i].flags))
				c[i].inside = c[k].inside = true;
	if (r < 0) {
		free(c);
		if (r == -ENOMEM)
			snprintf(msg, size, "out of memory on node %u", d->self);
		return r;
	}
	*ret = c;
	*ret_n = n;
	return 0;
}

/* Find the holders of the candidates' peer objects among this node's processes. */
static void find_peers(pid_t pid, struct cand *c, size_t n)
{
	DIR *proc = opendir("/proc");
	struct dirent *de;

	if (!proc)
		return;
	while ((de = readdir(proc))) {
		char path[64];
		struct dirent *fe;
		pid_t q;
		DIR *fds;

		if (parse_pid(de->d_name, &q) < 0 || q == pid)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd", (int)q);
		fds = opendir(path);
		if (!fds)
			continue;
		while ((fe = readdir(fds))) {
			struct stat st;
			uint32_t status;
			int fd, fdf;

			if (parse_int(fe->d_name, &fd) < 0 || fd_object(q, fd, &st) < 0 ||
			    !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
				continue;
			for (size_t i = 0; i < n; i++) {
				struct cand *x = &c[i];
				bool is_peer = false, is_mine = false;

				/* A pump's other holders write through its chain too. */
				if (x->inside || x->rec || x->pump)
					continue;
				if (x->fifo) {
					if (st.st_dev != x->dev || st.st_ino != x->ino ||
					    fd_flags_of(q, fd, &status, &fdf) < 0)
						continue;
					is_peer = pipe_side(status) != x->flags;
					is_mine = !is_peer;
				} else {
					is_peer = st.st_dev == x->pdev && st.st_ino == x->pino;
					is_mine = st.st_dev == x->dev && st.st_ino == x->ino;
				}
				if (q == getpid()) {
					x->daemon_holds |= is_peer || is_mine;
				} else if (is_mine || (is_peer && x->peer && x->peer != q)) {
					x->other = q;
					if (is_mine)
						x->sharer = q;
				} else if (is_peer) {
					x->peer = q;
					if (x->n_peer_fds == STREAM_MAX_FDS)
						x->peer_overflow = true;
					else
						x->peer_fds[x->n_peer_fds++] = fd;
				}
			}
		}
		closedir(fds);
	}
	closedir(proc);
}

static int take_copy(pid_t pid, int fd);

/* Has the other end of this pipe no holder left, in any namespace? The
 * kernel says so: a write end without readers polls POLLERR, a read end
 * without writers POLLHUP. */
static bool pipe_peer_closed(pid_t pid, int fd, uint32_t side)
{
	struct pollfd p = { .events = side & SEND_WRITER ? POLLOUT : POLLIN };
	bool closed;

	p.fd = take_copy(pid, fd);
	if (p.fd < 0)
		return false;
	closed = poll(&p, 1, 0) == 1 && (p.revents & (side & SEND_WRITER ? POLLERR : POLLHUP));
	safe_close(p.fd);
	return closed;
}

static const char *cand_what(const struct cand *x)
{
	if (x->kind == STREAM_PIPE)
		return x->flags & SEND_READER ? "the read end of a pipe" : "the write end of a pipe";
	return x->kind == STREAM_UNIX ? "a Unix socket" : "a TCP connection";
}

/* Is the other side of this pipe end gone? A writer's when the pipe has no
 * reader anywhere (other writers may stay); a reader's when it has no
 * writer and nobody else reads what is queued (it goes with the reader). */
static bool pipe_gone(pid_t pid, const struct cand *x)
{
	if (x->peer)
		return false;
	if (x->flags & SEND_WRITER)
		return pipe_peer_closed(pid, x->fds[0], x->flags);
	return !x->daemon_holds && !x->other && pipe_peer_closed(pid, x->fds[0], x->flags);
}

/* Why a copy on node dest cannot have fd x as fork() would give it. */
static int fork_refused(const struct cand *x, pid_t pid, uint32_t dest, char *msg, size_t size)
{
	if (x->kind == STREAM_PIPE && (x->flags & SEND_READER))
		snprintf(msg, size,
			 "fd %d of process %d is the read end of a pipe: a copy on node %u would "
			 "read it from a second node, and the readers of one pipe on two nodes "
			 "have no defined split",
			 x->fds[0], (int)pid, dest);
	else if (x->kind == STREAM_PIPE)
		snprintf(msg, size,
			 "fd %d of process %d is the write end of a pipe that its reader reads "
			 "through a direct connection to node %u: a copy on node %u cannot write "
			 "into it too",
			 x->fds[0], (int)pid, x->rec ? x->rec->peer_node : 0, dest);
	else
		snprintf(msg, size,
			 "fd %d of process %d is %s: a copy on node %u would share it across two "
			 "nodes, and one socket on two nodes has no defined split",
			 x->fds[0], (int)pid, cand_what(x), dest);
	return -EOPNOTSUPP;
}

/* Why a stream with more holders than its two ends cannot move. */
static int shared_refused(struct node_daemon *d, const struct cand *x, pid_t pid, char *msg,
			  size_t size)
{
	if (x->fifo && x->merged)
		snprintf(msg, size,
			 "fd %d of process %d is the read end of a pipe that writers on other nodes "
			 "write into through node %u: its readers stay on node %u (a pipe's readers "
			 "are on one node; move its writers instead)",
			 x->fds[0], (int)pid, d->self, d->self);
	else if (x->fifo && x->sharer)
		snprintf(msg, size,
			 "fd %d of process %d is the read end of a pipe that process %d reads too: "
			 "a pipe's readers stay on one node",
			 x->fds[0], (int)pid, (int)x->sharer);
	else if (x->fifo)
		snprintf(msg, size,
			 "fd %d of process %d is the read end of a pipe that processes %d and %d "
			 "write into: the reader of a pipe with several writers stays on its node "
			 "(move its writers instead)",
			 x->fds[0], (int)pid, (int)x->peer, (int)x->other);
	else
		snprintf(msg, size,
			 "fd %d of process %d is %s that process %d shares too: a socket with more "
			 "than two holders cannot move",
			 x->fds[0], (int)pid, cand_what(x), (int)x->other);
	return -EOPNOTSUPP;
}

/* How each candidate moves (x->mode), or stays the engine's (x->inside);
 * the number of streams, or -errno with msg. */
static int classify(struct node_daemon *d, pid_t pid, uint32_t dest, bool fork, struct cand *c,
		    size_t n, char *msg, size_t size)
{
	/* A copy on the same node shares every description, as after fork(). */
	bool share = fork && dest == d->self;
	size_t n_streams = 0;

	for (size_t i = 0; i < n; i++) {
		struct cand *x = &c[i];
		struct mproc *q;

		if (x->inside)
			continue;
		x->mode = share ? SSTREAM_SHARE : SSTREAM_PAIR;
		if (x->pump) {
			/* A writer of a pipe whose readers are on another node. */
			if (!share)
				x->mode = SSTREAM_CHAIN;
			n_streams++;
			continue;
		}
		if (x->fifo && (x->flags & SEND_READER) && x->merged) {
			/* Chains from other nodes write into its pipe here. */
			if (share) {
				n_streams++;
				continue;
			}
			if (fork)
				return fork_refused(x, pid, dest, msg, size);
			return shared_refused(d, x, pid, msg, size);
		}
		if (x->rec || (!x->peer && x->kind == STREAM_TCP && x->pino == 0 && x->remote_node)) {
			/* A channel to another node: its node finds the peer. */
			if (fork && !share)
				return fork_refused(x, pid, dest, msg, size);
			n_streams++;
			continue;
		}
		if (x->fifo && pipe_gone(pid, x)) {
			/* Its other side is closed, with bytes left to read maybe:
			 * they go with it, then end of file (for a writer, EPIPE). */
			if (fork && !share && (x->flags & SEND_READER))
				return fork_refused(x, pid, dest, msg, size);
			n_streams++;
			continue;
		}
		if (!x->peer && x->kind == STREAM_TCP && x->pino == 0) {
			/* A connection out of the cluster: a copy here may share it. */
			if (!share) {
				snprintf(msg, size,
					 "fd %d of process %d is a TCP connection that leaves node "
					 "%u to a process Ghost does not manage",
					 x->fds[0], (int)pid, d->self);
				return -EOPNOTSUPP;
			}
			n_streams++;
			continue;
		}
		if (!x->peer) {
			/* Its other end is the daemon's (the stdio of a ghost run) or
			 * nobody's: the engine carries it as stdio, or refuses it. */
			x->inside = true;
			continue;
		}
		q = proc_find_or_adopt(d, x->peer);
		if (!q || q->state != MPROC_RUNNING) {
			/* Not a stream: a ghost run's own stdio is the engine's
			 * (a shell job), anything else it refuses by name. */
			x->inside = true;
			continue;
		}
		if (share) {
			n_streams++;
			continue;
		}
		if (x->fifo && (x->flags & SEND_WRITER) && (fork || x->other || x->merged)) {
			/* One writer among several, or a copy becomes one: the
			 * readers keep their pipe here, the writer a chain to it. */
			x->mode = SSTREAM_CHAIN;
		} else if (fork) {
			return fork_refused(x, pid, dest, msg, size);
		} else if (x->other) {
			return shared_refused(d, x, pid, msg, size);
		}
		if (q->moving || q->arriving || q->keeping) {
			snprintf(msg, size,
				 "process %d, at the other end of fd %d, is being moved or "
				 "checkpointed; try again",
				 (int)x->peer, x->fds[0]);
			return -EBUSY;
		}
		if (x->mode == SSTREAM_PAIR && x->peer_overflow) {
			snprintf(msg, size, "process %d holds one stream at more than %d fds",
				 (int)x->peer, STREAM_MAX_FDS);
			return -EOPNOTSUPP;
		}
		n_streams++;
	}
	return (int)n_streams;
}

/* A fork's copy is not held: its fds' flags are the process's, read now. A
 * pump's packet mode is ours, not the process's. */
static int end_flags_now(const struct cand *x, pid_t pid, struct send *e)
{
	int r = 0;

	for (size_t f = 0; f < x->n_fds && r >= 0; f++)
		r = fd_flags_of(pid, x->fds[f], &e->status, &e->fd_flags[f]);
	if (x->pump)
		e->status &= ~(uint32_t)O_DIRECT;
	return r;
}

static void op_free(struct stream_op *op);
static void on_op_timer(struct loop_timer *t, void *userdata);

static uint64_t new_stream_id(struct node_daemon *d)
{
	return ((uint64_t)d->self << 40) | (node_new_id(d) & ((1ull << 40) - 1));
}

int stream_prepare(struct node_daemon *d, pid_t pid, uint64_t xfer, uint32_t dest, bool fork,
		   struct stream_op **ret, int *carried, size_t *n_carried, size_t max, char *msg,
		   size_t size)
{
	struct cand *c = NULL;
	struct stream_op *op;
	size_t n = 0, n_streams, k = 0;
	int r;

	*ret = NULL;
	*n_carried = 0;
	recs_gc(d);
	r = list_cands(d, pid, &c, &n, msg, size);
	if (r < 0)
		return r;
	find_peers(pid, c, n);
	r = classify(d, pid, dest, fork, c, n, msg, size);
	if (r <= 0)
		goto out;
	n_streams = (size_t)r;
	r = 0;
	op = calloc(1, sizeof(*op) + n_streams * sizeof(op->s[0]));
	if (!op || loop_timer_new(d->loop, on_op_timer, op, &op->timer) < 0) {
		free(op);
		snprintf(msg, size, "out of memory on node %u", d->self);
		r = -ENOMEM;
		goto out;
	}
	op->d = d;
	op->xfer = xfer;
	op->pid = pid;
	op->fork = fork;
	op->n = n_streams;
	for (size_t i = 0; i < n_streams; i++)
		op->s[i].share_fd = -1;
	for (size_t i = 0; i < n; i++) {
		struct cand *x = &c[i];
		struct sstream *s;

		if (x->inside)
			continue;
		s = &op->s[k++];
		s->kind = x->kind;
		s->mode = x->mode;
		s->end[0].node = d->self;
		s->end[0].pid = pid;
		s->end[0].dev = x->dev;
		s->end[0].ino = x->ino;
		s->end[0].flags = x->flags;
		memcpy(s->end[0].fds, x->fds, x->n_fds * sizeof(int));
		s->end[0].n_fds = x->n_fds;
		if (fork && end_flags_now(x, pid, &s->end[0]) < 0) {
			snprintf(msg, size, "cannot read the flags of fd %d of process %d",
				 x->fds[0], (int)pid);
			r = -ESRCH;
			op_free(op);
			goto out;
		}
		if (x->mode == SSTREAM_SHARE) {
			s->id = new_stream_id(d);
			s->end[1].node = d->self;
			s->end[1].gone = true;
			s->share_fd = take_copy(pid, x->fds[0]);
			if (s->share_fd < 0) {
				snprintf(msg, size, "cannot take fd %d of process %d: %s", x->fds[0],
					 (int)pid, strerror(-s->share_fd));
				r = s->share_fd;
				op_free(op);
				goto out;
			}
		} else if (x->mode == SSTREAM_CHAIN) {
			s->id = new_stream_id(d);
			s->end[1].flags = SEND_READER;
			if (x->pump) {
				s->end[1].node = chain_out_reader(x->pump);
				chain_out_pipe(x->pump, &s->pipe_dev, &s->pipe_ino);
				/* A move continues its writer's records after this
				 * chain's; a fork's copy is a writer of its own. */
				if (!fork)
					s->after_id = chain_out_id(x->pump);
			} else {
				s->end[1].node = d->self;
				s->pipe_dev = x->dev;
				s->pipe_ino = x->ino;
			}
		} else if (x->kind == STREAM_TCP && !x->rec && !x->peer) {
			/* A TCP connection to another node, seen from there. */
			s->id = new_stream_id(d);
			s->end[1].node = x->remote_node;
			snprintf(s->tcp_local, sizeof(s->tcp_local), "%s", x->remote);
			snprintf(s->tcp_remote, sizeof(s->tcp_remote), "%s", x->local);
		} else if (!x->rec && x->fifo && !x->peer) {
			s->id = new_stream_id(d);
			s->end[1].node = d->self;
			s->end[1].gone = true;
		} else if (x->rec) {
			s->id = x->rec->id;
			s->end[1].node = x->rec->peer_node;
			s->end[1].flags = x->kind == STREAM_PIPE ? (x->flags ^ (SEND_READER |
										 SEND_WRITER))
								 : 0;
		} else {
			s->id = new_stream_id(d);
			s->end[1].node = d->self;
			s->end[1].pid = x->peer;
			s->end[1].dev = x->pdev;
			s->end[1].ino = x->pino;
			s->end[1].flags = x->kind == STREAM_PIPE ? (x->flags ^ (SEND_READER |
										 SEND_WRITER))
								 : 0;
			memcpy(s->end[1].fds, x->peer_fds, x->n_peer_fds * sizeof(int));
			s->end[1].n_fds = x->n_peer_fds;
		}
		for (size_t f = 0; f < x->n_fds; f++) {
			if (*n_carried == max) {
				snprintf(msg, size, "process %d holds more than %zu stream fds",
					 (int)pid, max);
				r = -EOPNOTSUPP;
				op_free(op);
				goto out;
			}
			carried[(*n_carried)++] = x->fds[f];
		}
		if (s->mode == SSTREAM_CHAIN)
			log_info("process %d: fd %d is the write end of a pipe whose readers are on "
				 "node %u: %s writes through a chain (stream %llx)",
				 (int)pid, x->fds[0], s->end[1].node, fork ? "its copy" : "it",
				 (unsigned long long)s->id);
		else if (s->mode == SSTREAM_SHARE)
			log_info("process %d: fd %d is %s: its copy shares it (stream %llx)",
				 (int)pid, x->fds[0], cand_what(x), (unsigned long long)s->id);
		else
			log_info("process %d: fd %d is %s with %s%d on node %u (stream %llx)",
				 (int)pid, x->fds[0], kind_names[s->kind],
				 s->end[1].pid ? "process " : "its peer", (int)s->end[1].pid,
				 s->end[1].node, (unsigned long long)s->id);
	}
	LIST_PREPEND(mgr(d)->ops, op);
	*ret = op;
out:
	free(c);
	if (r < 0)
		*n_carried = 0;
	return r;
}

/* ---- the coordinator ----------------------------------------------------- */

static void op_free(struct stream_op *op)
{
	if (!op)
		return;
	for (size_t i = 0; i < op->n; i++) {
		for (int e = 0; e < 2; e++)
			buf_release(&op->s[i].end[e].data);
		op->s[i].share_fd = safe_close(op->s[i].share_fd);
	}
	op->timer = loop_timer_free(op->timer);
	if (op->next || op->prev || mgr(op->d)->ops == op)
		LIST_REMOVE(mgr(op->d)->ops, op);
	free(op);
}

/* An end's attributes, appended to in. */
static int put_end_attrs(struct buf *in, const struct send *e)
{
	int r;

	r = attr_put_u32(in, A_PID, (uint32_t)e->pid);
	for (size_t i = 0; r >= 0 && i < e->n_fds; i++)
		r = attr_put_u32(in, A_FD, (uint32_t)e->fds[i]);
	for (size_t i = 0; r >= 0 && i < e->n_fds; i++)
		r = attr_put_u32(in, A_FD_FLAGS, (uint32_t)e->fd_flags[i]);
	if (r >= 0)
		r = attr_put_u32(in, A_STATUS, e->status);
	if (r >= 0)
		r = attr_put_u32(in, A_FLAGS, e->flags);
	if (r >= 0)
		r = attr_put_u64(in, A_INODE, e->ino);
	return r;
}

/* An A_END: one end. */
static int put_end(struct buf *b, const struct send *e)
{
	struct buf in = BUF_INIT;
	int r;

	r = put_end_attrs(&in, e);
	if (r >= 0)
		r = attr_put(b, A_END, in.data, in.len);
	buf_release(&in);
	return r;
}

/* Parse an A_END (or a message holding the same attributes). */
static int parse_end(const void *data, size_t len, struct send *e)
{
	struct attr_iter it;
	struct attr a;
	size_t nf = 0;
	uint32_t v;

	memset(e, 0, sizeof(*e));
	attr_iter_init(&it, data, len);
	while (attr_next(&it, &a) > 0) {
		switch (a.type) {
		case A_PID:
			if (attr_u32(&a, &v) >= 0)
				e->pid = (pid_t)v;
			break;
		case A_FD:
			if (e->n_fds < STREAM_MAX_FDS && attr_u32(&a, &v) >= 0)
				e->fds[e->n_fds++] = (int)v;
			break;
		case A_FD_FLAGS:
			if (nf < STREAM_MAX_FDS && attr_u32(&a, &v) >= 0)
				e->fd_flags[nf++] = (int)v;
			break;
		case A_STATUS:
			(void)attr_u32(&a, &e->status);
			break;
		case A_FLAGS:
			(void)attr_u32(&a, &e->flags);
			break;
		case A_INODE:
			(void)attr_u64(&a, &e->ino);
			break;
		default:
			break;
		}
	}
	return e->n_fds > 0 || e->pid == 0 ? 0 : -EBADMSG;
}

static int send_to(struct node_daemon *d, uint32_t node, uint32_t type, uint64_t xfer,
		   uint64_t id, uint32_t index, struct buf *extra)
{
	struct buf b = BUF_INIT;
	int r;

	r = attr_put_u64(&b, A_XFER, xfer);
	if (r >= 0)
		r = attr_put_u64(&b, A_STREAM, id);
	if (r >= 0)
		r = attr_put_u32(&b, A_INDEX, index);
	if (r >= 0 && extra && extra->len)
		r = buf_append(&b, extra->data, extra->len);
	if (r >= 0)
		r = msg_send(d->msg, node, NODE_CH_STREAM, type, b.data, b.len);
	buf_release(&b);
	return r;
}

static void op_fail(struct stream_op *op, int err, const char *fmt, ...) _printf_(3, 4);
static void op_fail(struct stream_op *op, int err, const char *fmt, ...)
{
	va_list ap;

	if (op->err)
		return;
	op->err = err < 0 ? err : -EIO;
	va_start(ap, fmt);
	vsnprintf(op->errmsg, sizeof(op->errmsg), fmt, ap);
	va_end(ap);
	log_warn("stream switch of process %d: %s", (int)op->pid, op->errmsg);
}

static void op_step(struct stream_op *op);

/* A_INDEX: the end, and the operation's generation above it. */
static uint32_t tag(const struct stream_op *op, int index)
{
	return (uint32_t)index | (op->gen << 8);
}

static void op_send_to(struct stream_op *op, uint32_t node, struct sstream *s, int index,
		       uint32_t type, struct buf *extra)
{
	if (send_to(op->d, node, type, op->xfer, s->id, tag(op, index), extra) < 0)
		op_fail(op, -EHOSTUNREACH, "cannot reach node %u", node);
	else
		op->pending++;
}

static void op_send(struct stream_op *op, struct sstream *s, int index, uint32_t type,
		    struct buf *extra)
{
	op_send_to(op, s->end[index].node, s, index, type, extra);
}

static void send_hold(struct stream_op *op, struct sstream *s, int index)
{
	struct buf b = BUF_INIT;
	const struct send *e = &s->end[index];
	int r;

	r = attr_put_u32(&b, A_KIND, s->kind);
	if (r >= 0)
		r = put_end(&b, e);
	if (r >= 0 && index == 1 && s->tcp_local[0])
		r = attr_put_str(&b, A_LOCAL, s->tcp_local);
	if (r >= 0 && index == 1 && s->tcp_remote[0])
		r = attr_put_str(&b, A_REMOTE, s->tcp_remote);
	if (r >= 0)
		op_send(op, s, index, STREAM_HOLD, &b);
	else
		op_fail(op, r, "out of memory");
	buf_release(&b);
}

/* Send the bytes end index's holder must read first to node, in chunks,
 * ahead of the WAKE that uses them (msg keeps the order). */
static void send_data(struct stream_op *op, uint32_t node, struct sstream *s, int index)
{
	const struct buf *data = &s->end[index].data;

	for (size_t off = 0; off < data->len; off += DATA_CHUNK) {
		size_t n = data->len - off < DATA_CHUNK ? data->len - off : DATA_CHUNK;
		struct buf b = BUF_INIT;

		if (attr_put(&b, A_DATA, data->data + off, n) < 0 ||
		    send_to(op->d, node, STREAM_DATA, op->xfer, s->id, tag(op, index), &b) < 0)
			op_fail(op, -EHOSTUNREACH, "cannot send stream data to node %u", node);
		buf_release(&b);
	}
}

static int install(struct node_daemon *d, uint32_t coord, uint64_t xfer, const struct send *e,
		   uint32_t kind, int fd, bool tcp_channel, bool shared, char *why, size_t size);

/* A fork's copy on this node: the process's own descriptions, as fork()
 * would give them. */
static void wake_share(struct stream_op *op, struct sstream *s)
{
	struct send e0 = s->end[0];
	char why[400];
	int r;

	e0.pid = op->target_pid;
	r = install(op->d, op->d->self, op->xfer, &e0, s->kind, s->share_fd, false, true, why,
		    sizeof(why));
	if (r < 0)
		op_fail(op, r, "%s", why);
	s->end[0].woken = true;
}

/* A pipe's writer: a chain from where it goes to its readers' node, or the
 * pipe itself there. */
static void send_wake_chain(struct stream_op *op, struct sstream *s)
{
	struct send e0 = s->end[0];
	uint32_t readers = s->end[1].node;
	struct buf b = BUF_INIT;
	int r;

	if (op->rolling_back) {
		/* The process's fd is as it was, the pipe or its pump, and what
		 * the pump held went on through its chain: nothing to undo. */
		s->end[0].woken = true;
		return;
	}
	e0.node = op->target;
	e0.pid = op->target_pid;
	e0.data = (struct buf)BUF_INIT;
	r = attr_put_u32(&b, A_KIND, s->kind);
	if (r >= 0)
		r = attr_put_u32(&b, A_FLAGS, op->target == readers ? WAKE_MERGED : WAKE_CHAIN);
	if (r >= 0)
		r = attr_put_u32(&b, A_NODE, readers);
	if (r >= 0)
		r = attr_put_u64(&b, A_DEV, s->pipe_dev);
	if (r >= 0)
		r = attr_put_u64(&b, A_INODE, s->pipe_ino);
	if (r >= 0 && s->after_id)
		r = attr_put_u64(&b, A_AFTER, s->after_id);
	if (r >= 0 && s->after_id)
		r = attr_put_u64(&b, A_OFFSET, s->after_off);
	if (r >= 0)
		r = put_end(&b, &e0);
	if (r >= 0)
		op_send_to(op, op->target, s, 0, STREAM_WAKE, &b);
	else
		op_fail(op, r, "out of memory");
	buf_release(&b);
}

/* Where each end goes: end[0] to op->target as op->target_pid. */
static void send_wake(struct stream_op *op, struct sstream *s)
{
	struct send e0 = s->end[0];
	struct send *e1 = &s->end[1];
	struct buf b = BUF_INIT;
	int r;

	if (s->mode == SSTREAM_SHARE) {
		wake_share(op, s);
		return;
	}
	if (s->mode == SSTREAM_CHAIN) {
		send_wake_chain(op, s);
		return;
	}
	e0.node = op->target;
	e0.pid = op->target_pid;
	e0.data = (struct buf)BUF_INIT;
	r = attr_put_u32(&b, A_KIND, s->kind);
	if (e1->gone) {
		/* Its peer is gone: what was queued for it, then end of file. */
		if (r >= 0)
			r = attr_put_u32(&b, A_FLAGS, WAKE_ALONE);
		if (r >= 0)
			r = put_end(&b, &e0);
		if (r >= 0) {
			send_data(op, e0.node, s, 0);
			op_send_to(op, e0.node, s, 0, STREAM_WAKE, &b);
		}
		s->end[1].woken = true;
	} else if (e1->node == e0.node) {
		if (r >= 0)
			r = attr_put_u32(&b, A_FLAGS, WAKE_LOCAL);
		if (r >= 0)
			r = put_end(&b, &e0);
		if (r >= 0)
			r = put_end(&b, e1);
		if (r >= 0) {
			send_data(op, e0.node, s, 0);
			send_data(op, e0.node, s, 1);
			op_send_to(op, e0.node, s, 0, STREAM_WAKE, &b);
		}
	} else {
		/* end[0] listens; end[1] connects once the port is known. It
		 * writes first what end[0]'s holder must read first. */
		if (r >= 0)
			r = attr_put_u32(&b, A_FLAGS, WAKE_LISTEN);
		if (r >= 0)
			r = msg_chan_key_new(s->key);
		if (r >= 0)
			r = attr_put(&b, A_KEY, s->key, sizeof(s->key));
		if (r >= 0)
			r = attr_put_u32(&b, A_NODE, e1->node);
		if (r >= 0)
			r = put_end(&b, &e0);
		/* LISTENING comes first, then the CONNECT's and the LISTEN's WOKEN. */
		if (r >= 0) {
			send_data(op, e0.node, s, 1);
			op_send_to(op, e0.node, s, 0, STREAM_WAKE, &b);
		}
	}
	if (r < 0)
		op_fail(op, r, "cannot describe stream %llx: %s", (unsigned long long)s->id,
			strerror(-r));
	buf_release(&b);
}

static void send_connect(struct stream_op *op, struct sstream *s, uint16_t port)
{
	const struct node_config_node *cn = node_config_find(&op->d->config, op->target);
	struct buf b = BUF_INIT;
	int r;

	if (!cn) {
		op_fail(op, -EHOSTUNREACH, "no node %u in the configuration", op->target);
		return;
	}
	r = attr_put_u32(&b, A_KIND, s->kind);
	if (r >= 0)
		r = attr_put_u32(&b, A_FLAGS, WAKE_CONNECT);
	if (r >= 0)
		r = attr_put(&b, A_KEY, s->key, sizeof(s->key));
	if (r >= 0)
		r = attr_put_str(&b, A_ADDRESS, cn->address);
	if (r >= 0)
		r = attr_put_u32(&b, A_PORT, port);
	if (r >= 0)
		r = attr_put_u32(&b, A_NODE, op->target);
	if (r >= 0)
		r = put_end(&b, &s->end[1]);
	if (r >= 0) {
		send_data(op, s->end[1].node, s, 0);
		op_send(op, s, 1, STREAM_WAKE, &b);
	}
	else
		op_fail(op, r, "out of memory");
	buf_release(&b);
}

static void on_release(struct node_daemon *d, uint32_t coord, uint64_t xfer);

/* Let every holder of the operation go. Here at once, so that the moving
 * process is free of its holder before the caller acts on it. */
static void op_release(struct stream_op *op)
{
	uint32_t sent[64] = { op->d->self };
	size_t n_sent = 1;

	on_release(op->d, op->d->self, op->xfer);
	/* One RELEASE per node that holds something. */
	for (size_t i = 0; i < op->n; i++)
		for (int e = 0; e < 2; e++) {
			uint32_t node = op->s[i].end[e].node;
			bool dup = false;

			for (size_t k = 0; k < n_sent; k++)
				dup |= sent[k] == node;
			if (dup || n_sent == ARRAY_SIZE(sent))
				continue;
			sent[n_sent++] = node;
			(void)send_to(op->d, node, STREAM_RELEASE, op->xfer, 0, 0, NULL);
		}
	if (op->target != op->d->self) {
		bool dup = false;

		for (size_t k = 0; k < n_sent; k++)
			dup |= sent[k] == op->target;
		if (!dup)
			(void)send_to(op->d, op->target, STREAM_RELEASE, op->xfer, 0, 0, NULL);
	}
}

static void op_finish(struct stream_op *op)
{
	stream_done_fn done = op->done;
	void *userdata = op->userdata;
	int err = op->err;
	char msg[512];

	snprintf(msg, sizeof(msg), "%s", op->errmsg);
	op->done = NULL;
	loop_timer_disarm(op->timer);
	if (done)
		done(op, err, msg, userdata);
}

/* Is end e held and drained? A fork leaves the process and its peers
 * alone, and a chain's readers keep their pipe. */
static bool end_switched(const struct stream_op *op, const struct sstream *s, int e)
{
	return !s->end[e].gone && !op->fork && (s->mode == SSTREAM_PAIR || e == 0);
}

/* Everything awaited has come: the next phase. */
static void op_step(struct stream_op *op)
{
	if (op->pending)
		return;
	if (op->err && !op->rolling_back) {
		if (op->phase == OP_HOLD || op->fork) {
			/* Nothing was drained (a fork's copy goes with whatever it
			 * was given): letting the holders go changes nothing. */
			op_release(op);
			op_finish(op);
			return;
		}
		/* Drained: wake everything up again where it was. */
		op->rolling_back = true;
		op->gen++;
		op->target = op->d->self;
		op->target_pid = op->pid;
		op->phase = OP_DRAIN;
	}
	switch (op->phase) {
	case OP_HOLD:
		op->t_held = now_ns();
		op->phase = OP_DRAIN;
		for (size_t i = 0; i < op->n; i++)
			for (int e = 0; e < 2; e++)
				if (end_switched(op, &op->s[i], e))
					op_send(op, &op->s[i], e, STREAM_DRAIN, NULL);
		break;
	case OP_DRAIN:
		op->t_drained = now_ns();
		op->phase = OP_WAKE;
		for (size_t i = 0; i < op->n; i++)
			send_wake(op, &op->s[i]);
		break;
	case OP_WAKE:
		op->phase = OP_WOKEN;
		if (!op->rolling_back)
			log_info("process %d: %zu stream%s switched in %.1f ms (hold %.1f, drain "
				 "%.1f, wake %.1f)",
				 (int)op->pid, op->n, op->n == 1 ? "" : "s",
				 (double)(now_ns() - op->t_begin) / 1e6,
				 (double)(op->t_held - op->t_begin) / 1e6,
				 (double)(op->t_drained - op->t_held) / 1e6,
				 (double)(now_ns() - op->t_drained) / 1e6);
		op_finish(op);
		return;
	case OP_WOKEN:
		return;
	}
	if (op->pending == 0)
		op_step(op);
}

void stream_switch(struct stream_op *op, uint32_t dest, pid_t new_pid, stream_done_fn done,
		   void *userdata)
{
	op->target = dest;
	op->target_pid = new_pid;
	op->done = done;
	op->userdata = userdata;
	op->phase = OP_HOLD;
	op->t_begin = now_ns();
	loop_timer_arm(op->timer, OP_TIMEOUT_USEC);
	for (size_t i = 0; i < op->n; i++)
		for (int e = 0; e < 2; e++)
			if (end_switched(op, &op->s[i], e))
				send_hold(op, &op->s[i], e);
	op_step(op);
}

void stream_release(struct stream_op *op)
{
	if (!op)
		return;
	op_release(op);
	op_free(op);
}

void stream_abort(struct stream_op *op, int err, const char *why, stream_done_fn done,
		  void *userdata)
{
	op->done = done;
	op->userdata = userdata;
	if (op->phase == OP_HOLD && op->pending == 0 && !op->err && !op->s[0].end[0].held) {
		/* Never started. */
		op_finish(op);
		return;
	}
	if (op->fork) {
		/* The copy is discarded with whatever it was given; the process
		 * and its peers were never touched. */
		op_fail(op, err, "%s", why);
		op->gen++;
		op->pending = 0;
		op_finish(op);
		return;
	}
	op_fail(op, err, "%s", why);
	if (op->phase == OP_WOKEN) {
		/* Woken at the destination: wake up again here. */
		op->phase = OP_WAKE;
		op->rolling_back = true;
		op->gen++;
		op->target = op->d->self;
		op->target_pid = op->pid;
		op->phase = OP_DRAIN;
	}
	op_step(op);
}

static void on_op_timer(struct loop_timer *t, void *userdata)
{
	struct stream_op *op = userdata;

	(void)t;
	op_fail(op, -ETIMEDOUT, "the streams of process %d did not switch in time", (int)op->pid);
	/* Give up on the answers still awaited. */
	op->pending = 0;
	if (op->rolling_back) {
		op_release(op);
		op_finish(op);
		return;
	}
	op_step(op);
}

static struct stream_op *op_find(struct node_daemon *d, uint64_t xfer)
{
	for (struct stream_op *op = mgr(d)->ops; op; op = op->next)
		if (op->xfer == xfer)
			return op;
	return NULL;
}

/* An answer from an end's node. */
static void op_recv(struct stream_op *op, uint32_t node, uint32_t type, uint64_t id,
		    uint32_t index, const void *data, size_t len)
{
	struct sstream *s = NULL;
	struct send *e;
	struct attr a;

	if ((index >> 8) != op->gen)
		return; /* an answer to what a rollback replaced */
	index &= 0xff;
	for (size_t i = 0; i < op->n && !s; i++)
		if (op->s[i].id == id)
			s = &op->s[i];
	if (!s || index > 1 || op->pending == 0)
		return;
	e = &s->end[index];
	switch (type) {
	case STREAM_HELD: {
		struct send got;

		if (parse_end(data, len, &got) >= 0) {
			e->held = true;
			e->pid = got.pid;
			e->n_fds = got.n_fds;
			memcpy(e->fds, got.fds, sizeof(e->fds));
			memcpy(e->fd_flags, got.fd_flags, sizeof(e->fd_flags));
			e->status = got.status;
			e->flags = got.flags;
			e->ino = got.ino;
		}
		break;
	}
	case STREAM_DRAINED: {
		uint32_t more = 0;

		if (attr_find(data, len, A_DATA, &a) >= 0 && buf_append(&e->data, a.data, a.len) < 0)
			op_fail(op, -ENOMEM, "out of memory");
		if (attr_find(data, len, A_FLAGS, &a) >= 0)
			(void)attr_u32(&a, &more);
		if (more)
			return; /* more chunks follow */
		/* A chain's writer: the bytes it sent through its old chain. */
		if (attr_find(data, len, A_OFFSET, &a) >= 0)
			(void)attr_u64(&a, &s->after_off);
		e->drained = true;
		break;
	}
	case STREAM_LISTENING: {
		uint32_t port = 0;

		if (attr_find(data, len, A_PORT, &a) >= 0)
			(void)attr_u32(&a, &port);
		if (port == 0 || port > 65535)
			op_fail(op, -EPROTO, "node %u sent a malformed answer", node);
		else {
			/* The LISTEN's WOKEN comes after the CONNECT's. */
			op->pending++;
			send_connect(op, s, (uint16_t)port);
		}
		break;
	}
	case STREAM_WOKEN:
		e->woken = true;
		break;
	case STREAM_FAILED: {
		uint32_t err = EIO;
		char msg[400] = "";

		if (attr_find(data, len, A_ERRNO, &a) >= 0)
			(void)attr_u32(&a, &err);
		if (attr_find(data, len, A_MESSAGE, &a) >= 0)
			(void)attr_strcpy(&a, msg, sizeof(msg));
		if (err == ENOENT && index == 1 && op->phase == OP_HOLD) {
			/* The peer exited or closed its end: the moving end goes on alone. */
			e->gone = true;
			log_info("stream %llx: %s", (unsigned long long)id, msg);
		} else {
			op_fail(op, -(int)err, "%s", msg[0] ? msg : "a stream end failed");
		}
		break;
	}
	default:
		return;
	}
	op->pending--;
	op_step(op);
}

/* ---- an end's node --------------------------------------------------------- */

static struct shold *shold_find(struct node_daemon *d, uint32_t coord, uint64_t xfer, pid_t pid)
{
	for (struct shold *h = mgr(d)->holds; h; h = h->next)
		if (h->coord == coord && h->xfer == xfer && h->pid == pid)
			return h;
	return NULL;
}

static int shold_get(struct node_daemon *d, uint32_t coord, uint64_t xfer, pid_t pid,
		     struct shold **ret, char *why, size_t size)
{
	struct shold *h = shold_find(d, coord, xfer, pid);
	int r;

	if (h) {
		*ret = h;
		return 0;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	r = holder_start(pid, &h->h, why, size);
	if (r < 0) {
		free(h);
		return r;
	}
	h->coord = coord;
	h->xfer = xfer;
	h->pid = pid;
	h->since = loop_now(d->loop);
	LIST_PREPEND(mgr(d)->holds, h);
	if (!loop_timer_armed(mgr(d)->watchdog))
		loop_timer_arm(mgr(d)->watchdog, HOLD_MAX_USEC);
	*ret = h;
	return 0;
}

static void shold_free(struct node_daemon *d, struct shold *h)
{
	LIST_REMOVE(mgr(d)->holds, h);
	h->h = holder_release(h->h);
	free(h);
}

static struct slocal *slocal_find(struct node_daemon *d, uint32_t coord, uint64_t xfer,
				  uint64_t id, uint32_t index)
{
	for (struct slocal *l = mgr(d)->locals; l; l = l->next)
		if (l->coord == coord && l->xfer == xfer && l->id == id &&
		    (l->index & 0xff) == (index & 0xff))
			return l;
	return NULL;
}

/* A new end being switched here, with no fd of its own yet; NULL without memory. */
static struct slocal *slocal_new(struct node_daemon *d, uint32_t coord, uint64_t xfer,
				 uint64_t id, uint32_t index)
{
	struct slocal *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->d = d;
	l->coord = coord;
	l->xfer = xfer;
	l->id = id;
	l->index = index;
	l->copy = -1;
	l->listen_fd = -1;
	LIST_PREPEND(mgr(d)->locals, l);
	return l;
}

static void slocal_free(struct node_daemon *d, struct slocal *l)
{
	if (l->waiting) {
		struct chain_ctx ctx = { l->coord, l->xfer, l->id, l->index };

		chain_wait_cancel(d, &ctx);
	}
	LIST_REMOVE(mgr(d)->locals, l);
	l->io = loop_io_free(l->io);
	l->copy = safe_close(l->copy);
	l->listen_fd = safe_close(l->listen_fd);
	buf_release(&l->data);
	buf_release(&l->prefill);
	free(l);
}

static void reply(struct node_daemon *d, uint32_t coord, uint32_t type, uint64_t xfer, uint64_t id,
		  uint32_t index, struct buf *extra)
{
	if (send_to(d, coord, type, xfer, id, index, extra) < 0)
		log_warn("cannot answer node %u about stream %llx", coord, (unsigned long long)id);
}

static void reply_failed(struct node_daemon *d, uint32_t coord, uint64_t xfer, uint64_t id,
			 uint32_t index, int err, const char *fmt, ...) _printf_(7, 8);
static void reply_failed(struct node_daemon *d, uint32_t coord, uint64_t xfer, uint64_t id,
			 uint32_t index, int err, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (attr_put_u32(&b, A_ERRNO, (uint32_t)(err < 0 ? -err : EIO)) >= 0 &&
	    attr_put_str(&b, A_MESSAGE, msg) >= 0)
		reply(d, coord, STREAM_FAILED, xfer, id, index, &b);
	buf_release(&b);
}

static int take_copy(pid_t pid, int fd)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), copy;

	if (pidfd < 0)
		return -errno;
	copy = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	if (copy < 0)
		copy = -errno;
	safe_close(pidfd);
	return copy;
}

/* The end flags the kernel object says (shutdown, TCP_NODELAY). */
static uint32_t end_state(int copy, uint32_t kind, uint64_t ino, uint32_t flags)
{
	flags &= SEND_READER | SEND_WRITER;
	if (kind == STREAM_UNIX) {
		uint32_t type, shut;
		uint64_t peer;

		if (sockdiag_unix(ino, &type, &peer, &shut) >= 0 && (shut & 2))
			flags |= SEND_SHUT_WR;
	} else if (kind == STREAM_TCP) {
		struct tcp_info ti;
		socklen_t sl = sizeof(ti);
		int one = 0;

		memset(&ti, 0, sizeof(ti));
		if (getsockopt(copy, IPPROTO_TCP, TCP_INFO, &ti, &sl) >= 0)
			switch (ti.tcpi_state) {
			case TCP_FIN_WAIT1:
			case TCP_FIN_WAIT2:
			case TCP_CLOSING:
			case TCP_LAST_ACK:
			case TCP_TIME_WAIT:
				flags |= SEND_SHUT_WR;
				break;
			default:
				break;
			}
		sl = sizeof(one);
		if (getsockopt(copy, IPPROTO_TCP, TCP_NODELAY, &one, &sl) >= 0 && one)
			flags |= SEND_NODELAY;
	}
	return flags;
}

/* The managed process holding this node's end of a TCP connection to another
 * node, by the connection's addresses as seen here. */
static int find_tcp_holder(struct node_daemon *d, const char *local, const char *remote,
			   struct send *e, char *why, size_t size)
{
	struct tcp_line *tl = NULL;
	struct cand x = { 0 };
	struct mproc *q;
	size_t n = 0;
	int r;

	r = tcp_lines(&tl, &n);
	for (size_t i = 0; r >= 0 && i < n; i++)
		if (strcmp(tl[i].local, local) == 0 && strcmp(tl[i].remote, remote) == 0)
			x.pino = tl[i].ino;
	free(tl);
	if (x.pino == 0) {
		snprintf(why, size, "the other end of the TCP connection is closed on node %u",
			 d->self);
		return -ENOENT;
	}
	/* find_peers() looks for the holder of the peer object. */
	x.kind = STREAM_TCP;
	x.pdev = 0;
	{
		struct stat st;
		char path[64];
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		/* Every socket is on sockfs: its dev is any socket's. */
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (fd < 0 || stat(path, &st) < 0) {
			safe_close(fd);
			snprintf(why, size, "cannot look for the TCP connection's holder");
			return -EIO;
		}
		safe_close(fd);
		x.pdev = st.st_dev;
	}
	find_peers(0, &x, 1);
	q = x.peer ? proc_find_or_adopt(d, x.peer) : NULL;
	if (!q || q->state != MPROC_RUNNING || x.other || x.peer_overflow) {
		snprintf(why, size,
			 x.peer ? "the other end of the TCP connection is held by process %d on "
				  "node %u, which Ghost does not manage or that shares it"
				: "the other end of the TCP connection is held by no process (%d) on node %u",
			 (int)x.peer, d->self);
		return -EOPNOTSUPP;
	}
	if (q->moving || q->arriving || q->keeping) {
		snprintf(why, size, "process %d, at the other end, is moving; try again",
			 (int)x.peer);
		return -EBUSY;
	}
	e->pid = x.peer;
	e->n_fds = x.n_peer_fds;
	memcpy(e->fds, x.peer_fds, sizeof(e->fds));
	e->ino = x.pino;
	return 0;
}

static void on_hold(struct node_daemon *d, uint32_t coord, uint64_t xfer, uint64_t id,
		    uint32_t index, const void *data, size_t len)
{
	struct slocal *l;
	struct shold *h;
	struct stat st;
	struct attr a;
	struct send e;
	struct buf b = BUF_INIT;
	uint32_t kind = 0;
	size_t keep = 0;
	char why[400];
	int r;

	if (slocal_find(d, coord, xfer, id, index))
		return;
	if (attr_find(data, len, A_KIND, &a) >= 0)
		(void)attr_u32(&a, &kind);
	if (attr_find(data, len, A_END, &a) < 0 || parse_end(a.data, a.len, &e) < 0 ||
	    kind < STREAM_PIPE || kind > STREAM_TCP) {
		reply_failed(d, coord, xfer, id, index, -EPROTO, "malformed stream request");
		return;
	}
	if (e.pid == 0 && attr_find(data, len, A_LOCAL, &a) >= 0) {
		char local[40] = "", remote[40] = "";
		struct attr ar;

		(void)attr_strcpy(&a, local, sizeof(local));
		if (attr_find(data, len, A_REMOTE, &ar) >= 0)
			(void)attr_strcpy(&ar, remote, sizeof(remote));
		r = find_tcp_holder(d, local, remote, &e, why, sizeof(why));
		if (r < 0) {
			reply_failed(d, coord, xfer, id, index, r, "%s", why);
			return;
		}
	} else if (e.pid == 0) {
		/* The end of a channel this node installed. */
		struct stream_rec *rec;

		recs_gc(d);
		rec = rec_by_id(d, id);
		if (!rec) {
			reply_failed(d, coord, xfer, id, index, -ENOENT,
				     "the other end of the stream on node %u is closed", d->self);
			return;
		}
		e.pid = rec->pid;
		e.n_fds = rec->n_fds;
		memcpy(e.fds, rec->fds, sizeof(e.fds));
		e.ino = rec->ino;
		e.flags = rec->flags;
	} else {
		struct mproc *p = proc_find(d, e.pid);

		if (p && (p->moving || p->arriving) && (index & 0xff) == 1) {
			reply_failed(d, coord, xfer, id, index, -EBUSY,
				     "process %d, at the other end, is moving; try again",
				     (int)e.pid);
			return;
		}
	}
	/* Keep the fds that still hold the object. */
	for (size_t i = 0; i < e.n_fds; i++)
		if (fd_object(e.pid, e.fds[i], &st) >= 0 && st.st_ino == e.ino)
			e.fds[keep++] = e.fds[i];
	e.n_fds = keep;
	if (keep == 0) {
		reply_failed(d, coord, xfer, id, index, -ENOENT,
			     "process %d on node %u no longer holds the other end", (int)e.pid,
			     d->self);
		return;
	}
	r = shold_get(d, coord, xfer, e.pid, &h, why, sizeof(why));
	if (r < 0) {
		reply_failed(d, coord, xfer, id, index, r, "%s", why);
		return;
	}
	l = slocal_new(d, coord, xfer, id, index);
	if (!l) {
		reply_failed(d, coord, xfer, id, index, -ENOMEM, "out of memory on node %u",
			     d->self);
		return;
	}
	l->kind = kind;
	l->copy = take_copy(e.pid, e.fds[0]);
	for (size_t i = 0; i < e.n_fds && r >= 0; i++)
		r = fd_flags_of(e.pid, e.fds[i], &e.status, &e.fd_flags[i]);
	if (l->copy < 0 || r < 0) {
		reply_failed(d, coord, xfer, id, index, l->copy < 0 ? l->copy : r,
			     "cannot take fd %d of process %d: %s", e.fds[0], (int)e.pid,
			     strerror(-(l->copy < 0 ? l->copy : r)));
		slocal_free(d, l);
		return;
	}
	/* A pump's packet mode is ours: the process's flags are the others. */
	if (kind == STREAM_PIPE && fstat(l->copy, &st) >= 0 &&
	    chain_out_by_pump(d, st.st_dev, st.st_ino))
		e.status &= ~(uint32_t)O_DIRECT;
	e.flags = end_state(l->copy, kind, e.ino, e.flags);
	l->e = e;
	{
		int proto = 0;
		socklen_t sl = sizeof(proto);

		l->tcp = getsockopt(l->copy, SOL_SOCKET, SO_PROTOCOL, &proto, &sl) >= 0 &&
			 proto == IPPROTO_TCP;
	}
	if (put_end_attrs(&b, &e) >= 0)
		reply(d, coord, STREAM_HELD, xfer, id, index, &b);
	buf_release(&b);
}

static void drained(struct slocal *l)
{
	struct buf b = BUF_INIT;

	log_debug("stream %llx end %u (process %d): %zu bytes drained%s",
		  (unsigned long long)l->id, l->index & 0xff, (int)l->e.pid, l->data.len,
		  l->tcp ? " (TCP)" : "");
	l->io = loop_io_free(l->io);
	/* In chunks; all but the last say that more follow. */
	for (size_t off = 0;; off += DATA_CHUNK) {
		size_t n = l->data.len - off < DATA_CHUNK ? l->data.len - off : DATA_CHUNK;
		bool last = off + n >= l->data.len;

		buf_reset(&b);
		if ((n && attr_put(&b, A_DATA, l->data.data + off, n) < 0) ||
		    attr_put_u32(&b, A_FLAGS, last ? 0 : 1) < 0)
			break;
		reply(l->d, l->coord, STREAM_DRAINED, l->xfer, l->id, l->index, &b);
		if (last)
			break;
	}
	buf_release(&b);
	buf_release(&l->data);
}

/* Read what is there; 1 at the end of the stream, 0 for more later, -errno. */
static int drain_some(struct slocal *l, bool to_eof)
{
	char chunk[65536];

	for (;;) {
		ssize_t n;
		int avail = 0;

		if (!to_eof && (ioctl(l->copy, FIONREAD, &avail) < 0 || avail <= 0))
			return 1;
		if (l->data.len >= DRAIN_MAX)
			return -EFBIG;
		if (!l->tcp && l->kind == STREAM_PIPE)
			n = read(l->copy, chunk,
				 (size_t)avail < sizeof(chunk) ? (size_t)avail : sizeof(chunk));
		else
			n = recv(l->copy, chunk, to_eof || (size_t)avail > sizeof(chunk)
						       ? sizeof(chunk)
						       : (size_t)avail,
				 MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0 && errno == ECONNRESET)
			return 1; /* the peer closed with data unread: nothing more comes */
		if (n < 0)
			return -errno;
		if (n == 0)
			return 1;
		if (buf_append(&l->data, chunk, (size_t)n) < 0)
			return -ENOMEM;
	}
}

static void on_drain_io(struct loop_io *io, int fd, unsigned events, void *userdata)
{
	struct slocal *l = userdata;
	int r;

	(void)io;
	(void)fd;
	(void)events;
	r = drain_some(l, true);
	if (r == 0)
		return;
	l->io = loop_io_free(l->io);
	if (r < 0) {
		reply_failed(l->d, l->coord, l->xfer, l->id, l->index, r,
			     "cannot read the stream of process %d: %s", (int)l->e.pid,
			     strerror(-r));
		return;
	}
	drained(l);
}

static void on_chain_flushed(struct node_daemon *d, const struct chain_ctx *ctx, int err,
			     uint64_t offset)
{
	struct buf b = BUF_INIT;

	if (err < 0) {
		reply_failed(d, ctx->coord, ctx->xfer, ctx->id, ctx->index, err,
			     "the readers' node of a pipe is out of reach: %s", strerror(-err));
		return;
	}
	if (attr_put_u64(&b, A_OFFSET, offset) >= 0 && attr_put_u32(&b, A_FLAGS, 0) >= 0)
		reply(d, ctx->coord, STREAM_DRAINED, ctx->xfer, ctx->id, ctx->index, &b);
	buf_release(&b);
}

static void on_drain(struct node_daemon *d, uint32_t coord, uint64_t xfer, uint64_t id,
		     uint32_t index)
{
	struct slocal *l = slocal_find(d, coord, xfer, id, index);
	int r;

	if (!l) {
		reply_failed(d, coord, xfer, id, index, -ENOENT, "no such stream end on node %u",
			     d->self);
		return;
	}
	if (!l->tcp && l->kind == STREAM_PIPE && (l->e.flags & SEND_WRITER)) {
		struct chain_out *co = NULL;
		struct stat st;

		if (fstat(l->copy, &st) >= 0)
			co = chain_out_by_pump(d, st.st_dev, st.st_ino);
		if (co) {
			/* It wrote through a chain: all it wrote goes to the
			 * readers' node first, and DRAINED says how much. */
			struct chain_ctx ctx = { coord, xfer, id, index };

			r = chain_out_flush(co, &ctx, on_chain_flushed);
			if (r < 0)
				reply_failed(d, coord, xfer, id, index, r,
					     "cannot flush the chain of process %d: %s",
					     (int)l->e.pid, strerror(-r));
			return;
		}
		drained(l); /* a pipe's write end holds nothing */
		return;
	}
	if (!l->tcp) {
		/* Every byte is in this end's queue already. */
		r = drain_some(l, false);
		if (r < 0)
			reply_failed(d, coord, xfer, id, index, r,
				     "cannot read the stream of process %d: %s", (int)l->e.pid,
				     strerror(-r));
		else
			drained(l);
		return;
	}
	/* TCP: bytes may still be on the way or in the peer's send queue. Both
	 * holders are frozen now; shutting down sends everything and a FIN, and
	 * this end reads until the peer's FIN. */
	if (shutdown(l->copy, SHUT_WR) < 0 && errno != ENOTCONN)
		log_debug_errno(errno, "shutdown of stream %llx", (unsigned long long)id);
	r = drain_some(l, true);
	if (r == 0)
		r = loop_io_new(d->loop, l->copy, LOOP_READ, on_drain_io, l, &l->io);
	if (r < 0)
		reply_failed(d, coord, xfer, id, index, r, "cannot read the stream of process %d: %s",
			     (int)l->e.pid, strerror(-r));
	else if (!l->io)
		drained(l);
}

/* ---- building and installing the new channel ------------------------------ */

/* The largest send buffer TCP autotuning gives a socket here. */
static int tcp_wmem_max(void)
{
	struct buf b = BUF_INIT;
	unsigned a, c, m = 4u << 20;

	if (read_file_at(AT_FDCWD, "/proc/sys/net/ipv4/tcp_wmem", &b) >= 0 &&
	    sscanf(b.data, "%u %u %u", &a, &c, &m) != 3)
		m = 4u << 20;
	buf_release(&b);
	return m > (1u << 30) ? 1 << 30 : (int)m;
}

/* Write all of data into fd (ours; it may be non-blocking), within the wake timeout. */
static int put_bytes(int fd, const void *data, size_t len)
{
	const char *p = data;
	uint64_t deadline = now_ns() + (uint64_t)WAKE_TIMEOUT_MS * 1000000;

	bool grown = false;
	int before = 0;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, p, len);
		if (n < 0 && errno == EAGAIN && !grown) {
			/* The reader is frozen: the rest must fit in our send
			 * buffer. Grow it by just that much, so that what is in
			 * flight at the next move is no more than at this one. */
			int cur = 0;
			socklen_t sl = sizeof(cur);

			grown = true;
			if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cur, &sl) >= 0) {
				int want = cur / 2 + (int)len + 65536;

				before = cur / 2;

				(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want,
						 sizeof(want));
			}
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd pf = { .fd = fd, .events = POLLOUT };
			uint64_t now = now_ns();

			if (now >= deadline)
				return -ETIMEDOUT;
			(void)poll(&pf, 1, (int)((deadline - now) / 1000000) + 1);
			continue;
		}
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	if (grown && before > 0) {
		/* The bytes are queued: back to a buffer of the usual size, so
		 * that a firehose writer does not keep more in flight at each
		 * move. For TCP, the most autotuning would give it. */
		int proto = 0, want = before;
		socklen_t sl = sizeof(proto);

		if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &sl) >= 0 &&
		    proto == IPPROTO_TCP)
			want = tcp_wmem_max() / 2;
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want));
	}
	return 0;
}

/* A connected pair of the stream's kind on this node, with room for need
 * bytes queued in it; for a pipe, a[0] is the read end. 1 when a pipe could
 * not hold that much and a socketpair stands for it. */
static int make_pair(uint32_t kind, size_t need, int a[2])
{
	if (kind == STREAM_PIPE) {
		/* Non-blocking, so that refilling it never hangs the daemon. */
		if (pipe2(a, O_CLOEXEC | O_NONBLOCK) < 0)
			return -errno;
		if (need <= 65536 || fcntl(a[1], F_SETPIPE_SZ, (int)need) >= 0)
			return 0;
		a[0] = safe_close(a[0]);
		a[1] = safe_close(a[1]);
		return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a) < 0 ? -errno : 1;
	}
	if (kind == STREAM_UNIX)
		return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a) < 0 ? -errno : 0;
	{
		/* TCP over loopback. */
		struct sockaddr_in sa = { .sin_family = AF_INET,
					  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t sl = sizeof(sa);
		int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), r = 0;

		a[0] = a[1] = -1;
		if (l < 0)
			return -errno;
		if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0 ||
		    getsockname(l, (struct sockaddr *)&sa, &sl) < 0)
			r = -errno;
		if (r >= 0 && (a[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
			r = -errno;
		if (r >= 0 && connect(a[1], (struct sockaddr *)&sa, sizeof(sa)) < 0)
			r = -errno;
		if (r >= 0 && (a[0] = accept4(l, NULL, NULL, SOCK_CLOEXEC)) < 0)
			r = -errno;
		safe_close(l);
		if (r < 0) {
			safe_close(a[0]);
			safe_close(a[1]);
		}
		return r;
	}
}

/* Make fd what end e's holder had (status flags, TCP_NODELAY), and install
 * it at e's fds. shared: fd is the process's own description (a fork's
 * copy gets it as it is). temp: the process was not held for this
 * operation. */
static int install(struct node_daemon *d, uint32_t coord, uint64_t xfer, const struct send *e,
		   uint32_t kind, int fd, bool tcp_channel, bool shared, char *why, size_t size)
{
	struct shold *h;
	bool temp;
	int r;

	if (!shared) {
		/* A pump keeps its packet mode: each write is one packet. */
		int direct = fcntl(fd, F_GETFL);

		direct = direct < 0 ? 0 : direct & O_DIRECT;
		if (fcntl(fd, F_SETFL, (int)(e->status & (O_NONBLOCK | O_APPEND)) | direct) < 0) {
			snprintf(why, size, "cannot set the flags of a new channel: %s",
				 strerror(errno));
			return -errno;
		}
	}
	if (tcp_channel) {
		/* A pipe or Unix socket never waited to gather small writes. */
		int on = kind != STREAM_TCP || (e->flags & SEND_NODELAY);

		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	}
	temp = !shold_find(d, coord, xfer, e->pid);
	r = shold_get(d, coord, xfer, e->pid, &h, why, size);
	if (r < 0)
		return r;
	r = holder_install(h->h, e->fds, e->fd_flags, e->n_fds, fd, why, size);
	if (temp)
		shold_free(d, h);
	return r;
}

static void record(struct node_daemon *d, uint64_t id, uint32_t kind, const struct send *e,
		   int fd, uint32_t peer)
{
	struct stream_rec *rec;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return;
	while ((rec = rec_by_id(d, id)))
		rec_free(d, rec);
	rec = calloc(1, sizeof(*rec));
	if (!rec)
		return;
	rec->id = id;
	rec->kind = kind;
	rec->flags = e->flags & (SEND_READER | SEND_WRITER);
	rec->pid = e->pid;
	memcpy(rec->fds, e->fds, sizeof(rec->fds));
	rec->n_fds = e->n_fds;
	rec->dev = st.st_dev;
	rec->ino = st.st_ino;
	rec->peer_node = peer;
	LIST_PREPEND(mgr(d)->recs, rec);
}

/* After the bytes are in: what the old end had shut, shut again. */
static void shut_like(int fd, uint32_t kind, const struct send *e, bool tcp_channel)
{
	if ((e->flags & SEND_SHUT_WR) ||
	    (tcp_channel && kind == STREAM_PIPE && (e->flags & SEND_READER)))
		(void)shutdown(fd, SHUT_WR);
}

static int wake_local(struct node_daemon *d, uint32_t coord, uint64_t xfer, uint64_t id,
		      uint32_t kind, const struct send e[2], const struct attr data[2], char *why,
		      size_t size)
{
	int a[2] = { -1, -1 }, r;

	log_debug("stream %llx: local channel for processes %d and %d, %zu and %zu bytes first",
		  (unsigned long long)id, (int)e[0].pid, (int)e[1].pid, data[0].len, data[1].len);
	/* A pipe's data flows from the writer to the reader. */
	r = make_pair(kind, data[0].len > data[1].len ? data[0].len : data[1].len, a);
	if (r < 0) {
		snprintf(why, size, "cannot make a channel: %s", strerror(-r));
		return r;
	}
	if (kind == STREAM_PIPE && r == 0 && (e[0].flags & SEND_WRITER)) {
		/* a[0] is the pipe's read end: swap so that end 0 gets the write end. */
		int t = a[0];

		a[0] = a[1];
		a[1] = t;
	}
	/* End i's holder reads data[i] first: the other end writes it. */
	r = put_bytes(a[1], data[0].data, data[0].len);
	if (r >= 0)
		r = put_bytes(a[0], data[1].data, data[1].len);
	if (r < 0) {
		snprintf(why, size, "cannot refill a channel: %s", strerror(-r));
		goto out;
	}
	if (kind != STREAM_PIPE) {
		shut_like(a[0], kind, &e[0], false);
		shut_like(a[1], kind, &e[1], false);
	}
	r = install(d, coord, xfer, &e[0], kind, a[0], kind == STREAM_TCP, false, why, size);
	if (r >= 0)
		r = install(d, coord, xfer, &e[1], kind, a[1], kind == STREAM_TCP, false, why, size);
	if (r >= 0) {
		struct stream_rec *rec;

		while ((rec = rec_by_id(d, id)))
			rec_free(d, rec);
	}
out:
	safe_close(a[0]);
	safe_close(a[1]);
	return r;
}

static int wake_alone(struct node_daemon *d, uint32_t coord, uint64_t xfer, uint64_t id,
		      uint32_t kind, const struct send *e, const struct attr *data, char *why,
		      size_t size)
{
	int a[2] = { -1, -1 }, r;

	(void)id;
	r = make_pair(kind == STREAM_PIPE ? STREAM_PIPE : STREAM_UNIX, data->len, a);
	if (r < 0) {
		snprintf(why, size, "cannot make a channel: %s", strerror(-r));
		return r;
	}
	if (r == 0 && kind == STREAM_PIPE && (e->flags & SEND_WRITER)) {
		/* Nobody reads any more: writes fail with EPIPE. */
		int t = a[0];

		a[0] = a[1];
		a[1] = t;
	}
	r = put_bytes(a[1], data->data, data->len);
	if (r < 0) {
		snprintf(why, size, "cannot refill a channel: %s", strerror(-r));
		goto out;
	}
	/* End of file after the bytes. */
	a[1] = safe_close(a[1]);
	r = install(d, coord, xfer, e, kind, a[0], false, false, why, size);
out:
	safe_close(a[0]);
	safe_close(a[1]);
	return r;
}

static int wake_cross(struct slocal *l, int sock, char *why, size_t size)
{
	int r;

	log_debug("stream %llx end %u (process %d): connected to node %u, %zu bytes first",
		  (unsigned long long)l->id, l->index & 0xff, (int)l->e.pid, l->peer_node,
		  l->prefill.len);
	r = put_bytes(sock, l->prefill.data, l->prefill.len);
	if (r < 0) {
		snprintf(why, size, "cannot refill the channel to node %u: %s", l->peer_node,
			 strerror(-r));
		return r;
	}
	shut_like(sock, l->kind, &l->e, true);
	r = install(l->d, l->coord, l->xfer, &l->e, l->kind, sock, true, false, why, size);
	if (r >= 0)
		record(l->d, l->id, l->kind, &l->e, sock, l->peer_node);
	return r;
}

static void on_accept(struct loop_io *io, int fd, unsigned events, void *userdata)
{
	struct slocal *l = userdata;
	struct msg_chan_session cs = MSG_CHAN_SESSION_INIT;
	char why[400];
	int r;

	(void)io;
	(void)fd;
	(void)events;
	r = msg_chan_accept(l->listen_fd, l->key, WAKE_TIMEOUT_MS, &cs);
	l->io = loop_io_free(l->io);
	l->listen_fd = safe_close(l->listen_fd);
	if (r < 0) {
		reply_failed(l->d, l->coord, l->xfer, l->id, l->index, r,
			     "no connection came from node %u for stream %llx: %s", l->peer_node,
			     (unsigned long long)l->id, strerror(-r));
		return;
	}
	r = wake_cross(l, cs.fd, why, sizeof(why));
	msg_chan_session_release(&cs);
	if (r < 0)
		reply_failed(l->d, l->coord, l->xfer, l->id, l->index, r, "%s", why);
	else
		reply(l->d, l->coord, STREAM_WOKEN, l->xfer, l->id, l->index, NULL);
}

static struct sdata *sdata_find(struct node_daemon *d, uint32_t coord, uint64_t xfer,
				uint64_t id, uint32_t index)
{
	for (struct sdata *sd = mgr(d)->datas; sd; sd = sd->next)
		if (sd->coord == coord && sd->xfer == xfer && sd->id == id && sd->index == index)
			return sd;
	return NULL;
}

static void sdata_free(struct node_daemon *d, struct sdata *sd)
{
	LIST_REMOVE(mgr(d)->datas, sd);
	buf_release(&sd->data);
	free(sd);
}

/* Forget the bytes of a stream (id 0: of every stream of the operation). */
static void sdata_drop(struct node_daemon *d, uint32_t coord, uint64_t xfer, uint64_t id)
{
	struct sdata *sd, *next;

	for (sd = mgr(d)->datas; sd; sd = next) {
		next = sd->next;
		if (sd->coord == coord && sd->xfer == xfer && (id == 0 || sd->id == id))
			sdata_free(d, sd);
	}
}

static void on_data(struct node_daemon *d, uint32_t coord, uint64_t xfer, uint64_t id,
		    uint32_t index, const void *data, size_t len)
{
	struct sdata *sd = sdata_find(d, coord, xfer, id, index & 1);
	struct attr a;

	if (attr_find(data, len, A_DATA, &a) < 0)
		return;
	if (sd && sd->gen != index >> 8) {
		/* What a rollback replaced. */
		sdata_free(d, sd);
		sd = NULL;
	}
	if (!sd) {
		sd = calloc(1, sizeof(*sd));
		if (!sd)
			goto fail;
		sd->coord = coord;
		sd->xfer = xfer;
		sd->id = id;
		sd->index = index & 1;
		sd->gen = index >> 8;
		LIST_PREPEND(mgr(d)->datas, sd);
	}
	if (sd->data.len + a.len > 2 * DRAIN_MAX || buf_append(&sd->data, a.data, a.len) < 0)
		goto fail;
	return;
fail:
	/* The WAKE then fails for want of them: nothing is installed half-filled. */
	log_warn("cannot keep %zu bytes of stream %llx", a.len, (unsigned long long)id);
	if (sd)
		sdata_free(d, sd);
}

/* ---- a pipe's writer and its readers on two nodes: chains ------------------- */

static void on_chain_opened(struct node_daemon *d, const struct chain_ctx *ctx, int err,
			    uint64_t offset)
{
	(void)offset;
	if (err < 0)
		reply_failed(d, ctx->coord, ctx->xfer, ctx->id, ctx->index, err,
			     "the readers' node of a pipe is out of reach: %s", strerror(-err));
	else
		reply(d, ctx->coord, STREAM_WOKEN, ctx->xfer, ctx->id, ctx->index, NULL);
}

/* End e writes here into the pipe (dev, ino) of node readers: a pump and
 * its chain, after chain after's first after_off bytes. WOKEN once the
 * readers' node holds the pipe open for it (chain.c, invariant 5). */
static int wake_chain(struct node_daemon *d, const struct chain_ctx *ctx, const struct send *e,
		      uint32_t readers, uint64_t dev, uint64_t ino, uint64_t after,
		      uint64_t after_off, char *why, size_t size)
{
	struct chain_out *co;
	int wfd, r;

	if (readers == d->self) {
		snprintf(why, size, "a chain from node %u to itself", d->self);
		return -EPROTO;
	}
	r = chain_out_new(d, ctx->id, readers, dev, ino, &co, &wfd);
	if (r < 0) {
		snprintf(why, size, "cannot make a pipe on node %u: %s", d->self, strerror(-r));
		return r;
	}
	r = install(d, ctx->coord, ctx->xfer, e, STREAM_PIPE, wfd, false, false, why, size);
	safe_close(wfd);
	if (r < 0) {
		chain_out_drop(co);
		return r;
	}
	r = chain_out_start(co, e->pid, after, after_off, ctx, on_chain_opened);
	if (r < 0)
		snprintf(why, size, "cannot reach node %u, where the pipe's readers are: %s",
			 readers, strerror(-r));
	return r;
}

/* The writer of a WAKE_MERGED gets a description of the pipe of its own. */
static void merged_install(struct slocal *l)
{
	struct node_daemon *d = l->d;
	char why[400] = "";
	int fd = -1, r;

	r = chain_pipe_open(d, l->pipe_dev, l->pipe_ino, &fd);
	if (r == -ENXIO || r == -ENOENT) {
		/* No reader left: a write end without one, as it would have. */
		int p[2];

		r = pipe2(p, O_CLOEXEC) < 0 ? -errno : 0;
		if (r >= 0) {
			safe_close(p[0]);
			fd = p[1];
		}
	}
	if (r < 0)
		snprintf(why, sizeof(why), "cannot open the pipe again on node %u: %s", d->self,
			 strerror(-r));
	else
		r = install(d, l->coord, l->xfer, &l->e, STREAM_PIPE, fd, false, false, why,
			    sizeof(why));
	safe_close(fd);
	if (r < 0)
		reply_failed(d, l->coord, l->xfer, l->id, l->index, r, "%s", why);
	else
		reply(d, l->coord, STREAM_WOKEN, l->xfer, l->id, l->index, NULL);
	slocal_free(d, l);
}

static void on_merge_ready(struct node_daemon *d, const struct chain_ctx *ctx, int err,
			   uint64_t offset)
{
	struct slocal *l = slocal_find(d, ctx->coord, ctx->xfer, ctx->id, ctx->index);

	(void)offset;
	if (!l)
		return;
	l->waiting = false;
	if (err < 0) {
		reply_failed(d, l->coord, l->xfer, l->id, l->index, err,
			     "the readers of the pipe on node %u have not read what process %d wrote "
			     "through its chain: it cannot write into the pipe here before they have",
			     d->self, (int)l->e.pid);
		slocal_free(d, l);
		return;
	}
	merged_install(l);
}

/* End e comes back to the readers' node of its pipe (dev, ino): it gets the
 * pipe again once its chain has written the bytes it sent before it moved
 * (within the wake timeout: a reader that does not read holds it back). */
static int wake_merged(struct node_daemon *d, const struct chain_ctx *ctx, const struct send *e,
		       uint64_t dev, uint64_t ino, uint64_t after, uint64_t after_off, char *why,
		       size_t size)
{
	struct slocal *l = slocal_new(d, ctx->coord, ctx->xfer, ctx->id, ctx->index);
	int r;

	if (!l) {
		snprintf(why, size, "out of memory on node %u", d->self);
		return -ENOMEM;
	}
	l->kind = STREAM_PIPE;
	l->e = *e;
	l->pipe_dev = dev;
	l->pipe_ino = ino;
	r = chain_wait(d, after, after_off, WAKE_TIMEOUT_MS, ctx, on_merge_ready);
	if (r < 0) {
		slocal_free(d, l);
		snprintf(why, size, "out of memory on node %u", d->self);
		return r;
	}
	if (r == 0) {
		log_debug("stream %llx: process %d waits for chain %llx to write %llu bytes",
			  (unsigned long long)ctx->id, (int)e->pid, (unsigned long long)after,
			  (unsigned long long)after_off);
		l->waiting = true;
		return 0;
	}
	merged_install(l);
	return 0;
}

static void on_wake(struct node_daemon *d, uint32_t coord, uint64_t xfer, uint64_t id,
		    uint32_t index, const void *data, size_t len)
{
	struct attr_iter it;
	struct attr a, bytes[2], prefill = { 0 };
	struct send e[2];
	size_t n_ends = 0;
	uint32_t kind = 0, how = 0, peer = 0, port = 0;
	uint64_t pipe_dev = 0, pipe_ino = 0, after = 0, after_off = 0;
	struct chain_ctx ctx = { coord, xfer, id, index };
	uint8_t key[MSG_CHAN_KEY_SIZE];
	bool have_key = false;
	char address[64] = "", why[400] = "";
	struct slocal *l;
	int r = -EPROTO;

	memset(bytes, 0, sizeof(bytes));
	attr_iter_init(&it, data, len);
	while (attr_next(&it, &a) > 0) {
		switch (a.type) {
		case A_KIND:
			(void)attr_u32(&a, &kind);
			break;
		case A_FLAGS:
			(void)attr_u32(&a, &how);
			break;
		case A_NODE:
			(void)attr_u32(&a, &peer);
			break;
		case A_PORT:
			(void)attr_u32(&a, &port);
			break;
		case A_ADDRESS:
			(void)attr_strcpy(&a, address, sizeof(address));
			break;
		case A_DEV:
			(void)attr_u64(&a, &pipe_dev);
			break;
		case A_INODE:
			(void)attr_u64(&a, &pipe_ino);
			break;
		case A_AFTER:
			(void)attr_u64(&a, &after);
			break;
		case A_OFFSET:
			(void)attr_u64(&a, &after_off);
			break;
		case A_KEY:
			if (a.len == sizeof(key)) {
				memcpy(key, a.data, sizeof(key));
				have_key = true;
			}
			break;
		case A_END:
			if (n_ends < 2 && parse_end(a.data, a.len, &e[n_ends]) >= 0)
				n_ends++;
			break;
		default:
			break;
		}
	}
	if (kind < STREAM_PIPE || kind > STREAM_TCP || n_ends == 0)
		goto fail;
	/* The bytes each holder reads first came ahead of this. */
	for (uint32_t i = 0; i < 2; i++) {
		struct sdata *sd = sdata_find(d, coord, xfer, id, i);

		if (sd && sd->gen == index >> 8) {
			bytes[i].data = sd->data.data;
			bytes[i].len = sd->data.len;
		}
	}
	prefill = bytes[(index & 1) ^ 1];
	if (how == WAKE_LOCAL || how == WAKE_ALONE)
		memset(&prefill, 0, sizeof(prefill));
	/* The fds of this end are switched now: drop what we took from them. */
	l = slocal_find(d, coord, xfer, id, index);
	if (l && how != WAKE_LISTEN && how != WAKE_CONNECT)
		slocal_free(d, l);
	switch (how) {
	case WAKE_LOCAL:
		if (n_ends != 2)
			goto fail;
		if ((l = slocal_find(d, coord, xfer, id, index ^ 1u)))
			slocal_free(d, l);
		r = wake_local(d, coord, xfer, id, kind, e, bytes, why, sizeof(why));
		break;
	case WAKE_ALONE:
		r = wake_alone(d, coord, xfer, id, kind, &e[0], &bytes[0], why, sizeof(why));
		break;
	case WAKE_CHAIN:
	case WAKE_MERGED:
		if (kind != STREAM_PIPE || pipe_ino == 0)
			goto fail;
		if (how == WAKE_CHAIN)
			r = wake_chain(d, &ctx, &e[0], peer, pipe_dev, pipe_ino, after, after_off,
				       why, sizeof(why));
		else
			r = wake_merged(d, &ctx, &e[0], pipe_dev, pipe_ino, after, after_off, why,
					sizeof(why));
		if (r >= 0) {
			/* WOKEN once the readers' side is ready. */
			sdata_drop(d, coord, xfer, id);
			return;
		}
		break;
	case WAKE_LISTEN:
	case WAKE_CONNECT: {
		const struct node_config_node *self = node_config_find(&d->config, d->self);
		uint16_t lport = 0;

		if (!have_key || !self || (how == WAKE_CONNECT && (port == 0 || port > 65535)))
			goto fail;
		if (!l && !(l = slocal_new(d, coord, xfer, id, index))) {
			r = -ENOMEM;
			snprintf(why, sizeof(why), "out of memory on node %u", d->self);
			break;
		}
		l->index = index;
		l->kind = kind;
		l->copy = safe_close(l->copy);
		l->listen_fd = safe_close(l->listen_fd);
		l->io = loop_io_free(l->io);
		l->listen_fd = -1;
		l->e = e[0];
		l->peer_node = peer;
		memcpy(l->key, key, sizeof(key));
		buf_release(&l->prefill);
		if (prefill.len && buf_append(&l->prefill, prefill.data, prefill.len) < 0) {
			r = -ENOMEM;
			snprintf(why, sizeof(why), "out of memory on node %u", d->self);
			break;
		}
		if (how == WAKE_LISTEN) {
			struct buf b = BUF_INIT;

			r = msg_chan_listen(self->address, &l->listen_fd, &lport);
			if (r >= 0)
				r = loop_io_new(d->loop, l->listen_fd, LOOP_READ, on_accept, l,
						&l->io);
			if (r >= 0)
				r = attr_put_u32(&b, A_PORT, lport);
			if (r >= 0)
				reply(d, coord, STREAM_LISTENING, xfer, id, index, &b);
			buf_release(&b);
			if (r < 0)
				snprintf(why, sizeof(why), "node %u cannot listen: %s", d->self,
					 strerror(-r));
			else {
				sdata_drop(d, coord, xfer, id);
				return; /* WOKEN once the peer connected */
			}
		} else {
			struct msg_chan_session cs = MSG_CHAN_SESSION_INIT;

			r = msg_chan_connect(address, (uint16_t)port, key, WAKE_TIMEOUT_MS, &cs);
			if (r < 0)
				snprintf(why, sizeof(why), "cannot connect to node %u for the stream: %s",
					 peer, strerror(-r));
			else
				r = wake_cross(l, cs.fd, why, sizeof(why));
			msg_chan_session_release(&cs);
		}
		break;
	}
	default:
		goto fail;
	}
	sdata_drop(d, coord, xfer, id);
	if (r >= 0) {
		reply(d, coord, STREAM_WOKEN, xfer, id, index, NULL);
		return;
	}
	reply_failed(d, coord, xfer, id, index, r, "%s", why[0] ? why : strerror(-r));
	return;
fail:
	reply_failed(d, coord, xfer, id, index, -EPROTO, "malformed stream wakeup");
}

static void on_release(struct node_daemon *d, uint32_t coord, uint64_t xfer)
{
	struct shold *h, *hn;
	struct slocal *l, *ln;

	sdata_drop(d, coord, xfer, 0);
	for (l = mgr(d)->locals; l; l = ln) {
		ln = l->next;
		if (l->coord == coord && l->xfer == xfer)
			slocal_free(d, l);
	}
	for (h = mgr(d)->holds; h; h = hn) {
		hn = h->next;
		if (h->coord == coord && h->xfer == xfer)
			shold_free(d, h);
	}
}

static const char *const fault_names[] = {
	[STREAM_HOLD] = "hold",
	[STREAM_DRAIN] = "drain",
	[STREAM_WAKE] = "wake",
};

/* Read $GHOST_FAULT: the items for this node; a malformed one is logged
 * and ignored (a daemon does not refuse to start over a test knob). */
static void stream_faults_parse(struct node_daemon *d)
{
	mgr(d)->n_faults = node_faults_parse(d, FAULT_ENV, fault_names, ARRAY_SIZE(fault_names),
					     mgr(d)->faults, MAX_FAULTS);
}

static void sdelayed_free(struct node_daemon *d, struct sdelayed *x)
{
	for (struct sdelayed **pp = &mgr(d)->delayed; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			break;
		}
	loop_timer_free(x->timer);
	free(x);
}

static void stream_dispatch(struct node_daemon *d, uint32_t node, uint32_t type,
			    const void *data, size_t len);

static void on_delayed(struct loop_timer *t, void *userdata)
{
	struct sdelayed *x = userdata;
	struct node_daemon *d = x->d;

	(void)t;
	log_warn("fault injection: handling the %s from node %u now", fault_names[x->type],
		 x->node);
	stream_dispatch(d, x->node, x->type, x->data, x->len);
	sdelayed_free(d, x);
}

/* True if fault injection holds this message back (it comes again later). */
static bool fault_delays(struct node_daemon *d, uint32_t node, uint32_t type, const void *data,
			 size_t len)
{
	struct sdelayed *x;

	for (size_t i = 0; i < mgr(d)->n_faults; i++) {
		if (mgr(d)->faults[i].type != type)
			continue;
		x = calloc(1, sizeof(*x) + len);
		if (!x || loop_timer_new(d->loop, on_delayed, x, &x->timer) < 0) {
			free(x);
			return false;
		}
		x->d = d;
		x->node = node;
		x->type = type;
		x->len = len;
		memcpy(x->data, data, len);
		x->next = mgr(d)->delayed;
		mgr(d)->delayed = x;
		loop_timer_arm(x->timer, (uint64_t)mgr(d)->faults[i].delay_ms * 1000);
		log_warn("fault injection: holding the %s from node %u back for %u ms",
			 fault_names[type], node, mgr(d)->faults[i].delay_ms);
		return true;
	}
	return false;
}

static void stream_recv(struct msg *msg, uint32_t node, uint16_t channel, uint32_t type,
			const void *data, size_t len, void *userdata)
{
	struct node_daemon *d = userdata;

	(void)msg;
	(void)channel;
	/* A leaving daemon has let its streams go; msg still delivers until
	 * it exits (chains send data at any time). */
	if (!d->streams)
		return;
	if (mgr(d)->n_faults && fault_delays(d, node, type, data, len))
		return;
	stream_dispatch(d, node, type, data, len);
}

static void stream_dispatch(struct node_daemon *d, uint32_t node, uint32_t type,
			    const void *data, size_t len)
{
	uint64_t xfer = 0, id = 0;
	uint32_t index = 0;
	struct stream_op *op;
	struct attr a;

	if (attr_find(data, len, A_XFER, &a) >= 0)
		(void)attr_u64(&a, &xfer);
	if (attr_find(data, len, A_STREAM, &a) >= 0)
		(void)attr_u64(&a, &id);
	if (attr_find(data, len, A_INDEX, &a) >= 0)
		(void)attr_u32(&a, &index);
	switch (type) {
	case STREAM_HOLD:
		on_hold(d, node, xfer, id, index, data, len);
		break;
	case STREAM_DRAIN:
		on_drain(d, node, xfer, id, index);
		break;
	case STREAM_DATA:
		on_data(d, node, xfer, id, index, data, len);
		break;
	case STREAM_WAKE:
		on_wake(d, node, xfer, id, index, data, len);
		break;
	case STREAM_RELEASE:
		on_release(d, node, xfer);
		break;
	case STREAM_CHAIN_OPEN:
	case STREAM_CHAIN_OPENED:
	case STREAM_CHAIN_DATA:
	case STREAM_CHAIN_ACK:
	case STREAM_CHAIN_FLUSH:
	case STREAM_CHAIN_FLUSHED:
	case STREAM_CHAIN_END:
	case STREAM_CHAIN_CLOSED:
		chain_recv(d, node, type, data, len);
		break;
	default:
		op = op_find(d, xfer);
		if (op)
			op_recv(op, node, type, id, index, data, len);
		break;
	}
}

/* A coordinator that failed, or was cut off, never sends RELEASE: no
 * process stays frozen for longer than HOLD_MAX_USEC because of it. */
static void on_watchdog(struct loop_timer *t, void *userdata)
{
	struct node_daemon *d = userdata;
	uint64_t now = loop_now(d->loop);
	struct shold *h, *next;

	(void)t;
	for (h = mgr(d)->holds; h; h = next) {
		next = h->next;
		if (now - h->since < HOLD_MAX_USEC)
			continue;
		log_warn("process %d was held for node %u's stream switch too long: letting it go",
			 (int)h->pid, h->coord);
		on_release(d, h->coord, h->xfer);
		next = mgr(d)->holds; /* on_release() freed others too */
	}
	if (mgr(d)->holds)
		loop_timer_arm(mgr(d)->watchdog, HOLD_MAX_USEC / 4);
}

int stream_init(struct node_daemon *d)
{
	struct msg_handler h = { .recv = stream_recv };
	int r;

	d->streams = calloc(1, sizeof(struct stream_mgr));
	if (!d->streams || chain_init(d) < 0)
		return -ENOMEM;
	r = loop_timer_new(d->loop, on_watchdog, d, &mgr(d)->watchdog);
	if (r < 0)
		return r;
	stream_faults_parse(d);
	return msg_register(d->msg, NODE_CH_STREAM, &h, d);
}

void stream_node_down(struct node_daemon *d, uint32_t node)
{
	struct shold *h, *hn;
	struct slocal *l, *ln;

	if (!d->streams)
		return;
	chain_node_down(d, node);
	/* Our holders for a coordinator that is gone: let them go. */
	for (l = mgr(d)->locals; l; l = ln) {
		ln = l->next;
		if (l->coord == node)
			slocal_free(d, l);
	}
	for (h = mgr(d)->holds; h; h = hn) {
		hn = h->next;
		if (h->coord == node)
			shold_free(d, h);
	}
	/* Operations waiting for that node: what it held is gone. */
	for (struct stream_op *op = mgr(d)->ops, *next; op; op = next) {
		bool involved = op->target == node;

		next = op->next;
		for (size_t i = 0; i < op->n; i++)
			if (op->s[i].end[1].node == node) {
				op->s[i].end[1].gone = true;
				involved = true;
			}
		if (!involved || op->pending == 0)
			continue;
		op_fail(op, -EHOSTDOWN, "node %u failed while the streams of process %d switched",
			node, (int)op->pid);
		op->pending = 0;
		op_step(op);
	}
}

void stream_free_all(struct node_daemon *d)
{
	if (!d->streams)
		return;
	while (mgr(d)->ops)
		op_free(mgr(d)->ops);
	while (mgr(d)->locals)
		slocal_free(d, mgr(d)->locals);
	while (mgr(d)->datas)
		sdata_free(d, mgr(d)->datas);
	while (mgr(d)->holds)
		shold_free(d, mgr(d)->holds);
	while (mgr(d)->recs)
		rec_free(d, mgr(d)->recs);
	while (mgr(d)->delayed)
		sdelayed_free(d, mgr(d)->delayed);
	mgr(d)->watchdog = loop_timer_free(mgr(d)->watchdog);
	chain_free_all(d);
	free(d->streams);
	d->streams = NULL;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * node: the node daemon ghostd (membership, managed processes with global
 * PIDs, the cluster-wide process table, the control socket) and the client
 * side of its control protocol, which the ghost command line uses.
 *
 * Errors are -errno. The daemon calls log each error once, where handled;
 * the client calls never log: they return -errno and, when err is not NULL,
 * one line saying what failed (replacing its contents), for the caller to
 * show after "ghost: ". The protocol is described in docs/ghostd.md.
 */
#ifndef NODE_NODE_H
#define NODE_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/buf.h"

#define NODE_DEFAULT_CONFIG "/etc/ghost/cluster.conf"
#define NODE_DEFAULT_CONTROL "/run/ghost/ghostd.sock"
#define NODE_DEFAULT_LOG_DIR "/var/log/ghost"
/* The environment variable naming the control socket for the client. */
#define NODE_CONTROL_ENV "GHOST_CONTROL"
#define NODE_KEY_SIZE 32
/* Each node hands out PIDs in [ID * range, ID * range + range - 1]. */
#define NODE_DEFAULT_PID_RANGE 100000
/* The kernel's PID_MAX_LIMIT on 64-bit machines: no PID reaches it. */
#define NODE_PID_LIMIT 4194304
#define NODE_DEFAULT_TIMEOUT_MS 5000

/* ---- cluster.conf ---------------------------------------------------------
 *
 * One directive per line; blank lines and lines whose first non-blank
 * character is '#' are ignored; fields are separated by blanks:
 *
 *   node ID ADDRESS PORT   a node: ID 1..4294967295, numeric IPv4 or IPv6
 *                          ADDRESS, TCP PORT 1..65535; one line per node
 *   key FILE               the 32-byte cluster key, relative to the
 *                          configuration file's directory unless absolute
 *   encrypt yes|no         seal every message (default) or only authenticate
 *   timeout MS             silence after which a node is failed (default 5000)
 *   pid-range N            PIDs per node; every node of the cluster must use
 *                          the same value. Default 100000, or the largest
 *                          multiple of 1000 that fits the largest node id
 *   checkpoint-memory SIZE memory a node may use to keep memory checkpoints
 *                          (ghost checkpoint --memory): bytes, with an
 *                          optional suffix K, M, G or T (powers of 1024), or
 *                          N% of the node's RAM; 0 keeps none. Default 25%.
 *                          ghostd reads it again on SIGHUP
 *
 * At least one node and exactly one key are required; node ids and
 * ADDRESS:PORT pairs are unique; every node's PID range must lie below
 * NODE_PID_LIMIT.
 */

struct node_config_node {
	uint32_t id;
	char address[46]; /* INET6_ADDRSTRLEN */
	uint16_t port;
};

/* A value type: node_config_release() frees what the parser allocated. */
struct node_config {
	struct node_config_node *nodes; /* in file order */
	size_t n_nodes;
	char *key_file;
	bool encrypt;
	uint32_t timeout_ms;
	uint32_t pid_range;
	uint64_t ckpt_memory;     /* bytes, when ckpt_memory_pct is 0 */
	uint32_t ckpt_memory_pct; /* percent of the node's RAM, or 0 */
};

#define NODE_DEFAULT_CKPT_MEMORY_PCT 25
#define NODE_CONFIG_INIT                                                                          \
	{ NULL, 0, NULL, true, NODE_DEFAULT_TIMEOUT_MS, NODE_DEFAULT_PID_RANGE, 0,                 \
	  NODE_DEFAULT_CKPT_MEMORY_PCT }

/* Parse text (len bytes, need not be NUL-terminated) into ret, which must be
 * NODE_CONFIG_INIT or released; name is used in messages and to resolve a
 * relative key file (NULL: relative to the current directory). On failure
 * ret is left released. Errors: -EINVAL with "NAME:LINE: ..." in err, -ENOMEM. */
int node_config_parse(const char *name, const char *text, size_t len, struct node_config *ret,
		      struct buf *err);
/* Read and parse the file at path. Errors as above, plus the file's own. */
int node_config_load(const char *path, struct node_config *ret, struct buf *err);
void node_config_release(struct node_config *c);
/* The node with this id, or NULL; lent until c changes. */
const struct node_config_node *node_config_find(const struct node_config *c, uint32_t id);
/* The id of the one node whose ADDRESS is configured on a local interface.
 * -ENOENT (none), -ENOTUNIQ (several), getifaddrs() errors; err says which. */
int node_config_find_local(const struct node_config *c, uint32_t *ret_id, struct buf *err);
/* Read the key file: exactly NODE_KEY_SIZE bytes, not accessible by group or
 * others. -EINVAL (size), -EPERM (mode), open errors; err says which. */
int node_key_load(const char *path, uint8_t ret_key[NODE_KEY_SIZE], struct buf *err);

/* ---- the daemon ---------------------------------------------------------- */

struct node_daemon;

struct node_daemon_opts {
	const char *config_path;  /* NULL: NODE_DEFAULT_CONFIG */
	uint32_t node_id;         /* 0: the node whose address is local */
	const char *control_path; /* NULL: NODE_DEFAULT_CONTROL */
	const char *log_dir;      /* NULL: NODE_DEFAULT_LOG_DIR */
};

#define NODE_DAEMON_OPTS_INIT { NULL, 0, NULL, NULL }

/* Load the configuration, open the control socket, start messaging. Does
 * not log: on failure, err holds one line saying what failed. Must run in a
 * single-threaded process that may become the parent of its managed
 * processes (it makes itself a child subreaper). */
int node_daemon_new(const struct node_daemon_opts *opts, struct node_daemon **ret,
		    struct buf *err);
/* Serve until SIGTERM or SIGINT: tell the other nodes this one leaves, then
 * return 0 (managed processes are left running), or -errno. */
int node_daemon_run(struct node_daemon *d);
/* Accepts NULL; returns NULL. */
struct node_daemon *node_daemon_free(struct node_daemon *d);

/* ---- the client ---------------------------------------------------------- */

/* $GHOST_CONTROL when set and not empty, else NODE_DEFAULT_CONTROL. */
const char *node_control_path(void);

struct node_info {
	uint32_t id;
	char address[64];   /* "a.b.c.d:port" or "[v6]:port" */
	char state[16];     /* "self", "up", "down" or "failed" */
	bool have_load;     /* load and nprocs are known (self, or heard from it) */
	double load;        /* /proc/loadavg's first field */
	uint32_t nprocs;    /* managed processes running there */
};

struct node_proc_info {
	pid_t pid;          /* global PID */
	uint32_t node;      /* where it runs */
	uid_t uid;
	char state[16];     /* "running", "sleeping", "stopped", "zombie", "exited", ... */
	uint64_t rss_kib;
	uint64_t start_time; /* seconds since the epoch */
	bool detached;
	int exit_code;      /* for "exited": the status, or -1 when killed */
	int exit_signal;    /* for "exited": the signal that killed it, or 0 */
	char *command;      /* argv joined by spaces */
	pid_t forked_from;  /* a ghost fork copy: the PID it was copied from; else 0 */
};

/* Lists from the daemon at path (NULL: node_control_path()). Free with
 * free() (nodes) and node_proc_info_free_array() (processes). warnings gets
 * one line per node that did not answer (may be NULL). */
int node_client_nodes(const char *path, struct node_info **ret, size_t *ret_n, struct buf *err);
int node_client_ps(const char *path, bool all, struct node_proc_info **ret, size_t *ret_n,
		   struct buf *warnings, struct buf *err);
void node_proc_info_free_array(struct node_proc_info *p, size_t n);
/* Send signal sig to the managed process pid wherever it runs. */
int node_client_kill(const char *path, pid_t pid, int sig, struct buf *err);
/* Write the output log of the detached process pid to out_fd. */
int node_client_logs(const char *path, pid_t pid, int out_fd, struct buf *err);

/* What a migration moved, and how long it took. */
struct node_move_result {
	pid_t pid;           /* the process (ghost fork: the copy) */
	pid_t forked_from;   /* ghost fork: the original */
	uint32_t from, to;
	uint64_t bytes;      /* of the image */
	uint64_t pages;
	uint64_t total_ns;   /* from the request reaching the source to the end */
	uint64_t frozen_ns;  /* from the freeze to the process running on the destination */
	uint64_t export_ns;
	uint64_t import_ns;
};

/* done/total: bytes of page data moved so far. */
typedef void (*node_progress_fn)(uint64_t done, uint64_t total, void *userdata);

/*
 * Move managed process pid to node `to` (ghost migrate). The process keeps
 * its PID; on any failure before it runs on the destination, the original
 * goes on untouched where it was and err says why. progress (may be NULL) is
 * called as the transfer goes. Errors: -ESRCH (no such process), -EPERM (not
 * the caller's), -EHOSTUNREACH (no such node), -EHOSTDOWN, -EALREADY (it
 * runs there already), -EOPNOTSUPP (attached, with one socket as its stdin
 * and stdout), -EBUSY (it is moving already), the transfer's errors. A
 * process attached to a ghost run takes its session along.
 */
int node_client_migrate(const char *path, pid_t pid, uint32_t to, node_progress_fn progress,
			void *userdata, struct node_move_result *ret, struct buf *err);
/* ghost fork: as node_client_migrate(), but the original runs on and a copy
 * with a new PID of node to's range starts on to; ret->pid is the copy's. */
int node_client_fork(const char *path, pid_t pid, uint32_t to, node_progress_fn progress,
		     void *userdata, struct node_move_result *ret, struct buf *err);

/* ---- memory checkpoints --------------------------------------------------
 *
 * A checkpoint is kept in the memory of a node's daemon (its holder) and
 * named by an id "H.N": holder node H, its N-th checkpoint. See
 * docs/ghostd.md for how the image travels.
 */

/* Room for "4294967295.4294967295" and a NUL. */
#define NODE_CKPT_ID_MAX 24

/* "H.N" to an id: -EINVAL unless both are numbers from 1 to 4294967295. */
int node_ckpt_id_parse(const char *s, uint64_t *ret);
/* An id as "H.N" in buf; returns buf. */
const char *node_ckpt_id_format(uint64_t id, char buf[NODE_CKPT_ID_MAX]);

enum node_ckpt_flags {
	NODE_CKPT_STOP = 1 << 0, /* leave the process stopped after the checkpoint */
	NODE_CKPT_KILL = 1 << 1, /* end it once the checkpoint is kept */
};

/* What a checkpoint, a restart or a drop did. */
struct node_ckpt_result {
	uint64_t id;
	pid_t pid;
	uint32_t node;       /* checkpoint: where the process runs; restart: where it runs now */
	uint32_t holder;
	uint64_t bytes;      /* of the image (drop: freed) */
	uint64_t pages;
	uint64_t total_ns;   /* from the request reaching the node that did it to the end */
	uint64_t frozen_ns;  /* checkpoint: how long the export stopped the process */
	uint64_t export_ns;
	uint64_t import_ns;
};

/*
 * Checkpoint the managed process pid, wherever it runs, into the memory of
 * node holder (0: the node where it runs). The process is stopped while its
 * state is read, then runs on (NODE_CKPT_STOP: stays stopped; NODE_CKPT_KILL:
 * ends once the checkpoint is kept). On any failure the process is left as
 * it was and nothing is kept. Errors: -ESRCH, -EPERM (not the caller's),
 * -EHOSTUNREACH (no such node), -EHOSTDOWN, -EBUSY, -EOPNOTSUPP (attached),
 * -ENOSPC (over the holder's checkpoint memory), the transfer's errors.
 */
int node_client_checkpoint(const char *path, pid_t pid, uint32_t holder, unsigned flags,
			   node_progress_fn progress, void *userdata,
			   struct node_ckpt_result *ret, struct buf *err);
/*
 * Restart checkpoint id on node (0: its holder), with its original PID, as a
 * detached managed process. The checkpoint stays kept. Errors: -ENOENT (no
 * such checkpoint), -EPERM, -EHOSTUNREACH, -EHOSTDOWN (the holder or node is
 * down), -EEXIST (the PID still runs, or is taken on node), -EBUSY (being
 * restarted), the transfer's and the import's errors.
 */
int node_client_restore(const char *path, uint64_t id, uint32_t node, node_progress_fn progress,
			void *userdata, struct node_ckpt_result *ret, struct buf *err);
/* Free checkpoint id: ret->bytes freed on ret->holder. Errors as restore. */
int node_client_drop(const char *path, uint64_t id, struct node_ckpt_result *ret,
		     struct buf *err);

struct node_ckpt_info {
	uint64_t id;
	uint32_t holder;
	uint32_t node;       /* where the process ran when checkpointed */
	pid_t pid;
	uid_t uid;
	uint64_t bytes, pages;
	uint64_t created;    /* seconds since the epoch, on the holder's clock */
	char state[16];      /* "kept" or "restoring" */
	char *command;
};

/* One node's checkpoint memory. */
struct node_ckpt_usage {
	uint32_t node;
	uint64_t used, limit; /* bytes */
};

/* The checkpoints kept in the cluster (a user other than root sees only
 * theirs), and each node's checkpoint memory; warnings as node_client_ps().
 * Free with node_ckpt_info_free_array() and free(). */
int node_client_checkpoints(const char *path, struct node_ckpt_info **ret, size_t *ret_n,
			    struct node_ckpt_usage **ret_usage, size_t *ret_n_usage,
			    struct buf *warnings, struct buf *err);
void node_ckpt_info_free_array(struct node_ckpt_info *c, size_t n);

enum node_run_flags {
	NODE_RUN_DETACH = 1 << 0, /* output to a log file on the node; return at once */
	NODE_RUN_NO_TTY = 1 << 1, /* never a pseudo-terminal on a remote node */
};

struct node_run_opts {
	uint32_t node;      /* 0: the daemon's own node */
	unsigned flags;     /* enum node_run_flags */
	char *const *argv;  /* the command, argv[0] searched in the caller's PATH there */
};

/*
 * Run a managed process, with this process's stdio, environment and working
 * directory, and wait for it: its output and input are relayed, signals
 * INT, TERM, HUP, QUIT and WINCH sent to the caller are forwarded (unless
 * the caller ignores them), and a terminal on stdin and stdout is put in
 * raw mode while a remote pseudo-terminal serves it. Returns 0 with the
 * process's PID and node in ret_pid/ret_node and, unless detached, its wait
 * status in ret_status; 1 if the command itself could not be executed
 * there (err says why); -errno if it could not be started or the session
 * broke: -EHOSTDOWN (the node is down, or failed meanwhile), -ECONNRESET
 * (the daemon went away), others. The caller must not handle SIGINT, TERM,
 * HUP, QUIT, WINCH or PIPE itself.
 */
int node_client_run(const char *path, const struct node_run_opts *opts, pid_t *ret_pid,
		    uint32_t *ret_node, int *ret_status, struct buf *err);

/* ---- dstream endpoints: the dstream library's side (dsclient.c) ----------
 *
 * An attached endpoint keeps its control connection open: the daemon sends
 * its events on it (new link sockets, closed peers) and the library hands
 * its links over on it when it suspends. See docs/ghostd.md, "The dstream
 * API".
 */
struct node_ds;

struct node_ds_info {
	uint64_t id;
	uint32_t index;  /* the endpoint */
	uint32_t type;   /* enum ds_type */
	uint32_t n;      /* the stream's endpoints */
};

enum node_ds_event_kind {
	NODE_DS_LINK = 1,   /* fd: the link's next socket: read it after the others, send on it */
	NODE_DS_FEED,       /* fd: bytes the link reads next (receive only) */
	NODE_DS_CLOSED,     /* the peer closed: the link ends after its sockets (lost: after
			       what has come on them) */
	NODE_DS_DESTROYED,  /* the stream was destroyed */
	NODE_DS_SUSPEND_GO, /* after node_ds_suspend_begin(): no event follows */
};

struct node_ds_event {
	enum node_ds_event_kind kind;
	uint32_t peer;
	int fd;             /* LINK, FEED: the caller's now (O_CLOEXEC); else -1 */
	bool lost;          /* CLOSED: the peer was lost with its node */
};

int node_ds_create(const char *path, uint32_t type, uint32_t n, uint64_t *ret_id,
		   struct buf *err);
int node_ds_destroy(const char *path, uint64_t id, struct buf *err);
/* Attach to a free endpoint of stream id, or wake up the endpoint of handle:
 * the endpoint's connection in *ret. */
int node_ds_attach(const char *path, uint64_t id, struct node_ds **ret,
		   struct node_ds_info *ret_info, struct buf *err);
int node_ds_wakeup(const char *path, const char *handle, struct node_ds **ret,
		   struct node_ds_info *ret_info, struct buf *err);
/* The connection's socket, to poll for events (POLLIN). */
int node_ds_fd(const struct node_ds *c);
/* Without blocking: 1 with the next event, 0 if none has come, -errno when
 * the connection is lost or the daemon sent an error (err says which). */
int node_ds_next(struct node_ds *c, struct node_ds_event *ret, struct buf *err);
/* Suspend: ask the daemon to stop events (read them until
 * NODE_DS_SUSPEND_GO), hand each link over (the bytes read and not
 * delivered, and the sockets still to read, in order; any number), then
 * end: the handle in handle. The connection is done after the end. */
int node_ds_suspend_begin(struct node_ds *c, struct buf *err);
int node_ds_hand(struct node_ds *c, uint32_t peer, const void *data, size_t len, const int *fds,
		 size_t n_fds, struct buf *err);
int node_ds_suspend_end(struct node_ds *c, char *handle, size_t size, struct buf *err);
/* Close the connection (the daemon closes an attached endpoint). NULL ok. */
struct node_ds *node_ds_free(struct node_ds *c);

/* The program the original of a migrated process becomes when its parent
 * stays behind: "ghostd --stand-in CONTROL COMM DAEMON-PID" (argv as given
 * to main). Internal to ghostd; returns only on bad arguments. */
int node_standin_main(int argc, char **argv);

#endif

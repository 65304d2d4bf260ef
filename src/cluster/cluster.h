/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cluster: an N-node Ghost cluster on one machine, built from namespaces, and
 * the cluster configuration file every node daemon reads (cluster.conf).
 *
 * A local cluster is one "keeper" process, whose network namespace is the
 * switch (a bridge, br0), and one init process per node, PID 1 of the node's
 * own PID, mount, network, UTS and IPC namespaces. Each node has eth0 with
 * 10.77.0.ID/24, joined to the bridge by a veth pair; nothing is created in
 * the caller's network or mount namespace. The run directory (by default
 * /run/ghost/cluster) holds the state file, cluster.conf and the key. See
 * docs/cluster.md for the whole picture.
 *
 * Calling context: the calls below need root (CAP_SYS_ADMIN, CAP_NET_ADMIN)
 * and a single-threaded caller; they fork. They do not log at levels above
 * debug: on failure they return -errno and, when err is not NULL, put one
 * line saying what failed into it (replacing its contents), for the caller
 * to show.
 */
#ifndef CLUSTER_CLUSTER_H
#define CLUSTER_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/buf.h"

#define CLUSTER_DEFAULT_DIR "/run/ghost/cluster"
/* Environment variable naming another run directory. */
#define CLUSTER_DIR_ENV "GHOST_CLUSTER_DIR"
#define CLUSTER_MAX_NODES 250
#define CLUSTER_DEFAULT_PORT 7700
#define CLUSTER_KEY_SIZE 32
/* Node ID gets CLUSTER_NET_PREFIX "ID" / CLUSTER_NET_PREFIXLEN. */
#define CLUSTER_NET_PREFIX "10.77.0."
#define CLUSTER_NET_PREFIXLEN 24
/* Files in the run directory. */
#define CLUSTER_STATE_FILE "state"
#define CLUSTER_CONFIG_FILE "cluster.conf"
#define CLUSTER_KEY_FILE "key"
#define CLUSTER_LOG_FILE "cluster.log"
/* Each node's daemon keeps its files in the run directory's "nodeID/": */
#define CLUSTER_GHOSTD_SOCKET "ghostd.sock" /* its control socket */
#define CLUSTER_GHOSTD_LOG "ghostd.log"     /* its stdout and stderr */
#define CLUSTER_GHOSTD_LOG_DIR "logs"       /* output of detached processes */
/* Environment variable naming the ghostd executable to start in the nodes. */
#define CLUSTER_GHOSTD_ENV "GHOST_GHOSTD"

/* ---- cluster.conf ---------------------------------------------------------
 *
 * One directive per line; blank lines and lines starting with '#' are
 * ignored; fields are separated by blanks:
 *
 *   node ID ADDRESS PORT    a node: ID 1..4294967295, numeric IPv4 or IPv6
 *                           ADDRESS, TCP PORT 1..65535 (one line per node)
 *   key FILE                the 32-byte cluster key; a relative FILE is taken
 *                           relative to the configuration file's directory
 *   encrypt yes|no          seal every message (default yes) or only
 *                           authenticate it
 *
 * At least one node and exactly one key are required; node ids and
 * ADDRESS:PORT pairs are unique.
 */

struct cluster_config_node {
	uint32_t id;
	char address[46]; /* INET6_ADDRSTRLEN */
	uint16_t port;
};

/* A value type: cluster_config_release() frees what the parser allocated. */
struct cluster_config {
	struct cluster_config_node *nodes; /* in file order */
	size_t n_nodes;
	char *key_file;
	bool encrypt;
};

#define CLUSTER_CONFIG_INIT { NULL, 0, NULL, true }

/* Parse text (len bytes, need not be NUL-terminated) into ret, which must be
 * CLUSTER_CONFIG_INIT or released; on failure ret is left released. Errors:
 * -EINVAL with "line N: ..." in err, -ENOMEM. */
int cluster_config_parse(const char *text, size_t len, struct cluster_config *ret,
			 struct buf *err);
/* Read and parse the file at path; a relative key file becomes relative to
 * path's directory. Errors as above, plus the file's open/read errors. */
int cluster_config_load(const char *path, struct cluster_config *ret, struct buf *err);
/* Append the configuration in the format above to out. */
int cluster_config_format(const struct cluster_config *c, struct buf *out);
void cluster_config_release(struct cluster_config *c);
/* The node with this id, or NULL; lent until c changes. */
const struct cluster_config_node *cluster_config_find(const struct cluster_config *c, uint32_t id);
/* Read the key file: exactly CLUSTER_KEY_SIZE bytes, not readable or
 * writable by group or others. -EINVAL (size), -EPERM (mode), open errors. */
int cluster_key_load(const char *path, uint8_t ret_key[CLUSTER_KEY_SIZE]);

/* ---- the local cluster ------------------------------------------------- */

struct cluster;

/* One node of a local cluster; a value lent by the cluster that holds it. */
struct cluster_node {
	uint32_t id;         /* 1..N */
	char hostname[16];   /* "nodeID" */
	char address[16];    /* CLUSTER_NET_PREFIX "ID" */
	uint16_t port;       /* where the node's daemon listens */
	pid_t pid;           /* the node's init, in the caller's PID namespace */
	uint64_t start_time; /* pid's start time (ticks after boot): tells it from a reused PID */
	bool up;             /* the init was alive at cluster_load() or cluster_up() */
};

struct cluster_up_opts {
	const char *dir;     /* run directory; NULL: cluster_dir_default() */
	unsigned n_nodes;    /* 1..CLUSTER_MAX_NODES */
	bool encrypt;        /* written to cluster.conf */
	unsigned timeout_ms; /* for the nodes to be ready and reach each other; 0: 10000 */
	const char *ghostd;  /* the node daemon; NULL: cluster_find_ghostd() */
};

#define CLUSTER_UP_OPTS_INIT { NULL, 3, true, 0, NULL }

/* $GHOST_CLUSTER_DIR when set and not empty, else CLUSTER_DEFAULT_DIR. */
const char *cluster_dir_default(void);

/*
 * Build a cluster: create the run directory (which must not exist), the key,
 * cluster.conf, the keeper with the switch, and one node per id 1..n_nodes,
 * wait until every node's init is ready and every node reaches every other
 * over TCP, then have every init start the node's ghostd (as its child,
 * with --config, --node, --control and --log-dir in the run directory's
 * nodeID/). Waiting until the daemons have joined is left to the caller. Returns 0 and the loaded cluster in ret (may be NULL);
 * the keeper and the nodes live on after the caller exits. On failure
 * nothing is left: no process, namespace, device, file or directory.
 * Errors: -EEXIST (the run directory exists: a cluster is up, or a dead one
 * was not taken down), -EINVAL (bad options), -EPERM (not root),
 * -ETIMEDOUT, others from the system.
 */
int cluster_up(const struct cluster_up_opts *opts, struct cluster **ret, struct buf *err);

/*
 * The ghostd executable for the nodes, as an absolute path, in this order:
 * $GHOST_GHOSTD (which must then be an executable file); "ghostd" in the
 * directory of the running program (/proc/self/exe); "../ghostd/ghostd"
 * from there (a build tree); "ghostd" in $PATH. -ENOENT when none is found.
 */
int cluster_find_ghostd(char **ret, struct buf *err);

/* "DIR/nodeID/NAME", a file of node id's daemon in the run directory dir;
 * NULL when out of memory. */
char *cluster_node_file(const char *dir, uint32_t id, const char *name);

/* The control socket of node 1's daemon when the cluster in the default run
 * directory (cluster_dir_default()) is running; -ENOENT otherwise. */
int cluster_local_control(char **ret);

/* Load the state of the cluster in dir (NULL: the default) and check which
 * of its processes are alive. -ENOENT when there is no cluster there. */
int cluster_load(const char *dir, struct cluster **ret, struct buf *err);
/* Accepts NULL; returns NULL. */
struct cluster *cluster_free(struct cluster *c);

const char *cluster_get_dir(const struct cluster *c);
/* The keeper process (which holds the switch), and whether it is alive. */
pid_t cluster_keeper_pid(const struct cluster *c);
bool cluster_is_running(const struct cluster *c);
size_t cluster_n_nodes(const struct cluster *c);
/* The i-th node (0 <= i < cluster_n_nodes()), or NULL; lent until c is freed. */
const struct cluster_node *cluster_get_node(const struct cluster *c, size_t i);
/* The node with this id, or NULL. */
const struct cluster_node *cluster_find_node(const struct cluster *c, uint32_t id);

/*
 * Take the cluster in dir (NULL: the default) down: end the keeper and every
 * node (their PID namespaces end with their inits), wait until these
 * processes are gone, remove the run directory and the parent directories
 * cluster_up() created. Also cleans up after a cluster whose processes died.
 * Errors: -ENOENT (no cluster there), -ENOTDIR (dir has no state file: not
 * removed), -ETIMEDOUT (a process would not go away), others.
 */
int cluster_down(const char *dir, struct buf *err);

/*
 * Start argv[0] (searched in PATH) with arguments argv in node id's PID,
 * mount, network, UTS and IPC namespaces, as a child of the caller, with the
 * caller's stdio, environment and working directory (or "/" where that
 * directory does not exist in the node). Its /proc is the node's. It is
 * killed (SIGKILL) if the caller dies. The caller's own namespaces are left
 * as they were. Returns the child's PID in the caller's PID namespace in
 * ret_pid, for waitpid(). Errors: -EHOSTUNREACH (no such node), -EHOSTDOWN
 * (the node is down or cannot be entered), the errno of a failed exec of
 * argv[0] (-ENOENT, -EACCES, -ENOEXEC, ...), others (pipe, fork).
 */
int cluster_node_spawn(const struct cluster *c, uint32_t id, char *const argv[], pid_t *ret_pid,
		       struct buf *err);

#endif

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Inside the cluster module: the state shared by the CLI side (cluster.c),
 * the keeper (keeper.c) and the node init (init.c), the state file, process
 * identity checks and the rtnetlink helper.
 */
#ifndef CLUSTER_CLUSTER_INT_H
#define CLUSTER_CLUSTER_INT_H

#include <netinet/in.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/buf.h"
#include "cluster/cluster.h"

/* Namespaces a node has of its own. */
#define NODE_NS_FLAGS (CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC)
/* Names in the switch namespace and in the nodes. */
#define SWITCH_BRIDGE "br0"
#define NODE_IFNAME "eth0"

struct cluster {
	char *dir;
	pid_t keeper_pid; /* 0 while the keeper has not written the state */
	uint64_t keeper_start;
	bool keeper_alive;
	struct cluster_node *nodes;
	size_t n_nodes;
	char **created; /* directories cluster_up() made above dir, outermost first */
	size_t n_created;
};

/* Set err (if not NULL) to one formatted line and return r (negative). */
int cl_fail(struct buf *err, int r, const char *fmt, ...) _printf_(3, 4);
/* The same, with ": " and the text of r appended. */
int cl_fail_errno(struct buf *err, int r, const char *fmt, ...) _printf_(3, 4);

/* ---- state.c ---- */

/* Read dir's state file into a new cluster (liveness not checked). -ENOENT
 * when dir or its state file does not exist, -EINVAL when it is garbage. */
int cl_state_read(const char *dir, struct cluster **ret, struct buf *err);
/* Record one more directory made above the run directory (copied). */
int cl_state_add_created(struct cluster *c, const char *path);
/* Write the state file of c atomically (a temporary file renamed). */
int cl_state_write(const struct cluster *c);
/* Remove path and everything under it, never following symbolic links
 * and never leaving its file system. */
int cl_rm_rf(const char *path);
/* Write a whole new file (O_EXCL) with this mode. */
int cl_write_new_file(const char *path, const void *data, size_t len, mode_t mode);
/* Close every fd but those in keep (n entries, any order, -1 ignored). */
void cl_close_all_fds_but(const int *keep, size_t n);

enum cl_proc_life {
	CL_PROC_GONE,   /* no such process, or the PID now names another one */
	CL_PROC_ZOMBIE, /* dead, not reaped yet */
	CL_PROC_ALIVE,
};

/* Start time of pid (field 22 of /proc/PID/stat) and its state letter. */
int cl_proc_stat(pid_t pid, uint64_t *ret_start, char *ret_state);
enum cl_proc_life cl_proc_life(pid_t pid, uint64_t start);
/* A pidfd for the process (pid, start), or -ESRCH if it is gone or a zombie. */
int cl_pidfd_open_checked(pid_t pid, uint64_t start);
int cl_pidfd_open(pid_t pid);
int cl_pidfd_signal(int pidfd, int sig);

/* Milliseconds on CLOCK_MONOTONIC. */
uint64_t cl_now_ms(void);

/* ---- keeper.c ---- */

struct cl_keeper_args {
	struct cluster *c;     /* nodes with id, hostname, address, port */
	unsigned timeout_ms;
	const char *fault;     /* GHOST_CLUSTER_FAULT: "init", "net" or "reach" */
	const char *ghostd;    /* the node daemon's executable (absolute) */
	int report_fd;         /* "ok\n" or "error ERRNO MESSAGE\n" goes here */
};

/* Run in a child forked by cluster_up(): become the keeper. Never returns. */
_Noreturn void cl_keeper_main(const struct cl_keeper_args *a);

/* ---- init.c ---- */

/* Run in the clone of a new node: be its PID 1. dir is the run directory,
 * ghostd the daemon to start when the keeper asks, ctl the node's end of the
 * control socket; fault makes it fail on purpose. Never returns. */
_Noreturn void cl_node_init_main(const struct cluster_node *n, const char *dir,
				 const char *ghostd, int ctl, bool fault);

/* ---- netlink.c: rtnetlink requests, each answered by the kernel's ack ---- */

/* A NETLINK_ROUTE socket in the caller's network namespace. */
int cl_nl_open(void);
/* A NETLINK_ROUTE socket in the network namespace nsfd; the caller's
 * namespace is back to back_nsfd afterwards. */
int cl_nl_open_in(int nsfd, int back_nsfd);
int cl_nl_link_index(int nl, const char *name);
int cl_nl_bridge_add(int nl, const char *name);
/* A veth pair: name here, peer_name (with MAC address peer_mac, or a random
 * one if NULL) in the network namespace peer_nsfd. */
int cl_nl_veth_add(int nl, const char *name, const char *peer_name, int peer_nsfd,
		   const uint8_t peer_mac[6]);
/* Set the link's master (0: leave it) and bring it up. */
int cl_nl_link_up(int nl, int ifindex, int master_ifindex);
int cl_nl_addr_add(int nl, int ifindex, struct in_addr addr, unsigned prefixlen);
/* A permanent IPv4 neighbour (ARP) entry. */
int cl_nl_neigh_add(int nl, int ifindex, struct in_addr addr, const uint8_t mac[6]);

#endif

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The keeper: the one long-lived process of a local cluster outside the
 * nodes. Forked by cluster_up(), it detaches (own session, cwd /, stdio to
 * /dev/null and the run directory's log), moves into a network namespace of
 * its own, the switch, and builds the cluster there; then it stays as the
 * parent of every node init and the holder of the switch until SIGTERM.
 *
 *   building --(all ready, all reach all)--> running --(SIGTERM|INT|HUP)--> stopping --> exit 0
 *      |                                        | SIGCHLD: reap, log, the node stays down
 *      +--(any failure, or cluster_up() gone)--> stopping --> remove the run directory --> exit 1
 *
 * Building, in order:
 *   1. unshare(CLONE_NEWNET): the switch; bridge br0 in it, up.
 *   2. per node: a control socketpair, clone3(NEWPID|NEWNS|NEWNET|NEWUTS|NEWIPC,
 *      CLONE_PIDFD); the child runs cl_node_init_main().
 *   3. per node: wait for "ready" on its control socket.
 *   4. per node: veth pair vethID (switch, master br0, up) / eth0 (created
 *      straight in the node's network namespace); inside the node, through a
 *      netlink socket opened there: lo up, CLUSTER_NET_PREFIX "ID"/24 on eth0,
 *      eth0 up.
 *   5. from inside every node, a TCP connection to every other node's
 *      address and port: an accept or a reset proves the path both ways.
 *   6. per node: "ghostd" to its init, which starts the node's daemon and
 *      answers "started PID" (waiting until the daemons have joined is
 *      the caller's part: it speaks their control protocol).
 *   7. the state file, then "ok" to cluster_up().
 * Undo: stopping closes every control socket (each init then stops its node),
 * waits up to KEEPER_STOP_MS for the inits, SIGKILLs the rest through their
 * pidfds and reaps them. Devices go with their namespaces: the veth ends and
 * the bridge disappear with the switch, which is the keeper's own namespace
 * and ends with it. Nothing is ever created in the caller's namespaces.
 *
 * While running, an init may say "ghostd-exit STATUS": the node's daemon
 * ended (it is not restarted); the keeper logs it.
 *
 * Invariants: (1) the keeper is the parent of every node init and reaps it;
 * (2) only the keeper holds the keeper's end of a control socket, so an init
 * sees EOF exactly when the keeper is gone or wants it gone; (3) the keeper
 * holds no fd of the caller's (a pipe to a shell would never see EOF).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOG_PREFIX "keeper"
#include "base/fileio.h"
#include "base/log.h"
#include "cluster/cluster-int.h"
#include "base/banned.h"

#define KEEPER_STOP_MS 3000
#define PROBE_ATTEMPT_MS 250

struct knode {
	struct cluster_node *n;
	int pidfd;
	int ctl;   /* the keeper's end of the control socket; -1 once closed */
	int netns; /* the node's network namespace */
	bool reaped;
};

struct keeper {
	const struct cl_keeper_args *a;
	struct cluster *c;
	struct knode *nodes;
	size_t n_nodes;
	int sfd;
	int switch_ns;
	int nl;
	uint64_t deadline;
	struct buf err;
};

static bool fault_at(const struct keeper *k, const char *step, size_t i)
{
	return k->a->fault && strcmp(k->a->fault, step) == 0 && i + 1 == k->n_nodes;
}

/* A message of node kn's init that is not the one expected: "error ERRNO
 * TEXT" fails with that error, anything else is a protocol error. */
static int init_failed(struct keeper *k, const struct knode *kn, const char *msg)
{
	if (strncmp(msg, "error ", 6) == 0) {
		char *text = NULL;
		long e = strtol(msg + 6, &text, 10);

		if (e <= 0 || e > 4095)
			e = EIO;
		if (text && *text == ' ')
			text++;
		return cl_fail(&k->err, (int)-e, "node %u: %s: %s", kn->n->id, text ? text : "?",
			       strerror((int)e));
	}
	return cl_fail(&k->err, -EPROTO, "node %u: its init said '%s'", kn->n->id, msg);
}

/* What node kn's init said on its control socket: "ready", or "error ERRNO
 * TEXT". */
static int init_said(struct keeper *k, const struct knode *kn, const char *msg)
{
	if (strcmp(msg, "ready") == 0)
		return 0;
	return init_failed(k, kn, msg);
}

static int spawn_node(struct keeper *k, size_t i)
{
	struct knode *kn = &k->nodes[i];
	int sv[2], pidfd = -1;
	char path[64];
	struct clone_args args = {
		.flags = NODE_NS_FLAGS | CLONE_PIDFD,
		.pidfd = (uint64_t)(uintptr_t)&pidfd,
		.exit_signal = SIGCHLD,
	};
	pid_t pid;
	int r;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return cl_fail_errno(&k->err, -errno, "cannot make a control socket");
	pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
	if (pid == 0)
		cl_node_init_main(kn->n, k->c->dir, k->a->ghostd, sv[1], fault_at(k, "init", i));
	r = -errno;
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return cl_fail(&k->err, r, "cannot create node %u: clone3: %s", kn->n->id,
			       strerror(-r));
	}
	kn->ctl = sv[0];
	kn->pidfd = pidfd;
	kn->reaped = false;
	kn->n->pid = pid;
	r = cl_proc_stat(pid, &kn->n->start_time, NULL);
	if (r < 0)
		return cl_fail(&k->err, r, "cannot read the start time of node %u's init: %s",
			       kn->n->id, strerror(-r));
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	kn->netns = open(path, O_RDONLY | O_CLOEXEC);
	if (kn->netns < 0) {
		char msg[256];
		ssize_t n;

		r = -errno;
		/* An init that failed at once is gone, its namespaces with it:
		 * what it said is the reason. */
		n = recv(kn->ctl, msg, sizeof(msg) - 1, MSG_DONTWAIT);
		if (n > 0) {
			msg[n] = '\0';
			r = init_said(k, kn, msg);
			if (r < 0)
				return r;
		}
		return cl_fail(&k->err, r, "cannot open '%s': %s", path, strerror(-r));
	}
	return 0;
}

static int wait_ready(struct keeper *k, size_t i)
{
	struct knode *kn = &k->nodes[i];
	char msg[256];
	ssize_t n;

	for (;;) {
		struct pollfd p = { .fd = kn->ctl, .events = POLLIN };
		uint64_t now = cl_now_ms();
		int r;

		if (now >= k->deadline)
			return cl_fail(&k->err, -ETIMEDOUT,
				       "node %u: its init did not get ready in time", kn->n->id);
		r = poll(&p, 1, (int)(k->deadline - now));
		if (r < 0 && errno != EINTR)
			return cl_fail_errno(&k->err, -errno, "poll");
		if (r > 0)
			break;
	}
	n = recv(kn->ctl, msg, sizeof(msg) - 1, 0);
	if (n < 0)
		return cl_fail_errno(&k->err, -errno, "node %u: cannot hear from its init",
				     kn->n->id);
	msg[n] = '\0';
	if (n == 0)
		return cl_fail(&k->err, -ECHILD, "node %u: its init exited before it was ready",
			       kn->n->id);
	return init_said(k, kn, msg);
}

static void node_mac(uint32_t id, uint8_t mac[6])
{
	/* Locally administered unicast, "gh", then the id. */
	mac[0] = 0x02;
	mac[1] = 'g';
	mac[2] = 'h';
	mac[3] = (uint8_t)(id >> 16);
	mac[4] = (uint8_t)(id >> 8);
	mac[5] = (uint8_t)id;
}

static int wire_node(struct keeper *k, size_t i, int bridge)
{
	struct knode *kn = &k->nodes[i];
	_cleanup_close_ int nn = -1;
	struct in_addr addr;
	uint8_t mac[6];
	char veth[16];
	int r, idx;

	snprintf(veth, sizeof(veth), "veth%u", kn->n->id);
	if (inet_pton(AF_INET, kn->n->address, &addr) != 1)
		return cl_fail(&k->err, -EINVAL, "node %u: bad address '%s'", kn->n->id,
			       kn->n->address);
	node_mac(kn->n->id, mac);
	r = cl_nl_veth_add(k->nl, veth, NODE_IFNAME, kn->netns, mac);
	if (r < 0)
		return cl_fail(&k->err, r, "node %u: cannot create veth pair '%s'/'%s': %s",
			       kn->n->id, veth, NODE_IFNAME, strerror(-r));
	idx = cl_nl_link_index(k->nl, veth);
	r = idx < 0 ? idx : cl_nl_link_up(k->nl, idx, bridge);
	if (r < 0)
		return cl_fail(&k->err, r, "node %u: cannot attach '%s' to the bridge: %s",
			       kn->n->id, veth, strerror(-r));
	if (fault_at(k, "net", i))
		return cl_fail(&k->err, -EIO,
			       "node %u: failure injected by GHOST_CLUSTER_FAULT=net", kn->n->id);

	nn = cl_nl_open_in(kn->netns, k->switch_ns);
	if (nn < 0)
		return cl_fail(&k->err, nn, "node %u: cannot open netlink in the node: %s",
			       kn->n->id, strerror(-nn));
	idx = cl_nl_link_index(nn, "lo");
	r = idx < 0 ? idx : cl_nl_link_up(nn, idx, 0);
	if (r < 0)
		return cl_fail(&k->err, r, "node %u: cannot bring 'lo' up: %s", kn->n->id,
			       strerror(-r));
	idx = cl_nl_link_index(nn, NODE_IFNAME);
	r = idx < 0 ? idx : cl_nl_addr_add(nn, idx, addr, CLUSTER_NET_PREFIXLEN);
	if (r < 0)
		return cl_fail(&k->err, r, "node %u: cannot give %s/%d to '%s': %s", kn->n->id,
			       kn->n->address, CLUSTER_NET_PREFIXLEN, NODE_IFNAME, strerror(-r));
	/* Every other node's MAC address, as permanent neighbour entries. The
	 * kernel's ARP table is one for all network namespaces, the machine's
	 * included, and a full mesh of N nodes would put N*(N-1) entries in it:
	 * past gc_thresh3 (1024 by default: 33 nodes) it overflows, for the
	 * machine too. Permanent entries do not count against that limit, and
	 * the nodes never need to ask. */
	for (size_t j = 0; j < k->n_nodes; j++) {
		const struct cluster_node *peer = k->nodes[j].n;
		struct in_addr peer_addr;

		if (j == i || inet_pton(AF_INET, peer->address, &peer_addr) != 1)
			continue;
		node_mac(peer->id, mac);
		r = cl_nl_neigh_add(nn, idx, peer_addr, mac);
		if (r < 0)
			return cl_fail_errno(&k->err, r,
					     "node %u: cannot add the neighbour entry of %s",
					     kn->n->id, peer->address);
	}
	/* GHOST_CLUSTER_FAULT=reach leaves the last node's eth0 down: unreachable. */
	if (!fault_at(k, "reach", i)) {
		r = cl_nl_link_up(nn, idx, 0);
		if (r < 0)
			return cl_fail(&k->err, r, "node %u: cannot bring '%s' up: %s", kn->n->id,
				       NODE_IFNAME, strerror(-r));
	}
	return 0;
}

/* One round of probes from the current network namespace to every node not
 * yet done[]: all connections started at once, each given PROBE_ATTEMPT_MS.
 * An accept or a reset proves the path both ways; err[] keeps the last
 * failure of the others. */
static void probe_round(const struct keeper *k, size_t from, bool *done, int *err,
			struct pollfd *p)
{
	uint64_t end = MIN(cl_now_ms() + PROBE_ATTEMPT_MS, k->deadline);
	size_t pending = 0;

	for (size_t j = 0; j < k->n_nodes; j++) {
		const struct cluster_node *to = k->nodes[j].n;
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(to->port) };
		int r;

		p[j] = (struct pollfd){ .fd = -1, .events = POLLOUT };
		if (j == from || done[j])
			continue;
		if (inet_pton(AF_INET, to->address, &sa.sin_addr) != 1) {
			err[j] = -EINVAL;
			continue;
		}
		p[j].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (p[j].fd < 0) {
			err[j] = -errno;
			continue;
		}
		r = connect(p[j].fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
		if (r == -EINPROGRESS) {
			pending++;
			continue;
		}
		done[j] = r == 0 || r == -ECONNREFUSED;
		err[j] = r;
		p[j].fd = safe_close(p[j].fd);
	}
	while (pending > 0) {
		uint64_t now = cl_now_ms();
		int n;

		if (now >= end)
			break;
		n = poll(p, k->n_nodes, (int)(end - now));
		if (n <= 0)
			continue;
		for (size_t j = 0; j < k->n_nodes; j++) {
			int e = 0;
			socklen_t len = sizeof(e);

			if (p[j].fd < 0 || !p[j].revents)
				continue;
			if (getsockopt(p[j].fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
				e = errno;
			done[j] = e == 0 || e == ECONNREFUSED;
			err[j] = -e;
			p[j].fd = safe_close(p[j].fd);
			pending--;
		}
	}
	for (size_t j = 0; j < k->n_nodes; j++) {
		if (p[j].fd >= 0) {
			err[j] = -ETIMEDOUT;
			p[j].fd = safe_close(p[j].fd);
		}
	}
}

/* From inside every node, a TCP connection to every other node. */
static int check_reach(struct keeper *k)
{
	_cleanup_free_ bool *done = NEW_ARRAY(bool, k->n_nodes);
	_cleanup_free_ int *err = NEW_ARRAY(int, k->n_nodes);
	_cleanup_free_ struct pollfd *p = NEW_ARRAY(struct pollfd, k->n_nodes);
	int r = 0;

	if (!done || !err || !p)
		return cl_fail(&k->err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < k->n_nodes && r >= 0; i++) {
		const struct cluster_node *from = k->nodes[i].n;
		size_t left;

		if (setns(k->nodes[i].netns, CLONE_NEWNET) < 0)
			return cl_fail_errno(&k->err, -errno, "cannot enter node %u's network",
					     from->id);
		memset(done, 0, k->n_nodes * sizeof(*done));
		for (;;) {
			uint64_t start = cl_now_ms();

			probe_round(k, i, done, err, p);
			left = 0;
			for (size_t j = 0; j < k->n_nodes; j++)
				left += j != i && !done[j];
			if (left == 0 || cl_now_ms() >= k->deadline)
				break;
			/* Failed at once (no route yet?): do not spin. */
			if (cl_now_ms() - start < 20)
				(void)poll(NULL, 0, 20);
		}
		for (size_t j = 0; j < k->n_nodes && left; j++) {
			const struct cluster_node *to = k->nodes[j].n;

			if (j == i || done[j])
				continue;
			r = cl_fail(&k->err, err[j] < 0 ? err[j] : -ETIMEDOUT,
				    "node %u cannot reach node %u at %s port %u: %s", from->id,
				    to->id, to->address, to->port,
				    strerror(err[j] < 0 ? -err[j] : ETIMEDOUT));
			break;
		}
		if (setns(k->switch_ns, CLONE_NEWNET) < 0)
			return cl_fail_errno(&k->err, -errno, "cannot go back to the switch");
	}
	return r;
}

/* Ask every init to start its node's daemon, then wait for every answer. */
static int start_daemons(struct keeper *k)
{
	for (size_t i = 0; i < k->n_nodes; i++)
		if (send(k->nodes[i].ctl, "ghostd", 6, MSG_NOSIGNAL) < 0)
			return cl_fail_errno(&k->err, -errno, "node %u: cannot talk to its init",
					     k->nodes[i].n->id);
	for (size_t i = 0; i < k->n_nodes; i++) {
		struct knode *kn = &k->nodes[i];
		char msg[512];
		ssize_t n;

		for (;;) {
			struct pollfd p = { .fd = kn->ctl, .events = POLLIN };
			uint64_t now = cl_now_ms();
			int r;

			if (now >= k->deadline)
				return cl_fail(&k->err, -ETIMEDOUT,
					       "node %u: its init did not start ghostd in time",
					       kn->n->id);
			r = poll(&p, 1, (int)(k->deadline - now));
			if (r < 0 && errno != EINTR)
				return cl_fail_errno(&k->err, -errno, "poll");
			if (r > 0)
				break;
		}
		n = recv(kn->ctl, msg, sizeof(msg) - 1, 0);
		if (n <= 0)
			return cl_fail(&k->err, n < 0 ? -errno : -ECHILD,
				       "node %u: its init went away while starting ghostd",
				       kn->n->id);
		msg[n] = '\0';
		if (strncmp(msg, "started ", 8) == 0)
			continue;
		return init_failed(k, kn, msg);
	}
	return 0;
}

static int build(struct keeper *k)
{
	int r, bridge;

	if (unshare(CLONE_NEWNET) < 0)
		return cl_fail_errno(&k->err, -errno, "cannot make the switch's network namespace");
	k->switch_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (k->switch_ns < 0)
		return cl_fail_errno(&k->err, -errno, "cannot open the switch's network namespace");
	k->nl = cl_nl_open();
	if (k->nl < 0)
		return cl_fail(&k->err, k->nl, "cannot open a netlink socket: %s",
			       strerror(-k->nl));
	r = cl_nl_bridge_add(k->nl, SWITCH_BRIDGE);
	bridge = r < 0 ? r : cl_nl_link_index(k->nl, SWITCH_BRIDGE);
	r = bridge < 0 ? bridge : cl_nl_link_up(k->nl, bridge, 0);
	if (r < 0)
		return cl_fail(&k->err, r, "cannot make the bridge '%s': %s", SWITCH_BRIDGE,
			       strerror(-r));

	for (size_t i = 0; i < k->n_nodes; i++) {
		r = spawn_node(k, i);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < k->n_nodes; i++) {
		r = wait_ready(k, i);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < k->n_nodes; i++) {
		r = wire_node(k, i, bridge);
		if (r < 0)
			return r;
	}
	r = check_reach(k);
	if (r < 0)
		return r;
	r = start_daemons(k);
	if (r < 0)
		return r;

	k->c->keeper_pid = getpid();
	r = cl_proc_stat(k->c->keeper_pid, &k->c->keeper_start, NULL);
	if (r >= 0)
		r = cl_state_write(k->c);
	if (r < 0)
		return cl_fail(&k->err, r, "cannot write the state file in '%s': %s", k->c->dir,
			       strerror(-r));
	return 0;
}

static struct knode *node_by_pid(struct keeper *k, pid_t pid)
{
	for (size_t i = 0; i < k->n_nodes; i++)
		if (k->nodes[i].n->pid == pid)
			return &k->nodes[i];
	return NULL;
}

static size_t reap(struct keeper *k, bool quiet)
{
	size_t left = 0;
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		struct knode *kn = node_by_pid(k, pid);

		if (!kn)
			continue;
		kn->reaped = true;
		kn->ctl = safe_close(kn->ctl);
		kn->pidfd = safe_close(kn->pidfd);
		if (quiet)
			continue;
		if (WIFSIGNALED(st))
			log_warn("node %u: init (PID %d) killed by signal %d; the node is down",
				 kn->n->id, (int)pid, WTERMSIG(st));
		else
			log_warn("node %u: init (PID %d) exited with status %d; the node is down",
				 kn->n->id, (int)pid, WEXITSTATUS(st));
	}
	for (size_t i = 0; i < k->n_nodes; i++)
		if (k->nodes[i].n->pid > 0 && !k->nodes[i].reaped)
			left++;
	return left;
}

/* Stop every node: EOF on its control socket, then SIGKILL after the grace time. */
static void stop_all(struct keeper *k)
{
	uint64_t end = cl_now_ms() + KEEPER_STOP_MS;

	for (size_t i = 0; i < k->n_nodes; i++)
		k->nodes[i].ctl = safe_close(k->nodes[i].ctl);
	while (reap(k, true) > 0) {
		struct pollfd p = { .fd = k->sfd, .events = POLLIN };
		struct signalfd_siginfo si;
		uint64_t now = cl_now_ms();

		if (now >= end)
			break;
		(void)poll(&p, 1, (int)(end - now));
		while (read(k->sfd, &si, sizeof(si)) == sizeof(si))
			;
	}
	for (size_t i = 0; i < k->n_nodes; i++) {
		struct knode *kn = &k->nodes[i];

		if (kn->n->pid <= 0 || kn->reaped)
			continue;
		log_warn("node %u: init (PID %d) did not stop in time, killing it", kn->n->id,
			 (int)kn->n->pid);
		if (kn->pidfd >= 0)
			(void)cl_pidfd_signal(kn->pidfd, SIGKILL);
		(void)waitpid(kn->n->pid, NULL, 0);
		kn->reaped = true;
	}
}

/* A message from node kn's init while running: log what its daemon did. */
static void hear_init(struct knode *kn)
{
	char msg[256];
	ssize_t n = recv(kn->ctl, msg, sizeof(msg) - 1, MSG_DONTWAIT);
	int st;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* The init is gone; SIGCHLD tells the rest. */
		kn->ctl = safe_close(kn->ctl);
		return;
	}
	msg[n] = '\0';
	if (sscanf(msg, "ghostd-exit %d", &st) != 1)
		log_warn("node %u: its init said '%s', ignoring", kn->n->id, msg);
	else if (WIFSIGNALED(st))
		log_warn("node %u: ghostd killed by signal %d; not restarted", kn->n->id,
			 WTERMSIG(st));
	else
		log_warn("node %u: ghostd exited with status %d; not restarted", kn->n->id,
			 WEXITSTATUS(st));
}

/* Wait for SIGTERM, SIGINT or SIGHUP, reaping nodes that end meanwhile and
 * logging what their inits report. */
static void supervise(struct keeper *k)
{
	_cleanup_free_ struct pollfd *p = NEW_ARRAY(struct pollfd, k->n_nodes + 1);

	for (;;) {
		struct signalfd_siginfo si;
		struct pollfd one = { .fd = k->sfd, .events = POLLIN };
		int r;

		if (p) {
			p[0] = one;
			for (size_t i = 0; i < k->n_nodes; i++)
				p[i + 1] = (struct pollfd){ .fd = k->nodes[i].ctl, .events = POLLIN };
			r = poll(p, k->n_nodes + 1, -1);
		} else {
			r = poll(&one, 1, -1);
		}
		if (r < 0 && errno != EINTR)
			return;
		for (size_t i = 0; p && r > 0 && i < k->n_nodes; i++)
			if (p[i + 1].fd >= 0 && p[i + 1].revents)
				hear_init(&k->nodes[i]);
		while (read(k->sfd, &si, sizeof(si)) == sizeof(si)) {
			if (si.ssi_signo != SIGCHLD) {
				log_info("signal %u: stopping the cluster", si.ssi_signo);
				return;
			}
			(void)reap(k, false);
		}
	}
}

static void report(int fd, const char *line)
{
	(void)write_full(fd, line, strlen(line));
}

static void detach_stdio(const char *dir)
{
	struct buf path = BUF_INIT;
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int log = -1;

	if (buf_printf(&path, "%s/%s", dir, CLUSTER_LOG_FILE) >= 0)
		log = open(path.data, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
	buf_release(&path);
	if (null >= 0) {
		(void)dup2(null, STDIN_FILENO);
		(void)dup2(null, STDOUT_FILENO);
		(void)dup2(log >= 0 ? log : null, STDERR_FILENO);
	}
	safe_close(null);
	safe_close(log);
}

_Noreturn void cl_keeper_main(const struct cl_keeper_args *a)
{
	struct keeper k = {
		.a = a,
		.c = a->c,
		.n_nodes = a->c->n_nodes,
		.switch_ns = -1,
		.nl = -1,
		.err = BUF_INIT,
		.deadline = cl_now_ms() + a->timeout_ms,
	};
	int report_fd = a->report_fd;
	sigset_t mask;
	int r = 0;

	/* Our stdio is about to be replaced: the report pipe must not be in it. */
	if (report_fd <= STDERR_FILENO)
		report_fd = fcntl(report_fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
	(void)setsid();
	(void)chdir("/");
	(void)prctl(PR_SET_NAME, "ghost-cluster");
	(void)signal(SIGPIPE, SIG_IGN);
	log_set_ident("ghost-cluster");
	detach_stdio(a->c->dir);

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		r = cl_fail_errno(&k.err, -errno, "cannot block signals");
	k.sfd = r < 0 ? -1 : signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (r >= 0 && k.sfd < 0)
		r = cl_fail_errno(&k.err, -errno, "cannot make a signalfd");
	{
		int keep[] = { STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO, report_fd, k.sfd };

		cl_close_all_fds_but(keep, ARRAY_SIZE(keep));
	}
	k.nodes = NEW_ARRAY(struct knode, k.n_nodes);
	if (r >= 0 && !k.nodes)
		r = cl_fail(&k.err, -ENOMEM, "out of memory");
	for (size_t i = 0; k.nodes && i < k.n_nodes; i++)
		k.nodes[i] =
			(struct knode){ .n = &a->c->nodes[i], .pidfd = -1, .ctl = -1, .netns = -1 };

	if (r >= 0)
		r = build(&k);
	if (r >= 0 && write_full(report_fd, "ok\n", 3) < 0)
		r = cl_fail(&k.err, -EPIPE,
			    "'ghost cluster up' went away before the cluster was up");
	if (r < 0) {
		struct buf line = BUF_INIT;

		log_err("%s", k.err.data ? k.err.data : "failed");
		if (buf_printf(&line, "error %d %s\n", -r, k.err.data ? k.err.data : "failed") >= 0)
			report(report_fd, line.data);
		buf_release(&line);
		if (k.nodes)
			stop_all(&k);
		/* Leave nothing behind; cluster_up() may do the same, harmlessly. */
		(void)cl_rm_rf(a->c->dir);
		for (size_t i = a->c->n_created; i > 0; i--)
			(void)rmdir(a->c->created[i - 1]);
		_exit(1);
	}
	close(report_fd);
	log_info("cluster of %zu nodes up", k.n_nodes);
	supervise(&k);
	stop_all(&k);
	log_info("cluster stopped");
	_exit(0);
}

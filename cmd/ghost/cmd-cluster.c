/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ghost cluster: argument parsing and output for the local N-node cluster;
 * the work is done by src/cluster. Verbs: up, down, status, exec.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/fileio.h"
#include "cluster/cluster.h"
#include "cmd-cluster.h"
#include "node/node.h"
#include "cli.h"
#include "base/banned.h"

#define DEFAULT_TIMEOUT_MS 10000

const char cmd_cluster_usage[] =
	"Usage: ghost cluster COMMAND [OPTIONS]\n"
	"\n"
	"Run a Ghost cluster of N nodes on this machine, for development, tests and\n"
	"demos. Each node has its own PID, mount, network, UTS and IPC namespaces:\n"
	"its own process tree under an init (PID 1), its own /proc, hostname nodeID\n"
	"and an interface eth0 with address " CLUSTER_NET_PREFIX "ID/24. The nodes are joined by\n"
	"a bridge in a network namespace of its own; none of these addresses or\n"
	"devices exists in the machine's own network namespace. Each node runs its\n"
	"own ghostd, the node daemon; while the cluster is up, 'ghost run', 'ps',\n"
	"'kill', 'nodes' and 'logs' talk to node 1's daemon by default. Needs root.\n"
	"\n"
	"Commands:\n"
	"  up [--nodes N] [--json]       build the cluster, wait until it is ready\n"
	"  down                          take it down and remove every trace of it\n"
	"  status [--json]               show the cluster and which nodes are up\n"
	"  exec NODE [--] CMD [ARGS...]  run CMD inside node NODE\n"
	"\n"
	"Options of every command:\n"
	"      --dir DIR      the cluster's run directory (default: $" CLUSTER_DIR_ENV ",\n"
	"                     else " CLUSTER_DEFAULT_DIR ")\n"
	"  -h, --help         show the help of the command\n"
	"\n"
	"Files in the run directory:\n"
	"  " CLUSTER_CONFIG_FILE "   the cluster configuration: 'node ID ADDRESS PORT' per\n"
	"                 node, 'key FILE', 'encrypt yes|no' (see docs/cluster.md)\n"
	"  " CLUSTER_KEY_FILE "            32 random bytes, the cluster key (mode 0600)\n"
	"  " CLUSTER_STATE_FILE "          the processes of the cluster, for these commands\n"
	"  " CLUSTER_LOG_FILE "    what the cluster's keeper process logged\n"
	"  nodeID/        node ID's daemon: " CLUSTER_GHOSTD_SOCKET " (its control socket),\n"
	"                 " CLUSTER_GHOSTD_LOG " (its output), " CLUSTER_GHOSTD_LOG_DIR "/ (output of detached processes)\n"
	"\n"
	"Exit status: 0 success, 1 failure (one line 'ghost: ...' on standard error),\n"
	"2 usage error; 'exec' exits with the command's status.\n"
	"\n"
	"Example:\n"
	"  ghost cluster up --nodes 3\n"
	"  ghost cluster exec 2 -- hostname          # node2\n"
	"  ghost cluster exec 1 -- ping -c1 " CLUSTER_NET_PREFIX "3\n"
	"  ghost run --node 3 -- hostname            # node3, through node 1's ghostd\n"
	"  ghost cluster down\n";

static const char usage_up[] =
	"Usage: ghost cluster up [--nodes N] [--json] [OPTIONS]\n"
	"\n"
	"Build a cluster of N nodes (ids 1 to N) on this machine and wait until it\n"
	"is ready: every node's init is running, every node reaches every other\n"
	"node over TCP, from inside the nodes, and every node's ghostd sees every\n"
	"node up. Then print the nodes and return; the cluster stays up until\n"
	"'ghost cluster down'.\n"
	"\n"
	"Each node's init starts the node's ghostd as its child, with the cluster's\n"
	"configuration, its node id, and its control socket, log and detached\n"
	"processes' output under the run directory's nodeID/. The ghostd program is\n"
	"$" CLUSTER_GHOSTD_ENV " if set, else 'ghostd' next to this ghost program, else\n"
	"../ghostd/ghostd from there (a build tree), else 'ghostd' in $PATH.\n"
	"\n"
	"Node ID is a process tree under its own init (PID 1 of the node's PID\n"
	"namespace) with its own /proc, hostname nodeID, System V IPC, and network:\n"
	"lo, and eth0 with " CLUSTER_NET_PREFIX "ID/24, a veth pair whose other end is on a\n"
	"bridge in the switch, a network namespace held by the cluster's keeper\n"
	"process ('ghost-cluster'). The file system is the machine's, shared by all\n"
	"nodes; where the machine's mounts are shared (as under systemd), mounts\n"
	"and unmounts made on the machine later reach the nodes too, while mounts\n"
	"made in a node stay in that node.\n"
	"\n"
	"The run directory must not exist: 'up' refuses to start while a cluster is\n"
	"up, or while a dead one has not been taken down. It gets a fresh random\n"
	"key and the cluster configuration (" CLUSTER_CONFIG_FILE "), which lists node ID at\n"
	"address " CLUSTER_NET_PREFIX "ID, port 7700. If any step fails, everything built so far\n"
	"is taken down again.\n"
	"\n"
	"Options:\n"
	"  -n, --nodes N      number of nodes, 1 to 250 (default 3)\n"
	"      --json         print the cluster as one JSON document\n"
	"      --no-encrypt   write 'encrypt no' in the configuration (messages are\n"
	"                     then authenticated but not encrypted)\n"
	"      --timeout SEC  how long the nodes may take to be ready, and then their\n"
	"                     daemons to see each other (default 10 each)\n"
	"      --dir DIR      run directory (default $" CLUSTER_DIR_ENV " or\n"
	"                     " CLUSTER_DEFAULT_DIR ")\n"
	"  -h, --help         show this help\n";

static const char usage_down[] =
	"Usage: ghost cluster down [--dir DIR]\n"
	"\n"
	"Take the cluster down: stop every node (its init sends SIGTERM to the\n"
	"node's ghostd, then to the node's other processes and, when it ends, the\n"
	"kernel kills whatever is left in the node's PID namespace), end the keeper (with it the switch, its bridge\n"
	"and veth pairs), wait until all these processes are gone, and remove the\n"
	"run directory and any parent directory 'up' created. Afterwards nothing of\n"
	"the cluster is left: no process, namespace, mount, device or file.\n"
	"Also cleans up after a cluster whose processes died or an interrupted 'up'.\n"
	"A directory without a cluster state file is never removed.\n"
	"\n"
	"Options:\n"
	"      --dir DIR      run directory (default $" CLUSTER_DIR_ENV " or\n"
	"                     " CLUSTER_DEFAULT_DIR ")\n"
	"  -h, --help         show this help\n";

static const char usage_status[] =
	"Usage: ghost cluster status [--json] [--dir DIR]\n"
	"\n"
	"Show the cluster in the run directory: its keeper process and, for each\n"
	"node, its id, hostname, address, port, the PID of its init (as seen from\n"
	"the machine), whether its ghostd answers on its control socket and how\n"
	"many nodes it sees up, and whether the node is up. Exits 0 when the\n"
	"cluster is running and every node and every daemon is up, 1 otherwise\n"
	"(also when there is no cluster).\n"
	"\n"
	"Options:\n"
	"      --json         print one JSON document (also when there is no cluster);\n"
	"                     per node: id, hostname, address, port, pid, up,\n"
	"                     control, ghostd (true when it answers), nodes_up\n"
	"      --dir DIR      run directory (default $" CLUSTER_DIR_ENV " or\n"
	"                     " CLUSTER_DEFAULT_DIR ")\n"
	"  -h, --help         show this help\n";

static const char usage_exec[] =
	"Usage: ghost cluster exec [--dir DIR] NODE [--] CMD [ARGS...]\n"
	"\n"
	"Run CMD (searched in PATH) with ARGS inside node NODE (its id, or nodeID):\n"
	"in the node's PID, mount, network, UTS and IPC namespaces, so that it gets\n"
	"a PID of the node, sees the node's /proc, hostname and eth0. Standard\n"
	"input, output and error, the environment and the working directory are\n"
	"passed through (the directory falls back to / if the node lacks it).\n"
	"\n"
	"CMD is a child of this command, which waits for it and exits with its\n"
	"status; signals sent to this command (SIGINT, SIGTERM, SIGHUP, SIGQUIT,\n"
	"SIGUSR1, SIGUSR2) are passed on, and CMD is killed if this command dies.\n"
	"Inside the node CMD has no parent (its parent PID reads 0). Processes it\n"
	"starts and leaves running are adopted and reaped by the node's init, and\n"
	"end with the node.\n"
	"\n"
	"Exit status: CMD's; 128+N if it was killed by signal N; 127 if it could\n"
	"not be found or run (126 if not executable); 1 if the node is down or\n"
	"unknown; 2 for a usage error.\n"
	"\n"
	"Options:\n"
	"      --dir DIR      run directory (default $" CLUSTER_DIR_ENV " or\n"
	"                     " CLUSTER_DEFAULT_DIR ")\n"
	"  -h, --help         show this help\n";

enum {
	OPT_DIR = 0x100,
	OPT_JSON,
	OPT_NO_ENCRYPT,
	OPT_TIMEOUT,
};

static int fail_err(const struct buf *err, int r)
{
	return cli_fail("%s", err->len ? err->data : strerror(-r));
}

/* What node n's daemon says: -errno when it does not answer, else the
 * number of nodes it sees up (itself included). */
static int daemon_nodes_up(const char *control)
{
	struct node_info *info = NULL;
	size_t count = 0;
	int r, up = 0;

	if (!control)
		return -ENOMEM;
	r = node_client_nodes(control, &info, &count, NULL);
	if (r < 0)
		return r;
	for (size_t i = 0; i < count; i++)
		up += strcmp(info[i].state, "self") == 0 || strcmp(info[i].state, "up") == 0;
	free(info);
	return up;
}

static int print_json(const struct cluster *c, const char *dir)
{
	struct buf b = BUF_INIT;
	int r;

	r = buf_printf(&b, "{\"dir\":");
	if (r >= 0)
		r = buf_append_json_string(&b, dir, strlen(dir));
	if (r >= 0)
		r = buf_printf(&b, ",\"config\":");
	if (r >= 0) {
		struct buf conf = BUF_INIT;

		r = buf_printf(&conf, "%s/%s", dir, CLUSTER_CONFIG_FILE);
		if (r >= 0)
			r = buf_append_json_string(&b, conf.data, conf.len);
		buf_release(&conf);
	}
	if (r >= 0)
		r = buf_printf(&b, ",\"running\":%s,\"keeper_pid\":%d,\"nodes\":[",
			       cluster_is_running(c) ? "true" : "false",
			       (int)cluster_keeper_pid(c));
	for (size_t i = 0; r >= 0 && i < cluster_n_nodes(c); i++) {
		const struct cluster_node *n = cluster_get_node(c, i);
		_cleanup_free_ char *control = cluster_node_file(dir, n->id, CLUSTER_GHOSTD_SOCKET);
		int up = n->up ? daemon_nodes_up(control) : -EHOSTDOWN;

		if (!control) {
			r = -ENOMEM;
			break;
		}
		r = buf_printf(&b,
			       "%s{\"id\":%u,\"hostname\":\"%s\",\"address\":\"%s\",\"port\":%u,"
			       "\"pid\":%d,\"up\":%s,\"control\":",
			       i ? "," : "", n->id, n->hostname, n->address, n->port, (int)n->pid,
			       n->up ? "true" : "false");
		if (r >= 0)
			r = buf_append_json_string(&b, control, strlen(control));
		if (r >= 0)
			r = buf_printf(&b, ",\"ghostd\":%s,\"nodes_up\":%d}",
				       up >= 0 ? "true" : "false", MAX(up, 0));
	}
	if (r >= 0)
		r = buf_printf(&b, "]}\n");
	if (r >= 0)
		fputs(b.data, stdout);
	buf_release(&b);
	return r < 0 ? cli_fail("out of memory") : 0;
}

/* The table; false when a node or a daemon is not up. */
static bool print_table(const struct cluster *c)
{
	size_t up = 0, n_nodes = cluster_n_nodes(c);
	bool all = cluster_is_running(c);

	for (size_t i = 0; i < n_nodes; i++)
		up += cluster_get_node(c, i)->up;
	printf("cluster in %s: %s, keeper PID %d, %zu of %zu nodes up\n", cluster_get_dir(c),
	       cluster_is_running(c) ? "running" : "NOT RUNNING", (int)cluster_keeper_pid(c), up,
	       n_nodes);
	printf("%-5s %-9s %-15s %-5s %-8s %-11s %s\n", "NODE", "HOSTNAME", "ADDRESS", "PORT",
	       "PID", "GHOSTD", "STATE");
	for (size_t i = 0; i < n_nodes; i++) {
		const struct cluster_node *n = cluster_get_node(c, i);
		_cleanup_free_ char *control =
			cluster_node_file(cluster_get_dir(c), n->id, CLUSTER_GHOSTD_SOCKET);
		int seen = n->up ? daemon_nodes_up(control) : -EHOSTDOWN;
		char daemon[48];

		if (seen >= 0)
			snprintf(daemon, sizeof(daemon), "up(%d/%zu)", seen, n_nodes);
		else
			snprintf(daemon, sizeof(daemon), "down");
		all = all && n->up && seen >= 0;
		printf("%-5u %-9s %-15s %-5u %-8d %-11s %s\n", n->id, n->hostname, n->address,
		       n->port, (int)n->pid, daemon, n->up ? "up" : "down");
	}
	printf("control sockets: %s/nodeID/%s (the ghost commands use node 1's)\n",
	       cluster_get_dir(c), CLUSTER_GHOSTD_SOCKET);
	return all;
}

/* Every node and daemon up (for --json, where the table is not printed). */
static bool all_up(const struct cluster *c)
{
	if (!cluster_is_running(c))
		return false;
	for (size_t i = 0; i < cluster_n_nodes(c); i++) {
		const struct cluster_node *n = cluster_get_node(c, i);
		_cleanup_free_ char *control =
			cluster_node_file(cluster_get_dir(c), n->id, CLUSTER_GHOSTD_SOCKET);

		if (!n->up || daemon_nodes_up(control) < 0)
			return false;
	}
	return true;
}

/* Wait until every node's daemon sees every node up; one line in err if not. */
static int wait_daemons(const struct cluster *c, unsigned timeout_ms, struct buf *err)
{
	size_t n_nodes = cluster_n_nodes(c);
	struct timespec ts;
	uint64_t end;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	end = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + timeout_ms;
	for (size_t i = 0; i < n_nodes; i++) {
		const struct cluster_node *n = cluster_get_node(c, i);
		_cleanup_free_ char *control =
			cluster_node_file(cluster_get_dir(c), n->id, CLUSTER_GHOSTD_SOCKET);
		int seen;

		if (!control)
			return -ENOMEM;
		for (;;) {
			uint64_t now;

			seen = daemon_nodes_up(control);
			if (seen >= 0 && (size_t)seen == n_nodes)
				break;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
			if (now >= end) {
				buf_reset(err);
				if (seen < 0)
					(void)buf_printf(err,
							 "node %u: ghostd does not answer on '%s' "
							 "(see %s/node%u/%s)",
							 n->id, control, cluster_get_dir(c), n->id,
							 CLUSTER_GHOSTD_LOG);
				else
					(void)buf_printf(err,
							 "node %u: ghostd sees %d of %zu nodes up "
							 "after the timeout (see %s/node%u/%s)",
							 n->id, seen, n_nodes, cluster_get_dir(c),
							 n->id, CLUSTER_GHOSTD_LOG);
				return -ETIMEDOUT;
			}
			(void)poll(NULL, 0, 50);
		}
	}
	return 0;
}

static int do_up(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "nodes", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "no-encrypt", no_argument, NULL, OPT_NO_ENCRYPT },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "dir", required_argument, NULL, OPT_DIR },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct cluster_up_opts o = CLUSTER_UP_OPTS_INIT;
	struct cluster *c = NULL;
	struct buf err = BUF_INIT;
	bool json = false;
	int ch, r;

	while ((ch = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
		uint64_t v;

		switch (ch) {
		case 'n':
			if (parse_u64(optarg, 10, &v) < 0 || v < 1 || v > CLUSTER_MAX_NODES)
				return cli_usage_error(usage_up, "--nodes wants 1 to %d, not '%s'",
						   CLUSTER_MAX_NODES, optarg);
			o.n_nodes = (unsigned)v;
			break;
		case OPT_JSON:
			json = true;
			break;
		case OPT_NO_ENCRYPT:
			o.encrypt = false;
			break;
		case OPT_TIMEOUT:
			if (parse_u64(optarg, 10, &v) < 0 || v < 1 || v > 600)
				return cli_usage_error(usage_up,
						   "--timeout wants 1 to 600 seconds, not '%s'",
						   optarg);
			o.timeout_ms = (unsigned)v * 1000;
			break;
		case OPT_DIR:
			o.dir = optarg;
			break;
		case 'h':
			fputs(usage_up, stdout);
			return 0;
		default:
			fputs(usage_up, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage_error(usage_up, "unexpected argument '%s'", argv[optind]);
	r = cluster_up(&o, &c, &err);
	if (r >= 0) {
		r = wait_daemons(c, o.timeout_ms ? o.timeout_ms : DEFAULT_TIMEOUT_MS, &err);
		if (r < 0) {
			/* Leave nothing behind, as a failed cluster_up() does. */
			(void)cluster_down(cluster_get_dir(c), NULL);
			c = cluster_free(c);
		}
	}
	if (r < 0) {
		r = fail_err(&err, r);
		buf_release(&err);
		return r;
	}
	buf_release(&err);
	if (json)
		r = print_json(c, cluster_get_dir(c));
	else
		(void)print_table(c);
	cluster_free(c);
	return r;
}

static int do_down(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, OPT_DIR },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct buf err = BUF_INIT;
	const char *dir = NULL;
	int ch, r;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_DIR:
			dir = optarg;
			break;
		case 'h':
			fputs(usage_down, stdout);
			return 0;
		default:
			fputs(usage_down, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage_error(usage_down, "unexpected argument '%s'", argv[optind]);
	r = cluster_down(dir, &err);
	if (r < 0)
		r = fail_err(&err, r);
	buf_release(&err);
	return r;
}

static int do_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "dir", required_argument, NULL, OPT_DIR },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct cluster *c = NULL;
	struct buf err = BUF_INIT;
	const char *dir = NULL;
	bool json = false;
	int ch, r;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_JSON:
			json = true;
			break;
		case OPT_DIR:
			dir = optarg;
			break;
		case 'h':
			fputs(usage_status, stdout);
			return 0;
		default:
			fputs(usage_status, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage_error(usage_status, "unexpected argument '%s'", argv[optind]);
	r = cluster_load(dir, &c, &err);
	if (r == -ENOENT && json) {
		struct buf b = BUF_INIT;
		const char *d = dir ? dir : cluster_dir_default();

		if (buf_printf(&b, "{\"dir\":") >= 0 &&
		    buf_append_json_string(&b, d, strlen(d)) >= 0 &&
		    buf_printf(&b, ",\"running\":false,\"nodes\":[]}\n") >= 0)
			fputs(b.data, stdout);
		buf_release(&b);
		buf_release(&err);
		return EXIT_FAILURE;
	}
	if (r < 0) {
		r = fail_err(&err, r);
		buf_release(&err);
		return r;
	}
	buf_release(&err);
	if (json) {
		r = print_json(c, cluster_get_dir(c));
		if (r == 0 && !all_up(c))
			r = EXIT_FAILURE;
	} else if (!print_table(c)) {
		r = EXIT_FAILURE;
	}
	cluster_free(c);
	return r;
}

static pid_t forward_to;

/* Pass on what was sent to us alone; a signal from the terminal (si_code
 * SI_KERNEL) went to the whole foreground process group, the command too. */
static void forward_signal(int sig, siginfo_t *si, void *unused)
{
	(void)unused;
	if (forward_to > 0 && si->si_code <= 0)
		kill(forward_to, sig);
}

static int parse_node_id(const char *s, uint32_t *ret)
{
	uint64_t v;

	if (strncmp(s, "node", 4) == 0)
		s += 4;
	if (parse_u64(s, 10, &v) < 0 || v < 1 || v > UINT32_MAX)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

static int do_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, OPT_DIR },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
	struct sigaction sa = { .sa_sigaction = forward_signal,
				.sa_flags = SA_SIGINFO | SA_RESTART };
	struct cluster *c = NULL;
	struct buf err = BUF_INIT;
	const char *dir = NULL;
	uint32_t id;
	pid_t pid = 0;
	int ch, r, st;

	while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_DIR:
			dir = optarg;
			break;
		case 'h':
			fputs(usage_exec, stdout);
			return 0;
		default:
			fputs(usage_exec, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage_error(usage_exec, "exec needs a node and a command");
	if (parse_node_id(argv[optind], &id) < 0)
		return cli_usage_error(usage_exec, "'%s' is not a node (an id like 2, or node2)",
				   argv[optind]);
	optind++;
	if (optind < argc && strcmp(argv[optind], "--") == 0)
		optind++;
	if (optind >= argc)
		return cli_usage_error(usage_exec, "exec needs a command to run in node %u", id);

	r = cluster_load(dir, &c, &err);
	if (r < 0) {
		r = fail_err(&err, r);
		buf_release(&err);
		return r;
	}
	r = cluster_node_spawn(c, id, argv + optind, &pid, &err);
	cluster_free(c);
	if (r < 0) {
		fail_err(&err, r);
		buf_release(&err);
		/* As a shell: 127 not found, 126 found but not runnable. */
		if (r == -ENOENT)
			return 127;
		if (r == -EACCES || r == -ENOEXEC || r == -EISDIR || r == -EPERM)
			return 126;
		return EXIT_FAILURE;
	}
	buf_release(&err);

	forward_to = pid;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return cli_fail("cannot wait for '%s' in node %u: %s", argv[optind], id,
				    strerror(errno));
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return EXIT_FAILURE;
}

int cmd_cluster(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int argc, char **argv);
	} verbs[] = {
		{ "up", do_up },
		{ "down", do_down },
		{ "status", do_status },
		{ "exec", do_exec },
	};
	const char *verb;

	if (argc < 2) {
		fputs(cmd_cluster_usage, stderr);
		return EXIT_USAGE;
	}
	verb = argv[1];
	if (strcmp(verb, "-h") == 0 || strcmp(verb, "--help") == 0 || strcmp(verb, "help") == 0) {
		fputs(cmd_cluster_usage, stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (strcmp(verb, verbs[i].name) == 0) {
			/* The verb is argv[0] of its own option parsing. */
			optind = 0;
			return verbs[i].fn(argc - 1, argv + 1);
		}
	}
	return cli_usage_error(cmd_cluster_usage, "unknown cluster command '%s'", verb);
}

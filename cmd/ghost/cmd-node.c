/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ghost run, ps, kill, nodes, logs: argument parsing and output for the
 * verbs served by the node daemon (src/node does the talking). Tables for
 * people, --json for scripts.
 */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/fileio.h"
#include "cluster/cluster.h"
#include "cmd-node.h"
#include "node/node.h"
#include "cli.h"
#include "base/banned.h"

#define EXIT_NOT_RUN 127

/* Where the verbs find ghostd, at the end of each help text. */
#define CONTROL_HELP \
	"\n" \
	"Environment: GHOST_CONTROL names the ghostd control socket. Without it,\n" \
	"ghost uses node 1's daemon of the local cluster ('ghost cluster up') when\n" \
	"one is running in $GHOST_CLUSTER_DIR (default " CLUSTER_DEFAULT_DIR "),\n" \
	"else " NODE_DEFAULT_CONTROL ".\n"

const char cmd_run_usage[] =
	"Usage: ghost run [--node N] [-d] [-T] [--] COMMAND [ARGS...]\n"
	"\n"
	"Start COMMAND as a managed process of the cluster, on node N (by default\n"
	"the node of the ghostd that ghost talks to), with a PID from that node's\n"
	"range that is unique in the whole cluster. The process runs with the\n"
	"caller's user, groups, environment and working directory (\"/\" where\n"
	"that directory does not exist).\n"
	"\n"
	"Like ssh or srun, ghost run wires the process's standard input, output and\n"
	"error to its own and waits for it. On the local node the process gets\n"
	"ghost's own file descriptors; on another node the bytes are relayed,\n"
	"flow-controlled, and when ghost's standard input and output are terminals\n"
	"the process gets a pseudo-terminal there (the local terminal is in raw\n"
	"mode meanwhile and window size changes follow). SIGINT, SIGTERM, SIGHUP,\n"
	"SIGQUIT and SIGWINCH sent to ghost run are forwarded to the process's\n"
	"process group. If ghost run goes away first, the process gets SIGHUP.\n"
	"All of this holds when the process migrates ('ghost migrate'): a process\n"
	"that had ghost's own descriptors is relayed from then on (through a\n"
	"pseudo-terminal if it had ghost's terminal).\n"
	"\n"
	"Options:\n"
	"  -n, --node N      run on node N\n"
	"  -d, --detach      do not wait: print the PID and return; the output goes\n"
	"                    to a log file on the node (see 'ghost logs'), stdin is\n"
	"                    /dev/null\n"
	"  -T, --no-tty      never give a remote process a pseudo-terminal\n"
	"  -h, --help        show this help\n"
	"\n"
	"Exit status: the process's own; 128+N if it was killed by signal N; 127 if\n"
	"COMMAND could not be executed; 1 if it could not be started or the node\n"
	"failed while it ran; 2 on a usage error; 0 after -d.\n"
	CONTROL_HELP;

const char cmd_ps_usage[] =
	"Usage: ghost ps [-a] [--json]\n"
	"\n"
	"List the managed processes of the whole cluster, asking every node that is\n"
	"up: global PID, the node it runs on, user, state, resident memory (KiB),\n"
	"start time and command. Nodes that are down or do not answer are named on\n"
	"standard error; the list of the others is still printed.\n"
	"\n"
	"Options:\n"
	"  -a, --all         also list detached processes that have exited (their\n"
	"                    state is \"exited\"; their logs are kept)\n"
	"      --json        print a JSON array of objects with the keys pid, node,\n"
	"                    uid, user, state, rss_kib, start_time, detached,\n"
	"                    command, exit_code or exit_signal once exited, and\n"
	"                    forked_from for a copy made by 'ghost fork'\n"
	"  -h, --help        show this help\n"
	CONTROL_HELP;

const char cmd_kill_usage[] =
	"Usage: ghost kill [-SIGNAL | -s SIGNAL] PID...\n"
	"\n"
	"Send a signal (default SIGTERM) to managed processes wherever they run in\n"
	"the cluster. A PID's range names the node it was born on, which knows\n"
	"where the process runs now. SIGNAL is a name (TERM, SIGTERM) or a number;\n"
	"0 only checks that the process exists and may be signalled.\n"
	"\n"
	"root may signal any managed process, other users only their own.\n"
	"\n"
	"Options:\n"
	"  -s, --signal SIGNAL  the signal to send\n"
	"  -h, --help           show this help\n"
	"\n"
	"Exit status: 0 if every process was signalled, 1 otherwise (one line per\n"
	"failure), 2 on a usage error.\n"
	CONTROL_HELP;

const char cmd_nodes_usage[] =
	"Usage: ghost nodes [--json]\n"
	"\n"
	"List the nodes of the cluster as the local ghostd sees them: id, address,\n"
	"state, load (the 1-minute load average) and the number of managed\n"
	"processes running there. The state is \"self\" for the local node, \"up\",\n"
	"\"down\" (never seen, or left cleanly) or \"failed\" (silent for longer than\n"
	"the configured timeout). Load and processes are \"-\" (null in JSON) for\n"
	"nodes that are not up.\n"
	"\n"
	"Options:\n"
	"      --json        print a JSON array of objects with the keys id,\n"
	"                    address, state, load and processes\n"
	"  -h, --help        show this help\n"
	CONTROL_HELP;

const char cmd_logs_usage[] =
	"Usage: ghost logs PID\n"
	"\n"
	"Print the output (standard output and error, interleaved) of the process\n"
	"PID started with 'ghost run -d', from the node that holds its log file,\n"
	"whether the process still runs or has exited. Users may read only the\n"
	"logs of their own processes, root all of them.\n"
	"\n"
	"Options:\n"
	"  -h, --help        show this help\n"
	CONTROL_HELP;

const char cmd_migrate_usage[] =
	"Usage: ghost migrate [--json] PID NODE\n"
	"\n"
	"Move the managed process PID, wherever it runs, to node NODE. The daemon\n"
	"of the node where it runs exports it straight into a direct connection to\n"
	"the daemon of NODE, which imports it while the bytes arrive: no image file\n"
	"is written on either side, and no other node carries the data. The\n"
	"process keeps its PID, its open files (reopened by path at the same\n"
	"offsets: the nodes must share their filesystem), its memory, registers,\n"
	"signal handlers and timers; a signal sent to it meanwhile is delivered on\n"
	"NODE. The original is ended only once NODE holds a complete copy; if\n"
	"anything fails before that (NODE or its daemon fails, the connection\n"
	"breaks, the import is refused), the original goes on where it was and\n"
	"ghost migrate says why.\n"
	"\n"
	"On success it prints what moved and how long the process was frozen (from\n"
	"the start of the export to the moment it runs on NODE). A progress line is\n"
	"shown on a terminal for large processes.\n"
	"\n"
	"A process attached to a 'ghost run' stays attached: its standard input,\n"
	"output and error go on to and from that ghost run (output written before\n"
	"the move first, input it had not read yet goes along; a terminal becomes\n"
	"a pseudo-terminal of the same settings and size on NODE), signals and\n"
	"window size changes follow it, and ghost run returns its exit status. A\n"
	"detached one keeps its log. Root may move any managed process, other\n"
	"users only their own.\n"
	"\n"
	"Options:\n"
	"      --json        print one JSON object with the keys pid, from, to,\n"
	"                    image_bytes, pages, total_ms, frozen_ms, export_ms,\n"
	"                    import_ms\n"
	"  -h, --help        show this help\n"
	"\n"
	"Exit status: 0 when the process runs on NODE; 1 if it did not move (it\n"
	"still runs where it was, unless it exited meanwhile); 2 on a usage error.\n"
	CONTROL_HELP;

const char cmd_fork_usage[] =
	"Usage: ghost fork [--json] PID NODE\n"
	"\n"
	"Duplicate the managed process PID onto node NODE (a remote fork): the\n"
	"original runs on where it is, and a copy starts on NODE from the same\n"
	"instant, with its own new PID from NODE's range; 'ghost ps' shows the\n"
	"copy's origin. The copy is made as 'ghost migrate' moves a process: the\n"
	"original is frozen only while its state is read, the bytes go directly to\n"
	"NODE's daemon, and nothing is written to disk. The copy's open files are\n"
	"reopened by path at the same offsets (with O_APPEND, both append to the\n"
	"same file); NODE may be the node the original runs on. Its pipes and\n"
	"sockets shared with other managed processes come as after fork(): shared\n"
	"on the same node; on another node a pipe's write end makes the copy one\n"
	"more writer of the pipe, and a pipe's read end or a socket, which two\n"
	"nodes cannot share, is refused.\n"
	"\n"
	"A copy of a process attached to a 'ghost run' runs detached: its stdin\n"
	"is /dev/null, its output goes to a log of its own on NODE ('ghost logs').\n"
	"\n"
	"Options:\n"
	"      --json        print one JSON object with the keys pid (the copy's),\n"
	"                    forked_from, from, to, image_bytes, pages, total_ms,\n"
	"                    frozen_ms (the original's), export_ms, import_ms\n"
	"  -h, --help        show this help\n"
	"\n"
	"Exit status: 0 when the copy runs; 1 if there is no copy (the original is\n"
	"not affected); 2 on a usage error.\n"
	CONTROL_HELP;

/* The daemon's control socket, for the node_client_*() calls: NULL (that is
 * $GHOST_CONTROL, else NODE_DEFAULT_CONTROL) unless $GHOST_CONTROL is unset
 * and a local cluster runs, whose node 1's socket is then returned. */
static char *control_path(void)
{
	const char *env = getenv(NODE_CONTROL_ENV);
	char *path = NULL;

	if (env && *env)
		return NULL;
	return cluster_local_control(&path) >= 0 ? path : NULL;
}

char *cmd_control_path(void)
{
	return control_path();
}

/* For the commands without options but --help (and --json). */
static int simple_opts(int argc, char **argv, const char *usage, bool *json, bool *all)
{
	enum { OPT_JSON = 0x100 };
	static const struct option opts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "all", no_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	int c;

	while ((c = getopt_long(argc, argv, all ? "ah" : "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_JSON:
			if (!json)
				return cli_usage_error(usage, "%s has no --json", argv[0]);
			*json = true;
			break;
		case 'a':
			if (!all)
				return cli_usage_error(usage, "%s has no --all", argv[0]);
			*all = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return -1;
		default:
			fputs(usage, stderr);
			return EXIT_USAGE;
		}
	}
	return 0;
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "node", required_argument, NULL, 'n' },
		{ "detach", no_argument, NULL, 'd' },
		{ "no-tty", no_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct node_run_opts o = { 0 };
	_cleanup_free_ char *control = NULL;
	struct buf err = BUF_INIT;
	uint32_t node = 0;
	int c, r, status = 0;
	pid_t pid;
	uint64_t v;

	while ((c = getopt_long(argc, argv, "+n:dTh", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (parse_u64(optarg, 10, &v) < 0 || v == 0 || v > UINT32_MAX)
				return cli_usage_error(cmd_run_usage, "bad node id '%s'", optarg);
			o.node = (uint32_t)v;
			break;
		case 'd':
			o.flags |= NODE_RUN_DETACH;
			break;
		case 'T':
			o.flags |= NODE_RUN_NO_TTY;
			break;
		case 'h':
			fputs(cmd_run_usage, stdout);
			return 0;
		default:
			fputs(cmd_run_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage_error(cmd_run_usage, "run needs a command");
	o.argv = argv + optind;
	fflush(stdout);
	control = control_path();
	r = node_client_run(control, &o, &pid, &node, &status, &err);
	if (r != 0) {
		cli_fail("%s", err.data ? err.data : "cannot run the command");
		buf_release(&err);
		return r > 0 ? EXIT_NOT_RUN : EXIT_FAILURE;
	}
	buf_release(&err);
	if (o.flags & NODE_RUN_DETACH) {
		printf("%d\n", (int)pid);
		return fflush(stdout) == 0 ? 0 : EXIT_FAILURE;
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

static int cmp_proc(const void *a, const void *b)
{
	const struct node_proc_info *x = a, *y = b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

static void user_name(uid_t uid, char *buf, size_t size)
{
	struct passwd *pw = getpwuid(uid);

	if (pw && pw->pw_name)
		snprintf(buf, size, "%s", pw->pw_name);
	else
		snprintf(buf, size, "%u", (unsigned)uid);
}

static void start_text(uint64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t, now = time(NULL);
	struct tm tm;

	if (!t || !localtime_r(&tt, &tm)) {
		snprintf(buf, size, "-");
		return;
	}
	if (now - tt < 24 * 3600 && now >= tt)
		strftime(buf, size, "%H:%M:%S", &tm);
	else
		strftime(buf, size, "%b%d", &tm);
}

static int print_json_procs(const struct node_proc_info *p, size_t n)
{
	struct buf b = BUF_INIT;
	int r = buf_printf(&b, "[");

	for (size_t i = 0; i < n && r >= 0; i++) {
		char user[64];

		user_name(p[i].uid, user, sizeof(user));
		r = buf_printf(&b, "%s\n  {\"pid\": %d, \"node\": %u, \"uid\": %u, \"user\": ",
			       i ? "," : "", (int)p[i].pid, p[i].node, (unsigned)p[i].uid);
		if (r >= 0)
			r = buf_append_json_string(&b, user, strlen(user));
		if (r >= 0)
			r = buf_printf(&b, ", \"state\": ");
		if (r >= 0)
			r = buf_append_json_string(&b, p[i].state, strlen(p[i].state));
		if (r >= 0)
			r = buf_printf(&b, ", \"rss_kib\": %llu, \"start_time\": %llu, "
				       "\"detached\": %s, \"command\": ",
				       (unsigned long long)p[i].rss_kib,
				       (unsigned long long)p[i].start_time,
				       p[i].detached ? "true" : "false");
		if (r >= 0)
			r = buf_append_json_string(&b, p[i].command, strlen(p[i].command));
		if (r >= 0 && strcmp(p[i].state, "exited") == 0) {
			if (p[i].exit_signal)
				r = buf_printf(&b, ", \"exit_signal\": %d", p[i].exit_signal);
			else
				r = buf_printf(&b, ", \"exit_code\": %d", p[i].exit_code);
		}
		if (r >= 0 && p[i].forked_from)
			r = buf_printf(&b, ", \"forked_from\": %d", (int)p[i].forked_from);
		if (r >= 0)
			r = buf_printf(&b, "}");
	}
	if (r >= 0)
		r = buf_printf(&b, "%s]\n", n ? "\n" : "");
	if (r >= 0)
		r = write_full(STDOUT_FILENO, b.data, b.len);
	buf_release(&b);
	return r;
}

int cmd_ps(int argc, char **argv)
{
	struct buf err = BUF_INIT, warnings = BUF_INIT;
	_cleanup_free_ char *control = NULL;
	struct node_proc_info *p = NULL;
	bool json = false, all = false;
	size_t n = 0;
	int r;

	r = simple_opts(argc, argv, cmd_ps_usage, &json, &all);
	if (r)
		return r < 0 ? 0 : r;
	if (optind != argc)
		return cli_usage_error(cmd_ps_usage, "ps takes no arguments");
	control = control_path();
	r = node_client_ps(control, all, &p, &n, &warnings, &err);
	if (r < 0) {
		cli_fail("%s", err.data ? err.data : "cannot list processes");
		buf_release(&err);
		buf_release(&warnings);
		return EXIT_FAILURE;
	}
	for (char *line = warnings.data, *nl; line && *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (!nl)
			break;
		fprintf(stderr, "ghost: warning: %.*s\n", (int)(nl - line), line);
	}
	if (n > 1)
		qsort(p, n, sizeof(*p), cmp_proc);
	if (json) {
		r = print_json_procs(p, n);
	} else {
		printf("%-8s %-5s %-10s %-10s %9s %-8s %s\n", "PID", "NODE", "USER", "STATE",
		       "RSS(KiB)", "START", "COMMAND");
		for (size_t i = 0; i < n; i++) {
			char user[64], start[32], state[32];

			user_name(p[i].uid, user, sizeof(user));
			start_text(p[i].start_time, start, sizeof(start));
			if (strcmp(p[i].state, "exited") == 0 && p[i].exit_signal)
				snprintf(state, sizeof(state), "killed(%d)", p[i].exit_signal);
			else if (strcmp(p[i].state, "exited") == 0)
				snprintf(state, sizeof(state), "exited(%d)", p[i].exit_code);
			else
				snprintf(state, sizeof(state), "%s", p[i].state);
			printf("%-8d %-5u %-10s %-10s %9llu %-8s %s", (int)p[i].pid, p[i].node,
			       user, state, (unsigned long long)p[i].rss_kib, start,
			       p[i].command);
			if (p[i].forked_from)
				printf(" (fork of %d)", (int)p[i].forked_from);
			putchar('\n');
		}
		r = fflush(stdout) == 0 ? 0 : -EIO;
	}
	node_proc_info_free_array(p, n);
	buf_release(&err);
	buf_release(&warnings);
	if (r < 0)
		return cli_fail("cannot write the list: %s", strerror(-r));
	return 0;
}

static int parse_signal(const char *s, int *ret)
{
	int v;

	if (parse_int(s, &v) >= 0) {
		if (v < 0 || v >= NSIG)
			return -EINVAL;
		*ret = v;
		return 0;
	}
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	for (int i = 1; i < NSIG; i++) {
		const char *name = sigabbrev_np(i);

		if (name && strcasecmp(name, s) == 0) {
			*ret = i;
			return 0;
		}
	}
	return -EINVAL;
}

int cmd_kill(int argc, char **argv)
{
	_cleanup_free_ char *control = NULL;
	struct buf err = BUF_INIT;
	int sig = SIGTERM, i, status = 0;
	bool have_sig = false;

	/* Not getopt: "-9" and "-TERM" are signals, not options. */
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *spec = NULL;

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' || a[1] == '\0')
			break;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(cmd_kill_usage, stdout);
			return 0;
		}
		if (strcmp(a, "-s") == 0 || strcmp(a, "--signal") == 0) {
			if (++i == argc)
				return cli_usage_error(cmd_kill_usage, "%s needs a signal", a);
			spec = argv[i];
		} else if (strncmp(a, "--signal=", 9) == 0) {
			spec = a + 9;
		} else if (a[1] == '-') {
			return cli_usage_error(cmd_kill_usage, "unknown option '%s'", a);
		} else {
			spec = a + 1;
		}
		if (have_sig)
			return cli_usage_error(cmd_kill_usage, "more than one signal given");
		if (parse_signal(spec, &sig) < 0)
			return cli_usage_error(cmd_kill_usage, "unknown signal '%s'", spec);
		have_sig = true;
	}
	if (i >= argc)
		return cli_usage_error(cmd_kill_usage, "kill needs a PID");
	control = control_path();
	for (; i < argc; i++) {
		pid_t pid;
		int r;

		if (parse_pid(argv[i], &pid) < 0) {
			status = cli_usage_error(cmd_kill_usage, "'%s' is not a PID", argv[i]);
			break;
		}
		r = node_client_kill(control, pid, sig, &err);
		if (r < 0)
			status = cli_fail("%s", err.data ? err.data : strerror(-r));
	}
	buf_release(&err);
	return status;
}

int cmd_nodes(int argc, char **argv)
{
	struct buf err = BUF_INIT, out = BUF_INIT;
	_cleanup_free_ char *control = NULL;
	struct node_info *n = NULL;
	size_t count = 0;
	bool json = false;
	int r;

	r = simple_opts(argc, argv, cmd_nodes_usage, &json, NULL);
	if (r)
		return r < 0 ? 0 : r;
	if (optind != argc)
		return cli_usage_error(cmd_nodes_usage, "nodes takes no arguments");
	control = control_path();
	r = node_client_nodes(control, &n, &count, &err);
	if (r < 0) {
		cli_fail("%s", err.data ? err.data : "cannot list nodes");
		buf_release(&err);
		return EXIT_FAILURE;
	}
	if (json) {
		r = buf_printf(&out, "[");
		for (size_t i = 0; i < count && r >= 0; i++) {
			r = buf_printf(&out, "%s\n  {\"id\": %u, \"address\": ", i ? "," : "",
				       n[i].id);
			if (r >= 0)
				r = buf_append_json_string(&out, n[i].address,
							   strlen(n[i].address));
			if (r >= 0)
				r = buf_printf(&out, ", \"state\": ");
			if (r >= 0)
				r = buf_append_json_string(&out, n[i].state, strlen(n[i].state));
			if (r >= 0 && n[i].have_load)
				r = buf_printf(&out, ", \"load\": %.2f, \"processes\": %u}",
					       n[i].load, n[i].nprocs);
			else if (r >= 0)
				r = buf_printf(&out, ", \"load\": null, \"processes\": null}");
		}
		if (r >= 0)
			r = buf_printf(&out, "%s]\n", count ? "\n" : "");
	} else {
		r = buf_printf(&out, "%-5s %-40s %-7s %6s %6s\n", "ID", "ADDRESS", "STATE", "LOAD",
			       "PROCS");
		for (size_t i = 0; i < count && r >= 0; i++) {
			if (n[i].have_load)
				r = buf_printf(&out, "%-5u %-40s %-7s %6.2f %6u\n", n[i].id,
					       n[i].address, n[i].state, n[i].load, n[i].nprocs);
			else
				r = buf_printf(&out, "%-5u %-40s %-7s %6s %6s\n", n[i].id,
					       n[i].address, n[i].state, "-", "-");
		}
	}
	if (r >= 0)
		r = write_full(STDOUT_FILENO, out.data, out.len);
	free(n);
	buf_release(&out);
	buf_release(&err);
	if (r < 0)
		return cli_fail("cannot write the list: %s", strerror(-r));
	return 0;
}

int cmd_logs(int argc, char **argv)
{
	_cleanup_free_ char *control = NULL;
	struct buf err = BUF_INIT;
	pid_t pid;
	int r;

	r = simple_opts(argc, argv, cmd_logs_usage, NULL, NULL);
	if (r)
		return r < 0 ? 0 : r;
	if (optind + 1 != argc)
		return cli_usage_error(cmd_logs_usage, "logs needs exactly one PID");
	if (parse_pid(argv[optind], &pid) < 0)
		return cli_usage_error(cmd_logs_usage, "'%s' is not a PID", argv[optind]);
	fflush(stdout);
	control = control_path();
	r = node_client_logs(control, pid, STDOUT_FILENO, &err);
	if (r < 0)
		cli_fail("%s", err.data ? err.data : strerror(-r));
	buf_release(&err);
	return r < 0 ? EXIT_FAILURE : 0;
}

struct move_progress {
	bool tty;
	bool shown;
};

static void show_move_progress(uint64_t done, uint64_t total, void *userdata)
{
	struct move_progress *mp = userdata;

	if (!mp->tty || total < (64ull << 20))
		return;
	fprintf(stderr, "\rghost: migrate: %llu/%llu MiB (%u%%)", (unsigned long long)(done >> 20),
		(unsigned long long)(total >> 20), (unsigned)(done * 100 / total));
	mp->shown = true;
}

static double ns_to_ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static int move_verb(int argc, char **argv, bool fork)
{
	const char *usage = fork ? cmd_fork_usage : cmd_migrate_usage;
	enum { OPT_JSON = 0x100 };
	static const struct option opts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct move_progress mp = { .tty = isatty(STDERR_FILENO) };
	_cleanup_free_ char *control = NULL;
	struct node_move_result res;
	struct buf err = BUF_INIT;
	bool json = false;
	uint64_t node;
	pid_t pid;
	int c, r;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 2)
		return cli_usage_error(usage, "%s needs a PID and a NODE", argv[0]);
	if (parse_pid(argv[optind], &pid) < 0)
		return cli_usage_error(usage, "'%s' is not a PID", argv[optind]);
	if (parse_u64(argv[optind + 1], 10, &node) < 0 || node == 0 || node > UINT32_MAX)
		return cli_usage_error(usage, "bad node id '%s'", argv[optind + 1]);
	control = control_path();
	if (fork)
		r = node_client_fork(control, pid, (uint32_t)node, show_move_progress, &mp, &res,
				     &err);
	else
		r = node_client_migrate(control, pid, (uint32_t)node, show_move_progress, &mp,
					&res, &err);
	if (mp.shown)
		fputs("\r\033[K", stderr);
	if (r < 0) {
		r = cli_fail("%s", err.data ? err.data : strerror(-r));
		buf_release(&err);
		return r;
	}
	buf_release(&err);
	if (json && fork)
		printf("{\"pid\": %d, \"forked_from\": %d, \"from\": %u, \"to\": %u, "
		       "\"image_bytes\": %llu, \"pages\": %llu, \"total_ms\": %.3f, "
		       "\"frozen_ms\": %.3f, \"export_ms\": %.3f, \"import_ms\": %.3f}\n",
		       (int)res.pid, (int)res.forked_from, res.from, res.to,
		       (unsigned long long)res.bytes, (unsigned long long)res.pages,
		       ns_to_ms(res.total_ns), ns_to_ms(res.frozen_ns), ns_to_ms(res.export_ns),
		       ns_to_ms(res.import_ns));
	else if (fork)
		printf("process %d on node %u copied to node %u as process %d: %.1f MiB in %.0f "
		       "ms, original frozen %.0f ms\n",
		       (int)res.forked_from, res.from, res.to, (int)res.pid,
		       (double)res.bytes / (1 << 20), ns_to_ms(res.total_ns),
		       ns_to_ms(res.frozen_ns));
	else if (json)
		printf("{\"pid\": %d, \"from\": %u, \"to\": %u, \"image_bytes\": %llu, "
		       "\"pages\": %llu, \"total_ms\": %.3f, \"frozen_ms\": %.3f, "
		       "\"export_ms\": %.3f, \"import_ms\": %.3f}\n",
		       (int)res.pid, res.from, res.to, (unsigned long long)res.bytes,
		       (unsigned long long)res.pages, ns_to_ms(res.total_ns), ns_to_ms(res.frozen_ns),
		       ns_to_ms(res.export_ns), ns_to_ms(res.import_ns));
	else
		printf("process %d moved from node %u to node %u: %.1f MiB in %.0f ms, frozen "
		       "%.0f ms\n",
		       (int)res.pid, res.from, res.to, (double)res.bytes / (1 << 20),
		       ns_to_ms(res.total_ns), ns_to_ms(res.frozen_ns));
	return 0;
}

int cmd_migrate(int argc, char **argv)
{
	return move_verb(argc, argv, false);
}

int cmd_fork(int argc, char **argv)
{
	return move_verb(argc, argv, true);
}

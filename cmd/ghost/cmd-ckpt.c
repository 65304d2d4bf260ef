/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Memory checkpoints through the node daemons: ghost checkpoint PID --memory
 * [--on NODE], ghost checkpoint --drop ID, ghost restart --from-memory ID
 * [--node N], ghost checkpoints. Argument parsing and output only; src/node
 * does the talking. Tables for people, --json for scripts.
 */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/fileio.h"
#include "cmd-ckpt.h"
#include "cmd-node.h"
#include "node/node.h"
#include "cli.h"
#include "base/banned.h"

static const char checkpoint_memory_usage[] =
	"Usage: ghost checkpoint PID --memory [--on NODE] [--kill | --stop] [--json]\n"
	"       ghost checkpoint --drop ID [--json]\n" CKPT_CHECKPOINT_HELP;

static const char restart_memory_usage[] =
	"Usage: ghost restart --from-memory ID [--node N] [--json]\n" CKPT_RESTART_HELP;

const char cmd_checkpoints_usage[] =
	"Usage: ghost checkpoints [--json]\n"
	"\n"
	"List the memory checkpoints kept in the cluster ('ghost checkpoint\n"
	"--memory'), asking every node that is up: ID, the node holding it, the\n"
	"PID and the node it ran on, its owner, the image size, its age and the\n"
	"command; then, for each node, how much of its checkpoint memory is in use.\n"
	"Users other than root see only their own checkpoints. Nodes that are down\n"
	"or do not answer are named on standard error; their checkpoints are lost\n"
	"if they failed.\n"
	"\n"
	"Options:\n"
	"      --json        print a JSON array of objects with the keys id, holder,\n"
	"                    pid, node, uid, user, command, image_bytes, pages,\n"
	"                    created (seconds since the epoch), age_s and state\n"
	"                    (\"kept\", or \"restoring\" while a restart reads it)\n"
	"  -h, --help        show this help\n"
	"\n"
	"Exit status: 0, also when nodes were missing; 1 if nothing could be listed.\n";

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static double mib(uint64_t bytes)
{
	return (double)bytes / (1 << 20);
}

bool cmd_ckpt_wanted(int argc, char **argv, bool restart)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0)
			break;
		if (restart && (strcmp(a, "--from-memory") == 0 ||
				strncmp(a, "--from-memory=", 14) == 0))
			return true;
		if (!restart && (strcmp(a, "--memory") == 0 || strcmp(a, "--drop") == 0 ||
				 strncmp(a, "--drop=", 7) == 0))
			return true;
	}
	return false;
}

struct progress {
	const char *what;
	bool tty;
	bool shown;
};

static void show_progress(uint64_t done, uint64_t total, void *userdata)
{
	struct progress *p = userdata;

	if (!p->tty || total < (64ull << 20) || done > total)
		return;
	fprintf(stderr, "\rghost: %s: %llu/%llu MiB (%u%%)", p->what,
		(unsigned long long)(done >> 20), (unsigned long long)(total >> 20),
		(unsigned)(done * 100 / total));
	p->shown = true;
}

static void end_progress(struct progress *p)
{
	if (p->shown)
		fputs("\r\033[K", stderr);
}

static int parse_node(const char *s, uint32_t *ret)
{
	uint64_t v;

	if (parse_u64(s, 10, &v) < 0 || v == 0 || v > UINT32_MAX)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

static int drop(const char *arg, bool json)
{
	_cleanup_free_ char *control = NULL;
	struct node_ckpt_result res;
	struct buf err = BUF_INIT;
	char id[NODE_CKPT_ID_MAX];
	uint64_t ckpt;
	int r;

	if (node_ckpt_id_parse(arg, &ckpt) < 0)
		return cli_usage_error(checkpoint_memory_usage,
				       "'%s' is not a checkpoint ID (NODE.NUMBER, as 2.1)", arg);
	control = cmd_control_path();
	r = node_client_drop(control, ckpt, &res, &err);
	if (r < 0) {
		r = cli_fail("%s", err.data ? err.data : strerror(-r));
		buf_release(&err);
		return r;
	}
	buf_release(&err);
	node_ckpt_id_format(ckpt, id);
	if (json)
		printf("{\"id\": \"%s\", \"holder\": %u, \"freed_bytes\": %llu}\n", id, res.holder,
		       (unsigned long long)res.bytes);
	else
		printf("checkpoint %s dropped: %.1f MiB freed on node %u\n", id, mib(res.bytes),
		       res.holder);
	return fflush(stdout) == 0 ? 0 : EXIT_FAILURE;
}

int cmd_checkpoint_memory(int argc, char **argv)
{
	enum { OPT_MEMORY = 0x100, OPT_ON, OPT_DROP, OPT_JSON };
	static const struct option opts[] = {
		{ "memory", no_argument, NULL, OPT_MEMORY },
		{ "on", required_argument, NULL, OPT_ON },
		{ "drop", required_argument, NULL, OPT_DROP },
		{ "kill", no_argument, NULL, 'k' },
		{ "stop", no_argument, NULL, 's' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct progress pr = { .what = "checkpoint", .tty = isatty(STDERR_FILENO) };
	_cleanup_free_ char *control = NULL;
	const char *drop_id = NULL;
	struct node_ckpt_result res;
	struct buf err = BUF_INIT;
	char id[NODE_CKPT_ID_MAX];
	bool json = false, memory = false;
	unsigned flags = 0;
	uint32_t holder = 0;
	pid_t pid;
	int c, r;

	while ((c = getopt_long(argc, argv, "ksh", opts, NULL)) != -1) {
		switch (c) {
		case OPT_MEMORY:
			memory = true;
			break;
		case OPT_ON:
			if (parse_node(optarg, &holder) < 0)
				return cli_usage_error(checkpoint_memory_usage, "bad node id '%s'",
						       optarg);
			break;
		case OPT_DROP:
			drop_id = optarg;
			break;
		case 'k':
			flags |= NODE_CKPT_KILL;
			break;
		case 's':
			flags |= NODE_CKPT_STOP;
			break;
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			fputs(checkpoint_memory_usage, stdout);
			return 0;
		default:
			fputs(checkpoint_memory_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (drop_id) {
		if (memory || holder || flags || optind != argc)
			return cli_usage_error(checkpoint_memory_usage,
					       "--drop takes only a checkpoint ID (and --json)");
		return drop(drop_id, json);
	}
	if (optind + 1 != argc)
		return cli_usage_error(checkpoint_memory_usage,
				       "checkpoint --memory needs exactly one PID");
	if (parse_pid(argv[optind], &pid) < 0)
		return cli_usage_error(checkpoint_memory_usage, "'%s' is not a PID", argv[optind]);
	if ((flags & NODE_CKPT_KILL) && (flags & NODE_CKPT_STOP))
		return cli_usage_error(checkpoint_memory_usage,
				       "--kill and --stop exclude each other");
	control = cmd_control_path();
	r = node_client_checkpoint(control, pid, holder, flags, show_progress, &pr, &res, &err);
	end_progress(&pr);
	if (r < 0) {
		r = cli_fail("%s", err.data ? err.data : strerror(-r));
		buf_release(&err);
		return r;
	}
	buf_release(&err);
	node_ckpt_id_format(res.id, id);
	if (json)
		printf("{\"id\": \"%s\", \"pid\": %d, \"node\": %u, \"holder\": %u, "
		       "\"image_bytes\": %llu, \"pages\": %llu, \"total_ms\": %.3f, "
		       "\"frozen_ms\": %.3f, \"export_ms\": %.3f, \"after\": \"%s\"}\n",
		       id, (int)res.pid, res.node, res.holder, (unsigned long long)res.bytes,
		       (unsigned long long)res.pages, ms(res.total_ns), ms(res.frozen_ns),
		       ms(res.export_ns),
		       (flags & NODE_CKPT_KILL)   ? "killed"
		       : (flags & NODE_CKPT_STOP) ? "stopped"
						  : "running");
	else
		printf("checkpoint %s of process %d kept on node %u: %.1f MiB in %.0f ms, frozen "
		       "%.0f ms%s\n",
		       id, (int)res.pid, res.holder, mib(res.bytes), ms(res.total_ns),
		       ms(res.frozen_ns),
		       (flags & NODE_CKPT_KILL)   ? "; process ended"
		       : (flags & NODE_CKPT_STOP) ? "; process left stopped"
						  : "");
	return fflush(stdout) == 0 ? 0 : EXIT_FAILURE;
}

int cmd_restart_memory(int argc, char **argv)
{
	enum { OPT_FROM = 0x100, OPT_JSON };
	static const struct option opts[] = {
		{ "from-memory", required_argument, NULL, OPT_FROM },
		{ "node", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct progress pr = { .what = "restart", .tty = isatty(STDERR_FILENO) };
	_cleanup_free_ char *control = NULL;
	const char *from = NULL;
	struct node_ckpt_result res;
	struct buf err = BUF_INIT;
	char id[NODE_CKPT_ID_MAX];
	uint32_t node = 0;
	uint64_t ckpt;
	bool json = false;
	int c, r;

	while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_FROM:
			from = optarg;
			break;
		case 'n':
			if (parse_node(optarg, &node) < 0)
				return cli_usage_error(restart_memory_usage, "bad node id '%s'",
						       optarg);
			break;
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			fputs(restart_memory_usage, stdout);
			return 0;
		default:
			fputs(restart_memory_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (!from)
		return cli_usage_error(restart_memory_usage, "restart needs --from-memory ID");
	if (optind != argc)
		return cli_usage_error(restart_memory_usage,
				       "restart --from-memory takes no image file");
	if (node_ckpt_id_parse(from, &ckpt) < 0)
		return cli_usage_error(restart_memory_usage,
				       "'%s' is not a checkpoint ID (NODE.NUMBER, as 2.1)", from);
	control = cmd_control_path();
	r = node_client_restore(control, ckpt, node, show_progress, &pr, &res, &err);
	end_progress(&pr);
	if (r < 0) {
		r = cli_fail("%s", err.data ? err.data : strerror(-r));
		buf_release(&err);
		return r;
	}
	buf_release(&err);
	node_ckpt_id_format(ckpt, id);
	if (json)
		printf("{\"id\": \"%s\", \"pid\": %d, \"node\": %u, \"holder\": %u, "
		       "\"image_bytes\": %llu, \"total_ms\": %.3f, \"import_ms\": %.3f}\n",
		       id, (int)res.pid, res.node, res.holder, (unsigned long long)res.bytes,
		       ms(res.total_ns), ms(res.import_ns));
	else
		printf("process %d restarted on node %u from checkpoint %s: %.1f MiB in %.0f ms\n",
		       (int)res.pid, res.node, id, mib(res.bytes), ms(res.total_ns));
	return fflush(stdout) == 0 ? 0 : EXIT_FAILURE;
}

static int cmp_ckpt(const void *a, const void *b)
{
	const struct node_ckpt_info *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

static int cmp_usage(const void *a, const void *b)
{
	const struct node_ckpt_usage *x = a, *y = b;

	return (x->node > y->node) - (x->node < y->node);
}

static void user_name(uid_t uid, char *buf, size_t size)
{
	struct passwd *pw = getpwuid(uid);

	if (pw && pw->pw_name)
		snprintf(buf, size, "%s", pw->pw_name);
	else
		snprintf(buf, size, "%u", (unsigned)uid);
}

static void size_text(uint64_t bytes, char *buf, size_t size)
{
	if (bytes >= (1ull << 30))
		snprintf(buf, size, "%.1fG", (double)bytes / (1 << 30));
	else if (bytes >= (1ull << 20))
		snprintf(buf, size, "%.1fM", mib(bytes));
	else
		snprintf(buf, size, "%.0fK", (double)bytes / 1024);
}

static void age_text(uint64_t age, char *buf, size_t size)
{
	if (age < 120)
		snprintf(buf, size, "%llus", (unsigned long long)age);
	else if (age < 7200)
		snprintf(buf, size, "%llum", (unsigned long long)(age / 60));
	else if (age < 172800)
		snprintf(buf, size, "%lluh", (unsigned long long)(age / 3600));
	else
		snprintf(buf, size, "%llud", (unsigned long long)(age / 86400));
}

static int print_list(const struct node_ckpt_info *c, size_t n, const struct node_ckpt_usage *u,
		      size_t nu, bool json)
{
	uint64_t now = (uint64_t)time(NULL);
	struct buf b = BUF_INIT;
	int r = 0;

	if (json)
		r = buf_printf(&b, "[");
	else
		r = buf_printf(&b, "%-12s %-6s %-8s %-5s %-10s %8s %6s %s\n", "ID", "HOLDER", "PID",
			       "NODE", "USER", "SIZE", "AGE", "COMMAND");
	for (size_t i = 0; i < n && r >= 0; i++) {
		uint64_t age = now > c[i].created ? now - c[i].created : 0;
		char id[NODE_CKPT_ID_MAX], user[64], size[32], agebuf[32];

		node_ckpt_id_format(c[i].id, id);
		user_name(c[i].uid, user, sizeof(user));
		if (!json) {
			size_text(c[i].bytes, size, sizeof(size));
			age_text(age, agebuf, sizeof(agebuf));
			r = buf_printf(&b, "%-12s %-6u %-8d %-5u %-10s %8s %6s %s%s\n", id,
				       c[i].holder, (int)c[i].pid, c[i].node, user, size, agebuf,
				       c[i].command,
				       strcmp(c[i].state, "kept") == 0 ? "" : " (restoring)");
			continue;
		}
		r = buf_printf(&b,
			       "%s\n  {\"id\": \"%s\", \"holder\": %u, \"pid\": %d, \"node\": %u, "
			       "\"uid\": %u, \"user\": ",
			       i ? "," : "", id, c[i].holder, (int)c[i].pid, c[i].node,
			       (unsigned)c[i].uid);
		if (r >= 0)
			r = buf_append_json_string(&b, user, strlen(user));
		if (r >= 0)
			r = buf_printf(&b, ", \"command\": ");
		if (r >= 0)
			r = buf_append_json_string(&b, c[i].command, strlen(c[i].command));
		if (r >= 0)
			r = buf_printf(&b,
				       ", \"image_bytes\": %llu, \"pages\": %llu, "
				       "\"created\": %llu, \"age_s\": %llu, \"state\": ",
				       (unsigned long long)c[i].bytes,
				       (unsigned long long)c[i].pages,
				       (unsigned long long)c[i].created, (unsigned long long)age);
		if (r >= 0)
			r = buf_append_json_string(&b, c[i].state, strlen(c[i].state));
		if (r >= 0)
			r = buf_printf(&b, "}");
	}
	if (json && r >= 0)
		r = buf_printf(&b, "%s]\n", n ? "\n" : "");
	for (size_t i = 0; !json && i < nu && r >= 0; i++)
		r = buf_printf(&b, "node %u: %.1f MiB of %.1f MiB of checkpoint memory in use\n",
			       u[i].node, mib(u[i].used), mib(u[i].limit));
	if (r >= 0)
		r = write_full(STDOUT_FILENO, b.data, b.len);
	buf_release(&b);
	return r;
}

int cmd_checkpoints(int argc, char **argv)
{
	enum { OPT_JSON = 0x100 };
	static const struct option opts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct buf err = BUF_INIT, warnings = BUF_INIT;
	_cleanup_free_ char *control = NULL;
	struct node_ckpt_usage *u = NULL;
	struct node_ckpt_info *ci = NULL;
	size_t n = 0, nu = 0;
	bool json = false;
	int c, r;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			fputs(cmd_checkpoints_usage, stdout);
			return 0;
		default:
			fputs(cmd_checkpoints_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage_error(cmd_checkpoints_usage, "checkpoints takes no arguments");
	control = cmd_control_path();
	r = node_client_checkpoints(control, &ci, &n, &u, &nu, &warnings, &err);
	if (r < 0) {
		cli_fail("%s", err.data ? err.data : "cannot list the checkpoints");
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
		qsort(ci, n, sizeof(*ci), cmp_ckpt);
	if (nu > 1)
		qsort(u, nu, sizeof(*u), cmp_usage);
	r = print_list(ci, n, u, nu, json);
	node_ckpt_info_free_array(ci, n);
	free(u);
	buf_release(&err);
	buf_release(&warnings);
	if (r < 0)
		return cli_fail("cannot write the list: %s", strerror(-r));
	return 0;
}

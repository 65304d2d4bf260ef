/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ghostd: the node daemon. Parses the command line and runs the daemon of
 * src/node in the foreground until SIGTERM or SIGINT. Exit status: 0 after
 * a clean shutdown, 1 on failure, 2 on a usage error.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "node/node.h"
#include "base/banned.h"

#ifndef GHOST_VERSION
#define GHOST_VERSION "unknown"
#endif

static const char usage[] =
	"Usage: ghostd [OPTIONS]\n"
	"\n"
	"The Ghost node daemon: one per node of a cluster. It keeps the membership\n"
	"(which nodes are up, down or failed, and their load), runs managed\n"
	"processes with cluster-wide PIDs, and serves the ghost command line on a\n"
	"control socket. It stays in the foreground and logs to standard error.\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE      cluster configuration (default " NODE_DEFAULT_CONFIG ")\n"
	"  -n, --node ID          this node's id (default: the node whose address is\n"
	"                         on a local interface)\n"
	"  -s, --control PATH     control socket (default " NODE_DEFAULT_CONTROL ")\n"
	"      --log-dir DIR      output of detached processes (default " NODE_DEFAULT_LOG_DIR ")\n"
	"  -l, --log-level LEVEL  err, warn, info or debug (default warn; info with\n"
	"                         --foreground)\n"
	"  -f, --foreground       debugging run: log at level info unless told otherwise\n"
	"  -h, --help             show this help\n"
	"  -V, --version          print the version\n"
	"\n"
	"See ghostd(8) for the configuration file, signals and files.\n";

int main(int argc, char **argv)
{
	enum { OPT_LOG_DIR = 0x100 };
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "node", required_argument, NULL, 'n' },
		{ "control", required_argument, NULL, 's' },
		{ "log-dir", required_argument, NULL, OPT_LOG_DIR },
		{ "log-level", required_argument, NULL, 'l' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{}
	};
	struct node_daemon_opts o = NODE_DAEMON_OPTS_INIT;
	struct node_daemon *d = NULL;
	struct buf err = BUF_INIT;
	const char *level = NULL;
	bool foreground = false;
	uint64_t v;
	int c, r;

	/* Not an option for users: what a migrated process's original runs. */
	if (argc > 1 && strcmp(argv[1], "--stand-in") == 0)
		return node_standin_main(argc, argv);
	log_set_ident("ghostd");
	while ((c = getopt_long(argc, argv, "c:n:s:l:fhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o.config_path = optarg;
			break;
		case 'n':
			if (parse_u64(optarg, 10, &v) < 0 || v == 0 || v > UINT32_MAX) {
				fprintf(stderr, "ghostd: bad node id '%s'\n", optarg);
				return 2;
			}
			o.node_id = (uint32_t)v;
			break;
		case 's':
			o.control_path = optarg;
			break;
		case OPT_LOG_DIR:
			o.log_dir = optarg;
			break;
		case 'l':
			level = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'V':
			puts("ghostd " GHOST_VERSION);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "ghostd: unexpected argument '%s'\n", argv[optind]);
		fputs(usage, stderr);
		return 2;
	}
	if (!level)
		level = getenv("GHOST_LOG");
	if (!level && foreground)
		level = "info";
	if (level && log_set_level_from_string(level) < 0) {
		fprintf(stderr, "ghostd: bad log level '%s' (err, warn, info, debug)\n", level);
		return 2;
	}
	r = node_daemon_new(&o, &d, &err);
	if (r < 0) {
		/* One line, for whoever started the daemon: no source position. */
		fprintf(stderr, "%sghostd: %s\n", getenv("JOURNAL_STREAM") ? "<3>" : "",
			err.data ? err.data : strerror(-r));
		buf_release(&err);
		return 1;
	}
	buf_release(&err);
	r = node_daemon_run(d);
	node_daemon_free(d);
	if (r < 0) {
		log_err_errno(r, "event loop failed");
		return 1;
	}
	log_info("stopped");
	return r == 0 ? 0 : 1;
}

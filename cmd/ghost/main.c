/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ghost: the command line. Parses arguments and calls the engine; every verb
 * has --help. Exit status: 0 success, 1 failure (one line "ghost: ..." on
 * stderr), 2 usage error; `restart` without -d exits with the restored
 * process's status.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/fileio.h"
#include "base/log.h"
#include "ghost/ghost.h"
#include "image/image.h"
#include "io/io.h"
#include "cmd-ckpt.h"
#include "cmd-cluster.h"
#include "cmd-node.h"
#include "cli.h"
#include "base/banned.h"

#ifndef GHOST_VERSION
#define GHOST_VERSION "unknown"
#endif


static const char usage_main[] =
	"Usage: ghost [--verbose] COMMAND [ARGS...]\n"
	"\n"
	"Export running processes into ghosts and import them back: checkpoint,\n"
	"restart and inspect process images.\n"
	"\n"
	"Commands:\n"
	"  checkpoint PID -o FILE   write a process's image to FILE\n"
	"  checkpoint PID --memory  keep a managed process's image in a node daemon\n"
	"  restart FILE             make a live process from an image, with its PID\n"
	"  restart --from-memory ID restart a kept checkpoint on any node\n"
	"  checkpoints              list the memory checkpoints of the cluster\n"
	"  image show FILE          print an image as text or JSON\n"
	"  run [--node N] -- CMD    run a managed process on a node of the cluster\n"
	"  ps                       list the managed processes of the cluster\n"
	"  kill [-SIG] PID          signal a managed process wherever it runs\n"
	"  nodes                    list the nodes of the cluster\n"
	"  logs PID                 print the output of a detached process\n"
	"  migrate PID NODE         move a managed process to another node\n"
	"  fork PID NODE            start a copy of a managed process on a node\n"
	"  cluster COMMAND          an N-node cluster on this machine: up, down, status, exec\n"
	"  help [COMMAND]           show help for a command\n"
	"  version                  print the version\n"
	"\n"
	"Options:\n"
	"  -v, --verbose            log what the engine does (repeat for debug)\n"
	"  -h, --help               show this help\n"
	"\n"
	"Run 'ghost COMMAND --help' for the options of a command.\n";

static const char usage_checkpoint[] =
	"Usage: ghost checkpoint PID -o FILE [OPTIONS]\n"
	CKPT_CHECKPOINT_SYNOPSIS
	"\n"
	"Export the process PID into the image FILE. The process is stopped while\n"
	"its state is read and, by default, resumes afterwards unchanged (a\n"
	"snapshot). On any failure it is left running and untraced.\n"
	"\n"
	"Options:\n"
	"  -o, --output FILE       image file to write ('-' for standard output)\n"
	"  -k, --kill              end the process after a successful checkpoint\n"
	"  -s, --stop              leave the process stopped (SIGSTOP) afterwards\n"
	"      --shell-job         let fds 0-2 be a terminal or a pipe to an outside\n"
	"                          process; restart connects them to its own stdio\n"
	"      --drop-unsupported  drop fds the engine cannot carry instead of refusing\n"
	"      --sync              fsync the image before reporting success\n"
	"      --json              print a JSON summary on standard output\n"
	"  -h, --help              show this help\n"
	"\n"
	"Refused, with the reason: kernel threads, zombies, multi-threaded processes,\n"
	"TCP and other sockets, terminals (without --shell-job), pipes to processes\n"
	"outside the checkpoint, mappings of deleted files.\n"
	CKPT_CHECKPOINT_HELP;

static const char usage_restart[] =
	"Usage: ghost restart FILE [OPTIONS]\n"
	CKPT_RESTART_SYNOPSIS
	"\n"
	"Import the image FILE as a live process with its original PID. Every\n"
	"record is verified before a byte of it reaches the new process; on any\n"
	"failure no process is left behind. By default ghost waits for the process\n"
	"as its parent and exits with its status (128+N if killed by signal N).\n"
	"\n"
	"Options:\n"
	"  -d, --detach            do not wait: print the PID and exit\n"
	"      --replace           end a live process holding the PID first\n"
	"      --stopped           leave the restored process stopped (SIGSTOP)\n"
	"      --any-kernel        accept an image made on another kernel release\n"
	"      --pid-wait MS       wait up to MS ms for an unreaped PID (default 3000)\n"
	"      --json              print a JSON summary on standard output\n"
	"  -h, --help              show this help\n"
	"\n"
	"An image is restored only with credentials the caller may assume: a user\n"
	"other than root can restart only images of processes that ran as that user\n"
	"without capabilities.\n"
	CKPT_RESTART_HELP;

static const char usage_image[] =
	"Usage: ghost image show FILE [--json]\n"
	"\n"
	"Print an image: header, process identity, credentials, limits, memory\n"
	"mappings, file descriptors, epoll registrations, signals, timers,\n"
	"registers and sizes. Every record is verified; the first bad one ends\n"
	"the listing with an error.\n"
	"\n"
	"Options:\n"
	"      --json              print one JSON document\n"
	"      --any-kernel        do not complain about the kernel release\n"
	"  -h, --help              show this help\n";

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

struct progress_state {
	const char *what;
	bool shown;
};

static void show_progress(const struct ghost_progress *p, void *userdata)
{
	struct progress_state *s = userdata;

	if (p->total < (64ull << 20))
		return;
	fprintf(stderr, "\rghost: %s: %llu/%llu MiB (%u%%)", s->what,
		(unsigned long long)(p->done >> 20), (unsigned long long)(p->total >> 20),
		(unsigned)(p->done * 100 / p->total));
	s->shown = true;
}

static void end_progress(struct progress_state *s)
{
	if (s->shown)
		fputs("\r\033[K", stderr);
}

enum {
	OPT_SHELL_JOB = 0x100,
	OPT_DROP,
	OPT_SYNC,
	OPT_JSON,
	OPT_REPLACE,
	OPT_STOPPED,
	OPT_ANY_KERNEL,
	OPT_PID_WAIT,
};

static int cmd_checkpoint(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "kill", no_argument, NULL, 'k' },
		{ "stop", no_argument, NULL, 's' },
		{ "shell-job", no_argument, NULL, OPT_SHELL_JOB },
		{ "drop-unsupported", no_argument, NULL, OPT_DROP },
		{ "sync", no_argument, NULL, OPT_SYNC },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct ghost_export_opts eo = { 0 };
	struct progress_state ps = { "checkpoint" };
	const char *out = NULL;
	struct ghost *g = NULL;
	bool json = false, to_stdout;
	pid_t pid;
	int c, fd, r;

	if (cmd_ckpt_wanted(argc, argv, false))
		return cmd_checkpoint_memory(argc, argv);
	while ((c = getopt_long(argc, argv, "o:ksh", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			out = optarg;
			break;
		case 'k':
			eo.flags |= GHOST_EXPORT_KILL;
			break;
		case 's':
			eo.flags |= GHOST_EXPORT_STOP;
			break;
		case OPT_SHELL_JOB:
			eo.flags |= GHOST_EXPORT_SHELL_JOB;
			break;
		case OPT_DROP:
			eo.flags |= GHOST_EXPORT_DROP_UNSUPPORTED;
			break;
		case OPT_SYNC:
			eo.flags |= GHOST_EXPORT_SYNC;
			break;
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			fputs(usage_checkpoint, stdout);
			return 0;
		default:
			fputs(usage_checkpoint, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error(usage_checkpoint, "checkpoint needs exactly one PID");
	if (!out)
		return cli_usage_error(usage_checkpoint, "checkpoint needs an output file (-o FILE)");
	if (parse_pid(argv[optind], &pid) < 0)
		return cli_usage_error(usage_checkpoint, "'%s' is not a PID", argv[optind]);
	if ((eo.flags & GHOST_EXPORT_KILL) && (eo.flags & GHOST_EXPORT_STOP))
		return cli_usage_error(usage_checkpoint, "--kill and --stop exclude each other");
	to_stdout = strcmp(out, "-") == 0;
	if (to_stdout && json)
		return cli_usage_error(usage_checkpoint, "--json needs an output file, not '-'");

	if (isatty(STDERR_FILENO)) {
		eo.progress = show_progress;
		eo.userdata = &ps;
	}
	fd = to_stdout ? STDOUT_FILENO
		       : open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return cli_fail("cannot create '%s': %s", out, strerror(errno));
	r = ghost_new(&g);
	if (r >= 0)
		r = ghost_plug(g, GHOST_FILE_WRITE);
	if (r >= 0)
		r = ghost_associate_file(g, fd);
	if (r >= 0)
		r = ghost_export(g, pid, &eo);
	end_progress(&ps);
	if (r < 0) {
		const char *msg = g && ghost_errmsg(g)[0] ? ghost_errmsg(g) : ghost_strerror(r);

		if (!to_stdout) {
			close(fd);
			unlink(out);
		}
		cli_fail("checkpoint of process %d failed: %s", pid, msg);
		ghost_free(g);
		return EXIT_FAILURE;
	}
	if (!to_stdout && close(fd) < 0) {
		ghost_free(g);
		unlink(out);
		return cli_fail("cannot write '%s': %s", out, strerror(errno));
	}
	if (json) {
		const struct ghost_stats *s = ghost_get_stats(g);
		struct buf b = BUF_INIT;

		buf_printf(&b, "{\"pid\":%d,\"image\":", pid);
		buf_append_json_string(&b, out, strlen(out));
		buf_printf(&b,
			   ",\"image_bytes\":%llu,\"pages\":%llu,\"vmas\":%llu,\"fds\":%llu,"
			   "\"frozen_ms\":%.3f,\"total_ms\":%.3f,\"after\":\"%s\"}\n",
			   (unsigned long long)s->image_bytes, (unsigned long long)s->pages,
			   (unsigned long long)s->vmas, (unsigned long long)s->fds, ms(s->frozen_ns),
			   ms(s->total_ns),
			   (eo.flags & GHOST_EXPORT_KILL)   ? "killed"
			   : (eo.flags & GHOST_EXPORT_STOP) ? "stopped"
							    : "running");
		fputs(b.data, stdout);
		buf_release(&b);
	}
	ghost_free(g);
	return 0;
}

static pid_t forward_to;

static void forward_signal(int sig)
{
	if (forward_to > 0)
		kill(forward_to, sig);
}

static int cmd_restart(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "detach", no_argument, NULL, 'd' },
		{ "replace", no_argument, NULL, OPT_REPLACE },
		{ "stopped", no_argument, NULL, OPT_STOPPED },
		{ "any-kernel", no_argument, NULL, OPT_ANY_KERNEL },
		{ "pid-wait", required_argument, NULL, OPT_PID_WAIT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct ghost_import_opts io = { .stdio = { STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO } };
	struct progress_state ps = { "restart" };
	struct ghost *g = NULL;
	bool json = false;
	const char *in;
	pid_t pid = 0;
	int c, fd, r, st;

	if (cmd_ckpt_wanted(argc, argv, true))
		return cmd_restart_memory(argc, argv);
	while ((c = getopt_long(argc, argv, "dh", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			io.flags |= GHOST_IMPORT_DETACH;
			break;
		case OPT_REPLACE:
			io.flags |= GHOST_IMPORT_REPLACE;
			break;
		case OPT_STOPPED:
			io.flags |= GHOST_IMPORT_STOPPED;
			break;
		case OPT_ANY_KERNEL:
			io.flags |= GHOST_IMPORT_ANY_KERNEL;
			break;
		case OPT_PID_WAIT: {
			uint64_t v;

			if (parse_u64(optarg, 10, &v) < 0 || v > 600000)
				return cli_usage_error(usage_restart, "bad --pid-wait '%s'", optarg);
			io.pid_wait_ms = (unsigned)v;
			break;
		}
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			fputs(usage_restart, stdout);
			return 0;
		default:
			fputs(usage_restart, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error(usage_restart, "restart needs exactly one image file");
	in = argv[optind];
	io.caller_uid = getuid();
	io.caller_gid = getgid();
	if (isatty(STDERR_FILENO)) {
		io.progress = show_progress;
		io.userdata = &ps;
	}
	fd = strcmp(in, "-") == 0 ? STDIN_FILENO : open(in, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cli_fail("cannot open '%s': %s", in, strerror(errno));
	if (fd == STDIN_FILENO)
		io.stdio[0] = -1;
	r = ghost_new(&g);
	if (r >= 0)
		r = ghost_plug(g, GHOST_FILE_READ);
	if (r >= 0)
		r = ghost_associate_file(g, fd);
	if (r >= 0)
		r = ghost_import(g, &io, &pid);
	end_progress(&ps);
	if (fd != STDIN_FILENO)
		close(fd);
	if (r < 0) {
		cli_fail("restart from '%s' failed: %s", in,
		     g && ghost_errmsg(g)[0] ? ghost_errmsg(g) : ghost_strerror(r));
		ghost_free(g);
		return EXIT_FAILURE;
	}
	if (json) {
		const struct ghost_stats *s = ghost_get_stats(g);

		printf("{\"pid\":%d,\"pages\":%llu,\"vmas\":%llu,\"fds\":%llu,\"total_ms\":%.3f,"
		       "\"detached\":%s}\n",
		       pid, (unsigned long long)s->pages, (unsigned long long)s->vmas,
		       (unsigned long long)s->fds, ms(s->total_ns),
		       (io.flags & GHOST_IMPORT_DETACH) ? "true" : "false");
	} else if (io.flags & GHOST_IMPORT_DETACH) {
		printf("%d\n", pid);
	}
	fflush(stdout);
	ghost_free(g);
	if (io.flags & GHOST_IMPORT_DETACH)
		return 0;

	/* Stay the parent: pass on the signals a user sends us, report its end. */
	forward_to = pid;
	{
		struct sigaction sa = { .sa_handler = forward_signal, .sa_flags = SA_RESTART };
		int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

		for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
			sigaction(sigs[i], &sa, NULL);
	}
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return cli_fail("cannot wait for process %d: %s", pid, strerror(errno));
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return EXIT_FAILURE;
}

static int cmd_image(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "any-kernel", no_argument, NULL, OPT_ANY_KERNEL },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	enum img_reader_flags rf = 0;
	struct ghost_io *io = NULL;
	struct buf out = BUF_INIT;
	bool json = false;
	const char *in;
	int c, fd, r;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(usage_image, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	if (strcmp(argv[1], "show") != 0)
		return cli_usage_error(usage_image, "unknown image command '%s'", argv[1]);
	argc--;
	argv++;
	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_JSON:
			json = true;
			break;
		case OPT_ANY_KERNEL:
			rf |= IMG_READ_ANY_KERNEL;
			break;
		case 'h':
			fputs(usage_image, stdout);
			return 0;
		default:
			fputs(usage_image, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error(usage_image, "image show needs exactly one image file");
	in = argv[optind];
	fd = strcmp(in, "-") == 0 ? STDIN_FILENO : open(in, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cli_fail("cannot open '%s': %s", in, strerror(errno));
	r = io_file_new(fd, IO_READ, 0, &io);
	if (r >= 0)
		r = img_show(io, rf, json, &out);
	if (out.len)
		fwrite(out.data, 1, out.len, stdout);
	fflush(stdout);
	buf_release(&out);
	io_free(io);
	if (fd != STDIN_FILENO)
		close(fd);
	if (r < 0)
		return cli_fail("cannot show '%s': %s", in, ghost_strerror(r));
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;
} verbs[] = {
	{ "checkpoint", cmd_checkpoint, usage_checkpoint },
	{ "restart", cmd_restart, usage_restart },
	{ "image", cmd_image, usage_image },
	{ "run", cmd_run, cmd_run_usage },
	{ "ps", cmd_ps, cmd_ps_usage },
	{ "kill", cmd_kill, cmd_kill_usage },
	{ "nodes", cmd_nodes, cmd_nodes_usage },
	{ "logs", cmd_logs, cmd_logs_usage },
	{ "migrate", cmd_migrate, cmd_migrate_usage },
	{ "fork", cmd_fork, cmd_fork_usage },
	{ "checkpoints", cmd_checkpoints, cmd_checkpoints_usage },
	{ "cluster", cmd_cluster, cmd_cluster_usage },
};

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{}
	};
	const char *env = getenv("GHOST_LOG");
	const char *cmd;
	int c, verbose = 0;

	log_set_ident("ghost");
	if (env && log_set_level_from_string(env) < 0)
		fprintf(stderr, "ghost: ignoring bad GHOST_LOG '%s'\n", env);
	while ((c = getopt_long(argc, argv, "+vh", opts, NULL)) != -1) {
		switch (c) {
		case 'v':
			verbose++;
			break;
		case 'h':
			fputs(usage_main, stdout);
			return 0;
		case 'V':
			puts("ghost " GHOST_VERSION);
			return 0;
		default:
			fputs(usage_main, stderr);
			return EXIT_USAGE;
		}
	}
	if (verbose)
		log_max_level = verbose > 1 ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO;
	if (optind >= argc) {
		fputs(usage_main, stderr);
		return EXIT_USAGE;
	}
	cmd = argv[optind];
	argc -= optind;
	argv += optind;
	optind = 0;
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
		if (strcmp(cmd, verbs[i].name) == 0)
			return verbs[i].fn(argc, argv);
	if (strcmp(cmd, "version") == 0) {
		puts("ghost " GHOST_VERSION);
		return 0;
	}
	if (strcmp(cmd, "help") == 0) {
		const char *what = argc > 1 ? argv[1] : NULL;

		if (!what) {
			fputs(usage_main, stdout);
			return 0;
		}
		for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
			if (strcmp(what, verbs[i].name) == 0) {
				fputs(verbs[i].usage, stdout);
				return 0;
			}
		return cli_usage_error(usage_main, "no help for unknown command '%s'", what);
	}
	return cli_usage_error(usage_main, "unknown command '%s'", cmd);
}

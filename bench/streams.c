/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench/streams: Figures 8 and 9 of the Dynamic Streams report on a local
 * cluster (bench/README.md). In one run, NetPIPE latency and bandwidth
 * across message sizes between two managed processes: vanilla TCP between
 * two nodes and over loopback (Debian's unmodified NPtcp, and
 * bench/pingpong), a vanilla Unix socket (pingpong), and Ghost streams
 * after one end was moved to another node and after it was brought back
 * (TCP: NPtcp; Unix: pingpong, as NPtcp speaks TCP only); then an NPtcp run
 * whose transmitter moves halfway through its sizes, and the throughput
 * over time of a stream whose end moves in the middle, and the pause that
 * adds (pingpong). Every Ghost number is printed next to its baseline from
 * the same run and the target. A migration Ghost refuses makes its
 * row "n/a: <the reason ghost gave>", never a number.
 *
 * The program is the supervisor and the driver: the supervisor installs
 * NPtcp if it is missing, brings a 2-node cluster up, forks the driver,
 * which measures and prints, and takes the cluster down whatever happened
 * to the driver (a failure, a crash, SIGINT, SIGTERM, SIGHUP).
 */
#include <arpa/inet.h>
#include <assert.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/limits.h> /* PATH_MAX; <limits.h> would find bench/limits.h */
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "bench.h"
#include "base/banned.h"

#define NODE_ADDR_FMT    "10.77.0.%d" /* when cluster status does not say */
#define NP_PORT          7751
#define CMD_TIMEOUT_MS   120000U /* one ghost command */
#define READY_TIMEOUT_MS 30000U  /* both ends connected */
#define GONE_TIMEOUT_MS  30000U  /* a killed process leaving */
#define LISTEN_TIMEOUT_MS 15000U /* NPtcp's receiver listening */
#define HELD_TIMEOUT_MS  5000U  /* NPtcp's transmitter seen held after a move */
#define MAX_POINTS       64
#define MAX_BINS         4096
#define MAX_MANAGED      16
#define TARGET_RATIO     1.05 /* within 5% */
#define TARGET_PAUSE_MS  10.0
#define STOP_MS          20U /* the vanilla series' pause check */
#define SMALL_MSG        64  /* latency: messages up to this size */
#define WHY_MAX          384
#define MAX_GAPS         1024
#define MAX_REPS         5

struct config {
	bool quick, install;
	const char *encrypt; /* "yes", "no", or NULL: the cluster's default */
	char *ghost, *pingpong, *nptcp;
	char nptcp_na[WHY_MAX]; /* why there are no NPtcp rows */
	char *work;		/* ghost-bench-streams.XXXXXX: rendezvous, outputs */
	char addr_str[3][64];	/* node 1's and node 2's addresses */
	uint32_t addr[3];	/* the same, network byte order */
	uint64_t max_size;
	unsigned series_ms, interval_ms, series_size, freeze_reps;
	unsigned reps; /* runs of every row and series, interleaved */
	unsigned wait_ms; /* the longest one measurement may take */
	const char *cpus; /* same, apart, free */
	int cpu_server, cpu_client; /* -1: not pinned */
};

/* One NetPIPE curve. */
struct curve {
	const char *id, *what, *tool;
	size_t n;
	uint64_t size[MAX_POINTS];
	double lat_us[MAX_POINTS], mbps[MAX_POINTS];
	char na[WHY_MAX]; /* not measurable: why */
	bool failed;	  /* a measurement failed (stderr says why) */
	double frozen[2]; /* the migrations before the measurement */
	unsigned runs;	  /* combined: how many runs measured it */
	char channel[WHY_MAX]; /* NPtcp: its connection just before it measured */
};

/* Figure 9 with NPtcp: a run during which the transmitter moves. */
struct np_series {
	bool ran;
	char na[WHY_MAX];    /* the migration was refused: why (the run still ran) */
	struct curve cv;     /* what NPtcp printed */
	size_t move_first;   /* cv's sizes from move_first to move_last were in */
	size_t move_last;    /* progress while the move ran */
	double frozen_ms;
};

/* One throughput-over-time series. */
struct series {
	const char *id, *what;
	bool ran;
	char na[WHY_MAX]; /* the migration was refused: why (the series still ran) */
	size_t n;
	double mbps[MAX_BINS];
	double interval_ms, maxgap_ms, gap_at_ms;
	double ev_start_ms, ev_end_ms; /* the stop or the migration, from the series' start */
	double ev_gap_ms, ev_gap_at_ms; /* the longest pause during it */
	size_t n_gaps;
	double gaps[MAX_GAPS][2]; /* every pause from 1 ms: when, how long */
	double frozen_ms;	       /* the migration's freeze */
	double stopped_ms;	       /* vanilla: the server stopped at least this long */
};

static int failures;

/* ---- small helpers ---- */

static void fail_msg(const char *fmt, ...) _printf_(1, 2);
static void fail_msg(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	failures++;
	bench_err("%s", msg);
}

/* The first line of s, without a leading "ghost: ", into buf. */
static void first_line(const char *s, char *buf, size_t len)
{
	size_t n;

	if (!strncmp(s, "ghost: ", 7))
		s += 7;
	n = strcspn(s, "\n");
	if (n >= len)
		n = len - 1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (!n)
		snprintf(buf, len, "(no reason given)");
}

/* The string after "key": in a JSON text, into buf; -ENOENT if absent. */
static int json_string(const char *json, const char *key, char *buf, size_t len)
{
	char pat[64];
	const char *p;
	size_t n;

	snprintf(pat, sizeof(pat), "\"%s\"", key);
	p = strstr(json, pat);
	if (!p)
		return -ENOENT;
	p += strlen(pat);
	while (*p == ' ' || *p == ':')
		p++;
	if (*p++ != '"')
		return -EINVAL;
	n = strcspn(p, "\"");
	if (n >= len)
		return -ENAMETOOLONG;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return 0;
}

/* The whole file in a malloc()ed string; -errno. */
static int read_file(const char *path, char **ret)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			char *grown = realloc(buf, cap + 65536);

			if (!grown) {
				free(buf);
				return -ENOMEM;
			}
			buf = grown;
			cap += 65536;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*ret = buf;
	return 0;
}

static int touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

/* "<work>/<name><seq><suffix>" into buf. */
static void work_path(const struct config *c, char *buf, size_t len, const char *name,
		      unsigned seq, const char *suffix)
{
	snprintf(buf, len, "%s/%s%u%s", c->work, name, seq, suffix);
}

/* ---- managed processes ---- */

static pid_t managed[MAX_MANAGED];

static void managed_add(pid_t pid)
{
	for (size_t i = 0; i < MAX_MANAGED; i++)
		if (!managed[i]) {
			managed[i] = pid;
			return;
		}
}

/*
 * The line of pid in `ghost ps [-a] --json` (one object a line), state and
 * exit code: 1 listed, 0 not, -errno.
 */
static int managed_state(const struct config *c, pid_t pid, bool all, char *state, size_t len)
{
	const char *argv[] = { c->ghost, "ps", all ? "-a" : "--json", all ? "--json" : NULL, NULL };
	_cleanup_free_ char *out = NULL;
	char pat[32], *p, *eol;
	int r;

	r = bench_cmd(argv, 0, CMD_TIMEOUT_MS, &out, NULL, NULL);
	if (r != 0)
		return r < 0 ? r : -EPROTO;
	snprintf(pat, sizeof(pat), "\"pid\": %d,", (int)pid);
	p = strstr(out, pat);
	if (!p)
		return 0;
	eol = strchr(p, '\n');
	if (eol)
		*eol = '\0';
	if (state && json_string(p, "state", state, len) < 0)
		snprintf(state, len, "?");
	return 1;
}

/* `ghost kill -KILL pid` and wait until ghost ps no longer lists it. */
static void kill_managed(const struct config *c, pid_t pid)
{
	char pidstr[16];
	const char *argv[] = { c->ghost, "kill", "-KILL", pidstr, NULL };
	uint64_t deadline = bench_now_ns() + GONE_TIMEOUT_MS * 1000000ULL;
	_cleanup_free_ char *err = NULL;

	if (pid <= 0)
		return;
	snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
	bench_cmd(argv, 0, CMD_TIMEOUT_MS, NULL, &err, NULL); /* it may be gone: quiet */
	while (managed_state(c, pid, false, NULL, 0) > 0) {
		if (bench_now_ns() > deadline) {
			fail_msg("process %d is still there after SIGKILL", (int)pid);
			break;
		}
		bench_sleep_ms(10);
	}
	for (size_t i = 0; i < MAX_MANAGED; i++)
		if (managed[i] == pid)
			managed[i] = 0;
}

static void kill_all_managed(const struct config *c)
{
	for (size_t i = 0; i < MAX_MANAGED; i++)
		if (managed[i])
			kill_managed(c, managed[i]);
}

/* `ghost run -d --node N -- [taskset -c CPU] cmd...`; its global PID. */
static int start_managed(const struct config *c, int node, int cpu, const char *const *cmd,
			 pid_t *ret_pid)
{
	const char *argv[40] = { c->ghost, "run", "-d", "--node", NULL, "--" };
	_cleanup_free_ char *out = NULL, *err = NULL;
	char nodestr[12], cpustr[12], why[WHY_MAX], *end;
	size_t n = 6;
	long pid;
	int r;

	snprintf(nodestr, sizeof(nodestr), "%d", node);
	argv[4] = nodestr;
	if (cpu >= 0) {
		snprintf(cpustr, sizeof(cpustr), "%d", cpu);
		argv[n++] = "taskset";
		argv[n++] = "-c";
		argv[n++] = cpustr;
	}
	for (size_t i = 0; cmd[i] && n < ARRAY_SIZE(argv) - 1; i++)
		argv[n++] = cmd[i];
	argv[n] = NULL;
	r = bench_cmd(argv, 0, CMD_TIMEOUT_MS, &out, &err, NULL);
	if (r != 0) {
		first_line(err ? err : "", why, sizeof(why));
		return bench_err_r(r < 0 ? r : -EPROTO, "ghost run -d --node %d -- %s: %s", node,
				   cmd[0], r < 0 ? strerror(-r) : why);
	}
	errno = 0;
	pid = strtol(out, &end, 10);
	if (errno || end == out || pid <= 0 || pid > INT32_MAX)
		return bench_err_r(-EPROTO, "no PID in the output of 'ghost run -d': '%s'", out);
	*ret_pid = (pid_t)pid;
	managed_add((pid_t)pid);
	return 0;
}

/* Is pid still alive? Says so on stderr when it is not. */
static bool still_alive(const struct config *c, pid_t pid, const char *what)
{
	char state[32];
	int r = managed_state(c, pid, true, state, sizeof(state));

	if (r > 0 && strcmp(state, "exited"))
		return true;
	bench_err("%s (process %d) ended early (see 'ghost logs %d')", what, (int)pid, (int)pid);
	return false;
}

/* Wait until path exists and ends with end (NULL: exists); the text in
 * *ret_text unless NULL. pid is watched: its end is an error. */
static int wait_file(const struct config *c, const char *path, const char *end, pid_t pid,
		     const char *what, unsigned timeout_ms, char **ret_text)
{
	uint64_t t0 = bench_now_ns(), next_check = t0 + 500000000ULL;
	uint64_t deadline = t0 + (uint64_t)timeout_ms * 1000000ULL;

	for (;;) {
		char *text = NULL;

		if (read_file(path, &text) >= 0) {
			size_t tl = strlen(text), el = end ? strlen(end) : 0;

			if (tl >= el && !strcmp(text + tl - el, end ? end : "")) {
				if (ret_text)
					*ret_text = text;
				else
					free(text);
				return 0;
			}
			free(text);
		}
		if (bench_now_ns() > deadline)
			return bench_err_r(-ETIMEDOUT, "%s: nothing in '%s' after %u s", what, path,
					   timeout_ms / 1000);
		if (bench_now_ns() > next_check) {
			if (!still_alive(c, pid, what))
				return -ECHILD;
			next_check = bench_now_ns() + 1000000000ULL;
		}
		bench_sleep_ms(2);
	}
}

/*
 * `ghost migrate --json pid node`: 0 moved (its freeze in *ret_frozen), 1
 * refused (ghost's one-line reason in why), -errno when the command could
 * not run.
 */
static int migrate(const struct config *c, pid_t pid, int node, double *ret_frozen, char *why,
		   size_t len)
{
	char pidstr[16], nodestr[12];
	const char *argv[] = { c->ghost, "migrate", "--json", pidstr, nodestr, NULL };
	_cleanup_free_ char *out = NULL, *err = NULL;
	int r;

	snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
	snprintf(nodestr, sizeof(nodestr), "%d", node);
	r = bench_cmd(argv, 0, CMD_TIMEOUT_MS, &out, &err, NULL);
	if (r < 0)
		return bench_err_r(r, "ghost migrate: %s", strerror(-r));
	if (r > 0) {
		first_line(err, why, len);
		return 1;
	}
	if (bench_json_number(out, "frozen_ms", ret_frozen) < 0)
		*ret_frozen = NAN;
	return 0;
}

/* ---- NetPIPE curves ---- */

/* pingpong's lines: "SIZE ROUNDS LATENCY_US MB_PER_S", then "end". */
static int parse_pingpong(const char *text, struct curve *cv)
{
	for (const char *p = text; *p && cv->n < MAX_POINTS; p = strchr(p, '\n') + 1) {
		unsigned long long size, rounds;
		double lat, mbps;

		if (sscanf(p, "%llu %llu %lf %lf", &size, &rounds, &lat, &mbps) == 4) {
			cv->size[cv->n] = size;
			cv->lat_us[cv->n] = lat;
			cv->mbps[cv->n++] = mbps;
		}
		if (!strchr(p, '\n'))
			break;
	}
	return cv->n ? 0 : -EPROTO;
}

/* NPtcp's output file: "BYTES MBPS SECONDS", SECONDS half a round trip. */
static int parse_nptcp(const char *text, struct curve *cv)
{
	for (const char *p = text; *p && cv->n < MAX_POINTS; p = strchr(p, '\n') + 1) {
		double size, mbit, t;

		if (sscanf(p, "%lf %lf %lf", &size, &mbit, &t) == 3 && size >= 1 && t > 0) {
			cv->size[cv->n] = (uint64_t)size;
			cv->lat_us[cv->n] = t * 1e6;
			cv->mbps[cv->n++] = size / t / 1e6;
		}
		if (!strchr(p, '\n'))
			break;
	}
	return cv->n ? 0 : -EPROTO;
}

/*
 * pingpong between a server on server_node and a client on node 1; with
 * moves 1 the server is moved to node 2 before the measurement, with
 * moves 2 to node 2 and back to node 1.
 */
static void measure_pingpong(const struct config *c, struct curve *cv, bool tcp, int server_node,
			     int moves)
{
	static unsigned seq;
	char rdv[PATH_MAX], srv[PATH_MAX], cli[PATH_MAX], go[PATH_MAX], ready[PATH_MAX + 8];
	char maxstr[24];
	const char *kind = tcp ? "tcp" : "unix";
	const char *serve[] = { c->pingpong, "serve", kind, rdv, srv, NULL };
	/* quick: 100 round trips a trial; full: trials of about 100 ms */
	const char *ping[] = { c->pingpong, "ping", kind, rdv, cli, "--go", go, "--max-size",
			       maxstr, c->quick ? "--rounds" : "--trial-ms", "100", NULL };
	_cleanup_free_ char *text = NULL;
	pid_t spid = 0, cpid = 0;
	int r;

	seq++;
	work_path(c, rdv, sizeof(rdv), "pp", seq, tcp ? ".addr" : ".sock");
	work_path(c, srv, sizeof(srv), "pp", seq, ".server");
	work_path(c, cli, sizeof(cli), "pp", seq, ".client");
	work_path(c, go, sizeof(go), "pp", seq, ".go");
	snprintf(maxstr, sizeof(maxstr), "%llu", (unsigned long long)c->max_size);
	printf("  %-3s %s (%s) ...\n", cv->id, cv->what, cv->tool);
	fflush(stdout);

	r = start_managed(c, server_node, c->cpu_server, serve, &spid);
	if (r >= 0)
		r = start_managed(c, 1, c->cpu_client, ping, &cpid);
	if (r >= 0) {
		snprintf(ready, sizeof(ready), "%s.ready", srv);
		r = wait_file(c, ready, NULL, spid, "the pingpong server", READY_TIMEOUT_MS, NULL);
	}
	if (r >= 0) {
		snprintf(ready, sizeof(ready), "%s.ready", cli);
		r = wait_file(c, ready, NULL, cpid, "the pingpong client", READY_TIMEOUT_MS, NULL);
	}
	for (int m = 0; m < moves && r >= 0; m++) {
		r = migrate(c, spid, m == 0 ? 2 : 1, &cv->frozen[m], cv->na, sizeof(cv->na));
		if (r == 1)
			goto out; /* refused: n/a, with ghost's reason */
	}
	if (r >= 0)
		r = touch(go);
	if (r >= 0)
		r = wait_file(c, cli, "end\n", cpid, "the pingpong client", c->wait_ms, &text);
	if (r >= 0 && parse_pingpong(text, cv) < 0)
		r = bench_err_r(-EPROTO, "nothing to read in '%s'", cli);
	if (r < 0) {
		cv->failed = true;
		fail_msg("%s %s: the measurement failed", cv->id, cv->what);
	}
out:
	kill_managed(c, cpid);
	kill_managed(c, spid);
}

/* Wait until something listens on port in node (ss inside the node). */
static int wait_listening(const struct config *c, int node, unsigned port, pid_t pid)
{
	char nodestr[12], filter[32];
	const char *argv[] = { c->ghost, "cluster", "exec", nodestr, "--", "ss", "-Hltn", filter,
			       NULL };
	uint64_t deadline = bench_now_ns() + LISTEN_TIMEOUT_MS * 1000000ULL;

	snprintf(nodestr, sizeof(nodestr), "%d", node);
	snprintf(filter, sizeof(filter), "sport = :%u", port);
	for (unsigned i = 0;; i++) {
		_cleanup_free_ char *out = NULL;

		if (bench_cmd(argv, 0, CMD_TIMEOUT_MS, &out, NULL, NULL) == 0 && strchr(out, ':'))
			return 0;
		if (bench_now_ns() > deadline)
			return bench_err_r(-ETIMEDOUT, "NPtcp does not listen on port %u in node %d",
					   port, node);
		if (i % 50 == 49 && !still_alive(c, pid, "the NPtcp receiver"))
			return -ECHILD;
		bench_sleep_ms(10);
	}
}

/* ---- NPtcp, held between its connect() and its first measurement ---- */

/*
 * What a process of a node is doing, and its TCP connection, from the
 * node's own /proc (its PIDs and its network namespace).
 */
struct proc_view {
	bool seen;		    /* its /proc/PID/syscall was read */
	long sys;		    /* the system call it sleeps in; -1: running */
	unsigned long arg0;	    /* that call's first argument (an fd for read) */
	int conns;		    /* its established TCP connections */
	int conn_fd;		    /* the first one's fd */
	uint32_t laddr, raddr;	    /* its addresses, network byte order */
	unsigned lport, rport;
};

#define MAX_VIEW_FDS 32

/* A socket fd of a viewed process: views[who] holds it. */
struct view_fd {
	int fd;
	unsigned long ino;
	size_t who;
};

/* "a.b.c.d:port" */
static void format_addr(uint32_t addr, unsigned port, char *buf, size_t len)
{
	struct in_addr a = { .s_addr = addr };
	char ip[INET_ADDRSTRLEN];

	if (!inet_ntop(AF_INET, &a, ip, sizeof(ip)))
		snprintf(ip, sizeof(ip), "?");
	snprintf(buf, len, "%s:%u", ip, port);
}

/* An IPv4 address in text, network byte order; 0 if it is not one. */
static uint32_t parse_addr(const char *s)
{
	struct in_addr a;

	return inet_pton(AF_INET, s, &a) == 1 ? a.s_addr : 0;
}

/*
 * views[i] for pids[i], all on node: one `ghost cluster exec` prints, for
 * each, the system call it sleeps in (/proc/PID/syscall), its socket fds,
 * then the node's /proc/net/tcp, whose inodes name the fds' connections.
 */
static int view_procs(const struct config *c, int node, const pid_t *pids, size_t n,
		      struct proc_view *views)
{
	static const char script[] =
		"for p; do echo \"pid $p\"; cat /proc/$p/syscall;"
		" for f in /proc/$p/fd/*; do echo \"fd ${f##*/} $(readlink \"$f\")\"; done;"
		" done 2>/dev/null; cat /proc/net/tcp";
	char nodestr[12], pidstr[2][16];
	const char *argv[16] = { c->ghost, "cluster", "exec", nodestr, "--", "sh", "-c", script,
				 "sh" };
	_cleanup_free_ char *out = NULL;
	struct view_fd fds[MAX_VIEW_FDS];
	size_t nfds = 0, cur = SIZE_MAX, na = 9;
	int r;

	assert(n <= ARRAY_SIZE(pidstr));
	snprintf(nodestr, sizeof(nodestr), "%d", node);
	for (size_t i = 0; i < n; i++) {
		snprintf(pidstr[i], sizeof(pidstr[i]), "%d", (int)pids[i]);
		argv[na++] = pidstr[i];
		views[i] = (struct proc_view){ .sys = -1, .conn_fd = -1 };
	}
	argv[na] = NULL;
	r = bench_cmd(argv, 0, CMD_TIMEOUT_MS, &out, NULL, NULL);
	if (r != 0)
		return bench_err_r(r < 0 ? r : -EPROTO, "cannot look into node %d", node);
	for (char *p = out; *p; p = strchr(p, '\n') + 1) {
		unsigned la, lp, ra, rp, st;
		unsigned long ino, arg0;
		long sys;
		int pid, fd;

		if (sscanf(p, " %*u: %x:%x %x:%x %x %*x:%*x %*x:%*x %*x %*u %*u %lu", &la, &lp, &ra,
			   &rp, &st, &ino) == 6) {
			/* state 1 is ESTABLISHED; the addresses are in network order */
			for (size_t k = 0; k < nfds && st == 1; k++) {
				struct proc_view *v = &views[fds[k].who];

				if (fds[k].ino != ino || v->conns++)
					continue;
				v->conn_fd = fds[k].fd;
				v->laddr = la;
				v->lport = lp;
				v->raddr = ra;
				v->rport = rp;
			}
		} else if (sscanf(p, "pid %d", &pid) == 1) {
			cur = SIZE_MAX;
			for (size_t i = 0; i < n; i++)
				if (pids[i] == pid)
					cur = i;
		} else if (cur == SIZE_MAX) {
			/* not ours */
		} else if (sscanf(p, "fd %d socket:[%lu]", &fd, &ino) == 2) {
			if (nfds < ARRAY_SIZE(fds))
				fds[nfds++] = (struct view_fd){ .fd = fd, .ino = ino, .who = cur };
		} else if (!views[cur].seen && !strncmp(p, "running", 7)) {
			views[cur].seen = true;
		} else if (!views[cur].seen && sscanf(p, "%ld 0x%lx", &sys, &arg0) == 2) {
			views[cur].seen = true;
			views[cur].sys = sys;
			views[cur].arg0 = arg0;
		}
		if (!strchr(p, '\n'))
			break;
	}
	return 0;
}

/* Is sys open() or openat()? The C library may use either. */
static bool sys_is_open(long sys)
{
#ifdef SYS_open
	if (sys == SYS_open)
		return true;
#endif
	return sys == SYS_openat;
}

/*
 * Where an NPtcp pair stands, the transmitter tpid on tnode and the
 * receiver rpid on node 1: 1 when the transmitter sleeps in open() (of its
 * output: it has connected and measured nothing), the receiver sleeps in
 * read() on its accepted connection, and the two hold the two ends of one
 * TCP connection; 0 when not (yet); -errno. *ret_direct: that connection is
 * what the placement calls for, over loopback when the two share a node,
 * else straight between their two nodes' addresses. desc says what it is.
 */
static int np_look(const struct config *c, int tnode, pid_t tpid, pid_t rpid, bool *ret_direct,
		   char *desc, size_t len)
{
	const pid_t both[2] = { tpid, rpid };
	struct proc_view v[2], *t = &v[0], *rv = &v[1];
	char ta[64], tr[64], ra[64];
	bool held, same;
	int r;

	*ret_direct = false;
	if (tnode == 1) {
		r = view_procs(c, 1, both, 2, v);
	} else {
		r = view_procs(c, tnode, &tpid, 1, t);
		if (r >= 0)
			r = view_procs(c, 1, &rpid, 1, rv);
	}
	if (r < 0)
		return r;
	format_addr(t->laddr, t->lport, ta, sizeof(ta));
	format_addr(t->raddr, t->rport, tr, sizeof(tr));
	format_addr(rv->laddr, rv->lport, ra, sizeof(ra));
	held = sys_is_open(t->sys) && t->conns == 1 && rv->sys == SYS_read &&
	       rv->conns == 1 && rv->arg0 == (unsigned long)rv->conn_fd;
	same = held && t->laddr == rv->raddr && t->lport == rv->rport &&
	       t->raddr == rv->laddr && t->rport == rv->lport;
	if (!same) {
		snprintf(desc, len,
			 "transmitter on node %d: %s, %d TCP connection%s (%s -> %s); receiver on "
			 "node 1: %s, %d TCP connection%s (%s)",
			 tnode, sys_is_open(t->sys) ? "in open()" : "not in open()", t->conns,
			 t->conns == 1 ? "" : "s", ta, tr,
			 rv->sys == SYS_read ? "in read()" : "not in read()", rv->conns,
			 rv->conns == 1 ? "" : "s", ra);
		return 0;
	}
	if (tnode == 1) {
		/* one node: the pair is in its /proc/net/tcp, so over lo */
		*ret_direct = t->laddr == t->raddr;
		snprintf(desc, len, "TCP over loopback on node 1, transmitter %s, receiver %s", ta,
			 ra);
	} else {
		*ret_direct = t->laddr == c->addr[tnode] && rv->laddr == c->addr[1];
		snprintf(desc, len,
			 "one TCP connection %s between the nodes, transmitter on node %d at %s, "
			 "receiver on node 1 at %s",
			 *ret_direct ? "straight" : "NOT straight", tnode, ta, ra);
	}
	return 1;
}

/* np_look() until the pair is held, up to timeout_ms; -ETIMEDOUT with
 * the last look in desc. */
static int np_wait(const struct config *c, int tnode, pid_t tpid, pid_t rpid,
		   unsigned timeout_ms, bool *ret_direct, char *desc, size_t len)
{
	uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000ULL;

	for (unsigned i = 1;; i++) {
		int r = np_look(c, tnode, tpid, rpid, ret_direct, desc, len);

		if (r != 0)
			return r;
		if (bench_now_ns() > deadline)
			return -ETIMEDOUT;
		if (i % 20 == 0 && (!still_alive(c, tpid, "the NPtcp transmitter") ||
				    !still_alive(c, rpid, "the NPtcp receiver")))
			return -ECHILD;
		bench_sleep_ms(10);
	}
}

/*
 * Open the FIFO the transmitter writes its output to, which lets its
 * open() return, and read until it closes it. A FIFO read end reports
 * POLLHUP only once a writer has come and gone since it was opened, so
 * poll() does not take "no writer yet" for the end.
 */
static int read_fifo(const struct config *c, const char *path, pid_t pid, char **ret)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	uint64_t deadline = bench_now_ns() + (uint64_t)c->wait_ms * 1000000ULL;
	char *buf = NULL;
	size_t len = 0;

	if (fd < 0)
		return bench_err_r(-errno, "cannot open '%s': %s", path, strerror(errno));
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		char chunk[4096], *grown;
		ssize_t n;
		int r;

		r = poll(&pfd, 1, 1000);
		if (r < 0 && errno != EINTR) {
			r = -errno;
			free(buf);
			return bench_err_r(r, "poll: %s", strerror(-r));
		}
		if (r <= 0) {
			if (bench_now_ns() > deadline ||
			    !still_alive(c, pid, "the NPtcp transmitter")) {
				free(buf);
				return bench_err_r(-ETIMEDOUT, "no end of the output in '%s'",
						   path);
			}
			continue;
		}
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0) {
			r = -errno;
			free(buf);
			return bench_err_r(r, "cannot read '%s': %s", path, strerror(-r));
		}
		if (n == 0)
			break;
		grown = realloc(buf, len + (size_t)n + 1);
		if (!grown) {
			free(buf);
			return -ENOMEM;
		}
		buf = grown;
		memcpy(buf + len, chunk, (size_t)n);
		len += (size_t)n;
		buf[len] = '\0';
	}
	if (!buf)
		return bench_err_r(-EPROTO, "the NPtcp transmitter wrote nothing");
	*ret = buf;
	return 0;
}

enum np_place {
	NP_NODES, /* receiver on node 1, transmitter on node 2, to node 1's address */
	NP_LO,	  /* both on node 1, to 127.0.0.1 */
	NP_MOVED, /* as NP_LO, then the transmitter moved to node 2 */
	NP_BACK,  /* as NP_MOVED, then the transmitter moved back to node 1 */
};

static unsigned np_seq; /* NP_PORT + np_seq: a port of its own for every NPtcp run */

/* The NPtcp command line of the receiver (host NULL) or the transmitter. */
static void np_argv(const struct config *c, const char **argv, const char *host,
		    const char *port, const char *maxstr, const char *out)
{
	size_t n = 0;

	argv[n++] = c->nptcp;
	if (host) {
		argv[n++] = "-h";
		argv[n++] = host;
	}
	/* No perturbations (-p 0): powers of two and 1.5 times them; quick:
	 * 100 repeats a size, else NetPIPE's adaptive count. */
	argv[n++] = "-P";
	argv[n++] = port;
	argv[n++] = "-p";
	argv[n++] = "0";
	argv[n++] = "-u";
	argv[n++] = maxstr;
	if (c->quick) {
		argv[n++] = "-n";
		argv[n++] = "100";
	}
	if (out) {
		argv[n++] = "-o";
		argv[n++] = out;
	}
	argv[n] = NULL;
}

/*
 * One NPtcp curve. The receiver always runs on node 1, as a managed
 * process; it keeps its listening socket, which Ghost does not move, so
 * the transmitter is the end that moves.
 *
 * NPtcp measures the moment it is connected, so the transmitter is held
 * at the one point between the two: its output (-o) is a FIFO, which
 * NPtcp opens right after connect() returns and before it sends a byte,
 * and open() of a FIFO for writing sleeps until a reader comes. While it
 * sleeps there, the connection exists, the receiver sleeps in read() on
 * it (its first sync message waits in the connection, and moves with it),
 * and nothing has been measured; a migration interrupts the open(), and
 * the copy restarts it where it lands. So the transmitter can be moved
 * (NP_MOVED, NP_BACK), and then the driver opens the FIFO, which lets it
 * go, and reads the output. The vanilla rows go the same way without the
 * moves, so that a Ghost row and its baseline differ in the moves only.
 */
static void measure_nptcp(const struct config *c, struct curve *cv, enum np_place place)
{
	char port[12], maxstr[24], fifo[PATH_MAX], host[64];
	const char *rx[16], *tx[16];
	_cleanup_free_ char *text = NULL;
	int tnode = place == NP_NODES ? 2 : 1;
	int moves = place == NP_MOVED ? 1 : place == NP_BACK ? 2 : 0;
	pid_t rpid = 0, tpid = 0;
	bool direct = false;
	int r;

	if (c->nptcp_na[0]) {
		snprintf(cv->na, sizeof(cv->na), "%s", c->nptcp_na);
		return;
	}
	np_seq++;
	snprintf(port, sizeof(port), "%u", NP_PORT + np_seq);
	snprintf(maxstr, sizeof(maxstr), "%llu", (unsigned long long)c->max_size);
	snprintf(host, sizeof(host), "%s", place == NP_NODES ? c->addr_str[1] : "127.0.0.1");
	work_path(c, fifo, sizeof(fifo), "np", np_seq, ".out");
	np_argv(c, rx, NULL, port, maxstr, NULL);
	np_argv(c, tx, host, port, maxstr, fifo);
	printf("  %-3s %s (%s) ...\n", cv->id, cv->what, cv->tool);
	fflush(stdout);

	r = mkfifo(fifo, 0600) < 0 ? -errno : 0;
	if (r < 0)
		bench_err("cannot make the FIFO '%s': %s", fifo, strerror(-r));
	if (r >= 0)
		r = start_managed(c, 1, c->cpu_server, rx, &rpid);
	if (r >= 0)
		r = wait_listening(c, 1, NP_PORT + np_seq, rpid);
	if (r >= 0)
		r = start_managed(c, tnode, c->cpu_client, tx, &tpid);
	if (r >= 0) {
		r = np_wait(c, tnode, tpid, rpid, READY_TIMEOUT_MS, &direct, cv->channel,
			    sizeof(cv->channel));
		if (r == -ETIMEDOUT)
			bench_err("NPtcp did not connect: %s", cv->channel);
	}
	for (int m = 0; m < moves && r >= 0; m++) {
		r = migrate(c, tpid, m == 0 ? 2 : 1, &cv->frozen[m], cv->na, sizeof(cv->na));
		if (r == 1)
			goto out; /* refused: n/a, with ghost's reason */
		if (r < 0)
			break;
		tnode = m == 0 ? 2 : 1;
		/* still held, and on the channel the new placement calls for */
		r = np_wait(c, tnode, tpid, rpid, HELD_TIMEOUT_MS, &direct, cv->channel,
			    sizeof(cv->channel));
		if (r == -ETIMEDOUT)
			bench_err("after the move to node %d: %s", tnode, cv->channel);
	}
	if (r >= 0) {
		printf("      %s: %s\n", direct ? "channel" : "WRONG channel", cv->channel);
		if (!direct)
			r = bench_err_r(-EPROTO, "%s %s: not the channel its placement calls for",
					cv->id, cv->what);
	}
	if (r >= 0)
		r = read_fifo(c, fifo, tpid, &text);
	if (r >= 0 && parse_nptcp(text, cv) < 0)
		r = bench_err_r(-EPROTO, "nothing to read in NPtcp's output '%s'", fifo);
	if (r < 0) {
		cv->failed = true;
		fail_msg("%s %s: the measurement failed", cv->id, cv->what);
	}
out:
	kill_managed(c, tpid);
	kill_managed(c, rpid);
}

/*
 * Wait until NPtcp's output file holds the line of a size of at least size
 * (0: now); *ret_lines, unless NULL, is how many lines it had then.
 */
static int wait_np_size(const struct config *c, const char *path, uint64_t size, pid_t pid,
			size_t *ret_lines)
{
	uint64_t deadline = bench_now_ns() + (uint64_t)c->wait_ms * 1000000ULL;

	for (unsigned i = 1;; i++) {
		_cleanup_free_ char *text = NULL;
		size_t lines = 0;
		double last = 0;

		if (read_file(path, &text) >= 0)
			for (char *p = text, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
				double v;

				lines++;
				if (sscanf(p, "%lf", &v) == 1)
					last = v;
			}
		if (last >= (double)size) {
			if (ret_lines)
				*ret_lines = lines;
			return 0;
		}
		if (bench_now_ns() > deadline)
			return bench_err_r(-ETIMEDOUT, "no line for %llu bytes in '%s'",
					   (unsigned long long)size, path);
		if (i % 100 == 0 && !still_alive(c, pid, "the NPtcp transmitter"))
			return -ECHILD;
		bench_sleep_ms(10);
	}
}

/*
 * Figure 9 with NPtcp: a run of all its sizes over a Ghost TCP stream,
 * both ends on node 1, during which the transmitter moves to node 2,
 * halfway through its sizes (once it has written the line of the size
 * nearest the square root of the largest). Its output is a plain file
 * here: a FIFO whose reader is not a managed process is not something
 * Ghost moves, and nothing needs holding, as it measures from the start.
 * The channel after the move is not looked at here (row 4t checks the same
 * move): looking into the nodes would take CPU from the run.
 */
static void measure_np_series(const struct config *c, struct np_series *ns)
{
	char port[12], maxstr[24], out[PATH_MAX];
	const char *rx[16], *tx[16];
	_cleanup_free_ char *text = NULL;
	uint64_t trigger = 1;
	pid_t rpid = 0, tpid = 0;
	int r;

	ns->frozen_ms = NAN;
	if (c->nptcp_na[0]) {
		snprintf(ns->na, sizeof(ns->na), "%s", c->nptcp_na);
		return;
	}
	while (trigger * trigger < c->max_size)
		trigger *= 2;
	np_seq++;
	snprintf(port, sizeof(port), "%u", NP_PORT + np_seq);
	snprintf(maxstr, sizeof(maxstr), "%llu", (unsigned long long)c->max_size);
	work_path(c, out, sizeof(out), "np", np_seq, ".out");
	np_argv(c, rx, NULL, port, maxstr, NULL);
	np_argv(c, tx, "127.0.0.1", port, maxstr, out);
	printf("  %-3s %s ...\n", ns->cv.id, ns->cv.what);
	fflush(stdout);

	r = start_managed(c, 1, c->cpu_server, rx, &rpid);
	if (r >= 0)
		r = wait_listening(c, 1, NP_PORT + np_seq, rpid);
	if (r >= 0)
		r = start_managed(c, 1, c->cpu_client, tx, &tpid);
	if (r >= 0)
		r = wait_np_size(c, out, trigger, tpid, &ns->move_first);
	if (r >= 0)
		r = migrate(c, tpid, 2, &ns->frozen_ms, ns->na, sizeof(ns->na));
	if (r >= 0)
		r = wait_np_size(c, out, 0, tpid, &ns->move_last);
	if (r >= 0)
		r = wait_np_size(c, out, c->max_size, tpid, NULL);
	if (r >= 0)
		r = read_file(out, &text);
	if (r >= 0 && parse_nptcp(text, &ns->cv) < 0)
		r = bench_err_r(-EPROTO, "nothing to read in NPtcp's output '%s'", out);
	if (r >= 0)
		ns->ran = true;
	else
		fail_msg("%s %s: the run failed", ns->cv.id, ns->cv.what);
	kill_managed(c, tpid);
	kill_managed(c, rpid);
}

/* ---- throughput over time ---- */

static int parse_series(const char *text, struct series *s, uint64_t *ret_t0)
{
	unsigned long long t0 = 0, size, interval;
	bool head = false;

	for (const char *p = text; *p; p = strchr(p, '\n') + 1) {
		unsigned long long start, rounds;
		double mbps, gap, at;

		if (sscanf(p, "t0_ns %llu size %llu interval_ms %llu", &t0, &size, &interval) ==
		    3) {
			head = true;
			s->interval_ms = (double)interval;
		} else if (sscanf(p, "maxgap_ms %lf at_ms %lf", &gap, &at) == 2) {
			s->maxgap_ms = gap;
			s->gap_at_ms = at;
		} else if (sscanf(p, "gap %lf %lf", &at, &gap) == 2 && s->n_gaps < MAX_GAPS) {
			s->gaps[s->n_gaps][0] = at;
			s->gaps[s->n_gaps++][1] = gap;
		} else if (sscanf(p, "bin %llu %llu %lf", &start, &rounds, &mbps) == 3 &&
			   s->n < MAX_BINS) {
			s->mbps[s->n++] = mbps;
		}
		if (!strchr(p, '\n'))
			break;
	}
	*ret_t0 = t0;
	return head && s->n ? 0 : -EPROTO;
}

enum series_event { EV_STOP, EV_MOVE };

#define N_SERIES 3

/*
 * A ping-pong series between a server on server_node and a client on node
 * 1; halfway through, the server is stopped for STOP_MS (EV_STOP, to check
 * that the series sees a pause) or moved to node 2 (EV_MOVE).
 */
static void measure_series(const struct config *c, struct series *s, bool tcp, int server_node,
			   enum series_event ev)
{
	static unsigned seq;
	char rdv[PATH_MAX], srv[PATH_MAX], cli[PATH_MAX], go[PATH_MAX], ready[PATH_MAX + 8];
	char sizestr[24], intstr[16], durstr[16], pidstr[16];
	const char *kind = tcp ? "tcp" : "unix";
	const char *serve[] = { c->pingpong, "serve", kind, rdv, srv, NULL };
	const char *ping[] = { c->pingpong,   "ping",	kind,	     rdv,    cli,
			       "--series",    "--go",	go,	     "--size", sizestr,
			       "--interval-ms", intstr, "--duration-ms", durstr, NULL };
	const char *stop[] = { c->ghost, "kill", "-STOP", pidstr, NULL };
	const char *cont[] = { c->ghost, "kill", "-CONT", pidstr, NULL };
	_cleanup_free_ char *text = NULL;
	uint64_t t1 = 0, t2 = 0, t0 = 0;
	pid_t spid = 0, cpid = 0;
	int r;

	seq++;
	work_path(c, rdv, sizeof(rdv), "series", seq, tcp ? ".addr" : ".sock");
	work_path(c, srv, sizeof(srv), "series", seq, ".server");
	work_path(c, cli, sizeof(cli), "series", seq, ".client");
	work_path(c, go, sizeof(go), "series", seq, ".go");
	snprintf(sizestr, sizeof(sizestr), "%u", c->series_size);
	snprintf(intstr, sizeof(intstr), "%u", c->interval_ms);
	snprintf(durstr, sizeof(durstr), "%u", c->series_ms);
	printf("  %-3s %s ...\n", s->id, s->what);
	fflush(stdout);
	s->frozen_ms = s->stopped_ms = NAN;

	r = start_managed(c, server_node, c->cpu_server, serve, &spid);
	if (r >= 0)
		r = start_managed(c, 1, c->cpu_client, ping, &cpid);
	if (r >= 0) {
		snprintf(ready, sizeof(ready), "%s.ready", srv);
		r = wait_file(c, ready, NULL, spid, "the pingpong server", READY_TIMEOUT_MS, NULL);
	}
	if (r >= 0) {
		snprintf(ready, sizeof(ready), "%s.ready", cli);
		r = wait_file(c, ready, NULL, cpid, "the pingpong client", READY_TIMEOUT_MS, NULL);
	}
	if (r >= 0)
		r = touch(go);
	if (r < 0)
		goto fail;
	bench_sleep_ms(c->series_ms / 2);
	snprintf(pidstr, sizeof(pidstr), "%d", (int)spid);
	t1 = bench_now_ns();
	if (ev == EV_STOP) {
		uint64_t stopped, resumed;

		r = bench_cmd(stop, 0, CMD_TIMEOUT_MS, NULL, NULL, NULL);
		stopped = bench_now_ns();
		bench_sleep_ms(STOP_MS);
		resumed = bench_now_ns();
		if (bench_cmd(cont, 0, CMD_TIMEOUT_MS, NULL, NULL, NULL) != 0 || r != 0) {
			r = bench_err_r(-EPROTO, "ghost kill -STOP/-CONT %d failed", (int)spid);
			goto fail;
		}
		s->stopped_ms = bench_ms(resumed - stopped);
	} else {
		r = migrate(c, spid, 2, &s->frozen_ms, s->na, sizeof(s->na));
		if (r < 0)
			goto fail;
	}
	t2 = bench_now_ns();
	r = wait_file(c, cli, "end\n", cpid, "the pingpong client", c->wait_ms, &text);
	if (r >= 0 && parse_series(text, s, &t0) < 0)
		r = bench_err_r(-EPROTO, "nothing to read in '%s'", cli);
	if (r < 0)
		goto fail;
	s->ran = true;
	s->ev_start_ms = t1 > t0 ? bench_ms(t1 - t0) : 0;
	s->ev_end_ms = t2 > t0 ? bench_ms(t2 - t0) : 0;
	/* the longest pause that overlaps the stop or the migration */
	s->ev_gap_ms = s->ev_gap_at_ms = 0;
	for (size_t g = 0; g < s->n_gaps; g++) {
		double at = s->gaps[g][0], len = s->gaps[g][1];

		if (at <= s->ev_end_ms && at + len >= s->ev_start_ms && len > s->ev_gap_ms) {
			s->ev_gap_ms = len;
			s->ev_gap_at_ms = at;
		}
	}
	goto out;
fail:
	fail_msg("%s %s: the series failed", s->id, s->what);
out:
	kill_managed(c, cpid);
	kill_managed(c, spid);
}

/* The freeze of a migration of the same program without a stream. */
static double measure_idle_freeze(const struct config *c)
{
	double v[8];
	unsigned n = 0;

	printf("  the same program without a stream, moved 1 -> 2 (%u time%s) ...\n",
	       c->freeze_reps, c->freeze_reps == 1 ? "" : "s");
	fflush(stdout);
	for (unsigned i = 0; i < c->freeze_reps && i < ARRAY_SIZE(v); i++) {
		char out[PATH_MAX], ready[PATH_MAX + 8], sizestr[24], why[WHY_MAX];
		const char *idle[] = { c->pingpong, "idle", out, "--max-size", sizestr, NULL };
		pid_t pid = 0;
		double ms = NAN;
		int r;

		work_path(c, out, sizeof(out), "idle", i, "");
		snprintf(ready, sizeof(ready), "%s.ready", out);
		snprintf(sizestr, sizeof(sizestr), "%u", c->series_size);
		r = start_managed(c, 1, c->cpu_server, idle, &pid);
		if (r >= 0)
			r = wait_file(c, ready, NULL, pid, "pingpong idle", READY_TIMEOUT_MS, NULL);
		if (r >= 0) {
			r = migrate(c, pid, 2, &ms, why, sizeof(why));
			if (r == 1)
				fail_msg("ghost migrate of pingpong idle was refused: %s", why);
			else if (r == 0)
				v[n++] = ms;
		}
		if (r < 0)
			fail_msg("the migration without a stream failed");
		kill_managed(c, pid);
	}
	return bench_median(v, n);
}

/* ---- the tables ---- */

enum {
	C_NP_NODES,
	C_PP_NODES,
	C_NP_LO,
	C_PP_LO,
	C_PP_UNIX,
	C_TCP_MOVED,
	C_UNIX_MOVED,
	C_TCP_BACK,
	C_UNIX_BACK,
	_C_MAX
};

/* Each Ghost row's baseline. */
static const int baseline_of[_C_MAX] = {
	[C_TCP_MOVED] = C_NP_NODES, [C_UNIX_MOVED] = C_PP_NODES,
	[C_TCP_BACK] = C_NP_LO,	    [C_UNIX_BACK] = C_PP_UNIX,
};

static bool is_ghost_row(int i)
{
	return i >= C_TCP_MOVED;
}

static bool measured(const struct curve *cv)
{
	return !cv->na[0] && !cv->failed && cv->n;
}

/* Latency: the median half round trip of messages up to SMALL_MSG bytes. */
static double curve_latency(const struct curve *cv)
{
	double v[MAX_POINTS];
	size_t n = 0;

	for (size_t i = 0; i < cv->n; i++)
		if (cv->size[i] <= SMALL_MSG)
			v[n++] = cv->lat_us[i];
	return bench_median(v, n);
}

static double curve_at(const struct curve *cv, uint64_t size)
{
	for (size_t i = 0; i < cv->n; i++)
		if (cv->size[i] == size)
			return cv->mbps[i];
	return NAN;
}

static double curve_peak(const struct curve *cv)
{
	double peak = NAN;

	for (size_t i = 0; i < cv->n; i++)
		if (isnan(peak) || cv->mbps[i] > peak)
			peak = cv->mbps[i];
	return peak;
}

static void print_figure8(const struct config *c, const struct curve *cv)
{
	static const uint64_t cols[] = { 1024, 65536, 1 << 20, 4 << 20 };

	printf("\nFigure 8: NetPIPE ping-pong between two managed processes (medians of %u run%s)\n"
	       "lat us: median half round trip of 1-%d byte messages; MB/s (10^6 B/s): message\n"
	       "bytes per half round trip, at a size and the peak over all sizes; vs: the row\n"
	       "of the same run a Ghost row is held to (target: latency at most %.2fx, peak at\n"
	       "least %.2fx). The Ghost TCP rows and their baselines are NPtcp; NPtcp speaks TCP\n"
	       "only, so the Ghost Unix rows and theirs are pingpong.\n\n",
	       c->reps, c->reps == 1 ? "" : "s", SMALL_MSG, TARGET_RATIO, 2.0 - TARGET_RATIO);
	printf("%-3s %-34s %-8s %8s %8s %8s %8s %8s %8s | %-3s %6s %6s %s\n", "row", "stream",
	       "tool", "lat us", "1 KiB", "64 KiB", "1 MiB", "4 MiB", "peak", "vs", "lat x",
	       "bw x", "target");
	for (int i = 0; i < _C_MAX; i++) {
		const struct curve *w = &cv[i];

		printf("%-3s %-34s %-8s", w->id, w->what, w->tool);
		if (w->na[0]) {
			printf(" n/a: %s\n", w->na);
			continue;
		}
		if (!measured(w)) {
			printf(" failed (see above)\n");
			continue;
		}
		bench_cell(curve_latency(w), 8, 2);
		for (size_t k = 0; k < ARRAY_SIZE(cols); k++)
			bench_cell(cols[k] <= c->max_size ? curve_at(w, cols[k]) : NAN, 8, 1);
		bench_cell(curve_peak(w), 8, 1);
		if (is_ghost_row(i)) {
			const struct curve *b = &cv[baseline_of[i]];
			double lx = curve_latency(w) / curve_latency(b);
			double bx = curve_peak(w) / curve_peak(b);

			printf(" | %-3s", b->id);
			bench_cell(lx, 6, 3);
			bench_cell(bx, 6, 3);
			if (isnan(lx) || isnan(bx))
				printf(" -");
			else
				printf(" %s", lx <= TARGET_RATIO && bx >= 2.0 - TARGET_RATIO ? "PASS"
											    : "MISS");
		}
		printf("\n");
	}

	printf("\nFigure 8 curves: MB/s by message size (n/a: not measured)\n\n%9s", "bytes");
	for (int i = 0; i < _C_MAX; i++)
		printf(" %8s", cv[i].id);
	printf("\n");
	for (uint64_t size = 1; size <= c->max_size; size *= 2) {
		printf("%9llu", (unsigned long long)size);
		for (int i = 0; i < _C_MAX; i++) {
			if (cv[i].na[0])
				printf(" %8s", "n/a");
			else
				bench_cell(curve_at(&cv[i], size), 8, 1);
		}
		printf("\n");
	}

	printf("\n");
	for (int i = C_TCP_MOVED; i < _C_MAX; i++) {
		const struct curve *w = &cv[i], *b = &cv[baseline_of[i]];
		double lw = curve_latency(w), lb = curve_latency(b);
		double pw = curve_peak(w), pb = curve_peak(b);

		printf("target %s (%s, within 5%% of %s %s): ", w->id, w->what, b->id, b->what);
		if (w->na[0])
			printf("n/a: %s\n", w->na);
		else if (!measured(w) || !measured(b))
			printf("not measured\n");
		else
			printf("%s: latency %.2f vs %.2f us (%.3fx), peak %.0f vs %.0f MB/s "
			       "(%.3fx); moved frozen %.1f ms%s\n",
			       lw / lb <= TARGET_RATIO && pw / pb >= 2.0 - TARGET_RATIO ? "PASS"
											 : "MISS",
			       lw, lb, lw / lb, pw, pb, pw / pb, w->frozen[0],
			       i >= C_TCP_BACK ? " (and back)" : "");
	}

	/* what each NPtcp pair was connected by when it started measuring */
	printf("\n");
	for (int i = 0; i < _C_MAX; i++)
		if (cv[i].channel[0])
			printf("channel %s (%s), as NPtcp started%s: %s\n", cv[i].id, cv[i].what,
			       c->reps > 1 ? " in the first run that measured it" : "",
			       cv[i].channel);
}

/* Mean MB/s of the bins wholly before from_ms, or wholly after to_ms. */
static double series_mean(const struct series *s, double from_ms, double to_ms, bool before)
{
	double sum = 0;
	size_t n = 0;

	for (size_t b = 0; b < s->n; b++) {
		double start = (double)b * s->interval_ms, end = start + s->interval_ms;

		if ((before && end <= from_ms) || (!before && start >= to_ms)) {
			sum += s->mbps[b];
			n++;
		}
	}
	return n ? sum / (double)n : NAN;
}

static bool in_event(const struct series *s, size_t b)
{
	double start = (double)b * s->interval_ms, end = start + s->interval_ms;

	return s->ran && start < s->ev_end_ms && end > s->ev_start_ms;
}

/* The median ratio of w's bandwidth to base's over w's sizes from to to,
 * the sizes base has; their number in *ret_n. */
static double median_ratio(const struct curve *w, size_t from, size_t to,
			   const struct curve *base, size_t *ret_n)
{
	double v[MAX_POINTS];
	size_t n = 0;

	for (size_t i = from; i < to && i < w->n; i++) {
		double b = curve_at(base, w->size[i]);

		if (!isnan(b) && b > 0)
			v[n++] = w->mbps[i] / b;
	}
	*ret_n = n;
	return bench_median(v, n);
}

/*
 * Figure 9 with NPtcp: the bandwidth NPtcp printed at each size, next to
 * the vanilla NPtcp row of the same placement measured in the same run,
 * right before and after it: both on node 1 (2) before the move, across
 * the nodes (1) after it.
 */
static void print_figure9a(const struct config *c, const struct np_series *ns,
			   const struct curve runs[][MAX_REPS])
{
	const struct curve *lo = &runs[C_NP_LO][0], *apart = &runs[C_NP_NODES][0];
	const struct np_series *w = &ns[0];

	printf("\nFigure 9a: NPtcp over a Ghost TCP stream, both ends on node 1; halfway\n"
	       "through its sizes the transmitter moves to node 2. MB/s as in Figure 8, run 1,\n"
	       "next to the vanilla NPtcp row of the same placement and run: %s (both on node\n"
	       "1) before the move, %s (node 2 -> node 1) after it; * sizes in progress while\n"
	       "the move ran\n\n",
	       lo->id, apart->id);
	if (!w->ran) {
		printf("  %s%s\n", c->nptcp_na[0] ? "n/a: " : "failed (see above)", c->nptcp_na);
	} else {
		printf("%10s %9s  %-3s %9s %7s\n", "bytes", "N MB/s", "vs", "MB/s", "ratio");
		for (size_t i = 0; i < w->cv.n; i++) {
			bool during = i >= w->move_first && i <= w->move_last && !w->na[0];
			const struct curve *b = i < w->move_first || w->na[0] ? lo : apart;
			double base = during ? NAN : curve_at(b, w->cv.size[i]);

			printf("%9llu%c", (unsigned long long)w->cv.size[i], during ? '*' : ' ');
			bench_cell(w->cv.mbps[i], 9, 1);
			printf("  %-3s", during ? "" : b->id);
			bench_cell(base, 9, 1);
			bench_cell(w->cv.mbps[i] / base, 7, 3);
			printf("\n");
		}
	}
	printf("\n");
	for (unsigned r = 0; r < c->reps; r++) {
		const struct np_series *x = &ns[r];
		const struct curve *lo_r = &runs[C_NP_LO][r], *apart_r = &runs[C_NP_NODES][r];
		unsigned long long first, last;
		size_t nb, na;
		double before, after;

		printf("N run %u: ", r + 1);
		if (!x->ran) {
			printf("%s%s\n", c->nptcp_na[0] ? "n/a: " : "failed (see above)",
			       c->nptcp_na);
			continue;
		}
		if (x->na[0]) {
			before = median_ratio(&x->cv, 0, x->cv.n, lo_r, &nb);
			printf("the move was refused (n/a: %s); %.3fx of %s (median over all %zu "
			       "sizes, on node 1)\n",
			       x->na, before, lo_r->id, nb);
			continue;
		}
		before = median_ratio(&x->cv, 0, x->move_first, lo_r, &nb);
		after = median_ratio(&x->cv, x->move_last + 1, x->cv.n, apart_r, &na);
		first = x->cv.size[MIN(x->move_first, x->cv.n - 1)];
		last = x->cv.size[MIN(x->move_last, x->cv.n - 1)];
		if (first == last)
			printf("the move ran during the %llu-byte size", first);
		else
			printf("the move ran during the %llu- to %llu-byte sizes", first, last);
		printf(", frozen %.1f ms; before it\n  %.3fx of %s (median over %zu sizes), after "
		       "it %.3fx of %s (median over %zu sizes)\n",
		       x->frozen_ms, before, lo_r->id, nb, after, apart_r->id, na);
	}
	printf("NPtcp is not the tool for the pause or the throughput over time: it prints\n"
	       "one line per message size, the best of 3 trials of the size (after one\n"
	       "calibration of 100 round trips at the start), so a pause inside a trial never\n"
	       "reaches its output, and it prints no times. Figure 9b measures those with\n"
	       "pingpong --series.\n");
}

static void print_figure9(const struct config *c, struct series s[][MAX_REPS], double idle_frozen)
{
	size_t bins = 0;

	printf("\nFigure 9b: throughput over time of a ping-pong of %u-byte messages (pingpong\n"
	       "--series), MB/s per %u ms\n"
	       "(run 1 of each series; * the stop or the migration ran in that interval)\n\n%8s",
	       c->series_size, c->interval_ms, "t ms");
	for (size_t k = 0; k < N_SERIES; k++) {
		printf("  %10s", s[k][0].id);
		if (s[k][0].n > bins)
			bins = s[k][0].n;
	}
	printf("\n");
	for (size_t b = 0; b < bins; b++) {
		printf("%8.0f", (double)b * c->interval_ms);
		for (size_t k = 0; k < N_SERIES; k++) {
			const struct series *w = &s[k][0];

			if (b < w->n)
				printf("  %9.1f%c", w->mbps[b], in_event(w, b) ? '*' : ' ');
			else
				printf("  %10s", "-");
		}
		printf("\n");
	}
	printf("\n");
	for (size_t k = 0; k < N_SERIES; k++) {
		printf("%s %s:\n", s[k][0].id, s[k][0].what);
		for (unsigned r = 0; r < c->reps; r++) {
			const struct series *w = &s[k][r];

			printf("  run %u: ", r + 1);
			if (!w->ran) {
				printf("failed (see above)\n");
				continue;
			}
			printf("%.0f MB/s before, %.0f after; longest pause %.1f ms at %.0f ms;\n    ",
			       series_mean(w, w->ev_start_ms, w->ev_end_ms, true),
			       series_mean(w, w->ev_start_ms, w->ev_end_ms + w->ev_gap_ms, false),
			       w->maxgap_ms, w->gap_at_ms);
			if (!isnan(w->stopped_ms)) {
				/* the check of the machinery: a pause we made is seen */
				bool seen = w->ev_gap_ms >= 0.8 * w->stopped_ms;

				printf("the server stopped at least %.1f ms between %.0f and %.0f ms, "
				       "the longest pause then %.1f ms at %.0f ms: %s\n",
				       w->stopped_ms, w->ev_start_ms, w->ev_end_ms, w->ev_gap_ms,
				       w->ev_gap_at_ms, seen ? "seen" : "MISSED");
				if (!seen) {
					failures++;
					bench_err("series %s run %u did not see the %.1f ms stop", w->id,
						  r + 1, w->stopped_ms);
				}
			} else if (w->na[0]) {
				printf("the migration 1 -> 2 from %.0f to %.0f ms: n/a: %s (the refused "
				       "attempt paused the stream %.1f ms)\n",
				       w->ev_start_ms, w->ev_end_ms, w->na, w->ev_gap_ms);
			} else {
				printf("the migration 1 -> 2 from %.0f to %.0f ms: frozen %.1f ms, the "
				       "longest pause then %.1f ms at %.0f ms\n",
				       w->ev_start_ms, w->ev_end_ms, w->frozen_ms, w->ev_gap_ms,
				       w->ev_gap_at_ms);
			}
		}
	}
	printf("\nthe same program without a stream, moved 1 -> 2: frozen %.1f ms (median of %u)\n",
	       idle_frozen, c->freeze_reps);
	for (size_t k = 0; k < N_SERIES; k++) {
		const char *na = NULL;
		double gaps[MAX_REPS], pause, added;
		size_t n = 0;

		if (!isnan(s[k][0].stopped_ms))
			continue;
		for (unsigned r = 0; r < c->reps; r++) {
			const struct series *w = &s[k][r];

			if (w->ran && w->na[0] && !na)
				na = w->na;
			if (w->ran && !w->na[0])
				gaps[n++] = w->ev_gap_ms;
		}
		pause = bench_median(gaps, n);
		added = pause - idle_frozen;
		printf("target %s (the pause a stream adds to a migration < %.0f ms): ", s[k][0].id,
		       TARGET_PAUSE_MS);
		if (na)
			printf("n/a: %s\n", na);
		else if (isnan(added))
			printf("not measured\n");
		else
			printf("%s: the stream paused %.1f ms (median of %zu), the same program "
			       "without a stream is frozen %.1f ms: %.1f ms added\n",
			       added < TARGET_PAUSE_MS ? "PASS" : "MISS", pause, n, idle_frozen, added);
	}
}

/* ---- the driver ---- */

/* Node 1's and node 2's addresses, from ghost cluster status. */
static void node_addresses(struct config *c)
{
	const char *argv[] = { c->ghost, "cluster", "status", "--json", NULL };
	_cleanup_free_ char *out = NULL;

	if (bench_cmd(argv, 0, CMD_TIMEOUT_MS, &out, NULL, NULL) != 0)
		out = NULL;
	for (int n = 1; n <= 2; n++) {
		char *buf = c->addr_str[n], pat[16];
		const char *p;

		snprintf(pat, sizeof(pat), "\"id\":%d,", n);
		p = out ? strstr(out, pat) : NULL;
		if (!p || json_string(p, "address", buf, sizeof(c->addr_str[n])) < 0)
			snprintf(buf, sizeof(c->addr_str[n]), NODE_ADDR_FMT, n);
		c->addr[n] = parse_addr(buf);
	}
}

/*
 * The curve of the runs of one row: at each size the median latency and
 * bandwidth over the runs that measured it. A row refused in any run is
 * n/a with the first reason; a row no run measured has failed.
 */
static void combine_curves(struct curve *out, const struct curve *runs, unsigned n)
{
	const struct curve *first = NULL;
	double fz[2][MAX_REPS];
	size_t nf = 0;

	out->n = out->runs = 0;
	out->frozen[0] = out->frozen[1] = NAN;
	for (unsigned r = 0; r < n; r++) {
		if (runs[r].na[0] && !out->na[0])
			snprintf(out->na, sizeof(out->na), "%s", runs[r].na);
		if (!measured(&runs[r]))
			continue;
		if (!first) {
			first = &runs[r];
			snprintf(out->channel, sizeof(out->channel), "%s", first->channel);
		}
		fz[0][nf] = runs[r].frozen[0];
		fz[1][nf++] = runs[r].frozen[1];
		out->runs++;
	}
	if (out->na[0])
		return;
	if (!first) {
		out->failed = true;
		return;
	}
	for (size_t i = 0; i < first->n; i++) {
		double lat[MAX_REPS], bw[MAX_REPS];
		size_t m = 0;

		for (unsigned r = 0; r < n; r++) {
			if (!measured(&runs[r]))
				continue;
			for (size_t k = 0; k < runs[r].n; k++)
				if (runs[r].size[k] == first->size[i]) {
					lat[m] = runs[r].lat_us[k];
					bw[m++] = runs[r].mbps[k];
					break;
				}
		}
		out->size[out->n] = first->size[i];
		out->lat_us[out->n] = bench_median(lat, m);
		out->mbps[out->n++] = bench_median(bw, m);
	}
	out->frozen[0] = bench_median(fz[0], nf);
	out->frozen[1] = bench_median(fz[1], nf);
}

static int driver(struct config *c)
{
	static const struct curve rows[_C_MAX] = {
		[C_NP_NODES] = { .id = "1", .what = "vanilla TCP, node 2 -> node 1", .tool = "NPtcp" },
		[C_PP_NODES] = { .id = "1p", .what = "vanilla TCP, node 1 -> node 2", .tool = "pingpong" },
		[C_NP_LO] = { .id = "2", .what = "vanilla TCP loopback, node 1", .tool = "NPtcp" },
		[C_PP_LO] = { .id = "2p", .what = "vanilla TCP loopback, node 1", .tool = "pingpong" },
		[C_PP_UNIX] = { .id = "3", .what = "vanilla Unix socket, node 1", .tool = "pingpong" },
		[C_TCP_MOVED] = { .id = "4t", .what = "Ghost TCP, one end moved 1 -> 2",
				  .tool = "NPtcp" },
		[C_UNIX_MOVED] = { .id = "4u", .what = "Ghost Unix, one end moved 1 -> 2",
				   .tool = "pingpong" },
		[C_TCP_BACK] = { .id = "5t", .what = "Ghost TCP, moved 1 -> 2 -> 1", .tool = "NPtcp" },
		[C_UNIX_BACK] = { .id = "5u", .what = "Ghost Unix, moved 1 -> 2 -> 1",
				  .tool = "pingpong" },
	};
	static const struct series kinds[N_SERIES] = {
		{ .id = "V", .what = "vanilla TCP node 1 -> node 2, the server stopped halfway" },
		{ .id = "Gt", .what = "Ghost TCP, both on node 1, the server moved to node 2 halfway" },
		{ .id = "Gu", .what = "Ghost Unix, both on node 1, the server moved to node 2 halfway" },
	};
	static const struct curve np_kind = {
		.id = "N", .what = "Ghost TCP, both on node 1, the transmitter moved to node 2 "
				   "halfway", .tool = "NPtcp",
	};
	static struct curve runs[_C_MAX][MAX_REPS], cv[_C_MAX];
	static struct series s[N_SERIES][MAX_REPS];
	static struct np_series ns[MAX_REPS];
	double idle_frozen;

	node_addresses(c);
	printf("Figure 8 (latency and bandwidth) and 9a (NPtcp, a move halfway), %u run%s of\n"
	       "every row, each Ghost row next to its baseline:\n",
	       c->reps, c->reps == 1 ? "" : "s");
	for (unsigned r = 0; r < c->reps; r++) {
		if (c->reps > 1)
			printf(" run %u of %u\n", r + 1, c->reps);
		for (int i = 0; i < _C_MAX; i++) {
			runs[i][r] = rows[i];
			runs[i][r].frozen[0] = runs[i][r].frozen[1] = NAN;
		}
		ns[r] = (struct np_series){ .cv = np_kind };
		/* A Ghost row and its baseline follow each other: on a shared
		 * machine the load moves within a run of several minutes. */
		measure_pingpong(c, &runs[C_PP_NODES][r], true, 2, 0);
		measure_pingpong(c, &runs[C_UNIX_MOVED][r], false, 1, 1);
		measure_pingpong(c, &runs[C_PP_UNIX][r], false, 1, 0);
		measure_pingpong(c, &runs[C_UNIX_BACK][r], false, 1, 2);
		measure_pingpong(c, &runs[C_PP_LO][r], true, 1, 0);
		measure_nptcp(c, &runs[C_TCP_BACK][r], NP_BACK);
		measure_nptcp(c, &runs[C_NP_LO][r], NP_LO);
		measure_np_series(c, &ns[r]);
		measure_nptcp(c, &runs[C_NP_NODES][r], NP_NODES);
		measure_nptcp(c, &runs[C_TCP_MOVED][r], NP_MOVED);
	}
	for (int i = 0; i < _C_MAX; i++) {
		cv[i] = rows[i];
		combine_curves(&cv[i], runs[i], c->reps);
	}
	printf("Figure 9b (a migration in the middle of a stream), %u run%s of every series:\n",
	       c->reps, c->reps == 1 ? "" : "s");
	idle_frozen = measure_idle_freeze(c);
	for (unsigned r = 0; r < c->reps; r++) {
		for (int k = 0; k < N_SERIES; k++)
			s[k][r] = kinds[k];
		measure_series(c, &s[0][r], true, 2, EV_STOP);
		measure_series(c, &s[1][r], true, 1, EV_MOVE);
		measure_series(c, &s[2][r], false, 1, EV_MOVE);
	}
	kill_all_managed(c);

	print_figure8(c, cv);
	print_figure9a(c, ns, runs);
	print_figure9(c, s, idle_frozen);
	fflush(stdout);
	return failures ? -EIO : 0;
}

/* ---- the supervisor ---- */

static volatile sig_atomic_t stop_sig;
static volatile pid_t driver_pid;

static void on_stop(int sig)
{
	stop_sig = sig;
	if (driver_pid > 0)
		kill(driver_pid, sig);
}

/* An executable named name in PATH, malloc()ed, or NULL. */
static char *find_in_path(const char *name)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		if (n && snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, name) <
				 (int)sizeof(buf) &&
		    access(buf, X_OK) == 0)
			return realpath(buf, NULL);
		path += n;
		if (*path == ':')
			path++;
	}
	return NULL;
}

static int apt_get(const char *const *argv)
{
	_cleanup_free_ char *err = NULL;
	int r = bench_cmd(argv, 0, 600000U, NULL, &err, NULL);

	if (r != 0 && err && *err)
		fprintf(stderr, "%s", err);
	return r;
}

/* NPtcp from --nptcp, PATH, or installed with apt-get (Debian's
 * netpipe-tcp); otherwise the NPtcp rows say why they are missing. */
static void find_nptcp(struct config *c)
{
	const char *install[] = { "apt-get", "install", "-y", "-qq", "--no-install-recommends",
				  "netpipe-tcp", NULL };
	const char *update[] = { "apt-get", "update", "-qq", NULL };

	if (c->nptcp) {
		char *given = c->nptcp;

		c->nptcp = realpath(given, NULL);
		if (!c->nptcp || access(c->nptcp, X_OK) < 0) {
			free(c->nptcp);
			c->nptcp = NULL;
			snprintf(c->nptcp_na, sizeof(c->nptcp_na), "no NPtcp at '%s'", given);
		}
		free(given);
		return;
	}
	c->nptcp = find_in_path("NPtcp");
	if (c->nptcp)
		return;
	if (!c->install) {
		snprintf(c->nptcp_na, sizeof(c->nptcp_na),
			 "NPtcp is not installed (apt-get install netpipe-tcp)");
		return;
	}
	printf("NPtcp is missing: apt-get install -y netpipe-tcp ...\n");
	fflush(stdout);
	setenv("DEBIAN_FRONTEND", "noninteractive", 1);
	if (apt_get(install) != 0 && apt_get(update) == 0)
		apt_get(install);
	c->nptcp = find_in_path("NPtcp");
	if (!c->nptcp)
		snprintf(c->nptcp_na, sizeof(c->nptcp_na),
			 "NPtcp is not installed and apt-get install netpipe-tcp failed");
}

static int supervise(struct config *c)
{
	char tmpl[] = "/tmp/ghost-bench-streams.XXXXXX", dir[PATH_MAX];
	const char *up[] = { c->ghost, "cluster", "up", "--nodes", "2", NULL, NULL };
	const char *down[] = { c->ghost, "cluster", "down", NULL };
	struct sigaction sa = { .sa_handler = on_stop };
	int r, st;
	pid_t pid;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	find_nptcp(c);
	if (c->encrypt && !strcmp(c->encrypt, "no"))
		up[5] = "--no-encrypt";
	if (!mkdtemp(tmpl))
		return bench_err_r(-errno, "cannot create a directory in /tmp: %s",
				   strerror(errno));
	c->work = tmpl;
	snprintf(dir, sizeof(dir), "%s/cluster", tmpl);
	if (setenv("GHOST_CLUSTER_DIR", dir, 1) < 0) {
		rmdir(tmpl);
		return -ENOMEM;
	}
	printf("ghost streams benchmark (%s run): ghost %s, pingpong %s, NPtcp %s\n"
	       "messages of 1 byte to %llu bytes; files in %s\n",
	       c->quick ? "quick" : "full", c->ghost, c->pingpong,
	       c->nptcp ? c->nptcp : c->nptcp_na, (unsigned long long)c->max_size, tmpl);
	if (c->cpu_server < 0)
		printf("the two ends of each stream are not pinned (--cpus free)\n");
	else
		printf("the two ends of each stream run on CPU %d and CPU %d (--cpus %s)\n",
		       c->cpu_server, c->cpu_client, c->cpus);
	printf("ghost cluster up --nodes 2%s ...\n", up[5] ? " --no-encrypt" : "");
	fflush(stdout);
	r = bench_cmd(up, 0, CMD_TIMEOUT_MS, NULL, NULL, NULL);
	if (r != 0) {
		r = bench_err_r(-EIO, "ghost cluster up failed");
		goto down;
	}
	if (stop_sig)
		goto down;
	fflush(stdout);
	fflush(stderr);
	r = bench_fork(&pid);
	if (r < 0)
		goto down;
	if (pid == 0) {
		r = bench_install_signals();
		if (r >= 0)
			r = driver(c);
		kill_all_managed(c);
		bench_cleanup();
		fflush(stdout);
		_exit(r < 0 ? 1 : 0);
	}
	driver_pid = pid;
	if (stop_sig)
		kill(pid, stop_sig);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	driver_pid = 0;
	bench_untrack_pid(pid);
	r = WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
	if (!WIFEXITED(st))
		bench_err("the driver died of signal %d", WTERMSIG(st));
down:
	/* its own process group: a ^C meant for us must not cut it short */
	if (bench_cmd(down, BENCH_CMD_OWN_PGRP, CMD_TIMEOUT_MS, NULL, NULL, NULL) != 0) {
		bench_err("ghost cluster down failed");
		r = -EIO;
	}
	bench_rm_rf(tmpl);
	c->work = NULL;
	if (stop_sig) {
		bench_err("stopped by signal %d", (int)stop_sig);
		return -EINTR;
	}
	return r;
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fputs("usage: streams [--quick] [--reps N] [--ghost PATH] [--pingpong PATH] [--nptcp PATH]\n"
	      "               [--no-install] [--encrypt yes|no] [--series-ms MS]\n"
	      "               [--cpus same|apart|free]\n"
	      "Figures 8 and 9 of the Dynamic Streams report on a 2-node local cluster:\n"
	      "NetPIPE latency and bandwidth of vanilla TCP between the nodes and over\n"
	      "loopback (NPtcp and pingpong), of a vanilla Unix socket, and of Ghost\n"
	      "streams after one end moved to node 2 and back (TCP: NPtcp; Unix:\n"
	      "pingpong); then an NPtcp run whose transmitter moves halfway through its\n"
	      "sizes, and the throughput over time of a stream whose end moves halfway\n"
	      "(pingpong). Rows Ghost cannot measure say n/a and why.\n"
	      "  --quick          100 round trips per size up to 1 MiB, 1 s series\n"
	      "                   (default: NetPIPE's adaptive repeats up to 4 MiB, 4 s)\n"
	      "  --ghost PATH     the ghost CLI (default: next to this program, or\n"
	      "                   ../cmd/ghost/ghost from it, as in a build directory)\n"
	      "  --pingpong PATH  bench/pingpong (default: next to this program)\n"
	      "  --nptcp PATH     NPtcp (default: from PATH; installed with apt-get if missing)\n"
	      "  --no-install     never run apt-get\n"
	      "  --encrypt yes|no the cluster's encryption (default: ghost cluster up's)\n"
	      "  --series-ms MS   the length of each Figure 9b series\n"
	      "  --reps N         runs of every row and series, medians reported (default 3,\n"
	      "                   quick 1)\n"
	      "  --cpus MODE      both ends of a stream on one CPU (same, the default), on\n"
	      "                   two (apart), or not pinned (free)\n"
	      "Needs root: it brings a 2-node cluster up and takes it down.\n",
	      f);
}

/*
 * --cpus: both ends of every measured stream on the last CPU we may use
 * (same), on the last two (apart), or wherever the scheduler puts them
 * (free). On a virtual machine a wakeup across CPUs costs 20-40 us and a
 * process the scheduler moves between CPUs flips between the two costs, so
 * only pinned ends give numbers a 5% target can be judged on.
 */
static int choose_cpus(struct config *c)
{
	cpu_set_t set;
	int last = -1, prev = -1;

	c->cpu_server = c->cpu_client = -1;
	if (!strcmp(c->cpus, "free"))
		return 0;
	if (strcmp(c->cpus, "same") && strcmp(c->cpus, "apart")) {
		bench_err("bad --cpus '%s' (same, apart or free)", c->cpus);
		return -EINVAL;
	}
	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return bench_err_r(-errno, "sched_getaffinity: %s", strerror(errno));
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &set)) {
			prev = last;
			last = i;
		}
	c->cpu_server = c->cpu_client = last;
	if (!strcmp(c->cpus, "apart")) {
		if (prev < 0)
			bench_err("--cpus apart: only one CPU, both ends on CPU %d", last);
		else
			c->cpu_client = prev;
	}
	return 0;
}

/* --ghost and --pingpong, or their places in a build directory. */
static int find_programs(struct config *c)
{
	_cleanup_free_ char *dir = NULL;
	char *given;
	int r;

	r = bench_self_dir(&dir);
	if (r < 0)
		return bench_err_r(r, "cannot find my own directory: %s", strerror(-r));
	if (c->ghost) {
		given = c->ghost;
		c->ghost = bench_exe_path(given);
		free(given);
	} else {
		_cleanup_free_ char *p2 = bench_path_join(dir, "ghost");
		_cleanup_free_ char *p3 = bench_path_join(dir, "../cmd/ghost/ghost");

		if (!p2 || !p3)
			return -ENOMEM;
		c->ghost = bench_exe_path(p2);
		if (!c->ghost)
			c->ghost = bench_exe_path(p3);
	}
	if (!c->ghost)
		return bench_err_r(-ENOENT, "no ghost CLI found (--ghost PATH)");
	if (c->pingpong) {
		given = c->pingpong;
		c->pingpong = bench_exe_path(given);
		free(given);
	} else {
		_cleanup_free_ char *p = bench_path_join(dir, "pingpong");

		if (!p)
			return -ENOMEM;
		c->pingpong = bench_exe_path(p);
	}
	if (!c->pingpong)
		return bench_err_r(-ENOENT, "no pingpong found (--pingpong PATH)");
	return 0;
}

int main(int argc, char **argv)
{
	enum { OPT_QUICK = 256, OPT_GHOST, OPT_PINGPONG, OPT_NPTCP, OPT_NO_INSTALL, OPT_ENCRYPT,
	       OPT_SERIES_MS, OPT_CPUS, OPT_REPS, OPT_HELP };
	static const struct option options[] = {
		{ "quick", no_argument, NULL, OPT_QUICK },
		{ "ghost", required_argument, NULL, OPT_GHOST },
		{ "pingpong", required_argument, NULL, OPT_PINGPONG },
		{ "nptcp", required_argument, NULL, OPT_NPTCP },
		{ "no-install", no_argument, NULL, OPT_NO_INSTALL },
		{ "encrypt", required_argument, NULL, OPT_ENCRYPT },
		{ "series-ms", required_argument, NULL, OPT_SERIES_MS },
		{ "cpus", required_argument, NULL, OPT_CPUS },
		{ "reps", required_argument, NULL, OPT_REPS },
		{ "help", no_argument, NULL, OPT_HELP },
		{}
	};
	struct config c = { .install = true, .interval_ms = 50, .series_size = 65536,
			    .cpus = "same" };
	uint64_t series_ms = 0, v;
	unsigned reps = 0;
	size_t n;
	int o, r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((o = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (o) {
		case OPT_QUICK:
			c.quick = true;
			break;
		case OPT_GHOST:
			free(c.ghost);
			c.ghost = strdup(optarg);
			break;
		case OPT_PINGPONG:
			free(c.pingpong);
			c.pingpong = strdup(optarg);
			break;
		case OPT_NPTCP:
			free(c.nptcp);
			c.nptcp = strdup(optarg);
			break;
		case OPT_NO_INSTALL:
			c.install = false;
			break;
		case OPT_ENCRYPT:
			if (strcmp(optarg, "yes") && strcmp(optarg, "no")) {
				bench_err("bad --encrypt '%s' (yes or no)", optarg);
				return 2;
			}
			c.encrypt = optarg;
			break;
		case OPT_SERIES_MS:
			if (bench_parse_list(optarg, &v, 1, &n) < 0 || v < 200 || v > 60000) {
				bench_err("bad --series-ms '%s' (200 to 60000)", optarg);
				return 2;
			}
			series_ms = v;
			break;
		case OPT_CPUS:
			c.cpus = optarg;
			break;
		case OPT_REPS:
			if (bench_parse_list(optarg, &v, 1, &n) < 0 || v < 1 || v > MAX_REPS) {
				bench_err("bad --reps '%s' (1 to %d)", optarg, MAX_REPS);
				return 2;
			}
			reps = (unsigned)v;
			break;
		case OPT_HELP:
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	c.max_size = c.quick ? 1 << 20 : 4 << 20;
	c.series_ms = series_ms ? (unsigned)series_ms : c.quick ? 1000 : 4000;
	c.reps = reps ? reps : c.quick ? 1 : 3;
	c.freeze_reps = c.quick ? 3 : 5;
	c.wait_ms = c.quick ? 120000U : 600000U;
	r = choose_cpus(&c);
	if (r < 0)
		return 2;
	if (geteuid() != 0) {
		bench_err("streams needs root (it builds clusters of namespaces)");
		return 77;
	}
	r = find_programs(&c);
	if (r >= 0)
		r = supervise(&c);
	free(c.ghost);
	free(c.pingpong);
	free(c.nptcp);
	return r < 0 ? 1 : 0;
}

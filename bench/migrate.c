/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench/migrate: `ghost migrate` of memhog processes from node 1 to node 2 of
 * a local cluster, against what the same bytes cost on the same machine in
 * the same run: a plain TCP connection between the two nodes (the link limit),
 * writing them into fresh memory of another process (the restore limit), and
 * `ghost checkpoint --kill` to a tmpfs file on node 1 then `ghost restart`
 * from it on node 2 (bench/README.md).
 *
 * The program plays every part. Without --role it is the supervisor: for each
 * encryption mode it brings a 2-node cluster up, forks the driver, which
 * measures and sends its rows back through a pipe, then takes the cluster
 * down whatever happened to the driver (a crash, a signal). The link limit's
 * two ends are this program again, run inside the nodes with `ghost cluster
 * exec`: --role sink on node 2, --role source on node 1.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/limits.h> /* PATH_MAX; <limits.h> would find bench/limits.h */
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "bench.h"
#include "limits.h"
#include "msg/msg-int.h"
#include "base/banned.h"

#define MAX_SIZES        8
#define MAX_REPS         32
#define MAX_SIZE_MIB     65536
#define TARGET_MIB       1024
#define TARGET_RATIO     1.3
#define LINK_PORT        7741
#define SINK_ADDR        "10.77.0.2"
#define CHUNK            (4 * MIB)
#define SEAL_CHUNK       MSG_CHAN_RECORD_MAX /* data bytes per sealed record, as chan.c */
#define CMD_TIMEOUT_MS   600000U /* any one ghost command */
#define READY_TIMEOUT_MS 300000U /* memhog touching its memory */
#define GONE_TIMEOUT_MS  30000U  /* a killed process leaving */
#define SINK_TIMEOUT_MS  30000U  /* the sink saying ready, or ending */
#define IO_TIMEOUT_S     120     /* the link roles' socket timeouts */

enum encrypt_mode { ENC_NO = 1 << 0, ENC_YES = 1 << 1, ENC_BOTH = ENC_NO | ENC_YES };

struct config {
	uint64_t sizes[MAX_SIZES];
	size_t n_sizes;
	unsigned reps;
	unsigned encrypt; /* enum encrypt_mode */
	const char *dir_parent;
	char *ghost;
	char *memhog;
	char *self;
	char *work; /* ghost-bench.XXXXXX under dir_parent: images, ready files */
};

/* One row of the table: medians for one size and encryption mode, in ms.
 * The driver writes it whole to a pipe (smaller than PIPE_BUF: atomic). */
struct row {
	bool encrypt;
	uint64_t size_mib;
	double image_bytes;
	double total, frozen, command; /* ghost migrate: its JSON, and end to end */
	double link, restore;
	double sealed_link; /* encrypted rows only: plain TCP + the chan's AEAD */
	double ckpt_rst; /* checkpoint on node 1 + restart on node 2, end to end */
	/* the machine's busy CPU time (bench_busy_ms()) during each */
	double migrate_cpu, link_cpu, sealed_cpu, restore_cpu;
	double readv, readv_cpu; /* process_vm_readv() of the image's bytes */
};

/* ---- small helpers ---- */

static double max2(double a, double b)
{
	if (isnan(a) || isnan(b))
		return NAN;
	return a > b ? a : b;
}

/* ---- the link limit's two ends (inside the nodes) ---- */

static int sock_timeouts(int fd)
{
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

static int write_all(int fd, const void *p, size_t len)
{
	const uint8_t *b = p;

	while (len > 0) {
		ssize_t n = write(fd, b, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_all(int fd, void *p, size_t len)
{
	uint8_t *b = p;

	while (len > 0) {
		ssize_t n = read(fd, b, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

static int parse_addr(const char *addr, uint16_t port, struct sockaddr_in *ret)
{
	*ret = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(port) };
	if (!addr)
		return 0; /* any */
	return inet_pton(AF_INET, addr, &ret->sin_addr) == 1 ? 0 : -EINVAL;
}

/* The sealed link's records: what msg_chan_seal_pump() sends, a length field,
 * a 32-byte header and up to SEAL_CHUNK data bytes, sealed with the cipher
 * the chan uses (msg_wire_seal(): AES-256-GCM, or ChaCha20-Poly1305 without
 * AES instructions). The key is fixed: this measures the cost, not secrecy. */
#define SEAL_DATA_OFF (WIRE_LEN_SIZE + WIRE_HDR_SIZE)
#define SEAL_REC_SIZE (SEAL_DATA_OFF + SEAL_CHUNK + WIRE_TAG_SIZE)

static const uint8_t seal_key[WIRE_KEY_SIZE] = { 0x42 };

/* Read, open and count sealed records until an empty one (the end). */
static int sink_sealed(int fd, uint64_t *ret_got)
{
	struct wire_cipher wc = { 0 };
	uint8_t *rec = malloc(SEAL_REC_SIZE), *body;
	uint64_t got = 0;
	int r;

	if (!rec)
		return -ENOMEM;
	/* as the chan: AES-256-GCM only once libsodium has looked at the CPU */
	r = sodium_init() < 0 ? -EIO : msg_wire_cipher_init(&wc, true, seal_key);
	while (r >= 0) {
		size_t len, n;

		r = read_all(fd, rec, WIRE_LEN_SIZE);
		if (r < 0)
			break;
		len = get_le32(rec);
		if (len < WIRE_HDR_SIZE + WIRE_TAG_SIZE || len > SEAL_REC_SIZE - WIRE_LEN_SIZE) {
			r = -EBADMSG;
			break;
		}
		r = read_all(fd, rec + WIRE_LEN_SIZE, len);
		if (r >= 0 && msg_wire_open(&wc, rec, WIRE_LEN_SIZE + len, &body, &n) < 0)
			r = -EBADMSG;
		if (r < 0)
			break;
		if (n == WIRE_HDR_SIZE)
			break; /* the end */
		got += n - WIRE_HDR_SIZE;
	}
	msg_wire_cipher_wipe(&wc);
	free(rec);
	*ret_got = got;
	return r;
}

/* Seal n bytes of data (already at SEAL_DATA_OFF in rec) and send them. */
static int send_sealed(struct wire_cipher *wc, int fd, uint8_t *rec, size_t n)
{
	int r;

	memset(rec + WIRE_LEN_SIZE, 0, WIRE_HDR_SIZE);
	rec[WIRE_LEN_SIZE] = 1;
	r = msg_wire_seal(wc, rec + WIRE_LEN_SIZE, WIRE_HDR_SIZE + n, rec);
	if (r < 0)
		return r;
	return write_all(fd, rec, msg_wire_overhead(wc) + WIRE_HDR_SIZE + n);
}

/* The source's side: copy each chunk into a record, seal it in place and
 * send it (as the seal pump, which reads it from the engine instead). */
static int source_sealed(int fd, const uint8_t *buf, uint64_t bytes)
{
	struct wire_cipher wc = { 0 };
	uint8_t *rec = malloc(SEAL_REC_SIZE);
	int r;

	if (!rec)
		return -ENOMEM;
	r = sodium_init() < 0 ? -EIO : msg_wire_cipher_init(&wc, true, seal_key);
	for (uint64_t off = 0; off < bytes && r >= 0; off += SEAL_CHUNK) {
		size_t n = (size_t)MIN((uint64_t)SEAL_CHUNK, bytes - off);

		memcpy(rec + SEAL_DATA_OFF, buf + off, n);
		r = send_sealed(&wc, fd, rec, n);
	}
	if (r >= 0)
		r = send_sealed(&wc, fd, rec, 0);
	msg_wire_cipher_wipe(&wc);
	free(rec);
	return r;
}

/*
 * Listen on addr:port, say "ready" on stdout, accept one connection, read it
 * until EOF (sealed: open every record until the end record), answer with the
 * byte count (8 bytes, little-endian) and end.
 */
static int role_sink(const char *addr, uint16_t port, bool sealed)
{
	struct sockaddr_in sa;
	_cleanup_close_ int lfd = -1, fd = -1;
	struct pollfd pfd;
	uint8_t *buf, cnt[8];
	uint64_t got = 0;
	int one = 1, r;

	r = parse_addr(addr, port, &sa);
	if (r < 0)
		return r;
	buf = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return -errno;
	memset(buf, 0, CHUNK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0) {
		r = -errno;
		goto out;
	}
	printf("ready\n");
	fflush(stdout);
	pfd = (struct pollfd){ .fd = lfd, .events = POLLIN };
	r = poll(&pfd, 1, IO_TIMEOUT_S * 1000);
	if (r <= 0) {
		r = r < 0 ? -errno : -ETIMEDOUT;
		goto out;
	}
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	r = sock_timeouts(fd);
	if (r >= 0 && sealed)
		r = sink_sealed(fd, &got);
	while (r >= 0 && !sealed) {
		ssize_t n = read(fd, buf, CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = -errno;
		else if (n == 0)
			break;
		else
			got += (uint64_t)n;
	}
	if (r >= 0) {
		put_le64(cnt, got);
		r = write_all(fd, cnt, sizeof(cnt));
	}
out:
	munmap(buf, CHUNK);
	return r;
}

/*
 * Send bytes from a ready, pre-touched buffer of that size to addr:port in
 * large writes (sealed: in sealed records), close the sending side, read the
 * sink's count; print the time from connect() to the count, in ms, on stdout.
 */
static int role_source(const char *addr, uint16_t port, uint64_t bytes, bool sealed)
{
	struct sockaddr_in sa;
	_cleanup_close_ int fd = -1;
	uint64_t t0, t1, *buf;
	double cpu0, cpu1;
	uint8_t cnt[8];
	int r;

	if (!addr || bytes == 0 || bytes > ((uint64_t)MAX_SIZE_MIB << 21))
		return -EINVAL;
	r = parse_addr(addr, port, &sa);
	if (r < 0)
		return r;
	buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return -errno;
	for (size_t i = 0; i < bytes / sizeof(*buf); i++)
		buf[i] = 0x5A5A5A5A5A5A5A5AULL ^ i;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	r = sock_timeouts(fd);
	if (r < 0)
		goto out;
	if (sealed) {
		int one = 1;

		/* as the chan's connection: records must not wait for acks */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	cpu0 = bench_busy_ms();
	t0 = bench_now_ns();
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		goto out;
	}
	if (sealed)
		r = source_sealed(fd, (const uint8_t *)buf, bytes);
	for (uint64_t off = 0; off < bytes && r >= 0 && !sealed; off += CHUNK)
		r = write_all(fd, (uint8_t *)buf + off, MIN((uint64_t)CHUNK, bytes - off));
	if (r >= 0 && shutdown(fd, SHUT_WR) < 0)
		r = -errno;
	if (r >= 0)
		r = read_all(fd, cnt, sizeof(cnt));
	t1 = bench_now_ns();
	cpu1 = bench_busy_ms();
	if (r >= 0 && get_le64(cnt) != bytes)
		r = -EPROTO;
	/* the time, and the machine's busy CPU time meanwhile (both ends and
	 * the network processing between them) */
	if (r >= 0)
		printf("%.3f %.3f\n", bench_ms(t1 - t0), cpu1 - cpu0);
out:
	munmap(buf, bytes);
	return r;
}

/* ---- running commands ---- */

enum run_flags {
	RUN_QUIET = 1 << 0,    /* stderr to /dev/null */
	RUN_OWN_PGRP = 1 << 1, /* a process group of its own: a terminal's ^C misses it */
};

/*
 * Start argv (argv[0] a path) with stdin on /dev/null, stdout on a pipe
 * (*ret_fd) or /dev/null when ret_fd is NULL. The child is tracked.
 */
static int spawn(const char *const *argv, unsigned flags, int *ret_fd, pid_t *ret_pid)
{
	int p[2] = { -1, -1 }, r;
	pid_t pid;

	if (ret_fd && pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	r = bench_fork(&pid);
	if (r < 0) {
		safe_close(p[0]);
		safe_close(p[1]);
		return r;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (flags & RUN_OWN_PGRP)
			setpgid(0, 0);
		if (null < 0 || dup2(null, STDIN_FILENO) < 0 ||
		    dup2(ret_fd ? p[1] : null, STDOUT_FILENO) < 0 ||
		    ((flags & RUN_QUIET) && dup2(null, STDERR_FILENO) < 0))
			_exit(127);
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "bench: cannot run '%s': %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	safe_close(p[1]);
	if (ret_fd)
		*ret_fd = p[0];
	*ret_pid = pid;
	return 0;
}

static int exit_code(int status)
{
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/*
 * Run argv to its end: its stdout in *ret_out (malloc()ed, NUL-terminated)
 * unless ret_out is NULL, the time from fork to reap in *ret_ms unless NULL.
 * Returns its exit code (128+N for signal N), or -errno; after CMD_TIMEOUT_MS
 * it is killed and -ETIMEDOUT returned.
 */
static int run(const char *const *argv, unsigned flags, char **ret_out, double *ret_ms)
{
	uint64_t t0 = bench_now_ns(), deadline = t0 + CMD_TIMEOUT_MS * 1000000ULL;
	_cleanup_free_ char *out = NULL;
	size_t len = 0, cap = 0;
	int fd = -1, r, status;
	pid_t pid;

	r = spawn(argv, flags, ret_out ? &fd : NULL, &pid);
	if (r < 0)
		return r;
	while (fd >= 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint64_t now = bench_now_ns();
		ssize_t n;

		if (cap - len < 4096) {
			char *grown = realloc(out, cap + 65536);

			if (!grown) {
				r = -ENOMEM;
				break;
			}
			out = grown;
			cap += 65536;
		}
		if (now >= deadline) {
			r = -ETIMEDOUT;
			break;
		}
		n = poll(&pfd, 1, (int)((deadline - now) / 1000000ULL) + 1);
		if (n < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
		if (n <= 0)
			continue;
		n = read(fd, out + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	safe_close(fd);
	if (r < 0) {
		bench_kill_reap(pid);
		return r;
	}
	{
		uint64_t now = bench_now_ns();
		unsigned left = now >= deadline ? 1 : (unsigned)((deadline - now) / 1000000ULL);

		r = bench_wait_exit(pid, left, &status);
	}
	if (r < 0)
		return r;
	if (ret_ms)
		*ret_ms = bench_ms(bench_now_ns() - t0);
	if (ret_out) {
		if (!out)
			out = calloc(1, 1);
		if (!out)
			return -ENOMEM;
		out[len] = '\0';
		*ret_out = TAKE_PTR(out);
	}
	return exit_code(status);
}

/* run() that must exit 0; one line on stderr otherwise. */
static int run_ok(const char *what, const char *const *argv, unsigned flags, char **ret_out,
		  double *ret_ms)
{
	int r = run(argv, flags, ret_out, ret_ms);

	if (r == 0)
		return 0;
	if (r > 0) {
		bench_err("%s failed (exit status %d)", what, r);
		if (ret_out) {
			free(*ret_out);
			*ret_out = NULL;
		}
		return -EPROTO;
	}
	return bench_err_r(r, "%s: %s", what, strerror(-r));
}

/* ---- the driver: managed processes in the cluster ---- */

static int failures;

/* Is pid among the live managed processes of the cluster (`ghost ps --json`)?
 * 1 yes, 0 no, -errno. */
static int managed_alive(const struct config *c, pid_t pid)
{
	const char *argv[] = { c->ghost, "ps", "--json", NULL };
	_cleanup_free_ char *out = NULL;
	int r;

	r = run_ok("'ghost ps --json'", argv, 0, &out, NULL);
	if (r < 0)
		return r;
	for (char *p = strchr(out, '{'); p; p = strchr(p, '{')) {
		char *end = strchr(p, '}');
		double v;

		if (!end)
			break;
		*end = '\0';
		r = bench_json_number(p, "pid", &v);
		*end = '}';
		if (r >= 0 && (pid_t)v == pid)
			return 1;
		p = end;
	}
	return 0;
}

/* Wait until pid has left the cluster's list (it is reaped: its memory is free). */
static int wait_managed_gone(const struct config *c, pid_t pid)
{
	uint64_t deadline = bench_now_ns() + GONE_TIMEOUT_MS * 1000000ULL;
	int r;

	while ((r = managed_alive(c, pid)) > 0) {
		if (bench_now_ns() > deadline)
			return bench_err_r(-ETIMEDOUT, "process %d is still there after SIGKILL",
					   (int)pid);
		bench_sleep_ms(10);
	}
	return r;
}

/* `ghost kill -KILL pid` wherever it runs, and wait until it is gone. */
static int kill_managed(const struct config *c, pid_t pid)
{
	char pidstr[16];
	const char *argv[] = { c->ghost, "kill", "-KILL", pidstr, NULL };

	if (pid <= 0)
		return 0;
	snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
	run(argv, RUN_QUIET, NULL, NULL); /* it may have gone already */
	return wait_managed_gone(c, pid);
}

/*
 * `ghost run -d --node 1 -- memhog MIB` with GHOST_TEST_READY naming a file
 * of our work directory (the nodes share the file system), then wait for
 * memhog to write "ready" there: all its memory is touched.
 */
static int start_memhog(const struct config *c, uint64_t mib, pid_t *ret_pid)
{
	static unsigned seq;
	char mibstr[24], name[32];
	const char *argv[] = { c->ghost, "run", "-d", "--node", "1", "--", c->memhog, mibstr,
			       NULL };
	_cleanup_free_ char *out = NULL, *ready = NULL;
	uint64_t t0, next_check;
	char *end;
	long pid;
	int r;

	snprintf(mibstr, sizeof(mibstr), "%llu", (unsigned long long)mib);
	snprintf(name, sizeof(name), "ready.%u", seq++);
	ready = bench_path_join(c->work, name);
	if (!ready)
		return -ENOMEM;
	if (unlink(ready) < 0 && errno != ENOENT)
		return bench_err_r(-errno, "cannot remove '%s': %s", ready, strerror(errno));
	if (setenv("GHOST_TEST_READY", ready, 1) < 0)
		return -ENOMEM;
	r = run_ok("'ghost run -d --node 1 -- memhog'", argv, 0, &out, NULL);
	unsetenv("GHOST_TEST_READY");
	if (r < 0)
		return r;
	errno = 0;
	pid = strtol(out, &end, 10);
	if (errno || end == out || pid <= 0 || pid > INT32_MAX)
		return bench_err_r(-EPROTO, "no PID in the output of 'ghost run -d': '%s'", out);
	*ret_pid = (pid_t)pid;

	t0 = bench_now_ns();
	next_check = t0;
	for (;;) {
		char buf[8];
		ssize_t n = 0;
		int fd = open(ready, O_RDONLY | O_CLOEXEC);

		if (fd >= 0) {
			n = read(fd, buf, sizeof(buf));
			close(fd);
		}
		if (n == 6 && !memcmp(buf, "ready\n", 6)) {
			unlink(ready);
			return 0;
		}
		if (bench_now_ns() - t0 > READY_TIMEOUT_MS * 1000000ULL) {
			r = bench_err_r(-ETIMEDOUT, "memhog %s (PID %ld) not ready in time",
					mibstr, pid);
			break;
		}
		if (bench_now_ns() >= next_check) {
			r = managed_alive(c, (pid_t)pid);
			if (r == 0)
				r = bench_err_r(-ECHILD,
						"memhog %s (PID %ld) ended before it was ready "
						"(see 'ghost logs %ld')",
						mibstr, pid, pid);
			if (r < 0)
				break;
			next_check = bench_now_ns() + 500000000ULL;
		}
		bench_sleep_ms(2);
	}
	kill_managed(c, (pid_t)pid);
	*ret_pid = 0;
	return r;
}

/* One migration of a fresh memhog from node 1 to node 2. */
struct mig_sample {
	double image_bytes, total, frozen, export_ms, import_ms, command;
	double cpu; /* the machine's busy CPU time during the command */
};

static int measure_migrate(const struct config *c, uint64_t mib, struct mig_sample *s)
{
	char pidstr[16];
	const char *argv[] = { c->ghost, "migrate", "--json", pidstr, "2", NULL };
	_cleanup_free_ char *out = NULL;
	pid_t pid = 0;
	int r, q;

	r = start_memhog(c, mib, &pid);
	if (r < 0)
		return r;
	snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
	bench_warm_memory((size_t)mib * MIB + (size_t)mib * MIB / 4);
	s->cpu = bench_busy_ms();
	r = run_ok("'ghost migrate --json PID 2'", argv, 0, &out, &s->command);
	s->cpu = bench_busy_ms() - s->cpu;
	if (r >= 0 && (bench_json_number(out, "image_bytes", &s->image_bytes) < 0 ||
		       bench_json_number(out, "total_ms", &s->total) < 0 ||
		       bench_json_number(out, "frozen_ms", &s->frozen) < 0))
		r = bench_err_r(-EPROTO, "unexpected output of 'ghost migrate --json': '%s'", out);
	if (r >= 0) {
		bench_json_number(out, "export_ms", &s->export_ms);
		bench_json_number(out, "import_ms", &s->import_ms);
	}
	q = kill_managed(c, pid);
	return r < 0 ? r : q;
}

/* `ghost cluster exec 2 -- kill -9 pid` and wait until the PID is free. */
static int kill_in_node2(const struct config *c, pid_t pid)
{
	uint64_t deadline = bench_now_ns() + GONE_TIMEOUT_MS * 1000000ULL;
	char pidstr[16];
	const char *argv[] = { c->ghost, "cluster", "exec", "2", "--", "kill", "-9", pidstr, NULL };

	snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
	if (run(argv, RUN_QUIET, NULL, NULL) != 0)
		return bench_err_r(-ESRCH, "cannot kill the restored process %d on node 2",
				   (int)pid);
	argv[6] = "-0";
	while (run(argv, RUN_QUIET, NULL, NULL) == 0) {
		if (bench_now_ns() > deadline)
			return bench_err_r(-ETIMEDOUT, "restored process %d on node 2 does not end",
					   (int)pid);
		bench_sleep_ms(10);
	}
	return 0;
}

/* A ready buffer of at least size bytes for the restore limit, kept across
 * the runs of a size (it is touched once: 1 GiB takes a while). */
struct restore_buf {
	void *p;
	size_t size;
};

static int restore_limit(struct restore_buf *b, size_t size, double *ret_ms, double *ret_cpu_ms)
{
	int r;

	if (b->size < size) {
		b->p = limits_buffer_free(b->p, b->size);
		b->size = 0;
		r = limits_buffer_new(ALIGN_UP(size, MIB), &b->p);
		if (r < 0)
			return r;
		b->size = ALIGN_UP(size, MIB);
	}
	return limit_restore(b->p, size, 1, ret_ms, ret_cpu_ms);
}

/*
 * A fresh memhog on node 1: once it holds its memory, the restore limit for
 * restore_bytes (see below); then `ghost checkpoint PID -o IMG --kill` on
 * node 1 and `ghost restart -d IMG` on node 2, timed from the driver around
 * both.
 */
static int measure_ckpt_restart(const struct config *c, uint64_t mib, double *ret_ms,
				double *ret_image_bytes, struct restore_buf *rbuf,
				size_t restore_bytes, double *ret_restore_ms,
				double *ret_restore_cpu_ms, double *ret_readv_ms,
				double *ret_readv_cpu_ms)
{
	_cleanup_free_ char *img = bench_path_join(c->work, "image");
	_cleanup_free_ char *out1 = NULL, *out2 = NULL;
	char pidstr[16];
	const char *ckpt[] = { c->ghost, "cluster", "exec", "1", "--", c->ghost, "checkpoint",
			       pidstr, "-o", img, "--kill", "--json", NULL };
	const char *rst[] = { c->ghost, "cluster", "exec", "2", "--", c->ghost, "restart", "-d",
			      img, "--json", NULL };
	double ck_total = NAN, ck_frozen = NAN, rs_total = NAN, rpid = 0;
	uint64_t t0;
	pid_t pid = 0;
	int r, q;

	if (!img)
		return -ENOMEM;
	r = start_memhog(c, mib, &pid);
	if (r < 0)
		return r;
	/* The restore limit in the state the migration's destination met: a
	 * fresh memhog of this size holding its memory, and another that much
	 * to allocate (warmed first, as the migration was: see bench.h). */
	q = restore_limit(rbuf, restore_bytes, ret_restore_ms, ret_restore_cpu_ms);
	if (q < 0) {
		*ret_restore_ms = NAN;
		bench_err("restore limit, %llu MiB: %s", (unsigned long long)mib, strerror(-q));
	}
	/* Copying the bytes out of a process, as the checkpoint limit does: the
	 * one pass over the frozen process's memory a migration cannot skip
	 * (its checksums read every byte). */
	q = q < 0 ? q : limit_readv(rbuf->p, restore_bytes, 1, ret_readv_ms, ret_readv_cpu_ms);
	if (q < 0) {
		*ret_readv_ms = *ret_readv_cpu_ms = NAN;
		bench_err("readv limit, %llu MiB: %s", (unsigned long long)mib, strerror(-q));
	}
	snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
	/* the image on tmpfs and the new process */
	bench_warm_memory(2 * (size_t)mib * MIB + (size_t)mib * MIB / 4);
	t0 = bench_now_ns();
	r = run_ok("'ghost checkpoint --kill' on node 1", ckpt, 0, &out1, NULL);
	if (r >= 0)
		r = run_ok("'ghost restart -d' on node 2", rst, 0, &out2, NULL);
	if (r >= 0) {
		*ret_ms = bench_ms(bench_now_ns() - t0);
		if (bench_json_number(out2, "pid", &rpid) < 0 || rpid < 1)
			r = bench_err_r(-EPROTO, "no PID in the output of 'ghost restart'");
	}
	if (out1) {
		bench_json_number(out1, "total_ms", &ck_total);
		bench_json_number(out1, "frozen_ms", &ck_frozen);
		bench_json_number(out1, "image_bytes", ret_image_bytes);
	}
	if (out2)
		bench_json_number(out2, "total_ms", &rs_total);
	if (r >= 0)
		fprintf(stderr,
			"raw:   ckpt+restart %.1f ms: checkpoint %.1f ms (frozen %.1f), "
			"restart %.1f ms\n",
			*ret_ms, ck_total, ck_frozen, rs_total);
	if (rpid >= 1) {
		q = kill_in_node2(c, (pid_t)rpid);
		if (r >= 0)
			r = q;
	}
	/* after a failed checkpoint the original still runs */
	q = kill_managed(c, pid);
	if (r >= 0)
		r = q;
	unlink(img);
	return r;
}

/* Read one line from fd within timeout_ms. */
static int read_line(int fd, char *buf, size_t len, unsigned timeout_ms)
{
	uint64_t deadline = bench_now_ns() + timeout_ms * 1000000ULL;
	size_t got = 0;

	while (got + 1 < len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint64_t now = bench_now_ns();
		ssize_t n;

		if (now >= deadline)
			return -ETIMEDOUT;
		n = poll(&pfd, 1, (int)((deadline - now) / 1000000ULL) + 1);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n <= 0)
			continue;
		n = read(fd, buf + got, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EPIPE;
		if (buf[got++] == '\n')
			break;
	}
	buf[got] = '\0';
	return 0;
}

/* The link limit: bytes from node 1 to node 2 over one plain TCP connection;
 * sealed, in the chan's sealed records. */
static int measure_link(const struct config *c, uint64_t bytes, bool sealed, double *ret_ms,
			double *ret_cpu_ms)
{
	char port[8], count[24], line[64];
	const char *sink[] = { c->ghost, "cluster", "exec", "2", "--", c->self, "--role", "sink",
			       "--addr", SINK_ADDR, "--port", port, sealed ? "--seal" : NULL, NULL };
	const char *source[] = { c->ghost, "cluster", "exec", "1", "--", c->self, "--role",
				 "source", "--addr", SINK_ADDR, "--port", port, "--bytes", count,
				 sealed ? "--seal" : NULL, NULL };
	_cleanup_free_ char *out = NULL;
	_cleanup_close_ int fd = -1;
	char *end;
	pid_t spid;
	int r, q, status;

	snprintf(port, sizeof(port), "%d", LINK_PORT);
	snprintf(count, sizeof(count), "%llu", (unsigned long long)bytes);
	r = spawn(sink, 0, &fd, &spid);
	if (r < 0)
		return bench_err_r(r, "cannot start the sink: %s", strerror(-r));
	r = read_line(fd, line, sizeof(line), SINK_TIMEOUT_MS);
	if (r < 0 || strcmp(line, "ready\n") != 0) {
		bench_kill_reap(spid);
		return bench_err_r(-EIO, "the sink on node 2 did not start");
	}
	r = run_ok("the source on node 1", source, 0, &out, NULL);
	if (r >= 0) {
		char *cpu_end;

		*ret_ms = strtod(out, &end);
		*ret_cpu_ms = strtod(end, &cpu_end);
		if (end == out || *ret_ms <= 0 || cpu_end == end)
			r = bench_err_r(-EPROTO, "unexpected output of the source: '%s'", out);
	}
	q = bench_wait_exit(spid, r < 0 ? 1 : SINK_TIMEOUT_MS, &status);
	if (r >= 0 && (q < 0 || exit_code(status) != 0))
		r = bench_err_r(-EIO, "the sink on node 2 failed");
	return r;
}

static void report_fail(const char *what, uint64_t mib, int r)
{
	failures++;
	bench_err("%s, %llu MiB: %s", what, (unsigned long long)mib, strerror(-r));
}

/*
 * Measure one size: each run is a migration, a checkpoint + restart with the
 * restore limit, and the link limits for the migration's image size, one
 * after the other, so that each run's numbers share the machine's state of
 * the moment.
 */
static void measure_size(const struct config *c, bool encrypt, uint64_t mib, struct row *row)
{
	double total[MAX_REPS], frozen[MAX_REPS], command[MAX_REPS], image[MAX_REPS];
	double ckpt[MAX_REPS], link[MAX_REPS], restore[MAX_REPS], sealed[MAX_REPS];
	double mig_cpu[MAX_REPS], link_cpu[MAX_REPS], sealed_cpu[MAX_REPS], restore_cpu[MAX_REPS];
	double readv[MAX_REPS], readv_cpu[MAX_REPS];
	const char *mode = encrypt ? "encrypted" : "not encrypted";
	struct restore_buf buf = { NULL, 0 };
	int r;

	*row = (struct row){ .encrypt = encrypt, .size_mib = mib };
	for (unsigned i = 0; i < c->reps; i++) {
		struct mig_sample s = { NAN, NAN, NAN, NAN, NAN, NAN, NAN };
		double ck_bytes = NAN;

		total[i] = frozen[i] = command[i] = image[i] = NAN;
		ckpt[i] = link[i] = restore[i] = sealed[i] = NAN;
		mig_cpu[i] = link_cpu[i] = sealed_cpu[i] = restore_cpu[i] = NAN;
		readv[i] = readv_cpu[i] = NAN;
		r = measure_migrate(c, mib, &s);
		if (r < 0) {
			report_fail("migrate", mib, r);
		} else {
			total[i] = s.total;
			frozen[i] = s.frozen;
			command[i] = s.command;
			image[i] = s.image_bytes;
			mig_cpu[i] = s.cpu;
			fprintf(stderr,
				"raw: %s %llu MiB run %u: migrate image %.0f B, total %.1f ms, "
				"frozen %.1f ms (export %.1f, import %.1f), command %.1f ms, "
				"cpu %.0f ms\n",
				mode, (unsigned long long)mib, i + 1, s.image_bytes, s.total,
				s.frozen, s.export_ms, s.import_ms, s.command, s.cpu);
		}
		r = measure_ckpt_restart(c, mib, &ckpt[i], &ck_bytes, &buf,
					 isnan(image[i]) ? (size_t)(mib * MIB) : (size_t)image[i],
					 &restore[i], &restore_cpu[i], &readv[i], &readv_cpu[i]);
		if (r < 0) {
			ckpt[i] = NAN;
			report_fail("checkpoint + restart", mib, r);
		}
		if (isnan(image[i]))
			image[i] = ck_bytes;
		if (isnan(image[i]))
			continue;
		r = measure_link(c, (uint64_t)image[i], false, &link[i], &link_cpu[i]);
		if (r < 0) {
			link[i] = NAN;
			report_fail("link limit", mib, r);
		}
		if (encrypt) {
			r = measure_link(c, (uint64_t)image[i], true, &sealed[i], &sealed_cpu[i]);
			if (r < 0) {
				sealed[i] = NAN;
				report_fail("sealed link limit", mib, r);
			}
		}
		fprintf(stderr, "raw:   link %.1f ms (%.2f GB/s, cpu %.0f ms), ", link[i],
			image[i] / link[i] / 1e6, link_cpu[i]);
		if (encrypt)
			fprintf(stderr, "sealed link %.1f ms (%.2f GB/s, cpu %.0f ms), ", sealed[i],
				image[i] / sealed[i] / 1e6, sealed_cpu[i]);
		fprintf(stderr, "restore %.1f ms (%.2f GB/s, cpu %.0f ms), readv %.1f ms (cpu %.0f ms)\n",
			restore[i], image[i] / restore[i] / 1e6, restore_cpu[i], readv[i],
			readv_cpu[i]);
	}
	limits_buffer_free(buf.p, buf.size);
	row->total = bench_median(total, c->reps);
	row->frozen = bench_median(frozen, c->reps);
	row->command = bench_median(command, c->reps);
	row->ckpt_rst = bench_median(ckpt, c->reps);
	row->link = bench_median(link, c->reps);
	row->sealed_link = encrypt ? bench_median(sealed, c->reps) : NAN;
	row->restore = bench_median(restore, c->reps);
	row->image_bytes = bench_median(image, c->reps);
	row->migrate_cpu = bench_median(mig_cpu, c->reps);
	row->link_cpu = bench_median(link_cpu, c->reps);
	row->sealed_cpu = encrypt ? bench_median(sealed_cpu, c->reps) : NAN;
	row->restore_cpu = bench_median(restore_cpu, c->reps);
	row->readv = bench_median(readv, c->reps);
	row->readv_cpu = bench_median(readv_cpu, c->reps);
}

/* The driver, in a child of the supervisor, with the cluster up. */
static int driver(const struct config *c, bool encrypt, int rows_fd)
{
	for (size_t i = 0; i < c->n_sizes; i++) {
		struct row row;

		printf("  %s, %llu MiB ...\n", encrypt ? "encrypted" : "not encrypted",
		       (unsigned long long)c->sizes[i]);
		measure_size(c, encrypt, c->sizes[i], &row);
		if (write(rows_fd, &row, sizeof(row)) != (ssize_t)sizeof(row))
			return bench_err_r(-EIO, "cannot pass a row to the supervisor");
	}
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

/* Bring a cluster up, run the driver in a child, always take the cluster down. */
static int run_mode(const struct config *c, bool encrypt, struct row *rows, size_t *n_rows)
{
	char tmpl[] = "/tmp/ghost-bench-migrate.XXXXXX", dir[PATH_MAX];
	const char *up[] = { c->ghost, "cluster", "up", "--nodes", "2", "--no-encrypt", NULL };
	const char *down[] = { c->ghost, "cluster", "down", NULL };
	_cleanup_free_ char *out = NULL;
	int p[2], r, st;
	pid_t pid;

	if (encrypt)
		up[5] = NULL; /* drop --no-encrypt */
	if (!mkdtemp(tmpl))
		return bench_err_r(-errno, "cannot create a directory in /tmp: %s",
				   strerror(errno));
	snprintf(dir, sizeof(dir), "%s/cluster", tmpl);
	if (setenv("GHOST_CLUSTER_DIR", dir, 1) < 0) {
		rmdir(tmpl);
		return -ENOMEM;
	}
	printf("%s: ghost cluster up --nodes 2%s ...\n", encrypt ? "encrypted" : "not encrypted",
	       encrypt ? "" : " --no-encrypt");
	fflush(stdout);
	r = run_ok("'ghost cluster up'", up, 0, &out, NULL);
	if (r < 0 || stop_sig)
		goto down;
	if (pipe2(p, O_CLOEXEC) < 0) {
		r = -errno;
		goto down;
	}
	fflush(stdout);
	fflush(stderr);
	r = bench_fork(&pid);
	if (r < 0) {
		close(p[0]);
		close(p[1]);
		goto down;
	}
	if (pid == 0) {
		close(p[0]);
		r = bench_install_signals();
		if (r >= 0)
			r = driver(c, encrypt, p[1]);
		bench_cleanup();
		fflush(stdout);
		_exit(r < 0 ? 1 : 0);
	}
	driver_pid = pid;
	if (stop_sig)
		kill(pid, stop_sig);
	close(p[1]);
	for (;;) {
		struct row row;
		ssize_t n = read(p[0], &row, sizeof(row));

		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(row))
			break;
		if (*n_rows < 2 * MAX_SIZES)
			rows[(*n_rows)++] = row;
	}
	close(p[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	driver_pid = 0;
	bench_untrack_pid(pid);
	r = exit_code(st) == 0 ? 0 : -EIO;
	if (!WIFEXITED(st))
		bench_err("the driver died of signal %d", WTERMSIG(st));
down:
	/* its own process group: a ^C meant for us must not cut it short */
	if (run_ok("'ghost cluster down'", down, RUN_OWN_PGRP, NULL, NULL) < 0)
		r = -EIO;
	rmdir(tmpl);
	return r;
}

static const char *verdict(bool pass, bool unknown, const char *yes, const char *no)
{
	if (unknown)
		return "-";
	return pass ? yes : no;
}

/* The link a migration is held to: plain TCP, or with encryption the same
 * bytes sealed as the chan seals them. */
static double row_link(const struct row *w)
{
	return w->encrypt ? w->sealed_link : w->link;
}

/*
 * What the machine's cores allow: a migration does the work of three limits,
 * copying the bytes out of the frozen process (readv; its checksums read
 * every byte), the link's (sending and receiving them, and the network
 * processing between the nodes) and the restore's (copying them into fresh
 * memory). With every node on the same ncpu cores it cannot take less than
 * the sum of their CPU times / ncpu, however well it overlaps them, nor less
 * than the link's or the restore's time.
 */
static double row_cpu_bound(const struct row *w, unsigned ncpu)
{
	double link_cpu = w->encrypt ? w->sealed_cpu : w->link_cpu;

	return max2(max2(row_link(w), w->restore),
		    (w->readv_cpu + link_cpu + w->restore_cpu) / ncpu);
}

static void print_cpu_table(const struct row *rows, size_t n)
{
	unsigned ncpu = bench_ncpus();

	printf("\nbusy CPU time of the whole machine (%u cores; every node shares them) during\n"
	       "each step, medians in ms; readv = process_vm_readv of the image's bytes;\n"
	       "bound = max(link, restore, (readv cpu + link cpu + restore cpu) / %u) is the\n"
	       "least time the cores allow a migration, which does the work of all three\n\n",
	       ncpu, ncpu);
	printf("%-7s %6s | %8s %8s %8s %8s | %8s %8s %8s\n", "encrypt", "size", "migrate", "readv",
	       "link", "restore", "bound", "migrate", "target");
	printf("%-7s %6s | %8s %8s %8s %8s | %8s %8s %8s\n", "", "MiB", "cpu", "cpu", "cpu", "cpu", "",
	       "/ bound", "/ bound");
	for (size_t i = 0; i < n; i++) {
		const struct row *w = &rows[i];
		double bound = row_cpu_bound(w, ncpu);

		printf("%-7s %6llu |", w->encrypt ? "yes" : "no", (unsigned long long)w->size_mib);
		bench_cell(w->migrate_cpu, 8, 0);
		bench_cell(w->readv_cpu, 8, 0);
		bench_cell(w->encrypt ? w->sealed_cpu : w->link_cpu, 8, 0);
		bench_cell(w->restore_cpu, 8, 0);
		printf(" |");
		bench_cell(bound, 8, 1);
		bench_cell(w->total / bound, 8, 2);
		bench_cell(TARGET_RATIO * max2(row_link(w), w->restore) / bound, 8, 2);
		printf("\n");
	}
	printf("(target / bound below 1: this machine's cores cannot meet the 1.3x target)\n");
}

static void print_table(const struct config *c, const struct row *rows, size_t n)
{
	bool has_target = false;

	for (size_t i = 0; i < c->n_sizes; i++)
		has_target |= c->sizes[i] == TARGET_MIB;
	printf("\nghost migrate, node 1 -> node 2 (medians of %u run%s; times in ms)\n"
	       "ratio = migrate total / max(link, restore), where link is the sealed link for\n"
	       "encrypt yes (plain TCP + the chan's AEAD in its record size); ckpt+rst = ghost\n"
	       "checkpoint --kill to %s on node 1 + ghost restart -d on node 2, end to\n"
	       "end; command = ghost migrate end to end\n\n",
	       c->reps, c->reps == 1 ? "" : "s", c->dir_parent);
	printf("%-7s %6s %8s | %8s %8s %8s | %8s %8s %8s | %6s | %8s | %-11s %s\n", "encrypt",
	       "size", "image", "migrate", "frozen", "command", "link", "sealed", "restore",
	       "ratio", "ckpt+rst", "target 1.3x", "faster than");
	printf("%-7s %6s %8s | %8s %8s %8s | %8s %8s %8s | %6s | %8s | %-11s %s\n", "", "MiB",
	       "MiB", "total", "", "", "limit", "link", "limit", "", "", "", "ckpt+restart");
	for (size_t i = 0; i < n; i++) {
		const struct row *w = &rows[i];
		double ratio = w->total / max2(row_link(w), w->restore);

		printf("%-7s %6llu", w->encrypt ? "yes" : "no", (unsigned long long)w->size_mib);
		bench_cell(w->image_bytes / (double)MIB, 8, 1);
		printf(" |");
		bench_cell(w->total, 8, 1);
		bench_cell(w->frozen, 8, 1);
		bench_cell(w->command, 8, 1);
		printf(" |");
		bench_cell(w->link, 8, 1);
		bench_cell(w->sealed_link, 8, 1);
		bench_cell(w->restore, 8, 1);
		printf(" |");
		bench_cell(ratio, 6, 2);
		printf(" |");
		bench_cell(w->ckpt_rst, 8, 1);
		printf(" |");
		if (w->size_mib == TARGET_MIB)
			printf(" %-11s %s",
			       verdict(ratio <= TARGET_RATIO, isnan(ratio), "PASS", "FAIL"),
			       verdict(w->command < w->ckpt_rst,
				       isnan(w->command) || isnan(w->ckpt_rst), "yes", "no"));
		printf("\n");
	}
	printf("\n");
	if (!has_target)
		printf("the 1 GiB verdicts are not checked: %d is not in --sizes\n", TARGET_MIB);
	for (size_t i = 0; i < n; i++) {
		const struct row *w = &rows[i];
		double lim = max2(row_link(w), w->restore);
		const char *mode = w->encrypt ? "encrypted" : "not encrypted";

		if (w->size_mib != TARGET_MIB)
			continue;
		if (isnan(w->total) || isnan(lim))
			printf("target 1.3x (%s): not measured\n", mode);
		else
			printf("target 1.3x (%s): %s: migrate %.0f ms = %.2f x max(%slink %.0f, "
			       "restore %.0f) ms\n",
			       mode, w->total / lim <= TARGET_RATIO ? "PASS" : "FAIL", w->total,
			       w->total / lim, w->encrypt ? "sealed " : "", row_link(w),
			       w->restore);
		if (isnan(w->command) || isnan(w->ckpt_rst))
			printf("faster than ckpt+restart (%s): not measured\n", mode);
		else
			printf("faster than ckpt+restart (%s): %s: ghost migrate %.0f ms vs "
			       "checkpoint + restart %.0f ms (frozen during migrate: %.0f ms)\n",
			       mode, w->command < w->ckpt_rst ? "yes" : "no", w->command,
			       w->ckpt_rst, w->frozen);
	}
	print_cpu_table(rows, n);
	fflush(stdout);
}

static int supervise(struct config *c)
{
	struct sigaction sa = { .sa_handler = on_stop };
	struct row rows[2 * MAX_SIZES];
	size_t n_rows = 0;
	int r = 0, q;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* not tracked: the drivers' cleanup must leave it to the next one */
	c->work = bench_path_join(c->dir_parent, "ghost-bench-migrate.XXXXXX");
	if (!c->work)
		return -ENOMEM;
	if (!mkdtemp(c->work))
		return bench_err_r(-errno, "cannot create a directory in '%s': %s", c->dir_parent,
				   strerror(errno));
	if (bench_is_tmpfs(c->work) != 1)
		bench_err("warning: '%s' is not on tmpfs", c->dir_parent);
	printf("ghost migrate benchmark: ghost %s, memhog %s,\n"
	       "%u run(s) per size, checkpoint images in %s\n",
	       c->ghost, c->memhog, c->reps, c->work);
	fflush(stdout);
	if ((c->encrypt & ENC_NO) && !stop_sig)
		r = run_mode(c, false, rows, &n_rows);
	if ((c->encrypt & ENC_YES) && !stop_sig) {
		q = run_mode(c, true, rows, &n_rows);
		if (r >= 0)
			r = q;
	}
	bench_rm_rf(c->work);
	if (stop_sig) {
		bench_err("stopped by signal %d", (int)stop_sig);
		return -EINTR;
	}
	print_table(c, rows, n_rows);
	return r;
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fputs("usage: migrate [--sizes MIB,...] [--reps N] [--encrypt yes|no|both] [--dir DIR]\n"
	      "               [--ghost PATH] [--memhog PATH] [--no-warm]\n"
	      "Migrates memhog processes from node 1 to node 2 of a local cluster with\n"
	      "'ghost migrate', and measures in the same run the link limit (plain TCP\n"
	      "between the nodes; with encryption also sealed as the transfer seals it),\n"
	      "the restore limit (process_vm_writev into fresh memory) and\n"
	      "'ghost checkpoint --kill' + 'ghost restart' through a file.\n"
	      "  --sizes MIB,...  memhog sizes (default 16,256,1024)\n"
	      "  --reps N         runs per size, medians reported (default 3)\n"
	      "  --encrypt MODE   cluster without (no), with (yes) encryption, or one of each\n"
	      "                   (both, the default)\n"
	      "  --dir DIR        where the checkpoint image goes (default /dev/shm)\n"
	      "  --ghost PATH     the ghost CLI (default: next to this program, or\n"
	      "                   ../cmd/ghost/ghost from it, as in a build directory)\n"
	      "  --memhog PATH    the memhog target (default: next to this program)\n"
	      "  --no-warm        do not touch and free memory before each timed step\n"
	      "                   (by default each step, Ghost's and the limits' alike,\n"
	      "                   gets memory the machine already backs; see bench.h)\n"
	      "Needs root: it brings 2-node clusters up and takes them down.\n"
	      "Raw per-run numbers go to stderr, the table to stdout.\n",
	      f);
}

static int find_programs(struct config *c)
{
	_cleanup_free_ char *dir = NULL, *p2 = NULL, *p3 = NULL;
	int r;

	r = bench_self_dir(&dir);
	if (r < 0)
		return bench_err_r(r, "cannot find my own directory: %s", strerror(-r));
	c->self = bench_exe_path("/proc/self/exe");
	if (!c->self)
		return bench_err_r(-ENOENT, "cannot find my own executable");
	if (!c->ghost) {
		p2 = bench_path_join(dir, "ghost");
		p3 = bench_path_join(dir, "../cmd/ghost/ghost");
		if (!p2 || !p3)
			return -ENOMEM;
		c->ghost = bench_exe_path(p2);
		if (!c->ghost)
			c->ghost = bench_exe_path(p3);
	} else {
		char *given = c->ghost;

		c->ghost = bench_exe_path(given);
		free(given);
	}
	if (!c->ghost)
		return bench_err_r(-ENOENT, "no ghost CLI found (--ghost PATH)");
	if (!c->memhog) {
		free(p2);
		p2 = bench_path_join(dir, "memhog");
		if (!p2)
			return -ENOMEM;
		c->memhog = bench_exe_path(p2);
	} else {
		char *given = c->memhog;

		c->memhog = bench_exe_path(given);
		free(given);
	}
	if (!c->memhog)
		return bench_err_r(-ENOENT, "no memhog found (--memhog PATH)");
	return 0;
}

int main(int argc, char **argv)
{
	enum { OPT_SIZES = 256, OPT_REPS, OPT_GHOST, OPT_MEMHOG, OPT_ENCRYPT, OPT_DIR, OPT_ROLE,
	       OPT_ADDR, OPT_PORT, OPT_BYTES, OPT_SEAL, OPT_NO_WARM, OPT_HELP };
	static const struct option options[] = {
		{ "sizes", required_argument, NULL, OPT_SIZES },
		{ "reps", required_argument, NULL, OPT_REPS },
		{ "ghost", required_argument, NULL, OPT_GHOST },
		{ "memhog", required_argument, NULL, OPT_MEMHOG },
		{ "encrypt", required_argument, NULL, OPT_ENCRYPT },
		{ "dir", required_argument, NULL, OPT_DIR },
		{ "role", required_argument, NULL, OPT_ROLE },
		{ "addr", required_argument, NULL, OPT_ADDR },
		{ "port", required_argument, NULL, OPT_PORT },
		{ "bytes", required_argument, NULL, OPT_BYTES },
		{ "seal", no_argument, NULL, OPT_SEAL },
		{ "no-warm", no_argument, NULL, OPT_NO_WARM },
		{ "help", no_argument, NULL, OPT_HELP },
		{}
	};
	struct config c = {
		.sizes = { 16, 256, 1024 },
		.n_sizes = 3,
		.reps = 3,
		.encrypt = ENC_BOTH,
		.dir_parent = "/dev/shm",
	};
	const char *role = NULL, *addr = NULL;
	uint64_t port = LINK_PORT, bytes = 0, v;
	bool seal = false;
	size_t n;
	int o, r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((o = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (o) {
		case OPT_SIZES:
			if (bench_parse_list(optarg, c.sizes, MAX_SIZES, &c.n_sizes) < 0) {
				bench_err("bad size list '%s'", optarg);
				return 2;
			}
			for (size_t i = 0; i < c.n_sizes; i++)
				if (c.sizes[i] == 0 || c.sizes[i] > MAX_SIZE_MIB) {
					bench_err("bad size '%s' (1 to %d MiB)", optarg,
						  MAX_SIZE_MIB);
					return 2;
				}
			break;
		case OPT_REPS:
			if (bench_parse_list(optarg, &v, 1, &n) < 0 || v < 1 || v > MAX_REPS) {
				bench_err("bad repetition count '%s' (1 to %d)", optarg, MAX_REPS);
				return 2;
			}
			c.reps = (unsigned)v;
			break;
		case OPT_GHOST:
			free(c.ghost);
			c.ghost = strdup(optarg);
			break;
		case OPT_MEMHOG:
			free(c.memhog);
			c.memhog = strdup(optarg);
			break;
		case OPT_ENCRYPT:
			if (!strcmp(optarg, "yes"))
				c.encrypt = ENC_YES;
			else if (!strcmp(optarg, "no"))
				c.encrypt = ENC_NO;
			else if (!strcmp(optarg, "both"))
				c.encrypt = ENC_BOTH;
			else {
				bench_err("bad --encrypt '%s' (yes, no or both)", optarg);
				return 2;
			}
			break;
		case OPT_DIR:
			c.dir_parent = optarg;
			break;
		case OPT_NO_WARM:
			bench_warm_disable();
			break;
		case OPT_ROLE:
			role = optarg;
			break;
		case OPT_ADDR:
			addr = optarg;
			break;
		case OPT_PORT:
		case OPT_BYTES:
			if (bench_parse_list(optarg, &v, 1, &n) < 0 || v == 0 ||
			    (o == OPT_PORT && v > 65535)) {
				bench_err("bad number '%s'", optarg);
				return 2;
			}
			if (o == OPT_PORT)
				port = v;
			else
				bytes = v;
			break;
		case OPT_SEAL:
			seal = true;
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
	if (role) {
		if (!strcmp(role, "sink"))
			r = role_sink(addr, (uint16_t)port, seal);
		else if (!strcmp(role, "source"))
			r = role_source(addr, (uint16_t)port, bytes, seal);
		else
			r = -EINVAL;
		if (r < 0)
			bench_err("%s: %s", role, strerror(-r));
		return r < 0 ? 1 : 0;
	}
	if (geteuid() != 0) {
		bench_err("migrate needs root (it builds clusters of namespaces)");
		return 77;
	}
	r = find_programs(&c);
	if (r >= 0)
		r = supervise(&c);
	free(c.ghost);
	free(c.memhog);
	free(c.self);
	free(c.work);
	return r < 0 ? 1 : 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench/msg: the msg layer between two nodes of a local cluster, against a
 * plain TCP connection over the same link and the cipher's own speed, all
 * measured in the same run (bench/README.md).
 *
 * The program plays every part. Run without --role it is the driver: it
 * brings a 2-node cluster up with the ghost CLI, runs `openssl speed`, then
 * for each of tcp, msg without and msg with bulk encryption starts a server
 * in node 2 and a client in node 1 (both this program, through `ghost
 * cluster exec`), collects the client's result lines, prints the table and
 * takes the cluster down, also when something failed. A supervising parent
 * does the cluster down, so a crash or a signal in the driver still leaves
 * nothing behind.
 *
 * Latency is measured as round trips of 32-byte messages (echoed by the
 * server) and halved: one-way = round trip / 2. Throughput: the client sends
 * COUNT messages of a size as fast as the link (msg: the send window) takes
 * them, then a marker; the server answers the marker with the bytes it got;
 * the time runs from the first send to that answer.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "msg/msg.h"
#include "base/banned.h"

#define TCP_PORT 7731
#define MSG_PORT 7732
#define SMALL 32
#define WARMUP 200
#define MAX_SIZES 8

enum { CH_ECHO = 1, CH_BULK, CH_MARK, CH_QUIT };

static const uint64_t sizes[] = { 64, 1024, 64 << 10, 1 << 20, 4 << 20 };
#define N_SIZES ARRAY_SIZE(sizes)

struct opts {
	const char *role;
	const char *ghost;
	const char *key_hex;
	bool plain, quick;
	uint64_t rounds;      /* latency round trips */
	uint64_t budget;      /* bytes per throughput measurement */
	uint64_t ossl_secs;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t msg_count(const struct opts *o, uint64_t size)
{
	uint64_t n = o->budget / size;

	return MAX(MIN(n, (uint64_t)200000), (uint64_t)8);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Sorts v; prints one-way latency (half the round trip) in microseconds. */
static void print_latency(double *rtt_ns, size_t n)
{
	size_t p99 = (size_t)((double)n * 0.99);

	qsort(rtt_ns, n, sizeof(*rtt_ns), cmp_double);
	if (p99 >= n)
		p99 = n - 1;
	printf("lat %zu %.3f %.3f\n", n, rtt_ns[n / 2] / 2000.0, rtt_ns[p99] / 2000.0);
	fflush(stdout);
}

static void print_tput(uint64_t size, uint64_t count, uint64_t ns)
{
	printf("tput %llu %llu %.6f\n", (unsigned long long)size, (unsigned long long)count,
	       (double)ns / 1e9);
	fflush(stdout);
}

/* ---- plain TCP ---------------------------------------------------------- */

static int tcp_tune(int fd)
{
	int one = 1;
	struct timeval tv = { .tv_sec = 60 };

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

static int read_exact(int fd, void *p, size_t len)
{
	ssize_t r = read_full(fd, p, len);

	if (r < 0)
		return (int)r;
	return (size_t)r == len ? 0 : -EPIPE;
}

/* One connection: 'L' n: n echoes of SMALL bytes; 'T' total: read total
 * bytes, answer with the count; 'Q': the server exits. 1 after 'Q'. */
static int tcp_serve_conn(int fd, uint8_t *buf, size_t buf_size)
{
	for (;;) {
		uint8_t cmd, hdr[8];
		uint64_t n;
		ssize_t k;
		int r;

		k = read(fd, &cmd, 1);
		if (k <= 0)
			return 0;
		if (cmd == 'Q')
			return 1;
		r = read_exact(fd, hdr, 8);
		if (r < 0)
			return r;
		n = get_le64(hdr);
		if (cmd == 'L') {
			for (uint64_t i = 0; i < n; i++) {
				r = read_exact(fd, buf, SMALL);
				if (r >= 0)
					r = write_full(fd, buf, SMALL);
				if (r < 0)
					return r;
			}
		} else if (cmd == 'T') {
			uint64_t got = 0;

			while (got < n) {
				k = read(fd, buf, MIN(buf_size, n - got));
				if (k <= 0)
					return k < 0 ? -errno : -EPIPE;
				got += (uint64_t)k;
			}
			put_le64(hdr, got);
			r = write_full(fd, hdr, 8);
			if (r < 0)
				return r;
		} else {
			return -EBADMSG;
		}
	}
}

/* A listening socket on every address of the node, reusable at once. */
static int listen_socket(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	_cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0)
		return -errno;
	return TAKE_FD(fd);
}

static int role_tcp_server(void)
{
	_cleanup_close_ int lfd = -1;
	size_t buf_size = 1 << 20;
	_cleanup_free_ uint8_t *buf = malloc(buf_size);

	if (!buf)
		return -ENOMEM;
	lfd = listen_socket(TCP_PORT);
	if (lfd < 0)
		return lfd;
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		_cleanup_close_ int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		int r;

		if (fd < 0)
			return -errno;
		r = tcp_tune(fd);
		if (r >= 0)
			r = tcp_serve_conn(fd, buf, buf_size);
		if (r < 0)
			fprintf(stderr, "bench-msg: tcp server: %s\n", strerror(-r));
		if (r == 1)
			return 0;
	}
}

static int role_tcp_client(const struct opts *o, const char *addr)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(TCP_PORT) };
	_cleanup_close_ int fd = -1;
	_cleanup_free_ uint8_t *buf = malloc(sizes[N_SIZES - 1]);
	_cleanup_free_ double *rtt = calloc(o->rounds, sizeof(*rtt));
	uint8_t hdr[9];
	int r;

	if (!buf || !rtt)
		return -ENOMEM;
	memset(buf, 0x5a, sizes[N_SIZES - 1]);
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return -EINVAL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = tcp_tune(fd);
	if (r < 0)
		return r;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;

	hdr[0] = 'L';
	put_le64(hdr + 1, WARMUP + o->rounds);
	r = write_full(fd, hdr, sizeof(hdr));
	for (uint64_t i = 0; r >= 0 && i < WARMUP + o->rounds; i++) {
		uint64_t t0 = now_ns();

		r = write_full(fd, buf, SMALL);
		if (r >= 0)
			r = read_exact(fd, buf, SMALL);
		if (i >= WARMUP)
			rtt[i - WARMUP] = (double)(now_ns() - t0);
	}
	if (r < 0)
		return r;
	print_latency(rtt, o->rounds);

	for (size_t s = 0; s < N_SIZES; s++) {
		uint64_t count = msg_count(o, sizes[s]), t0;

		hdr[0] = 'T';
		put_le64(hdr + 1, count * sizes[s]);
		t0 = now_ns();
		r = write_full(fd, hdr, sizeof(hdr));
		for (uint64_t i = 0; r >= 0 && i < count; i++)
			r = write_full(fd, buf, sizes[s]);
		if (r >= 0)
			r = read_exact(fd, hdr, 8);
		if (r < 0)
			return r;
		if (get_le64(hdr) != count * sizes[s])
			return -EPROTO;
		print_tput(sizes[s], count, now_ns() - t0);
	}
	hdr[0] = 'Q';
	return write_full(fd, hdr, 1);
}

/* ---- msg ---------------------------------------------------------------- */

struct mb {
	const struct opts *o;
	struct loop *loop;
	struct msg *m;
	uint32_t other;
	bool client;
	int status;
	uint8_t *buf;
	/* client */
	double *rtt;
	uint64_t lat_i, t0;
	size_t size_idx;
	uint64_t count, sent;
	bool marked, started;
	/* server */
	uint64_t bytes;
	struct loop_timer *quit;
	struct loop_timer *deadline;
	struct loop_signal *sigterm;
};

static void mb_fail(struct mb *b, const char *what, int r)
{
	if (b->status == 0)
		fprintf(stderr, "bench-msg: %s: %s\n", what, strerror(r < 0 ? -r : EIO));
	b->status = r < 0 ? r : -EIO;
	loop_exit(b->loop, 1);
}

static void tput_start(struct mb *b);

static void pump(struct mb *b)
{
	uint64_t size = sizes[b->size_idx];
	uint8_t mark[8];
	int r;

	while (b->started && b->sent < b->count) {
		r = msg_peer_writable(b->m, b->other);
		if (r == 0)
			return;
		if (r > 0)
			r = msg_send(b->m, b->other, CH_BULK, 0, b->buf, size);
		if (r < 0)
			return mb_fail(b, "sending", r);
		b->sent++;
	}
	if (b->started && !b->marked) {
		put_le64(mark, b->count * size);
		r = msg_send(b->m, b->other, CH_MARK, (uint32_t)b->size_idx, mark, 8);
		if (r < 0)
			return mb_fail(b, "sending the marker", r);
		b->marked = true;
	}
}

static void tput_start(struct mb *b)
{
	b->count = msg_count(b->o, sizes[b->size_idx]);
	b->sent = 0;
	b->marked = false;
	b->started = true;
	b->t0 = now_ns();
	pump(b);
}

static void send_ping(struct mb *b)
{
	int r;

	b->t0 = now_ns();
	r = msg_send(b->m, b->other, CH_ECHO, 0, b->buf, SMALL);
	if (r < 0)
		mb_fail(b, "sending a ping", r);
}

static void on_peer(struct msg *m _unused_, uint32_t node, enum msg_peer_event ev,
		    uint64_t inc _unused_, void *userdata)
{
	struct mb *b = userdata;

	if (node != b->other)
		return;
	if (ev == MSG_PEER_DOWN)
		return mb_fail(b, "the other node went down", -EHOSTDOWN);
	if (b->client)
		send_ping(b);
}

static void on_recv(struct msg *m _unused_, uint32_t node, uint16_t ch, uint32_t type,
		    const void *data, size_t len, void *userdata)
{
	struct mb *b = userdata;
	uint8_t reply[8];
	int r = 0;

	if (node != b->other)
		return;
	if (!b->client) {
		switch (ch) {
		case CH_ECHO:
			r = msg_send(b->m, node, CH_ECHO, type, data, len);
			break;
		case CH_BULK:
			b->bytes += len;
			break;
		case CH_MARK:
			put_le64(reply, b->bytes);
			b->bytes = 0;
			r = msg_send(b->m, node, CH_MARK, type, reply, 8);
			break;
		case CH_QUIT:
			r = msg_send(b->m, node, CH_QUIT, 0, NULL, 0);
			loop_timer_arm(b->quit, 300000);
			break;
		}
		if (r < 0)
			mb_fail(b, "answering", r);
		return;
	}
	switch (ch) {
	case CH_ECHO:
		if (b->lat_i >= WARMUP)
			b->rtt[b->lat_i - WARMUP] = (double)(now_ns() - b->t0);
		if (++b->lat_i < WARMUP + b->o->rounds)
			return send_ping(b);
		print_latency(b->rtt, b->o->rounds);
		b->size_idx = 0;
		return tput_start(b);
	case CH_MARK:
		if (len != 8 || get_le64(data) != b->count * sizes[b->size_idx])
			return mb_fail(b, "the server got a wrong byte count", -EPROTO);
		print_tput(sizes[b->size_idx], b->count, now_ns() - b->t0);
		b->started = false;
		if (++b->size_idx < N_SIZES)
			return tput_start(b);
		r = msg_send(b->m, node, CH_QUIT, 0, NULL, 0);
		if (r < 0)
			mb_fail(b, "sending quit", r);
		return;
	case CH_QUIT:
		loop_exit(b->loop, 0);
		return;
	}
}

static void on_writable(struct msg *m _unused_, uint32_t node _unused_, void *userdata)
{
	pump(userdata);
}

static void on_quit(struct loop_timer *t _unused_, void *userdata)
{
	struct mb *b = userdata;

	loop_exit(b->loop, 0);
}

static void on_deadline(struct loop_timer *t _unused_, void *userdata)
{
	mb_fail(userdata, "timed out", -ETIMEDOUT);
}

static void on_sigterm(struct loop_signal *s _unused_, const struct signalfd_siginfo *si _unused_,
		       void *userdata)
{
	struct mb *b = userdata;

	loop_exit(b->loop, 0);
}

static int parse_key(const char *s, uint8_t key[MSG_KEY_SIZE])
{
	size_t bin_len;

	if (!s || sodium_hex2bin(key, MSG_KEY_SIZE, s, strlen(s), NULL, &bin_len, NULL) < 0 ||
	    bin_len != MSG_KEY_SIZE)
		return -EINVAL;
	return 0;
}

static int role_msg(const struct opts *o, bool client)
{
	static const struct msg_handler h = {
		.recv = on_recv,
		.writable = on_writable,
	};
	struct msg_peer_config peers[2] = {
		{ .id = 1, .address = "10.77.0.1:7732" },
		{ .id = 2, .address = "10.77.0.2:7732" },
	};
	struct msg_config cfg = MSG_CONFIG_INIT;
	struct mb b = { .o = o, .client = client, .other = client ? 2 : 1 };
	int r;

	_Static_assert(MSG_PORT == 7732, "the port in the addresses above");
	cfg.node_id = client ? 1 : 2;
	cfg.peers = peers;
	cfg.n_peers = 2;
	cfg.encrypt = !o->plain;
	r = listen_socket(MSG_PORT);
	if (r < 0)
		return r;
	cfg.listen_fd = r;
	r = parse_key(o->key_hex, cfg.key);
	if (r < 0) {
		safe_close(cfg.listen_fd);
		return r;
	}
	b.buf = calloc(1, sizes[N_SIZES - 1]);
	b.rtt = calloc(o->rounds, sizeof(*b.rtt));
	if (!b.buf || !b.rtt) {
		r = -ENOMEM;
		goto out;
	}
	memset(b.buf, 0x5a, sizes[N_SIZES - 1]);
	r = loop_new(&b.loop);
	if (r >= 0) {
		r = msg_new(b.loop, &cfg, &b.m);
		cfg.listen_fd = -1;
	}
	if (r >= 0)
		r = msg_register(b.m, CH_ECHO, &h, &b);
	if (r >= 0)
		r = msg_register(b.m, CH_BULK, &h, &b);
	if (r >= 0)
		r = msg_register(b.m, CH_MARK, &h, &b);
	if (r >= 0)
		r = msg_register(b.m, CH_QUIT, &h, &b);
	if (r >= 0)
		r = loop_timer_new(b.loop, on_quit, &b, &b.quit);
	if (r >= 0)
		r = loop_timer_new(b.loop, on_deadline, &b, &b.deadline);
	if (r >= 0)
		r = loop_signal_new(b.loop, SIGTERM, on_sigterm, &b, &b.sigterm);
	if (r < 0)
		goto out;
	msg_set_peer_fn(b.m, on_peer, &b);
	loop_timer_arm(b.deadline, 600 * 1000000ull);
	if (!client) {
		printf("ready\n");
		fflush(stdout);
	}
	r = loop_run(b.loop);
	if (r >= 0)
		r = b.status;
out:
	loop_signal_free(b.sigterm);
	loop_timer_free(b.quit);
	loop_timer_free(b.deadline);
	msg_free(b.m);
	loop_free(b.loop);
	free(b.buf);
	free(b.rtt);
	safe_close(cfg.listen_fd);
	return r;
}

/* ---- the driver --------------------------------------------------------- */

struct result {
	double lat_med, lat_p99;  /* one-way, microseconds */
	double mbps[N_SIZES];     /* 10^6 bytes per second */
	bool ok;
};

static pid_t spawn(const char *const argv[], int *ret_out)
{
	int p[2] = { -1, -1 };
	pid_t pid;

	if (ret_out && pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		safe_close(p[0]);
		safe_close(p[1]);
		return -errno;
	}
	if (pid == 0) {
		int fd = ret_out ? p[1] : open("/dev/null", O_WRONLY | O_CLOEXEC);

		if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
			_exit(127);
		execvp(argv[0], (char *const *)argv);
		fprintf(stderr, "bench-msg: cannot run '%s': %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (ret_out) {
		safe_close(p[1]);
		*ret_out = p[0];
	}
	return pid;
}

/* Exit status of pid, waiting at most timeout_ms, then SIGTERM, then SIGKILL. */
static int reap(pid_t pid, unsigned timeout_ms)
{
	int st;

	for (unsigned waited = 0;; waited += 10) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			break;
		if (r < 0)
			return -errno;
		if (waited == timeout_ms)
			kill(pid, SIGTERM);
		if (waited == timeout_ms + 3000)
			kill(pid, SIGKILL);
		usleep(10000);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int run_wait(const char *const argv[])
{
	pid_t pid = spawn(argv, NULL);

	if (pid < 0)
		return pid;
	return reap(pid, 120000);
}

/* The cipher's one-core speed in 10^6 bytes/s, from `openssl speed`. */
static int openssl_speed(const char *cipher, uint64_t secs, double *ret)
{
	char s_secs[24];
	const char *argv[] = { "openssl", "speed", "-evp", cipher, "-seconds", s_secs,
			 "-bytes", "16384", NULL };
	char line[512];
	bool table = false;
	FILE *f;
	int fd, st;
	pid_t pid;

	snprintf(s_secs, sizeof(s_secs), "%llu", (unsigned long long)secs);
	pid = spawn(argv, &fd);
	if (pid < 0)
		return pid;
	f = fdopen(fd, "r");
	if (!f) {
		safe_close(fd);
		reap(pid, 0);
		return -ENOMEM;
	}
	*ret = 0;
	while (fgets(line, sizeof(line), f)) {
		char *last, *end;
		double v;

		if (strncmp(line, "type ", 5) == 0) {
			table = true;
			continue;
		}
		if (!table)
			continue;
		/* "AES-256-GCM    2146320.55k": thousands of bytes per second. */
		line[strcspn(line, "\n")] = '\0';
		last = strrchr(line, ' ');
		if (!last)
			continue;
		v = strtod(last + 1, &end);
		if (end != last + 1 && *end == 'k')
			*ret = v / 1000.0;
		table = false;
	}
	fclose(f);
	st = reap(pid, 60000);
	if (st != 0 || *ret <= 0)
		return -EPROTO;
	return 0;
}

static const char *self_path(void)
{
	static char path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);

	if (n <= 0)
		return NULL;
	path[n] = '\0';
	return path;
}

/* Run one server/client pair: "tcp", "msg" or "msg-plain". */
static int measure(const struct opts *o, const char *kind, struct result *res)
{
	const char *self = self_path();
	char rounds[24], budget[24], server_role[24], client_role[24];
	const char *sargv[16], *cargv[20];
	char line[256];
	int sfd = -1, cfd = -1, n = 0, r = 0, st;
	pid_t spid, cpid;
	size_t got_tput = 0;
	bool got_lat = false;
	FILE *sf = NULL, *cf = NULL;

	if (!self)
		return -ENOENT;
	snprintf(rounds, sizeof(rounds), "%llu", (unsigned long long)o->rounds);
	snprintf(budget, sizeof(budget), "%llu", (unsigned long long)(o->budget >> 20));
	snprintf(server_role, sizeof(server_role), "%s-server",
		 strcmp(kind, "tcp") == 0 ? "tcp" : "msg");
	snprintf(client_role, sizeof(client_role), "%s-client",
		 strcmp(kind, "tcp") == 0 ? "tcp" : "msg");
	sargv[n++] = o->ghost;
	sargv[n++] = "cluster";
	sargv[n++] = "exec";
	sargv[n++] = "2";
	sargv[n++] = "--";
	sargv[n++] = self;
	sargv[n++] = "--role";
	sargv[n++] = server_role;
	sargv[n++] = "--key";
	sargv[n++] = o->key_hex;
	if (strcmp(kind, "msg-plain") == 0)
		sargv[n++] = "--plain";
	sargv[n] = NULL;
	memcpy(cargv, sargv, sizeof(*cargv) * (size_t)n);
	cargv[3] = "1";
	cargv[7] = client_role;
	cargv[n++] = "--rounds";
	cargv[n++] = rounds;
	cargv[n++] = "--budget";
	cargv[n++] = budget;
	cargv[n] = NULL;

	spid = spawn(sargv, &sfd);
	if (spid < 0)
		return (int)spid;
	sf = fdopen(sfd, "r");
	if (!sf || !fgets(line, sizeof(line), sf) || strcmp(line, "ready\n") != 0) {
		if (!sf)
			safe_close(sfd);
		fprintf(stderr, "bench-msg: the %s server did not start\n", kind);
		r = -EIO;
		goto out_server;
	}
	cpid = spawn(cargv, &cfd);
	if (cpid < 0) {
		r = (int)cpid;
		goto out_server;
	}
	cf = fdopen(cfd, "r");
	if (!cf)
		safe_close(cfd);
	while (cf && fgets(line, sizeof(line), cf)) {
		unsigned long long size, count;
		double a, b;
		size_t k;

		if (sscanf(line, "lat %llu %lf %lf", &count, &a, &b) == 3) {
			res->lat_med = a;
			res->lat_p99 = b;
			got_lat = true;
		} else if (sscanf(line, "tput %llu %llu %lf", &size, &count, &a) == 3) {
			for (k = 0; k < N_SIZES; k++)
				if (sizes[k] == size && a > 0) {
					res->mbps[k] = (double)(size * count) / a / 1e6;
					got_tput++;
				}
		}
	}
	if (cf)
		fclose(cf);
	st = reap(cpid, 600000);
	if (st != 0 || !got_lat || got_tput != N_SIZES) {
		fprintf(stderr, "bench-msg: the %s client failed (status %d)\n", kind, st);
		r = -EIO;
	}
out_server:
	if (sf)
		fclose(sf);
	st = reap(spid, r < 0 ? 0 : 5000);
	if (r >= 0 && st != 0) {
		fprintf(stderr, "bench-msg: the %s server failed (status %d)\n", kind, st);
		r = -EIO;
	}
	res->ok = r >= 0;
	return r;
}

static const char *fmt_size(uint64_t s, char *buf, size_t len)
{
	if (s >= (1 << 20))
		snprintf(buf, len, "%llu MiB", (unsigned long long)(s >> 20));
	else if (s >= 1024)
		snprintf(buf, len, "%llu KiB", (unsigned long long)(s >> 10));
	else
		snprintf(buf, len, "%llu B", (unsigned long long)s);
	return buf;
}

static void verdict(bool pass, const char *fmt, ...) _printf_(2, 3);

static void verdict(bool pass, const char *fmt, ...)
{
	va_list ap;

	printf("%s ", pass ? "PASS" : "MISS");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void report(const struct opts *o, const char *cipher, double cipher_mbps,
		   const struct result *tcp, const struct result *plain, const struct result *enc)
{
	double worst_plain = 1e9, worst_enc = 1e9;
	char sz[32];

	printf("\nmsg between node1 and node2 of a local cluster (veth pairs on a bridge),\n"
	       "against plain TCP over the same link, in the same run\n\n");
	printf("cipher: %s, one core (openssl speed -evp %s, 16 KiB blocks): %.0f MB/s\n\n",
	       cipher, cipher, cipher_mbps);
	printf("one-way latency of %d-byte messages = round trip / 2 (%llu round trips)\n", SMALL,
	       (unsigned long long)o->rounds);
	printf("  %-16s %10s %10s %10s %10s\n", "", "median us", "p99 us", "median/tcp",
	       "p99/tcp");
	printf("  %-16s %10.1f %10.1f\n", "tcp", tcp->lat_med, tcp->lat_p99);
	printf("  %-16s %10.1f %10.1f %9.0f%% %9.0f%%\n", "msg (plain)", plain->lat_med,
	       plain->lat_p99, 100 * plain->lat_med / tcp->lat_med,
	       100 * plain->lat_p99 / tcp->lat_p99);
	printf("  %-16s %10.1f %10.1f %9.0f%% %9.0f%%\n\n", "msg (encrypted)", enc->lat_med,
	       enc->lat_p99, 100 * enc->lat_med / tcp->lat_med, 100 * enc->lat_p99 / tcp->lat_p99);
	printf("throughput, MB/s (10^6 bytes/s); one write per message for tcp\n");
	printf("  %-8s %8s %8s %9s %8s %10s\n", "size", "tcp", "plain", "plain/tcp", "encrypt",
	       "enc/cipher");
	for (size_t k = 0; k < N_SIZES; k++) {
		double rp = plain->mbps[k] / tcp->mbps[k], re = enc->mbps[k] / cipher_mbps;

		printf("  %-8s %8.0f %8.0f %8.0f%% %8.0f %9.0f%%\n",
		       fmt_size(sizes[k], sz, sizeof(sz)), tcp->mbps[k], plain->mbps[k], 100 * rp,
		       enc->mbps[k], 100 * re);
		if (sizes[k] >= (1 << 20)) {
			worst_plain = MIN(worst_plain, rp);
			worst_enc = MIN(worst_enc, re);
		}
	}
	putchar('\n');
	verdict(worst_plain >= 0.9,
		"large messages (1 and 4 MiB) without encryption: %.0f%% of tcp (target >= 90%%)",
		100 * worst_plain);
	verdict(worst_enc >= 0.9,
		"large messages (1 and 4 MiB) with encryption: %.0f%% of the cipher's one-core "
		"speed (target >= 90%%)",
		100 * worst_enc);
	verdict(plain->lat_med <= 1.2 * tcp->lat_med,
		"small-message median latency without encryption: %.0f%% of tcp (target <= 120%%)",
		100 * plain->lat_med / tcp->lat_med);
	verdict(enc->lat_med <= 1.2 * tcp->lat_med,
		"small-message median latency with encryption: %.0f%% of tcp (target <= 120%%)",
		100 * enc->lat_med / tcp->lat_med);
	fflush(stdout);
}

static int driver(struct opts *o)
{
	uint8_t key[MSG_KEY_SIZE];
	static char key_hex[2 * MSG_KEY_SIZE + 1];
	struct result tcp = { 0 }, plain = { 0 }, enc = { 0 };
	const char *cipher;
	double cipher_mbps;
	int r;

	if (sodium_init() < 0)
		return -EIO;
	if (getrandom(key, sizeof(key), 0) != sizeof(key))
		return -EIO;
	sodium_bin2hex(key_hex, sizeof(key_hex), key, sizeof(key));
	o->key_hex = key_hex;
	cipher = crypto_aead_aes256gcm_is_available() ? "aes-256-gcm" : "chacha20-poly1305";

	printf("openssl speed -evp %s ...\n", cipher);
	fflush(stdout);
	r = openssl_speed(cipher, o->ossl_secs, &cipher_mbps);
	if (r < 0) {
		fprintf(stderr, "bench-msg: cannot read 'openssl speed -evp %s'\n", cipher);
		return r;
	}
	printf("tcp ...\n");
	fflush(stdout);
	r = measure(o, "tcp", &tcp);
	if (r >= 0) {
		printf("msg without encryption ...\n");
		fflush(stdout);
		r = measure(o, "msg-plain", &plain);
	}
	if (r >= 0) {
		printf("msg with encryption ...\n");
		fflush(stdout);
		r = measure(o, "msg", &enc);
	}
	if (r < 0)
		return r;
	report(o, cipher, cipher_mbps, &tcp, &plain, &enc);
	return 0;
}

static pid_t child_pid;

static void forward_signal(int sig)
{
	if (child_pid > 0)
		kill(child_pid, sig);
}

static int find_ghost(struct opts *o)
{
	static char path[PATH_MAX + 32];
	const char *self = self_path();
	char dir[PATH_MAX];
	char *slash;

	if (o->ghost)
		return access(o->ghost, X_OK) < 0 ? -errno : 0;
	if (!self)
		return -ENOENT;
	snprintf(dir, sizeof(dir), "%s", self);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	snprintf(path, sizeof(path), "%s/ghost", dir);
	if (access(path, X_OK) == 0) {
		o->ghost = path;
		return 0;
	}
	snprintf(path, sizeof(path), "%s/../cmd/ghost/ghost", dir);
	if (access(path, X_OK) == 0) {
		o->ghost = path;
		return 0;
	}
	return -ENOENT;
}

/* Bring the cluster up, run the driver in a child, always bring it down. */
static int supervise(struct opts *o)
{
	char tmpl[] = "/tmp/ghost-bench-msg.XXXXXX", dir[PATH_MAX];
	const char *up[] = { o->ghost, "cluster", "up", "--nodes", "2", NULL };
	const char *down[] = { o->ghost, "cluster", "down", NULL };
	struct sigaction sa = { .sa_handler = forward_signal };
	int r, st;

	if (!mkdtemp(tmpl))
		return -errno;
	snprintf(dir, sizeof(dir), "%s/cluster", tmpl);
	if (setenv("GHOST_CLUSTER_DIR", dir, 1) < 0) {
		rmdir(tmpl);
		return -ENOMEM;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	printf("ghost cluster up --nodes 2 ...\n");
	fflush(stdout);
	st = run_wait(up);
	if (st != 0) {
		fprintf(stderr, "bench-msg: 'ghost cluster up' failed (%d)\n", st);
		r = -EIO;
		goto down;
	}
	child_pid = fork();
	if (child_pid < 0) {
		r = -errno;
		goto down;
	}
	if (child_pid == 0) {
		r = driver(o);
		if (r < 0)
			fprintf(stderr, "bench-msg: %s\n", strerror(-r));
		fflush(stdout);
		_exit(r < 0 ? 1 : 0);
	}
	while (waitpid(child_pid, &st, 0) < 0 && errno == EINTR)
		;
	child_pid = 0;
	r = WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
down:
	st = run_wait(down);
	if (st != 0) {
		fprintf(stderr, "bench-msg: 'ghost cluster down' failed (%d)\n", st);
		r = -EIO;
	}
	rmdir(tmpl);
	return r;
}

static void usage(FILE *f)
{
	fputs("usage: msg [--ghost PATH] [--quick] [--rounds N] [--budget MIB] [--openssl-seconds S]\n"
	      "  --ghost PATH         the ghost CLI (default: next to this program, or\n"
	      "                       ../cmd/ghost/ghost from it, as in a build directory)\n"
	      "  --quick              --rounds 2000 --budget 32 --openssl-seconds 1\n"
	      "  --rounds N           latency round trips (default 20000)\n"
	      "  --budget MIB         bytes per throughput measurement (default 256)\n"
	      "  --openssl-seconds S  seconds of openssl speed (default 3)\n"
	      "Needs root: it brings up a 2-node cluster of namespaces and takes it down.\n",
	      f);
}

int main(int argc, char **argv)
{
	enum { OPT_ROLE = 256, OPT_GHOST, OPT_KEY, OPT_PLAIN, OPT_QUICK, OPT_ROUNDS, OPT_BUDGET,
	       OPT_OSSL, OPT_HELP };
	static const struct option options[] = {
		{ "role", required_argument, NULL, OPT_ROLE },
		{ "ghost", required_argument, NULL, OPT_GHOST },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "plain", no_argument, NULL, OPT_PLAIN },
		{ "quick", no_argument, NULL, OPT_QUICK },
		{ "rounds", required_argument, NULL, OPT_ROUNDS },
		{ "budget", required_argument, NULL, OPT_BUDGET },
		{ "openssl-seconds", required_argument, NULL, OPT_OSSL },
		{ "help", no_argument, NULL, OPT_HELP },
		{ 0 },
	};
	struct opts o = { .rounds = 20000, .budget = 256 << 20, .ossl_secs = 3 };
	uint64_t v;
	int c, r = 0;

	while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
		switch (c) {
		case OPT_ROLE:
			o.role = optarg;
			break;
		case OPT_GHOST:
			o.ghost = optarg;
			break;
		case OPT_KEY:
			o.key_hex = optarg;
			break;
		case OPT_PLAIN:
			o.plain = true;
			break;
		case OPT_QUICK:
			o.rounds = 2000;
			o.budget = 32 << 20;
			o.ossl_secs = 1;
			break;
		case OPT_ROUNDS:
		case OPT_BUDGET:
		case OPT_OSSL:
			r = parse_u64(optarg, 10, &v);
			if (r < 0 || v == 0 || v > (1u << 30)) {
				fprintf(stderr, "msg: bad number '%s'\n", optarg);
				return 2;
			}
			if (c == OPT_ROUNDS)
				o.rounds = v;
			else if (c == OPT_BUDGET)
				o.budget = v << 20;
			else
				o.ossl_secs = v;
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
	if (o.role) {
		if (strcmp(o.role, "tcp-server") == 0)
			r = role_tcp_server();
		else if (strcmp(o.role, "tcp-client") == 0)
			r = role_tcp_client(&o, "10.77.0.2");
		else if (strcmp(o.role, "msg-server") == 0)
			r = role_msg(&o, false);
		else if (strcmp(o.role, "msg-client") == 0)
			r = role_msg(&o, true);
		else
			r = -EINVAL;
		if (r < 0)
			fprintf(stderr, "msg: %s: %s\n", o.role, strerror(-r));
		return r < 0 ? 1 : 0;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "msg: needs root (it builds a cluster of namespaces)\n");
		return 77;
	}
	r = find_ghost(&o);
	if (r < 0) {
		fprintf(stderr, "msg: no ghost CLI found (--ghost PATH)\n");
		return 2;
	}
	r = supervise(&o);
	return r < 0 ? 1 : 0;
}

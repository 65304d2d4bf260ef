/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the direct data channel (src/msg/chan.c): the handshake over
 * loopback TCP (wrong keys, garbage and silent clients, timeouts), a 64 MiB
 * transfer between processes, and the record stream checked from the wire
 * (bit flips, truncation, replay, reordering, a vanished reader). Children
 * are forked processes that report through their exit status (the negated
 * error code, or a number above 200 for a failed check); the teardown kills
 * any child left and closes any fd left, and fails a finished test that
 * leaked one. Only 127.0.0.1 and ephemeral ports are used.
 */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "msg/msg-int.h"
#include "base/fileio.h"
#include "base/macro.h"

#define HOST "127.0.0.1"
#define BIG_SIZE ((64ull << 20) + 12345)
/* Generous: only a broken build should ever reach these. */
#define LONG_MS 20000u

/* The record format as msg.h documents it. */
#define REC_HDR 32
#define REC_DATA 1
#define REC_END 2

static const uint8_t key_a[MSG_CHAN_KEY_SIZE] = "chan test key A, 31 bytes + NUL";
static const uint8_t key_b[MSG_CHAN_KEY_SIZE] = "chan test key B, not the same!!";

/* ---- process and fd bookkeeping ---- */

#define MAX_FDS 1024
#define MAX_KIDS 16

static bool fd_baseline[MAX_FDS];
static pid_t kids[MAX_KIDS];
static bool test_done;

static void scan_fds(bool *open_fds)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;

	assert_non_null(d);
	memset(open_fds, 0, MAX_FDS * sizeof(bool));
	while ((de = readdir(d))) {
		int fd;

		if (de->d_name[0] == '.' || parse_int(de->d_name, &fd) < 0)
			continue;
		if (fd != dirfd(d) && fd >= 0 && fd < MAX_FDS)
			open_fds[fd] = true;
	}
	closedir(d);
}

static int setup(void **state _unused_)
{
	scan_fds(fd_baseline);
	memset(kids, 0, sizeof(kids));
	test_done = false;
	return 0;
}

static int teardown(void **state _unused_)
{
	bool now_open[MAX_FDS];
	int leaks = 0;

	for (int i = 0; i < MAX_KIDS; i++) {
		if (kids[i] > 0) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);
			kids[i] = 0;
			leaks++;
		}
	}
	scan_fds(now_open);
	for (int fd = 0; fd < MAX_FDS; fd++) {
		if (now_open[fd] && !fd_baseline[fd]) {
			close(fd);
			leaks++;
		}
	}
	if (test_done && leaks) {
		fprintf(stderr, "test left %d processes or fds behind\n", leaks);
		return -1;
	}
	return 0;
}

typedef int (*child_fn)(void *arg);

/* Fork a child running fn(arg) with only stdio and the fds in keep (ending
 * with -1) open; its return value is its exit status. */
static pid_t spawn(child_fn fn, void *arg, const int *keep)
{
	pid_t pid;
	int slot = -1;

	for (int i = 0; i < MAX_KIDS && slot < 0; i++)
		if (kids[i] == 0)
			slot = i;
	assert_true(slot >= 0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (int fd = 3; fd < MAX_FDS; fd++) {
			bool kept = false;

			for (const int *k = keep; *k >= 0; k++)
				kept |= *k == fd;
			if (!kept)
				close(fd);
		}
		alarm(120);
		_exit(fn(arg));
	}
	kids[slot] = pid;
	return pid;
}

/* Wait for a child: its exit status, or 300 + signal. */
static int reap(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	for (int i = 0; i < MAX_KIDS; i++)
		if (kids[i] == pid)
			kids[i] = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 300 + WTERMSIG(status);
}

/* A child's exit status for error r (< 0), with a note on stderr. */
static int child_err(const char *what, int r)
{
	fprintf(stderr, "child %d: %s: %d (%s)\n", (int)getpid(), what, r, strerror(-r));
	return -r > 0 && -r < 200 ? -r : 200;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint8_t pattern_byte(uint64_t off)
{
	return (uint8_t)((off * 0x9E3779B97F4A7C15ull) >> 56);
}

/* A pipe holding data (less than its capacity), write end closed. */
static int pipe_with(const void *data, size_t len)
{
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(write_full(p[1], data, len), 0);
	close(p[1]);
	return p[0];
}

/* Everything left in fd, at most cap bytes. */
static size_t read_all(int fd, uint8_t *buf, size_t cap)
{
	ssize_t n = read_full(fd, buf, cap);

	assert_true(n >= 0);
	return (size_t)n;
}

/* A client socket connected to 127.0.0.1:port, blocking. */
static int raw_connect(uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

/* True once fd reads end of file or a reset within LONG_MS. */
static bool sees_close(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint8_t b[128];
	ssize_t n;

	for (;;) {
		if (poll(&p, 1, (int)LONG_MS) != 1)
			return false;
		n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return false;
	}
}

static void make_hello(uint8_t out[40], uint32_t version)
{
	memcpy(out, "GHCH", 4);
	put_le32(out + 4, version);
	randombytes_buf(out + 8, 32);
}

/* ---- records, as the test's own sealer writes them ---- */

/* Seal one record (header kind, reserved byte 1 set to junk) into out. */
static size_t seal_rec(struct wire_cipher *c, uint8_t kind, uint8_t junk, const void *data,
		       size_t n, uint8_t *out)
{
	out[WIRE_LEN_SIZE] = kind;
	memset(out + WIRE_LEN_SIZE + 1, 0, REC_HDR - 1);
	out[WIRE_LEN_SIZE + 1] = junk;
	if (n)
		memcpy(out + WIRE_LEN_SIZE + REC_HDR, data, n);
	assert_int_equal(msg_wire_seal(c, out + WIRE_LEN_SIZE, REC_HDR + n, out), 0);
	return msg_wire_overhead(c) + REC_HDR + n;
}

/* Feed stream[0, len) through msg_chan_open_pump() with key; the plaintext
 * written out lands in out (under 64 KiB), its size in *ret_out. */
static int run_open(const uint8_t *key, const uint8_t *stream, size_t len, uint8_t *out,
		    size_t *ret_out)
{
	struct msg_chan_session s = MSG_CHAN_SESSION_INIT;
	int sp[2], p[2], r;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(write_full(sp[0], stream, len), 0);
	assert_int_equal(shutdown(sp[0], SHUT_WR), 0);
	s.fd = sp[1];
	memcpy(s.key, key, MSG_CHAN_KEY_SIZE);
	r = msg_chan_open_pump(&s, p[1]);
	close(p[1]);
	*ret_out = read_all(p[0], out, 65536);
	close(p[0]);
	close(sp[0]);
	msg_chan_session_release(&s);
	assert_int_equal(s.fd, -1);
	return r;
}

/* The sealed stream msg_chan_seal_pump() makes of data (small) with key. */
static uint8_t *seal_with_pump(const uint8_t *key, const void *data, size_t len, size_t *ret_len)
{
	struct msg_chan_session s = MSG_CHAN_SESSION_INIT;
	uint8_t *buf = malloc(65536 + 256);
	int sp[2], in;

	assert_non_null(buf);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	in = pipe_with(data, len);
	s.fd = sp[0];
	memcpy(s.key, key, MSG_CHAN_KEY_SIZE);
	assert_int_equal(msg_chan_seal_pump(&s, in), 0);
	close(in);
	msg_chan_session_release(&s);
	*ret_len = read_all(sp[1], buf, 65536 + 256);
	close(sp[1]);
	return buf;
}

/* ---- children ---- */

struct rx_args {
	int listen_fd;
	const uint8_t *key;
	unsigned timeout_ms;
	int out_fd; /* -1: accept only */
};

/* Receiver: accept, then (with out_fd) run the open pump into out_fd. */
static int rx_child(void *arg)
{
	struct rx_args *a = arg;
	struct msg_chan_session s = MSG_CHAN_SESSION_INIT;
	int r;

	r = msg_chan_accept(a->listen_fd, a->key, a->timeout_ms, &s);
	if (r < 0)
		return -r;
	if (a->out_fd >= 0)
		r = msg_chan_open_pump(&s, a->out_fd);
	msg_chan_session_release(&s);
	return -r;
}

struct tx_args {
	uint16_t port;
	const uint8_t *key;
	int in_fd;
};

/* Sender: connect, then run the seal pump from in_fd. */
static int tx_child(void *arg)
{
	struct tx_args *a = arg;
	struct msg_chan_session s = MSG_CHAN_SESSION_INIT;
	int r;

	r = msg_chan_connect(HOST, a->port, a->key, LONG_MS, &s);
	if (r < 0)
		return child_err("connect", r);
	r = msg_chan_seal_pump(&s, a->in_fd);
	msg_chan_session_release(&s);
	return r < 0 ? child_err("seal pump", r) : 0;
}

/* Sender: connect with key_a to *arg and end. */
static int tx_connect_child(void *arg)
{
	struct msg_chan_session s = MSG_CHAN_SESSION_INIT;
	int r = msg_chan_connect(HOST, *(uint16_t *)arg, key_a, LONG_MS, &s);

	msg_chan_session_release(&s);
	return r < 0 ? child_err("connect", r) : 0;
}

/* Write BIG_SIZE bytes of the pattern to *arg, in writes of varying size. */
static int gen_child(void *arg)
{
	int fd = *(int *)arg, r = 0;
	uint8_t *buf = malloc(1 << 20);
	uint64_t off = 0;
	size_t chunk = 1;

	if (!buf)
		return 201;
	while (off < BIG_SIZE) {
		size_t n = MIN((uint64_t)chunk, BIG_SIZE - off);

		for (size_t i = 0; i < n; i++)
			buf[i] = pattern_byte(off + i);
		r = write_full(fd, buf, n);
		if (r < 0)
			break;
		off += n;
		chunk = (chunk * 31 + 4099) % (1 << 20) + 1;
	}
	free(buf);
	return r < 0 ? child_err("generator write", r) : 0;
}

/* Read *arg to its end and check it is exactly the pattern. */
static int check_child(void *arg)
{
	int fd = *(int *)arg;
	uint8_t *buf = malloc(1 << 20);
	uint64_t off = 0;
	size_t want = 1000;
	ssize_t n;

	if (!buf)
		return 201;
	while ((n = read(fd, buf, want)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return child_err("checker read", -errno);
		}
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != pattern_byte(off + (uint64_t)i)) {
				fprintf(stderr, "checker: wrong byte at %llu\n",
					(unsigned long long)(off + (uint64_t)i));
				return 202;
			}
		}
		off += (uint64_t)n;
		want = want * 3 % (1 << 20) + 1;
	}
	free(buf);
	if (off != BIG_SIZE) {
		fprintf(stderr, "checker: %llu bytes, expected %llu\n", (unsigned long long)off,
			(unsigned long long)BIG_SIZE);
		return 203;
	}
	return 0;
}

/* ---- tests ---- */

static void test_api_basics(void **state _unused_)
{
	struct msg_chan_session s = MSG_CHAN_SESSION_INIT;
	uint8_t k1[MSG_CHAN_KEY_SIZE], k2[MSG_CHAN_KEY_SIZE];
	uint16_t port = 0;
	int fd = -1, flags;

	assert_int_equal(msg_chan_key_new(k1), 0);
	assert_int_equal(msg_chan_key_new(k2), 0);
	assert_memory_not_equal(k1, k2, sizeof(k1));
	assert_int_equal(msg_chan_key_new(NULL), -EINVAL);

	assert_int_equal(msg_chan_listen(HOST, &fd, &port), 0);
	assert_true(fd >= 0);
	assert_true(port != 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	flags = fcntl(fd, F_GETFL);
	assert_true(flags & O_NONBLOCK);
	close(fd);

	fd = -7;
	assert_int_equal(msg_chan_listen("localhost", &fd, &port), -EINVAL);
	assert_int_equal(msg_chan_listen("127.0.0.1:80", &fd, &port), -EINVAL);
	assert_int_equal(msg_chan_listen("[::1]", &fd, &port), -EINVAL);
	assert_int_equal(msg_chan_listen(NULL, &fd, &port), -EINVAL);
	assert_int_equal(msg_chan_listen(HOST, NULL, &port), -EINVAL);
	assert_int_equal(fd, -7);

	assert_int_equal(msg_chan_connect("localhost", 1, key_a, 100, &s), -EINVAL);
	assert_int_equal(msg_chan_connect(NULL, 1, key_a, 100, &s), -EINVAL);
	assert_int_equal(msg_chan_connect(HOST, 0, key_a, 100, &s), -EINVAL);
	assert_int_equal(msg_chan_connect(HOST, 1, NULL, 100, &s), -EINVAL);
	assert_int_equal(msg_chan_accept(-1, key_a, 100, &s), -EINVAL);
	assert_int_equal(msg_chan_seal_pump(&s, 0), -EINVAL);
	assert_int_equal(msg_chan_open_pump(&s, 1), -EINVAL);
	assert_int_equal(msg_chan_seal_pump(NULL, 0), -EINVAL);
	assert_int_equal(s.fd, -1);

	msg_chan_session_release(&s);
	msg_chan_session_release(&s);
	msg_chan_session_release(NULL);
	assert_int_equal(s.fd, -1);
	test_done = true;
}

static void test_accept_timeout(void **state _unused_)
{
	struct msg_chan_session s = { .fd = -77 };
	uint64_t t0, dt;
	uint16_t port;
	int lfd;

	assert_int_equal(msg_chan_listen(HOST, &lfd, &port), 0);
	t0 = now_ms();
	assert_int_equal(msg_chan_accept(lfd, key_a, 300, &s), -ETIMEDOUT);
	dt = now_ms() - t0;
	assert_true(dt >= 300);
	assert_true(dt < LONG_MS);
	assert_int_equal(msg_chan_accept(lfd, key_a, 0, &s), -ETIMEDOUT);
	assert_int_equal(s.fd, -77);
	close(lfd);
	test_done = true;
}

static int close_after_hello(void *arg)
{
	int lfd = *(int *)arg, fd;
	uint8_t hello[40];
	struct pollfd p = { .fd = lfd, .events = POLLIN };

	if (poll(&p, 1, (int)LONG_MS) != 1)
		return 201;
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return 202;
	if (read_full(fd, hello, sizeof(hello)) != (ssize_t)sizeof(hello))
		return 203;
	close(fd);
	return 0;
}

static void test_connect_errors(void **state _unused_)
{
	struct msg_chan_session s = { .fd = -77 };
	uint64_t t0, dt;
	uint16_t port;
	pid_t pid;
	int lfd;

	/* Nobody listening. */
	assert_int_equal(msg_chan_listen(HOST, &lfd, &port), 0);
	close(lfd);
	assert_int_equal(msg_chan_connect(HOST, port, key_a, LONG_MS, &s), -ECONNREFUSED);

	/* Listening, but nobody answers the hello. */
	assert_int_equal(msg_chan_listen(HOST, &lfd, &port), 0);
	t0 = now_ms();
	assert_int_equal(msg_chan_connect(HOST, port, key_a, 300, &s), -ETIMEDOUT);
	dt = now_ms() - t0;
	assert_true(dt >= 300);
	assert_true(dt < LONG_MS);

	/* The receiver hangs up after the hello. */
	close(lfd);
	assert_int_equal(msg_chan_listen(HOST, &lfd, &port), 0);
	pid = spawn(close_after_hello, &lfd, (int[]){ lfd, -1 });
	assert_int_equal(msg_chan_connect(HOST, port, key_a, LONG_MS, &s), -ECONNRESET);
	assert_int_equal(reap(pid), 0);
	assert_int_equal(s.fd, -77);
	close(lfd);
	test_done = true;
}

static void test_transfer_64m(void **state _unused_)
{
	struct msg_chan_session s = MSG_CHAN_SESSION_INIT;
	struct tx_args ta;
	pid_t gen, tx, chk;
	int lfd, in[2], out[2];
	uint64_t t0, t1, t2;
	uint16_t port;

	assert_int_equal(msg_chan_listen(HOST, &lfd, &port), 0);
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	gen = spawn(gen_child, &in[1], (int[]){ in[1], -1 });
	ta = (struct tx_args){ .port = port, .key = key_a, .in_fd = in[0] };
	tx = spawn(tx_child, &ta, (int[]){ in[0], -1 });
	chk = spawn(check_child, &out[0], (int[]){ out[0], -1 });
	close(in[0]);
	close(in[1]);
	close(out[0]);

	t0 = now_ms();
	assert_int_equal(msg_chan_accept(lfd, key_a, LONG_MS, &s), 0);
	t1 = now_ms();
	assert_true(s.fd >= 0);
	assert_true(fcntl(s.fd, F_GETFD) & FD_CLOEXEC);
	assert_false(fcntl(s.fd, F_GETFL) & O_NONBLOCK);
	assert_int_equal(msg_chan_open_pump(&s, out[1]), 0);
	t2 = now_ms();
	close(out[1]);
	msg_chan_session_release(&s);
	close(lfd);

	assert_int_equal(reap(chk), 0);
	assert_int_equal(reap(tx), 0);
	assert_int_equal(reap(gen), 0);
	printf("# chan: %llu bytes sealed, sent, opened and checked in %llu ms "
	       "(%.0f MiB/s; handshake and start-up %llu ms; %s)\n",
	       (unsigned long long)BIG_SIZE, (unsigned long long)(t2 - t1),
	       (double)BIG_SIZE / (1 << 20) / ((double)(t2 - t1 ? t2 - t1 : 1) / 1000.0),
	       (unsigned long long)(t1 - t0),
	       crypto_aead_aes256gcm_is_available() ? "AES-256-GCM" : "ChaCha20-Poly1305");
	fflush(stdout);
	test_done = true;
}

/* A wrong key on either side: the sender gets -EACCES, the receiver drops
 * the connection and keeps accepting until its timeout. */
static void test_wrong_key(void **state _unused_)
{
	static const uint8_t *const keys[2][2] = { { key_a, key_b }, { key_b, key_a } };

	for (int i = 0; i < 2; i++) {
		struct msg_chan_session s = { .fd = -77 };
		struct rx_args ra;
		uint16_t port;
		pid_t rx;
		int lfd;

		assert_int_equal(msg_chan_listen(HOST, &lfd, &port), 0);
		ra = (struct rx_args){ .listen_fd = lfd, .key = keys[i][0], .timeout_ms = 2000,
				       .out_fd = -1 };
		rx = spawn(rx_child, &ra, (int[]){ lfd, -1 });
		assert_int_equal(msg_chan_connect(HOST, port, keys[i][1], LONG_MS, &s), -EACCES);
		assert_int_equal(s.fd, -77);
		assert_int_equal(reap(rx), ETIMEDOUT);
		close(lfd);
	}
	test_done = true;
}

/* Junk, silent, half-done, wrong-version, forged and wrong-key clients first;
 * the real sender still gets through, and the junk is dropped as it shows. */
static void test_garbage_first(void **state _unused_)
{
	static const char payload[] = "the real payload, after all that garbage";
	struct msg_chan_session s = MSG_CHAN_SESSION_INIT;
	uint8_t hello[40], reply[64], junk[40], got[256];
	int lfd, out[2], silent, half, g_junk, g_version, g_forged, in;
	struct rx_args ra;
	uint16_t port;
	pid_t rx;

	assert_int_equal(msg_chan_listen(HOST, &lfd, &port), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	ra = (struct rx_args){ .listen_fd = lfd, .key = key_a, .timeout_ms = LONG_MS,
			       .out_fd = out[1] };
	rx = spawn(rx_child, &ra, (int[]){ lfd, out[1], -1 });
	close(out[1]);

	/* Connects and says nothing; sends half a hello. Both stay open. */
	silent = raw_connect(port);
	half = raw_connect(port);
	make_hello(hello, 1);
	assert_int_equal(write_full(half, hello, 20), 0);

	/* Not a hello. */
	g_junk = raw_connect(port);
	memset(junk, 'x', sizeof(junk));
	assert_int_equal(write_full(g_junk, junk, sizeof(junk)), 0);
	assert_true(sees_close(g_junk));

	/* A version the receiver does not speak. */
	g_version = raw_connect(port);
	make_hello(hello, 2);
	assert_int_equal(write_full(g_version, hello, sizeof(hello)), 0);
	assert_true(sees_close(g_version));

	/* A good hello, then a forged MAC_s. */
	g_forged = raw_connect(port);
	make_hello(hello, 1);
	assert_int_equal(write_full(g_forged, hello, sizeof(hello)), 0);
	assert_int_equal(read_full(g_forged, reply, sizeof(reply)), (ssize_t)sizeof(reply));
	assert_int_equal(write_full(g_forged, reply + 32, 32), 0);
	assert_true(sees_close(g_forged));

	/* The wrong key. */
	assert_int_equal(msg_chan_connect(HOST, port, key_b, LONG_MS, &s), -EACCES);

	/* The real sender, while silent and half are still pending. */
	assert_int_equal(msg_chan_connect(HOST, port, key_a, LONG_MS, &s), 0);
	in = pipe_with(payload, sizeof(payload));
	assert_int_equal(msg_chan_seal_pump(&s, in), 0);
	close(in);
	msg_chan_session_release(&s);
	assert_int_equal(reap(rx), 0);
	assert_int_equal(read_all(out[0], got, sizeof(got)), sizeof(payload));
	assert_memory_equal(got, payload, sizeof(payload));

	/* The pending ones are closed too. */
	assert_true(sees_close(silent));
	assert_true(sees_close(half));
	close(out[0]);
	close(silent);
	close(half);
	close(g_junk);
	close(g_version);
	close(g_forged);
	close(lfd);
	test_done = true;
}

static void test_seal_open_roundtrip(void **state _unused_)
{
	uint8_t data[3000], got[65536], *stream, *body;
	struct wire_cipher c;
	size_t len, n, rec1;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = pattern_byte(i);
	stream = seal_with_pump(key_a, data, sizeof(data), &len);

	/* The layout msg.h documents: DATA record, END record. */
	rec1 = WIRE_LEN_SIZE + REC_HDR + sizeof(data) + WIRE_TAG_SIZE;
	assert_int_equal(len, rec1 + WIRE_LEN_SIZE + REC_HDR + WIRE_TAG_SIZE);
	assert_int_equal(get_le32(stream), rec1 - WIRE_LEN_SIZE);
	assert_int_equal(run_open(key_a, stream, len, got, &n), 0);
	assert_int_equal(n, sizeof(data));
	assert_memory_equal(got, data, sizeof(data));

	assert_int_equal(msg_wire_cipher_init(&c, true, key_a), 0);
	assert_int_equal(msg_wire_open(&c, stream, rec1, &body, &n), 0);
	assert_int_equal(n, REC_HDR + sizeof(data));
	assert_int_equal(body[0], REC_DATA);
	for (int i = 1; i < REC_HDR; i++)
		assert_int_equal(body[i], 0);
	assert_memory_equal(body + REC_HDR, data, sizeof(data));
	assert_int_equal(msg_wire_open(&c, stream + rec1, len - rec1, &body, &n), 0);
	assert_int_equal(n, REC_HDR);
	assert_int_equal(body[0], REC_END);
	msg_wire_cipher_wipe(&c);
	free(stream);

	/* Empty input: END alone. */
	stream = seal_with_pump(key_a, "", 0, &len);
	assert_int_equal(len, WIRE_LEN_SIZE + REC_HDR + WIRE_TAG_SIZE);
	assert_int_equal(run_open(key_a, stream, len, got, &n), 0);
	assert_int_equal(n, 0);

	/* Another key opens nothing. */
	assert_int_equal(run_open(key_b, stream, len, got, &n), -EBADMSG);
	free(stream);
	test_done = true;
}

/* Every single bit flipped anywhere in a sealed stream is caught, and only
 * records that passed their check come out. */
static void test_bit_flips(void **state _unused_)
{
	uint8_t data[100], got[65536], *stream;
	size_t len, n, rec1;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)i;
	stream = seal_with_pump(key_a, data, sizeof(data), &len);
	rec1 = WIRE_LEN_SIZE + get_le32(stream);
	for (size_t bit = 0; bit < len * 8; bit++) {
		size_t byte = bit / 8;
		bool in_len = byte < WIRE_LEN_SIZE || (byte >= rec1 && byte < rec1 + WIRE_LEN_SIZE);
		int r;

		stream[byte] ^= (uint8_t)(1u << (bit % 8));
		r = run_open(key_a, stream, len, got, &n);
		stream[byte] ^= (uint8_t)(1u << (bit % 8));
		if (r != -EBADMSG && !(in_len && r == -ECONNRESET))
			fail_msg("bit %zu flipped: %d", bit, r);
		assert_int_equal(n, byte < rec1 ? 0 : sizeof(data));
		if (n)
			assert_memory_equal(got, data, n);
	}
	free(stream);
	test_done = true;
}

/* Every cut of a sealed stream before its end is a truncation. */
static void test_truncation(void **state _unused_)
{
	uint8_t data[100], got[65536], *stream;
	size_t len, n, rec1;

	memset(data, 'd', sizeof(data));
	stream = seal_with_pump(key_a, data, sizeof(data), &len);
	rec1 = WIRE_LEN_SIZE + get_le32(stream);
	for (size_t cut = 0; cut < len; cut++) {
		assert_int_equal(run_open(key_a, stream, cut, got, &n), -ECONNRESET);
		assert_int_equal(n, cut < rec1 ? 0 : sizeof(data));
	}
	assert_int_equal(run_open(key_a, stream, len, got, &n), 0);
	free(stream);
	test_done = true;
}

struct bad_case {
	const char *name;
	int error;
	const char *delivered;
};

/* Records out of order, replayed, dropped, spliced from another session,
 * after END, malformed. */
static void test_replay_reorder(void **state _unused_)
{
	uint8_t r0[128], r1[128], r2[128], end[128], other[128], bad[128];
	size_t l0, l1, l2, lend, lother, lbad, n;
	uint8_t stream[1024], got[65536];
	struct wire_cipher c, c2;

	static const struct bad_case cases[] = {
		{ "in order", 0, "aaabbbccc" },
		{ "replayed", -EBADMSG, "aaa" },
		{ "reordered", -EBADMSG, "" },
		{ "dropped", -EBADMSG, "aaa" },
		{ "other session", -EBADMSG, "aaa" },
		{ "data after END", -EBADMSG, "aaabbbccc" },
		{ "END with data", -EBADMSG, "aaa" },
		{ "unknown kind", -EBADMSG, "" },
		{ "kind 0", -EBADMSG, "" },
		{ "reserved byte", -EBADMSG, "" },
		{ "empty DATA", -EBADMSG, "" },
		{ "huge length", -EBADMSG, "" },
		{ "no END", -ECONNRESET, "aaabbbccc" },
	};

	for (size_t k = 0; k < ARRAY_SIZE(cases); k++) {
		const struct bad_case *bc = &cases[k];
		size_t len = 0;
		int r;

		assert_int_equal(msg_wire_cipher_init(&c, true, key_a), 0);
		assert_int_equal(msg_wire_cipher_init(&c2, true, key_b), 0);
		l0 = seal_rec(&c, REC_DATA, 0, "aaa", 3, r0);
		l1 = seal_rec(&c, REC_DATA, 0, "bbb", 3, r1);
		l2 = seal_rec(&c, REC_DATA, 0, "ccc", 3, r2);
		lend = seal_rec(&c, REC_END, 0, NULL, 0, end);
		lother = seal_rec(&c2, REC_DATA, 0, "bbb", 3, other);
#define ADD(rec, l)                                                                                \
	do {                                                                                       \
		memcpy(stream + len, rec, l);                                                      \
		len += l;                                                                          \
	} while (0)
		switch (k) {
		case 0:
			ADD(r0, l0);
			ADD(r1, l1);
			ADD(r2, l2);
			ADD(end, lend);
			break;
		case 1:
			ADD(r0, l0);
			ADD(r0, l0);
			ADD(r1, l1);
			break;
		case 2:
			ADD(r1, l1);
			ADD(r0, l0);
			ADD(r2, l2);
			ADD(end, lend);
			break;
		case 3:
			ADD(r0, l0);
			ADD(r2, l2);
			ADD(end, lend);
			break;
		case 4:
			/* other's counter is 0, but our second record needs 1; a
			 * first record from another session fails as well. */
			ADD(r0, l0);
			ADD(other, lother);
			ADD(r2, l2);
			break;
		case 5:
			ADD(r0, l0);
			ADD(r1, l1);
			ADD(r2, l2);
			ADD(end, lend);
			ADD(end, lend);
			break;
		default:
			/* A bad record sealed with the right counter. */
			msg_wire_cipher_wipe(&c);
			assert_int_equal(msg_wire_cipher_init(&c, true, key_a), 0);
			if (k == 6) {
				ADD(r0, l0);
				seal_rec(&c, REC_DATA, 0, "aaa", 3, bad);
				lbad = seal_rec(&c, REC_END, 0, "x", 1, bad);
			} else if (k == 7) {
				lbad = seal_rec(&c, 3, 0, "aaa", 3, bad);
			} else if (k == 8) {
				lbad = seal_rec(&c, 0, 0, "aaa", 3, bad);
			} else if (k == 9) {
				lbad = seal_rec(&c, REC_DATA, 1, "aaa", 3, bad);
			} else if (k == 10) {
				lbad = seal_rec(&c, REC_DATA, 0, NULL, 0, bad);
			} else if (k == 11) {
				lbad = seal_rec(&c, REC_DATA, 0, "aaa", 3, bad);
				put_le32(bad, 0x7fffffff);
			} else {
				ADD(r0, l0);
				ADD(r1, l1);
				ADD(r2, l2);
				lbad = 0;
			}
			ADD(bad, lbad);
			break;
		}
#undef ADD
		r = run_open(key_a, stream, len, got, &n);
		if (r != bc->error)
			fail_msg("%s: %d, expected %d", bc->name, r, bc->error);
		assert_int_equal(n, strlen(bc->delivered));
		assert_memory_equal(got, bc->delivered, n);
		msg_wire_cipher_wipe(&c);
		msg_wire_cipher_wipe(&c2);
	}
	test_done = true;
}

/* The reader of out_fd is gone: -EPIPE, no SIGPIPE, the mask restored. */
static void test_out_gone(void **state _unused_)
{
	uint8_t data[5000], *stream;
	struct msg_chan_session s = MSG_CHAN_SESSION_INIT;
	sigset_t mask, pending;
	void (*old_action)(int);
	int sp[2], p[2];
	size_t len;

	memset(data, 'o', sizeof(data));
	stream = seal_with_pump(key_a, data, sizeof(data), &len);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(write_full(sp[0], stream, len), 0);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	s.fd = sp[1];
	memcpy(s.key, key_a, sizeof(s.key));
	/* SIGPIPE's default action would end this test process. */
	old_action = signal(SIGPIPE, SIG_DFL);
	assert_true(old_action != SIG_ERR);
	assert_int_equal(msg_chan_open_pump(&s, p[1]), -EPIPE);
	assert_int_equal(sigprocmask(SIG_BLOCK, NULL, &mask), 0);
	assert_false(sigismember(&mask, SIGPIPE));
	assert_int_equal(sigpending(&pending), 0);
	assert_false(sigismember(&pending, SIGPIPE));
	signal(SIGPIPE, old_action);
	close(p[1]);
	close(sp[0]);
	msg_chan_session_release(&s);
	free(stream);
	test_done = true;
}

/* The seal pump's receiver is gone (socketpair, then TCP): -EPIPE; an
 * unreadable input: its error. */
static void test_seal_errors(void **state _unused_)
{
	struct msg_chan_session s = MSG_CHAN_SESSION_INIT;
	struct rx_args ra;
	int sp[2], p[2], in, lfd;
	uint16_t port;
	pid_t rx;

	void (*old_action)(int) = signal(SIGPIPE, SIG_DFL);

	assert_true(old_action != SIG_ERR);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	close(sp[1]);
	in = pipe_with("abc", 3);
	s.fd = sp[0];
	memcpy(s.key, key_a, sizeof(s.key));
	assert_int_equal(msg_chan_seal_pump(&s, in), -EPIPE);
	close(in);
	msg_chan_session_release(&s);

	/* The input is a pipe's write end. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	s.fd = sp[0];
	memcpy(s.key, key_a, sizeof(s.key));
	assert_int_equal(msg_chan_seal_pump(&s, p[1]), -EBADF);
	close(p[0]);
	close(p[1]);
	close(sp[1]);
	msg_chan_session_release(&s);

	/* TCP: the receiver authenticates, then exits without reading. */
	assert_int_equal(msg_chan_listen(HOST, &lfd, &port), 0);
	ra = (struct rx_args){ .listen_fd = lfd, .key = key_a, .timeout_ms = LONG_MS,
			       .out_fd = -1 };
	rx = spawn(rx_child, &ra, (int[]){ lfd, -1 });
	assert_int_equal(msg_chan_connect(HOST, port, key_a, LONG_MS, &s), 0);
	assert_int_equal(reap(rx), 0);
	in = memfd_create("chan-test", MFD_CLOEXEC);
	assert_true(in >= 0);
	assert_int_equal(ftruncate(in, 16 << 20), 0);
	assert_int_equal(msg_chan_seal_pump(&s, in), -EPIPE);
	close(in);
	msg_chan_session_release(&s);
	close(lfd);
	signal(SIGPIPE, old_action);
	test_done = true;
}

/* A regular file is cut into full records, the last one partial. */
struct cut_args {
	const struct msg_chan_session *s;
	int in_fd;
};

static int seal_child(void *arg)
{
	struct cut_args *a = arg;
	int r = msg_chan_seal_pump(a->s, a->in_fd);

	return r < 0 ? child_err("seal pump", r) : 0;
}

static void test_record_cutting(void **state _unused_)
{
	const size_t size = 2 * MSG_CHAN_RECORD_MAX + 75000;
	struct msg_chan_session s = MSG_CHAN_SESSION_INIT;
	uint8_t *data, *rec, *body;
	struct wire_cipher c;
	size_t off = 0, n, records = 0;
	struct cut_args ca;
	int sp[2], in;
	pid_t pid;

	data = malloc(size);
	rec = malloc(WIRE_LEN_SIZE + REC_HDR + MSG_CHAN_RECORD_MAX + WIRE_TAG_SIZE);
	assert_non_null(data);
	assert_non_null(rec);
	for (size_t i = 0; i < size; i++)
		data[i] = pattern_byte(i);
	in = memfd_create("chan-test", MFD_CLOEXEC);
	assert_true(in >= 0);
	assert_int_equal(write_full(in, data, size), 0);
	assert_int_equal(lseek(in, 0, SEEK_SET), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	s.fd = sp[0];
	memcpy(s.key, key_b, sizeof(s.key));
	ca = (struct cut_args){ .s = &s, .in_fd = in };
	pid = spawn(seal_child, &ca, (int[]){ in, sp[0], -1 });
	close(sp[0]);
	close(in);

	assert_int_equal(msg_wire_cipher_init(&c, true, key_b), 0);
	for (;;) {
		size_t len;

		assert_int_equal(read_full(sp[1], rec, WIRE_LEN_SIZE), WIRE_LEN_SIZE);
		len = get_le32(rec);
		assert_true(len <= REC_HDR + MSG_CHAN_RECORD_MAX + WIRE_TAG_SIZE);
		assert_int_equal(read_full(sp[1], rec + WIRE_LEN_SIZE, len), (ssize_t)len);
		assert_int_equal(msg_wire_open(&c, rec, WIRE_LEN_SIZE + len, &body, &n), 0);
		if (body[0] == REC_END) {
			assert_int_equal(n, REC_HDR);
			break;
		}
		assert_int_equal(body[0], REC_DATA);
		n -= REC_HDR;
		assert_int_equal(n, MIN(MSG_CHAN_RECORD_MAX, size - off));
		assert_memory_equal(body + REC_HDR, data + off, n);
		off += n;
		records++;
	}
	assert_int_equal(off, size);
	assert_int_equal(records, 3);
	assert_int_equal(read_full(sp[1], rec, 1), 0);
	assert_int_equal(reap(pid), 0);
	msg_wire_cipher_wipe(&c);
	close(sp[1]);
	free(data);
	free(rec);
	test_done = true;
}

/* Over TCP: a stream cut before END, and a record with a flipped bit. */
static void test_tcp_broken_streams(void **state _unused_)
{
	for (int k = 0; k < 2; k++) {
		struct msg_chan_session s = MSG_CHAN_SESSION_INIT;
		uint8_t rec[128], got[256];
		struct wire_cipher c;
		struct rx_args ra;
		int lfd, out[2];
		uint16_t port;
		size_t l;
		pid_t rx;

		assert_int_equal(msg_chan_listen(HOST, &lfd, &port), 0);
		assert_int_equal(pipe2(out, O_CLOEXEC), 0);
		ra = (struct rx_args){ .listen_fd = lfd, .key = key_a, .timeout_ms = LONG_MS,
				       .out_fd = out[1] };
		rx = spawn(rx_child, &ra, (int[]){ lfd, out[1], -1 });
		close(out[1]);
		assert_int_equal(msg_chan_connect(HOST, port, key_a, LONG_MS, &s), 0);
		assert_int_equal(msg_wire_cipher_init(&c, true, s.key), 0);
		l = seal_rec(&c, REC_DATA, 0, "first", 5, rec);
		assert_int_equal(write_full(s.fd, rec, l), 0);
		l = seal_rec(&c, REC_DATA, 0, "second", 6, rec);
		if (k == 1)
			rec[l - 20] ^= 0x10;
		assert_int_equal(write_full(s.fd, rec, l), 0);
		msg_wire_cipher_wipe(&c);
		msg_chan_session_release(&s);
		assert_int_equal(reap(rx), k == 0 ? ECONNRESET : EBADMSG);
		l = read_all(out[0], got, sizeof(got));
		if (k == 0) {
			assert_int_equal(l, 11);
			assert_memory_equal(got, "firstsecond", 11);
		} else {
			assert_int_equal(l, 5);
			assert_memory_equal(got, "first", 5);
		}
		close(out[0]);
		close(lfd);
	}
	test_done = true;
}

/* ---- the handshake without blocking ---- */

/* Step hs, waiting for its events, until it ends or LONG_MS passes. */
static int hs_run(struct msg_chan_hs *hs, struct msg_chan_session *s)
{
	uint64_t deadline = now_ms() + LONG_MS;

	for (;;) {
		struct pollfd p = { .fd = msg_chan_hs_fd(hs), .events = msg_chan_hs_events(hs) };
		int r;

		if (now_ms() > deadline)
			return -ETIMEDOUT;
		(void)poll(&p, 1, 100);
		r = msg_chan_hs_step(hs, s);
		if (r != 0)
			return r;
	}
}

/* Both sides at once, in one process: step whichever is ready. */
static void hs_pair(const uint8_t *rx_key, const uint8_t *tx_key, int *ret_rx, int *ret_tx,
		    struct msg_chan_session *rs, struct msg_chan_session *ts)
{
	struct msg_chan_hs *tx = NULL, *rx = NULL;
	uint64_t deadline = now_ms() + LONG_MS;
	int lfd, cfd, r_rx = 0, r_tx = 0;
	uint16_t port;

	assert_int_equal(msg_chan_listen(HOST, &lfd, &port), 0);
	assert_int_equal(msg_chan_hs_connect(HOST, port, tx_key, &tx), 0);
	assert_int_equal(poll(&(struct pollfd){ .fd = lfd, .events = POLLIN }, 1, (int)LONG_MS), 1);
	cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(cfd >= 0);
	close(lfd);
	assert_int_equal(msg_chan_hs_accept(cfd, rx_key, &rx), 0);
	while ((r_rx == 0 || r_tx == 0) && now_ms() < deadline) {
		struct pollfd p[2] = {
			{ .fd = r_tx ? -1 : msg_chan_hs_fd(tx), .events = tx ? msg_chan_hs_events(tx) : 0 },
			{ .fd = r_rx ? -1 : msg_chan_hs_fd(rx), .events = r_rx ? 0 : msg_chan_hs_events(rx) },
		};

		(void)poll(p, 2, 100);
		if (!r_tx) {
			r_tx = msg_chan_hs_step(tx, ts);
			/* A sender that failed closes, as its process would. */
			if (r_tx)
				tx = msg_chan_hs_free(tx);
		}
		if (!r_rx)
			r_rx = msg_chan_hs_step(rx, rs);
	}
	msg_chan_hs_free(tx);
	msg_chan_hs_free(rx);
	*ret_rx = r_rx;
	*ret_tx = r_tx;
}

/* Non-blocking sides: with the same key both get one session (same session
 * key, a connected pair, data right after the handshake goes through); with
 * different keys the sender gets -EACCES and the receiver loses the
 * connection. Each side also meets the blocking call of the other. */
static void test_hs(void **state _unused_)
{
	struct msg_chan_session rs = MSG_CHAN_SESSION_INIT, ts = MSG_CHAN_SESSION_INIT;
	struct msg_chan_hs *hs = NULL;
	struct rx_args ra;
	char buf[16];
	uint16_t port;
	int r_rx, r_tx, lfd;
	pid_t kid;

	hs_pair(key_a, key_a, &r_rx, &r_tx, &rs, &ts);
	assert_int_equal(r_rx, 1);
	assert_int_equal(r_tx, 1);
	assert_memory_equal(rs.key, ts.key, MSG_CHAN_KEY_SIZE);
	assert_true(fcntl(rs.fd, F_GETFL) & O_NONBLOCK);
	assert_int_equal(write_full(ts.fd, "hello", 5), 0);
	assert_int_equal(poll(&(struct pollfd){ .fd = rs.fd, .events = POLLIN }, 1, (int)LONG_MS), 1);
	assert_int_equal(read(rs.fd, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	msg_chan_session_release(&rs);
	msg_chan_session_release(&ts);

	hs_pair(key_a, key_b, &r_rx, &r_tx, &rs, &ts);
	assert_int_equal(r_tx, -EACCES);
	assert_true(r_rx < 0);
	assert_int_equal(rs.fd, -1);
	assert_int_equal(ts.fd, -1);

	/* A non-blocking sender and msg_chan_accept(). */
	assert_int_equal(msg_chan_listen(HOST, &lfd, &port), 0);
	ra = (struct rx_args){ .listen_fd = lfd, .key = key_a, .timeout_ms = LONG_MS, .out_fd = -1 };
	kid = spawn(rx_child, &ra, (int[]){ lfd, -1 });
	assert_int_equal(msg_chan_hs_connect(HOST, port, key_a, &hs), 0);
	assert_int_equal(hs_run(hs, &ts), 1);
	hs = msg_chan_hs_free(hs);
	assert_int_equal(reap(kid), 0);
	msg_chan_session_release(&ts);

	/* msg_chan_connect() and a non-blocking receiver; a refused connect. */
	kid = spawn(tx_connect_child, &port, (int[]){ -1 });
	assert_int_equal(poll(&(struct pollfd){ .fd = lfd, .events = POLLIN }, 1, (int)LONG_MS), 1);
	assert_int_equal(msg_chan_hs_accept(accept4(lfd, NULL, NULL, SOCK_CLOEXEC), key_a, &hs), 0);
	assert_int_equal(hs_run(hs, &rs), 1);
	hs = msg_chan_hs_free(hs);
	assert_int_equal(reap(kid), 0);
	msg_chan_session_release(&rs);
	close(lfd);
	assert_int_equal(msg_chan_hs_connect(HOST, port, key_a, &hs), 0);
	assert_int_equal(hs_run(hs, &ts), -ECONNREFUSED);
	hs = msg_chan_hs_free(hs);
	assert_int_equal(msg_chan_hs_accept(-1, key_a, &hs), -EINVAL);
	test_done = true;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_api_basics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accept_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seal_open_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bit_flips, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_reorder, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seal_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_cutting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_broken_streams, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transfer_64m, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("chan", tests, NULL, NULL);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Two unrelated processes joined by one stream, exchanging a checked
 * sequence as fast as they can: the test program of dynamic streams (a
 * stream between managed processes that keeps working when either end
 * migrates). Usage:
 *
 *	streamer [OPTIONS] produce|consume KIND RENDEZVOUS OUTFILE
 *
 * KIND and how the two ends meet (the consumer is the one that waits):
 *
 *	pipe        the consumer listens on a Unix socket at RENDEZVOUS; the
 *	socketpair  producer makes a pipe (socketpair) and passes one end to
 *	            it with SCM_RIGHTS; then each closes everything else, so
 *	            the stream is held by one fd in each process and no other
 *	            socket is left open
 *	unix        a Unix stream socket: the consumer listens at RENDEZVOUS,
 *	            accepts one connection and closes the listener
 *	fifo        a named FIFO at RENDEZVOUS, made by the consumer
 *	tcp         the consumer listens on a free port and writes "ADDRESS
 *	            PORT" of its node to the file RENDEZVOUS; the producer
 *	            connects there
 *
 * Byte i of the stream is byte i % 8 of a 64-bit hash of i / 8 (and the
 * seed), so a byte lost, repeated or out of place shows at once. The
 * producer writes it in writes of 1 byte to 64 KiB (pseudo-random, the same
 * every run) until SIGUSR1 or --bytes, then closes its end (sockets:
 * shutdown(SHUT_WR), then it reads until the consumer closes), and writes
 * "produced BYTES" to OUTFILE. The consumer checks every byte as it arrives,
 * in reads of 1 byte to 64 KiB; at the end of the stream it checks that a
 * second read sees the end again and writes "consumed BYTES ok". At the
 * first wrong byte it writes "BAD at offset X: expected 0xYY got 0xZZ" and
 * exits 1 at once. A script compares the two counts, which shows an early
 * end of the stream. Both write "ready" to OUTFILE.ready once connected.
 *
 * Options:
 *	--nonblock        O_NONBLOCK and poll() instead of blocking I/O
 *	--epoll           with --nonblock: wait with epoll_wait() on an instance
 *	                  watching the stream instead of poll(); a wait that
 *	                  sees nothing while the stream is ready (its
 *	                  registration was lost) is a failure
 *	--bidir           the consumer acknowledges every --ack-kib KiB with the
 *	                  count it has checked, and answers the end of the
 *	                  stream with its total; the producer checks both
 *	                  (socketpair, unix, tcp)
 *	--ack-kib N       (default 64)
 *	--bytes N         the producer stops after N bytes
 *	--progress FILE   the consumer rewrites "BYTES" in FILE about every 100 ms
 *	--timeout S       how long to wait for the other end (default 30 s)
 *	--seed N          the sequence (default 1; both ends must agree)
 *	--fault flip|drop|dup@OFFSET
 *	                  the producer corrupts, drops or repeats the byte at
 *	                  OFFSET, to test the consumer's check
 *
 * Every blocking call is restarted after EINTR (a migration may interrupt
 * it). Exit status: 0 done and checked, 1 a failure (a line on stderr and in
 * OUTFILE), 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rendezvous.h"

#define CHUNK_MAX       65536
#define PROGRESS_NS     100000000ULL
#define FINAL_BIT       (1ULL << 63)
#define POLL_SLICE_MS   100
/* How long epoll_wait() gets to report a stream that poll() found ready. */
#define EPOLL_LATE_MS   50
#define EPOLL_DATA      0x53545245414d0001ULL /* "STREAM" 1 */

enum kind { KIND_PIPE, KIND_SOCKETPAIR, KIND_UNIX, KIND_FIFO, KIND_TCP, _KIND_MAX };
enum fault { FAULT_NONE, FAULT_FLIP, FAULT_DROP, FAULT_DUP };

static const char *const kind_names[_KIND_MAX] = {
	[KIND_PIPE] = "pipe",	  [KIND_SOCKETPAIR] = "socketpair", [KIND_UNIX] = "unix",
	[KIND_FIFO] = "fifo",	  [KIND_TCP] = "tcp",
};

struct opts {
	bool produce;
	enum kind kind;
	const char *rendezvous, *outfile, *progress;
	bool nonblock, epoll, bidir;
	uint64_t ack_bytes, limit, seed;
	unsigned timeout_ms;
	enum fault fault;
	uint64_t fault_at;
};

static volatile sig_atomic_t stop_requested;
static const struct opts *opts;
/* --epoll: the instance watching the stream, and what it waits for now. */
static int epoll_fd = -1;
static uint32_t epoll_events;

static void on_usr1(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void on_alarm(int sig)
{
	(void)sig;
}

static bool is_socket(enum kind k)
{
	return k == KIND_SOCKETPAIR || k == KIND_UNIX || k == KIND_TCP;
}

/* ---- the sequence ---- */

static uint64_t seq_word(uint64_t k)
{
	uint64_t z = k + opts->seed * 0x9E3779B97F4A7C15ULL;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static uint8_t seq_byte(uint64_t i)
{
	return (uint8_t)(seq_word(i >> 3) >> (8 * (i & 7)));
}

/* Bytes off .. off + len - 1 of the sequence. */
static void seq_fill(uint8_t *p, uint64_t off, size_t len)
{
	while (len > 0 && (off & 7)) {
		*p++ = seq_byte(off++);
		len--;
	}
	for (; len >= 8; len -= 8, off += 8, p += 8) {
		uint64_t w = seq_word(off >> 3);

		for (int j = 0; j < 8; j++)
			p[j] = (uint8_t)(w >> (8 * j));
	}
	while (len > 0) {
		*p++ = seq_byte(off++);
		len--;
	}
}

/* Sizes of 1 byte to 64 KiB, small ones as often as large ones on a log
 * scale; the same series every run. */
static size_t next_size(uint64_t *state)
{
	uint64_t x = *state ? *state : 1;
	unsigned e;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	x *= 0x2545F4914F6CDD1DULL;
	e = (unsigned)((x >> 59) % 17);
	return 1 + (size_t)((x & 0xFFFFFFFFULL) % (1ULL << e));
}

/* ---- output ---- */

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n] = '\n';
	line[n + 1] = '\0';
	r = rdv_write_file(opts->outfile, line);
	if (r < 0)
		fprintf(stderr, "streamer: cannot write '%s': %s\n", opts->outfile, strerror(-r));
}

/* "error: ..." in OUTFILE and on stderr; returns 1, the exit status. */
static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "streamer: %s %s: %s\n", opts->produce ? "producer" : "consumer",
		kind_names[opts->kind], msg);
	report("error: %s", msg);
	return 1;
}

static int say_ready(void)
{
	char path[4096];

	if ((size_t)snprintf(path, sizeof(path), "%s.ready", opts->outfile) >= sizeof(path))
		return -ENAMETOOLONG;
	return rdv_write_file(path, "ready\n");
}

/* ---- I/O that survives EINTR, blocking or not ---- */

static int epoll_watch(int fd, uint32_t events, int op)
{
	struct epoll_event ev = { .events = events, .data.u64 = EPOLL_DATA };

	if (epoll_ctl(epoll_fd, op, fd, &ev) < 0)
		return -errno;
	epoll_events = events;
	return 0;
}

/* wait_fd() with epoll_wait(). A migration swaps the stream under the
 * process, and its registration must follow: if epoll_wait() sees nothing
 * in a slice while poll() finds the stream ready, and nothing either a
 * moment later (a wake-up may still be on its way), it is lost. */
static int wait_epoll(int fd, short events)
{
	uint32_t want = (events & POLLIN ? EPOLLIN : 0) | (events & POLLOUT ? EPOLLOUT : 0);
	struct pollfd p = { .fd = fd, .events = events };
	struct epoll_event ev;
	int n, r;

	if (want != epoll_events) {
		r = epoll_watch(fd, want, EPOLL_CTL_MOD);
		if (r < 0)
			return r;
	}
	n = epoll_wait(epoll_fd, &ev, 1, POLL_SLICE_MS);
	if (n == 0 && poll(&p, 1, 0) == 1 && (p.revents & (events | POLLHUP | POLLERR)))
		n = epoll_wait(epoll_fd, &ev, 1, EPOLL_LATE_MS);
	else if (n == 0)
		return 0;
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	if (n == 0)
		exit(fail("epoll_wait reports nothing while fd %d is ready (%#x): its registration is lost",
			  fd, (unsigned)p.revents));
	if (ev.data.u64 != EPOLL_DATA)
		exit(fail("epoll_wait reports data %#llx, registered %#llx",
			  (unsigned long long)ev.data.u64, EPOLL_DATA));
	return 0;
}

/* Wait until fd is ready for events; 0, or -errno. EINTR returns 0 so that
 * the caller looks at stop_requested and retries. */
static int wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };

	if (opts->epoll)
		return wait_epoll(fd, events);
	if (poll(&p, 1, POLL_SLICE_MS) < 0 && errno != EINTR)
		return -errno;
	return 0;
}

/* Write all of len bytes (the acks: small, must go whole). */
static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			int r = wait_fd(fd, POLLOUT);

			if (r < 0)
				return r;
			continue;
		}
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- connecting ---- */

/* The consumer's end: an fd of the stream. */
static int consumer_connect(int *ret_fd)
{
	uint64_t deadline = rdv_now_ns() + (uint64_t)opts->timeout_ms * 1000000ULL;
	int lfd, cfd, fd = -1, r;

	switch (opts->kind) {
	case KIND_PIPE:
	case KIND_SOCKETPAIR:
	case KIND_UNIX:
		lfd = rdv_unix_listen(opts->rendezvous);
		if (lfd < 0)
			return lfd;
		cfd = rdv_accept(lfd, opts->timeout_ms);
		close(lfd);
		unlink(opts->rendezvous);
		if (cfd < 0)
			return cfd;
		if (opts->kind == KIND_UNIX) {
			fd = cfd;
			break;
		}
		r = rdv_recv_fd(cfd, &fd);
		close(cfd);
		if (r < 0)
			return r;
		break;
	case KIND_FIFO:
		if (unlink(opts->rendezvous) < 0 && errno != ENOENT)
			return -errno;
		if (mkfifo(opts->rendezvous, 0600) < 0)
			return -errno;
		/* Blocks until the producer opens it; SIGALRM bounds the wait. */
		alarm((opts->timeout_ms + 999) / 1000);
		for (;;) {
			fd = open(opts->rendezvous, O_RDONLY | O_CLOEXEC);
			if (fd >= 0 || errno != EINTR || rdv_now_ns() > deadline)
				break;
		}
		r = fd < 0 ? (errno == EINTR ? -ETIMEDOUT : -errno) : 0;
		alarm(0);
		if (r < 0)
			return r;
		fd = rdv_above_stdio(fd);
		break;
	case KIND_TCP:
		lfd = rdv_tcp_listen(opts->rendezvous, 0);
		if (lfd < 0)
			return lfd;
		fd = rdv_accept(lfd, opts->timeout_ms);
		close(lfd);
		break;
	default:
		return -EINVAL;
	}
	if (fd < 0)
		return fd;
	*ret_fd = fd;
	return 0;
}

/* The producer's end. */
static int producer_connect(int *ret_fd)
{
	uint64_t deadline = rdv_now_ns() + (uint64_t)opts->timeout_ms * 1000000ULL;
	int cfd, pair[2], fd = -1, r;

	switch (opts->kind) {
	case KIND_PIPE:
	case KIND_SOCKETPAIR:
		cfd = rdv_unix_connect(opts->rendezvous, opts->timeout_ms);
		if (cfd < 0)
			return cfd;
		if (opts->kind == KIND_PIPE)
			r = pipe2(pair, O_CLOEXEC);
		else
			r = socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair);
		if (r < 0) {
			r = -errno;
			close(cfd);
			return r;
		}
		/* The consumer gets pair[0], the read end of a pipe. */
		r = rdv_send_fd(cfd, pair[0]);
		close(pair[0]);
		close(cfd);
		if (r < 0) {
			close(pair[1]);
			return r;
		}
		fd = rdv_above_stdio(pair[1]);
		break;
	case KIND_UNIX:
		fd = rdv_unix_connect(opts->rendezvous, opts->timeout_ms);
		break;
	case KIND_FIFO:
		/* Non-blocking, so that a missing reader fails (ENXIO) instead of
		 * blocking: retry until the consumer has it open. */
		for (;;) {
			fd = open(opts->rendezvous, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
			if (fd >= 0) {
				struct stat st;

				if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode)) {
					close(fd);
					return -ENOTSUP;
				}
				break;
			}
			if (errno != ENXIO && errno != ENOENT && errno != EINTR)
				return -errno;
			if (rdv_now_ns() > deadline)
				return -ETIMEDOUT;
			usleep(2000);
		}
		if (fcntl(fd, F_SETFL, 0) < 0) {
			r = -errno;
			close(fd);
			return r;
		}
		fd = rdv_above_stdio(fd);
		break;
	case KIND_TCP:
		fd = rdv_tcp_connect(opts->rendezvous, opts->timeout_ms, 0);
		break;
	default:
		return -EINVAL;
	}
	if (fd < 0)
		return fd;
	*ret_fd = fd;
	return 0;
}

/* ---- the producer ---- */

struct acks {
	uint8_t rec[8];
	size_t have;
	uint64_t last; /* the last ack */
	bool final;
	uint64_t total; /* the consumer's final answer */
};

/*
 * Take what the consumer sent: 8-byte little-endian records, a count it has
 * checked (a multiple of ack_bytes, in steps of ack_bytes) or, with
 * FINAL_BIT, its total at the end. Non-blocking unless wait; returns 1 at
 * the end of the stream, 0 otherwise, or -1 after a failure (fail() has said
 * why).
 */
static int take_acks(int fd, struct acks *a, uint64_t sent, bool wait)
{
	for (;;) {
		uint8_t buf[512];
		ssize_t n = recv(fd, buf, sizeof(buf), wait ? 0 : MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (!wait)
				return 0;
			if (wait_fd(fd, POLLIN) < 0)
				return -fail("poll: %s", strerror(errno));
			continue;
		}
		if (n < 0)
			return -fail("reading the consumer's acks: %s", strerror(errno));
		if (n == 0)
			return 1;
		if (!opts->bidir)
			return -fail("%zd bytes from the consumer, which should send nothing", n);
		for (ssize_t i = 0; i < n; i++) {
			uint64_t v = 0;

			a->rec[a->have++] = buf[i];
			if (a->have < sizeof(a->rec))
				continue;
			a->have = 0;
			for (int j = 7; j >= 0; j--)
				v = v << 8 | a->rec[j];
			if (a->final)
				return -fail("data after the consumer's final answer");
			if (v & FINAL_BIT) {
				a->final = true;
				a->total = v & ~FINAL_BIT;
			} else if (v != a->last + opts->ack_bytes || v > sent) {
				return -fail("BAD ack %" PRIu64 " after %" PRIu64 " (%" PRIu64
					     " sent)",
					     v, a->last, sent);
			} else {
				a->last = v;
			}
		}
	}
}

static int produce(int fd)
{
	static uint8_t buf[CHUNK_MAX + 1];
	uint64_t pos = 0, sent = 0, rng = 0x853C49E6748FEA9BULL ^ opts->seed;
	struct acks acks = { .have = 0 };
	bool faulted = opts->fault == FAULT_NONE;
	int r;

	while (!stop_requested && (!opts->limit || pos < opts->limit)) {
		size_t size = next_size(&rng), len, off = 0;

		if (opts->limit && size > opts->limit - pos)
			size = (size_t)(opts->limit - pos);
		seq_fill(buf, pos, size);
		len = size;
		if (!faulted && opts->fault_at >= pos && opts->fault_at < pos + size) {
			size_t k = (size_t)(opts->fault_at - pos);

			faulted = true;
			if (opts->fault == FAULT_FLIP) {
				buf[k] ^= 0x5A;
			} else if (opts->fault == FAULT_DROP) {
				memmove(buf + k, buf + k + 1, size - k - 1);
				len--;
			} else {
				memmove(buf + k + 1, buf + k, size - k);
				len++;
			}
		}
		pos += size;
		while (off < len) {
			ssize_t n = write(fd, buf + off, len - off);

			if (n < 0 && errno == EINTR) {
				if (stop_requested)
					break;
				continue;
			}
			if (n < 0 && errno == EAGAIN) {
				/* poll readiness; with --bidir take acks meanwhile */
				r = wait_fd(fd, opts->bidir ? POLLOUT | POLLIN : POLLOUT);
				if (r < 0)
					return fail("poll: %s", strerror(-r));
				if (opts->bidir)
					r = take_acks(fd, &acks, sent, false);
				if (r < 0)
					return 1;
				if (r > 0)
					return fail("the consumer closed the stream after %" PRIu64
						    " bytes",
						    sent);
				if (stop_requested)
					break;
				continue;
			}
			if (n < 0)
				return fail("write after %" PRIu64 " bytes: %s", sent,
					    strerror(errno));
			off += (size_t)n;
			sent += (uint64_t)n;
		}
		if (opts->bidir) {
			r = take_acks(fd, &acks, sent, false);
			if (r < 0)
				return 1;
			if (r > 0)
				return fail("the consumer closed the stream after %" PRIu64 " bytes",
					    sent);
		}
	}

	/* The end of the stream. */
	if (!is_socket(opts->kind)) {
		if (close(fd) < 0 && errno != EINTR)
			return fail("close: %s", strerror(errno));
		report("produced %" PRIu64, sent);
		return 0;
	}
	if (shutdown(fd, SHUT_WR) < 0)
		return fail("shutdown: %s", strerror(errno));
	/* Until the consumer closes: every ack, then its final answer. */
	r = take_acks(fd, &acks, sent, true);
	close(fd);
	if (r < 0)
		return 1;
	if (opts->bidir && !acks.final)
		return fail("produced %" PRIu64 " but the consumer gave no final answer", sent);
	if (opts->bidir && acks.total != sent)
		return fail("produced %" PRIu64 " but the consumer answered %" PRIu64, sent,
			    acks.total);
	if (acks.have)
		return fail("a partial ack at the end");
	report("produced %" PRIu64, sent);
	return 0;
}

/* ---- the consumer ---- */

static int send_ack(int fd, uint64_t v)
{
	uint8_t rec[8];

	for (int j = 0; j < 8; j++)
		rec[j] = (uint8_t)(v >> (8 * j));
	return write_all(fd, rec, sizeof(rec));
}

static void write_progress(uint64_t got)
{
	char line[32];

	snprintf(line, sizeof(line), "%" PRIu64 "\n", got);
	(void)rdv_write_file(opts->progress, line);
}

/* read() that waits with poll() (or epoll_wait()) in --nonblock mode and
 * restarts after EINTR; -1 with errno set on failure. */
static ssize_t read_some(int fd, uint8_t *buf, size_t len)
{
	for (;;) {
		ssize_t n = read(fd, buf, len);

		if (n >= 0 || (errno != EINTR && errno != EAGAIN))
			return n;
		if (errno == EAGAIN && wait_fd(fd, POLLIN) < 0)
			return -1;
	}
}

static int consume(int fd)
{
	static uint8_t buf[CHUNK_MAX], want[CHUNK_MAX];
	uint64_t got = 0, next_ack = opts->ack_bytes, rng = 0x2F6B1E3AD45C9817ULL ^ opts->seed;
	uint64_t next_progress = rdv_now_ns();
	ssize_t n;
	int r;

	if (opts->progress)
		write_progress(0);
	for (;;) {
		n = read_some(fd, buf, next_size(&rng));
		if (n < 0)
			return fail("read after %" PRIu64 " bytes: %s", got, strerror(errno));
		if (n == 0)
			break;
		seq_fill(want, got, (size_t)n);
		if (memcmp(buf, want, (size_t)n) != 0) {
			ssize_t i = 0;

			while (buf[i] == want[i])
				i++;
			report("BAD at offset %" PRIu64 ": expected 0x%02x got 0x%02x",
			       got + (uint64_t)i, want[i], buf[i]);
			fprintf(stderr,
				"streamer: consumer %s: BAD at offset %" PRIu64
				": expected 0x%02x got 0x%02x\n",
				kind_names[opts->kind], got + (uint64_t)i, want[i], buf[i]);
			return 1;
		}
		got += (uint64_t)n;
		while (opts->bidir && got >= next_ack) {
			r = send_ack(fd, next_ack);
			if (r < 0)
				return fail("sending an ack: %s", strerror(-r));
			next_ack += opts->ack_bytes;
		}
		if (opts->progress && rdv_now_ns() >= next_progress) {
			write_progress(got);
			next_progress = rdv_now_ns() + PROGRESS_NS;
		}
	}
	/* The end: once, and for good. */
	n = read_some(fd, buf, sizeof(buf));
	if (n > 0)
		return fail("%zd bytes after the end of the stream at offset %" PRIu64, n, got);
	if (n < 0)
		return fail("a read after the end of the stream: %s", strerror(errno));
	if (opts->bidir) {
		r = send_ack(fd, FINAL_BIT | got);
		if (r < 0)
			return fail("sending the final answer: %s", strerror(-r));
	}
	if (opts->progress)
		write_progress(got);
	close(fd);
	report("consumed %" PRIu64 " ok", got);
	return 0;
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fputs("usage: streamer [--nonblock [--epoll]] [--bidir] [--ack-kib N] [--bytes N]\n"
	      "                [--progress FILE] [--timeout S] [--seed N] [--fault flip|drop|dup@OFFSET]\n"
	      "                produce|consume pipe|socketpair|unix|fifo|tcp RENDEZVOUS OUTFILE\n",
	      f);
}

static int parse_u64(const char *s, uint64_t *ret)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*ret = strtoull(s, &end, 10);
	return errno || *end ? -EINVAL : 0;
}

static int parse_fault(const char *s, struct opts *o)
{
	static const char *const names[] = { [FAULT_FLIP] = "flip", [FAULT_DROP] = "drop",
					     [FAULT_DUP] = "dup" };
	const char *at = strchr(s, '@');

	if (!at)
		return -EINVAL;
	for (int f = FAULT_FLIP; f <= FAULT_DUP; f++)
		if (strlen(names[f]) == (size_t)(at - s) && !strncmp(s, names[f], (size_t)(at - s))) {
			o->fault = (enum fault)f;
			return parse_u64(at + 1, &o->fault_at);
		}
	return -EINVAL;
}

int main(int argc, char **argv)
{
	enum { OPT_NONBLOCK = 256, OPT_EPOLL, OPT_BIDIR, OPT_ACK, OPT_BYTES, OPT_PROGRESS,
	       OPT_TIMEOUT, OPT_SEED, OPT_FAULT, OPT_HELP };
	static const struct option options[] = {
		{ "nonblock", no_argument, NULL, OPT_NONBLOCK },
		{ "epoll", no_argument, NULL, OPT_EPOLL },
		{ "bidir", no_argument, NULL, OPT_BIDIR },
		{ "ack-kib", required_argument, NULL, OPT_ACK },
		{ "bytes", required_argument, NULL, OPT_BYTES },
		{ "progress", required_argument, NULL, OPT_PROGRESS },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "fault", required_argument, NULL, OPT_FAULT },
		{ "help", no_argument, NULL, OPT_HELP },
		{}
	};
	struct opts o = { .ack_bytes = 64 * 1024, .seed = 1, .timeout_ms = 30000 };
	struct sigaction sa = { .sa_handler = on_usr1 };
	uint64_t v;
	int c, fd = -1, r;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case OPT_NONBLOCK:
			o.nonblock = true;
			break;
		case OPT_EPOLL:
			o.epoll = true;
			break;
		case OPT_BIDIR:
			o.bidir = true;
			break;
		case OPT_ACK:
			if (parse_u64(optarg, &v) < 0 || v == 0 || v > (1 << 20))
				goto bad;
			o.ack_bytes = v * 1024;
			break;
		case OPT_BYTES:
			if (parse_u64(optarg, &o.limit) < 0 || o.limit == 0)
				goto bad;
			break;
		case OPT_PROGRESS:
			o.progress = optarg;
			break;
		case OPT_TIMEOUT:
			if (parse_u64(optarg, &v) < 0 || v == 0 || v > 86400)
				goto bad;
			o.timeout_ms = (unsigned)v * 1000;
			break;
		case OPT_SEED:
			if (parse_u64(optarg, &o.seed) < 0)
				goto bad;
			break;
		case OPT_FAULT:
			if (parse_fault(optarg, &o) < 0)
				goto bad;
			break;
		case OPT_HELP:
			usage(stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (argc - optind != 4)
		goto bad;
	if (!strcmp(argv[optind], "produce"))
		o.produce = true;
	else if (strcmp(argv[optind], "consume"))
		goto bad;
	for (o.kind = 0; o.kind < _KIND_MAX; o.kind++)
		if (!strcmp(argv[optind + 1], kind_names[o.kind]))
			break;
	if (o.kind == _KIND_MAX)
		goto bad;
	if (o.epoll && !o.nonblock) {
		fprintf(stderr, "streamer: --epoll needs --nonblock\n");
		return 2;
	}
	if (o.bidir && !is_socket(o.kind)) {
		fprintf(stderr, "streamer: --bidir needs a socket (socketpair, unix, tcp)\n");
		return 2;
	}
	o.rendezvous = argv[optind + 2];
	o.outfile = argv[optind + 3];
	opts = &o;

	/* SIGUSR1 ends the producer: no SA_RESTART, so that it interrupts. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	r = o.produce ? producer_connect(&fd) : consumer_connect(&fd);
	if (r < 0)
		return fail("cannot connect through '%s': %s", o.rendezvous, strerror(-r));
	if (o.nonblock && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
		return fail("O_NONBLOCK: %s", strerror(errno));
	if (o.epoll) {
		epoll_fd = epoll_create1(EPOLL_CLOEXEC);
		r = epoll_fd < 0 ? -errno : epoll_watch(fd, o.produce ? EPOLLOUT : EPOLLIN,
							 EPOLL_CTL_ADD);
		if (r < 0)
			return fail("epoll: %s", strerror(-r));
	}
	r = say_ready();
	if (r < 0)
		return fail("cannot write the ready file: %s", strerror(-r));
	return o.produce ? produce(fd) : consume(fd);
bad:
	usage(stderr);
	return 2;
}

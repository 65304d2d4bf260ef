/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A NetPIPE-style ping-pong over a TCP connection or a Unix stream socket,
 * for bench/streams: NPtcp cannot use a Unix socket, and prints one line,
 * the best of 3 trials, per message size, never a time series or a pause
 * (--series). Usage:
 *
 *	pingpong serve tcp|unix RENDEZVOUS OUTFILE
 *	pingpong ping tcp|unix RENDEZVOUS OUTFILE [--go FILE] [--sizes LIST]
 *	         [--max-size N] [--rounds N | --trial-ms MS] [--trials N]
 *	pingpong ping tcp|unix RENDEZVOUS OUTFILE --series [--go FILE]
 *	         [--size N] [--interval-ms MS] [--duration-ms MS]
 *	pingpong idle OUTFILE [--max-size N]
 *
 * The server listens (unix: at the path RENDEZVOUS; tcp: on a free port,
 * "ADDRESS PORT" of its node written to the file RENDEZVOUS), accepts one
 * connection and closes the listener, so that it holds the stream and
 * nothing else; the client connects. TCP has TCP_NODELAY on both ends, as
 * in NPtcp. Both write "ready" to OUTFILE.ready once connected; the client
 * then waits until the file --go exists (so that one end may be moved
 * first) before it measures.
 *
 * The method is NetPIPE's: for each message size the client sends a message
 * and the server, once it has it whole, sends it back; a trial is ROUNDS
 * such round trips, the best of --trials trials (default 3) counts. With
 * --trial-ms (default 100) ROUNDS is chosen from the previous size so that
 * a trial takes about that long; --rounds fixes it. Latency is half a round
 * trip; bandwidth is the message size over half a round trip (MB/s, 10^6
 * bytes per second), as NetPIPE counts it. The client writes to OUTFILE, at
 * the end:
 *
 *	SIZE ROUNDS LATENCY_US MB_PER_S     one line per size
 *	end
 *
 * With --series the client bounces --size byte messages (default 64 KiB)
 * for --duration-ms (default 2000) and counts the round trips that end in
 * each --interval-ms (default 50): the throughput over time, and the
 * longest time between two round trips (the pause a migration causes):
 *
 *	t0_ns T0 size S interval_ms I           T0: CLOCK_MONOTONIC at the start
 *	maxgap_ms G at_ms A                     the longest pause, A ms after T0
 *	gap AT_MS LEN_MS                        every pause of 1 ms or more
 *	bin START_MS ROUNDS MB_PER_S            one line per interval
 *	end
 *
 * `idle` is the same program with the same memory and no stream: it says
 * ready and waits, for the freeze time of a migration without a stream.
 *
 * Every blocking call is restarted after EINTR (a migration may interrupt
 * it). The first and last byte of each message carry the round's number,
 * and the client checks the echo. Exit status: 0 done, 1 failure (a line
 * on stderr), 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rendezvous.h"

#define MAGIC          0x474E5050U /* "PPNG" */
#define MAX_SIZES      64
#define MAX_MSG        (64U << 20)
#define MAX_ROUNDS     10000000ULL
#define BATCH          16 /* round trips per header in --series */
#define CONNECT_MS     30000U
#define GO_TIMEOUT_MS  600000ULL
#define OUT_MAX        (256 * 1024)
#define GAP_MIN_NS     1000000ULL /* --series lists the pauses from 1 ms on */
#define MAX_GAPS       1024

struct opts {
	bool tcp;
	const char *rendezvous, *outfile, *go;
	uint64_t sizes[MAX_SIZES];
	size_t n_sizes;
	uint64_t max_size, rounds, trial_ms, trials;
	bool series;
	uint64_t size, interval_ms, duration_ms;
};

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("pingpong: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* All of len bytes; -errno, or -EPIPE at the end of the stream. */
static int send_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int recv_all(int fd, uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = recv(fd, p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A buffer with every page touched, so that no trial pays page faults. */
static uint8_t *buffer_new(size_t size)
{
	uint8_t *p = mmap(NULL, size ? size : 1, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0xA5, size);
	return p;
}

static int say_ready(const char *outfile)
{
	char path[4096];

	if ((size_t)snprintf(path, sizeof(path), "%s.ready", outfile) >= sizeof(path))
		return -ENAMETOOLONG;
	return rdv_write_file(path, "ready\n");
}

static void pause_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- the server ---- */

static int serve(const struct opts *o)
{
	uint8_t hdr[16], *buf = NULL;
	uint64_t cap = 0, served = 0;
	int lfd, fd, one = 1, r;
	char line[64];

	lfd = o->tcp ? rdv_tcp_listen(o->rendezvous, 0) : rdv_unix_listen(o->rendezvous);
	if (lfd < 0)
		return fail("cannot listen at '%s': %s", o->rendezvous, strerror(-lfd));
	fd = rdv_accept(lfd, CONNECT_MS);
	close(lfd);
	if (!o->tcp)
		unlink(o->rendezvous);
	if (fd < 0)
		return fail("no client: %s", strerror(-fd));
	if (o->tcp && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		return fail("TCP_NODELAY: %s", strerror(errno));
	r = say_ready(o->outfile);
	if (r < 0)
		return fail("cannot say ready: %s", strerror(-r));
	for (;;) {
		uint64_t size, rounds;

		r = recv_all(fd, hdr, sizeof(hdr));
		if (r < 0)
			return fail("no header from the client: %s", strerror(-r));
		size = get_le(hdr + 4, 4);
		rounds = get_le(hdr + 8, 8);
		if (get_le(hdr, 4) != MAGIC || size > MAX_MSG || rounds > MAX_ROUNDS)
			return fail("a bad header from the client");
		if (size == 0)
			break;
		if (size > cap) {
			if (buf)
				munmap(buf, cap);
			buf = buffer_new(size);
			if (!buf)
				return fail("out of memory");
			cap = size;
		}
		for (uint64_t i = 0; i < rounds; i++) {
			r = recv_all(fd, buf, size);
			if (r >= 0)
				r = send_all(fd, buf, size);
			if (r < 0)
				return fail("round trip %" PRIu64 " of %" PRIu64 " bytes: %s", i, size,
					    strerror(-r));
		}
		served += rounds;
	}
	close(fd);
	snprintf(line, sizeof(line), "served %" PRIu64 "\n", served);
	r = rdv_write_file(o->outfile, line);
	return r < 0 ? fail("cannot write '%s': %s", o->outfile, strerror(-r)) : 0;
}

/* ---- the client ---- */

struct client {
	int fd;
	uint8_t *out, *in;
	uint8_t round;
};

static int send_header(struct client *c, uint64_t size, uint64_t rounds)
{
	uint8_t hdr[16];

	put_le(hdr, MAGIC, 4);
	put_le(hdr + 4, size, 4);
	put_le(hdr + 8, rounds, 8);
	return send_all(c->fd, hdr, sizeof(hdr));
}

/* One round trip of size bytes, its echo checked. */
static int round_trip(struct client *c, uint64_t size)
{
	int r;

	c->round++;
	c->out[0] = c->out[size - 1] = c->round;
	r = send_all(c->fd, c->out, size);
	if (r >= 0)
		r = recv_all(c->fd, c->in, size);
	if (r >= 0 && (c->in[0] != c->round || c->in[size - 1] != c->round))
		r = -EBADMSG;
	return r;
}

/* A trial: rounds round trips; its time in ns. */
static int trial(struct client *c, uint64_t size, uint64_t rounds, uint64_t *ret_ns)
{
	uint64_t t0 = rdv_now_ns();
	int r = send_header(c, size, rounds);

	for (uint64_t i = 0; i < rounds && r >= 0; i++)
		r = round_trip(c, size);
	*ret_ns = rdv_now_ns() - t0;
	return r;
}

static int wait_go(const char *go)
{
	uint64_t deadline = rdv_now_ns() + GO_TIMEOUT_MS * 1000000ULL;
	struct stat st;

	while (stat(go, &st) < 0) {
		if (errno != ENOENT)
			return -errno;
		if (rdv_now_ns() > deadline)
			return -ETIMEDOUT;
		pause_ms(1);
	}
	return 0;
}

static int append(char *out, size_t *len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int append(char *out, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out + *len, OUT_MAX - *len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= OUT_MAX - *len)
		return -ENOBUFS;
	*len += (size_t)n;
	return 0;
}

static int measure_sizes(const struct opts *o, struct client *c, char *out, size_t *len)
{
	uint64_t est_ns = 0; /* one round trip of the last size */
	int r;

	for (size_t i = 0; i < o->n_sizes; i++) {
		uint64_t size = o->sizes[i], rounds = o->rounds, best = UINT64_MAX, ns;

		/* warm up and estimate: a few round trips */
		r = trial(c, size, 4, &ns);
		if (r < 0)
			return fail("%" PRIu64 " bytes: %s", size, strerror(-r));
		if (!est_ns || ns / 4 > est_ns)
			est_ns = ns / 4 ? ns / 4 : 1;
		if (!rounds) {
			rounds = o->trial_ms * 1000000ULL / est_ns;
			rounds = rounds < 3 ? 3 : rounds > MAX_ROUNDS ? MAX_ROUNDS : rounds;
		}
		for (uint64_t t = 0; t < o->trials; t++) {
			r = trial(c, size, rounds, &ns);
			if (r < 0)
				return fail("%" PRIu64 " bytes: %s", size, strerror(-r));
			if (ns < best)
				best = ns;
		}
		est_ns = best / rounds ? best / rounds : 1;
		{
			double half_s = (double)best / (double)rounds / 2e9;

			r = append(out, len, "%" PRIu64 " %" PRIu64 " %.3f %.3f\n", size, rounds,
				   half_s * 1e6, (double)size / half_s / 1e6);
		}
		if (r < 0)
			return fail("too much output");
	}
	return 0;
}

static int measure_series(const struct opts *o, struct client *c, char *out, size_t *len)
{
	size_t n_bins = (size_t)(o->duration_ms / o->interval_ms) + 1, n_gaps = 0;
	uint64_t *bins = calloc(n_bins, sizeof(*bins)), gaps[MAX_GAPS][2];
	uint64_t t0, last, gap = 0, gap_at = 0, interval_ns = o->interval_ms * 1000000ULL;
	uint64_t end_ns = o->duration_ms * 1000000ULL;
	int r = 0;

	if (!bins)
		return fail("out of memory");
	t0 = last = rdv_now_ns();
	while (r >= 0 && last - t0 < end_ns) {
		r = send_header(c, o->size, BATCH);
		for (int i = 0; i < BATCH && r >= 0; i++) {
			uint64_t now, b;

			r = round_trip(c, o->size);
			now = rdv_now_ns();
			if (now - last > gap) {
				gap = now - last;
				gap_at = last - t0;
			}
			if (now - last >= GAP_MIN_NS && n_gaps < MAX_GAPS) {
				gaps[n_gaps][0] = last - t0;
				gaps[n_gaps++][1] = now - last;
			}
			last = now;
			b = (now - t0) / interval_ns;
			if (b < n_bins)
				bins[b]++;
		}
	}
	if (r < 0) {
		free(bins);
		return fail("series of %" PRIu64 " bytes: %s", o->size, strerror(-r));
	}
	r = append(out, len, "t0_ns %" PRIu64 " size %" PRIu64 " interval_ms %" PRIu64 "\n", t0,
		   o->size, o->interval_ms);
	if (r >= 0)
		r = append(out, len, "maxgap_ms %.3f at_ms %.3f\n", (double)gap / 1e6,
			   (double)gap_at / 1e6);
	for (size_t g = 0; g < n_gaps && r >= 0; g++)
		r = append(out, len, "gap %.3f %.3f\n", (double)gaps[g][0] / 1e6,
			   (double)gaps[g][1] / 1e6);
	for (size_t b = 0; b + 1 < n_bins && r >= 0; b++)
		r = append(out, len, "bin %" PRIu64 " %" PRIu64 " %.3f\n", b * o->interval_ms,
			   bins[b],
			   (double)bins[b] * 2.0 * (double)o->size / ((double)interval_ns / 1e9) /
				   1e6);
	free(bins);
	return r < 0 ? fail("too much output") : 0;
}

static int ping(const struct opts *o)
{
	struct client c = { .fd = -1 };
	uint64_t max = o->series ? o->size : o->max_size;
	size_t len = 0;
	char *out;
	int r;

	c.out = buffer_new(max);
	c.in = buffer_new(max);
	out = malloc(OUT_MAX);
	if (!c.out || !c.in || !out)
		return fail("out of memory");
	c.fd = o->tcp ? rdv_tcp_connect(o->rendezvous, CONNECT_MS, 1)
		      : rdv_unix_connect(o->rendezvous, CONNECT_MS);
	if (c.fd < 0)
		return fail("cannot connect through '%s': %s", o->rendezvous, strerror(-c.fd));
	r = say_ready(o->outfile);
	if (r < 0)
		return fail("cannot say ready: %s", strerror(-r));
	if (o->go) {
		r = wait_go(o->go);
		if (r < 0)
			return fail("no go file '%s': %s", o->go, strerror(-r));
	}
	r = o->series ? measure_series(o, &c, out, &len) : measure_sizes(o, &c, out, &len);
	if (r)
		return r;
	r = send_header(&c, 0, 0);
	if (r < 0)
		return fail("the end header: %s", strerror(-r));
	close(c.fd);
	if (append(out, &len, "end\n") < 0)
		return fail("too much output");
	r = rdv_write_file(o->outfile, out);
	free(out);
	return r < 0 ? fail("cannot write '%s': %s", o->outfile, strerror(-r)) : 0;
}

/* The same process without a stream: its memory, ready, then waiting. */
static int idle(const struct opts *o)
{
	int r;

	if (!buffer_new(o->max_size) || !buffer_new(o->max_size))
		return fail("out of memory");
	r = say_ready(o->outfile);
	if (r < 0)
		return fail("cannot say ready: %s", strerror(-r));
	for (;;)
		pause();
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fputs("usage: pingpong serve tcp|unix RENDEZVOUS OUTFILE\n"
	      "       pingpong ping tcp|unix RENDEZVOUS OUTFILE [--go FILE] [--sizes LIST]\n"
	      "                [--max-size N] [--rounds N | --trial-ms MS] [--trials N]\n"
	      "       pingpong ping tcp|unix RENDEZVOUS OUTFILE --series [--go FILE] [--size N]\n"
	      "                [--interval-ms MS] [--duration-ms MS]\n"
	      "       pingpong idle OUTFILE [--max-size N]\n",
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

static int parse_list(const char *s, struct opts *o)
{
	char buf[1024], *p = buf, *comma;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, strlen(s) + 1);
	o->n_sizes = 0;
	do {
		comma = strchr(p, ',');
		if (comma)
			*comma = '\0';
		if (o->n_sizes == MAX_SIZES || parse_u64(p, &o->sizes[o->n_sizes]) < 0 ||
		    o->sizes[o->n_sizes] == 0 || o->sizes[o->n_sizes] > MAX_MSG)
			return -EINVAL;
		o->n_sizes++;
		p = comma + 1;
	} while (comma);
	return 0;
}

int main(int argc, char **argv)
{
	enum { OPT_GO = 256, OPT_SIZES, OPT_MAX, OPT_ROUNDS, OPT_TRIAL, OPT_TRIALS, OPT_SERIES,
	       OPT_SIZE, OPT_INTERVAL, OPT_DURATION, OPT_HELP };
	static const struct option options[] = {
		{ "go", required_argument, NULL, OPT_GO },
		{ "sizes", required_argument, NULL, OPT_SIZES },
		{ "max-size", required_argument, NULL, OPT_MAX },
		{ "rounds", required_argument, NULL, OPT_ROUNDS },
		{ "trial-ms", required_argument, NULL, OPT_TRIAL },
		{ "trials", required_argument, NULL, OPT_TRIALS },
		{ "series", no_argument, NULL, OPT_SERIES },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "interval-ms", required_argument, NULL, OPT_INTERVAL },
		{ "duration-ms", required_argument, NULL, OPT_DURATION },
		{ "help", no_argument, NULL, OPT_HELP },
		{}
	};
	struct opts o = { .max_size = 4U << 20, .trial_ms = 100, .trials = 3,
			  .size = 64 * 1024, .interval_ms = 50, .duration_ms = 2000 };
	bool sizes_given = false;
	const char *mode;
	uint64_t *v;
	int c;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		v = NULL;
		switch (c) {
		case OPT_GO:
			o.go = optarg;
			break;
		case OPT_SIZES:
			if (parse_list(optarg, &o) < 0)
				goto bad;
			sizes_given = true;
			break;
		case OPT_MAX:
			v = &o.max_size;
			break;
		case OPT_ROUNDS:
			v = &o.rounds;
			break;
		case OPT_TRIAL:
			v = &o.trial_ms;
			break;
		case OPT_TRIALS:
			v = &o.trials;
			break;
		case OPT_SERIES:
			o.series = true;
			break;
		case OPT_SIZE:
			v = &o.size;
			break;
		case OPT_INTERVAL:
			v = &o.interval_ms;
			break;
		case OPT_DURATION:
			v = &o.duration_ms;
			break;
		case OPT_HELP:
			usage(stdout);
			return 0;
		default:
			goto bad;
		}
		if (v && (parse_u64(optarg, v) < 0 || *v == 0))
			goto bad;
	}
	if (o.max_size > MAX_MSG || o.size > MAX_MSG || o.rounds > MAX_ROUNDS || o.trials > 100 ||
	    o.interval_ms > o.duration_ms || o.duration_ms > 3600000)
		goto bad;
	if (argc - optind < 1)
		goto bad;
	mode = argv[optind];
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(mode, "idle")) {
		if (argc - optind != 2)
			goto bad;
		o.outfile = argv[optind + 1];
		return idle(&o);
	}
	if (argc - optind != 4)
		goto bad;
	if (!strcmp(argv[optind + 1], "tcp"))
		o.tcp = true;
	else if (strcmp(argv[optind + 1], "unix"))
		goto bad;
	o.rendezvous = argv[optind + 2];
	o.outfile = argv[optind + 3];
	if (!sizes_given) {
		/* powers of two from 1 byte to --max-size */
		for (uint64_t s = 1; s <= o.max_size && o.n_sizes < MAX_SIZES; s *= 2)
			o.sizes[o.n_sizes++] = s;
	}
	for (size_t i = 0; i < o.n_sizes; i++)
		if (o.sizes[i] > o.max_size)
			o.max_size = o.sizes[i];
	if (!strcmp(mode, "serve"))
		return serve(&o);
	if (!strcmp(mode, "ping"))
		return ping(&o);
bad:
	usage(stderr);
	return 2;
}

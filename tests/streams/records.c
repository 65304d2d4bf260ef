/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Several writers and one reader of one pipe, each writer writing checked
 * records as fast as it can: the test program of FIFO streams (a pipe whose
 * writers are on other nodes than its reader keeps its writes of up to
 * PIPE_BUF bytes whole). Usage:
 *
 *	records [OPTIONS] read FIFO OUTFILE
 *	records [OPTIONS] write FIFO OUTFILE
 *	records [OPTIONS] family N OUTFILE
 *
 * read makes a named FIFO at FIFO and reads it; write opens it and writes
 * into it. family makes an anonymous pipe and reads it, and its N writers
 * are the grandchildren that inherited the write end: a keeper child forks
 * them, writes "KEEPER WRITER..." to OUTFILE.family and waits for SIGTERM
 * (once it has gone, the writers are nobody's children on the node).
 *
 * A record is a 24-byte header (magic, writer id, sequence number, length,
 * header checksum) and a payload that is a hash of (writer, sequence,
 * offset); its length is 24 to --max bytes (PIPE_BUF by default), varied
 * on a log scale, and each is one write(). A writer's id is its PID: a copy
 * made by `ghost fork` sees a new PID and starts over as a writer of its
 * own. A writer writes until SIGUSR1, or EPIPE, then reports
 * "writer ID records N bytes B stopped|epipe" in OUTFILE.ID. SIGUSR2
 * pauses it between two records (and resumes it): it writes "paused N"
 * (N: its records so far) to OUTFILE.ID.state once paused, "running N"
 * once it goes on.
 *
 * The reader checks every record as it comes: whole (a record cut by
 * another writer's fails its check), each writer's in sequence (nothing
 * lost, repeated or reordered); at the end of the stream it checks that a
 * second read sees the end again, and reports one line per writer
 * "writer ID records N bytes B" then "total N records ok" in OUTFILE. At
 * the first wrong byte it writes "BAD ..." and exits 1. With --stop-after
 * N it closes the pipe after N records instead and reports
 * "stopped after N records".
 *
 * Options:
 *	--max N           the largest record (24 to PIPE_BUF)
 *	--paused          a writer starts paused, a reader does not read yet
 *	                  (SIGUSR2 lets either go)
 *	--burst N         a writer pauses by itself after every N records
 *	--stop-after N    the reader leaves after N records
 *	--timeout S       how long a FIFO's other end may take to open (30 s)
 *
 * Exit status: 0 done and checked, 1 a failure (a line on stderr and in the
 * report), 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rendezvous.h"

#define MAGIC 0x52454331u /* "REC1" */
#define HDR_SIZE 24
#define MAX_WRITERS 256
#define READ_CHUNK 65536

struct hdr {
	uint32_t magic;
	uint32_t writer;
	uint64_t seq;
	uint32_t len;
	uint32_t sum;
};

static struct {
	size_t max;
	bool paused;
	uint64_t burst;
	uint64_t stop_after;
	unsigned timeout_s;
	const char *outfile;
} opt = { .max = PIPE_BUF, .timeout_s = 30 };

static void on_alarm(int sig)
{
	(void)sig;
}

static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static uint32_t hdr_sum(const struct hdr *h)
{
	return (uint32_t)mix(((uint64_t)h->writer << 32 | h->len) ^ mix(h->seq));
}

/* Payload byte i of record (writer, seq). */
static uint8_t payload_byte(uint32_t writer, uint64_t seq, size_t i)
{
	return (uint8_t)(mix(mix((uint64_t)writer << 32 ^ seq) + i / 8) >> (8 * (i % 8)));
}

static void report(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(const char *path, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	r = rdv_write_file(path, line);
	if (r < 0)
		fprintf(stderr, "records: cannot write '%s': %s\n", path, strerror(-r));
}

static int fail(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(const char *path, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "records: %s\n", msg);
	report(path, "BAD %s\n", msg);
	return 1;
}

/* ---- the writer ---- */

/* Record lengths of 24 to --max bytes, small as often as large on a log scale. */
static size_t next_len(uint64_t *state)
{
	uint64_t x = mix(++*state);
	unsigned bits = 5 + (unsigned)(x % 8); /* 32 .. 4096 */
	size_t len = HDR_SIZE + (size_t)((x >> 8) % (1u << bits));

	return len > opt.max ? opt.max : len;
}

static void say_state(uint32_t id, bool paused, uint64_t seq)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s.%u.state", opt.outfile, id);
	report(path, "%s %" PRIu64 "\n", paused ? "paused" : "running", seq);
}

/* A writer's progress. */
struct wstate {
	uint32_t id;
	uint64_t seq, bytes;
	uint64_t burst_from; /* seq when it last went on */
	bool paused, stop;
};

/* Take the signals that came (SIGUSR1: stop; SIGUSR2: pause or go on),
 * between two records; while paused, wait for them. They stay blocked
 * otherwise, so a record is never cut short by one. */
static void take_signals(sigset_t *set, struct wstate *w)
{
	static const struct timespec zero = { 0, 0 };
	siginfo_t si;
	int sig;

	for (;;) {
		sig = w->paused ? sigwaitinfo(set, &si) : sigtimedwait(set, &si, &zero);
		if (sig == SIGUSR1) {
			w->stop = true;
			return;
		}
		if (sig == SIGUSR2) {
			w->paused = !w->paused;
			if (!w->paused && (uint32_t)getpid() != w->id) {
				/* A copy of `ghost fork` is a writer of its own. */
				w->id = (uint32_t)getpid();
				w->seq = w->bytes = 0;
			}
			w->burst_from = w->seq;
			say_state(w->id, w->paused, w->seq);
			continue;
		}
		if (sig < 0 && errno == EINTR)
			continue;
		if (!w->paused)
			return;
	}
}

static int writer(int fd)
{
	struct wstate w = { .id = (uint32_t)getpid(), .paused = opt.paused };
	uint8_t rec[PIPE_BUF];
	uint64_t sizes = 0;
	const char *end = "stopped";
	char path[4096];
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (w.paused)
		say_state(w.id, w.paused, w.seq);
	for (;;) {
		struct hdr h;
		size_t len;
		ssize_t n;

		if (opt.burst && w.seq - w.burst_from >= opt.burst && !w.paused) {
			w.paused = true;
			say_state(w.id, w.paused, w.seq);
		}
		take_signals(&set, &w);
		if (w.stop)
			break;
		len = next_len(&sizes);
		h = (struct hdr){ .magic = MAGIC, .writer = w.id, .seq = w.seq, .len = (uint32_t)len };
		h.sum = hdr_sum(&h);
		memcpy(rec, &h, HDR_SIZE);
		for (size_t i = HDR_SIZE; i < len; i++)
			rec[i] = payload_byte(w.id, w.seq, i);
		do
			n = write(fd, rec, len);
		while (n < 0 && errno == EINTR);
		if (n < 0 && errno == EPIPE) {
			end = "epipe";
			break;
		}
		if (n < 0)
			return fail(opt.outfile, "writer %u: write of record %" PRIu64 ": %s", w.id,
				    w.seq, strerror(errno));
		if ((size_t)n != len)
			return fail(opt.outfile,
				    "writer %u: record %" PRIu64 " of %zu bytes went out as %zd", w.id,
				    w.seq, len, n);
		w.seq++;
		w.bytes += len;
	}
	close(fd);
	snprintf(path, sizeof(path), "%s.%u", opt.outfile, w.id);
	report(path, "writer %u records %" PRIu64 " bytes %" PRIu64 " %s\n", w.id, w.seq, w.bytes,
	       end);
	return 0;
}

/* ---- the reader ---- */

struct seen {
	uint32_t id;
	uint64_t records, bytes;
};

static struct seen *seen_of(struct seen *w, size_t *n, uint32_t id)
{
	for (size_t i = 0; i < *n; i++)
		if (w[i].id == id)
			return &w[i];
	if (*n == MAX_WRITERS)
		return NULL;
	w[*n] = (struct seen){ .id = id };
	return &w[(*n)++];
}

static int reader(int fd)
{
	static uint8_t buf[2 * READ_CHUNK + PIPE_BUF];
	static struct seen w[MAX_WRITERS];
	size_t have = 0, n_w = 0;
	uint64_t offset = 0, total = 0;
	enum { LINE = 64 };
	char *out;
	size_t out_len = 0;

	if (opt.paused) {
		sigset_t set;
		siginfo_t si;

		sigemptyset(&set);
		sigaddset(&set, SIGUSR2);
		sigprocmask(SIG_BLOCK, &set, NULL);
		report(opt.outfile, "paused\n");
		while (sigwaitinfo(&set, &si) < 0)
			;
	}

	for (;;) {
		ssize_t n = read(fd, buf + have, READ_CHUNK);
		size_t at = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail(opt.outfile, "read: %s", strerror(errno));
		if (n == 0)
			break;
		have += (size_t)n;
		while (have - at >= HDR_SIZE) {
			struct hdr h;
			struct seen *s;

			memcpy(&h, buf + at, HDR_SIZE);
			if (h.magic != MAGIC || h.len < HDR_SIZE || h.len > PIPE_BUF ||
			    hdr_sum(&h) != h.sum)
				return fail(opt.outfile,
					    "at offset %" PRIu64 ": no whole record (a header of "
					    "magic %#x writer %u length %u)",
					    offset, h.magic, h.writer, h.len);
			if (have - at < h.len)
				break;
			for (size_t i = HDR_SIZE; i < h.len; i++)
				if (buf[at + i] != payload_byte(h.writer, h.seq, i))
					return fail(opt.outfile,
						    "at offset %" PRIu64 ": record %" PRIu64
						    " of writer %u is not whole (byte %zu)",
						    offset, h.seq, h.writer, i);
			s = seen_of(w, &n_w, h.writer);
			if (!s)
				return fail(opt.outfile, "more than %d writers", MAX_WRITERS);
			if (h.seq != s->records)
				return fail(opt.outfile,
					    "at offset %" PRIu64 ": writer %u's record %" PRIu64
					    " after %" PRIu64 " records",
					    offset, h.writer, h.seq, s->records);
			s->records++;
			s->bytes += h.len;
			total++;
			at += h.len;
			offset += h.len;
			if (opt.stop_after && total >= opt.stop_after) {
				close(fd);
				report(opt.outfile, "stopped after %" PRIu64 " records\n", total);
				return 0;
			}
		}
		memmove(buf, buf + at, have - at);
		have -= at;
	}
	if (have)
		return fail(opt.outfile, "the stream ended inside a record (%zu bytes)", have);
	/* The end of the stream, once: a second read sees it again. */
	if (read(fd, buf, 1) != 0)
		return fail(opt.outfile, "a read after the end of the stream did not see it again");
	close(fd);
	out = malloc((n_w + 1) * LINE);
	if (!out)
		return fail(opt.outfile, "out of memory");
	for (size_t i = 0; i < n_w; i++)
		out_len += (size_t)snprintf(out + out_len, LINE,
					    "writer %u records %" PRIu64 " bytes %" PRIu64 "\n",
					    w[i].id, w[i].records, w[i].bytes);
	snprintf(out + out_len, LINE, "total %" PRIu64 " records ok\n", total);
	report(opt.outfile, "%s", out);
	free(out);
	return 0;
}

/* ---- meeting ---- */

static int open_fifo(const char *path, int flags)
{
	int fd;

	/* A FIFO's open waits for the other side; SIGALRM bounds the wait. */
	alarm(opt.timeout_s);
	do
		fd = open(path, flags | O_CLOEXEC);
	while (fd < 0 && errno == ENOENT && (usleep(10000), true));
	alarm(0);
	if (fd < 0)
		return -errno;
	return rdv_above_stdio(fd);
}

static int family(unsigned n)
{
	char path[4096], line[4096];
	size_t len = 0;
	pid_t keeper;
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return fail(opt.outfile, "pipe: %s", strerror(errno));
	p[0] = rdv_above_stdio(p[0]);
	p[1] = rdv_above_stdio(p[1]);
	signal(SIGCHLD, SIG_IGN);
	keeper = fork();
	if (keeper < 0)
		return fail(opt.outfile, "fork: %s", strerror(errno));
	if (keeper == 0) {
		len = (size_t)snprintf(line, sizeof(line), "%d", (int)getpid());
		for (unsigned i = 0; i < n; i++) {
			pid_t c = fork();

			if (c < 0)
				_exit(fail(opt.outfile, "fork: %s", strerror(errno)));
			if (c == 0) {
				close(p[0]);
				_exit(writer(p[1]));
			}
			len += (size_t)snprintf(line + len, sizeof(line) - len, " %d", (int)c);
		}
		close(p[0]);
		close(p[1]);
		snprintf(path, sizeof(path), "%s.family", opt.outfile);
		snprintf(line + len, sizeof(line) - len, "\n");
		report(path, "%s", line);
		/* Until SIGTERM (default action: the writers lose their parent). */
		for (;;)
			pause();
	}
	close(p[1]);
	return reader(p[0]);
}

static void usage(void)
{
	fprintf(stderr, "usage: records [--max N] [--paused] [--burst N] [--stop-after N] [--timeout S] "
			"read FIFO OUTFILE | write FIFO OUTFILE | family N OUTFILE\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "max", required_argument, NULL, 'm' },
		{ "paused", no_argument, NULL, 'p' },
		{ "burst", required_argument, NULL, 'b' },
		{ "stop-after", required_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct sigaction sa = { 0 };
	const char *mode;
	int c, fd;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			opt.max = strtoul(optarg, NULL, 10);
			if (opt.max < HDR_SIZE || opt.max > PIPE_BUF)
				usage();
			break;
		case 'p':
			opt.paused = true;
			break;
		case 'b':
			opt.burst = strtoull(optarg, NULL, 10);
			break;
		case 's':
			opt.stop_after = strtoull(optarg, NULL, 10);
			break;
		case 't':
			opt.timeout_s = (unsigned)strtoul(optarg, NULL, 10);
			break;
		default:
			usage();
		}
	}
	if (argc - optind != 3)
		usage();
	mode = argv[optind];
	opt.outfile = argv[optind + 2];
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(mode, "family") == 0)
		return family((unsigned)strtoul(argv[optind + 1], NULL, 10));
	if (strcmp(mode, "read") == 0) {
		if ((unlink(argv[optind + 1]) < 0 && errno != ENOENT) ||
		    mkfifo(argv[optind + 1], 0600) < 0)
			return fail(opt.outfile, "mkfifo '%s': %s", argv[optind + 1],
				    strerror(errno));
		fd = open_fifo(argv[optind + 1], O_RDONLY);
		if (fd < 0)
			return fail(opt.outfile, "open '%s': %s", argv[optind + 1], strerror(-fd));
		return reader(fd);
	}
	if (strcmp(mode, "write") == 0) {
		fd = open_fifo(argv[optind + 1], O_WRONLY);
		if (fd < 0)
			return fail(opt.outfile, "open '%s': %s", argv[optind + 1], strerror(-fd));
		return writer(fd);
	}
	usage();
}

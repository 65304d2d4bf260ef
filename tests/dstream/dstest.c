/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The processes of the dstream tests (dstream.sh): each role of a scenario
 * is one invocation, run inside a node's namespaces with $GHOST_CONTROL
 * naming that node's ghostd. Roles meet through files in a directory they
 * share (the stream id, a handle, "done" flags). Each prints "ok - WHAT" or
 * "not ok - WHAT: WHY" lines and exits 1 if one check failed.
 *
 *   dstest fig2-p1|fig2-p2|fig2-p3 DIR       Figure 2 of the report
 *   dstest fifo-reader DIR WRITERS COUNT [MOVE-AT]  a FIFO stream, checked
 *                                            records; with MOVE-AT the reader
 *                                            suspends after that many and
 *   dstest fifo-reader-resume DIR WRITERS COUNT  wakes up to read on
 *   dstest fifo-writer DIR COUNT
 *   dstest lifo-reader DIR WRITERS COUNT     a LIFO stream, newest first
 *   dstest lifo-writer DIR COUNT
 *   dstest relay-fixed DIR ROUNDS K          a DIRECT stream whose other end
 *   dstest relay-mover DIR ROUND ROUNDS K    moves every K messages each way
 *   dstest errors DIR                        the errors a caller can meet
 *   dstest homeless-p1 DIR HOME              a stream whose home node leaves
 *   dstest homeless-p2 DIR
 *   dstest attach ID                         attach, print the error code
 *   dstest wakeup DIR [stay]                 wake the handle in DIR up, print
 *                                            the error code; stay: then read
 *                                            until that fails
 *
 * A node failing during a wakeup (dstream-faults.sh): A, the peer, on node
 * 1; the endpoint B held on node 2 (or 1), woken up on node 3.
 *   dstest fault-peer DIR HOME MODE N M      A: creates a DIRECT stream whose
 *                                            home is node HOME, sends N
 *                                            messages; MODE feed: then M more
 *                                            on the new link; closed, lost:
 *                                            sees the endpoint closed (and
 *                                            the home up, or down); gone: its
 *                                            node fails, nothing to check (B
 *                                            attaches first)
 *   dstest fault-held DIR                    reads one message, suspends
 *   dstest fault-woken DIR N M               wakes up, gets a prefix of A's
 *                                            N, then A's M on the new link;
 *                                            M 0: all N, then A closed
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ghost/dstream.h"

#define WAIT_MS 20000
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define WAIT_FILE_S 30

static const char *dir;
static int failures;

static void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf(ok ? "ok - " : "not ok - ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (!ok && ds_errmsg()[0])
		printf(" (%s)", ds_errmsg());
	printf("\n");
	fflush(stdout);
	failures += !ok;
}

static _Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void die(const char *fmt, ...)
{
	va_list ap;

	printf("not ok - ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" (%s)\n", ds_errmsg());
	exit(1);
}

static const char *path(const char *name)
{
	static char p[4][4096];
	static int k;

	k = (k + 1) % 4;
	snprintf(p[k], sizeof(p[k]), "%s/%s", dir, name);
	return p[k];
}

/* Write a file whole (through a rename: a reader never sees half of it). */
static void put_file(const char *name, const char *text)
{
	char tmp[4200];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path(name));
	f = fopen(tmp, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0 || rename(tmp, path(name)) < 0)
		die("cannot write %s", path(name));
}

/* Wait for a file and read it. */
static char *get_file(const char *name)
{
	static char text[256];

	for (int i = 0; i < WAIT_FILE_S * 100; i++) {
		FILE *f = fopen(path(name), "r");

		if (f) {
			size_t n = fread(text, 1, sizeof(text) - 1, f);

			fclose(f);
			text[n] = '\0';
			return text;
		}
		usleep(10000);
	}
	die("no file %s after %d s", path(name), WAIT_FILE_S);
}

static uint64_t get_id(void)
{
	return strtoull(get_file("id"), NULL, 16);
}

static void put_id(uint64_t id)
{
	char s[32];

	snprintf(s, sizeof(s), "%" PRIx64, id);
	put_file("id", s);
}

/* ---- checked messages ---------------------------------------------------------- */

/* A record: writer, sequence number, length and a hash of the rest, then
 * bytes that depend on all three. */
struct rec {
	uint32_t writer, seq, len, hash;
};

static uint32_t fnv(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static size_t make_rec(uint8_t *buf, uint32_t writer, uint32_t seq, uint32_t len)
{
	struct rec r = { writer, seq, len, 0 };

	for (uint32_t i = sizeof(r); i < len; i++)
		buf[i] = (uint8_t)(writer * 131 + seq * 7 + i * 13);
	r.hash = fnv(buf + sizeof(r), len - sizeof(r));
	memcpy(buf, &r, sizeof(r));
	return len;
}

/* 0 with the record's header in ret if n bytes make a whole, intact record. */
static int check_rec(const uint8_t *buf, int n, struct rec *ret)
{
	if (n < (int)sizeof(*ret))
		return -1;
	memcpy(ret, buf, sizeof(*ret));
	if (ret->len != (uint32_t)n || fnv(buf + sizeof(*ret), (size_t)n - sizeof(*ret)) != ret->hash)
		return -1;
	for (uint32_t i = sizeof(*ret); i < ret->len; i++)
		if (buf[i] != (uint8_t)(ret->writer * 131 + ret->seq * 7 + i * 13))
			return -1;
	return 0;
}

/* Sizes from 16 to 4096 bytes, different for each record. */
static uint32_t rec_len(uint32_t writer, uint32_t seq)
{
	return 16 + (writer * 2654435761u + seq * 40503u) % (4096 - 16 + 1);
}

/* ---- Figure 2 -------------------------------------------------------------------- */

/* P1's k-th message and P2's and P3's: "who #k" then a pattern, of a size
 * that depends on k. */
static size_t fig2_msg(char *buf, const char *who, int k)
{
	size_t len = (size_t)snprintf(buf, 64, "%s #%d:", who, k);
	size_t total = len + (size_t)(k * 997 % 3000);

	for (size_t i = len; i < total; i++)
		buf[i] = (char)('a' + (i + (size_t)k) % 26);
	return total;
}

static void send_fig2(struct ds_ep *ep, const char *who, int from, int to)
{
	char buf[4096];

	for (int k = from; k <= to; k++) {
		size_t n = fig2_msg(buf, who, k);
		int r = ds_send(ep, buf, n);

		if (r < 0)
			die("%s sends message %d: %s", who, k, strerror(-r));
	}
}

/* Receive from `who` messages from..to, in order, each whole. */
static void recv_fig2(struct ds_ep *ep, const char *me, const char *who, int from, int to)
{
	char want[4096], got[4096];
	int bad = 0;

	for (int k = from; k <= to; k++) {
		size_t n = fig2_msg(want, who, k);
		int r = ds_recv(ep, got, sizeof(got), WAIT_MS);

		if (r < 0)
			die("%s receives %s's message %d: %s", me, who, k, strerror(-r));
		if ((size_t)r != n || memcmp(got, want, n) != 0) {
			got[MIN(r, 20)] = '\0';
			printf("# %s: expected %s's message %d, got %d bytes '%s'\n", me, who, k, r,
			       got);
			bad++;
		}
	}
	check(!bad, "%s receives %s's messages %d to %d, in order and whole", me, who, from, to);
}

static int fig2_p1(void)
{
	struct ds_ep *ep;
	uint64_t id;
	char buf[16];
	int r;

	if (ds_create(DS_DIRECT, 2, &id) < 0 || ds_attach(id, &ep) < 0)
		die("P1 creates and attaches");
	check(ds_ep_index(ep) == 0, "P1 has endpoint 0");
	snprintf(buf, sizeof(buf), "%d", (int)getpid());
	put_file("p1.pid", buf);
	put_id(id);
	r = ds_wait(ep, WAIT_MS);
	check(r == 0, "P1: the stream is ready once P2 attached");
	send_fig2(ep, "P1", 1, 5);
	put_file("p1.sent1", "5");
	(void)get_file("handle");
	/* P2 is suspended: these wait for its endpoint where it was held. */
	send_fig2(ep, "P1", 6, 10);
	put_file("p1.sent2", "10");
	recv_fig2(ep, "P1", "P2", 1, 3);
	/* The next come from P3, once it woke P2's endpoint up. */
	recv_fig2(ep, "P1", "P3", 1, 2);
	send_fig2(ep, "P1", 11, 15);
	r = ds_recv(ep, buf, sizeof(buf), WAIT_MS);
	check(r == 0, "P1 reads the end of the stream once P3 unattached (got %d)", r);
	ds_unattach(ep);
	check(ds_destroy(id) == 0, "P1 destroys the stream");
	return failures ? 1 : 0;
}

static int fig2_p2(void)
{
	char want[4096], got[4096], handle[DS_HANDLE_MAX] = "";
	struct ds_ep *ep;
	size_t n;
	int r;

	if (ds_attach(get_id(), &ep) < 0)
		die("P2 attaches");
	check(ds_ep_index(ep) == 1, "P2 has endpoint 1");
	check(ds_wait(ep, WAIT_MS) == 0, "P2: the stream is ready");
	send_fig2(ep, "P2", 1, 3);
	(void)get_file("p1.sent1");
	/* One message read; the four after it are read into the library's
	 * buffer with it, or wait in the kernel: both go with the endpoint. */
	n = fig2_msg(want, "P1", 1);
	r = ds_recv(ep, got, sizeof(got), WAIT_MS);
	check(r == (int)n && memcmp(got, want, n) == 0, "P2 receives P1's message 1");
	r = ds_suspend(ep, handle, sizeof(handle));
	check(r == 0, "P2 suspends its endpoint: handle %s", handle);
	if (r < 0)
		return 1;
	put_file("handle", handle);
	return failures ? 1 : 0;
}

static int fig2_p3(void)
{
	char handle[DS_HANDLE_MAX];
	struct ds_ep *ep;
	int r;

	snprintf(handle, sizeof(handle), "%s", get_file("handle"));
	(void)get_file("p1.sent2");
	r = ds_wakeup(handle, &ep);
	if (r < 0)
		die("P3 wakes P2's endpoint up: %s", strerror(-r));
	check(ds_ep_index(ep) == 1, "P3 has endpoint 1 again");
	send_fig2(ep, "P3", 1, 2);
	/* What P1 sent before the suspend (P2 read only the first) and after
	 * it, then what it sends after the wakeup. */
	recv_fig2(ep, "P3", "P1", 2, 10);
	recv_fig2(ep, "P3", "P1", 11, 15);
	snprintf(handle, sizeof(handle), "%d", (int)getpid());
	put_file("p3.ready", handle);
	(void)get_file("checked");
	ds_unattach(ep);
	return failures ? 1 : 0;
}

/* ---- FIFO and LIFO ---------------------------------------------------------------- */

/* What a FIFO or LIFO reader has checked so far: it moves with it. */
struct rstate {
	unsigned got, bad, order;
	uint32_t last_writer, last_seq;
	uint32_t next[DS_MAX_ENDPOINTS];
};

/* The reader: it creates the stream, or (resume) wakes up the reader that
 * suspended itself after move_at records, and goes on from its state. */
static int reader(enum ds_type type, unsigned writers, unsigned count, unsigned move_at,
		  bool resume)
{
	uint8_t *buf = malloc(DS_MSG_MAX);
	struct rstate st = { .last_writer = UINT32_MAX };
	struct ds_ep *ep;
	uint64_t id;
	int r;

	if (!buf || writers + 1 > DS_MAX_ENDPOINTS)
		die("out of memory");
	if (resume) {
		char handle[DS_HANDLE_MAX];
		FILE *f;

		snprintf(handle, sizeof(handle), "%s", get_file("reader.handle"));
		f = fopen(path("reader.state"), "r");
		if (!f || fread(&st, sizeof(st), 1, f) != 1)
			die("no reader state");
		fclose(f);
		id = get_id();
		r = ds_wakeup(handle, &ep);
		check(r == 0, "the reader wakes up after %u records", st.got);
		if (r < 0)
			return 1;
	} else {
		if (ds_create(type, writers + 1, &id) < 0 || ds_attach(id, &ep) < 0)
			die("the reader creates and attaches");
		check(ds_ep_index(ep) == 0, "the reader has endpoint 0");
		put_id(id);
		check(ds_wait(ep, WAIT_MS) == 0, "the reader: all %u writers attached", writers);
	}
	if (type == DS_LIFO && !resume) {
		char name[32];

		/* Everything is sent (and has come: it was sent before the
		 * writer's "done"), so the order is newest first. */
		for (unsigned w = 1; w <= writers; w++) {
			snprintf(name, sizeof(name), "writer%u.done", w);
			(void)get_file(name);
		}
		usleep(200 * 1000);
		for (unsigned w = 1; w <= writers; w++)
			st.next[w] = count;
	}
	for (;;) {
		struct rec h;

		if (move_at && st.got == move_at) {
			char handle[DS_HANDLE_MAX];
			FILE *f = fopen(path("reader.state"), "w");

			if (!f || fwrite(&st, sizeof(st), 1, f) != 1 || fclose(f) != 0)
				die("cannot save the reader's state");
			r = ds_suspend(ep, handle, sizeof(handle));
			check(r == 0, "the reader suspends after %u records", st.got);
			if (r == 0)
				put_file("reader.handle", handle);
			free(buf);
			return failures ? 1 : 0;
		}
		r = ds_recv(ep, buf, DS_MSG_MAX, WAIT_MS);
		if (r <= 0)
			break;
		st.got++;
		if (check_rec(buf, r, &h) < 0 || h.writer < 1 || h.writer > writers) {
			st.bad++;
			continue;
		}
		if (type == DS_FIFO) {
			/* Each writer's in the order sent. */
			if (h.seq != st.next[h.writer])
				st.order++;
			st.next[h.writer] = h.seq + 1;
		} else {
			/* Newest first: the last writer's last record first, and so on. */
			if (h.seq + 1 != st.next[h.writer] ||
			    (st.last_writer != UINT32_MAX && h.writer != st.last_writer &&
			     !(h.writer < st.last_writer && st.last_seq == 0)))
				st.order++;
			st.next[h.writer] = h.seq;
			st.last_writer = h.writer;
			st.last_seq = h.seq;
		}
	}
	check(r == 0, "the reader reads to the end of the stream (%d)", r);
	check(st.got == writers * count, "the reader got %u records of %u", st.got,
	      writers * count);
	check(st.bad == 0, "every record is whole and intact (%u not)", st.bad);
	check(st.order == 0, "every record comes in %s order (%u out of it)",
	      type == DS_FIFO ? "its writer's" : "newest-first", st.order);
	ds_unattach(ep);
	check(ds_destroy(id) == 0, "the reader destroys the stream");
	free(buf);
	return failures ? 1 : 0;
}

static int writer(unsigned count)
{
	uint8_t buf[4096];
	struct ds_ep *ep;
	unsigned w;
	char name[32];

	if (ds_attach(get_id(), &ep) < 0)
		die("a writer attaches");
	w = ds_ep_index(ep);
	check(ds_wait(ep, WAIT_MS) == 0, "writer %u: the stream is ready", w);
	for (unsigned k = 0; k < count; k++) {
		size_t n = make_rec(buf, w, k, rec_len(w, k));
		int r = ds_send(ep, buf, n);

		if (r < 0)
			die("writer %u sends record %u: %s", w, k, strerror(-r));
	}
	check(true, "writer %u sent %u records", w, count);
	snprintf(name, sizeof(name), "writer%u.done", w);
	put_file(name, "1");
	ds_unattach(ep);
	return failures ? 1 : 0;
}

/* ---- relay: one end stays, the other moves every round ------------------------ */

/* Up to 32 KiB: a message is often cut by a full socket buffer. */
static uint32_t relay_len(uint32_t who, uint32_t seq)
{
	return 16 + (who * 2654435761u + seq * 40503u) % 32768;
}

static void relay_send(struct ds_ep *ep, uint8_t *buf, uint32_t who, uint32_t from, uint32_t k)
{
	for (uint32_t seq = from; seq < from + k; seq++) {
		int r = ds_send(ep, buf, make_rec(buf, who, seq, relay_len(who, seq)));

		if (r < 0)
			die("%u sends %u: %s", who, seq, strerror(-r));
	}
}

/* Receive seqs from..from+k-1 of who: the number of them that were not
 * the next one, whole and intact. */
static unsigned relay_recv(struct ds_ep *ep, uint8_t *buf, uint32_t who, uint32_t from,
			   uint32_t k)
{
	unsigned bad = 0;

	for (uint32_t seq = from; seq < from + k; seq++) {
		struct rec h;
		int r = ds_recv(ep, buf, DS_MSG_MAX, WAIT_MS);

		if (r <= 0)
			die("receiving %u's message %u: %d", who, seq, r);
		if (check_rec(buf, r, &h) < 0 || h.writer != who || h.seq != seq) {
			if (!bad)
				printf("# expected %u's message %u, got %d bytes (%u's %u)\n", who,
				       seq, r, h.writer, h.seq);
			bad++;
		}
	}
	return bad;
}

/* The fixed end: each round, K messages out, then the mover's K back. */
static int relay_fixed(unsigned rounds, unsigned k)
{
	uint8_t *buf = malloc(DS_MSG_MAX);
	unsigned bad = 0;
	struct ds_ep *ep;
	uint64_t id;
	int r;

	if (!buf || ds_create(DS_DIRECT, 2, &id) < 0 || ds_attach(id, &ep) < 0)
		die("the fixed end creates and attaches");
	put_id(id);
	if (ds_wait(ep, WAIT_MS) < 0)
		die("the fixed end waits");
	for (unsigned round = 0; round < rounds; round++) {
		relay_send(ep, buf, 1, round * k, k);
		bad += relay_recv(ep, buf, 2, round * k, k);
	}
	check(bad == 0, "the fixed end got the mover's %u messages in order, once each (%u not)",
	      rounds * k, bad);
	r = ds_recv(ep, buf, DS_MSG_MAX, WAIT_MS);
	check(r == 0, "then the end of the stream (%d)", r);
	ds_unattach(ep);
	ds_destroy(id);
	free(buf);
	return failures ? 1 : 0;
}

/* Round r of the mover: attach (r = 0) or wake up from handle r-1, K
 * messages in, K out, then suspend (the last round unattaches). */
static int relay_mover(unsigned round, unsigned rounds, unsigned k)
{
	uint8_t *buf = malloc(DS_MSG_MAX);
	char name[32], handle[DS_HANDLE_MAX];
	struct ds_ep *ep;
	unsigned bad;
	int r;

	if (!buf)
		die("out of memory");
	if (round == 0) {
		r = ds_attach(get_id(), &ep);
	} else {
		snprintf(name, sizeof(name), "handle.%u", round - 1);
		snprintf(handle, sizeof(handle), "%s", get_file(name));
		r = ds_wakeup(handle, &ep);
	}
	if (r < 0)
		die("round %u: the mover %s", round, round ? "wakes up" : "attaches");
	bad = relay_recv(ep, buf, 1, round * k, k);
	check(bad == 0, "round %u: the fixed end's messages %u to %u, in order, once each", round,
	      round * k, round * k + k - 1);
	relay_send(ep, buf, 2, round * k, k);
	if (round + 1 == rounds) {
		ds_unattach(ep);
		free(buf);
		return failures ? 1 : 0;
	}
	r = ds_suspend(ep, handle, sizeof(handle));
	if (r < 0)
		die("round %u: the mover suspends", round);
	snprintf(name, sizeof(name), "handle.%u", round);
	put_file(name, handle);
	free(buf);
	return failures ? 1 : 0;
}

/* ---- a stream whose home node leaves -------------------------------------------- */

/* The home of a stream, as every daemon computes it (docs/ghostd.md): the
 * local cluster's nodes are 1..n in its configuration's order. */
static unsigned home_of(uint64_t id, unsigned nodes)
{
	uint64_t x = id + 0x9E3779B97F4A7C15ull;

	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return 1 + (unsigned)((x ^ (x >> 31)) % nodes);
}

/* P1 and P2 of a DIRECT stream whose home is node `home` (of 3): their
 * messages still go once the home left; what needs the home fails clearly. */
static int homeless(bool first, unsigned home)
{
	char buf[64], name[32];
	struct ds_ep *ep;
	uint64_t id = 0;
	int r, tries;

	if (first) {
		for (tries = 0; tries < 200; tries++) {
			if (ds_create(DS_DIRECT, 2, &id) < 0)
				die("create a stream");
			if (home_of(id, 3) == home)
				break;
			ds_destroy(id);
		}
		check(tries < 200, "a stream whose home is node %u", home);
		put_id(id);
	} else {
		id = get_id();
	}
	if (ds_attach(id, &ep) < 0 || ds_wait(ep, WAIT_MS) < 0)
		die("attach");
	r = ds_send(ep, first ? "P1 before" : "P2 before", 9);
	check(r == 0 && ds_recv(ep, buf, sizeof(buf), WAIT_MS) == 9 &&
		      !memcmp(buf, first ? "P2 before" : "P1 before", 9),
	      "%s: a message each way", first ? "P1" : "P2");
	snprintf(name, sizeof(name), "%s.ready", first ? "p1" : "p2");
	put_file(name, "1");
	(void)get_file("gone");
	r = ds_send(ep, first ? "P1 after" : "P2 after", 8);
	check(r == 0 && ds_recv(ep, buf, sizeof(buf), WAIT_MS) == 8 &&
		      !memcmp(buf, first ? "P2 after" : "P1 after", 8),
	      "%s: messages still go once the home node is down", first ? "P1" : "P2");
	if (first) {
		struct ds_ep *other = NULL;

		/* P2 tries to suspend first. */
		(void)get_file("p2.done");
		r = ds_destroy(id);
		check(r == -EHOSTDOWN, "destroy: -EHOSTDOWN (%s)", ds_errmsg());
		r = ds_attach(id, &other);
		check(r == -EHOSTDOWN, "attach: -EHOSTDOWN (%s)", ds_errmsg());
		ds_unattach(other);
		/* P2's endpoint was closed when its suspend failed: with no home
		 * to say so, its node told every node. */
		r = ds_recv(ep, buf, sizeof(buf), WAIT_MS);
		check(r == 0, "P1 sees P2's endpoint closed: the end of the stream (%d)", r);
		ds_unattach(ep);
	} else {
		char handle[DS_HANDLE_MAX];

		r = ds_suspend(ep, handle, sizeof(handle));
		check(r == -EHOSTDOWN, "suspend: -EHOSTDOWN (%s)", ds_errmsg());
		put_file("p2.done", "1");
	}
	return failures ? 1 : 0;
}

/* ---- errors ------------------------------------------------------------------------ */

static int errors(void)
{
	struct ds_ep *a, *b, *c, *w, *rd;
	char handle[DS_HANDLE_MAX], forged[DS_HANDLE_MAX], buf[64];
	uint64_t id, fifo;
	size_t n;
	int r;

	check(ds_create(DS_DIRECT, 3, &id) == -EINVAL, "a DIRECT stream of 3: -EINVAL");
	check(ds_create(DS_FIFO, DS_MAX_ENDPOINTS + 1, &id) == -EINVAL,
	      "a FIFO of %d endpoints: -EINVAL", DS_MAX_ENDPOINTS + 1);
	check(ds_attach(0x123456789ull, &a) == -ENOENT, "attach to a stream never created: "
	      "-ENOENT (%s)", ds_errmsg());
	if (ds_create(DS_DIRECT, 2, &id) < 0 || ds_attach(id, &a) < 0 || ds_attach(id, &b) < 0)
		die("create and attach twice");
	put_id(id);
	r = ds_attach(id, &c);
	check(r == -EBUSY, "a third attach to a DIRECT stream: -EBUSY (%s)", ds_errmsg());
	check(ds_wait(a, WAIT_MS) == 0 && ds_wait(b, WAIT_MS) == 0, "two endpoints of one process");
	check(ds_send(a, "x", 0) == -EINVAL, "an empty message: -EINVAL");
	check(ds_send(a, "ping", 4) == 0 && ds_recv(b, buf, 2, WAIT_MS) == -EMSGSIZE &&
		      ds_recv(b, buf, sizeof(buf), WAIT_MS) == 4,
	      "a message larger than the buffer: -EMSGSIZE, and it stays next");
	check(ds_recv(b, buf, sizeof(buf), 100) == -ETIMEDOUT, "nothing to receive: -ETIMEDOUT");
	r = ds_suspend(b, handle, sizeof(handle));
	check(r == 0, "suspend endpoint 1");
	check(ds_wakeup("ds:nothing", &c) == -EINVAL, "a malformed handle: -EINVAL (%s)",
	      ds_errmsg());
	snprintf(forged, sizeof(forged), "%s", handle);
	n = strlen(forged);
	forged[n - 1] = forged[n - 1] == '0' ? '1' : '0';
	check(ds_wakeup(forged, &c) == -EACCES, "a forged handle (its secret changed): -EACCES "
	      "(%s)", ds_errmsg());
	put_file("handle", handle);
	/* The other user's attempt (run by the driver) comes now. */
	(void)get_file("other.done");
	r = ds_wakeup(handle, &c);
	check(r == 0, "the real handle wakes the endpoint up");
	check(r < 0 || ds_wakeup(handle, &b) == -EALREADY, "the same handle again: -EALREADY (%s)",
	      ds_errmsg());
	if (r == 0) {
		check(ds_send(a, "pong", 4) == 0 && ds_recv(c, buf, sizeof(buf), WAIT_MS) == 4 &&
			      !memcmp(buf, "pong", 4), "the woken endpoint receives");
		ds_unattach(c);
		r = ds_recv(a, buf, sizeof(buf), WAIT_MS);
		check(r == 0, "its peer unattached: the end of the stream (%d)", r);
		r = ds_send(a, "late", 4);
		check(r == -EPIPE, "and sending to it: -EPIPE (%d: %s)", r, ds_errmsg());
	}
	check(ds_destroy(id) == 0, "destroy the stream");
	r = ds_recv(a, buf, sizeof(buf), WAIT_MS);
	check(r == -EIDRM, "an endpoint of a destroyed stream: -EIDRM (%d)", r);
	ds_unattach(a);
	check(ds_attach(id, &a) == -ENOENT, "attach to a destroyed stream: -ENOENT (%s)",
	      ds_errmsg());
	check(ds_wakeup(handle, &c) == -ENOENT, "wake up in a destroyed stream: -ENOENT (%s)",
	      ds_errmsg());
	check(ds_destroy(id) == -ENOENT, "destroy it again: -ENOENT");
	if (ds_create(DS_FIFO, 3, &fifo) < 0 || ds_attach(fifo, &rd) < 0 || ds_attach(fifo, &w) < 0)
		die("a FIFO stream");
	check(ds_send(rd, "x", 1) == -EOPNOTSUPP, "the reader of a FIFO sends: -EOPNOTSUPP");
	check(ds_recv(w, buf, sizeof(buf), 0) == -EOPNOTSUPP,
	      "a writer of a FIFO receives: -EOPNOTSUPP");
	check(ds_send(w, "x", 1) == 0 && ds_recv(rd, buf, sizeof(buf), WAIT_MS) == 1,
	      "the FIFO works with one of its two writers attached");
	check(ds_recv(rd, buf, sizeof(buf), 200) == -ETIMEDOUT,
	      "a FIFO with a writer still free has no end yet");
	ds_unattach(w);
	ds_unattach(rd);
	check(ds_destroy(fifo) == 0, "destroy the FIFO");
	return failures ? 1 : 0;
}

/* ---- a node fails during a wakeup ---------------------------------------------- */

/* A's messages before the wakeup are seqs 0..N-1 of FAULT_REC bytes: the
 * held endpoint's process reads 64 KiB of them at once and delivers one,
 * so what it hands over with the endpoint ends inside a message. Those A
 * sends after the wakeup are seqs FAULT_AFTER... */
#define FAULT_REC 3000
#define FAULT_AFTER 1000
/* The woken endpoint's first message, to A. */
#define FAULT_HELLO 100

static int fault_peer(unsigned home, const char *mode, unsigned before, unsigned after)
{
	uint8_t *buf = malloc(DS_MSG_MAX);
	struct ds_ep *ep;
	struct rec h;
	uint64_t id = 0;
	int r, tries;

	if (!buf)
		die("out of memory");
	for (tries = 0; tries < 200; tries++) {
		if (ds_create(DS_DIRECT, 2, &id) < 0)
			die("A creates a stream");
		if (home_of(id, 3) == home)
			break;
		ds_destroy(id);
	}
	check(tries < 200, "a stream whose home is node %u", home);
	if (!strcmp(mode, "gone")) {
		/* B attaches first: the link is then built with A's node
		 * listening, and only the wakeup's has A's node connect. */
		put_id(id);
		(void)get_file("b.attached");
		if (ds_attach(id, &ep) < 0)
			die("A attaches");
	} else {
		if (ds_attach(id, &ep) < 0)
			die("A attaches");
		put_id(id);
	}
	if (ds_wait(ep, WAIT_MS) < 0)
		die("A waits for the other endpoint");
	for (uint32_t k = 0; k < before; k++)
		if (ds_send(ep, buf, make_rec(buf, 1, k, FAULT_REC)) < 0)
			die("A sends message %u", k);
	put_file("a.sent", "1");
	if (!strcmp(mode, "feed")) {
		/* The woken endpoint's first message comes on the new link: A
		 * has switched to it, and what it sends from now on goes there. */
		r = ds_recv(ep, buf, DS_MSG_MAX, WAIT_MS);
		check(r > 0 && check_rec(buf, r, &h) == 0 && h.writer == 3 && h.seq == 0,
		      "A receives the woken endpoint's first message (%d)", r);
		for (uint32_t k = 0; k < after; k++)
			if (ds_send(ep, buf, make_rec(buf, 1, FAULT_AFTER + k, rec_len(1, k))) < 0)
				die("A sends message %u after the wakeup", FAULT_AFTER + k);
		r = ds_recv(ep, buf, DS_MSG_MAX, WAIT_MS);
		check(r == 0, "A reads the end of the stream once the woken endpoint unattached "
		      "(%d)", r);
		ds_unattach(ep);
		(void)get_file("done");
		check(ds_destroy(id) == 0, "A destroys the stream");
	} else if (!strcmp(mode, "gone")) {
		/* Its node fails: whatever it sees then is not the test's. */
		(void)get_file("done");
		ds_unattach(ep);
	} else {
		r = ds_recv(ep, buf, DS_MSG_MAX, WAIT_MS);
		check(r == 0, "A sees the endpoint closed: the end of the stream (%d)", r);
		r = ds_send(ep, buf, make_rec(buf, 1, FAULT_AFTER, FAULT_REC));
		check(r == -EPIPE, "A sends to it: -EPIPE (%d)", r);
		/* The test checks what the held node keeps (A's end of their
		 * link stays open meanwhile) and tries the handle again. */
		(void)get_file("done");
		ds_unattach(ep);
		r = ds_destroy(id);
		if (!strcmp(mode, "lost"))
			check(r == -EHOSTDOWN, "A destroys the stream whose home is lost: -EHOSTDOWN "
			      "(%d: %s)", r, ds_errmsg());
		else
			check(r == 0, "A destroys the stream (%d: %s)", r, ds_errmsg());
	}
	free(buf);
	return failures ? 1 : 0;
}

static int fault_held(void)
{
	uint8_t *buf = malloc(DS_MSG_MAX);
	char handle[DS_HANDLE_MAX];
	struct ds_ep *ep;
	struct rec h;
	int r;

	if (!buf)
		die("out of memory");
	if (ds_attach(get_id(), &ep) < 0)
		die("the held endpoint attaches");
	put_file("b.attached", "1");
	if (ds_wait(ep, WAIT_MS) < 0)
		die("the held endpoint waits for A");
	(void)get_file("a.sent");
	r = ds_recv(ep, buf, DS_MSG_MAX, WAIT_MS);
	check(r > 0 && check_rec(buf, r, &h) == 0 && h.writer == 1 && h.seq == 0,
	      "its process receives A's message 0 (%d)", r);
	r = ds_suspend(ep, handle, sizeof(handle));
	check(r == 0, "its process suspends it");
	if (r == 0)
		put_file("handle", handle);
	free(buf);
	return failures ? 1 : 0;
}

/* The woken endpoint: A's messages 1..k of the N it sent before (a whole
 * prefix: what its node got before the holding node failed), then the M it
 * sends after, on the new link. M 0: A's node fails instead; all N come
 * (the holding node had them), then the end of the stream. */
static int fault_woken(unsigned before, unsigned after)
{
	uint8_t *buf = malloc(DS_MSG_MAX);
	char handle[DS_HANDLE_MAX];
	unsigned bad = 0, order = 0, got_after = 0, next = 1;
	struct ds_ep *ep;
	int r;

	if (!buf)
		die("out of memory");
	snprintf(handle, sizeof(handle), "%s", get_file("handle"));
	r = ds_wakeup(handle, &ep);
	if (r < 0)
		die("the endpoint wakes up on node 3: %s", strerror(-r));
	if (after) {
		r = ds_send(ep, buf, make_rec(buf, 3, 0, FAULT_HELLO));
		check(r == 0, "the woken endpoint sends (%d)", r);
	}
	while (got_after < after || !after) {
		struct rec h;

		r = ds_recv(ep, buf, DS_MSG_MAX, WAIT_MS);
		if (r == 0 && !after)
			break;
		if (r <= 0) {
			check(false, "the woken endpoint receives A's next message (%d), after %u "
			      "of those before the wakeup and %u after", r, next - 1, got_after);
			break;
		}
		if (next == 1 && got_after == 0)
			put_file("w.first", "1");
		if (check_rec(buf, r, &h) < 0 || h.writer != 1) {
			printf("# a message of %d bytes is not one of A's, whole\n", r);
			bad++;
			continue;
		}
		if (h.seq < FAULT_AFTER) {
			if (got_after || h.seq != next)
				order++;
			next = h.seq + 1;
		} else {
			if (h.seq != FAULT_AFTER + got_after)
				order++;
			got_after++;
		}
	}
	check(bad == 0, "every message it receives is whole and intact (%u not)", bad);
	check(order == 0, "each once, in the order sent (%u out of it)", order);
	if (after) {
		check(next > 1 && next <= before, "it got a prefix of what was held: A's "
		      "messages 1 to %u (of %u)", next - 1, before - 1);
		check(got_after == after, "then A's %u messages after the wakeup (%u)", after,
		      got_after);
	} else {
		check(next == before, "it got all that was held: A's messages 1 to %u (of %u)",
		      next - 1, before - 1);
		check(r == 0, "then the end of the stream: A was lost with its node (%d)", r);
		r = ds_send(ep, buf, make_rec(buf, 3, 0, FAULT_HELLO));
		check(r == -EPIPE, "sending to A: -EPIPE (%d)", r);
	}
	ds_unattach(ep);
	free(buf);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 3 && !strcmp(argv[1], "attach")) {
		struct ds_ep *ep;
		int r = ds_attach(strtoull(argv[2], NULL, 16), &ep);

		printf("%d %s\n", r, r < 0 ? ds_errmsg() : "attached");
		ds_unattach(r < 0 ? NULL : ep);
		return 0;
	}
	if (argc >= 3 && !strcmp(argv[1], "wakeup")) {
		static char buf[DS_MSG_MAX];
		bool stay = argc == 4 && !strcmp(argv[3], "stay");
		struct ds_ep *ep = NULL;
		int r;

		dir = argv[2];
		r = ds_wakeup(get_file("handle"), &ep);
		printf("%d %s\n", r, r < 0 ? ds_errmsg() : "woken up");
		if (r < 0)
			return 0;
		/* Keep the endpoint, reading, until that ends. */
		while (stay && (r = ds_recv(ep, buf, sizeof(buf), WAIT_MS)) > 0)
			;
		if (stay)
			printf("# then %d %s\n", r, r < 0 ? ds_errmsg() : "the end of the stream");
		ds_unattach(ep);
		return 0;
	}
	if (argc < 3) {
		fprintf(stderr, "usage: dstest ROLE DIR [ARGS]\n");
		return 2;
	}
	dir = argv[2];
	if (!strcmp(argv[1], "fig2-p1"))
		return fig2_p1();
	if (!strcmp(argv[1], "fig2-p2"))
		return fig2_p2();
	if (!strcmp(argv[1], "fig2-p3"))
		return fig2_p3();
	if ((!strcmp(argv[1], "fifo-reader") || !strcmp(argv[1], "lifo-reader") ||
	     !strcmp(argv[1], "fifo-reader-resume")) && (argc == 5 || argc == 6))
		return reader(argv[1][0] == 'f' ? DS_FIFO : DS_LIFO,
			      (unsigned)strtoul(argv[3], NULL, 10),
			      (unsigned)strtoul(argv[4], NULL, 10),
			      argc == 6 ? (unsigned)strtoul(argv[5], NULL, 10) : 0,
			      !strcmp(argv[1], "fifo-reader-resume"));
	if ((!strcmp(argv[1], "fifo-writer") || !strcmp(argv[1], "lifo-writer")) && argc == 4)
		return writer((unsigned)strtoul(argv[3], NULL, 10));
	if (!strcmp(argv[1], "relay-fixed") && argc == 5)
		return relay_fixed((unsigned)strtoul(argv[3], NULL, 10),
				   (unsigned)strtoul(argv[4], NULL, 10));
	if (!strcmp(argv[1], "relay-mover") && argc == 6)
		return relay_mover((unsigned)strtoul(argv[3], NULL, 10),
				   (unsigned)strtoul(argv[4], NULL, 10),
				   (unsigned)strtoul(argv[5], NULL, 10));
	if (!strcmp(argv[1], "errors"))
		return errors();
	if (!strcmp(argv[1], "homeless-p1") && argc == 4)
		return homeless(true, (unsigned)strtoul(argv[3], NULL, 10));
	if (!strcmp(argv[1], "homeless-p2"))
		return homeless(false, 0);
	if (!strcmp(argv[1], "fault-peer") && argc == 7)
		return fault_peer((unsigned)strtoul(argv[3], NULL, 10), argv[4],
				  (unsigned)strtoul(argv[5], NULL, 10),
				  (unsigned)strtoul(argv[6], NULL, 10));
	if (!strcmp(argv[1], "fault-held"))
		return fault_held();
	if (!strcmp(argv[1], "fault-woken") && argc == 5)
		return fault_woken((unsigned)strtoul(argv[3], NULL, 10),
				   (unsigned)strtoul(argv[4], NULL, 10));
	fprintf(stderr, "dstest: unknown role '%s'\n", argv[1]);
	return 2;
}

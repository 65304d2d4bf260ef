/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * File interface, writing side: a ring of slots shared with a forked writer
 * helper, so that filling a slot (process_vm_readv of the target's memory)
 * and write()ing the previous one to the fd run at the same time.
 *
 *   caller                                         helper (forked)
 *   fill slot k ──token {k, len}──> submit pipe ──> write(fd, slot k, len)
 *   fill slot k+1 <──── done pipe <──{k, err}────── (slot k free again)
 *
 * Invariants:
 *  1. The caller owns the slot it fills (cur) and every slot not in flight;
 *     the helper owns the inflight slots before cur, oldest first, and hands
 *     them back in submission order. inflight < RING_SLOTS between calls.
 *  2. A slot is handed over once it holds SLOT_FLUSH bytes and more data
 *     follows, or when a reservation would not fit in the rest of it; a
 *     reservation never straddles slots (SLOT_CAP >= IO_RESERVE_MAX).
 *  3. The helper starts only when a second slot is needed: an image smaller
 *     than one slot is written by the caller at io_finish(), without a fork.
 *     If the fork fails, the caller writes every slot itself.
 *  4. The helper's first error is returned with every slot after it and with
 *     the finish token, and nothing more is written; the caller keeps it
 *     (sticky). The helper never outlives the interface: io_finish() waits
 *     for its exit, io_free() kills and reaps it, both through a pidfd where
 *     the kernel has them, so a PID reused after someone else reaped the
 *     helper is never signalled.
 *  5. The caller keeps the read end of the submit pipe open, so handing a
 *     token to a dead helper never raises SIGPIPE; a dead helper shows as
 *     end of file on the done pipe.
 *
 * The reading side is reader.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/io-int.h"
#include "base/log.h"
#include "base/fileio.h"
#include "base/banned.h"

/*
 * Four slots of which 1 MiB is normally used: double buffering with slack for
 * jitter, and a working set of 4 MiB, so the helper reads back from cache
 * what process_vm_readv() just wrote. Both sides are memory-bound: at 1 GiB a
 * checkpoint to tmpfs took a median of 486 ms with 1 MiB slots against
 * 539 ms with 4 MiB ones (9 alternating runs each); a larger ring measured no
 * faster. (The engine writes page records of 1 MiB to match, see export.c.)
 */
#define RING_SLOTS 4u
#define SLOT_CAP ((size_t)IO_RESERVE_MAX)
#define SLOT_FLUSH ((size_t)1 << 20)
#define FINISH_SLOT UINT32_MAX

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

struct token {
	uint32_t slot; /* FINISH_SLOT: flush, then fsync if len != 0, then exit */
	uint32_t len;
};

struct reply {
	uint32_t slot;
	int32_t err;
};

struct file_writer {
	struct ghost_io io;
	int fd;
	unsigned flags;
	bool block_sigpipe; /* not a regular file: a reader may vanish */
	bool inline_only;   /* the helper could not start: write in the caller */

	uint8_t *ring; /* RING_SLOTS * SLOT_CAP, MAP_SHARED */
	unsigned cur;  /* slot being filled */
	size_t fill;   /* bytes in it */
	unsigned inflight;

	pid_t helper; /* -1: not running */
	int helper_fd;   /* pidfd of the helper, or -1 */
	int submit_fd;   /* write end of the submit pipe */
	int submit_keep; /* its read end, see invariant 5 */
	int done_fd;     /* read end of the done pipe, O_NONBLOCK */
};

static uint8_t *slot_ptr(const struct file_writer *w, unsigned slot)
{
	return w->ring + (size_t)slot * SLOT_CAP;
}

static int do_fsync(int fd)
{
	if (fsync(fd) < 0 && errno != EINVAL && errno != EROFS)
		return -errno;
	return 0;
}

/* --- the helper process ------------------------------------------------------ */

static void close_all_but(const int *keep, size_t n)
{
	unsigned lo = 0;

	/* keep[] is sorted; close every gap between the fds to keep. */
	for (size_t i = 0; i <= n; i++) {
		unsigned hi = i < n ? (unsigned)keep[i] : ~0u;

		if (hi > lo)
			(void)syscall(SYS_close_range, lo, hi - 1, 0);
		if (i < n)
			lo = (unsigned)keep[i] + 1;
	}
}

static void sort_fds(int *fds, size_t n)
{
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
			int t = fds[j];

			fds[j] = fds[j - 1];
			fds[j - 1] = t;
		}
}

_Noreturn static void helper_main(struct file_writer *w, int in_fd, int out_fd, pid_t parent)
{
	int keep[6] = { 0, 1, 2, w->fd, in_fd, out_fd };
	struct sigaction sa = { .sa_handler = SIG_DFL };
	int err = 0;

	/* Nothing of the caller's runs here: default signal handlers, no atexit
	 * handlers (_exit), no fd but the ones the helper needs. */
	for (int sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);
	(void)signal(SIGPIPE, SIG_IGN);
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	sort_fds(keep, ARRAY_SIZE(keep));
	close_all_but(keep, ARRAY_SIZE(keep));

	for (;;) {
		struct token t;
		struct reply rep;
		ssize_t n = read_full(in_fd, &t, sizeof(t));

		if (n != (ssize_t)sizeof(t))
			_exit(n == 0 ? 0 : 1); /* the caller went away */
		if (t.slot == FINISH_SLOT) {
			if (err == 0 && t.len)
				err = do_fsync(w->fd);
		} else if (t.slot >= RING_SLOTS || t.len > SLOT_CAP) {
			err = err ? err : -EPROTO;
		} else if (err == 0) {
			err = io_fd_write_all(w->fd, slot_ptr(w, t.slot), t.len, false, false);
		}
		rep = (struct reply){ .slot = t.slot, .err = err };
		if (write_full(out_fd, &rep, sizeof(rep)) < 0)
			_exit(1);
		if (t.slot == FINISH_SLOT)
			_exit(err ? 1 : 0);
	}
}

/*
 * Keep the helper off the CPU its caller runs on when it starts, where it
 * may run elsewhere. Left alone, the scheduler often starts a forked child on
 * its parent's CPU, and two processes that wake each other through pipes can
 * stay stacked there (wake-affine) while another CPU idles: with 2 CPUs, a
 * 1 GiB checkpoint to tmpfs took 0.5 s when they ran apart and 1.3 s when
 * they shared one. Only the helper is confined; the caller, the library
 * user's thread, keeps its own mask. Failure costs only speed.
 */
static void avoid_cpu(int cpu)
{
	cpu_set_t set;

	if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getaffinity(0, sizeof(set), &set) < 0)
		return;
	if (!CPU_ISSET(cpu, &set) || CPU_COUNT(&set) < 2)
		return;
	CPU_CLR(cpu, &set);
	(void)sched_setaffinity(0, sizeof(set), &set);
}

static int helper_start(struct file_writer *w)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 };
	pid_t parent = getpid(), pid;
	int caller_cpu;

	if (pipe2(in, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(out, O_CLOEXEC) < 0) {
		int r = -errno;

		safe_close(in[0]);
		safe_close(in[1]);
		return r;
	}
	/* Fault the part of the ring a stream of 1 MiB records uses, once, so the
	 * first lap does not pay it slot by slot. Failure only costs speed. */
	for (unsigned i = 0; i < RING_SLOTS; i++)
		(void)madvise(slot_ptr(w, i), SLOT_FLUSH + (64u << 10), MADV_POPULATE_WRITE);

	caller_cpu = sched_getcpu();
	pid = fork();
	if (pid < 0) {
		int r = -errno;

		safe_close(in[0]);
		safe_close(in[1]);
		safe_close(out[0]);
		safe_close(out[1]);
		return r;
	}
	if (pid == 0) {
		safe_close(in[1]);
		safe_close(out[0]);
		avoid_cpu(caller_cpu);
		helper_main(w, in[0], out[1], parent);
	}
	safe_close(out[1]);
	w->helper = pid;
	w->helper_fd = (int)syscall(SYS_pidfd_open, pid, 0); /* always O_CLOEXEC */
	w->submit_fd = in[1];
	w->submit_keep = in[0];
	w->done_fd = out[0];
	if (fcntl(w->done_fd, F_SETFL, O_NONBLOCK) < 0)
		return -errno; /* io_free() reaps the helper */
	return 0;
}

/* Reap the helper; its exit status says nothing the replies did not. */
static void helper_reap(struct file_writer *w, bool kill_it)
{
	if (w->helper < 0)
		return;
	w->submit_fd = safe_close(w->submit_fd);
	w->submit_keep = safe_close(w->submit_keep);
	if (w->helper_fd >= 0) {
		siginfo_t si;

		if (kill_it)
			(void)syscall(SYS_pidfd_send_signal, w->helper_fd, SIGKILL, NULL, 0);
		while (waitid((idtype_t)P_PIDFD, (id_t)w->helper_fd, &si, WEXITED) < 0 &&
		       errno == EINTR)
			;
	} else {
		if (kill_it)
			(void)kill(w->helper, SIGKILL);
		while (waitpid(w->helper, NULL, 0) < 0 && errno == EINTR)
			;
	}
	w->helper = -1;
	w->helper_fd = safe_close(w->helper_fd);
	w->done_fd = safe_close(w->done_fd);
}

/* Wait until a reply may be there. -EPIPE once the helper is known dead. */
static int wait_reply(struct file_writer *w, bool *dead)
{
	struct pollfd pfd[2] = {
		{ .fd = w->done_fd, .events = POLLIN },
		{ .fd = w->helper_fd, .events = POLLIN },
	};
	int n;

	if (*dead)
		return -EPIPE; /* exited, and its last words were read already */
	if (w->helper_fd >= 0) {
		n = poll(pfd, 2, -1);
		if (n < 0)
			return errno == EINTR ? 0 : -errno;
		/* Exited: read once more what it wrote before it went. */
		*dead = pfd[1].revents != 0;
		return 0;
	}
	/* No pidfd: wake up now and then to notice a helper that died while some
	 * other child of ours keeps the done pipe's write end open. */
	n = poll(pfd, 1, 1000);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	if (n == 0 && waitpid(w->helper, NULL, WNOHANG) == w->helper) {
		w->helper = -1;
		*dead = true;
	}
	return 0;
}

/* Take one reply off the done pipe. 1: got one; 0: none yet (only when !block). */
static int get_reply(struct file_writer *w, bool block, struct reply *ret)
{
	bool dead = false;

	for (;;) {
		ssize_t n = read(w->done_fd, ret, sizeof(*ret));
		int r;

		if (n == (ssize_t)sizeof(*ret))
			return 1;
		if (n == 0)
			return -EPIPE; /* the helper died */
		if (n > 0)
			return -EPROTO;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		if (!block)
			return 0;
		r = wait_reply(w, &dead);
		if (r < 0)
			return r;
	}
}

static int collect(struct file_writer *w, bool block)
{
	struct reply rep;
	int r = get_reply(w, block, &rep);

	if (r <= 0)
		return r;
	if (rep.slot == FINISH_SLOT || w->inflight == 0)
		return -EPROTO;
	w->inflight--;
	return rep.err < 0 ? rep.err : 1;
}

static int submit(struct file_writer *w, uint32_t slot, uint32_t len)
{
	struct token t = { .slot = slot, .len = len };

	/* 8 bytes are atomic in a pipe, and at most RING_SLOTS + 1 tokens are
	 * ever queued: this write never blocks. */
	return write_full(w->submit_fd, &t, sizeof(t));
}

/* Hand the current slot over and make the next one ours (invariant 2). */
static int next_slot(struct file_writer *w)
{
	int r;

	if (w->fill == 0)
		return 0;
	if (w->helper < 0 && !w->inline_only) {
		r = helper_start(w);
		if (r < 0) {
			log_debug_errno(r, "cannot start the file writer helper, writing inline");
			helper_reap(w, true);
			w->inline_only = true;
		}
	}
	if (w->inline_only) {
		r = io_fd_write_all(w->fd, slot_ptr(w, w->cur), w->fill, false, w->block_sigpipe);
		w->fill = 0;
		return r;
	}
	r = submit(w, w->cur, (uint32_t)w->fill);
	if (r < 0)
		return r;
	w->inflight++;
	w->cur = (w->cur + 1) % RING_SLOTS;
	w->fill = 0;
	/* Learn of errors early without waiting ... */
	while ((r = collect(w, false)) > 0)
		;
	if (r < 0)
		return r;
	/* ... and wait only when the next slot is still being written. */
	while (w->inflight >= RING_SLOTS)
		if ((r = collect(w, true)) < 0)
			return r;
	return 0;
}

static int fw_write(struct ghost_io *io, const void *data, size_t len)
{
	struct file_writer *w = container_of(io, struct file_writer, io);
	const uint8_t *p = data;

	while (len > 0) {
		size_t n;

		if (w->fill >= SLOT_FLUSH) {
			int r = next_slot(w);

			if (r < 0)
				return r;
		}
		n = MIN(len, SLOT_FLUSH - w->fill);
		memcpy(slot_ptr(w, w->cur) + w->fill, p, n);
		w->fill += n;
		p += n;
		len -= n;
	}
	return 0;
}

static int fw_reserve(struct ghost_io *io, size_t len, void **ret_ptr)
{
	struct file_writer *w = container_of(io, struct file_writer, io);

	if (w->fill >= SLOT_FLUSH || w->fill + len > SLOT_CAP) {
		int r = next_slot(w);

		if (r < 0)
			return r;
	}
	*ret_ptr = slot_ptr(w, w->cur) + w->fill;
	return 0;
}

static int fw_commit(struct ghost_io *io, size_t len)
{
	struct file_writer *w = container_of(io, struct file_writer, io);

	w->fill += len;
	return 0;
}

static int fw_finish(struct ghost_io *io)
{
	struct file_writer *w = container_of(io, struct file_writer, io);
	struct reply rep;
	int r;

	if (w->helper < 0) {
		r = io_fd_write_all(w->fd, slot_ptr(w, w->cur), w->fill, false, w->block_sigpipe);
		w->fill = 0;
		if (r >= 0 && (w->flags & IO_FILE_SYNC))
			r = do_fsync(w->fd);
		return r;
	}

	if (w->fill > 0) {
		r = submit(w, w->cur, (uint32_t)w->fill);
		if (r < 0)
			return r;
		w->inflight++;
		w->fill = 0;
	}
	r = submit(w, FINISH_SLOT, (w->flags & IO_FILE_SYNC) ? 1 : 0);
	if (r < 0)
		return r;
	while (w->inflight > 0)
		if ((r = collect(w, true)) < 0)
			return r;
	r = get_reply(w, true, &rep);
	if (r < 0)
		return r;
	if (rep.slot != FINISH_SLOT)
		return -EPROTO;
	helper_reap(w, false);
	return rep.err;
}

static void fw_free(struct ghost_io *io)
{
	struct file_writer *w = container_of(io, struct file_writer, io);

	helper_reap(w, true);
	safe_close(w->helper_fd);
	safe_close(w->submit_fd);
	safe_close(w->submit_keep);
	safe_close(w->done_fd);
	if (w->ring)
		munmap(w->ring, (size_t)RING_SLOTS * SLOT_CAP);
	free(w);
}

static const struct io_ops file_writer_ops = {
	.write = fw_write,
	.reserve = fw_reserve,
	.commit = fw_commit,
	.finish = fw_finish,
	.free = fw_free,
};

static int file_writer_new(int fd, enum io_file_flags flags, struct ghost_io **ret)
{
	struct file_writer *w;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	io_init(&w->io, &file_writer_ops, IO_WRITE);
	w->fd = fd;
	w->flags = flags;
	w->block_sigpipe = !S_ISREG(st.st_mode);
	w->helper = -1;
	w->helper_fd = w->submit_fd = w->submit_keep = w->done_fd = -1;
	/* Only virtual space until touched: a small image faults one slot's worth. */
	w->ring = io_map_anon((size_t)RING_SLOTS * SLOT_CAP, true);
	if (!w->ring) {
		free(w);
		return -ENOMEM;
	}
	*ret = &w->io;
	return 0;
}

int io_file_new(int fd, enum io_mode mode, enum io_file_flags flags, struct ghost_io **ret)
{
	if (fd < 0 || !ret || (flags & ~IO_FILE_SYNC))
		return -EINVAL;
	if (mode == IO_WRITE)
		return file_writer_new(fd, flags, ret);
	if (mode == IO_READ)
		return io_fd_reader_new(fd, false, ret);
	return -EINVAL;
}

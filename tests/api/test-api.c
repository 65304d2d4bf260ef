/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The engine through its library API, inside one test process: checkpoint to
 * memory and restart from memory; a snapshot that leaves the original running;
 * export into one end of a socketpair while a process in another PID namespace
 * (as on another node) imports from the other end as the bytes arrive; a
 * process made to run another program in its place; a process held while it
 * is blocked in a system call (or stopped) whose descriptor is swapped for
 * another one under it; an export that leaves some descriptors to its caller
 * (carried), and an import that puts placeholders at their numbers; epoll
 * instances through a checkpoint and restart, a registration that cannot be
 * carried, a swap under an epoll_wait(), and a carried fd an instance watches;
 * a process that becomes the image's process (keeping its PID, parent and
 * children), and the failures that leave it as it was.
 *
 * The target also holds a sparse mapping of runs of several sizes: the
 * importer allocates memory ahead of the page data (from the runs the image
 * announces), and the target checks that no page it never touched became
 * resident on the way.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdbool.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "ghost/ghost.h"
#include "image/image.h"
#include "io/io.h"

#define PATTERN_BYTES (8u << 20)
#define MIB (1u << 20)
#define SPARSE_BYTES (96u * MIB)

/* Touched runs of the sparse mapping, [start, end) in bytes: across a chunk
 * boundary, a single page, a long run, a run too small to allocate ahead. */
static const struct {
	size_t start, end;
} sparse_runs[] = {
	{ 0, 20 * MIB },
	{ 24 * MIB + 4096, 24 * MIB + 8192 },
	{ 30 * MIB, 70 * MIB },
	{ 80 * MIB, 80 * MIB + 512 * 1024 },
};

static volatile sig_atomic_t go;

static void on_usr1(int sig)
{
	(void)sig;
	go = 1;
}

static uint64_t pattern_at(size_t i)
{
	return (uint64_t)i * 0x9e3779b97f4a7c15ull ^ 0xdeadbeefull;
}

static bool in_sparse_run(size_t off)
{
	for (size_t k = 0; k < sizeof(sparse_runs) / sizeof(sparse_runs[0]); k++)
		if (off >= sparse_runs[k].start && off < sparse_runs[k].end)
			return true;
	return false;
}

/* 0 when the runs hold their pattern and every other page is not resident
 * (checked first: reading it would map the zero page) and reads as zeros. */
static int check_sparse(uint8_t *sparse)
{
	static unsigned char vec[SPARSE_BYTES / 4096];

	if (mincore(sparse, SPARSE_BYTES, vec) < 0)
		return 5;
	for (size_t pg = 0; pg < SPARSE_BYTES / 4096; pg++)
		if (!in_sparse_run(pg * 4096) && (vec[pg] & 1))
			return 6;
	for (size_t o = 0; o < SPARSE_BYTES; o += 8) {
		uint64_t want = in_sparse_run(o) ? pattern_at(o) : 0;

		if (*(uint64_t *)(void *)(sparse + o) != want)
			return 7;
	}
	return 0;
}

/* The process that gets checkpointed: memory with a pattern, a handler, a wait. */
static __attribute__((noreturn)) void target_main(int ready_fd)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	uint8_t *sparse;
	uint64_t *mem;
	int devnull;
	char c = 'r';

	sigaction(SIGUSR1, &sa, NULL);
	mem = mmap(NULL, PATTERN_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		_exit(3);
	for (size_t i = 0; i < PATTERN_BYTES / 8; i++)
		mem[i] = pattern_at(i);
	sparse = mmap(NULL, SPARSE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		      0);
	/* Huge pages would make neighbours of touched pages resident. */
	if (sparse == MAP_FAILED || madvise(sparse, SPARSE_BYTES, MADV_NOHUGEPAGE) < 0)
		_exit(3);
	for (size_t k = 0; k < sizeof(sparse_runs) / sizeof(sparse_runs[0]); k++)
		for (size_t o = sparse_runs[k].start; o < sparse_runs[k].end; o += 8)
			*(uint64_t *)(void *)(sparse + o) = pattern_at(o);
	devnull = open("/dev/null", O_RDWR);
	dup2(devnull, 0);
	dup2(devnull, 1);
	dup2(devnull, 2);
	/* Tell the test we are ready, then hold no fd but stdio. */
	if (write(ready_fd, &c, 1) != 1)
		_exit(4);
	syscall(SYS_close_range, 3, ~0u, 0);
	while (!go)
		pause();
	for (size_t i = 0; i < PATTERN_BYTES / 8; i++)
		if (mem[i] != pattern_at(i))
			_exit(1);
	_exit(check_sparse(sparse));
}

#define NOBODY 65534

/* This process's user and group become uid's (nobody's group for nobody).
 * The change leaves it not dumpable: one to become another, the engine
 * must make it traceable by its helper. */
static bool take_uid(uid_t uid)
{
	gid_t gid = uid == NOBODY ? NOBODY : uid;

	return setgroups(0, NULL) == 0 && setresgid(gid, gid, gid) == 0 &&
	       setresuid(uid, uid, uid) == 0;
}

/* target_main() in a child running as uid (0: as we do). */
static pid_t start_target_as(uid_t uid)
{
	int p[2];
	pid_t pid;
	char c;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		if (uid && !take_uid(uid))
			_exit(5);
		target_main(p[1]);
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	/* Let it close its fds and reach pause(). */
	for (int i = 0; i < 200; i++) {
		char path[64], buf[8] = "";
		int n = 0;
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/fd/3", pid);
		if (access(path, F_OK) != 0) {
			snprintf(path, sizeof(path), "/proc/%d/wchan", pid);
			f = fopen(path, "r");
			if (f) {
				n = fscanf(f, "%7s", buf);
				fclose(f);
			}
			if (n == 1 && strcmp(buf, "0") != 0)
				break;
		}
		usleep(5000);
	}
	return pid;
}

static pid_t start_target(void)
{
	return start_target_as(0);
}

static int finish_and_status(pid_t pid)
{
	int st;

	assert_int_equal(kill(pid, SIGUSR1), 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A ghost on the memory interface: to export into buf (write), or to import
 * from it. */
static struct ghost *memory_ghost(struct ghost_buffer *buf, bool write)
{
	struct ghost *g = NULL;

	assert_int_equal(ghost_new(&g), 0);
	assert_int_equal(ghost_plug(g, write ? GHOST_MEMORY_WRITE : GHOST_MEMORY_READ), 0);
	assert_int_equal(ghost_associate_buffer(g, buf), 0);
	return g;
}

/* Export pid into buf; it must work. */
static void export_into(struct ghost_buffer *buf, pid_t pid, const struct ghost_export_opts *eo)
{
	struct ghost *g = memory_ghost(buf, true);

	if (ghost_export(g, pid, eo) < 0)
		fail_msg("export: %s", ghost_errmsg(g));
	ghost_free(g);
}

/* Import from buf; it must work. The new process's PID. */
static pid_t import_from(struct ghost_buffer *buf, const struct ghost_import_opts *io)
{
	struct ghost *g = memory_ghost(buf, false);
	pid_t pid = 0;

	if (ghost_import(g, io, &pid) < 0)
		fail_msg("import: %s", ghost_errmsg(g));
	ghost_free(g);
	return pid;
}

static const struct ghost_import_opts import_opts = {
	.caller_uid = 0,
	.caller_gid = 0,
	.stdio = { -1, -1, -1 },
};

static void test_memory_checkpoint_restart(void **state)
{
	struct ghost_export_opts eo = { .flags = GHOST_EXPORT_KILL };
	struct ghost_buffer *buf = NULL;
	struct ghost *g = NULL;
	pid_t pid = start_target(), restored = 0;
	int st;

	(void)state;
	assert_int_equal(ghost_buffer_new(0, &buf), 0);
	g = memory_ghost(buf, true);
	if (ghost_export(g, pid, &eo) < 0)
		fail_msg("export: %s", ghost_errmsg(g));
	assert_true(ghost_get_stats(g)->pages >= PATTERN_BYTES / 4096);
	g = ghost_free(g);
	/* The original was killed after the export, and reaped by the engine,
	 * which as its tracer collected its end. */
	assert_int_equal(waitpid(pid, &st, 0), -1);
	assert_int_equal(errno, ECHILD);
	assert_true(ghost_buffer_size(buf) > PATTERN_BYTES);

	restored = import_from(buf, &import_opts);
	assert_int_equal(restored, pid);
	assert_int_equal(finish_and_status(restored), 0);
	ghost_buffer_unref(buf);
}

/*
 * Copy the image in src to dst, each record as it was (checksums made anew),
 * except that the first PAGES record into private anonymous memory is written
 * twice. Returns the address of the page data given twice.
 */
static uint64_t image_with_pages_twice(struct ghost_buffer *src, struct ghost_buffer *dst)
{
	struct ghost_io *in = NULL, *out = NULL;
	struct img_reader *rd = NULL;
	struct img_writer *w = NULL;
	struct img_vma anon[64];
	size_t n_anon = 0;
	uint64_t twice = 0;
	struct img_record rec;
	int r;

	assert_int_equal(io_memory_new(src, IO_READ, &in), 0);
	assert_int_equal(io_memory_new(dst, IO_WRITE, &out), 0);
	assert_int_equal(img_reader_new(in, 0, &rd), 0);
	assert_int_equal(img_writer_new(out, &w), 0);
	while ((r = img_read_record(rd, &rec)) > 0) {
		if (rec.type == IMG_REC_VMA) {
			const struct img_vma *v = rec.payload;

			if (v->kind == IMG_VMA_ANON && !(v->flags & IMG_VMAF_HUGEPAGE) &&
			    n_anon < ARRAY_SIZE(anon))
				memcpy(&anon[n_anon++], v, sizeof(*v));
		}
		if (rec.type == IMG_REC_PAGES) {
			const struct img_pages *pg = rec.payload;
			int copies = 1;
			void *data;

			for (size_t i = 0; i < n_anon && !twice; i++)
				if (pg->vaddr >= anon[i].start && pg->vaddr < anon[i].end) {
					twice = pg->vaddr;
					copies = 2;
				}
			while (copies-- > 0) {
				assert_int_equal(img_write_pages_begin(w, pg->vaddr, pg->npages, &data), 0);
				memcpy(data, pg + 1, (size_t)pg->npages * 4096);
				assert_int_equal(img_write_pages_commit(w), 0);
			}
			continue;
		}
		assert_int_equal(img_write_record_flags(w, rec.type, rec.flags, rec.payload, rec.len,
							NULL, 0),
				 0);
	}
	assert_int_equal(r, 0);
	assert_int_equal(img_writer_finish(w), 0);
	img_writer_free(w);
	img_reader_free(rd);
	io_free(in);
	io_free(out);
	assert_true(twice != 0);
	return twice;
}

/* Page data given twice for one page (every checksum sound) is refused by
 * name, and nothing is left running: a page is copied into the new process
 * once, as it is allocated. */
static void test_import_refuses_pages_given_twice(void **state)
{
	struct ghost_export_opts eo = { .flags = GHOST_EXPORT_KILL };
	struct ghost_buffer *buf = NULL, *bad = NULL;
	struct ghost *g = NULL;
	pid_t pid = start_target(), restored = 0;

	(void)state;
	assert_int_equal(ghost_buffer_new(0, &buf), 0);
	assert_int_equal(ghost_buffer_new(0, &bad), 0);
	export_into(buf, pid, &eo);
	image_with_pages_twice(buf, bad);

	g = memory_ghost(bad, false);
	assert_int_equal(ghost_import(g, &import_opts, &restored), GHOST_ECORRUPT);
	assert_non_null(strstr(ghost_errmsg(g), "page data given twice"));
	assert_int_equal(restored, 0);
	assert_int_equal(kill(pid, 0), -1);
	assert_int_equal(errno, ESRCH);
	g = ghost_free(g);

	/* the untouched image still restores */
	restored = import_from(buf, &import_opts);
	assert_int_equal(finish_and_status(restored), 0);
	ghost_buffer_unref(buf);
	ghost_buffer_unref(bad);
}

static void test_snapshot_leaves_original_running(void **state)
{
	struct ghost_buffer *buf = NULL;
	pid_t pid = start_target(), restored = 0;

	(void)state;
	assert_int_equal(ghost_buffer_new(0, &buf), 0);
	export_into(buf, pid, NULL);
	/* The original runs on, intact, and is not traced any more. */
	assert_int_equal(finish_and_status(pid), 0);

	restored = import_from(buf, &import_opts);
	assert_int_equal(restored, pid);
	assert_int_equal(finish_and_status(restored), 0);
	ghost_buffer_unref(buf);
}

/* Runs as PID 1 of a new PID namespace with its own /proc: imports from fd,
 * signals the new process and returns its exit status. */
static int importer_ns_init(int fd)
{
	struct ghost *g = NULL;
	pid_t pid = 0;
	int st, r;

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return 10;
	if (ghost_new(&g) < 0 || ghost_plug(g, GHOST_NET_RECV) < 0 ||
	    ghost_associate_socket(g, fd) < 0)
		return 11;
	r = ghost_import(g, &import_opts, &pid);
	if (r < 0) {
		fprintf(stderr, "import: %s\n", ghost_errmsg(g));
		return 12;
	}
	ghost_free(g);
	kill(pid, SIGUSR1);
	if (waitpid(pid, &st, 0) != pid)
		return 13;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 14;
}

static void test_socket_streaming_into_other_pid_namespace(void **state)
{
	struct ghost_export_opts eo = { .flags = GHOST_EXPORT_KILL };
	struct ghost *g = NULL;
	pid_t pid = start_target(), importer;
	int sv[2], st;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	importer = fork();
	assert_true(importer >= 0);
	if (importer == 0) {
		pid_t init;

		close(sv[0]);
		if (unshare(CLONE_NEWPID | CLONE_NEWNS) < 0)
			_exit(20);
		init = fork();
		if (init == 0)
			_exit(importer_ns_init(sv[1]));
		if (init < 0 || waitpid(init, &st, 0) != init)
			_exit(21);
		_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 22);
	}
	close(sv[1]);
	/* The importer builds the process while these bytes still arrive. */
	assert_int_equal(ghost_new(&g), 0);
	assert_int_equal(ghost_plug(g, GHOST_NET_SEND), 0);
	assert_int_equal(ghost_associate_socket(g, sv[0]), 0);
	if (ghost_export(g, pid, &eo) < 0)
		fail_msg("export: %s", ghost_errmsg(g));
	ghost_free(g);
	close(sv[0]);
	assert_int_equal(waitpid(importer, &st, 0), importer);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_bad_arguments(void **state)
{
	struct ghost *g = NULL;
	pid_t pid;

	(void)state;
	assert_int_equal(ghost_new(NULL), -EINVAL);
	assert_int_equal(ghost_new(&g), 0);
	assert_int_equal(ghost_plug(g, (enum ghost_access)99), -EINVAL);
	/* Export with nothing plugged in, import into a write interface. */
	assert_true(ghost_export(g, getppid(), NULL) < 0);
	assert_int_equal(ghost_plug(g, GHOST_FILE_WRITE), 0);
	assert_int_equal(ghost_associate_socket(g, 0), -EINVAL);
	assert_true(ghost_import(g, &import_opts, &pid) < 0);
	assert_true(strlen(ghost_errmsg(g)) > 0);
	ghost_free(g);
}

/* A child that loops until killed; stopped (SIGSTOP) if asked. */
static pid_t start_looper(bool stop)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		for (;;)
			pause();
	}
	if (stop) {
		assert_int_equal(kill(pid, SIGSTOP), 0);
		assert_int_equal(waitpid(pid, &st, WUNTRACED), pid);
		assert_true(WIFSTOPPED(st));
	}
	return pid;
}

static void test_replace_program(void **state)
{
	const char *argv[] = { "sh", "-c", "exit 7", NULL };
	const char *bad[] = { "nothing", NULL };
	char why[256];
	int st;

	(void)state;
	/* A running process and a stopped one both become `sh -c 'exit 7'`,
	 * keeping their PID and parent: our waitpid() gets the 7. */
	for (int stop = 0; stop < 2; stop++) {
		pid_t pid = start_looper(stop);

		assert_int_equal(ghost_replace_program(pid, "/bin/sh", argv, why, sizeof(why)), 0);
		if (stop)
			assert_int_equal(kill(pid, SIGCONT), 0);
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 7);
	}
	/* A program that does not exist: an error, and the process as it was. */
	{
		pid_t pid = start_looper(false);

		assert_int_equal(ghost_replace_program(pid, "/nonexistent/program", bad, why,
						       sizeof(why)),
				 -ENOENT);
		assert_non_null(strstr(why, "/nonexistent/program"));
		assert_int_equal(waitpid(pid, &st, WNOHANG), 0);
		assert_int_equal(kill(pid, SIGTERM), 0);
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFSIGNALED(st));
		assert_int_equal(WTERMSIG(st), SIGTERM);
	}
	assert_int_equal(ghost_replace_program(0, "/bin/sh", argv, why, sizeof(why)), -EINVAL);
}

/* --- holding a process and swapping its descriptors ----------------------------- */

#define STREAM_FD 20 /* what the holder blocks on */
#define REPORT_FD 21 /* where it writes what it got */

enum blocker { BLOCK_READ, BLOCK_POLL, BLOCK_POLL_TIMEOUT, BLOCK_SELECT, BLOCK_NANOSLEEP };

struct holder {
	enum blocker how;
	bool nobody;   /* runs as uid/gid 65534 */
	bool nonblock; /* its stream fd is O_NONBLOCK (it polls first) */
	bool cloexec;  /* its stream fd has FD_CLOEXEC */
	bool stopped;  /* SIGSTOPped before the hold */
	bool signal;   /* gets a SIGUSR1 (SA_RESTART handler) while held */
	bool sigstop;  /* gets a SIGSTOP while held */
	bool report_flags; /* its report fd is O_NONBLOCK and FD_CLOEXEC */
	bool altstack; /* blocks in a signal handler on a MAP_SHARED alternate stack */
	bool prefill;  /* the new stream has its bytes before the install (drained
			* bytes), else they come after the release */
	bool socket;   /* the new stream is a socketpair, not a pipe */
};

static volatile sig_atomic_t usr1_count;

static void count_usr1(int sig)
{
	(void)sig;
	usr1_count++;
}

#define NAP_NS 300000000ll

static long long mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* Blocks as told on STREAM_FD, then writes "SIGUSR1 count:what it read" on
 * REPORT_FD (for a nap: "count:slept" if it slept its whole time). */
static __attribute__((noreturn)) void holder_block(const struct holder *o);

static const struct holder *altstack_holder;

static void block_on_altstack(int sig)
{
	(void)sig;
	holder_block(altstack_holder);
}

static __attribute__((noreturn)) void holder_main(const struct holder *o)
{
	struct sigaction sa = { .sa_handler = count_usr1, .sa_flags = SA_RESTART };

	sigaction(SIGUSR1, &sa, NULL);
	if (o->nobody &&
	    (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0))
		_exit(30);
	if (o->altstack) {
		/* Blocked in a handler running on a shared alternate stack: no
		 * scratch bytes below its stack pointer for the engine. */
		size_t size = 256 << 10;
		stack_t ss = { .ss_size = size };
		struct sigaction alt = { .sa_handler = block_on_altstack, .sa_flags = SA_ONSTACK };

		ss.ss_sp = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (ss.ss_sp == MAP_FAILED || sigaltstack(&ss, NULL) < 0 ||
		    sigaction(SIGUSR2, &alt, NULL) < 0)
			_exit(36);
		altstack_holder = o;
		raise(SIGUSR2);
		_exit(37);
	}
	holder_block(o);
}

static __attribute__((noreturn)) void holder_block(const struct holder *o)
{
	char buf[64], out[128];
	ssize_t n = -1;
	int len;

	switch (o->how) {
	case BLOCK_READ:
		n = read(STREAM_FD, buf, sizeof(buf));
		break;
	case BLOCK_POLL:
	case BLOCK_POLL_TIMEOUT: {
		struct pollfd p = { .fd = STREAM_FD, .events = POLLIN };

		if (poll(&p, 1, o->how == BLOCK_POLL ? -1 : 60000) != 1)
			_exit(31);
		n = read(STREAM_FD, buf, sizeof(buf));
		break;
	}
	case BLOCK_SELECT: {
		fd_set rd;

		FD_ZERO(&rd);
		FD_SET(STREAM_FD, &rd);
		if (select(STREAM_FD + 1, &rd, NULL, NULL, NULL) != 1)
			_exit(32);
		n = read(STREAM_FD, buf, sizeof(buf));
		break;
	}
	case BLOCK_NANOSLEEP: {
		struct timespec ts = { 0, NAP_NS };
		long long t0 = mono_ns();

		if (nanosleep(&ts, NULL) == 0 && mono_ns() - t0 >= NAP_NS)
			n = snprintf(buf, sizeof(buf), "slept");
		break;
	}
	}
	if (n < 0)
		_exit(33);
	len = snprintf(out, sizeof(out), "%d:%.*s", (int)usr1_count, (int)n, buf);
	if (write(REPORT_FD, out, (size_t)len) != len)
		_exit(34);
	_exit(0);
}

/* The system calls a holder blocks in, as /proc/PID/syscall shows them. */
static bool blocked_in(enum blocker how, long nr)
{
	switch (how) {
	case BLOCK_READ:
		return nr == SYS_read;
	case BLOCK_POLL:
	case BLOCK_POLL_TIMEOUT:
		return nr == SYS_poll || nr == SYS_ppoll;
	case BLOCK_SELECT:
		return nr == SYS_select || nr == SYS_pselect6;
	case BLOCK_NANOSLEEP:
		return nr == SYS_nanosleep || nr == SYS_clock_nanosleep;
	}
	return false;
}

static void wait_blocked_nr(pid_t pid, long want)
{
	for (int i = 0; i < 400; i++) {
		char path[64], buf[128] = "";
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/syscall", pid);
		f = fopen(path, "r");
		if (f) {
			bool ok = fgets(buf, sizeof(buf), f) && buf[0] >= '0' && buf[0] <= '9' &&
				  strtol(buf, NULL, 10) == want;

			fclose(f);
			if (ok)
				return;
		}
		usleep(5000);
	}
	fail_msg("process %d did not block in system call %ld", pid, want);
}

static void wait_blocked(pid_t pid, enum blocker how)
{
	for (int i = 0; i < 400; i++) {
		char path[64], buf[128] = "";
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/syscall", pid);
		f = fopen(path, "r");
		if (f) {
			bool ok = fgets(buf, sizeof(buf), f) && buf[0] >= '0' && buf[0] <= '9' &&
				  blocked_in(how, strtol(buf, NULL, 10));

			fclose(f);
			if (ok)
				return;
		}
		usleep(5000);
	}
	fail_msg("process %d did not block", pid);
}

static char proc_state(pid_t pid)
{
	struct proc_stat_line {
		char text[512];
	} l = { "" };
	char path[64], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return '?';
	if (!fgets(l.text, sizeof(l.text), f))
		l.text[0] = '\0';
	fclose(f);
	p = strrchr(l.text, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

static void wait_state(pid_t pid, char want)
{
	for (int i = 0; i < 400 && proc_state(pid) != want; i++)
		usleep(5000);
	assert_int_equal(proc_state(pid), want);
}

/* The flags line of /proc/PID/fdinfo/FD (O_CLOEXEC stands for FD_CLOEXEC). */
static unsigned fdinfo_flags(pid_t pid, int fd)
{
	char path[64], buf[512] = "";
	unsigned flags = ~0u;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(buf, sizeof(buf), f))
		if (sscanf(buf, "flags: %o", &flags) == 1)
			break;
	fclose(f);
	return flags;
}

static ino_t fd_ino(pid_t pid, int fd)
{
	char path[64];
	struct stat sb;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
	if (stat(path, &sb) < 0)
		return 0;
	return sb.st_ino;
}

/* The fds of pid, as a bit set of the first 64 numbers. */
static uint64_t fd_set_of(pid_t pid)
{
	uint64_t set = 0;

	for (int fd = 0; fd < 64; fd++) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
		if (access(path, F_OK) == 0)
			set |= 1ull << fd;
	}
	return set;
}

/* What the holder wrote on the report pipe (waits up to 5 s), NUL-terminated. */
static void read_report(int fd, char *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	assert_int_equal(poll(&p, 1, 5000), 1);
	n = read(fd, buf, len - 1);
	assert_true(n > 0);
	buf[n] = '\0';
}

struct holder_run {
	pid_t pid;
	int stream_wr; /* the write end of the pipe its STREAM_FD reads */
	int report_rd;
};

/* Fork a holder with its stream and report pipes at STREAM_FD and REPORT_FD,
 * and wait until it is blocked (and stopped, if asked). */
static struct holder_run start_holder(const struct holder *o)
{
	struct holder_run h;
	int a[2], rep[2], st;

	assert_int_equal(pipe2(a, O_CLOEXEC), 0);
	assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
	if (o->nonblock)
		assert_int_equal(fcntl(a[0], F_SETFL, O_NONBLOCK), 0);
	h.pid = fork();
	assert_true(h.pid >= 0);
	if (h.pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		if (dup2(a[0], STREAM_FD) < 0 || dup2(rep[1], REPORT_FD) < 0 || devnull < 0 ||
		    dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(devnull, 2) < 0)
			_exit(35);
		syscall(SYS_close_range, 3, STREAM_FD - 1, 0);
		syscall(SYS_close_range, REPORT_FD + 1, ~0u, 0);
		if (o->cloexec)
			fcntl(STREAM_FD, F_SETFD, FD_CLOEXEC);
		if (o->report_flags)
			fcntl(REPORT_FD, F_SETFL, O_NONBLOCK);
		if (o->report_flags)
			fcntl(REPORT_FD, F_SETFD, FD_CLOEXEC);
		holder_main(o);
	}
	close(a[0]);
	close(rep[1]);
	h.stream_wr = a[1];
	h.report_rd = rep[0];
	wait_blocked(h.pid, o->how);
	if (o->stopped) {
		assert_int_equal(kill(h.pid, SIGSTOP), 0);
		assert_int_equal(waitpid(h.pid, &st, WUNTRACED), h.pid);
		assert_true(WIFSTOPPED(st));
	}
	return h;
}

static int exit_status(pid_t pid)
{
	int st;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Hold a blocked holder, swap its STREAM_FD for a new pipe with bytes in it,
 * let it go and check it read those bytes, on the new fd with its flags. */
static void swap_stream(const struct holder *o, const char *what)
{
	struct holder_run run = start_holder(o);
	struct ghost_hold *h = NULL;
	int old = -1, fd_flags = -1, status = -1, b[2];
	uint64_t fds_before = fd_set_of(run.pid);
	struct stat sa, sb;
	long long t[5];
	char why[256], report[128], want[64];
	ino_t new_ino;
	unsigned fl;

	if (o->socket)
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
	else
		assert_int_equal(pipe2(b, O_CLOEXEC), 0);
	if (o->prefill)
		assert_int_equal(write(b[1], "BBBB", 4), 4);

	t[0] = mono_ns();
	if (ghost_hold_new(run.pid, &h, why, sizeof(why)) < 0)
		fail_msg("hold: %s", why);
	t[1] = mono_ns();
	if (ghost_hold_take(h, STREAM_FD, &old, &fd_flags, &status, why, sizeof(why)) < 0)
		fail_msg("take: %s", why);
	t[2] = mono_ns();
	assert_int_equal(fcntl(b[0], F_SETFL, status), 0);
	if (ghost_hold_install(h, STREAM_FD, b[0], fd_flags, why, sizeof(why)) < 0)
		fail_msg("install: %s", why);
	t[3] = mono_ns();
	/* Installed while held: the new pipe at the same number, same flags. */
	assert_int_equal(fstat(b[0], &sb), 0);
	new_ino = sb.st_ino;
	assert_true(fd_ino(run.pid, STREAM_FD) == new_ino);
	fl = fdinfo_flags(run.pid, STREAM_FD);
	assert_int_equal(!!(fl & O_CLOEXEC), o->cloexec);
	assert_int_equal(!!(fl & O_NONBLOCK), o->nonblock);
	if (o->signal)
		assert_int_equal(kill(run.pid, SIGUSR1), 0);
	if (o->sigstop)
		assert_int_equal(kill(run.pid, SIGSTOP), 0);
	h = ghost_hold_release(h);
	t[4] = mono_ns();
	/* A diagnostic, not a test: the whole swap, then each step. */
	printf("# %s: hold + take + install + release took %lld us (%lld + %lld + %lld + %lld)\n",
	       what, (t[4] - t[0]) / 1000, (t[1] - t[0]) / 1000, (t[2] - t[1]) / 1000,
	       (t[3] - t[2]) / 1000, (t[4] - t[3]) / 1000);
	assert_null(h);

	/* What take said: the old pipe's read end, with its flags. */
	assert_int_equal(fd_flags, o->cloexec ? FD_CLOEXEC : 0);
	assert_int_equal(status & O_ACCMODE, O_RDONLY);
	assert_int_equal(!!(status & O_NONBLOCK), o->nonblock);
	assert_int_equal(fstat(old, &sa), 0);
	assert_int_equal(fstat(run.stream_wr, &sb), 0);
	assert_true(sa.st_ino == sb.st_ino);
	/* Let go, it has what we installed and no other fd came or went (a
	 * prefilled holder may be gone already). */
	if (!o->prefill) {
		assert_true(fd_ino(run.pid, STREAM_FD) == new_ino);
		assert_int_equal(fd_set_of(run.pid), fds_before);
	}
	/* Bytes in the old pipe never reach it; then the new one gets some. */
	assert_int_equal(write(run.stream_wr, "AAAA", 4), 4);
	usleep(20000);
	if (!o->prefill)
		assert_int_equal(write(b[1], "BBBB", 4), 4);
	if (o->stopped || o->sigstop) {
		struct pollfd p = { .fd = run.report_rd, .events = POLLIN };

		wait_state(run.pid, 'T');
		assert_int_equal(poll(&p, 1, 100), 0);
		assert_int_equal(proc_state(run.pid), 'T');
		assert_int_equal(kill(run.pid, SIGCONT), 0);
	}
	read_report(run.report_rd, report, sizeof(report));
	snprintf(want, sizeof(want), "%d:%s", o->signal ? 1 : 0,
		 o->how == BLOCK_NANOSLEEP ? "slept" : "BBBB");
	assert_string_equal(report, want);
	assert_int_equal(exit_status(run.pid), 0);
	close(old);
	close(b[0]);
	close(b[1]);
	close(run.stream_wr);
	close(run.report_rd);
}

static void test_hold_swap_blocked_read(void **state)
{
	(void)state;
	swap_stream(&(struct holder){ .how = BLOCK_READ }, "read");
	swap_stream(&(struct holder){ .how = BLOCK_READ, .prefill = true }, "read, bytes first");
	swap_stream(&(struct holder){ .how = BLOCK_READ, .socket = true }, "read, a socket now");
	swap_stream(&(struct holder){ .how = BLOCK_READ, .cloexec = true }, "read, FD_CLOEXEC");
	swap_stream(&(struct holder){ .how = BLOCK_POLL, .nonblock = true, .cloexec = true },
		    "poll, O_NONBLOCK");
}

static void test_hold_swap_poll_select_nanosleep(void **state)
{
	(void)state;
	swap_stream(&(struct holder){ .how = BLOCK_POLL }, "poll");
	swap_stream(&(struct holder){ .how = BLOCK_POLL_TIMEOUT }, "poll with a timeout");
	swap_stream(&(struct holder){ .how = BLOCK_SELECT }, "select");
	swap_stream(&(struct holder){ .how = BLOCK_NANOSLEEP }, "nanosleep");
}

/* A write blocked on a full pipe goes to the new one. */
static void test_hold_swap_blocked_write(void **state)
{
	struct ghost_hold *h = NULL;
	int a[2], b[2], rep[2], old = -1, fd_flags = -1, status = -1, queued = 0;
	char why[256], buf[64];
	pid_t pid;

	(void)state;
	assert_int_equal(pipe2(a, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
	while (write(a[1], "x", 1) == 1)
		;
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(fcntl(a[1], F_SETFL, 0), 0);
	assert_int_equal(ioctl(a[0], FIONREAD, &queued), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (dup2(a[1], STREAM_FD) < 0 || dup2(rep[1], REPORT_FD) < 0)
			_exit(2);
		syscall(SYS_close_range, 3, STREAM_FD - 1, 0);
		syscall(SYS_close_range, REPORT_FD + 1, ~0u, 0);
		if (write(STREAM_FD, "W", 1) != 1)
			_exit(3);
		_exit(write(REPORT_FD, "wrote", 5) == 5 ? 0 : 4);
	}
	close(a[1]);
	close(rep[1]);
	wait_blocked_nr(pid, SYS_write);
	assert_int_equal(pipe2(b, O_CLOEXEC), 0);
	if (ghost_hold_new(pid, &h, why, sizeof(why)) < 0 ||
	    ghost_hold_take(h, STREAM_FD, &old, &fd_flags, &status, why, sizeof(why)) < 0)
		fail_msg("hold: %s", why);
	assert_int_equal(status & O_ACCMODE, O_WRONLY);
	assert_int_equal(fcntl(b[1], F_SETFL, status), 0);
	if (ghost_hold_install(h, STREAM_FD, b[1], fd_flags, why, sizeof(why)) < 0)
		fail_msg("install: %s", why);
	ghost_hold_release(h);
	close(b[1]);
	read_report(rep[0], buf, sizeof(buf));
	assert_string_equal(buf, "wrote");
	assert_int_equal(read(b[0], buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], 'W');
	/* Nothing more went into the old pipe. */
	{
		int now = 0;

		assert_int_equal(ioctl(a[0], FIONREAD, &now), 0);
		assert_int_equal(now, queued);
	}
	assert_int_equal(exit_status(pid), 0);
	close(old);
	close(a[0]);
	close(b[0]);
	close(rep[0]);
}

static void test_hold_swap_stopped(void **state)
{
	(void)state;
	swap_stream(&(struct holder){ .how = BLOCK_READ, .stopped = true }, "stopped");
	swap_stream(&(struct holder){ .how = BLOCK_POLL, .stopped = true }, "stopped in poll");
}

static void test_hold_swap_unprivileged(void **state)
{
	(void)state;
	swap_stream(&(struct holder){ .how = BLOCK_READ, .nobody = true }, "uid 65534");
	swap_stream(&(struct holder){ .how = BLOCK_POLL, .nobody = true, .prefill = true },
		    "uid 65534, bytes first");
}

static void test_hold_swap_in_handler_on_shared_altstack(void **state)
{
	(void)state;
	swap_stream(&(struct holder){ .how = BLOCK_READ, .altstack = true }, "read in a handler");
}

/* A process busy in its own code (no system call to restart): held, given
 * an fd, it runs on and finds it. */
static void test_hold_running_process(void **state)
{
	struct ghost_hold *h = NULL;
	int rep[2], b[2], st;
	char why[256], buf[8];
	pid_t pid;

	(void)state;
	assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
	assert_int_equal(pipe2(b, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (dup2(rep[1], 30) < 0)
			_exit(2);
		syscall(SYS_close_range, 3, 29, 0);
		syscall(SYS_close_range, 31, ~0u, 0);
		/* Mostly in user space: looks for fd 9 once every 2^22 turns. */
		for (volatile uint64_t i = 0;; i++)
			if ((i & 0x3fffff) == 0 && fcntl(9, F_GETFD) >= 0)
				break;
		_exit(write(30, "9", 1) == 1 ? 0 : 1);
	}
	close(rep[1]);
	usleep(50000);
	assert_int_equal(proc_state(pid), 'R');
	if (ghost_hold_new(pid, &h, why, sizeof(why)) < 0 ||
	    ghost_hold_install(h, 9, b[1], 0, why, sizeof(why)) < 0)
		fail_msg("hold: %s", why);
	ghost_hold_release(h);
	{
		struct pollfd p = { .fd = rep[0], .events = POLLIN };

		assert_int_equal(poll(&p, 1, 10000), 1);
	}
	assert_int_equal(read(rep[0], buf, sizeof(buf)), 1);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	close(rep[0]);
	close(b[0]);
	close(b[1]);
}

static void test_hold_signals_while_held(void **state)
{
	(void)state;
	swap_stream(&(struct holder){ .how = BLOCK_READ, .signal = true }, "SIGUSR1 while held");
	swap_stream(&(struct holder){ .how = BLOCK_READ, .sigstop = true }, "SIGSTOP while held");
}

/* Installs at numbers that were free, several in one hold, and no fd left over. */
static void test_hold_install_free_numbers(void **state)
{
	struct holder_run run = start_holder(&(struct holder){ .how = BLOCK_READ });
	struct ghost_hold *h = NULL;
	uint64_t fds_before = fd_set_of(run.pid);
	int b[2];
	char why[256], report[64];
	struct stat sb;

	(void)state;
	assert_int_equal(pipe2(b, O_CLOEXEC), 0);
	assert_int_equal(fstat(b[0], &sb), 0);
	/* 3 and 4 are free: the engine's own socketpair lands there first. */
	assert_int_equal(fds_before & (3ull << 3), 0);
	if (ghost_hold_new(run.pid, &h, why, sizeof(why)) < 0)
		fail_msg("hold: %s", why);
	if (ghost_hold_install(h, 3, b[0], 0, why, sizeof(why)) < 0)
		fail_msg("install at 3: %s", why);
	if (ghost_hold_install(h, 4, b[0], FD_CLOEXEC, why, sizeof(why)) < 0)
		fail_msg("install at 4: %s", why);
	if (ghost_hold_install(h, 9, b[1], 0, why, sizeof(why)) < 0)
		fail_msg("install at 9: %s", why);
	ghost_hold_release(h);
	assert_int_equal(fd_set_of(run.pid), fds_before | (1ull << 3) | (1ull << 4) | (1ull << 9));
	assert_true(fd_ino(run.pid, 3) == sb.st_ino);
	assert_true(fd_ino(run.pid, 4) == sb.st_ino);
	assert_true(fd_ino(run.pid, 9) == sb.st_ino);
	assert_int_equal(fdinfo_flags(run.pid, 3) & O_CLOEXEC, 0);
	assert_int_equal(fdinfo_flags(run.pid, 4) & O_CLOEXEC, O_CLOEXEC);
	assert_int_equal(fdinfo_flags(run.pid, 9) & O_ACCMODE, O_WRONLY);
	assert_int_equal(write(run.stream_wr, "AAAA", 4), 4);
	read_report(run.report_rd, report, sizeof(report));
	assert_string_equal(report, "0:AAAA");
	assert_int_equal(exit_status(run.pid), 0);
	close(b[0]);
	close(b[1]);
	close(run.stream_wr);
	close(run.report_rd);
}

static void test_hold_failures(void **state)
{
	struct ghost_hold *h = NULL;
	char why[256];
	pid_t gone;
	int b[2], copy = -1;

	(void)state;
	/* A PID nobody has. */
	gone = fork();
	assert_true(gone >= 0);
	if (gone == 0)
		_exit(0);
	assert_int_equal(exit_status(gone), 0);
	assert_int_equal(ghost_hold_new(gone, &h, why, sizeof(why)), -ESRCH);
	assert_null(h);
	assert_non_null(strstr(why, "no process"));
	assert_int_equal(ghost_hold_new(0, &h, why, sizeof(why)), -EINVAL);
	assert_int_equal(ghost_hold_new(getpid(), &h, why, sizeof(why)), -EINVAL);
	assert_null(ghost_hold_release(NULL));

	/* Bad installs leave the old fd in place and the process running. */
	{
		struct holder_run run = start_holder(&(struct holder){ .how = BLOCK_READ });
		char report[64];

		assert_int_equal(pipe2(b, O_CLOEXEC), 0);
		if (ghost_hold_new(run.pid, &h, why, sizeof(why)) < 0)
			fail_msg("hold: %s", why);
		/* Held already (by us): a second hold is refused, and says by whom. */
		{
			struct ghost_hold *h2 = NULL;

			assert_int_equal(ghost_hold_new(run.pid, &h2, why, sizeof(why)), -EBUSY);
			assert_null(h2);
			assert_non_null(strstr(why, "already traced"));
		}
		assert_int_equal(ghost_hold_take(h, 7, &copy, NULL, NULL, why, sizeof(why)), -EBADF);
		assert_non_null(strstr(why, "no fd 7"));
		assert_int_equal(ghost_hold_install(h, STREAM_FD, 999, 0, why, sizeof(why)), -EBADF);
		assert_non_null(strstr(why, "not open"));
		assert_int_equal(ghost_hold_install(h, STREAM_FD, b[0], O_NONBLOCK, why, sizeof(why)),
				 -EINVAL);
		/* Past the process's RLIMIT_NOFILE: its dup3 fails, after the fd
		 * reached it. */
		assert_int_equal(ghost_hold_install(h, 1 << 24, b[0], 0, why, sizeof(why)), -EBADF);
		assert_non_null(strstr(why, "cannot install"));
		printf("# failed install: %s\n", why);
		/* The hold goes on: a good install after the failures works. */
		if (ghost_hold_install(h, 5, b[1], 0, why, sizeof(why)) < 0)
			fail_msg("install after failures: %s", why);
		ghost_hold_release(h);
		h = NULL;
		assert_int_equal(waitpid(run.pid, NULL, WNOHANG), 0);
		assert_int_equal(write(run.stream_wr, "AAAA", 4), 4);
		read_report(run.report_rd, report, sizeof(report));
		assert_string_equal(report, "0:AAAA");
		assert_int_equal(exit_status(run.pid), 0);
		close(b[0]);
		close(b[1]);
		close(run.stream_wr);
		close(run.report_rd);
	}

	/* Killed while held: clear errors, no hang, and its status stays ours. */
	{
		struct holder_run run = start_holder(&(struct holder){ .how = BLOCK_READ });

		assert_int_equal(pipe2(b, O_CLOEXEC), 0);
		if (ghost_hold_new(run.pid, &h, why, sizeof(why)) < 0)
			fail_msg("hold: %s", why);
		assert_int_equal(kill(run.pid, SIGKILL), 0);
		assert_int_equal(ghost_hold_install(h, STREAM_FD, b[0], 0, why, sizeof(why)), -ESRCH);
		assert_non_null(strstr(why, "exited while held"));
		assert_int_equal(ghost_hold_take(h, STREAM_FD, &copy, NULL, NULL, why, sizeof(why)),
				 -ESRCH);
		ghost_hold_release(h);
		h = NULL;
		assert_int_equal(exit_status(run.pid), 128 + SIGKILL);
		close(b[0]);
		close(b[1]);
		close(run.stream_wr);
		close(run.report_rd);
	}
}

/* --- carried fds: exported as what they were, placeholders at import ------------- */

static void test_export_carried_import_placeholders(void **state)
{
	struct holder_run run =
		start_holder(&(struct holder){ .how = BLOCK_READ, .report_flags = true });
	const int carried[] = { STREAM_FD, REPORT_FD };
	struct ghost_export_opts eo = { .flags = GHOST_EXPORT_KILL,
					.carried_fds = carried, .n_carried = 2 };
	struct ghost_import_opts io = import_opts;
	struct ghost_buffer *buf = NULL;
	struct ghost_hold *h = NULL;
	struct ghost *g = NULL;
	pid_t pid = run.pid, restored = 0;
	int fd_flags[2], status[2], copy = -1, b[2], c[2];
	char why[256], path[64], link[64], report[64];
	ssize_t n;

	(void)state;
	/* Without carrying them, both pipes lead outside: refused, and the
	 * process runs on. */
	assert_int_equal(ghost_buffer_new(0, &buf), 0);
	g = memory_ghost(buf, true);
	assert_int_equal(ghost_export(g, pid, NULL), GHOST_EUNSUPPORTED);
	assert_non_null(strstr(ghost_errmsg(g), "outside the checkpoint"));
	/* An fd it does not have cannot be carried. */
	{
		const int bad[] = { STREAM_FD, 7 };
		struct ghost_export_opts beo = { .carried_fds = bad, .n_carried = 2 };

		assert_int_equal(ghost_export(g, pid, &beo), -EBADF);
		assert_non_null(strstr(ghost_errmsg(g), "fd 7"));
	}
	/* A dup of a carried fd that is not carried: refused too. The hold
	 * makes one at 22, then puts /dev/null there instead. */
	{
		int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);

		assert_true(devnull >= 0);
		if (ghost_hold_new(pid, &h, why, sizeof(why)) < 0 ||
		    ghost_hold_take(h, STREAM_FD, &copy, NULL, NULL, why, sizeof(why)) < 0 ||
		    ghost_hold_install(h, 22, copy, 0, why, sizeof(why)) < 0)
			fail_msg("hold: %s", why);
		h = ghost_hold_release(h);
		close(copy);
		assert_int_equal(ghost_export(g, pid, &eo), GHOST_EUNSUPPORTED);
		assert_non_null(strstr(ghost_errmsg(g), "fds 20 and 22 of process"));
		if (ghost_hold_new(pid, &h, why, sizeof(why)) < 0 ||
		    ghost_hold_install(h, 22, devnull, 0, why, sizeof(why)) < 0)
			fail_msg("hold: %s", why);
		h = ghost_hold_release(h);
		close(devnull);
	}
	g = ghost_free(g);
	ghost_buffer_unref(buf);

	assert_int_equal(ghost_buffer_new(0, &buf), 0);
	g = memory_ghost(buf, true);
	if (ghost_export(g, pid, &eo) < 0)
		fail_msg("export: %s", ghost_errmsg(g));
	assert_int_equal(ghost_get_stats(g)->fds, 6);
	g = ghost_free(g);

	/* Without GHOST_IMPORT_CARRIED: refused, by name, and no process. */
	g = memory_ghost(buf, false);
	assert_int_equal(ghost_import(g, &import_opts, &restored), GHOST_EUNSUPPORTED);
	assert_string_equal(ghost_errmsg(g),
			    "fd 20 is a stream carried by the daemon that exported this image (the read end of a pipe): it cannot be restored from the image alone");
	assert_int_equal(kill(pid, 0), -1);
	assert_int_equal(errno, ESRCH);
	g = ghost_free(g);

	/* With it: placeholders at the same numbers, with the same flags. */
	io.flags = GHOST_IMPORT_CARRIED | GHOST_IMPORT_STOPPED;
	restored = import_from(buf, &io);
	assert_int_equal(restored, pid);
	ghost_buffer_unref(buf);
	wait_state(pid, 'T');
	for (int k = 0; k < 2; k++) {
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, carried[k]);
		n = readlink(path, link, sizeof(link) - 1);
		assert_true(n > 0);
		link[n] = '\0';
		assert_string_equal(link, "/dev/null");
	}
	assert_int_equal(fdinfo_flags(pid, STREAM_FD) & (O_ACCMODE | O_NONBLOCK | O_CLOEXEC),
			 O_RDONLY);
	assert_int_equal(fdinfo_flags(pid, REPORT_FD) & (O_ACCMODE | O_NONBLOCK | O_CLOEXEC),
			 O_WRONLY | O_NONBLOCK | O_CLOEXEC);

	/* The caller's part: new streams in their place before it runs. The
	 * read it was blocked in when exported runs again, on the new fd. */
	if (ghost_hold_new(pid, &h, why, sizeof(why)) < 0)
		fail_msg("hold: %s", why);
	for (int k = 0; k < 2; k++) {
		if (ghost_hold_take(h, carried[k], &copy, &fd_flags[k], &status[k], why,
				    sizeof(why)) < 0)
			fail_msg("take: %s", why);
		close(copy);
	}
	assert_int_equal(fd_flags[0], 0);
	assert_int_equal(fd_flags[1], FD_CLOEXEC);
	assert_int_equal(status[1] & (O_ACCMODE | O_NONBLOCK), O_WRONLY | O_NONBLOCK);
	assert_int_equal(pipe2(b, O_CLOEXEC), 0);
	assert_int_equal(pipe2(c, O_CLOEXEC), 0);
	assert_int_equal(write(b[1], "BBBB", 4), 4);
	assert_int_equal(fcntl(b[0], F_SETFL, status[0]), 0);
	assert_int_equal(fcntl(c[1], F_SETFL, status[1]), 0);
	if (ghost_hold_install(h, STREAM_FD, b[0], fd_flags[0], why, sizeof(why)) < 0 ||
	    ghost_hold_install(h, REPORT_FD, c[1], fd_flags[1], why, sizeof(why)) < 0)
		fail_msg("install: %s", why);
	ghost_hold_release(h);
	close(c[1]);
	assert_int_equal(fdinfo_flags(pid, REPORT_FD) & (O_ACCMODE | O_NONBLOCK | O_CLOEXEC),
			 O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	assert_int_equal(kill(pid, SIGCONT), 0);
	read_report(c[0], report, sizeof(report));
	assert_string_equal(report, "0:BBBB");
	assert_int_equal(exit_status(pid), 0);
	close(b[0]);
	close(b[1]);
	close(c[0]);
	close(run.stream_wr);
	close(run.report_rd);
}

/* --- epoll instances ----------------------------------------------------------------- */

/* Children started by the epoll tests, ended by teardown even when a test fails. */
static pid_t epoll_children[8];

static void track(pid_t pid)
{
	for (size_t i = 0; i < sizeof(epoll_children) / sizeof(epoll_children[0]); i++)
		if (epoll_children[i] <= 0) {
			epoll_children[i] = pid;
			return;
		}
	fail_msg("too many children");
}

static int end_children(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(epoll_children) / sizeof(epoll_children[0]); i++) {
		pid_t pid = epoll_children[i];

		epoll_children[i] = 0;
		/* Only a child of ours not reaped yet (WNOHANG says 0): a PID the
		 * test reaped may belong to someone else by now. */
		if (pid > 0 && waitpid(pid, NULL, WNOHANG | __WALL) == 0 && kill(pid, SIGKILL) == 0)
			while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR)
				;
	}
	return 0;
}

#define READY_FD 9   /* a target's end of the pipe it says it is ready on */
#define EP_FD 10     /* the instance the checkpointed target checks */
#define EP_LEVEL 11  /* a pipe with a byte, level-triggered */
#define EP_EDGE 13   /* a socketpair end with bytes sent after it was registered, EPOLLET */
#define EP_ONESHOT 15 /* a pipe with a byte, EPOLLONESHOT, fired before the checkpoint */

static int level_tag, edge_tag;
static const uint64_t oneshot_data = 0x0123456789abcdefull;

static void must(bool ok)
{
	if (!ok)
		_exit(40);
}

/* Move fd to want, with its FD_CLOEXEC. */
static void place_at(int fd, int want)
{
	int fl = fcntl(fd, F_GETFD);

	must(fl >= 0);
	if (fd == want)
		return;
	must(dup3(fd, want, (fl & FD_CLOEXEC) ? O_CLOEXEC : 0) == want);
	close(fd);
}

static void ep_add(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	must(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
}

/* epoll_wait(ep, timeout 0) reports exactly n events, each with its data and
 * events in want[] (data, events pairs); code otherwise. */
static int expect_epoll(int ep, const uint64_t (*want)[2], int n, int code)
{
	struct epoll_event got[8];
	bool seen[8] = { false };
	int k = epoll_wait(ep, got, 8, 0);

	if (k != n)
		return code;
	for (int i = 0; i < k; i++) {
		int j;

		for (j = 0; j < n && (seen[j] || want[j][0] != got[i].data.u64); j++)
			;
		if (j == n || want[j][1] != got[i].events)
			return code + 1;
		seen[j] = true;
	}
	return 0;
}

/* Sets up its instance, says it is ready, waits for SIGUSR1, then checks
 * what its instance reports: exit 0, or the number of the check that failed. */
static __attribute__((noreturn)) void epoll_target_main(int ready_fd)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	const uint64_t level = (uint64_t)(uintptr_t)&level_tag;
	const uint64_t edge = (uint64_t)(uintptr_t)&edge_tag;
	const uint64_t both[][2] = { { level, EPOLLIN }, { edge, EPOLLIN } };
	const uint64_t level_only[][2] = { { level, EPOLLIN } };
	const uint64_t rearmed[][2] = { { level, EPOLLIN }, { oneshot_data, EPOLLIN } };
	struct epoll_event ev;
	int p[2], devnull, r;
	char c = 'r';

	sigaction(SIGUSR1, &sa, NULL);
	devnull = open("/dev/null", O_RDWR);
	must(devnull >= 0 && dup2(devnull, 0) == 0 && dup2(devnull, 1) == 1 &&
	     dup2(devnull, 2) == 2);
	/* Nothing but its own fds: what the test runner left open would lead
	 * outside. */
	place_at(ready_fd, READY_FD);
	syscall(SYS_close_range, 3, READY_FD - 1, 0);
	syscall(SYS_close_range, READY_FD + 1, ~0u, 0);
	place_at(epoll_create1(EPOLL_CLOEXEC), EP_FD);
	must(pipe(p) == 0);
	place_at(p[0], EP_ONESHOT);
	place_at(p[1], EP_ONESHOT + 1);
	must(pipe(p) == 0);
	place_at(p[0], EP_LEVEL);
	place_at(p[1], EP_LEVEL + 1);
	must(socketpair(AF_UNIX, SOCK_STREAM, 0, p) == 0);
	place_at(p[0], EP_EDGE);
	place_at(p[1], EP_EDGE + 1);
	/* The one-shot fires while it is the only registration: disarmed. */
	must(write(EP_ONESHOT + 1, "o", 1) == 1);
	ep_add(EP_FD, EP_ONESHOT, EPOLLIN | EPOLLONESHOT, oneshot_data);
	must(epoll_wait(EP_FD, &ev, 1, 0) == 1 && ev.data.u64 == oneshot_data);
	must(write(EP_LEVEL + 1, "l", 1) == 1);
	ep_add(EP_FD, EP_LEVEL, EPOLLIN, level);
	ep_add(EP_FD, EP_EDGE, EPOLLIN | EPOLLET, edge);
	must(write(EP_EDGE + 1, "e", 1) == 1); /* an edge pending */

	if (write(READY_FD, &c, 1) != 1)
		_exit(4);
	close(READY_FD);
	while (!go)
		pause();
	r = expect_epoll(EP_FD, both, 2, 10); /* level, edge; not the disarmed one-shot */
	if (!r)
		r = expect_epoll(EP_FD, level_only, 1, 20); /* the edge was reported */
	if (!r) {
		ev = (struct epoll_event){ .events = EPOLLIN | EPOLLONESHOT,
					   .data.u64 = oneshot_data };
		r = epoll_ctl(EP_FD, EPOLL_CTL_MOD, EP_ONESHOT, &ev) == 0 ? 0 : 30;
	}
	if (!r)
		r = expect_epoll(EP_FD, rearmed, 2, 40); /* re-armed: once */
	if (!r)
		r = expect_epoll(EP_FD, level_only, 1, 50);
	if (!r && (write(EP_EDGE + 1, "E", 1) != 1 || expect_epoll(EP_FD, both, 2, 60)))
		r = 60; /* a new edge */
	_exit(r);
}

/* Fork main(ready_fd) and wait until it said it is ready and closed the fd. */
static pid_t start_child(void (*main_fn)(int), long blocked_in)
{
	int p[2];
	pid_t pid;
	char c;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		main_fn(p[1]);
		_exit(99);
	}
	track(pid);
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	assert_int_equal(read(p[0], &c, 1), 0);
	close(p[0]);
	wait_blocked_nr(pid, blocked_in);
	return pid;
}

/* The registrations of epoll fd epfd of pid: "tfd events data" lines,
 * sorted (the kernel lists them by file address). With ino, the target's
 * inode too. */
static void epoll_lines(pid_t pid, int epfd, bool ino, char *out, size_t size)
{
	char path[64], buf[4096], lines[16][96];
	size_t n = 0, len = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, epfd);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(buf, sizeof(buf), f) && n < 16) {
		unsigned long long data, i;
		unsigned events;
		int tfd;

		if (sscanf(buf, "tfd: %d events: %x data: %llx pos:%*d ino:%llx", &tfd, &events,
			   &data, &i) != 4)
			continue;
		if (ino)
			snprintf(lines[n++], sizeof(lines[0]), "%d %x %llx ino %llu\n", tfd, events,
				 data, i);
		else
			snprintf(lines[n++], sizeof(lines[0]), "%d %x %llx\n", tfd, events, data);
	}
	fclose(f);
	qsort(lines, n, sizeof(lines[0]), (int (*)(const void *, const void *))strcmp);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t k = strlen(lines[i]);

		assert_true(len + k < size);
		memcpy(out + len, lines[i], k + 1);
		len += k;
	}
}

static void test_epoll_checkpoint_restart(void **state)
{
	struct ghost_export_opts eo = { .flags = GHOST_EXPORT_KILL };
	pid_t pid = start_child(epoll_target_main, SYS_pause), restored = 0;
	struct ghost_buffer *buf = NULL;
	char before[1024], after[1024];
	int status;

	(void)state;
	epoll_lines(pid, EP_FD, false, before, sizeof(before));
	assert_non_null(strstr(before, "15 40000000 123456789abcdef\n")); /* disarmed */
	assert_int_equal(ghost_buffer_new(0, &buf), 0);
	export_into(buf, pid, &eo);

	restored = import_from(buf, &import_opts);
	assert_int_equal(restored, pid);
	ghost_buffer_unref(buf);
	/* Every registration as it was: fd, events (the one-shot disarmed), data. */
	epoll_lines(pid, EP_FD, false, after, sizeof(after));
	assert_string_equal(after, before);
	assert_int_equal(fdinfo_flags(pid, EP_FD) & O_CLOEXEC, O_CLOEXEC);
	status = finish_and_status(pid);
	if (status != 0)
		fail_msg("the restored process's check %d failed (see epoll_target_main)", status);
}

#define STALE_FD 5

static __attribute__((noreturn)) void stale_target_main(int ready_fd)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	struct epoll_event ev;
	int p[2], other[2], devnull = open("/dev/null", O_RDWR);
	char c = 'r';

	sigaction(SIGUSR1, &sa, NULL);
	must(devnull >= 0 && dup2(devnull, 0) == 0 && dup2(devnull, 1) == 1 &&
	     dup2(devnull, 2) == 2);
	place_at(ready_fd, READY_FD);
	syscall(SYS_close_range, 3, READY_FD - 1, 0);
	syscall(SYS_close_range, READY_FD + 1, ~0u, 0);
	place_at(epoll_create1(EPOLL_CLOEXEC), 3);
	must(pipe(p) == 0 && pipe(other) == 0);
	place_at(p[0], 20);
	place_at(p[1], 21);
	place_at(other[0], 22);
	place_at(other[1], 23);
	must(dup2(20, STALE_FD) == STALE_FD);
	ep_add(3, STALE_FD, EPOLLIN, 0x5555);
	/* fd 5 holds another pipe now; the registered one lives on at fd 20. */
	must(dup2(22, STALE_FD) == STALE_FD);
	if (write(READY_FD, &c, 1) != 1)
		_exit(4);
	close(READY_FD);
	while (!go)
		pause();
	/* Left as it was: the registration still reports the pipe at fd 20. */
	if (write(21, "s", 1) != 1 || epoll_wait(3, &ev, 1, 1000) != 1 || ev.data.u64 != 0x5555)
		_exit(10);
	_exit(0);
}

static void test_epoll_export_refuses_stale(void **state)
{
	pid_t pid = start_child(stale_target_main, SYS_pause);
	struct ghost_buffer *buf = NULL;
	struct ghost *g = NULL;
	char want[160];

	(void)state;
	assert_int_equal(ghost_buffer_new(0, &buf), 0);
	g = memory_ghost(buf, true);
	assert_int_equal(ghost_export(g, pid, NULL), GHOST_EUNSUPPORTED);
	snprintf(want, sizeof(want), "epoll fd 3 of process %d watches fd 5, which holds another file",
		 pid);
	if (!strstr(ghost_errmsg(g), want))
		fail_msg("'%s' does not say '%s'", ghost_errmsg(g), want);
	assert_null(strchr(ghost_errmsg(g), '\n'));
	printf("# refused: %s\n", ghost_errmsg(g));
	ghost_free(g);
	ghost_buffer_unref(buf);
	/* The original runs on, its registration intact. */
	wait_state(pid, 'S');
	assert_int_equal(finish_and_status(pid), 0);
}

/* A process blocked in epoll_wait() on STREAM_FD through an instance at fd 22
 * (also at 23), and a second instance at 24 watching it edge-triggered; when
 * woken, it reads STREAM_FD and writes "DATA:bytes" on REPORT_FD. */
#define EP_WAIT_FD 22
#define EP_SECOND_FD 24
#define EP_WAIT_DATA 0xd00dfeed12345678ull
#define EP_SECOND_DATA 0xe7ull
#define EP_SECOND_EVENTS (EPOLLIN | EPOLLRDHUP | EPOLLET)

static __attribute__((noreturn)) void epoll_waiter_main(int ready_fd)
{
	struct epoll_event ev;
	char buf[64], out[128];
	ssize_t n;
	int k, len;
	char c = 'r';

	place_at(epoll_create1(EPOLL_CLOEXEC), EP_WAIT_FD);
	must(dup2(EP_WAIT_FD, EP_WAIT_FD + 1) == EP_WAIT_FD + 1);
	place_at(epoll_create1(EPOLL_CLOEXEC), EP_SECOND_FD);
	ep_add(EP_WAIT_FD, STREAM_FD, EPOLLIN, EP_WAIT_DATA);
	ep_add(EP_SECOND_FD, STREAM_FD, EP_SECOND_EVENTS, EP_SECOND_DATA);
	if (write(ready_fd, &c, 1) != 1)
		_exit(4);
	close(ready_fd);
	/* A hold makes epoll_wait return EINTR, as any stop does (signal(7)). */
	do
		k = epoll_wait(EP_WAIT_FD, &ev, 1, -1);
	while (k < 0 && errno == EINTR);
	if (k != 1)
		_exit(10);
	n = read(STREAM_FD, buf, sizeof(buf));
	if (n < 0)
		_exit(11);
	len = snprintf(out, sizeof(out), "%llx:%.*s", (unsigned long long)ev.data.u64, (int)n,
		       buf);
	_exit(write(REPORT_FD, out, (size_t)len) == len ? 0 : 12);
}

struct epoll_run {
	pid_t pid;
	int stream_wr; /* the write end of the pipe at its STREAM_FD */
	int report_rd;
};

static struct epoll_run start_epoll_waiter(void)
{
	struct epoll_run run;
	int a[2], rep[2], p[2];
	char c;

	assert_int_equal(pipe2(a, O_CLOEXEC), 0);
	assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	run.pid = fork();
	assert_true(run.pid >= 0);
	if (run.pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		if (dup2(a[0], STREAM_FD) < 0 || dup2(rep[1], REPORT_FD) < 0 ||
		    dup2(p[1], 30) < 0 || devnull < 0 || dup2(devnull, 0) < 0 ||
		    dup2(devnull, 1) < 0 || dup2(devnull, 2) < 0)
			_exit(35);
		syscall(SYS_close_range, 3, STREAM_FD - 1, 0);
		syscall(SYS_close_range, REPORT_FD + 1, 29, 0);
		syscall(SYS_close_range, 31, ~0u, 0);
		epoll_waiter_main(30);
	}
	track(run.pid);
	close(a[0]);
	close(rep[1]);
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	assert_int_equal(read(p[0], &c, 1), 0);
	close(p[0]);
	run.stream_wr = a[1];
	run.report_rd = rep[0];
	wait_blocked_nr(run.pid, SYS_epoll_wait);
	return run;
}

/* The registrations of both instances of the waiter, for the file of inode ino at STREAM_FD. */
static void expect_waiter_watches(pid_t pid, ino_t ino)
{
	char want[256], got[256];

	snprintf(want, sizeof(want), "%d %x %llx ino %llu\n", STREAM_FD, EPOLLIN | EPOLLERR | EPOLLHUP,
		 EP_WAIT_DATA, (unsigned long long)ino);
	epoll_lines(pid, EP_WAIT_FD, true, got, sizeof(got));
	assert_string_equal(got, want);
	snprintf(want, sizeof(want), "%d %x %llx ino %llu\n", STREAM_FD,
		 (unsigned)(EP_SECOND_EVENTS | EPOLLERR | EPOLLHUP), EP_SECOND_DATA,
		 (unsigned long long)ino);
	epoll_lines(pid, EP_SECOND_FD, true, got, sizeof(got));
	assert_string_equal(got, want);
}

/* Bytes written at wr wake the epoll waiter pid, which reports them under the
 * data its first instance registered, on report_rd, and exits 0. */
static void expect_waiter_woken(pid_t pid, int wr, int report_rd, const char *bytes)
{
	char report[128], want[128];
	size_t len = strlen(bytes);

	assert_int_equal(write(wr, bytes, len), (ssize_t)len);
	read_report(report_rd, report, sizeof(report));
	snprintf(want, sizeof(want), "%llx:%s", EP_WAIT_DATA, bytes);
	assert_string_equal(report, want);
	assert_int_equal(exit_status(pid), 0);
}

static void test_hold_swap_keeps_epoll(void **state)
{
	struct epoll_run run = start_epoll_waiter();
	struct ghost_hold *h = NULL;
	int old = -1, fd_flags = -1, status = -1, b[2], mfd;
	char why[256];
	struct pollfd p;
	struct stat sb;

	(void)state;
	assert_int_equal(pipe2(b, O_CLOEXEC), 0);
	assert_int_equal(fstat(b[0], &sb), 0);
	expect_waiter_watches(run.pid, fd_ino(run.pid, STREAM_FD));

	/* A file epoll cannot watch: refused before anything changes. */
	mfd = memfd_create("not-pollable", MFD_CLOEXEC);
	assert_true(mfd >= 0);
	if (ghost_hold_new(run.pid, &h, why, sizeof(why)) < 0)
		fail_msg("hold: %s", why);
	assert_int_equal(ghost_hold_install(h, STREAM_FD, mfd, 0, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "epoll cannot"));
	printf("# refused install: %s\n", why);
	close(mfd);
	expect_waiter_watches(run.pid, fd_ino(run.pid, STREAM_FD));

	/* The swap: both instances watch the new pipe, with their events and data. */
	if (ghost_hold_take(h, STREAM_FD, &old, &fd_flags, &status, why, sizeof(why)) < 0)
		fail_msg("take: %s", why);
	assert_int_equal(fcntl(b[0], F_SETFL, status), 0);
	if (ghost_hold_install(h, STREAM_FD, b[0], fd_flags, why, sizeof(why)) < 0)
		fail_msg("install: %s", why);
	h = ghost_hold_release(h);
	assert_true(fd_ino(run.pid, STREAM_FD) == sb.st_ino);
	expect_waiter_watches(run.pid, sb.st_ino);

	/* Nothing of the old pipe is left: bytes there wake nobody. */
	assert_int_equal(write(run.stream_wr, "AAAA", 4), 4);
	p = (struct pollfd){ .fd = run.report_rd, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 300), 0);
	wait_blocked_nr(run.pid, SYS_epoll_wait);

	/* Bytes in the new one wake it, with the data it registered. */
	expect_waiter_woken(run.pid, b[1], run.report_rd, "BBBB");
	close(old);
	close(b[0]);
	close(b[1]);
	close(run.stream_wr);
	close(run.report_rd);
}

/* An install that puts a new epoll instance into the held process: a later
 * install in the same hold must move that instance's registrations too (the
 * hold keeps the process's instances between installs). */
#define EP_THIRD_FD 40
#define EP_THIRD_DATA 0x3333ull

static void test_hold_install_instance_then_swap(void **state)
{
	struct epoll_run run = start_epoll_waiter();
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EP_THIRD_DATA };
	struct ghost_hold *h = NULL;
	int old = -1, fd_flags = -1, status = -1, b[2], ep3, saved = -1;
	char why[256], got[256], want[256];
	struct stat sb;

	(void)state;
	assert_int_equal(pipe2(b, O_CLOEXEC), 0);
	assert_int_equal(fstat(b[0], &sb), 0);
	if (ghost_hold_new(run.pid, &h, why, sizeof(why)) < 0)
		fail_msg("hold: %s", why);
	if (ghost_hold_take(h, STREAM_FD, &old, &fd_flags, &status, why, sizeof(why)) < 0)
		fail_msg("take: %s", why);

	/* A third instance watching the process's stream under STREAM_FD: the
	 * kernel keys a registration by file and number, so register our copy
	 * of the stream while it sits at that number here. */
	ep3 = epoll_create1(EPOLL_CLOEXEC);
	assert_true(ep3 >= 0);
	if (fcntl(STREAM_FD, F_GETFD) >= 0) {
		saved = fcntl(STREAM_FD, F_DUPFD_CLOEXEC, 100);
		assert_true(saved >= 0);
	}
	assert_int_equal(dup3(old, STREAM_FD, O_CLOEXEC), STREAM_FD);
	assert_int_equal(epoll_ctl(ep3, EPOLL_CTL_ADD, STREAM_FD, &ev), 0);
	if (saved >= 0) {
		assert_int_equal(dup3(saved, STREAM_FD, O_CLOEXEC), STREAM_FD);
		close(saved);
	} else {
		close(STREAM_FD);
	}
	if (ghost_hold_install(h, EP_THIRD_FD, ep3, 0, why, sizeof(why)) < 0)
		fail_msg("install of an epoll instance: %s", why);

	/* The swap moves the registrations of all three. */
	assert_int_equal(fcntl(b[0], F_SETFL, status), 0);
	if (ghost_hold_install(h, STREAM_FD, b[0], fd_flags, why, sizeof(why)) < 0)
		fail_msg("install: %s", why);
	h = ghost_hold_release(h);
	expect_waiter_watches(run.pid, sb.st_ino);
	snprintf(want, sizeof(want), "%d %x %llx ino %llu\n", STREAM_FD,
		 EPOLLIN | EPOLLERR | EPOLLHUP, EP_THIRD_DATA, (unsigned long long)sb.st_ino);
	epoll_lines(run.pid, EP_THIRD_FD, true, got, sizeof(got));
	assert_string_equal(got, want);

	expect_waiter_woken(run.pid, b[1], run.report_rd, "CCCC");
	close(ep3);
	close(old);
	close(b[0]);
	close(b[1]);
	close(run.stream_wr);
	close(run.report_rd);
}

/* What a migration does: the watched stream is carried, the import puts a
 * placeholder epoll can watch, registered, and the install moves the
 * registration to the new stream. */
static void test_export_carried_epoll(void **state)
{
	struct epoll_run run = start_epoll_waiter();
	const int carried[] = { STREAM_FD, REPORT_FD };
	struct ghost_export_opts eo = { .flags = GHOST_EXPORT_KILL,
					.carried_fds = carried, .n_carried = 2 };
	struct ghost_import_opts io = import_opts;
	struct ghost_buffer *buf = NULL;
	struct ghost_hold *h = NULL;
	pid_t pid = run.pid, restored = 0;
	char why[256], path[64], link[64];
	int b[2], c[2];
	struct stat sb;
	ssize_t n;

	(void)state;
	assert_int_equal(ghost_buffer_new(0, &buf), 0);
	export_into(buf, pid, &eo);
	io.flags = GHOST_IMPORT_CARRIED | GHOST_IMPORT_STOPPED;
	restored = import_from(buf, &io);
	assert_int_equal(restored, pid);
	ghost_buffer_unref(buf);
	wait_state(pid, 'T');

	/* The watched one is a pipe placeholder, with its access mode, watched;
	 * the other one /dev/null. */
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, STREAM_FD);
	n = readlink(path, link, sizeof(link) - 1);
	assert_true(n > 0);
	link[n] = '\0';
	assert_non_null(strstr(link, "pipe:"));
	assert_int_equal(fdinfo_flags(pid, STREAM_FD) & O_ACCMODE, O_RDONLY);
	expect_waiter_watches(pid, fd_ino(pid, STREAM_FD));
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, REPORT_FD);
	n = readlink(path, link, sizeof(link) - 1);
	assert_true(n > 0);
	link[n] = '\0';
	assert_string_equal(link, "/dev/null");

	/* The caller's part: the new streams, then it runs. */
	assert_int_equal(pipe2(b, O_CLOEXEC), 0);
	assert_int_equal(pipe2(c, O_CLOEXEC), 0);
	assert_int_equal(fstat(b[0], &sb), 0);
	if (ghost_hold_new(pid, &h, why, sizeof(why)) < 0 ||
	    ghost_hold_install(h, STREAM_FD, b[0], 0, why, sizeof(why)) < 0 ||
	    ghost_hold_install(h, REPORT_FD, c[1], 0, why, sizeof(why)) < 0)
		fail_msg("install: %s", why);
	h = ghost_hold_release(h);
	close(c[1]);
	expect_waiter_watches(pid, sb.st_ino);
	assert_int_equal(kill(pid, SIGCONT), 0);
	expect_waiter_woken(pid, b[1], c[0], "CCCC");
	close(b[0]);
	close(b[1]);
	close(c[0]);
	close(run.stream_wr);
	close(run.report_rd);
}

/* ---- becoming the process (GHOST_IMPORT_BECOME) ---------------------------------------- */

/* What a holder says after its ghost_import(): the outcome, in which process
 * it returned, and the PID it gave. */
struct become_report {
	int r;
	pid_t in;
	pid_t pid;
	char msg[240];
};

/* Where a holder takes the image from: it exports process pid into a buffer
 * of its own (the test's buffers are not inherited: MADV_DONTFORK), or
 * reads the file fd. */
struct become_source {
	pid_t pid;
	int fd;
	uid_t as_uid; /* the holder turns as this user (after its export) */
	int nice;     /* ...with this nice value */
};

/*
 * The holder, a child of the test: a child of its own first (a looper, its
 * PID sent on kid_fd), then ghost_import() with GHOST_IMPORT_BECOME from src.
 * Whichever process the call returns in reports on report_fd. A holder the
 * call came back to checks that it is as it was (its child still its own,
 * its signal mask, its fds) and exits 42 if so.
 */
static __attribute__((noreturn)) void holder_become(const struct become_source *src,
						    const struct ghost_import_opts *base,
						    int kid_fd, int report_fd)
{
	struct ghost_export_opts eo = { .flags = GHOST_EXPORT_KILL };
	struct ghost_import_opts io = *base;
	struct become_report rep = { 0 };
	struct ghost_buffer *buf = NULL;
	struct ghost *g = NULL;
	sigset_t mask, after;
	pid_t me = getpid(), kid;
	int st;

	/* Not the test runner's handlers: a crash here must end this process. */
	signal(SIGSEGV, SIG_DFL);
	signal(SIGBUS, SIG_DFL);
	signal(SIGABRT, SIG_DFL);
	if (ghost_new(&g) < 0)
		_exit(80);
	if (src->pid > 0) {
		if (ghost_buffer_new(0, &buf) < 0 || ghost_plug(g, GHOST_MEMORY_WRITE) < 0 ||
		    ghost_associate_buffer(g, buf) < 0 || ghost_export(g, src->pid, &eo) < 0)
			_exit(81);
		ghost_free(g);
		if (ghost_new(&g) < 0 || ghost_plug(g, GHOST_MEMORY_READ) < 0 ||
		    ghost_associate_buffer(g, buf) < 0)
			_exit(82);
	} else if (ghost_plug(g, GHOST_FILE_READ) < 0 || ghost_associate_file(g, src->fd) < 0) {
		_exit(83);
	}
	if (src->as_uid && !take_uid(src->as_uid))
		_exit(84);
	if (src->nice && setpriority(PRIO_PROCESS, 0, src->nice) < 0)
		_exit(85);
	kid = fork();
	if (kid < 0)
		_exit(90);
	if (kid == 0) {
		/* Not left behind by a holder killed in a failing test. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			pause();
	}
	if (write(kid_fd, &kid, sizeof(kid)) != (ssize_t)sizeof(kid))
		_exit(91);
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR2);
	sigprocmask(SIG_SETMASK, &mask, NULL);
	io.flags |= GHOST_IMPORT_BECOME;
	rep.r = ghost_import(g, &io, &rep.pid);
	rep.in = getpid();
	snprintf(rep.msg, sizeof(rep.msg), "%s", ghost_errmsg(g));
	if (write(report_fd, &rep, sizeof(rep)) != (ssize_t)sizeof(rep))
		_exit(92);
	if (getpid() != me)
		_exit(0); /* the helper */
	sigprocmask(SIG_SETMASK, NULL, &after);
	if (waitpid(kid, &st, WNOHANG) != 0 || !sigismember(&after, SIGUSR2) ||
	    sigismember(&after, SIGUSR1))
		_exit(93);
	kill(kid, SIGKILL);
	_exit(waitpid(kid, &st, 0) == kid ? 42 : 94);
}

struct become_run {
	pid_t holder, kid;
	struct become_report rep;
};

/* Start holder_become() on src and read what it says. */
static struct become_run become(const struct become_source *src,
				const struct ghost_import_opts *io)
{
	struct become_run run = { 0 };
	int kp[2], rp[2];

	assert_int_equal(pipe2(kp, O_CLOEXEC), 0);
	assert_int_equal(pipe2(rp, O_CLOEXEC), 0);
	run.holder = fork();
	assert_true(run.holder >= 0);
	if (run.holder == 0)
		holder_become(src, io, kp[1], rp[1]);
	close(kp[1]);
	close(rp[1]);
	assert_int_equal(read(kp[0], &run.kid, sizeof(run.kid)), sizeof(run.kid));
	assert_int_equal(read(rp[0], &run.rep, sizeof(run.rep)), sizeof(run.rep));
	close(kp[0]);
	close(rp[0]);
	return run;
}

static pid_t parent_of(pid_t pid)
{
	char path[64], buf[512], *e;
	int ppid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f) && (e = strrchr(buf, ')')) && sscanf(e + 2, "%*c %d", &ppid) != 1)
		ppid = -1;
	fclose(f);
	return ppid;
}

/* Flip one bit of the byte at in file fd, and rewind it. */
static void flip_byte(int fd, off_t at)
{
	uint8_t byte;

	assert_int_equal(pread(fd, &byte, 1, at), 1);
	byte ^= 0x20;
	assert_int_equal(pwrite(fd, &byte, 1, at), 1);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
}

/* The call came back to the holder, which found itself as it was (42). */
static void expect_holder_back(const struct become_run *run)
{
	int st;

	assert_int_equal(run->rep.in, run->holder);
	assert_int_equal(waitpid(run->holder, &st, 0), run->holder);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 42);
}

static uid_t uid_of(pid_t pid)
{
	char path[64], line[256];
	unsigned uid = ~0u;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Uid: %u", &uid) == 1)
			break;
	fclose(f);
	return (uid_t)uid;
}

/* A holder running as as_uid (root: 0) becomes test-api's target of that
 * user: same PID and parent as before, its child still its child, the
 * image's memory and handler in place. */
static void expect_becomes_target(uid_t as_uid)
{
	struct become_source src = { .pid = start_target_as(as_uid), .fd = -1, .as_uid = as_uid };
	struct become_run run;
	int st;

	run = become(&src, &import_opts);
	/* The holder exported (and ended) our child. */
	assert_int_equal(waitpid(src.pid, &st, 0), src.pid);
	if (run.rep.r < 0)
		fail_msg("become: %s", run.rep.msg);
	/* It returned in the helper, which gave the holder's PID. */
	assert_int_not_equal(run.rep.in, run.holder);
	assert_int_equal(run.rep.pid, run.holder);
	assert_int_equal(waitpid(run.rep.in, &st, 0), run.rep.in);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* Its child is still its child. */
	assert_int_equal(parent_of(run.kid), run.holder);
	assert_int_equal(parent_of(run.holder), getpid());
	assert_int_equal(uid_of(run.holder), as_uid);
	/* The target's handler ends it after checking the target's memory (the
	 * holder would have died of SIGUSR1). */
	assert_int_equal(kill(run.kid, SIGKILL), 0);
	assert_int_equal(finish_and_status(run.holder), 0);
	assert_int_equal(waitpid(run.kid, &st, 0), run.kid);
}

static void test_become_keeps_pid_parent_children(void **state)
{
	(void)state;
	/* The helper and the holder's child come back to us to be reaped. */
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	expect_becomes_target(0);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
}

/* Failures before the caller changes bring it back as it was: a stream (the
 * image must be whole), a damaged image, a child PID it cannot have. */
static void test_become_failures_leave_caller(void **state)
{
	struct ghost_export_opts eo = { .flags = GHOST_EXPORT_KILL };
	struct ghost_import_child kid = { .path = "/bin/true" };
	const char *argv[] = { "true", NULL };
	struct ghost_import_opts io = import_opts;
	struct ghost_buffer *buf = NULL;
	struct become_source src = { 0 };
	struct become_run run;
	struct ghost *g = NULL;
	pid_t pid = start_target(), got;
	int sv[2], fd;
	FILE *f;

	(void)state;
	assert_int_equal(ghost_buffer_new(0, &buf), 0);
	export_into(buf, pid, &eo);

	/* A stream: refused at once, in the caller (here). */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(ghost_new(&g), 0);
	assert_int_equal(ghost_plug(g, GHOST_NET_RECV), 0);
	assert_int_equal(ghost_associate_socket(g, sv[0]), 0);
	io.flags = GHOST_IMPORT_BECOME;
	assert_int_equal(ghost_import(g, &io, &got), -EINVAL);
	assert_non_null(strstr(ghost_errmsg(g), "whole"));
	g = ghost_free(g);
	close(sv[0]);
	close(sv[1]);

	/* One flipped byte near the end (page data): found before anything. */
	fd = memfd_create("image", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, ghost_buffer_data(buf), ghost_buffer_size(buf)),
			 (ssize_t)ghost_buffer_size(buf));
	flip_byte(fd, (off_t)ghost_buffer_size(buf) - 4096);
	src.fd = fd;
	run = become(&src, &import_opts);
	assert_true(run.rep.r < 0);
	assert_non_null(strstr(run.rep.msg, "unusable"));
	expect_holder_back(&run);

	/* A child with a PID the kernel cannot give (above pid_max). */
	f = fopen("/proc/sys/kernel/pid_max", "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%d", &kid.pid), 1);
	fclose(f);
	kid.pid += 1;
	kid.argv = argv;
	io = import_opts;
	io.children = &kid;
	io.n_children = 1;
	/* The same image, undamaged. */
	flip_byte(fd, (off_t)ghost_buffer_size(buf) - 4096);
	run = become(&src, &io);
	close(fd);
	assert_true(run.rep.r < 0);
	assert_non_null(strstr(run.rep.msg, "child"));
	expect_holder_back(&run);
	ghost_buffer_unref(buf);
}

/* The executable (/proc/PID/exe) of pid is the file at path. */
static void expect_exe(pid_t pid, const char *path)
{
	char exe[64];
	struct stat theirs, want;

	snprintf(exe, sizeof(exe), "/proc/%d/exe", pid);
	assert_int_equal(stat(exe, &theirs), 0);
	assert_int_equal(stat(path, &want), 0);
	assert_true(theirs.st_dev == want.st_dev && theirs.st_ino == want.st_ino);
}

/* "sleep 1000" as uid, its stdio /dev/null; returned once it runs sleep. */
static pid_t start_sleep_as(uid_t uid)
{
	static char sleep_name[] = "sleep", seconds[] = "1000";
	char *const argv[] = { sleep_name, seconds, NULL };
	char *const envp[] = { NULL };
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_RDWR);

		if (fd < 0 || dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 ||
		    !take_uid(uid))
			_exit(5);
		syscall(SYS_close_range, 3, ~0u, 0);
		execve("/bin/sleep", argv, envp);
		_exit(6);
	}
	wait_blocked(pid, BLOCK_NANOSLEEP);
	return pid;
}

/* Without root, a process becomes one of its own user by execve() of the
 * image's executable: PID, parent and child kept, the executable the
 * image's (sleep's here), the target's handler (reset by the execve) and
 * memory in place (test-api's target). */
static void test_become_without_root(void **state)
{
	struct become_source src = { .fd = -1, .as_uid = NOBODY };
	struct become_run run;
	int st;

	(void)state;
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	expect_becomes_target(NOBODY);

	src.pid = start_sleep_as(NOBODY);
	run = become(&src, &import_opts);
	assert_int_equal(waitpid(src.pid, &st, 0), src.pid);
	if (run.rep.r < 0)
		fail_msg("become sleep: %s", run.rep.msg);
	assert_int_equal(waitpid(run.rep.in, &st, 0), run.rep.in);
	expect_exe(run.holder, "/bin/sleep");
	assert_int_equal(parent_of(run.kid), run.holder);
	/* It sleeps on: SIGTERM's default action ends it, and its child comes
	 * back to us. */
	assert_int_equal(kill(run.kid, SIGKILL), 0);
	assert_int_equal(kill(run.holder, SIGTERM), 0);
	assert_int_equal(waitpid(run.holder, &st, 0), run.holder);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
	assert_int_equal(waitpid(run.kid, &st, 0), run.kid);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
}

/* Without root, what would need a capability is refused before the caller
 * changes: a child to make with its PID, a nice value to lower. */
static void test_become_without_root_refusals(void **state)
{
	struct ghost_import_child kid = { .path = "/bin/true" };
	const char *argv[] = { "true", NULL };
	struct ghost_import_opts io = import_opts;
	struct become_source src = { .pid = start_target_as(NOBODY), .fd = -1, .as_uid = NOBODY };
	struct become_run run;
	int st;

	(void)state;
	kid.pid = src.pid; /* free once the holder's export ended the target */
	kid.argv = argv;
	io.children = &kid;
	io.n_children = 1;
	run = become(&src, &io);
	assert_int_equal(waitpid(src.pid, &st, 0), src.pid);
	assert_true(run.rep.r < 0);
	assert_non_null(strstr(run.rep.msg, "CAP_CHECKPOINT_RESTORE"));
	expect_holder_back(&run);

	src = (struct become_source){ .pid = start_target_as(NOBODY), .fd = -1,
				      .as_uid = NOBODY, .nice = 5 };
	run = become(&src, &import_opts);
	assert_int_equal(waitpid(src.pid, &st, 0), src.pid);
	assert_true(run.rep.r < 0);
	assert_non_null(strstr(run.rep.msg, "nice"));
	expect_holder_back(&run);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_memory_checkpoint_restart),
		cmocka_unit_test(test_import_refuses_pages_given_twice),
		cmocka_unit_test(test_snapshot_leaves_original_running),
		cmocka_unit_test(test_socket_streaming_into_other_pid_namespace),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_replace_program),
		cmocka_unit_test(test_become_keeps_pid_parent_children),
		cmocka_unit_test(test_become_failures_leave_caller),
		cmocka_unit_test(test_become_without_root),
		cmocka_unit_test(test_become_without_root_refusals),
		cmocka_unit_test(test_hold_swap_blocked_read),
		cmocka_unit_test(test_hold_swap_poll_select_nanosleep),
		cmocka_unit_test(test_hold_swap_blocked_write),
		cmocka_unit_test(test_hold_swap_stopped),
		cmocka_unit_test(test_hold_swap_unprivileged),
		cmocka_unit_test(test_hold_swap_in_handler_on_shared_altstack),
		cmocka_unit_test(test_hold_running_process),
		cmocka_unit_test(test_hold_signals_while_held),
		cmocka_unit_test(test_hold_install_free_numbers),
		cmocka_unit_test(test_hold_failures),
		cmocka_unit_test(test_export_carried_import_placeholders),
		cmocka_unit_test_teardown(test_epoll_checkpoint_restart, end_children),
		cmocka_unit_test_teardown(test_epoll_export_refuses_stale, end_children),
		cmocka_unit_test_teardown(test_hold_swap_keeps_epoll, end_children),
		cmocka_unit_test_teardown(test_hold_install_instance_then_swap, end_children),
		cmocka_unit_test_teardown(test_export_carried_epoll, end_children),
	};

	/* GHOST_TEST_FILTER=glob runs the matching tests only. */
	if (getenv("GHOST_TEST_FILTER"))
		cmocka_set_test_filter(getenv("GHOST_TEST_FILTER"));
	if (geteuid() != 0) {
		printf("1..0 # SKIP the engine tests need root (ptrace, clone3 set_tid)\n");
		return 0;
	}
	/* A test that hangs is then named by the last line before the timeout. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

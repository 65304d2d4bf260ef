/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The engine through its library API, inside one test process: checkpoint to
 * memory and restart from memory; a snapshot that leaves the original running;
 * export into one end of a socketpair while a process in another PID namespace
 * (as on another node) imports from the other end as the bytes arrive; a
 * process made to run another program in its place.
 *
 * The target also holds a sparse mapping of runs of several sizes: the
 * importer allocates memory ahead of the page data (from the runs the image
 * announces), and the target checks that no page it never touched became
 * resident on the way.
 */
#include <errno.h>
#include <fcntl.h>
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
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "ghost/ghost.h"

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

static pid_t start_target(void)
{
	int p[2];
	pid_t pid;
	char c;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
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

static int finish_and_status(pid_t pid)
{
	int st;

	assert_int_equal(kill(pid, SIGUSR1), 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
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
	assert_int_equal(ghost_new(&g), 0);
	assert_int_equal(ghost_plug(g, GHOST_MEMORY_WRITE), 0);
	assert_int_equal(ghost_associate_buffer(g, buf), 0);
	if (ghost_export(g, pid, &eo) < 0)
		fail_msg("export: %s", ghost_errmsg(g));
	assert_true(ghost_get_stats(g)->pages >= PATTERN_BYTES / 4096);
	g = ghost_free(g);
	/* The original was killed after the export, and reaped by the engine,
	 * which as its tracer collected its end. */
	assert_int_equal(waitpid(pid, &st, 0), -1);
	assert_int_equal(errno, ECHILD);
	assert_true(ghost_buffer_size(buf) > PATTERN_BYTES);

	assert_int_equal(ghost_new(&g), 0);
	assert_int_equal(ghost_plug(g, GHOST_MEMORY_READ), 0);
	assert_int_equal(ghost_associate_buffer(g, buf), 0);
	if (ghost_import(g, &import_opts, &restored) < 0)
		fail_msg("import: %s", ghost_errmsg(g));
	assert_int_equal(restored, pid);
	assert_int_equal(finish_and_status(restored), 0);
	ghost_free(g);
	ghost_buffer_unref(buf);
}

static void test_snapshot_leaves_original_running(void **state)
{
	struct ghost_buffer *buf = NULL;
	struct ghost *g = NULL;
	pid_t pid = start_target(), restored = 0;

	(void)state;
	assert_int_equal(ghost_buffer_new(0, &buf), 0);
	assert_int_equal(ghost_new(&g), 0);
	assert_int_equal(ghost_plug(g, GHOST_MEMORY_WRITE), 0);
	assert_int_equal(ghost_associate_buffer(g, buf), 0);
	if (ghost_export(g, pid, NULL) < 0)
		fail_msg("export: %s", ghost_errmsg(g));
	g = ghost_free(g);
	/* The original runs on, intact, and is not traced any more. */
	assert_int_equal(finish_and_status(pid), 0);

	assert_int_equal(ghost_new(&g), 0);
	assert_int_equal(ghost_plug(g, GHOST_MEMORY_READ), 0);
	assert_int_equal(ghost_associate_buffer(g, buf), 0);
	if (ghost_import(g, &import_opts, &restored) < 0)
		fail_msg("import: %s", ghost_errmsg(g));
	assert_int_equal(restored, pid);
	assert_int_equal(finish_and_status(restored), 0);
	ghost_free(g);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_memory_checkpoint_restart),
		cmocka_unit_test(test_snapshot_leaves_original_running),
		cmocka_unit_test(test_socket_streaming_into_other_pid_namespace),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_replace_program),
	};

	if (geteuid() != 0) {
		printf("1..0 # SKIP the engine tests need root (ptrace, clone3 set_tid)\n");
		return 0;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}

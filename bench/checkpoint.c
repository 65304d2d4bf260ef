/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench/checkpoint: checkpoint and restart times of Ghost against the physical
 * limits of the machine, measured in the same run (the Ghost report's Table 1
 * and Figures 4-7, and the targets of the engine). For each size a memhog
 * process is checkpointed to a file on tmpfs, to a file on disk (fsync'ed) and
 * to memory, then restarted from each image, and every restarted process
 * checks its own memory. See bench/README.md for the columns.
 *
 * Everything it starts is tracked by PID and killed on failure; its temporary
 * directories (one on tmpfs, one on disk) are removed on every exit path.
 */
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "ghost/ghost.h"

#include "bench.h"
#include "limits.h"

#define MAX_SIZES         16
#define MAX_REPS          64
#define READY_TIMEOUT_MS  600000U
#define VERIFY_TIMEOUT_MS 120000U
#define PID_WAIT_MS       5000U
#define TARGET_RATIO      1.3
#define TARGET_SIZE_MIB   1024
#define SPARSE_MIB        1024
#define SPARSE_PAGES      16
#define SPARSE_BASE_MIB   16
#define SPARSE_MAX_GROWTH (1024 * 1024)
#define CRIU_MIN_MAJOR    4
#define CRIU_MIN_MINOR    1

struct config {
	uint64_t sizes[MAX_SIZES];
	size_t n_sizes;
	uint64_t mgs[MAX_SIZES];
	size_t n_mgs;
	unsigned reps;
	bool sparse;
	bool criu_wanted;
	const char *tmpfs_parent;
	const char *disk_parent;
	const char *cli; /* the ghost CLI for file checkpoints and restarts; NULL: the library */
	char *memhog;
	char *mgs_prog;
	char *tmpfs_dir;
	char *disk_dir;
	char *criu; /* a usable criu (>= 4.1) or NULL */
};

/* Medians of one target's measurements, in ms; NAN where nothing was measured. */
struct row {
	double image_bytes;
	double ckpt_tmpfs, ckpt_disk, ckpt_mem, frozen;
	double rst_tmpfs, rst_disk, rst_mem;
	double criu_ckpt, criu_rst;
};

struct samples {
	double ckpt_tmpfs[MAX_REPS], ckpt_disk[MAX_REPS], ckpt_mem[MAX_REPS], frozen[MAX_REPS];
	double rst_tmpfs[MAX_REPS], rst_disk[MAX_REPS], rst_mem[MAX_REPS];
	double criu_ckpt[MAX_REPS], criu_rst[MAX_REPS];
};

/* One file image: where it lives and whether it holds a complete checkpoint. */
struct image {
	const char *what;
	char *path;
	bool sync;
	bool valid;
};

/* Report's Table 1: ghost size in KiB per matrix size. */
static const struct {
	unsigned n;
	unsigned kib;
} report_table1[] = {
	{ 500, 4229 },   { 750, 9354 },   { 1000, 12429 }, { 1250, 20629 },
	{ 1500, 24729 }, { 1750, 28833 }, { 2000, 32933 },
};

static int failures;

static void fail(void)
{
	failures++;
}

static void nan_fill(double *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		v[i] = NAN;
}

/* ---- the ghost CLI ---- */

static int cli_run(const char *const *argv, char **ret_out)
{
	int r, status;

	r = bench_run(argv, ret_out, &status);
	if (r < 0)
		return r;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		bench_err("'%s %s' failed with status %d", argv[0], argv[1],
			  WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
		free(*ret_out);
		*ret_out = NULL;
		return -EPROTO;
	}
	return 0;
}

/* ---- checkpoint ---- */

static int ckpt_file_lib(pid_t pid, const struct image *img, double *ret_frozen_ms,
			 uint64_t *ret_bytes)
{
	struct ghost_export_opts opts = { .flags = img->sync ? GHOST_EXPORT_SYNC : 0 };
	struct ghost *g = NULL;
	int fd, r;

	fd = open(img->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return bench_err_r(-errno, "cannot create '%s': %s", img->path, strerror(errno));
	r = ghost_new(&g);
	if (r >= 0)
		r = ghost_plug(g, GHOST_FILE_WRITE);
	if (r >= 0)
		r = ghost_associate_file(g, fd);
	if (r >= 0) {
		sigset_t old;

		bench_signals_block(&old);
		r = ghost_export(g, pid, &opts);
		bench_signals_restore(&old);
	}
	if (r >= 0) {
		const struct ghost_stats *st = ghost_get_stats(g);

		*ret_frozen_ms = bench_ms(st->frozen_ns);
		*ret_bytes = st->image_bytes;
	} else {
		bench_err("checkpoint of PID %d to %s failed: %s", pid, img->what,
			  g ? ghost_errmsg(g) : strerror(-r));
	}
	ghost_free(g);
	if (close(fd) < 0 && r >= 0)
		r = bench_err_r(-errno, "cannot write '%s': %s", img->path, strerror(errno));
	return r;
}

static int ckpt_file_cli(const struct config *c, pid_t pid, const struct image *img,
			 double *ret_frozen_ms, uint64_t *ret_bytes)
{
	_cleanup_free_ char *out = NULL;
	char pidstr[16];
	const char *argv[] = { c->cli, "checkpoint", pidstr, "-o", img->path, "--json",
			       img->sync ? "--sync" : NULL, NULL };
	double bytes;
	int r;

	snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
	r = cli_run(argv, &out);
	if (r < 0)
		return r;
	if (bench_json_number(out, "frozen_ms", ret_frozen_ms) < 0)
		*ret_frozen_ms = NAN;
	*ret_bytes = bench_json_number(out, "image_bytes", &bytes) < 0 ? 0 : (uint64_t)bytes;
	return 0;
}

/* Checkpoint into a file, leaving the process running; open() to close() is timed. */
static int ckpt_file(const struct config *c, pid_t pid, struct image *img, double *ret_ms,
		     double *ret_frozen_ms, uint64_t *ret_bytes)
{
	uint64_t t0;
	int r;

	img->valid = false;
	*ret_ms = NAN;
	*ret_frozen_ms = NAN;
	if (unlink(img->path) < 0 && errno != ENOENT)
		return bench_err_r(-errno, "cannot remove '%s': %s", img->path, strerror(errno));
	t0 = bench_now_ns();
	if (c->cli)
		r = ckpt_file_cli(c, pid, img, ret_frozen_ms, ret_bytes);
	else
		r = ckpt_file_lib(pid, img, ret_frozen_ms, ret_bytes);
	if (r < 0) {
		*ret_frozen_ms = NAN;
		return r;
	}
	*ret_ms = bench_ms(bench_now_ns() - t0);
	if (*ret_bytes == 0) {
		struct stat st;

		if (stat(img->path, &st) == 0)
			*ret_bytes = (uint64_t)st.st_size;
	}
	img->valid = true;
	return 0;
}

/* Checkpoint into a new memory buffer, leaving the process running. */
static int ckpt_mem(pid_t pid, size_t hint, struct ghost_buffer **ret_buf, double *ret_ms,
		    double *ret_frozen_ms)
{
	struct ghost_export_opts opts = { .flags = 0 };
	struct ghost_buffer *b = NULL;
	struct ghost *g = NULL;
	uint64_t t0;
	int r;

	t0 = bench_now_ns();
	r = ghost_buffer_new(hint, &b);
	if (r >= 0)
		r = ghost_new(&g);
	if (r >= 0)
		r = ghost_plug(g, GHOST_MEMORY_WRITE);
	if (r >= 0)
		r = ghost_associate_buffer(g, b);
	if (r >= 0) {
		sigset_t old;

		bench_signals_block(&old);
		r = ghost_export(g, pid, &opts);
		bench_signals_restore(&old);
	}
	*ret_ms = r < 0 ? NAN : bench_ms(bench_now_ns() - t0);
	if (r >= 0)
		*ret_frozen_ms = bench_ms(ghost_get_stats(g)->frozen_ns);
	else
		bench_err("checkpoint of PID %d to memory failed: %s", pid,
			  g ? ghost_errmsg(g) : strerror(-r));
	ghost_free(g);
	if (r < 0) {
		ghost_buffer_unref(b);
		return r;
	}
	*ret_buf = b;
	return 0;
}

/* ---- restart ---- */

static void import_opts_init(struct ghost_import_opts *o)
{
	*o = (struct ghost_import_opts){
		.caller_uid = getuid(),
		.caller_gid = getgid(),
		.stdio = { -1, -1, -1 },
		.pid_wait_ms = PID_WAIT_MS,
	};
}

/*
 * ghost_import() with the cleanup signals held until the new process is
 * tracked, so that an interrupted run cannot leave it behind.
 */
static int import_tracked(struct ghost *g, pid_t *ret_pid)
{
	struct ghost_import_opts opts;
	sigset_t old;
	pid_t pid = 0;
	int r;

	import_opts_init(&opts);
	bench_signals_block(&old);
	r = ghost_import(g, &opts, &pid);
	if (r >= 0 && pid > 0) {
		int q = bench_track_pid(pid);

		if (q < 0) {
			bench_kill_reap(pid);
			r = q;
		}
	}
	bench_signals_restore(&old);
	if (r >= 0)
		*ret_pid = pid;
	return r;
}

static int restart_file_lib(const struct image *img, pid_t *ret_pid)
{
	struct ghost *g = NULL;
	int fd, r;

	fd = open(img->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return bench_err_r(-errno, "cannot open '%s': %s", img->path, strerror(errno));
	r = ghost_new(&g);
	if (r >= 0)
		r = ghost_plug(g, GHOST_FILE_READ);
	if (r >= 0)
		r = ghost_associate_file(g, fd);
	if (r >= 0)
		r = import_tracked(g, ret_pid);
	if (r < 0)
		bench_err("restart from %s failed: %s", img->what,
			  g ? ghost_errmsg(g) : strerror(-r));
	ghost_free(g);
	close(fd);
	return r;
}

static int restart_file_cli(const struct config *c, const struct image *img, pid_t *ret_pid)
{
	_cleanup_free_ char *out = NULL;
	const char *argv[] = { c->cli, "restart", img->path, "-d", "--json", NULL };
	double pid;
	int r;

	r = cli_run(argv, &out);
	if (r < 0)
		return r;
	if (bench_json_number(out, "pid", &pid) < 0 || pid < 1) {
		bench_err("no PID in the output of '%s restart'", c->cli);
		return -EPROTO;
	}
	/* detached, it is our child as we are a subreaper */
	r = bench_track_pid((pid_t)pid);
	if (r < 0)
		return r;
	*ret_pid = (pid_t)pid;
	return 0;
}

/* Drop the image from the page cache so that a disk restart reads the disk. */
static void drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	fdatasync(fd);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
}

static int restart_file(const struct config *c, const struct image *img, double *ret_ms,
			pid_t *ret_pid)
{
	uint64_t t0;
	int r;

	t0 = bench_now_ns();
	if (c->cli)
		r = restart_file_cli(c, img, ret_pid);
	else
		r = restart_file_lib(img, ret_pid);
	*ret_ms = bench_ms(bench_now_ns() - t0);
	return r;
}

static int restart_mem(struct ghost_buffer *b, double *ret_ms, pid_t *ret_pid)
{
	struct ghost *g = NULL;
	uint64_t t0;
	int r;

	t0 = bench_now_ns();
	r = ghost_new(&g);
	if (r >= 0)
		r = ghost_plug(g, GHOST_MEMORY_READ);
	if (r >= 0)
		r = ghost_associate_buffer(g, b);
	if (r >= 0)
		r = import_tracked(g, ret_pid);
	*ret_ms = bench_ms(bench_now_ns() - t0);
	if (r < 0)
		bench_err("restart from memory failed: %s", g ? ghost_errmsg(g) : strerror(-r));
	ghost_free(g);
	return r;
}

/*
 * A restart returned pid (tracked): make it check itself (SIGUSR1, exit 0)
 * and reap it. A restored process with another PID than the original is a
 * failure too, after it has been checked.
 */
static int check_restored(const char *what, pid_t original, pid_t pid)
{
	int r;

	if (pid <= 0)
		return bench_err_r(-ESRCH, "restart from %s returned no PID", what);
	r = bench_verify_target(pid, VERIFY_TIMEOUT_MS);
	if (r == -EBADMSG)
		bench_err("process restarted from %s failed its self-check", what);
	else if (r < 0)
		bench_err("process restarted from %s: %s", what, strerror(-r));
	if (r >= 0 && pid != original) {
		bench_err("process restarted from %s got PID %d, not %d", what, pid, original);
		r = -ESRCH;
	}
	return r;
}

/* ---- CRIU ---- */

/* Run criu and return 0 on exit status 0. */
static int criu_run(const struct config *c, const char *const *argv)
{
	int r, status;

	r = bench_run(argv, NULL, &status);
	if (r < 0)
		return r;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		bench_err("'%s %s' failed with status %d (see its log in -D)", c->criu, argv[1],
			  WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
		return -EPROTO;
	}
	return 0;
}

/*
 * One CRIU cycle per repetition on a process of our own: dump to tmpfs (which
 * kills it), reap it, restore detached (we are its subreaper). The last
 * restored process checks itself.
 */
static int measure_criu(const struct config *c, const char *const *argv, size_t warm,
			struct samples *s)
{
	_cleanup_free_ char *dir = bench_path_join(c->tmpfs_dir, "criu");
	_cleanup_free_ char *ready = bench_path_join(c->tmpfs_dir, "ready");
	char pidstr[16];
	const char *dump[] = { c->criu, "dump", "-t", pidstr, "-D", dir, "-o", "dump.log", NULL };
	const char *restore[] = { c->criu, "restore", "-D", dir, "-d", "-o", "restore.log", NULL };
	pid_t pid;
	int r;

	if (!dir || !ready)
		return -ENOMEM;
	r = bench_spawn_target(argv, ready, &pid);
	if (r >= 0)
		r = bench_wait_ready(pid, ready, READY_TIMEOUT_MS);
	if (r < 0) {
		bench_kill_reap(pid);
		return r;
	}
	snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
	for (unsigned i = 0; i < c->reps && r >= 0; i++) {
		uint64_t t0;

		bench_rm_rf(dir);
		if (mkdir(dir, 0700) < 0) {
			r = -errno;
			break;
		}
		bench_warm_memory(warm);
		t0 = bench_now_ns();
		r = criu_run(c, dump);
		s->criu_ckpt[i] = bench_ms(bench_now_ns() - t0);
		if (r < 0)
			break;
		r = bench_wait_exit(pid, VERIFY_TIMEOUT_MS, NULL);
		if (r < 0)
			break;
		bench_warm_memory(warm);
		t0 = bench_now_ns();
		r = criu_run(c, restore);
		s->criu_rst[i] = bench_ms(bench_now_ns() - t0);
		if (r >= 0)
			r = bench_track_pid(pid);
	}
	if (r >= 0) {
		r = bench_verify_target(pid, VERIFY_TIMEOUT_MS);
		if (r < 0)
			bench_err("process restored by criu failed its check: %s", strerror(-r));
	} else {
		bench_kill_reap(pid);
	}
	bench_rm_rf(dir);
	return r;
}

/* A criu on PATH with version >= 4.1, or NULL (and why in *ret_why). */
static char *find_criu(const char **ret_why)
{
	const char *argv[] = { "criu", "--version", NULL };
	_cleanup_free_ char *out = NULL;
	const char *path = getenv("PATH"), *v;
	char *found = NULL;
	int status, major, minor;

	for (const char *p = path; p && *p;) {
		size_t len = strcspn(p, ":");
		char dir[4096];

		if (len > 0 && len < sizeof(dir)) {
			memcpy(dir, p, len);
			dir[len] = '\0';
			found = bench_path_join(dir, "criu");
			if (found && access(found, X_OK) == 0)
				break;
			free(found);
			found = NULL;
		}
		p += len + (p[len] == ':');
	}
	if (!found) {
		*ret_why = "no criu on PATH";
		return NULL;
	}
	argv[0] = found;
	if (bench_run(argv, &out, &status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
		*ret_why = "'criu --version' failed";
	} else if (!(v = strstr(out, "Version:")) ||
		   sscanf(v, "Version: %d.%d", &major, &minor) != 2) {
		*ret_why = "cannot read the version of criu";
	} else if (major < CRIU_MIN_MAJOR ||
		   (major == CRIU_MIN_MAJOR && minor < CRIU_MIN_MINOR)) {
		*ret_why = "criu older than 4.1 (it fails on this kernel's vDSO layout)";
	} else {
		return found;
	}
	free(found);
	return NULL;
}

/* ---- one target ---- */

static void row_from_samples(struct samples *s, unsigned reps, struct row *row)
{
	row->ckpt_tmpfs = bench_median(s->ckpt_tmpfs, reps);
	row->ckpt_disk = bench_median(s->ckpt_disk, reps);
	row->ckpt_mem = bench_median(s->ckpt_mem, reps);
	row->frozen = bench_median(s->frozen, reps);
	row->rst_tmpfs = bench_median(s->rst_tmpfs, reps);
	row->rst_disk = bench_median(s->rst_disk, reps);
	row->rst_mem = bench_median(s->rst_mem, reps);
	row->criu_ckpt = bench_median(s->criu_ckpt, reps);
	row->criu_rst = bench_median(s->criu_rst, reps);
}

/* One run of each physical limit, stored at index i of its samples. */
struct limit_samples {
	double readv[MAX_REPS], write_tmpfs[MAX_REPS], write_disk[MAX_REPS];
	double write_disk_sync[MAX_REPS], restore[MAX_REPS];
};

static void limit_fail(const char *what, int r)
{
	bench_err("limit %s: %s", what, strerror(-r));
	fail();
}

/* The checkpoint limits of run i, right after Ghost's checkpoints of run i. */
static void measure_ckpt_limits(const struct config *c, void *buf, size_t size, unsigned i,
				struct limit_samples *l)
{
	int r;

	r = limit_readv(buf, size, 1, &l->readv[i], NULL);
	if (r < 0)
		limit_fail("readv", r);
	r = limit_write(buf, size, c->tmpfs_dir, false, 1, &l->write_tmpfs[i]);
	if (r < 0)
		limit_fail("write to tmpfs", r);
	if (!c->disk_dir)
		return;
	r = limit_write(buf, size, c->disk_dir, false, 1, &l->write_disk[i]);
	if (r < 0)
		limit_fail("write to disk", r);
	r = limit_write(buf, size, c->disk_dir, true, 1, &l->write_disk_sync[i]);
	if (r < 0)
		limit_fail("write to disk with fsync", r);
}

/*
 * Start the target, checkpoint it reps times into each of tmpfs, disk and
 * memory (snapshots: it keeps running), let the original check itself and
 * exit (which frees its PID), then restart reps times from each image, each
 * restarted process checking itself. Failures are reported and counted; the
 * measurements that worked are kept.
 *
 * Each run of Ghost's is followed by one run of the limits it is compared
 * with (the checkpoint limits after the checkpoints, the restore limit after
 * the restarts), so that a ratio of medians compares runs made under the
 * same load of this shared machine, not a sequence of Ghost's runs with a
 * later sequence of the limits'. limit_bytes 0: no limits (lim may be NULL).
 */
static int measure_target(const struct config *c, const char *const *argv, size_t hint,
			  size_t limit_bytes, bool with_criu, struct row *row, struct limits *lim)
{
	_cleanup_free_ char *ready = bench_path_join(c->tmpfs_dir, "ready");
	_cleanup_free_ char *p_tmpfs = bench_path_join(c->tmpfs_dir, "image");
	_cleanup_free_ char *p_disk = bench_path_join(c->disk_dir, "image");
	struct image tmpfs = { "tmpfs", p_tmpfs, false, false };
	struct image disk = { "disk", p_disk, true, false };
	struct ghost_buffer *buf = NULL;
	struct samples s;
	/* each timed step allocates about hint bytes (the disk restart twice:
	 * the page cache it reads and the new process) */
	size_t warm = hint + hint / 4;
	double unused;
	uint64_t bytes = 0;
	pid_t pid = 0, rpid;
	struct limit_samples ls;
	void *lbuf = NULL;
	int r;

	nan_fill((double *)&s, sizeof(s) / sizeof(double));
	nan_fill((double *)row, sizeof(*row) / sizeof(double));
	nan_fill((double *)&ls, sizeof(ls) / sizeof(double));
	if (lim)
		*lim = (struct limits){ NAN, NAN, NAN, NAN, NAN };
	if (!ready || !p_tmpfs || !p_disk)
		return -ENOMEM;
	r = limit_bytes ? limits_buffer_new(limit_bytes, &lbuf) : 0;
	if (r < 0) {
		bench_err("a ready buffer of %zu bytes for the limits: %s", limit_bytes,
			  strerror(-r));
		fail();
		lbuf = NULL;
	}

	r = bench_spawn_target(argv, ready, &pid);
	if (r >= 0)
		r = bench_wait_ready(pid, ready, READY_TIMEOUT_MS);
	if (r < 0) {
		bench_err("target '%s %s' did not get ready: %s", argv[0], argv[1], strerror(-r));
		bench_kill_reap(pid);
		limits_buffer_free(lbuf, limit_bytes);
		fail();
		return r;
	}

	for (unsigned i = 0; i < c->reps; i++) {
		uint64_t b = 0;

		/* each call reports its own errors */
		bench_warm_memory(warm);
		r = ckpt_file(c, pid, &tmpfs, &s.ckpt_tmpfs[i], &s.frozen[i], &b);
		if (r < 0)
			fail();
		else
			bytes = b;
		bench_warm_memory(warm);
		r = ckpt_file(c, pid, &disk, &s.ckpt_disk[i], &unused, &b);
		if (r < 0)
			fail();
		buf = ghost_buffer_unref(buf);
		bench_warm_memory(warm);
		r = ckpt_mem(pid, hint, &buf, &s.ckpt_mem[i], &unused);
		if (r < 0)
			fail();
		else if (!bytes)
			bytes = ghost_buffer_size(buf);
		if (lbuf) {
			measure_ckpt_limits(c, lbuf, limit_bytes, i, &ls);
			fprintf(stderr,
				"raw: %zu MiB run %u: checkpoint tmpfs %.1f ms, disk %.1f ms, "
				"memory %.1f ms; limits: readv %.1f ms, write tmpfs %.1f ms\n",
				limit_bytes / MIB, i + 1, s.ckpt_tmpfs[i], s.ckpt_disk[i],
				s.ckpt_mem[i], ls.readv[i], ls.write_tmpfs[i]);
		}
	}
	row->image_bytes = bytes ? (double)bytes : NAN;

	/* the snapshots must have left the original intact */
	r = bench_verify_target(pid, VERIFY_TIMEOUT_MS);
	if (r < 0) {
		bench_err("original process after its checkpoints: %s",
			  r == -EBADMSG ? "self-check failed" : strerror(-r));
		fail();
	}

	for (unsigned i = 0; i < c->reps; i++) {
		if (buf) {
			rpid = 0;
			bench_warm_memory(warm);
			r = restart_mem(buf, &s.rst_mem[i], &rpid);
			if (r >= 0)
				r = check_restored("memory", pid, rpid);
			if (r < 0) {
				s.rst_mem[i] = NAN;
				fail();
			}
		}
		if (tmpfs.valid) {
			rpid = 0;
			bench_warm_memory(warm);
			r = restart_file(c, &tmpfs, &s.rst_tmpfs[i], &rpid);
			if (r >= 0)
				r = check_restored("tmpfs", pid, rpid);
			if (r < 0) {
				s.rst_tmpfs[i] = NAN;
				fail();
			}
		}
		if (lbuf) {
			r = limit_restore(lbuf, limit_bytes, 1, &ls.restore[i], NULL);
			if (r < 0)
				limit_fail("restore", r);
			fprintf(stderr,
				"raw: %zu MiB run %u: restart memory %.1f ms, tmpfs %.1f ms; "
				"limit: restore %.1f ms\n",
				limit_bytes / MIB, i + 1, s.rst_mem[i], s.rst_tmpfs[i],
				ls.restore[i]);
		}
		if (disk.valid) {
			drop_cache(disk.path);
			rpid = 0;
			bench_warm_memory(2 * warm);
			r = restart_file(c, &disk, &s.rst_disk[i], &rpid);
			if (r >= 0)
				r = check_restored("disk", pid, rpid);
			if (r < 0) {
				s.rst_disk[i] = NAN;
				fail();
			}
		}
	}
	ghost_buffer_unref(buf);
	unlink(tmpfs.path);
	unlink(disk.path);
	limits_buffer_free(lbuf, limit_bytes);
	if (lim) {
		lim->readv_ms = bench_median(ls.readv, c->reps);
		lim->write_tmpfs_ms = bench_median(ls.write_tmpfs, c->reps);
		if (c->disk_dir) {
			lim->write_disk_ms = bench_median(ls.write_disk, c->reps);
			lim->write_disk_sync_ms = bench_median(ls.write_disk_sync, c->reps);
		}
		lim->restore_ms = bench_median(ls.restore, c->reps);
	}

	if (with_criu && c->criu) {
		r = measure_criu(c, argv, warm, &s);
		if (r < 0)
			fail();
	}
	row_from_samples(&s, c->reps, row);
	return 0;
}

/* ---- tables ---- */

static void print_main_header(const struct config *c)
{
	printf("\n%6s %7s | %30s %8s | %30s | %17s | %17s", "size", "image", "checkpoint ms",
	       "frozen", "restart ms", "limit ms", "ratio");
	if (c->criu)
		printf(" | %17s", "criu tmpfs ms");
	printf("\n%6s %7s | %9s %9s %9s  %8s | %9s %9s %9s | %8s %8s | %8s %8s", "MiB", "MiB",
	       "tmpfs", "disk", "mem", "ms", "tmpfs", "disk", "mem", "ckpt", "restore",
	       "ckpt", "restart");
	if (c->criu)
		printf(" | %8s %8s", "ckpt", "restart");
	printf("\n");
}

static void print_main_row(const struct config *c, uint64_t mib, const struct row *w,
			   const struct limits *l)
{
	double ckpt_lim = limits_ckpt_tmpfs_ms(l);

	printf("%6llu", (unsigned long long)mib);
	bench_cell(w->image_bytes / (double)MIB, 7, 1);
	printf(" |");
	bench_cell(w->ckpt_tmpfs, 9, 1);
	bench_cell(w->ckpt_disk, 9, 1);
	bench_cell(w->ckpt_mem, 9, 1);
	printf(" ");
	bench_cell(w->frozen, 8, 1);
	printf(" |");
	bench_cell(w->rst_tmpfs, 9, 1);
	bench_cell(w->rst_disk, 9, 1);
	bench_cell(w->rst_mem, 9, 1);
	printf(" |");
	bench_cell(ckpt_lim, 8, 1);
	bench_cell(l->restore_ms, 8, 1);
	printf(" |");
	bench_cell(w->ckpt_tmpfs / ckpt_lim, 8, 2);
	bench_cell(w->rst_tmpfs / l->restore_ms, 8, 2);
	if (c->criu) {
		printf(" |");
		bench_cell(w->criu_ckpt, 8, 1);
		bench_cell(w->criu_rst, 8, 1);
	}
	printf("\n");
	fflush(stdout);
}

static void print_target(const char *what, double ms, const char *base, double base_ms,
			 double max_ratio)
{
	double ratio = ms / base_ms;

	printf("target: %-32s %8.1f ms / %-6s %8.1f ms = %5.2f (<= %.1f)  %s\n", what, ms, base,
	       base_ms, ratio, max_ratio,
	       isnan(ratio) ? "UNKNOWN" : ratio <= max_ratio ? "PASS" : "MISS");
}

/* ---- the sparse check ---- */

/* Image size, in memory, of memhog with argv; the restored copy checks itself. */
static int sparse_image(const struct config *c, const char *const *argv, uint64_t *ret_bytes)
{
	_cleanup_free_ char *ready = bench_path_join(c->tmpfs_dir, "ready");
	struct ghost_buffer *buf = NULL;
	double ms, frozen;
	pid_t pid = 0, rpid = 0;
	int r;

	if (!ready)
		return -ENOMEM;
	r = bench_spawn_target(argv, ready, &pid);
	if (r >= 0)
		r = bench_wait_ready(pid, ready, READY_TIMEOUT_MS);
	if (r >= 0)
		r = ckpt_mem(pid, 64 * MIB, &buf, &ms, &frozen);
	if (r < 0) {
		bench_kill_reap(pid);
		return r;
	}
	*ret_bytes = ghost_buffer_size(buf);
	r = bench_verify_target(pid, VERIFY_TIMEOUT_MS);
	if (r >= 0)
		r = restart_mem(buf, &ms, &rpid);
	if (r >= 0)
		r = check_restored("memory (sparse check)", pid, rpid);
	ghost_buffer_unref(buf);
	return r;
}

static void sparse_check(const struct config *c)
{
	char base[16], spec[32];
	const char *plain[] = { c->memhog, base, NULL };
	const char *sparse[] = { c->memhog, base, "--sparse", spec, NULL };
	uint64_t a = 0, b = 0;
	int r;

	snprintf(base, sizeof(base), "%d", SPARSE_BASE_MIB);
	snprintf(spec, sizeof(spec), "%d:%d", SPARSE_MIB, SPARSE_PAGES);
	r = sparse_image(c, plain, &a);
	if (r >= 0)
		r = sparse_image(c, sparse, &b);
	if (r < 0) {
		bench_err("sparse check: %s", strerror(-r));
		printf("target: sparse %d MiB mapping, %d pages touched: FAILED\n", SPARSE_MIB,
		       SPARSE_PAGES);
		fail();
		return;
	}
	printf("target: sparse %d MiB mapping, %d pages touched: image %llu KiB vs %llu KiB "
	       "without, %+lld KiB (< %d KiB)  %s\n",
	       SPARSE_MIB, SPARSE_PAGES, (unsigned long long)(b / 1024),
	       (unsigned long long)(a / 1024), ((long long)b - (long long)a) / 1024,
	       SPARSE_MAX_GROWTH / 1024, b < a + SPARSE_MAX_GROWTH ? "PASS" : "MISS");
}

/* ---- MGS ---- */

static void mgs_table(const struct config *c)
{
	printf("\nModified Gram-Schmidt (the Ghost report's Table 1, Figures 4-7); medians of %u "
	       "runs, ms\n",
	       c->reps);
	printf("%6s %9s %9s | %9s %9s %9s %8s | %9s %9s %9s\n", "N", "image", "report",
	       "ckpt", "ckpt", "ckpt", "frozen", "restart", "restart", "restart");
	printf("%6s %9s %9s | %9s %9s %9s %8s | %9s %9s %9s\n", "", "KiB", "KiB", "mem",
	       "tmpfs", "disk", "ms", "mem", "tmpfs", "disk");
	for (size_t i = 0; i < c->n_mgs; i++) {
		char nstr[24];
		const char *argv[] = { c->mgs_prog, nstr, NULL };
		double report = NAN;
		struct row w;

		snprintf(nstr, sizeof(nstr), "%llu", (unsigned long long)c->mgs[i]);
		for (size_t k = 0; k < ARRAY_SIZE(report_table1); k++)
			if (report_table1[k].n == c->mgs[i])
				report = report_table1[k].kib;
		measure_target(c, argv, 12 * c->mgs[i] * c->mgs[i] + 4 * MIB, 0, false, &w, NULL);
		printf("%6llu", (unsigned long long)c->mgs[i]);
		bench_cell(w.image_bytes / 1024, 9, 0);
		bench_cell(report, 9, 0);
		printf(" |");
		bench_cell(w.ckpt_mem, 9, 1);
		bench_cell(w.ckpt_tmpfs, 9, 1);
		bench_cell(w.ckpt_disk, 9, 1);
		bench_cell(w.frozen, 8, 1);
		printf(" |");
		bench_cell(w.rst_mem, 9, 1);
		bench_cell(w.rst_tmpfs, 9, 1);
		bench_cell(w.rst_disk, 9, 1);
		printf("\n");
		fflush(stdout);
	}
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: checkpoint [OPTIONS]\n"
		"  --sizes MIB,...    memhog sizes (default 16,256,1024)\n"
		"  --reps N           repetitions, medians reported (default 3)\n"
		"  --mgs N,...|none   MGS matrix sizes (default 500,750,...,2000)\n"
		"  --no-sparse        skip the sparse-mapping check\n"
		"  --no-criu          skip the CRIU comparison\n"
		"  --cli PATH         checkpoint and restart files with the ghost CLI\n"
		"  --tmpfs-dir DIR    where tmpfs images go (default /dev/shm)\n"
		"  --disk-dir DIR     where disk images go (default /var/tmp)\n"
		"  --memhog PATH      the memhog target (default: next to this program)\n"
		"  --mgs-prog PATH    the mgs target (default: next to this program)\n"
		"  --no-warm          do not touch and free memory before each timed step (by\n"
		"                     default each step, Ghost's and the limits' alike, gets\n"
		"                     memory the machine already backs; see bench.h)\n");
}

static int parse_args(int argc, char **argv, struct config *c)
{
	static const struct option opts[] = {
		{ "sizes", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ "mgs", required_argument, NULL, 'm' },
		{ "no-sparse", no_argument, NULL, 'S' },
		{ "no-criu", no_argument, NULL, 'C' },
		{ "cli", required_argument, NULL, 'c' },
		{ "tmpfs-dir", required_argument, NULL, 't' },
		{ "disk-dir", required_argument, NULL, 'd' },
		{ "memhog", required_argument, NULL, 'M' },
		{ "mgs-prog", required_argument, NULL, 'G' },
		{ "no-warm", no_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	uint64_t reps;
	size_t n;
	int o;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		switch (o) {
		case 's':
			if (bench_parse_list(optarg, c->sizes, MAX_SIZES, &c->n_sizes) < 0)
				return bench_err_r(-EINVAL, "bad size list '%s'", optarg);
			for (size_t i = 0; i < c->n_sizes; i++)
				if (c->sizes[i] == 0 || c->sizes[i] > (1ULL << 20))
					return bench_err_r(-EINVAL, "bad size '%s'", optarg);
			break;
		case 'r':
			if (bench_parse_list(optarg, &reps, 1, &n) < 0 || reps < 1 ||
			    reps > MAX_REPS)
				return bench_err_r(-EINVAL, "bad repetition count '%s'", optarg);
			c->reps = (unsigned)reps;
			break;
		case 'm':
			if (!strcmp(optarg, "none"))
				c->n_mgs = 0;
			else if (bench_parse_list(optarg, c->mgs, MAX_SIZES, &c->n_mgs) < 0)
				return bench_err_r(-EINVAL, "bad matrix size list '%s'", optarg);
			for (size_t i = 0; i < c->n_mgs; i++)
				if (c->mgs[i] < 2 || c->mgs[i] > 65536)
					return bench_err_r(-EINVAL, "bad matrix size '%s'", optarg);
			break;
		case 'S':
			c->sparse = false;
			break;
		case 'C':
			c->criu_wanted = false;
			break;
		case 'c':
			c->cli = optarg;
			break;
		case 't':
			c->tmpfs_parent = optarg;
			break;
		case 'd':
			c->disk_parent = optarg;
			break;
		case 'M':
			free(c->memhog);
			c->memhog = strdup(optarg);
			break;
		case 'G':
			free(c->mgs_prog);
			c->mgs_prog = strdup(optarg);
			break;
		case 'W':
			bench_warm_disable();
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}

static int setup(struct config *c)
{
	_cleanup_free_ char *self = NULL;
	int r;

	r = bench_self_dir(&self);
	if (r < 0)
		return bench_err_r(r, "cannot find my own directory: %s", strerror(-r));
	if (!c->memhog)
		c->memhog = bench_path_join(self, "memhog");
	if (!c->mgs_prog)
		c->mgs_prog = bench_path_join(self, "mgs");
	if (!c->memhog || !c->mgs_prog)
		return -ENOMEM;
	if (access(c->memhog, X_OK) < 0 || (c->n_mgs && access(c->mgs_prog, X_OK) < 0))
		return bench_err_r(-ENOENT, "target programs '%s', '%s' not found", c->memhog,
				   c->mgs_prog);

	/* restarted processes detached by the CLI, and criu's, become our children */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return bench_err_r(-errno, "cannot become a subreaper: %s", strerror(errno));
	r = bench_install_signals();
	if (r >= 0)
		r = bench_mkdtemp(c->tmpfs_parent, &c->tmpfs_dir);
	if (r >= 0)
		r = bench_mkdtemp(c->disk_parent, &c->disk_dir);
	if (r < 0)
		return bench_err_r(r, "cannot create temporary directories: %s", strerror(-r));
	if (bench_is_tmpfs(c->tmpfs_dir) != 1)
		bench_err("warning: '%s' is not on tmpfs", c->tmpfs_parent);
	if (bench_is_tmpfs(c->disk_dir) != 0)
		bench_err("warning: '%s' is not on a disk file system", c->disk_parent);
	return 0;
}

int main(int argc, char **argv)
{
	struct config c = {
		.sizes = { 16, 256, 1024 },
		.n_sizes = 3,
		.mgs = { 500, 750, 1000, 1250, 1500, 1750, 2000 },
		.n_mgs = 7,
		.reps = 3,
		.sparse = true,
		.criu_wanted = true,
		.tmpfs_parent = "/dev/shm",
		.disk_parent = "/var/tmp",
	};
	struct limits lims[MAX_SIZES];
	struct row rows[MAX_SIZES];
	const char *criu_why = "disabled with --no-criu";
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	r = parse_args(argc, argv, &c);
	if (r != 0)
		return r > 0 ? 0 : 2;
	r = setup(&c);
	if (r < 0) {
		bench_cleanup();
		return 1;
	}
	if (c.criu_wanted)
		c.criu = find_criu(&criu_why);

	printf("ghost checkpoint benchmark: medians of %u runs; files through the %s;\n"
	       "tmpfs images in %s, disk images in %s (fsync'ed; read back cold)\n",
	       c.reps, c.cli ? "ghost CLI" : "library", c.tmpfs_parent, c.disk_parent);
	if (c.criu)
		printf("criu: %s, dump and restore -d on tmpfs\n", c.criu);
	else
		printf("criu: comparison skipped (%s)\n", criu_why);

	print_main_header(&c);
	for (size_t i = 0; i < c.n_sizes; i++) {
		char mib[24];
		const char *hog[] = { c.memhog, mib, NULL };

		snprintf(mib, sizeof(mib), "%llu", (unsigned long long)c.sizes[i]);
		measure_target(&c, hog, c.sizes[i] * MIB + 4 * MIB, c.sizes[i] * MIB, true, &rows[i],
			       &lims[i]);
		print_main_row(&c, c.sizes[i], &rows[i], &lims[i]);
	}

	printf("\nphysical limits (medians of %u runs)\n", c.reps);
	limits_print_header();
	for (size_t i = 0; i < c.n_sizes; i++)
		limits_print_row(c.sizes[i] * MIB, &lims[i]);

	printf("\n");
	for (size_t i = 0; i < c.n_sizes; i++) {
		if (c.sizes[i] != TARGET_SIZE_MIB)
			continue;
		print_target("checkpoint 1 GiB to tmpfs", rows[i].ckpt_tmpfs, "limit",
			     limits_ckpt_tmpfs_ms(&lims[i]), TARGET_RATIO);
		print_target("restart 1 GiB from tmpfs", rows[i].rst_tmpfs, "limit",
			     lims[i].restore_ms, TARGET_RATIO);
		if (c.criu) {
			print_target("checkpoint 1 GiB to tmpfs", rows[i].ckpt_tmpfs, "criu",
				     rows[i].criu_ckpt, 1.0);
			print_target("restart 1 GiB from tmpfs", rows[i].rst_tmpfs, "criu",
				     rows[i].criu_rst, 1.0);
		}
		break;
	}
	for (size_t i = 0; i <= c.n_sizes; i++)
		if (i == c.n_sizes)
			printf("target: 1 GiB ratios not checked (1024 is not in --sizes)\n");
		else if (c.sizes[i] == TARGET_SIZE_MIB)
			break;
	if (c.sparse)
		sparse_check(&c);

	if (c.n_mgs)
		mgs_table(&c);

	r = bench_kill_children();
	if (r > 0) {
		bench_err("%d process(es) were left behind, killed", r);
		fail();
	}
	bench_cleanup();
	free(c.memhog);
	free(c.mgs_prog);
	free(c.tmpfs_dir);
	free(c.disk_dir);
	free(c.criu);
	if (failures) {
		printf("\n%d failure(s): see the messages above\n", failures);
		return 1;
	}
	return 0;
}

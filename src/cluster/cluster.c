/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The caller's side of a local cluster: bring it up (prepare the run
 * directory, fork the keeper, wait for its report), load its state, take it
 * down, and start a command inside a node.
 *
 * cluster_up() and its undo:
 *   1. make the run directory's missing parents (recorded) and the directory
 *      itself (mkdir failing with EEXIST is the "already up" test);
 *   2. key (getrandom, 0600), cluster.conf, the state file without processes;
 *   3. fork the keeper (keeper.c), which builds the switch and the nodes and
 *      answers "ok" or "error ERRNO TEXT" on a pipe.
 * On an error the keeper has stopped every node it started before it
 * answers, and it removes the directories; here we reap it and remove them
 * too, which also covers a keeper that died or did not answer in time.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fileio.h"
#include "cluster/cluster-int.h"
#include "base/banned.h"

#define DEFAULT_TIMEOUT_MS 10000
/* How long cluster_down() gives the keeper to stop its nodes, then the
 * processes to be reaped (the host's PID 1 may take a while). */
#define DOWN_STOP_MS 5000
#define DOWN_REAP_MS 10000

const char *cluster_dir_default(void)
{
	const char *e = getenv(CLUSTER_DIR_ENV);

	return e && *e ? e : CLUSTER_DEFAULT_DIR;
}

struct cluster *cluster_free(struct cluster *c)
{
	if (!c)
		return NULL;
	for (size_t i = 0; i < c->n_created; i++)
		free(c->created[i]);
	free(c->created);
	free(c->nodes);
	free(c->dir);
	free(c);
	return NULL;
}

const char *cluster_get_dir(const struct cluster *c)
{
	return c ? c->dir : NULL;
}

pid_t cluster_keeper_pid(const struct cluster *c)
{
	return c ? c->keeper_pid : 0;
}

bool cluster_is_running(const struct cluster *c)
{
	return c && c->keeper_alive;
}

size_t cluster_n_nodes(const struct cluster *c)
{
	return c ? c->n_nodes : 0;
}

const struct cluster_node *cluster_get_node(const struct cluster *c, size_t i)
{
	return c && i < c->n_nodes ? &c->nodes[i] : NULL;
}

const struct cluster_node *cluster_find_node(const struct cluster *c, uint32_t id)
{
	for (size_t i = 0; c && i < c->n_nodes; i++)
		if (c->nodes[i].id == id)
			return &c->nodes[i];
	return NULL;
}

/* dir made absolute, without trailing slashes. */
static int absolute_dir(const char *dir, char **ret)
{
	struct buf b = BUF_INIT;
	int r = 0;

	if (!dir || !*dir)
		return -EINVAL;
	if (dir[0] != '/') {
		_cleanup_free_ char *cwd = getcwd(NULL, 0);

		if (!cwd)
			return -errno;
		r = buf_printf(&b, "%s/", strcmp(cwd, "/") == 0 ? "" : cwd);
	}
	if (r >= 0)
		r = buf_printf(&b, "%s", dir);
	if (r < 0) {
		buf_release(&b);
		return r;
	}
	while (b.len > 1 && b.data[b.len - 1] == '/')
		b.data[--b.len] = '\0';
	*ret = buf_detach(&b, NULL);
	return *ret ? 0 : -ENOMEM;
}

char *cluster_node_file(const char *dir, uint32_t id, const char *name)
{
	struct buf b = BUF_INIT;

	if (buf_printf(&b, "%s/node%u/%s", dir, id, name) < 0) {
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b, NULL);
}

/* path, if it is an executable regular file, made absolute into ret. */
static int try_exe(const char *path, char **ret)
{
	struct stat st;
	char *abs;

	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || access(path, X_OK) < 0)
		return -ENOENT;
	abs = realpath(path, NULL);
	if (!abs)
		return -errno;
	*ret = abs;
	return 0;
}

int cluster_find_ghostd(char **ret, struct buf *err)
{
	const char *env = getenv(CLUSTER_GHOSTD_ENV), *path;
	_cleanup_free_ char *self = NULL, *dirs = NULL;
	struct buf b = BUF_INIT;
	int r;

	if (!ret)
		return -EINVAL;
	if (env && *env) {
		r = try_exe(env, ret);
		if (r < 0)
			return cl_fail(err, r, "$%s names '%s', which is not an executable file",
				       CLUSTER_GHOSTD_ENV, env);
		return 0;
	}
	self = realpath("/proc/self/exe", NULL);
	if (self) {
		char *slash = strrchr(self, '/');

		*slash = '\0';
		r = buf_printf(&b, "%s/ghostd", self);
		if (r >= 0 && try_exe(b.data, ret) >= 0)
			goto found;
		buf_reset(&b);
		r = r < 0 ? r : buf_printf(&b, "%s/../ghostd/ghostd", self);
		if (r >= 0 && try_exe(b.data, ret) >= 0)
			goto found;
		if (r < 0) {
			buf_release(&b);
			return cl_fail(err, -ENOMEM, "out of memory");
		}
	}
	path = getenv("PATH");
	dirs = strdup(path ? path : "");
	if (!dirs) {
		buf_release(&b);
		return cl_fail(err, -ENOMEM, "out of memory");
	}
	for (char *d = dirs, *next; d; d = next) {
		next = strchr(d, ':');
		if (next)
			*next++ = '\0';
		if (!*d)
			continue;
		buf_reset(&b);
		if (buf_printf(&b, "%s/ghostd", d) < 0) {
			buf_release(&b);
			return cl_fail(err, -ENOMEM, "out of memory");
		}
		if (try_exe(b.data, ret) >= 0)
			goto found;
	}
	buf_release(&b);
	return cl_fail(err, -ENOENT,
		       "cannot find ghostd, the node daemon: set $%s, or put ghostd next to "
		       "ghost or in $PATH",
		       CLUSTER_GHOSTD_ENV);
found:
	buf_release(&b);
	return 0;
}

static void check_alive(struct cluster *c)
{
	c->keeper_alive = cl_proc_life(c->keeper_pid, c->keeper_start) == CL_PROC_ALIVE;
	for (size_t i = 0; i < c->n_nodes; i++) {
		struct cluster_node *n = &c->nodes[i];

		n->up = cl_proc_life(n->pid, n->start_time) == CL_PROC_ALIVE;
	}
}

int cluster_load(const char *dir, struct cluster **ret, struct buf *err)
{
	_cleanup_free_ char *abs = NULL;
	struct cluster *c;
	int r;

	if (!ret)
		return -EINVAL;
	r = absolute_dir(dir ? dir : cluster_dir_default(), &abs);
	if (r < 0)
		return cl_fail_errno(err, r, "bad run directory");
	r = cl_state_read(abs, &c, err);
	if (r < 0)
		return r;
	check_alive(c);
	*ret = c;
	return 0;
}

int cluster_local_control(char **ret)
{
	struct cluster *c = NULL;
	int r;

	if (!ret)
		return -EINVAL;
	r = cluster_load(NULL, &c, NULL);
	if (r < 0)
		return r;
	if (!cluster_is_running(c) || !cluster_find_node(c, 1)) {
		cluster_free(c);
		return -ENOENT;
	}
	*ret = cluster_node_file(cluster_get_dir(c), 1, CLUSTER_GHOSTD_SOCKET);
	cluster_free(c);
	return *ret ? 0 : -ENOMEM;
}

/* The run directory exists: say why, for cluster_up(). */
static int explain_existing(const char *dir, struct buf *err)
{
	struct cluster *c = NULL;
	int r = cl_state_read(dir, &c, NULL);

	if (r < 0)
		return cl_fail(err, -EEXIST, "'%s' exists and holds no cluster state: not using it",
			       dir);
	check_alive(c);
	if (c->keeper_alive)
		r = cl_fail(err, -EEXIST, "a cluster of %zu nodes is already up in '%s'",
			    c->n_nodes, dir);
	else if (c->keeper_pid == 0)
		r = cl_fail(err, -EEXIST,
			    "a cluster is being built in '%s', or its 'up' was interrupted "
			    "(run 'ghost cluster down' to clean up)",
			    dir);
	else
		r = cl_fail(
			err, -EEXIST,
			"the cluster in '%s' is not running (run 'ghost cluster down' to clean up)",
			dir);
	cluster_free(c);
	return r;
}

static int make_dirs(struct cluster *c, struct buf *err)
{
	_cleanup_free_ char *p = strdup(c->dir);

	if (!p)
		return cl_fail(err, -ENOMEM, "out of memory");
	for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
		int r;

		*s = '\0';
		if (mkdir(p, 0755) == 0) {
			r = cl_state_add_created(c, p);
			if (r < 0) {
				(void)rmdir(p);
				return cl_fail(err, r, "out of memory");
			}
		} else if (errno != EEXIST) {
			return cl_fail_errno(err, -errno, "cannot create '%s'", p);
		}
		*s = '/';
	}
	if (mkdir(c->dir, 0755) < 0) {
		if (errno == EEXIST)
			return explain_existing(c->dir, err);
		return cl_fail_errno(err, -errno, "cannot create '%s'", c->dir);
	}
	return 0;
}

static void remove_dirs(const struct cluster *c, bool run_dir)
{
	if (run_dir)
		(void)cl_rm_rf(c->dir);
	for (size_t i = c->n_created; i > 0; i--)
		(void)rmdir(c->created[i - 1]);
}

static int make_node_dir(const char *dir, uint32_t id, struct buf *err)
{
	_cleanup_free_ char *logs = cluster_node_file(dir, id, CLUSTER_GHOSTD_LOG_DIR);
	char *slash;

	if (!logs)
		return cl_fail(err, -ENOMEM, "out of memory");
	slash = strrchr(logs, '/');
	*slash = '\0';
	if (mkdir(logs, 0755) < 0)
		return cl_fail_errno(err, -errno, "cannot create '%s'", logs);
	*slash = '/';
	if (mkdir(logs, 0755) < 0)
		return cl_fail_errno(err, -errno, "cannot create '%s'", logs);
	return 0;
}

static int write_files(struct cluster *c, bool encrypt, struct buf *err)
{
	struct cluster_config conf = CLUSTER_CONFIG_INIT;
	uint8_t key[CLUSTER_KEY_SIZE];
	struct buf path = BUF_INIT, text = BUF_INIT;
	size_t got = 0;
	int r = 0;

	while (got < sizeof(key)) {
		ssize_t n = getrandom(key + got, sizeof(key) - got, 0);

		if (n < 0 && errno != EINTR)
			return cl_fail_errno(err, -errno, "cannot get random bytes for the key");
		if (n > 0)
			got += (size_t)n;
	}
	r = buf_printf(&path, "%s/%s", c->dir, CLUSTER_KEY_FILE);
	if (r >= 0) {
		r = cl_write_new_file(path.data, key, sizeof(key), 0600);
		if (r < 0)
			r = cl_fail_errno(err, r, "cannot write '%s'", path.data);
	}
	explicit_bzero(key, sizeof(key));

	if (r >= 0) {
		conf.key_file = path.data;
		conf.encrypt = encrypt;
		conf.nodes = NEW_ARRAY(struct cluster_config_node, c->n_nodes);
		r = conf.nodes ? 0 : -ENOMEM;
	}
	for (size_t i = 0; r >= 0 && i < c->n_nodes; i++) {
		conf.nodes[i].id = c->nodes[i].id;
		conf.nodes[i].port = c->nodes[i].port;
		snprintf(conf.nodes[i].address, sizeof(conf.nodes[i].address), "%s",
			 c->nodes[i].address);
		conf.n_nodes++;
	}
	if (r >= 0)
		r = cluster_config_format(&conf, &text);
	free(conf.nodes);
	buf_reset(&path);
	if (r >= 0)
		r = buf_printf(&path, "%s/%s", c->dir, CLUSTER_CONFIG_FILE);
	if (r >= 0) {
		r = cl_write_new_file(path.data, text.data, text.len, 0644);
		if (r < 0)
			r = cl_fail_errno(err, r, "cannot write '%s'", path.data);
	} else {
		r = cl_fail(err, r, "out of memory");
	}
	if (r >= 0) {
		r = cl_state_write(c);
		if (r < 0)
			r = cl_fail_errno(err, r, "cannot write the state file in '%s'", c->dir);
	}
	/* Each node's daemon gets a directory: control socket, log, logs/. */
	for (size_t i = 0; r >= 0 && i < c->n_nodes; i++)
		r = make_node_dir(c->dir, c->nodes[i].id, err);
	buf_release(&path);
	buf_release(&text);
	return r;
}

/* Read the keeper's one-line answer, waiting at most timeout_ms. */
static int read_report(int fd, unsigned timeout_ms, struct buf *line)
{
	uint64_t end = cl_now_ms() + timeout_ms;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint64_t now = cl_now_ms();
		char chunk[256];
		ssize_t n;
		int r;

		if (line->len && line->data[line->len - 1] == '\n')
			return 0;
		if (now >= end)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)(end - now));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			continue;
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPIPE;
		r = buf_append(line, chunk, (size_t)n);
		if (r < 0)
			return r;
	}
}

static int run_keeper(struct cluster *c, const struct cluster_up_opts *o, struct buf *err)
{
	struct cl_keeper_args a = {
		.c = c,
		.timeout_ms = o->timeout_ms,
		.fault = getenv("GHOST_CLUSTER_FAULT"),
		.ghostd = o->ghostd,
	};
	struct buf line = BUF_INIT;
	bool answered = false;
	int p[2], r, st;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return cl_fail_errno(err, -errno, "cannot make a pipe");
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(p[0]);
		close(p[1]);
		return cl_fail_errno(err, r, "cannot fork the cluster keeper");
	}
	if (pid == 0) {
		close(p[0]);
		a.report_fd = p[1];
		cl_keeper_main(&a);
	}
	close(p[1]);
	/* The keeper keeps its own time; give it room to stop what it built. */
	r = read_report(p[0], o->timeout_ms + DOWN_STOP_MS, &line);
	close(p[0]);
	if (r >= 0 && line.data && strcmp(line.data, "ok\n") == 0) {
		buf_release(&line);
		return 0;
	}
	if (r >= 0 && line.data && strncmp(line.data, "error ", 6) == 0) {
		char *text = NULL;

		answered = true;
		long e = strtol(line.data + 6, &text, 10);

		if (e <= 0 || e > 4095)
			e = EIO;
		if (text && *text == ' ')
			text++;
		if (text)
			text[strcspn(text, "\n")] = '\0';
		r = cl_fail(err, (int)-e, "%s", text && *text ? text : "the cluster keeper failed");
	} else if (r == -ETIMEDOUT) {
		r = cl_fail(err, r, "the cluster keeper did not answer in time");
	} else {
		r = cl_fail(err, r < 0 ? r : -EPROTO, "the cluster keeper died while building");
	}
	buf_release(&line);
	/* It is our child: the PID is ours to signal until we reap it. An init
	 * whose keeper is gone sees EOF on its control socket and ends its node.
	 * A keeper that answered is stopping its nodes: let it finish. */
	if (!answered)
		(void)kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return r;
}

int cluster_up(const struct cluster_up_opts *opts, struct cluster **ret, struct buf *err)
{
	struct cluster_up_opts o = CLUSTER_UP_OPTS_INIT;
	_cleanup_free_ char *ghostd = NULL;
	struct cluster *c;
	bool made_dir = false;
	int r;

	if (opts)
		o = *opts;
	if (o.n_nodes < 1 || o.n_nodes > CLUSTER_MAX_NODES)
		return cl_fail(err, -EINVAL, "a cluster has 1 to %d nodes, not %u",
			       CLUSTER_MAX_NODES, o.n_nodes);
	if (!o.timeout_ms)
		o.timeout_ms = DEFAULT_TIMEOUT_MS;
	if (geteuid() != 0)
		return cl_fail(err, -EPERM,
			       "a local cluster needs root (namespaces, network devices)");
	if (!o.ghostd) {
		r = cluster_find_ghostd(&ghostd, err);
		if (r < 0)
			return r;
		o.ghostd = ghostd;
	}

	c = calloc(1, sizeof(*c));
	if (!c)
		return cl_fail(err, -ENOMEM, "out of memory");
	r = absolute_dir(o.dir ? o.dir : cluster_dir_default(), &c->dir);
	if (r < 0) {
		cluster_free(c);
		return cl_fail_errno(err, r, "bad run directory");
	}
	c->nodes = NEW_ARRAY(struct cluster_node, o.n_nodes);
	if (!c->nodes) {
		cluster_free(c);
		return cl_fail(err, -ENOMEM, "out of memory");
	}
	c->n_nodes = o.n_nodes;
	for (unsigned i = 0; i < o.n_nodes; i++) {
		struct cluster_node *n = &c->nodes[i];

		n->id = i + 1;
		n->port = CLUSTER_DEFAULT_PORT;
		snprintf(n->hostname, sizeof(n->hostname), "node%u", n->id);
		snprintf(n->address, sizeof(n->address), CLUSTER_NET_PREFIX "%u", n->id);
	}

	r = make_dirs(c, err);
	if (r >= 0) {
		made_dir = true;
		r = write_files(c, o.encrypt, err);
	}
	if (r >= 0)
		r = run_keeper(c, &o, err);
	if (r < 0) {
		remove_dirs(c, made_dir);
		cluster_free(c);
		return r;
	}
	cluster_free(c);
	if (!ret)
		return 0;
	r = cluster_load(o.dir ? o.dir : cluster_dir_default(), ret, err);
	return r;
}

static int wait_gone(const struct cluster *c, uint64_t end)
{
	for (;;) {
		bool all = cl_proc_life(c->keeper_pid, c->keeper_start) == CL_PROC_GONE;

		for (size_t i = 0; all && i < c->n_nodes; i++)
			all = cl_proc_life(c->nodes[i].pid, c->nodes[i].start_time) == CL_PROC_GONE;
		if (all)
			return 0;
		if (cl_now_ms() >= end)
			return -ETIMEDOUT;
		(void)poll(NULL, 0, 20);
	}
}

int cluster_down(const char *dir, struct buf *err)
{
	_cleanup_free_ char *abs = NULL;
	struct cluster *c = NULL;
	struct stat st;
	int r, fd;

	r = absolute_dir(dir ? dir : cluster_dir_default(), &abs);
	if (r < 0 || !abs)
		return cl_fail_errno(err, r < 0 ? r : -ENOMEM, "bad run directory");
	r = cl_state_read(abs, &c, err);
	if (r == -ENOENT && stat(abs, &st) == 0)
		return cl_fail(err, -ENOTDIR, "'%s' holds no cluster state file: not removing it",
			       abs);
	if (r < 0)
		return r;

	/* The keeper stops its nodes gracefully; it gets DOWN_STOP_MS. */
	fd = cl_pidfd_open_checked(c->keeper_pid, c->keeper_start);
	if (fd >= 0) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (cl_pidfd_signal(fd, SIGTERM) >= 0 && poll(&p, 1, DOWN_STOP_MS) <= 0)
			(void)cl_pidfd_signal(fd, SIGKILL);
		close(fd);
	}
	/* An init left over (its keeper killed before it could stop it) goes now. */
	for (size_t i = 0; i < c->n_nodes; i++) {
		fd = cl_pidfd_open_checked(c->nodes[i].pid, c->nodes[i].start_time);
		if (fd >= 0) {
			(void)cl_pidfd_signal(fd, SIGKILL);
			close(fd);
		}
	}
	/* Dead is not enough: wait until their parents have reaped them. Only
	 * zombies can be left after SIGKILL, and they hold no namespace. */
	if (wait_gone(c, cl_now_ms() + DOWN_REAP_MS) < 0) {
		bool alive = cl_proc_life(c->keeper_pid, c->keeper_start) == CL_PROC_ALIVE;

		for (size_t i = 0; !alive && i < c->n_nodes; i++)
			alive = cl_proc_life(c->nodes[i].pid, c->nodes[i].start_time) ==
				CL_PROC_ALIVE;
		if (alive) {
			r = cl_fail(err, -ETIMEDOUT, "the cluster's processes would not end");
			cluster_free(c);
			return r;
		}
	}
	r = cl_rm_rf(c->dir);
	if (r < 0)
		r = cl_fail_errno(err, r, "cannot remove '%s'", c->dir);
	remove_dirs(c, false);
	cluster_free(c);
	return r;
}

struct spawn_error {
	int stage; /* 0: entering the namespaces, 1: exec */
	int err;
};

static _Noreturn void spawn_child(int pidfd, int parent_pidfd, int errfd, const char *cwd,
				  char *const argv[])
{
	struct spawn_error e = { 0, 0 };
	struct pollfd p = { .fd = parent_pidfd, .events = POLLIN };
	sigset_t none;

	/* Die with the caller, as a command dies with its ssh session. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || poll(&p, 1, 0) != 0)
		_exit(127);
	close(parent_pidfd);
	if (setns(pidfd, CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNS) < 0) {
		e.err = errno;
		goto fail;
	}
	close(pidfd);
	if (!cwd || chdir(cwd) < 0)
		(void)chdir("/");
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	execvp(argv[0], argv);
	e.stage = 1;
	e.err = errno;
fail:
	(void)write_full(errfd, &e, sizeof(e));
	_exit(127);
}

int cluster_node_spawn(const struct cluster *c, uint32_t id, char *const argv[], pid_t *ret_pid,
		       struct buf *err)
{
	const struct cluster_node *n = cluster_find_node(c, id);
	_cleanup_close_ int pidfd = -1, self_ns = -1, parent = -1;
	_cleanup_free_ char *cwd = NULL;
	struct spawn_error e;
	int p[2], r, st;
	ssize_t got;
	pid_t pid;

	if (!argv || !argv[0] || !ret_pid)
		return -EINVAL;
	if (!n)
		return cl_fail(err, -EHOSTUNREACH, "the cluster has no node %u", id);
	pidfd = cl_pidfd_open_checked(n->pid, n->start_time);
	if (pidfd < 0)
		return cl_fail(err, -EHOSTDOWN, "node %u is down", id);
	self_ns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	if (self_ns < 0)
		return cl_fail_errno(err, -errno, "cannot open '/proc/self/ns/pid'");
	parent = cl_pidfd_open(getpid());
	if (parent < 0)
		return cl_fail_errno(err, parent, "pidfd_open");
	cwd = getcwd(NULL, 0);
	if (pipe2(p, O_CLOEXEC) < 0)
		return cl_fail_errno(err, -errno, "cannot make a pipe");

	/* Our next child is born in the node's PID namespace; we stay where we are. */
	if (setns(pidfd, CLONE_NEWPID) < 0) {
		r = -errno;
		close(p[0]);
		close(p[1]);
		return cl_fail(err, -EHOSTDOWN, "cannot enter node %u's PID namespace: %s", id,
			       strerror(-r));
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		spawn_child(pidfd, parent, p[1], cwd, argv);
	}
	r = pid < 0 ? -errno : 0;
	(void)setns(self_ns, CLONE_NEWPID);
	close(p[1]);
	if (r < 0) {
		close(p[0]);
		return cl_fail_errno(err, r, "cannot fork");
	}
	got = read_full(p[0], &e, sizeof(e));
	close(p[0]);
	if (got != (ssize_t)sizeof(e)) {
		*ret_pid = pid;
		return 0;
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (e.stage == 0)
		return cl_fail(err, -EHOSTDOWN, "cannot enter node %u's namespaces: %s", id,
			       strerror(e.err));
	return cl_fail(err, -e.err, "cannot run '%s' in node %u: %s", argv[0], id, strerror(e.err));
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The run directory's state file, and the helpers that tell whether the
 * processes it names are still the ones the cluster started (PID plus start
 * time, so a reused PID is never signalled).
 *
 * State file, one record per line, fields separated by one space:
 *
 *   ghost-cluster-state 1
 *   created DIR                      a parent directory cluster_up() made
 *   keeper PID START                 absent until the cluster is built
 *   node ID PID START ADDRESS PORT   one per node, after the keeper
 *
 * cluster_up() writes it without keeper and nodes before it starts building,
 * so that cluster_down() can always tell what to remove; the keeper rewrites
 * it whole (temporary file, then rename) once every node is ready.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/fileio.h"
#include "cluster/cluster-int.h"
#include "base/banned.h"

#define STATE_MAGIC "ghost-cluster-state 1"

int cl_fail(struct buf *err, int r, const char *fmt, ...)
{
	va_list ap;

	if (r >= 0)
		r = -EIO;
	if (!err)
		return r;
	buf_reset(err);
	va_start(ap, fmt);
	(void)buf_vprintf(err, fmt, ap);
	va_end(ap);
	return r;
}

int cl_fail_errno(struct buf *err, int r, const char *fmt, ...)
{
	va_list ap;

	if (r >= 0)
		r = -EIO;
	if (!err)
		return r;
	buf_reset(err);
	va_start(ap, fmt);
	(void)buf_vprintf(err, fmt, ap);
	va_end(ap);
	(void)buf_printf(err, ": %s", strerror(-r));
	return r;
}

uint64_t cl_now_ms(void)
{
	return now_ns() / 1000000u;
}

static char *path_join(const char *dir, const char *name)
{
	struct buf b = BUF_INIT;

	if (buf_printf(&b, "%s/%s", dir, name) < 0)
		return NULL;
	return buf_detach(&b, NULL);
}

/* Split line into at most max blank-separated fields, in place. */
static size_t split(char *line, char **f, size_t max)
{
	size_t n = 0;
	char *p = line;

	while (*p && n < max) {
		while (*p == ' ' || *p == '\t')
			*p++ = '\0';
		if (!*p)
			break;
		f[n++] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	return *p ? max + 1 : n;
}

static int parse_u32(const char *s, uint32_t *ret)
{
	uint64_t v;
	int r = parse_u64(s, 10, &v);

	if (r < 0 || v > UINT32_MAX)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

int cl_state_add_created(struct cluster *c, const char *path)
{
	char **n;

	n = reallocarray(c->created, c->n_created + 1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	c->created = n;
	c->created[c->n_created] = strdup(path);
	if (!c->created[c->n_created])
		return -ENOMEM;
	c->n_created++;
	return 0;
}

static int parse_node(struct cluster *c, char **f)
{
	struct cluster_node *nodes, *n;
	uint32_t id, port;
	pid_t pid;
	uint64_t start;

	if (parse_u32(f[1], &id) < 0 || id == 0 || parse_pid(f[2], &pid) < 0 ||
	    parse_u64(f[3], 10, &start) < 0 || strlen(f[4]) >= sizeof(n->address) ||
	    parse_u32(f[5], &port) < 0 || port == 0 || port > 65535)
		return -EINVAL;
	if (c->n_nodes >= CLUSTER_MAX_NODES || cluster_find_node(c, id))
		return -EINVAL;
	nodes = reallocarray(c->nodes, c->n_nodes + 1, sizeof(*nodes));
	if (!nodes)
		return -ENOMEM;
	c->nodes = nodes;
	n = &nodes[c->n_nodes++];
	*n = (struct cluster_node){
		.id = id, .port = (uint16_t)port, .pid = pid, .start_time = start
	};
	snprintf(n->hostname, sizeof(n->hostname), "node%u", id);
	snprintf(n->address, sizeof(n->address), "%s", f[4]);
	return 0;
}

int cl_state_read(const char *dir, struct cluster **ret, struct buf *err)
{
	_cleanup_free_ char *path = path_join(dir, CLUSTER_STATE_FILE);
	struct buf text = BUF_INIT;
	struct cluster *c;
	unsigned lineno = 0;
	char *line, *next;
	int r;

	if (!path)
		return cl_fail(err, -ENOMEM, "out of memory");
	r = read_file_at(AT_FDCWD, path, &text);
	if (r < 0) {
		buf_release(&text);
		if (r == -ENOENT)
			return cl_fail(err, r, "no cluster in '%s'", dir);
		return cl_fail(err, r, "cannot read '%s': %s", path, strerror(-r));
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->dir = strdup(dir))) {
		free(c);
		buf_release(&text);
		return cl_fail(err, -ENOMEM, "out of memory");
	}
	r = 0;
	for (line = text.data; line && *line && r >= 0; line = next) {
		char *f[7] = { NULL };
		size_t n;

		lineno++;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (lineno == 1) {
			if (strcmp(line, STATE_MAGIC) != 0)
				r = -EINVAL;
			continue;
		}
		n = split(line, f, 6);
		if (n == 2 && strcmp(f[0], "created") == 0 && f[1][0] == '/')
			r = cl_state_add_created(c, f[1]);
		else if (n == 3 && strcmp(f[0], "keeper") == 0 && !c->keeper_pid)
			r = parse_pid(f[1], &c->keeper_pid) < 0 ||
					    parse_u64(f[2], 10, &c->keeper_start) < 0
				    ? -EINVAL
				    : 0;
		else if (n == 6 && strcmp(f[0], "node") == 0)
			r = parse_node(c, f);
		else
			r = -EINVAL;
	}
	buf_release(&text);
	if (r >= 0 && lineno == 0)
		r = -EINVAL;
	if (r < 0) {
		cluster_free(c);
		if (r == -ENOMEM)
			return cl_fail(err, r, "out of memory");
		return cl_fail(err, r, "'%s' is damaged (line %u)", path, lineno);
	}
	*ret = c;
	return 0;
}

int cl_write_new_file(const char *path, const void *data, size_t len, mode_t mode)
{
	_cleanup_close_ int fd =
		open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	int r;

	if (fd < 0)
		return -errno;
	/* The mode is exact whatever the umask. */
	if (fchmod(fd, mode) < 0)
		r = -errno;
	else
		r = write_full(fd, data, len);
	if (r >= 0 && close(TAKE_FD(fd)) < 0)
		r = -errno;
	if (r < 0)
		unlink(path);
	return r;
}

int cl_state_write(const struct cluster *c)
{
	_cleanup_free_ char *path = path_join(c->dir, CLUSTER_STATE_FILE);
	_cleanup_free_ char *tmp = path_join(c->dir, CLUSTER_STATE_FILE ".tmp");
	struct buf b = BUF_INIT;
	int r;

	if (!path || !tmp)
		return -ENOMEM;
	r = buf_printf(&b, "%s\n", STATE_MAGIC);
	for (size_t i = 0; r >= 0 && i < c->n_created; i++)
		r = buf_printf(&b, "created %s\n", c->created[i]);
	if (r >= 0 && c->keeper_pid > 0)
		r = buf_printf(&b, "keeper %d %llu\n", (int)c->keeper_pid,
			       (unsigned long long)c->keeper_start);
	for (size_t i = 0; r >= 0 && c->keeper_pid > 0 && i < c->n_nodes; i++) {
		const struct cluster_node *n = &c->nodes[i];

		r = buf_printf(&b, "node %u %d %llu %s %u\n", n->id, (int)n->pid,
			       (unsigned long long)n->start_time, n->address, n->port);
	}
	if (r >= 0) {
		(void)unlink(tmp);
		r = cl_write_new_file(tmp, b.data, b.len, 0644);
	}
	if (r >= 0 && rename(tmp, path) < 0) {
		r = -errno;
		unlink(tmp);
	}
	buf_release(&b);
	return r;
}

static int rm_rf_at(int dirfd, const char *name, dev_t dev)
{
	struct stat st;
	DIR *d;
	int fd, r = 0;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	if (st.st_dev != dev)
		return -EXDEV;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		r = -errno;
		close(fd);
		return r;
	}
	for (struct dirent *e; (e = readdir(d));) {
		int k;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		k = rm_rf_at(fd, e->d_name, dev);
		if (k < 0 && r == 0)
			r = k;
	}
	closedir(d);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
		r = -errno;
	return r;
}

int cl_rm_rf(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	return rm_rf_at(AT_FDCWD, path, st.st_dev);
}

static int int_cmp(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

void cl_close_all_fds_but(const int *keep, size_t n)
{
	int sorted[8] = { 0 };
	unsigned from = 0;
	size_t m = 0;

	for (size_t i = 0; i < n && m < ARRAY_SIZE(sorted); i++)
		if (keep[i] >= 0)
			sorted[m++] = keep[i];
	qsort(sorted, m, sizeof(sorted[0]), int_cmp);
	for (size_t i = 0; i < m; i++) {
		if ((unsigned)sorted[i] > from)
			close_range(from, (unsigned)sorted[i] - 1, 0);
		from = (unsigned)sorted[i] + 1;
	}
	close_range(from, ~0u, 0);
}

int cl_proc_stat(pid_t pid, uint64_t *ret_start, char *ret_state)
{
	char path[32], *p;
	struct buf b = BUF_INIT;
	unsigned long long start;
	char state;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	r = read_file_at(AT_FDCWD, path, &b);
	if (r < 0) {
		buf_release(&b);
		return r == -ENOENT || r == -ESRCH ? -ESRCH : r;
	}
	/* The command name may hold anything, ')' included: skip to the last one.
	 * Then field 3 is the state and field 22 the start time. */
	p = b.data ? strrchr(b.data, ')') : NULL;
	r = p && sscanf(p + 1,
			" %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
			"%*d %*d %llu",
			&state, &start) == 2
		    ? 0
		    : -EIO;
	buf_release(&b);
	if (r < 0)
		return r;
	if (ret_start)
		*ret_start = start;
	if (ret_state)
		*ret_state = state;
	return 0;
}

enum cl_proc_life cl_proc_life(pid_t pid, uint64_t start)
{
	uint64_t s;
	char state;

	if (pid <= 0 || cl_proc_stat(pid, &s, &state) < 0 || s != start)
		return CL_PROC_GONE;
	return state == 'Z' || state == 'X' ? CL_PROC_ZOMBIE : CL_PROC_ALIVE;
}

int cl_pidfd_open(pid_t pid)
{
	return RET_ERRNO(syscall(SYS_pidfd_open, pid, 0));
}

int cl_pidfd_signal(int pidfd, int sig)
{
	return RET_ERRNO(syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0));
}

int cl_pidfd_open_checked(pid_t pid, uint64_t start)
{
	int fd;

	if (pid <= 0)
		return -ESRCH;
	fd = cl_pidfd_open(pid);
	if (fd < 0)
		return fd;
	/* The pidfd names whatever had the PID when it was opened: if that is
	 * still our process now, it was then too (ours is older). */
	if (cl_proc_life(pid, start) != CL_PROC_ALIVE) {
		close(fd);
		return -ESRCH;
	}
	return fd;
}

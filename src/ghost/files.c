/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * File descriptors: describe each fd of a stopped process as an open file
 * description (FILE record, shared by every fd that points at it) and an fd
 * (FD record); and, at import, open those descriptions again in the engine so
 * the new process can take them over at the same numbers.
 *
 * Kinds carried: regular files (checked at restart), deleted files (content
 * stored), directories, a few character devices, pipes and AF_UNIX
 * socketpairs whose both ends are in the process (queued bytes stored, in
 * order), epoll instances with their registrations (epoll.c reads and checks
 * them; the new process makes them again itself, once every fd is at its
 * number), and with a shell job, terminals and outside pipes on fds 0-2, which
 * become the restarter's stdio. Anything else is refused by name, or dropped
 * when the caller asked for that. Fds the caller carries itself (the streams
 * of a migration) are recorded as what they were, without data, whatever
 * they are; the importer puts placeholders at their numbers.
 *
 * Queued bytes are read without disturbing the process: tee() for pipes,
 * MSG_PEEK for stream sockets; datagrams are read and queued again through the
 * peer end, in the same order, while the process is stopped.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define LOG_PREFIX "files"
#include "base/fileio.h"
#include "base/log.h"
#include "base/sockdiag.h"
#include "ghost/ghost-int.h"
#include "base/banned.h"

#define DATA_CHUNK (4u << 20)

struct fd_entry {
	int fd;
	int fd_flags;
	bool carried; /* named by the caller as carried */
	char *link;
	struct stat sb;
	uint64_t pos;
	uint32_t flags;
	uint32_t file_id; /* 0: dropped */
	bool first;       /* first fd of its description */
	struct img_file file;
	char *path;
	uint64_t sock_peer_ino;
	uint32_t sock_shutdown;
	int copy; /* our copy of the fd (pidfd_getfd), -1 if not taken */
	struct img_epoll_tfd *ep; /* an epoll instance: its registrations */
	size_t nep;
};

static int fd_cmp(const void *a, const void *b)
{
	const struct fd_entry *x = a, *y = b;

	return (x->fd > y->fd) - (x->fd < y->fd);
}

static int read_fdinfo(pid_t pid, int fd, uint64_t *pos, uint32_t *flags)
{
	struct buf b = BUF_INIT;
	char path[64];
	char *p;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd);
	r = read_file_at(AT_FDCWD, path, &b);
	if (r < 0)
		goto out;
	p = strstr(b.data, "pos:");
	*pos = p ? strtoull(p + 4, NULL, 10) : 0;
	p = strstr(b.data, "flags:");
	*flags = p ? (uint32_t)strtoul(p + 6, NULL, 8) : 0;
out:
	buf_release(&b);
	return r;
}

static bool same_description(pid_t pid, int fd1, int fd2)
{
	return syscall(SYS_kcmp, pid, pid, KCMP_FILE, fd1, fd2) == 0;
}

static bool is_terminal(const struct stat *sb)
{
	unsigned maj = major(sb->st_rdev);

	return S_ISCHR(sb->st_mode) && (maj == 4 || maj == 5 || (maj >= 136 && maj <= 143));
}

static bool is_plain_chr(const struct stat *sb)
{
	unsigned maj = major(sb->st_rdev), min = minor(sb->st_rdev);

	return S_ISCHR(sb->st_mode) && maj == 1 &&
	       (min == 3 || min == 5 || min == 7 || min == 8 || min == 9);
}

static const char *describe_unsupported(const struct fd_entry *e)
{
	if (S_ISSOCK(e->sb.st_mode))
		return "a socket other than a socketpair inside the process";
	if (strncmp(e->link, "anon_inode:", 11) == 0)
		return e->link + 11;
	if (S_ISFIFO(e->sb.st_mode))
		return "a named FIFO";
	if (S_ISCHR(e->sb.st_mode))
		return "a character device";
	if (S_ISBLK(e->sb.st_mode))
		return "a block device";
	return "a file of an unsupported kind";
}

static void entries_free(struct fd_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].link);
		free(e[i].path);
		free(e[i].ep);
		safe_close(e[i].copy);
	}
	free(e);
}

static int list_fds(struct ghost *g, pid_t pid, struct fd_entry **ret, size_t *ret_n)
{
	char path[64];
	DIR *d;
	struct dirent *de;
	struct fd_entry *e = NULL;
	size_t n = 0, cap = 0;
	int r = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d)
		return ghost_fail(g, -errno, "cannot list %s: %m", path);
	while ((de = readdir(d))) {
		int fd;
		char lpath[96], link[4096];
		ssize_t len;

		if (de->d_name[0] == '.' || parse_int(de->d_name, &fd) < 0)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			struct fd_entry *ne = reallocarray(e, ncap, sizeof(*ne));

			if (!ne) {
				r = ghost_fail(g, -ENOMEM, "out of memory");
				goto out;
			}
			e = ne;
			cap = ncap;
		}
		e[n] = (struct fd_entry){ .fd = fd, .copy = -1 };
		snprintf(lpath, sizeof(lpath), "/proc/%d/fd/%d", pid, fd);
		len = readlink(lpath, link, sizeof(link) - 1);
		if (len < 0) {
			r = ghost_fail(g, -errno, "cannot read %s: %m", lpath);
			goto out;
		}
		link[len] = '\0';
		e[n].link = strdup(link);
		if (!e[n].link) {
			r = ghost_fail(g, -ENOMEM, "out of memory");
			goto out;
		}
		if (stat(lpath, &e[n].sb) < 0) {
			r = ghost_fail(g, -errno, "cannot stat fd %d of process %d: %m", fd, pid);
			n++;
			goto out;
		}
		r = read_fdinfo(pid, fd, &e[n].pos, &e[n].flags);
		if (r < 0) {
			ghost_fail(g, r, "cannot read fdinfo %d of process %d: %s", fd, pid,
				   ghost_strerror(r));
			n++;
			goto out;
		}
		e[n].fd_flags = (e[n].flags & O_CLOEXEC) ? FD_CLOEXEC : 0;
		e[n].flags &= ~(uint32_t)O_CLOEXEC;
		n++;
	}
	qsort(e, n, sizeof(*e), fd_cmp);
out:
	closedir(d);
	if (r < 0) {
		entries_free(e, n);
		return r;
	}
	*ret = e;
	*ret_n = n;
	return 0;
}

static int take_copy(struct ghost *g, int pidfd, struct fd_entry *e)
{
	if (e->copy >= 0)
		return 0;
	e->copy = (int)syscall(SYS_pidfd_getfd, pidfd, e->fd, 0);
	if (e->copy < 0)
		return ghost_fail(g, -errno, "cannot take a copy of fd %d: %m", e->fd);
	return 0;
}

static int write_data(struct img_writer *w, uint32_t id, uint64_t off, const void *p, size_t len)
{
	struct img_file_data d = { .file_id = id, .offset = off };

	return img_write_record(w, IMG_REC_FILE_DATA, &d, sizeof(d), p, len);
}

/* Bytes queued in a pipe, read with tee() so they stay where they are. */
static int dump_pipe_data(struct ghost *g, struct img_writer *w, struct fd_entry *rd)
{
	int p[2] = { -1, -1 };
	_cleanup_free_ char *data = NULL;
	int avail = 0, size, r = 0;
	ssize_t n;

	if (ioctl(rd->copy, FIONREAD, &avail) < 0)
		return ghost_fail(g, -errno, "FIONREAD on pipe fd %d: %m", rd->fd);
	if (avail == 0)
		return 0;
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return ghost_fail(g, -errno, "pipe: %m");
	size = fcntl(rd->copy, F_GETPIPE_SZ);
	if (size > 0 && fcntl(p[1], F_SETPIPE_SZ, size) < 0) {
		r = ghost_fail(g, -errno, "cannot size a pipe to %d bytes: %m", size);
		goto out;
	}
	n = tee(rd->copy, p[1], (size_t)avail, SPLICE_F_NONBLOCK);
	if (n != avail) {
		r = ghost_fail(g, n < 0 ? -errno : -EIO, "cannot copy the %d bytes queued in pipe fd %d",
			       avail, rd->fd);
		goto out;
	}
	data = malloc((size_t)avail);
	if (!data) {
		r = ghost_fail(g, -ENOMEM, "out of memory");
		goto out;
	}
	if (read_full(p[0], data, (size_t)avail) != avail) {
		r = ghost_fail(g, -EIO, "cannot read back queued pipe data");
		goto out;
	}
	r = write_data(w, rd->file_id, 0, data, (size_t)avail);
	if (r < 0)
		ghost_fail(g, r, "cannot write the image: %s", ghost_strerror(r));
out:
	safe_close(p[0]);
	safe_close(p[1]);
	return r;
}

/* Bytes queued for reading on one end of a socketpair. */
static int dump_sock_data(struct ghost *g, struct img_writer *w, struct fd_entry *end,
			  struct fd_entry *peer)
{
	int r;

	if (end->file.sock_type == SOCK_STREAM) {
		int avail = 0;
		_cleanup_free_ char *data = NULL;
		ssize_t n;

		if (ioctl(end->copy, FIONREAD, &avail) < 0)
			return ghost_fail(g, -errno, "FIONREAD on socket fd %d: %m", end->fd);
		if (avail == 0)
			return 0;
		data = malloc((size_t)avail);
		if (!data)
			return ghost_fail(g, -ENOMEM, "out of memory");
		n = recv(end->copy, data, (size_t)avail, MSG_PEEK | MSG_DONTWAIT);
		if (n != avail)
			return ghost_fail(g, -EIO, "cannot peek the %d bytes queued on fd %d", avail,
					  end->fd);
		r = write_data(w, end->file_id, 0, data, (size_t)avail);
		if (r < 0)
			return ghost_fail(g, r, "cannot write the image: %s", ghost_strerror(r));
		return 0;
	}

	/* Datagrams: take each one out and queue it again through the peer. */
	{
		struct buf msgs = BUF_INIT;
		size_t count = 0;
		char *buf = malloc(1 << 16);

		if (!buf)
			return ghost_fail(g, -ENOMEM, "out of memory");
		r = 0;
		for (;;) {
			ssize_t n = recv(end->copy, buf, 1 << 16, MSG_DONTWAIT);
			uint32_t len;

			if (n < 0) {
				if (errno != EAGAIN)
					r = ghost_fail(g, -errno, "cannot read datagrams of fd %d: %m",
						       end->fd);
				break;
			}
			len = (uint32_t)n;
			if (buf_append(&msgs, &len, sizeof(len)) < 0 ||
			    buf_append(&msgs, buf, len) < 0) {
				r = ghost_fail(g, -ENOMEM, "out of memory");
				break;
			}
			count++;
		}
		free(buf);
		/* Put back whatever was taken, even after an error. */
		for (size_t off = 0; off < msgs.len;) {
			uint32_t len;

			memcpy(&len, msgs.data + off, sizeof(len));
			if (send(peer->copy, msgs.data + off + sizeof(len), len, MSG_DONTWAIT) < 0 &&
			    r >= 0)
				r = ghost_fail(g, -errno, "cannot queue a datagram again on fd %d: %m",
					       end->fd);
			if (r >= 0) {
				int e = write_data(w, end->file_id, 0, msgs.data + off + sizeof(len),
						   len);
				if (e < 0)
					r = ghost_fail(g, e, "cannot write the image: %s",
						       ghost_strerror(e));
			}
			off += sizeof(len) + len;
		}
		buf_release(&msgs);
		(void)count;
		return r;
	}
}

static int dump_deleted(struct ghost *g, struct img_writer *w, struct fd_entry *e)
{
	char path[64];
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = malloc(DATA_CHUNK);
	uint64_t off = 0;
	int r;

	if (!buf)
		return ghost_fail(g, -ENOMEM, "out of memory");
	snprintf(path, sizeof(path), "/proc/self/fd/%d", e->copy);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ghost_fail(g, -errno, "cannot read deleted file '%s': %m", e->path);
	for (;;) {
		ssize_t n = pread(fd, buf, DATA_CHUNK, (off_t)off);

		if (n < 0)
			return ghost_fail(g, -errno, "cannot read deleted file '%s': %m", e->path);
		if (n == 0)
			break;
		r = write_data(w, e->file_id, off, buf, (size_t)n);
		if (r < 0)
			return ghost_fail(g, r, "cannot write the image: %s", ghost_strerror(r));
		off += (uint64_t)n;
	}
	return 0;
}

/* The first fd of the description with inode ino (and access mode want_acc
 * unless < 0), carried or not as asked. */
static struct fd_entry *find_by_ino(struct fd_entry *e, size_t n, uint64_t ino, int want_acc,
				    bool carried)
{
	for (size_t i = 0; i < n; i++)
		if (e[i].file_id && e[i].first && e[i].sb.st_ino == ino &&
		    e[i].carried == carried &&
		    (want_acc < 0 || (int)(e[i].flags & O_ACCMODE) == want_acc))
			return &e[i];
	return NULL;
}

/* Mark the carried fds; every one must be open. */
static int mark_carried(struct ghost *g, pid_t pid, struct fd_entry *e, size_t n,
			const struct files_dump_opts *o)
{
	for (size_t k = 0; k < o->n_carried; k++) {
		size_t i;

		for (i = 0; i < n && e[i].fd != o->carried[k]; i++)
			;
		if (i == n)
			return ghost_fail(g, -EBADF, "fd %d of process %d, to be carried, is not open",
					  o->carried[k], pid);
		e[i].carried = true;
	}
	return 0;
}

/* A carried description: what it was, no data. */
static int describe_carried(struct ghost *g, int pidfd, struct fd_entry *x)
{
	struct img_file *f = &x->file;

	f->kind = IMG_FILE_CARRIED;
	x->path = strdup(x->link);
	if (!x->path)
		return ghost_fail(g, -ENOMEM, "out of memory");
	if (S_ISSOCK(x->sb.st_mode)) {
		socklen_t len = sizeof(int);
		int type = 0, r;

		r = take_copy(g, pidfd, x);
		if (r < 0)
			return r;
		if (getsockopt(x->copy, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
			return ghost_fail(g, -errno, "cannot read the socket type of fd %d: %m",
					  x->fd);
		f->sock_type = (uint32_t)type;
	}
	return 0;
}

static struct fd_entry *find_fd(struct fd_entry *e, size_t n, int fd)
{
	struct fd_entry key = { .fd = fd };

	return bsearch(&key, e, n, sizeof(*e), fd_cmp);
}

/* The registrations of epoll instance x (its first fd), each checked to be
 * for the file now at its fd number, into x->ep. A registration whose fd was
 * closed or replaced since cannot be made again: refused, or dropped when
 * asked, as is one whose fd is dropped. */
static int read_epoll(struct ghost *g, pid_t pid, struct fd_entry *e, size_t n,
		      struct fd_entry *x, bool drop)
{
	_cleanup_free_ struct ep_tfd *t = NULL;
	size_t nt = 0;
	int r;

	r = ep_tfds_read(pid, x->fd, &t, &nt);
	if (r < 0)
		return ghost_fail(g, r, "cannot read the registrations of epoll fd %d of process %d: %s",
				  x->fd, pid, ghost_strerror(r));
	x->ep = NEW_ARRAY(struct img_epoll_tfd, nt);
	if (!x->ep)
		return ghost_fail(g, -ENOMEM, "out of memory");
	for (size_t i = 0; i < nt; i++) {
		struct fd_entry *target = find_fd(e, n, t[i].tfd);
		const char *why = NULL;

		if (!target) {
			why = "which was closed after it was registered";
		} else {
			r = ep_tfd_is_current(pid, x->fd, &t[i], &target->sb);
			if (r < 0)
				return ghost_fail(g, r,
						  "cannot compare fd %d of process %d with what epoll fd %d registered: %s",
						  t[i].tfd, pid, x->fd, ghost_strerror(r));
			if (r == 0)
				why = "which holds another file since it was registered (closed and reopened, or dup2'ed over)";
		}
		if (why && !drop)
			return ghost_fail(g, GHOST_EUNSUPPORTED,
					  "epoll fd %d of process %d watches fd %d, %s: the registration cannot be restored; use --drop-unsupported to drop it",
					  x->fd, pid, t[i].tfd, why);
		if (why || !target->file_id) {
			log_info("dropping the registration of fd %d in epoll fd %d of process %d (%s)",
				 t[i].tfd, x->fd, pid, why ? why : "the fd is dropped");
			continue;
		}
		x->ep[x->nep++] = (struct img_epoll_tfd){ .tfd = (uint32_t)t[i].tfd,
							  .file_id = target->file_id,
							  .events = t[i].events,
							  .data = t[i].data };
	}
	return 0;
}

static int write_epoll(struct ghost *g, struct img_writer *w, const struct fd_entry *x)
{
	for (size_t i = 0; i < x->nep; i += IMG_EPOLL_TFDS_PER_REC) {
		size_t k = MIN(x->nep - i, (size_t)IMG_EPOLL_TFDS_PER_REC);
		struct img_epoll ep = { .file_id = x->file_id, .count = (uint32_t)k };
		int r = img_write_record(w, IMG_REC_EPOLL, &ep, sizeof(ep), &x->ep[i],
					 k * sizeof(x->ep[0]));

		if (r < 0)
			return ghost_fail(g, r, "cannot write the image: %s", ghost_strerror(r));
	}
	return 0;
}

int files_dump(struct ghost *g, struct img_writer *w, pid_t pid, const struct files_dump_opts *o,
	       uint64_t *ret_nfds)
{
	struct fd_entry *e = NULL;
	size_t n = 0;
	uint32_t next_id = 1;
	_cleanup_close_ int pidfd = -1;
	uint64_t nfds = 0;
	int r;

	r = list_fds(g, pid, &e, &n);
	if (r < 0)
		return r;
	r = mark_carried(g, pid, e, n, o);
	if (r < 0)
		goto out;
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		r = ghost_fail(g, -errno, "pidfd_open(%d): %m", pid);
		goto out;
	}

	/* 1. Classify each fd and give each open file description an id. */
	for (size_t i = 0; i < n; i++) {
		struct fd_entry *x = &e[i];
		struct img_file *f = &x->file;
		bool stdio_ok = o->shell_job && x->fd <= 2;
		const char *why = NULL;

		for (size_t j = 0; j < i; j++)
			if (e[j].file_id && e[j].first && e[j].sb.st_ino == x->sb.st_ino &&
			    e[j].sb.st_dev == x->sb.st_dev && same_description(pid, e[j].fd, x->fd)) {
				if (e[j].carried != x->carried) {
					r = ghost_fail(g, GHOST_EUNSUPPORTED,
						       "fds %d and %d of process %d share one open file description but only fd %d is carried; carry both or neither",
						       e[j].fd, x->fd, pid,
						       e[j].carried ? e[j].fd : x->fd);
					goto out;
				}
				x->file_id = e[j].file_id;
				break;
			}
		if (x->file_id)
			continue;

		*f = (struct img_file){ .flags = x->flags, .pos = x->pos,
					.size = (uint64_t)x->sb.st_size, .mode = x->sb.st_mode,
					.rdev = x->sb.st_rdev, .dev = x->sb.st_dev,
					.ino = x->sb.st_ino,
					.mtime_ns = (int64_t)x->sb.st_mtim.tv_sec * 1000000000ll +
						    x->sb.st_mtim.tv_nsec };
		if (x->carried) {
			r = describe_carried(g, pidfd, x);
			if (r < 0)
				goto out;
		} else if (ep_is_link(x->link)) {
			f->kind = IMG_FILE_EPOLL;
		} else if (S_ISREG(x->sb.st_mode)) {
			const char *del = strstr(x->link, " (deleted)");

			x->path = strndup(x->link, del ? (size_t)(del - x->link) : strlen(x->link));
			f->kind = x->sb.st_nlink == 0 ? IMG_FILE_REG_DELETED : IMG_FILE_REG;
		} else if (S_ISDIR(x->sb.st_mode)) {
			x->path = strdup(x->link);
			f->kind = IMG_FILE_DIR;
		} else if (is_plain_chr(&x->sb)) {
			x->path = strdup(x->link);
			f->kind = IMG_FILE_CHR;
		} else if (is_terminal(&x->sb)) {
			if (!stdio_ok) {
				r = ghost_fail(g, GHOST_EUNSUPPORTED,
					       "fd %d of process %d is the terminal '%s'; use --shell-job to replace it with the restarter's terminal",
					       x->fd, pid, x->link);
				goto out;
			}
			f->kind = IMG_FILE_STDIO;
		} else if (S_ISFIFO(x->sb.st_mode) && strncmp(x->link, "pipe:", 5) == 0) {
			f->kind = IMG_FILE_PIPE;
		} else if (S_ISSOCK(x->sb.st_mode)) {
			uint32_t type, shut;
			uint64_t peer;

			if (sockdiag_unix(x->sb.st_ino, &type, &peer, &shut) < 0 || !peer) {
				why = "a socket other than a socketpair inside the process";
			} else {
				f->kind = IMG_FILE_SOCKPAIR;
				f->sock_type = type;
				f->shutdown = shut;
				x->sock_peer_ino = peer;
			}
		} else {
			why = describe_unsupported(x);
		}
		if (why) {
			if (stdio_ok && (S_ISSOCK(x->sb.st_mode) || S_ISFIFO(x->sb.st_mode))) {
				f->kind = IMG_FILE_STDIO;
			} else if (o->drop_unsupported) {
				log_info("dropping fd %d of process %d (%s)", x->fd, pid, why);
				continue;
			} else {
				r = ghost_fail(g, GHOST_EUNSUPPORTED,
					       "fd %d of process %d is %s ('%s'); use --drop-unsupported to drop it",
					       x->fd, pid, why, x->link);
				goto out;
			}
		}
		if ((f->kind == IMG_FILE_REG || f->kind == IMG_FILE_REG_DELETED ||
		     f->kind == IMG_FILE_DIR || f->kind == IMG_FILE_CHR) &&
		    !x->path) {
			r = ghost_fail(g, -ENOMEM, "out of memory");
			goto out;
		}
		if (f->kind == IMG_FILE_STDIO)
			f->stdio_fd = (uint32_t)x->fd;
		x->file_id = next_id++;
		x->first = true;
		f->id = x->file_id;
	}

	/* 2. Both ends of pipes and socketpairs must be inside the process. */
	for (size_t i = 0; i < n; i++) {
		struct fd_entry *x = &e[i];
		struct fd_entry *peer;
		bool stdio_ok = o->shell_job && x->fd <= 2;
		uint64_t peer_ino;
		int other;

		if (!x->file_id || !x->first)
			continue;
		if (x->file.kind == IMG_FILE_PIPE) {
			other = (x->flags & O_ACCMODE) == O_WRONLY ? O_RDONLY : O_WRONLY;
			peer = find_by_ino(e, n, x->sb.st_ino, other, false);
			peer_ino = x->sb.st_ino;
		} else if (x->file.kind == IMG_FILE_SOCKPAIR) {
			other = -1;
			peer = find_by_ino(e, n, x->sock_peer_ino, other, false);
			peer_ino = x->sock_peer_ino;
		} else {
			continue;
		}
		if (peer) {
			x->file.peer_id = peer->file_id;
			continue;
		}
		/* Its other end is in the process, but carried. */
		peer = find_by_ino(e, n, peer_ino, other, true);
		if (peer) {
			r = ghost_fail(g, GHOST_EUNSUPPORTED,
				       "fd %d of process %d is a %s whose other end, fd %d, is carried; carry both or neither",
				       x->fd, pid, x->file.kind == IMG_FILE_PIPE ? "pipe" : "socketpair",
				       peer->fd);
			goto out;
		}
		if (stdio_ok) {
			x->file.kind = IMG_FILE_STDIO;
			x->file.stdio_fd = (uint32_t)x->fd;
			continue;
		}
		r = ghost_fail(g, GHOST_EUNSUPPORTED,
			       "fd %d of process %d is a %s to a process outside the checkpoint ('%s'); use --shell-job for stdio",
			       x->fd, pid, x->file.kind == IMG_FILE_PIPE ? "pipe" : "socket", x->link);
		goto out;
	}

	/* 3. The registrations of each epoll instance, checked before a record
	 *    is written. */
	for (size_t i = 0; i < n; i++) {
		if (!e[i].file_id || !e[i].first || e[i].file.kind != IMG_FILE_EPOLL)
			continue;
		r = read_epoll(g, pid, e, n, &e[i], o->drop_unsupported);
		if (r < 0)
			goto out;
	}

	/* 4. FILE records. */
	for (size_t i = 0; i < n; i++) {
		struct fd_entry *x = &e[i];
		size_t plen;

		if (!x->file_id || !x->first)
			continue;
		if (x->file.kind == IMG_FILE_PIPE || x->file.kind == IMG_FILE_SOCKPAIR) {
			r = take_copy(g, pidfd, x);
			if (r < 0)
				goto out;
			if (x->file.kind == IMG_FILE_PIPE) {
				int sz = fcntl(x->copy, F_GETPIPE_SZ);

				x->file.pipe_size = sz > 0 ? (uint32_t)sz : 0;
			}
		}
		plen = x->path ? strlen(x->path) : 0;
		x->file.path_len = (uint32_t)plen;
		r = img_write_record(w, IMG_REC_FILE, &x->file, sizeof(x->file), x->path, plen);
		if (r < 0) {
			ghost_fail(g, r, "cannot write the image: %s", ghost_strerror(r));
			goto out;
		}
	}

	/* 5. FILE_DATA: deleted file content, queued pipe and socket bytes. */
	for (size_t i = 0; i < n; i++) {
		struct fd_entry *x = &e[i];

		if (!x->file_id || !x->first)
			continue;
		if (x->file.kind == IMG_FILE_REG_DELETED) {
			r = take_copy(g, pidfd, x);
			if (r >= 0)
				r = dump_deleted(g, w, x);
		} else if (x->file.kind == IMG_FILE_PIPE && (x->flags & O_ACCMODE) != O_WRONLY) {
			r = dump_pipe_data(g, w, x);
		} else if (x->file.kind == IMG_FILE_SOCKPAIR) {
			struct fd_entry *peer = NULL;

			for (size_t j = 0; j < n; j++)
				if (e[j].first && e[j].file_id == x->file.peer_id)
					peer = &e[j];
			r = peer ? dump_sock_data(g, w, x, peer) : -EINVAL;
		}
		if (r < 0)
			goto out;
	}

	/* 6. FD records. */
	for (size_t i = 0; i < n; i++) {
		struct img_fd fdr = { .fd = (uint32_t)e[i].fd, .file_id = e[i].file_id,
				      .fd_flags = (uint32_t)e[i].fd_flags };

		if (!e[i].file_id)
			continue;
		r = img_write_record(w, IMG_REC_FD, &fdr, sizeof(fdr), NULL, 0);
		if (r < 0) {
			ghost_fail(g, r, "cannot write the image: %s", ghost_strerror(r));
			goto out;
		}
		nfds++;
	}

	/* 7. EPOLL records, after the fds they name. */
	for (size_t i = 0; i < n; i++) {
		if (!e[i].file_id || !e[i].first || e[i].file.kind != IMG_FILE_EPOLL)
			continue;
		r = write_epoll(g, w, &e[i]);
		if (r < 0)
			goto out;
	}
	*ret_nfds = nfds;
	r = 0;
out:
	entries_free(e, n);
	return r;
}

/* --- import side -------------------------------------------------------------------- */

void files_restore_init(struct files_restore *fr)
{
	*fr = (struct files_restore){ 0 };
}

void files_restore_release(struct files_restore *fr)
{
	for (size_t i = 0; i < fr->nfiles; i++) {
		free(fr->paths[i]);
		if (fr->opened)
			safe_close(fr->opened[i]);
		if (fr->data)
			buf_release(&fr->data[i]);
	}
	free(fr->files);
	free(fr->paths);
	free(fr->opened);
	free(fr->data);
	free(fr->fds);
	free(fr->ep);
	free(fr->regs);
	files_restore_init(fr);
}

static ssize_t file_index(const struct files_restore *fr, uint32_t id)
{
	for (size_t i = 0; i < fr->nfiles; i++)
		if (fr->files[i].id == id)
			return (ssize_t)i;
	return -1;
}

int files_restore_add_record(struct ghost *g, struct files_restore *fr, const struct img_record *rec)
{
	if (rec->type == IMG_REC_FILE) {
		const struct img_file *f = rec->payload;
		size_t k = fr->nfiles;
		struct img_file *nf;
		char **np;
		struct buf *nd;

		if (file_index(fr, f->id) >= 0 || f->id == 0)
			return ghost_fail(g, GHOST_ECORRUPT, "image names file %u twice", f->id);
		nf = reallocarray(fr->files, k + 1, sizeof(*nf));
		if (!nf)
			return -ENOMEM;
		fr->files = nf;
		np = reallocarray(fr->paths, k + 1, sizeof(*np));
		if (!np)
			return -ENOMEM;
		fr->paths = np;
		nd = reallocarray(fr->data, k + 1, sizeof(*nd));
		if (!nd)
			return -ENOMEM;
		fr->data = nd;
		fr->files[k] = *f;
		fr->paths[k] = strndup((const char *)(f + 1), f->path_len);
		buf_init(&fr->data[k]);
		if (!fr->paths[k])
			return -ENOMEM;
		fr->nfiles++;
		return 0;
	}
	if (rec->type == IMG_REC_FILE_DATA) {
		const struct img_file_data *d = rec->payload;
		ssize_t k = file_index(fr, d->file_id);

		if (k < 0)
			return ghost_fail(g, GHOST_ECORRUPT, "image has data for unknown file %u",
					  d->file_id);
		if (fr->files[k].sock_type == SOCK_DGRAM || fr->files[k].sock_type == SOCK_SEQPACKET) {
			/* Keep message boundaries: length-prefixed. */
			uint32_t len = (uint32_t)(rec->len - sizeof(*d));

			if (buf_append(&fr->data[k], &len, sizeof(len)) < 0)
				return -ENOMEM;
		} else if (d->offset != fr->data[k].len) {
			return ghost_fail(g, GHOST_ECORRUPT, "file %u data out of order", d->file_id);
		}
		return buf_append(&fr->data[k], d + 1, rec->len - sizeof(*d));
	}
	if (rec->type == IMG_REC_EPOLL) {
		const struct img_epoll *p = rec->payload;
		const uint8_t *t = (const uint8_t *)(p + 1);
		ssize_t k = file_index(fr, p->file_id);
		struct files_ep *ne;

		if (k < 0 || fr->files[k].kind != IMG_FILE_EPOLL)
			return ghost_fail(g, GHOST_ECORRUPT,
					  "image has epoll registrations for file %u, which is no epoll instance",
					  p->file_id);
		if (p->count == 0)
			return 0;
		ne = reallocarray(fr->ep, fr->nep + p->count, sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		fr->ep = ne;
		for (uint32_t i = 0; i < p->count; i++) {
			fr->ep[fr->nep].epoll_id = p->file_id;
			memcpy(&fr->ep[fr->nep].t, t + (size_t)i * sizeof(struct img_epoll_tfd),
			       sizeof(struct img_epoll_tfd));
			fr->nep++;
		}
		return 0;
	}
	if (rec->type == IMG_REC_FD) {
		const struct img_fd *f = rec->payload;
		struct img_fd *nf;

		if (file_index(fr, f->file_id) < 0)
			return ghost_fail(g, GHOST_ECORRUPT, "fd %u names unknown file %u", f->fd,
					  f->file_id);
		for (size_t i = 0; i < fr->nfds; i++)
			if (fr->fds[i].fd == f->fd)
				return ghost_fail(g, GHOST_ECORRUPT, "image names fd %u twice", f->fd);
		nf = reallocarray(fr->fds, fr->nfds + 1, sizeof(*nf));
		if (!nf)
			return -ENOMEM;
		fr->fds = nf;
		fr->fds[fr->nfds++] = *f;
		return 0;
	}
	return -EINVAL;
}

/* Where a registration goes in the order of ep_restore(). */
struct ep_order {
	uint32_t rank;  /* instances watching no instance first */
	uint32_t armed; /* 0 (a disarmed one-shot) first in its instance */
	uint32_t epoll_id, tfd;
	size_t epoll_k, target_k; /* the instance's and the target's index in fr->files */
	size_t index;      /* in fr->ep */
};

static int ep_order_cmp(const void *a, const void *b)
{
	const struct ep_order *x = a, *y = b;

	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	if (x->epoll_id != y->epoll_id)
		return x->epoll_id < y->epoll_id ? -1 : 1;
	if (x->armed != y->armed)
		return x->armed < y->armed ? -1 : 1;
	return (x->index > y->index) - (x->index < y->index);
}

static int ep_key_cmp(const void *a, const void *b)
{
	const struct ep_order *x = a, *y = b;

	if (x->epoll_id != y->epoll_id)
		return x->epoll_id < y->epoll_id ? -1 : 1;
	return (x->tfd > y->tfd) - (x->tfd < y->tfd);
}

static int img_fd_cmp(const void *a, const void *b)
{
	const struct img_fd *x = a, *y = b;

	return (x->fd > y->fd) - (x->fd < y->fd);
}

/*
 * An instance's rank: 0 when it watches no instance, else one more than the
 * highest rank of those it watches, so that each instance's registrations
 * are made after those of the instances it watches (an instance added to
 * another then shows the readiness it will have). The kernel refuses cycles,
 * so an image that has one, where ranks never settle, is malformed.
 */
static int rank_instances(struct ghost *g, const struct files_restore *fr,
			  const struct ep_order *o, uint32_t *rank)
{
	for (size_t round = 0;; round++) {
		bool changed = false;

		for (size_t i = 0; i < fr->nep; i++) {
			size_t a = o[i].epoll_k, b = o[i].target_k;

			if (fr->files[b].kind == IMG_FILE_EPOLL && rank[a] <= rank[b]) {
				rank[a] = rank[b] + 1;
				changed = true;
			}
		}
		if (!changed)
			return 0;
		if (round > fr->nfiles)
			return ghost_fail(g, GHOST_ECORRUPT,
					  "image has epoll instances that watch each other in a cycle");
	}
}

int files_restore_plan_epoll(struct ghost *g, struct files_restore *fr)
{
	_cleanup_free_ struct ep_order *o = NULL;
	_cleanup_free_ struct img_fd *fds = NULL;
	_cleanup_free_ uint32_t *rank = NULL;
	_cleanup_free_ int *lowest = NULL; /* per file, its lowest fd or -1 */
	int r;

	if (fr->nep == 0)
		return 0;
	o = NEW_ARRAY(struct ep_order, fr->nep);
	rank = NEW_ARRAY(uint32_t, fr->nfiles);
	lowest = NEW_ARRAY(int, fr->nfiles);
	fds = NEW_ARRAY(struct img_fd, fr->nfds);
	fr->regs = NEW_ARRAY(struct ep_reg, fr->nep);
	if (!o || !rank || !lowest || !fds || !fr->regs)
		return ghost_fail(g, -ENOMEM, "out of memory");
	/* The FD records by number, and each instance's lowest fd. */
	memcpy(fds, fr->fds, fr->nfds * sizeof(*fds));
	qsort(fds, fr->nfds, sizeof(*fds), img_fd_cmp);
	for (size_t i = 0; i < fr->nfiles; i++)
		lowest[i] = -1;
	for (size_t i = fr->nfds; i > 0; i--) {
		ssize_t k = file_index(fr, fds[i - 1].file_id);

		if (k >= 0 && fr->files[k].kind == IMG_FILE_EPOLL)
			lowest[k] = (int)fds[i - 1].fd;
	}
	for (size_t i = 0; i < fr->nep; i++) {
		const struct files_ep *e = &fr->ep[i];
		struct img_fd key = { .fd = e->t.tfd };
		const struct img_fd *fd = bsearch(&key, fds, fr->nfds, sizeof(*fds), img_fd_cmp);

		if (!fd || fd->file_id != e->t.file_id)
			return ghost_fail(g, GHOST_ECORRUPT,
					  "image has epoll file %u watch fd %u, which does not hold file %u",
					  e->epoll_id, e->t.tfd, e->t.file_id);
		o[i] = (struct ep_order){ .epoll_id = e->epoll_id, .tfd = e->t.tfd,
					  .armed = !ep_disarmed(e->t.events),
					  .epoll_k = (size_t)file_index(fr, e->epoll_id),
					  .target_k = (size_t)file_index(fr, e->t.file_id),
					  .index = i };
		if (lowest[o[i].epoll_k] < 0)
			return ghost_fail(g, GHOST_ECORRUPT, "image has epoll file %u at no fd",
					  e->epoll_id);
	}
	/* Each key (instance, fd number and so file) at most once, as in the kernel. */
	qsort(o, fr->nep, sizeof(*o), ep_key_cmp);
	for (size_t i = 1; i < fr->nep; i++)
		if (ep_key_cmp(&o[i - 1], &o[i]) == 0)
			return ghost_fail(g, GHOST_ECORRUPT, "image registers fd %u twice in epoll file %u",
					  o[i].tfd, o[i].epoll_id);
	r = rank_instances(g, fr, o, rank);
	if (r < 0)
		return r;
	for (size_t i = 0; i < fr->nep; i++)
		o[i].rank = rank[o[i].epoll_k];
	qsort(o, fr->nep, sizeof(*o), ep_order_cmp);
	for (size_t i = 0; i < fr->nep; i++) {
		const struct files_ep *e = &fr->ep[o[i].index];

		fr->regs[i] = (struct ep_reg){ .epfd = lowest[o[i].epoll_k],
					       .tfd = (int)e->t.tfd,
					       .events = e->t.events,
					       .data = e->t.data };
	}
	fr->nregs = fr->nep;
	return 0;
}

static bool epoll_watches(const struct files_restore *fr, uint32_t id)
{
	for (size_t i = 0; i < fr->nep; i++)
		if (fr->ep[i].t.file_id == id)
			return true;
	return false;
}

static int open_flags(uint32_t flags)
{
	return (int)(flags & ~(uint32_t)(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY)) | O_CLOEXEC;
}

static int open_regular(struct ghost *g, const struct img_file *f, const char *path)
{
	struct stat sb;
	int fd = open(path, open_flags(f->flags));

	if (fd < 0)
		return ghost_fail(g, -errno, "cannot open '%s': %m", path);
	/* A file open for appending may have grown since (a log the process, or
	 * the original of a snapshot, went on writing): its writes still go to
	 * its end. Any other change of size means another file. */
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
	    ((uint64_t)sb.st_size != f->size &&
	     !((f->flags & O_APPEND) && (uint64_t)sb.st_size > f->size))) {
		safe_close(fd);
		return ghost_fail(g, GHOST_EFILECHANGED,
				  "file '%s' changed since the checkpoint (size %llu, was %llu)", path,
				  (unsigned long long)sb.st_size, (unsigned long long)f->size);
	}
	if (lseek(fd, (off_t)f->pos, SEEK_SET) < 0) {
		safe_close(fd);
		return ghost_fail(g, -errno, "cannot seek '%s' to %llu: %m", path,
				  (unsigned long long)f->pos);
	}
	return fd;
}

/* Reopen fd with other flags (access mode, O_APPEND...): a new description of the same object. */
static int reopen(struct ghost *g, int fd, uint32_t flags, const char *what)
{
	char p[64];
	int nfd;

	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	nfd = open(p, open_flags(flags));
	if (nfd < 0)
		return ghost_fail(g, -errno, "cannot reopen %s: %m", what);
	return nfd;
}

static int open_deleted(struct ghost *g, const struct img_file *f, const char *path,
			const struct buf *content)
{
	_cleanup_free_ char *dir = strdup(path);
	_cleanup_close_ int tmp = -1;
	int fd;

	bool named = false;

	if (!dir)
		return -ENOMEM;
	/* Under its old name, unlinked at once, so /proc shows the same path; an
	 * anonymous file in the same directory if the name is taken again. */
	tmp = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, f->mode & 07777);
	if (tmp >= 0)
		named = true;
	else
		tmp = open(dirname(dir), O_TMPFILE | O_RDWR | O_CLOEXEC, f->mode & 07777);
	if (tmp < 0)
		tmp = memfd_create("ghost-deleted", MFD_CLOEXEC);
	if (tmp < 0)
		return ghost_fail(g, -errno, "cannot recreate deleted file '%s': %m", path);
	if (named && unlink(path) < 0)
		return ghost_fail(g, -errno, "cannot unlink recreated file '%s': %m", path);
	if (write_full(tmp, content->data, content->len) < 0 ||
	    ftruncate(tmp, (off_t)f->size) < 0)
		return ghost_fail(g, -errno, "cannot write deleted file '%s': %m", path);
	fd = reopen(g, tmp, f->flags, path);
	if (fd >= 0 && lseek(fd, (off_t)f->pos, SEEK_SET) < 0) {
		safe_close(fd);
		return ghost_fail(g, -errno, "cannot seek deleted file '%s': %m", path);
	}
	return fd;
}

static int send_queued(struct ghost *g, int fd, const struct img_file *f, const struct buf *data)
{
	if (f->sock_type == SOCK_STREAM)
		return write_full(fd, data->data, data->len) < 0
			       ? ghost_fail(g, -errno, "cannot queue socket data: %m")
			       : 0;
	for (size_t off = 0; off + sizeof(uint32_t) <= data->len;) {
		uint32_t len;

		memcpy(&len, data->data + off, sizeof(len));
		if (off + sizeof(len) + len > data->len)
			return ghost_fail(g, GHOST_ECORRUPT, "bad datagram length in image");
		if (send(fd, data->data + off + sizeof(len), len, MSG_DONTWAIT) < 0)
			return ghost_fail(g, -errno, "cannot queue a datagram: %m");
		off += sizeof(len) + len;
	}
	return 0;
}

int files_restore_check_carried(struct ghost *g, const struct files_restore *fr, bool allowed)
{
	const struct img_fd *lowest = NULL;
	ssize_t k = -1;

	if (allowed)
		return 0;
	for (size_t i = 0; i < fr->nfds; i++) {
		ssize_t j = file_index(fr, fr->fds[i].file_id);

		if (j >= 0 && fr->files[j].kind == IMG_FILE_CARRIED &&
		    (!lowest || fr->fds[i].fd < lowest->fd)) {
			lowest = &fr->fds[i];
			k = j;
		}
	}
	if (!lowest)
		return 0;
	return ghost_fail(g, GHOST_EUNSUPPORTED,
			  "fd %u is a stream carried by the daemon that exported this image (%s): it cannot be restored from the image alone",
			  lowest->fd,
			  img_carried_what(&fr->files[k], fr->paths[k], strlen(fr->paths[k])));
}

/* A placeholder for a carried fd, for the caller to replace: /dev/null with
 * the access mode and status flags the fd had (so ghost_hold_take() of it
 * tells them). */
static int open_placeholder(struct ghost *g, const struct img_file *f)
{
	int flags = (int)(f->flags & (O_ACCMODE | O_APPEND | O_NONBLOCK));
	int fd = open("/dev/null", flags | O_CLOEXEC);

	if (fd < 0)
		return ghost_fail(g, -errno, "cannot open /dev/null: %m");
	return fd;
}

/* The same for a carried fd an epoll instance watches: epoll cannot watch
 * /dev/null, and its registration must exist for ghost_hold_install() to
 * move to the new stream. A pipe of ours, opened again through /proc with
 * the fd's access mode and status flags; the pipe's own two ends are closed
 * once it is open, so nothing ever flows through it. */
static int open_pollable_placeholder(struct ghost *g, const struct img_file *f)
{
	int flags = (int)(f->flags & (O_ACCMODE | O_APPEND | O_NONBLOCK));
	int pair[2], fd;
	char path[64];

	if (pipe2(pair, O_CLOEXEC) < 0)
		return ghost_fail(g, -errno, "pipe: %m");
	/* Both ends are open: opening it for reading or writing does not wait. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", pair[0]);
	fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		fd = ghost_fail(g, -errno, "cannot open a placeholder for a carried fd: %m");
	safe_close(pair[0]);
	safe_close(pair[1]);
	return fd;
}

int files_restore_open(struct ghost *g, struct files_restore *fr, const int stdio[3],
		       bool own_stdio)
{
	size_t n = fr->nfiles;
	int r;

	fr->opened = NEW_ARRAY(int, n);
	if (!fr->opened)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		fr->opened[i] = -1;

	for (size_t i = 0; i < n; i++) {
		const struct img_file *f = &fr->files[i];
		const char *path = fr->paths[i];
		int fd = -1;

		if (fr->opened[i] >= 0)
			continue;
		switch (f->kind) {
		case IMG_FILE_REG:
			fd = open_regular(g, f, path);
			break;
		case IMG_FILE_REG_DELETED:
			fd = open_deleted(g, f, path, &fr->data[i]);
			break;
		case IMG_FILE_DIR:
		case IMG_FILE_CHR:
			fd = open(path, open_flags(f->flags));
			if (fd < 0)
				fd = ghost_fail(g, -errno, "cannot open '%s': %m", path);
			break;
		case IMG_FILE_STDIO: {
			int src = f->stdio_fd < 3 && stdio ? stdio[f->stdio_fd] : -1;

			fd = src >= 0 ? fcntl(src, F_DUPFD_CLOEXEC, 3)
				      : open("/dev/null", O_RDWR | O_CLOEXEC);
			if (fd < 0) {
				fd = ghost_fail(g, -errno, "cannot set up stdio fd %u: %m",
						f->stdio_fd);
				break;
			}
			if (own_stdio && src >= 0) {
				/* The description is the new process's alone: give it
				 * the blocking mode the process had. */
				int fl = fcntl(fd, F_GETFL);

				if (fl >= 0)
					fl = (fl & ~O_NONBLOCK) | ((int)f->flags & O_NONBLOCK);
				if (fl < 0 || fcntl(fd, F_SETFL, fl) < 0) {
					safe_close(fd);
					fd = ghost_fail(g, -errno,
							"cannot set the flags of stdio fd %u: %m",
							f->stdio_fd);
				}
			}
			break;
		}
		case IMG_FILE_PIPE:
		case IMG_FILE_SOCKPAIR: {
			ssize_t k = file_index(fr, f->peer_id);
			int pair[2];
			size_t me = i, peer;

			if (k < 0 || (size_t)k == i)
				return ghost_fail(g, GHOST_ECORRUPT, "file %u has no peer", f->id);
			if (fr->files[k].kind != f->kind)
				return ghost_fail(g, GHOST_ECORRUPT,
						  "file %u and its peer are of different kinds", f->id);
			peer = (size_t)k;
			if (f->kind == IMG_FILE_PIPE) {
				size_t rd = (f->flags & O_ACCMODE) == O_WRONLY ? peer : me;
				size_t wr = rd == me ? peer : me;

				if (pipe2(pair, O_CLOEXEC) < 0)
					return ghost_fail(g, -errno, "pipe: %m");
				if (f->pipe_size)
					fcntl(pair[0], F_SETPIPE_SZ, (int)f->pipe_size);
				fr->opened[rd] = pair[0];
				fr->opened[wr] = pair[1];
				if (fr->data[rd].len &&
				    write_full(pair[1], fr->data[rd].data, fr->data[rd].len) < 0)
					return ghost_fail(g, -errno, "cannot refill a pipe: %m");
				if (fcntl(pair[0], F_SETFL, fr->files[rd].flags & O_NONBLOCK) < 0 ||
				    fcntl(pair[1], F_SETFL, fr->files[wr].flags & O_NONBLOCK) < 0)
					return ghost_fail(g, -errno, "cannot set pipe flags: %m");
			} else {
				if (socketpair(AF_UNIX, (int)f->sock_type | SOCK_CLOEXEC, 0, pair) < 0)
					return ghost_fail(g, -errno, "socketpair: %m");
				fr->opened[me] = pair[0];
				fr->opened[peer] = pair[1];
				/* What `me` would read is sent by the peer end, and vice versa. */
				r = send_queued(g, pair[1], f, &fr->data[me]);
				if (r >= 0)
					r = send_queued(g, pair[0], &fr->files[peer], &fr->data[peer]);
				if (r < 0)
					return r;
				for (int s = 0; s < 2; s++) {
					const struct img_file *sf = s ? &fr->files[peer] : f;
					int how = (sf->shutdown & 1) && (sf->shutdown & 2) ? SHUT_RDWR
						  : (sf->shutdown & 1)			    ? SHUT_RD
						  : (sf->shutdown & 2)			    ? SHUT_WR
											    : -1;

					if (how >= 0)
						shutdown(pair[s], how);
					if (fcntl(pair[s], F_SETFL, sf->flags & O_NONBLOCK) < 0)
						return ghost_fail(g, -errno,
								  "cannot set socket flags: %m");
				}
			}
			continue;
		}
		case IMG_FILE_CARRIED:
			fd = epoll_watches(fr, f->id) ? open_pollable_placeholder(g, f)
						      : open_placeholder(g, f);
			break;
		case IMG_FILE_EPOLL:
			/* Empty: the new process registers its fds itself (ep_restore()). */
			fd = epoll_create1(EPOLL_CLOEXEC);
			if (fd < 0) {
				fd = ghost_fail(g, -errno, "cannot create an epoll instance: %m");
				break;
			}
			if ((f->flags & O_NONBLOCK) && fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
				safe_close(fd);
				fd = ghost_fail(g, -errno, "cannot set the flags of an epoll instance: %m");
			}
			break;
		default:
			return ghost_fail(g, GHOST_ECORRUPT, "file %u has unknown kind %u", f->id,
					  f->kind);
		}
		if (fd < 0)
			return fd;
		fr->opened[i] = fd;
	}
	return 0;
}

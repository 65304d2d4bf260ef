/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Epoll instances: their registrations as /proc/PID/fdinfo shows them, the
 * check that a registration still belongs to the file at its fd number
 * (export, descriptor swaps), and putting registrations back in a new process
 * (import).
 *
 * The kernel keys a registration by (file, fd number) and drops it only when
 * the file's last reference goes. After close(fd), or dup2() over fd, while
 * the file lives on elsewhere, fdinfo still lists the registration under the
 * old number, but no epoll_ctl() of the process can name it any more, and
 * nobody could register it again elsewhere: such a registration cannot be
 * carried. ep_tfd_is_current() tells it apart, by inode and then exactly with
 * kcmp(KCMP_EPOLL_TFD) (the inode alone cannot tell two epoll instances, or
 * two opens of one FIFO, apart).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define LOG_PREFIX "epoll"
#include "base/fileio.h"
#include "base/log.h"
#include "ghost/ghost-int.h"
#include "base/banned.h"

/* Every event bit a registration can wait for (EPOLLERR and EPOLLHUP are
 * always waited for), and the bits that say how it waits. */
#define EP_EVENT_BITS                                                                        \
	((uint32_t)(EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDNORM |      \
		    EPOLLRDBAND | EPOLLWRNORM | EPOLLWRBAND | EPOLLMSG | EPOLLRDHUP))
#define EP_MODE_BITS ((uint32_t)(EPOLLEXCLUSIVE | EPOLLWAKEUP | EPOLLONESHOT | EPOLLET))

bool ep_is_link(const char *link)
{
	return strcmp(link, "anon_inode:[eventpoll]") == 0;
}

bool ep_disarmed(uint32_t events)
{
	return (events & EPOLLONESHOT) && !(events & EP_EVENT_BITS);
}

/* "tfd: %8d events: %8x data: %16llx  pos:%lli ino:%lx sdev:%x" */
static int parse_tfd_line(const char *line, struct ep_tfd *t)
{
	unsigned long long data, ino;
	unsigned events, sdev;
	long long pos;
	int tfd;

	if (sscanf(line, "tfd: %d events: %x data: %llx pos:%lli ino:%llx sdev:%x", &tfd, &events,
		   &data, &pos, &ino, &sdev) != 6 ||
	    tfd < 0)
		return -EIO;
	*t = (struct ep_tfd){ .tfd = tfd, .events = events, .data = data, .ino = ino,
			      /* The kernel's own dev_t: 12 bits of major, 20 of minor. */
			      .dev = makedev(sdev >> 20, sdev & 0xfffff) };
	return 0;
}

static int by_tfd(const void *a, const void *b)
{
	const struct ep_tfd *x = *(const struct ep_tfd *const *)a;
	const struct ep_tfd *y = *(const struct ep_tfd *const *)b;

	if (x->tfd != y->tfd)
		return x->tfd < y->tfd ? -1 : 1;
	return (x > y) - (x < y);
}

/*
 * kcmp(KCMP_EPOLL_TFD) names a registration by its fd number and its rank
 * among those with that number, in the order fdinfo lists them (both walk the
 * instance's tree): toff. Several share a number only after the number was
 * reused, but an instance may hold very many: sorted, not compared pairwise.
 */
static int set_toff(struct ep_tfd *t, size_t n)
{
	_cleanup_free_ struct ep_tfd **p = NEW_ARRAY(struct ep_tfd *, n);

	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		p[i] = &t[i];
	qsort(p, n, sizeof(*p), by_tfd);
	for (size_t i = 1; i < n; i++)
		if (p[i]->tfd == p[i - 1]->tfd)
			p[i]->toff = p[i - 1]->toff + 1;
	return 0;
}

int ep_tfds_read(pid_t pid, int epfd, struct ep_tfd **ret, size_t *ret_n)
{
	struct buf b = BUF_INIT;
	struct ep_tfd *t = NULL;
	size_t n = 0, cap = 0;
	char path[64];
	int r;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, epfd);
	r = read_file_at(AT_FDCWD, path, &b);
	if (r < 0)
		goto out;
	for (char *line = b.data; line && *line;) {
		char *next = strchr(line, '\n');

		if (next)
			*next++ = '\0';
		if (strncmp(line, "tfd:", 4) == 0) {
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 16;
				struct ep_tfd *nt = reallocarray(t, ncap, sizeof(*nt));

				if (!nt) {
					r = -ENOMEM;
					goto out;
				}
				t = nt;
				cap = ncap;
			}
			r = parse_tfd_line(line, &t[n]);
			if (r < 0)
				goto out;
			n++;
		}
		line = next;
	}
	r = set_toff(t, n);
out:
	buf_release(&b);
	if (r < 0) {
		free(t);
		return r;
	}
	*ret = t;
	*ret_n = n;
	return 0;
}

int ep_tfd_is_current(pid_t pid, int epfd, const struct ep_tfd *t, const struct stat *sb)
{
	struct kcmp_epoll_slot slot = { .efd = (uint32_t)epfd, .tfd = (uint32_t)t->tfd,
					.toff = t->toff };
	long k;

	if (t->ino != (uint64_t)sb->st_ino || t->dev != sb->st_dev)
		return 0;
	k = syscall(SYS_kcmp, pid, pid, KCMP_EPOLL_TFD, t->tfd, &slot);
	if (k == 0)
		return 1;
	if (k > 0)
		return 0;
	/* A kernel that cannot compare (no CONFIG_CHECKPOINT_RESTORE): the inode
	 * has to do. */
	if (errno == ENOSYS || errno == EOPNOTSUPP)
		return 1;
	return -errno;
}

/* Whether the instance at fd is one of the n at known[] (dups and copies). */
static bool seen_instance(pid_t pid, int fd, const int *known, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (syscall(SYS_kcmp, pid, pid, KCMP_FILE, known[i], fd) == 0)
			return true;
	return false;
}

int ep_instances_of(pid_t pid, int **ret, size_t *ret_n)
{
	int *instances = NULL;
	size_t ninst = 0;
	struct dirent *de;
	char path[64];
	DIR *d;
	int r = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char lpath[96], link[64];
		ssize_t len;
		int epfd, *ni;

		if (parse_int(de->d_name, &epfd) < 0)
			continue;
		snprintf(lpath, sizeof(lpath), "/proc/%d/fd/%d", pid, epfd);
		len = readlink(lpath, link, sizeof(link) - 1);
		if (len < 0)
			continue;
		link[len] = '\0';
		if (!ep_is_link(link) || seen_instance(pid, epfd, instances, ninst))
			continue;
		ni = reallocarray(instances, ninst + 1, sizeof(*ni));
		if (!ni) {
			r = -ENOMEM;
			break;
		}
		instances = ni;
		instances[ninst++] = epfd;
	}
	closedir(d);
	if (r < 0) {
		free(instances);
		return r;
	}
	*ret = instances;
	*ret_n = ninst;
	return 0;
}

int ep_watchers_of(pid_t pid, const int *instances, size_t ninst, int fd, const struct stat *sb,
		   struct ep_watch **ret, size_t *ret_n)
{
	struct ep_watch *w = NULL;
	size_t n = 0;
	int r = 0;

	for (size_t e = 0; e < ninst && r >= 0; e++) {
		struct ep_tfd *t = NULL;
		size_t nt = 0;

		r = ep_tfds_read(pid, instances[e], &t, &nt);
		for (size_t i = 0; i < nt && r >= 0; i++) {
			struct ep_watch *nw;
			int k;

			if (t[i].tfd != fd)
				continue;
			k = ep_tfd_is_current(pid, instances[e], &t[i], sb);
			if (k < 0) {
				r = k;
				break;
			}
			if (k == 0)
				continue;
			nw = reallocarray(w, n + 1, sizeof(*nw));
			if (!nw) {
				r = -ENOMEM;
				break;
			}
			w = nw;
			w[n++] = (struct ep_watch){ .epfd = instances[e], .events = t[i].events,
						    .data = t[i].data };
		}
		free(t);
	}
	if (r < 0) {
		free(w);
		return r;
	}
	*ret = w;
	*ret_n = n;
	return 0;
}

/*
 * A registration that fired as EPOLLONESHOT waits for nothing until the
 * process re-arms it, but EPOLL_CTL_ADD always adds EPOLLERR and EPOLLHUP to
 * what it is asked. The only way to a disarmed registration is to have it
 * fire: when its target is ready for anything now, register it for every
 * event and take the event it reports at once. That takes nothing from the
 * process: the caller registers these first, so the instance holds no other
 * registration yet. A target ready for nothing stays armed for EPOLLERR and
 * EPOLLHUP only, as close as the kernel allows.
 */
static int add_disarmed(const struct ep_reg *r)
{
	struct pollfd p = { .fd = r->tfd, .events = (short)(EP_EVENT_BITS & 0xffff) };
	struct epoll_event ev = { .events = r->events, .data.u64 = r->data };
	struct epoll_event got[8];
	int n;

	if (poll(&p, 1, 0) > 0 && (p.revents & ~POLLNVAL))
		ev.events |= EP_EVENT_BITS;
	if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->tfd, &ev) < 0)
		return -errno;
	do
		n = epoll_wait(r->epfd, got, (int)ARRAY_SIZE(got), 0);
	while (n > 0 || (n < 0 && errno == EINTR));
	return n < 0 ? -errno : 0;
}

int ep_restore(const struct ep_reg *regs, size_t n, int *ret_epfd, int *ret_tfd)
{
	for (size_t i = 0; i < n; i++) {
		const struct ep_reg *r = &regs[i];
		struct epoll_event ev = { .events = r->events, .data.u64 = r->data };
		int k = 0;

		if (ep_disarmed(r->events))
			k = add_disarmed(r);
		else if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->tfd, &ev) < 0)
			k = -errno;
		if (k < 0) {
			*ret_epfd = r->epfd;
			*ret_tfd = r->tfd;
			return k;
		}
	}
	return 0;
}

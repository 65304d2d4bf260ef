/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ghost_hold_*(): hold a process where it is and swap its descriptors, the
 * engine's half of suspending a dynamic stream (the Dynamic Streams report,
 * INRIA RR-4987). The caller takes copies of the process's descriptors and
 * installs others at their numbers; then the process goes on exactly as it
 * was, and a system call it was blocked in runs again, on whatever descriptor
 * is now at its number.
 *
 *                   ghost_hold_new()        first ghost_hold_install()
 *   running, blocked -----------------> HELD -----------------------------> ARMED
 *   or stopped                           |  take                             |  take, install
 *       ^                                |                                   |
 *       |         ghost_hold_release()   |                                   |
 *       +--------------------------------+-----------------------------------+
 *
 *   HELD or ARMED, and the process ends -> GONE; ghost_hold_release() frees.
 *
 * HELD   seized and interrupted (tracee_seize): registers, mask and xstate kept.
 *        take = /proc/PID/fdinfo + pidfd_getfd + F_GETFL; nothing runs in it.
 * ARMED  every signal blocked; a `syscall` instruction chosen (the one the
 *        process is blocked behind, else one in its vDSO); scratch bytes chosen
 *        (below the red zone of its stack, saved, else an injected page); and
 *        a channel: an injected socketpair(AF_UNIX, SOCK_DGRAM) whose second
 *        end we take with pidfd_getfd. install = our sendmsg(SCM_RIGHTS) +
 *        injected recvmsg + injected dup3 at the number; when epoll
 *        instances of the process watch the file at that number, injected
 *        epoll_ctl(DEL) of each registration before the dup3 and
 *        epoll_ctl(ADD) of the same events and data for the new file after.
 * GONE   the process ended: every call says so; release only frees.
 * An injection whose outcome is unknown (the process stopped for something
 * else than its end) sets h->failed, a sticky state: installs are refused,
 * release still puts everything back.
 *
 * Invariants:
 *  1. Between calls the process is in a ptrace stop and runs none of its own
 *     instructions; injected system calls run with every signal blocked.
 *  2. Its descriptor table differs from the one found only at the numbers the
 *     caller installed and at the numbers in h->added (the channel, received
 *     copies), which release closes.
 *  3. It resumes with the registers found at the seize: a system call the
 *     hold interrupted shows -ERESTART* there, so the kernel's restart logic
 *     runs it again and looks its descriptor up again (a restart block, as
 *     for nanosleep or poll with a timeout, stays in the kernel untouched).
 *  4. The scratch bytes are the process's own again before it runs.
 *  5. An epoll instance of the process that watched the file at an installed
 *     number watches the new file there instead, with the same events and
 *     data, and nothing of the old one.
 *
 * Transitions: HELD -> ARMED arm(), -> GONE gone(), ARMED -> ARMED
 * install_one(), any -> as found or freed ghost_hold_release().
 *
 * Why a socketpair and no named socket: the descriptor can only come from us,
 * since nobody but the frozen process and the engine holds the sending end,
 * so there is no sender name to check; and no abstract name is involved, which
 * would tie the engine to the process's network namespace. Each datagram
 * carries a per-hold cookie and a sequence number, checked on receipt; a
 * channel on which anything went wrong is never used again.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOG_PREFIX "hold"
#include "base/clock.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/macro.h"
#include "ghost/ghost-int.h"
#include "base/banned.h"

/* PROCMAP_QUERY (Linux 6.11): the mapping at an address, without reading all
 * of /proc/PID/maps. Debian 12's headers predate it. */
#ifndef PROCMAP_QUERY
struct procmap_query {
	uint64_t size;
	uint64_t query_flags;
	uint64_t query_addr;
	uint64_t vma_start;
	uint64_t vma_end;
	uint64_t vma_flags;
	uint64_t vma_page_size;
	uint64_t vma_offset;
	uint64_t inode;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint32_t vma_name_size;
	uint32_t build_id_size;
	uint64_t vma_name_addr;
	uint64_t build_id_addr;
};
#define PROCMAP_QUERY _IOWR('f', 17, struct procmap_query)
#define PROCMAP_QUERY_VMA_READABLE 0x01
#define PROCMAP_QUERY_VMA_WRITABLE 0x02
#define PROCMAP_QUERY_VMA_EXECUTABLE 0x04
#define PROCMAP_QUERY_VMA_SHARED 0x08
#endif

#define RED_ZONE 128u
#define SCRATCH_LEN 256u
#define EXIT_WAIT_MS 5000

/* What the injected calls read and write, as laid out in the process. */
struct scratch {
	struct msghdr msg;
	struct iovec iov;
	uint64_t payload[2]; /* cookie, sequence number */
	struct {
		char buf[CMSG_SPACE(sizeof(int))] __attribute__((aligned(8)));
	} ctl;
	int pair[2];
	struct epoll_event ev; /* for an injected EPOLL_CTL_ADD */
};
_Static_assert(sizeof(struct scratch) <= SCRATCH_LEN, "scratch fits");

struct ghost_hold {
	struct tracee t;
	pid_t pid;
	int pidfd;
	int maps_fd; /* /proc/PID/maps for PROCMAP_QUERY, -1 until needed */
	bool armed;
	bool gone;   /* the process ended while held */
	bool failed; /* an injection failed in a way that leaves its outcome unknown */
	uint64_t scratch;
	bool scratch_saved; /* scratch is on its stack: saved[] goes back at release */
	uint8_t saved[SCRATCH_LEN];
	int chan;  /* our end of the channel, -1 if none */
	int tchan; /* the process's receiving end, -1 if none */
	int *added; /* fds we opened in the process, closed at release */
	size_t nadded, cadded;
	/* The process's epoll instances (one fd each), read at the first install
	 * and kept while it is held: it is frozen, so only our own installs
	 * change them, and an install that puts or replaces one drops the list.
	 * Saves a scan of /proc/PID/fd per install. */
	int *ep_inst;
	size_t n_ep_inst;
	bool ep_inst_known;
	uint64_t cookie, seq;
};

static int failf(char *why, size_t why_len, int r, const char *fmt, ...) _printf_(4, 5);
static int failf(char *why, size_t why_len, int r, const char *fmt, ...)
{
	va_list ap;

	if (why && why_len) {
		va_start(ap, fmt);
		vsnprintf(why, why_len, fmt, ap);
		va_end(ap);
	}
	return r;
}

/* --- the process's end ---------------------------------------------------------- */

/* A ptrace call failed with ESRCH or an injection saw the end: a held process
 * only leaves its stop by dying. Wait (bounded) for the end, collect what its
 * tracer is told, and stop tracing it. */
static void gone(struct ghost_hold *h)
{
	struct pollfd p = { .fd = h->pidfd, .events = POLLIN };

	if (h->gone)
		return;
	h->gone = true;
	if (h->pidfd >= 0)
		while (poll(&p, 1, EXIT_WAIT_MS) < 0 && errno == EINTR)
			;
	tracee_collect_exit(h->pid);
	h->t.seized = false;
	h->t.in_syscall = false;
}

static int gone_msg(struct ghost_hold *h, char *why, size_t why_len)
{
	return failf(why, why_len, -ESRCH, "process %d exited while held", h->pid);
}

/* Whether the process has ended (a zombie counts), asked when a call on it
 * failed in a way that could mean that. */
static bool has_ended(struct ghost_hold *h)
{
	struct pollfd p = { .fd = h->pidfd, .events = POLLIN };

	return h->gone || (h->pidfd >= 0 && poll(&p, 1, 0) > 0);
}

static int inject(struct ghost_hold *h, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
		  uint64_t a4, long *ret)
{
	int r = tracee_syscall(&h->t, nr, a1, a2, a3, a4, 0, 0, ret);

	if (r == -ESRCH || (r < 0 && has_ended(h)))
		gone(h);
	else if (r < 0)
		h->failed = true;
	return r;
}

/* --- new, take ---------------------------------------------------------------------- */

int ghost_hold_new(pid_t pid, struct ghost_hold **ret, char *why, size_t why_len)
{
	struct ghost_hold *h;
	struct proc_stat st;
	int r;

	if (why && why_len)
		why[0] = '\0';
	if (pid <= 0 || !ret)
		return failf(why, why_len, -EINVAL, "invalid PID %d", pid);
	if (pid == getpid())
		return failf(why, why_len, -EINVAL, "cannot hold the calling process itself");
	h = calloc(1, sizeof(*h));
	if (!h)
		return failf(why, why_len, -ENOMEM, "out of memory");
	*h = (struct ghost_hold){ .pid = pid, .pidfd = -1, .maps_fd = -1, .chan = -1, .tchan = -1 };
	h->t.mem_fd = -1;

	h->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (h->pidfd < 0) {
		r = -errno;
		if (r == -ESRCH)
			failf(why, why_len, r, "no process with PID %d", pid);
		else
			failf(why, why_len, r, "cannot open process %d: %s", pid, ghost_strerror(r));
		goto fail;
	}
	r = tracee_seize(&h->t, pid, why, why_len);
	if (r < 0) {
		struct proc_status ps;

		/* Say why a process that exists cannot be traced, when we can. */
		if (proc_read_status(pid, &ps) == 0) {
			if (ps.state == 'Z' || ps.state == 'X')
				r = failf(why, why_len, -ESRCH, "process %d has exited (a zombie)",
					  pid);
			else if (ps.kthread)
				r = failf(why, why_len, GHOST_EUNSUPPORTED,
					  "process %d is a kernel thread", pid);
			else if (ps.tracer > 0)
				r = failf(why, why_len, -EBUSY,
					  "process %d is already traced by process %d", pid,
					  ps.tracer);
			proc_status_release(&ps);
		}
		goto fail;
	}
	/* Stopped, it cannot start a thread any more: count them now. */
	r = proc_read_stat(pid, &st);
	if (r < 0) {
		failf(why, why_len, r, "cannot read /proc/%d/stat: %s", pid, ghost_strerror(r));
		goto fail;
	}
	if (st.f[20] > 1) {
		r = failf(why, why_len, GHOST_EUNSUPPORTED,
			  "process %d has %llu threads; holding multi-threaded processes is not supported yet",
			  pid, (unsigned long long)st.f[20]);
		goto fail;
	}
	if (getrandom(&h->cookie, sizeof(h->cookie), GRND_NONBLOCK) != sizeof(h->cookie))
		h->cookie = now_ns() ^ ((uint64_t)pid << 32);
	*ret = h;
	return 0;
fail:
	ghost_hold_release(h);
	return r;
}

/* The flags line of /proc/PID/fdinfo/FD: f_flags, with O_CLOEXEC for FD_CLOEXEC. */
static int read_fd_flags(pid_t pid, int fd, unsigned *ret)
{
	char path[64], buf[512];
	_cleanup_close_ int f = -1;
	ssize_t n;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return errno == ENOENT ? -EBADF : -errno;
	n = read(f, buf, sizeof(buf) - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	p = strstr(buf, "flags:");
	if (!p)
		return -EIO;
	*ret = (unsigned)strtoul(p + 6, NULL, 8);
	return 0;
}

int ghost_hold_take(struct ghost_hold *h, int fd, int *ret_copy, int *ret_fd_flags,
		    int *ret_status_flags, char *why, size_t why_len)
{
	_cleanup_close_ int copy = -1;
	unsigned flags = 0;
	int fl = 0, r;

	if (why && why_len)
		why[0] = '\0';
	if (!h || !ret_copy || fd < 0)
		return failf(why, why_len, -EINVAL, "invalid fd %d", fd);
	if (h->gone)
		return gone_msg(h, why, why_len);
	copy = (int)syscall(SYS_pidfd_getfd, h->pidfd, fd, 0);
	if (copy < 0) {
		r = -errno;
		if (has_ended(h)) {
			gone(h);
			return gone_msg(h, why, why_len);
		}
		if (r == -EBADF)
			return failf(why, why_len, r, "process %d has no fd %d", h->pid, fd);
		return failf(why, why_len, r, "cannot take fd %d of process %d: %s", fd, h->pid,
			     ghost_strerror(r));
	}
	if (ret_fd_flags) {
		r = read_fd_flags(h->pid, fd, &flags);
		if (r < 0)
			return failf(why, why_len, r, "cannot read fdinfo %d of process %d: %s", fd,
				     h->pid, ghost_strerror(r));
	}
	if (ret_status_flags) {
		/* Of the open file description itself, which our copy shares. */
		fl = fcntl(copy, F_GETFL);
		if (fl < 0)
			return failf(why, why_len, -errno, "cannot read the flags of fd %d: %m",
				     fd);
	}
	if (ret_fd_flags)
		*ret_fd_flags = (flags & O_CLOEXEC) ? FD_CLOEXEC : 0;
	if (ret_status_flags)
		*ret_status_flags = fl;
	*ret_copy = TAKE_FD(copy);
	return 0;
}

/* --- arming: signals, a syscall instruction, scratch bytes ---------------------------- */

/* The mapping holding addr: 0 and its bounds and PROCMAP_QUERY_VMA_* flags;
 * -ENOENT if none; -ENOTTY if this kernel cannot tell (older than 6.11). */
static int vma_at(struct ghost_hold *h, uint64_t addr, uint64_t *ret_start, uint64_t *ret_end,
		  uint64_t *ret_flags)
{
	struct procmap_query q = { .size = sizeof(q), .query_addr = addr };

	if (h->maps_fd < 0) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/%d/maps", h->pid);
		h->maps_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (h->maps_fd < 0)
			return -errno;
	}
	if (ioctl(h->maps_fd, PROCMAP_QUERY, &q) < 0)
		return errno == EINVAL ? -ENOTTY : -errno;
	*ret_start = q.vma_start;
	*ret_end = q.vma_end;
	*ret_flags = q.vma_flags;
	return 0;
}

static int find_syscall(struct ghost_hold *h)
{
	uint64_t ip = h->t.regs.rip - 2, start, end, flags;
	struct proc_maps maps = { 0 };
	uint8_t code[2];
	int r = -ENOENT;

	/* A process stopped in (or right after) a system call has a `syscall`
	 * instruction just behind its instruction pointer. */
	if (h->t.regs.rip >= 2 && tracee_read_mem(&h->t, ip, code, sizeof(code)) == 0 &&
	    code[0] == 0x0f && code[1] == 0x05 && vma_at(h, ip, &start, &end, &flags) == 0 &&
	    (flags & PROCMAP_QUERY_VMA_EXECUTABLE) && ip + 2 <= end) {
		h->t.syscall_ip = ip;
		return 0;
	}
	if (proc_read_maps(h->pid, &maps) < 0)
		return -ESRCH;
	for (size_t i = 0; i < maps.n; i++)
		if (maps.vma[i].path && strcmp(maps.vma[i].path, "[vdso]") == 0) {
			r = tracee_find_syscall(&h->t, maps.vma[i].start, maps.vma[i].end);
			break;
		}
	proc_maps_release(&maps);
	return r;
}

/* Below the red zone of its stack when that is private writable memory (what
 * was there goes back at release), else a page mapped for the purpose. */
static int choose_scratch(struct ghost_hold *h)
{
	uint64_t sp = h->t.regs.rsp, addr, start, end, flags;
	const uint64_t want = PROCMAP_QUERY_VMA_READABLE | PROCMAP_QUERY_VMA_WRITABLE;

	if (sp > RED_ZONE + SCRATCH_LEN + PAGE_SIZE_X) {
		addr = ALIGN_DOWN(sp - RED_ZONE - SCRATCH_LEN, 64);
		if (vma_at(h, addr, &start, &end, &flags) == 0 && (flags & want) == want &&
		    !(flags & PROCMAP_QUERY_VMA_SHARED) && start <= addr &&
		    addr + SCRATCH_LEN <= end) {
			struct iovec local = { .iov_base = h->saved, .iov_len = SCRATCH_LEN };
			struct iovec remote = { .iov_base = (void *)addr, .iov_len = SCRATCH_LEN };

			if (process_vm_readv(h->pid, &local, 1, &remote, 1, 0) == SCRATCH_LEN) {
				h->scratch = addr;
				h->scratch_saved = true;
				return 0;
			}
		}
	}
	{
		int r = tracee_scratch_map(&h->t, 0, PAGE_SIZE_X);

		if (r < 0)
			return r;
		h->scratch = h->t.scratch;
		return 0;
	}
}

static int arm(struct ghost_hold *h, char *why, size_t why_len)
{
	int r;

	r = tracee_block_signals(&h->t);
	if (r < 0)
		goto fail;
	r = find_syscall(h);
	if (r < 0) {
		if (r == -ENOENT)
			return failf(why, why_len, r,
				     "no system call instruction found in process %d", h->pid);
		goto fail;
	}
	r = choose_scratch(h);
	if (r < 0)
		goto fail;
	h->armed = true;
	log_debug("process %d: system calls at %#llx, scratch at %#llx (%s)", h->pid,
		  (unsigned long long)h->t.syscall_ip, (unsigned long long)h->scratch,
		  h->scratch_saved ? "its stack" : "a page of ours");
	return 0;
fail:
	if (r == -ESRCH || has_ended(h)) {
		gone(h);
		return gone_msg(h, why, why_len);
	}
	return failf(why, why_len, r, "cannot prepare process %d: %s", h->pid, ghost_strerror(r));
}

/* --- the channel and one install ----------------------------------------------------- */

/* Room for more entries in h->added, so that recording an fd never fails
 * after it exists in the process. */
static int reserve_added(struct ghost_hold *h, size_t more)
{
	size_t n;
	int *a;

	if (h->nadded + more <= h->cadded)
		return 0;
	n = MAX(h->cadded * 2, h->nadded + more + 8);
	a = reallocarray(h->added, n, sizeof(*a));
	if (!a)
		return -ENOMEM;
	h->added = a;
	h->cadded = n;
	return 0;
}

static void add_fd(struct ghost_hold *h, int fd)
{
	assert(h->nadded < h->cadded);
	h->added[h->nadded++] = fd;
}

/* An injection failed: the line to report, and gone() already ran if it ended. */
static int inject_failed(struct ghost_hold *h, int r, const char *what, char *why,
			 size_t why_len)
{
	if (h->gone)
		return gone_msg(h, why, why_len);
	return failf(why, why_len, r, "cannot run %s in process %d: %s", what, h->pid,
		     ghost_strerror(r));
}

static int open_channel(struct ghost_hold *h, char *why, size_t why_len)
{
	uint64_t at = h->scratch + offsetof(struct scratch, pair);
	int pair[2];
	long ret;
	int r;

	/* Drop a channel something went wrong on: its ends are in h->added. */
	h->chan = safe_close(h->chan);
	h->tchan = -1;
	if (reserve_added(h, 2) < 0)
		return failf(why, why_len, -ENOMEM, "out of memory");
	r = inject(h, SYS_socketpair, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, at, &ret);
	if (r < 0)
		return inject_failed(h, r, "socketpair", why, why_len);
	if (ret < 0)
		return failf(why, why_len, (int)ret, "cannot make a socket pair in process %d: %s",
			     h->pid, ghost_strerror((int)ret));
	r = tracee_read_mem(&h->t, at, pair, sizeof(pair));
	if (r < 0) {
		/* Where the two ends are is unknown: stop rather than guess. */
		h->failed = true;
		return failf(why, why_len, r, "cannot read scratch memory of process %d: %s",
			     h->pid, ghost_strerror(r));
	}
	add_fd(h, pair[0]);
	add_fd(h, pair[1]);
	h->chan = (int)syscall(SYS_pidfd_getfd, h->pidfd, pair[1], 0);
	if (h->chan < 0)
		return failf(why, why_len, -errno, "cannot take the socket end made in process %d: %m",
			     h->pid);
	h->tchan = pair[0];
	return 0;
}

static int send_fd(struct ghost_hold *h, int newfd)
{
	struct {
		char buf[CMSG_SPACE(sizeof(int))] __attribute__((aligned(8)));
	} ctl = { { 0 } };
	uint64_t payload[2] = { h->cookie, h->seq };
	struct iovec iov = { .iov_base = payload, .iov_len = sizeof(payload) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			      .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &newfd, sizeof(int));
	if (sendmsg(h->chan, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)sizeof(payload))
		return negative_errno();
	return 0;
}

/* recvmsg in the process: the fd it got in *ret_got (-1 if none). 0 when it
 * is the one we sent; GHOST_EPROTO when something else came. */
static int receive_fd(struct ghost_hold *h, int *ret_got, char *why, size_t why_len)
{
	struct scratch s = { 0 };
	uint64_t base = h->scratch;
	struct cmsghdr *c;
	long ret;
	int r;

	*ret_got = -1;
	s.iov.iov_base = (void *)(base + offsetof(struct scratch, payload));
	s.iov.iov_len = sizeof(s.payload);
	s.msg.msg_iov = (void *)(base + offsetof(struct scratch, iov));
	s.msg.msg_iovlen = 1;
	s.msg.msg_control = (void *)(base + offsetof(struct scratch, ctl));
	s.msg.msg_controllen = sizeof(s.ctl.buf);
	r = tracee_write_mem(&h->t, base, &s, offsetof(struct scratch, pair));
	if (r < 0)
		return failf(why, why_len, r, "cannot write scratch memory of process %d: %s",
			     h->pid, ghost_strerror(r));
	r = inject(h, SYS_recvmsg, (uint64_t)h->tchan, base, MSG_CMSG_CLOEXEC | MSG_DONTWAIT, 0,
		   &ret);
	if (r < 0)
		return inject_failed(h, r, "recvmsg", why, why_len);
	if (ret < 0)
		return failf(why, why_len, (int)ret, "process %d cannot receive the fd: %s", h->pid,
			     ghost_strerror((int)ret));
	r = tracee_read_mem(&h->t, base, &s, offsetof(struct scratch, pair));
	if (r < 0) {
		h->failed = true;
		return failf(why, why_len, r, "cannot read scratch memory of process %d: %s",
			     h->pid, ghost_strerror(r));
	}
	/* Point the header at our copy of the control bytes to walk them. */
	s.msg.msg_control = s.ctl.buf;
	c = CMSG_FIRSTHDR(&s.msg);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
	    c->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(ret_got, CMSG_DATA(c), sizeof(int));
	if (*ret_got < 0 && (s.msg.msg_flags & MSG_CTRUNC))
		return failf(why, why_len, -EMFILE,
			     "process %d has no room for another fd (RLIMIT_NOFILE)", h->pid);
	if (*ret_got < 0 || ret != (long)sizeof(s.payload) || s.payload[0] != h->cookie ||
	    s.payload[1] != h->seq || (s.msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)))
		return failf(why, why_len, GHOST_EPROTO,
			     "process %d received something other than the fd we sent", h->pid);
	return 0;
}

/* Put newfd at fd in the process. On failure the process's fd is as found. */
static int swap_in(struct ghost_hold *h, int fd, int newfd, int fd_flags, char *why,
		   size_t why_len)
{
	bool was_ours = false; /* fd was free and held one of our channel's ends */
	int got = -1, r;
	long ret;

	if (reserve_added(h, 1) < 0)
		return failf(why, why_len, -ENOMEM, "out of memory");
	/* fd was free when the hold began and we took it for ourselves: move
	 * ours away (dup3 below drops this number's old reference). */
	for (size_t i = 0; i < h->nadded; i++) {
		if (h->added[i] != fd)
			continue;
		r = inject(h, SYS_fcntl, (uint64_t)fd, F_DUPFD_CLOEXEC, 0, 0, &ret);
		if (r < 0)
			return inject_failed(h, r, "fcntl", why, why_len);
		if (ret < 0)
			return failf(why, why_len, (int)ret, "cannot free fd %d in process %d: %s",
				     fd, h->pid, ghost_strerror((int)ret));
		if (h->tchan == fd)
			h->tchan = (int)ret;
		h->added[i] = (int)ret;
		was_ours = true;
		break;
	}

	h->seq++;
	r = send_fd(h, newfd);
	if (r < 0) {
		failf(why, why_len, r, "cannot send fd %d to process %d: %s", newfd, h->pid,
		      ghost_strerror(r));
		goto undo;
	}
	r = receive_fd(h, &got, why, why_len);
	if (got >= 0 && got != fd)
		add_fd(h, got); /* closed at release */
	if (r < 0) {
		/* Never use this channel again: a datagram may still be queued on it. */
		h->chan = safe_close(h->chan);
		goto undo;
	}
	if (got == fd) {
		/* fd was free and the fd landed right there: only FD_CLOEXEC to set. */
		if (fd_flags & FD_CLOEXEC)
			return 0;
		r = inject(h, SYS_fcntl, (uint64_t)fd, F_SETFD, 0, 0, &ret);
		if (r < 0)
			return inject_failed(h, r, "fcntl", why, why_len);
		if (ret >= 0)
			return 0;
		r = failf(why, why_len, (int)ret,
			  "cannot clear FD_CLOEXEC of fd %d in process %d: %s", fd, h->pid,
			  ghost_strerror((int)ret));
		goto undo;
	}
	r = inject(h, SYS_dup3, (uint64_t)got, (uint64_t)fd,
		   (fd_flags & FD_CLOEXEC) ? O_CLOEXEC : 0, 0, &ret);
	if (r < 0)
		return inject_failed(h, r, "dup3", why, why_len);
	if (ret < 0) {
		r = failf(why, why_len, (int)ret, "cannot install fd %d in process %d: %s", fd,
			  h->pid, ghost_strerror((int)ret));
		goto undo;
	}
	return 0;
undo:
	/* fd was free before the hold: free it again. */
	if ((was_ours || got == fd) && !h->gone) {
		long e = 0;

		if (inject(h, SYS_close, (uint64_t)fd, 0, 0, 0, &e) < 0 || e < 0)
			log_warn("process %d: cannot free fd %d again, ignoring", h->pid, fd);
	}
	if (h->gone)
		return gone_msg(h, why, why_len);
	return r;
}

/* --- epoll registrations of a swapped fd -------------------------------------------- */

/* The registrations of the file now at fd, in every epoll instance of the
 * process; none when fd is free. */
static int find_watchers(struct ghost_hold *h, int fd, struct ep_watch **ret, size_t *ret_n,
			 char *why, size_t why_len)
{
	struct stat sb;
	char path[64];
	int r;

	*ret = NULL;
	*ret_n = 0;
	if (!h->ep_inst_known) {
		r = ep_instances_of(h->pid, &h->ep_inst, &h->n_ep_inst);
		if (r < 0)
			return failf(why, why_len, r,
				     "cannot list the epoll instances of process %d: %s", h->pid,
				     ghost_strerror(r));
		h->ep_inst_known = true;
	}
	if (h->n_ep_inst == 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", h->pid, fd);
	if (stat(path, &sb) < 0) {
		if (errno == ENOENT)
			return 0;
		return failf(why, why_len, -errno, "cannot stat fd %d of process %d: %m", fd,
			     h->pid);
	}
	r = ep_watchers_of(h->pid, h->ep_inst, h->n_ep_inst, fd, &sb, ret, ret_n);
	if (r < 0)
		return failf(why, why_len, r,
			     "cannot read the epoll registrations of fd %d of process %d: %s", fd,
			     h->pid, ghost_strerror(r));
	return 0;
}

/* Whether epoll can watch newfd as each registration asks (a pipe can be
 * watched, a regular file cannot; EPOLLEXCLUSIVE cannot watch an epoll
 * instance): asked of an instance of ours, before the process is touched. */
static int check_watchable(struct ghost_hold *h, int fd, int newfd, const struct ep_watch *w,
			   size_t n, char *why, size_t why_len)
{
	for (size_t i = 0; i < n; i++) {
		struct epoll_event ev = { .events = w[i].events, .data.u64 = w[i].data };
		_cleanup_close_ int ep = epoll_create1(EPOLL_CLOEXEC);

		if (ep < 0)
			return failf(why, why_len, -errno, "cannot create an epoll instance: %m");
		if (epoll_ctl(ep, EPOLL_CTL_ADD, newfd, &ev) < 0)
			return failf(why, why_len, -errno,
				     "epoll cannot watch the new file for fd %d of process %d as epoll fd %d watched the old one (events %#x): %m",
				     fd, h->pid, w[i].epfd, w[i].events);
	}
	return 0;
}

/* epoll_ctl(op) of fd in each instance of w[0..n) in the process, in order;
 * *ret_done: how many succeeded. */
static int ctl_all(struct ghost_hold *h, int op, int fd, const struct ep_watch *w, size_t n,
		   size_t *ret_done, char *why, size_t why_len)
{
	uint64_t at = h->scratch + offsetof(struct scratch, ev);

	*ret_done = 0;
	for (size_t i = 0; i < n; i++) {
		struct epoll_event ev = { .events = w[i].events, .data.u64 = w[i].data };
		long ret;
		int r;

		if (op == EPOLL_CTL_ADD) {
			r = tracee_write_mem(&h->t, at, &ev, sizeof(ev));
			if (r < 0)
				return failf(why, why_len, r,
					     "cannot write scratch memory of process %d: %s", h->pid,
					     ghost_strerror(r));
		}
		r = inject(h, SYS_epoll_ctl, (uint64_t)w[i].epfd, (uint64_t)op, (uint64_t)fd,
			   op == EPOLL_CTL_ADD ? at : 0, &ret);
		if (r < 0)
			return inject_failed(h, r, "epoll_ctl", why, why_len);
		if (ret < 0)
			return failf(why, why_len, (int)ret,
				     "cannot %s fd %d %s epoll fd %d of process %d: %s",
				     op == EPOLL_CTL_ADD ? "register" : "unregister", fd,
				     op == EPOLL_CTL_ADD ? "with" : "from", w[i].epfd, h->pid,
				     ghost_strerror((int)ret));
		(*ret_done)++;
	}
	return 0;
}

/* After a failure: put back what was undone, keeping the first message. A
 * failure here leaves the process's registrations unknown: sticky. */
static void redo(struct ghost_hold *h, int op, int fd, const struct ep_watch *w, size_t n)
{
	char ignored[128];
	size_t done;

	if (!h->gone && ctl_all(h, op, fd, w, n, &done, ignored, sizeof(ignored)) < 0) {
		log_warn("process %d: cannot put the epoll registrations of fd %d back: %s", h->pid,
			 fd, ignored);
		h->failed = true;
	}
}

/*
 * Put newfd at fd in the process, and make every epoll instance of the
 * process that watched the file at fd watch newfd there instead.
 *
 * The kernel keys a registration by file and fd number, so after the dup3 the
 * instances still watch the old file under fd, and nothing of the new one.
 * Each registration is removed first, while the old file is still at fd: it
 * can only be named by fd number, and the old file lives on after the swap
 * (its caller keeps a copy: the old end of a stream, drained), so left alone
 * the registration would report the old file's events (its peer's end or
 * hangup) under the data the process gave, as if they were the new file's,
 * until the caller closes the copy; the process could never remove it; and
 * an export would refuse it as stale. Then each is made again for the new
 * file with the same events and data. A registration the process had let
 * fire as EPOLLONESHOT comes back armed for EPOLLERR and EPOLLHUP, which every
 * EPOLL_CTL_ADD adds: firing it here, as an import does, would take events
 * from the instance's other registrations. On failure the old file is put
 * back at fd with its registrations.
 */
static int install_one(struct ghost_hold *h, int fd, int newfd, int fd_flags, char *why,
		       size_t why_len)
{
	_cleanup_free_ struct ep_watch *w = NULL;
	_cleanup_close_ int old = -1;
	unsigned old_flags = 0;
	size_t nw, done;
	int r;

	r = find_watchers(h, fd, &w, &nw, why, why_len);
	if (r < 0 || nw == 0)
		return r < 0 ? r : swap_in(h, fd, newfd, fd_flags, why, why_len);
	r = check_watchable(h, fd, newfd, w, nw, why, why_len);
	if (r < 0)
		return r;
	/* To put the old file back if the new one cannot be registered. */
	old = (int)syscall(SYS_pidfd_getfd, h->pidfd, fd, 0);
	if (old < 0)
		return failf(why, why_len, -errno, "cannot take fd %d of process %d: %m", fd,
			     h->pid);
	r = read_fd_flags(h->pid, fd, &old_flags);
	if (r < 0)
		return failf(why, why_len, r, "cannot read fdinfo %d of process %d: %s", fd, h->pid,
			     ghost_strerror(r));

	r = ctl_all(h, EPOLL_CTL_DEL, fd, w, nw, &done, why, why_len);
	if (r < 0) {
		redo(h, EPOLL_CTL_ADD, fd, w, done);
		return r;
	}
	r = swap_in(h, fd, newfd, fd_flags, why, why_len);
	if (r < 0) {
		redo(h, EPOLL_CTL_ADD, fd, w, nw);
		return r;
	}
	r = ctl_all(h, EPOLL_CTL_ADD, fd, w, nw, &done, why, why_len);
	if (r < 0 && !h->gone) {
		char ignored[128];

		redo(h, EPOLL_CTL_DEL, fd, w, done);
		if (swap_in(h, fd, old, (old_flags & O_CLOEXEC) ? FD_CLOEXEC : 0, ignored,
			    sizeof(ignored)) < 0) {
			log_warn("process %d: cannot put the old file back at fd %d: %s", h->pid, fd,
				 ignored);
			h->failed = true;
		} else {
			redo(h, EPOLL_CTL_ADD, fd, w, nw);
		}
	}
	return r;
}

/* Whether fd of the held process (h NULL: of ours) is an epoll instance. */
static bool is_epoll_at(const struct ghost_hold *h, int fd)
{
	char path[64], link[64];
	ssize_t len;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", h ? h->pid : getpid(), fd);
	len = readlink(path, link, sizeof(link) - 1);
	if (len < 0)
		return false;
	link[len] = '\0';
	return ep_is_link(link);
}

static void forget_instances(struct ghost_hold *h)
{
	free(h->ep_inst);
	h->ep_inst = NULL;
	h->n_ep_inst = 0;
	h->ep_inst_known = false;
}

int ghost_hold_install(struct ghost_hold *h, int fd, int newfd, int fd_flags, char *why,
		       size_t why_len)
{
	bool changes_instances;
	int r;

	if (why && why_len)
		why[0] = '\0';
	if (!h || fd < 0 || newfd < 0 || (fd_flags & ~FD_CLOEXEC))
		return failf(why, why_len, -EINVAL, "invalid arguments (fd %d, new fd %d, flags %#x)",
			     fd, newfd, (unsigned)fd_flags);
	if (fcntl(newfd, F_GETFD) < 0)
		return failf(why, why_len, -EBADF, "fd %d to install in process %d is not open",
			     newfd, h->pid);
	if (h->gone)
		return gone_msg(h, why, why_len);
	if (h->failed)
		return failf(why, why_len, -EIO,
			     "an earlier step on process %d failed; release it and hold it again",
			     h->pid);
	if (!h->armed) {
		r = arm(h, why, why_len);
		if (r < 0)
			return r;
	}
	if (h->chan < 0) {
		r = open_channel(h, why, why_len);
		if (r < 0)
			return r;
	}
	/* Putting an epoll instance at fd, or replacing one there, changes the
	 * process's instances (whatever the outcome: a failure may leave either). */
	changes_instances = is_epoll_at(h, fd) || is_epoll_at(NULL, newfd);
	r = install_one(h, fd, newfd, fd_flags, why, why_len);
	if (changes_instances)
		forget_instances(h);
	return r;
}

/* --- release -------------------------------------------------------------------------- */

static int int_cmp(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/* close_range() over each run of consecutive numbers: usually one call. */
static void close_added(struct ghost_hold *h)
{
	if (h->nadded == 0)
		return; /* added is NULL then, which qsort() may not be given */
	qsort(h->added, h->nadded, sizeof(*h->added), int_cmp);
	for (size_t i = 0; i < h->nadded && !h->gone;) {
		size_t j = i;
		long ret;
		int r;

		while (j + 1 < h->nadded && h->added[j + 1] <= h->added[j] + 1)
			j++;
		r = inject(h, SYS_close_range, (uint64_t)h->added[i], (uint64_t)h->added[j], 0, 0,
			   &ret);
		if (r < 0 || ret < 0)
			log_warn("process %d: cannot close fds %d-%d, ignoring", h->pid,
				 h->added[i], h->added[j]);
		i = j + 1;
	}
	h->nadded = 0;
}

struct ghost_hold *ghost_hold_release(struct ghost_hold *h)
{
	if (!h)
		return NULL;
	if (h->t.seized && !h->gone) {
		close_added(h);
		if (h->scratch_saved && !h->gone) {
			struct iovec local = { .iov_base = h->saved, .iov_len = SCRATCH_LEN };
			struct iovec remote = { .iov_base = (void *)h->scratch,
						.iov_len = SCRATCH_LEN };

			if (process_vm_writev(h->pid, &local, 1, &remote, 1, 0) != SCRATCH_LEN)
				log_warn("process %d: cannot put its stack bytes back, ignoring",
					 h->pid);
		}
	}
	/* Registers, mask, scratch page, a SIGSTOP that came meanwhile; detach. */
	tracee_release(&h->t, false, false);
	safe_close(h->chan);
	safe_close(h->maps_fd);
	safe_close(h->pidfd);
	free(h->added);
	free(h->ep_inst);
	free(h);
	return NULL;
}

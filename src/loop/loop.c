/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The event loop: epoll for fds, a binary min-heap of timers, a list of
 * deferred callbacks and one signalfd for all handled signals.
 *
 * Freeing during dispatch: epoll hands back a batch of pointers, so a watcher
 * freed while its batch runs is only marked dead and parked on a zombie list
 * until the batch ends. Due timers are moved from the heap to a due list before
 * any runs and deferred callbacks to a run list, and both lists are intrusive:
 * freeing, disarming or re-arming a source simply unlinks it, so a re-armed
 * timer or re-scheduled defer never runs twice in one round.
 */
#include <assert.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include "loop/loop.h"
#include "base/clock.h"
#include "base/macro.h"
#include "base/banned.h"

struct link {
	struct link *prev, *next;
};

static void link_init(struct link *h)
{
	h->prev = h->next = h;
}

static bool link_empty(const struct link *h)
{
	return h->next == h;
}

static bool link_linked(const struct link *n)
{
	return n->next && n->next != n;
}

static void link_add_tail(struct link *h, struct link *n)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}

static void link_del(struct link *n)
{
	if (!n->next)
		return;
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = NULL;
}

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct loop {
	int epfd;
	uint64_t now;
	bool exiting;
	int exit_code;
	bool in_batch;

	struct loop_timer **heap;
	size_t n_heap, cap_heap, n_timers;
	uint64_t timer_seq;
	struct link due;

	struct link defers;

	struct link all_io, all_timers, all_defers;
	struct loop_io *zombies;

	int sigfd;
	sigset_t sigmask;
	struct loop_io *sig_io;
	struct loop_signal *by_signo[_NSIG];
};

struct loop_io {
	struct loop *loop;
	int fd;
	unsigned events;
	bool dead;
	loop_io_fn fn;
	void *userdata;
	struct link all;
	struct loop_io *zombie_next;
};

struct loop_timer {
	struct loop *loop;
	uint64_t deadline;
	uint64_t seq;    /* tie-break: equal deadlines fire in arming order */
	size_t heap_idx; /* SIZE_MAX when not in the heap */
	struct link due; /* linked while due in the current round */
	loop_timer_fn fn;
	void *userdata;
	struct link all;
};

struct loop_defer {
	struct loop *loop;
	struct link node; /* linked while scheduled (or queued to run this round) */
	loop_defer_fn fn;
	void *userdata;
	struct link all;
};

struct loop_signal {
	struct loop *loop;
	int signo;
	loop_signal_fn fn;
	void *userdata;
};

static uint64_t clock_usec(void)
{
	return now_ns() / 1000u;
}

int loop_new(struct loop **ret)
{
	struct loop *l;

	if (!ret)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->sigfd = -1;
	link_init(&l->due);
	link_init(&l->defers);
	link_init(&l->all_io);
	link_init(&l->all_timers);
	link_init(&l->all_defers);
	sigemptyset(&l->sigmask);
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int r = -errno;

		free(l);
		return r;
	}
	l->now = clock_usec();
	*ret = l;
	return 0;
}

static void zombies_free(struct loop *l)
{
	while (l->zombies) {
		struct loop_io *io = l->zombies;

		l->zombies = io->zombie_next;
		free(io);
	}
}

struct loop *loop_free(struct loop *l)
{
	if (!l)
		return NULL;
	for (int s = 1; s < _NSIG; s++)
		loop_signal_free(l->by_signo[s]);
	while (!link_empty(&l->all_io))
		loop_io_free(container_of(l->all_io.next, struct loop_io, all));
	while (!link_empty(&l->all_timers))
		loop_timer_free(container_of(l->all_timers.next, struct loop_timer, all));
	while (!link_empty(&l->all_defers))
		loop_defer_free(container_of(l->all_defers.next, struct loop_defer, all));
	zombies_free(l);
	free(l->heap);
	safe_close(l->sigfd);
	safe_close(l->epfd);
	free(l);
	return NULL;
}

uint64_t loop_now(const struct loop *l)
{
	return l->now;
}

uint64_t loop_now_update(struct loop *l)
{
	l->now = clock_usec();
	return l->now;
}

void loop_exit(struct loop *l, int code)
{
	l->exiting = true;
	l->exit_code = code;
}

bool loop_exiting(const struct loop *l)
{
	return l->exiting;
}

/* ---- fd watchers ---- */

static uint32_t to_epoll(unsigned events)
{
	return (events & LOOP_READ ? EPOLLIN : 0u) | (events & LOOP_WRITE ? EPOLLOUT : 0u);
}

static unsigned from_epoll(uint32_t ev)
{
	return (ev & (EPOLLIN | EPOLLRDHUP) ? LOOP_READ : 0u) | (ev & EPOLLOUT ? LOOP_WRITE : 0u) |
	       (ev & EPOLLERR ? LOOP_ERROR : 0u) | (ev & EPOLLHUP ? LOOP_HANGUP : 0u);
}

int loop_io_new(struct loop *l, int fd, unsigned events, loop_io_fn fn, void *userdata,
		struct loop_io **ret)
{
	struct epoll_event ev = { 0 };
	struct loop_io *io;

	if (!l || fd < 0 || !fn || !ret || (events & ~(unsigned)(LOOP_READ | LOOP_WRITE)))
		return -EINVAL;
	io = calloc(1, sizeof(*io));
	if (!io)
		return -ENOMEM;
	io->loop = l;
	io->fd = fd;
	io->events = events;
	io->fn = fn;
	io->userdata = userdata;
	ev.events = to_epoll(events);
	ev.data.ptr = io;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int r = -errno;

		free(io);
		return r;
	}
	link_add_tail(&l->all_io, &io->all);
	*ret = io;
	return 0;
}

int loop_io_set_events(struct loop_io *io, unsigned events)
{
	struct epoll_event ev = { 0 };

	if (!io || io->dead || (events & ~(unsigned)(LOOP_READ | LOOP_WRITE)))
		return -EINVAL;
	if (io->events == events)
		return 0;
	ev.events = to_epoll(events);
	ev.data.ptr = io;
	if (epoll_ctl(io->loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
		return -errno;
	io->events = events;
	return 0;
}

unsigned loop_io_get_events(const struct loop_io *io)
{
	return io ? io->events : 0;
}

struct loop_io *loop_io_free(struct loop_io *io)
{
	struct loop *l;

	if (!io || io->dead)
		return NULL;
	l = io->loop;
	/* The fd may already be closed by its owner; then the kernel dropped it. */
	(void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	link_del(&io->all);
	io->dead = true;
	if (l->in_batch) {
		io->zombie_next = l->zombies;
		l->zombies = io;
	} else {
		free(io);
	}
	return NULL;
}

/* ---- timers: binary min-heap ordered by (deadline, seq) ---- */

static bool timer_before(const struct loop_timer *a, const struct loop_timer *b)
{
	return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void heap_set(struct loop *l, size_t i, struct loop_timer *t)
{
	l->heap[i] = t;
	t->heap_idx = i;
}

static void heap_up(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!timer_before(t, l->heap[parent]))
			break;
		heap_set(l, i, l->heap[parent]);
		i = parent;
	}
	heap_set(l, i, t);
}

static void heap_down(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= l->n_heap)
			break;
		if (c + 1 < l->n_heap && timer_before(l->heap[c + 1], l->heap[c]))
			c++;
		if (!timer_before(l->heap[c], t))
			break;
		heap_set(l, i, l->heap[c]);
		i = c;
	}
	heap_set(l, i, t);
}

static void heap_remove(struct loop *l, struct loop_timer *t)
{
	size_t i = t->heap_idx;
	struct loop_timer *last;

	assert(i < l->n_heap && l->heap[i] == t);
	t->heap_idx = SIZE_MAX;
	last = l->heap[--l->n_heap];
	if (last == t)
		return;
	heap_set(l, i, last);
	heap_up(l, i);
	heap_down(l, last->heap_idx);
}

int loop_timer_new(struct loop *l, loop_timer_fn fn, void *userdata, struct loop_timer **ret)
{
	struct loop_timer *t;

	if (!l || !fn || !ret)
		return -EINVAL;
	/* Grow the heap now, so arming never allocates and never fails. */
	if (l->n_timers + 1 > l->cap_heap) {
		size_t cap = MAX((size_t)16, l->cap_heap * 2), bytes;
		struct loop_timer **h;

		if (size_mul(cap, sizeof(*h), &bytes) < 0)
			return -ENOMEM;
		h = realloc(l->heap, bytes);
		if (!h)
			return -ENOMEM;
		l->heap = h;
		l->cap_heap = cap;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->loop = l;
	t->heap_idx = SIZE_MAX;
	t->fn = fn;
	t->userdata = userdata;
	link_add_tail(&l->all_timers, &t->all);
	l->n_timers++;
	*ret = t;
	return 0;
}

void loop_timer_disarm(struct loop_timer *t)
{
	if (!t)
		return;
	if (t->heap_idx != SIZE_MAX)
		heap_remove(t->loop, t);
	link_del(&t->due);
}

void loop_timer_arm_at(struct loop_timer *t, uint64_t usec)
{
	struct loop *l = t->loop;

	loop_timer_disarm(t);
	t->deadline = usec;
	t->seq = ++l->timer_seq;
	/* Capacity was reserved by loop_timer_new() for every timer. */
	assert(l->n_heap < l->cap_heap);
	l->heap[l->n_heap] = t;
	t->heap_idx = l->n_heap++;
	heap_up(l, t->heap_idx);
}

void loop_timer_arm(struct loop_timer *t, uint64_t usec)
{
	uint64_t when;

	if (__builtin_add_overflow(t->loop->now, usec, &when))
		when = UINT64_MAX;
	loop_timer_arm_at(t, when);
}

bool loop_timer_armed(const struct loop_timer *t)
{
	return t && (t->heap_idx != SIZE_MAX || link_linked(&t->due));
}

uint64_t loop_timer_deadline(const struct loop_timer *t)
{
	return loop_timer_armed(t) ? t->deadline : UINT64_MAX;
}

struct loop_timer *loop_timer_free(struct loop_timer *t)
{
	if (!t)
		return NULL;
	loop_timer_disarm(t);
	link_del(&t->all);
	t->loop->n_timers--;
	free(t);
	return NULL;
}

/* ---- deferred callbacks ---- */

int loop_defer_new(struct loop *l, loop_defer_fn fn, void *userdata, struct loop_defer **ret)
{
	struct loop_defer *d;

	if (!l || !fn || !ret)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->loop = l;
	d->fn = fn;
	d->userdata = userdata;
	link_add_tail(&l->all_defers, &d->all);
	*ret = d;
	return 0;
}

void loop_defer_schedule(struct loop_defer *d)
{
	if (d && !d->node.next)
		link_add_tail(&d->loop->defers, &d->node);
}

void loop_defer_cancel(struct loop_defer *d)
{
	if (d)
		link_del(&d->node);
}

bool loop_defer_scheduled(const struct loop_defer *d)
{
	return d && d->node.next;
}

struct loop_defer *loop_defer_free(struct loop_defer *d)
{
	if (!d)
		return NULL;
	link_del(&d->node);
	link_del(&d->all);
	free(d);
	return NULL;
}

/* ---- signals ---- */

static void signal_io(struct loop_io *io _unused_, int fd, unsigned events _unused_,
		      void *userdata)
{
	struct loop *l = userdata;
	struct signalfd_siginfo si;

	for (int i = 0; i < 64; i++) {
		ssize_t n = read(fd, &si, sizeof(si));
		struct loop_signal *s;

		if (n != (ssize_t)sizeof(si))
			return;
		if (si.ssi_signo >= _NSIG)
			continue;
		s = l->by_signo[si.ssi_signo];
		if (s)
			s->fn(s, &si, s->userdata);
	}
}

int loop_signal_new(struct loop *l, int signo, loop_signal_fn fn, void *userdata,
		    struct loop_signal **ret)
{
	struct loop_signal *s;
	sigset_t one, mask;
	int fd, r;

	if (!l || signo <= 0 || signo >= _NSIG || signo == SIGKILL || signo == SIGSTOP || !fn ||
	    !ret)
		return -EINVAL;
	if (l->by_signo[signo])
		return -EBUSY;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	mask = l->sigmask;
	sigaddset(&mask, signo);
	fd = signalfd(l->sigfd, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		free(s);
		return r;
	}
	if (l->sigfd < 0) {
		r = loop_io_new(l, fd, LOOP_READ, signal_io, l, &l->sig_io);
		if (r < 0) {
			safe_close(fd);
			free(s);
			return r;
		}
		/* The watcher belongs to the loop, not to the list of user sources. */
		link_del(&l->sig_io->all);
		l->sigfd = fd;
	}
	sigemptyset(&one);
	sigaddset(&one, signo);
	sigprocmask(SIG_BLOCK, &one, NULL);
	l->sigmask = mask;
	s->loop = l;
	s->signo = signo;
	s->fn = fn;
	s->userdata = userdata;
	l->by_signo[signo] = s;
	*ret = s;
	return 0;
}

struct loop_signal *loop_signal_free(struct loop_signal *s)
{
	struct loop *l;
	sigset_t one;

	if (!s)
		return NULL;
	l = s->loop;
	l->by_signo[s->signo] = NULL;
	sigdelset(&l->sigmask, s->signo);
	if (sigisemptyset(&l->sigmask)) {
		loop_io_free(TAKE_PTR(l->sig_io));
		l->sigfd = safe_close(l->sigfd);
	} else {
		(void)signalfd(l->sigfd, &l->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
	}
	sigemptyset(&one);
	sigaddset(&one, s->signo);
	sigprocmask(SIG_UNBLOCK, &one, NULL);
	free(s);
	return NULL;
}

/* ---- dispatch ---- */

static int next_timeout_ms(struct loop *l, int64_t limit_usec)
{
	int64_t usec = limit_usec;

	if (l->exiting || !link_empty(&l->defers))
		return 0;
	if (l->n_heap > 0) {
		uint64_t d = l->heap[0]->deadline;
		int64_t left = d <= l->now ? 0 : (int64_t)MIN(d - l->now, (uint64_t)INT64_MAX);

		if (usec < 0 || left < usec)
			usec = left;
	}
	if (usec < 0)
		return -1;
	/* Round up, so a timer is never polled for early and the loop never spins. */
	return (int)MIN((usec + 999) / 1000, (int64_t)INT_MAX);
}

static void run_timers(struct loop *l)
{
	while (l->n_heap > 0 && l->heap[0]->deadline <= l->now) {
		struct loop_timer *t = l->heap[0];

		heap_remove(l, t);
		link_add_tail(&l->due, &t->due);
	}
	while (!link_empty(&l->due)) {
		struct loop_timer *t = container_of(l->due.next, struct loop_timer, due);

		link_del(&t->due);
		t->fn(t, t->userdata);
	}
}

static void run_defers(struct loop *l)
{
	struct link run;

	if (link_empty(&l->defers))
		return;
	/* Take this round's list: defers scheduled while it runs wait a round. */
	run = l->defers;
	run.next->prev = &run;
	run.prev->next = &run;
	link_init(&l->defers);
	while (!link_empty(&run)) {
		struct loop_defer *d = container_of(run.next, struct loop_defer, node);

		link_del(&d->node);
		d->fn(d, d->userdata);
	}
}

int loop_run_once(struct loop *l, int64_t timeout_usec)
{
	struct epoll_event evs[64];
	int n, ms;

	if (!l)
		return -EINVAL;
	ms = next_timeout_ms(l, timeout_usec);
	n = epoll_wait(l->epfd, evs, (int)ARRAY_SIZE(evs), ms);
	if (n < 0 && errno != EINTR)
		return -errno;
	l->now = clock_usec();
	l->in_batch = true;
	for (int i = 0; i < n; i++) {
		struct loop_io *io = evs[i].data.ptr;

		if (!io->dead)
			io->fn(io, io->fd, from_epoll(evs[i].events), io->userdata);
	}
	l->in_batch = false;
	zombies_free(l);
	run_timers(l);
	run_defers(l);
	return 0;
}

int loop_run(struct loop *l)
{
	if (!l)
		return -EINVAL;
	l->now = clock_usec();
	while (!l->exiting) {
		int r = loop_run_once(l, -1);

		if (r < 0)
			return r;
	}
	/* Ready to run again. */
	l->exiting = false;
	return l->exit_code;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The event loop: one per process, single-threaded (redis ae, libuv). It
 * watches fds with epoll and runs monotonic timers, deferred callbacks and
 * signal handlers (through a signalfd) until loop_exit() is called.
 *
 * Sources (struct loop_io, loop_timer, loop_defer, loop_signal) are heap
 * objects made by x_new() and destroyed by x_free(). Any source may be freed
 * at any time from any callback, its own included; a freed source never runs
 * again. Callbacks run one at a time, in this order per iteration: fd events,
 * due timers, deferred callbacks; then the loop blocks in epoll_wait() (not at
 * all while a deferred callback is pending).
 *
 * Times are microseconds of CLOCK_MONOTONIC. loop_now() is read once per
 * iteration, so every callback of one iteration sees the same time.
 *
 * Errors are -errno. Nothing here logs above debug level.
 */
#ifndef LOOP_LOOP_H
#define LOOP_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/signalfd.h>

struct loop;
struct loop_io;
struct loop_timer;
struct loop_defer;
struct loop_signal;

enum loop_events {
	LOOP_READ = 1 << 0,   /* readable (or a pending accept/connect error) */
	LOOP_WRITE = 1 << 1,  /* writable */
	LOOP_ERROR = 1 << 2,  /* reported only: an error condition on the fd */
	LOOP_HANGUP = 1 << 3, /* reported only: the peer hung up */
};

/* events holds enum loop_events bits, LOOP_ERROR/LOOP_HANGUP even when not asked for. */
typedef void (*loop_io_fn)(struct loop_io *io, int fd, unsigned events, void *userdata);
typedef void (*loop_timer_fn)(struct loop_timer *t, void *userdata);
typedef void (*loop_defer_fn)(struct loop_defer *d, void *userdata);
typedef void (*loop_signal_fn)(struct loop_signal *s, const struct signalfd_siginfo *si,
			       void *userdata);

int loop_new(struct loop **ret);
/* Frees the loop and every source still attached to it (their owners must not
 * use them afterwards). Not from a callback. Returns NULL. */
struct loop *loop_free(struct loop *l);

/* Run until loop_exit(); returns the code given to it, or -errno if epoll fails. */
int loop_run(struct loop *l);
/* One iteration; block for at most timeout_usec (-1: until something happens,
 * 0: never). Returns 0, or -errno. Lets tests and nested drivers step the loop. */
int loop_run_once(struct loop *l, int64_t timeout_usec);
/* Make loop_run() return code after the current iteration. */
void loop_exit(struct loop *l, int code);
bool loop_exiting(const struct loop *l);

/* Monotonic time in microseconds, as of the start of the current iteration. */
uint64_t loop_now(const struct loop *l);
/* Re-read the clock (after a long callback, say). */
uint64_t loop_now_update(struct loop *l);

/* Watch fd (not owned, not closed) for events (LOOP_READ | LOOP_WRITE, or 0). */
int loop_io_new(struct loop *l, int fd, unsigned events, loop_io_fn fn, void *userdata,
		struct loop_io **ret);
/* Change the events watched; cheap when unchanged. */
int loop_io_set_events(struct loop_io *io, unsigned events);
unsigned loop_io_get_events(const struct loop_io *io);
struct loop_io *loop_io_free(struct loop_io *io);

/* A timer, created disarmed. One-shot: it disarms itself before its callback,
 * which may re-arm it. */
int loop_timer_new(struct loop *l, loop_timer_fn fn, void *userdata, struct loop_timer **ret);
/* (Re-)arm to fire at the absolute monotonic time usec (past times fire at once). */
void loop_timer_arm_at(struct loop_timer *t, uint64_t usec);
/* (Re-)arm to fire usec after loop_now(). */
void loop_timer_arm(struct loop_timer *t, uint64_t usec);
void loop_timer_disarm(struct loop_timer *t);
bool loop_timer_armed(const struct loop_timer *t);
/* Deadline of an armed timer, UINT64_MAX if disarmed. */
uint64_t loop_timer_deadline(const struct loop_timer *t);
struct loop_timer *loop_timer_free(struct loop_timer *t);

/* A deferred callback: loop_defer_schedule() makes it run once, at the end of
 * the current iteration (or the next one when called from a deferred callback).
 * Scheduling an already scheduled defer does nothing. */
int loop_defer_new(struct loop *l, loop_defer_fn fn, void *userdata, struct loop_defer **ret);
void loop_defer_schedule(struct loop_defer *d);
void loop_defer_cancel(struct loop_defer *d);
bool loop_defer_scheduled(const struct loop_defer *d);
struct loop_defer *loop_defer_free(struct loop_defer *d);

/* Handle signal signo in the loop: the signal is blocked with sigprocmask()
 * and read from a signalfd. One source per signal number (-EBUSY otherwise).
 * Freeing the source unblocks the signal again. */
int loop_signal_new(struct loop *l, int signo, loop_signal_fn fn, void *userdata,
		    struct loop_signal **ret);
struct loop_signal *loop_signal_free(struct loop_signal *s);

#endif

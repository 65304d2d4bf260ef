/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of the event loop: fds, timers, deferred callbacks, signals, exit. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop/loop.h"
#include "base/macro.h"

struct rec {
	struct loop *loop;
	int log[16];
	int n;
	struct loop_timer *other;
	struct loop_io *other_io;
	int rearm;
};

static void note(struct rec *r, int what)
{
	assert_true(r->n < (int)ARRAY_SIZE(r->log));
	r->log[r->n++] = what;
}

static void on_timer_note(struct loop_timer *t, void *userdata)
{
	struct rec *r = userdata;
	uint64_t d = loop_timer_deadline(t);

	/* Disarmed before its callback runs. */
	assert_int_equal(d, UINT64_MAX);
	assert_false(loop_timer_armed(t));
	note(r, 1);
}

struct tagged {
	struct rec *rec;
	int tag;
};

static void on_timer_tag(struct loop_timer *t _unused_, void *userdata)
{
	struct tagged *tg = userdata;

	note(tg->rec, tg->tag);
	if (tg->rec->n == 3)
		loop_exit(tg->rec->loop, 0);
}

static void test_timer_order(void **state _unused_)
{
	struct loop *l;
	struct loop_timer *t[3];
	struct rec rec = { 0 };
	struct tagged tags[3];
	static const uint64_t delays[3] = { 30000, 10000, 20000 };

	assert_int_equal(loop_new(&l), 0);
	rec.loop = l;
	for (int i = 0; i < 3; i++) {
		tags[i] = (struct tagged){ &rec, i };
		assert_int_equal(loop_timer_new(l, on_timer_tag, &tags[i], &t[i]), 0);
		assert_false(loop_timer_armed(t[i]));
		loop_timer_arm(t[i], delays[i]);
		assert_true(loop_timer_armed(t[i]));
	}
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(rec.n, 3);
	assert_int_equal(rec.log[0], 1);
	assert_int_equal(rec.log[1], 2);
	assert_int_equal(rec.log[2], 0);
	for (int i = 0; i < 3; i++)
		loop_timer_free(t[i]);
	loop_free(l);
}

static void on_timer_rearm(struct loop_timer *t, void *userdata)
{
	struct rec *r = userdata;

	note(r, 2);
	if (--r->rearm > 0)
		loop_timer_arm(t, 0);
	else
		loop_exit(r->loop, 7);
}

static void test_timer_rearm_disarm(void **state _unused_)
{
	struct loop *l;
	struct loop_timer *t, *never;
	struct rec rec = { .rearm = 5 };

	assert_int_equal(loop_new(&l), 0);
	rec.loop = l;
	assert_int_equal(loop_timer_new(l, on_timer_rearm, &rec, &t), 0);
	assert_int_equal(loop_timer_new(l, on_timer_note, &rec, &never), 0);
	loop_timer_arm(never, 1000);
	loop_timer_disarm(never);
	assert_false(loop_timer_armed(never));
	loop_timer_arm(t, 0);
	/* A timer re-armed for "now" runs once per iteration, never in a loop. */
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(rec.n, 1);
	assert_int_equal(loop_run(l), 7);
	assert_int_equal(rec.n, 5);
	for (int i = 0; i < 5; i++)
		assert_int_equal(rec.log[i], 2);
	loop_timer_free(t);
	loop_timer_free(never);
	loop_free(l);
}

static void on_timer_free_other(struct loop_timer *t, void *userdata)
{
	struct rec *r = userdata;

	note(r, 3);
	r->other = loop_timer_free(r->other);
	loop_timer_free(t);
	loop_exit(r->loop, 0);
}

static void test_timer_free_in_callback(void **state _unused_)
{
	struct loop *l;
	struct loop_timer *a;
	struct rec rec = { 0 };

	assert_int_equal(loop_new(&l), 0);
	rec.loop = l;
	assert_int_equal(loop_timer_new(l, on_timer_free_other, &rec, &a), 0);
	assert_int_equal(loop_timer_new(l, on_timer_note, &rec, &rec.other), 0);
	/* Both due in the same round; the first frees the second and itself. */
	loop_timer_arm_at(a, 0);
	loop_timer_arm_at(rec.other, 1);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(rec.n, 1);
	assert_int_equal(rec.log[0], 3);
	loop_free(l);
}

static void on_read(struct loop_io *io, int fd, unsigned events, void *userdata)
{
	struct rec *r = userdata;
	char c;

	assert_true(events & LOOP_READ);
	assert_int_equal(read(fd, &c, 1), 1);
	note(r, c);
	/* Free ourselves and the other watcher, whose event is in this batch too. */
	r->other_io = loop_io_free(r->other_io);
	loop_io_free(io);
	loop_exit(r->loop, 0);
}

static void on_write(struct loop_io *io, int fd _unused_, unsigned events, void *userdata)
{
	struct rec *r = userdata;

	assert_true(events & LOOP_WRITE);
	note(r, 'w');
	assert_int_equal(loop_io_set_events(io, 0), 0);
	assert_int_equal(loop_io_get_events(io), 0);
}

static void test_io(void **state _unused_)
{
	struct loop *l;
	struct loop_io *rd, *wr;
	struct rec rec = { 0 };
	int p1[2], p2[2];

	assert_int_equal(loop_new(&l), 0);
	rec.loop = l;
	assert_int_equal(pipe(p1), 0);
	assert_int_equal(pipe(p2), 0);
	assert_int_equal(loop_io_new(l, p2[1], LOOP_WRITE, on_write, &rec, &wr), 0);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(rec.n, 1);
	assert_int_equal(rec.log[0], 'w');
	/* Disabled: no more write events. */
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(rec.n, 1);
	assert_int_equal(loop_io_new(l, p1[0], LOOP_READ, on_read, &rec, &rd), 0);
	assert_int_equal(loop_io_new(l, p2[0], LOOP_READ, on_read, &rec, &rec.other_io), 0);
	assert_int_equal(loop_io_new(l, p1[0], LOOP_READ, on_read, &rec, &(struct loop_io *){ 0 }),
			 -EEXIST);
	assert_int_equal(write(p1[1], "a", 1), 1);
	assert_int_equal(write(p2[1], "b", 1), 1);
	assert_int_equal(loop_run(l), 0);
	/* Whichever ran first freed the other: exactly one read. */
	assert_int_equal(rec.n, 2);
	assert_true(rec.log[1] == 'a' || rec.log[1] == 'b');
	loop_io_free(wr);
	close(p1[0]);
	close(p1[1]);
	close(p2[0]);
	close(p2[1]);
	loop_free(l);
}

static void on_defer(struct loop_defer *d, void *userdata)
{
	struct rec *r = userdata;

	note(r, 4);
	assert_false(loop_defer_scheduled(d));
	if (r->n < 3)
		loop_defer_schedule(d);
}

static void test_defer(void **state _unused_)
{
	struct loop *l;
	struct loop_defer *d, *cancelled;
	struct rec rec = { 0 };

	assert_int_equal(loop_new(&l), 0);
	assert_int_equal(loop_defer_new(l, on_defer, &rec, &d), 0);
	assert_int_equal(loop_defer_new(l, on_defer, &rec, &cancelled), 0);
	loop_defer_schedule(d);
	loop_defer_schedule(d);
	loop_defer_schedule(cancelled);
	loop_defer_cancel(cancelled);
	assert_true(loop_defer_scheduled(d));
	/* Runs once per iteration even when it schedules itself again. */
	assert_int_equal(loop_run_once(l, -1), 0);
	assert_int_equal(rec.n, 1);
	assert_int_equal(loop_run_once(l, -1), 0);
	assert_int_equal(loop_run_once(l, -1), 0);
	assert_int_equal(rec.n, 3);
	assert_false(loop_defer_scheduled(d));
	loop_defer_free(d);
	loop_defer_free(cancelled);
	loop_free(l);
}

static void on_sig(struct loop_signal *s _unused_, const struct signalfd_siginfo *si,
		   void *userdata)
{
	struct rec *r = userdata;

	note(r, (int)si->ssi_signo);
	loop_exit(r->loop, 3);
}

static void test_signal(void **state _unused_)
{
	struct loop *l;
	struct loop_signal *s, *dup;
	struct rec rec = { 0 };
	sigset_t cur;

	assert_int_equal(loop_new(&l), 0);
	rec.loop = l;
	assert_int_equal(loop_signal_new(l, SIGUSR1, on_sig, &rec, &s), 0);
	assert_int_equal(loop_signal_new(l, SIGUSR1, on_sig, &rec, &dup), -EBUSY);
	assert_int_equal(loop_signal_new(l, SIGKILL, on_sig, &rec, &dup), -EINVAL);
	assert_int_equal(raise(SIGUSR1), 0);
	assert_int_equal(loop_run(l), 3);
	assert_int_equal(rec.n, 1);
	assert_int_equal(rec.log[0], SIGUSR1);
	loop_signal_free(s);
	assert_int_equal(sigprocmask(SIG_BLOCK, NULL, &cur), 0);
	assert_false(sigismember(&cur, SIGUSR1));
	loop_free(l);
}

static void on_exit_timer(struct loop_timer *t _unused_, void *userdata)
{
	loop_exit(userdata, 42);
}

static void test_exit_and_leftovers(void **state _unused_)
{
	struct loop *l;
	struct loop_timer *t, *left;
	struct loop_defer *d;
	struct loop_io *io;
	struct rec rec = { 0 };
	int p[2];

	assert_int_equal(loop_new(&l), 0);
	assert_int_equal(loop_timer_new(l, on_exit_timer, l, &t), 0);
	loop_timer_arm(t, 1000);
	assert_int_equal(loop_run(l), 42);
	assert_false(loop_exiting(l));
	/* Sources still attached are freed with the loop (checked by ASan). */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(loop_io_new(l, p[0], LOOP_READ, on_read, &rec, &io), 0);
	assert_int_equal(loop_timer_new(l, on_timer_note, &rec, &left), 0);
	loop_timer_arm(left, 1000000);
	assert_int_equal(loop_defer_new(l, on_defer, &rec, &d), 0);
	loop_defer_schedule(d);
	loop_free(l);
	assert_int_equal(rec.n, 0);
	close(p[0]);
	close(p[1]);
}

static void test_bad_arguments(void **state _unused_)
{
	struct loop *l;
	struct loop_io *io;

	assert_int_equal(loop_new(NULL), -EINVAL);
	assert_int_equal(loop_new(&l), 0);
	assert_int_equal(loop_io_new(l, -1, LOOP_READ, on_read, NULL, &io), -EINVAL);
	assert_int_equal(loop_io_new(l, 0, 0x40, on_read, NULL, &io), -EINVAL);
	assert_null(loop_io_free(NULL));
	assert_null(loop_timer_free(NULL));
	assert_null(loop_defer_free(NULL));
	assert_null(loop_signal_free(NULL));
	assert_null(loop_free(l));
	assert_null(loop_free(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timer_order),
		cmocka_unit_test(test_timer_rearm_disarm),
		cmocka_unit_test(test_timer_free_in_callback),
		cmocka_unit_test(test_io),
		cmocka_unit_test(test_defer),
		cmocka_unit_test(test_signal),
		cmocka_unit_test(test_exit_and_leftovers),
		cmocka_unit_test(test_bad_arguments),
	};

	return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}

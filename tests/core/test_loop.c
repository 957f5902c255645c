/* tests/core/test_loop.c — the event loop: timer order, stopping timers and watchers from their
 * own callbacks, deferred calls, fd readiness, run/stop. Orders and counts are asserted, never
 * durations. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* cmocka.h needs the headers above first */
#include <cmocka.h>

#include <tallow/loop.h>

/* Runs rounds until *flag is set, at most `rounds` times (each waits for at most a second). */
static void run_until(tallow_loop *l, const int *flag, int rounds)
{
    while (!*flag && rounds-- > 0)
        assert_int_equal(tallow_loop_run_once(l, 1000), 0);
    assert_true(*flag);
}

/* ---- timers */

typedef struct order {
    int seen[64];
    int n;
} order;

typedef struct tmark {
    order *o;
    int id;
} tmark;

static void record_timer(tallow_timer *t, void *ud)
{
    tmark *m = ud;
    m->o->seen[m->o->n++] = m->id;
}

static void test_loop_timers_fire_by_due_time(void **state)
{
    tallow_loop *l = tallow_loop_new();
    assert_non_null(l);
    order o = {0};
    /* armed out of order; ids are the expected firing order */
    static const struct {
        int delay, id;
    } arm[] = {{30, 3}, {5, 1}, {50, 4}, {15, 2}, {0, 0}};
    tmark m[5];
    for (int i = 0; i < 5; i++) {
        m[i] = (tmark){&o, arm[i].id};
        assert_non_null(tallow_timer_start(l, (uint64_t)arm[i].delay, 0, record_timer, &m[i]));
    }
    assert_int_equal(o.n, 0); /* nothing fires inside start */
    assert_int_equal(tallow_loop_run(l), 0);
    assert_int_equal(o.n, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(o.seen[i], i);
    tallow_loop_free(l);
}

static void test_loop_equal_due_fire_in_arming_order(void **state)
{
    tallow_loop *l = tallow_loop_new();
    assert_non_null(l);
    order o = {0};
    tmark m[40];
    /* many timers with the same delay: a heap without the tie-break would shuffle them */
    for (int i = 0; i < 40; i++) {
        m[i] = (tmark){&o, i};
        assert_non_null(tallow_timer_start(l, 2, 0, record_timer, &m[i]));
    }
    assert_int_equal(tallow_loop_run(l), 0);
    assert_int_equal(o.n, 40);
    for (int i = 0; i < 40; i++)
        assert_int_equal(o.seen[i], i);
    tallow_loop_free(l);
}

typedef struct repeater {
    int fired;
    int stop_at;
    int other_fired;
} repeater;

static void repeat_cb(tallow_timer *t, void *ud)
{
    repeater *r = ud;
    if (++r->fired == r->stop_at) tallow_timer_stop(t); /* freed after we return */
}

static void test_loop_repeating_timer_stops_itself(void **state)
{
    tallow_loop *l = tallow_loop_new();
    assert_non_null(l);
    repeater r = {.stop_at = 3};
    assert_non_null(tallow_timer_start(l, 0, 1, repeat_cb, &r));
    /* run() returns only once the repeating timer is gone */
    assert_int_equal(tallow_loop_run(l), 0);
    assert_int_equal(r.fired, 3);
    tallow_loop_free(l);
}

static void never_cb(tallow_timer *t, void *ud)
{
    (*(int *)ud)++;
}

typedef struct stopper {
    tallow_timer *victim;
    int fired;
} stopper;

static void stop_other_cb(tallow_timer *t, void *ud)
{
    stopper *s = ud;
    s->fired++;
    tallow_timer_stop(s->victim);
}

static void test_loop_stopped_timer_never_fires(void **state)
{
    tallow_loop *l = tallow_loop_new();
    assert_non_null(l);
    int never = 0, later = 0;
    /* stopped from outside before its time */
    tallow_timer *a = tallow_timer_start(l, 0, 0, never_cb, &never);
    tallow_timer *b = tallow_timer_start(l, 1, 5, never_cb, &never);
    assert_non_null(a);
    assert_non_null(b);
    tallow_timer_stop(a);
    tallow_timer_stop(b);
    /* stopped by an earlier timer's callback, though both are due in the same round */
    stopper s = {0};
    assert_non_null(tallow_timer_start(l, 0, 0, stop_other_cb, &s));
    s.victim = tallow_timer_start(l, 0, 0, never_cb, &never);
    assert_non_null(s.victim);
    assert_non_null(tallow_timer_start(l, 3, 0, never_cb, &later));
    assert_int_equal(tallow_loop_run(l), 0);
    assert_int_equal(s.fired, 1);
    assert_int_equal(never, 0);
    assert_int_equal(later, 1);
    tallow_loop_free(l);
}

/* ---- deferred calls */

typedef struct deferrer {
    tallow_loop *loop;
    int runs;
    int round_of[4];
    int round;
} deferrer;

static void defer_cb(void *ud)
{
    deferrer *d = ud;
    d->round_of[d->runs++] = d->round;
    /* queued from inside a deferred call: must wait for the next round */
    if (d->runs == 1) assert_int_equal(tallow_defer(d->loop, defer_cb, d), 0);
}

static void test_loop_defer_runs_next_round(void **state)
{
    tallow_loop *l = tallow_loop_new();
    assert_non_null(l);
    deferrer d = {.loop = l};
    assert_int_equal(tallow_defer(l, defer_cb, &d), 0);
    assert_int_equal(d.runs, 0); /* not from inside tallow_defer */
    d.round = 1;
    assert_int_equal(tallow_loop_run_once(l, 0), 0);
    assert_int_equal(d.runs, 1);
    d.round = 2;
    assert_int_equal(tallow_loop_run_once(l, 0), 0);
    assert_int_equal(d.runs, 2);
    assert_int_equal(d.round_of[0], 1);
    assert_int_equal(d.round_of[1], 2);
    d.round = 3;
    assert_int_equal(tallow_loop_run_once(l, 0), 0);
    assert_int_equal(d.runs, 2);
    tallow_loop_free(l);
}

static void count_defer(void *ud)
{
    (*(int *)ud)++;
}

static void test_loop_defer_order_and_free(void **state)
{
    tallow_loop *l = tallow_loop_new();
    assert_non_null(l);
    int n = 0;
    for (int i = 0; i < 5; i++)
        assert_int_equal(tallow_defer(l, count_defer, &n), 0);
    assert_int_equal(tallow_loop_run(l), 0); /* deferred calls keep run() going, then it ends */
    assert_int_equal(n, 5);
    /* queued but never run: freed with the loop, not called */
    assert_int_equal(tallow_defer(l, count_defer, &n), 0);
    tallow_loop_free(l);
    assert_int_equal(n, 5);
}

/* ---- fd watchers */

typedef struct watch {
    int reads, writes;
    unsigned last;
    char got[16];
    int stop_in_cb;
    tallow_io *self;
} watch;

static void io_cb(tallow_io *io, int fd, unsigned ev, void *ud)
{
    watch *w = ud;
    w->last = ev;
    if (ev & TALLOW_IO_READ) {
        w->reads++;
        ssize_t n = read(fd, w->got, sizeof(w->got) - 1);
        if (n > 0) w->got[n] = 0;
    }
    if (ev & TALLOW_IO_WRITE) w->writes++;
    if (w->stop_in_cb) {
        tallow_io_stop(io);
        tallow_io_stop(io); /* a second stop is harmless */
    }
}

static void test_loop_io_read_on_data(void **state)
{
    tallow_loop *l = tallow_loop_new();
    assert_non_null(l);
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    watch w = {0};
    tallow_io *io = tallow_io_start(l, p[0], TALLOW_IO_READ, io_cb, &w);
    assert_non_null(io);
    /* nothing to read yet: a round passes without a call */
    assert_int_equal(tallow_loop_run_once(l, 0), 0);
    assert_int_equal(w.reads, 0);
    assert_int_equal(write(p[1], "ping", 4), 4);
    run_until(l, &w.reads, 5);
    assert_int_equal(w.reads, 1);
    assert_int_equal(w.last, TALLOW_IO_READ);
    assert_string_equal(w.got, "ping");
    /* drained: no further call */
    assert_int_equal(tallow_loop_run_once(l, 0), 0);
    assert_int_equal(w.reads, 1);
    /* the writer going away reports as READ (read then returns 0) */
    close(p[1]);
    assert_int_equal(tallow_loop_run_once(l, 1000), 0);
    assert_int_equal(w.reads, 2);
    tallow_io_stop(io);
    tallow_loop_free(l);
    close(p[0]);
}

static void test_loop_io_write_when_writable(void **state)
{
    tallow_loop *l = tallow_loop_new();
    assert_non_null(l);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    watch w = {0};
    tallow_io *io = tallow_io_start(l, sv[0], TALLOW_IO_WRITE, io_cb, &w);
    assert_non_null(io);
    run_until(l, &w.writes, 5);
    assert_int_equal(w.last, TALLOW_IO_WRITE);
    assert_int_equal(w.reads, 0);
    /* fill the socket: no longer writable, so no WRITE event */
    char junk[4096] = {0};
    while (write(sv[0], junk, sizeof(junk)) > 0) {
    }
    assert_int_equal(errno, EAGAIN);
    int before = w.writes;
    assert_int_equal(tallow_loop_run_once(l, 0), 0);
    assert_int_equal(w.writes, before);
    /* watching READ as well: data from the peer gives READ; draining the peer gives WRITE */
    assert_int_equal(tallow_io_set(io, TALLOW_IO_READ | TALLOW_IO_WRITE), 0);
    assert_int_equal(write(sv[1], "hey", 3), 3);
    run_until(l, &w.reads, 5);
    assert_string_equal(w.got, "hey");
    while (read(sv[1], junk, sizeof(junk)) > 0) {
    }
    before = w.writes;
    for (int i = 0; i < 5 && w.writes == before; i++)
        assert_int_equal(tallow_loop_run_once(l, 1000), 0);
    assert_true(w.writes > before);
    /* READ only again: writable no longer reported */
    assert_int_equal(tallow_io_set(io, TALLOW_IO_READ), 0);
    before = w.writes;
    assert_int_equal(tallow_loop_run_once(l, 0), 0);
    assert_int_equal(w.writes, before);
    tallow_io_stop(io);
    tallow_loop_free(l);
    close(sv[0]);
    close(sv[1]);
}

static void test_loop_io_stop_inside_callback(void **state)
{
    tallow_loop *l = tallow_loop_new();
    assert_non_null(l);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    /* two watchers ready in the same round (dup'd fds); the first stops itself */
    int fd2 = dup(sv[0]);
    assert_true(fd2 >= 0);
    watch a = {.stop_in_cb = 1}, b = {.stop_in_cb = 1};
    assert_non_null(tallow_io_start(l, sv[0], TALLOW_IO_WRITE, io_cb, &a));
    assert_non_null(tallow_io_start(l, fd2, TALLOW_IO_WRITE, io_cb, &b));
    /* both stop themselves on their first event: run() then has nothing left and returns */
    assert_int_equal(tallow_loop_run(l), 0);
    assert_int_equal(a.writes, 1);
    assert_int_equal(b.writes, 1);
    tallow_loop_free(l);
    close(fd2);
    close(sv[0]);
    close(sv[1]);
}

typedef struct killer {
    tallow_io *victim;
    int calls;
} killer;

static void kill_other_cb(tallow_io *io, int fd, unsigned ev, void *ud)
{
    killer *k = ud;
    k->calls++;
    tallow_io_stop(k->victim);
    tallow_io_stop(io);
}

static void test_loop_io_stop_other_in_same_round(void **state)
{
    tallow_loop *l = tallow_loop_new();
    assert_non_null(l);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    int fd2 = dup(sv[0]);
    /* whichever fires first stops the other: exactly one callback runs */
    killer k1 = {0}, k2 = {0};
    tallow_io *i1 = tallow_io_start(l, sv[0], TALLOW_IO_WRITE, kill_other_cb, &k1);
    tallow_io *i2 = tallow_io_start(l, fd2, TALLOW_IO_WRITE, kill_other_cb, &k2);
    assert_non_null(i1);
    assert_non_null(i2);
    k1.victim = i2;
    k2.victim = i1;
    assert_int_equal(tallow_loop_run(l), 0);
    assert_int_equal(k1.calls + k2.calls, 1);
    tallow_loop_free(l);
    close(fd2);
    close(sv[0]);
    close(sv[1]);
}

static void test_loop_io_start_bad_fd(void **state)
{
    tallow_loop *l = tallow_loop_new();
    assert_non_null(l);
    watch w = {0};
    assert_null(tallow_io_start(l, -1, TALLOW_IO_READ, io_cb, &w));
    /* a failed start leaves nothing to wait for */
    assert_int_equal(tallow_loop_run(l), 0);
    tallow_loop_free(l);
}

/* ---- run / stop */

static void stop_loop_cb(tallow_timer *t, void *ud)
{
    tallow_loop_stop(ud);
}

static void test_loop_run_returns_when_empty(void **state)
{
    tallow_loop *l = tallow_loop_new();
    assert_non_null(l);
    assert_int_equal(tallow_loop_run(l), 0); /* nothing at all */
    int n = 0;
    assert_non_null(tallow_timer_start(l, 1, 0, never_cb, &n));
    assert_int_equal(tallow_loop_run(l), 0);
    assert_int_equal(n, 1);
    /* the last timer already due when the round starts: run() must not then block */
    assert_non_null(tallow_timer_start(l, 0, 0, never_cb, &n));
    assert_int_equal(tallow_loop_run(l), 0);
    assert_int_equal(n, 2);
    tallow_loop_free(l);
}

static void test_loop_stop_ends_run(void **state)
{
    tallow_loop *l = tallow_loop_new();
    assert_non_null(l);
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    watch w = {0};
    /* a watcher that never fires would keep run() waiting forever; stop() ends it */
    tallow_io *io = tallow_io_start(l, p[0], TALLOW_IO_READ, io_cb, &w);
    assert_non_null(io);
    repeater r = {.stop_at = 1000000};
    tallow_timer *rep = tallow_timer_start(l, 0, 1, repeat_cb, &r);
    assert_non_null(tallow_timer_start(l, 5, 0, stop_loop_cb, l));
    assert_int_equal(tallow_loop_run(l), 0);
    assert_true(r.fired >= 1);
    assert_int_equal(w.reads, 0);
    /* run() again works after a stop */
    int fired = r.fired;
    assert_non_null(tallow_timer_start(l, 2, 0, stop_loop_cb, l));
    assert_int_equal(tallow_loop_run(l), 0);
    assert_true(r.fired > fired);
    tallow_timer_stop(rep);
    tallow_io_stop(io);
    tallow_loop_free(l);
    close(p[0]);
    close(p[1]);
}

static void test_loop_now_is_monotonic(void **state)
{
    tallow_loop *l = tallow_loop_new();
    assert_non_null(l);
    uint64_t a = tallow_now_ns(), b = tallow_now_ns();
    assert_true(b >= a);
    uint64_t before = tallow_loop_now(l);
    int n = 0;
    assert_non_null(tallow_timer_start(l, 3, 0, never_cb, &n));
    assert_int_equal(tallow_loop_run(l), 0);
    assert_true(tallow_loop_now(l) >= before + 3); /* the timer is not early */
    tallow_loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop_timers_fire_by_due_time),
        cmocka_unit_test(test_loop_equal_due_fire_in_arming_order),
        cmocka_unit_test(test_loop_repeating_timer_stops_itself),
        cmocka_unit_test(test_loop_stopped_timer_never_fires),
        cmocka_unit_test(test_loop_defer_runs_next_round),
        cmocka_unit_test(test_loop_defer_order_and_free),
        cmocka_unit_test(test_loop_io_read_on_data),
        cmocka_unit_test(test_loop_io_write_when_writable),
        cmocka_unit_test(test_loop_io_stop_inside_callback),
        cmocka_unit_test(test_loop_io_stop_other_in_same_round),
        cmocka_unit_test(test_loop_io_start_bad_fd),
        cmocka_unit_test(test_loop_run_returns_when_empty),
        cmocka_unit_test(test_loop_stop_ends_run),
        cmocka_unit_test(test_loop_now_is_monotonic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

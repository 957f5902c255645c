/* tests/core/test_work.c — blocking work off the loop (core/base/work.c): the function runs on
 * another thread while the loop keeps serving (a timer fires while the work is blocked), its
 * completion comes back on the loop's thread and never from inside the start call; a cancelled
 * work is waited for and its completion never called. Orders and counts are asserted, never
 * durations. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

/* cmocka.h needs the headers above first */
#include <cmocka.h>

#include <tallow/loop.h>

#include "../../core/base/work.h"

typedef struct job {
    int gate[2];      /* the work blocks reading this pipe until the test writes a byte */
    pthread_t ran_on; /* the thread fn ran on */
    pthread_t done_on;
    int ran, done, ticks;
} job;

static void blocking_fn(void *ud)
{
    job *j = ud;
    char c;
    while (read(j->gate[0], &c, 1) < 0) {
    }
    j->ran_on = pthread_self();
    j->ran = 1;
}

static void done_fn(void *ud)
{
    job *j = ud;
    j->done_on = pthread_self();
    j->done++;
}

/* a timer that lets the work go once the loop has shown it runs while the work blocks */
static void tick(tallow_timer *t, void *ud)
{
    job *j = ud;
    (void)t;
    if (++j->ticks == 3) assert_int_equal(write(j->gate[1], "x", 1), 1);
}

static void test_work_runs_off_the_loop(void **state)
{
    (void)state;
    tallow_loop *l = tallow_loop_new();
    assert_non_null(l);
    job j;
    memset(&j, 0, sizeof j);
    assert_int_equal(pipe(j.gate), 0);
    tallow__work *w = NULL;
    assert_int_equal(tallow__work_start(l, blocking_fn, done_fn, &j, &w), 0);
    assert_non_null(w);
    assert_int_equal(j.done, 0); /* never from inside the start call */
    tallow_timer *t = tallow_timer_start(l, 1, 1, tick, &j);
    assert_non_null(t);
    for (int i = 0; i < 1000 && !j.done; i++)
        assert_int_equal(tallow_loop_run_once(l, 1000), 0);
    tallow_timer_stop(t);
    assert_int_equal(j.done, 1);
    assert_int_equal(j.ran, 1);
    assert_true(j.ticks >= 3); /* the loop served its timer while the work was blocked */
    assert_false(pthread_equal(j.ran_on, pthread_self()));
    assert_true(pthread_equal(j.done_on, pthread_self()));
    close(j.gate[0]);
    close(j.gate[1]);
    tallow_loop_free(l);
}

static void quick_fn(void *ud)
{
    ((job *)ud)->ran = 1;
}

static void test_work_cancel_waits_and_never_reports(void **state)
{
    (void)state;
    tallow_loop *l = tallow_loop_new();
    assert_non_null(l);
    job j;
    memset(&j, 0, sizeof j);
    tallow__work *w = NULL;
    assert_int_equal(tallow__work_start(l, quick_fn, done_fn, &j, &w), 0);
    tallow__work_cancel(w); /* waits for quick_fn */
    assert_int_equal(j.ran, 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tallow_loop_run_once(l, 10), 0);
    assert_int_equal(j.done, 0);
    tallow__work_cancel(NULL); /* nothing */
    tallow_loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_work_runs_off_the_loop),
        cmocka_unit_test(test_work_cancel_waits_and_never_reports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* core/base/loop.c — the epoll event loop: fd watchers, a binary-heap of timers, deferred calls.
 * Watchers and timers stopped from inside callbacks are freed only after the round ends. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <tallow/error.h>
#include <tallow/loop.h>

struct tallow_io {
    tallow_loop *loop;
    int fd;
    unsigned events;
    tallow_io_cb cb;
    void *ud;
    int dead;
    tallow_io *next_dead;
};

struct tallow_timer {
    tallow_loop *loop;
    uint64_t due;
    uint64_t repeat;
    uint64_t seq; /* ties broken by arming order */
    tallow_timer_cb cb;
    void *ud;
    size_t heap_idx; /* SIZE_MAX when not in the heap */
    int running;
    int stopped;
};

typedef struct defer_item {
    tallow_defer_cb cb;
    void *ud;
    struct defer_item *next;
} defer_item;

struct tallow_loop {
    int epfd;
    int stop;
    uint64_t now;
    uint64_t seq;
    size_t nio;
    tallow_timer **heap;
    size_t nheap, capheap;
    defer_item *defer_head, *defer_tail;
    tallow_io *dead_io;
};

TALLOW_API uint64_t tallow_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void update_now(tallow_loop *l)
{
    l->now = tallow_now_ns() / 1000000ull;
}

TALLOW_API tallow_loop *tallow_loop_new(void)
{
    tallow_loop *l = calloc(1, sizeof(*l));
    if (!l) return NULL;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        free(l);
        return NULL;
    }
    update_now(l);
    return l;
}

static void free_dead_io(tallow_loop *l)
{
    while (l->dead_io) {
        tallow_io *io = l->dead_io;
        l->dead_io = io->next_dead;
        free(io);
    }
}

TALLOW_API void tallow_loop_free(tallow_loop *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->nheap; i++)
        free(l->heap[i]);
    free(l->heap);
    while (l->defer_head) {
        defer_item *d = l->defer_head;
        l->defer_head = d->next;
        free(d);
    }
    free_dead_io(l);
    /* Live io watchers belong to their owners' teardown; epoll goes with the fd. */
    close(l->epfd);
    free(l);
}

TALLOW_API uint64_t tallow_loop_now(tallow_loop *l)
{
    return l->now;
}

TALLOW_API void tallow_loop_stop(tallow_loop *l)
{
    l->stop = 1;
}

/* ---- timers: min-heap on (due, seq) */

static int timer_less(const tallow_timer *a, const tallow_timer *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_swap(tallow_loop *l, size_t i, size_t j)
{
    tallow_timer *t = l->heap[i];
    l->heap[i] = l->heap[j];
    l->heap[j] = t;
    l->heap[i]->heap_idx = i;
    l->heap[j]->heap_idx = j;
}

static void heap_up(tallow_loop *l, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!timer_less(l->heap[i], l->heap[p])) break;
        heap_swap(l, i, p);
        i = p;
    }
}

static void heap_down(tallow_loop *l, size_t i)
{
    for (;;) {
        size_t c = 2 * i + 1, m = i;
        if (c < l->nheap && timer_less(l->heap[c], l->heap[m])) m = c;
        if (c + 1 < l->nheap && timer_less(l->heap[c + 1], l->heap[m])) m = c + 1;
        if (m == i) break;
        heap_swap(l, i, m);
        i = m;
    }
}

static int heap_push(tallow_loop *l, tallow_timer *t)
{
    if (l->nheap == l->capheap) {
        size_t cap = l->capheap ? l->capheap * 2 : 16;
        tallow_timer **h = realloc(l->heap, cap * sizeof(*h));
        if (!h) return TALLOW_ENOMEM;
        l->heap = h;
        l->capheap = cap;
    }
    t->heap_idx = l->nheap;
    l->heap[l->nheap++] = t;
    heap_up(l, t->heap_idx);
    return 0;
}

static void heap_remove(tallow_loop *l, tallow_timer *t)
{
    size_t i = t->heap_idx;
    if (i == SIZE_MAX) return;
    l->nheap--;
    if (i != l->nheap) {
        l->heap[i] = l->heap[l->nheap];
        l->heap[i]->heap_idx = i;
        heap_down(l, i);
        heap_up(l, i);
    }
    t->heap_idx = SIZE_MAX;
}

TALLOW_API tallow_timer *tallow_timer_start(tallow_loop *l, uint64_t delay_ms, uint64_t repeat_ms,
                                            tallow_timer_cb cb, void *ud)
{
    tallow_timer *t = calloc(1, sizeof(*t));
    if (!t) return NULL;
    t->loop = l;
    t->due = tallow_now_ns() / 1000000ull + delay_ms;
    t->repeat = repeat_ms;
    t->seq = ++l->seq;
    t->cb = cb;
    t->ud = ud;
    if (heap_push(l, t) < 0) {
        free(t);
        return NULL;
    }
    return t;
}

TALLOW_API void tallow_timer_stop(tallow_timer *t)
{
    if (!t) return;
    if (t->running) {
        t->stopped = 1; /* freed by run_timers after the callback returns */
        return;
    }
    heap_remove(t->loop, t);
    free(t);
}

static void run_timers(tallow_loop *l)
{
    while (l->nheap > 0 && l->heap[0]->due <= l->now) {
        tallow_timer *t = l->heap[0];
        heap_remove(l, t);
        t->running = 1;
        t->cb(t, t->ud);
        t->running = 0;
        if (t->repeat && !t->stopped) {
            t->due = l->now + t->repeat;
            t->seq = ++l->seq;
            if (heap_push(l, t) == 0) continue;
        }
        free(t);
    }
}

/* ---- deferred calls */

TALLOW_API int tallow_defer(tallow_loop *l, tallow_defer_cb cb, void *ud)
{
    defer_item *d = malloc(sizeof(*d));
    if (!d) return TALLOW_ENOMEM;
    d->cb = cb;
    d->ud = ud;
    d->next = NULL;
    if (l->defer_tail)
        l->defer_tail->next = d;
    else
        l->defer_head = d;
    l->defer_tail = d;
    return 0;
}

static void run_deferred(tallow_loop *l)
{
    /* Only what was queued before this round starts runs now; new items wait a round. */
    defer_item *d = l->defer_head;
    l->defer_head = l->defer_tail = NULL;
    while (d) {
        defer_item *next = d->next;
        d->cb(d->ud);
        free(d);
        d = next;
    }
}

/* ---- fd watchers */

static uint32_t to_epoll(unsigned ev)
{
    return ((ev & TALLOW_IO_READ) ? EPOLLIN : 0) | ((ev & TALLOW_IO_WRITE) ? EPOLLOUT : 0);
}

TALLOW_API tallow_io *tallow_io_start(tallow_loop *l, int fd, unsigned events, tallow_io_cb cb,
                                      void *ud)
{
    tallow_io *io = calloc(1, sizeof(*io));
    if (!io) return NULL;
    io->loop = l;
    io->fd = fd;
    io->events = events;
    io->cb = cb;
    io->ud = ud;
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = io};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        free(io);
        return NULL;
    }
    l->nio++;
    return io;
}

TALLOW_API int tallow_io_set(tallow_io *io, unsigned events)
{
    if (io->dead) return -EINVAL;
    if (io->events == events) return 0;
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = io};
    if (epoll_ctl(io->loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0) return -errno;
    io->events = events;
    return 0;
}

TALLOW_API void tallow_io_stop(tallow_io *io)
{
    if (!io || io->dead) return;
    epoll_ctl(io->loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->dead = 1;
    io->loop->nio--;
    io->next_dead = io->loop->dead_io;
    io->loop->dead_io = io;
}

/* ---- running */

TALLOW_API int tallow_loop_run_once(tallow_loop *l, int timeout_ms)
{
    update_now(l);
    run_deferred(l);
    update_now(l);
    run_timers(l);
    int wait = timeout_ms;
    if (l->defer_head || l->stop || (wait < 0 && l->nio == 0 && l->nheap == 0)) {
        wait = 0; /* stopping, or nothing left could end an unbounded wait */
    } else if (l->nheap > 0) {
        uint64_t due = l->heap[0]->due;
        int until = due > l->now ? (int)(due - l->now) : 0;
        if (wait < 0 || until < wait) wait = until;
    }
    struct epoll_event evs[64];
    int n = epoll_wait(l->epfd, evs, 64, wait);
    if (n < 0 && errno != EINTR) return -errno;
    update_now(l);
    for (int i = 0; i < n; i++) {
        tallow_io *io = evs[i].data.ptr;
        if (io->dead) continue;
        unsigned fired = 0;
        if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) fired |= TALLOW_IO_READ;
        if (evs[i].events & EPOLLOUT) fired |= TALLOW_IO_WRITE;
        if ((evs[i].events & (EPOLLERR | EPOLLHUP)) && (io->events & TALLOW_IO_WRITE))
            fired |= TALLOW_IO_WRITE;
        fired &= io->events | TALLOW_IO_READ;
        if (fired) io->cb(io, io->fd, fired, io->ud);
    }
    run_timers(l);
    free_dead_io(l);
    return 0;
}

TALLOW_API int tallow_loop_run(tallow_loop *l)
{
    l->stop = 0;
    while (!l->stop) {
        if (l->nio == 0 && l->nheap == 0 && !l->defer_head) break;
        int rc = tallow_loop_run_once(l, -1);
        if (rc < 0) return rc;
    }
    return 0;
}

/* tallow/loop.h — the event loop: one epoll loop per context with fd watchers, one-shot and
 * repeating timers, and deferred calls. Single-threaded; nothing here is thread-safe. */
#ifndef TALLOW_LOOP_H
#define TALLOW_LOOP_H

#include "common.h"

#define TALLOW_IO_READ 0x1
#define TALLOW_IO_WRITE 0x4

typedef struct tallow_io tallow_io;
typedef struct tallow_timer tallow_timer;

/* Called with the events that fired (TALLOW_IO_* bits; errors and hang-ups report as READ). */
typedef void (*tallow_io_cb)(tallow_io *io, int fd, unsigned events, void *ud);
typedef void (*tallow_timer_cb)(tallow_timer *t, void *ud);
typedef void (*tallow_defer_cb)(void *ud);

/* Creates a loop. Returns NULL on failure. The caller owns it; free with tallow_loop_free. */
TALLOW_API tallow_loop *tallow_loop_new(void);
/* Frees the loop, its timers and pending deferred calls (without calling them). fd watchers
 * still started belong to their owners, who must stop them before freeing the loop. */
TALLOW_API void tallow_loop_free(tallow_loop *loop);
/* Runs until tallow_loop_stop() or until nothing is left to wait for. Returns 0 or -errno. */
TALLOW_API int tallow_loop_run(tallow_loop *loop);
/* Runs at most one round of events, waiting at most timeout_ms (-1: no limit). */
TALLOW_API int tallow_loop_run_once(tallow_loop *loop, int timeout_ms);
/* Makes tallow_loop_run return after the current round. */
TALLOW_API void tallow_loop_stop(tallow_loop *loop);
/* Monotonic milliseconds, cached per round. */
TALLOW_API uint64_t tallow_loop_now(tallow_loop *loop);
/* Monotonic nanoseconds, read now. */
TALLOW_API uint64_t tallow_now_ns(void);

/* Watches fd for events. The loop owns the returned watcher until tallow_io_stop, which frees
 * it (safe from inside its own callback). The fd stays owned by the caller. NULL on failure. */
TALLOW_API tallow_io *tallow_io_start(tallow_loop *loop, int fd, unsigned events, tallow_io_cb cb,
                                      void *ud);
/* Changes the events watched. Returns 0 or -errno. */
TALLOW_API int tallow_io_set(tallow_io *io, unsigned events);
TALLOW_API void tallow_io_stop(tallow_io *io);

/* Arms a timer after delay_ms, then every repeat_ms if repeat_ms > 0. The loop owns it; a
 * one-shot timer is freed after its callback returns, a repeating one by tallow_timer_stop
 * (also safe from inside the callback). NULL on failure. */
TALLOW_API tallow_timer *tallow_timer_start(tallow_loop *loop, uint64_t delay_ms,
                                            uint64_t repeat_ms, tallow_timer_cb cb, void *ud);
/* Cancels and frees a pending timer. Must not be called on a one-shot timer that already ran. */
TALLOW_API void tallow_timer_stop(tallow_timer *t);

/* Calls cb(ud) at the start of the next round, never from inside this call. 0 or TALLOW_ENOMEM. */
TALLOW_API int tallow_defer(tallow_loop *loop, tallow_defer_cb cb, void *ud);

#endif

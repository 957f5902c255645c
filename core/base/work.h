/* core/base/work.h — blocking work off the loop (internal): one call that may wait on the disk
 * (an fsync, a syncfs) runs on a thread of its own while the loop goes on serving the network,
 * and its completion comes back on the loop. Used where a silent loop is visible to the peer: a
 * receiver whose loop waits seconds on the disk acknowledges nothing over QUIC meanwhile, and
 * its sender would take the path for dead. */
#ifndef TALLOW_WORK_H
#define TALLOW_WORK_H

#include <tallow/loop.h>

typedef struct tallow__work tallow__work;

/* Runs fn(arg) on a new thread; once it returned, done(arg) is called from the loop (never from
 * inside this call). fn must touch nothing the loop uses meanwhile. Returns 0 and *out (owned by
 * the loop until done ran, or until tallow__work_cancel), or TALLOW_ENOMEM / -errno, in which
 * case nothing ran: the caller may run fn itself. */
int tallow__work_start(tallow_loop *loop, void (*fn)(void *), void (*done)(void *), void *arg,
                       tallow__work **out);

/* Waits for fn to return (blocking the caller) and frees w; done is not called. For an owner
 * going away before the work came back. */
void tallow__work_cancel(tallow__work *w);

#endif

/* core/base/work.c — blocking work off the loop (work.h): a thread per call, an eventfd the
 * loop watches for its end. Calls are rare (one per large file received, one per transfer), so
 * no pool. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <tallow/error.h>

#include "work.h"

struct tallow__work {
    pthread_t thread;
    int efd;
    tallow_io *io;
    void (*fn)(void *);
    void (*done)(void *);
    void *arg;
};

static void *work_main(void *ud)
{
    tallow__work *w = ud;
    w->fn(w->arg);
    uint64_t one = 1;
    while (write(w->efd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
    return NULL;
}

static void work_free(tallow__work *w)
{
    pthread_join(w->thread, NULL);
    tallow_io_stop(w->io);
    close(w->efd);
    free(w);
}

static void work_on_end(tallow_io *io, int fd, unsigned events, void *ud)
{
    tallow__work *w = ud;
    (void)io;
    (void)events;
    uint64_t v;
    if (read(fd, &v, sizeof(v)) < 0 && errno == EAGAIN) return; /* not yet */
    void (*done)(void *) = w->done;
    void *arg = w->arg;
    work_free(w);
    done(arg);
}

int tallow__work_start(tallow_loop *loop, void (*fn)(void *), void (*done)(void *), void *arg,
                       tallow__work **out)
{
    tallow__work *w = calloc(1, sizeof(*w));
    if (!w) return TALLOW_ENOMEM;
    w->fn = fn;
    w->done = done;
    w->arg = arg;
    w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->efd < 0) {
        int err = -errno;
        free(w);
        return err;
    }
    w->io = tallow_io_start(loop, w->efd, TALLOW_IO_READ, work_on_end, w);
    if (!w->io) {
        close(w->efd);
        free(w);
        return TALLOW_ENOMEM;
    }
    int rc = pthread_create(&w->thread, NULL, work_main, w);
    if (rc != 0) {
        tallow_io_stop(w->io);
        close(w->efd);
        free(w);
        return -rc;
    }
    *out = w;
    return 0;
}

void tallow__work_cancel(tallow__work *w)
{
    if (w) work_free(w);
}

/* plugins/relay/relay_stream.c — the relay's data path. Runs of short frames are written from the
 * sender's input buffer (relay_forward). A frame longer than the input buffer is streamed: once
 * its header is out, the payload goes from the sender's socket to the destination's as it
 * arrives, through a pipe with splice() when there is one destination (no copy, no user-space
 * buffer), through the server's scratch buffer into bounded queues when there are several. The
 * relay never holds more than its queue-high per destination, however long the frame claims to
 * be; a sender is not read while a destination is full (backpressure). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay_srv.h"

static int is_dest(const relay_conn *c, const relay_conn *d, uint32_t to, uint32_t i)
{
    return d && d != c && !(to && to != i + 1);
}

int relay_blocked(relay_conn *c, uint32_t to)
{
    relay_room *r = c->room;
    for (uint32_t i = 0; i < r->capacity; i++) {
        relay_conn *d = r->slots[i].conn;
        if (!is_dest(c, d, to, i) || d->wdead) continue;
        if (d->owner && d->owner != c) return 1;
        if (d->out.bytes >= c->srv->lim.high_water) return 1;
    }
    return 0;
}

static void count(relay_conn *c, uint64_t n)
{
    relay_srv *s = c->srv;
    if (c->room) c->room->bytes += n;
    s->bytes_forwarded += n;
}

static void count_dropped(relay_conn *c, uint64_t n)
{
    relay_srv *s = c->srv;
    if (c->room) c->room->dropped += n;
    s->dropped += n;
}

/* Writes len bytes to d (directly, or queued behind what d already has). 0, or TALLOW_ECLOSED
 * when d's writing failed (d is then write-dead). */
static int send_to(relay_conn *d, const uint8_t *p, size_t len)
{
    struct iovec iov = {(void *)p, len};
    size_t before = relay_conn_queued(d);
    int rc = relay_outq_send(&d->out, d->fd, &iov, 1);
    relay_conn_acct(d, before);
    if (rc < 0) {
        relay_conn_wfail(d);
        return TALLOW_ECLOSED;
    }
    relay_conn_update(d);
    return 0;
}

size_t relay_forward(relay_conn *c, const uint8_t *p, size_t len, uint32_t to, int own)
{
    relay_room *r = c->room;
    size_t sent = 0;
    r->last_active = tallow_loop_now(c->srv->loop);
    for (uint32_t i = 0; i < r->capacity; i++) {
        relay_conn *d = r->slots[i].conn;
        if (!is_dest(c, d, to, i) || d->wdead) continue;
        if (send_to(d, p, len) < 0) continue;
        if (own) d->owner = c;
        sent++;
    }
    if (sent)
        count(c, len * (uint64_t)sent);
    else
        count_dropped(c, len);
    return sent;
}

void relay_stream_start(relay_conn *c, const uint8_t *p, size_t len, uint32_t to)
{
    relay_room *r = c->room;
    relay_conn *one = NULL;
    size_t n = 0;
    int tls = c->tls; /* a TLS bridge copies anyway: no splice() to or from one */
    for (uint32_t i = 0; i < r->capacity; i++) {
        relay_conn *d = r->slots[i].conn;
        if (!is_dest(c, d, to, i) || d->wdead) continue;
        one = d;
        tls |= d->tls;
        n++;
    }
    /* a header alone (PIPE_BUF at most: written whole into an empty pipe) goes into the pipe,
     * so that it leaves with the payload rather than as a segment of its own */
    if (n == 1 && len <= 4096 && !tls && relay_pipe_get(c->srv, c) == 0) {
        if (write(c->pfd[1], p, len) == (ssize_t)len) {
            c->piped = len;
            one->owner = c;
            r->last_active = tallow_loop_now(c->srv->loop);
            return;
        }
        relay_pipe_put(c->srv, c); /* nothing was written */
    }
    if (relay_forward(c, p, len, to, 1) == 1 && !tls) relay_pipe_get(c->srv, c);
}

void relay_stream_unblock(relay_room *r)
{
    for (uint32_t i = 0; i < r->capacity; i++) {
        relay_conn *o = r->slots[i].conn;
        if (o && o->paused) relay_conn_kick(o);
    }
}

/* The connections c's frame is streaming into (at most max). */
static size_t dests(relay_conn *c, relay_conn **dv, size_t max)
{
    relay_room *r = c->room;
    size_t n = 0;
    if (!r) return 0;
    for (uint32_t i = 0; i < r->capacity && n < max; i++) {
        relay_conn *d = r->slots[i].conn;
        if (d && d->owner == c) dv[n++] = d;
    }
    return n;
}

/* The frame is through: its destinations are free (their held control messages follow), and
 * senders waiting for them may go on. */
static void finish(relay_conn *c)
{
    relay_conn *dv[1024];
    size_t n = dests(c, dv, 1024);
    relay_pipe_put(c->srv, c);
    c->left = 0;
    c->paused = 0;
    for (size_t i = 0; i < n; i++) {
        relay_conn *d = dv[i];
        d->owner = NULL;
        relay_outq_move(&d->out, &d->defer);
        relay_conn_update(d);
    }
    if (c->room) relay_stream_unblock(c->room);
}

/* Forgets the pipe and what it holds (its destination went away). */
static void pipe_drop(relay_conn *c)
{
    count_dropped(c, c->piped);
    relay_pipe_close(c->srv, c->pfd);
    c->piped = 0;
}

void relay_stream_abort(relay_conn *c)
{
    relay_srv *s = c->srv;
    if (!RELAY_STREAMING(c)) return;
    pipe_drop(c);
    c->left = 0;
    for (relay_conn *d = s->conns; d;) {
        if (d->owner != c) {
            d = d->next;
            continue;
        }
        d->owner = NULL;
        relay_conn_kill(d, RELAY_R_GONE, 1); /* its stream has a cut frame: it resumes */
        d = s->conns;                        /* the list changed */
    }
}

/* The socket said 0: is it really the end (not a full pipe)? */
static int at_eof(relay_conn *c)
{
    char x;
    ssize_t r = recv(c->fd, &x, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* splice() refused for these descriptors (not a socket error): copies from now on, and what
 * the pipe holds goes to d's queue. */
static int splice_refused(int err)
{
    return err == EINVAL || err == ENOSYS || err == EOPNOTSUPP;
}

static void pipe_unload(relay_conn *c, relay_conn *d)
{
    relay_srv *s = c->srv;
    if (!s->nosplice) RELAY_LOG(s, TALLOW_LOG_WARN, "splice() refused: forwarding by copies");
    s->nosplice = 1;
    while (c->piped > 0) {
        size_t want = c->piped < RELAY_SCRATCH ? c->piped : RELAY_SCRATCH;
        ssize_t m = read(c->pfd[0], s->scratch, want);
        if (m <= 0) break;
        c->piped -= (size_t)m;
        if (d->owner == c && send_to(d, s->scratch, (size_t)m) == 0)
            count(c, (uint64_t)m);
        else
            count_dropped(c, (uint64_t)m);
    }
    pipe_drop(c); /* what could not be read is lost (counted) */
}

/* One destination, through the pipe. Returns 1 if c is gone. */
static int pump_splice(relay_conn *c, relay_conn *d)
{
    for (int round = 0; round < 16; round++) {
        int moved = 0;
        if (c->piped && d->out.bytes == 0 && !d->wdead) {
            ssize_t w =
                splice(c->pfd[0], NULL, d->fd, NULL, c->piped, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (w > 0) {
                c->piped -= (size_t)w;
                count(c, (uint64_t)w);
                moved = 1;
            } else if (w < 0 && splice_refused(errno)) {
                pipe_unload(c, d);
                return 0;
            } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                relay_conn_wfail(d); /* disowned: the caller drops the pipe */
                return 0;
            }
        }
        if (c->left == 0 && c->piped == 0) return 0;
        if (c->left > 0) {
            ssize_t m =
                splice(c->fd, NULL, c->pfd[1], NULL, c->left, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (m > 0) {
                c->left -= (uint64_t)m;
                c->piped += (size_t)m;
                moved = 1;
            } else if (m < 0 && splice_refused(errno)) {
                pipe_unload(c, d);
                return 0;
            } else if ((m == 0 && at_eof(c)) ||
                       (m < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                relay_conn_kill(c, RELAY_R_GONE, 1);
                return 1;
            }
        }
        if (!moved) break;
    }
    /* bytes waiting in the pipe: wait for the destination, not for more input */
    c->paused = c->piped > 0;
    relay_conn_update(d);
    return 0;
}

/* Several destinations (or none, or no pipe): through the scratch buffer. Returns 1 if c is
 * gone. */
static int pump_copy(relay_conn *c, relay_conn **dv, size_t n)
{
    relay_srv *s = c->srv;
    size_t hw = s->lim.high_water;
    for (int round = 0; round < 16; round++) {
        size_t top = 0;
        for (size_t i = 0; i < n; i++)
            if (dv[i]->out.bytes > top) top = dv[i]->out.bytes;
        if (top >= hw) {
            c->paused = 1;
            return 0;
        }
        size_t want = RELAY_SCRATCH;
        if (n && hw - top < want) want = hw - top;
        if (want > c->left) want = (size_t)c->left;
        ssize_t m = read(c->fd, s->scratch, want);
        if (m < 0 && errno == EINTR) continue;
        if (m < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (m <= 0) {
            relay_conn_kill(c, RELAY_R_GONE, 1);
            return 1;
        }
        c->left -= (uint64_t)m;
        size_t sent = 0;
        for (size_t i = 0; i < n; i++)
            if (dv[i]->owner == c && send_to(dv[i], s->scratch, (size_t)m) == 0) sent++;
        if (sent)
            count(c, (uint64_t)m * sent);
        else
            count_dropped(c, (uint64_t)m);
        if (c->left == 0 || (size_t)m < want) break;
        n = dests(c, dv, n); /* some may have failed */
    }
    c->paused = 0;
    return 0;
}

int relay_stream_pump(relay_conn *c)
{
    relay_conn *dv[1024];
    if (!RELAY_STREAMING(c)) return 0;
    if (c->room) c->room->last_active = tallow_loop_now(c->srv->loop);
    size_t n = dests(c, dv, 1024);
    if (c->pfd[0] >= 0) {
        if (n == 1 && !dv[0]->wdead) {
            if (pump_splice(c, dv[0])) return 1;
            if (RELAY_STREAMING(c) && dv[0]->owner == c && c->pfd[0] >= 0) {
                relay_conn_update(c);
                return 0;
            }
            n = dests(c, dv, 1024);
        }
        if (RELAY_STREAMING(c) && c->pfd[0] >= 0) pipe_drop(c); /* its destination is gone */
    }
    if (c->left > 0 && pump_copy(c, dv, n)) return 1;
    if (!RELAY_STREAMING(c)) finish(c);
    relay_conn_update(c);
    return 0;
}

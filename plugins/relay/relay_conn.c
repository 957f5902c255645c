/* plugins/relay/relay_conn.c — the relay's connections: reading, writing, queued control
 * messages, closing, killing, the sweep of join and drain deadlines, and settling (kicked
 * connections resume, the dead are freed) at the end of every loop callback. What happens to
 * the bytes is the business of the layers above (rooms, the data path): this file reaches them
 * only through the callbacks of relay_conn_up (relay_srv.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay_srv.h"

/* ---- connections */

void relay_conn_acct(relay_conn *c, size_t before)
{
    relay_srv *s = c->srv;
    s->queued = s->queued - before + relay_conn_queued(c);
    if (s->queued > s->queued_peak) s->queued_peak = s->queued;
}

void relay_conn_update(relay_conn *c)
{
    if (!c->io) return;
    unsigned ev = 0;
    if (!c->paused) ev |= TALLOW_IO_READ;
    if (!c->wdead && (c->out.bytes || (c->owner && c->owner->piped))) ev |= TALLOW_IO_WRITE;
    if (ev != c->events) {
        c->events = ev;
        tallow_io_set(c->io, ev);
    }
}

void relay_conn_kick(relay_conn *c)
{
    if (c->kicked || c->state == RC_DEAD) return;
    c->kicked = 1;
    c->link = c->srv->kicks;
    c->srv->kicks = c;
}

/* c takes no more of its owner's frame: the owner goes on without it (or discards). */
static void conn_disown(relay_conn *c)
{
    relay_conn *src = c->owner;
    if (!src) return;
    c->owner = NULL;
    relay_conn_kick(src);
}

int relay_pipe_get(relay_srv *s, relay_conn *c)
{
    if (s->nosplice) return TALLOW_ENOTSUP;
    if (s->npipes > 0) {
        s->npipes--;
        c->pfd[0] = s->pipes[s->npipes][0];
        c->pfd[1] = s->pipes[s->npipes][1];
        return 0;
    }
    if (pipe2(c->pfd, O_NONBLOCK | O_CLOEXEC) < 0) {
        int err = -errno;
        c->pfd[0] = c->pfd[1] = -1;
        return err;
    }
    if (s->big_pipes < RELAY_PIPE_BIG_MAX &&
        fcntl(c->pfd[1], F_SETPIPE_SZ, RELAY_PIPE_BIG) >= RELAY_PIPE_BIG)
        s->big_pipes++;
    return 0;
}

void relay_pipe_close(relay_srv *s, int fd[2])
{
    if (fd[0] < 0) return;
    if (s->big_pipes > 0 && fcntl(fd[1], F_GETPIPE_SZ) >= RELAY_PIPE_BIG) s->big_pipes--;
    close(fd[0]);
    close(fd[1]);
    fd[0] = fd[1] = -1;
}

void relay_pipe_put(relay_srv *s, relay_conn *c)
{
    if (c->pfd[0] < 0) return;
    if (c->piped == 0 && s->npipes < RELAY_PIPE_POOL) {
        s->pipes[s->npipes][0] = c->pfd[0];
        s->pipes[s->npipes][1] = c->pfd[1];
        s->npipes++;
    } else {
        relay_pipe_close(s, c->pfd);
    }
    c->pfd[0] = c->pfd[1] = -1;
    c->piped = 0;
}

static void conn_release(relay_conn *c)
{
    if (c->io) tallow_io_stop(c->io);
    c->io = NULL;
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    size_t before = relay_conn_queued(c);
    relay_outq_clear(&c->out);
    relay_outq_clear(&c->defer);
    relay_conn_acct(c, before);
    relay_inbuf_free(&c->in);
    conn_disown(c);
    relay_pipe_put(c->srv, c);
    c->left = 0;
}

void relay_conn_kill(relay_conn *c, const char *why, int grace)
{
    relay_srv *s = c->srv;
    if (c->state == RC_DEAD) return;
    c->srv->up->detach(c, why, grace);
    c->state = RC_DEAD;
    c->srv->up->abort(c);
    conn_release(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->nconns--;
    if (c->ip) c->ip->conns--;
    relay_ip_put(s, c->ip);
    c->ip = NULL;
    if (!c->kicked) { /* on the kick list, settle moves it to the grave when it gets there */
        c->link = s->grave_conns;
        s->grave_conns = c;
    }
}

void relay_conn_wfail(relay_conn *c)
{
    if (c->state == RC_CLOSING) {
        relay_conn_kill(c, RELAY_R_GONE, 0);
        return;
    }
    size_t before = relay_conn_queued(c);
    relay_outq_clear(&c->out);
    relay_outq_clear(&c->defer);
    relay_conn_acct(c, before);
    c->wdead = 1;
    conn_disown(c);
    if (c->paused) relay_conn_kick(c); /* read on, to learn how it ended */
    if (c->room) c->srv->up->unblock(c->room);
    relay_conn_update(c);
}

int relay_conn_ctrl(relay_conn *c, const tallow_msg_type *t, const void *msg)
{
    uint8_t buf[RELAY_CTRL_MAX];
    if (c->state == RC_DEAD || c->fd < 0 || c->wdead) return TALLOW_ECLOSED;
    int n = relay_ctrl_frame(t, msg, buf, sizeof buf);
    if (n < 0) return n;
    struct iovec iov = {buf, (size_t)n};
    size_t before = relay_conn_queued(c);
    if (c->owner) { /* in the middle of someone's frame: after it */
        int rc = relay_outq_push(&c->defer, buf, (size_t)n);
        relay_conn_acct(c, before);
        if (rc < 0) relay_conn_kill(c, RELAY_R_GONE, 0);
        return rc;
    }
    int rc = relay_outq_send(&c->out, c->fd, &iov, 1);
    relay_conn_acct(c, before);
    if (rc < 0) {
        relay_conn_wfail(c);
        return rc;
    }
    relay_conn_update(c);
    return 0;
}

void relay_conn_close_after(relay_conn *c, const tallow_msg_type *t, const void *msg)
{
    relay_srv *s = c->srv;
    if (c->state == RC_DEAD || c->state == RC_CLOSING) return;
    c->srv->up->detach(c, RELAY_R_LEFT, 0);
    /* owned: its stream ends in a cut frame, so no last message can follow */
    if (c->wdead || c->owner) {
        relay_conn_kill(c, RELAY_R_GONE, 0);
        return;
    }
    c->srv->up->abort(c);
    if (t && relay_conn_ctrl(c, t, msg) < 0) {
        relay_conn_kill(c, RELAY_R_GONE, 0);
        return;
    }
    c->state = RC_CLOSING;
    c->paused = 0;
    c->deadline = tallow_loop_now(s->loop) + s->lim.drain_ms;
    c->in.start = c->in.end = 0;
    if (c->out.bytes == 0) {
        shutdown(c->fd, SHUT_WR);
        c->shut = 1;
    }
    relay_conn_update(c);
}

/* Reads and throws away (a closing connection). Returns 1 if the connection is gone. */
static int conn_discard(relay_conn *c)
{
    for (int round = 0; round < 4; round++) {
        ssize_t n = read(c->fd, c->srv->scratch, RELAY_SCRATCH);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        if (n <= 0) {
            relay_conn_kill(c, RELAY_R_GONE, 1);
            return 1;
        }
        if ((size_t)n < RELAY_SCRATCH) return 0;
    }
    return 0;
}

/* How much to read into the input buffer: all the room there is, except after a streamed frame
 * (bigmode), when only the next header is read, so that a following long frame moves by splice
 * from its first payload byte. */
static size_t conn_want(relay_conn *c, size_t space)
{
    relay_inbuf *b = &c->in;
    size_t have = b->end - b->start;
    if (!c->bigmode) return space;
    size_t need = RELAY_HDR;
    if (have >= RELAY_HDR && b->buf[b->start + 4] == RELAY_CH_TARGET) need = RELAY_TGT_HDR;
    return have < need ? need - have : space;
}

/* Reads what is there; returns 0, or 1 if the connection is gone. */
static int conn_read(relay_conn *c)
{
    relay_srv *s = c->srv;
    if (c->state == RC_CLOSING) return conn_discard(c);
    for (int round = 0; round < 8 && !c->paused && c->state != RC_DEAD; round++) {
        if (c->state == RC_CLOSING) return conn_discard(c);
        if (RELAY_STREAMING(c)) {
            if (s->up->pump(c)) return 1;
            if (RELAY_STREAMING(c)) break; /* waits for the socket or a destination */
            continue;
        }
        relay_inbuf *b = &c->in;
        if (!b->buf) {
            if (!(b->buf = malloc(s->in_cap))) {
                relay_conn_kill(c, RELAY_R_GONE, 1);
                return 1;
            }
            b->cap = s->in_cap;
        } else if (b->start > 0 && b->cap - b->end < s->in_cap / 2) {
            memmove(b->buf, b->buf + b->start, b->end - b->start);
            b->end -= b->start;
            b->start = 0;
        }
        size_t space = b->cap - b->end, want = conn_want(c, space);
        if (space == 0) break; /* a full buffer waiting to be processed: paused */
        ssize_t n = read(c->fd, b->buf + b->end, want);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n <= 0) {
            relay_conn_kill(c, RELAY_R_GONE, 1);
            return 1;
        }
        b->end += (size_t)n;
        s->up->input(c);
        if ((size_t)n < want && !RELAY_STREAMING(c)) break;
    }
    /* an idle connection (most of them: waiting for a peer) keeps no input buffer */
    if (c->in.buf && c->in.start == c->in.end) relay_inbuf_free(&c->in);
    return 0;
}

static void conn_write(relay_conn *c)
{
    relay_srv *s = c->srv;
    size_t before = c->out.bytes;
    ssize_t w = relay_outq_flush(&c->out, c->fd);
    relay_conn_acct(c, before + c->defer.bytes);
    if (w < 0) {
        relay_conn_wfail(c);
        return;
    }
    if (c->out.bytes == 0 && c->owner && c->owner->piped) {
        s->up->pump(c->owner); /* the owner's pipe goes next */
        if (c->state == RC_DEAD) return;
    }
    if (c->state == RC_CLOSING && c->out.bytes == 0 && !c->shut) {
        shutdown(c->fd, SHUT_WR);
        c->shut = 1;
    }
    if (before >= s->lim.low_water && c->out.bytes < s->lim.low_water) {
        if (c->room) c->srv->up->unblock(c->room);
        if (c->paused) relay_conn_kick(c); /* it was held for its own unread answers */
    }
    relay_conn_update(c);
}

void relay_srv_settle(relay_srv *s)
{
    while (s->kicks) {
        relay_conn *c = s->kicks;
        s->kicks = c->link;
        c->kicked = 0;
        if (c->state == RC_DEAD) {
            c->link = s->grave_conns;
            s->grave_conns = c;
            continue;
        }
        if (!c->paused) continue;
        c->paused = 0;
        if (RELAY_STREAMING(c))
            s->up->pump(c);
        else
            s->up->input(c);
        relay_conn_update(c);
    }
    while (s->grave_conns) {
        relay_conn *c = s->grave_conns;
        s->grave_conns = c->link;
        free(c);
    }
    while (s->grave_rooms) {
        relay_room *r = s->grave_rooms;
        s->grave_rooms = r->link;
        free(r);
    }
}

static void conn_io(tallow_io *io, int fd, unsigned events, void *ud)
{
    relay_conn *c = ud;
    relay_srv *s = c->srv;
    if ((events & TALLOW_IO_WRITE) && c->state != RC_DEAD) conn_write(c);
    if ((events & TALLOW_IO_READ) && c->state != RC_DEAD && c->paused) {
        /* not reading, so this is a hang-up or an error (epoll always reports those): the
         * peer is gone; left alone it would wake the loop forever */
        struct pollfd pf = {c->fd, 0, 0};
        if (poll(&pf, 1, 0) == 1 && (pf.revents & (POLLHUP | POLLERR)))
            relay_conn_kill(c, RELAY_R_GONE, 1);
    } else if ((events & TALLOW_IO_READ) && c->state != RC_DEAD) {
        conn_read(c);
    }
    relay_srv_settle(s);
}

int relay_conn_new(relay_srv *s, int cfd, relay_ip *ip, int tls)
{
    relay_conn *c = calloc(1, sizeof *c);
    if (!c) return TALLOW_ENOMEM;
    c->srv = s;
    c->tls = tls;
    c->fd = cfd;
    c->pfd[0] = c->pfd[1] = -1;
    c->ip = ip;
    c->state = RC_PENDING;
    c->deadline = tallow_loop_now(s->loop) + s->lim.join_timeout_ms;
    c->events = TALLOW_IO_READ;
    c->io = tallow_io_start(s->loop, cfd, TALLOW_IO_READ, conn_io, c);
    if (!c->io) {
        free(c);
        return TALLOW_ENOMEM;
    }
    ip->conns++;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    s->conns_total++;
    return 0;
}

void relay_conn_sweep(relay_srv *s, uint64_t now)
{
    for (relay_conn *c = s->conns; c; c = c->next) {
        if (c->state == RC_PENDING && now >= c->deadline) {
            relay_count_refused(s, RR_JOINTIMEOUT);
            tallow_msg_RoomLeave m = {
                .reason = {(const uint8_t *)RELAY_R_JOINTIMEOUT, strlen(RELAY_R_JOINTIMEOUT)}};
            relay_conn_close_after(c, &tallow_msgtype_RoomLeave, &m);
        } else if (c->state == RC_CLOSING && now >= c->deadline) {
            relay_conn_kill(c, RELAY_R_GONE, 0);
        }
    }
}

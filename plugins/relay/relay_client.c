/* plugins/relay/relay_client.c — the relay client transport ("relay"): a nonblocking TCP
 * connection to a relay (directly or through a SOCKS5 proxy, relay_socks.c), RoomJoin, framed
 * peer data both ways with a bounded output queue, and resume after a dropped connection. The
 * state machine on top of the client's files: they report to it through relay_cl_up.
 *
 * What a channel guarantees: frames arrive whole and in order while the TCP connection lives.
 * If it drops after pairing (an error, an EOF, or a path that stays silent past the keepalive:
 * RELAY_KEEPALIVE_MS without a byte, then twice that after a Ping), the channel reconnects and
 * rejoins with the relay's resume token for up to RELAY_RECONNECT_MS. It reports
 * on_room(PeerDeparted{peer_index = its own index, reason "reconnecting"}) at once and
 * on_room(RoomJoined) when back. Frames queued or in flight in either direction between those
 * two events may be lost (never reordered, duplicated or corrupted); frames sent meanwhile are
 * queued and go out after the rejoin. The other side sees on_room(PeerDeparted{reason
 * "reconnecting"}) then on_room(PeerArrived) (multi rooms: PeerJoinedRoom). The session above
 * resynchronises (it can resume transfers). If resuming fails the channel closes with
 * TALLOW_ECLOSED; the other side then gets on_closed(TALLOW_EPEERGONE) when the relay's grace
 * period ends. */
#include <errno.h>
#include <stddef.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay_cl.h"

#define RELAY_CL_CLOSE_FLUSH_MS 1000

static void cl_tick(tallow_timer *t, void *ud);
static void cl_io(tallow_io *io, int fd, unsigned events, void *ud);
static void cl_connect_next(relay_cl *cl);
static void relay_cl_lost(relay_cl *cl, int err); /* connection dropped: resume or fail */

/* ---- lifetime: the state outlives the host's instance until no callback holds it */

static void cl_free(relay_cl *cl)
{
    if (cl->io) tallow_io_stop(cl->io);
    relay_cl_tls_free(cl);
    if (cl->fd >= 0) close(cl->fd);
    if (cl->tick) tallow_timer_stop(cl->tick);
    if (cl->kick) tallow_timer_stop(cl->kick);
    if (cl->ai) freeaddrinfo(cl->ai);
    relay_cl_tls_cred_free(cl);
    free(cl->pins);
    free(cl->failover);
    relay_outq_clear(&cl->out);
    relay_inbuf_free(&cl->in);
    sodium_memzero(cl->chain_seed, sizeof cl->chain_seed);
    if (cl->password) {
        sodium_memzero(cl->password, strlen(cl->password));
        free(cl->password);
    }
    free(cl);
}

/* Called at the end of every entry point; frees cl if the user closed it meanwhile. Returns 1 if
 * cl is gone. */
static int cl_settle(relay_cl *cl)
{
    if (cl->ch || cl->depth) return 0;
    cl_free(cl);
    return 1;
}

static void cl_sock_release(relay_cl *cl)
{
    if (cl->io) tallow_io_stop(cl->io);
    cl->io = NULL;
    relay_cl_tls_free(cl);
    if (cl->fd >= 0) close(cl->fd);
    cl->fd = -1;
    cl->events = 0;
}

static void relay_cl_fail(relay_cl *cl, int err, const char *reason)
{
    if (cl->state == CL_CLOSED) return;
    cl_sock_release(cl);
    if (cl->tick) tallow_timer_stop(cl->tick);
    cl->tick = NULL;
    relay_outq_clear(&cl->out);
    cl->state = CL_CLOSED;
    if (reason && cl->ch) tallow_ctx_set_error(cl->ctx, "relay %s: %s", cl->hostport, reason);
    if (cl->ch) {
        tallow_channel *ch = cl->ch;
        cl->depth++;
        if (ch->ev->on_closed) ch->ev->on_closed(ch, err, ch->ev_ud);
        cl->depth--;
    }
}

/* ---- writing */

/* Writes what the socket takes; socket errors are recorded, reported by cl_io. */
static void cl_flush(relay_cl *cl)
{
    if (cl->fd < 0 || cl->state < CL_JOINING || cl->werr || cl->fo_wait) return;
    size_t before = cl->out.bytes;
    ssize_t w = relay_cl_flush_out(cl);
    if (w < 0)
        cl->werr = (int)w;
    else
        cl->sent += before - cl->out.bytes;
    relay_cl_update(cl);
}

static void cl_restart(relay_cl *cl);

static void cl_deferred(tallow_timer *t, void *ud);

/* Drops the socket and connects again from the first address at the next loop round. */
static void relay_cl_reconnect_soon(relay_cl *cl)
{
    cl_sock_release(cl);
    relay_inbuf_free(&cl->in);
    cl->state = CL_BACKOFF;
    cl->retry_at = tallow_loop_now(cl->loop);
    if (!cl->kick) cl->kick = tallow_timer_start(cl->loop, 0, 0, cl_deferred, cl);
}

/* Runs at the start of the next loop round: connects (open, resume) and flushes sends. */
static void cl_deferred(tallow_timer *t, void *ud)
{
    relay_cl *cl = ud;
    cl->kick = NULL; /* one-shot: freed by the loop after this returns */
    if (cl->ch && cl->state == CL_BACKOFF && cl->retry_at <= tallow_loop_now(cl->loop)) {
        cl->depth++;
        cl_restart(cl);
        cl->depth--;
    } else if (cl->ch && cl->state != CL_CLOSED) {
        cl_flush(cl);
        if (cl->werr)
            relay_cl_lost(cl, cl->werr);
        else if (cl->want_writable && cl->out.bytes < RELAY_CL_LOW) {
            cl->want_writable = 0;
            cl->depth++;
            if (cl->ch->ev->on_writable) cl->ch->ev->on_writable(cl->ch, cl->ch->ev_ud);
            cl->depth--;
        }
    }
    cl_settle(cl);
}

/* Moves a paired channel to the next failover relay (picked by relay_client_fo.c: its room
 * joined anew, the session above re-keys and resynchronises as after a reconnection) and
 * connects there at the next round. 1 if it moved, 0 if there is nowhere to go. */
static int cl_failover(relay_cl *cl, const char *why)
{
    if (!relay_cl_fo_next(cl, why)) return 0;
    relay_cl_reconnect_soon(cl);
    return 1;
}

static int cl_ctrl(relay_cl *cl, const tallow_msg_type *t, const void *msg)
{
    uint8_t buf[RELAY_CTRL_MAX];
    int n = relay_ctrl_frame(t, msg, buf, sizeof buf);
    if (n < 0) return n;
    return relay_outq_push(&cl->out, buf, (size_t)n);
}

static void relay_cl_became_ready(relay_cl *cl)
{
    int first = !cl->paired;
    cl->paired = 1;
    cl->state = CL_READY;
    if (first && cl->ch) {
        cl->depth++;
        if (cl->ch->ev->on_ready) cl->ch->ev->on_ready(cl->ch, cl->ch->ev_ud);
        cl->depth--;
    }
    if (cl->state == CL_READY && !cl->ping_at) { /* a first RTT sample */
        tallow_msg_Ping ping = {++cl->ping_seq, tallow_now_ns() / 1000u};
        if (cl_ctrl(cl, &tallow_msgtype_Ping, &ping) == 0) cl->ping_at = tallow_loop_now(cl->loop);
    }
    if (cl->state == CL_READY) cl_flush(cl);
}

/* ---- connecting */

static void cl_connected(relay_cl *cl)
{
    int rc = cl->proxy ? relay_socks_start(cl)
             : cl->tls ? relay_cl_tls_start(cl)
                       : relay_cl_send_join(cl);
    if (rc < 0) {
        cl_sock_release(cl);
        cl_connect_next(cl);
    }
}

/* Tries the next resolved address; when none is left, fails (or waits to retry if resuming). */
static void cl_connect_next(relay_cl *cl)
{
    cl_sock_release(cl);
    while (cl->ai_cur) {
        struct addrinfo *a = cl->ai_cur;
        cl->ai_cur = a->ai_next;
        int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) continue;
        relay_sock_setup(fd, 1, a->ai_addr);
        int big = 4 * 1024 * 1024;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
            if (errno == ECONNREFUSED) cl->refused = 1;
            close(fd);
            continue;
        }
        cl->fd = fd;
        cl->werr = 0;
        cl->state = CL_CONNECTING;
        cl->attempt_deadline =
            tallow_loop_now(cl->loop) + (cl->proxy ? RELAY_CL_PROXY_MS : RELAY_CL_CONNECT_MS);
        cl->io = tallow_io_start(cl->loop, fd, TALLOW_IO_WRITE, cl_io, cl);
        if (!cl->io) {
            close(fd);
            cl->fd = -1;
            continue;
        }
        cl->events = TALLOW_IO_WRITE;
        return;
    }
    uint64_t now = tallow_loop_now(cl->loop);
    if (cl->paired &&
        (cl->refused || now >= cl->lost_at + RELAY_FAILOVER_MS || now >= cl->resume_deadline) &&
        cl_failover(cl, cl->refused ? "connection refused" : "unreachable"))
        return;
    if (cl->paired && now < cl->resume_deadline) {
        cl->state = CL_BACKOFF; /* the tick retries */
        cl->retry_at = tallow_loop_now(cl->loop) + RELAY_CL_RETRY_MS;
        return;
    }
    relay_cl_fail(cl, cl->paired ? TALLOW_ECLOSED : -ECONNREFUSED, "cannot connect");
}

static void cl_restart(relay_cl *cl)
{
    cl->ai_cur = cl->ai;
    cl->refused = 0;
    relay_inbuf_free(&cl->in);
    cl->werr = 0;
    cl_connect_next(cl);
}

static void relay_cl_lost(relay_cl *cl, int err)
{
    if (cl->state == CL_CLOSED) return;
    if (!cl->paired || cl->state < CL_JOINING) {
        /* before pairing there is nothing to resume; while connecting, try the next address */
        if (cl->state < CL_JOINING) {
            cl_connect_next(cl);
            return;
        }
        relay_cl_fail(cl, err ? err : TALLOW_ECLOSED, "connection lost");
        return;
    }
    if (cl->state == CL_READY) {
        cl->resume_deadline = tallow_loop_now(cl->loop) + cl->reconnect_ms;
        cl->lost_at = tallow_loop_now(cl->loop);
        size_t lost = cl->out.bytes;
        relay_outq_clear(&cl->out); /* documented: frames in flight may be lost */
        cl->host_pl->host->log(cl->host_pl->host, TALLOW_LOG_INFO,
                               "relay %s: connection lost (%s), resuming (%zu queued bytes lost)",
                               cl->hostport, tallow_strerror(err), lost);
        if (!cl->tick) cl->tick = tallow_timer_start(cl->loop, 250, 250, cl_tick, cl);
        tallow_msg_PeerDeparted m = {
            cl->peer_index,
            {(const uint8_t *)RELAY_R_RECONNECTING, strlen(RELAY_R_RECONNECTING)},
            cl->peers};
        cl->state = CL_BACKOFF;
        cl->retry_at = 0;
        cl_sock_release(cl);
        relay_cl_room_event(cl, TALLOW_MSG_PeerDeparted, &m);
        if (cl->state == CL_BACKOFF && cl->ch) cl_restart(cl);
        return;
    }
    /* lost again while resuming: keep trying until the deadline */
    cl_sock_release(cl);
    cl->state = CL_BACKOFF;
    cl->retry_at = tallow_loop_now(cl->loop) + RELAY_CL_RETRY_MS;
}

/* Pings an idle connection; a connection that stays silent is treated as dropped. */
static void keepalive(relay_cl *cl, uint64_t now)
{
    uint64_t alive = cl->last_rx > cl->last_drain ? cl->last_rx : cl->last_drain;
    if (cl->ping_at && now - cl->ping_at >= 2 * cl->keepalive_ms &&
        now - alive >= 2 * cl->keepalive_ms) {
        relay_cl_lost(cl, TALLOW_ETIMEOUT);
        return;
    }
    if (!cl->ping_at && now - alive >= cl->keepalive_ms) {
        tallow_msg_Ping ping = {++cl->ping_seq, tallow_now_ns() / 1000u};
        if (cl_ctrl(cl, &tallow_msgtype_Ping, &ping) == 0) {
            cl->ping_at = now;
            cl_flush(cl);
        }
    }
}

static void cl_tick(tallow_timer *t, void *ud)
{
    relay_cl *cl = ud;
    uint64_t now = tallow_loop_now(cl->loop);
    cl->depth++;
    if (cl->paired && cl->state != CL_READY && now >= cl->resume_deadline) {
        if (!cl_failover(cl, "could not resume the connection"))
            relay_cl_fail(cl, TALLOW_ECLOSED, "could not resume the connection");
    } else if (cl->state == CL_BACKOFF && now >= cl->retry_at) {
        cl_restart(cl);
    } else if ((cl->state == CL_CONNECTING || cl->state == CL_SOCKS || cl->state == CL_TLS) &&
               now >= cl->attempt_deadline) {
        cl_connect_next(cl);
    } else if (!cl->paired && cl->open_deadline && now >= cl->open_deadline) {
        relay_cl_fail(cl, TALLOW_ETIMEOUT, "no peer joined in time");
    } else if (cl->state >= CL_JOINING && cl->state != CL_CLOSED) {
        keepalive(cl, now);
    }
    if (cl->fo_nmissing && cl->state == CL_READY && now >= cl->fo_until) relay_cl_fo_expire(cl);
    cl->depth--;
    cl_settle(cl);
}

/* ---- reading */

static void cl_read(relay_cl *cl)
{
    /* TLS hands out one record (16 KiB) per call: more rounds, and a short read says nothing */
    int rounds = cl->tls_s ? 128 : 8;
    for (int round = 0; (round < rounds || relay_cl_pending(cl)) && cl->fd >= 0 && cl->ch;
         round++) {
        relay_inbuf *b = &cl->in;
        size_t want = 256 * 1024, live = b->end - b->start;
        if (live >= 4) {
            size_t frame = 4 + (size_t)relay_get32(b->buf + b->start);
            if (frame <= 4 + RELAY_CL_MAX_FRAME && frame > live && frame - live > want)
                want = frame - live;
        }
        if (relay_inbuf_reserve(b, want) < 0) {
            relay_cl_fail(cl, TALLOW_ENOMEM, NULL);
            return;
        }
        size_t space = b->cap - b->end;
        ssize_t n = relay_cl_recv(cl, b->buf + b->end, space);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) {
            relay_cl_lost(cl, n < 0 ? -errno : TALLOW_ECLOSED);
            return;
        }
        b->end += (size_t)n;
        cl->last_rx = tallow_loop_now(cl->loop);
        if (cl->state == CL_SOCKS) {
            if (relay_socks_input(cl) < 0) return;
            if (cl->state == CL_SOCKS) continue;
            if (cl->state == CL_TLS) return; /* the handshake reads from now on */
        }
        relay_cl_frames(cl);
        if ((size_t)n < space && !cl->tls_s) return;
    }
}

static void cl_io(tallow_io *io, int fd, unsigned events, void *ud)
{
    relay_cl *cl = ud;
    cl->depth++;
    if (cl->fd != fd) { /* a stale event for a socket already replaced */
    } else if (cl->state == CL_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            if (err == ECONNREFUSED) cl->refused = 1;
            cl_connect_next(cl);
        } else
            cl_connected(cl);
    } else if (cl->state == CL_TLS) {
        relay_cl_tls_step(cl);
    } else {
        if ((events & TALLOW_IO_WRITE) && cl->state == CL_SOCKS)
            relay_socks_output(cl);
        else if (events & TALLOW_IO_WRITE)
            cl_flush(cl);
        if (cl->werr && cl->state != CL_CLOSED) relay_cl_lost(cl, cl->werr);
        if ((events & TALLOW_IO_READ) && cl->fd == fd && cl->state >= CL_SOCKS &&
            cl->state != CL_CLOSED)
            cl_read(cl);
        if (cl->ch && cl->want_writable && cl->out.bytes < RELAY_CL_LOW && cl->state != CL_CLOSED) {
            cl->want_writable = 0;
            if (cl->ch->ev->on_writable) cl->ch->ev->on_writable(cl->ch, cl->ch->ev_ud);
        }
    }
    cl->depth--;
    cl_settle(cl);
}

/* ---- what the layers below report (relay_cl_up) */

/* The proxy connected us to the relay: TLS next, or straight the RoomJoin. */
static int cl_proxied(relay_cl *cl)
{
    return cl->tls ? relay_cl_tls_start(cl) : relay_cl_send_join(cl);
}

static const relay_cl_up cl_up = {
    .fail = relay_cl_fail,
    .lost = relay_cl_lost,
    .join = relay_cl_send_join,
    .proxied = cl_proxied,
    .ready = relay_cl_became_ready,
    .failover = cl_failover,
};

void relay_cl_wire(relay_cl *cl)
{
    cl->up = &cl_up;
}

/* ---- vtable */

static relay_cl *cl_of(tallow_channel *ch)
{
    return ((relay_chan *)ch)->cl;
}

static int cl_open(tallow_channel *ch, const tallow_channel_params *p)
{
    if (!p || !p->address || !p->room || p->room_len == 0 || p->room_len > RELAY_ROOM_MAX ||
        !ch->ev)
        return TALLOW_EINVAL;
    relay_cl *cl = calloc(1, sizeof *cl);
    if (!cl) return TALLOW_ENOMEM;
    cl->ch = ch;
    relay_cl_wire(cl);
    cl->ctx = ch->ctx;
    cl->loop = ch->loop;
    cl->host_pl = ch->plugin_state;
    cl->fd = -1;
    memcpy(cl->room, p->room, p->room_len);
    cl->room_len = p->room_len;
    cl->capacity = p->capacity;
    if (p->struct_size >= offsetof(tallow_channel_params, flags) + sizeof(p->flags)) {
        cl->room_aware = (p->flags & TALLOW_CHANNEL_ROOM) != 0;
    }
    cl->pair_only = !cl->room_aware && p->capacity <= 2;
    if (p->struct_size >= offsetof(tallow_channel_params, failover) + sizeof(p->failover) &&
        p->failover && *p->failover && !(cl->failover = strdup(p->failover))) {
        cl_free(cl);
        return TALLOW_ENOMEM;
    }
    cl->initiator = p->initiator != 0;
    randombytes_buf(cl->chain_seed, sizeof cl->chain_seed);
    cl->chain_next = 1;
    const char *pin = getenv("TALLOW_RELAY_PIN");
    if (pin && *pin) {
        if (relay_cl_pins_check(pin) < 0) {
            tallow_ctx_set_error(
                cl->ctx, "relay: --relay-pin '%s' is not the base64 or hex of a SHA-256", pin);
            cl_free(cl);
            return TALLOW_EINVAL;
        }
        if (!(cl->pins = strdup(pin))) {
            cl_free(cl);
            return TALLOW_ENOMEM;
        }
    }
    const char *addr = relay_cl_strip_scheme(p->address, &cl->tls);
    int rc = relay_split_hostport(addr, cl->host, sizeof cl->host, cl->port, sizeof cl->port);
    if (rc == 0 && p->password && !(cl->password = strdup(p->password))) rc = TALLOW_ENOMEM;
    char rhost[256], rport[16];
    /* the user's proxy applies even when a caller forgets to pass it on */
    const char *proxy =
        p->proxy && *p->proxy ? p->proxy : tallow_policy_proxy(tallow_ctx_policy(ch->ctx));
    if (rc == 0 && proxy && *proxy) {
        cl->proxy = 1;
        rc = relay_socks_parse_url(cl, proxy, rhost, sizeof rhost, rport, sizeof rport);
    } else if (rc == 0) {
        strcpy(rhost, cl->host);
        strcpy(rport, cl->port);
    }
    snprintf(cl->hostport, sizeof cl->hostport, strchr(cl->host, ':') ? "[%s]:%s" : "%s:%s",
             cl->host, cl->port);
    if (rc == 0) {
        /* no AI_ADDRCONFIG: it hides 127.0.0.1 in loopback-only namespaces */
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
        int g = getaddrinfo(rhost, rport, &hints, &ai);
        if (g != 0) {
            tallow_ctx_set_error(cl->ctx, "relay: cannot resolve %s: %s", rhost, gai_strerror(g));
            rc = TALLOW_ENOTFOUND;
        } else {
            cl->ai = ai;
        }
    }
    if (rc < 0) {
        if (rc == TALLOW_EINVAL && !*tallow_ctx_last_error(cl->ctx))
            tallow_ctx_set_error(cl->ctx, "relay: bad address '%s'", p->address);
        cl_free(cl);
        return rc;
    }
    snprintf(cl->path, sizeof cl->path, "relay %s%s%s", cl->tls ? "tls://" : "", cl->hostport,
             cl->proxy ? " via socks5 proxy" : "");
    uint64_t now = tallow_loop_now(cl->loop);
    if (p->timeout_ms) cl->open_deadline = now + p->timeout_ms;
    const char *ka = getenv("TALLOW_RELAY_KEEPALIVE_MS");
    cl->keepalive_ms = ka && atoi(ka) > 0 ? (uint64_t)atoi(ka) : RELAY_KEEPALIVE_MS;
    const char *rc_ms = getenv("TALLOW_RELAY_RECONNECT_MS");
    cl->reconnect_ms = rc_ms && atoi(rc_ms) > 0 ? (uint64_t)atoi(rc_ms) : RELAY_RECONNECT_MS;
    cl->tick = tallow_timer_start(cl->loop, 250, 250, cl_tick, cl);
    if (!cl->tick) {
        cl_free(cl);
        return TALLOW_ENOMEM;
    }
    if (!(cl->kick = tallow_timer_start(cl->loop, 0, 0, cl_deferred, cl))) {
        cl_free(cl);
        return TALLOW_ENOMEM;
    }
    ((relay_chan *)ch)->cl = cl;
    cl->state = CL_BACKOFF; /* connects from the loop, so no event comes from inside open */
    cl->retry_at = now;
    return 0;
}

/* send(RELAY_TO_LEAVE, reason): RoomLeave{reason} to the relay, after what is queued. */
static int cl_leave(relay_cl *cl, const uint8_t *reason, size_t len)
{
    if (cl->state < CL_JOINING || len > 200) return TALLOW_EINVAL;
    tallow_msg_RoomLeave m = {{reason, len}};
    int rc = cl_ctrl(cl, &tallow_msgtype_RoomLeave, &m);
    if (rc == 0) cl_flush(cl);
    return rc;
}

static int cl_send(tallow_channel *ch, uint32_t to, const uint8_t *frame, size_t len)
{
    relay_cl *cl = cl_of(ch);
    if (cl->state == CL_CLOSED) return TALLOW_ECLOSED;
    if (to == RELAY_TO_LEAVE) return cl_leave(cl, frame, len);
    if (!cl->paired) return TALLOW_EAGAIN;
    if (len + RELAY_TGT_HDR > RELAY_CL_MAX_FRAME) return TALLOW_ETOOBIG;
    uint8_t hdr[RELAY_TGT_HDR];
    if (relay_cl_pair_in_multi(cl)) to = RELAY_CREATOR;
    int targeted = to != RELAY_ANY_PEER && to != 0 && cl->capacity > 2; /* 0 names no peer */
    size_t hl = targeted ? RELAY_TGT_HDR : RELAY_HDR;
    relay_put32(hdr, (uint32_t)(len + hl - 4));
    hdr[4] = targeted ? RELAY_CH_TARGET : RELAY_CH_DATA;
    if (targeted) relay_put32(hdr + RELAY_HDR, to);
    struct iovec iov[2] = {{hdr, hl}, {(void *)frame, len}};
    if (relay_outq_pushv(&cl->out, iov, 2) < 0) return TALLOW_ENOMEM;
    if (cl->state == CL_READY && !(cl->events & TALLOW_IO_WRITE)) {
        if (cl->out.bytes >= RELAY_CL_FLUSH_NOW) cl_flush(cl);
        if (cl->out.bytes && !cl->kick)
            cl->kick = tallow_timer_start(cl->loop, 0, 0, cl_deferred, cl);
    }
    if (cl->out.bytes > RELAY_CL_HIGH) {
        cl->want_writable = 1;
        return 1;
    }
    return 0;
}

/* control(TALLOW_CTL_LEAVE, reason): the same RoomLeave as send(RELAY_TO_LEAVE), for the core,
 * which does not know the relay's private peer ids. control(TALLOW_CTL_STUN_SERVER): the relay's
 * own address (its STUN responder shares the port), then "host:port2" when the relay announced a
 * second STUN port in RoomJoined, so that one relay shows the NAT's mapping behaviour. */
static int cl_control(tallow_channel *ch, int op, void *arg)
{
    relay_cl *cl = cl_of(ch);
    if (op != TALLOW_CTL_LEAVE && op != TALLOW_CTL_STUN_SERVER) return TALLOW_ENOTSUP;
    if (!cl || cl->state == CL_CLOSED) return TALLOW_ECLOSED;
    if (op == TALLOW_CTL_STUN_SERVER) {
        tallow_ctl_addr *a = arg;
        snprintf(a->addr, sizeof a->addr, "%s", cl->hostport);
        if (cl->stun_port2 && cl->stun_port2 != (uint16_t)atoi(cl->port)) {
            size_t n = strlen(a->addr);
            int w = snprintf(a->addr + n, sizeof a->addr - n,
                             strchr(cl->host, ':') ? ",[%s]:%u" : ",%s:%u", cl->host,
                             (unsigned)cl->stun_port2);
            if (w < 0 || (size_t)w >= sizeof a->addr - n) a->addr[n] = 0; /* too long: one */
        }
        return 0;
    }
    const char *why = arg;
    return cl_leave(cl, (const uint8_t *)why, strlen(why));
}

static void cl_close(tallow_channel *ch)
{
    relay_cl *cl = cl_of(ch);
    if (!cl) return;
    ((relay_chan *)ch)->cl = NULL;
    if (cl->fd >= 0 && cl->state >= CL_JOINING && cl->state != CL_CLOSED) {
        tallow_msg_RoomLeave m = {{(const uint8_t *)"bye", 3}};
        /* what is queued (a goodbye such as a cancelled transfer's TransferError) and the
         * RoomLeave behind it get up to RELAY_CL_CLOSE_FLUSH_MS to leave: a RoomLeave that
         * does not reach the relay leaves the peer waiting out the relay's grace period */
        uint64_t until = tallow_now_ns() + RELAY_CL_CLOSE_FLUSH_MS * 1000000ull;
        if (cl_ctrl(cl, &tallow_msgtype_RoomLeave, &m) == 0) {
            while (relay_cl_flush_out(cl) >= 0 && cl->out.bytes > 0) {
                uint64_t now = tallow_now_ns();
                struct pollfd pw = {.fd = cl->fd, .events = POLLOUT};
                if (now >= until || poll(&pw, 1, (int)((until - now) / 1000000u) + 1) <= 0) break;
            }
        }
        /* read what is pending so that closing does not reset the connection */
        uint8_t sink[4096];
        while (relay_cl_recv(cl, sink, sizeof sink) > 0) {
        }
        relay_cl_tls_bye(cl);
        shutdown(cl->fd, SHUT_WR);
    }
    cl_sock_release(cl);
    if (cl->tick) tallow_timer_stop(cl->tick);
    if (cl->kick) tallow_timer_stop(cl->kick);
    cl->tick = cl->kick = NULL;
    cl->state = CL_CLOSED;
    cl->ch = NULL;
    cl_settle(cl);
}

static void cl_get_info(tallow_channel *ch, tallow_channel_info *info)
{
    relay_cl *cl = cl_of(ch);
    memset(info, 0, sizeof *info);
    info->direct = 0;
    if (!cl) return;
    info->path = cl->path;
    info->bytes_sent = cl->sent;
    info->rtt_us = cl->rtt_us;
    info->bytes_recv = cl->recv;
    info->peer_index = cl->peer_index;
    info->peers = cl->peers;
    info->capacity = cl->capacity > 2 ? cl->capacity : 2;
}

static size_t cl_queued(tallow_channel *ch)
{
    relay_cl *cl = cl_of(ch);
    return cl ? cl->out.bytes : 0;
}

const tallow_transport_ops relay_transport_ops = {
    .version = TALLOW_TRANSPORT_OPS_VERSION,
    .struct_size = sizeof(tallow_transport_ops),
    .name = "relay",
    .instance_size = sizeof(relay_chan),
    .open = cl_open,
    .send = cl_send,
    .close = cl_close,
    .get_info = cl_get_info,
    .queued = cl_queued,
    .control = cl_control,
};

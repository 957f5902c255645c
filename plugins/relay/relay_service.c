/* plugins/relay/relay_service.c — the relay service ("relay"): options, the TCP listener and
 * connections on the tallow loop, per-address limits, the sweep timer (join timeouts, room
 * timeouts, resume grace), the UDP STUN responder on the same port, and the stats slot. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <tallow/stun.h>

#include "relay_srv.h"

static const char *const relay_options_help[] = {
    "--listen ADDR:PORT        where to listen, TCP and UDP/STUN (default 0.0.0.0:4433)",
    "--password PW             relay password clients must present (default none)",
    "--max-rooms N             open rooms at most (default 10000)",
    "--max-peers N             peers per multi-peer room at most (default 16)",
    "--max-frame BYTES         largest frame accepted (default 2097216)",
    "--max-conns-per-ip N      connections per client address, IPv6 /64 (default 64)",
    "--max-conns N             connections at once, all addresses (default 20000)",
    "--max-rooms-per-ip N      open rooms created per client address (default 32)",
    "--join-rate N             room joins per second per address, IPv6 /64, bursts of 4N; loopback exempt; 0 off (default 16)",
    "--room-timeout SECONDS    idle paired room lifetime (default 3600)",
    "--unpaired-timeout SECONDS  lifetime of a room nobody joined (default 600)",
    "--join-timeout SECONDS    time to send a valid RoomJoin (default 10)",
    "--grace SECONDS           how long a dropped peer's slot waits for its resume (default 30)",
    "--queue-high BYTES        per-connection queue high-water mark (default 65536)",
    "--stun on|off             answer STUN Binding requests on UDP (default on)",
    "--splice on|off           forward long frames socket to socket with splice() (default on)",
    "--metrics ADDR:PORT       serve Prometheus metrics over HTTP at /metrics (default off)",
    "--drain-timeout SECONDS   SIGTERM: time paired rooms get to finish (default 30)",
    "--cert FILE, --key FILE   serve TLS only (PEM chain and key; clients use tls://HOST:PORT)",
    NULL,
};

/* ---- hash tables */

uint64_t relay_hash(relay_srv *s, const void *key, size_t len)
{
    uint8_t out[crypto_shorthash_BYTES];
    uint64_t h;
    crypto_shorthash(out, key, len, s->hkey);
    memcpy(&h, out, sizeof h);
    return h;
}

relay_hnode *relay_htab_first(relay_htab *t, uint64_t hash)
{
    return t->nb ? t->b[hash & (t->nb - 1)] : NULL;
}

int relay_htab_add(relay_htab *t, relay_hnode *n)
{
    if (t->n + 1 > t->nb) {
        size_t nb = t->nb ? t->nb * 2 : 64;
        relay_hnode **b = calloc(nb, sizeof *b);
        if (!b) return -ENOMEM;
        for (size_t i = 0; i < t->nb; i++) {
            relay_hnode *x = t->b[i], *next;
            for (; x; x = next) {
                next = x->next;
                x->next = b[x->hash & (nb - 1)];
                b[x->hash & (nb - 1)] = x;
            }
        }
        free(t->b);
        t->b = b;
        t->nb = nb;
    }
    relay_hnode **head = &t->b[n->hash & (t->nb - 1)];
    n->next = *head;
    *head = n;
    t->n++;
    return 0;
}

void relay_htab_del(relay_htab *t, relay_hnode *n)
{
    if (!t->nb) return;
    for (relay_hnode **p = &t->b[n->hash & (t->nb - 1)]; *p; p = &(*p)->next) {
        if (*p == n) {
            *p = n->next;
            t->n--;
            return;
        }
    }
}

/* ---- per-address accounting (IPv4 addresses, IPv6 /64s) */

static relay_ip *ip_get(relay_srv *s, const struct sockaddr_storage *ss)
{
    uint8_t a[16] = {0};
    if (ss->ss_family == AF_INET) {
        a[10] = a[11] = 0xff;
        memcpy(a + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    } else {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        memcpy(a, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
        /* one IPv6 host commonly has a whole /64: the limits count per /64, not per address */
        if (memcmp(a, mapped, 12) != 0) memset(a + 8, 0, 8);
    }
    uint64_t h = relay_hash(s, a, 16);
    for (relay_hnode *n = relay_htab_first(&s->ips, h); n; n = n->next)
        if (n->hash == h && memcmp(((relay_ip *)n)->addr, a, 16) == 0) return (relay_ip *)n;
    relay_ip *ip = calloc(1, sizeof *ip);
    if (!ip) return NULL;
    memcpy(ip->addr, a, 16);
    ip->node.hash = h;
    if (relay_htab_add(&s->ips, &ip->node) < 0) {
        free(ip);
        return NULL;
    }
    return ip;
}

void relay_ip_put(relay_srv *s, relay_ip *ip)
{
    if (ip && ip->conns == 0 && ip->rooms == 0) {
        relay_htab_del(&s->ips, &ip->node);
        free(ip);
    }
}

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
    if (s->nosplice) return -1;
    if (s->npipes > 0) {
        s->npipes--;
        c->pfd[0] = s->pipes[s->npipes][0];
        c->pfd[1] = s->pipes[s->npipes][1];
        return 0;
    }
    if (pipe2(c->pfd, O_NONBLOCK | O_CLOEXEC) < 0) {
        c->pfd[0] = c->pfd[1] = -1;
        return -1;
    }
    return 0;
}

void relay_pipe_put(relay_srv *s, relay_conn *c)
{
    if (c->pfd[0] < 0) return;
    if (c->piped == 0 && s->npipes < RELAY_PIPE_POOL) {
        s->pipes[s->npipes][0] = c->pfd[0];
        s->pipes[s->npipes][1] = c->pfd[1];
        s->npipes++;
    } else {
        close(c->pfd[0]);
        close(c->pfd[1]);
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
    relay_room_detach(c, why, grace);
    c->state = RC_DEAD;
    relay_stream_abort(c);
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
    if (c->state == RC_CLOSING) return relay_conn_kill(c, RELAY_R_GONE, 0);
    size_t before = relay_conn_queued(c);
    relay_outq_clear(&c->out);
    relay_outq_clear(&c->defer);
    relay_conn_acct(c, before);
    c->wdead = 1;
    conn_disown(c);
    if (c->paused) relay_conn_kick(c); /* read on, to learn how it ended */
    if (c->room) relay_room_unblock(c->room);
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
    relay_room_detach(c, RELAY_R_LEFT, 0);
    /* owned: its stream ends in a cut frame, so no last message can follow */
    if (c->wdead || c->owner) return relay_conn_kill(c, RELAY_R_GONE, 0);
    relay_stream_abort(c);
    if (t && relay_conn_ctrl(c, t, msg) < 0) return relay_conn_kill(c, RELAY_R_GONE, 0);
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
            if (relay_stream_pump(c)) return 1;
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
        relay_conn_process(c);
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
    if (w < 0) return relay_conn_wfail(c);
    if (c->out.bytes == 0 && c->owner && c->owner->piped) {
        relay_stream_pump(c->owner); /* the owner's pipe goes next */
        if (c->state == RC_DEAD) return;
    }
    if (c->state == RC_CLOSING && c->out.bytes == 0 && !c->shut) {
        shutdown(c->fd, SHUT_WR);
        c->shut = 1;
    }
    if (before >= s->lim.low_water && c->out.bytes < s->lim.low_water) {
        if (c->room) relay_room_unblock(c->room);
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
            relay_stream_pump(c);
        else
            relay_conn_process(c);
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

static void on_accept(tallow_io *io, int fd, unsigned events, void *ud)
{
    relay_srv *s = ud;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) break;
        relay_ip *ip = ip_get(s, &ss);
        if (!ip || ip->conns >= s->lim.max_conns_per_ip || s->nconns >= s->lim.max_conns) {
            if (ip) relay_count_refused(s, RR_IPCONNS);
            close(cfd);
            relay_ip_put(s, ip);
            continue;
        }
        relay_sock_setup(cfd, 1);
        /* TCP keepalive finds peers that vanished without a FIN (their slot then goes to grace) */
        int on = 1, idle = 60, intvl = 15, cnt = 4;
        setsockopt(cfd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
        setsockopt(cfd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        setsockopt(cfd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
        setsockopt(cfd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
        int tls = 0;
        if (s->tls) { /* TLS-only listener: the relay serves the bridge's socket */
            int rfd;
            if (relay_tls_accept(s, cfd, &rfd) < 0) {
                close(cfd);
                relay_ip_put(s, ip);
                continue;
            }
            tls = 1;
            cfd = rfd;
        }
        relay_conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(cfd);
            relay_ip_put(s, ip);
            continue;
        }
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
            close(cfd);
            free(c);
            relay_ip_put(s, ip);
            continue;
        }
        ip->conns++;
        c->next = s->conns;
        if (s->conns) s->conns->prev = c;
        s->conns = c;
        s->nconns++;
        s->conns_total++;
    }
    relay_srv_settle(s);
}

static void on_sweep(tallow_timer *t, void *ud)
{
    relay_srv *s = ud;
    uint64_t now = tallow_loop_now(s->loop);
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
    relay_room_sweep(s, now);
    relay_tls_sweep(s, now);
    relay_metrics_sweep(s, now);
    relay_srv_settle(s);
}

/* Asks for each request's destination address (IP_PKTINFO / IPV6_RECVPKTINFO, the latter also
 * for IPv4 on a dual-stack socket), so that a relay on a wildcard address answers from it. */
static void udp_want_dest(int fd, int family)
{
    int one = 1;
    if (family == AF_INET) (void)setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
    else (void)setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
}

/* Turns the request's destination (the control data of recvmsg) into the reply's source: on a
 * host with several addresses the kernel would otherwise pick the route's preferred one, and a
 * NAT or a connected client drops a reply from an address it did not ask. Returns the control
 * length to send, 0 to let the kernel choose (no such data, or a multicast destination). */
static size_t udp_reply_source(struct msghdr *rx, void *out, size_t cap)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(rx); c; c = CMSG_NXTHDR(rx, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO &&
            cap >= CMSG_SPACE(sizeof(struct in_pktinfo))) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof pi);
            /* ipi_spec_dst: the request's destination, or a local address for a broadcast */
            struct in_pktinfo src = {.ipi_spec_dst = pi.ipi_spec_dst};
            struct cmsghdr *o = out;
            o->cmsg_level = IPPROTO_IP;
            o->cmsg_type = IP_PKTINFO;
            o->cmsg_len = CMSG_LEN(sizeof src);
            memcpy(CMSG_DATA(o), &src, sizeof src);
            return CMSG_SPACE(sizeof src);
        }
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
            cap >= CMSG_SPACE(sizeof(struct in6_pktinfo))) {
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof pi);
            if (IN6_IS_ADDR_MULTICAST(&pi.ipi6_addr)) return 0;
            struct in6_pktinfo src = {.ipi6_addr = pi.ipi6_addr};
            /* a link-local address needs its interface; elsewhere the route decides */
            if (IN6_IS_ADDR_LINKLOCAL(&pi.ipi6_addr)) src.ipi6_ifindex = pi.ipi6_ifindex;
            struct cmsghdr *o = out;
            o->cmsg_level = IPPROTO_IPV6;
            o->cmsg_type = IPV6_PKTINFO;
            o->cmsg_len = CMSG_LEN(sizeof src);
            memcpy(CMSG_DATA(o), &src, sizeof src);
            return CMSG_SPACE(sizeof src);
        }
    }
    return 0;
}

/* A token for one STUN answer to this source (IPv4 address or IPv6 /64), or 0: a spoofed
 * source flooding the relay with requests gets RELAY_STUN_BURST answers, then RELAY_STUN_RATE a
 * second, so the relay reflects little at anyone. Sources share a bucket when they collide. */
static int bucket_take(struct relay_stun_rl *tab, uint64_t h, uint64_t now, uint32_t burst,
                       uint32_t rate)
{
    struct relay_stun_rl *b = &tab[h % RELAY_STUN_SOURCES];
    if (b->key != h || b->at_ms == 0) {
        *b = (struct relay_stun_rl){h, now ? now : 1, burst};
    } else {
        uint64_t add = (now - b->at_ms) * rate / 1000u;
        if (add) {
            b->tokens = (uint32_t)(b->tokens + add > burst ? burst : b->tokens + add);
            b->at_ms = now;
        }
    }
    if (!b->tokens) return 0;
    b->tokens--;
    return 1;
}

/* Joins per address (the relay_ip key: an IPv4 address as v4-mapped, an IPv6 /64), a token
 * bucket in a table like the STUN one: a source cycling through rooms (guessing codes, filling
 * the room table) or resuming in a loop gets 4 x join_rate joins at once, then join_rate a
 * second. Loopback (127/8, ::1's /64) is exempt: a local front end or test harness. */
int relay_join_allow(relay_srv *s, const relay_ip *ip)
{
    static const uint8_t zero[8] = {0};
    uint64_t rate = s->lim.join_rate;
    if (!rate || !ip) return 1;
    if (ip->addr[10] == 0xff && ip->addr[11] == 0xff && ip->addr[12] == 127) return 1;
    if (memcmp(ip->addr, zero, 8) == 0 && !(ip->addr[10] == 0xff && ip->addr[11] == 0xff))
        return 1;
    uint32_t r = rate > 1000000u ? 1000000u : (uint32_t)rate;
    return bucket_take(s->join_rl, relay_hash(s, ip->addr, 16) ^ 0x6a6f696eu,
                       tallow_loop_now(s->loop), 4u * r, r);
}

static int stun_allow(relay_srv *s, const struct sockaddr_storage *from)
{
    uint8_t a[16] = {0};
    if (from->ss_family == AF_INET6) {
        memcpy(a, &((const struct sockaddr_in6 *)from)->sin6_addr, 16);
        if (!IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a)) memset(a + 8, 0, 8);
    } else {
        memcpy(a + 12, &((const struct sockaddr_in *)from)->sin_addr, 4);
        a[10] = a[11] = 0xff;
    }
    uint64_t h = relay_hash(s, a, 16), now = tallow_loop_now(s->loop);
    struct relay_stun_rl *b = &s->stun_rl[h % RELAY_STUN_SOURCES];
    if (b->key != h || b->at_ms == 0) {
        *b = (struct relay_stun_rl){h, now, RELAY_STUN_BURST};
    } else {
        uint64_t add = (now - b->at_ms) * RELAY_STUN_RATE / 1000u;
        if (add) {
            b->tokens = (uint32_t)(b->tokens + add > RELAY_STUN_BURST ? RELAY_STUN_BURST
                                                                       : b->tokens + add);
            b->at_ms = now;
        }
    }
    if (!b->tokens) return 0;
    b->tokens--;
    return 1;
}

/* STUN Binding requests on the UDP socket of the same port: answered with the core codec, from
 * the address each request was sent to (rate-limited per source: stun_allow). */
static void on_udp(tallow_io *io, int fd, unsigned events, void *ud)
{
    relay_srv *s = ud;
    for (int i = 0; i < 32; i++) {
        uint8_t req[1500], resp[256];
        union {
            struct cmsghdr align;
            uint8_t buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo))];
        } rxc, txc;
        struct sockaddr_storage from;
        struct iovec iov = {req, sizeof req};
        struct msghdr mh = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov,
                            .msg_iovlen = 1, .msg_control = rxc.buf, .msg_controllen = sizeof rxc.buf};
        ssize_t n = recvmsg(fd, &mh, 0);
        if (n < 0) return;
        socklen_t fl = mh.msg_namelen;
        struct sockaddr_storage mapped = from;
        socklen_t ml = fl;
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&from;
        if (from.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
            struct sockaddr_in *a4 = (struct sockaddr_in *)&mapped; /* dual-stack socket */
            memset(&mapped, 0, sizeof mapped);
            a4->sin_family = AF_INET;
            a4->sin_port = a6->sin6_port;
            memcpy(&a4->sin_addr, a6->sin6_addr.s6_addr + 12, 4);
            ml = sizeof *a4;
        }
        int r = tallow_stun_answer_binding(req, (size_t)n, (struct sockaddr *)&mapped, ml,
                                           "tallow relay", resp, sizeof resp);
        if (r <= 0 || !stun_allow(s, &from)) {
            s->ctr.stun_dropped++;
            continue;
        }
        s->ctr.stun_answered++;
        memset(&txc, 0, sizeof txc);
        struct iovec oiov = {resp, (size_t)r};
        struct msghdr out = {.msg_name = &from, .msg_namelen = fl, .msg_iov = &oiov, .msg_iovlen = 1,
                             .msg_control = txc.buf};
        out.msg_controllen = udp_reply_source(&mh, txc.buf, sizeof txc.buf);
        if (!out.msg_controllen) out.msg_control = NULL;
        if (sendmsg(fd, &out, 0) < 0 && out.msg_controllen) {
            out.msg_control = NULL; /* that address went away meanwhile: any source will do */
            out.msg_controllen = 0;
            (void)sendmsg(fd, &out, 0);
        }
    }
}

/* ---- options */

static int opt_u64(const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-') return TALLOW_EINVAL;
    *out = x;
    return 0;
}

static int opt_secs(const char *v, uint64_t *ms)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !(d >= 0) || d > 1e9) return TALLOW_EINVAL;
    *ms = (uint64_t)(d * 1000.0);
    return 0;
}

int relay_parse_opts(relay_srv *s, const tallow_kv *o, size_t n, const char **listen, int *stun)
{
    static const struct {
        const char *key;
        size_t off;
        int secs;
    } num[] = {
        {"max-rooms", offsetof(relay_limits, max_rooms), 0},
        {"max-peers", offsetof(relay_limits, max_peers), 0},
        {"max-frame", offsetof(relay_limits, max_frame), 0},
        {"max-conns-per-ip", offsetof(relay_limits, max_conns_per_ip), 0},
        {"max-conns", offsetof(relay_limits, max_conns), 0},
        {"max-rooms-per-ip", offsetof(relay_limits, max_rooms_per_ip), 0},
        {"queue-high", offsetof(relay_limits, high_water), 0},
        {"room-timeout", offsetof(relay_limits, room_timeout_ms), 1},
        {"unpaired-timeout", offsetof(relay_limits, unpaired_timeout_ms), 1},
        {"join-timeout", offsetof(relay_limits, join_timeout_ms), 1},
        {"grace", offsetof(relay_limits, grace_ms), 1},
        {"join-rate", offsetof(relay_limits, join_rate), 0},
    };
    for (size_t i = 0; i < n; i++) {
        char k[64];
        const char *v = o[i].value ? o[i].value : "";
        snprintf(k, sizeof k, "%s", o[i].key ? o[i].key : "");
        for (char *x = k; *x; x++)
            if (*x == '_') *x = '-'; /* Lua tables spell them max_rooms */
        if (strcmp(k, "listen") == 0) {
            *listen = v;
            continue;
        }
        if (strcmp(k, "password") == 0) {
            free(s->password);
            s->password = *v ? strdup(v) : NULL;
            continue;
        }
        if (strcmp(k, "stun") == 0) {
            *stun = strcmp(v, "off") != 0 && strcmp(v, "0") != 0;
            continue;
        }
        if (strcmp(k, "splice") == 0) {
            s->nosplice = strcmp(v, "off") == 0 || strcmp(v, "0") == 0;
            continue;
        }
        if (strcmp(k, "cert") == 0 || strcmp(k, "key") == 0) {
            char **dst = k[0] == 'c' ? &s->cert : &s->key;
            free(*dst);
            *dst = *v ? strdup(v) : NULL;
            continue;
        }
        int ours = relay_ops_option(s, k, v);
        if (ours < 0) return ours;
        if (ours) continue;
        size_t j = 0;
        while (j < sizeof num / sizeof num[0] && strcmp(num[j].key, k) != 0)
            j++;
        if (j == sizeof num / sizeof num[0]) {
            tallow_ctx_set_error(s->ctx, "relay: unknown option '%s'", k);
            return TALLOW_EINVAL;
        }
        uint64_t *dst = (uint64_t *)((char *)&s->lim + num[j].off);
        if ((num[j].secs ? opt_secs(v, dst) : opt_u64(v, dst)) < 0) {
            tallow_ctx_set_error(s->ctx, "relay: bad value for %s: '%s'", k, v);
            return TALLOW_EINVAL;
        }
    }
    relay_limits *l = &s->lim;
    if (l->max_frame < 64 || l->max_frame > TALLOW_MSG_MAX_FRAME + 64 || l->max_peers < 2 ||
        l->max_peers > 1024 || l->high_water < 16 * 1024) {
        tallow_ctx_set_error(s->ctx, "relay: a limit is out of range");
        return TALLOW_EINVAL;
    }
    l->low_water = l->high_water / 4;
    if (!s->cert != !s->key) {
        tallow_ctx_set_error(s->ctx, "relay: TLS needs both --cert FILE and --key FILE");
        return TALLOW_EINVAL;
    }
    if (s->cert) { /* loaded here, so that --check and a reload see a bad file at once */
        relay_tlscred *fresh;
        int rc = relay_tlscred_load(s, s->cert, s->key, &fresh);
        if (rc < 0) return rc;
        relay_tlscred_put(s->tls);
        s->tls = fresh;
    }
    return 0;
}

/* Binds TCP (and UDP on the same port). Port 0 picks a free port for both. */
static int srv_bind(relay_srv *s, const char *where, int stun)
{
    char host[256], port[16];
    if (relay_split_hostport(where, host, sizeof host, port, sizeof port) < 0) return TALLOW_EINVAL;
    struct addrinfo hints = {.ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(*host ? host : NULL, port, &hints, &ai) != 0) return TALLOW_ENOTFOUND;
    int err = TALLOW_ENOTFOUND;
    for (int attempt = 0; attempt < 16; attempt++) {
        int one = 1, fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = -errno;
            break;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 511) < 0 ||
            relay_sock_setup(fd, 0) < 0) {
            err = -errno;
            close(fd);
            break;
        }
        struct sockaddr_storage bound;
        socklen_t bl = sizeof bound;
        getsockname(fd, (struct sockaddr *)&bound, &bl);
        s->port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                                   : ((struct sockaddr_in6 *)&bound)->sin6_port);
        int ufd = -1;
        if (stun) {
            ufd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
            if (ufd >= 0) udp_want_dest(ufd, ai->ai_family);
            if (ufd >= 0 && bind(ufd, (struct sockaddr *)&bound, bl) < 0) {
                close(ufd);
                ufd = -1;
                if (strcmp(port, "0") == 0) { /* that port is taken in UDP: try another */
                    close(fd);
                    continue;
                }
                RELAY_LOG(s, TALLOW_LOG_WARN, "no UDP on port %u: STUN disabled", s->port);
            }
        }
        s->lfd = fd;
        s->ufd = ufd;
        err = 0;
        break;
    }
    freeaddrinfo(ai);
    return err;
}

/* ---- vtable */

/* splice() into a socket whose peer is gone raises SIGPIPE (it has no MSG_NOSIGNAL): unless
 * the program handles SIGPIPE already, it is ignored, so that the call fails with EPIPE. (Not a
 * handler of our own: the plugin may be unloaded before the process ends.) */
static void relay_ignore_sigpipe(void)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
        !(old.sa_flags & SA_SIGINFO))
        signal(SIGPIPE, SIG_IGN);
}

static void srv_stop(void *inst);

/* Every paired room holds two sockets and, while a long frame streams, a pipe: lift the soft
 * open-file limit to the hard one (often 1024 -> 524288) so busy relays do not hit EMFILE. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

void relay_srv_defaults(relay_srv *s)
{
    s->lim = (relay_limits){
        .max_rooms = 10000,
        .max_peers = 16,
        .max_frame = 2 * 1024 * 1024 + 64, /* the session sends frames up to 2 MiB */
        .max_conns_per_ip = 64,
        .max_conns = 20000,
        .join_rate = 16,
        .max_rooms_per_ip = 32,
        .room_timeout_ms = 3600 * 1000,
        .unpaired_timeout_ms = 600 * 1000,
        .join_timeout_ms = 10 * 1000,
        .grace_ms = 30 * 1000,
        .drain_ms = 2000,
        .high_water = 64 * 1024, /* user space only: the kernel's socket buffers come first */
    };
    s->opc.drain_timeout_ms = 30 * 1000;
}

static int srv_start(void *plugin_state, tallow_ctx *ctx, const tallow_kv *opts, size_t nopts,
                     void **inst)
{
    relay_plugin *pl = plugin_state;
    relay_srv *s = calloc(1, sizeof *s);
    if (!s) return TALLOW_ENOMEM;
    s->ctx = ctx;
    s->host = pl->host;
    s->loop = tallow_ctx_loop(ctx);
    s->reg = tallow_ctx_registry(ctx);
    s->lfd = s->ufd = -1;
    randombytes_buf(s->hkey, sizeof s->hkey);
    relay_srv_defaults(s);
    s->in_cap = RELAY_IN_CAP;
    s->scratch = malloc(RELAY_SCRATCH);
    if (!s->scratch) {
        free(s);
        return TALLOW_ENOMEM;
    }
    relay_ignore_sigpipe();
    raise_fd_limit();
    const char *listen = "0.0.0.0:4433";
    int stun = 1, rc = relay_parse_opts(s, opts, nopts, &listen, &stun);
    if (rc == 0 && (rc = srv_bind(s, listen, stun)) < 0)
        tallow_ctx_set_error(s->ctx, "relay: cannot listen on %s: %s", listen, tallow_strerror(rc));
    if (rc == 0) {
        s->lio = tallow_io_start(s->loop, s->lfd, TALLOW_IO_READ, on_accept, s);
        if (s->ufd >= 0) s->uio = tallow_io_start(s->loop, s->ufd, TALLOW_IO_READ, on_udp, s);
        s->sweep = tallow_timer_start(s->loop, 200, 200, on_sweep, s);
        if (!s->lio || (s->ufd >= 0 && !s->uio) || !s->sweep) rc = TALLOW_ENOMEM;
    }
    if (rc == 0) rc = relay_ops_start(s, listen);
    if (rc < 0) {
        srv_stop(s);
        return rc;
    }
    RELAY_LOG(s, TALLOW_LOG_INFO, "listening on %s (port %u%s%s)", listen, s->port,
              s->tls ? ", TLS only" : "", s->ufd >= 0 ? ", STUN on UDP" : "");
    *inst = s;
    return 0;
}

static void srv_stop(void *inst)
{
    relay_srv *s = inst;
    if (!s) return;
    while (s->rooms)
        relay_room_close(s->rooms, RELAY_R_SHUTDOWN, 0);
    while (s->conns)
        relay_conn_kill(s->conns, RELAY_R_SHUTDOWN, 0);
    relay_srv_settle(s);
    relay_tls_stop(s);
    relay_ops_stop(s);
    if (s->lio) tallow_io_stop(s->lio);
    if (s->uio) tallow_io_stop(s->uio);
    if (s->sweep) tallow_timer_stop(s->sweep);
    if (s->lfd >= 0) close(s->lfd);
    if (s->ufd >= 0) close(s->ufd);
    while (s->npipes > 0) {
        s->npipes--;
        close(s->pipes[s->npipes][0]);
        close(s->pipes[s->npipes][1]);
    }
    free(s->scratch);
    free(s->rooms_by_id.b);
    free(s->ips.b);
    free(s->password);
    free(s->cert);
    free(s->key);
    free(s);
}

static void srv_stats(void *inst, void (*fn)(const char *key, uint64_t value, void *ud), void *ud)
{
    relay_srv *s = inst;
    fn("port", s->port, ud);
    fn("bytes_forwarded", s->bytes_forwarded, ud);
    fn("bytes_dropped", s->dropped, ud);
    fn("rooms", s->nrooms, ud);
    fn("rooms_total", s->rooms_total, ud);
    fn("conns", s->nconns, ud);
    fn("conns_total", s->conns_total, ud);
    fn("queued_bytes", s->queued, ud);
    fn("queued_peak", s->queued_peak, ud);
    fn("metrics_port", relay_metrics_port(s), ud);
}

const tallow_service_ops relay_service_ops = {
    .version = TALLOW_SERVICE_OPS_VERSION,
    .struct_size = sizeof(tallow_service_ops),
    .name = "relay",
    .summary = "blind relay for tallow rooms, with a STUN responder on the same port",
    .options_help = relay_options_help,
    .start = srv_start,
    .stop = srv_stop,
    .stats = srv_stats,
    .check = relay_ops_check,
    .reload = relay_ops_reload,
    .drain = relay_ops_drain,
};

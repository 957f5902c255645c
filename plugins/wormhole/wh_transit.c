/* plugins/wormhole/wh_transit.c — magic-wormhole's transit: every side listens (unless no_p2p),
 * sends its hints, dials the peer's direct hints and the relays (ours and the peer's relay-v1
 * hints, 2 s later when a direct path may win), writes its handshake at once on every
 * connection, and checks the peer's byte for byte. The sender says "go" on the first that
 * completes and "nevermind" on the rest. Records: u32 big-endian length, a 24-byte BIG-endian
 * counter nonce (checked), SecretBox. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <tallow/error.h>

#include "wh.h"

#define MAX_CANDS 32
#define RELAY_DELAY_MS 2000
#define MAX_RECORD (64u << 20)

static void set_err(wh_transit *t, const char *msg)
{
    snprintf(t->err, sizeof(t->err), "%s", msg);
}

/* "tcp:HOST:PORT[:opts]" or "HOST:PORT" -> host, port */
static int parse_hostport(const char *s, char **host, char **port)
{
    if (strncmp(s, "tcp:", 4) == 0) s += 4;
    const char *c = strchr(s, ':');
    if (!c || c == s || !c[1]) return -1;
    const char *e = strchr(c + 1, ':');
    *host = strndup(s, (size_t)(c - s));
    *port = e ? strndup(c + 1, (size_t)(e - c - 1)) : strdup(c + 1);
    return *host && *port ? 0 : -1;
}

int wh_transit_init(wh_transit *t, int sender, const char *relay, int no_p2p)
{
    memset(t, 0, sizeof(*t));
    t->fd = t->listen_fd = -1;
    t->sender = sender;
    t->no_p2p = no_p2p;
    uint8_t s[8];
    randombytes_buf(s, sizeof(s));
    wh_hex(t->side16, s, sizeof(s));
    if (relay && *relay && parse_hostport(relay, &t->relay_host, &t->relay_port) != 0) {
        snprintf(t->err, sizeof(t->err), "bad transit relay '%s' (want tcp:HOST:PORT)", relay);
        return TALLOW_EINVAL;
    }
    if (no_p2p) return 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t al = sizeof(a);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 8) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    t->listen_fd = fd;
    t->port = ntohs(a.sin_port);
    return 0;
}

static json_t *direct_hint(const char *host, int port)
{
    return json_pack("{s:s,s:f,s:s,s:i}", "type", "direct-tcp-v1", "priority", 0.0, "hostname",
                     host, "port", port);
}

json_t *wh_transit_message(const wh_transit *t)
{
    json_t *ab = json_array(), *hints = json_array();
    if (!t->no_p2p) {
        json_array_append_new(ab, json_pack("{s:s}", "type", "direct-tcp-v1"));
        /* non-loopback IPv4 addresses, as magic-wormhole advertises; loopback only when alone */
        struct ifaddrs *ifs = NULL, *i;
        int n = 0;
        if (getifaddrs(&ifs) == 0) {
            for (i = ifs; i; i = i->ifa_next) {
                if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
                if (i->ifa_flags & IFF_LOOPBACK || !(i->ifa_flags & IFF_UP)) continue;
                char buf[INET_ADDRSTRLEN];
                inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr, buf,
                          sizeof(buf));
                json_array_append_new(hints, direct_hint(buf, t->port));
                n++;
            }
            freeifaddrs(ifs);
        }
        if (!n) json_array_append_new(hints, direct_hint("127.0.0.1", t->port));
    }
    json_array_append_new(ab, json_pack("{s:s}", "type", "relay-v1"));
    if (t->relay_host)
        json_array_append_new(hints, json_pack("{s:s,s:[o]}", "type", "relay-v1", "hints",
                                               direct_hint(t->relay_host, atoi(t->relay_port))));
    return json_pack("{s:{s:o,s:o}}", "transit", "abilities-v1", ab, "hints-v1", hints);
}

/* ---- connecting */

enum { C_CONNECTING, C_RELAY_OK, C_PEER_HS, C_WAIT_GO, C_DEAD };

typedef struct cand {
    int fd;
    int relay;
    int state;
    int64_t start_at; /* relay candidates may wait */
    char *host, *port;
    char buf[128];
    size_t len;
} cand;

static int nb_connect(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0 || !res) return -1;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) < 0 && errno != EINPROGRESS) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static void add_cand(cand *cs, int *n, const char *host, const char *port, int relay,
                     int64_t start_at)
{
    for (int i = 0; i < *n; i++)
        if (cs[i].relay == relay && cs[i].host && strcmp(cs[i].host, host) == 0 &&
            strcmp(cs[i].port, port) == 0)
            return;
    if (*n >= MAX_CANDS) return;
    cs[*n] = (cand){.fd = -1,
                    .relay = relay,
                    .state = C_CONNECTING,
                    .start_at = start_at,
                    .host = strdup(host),
                    .port = strdup(port)};
    (*n)++;
}

static void kill_cand(cand *c, const char *bye)
{
    if (c->fd >= 0) {
        if (bye) (void)!send(c->fd, bye, strlen(bye), MSG_NOSIGNAL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = C_DEAD;
}

/* Reads what the state wants (never past the handshake). 1 when the step completed, 0 when more
 * is needed, -1 when the candidate failed. */
static int step_read(cand *c, const char *want, size_t wantlen)
{
    while (c->len < wantlen) {
        ssize_t r = recv(c->fd, c->buf + c->len, wantlen - c->len, 0);
        if (r > 0) {
            if (memcmp(c->buf + c->len, want + c->len, (size_t)r) != 0) return -1;
            c->len += (size_t)r;
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
        return -1;
    }
    c->len = 0;
    return 1;
}

int wh_transit_connect(wh_transit *t, const uint8_t key[32], json_t *peer, int64_t deadline)
{
    wh_transit_key(t->tk, key);
    wh_record_key(t->send_key, t->tk, t->sender);
    wh_record_key(t->recv_key, t->tk, !t->sender);
    char mine[160], theirs[160], relay_hs[160];
    size_t mlen = wh_transit_handshake(mine, sizeof(mine), t->tk, t->sender);
    size_t tlen = wh_transit_handshake(theirs, sizeof(theirs), t->tk, !t->sender);
    size_t rlen = wh_relay_handshake(relay_hs, sizeof(relay_hs), t->tk, t->side16);

    cand cs[MAX_CANDS];
    int n = 0;
    int64_t now = wh_now_ms();
    json_t *hints = json_object_get(json_object_get(peer, "transit"), "hints-v1");
    if (!hints) hints = json_object_get(peer, "hints-v1");
    size_t i;
    json_t *h;
    int directs = 0;
    if (!t->no_p2p) {
        json_array_foreach(hints, i, h)
        {
            const char *type = json_string_value(json_object_get(h, "type"));
            const char *host = json_string_value(json_object_get(h, "hostname"));
            json_t *port = json_object_get(h, "port");
            if (!type || strcmp(type, "direct-tcp-v1") != 0 || !host || !json_is_integer(port))
                continue;
            char ps[16];
            snprintf(ps, sizeof(ps), "%d", (int)json_integer_value(port));
            add_cand(cs, &n, host, ps, 0, now);
            directs++;
        }
    }
    int64_t relay_at = now + (directs || t->listen_fd >= 0 ? RELAY_DELAY_MS : 0);
    if (t->relay_host) add_cand(cs, &n, t->relay_host, t->relay_port, 1, relay_at);
    json_array_foreach(hints, i, h)
    {
        const char *type = json_string_value(json_object_get(h, "type"));
        if (!type || strcmp(type, "relay-v1") != 0) continue;
        size_t j;
        json_t *rh;
        json_array_foreach(json_object_get(h, "hints"), j, rh)
        {
            const char *host = json_string_value(json_object_get(rh, "hostname"));
            json_t *port = json_object_get(rh, "port");
            if (!host || !json_is_integer(port)) continue;
            char ps[16];
            snprintf(ps, sizeof(ps), "%d", (int)json_integer_value(port));
            add_cand(cs, &n, host, ps, 1, relay_at);
        }
    }

    int winner = -1, rc = TALLOW_ETIMEOUT;
    while (winner < 0) {
        now = wh_now_ms();
        if (now >= deadline) break;
        struct pollfd pf[MAX_CANDS + 1];
        int map[MAX_CANDS + 1], np = 0, alive = 0;
        int64_t wake = deadline;
        for (int k = 0; k < n; k++) {
            cand *c = &cs[k];
            if (c->state == C_DEAD) continue;
            if (c->fd < 0) {
                if (c->start_at > now) {
                    alive++;
                    if (c->start_at < wake) wake = c->start_at;
                    continue;
                }
                c->fd = nb_connect(c->host, c->port);
                if (c->fd < 0) {
                    c->state = C_DEAD;
                    continue;
                }
            }
            alive++;
            pf[np] =
                (struct pollfd){.fd = c->fd, .events = c->state == C_CONNECTING ? POLLOUT : POLLIN};
            map[np++] = k;
        }
        if (t->listen_fd >= 0) {
            pf[np] = (struct pollfd){.fd = t->listen_fd, .events = POLLIN};
            map[np++] = -1;
            alive++;
        }
        if (!alive) {
            rc = TALLOW_EPEERGONE;
            break;
        }
        int64_t left = wake - now;
        int pr = poll(pf, (nfds_t)np, left > 1000 ? 1000 : (int)(left < 0 ? 0 : left));
        if (pr < 0 && errno != EINTR) {
            rc = -errno;
            break;
        }
        for (int p = 0; pr > 0 && p < np && winner < 0; p++) {
            if (!pf[p].revents) continue;
            if (map[p] < 0) {
                int fd = accept4(t->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0 || n >= MAX_CANDS) {
                    if (fd >= 0) close(fd);
                    continue;
                }
                cs[n] = (cand){.fd = fd, .state = C_PEER_HS};
                n++;
                if (wh_write_all(fd, mine, mlen, now + 2000) != 0) kill_cand(&cs[n - 1], NULL);
                continue;
            }
            cand *c = &cs[map[p]];
            if (c->state == C_CONNECTING) {
                int soerr = 0;
                socklen_t sl = sizeof(soerr);
                if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
                    kill_cand(c, NULL);
                    continue;
                }
                if (c->relay) {
                    c->state = C_RELAY_OK;
                    if (wh_write_all(c->fd, relay_hs, rlen, now + 2000) != 0) kill_cand(c, NULL);
                } else {
                    c->state = C_PEER_HS;
                    if (wh_write_all(c->fd, mine, mlen, now + 2000) != 0) kill_cand(c, NULL);
                }
                continue;
            }
            int r;
            if (c->state == C_RELAY_OK) {
                r = step_read(c, "ok\n", 3);
                if (r == 1) {
                    c->state = C_PEER_HS;
                    if (wh_write_all(c->fd, mine, mlen, now + 2000) != 0) kill_cand(c, NULL);
                } else if (r < 0) {
                    kill_cand(c, NULL);
                }
                continue;
            }
            if (c->state == C_PEER_HS) {
                r = step_read(c, theirs, tlen);
                if (r < 0) kill_cand(c, NULL);
                if (r != 1) continue;
                if (t->sender) {
                    if (wh_write_all(c->fd, "go\n", 3, now + 2000) != 0) {
                        kill_cand(c, NULL);
                        continue;
                    }
                    winner = map[p];
                } else {
                    c->state = C_WAIT_GO;
                }
                continue;
            }
            if (c->state == C_WAIT_GO) {
                /* "go\n" or "nevermind\n": both start differently */
                if (c->len == 0) {
                    char ch;
                    ssize_t rr = recv(c->fd, &ch, 1, 0);
                    if (rr < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                    if (rr != 1 || ch != 'g') {
                        kill_cand(c, NULL);
                        continue;
                    }
                    c->buf[0] = 'g';
                    c->len = 1;
                }
                r = step_read(c, "go\n", 3);
                if (r < 0) kill_cand(c, NULL);
                if (r == 1) winner = map[p];
            }
        }
    }
    for (int k = 0; k < n; k++) {
        if (k == winner) continue;
        /* the sender tells the losers that completed their handshake */
        kill_cand(&cs[k],
                  t->sender && cs[k].state == C_PEER_HS && winner >= 0 ? "nevermind\n" : NULL);
    }
    if (winner >= 0) {
        t->fd = cs[winner].fd;
        t->path = cs[winner].relay ? "relay" : "direct";
        int one = 1;
        setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        rc = 0;
    } else {
        set_err(t, rc == TALLOW_ETIMEOUT
                       ? "no transit connection to the other side (direct or relay) "
                         "came up in time"
                       : "every transit connection to the other side failed");
    }
    for (int k = 0; k < n; k++) {
        free(cs[k].host);
        free(cs[k].port);
    }
    if (t->listen_fd >= 0) close(t->listen_fd);
    t->listen_fd = -1;
    return rc;
}

/* ---- records */

int wh_transit_send(wh_transit *t, const uint8_t *data, size_t len, int64_t deadline)
{
    size_t blen = 24 + len + crypto_secretbox_MACBYTES;
    uint8_t *buf = malloc(4 + blen);
    if (!buf) return TALLOW_ENOMEM;
    buf[0] = (uint8_t)(blen >> 24);
    buf[1] = (uint8_t)(blen >> 16);
    buf[2] = (uint8_t)(blen >> 8);
    buf[3] = (uint8_t)blen;
    wh_record_nonce(buf + 4, t->send_ctr++);
    crypto_secretbox_easy(buf + 28, data, len, buf + 4, t->send_key);
    int rc = wh_write_all(t->fd, buf, 4 + blen, deadline);
    free(buf);
    if (rc) set_err(t, "the transit connection broke while sending");
    return rc;
}

static int read_full(int fd, uint8_t *p, size_t len, int64_t deadline)
{
    while (len) {
        ssize_t r = recv(fd, p, len, 0);
        if (r > 0) {
            p += r;
            len -= (size_t)r;
            continue;
        }
        if (r == 0) return TALLOW_ECLOSED;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return TALLOW_ECLOSED;
        int64_t left = deadline - wh_now_ms();
        if (left <= 0) return TALLOW_ETIMEOUT;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        poll(&pf, 1, left > 1000 ? 1000 : (int)left);
    }
    return 0;
}

int wh_transit_recv(wh_transit *t, const uint8_t **out, size_t *len, int64_t deadline)
{
    uint8_t hdr[4];
    int rc = read_full(t->fd, hdr, 4, deadline);
    if (rc) {
        set_err(t, rc == TALLOW_ETIMEOUT ? "the other side sent nothing on the transit connection "
                                           "for too long"
                                         : "the transit connection closed early");
        return rc == TALLOW_ETIMEOUT ? rc : TALLOW_EPEERGONE;
    }
    uint32_t blen =
        (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    if (blen < 24 + crypto_secretbox_MACBYTES || blen > MAX_RECORD) {
        set_err(t, "a transit record of impossible size");
        return TALLOW_EPROTO;
    }
    if (t->reccap < blen) {
        uint8_t *n = realloc(t->rec, blen);
        if (!n) return TALLOW_ENOMEM;
        t->rec = n;
        t->reccap = blen;
    }
    rc = read_full(t->fd, t->rec, blen, deadline);
    if (rc) {
        set_err(t, "the transit connection closed in the middle of a record");
        return rc == TALLOW_ETIMEOUT ? rc : TALLOW_EPEERGONE;
    }
    uint8_t want[24];
    wh_record_nonce(want, t->recv_ctr);
    if (sodium_memcmp(want, t->rec, 24) != 0) {
        set_err(t, "a transit record out of order (bad nonce): dropped the connection");
        return TALLOW_ECRYPTO;
    }
    if (crypto_secretbox_open_easy(t->rec + 24, t->rec + 24, blen - 24, t->rec, t->recv_key) != 0) {
        set_err(t,
                "a transit record does not decrypt (forged or corrupted): dropped the connection");
        return TALLOW_ECRYPTO;
    }
    t->recv_ctr++;
    *out = t->rec + 24;
    *len = blen - 24 - crypto_secretbox_MACBYTES;
    return 0;
}

void wh_transit_free(wh_transit *t)
{
    if (t->fd >= 0) close(t->fd);
    if (t->listen_fd >= 0) close(t->listen_fd);
    free(t->relay_host);
    free(t->relay_port);
    free(t->rec);
    sodium_memzero(t->tk, sizeof(t->tk));
    sodium_memzero(t->send_key, sizeof(t->send_key));
    sodium_memzero(t->recv_key, sizeof(t->recv_key));
    t->fd = t->listen_fd = -1;
    t->rec = NULL;
    t->relay_host = t->relay_port = NULL;
}

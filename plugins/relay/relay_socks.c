/* plugins/relay/relay_socks.c — SOCKS5 CONNECT (RFC 1928, no authentication) to the relay
 * through a proxy, as a nonblocking state machine on the channel's socket. The relay's host name
 * goes to the proxy unresolved (ATYP domain), so nothing is looked up locally (Tor-friendly). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay_cl.h"

int relay_socks_parse_url(relay_cl *cl, const char *url, char *host, size_t hc, char *port,
                          size_t pc)
{
    static const char pfx[] = "socks5://";
    if (strncmp(url, pfx, sizeof pfx - 1) != 0) {
        tallow_ctx_set_error(cl->ctx, "relay: unsupported proxy '%s' (want socks5://host:port)",
                             url);
        return TALLOW_EINVAL;
    }
    url += sizeof pfx - 1;
    size_t l = strcspn(url, "/");
    char tmp[300];
    if (l >= sizeof tmp) return TALLOW_EINVAL;
    memcpy(tmp, url, l);
    tmp[l] = 0;
    if (!strchr(tmp, ':') || tmp[strlen(tmp) - 1] == ']') return TALLOW_EINVAL; /* port needed */
    return relay_split_hostport(tmp, host, hc, port, pc);
}

static void socks_failed(relay_cl *cl, int err, const char *reason)
{
    if (cl->paired) { /* resuming: try again */
        cl->up->lost(cl, err);
        return;
    }
    cl->up->fail(cl, err, reason);
}

void relay_socks_output(relay_cl *cl)
{
    while (cl->socks_out_off < cl->socks_out_len) {
        ssize_t w = send(cl->fd, cl->socks_out + cl->socks_out_off,
                         cl->socks_out_len - cl->socks_out_off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (w < 0) {
            cl->werr = -errno;
            return;
        }
        cl->socks_out_off += (size_t)w;
    }
    if (cl->socks_out_off == cl->socks_out_len) cl->socks_out_len = cl->socks_out_off = 0;
    relay_cl_update(cl);
}

int relay_socks_start(relay_cl *cl)
{
    cl->state = CL_SOCKS;
    cl->socks_step = 1;
    static const uint8_t hello[3] = {5, 1, 0}; /* version 5, one method: no authentication */
    memcpy(cl->socks_out, hello, 3);
    cl->socks_out_len = 3;
    cl->socks_out_off = 0;
    relay_socks_output(cl);
    return cl->werr;
}

static int socks_connect_request(relay_cl *cl)
{
    uint8_t *o = cl->socks_out;
    size_t n = 0;
    o[n++] = 5;
    o[n++] = 1; /* CONNECT */
    o[n++] = 0;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, cl->host, &a4) == 1) {
        o[n++] = 1;
        memcpy(o + n, &a4, 4);
        n += 4;
    } else if (inet_pton(AF_INET6, cl->host, &a6) == 1) {
        o[n++] = 4;
        memcpy(o + n, &a6, 16);
        n += 16;
    } else {
        size_t hl = strlen(cl->host);
        if (hl == 0 || hl > 255) return TALLOW_EINVAL;
        o[n++] = 3;
        o[n++] = (uint8_t)hl;
        memcpy(o + n, cl->host, hl);
        n += hl;
    }
    unsigned port = (unsigned)atoi(cl->port);
    o[n++] = (uint8_t)(port >> 8);
    o[n++] = (uint8_t)port;
    cl->socks_out_len = n;
    cl->socks_out_off = 0;
    cl->socks_step = 2;
    relay_socks_output(cl);
    return cl->werr;
}

int relay_socks_input(relay_cl *cl)
{
    relay_inbuf *b = &cl->in;
    size_t live = b->end - b->start;
    const uint8_t *p = b->buf + b->start;
    if (cl->socks_step == 1) {
        if (live < 2) return 0;
        if (p[0] != 5 || p[1] != 0) {
            socks_failed(cl, TALLOW_ERELAY, "socks5 proxy wants authentication or is not SOCKS5");
            return TALLOW_ERELAY;
        }
        b->start += 2;
        if (socks_connect_request(cl) < 0) {
            socks_failed(cl, TALLOW_ERELAY, "socks5 proxy: cannot send the request");
            return TALLOW_ERELAY;
        }
        return 0;
    }
    if (live < 5) return 0;
    if (p[0] != 5 || p[1] != 0) {
        char why[80];
        snprintf(why, sizeof why, "socks5 proxy could not connect to the relay (reply %u)", p[1]);
        socks_failed(cl, -ECONNREFUSED, why);
        return -ECONNREFUSED;
    }
    size_t need = p[3] == 1 ? 10 : p[3] == 4 ? 22 : p[3] == 3 ? 7 + (size_t)p[4] : 0;
    if (!need) {
        socks_failed(cl, TALLOW_EPROTO, "socks5 proxy: bad reply");
        return TALLOW_EPROTO;
    }
    if (live < need) return 0;
    b->start += need;
    if (cl->up->proxied(cl) < 0) {
        socks_failed(cl, TALLOW_ECLOSED, "cannot send RoomJoin");
        return TALLOW_ECLOSED;
    }
    return 0;
}

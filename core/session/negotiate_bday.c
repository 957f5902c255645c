/* core/session/negotiate_bday.c — hard-NAT punching for the negotiator (see negotiate.h): mapping
 * behaviour from STUN, then birthday-paradox probing between an endpoint-dependent-mapping side
 * (many sockets) and an endpoint-independent one (many probes). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include <sodium.h>

#include "negotiate.h"

static uint64_t bd_now_ms(void)
{
    return tallow_now_ns() / 1000000u;
}

void tallow__bday_init(tallow__bday *b, tallow_ctx *ctx, tallow_udp *base, const uint8_t *check_key,
                       int controlling, tallow_udp_recv_cb on_check, void *ud)
{
    memset(b, 0, sizeof(*b));
    b->ctx = ctx;
    b->base = base;
    b->check_key = check_key;
    b->controlling = controlling;
    b->on_check = on_check;
    b->ud = ud;
    randombytes_buf(b->txid, sizeof(b->txid));
}

int tallow__bday_classify(const tallow_candidate *c, size_t n, size_t nstun)
{
    const struct sockaddr_in *first = NULL;
    int nsrflx = 0, differ = 0;
    for (size_t i = 0; i < n; i++) {
        if (c[i].kind != TALLOW_CAND_SRFLX || c[i].addr.ss_family != AF_INET) continue;
        const struct sockaddr_in *a = (const struct sockaddr_in *)&c[i].addr;
        nsrflx++;
        if (!first)
            first = a;
        else if (a->sin_addr.s_addr == first->sin_addr.s_addr && a->sin_port != first->sin_port)
            differ = 1;
    }
    if (differ) return TALLOW__NAT_EDM;
    /* one mapping from two or more servers (the gatherer reports distinct mappings once) */
    if (nsrflx == 1 && nstun >= 2) return TALLOW__NAT_EIM;
    return TALLOW__NAT_UNKNOWN;
}

void tallow__bday_local(tallow__bday *b, const tallow_candidate *c, size_t n, size_t nstun)
{
    int k = tallow__bday_classify(c, n, nstun);
    if (k == TALLOW__NAT_UNKNOWN) return;
    b->mine = k;
    tallow_ctx_log(b->ctx, TALLOW_LOG_DEBUG, "p2p: our NAT maps %s",
                   k == TALLOW__NAT_EDM ? "per destination (endpoint-dependent)"
                                        : "endpoint-independently");
}

const char *tallow__bday_foundation(const tallow__bday *b)
{
    return b->mine == TALLOW__NAT_EDM   ? "srflx/edm"
           : b->mine == TALLOW__NAT_EIM ? "srflx/eim"
                                        : "srflx";
}

/* The hard peer's ports look handed out in sequence (two or more seen, at most 16 apart): predict
 * the next ones, from the highest seen (again when a later offer raises it). */
static int bd_predict(tallow__bday *b)
{
    if (b->peer_hi - b->peer_lo == 0 || b->peer_hi - b->peer_lo > 16 || b->peer_hi == 65535)
        return 0;
    b->seq_next = b->peer_hi;
    return 1;
}

void tallow__bday_remote(tallow__bday *b, const struct sockaddr *a, socklen_t len,
                         const uint8_t *foundation, size_t flen)
{
    if (a->sa_family != AF_INET || len < sizeof(struct sockaddr_in)) return;
    int k = flen == 9 && memcmp(foundation, "srflx/edm", 9) == 0   ? TALLOW__NAT_EDM
            : flen == 9 && memcmp(foundation, "srflx/eim", 9) == 0 ? TALLOW__NAT_EIM
                                                                   : TALLOW__NAT_UNKNOWN;
    if (k == TALLOW__NAT_UNKNOWN) return;
    b->peer = k;
    uint16_t port = ntohs(((const struct sockaddr_in *)a)->sin_port);
    if (!b->target_len) {
        memcpy(&b->target, a, sizeof(struct sockaddr_in));
        b->target_len = sizeof(struct sockaddr_in);
        b->peer_lo = b->peer_hi = port;
    } else if (((const struct sockaddr_in *)&b->target)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)a)->sin_addr.s_addr) {
        if (port >= b->peer_lo && port <= b->peer_hi) return;
        if (port < b->peer_lo) b->peer_lo = port;
        if (port > b->peer_hi) b->peer_hi = port;
        /* already probing (the first offer started it; the offers come in any order): predict
         * from now on, or no more when the ports are now too far apart */
        if (b->role == 2 && !b->done) {
            if (bd_predict(b))
                tallow_ctx_log(b->ctx, TALLOW_LOG_INFO,
                               "p2p: birthday punching, easy side: sequential ports from %u",
                               (unsigned)b->peer_hi + 1);
            else
                b->seq_next = 0;
        }
    }
}

void tallow__bday_maybe_start(tallow__bday *b)
{
    if (b->role || b->done || !b->target_len) return;
    char s[64];
    tallow_sockaddr_str((struct sockaddr *)&b->target, s, sizeof(s));
    if (b->mine == TALLOW__NAT_EDM && b->peer == TALLOW__NAT_EIM) {
        b->role = 1;
        tallow_ctx_log(b->ctx, TALLOW_LOG_INFO,
                       "p2p: birthday punching, hard side: %d sockets towards %s",
                       TALLOW__BDAY_SOCKS, s);
    } else if (b->mine == TALLOW__NAT_EIM && b->peer == TALLOW__NAT_EDM) {
        b->role = 2;
        /* ports handed out in sequence: the hard side's new sockets follow the ones seen */
        bd_predict(b);
        tallow_ctx_log(b->ctx, TALLOW_LOG_INFO,
                       "p2p: birthday punching, easy side: probing ports of %s%s", s,
                       b->seq_next ? " (sequential ports first)" : "");
    } else {
        return;
    }
    b->start_ms = bd_now_ms();
}

uint16_t tallow__bday_next_port(tallow__bday *b)
{
    if (b->seq_next) {
        /* ports handed out in sequence: the hard side's sockets take the ports after the highest
         * one seen (after a few more for its ordinary checks). We cannot know when it opens
         * them: probes that arrive before a socket sent are lost. So the first
         * TALLOW__BDAY_SEQ_NEAR ports are swept again and again (TALLOW__BDAY_SEQ_PASSES times:
         * a sweep every 80 ms), which finds the first sockets soon after they send; then the
         * whole window the sockets may take once (other hosts behind that NAT take ports
         * too); then random ports. */
        uint32_t i = b->seq_next - b->peer_hi, room = 65535u - b->peer_hi;
        uint32_t near = TALLOW__BDAY_SEQ_NEAR < room ? TALLOW__BDAY_SEQ_NEAR : room;
        uint32_t wide = TALLOW__BDAY_SOCKS + 64 < room ? TALLOW__BDAY_SOCKS + 64 : room;
        uint32_t port = 0;
        if (i < near * TALLOW__BDAY_SEQ_PASSES)
            port = b->peer_hi + 1 + i % near;
        else if (i - near * TALLOW__BDAY_SEQ_PASSES < wide)
            port = b->peer_hi + 1 + (i - near * TALLOW__BDAY_SEQ_PASSES);
        if (port) {
            b->seq_next++;
            return (uint16_t)port;
        }
        b->seq_next = 0;
    }
    return (uint16_t)(1024 + randombytes_uniform(65536 - 1024));
}

static void bd_send(tallow__bday *b, tallow_udp *u, const struct sockaddr *to, socklen_t len)
{
    tallow__check c = {.type = TALLOW__CHECK_REQ,
                       .flags = b->controlling ? TALLOW__CHECK_CONTROLLING : 0,
                       .priority = tallow_candidate_priority(TALLOW_CAND_PRFLX, 65535)};
    memcpy(c.txid, b->txid, sizeof(c.txid));
    uint8_t buf[TALLOW__CHECK_LEN];
    if (tallow__check_encode(b->check_key, &c, buf) < 0) return;
    tallow_udp_send(u, to, len, buf, sizeof(buf));
    b->sent++;
}

void tallow__bday_tick(tallow__bday *b)
{
    if (!b->role || b->done) return;
    if (bd_now_ms() - b->start_ms >= TALLOW__BDAY_MAX_MS || b->sent >= TALLOW__BDAY_MAX_PACKETS) {
        b->done = 1;
        tallow_ctx_log(b->ctx, TALLOW_LOG_INFO, "p2p: birthday punching ended, %u packets sent",
                       b->sent);
        return;
    }
    if (b->role == 1) {
        /* 32 sockets a tick: all open after 80 ms; one check each */
        for (int i = 0; i < 32 && b->nsock < TALLOW__BDAY_SOCKS; i++) {
            tallow_udp *u = NULL;
            if (tallow_udp_open(b->ctx, NULL, 0, &u) < 0) {
                b->nsock = TALLOW__BDAY_SOCKS; /* out of descriptors: what we have must do */
                break;
            }
            b->sock[b->nsock++] = u;
            tallow_udp_on(u, TALLOW_UDP_CHECK, b->on_check, b->ud);
            bd_send(b, u, (struct sockaddr *)&b->target, b->target_len);
        }
        return;
    }
    struct sockaddr_in to;
    memcpy(&to, &b->target, sizeof(to));
    for (int i = 0; i < TALLOW__BDAY_PER_TICK && b->sent < TALLOW__BDAY_MAX_PACKETS; i++) {
        to.sin_port = htons(tallow__bday_next_port(b));
        bd_send(b, b->base, (struct sockaddr *)&to, sizeof(to));
    }
}

int tallow__bday_running(const tallow__bday *b)
{
    return b->role && !b->done;
}

int tallow__bday_is_probe(const tallow__bday *b, const uint8_t txid[TALLOW__CHECK_TXID])
{
    return b->role && memcmp(b->txid, txid, TALLOW__CHECK_TXID) == 0;
}

uint32_t tallow__bday_sent(const tallow__bday *b)
{
    return b->sent;
}

void tallow__bday_stop(tallow__bday *b, tallow_udp *keep)
{
    if (b->role && !b->done)
        tallow_ctx_log(b->ctx, TALLOW_LOG_DEBUG, "p2p: birthday punching stopped, %u packets sent",
                       b->sent);
    b->done = 1;
    for (size_t i = 0; i < b->nsock; i++)
        if (b->sock[i] && b->sock[i] != keep) tallow_udp_close(b->sock[i]);
    b->nsock = 0;
}

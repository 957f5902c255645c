/* plugins/relay/relay_limits.c — the relay's per-address limits: the keyed hash tables, the
 * per-address accounting (IPv4 addresses, IPv6 /64s) and the token buckets (joins, STUN
 * answers). The bottom of the service: it calls nothing else of it. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "relay_srv.h"

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
        if (!b) return TALLOW_ENOMEM;
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

relay_ip *relay_ip_get(relay_srv *s, const struct sockaddr_storage *ss)
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
    if (memcmp(ip->addr, zero, 8) == 0 && !(ip->addr[10] == 0xff && ip->addr[11] == 0xff)) return 1;
    uint32_t r = rate > 1000000u ? 1000000u : (uint32_t)rate;
    return bucket_take(s->join_rl, relay_hash(s, ip->addr, 16) ^ 0x6a6f696eu,
                       tallow_loop_now(s->loop), 4u * r, r);
}

int relay_stun_allow(relay_srv *s, const struct sockaddr_storage *from)
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
            b->tokens =
                (uint32_t)(b->tokens + add > RELAY_STUN_BURST ? RELAY_STUN_BURST : b->tokens + add);
            b->at_ms = now;
        }
    }
    if (!b->tokens) return 0;
    b->tokens--;
    return 1;
}

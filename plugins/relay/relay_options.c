/* plugins/relay/relay_options.c — the relay service's options: their defaults, --help text and
 * parsing into a relay_srv (limits, password, splice, TLS files, metrics, drain timeout), shared
 * by the start, `--check` and SIGHUP (relay_ops.c). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay_srv.h"

const char *const relay_options_help[] = {
    "--listen ADDR:PORT        where to listen, TCP and UDP/STUN (default 0.0.0.0:4433)",
    "--password PW             relay password clients must present (default none)",
    "--max-rooms N             open rooms at most (default 10000)",
    "--max-peers N             peers per multi-peer room at most (default 16)",
    "--max-frame BYTES         largest frame accepted (default 2097216)",
    "--max-conns-per-ip N      connections per client address, IPv6 /64 (default 64)",
    "--max-conns N             connections at once, all addresses (default 20000)",
    "--max-rooms-per-ip N      open rooms created per client address (default 32)",
    "--join-rate N             room joins per second per address, IPv6 /64, bursts of 4N; loopback "
    "exempt; 0 off (default 16)",
    "--room-timeout SECONDS    idle paired room lifetime (default 3600)",
    "--unpaired-timeout SECONDS  lifetime of a room nobody joined (default 600)",
    "--join-timeout SECONDS    time to send a valid RoomJoin (default 10)",
    "--grace SECONDS           how long a dropped peer's slot waits for its resume (default 30)",
    "--queue-high BYTES        per-connection queue high-water mark (default 65536)",
    "--stun on|off             answer STUN Binding requests on UDP (default on)",
    "--stun-port2 PORT|off     answer STUN on a second UDP port too, so one relay shows clients "
    "how their NAT maps (default: the listen port + 1)",
    "--splice on|off           forward long frames socket to socket with splice() (default on)",
    "--metrics ADDR:PORT       serve Prometheus metrics over HTTP at /metrics (default off)",
    "--drain-timeout SECONDS   SIGTERM: time paired rooms get to finish (default 30)",
    "--cert FILE, --key FILE   serve TLS only (PEM chain and key; clients use tls://HOST:PORT)",
    NULL,
};

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

/* The operating options that are not limits (relay_ops.h: the metrics endpoint, the drain
 * deadline): 1 if key was one of them (stored), 0 if not, or a negative error (message set). */
static int ops_option(relay_srv *s, const char *k, const char *v)
{
    if (strcmp(k, "metrics") == 0) {
        free(s->opc.metrics);
        s->opc.metrics = *v ? strdup(v) : NULL;
        if (*v && !s->opc.metrics) return TALLOW_ENOMEM;
        return 1;
    }
    if (strcmp(k, "drain-timeout") == 0) {
        char *end;
        double d = strtod(v, &end);
        if (end == v || *end || !(d >= 0) || d > 1e6) {
            tallow_ctx_set_error(s->ctx, "relay: bad value for %s: '%s'", k, v);
            return TALLOW_EINVAL;
        }
        s->opc.drain_timeout_ms = (uint64_t)(d * 1000.0);
        return 1;
    }
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
        if (strcmp(k, "stun-port2") == 0) {
            uint64_t p = 0;
            if (strcmp(v, "off") == 0 || strcmp(v, "0") == 0) {
                s->stun2 = 0;
            } else if (strcmp(v, "auto") == 0 || !*v) {
                s->stun2 = -1;
            } else if (opt_u64(v, &p) == 0 && p >= 1 && p <= 65535) {
                s->stun2 = (int)p;
            } else {
                tallow_ctx_set_error(s->ctx, "relay: bad value for %s: '%s' (a port or off)", k, v);
                return TALLOW_EINVAL;
            }
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
        int ours = ops_option(s, k, v);
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
    s->stun2 = -1; /* the listen port + 1 */
}

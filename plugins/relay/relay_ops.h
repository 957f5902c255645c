/* plugins/relay/relay_ops.h — what the relay tells and takes from its operator: counters behind
 * the Prometheus endpoint (relay_metrics.c), and the operating options, drain and reload
 * (relay_ops.c). The rest of the service reaches them through a few one-line hooks. */
#ifndef TALLOW_PLUGIN_RELAY_OPS_H
#define TALLOW_PLUGIN_RELAY_OPS_H

#include <stdint.h>

typedef struct relay_srv relay_srv;
typedef struct relay_metrics relay_metrics;

/* Why a join or a connection was refused (label `reason` of tallow_relay_joins_refused_total). */
enum relay_refusal {
    RR_FULL,
    RR_PASSWORD,
    RR_IPROOMS,
    RR_ROOMS,
    RR_JOINTIMEOUT,
    RR_FRAME,
    RR_PROTO,
    RR_NOPEER,
    RR_VERSION,
    RR_CAPACITY,
    RR_RESUME,
    RR_IPCONNS,       /* refused at accept(): too many connections from the address */
    RR_DRAINING,      /* refused while the relay drains (SIGTERM) */
    RR_PLAIN_ON_TLS,  /* a plain client on a TLS-only listener */
    RR_TLS_HANDSHAKE, /* the TLS handshake failed */
    RR_JOINRATE,      /* joins per second per address (IPv6 /64) */
    RR_SLOT,          /* a failover join's slot taken, or not in the room */
    RR_OTHER,
    RR_COUNT
};

/* Limits that can be hit (label `limit` of tallow_relay_limit_hits_total). */
enum relay_limit {
    RL_MAX_ROOMS,
    RL_MAX_ROOMS_PER_IP,
    RL_MAX_CONNS_PER_IP,
    RL_MAX_PEERS,
    RL_MAX_FRAME,
    RL_JOIN_TIMEOUT,
    RL_ROOM_TIMEOUT,
    RL_UNPAIRED_TIMEOUT,
    RL_QUEUE_HIGH,
    RL_COUNT
};

typedef struct relay_counters {
    uint64_t refused[RR_COUNT];
    uint64_t limits[RL_COUNT];
    uint64_t stun_answered, stun_dropped;
    uint64_t reconnections; /* peers that came back with their resume token */
    uint64_t rooms_paired_total;
    uint64_t reloads, reload_failures;
} relay_counters;

/* Operating settings that are not limits (relay_ops.c). */
typedef struct relay_opsconf {
    char *metrics;             /* "ADDR:PORT" of the metrics endpoint, or NULL */
    uint64_t drain_timeout_ms; /* SIGTERM: how long paired rooms may finish (default 30 s) */
    char *listen;              /* as started: a reload cannot move it */
} relay_opsconf;

/* After the listener is up: starts the metrics endpoint if asked for. 0 or an error. */
int relay_ops_start(relay_srv *s, const char *listen);
/* Before the service is freed. */
void relay_ops_stop(relay_srv *s);

/* The service's optional entry points (tallow_service_ops): validate options without starting;
 * apply new options to the running relay without dropping rooms (SIGHUP); stop accepting and
 * close what is not paired, letting paired rooms finish (SIGTERM; returns paired rooms left). */
int relay_ops_check(void *plugin_state, tallow_ctx *ctx, const tallow_kv *opts, size_t nopts);
int relay_ops_reload(void *inst, const tallow_kv *opts, size_t nopts);
int relay_ops_drain(void *inst);

/* Counts a refusal by the reason string sent to the client (RELAY_R_*), and the limit behind it. */
void relay_count_refusal(relay_srv *s, const char *reason);
void relay_count_refused(relay_srv *s, enum relay_refusal r);
void relay_count_limit(relay_srv *s, enum relay_limit l);

/* The metrics endpoint: `metrics` = "ADDR:PORT" serves GET /metrics (Prometheus text format
 * 0.0.4) over HTTP/1.0-style one-request connections on the relay's loop. 0 or an error (message
 * set on the context). */
int relay_metrics_start(relay_srv *s, const char *where);
void relay_metrics_stop(relay_srv *s);
/* Closes metrics connections that did not finish within their deadline (the sweep timer). */
void relay_metrics_sweep(relay_srv *s, uint64_t now);
/* The bound port (0 when not serving). */
uint16_t relay_metrics_port(relay_srv *s);
/* Appends the exposition text to a growing buffer (also used by tests). Returns the text
 * (malloc'd, NUL-terminated) or NULL. */
char *relay_metrics_text(relay_srv *s, size_t *len);

#endif

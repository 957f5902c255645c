/* plugins/relay/relay_ops.c — running the relay: its operating options that are not limits (the
 * metrics endpoint, relay_metrics.c; the drain deadline), `--check` (validate without
 * starting), SIGHUP (reload without dropping rooms) and SIGTERM (drain). */
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay_srv.h"

int relay_ops_start(relay_srv *s, const char *listen)
{
    s->opc.listen = strdup(listen);
    if (!s->opc.listen) return TALLOW_ENOMEM;
    if (s->opc.metrics) return relay_metrics_start(s, s->opc.metrics);
    return 0;
}

void relay_ops_stop(relay_srv *s)
{
    relay_metrics_stop(s);
    free(s->opc.metrics);
    free(s->opc.listen);
    s->opc.metrics = s->opc.listen = NULL;
}

/* An address one could listen on: HOST:PORT with a numeric port that resolves (nothing bound). */
static int check_addr(tallow_ctx *ctx, const char *what, const char *where)
{
    char host[256], port[16];
    if (relay_split_hostport(where, host, sizeof host, port, sizeof port) < 0) {
        tallow_ctx_set_error(ctx, "relay: bad %s address '%s' (ADDR:PORT)", what, where);
        return TALLOW_EINVAL;
    }
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM},
                    *ai;
    if (getaddrinfo(*host ? host : NULL, port, &hints, &ai) != 0) {
        tallow_ctx_set_error(ctx, "relay: %s address '%s' does not resolve", what, where);
        return TALLOW_EINVAL;
    }
    freeaddrinfo(ai);
    return 0;
}

/* Parses options into a scratch relay_srv (defaults first) and checks the addresses. */
static int parse_scratch(relay_srv *tmp, tallow_ctx *ctx, const tallow_host *host,
                         const tallow_kv *opts, size_t n, const char **listen)
{
    memset(tmp, 0, sizeof *tmp);
    tmp->ctx = ctx;
    tmp->host = host;
    relay_srv_defaults(tmp);
    *listen = "0.0.0.0:4433";
    int stun = 1, rc = relay_parse_opts(tmp, opts, n, listen, &stun);
    if (rc == 0) rc = check_addr(ctx, "listen", *listen);
    if (rc == 0 && tmp->opc.metrics) rc = check_addr(ctx, "metrics", tmp->opc.metrics);
    return rc;
}

static void free_scratch(relay_srv *tmp)
{
    relay_tlscred_put(tmp->tls);
    free(tmp->cert);
    free(tmp->key);
    free(tmp->password);
    free(tmp->opc.metrics);
}

int relay_ops_check(void *plugin_state, tallow_ctx *ctx, const tallow_kv *opts, size_t nopts)
{
    relay_plugin *pl = plugin_state;
    relay_srv tmp;
    const char *listen;
    int rc = parse_scratch(&tmp, ctx, pl->host, opts, nopts, &listen);
    free_scratch(&tmp);
    return rc;
}

int relay_ops_reload(void *inst, const tallow_kv *opts, size_t nopts)
{
    relay_srv *s = inst;
    relay_srv tmp;
    const char *listen;
    int rc = parse_scratch(&tmp, s->ctx, s->host, opts, nopts, &listen);
    if (rc < 0) {
        free_scratch(&tmp);
        s->ctr.reload_failures++;
        RELAY_LOG(s, TALLOW_LOG_WARN, "reload refused, configuration unchanged: %s",
                  tallow_ctx_last_error(s->ctx));
        return rc;
    }
    char oh[256], op[16];
    int any_port = s->opc.listen &&
                   relay_split_hostport(s->opc.listen, oh, sizeof oh, op, sizeof op) == 0 &&
                   strcmp(op, "0") == 0; /* started on port 0: whatever was picked stays */
    if (s->opc.listen && !any_port && strcmp(listen, s->opc.listen) != 0)
        RELAY_LOG(s, TALLOW_LOG_WARN, "reload: the listen address stays %s until a restart",
                  s->opc.listen);
    /* the metrics endpoint moves first: if the new address cannot be had, nothing changes */
    const char *now = s->opc.metrics ? s->opc.metrics : "";
    const char *want = tmp.opc.metrics ? tmp.opc.metrics : "";
    if (strcmp(now, want) != 0) {
        relay_metrics *old = s->metrics;
        s->metrics = NULL;
        if (*want && (rc = relay_metrics_start(s, want)) < 0) {
            s->metrics = old;
            free_scratch(&tmp);
            s->ctr.reload_failures++;
            RELAY_LOG(s, TALLOW_LOG_WARN, "reload refused, configuration unchanged: %s",
                      tallow_ctx_last_error(s->ctx));
            return rc;
        }
        relay_metrics *fresh = s->metrics;
        s->metrics = old;
        relay_metrics_stop(s);
        s->metrics = fresh;
        free(s->opc.metrics);
        s->opc.metrics = tmp.opc.metrics;
        tmp.opc.metrics = NULL;
    }
    /* limits apply to what comes next; rooms open now keep going */
    s->lim = tmp.lim;
    s->opc.drain_timeout_ms = tmp.opc.drain_timeout_ms;
    if (!tmp.nosplice != !s->nosplice) s->nosplice = tmp.nosplice;
    free(s->password);
    s->password = tmp.password;
    tmp.password = NULL;
    /* TLS: new credentials for new connections (running sessions keep theirs); a listener
     * started plain stays plain and a TLS one stays TLS until a restart */
    if (s->tls && tmp.tls) {
        relay_tlscred_put(s->tls);
        s->tls = tmp.tls;
        tmp.tls = NULL;
    } else if (!s->tls != !tmp.tls) {
        RELAY_LOG(s, TALLOW_LOG_WARN, "reload: the listener stays %s until a restart",
                  s->tls ? "TLS" : "plain");
    }
    free_scratch(&tmp);
    s->ctr.reloads++;
    RELAY_LOG(s, TALLOW_LOG_INFO,
              "configuration reloaded: max-rooms %llu, max-peers %llu, max-conns-per-ip %llu, "
              "max-rooms-per-ip %llu, password %s; %llu rooms kept",
              (unsigned long long)s->lim.max_rooms, (unsigned long long)s->lim.max_peers,
              (unsigned long long)s->lim.max_conns_per_ip,
              (unsigned long long)s->lim.max_rooms_per_ip, s->password ? "set" : "none",
              (unsigned long long)s->nrooms);
    return 0;
}

int relay_ops_drain(void *inst)
{
    relay_srv *s = inst;
    uint64_t paired = 0;
    if (!s->draining) {
        s->draining = 1;
        if (s->lio) tallow_io_stop(s->lio);
        s->lio = NULL;
        if (s->lfd >= 0) close(s->lfd); /* new connections are refused by the kernel */
        s->lfd = -1;
        tallow_msg_RoomLeave m = {
            .reason = {(const uint8_t *)RELAY_R_SHUTDOWN, strlen(RELAY_R_SHUTDOWN)}};
        for (relay_conn *c = s->conns; c; c = c->next)
            if (c->state == RC_PENDING) {
                relay_count_refused(s, RR_DRAINING);
                relay_conn_close_after(c, &tallow_msgtype_RoomLeave, &m);
            }
        relay_room *next;
        uint64_t closed = 0;
        for (relay_room *r = s->rooms; r; r = next) {
            next = r->next;
            if (!r->paired) {
                relay_room_close(r, RELAY_R_SHUTDOWN, 1); /* its peer goes to the next relay */
                closed++;
            }
        }
        for (relay_room *r = s->rooms; r; r = r->next)
            paired++;
        RELAY_LOG(s, TALLOW_LOG_INFO,
                  "draining: no new connections, %llu waiting rooms closed, %llu paired rooms "
                  "may finish within %.1f s",
                  (unsigned long long)closed, (unsigned long long)paired,
                  (double)s->opc.drain_timeout_ms / 1000.0);
        relay_srv_settle(s);
        return (int)paired;
    }
    for (relay_room *r = s->rooms; r; r = r->next)
        paired++;
    return (int)paired;
}

/* plugins/relay/relay_ops.c — the relay's operating options that are not limits: the metrics
 * endpoint (relay_metrics.c) and the drain deadline. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "relay_srv.h"

int relay_ops_option(relay_srv *s, const char *k, const char *v)
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

int relay_ops_start(relay_srv *s)
{
    if (s->opc.metrics) return relay_metrics_start(s, s->opc.metrics);
    return 0;
}

void relay_ops_stop(relay_srv *s)
{
    relay_metrics_stop(s);
    free(s->opc.metrics);
    s->opc.metrics = NULL;
}

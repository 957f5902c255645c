/* plugins/gather-portmap/gather_portmap.c — port-mapped candidates: asks the default gateway to
 * forward a public UDP port to the session's endpoint, with PCP (RFC 6887, pcp.c), NAT-PMP
 * (RFC 6886, libnatpmp) and UPnP IGD (libminiupnpc) at once, and offers the first mapping
 * granted as a candidate of kind TALLOW_CAND_MAPPED.
 *
 * - PCP goes first on the gateway's port 5351; a gateway that answers it in NAT-PMP's version 0
 *   gets NAT-PMP there instead (RFC 6887 Appendix A). UPnP runs beside them in a thread (its
 *   library blocks): SSDP discovery, then AddPortMapping. The first mapping granted wins; UPnP
 *   is told to stop before it adds one. The gathering answers within PM_GATHER_MS (or the
 *   negotiator's smaller bound) with or without a mapping; on a network with no gateway, or a
 *   gateway that refuses (ICMP) or ignores every protocol, that is sooner or at that bound.
 * - The mapping is renewed at half its granted lifetime, and deleted when the negotiator
 *   releases the endpoint (session end), when the plugin is unloaded, and on SIGINT/SIGTERM
 *   (the handler only wakes the loop, which deletes, restores the previous handler and raises
 *   the signal again).
 * - Nothing is asked when the relay (every STUN server) is on this machine, or when there is no
 *   IPv4 default gateway.
 * - Nothing is sent under the no_p2p policy (the negotiator does not even start then; this
 *   plugin refuses too).
 * TALLOW_PORTMAP="pcp,natpmp,upnp" (any subset; "off" for none) picks the protocols;
 * TALLOW_PORTMAP_LEASE (seconds, default 3600) the lifetime asked for; TALLOW_PORTMAP_RENEW_MS
 * forces a shorter renewal period (tests). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "portmap.h"

static const char *proto_name(int p)
{
    return p == PM_PCP ? "pcp" : p == PM_NATPMP ? "natpmp" : p == PM_UPNP ? "upnp" : "none";
}

static int env_protos(void)
{
    const char *v = getenv("TALLOW_PORTMAP");
    if (!v || !*v) return PM_PCP | PM_NATPMP | PM_UPNP;
    int p = 0;
    if (strstr(v, "pcp")) p |= PM_PCP;
    if (strstr(v, "natpmp")) p |= PM_NATPMP;
    if (strstr(v, "upnp")) p |= PM_UPNP;
    return p;
}

static uint64_t now_ms(void)
{
    return tallow_now_ns() / 1000000u;
}

/* The IPv4 default gateway from /proc/net/route; 0 when there is none. */
static int default_gateway(struct in_addr *gw)
{
    FILE *f = fopen("/proc/net/route", "r");
    if (!f) return -1;
    char line[256];
    int found = -1;
    while (fgets(line, sizeof(line), f)) {
        char ifn[64];
        unsigned long dst, g, mask;
        unsigned flags;
        if (sscanf(line, "%63s %lx %lx %x %*d %*d %*d %lx", ifn, &dst, &g, &flags, &mask) != 5)
            continue;
        if (dst == 0 && mask == 0 && (flags & 0x2) && g != 0) { /* RTF_GATEWAY */
            gw->s_addr = (in_addr_t)g; /* the file prints the raw network-order word */
            found = 0;
            break;
        }
    }
    fclose(f);
    return found;
}

/* ---- results ------------------------------------------------------------------------------ */

static void pm_deliver(pm_map *m)
{
    if (m->delivered) return;
    m->delivered = 1;
    if (m->deadline) tallow_timer_stop(m->deadline);
    m->deadline = NULL;
    tallow_candidate c;
    memset(&c, 0, sizeof(c));
    size_t n = 0;
    char s[64];
    if (m->proto) {
        struct sockaddr_in *a = (struct sockaddr_in *)&c.addr;
        a->sin_family = AF_INET;
        a->sin_addr = m->ext;
        a->sin_port = htons(m->ext_port);
        c.addr_len = sizeof(*a);
        c.kind = TALLOW_CAND_MAPPED;
        c.priority = tallow_candidate_priority(TALLOW_CAND_MAPPED, 65535);
        if (tallow_validate_candidate_addr((struct sockaddr *)a, c.addr_len, m->allow_loopback) ==
            0)
            n = 1;
        pm_log(m->st, TALLOW_LOG_INFO, "mapped %s via %s after %llu ms (lifetime %u s)%s",
               tallow_sockaddr_str((struct sockaddr *)a, s, sizeof(s)), proto_name(m->proto),
               (unsigned long long)(now_ms() - m->t0), m->lifetime, n ? "" : " (refused)");
    } else {
        pm_log(m->st, TALLOW_LOG_INFO, "no mapping after %llu ms (pcp/natpmp: %s; upnp: %s)",
               (unsigned long long)(now_ms() - m->t0), m->chain_why[0] ? m->chain_why : "running",
               m->upnp_why[0] ? m->upnp_why : "running");
    }
    m->cb(0, n ? &c : NULL, n, m->ud);
}

static void pm_deadline(tallow_timer *t, void *ud)
{
    pm_map *m = ud;
    m->deadline = NULL;
    if (!m->chain_done) {
        pm_stop_chain(m);
        m->chain_done = 1;
        if (!m->chain_why[0]) snprintf(m->chain_why, sizeof(m->chain_why), "no answer");
    }
    if (m->job) {
        pthread_mutex_lock(&m->job->mu);
        m->job->cancel = 1;
        pthread_mutex_unlock(&m->job->mu);
        if (!m->upnp_why[0]) snprintf(m->upnp_why, sizeof(m->upnp_why), "no answer in time");
    }
    pm_deliver(m);
}

static void pm_check_all_failed(pm_map *m)
{
    if (!m->proto && m->chain_done && m->upnp_done) pm_deliver(m);
}

/* A protocol granted a mapping. */
static void pm_won(pm_map *m, int proto, struct in_addr ext, uint16_t ext_port, uint32_t life)
{
    m->proto = proto;
    m->ext = ext;
    m->ext_port = ext_port;
    m->lifetime = life;
    if (proto != PM_UPNP && m->job) {
        pthread_mutex_lock(&m->job->mu);
        m->job->cancel = 1; /* UPnP adds nothing now */
        pthread_mutex_unlock(&m->job->mu);
        snprintf(m->upnp_why, sizeof(m->upnp_why), "not needed");
    }
    if (proto == PM_UPNP && !m->chain_done) {
        pm_stop_chain(m);
        m->chain_done = 1;
        snprintf(m->chain_why, sizeof(m->chain_why), "not needed");
    }
    pm_sig_install(m->st);
    pm_schedule_renew(m);
    pm_deliver(m);
}

/* ---- the gatherer ------------------------------------------------------------------------- */

static void pm_deliver_empty(void *arg)
{
    pm_map *m = arg;
    pm_deliver(m);
}

static int pm_gather(void *plugin_state, const tallow_gather_params *p, tallow_gather_cb cb,
                     void *ud)
{
    pm_state *st = plugin_state;
    if (!st || !p || !cb || p->struct_size < sizeof(tallow_gather_params) || !p->udp)
        return TALLOW_EINVAL;
    if (tallow_policy_no_p2p(st->host->policy)) return TALLOW_EPOLICY;
    pm_map *m = calloc(1, sizeof(*m));
    if (!m) return TALLOW_ENOMEM;
    m->st = st;
    m->udp = p->udp;
    m->cb = cb;
    m->ud = ud;
    m->pcp_fd = -1;
    m->allow_loopback = p->allow_loopback;
    m->t0 = now_ms();
    m->protos = env_protos();
    m->next = st->maps;
    st->maps = m;
    struct sockaddr_storage la;
    socklen_t ll = sizeof(la);
    if (tallow_udp_local_addr(p->udp, &la, &ll) == 0)
        m->port = ntohs(la.ss_family == AF_INET ? ((struct sockaddr_in *)&la)->sin_port
                                                : ((struct sockaddr_in6 *)&la)->sin6_port);
    /* with no STUN server, or only ones on this machine (the relay on loopback), no NAT stands
     * between us and the relay: nothing to ask a gateway for */
    int remote = 0;
    for (size_t i = 0; i < p->nstun; i++) {
        const struct sockaddr_storage *a = &p->stun[i];
        if (a->ss_family == AF_INET)
            remote |= (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) != 127;
        else if (a->ss_family == AF_INET6)
            remote |= !IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a)->sin6_addr);
    }
    int have_gw = remote && default_gateway(&m->gw) == 0;
    /* a loopback or link-local "gateway" is no NAT of ours */
    uint32_t g = ntohl(m->gw.s_addr);
    if (!have_gw || (g >> 24) == 127 || (g >> 16) == 0xA9FE) have_gw = 0;
    if (!have_gw || !m->port || !m->protos) {
        snprintf(m->chain_why, sizeof(m->chain_why), "%s",
                 !m->protos ? "off"
                 : !remote  ? "the relay is on this machine"
                 : !have_gw ? "no IPv4 default gateway"
                            : "no port");
        snprintf(m->upnp_why, sizeof(m->upnp_why), "%s", m->chain_why);
        m->chain_done = m->upnp_done = 1;
        if (tallow_defer(st->host->loop, pm_deliver_empty, m) == 0) return 0;
        pm_unlink(m);
        free(m);
        return TALLOW_ENOMEM;
    }
    uint32_t bound = p->timeout_ms && p->timeout_ms < PM_GATHER_MS ? p->timeout_ms : PM_GATHER_MS;
    m->deadline = tallow_timer_start(st->host->loop, bound, 0, pm_deadline, m);
    if (m->protos & PM_PCP) {
        if (pm_pcp_start(m) == 0) {
            pm_pcp_send(m, pm_lease());
            m->retry = tallow_timer_start(st->host->loop, PM_RETRY_MS, 0, pm_retry, m);
        } else {
            pm_chain_failed(m, "pcp: no socket");
        }
    } else if (m->protos & PM_NATPMP) {
        pm_natpmp_start(m);
    } else {
        m->chain_done = 1;
        snprintf(m->chain_why, sizeof(m->chain_why), "off");
    }
    if (m->protos & PM_UPNP) {
        m->job = pm_job_start(m, 0);
        if (!m->job) {
            m->upnp_done = 1;
            snprintf(m->upnp_why, sizeof(m->upnp_why), "upnp: no thread");
        }
    } else {
        m->upnp_done = 1;
        snprintf(m->upnp_why, sizeof(m->upnp_why), "off");
    }
    char gs[32];
    inet_ntop(AF_INET, &m->gw, gs, sizeof(gs));
    pm_log(st, TALLOW_LOG_DEBUG, "asking gateway %s to map UDP port %u (%s%s%s)", gs, m->port,
           m->protos & PM_PCP ? "pcp " : "", m->protos & PM_NATPMP ? "natpmp " : "",
           m->protos & PM_UPNP ? "upnp" : "");
    return 0;
}

/* The negotiator is done with the endpoint: delete the mapping made for it; a gathering still
 * running on it answers TALLOW_ECANCELED first (from inside this call). */
static void pm_release(void *plugin_state, tallow_udp *udp)
{
    pm_state *st = plugin_state;
    for (pm_map *m = st->maps, *next; m; m = next) {
        next = m->next;
        if (m->udp != udp) continue;
        pm_unlink(m); /* the callback may release again: we are gone from the list by then */
        if (!m->delivered) {
            m->delivered = 1;
            m->cb(TALLOW_ECANCELED, NULL, 0, m->ud);
        }
        m->next = st->maps; /* pm_map_free unlinks */
        st->maps = m;
        pm_map_free(m);
        next = st->maps; /* the list may have changed during the callback: start over */
    }
}

static const tallow_gatherer_ops pm_ops = {
    .version = TALLOW_GATHERER_OPS_VERSION,
    .struct_size = sizeof(tallow_gatherer_ops),
    .name = "gather-portmap",
    .gather = pm_gather,
    .release = pm_release,
};

/* What the protocol clients report (portmap.h). */
static const pm_up pm_results = {
    .won = pm_won,
    .gave_up = pm_check_all_failed,
    .renewed = pm_schedule_renew,
};

static int pm_init(const tallow_host *host, void **state_out)
{
    pm_state *st = calloc(1, sizeof(*st));
    if (!st) return TALLOW_ENOMEM;
    st->host = host;
    st->up = &pm_results;
    st->sig_pipe[0] = st->sig_pipe[1] = -1;
    st->sig_slot = -1;
    int rc = host->register_gatherer(host->ctx, &pm_ops, st);
    if (rc < 0) {
        free(st);
        return rc;
    }
    *state_out = st;
    return 0;
}

/* The context goes away: mappings still held are deleted; gatherings in progress are dropped
 * without a callback; a UPnP discovery still running is left to finish on its own (cancelled:
 * it adds nothing, and deletes a mapping it added at that moment); other UPnP requests are
 * waited for (bounded by the library's HTTP timeouts). */
static void pm_fini(void *state)
{
    pm_state *st = state;
    if (!st) return;
    while (st->maps)
        pm_map_free(st->maps);
    while (st->jobs) {
        pm_job *j = st->jobs;
        /* a discovery still waiting for an IGD (up to PM_UPNP_DISCOVER_MS) does not hold the
         * process's exit: it is cancelled, and its thread finishes and frees on its own */
        if (pm_job_orphan(j)) continue;
        pthread_join(j->thread, NULL);
        j->m = NULL;
        pm_job_undo(j, st);
        pm_job_free(j);
    }
    pm_sig_uninstall(st);
    if (st->sig_io) tallow_io_stop(st->sig_io);
    if (st->sig_pipe[0] >= 0) close(st->sig_pipe[0]);
    if (st->sig_pipe[1] >= 0) close(st->sig_pipe[1]);
    free(st);
}

static const tallow_plugin_desc pm_desc = {
    .abi = TALLOW_PLUGIN_ABI,
    .struct_size = sizeof(tallow_plugin_desc),
    .name = "gather-portmap",
    .version = TALLOW_VERSION,
    .summary = "port-mapped candidates from the gateway (PCP, NAT-PMP, UPnP IGD)",
    .init = pm_init,
    .fini = pm_fini,
};

TALLOW_PLUGIN_EXPORT const tallow_plugin_desc *tallow_plugin_entry(void)
{
    return &pm_desc;
}

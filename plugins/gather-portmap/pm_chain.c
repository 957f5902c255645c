/* plugins/gather-portmap/pm_chain.c — the PCP -> NAT-PMP chain on the gateway's port 5351: the
 * PCP client (RFC 6887, encoded by pcp.c) first; a gateway that answers in NAT-PMP's version 0
 * gets the NAT-PMP client (RFC 6886, libnatpmp: the public address, then the UDP mapping)
 * instead; retransmissions and renewals for both. Results go up through st->up. */
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

#define ENABLE_STRNATPMPERR 1 /* strnatpmperr() */
#include "portmap.h"

void pm_stop_chain(pm_map *m)
{
    if (m->retry) tallow_timer_stop(m->retry);
    m->retry = NULL;
    if (m->pcp_io) tallow_io_stop(m->pcp_io);
    m->pcp_io = NULL;
    if (m->natpmp_io) tallow_io_stop(m->natpmp_io);
    m->natpmp_io = NULL;
}

void pm_close_chain(pm_map *m)
{
    pm_stop_chain(m);
    if (m->pcp_fd >= 0) close(m->pcp_fd);
    m->pcp_fd = -1;
    if (m->natpmp_open) closenatpmp(&m->natpmp);
    m->natpmp_open = 0;
}

/* ---- NAT-PMP (libnatpmp) */

/* Takes libnatpmp's answer (or lets it resend). */
static void pm_natpmp_poll(pm_map *m)
{
    natpmpresp_t r;
    int rc = readnatpmpresponseorretry(&m->natpmp, &r);
    if (rc == NATPMP_TRYAGAIN) return;
    if (rc < 0) {
        if (m->proto == PM_NATPMP) {
            pm_log(m->st, TALLOW_LOG_WARN, "renewal failed (%s)", strnatpmperr(rc));
            pm_stop_chain(m);
            m->st->up->renewed(m);
            return;
        }
        char why[80];
        snprintf(why, sizeof(why), "natpmp: %s", strnatpmperr(rc));
        pm_chain_failed(m, why);
        return;
    }
    if (r.type == NATPMP_RESPTYPE_PUBLICADDRESS && m->natpmp_phase == 1) {
        m->ext = r.pnu.publicaddress.addr;
        m->natpmp_phase = 2;
        if (sendnewportmappingrequest(&m->natpmp, NATPMP_PROTOCOL_UDP, m->port, m->port,
                                      pm_lease()) < 0)
            pm_chain_failed(m, "natpmp: send failed");
        return;
    }
    if (r.type != NATPMP_RESPTYPE_UDPPORTMAPPING || r.pnu.newportmapping.privateport != m->port)
        return;
    if (m->proto == PM_NATPMP) {
        m->lifetime = r.pnu.newportmapping.lifetime;
        pm_log(m->st, TALLOW_LOG_INFO, "renewed via natpmp (port %u, lifetime %u s)",
               r.pnu.newportmapping.mappedpublicport, m->lifetime);
        pm_stop_chain(m);
        m->st->up->renewed(m);
        return;
    }
    if (m->proto) return;
    pm_stop_chain(m);
    m->chain_done = 1;
    m->st->up->won(m, PM_NATPMP, m->ext, r.pnu.newportmapping.mappedpublicport,
                   r.pnu.newportmapping.lifetime);
}

void pm_natpmp_read(tallow_io *io, int fd, unsigned ev, void *ud)
{
    pm_natpmp_poll(ud);
}

void pm_natpmp_start(pm_map *m)
{
    if (initnatpmp(&m->natpmp, 1, m->gw.s_addr) < 0) {
        pm_chain_failed(m, "natpmp: no socket");
        return;
    }
    m->natpmp_open = 1;
    m->natpmp_phase = 1;
    m->natpmp_io =
        tallow_io_start(m->st->host->loop, m->natpmp.s, TALLOW_IO_READ, pm_natpmp_read, m);
    if (!m->natpmp_io || sendpublicaddressrequest(&m->natpmp) < 0) {
        pm_chain_failed(m, "natpmp: send failed");
        return;
    }
    if (!m->retry) m->retry = tallow_timer_start(m->st->host->loop, PM_RETRY_MS, 0, pm_retry, m);
}

/* ---- PCP */

void pm_pcp_send(pm_map *m, uint32_t lifetime)
{
    uint8_t buf[PCP_MAP_LEN];
    pcp_map req = m->pcp;
    req.lifetime = lifetime;
    if (lifetime == 0) {
        req.external_port = 0;
        req.external.s_addr = 0;
    }
    if (pcp_encode_map(&req, m->local, buf, sizeof(buf)) < 0) return;
    (void)!send(m->pcp_fd, buf, sizeof(buf), MSG_DONTWAIT);
}

void pm_chain_failed(pm_map *m, const char *why)
{
    pm_stop_chain(m);
    m->chain_done = 1;
    snprintf(m->chain_why, sizeof(m->chain_why), "%s", why);
    m->st->up->gave_up(m);
}

void pm_pcp_read(tallow_io *io, int fd, unsigned ev, void *ud)
{
    pm_map *m = ud;
    uint8_t buf[PCP_MAX_LEN + 4];
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (m->proto == PM_PCP) return; /* renewing: the next try will tell */
            /* ICMP port unreachable: nobody listens on 5351, NAT-PMP neither */
            char why[64];
            snprintf(why, sizeof(why), "pcp: %s", strerror(errno));
            pm_chain_failed(m, why);
            return;
        }
        pcp_reply rep;
        int d = pcp_decode_map(buf, (size_t)r, &rep);
        if (d == 1 && !m->proto) {
            if (m->protos & PM_NATPMP) {
                pm_log(m->st, TALLOW_LOG_DEBUG, "the gateway speaks NAT-PMP, not PCP");
                if (m->pcp_io) tallow_io_stop(m->pcp_io);
                m->pcp_io = NULL;
                pm_natpmp_start(m);
            } else {
                pm_chain_failed(m, "pcp: the gateway only speaks NAT-PMP");
            }
            return;
        }
        if (d != 0 || !pcp_matches(&m->pcp, &rep)) continue;
        if (rep.result != PCP_SUCCESS) {
            char why[64];
            snprintf(why, sizeof(why), "pcp: %s", pcp_result_str(rep.result));
            if (m->proto == PM_PCP) {
                pm_log(m->st, TALLOW_LOG_WARN, "renewal refused (%s)", why);
                return;
            }
            pm_chain_failed(m, why);
            return;
        }
        if (m->proto == PM_PCP) {
            if (m->retry) tallow_timer_stop(m->retry);
            m->retry = NULL;
            m->lifetime = rep.map.lifetime;
            pm_log(m->st, TALLOW_LOG_INFO, "renewed via pcp (port %u, lifetime %u s)",
                   rep.map.external_port, rep.map.lifetime);
            m->st->up->renewed(m);
            return;
        }
        if (m->proto) return; /* UPnP won meanwhile */
        if (m->retry) tallow_timer_stop(m->retry);
        m->retry = NULL;
        m->chain_done = 1;
        /* keep asking for this port on renewal */
        m->pcp.external_port = rep.map.external_port;
        m->pcp.external = rep.map.external;
        m->st->up->won(m, PM_PCP, rep.map.external, rep.map.external_port, rep.map.lifetime);
        return;
    }
}

int pm_pcp_start(pm_map *m)
{
    m->pcp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (m->pcp_fd < 0) return -errno;
    struct sockaddr_in gw = {.sin_family = AF_INET, .sin_port = htons(PCP_PORT), .sin_addr = m->gw};
    if (connect(m->pcp_fd, (struct sockaddr *)&gw, sizeof(gw)) != 0) return -errno;
    struct sockaddr_in me;
    socklen_t ml = sizeof(me);
    if (getsockname(m->pcp_fd, (struct sockaddr *)&me, &ml) != 0) return -errno;
    m->local = me.sin_addr;
    m->pcp_io = tallow_io_start(m->st->host->loop, m->pcp_fd, TALLOW_IO_READ, pm_pcp_read, m);
    if (!m->pcp_io) return TALLOW_ENOMEM;
    randombytes_buf(m->pcp.nonce, sizeof(m->pcp.nonce));
    m->pcp.protocol = PCP_PROTO_UDP;
    m->pcp.internal_port = m->port;
    m->pcp.external_port = m->port; /* a hint: the same port outside */
    return 0;
}

/* Retransmissions while the chain (or a PCP/NAT-PMP renewal) waits for its answer. */
void pm_retry(tallow_timer *t, void *ud)
{
    pm_map *m = ud;
    m->retry = NULL;
    int renewing = m->proto == PM_PCP || m->proto == PM_NATPMP;
    if (m->chain_done && !renewing) return;
    if (m->natpmp_open && m->natpmp_io)
        pm_natpmp_poll(m); /* libnatpmp resends once its own retry time passed */
    else if (m->pcp_io)
        pm_pcp_send(m, pm_lease());
    else
        return;
    if (m->retry || !(m->pcp_io || m->natpmp_io)) return;
    if (m->chain_done && m->proto != PM_PCP && m->proto != PM_NATPMP) return;
    unsigned d = PM_RETRY_MS << (m->pcp_tries < 4 ? m->pcp_tries : 4);
    m->pcp_tries++;
    m->retry = tallow_timer_start(m->st->host->loop, d, 0, pm_retry, m);
}

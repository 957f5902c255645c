/* plugins/gather-portmap/pm_natpmp.c — the NAT-PMP client (RFC 6886, libnatpmp): the public
 * address, then the UDP mapping; renewals answer here too. */
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

#define ENABLE_STRNATPMPERR 1
#include "portmap.h"

void pm_natpmp_poll(pm_map *m)
{
    natpmpresp_t r;
    int rc = readnatpmpresponseorretry(&m->natpmp, &r);
    if (rc == NATPMP_TRYAGAIN) return;
    if (rc < 0) {
        if (m->proto == PM_NATPMP) {
            pm_log(m->st, TALLOW_LOG_WARN, "renewal failed (%s)", strnatpmperr(rc));
            pm_stop_chain(m);
            pm_schedule_renew(m);
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
        pm_schedule_renew(m);
        return;
    }
    if (m->proto) return;
    pm_stop_chain(m);
    m->chain_done = 1;
    pm_won(m, PM_NATPMP, m->ext, r.pnu.newportmapping.mappedpublicport,
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

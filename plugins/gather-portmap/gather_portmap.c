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
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>
#include <miniupnpc/upnperrors.h>
#define ENABLE_STRNATPMPERR 1
#include <natpmp.h>
#include <sodium.h>
#include <tallow/tallow.h>

#include "pcp.h"

#define PM_GATHER_MS 1500 /* the gathering answers by then at the latest */
#define PM_UPNP_DISCOVER_MS 900
#define PM_RETRY_MS 250 /* PCP and NAT-PMP: first retransmission, doubling */
#define PM_DEFAULT_LEASE 3600
#define PM_MAX_SIG_STATES 8

enum { PM_PCP = 1, PM_NATPMP = 2, PM_UPNP = 4 };

static const char *proto_name(int p)
{
    return p == PM_PCP ? "pcp" : p == PM_NATPMP ? "natpmp" : p == PM_UPNP ? "upnp" : "none";
}

typedef struct pm_state pm_state;
typedef struct pm_map pm_map;

/* A UPnP job in its thread. The loop learns it finished through the pipe. */
typedef struct pm_job {
    pm_state *st;
    pm_map *m; /* NULL once the mapping it served went away */
    struct pm_job *next;
    pthread_t thread;
    int pipe[2];
    tallow_io *io;
    pthread_mutex_t mu;
    int cancel; /* under mu: do not add a mapping */
    /* in */
    int renew; /* 1: AddPortMapping again with the urls below (no discovery) */
    uint16_t port, ext_port;
    uint32_t lease;
    /* out */
    int ok, added;
    char why[96];
    struct UPNPUrls urls;
    struct IGDdatas data;
    char lanaddr[64], extip[40];
    uint32_t granted;
} pm_job;

struct pm_map {
    pm_state *st;
    pm_map *next;
    tallow_udp *udp;
    uint16_t port; /* the endpoint's port */
    struct in_addr gw, local;
    int protos; /* still allowed */
    uint64_t t0;
    /* the gathering */
    tallow_gather_cb cb;
    void *ud;
    int delivered, allow_loopback;
    tallow_timer *deadline;
    /* PCP and NAT-PMP on the gateway's port 5351 */
    int pcp_fd;
    tallow_io *pcp_io;
    pcp_map pcp;
    int pcp_tries;
    natpmp_t natpmp;
    int natpmp_open, natpmp_phase; /* 1 public address, 2 mapping, 3 renewing */
    tallow_io *natpmp_io;
    tallow_timer *retry;
    int chain_done; /* PCP/NAT-PMP gave up or won */
    char chain_why[96];
    /* UPnP */
    pm_job *job;
    int upnp_done;
    char upnp_why[96];
    struct UPNPUrls urls;
    struct IGDdatas data;
    int have_urls;
    char lanaddr[64];
    /* the mapping */
    int proto; /* PM_*, 0 none */
    struct in_addr ext;
    uint16_t ext_port;
    uint32_t lifetime;
    tallow_timer *renew;
};

struct pm_state {
    const tallow_host *host;
    pm_map *maps;
    pm_job *jobs; /* threads still running or not yet reaped */
    int sig_pipe[2];
    tallow_io *sig_io;
    int sig_slot; /* index in pm_sig_fds, or -1 */
};

/* The one piece of process-wide state: where a signal handler writes. A signal handler cannot
 * find a plugin's state any other way. */
static volatile sig_atomic_t pm_sig_fds[PM_MAX_SIG_STATES] = {-1, -1, -1, -1, -1, -1, -1, -1};
static struct sigaction pm_old_int, pm_old_term; /* restored when the last slot empties */

static void pm_log(pm_state *st, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void pm_log(pm_state *st, int level, const char *fmt, ...)
{
    char buf[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    st->host->log(st->host, level, "gather-portmap: %s", buf);
}

static uint32_t env_u32(const char *name, uint32_t def)
{
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end;
    unsigned long x = strtoul(v, &end, 10);
    return *end || x == 0 || x > 86400000ul ? def : (uint32_t)x;
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

/* ---- the signal path ---------------------------------------------------------------------- */

static void pm_on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    for (int i = 0; i < PM_MAX_SIG_STATES; i++)
        if (pm_sig_fds[i] >= 0) (void)!write(pm_sig_fds[i], &b, 1);
    errno = saved;
}

static void pm_delete_all(pm_state *st);

static void pm_sig_uninstall(pm_state *st)
{
    if (st->sig_slot < 0) return;
    pm_sig_fds[st->sig_slot] = -1;
    st->sig_slot = -1;
    int others = 0;
    for (int i = 0; i < PM_MAX_SIG_STATES; i++)
        others |= pm_sig_fds[i] >= 0;
    if (!others) {
        sigaction(SIGINT, &pm_old_int, NULL);
        sigaction(SIGTERM, &pm_old_term, NULL);
    }
}

static void pm_sig_read(tallow_io *io, int fd, unsigned ev, void *ud)
{
    pm_state *st = ud;
    unsigned char b = 0;
    if (read(fd, &b, 1) != 1) return;
    pm_log(st, TALLOW_LOG_INFO, "signal %d: deleting the port mappings", b);
    pm_delete_all(st);
    pm_sig_uninstall(st); /* the previous handlers again (the default: the process ends) */
    raise(b);
}

/* Installed while the state holds a mapping. A signal the process ignores stays ignored. */
static void pm_sig_install(pm_state *st)
{
    if (st->sig_slot >= 0) return;
    if (st->sig_pipe[0] < 0) {
        if (pipe2(st->sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return;
        st->sig_io =
            tallow_io_start(st->host->loop, st->sig_pipe[0], TALLOW_IO_READ, pm_sig_read, st);
    }
    int slot = -1, first = 1;
    for (int i = 0; i < PM_MAX_SIG_STATES; i++) {
        if (pm_sig_fds[i] >= 0)
            first = 0;
        else if (slot < 0)
            slot = i;
    }
    if (slot < 0) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = pm_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    struct sigaction cur;
    sigaction(SIGINT, NULL, &cur);
    if (cur.sa_handler == SIG_IGN) return;
    pm_sig_fds[slot] = st->sig_pipe[1];
    st->sig_slot = slot;
    if (first) {
        sigaction(SIGINT, &sa, &pm_old_int);
        sigaction(SIGTERM, &sa, &pm_old_term);
    } else {
    }
}

/* ---- results ------------------------------------------------------------------------------ */

static void pm_unlink(pm_map *m)
{
    for (pm_map **pp = &m->st->maps; *pp; pp = &(*pp)->next)
        if (*pp == m) {
            *pp = m->next;
            return;
        }
}

static void pm_stop_chain(pm_map *m)
{
    if (m->retry) tallow_timer_stop(m->retry);
    m->retry = NULL;
    if (m->pcp_io) tallow_io_stop(m->pcp_io);
    m->pcp_io = NULL;
    if (m->natpmp_io) tallow_io_stop(m->natpmp_io);
    m->natpmp_io = NULL;
}

static void pm_close_chain(pm_map *m)
{
    pm_stop_chain(m);
    if (m->pcp_fd >= 0) close(m->pcp_fd);
    m->pcp_fd = -1;
    if (m->natpmp_open) closenatpmp(&m->natpmp);
    m->natpmp_open = 0;
}

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

static void pm_schedule_renew(pm_map *m);

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

/* ---- PCP ----------------------------------------------------------------------------------- */

static uint32_t pm_lease(void)
{
    return env_u32("TALLOW_PORTMAP_LEASE", PM_DEFAULT_LEASE);
}

static void pcp_send(pm_map *m, uint32_t lifetime)
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

static void natpmp_start(pm_map *m);
static void pm_retry(tallow_timer *t, void *ud);

static void chain_failed(pm_map *m, const char *why)
{
    pm_stop_chain(m);
    m->chain_done = 1;
    snprintf(m->chain_why, sizeof(m->chain_why), "%s", why);
    pm_check_all_failed(m);
}

static void pcp_read(tallow_io *io, int fd, unsigned ev, void *ud)
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
            chain_failed(m, why);
            return;
        }
        pcp_reply rep;
        int d = pcp_decode_map(buf, (size_t)r, &rep);
        if (d == 1 && !m->proto) {
            if (m->protos & PM_NATPMP) {
                pm_log(m->st, TALLOW_LOG_DEBUG, "the gateway speaks NAT-PMP, not PCP");
                if (m->pcp_io) tallow_io_stop(m->pcp_io);
                m->pcp_io = NULL;
                natpmp_start(m);
            } else {
                chain_failed(m, "pcp: the gateway only speaks NAT-PMP");
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
            chain_failed(m, why);
            return;
        }
        if (m->proto == PM_PCP) {
            if (m->retry) tallow_timer_stop(m->retry);
            m->retry = NULL;
            m->lifetime = rep.map.lifetime;
            pm_log(m->st, TALLOW_LOG_INFO, "renewed via pcp (port %u, lifetime %u s)",
                   rep.map.external_port, rep.map.lifetime);
            pm_schedule_renew(m);
            return;
        }
        if (m->proto) return; /* UPnP won meanwhile */
        if (m->retry) tallow_timer_stop(m->retry);
        m->retry = NULL;
        m->chain_done = 1;
        /* keep asking for this port on renewal */
        m->pcp.external_port = rep.map.external_port;
        m->pcp.external = rep.map.external;
        pm_won(m, PM_PCP, rep.map.external, rep.map.external_port, rep.map.lifetime);
        return;
    }
}

static int pcp_start(pm_map *m)
{
    m->pcp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (m->pcp_fd < 0) return -1;
    struct sockaddr_in gw = {.sin_family = AF_INET, .sin_port = htons(PCP_PORT), .sin_addr = m->gw};
    if (connect(m->pcp_fd, (struct sockaddr *)&gw, sizeof(gw)) != 0) return -1;
    struct sockaddr_in me;
    socklen_t ml = sizeof(me);
    if (getsockname(m->pcp_fd, (struct sockaddr *)&me, &ml) != 0) return -1;
    m->local = me.sin_addr;
    m->pcp_io = tallow_io_start(m->st->host->loop, m->pcp_fd, TALLOW_IO_READ, pcp_read, m);
    if (!m->pcp_io) return -1;
    randombytes_buf(m->pcp.nonce, sizeof(m->pcp.nonce));
    m->pcp.protocol = PCP_PROTO_UDP;
    m->pcp.internal_port = m->port;
    m->pcp.external_port = m->port; /* a hint: the same port outside */
    return 0;
}

/* ---- NAT-PMP (libnatpmp) ------------------------------------------------------------------ */

static void natpmp_poll(pm_map *m)
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
        chain_failed(m, why);
        return;
    }
    if (r.type == NATPMP_RESPTYPE_PUBLICADDRESS && m->natpmp_phase == 1) {
        m->ext = r.pnu.publicaddress.addr;
        m->natpmp_phase = 2;
        if (sendnewportmappingrequest(&m->natpmp, NATPMP_PROTOCOL_UDP, m->port, m->port,
                                      pm_lease()) < 0)
            chain_failed(m, "natpmp: send failed");
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

static void natpmp_read(tallow_io *io, int fd, unsigned ev, void *ud)
{
    natpmp_poll(ud);
}

static void natpmp_start(pm_map *m)
{
    if (initnatpmp(&m->natpmp, 1, m->gw.s_addr) < 0) {
        chain_failed(m, "natpmp: no socket");
        return;
    }
    m->natpmp_open = 1;
    m->natpmp_phase = 1;
    m->natpmp_io = tallow_io_start(m->st->host->loop, m->natpmp.s, TALLOW_IO_READ, natpmp_read, m);
    if (!m->natpmp_io || sendpublicaddressrequest(&m->natpmp) < 0) {
        chain_failed(m, "natpmp: send failed");
        return;
    }
    if (!m->retry) m->retry = tallow_timer_start(m->st->host->loop, PM_RETRY_MS, 0, pm_retry, m);
}

/* Retransmissions while the chain (or a PCP/NAT-PMP renewal) waits for its answer. */
static void pm_retry(tallow_timer *t, void *ud)
{
    pm_map *m = ud;
    m->retry = NULL;
    int renewing = m->proto == PM_PCP || m->proto == PM_NATPMP;
    if (m->chain_done && !renewing) return;
    if (m->natpmp_open && m->natpmp_io)
        natpmp_poll(m); /* libnatpmp resends once its own retry time passed */
    else if (m->pcp_io)
        pcp_send(m, pm_lease());
    else
        return;
    if (m->retry || !(m->pcp_io || m->natpmp_io)) return;
    if (m->chain_done && m->proto != PM_PCP && m->proto != PM_NATPMP) return;
    unsigned d = PM_RETRY_MS << (m->pcp_tries < 4 ? m->pcp_tries : 4);
    m->pcp_tries++;
    m->retry = tallow_timer_start(m->st->host->loop, d, 0, pm_retry, m);
}

/* ---- UPnP (a thread per job) -------------------------------------------------------------- */

static void *upnp_thread(void *arg)
{
    pm_job *j = arg;
    char port[8], ext[8], lease[16];
    snprintf(port, sizeof(port), "%u", j->port);
    snprintf(lease, sizeof(lease), "%u", j->lease);
    if (!j->renew) {
        int err = 0;
        /* both IGD versions in one round (upnpDiscover tries four types one after another,
         * four times the delay when nobody answers) */
        static const char *const types[] = {"urn:schemas-upnp-org:device:InternetGatewayDevice:1",
                                            "urn:schemas-upnp-org:device:InternetGatewayDevice:2",
                                            NULL};
        struct UPNPDev *devs =
            upnpDiscoverDevices(types, PM_UPNP_DISCOVER_MS, NULL, NULL, 0, 0, 2, &err, 1);
        if (!devs) {
            snprintf(j->why, sizeof(j->why), "upnp: no IGD answered discovery");
            goto done;
        }
        /* 1: connected IGD; 2: an IGD that calls itself not connected (behind another NAT, or
         * with a reserved external address): its mapping still opens this NAT, accept it */
        int r = UPNP_GetValidIGD(devs, &j->urls, &j->data, j->lanaddr, sizeof(j->lanaddr));
        freeUPNPDevlist(devs);
        if (r != 1 && r != 2) {
            if (r) FreeUPNPUrls(&j->urls);
            memset(&j->urls, 0, sizeof(j->urls));
            snprintf(j->why, sizeof(j->why), "upnp: no internet gateway device");
            goto done;
        }
        if (UPNP_GetExternalIPAddress(j->urls.controlURL, j->data.first.servicetype, j->extip) !=
                0 ||
            !j->extip[0]) {
            snprintf(j->why, sizeof(j->why), "upnp: no external address");
            goto done;
        }
        j->ok = 1; /* the urls are held from here */
    }
    /* the same port outside first, then a few others */
    for (int i = 0; i < 4; i++) {
        pthread_mutex_lock(&j->mu);
        int cancel = j->cancel;
        pthread_mutex_unlock(&j->mu);
        if (cancel) {
            snprintf(j->why, sizeof(j->why), "upnp: cancelled");
            goto done;
        }
        uint16_t want = j->renew || i == 0 ? (j->ext_port ? j->ext_port : j->port)
                                           : (uint16_t)(1024 + randombytes_uniform(64511));
        snprintf(ext, sizeof(ext), "%u", want);
        int r = UPNP_AddPortMapping(j->urls.controlURL, j->data.first.servicetype, ext, port,
                                    j->lanaddr, "tallow", "UDP", NULL, lease);
        if (r == 725) { /* OnlyPermanentLeasesSupported */
            r = UPNP_AddPortMapping(j->urls.controlURL, j->data.first.servicetype, ext, port,
                                    j->lanaddr, "tallow", "UDP", NULL, "0");
            if (r == 0) j->granted = 0;
        } else if (r == 0) {
            j->granted = j->lease;
        }
        if (r == 0) {
            j->added = 1;
            j->ext_port = want;
            goto done;
        }
        snprintf(j->why, sizeof(j->why), "upnp: AddPortMapping %d (%s)", r, strupnperror(r));
        if (j->renew) break;
    }
done:
    (void)!write(j->pipe[1], "x", 1);
    return NULL;
}

static void upnp_delete(pm_state *st, struct UPNPUrls *urls, struct IGDdatas *data,
                        uint16_t ext_port)
{
    char ext[8];
    snprintf(ext, sizeof(ext), "%u", ext_port);
    int r = UPNP_DeletePortMapping(urls->controlURL, data->first.servicetype, ext, "UDP", NULL);
    pm_log(st, r == 0 ? TALLOW_LOG_INFO : TALLOW_LOG_WARN, "deleted the upnp mapping of port %s%s",
           ext, r == 0 ? "" : " (failed)");
}

static void job_free(pm_job *j)
{
    for (pm_job **pp = &j->st->jobs; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    if (j->io) tallow_io_stop(j->io);
    close(j->pipe[0]);
    close(j->pipe[1]);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

/* The job's thread finished: join it and take its result (on the loop). */
static void job_reap(pm_job *j)
{
    pthread_join(j->thread, NULL);
    pm_map *m = j->m;
    pm_state *st = j->st;
    if (!m) {
        /* nobody wants it any more: undo what it did */
        if (j->added && !j->renew) upnp_delete(st, &j->urls, &j->data, j->ext_port);
        if (j->ok && !j->renew) FreeUPNPUrls(&j->urls);
        job_free(j);
        return;
    }
    m->job = NULL;
    if (j->renew) {
        if (j->added) {
            m->lifetime = j->granted;
            pm_log(st, TALLOW_LOG_INFO, "renewed via upnp (port %u, lifetime %u s)", m->ext_port,
                   m->lifetime);
        } else {
            pm_log(st, TALLOW_LOG_WARN, "renewal failed (%s)", j->why);
        }
        job_free(j);
        pm_schedule_renew(m);
        return;
    }
    if (j->ok) {
        m->urls = j->urls;
        m->data = j->data;
        m->have_urls = 1;
        snprintf(m->lanaddr, sizeof(m->lanaddr), "%s", j->lanaddr);
    }
    struct in_addr ext;
    int good = j->added && inet_pton(AF_INET, j->extip, &ext) == 1;
    if (j->added && (!good || m->proto)) {
        /* a late or useless mapping; keep none we do not offer (one rule shared with a PCP or
         * NAT-PMP mapping of the same port is left to that protocol) */
        if (!m->proto || m->ext_port != j->ext_port)
            upnp_delete(st, &m->urls, &m->data, j->ext_port);
        if (!good) snprintf(j->why, sizeof(j->why), "upnp: external address '%s'", j->extip);
    }
    m->upnp_done = 1;
    if (good && !m->proto) {
        snprintf(m->upnp_why, sizeof(m->upnp_why), "granted");
        uint16_t port = j->ext_port;
        uint32_t granted = j->granted;
        job_free(j);
        pm_won(m, PM_UPNP, ext, port, granted);
        return;
    }
    if (!m->upnp_why[0]) snprintf(m->upnp_why, sizeof(m->upnp_why), "%s", j->why);
    job_free(j);
    pm_check_all_failed(m);
}

static void job_read(tallow_io *io, int fd, unsigned ev, void *ud)
{
    char b;
    if (read(fd, &b, 1) != 1) return;
    job_reap(ud);
}

static pm_job *job_start(pm_map *m, int renew)
{
    pm_state *st = m->st;
    pm_job *j = calloc(1, sizeof(*j));
    if (!j) return NULL;
    j->st = st;
    j->m = m;
    j->renew = renew;
    j->port = m->port;
    j->ext_port = renew ? m->ext_port : 0;
    j->lease = pm_lease();
    if (renew) {
        j->urls = m->urls; /* borrowed from the map for the call */
        j->data = m->data;
        snprintf(j->lanaddr, sizeof(j->lanaddr), "%s", m->lanaddr);
    }
    if (pipe2(j->pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        free(j);
        return NULL;
    }
    pthread_mutex_init(&j->mu, NULL);
    j->next = st->jobs;
    st->jobs = j;
    j->io = tallow_io_start(st->host->loop, j->pipe[0], TALLOW_IO_READ, job_read, j);
    /* the thread must not take the process's signals: they belong to the loop's thread */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = j->io ? pthread_create(&j->thread, NULL, upnp_thread, j) : -1;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        job_free(j);
        return NULL;
    }
    return j;
}

/* ---- renewal and deletion ----------------------------------------------------------------- */

static void pm_renew(tallow_timer *t, void *ud)
{
    pm_map *m = ud;
    m->renew = NULL;
    if (m->proto == PM_PCP) {
        if (!m->pcp_io)
            m->pcp_io = tallow_io_start(m->st->host->loop, m->pcp_fd, TALLOW_IO_READ, pcp_read, m);
        m->pcp_tries = 0;
        pcp_send(m, pm_lease());
        m->retry = tallow_timer_start(m->st->host->loop, PM_RETRY_MS, 0, pm_retry, m);
    } else if (m->proto == PM_NATPMP) {
        if (!m->natpmp_io)
            m->natpmp_io =
                tallow_io_start(m->st->host->loop, m->natpmp.s, TALLOW_IO_READ, natpmp_read, m);
        m->natpmp_phase = 3;
        sendnewportmappingrequest(&m->natpmp, NATPMP_PROTOCOL_UDP, m->port, m->ext_port,
                                  pm_lease());
        m->pcp_tries = 0;
        m->retry = tallow_timer_start(m->st->host->loop, PM_RETRY_MS, 0, pm_retry, m);
    } else if (m->proto == PM_UPNP && !m->job) {
        m->job = job_start(m, 1);
    }
}

static void pm_schedule_renew(pm_map *m)
{
    if (m->renew) tallow_timer_stop(m->renew);
    m->renew = NULL;
    uint64_t ms = m->lifetime ? (uint64_t)m->lifetime * 1000 / 2 : 0;
    uint32_t force = env_u32("TALLOW_PORTMAP_RENEW_MS", 0);
    if (force && (!ms || force < ms)) ms = force;
    if (!ms) return; /* a permanent UPnP lease */
    if (ms < 1000 && !force) ms = 1000;
    m->renew = tallow_timer_start(m->st->host->loop, ms, 0, pm_renew, m);
}

/* Deletes the mapping (if any) and frees everything of m. Blocks for UPnP's one request. */
static void pm_map_free(pm_map *m)
{
    pm_state *st = m->st;
    pm_unlink(m);
    if (m->deadline) tallow_timer_stop(m->deadline);
    if (m->renew) tallow_timer_stop(m->renew);
    pm_stop_chain(m);
    if (m->job) {
        pthread_mutex_lock(&m->job->mu);
        m->job->cancel = 1;
        m->job->m = NULL; /* its reap deletes what it added */
        pthread_mutex_unlock(&m->job->mu);
        if (m->job->renew) { /* it borrows our urls: wait for it */
            pthread_join(m->job->thread, NULL);
            m->job->renew = 0;
            m->job->added = 0;
            m->job->ok = 0;
            job_free(m->job);
        }
        m->job = NULL;
    }
    if (m->proto == PM_PCP && m->pcp_fd >= 0) {
        pcp_send(m, 0);
        pcp_send(m, 0);
        pm_log(st, TALLOW_LOG_INFO, "deleted the pcp mapping of port %u", m->ext_port);
    } else if (m->proto == PM_NATPMP && m->natpmp_open) {
        sendnewportmappingrequest(&m->natpmp, NATPMP_PROTOCOL_UDP, m->port, 0, 0);
        pm_log(st, TALLOW_LOG_INFO, "deleted the natpmp mapping of port %u", m->ext_port);
    } else if (m->proto == PM_UPNP && m->have_urls) {
        upnp_delete(st, &m->urls, &m->data, m->ext_port);
    }
    if (m->have_urls) FreeUPNPUrls(&m->urls);
    pm_close_chain(m);
    free(m);
}

static void pm_delete_all(pm_state *st)
{
    for (pm_map *m = st->maps; m; m = m->next) {
        if (!m->proto) continue;
        if (m->renew) tallow_timer_stop(m->renew);
        m->renew = NULL;
        if (m->proto == PM_PCP && m->pcp_fd >= 0) {
            pcp_send(m, 0);
            pcp_send(m, 0);
        } else if (m->proto == PM_NATPMP && m->natpmp_open) {
            sendnewportmappingrequest(&m->natpmp, NATPMP_PROTOCOL_UDP, m->port, 0, 0);
        } else if (m->proto == PM_UPNP && m->have_urls && !m->job) {
            upnp_delete(st, &m->urls, &m->data, m->ext_port);
        }
        m->proto = 0;
    }
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
        if (pcp_start(m) == 0) {
            pcp_send(m, pm_lease());
            m->retry = tallow_timer_start(st->host->loop, PM_RETRY_MS, 0, pm_retry, m);
        } else {
            chain_failed(m, "pcp: no socket");
        }
    } else if (m->protos & PM_NATPMP) {
        natpmp_start(m);
    } else {
        m->chain_done = 1;
        snprintf(m->chain_why, sizeof(m->chain_why), "off");
    }
    if (m->protos & PM_UPNP) {
        m->job = job_start(m, 0);
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

static int pm_init(const tallow_host *host, void **state_out)
{
    pm_state *st = calloc(1, sizeof(*st));
    if (!st) return TALLOW_ENOMEM;
    st->host = host;
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
 * without a callback; UPnP threads are waited for (each is bounded by its discovery time and
 * the library's HTTP timeouts). */
static void pm_fini(void *state)
{
    pm_state *st = state;
    if (!st) return;
    while (st->maps)
        pm_map_free(st->maps);
    while (st->jobs) {
        pm_job *j = st->jobs;
        pthread_join(j->thread, NULL);
        j->m = NULL;
        if (j->added && !j->renew) upnp_delete(st, &j->urls, &j->data, j->ext_port);
        if (j->ok && !j->renew) FreeUPNPUrls(&j->urls);
        job_free(j);
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

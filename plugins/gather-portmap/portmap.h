/* plugins/gather-portmap/portmap.h — what the gather-portmap plugin's files share: a mapping
 * request (pm_map) and its protocols' state, the UPnP jobs, the plugin state, and the functions
 * each file offers the others. The files, bottom first (each calls only the ones before it):
 * pm_util.c (log lines, environment settings); pm_chain.c (PCP, then NAT-PMP, on the gateway's
 * port 5351) and pm_upnp.c (UPnP IGD, a thread per job), which report their results up through
 * pm_up; pm_lease.c (renewal, deletion, the signal path); gather_portmap.c (the gatherer: starting
 * a request, delivering its candidate, the plugin's entry points). */
#ifndef TALLOW_PLUGIN_PORTMAP_H
#define TALLOW_PLUGIN_PORTMAP_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>

#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>
#include <natpmp.h>
#include <tallow/tallow.h>

#include "pcp.h"

#define PM_GATHER_MS 1500 /* the gathering answers by then at the latest */
#define PM_UPNP_DISCOVER_MS 900
#define PM_RETRY_MS 250 /* PCP and NAT-PMP: first retransmission, doubling */
#define PM_DEFAULT_LEASE 3600
#define PM_MAX_SIG_STATES 8

enum { PM_PCP = 1, PM_NATPMP = 2, PM_UPNP = 4 };

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
    int done;   /* under mu: the thread finished its requests */
    int orphan; /* under mu: the plugin went away first; the thread undoes and frees the job */
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

/* What the protocol clients (pm_chain.c, pm_upnp.c) report to the layers above them, which they
 * do not call by name; pm_init (gather_portmap.c) sets it. */
typedef struct pm_up {
    /* a protocol granted a mapping: the others stop, renewal is scheduled, the candidate goes */
    void (*won)(pm_map *m, int proto, struct in_addr ext, uint16_t ext_port, uint32_t life);
    /* a protocol gave up: "no mapping" is delivered once every one has */
    void (*gave_up)(pm_map *m);
    /* a renewal was answered (or failed): the next one is scheduled */
    void (*renewed)(pm_map *m);
} pm_up;

struct pm_state {
    const pm_up *up;
    const tallow_host *host;
    pm_map *maps;
    pm_job *jobs; /* threads still running or not yet reaped */
    int sig_pipe[2];
    tallow_io *sig_io;
    int sig_slot; /* index in pm_sig_fds, or -1 */
};

/* pm_util.c */
void pm_log(pm_state *st, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A positive number from the environment (at most 86400000), or def. */
uint32_t pm_env_u32(const char *name, uint32_t def);
/* The lifetime asked for (TALLOW_PORTMAP_LEASE, default PM_DEFAULT_LEASE seconds). */
uint32_t pm_lease(void);

/* pm_chain.c: PCP on the gateway's port 5351, then NAT-PMP there (the chain) */
/* Opens the socket toward the gateway and prepares the MAP request. 0 or -1. */
int pm_pcp_start(pm_map *m);
/* Sends the MAP request with this lifetime (0: delete). */
void pm_pcp_send(pm_map *m, uint32_t lifetime);
void pm_pcp_read(tallow_io *io, int fd, unsigned ev, void *ud);
/* NAT-PMP instead of PCP (a gateway that answers PCP in NAT-PMP's version 0, or PCP off). */
void pm_natpmp_start(pm_map *m);
void pm_natpmp_read(tallow_io *io, int fd, unsigned ev, void *ud);
/* The chain gave up (why): stops it, and delivers if UPnP gave up too. */
void pm_chain_failed(pm_map *m, const char *why);
/* Stops the chain's watchers and timer; closing also closes its sockets. */
void pm_stop_chain(pm_map *m);
void pm_close_chain(pm_map *m);
/* Retransmissions while the chain (or a PCP/NAT-PMP renewal) waits for its answer. */
void pm_retry(tallow_timer *t, void *ud);

/* pm_upnp.c */
/* A UPnP job for m in its own thread: discovery and AddPortMapping, or (renew) AddPortMapping
 * again with m's urls. NULL if it could not start. */
pm_job *pm_job_start(pm_map *m, int renew);
void pm_job_free(pm_job *j);
/* Undoes what a finished first-time job did (deletes its mapping, frees its urls); nothing for a
 * renewal. st NULL: no log line (the plugin is gone). */
void pm_job_undo(pm_job *j, pm_state *st);
/* At unloading: a first-time job (not a renewal) whose thread still runs is cancelled, taken off
 * the list and detached; the thread then undoes and frees it. 1 if so, 0 if it must be joined. */
int pm_job_orphan(pm_job *j);
/* Deletes a UPnP mapping (blocking: one request); logs it unless st is NULL. */
void pm_upnp_delete(pm_state *st, struct UPNPUrls *urls, struct IGDdatas *data, uint16_t ext_port);

/* pm_lease.c */
/* Takes m off its state's list. */
void pm_unlink(pm_map *m);
/* Renewal at half the granted lifetime (or TALLOW_PORTMAP_RENEW_MS). */
void pm_schedule_renew(pm_map *m);
/* Deletes the mapping (if any) and frees everything of m. Blocks for UPnP's one request. */
void pm_map_free(pm_map *m);
/* Deletes every mapping of the state (on a signal). */
void pm_delete_all(pm_state *st);
/* SIGINT/SIGTERM delete the mappings first: installed while the state holds a mapping. */
void pm_sig_install(pm_state *st);
void pm_sig_uninstall(pm_state *st);

#endif

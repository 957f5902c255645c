/* plugins/gather-portmap/pm_upnp.c — the UPnP IGD client (libminiupnpc): its library blocks, so
 * each request runs in a thread of its own (a job: SSDP discovery, then AddPortMapping, or a
 * renewal), which tells the loop through a pipe that it finished; the loop takes the result. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <miniupnpc/upnperrors.h>
#include <sodium.h>

#include "portmap.h"

/* Off the plugin's list of jobs, and no longer watched by the loop. */
static void job_unlink(pm_job *j)
{
    for (pm_job **pp = &j->st->jobs; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    if (j->io) tallow_io_stop(j->io);
    j->io = NULL;
}

static void job_release(pm_job *j)
{
    close(j->pipe[0]);
    close(j->pipe[1]);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

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
    pthread_mutex_lock(&j->mu);
    j->done = 1;
    int orphan = j->orphan;
    pthread_mutex_unlock(&j->mu);
    if (!orphan) {
        (void)!write(j->pipe[1], "x", 1);
        return NULL;
    }
    /* nobody reaps it: undo what it did (it was cancelled before, so this is a mapping added
     * just then) and free it; no logging, the plugin's state is gone */
    pm_job_undo(j, NULL);
    job_release(j);
    return NULL;
}

/* This plugin's code must outlive its unloading while an orphaned thread runs it: the library
 * pins itself (RTLD_NODELETE) the first time that happens. */
static void pin_self(void)
{
    static int pinned;
    Dl_info info;
    if (pinned || !dladdr(&pinned, &info) || !info.dli_fname) return;
    pinned = dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE | RTLD_NOLOAD) != NULL;
}

int pm_job_orphan(pm_job *j)
{
    if (j->renew) return 0; /* it borrows a mapping's urls: wait for it */
    pthread_mutex_lock(&j->mu);
    int running = !j->done;
    if (running) {
        pin_self();
        j->cancel = 1;
        j->orphan = 1;
        j->m = NULL;
    }
    pthread_mutex_unlock(&j->mu);
    if (!running) return 0;
    job_unlink(j);
    pthread_detach(j->thread);
    return 1;
}

void pm_upnp_delete(pm_state *st, struct UPNPUrls *urls, struct IGDdatas *data, uint16_t ext_port)
{
    char ext[8];
    snprintf(ext, sizeof(ext), "%u", ext_port);
    int r = UPNP_DeletePortMapping(urls->controlURL, data->first.servicetype, ext, "UDP", NULL);
    if (st)
        pm_log(st, r == 0 ? TALLOW_LOG_INFO : TALLOW_LOG_WARN,
               "deleted the upnp mapping of port %s%s", ext, r == 0 ? "" : " (failed)");
}

void pm_job_free(pm_job *j)
{
    job_unlink(j);
    job_release(j);
}

void pm_job_undo(pm_job *j, pm_state *st)
{
    if (j->renew) return; /* a renewal's urls and mapping are its map's */
    if (j->added) pm_upnp_delete(st, &j->urls, &j->data, j->ext_port);
    if (j->ok) FreeUPNPUrls(&j->urls);
}

/* The job's thread finished: join it and take its result (on the loop). */
static void job_reap(pm_job *j)
{
    pthread_join(j->thread, NULL);
    pm_map *m = j->m;
    pm_state *st = j->st;
    if (!m) {
        pm_job_undo(j, st); /* nobody wants it any more */
        pm_job_free(j);
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
        pm_job_free(j);
        st->up->renewed(m);
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
            pm_upnp_delete(st, &m->urls, &m->data, j->ext_port);
        if (!good) snprintf(j->why, sizeof(j->why), "upnp: external address '%s'", j->extip);
    }
    m->upnp_done = 1;
    if (good && !m->proto) {
        snprintf(m->upnp_why, sizeof(m->upnp_why), "granted");
        uint16_t port = j->ext_port;
        uint32_t granted = j->granted;
        pm_job_free(j);
        st->up->won(m, PM_UPNP, ext, port, granted);
        return;
    }
    if (!m->upnp_why[0]) snprintf(m->upnp_why, sizeof(m->upnp_why), "%s", j->why);
    pm_job_free(j);
    st->up->gave_up(m);
}

static void job_read(tallow_io *io, int fd, unsigned ev, void *ud)
{
    char b;
    if (read(fd, &b, 1) != 1) return;
    job_reap(ud);
}

pm_job *pm_job_start(pm_map *m, int renew)
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
        pm_job_free(j);
        return NULL;
    }
    return j;
}

/* plugins/gather-portmap/pm_lease.c — a granted mapping's lease: renewal at half its lifetime,
 * deletion when the endpoint is released or the plugin unloaded, and on SIGINT/SIGTERM (the
 * handler only wakes the loop, which deletes, restores the previous handler and raises the
 * signal again). */
#include <arpa/inet.h>
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

#include "portmap.h"

/* The one piece of process-wide state: where a signal handler writes. A signal handler cannot
 * find a plugin's state any other way. */
static volatile sig_atomic_t pm_sig_fds[PM_MAX_SIG_STATES] = {-1, -1, -1, -1, -1, -1, -1, -1};
static struct sigaction pm_old_int, pm_old_term; /* restored when the last slot empties */

static void pm_on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    for (int i = 0; i < PM_MAX_SIG_STATES; i++)
        if (pm_sig_fds[i] >= 0) (void)!write(pm_sig_fds[i], &b, 1);
    errno = saved;
}

void pm_sig_uninstall(pm_state *st)
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
void pm_sig_install(pm_state *st)
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

static void pm_renew(tallow_timer *t, void *ud)
{
    pm_map *m = ud;
    m->renew = NULL;
    if (m->proto == PM_PCP) {
        if (!m->pcp_io)
            m->pcp_io =
                tallow_io_start(m->st->host->loop, m->pcp_fd, TALLOW_IO_READ, pm_pcp_read, m);
        m->pcp_tries = 0;
        pm_pcp_send(m, pm_lease());
        m->retry = tallow_timer_start(m->st->host->loop, PM_RETRY_MS, 0, pm_retry, m);
    } else if (m->proto == PM_NATPMP) {
        if (!m->natpmp_io)
            m->natpmp_io =
                tallow_io_start(m->st->host->loop, m->natpmp.s, TALLOW_IO_READ, pm_natpmp_read, m);
        m->natpmp_phase = 3;
        sendnewportmappingrequest(&m->natpmp, NATPMP_PROTOCOL_UDP, m->port, m->ext_port,
                                  pm_lease());
        m->pcp_tries = 0;
        m->retry = tallow_timer_start(m->st->host->loop, PM_RETRY_MS, 0, pm_retry, m);
    } else if (m->proto == PM_UPNP && !m->job) {
        m->job = pm_job_start(m, 1);
    }
}

void pm_schedule_renew(pm_map *m)
{
    if (m->renew) tallow_timer_stop(m->renew);
    m->renew = NULL;
    uint64_t ms = m->lifetime ? (uint64_t)m->lifetime * 1000 / 2 : 0;
    uint32_t force = pm_env_u32("TALLOW_PORTMAP_RENEW_MS", 0);
    if (force && (!ms || force < ms)) ms = force;
    if (!ms) return; /* a permanent UPnP lease */
    if (ms < 1000 && !force) ms = 1000;
    m->renew = tallow_timer_start(m->st->host->loop, ms, 0, pm_renew, m);
}

void pm_unlink(pm_map *m)
{
    for (pm_map **pp = &m->st->maps; *pp; pp = &(*pp)->next)
        if (*pp == m) {
            *pp = m->next;
            return;
        }
}

/* Deletes the mapping (if any) and frees everything of m. Blocks for UPnP's one request. */
void pm_map_free(pm_map *m)
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
            pm_job_free(m->job);
        }
        m->job = NULL;
    }
    if (m->proto == PM_PCP && m->pcp_fd >= 0) {
        pm_pcp_send(m, 0);
        pm_pcp_send(m, 0);
        pm_log(st, TALLOW_LOG_INFO, "deleted the pcp mapping of port %u", m->ext_port);
    } else if (m->proto == PM_NATPMP && m->natpmp_open) {
        sendnewportmappingrequest(&m->natpmp, NATPMP_PROTOCOL_UDP, m->port, 0, 0);
        pm_log(st, TALLOW_LOG_INFO, "deleted the natpmp mapping of port %u", m->ext_port);
    } else if (m->proto == PM_UPNP && m->have_urls) {
        pm_upnp_delete(st, &m->urls, &m->data, m->ext_port);
    }
    if (m->have_urls) FreeUPNPUrls(&m->urls);
    pm_close_chain(m);
    free(m);
}

void pm_delete_all(pm_state *st)
{
    for (pm_map *m = st->maps; m; m = m->next) {
        if (!m->proto) continue;
        if (m->renew) tallow_timer_stop(m->renew);
        m->renew = NULL;
        if (m->proto == PM_PCP && m->pcp_fd >= 0) {
            pm_pcp_send(m, 0);
            pm_pcp_send(m, 0);
        } else if (m->proto == PM_NATPMP && m->natpmp_open) {
            sendnewportmappingrequest(&m->natpmp, NATPMP_PROTOCOL_UDP, m->port, 0, 0);
        } else if (m->proto == PM_UPNP && m->have_urls && !m->job) {
            pm_upnp_delete(st, &m->urls, &m->data, m->ext_port);
        }
        m->proto = 0;
    }
}

/* plugins/relay/relay_metrics.c — the relay's counters in Prometheus' text exposition format
 * (version 0.0.4), served over plain HTTP on their own address (`tallow relay --metrics
 * 127.0.0.1:9464`): GET /metrics answers, anything else is 404, one request per connection, at
 * most RELAY_METRICS_CONNS connections at a time, each closed after RELAY_METRICS_DEADLINE_MS.
 * Nothing in it names a room, an address or a password: counts only. */
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay_srv.h"

#define RELAY_METRICS_CONNS 16
#define RELAY_METRICS_DEADLINE_MS 5000
#define RELAY_METRICS_REQ_MAX 4096

typedef struct mconn {
    struct mconn *next;
    relay_metrics *m;
    int fd;
    tallow_io *io;
    uint64_t deadline;
    char req[RELAY_METRICS_REQ_MAX];
    size_t rlen;
    char *resp;
    size_t resp_len, resp_off;
} mconn;

struct relay_metrics {
    relay_srv *srv;
    int fd;
    tallow_io *io;
    uint16_t port;
    mconn *conns;
    int nconns;
    uint64_t scrapes;
};

/* ---- counting */

static const struct {
    const char *reason; /* RELAY_R_* sent to the client */
    const char *label;
    int limit; /* the limit behind it, or -1 */
} refusals[RR_COUNT] = {
    [RR_FULL] = {RELAY_R_FULL, "room_full", -1},
    [RR_PASSWORD] = {RELAY_R_PASSWORD, "wrong_password", -1},
    [RR_IPROOMS] = {RELAY_R_IPROOMS, "rooms_per_ip", RL_MAX_ROOMS_PER_IP},
    [RR_ROOMS] = {RELAY_R_ROOMS, "max_rooms", RL_MAX_ROOMS},
    [RR_JOINTIMEOUT] = {RELAY_R_JOINTIMEOUT, "join_timeout", RL_JOIN_TIMEOUT},
    [RR_FRAME] = {RELAY_R_FRAME, "frame_too_large", RL_MAX_FRAME},
    [RR_PROTO] = {RELAY_R_PROTO, "protocol_error", -1},
    [RR_NOPEER] = {RELAY_R_NOPEER, "data_before_peer", -1},
    [RR_VERSION] = {RELAY_R_VERSION, "version", -1},
    [RR_CAPACITY] = {RELAY_R_CAPACITY, "capacity", RL_MAX_PEERS},
    [RR_RESUME] = {RELAY_R_RESUME, "unknown_resume_token", -1},
    [RR_IPCONNS] = {NULL, "conns_per_ip", RL_MAX_CONNS_PER_IP}, /* closed at accept() */
    [RR_DRAINING] = {RELAY_R_SHUTDOWN, "draining", -1},
    [RR_PLAIN_ON_TLS] = {NULL, "plain_on_tls", -1},
    [RR_TLS_HANDSHAKE] = {NULL, "tls_handshake", -1},
    [RR_JOINRATE] = {RELAY_R_JOINRATE, "join_rate", -1},
    [RR_SLOT] = {RELAY_R_SLOT, "slot_taken", -1},
    [RR_OTHER] = {NULL, "other", -1},
};

static const char *const limit_labels[RL_COUNT] = {
    [RL_MAX_ROOMS] = "max_rooms",
    [RL_MAX_ROOMS_PER_IP] = "max_rooms_per_ip",
    [RL_MAX_CONNS_PER_IP] = "max_conns_per_ip",
    [RL_MAX_PEERS] = "max_peers",
    [RL_MAX_FRAME] = "max_frame",
    [RL_JOIN_TIMEOUT] = "join_timeout",
    [RL_ROOM_TIMEOUT] = "room_timeout",
    [RL_UNPAIRED_TIMEOUT] = "unpaired_timeout",
    [RL_QUEUE_HIGH] = "queue_high",
};

void relay_count_limit(relay_srv *s, enum relay_limit l)
{
    if ((unsigned)l < RL_COUNT) s->ctr.limits[l]++;
}

void relay_count_refused(relay_srv *s, enum relay_refusal i)
{
    if ((unsigned)i >= RR_COUNT) i = RR_OTHER;
    s->ctr.refused[i]++;
    if (refusals[i].limit >= 0) relay_count_limit(s, (enum relay_limit)refusals[i].limit);
}

void relay_count_refusal(relay_srv *s, const char *reason)
{
    int i = RR_OTHER;
    for (int j = 0; j < RR_OTHER; j++)
        if (reason && refusals[j].reason && strcmp(reason, refusals[j].reason) == 0) {
            i = j;
            break;
        }
    relay_count_refused(s, (enum relay_refusal)i);
}

/* ---- the text */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 8192;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

static void family(sbuf *b, const char *name, const char *type, const char *help)
{
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric(sbuf *b, const char *name, const char *type, const char *help, uint64_t v)
{
    family(b, name, type, help);
    sb_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

/* Process figures from /proc: resident bytes, open descriptors, CPU seconds, start time. */
static uint64_t proc_rss(void)
{
    unsigned long long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%llu %llu", &size, &res) != 2) res = 0;
    fclose(f);
    return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

static uint64_t proc_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return 0;
    uint64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n > 0 ? n - 1 : 0; /* not the directory's own descriptor */
}

static double proc_start_time(void)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p) return 0;
    unsigned long long start = 0;
    int field = 2; /* p points at the end of field 2 */
    for (p++; *p && field < 22; p++)
        if (*p == ' ') {
            field++;
            if (field == 22) start = strtoull(p + 1, NULL, 10);
        }
    unsigned long long btime = 0;
    if ((f = fopen("/proc/stat", "r"))) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "btime %llu", &btime) == 1) break;
        fclose(f);
    }
    return (double)btime + (double)start / (double)sysconf(_SC_CLK_TCK);
}

char *relay_metrics_text(relay_srv *s, size_t *len)
{
    sbuf b = {0};
    uint64_t open = 0, paired = 0, peers = 0, held = 0;
    for (relay_room *r = s->rooms; r; r = r->next) {
        if (r->paired)
            paired++;
        else
            open++;
        peers += r->live;
        held += r->used - r->live;
    }
    family(&b, "tallow_relay_up", "gauge",
           "1 while the relay accepts connections, 0 while it drains");
    sb_printf(&b, "tallow_relay_up %d\n", s->draining ? 0 : 1);
    metric(&b, "tallow_relay_connections", "gauge", "TCP connections open (joined or not)",
           s->nconns);
    metric(&b, "tallow_relay_connections_total", "counter", "TCP connections accepted",
           s->conns_total);
    family(&b, "tallow_relay_rooms", "gauge", "rooms by state: waiting for a peer or paired");
    sb_printf(&b, "tallow_relay_rooms{state=\"open\"} %llu\n", (unsigned long long)open);
    sb_printf(&b, "tallow_relay_rooms{state=\"paired\"} %llu\n", (unsigned long long)paired);
    metric(&b, "tallow_relay_rooms_total", "counter", "rooms created", s->rooms_total);
    metric(&b, "tallow_relay_rooms_paired_total", "counter", "rooms in which a second peer arrived",
           s->ctr.rooms_paired_total);
    metric(&b, "tallow_relay_peers", "gauge", "peers connected in rooms", peers);
    metric(&b, "tallow_relay_peers_held", "gauge",
           "slots of dropped peers held for a resume (grace)", held);
    metric(&b, "tallow_relay_forwarded_bytes_total", "counter",
           "peer bytes forwarded (frames included)", s->bytes_forwarded);
    metric(&b, "tallow_relay_dropped_bytes_total", "counter",
           "peer bytes dropped (sent to a peer that was not there)", s->dropped);
    metric(&b, "tallow_relay_queued_bytes", "gauge", "bytes queued in user space for slow readers",
           s->queued);
    family(&b, "tallow_relay_joins_refused_total", "counter",
           "connections or joins refused, by reason");
    for (int i = 0; i < RR_COUNT; i++)
        sb_printf(&b, "tallow_relay_joins_refused_total{reason=\"%s\"} %llu\n", refusals[i].label,
                  (unsigned long long)s->ctr.refused[i]);
    family(&b, "tallow_relay_limit_hits_total", "counter",
           "times a limit was reached (refusals, timeouts, senders held back)");
    for (int i = 0; i < RL_COUNT; i++)
        sb_printf(&b, "tallow_relay_limit_hits_total{limit=\"%s\"} %llu\n", limit_labels[i],
                  (unsigned long long)s->ctr.limits[i]);
    family(&b, "tallow_relay_stun_requests_total", "counter",
           "STUN datagrams on the UDP port: answered, or dropped (not a Binding request)");
    sb_printf(&b, "tallow_relay_stun_requests_total{result=\"answered\"} %llu\n",
              (unsigned long long)s->ctr.stun_answered);
    sb_printf(&b, "tallow_relay_stun_requests_total{result=\"dropped\"} %llu\n",
              (unsigned long long)s->ctr.stun_dropped);
    metric(&b, "tallow_relay_reconnections_total", "counter",
           "peers that came back to their room with a resume token", s->ctr.reconnections);
    metric(&b, "tallow_relay_reloads_total", "counter", "configuration reloads (SIGHUP) applied",
           s->ctr.reloads);
    metric(&b, "tallow_relay_reload_failures_total", "counter",
           "configuration reloads refused (the old configuration stays)", s->ctr.reload_failures);
    metric(&b, "tallow_relay_metrics_scrapes_total", "counter", "requests to this endpoint",
           s->metrics ? s->metrics->scrapes : 0);
    family(&b, "tallow_relay_limit", "gauge", "configured limits");
    sb_printf(&b, "tallow_relay_limit{limit=\"max_rooms\"} %llu\n",
              (unsigned long long)s->lim.max_rooms);
    sb_printf(&b, "tallow_relay_limit{limit=\"max_peers\"} %llu\n",
              (unsigned long long)s->lim.max_peers);
    sb_printf(&b, "tallow_relay_limit{limit=\"max_conns_per_ip\"} %llu\n",
              (unsigned long long)s->lim.max_conns_per_ip);
    sb_printf(&b, "tallow_relay_limit{limit=\"max_rooms_per_ip\"} %llu\n",
              (unsigned long long)s->lim.max_rooms_per_ip);
    struct rusage ru;
    double cpu = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
              ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
    family(&b, "process_cpu_seconds_total", "counter", "user and system CPU time spent in seconds");
    sb_printf(&b, "process_cpu_seconds_total %.6f\n", cpu);
    metric(&b, "process_resident_memory_bytes", "gauge", "resident memory size in bytes",
           proc_rss());
    metric(&b, "process_open_fds", "gauge", "number of open file descriptors", proc_fds());
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        metric(&b, "process_max_fds", "gauge", "maximum number of open file descriptors",
               rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur);
    family(&b, "process_start_time_seconds", "gauge",
           "start time of the process since unix epoch in seconds");
    sb_printf(&b, "process_start_time_seconds %.2f\n", proc_start_time());
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    if (len) *len = b.len;
    return b.p;
}

/* ---- the HTTP side */

static void mconn_close(mconn *c)
{
    relay_metrics *m = c->m;
    for (mconn **p = &m->conns; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    m->nconns--;
    if (c->io) tallow_io_stop(c->io);
    close(c->fd);
    free(c->resp);
    free(c);
}

static void mconn_answer(mconn *c)
{
    relay_metrics *m = c->m;
    char method[8] = "", path[256] = "";
    int status = 200;
    const char *ctype = "text/plain; version=0.0.4; charset=utf-8";
    char *body = NULL;
    size_t blen = 0;
    if (sscanf(c->req, "%7s %255s", method, path) != 2)
        status = 400;
    else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        status = 405;
    else if (strcmp(path, "/metrics") != 0 && strncmp(path, "/metrics?", 9) != 0)
        status = 404;
    if (status == 200) {
        m->scrapes++;
        body = relay_metrics_text(m->srv, &blen);
        if (!body) status = 500;
    }
    if (status != 200) {
        static const char *const texts[] = {"not found: the metrics are at /metrics\n"};
        body = strdup(texts[0]);
        blen = body ? strlen(body) : 0;
        ctype = "text/plain; charset=utf-8";
    }
    const char *reason = status == 200   ? "OK"
                         : status == 400 ? "Bad Request"
                         : status == 404 ? "Not Found"
                         : status == 405 ? "Method Not Allowed"
                                         : "Internal Server Error";
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      status, reason, ctype, blen);
    int with_body = strcmp(method, "HEAD") != 0;
    c->resp = malloc((size_t)hl + (with_body ? blen : 0));
    if (c->resp) {
        memcpy(c->resp, head, (size_t)hl);
        if (with_body && blen) memcpy(c->resp + hl, body, blen);
        c->resp_len = (size_t)hl + (with_body ? blen : 0);
    }
    free(body);
}

static void mconn_io(tallow_io *io, int fd, unsigned events, void *ud)
{
    mconn *c = ud;
    if (!c->resp) {
        ssize_t n = read(fd, c->req + c->rlen, sizeof c->req - 1 - c->rlen);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n <= 0) {
            mconn_close(c);
            return;
        }
        c->rlen += (size_t)n;
        c->req[c->rlen] = 0;
        if (!strstr(c->req, "\r\n\r\n") && !strstr(c->req, "\n\n")) {
            if (c->rlen >= sizeof c->req - 1) { /* no end to the headers */
                mconn_close(c);
                return;
            }
            return;
        }
        mconn_answer(c);
        if (!c->resp) {
            mconn_close(c);
            return;
        }
        tallow_io_set(c->io, TALLOW_IO_WRITE);
    }
    while (c->resp_off < c->resp_len) {
        ssize_t w = send(fd, c->resp + c->resp_off, c->resp_len - c->resp_off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) return;
        if (w <= 0) {
            mconn_close(c);
            return;
        }
        c->resp_off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    mconn_close(c);
}

static void on_maccept(tallow_io *io, int fd, unsigned events, void *ud)
{
    relay_metrics *m = ud;
    for (int i = 0; i < 16; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) return;
        if (m->nconns >= RELAY_METRICS_CONNS) {
            close(cfd);
            continue;
        }
        mconn *c = calloc(1, sizeof *c);
        if (!c) {
            close(cfd);
            continue;
        }
        c->m = m;
        c->fd = cfd;
        c->deadline = tallow_loop_now(m->srv->loop) + RELAY_METRICS_DEADLINE_MS;
        c->io = tallow_io_start(m->srv->loop, cfd, TALLOW_IO_READ, mconn_io, c);
        if (!c->io) {
            close(cfd);
            free(c);
            continue;
        }
        c->next = m->conns;
        m->conns = c;
        m->nconns++;
    }
}

int relay_metrics_start(relay_srv *s, const char *where)
{
    char host[256], port[16];
    if (relay_split_hostport(where, host, sizeof host, port, sizeof port) < 0 || !*host) {
        tallow_ctx_set_error(s->ctx, "relay: bad metrics address '%s' (ADDR:PORT)", where);
        return TALLOW_EINVAL;
    }
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM},
                    *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0) {
        tallow_ctx_set_error(s->ctx, "relay: metrics address '%s' does not resolve", where);
        return TALLOW_ENOTFOUND;
    }
    int one = 1, err = 0, fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) err = -errno;
    if (!err) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (!err && (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0)) err = -errno;
    freeaddrinfo(ai);
    relay_metrics *m = err ? NULL : calloc(1, sizeof *m);
    if (!err && !m) err = TALLOW_ENOMEM;
    if (err) {
        if (fd >= 0) close(fd);
        tallow_ctx_set_error(s->ctx, "relay: cannot serve metrics on %s: %s", where,
                             tallow_strerror(err));
        return err;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    m->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                            : ((struct sockaddr_in6 *)&ss)->sin6_port);
    m->srv = s;
    m->fd = fd;
    m->io = tallow_io_start(s->loop, fd, TALLOW_IO_READ, on_maccept, m);
    if (!m->io) {
        close(fd);
        free(m);
        return TALLOW_ENOMEM;
    }
    s->metrics = m;
    RELAY_LOG(s, TALLOW_LOG_INFO, "metrics on http://%s%s%s:%u/metrics",
              strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", m->port);
    return 0;
}

void relay_metrics_stop(relay_srv *s)
{
    relay_metrics *m = s->metrics;
    if (!m) return;
    while (m->conns)
        mconn_close(m->conns);
    tallow_io_stop(m->io);
    close(m->fd);
    free(m);
    s->metrics = NULL;
}

void relay_metrics_sweep(relay_srv *s, uint64_t now)
{
    relay_metrics *m = s->metrics;
    if (!m) return;
    mconn *next;
    for (mconn *c = m->conns; c; c = next) {
        next = c->next;
        if (now >= c->deadline) mconn_close(c);
    }
}

uint16_t relay_metrics_port(relay_srv *s)
{
    return s->metrics ? s->metrics->port : 0;
}

/* plugins/relay/relay_service.c — the relay service ("relay"): its vtable (start, stop, stats),
 * the TCP listener and what it accepts, the sweep timer, and binding the listener and the STUN
 * sockets. Everything else is in the files below it (relay_srv.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "relay_srv.h"

static void on_accept(tallow_io *io, int fd, unsigned events, void *ud)
{
    relay_srv *s = ud;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) break;
        relay_ip *ip = relay_ip_get(s, &ss);
        if (!ip || ip->conns >= s->lim.max_conns_per_ip || s->nconns >= s->lim.max_conns) {
            if (ip) relay_count_refused(s, RR_IPCONNS);
            close(cfd);
            relay_ip_put(s, ip);
            continue;
        }
        relay_sock_setup(cfd, 1, (struct sockaddr *)&ss);
        /* TCP keepalive finds peers that vanished without a FIN (their slot then goes to grace) */
        int on = 1, idle = 60, intvl = 15, cnt = 4;
        setsockopt(cfd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
        setsockopt(cfd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        setsockopt(cfd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
        setsockopt(cfd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
        int tls = 0;
        if (s->tls) { /* TLS-only listener: the relay serves the bridge's socket */
            int rfd;
            if (relay_tls_accept(s, cfd, &rfd) < 0) {
                close(cfd);
                relay_ip_put(s, ip);
                continue;
            }
            tls = 1;
            cfd = rfd;
        }
        if (relay_conn_new(s, cfd, ip, tls) < 0) {
            close(cfd);
            relay_ip_put(s, ip);
        }
    }
    relay_srv_settle(s);
}

static void on_sweep(tallow_timer *t, void *ud)
{
    relay_srv *s = ud;
    uint64_t now = tallow_loop_now(s->loop);
    relay_conn_sweep(s, now);
    relay_room_sweep(s, now);
    relay_tls_sweep(s, now);
    relay_metrics_sweep(s, now);
    relay_srv_settle(s);
}

/* Binds TCP (and UDP on the same port). Port 0 picks a free port for both. */
static int srv_bind(relay_srv *s, const char *where, int stun)
{
    char host[256], port[16];
    if (relay_split_hostport(where, host, sizeof host, port, sizeof port) < 0) return TALLOW_EINVAL;
    struct addrinfo hints = {.ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(*host ? host : NULL, port, &hints, &ai) != 0) return TALLOW_ENOTFOUND;
    int err = TALLOW_ENOTFOUND;
    for (int attempt = 0; attempt < 16; attempt++) {
        int one = 1, fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = -errno;
            break;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 511) < 0 ||
            relay_sock_setup(fd, 0, NULL) < 0) {
            err = -errno;
            close(fd);
            break;
        }
        struct sockaddr_storage bound;
        socklen_t bl = sizeof bound;
        getsockname(fd, (struct sockaddr *)&bound, &bl);
        s->port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                                   : ((struct sockaddr_in6 *)&bound)->sin6_port);
        int ufd = -1;
        if (stun) {
            int taken = 0;
            ufd = relay_stun_socket(ai->ai_family, (struct sockaddr *)&bound, bl, &taken);
            if (taken) {
                if (strcmp(port, "0") == 0) { /* that port is taken in UDP: try another */
                    close(fd);
                    continue;
                }
                RELAY_LOG(s, TALLOW_LOG_WARN, "no UDP on port %u: STUN disabled", s->port);
            }
        }
        int ufd2 = -1;
        if (ufd >= 0 && s->stun2 != 0) { /* the second STUN port: port + 1 unless given */
            int taken = 0;
            ufd2 = relay_stun_socket2(s, (struct sockaddr *)&bound, bl, &taken);
            if (taken && s->stun2 < 0 && strcmp(port, "0") == 0 && attempt < 15) {
                close(ufd); /* port 0: look for a port whose next one is free too */
                close(fd);
                continue;
            }
            if (taken)
                RELAY_LOG(s, TALLOW_LOG_WARN, "no UDP on port %d: second STUN port disabled",
                          s->stun2 > 0 ? s->stun2 : s->port + 1);
        }
        s->lfd = fd;
        s->ufd = ufd;
        s->ufd2 = ufd2;
        err = 0;
        break;
    }
    freeaddrinfo(ai);
    return err;
}

/* ---- vtable */

/* splice() into a socket whose peer is gone raises SIGPIPE (it has no MSG_NOSIGNAL): unless
 * the program handles SIGPIPE already, it is ignored, so that the call fails with EPIPE. (Not a
 * handler of our own: the plugin may be unloaded before the process ends.) */
static void relay_ignore_sigpipe(void)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
        !(old.sa_flags & SA_SIGINFO))
        signal(SIGPIPE, SIG_IGN);
}

static void srv_stop(void *inst);

/* Every paired room holds two sockets and, while a long frame streams, a pipe: lift the soft
 * open-file limit to the hard one (often 1024 -> 524288) so busy relays do not hit EMFILE. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static const relay_conn_up srv_up = {
    .input = relay_conn_process,
    .pump = relay_stream_pump,
    .abort = relay_stream_abort,
    .detach = relay_room_detach,
    .unblock = relay_stream_unblock,
};

void relay_srv_wire(relay_srv *s)
{
    s->up = &srv_up;
}

static int srv_start(void *plugin_state, tallow_ctx *ctx, const tallow_kv *opts, size_t nopts,
                     void **inst)
{
    relay_plugin *pl = plugin_state;
    relay_srv *s = calloc(1, sizeof *s);
    if (!s) return TALLOW_ENOMEM;
    relay_srv_wire(s);
    s->ctx = ctx;
    s->host = pl->host;
    s->loop = tallow_ctx_loop(ctx);
    s->reg = tallow_ctx_registry(ctx);
    s->lfd = s->ufd = s->ufd2 = -1;
    randombytes_buf(s->hkey, sizeof s->hkey);
    relay_srv_defaults(s);
    s->in_cap = RELAY_IN_CAP;
    s->scratch = malloc(RELAY_SCRATCH);
    if (!s->scratch) {
        free(s);
        return TALLOW_ENOMEM;
    }
    relay_ignore_sigpipe();
    raise_fd_limit();
    const char *listen = "0.0.0.0:4433";
    int stun = 1, rc = relay_parse_opts(s, opts, nopts, &listen, &stun);
    if (rc == 0 && (rc = srv_bind(s, listen, stun)) < 0)
        tallow_ctx_set_error(s->ctx, "relay: cannot listen on %s: %s", listen, tallow_strerror(rc));
    if (rc == 0) {
        s->lio = tallow_io_start(s->loop, s->lfd, TALLOW_IO_READ, on_accept, s);
        s->sweep = tallow_timer_start(s->loop, 200, 200, on_sweep, s);
        if (!s->lio || relay_stun_start(s) < 0 || !s->sweep) rc = TALLOW_ENOMEM;
    }
    if (rc == 0) rc = relay_ops_start(s, listen);
    if (rc < 0) {
        srv_stop(s);
        return rc;
    }
    char stun2[40] = "";
    if (s->ufd2 >= 0) snprintf(stun2, sizeof stun2, " and UDP port %u", s->stun_port2);
    RELAY_LOG(s, TALLOW_LOG_INFO, "listening on %s (port %u%s%s%s)", listen, s->port,
              s->tls ? ", TLS only" : "", s->ufd >= 0 ? ", STUN on UDP" : "", stun2);
    *inst = s;
    return 0;
}

static void srv_stop(void *inst)
{
    relay_srv *s = inst;
    if (!s) return;
    while (s->rooms)
        relay_room_close(s->rooms, RELAY_R_SHUTDOWN, 0);
    while (s->conns)
        relay_conn_kill(s->conns, RELAY_R_SHUTDOWN, 0);
    relay_srv_settle(s);
    relay_tls_stop(s);
    relay_ops_stop(s);
    if (s->lio) tallow_io_stop(s->lio);
    if (s->sweep) tallow_timer_stop(s->sweep);
    if (s->lfd >= 0) close(s->lfd);
    relay_stun_stop(s);
    while (s->npipes > 0) {
        s->npipes--;
        relay_pipe_close(s, s->pipes[s->npipes]);
    }
    free(s->scratch);
    free(s->rooms_by_id.b);
    free(s->ips.b);
    free(s->password);
    free(s->cert);
    free(s->key);
    free(s);
}

static void srv_stats(void *inst, void (*fn)(const char *key, uint64_t value, void *ud), void *ud)
{
    relay_srv *s = inst;
    fn("port", s->port, ud);
    fn("bytes_forwarded", s->bytes_forwarded, ud);
    fn("bytes_dropped", s->dropped, ud);
    fn("rooms", s->nrooms, ud);
    fn("rooms_total", s->rooms_total, ud);
    fn("conns", s->nconns, ud);
    fn("conns_total", s->conns_total, ud);
    fn("queued_bytes", s->queued, ud);
    fn("queued_peak", s->queued_peak, ud);
    fn("metrics_port", relay_metrics_port(s), ud);
    fn("stun_port2", s->stun_port2, ud);
}

const tallow_service_ops relay_service_ops = {
    .version = TALLOW_SERVICE_OPS_VERSION,
    .struct_size = sizeof(tallow_service_ops),
    .name = "relay",
    .summary =
        "blind relay for tallow rooms, with a STUN responder on the same port (and the next)",
    .options_help = relay_options_help,
    .start = srv_start,
    .stop = srv_stop,
    .stats = srv_stats,
    .check = relay_ops_check,
    .reload = relay_ops_reload,
    .drain = relay_ops_drain,
};

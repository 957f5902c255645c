/* tests/plugins/support/netfix.c — network fixtures: coturn on loopback (started and reaped by
 * pid, with bounded waits), silent ports, bounded loop runs. */
#include "netfix.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <tallow/stun.h>
#include <time.h>
#include <unistd.h>

#define TURNSERVER "/usr/bin/turnserver"

struct sockaddr_in netfix_lo(uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A port free for both UDP and TCP on loopback (coturn listens on both). */
static uint16_t free_port(void)
{
    for (int tries = 0; tries < 50; tries++) {
        int u = socket(AF_INET, SOCK_DGRAM, 0), t = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = netfix_lo(0);
        socklen_t l = sizeof(a);
        uint16_t port = 0;
        if (u >= 0 && t >= 0 && bind(u, (struct sockaddr *)&a, sizeof(a)) == 0 &&
            getsockname(u, (struct sockaddr *)&a, &l) == 0 &&
            bind(t, (struct sockaddr *)&a, sizeof(a)) == 0)
            port = ntohs(a.sin_port);
        if (u >= 0) close(u);
        if (t >= 0) close(t);
        if (port) return port;
    }
    return 0;
}

/* Sends Binding requests every 100 ms until one is answered or limit_ms passes. */
static int probe(uint16_t port, uint64_t limit_ms)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in to = netfix_lo(port);
    uint8_t txid[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, req[64], buf[512];
    int n = tallow_stun_binding_request(req, sizeof(req), txid);
    uint64_t end = mono_ms() + limit_ms;
    int ok = -1;
    while (ok < 0 && mono_ms() < end) {
        sendto(fd, req, (size_t)n, 0, (struct sockaddr *)&to, sizeof(to));
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) == 1) {
            ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
            tallow_stun_msg m;
            if (r > 0 && tallow_stun_parse(buf, (size_t)r, &m) == 0 &&
                memcmp(m.txid, txid, 12) == 0)
                ok = 0;
        }
    }
    close(fd);
    return ok;
}

int netfix_coturn_start(netfix_coturn *c)
{
    memset(c, 0, sizeof(*c));
    if (access(TURNSERVER, X_OK) != 0) return -1;
    c->port = free_port();
    if (!c->port) return -1;
    c->addr = netfix_lo(c->port);
    char port[16], pidfile[64], log[512];
    snprintf(port, sizeof(port), "%u", c->port);
    snprintf(pidfile, sizeof(pidfile), "/tmp/tallow-test-turn-%u.pid", c->port);
    snprintf(log, sizeof(log), "%s/tests/coturn-%u.log", TALLOW_TEST_BIN_DIR, c->port);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(TURNSERVER, "turnserver", "-n", "-L", "127.0.0.1", "-p", port, "--no-cli", "--no-tls",
              "--no-dtls", "-z", "--log-file", "stdout", "--simple-log", "--pidfile", pidfile,
              (char *)NULL);
        _exit(127);
    }
    c->pid = pid;
    if (probe(c->port, 10000) == 0) return 0;
    netfix_coturn_stop(c);
    return -1;
}

void netfix_coturn_stop(netfix_coturn *c)
{
    if (c->pid <= 0) return;
    kill(c->pid, SIGTERM);
    uint64_t end = mono_ms() + 3000;
    int status;
    while (mono_ms() < end) {
        if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
            c->pid = 0;
            return;
        }
        usleep(20000);
    }
    kill(c->pid, SIGKILL);
    waitpid(c->pid, &status, 0);
    c->pid = 0;
}

int netfix_silent_udp(struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    *addr = netfix_lo(0);
    socklen_t l = sizeof(*addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)addr, sizeof(*addr)) < 0 ||
        getsockname(fd, (struct sockaddr *)addr, &l) < 0)
        return -1;
    return fd;
}

uint64_t netfix_run_until(tallow_ctx *ctx, const volatile int *flag, uint64_t limit_ms)
{
    uint64_t start = mono_ms();
    while (!*flag && mono_ms() - start < limit_ms)
        tallow_loop_run_once(tallow_ctx_loop(ctx), 50);
    return mono_ms() - start;
}

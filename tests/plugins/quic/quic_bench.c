/* quic_bench.c — loopback throughput of the quic plugin's connection: a client thread sends N MiB
 * (default 1024) to a server thread over two UDP sockets (UDP_SEGMENT / recvmmsg, big buffers)
 * and the MB/s from handshake done to the last byte received is printed. Not a test.
 * Usage: quic_bench [MiB] [max UDP payload: 0 = unknown path (default), 65508 = loopback's] */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quic_conn.h"
#include "quic_udp_io.h"

typedef struct side {
    int is_server;
    size_t max_udp;
    int fd;
    struct sockaddr_in addr;
    const struct sockaddr_in *peer;
    const uint8_t *psk;
    quic_conn *qc;
    uint64_t target, tx, rx;
    uint64_t t_connected, t_done;
    int connected, closed, err;
    atomic_int *done;
} side;

static int b_send(void *ud, const struct sockaddr *to, socklen_t tolen, const uint8_t *data,
                  size_t len, size_t segsz)
{
    return qt_udp_send(((side *)ud)->fd, to, tolen, data, len, segsz);
}

static void b_connected(void *ud)
{
    side *s = ud;
    s->connected = 1;
    s->t_connected = qt_now_ns();
}

static void b_data(void *ud, const uint8_t *data, size_t len)
{
    side *s = ud;
    (void)data;
    s->rx += len;
    if (s->rx >= s->target && !s->t_done) {
        s->t_done = qt_now_ns();
        atomic_store(s->done, 1);
    }
}

static void b_writable(void *ud)
{
    (void)ud;
}

static void b_closed(void *ud, int err)
{
    side *s = ud;
    s->closed = 1;
    s->err = err;
}

static const quic_conn_cbs b_cbs = {b_send, b_connected, b_data, b_writable, b_closed};

static void b_recv(void *ud, const struct sockaddr *from, socklen_t fromlen, const uint8_t *data,
                   size_t len)
{
    side *s = ud;
    quic_conn_recv(s->qc, from, fromlen, data, len, qt_now_ns());
}

static void *b_run(void *arg)
{
    side *s = arg;
    static const uint8_t chunk[256 * 1024];
    s->qc = quic_conn_new(s->is_server, s->psk, (struct sockaddr *)&s->addr, sizeof(s->addr),
                          (const struct sockaddr *)s->peer, sizeof(*s->peer), s->max_udp,
                          qt_udp_rcvbuf(s->fd), &b_cbs, s, qt_now_ns());
    if (!s->qc) {
        s->closed = 1;
        atomic_store(s->done, 1);
        return NULL;
    }
    uint64_t limit = qt_now_ns() + 300ull * 1000000000u;
    while (!atomic_load(s->done) && !s->closed && qt_now_ns() < limit) {
        while (!s->is_server && s->tx < s->target) {
            uint64_t n = s->target - s->tx;
            size_t k = quic_conn_write(s->qc, chunk, n < sizeof(chunk) ? (size_t)n : sizeof(chunk));
            s->tx += k;
            if (k == 0) break;
        }
        uint64_t now = qt_now_ns();
        quic_conn_flush(s->qc, now);
        uint64_t e = quic_conn_expiry(s->qc);
        struct pollfd pfd = {s->fd, POLLIN, 0};
        struct timespec ts = {0, 10000000};
        now = qt_now_ns();
        if (e <= now)
            ts.tv_nsec = 0;
        else if (e - now < 10000000u)
            ts.tv_nsec = (long)(e - now);
        if (ppoll(&pfd, 1, &ts, NULL) > 0) qt_udp_recv_all(s->fd, b_recv, s);
        if (quic_conn_expiry(s->qc) <= qt_now_ns()) quic_conn_on_expiry(s->qc, qt_now_ns());
    }
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 1024;
    size_t max_udp = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 0;
    uint8_t psk[32];
    memset(psk, 0x42, sizeof(psk));
    atomic_int done = 0;
    side cli = {0}, srv = {0};
    cli.fd = qt_udp_open(&cli.addr, 1);
    srv.fd = qt_udp_open(&srv.addr, 1);
    if (cli.fd < 0 || srv.fd < 0) {
        fprintf(stderr, "quic_bench: cannot open UDP sockets\n");
        return 1;
    }
    cli.peer = &srv.addr;
    srv.peer = &cli.addr;
    cli.psk = srv.psk = psk;
    srv.is_server = 1;
    cli.max_udp = srv.max_udp = max_udp;
    cli.target = srv.target = mib << 20;
    cli.done = srv.done = &done;
    pthread_t tc, ts;
    pthread_create(&ts, NULL, b_run, &srv);
    pthread_create(&tc, NULL, b_run, &cli);
    pthread_join(tc, NULL);
    pthread_join(ts, NULL);
    if (srv.rx < srv.target) {
        fprintf(stderr,
                "quic_bench: incomplete: %llu of %llu bytes (client err %d, server err %d)\n",
                (unsigned long long)srv.rx, (unsigned long long)srv.target, cli.err, srv.err);
        return 1;
    }
    double secs = (double)(srv.t_done - cli.t_connected) / 1e9;
    printf("quic_bench: %llu MiB in %.3f s = %.1f MB/s (%.2f Gbit/s)\n", (unsigned long long)mib,
           secs, (double)srv.rx / secs / 1e6, (double)srv.rx * 8 / secs / 1e9);
    quic_conn_free(cli.qc);
    quic_conn_free(srv.qc);
    close(cli.fd);
    close(srv.fd);
    return 0;
}

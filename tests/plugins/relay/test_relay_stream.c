/* tests/plugins/relay/test_relay_stream.c — 50 MiB through the relay from a real channel to a
 * deliberately slow raw reader: every byte arrives in order, the sender is held back (send()
 * returns 1, then on_writable), and the relay's queued bytes stay bounded all along (64 KiB
 * frames are streamed: spliced from socket to socket, they never enter the relay's queues).
 * Long frames in a multi room (copied through bounded queues), and a sender cut mid-frame. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "relay_test_util.h"

#define TOTAL (50u * 1024u * 1024u)
#define FRAME (64u * 1024u)
#define RELAY_HIGH (64u * 1024u) /* the relay's default queue-high */
#define RELAY_IN (16u * 1024u)   /* the relay's input buffer: longer frames are streamed */

static uint8_t pattern(uint64_t k)
{
    return (uint8_t)(k * 131u + (k >> 16));
}

typedef struct reader {
    int fd;
    uint8_t hdr[5];
    size_t hdr_got;
    size_t left;      /* payload bytes left in the current frame */
    uint64_t payload; /* payload bytes verified */
    int bad;
    int ctrl_frames;
} reader;

/* Reads at most max bytes and checks them against the pattern. */
static void reader_step(reader *r, size_t max)
{
    static uint8_t buf[128 * 1024];
    if (max > sizeof buf) max = sizeof buf;
    ssize_t n = read(r->fd, buf, max);
    if (n <= 0) return;
    for (ssize_t i = 0; i < n;) {
        if (r->left == 0) {
            r->hdr[r->hdr_got++] = buf[i++];
            if (r->hdr_got < 5) continue;
            r->hdr_got = 0;
            r->left = ((size_t)r->hdr[0] << 24 | (size_t)r->hdr[1] << 16 | (size_t)r->hdr[2] << 8 |
                       r->hdr[3]) -
                      1;
            if (r->hdr[4] == 0)
                r->ctrl_frames++; /* control (RoomJoined): skipped */
            else if (r->hdr[4] != 1)
                r->bad = 1;
            continue;
        }
        size_t take = r->left < (size_t)(n - i) ? r->left : (size_t)(n - i);
        if (r->hdr[4] == 0) {
            r->left -= take;
            i += (ssize_t)take;
            continue;
        }
        for (size_t k = 0; k < take; k++)
            if (buf[i + (ssize_t)k] != pattern(r->payload + k)) r->bad = 1;
        r->payload += take;
        r->left -= take;
        i += (ssize_t)take;
    }
}

static void slow_reader(int splice)
{
    rt_env e;
    tallow_kv o[] = {{"splice", "off"}};
    assert_int_equal(rt_env_start(&e, o, splice ? 0 : 1), 0);

    /* the slow side: a raw socket with a small receive buffer */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 64 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(e.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    uint8_t id[32];
    rt_room_id("stream", id);
    tallow_msg_RoomJoin j = {.room = {id, 32}, .version = 2, .capacity = 2};
    assert_int_equal(rt_raw_send_ctrl(&e, fd, &tallow_msgtype_RoomJoin, &j), 0);

    rt_peer s;
    assert_int_equal(rt_peer_open(&e, &s, "stream", 2, NULL, NULL), 0);
    assert_true(rt_run_until(&e, rt_cond_ready, &s, 5000));

    reader r = {.fd = fd};
    uint8_t *frame = malloc(FRAME);
    uint64_t sent = 0, deadline = tallow_now_ns() + 60ull * 1000000000ull;
    uint64_t next_read = tallow_now_ns();
    int blocked = 0, times_blocked = 0, seen_writable = 0;
    size_t max_client_queue = 0;
    while (r.payload < TOTAL && tallow_now_ns() < deadline && !r.bad && !s.closed) {
        if (blocked && s.writable_calls > seen_writable) {
            seen_writable = s.writable_calls;
            blocked = 0;
        }
        while (!blocked && sent < TOTAL) {
            size_t len = TOTAL - sent < FRAME ? TOTAL - sent : FRAME;
            for (size_t k = 0; k < len; k++)
                frame[k] = pattern(sent + k);
            int rc = tallow_channel_send(s.ch, 0, frame, len);
            assert_true(rc == 0 || rc == 1);
            sent += len;
            if (rc == 1) {
                blocked = 1;
                times_blocked++;
            }
        }
        size_t q = s.ch->ops->queued(s.ch);
        if (q > max_client_queue) max_client_queue = q;
        tallow_loop_run_once(e.loop, 1);
        if (tallow_now_ns() >= next_read) { /* about 64 MiB/s: slower than the sender */
            reader_step(&r, 128 * 1024);
            next_read += 2000000;
        }
    }
    uint64_t peak = rt_stat(&e, "queued_peak");
    printf("# splice %s: relay queued peak %llu bytes, client queue peak %zu, sender held back "
           "%d times\n",
           splice ? "on" : "off", (unsigned long long)peak, max_client_queue, times_blocked);
    assert_false(r.bad);
    assert_false(s.closed);
    assert_int_equal(r.payload, TOTAL);
    assert_true(times_blocked >= 1);
    assert_true(seen_writable >= 1);
    /* bounded: the high-water mark plus at most one input buffer's run of frames */
    assert_true(peak <= RELAY_HIGH + RELAY_IN);
    if (!splice) assert_true(peak >= RELAY_HIGH / 2); /* copies: the queue did fill */
    assert_true(max_client_queue <= 8u * 1024 * 1024 + FRAME + 16);
    uint64_t frames = (TOTAL + FRAME - 1) / FRAME;
    assert_int_equal(rt_stat(&e, "bytes_forwarded"), TOTAL + frames * 5);
    free(frame);
    close(fd);
    rt_peer_close(&s);
    rt_env_stop(&e);
}

static void test_relay_stream_slow_reader_bounded(void **state)
{
    slow_reader(1);
}

/* The same with splice off: the payload is copied through the relay's bounded queues. */
static void test_relay_stream_slow_reader_copies(void **state)
{
    slow_reader(0);
}

/* Both directions at once between two real channels, every byte counted. Prints the rate
 * (a figure for orientation, not an assertion). */
typedef struct duplex {
    rt_peer *p;
    uint64_t sent[2];
    int blocked[2], seen[2];
} duplex;

static void pump(duplex *d, int i, uint8_t *frame, uint64_t total)
{
    rt_peer *p = &d->p[i];
    if (d->blocked[i] && p->writable_calls > d->seen[i]) {
        d->seen[i] = p->writable_calls;
        d->blocked[i] = 0;
    }
    while (!d->blocked[i] && d->sent[i] < total) {
        size_t len = total - d->sent[i] < FRAME ? total - d->sent[i] : FRAME;
        frame[0] = (uint8_t)(d->sent[i] / FRAME);
        int rc = tallow_channel_send(p->ch, 0, frame, len);
        assert_true(rc == 0 || rc == 1);
        d->sent[i] += len;
        if (rc == 1) d->blocked[i] = 1;
    }
}

static void test_relay_stream_duplex(void **state)
{
    const uint64_t total = 256ull * 1024 * 1024;
    rt_env e;
    assert_int_equal(rt_env_start(&e, NULL, 0), 0);
    rt_peer p[2];
    assert_int_equal(rt_peer_open(&e, &p[0], "duplex", 2, NULL, NULL), 0);
    assert_int_equal(rt_peer_open(&e, &p[1], "duplex", 2, NULL, NULL), 0);
    for (int i = 0; i < 200 && !(p[0].ready && p[1].ready); i++)
        tallow_loop_run_once(e.loop, 10);
    assert_true(p[0].ready && p[1].ready);
    uint8_t *frame = calloc(1, FRAME);
    duplex d = {.p = p};
    uint64_t t0 = tallow_now_ns(), deadline = t0 + 60ull * 1000000000ull;
    while ((p[0].bytes < total || p[1].bytes < total) && tallow_now_ns() < deadline &&
           !p[0].closed && !p[1].closed) {
        pump(&d, 0, frame, total);
        pump(&d, 1, frame, total);
        tallow_loop_run_once(e.loop, 10);
    }
    double secs = (double)(tallow_now_ns() - t0) / 1e9;
    printf("# duplex: 2 x %llu MiB through the relay in %.2f s (%.0f MiB/s each way)\n",
           (unsigned long long)(total >> 20), secs, (double)(total >> 20) / secs);
    assert_int_equal(p[0].bytes, total);
    assert_int_equal(p[1].bytes, total);
    assert_int_equal(p[0].frames, total / FRAME);
    free(frame);
    rt_peer_close(&p[0]);
    rt_peer_close(&p[1]);
    rt_env_stop(&e);
}

/* Long frames in a multi room: broadcasts (streamed through the relay's queues to three
 * destinations at once) and targeted frames from two senders at the same time (a destination
 * takes one streamed frame at a time): every frame arrives whole, once, to the right peers. */
#define MBIG (300u * 1024u)
#define MROUNDS 20

typedef struct mctx {
    rt_peer *p;
    uint64_t want[4];
} mctx;

static int multi_done(void *ud)
{
    mctx *m = ud;
    for (int i = 0; i < 4; i++)
        if (m->p[i].bytes < m->want[i]) return 0;
    return 1;
}

static int all4(void *ud)
{
    rt_peer *p = ud;
    return p[0].ready && p[1].ready && p[2].ready && p[3].ready;
}

static void test_relay_stream_multi_room(void **state)
{
    rt_env e;
    assert_int_equal(rt_env_start(&e, NULL, 0), 0);
    rt_peer p[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(rt_peer_open(&e, &p[i], "multi-big", 4, NULL, NULL), 0);
    assert_true(rt_run_until(&e, all4, p, 5000));
    uint32_t idx[4];
    for (int i = 0; i < 4; i++) {
        tallow_channel_info info;
        tallow_channel_get_info(p[i].ch, &info);
        idx[i] = info.peer_index;
    }
    uint8_t *a = malloc(MBIG), *b = malloc(MBIG);
    uint64_t sa = 0, sb = 0;
    for (size_t k = 0; k < MBIG; k++) {
        a[k] = (uint8_t)(k * 7u + 1u);
        b[k] = (uint8_t)(k * 13u + 5u);
        sa += a[k];
        sb += b[k];
    }
    mctx m = {.p = p};
    for (int r = 0; r < MROUNDS; r++) {
        /* p0 broadcasts a; p1 sends b to p3 only */
        assert_true(tallow_channel_send(p[0].ch, 0, a, MBIG) >= 0);
        assert_true(tallow_channel_send(p[1].ch, idx[3], b, MBIG) >= 0);
        rt_run_for(&e, 5);
    }
    m.want[0] = 0;
    m.want[1] = m.want[2] = (uint64_t)MROUNDS * MBIG;
    m.want[3] = 2ull * MROUNDS * MBIG;
    assert_true(rt_run_until(&e, multi_done, &m, 20000));
    rt_run_for(&e, 100);
    assert_int_equal(p[0].frames, 0);
    assert_int_equal(p[1].frames, MROUNDS);
    assert_int_equal(p[2].frames, MROUNDS);
    assert_int_equal(p[3].frames, 2 * MROUNDS);
    assert_int_equal(p[1].check, MROUNDS * sa);
    assert_int_equal(p[2].check, MROUNDS * sa);
    assert_int_equal(p[3].check, MROUNDS * (sa + sb));
    for (int i = 0; i < 4; i++)
        assert_false(p[i].closed);
    free(a);
    free(b);
    for (int i = 0; i < 4; i++)
        rt_peer_close(&p[i]);
    rt_env_stop(&e);
}

static int rx_back(void *ud)
{
    rt_peer *p = ud;
    return p->departed >= 1 && p->resumed >= 1;
}

/* A sender that vanishes in the middle of a long frame: the receiver's stream has a cut frame,
 * so the relay drops its connection too; the receiver resumes (its slot was held) and never sees
 * a partial frame. */
static void test_relay_stream_sender_cut_mid_frame(void **state)
{
    rt_env e;
    assert_int_equal(rt_env_start(&e, NULL, 0), 0);
    int tx = rt_raw_connect(&e);
    assert_true(tx >= 0);
    uint8_t id[32];
    rt_room_id("cut-mid-frame", id);
    tallow_msg_RoomJoin j = {.room = {id, 32}, .version = 2, .capacity = 2};
    assert_int_equal(rt_raw_send_ctrl(&e, tx, &tallow_msgtype_RoomJoin, &j), 0);
    rt_run_for(&e, 50);
    rt_peer rx;
    assert_int_equal(rt_peer_open(&e, &rx, "cut-mid-frame", 2, NULL, NULL), 0);
    assert_true(rt_run_until(&e, rt_cond_ready, &rx, 5000));
    /* a frame that claims 1 MiB, of which 100 KiB come */
    static uint8_t part[100 * 1024];
    const uint8_t hdr[5] = {0, 0x10, 0, 1, 1}; /* L = 1 MiB + 1, channel 1 */
    assert_int_equal(send(tx, hdr, 5, MSG_NOSIGNAL), 5);
    size_t off = 0;
    uint64_t end = tallow_now_ns() + 5000000000ull;
    while (off < sizeof part && tallow_now_ns() < end) {
        ssize_t w = send(tx, part + off, sizeof part - off, MSG_NOSIGNAL);
        if (w > 0) off += (size_t)w;
        tallow_loop_run_once(e.loop, 1);
    }
    rt_run_for(&e, 100);
    assert_int_equal(rx.frames, 0);
    struct linger lg = {1, 0};
    setsockopt(tx, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(tx); /* a reset, mid-frame */
    assert_true(rt_run_until(&e, rx_back, &rx, 10000));
    assert_int_equal(rx.frames, 0);
    assert_false(rx.closed);
    rt_peer_close(&rx);
    rt_env_stop(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relay_stream_slow_reader_bounded),
        cmocka_unit_test(test_relay_stream_slow_reader_copies),
        cmocka_unit_test(test_relay_stream_duplex),
        cmocka_unit_test(test_relay_stream_multi_room),
        cmocka_unit_test(test_relay_stream_sender_cut_mid_frame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

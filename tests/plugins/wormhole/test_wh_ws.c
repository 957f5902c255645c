/* The wormhole plugin's WebSocket client on a socketpair (the test plays the server): RFC 6455's
 * accept sample, 7/16/64-bit lengths, a fragmented message, a ping answered with a pong of the
 * same payload, masked frames out, a close, an oversized frame refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <tallow/error.h>

#include "wh.h"

static int pair_fds[2];

static int setup(void **st)
{
    (void)st;
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair_fds);
}

static int teardown(void **st)
{
    (void)st;
    close(pair_fds[1]);
    return 0;
}

static wh_ws client(void)
{
    wh_ws ws;
    memset(&ws, 0, sizeof(ws));
    ws.fd = pair_fds[0];
    return ws;
}

/* a server frame: unmasked */
static size_t frame(uint8_t *out, int fin, int op, const void *p, size_t len)
{
    size_t h = 0;
    out[h++] = (uint8_t)((fin ? 0x80 : 0) | op);
    if (len < 126) {
        out[h++] = (uint8_t)len;
    } else if (len < 65536) {
        out[h++] = 126;
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    } else {
        out[h++] = 127;
        for (int i = 7; i >= 0; i--)
            out[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    memcpy(out + h, p, len);
    return h + len;
}

static void put(const uint8_t *b, size_t n)
{
    assert_int_equal(write(pair_fds[1], b, n), (ssize_t)n);
}

static void test_accept_sample(void **st)
{
    (void)st;
    char out[40];
    wh_ws_accept_value("dGhlIHNhbXBsZSBub25jZQ==", out);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_lengths_fragments_ping(void **st)
{
    (void)st;
    wh_ws ws = client();
    static uint8_t buf[200000], big[70000];
    memset(big, 'x', sizeof(big));
    size_t n = frame(buf, 1, 1, "hi", 2);
    n += frame(buf + n, 1, 9, "png", 3);         /* a ping in between */
    n += frame(buf + n, 0, 1, big, 300);         /* 16-bit length, not final */
    n += frame(buf + n, 1, 0, big, sizeof(big)); /* 64-bit continuation */
    put(buf, n);
    const char *m;
    size_t len;
    assert_int_equal(wh_ws_recv(&ws, &m, &len, wh_now_ms() + 2000), 0);
    assert_int_equal(len, 2);
    assert_memory_equal(m, "hi", 2);
    assert_int_equal(wh_ws_recv(&ws, &m, &len, wh_now_ms() + 2000), 0);
    assert_int_equal(len, 300 + sizeof(big));
    assert_int_equal(m[len - 1], 'x');
    /* the pong went out masked with the ping's payload */
    uint8_t in[64];
    ssize_t r = read(pair_fds[1], in, sizeof(in));
    assert_int_equal(r, 2 + 4 + 3);
    assert_int_equal(in[0], 0x8A);
    assert_int_equal(in[1], 0x80 | 3);
    for (int i = 0; i < 3; i++)
        in[6 + i] ^= in[2 + i];
    assert_memory_equal(in + 6, "png", 3);
    /* a text message out: masked, 16-bit length */
    char msg[200];
    memset(msg, 'a', sizeof(msg));
    assert_int_equal(wh_ws_send(&ws, msg, sizeof(msg), wh_now_ms() + 2000), 0);
    r = read(pair_fds[1], buf, sizeof(buf));
    assert_int_equal(r, 4 + 4 + 200);
    assert_int_equal(buf[0], 0x81);
    assert_int_equal(buf[1], 0x80 | 126);
    assert_int_equal((buf[2] << 8) | buf[3], 200);
    for (int i = 0; i < 200; i++)
        assert_int_equal(buf[8 + i] ^ buf[4 + (i & 3)], 'a');
    /* nothing more: a timeout, then a close frame ends it */
    assert_int_equal(wh_ws_recv(&ws, &m, &len, wh_now_ms() + 50), TALLOW_ETIMEOUT);
    n = frame(buf, 1, 8, "\x03\xe8", 2);
    put(buf, n);
    assert_int_equal(wh_ws_recv(&ws, &m, &len, wh_now_ms() + 2000), TALLOW_ECLOSED);
    wh_ws_close(&ws);
}

static void test_oversized_refused(void **st)
{
    (void)st;
    wh_ws ws = client();
    uint8_t hdr[10] = {0x81, 127, 0, 0, 0, 0, 0x40, 0, 0, 0}; /* 1 GiB announced */
    put(hdr, sizeof(hdr));
    const char *m;
    size_t len;
    assert_int_equal(wh_ws_recv(&ws, &m, &len, wh_now_ms() + 2000), TALLOW_ETOOBIG);
    wh_ws_close(&ws);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_sample),
        cmocka_unit_test_setup_teardown(test_lengths_fragments_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

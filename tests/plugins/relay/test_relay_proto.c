/* tests/plugins/relay/test_relay_proto.c — the relay's framing helpers: host:port parsing, the
 * control frame header, the chunked output queue through a socket that takes little at a time,
 * and the input buffer's growth and compaction. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "relay.h"

static void test_relay_proto_hostport(void **state)
{
    char h[64], p[8];
    assert_int_equal(relay_split_hostport("1.2.3.4:5", h, sizeof h, p, sizeof p), 0);
    assert_string_equal(h, "1.2.3.4");
    assert_string_equal(p, "5");
    assert_int_equal(relay_split_hostport("[::1]:443", h, sizeof h, p, sizeof p), 0);
    assert_string_equal(h, "::1");
    assert_string_equal(p, "443");
    assert_int_equal(relay_split_hostport("relay.example", h, sizeof h, p, sizeof p), 0);
    assert_string_equal(h, "relay.example");
    assert_string_equal(p, "4433");
    assert_int_equal(relay_split_hostport("::1", h, sizeof h, p, sizeof p), 0);
    assert_string_equal(h, "::1");
    assert_int_equal(relay_split_hostport("[::1]", h, sizeof h, p, sizeof p), 0);
    assert_string_equal(p, "4433");
    const char *bad[] = {"", "h:", "h:70000", "h:12a", "[::1", "[::1]x", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(relay_split_hostport(bad[i], h, sizeof h, p, sizeof p), TALLOW_EINVAL);
    assert_int_equal(relay_split_hostport("a-very-long-host-name", h, 8, p, sizeof p),
                     TALLOW_EINVAL);
}

static void test_relay_proto_ctrl_frame(void **state)
{
    uint8_t buf[64];
    tallow_msg_Ping ping = {7, 9};
    int n = relay_ctrl_frame(&tallow_msgtype_Ping, &ping, buf, sizeof buf);
    assert_true(n > RELAY_HDR);
    assert_int_equal(relay_get32(buf), (uint32_t)n - 4);
    assert_int_equal(buf[4], RELAY_CH_CTRL);
    uint32_t type;
    assert_int_equal(tallow_msg_peek_type(buf + RELAY_HDR, (size_t)n - RELAY_HDR, &type), 0);
    assert_int_equal(type, TALLOW_MSG_Ping);
    assert_true(relay_ctrl_frame(&tallow_msgtype_Ping, &ping, buf, 6) < 0);
    char tag[9];
    relay_room_tag((const uint8_t *)"room", 4, tag);
    assert_int_equal(strlen(tag), 8);
}

static void drain(int fd, uint8_t *out, size_t *got, size_t cap)
{
    for (;;) {
        ssize_t r = read(fd, out + *got, cap - *got);
        if (r <= 0) return;
        *got += (size_t)r;
    }
}

static void test_relay_proto_outq(void **state)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int small = 16 * 1024;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    const size_t total = 3 * RELAY_CHUNK + 12345;
    uint8_t *src = malloc(total), *dst = malloc(total);
    for (size_t i = 0; i < total; i++)
        src[i] = (uint8_t)(i * 7 + (i >> 12));
    relay_outq q = {0};
    /* pieces of odd sizes, crossing chunk boundaries; the first goes straight to the socket */
    size_t off = 0, got = 0, piece = 1000;
    while (off < total) {
        size_t n = total - off < piece ? total - off : piece;
        struct iovec iov[2] = {{src + off, n / 2}, {src + off + n / 2, n - n / 2}};
        assert_int_equal(relay_outq_send(&q, sv[0], iov, 2), 0);
        off += n;
        piece = piece * 3 % 70001 + 1;
    }
    assert_true(q.bytes > 0); /* the socket could not take it all */
    while (got < total) {
        assert_true(relay_outq_flush(&q, sv[0]) >= 0);
        drain(sv[1], dst, &got, total);
    }
    assert_int_equal(q.bytes, 0);
    assert_memory_equal(src, dst, total);
    /* a broken socket reports an error, not a signal */
    assert_int_equal(relay_outq_push(&q, src, 100), 0);
    close(sv[1]);
    assert_true(relay_outq_flush(&q, sv[0]) < 0);
    relay_outq_clear(&q);
    assert_int_equal(q.bytes, 0);
    close(sv[0]);
    free(src);
    free(dst);
}

static void test_relay_proto_inbuf(void **state)
{
    relay_inbuf b = {0};
    assert_int_equal(relay_inbuf_reserve(&b, 10), 0);
    assert_true(b.cap >= 10);
    memcpy(b.buf, "0123456789", 10);
    b.end = 10;
    b.start = 8; /* two live bytes */
    assert_int_equal(relay_inbuf_reserve(&b, 1024 * 1024), 0);
    assert_int_equal(b.start, 0);
    assert_int_equal(b.end, 2);
    assert_memory_equal(b.buf, "89", 2);
    assert_true(b.cap - b.end >= 1024 * 1024);
    relay_inbuf_free(&b);
    assert_null(b.buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relay_proto_hostport),
        cmocka_unit_test(test_relay_proto_ctrl_frame),
        cmocka_unit_test(test_relay_proto_outq),
        cmocka_unit_test(test_relay_proto_inbuf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* tests/fuzz/gen_seeds.c — writes the seed corpora of the fuzz targets from valid encodings:
 * gen_seeds DIR creates DIR/<target>/<name> files. The committed tests/fuzz/corpus/ was made
 * with it (built by `make fuzz` as build-fuzz/fuzz/fuzz_seeds). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <tallow/gather.h>
#include <tallow/messages.h>
#include <tallow/stun.h>

#include "fsutil.h"

static const char *root;

static void put(const char *target, const char *name, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "gen_seeds: %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

/* Fills every field of a message with a sample value (or leaves it empty). */
static void fill(const tallow_msg_type *t, void *msg, int variant)
{
    static const uint8_t blob[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    static const char text[] = "h\xc3\xa9llo";
    memset(msg, 0, t->struct_size);
    if (variant == 0) return;
    for (uint32_t i = 0; i < t->nfields; i++) {
        uint8_t *p = (uint8_t *)msg + t->fields[i].offset;
        uint64_t u = variant == 1 ? 300 : UINT64_MAX;
        int64_t s = variant == 1 ? -5 : INT64_MIN;
        uint32_t u32 = variant == 1 ? 7 : UINT32_MAX;
        tallow_bytes b = {blob, variant == 1 ? 3 : 16};
        tallow_bytes str = {(const uint8_t *)text, strlen(text)};
        switch (t->fields[i].kind) {
        case TALLOW_F_U64:
            memcpy(p, &u, 8);
            break;
        case TALLOW_F_I64:
            memcpy(p, &s, 8);
            break;
        case TALLOW_F_U32:
            memcpy(p, &u32, 4);
            break;
        case TALLOW_F_BOOL:
            *p = 1;
            break;
        case TALLOW_F_BYTES:
            memcpy(p, &b, sizeof b);
            break;
        case TALLOW_F_STR:
            memcpy(p, &str, sizeof str);
            break;
        }
    }
}

static size_t enc(const tallow_msg_type *t, const void *m, uint8_t *out, size_t cap)
{
    int n = tallow_msg_encode(t, m, out, cap);
    if (n < 0) exit(1);
    return (size_t)n;
}

static const tallow_msg_type *const core_types[] = {
#define P(id, Name) &tallow_msgtype_##Name,
    TALLOW_CORE_MESSAGES(P)
#undef P
};

static void codec(void)
{
    tallow_msg_any m;
    uint8_t buf[512];
    char name[64];
    for (size_t i = 0; i < sizeof core_types / sizeof core_types[0]; i++)
        for (int v = 0; v < 3; v++) {
            fill(core_types[i], &m, v);
            snprintf(name, sizeof name, "%s-%d", core_types[i]->name, v);
            put("fuzz_codec", name, buf, enc(core_types[i], &m, buf, sizeof buf));
        }
}

static void stun(void)
{
    uint8_t txid[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, buf[256];
    int n = tallow_stun_binding_request(buf, sizeof buf, txid);
    put("fuzz_stun", "binding-request", buf, (size_t)n);
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons(3478)};
    v4.sin_addr.s_addr = htonl(0xCB007107);
    n = tallow_stun_binding_response(buf, sizeof buf, txid, (struct sockaddr *)&v4, sizeof v4,
                                     "tallow");
    put("fuzz_stun", "binding-response-v4", buf, (size_t)n);
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(3478)};
    v6.sin6_addr.s6_addr[0] = 0x20;
    v6.sin6_addr.s6_addr[1] = 0x01;
    v6.sin6_addr.s6_addr[15] = 9;
    n = tallow_stun_binding_response(buf, sizeof buf, txid, (struct sockaddr *)&v6, sizeof v6,
                                     NULL);
    put("fuzz_stun", "binding-response-v6", buf, (size_t)n);
    tallow_stun_builder b;
    uint32_t prio = htonl(0x6e0001ff);
    tallow_stun_build_begin(&b, buf, sizeof buf, TALLOW_STUN_BINDING, TALLOW_STUN_REQUEST, txid);
    tallow_stun_build_attr(&b, TALLOW_STUN_ATTR_USERNAME, "abcd:efgh", 9);
    tallow_stun_build_attr(&b, TALLOW_STUN_ATTR_PRIORITY, &prio, 4);
    tallow_stun_build_attr(&b, TALLOW_STUN_ATTR_USE_CANDIDATE, NULL, 0);
    tallow_stun_build_integrity(&b, (const uint8_t *)"pass", 4);
    tallow_stun_build_fingerprint(&b);
    n = tallow_stun_build_finish(&b);
    put("fuzz_stun", "check-integrity", buf, (size_t)n);
    uint8_t err[4] = {0, 0, 4, 1};
    tallow_stun_build_begin(&b, buf, sizeof buf, TALLOW_STUN_BINDING, TALLOW_STUN_ERROR, txid);
    tallow_stun_build_attr(&b, TALLOW_STUN_ATTR_ERROR_CODE, err, 4);
    tallow_stun_build_addr(&b, TALLOW_STUN_ATTR_MAPPED_ADDRESS, 0, (struct sockaddr *)&v4,
                           sizeof v4);
    n = tallow_stun_build_finish(&b);
    put("fuzz_stun", "error-mapped", buf, (size_t)n);
}

static void sockaddr(void)
{
    uint8_t buf[32];
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons(50000)};
    v4.sin_addr.s_addr = htonl(0xC0A80102);
    put("fuzz_sockaddr", "v4", buf,
        (size_t)tallow_sockaddr_encode((struct sockaddr *)&v4, sizeof v4, buf, sizeof buf));
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(1)};
    v6.sin6_addr.s6_addr[15] = 1;
    put("fuzz_sockaddr", "v6-loopback", buf,
        (size_t)tallow_sockaddr_encode((struct sockaddr *)&v6, sizeof v6, buf, sizeof buf));
}

static void manifest(void)
{
    tallow__entry e[] = {
        {.path = "dir", .type = TALLOW__ENT_DIR, .mode = 0755, .mtime_ns = 1700000000000000000},
        {.path = "dir/a.txt", .size = 12, .mode = 0644, .mtime_ns = -1},
        {.path = "dir/sub", .type = TALLOW__ENT_DIR, .mode = 0700},
        {.path = "dir/sub/\xc3\xa9t\xc3\xa9 \xe2\x82\xac.bin", .size = 1u << 20, .mode = 0600},
        {.path = "README", .size = 0, .mode = 0444},
    };
    tallow__manifest m = {.e = e, .n = 5, .total_size = 12 + (1u << 20), .nfiles = 3};
    uint8_t *out;
    size_t len;
    if (tallow__manifest_encode(&m, &out, &len) < 0) exit(1);
    put("fuzz_manifest", "tree", out, len);
    free(out);
    m.n = 0;
    tallow__manifest_encode(&m, &out, &len);
    put("fuzz_manifest", "empty", out, len);
    free(out);
    put("fuzz_manifest", "path-dotdot", "a/../b", 6);
}

/* ---- relay: chunks {conn, len, bytes}; frames u32be L | channel | payload */

static size_t frame(uint8_t *out, uint8_t ch, const uint8_t *p, size_t n)
{
    out[0] = (uint8_t)((n + 1) >> 24);
    out[1] = (uint8_t)((n + 1) >> 16);
    out[2] = (uint8_t)((n + 1) >> 8);
    out[3] = (uint8_t)(n + 1);
    out[4] = ch;
    memcpy(out + 5, p, n);
    return 5 + n;
}

static size_t ctrl(uint8_t *out, const tallow_msg_type *t, const void *m)
{
    uint8_t buf[256];
    return frame(out, 0, buf, enc(t, m, buf, sizeof buf));
}

static size_t chunk(uint8_t *out, uint8_t who, const uint8_t *p, size_t n)
{
    out[0] = who;
    out[1] = (uint8_t)n;
    memcpy(out + 2, p, n);
    return 2 + n;
}

static void relay(void)
{
    uint8_t in[2048], f[300], room[32], token[16];
    memset(room, 0xab, sizeof room);
    memset(token, 0x5c, sizeof token);
    size_t n = 0;
    in[n++] = 0; /* service side */
    tallow_msg_RoomJoin j = {.room = {room, 32}, .version = 2};
    n += chunk(in + n, 0, f, ctrl(f, &tallow_msgtype_RoomJoin, &j));
    n += chunk(in + n, 1, f, ctrl(f, &tallow_msgtype_RoomJoin, &j));
    n += chunk(in + n, 0, f, frame(f, 1, (const uint8_t *)"hello peer", 10));
    uint8_t tgt[8] = {0, 0, 0, 1, 'h', 'e', 'y', '!'};
    n += chunk(in + n, 1, f, frame(f, 2, tgt, 8));
    tallow_msg_Ping p = {.seq = 1, .time = 12345};
    n += chunk(in + n, 0, f, ctrl(f, &tallow_msgtype_Ping, &p));
    tallow_msg_RoomLeave l = {.reason = {(const uint8_t *)"left", 4}};
    n += chunk(in + n, 1, f, ctrl(f, &tallow_msgtype_RoomLeave, &l));
    put("fuzz_relay_frame", "service-pair", in, n);

    n = 0;
    in[n++] = 4; /* service side, no grace */
    tallow_msg_RoomJoin jm = {.room = {room, 32}, .version = 2, .capacity = 3};
    for (uint8_t who = 0; who < 3; who++)
        n += chunk(in + n, who, f, ctrl(f, &tallow_msgtype_RoomJoin, &jm));
    n += chunk(in + n, 2, f, frame(f, 2, tgt, 8));
    n += chunk(in + n, 0x80, f, 0);
    tallow_msg_RoomJoin jr = {.room = {room, 32}, .version = 2, .resume_token = {token, 16}};
    n += chunk(in + n, 1, f, ctrl(f, &tallow_msgtype_RoomJoin, &jr));
    tallow_msg_RoomLeave hf = {.reason = {(const uint8_t *)"handshake-failed", 16}};
    n += chunk(in + n, 0, f, ctrl(f, &tallow_msgtype_RoomLeave, &hf));
    put("fuzz_relay_frame", "service-multi", in, n);

    n = 0;
    in[n++] = 4; /* service side: a group room's peers back after a failover, in their slots */
    for (uint8_t who = 0; who < 3; who++) {
        tallow_msg_RoomJoin js = {
            .room = {room, 32}, .version = 2, .capacity = 3, .slot = who == 1 ? 0u : 3u - who};
        n += chunk(in + n, who, f, ctrl(f, &tallow_msgtype_RoomJoin, &js));
    }
    n += chunk(in + n, 0, f, frame(f, 2, tgt, 8));
    put("fuzz_relay_frame", "service-slots", in, n);

    n = 0;
    in[n++] = 1; /* client side */
    tallow_msg_RoomJoined rj = {.peers = 1, .peer_index = 1, .resume_token = {token, 16}};
    n += chunk(in + n, 0, f, ctrl(f, &tallow_msgtype_RoomJoined, &rj));
    tallow_msg_PeerArrived pa = {.peer_index = 2, .peers = 2};
    n += chunk(in + n, 0, f, ctrl(f, &tallow_msgtype_PeerArrived, &pa));
    n += chunk(in + n, 0, f, frame(f, 1, (const uint8_t *)"data", 4));
    n += chunk(in + n, 0, f, frame(f, 2, tgt, 8));
    tallow_msg_PeerDeparted pd = {.peer_index = 2, .reason = {(const uint8_t *)"reconnecting", 12}};
    n += chunk(in + n, 0, f, ctrl(f, &tallow_msgtype_PeerDeparted, &pd));
    n += chunk(in + n, 0, f, ctrl(f, &tallow_msgtype_PeerArrived, &pa));
    tallow_msg_RoomLeave rl = {.reason = {(const uint8_t *)"room full", 9}};
    n += chunk(in + n, 0, f, ctrl(f, &tallow_msgtype_RoomLeave, &rl));
    put("fuzz_relay_frame", "client-pair", in, n);

    n = 0;
    in[n++] = 3; /* client side, multi room */
    n += chunk(in + n, 0, f, ctrl(f, &tallow_msgtype_RoomJoined, &rj));
    tallow_msg_PeerJoinedRoom pj = {.peer_index = 2, .peers = 2};
    n += chunk(in + n, 0, f, ctrl(f, &tallow_msgtype_PeerJoinedRoom, &pj));
    tallow_msg_RoomPeerCount pc = {.peers = 2, .capacity = 4};
    n += chunk(in + n, 0, f, ctrl(f, &tallow_msgtype_RoomPeerCount, &pc));
    tallow_msg_PeerLeftRoom pl = {.peer_index = 2, .peers = 1};
    n += chunk(in + n, 0, f, ctrl(f, &tallow_msgtype_PeerLeftRoom, &pl));
    tallow_msg_VersionReject vr = {.version = 2, .reason = {(const uint8_t *)"old", 3}};
    n += chunk(in + n, 0, f, ctrl(f, &tallow_msgtype_VersionReject, &vr));
    put("fuzz_relay_frame", "client-multi", in, n);

    n = 0;
    in[n++] = 5; /* client side through SOCKS5 */
    const uint8_t method[2] = {5, 0}, reply[10] = {5, 0, 0, 1, 127, 0, 0, 1, 0x11, 0x51};
    n += chunk(in + n, 0, method, 2);
    n += chunk(in + n, 0, reply, 10);
    n += chunk(in + n, 0, f, ctrl(f, &tallow_msgtype_RoomJoined, &rj));
    n += chunk(in + n, 0, f, ctrl(f, &tallow_msgtype_PeerArrived, &pa));
    n += chunk(in + n, 0, f, frame(f, 1, (const uint8_t *)"data", 4));
    put("fuzz_relay_frame", "client-socks", in, n);
    n = 0;
    in[n++] = 5;
    const uint8_t dom[] = {5, 0, 5, 0, 0, 3, 5, 'p', 'r', 'o', 'x', 'y', 0, 80};
    n += chunk(in + n, 0, dom, sizeof dom);
    put("fuzz_relay_frame", "client-socks-domain", in, n);
}

static void resume(void)
{
    /* n, entries (bit 7 directory, low bits index a size table), resume varints */
    const uint8_t a[] = {4, 9, 0x80, 3, 14, 0x80, 0x80, 0x40, 0x00, 0x80, 0x01};
    put("fuzz_resume", "mixed", a, sizeof a);
    const uint8_t b[] = {2, 1, 2, 2, 3};
    put("fuzz_resume", "skip-all", b, sizeof b);
    const uint8_t c[] = {1, 14, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    put("fuzz_resume", "huge", c, sizeof c);
    /* bit 6 of n: a refusal list follows the entries (length byte, then (index, -error) pairs):
     * an empty file (size 0) and a directory refused, a file sent from 0 */
    const uint8_t d[] = {0x40 | 3, 0, 9, 0x80, 6, 0, 0xfe, 0x07, 2, 0xfd, 0x07, 1, 0, 1};
    put("fuzz_resume", "refused", d, sizeof d);
    /* probe mode: 0x80 | flags, then a manifest naming what the harness's destination holds */
    tallow__entry e[] = {
        {.path = "big.iso", .size = 3u << 20, .mode = 0644, .mtime_ns = 7},
        {.path = "a.txt", .size = 5, .mode = 0644},
        {.path = "d", .type = TALLOW__ENT_DIR, .mode = 0755},
        {.path = "d/ln", .size = 5, .mode = 0644},
        {.path = "d/sub/part.bin", .size = 100, .mode = 0644},
        {.path = "fifo", .size = 1, .mode = 0644},
        {.path = "link/x", .size = 1, .mode = 0644},
        {.path = "new/file", .size = 9, .mode = 0644},
    };
    tallow__manifest m = {.e = e, .n = 8};
    uint8_t *out, buf[1024];
    size_t len;
    if (tallow__manifest_encode(&m, &out, &len) < 0 || len + 1 > sizeof buf) exit(1);
    memcpy(buf + 1, out, len);
    free(out);
    for (uint8_t mode = 0x80; mode < 0x84; mode++) {
        char name[32];
        buf[0] = mode;
        snprintf(name, sizeof name, "probe-%02x", mode);
        put("fuzz_resume", name, buf, len + 1);
    }
}

static void session(void)
{
    uint8_t in[1024], m[256];
    size_t n = 0, k;
    tallow_msg_Ping p = {.seq = 1, .time = 2};
    k = enc(&tallow_msgtype_Ping, &p, m, sizeof m);
    in[n++] = 1, in[n++] = (uint8_t)k, memcpy(in + n, m, k), n += k;
    in[n++] = 0x41, in[n++] = (uint8_t)k, memcpy(in + n, m, k), n += k; /* filtered */
    tallow_msg_ChatText ct = {.seq = 1, .text = {(const uint8_t *)"hi", 2}};
    k = enc(&tallow_msgtype_ChatText, &ct, m, sizeof m);
    in[n++] = 1, in[n++] = (uint8_t)k, memcpy(in + n, m, k), n += k;
    tallow_msg_Chunk c = {.transfer_id = 300, .file_index = 0, .data = {(const uint8_t *)"abc", 3}};
    k = enc(&tallow_msgtype_Chunk, &c, m, sizeof m);
    in[n++] = 2 | (2 << 2), in[n++] = (uint8_t)k, memcpy(in + n, m, k), n += k;
    tallow_msg_Ack a = {.transfer_id = 1, .bytes = 3};
    k = enc(&tallow_msgtype_Ack, &a, m, sizeof m);
    in[n++] = 2 | (1 << 2), in[n++] = (uint8_t)k, memcpy(in + n, m, k), n += k;
    put("fuzz_session_record", "sealed", in, n);
    n = 0;
    /* a plugin type of the harness (0x8001, larger than tallow_msg_any) */
    const uint8_t big[] = {0x81, 0x80, 0x02, 4, 0x08, 0x05, 0x12, 0x00};
    in[n++] = 1, in[n++] = sizeof big, memcpy(in + n, big, sizeof big), n += sizeof big;
    tallow_msg_HandshakeFailed hf = {.code = -1, .reason = {(const uint8_t *)"no", 2}};
    k = enc(&tallow_msgtype_HandshakeFailed, &hf, m, sizeof m);
    in[n++] = 0, in[n++] = (uint8_t)k, memcpy(in + n, m, k), n += k;
    put("fuzz_session_record", "plugin-then-failed", in, n);
    /* handshake state, responder: a HandshakeInit with a share of the right size */
    uint8_t nonce[32], share[32];
    memset(nonce, 7, sizeof nonce);
    memset(share, 0, sizeof share);
    share[0] = 0xe2; /* not necessarily a valid point: the checks decide */
    tallow_msg_HandshakeInit hi = {
        .version = 2, .nonce = {nonce, 32}, .pake = {share, 32}, .features = 1};
    n = 0;
    in[n++] = 0xff, in[n++] = 0;
    k = enc(&tallow_msgtype_HandshakeInit, &hi, m, sizeof m);
    in[n++] = 0, in[n++] = (uint8_t)k, memcpy(in + n, m, k), n += k;
    put("fuzz_session_record", "handshake-responder", in, n);
    tallow_msg_HandshakeResponse hr = {
        .version = 2, .nonce = {nonce, 32}, .pake = {share, 32}, .confirm = {nonce, 32}};
    n = 0;
    in[n++] = 0xff, in[n++] = 1;
    k = enc(&tallow_msgtype_HandshakeResponse, &hr, m, sizeof m);
    in[n++] = 0, in[n++] = (uint8_t)k, memcpy(in + n, m, k), n += k;
    put("fuzz_session_record", "handshake-initiator", in, n);
}

/* quic stream: pieces {len, bytes} of u32be length | frame */
static void quic(void)
{
    uint8_t st[600], in[700];
    size_t sl = 0, n = 0;
    const char *frames[] = {"", "x", "a frame of the session", "\x01sealed record bytes........"};
    for (size_t i = 0; i < 4; i++) {
        size_t fl = strlen(frames[i]);
        st[sl++] = 0, st[sl++] = 0, st[sl++] = (uint8_t)(fl >> 8), st[sl++] = (uint8_t)fl;
        memcpy(st + sl, frames[i], fl);
        sl += fl;
    }
    in[n++] = (uint8_t)sl; /* all in one piece */
    memcpy(in + n, st, sl);
    n += sl;
    put("fuzz_quic_stream", "one-piece", in, n);
    n = 0;
    for (size_t off = 0; off < sl; off += 3) { /* in pieces of 3 */
        size_t k = sl - off < 3 ? sl - off : 3;
        in[n++] = (uint8_t)k;
        memcpy(in + n, st + off, k);
        n += k;
    }
    put("fuzz_quic_stream", "pieces", in, n);
    const uint8_t big[] = {8, 0, 0, 0, 200, 1, 2, 3, 4, 4, 1, 0x00, 0x00, 0x01};
    put("fuzz_quic_stream", "oversized", big, sizeof big);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_seeds DIR\n");
        return 2;
    }
    root = argv[1];
    mkdir(root, 0755);
    codec();
    stun();
    sockaddr();
    manifest();
    relay();
    resume();
    session();
    quic();
    return 0;
}

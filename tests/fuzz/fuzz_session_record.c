/* tests/fuzz/fuzz_session_record.c — libFuzzer target for the session's record layer (frames of
 * kinds 0, 1 and 2 in core/session/session.c) on a session already READY with known keys. session.c
 * is compiled into this file to build such a session without a transport. The input is a list of
 * records: flags (1 byte), length (1 byte), payload. Flags pick the frame kind and whether the
 * harness seals the payload as the peer would (so that the fuzzer reaches the decoder behind the
 * AEAD) or passes the bytes as they are (forgeries, truncations, unknown kinds); flag 0x20 hands
 * the frame over as one from the direct path (and the harness builds a direct frame: a transfer
 * record then goes unsealed with its record number, as on QUIC).
 * A first byte 0xff starts the session in the HANDSHAKE state instead (the next byte's bit 0:
 * initiator, which has sent its HandshakeInit), so that plaintext handshake messages reach the
 * CPace checks. */
#include "../../core/session/session.c"
#include "../../core/session/session_record.c"

#include <stdio.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_session_record: check failed: %s (line %d)\n", #c, __LINE__);    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* a plugin type larger than tallow_msg_any: decoded on the heap by deliver() */
typedef struct big_msg {
    uint8_t pad[sizeof(tallow_msg_any) + 64];
    uint64_t v;
    tallow_bytes b;
} big_msg;
static const tallow_field big_fields[] = {
    {1, "v", TALLOW_F_U64, offsetof(big_msg, v)},
    {2, "b", TALLOW_F_BYTES, offsetof(big_msg, b)},
};
static const tallow_msg_type big_type = {0x8001, "FuzzBig", sizeof(big_msg), 2, big_fields};

static tallow_ctx *ctx;
static const uint64_t tids[4] = {0, 1, 300, UINT64_MAX - 1}; /* UINT64_MAX names no transfer */
static int messages, closed;

static void on_ready(tallow__session *s, int status, void *ud)
{
    closed++;
}
static void on_message(tallow__session *s, const tallow_msg_type *t, const void *msg, void *ud)
{
    CHECK(t && msg && tallow_registry_find(tallow_ctx_registry(ctx), t->id) == t);
    /* what was delivered encodes again */
    size_t need = tallow_msg_encoded_size(t, msg);
    uint8_t *buf = malloc(need);
    CHECK(buf && tallow_msg_encode(t, msg, buf, need) == (int)need);
    free(buf);
    messages++;
}
static void on_closed(tallow__session *s, int err, void *ud)
{
    CHECK(err < 0);
    closed++;
}
static int filter(tallow__session *s, const tallow_msg_type *t, const void *msg, void *ud)
{
    return t->id == TALLOW_MSG_Ping; /* consumed */
}
static const tallow__session_cbs cbs = {
    .on_ready = on_ready, .on_message = on_message, .on_closed = on_closed};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ctx) {
        ctx = tallow_ctx_new();
        CHECK(ctx && tallow_registry_add(tallow_ctx_registry(ctx), &big_type) == 0);
        tallow_ctx_set_log_level(ctx, TALLOW_LOG_ERROR);
    }
    tallow__session *s = session_alloc();
    CHECK(s);
    s->ctx = ctx;
    s->cbs = &cbs;
    s->rekey_records = REKEY_RECORDS;
    s->rekey_bytes = REKEY_BYTES;
    static uint8_t *buf, *rbuf; /* 2 MiB each: kept across inputs */
    if (!buf) buf = malloc(SESSION_MAX_FRAME + 64);
    if (!rbuf) rbuf = malloc(SESSION_MAX_FRAME + 64);
    CHECK(buf && rbuf);
    s->buf = buf;
    s->rbuf = rbuf;
    s->state = ST_READY;
    s->ready_reported = 1;
    s->initiator = 1;
    size_t pos = 0;
    if (size >= 2 && data[0] == 0xff) {
        uint8_t room[32];
        CHECK(tallow__code_room_id("12-apple-banana-cherry", room) == 0);
        s->initiator = data[1] & 1;
        CHECK(tallow__hs_init(&s->hs, s->initiator, "12-apple-banana-cherry", room) == 0);
        if (s->initiator) {
            tallow_msg_HandshakeInit init;
            CHECK(tallow__hs_make_init(&s->hs, &init) == 0);
        }
        s->state = ST_HANDSHAKE;
        s->ready_reported = 0;
        pos = 2;
    }
    s->keys.alg = TALLOW__AEAD_XCHACHA;
    for (int i = 0; i < 32; i++) {
        s->keys.rx[i] = (uint8_t)(i + 1);
        s->keys.tx[i] = (uint8_t)(i + 101);
        s->keys.transfer_base_rx[i] = (uint8_t)(i + 51);
        s->keys.transfer_base_tx[i] = (uint8_t)(i + 151);
    }
    tallow__aead_init(&s->tx, s->keys.tx, s->keys.alg);
    tallow__aead_init(&s->rx, s->keys.rx, s->keys.alg);
    /* the peer's sealing side: its tx is our rx, its transfer keys come from our rx base */
    tallow__aead *peer = NULL, *peer_tx = NULL;
    CHECK(posix_memalign((void **)&peer, 64, sizeof(*peer)) == 0);
    CHECK(posix_memalign((void **)&peer_tx, 64, 4 * sizeof(*peer_tx)) == 0);
    tallow__aead_init(peer, s->keys.rx, s->keys.alg);
    for (int i = 0; i < 4; i++) {
        uint8_t k[32];
        tallow__kdf(s->keys.transfer_base_rx, "transfer", tids[i], k);
        tallow__aead_init(&peer_tx[i], k, s->keys.alg);
    }
    uint8_t *frame = malloc(24 + 256 + TALLOW__AEAD_TAG);
    CHECK(frame);
    messages = closed = 0;
    while (pos + 2 <= size && s->state != ST_FAILED) {
        uint8_t flags = data[pos], len = data[pos + 1];
        pos += 2;
        if (len > size - pos) len = (uint8_t)(size - pos);
        const uint8_t *pl = data + pos;
        pos += len;
        if (flags & 0x40) tallow__session_set_filter(s, filter, NULL);
        size_t flen;
        if (flags & 0x80) { /* raw bytes, whatever they claim to be */
            memcpy(frame, pl, len);
            flen = len;
        } else if ((flags & 3) == KIND_PLAIN) {
            frame[0] = KIND_PLAIN;
            memcpy(frame + 1, pl, len);
            flen = 1 + (size_t)len;
        } else if ((flags & 3) == KIND_TRANSFER) {
            int k = (flags >> 2) & 3;
            frame[0] = KIND_TRANSFER;
            frame[1] = 0; /* epoch 0 */
            size_t h = 2 + tallow_varint_put(frame + 2, tids[k]);
            if (flags & 0x20) { /* direct: not sealed, the record number in the header */
                frame[0] |= KIND_DIRECT;
                h += tallow_varint_put(frame + h, peer_tx[k].seq++);
                memcpy(frame + h, pl, len);
                flen = h + len;
            } else {
                CHECK(tallow__aead_seal(&peer_tx[k], frame + h, frame, h, pl, len) == 0);
                flen = h + len + TALLOW__AEAD_TAG;
            }
        } else {
            frame[0] = (uint8_t)(KIND_SEALED | (flags & 0x20 ? KIND_DIRECT : 0));
            frame[1] = 0; /* epoch 0 */
            CHECK(tallow__aead_seal(peer, frame + 2, frame, 2, pl, len) == 0);
            flen = 2 + (size_t)len + TALLOW__AEAD_TAG;
        }
        tallow__sess_process(s, (flags & 0x20) != 0, frame, flen);
    }
    CHECK(closed <= 1);
    free(frame);
    tallow__aead_wipe(peer);
    for (int i = 0; i < 4; i++)
        tallow__aead_wipe(&peer_tx[i]);
    free(peer);
    free(peer_tx);
    s->buf = s->rbuf = NULL;
    tallow__session_close(s);
    return 0;
}

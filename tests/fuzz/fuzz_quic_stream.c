/* tests/fuzz/fuzz_quic_stream.c — libFuzzer target for the QUIC transport's stream deframer
 * (link_on_data in plugins/quic/quic_link.c: u32be length | frame, in whatever pieces the
 * stream delivers). quic_link.c is compiled into this file to reach it. The input is a list of
 * pieces {length (1 byte), bytes}; the frames delivered must be exactly the frames of the
 * concatenated stream, up to the first oversized length. */
#include "../../plugins/quic/quic_link.c"

#include <stdio.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_quic_stream: check failed: %s (line %d)\n", #c, __LINE__);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static uint8_t *stream; /* the pieces concatenated */
static size_t stream_len, parsed;

static void on_frame(tallow_channel *ch, uint32_t from, const uint8_t *d, size_t len, void *ud)
{
    /* the next frame of the stream, byte for byte */
    CHECK(parsed + 4 + len <= stream_len);
    const uint8_t *h = stream + parsed;
    CHECK(((size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3]) == len);
    CHECK(len == 0 || memcmp(d, h + 4, len) == 0);
    parsed += 4 + len;
}

static const tallow_channel_events events = {.on_frame = on_frame};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tallow_channel ch;
    ch.ev = &events;
    quic_link *l = calloc(1, sizeof *l);
    stream = malloc(size + 1);
    CHECK(l && stream);
    l->ch = &ch;
    stream_len = parsed = 0;
    size_t pos = 0;
    while (pos < size && !l->proto_err) {
        size_t n = data[pos++];
        if (n > size - pos) n = size - pos;
        memcpy(stream + stream_len, data + pos, n);
        stream_len += n;
        /* the stream hands over a copy that lives for the call only */
        uint8_t *piece = malloc(n ? n : 1);
        CHECK(piece);
        memcpy(piece, data + pos, n);
        link_on_data(l, piece, n);
        free(piece);
        pos += n;
    }
    if (!l->proto_err) {
        /* what is left is one incomplete frame (or nothing) */
        size_t left = stream_len - parsed;
        CHECK(left == (l->hdr_got < 4 ? l->hdr_got : 4 + l->rx_got));
    } else {
        const uint8_t *h = stream + parsed; /* stopped at an oversized length */
        CHECK(stream_len - parsed >= 4);
        CHECK(((size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3]) >
              QUIC_MAX_FRAME);
    }
    free(l->rx);
    free(l);
    free(stream);
    return 0;
}

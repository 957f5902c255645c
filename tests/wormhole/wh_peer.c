/* tests/wormhole/wh_peer.c — a lying magic-wormhole peer for the hostile cases, built from the
 * plugin's own mailbox and transit code:
 *   wh_peer hold MAILBOX CODE                    claim the nameplate and keep it (never release)
 *   wh_peer send-corrupt MAILBOX TRANSIT CODE FILE     flip a bit in the first record
 *   wh_peer send-reorder MAILBOX TRANSIT CODE FILE     first record carries nonce 1, not 0
 *   wh_peer send-zip MAILBOX TRANSIT CODE ZIP NUMBYTES offer ZIP as a folder "hostile"
 *   wh_peer recv-badhash MAILBOX TRANSIT CODE          receive, then ack with a wrong sha256
 *   wh_peer send-badphase MAILBOX TRANSIT CODE         phase 0 sealed under a wrong key
 * Always relay-only (no_p2p). Exits 0 when it did its part. */
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wh.h"

/* A one-shot liar that exits mid-protocol: under ASan its leftovers are not the subject. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "detect_leaks=0";
}

static int die(const char *what, const char *err)
{
    fprintf(stderr, "wh_peer: %s: %s\n", what, err);
    return 1;
}

static json_t *wait_key(wh_conn *c, const char *key, json_t **transit)
{
    for (;;) {
        json_t *m = NULL;
        if (wh_conn_recv(c, &m, wh_now_ms() + 30000)) return NULL;
        json_t *t = json_object_get(m, "transit");
        if (t && transit && !*transit) *transit = json_incref(t);
        json_t *v = json_object_get(m, key);
        if (v) {
            json_incref(v);
            json_decref(m);
            return v;
        }
        json_decref(m);
    }
}

/* one record with our own nonce counter and an optional bit flip */
static int raw_record(wh_transit *t, const uint8_t *d, size_t len, uint64_t ctr, int flip)
{
    size_t blen = 24 + len + 16;
    uint8_t *b = malloc(4 + blen);
    b[0] = (uint8_t)(blen >> 24), b[1] = (uint8_t)(blen >> 16), b[2] = (uint8_t)(blen >> 8),
    b[3] = (uint8_t)blen;
    wh_record_nonce(b + 4, ctr);
    crypto_secretbox_easy(b + 28, d, len, b + 4, t->send_key);
    if (flip) b[4 + blen - 1] ^= 0x01;
    int rc = wh_write_all(t->fd, b, 4 + blen, wh_now_ms() + 10000);
    free(b);
    return rc;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0 || argc < 4) return 2;
    const char *mode = argv[1], *mailbox = argv[2];
    int hold = strcmp(mode, "hold") == 0;
    const char *transit = hold ? NULL : argv[3], *code = hold ? argv[3] : argv[4];
    wh_conn c;
    if (wh_conn_open(&c, mailbox, wh_now_ms() + 10000) || wh_conn_set_code(&c, code))
        return die("mailbox", c.err);
    if (hold) {
        if (wh_conn_claim(&c, wh_now_ms() + 10000)) return die("claim", c.err);
        printf("claimed\n");
        fflush(stdout);
        sleep(30);
        return 0;
    }
    if (wh_conn_pair(&c, wh_now_ms() + 30000)) return die("pair", c.err);
    if (strcmp(mode, "send-badphase") == 0) {
        c.key[0] ^= 1; /* the version phase passed; phase 0 will not decrypt */
        wh_conn_send(&c, json_pack("{s:{s:s}}", "offer", "message", "forged"), wh_now_ms() + 5000);
        sleep(3);
        return 0;
    }
    wh_transit t;
    json_t *peer_t = NULL;
    int sender = strncmp(mode, "send-", 5) == 0;
    if (wh_transit_init(&t, sender, transit, 1)) return die("transit", t.err);
    wh_conn_send(&c, wh_transit_message(&t), wh_now_ms() + 5000);
    if (sender) {
        const char *path = argv[5];
        int fd = open(path, O_RDONLY);
        struct stat st;
        if (fd < 0 || fstat(fd, &st)) return die(path, "cannot open");
        json_t *offer;
        if (strcmp(mode, "send-zip") == 0)
            offer = json_pack("{s:{s:s,s:s,s:I,s:I,s:I}}", "directory", "mode", "zipfile/deflated",
                              "dirname", "hostile", "zipsize", (json_int_t)st.st_size, "numbytes",
                              (json_int_t)atoll(argv[6]), "numfiles", (json_int_t)3);
        else
            offer = json_pack("{s:{s:s,s:I}}", "file", "filename", "payload.bin", "filesize",
                              (json_int_t)st.st_size);
        wh_conn_send(&c, json_pack("{s:o}", "offer", offer), wh_now_ms() + 5000);
        json_t *ans = wait_key(&c, "answer", &peer_t);
        if (!ans) return die("answer", c.err);
        json_decref(ans);
        if (!peer_t) return die("answer", "no transit from the receiver");
        if (wh_transit_connect(&t, c.key, peer_t, wh_now_ms() + 20000))
            return die("connect", t.err);
        uint8_t *buf = malloc((size_t)st.st_size + 1);
        if (read(fd, buf, (size_t)st.st_size) != st.st_size) return die(path, "short read");
        int rc;
        if (strcmp(mode, "send-corrupt") == 0)
            rc = raw_record(&t, buf, (size_t)st.st_size, 0, 1);
        else if (strcmp(mode, "send-reorder") == 0)
            rc = raw_record(&t, buf, (size_t)st.st_size, 1, 0);
        else
            rc = raw_record(&t, buf, (size_t)st.st_size, 0, 0);
        if (rc) return die("send", "transit write failed");
        const uint8_t *rec;
        size_t rl;
        /* the receiver drops the connection on a bad record; an ack otherwise */
        if (wh_transit_recv(&t, &rec, &rl, wh_now_ms() + 20000) == 0)
            printf("ack: %.*s\n", (int)rl, (const char *)rec);
        else
            printf("dropped\n");
        return 0;
    }
    /* recv-badhash */
    json_t *offer = wait_key(&c, "offer", &peer_t);
    if (!offer) return die("offer", c.err);
    json_int_t size =
        json_integer_value(json_object_get(json_object_get(offer, "file"), "filesize"));
    wh_conn_send(&c, json_pack("{s:{s:s}}", "answer", "file_ack", "ok"), wh_now_ms() + 5000);
    if (!peer_t) {
        json_t *tr = wait_key(&c, "transit", &peer_t);
        json_decref(tr);
    }
    if (!peer_t) return die("transit", "none from the sender");
    if (wh_transit_connect(&t, c.key, peer_t, wh_now_ms() + 20000)) return die("connect", t.err);
    json_int_t got = 0;
    while (got < size) {
        const uint8_t *rec;
        size_t rl;
        if (wh_transit_recv(&t, &rec, &rl, wh_now_ms() + 20000)) return die("recv", t.err);
        got += (json_int_t)rl;
    }
    const char *ack = "{\"ack\": \"ok\", \"sha256\": "
                      "\"00000000000000000000000000000000000000000000000000000000000000ff\"}";
    wh_transit_send(&t, (const uint8_t *)ack, strlen(ack), wh_now_ms() + 5000);
    sleep(1);
    printf("acked with a wrong hash\n");
    return 0;
}

/* plugins/wormhole/wh_ws.c — TCP with deadlines and a minimal RFC 6455 client: the upgrade with
 * a checked Sec-WebSocket-Accept, masked text frames out, any-length frames in, continuation,
 * ping/pong and close; wss:// over a GnuTLS client session (certificate checked). The mailbox
 * server speaks text frames (its docs say binary: they are wrong). */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <netdb.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <tallow/error.h>

#include "wh.h"

#define WS_MAX_MESSAGE (1u << 20)

int64_t wh_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_fd(int fd, short ev, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - wh_now_ms();
        if (left <= 0) return TALLOW_ETIMEOUT;
        struct pollfd p = {.fd = fd, .events = ev};
        int n = poll(&p, 1, left > 1000 ? 1000 : (int)left);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        if (n > 0) return 0;
    }
}

int wh_tcp_connect(const char *host, const char *port, int64_t deadline)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0 || !res) return TALLOW_ENOTFOUND;
    int rc = -ECONNREFUSED;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
            rc = -errno;
            close(fd);
            continue;
        }
        rc = wait_fd(fd, POLLOUT, deadline);
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0) {
            freeaddrinfo(res);
            return fd;
        }
        if (rc == 0) rc = -soerr;
        close(fd);
        if (rc == TALLOW_ETIMEOUT) break;
    }
    freeaddrinfo(res);
    return rc;
}

int wh_write_all(int fd, const void *buf, size_t len, int64_t deadline)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(fd, POLLOUT, deadline);
            if (rc) return rc;
            continue;
        }
        if (w <= 0) return TALLOW_ECLOSED;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Writes all of buf on the socket, or through TLS, before the deadline. */
static int ws_write(wh_ws *ws, const void *buf, size_t len, int64_t deadline)
{
    if (!ws->tls) return wh_write_all(ws->fd, buf, len, deadline);
    gnutls_session_t s = ws->tls;
    const uint8_t *p = buf;
    while (len) {
        ssize_t w = gnutls_record_send(s, p, len);
        if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED) {
            int rc = wait_fd(ws->fd, gnutls_record_get_direction(s) ? POLLOUT : POLLIN, deadline);
            if (rc) return rc;
            continue;
        }
        if (w <= 0) return TALLOW_ECLOSED;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int tls_read(wh_ws *ws, int64_t deadline)
{
    gnutls_session_t s = ws->tls;
    for (;;) {
        ssize_t r = gnutls_record_recv(s, ws->in + ws->inlen, ws->incap - ws->inlen);
        if (r > 0) {
            ws->inlen += (size_t)r;
            return 0;
        }
        if (r == 0) return TALLOW_ECLOSED;
        if (r != GNUTLS_E_AGAIN && r != GNUTLS_E_INTERRUPTED) return TALLOW_ECLOSED;
        int rc = wait_fd(ws->fd, gnutls_record_get_direction(s) ? POLLOUT : POLLIN, deadline);
        if (rc) return rc;
    }
}

/* The TLS client handshake for wss://: the system's trust store (plus TALLOW_WORMHOLE_CA), the
 * certificate checked against host. */
static int tls_start(wh_ws *ws, const char *host, int64_t deadline, char *err, size_t errlen)
{
    gnutls_certificate_credentials_t cred;
    gnutls_session_t s;
    if (gnutls_certificate_allocate_credentials(&cred) < 0) return TALLOW_ENOMEM;
    ws->cred = cred;
    gnutls_certificate_set_x509_system_trust(cred);
    const char *ca = getenv("TALLOW_WORMHOLE_CA");
    if (ca && *ca && gnutls_certificate_set_x509_trust_file(cred, ca, GNUTLS_X509_FMT_PEM) <= 0) {
        snprintf(err, errlen, "TALLOW_WORMHOLE_CA: no certificate in %s", ca);
        return TALLOW_EINVAL;
    }
    if (gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NONBLOCK) < 0) return TALLOW_ENOMEM;
    ws->tls = s;
    gnutls_set_default_priority(s);
    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
    gnutls_server_name_set(s, GNUTLS_NAME_DNS, host, strlen(host));
    gnutls_session_set_verify_cert(s, host, 0);
    gnutls_transport_set_int(s, ws->fd);
    for (;;) {
        int r = gnutls_handshake(s);
        if (r == GNUTLS_E_SUCCESS) return 0;
        if (r != GNUTLS_E_AGAIN && r != GNUTLS_E_INTERRUPTED && gnutls_error_is_fatal(r)) {
            gnutls_datum_t out = {0};
            if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR &&
                gnutls_certificate_verification_status_print(
                    gnutls_session_get_verify_cert_status(s), GNUTLS_CRT_X509, &out, 0) == 0) {
                snprintf(err, errlen, "TLS with the mailbox server %s: %s", host,
                         (const char *)out.data);
                gnutls_free(out.data);
            } else {
                snprintf(err, errlen, "TLS with the mailbox server %s failed: %s", host,
                         gnutls_strerror(r));
            }
            return TALLOW_ECRYPTO;
        }
        int rc = wait_fd(ws->fd, gnutls_record_get_direction(s) ? POLLOUT : POLLIN, deadline);
        if (rc) {
            snprintf(err, errlen, "TLS with the mailbox server %s: %s", host, tallow_strerror(rc));
            return rc;
        }
    }
}

/* Reads more into ws->in. 0, or an error; TALLOW_ECLOSED at end of stream. */
static int fill(wh_ws *ws, int64_t deadline)
{
    if (ws->incap - ws->inlen < 65536) {
        size_t cap = ws->incap ? ws->incap * 2 : 131072;
        uint8_t *n = realloc(ws->in, cap);
        if (!n) return TALLOW_ENOMEM;
        ws->in = n;
        ws->incap = cap;
    }
    if (ws->tls) return tls_read(ws, deadline);
    for (;;) {
        ssize_t r = recv(ws->fd, ws->in + ws->inlen, ws->incap - ws->inlen, 0);
        if (r > 0) {
            ws->inlen += (size_t)r;
            return 0;
        }
        if (r == 0) return TALLOW_ECLOSED;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return TALLOW_ECLOSED;
        int rc = wait_fd(ws->fd, POLLIN, deadline);
        if (rc) return rc;
    }
}

static void consume(wh_ws *ws, size_t n)
{
    memmove(ws->in, ws->in + n, ws->inlen - n);
    ws->inlen -= n;
}

void wh_ws_accept_value(const char *key, char out[40])
{
    char cat[100];
    snprintf(cat, sizeof(cat), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    uint8_t sha[20]; /* SHA-1 is not in libsodium: GnuTLS has it */
    gnutls_hash_fast(GNUTLS_DIG_SHA1, cat, strlen(cat), sha);
    sodium_bin2base64(out, 40, sha, sizeof(sha), sodium_base64_VARIANT_ORIGINAL);
}

int wh_ws_connect(wh_ws *ws, const char *url, int64_t deadline, char *err, size_t errlen)
{
    memset(ws, 0, sizeof(*ws));
    ws->fd = -1;
    int secure = strncmp(url, "wss://", 6) == 0;
    if (!secure && strncmp(url, "ws://", 5) != 0) {
        snprintf(err, errlen, "mailbox URL must start with ws:// or wss:// (got '%s')", url);
        return TALLOW_EINVAL;
    }
    char host[256], port[16], path[512] = "/";
    snprintf(port, sizeof(port), "%s", secure ? "443" : "80");
    const char *h = url + (secure ? 6 : 5), *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    if (hl == 0 || hl >= sizeof(host)) {
        snprintf(err, errlen, "bad mailbox URL '%s'", url);
        return TALLOW_EINVAL;
    }
    memcpy(host, h, hl);
    host[hl] = 0;
    if (slash) snprintf(path, sizeof(path), "%s", slash);
    char *colon = strrchr(host, ':');
    if (colon && !strchr(colon, ']')) {
        snprintf(port, sizeof(port), "%s", colon + 1);
        *colon = 0;
    }
    char hosthdr[300];
    snprintf(hosthdr, sizeof(hosthdr), "%s:%s", host, port);
    if (host[0] == '[') {
        memmove(host, host + 1, strlen(host));
        char *e = strchr(host, ']');
        if (e) *e = 0;
    }
    int fd = wh_tcp_connect(host, port, deadline);
    if (fd < 0) {
        snprintf(err, errlen, "cannot reach the mailbox server %s: %s", url, tallow_strerror(fd));
        return fd;
    }
    ws->fd = fd;
    if (secure) {
        int trc = tls_start(ws, host, deadline, err, errlen);
        if (trc) return trc;
    }
    uint8_t nonce[16];
    randombytes_buf(nonce, sizeof(nonce));
    char key[32];
    sodium_bin2base64(key, sizeof(key), nonce, sizeof(nonce), sodium_base64_VARIANT_ORIGINAL);
    char req[1200];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     path, hosthdr, key);
    int rc = ws_write(ws, req, (size_t)n, deadline);
    char *end = NULL;
    while (!rc) {
        if (ws->inlen && (end = memmem(ws->in, ws->inlen, "\r\n\r\n", 4))) break;
        if (ws->inlen > 16384)
            rc = TALLOW_EPROTO;
        else
            rc = fill(ws, deadline);
    }
    if (rc) {
        snprintf(err, errlen, "mailbox server %s: no WebSocket upgrade (%s)", url,
                 tallow_strerror(rc));
        return rc;
    }
    size_t hlen = (size_t)(end - (char *)ws->in) + 4;
    char *hdr = strndup((char *)ws->in, hlen);
    consume(ws, hlen);
    if (!hdr) return TALLOW_ENOMEM;
    char want[40];
    wh_ws_accept_value(key, want);
    int ok101 = strncmp(hdr, "HTTP/1.1 101", 12) == 0;
    int okacc = 0;
    for (char *line = strstr(hdr, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
        const char *l = line + 2;
        if (strncasecmp(l, "Sec-WebSocket-Accept:", 21) == 0) {
            l += 21;
            while (*l == ' ')
                l++;
            okacc = strncmp(l, want, strlen(want)) == 0;
        }
    }
    if (!ok101 || !okacc) {
        char *eol = strstr(hdr, "\r\n");
        if (eol) *eol = 0;
        snprintf(err, errlen, "mailbox server %s refused the WebSocket upgrade (%s)", url, hdr);
        free(hdr);
        return TALLOW_EPROTO;
    }
    free(hdr);
    return 0;
}

static int send_frame(wh_ws *ws, int opcode, const void *data, size_t len, int64_t deadline)
{
    uint8_t hdr[14], mask[4];
    size_t h = 0;
    hdr[h++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        hdr[h++] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (uint8_t)(len >> 8);
        hdr[h++] = (uint8_t)len;
    } else {
        hdr[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    randombytes_buf(mask, 4);
    memcpy(hdr + h, mask, 4);
    h += 4;
    uint8_t *buf = malloc(h + len);
    if (!buf) return TALLOW_ENOMEM;
    memcpy(buf, hdr, h);
    const uint8_t *d = data;
    for (size_t i = 0; i < len; i++)
        buf[h + i] = d[i] ^ mask[i & 3];
    int rc = ws_write(ws, buf, h + len, deadline);
    free(buf);
    return rc;
}

int wh_ws_send(wh_ws *ws, const char *text, size_t len, int64_t deadline)
{
    if (ws->fd < 0) return TALLOW_ECLOSED;
    return send_frame(ws, 0x1, text, len, deadline);
}

int wh_ws_recv(wh_ws *ws, const char **out, size_t *outlen, int64_t deadline)
{
    if (ws->fd < 0) return TALLOW_ECLOSED;
    free(ws->msg);
    ws->msg = NULL;
    ws->msglen = 0;
    int in_msg = 0;
    for (;;) {
        /* parse one frame if complete */
        if (ws->inlen >= 2) {
            uint8_t b0 = ws->in[0], b1 = ws->in[1];
            size_t h = 2;
            uint64_t len = b1 & 0x7f;
            if (len == 126) {
                if (ws->inlen < 4) goto more;
                len = ((uint64_t)ws->in[2] << 8) | ws->in[3];
                h = 4;
            } else if (len == 127) {
                if (ws->inlen < 10) goto more;
                len = 0;
                for (int i = 0; i < 8; i++)
                    len = (len << 8) | ws->in[2 + i];
                h = 10;
            }
            int masked = b1 & 0x80;
            if (masked) h += 4;
            if (len > WS_MAX_MESSAGE) return TALLOW_ETOOBIG;
            if (ws->inlen < h + len) goto more;
            uint8_t *p = ws->in + h;
            if (masked)
                for (uint64_t i = 0; i < len; i++)
                    p[i] ^= ws->in[h - 4 + (i & 3)];
            int op = b0 & 0x0f, fin = b0 & 0x80;
            if (op == 0x9) { /* ping */
                uint8_t copy[125];
                size_t cl = len < sizeof(copy) ? (size_t)len : sizeof(copy);
                memcpy(copy, p, cl);
                consume(ws, h + (size_t)len);
                int rc = send_frame(ws, 0xA, copy, cl, deadline);
                if (rc) return rc;
                continue;
            }
            if (op == 0xA) {
                consume(ws, h + (size_t)len);
                continue;
            }
            if (op == 0x8) {
                consume(ws, h + (size_t)len);
                send_frame(ws, 0x8, NULL, 0, deadline);
                return TALLOW_ECLOSED;
            }
            if (op == 0x1 || op == 0x2 || (op == 0x0 && in_msg)) {
                if (ws->msglen + len > WS_MAX_MESSAGE) return TALLOW_ETOOBIG;
                char *m = realloc(ws->msg, ws->msglen + (size_t)len + 1);
                if (!m) return TALLOW_ENOMEM;
                ws->msg = m;
                memcpy(m + ws->msglen, p, (size_t)len);
                ws->msglen += (size_t)len;
                m[ws->msglen] = 0;
                consume(ws, h + (size_t)len);
                in_msg = 1;
                if (fin) {
                    *out = ws->msg;
                    *outlen = ws->msglen;
                    return 0;
                }
                continue;
            }
            return TALLOW_EPROTO;
        }
    more:;
        int rc = fill(ws, deadline);
        if (rc) return rc;
    }
}

void wh_ws_close(wh_ws *ws)
{
    if (ws->fd >= 0) {
        send_frame(ws, 0x8, "\x03\xe8", 2, wh_now_ms() + 500);
        if (ws->tls) gnutls_bye(ws->tls, GNUTLS_SHUT_WR);
        close(ws->fd);
    }
    if (ws->tls) gnutls_deinit(ws->tls);
    if (ws->cred) gnutls_certificate_free_credentials(ws->cred);
    ws->tls = ws->cred = NULL;
    ws->fd = -1;
    free(ws->in);
    free(ws->msg);
    ws->in = NULL;
    ws->msg = NULL;
    ws->inlen = ws->incap = ws->msglen = 0;
}

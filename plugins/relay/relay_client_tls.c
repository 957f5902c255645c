/* plugins/relay/relay_client_tls.c — the relay client's connection I/O and `--relay
 * tls://HOST:PORT`: GnuTLS over its nonblocking TCP connection (after the SOCKS5 CONNECT when
 * there is a proxy). The handshake is driven by the event loop (state CL_TLS); the RoomJoin
 * leaves only once the relay is verified: by the system trust store and the host name, or —
 * when TALLOW_RELAY_PIN (--relay-pin) is set — by the SHA-256 of the certificate's
 * SubjectPublicKeyInfo matching one of the pins (base64 or hex, comma-separated), which then
 * replaces CA trust. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "relay_cl.h"

#define PIN_LEN 32

const char *relay_cl_strip_scheme(const char *addr, int *tls)
{
    *tls = 0;
    if (strncmp(addr, "tls://", 6) == 0) {
        *tls = 1;
        return addr + 6;
    }
    if (strncmp(addr, "tcp://", 6) == 0) return addr + 6;
    return addr;
}

/* One pin (base64 with or without padding, or hex) into out. 0 or TALLOW_EINVAL. */
static int pin_decode(const char *s, size_t len, uint8_t out[PIN_LEN])
{
    size_t bin = 0;
    if (len == 2 * PIN_LEN)
        return sodium_hex2bin(out, PIN_LEN, s, len, NULL, &bin, NULL) == 0 && bin == PIN_LEN
                   ? 0
                   : TALLOW_EINVAL;
    if (sodium_base642bin(out, PIN_LEN, s, len, NULL, &bin, NULL, sodium_base64_VARIANT_ORIGINAL) ==
            0 &&
        bin == PIN_LEN)
        return 0;
    if (sodium_base642bin(out, PIN_LEN, s, len, NULL, &bin, NULL,
                          sodium_base64_VARIANT_ORIGINAL_NO_PADDING) == 0 &&
        bin == PIN_LEN)
        return 0;
    return TALLOW_EINVAL;
}

int relay_cl_pins_check(const char *pins)
{
    uint8_t tmp[PIN_LEN];
    size_t n = 0;
    for (const char *p = pins; *p;) {
        size_t l = strcspn(p, ", ");
        if (l && pin_decode(p, l, tmp) < 0) return TALLOW_EINVAL;
        if (l) n++;
        p += l;
        p += strspn(p, ", ");
    }
    return n ? 0 : TALLOW_EINVAL;
}

static int pin_matches(const char *pins, const uint8_t key[PIN_LEN])
{
    uint8_t want[PIN_LEN];
    for (const char *p = pins; *p;) {
        size_t l = strcspn(p, ", ");
        if (l && pin_decode(p, l, want) == 0 && sodium_memcmp(want, key, PIN_LEN) == 0) return 1;
        p += l;
        p += strspn(p, ", ");
    }
    return 0;
}

void relay_cl_tls_free(relay_cl *cl)
{
    if (cl->tls_s) gnutls_deinit(cl->tls_s);
    cl->tls_s = NULL;
}

void relay_cl_tls_cred_free(relay_cl *cl)
{
    if (cl->tls_cred) gnutls_certificate_free_credentials(cl->tls_cred);
    cl->tls_cred = NULL;
}

static int is_ip_literal(const char *h)
{
    return strchr(h, ':') != NULL || strspn(h, "0123456789.") == strlen(h);
}

int relay_cl_tls_start(relay_cl *cl)
{
    relay_cl_tls_free(cl);
    if (!cl->tls_cred) {
        if (gnutls_certificate_allocate_credentials(&cl->tls_cred) < 0) return TALLOW_ENOMEM;
        if (!cl->pins && gnutls_certificate_set_x509_system_trust(cl->tls_cred) < 0)
            cl->host_pl->host->log(cl->host_pl->host, TALLOW_LOG_WARN,
                                   "relay %s: cannot load the system's trusted certificates",
                                   cl->hostport);
    }
    if (gnutls_init(&cl->tls_s, GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0) {
        cl->tls_s = NULL;
        return TALLOW_ENOMEM;
    }
    gnutls_set_default_priority(cl->tls_s);
    gnutls_credentials_set(cl->tls_s, GNUTLS_CRD_CERTIFICATE, cl->tls_cred);
    if (!is_ip_literal(cl->host))
        gnutls_server_name_set(cl->tls_s, GNUTLS_NAME_DNS, cl->host, strlen(cl->host));
    if (!cl->pins) gnutls_session_set_verify_cert(cl->tls_s, cl->host, 0);
    gnutls_transport_set_int(cl->tls_s, cl->fd);
    gnutls_handshake_set_timeout(cl->tls_s, 0);
    cl->state = CL_TLS;
    relay_cl_tls_step(cl);
    return 0;
}

/* The pinned key check, once the handshake is done. 0 or TALLOW_ERELAY (message in why). */
static int check_pin(relay_cl *cl, char *why, size_t cap)
{
    unsigned n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(cl->tls_s, &n);
    gnutls_x509_crt_t crt;
    uint8_t id[64];
    size_t idlen = sizeof id;
    int ok = TALLOW_ERELAY;
    if (!certs || n == 0 || gnutls_x509_crt_init(&crt) < 0) {
        snprintf(why, cap, "the relay sent no certificate");
        return TALLOW_ERELAY;
    }
    if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0 &&
        gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, id, &idlen) == 0 &&
        idlen == PIN_LEN) {
        if (pin_matches(cl->pins, id)) {
            ok = 0;
        } else {
            char b64[sodium_base64_ENCODED_LEN(PIN_LEN, sodium_base64_VARIANT_ORIGINAL)];
            sodium_bin2base64(b64, sizeof b64, id, PIN_LEN, sodium_base64_VARIANT_ORIGINAL);
            snprintf(why, cap,
                     "the relay's key does not match --relay-pin (its key is sha256 %s): "
                     "refusing it",
                     b64);
        }
    } else {
        snprintf(why, cap, "cannot read the relay's certificate");
    }
    gnutls_x509_crt_deinit(crt);
    return ok;
}

void relay_cl_tls_step(relay_cl *cl)
{
    int r;
    do {
        r = gnutls_handshake(cl->tls_s);
    } while (r == GNUTLS_E_INTERRUPTED);
    if (r == GNUTLS_E_AGAIN) {
        unsigned ev =
            TALLOW_IO_READ | (gnutls_record_get_direction(cl->tls_s) ? TALLOW_IO_WRITE : 0);
        if (ev != cl->events) {
            cl->events = ev;
            tallow_io_set(cl->io, ev);
        }
        return;
    }
    char why[700];
    if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
        gnutls_datum_t out = {0};
        unsigned st = gnutls_session_get_verify_cert_status(cl->tls_s);
        gnutls_certificate_verification_status_print(st, GNUTLS_CRT_X509, &out, 0);
        snprintf(why, sizeof why,
                 "the relay's certificate is not trusted (%s): give the relay's key with "
                 "--relay-pin SHA256, or give the relay a certificate this system trusts for "
                 "the name %s",
                 out.data ? (const char *)out.data : "verification failed", cl->host);
        gnutls_free(out.data);
        cl->up->fail(cl, TALLOW_ERELAY, why);
        return;
    }
    if (r < 0) {
        if (cl->paired) { /* resume goes on */
            cl->up->lost(cl, TALLOW_ECLOSED);
            return;
        }
        snprintf(why, sizeof why,
                 "TLS handshake failed: %s (does this relay serve TLS? a plain relay is "
                 "HOST:PORT without tls://)",
                 gnutls_strerror(r));
        cl->up->fail(cl, TALLOW_ERELAY, why);
        return;
    }
    if (cl->pins && check_pin(cl, why, sizeof why) < 0) {
        cl->up->fail(cl, TALLOW_ERELAY, why);
        return;
    }
    cl->last_rx = tallow_loop_now(cl->loop);
    if (cl->up->join(cl) < 0) cl->up->lost(cl, TALLOW_ECLOSED);
}

ssize_t relay_cl_recv(relay_cl *cl, void *buf, size_t len)
{
    if (!cl->tls_s) return read(cl->fd, buf, len);
    ssize_t n = gnutls_record_recv(cl->tls_s, buf, len);
    if (n >= 0) return n;
    if (n == GNUTLS_E_AGAIN) {
        errno = EAGAIN;
    } else if (n == GNUTLS_E_INTERRUPTED) {
        errno = EINTR;
    } else if (n == GNUTLS_E_PREMATURE_TERMINATION) {
        return 0;
    } else {
        errno = EPROTO;
    }
    return -1;
}

int relay_cl_pending(relay_cl *cl)
{
    return cl->tls_s && gnutls_record_check_pending(cl->tls_s) > 0;
}

static ssize_t tls_wr(void *ud, const void *p, size_t len)
{
    relay_cl *cl = ud;
    ssize_t n = gnutls_record_send(cl->tls_s, p, len);
    if (n >= 0) return n;
    errno = n == GNUTLS_E_AGAIN ? EAGAIN : n == GNUTLS_E_INTERRUPTED ? EINTR : EPIPE;
    return -1;
}

ssize_t relay_cl_flush_out(relay_cl *cl)
{
    if (!cl->tls_s) return relay_outq_flush(&cl->out, cl->fd);
    return relay_outq_flush_fn(&cl->out, tls_wr, cl);
}

ssize_t relay_cl_write(relay_cl *cl, const void *p, size_t len)
{
    if (!cl->tls_s) return send(cl->fd, p, len, MSG_NOSIGNAL);
    ssize_t n;
    do {
        n = tls_wr(cl, p, len);
    } while (n < 0 && errno == EINTR);
    return n;
}

void relay_cl_update(relay_cl *cl)
{
    if (!cl->io) return;
    unsigned ev = TALLOW_IO_READ;
    if (cl->state == CL_CONNECTING || (cl->state >= CL_JOINING && cl->out.bytes))
        ev |= TALLOW_IO_WRITE;
    if (cl->state == CL_SOCKS && cl->socks_out_len) ev |= TALLOW_IO_WRITE;
    if (cl->state == CL_TLS) return; /* relay_cl_tls_step sets them */
    if (ev != cl->events) {
        cl->events = ev;
        tallow_io_set(cl->io, ev);
    }
}

void relay_cl_tls_bye(relay_cl *cl)
{
    if (cl->tls_s) gnutls_bye(cl->tls_s, GNUTLS_SHUT_WR);
}

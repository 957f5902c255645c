/* plugins/relay/relay_tls_srv.c — the relay serving TLS (`tallow relay --cert FILE --key FILE`).
 * With a certificate the listener is TLS-only. Each accepted TCP connection gets a bridge: a
 * GnuTLS session on the TCP socket and one end of a socketpair whose other end the relay
 * serves as an ordinary connection (rooms, limits and forwarding are unchanged; the per-address
 * limits count the TCP peer's address). The bridge copies decrypted bytes to the relay and the
 * relay's bytes into TLS records, in user space: a TLS connection never takes the splice() fast
 * path (relay_stream.c gives no pipe to a conn marked tls). A client that speaks plain relay
 * protocol to it gets a plain RoomLeave saying the relay serves TLS only, then the close.
 * Credentials are refcounted: a SIGHUP reload installs new ones for new connections while
 * running sessions keep theirs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "relay_srv.h"

#define TLSB_BUF (16u * 1024u + 256u)

struct relay_tlscred {
    gnutls_certificate_credentials_t cred;
    int refs;
};

struct relay_tlsb {
    relay_srv *srv;
    struct relay_tlsb *prev, *next; /* srv->tlsb */
    relay_tlscred *cred;
    gnutls_session_t s;
    int tfd, ufd; /* TCP (TLS) and the bridge's end of the socketpair */
    tallow_io *tio, *uio;
    unsigned tev, uev;
    int hs_done, plain_checked;
    /* decrypted, waiting to go to the relay */
    uint8_t in[TLSB_BUF];
    size_t in_off, in_len;
    /* from the relay, waiting to go out as TLS (resent as it is after GNUTLS_E_AGAIN) */
    uint8_t out[TLSB_BUF];
    size_t out_len;
    int u_eof;             /* the relay closed its end: finish what is queued, then close_notify */
    uint64_t eof_deadline; /* ... within the relay's drain time (relay_tls_sweep) */
};

int relay_tlscred_load(relay_srv *s, const char *cert, const char *key, relay_tlscred **out)
{
    relay_tlscred *c = calloc(1, sizeof *c);
    if (!c) return TALLOW_ENOMEM;
    if (gnutls_certificate_allocate_credentials(&c->cred) < 0) {
        free(c);
        return TALLOW_ENOMEM;
    }
    int r = gnutls_certificate_set_x509_key_file(c->cred, cert, key, GNUTLS_X509_FMT_PEM);
    if (r < 0) {
        tallow_ctx_set_error(s->ctx, "relay: cannot load the TLS certificate %s and key %s: %s",
                             cert, key, gnutls_strerror(r));
        gnutls_certificate_free_credentials(c->cred);
        free(c);
        return TALLOW_EINVAL;
    }
    c->refs = 1;
    *out = c;
    return 0;
}

void relay_tlscred_put(relay_tlscred *c)
{
    if (!c || --c->refs > 0) return;
    gnutls_certificate_free_credentials(c->cred);
    free(c);
}

static void tlsb_free(relay_tlsb *b)
{
    relay_srv *s = b->srv;
    if (b->tio) tallow_io_stop(b->tio);
    if (b->uio) tallow_io_stop(b->uio);
    if (b->s) gnutls_deinit(b->s);
    if (b->tfd >= 0) close(b->tfd);
    if (b->ufd >= 0) close(b->ufd);
    relay_tlscred_put(b->cred);
    if (b->prev)
        b->prev->next = b->next;
    else
        s->tlsb = b->next;
    if (b->next) b->next->prev = b->prev;
    sodium_memzero(b->in, sizeof b->in);
    sodium_memzero(b->out, sizeof b->out);
    free(b);
}

static void tlsb_events(relay_tlsb *b)
{
    unsigned tev = 0, uev = 0;
    if (!b->hs_done) {
        uev = TALLOW_IO_READ; /* the relay's end closing (join timeout) ends the bridge */
        tev = TALLOW_IO_READ |
              (b->plain_checked && gnutls_record_get_direction(b->s) ? TALLOW_IO_WRITE : 0);
    } else {
        if (b->in_len == 0) tev |= TALLOW_IO_READ;
        if (b->out_len) tev |= TALLOW_IO_WRITE;
        if (b->in_len) uev |= TALLOW_IO_WRITE;
        if (!b->out_len && !b->u_eof) uev |= TALLOW_IO_READ;
    }
    if (tev != b->tev) tallow_io_set(b->tio, b->tev = tev);
    if (uev != b->uev) tallow_io_set(b->uio, b->uev = uev);
}

/* A client speaking plain relay protocol (its first byte is a frame length, not a TLS
 * handshake record): tell it in its own protocol. */
static void refuse_plain(relay_tlsb *b)
{
    uint8_t buf[RELAY_CTRL_MAX];
    static const char why[] = "this relay serves TLS only: use --relay tls://HOST:PORT";
    tallow_msg_RoomLeave m = {.reason = {(const uint8_t *)why, sizeof why - 1}};
    relay_count_refused(b->srv, RR_PLAIN_ON_TLS);
    int n = relay_ctrl_frame(&tallow_msgtype_RoomLeave, &m, buf, sizeof buf);
    if (n > 0) (void)!send(b->tfd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    shutdown(b->tfd, SHUT_WR);
}

/* Moves bytes both ways as far as the sockets allow. 1 if the bridge is gone. */
static int tlsb_pump(relay_tlsb *b)
{
    if (!b->hs_done) {
        /* the relay writes to a connection before its RoomJoin only to close it (join timeout,
         * draining): a client stalling the handshake goes with it */
        uint8_t x;
        ssize_t r = recv(b->ufd, &x, 1, MSG_PEEK | MSG_DONTWAIT);
        if (r >= 0 || (errno != EAGAIN && errno != EINTR)) return tlsb_free(b), 1;
    }
    if (!b->plain_checked) {
        uint8_t x;
        ssize_t r = recv(b->tfd, &x, 1, MSG_PEEK | MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
        if (r <= 0) return tlsb_free(b), 1;
        if (x != 0x16) {
            refuse_plain(b);
            return tlsb_free(b), 1;
        }
        b->plain_checked = 1;
    }
    if (!b->hs_done) {
        int r = gnutls_handshake(b->s);
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
            tlsb_events(b);
            return 0;
        }
        if (r < 0) {
            RELAY_LOG(b->srv, TALLOW_LOG_DEBUG, "TLS handshake failed: %s", gnutls_strerror(r));
            relay_count_refused(b->srv, RR_TLS_HANDSHAKE);
            return tlsb_free(b), 1;
        }
        b->hs_done = 1;
    }
    for (int round = 0; round < 64; round++) {
        int moved = 0;
        /* TLS -> relay */
        if (b->in_len == 0) {
            ssize_t n = gnutls_record_recv(b->s, b->in, sizeof b->in);
            if (n > 0) {
                b->in_off = 0;
                b->in_len = (size_t)n;
                moved = 1;
            } else if (n != GNUTLS_E_AGAIN && n != GNUTLS_E_INTERRUPTED) {
                return tlsb_free(b), 1; /* EOF or error: the relay sees its end close */
            }
        }
        if (b->in_len) {
            ssize_t w = send(b->ufd, b->in + b->in_off, b->in_len, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0) {
                b->in_off += (size_t)w;
                b->in_len -= (size_t)w;
                moved = 1;
            } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                return tlsb_free(b), 1;
            }
        }
        /* relay -> TLS */
        if (!b->out_len && !b->u_eof) {
            ssize_t n = recv(b->ufd, b->out, 16u * 1024u, MSG_DONTWAIT);
            if (n > 0) {
                b->out_len = (size_t)n;
                moved = 1;
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                b->u_eof = 1;
                b->eof_deadline = tallow_loop_now(b->srv->loop) + b->srv->lim.drain_ms;
            }
        }
        if (b->out_len) {
            ssize_t w = gnutls_record_send(b->s, b->out, b->out_len);
            if (w > 0) {
                b->out_len -= (size_t)w;
                if (b->out_len) memmove(b->out, b->out + w, b->out_len);
                moved = 1;
            } else if (w != GNUTLS_E_AGAIN && w != GNUTLS_E_INTERRUPTED) {
                return tlsb_free(b), 1;
            }
        }
        if (b->u_eof && !b->out_len) {
            gnutls_bye(b->s, GNUTLS_SHUT_WR);
            shutdown(b->tfd, SHUT_WR);
            return tlsb_free(b), 1;
        }
        if (!moved && !(b->in_len == 0 && gnutls_record_check_pending(b->s) > 0)) break;
    }
    tlsb_events(b);
    return 0;
}

static void tlsb_io(tallow_io *io, int fd, unsigned events, void *ud)
{
    (void)io;
    (void)fd;
    (void)events;
    tlsb_pump(ud);
}

int relay_tls_accept(relay_srv *s, int tfd, int *relay_fd)
{
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) < 0) return -errno;
    relay_tlsb *b = calloc(1, sizeof *b);
    if (!b) {
        close(sp[0]);
        close(sp[1]);
        return TALLOW_ENOMEM;
    }
    int big = 1024 * 1024;
    setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    setsockopt(sp[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    b->srv = s;
    b->tfd = tfd;
    b->ufd = sp[1];
    b->cred = s->tls;
    s->tls->refs++;
    if (gnutls_init(&b->s, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0) {
        b->s = NULL;
        goto fail;
    }
    gnutls_set_default_priority(b->s);
    gnutls_credentials_set(b->s, GNUTLS_CRD_CERTIFICATE, b->cred->cred);
    gnutls_certificate_server_set_request(b->s, GNUTLS_CERT_IGNORE);
    gnutls_transport_set_int(b->s, tfd);
    b->tio = tallow_io_start(s->loop, tfd, TALLOW_IO_READ, tlsb_io, b);
    b->uio = tallow_io_start(s->loop, sp[1], TALLOW_IO_READ, tlsb_io, b);
    if (!b->tio || !b->uio) goto fail;
    b->tev = b->uev = TALLOW_IO_READ;
    b->next = s->tlsb;
    if (s->tlsb) s->tlsb->prev = b;
    s->tlsb = b;
    *relay_fd = sp[0];
    return 0;
fail:
    b->tfd = -1; /* the caller closes it */
    if (b->tio) tallow_io_stop(b->tio);
    if (b->uio) tallow_io_stop(b->uio);
    if (b->s) gnutls_deinit(b->s);
    close(sp[0]);
    close(sp[1]);
    relay_tlscred_put(b->cred);
    free(b);
    return TALLOW_ENOMEM;
}

void relay_tls_sweep(relay_srv *s, uint64_t now)
{
    relay_tlsb *next;
    for (relay_tlsb *b = s->tlsb; b; b = next) {
        next = b->next;
        if (b->u_eof && now >= b->eof_deadline) tlsb_free(b); /* a peer that stopped reading */
    }
}

void relay_tls_stop(relay_srv *s)
{
    while (s->tlsb)
        tlsb_free(s->tlsb);
    relay_tlscred_put(s->tls);
    s->tls = NULL;
}

/* tallow/nat.h — the core's UDP endpoint and the NAT discovery interface.
 *
 * One UDP socket per session is shared by discovery (STUN), connectivity checks and QUIC, so the
 * mapping STUN learns is the one QUIC will use. The endpoint demultiplexes datagrams by their
 * first byte (RFC 7983 / RFC 9443): 0..3 STUN, 20..63 tallow connectivity checks, 64..255 QUIC. */
#ifndef TALLOW_NAT_H
#define TALLOW_NAT_H

#include "common.h"
#include <sys/socket.h>

typedef struct tallow_udp tallow_udp;

enum tallow_udp_class { TALLOW_UDP_STUN = 0, TALLOW_UDP_CHECK = 1, TALLOW_UDP_QUIC = 2 };

/* One received datagram; everything borrowed for the call. */
typedef void (*tallow_udp_recv_cb)(tallow_udp *u, const struct sockaddr *from, socklen_t fromlen,
                                   const uint8_t *data, size_t len, void *ud);

/* Opens a UDP endpoint bound to bind_addr (NULL: [::] dual-stack, carrying IPv4 and IPv6, any
 * port; 0.0.0.0 where the machine has no IPv6). IPv4 peers are always plain AF_INET addresses
 * to the endpoint's users: received ::ffff:a.b.c.d is handed on as a.b.c.d, and an AF_INET
 * destination is mapped for an IPv6 socket. Refuses with TALLOW_EPOLICY when policy forbids
 * P2P. Caller owns *out; free with tallow_udp_close. */
TALLOW_API int tallow_udp_open(tallow_ctx *ctx, const struct sockaddr *bind_addr, socklen_t len,
                               tallow_udp **out);
TALLOW_API void tallow_udp_close(tallow_udp *u);
/* Sets the handler of one class (NULL removes). Datagrams of a class without a handler drop. */
TALLOW_API void tallow_udp_on(tallow_udp *u, enum tallow_udp_class cls, tallow_udp_recv_cb cb,
                              void *ud);
/* Sends one datagram. 0, -EAGAIN (dropped: socket full), TALLOW_EPOLICY, or -errno. */
TALLOW_API int tallow_udp_send(tallow_udp *u, const struct sockaddr *to, socklen_t tolen,
                               const uint8_t *data, size_t len);
/* Sends several datagrams of equal size segsz (the last may be shorter) to one address, with
 * UDP_SEGMENT where the kernel has it, else sendmmsg. Returns datagrams sent or -errno. */
TALLOW_API int tallow_udp_send_batch(tallow_udp *u, const struct sockaddr *to, socklen_t tolen,
                                     const uint8_t *data, size_t len, size_t segsz);
/* The IP MTU of the kernel's route towards peer when the peer is local or on the network of one
 * of our (non point-to-point) interfaces: there the first hop is the whole path, so datagrams up
 * to that size minus the IP and UDP headers arrive unfragmented, barring misconfiguration.
 * Returns the MTU, 0 when the peer is farther away (unknown path: use the internet default),
 * TALLOW_EINVAL for a bad address, or -errno. The endpoint receives datagrams up to 64 KiB. */
TALLOW_API int tallow_udp_path_mtu(const tallow_udp *u, const struct sockaddr *peer, socklen_t len);
/* Waits up to timeout_ms for datagrams and hands those of class `only` to its handler from
 * inside this call (the others drop): for a transport that finishes on its own while it closes,
 * outside the loop. Not from inside a handler; the handler must not close u. Returns 1 if the
 * socket was read, 0 on timeout, or a negative error. */
TALLOW_API int tallow_udp_wait(tallow_udp *u, enum tallow_udp_class only, int timeout_ms);
TALLOW_API int tallow_udp_fd(const tallow_udp *u);
TALLOW_API int tallow_udp_local_addr(const tallow_udp *u, struct sockaddr_storage *out,
                                     socklen_t *len);
TALLOW_API tallow_ctx *tallow_udp_ctx(const tallow_udp *u);

#define TALLOW_DISCOVERY_OPS_VERSION 1

/* Called once: status 0 with the mapped address, or a negative error (mapped NULL). */
typedef void (*tallow_discovery_cb)(int status, const struct sockaddr *mapped, socklen_t len,
                                    void *ud);

typedef struct tallow_discovery_ops {
    uint32_t version;
    uint32_t struct_size;
    const char *name; /* "stun" */
    /* Learns the server-reflexive mapping of u's own port from one server, giving up after
     * timeout_ms. Returns 0 (cb follows, never from inside this call) or an error (no cb). */
    int (*discover)(void *plugin_state, tallow_udp *u, const struct sockaddr *server,
                    socklen_t server_len, uint32_t timeout_ms, tallow_discovery_cb cb, void *ud);
} tallow_discovery_ops;

TALLOW_API const tallow_discovery_ops *tallow_discovery_find(tallow_ctx *ctx, const char *name,
                                                             void **plugin_state);

#endif

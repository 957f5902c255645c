/* core/net/udp.c — the session's UDP endpoint: one nonblocking socket shared by STUN, connectivity
 * checks and QUIC, demultiplexed by first byte (RFC 7983 / 9443), with batched receive
 * (recvmmsg, and UDP_GRO where the kernel has it) and batched send (UDP_SEGMENT, else
 * sendmmsg), and the route MTU towards a peer that is local or on a directly attached network.
 * Policy no_p2p refuses to open it. By default
 * the socket is dual-stack IPv6 (IPv4 when the machine has no IPv6); IPv4-mapped addresses
 * (::ffff:a.b.c.d) never leave this file: users see and pass plain IPv4 addresses. */
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctx_internal.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

#define UDP_BATCH 32
/* Any datagram fits: a slot's pages are only touched as far as datagrams fill them, so small
 * datagrams cost one page per slot. */
#define UDP_MAX_DGRAM 65536
#define UDP_GSO_BYTES 65000 /* one UDP_SEGMENT send is one skb: stay under 64 KiB */

struct tallow_udp {
    tallow_ctx *ctx;
    int fd;
    tallow_io *io;
    int family; /* the socket's: AF_INET, or AF_INET6 (then it also carries IPv4 if dual) */
    int gso;    /* 1 while UDP_SEGMENT works, 0 once it failed */
    int gro;    /* 1 if the kernel coalesces received datagrams (UDP_GRO) */
    struct {
        tallow_udp_recv_cb cb;
        void *ud;
    } handlers[3];
    uint8_t *rxbuf;  /* UDP_BATCH * UDP_MAX_DGRAM */
    int dispatching; /* inside on_readable: a close waits until it returns */
    int only;        /* inside tallow_udp_wait: the one class dispatched, else -1 */
    int close_pending;
};

static void udp_free(tallow_udp *u)
{
    close(u->fd);
    free(u->rxbuf);
    free(u);
}

static int classify(uint8_t b)
{
    if (b <= 3) return TALLOW_UDP_STUN;
    if (b >= 20 && b <= 63) return TALLOW_UDP_CHECK;
    if (b >= 64) return TALLOW_UDP_QUIC;
    return -1;
}

/* The destination as our socket wants it: an IPv4 address becomes ::ffff:a.b.c.d on an IPv6
 * socket, a mapped one plain IPv4 on an IPv4 socket. Returns to itself or tmp. */
static const struct sockaddr *udp_dest(const tallow_udp *u, const struct sockaddr *to,
                                       socklen_t *tolen, struct sockaddr_storage *tmp)
{
    if (!to) return to;
    if (u->family == AF_INET6 && to->sa_family == AF_INET &&
        *tolen >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const void *)to;
        struct sockaddr_in6 *m = (struct sockaddr_in6 *)tmp;
        memset(tmp, 0, sizeof(*tmp));
        m->sin6_family = AF_INET6;
        m->sin6_port = in->sin_port;
        m->sin6_addr.s6_addr[10] = m->sin6_addr.s6_addr[11] = 0xff;
        memcpy(&m->sin6_addr.s6_addr[12], &in->sin_addr, 4);
        *tolen = sizeof(*m);
        return (const struct sockaddr *)tmp;
    }
    if (u->family == AF_INET && to->sa_family == AF_INET6 &&
        *tolen >= (socklen_t)sizeof(struct sockaddr_in6) && *tolen <= (socklen_t)sizeof(*tmp)) {
        memcpy(tmp, to, *tolen);
        socklen_t n = tallow_sockaddr_unmap(tmp, *tolen);
        if (tmp->ss_family == AF_INET) {
            *tolen = n;
            return (const struct sockaddr *)tmp;
        }
    }
    return to;
}

/* The segment size of a coalesced receive (UDP_GRO's control message), else 0. */
static size_t gro_segsz(struct msghdr *mh)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm))
        if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO &&
            cm->cmsg_len >= CMSG_LEN(sizeof(int))) {
            int seg;
            memcpy(&seg, CMSG_DATA(cm), sizeof(seg));
            return seg > 0 ? (size_t)seg : 0;
        }
    return 0;
}

static void on_readable(tallow_io *io, int fd, unsigned events, void *ud)
{
    tallow_udp *u = ud;
    struct mmsghdr msgs[UDP_BATCH];
    struct iovec iov[UDP_BATCH];
    struct sockaddr_storage from[UDP_BATCH];
    /* UDP_GRO: each slot may hold several datagrams of one sender, cut at segsz; they are
     * handed on one by one from where they landed (no copy). */
    struct {
        _Alignas(struct cmsghdr) char buf[CMSG_SPACE(sizeof(int))];
    } ctl[UDP_BATCH];
    /* Bounded: at most 8 batches per wake-up so one busy peer cannot starve the loop. */
    for (int round = 0; round < 8; round++) {
        for (int i = 0; i < UDP_BATCH; i++) {
            iov[i].iov_base = u->rxbuf + (size_t)i * UDP_MAX_DGRAM;
            iov[i].iov_len = UDP_MAX_DGRAM;
            memset(&msgs[i], 0, sizeof(msgs[i]));
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &from[i];
            msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
            if (u->gro) {
                msgs[i].msg_hdr.msg_control = ctl[i].buf;
                msgs[i].msg_hdr.msg_controllen = sizeof(ctl[i].buf);
            }
        }
        int n = recvmmsg(u->fd, msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0) return;
        for (int i = 0; i < n; i++) {
            size_t len = msgs[i].msg_len;
            if (len == 0) continue;
            size_t seg = u->gro ? gro_segsz(&msgs[i].msg_hdr) : 0;
            if (!seg || seg > len) seg = len;
            socklen_t flen = tallow_sockaddr_unmap(&from[i], msgs[i].msg_hdr.msg_namelen);
            for (size_t off = 0; off < len; off += seg) {
                const uint8_t *d = (const uint8_t *)iov[i].iov_base + off;
                size_t dl = len - off < seg ? len - off : seg;
                int cls = classify(d[0]);
                if (cls < 0 || !u->handlers[cls].cb || (u->only >= 0 && cls != u->only)) continue;
                u->dispatching = 1;
                u->handlers[cls].cb(u, (struct sockaddr *)&from[i], flen, d, dl,
                                    u->handlers[cls].ud);
                u->dispatching = 0;
                if (u->close_pending) {
                    udp_free(u); /* closed from the callback */
                    return;
                }
            }
        }
        if (n < UDP_BATCH) return;
    }
}

TALLOW_API int tallow_udp_open(tallow_ctx *ctx, const struct sockaddr *bind_addr, socklen_t len,
                               tallow_udp **out)
{
    if (tallow_policy_no_p2p(&ctx->policy)) return TALLOW_EPOLICY;
    struct sockaddr_in any = {.sin_family = AF_INET};
    struct sockaddr_in6 any6 = {.sin6_family = AF_INET6};
    int dual = !bind_addr;
    if (!bind_addr) {
        bind_addr = (const struct sockaddr *)&any6;
        len = sizeof(any6);
    }
    tallow_udp *u = calloc(1, sizeof(*u));
    if (!u) return TALLOW_ENOMEM;
    u->rxbuf = malloc((size_t)UDP_BATCH * UDP_MAX_DGRAM);
    u->fd = socket(bind_addr->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (u->fd >= 0 && dual) {
        /* [::] carrying IPv4 too, whatever net.ipv6.bindv6only says */
        int off = 0;
        if (setsockopt(u->fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) < 0 ||
            bind(u->fd, bind_addr, len) < 0) {
            close(u->fd);
            u->fd = -1;
        }
    }
    if (u->fd < 0 && dual) { /* no IPv6 on this machine: plain IPv4 */
        bind_addr = (const struct sockaddr *)&any;
        len = sizeof(any);
        u->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        dual = 0;
    }
    if (!u->rxbuf || u->fd < 0) goto fail;
    u->family = bind_addr->sa_family;
    int big = 8 << 20;
    /* Large buffers: QUIC bursts would otherwise drop at the socket. FORCE needs root. */
    if (setsockopt(u->fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) < 0)
        setsockopt(u->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    if (setsockopt(u->fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)) < 0)
        setsockopt(u->fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    if (!dual && bind(u->fd, bind_addr, len) < 0) goto fail;
    u->gso = 1;
    u->only = -1;
    /* Coalesced receives where the kernel has them (Linux 5.0+); else one datagram a slot. */
    int one = 1;
    u->gro = setsockopt(u->fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) == 0;
    if (getenv("TALLOW_NO_GRO")) { /* measurements, and the fallback's test */
        int zero = 0;
        setsockopt(u->fd, SOL_UDP, UDP_GRO, &zero, sizeof(zero));
        u->gro = 0;
    }
    u->ctx = ctx;
    u->io = tallow_io_start(ctx->loop, u->fd, TALLOW_IO_READ, on_readable, u);
    if (!u->io) goto fail;
    *out = u;
    return 0;
fail:;
    int err = errno ? -errno : TALLOW_ENOMEM;
    if (u->fd >= 0) close(u->fd);
    free(u->rxbuf);
    free(u);
    return err;
}

TALLOW_API void tallow_udp_close(tallow_udp *u)
{
    if (!u || u->close_pending) return;
    tallow_io_stop(u->io);
    u->io = NULL;
    if (u->dispatching) {
        u->close_pending = 1;
        return;
    }
    udp_free(u);
}

TALLOW_API void tallow_udp_on(tallow_udp *u, enum tallow_udp_class cls, tallow_udp_recv_cb cb,
                              void *ud)
{
    if ((unsigned)cls > TALLOW_UDP_QUIC) return;
    u->handlers[cls].cb = cb;
    u->handlers[cls].ud = ud;
}

TALLOW_API int tallow_udp_send(tallow_udp *u, const struct sockaddr *to, socklen_t tolen,
                               const uint8_t *data, size_t len)
{
    if (tallow_policy_no_p2p(&u->ctx->policy)) return TALLOW_EPOLICY;
    struct sockaddr_storage tmp;
    to = udp_dest(u, to, &tolen, &tmp);
    ssize_t n = sendto(u->fd, data, len, MSG_DONTWAIT, to, tolen);
    if (n < 0) return -errno;
    return 0;
}

TALLOW_API int tallow_udp_send_batch(tallow_udp *u, const struct sockaddr *to, socklen_t tolen,
                                     const uint8_t *data, size_t len, size_t segsz)
{
    if (tallow_policy_no_p2p(&u->ctx->policy)) return TALLOW_EPOLICY;
    if (segsz == 0 || len == 0) return 0;
    struct sockaddr_storage tmp;
    to = udp_dest(u, to, &tolen, &tmp);
    size_t count = (len + segsz - 1) / segsz;
    if (count == 1) {
        int rc = tallow_udp_send(u, to, tolen, data, len);
        return rc < 0 ? rc : 1;
    }
    if (u->gso) {
        /* one sendmsg carries at most 64 KiB (and 64 segments) with UDP_SEGMENT; a segment
         * larger than a third of that goes alone */
        size_t per = UDP_GSO_BYTES / segsz;
        if (per > 64) per = 64;
        if (per < 1) per = 1;
        size_t sent = 0;
        while (sent < count) {
            size_t k = count - sent < per ? count - sent : per;
            size_t off = sent * segsz;
            size_t bytes = len - off < k * segsz ? len - off : k * segsz;
            struct iovec iov = {.iov_base = (void *)(data + off), .iov_len = bytes};
            char cbuf[CMSG_SPACE(sizeof(uint16_t))];
            memset(cbuf, 0, sizeof(cbuf));
            struct msghdr mh = {
                .msg_name = (void *)to, .msg_namelen = tolen, .msg_iov = &iov, .msg_iovlen = 1};
            if (k > 1) {
                mh.msg_control = cbuf;
                mh.msg_controllen = sizeof(cbuf);
                struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_UDP;
                cm->cmsg_type = UDP_SEGMENT;
                cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
                uint16_t seg = (uint16_t)segsz;
                memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
            }
            if (sendmsg(u->fd, &mh, MSG_DONTWAIT) < 0) {
                if (errno == EAGAIN || errno == ENOBUFS) return sent ? (int)sent : -EAGAIN;
                if (sent) return (int)sent;
                if (k == 1) return -errno; /* not about GSO (EMSGSIZE, unreachable, ...) */
                u->gso = 0;                /* EIO/EINVAL: no GSO here; fall back for good */
                break;
            }
            sent += k;
        }
        if (u->gso) return (int)sent;
    }
    struct mmsghdr msgs[64];
    struct iovec iov[64];
    size_t sent = 0;
    while (sent < count) {
        size_t k = count - sent < 64 ? count - sent : 64;
        for (size_t i = 0; i < k; i++) {
            size_t off = (sent + i) * segsz;
            iov[i].iov_base = (void *)(data + off);
            iov[i].iov_len = len - off < segsz ? len - off : segsz;
            memset(&msgs[i], 0, sizeof(msgs[i]));
            msgs[i].msg_hdr.msg_name = (void *)to;
            msgs[i].msg_hdr.msg_namelen = tolen;
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int n = sendmmsg(u->fd, msgs, (unsigned)k, MSG_DONTWAIT);
        if (n <= 0) return sent ? (int)sent : (errno == EAGAIN ? -EAGAIN : -errno);
        sent += (size_t)n;
        if ((size_t)n < k) break;
    }
    return (int)sent;
}

TALLOW_API int tallow_udp_wait(tallow_udp *u, enum tallow_udp_class only, int timeout_ms)
{
    if (!u || u->dispatching || u->close_pending || (unsigned)only > TALLOW_UDP_QUIC)
        return TALLOW_EINVAL;
    struct pollfd pfd = {.fd = u->fd, .events = POLLIN};
    int n = poll(&pfd, 1, timeout_ms < 0 ? 0 : timeout_ms);
    if (n < 0) return errno == EINTR ? 0 : -errno;
    if (n == 0 || !(pfd.revents & POLLIN)) return 0;
    u->only = (int)only;
    on_readable(u->io, u->fd, TALLOW_IO_READ, u);
    u->only = -1;
    return 1;
}

TALLOW_API int tallow_udp_fd(const tallow_udp *u)
{
    return u->fd;
}

TALLOW_API int tallow_udp_local_addr(const tallow_udp *u, struct sockaddr_storage *out,
                                     socklen_t *len)
{
    *len = sizeof(*out);
    return getsockname(u->fd, (struct sockaddr *)out, len) < 0 ? -errno : 0;
}

TALLOW_API tallow_ctx *tallow_udp_ctx(const tallow_udp *u)
{
    return u->ctx;
}

/* 1 if a (of family fam) lies in the network of interface address ifa/mask. */
static int udp_same_net(int fam, const void *a, const struct sockaddr *ifa,
                        const struct sockaddr *mask)
{
    if (!ifa || !mask || ifa->sa_family != fam || mask->sa_family != fam) return 0;
    const uint8_t *x = a, *y, *m;
    size_t n;
    if (fam == AF_INET) {
        y = (const uint8_t *)&((const struct sockaddr_in *)(const void *)ifa)->sin_addr;
        m = (const uint8_t *)&((const struct sockaddr_in *)(const void *)mask)->sin_addr;
        n = 4;
    } else {
        y = (const uint8_t *)&((const struct sockaddr_in6 *)(const void *)ifa)->sin6_addr;
        m = (const uint8_t *)&((const struct sockaddr_in6 *)(const void *)mask)->sin6_addr;
        n = 16;
    }
    for (size_t i = 0; i < n; i++)
        if ((x[i] & m[i]) != (y[i] & m[i])) return 0;
    return 1;
}

TALLOW_API int tallow_udp_path_mtu(const tallow_udp *u, const struct sockaddr *peer, socklen_t len)
{
    (void)u;
    int fam = peer ? peer->sa_family : AF_UNSPEC;
    const void *addr;
    if (fam == AF_INET && len >= sizeof(struct sockaddr_in))
        addr = &((const struct sockaddr_in *)(const void *)peer)->sin_addr;
    else if (fam == AF_INET6 && len >= sizeof(struct sockaddr_in6))
        addr = &((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr;
    else
        return TALLOW_EINVAL;
    /* Only where the first hop is the whole path: the peer is one of ours (loopback) or on the
     * network of one of our interfaces. Beyond a router the interface MTU says nothing about the
     * path (a 9001-byte cloud interface routes to 1500-byte internet). */
    struct ifaddrs *ifs, *i;
    if (getifaddrs(&ifs) != 0) return -errno;
    int onlink = 0;
    for (i = ifs; i && !onlink; i = i->ifa_next)
        if ((i->ifa_flags & IFF_UP) && !(i->ifa_flags & IFF_POINTOPOINT))
            onlink = udp_same_net(fam, addr, i->ifa_addr, i->ifa_netmask);
    freeifaddrs(ifs);
    if (!onlink) return 0;
    /* The kernel's MTU for the route a connected socket would take (lo's for our own
     * addresses), lowered by any PMTU it has learned. */
    int fd = socket(fam, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int mtu = 0;
    socklen_t ml = sizeof(mtu);
    int rc = connect(fd, peer, len) == 0 &&
                     getsockopt(fd, fam == AF_INET ? IPPROTO_IP : IPPROTO_IPV6,
                                fam == AF_INET ? IP_MTU : IPV6_MTU, &mtu, &ml) == 0
                 ? (mtu > 0 ? mtu : 0)
                 : -errno;
    close(fd);
    return rc;
}

/* plugins/relay/relay_stun.c — the relay's STUN responder: Binding requests on UDP, answered
 * with the core codec from the address each was sent to, rate-limited per source
 * (relay_stun_allow, relay_limits.c). It answers on the listen port and, unless told otherwise,
 * on the next one too (`stun-port2`): a client behind a NAT compares the mapped addresses the
 * two ports report, and one relay is enough to tell a NAT that maps every destination to a port
 * of its own (endpoint-dependent mapping) from one that keeps the mapping. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tallow/stun.h>

#include "relay_srv.h"

/* Asks for each request's destination address (IP_PKTINFO / IPV6_RECVPKTINFO, the latter also
 * for IPv4 on a dual-stack socket), so that a relay on a wildcard address answers from it. */
static void udp_want_dest(int fd, int family)
{
    int one = 1;
    if (family == AF_INET)
        (void)setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
    else
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
}

/* Turns the request's destination (the control data of recvmsg) into the reply's source: on a
 * host with several addresses the kernel would otherwise pick the route's preferred one, and a
 * NAT or a connected client drops a reply from an address it did not ask. Returns the control
 * length to send, 0 to let the kernel choose (no such data, or a multicast destination). */
static size_t udp_reply_source(struct msghdr *rx, void *out, size_t cap)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(rx); c; c = CMSG_NXTHDR(rx, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO &&
            cap >= CMSG_SPACE(sizeof(struct in_pktinfo))) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof pi);
            /* ipi_spec_dst: the request's destination, or a local address for a broadcast */
            struct in_pktinfo src = {.ipi_spec_dst = pi.ipi_spec_dst};
            struct cmsghdr *o = out;
            o->cmsg_level = IPPROTO_IP;
            o->cmsg_type = IP_PKTINFO;
            o->cmsg_len = CMSG_LEN(sizeof src);
            memcpy(CMSG_DATA(o), &src, sizeof src);
            return CMSG_SPACE(sizeof src);
        }
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
            cap >= CMSG_SPACE(sizeof(struct in6_pktinfo))) {
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof pi);
            if (IN6_IS_ADDR_MULTICAST(&pi.ipi6_addr)) return 0;
            struct in6_pktinfo src = {.ipi6_addr = pi.ipi6_addr};
            /* a link-local address needs its interface; elsewhere the route decides */
            if (IN6_IS_ADDR_LINKLOCAL(&pi.ipi6_addr)) src.ipi6_ifindex = pi.ipi6_ifindex;
            struct cmsghdr *o = out;
            o->cmsg_level = IPPROTO_IPV6;
            o->cmsg_type = IPV6_PKTINFO;
            o->cmsg_len = CMSG_LEN(sizeof src);
            memcpy(CMSG_DATA(o), &src, sizeof src);
            return CMSG_SPACE(sizeof src);
        }
    }
    return 0;
}

/* STUN Binding requests on the UDP socket of the same port: answered with the core codec, from
 * the address each request was sent to (rate-limited per source: stun_allow). */
static void on_udp(tallow_io *io, int fd, unsigned events, void *ud)
{
    relay_srv *s = ud;
    for (int i = 0; i < 32; i++) {
        uint8_t req[1500], resp[256];
        union {
            struct cmsghdr align;
            uint8_t
                buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo))];
        } rxc, txc;
        struct sockaddr_storage from;
        struct iovec iov = {req, sizeof req};
        struct msghdr mh = {.msg_name = &from,
                            .msg_namelen = sizeof from,
                            .msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = rxc.buf,
                            .msg_controllen = sizeof rxc.buf};
        ssize_t n = recvmsg(fd, &mh, 0);
        if (n < 0) return;
        socklen_t fl = mh.msg_namelen;
        struct sockaddr_storage mapped = from;
        socklen_t ml = fl;
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&from;
        if (from.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
            struct sockaddr_in *a4 = (struct sockaddr_in *)&mapped; /* dual-stack socket */
            memset(&mapped, 0, sizeof mapped);
            a4->sin_family = AF_INET;
            a4->sin_port = a6->sin6_port;
            memcpy(&a4->sin_addr, a6->sin6_addr.s6_addr + 12, 4);
            ml = sizeof *a4;
        }
        int r = tallow_stun_answer_binding(req, (size_t)n, (struct sockaddr *)&mapped, ml,
                                           "tallow relay", resp, sizeof resp);
        if (r <= 0 || !relay_stun_allow(s, &from)) {
            s->ctr.stun_dropped++;
            continue;
        }
        s->ctr.stun_answered++;
        memset(&txc, 0, sizeof txc);
        struct iovec oiov = {resp, (size_t)r};
        struct msghdr out = {.msg_name = &from,
                             .msg_namelen = fl,
                             .msg_iov = &oiov,
                             .msg_iovlen = 1,
                             .msg_control = txc.buf};
        out.msg_controllen = udp_reply_source(&mh, txc.buf, sizeof txc.buf);
        if (!out.msg_controllen) out.msg_control = NULL;
        if (sendmsg(fd, &out, 0) < 0 && out.msg_controllen) {
            out.msg_control = NULL; /* that address went away meanwhile: any source will do */
            out.msg_controllen = 0;
            (void)sendmsg(fd, &out, 0);
        }
    }
}

int relay_stun_socket(int family, const struct sockaddr *a, socklen_t al, int *taken)
{
    int ufd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    *taken = 0;
    if (ufd < 0) return -1;
    udp_want_dest(ufd, family);
    if (bind(ufd, a, al) < 0) {
        close(ufd);
        *taken = 1;
        return -1;
    }
    return ufd;
}

int relay_stun_socket2(relay_srv *s, const struct sockaddr *a, socklen_t al, int *taken)
{
    unsigned port = s->stun2 > 0 ? (unsigned)s->stun2 : s->port + 1u;
    struct sockaddr_storage b;
    *taken = 1;
    if (port > 65535 || port == s->port || al > sizeof b) return -1;
    memcpy(&b, a, al);
    if (b.ss_family == AF_INET)
        ((struct sockaddr_in *)&b)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&b)->sin6_port = htons((uint16_t)port);
    int fd = relay_stun_socket(b.ss_family, (struct sockaddr *)&b, al, taken);
    if (fd >= 0) s->stun_port2 = (uint16_t)port;
    return fd;
}

int relay_stun_start(relay_srv *s)
{
    if (s->ufd >= 0 && !(s->uio = tallow_io_start(s->loop, s->ufd, TALLOW_IO_READ, on_udp, s)))
        return TALLOW_ENOMEM;
    if (s->ufd2 >= 0 && !(s->uio2 = tallow_io_start(s->loop, s->ufd2, TALLOW_IO_READ, on_udp, s)))
        return TALLOW_ENOMEM;
    return 0;
}

void relay_stun_stop(relay_srv *s)
{
    if (s->uio) tallow_io_stop(s->uio);
    if (s->uio2) tallow_io_stop(s->uio2);
    s->uio = s->uio2 = NULL;
    if (s->ufd >= 0) close(s->ufd);
    if (s->ufd2 >= 0) close(s->ufd2);
    s->ufd = s->ufd2 = -1;
    s->stun_port2 = 0;
}

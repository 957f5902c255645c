/* quic_udp_io.c — batched loopback UDP for the quic tests and benchmark (see quic_udp_io.h). */
#include "quic_udp_io.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/udp.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define QT_RECV_BATCH 64
#define QT_DGRAM_MAX 65536
#define QT_GSO_MAX_BYTES 65000 /* one GSO send is one skb: stay under 64 KiB */
#define QT_GSO_MAX_SEGS 64

uint64_t qt_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

size_t qt_udp_rcvbuf(int fd)
{
    int v = 0;
    socklen_t l = sizeof(v);
    return getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, &l) == 0 && v > 0 ? (size_t)v : 0;
}

int qt_udp_open(struct sockaddr_in *addr, int big)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (big) {
        int sz = 32 << 20;
        /* FORCE works as root beyond rmem_max/wmem_max; the plain one is the fallback. */
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) != 0)
            (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) != 0)
            (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    }
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(*addr);
    if (bind(fd, (struct sockaddr *)addr, sizeof(*addr)) != 0 ||
        getsockname(fd, (struct sockaddr *)addr, &len) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static int qt_send_gso(int fd, const struct sockaddr *to, socklen_t tolen, const uint8_t *data,
                       size_t len, size_t segsz)
{
    char ctl[CMSG_SPACE(sizeof(uint16_t))];
    struct iovec iov = {(void *)data, len};
    struct msghdr mh = {
        .msg_name = (void *)to, .msg_namelen = tolen, .msg_iov = &iov, .msg_iovlen = 1};
    if (len > segsz) {
        memset(ctl, 0, sizeof(ctl));
        mh.msg_control = ctl;
        mh.msg_controllen = sizeof(ctl);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_UDP;
        cm->cmsg_type = UDP_SEGMENT;
        cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t s = (uint16_t)segsz;
        memcpy(CMSG_DATA(cm), &s, sizeof(s));
    }
    return sendmsg(fd, &mh, 0) < 0 ? -errno : 0;
}

static int qt_send_mmsg(int fd, const struct sockaddr *to, socklen_t tolen, const uint8_t *data,
                        size_t len, size_t segsz)
{
    struct mmsghdr m[QT_GSO_MAX_SEGS];
    struct iovec iov[QT_GSO_MAX_SEGS];
    while (len) {
        unsigned n = 0;
        for (; n < QT_GSO_MAX_SEGS && len; n++) {
            size_t k = len < segsz ? len : segsz;
            iov[n].iov_base = (void *)data;
            iov[n].iov_len = k;
            memset(&m[n], 0, sizeof(m[n]));
            m[n].msg_hdr.msg_name = (void *)to;
            m[n].msg_hdr.msg_namelen = tolen;
            m[n].msg_hdr.msg_iov = &iov[n];
            m[n].msg_hdr.msg_iovlen = 1;
            data += k;
            len -= k;
        }
        if (sendmmsg(fd, m, n, 0) < 0) return -errno;
    }
    return 0;
}

int qt_udp_send(int fd, const struct sockaddr *to, socklen_t tolen, const uint8_t *data, size_t len,
                size_t segsz)
{
    if (segsz == 0 || segsz > len) segsz = len;
    size_t chunk = (QT_GSO_MAX_BYTES / segsz) * segsz;
    if (chunk > QT_GSO_MAX_SEGS * segsz) chunk = QT_GSO_MAX_SEGS * segsz;
    if (chunk == 0) chunk = segsz; /* a segment too large to batch goes alone */
    while (len) {
        size_t k = len < chunk ? len : chunk;
        int rv = qt_send_gso(fd, to, tolen, data, k, segsz);
        if (rv == -EIO || rv == -EINVAL || rv == -ENOPROTOOPT || rv == -EOPNOTSUPP)
            rv = qt_send_mmsg(fd, to, tolen, data, k, segsz); /* no GSO here */
        if (rv != 0) return rv;
        data += k;
        len -= k;
    }
    return 0;
}

int qt_udp_recv_all(int fd, qt_dgram_cb cb, void *ud)
{
    static __thread uint8_t buf[QT_RECV_BATCH][QT_DGRAM_MAX]; /* 4 MiB: not on the stack */
    struct mmsghdr m[QT_RECV_BATCH];
    struct iovec iov[QT_RECV_BATCH];
    struct sockaddr_storage from[QT_RECV_BATCH];
    int total = 0;
    for (int round = 0; round < 8; round++) { /* bounded, so the caller gets to send too */
        for (int i = 0; i < QT_RECV_BATCH; i++) {
            iov[i].iov_base = buf[i];
            iov[i].iov_len = QT_DGRAM_MAX;
            memset(&m[i], 0, sizeof(m[i]));
            m[i].msg_hdr.msg_name = &from[i];
            m[i].msg_hdr.msg_namelen = sizeof(from[i]);
            m[i].msg_hdr.msg_iov = &iov[i];
            m[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(fd, m, QT_RECV_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? total : -errno;
        for (int i = 0; i < n; i++)
            cb(ud, (struct sockaddr *)&from[i], m[i].msg_hdr.msg_namelen, buf[i], m[i].msg_len);
        total += n;
        if (n < QT_RECV_BATCH) break;
    }
    return total;
}

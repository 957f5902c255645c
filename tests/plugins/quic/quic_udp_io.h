/* quic_udp_io.h — test/bench helpers: nonblocking loopback UDP sockets with batched I/O
 * (UDP_SEGMENT with a sendmmsg fallback, recvmmsg), standing in for the core's tallow_udp. */
#ifndef QUIC_UDP_IO_H
#define QUIC_UDP_IO_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Binds a nonblocking UDP socket to 127.0.0.1, any port; *addr gets the bound address. big: ask
 * for large kernel buffers. Returns the fd or -errno. */
int qt_udp_open(struct sockaddr_in *addr, int big);
/* Sends len bytes as datagrams of segsz (the last may be shorter). Returns 0 or -errno. */
int qt_udp_send(int fd, const struct sockaddr *to, socklen_t tolen, const uint8_t *data, size_t len,
                size_t segsz);
typedef void (*qt_dgram_cb)(void *ud, const struct sockaddr *from, socklen_t fromlen,
                            const uint8_t *data, size_t len);
/* Reads queued datagrams (recvmmsg, at most 512 per call) and calls cb for each. Returns the
 * count or -errno. */
int qt_udp_recv_all(int fd, qt_dgram_cb cb, void *ud);
/* The socket's receive buffer as the kernel reports it (SO_RCVBUF), 0 on error. */
size_t qt_udp_rcvbuf(int fd);
/* CLOCK_MONOTONIC in ns. */
uint64_t qt_now_ns(void);

#endif

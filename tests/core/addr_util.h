/* tests/core/addr_util.h — addresses and candidates written as text, for the unit tests that
 * build them by hand (core and plugin tests alike). Include after <cmocka.h>. */
#ifndef TALLOW_TEST_ADDR_UTIL_H
#define TALLOW_TEST_ADDR_UTIL_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include <tallow/gather.h>

/* Builds a sockaddr from "a.b.c.d" or an IPv6 literal; returns its length. */
static inline socklen_t mkaddr(const char *ip, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        return sizeof(*in);
    }
    assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    return sizeof(*in6);
}

/* A candidate of the given kind at the IPv4 address ip:port, every other field zero. */
static inline tallow_candidate cand(uint32_t kind, const char *ip, uint16_t port)
{
    tallow_candidate c;
    memset(&c, 0, sizeof(c));
    struct sockaddr_in *a = (struct sockaddr_in *)&c.addr;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    inet_pton(AF_INET, ip, &a->sin_addr);
    c.addr_len = sizeof(*a);
    c.kind = kind;
    return c;
}

#endif

/* tests/plugins/support/netfix.h — network fixtures for the NAT plugin tests: a real coturn on
 * loopback, silent UDP ports, and running a context's loop until a flag is set (bounded). */
#ifndef TALLOW_TEST_NETFIX_H
#define TALLOW_TEST_NETFIX_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/types.h>
#include <tallow/tallow.h>

typedef struct netfix_coturn {
    pid_t pid;
    uint16_t port;
    struct sockaddr_in addr; /* 127.0.0.1:port */
} netfix_coturn;

/* Starts turnserver on a free loopback port and waits (at most 10 s) until it answers a Binding
 * request. Returns 0, or -1 when it did not come up (it is killed then). */
int netfix_coturn_start(netfix_coturn *c);
/* SIGTERM, a bounded wait, then SIGKILL; reaps the child. */
void netfix_coturn_stop(netfix_coturn *c);

/* A UDP socket bound to 127.0.0.1:0 that nobody reads; fills *addr. Returns the fd. */
int netfix_silent_udp(struct sockaddr_in *addr);

/* Runs the loop until *flag != 0 or limit_ms passed. Returns the elapsed milliseconds. */
uint64_t netfix_run_until(tallow_ctx *ctx, const volatile int *flag, uint64_t limit_ms);

/* 127.0.0.1:port */
struct sockaddr_in netfix_lo(uint16_t port);

#endif

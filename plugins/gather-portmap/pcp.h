/* plugins/gather-portmap/pcp.h — the Port Control Protocol (RFC 6887) MAP opcode, encoded and
 * decoded by hand (no Debian library speaks PCP). Pure functions: no I/O, unit tested.
 *
 * MAP request, 60 bytes (§7.1, §11.1):
 *   0 version (2) | 1 R=0, opcode 1 | 2..3 reserved | 4..7 requested lifetime
 *   8..23 client IP (IPv4 as ::ffff:a.b.c.d)
 *   24..35 nonce | 36 protocol (17 UDP) | 37..39 reserved | 40..41 internal port
 *   42..43 suggested external port | 44..59 suggested external IP (::ffff:0.0.0.0: any IPv4)
 * MAP response, 60 bytes (§7.2): 0 version | 1 R=1, opcode | 2 reserved | 3 result code
 *   4..7 lifetime | 8..11 epoch | 12..23 reserved | 24.. as the request, with the assigned
 *   external port and IP in place of the suggested ones.
 * A request with lifetime 0 deletes the mapping named by nonce, protocol and internal port. */
#ifndef TALLOW_PCP_H
#define TALLOW_PCP_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#define PCP_PORT 5351
#define PCP_VERSION 2
#define PCP_OP_MAP 1
#define PCP_MAP_LEN 60
#define PCP_MAX_LEN 1100
#define PCP_NONCE_LEN 12
#define PCP_PROTO_UDP 17

enum pcp_result {
    PCP_SUCCESS = 0,
    PCP_UNSUPP_VERSION = 1,
    PCP_NOT_AUTHORIZED = 2,
    PCP_MALFORMED_REQUEST = 3,
    PCP_UNSUPP_OPCODE = 4,
    PCP_UNSUPP_OPTION = 5,
    PCP_MALFORMED_OPTION = 6,
    PCP_NETWORK_FAILURE = 7,
    PCP_NO_RESOURCES = 8,
    PCP_UNSUPP_PROTOCOL = 9,
    PCP_USER_EX_QUOTA = 10,
    PCP_CANNOT_PROVIDE_EXTERNAL = 11,
    PCP_ADDRESS_MISMATCH = 12,
    PCP_EXCESSIVE_REMOTE_PEERS = 13,
};

typedef struct pcp_map {
    uint8_t nonce[PCP_NONCE_LEN];
    uint8_t protocol;        /* PCP_PROTO_UDP */
    uint16_t internal_port;  /* host order */
    uint16_t external_port;  /* request: suggested (0 any); response: assigned */
    struct in_addr external; /* request: suggested (0 any); response: assigned (IPv4 only) */
    uint32_t lifetime;       /* seconds; request 0 deletes */
} pcp_map;

/* The response fields beyond the MAP body. */
typedef struct pcp_reply {
    uint8_t result; /* enum pcp_result */
    uint32_t epoch;
    pcp_map map;
} pcp_reply;

/* Writes a MAP request from client (our IPv4 address as the gateway sees it) into
 * out[PCP_MAP_LEN]. Returns PCP_MAP_LEN, or TALLOW_EINVAL when protocol or internal port is 0
 * (PCP's "all ports" form is never what we want). */
int pcp_encode_map(const pcp_map *m, struct in_addr client, uint8_t *out, size_t cap);

/* Parses a datagram from the gateway. Returns:
 *   0  a MAP response (any result code) in *r;
 *   1  a version 0 (NAT-PMP) answer: the server speaks NAT-PMP, not PCP (RFC 6887 Appendix A);
 *  TALLOW_EBADMSG  not a well-formed PCP MAP response (short, not a multiple of 4, too long, not
 *      a response, another version or opcode, an assigned address that is not IPv4 on success). */
int pcp_decode_map(const uint8_t *buf, size_t len, pcp_reply *r);

/* 1 when a response answers the request req: same nonce, protocol and internal port. */
int pcp_matches(const pcp_map *req, const pcp_reply *r);

/* Short name of a result code ("NOT_AUTHORIZED"); "?" for unknown ones. */
const char *pcp_result_str(unsigned result);

#endif

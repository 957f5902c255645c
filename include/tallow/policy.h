/* tallow/policy.h — what the user allowed. Set from the command line and environment by the
 * runner; scripts may only tighten it. Enforced in the core (session, UDP endpoint, negotiator),
 * never left to scripts. */
#ifndef TALLOW_POLICY_H
#define TALLOW_POLICY_H

#include "common.h"

/* No STUN, no gathering, no candidates sent or acted upon, no datagram towards the peer. */
TALLOW_API int tallow_policy_no_p2p(const tallow_policy *p);
/* Allows loopback candidates (tests and benchmarks on one machine). */
TALLOW_API int tallow_policy_allow_loopback(const tallow_policy *p);
/* Proxy URL for relay connections ("socks5://host:port") or NULL. Borrowed. */
TALLOW_API const char *tallow_policy_proxy(const tallow_policy *p);

/* Tightening: always allowed. Returns 0. */
TALLOW_API int tallow_policy_forbid_p2p(tallow_policy *p);
/* Sets a proxy (implies no_p2p). Returns 0, or TALLOW_EPOLICY if a different proxy is already
 * set and locked. The string is copied. */
TALLOW_API int tallow_policy_set_proxy(tallow_policy *p, const char *url);
/* Loosening: allowed only before tallow_policy_lock(); afterwards TALLOW_EPOLICY. */
TALLOW_API int tallow_policy_set_allow_loopback(tallow_policy *p, int allow);
TALLOW_API int tallow_policy_allow_p2p(tallow_policy *p);
/* Locks the user's choices: from now on only tightening succeeds. */
TALLOW_API void tallow_policy_lock(tallow_policy *p);

#endif

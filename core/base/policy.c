/* core/base/policy.c — the user's policy. Loosening only until locked; tightening always. */
#include <stdlib.h>
#include <string.h>

#include "ctx_internal.h"

TALLOW_API int tallow_policy_no_p2p(const tallow_policy *p)
{
    return p->no_p2p || p->proxy != NULL;
}

TALLOW_API int tallow_policy_allow_loopback(const tallow_policy *p)
{
    return p->allow_loopback;
}

TALLOW_API const char *tallow_policy_proxy(const tallow_policy *p)
{
    return p->proxy;
}

TALLOW_API int tallow_policy_forbid_p2p(tallow_policy *p)
{
    p->no_p2p = 1;
    return 0;
}

TALLOW_API int tallow_policy_set_proxy(tallow_policy *p, const char *url)
{
    if (!url || !url[0]) return TALLOW_EINVAL;
    if (p->proxy && strcmp(p->proxy, url) == 0) return 0;
    if (p->proxy && p->locked) return TALLOW_EPOLICY;
    char *copy = strdup(url);
    if (!copy) return TALLOW_ENOMEM;
    free(p->proxy);
    p->proxy = copy;
    p->no_p2p = 1;
    return 0;
}

TALLOW_API int tallow_policy_set_allow_loopback(tallow_policy *p, int allow)
{
    if (!allow) {
        p->allow_loopback = 0;
        return 0;
    }
    if (p->locked && !p->allow_loopback) return TALLOW_EPOLICY;
    p->allow_loopback = 1;
    return 0;
}

TALLOW_API int tallow_policy_allow_p2p(tallow_policy *p)
{
    if (p->locked && p->no_p2p) return TALLOW_EPOLICY;
    if (p->proxy) return TALLOW_EPOLICY;
    p->no_p2p = 0;
    return 0;
}

TALLOW_API void tallow_policy_lock(tallow_policy *p)
{
    p->locked = 1;
}

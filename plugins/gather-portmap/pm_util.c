/* plugins/gather-portmap/pm_util.c — what every file of the gather-portmap plugin uses: its log
 * lines, and settings from the environment. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "portmap.h"

void pm_log(pm_state *st, int level, const char *fmt, ...)
{
    char buf[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    st->host->log(st->host, level, "gather-portmap: %s", buf);
}

uint32_t pm_env_u32(const char *name, uint32_t def)
{
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end;
    unsigned long x = strtoul(v, &end, 10);
    return *end || x == 0 || x > 86400000ul ? def : (uint32_t)x;
}

uint32_t pm_lease(void)
{
    return pm_env_u32("TALLOW_PORTMAP_LEASE", PM_DEFAULT_LEASE);
}

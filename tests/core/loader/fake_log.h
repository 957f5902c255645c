/* tests/core/loader/fake_log.h — how the fake plugins report what ran: one line appended to the
 * file named by TALLOW_FAKE_LOG (the test reads it back). Header-only: each fake stays one file. */
#ifndef FAKE_LOG_H
#define FAKE_LOG_H

#include <stdio.h>
#include <stdlib.h>

static inline void fake_log(const char *line)
{
    const char *path = getenv("TALLOW_FAKE_LOG");
    FILE *f = path ? fopen(path, "a") : NULL;
    if (!f) return;
    fprintf(f, "%s\n", line);
    fclose(f);
}

#endif

/* core/progress.h — progress display modes for transfers. */
#ifndef TALLOW_PROGRESS_H
#define TALLOW_PROGRESS_H

#include "transfer.h"

enum { TALLOW__PROGRESS_NONE = 0, TALLOW__PROGRESS_BAR = 1, TALLOW__PROGRESS_JSON = 2 };

/* Prints one progress update (bar on stderr, JSON line on stdout). */
void tallow__progress_show(int mode, const char *verb, const tallow__xfer_stats *st,
                           const char *path, int final);

#endif

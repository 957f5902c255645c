/* core/transfer/progress.h — progress display modes for transfers. */
#ifndef TALLOW_PROGRESS_H
#define TALLOW_PROGRESS_H

#include "transfer.h"

enum {
    TALLOW__PROGRESS_NONE = 0,
    TALLOW__PROGRESS_BAR = 1,   /* one line on a terminal, redrawn in place, fitted to its width */
    TALLOW__PROGRESS_JSON = 2,  /* a JSON object per update on stdout */
    TALLOW__PROGRESS_LINES = 3, /* not a terminal: a plain line on stderr every 5 s */
};

/* Prints one progress update (bar or lines on stderr, JSON line on stdout). */
void tallow__progress_show(int mode, const char *verb, const tallow__xfer_stats *st,
                           const char *path, int final);

/* If a bar is drawn on the current line of stderr, ends that line, so that what is printed next
 * (an error) starts on a fresh one. */
void tallow__progress_break(void);

#endif

/* core/transfer/progress.c — how a transfer shows itself: a one-line bar on a terminal (bytes,
 * rate, ETA, relay or direct) or one JSON object per line for scripts. */
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "progress.h"
#include <tallow/safefs.h>

static int line_open; /* a bar is drawn and its line not ended */

static void human(double v, char *out, size_t cap)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(out, cap, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

void tallow__progress_show(int mode, const char *verb, const tallow__xfer_stats *st,
                           const char *path, int final)
{
    double secs = (double)((final ? st->finished_ns : tallow_now_ns()) - st->started_ns) / 1e9;
    uint64_t moved = st->bytes_done > st->bytes_resumed ? st->bytes_done - st->bytes_resumed : 0;
    double rate = secs > 0 ? (double)moved / secs : 0;
    if (mode == TALLOW__PROGRESS_JSON) {
        printf(
            "{\"event\":\"%s\",\"bytes\":%llu,\"total\":%llu,\"files\":%llu,\"files_total\":%llu,"
            "\"resumed\":%llu,\"wire_bytes\":%llu,\"rate\":%.0f,\"seconds\":%.3f,\"path\":\"%s\"}"
            "\n",
            final ? "done" : "progress", (unsigned long long)st->bytes_done,
            (unsigned long long)st->bytes_total, (unsigned long long)st->files_done,
            (unsigned long long)st->files_total, (unsigned long long)st->bytes_resumed,
            (unsigned long long)st->bytes_wire, rate, secs, path);
        fflush(stdout);
        return;
    }
    if (mode == TALLOW__PROGRESS_LINES) {
        static uint64_t last_ns;
        uint64_t now = tallow_now_ns();
        if (final || (last_ns && now - last_ns < 5000000000ull) || secs < 5) return;
        last_ns = now;
    } else if (mode != TALLOW__PROGRESS_BAR) {
        return;
    }
    char done[32], total[32], r[32], eta[32] = "";
    human((double)st->bytes_done, done, sizeof(done));
    human((double)st->bytes_total, total, sizeof(total));
    human(rate, r, sizeof(r));
    double pct = st->bytes_total ? 100.0 * (double)st->bytes_done / (double)st->bytes_total : 100.0;
    if (!final && rate > 0 && st->bytes_total > st->bytes_done) {
        double left = (double)(st->bytes_total - st->bytes_done) / rate;
        snprintf(eta, sizeof(eta), " ETA %d:%02d", (int)left / 60, (int)left % 60);
    }
    char verb_t[32];
    snprintf(verb_t, sizeof verb_t, "%s", verb);
    for (size_t n = strlen(verb_t); n > 0 && verb_t[n - 1] == ' '; n--)
        verb_t[n - 1] = 0;
    if (mode == TALLOW__PROGRESS_LINES) {
        fprintf(stderr, "%s %.0f%%: %s of %s, %s/s%s (%s)\n", verb_t, pct, done, total, r, eta,
                path);
        return;
    }
    /* the widest form that fits the terminal (a line longer than it wraps, and every redraw
     * would then add a line) */
    struct winsize ws;
    int cols = ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
    char bar[41], line[256];
    int width = cols >= 100 ? 40 : 20;
    int fill = (int)(pct * width / 100);
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    for (int form = 0; form < 5; form++) {
        switch (form) {
        case 0:
            snprintf(line, sizeof line, "%s [%s] %5.1f%% %s / %s  %s/s%s  (%s)", verb_t, bar, pct,
                     done, total, r, eta, path);
            break;
        case 1:
            snprintf(line, sizeof line, "%s [%.20s] %5.1f%% %s / %s  %s/s%s", verb_t, bar, pct,
                     done, total, r, eta);
            break;
        case 2:
            snprintf(line, sizeof line, "%s %5.1f%% %s / %s  %s/s%s", verb_t, pct, done, total, r,
                     eta);
            break;
        case 3:
            snprintf(line, sizeof line, "%5.1f%% %s / %s %s/s", pct, done, total, r);
            break;
        default:
            snprintf(line, sizeof line, "%5.1f%% %s", pct, done);
            break;
        }
        if ((int)strlen(line) < cols) break; /* the last column stays free: no auto-wrap */
    }
    if ((int)strlen(line) >= cols && cols > 1) line[cols - 1] = 0;
    fprintf(stderr, "\r%s\033[K", line);
    line_open = !final;
    if (final) fputc('\n', stderr);
    fflush(stderr);
}

void tallow__progress_break(void)
{
    if (!line_open) return;
    line_open = 0;
    fputc('\n', stderr);
    fflush(stderr);
}

TALLOW_API void tallow_progress_print(int mode, const char *verb, const tallow_progress_info *p,
                                      const char *path, int final)
{
    tallow__xfer_stats st = {
        .bytes_total = p->bytes_total,
        .bytes_done = p->bytes_done,
        .bytes_wire = p->wire_bytes,
        .files_total = p->files_total,
        .files_done = p->files_done,
        .started_ns = p->started_ns,
        .finished_ns = p->finished_ns,
    };
    tallow__progress_show(mode, verb, &st, path, final);
}

/* core/progress.c — how a transfer shows itself: a one-line bar on a terminal (bytes, rate, ETA,
 * relay or direct) or one JSON object per line for scripts. */
#include <stdio.h>
#include <string.h>

#include "progress.h"
#include <tallow/safefs.h>

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
        printf("{\"event\":\"%s\",\"bytes\":%llu,\"total\":%llu,\"files\":%llu,\"files_total\":%llu,"
               "\"resumed\":%llu,\"wire_bytes\":%llu,\"rate\":%.0f,\"seconds\":%.3f,\"path\":\"%s\"}\n",
               final ? "done" : "progress", (unsigned long long)st->bytes_done,
               (unsigned long long)st->bytes_total, (unsigned long long)st->files_done,
               (unsigned long long)st->files_total, (unsigned long long)st->bytes_resumed,
               (unsigned long long)st->bytes_wire, rate, secs, path);
        fflush(stdout);
        return;
    }
    if (mode != TALLOW__PROGRESS_BAR) return;
    char done[32], total[32], r[32], eta[32] = "";
    human((double)st->bytes_done, done, sizeof(done));
    human((double)st->bytes_total, total, sizeof(total));
    human(rate, r, sizeof(r));
    double pct = st->bytes_total ? 100.0 * (double)st->bytes_done / (double)st->bytes_total : 100.0;
    if (!final && rate > 0 && st->bytes_total > st->bytes_done) {
        double left = (double)(st->bytes_total - st->bytes_done) / rate;
        snprintf(eta, sizeof(eta), " ETA %d:%02d", (int)left / 60, (int)left % 60);
    }
    char bar[21];
    int fill = (int)(pct / 5);
    for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
    bar[20] = 0;
    fprintf(stderr, "\r%s [%s] %5.1f%% %s / %s  %s/s%s  (%s)\033[K", verb, bar, pct, done, total, r,
            eta, path);
    if (final) fputc('\n', stderr);
    fflush(stderr);
}

TALLOW_API void tallow_progress_print(int mode, const char *verb, const tallow_progress_info *p,
                                      const char *path, int final)
{
    tallow__xfer_stats st = {
        .bytes_total = p->bytes_total, .bytes_done = p->bytes_done, .bytes_wire = p->wire_bytes,
        .files_total = p->files_total, .files_done = p->files_done,
        .started_ns = p->started_ns, .finished_ns = p->finished_ns,
    };
    tallow__progress_show(mode, verb, &st, path, final);
}

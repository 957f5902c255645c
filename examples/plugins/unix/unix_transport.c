/* examples/plugins/unix/unix_transport.c — an example transport plugin: two peers on one machine
 * meet at a Unix socket path instead of a relay. The side that gets there first listens, the
 * other connects (decided under an flock on PATH.lock, so two sides starting together or a stale
 * socket left by a crash never leave both listening). Frames are a 4-byte big-endian length and
 * the bytes. The session above encrypts every frame; this file only moves bytes.
 *
 *   tallow send --plugin ./unix.so --transport unix --relay /tmp/x.sock FILE
 *   tallow receive --plugin ./unix.so --transport unix --relay /tmp/x.sock CODE
 *
 * Built against the installed headers only (pkg-config tallow): no core change is needed. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <tallow/tallow.h>

#define UNIX_MAX_FRAME TALLOW_MSG_MAX_FRAME /* largest frame accepted from the peer */
#define UNIX_HIGH_WATER (4u << 20)          /* send() returns 1 above this many queued bytes */
#define UNIX_LOW_WATER (1u << 20)           /* on_writable once the queue drains below this */

/* The plugin's state, from the C allocator (the rule for every plugin: include/tallow/plugin.h). */
typedef struct unix_plugin {
    const tallow_host *host; /* ours alone: lines logged through it carry the name "unix" */
} unix_plugin;

/* One channel. The host allocates instance_size zeroed bytes; tallow_channel (frozen: it never
 * grows) comes first. */
typedef struct unix_chan {
    tallow_channel base;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char info_path[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
    int listen_fd, fd;
    tallow_io *listen_io, *io;
    tallow_timer *ready_timer, *timeout_timer;
    int ready, dead, blocked;
    uint8_t *in; /* bytes read, not yet a whole frame */
    size_t in_len, in_cap;
    uint8_t *out; /* bytes queued for the socket */
    size_t out_off, out_len, out_cap;
    uint64_t sent, recvd;
} unix_chan;

static void ulog(unix_chan *c, int level, const char *what)
{
    const unix_plugin *pl = c->base.plugin_state;
    pl->host->log(pl->host, level, "%s: %s", c->path, what); /* "tallow: LEVEL: unix: PATH: ..." */
}

/* ---- teardown and events */

static void stop_watchers(unix_chan *c)
{
    if (c->listen_io) tallow_io_stop(c->listen_io);
    if (c->io) tallow_io_stop(c->io);
    if (c->ready_timer) tallow_timer_stop(c->ready_timer);
    if (c->timeout_timer) tallow_timer_stop(c->timeout_timer);
    c->listen_io = c->io = NULL;
    c->ready_timer = c->timeout_timer = NULL;
    if (c->listen_fd >= 0) {
        close(c->listen_fd);
        unlink(c->path); /* nobody else will come: leave no socket file behind */
        c->listen_fd = -1;
    }
}

static void die(unix_chan *c, int err)
{
    if (c->dead) return;
    c->dead = 1;
    stop_watchers(c);
    c->base.ev->on_closed(&c->base, err, c->base.ev_ud);
}

static void ready_now(tallow_timer *t, void *ud)
{
    unix_chan *c = ud;
    c->ready_timer = NULL;
    c->ready = 1;
    c->base.ev->on_ready(&c->base, c->base.ev_ud);
}

/* ---- reading: 4-byte big-endian length, then the frame */

static void deliver(unix_chan *c)
{
    size_t pos = 0;
    while (!c->dead && c->in_len - pos >= 4) {
        const uint8_t *h = c->in + pos;
        uint32_t len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
        if (len > UNIX_MAX_FRAME) {
            ulog(c, TALLOW_LOG_WARN, "peer sent an oversized frame");
            die(c, TALLOW_EPROTO);
            return;
        }
        if (c->in_len - pos - 4 < len) break;
        c->recvd += len;
        c->base.ev->on_frame(&c->base, 0, h + 4, len, c->base.ev_ud);
        pos += 4 + (size_t)len;
    }
    if (c->dead) return;
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
}

static int flush(unix_chan *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n < 0) return -errno;
        c->out_off += (size_t)n;
    }
    if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
    return 0;
}

static void on_io(tallow_io *io, int fd, unsigned events, void *ud)
{
    unix_chan *c = ud;
    if (events & TALLOW_IO_WRITE) {
        int rc = flush(c);
        if (rc < 0) {
            die(c, rc);
            return;
        }
        size_t queued = c->out_len - c->out_off;
        if (!queued) tallow_io_set(c->io, TALLOW_IO_READ);
        if (c->blocked && queued < UNIX_LOW_WATER) {
            c->blocked = 0;
            c->base.ev->on_writable(&c->base, c->base.ev_ud);
            if (c->dead) return;
        }
    }
    if (!(events & TALLOW_IO_READ)) return;
    for (;;) {
        if (c->in_cap - c->in_len < 64 * 1024) {
            size_t cap = c->in_cap ? c->in_cap * 2 : 256 * 1024;
            uint8_t *b = realloc(c->in, cap);
            if (!b) {
                die(c, TALLOW_ENOMEM);
                return;
            }
            c->in = b;
            c->in_cap = cap;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n <= 0) {
            die(c, n == 0 ? 0 : -errno); /* 0: the peer closed in order */
            return;
        }
        c->in_len += (size_t)n;
        deliver(c);
        if (c->dead) return;
        if (c->in_len < c->in_cap) break; /* drained */
    }
}

/* ---- meeting: connect to a listener, or become one */

static int use_connection(unix_chan *c, int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -errno;
    c->fd = fd;
    c->io = tallow_io_start(c->base.loop, fd, TALLOW_IO_READ, on_io, c);
    if (!c->io) return TALLOW_ENOMEM;
    /* on_ready must never come from inside open: report it on the next round */
    c->ready_timer = tallow_timer_start(c->base.loop, 0, 0, ready_now, c);
    return c->ready_timer ? 0 : TALLOW_ENOMEM;
}

static void on_accept(tallow_io *io, int fd, unsigned events, void *ud)
{
    unix_chan *c = ud;
    int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (cfd < 0) return;
    /* one peer per channel: stop listening, remove the socket file */
    tallow_io_stop(c->listen_io);
    c->listen_io = NULL;
    close(c->listen_fd);
    c->listen_fd = -1;
    unlink(c->path);
    if (c->timeout_timer) tallow_timer_stop(c->timeout_timer);
    c->timeout_timer = NULL;
    int rc = use_connection(c, cfd);
    if (rc < 0) {
        close(cfd);
        die(c, rc);
    }
}

static void on_timeout(tallow_timer *t, void *ud)
{
    unix_chan *c = ud;
    c->timeout_timer = NULL;
    die(c, TALLOW_ETIMEOUT);
}

/* Connects to a listener at the path; if there is none (no file, or a stale one), listens. */
static int meet(unix_chan *c, const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0) {
        int rc = use_connection(c, fd);
        if (rc < 0) close(fd);
        return rc;
    }
    if (errno != ENOENT && errno != ECONNREFUSED) {
        int err = -errno;
        close(fd);
        return err;
    }
    if (errno == ECONNREFUSED) unlink(c->path); /* left by a peer that is gone */
    if (bind(fd, (const struct sockaddr *)sa, sizeof *sa) < 0 || listen(fd, 1) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    c->listen_fd = fd;
    c->listen_io = tallow_io_start(c->base.loop, fd, TALLOW_IO_READ, on_accept, c);
    return c->listen_io ? 0 : TALLOW_ENOMEM;
}

/* ---- the vtable */

static int unix_open(tallow_channel *ch, const tallow_channel_params *p)
{
    unix_chan *c = (unix_chan *)ch;
    c->listen_fd = c->fd = -1;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!p->address || !p->address[0] || strlen(p->address) >= sizeof sa.sun_path) {
        tallow_ctx_set_error(
            ch->ctx, "unix transport: the address must be a socket path of at most %zu bytes",
            sizeof sa.sun_path - 1);
        return TALLOW_EINVAL;
    }
    snprintf(c->path, sizeof c->path, "%s", p->address);
    snprintf(c->info_path, sizeof c->info_path, "unix %s", p->address);
    memcpy(sa.sun_path, p->address, strlen(p->address) + 1);

    /* decide who listens under a lock, so that exactly one side does */
    char lockpath[sizeof c->path + 8];
    snprintf(lockpath, sizeof lockpath, "%s.lock", c->path);
    int lk = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lk < 0) {
        int err = -errno;
        tallow_ctx_set_error(ch->ctx, "unix transport: cannot open %s: %s", lockpath,
                             strerror(-err));
        return err;
    }
    flock(lk, LOCK_EX);
    int rc = meet(c, &sa);
    close(lk); /* releases the lock */
    if (rc < 0) {
        tallow_ctx_set_error(ch->ctx, "unix transport: cannot meet at %s: %s", c->path,
                             strerror(-rc));
        stop_watchers(c);
        if (c->fd >= 0) close(c->fd);
        c->fd = -1;
        return rc;
    }
    if (p->timeout_ms && c->listen_fd >= 0)
        c->timeout_timer = tallow_timer_start(c->base.loop, p->timeout_ms, 0, on_timeout, c);
    return 0;
}

static int unix_send(tallow_channel *ch, uint32_t to, const uint8_t *frame, size_t len)
{
    unix_chan *c = (unix_chan *)ch;
    if (c->dead || c->fd < 0) return TALLOW_ECLOSED;
    if (len > UNIX_MAX_FRAME) return TALLOW_ETOOBIG;
    if (c->out_len + 4 + len > c->out_cap) {
        if (c->out_off) { /* reuse the space already written */
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        size_t cap = c->out_cap ? c->out_cap : 256 * 1024;
        while (cap < c->out_len + 4 + len)
            cap *= 2;
        if (cap != c->out_cap) {
            uint8_t *b = realloc(c->out, cap);
            if (!b) return TALLOW_ENOMEM;
            c->out = b;
            c->out_cap = cap;
        }
    }
    uint8_t *h = c->out + c->out_len;
    h[0] = (uint8_t)(len >> 24);
    h[1] = (uint8_t)(len >> 16);
    h[2] = (uint8_t)(len >> 8);
    h[3] = (uint8_t)len;
    memcpy(h + 4, frame, len);
    c->out_len += 4 + len;
    c->sent += len;
    int rc = flush(c);
    if (rc < 0) return rc;
    size_t queued = c->out_len - c->out_off;
    if (queued) tallow_io_set(c->io, TALLOW_IO_READ | TALLOW_IO_WRITE);
    if (queued > UNIX_HIGH_WATER) {
        c->blocked = 1;
        return 1;
    }
    return 0;
}

static void unix_close(tallow_channel *ch)
{
    unix_chan *c = (unix_chan *)ch;
    c->dead = 1;
    stop_watchers(c);
    if (c->fd >= 0) {
        /* hand over what is queued if the socket takes it now; never block */
        flush(c);
        close(c->fd);
        c->fd = -1;
    }
    free(c->in);
    free(c->out);
    c->in = c->out = NULL;
}

static void unix_get_info(tallow_channel *ch, tallow_channel_info *info)
{
    unix_chan *c = (unix_chan *)ch;
    memset(info, 0, sizeof *info);
    info->direct = 1; /* no relay in between: the socket goes straight to the peer */
    info->path = c->info_path;
    info->bytes_sent = c->sent;
    info->bytes_recv = c->recvd;
    info->peers = c->ready ? 2 : 1;
}

static size_t unix_queued(tallow_channel *ch)
{
    unix_chan *c = (unix_chan *)ch;
    return c->out_len - c->out_off;
}

/* open and send are required; the rest is optional, and control (transport-specific operations,
 * TALLOW_CTL_*) is left NULL on purpose: the host fills it with its default, which answers
 * TALLOW_ENOTSUP to every op. A struct_size smaller than the required part is refused. */
static const tallow_transport_ops unix_ops = {
    .version = TALLOW_TRANSPORT_OPS_VERSION,
    .struct_size = sizeof(tallow_transport_ops),
    .name = "unix",
    .instance_size = sizeof(unix_chan),
    .open = unix_open,
    .send = unix_send,
    .close = unix_close,
    .get_info = unix_get_info,
    .queued = unix_queued,
};

/* ---- the plugin */

static int unix_init(const tallow_host *host, void **state_out)
{
    unix_plugin *pl = calloc(1, sizeof *pl);
    if (!pl) return TALLOW_ENOMEM;
    pl->host = host;
    int rc = host->register_transport(host->ctx, &unix_ops, pl);
    if (rc < 0) {
        free(pl);
        return rc;
    }
    *state_out = pl;
    return 0;
}

static void unix_fini(void *state)
{
    free(state);
}

static const tallow_plugin_desc unix_desc = {
    .abi = TALLOW_PLUGIN_ABI,
    .struct_size = sizeof(tallow_plugin_desc),
    .name = "unix",
    .version = "0.1.0",
    .summary = "example transport: two peers on one machine meet at a Unix socket path",
    .init = unix_init,
    .fini = unix_fini,
};

TALLOW_PLUGIN_EXPORT const tallow_plugin_desc *tallow_plugin_entry(void)
{
    return &unix_desc;
}

/* core/base/plugin.c — the plugin loader on libltdl: search path, fixed entry symbol, ABI and size
 * checks before init, one distinct error per failure, unload in reverse order. */
#include <errno.h>
#include <limits.h>
#include <ltdl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctx_internal.h"
#include "registry.h"

struct tallow__plugin {
    tallow_host host; /* this plugin's own: its name on its log lines */
    lt_dlhandle handle;
    const tallow_plugin_desc *desc;
    void *state;
    char *path;
    tallow__plugin *next;
};

/* libltdl keeps process-wide state of its own; init/exit are reference counted. */
static int ltdl_ref(void)
{
    return lt_dlinit() == 0 ? 0 : TALLOW_ENOMEM;
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Resolves a name ("relay") or a path ("./x.so") to an existing file. */
static int resolve(const char *name, char *out, size_t cap)
{
    if (strchr(name, '/')) {
        if (!file_exists(name)) return TALLOW_EPLUGNOFILE;
        snprintf(out, cap, "%s", name);
        return 0;
    }
    const char *env = getenv("TALLOW_PLUGIN_PATH");
    char dirs[4096];
    snprintf(dirs, sizeof(dirs), "%s%s%s:%s", env ? env : "", env ? ":" : "",
             TALLOW_BUILD_PLUGIN_DIR, TALLOW_INSTALL_PLUGIN_DIR);
    char *save = NULL;
    for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        if (!*d) continue;
        snprintf(out, cap, "%s/%s.so", d, name);
        if (file_exists(out)) return 0;
    }
    return TALLOW_EPLUGNOFILE;
}

static int already_loaded(tallow_ctx *ctx, const char *name)
{
    for (tallow__plugin *p = ctx->plugins; p; p = p->next)
        if (strcmp(p->desc->name, name) == 0) return 1;
    return 0;
}

static void unload_all(tallow_ctx *ctx);

/* Records the message (it names the file) and returns err. */
#define fail(ctx, err, ...) (tallow_ctx_set_error((ctx), __VA_ARGS__), (err))

TALLOW_API int tallow_plugin_load(tallow_ctx *ctx, const char *name_or_path)
{
    char path[PATH_MAX];
    if (resolve(name_or_path, path, sizeof(path)) < 0)
        return fail(ctx, TALLOW_EPLUGNOFILE, "plugin %s: file not found%s", name_or_path,
                    strchr(name_or_path, '/') ? "" : " on the plugin path");
    if (ltdl_ref() < 0) return fail(ctx, TALLOW_ENOMEM, "plugin %s: %s", path, lt_dlerror());

    lt_dladvise adv;
    lt_dladvise_init(&adv);
    lt_dladvise_local(&adv);
    lt_dlhandle h = lt_dlopenadvise(path, adv);
    lt_dladvise_destroy(&adv);
    if (!h) {
        int rc = fail(ctx, TALLOW_EPLUGNOFILE, "plugin %s: cannot load: %s", path, lt_dlerror());
        lt_dlexit();
        return rc;
    }
    int rc;
    /* ISO C has no conversion from an object pointer to a function pointer; POSIX guarantees
     * the representation is the same, so the bytes are copied (as dlsym(3) advises). */
    void *sym = lt_dlsym(h, TALLOW_PLUGIN_ENTRY_SYMBOL);
    tallow_plugin_entry_fn entry = NULL;
    _Static_assert(sizeof(entry) == sizeof(sym), "function and object pointers differ in size");
    if (sym) memcpy(&entry, &sym, sizeof(entry));
    const tallow_plugin_desc *d = entry ? entry() : NULL;
    if (!entry || !d) {
        rc = fail(ctx, TALLOW_EPLUGNOENTRY, "plugin %s: no entry point '%s'", path,
                  TALLOW_PLUGIN_ENTRY_SYMBOL);
        goto out_close;
    }
    if (d->abi != TALLOW_PLUGIN_ABI) {
        char nums[64];
        snprintf(nums, sizeof(nums), "plugin ABI %u, tallow ABI %u", d->abi, TALLOW_PLUGIN_ABI);
        rc = fail(ctx, TALLOW_EPLUGABI, "plugin %s: ABI mismatch (%s)", path, nums);
        goto out_close;
    }
    if (d->struct_size < offsetof(tallow_plugin_desc, fini) + sizeof(d->fini) || !d->name ||
        !d->init) {
        rc =
            fail(ctx, TALLOW_EPLUGABI, "plugin %s: descriptor too small or incomplete%s", path, "");
        goto out_close;
    }
    if (already_loaded(ctx, d->name)) {
        rc = fail(ctx, TALLOW_EPLUGDUP, "plugin %s: a plugin named '%s' is already loaded", path,
                  d->name);
        goto out_close;
    }
    tallow__plugin *p = calloc(1, sizeof(*p));
    if (!p || !(p->path = strdup(path))) {
        free(p);
        rc = TALLOW_ENOMEM;
        goto out_close;
    }
    p->handle = h;
    p->desc = d;
    /* What init registers points into the plugin's memory: on failure it must all go. */
    size_t nt = ctx->transports.n, nd = ctx->discoveries.n, ng = ctx->gatherers.n,
           ns = ctx->services.n, nl = ctx->lua_modules.n, np = ctx->punches.n, nmsg = 0;
    const tallow_msg_type **msgs = tallow__registry_save(ctx->registry, &nmsg);
    if (!msgs) {
        free(p->path);
        free(p);
        rc = TALLOW_ENOMEM;
        goto out_close;
    }
    tallow__host_make(&p->host, ctx, d->name);
    ctx->loading = d->name;
    tallow_ctx_set_error(ctx, "%s", "");
    rc = d->init(&p->host, &p->state);
    ctx->loading = NULL;
    if (rc < 0) {
        tallow__iface_list_truncate(&ctx->transports, nt);
        tallow__iface_list_truncate(&ctx->discoveries, nd);
        tallow__iface_list_truncate(&ctx->gatherers, ng);
        tallow__iface_list_truncate(&ctx->services, ns);
        tallow__iface_list_truncate(&ctx->lua_modules, nl);
        tallow__iface_list_truncate(&ctx->punches, np);
        tallow__registry_restore(ctx->registry, msgs, nmsg);
    }
    free(msgs);
    if (rc < 0) {
        char why[640]; /* with what a registrar refused, if it did */
        const char *reason = tallow_ctx_last_error(ctx);
        snprintf(why, sizeof(why), "%s (%s)%s%s", tallow_strerror(rc), d->name,
                 reason[0] ? ": " : "", reason);
        free(p->path);
        free(p);
        rc = fail(ctx, TALLOW_EPLUGINIT, "plugin %s: init failed: %s", path, why);
        goto out_close;
    }
    ctx->unload_plugins = unload_all;
    /* append: unload runs in reverse */
    tallow__plugin **tail = &ctx->plugins;
    while (*tail)
        tail = &(*tail)->next;
    *tail = p;
    return 0;

out_close:
    lt_dlclose(h);
    lt_dlexit();
    return rc;
}

static void unload(tallow_ctx *ctx, tallow__plugin *p)
{
    if (!p) return;
    unload(ctx, p->next);
    if (p->desc->fini) p->desc->fini(p->state);
    lt_dlclose(p->handle);
    lt_dlexit();
    free(p->path);
    free(p);
}

/* Reached from tallow_ctx_free through ctx->unload_plugins. */
static void unload_all(tallow_ctx *ctx)
{
    unload(ctx, ctx->plugins);
    ctx->plugins = NULL;
}

TALLOW_API void
tallow_plugin_foreach(tallow_ctx *ctx,
                      void (*fn)(const tallow_plugin_desc *d, const char *path, void *ud), void *ud)
{
    for (tallow__plugin *p = ctx->plugins; p; p = p->next)
        fn(p->desc, p->path, ud);
}

static int has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

#include <dirent.h>

TALLOW_API int tallow_plugin_load_all(tallow_ctx *ctx)
{
    const char *env = getenv("TALLOW_PLUGIN_PATH");
    char dirs[4096];
    /* The build tree wins over the install prefix; a plugin found twice loads once. */
    snprintf(dirs, sizeof(dirs), "%s%s%s:%s", env ? env : "", env ? ":" : "",
             TALLOW_BUILD_PLUGIN_DIR, TALLOW_INSTALL_PLUGIN_DIR);
    int loaded = 0;
    char *save = NULL;
    for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        DIR *dir = opendir(d);
        if (!dir) continue;
        struct dirent *de;
        while ((de = readdir(dir))) {
            if (de->d_name[0] == '.' || !has_suffix(de->d_name, ".so")) continue;
            char name[256];
            snprintf(name, sizeof(name), "%.*s", (int)(strlen(de->d_name) - 3), de->d_name);
            if (already_loaded(ctx, name)) continue;
            char path[PATH_MAX];
            snprintf(path, sizeof(path), "%s/%s", d, de->d_name);
            int rc = tallow_plugin_load(ctx, path);
            if (rc == 0)
                loaded++;
            else if (rc != TALLOW_EPLUGDUP)
                tallow_ctx_log(ctx, TALLOW_LOG_WARN, "%s; going on without it",
                               tallow_ctx_last_error(ctx));
        }
        closedir(dir);
    }
    return loaded;
}

/* tests/core/loader/test_plugin_loader.c — the plugin loader against purpose-built fakes: each
 * failure gives its own code and a message naming the file; a failed init leaves nothing behind;
 * the good plugin still loads afterwards, its registrations are usable, and fini runs with its
 * state; load_all loads the good one and skips the rest. The registration path: ops with a
 * too-small struct_size are refused with a message naming the plugin and the interface; NULL or
 * missing optional slots get the host's defaults; a plugin's log lines carry its name. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* cmocka.h needs the headers above first */
#include <cmocka.h>

#include <tallow/tallow.h>

#define FAKE(name) FAKE_PLUGIN_DIR "/" name ".so"

typedef struct fixture {
    char dir[64]; /* a scratch folder */
    char log[96]; /* what the fakes report (TALLOW_FAKE_LOG) */
    tallow_ctx *ctx;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (!f) return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/tallow-loader-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->log, sizeof(f->log), "%s/fake.log", f->dir);
    setenv("TALLOW_FAKE_LOG", f->log, 1);
    unsetenv("TALLOW_PLUGIN_PATH");
    f->ctx = tallow_ctx_new();
    if (!f->ctx) return -1;
    tallow_ctx_set_log_level(f->ctx, TALLOW_LOG_ERROR); /* load_all's warnings are expected */
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tallow_ctx_free(f->ctx);
    char junk[128];
    snprintf(junk, sizeof(junk), "%s/junk.so", f->dir);
    unlink(junk);
    unlink(f->log);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* The fakes' report so far ("" when none). */
static const char *fake_log(const fixture *f)
{
    static char buf[4096];
    buf[0] = 0;
    FILE *fp = fopen(f->log, "r");
    if (!fp) return buf;
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    buf[n] = 0;
    fclose(fp);
    return buf;
}

static int count_lines(const char *text, const char *line)
{
    int n = 0;
    size_t len = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p += len)
        if ((p == text || p[-1] == '\n') && p[len] == '\n') n++;
    return n;
}

#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (!strstr(h_, n_)) fail_msg("\"%s\" does not contain \"%s\"", h_, n_);                   \
    } while (0)

#define assert_load_fails(f, path, code)                                                           \
    do {                                                                                           \
        int rc_ = tallow_plugin_load((f)->ctx, (path));                                            \
        if (rc_ != (code))                                                                         \
            fail_msg("loading %s gave %s, want %s (%s)", (path), tallow_err_name(rc_),             \
                     tallow_err_name(code), tallow_ctx_last_error((f)->ctx));                      \
        assert_contains(tallow_ctx_last_error((f)->ctx), (path));                                  \
    } while (0)

static void count_plugin(const tallow_plugin_desc *d, const char *path, void *ud)
{
    (*(int *)ud)++;
}

static int nplugins(tallow_ctx *ctx)
{
    int n = 0;
    tallow_plugin_foreach(ctx, count_plugin, &n);
    return n;
}

/* ---- each failure, its code and its message */

static void test_loader_missing_file(void **state)
{
    fixture *f = *state;
    assert_load_fails(f, FAKE("fake_nope"), TALLOW_EPLUGNOFILE);
    assert_load_fails(f, "/nonexistent/dir/x.so", TALLOW_EPLUGNOFILE);
    /* by name: searched on the path, and the message names what was asked for */
    assert_load_fails(f, "fake_no_such_plugin", TALLOW_EPLUGNOFILE);
    setenv("TALLOW_PLUGIN_PATH", FAKE_PLUGIN_DIR, 1);
    assert_load_fails(f, "fake_no_such_plugin", TALLOW_EPLUGNOFILE);
    /* a folder is not a plugin file */
    assert_load_fails(f, FAKE_PLUGIN_DIR "/", TALLOW_EPLUGNOFILE);
    assert_int_equal(nplugins(f->ctx), 0);
}

static void test_loader_not_a_shared_object(void **state)
{
    fixture *f = *state;
    char path[128];
    snprintf(path, sizeof(path), "%s/junk.so", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("this is not an ELF file\n", fp);
    fclose(fp);
    assert_load_fails(f, path, TALLOW_EPLUGNOFILE);
    assert_contains(tallow_ctx_last_error(f->ctx), "cannot load");
}

static void test_loader_no_entry_symbol(void **state)
{
    fixture *f = *state;
    assert_load_fails(f, FAKE("fake_noentry"), TALLOW_EPLUGNOENTRY);
    assert_contains(tallow_ctx_last_error(f->ctx), TALLOW_PLUGIN_ENTRY_SYMBOL);
    assert_int_equal(nplugins(f->ctx), 0);
}

static void test_loader_abi_mismatch(void **state)
{
    fixture *f = *state;
    assert_load_fails(f, FAKE("fake_abi"), TALLOW_EPLUGABI);
    char nums[64];
    snprintf(nums, sizeof(nums), "plugin ABI 999, tallow ABI %d", TALLOW_PLUGIN_ABI);
    assert_contains(tallow_ctx_last_error(f->ctx), nums);
    assert_string_equal(fake_log(f), ""); /* init never ran */
    assert_int_equal(nplugins(f->ctx), 0);
}

static void test_loader_descriptor_too_small(void **state)
{
    fixture *f = *state;
    assert_load_fails(f, FAKE("fake_small"), TALLOW_EPLUGABI);
    assert_contains(tallow_ctx_last_error(f->ctx), "too small");
    assert_int_equal(nplugins(f->ctx), 0);
}

static void test_loader_init_failure_leaves_nothing(void **state)
{
    fixture *f = *state;
    assert_load_fails(f, FAKE("fake_initfail"), TALLOW_EPLUGINIT);
    assert_contains(tallow_ctx_last_error(f->ctx), "init failed");
    assert_contains(tallow_ctx_last_error(f->ctx), tallow_strerror(TALLOW_EPROTO));
    /* init ran, fini did not, and what init registered is gone with the plugin */
    assert_int_equal(count_lines(fake_log(f), "init fake_initfail"), 1);
    assert_int_equal(count_lines(fake_log(f), "fini fake_initfail"), 0);
    assert_null(tallow_transport_find(f->ctx, "fake-initfail"));
    assert_null(tallow_registry_find(tallow_ctx_registry(f->ctx), 0x8002));
    assert_null(tallow_registry_find_name(tallow_ctx_registry(f->ctx), "FakeInitFailMsg"));
    assert_int_equal(nplugins(f->ctx), 0);
    /* and it fails the same way a second time (nothing half-registered is in the way) */
    assert_load_fails(f, FAKE("fake_initfail"), TALLOW_EPLUGINIT);
    assert_int_equal(count_lines(fake_log(f), "init fake_initfail"), 2);
}

static void test_loader_duplicate_name(void **state)
{
    fixture *f = *state;
    assert_int_equal(tallow_plugin_load(f->ctx, FAKE("fake_good")), 0);
    assert_load_fails(f, FAKE_PLUGIN_DUP_DIR "/fake_dup.so", TALLOW_EPLUGDUP);
    assert_contains(tallow_ctx_last_error(f->ctx), "'fake_good'");
    /* the very same file twice is a duplicate too */
    assert_load_fails(f, FAKE("fake_good"), TALLOW_EPLUGDUP);
    assert_int_equal(count_lines(fake_log(f), "init fake_dup"), 0);
    assert_int_equal(count_lines(fake_log(f), "init fake_good"), 1);
    assert_int_equal(nplugins(f->ctx), 1);
}

/* ---- the registration path */

static void test_loader_too_small_ops_refused(void **state)
{
    fixture *f = *state;
    assert_load_fails(f, FAKE("fake_smallops"), TALLOW_EPLUGINIT);
    const char *msg = tallow_ctx_last_error(f->ctx);
    assert_contains(msg, "(fake_smallops)"); /* the plugin */
    assert_contains(msg, "transport ops");   /* the interface */
    assert_contains(msg, "struct_size 24");  /* and why */
    assert_int_equal(count_lines(fake_log(f), "init fake_smallops refused"), 1);
    assert_null(tallow_transport_find(f->ctx, "fake-smallops"));
    assert_int_equal(nplugins(f->ctx), 0);
}

static void find_gatherer(const tallow_gatherer_ops *ops, void *st, void *ud)
{
    if (strcmp(ops->name, "fake-gather") == 0) *(const tallow_gatherer_ops **)ud = ops;
}

static void no_stat(const char *key, uint64_t value, void *ud)
{
    (*(int *)ud)++;
}

static void test_loader_defaults_fill_optional_slots(void **state)
{
    fixture *f = *state;
    tallow_ctx *ctx = f->ctx;
    assert_int_equal(tallow_plugin_load(ctx, FAKE("fake_good")), 0);

    /* a transport with open and send only: every other slot is the host's */
    const tallow_transport_ops *ops = tallow_transport_find(ctx, "fake-good");
    assert_non_null(ops);
    assert_non_null(ops->close);
    assert_non_null(ops->get_info);
    assert_non_null(ops->queued);
    assert_non_null(ops->control);
    tallow_channel_params params = TALLOW_CHANNEL_PARAMS_INIT(.address = "here");
    tallow_channel_events ev = {0};
    tallow_channel *ch = NULL;
    assert_int_equal(tallow_channel_open(ctx, "fake-good", &params, &ev, NULL, &ch), 0);
    assert_int_equal(tallow_channel_queued(ch), 0);
    assert_int_equal(tallow_channel_control(ch, 1, NULL), TALLOW_ENOTSUP);
    tallow_channel_close(ch);

    /* an older plugin's smaller struct: what lies past its struct_size is not the plugin's */
    const tallow_transport_ops *old = tallow_transport_find(ctx, "fake-old");
    assert_non_null(old);
    ch = NULL;
    assert_int_equal(tallow_channel_open(ctx, "fake-old", &params, &ev, NULL, &ch), 0);
    assert_int_equal(tallow_channel_queued(ch), 0); /* not the 4242 beyond its struct */
    assert_int_equal(tallow_channel_control(ch, 7, NULL), TALLOW_ENOTSUP);
    tallow_channel_info info;
    tallow_channel_get_info(ch, &info);
    assert_string_equal(info.path, "fake-old");
    tallow_channel_close(ch);

    /* parameters without a struct_size are refused, not read */
    tallow_channel_params bare = {0};
    ch = NULL;
    assert_int_equal(tallow_channel_open(ctx, "fake-good", &bare, &ev, NULL, &ch), TALLOW_EINVAL);
    assert_null(ch);

    /* a gatherer without release */
    const tallow_gatherer_ops *g = NULL;
    tallow_gatherer_foreach(ctx, find_gatherer, &g);
    assert_non_null(g);
    assert_non_null(g->release);
    g->release(NULL, NULL); /* does nothing, and says nothing */

    /* a service with start and stop only */
    void *st = NULL;
    const tallow_service_ops *svc = tallow_service_find(ctx, "fake-service", &st);
    assert_non_null(svc);
    assert_non_null(svc->options_help);
    assert_null(svc->options_help[0]);
    int nstats = 0;
    svc->stats(NULL, no_stat, &nstats);
    assert_int_equal(nstats, 0);
    assert_int_equal(svc->check(st, ctx, NULL, 0), TALLOW_ENOTSUP);
    assert_int_equal(svc->reload(NULL, NULL, 0), TALLOW_ENOTSUP);
    assert_int_equal(svc->drain(NULL), TALLOW_ENOTSUP);
}

/* Runs fn with stderr going to path. */
static void capture_stderr(const char *path, void (*fn)(fixture *f), fixture *f)
{
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    fn(f);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
}

static void open_and_close(fixture *f)
{
    tallow_channel_params params = TALLOW_CHANNEL_PARAMS_INIT(.address = "somewhere");
    tallow_channel_events ev = {0};
    tallow_channel *ch = NULL;
    if (tallow_channel_open(f->ctx, "fake-good", &params, &ev, NULL, &ch) == 0)
        tallow_channel_close(ch);
}

static const char *read_file(const char *path)
{
    static char buf[4096];
    buf[0] = 0;
    FILE *fp = fopen(path, "r");
    if (!fp) return buf;
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    buf[n] = 0;
    fclose(fp);
    return buf;
}

static void load_good(fixture *f)
{
    tallow_ctx_set_log_level(f->ctx, TALLOW_LOG_WARN);
    assert_int_equal(tallow_plugin_load(f->ctx, FAKE("fake_good")), 0);
}

static void test_loader_plugin_log_lines_carry_name(void **state)
{
    fixture *f = *state;
    char path[128];
    snprintf(path, sizeof(path), "%s/stderr.txt", f->dir);
    /* during init: the name once, though the plugin wrote it too */
    capture_stderr(path, load_good, f);
    assert_string_equal(read_file(path), "tallow: warning: fake_good: registered\n");
    /* after init, from a call into the plugin */
    capture_stderr(path, open_and_close, f);
    assert_contains(read_file(path), "tallow: warning: fake_good: channel opened to somewhere\n");
    tallow_ctx_set_log_format(f->ctx, 1);
    capture_stderr(path, open_and_close, f);
    assert_contains(read_file(path), "\"source\":\"fake_good\"");
    assert_contains(read_file(path), "\"msg\":\"channel opened to somewhere\"");
    unlink(path);
}

/* ---- the good plugin, after every kind of failure */

typedef struct found {
    int n;
    char name[64];
    char path[512];
} found;

static void remember_plugin(const tallow_plugin_desc *d, const char *path, void *ud)
{
    found *fo = ud;
    fo->n++;
    snprintf(fo->name, sizeof(fo->name), "%s", d->name);
    snprintf(fo->path, sizeof(fo->path), "%s", path);
}

static void test_loader_good_loads_after_failures(void **state)
{
    fixture *f = *state;
    tallow_ctx *ctx = f->ctx;
    assert_load_fails(f, FAKE("fake_nope"), TALLOW_EPLUGNOFILE);
    assert_load_fails(f, FAKE("fake_noentry"), TALLOW_EPLUGNOENTRY);
    assert_load_fails(f, FAKE("fake_abi"), TALLOW_EPLUGABI);
    assert_load_fails(f, FAKE("fake_small"), TALLOW_EPLUGABI);
    assert_load_fails(f, FAKE("fake_initfail"), TALLOW_EPLUGINIT);
    assert_load_fails(f, FAKE("fake_smallops"), TALLOW_EPLUGINIT);

    assert_int_equal(tallow_plugin_load(ctx, FAKE("fake_good")), 0);
    found fo = {0};
    tallow_plugin_foreach(ctx, remember_plugin, &fo);
    assert_int_equal(fo.n, 1);
    assert_string_equal(fo.name, "fake_good");
    assert_string_equal(fo.path, FAKE("fake_good"));

    /* its transport: found, a host-owned copy, and handed the plugin's state */
    const tallow_transport_ops *ops = tallow_transport_find(ctx, "fake-good");
    assert_non_null(ops);
    assert_string_equal(ops->name, "fake-good");
    assert_null(tallow_transport_find(ctx, "fake-initfail"));
    tallow_channel_params params = TALLOW_CHANNEL_PARAMS_INIT();
    tallow_channel_events ev = {0};
    tallow_channel *ch = NULL;
    assert_int_equal(tallow_channel_open(ctx, "fake-good", &params, &ev, NULL, &ch), 0);
    assert_non_null(ch);
    assert_int_equal(tallow_channel_send(ch, 0, (const uint8_t *)"x", 1), 0);
    tallow_channel_info info;
    tallow_channel_get_info(ch, &info); /* no get_info slot: the host's default fills in */
    assert_string_equal(info.path, "fake-good");
    tallow_channel_close(ch);

    /* its message type decodes through the context's registry */
    const tallow_msg_type *t = tallow_registry_find(tallow_ctx_registry(ctx), 0x8001);
    assert_non_null(t);
    assert_string_equal(t->name, "FakeGoodMsg");
    const uint8_t frame[] = {0x81, 0x80, 0x02, 0x06, 0x08, 0x05, 0x12, 0x02, 'o', 'k'};
    uint8_t out[64];
    const tallow_msg_type *got = NULL;
    assert_int_equal(
        tallow_msg_decode(tallow_ctx_registry(ctx), frame, sizeof(frame), &got, out, sizeof(out)),
        0);
    assert_ptr_equal(got, t);

    /* fini runs once, at ctx_free, with the state init gave */
    assert_int_equal(count_lines(fake_log(f), "init fake_good"), 1);
    assert_int_equal(count_lines(fake_log(f), "fini fake_good state-ok"), 0);
    tallow_ctx_free(ctx);
    f->ctx = tallow_ctx_new();
    assert_int_equal(count_lines(fake_log(f), "fini fake_good state-ok"), 1);
    assert_int_equal(count_lines(fake_log(f), "fini fake_good state-bad"), 0);
    assert_int_equal(count_lines(fake_log(f), "fini fake_initfail"), 0);
}

static void test_loader_by_name_on_plugin_path(void **state)
{
    fixture *f = *state;
    setenv("TALLOW_PLUGIN_PATH", "/nonexistent:" FAKE_PLUGIN_DIR, 1);
    assert_int_equal(tallow_plugin_load(f->ctx, "fake_good"), 0);
    assert_non_null(tallow_transport_find(f->ctx, "fake-good"));
    /* a failure found by name names the file it found */
    assert_int_equal(tallow_plugin_load(f->ctx, "fake_abi"), TALLOW_EPLUGABI);
    assert_contains(tallow_ctx_last_error(f->ctx), FAKE("fake_abi"));
}

/* ---- load_all */

typedef struct from_fake_dir {
    int n;
    int good;
} from_fake_dir;

static void count_fake(const tallow_plugin_desc *d, const char *path, void *ud)
{
    from_fake_dir *c = ud;
    if (strncmp(path, FAKE_PLUGIN_DIR "/", strlen(FAKE_PLUGIN_DIR) + 1) != 0) return;
    c->n++;
    if (strcmp(d->name, "fake_good") == 0 && strcmp(path, FAKE("fake_good")) == 0) c->good++;
}

static void test_loader_load_all_skips_bad(void **state)
{
    fixture *f = *state;
    setenv("TALLOW_PLUGIN_PATH", FAKE_PLUGIN_DIR, 1);
    int n = tallow_plugin_load_all(f->ctx);
    /* the build tree's real plugins may load as well; the count matches what is loaded */
    assert_true(n >= 1);
    assert_int_equal(n, nplugins(f->ctx));
    from_fake_dir c = {0};
    tallow_plugin_foreach(f->ctx, count_fake, &c);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.good, 1);
    assert_non_null(tallow_transport_find(f->ctx, "fake-good"));
    assert_null(tallow_transport_find(f->ctx, "fake-initfail"));
    assert_null(tallow_registry_find(tallow_ctx_registry(f->ctx), 0x8002));
    const char *log = fake_log(f);
    assert_int_equal(count_lines(log, "init fake_good"), 1);
    assert_int_equal(count_lines(log, "init fake_abi"), 0);
    assert_int_equal(count_lines(log, "init fake_dup"), 0);
    /* a second pass loads nothing new */
    assert_int_equal(tallow_plugin_load_all(f->ctx), 0);
    assert_int_equal(nplugins(f->ctx), n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_loader_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_not_a_shared_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_no_entry_symbol, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_abi_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_descriptor_too_small, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_init_failure_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_duplicate_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_too_small_ops_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_defaults_fill_optional_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_plugin_log_lines_carry_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_good_loads_after_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_by_name_on_plugin_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_load_all_skips_bad, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

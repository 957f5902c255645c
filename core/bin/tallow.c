/* core/bin/tallow.c — the `tallow` runner: `tallow <command> [args]` runs the stock script
 * lua/commands/<command>.lua, `tallow run FILE.lua [args]` runs any script, `tallow --help`
 * lists the commands it finds. Policy from the environment is set and locked before any script
 * runs, so scripts can only tighten it. */
#include <dirent.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include <tallow/lua.h>
#include <tallow/tallow.h>

/* One-line summary of a command script: its first line "-- summary". */
static void summary_of(const char *path, char *out, size_t cap)
{
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[380];
    if (fgets(line, sizeof(line), f) && strncmp(line, "--", 2) == 0) {
        char *s = line + 2;
        while (*s == '-' || *s == ' ')
            s++;
        s[strcspn(s, "\r\n")] = 0;
        snprintf(out, cap, "%s", s);
    }
    fclose(f);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void usage(FILE *out)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/commands", tallow_lua_dir());
    fprintf(out,
            "tallow %s — secure peer-to-peer transfers with a short code phrase\n\n"
            "usage: tallow <command> [options]     (tallow <command> --help for details)\n"
            "       tallow run SCRIPT.lua [args]   run any Lua script with the tallow API\n"
            "       tallow --version\n\ncommands:\n",
            TALLOW_VERSION);
    DIR *d = opendir(dir);
    char *names[256];
    size_t n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) && n < 256) {
        size_t len = strlen(de->d_name);
        /* "_name.lua" are helpers (shell completion), not listed */
        if (len > 4 && de->d_name[0] != '_' && strcmp(de->d_name + len - 4, ".lua") == 0)
            names[n++] = strdup(de->d_name);
    }
    if (d) closedir(d);
    qsort(names, n, sizeof(names[0]), cmp_str);
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX + 300], sum[400];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        summary_of(path, sum, sizeof(sum));
        names[i][strlen(names[i]) - 4] = 0;
        fprintf(out, "  %-10s %s\n", names[i], sum);
        free(names[i]);
    }
    if (n == 0) fprintf(out, "  (no command scripts found in %s)\n", dir);
    fprintf(
        out,
        "\nfirst steps:\n"
        "  tallow relay                       on a machine both sides can reach (or use one)\n"
        "  tallow send FILE --relay HOST:4433   prints a code such as 7-crossword-rhythm-velvet\n"
        "  tallow receive CODE --relay HOST:4433   on the other machine\n"
        "\nenvironment:\n"
        "  TALLOW_RELAY=HOST:PORT     relay to meet at (default 127.0.0.1:4433), like --relay\n"
        "  TALLOW_RELAYS=A,B,...      several relays side by side\n"
        "  TALLOW_RELAY_PASSWORD      password of a private relay, like --relay-password\n"
        "  TALLOW_CODE                the code phrase (so it need not appear in ps)\n"
        "  TALLOW_NO_P2P=1            never go direct, like --no-p2p\n"
        "  TALLOW_PROXY=socks5://H:P  reach the relay through a SOCKS5 proxy, like --proxy\n"
        "  TALLOW_RELAY_PIN=SHA256    trust a tls:// relay by its key, like --relay-pin\n"
        "  TALLOW_ALLOW_LOOPBACK=1    allow loopback candidates, like --allow-loopback\n"
        "  TALLOW_P2P_TIMEOUT=S       seconds the direct-path attempt may take (default 5)\n"
        "  TALLOW_OFFER_TIMEOUT=S     receiver's wait for the paired sender's offer (default 120)\n"
        "  TALLOW_STALL_TIMEOUT=S     wait for a silent peer mid-transfer (default 120)\n"
        "  TALLOW_HANDSHAKE_TIMEOUT=S key exchange limit once paired (default 30)\n"
        "  TALLOW_RELAY_RECONNECT_MS  how long a dropped relay connection keeps trying\n"
        "  TALLOW_QUIC_CC=cubic|reno|bbr|bbr2   direct path's congestion control (default: by "
        "path)\n"
        "  TALLOW_TCP_CC=NAME         relay connection's TCP congestion control (default bbr)\n"
        "  TALLOW_NO_GRO=1            no UDP_GRO batching on the direct path\n"
        "  TALLOW_PORTMAP=pcp,natpmp,upnp   gateway mapping protocols to try (default all)\n"
        "  TALLOW_PORTMAP_LEASE=S, TALLOW_PORTMAP_RENEW_MS   mapping lease; forced renew period\n"
        "  TALLOW_WORMHOLE_RELAY=URL, TALLOW_WORMHOLE_TRANSIT=tcp:H:P   magic-wormhole servers\n"
        "  TALLOW_WORMHOLE_CA=FILE    extra CA file trusted for a wss:// wormhole mailbox\n"
        "  TALLOW_LOG=warn|info|debug what the core logs on stderr\n"
        "  TALLOW_PLUGIN_PATH, TALLOW_LUA_DIR   where plugins and Lua scripts are found\n"
        "\nexit status: 0 done, 1 error, 2 usage, 3 refused or declined, 4 code mismatch,\n"
        "             128+N after signal N (Ctrl-C: 130)\n"
        "\nman pages: tallow(1), tallow-relay(8)\n");
}

static int env_true(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0 && strcmp(v, "no") != 0;
}

/* Secrets given in the environment (the code phrase, a relay password) stay readable by the
 * process, but move off the initial environment block: /proc/PID/environ shows that block, so the
 * original bytes are overwritten after setenv() has copied the value to the heap. */
static void hide_env_secret(const char *name)
{
    char *v = getenv(name);
    if (!v) return;
    size_t nlen = strlen(name), vlen = strlen(v);
    char *copy = strdup(v);
    if (!copy || setenv(name, copy, 1) != 0) {
        free(copy);
        return; /* keep it where it is rather than lose it */
    }
    explicit_bzero(copy, vlen);
    free(copy);
    explicit_bzero(v - nlen - 1, nlen + 1 + vlen); /* "NAME=value" in the original block */
}

/* An argument that reads as a code phrase ("7-word-word", any separators). */
static int looks_like_code(const char *a)
{
    int digits = 0, words = 0;
    while (*a == ' ')
        a++;
    for (; *a >= '0' && *a <= '9'; a++)
        digits++;
    if (!digits || digits > 3 || (*a != '-' && *a != ' ' && *a != '_')) return 0;
    while (*a) {
        while (*a == '-' || *a == ' ' || *a == '_')
            a++;
        if (!*a) break;
        int letters = 0;
        for (; (*a >= 'a' && *a <= 'z') || (*a >= 'A' && *a <= 'Z'); a++)
            letters++;
        if (!letters) return 0;
        words++;
    }
    return words > 0;
}

/* The script reads a private copy of argv; in the original, what looks like a code (and the
 * value of --code) is wiped, so ps and /proc/PID/cmdline stop showing it. */
static char **private_argv(int argc, char **argv)
{
    char **copy = calloc((size_t)argc + 1, sizeof(*copy));
    if (!copy) return argv;
    for (int i = 0; i < argc; i++)
        if (!(copy[i] = strdup(argv[i]))) { /* keep it visible rather than lose it */
            while (i-- > 0)
                free(copy[i]);
            free(copy);
            return argv;
        }
    for (int i = 2; i < argc; i++) {
        char *v = argv[i];
        if (!strncmp(v, "--code=", 7))
            v += 7;
        else if (strcmp(argv[i - 1], "--code") != 0 && !looks_like_code(v))
            continue;
        explicit_bzero(v, strlen(v));
    }
    return copy;
}

int main(int argc, char **argv)
{
    /* no core dumps, no ptrace by other processes of the same user: keys and the code stay in
     * this process */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    hide_env_secret("TALLOW_CODE");
    hide_env_secret("TALLOW_RELAY_PASSWORD");
    /* Transports queue every frame (up to ~1 MiB) in a fresh heap buffer. With glibc's default
     * 128 KiB trim threshold each free gave the top of the heap back (brk) and the next frame
     * faulted it all in again: ~15% of a sender's CPU. Keep up to 64 MiB of free heap instead
     * (what stays is bounded by the transports' queue limits: the relay client's is 2 MiB). */
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    /* `tallow help CMD` is `tallow CMD --help` */
    char *help_argv[4];
    if (argc >= 3 && !strcmp(argv[1], "help")) {
        help_argv[0] = argv[0];
        help_argv[1] = argv[2];
        help_argv[2] = "--help";
        help_argv[3] = NULL;
        argv = help_argv;
        argc = 3;
    }
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("tallow %s\n", TALLOW_VERSION);
        return 0;
    }

    char script[PATH_MAX];
    int first_arg;
    if (!strcmp(argv[1], "run")) {
        if (argc < 3 || !strcmp(argv[2], "--help") || !strcmp(argv[2], "-h")) {
            fprintf(
                argc < 3 ? stderr : stdout,
                "usage: tallow run SCRIPT.lua [args]\n\n"
                "Runs a Lua 5.4 script with the tallow API (require \"tallow\"; docs/lua-api.md).\n"
                "The script gets its arguments in `arg`; /dev/stdin reads the script from stdin.\n"
                "The stock commands are such scripts: %s/commands/*.lua.\n\n"
                "examples:\n"
                "  tallow run examples/scripts/hello.lua\n"
                "  echo 'print(require(\"tallow\").code.generate(3))' | tallow run /dev/stdin\n",
                tallow_lua_dir());
            return argc < 3 ? 2 : 0;
        }
        snprintf(script, sizeof(script), "%s", argv[2]);
        first_arg = 2;
    } else {
        if (strchr(argv[1], '/') || argv[1][0] == '.' || argv[1][0] == '-') {
            fprintf(stderr, "tallow: unknown option or command '%s' (see tallow --help)\n",
                    argv[1]);
            return 2;
        }
        snprintf(script, sizeof(script), "%s/commands/%s.lua", tallow_lua_dir(), argv[1]);
        struct stat st;
        if (stat(script, &st) != 0) {
            fprintf(stderr, "tallow: no command '%s' (see tallow --help)\n", argv[1]);
            return 2;
        }
        first_arg = 1;
    }

    tallow_ctx *ctx = tallow_ctx_new();
    if (!ctx) {
        fprintf(stderr, "tallow: out of memory\n");
        return 1;
    }
    tallow_policy *pol = tallow_ctx_policy(ctx);
    if (env_true("TALLOW_NO_P2P")) tallow_policy_forbid_p2p(pol);
    if (env_true("TALLOW_ALLOW_LOOPBACK")) tallow_policy_set_allow_loopback(pol, 1);
    /* The policy flags are read here, in the core, before any script runs; the scripts see them
     * too (for display) but can only tighten the result. */
    for (int i = first_arg + 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], "--no-p2p")) tallow_policy_forbid_p2p(pol);
        if (!strcmp(argv[i], "--allow-loopback")) tallow_policy_set_allow_loopback(pol, 1);
        if (!strcmp(argv[i], "--tor")) tallow_policy_set_proxy(pol, "socks5://127.0.0.1:9050");
        if (!strcmp(argv[i], "--proxy") && i + 1 < argc) tallow_policy_set_proxy(pol, argv[i + 1]);
        if (!strncmp(argv[i], "--proxy=", 8)) tallow_policy_set_proxy(pol, argv[i] + 8);
        /* read by the relay transport (plugins/relay/relay_client_tls.c) */
        if (!strcmp(argv[i], "--relay-pin") && i + 1 < argc)
            setenv("TALLOW_RELAY_PIN", argv[i + 1], 1);
        if (!strncmp(argv[i], "--relay-pin=", 12)) setenv("TALLOW_RELAY_PIN", argv[i] + 12, 1);
    }
    const char *proxy_env = getenv("TALLOW_PROXY");
    if (proxy_env && *proxy_env) tallow_policy_set_proxy(pol, proxy_env);
    tallow_policy_lock(pol);
    tallow_plugin_load_all(ctx);
    char **args = private_argv(argc, argv);
    int code = tallow_lua_run_file(ctx, script, argc - first_arg, args + first_arg);
    if (args != argv) {
        for (int i = 0; i < argc; i++) {
            if (args[i]) explicit_bzero(args[i], strlen(args[i]));
            free(args[i]);
        }
        free(args);
    }
    tallow_ctx_free(ctx);
    return code;
}

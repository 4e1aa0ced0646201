/* kvstore: look after the KV store (docs/kvstore.md): list, inspect, fork, trim, remove,
 * collect garbage, verify, export and import the sessions prefill and decode keep there.
 * Every operation is a lib/kvs.h call; this file only parses, prints and picks the exit
 * status. No command needs the model: with -m, ls lists only that model's sessions and
 * info/tokens refuse a session made by another one. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvs.h"
#include "util.h"

static const char *prog = "kvstore";

static const char usage[] =
    "usage: kvstore [--store DIR] [--key FILE] [-m DIR] COMMAND [ARGS]\n"
    "Look after the KV store: the sessions prefill and decode keep with -k NAME.\n"
    "\n"
    "  ls                       sessions: name, positions, bytes, model, last used\n"
    "  info NAME                header, blocks, tail, model fingerprint\n"
    "  tokens NAME              the token ids it holds, one line (| detok)\n"
    "  fork NAME NEW            a new session sharing NAME's blocks (cheap)\n"
    "  trim NAME N              roll back to N positions (to regenerate an answer)\n"
    "  rm NAME                  remove a session (its blocks stay until gc)\n"
    "  gc [--max-size BYTES]    drop blocks no session uses, and stale temp files; with a\n"
    "                           budget (K, M, G suffixes), keep the most recently used\n"
    "                           unreferenced blocks as a prefix cache while the store fits\n"
    "  verify [NAME]            check every checksum (of NAME, or of the whole store)\n"
    "  export NAME FILE         NAME and its blocks as one portable file\n"
    "  import FILE NAME         the other way\n"
    "\n"
    "      --store DIR   the store (default $QWEN_KVSTORE, else ~/.cache/qwen3-pipe/kv)\n"
    "      --key FILE    the store's key (32 raw bytes or 64 hex digits): it is encrypted\n"
    "  -m, --model DIR   only sessions of this model\n"
    "  -h, --help        this help\n";

typedef struct {
    const char *store, *key, *model;
    long long max_size; /* -1: none */
} opts;

static int fail(const char *what, const char *why) {
    fprintf(stderr, "%s: %s%s%s\n", prog, what ? what : "", what ? ": " : "", why);
    return EXIT_DATA;
}

static int bad_usage(const char *msg) {
    if (msg) fprintf(stderr, "%s: %s\n", prog, msg);
    fputs(usage, stderr);
    return EXIT_USAGE;
}

/* A count with an optional K, M or G (powers of 1024) suffix. */
static int parse_size(const char *s, long long *out) {
    char *e;
    errno = 0;
    long long v = strtoll(s, &e, 10);
    long long mul = 1;
    if (*e == 'K' || *e == 'k') mul = 1LL << 10, e++;
    else if (*e == 'M' || *e == 'm') mul = 1LL << 20, e++;
    else if (*e == 'G' || *e == 'g') mul = 1LL << 30, e++;
    if (errno || e == s || *e || v < 0 || v > (1LL << 62) / mul) return -1;
    *out = v * mul;
    return 0;
}

static void hex16(char out[17], const uint8_t fp[32]) {
    for (int i = 0; i < 8; i++) snprintf(out + 2 * i, 3, "%02x", fp[i]);
}

static void when(char out[32], int64_t t) {
    time_t tt = (time_t)t;
    struct tm tm;
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S", localtime_r(&tt, &tm));
}

static int cmd_ls(kvs_store *st, const uint8_t *fp) {
    char **names, err[512];
    size_t n;
    if (kvs_list(st, &names, &n, err, sizeof err) < 0) return fail(NULL, err);
    int rc = EXIT_OK;
    printf("%-24s %10s %14s %-16s %s\n", "name", "positions", "bytes", "model", "last used");
    for (size_t i = 0; i < n; i++) {
        kvs_info in;
        char m[17], t[32];
        if (kvs_stat(st, names[i], &in, err, sizeof err) < 0) {
            rc = fail(NULL, err);
            continue;
        }
        if (fp && memcmp(fp, in.fingerprint, 32)) continue;
        hex16(m, in.fingerprint);
        when(t, in.mtime);
        printf("%-24s %10zu %14zu %-16s %s\n", in.name, in.n, in.file_bytes + in.block_bytes, m, t);
    }
    kvs_list_free(names, n);
    return rc;
}

static int cmd_info(kvs_store *st, const char *name, const uint8_t *fp) {
    kvs_info in;
    char err[512], t[32], m[65];
    if (kvs_stat(st, name, &in, err, sizeof err) < 0) return fail(NULL, err);
    if (fp && memcmp(fp, in.fingerprint, 32)) return fail(name, KVS_OTHER_MODEL);
    for (int i = 0; i < 32; i++) snprintf(m + 2 * i, 3, "%02x", in.fingerprint[i]);
    when(t, in.mtime);
    printf("name        %s\n", in.name);
    printf("positions   %zu\n", in.n);
    printf("blocks      %zu (%zu positions, %zu bytes)\n", in.blocks, in.blocks * KVS_BLOCK, in.block_bytes);
    printf("tail        %zu positions\n", in.tail);
    printf("hidden      %s\n", in.has_hidden ? "yes" : "no");
    printf("model       %s\n", m);
    printf("shape       %d layers, kv_dim %zu, dim %zu, f32\n", in.n_layers, in.kv_dim, in.dim);
    printf("encrypted   %s\n", in.encrypted ? "yes" : "no");
    printf("file        %zu bytes%s\n", in.file_bytes, in.garbage ? " (with an interrupted commit at the end)" : "");
    printf("last used   %s\n", t);
    return EXIT_OK;
}

static int cmd_tokens(kvs_store *st, const char *name, const uint8_t *fp) {
    session s;
    char err[512];
    if (sess_open(st, name, NULL, &s, SESS_READ, err, sizeof err) < 0) return fail(NULL, err);
    int rc = EXIT_OK;
    if (fp && memcmp(fp, s.fingerprint, 32)) rc = fail(name, KVS_OTHER_MODEL);
    for (size_t p = 0; p < s.kv.n && rc == EXIT_OK; p++)
        if (s.tokens[p] < 0) {
            snprintf(err, sizeof err, "position %zu has no token id (it was fed as an embedding)", p);
            rc = fail(name, err);
        }
    for (size_t p = 0; p < s.kv.n && rc == EXIT_OK; p++) printf(p ? " %d" : "%d", s.tokens[p]);
    if (rc == EXIT_OK) putchar('\n');
    sess_close(&s);
    return rc;
}

static void report(void *ctx, const char *msg) {
    (void)ctx;
    fprintf(stderr, "%s: %s\n", prog, msg);
}

static int run(kvs_store *st, const opts *o, const uint8_t *fp, int argc, char **argv) {
    const char *cmd = argv[0];
    char err[512];
    int n = argc - 1;
#define ARGS(k)                                                          \
    do {                                                                 \
        if (n != (k)) return bad_usage("wrong number of arguments");     \
    } while (0)
    if (o->max_size >= 0 && strcmp(cmd, "gc")) return bad_usage("--max-size is for gc");
    if (!strcmp(cmd, "ls")) {
        ARGS(0);
        return cmd_ls(st, fp);
    }
    if (!strcmp(cmd, "info")) {
        ARGS(1);
        return cmd_info(st, argv[1], fp);
    }
    if (!strcmp(cmd, "tokens")) {
        ARGS(1);
        return cmd_tokens(st, argv[1], fp);
    }
    if (!strcmp(cmd, "fork")) {
        ARGS(2);
        return kvs_fork(st, argv[1], argv[2], err, sizeof err) < 0 ? fail(NULL, err) : EXIT_OK;
    }
    if (!strcmp(cmd, "trim")) {
        ARGS(2);
        long long to;
        if (parse_size(argv[2], &to) < 0 || strpbrk(argv[2], "KkMmGg"))
            return bad_usage("trim: N is a number of positions");
        return kvs_trim(st, argv[1], (size_t)to, err, sizeof err) < 0 ? fail(NULL, err) : EXIT_OK;
    }
    if (!strcmp(cmd, "rm")) {
        ARGS(1);
        return kvs_rm(st, argv[1], err, sizeof err) < 0 ? fail(NULL, err) : EXIT_OK;
    }
    if (!strcmp(cmd, "gc")) {
        ARGS(0);
        kvs_gc_stats g;
        if (kvs_gc(st, o->max_size, &g, err, sizeof err) < 0) return fail(NULL, err);
        printf("dropped %zu blocks (%zu bytes) and %zu temp files; kept %zu blocks (%zu bytes)\n", g.blocks_dropped,
               g.bytes_dropped, g.tmp_dropped, g.blocks_kept, g.bytes_kept);
        return EXIT_OK;
    }
    if (!strcmp(cmd, "verify")) {
        if (n > 1) return bad_usage("wrong number of arguments");
        long bad = kvs_verify(st, n ? argv[1] : NULL, report, NULL, err, sizeof err);
        if (bad < 0) return fail(NULL, err);
        printf("%ld problem%s\n", bad, bad == 1 ? "" : "s");
        return bad ? EXIT_DATA : EXIT_OK;
    }
    if (!strcmp(cmd, "export")) {
        ARGS(2);
        return kvs_export(st, argv[1], argv[2], err, sizeof err) < 0 ? fail(NULL, err) : EXIT_OK;
    }
    if (!strcmp(cmd, "import")) {
        ARGS(2);
        return kvs_import(st, argv[1], argv[2], err, sizeof err) < 0 ? fail(NULL, err) : EXIT_OK;
    }
#undef ARGS
    fprintf(stderr, "%s: unknown command '%s' (ls, info, tokens, fork, trim, rm, gc, verify, export, import)\n", prog,
            cmd);
    return EXIT_USAGE;
}

int main(int argc, char **argv) {
    enum { O_STORE = 256, O_KEY, O_MAX };
    static const struct option longs[] = {{"store", required_argument, 0, O_STORE},
                                          {"key", required_argument, 0, O_KEY},
                                          {"model", required_argument, 0, 'm'},
                                          {"max-size", required_argument, 0, O_MAX},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    opts o = {.max_size = -1};
    int c;
    while ((c = getopt_long(argc, argv, "m:h", longs, NULL)) != -1) {
        switch (c) {
        case O_STORE: o.store = optarg; break;
        case O_KEY: o.key = optarg; break;
        case 'm': o.model = optarg; break;
        case O_MAX:
            if (parse_size(optarg, &o.max_size) < 0) {
                fprintf(stderr, "%s: --max-size: '%s' is not a size in bytes (K, M, G suffixes)\n", prog, optarg);
                return EXIT_USAGE;
            }
            break;
        case 'h': fputs(usage, stdout); return EXIT_OK;
        default: return bad_usage(NULL);
        }
    }
    if (optind >= argc) return bad_usage(NULL);
    char err[512];
    uint8_t fp[32];
    int have_fp = 0;
    if (o.model) {
        model *m = model_open(o.model, err, sizeof err);
        if (!m) return fail(NULL, err);
        memcpy(fp, m->fingerprint, 32);
        have_fp = 1;
        model_close(m);
    }
    kvs_store *st = kvs_open(o.store, o.key, err, sizeof err);
    if (!st) return fail(NULL, err);
    int rc = run(st, &o, have_fp ? fp : NULL, argc - optind, argv + optind);
    kvs_close(st);
    if (fflush(stdout) || ferror(stdout)) {
        fprintf(stderr, "%s: stdout: %s\n", prog, strerror(errno));
        return EXIT_DATA;
    }
    return rc;
}

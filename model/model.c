/* model: look after model directories, as kvstore looks after the KV store.
 *
 *   dequant SRC OUT   any checkpoint model_open reads (MLX, ...) as a BF16 Hugging Face
 *                     directory (lib/mlx.h mlx_write_hf)
 *   report A B        the accuracy report: the same prompts through two configurations,
 *                     logits compared position by position
 *
 * The report runs both configurations in this process. A generates greedily; B is fed
 * A's tokens (teacher forcing), so every row compared is the same context on both sides:
 * the last prompt position, then each generated step. B's own greedy continuation is
 * shown beside A's (computed again from the prompt where B's argmax parted from A's). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "ids.h"
#include "mlx.h"
#include "quant.h"
#include "tok.h"
#include "utf8.h"
#include "util.h"

static const char *prog = "model";

static const char usage[] =
    "usage: model COMMAND [ARGS]\n"
    "Look after model directories.\n"
    "\n"
    "  dequant SRC OUT            write the checkpoint SRC (any format -m takes) as a Hugging\n"
    "                             Face directory of BF16 weights (e.g. an MLX 4-bit model)\n"
    "  report [OPTIONS] A B [PROMPT...]\n"
    "                             the accuracy report: each prompt (the arguments, else one per\n"
    "                             line of stdin) through configurations A and B; per prompt and\n"
    "                             overall, max and mean |diff|, RMSE, cosine and argmax match of\n"
    "                             the last prompt position's logits and of every generated step\n"
    "                             (B fed A's greedy tokens), and both greedy continuations\n"
    "\n"
    "A configuration is DIR[:SCHEME[:BACKEND]]: a model directory (empty: $QWEN_MODEL, else\n"
    "the built-in tiny model), a --quant scheme (default none) and a --backend (default cpu),\n"
    "e.g. ':none' vs ':q8', or ~/m/Qwen3-8B vs ~/m/Qwen3-8B-MLX-4bit.\n"
    "\n"
    "  -n N          tokens to generate per prompt (default 8)\n"
    "      --ids     prompts are token ids (text lines or int32 .npy, as from tok) on stdin,\n"
    "                and prompts and continuations are shown as ids\n"
    "  -t N          threads (default: one per core)\n"
    "  -h, --help    this help\n";

static int fail(const char *what, const char *why) {
    fprintf(stderr, "%s: %s: %s\n", prog, what, why);
    return EXIT_DATA;
}

static int bad_usage(const char *msg) {
    if (msg) fprintf(stderr, "%s: %s\n", prog, msg);
    fputs(usage, stderr);
    return EXIT_USAGE;
}

static int cmd_dequant(int argc, char **argv) {
    if (argc != 3) return bad_usage("dequant: want SRC OUT");
    char err[1024];
    model *m = model_open(argv[1], err, sizeof err);
    if (!m) return fail(argv[1], err);
    int rc = mlx_write_hf(m, argv[2], err, sizeof err);
    model_close(m);
    if (rc < 0) return fail("dequant", err);
    return EXIT_OK;
}

/* ---- report ---- */

typedef struct {
    char spec[4096];
    const char *dir, *scheme, *backend_name;
    model *m;
    const backend *b;
    void *ctx;
    kv_cache kv;
    float *x;
} config;

static int config_parse(config *c, const char *spec) {
    snprintf(c->spec, sizeof c->spec, "%s", spec);
    c->scheme = "none", c->backend_name = "cpu";
    char *s1 = strchr(c->spec, ':'), *s2 = s1 ? strchr(s1 + 1, ':') : NULL;
    if (s1) *s1 = 0, c->scheme = s1 + 1;
    if (s2) *s2 = 0, c->backend_name = s2 + 1;
    if (!*c->scheme) c->scheme = "none";
    if (!*c->backend_name) c->backend_name = "cpu";
    c->dir = model_dir(*c->spec ? c->spec : NULL);
    if (quant_scheme_find(c->scheme) < 0) {
        fprintf(stderr, "%s: %s: quantization '%s': not one of %s\n", prog, spec, c->scheme, quant_names());
        return -1;
    }
    if (!(c->b = backend_find(c->backend_name))) {
        fprintf(stderr, "%s: %s: backend '%s': not one of %s\n", prog, spec, c->backend_name, backend_names());
        return -1;
    }
    return 0;
}

static int config_open(config *c, int threads, size_t cap, char *err, size_t errlen) {
    if (!(c->m = model_open_q(c->dir, c->scheme, NULL, NULL, err, errlen))) return -1;
    backend_opts o = {.n_threads = threads, .max_batch = 256};
    if (!(c->ctx = c->b->open(c->m, &o, err, errlen))) return -1;
    if (kv_alloc(&c->kv, c->m->cfg.n_layers, (size_t)c->m->cfg.n_kv_heads * c->m->cfg.head_dim, cap) < 0 ||
        !(c->x = malloc(cap * (size_t)c->m->cfg.dim * sizeof *c->x)))
        return seterr(err, errlen, "out of memory");
    return 0;
}

static void config_close(config *c) {
    if (c->ctx) c->b->close(c->ctx);
    kv_free(&c->kv);
    free(c->x);
    model_close(c->m);
}

/* ids[0..n) at the next positions of c's sequence; the last position's logits */
static int feed(config *c, const int32_t *ids, size_t n, float *logits, char *err, size_t errlen) {
    if (kv_reserve(&c->kv, c->kv.n + n) < 0) return seterr(err, errlen, "out of memory");
    float *x = c->x;
    if (n > 1 && !(x = malloc(n * (size_t)c->m->cfg.dim * sizeof *x))) return seterr(err, errlen, "out of memory");
    int rc = model_embed(c->m, ids, n, x, err, errlen) < 0 ||
             forward(c->b, c->ctx, c->m, x, n, &c->kv, logits, 0, err, errlen) < 0 ? -1 : 0;
    if (x != c->x) free(x);
    return rc;
}

static size_t argmax(const float *v, size_t n) {
    size_t k = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] > v[k]) k = i;
    return k;
}

/* Sums from which every statistic of a set of rows follows. */
typedef struct {
    double maxd, sumd, sumd2, mincos, sumcos;
    size_t n, rows, same;
} stats;

static void stats_add(stats *s, const stats *r) {
    s->maxd = fmax(s->maxd, r->maxd);
    if (r->maxd != r->maxd) s->maxd = NAN;
    s->sumd += r->sumd, s->sumd2 += r->sumd2, s->sumcos += r->sumcos, s->mincos = fmin(s->mincos, r->mincos);
    s->n += r->n, s->rows += r->rows, s->same += r->same;
}

static stats row_stats(const float *a, const float *b, size_t n) {
    stats s = {.mincos = INFINITY, .rows = 1, .n = n};
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > s.maxd || d != d) s.maxd = d;
        s.sumd += d, s.sumd2 += d * d;
        ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    }
    double c = aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : (aa == bb ? 1 : 0);
    s.mincos = s.sumcos = c;
    s.same = argmax(a, n) == argmax(b, n);
    return s;
}

static void print_row(const char *label, const stats *s) {
    printf("  %-22s %11.4e %11.4e %11.4e %10.6f", label, s->maxd, s->sumd / (double)s->n, sqrt(s->sumd2 / (double)s->n),
           s->rows > 1 ? s->sumcos / (double)s->rows : s->mincos);
    if (s->rows > 1) printf(" (min %.6f) %zu/%zu\n", s->mincos, s->same, s->rows);
    else printf(" %s\n", s->same ? "same" : "DIFFERENT");
}

/* ids as text (tokenizer) or as ids, escaped onto one line */
static void print_text(const char *who, const tok *t, const int32_t *ids, size_t n) {
    fputs(who, stdout);
    if (!t) {
        for (size_t i = 0; i < n; i++) printf("%s%d", i ? " " : "", (int)ids[i]);
        putchar('\n');
        return;
    }
    buf b = {0};
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *p = tok_bytes(t, ids[i], &len);
        if (p) buf_append(&b, p, len);
    }
    putchar('"');
    for (size_t i = 0; i < b.len; i++) {
        unsigned char ch = (unsigned char)b.data[i];
        if (ch == '\n') fputs("\\n", stdout);
        else if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f) printf("\\x%02x", ch);
        else putchar(ch);
    }
    puts("\"");
    buf_free(&b);
}

/* One prompt: A greedy for ngen tokens, B fed them; rows compared, then B's own tokens. */
static int report_prompt(config *a, config *b, const int32_t *p, size_t np, size_t ngen, int32_t *ta, int32_t *tb,
                         float *la, float *lb, stats *total, char *err, size_t errlen) {
    size_t V = (size_t)a->m->cfg.vocab_size;
    stats ps = {.mincos = INFINITY};
    int32_t diverged = -1;
    a->kv.n = b->kv.n = 0;
    printf("  %-22s %11s %11s %11s %10s %s\n", "position", "max|diff|", "mean|diff|", "RMSE", "cosine", "argmax");
    for (size_t s = 0; s < ngen; s++) {
        const int32_t *in = s ? &ta[s - 1] : p;
        size_t n = s ? 1 : np;
        if (feed(a, in, n, la, err, errlen) < 0 || feed(b, in, n, lb, err, errlen) < 0) return -1;
        ta[s] = (int32_t)argmax(la, V);
        tb[s] = (int32_t)argmax(lb, V);
        if (tb[s] != ta[s] && diverged < 0) diverged = (int32_t)s;
        stats r = row_stats(la, lb, V);
        char label[32];
        if (s) snprintf(label, sizeof label, "step %zu", s);
        else snprintf(label, sizeof label, "last prompt position");
        print_row(label, &r);
        stats_add(&ps, &r);
    }
    print_row("prompt", &ps);
    stats_add(total, &ps);
    /* B's own continuation: A's tokens up to the first step B chose otherwise, then B's */
    if (diverged >= 0) {
        b->kv.n = 0;
        for (size_t s = (size_t)diverged + 1; s < ngen; s++) tb[s] = -1;
        if (feed(b, p, np, lb, err, errlen) < 0) return -1;
        for (size_t s = 1; s < ngen; s++) {
            if (s > (size_t)diverged) {
                if (feed(b, &tb[s - 1], 1, lb, err, errlen) < 0) return -1;
                tb[s] = (int32_t)argmax(lb, V);
            } else if (feed(b, &tb[s - 1], 1, lb, err, errlen) < 0) return -1;
        }
    }
    return 0;
}

static int cmd_report(int argc, char **argv) {
    static const struct option lo[] = {{"ids", no_argument, NULL, 'i'}, {"help", no_argument, NULL, 'h'}, {0}};
    long ngen = 8, threads = 0;
    int use_ids = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:t:h", lo, NULL)) != -1) {
        if (c == 'n' && parse_long(optarg, 1, 100000, &ngen) < 0) return bad_usage("-n: not a count in [1, 100000]");
        if (c == 't' && parse_long(optarg, 0, 1024, &threads) < 0) return bad_usage("-t: not a count in [0, 1024]");
        if (c == 'i') use_ids = 1;
        if (c == 'h') return fputs(usage, stdout), EXIT_OK;
        if (c == '?') return bad_usage(NULL);
    }
    if (argc - optind < 2) return bad_usage("report: want two configurations A and B");
    if (use_ids && argc - optind > 2) return bad_usage("report: --ids reads the prompts from stdin, not the arguments");
    config a = {0}, b = {0};
    if (config_parse(&a, argv[optind]) < 0 || config_parse(&b, argv[optind + 1]) < 0) return EXIT_USAGE;
    char err[1024];
    int rc = EXIT_DATA;
    tok *t = NULL;
    ids_reader ir = {0};
    char *line = NULL;
    size_t lcap = 0, np = 0, pcap = 0, nprompts = 0;
    int32_t *p = NULL, *ta = malloc((size_t)ngen * sizeof *ta), *tb = malloc((size_t)ngen * sizeof *tb);
    float *la = NULL, *lb = NULL;
    stats total = {.mincos = INFINITY};
    if (config_open(&a, (int)threads, 64, err, sizeof err) < 0) {
        fail(argv[optind], err);
        goto done;
    }
    if (config_open(&b, (int)threads, 64, err, sizeof err) < 0) {
        fail(argv[optind + 1], err);
        goto done;
    }
    size_t V = (size_t)a.m->cfg.vocab_size;
    if ((size_t)b.m->cfg.vocab_size != V) {
        fprintf(stderr, "%s: %s and %s: vocabularies differ (%zu, %d)\n", prog, argv[optind], argv[optind + 1], V,
                b.m->cfg.vocab_size);
        goto done;
    }
    if (!use_ids && !(t = tok_load(a.dir, err, sizeof err))) {
        fail(a.dir, err);
        goto done;
    }
    if (!(la = malloc(V * sizeof *la)) || !(lb = malloc(V * sizeof *lb)) || !ta || !tb) {
        fail("report", "out of memory");
        goto done;
    }
    printf("A: %s (scheme %s, backend %s)\nB: %s (scheme %s, backend %s)\n", a.dir, a.scheme, a.backend_name, b.dir,
           b.scheme, b.backend_name);
    printf("logits of A and B on the same tokens (B fed A's greedy tokens), %ld generated per prompt\n", ngen);
    int from_args = !use_ids && argc - optind > 2, argi = optind + 2;
    if (use_ids) ids_open(&ir, stdin);
    for (;;) {
        const char *what = "stdin";
        if (use_ids) {
            int got = ids_next(&ir, &p, &np, &pcap, V, err, sizeof err);
            if (got < 0) {
                fail("stdin", err);
                goto done;
            }
            if (!got) break;
        } else {
            const char *text;
            size_t len;
            if (from_args) {
                if (argi >= argc) break;
                text = argv[argi++], len = strlen(text), what = text;
            } else {
                ssize_t r = getline(&line, &lcap, stdin);
                if (r < 0) break;
                if (r > 0 && line[r - 1] == '\n') line[--r] = 0;
                text = line, len = (size_t)r;
            }
            size_t bad = utf8_check((const uint8_t *)text, len);
            np = 0;
            if (bad != len) {
                snprintf(err, sizeof err, "invalid UTF-8 at byte %zu", bad);
                fail(what, err);
                goto done;
            }
            if (tok_encode(t, text, len, &p, &np, &pcap, err, sizeof err) < 0) {
                fail(what, err);
                goto done;
            }
        }
        if (np == 0) continue;
        nprompts++;
        printf("\nprompt %zu (%zu tokens)", nprompts, np);
        print_text(": ", use_ids ? NULL : t, p, np);
        if (report_prompt(&a, &b, p, np, (size_t)ngen, ta, tb, la, lb, &total, err, sizeof err) < 0) {
            fail("forward", err);
            goto done;
        }
        print_text("  A: ", use_ids ? NULL : t, ta, (size_t)ngen);
        print_text("  B: ", use_ids ? NULL : t, tb, (size_t)ngen);
    }
    if (!nprompts) {
        fail("report", "no prompts");
        goto done;
    }
    printf("\noverall: %zu prompts, %zu positions: max|diff| %.4e mean|diff| %.4e RMSE %.4e cosine %.6f (min %.6f) "
           "argmax %zu/%zu (%.1f%%)\n",
           nprompts, total.rows, total.maxd, total.sumd / (double)total.n, sqrt(total.sumd2 / (double)total.n),
           total.sumcos / (double)total.rows, total.mincos, total.same, total.rows,
           100.0 * (double)total.same / (double)total.rows);
    rc = EXIT_OK;
done:
    if (use_ids) ids_close(&ir);
    free(line), free(p), free(ta), free(tb), free(la), free(lb);
    tok_free(t);
    config_close(&a);
    config_close(&b);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) return bad_usage(NULL);
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(usage, stdout);
        printf("\nCheckpoint formats read (detected from the directory): %s\n", model_formats());
        return EXIT_OK;
    }
    int rc;
    if (!strcmp(argv[1], "dequant")) rc = cmd_dequant(argc - 1, argv + 1);
    else if (!strcmp(argv[1], "report")) rc = cmd_report(argc - 1, argv + 1);
    else {
        fprintf(stderr, "%s: %s: no such command\n", prog, argv[1]);
        return bad_usage(NULL);
    }
    if (fflush(stdout) || ferror(stdout)) {
        fprintf(stderr, "%s: stdout: %s\n", prog, strerror(errno));
        return EXIT_DATA;
    }
    return rc;
}

/* quant_test: the quantization schemes (lib/quant.h) and their kernels.
 *
 *   quant_test kernels
 *       every ISA variant's quantized matmuls against the generic ones (random and
 *       adversarial inputs: odd row counts, all-zero groups, huge and tiny values, NaN
 *       and Inf in x), the activation quantizer against its definition, the row
 *       quantizers' round-trip bounds. "N checks, M failures" last.
 *   quant_test logits MODELDIR SCHEME MINCOS
 *       the logits of every position of a fixed 24-token prompt with SCHEME against the
 *       checkpoint as it is (scheme none): cosine of every row >= MINCOS, and the quantized
 *       model built once, then reopened from the cache file. Prints the worst cosine.
 *   quant_test fixture FIXDIR MODELDIR
 *       8da4w against torchao (t/gen_8da4w_fixture.py): the int4 values and scales of the
 *       tensors it recorded, exactly; then the logits of its prompt against torchao's
 *       fake-quant reference (max|diff| <= tol * max|logit|, tol in the fixture).
 *   quant_test bench MODELDIR SCHEME [THREADS [PROMPT [GEN]]]
 *       prefill PROMPT (512) positions, then decode GEN (64) one by one; prints one line:
 *       "scheme S threads T pp P tok/s D tg G tok/s D" (the benchmark scripts parse it).
 * Exit 1 on any failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "kern.h"
#include "npy.h"
#include "quant.h"
#include "util.h"

static const char *prog = "quant_test";
static int fails, checks;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            fails++;                                                                               \
        }                                                                                          \
    } while (0)

static void die(const char *what, const char *why) {
    fprintf(stderr, "%s: %s: %s\n", prog, what, why);
    exit(EXIT_DATA);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die("malloc", "out of memory");
    return p;
}

/* xorshift: the same numbers on every machine */
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}
static float unif(void) { return (float)(next() >> 40) / (float)(1 << 24) * 2 - 1; } /* [-1, 1) */

/* ---- a model and the CPU backend ---- */

typedef struct {
    model *m;
    void *ctx;
    kv_cache kv;
    size_t vocab, dim;
} runner;

static void progress(void *ctx, size_t done, size_t total) {
    (void)ctx;
    if (done == total) fprintf(stderr, "quantized %zu weights\n", total);
}

static void runner_open(runner *r, const char *dir, const char *scheme, int threads, size_t max_batch) {
    char err[512];
    if (!(r->m = model_open_q(dir, scheme, progress, NULL, err, sizeof err))) die(dir, err);
    backend_opts o = {.n_threads = threads, .max_batch = max_batch};
    if (!(r->ctx = backend_cpu.open(r->m, &o, err, sizeof err))) die(dir, err);
    r->vocab = (size_t)r->m->cfg.vocab_size;
    r->dim = (size_t)r->m->cfg.dim;
    if (kv_alloc(&r->kv, r->m->cfg.n_layers, (size_t)r->m->cfg.n_kv_heads * (size_t)r->m->cfg.head_dim, 16) < 0)
        die(dir, "kv cache: out of memory");
}

static void runner_close(runner *r) {
    kv_free(&r->kv);
    backend_cpu.close(r->ctx);
    model_close(r->m);
}

/* ids[0..n) at the next positions; logits of every row (all) or the last; x is scratch (n, dim). */
static void feed(runner *r, const int32_t *ids, size_t n, float *x, float *logits, int all) {
    char err[512];
    if (model_embed(r->m, ids, n, x, err, sizeof err) < 0) die("model_embed", err);
    if (forward(&backend_cpu, r->ctx, r->m, x, n, &r->kv, logits, all, err, sizeof err) < 0) die("forward", err);
}

static double cosine(const float *a, const float *b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : (aa == bb);
}

enum { NPROMPT = 24 };

static void prompt_ids(int32_t *ids, size_t n, int vocab) {
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)((i * 7919 + 13) % (size_t)(vocab < 151000 ? vocab : 151000));
}

static int cmd_logits(const char *dir, const char *scheme, double mincos) {
    runner ref, q;
    int32_t ids[NPROMPT];
    runner_open(&ref, dir, "none", 0, NPROMPT);
    prompt_ids(ids, NPROMPT, ref.m->cfg.vocab_size);
    float *x = xmalloc(NPROMPT * ref.dim * sizeof *x), *a = xmalloc(NPROMPT * ref.vocab * sizeof *a),
          *b = xmalloc(NPROMPT * ref.vocab * sizeof *b), *b2 = xmalloc(NPROMPT * ref.vocab * sizeof *b2);
    feed(&ref, ids, NPROMPT, x, a, 1);
    runner_close(&ref);
    double worst = 1;
    size_t agree = 0;
    for (int round = 0; round < 2; round++) { /* 0: built (or found), 1: reopened from the cache */
        runner_open(&q, dir, scheme, 0, NPROMPT);
        feed(&q, ids, NPROMPT, x, round ? b2 : b, 1);
        runner_close(&q);
    }
    CHECK(!memcmp(b, b2, NPROMPT * ref.vocab * sizeof *b), "%s: the reopened cache gives other logits", scheme);
    for (size_t i = 0; i < NPROMPT; i++) {
        const float *ra = a + i * ref.vocab, *rb = b + i * ref.vocab;
        double c = cosine(ra, rb, ref.vocab);
        worst = fmin(worst, c);
        size_t ma = 0, mb = 0;
        for (size_t j = 1; j < ref.vocab; j++) {
            if (ra[j] > ra[ma]) ma = j;
            if (rb[j] > rb[mb]) mb = j;
        }
        agree += ma == mb;
        CHECK(c >= mincos, "%s: row %zu: cosine %.6f < %g", scheme, i, c, mincos);
    }
    printf("%s %s: worst cosine %.6f, argmax agrees on %zu of %d rows\n", dir, scheme, worst, agree, NPROMPT);
    free(x), free(a), free(b), free(b2);
    printf("%d checks, %d failures\n", checks, fails);
    return fails ? EXIT_DATA : 0;
}

static int cmd_bench(const char *dir, const char *scheme, int threads, size_t np, size_t ng) {
    runner r;
    runner_open(&r, dir, scheme, threads, np);
    int32_t *ids = xmalloc((np + ng) * sizeof *ids);
    prompt_ids(ids, np + ng, r.m->cfg.vocab_size);
    float *x = xmalloc(np * r.dim * sizeof *x), *lg = xmalloc(r.vocab * sizeof *lg);
    if (kv_reserve(&r.kv, np + ng + 1) < 0) die("kv", "out of memory");
    feed(&r, ids, 8, x, lg, 0); /* warm up: page in the weights */
    r.kv.n = 0;
    double t0 = now_sec();
    feed(&r, ids, np, x, lg, 0);
    double t1 = now_sec();
    for (size_t i = 0; i < ng; i++) feed(&r, ids + np + i, 1, x, lg, 0);
    double t2 = now_sec();
    printf("scheme %s threads %d pp %zu %.2f tok/s tg %zu %.2f tok/s\n", scheme, threads, np, (double)np / (t1 - t0),
           ng, (double)ng / (t2 - t1));
    free(ids), free(x), free(lg);
    runner_close(&r);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 5 && !strcmp(argv[1], "logits")) return cmd_logits(argv[2], argv[3], atof(argv[4]));
    if (argc >= 4 && !strcmp(argv[1], "bench"))
        return cmd_bench(argv[2], argv[3], argc > 4 ? atoi(argv[4]) : 2, argc > 5 ? (size_t)atol(argv[5]) : 512,
                         argc > 6 ? (size_t)atol(argv[6]) : 64);
    fprintf(stderr, "usage: %s kernels | logits MODELDIR SCHEME MINCOS | fixture FIXDIR MODELDIR | "
                    "bench MODELDIR SCHEME [THREADS [PROMPT [GEN]]]\n", prog);
    return EXIT_USAGE;
}

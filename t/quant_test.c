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
 *   quant_test fixture FIXDIR MODELDIR [TOL [SCHEME]]
 *       8da4w (or SCHEME 8da8w) against torchao (t/gen_8da4w_fixture.py, FIXDIR/SCHEME.npy):
 *       the int4 (int8) values and scales of the tensors it recorded, exactly; then the
 *       logits of its prompt against torchao's fake-quant reference: max|diff| <= TOL
 *       (1e-4) * max|logit| on every row.
 *   quant_test bench MODELDIR SCHEME [THREADS [PROMPT [GEN]]]
 *       prefill PROMPT (512) positions, then decode GEN (64) one by one; prints one line:
 *       "scheme S threads T pp P X tok/s tg G Y tok/s cpu ms/token pp A tg B" (the benchmark
 *       scripts parse it; cpu ms are this process's CPU time, all threads, per token).
 * Exit 1 on any failure. */
#include <math.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "kern.h"
#include "npy.h"
#include "quant.h"
#include "util.h"

static const char *prog = "quant_test";
#include "check.h"

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

/* CPU seconds of this process (all threads): on a shared machine, what the work costs
 * whatever else runs. */
static double cpu_sec(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
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
    double t0 = now_sec(), c0 = cpu_sec();
    feed(&r, ids, np, x, lg, 0);
    double t1 = now_sec(), c1 = cpu_sec();
    for (size_t i = 0; i < ng; i++) feed(&r, ids + np + i, 1, x, lg, 0);
    double t2 = now_sec(), c2 = cpu_sec();
    printf("scheme %s threads %d pp %zu %.2f tok/s tg %zu %.2f tok/s cpu ms/token pp %.1f tg %.1f\n", scheme, threads,
           np, (double)np / (t1 - t0), ng, (double)ng / (t2 - t1), 1e3 * (c1 - c0) / (double)np,
           1e3 * (c2 - c1) / (double)ng);
    free(ids), free(x), free(lg);
    runner_close(&r);
    return 0;
}

/* ---- torchao fixture ---- */

static void next_rec(FILE *f, const char *name, npy *a, npy_dtype t) {
    char err[512];
    int got = npy_read(f, a, 0, err, sizeof err);
    if (got <= 0) die(name, got < 0 ? err : "fewer records than gen_8da4w_fixture.py writes");
    if (a->dtype != t) die(name, "a record's dtype is not what gen_8da4w_fixture.py writes");
}

static int cmd_fixture(const char *fixdir, const char *modeldir, double tol, const char *scheme) {
    char path[4096];
    int d8 = !strcmp(scheme, "8da8w");
    if (!d8 && strcmp(scheme, "8da4w")) die(scheme, "not 8da4w or 8da8w");
    snprintf(path, sizeof path, "%s/%s.npy", fixdir, scheme);
    FILE *f = fopen(path, "rb");
    if (!f) die(path, "cannot open");
    npy ids = {0}, sub = {0}, want = {0}, scale = {0}, q = {0}, sc = {0};
    next_rec(f, path, &ids, NPY_I32);
    next_rec(f, path, &sub, NPY_I32);
    next_rec(f, path, &want, NPY_F32);
    next_rec(f, path, &scale, NPY_F32);
    runner r;
    runner_open(&r, modeldir, scheme, 0, ids.count);
    const layer_weights *L = r.m->layers;
    const struct { const char *name; weight w; } t[] = {
        {"layers.0.q_proj", L[0].wq}, {"layers.0.k_proj", L[0].wk}, {"layers.0.down_proj", L[0].w_down},
        {"layers.1.gate_proj", L[1].w_gate}, {"lm_head", r.m->lm_head}, {"embed_tokens", r.m->embed},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        next_rec(f, path, &q, NPY_I32);
        next_rec(f, path, &sc, NPY_F32);
        const qweight *qw = t[i].w.data;
        int e8 = weight_q(t[i].w) == WQ_E8 || weight_q(t[i].w) == WQ_8DA8W; /* int8 per row */
        CHECK(weight_q(t[i].w) == (i == 5 ? WQ_E8 : d8 ? WQ_8DA8W : WQ_8DA4W), "%s: not quantized as %s wants",
              t[i].name, scheme);
        size_t rows = q.shape[0], in = q.shape[1], ng = sc.shape[1], qbad = 0, sbad = 0;
        CHECK(in == qw->in && ng == (e8 ? 1 : in / 32), "%s: shape", t[i].name);
        for (size_t o = 0; o < rows; o++)
            for (size_t k = 0; k < in; k++) {
                int ours = e8 ? ((const int8_t *)qw->data)[o * in + k] : quant_nib((const uint8_t *)qw->data + o * in / 2, k);
                qbad += ours != ((const int32_t *)q.data)[o * in + k];
            }
        for (size_t j = 0; j < rows * ng; j++) {
            float a = ((const float *)qw->scales)[j], b = ((const float *)sc.data)[j];
            sbad += memcmp(&a, &b, 4) != 0;
        }
        CHECK(!qbad && !sbad, "%s: %zu of %zu values and %zu of %zu scales differ from torchao's", t[i].name, qbad,
              rows * in, sbad, rows * ng);
        printf("%s: %zu values, %zu scales equal to torchao's: %s\n", t[i].name, rows * in, rows * ng,
               !qbad && !sbad ? "yes" : "NO");
    }
    fclose(f);
    size_t P = ids.count, K = sub.count;
    float *x = xmalloc(P * r.dim * sizeof *x), *lg = xmalloc(P * r.vocab * sizeof *lg);
    feed(&r, ids.data, P, x, lg, 1);
    double worst = 0, worst_cos = 1;
    for (size_t i = 0; i < P; i++) {
        double md = 0, ab = 0, aa = 0, bb = 0, scale_i = ((const float *)scale.data)[i];
        for (size_t j = 0; j < K; j++) {
            double a = lg[i * r.vocab + (size_t)((const int32_t *)sub.data)[j]], b = ((const float *)want.data)[i * K + j];
            md = fmax(md, fabs(a - b));
            if (a != a) md = INFINITY;
            ab += a * b, aa += a * a, bb += b * b;
        }
        worst = fmax(worst, md / scale_i);
        worst_cos = fmin(worst_cos, ab / sqrt(aa * bb));
        CHECK(md <= tol * scale_i, "logits row %zu: max|diff| %.3g > %g * max|logit| %.3g", i, md, tol, scale_i);
    }
    printf("logits of %zu positions against torchao's fake-quant reference: max|diff| / max|logit| %.3g, "
           "worst cosine %.9f\n", P, worst, worst_cos);
    free(x), free(lg);
    runner_close(&r);
    npy_free(&ids), npy_free(&sub), npy_free(&want), npy_free(&scale), npy_free(&q), npy_free(&sc);
    printf("%d checks, %d failures\n", checks, fails);
    return fails ? EXIT_DATA : 0;
}

/* ---- kernels ---- */

/* A random weight of type t (group g) quantized from f32 rows; zero_groups blanks some
 * groups; big scales the values. qw's arrays are malloc'd (free with free_qw). */
static void make_qw(qweight *qw, wq_type t, size_t g, size_t out, size_t in, int zero_groups, float big) {
    float *row = xmalloc(in * sizeof *row);
    size_t ng = in / (t == WQ_Q4 ? g : 32);
    int perrow = t == WQ_Q8 || t == WQ_8DA8W; /* int8, one scale per row */
    *qw = (qweight){.q = t, .group = perrow ? 0 : t == WQ_Q4 ? g : 32, .in = in};
    void *data = xmalloc(perrow ? out * in : out * in / 2);
    void *sc = xmalloc(perrow ? out * 4 : t == WQ_Q4 ? out * ng * 2 : out * ng * 4);
    for (size_t o = 0; o < out; o++) {
        for (size_t k = 0; k < in; k++) {
            row[k] = unif() * big;
            if (zero_groups && (k / 32 + o) % 3 == 0) row[k] = 0;
        }
        if (t == WQ_Q8) quant_row_q8((int8_t *)data + o * in, (float *)sc + o, row, in);
        else if (t == WQ_8DA8W) quant_row_e8((int8_t *)data + o * in, (float *)sc + o, row, in);
        else if (t == WQ_Q4) quant_row_q4((uint8_t *)data + o * in / 2, (uint16_t *)sc + o * ng, row, in, g);
        else quant_row_8da4w((uint8_t *)data + o * in / 2, (float *)sc + o * ng, row, in);
    }
    qw->data = data, qw->scales = sc;
    free(row);
}

static void free_qw(qweight *qw) {
    free((void *)qw->data);
    free((void *)qw->scales);
}

/* a and b the same float, bit for bit */
static int same_bits(float a, float b) { return !memcmp(&a, &b, sizeof a); }

/* |error| allowed for y[i][o]: 2e-6 * the sum of |terms| (f32 rounding, any order). */
static double bound(const kern_xq *xq, const qweight *qw, size_t i, size_t o, size_t in) {
    weight w = {WQ_DTYPE(qw->q), qw};
    double s = 0;
    for (size_t k = 0; k < in; k++) {
        double xv = qw->q == WQ_8DA4W || qw->q == WQ_8DA8W ? ((double)xq->q[i * in + k] - xq->zp[i]) * xq->scale[i]
                                                            : (double)xq->h[i * in + k] * xq->hs[i * (in / 32) + k / 32];
        s += fabs(xv * weight_get(w, o * in + k));
    }
    return 2e-6 * s + 1e-37;
}

/* Nonzero (and the first bad element on stderr) unless got's columns [o0, o1) are want's
 * within bound(), and the others untouched (12345). Non-finite references are matched in
 * kind: NaN for NaN, the same infinity. */
static int mismatch(const float *got, const float *want, const kern_xq *xq, const qweight *qw,
                    size_t n, size_t in, size_t out, size_t o0, size_t o1, const char *name, const char *what) {
    for (size_t i = 0; i < n; i++)
        for (size_t o = 0; o < out; o++) {
            float a = got[i * out + o], b = want[i * out + o];
            int bad;
            if (o < o0 || o >= o1) bad = a != 12345;
            else if (!isfinite(b)) bad = isnan(a) != isnan(b) || isinf(a) != isinf(b) || (isinf(a) && a != b);
            else bad = !(fabs((double)a - b) <= bound(xq, qw, i, o, in));
            if (bad) {
                fprintf(stderr, "%s %d g%zu %s n=%zu in=%zu out=%zu: y[%zu][%zu] = %.9g, reference %.9g\n", name, qw->q,
                        qw->group, what, n, in, out, i, o, a, b);
                return 1;
            }
        }
    return 0;
}

static void test_kernel(const kern_ops *v, wq_type t, size_t g, size_t n, size_t in, size_t out, int kind) {
    static const char *kinds[] = {"random", "zero groups", "huge", "tiny", "nan/inf"};
    qweight qw;
    float big = kind == 2 ? 1e15f : kind == 3 ? 1e-15f : 1;
    make_qw(&qw, t, g, out, in, kind == 1, big);
    if (kind == 2 && (t == WQ_Q8 || t == WQ_8DA8W)) /* torchao's int8 reaches -128: the sums' extremes */
        for (size_t i = 0; i < out * in; i += 3) ((int8_t *)qw.data)[i] = -128;
    float *x = xmalloc(n * in * sizeof *x), *want = xmalloc(n * out * sizeof *want),
          *got = xmalloc(n * out * sizeof *got);
    for (size_t i = 0; i < n * in; i++) x[i] = unif() * big;
    if (kind == 1)
        for (size_t k = 0; k < in; k++) x[k] = 0; /* an all-zero row */
    if (kind == 4 && n > 1) {
        x[in + in / 3] = NAN;                 /* row 1: a NaN */
        if (n > 2) x[2 * in + 1] = INFINITY;  /* row 2: an Inf */
    }
    int8_t *q = xmalloc(n * in);
    float *sc = xmalloc(n * sizeof *sc);
    int32_t *zp = xmalloc(n * sizeof *zp);
    int16_t *h = xmalloc(n * in * sizeof *h);
    float *hs = xmalloc(n * (in / 32 + 1) * sizeof *hs);
    uint8_t *u = xmalloc(n * in);
    int32_t *c8 = xmalloc(n * (in / 32 + 1) * sizeof *c8);
    kern_xq xq = {q, u, sc, zp, h, hs, c8};
    for (size_t i = 0; i < n; i++) {
        kern_quant_act(q + i * in, sc + i, zp + i, x + i * in, in);
        if (t == WQ_8DA4W || t == WQ_8DA8W)
            for (size_t k = 0; k < in; k++) h[i * in + k] = (int16_t)(q[i * in + k] - zp[i]);
        else if (in % 32 == 0) {
            kern_quant_blocks(h + i * in, t == WQ_Q4 ? u + i * in : NULL, hs + i * (in / 32), x + i * in, in,
                              t == WQ_Q4 ? 127 : 32767);
            if (t == WQ_Q4) kern_blocks_i8(q + i * in, c8 + i * (in / 32), h + i * in, in);
        }
        if (t == WQ_8DA4W && in % 32 == 0) kern_block_sums(c8 + i * (in / 32), q + i * in, in);
    }
    if (t != WQ_Q4)
        for (size_t i = 0; i < n * in; i++) u[i] = (uint8_t)(q[i] + 128);
    kern_qref(t)(want, x, &xq, &qw, n, in, out, 0, out);
    for (size_t i = 0; i < n * out; i++) got[i] = 12345;
    size_t o0 = out > 2 ? 1 : 0, o1 = out > 2 ? out - 1 : out;
    v->qmatmul[t](got, x, &xq, &qw, n, in, out, o0, o1);
    CHECK(!mismatch(got, want, &xq, &qw, n, in, out, o0, o1, v->name, kinds[kind]), "kernel mismatch");
    /* 8da8w's sums are exact integers: the same bits as the reference (NaN for NaN) */
    if (t == WQ_8DA8W)
        for (size_t i = 0; i < n; i++)
            for (size_t o = o0; o < o1; o++)
                CHECK(same_bits(got[i * out + o], want[i * out + o]), "%s 8da8w %s n=%zu in=%zu: y[%zu][%zu] %.9g, reference %.9g",
                      v->name, kinds[kind], n, in, i, o, got[i * out + o], want[i * out + o]);
    kern_packed *pk = kern_pack(v, &qw, out);
    if (pk) { /* the panel GEMM of the same weight, columns [o0 & ~7, o1) as the pool splits them */
        size_t p0 = o0 / 8 * 8;
        for (size_t i = 0; i < n * out; i++) got[i] = 12345;
        v->panel[t](got, &xq, kern_panels(pk), n, in, out, p0, o1);
        CHECK(!mismatch(got, want, &xq, &qw, n, in, out, p0, o1, v->name, "panels"), "panel kernel mismatch");
        /* every type's panels add as its reference does: its bits */
        for (size_t i = 0; i < n; i++)
            for (size_t o = p0; o < o1; o++)
                CHECK(same_bits(got[i * out + o], want[i * out + o]), "%s %s panels %s n=%zu in=%zu: y[%zu][%zu] %.9g, reference %.9g",
                      v->name, t == WQ_Q4 ? "q4" : t == WQ_Q8 ? "q8" : t == WQ_8DA8W ? "8da8w" : "8da4w", kinds[kind], n, in, i, o,
                      got[i * out + o], want[i * out + o]);
        kern_packed_free(pk);
    }
    if (kind == 4 && n > 2) /* defined: a non-finite x gives NaN outputs */
        CHECK(isnan(want[out + o0]) && isnan(want[2 * out + o0]), "%s: NaN/Inf rows not NaN",
              t == WQ_Q4 ? "q4" : t == WQ_Q8 ? "q8" : t == WQ_8DA8W ? "8da8w" : "8da4w");
    free_qw(&qw);
    free(x), free(want), free(got), free(q), free(u), free(sc), free(zp), free(h), free(hs), free(c8);
}

static void test_roundtrip(void) {
    enum { IN = 256 };
    float w[IN];
    int8_t q8[IN];
    uint8_t nib[IN / 2];
    uint16_t h[IN / 32];
    float s, s4[IN / 32];
    for (int trial = 0; trial < 200; trial++) {
        float big = trial % 4 == 0 ? 1e-30f : trial % 4 == 1 ? 1e30f : 1;
        for (size_t k = 0; k < IN; k++) w[k] = unif() * big * (trial % 5 == 0 && k < 64 ? 0 : 1);
        double e8 = 0, e4 = 0, e84 = 0, ee = 0;
        quant_row_q8(q8, &s, w, IN);
        for (size_t k = 0; k < IN; k++) e8 = fmax(e8, fabs(w[k] - q8[k] * (double)s) - s * 0.500002);
        quant_row_q4(nib, h, w, IN, 32);
        for (size_t k = 0; k < IN; k++) {
            double d = fabs((double)kern_f16(h[k / 32]));
            /* Q4_0's rule maps the largest |w| to -8, so a value as large of the other sign
             * clips at +7: a whole step; f16 rounding of d (subnormal: 2^-25) adds a little */
            e4 = fmax(e4, fabs(w[k] - quant_nib(nib, k) * (double)kern_f16(h[k / 32])) - d * (1 + 8 * 0x1p-11) - 8 * 0x1p-25);
        }
        quant_row_8da4w(nib, s4, w, IN);
        for (size_t k = 0; k < IN; k++) e84 = fmax(e84, fabs(w[k] - quant_nib(nib, k) * (double)s4[k / 32]) - s4[k / 32] * 0.500002);
        quant_row_e8(q8, &s, w, IN); /* |w * (1/s)| reaches 127.5: its rounding is 2^-17 of s */
        for (size_t k = 0; k < IN; k++) ee = fmax(ee, fabs(w[k] - q8[k] * (double)s) - s * (0.5 + 0x1p-16));
        CHECK(e8 <= 0 && e4 <= 0 && e84 <= 0 && ee <= 0, "round trip, trial %d: excess %g %g %g %g", trial, e8, e4, e84, ee);
    }
    w[3] = NAN;
    CHECK(quant_row_q8(q8, &s, w, IN) < 0 && quant_row_q4(nib, h, w, IN, 32) < 0 && quant_row_8da4w(nib, s4, w, IN) < 0,
          "a NaN weight is refused");
    w[3] = INFINITY;
    CHECK(quant_row_e8(q8, &s, w, IN) < 0, "an infinite weight is refused");
}

static void test_act(void) {
    enum { IN = 96 };
    float x[IN];
    int8_t q[IN];
    float s;
    int32_t zp;
    for (int trial = 0; trial < 500; trial++) {
        float big = trial % 3 == 0 ? 1e-20f : trial % 3 == 1 ? 1e20f : 3;
        for (size_t k = 0; k < IN; k++) x[k] = (unif() + (trial % 7 == 0 ? 1.0f : trial % 7 == 1 ? -1.0f : 0)) * big;
        if (trial % 11 == 0) memset(x, 0, sizeof x);
        kern_quant_act(q, &s, &zp, x, IN);
        double worst = 0;
        for (size_t k = 0; k < IN; k++) worst = fmax(worst, fabs(x[k] - (q[k] - zp) * (double)s) - s * 0.500002);
        CHECK(zp >= -128 && zp <= 127 && s > 0 && worst <= 0, "act quant, trial %d: zp %d s %g excess %g", trial,
              (int)zp, s, worst);
    }
    x[5] = INFINITY;
    kern_quant_act(q, &s, &zp, x, IN);
    CHECK(isnan(s), "act quant: an Inf gives scale NaN");
}

/* kern_quant_blocks (int16 and int8) within half a step of every x, and every variant's
 * quantizers (both kinds) bit for bit the generic ones, on the adversarial rows too. */
static void test_blocks(void) {
    enum { IN = 160, NB = IN / 32 };
    const kern_ops *v[KERN_VARIANTS];
    size_t nv = kern_variants(v, KERN_VARIANTS);
    float x[IN], hs[NB], hs2[NB], s, s2;
    int16_t h[IN], h2[IN];
    int8_t q[IN], q2[IN];
    uint8_t u[IN], u2[IN];
    int32_t zp, zp2;
    for (int trial = 0; trial < 1200; trial++) {
        int qmax = trial % 2 ? 127 : 32767;
        const char *kind = qmax == 127 ? "act8" : "act16";
        float big = trial / 2 % 4 == 0 ? 1e-20f : trial / 2 % 4 == 1 ? 1e20f : trial / 2 % 4 == 2 ? 1e-39f : 3;
        for (size_t k = 0; k < IN; k++) x[k] = (unif() + (trial % 7 == 0 ? 1.0f : trial % 7 == 1 ? -1.0f : 0)) * big;
        if (trial % 11 == 0) memset(x, 0, 64 * sizeof *x);  /* zero blocks */
        if (trial % 13 == 0) x[trial % IN] = NAN;
        if (trial % 17 == 0) x[(trial * 7) % IN] = -INFINITY;
        if (trial % 5 == 0) x[trial % IN] = 1e4f * (trial / 2 % 2 ? -big : big); /* an outlier */
        memset(u, 0x55, sizeof u);
        kern_quant_blocks(h, qmax == 127 ? u : NULL, hs, x, IN, qmax);
        double worst = 0;
        for (size_t k = 0; k < IN; k++) {
            CHECK(h[k] >= -qmax && h[k] <= qmax, "%s: h %d out of range", kind, h[k]);
            if (qmax == 127) CHECK(u[k] == (uint8_t)(h[k] + 128), "%s: u is not h + 128", kind);
            if (isnan(hs[k / 32])) {
                CHECK(h[k] == 0, "%s: a non-finite block's h is 0", kind);
                continue;
            }
            /* hs subnormal (x near 2^-126 / qmax) is rounded to 2^-149: h clamps short by that much */
            worst = fmax(worst, fabs(x[k] - h[k] * (double)hs[k / 32]) - hs[k / 32] * 0.504 - qmax * 0x1p-150);
        }
        for (size_t b = 0; b < NB; b++) {
            int bad = 0;
            for (size_t k = b * 32; k < b * 32 + 32; k++) bad |= !isfinite(x[k]);
            CHECK(bad == !!isnan(hs[b]), "%s, trial %d: block %zu NaN iff it holds a NaN or an Inf", kind, trial, b);
        }
        CHECK(worst <= 0, "%s, trial %d: excess %g", kind, trial, worst);
        kern_quant_act(q, &s, &zp, x, IN);
        for (size_t vi = 0; vi < nv; vi++) {
            if (v[vi]->quant_blocks) {
                memset(h2, 0x55, sizeof h2);
                memset(u2, 0x55, sizeof u2);
                v[vi]->quant_blocks(h2, qmax == 127 ? u2 : NULL, hs2, x, IN, qmax);
                CHECK(!memcmp(h, h2, sizeof h) && !memcmp(hs, hs2, sizeof hs) && (qmax != 127 || !memcmp(u, u2, sizeof u)),
                      "%s %s, trial %d: not the generic bits", v[vi]->name, kind, trial);
            }
            if (v[vi]->quant_act) {
                memset(q2, 0x55, sizeof q2);
                v[vi]->quant_act(q2, u2, h2, &s2, &zp2, x, IN);
                int ok = !memcmp(q, q2, sizeof q) && !memcmp(&s, &s2, sizeof s) && zp == zp2;
                for (size_t k = 0; k < IN; k++) ok &= h2[k] == q[k] - zp && u2[k] == (uint8_t)(q[k] + 128);
                CHECK(ok, "%s act, trial %d: not the generic bits", v[vi]->name, trial);
            }
        }
    }
}

static void test_f16(void) {
    for (int i = 0; i < 100000; i++) {
        float f = ldexpf(unif(), (int)(next() % 40) - 30);
        uint16_t h = quant_f16(f);
        double e = fabs((double)kern_f16(h) - f), e1 = fabs((double)kern_f16((uint16_t)(h + 1)) - f),
               e0 = fabs((double)kern_f16((uint16_t)(h - 1)) - f);
        if (isnan(e1)) e1 = INFINITY; /* 0x7fff+1, 0-1: NaN patterns, not neighbours */
        if (isnan(e0) || (h & 0x7fff) == 0) e0 = INFINITY;
        CHECK(e <= e1 && e <= e0, "f16 of %.9g: %#x is not the nearest", f, h);
    }
}

/* kern_matmul_w_same reuses activations only when the scratch says they are this x's for
 * this kind: after a call that quantized nothing (a bf16 weight), or of another kind, it
 * quantizes again; after a q4 call on the same x, a q4 call reuses them and a q8 call (int16
 * activations, q4's are int8) quantizes again: the bits of quantizing afresh either way. */
static void test_same(void) {
    enum { N = 3, IN = 256, OUT = 17 }; /* IN: the AVX2 q4 tile's case too */
    const kern_ops *k = kern_best();
    qweight q4, q8, d4;
    make_qw(&q4, WQ_Q4, 32, OUT, IN, 0, 1);
    make_qw(&q8, WQ_Q8, 0, OUT, IN, 0, 1);
    make_qw(&d4, WQ_8DA4W, 32, OUT, IN, 0, 1);
    uint16_t *bf = xmalloc(OUT * IN * sizeof *bf);
    for (size_t i = 0; i < OUT * IN; i++) bf[i] = quant_bf16(unif());
    weight w4 = {WQ_DTYPE(WQ_Q4), &q4}, w8 = {WQ_DTYPE(WQ_Q8), &q8}, wd = {WQ_DTYPE(WQ_8DA4W), &d4}, wb = {ST_BF16, bf};
    float *xb = xmalloc(N * IN * sizeof *xb), *x2 = xmalloc(N * IN * sizeof *x2), *want = xmalloc(N * OUT * 4),
          *got = xmalloc(N * OUT * 4), *want8 = xmalloc(N * OUT * 4);
    void *scratch = NULL;
    if (posix_memalign(&scratch, 64, kern_qscratch(N, IN))) die("malloc", "out of memory");
    memset(scratch, 0, 64);
    for (size_t i = 0; i < N * IN; i++) xb[i] = unif(), x2[i] = unif();
    kern_matmul_w(k, NULL, want8, x2, w8, N, IN, OUT, scratch); /* q8 of x2, from scratch */
    kern_matmul_w(k, NULL, want, x2, w4, N, IN, OUT, scratch); /* q4 of x2, from scratch */
    kern_matmul_w(k, NULL, got, xb, w4, N, IN, OUT, scratch);  /* q4 of xb's first content */
    memcpy(xb, x2, N * IN * sizeof *xb);                       /* xb changes */
    kern_matmul_w(k, NULL, got, xb, wb, N, IN, OUT, scratch);  /* a bf16 call quantizes nothing */
    kern_matmul_w_same(k, NULL, got, xb, w4, N, IN, OUT, scratch);
    CHECK(!memcmp(got, want, N * OUT * 4), "same after a bf16 call: stale activations used");
    kern_matmul_w_same(k, NULL, got, xb, w8, N, IN, OUT, scratch); /* q8 after q4 on this x */
    CHECK(!memcmp(got, want8, N * OUT * 4), "q8 same after q4: not the bits of quantizing afresh");
    kern_matmul_w_same(k, NULL, got, xb, w4, N, IN, OUT, scratch); /* and q4 after q8 */
    CHECK(!memcmp(got, want, N * OUT * 4), "q4 same after q8: not the bits of quantizing afresh");
    kern_matmul_w(k, NULL, got, xb, wd, N, IN, OUT, scratch);  /* 8da4w: another kind */
    kern_matmul_w_same(k, NULL, got, xb, w4, N, IN, OUT, scratch);
    CHECK(!memcmp(got, want, N * OUT * 4), "same after an 8da4w call: the wrong kind reused");
    kern_matmul_w_same(k, NULL, got, xb, w4, N, IN, OUT, scratch);
    CHECK(!memcmp(got, want, N * OUT * 4), "same after q4 on the same x: not the same bits");
    free_qw(&q4), free_qw(&q8), free_qw(&d4);
    free(bf), free(want8);
    free(xb), free(x2), free(want), free(got), free(scratch);
}

/* The whole panel path, as a backend calls it: kern_matmul_wp quantizing x itself, over a pool
 * of 3 threads, for one row (decode) and more, lm_head-like odd row counts: the generic
 * variant's plain matmul bit for bit for every type whose panels decode reads (q4 in groups
 * of 32 and 128, q8, 8da8w, 8da4w). */
static void test_wp(const kern_ops **v, size_t nv) {
    enum { IN = 256, OUT = 37 };
    char err[256];
    pool *p = pool_new(3, err, sizeof err);
    if (!p) die("pool", err);
    const struct { wq_type t; size_t g; } types[] = {{WQ_Q4, 32}, {WQ_Q4, 128}, {WQ_Q8, 0}, {WQ_8DA8W, 0}, {WQ_8DA4W, 32}};
    float *x = xmalloc(5 * IN * sizeof *x), *want = xmalloc(5 * OUT * sizeof *want), *got = xmalloc(5 * OUT * sizeof *got);
    void *s1 = xmalloc(kern_qscratch(5, IN)), *s2 = xmalloc(kern_qscratch(5, IN));
    for (size_t i = 0; i < 5 * IN; i++) x[i] = unif();
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        qweight qw;
        make_qw(&qw, types[ti].t, types[ti].g, OUT, IN, 0, 1);
        weight wt = {WQ_DTYPE(qw.q), &qw};
        for (size_t k = 0; k < nv; k++) {
            kern_packed *pk = kern_pack(v[k], &qw, OUT);
            if (!pk) continue;
            static const size_t ns[] = {1, 2, 5};
            for (size_t a = 0; a < 3; a++) {
                kern_matmul_w(v[0], NULL, want, x, wt, ns[a], IN, OUT, s1);
                kern_matmul_wp(v[k], p, got, x, wt, pk, ns[a], IN, OUT, s2, 0);
                size_t bad = 0;
                for (size_t i = 0; i < ns[a] * OUT; i++) bad += !same_bits(got[i], want[i]);
                CHECK(!bad, "%s kern_matmul_wp type %d g%zu n=%zu: %zu of %zu outputs differ from generic", v[k]->name,
                      qw.q, qw.group, ns[a], bad, ns[a] * OUT);
            }
            kern_packed_free(pk);
        }
        free_qw(&qw);
    }
    free(x), free(want), free(got), free(s1), free(s2);
    pool_free(p);
}

static int cmd_kernels(void) {
    const kern_ops *v[KERN_VARIANTS];
    size_t nv = kern_variants(v, KERN_VARIANTS);
    printf("variants:");
    for (size_t i = 0; i < nv; i++) printf(" %s", v[i]->name);
    printf("\n");
    test_roundtrip();
    test_act();
    test_blocks();
    test_same();
    test_f16();
    test_wp(v, nv);
    /* (n 13: a second tile of rows of x, 12 + 1 with VNNI; in 200: a tail past the last 16
     * columns, for 8da8w; q8 and q4 take blocks of 32; in 256
     * and 768: the AVX2 q4 tile's 8 blocks at a time) */
    static const size_t ns[] = {1, 2, 3, 4, 5, 7, 13}, ins[] = {32, 96, 128, 384, 200, 256, 768}, outs[] = {1, 2, 5, 17, 64};
    const struct { wq_type t; size_t g; } types[] = {{WQ_Q8, 0}, {WQ_Q4, 32}, {WQ_Q4, 128}, {WQ_8DA4W, 32}, {WQ_8DA8W, 0}};
    for (size_t vi = 0; vi < nv; vi++)
        for (size_t ti = 0; ti < 5; ti++) {
            if (!v[vi]->qmatmul[types[ti].t]) continue;
            for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
                for (size_t b = 0; b < sizeof ins / sizeof *ins; b++)
                    for (size_t c = 0; c < 5; c++)
                        for (int kind = 0; kind < 5; kind++) {
                            if (ins[b] % (types[ti].g ? types[ti].g : types[ti].t == WQ_Q8 ? 32 : 1)) continue;
                            test_kernel(v[vi], types[ti].t, types[ti].g, ns[a], ins[b], outs[c], kind);
                        }
        }
    printf("%d checks, %d failures\n", checks, fails);
    return fails ? EXIT_DATA : 0;
}

/* Decode-shaped matmuls (1 x 1024 -> 3072 and 3072 -> 1024, weights ~0.6B-layer sized,
 * 64 MiB of copies so each call streams from DRAM) per type, interleaved, best of 7. */
static int cmd_mmbench(int threads, int hot) {
    char err[256];
    pool *p = pool_new(threads, err, sizeof err);
    if (!p) die("pool", err);
    const kern_ops *k = kern_best();
    enum { IN = 1024, OUT = 3072, COPIES = 24 };
    const struct { const char *name; wq_type t; size_t g; size_t bytes; } ty[] = {
        {"bf16", WQ_NONE, 0, IN * 2}, {"q8", WQ_Q8, 0, IN + 4}, {"q4", WQ_Q4, 32, IN / 2 + IN / 16},
        {"8da4w", WQ_8DA4W, 32, IN / 2 + IN / 8}};
    qweight qw[4][COPIES];
    uint16_t *bf[COPIES];
    for (int c = 0; c < COPIES; c++) {
        bf[c] = xmalloc((size_t)OUT * IN * 2);
        for (size_t i = 0; i < (size_t)OUT * IN; i++) bf[c][i] = quant_bf16(unif());
        for (int t = 1; t < 4; t++) make_qw(&qw[t][c], ty[t].t, ty[t].g, OUT, IN, 0, 1);
    }
    float *x = xmalloc(IN * sizeof *x), *y = xmalloc(OUT * sizeof *y);
    void *scratch = xmalloc(kern_qscratch(1, IN));
    for (size_t i = 0; i < IN; i++) x[i] = unif();
    double best[4] = {1e9, 1e9, 1e9, 1e9};
    for (int round = 0; round < 7; round++)
        for (int t = 0; t < 4; t++) {
            double t0 = now_sec();
            for (int r = 0; r < COPIES; r++) {
                int c = hot ? 0 : r; /* hot: one copy, from the caches: the kernel's compute speed */
                weight w = t ? (weight){WQ_DTYPE(ty[t].t), &qw[t][c]} : (weight){ST_BF16, bf[c]};
                kern_matmul_w(k, p, y, x, w, 1, IN, OUT, scratch);
            }
            double dt = (now_sec() - t0) / COPIES;
            if (dt < best[t]) best[t] = dt;
        }
    for (int t = 0; t < 4; t++)
        printf("%s %s 1x%dx%d threads %d%s: %.1f us, %.1f GB/s of weights\n", k->name, ty[t].name, IN, OUT, threads,
               hot ? " hot" : "",
               best[t] * 1e6, (double)ty[t].bytes * OUT / best[t] / 1e9);
    pool_free(p);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "mmbench")) return cmd_mmbench(argc > 2 ? atoi(argv[2]) : 2, argc > 3 && !strcmp(argv[3], "hot"));
    if (argc >= 2 && !strcmp(argv[1], "kernels")) return cmd_kernels();
    if (argc >= 4 && !strcmp(argv[1], "fixture")) return cmd_fixture(argv[2], argv[3], argc > 4 ? atof(argv[4]) : 1e-4,
                                                                           argc > 5 ? argv[5] : "8da4w");
    if (argc >= 5 && !strcmp(argv[1], "logits")) return cmd_logits(argv[2], argv[3], atof(argv[4]));
    if (argc >= 4 && !strcmp(argv[1], "bench"))
        return cmd_bench(argv[2], argv[3], argc > 4 ? atoi(argv[4]) : 2, argc > 5 ? (size_t)atol(argv[5]) : 512,
                         argc > 6 ? (size_t)atol(argv[6]) : 64);
    fprintf(stderr, "usage: %s kernels | logits MODELDIR SCHEME MINCOS | fixture FIXDIR MODELDIR | "
                    "bench MODELDIR SCHEME [THREADS [PROMPT [GEN]]]\n", prog);
    return EXIT_USAGE;
}

/* msms_test: msModelSlim checkpoints (lib/msms.h) against t/gen_msms_fixtures.py's
 * reference, and the format's matmul against itself.
 *
 *   msms_test ref DIR REF.npy TOL
 *       model_open(DIR) with the CPU backend; the prompt of REF.npy prefilled with the
 *       logits of every position, each row within max|d| <= TOL * max|ref row| and, where
 *       the reference's top two are more than 2 TOL max|logit| apart, with its argmax;
 *       then the reference's greedy tokens decoded one by one, each step's argmax the next
 *       reference token. Prints "max|d| E of max|logit|, argmax A/D, greedy G/G, cosine
 *       to the float model C" (C over all rows, against REF.npy's unquantized logits:
 *       the bats file holds each scheme to a floor) and exits 1 on any failure.
 *   msms_test schemes DIR
 *       the schemes of DIR's linear weights in layer order, one word each ("FLOAT" for
 *       plain ones), then lm_head.
 *   msms_test matmul DIR
 *       every msModelSlim weight of DIR: y of 5 token rows in one call equals each row
 *       alone and any split of the output columns (exactly); a zero row gives 0 (finite
 *       for W8A8, whose zero point leaves the rounding of quant_bias), a row holding a
 *       NaN gives NaN outputs, an Inf what the scheme's arithmetic makes of it; for
 *       W4A8 (float activations) y equals x . row(o) from fmt->row to 1e-5. "M failures".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "msms.h"
#include "npy.h"
#include "util.h"

static const char *prog = "msms_test";
#include "check.h"

static size_t argmax(const float *v, size_t n) {
    size_t b = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

static void next_rec(FILE *f, const char *name, npy *a) {
    char err[512];
    int got = npy_read(f, a, 0, err, sizeof err);
    if (got <= 0) die(name, got < 0 ? err : "fewer than 3 records");
}

static int ref(const char *dir, const char *refpath, double tol) {
    char err[512];
    FILE *f = fopen(refpath, "rb");
    if (!f) die(refpath, "cannot open");
    npy ids = {0}, lg = {0}, gr = {0}, fl = {0};
    next_rec(f, refpath, &ids), next_rec(f, refpath, &lg), next_rec(f, refpath, &gr), next_rec(f, refpath, &fl);
    fclose(f);
    model *m = model_open(dir, err, sizeof err);
    if (!m) die(dir, err);
    size_t P = ids.count, V = (size_t)m->cfg.vocab_size, dim = (size_t)m->cfg.dim, G = gr.count;
    if (ids.dtype != NPY_I32 || gr.dtype != NPY_I32 || lg.dtype != NPY_F32 || lg.count != P * V ||
        fl.dtype != NPY_F32 || fl.count != P * V)
        die(refpath, "records are not ids int32, logits f32 (P, vocab), greedy int32, float logits f32 (P, vocab)");
    backend_opts o = {.n_threads = 2, .max_batch = 64};
    void *ctx = backend_cpu.open(m, &o, err, sizeof err);
    kv_cache kv;
    if (!ctx) die(dir, err);
    if (kv_alloc(&kv, m->cfg.n_layers, (size_t)m->cfg.n_kv_heads * (size_t)m->cfg.head_dim, P + G) < 0)
        die(dir, "out of memory");
    float *x = xmalloc((P + G) * dim * sizeof *x), *y = xmalloc(P * V * sizeof *y);
    const int32_t *id = ids.data, *want_g = gr.data;
    const float *want = lg.data, *flt = fl.data;
    if (model_embed(m, id, P, x, err, sizeof err) < 0 ||
        forward(&backend_cpu, ctx, m, x, P, &kv, y, 1, err, sizeof err) < 0)
        die(dir, err);
    double worst = 0, ab = 0, aa = 0, bb = 0;
    size_t am = 0, decided = 0, gok = 0;
    for (size_t r = 0; r < P; r++) {
        double md = 0, mx = 0, top = -INFINITY, second = -INFINITY;
        for (size_t v = 0; v < V; v++) {
            double a = y[r * V + v], b = want[r * V + v], d = fabs(a - b);
            md = d == d ? fmax(md, d) : INFINITY;
            mx = fmax(mx, fabs(b));
            if (b > top) second = top, top = b;
            else if (b > second) second = b;
            ab += a * flt[r * V + v], aa += a * a, bb += (double)flt[r * V + v] * flt[r * V + v];
        }
        worst = fmax(worst, md / mx);
        if (top - second > 2 * tol * mx) /* rows the tolerance cannot tip */
            decided++, am += argmax(y + r * V, V) == argmax(want + r * V, V);
    }
    int32_t next = (int32_t)argmax(y + (P - 1) * V, V);
    for (size_t g = 0; g < G; g++) {
        if (next != want_g[g]) break;
        gok++;
        if (g + 1 == G) break;
        if (model_embed(m, &next, 1, x, err, sizeof err) < 0 ||
            forward(&backend_cpu, ctx, m, x, 1, &kv, y, 0, err, sizeof err) < 0)
            die(dir, err);
        next = (int32_t)argmax(y, V);
    }
    printf("max|d| %.2e of max|logit|, argmax %zu/%zu, greedy %zu/%zu, cosine to the float model %.6f\n", worst,
           am, decided, gok, G, ab / sqrt(aa * bb));
    int ok = worst <= tol && am == decided && gok == G;
    free(x), free(y), kv_free(&kv), backend_cpu.close(ctx), model_close(m);
    npy_free(&ids), npy_free(&lg), npy_free(&gr), npy_free(&fl);
    return ok ? 0 : 1;
}

static const char *scheme_of(weight w) {
    if (weight_q(w) != WQ_FMT) return "FLOAT";
    const qweight *q = w.data;
    return msms_scheme_name(((const msms_weight *)q->aux)->scheme);
}

static int schemes(const char *dir) {
    char err[512];
    model *m = model_open(dir, err, sizeof err);
    if (!m) die(dir, err);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const layer_weights *w = &m->layers[l];
        weight ws[] = {w->wq, w->wk, w->wv, w->wo, w->w_gate, w->w_up, w->w_down};
        for (size_t i = 0; i < 7; i++) printf("%s ", scheme_of(ws[i]));
    }
    printf("%s\n", scheme_of(m->lm_head));
    model_close(m);
    return 0;
}

/* One msms weight: batching and column splits exact, zero/NaN/Inf rows, W4A8 vs row(). */
static void one_weight(const qweight *q, size_t out, const char *what) {
    const msms_weight *w = q->aux;
    size_t K = q->in, n = 5;
    float *x = xmalloc(n * K * sizeof *x), *y = xmalloc(n * out * sizeof *y), *y1 = xmalloc(out * sizeof *y1),
          *r = xmalloc(K * sizeof *r);
    void *scratch = xmalloc(q->fmt->scratch ? q->fmt->scratch(q, n) + 64 : 64);
    uint64_t s = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < n * K; i++) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        x[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 4 - 2);
    }
    for (size_t k = 0; k < K; k++) x[3 * K + k] = 0; /* row 3: zeros */
    x[4 * K + K / 2] = NAN;                            /* row 4: a NaN */
    if (q->fmt->prep) q->fmt->prep(q, x, n, scratch);
    q->fmt->matmul(y, x, scratch, q, n, out, 0, out / 3);
    q->fmt->matmul(y, x, scratch, q, n, out, out / 3, out);
    for (size_t i = 0; i < 3; i++) { /* each row alone */
        if (q->fmt->prep) q->fmt->prep(q, x + i * K, 1, scratch);
        q->fmt->matmul(y1, x + i * K, scratch, q, 1, out, 0, out);
        if (memcmp(y1, y + i * out, out * sizeof *y1)) fprintf(stderr, "%s: row %zu alone differs\n", what, i), fails++;
    }
    for (size_t o = 0; o < out; o++) {
        float z = y[3 * out + o];
        if (w->scheme == MSMS_W8A8 ? !isfinite(z) : z != 0) {
            fprintf(stderr, "%s: zero row gives %g at %zu\n", what, z, o), fails++;
            break;
        }
        if (!isnan(y[4 * out + o])) {
            fprintf(stderr, "%s: NaN row gives %g at %zu\n", what, y[4 * out + o], o), fails++;
            break;
        }
    }
    x[4 * K + K / 2] = INFINITY;
    if (q->fmt->prep) q->fmt->prep(q, x + 4 * K, 1, scratch);
    q->fmt->matmul(y1, x + 4 * K, scratch, q, 1, out, 0, out);
    /* an Inf: NaN where x is quantized per token (scale Inf), IEEE's Inf or NaN through
     * W4A8's float dot, saturated to int8 by W8A8's fixed scale */
    int inf_ok = w->scheme == MSMS_W8A8 ? isfinite(y1[0]) : w->scheme == MSMS_W4A8_DYNAMIC ? !isfinite(y1[0]) : isnan(y1[0]);
    if (!inf_ok) fprintf(stderr, "%s: Inf row gives %g\n", what, y1[0]), fails++;
    if (w->scheme == MSMS_W4A8_DYNAMIC)
        for (size_t o = 0; o < out; o++) {
            q->fmt->row(q, o, r);
            double d = 0, mx = 0;
            for (size_t k = 0; k < K; k++) d += (double)x[k] * r[k], mx = fmax(mx, fabs((double)x[k] * r[k]));
            if (fabs(d - y[o]) > 1e-5 * mx * (double)K) {
                fprintf(stderr, "%s: column %zu: %g, x . row = %g\n", what, o, y[o], d), fails++;
                break;
            }
        }
    free(x), free(y), free(y1), free(r), free(scratch);
}

static int matmul(const char *dir) {
    char err[512];
    model *m = model_open(dir, err, sizeof err);
    if (!m) die(dir, err);
    size_t n = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const layer_weights *w = &m->layers[l];
        const weight *ws[] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->w_gate, &w->w_up, &w->w_down};
        size_t outs[] = {(size_t)(m->cfg.n_heads * m->cfg.head_dim), (size_t)(m->cfg.n_kv_heads * m->cfg.head_dim),
                         (size_t)(m->cfg.n_kv_heads * m->cfg.head_dim), (size_t)m->cfg.dim,
                         (size_t)m->cfg.hidden_dim, (size_t)m->cfg.hidden_dim, (size_t)m->cfg.dim};
        for (size_t i = 0; i < 7; i++)
            if (weight_q(*ws[i]) == WQ_FMT) {
                char what[64];
                snprintf(what, sizeof what, "layer %d weight %zu", l, i);
                one_weight(ws[i]->data, outs[i], what);
                n++;
            }
    }
    model_close(m);
    printf("%zu weights, %d failures\n", n, fails);
    return fails ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "ref")) return ref(argv[2], argv[3], atof(argv[4]));
    if (argc == 3 && !strcmp(argv[1], "schemes")) return schemes(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "matmul")) return matmul(argv[2]);
    fprintf(stderr, "usage: %s ref DIR REF.npy TOL | schemes DIR | matmul DIR\n", prog);
    return EXIT_USAGE;
}

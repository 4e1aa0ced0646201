/* forward_test: the CPU forward pass against HF transformers, and the stages against each
 * other.
 *
 *   forward_test [--quant S [--cos C --maxrel R]] fixture FIXDIR MODELSDIR [NAME...]
 *       every model of FIXDIR/forward.json (or the NAMEs), opened from MODELSDIR/NAME: each
 *       prompt is prefilled (logits of every position), then its 32 reference greedy ids
 *       are fed one by one through decode; every row is compared with the reference
 *       (t/gen_forward_reference.py says what a row keeps): cosine and max|diff| over the
 *       1024-id subset and the top 20, max|diff| <= maxrel * max|logit|, max|logit|
 *       itself, the full row where there is one, and the argmax of every row from the
 *       last prefill one on against the greedy ids. One line per prompt, then
 *       "N rows, M failures". --quant opens the models with scheme S, --cos and --maxrel
 *       then stand for every model's tolerances, and an argmax other than HF's greedy id
 *       passes where that id's logit is within maxrel / 4 * max|logit| of the largest.
 *   forward_test [--quant S] stages MODELDIR
 *       prefill n then decode m one by one, a prefill split in two, a backend opened with
 *       a max_batch smaller than the prompt, and last-row-only logits, all against one
 *       prefill of n+m: max|diff| <= 1e-5 * max|logit| on every row. Then "M failures".
 * Exit 1 on any failure. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "npy.h"
#include "util.h"

static const char *prog = "forward_test";
#include "check.h"

/* A model with the CPU backend, and a KV cache for it. */
typedef struct {
    model *m;
    void *ctx;
    kv_cache kv;
    size_t vocab, dim;
} runner;

static const char *scheme;         /* --quant */
static double opt_cos, opt_maxrel; /* --cos, --maxrel (0: forward.json's) */

static void runner_open(runner *r, const char *dir, size_t max_batch) {
    char err[512];
    if (!(r->m = model_open_q(dir, scheme, NULL, NULL, err, sizeof err))) die(dir, err);
    backend_opts o = {.n_threads = 0, .max_batch = max_batch};
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

/* Feed ids[0..n) at the cache's next positions; logits of every row (all) or the last. */
static void feed(runner *r, const int32_t *ids, size_t n, float *logits, int all) {
    char err[512];
    float *x = xmalloc(n * r->dim * sizeof *x);
    if (model_embed(r->m, ids, n, x, err, sizeof err) < 0) die("model_embed", err);
    if (forward(&backend_cpu, r->ctx, r->m, x, n, &r->kv, logits, all, err, sizeof err) < 0) die("forward", err);
    free(x);
}

static size_t argmax(const float *v, size_t n) {
    size_t b = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

static double maxabs(const float *v, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(v[i]));
    return m;
}

/* ---- fixture ---- */

/* The next record of f, which must have the dtype and element count the caller expects. */
static void next_rec(FILE *f, const char *name, npy *a, npy_dtype t, size_t count) {
    char err[512];
    int got = npy_read(f, a, 0, err, sizeof err);
    if (got <= 0) die(name, got < 0 ? err : "fewer records than forward.json describes");
    if (a->dtype != t || a->count != count) die(name, "a record's dtype or size is not what forward.json describes");
}

typedef struct {
    double worst_cos, worst_rel, worst_max_rel; /* 1 - cosine; max|d|/max|logit|; max|logit| error */
} worst;

/* Compare got (a full row) with the reference values at ids[0..n); returns 1 if within tol. */
static int compare(const float *got, const int32_t *ids, const float *want, size_t n, double scale, double tol_cos,
                   double tol_rel, worst *w, double *cos_out, double *rel_out) {
    double ab = 0, aa = 0, bb = 0, md = 0;
    for (size_t i = 0; i < n; i++) {
        double a = got[ids ? (size_t)ids[i] : i], b = want[i];
        ab += a * b, aa += a * a, bb += b * b;
        md = fmax(md, fabs(a - b));
        if (a != a) md = INFINITY; /* NaN */
    }
    double cos = aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : aa == bb, rel = md / scale;
    w->worst_cos = fmax(w->worst_cos, 1 - cos);
    w->worst_rel = fmax(w->worst_rel, rel);
    *cos_out = cos, *rel_out = rel;
    return cos >= tol_cos && rel <= tol_rel;
}

static size_t ids_of(const cJSON *a, int32_t *out) {
    size_t n = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) out[n++] = (int32_t)v->valueint;
    return n;
}

static size_t rows_total;

static void fixture_model(const cJSON *mj, const char *fixdir, const char *modelsdir, size_t K, size_t topk,
                          size_t steps) {
    const char *name = cJSON_GetObjectItem(mj, "name")->valuestring;
    const cJSON *tol = cJSON_GetObjectItem(mj, "tol");
    double tol_cos = cJSON_GetObjectItem(tol, "cos")->valuedouble, tol_rel = cJSON_GetObjectItem(tol, "maxrel")->valuedouble;
    if (opt_cos > 0) tol_cos = opt_cos;
    if (opt_maxrel > 0) tol_rel = opt_maxrel;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", modelsdir, name);
    runner r;
    runner_open(&r, path, 128);
    snprintf(path, sizeof path, "%s/%s.npy", fixdir, name);
    FILE *f = fopen(path, "rb");
    if (!f) die(path, "cannot open");
    npy sub_ids = {0}, sub = {0}, top_ids = {0}, top_vals = {0}, mx = {0}, full = {0};
    next_rec(f, path, &sub_ids, NPY_I32, K);

    const cJSON *pj;
    cJSON_ArrayForEach(pj, cJSON_GetObjectItem(mj, "prompts")) {
        const char *pname = cJSON_GetObjectItem(pj, "name")->valuestring;
        const cJSON *ids_j = cJSON_GetObjectItem(pj, "ids"), *gen_j = cJSON_GetObjectItem(pj, "generated");
        size_t n = (size_t)cJSON_GetArraySize(ids_j), R = n + steps;
        int full_row = cJSON_GetObjectItem(pj, "full_row")->valueint;
        int32_t *seq = xmalloc((n + steps + 1) * sizeof *seq);
        ids_of(ids_j, seq);
        if (ids_of(gen_j, seq + n) != steps + 1) die(path, "generated ids: want decode_steps + 1");

        next_rec(f, path, &sub, NPY_F32, R * K);
        next_rec(f, path, &top_ids, NPY_I32, R * topk);
        next_rec(f, path, &top_vals, NPY_F32, R * topk);
        next_rec(f, path, &mx, NPY_F32, R);
        if (full_row >= 0) next_rec(f, path, &full, NPY_F32, r.vocab);

        /* Rows 0..n-1 from one prefill, then one row per decode step of the greedy ids. */
        float *logits = xmalloc(n * r.vocab * sizeof *logits), *row = xmalloc(r.vocab * sizeof *row);
        r.kv.n = 0;
        feed(&r, seq, n, logits, 1);
        worst w = {0};
        size_t greedy_same = 0, bad_rows = 0;
        for (size_t i = 0; i < R; i++) {
            const float *got = i < n ? logits + i * r.vocab : row;
            if (i >= n) feed(&r, seq + i, 1, row, 0);
            double scale = ((const float *)mx.data)[i], c1, r1, c2, r2;
            int ok = compare(got, sub_ids.data, (const float *)sub.data + i * K, K, scale, tol_cos, tol_rel, &w, &c1, &r1);
            ok &= compare(got, (const int32_t *)top_ids.data + i * topk, (const float *)top_vals.data + i * topk, topk,
                          scale, tol_cos, tol_rel, &w, &c2, &r2);
            double mrel = fabs(maxabs(got, r.vocab) - scale) / scale;
            w.worst_max_rel = fmax(w.worst_max_rel, mrel);
            ok &= mrel <= tol_rel;
            CHECK(ok, "%s %s row %zu: cosine %.9f / %.9f (top %zu), max|d|/max|logit| %.2e / %.2e, max|logit| off by %.2e",
                  name, pname, i, c1, c2, topk, r1, r2, mrel);
            if (i + 1 >= n) {
                size_t a = argmax(got, r.vocab);
                greedy_same += a == (size_t)seq[i + 1];
                /* --quant: a near tie may go the other way, HF's id within maxrel / 4 of our largest */
                int near = scheme && got[a] - got[seq[i + 1]] <= tol_rel / 4 * scale;
                CHECK(a == (size_t)seq[i + 1] || near, "%s %s row %zu: argmax %zu, HF's greedy id %d", name, pname, i,
                      a, seq[i + 1]);
            }
            if ((int)i == full_row) {
                double cf, rf;
                CHECK(compare(got, NULL, full.data, r.vocab, scale, tol_cos, tol_rel, &w, &cf, &rf),
                      "%s %s row %zu (full vocabulary): cosine %.9f, max|d|/max|logit| %.2e", name, pname, i, cf, rf);
            }
            bad_rows += !ok;
        }
        printf("%-12s %-6s rows %3zu  1-cos %.1e  max|d|/max|logit| %.1e  max|logit| %.1e  greedy %zu/%zu%s\n", name,
               pname, R, w.worst_cos, w.worst_rel, w.worst_max_rel, greedy_same, steps + 1, bad_rows ? "  FAIL" : "");
        rows_total += R;
        free(logits), free(row), free(seq);
    }
    char err[512];
    CHECK(npy_read(f, &sub, 0, err, sizeof err) == 0, "%s: more records than forward.json describes", path);
    fclose(f);
    npy_free(&sub_ids), npy_free(&sub), npy_free(&top_ids), npy_free(&top_vals), npy_free(&mx), npy_free(&full);
    runner_close(&r);
}

static int fixture(const char *fixdir, const char *modelsdir, char **names, int n_names) {
    char path[4096], err[512], *json;
    size_t len;
    snprintf(path, sizeof path, "%s/forward.json", fixdir);
    FILE *f = fopen(path, "rb");
    if (!f || read_all(f, &json, &len, err, sizeof err) < 0) die(path, f ? err : "cannot open");
    fclose(f);
    cJSON *root = cJSON_Parse(json);
    if (!root) die(path, "not JSON");
    size_t K = (size_t)cJSON_GetObjectItem(root, "subset")->valueint, topk = (size_t)cJSON_GetObjectItem(root, "topk")->valueint,
           steps = (size_t)cJSON_GetObjectItem(root, "decode_steps")->valueint;
    const cJSON *mj;
    int done = 0;
    cJSON_ArrayForEach(mj, cJSON_GetObjectItem(root, "models")) {
        const char *name = cJSON_GetObjectItem(mj, "name")->valuestring;
        int want = n_names == 0;
        for (int i = 0; i < n_names; i++) want |= !strcmp(names[i], name);
        if (!want) continue;
        fixture_model(mj, fixdir, modelsdir, K, topk, steps);
        done++;
    }
    if (done < (n_names ? n_names : 1)) die(path, "a model named on the command line is not in it");
    printf("%zu rows, %d failures\n", rows_total, fails);
    cJSON_Delete(root);
    free(json);
    return fails ? EXIT_DATA : EXIT_OK;
}

/* ---- stages ---- */

static uint64_t mix(uint64_t seed, uint64_t i) {
    uint64_t z = i * 0x9e3779b97f4a7c15ull + seed;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* rows (n, vocab) of got against want: max|diff| <= 1e-5 * max|logit| on each. */
static void same_rows(const char *what, const float *got, const float *want, size_t n, size_t vocab) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double md = 0, scale = maxabs(want + i * vocab, vocab);
        for (size_t j = 0; j < vocab; j++) {
            double d = fabs((double)got[i * vocab + j] - want[i * vocab + j]);
            md = d > md || d != d ? d : md;
        }
        worst = fmax(worst, md / scale);
        CHECK(md <= 1e-5 * scale, "%s: row %zu: max|d| %.3e, max|logit| %.3e", what, i, md, scale);
    }
    printf("%-40s max|d|/max|logit| %.1e\n", what, worst);
}

static int stages(const char *dir) {
    enum { N = 20, M = 12, SPLIT = 13, SMALL_BATCH = 7 };
    runner r, rs;
    runner_open(&r, dir, 64);
    size_t V = r.vocab;
    int32_t ids[N + M];
    for (size_t i = 0; i < N + M; i++) ids[i] = (int32_t)(mix(7, i + 1) % (uint64_t)V);
    float *want = xmalloc((N + M) * V * sizeof *want), *got = xmalloc((N + M) * V * sizeof *got);

    feed(&r, ids, N + M, want, 1);
    CHECK(r.kv.n == N + M, "prefill %d: kv->n %zu", N + M, r.kv.n);

    r.kv.n = 0;
    feed(&r, ids, N, got, 1);
    for (size_t i = N; i < N + M; i++) feed(&r, ids + i, 1, got + i * V, 0);
    CHECK(r.kv.n == N + M, "prefill %d + %d decodes: kv->n %zu", N, M, r.kv.n);
    same_rows("prefill 20, decode 12 == prefill 32", got, want, N + M, V);

    r.kv.n = 0;
    feed(&r, ids, SPLIT, got, 1);
    feed(&r, ids + SPLIT, N + M - SPLIT, got + SPLIT * V, 1);
    same_rows("prefill 13, prefill 19 == prefill 32", got, want, N + M, V);

    r.kv.n = 0;
    feed(&r, ids, N + M, got, 0);
    same_rows("last-row logits == last row of all", got, want + (N + M - 1) * V, 1, V);

    runner_open(&rs, dir, SMALL_BATCH);
    feed(&rs, ids, N + M, got, 1);
    same_rows("max_batch 7: prefill 32 == prefill 32", got, want, N + M, V);
    runner_close(&rs);

    runner_close(&r);
    free(want), free(got);
    printf("%d failures\n", fails);
    return fails ? EXIT_DATA : EXIT_OK;
}

int main(int argc, char **argv) {
    while (argc >= 3 && !strncmp(argv[1], "--", 2)) {
        if (!strcmp(argv[1], "--quant")) scheme = argv[2];
        else if (!strcmp(argv[1], "--cos")) opt_cos = atof(argv[2]);
        else if (!strcmp(argv[1], "--maxrel")) opt_maxrel = atof(argv[2]);
        else break;
        argv += 2, argc -= 2;
    }
    if (argc >= 4 && !strcmp(argv[1], "fixture")) return fixture(argv[2], argv[3], argv + 4, argc - 4);
    if (argc == 3 && !strcmp(argv[1], "stages")) return stages(argv[2]);
    fprintf(stderr, "usage: %s [--quant S [--cos C --maxrel R]] fixture FIXDIR MODELSDIR [NAME...] | [--quant S] stages MODELDIR\n",
            prog);
    return EXIT_USAGE;
}

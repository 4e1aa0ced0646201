/* kern_test: the CPU kernels, the thread pool and the CPU backend against references
 * written here in the plainest way (double precision, no tricks):
 *   kern_test            every check; prints one line per failure and "N checks, M failures"
 *   kern_test bench [T]  decode-speed figures: memory read bandwidth and bf16 matmuls of
 *                        Qwen3-0.6B shapes, in GB/s of weights streamed, on 1..T threads
 * Every ISA variant this CPU runs is held to the generic kernel; pools of 1, 2 and 3
 * threads must give bit-identical results. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "kern.h"
#include "kv.h"
#include "pool.h"

static int checks, failures;

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static void check(int ok, const char *fmt, ...) {
    checks++;
    if (ok) return;
    failures++;
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static float unif(void) { return (float)((next() >> 40) * 0x1p-24 * 2 - 1); } /* [-1, 1) */

static uint16_t to_bf16(float f) { /* round to nearest even */
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

/* A random f16 bit pattern: mostly normal numbers of moderate size, some subnormals. */
static uint16_t rand_f16(void) {
    uint64_t r = next();
    uint16_t sign = (uint16_t)((r & 1) << 15), man = (uint16_t)((r >> 1) & 0x3ff);
    uint16_t e = (r >> 11) % 16 == 0 ? 0 : (uint16_t)(9 + (r >> 16) % 8); /* 2^-6 .. 2^1 */
    return (uint16_t)(sign | e << 10 | man);
}

/* Random weights of type t, (rows, cols); *f gets them widened, as the reference sees them. */
static void *rand_weights(st_dtype t, size_t count, float **f) {
    *f = malloc(count * sizeof **f);
    if (t == ST_F32) {
        float *w = malloc(count * 4);
        for (size_t i = 0; i < count; i++) (*f)[i] = w[i] = unif();
        return w;
    }
    uint16_t *w = malloc(count * 2);
    for (size_t i = 0; i < count; i++) {
        w[i] = t == ST_BF16 ? to_bf16(unif()) : rand_f16();
        (*f)[i] = t == ST_BF16 ? kern_bf16(w[i]) : kern_f16(w[i]);
    }
    return w;
}

static const char *dtype_name(st_dtype t) { return t == ST_F32 ? "f32" : t == ST_F16 ? "f16" : "bf16"; }

static float *rand_vec(size_t n) {
    float *v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = unif();
    return v;
}

/* ---- conversions ---- */

static void test_convert(void) {
    struct { uint16_t h; float f; } f16[] = {
        {0x3c00, 1.0f}, {0xc000, -2.0f}, {0x0001, 0x1p-24f}, {0x03ff, 0x3ffp-24f}, {0x0400, 0x1p-14f},
        {0x7bff, 65504.0f}, {0x8000, -0.0f}, {0x7c00, INFINITY}, {0xfc00, -INFINITY}, {0x3555, 0x1.554p-2f}};
    for (size_t i = 0; i < sizeof f16 / sizeof *f16; i++)
        check(kern_f16(f16[i].h) == f16[i].f && signbit(kern_f16(f16[i].h)) == signbit(f16[i].f),
              "kern_f16(0x%04x) = %g, want %g", f16[i].h, kern_f16(f16[i].h), f16[i].f);
    check(isnan(kern_f16(0x7e00)), "kern_f16(0x7e00) is not nan");
    check(kern_bf16(0x3f80) == 1.0f && kern_bf16(0xc0a0) == -5.0f, "kern_bf16");
}

/* ---- every variant against the generic one ---- */

static int close_to(double got, double want, double tol) { return fabs(got - want) <= tol; }

static void test_matmul_variants(const kern_ops **v, size_t nv) {
    static const size_t shapes[][3] = {{1, 1, 1},   {1, 7, 5},     {1, 33, 17},  {2, 16, 4},  {3, 64, 13},
                                       {5, 129, 37}, {7, 1000, 45}, {1, 1024, 67}, {4, 300, 300}, {13, 47, 9}};
    for (st_dtype t = ST_F32; t <= ST_BF16; t++)
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
            size_t n = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
            float *wf, *x = rand_vec(n * in), *want = malloc(n * out * 4), *got = malloc(n * out * 4);
            void *w = rand_weights(t, out * in, &wf);
            v[0]->matmul[t](want, x, w, n, in, out, 0, out);
            for (size_t i = 0; i < n; i++) /* the generic one against double */
                for (size_t o = 0; o < out; o++) {
                    double ref = 0, mag = 0;
                    for (size_t k = 0; k < in; k++) {
                        ref += (double)x[i * in + k] * wf[o * in + k];
                        mag += fabs((double)x[i * in + k] * wf[o * in + k]);
                    }
                    check(close_to(want[i * out + o], ref, 1e-6 * mag + 1e-30), "generic matmul %s %zux%zux%zu [%zu,%zu]: %g, want %g",
                          dtype_name(t), n, in, out, i, o, want[i * out + o], ref);
                }
            for (size_t k = 1; k < nv; k++) {
                memset(got, 0, n * out * 4);
                v[k]->matmul[t](got, x, w, n, in, out, 0, out);
                double worst = 0;
                for (size_t i = 0; i < n * out; i++) {
                    double mag = 0;
                    size_t r = i / out, o = i % out;
                    for (size_t j = 0; j < in; j++) mag += fabs((double)x[r * in + j] * wf[o * in + j]);
                    double d = fabs(got[i] - want[i]) / (mag + 1e-30);
                    if (d > worst) worst = d;
                }
                check(worst <= 1e-6, "%s matmul %s %zux%zux%zu: error %.3g of sum|x w|", v[k]->name, dtype_name(t), n, in, out, worst);
                /* only columns [o0, o1) are written */
                if (out > 5) {
                    for (size_t i = 0; i < n * out; i++) got[i] = -7;
                    v[k]->matmul[t](got, x, w, n, in, out, 2, out - 3);
                    int ok = 1;
                    for (size_t i = 0; i < n * out; i++) {
                        size_t o = i % out;
                        ok &= (o >= 2 && o < out - 3) ? close_to(got[i], want[i], 1e-3) : got[i] == -7;
                    }
                    check(ok, "%s matmul %s %zux%zux%zu: columns [2, %zu) only", v[k]->name, dtype_name(t), n, in, out, out - 3);
                }
            }
            free(x), free(wf), free(w), free(want), free(got);
        }
}

static void test_scores_accum(const kern_ops **v, size_t nv) {
    static const size_t dims[] = {1, 3, 8, 15, 16, 17, 31, 33, 64, 100, 128, 130, 256};
    for (size_t d = 0; d < sizeof dims / sizeof *dims; d++)
        for (size_t n = 1; n <= 33; n += 8) {
            size_t hd = dims[d], stride = hd + 5;
            float *q = rand_vec(hd), *kv = rand_vec(n * stride), *p = rand_vec(n), *o0 = rand_vec(hd);
            float *want = malloc(n * 4), *got = malloc(n * 4), *ow = malloc(hd * 4), *og = malloc(hd * 4);
            v[0]->scores(want, q, kv, n, stride, hd);
            memcpy(ow, o0, hd * 4);
            v[0]->accum(ow, p, kv, n, stride, hd);
            for (size_t k = 1; k < nv; k++) {
                v[k]->scores(got, q, kv, n, stride, hd);
                int ok = 1;
                for (size_t t = 0; t < n; t++) {
                    double mag = 0;
                    for (size_t j = 0; j < hd; j++) mag += fabs((double)q[j] * kv[t * stride + j]);
                    ok &= close_to(got[t], want[t], 1e-6 * mag);
                }
                check(ok, "%s scores n=%zu hd=%zu", v[k]->name, n, hd);
                memcpy(og, o0, hd * 4);
                v[k]->accum(og, p, kv, n, stride, hd);
                ok = 1;
                for (size_t j = 0; j < hd; j++) {
                    double mag = fabs(o0[j]);
                    for (size_t t = 0; t < n; t++) mag += fabs((double)p[t] * kv[t * stride + j]);
                    ok &= close_to(og[j], ow[j], 1e-6 * mag);
                }
                check(ok, "%s accum n=%zu hd=%zu", v[k]->name, n, hd);
            }
            free(q), free(kv), free(p), free(o0), free(want), free(got), free(ow), free(og);
        }
}

/* The two-query forms, where a variant has them: the bits of its one-query forms called
 * once per query, on f32 rows and on f16 rows, for every n and head size (groups of 8 keys
 * and the keys past them, head sizes off the vector width). */
static void test_pairs(const kern_ops **v, size_t nv) {
    static const size_t dims[] = {1, 8, 15, 16, 24, 32, 40, 64, 100, 128, 256};
    for (size_t k = 0; k < nv; k++) {
        if (!v[k]->scores2 && !v[k]->accum2 && !v[k]->scores2_16 && !v[k]->accum2_16) continue;
        int bad = 0, cases = 0;
        for (size_t d = 0; d < sizeof dims / sizeof *dims; d++)
            for (size_t n = 1; n <= 40; n++) {
                size_t hd = dims[d], stride = hd + 3 * (n & 1);
                float *q = rand_vec(2 * hd), *kv = rand_vec(n * stride), *p = rand_vec(2 * n), *o = rand_vec(2 * hd);
                uint16_t *kv16 = malloc(n * stride * 2);
                kern_to_f16(kv16, kv, n * stride);
                float *w = malloc(2 * n * 4), *g = malloc(2 * n * 4), *ow = malloc(2 * hd * 4), *og = malloc(2 * hd * 4);
                for (int half = 0; half < 2; half++) {
                    if (half ? !!v[k]->scores2_16 : !!v[k]->scores2) {
                        if (half) {
                            v[k]->scores16(w, q, kv16, n, stride, hd), v[k]->scores16(w + n, q + hd, kv16, n, stride, hd);
                            v[k]->scores2_16(g, g + n, q, q + hd, kv16, n, stride, hd);
                        } else {
                            v[k]->scores(w, q, kv, n, stride, hd), v[k]->scores(w + n, q + hd, kv, n, stride, hd);
                            v[k]->scores2(g, g + n, q, q + hd, kv, n, stride, hd);
                        }
                        bad += memcmp(w, g, 2 * n * 4) != 0, cases++;
                    }
                    if (half ? !!v[k]->accum2_16 : !!v[k]->accum2) {
                        memcpy(ow, o, 2 * hd * 4), memcpy(og, o, 2 * hd * 4);
                        if (half) {
                            v[k]->accum16(ow, p, kv16, n, stride, hd), v[k]->accum16(ow + hd, p + n, kv16, n, stride, hd);
                            v[k]->accum2_16(og, og + hd, p, p + n, kv16, n, stride, hd);
                        } else {
                            v[k]->accum(ow, p, kv, n, stride, hd), v[k]->accum(ow + hd, p + n, kv, n, stride, hd);
                            v[k]->accum2(og, og + hd, p, p + n, kv, n, stride, hd);
                        }
                        bad += memcmp(ow, og, 2 * hd * 4) != 0, cases++;
                    }
                }
                free(q), free(kv), free(p), free(o), free(kv16), free(w), free(g), free(ow), free(og);
            }
        check(!bad && cases, "%s two-query scores/accum: %d of %d cases differ from the one-query forms' bits",
              v[k]->name, bad, cases);
    }
}

/* exps: within 2.5 ulp of expf down to -87 (and below, no more than exp(-87)); NaN stays
 * NaN; the sum is the sum of what it wrote. */
static void test_exps(const kern_ops **v, size_t nv) {
    enum { N = 203 };
    float x[N], s[N];
    for (size_t k = 0; k < nv; k++) {
        if (!v[k]->exps) continue;
        for (int trial = 0; trial < 200; trial++) {
            float m = trial % 2 ? 3.5f : -1e3f;
            for (size_t t = 0; t < N; t++) x[t] = m - (float)(fabs(unif()) * (trial % 3 == 0 ? 120 : 20));
            x[trial % N] = m;
            if (trial % 7 == 0) x[(trial * 5) % N] = NAN;
            memcpy(s, x, sizeof s);
            float sum = v[k]->exps(s, N, m);
            int ok = 1;
            double want_sum = 0;
            for (size_t t = 0; t < N; t++) {
                float e = expf(x[t] - m);
                if (isnan(x[t])) {
                    ok &= isnan(s[t]) != 0;
                    continue;
                }
                want_sum += s[t];
                int okt = x[t] - m >= -87 ? fabs((double)s[t] - e) <= 2.5 * (nextafterf(e, INFINITY) - e)
                                          : s[t] >= 0 && s[t] <= 1.65e-38f; /* exp(-87) */
                ok &= okt;
            }
            int has_nan = trial % 7 == 0;
            ok &= has_nan ? isnan(sum) : close_to(sum, want_sum, 1e-6 * want_sum);
            check(ok, "%s exps, trial %d", v[k]->name, trial);
        }
    }
}

/* rmsnorm: every variant gives kern_rmsnorm's bits (in place too), for head sizes and odd
 * ones, rows of wide magnitudes and a zero row; kern_rmsnorm near the double formula. */
static void test_rmsnorm(const kern_ops **v, size_t nv) {
    static const size_t dims[] = {1, 7, 8, 9, 31, 64, 128, 1000, 1024};
    for (size_t d = 0; d < sizeof dims / sizeof *dims; d++) {
        size_t dim = dims[d], n = 5;
        float *x = rand_vec(n * dim), *w = rand_vec(dim), *want = malloc(n * dim * 4), *got = malloc(n * dim * 4);
        for (size_t j = 0; j < dim; j++) x[j] *= 1e15f, x[dim + j] *= 1e-15f, x[2 * dim + j] = 0;
        kern_rmsnorm(want, x, w, n, dim, 1e-6f);
        int ok = 1;
        for (size_t i = 0; i < n; i++) {
            double ss = 0;
            for (size_t j = 0; j < dim; j++) ss += (double)x[i * dim + j] * x[i * dim + j];
            double r = 1 / sqrt(ss / dim + 1e-6);
            for (size_t j = 0; j < dim; j++) {
                double y = w[j] * (x[i * dim + j] * r);
                ok &= close_to(want[i * dim + j], y, 1e-6 * fabs(y) + 1e-30);
            }
        }
        check(ok, "kern_rmsnorm dim=%zu: near the double formula", dim);
        for (size_t k = 0; k < nv; k++) {
            v[k]->rmsnorm(got, x, w, n, dim, 1e-6f);
            ok = !memcmp(got, want, n * dim * 4);
            memcpy(got, x, n * dim * 4);
            v[k]->rmsnorm(got, got, w, n, dim, 1e-6f);
            check(ok && !memcmp(got, want, n * dim * 4), "%s rmsnorm dim=%zu: kern_rmsnorm's bits, in place too",
                  v[k]->name, dim);
        }
        free(x), free(w), free(want), free(got);
    }
}

/* Each variant's swiglu against double: relative 1e-6 (a few ulp), on g from -100 to 100,
 * zeros, odd lengths; NaN and -inf g give NaN. */
static void test_swiglu(const kern_ops **v, size_t nv) {
    enum { N = 203 };
    float g[N], u[N], y[N];
    for (size_t k = 0; k < nv; k++) {
        if (!v[k]->swiglu) continue;
        for (int trial = 0; trial < 50; trial++) {
            size_t n = N - (size_t)trial % 9;
            for (size_t j = 0; j < n; j++) g[j] = unif() * (trial % 3 == 0 ? 100 : 8), u[j] = unif();
            g[trial % n] = trial % 2 ? 0.0f : -0.0f;
            if (trial % 5 == 0) g[(trial * 3) % n] = NAN;
            if (trial % 7 == 0) g[(trial * 5 + 1) % n] = -INFINITY; /* the generic gives NaN: -inf * 0 */
            v[k]->swiglu(y, g, u, n);
            int ok = 1;
            for (size_t j = 0; j < n; j++) {
                if (isnan(g[j]) || isinf(g[j])) {
                    ok &= isnan(y[j]) != 0;
                    continue;
                }
                double want = g[j] / (1 + exp(-(double)g[j])) * u[j];
                ok &= close_to(y[j], want, 1e-6 * fabs(want) + 1e-30);
            }
            check(ok, "%s swiglu, trial %d", v[k]->name, trial);
        }
    }
}

/* ---- the pool: same bits on 1, 2 and 3 threads ---- */

typedef struct {
    size_t n;
    int *owner;
} split_job;

static void split_task(void *arg, int i, int nt) {
    split_job *j = arg;
    size_t lo, hi;
    pool_split(j->n, 16, i, nt, &lo, &hi);
    for (size_t r = lo; r < hi; r++) j->owner[r] = i + 1;
}

typedef struct {
    pool_chunks ch;
    atomic_int *taken; /* per row: how many chunks held it */
} take_job;

static void take_task(void *arg, int i, int nt) {
    take_job *j = arg;
    size_t lo, hi;
    (void)i, (void)nt;
    while (pool_take(&j->ch, &lo, &hi)) {
        if (lo % j->ch.align || (hi % j->ch.align && hi != j->ch.n) || lo >= hi) atomic_fetch_add(&j->taken[0], 1000);
        for (size_t r = lo; r < hi; r++) atomic_fetch_add(&j->taken[r], 1);
    }
}

static void test_pool(const kern_ops **v, size_t nv) {
    pool *pools[4] = {NULL};
    char err[256];
    for (int t = 1; t <= 3; t++) {
        pools[t] = pool_new(t, err, sizeof err);
        check(pools[t] && pool_size(pools[t]) == t, "pool_new(%d): %s", t, pools[t] ? "wrong size" : err);
        if (!pools[t]) return;
    }
    /* every row owned by exactly one thread, boundaries on multiples of 16 */
    for (int t = 1; t <= 3; t++)
        for (size_t n = 0; n < 100; n += 7) {
            int owner[100] = {0};
            split_job j = {n, owner};
            for (int rep = 0; rep < 3; rep++) pool_run(pools[t], split_task, &j);
            int ok = 1;
            for (size_t r = 0; r < n; r++) ok &= owner[r] > 0 && (r == 0 || owner[r] == owner[r - 1] || r % 16 == 0);
            check(ok, "pool_split n=%zu over %d threads", n, t);
        }
    /* pool_take: every row in exactly one chunk, chunks on multiples of the alignment */
    for (int t = 1; t <= 3; t++)
        for (size_t n = 1; n < 5000; n = n * 3 + 1)
            for (size_t align = 1; align <= 16; align += 15) {
                take_job j;
                j.taken = calloc(n, sizeof *j.taken);
                pool_chunks_init(&j.ch, n, align, t);
                pool_run(pools[t], take_task, &j);
                int ok = 1;
                for (size_t r = 0; r < n; r++) ok &= atomic_load(&j.taken[r]) == 1;
                check(ok, "pool_take n=%zu align %zu over %d threads: every row once", n, align, t);
                free(j.taken);
            }
    static const size_t shapes[][3] = {{1, 256, 300}, {5, 200, 100}, {3, 130, 333}};
    for (size_t k = 0; k < nv; k++)
        for (st_dtype t = ST_F32; t <= ST_BF16; t++)
            for (size_t s = 0; s < 3; s++) {
                size_t n = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
                float *wf, *x = rand_vec(n * in), *y[4];
                weight w = {t, rand_weights(t, out * in, &wf)};
                for (int p = 0; p <= 3; p++) {
                    y[p] = malloc(n * out * 4);
                    kern_matmul(v[k], pools[p], y[p], x, w, n, in, out);
                }
                for (int p = 1; p <= 3; p++)
                    check(!memcmp(y[p], y[0], n * out * 4), "%s matmul %s %zux%zux%zu: %d threads differ from 1",
                          v[k]->name, dtype_name(t), n, in, out, p);
                /* and the same rows whatever the batch: row by row equals all at once */
                int same = 1;
                for (size_t i = 0; i < n; i++) {
                    kern_matmul(v[k], pools[2], y[1], x + i * in, w, 1, in, out);
                    same &= !memcmp(y[1], y[0] + i * out, out * 4);
                }
                check(same, "%s matmul %s %zux%zux%zu: n=1 rows differ from the batch", v[k]->name, dtype_name(t), n, in, out);
                for (int p = 0; p <= 3; p++) free(y[p]);
                free(x), free(wf), free((void *)w.data);
            }
    for (int t = 1; t <= 3; t++) pool_free(pools[t]);
}

/* ---- RoPE and YaRN against the formulas in double ---- */

static qwen_config rope_cfg(int yarn, int truncate) {
    qwen_config c = {.head_dim = 128, .rope_theta = 1e6};
    if (yarn) {
        c.yarn = 1;
        c.yarn_factor = 4;
        c.yarn_orig_max_pos = 32768;
        c.yarn_beta_fast = 32;
        c.yarn_beta_slow = 1;
        c.yarn_attn_factor = 0.1 * log(4.0) + 1;
        c.yarn_truncate = truncate;
    }
    return c;
}

/* inv_freq in double, straight from the formulas in transformers' rope utils. */
static void ref_inv_freq(const qwen_config *c, double *inv, double *scale) {
    size_t half = (size_t)c->head_dim / 2;
    double d = c->head_dim;
    *scale = c->yarn ? c->yarn_attn_factor : 1;
    double low = 0, high = 0;
    if (c->yarn) {
        low = d * log(c->yarn_orig_max_pos / (c->yarn_beta_fast * 2 * M_PI)) / (2 * log(c->rope_theta));
        high = d * log(c->yarn_orig_max_pos / (c->yarn_beta_slow * 2 * M_PI)) / (2 * log(c->rope_theta));
        if (c->yarn_truncate) low = floor(low), high = ceil(high);
        low = fmax(low, 0), high = fmin(high, d - 1);
    }
    for (size_t i = 0; i < half; i++) {
        double extrap = pow(c->rope_theta, -2.0 * (double)i / d);
        if (!c->yarn) {
            inv[i] = extrap;
            continue;
        }
        double ramp = fmin(fmax(((double)i - low) / (high - low), 0), 1);
        inv[i] = extrap / c->yarn_factor * ramp + extrap * (1 - ramp);
    }
}

static void test_rope(void) {
    /* Qwen3's YaRN at factor 4: dims below 23 keep their frequency, 40 and up are divided by 4 */
    qwen_config y = rope_cfg(1, 1);
    float inv[64], scale;
    kern_rope_freqs(&y, inv, &scale);
    check(fabs(scale - 1.1386294) < 1e-6, "yarn attention factor %g, want 1.1386", scale);
    int keep = 1, interp = 1;
    for (int i = 0; i <= 23; i++) keep &= inv[i] == 1.0f / (float)pow(1e6, 2.0 * i / 128);
    for (int i = 40; i < 64; i++) interp &= fabs(inv[i] * 4 / pow(1e6, -2.0 * i / 128) - 1) < 1e-6;
    check(keep, "yarn keeps the frequency of dims up to low = 23");
    check(interp, "yarn divides the frequency of dims from high = 40 by the factor");
    static const size_t positions[] = {0, 1, 7, 100, 4095, 40000};
    for (int cfgno = 0; cfgno < 3; cfgno++) {
        qwen_config c = rope_cfg(cfgno > 0, cfgno == 1);
        double dinv[64], dscale;
        ref_inv_freq(&c, dinv, &dscale);
        kern_rope_freqs(&c, inv, &scale);
        int ok = 1;
        for (size_t i = 0; i < 64; i++) ok &= fabs(inv[i] / dinv[i] - 1) < 3e-7;
        check(ok && fabs(scale - dscale) < 1e-7, "rope inv_freq, config %d", cfgno);
        size_t heads = 3, n = sizeof positions / sizeof *positions;
        float *x = rand_vec(n * heads * 128), *cs = malloc(64 * 4), *sn = malloc(64 * 4);
        float *orig = malloc(n * heads * 128 * 4);
        memcpy(orig, x, n * heads * 128 * 4);
        for (size_t p = 0; p < n; p++) { /* one position at a time, through the table */
            kern_rope_table(cs, sn, inv, scale, positions[p], 1, 64);
            kern_rope(x + p * heads * 128, cs, sn, 1, heads, 64);
        }
        double worst = 0;
        for (size_t p = 0; p < n; p++)
            for (size_t h = 0; h < heads; h++)
                for (size_t j = 0; j < 64; j++) {
                    const float *o = orig + (p * heads + h) * 128;
                    const float *g = x + (p * heads + h) * 128;
                    double a = (double)positions[p] * dinv[j], c0 = cos(a) * dscale, s0 = sin(a) * dscale;
                    double w0 = o[j] * c0 - o[j + 64] * s0, w1 = o[j + 64] * c0 + o[j] * s0;
                    /* the angle is f32 (as in HF): inv_freq's error (3e-7, checked above) and
                     * the product's rounding (2^-24), times |a|, on top of f32 rounding */
                    double tol = (2e-7 + fabs(a) * (3e-7 + 0x1p-24)) * dscale * (fabs(o[j]) + fabs(o[j + 64])) + 1e-7;
                    double e = fmax(fabs(g[j] - w0), fabs(g[j + 64] - w1)) / tol;
                    if (e > worst) worst = e;
                }
        check(worst <= 1, "rope vs double, config %d: error %.3g of the tolerance", cfgno, worst);
        /* a table of many positions equals the tables of one */
        float *cs4 = malloc(4 * 64 * 4), *sn4 = malloc(4 * 64 * 4);
        kern_rope_table(cs4, sn4, inv, scale, 4093, 4, 64);
        kern_rope_table(cs, sn, inv, scale, 4095, 1, 64);
        check(!memcmp(cs4 + 2 * 64, cs, 64 * 4) && !memcmp(sn4 + 2 * 64, sn, 64 * 4), "rope table rows, config %d", cfgno);
        free(x), free(cs), free(sn), free(orig), free(cs4), free(sn4);
    }
}

/* ---- attention against a naive double implementation ---- */

static void ref_attention(double *out, const float *q, const float *kc, const float *vc, size_t pos0, size_t n,
                          size_t nh, size_t nkv, size_t hd) {
    double *s = malloc((pos0 + n) * sizeof *s);
    for (size_t i = 0; i < n; i++)
        for (size_t h = 0; h < nh; h++) {
            size_t kvh = h / (nh / nkv), len = pos0 + i + 1;
            const float *qi = q + (i * nh + h) * hd;
            double m = -INFINITY, sum = 0;
            for (size_t t = 0; t < len; t++) {
                double d = 0;
                for (size_t j = 0; j < hd; j++) d += (double)qi[j] * kc[t * nkv * hd + kvh * hd + j];
                s[t] = d / sqrt((double)hd);
                m = fmax(m, s[t]);
            }
            for (size_t t = 0; t < len; t++) sum += s[t] = exp(s[t] - m);
            double *o = out + (i * nh + h) * hd;
            for (size_t j = 0; j < hd; j++) {
                o[j] = 0;
                for (size_t t = 0; t < len; t++) o[j] += s[t] / sum * vc[t * nkv * hd + kvh * hd + j];
            }
        }
    free(s);
}

static void test_attention(const kern_ops **v, size_t nv) {
    static const size_t cases[][5] = {/* pos0, n, n_heads, n_kv_heads, head_dim */
                                      {0, 1, 4, 2, 16}, {0, 7, 4, 2, 32},  {5, 3, 6, 3, 24},   {40, 1, 16, 8, 128},
                                      {300, 2, 4, 1, 128}, {0, 20, 2, 2, 8}, {1000, 1, 8, 8, 64},
                                      {3, 2, 18, 2, 16},  {0, 3, 20, 1, 8}}; /* groups of 9, 20 */
    pool *p3 = pool_new(3, NULL, 0);
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        size_t pos0 = cases[c][0], n = cases[c][1], nh = cases[c][2], nkv = cases[c][3], hd = cases[c][4];
        size_t len = pos0 + n;
        float *q = rand_vec(n * nh * hd), *kc = rand_vec(len * nkv * hd), *vc = rand_vec(len * nkv * hd);
        for (size_t i = 0; i < n * nh * hd; i++) q[i] *= 4; /* peaky enough that softmax matters */
        double *want = malloc(n * nh * hd * sizeof *want);
        float *got = malloc(n * nh * hd * 4), *got3 = malloc(n * nh * hd * 4);
        ref_attention(want, q, kc, vc, pos0, n, nh, nkv, hd);
        for (size_t k = 0; k < nv; k++) {
            kern_attention(v[k], NULL, got, q, kc, vc, pos0, n, nh, nkv, hd);
            kern_attention(v[k], p3, got3, q, kc, vc, pos0, n, nh, nkv, hd);
            double worst = 0;
            for (size_t i = 0; i < n * nh * hd; i++) worst = fmax(worst, fabs(got[i] - want[i]));
            check(worst <= 2e-6, "%s attention case %zu: max error %.3g", v[k]->name, c, worst);
            check(!memcmp(got, got3, n * nh * hd * 4), "%s attention case %zu: 3 threads differ from 1", v[k]->name, c);
            /* the last position alone (as decode takes it) gets the bits it got in the batch */
            size_t row = (n - 1) * nh * hd;
            kern_attention(v[k], p3, got3, q + row, kc, vc, pos0 + n - 1, 1, nh, nkv, hd);
            check(!memcmp(got + row, got3, nh * hd * 4), "%s attention case %zu: the last position alone differs",
                  v[k]->name, c);
        }
        /* f16 K/V: against the f32 attention over rows holding those f16s' values, the same
         * bits in every variant (each has its f16 scores and sums beside its f32 ones, or
         * takes both from the variant below it: the same sums) */
        /* rows per head in the f16 layout: a multiple of the block, not len */
        size_t cap = (len + 5 + KERN_KV_BLOCK - 1) / KERN_KV_BLOCK * KERN_KV_BLOCK;
        uint16_t *kv16 = malloc(2 * cap * nkv * hd * 2);
        kern_kv16_copy(v[0], kv16, kc, vc, cap, 0, 2 < len ? 2 : len, nkv, hd); /* in pieces, as decode makes them */
        kern_kv16_copy(v[0], kv16, kc, vc, cap, 2 < len ? 2 : len, len, nkv, hd);
        for (size_t t = 0; t < len; t++)
            for (size_t h = 0; h < nkv; h++)
                for (size_t j = 0; j < hd; j++) {
                    size_t i = (t * nkv + h) * hd + j;
                    size_t i16 = (2 * (h * cap + t / KERN_KV_BLOCK * KERN_KV_BLOCK) + t % KERN_KV_BLOCK) * hd + j;
                    kc[i] = kern_f16(kv16[i16]), vc[i] = kern_f16(kv16[i16 + KERN_KV_BLOCK * hd]);
                }
        for (size_t k = 0; k < nv; k++) {
            kern_attention(v[k], p3, got, q, kc, vc, pos0, n, nh, nkv, hd);
            kern_attention_f16(v[k], p3, got3, q, kv16, cap, pos0, n, nh, nkv, hd);
            double worst = 0;
            for (size_t i = 0; i < n * nh * hd; i++) worst = fmax(worst, fabs(got[i] - got3[i]));
            check(!memcmp(got, got3, n * nh * hd * 4),
                  "%s f16 attention case %zu: max difference %.3g from f32 over the same values", v[k]->name, c, worst);
            kern_attention_f16(v[k], NULL, got, q, kv16, cap, pos0, n, nh, nkv, hd);
            check(!memcmp(got, got3, n * nh * hd * 4), "%s f16 attention case %zu: 3 threads differ from 1", v[k]->name, c);
        }
        free(q), free(kc), free(vc), free(want), free(got), free(got3), free(kv16);
    }
    pool_free(p3);
}

/* kern_to_f16: exact cases, every f16 back to itself, every variant's bits (NaNs too) */
static void test_to_f16(const kern_ops **v, size_t nv) {
    static const struct { float x; uint16_t h; } cases[] = {
        {1.0f, 0x3c00}, {-2.0f, 0xc000}, {0.0f, 0x0000}, {-0.0f, 0x8000}, {65504.0f, 0x7bff},
        {65519.996f, 0x7bff}, {65520.0f, 0x7c00}, {1e10f, 0x7c00}, {-INFINITY, 0xfc00}, {INFINITY, 0x7c00},
        {0x1p-14f, 0x0400}, {0x1p-24f, 0x0001}, {0x1p-25f, 0x0000}, {0x1.8p-24f, 0x0002}, {0x1.4p-24f, 0x0001},
        {0x1.002p0f, 0x3c00}, {0x1.006p0f, 0x3c02}, {0x1.0021p0f, 0x3c01}, {0x1.ffcp-15f, 0x0400}, {1e-30f, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint16_t h;
        kern_to_f16(&h, &cases[i].x, 1);
        check(h == cases[i].h, "to_f16(%a) = 0x%04x, want 0x%04x", (double)cases[i].x, h, cases[i].h);
    }
    float nan = NAN;
    uint16_t h;
    kern_to_f16(&h, &nan, 1);
    check((h & 0x7e00) == 0x7e00, "to_f16(NaN) = 0x%04x, not a quiet NaN", h);
    int ok = 1;
    for (uint32_t b = 0; b < 0x10000; b++) {
        if ((b & 0x7c00) == 0x7c00 && (b & 0x3ff)) continue; /* NaN */
        float f = kern_f16((uint16_t)b);
        kern_to_f16(&h, &f, 1);
        ok &= h == b;
    }
    check(ok, "to_f16(f16 value) is that f16, for every one");
    size_t n = 4099;
    float *x = malloc(n * 4);
    uint16_t *want = malloc(n * 2), *got = malloc(n * 2);
    for (size_t i = 0; i < n; i++) {
        uint32_t b = (uint32_t)next(); /* any bits: NaNs, infinities, subnormals included */
        if (i % 2) b = (b & 0x80ffffffu) | (uint32_t)(100 + i % 60) << 23; /* most near f16's range */
        memcpy(x + i, &b, 4);
    }
    kern_to_f16(want, x, n);
    for (size_t k = 0; k < nv; k++) {
        v[k]->to_f16(got, x, n);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) bad += got[i] != want[i];
        check(!bad, "%s to_f16: %zu of %zu differ from generic", v[k]->name, bad, n);
    }
    free(x), free(want), free(got);
}

/* ---- the bf16a scheme: x rounded to bf16, times BF16 weights ---- */

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float of_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_to_bf16(const kern_ops **v, size_t nv) {
    /* VCVTNEPS2BF16's rule, case by case: ties to even, subnormals to a zero of their sign,
     * NaNs quiet with their sign and top payload, overflow to infinity */
    static const struct { uint32_t x; uint16_t h; } cases[] = {
        {0x3f800000, 0x3f80}, {0x3f808000, 0x3f80}, {0x3f818000, 0x3f82}, {0x3f808001, 0x3f81}, {0x3f807fff, 0x3f80},
        {0xbf818000, 0xbf82}, {0x00000000, 0x0000}, {0x80000000, 0x8000}, {0x00000001, 0x0000}, {0x807fffff, 0x8000},
        {0x007fffff, 0x0000}, {0x00800000, 0x0080}, {0x7f7f7fff, 0x7f7f}, {0x7f7f8000, 0x7f80}, {0xff7fffff, 0xff80},
        {0x7f800000, 0x7f80}, {0xff800000, 0xff80}, {0x7fc00000, 0x7fc0}, {0x7f800001, 0x7fc0}, {0xffa12345, 0xffe1},
        {0x7fbfffff, 0x7fff}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        float x = of_bits(cases[i].x);
        for (size_t k = 0; k < nv; k++) {
            uint16_t h;
            v[k]->to_bf16(&h, &x, 1);
            check(h == cases[i].h, "%s to_bf16(0x%08x) = 0x%04x, want 0x%04x", v[k]->name, cases[i].x, h, cases[i].h);
        }
    }
    size_t n = 4099;
    float *x = malloc(n * 4);
    uint16_t *want = malloc(n * 2), *got = malloc(n * 2);
    for (size_t i = 0; i < n; i++) x[i] = of_bits((uint32_t)next()); /* any bits */
    kern_to_bf16(want, x, n);
    int ok = 1;
    for (size_t i = 0; i < n; i++) { /* a bf16 within half a step of a finite normal x, or the rules above */
        uint32_t b = bits_of(x[i]), a = b & 0x7fffffffu;
        if (a > 0x7f800000u) ok &= (want[i] & 0x7fc0) == 0x7fc0 && (want[i] >> 15) == (b >> 31);
        else if (a < 0x00800000u) ok &= want[i] == (b >> 16 & 0x8000);
        else if (want[i] == ((b >> 16 & 0x8000) | 0x7f80)) ok &= a >= 0x7f7f8000u;
        else ok &= fabs((double)kern_bf16(want[i]) - x[i]) <= fabs((double)x[i]) * 0x1p-8;
    }
    check(ok, "kern_to_bf16 of any bits: nearest, subnormals zero, NaN quiet, overflow infinite");
    for (size_t k = 0; k < nv; k++)
        for (size_t len = 1; len <= 40; len += 13) { /* the tails: 1, 14, 27, 40 */
            size_t m = n - 40 + len;
            memset(got, 0xee, n * 2);
            v[k]->to_bf16(got, x, m);
            size_t bad = 0;
            for (size_t i = 0; i < m; i++) bad += got[i] != want[i];
            for (size_t i = m; i < n; i++) bad += got[i] != 0xeeee; /* nothing past m written */
            check(!bad, "%s to_bf16 n=%zu: %zu of %zu differ from generic", v[k]->name, m, bad, n);
        }
    free(x), free(want), free(got);
}

/* kern_matmul_bx of every variant against sum bf16(x) * w in double: within f32 summing's
 * bound ((in + 32) * 2^-24 of sum |x w|); NaN exactly where the double sum is; each row of y
 * the same bits whatever n and the pool; the rounded x reused only for the same x. */
static void test_matmul_bx(const kern_ops **v, size_t nv) {
    char err[256];
    pool *p3 = pool_new(3, err, sizeof err);
    check(p3 != NULL, "pool_new(3): %s", err);
    if (!p3) return;
    static const size_t shapes[][3] = {{1, 1, 5},  {3, 31, 7},    {5, 32, 9},     {4, 33, 16}, {7, 100, 13},
                                       {9, 64, 3}, {17, 1024, 37}, {2, 3072, 21}, {1, 2049, 70}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        size_t n = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
        float *wf, *x = rand_vec(n * in), *y = malloc(n * out * 4), *y1 = malloc(out * 4);
        for (size_t i = 0; i < n * in; i++) x[i] *= (float)(1 << (next() % 8)); /* a spread of magnitudes */
        if (s == 4) x[3 * in + 5] = NAN, x[6 * in] = INFINITY;               /* rows 3 and 6 */
        uint16_t *w = rand_weights(ST_BF16, out * in, &wf);
        if (s == 4) w[2 * in + 7] = 0x7f80; /* an infinite weight: NaN with a zero x, else infinite */
        if (s == 4) x[1 * in + 7] = 0;
        uint16_t *xb = malloc(n * in * 2);
        kern_to_bf16(xb, x, n * in);
        double *ref = malloc(n * out * sizeof *ref), *mag = malloc(n * out * sizeof *mag);
        for (size_t i = 0; i < n; i++)
            for (size_t o = 0; o < out; o++) {
                double a = 0, m = 0;
                for (size_t c = 0; c < in; c++) {
                    double t = (double)kern_bf16(xb[i * in + c]) * kern_bf16(w[o * in + c]);
                    a += t, m += fabs(t);
                }
                ref[i * out + o] = a, mag[i * out + o] = m;
            }
        void *scratch = NULL;
        if (posix_memalign(&scratch, 64, kern_qscratch(n, in))) abort();
        memset(scratch, 0, 64);
        weight wt = {ST_BF16, w};
        for (size_t k = 0; k < nv; k++) {
            kern_matmul_bx(v[k], p3, y, x, wt, NULL, n, in, out, scratch, 0);
            size_t bad = 0, nans = 0;
            for (size_t i = 0; i < n * out; i++) {
                if (isnan(ref[i]) || isinf(ref[i])) {
                    nans++;
                    bad += isnan(ref[i]) ? !isnan(y[i]) : y[i] != ref[i];
                } else
                    bad += !(fabs(y[i] - ref[i]) <= (double)(in + 32) * 0x1p-24 * mag[i] + 1e-30);
            }
            check(!bad, "%s matmul_bx %zux%zux%zu: %zu of %zu outputs off sum bf16(x) w", v[k]->name, n, in, out, bad,
                  n * out);
            if (s == 4) /* rows 3 and 6, and column 2 of the others */
                check(nans == 2 * out + n - 2, "%s matmul_bx: %zu NaN/Inf outputs, want %zu", v[k]->name, nans, 2 * out + n - 2);
            int same = 1;
            for (size_t i = 0; i < n; i++) {
                kern_matmul_bx(v[k], i % 2 ? NULL : p3, y1, x + i * in, wt, NULL, 1, in, out, scratch, 0);
                same &= !memcmp(y1, y + i * out, out * 4);
            }
            check(same, "%s matmul_bx %zux%zux%zu: rows alone (1 or 3 threads) differ from the batch", v[k]->name, n,
                  in, out);
            /* same: the last call's x (row n-1) serves again; another x is rounded anew */
            kern_matmul_bx(v[k], NULL, y1, x + (n - 1) * in, wt, NULL, 1, in, out, scratch, 1);
            same = !memcmp(y1, y + (n - 1) * out, out * 4);
            kern_matmul_bx(v[k], NULL, y1, x, wt, NULL, 1, in, out, scratch, 1);
            same &= !memcmp(y1, y, out * 4);
            check(same, "%s matmul_bx same: a reused or a new x", v[k]->name);
        }
        /* a weight that is not BF16 is kern_matmul_wp's */
        float *wf32 = malloc(out * in * 4), *y2 = malloc(n * out * 4);
        for (size_t i = 0; i < out * in; i++) wf32[i] = unif();
        kern_matmul_bx(v[nv - 1], p3, y, x, (weight){ST_F32, wf32}, NULL, n, in, out, scratch, 0);
        kern_matmul(v[nv - 1], p3, y2, x, (weight){ST_F32, wf32}, n, in, out);
        check(!memcmp(y, y2, n * out * 4), "matmul_bx of an F32 weight is kern_matmul's");
        free(wf32), free(y2), free(scratch), free(ref), free(mag), free(xb), free(w), free(wf), free(x), free(y),
            free(y1);
    }
    pool_free(p3);
}

/* ---- norms and SwiGLU ---- */

static void test_elementwise(void) {
    size_t n = 3, dim = 77;
    float *x = rand_vec(n * dim), *w = rand_vec(dim), *y = malloc(n * dim * 4);
    kern_rmsnorm(y, x, w, n, dim, 1e-6f);
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        double ss = 0;
        for (size_t j = 0; j < dim; j++) ss += (double)x[i * dim + j] * x[i * dim + j];
        double r = 1 / sqrt(ss / dim + 1e-6);
        for (size_t j = 0; j < dim; j++) ok &= close_to(y[i * dim + j], w[j] * x[i * dim + j] * r, 1e-6);
    }
    check(ok, "rmsnorm vs double");
    kern_rmsnorm(x, x, w, n, dim, 1e-6f);
    check(!memcmp(x, y, n * dim * 4), "rmsnorm in place");
    float *g = rand_vec(dim), *u = rand_vec(dim);
    for (size_t j = 0; j < dim; j++) g[j] *= 8;
    kern_swiglu(y, g, u, dim);
    ok = 1;
    for (size_t j = 0; j < dim; j++) ok &= close_to(y[j], g[j] / (1 + exp(-(double)g[j])) * u[j], 1e-6);
    check(ok, "swiglu vs double");
    free(x), free(w), free(y), free(g), free(u);
}

static void test_kv(void) {
    kv_cache kv;
    check(kv_alloc(&kv, 3, 5, 2) == 0 && kv.cap == 2 && kv.n == 0, "kv_alloc");
    for (int l = 0; l < 3; l++)
        for (size_t i = 0; i < 10; i++) kv.k[l][i] = (float)(l * 100 + i), kv.v[l][i] = -(float)(l * 100 + i);
    check(kv_reserve(&kv, 1) == 0 && kv.cap == 2, "kv_reserve smaller keeps the cache");
    check(kv_reserve(&kv, 1000) == 0 && kv.cap == 1000, "kv_reserve grows");
    int ok = 1;
    for (int l = 0; l < 3; l++)
        for (size_t i = 0; i < 10; i++) ok &= kv.k[l][i] == (float)(l * 100 + i) && kv.v[l][i] == -(float)(l * 100 + i);
    check(ok, "kv_reserve keeps the filled rows");
    kv.k[2][1000 * 5 - 1] = 1; /* the whole new capacity is there (ASan checks) */
    kv_free(&kv);
    check(kv.k == NULL && kv.cap == 0, "kv_free");
    kv_free(&kv);
}

/* ---- the CPU backend on a random tiny model, against a forward pass in double ---- */

typedef struct {
    qwen_config cfg;
    model m;
    layer_weights lw[2];
    void *store[64];
    float *wf[64]; /* widened copies, same order as store */
    size_t ns;
} tiny;

static weight tiny_weight(tiny *t, st_dtype dt, size_t count, int norm) {
    float *f;
    void *w = rand_weights(norm ? ST_F32 : dt, count, &f);
    if (norm) /* norm weights near 1, as trained ones are */
        for (size_t i = 0; i < count; i++) ((float *)w)[i] = f[i] = 1 + 0.2f * f[i];
    t->store[t->ns] = w;
    t->wf[t->ns++] = f;
    return (weight){norm ? ST_F32 : dt, w};
}

static void tiny_make(tiny *t, st_dtype dt, int yarn) {
    memset(t, 0, sizeof *t);
    qwen_config c = {.dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 32, .hidden_dim = 96,
                     .vocab_size = 50, .max_pos = 4096, .rms_eps = 1e-6f, .rope_theta = 1e4, .bos_id = -1, .eos_id = -1};
    if (yarn) {
        c.yarn = 1, c.yarn_factor = 4, c.yarn_orig_max_pos = 64, c.yarn_beta_fast = 32, c.yarn_beta_slow = 1;
        c.yarn_attn_factor = 0.1 * log(4.0) + 1, c.yarn_truncate = 1;
    }
    size_t dim = 64, q = 4 * 32, kvd = 2 * 32, hid = 96;
    t->m.cfg = c;
    t->m.layers = t->lw;
    t->m.embed = tiny_weight(t, dt, 50 * dim, 0);
    for (int l = 0; l < 2; l++) {
        layer_weights *w = &t->lw[l];
        w->attn_norm = tiny_weight(t, dt, dim, 1);
        w->wq = tiny_weight(t, dt, q * dim, 0);
        w->wk = tiny_weight(t, dt, kvd * dim, 0);
        w->wv = tiny_weight(t, dt, kvd * dim, 0);
        w->wo = tiny_weight(t, dt, dim * q, 0);
        w->q_norm = tiny_weight(t, dt, 32, 1);
        w->k_norm = tiny_weight(t, dt, 32, 1);
        w->ffn_norm = tiny_weight(t, dt, dim, 1);
        w->w_gate = tiny_weight(t, dt, hid * dim, 0);
        w->w_up = tiny_weight(t, dt, hid * dim, 0);
        w->w_down = tiny_weight(t, dt, dim * hid, 0);
    }
    t->m.final_norm = tiny_weight(t, dt, dim, 1);
    t->m.lm_head = t->m.embed; /* tied */
}

static void tiny_free(tiny *t) {
    for (size_t i = 0; i < t->ns; i++) free(t->store[i]), free(t->wf[i]);
}

static const float *wf_of(const tiny *t, weight w) {
    for (size_t i = 0; i < t->ns; i++)
        if (t->store[i] == w.data) return t->wf[i];
    return NULL;
}

static void d_rmsnorm(double *y, const double *x, const float *w, size_t dim, double eps) {
    double ss = 0;
    for (size_t j = 0; j < dim; j++) ss += x[j] * x[j];
    double r = 1 / sqrt(ss / dim + eps);
    for (size_t j = 0; j < dim; j++) y[j] = w[j] * x[j] * r;
}

static void d_matvec(double *y, const double *x, const float *w, size_t in, size_t out) {
    for (size_t o = 0; o < out; o++) {
        y[o] = 0;
        for (size_t k = 0; k < in; k++) y[o] += x[k] * w[o * in + k];
    }
}

/* Qwen3 over T positions in double (modeling_qwen3.py read line by line); logits (T, vocab). */
static void ref_forward(const tiny *t, const int *ids, size_t T, double *logits) {
    const qwen_config *c = &t->m.cfg;
    size_t dim = (size_t)c->dim, hd = (size_t)c->head_dim, nh = (size_t)c->n_heads, nkv = (size_t)c->n_kv_heads,
           hid = (size_t)c->hidden_dim, V = (size_t)c->vocab_size, half = hd / 2;
    double *h = calloc(T * dim, 8), *xn = malloc(dim * 8), *q = malloc(T * nh * hd * 8), *k = malloc(T * nkv * hd * 8),
           *v = malloc(T * nkv * hd * 8), *a = malloc(nh * hd * 8), *o = malloc(dim * 8), *g = malloc(hid * 8),
           *u = malloc(hid * 8), *s = malloc(T * 8), inv[64], scale;
    ref_inv_freq(c, inv, &scale);
    const float *E = wf_of(t, t->m.embed);
    for (size_t i = 0; i < T; i++)
        for (size_t j = 0; j < dim; j++) h[i * dim + j] = E[(size_t)ids[i] * dim + j];
    for (int l = 0; l < c->n_layers; l++) {
        const layer_weights *w = &t->lw[l];
        for (size_t i = 0; i < T; i++) {
            d_rmsnorm(xn, h + i * dim, wf_of(t, w->attn_norm), dim, c->rms_eps);
            d_matvec(q + i * nh * hd, xn, wf_of(t, w->wq), dim, nh * hd);
            d_matvec(k + i * nkv * hd, xn, wf_of(t, w->wk), dim, nkv * hd);
            d_matvec(v + i * nkv * hd, xn, wf_of(t, w->wv), dim, nkv * hd);
            for (size_t hh = 0; hh < nh + nkv; hh++) { /* q/k norm, then RoPE */
                double *r = hh < nh ? q + (i * nh + hh) * hd : k + (i * nkv + hh - nh) * hd;
                d_rmsnorm(r, r, wf_of(t, hh < nh ? w->q_norm : w->k_norm), hd, c->rms_eps);
                for (size_t j = 0; j < half; j++) {
                    double an = (double)i * inv[j], cs = cos(an) * scale, sn = sin(an) * scale;
                    double x0 = r[j], x1 = r[j + half];
                    r[j] = x0 * cs - x1 * sn;
                    r[j + half] = x1 * cs + x0 * sn;
                }
            }
        }
        for (size_t i = 0; i < T; i++) {
            for (size_t hh = 0; hh < nh; hh++) {
                size_t kvh = hh / (nh / nkv);
                double m = -INFINITY, sum = 0;
                for (size_t tt = 0; tt <= i; tt++) {
                    s[tt] = 0;
                    for (size_t j = 0; j < hd; j++) s[tt] += q[(i * nh + hh) * hd + j] * k[(tt * nkv + kvh) * hd + j];
                    s[tt] /= sqrt((double)hd);
                    m = fmax(m, s[tt]);
                }
                for (size_t tt = 0; tt <= i; tt++) sum += s[tt] = exp(s[tt] - m);
                for (size_t j = 0; j < hd; j++) {
                    a[hh * hd + j] = 0;
                    for (size_t tt = 0; tt <= i; tt++) a[hh * hd + j] += s[tt] / sum * v[(tt * nkv + kvh) * hd + j];
                }
            }
            d_matvec(o, a, wf_of(t, w->wo), nh * hd, dim);
            for (size_t j = 0; j < dim; j++) h[i * dim + j] += o[j];
            d_rmsnorm(xn, h + i * dim, wf_of(t, w->ffn_norm), dim, c->rms_eps);
            d_matvec(g, xn, wf_of(t, w->w_gate), dim, hid);
            d_matvec(u, xn, wf_of(t, w->w_up), dim, hid);
            for (size_t j = 0; j < hid; j++) g[j] = g[j] / (1 + exp(-g[j])) * u[j];
            d_matvec(o, g, wf_of(t, w->w_down), hid, dim);
            for (size_t j = 0; j < dim; j++) h[i * dim + j] += o[j];
        }
    }
    for (size_t i = 0; i < T; i++) {
        d_rmsnorm(xn, h + i * dim, wf_of(t, t->m.final_norm), dim, c->rms_eps);
        d_matvec(logits + i * V, xn, wf_of(t, t->m.lm_head), dim, V);
    }
    free(h), free(xn), free(q), free(k), free(v), free(a), free(o), free(g), free(u), free(s);
}

/* Run ids through the CPU backend: prefill pieces of `first` positions, then one at a time;
 * logits (T, vocab) of every position. */
static int run_backend_kv(const tiny *t, int threads, size_t max_batch, int kv_type, const int *ids, size_t T,
                          size_t first, float *logits) {
    char err[256];
    const backend *b = backend_find("cpu");
    backend_opts o = {.n_threads = threads, .max_batch = max_batch, .kv_type = kv_type};
    void *ctx = b->open(&t->m, &o, err, sizeof err);
    size_t dim = (size_t)t->m.cfg.dim, V = (size_t)t->m.cfg.vocab_size;
    float *x = malloc(T * dim * 4);
    kv_cache kv = {0};
    int rc = -1;
    if (!ctx || kv_alloc(&kv, t->m.cfg.n_layers, (size_t)t->m.cfg.n_kv_heads * t->m.cfg.head_dim, 1) < 0) goto out;
    for (size_t i = 0; i < T; i++)
        for (size_t j = 0; j < dim; j++) x[i * dim + j] = wf_of(t, t->m.embed)[(size_t)ids[i] * dim + j];
    if (forward(b, ctx, &t->m, x, first, &kv, logits, 1, err, sizeof err) < 0) goto out;
    for (size_t i = first; i < T; i++)
        if (forward(b, ctx, &t->m, x + i * dim, 1, &kv, logits + i * V, 0, err, sizeof err) < 0) goto out;
    rc = kv.n == T ? 0 : -1;
out:
    if (rc < 0) printf("backend: %s\n", err);
    kv_free(&kv);
    if (ctx) b->close(ctx);
    free(x);
    return rc;
}

static int run_backend(const tiny *t, int threads, size_t max_batch, const int *ids, size_t T, size_t first,
                       float *logits) {
    return run_backend_kv(t, threads, max_batch, KV_READ_AUTO, ids, T, first, logits);
}

/* Decode reading f16 K/V (KV_READ_F16): near f32's logits, the same bits whatever the threads,
 * and rows rewritten after their f16 copies were made (the cache cut back, other tokens
 * after the cut) are copied anew: the logits are a fresh run's. */
static void test_backend_f16(void) {
    enum { T = 23, FIRST = 5, CUT = 9 };
    size_t V = 50;
    int ids[T], ids2[T];
    for (size_t i = 0; i < T; i++) ids[i] = (int)(next() % 50), ids2[i] = i < CUT ? ids[i] : (int)(next() % 50);
    tiny t;
    tiny_make(&t, ST_F32, 0);
    float *f32 = malloc(T * V * 4), *f16 = malloc(T * V * 4), *f16t = malloc(T * V * 4), *fresh = malloc(T * V * 4),
          *cut = malloc(T * V * 4);
    int ok = run_backend_kv(&t, 1, 64, KV_READ_F32, ids, T, FIRST, f32) == 0 &&
             run_backend_kv(&t, 1, 64, KV_READ_F16, ids, T, FIRST, f16) == 0 &&
             run_backend_kv(&t, 3, 64, KV_READ_F16, ids, T, FIRST, f16t) == 0;
    check(ok, "backend f16 K/V: a run failed");
    double worst = 0, maxl = 0;
    for (size_t i = 0; ok && i < T * V; i++) worst = fmax(worst, fabs(f16[i] - f32[i])), maxl = fmax(maxl, fabs(f32[i]));
    check(ok && worst > 0 && worst <= 2e-3 * maxl, "backend f16 K/V: max|d| %.3g from f32's, of max %.3g", worst, maxl);
    check(ok && !memcmp(f16, f16t, T * V * 4), "backend f16 K/V: 3 threads differ");
    check(ok && !memcmp(f16, f32, FIRST * V * 4), "backend f16 K/V: a prefill (n > 1) reads f32 K/V");
    /* one context: ids to the end, cut back to CUT, ids2 from there */
    char err[256];
    backend_opts o = {.n_threads = 2, .max_batch = 64, .kv_type = KV_READ_F16};
    void *ctx = backend_cpu.open(&t.m, &o, err, sizeof err);
    size_t dim = (size_t)t.m.cfg.dim;
    float *x = malloc(dim * 4);
    kv_cache kv = {0};
    ok = ctx && kv_alloc(&kv, t.m.cfg.n_layers, (size_t)t.m.cfg.n_kv_heads * t.m.cfg.head_dim, 1) == 0;
    for (size_t i = 0; ok && i < 2 * T - CUT; i++) {
        if (i == T) kv.n = CUT; /* as model.c and forward_test do: no kv_written */
        size_t p = i < T ? i : i - T + CUT;
        memcpy(x, wf_of(&t, t.m.embed) + (size_t)(i < T ? ids : ids2)[p] * dim, dim * 4);
        ok = forward(&backend_cpu, ctx, &t.m, x, 1, &kv, cut + p * V, 0, err, sizeof err) == 0;
    }
    check(ok && kv.n == T, "backend f16 K/V: the cut run failed");
    run_backend_kv(&t, 2, 64, KV_READ_F16, ids2, T, 1, fresh);
    check(ok && !memcmp(cut + CUT * V, fresh + CUT * V, (T - CUT) * V * 4),
          "backend f16 K/V: after a cut, other tokens' logits are not a fresh run's");
    kv_free(&kv);
    if (ctx) backend_cpu.close(ctx);
    free(x), free(f32), free(f16), free(f16t), free(fresh), free(cut);
    tiny_free(&t);
}

static void test_backend(void) {
    enum { T = 23 };
    int ids[T];
    for (size_t i = 0; i < T; i++) ids[i] = (int)(next() % 50);
    check(backend_find("cpu") == &backend_cpu && !backend_find("npu"), "backend_find");
    for (st_dtype dt = ST_F32; dt <= ST_BF16; dt++)
        for (int yarn = 0; yarn < 2; yarn++) {
            tiny t;
            tiny_make(&t, dt, yarn);
            size_t V = 50;
            double *want = malloc(T * V * 8);
            float *got = malloc(T * V * 4), *other = malloc(T * V * 4);
            ref_forward(&t, ids, T, want);
            if (run_backend(&t, 1, 64, ids, T, T, got) < 0) {
                check(0, "backend %s yarn %d: forward failed", dtype_name(dt), yarn);
                continue;
            }
            for (size_t i = 0; i < T; i++) { /* HF's bar: cosine >= 0.99999, max|d| <= 1e-4 max|logit| */
                double dot = 0, ng = 0, nw = 0, maxd = 0, maxl = 0;
                for (size_t j = 0; j < V; j++) {
                    double g = got[i * V + j], w = want[i * V + j];
                    dot += g * w, ng += g * g, nw += w * w;
                    maxd = fmax(maxd, fabs(g - w)), maxl = fmax(maxl, fabs(w));
                }
                double cosv = dot / sqrt(ng * nw);
                check(cosv >= 0.99999 && maxd <= 1e-4 * maxl, "backend %s yarn %d pos %zu: cosine %.7f, max|d| %.3g of max %.3g",
                      dtype_name(dt), yarn, i, cosv, maxd, maxl);
            }
            /* the same logits whatever the threads, pieces and decode steps */
            static const size_t runs[][3] = {{2, 64, 23}, {3, 64, 23}, {2, 5, 23}, {1, 7, 10}, {3, 1, 1}, {2, 4, 2}};
            for (size_t r = 0; r < sizeof runs / sizeof *runs; r++) {
                int ok = run_backend(&t, (int)runs[r][0], runs[r][1], ids, T, runs[r][2], other) == 0;
                double worst = 0;
                for (size_t i = 0; ok && i < T * V; i++) worst = fmax(worst, fabs(other[i] - got[i]));
                check(ok && worst == 0, "backend %s yarn %d: %zu threads, max_batch %zu, prefill %zu: differs by %.3g",
                      dtype_name(dt), yarn, runs[r][0], runs[r][1], runs[r][2], worst);
            }
            free(want), free(got), free(other);
            tiny_free(&t);
        }
}

/* ---- bench ---- */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    const uint64_t *buf;
    size_t n;
    uint64_t sink[4 * 8]; /* one cache line per thread */
} read_job;

/* The memory bandwidth one thread can draw: its slab read as 4 streams in lockstep with
 * a software prefetch 1 KiB ahead (measured best on the development machine, as one
 * stream without prefetch gets ~20% less), xor-summed so the loads cannot be dropped. */
static void read_task(void *arg, int i, int nt) {
    read_job *j = arg;
    size_t lo, hi;
    pool_split(j->n, 4096, i, nt, &lo, &hi);
    size_t per = (hi - lo) / 4 / 8 * 8;
    uint64_t s[4] = {0};
    for (size_t k = 0; k < per; k += 8)
        for (int q = 0; q < 4; q++) {
            const uint64_t *p = j->buf + lo + (size_t)q * per + k;
            __builtin_prefetch(p + 128);
            s[q] += (p[0] ^ p[4]) + (p[1] ^ p[5]) + (p[2] ^ p[6]) + (p[3] ^ p[7]);
        }
    j->sink[i % 4 * 8] += s[0] + s[1] + s[2] + s[3];
}

static int bench(int max_threads) {
    const kern_ops *k = kern_best();
    printf("kernels: %s\n", k->name);
    /* read bandwidth: 256 MiB, far beyond the caches */
    size_t nbuf = (size_t)1 << 25;
    uint64_t *buf = malloc(nbuf * 8);
    for (size_t i = 0; i < nbuf; i++) buf[i] = i * 0x9e3779b97f4a7c15ull;
    for (int t = 1; t <= max_threads; t++) {
        pool *p = pool_new(t, NULL, 0);
        read_job j = {buf, nbuf, {0}};
        pool_run(p, read_task, &j);
        double best = 1e9;
        for (int rep = 0; rep < 20; rep++) {
            double t0 = now();
            pool_run(p, read_task, &j);
            best = fmin(best, now() - t0);
        }
        printf("memory read: %d thread%s: %.1f GB/s\n", t, t > 1 ? "s" : "", nbuf * 8 / best / 1e9);
        pool_free(p);
    }
    free(buf);
    /* Qwen3-0.6B decode shapes, bf16; `cold` rotates over copies totalling > 512 MiB, as
     * a decode step walks 28 layers of weights that the L3 cache cannot hold. Every
     * figure is the best of several runs, so that other load on the machine drops out. */
    static const struct { size_t out, in; const char *what; } shapes[] = {
        {3072, 1024, "gate/up"}, {1024, 3072, "down"}, {2048, 1024, "q"}, {151936, 1024, "lm_head"}};
    size_t dim_max = 3072;
    float *x = rand_vec(64 * dim_max), *y = malloc(64 * 151936 * 4);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        size_t out = shapes[s].out, in = shapes[s].in, bytes = out * in * 2;
        size_t copies = (512u << 20) / bytes + 1;
        uint16_t **w = malloc(copies * sizeof *w);
        for (size_t c = 0; c < copies; c++) {
            w[c] = malloc(bytes);
            for (size_t i = 0; i < out * in; i++) w[c][i] = to_bf16(unif() * 0.05f);
        }
        for (int t = 1; t <= max_threads; t++) {
            pool *p = pool_new(t, NULL, 0);
            for (int hot = 0; hot < 2; hot++) {
                double best = 1e9;
                for (size_t r = 0; r < (hot ? 50 : copies * 4); r++) {
                    double t0 = now();
                    kern_matmul(k, p, y, x, (weight){ST_BF16, w[hot ? 0 : r % copies]}, 1, in, out);
                    best = fmin(best, now() - t0);
                }
                printf("matmul bf16 %zux%zu (%s) n=1 %s, %d thread%s: %.3f ms, %.1f GB/s\n", out, in, shapes[s].what,
                       hot ? "hot " : "cold", t, t > 1 ? "s" : "", best * 1e3, bytes / best / 1e9);
                if (out == 151936) break; /* 311 MB: it is cold either way */
            }
            if (out != 151936) { /* prefill: 64 positions, bound by compute */
                double best = 1e9;
                for (int r = 0; r < 5; r++) {
                    double t0 = now();
                    kern_matmul(k, p, y, x, (weight){ST_BF16, w[0]}, 64, in, out);
                    best = fmin(best, now() - t0);
                }
                printf("matmul bf16 %zux%zu (%s) n=64, %d thread%s: %.3f ms, %.1f GFLOP/s\n", out, in, shapes[s].what, t,
                       t > 1 ? "s" : "", best * 1e3, 2.0 * 64 * out * in / best / 1e9);
            }
            pool_free(p);
        }
        for (size_t c = 0; c < copies; c++) free(w[c]);
        free(w);
    }
    free(x), free(y);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "bench")) return bench(argc > 2 ? atoi(argv[2]) : 2);
    const kern_ops *v[KERN_VARIANTS];
    size_t nv = kern_variants(v, KERN_VARIANTS);
    printf("variants:");
    for (size_t i = 0; i < nv; i++) printf(" %s", v[i]->name);
    printf(" (best %s)\n", kern_best()->name);
    test_convert();
    test_matmul_variants(v, nv);
    test_scores_accum(v, nv);
    test_pairs(v, nv);
    test_exps(v, nv);
    test_swiglu(v, nv);
    test_rmsnorm(v, nv);
    test_pool(v, nv);
    test_rope();
    test_attention(v, nv);
    test_to_f16(v, nv);
    test_to_bf16(v, nv);
    test_matmul_bx(v, nv);
    test_backend_f16();
    test_elementwise();
    test_kv();
    test_backend();
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}

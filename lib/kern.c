/* kern: the generic (plain C) kernels, the reference every ISA variant is tested against,
 * the one place that picks a variant for this CPU, and the kernels that split work over
 * the thread pool. See kern.h for the numerics. */
#include "kern.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "quant.h"

/* The ISA variants (kern_avx2.c, kern_avx512.c, kern_vnni.c, kern_bf16.c) exist only on x86. */
#if defined(__x86_64__) || defined(__i386__)
#define KERN_X86 1
#include <cpuid.h>
extern const kern_ops kern_avx2, kern_avx512, kern_vnni, kern_bf16dot;

/* CPUID.1:ECX bit 29; asked directly because older clang's __builtin_cpu_supports does
 * not know "f16c". */
static int has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1);
}
#endif

/* The AArch64 variants (kern_neon.c): Advanced SIMD is in every AArch64 CPU; the
 * dot-product extension (SDOT) is asked of the kernel's hwcaps. */
#if defined(__aarch64__)
#define KERN_ARM 1
#include <sys/auxv.h>
extern const kern_ops kern_neon, kern_neon_dot;
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#endif

float kern_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float kern_f16(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (e == 0x1f) u = sign | 0x7f800000u | man << 13;  /* inf, nan */
    else if (e) u = sign | (e + 112) << 23 | man << 13; /* rebias 15 -> 127 */
    else {                                              /* zero, subnormal: man * 2^-24 */
        float f = (float)man * 0x1p-24f;
        return sign ? -f : f;
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint16_t to_f16_1(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000, a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00 | (a >> 13 & 0x3ff)); /* NaN, made quiet */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);                     /* 65520 and up: inf */
    if (a >= 0x38800000u) /* normal: round the 13 bits dropped to nearest even, rebias 127 -> 15 */
        return (uint16_t)(sign | (a + 0xfff + (a >> 13 & 1) - 0x38000000u) >> 13);
    /* subnormal or zero: a multiple of 2^-24, rounded to nearest even (the scaling is exact) */
    return (uint16_t)(sign | (uint32_t)lrintf(fabsf(f) * 0x1p24f));
}

void kern_to_f16(uint16_t *h, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) h[i] = to_f16_1(x[i]);
}

/* Intel's pseudo-code for VCVTNEPS2BF16 (the avx512bf16 variant runs the instruction). */
static inline uint16_t to_bf16_1(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t a = u & 0x7fffffffu, sign = u >> 16 & 0x8000;
    uint16_t r = (uint16_t)((u + 0x7fffu + (u >> 16 & 1)) >> 16);
    r = a > 0x7f800000u ? (uint16_t)(u >> 16 | 0x40) : a == 0x7f800000u ? (uint16_t)(u >> 16) : r;
    return a < 0x00800000u ? (uint16_t)sign : r;
}

void kern_to_bf16(uint16_t *h, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) h[i] = to_bf16_1(x[i]);
}

/* Four partial sums: independent chains for the CPU, the same result on every run. */
static float dot_f32(const float *x, const float *w, size_t in) {
    float s[4] = {0};
    size_t k = 0;
    for (; k + 4 <= in; k += 4)
        for (int j = 0; j < 4; j++) s[j] += x[k + j] * w[k + j];
    for (; k < in; k++) s[0] += x[k] * w[k];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

static float dot_f16(const float *x, const uint16_t *w, size_t in) {
    float s[4] = {0};
    size_t k = 0;
    for (; k + 4 <= in; k += 4)
        for (int j = 0; j < 4; j++) s[j] += x[k + j] * kern_f16(w[k + j]);
    for (; k < in; k++) s[0] += x[k] * kern_f16(w[k]);
    return (s[0] + s[1]) + (s[2] + s[3]);
}

static float dot_bf16(const float *x, const uint16_t *w, size_t in) {
    float s[4] = {0};
    size_t k = 0;
    for (; k + 4 <= in; k += 4)
        for (int j = 0; j < 4; j++) s[j] += x[k + j] * kern_bf16(w[k + j]);
    for (; k < in; k++) s[0] += x[k] * kern_bf16(w[k]);
    return (s[0] + s[1]) + (s[2] + s[3]);
}

/* Row o of W against every row of x while it is in L1. */
static void matmul_f32(float *y, const float *x, const void *w, size_t n, size_t in, size_t out,
                       size_t o0, size_t o1) {
    for (size_t o = o0; o < o1; o++)
        for (size_t i = 0; i < n; i++) y[i * out + o] = dot_f32(x + i * in, (const float *)w + o * in, in);
}

static void matmul_f16(float *y, const float *x, const void *w, size_t n, size_t in, size_t out,
                       size_t o0, size_t o1) {
    for (size_t o = o0; o < o1; o++)
        for (size_t i = 0; i < n; i++) y[i * out + o] = dot_f16(x + i * in, (const uint16_t *)w + o * in, in);
}

static void matmul_bf16(float *y, const float *x, const void *w, size_t n, size_t in, size_t out,
                        size_t o0, size_t o1) {
    for (size_t o = o0; o < o1; o++)
        for (size_t i = 0; i < n; i++) y[i * out + o] = dot_bf16(x + i * in, (const uint16_t *)w + o * in, in);
}

static void scores(float *s, const float *q, const float *k, size_t n, size_t stride, size_t hd) {
    for (size_t t = 0; t < n; t++) s[t] = dot_f32(q, k + t * stride, hd);
}

static void scores16(float *s, const float *q, const uint16_t *k, size_t n, size_t stride, size_t hd) {
    for (size_t t = 0; t < n; t++) s[t] = dot_f16(q, k + t * stride, hd);
}

static void accum16(float *o, const float *p, const uint16_t *v, size_t n, size_t stride, size_t hd) {
    for (size_t t = 0; t < n; t++)
        for (size_t j = 0; j < hd; j++) o[j] += p[t] * kern_f16(v[t * stride + j]);
}

static float exps(float *s, size_t n, float m) {
    float sum = 0;
    for (size_t t = 0; t < n; t++) {
        s[t] = expf(s[t] - m);
        sum += s[t];
    }
    return sum;
}

static void accum(float *o, const float *p, const float *v, size_t n, size_t stride, size_t hd) {
    for (size_t t = 0; t < n; t++)
        for (size_t j = 0; j < hd; j++) o[j] += p[t] * v[t * stride + j];
}

/* ---- quantized weights: the reference kernels (quant.h has the layouts) ---- */

/* Q8 (w8a16 with int16 activations per block of 32): per block b, S_b = sum h*q exact in int32
 * (|S| <= 32 * 32767 * 128 < 2^31), then y = sum_b (hs_b * s) * S_b in f32, blocks in
 * order; s the row's scale. (float)S rounds where |S| > 2^24: the panels convert the same S
 * (its bits); the tiles convert partial sums and add in another order. */
static void qmatmul_q8(float *y, const float *x, const kern_xq *xq, const qweight *w, size_t n, size_t in,
                       size_t out, size_t o0, size_t o1) {
    (void)x;
    size_t nb = in / 32;
    for (size_t o = o0; o < o1; o++) {
        const int8_t *q = (const int8_t *)w->data + o * in;
        float sc = ((const float *)w->scales)[o];
        for (size_t i = 0; i < n; i++) {
            const int16_t *h = xq->h + i * in;
            const float *hs = xq->hs + i * nb;
            float acc = 0;
            for (size_t b = 0; b < nb; b++) {
                int32_t S = 0;
                for (size_t k = b * 32; k < b * 32 + 32; k++) S += h[k] * q[k];
                acc += (hs[b] * sc) * (float)S;
            }
            y[i * out + o] = acc;
        }
    }
}

/* Q4 (w4a8 with int8 activations per block of 32, as llama.cpp's Q4_0 x Q8_0): per block b,
 * S_b = sum h*q exact in int32 (|S| <= 32 * 127 * 8), then y = sum_b (hs_b * d) * S_b in
 * f32, blocks in order; d the f16 scale of the block's group. */
static void qmatmul_q4(float *y, const float *x, const kern_xq *xq, const qweight *w, size_t n, size_t in,
                       size_t out, size_t o0, size_t o1) {
    (void)x;
    size_t ng = in / w->group, nb = in / 32, gb = w->group / 32;
    for (size_t o = o0; o < o1; o++) {
        const uint8_t *nib = (const uint8_t *)w->data + o * in / 2;
        const uint16_t *d = (const uint16_t *)w->scales + o * ng;
        for (size_t i = 0; i < n; i++) {
            const int16_t *h = xq->h + i * in;
            const float *hs = xq->hs + i * nb;
            float acc = 0;
            for (size_t b = 0; b < nb; b++) {
                int32_t S = 0;
                for (size_t k = b * 32; k < b * 32 + 32; k++) S += h[k] * quant_nib(nib, k);
                acc += (hs[b] * kern_f16(d[b / gb])) * (float)S;
            }
            y[i * out + o] = acc;
        }
    }
}

/* 8DA4W, torchao's math with integer dot products: y = sx * sum_g s_g * G_g, G_g =
 * sum_{k in g} (xq_k - zp) * q_k exact in int32, groups summed in f32 in order. Equal to
 * F.linear((xq-zp)*sx, q*s) up to the order of f32 rounding. */
static void qmatmul_8da4w(float *y, const float *x, const kern_xq *xq, const qweight *w, size_t n, size_t in,
                          size_t out, size_t o0, size_t o1) {
    (void)x;
    size_t ng = in / 32;
    for (size_t o = o0; o < o1; o++) {
        const uint8_t *nib = (const uint8_t *)w->data + o * in / 2;
        const float *sg = (const float *)w->scales + o * ng;
        for (size_t i = 0; i < n; i++) {
            const int8_t *q = xq->q + i * in;
            int32_t zp = xq->zp[i];
            float acc = 0;
            for (size_t g = 0; g < ng; g++) {
                int32_t G = 0;
                for (size_t k = g * 32; k < g * 32 + 32; k++) G += (q[k] - zp) * quant_nib(nib, k);
                acc += sg[g] * (float)G;
            }
            y[i * out + o] = xq->scale[i] * acc;
        }
    }
}

/* 8DA8W: y = (sx * s) * S, S = sum (xq - zp) * q over the whole row, exact in int32
 * (|S| <= in * 255 * 128 < 2^31 for in <= 65536, which quant_apply checks), converted
 * once: every variant, tiles and panels, gives these bits. */
static void qmatmul_8da8w(float *y, const float *x, const kern_xq *xq, const qweight *w, size_t n, size_t in,
                          size_t out, size_t o0, size_t o1) {
    (void)x;
    for (size_t o = o0; o < o1; o++) {
        const int8_t *wq = (const int8_t *)w->data + o * in;
        float s = ((const float *)w->scales)[o];
        for (size_t i = 0; i < n; i++) {
            const int8_t *q = xq->q + i * in;
            int32_t zp = xq->zp[i], S = 0;
            for (size_t k = 0; k < in; k++) S += (q[k] - zp) * wq[k];
            y[i * out + o] = (xq->scale[i] * s) * (float)S;
        }
    }
}

/* Half to even for |v| < 2^22: 1.5*2^23 + v has no fraction bits, and the add rounds to
 * nearest even (the build never enables -ffast-math, which could fold this away). */
static float rne(float v) { return (v + 12582912.0f) - 12582912.0f; }

void kern_quant_act(int8_t *q, float *scale, int32_t *zp, const float *x, size_t in) {
    float mn = 0, mx = 0, bad = 0;
    for (size_t k = 0; k < in; k++) {
        mn = fminf(mn, x[k]);
        mx = fmaxf(mx, x[k]);
        bad += x[k] * 0; /* NaN if any x is NaN or infinite */
    }
    if (bad != 0 || bad != bad) {
        memset(q, 0, in);
        *scale = NAN;
        *zp = 0;
        return;
    }
    float s = fmaxf((mx - mn) / 255.0f, FLT_MIN), id = 1.0f / s;
    float z = -128.0f - rne(fmaxf(mn / s, -1e6f));
    int32_t zi = (int32_t)(z < -128 ? -128 : z > 127 ? 127 : z);
    for (size_t k = 0; k < in; k++) {
        float v = x[k] * id;
        v = v > 512 ? 512 : v < -512 ? -512 : v; /* clamp(rne(v)) as rne of the clamped v */
        int32_t t = (int32_t)rne(v) + zi;
        q[k] = (int8_t)(t < -128 ? -128 : t > 127 ? 127 : t);
    }
    *scale = s;
    *zp = zi;
}

void kern_quant_blocks(int16_t *h, uint8_t *u, float *hs, const float *x, size_t in, int qmax) {
    for (size_t b = 0; b < in / 32; b++, x += 32, h += 32) {
        float amax = 0, bad = 0, m = (float)qmax;
        for (size_t k = 0; k < 32; k++) {
            amax = fmaxf(amax, fabsf(x[k]));
            bad += x[k] * 0;
        }
        float d = amax / m;
        hs[b] = bad != 0 || bad != bad ? NAN : d;
        for (size_t k = 0; k < 32; k++) {
            float v = hs[b] > 0 ? x[k] / d : 0;
            v = v > m ? m : v < -m ? -m : v;
            h[k] = (int16_t)rne(v);
        }
        if (u)
            for (size_t k = 0; k < 32; k++) u[b * 32 + k] = (uint8_t)(h[k] + 128);
    }
}

/* With u = q + 128 and h = q - zp, as kern_ops.quant_act. */
static void quant_act(int8_t *q, uint8_t *u, int16_t *h, float *scale, int32_t *zp, const float *x, size_t in) {
    kern_quant_act(q, scale, zp, x, in);
    for (size_t k = 0; k < in; k++) u[k] = (uint8_t)(q[k] ^ 0x80), h[k] = (int16_t)(q[k] - *zp);
}

static const kern_ops kern_generic = {
    .name = "generic",
    .matmul = {[ST_F32] = matmul_f32, [ST_F16] = matmul_f16, [ST_BF16] = matmul_bf16},
    .qmatmul = {[WQ_Q8] = qmatmul_q8, [WQ_Q4] = qmatmul_q4, [WQ_8DA4W] = qmatmul_8da4w, [WQ_8DA8W] = qmatmul_8da8w},
    .scores = scores,
    .accum = accum,
    .scores16 = scores16,
    .accum16 = accum16,
    .to_f16 = kern_to_f16,
    .to_bf16 = kern_to_bf16,
    .exps = exps,
    .swiglu = kern_swiglu,
    .rmsnorm = kern_rmsnorm,
    .quant_act = quant_act,
    .quant_blocks = kern_quant_blocks,
};

/* The variants this CPU runs, as written. */
static size_t raw_variants(const kern_ops **v, size_t max) {
    size_t n = 0;
    if (n < max) v[n++] = &kern_generic;
#ifdef KERN_X86
    /* avx2 variant: AVX2 + FMA + F16C (Haswell, Zen and later) */
    if (n < max && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c())
        v[n++] = &kern_avx2;
    if (n < max && __builtin_cpu_supports("avx512f")) v[n++] = &kern_avx512;
    /* avx512vnni variant: the panels' integer dot products (Ice Lake, Zen 4 and later) */
    if (n < max && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && v[n - 1] == &kern_avx512)
        v[n++] = &kern_vnni;
    /* avx512bf16 variant: VDPBF16PS for the bf16a scheme (Cooper Lake, Zen 4 and later) */
    if (n < max && __builtin_cpu_supports("avx512bf16") && v[n - 1] == &kern_vnni) v[n++] = &kern_bf16dot;
#endif
#ifdef KERN_ARM
    if (n < max) v[n++] = &kern_neon;
    if (n < max && (getauxval(AT_HWCAP) & HWCAP_ASIMDDP)) v[n++] = &kern_neon_dot;
#endif
    return n;
}

/* The variants as run: each one's entries, and where it has none (NULL) those of the
 * variant below it, so that an AVX-512 CPU runs AVX2's quantized kernels, quantizers,
 * exp, attention and panels, which kern_avx512.c does not repeat (and kern_vnni.c, which
 * has only panels, the matmul of the variants below; kern_bf16.c has only matmul_bx and
 * to_bf16). Built once. */
static kern_ops merged[KERN_VARIANTS];
static size_t n_merged;
static pthread_once_t merge_once = PTHREAD_ONCE_INIT;

static void merge(void) {
    const kern_ops *raw[KERN_VARIANTS];
    n_merged = raw_variants(raw, KERN_VARIANTS);
    for (size_t i = 0; i < n_merged; i++) {
        kern_ops *m = &merged[i];
        *m = *raw[i];
        if (i == 0) continue;
        const kern_ops *b = &merged[i - 1];
        for (int t = 0; t < 3; t++)
            if (!m->matmul[t]) m->matmul[t] = b->matmul[t];
        if (!m->matmul_bx) m->matmul_bx = b->matmul_bx;
        for (int t = 0; t < WQ_N; t++)
            if (!m->qmatmul[t]) m->qmatmul[t] = b->qmatmul[t];
        /* the two-query forms only with the one-query forms they must match */
        if (!m->scores) m->scores = b->scores, m->scores2 = b->scores2;
        if (!m->accum) m->accum = b->accum, m->accum2 = b->accum2;
        if (!m->exps) m->exps = b->exps;
        if (!m->swiglu) m->swiglu = b->swiglu;
        if (!m->rmsnorm) m->rmsnorm = b->rmsnorm;
        if (!m->quant_act) m->quant_act = b->quant_act;
        if (!m->quant_blocks) m->quant_blocks = b->quant_blocks;
        for (int t = 0; t < WQ_N; t++)
            if (!m->panel[t]) m->panel[t] = b->panel[t];
        if (!m->scores16) m->scores16 = b->scores16, m->scores2_16 = b->scores2_16;
        if (!m->accum16) m->accum16 = b->accum16, m->accum2_16 = b->accum2_16;
        if (!m->to_f16) m->to_f16 = b->to_f16;
        if (!m->to_bf16) m->to_bf16 = b->to_bf16;
    }
}

size_t kern_variants(const kern_ops **v, size_t max) {
    pthread_once(&merge_once, merge);
    size_t n = n_merged < max ? n_merged : max;
    for (size_t i = 0; i < n; i++) v[i] = &merged[i];
    return n;
}

const kern_ops *kern_best(void) {
    const kern_ops *v[KERN_VARIANTS];
    return v[kern_variants(v, KERN_VARIANTS) - 1];
}

/* ---- matmul over the pool: each thread owns a slab of W's rows (of y's columns) ---- */

typedef struct {
    kern_matmul_fn *fn;
    kern_matmul_bx_fn *bx; /* instead of fn, on xb */
    float *y;
    const float *x;
    const uint16_t *xb;
    const void *w;
    size_t n, in, out;
    pool_chunks *ch; /* or NULL: pool_split's shares */
} matmul_job;

static void matmul_run(const matmul_job *j, size_t lo, size_t hi) {
    if (j->bx) j->bx(j->y, j->xb, j->w, j->n, j->in, j->out, lo, hi);
    else j->fn(j->y, j->x, j->w, j->n, j->in, j->out, lo, hi);
}

/* A float decode step's rows go out as pool_take's chunks, 16-row aligned as pool_split's
 * (bf16 tg +2-5%: the threads' streams of W rarely finish together); a prefill's in
 * pool_split's shares, which its slabs of W are cut from. The panels keep pool_split's
 * shares: chunks cost q4 decode 3%. */
static pool_chunks *chunks_for(pool_chunks *c, const pool *p, size_t n, size_t out) {
    int nt = pool_size(p);
    if (n >= 4 || nt == 1) return NULL;
    pool_chunks_init(c, out, 16, nt);
    return c;
}

static void matmul_task(void *arg, int i, int nt) {
    const matmul_job *j = arg;
    size_t lo, hi;
    if (j->ch) {
        while (pool_take(j->ch, &lo, &hi)) matmul_run(j, lo, hi);
        return;
    }
    /* 16 floats = one cache line of each row of y per boundary */
    pool_split(j->out, 16, i, nt, &lo, &hi);
    if (lo < hi) matmul_run(j, lo, hi);
}

void kern_matmul(const kern_ops *k, pool *p, float *y, const float *x, weight w, size_t n,
                 size_t in, size_t out) {
    pool_chunks ch;
    matmul_job j = {k->matmul[w.dtype], NULL, y, x, NULL, w.data, n, in, out, chunks_for(&ch, p, n, out)};
    /* waking threads costs more than a tiny matmul; each row's result does not depend on
     * who computes it, so this changes nothing but the time */
    pool_run(n * in * out < 32768 ? NULL : p, matmul_task, &j);
}

kern_qmatmul_fn *kern_qref(wq_type t) { return t < WQ_N ? kern_generic.qmatmul[t] : NULL; }

typedef struct {
    kern_qmatmul_fn *fn;
    float *y;
    const float *x;
    const kern_xq *xq;
    const qweight *w;
    size_t n, in, out;
} qmatmul_job;

static void qmatmul_task(void *arg, int i, int nt) {
    const qmatmul_job *j = arg;
    size_t lo, hi;
    pool_split(j->out, 16, i, nt, &lo, &hi);
    if (lo < hi) j->fn(j->y, j->x, j->xq, j->w, j->n, j->in, j->out, lo, hi);
}

static size_t up64(size_t x) { return (x + 63) / 64 * 64; }

/* A WQ_FMT weight: the format's own matmul, output rows split over the threads. */
typedef struct {
    const qweight *w;
    float *y;
    const float *x;
    const void *scratch;
    size_t n, out;
} fmt_job;

static void fmt_task(void *arg, int i, int nt) {
    const fmt_job *j = arg;
    size_t lo, hi;
    pool_split(j->out, 16, i, nt, &lo, &hi);
    if (lo < hi) j->w->fmt->matmul(j->y, j->x, j->scratch, j->w, j->n, j->out, lo, hi);
}

/* The scratch: a header saying what its activations hold, then the arrays of kern_xq. */
typedef struct {
    const float *x;
    size_t n, in;
    int kind; /* what was quantized: WQ_8DA4W (int8 per token: 8DA4W, 8DA8W), WQ_Q8 (int16 per 32),
               * WQ_Q4 (int8 per 32), ACT_BF16(W) (kern_matmul_bx's x); 0: nothing */
} act_hdr;

/* kern_matmul_bx's x, past the header: bf16 (ACT_BF16: n * in * 2 bytes), or where the
 * variant has no matmul_bx, those widened back to f32 (ACT_BF16W: n * in * 4 bytes, within
 * the arrays of kern_xq). */
enum { ACT_BF16 = WQ_N + 1, ACT_BF16W };

size_t kern_qscratch(size_t n, size_t in) {
    return 64 + 2 * up64(n * in) + up64(n * sizeof(float)) + up64(n * sizeof(int32_t)) + up64(2 * n * in) +
           2 * up64(n * (in / 32) * sizeof(float));
}

static kern_xq xq_of(void *scratch, size_t n, size_t in) {
    uint8_t *s = (uint8_t *)scratch + 64;
    kern_xq xq;
    xq.q = (int8_t *)s, s += up64(n * in);
    xq.u = s, s += up64(n * in);
    xq.scale = (float *)s, s += up64(n * sizeof(float));
    xq.zp = (int32_t *)s, s += up64(n * sizeof(int32_t));
    xq.h = (int16_t *)s, s += up64(2 * n * in);
    xq.hs = (float *)s, s += up64(n * (in / 32) * sizeof(float));
    xq.c8 = (int32_t *)s;
    return xq;
}

/* Rows of x quantized over the pool (a row's bits do not depend on the thread). */
typedef struct {
    const kern_ops *k;
    const kern_xq *xq;
    const float *x;
    size_t n, in;
    int kind;
} act_job;

static void act_task(void *arg, int i, int nt) {
    const act_job *j = arg;
    size_t lo, hi, in = j->in;
    pool_split(j->n, 1, i, nt, &lo, &hi);
    const kern_xq *xq = j->xq;
    for (size_t r = lo; r < hi; r++) {
        if (j->kind == WQ_8DA4W)
            j->k->quant_act(xq->q + r * in, xq->u + r * in, xq->h + r * in, xq->scale + r, xq->zp + r, j->x + r * in,
                            in);
        else
            j->k->quant_blocks(xq->h + r * in, j->kind == WQ_Q4 ? xq->u + r * in : NULL, xq->hs + r * (in / 32),
                               j->x + r * in, in, j->kind == WQ_Q4 ? 127 : 32767);
        if (j->kind == WQ_Q4) kern_blocks_i8(xq->q + r * in, xq->c8 + r * (in / 32), xq->h + r * in, in);
        if (j->kind == WQ_8DA4W) kern_block_sums(xq->c8 + r * (in / 32), xq->q + r * in, in);
    }
}

void kern_block_sums(int32_t *c8, const int8_t *q, size_t in) {
    for (size_t b = 0; b < in / 32; b++) {
        int32_t s = 0;
        for (size_t k = b * 32; k < b * 32 + 32; k++) s += q[k];
        c8[b] = 8 * s;
    }
}

void kern_blocks_i8(int8_t *h8, int32_t *c8, const int16_t *h, size_t in) {
    for (size_t b = 0; b < in / 32; b++) {
        int32_t s = 0;
        for (size_t k = b * 32; k < b * 32 + 32; k++) h8[k] = (int8_t)h[k], s += h[k];
        c8[b] = 8 * s;
    }
}

/* k's panel kernel for weights of type t, or NULL */
static kern_panel_fn *panel_fn(const kern_ops *k, wq_type t) {
    return t < WQ_N ? k->panel[t] : NULL;
}

/* 8DA4W's and Q4's panel layouts (kern.h): per panel of 8 rows, per block of 32 columns, 8
 * quads of 4 columns as 4 pairs of quads of 32 bytes (byte b: row b/4, column b%4 of the
 * pair's first quad in its low nibble, of its second in the high one, each as q + 8), then
 * the 8 rows' scales, 8DA4W's f32, Q4's f16 d of the block's group. Rows past the weight's
 * last (the last panel's padding) are zero. */
struct kern_packed {
    void *panels;
    size_t rows, in;
    wq_type q;
    int owned; /* panels is kern_pack's allocation (else a caller's, e.g. a mapped file) */
};

/* An 8DA8W or Q8 panel (kern.h): in/2 pairs of 16 bytes, then 8 f32 scales (8DA8W: and 8
 * int32 sums of q); padding rows 0. */
static void pack_8da8w(uint8_t *mem, const qweight *w, size_t rows) {
    size_t in = w->in, np = (rows + 7) / 8, pb = kern_panel_bytes(w->q, in);
    for (size_t pi = 0; pi < np; pi++) {
        uint8_t *pan = mem + pi * pb;
        float *ps = (float *)(pan + in * 8);
        memset(pan, 0, pb);
        for (int r = 0; r < 8 && pi * 8 + (size_t)r < rows; r++) {
            size_t row = pi * 8 + (size_t)r;
            const uint8_t *q = (const uint8_t *)w->data + row * in;
            for (size_t c = 0; c < in; c += 2) memcpy(pan + c * 8 + 2 * (size_t)r, q + c, 2);
            ps[r] = ((const float *)w->scales)[row];
            if (w->q != WQ_8DA8W) continue;
            int32_t sq = 0;
            for (size_t c = 0; c < in; c++) sq += (int8_t)q[c];
            memcpy(pan + in * 8 + 32 + 4 * (size_t)r, &sq, 4);
        }
    }
}

/* An 8DA4W or Q4 panel (the layout above). */
static void pack_nib(uint8_t *mem, const qweight *w, size_t rows) {
    size_t in = w->in, nb = in / 32, np = (rows + 7) / 8, gb = w->q == WQ_Q4 ? w->group / 32 : 1, ng = nb / gb,
           bb = kern_panel_bytes(w->q, in) / nb;
    /* A row's block is 16 bytes, byte c holding column c (low nibble) and c + 16 (high):
     * masked as two 64-bit words they are columns 0..15 and 16..31 as bytes, i.e. the 8
     * quads as 32-bit words; pair i of the panel is the words 2i of rows 0..7, the words
     * 2i + 1 in the high nibbles. Padding rows are q = 0 (0x88 bytes), scale 0. */
    const uint64_t m4 = 0x0f0f0f0f0f0f0f0full;
    for (size_t pi = 0; pi < np; pi++)
        for (size_t g = 0; g < nb; g++) {
            uint8_t *blk = mem + (pi * nb + g) * bb;
            uint32_t pair[4][8];
            float ps[8];
            uint16_t d[8];
            for (int r = 0; r < 8; r++) {
                size_t row = pi * 8 + (size_t)r;
                uint64_t b[2] = {0x8888888888888888ull, 0x8888888888888888ull}, v[4];
                if (row < rows) memcpy(b, (const uint8_t *)w->data + row * in / 2 + g * 16, 16);
                v[0] = b[0] & m4, v[1] = b[1] & m4, v[2] = b[0] >> 4 & m4, v[3] = b[1] >> 4 & m4;
                for (int i = 0; i < 4; i++) pair[i][r] = (uint32_t)v[i] | (uint32_t)(v[i] >> 32) << 4; /* quads 2i, 2i + 1 */
                ps[r] = row < rows && w->q == WQ_8DA4W ? ((const float *)w->scales)[row * nb + g] : 0;
                d[r] = row < rows && w->q == WQ_Q4 ? ((const uint16_t *)w->scales)[row * ng + g / gb] : 0;
            }
            memcpy(blk, pair, 128);
            if (w->q == WQ_Q4) memcpy(blk + 128, d, sizeof d);
            else memcpy(blk + 128, ps, sizeof ps);
        }
}

size_t kern_pack_bytes(const kern_ops *k, const qweight *w, size_t rows) {
    if (!panel_fn(k, w->q) || w->in % 32) return 0;
    return (rows + 7) / 8 * kern_panel_bytes(w->q, w->in);
}

kern_packed *kern_pack_at(const kern_ops *k, const qweight *w, size_t rows, void *mem, int fill) {
    kern_packed *pk = kern_pack_bytes(k, w, rows) ? malloc(sizeof *pk) : NULL;
    if (!pk) return NULL;
    *pk = (kern_packed){mem, rows, w->in, w->q, 0};
    if (fill) (w->q == WQ_8DA8W || w->q == WQ_Q8 ? pack_8da8w : pack_nib)(mem, w, rows);
    return pk;
}

kern_packed *kern_pack(const kern_ops *k, const qweight *w, size_t rows) {
    size_t bytes = kern_pack_bytes(k, w, rows);
    void *mem = NULL;
    /* whole 2 MiB pages where the kernel gives them (transparent huge pages on madvise):
     * a 4B model's panels fault in 1200 times rather than 600000 */
    size_t huge = (size_t)2 << 20, align = bytes >= huge ? huge : 64;
    if (!bytes || posix_memalign(&mem, align, bytes)) return NULL;
#ifdef MADV_HUGEPAGE
    if (align == huge) madvise(mem, bytes / huge * huge, MADV_HUGEPAGE);
#endif
    kern_packed *pk = kern_pack_at(k, w, rows, mem, 1);
    if (!pk) free(mem);
    else pk->owned = 1;
    return pk;
}

const void *kern_panels(const kern_packed *p) { return p->panels; }

void kern_packed_free(kern_packed *p) {
    if (!p) return;
    if (p->owned) free(p->panels);
    free(p);
}

typedef struct {
    const kern_ops *k;
    float *y;
    const kern_xq *xq;
    const kern_packed *pk;
    size_t n, out;
} panel_job;

static void panel_task(void *arg, int i, int nt) {
    const panel_job *j = arg;
    size_t lo, hi;
    pool_split(j->out, 16, i, nt, &lo, &hi);
    kern_panel_fn *f = panel_fn(j->k, j->pk->q);
    if (lo < hi) f(j->y, j->xq, j->pk->panels, j->n, j->pk->in, j->out, lo, hi);
}

static void matmul_w(const kern_ops *k, pool *p, float *y, const float *x, weight wt, const kern_packed *pk,
                     size_t n, size_t in, size_t out, void *scratch, int same) {
    act_hdr *h = scratch;
    if (weight_q(wt) == WQ_NONE) {
        if (h) h->kind = 0; /* whatever the scratch held may be for another x now */
        kern_matmul(k, p, y, x, wt, n, in, out);
        return;
    }
    const qweight *w = wt.data;
    if (pk && !(pk->q == w->q && pk->rows == out && pk->in == in && panel_fn(k, w->q))) pk = NULL;
    if (w->q == WQ_FMT) {
        h->kind = 0; /* the format's prep owns the scratch past the header */
        void *fs = (uint8_t *)scratch + 64;
        if (w->fmt->prep) w->fmt->prep(w, x, n, fs);
        fmt_job fj = {w, y, x, fs, n, out};
        pool_run(n * in * out < 32768 ? NULL : p, fmt_task, &fj);
        return;
    }
    kern_xq xq = xq_of(scratch, n, in);
    int kind = w->q == WQ_8DA8W ? WQ_8DA4W : w->q == WQ_8DA4W || w->q == WQ_Q4 || w->q == WQ_Q8 ? (int)w->q : 0;
    if (kind && !(same && h->kind == kind && h->x == x && h->n == n && h->in == in)) {
        act_job aj = {k, &xq, x, n, in, kind};
        pool_run(n < 4 ? NULL : p, act_task, &aj);
        *h = (act_hdr){x, n, in, kind};
    }
    if (pk) {
        panel_job pj = {k, y, &xq, pk, n, out};
        pool_run(p, panel_task, &pj);
        return;
    }
    qmatmul_job j = {k->qmatmul[w->q], y, x, &xq, w, n, in, out};
    pool_run(n * in * out < 32768 ? NULL : p, qmatmul_task, &j);
}

void kern_matmul_w(const kern_ops *k, pool *p, float *y, const float *x, weight w, size_t n, size_t in,
                   size_t out, void *scratch) {
    matmul_w(k, p, y, x, w, NULL, n, in, out, scratch, 0);
}

void kern_matmul_w_same(const kern_ops *k, pool *p, float *y, const float *x, weight w, size_t n, size_t in,
                        size_t out, void *scratch) {
    matmul_w(k, p, y, x, w, NULL, n, in, out, scratch, 1);
}

void kern_matmul_wp(const kern_ops *k, pool *p, float *y, const float *x, weight w, const kern_packed *pk,
                    size_t n, size_t in, size_t out, void *scratch, int same) {
    matmul_w(k, p, y, x, w, pk, n, in, out, scratch, same);
}

/* Rows of x to bf16 (and back to f32 where wide) over the pool. */
typedef struct {
    const kern_ops *k;
    const float *x;
    uint16_t *xb;
    float *xw;
    size_t n, in;
} bx_job;

static void bx_task(void *arg, int i, int nt) {
    const bx_job *j = arg;
    size_t lo, hi;
    pool_split(j->n, 1, i, nt, &lo, &hi);
    for (size_t r = lo; r < hi; r++) {
        const float *x = j->x + r * j->in;
        if (!j->xw) j->k->to_bf16(j->xb + r * j->in, x, j->in);
        else
            for (size_t c = 0; c < j->in; c++) j->xw[r * j->in + c] = kern_bf16(to_bf16_1(x[c]));
    }
}

void kern_matmul_bx(const kern_ops *k, pool *p, float *y, const float *x, weight w, const kern_packed *pk,
                    size_t n, size_t in, size_t out, void *scratch, int same) {
    if (w.dtype != ST_BF16) {
        matmul_w(k, p, y, x, w, pk, n, in, out, scratch, same);
        return;
    }
    act_hdr *h = scratch;
    uint8_t *a = (uint8_t *)scratch + 64;
    int kind = k->matmul_bx ? ACT_BF16 : ACT_BF16W;
    if (!(same && h->kind == kind && h->x == x && h->n == n && h->in == in)) {
        bx_job bj = {k, x, (uint16_t *)a, k->matmul_bx ? NULL : (float *)a, n, in};
        pool_run(n < 4 ? NULL : p, bx_task, &bj);
        *h = (act_hdr){x, n, in, kind};
    }
    pool_chunks ch;
    matmul_job j = {k->matmul[ST_BF16], k->matmul_bx, y, (const float *)a, (const uint16_t *)a, w.data, n, in, out,
                    chunks_for(&ch, p, n, out)};
    pool_run(n * in * out < 32768 ? NULL : p, matmul_task, &j);
}

void kern_rmsnorm(float *y, const float *x, const float *w, size_t n, size_t dim, float eps) {
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * dim;
        float *yi = y + i * dim;
        /* the squares are exact in double; 8 sums side by side (not one chain of adds, 4
         * cycles each), added in a fixed order: the same bits in every build */
        double s8[8] = {0}, ss;
        size_t j = 0;
        for (; j + 8 <= dim; j += 8)
            for (int l = 0; l < 8; l++) s8[l] += (double)xi[j + l] * xi[j + l];
        ss = ((s8[0] + s8[1]) + (s8[2] + s8[3])) + ((s8[4] + s8[5]) + (s8[6] + s8[7]));
        for (; j < dim; j++) ss += (double)xi[j] * xi[j];
        float r = 1.0f / sqrtf((float)(ss / (double)dim) + eps);
        for (j = 0; j < dim; j++) yi[j] = w[j] * (xi[j] * r);
    }
}

/* HF's _compute_default_rope_parameters and _compute_yarn_parameters, step by step in f32
 * where torch works on f32 tensors, in double where it works on Python floats. */
void kern_rope_freqs(const qwen_config *c, float *inv_freq, float *scale) {
    size_t half = (size_t)c->head_dim / 2;
    float d = (float)c->head_dim, base = (float)c->rope_theta;
    *scale = 1.0f;
    if (!c->yarn) {
        for (size_t i = 0; i < half; i++) inv_freq[i] = 1.0f / (float)pow(base, (double)((float)(2 * i) / d));
        return;
    }
    const double pi = 3.14159265358979323846;
    double dd = c->head_dim, lb = log(c->rope_theta), orig = c->yarn_orig_max_pos;
    /* the dims that turn beta_fast and beta_slow times over orig positions */
    double low = dd * log(orig / (c->yarn_beta_fast * 2 * pi)) / (2 * lb);
    double high = dd * log(orig / (c->yarn_beta_slow * 2 * pi)) / (2 * lb);
    if (c->yarn_truncate) {
        low = floor(low);
        high = ceil(high);
    }
    if (low < 0) low = 0;
    if (high > dd - 1) high = dd - 1;
    if (low == high) high += 0.001; /* linear_ramp_factor's guard against a zero range */
    float factor = (float)c->yarn_factor;
    for (size_t i = 0; i < half; i++) {
        float pos_freq = (float)pow(base, (double)((float)(2 * i) / d));
        float extrap = 1.0f / pos_freq, interp = 1.0f / (factor * pos_freq);
        float ramp = ((float)i - (float)low) / (float)(high - low);
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        float e = 1.0f - ramp; /* weight of extrapolation: 1 for the fast (low) dims */
        inv_freq[i] = interp * (1.0f - e) + extrap * e;
    }
    *scale = (float)c->yarn_attn_factor;
}

void kern_rope_table(float *cos_, float *sin_, const float *inv_freq, float scale, size_t pos0,
                     size_t n, size_t half) {
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < half; j++) {
            /* f32 angle as HF's inv_freq @ position_ids; cos/sin of it rounded once */
            float a = (float)(pos0 + i) * inv_freq[j];
            cos_[i * half + j] = (float)cos((double)a) * scale;
            sin_[i * half + j] = (float)sin((double)a) * scale;
        }
}

void kern_rope(float *x, const float *cos_, const float *sin_, size_t n, size_t heads, size_t half) {
    for (size_t i = 0; i < n; i++) {
        const float *c = cos_ + i * half, *s = sin_ + i * half;
        for (size_t h = 0; h < heads; h++) {
            float *v = x + (i * heads + h) * 2 * half;
            for (size_t j = 0; j < half; j++) {
                float x0 = v[j], x1 = v[j + half];
                v[j] = x0 * c[j] - x1 * s[j];
                v[j + half] = x1 * c[j] + x0 * s[j];
            }
        }
    }
}

/* ---- attention: one (position, head) pair at a time, online softmax ---- */

typedef struct {
    const kern_ops *k;
    float *out;
    const float *q;
    const void *kc, *vc; /* float rows of all kv heads, or (half) kc: kern_kv16_copy's f16 blocks */
    size_t pos0, n, n_heads, n_kv_heads, hd;
    size_t cap; /* half: rows of K (and of V) per kv head */
    int half;
} attn_job;

enum {
    ATT_GROUP = 8,  /* q heads sharing a kv head taken together (Qwen3: 2 to 8) */
    ATT_BLOCK = KERN_KV_BLOCK, /* keys scored, exponentiated and summed at a time (32) */
    ATT_POS = 4,    /* a prefill's consecutive positions taken through each block together */
};

/* Element i of a K/V array of floats, or of f16s when half. */
static const void *elem(const void *p, size_t i, int half) {
    return half ? (const void *)((const uint16_t *)p + i) : (const void *)((const float *)p + i);
}

/* Rows [t0, t0+n) of one head's f32 K and V, into the cache: one head's rows are stride
 * elements apart (a page, for Qwen3), so each is on a new page, where hardware
 * prefetchers stop. span: elements of a row read. */
static void prefetch_rows(const float *kc, const float *vc, size_t t0, size_t n, size_t stride, size_t span) {
    for (size_t t = t0; t < t0 + n; t++)
        for (size_t b = 0; b < span; b += 16) { /* 16 floats per 64-byte line */
            __builtin_prefetch(kc + t * stride + b);
            __builtin_prefetch(vc + t * stride + b);
        }
}

/* One query's online-softmax step over a block of nb scores s (raw dot products): scaled,
 * the running max *m raised (the output row o and the sum l rescaled), s turned into
 * exp(s - m). Returns the new sum. */
static float online(const kern_ops *k, float *s, size_t nb, float scale, float *m, float l, float *o, size_t hd) {
    float mb = *m;
    for (size_t t = 0; t < nb; t++) {
        s[t] *= scale;
        if (s[t] > mb) mb = s[t];
    }
    if (mb > *m) {
        float c = expf(*m - mb); /* 0 on the first block: o and l are still 0 */
        for (size_t j = 0; j < hd; j++) o[j] *= c;
        l *= c;
        *m = mb;
    }
    return l + k->exps(s, nb, mb);
}

/* Query rows q[g] (g < ng, stride hd) against keys [0, len), ATT_BLOCK keys at a time;
 * each block of K and V rows is read from memory once for all ng heads (GQA: they share
 * it). A running max m and sum l per head let the output rows themselves be the
 * accumulators, rescaled when m grows (online softmax), so nothing grows with the
 * context. Blocks start at key 0 for every query, so a position gets the same bits
 * whether it came in a prefill or alone.
 * np consecutive positions (pstride floats apart in q and o; position p sees keys
 * [0, len + p)) go through each block together, so a prefill reads a block of K/V from
 * L2 once for np positions rather than once each; every position's own sequence of
 * operations is the one above, so its bits do not change.
 * Addresses: key t of the item's kv head h (g / group) is at h*hstride + t/ATT_BLOCK*bstride
 * + t%ATT_BLOCK*stride elements from kc (and from vc), which covers f32 rows of all heads
 * side by side (bstride = ATT_BLOCK*stride) and kern_kv16_copy's blocks. */
static void attend(const kern_ops *k, float *o, const float *q, size_t np, size_t pstride, size_t ng, size_t group,
                   const void *kc, const void *vc, size_t len, size_t stride, size_t hstride, size_t bstride, size_t hd,
                   float scale, int half) {
    float m[ATT_POS][ATT_GROUP], l[ATT_POS][ATT_GROUP], s[ATT_POS][ATT_GROUP][ATT_BLOCK];
    for (size_t p = 0; p < np; p++) {
        for (size_t g = 0; g < ng; g++) m[p][g] = -INFINITY, l[p][g] = 0;
        memset(o + p * pstride, 0, ng * hd * sizeof *o);
    }
    size_t last = len + np - 1; /* the keys the last position sees */
    /* f32 rows a page apart: the prefetchers would not follow them. f16 rows (decode's) are
     * contiguous, head by head */
    int pf = stride != hd;
    size_t span = (ng + group - 1) / group * hd; /* elements of a row the item reads */
    if (pf) prefetch_rows(kc, vc, 0, last < ATT_BLOCK ? last : ATT_BLOCK, stride, span);
    for (size_t t0 = 0; t0 < last; t0 += ATT_BLOCK) {
        if (pf && t0 + ATT_BLOCK < last)
            prefetch_rows(kc, vc, t0 + ATT_BLOCK, last - t0 - ATT_BLOCK < ATT_BLOCK ? last - t0 - ATT_BLOCK : ATT_BLOCK,
                          stride, span);
        /* every (position, head)'s scores of the block, then every one's sums: the block's
         * K rows stay in L1 for all np*ng queries, then its V rows. Two q heads of one kv
         * head go together where the variant has the two-query forms (the same bits). */
        for (size_t p = 0; p < np; p++) {
            size_t lp = len + p;
            if (t0 >= lp) continue;
            size_t nb = lp - t0 < ATT_BLOCK ? lp - t0 : ATT_BLOCK;
            const float *qp = q + p * pstride;
            for (size_t g = 0, two; g < ng; g += 1 + two) {
                size_t at = g / group * hstride + t0 / ATT_BLOCK * bstride; /* this q head's kv head, key t0 */
                two = g + 1 < ng && (g + 1) / group == g / group && (half ? k->scores2_16 != NULL : k->scores2 != NULL);
                const float *q0 = qp + g * hd, *q1 = q0 + hd;
                if (two && half) k->scores2_16(s[p][g], s[p][g + 1], q0, q1, elem(kc, at, 1), nb, stride, hd);
                else if (two) k->scores2(s[p][g], s[p][g + 1], q0, q1, elem(kc, at, 0), nb, stride, hd);
                else if (half) k->scores16(s[p][g], q0, elem(kc, at, 1), nb, stride, hd);
                else k->scores(s[p][g], q0, elem(kc, at, 0), nb, stride, hd);
                for (size_t h = g; h <= g + two; h++)
                    l[p][h] = online(k, s[p][h], nb, scale, &m[p][h], l[p][h], o + p * pstride + h * hd, hd);
            }
        }
        for (size_t p = 0; p < np; p++) {
            size_t lp = len + p;
            if (t0 >= lp) continue;
            size_t nb = lp - t0 < ATT_BLOCK ? lp - t0 : ATT_BLOCK;
            float *op = o + p * pstride;
            for (size_t g = 0, two; g < ng; g += 1 + two) {
                size_t at = g / group * hstride + t0 / ATT_BLOCK * bstride;
                two = g + 1 < ng && (g + 1) / group == g / group && (half ? k->accum2_16 != NULL : k->accum2 != NULL);
                if (two && half)
                    k->accum2_16(op + g * hd, op + (g + 1) * hd, s[p][g], s[p][g + 1], elem(vc, at, 1), nb, stride, hd);
                else if (two)
                    k->accum2(op + g * hd, op + (g + 1) * hd, s[p][g], s[p][g + 1], elem(vc, at, 0), nb, stride, hd);
                else if (half) k->accum16(op + g * hd, s[p][g], elem(vc, at, 1), nb, stride, hd);
                else k->accum(op + g * hd, s[p][g], elem(vc, at, 0), nb, stride, hd);
            }
        }
    }
    for (size_t p = 0; p < np; p++)
        for (size_t g = 0; g < ng; g++) {
            float r = 1.0f / l[p][g], *og = o + p * pstride + g * hd;
            for (size_t j = 0; j < hd; j++) og[j] *= r;
        }
}

static void attn_task(void *arg, int ti, int nt) {
    const attn_job *a = arg;
    size_t group = a->n_heads / a->n_kv_heads, parts = (group + ATT_GROUP - 1) / ATT_GROUP;
    size_t per = (group + parts - 1) / parts, kv_dim = a->n_kv_heads * a->hd;
    float scale = 1.0f / sqrtf((float)a->hd);
    size_t len = a->pos0 + a->n, hd = a->hd, have = SIZE_MAX, esz = sizeof(float);
    /* A prefill (batch) over f32 rows copies each kv head's rows into a contiguous buffer
     * once per thread: in the cache one head's rows are kv_dim elements apart (4 KiB in
     * Qwen3), so a block of them falls in a handful of L1 sets and evicts itself; copied,
     * they are hd apart (as f16 rows are already). The same values and the same
     * arithmetic: the bits do not change. Without the buffer (out of memory), the same. */
    int batch = a->n >= 16;
    char *buf = batch && !a->half ? malloc(2 * len * hd * esz) : NULL;
    /* Otherwise (decode) an item over f32 rows takes as many whole kv heads as ATT_GROUP q
     * heads allow (hk; their rows are side by side, so each row is read in longer runs).
     * Over f16 rows, one kv head: two streams (its K and its V) where four heads made
     * eight, which the prefetchers kept up with less well (28 layers at 512 positions,
     * 2 threads: 2.8 ms a token rather than 3.5). */
    size_t hk = !batch && parts == 1 && !a->half ? ATT_GROUP / group : 1; /* the same in every thread */
    while (a->n_kv_heads % hk) hk--;
    size_t npos = batch ? ATT_POS : 1, groups = (a->n + npos - 1) / npos;
    size_t units = a->n_kv_heads / hk * parts, items = groups * units;
    /* an item is (kv heads, part of their q heads, npos positions), positions fastest;
     * strided, not contiguous: later positions attend over more rows, so every thread gets
     * a fair share of the causal triangle, and a thread's next item reads the same head's
     * K/V rows (still in L2) rather than the next head's (all of a layer's K/V, from memory) */
    for (size_t it = (size_t)ti; it < items; it += (size_t)nt) {
        size_t i = it % groups * npos, hp = it / groups, kvh = hp / parts * hk, h0 = kvh * group + hp % parts * per;
        size_t np = a->n - i < npos ? a->n - i : npos;
        size_t ng = hk > 1 ? hk * group : h0 + per <= (kvh + 1) * group ? per : (kvh + 1) * group - h0;
        size_t row = (i * a->n_heads + h0) * hd;
        /* f32: rows of every kv head, kv_dim apart; f16: head by head, blocks of K rows then
         * V rows, each hd apart (hstride: from one kv head to the next; bstride: from one
         * block of rows to the next) */
        size_t hstride = a->half ? 2 * a->cap * hd : hd, stride = a->half ? hd : kv_dim;
        size_t bstride = a->half ? 2 * ATT_BLOCK * hd : ATT_BLOCK * stride;
        const void *kc = elem(a->kc, kvh * hstride, a->half);
        const void *vc = a->half ? elem(kc, ATT_BLOCK * hd, 1) : elem(a->vc, kvh * hstride, 0);
        if (buf) {
            if (have != kvh)
                for (size_t t = 0; t < len; t++) {
                    memcpy(buf + t * hd * esz, elem(kc, t * kv_dim, 0), hd * esz);
                    memcpy(buf + (len + t) * hd * esz, elem(vc, t * kv_dim, 0), hd * esz);
                }
            have = kvh;
            kc = buf, vc = buf + len * hd * esz, stride = hd, bstride = ATT_BLOCK * hd;
        }
        attend(a->k, a->out + row, a->q + row, np, a->n_heads * hd, ng, hk > 1 ? group : ng, kc, vc, a->pos0 + i + 1,
               stride, hstride, bstride, hd, scale, a->half);
    }
    free(buf);
}

void kern_attention(const kern_ops *k, pool *p, float *out, const float *q, const float *kc,
                    const float *vc, size_t pos0, size_t n, size_t n_heads, size_t n_kv_heads,
                    size_t hd) {
    attn_job a = {k, out, q, kc, vc, pos0, n, n_heads, n_kv_heads, hd, 0, 0};
    pool_run(p, attn_task, &a);
}

void kern_attention_f16(const kern_ops *k, pool *p, float *out, const float *q, const uint16_t *kv, size_t cap,
                        size_t pos0, size_t n, size_t n_heads, size_t n_kv_heads, size_t hd) {
    attn_job a = {k, out, q, kv, NULL, pos0, n, n_heads, n_kv_heads, hd, cap, 1};
    pool_run(p, attn_task, &a);
}

void kern_kv16_copy(const kern_ops *k, uint16_t *kv, const float *kr, const float *vr, size_t cap, size_t from,
                    size_t to, size_t n_kv_heads, size_t hd) {
    for (size_t t = from; t < to; t++)
        for (size_t h = 0; h < n_kv_heads; h++) {
            uint16_t *row = kv + (2 * (h * cap + t / ATT_BLOCK * ATT_BLOCK) + t % ATT_BLOCK) * hd;
            k->to_f16(row, kr + (t * n_kv_heads + h) * hd, hd);
            k->to_f16(row + ATT_BLOCK * hd, vr + (t * n_kv_heads + h) * hd, hd);
        }
}

void kern_swiglu(float *y, const float *g, const float *u, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + expf(-g[i]));
        y[i] = g[i] * s * u[i];
    }
}

void kern_rmsnorm_k(const kern_ops *k, float *y, const float *x, const float *w, size_t n, size_t dim, float eps) {
    k->rmsnorm(y, x, w, n, dim, eps);
}

void kern_swiglu_k(const kern_ops *k, float *y, const float *g, const float *u, size_t n) {
    k->swiglu(y, g, u, n);
}

void kern_add(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

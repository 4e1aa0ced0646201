/* kern_avx2: the matmul and attention's inner loops for x86 with AVX2 + FMA + F16C. Every function
 * carries its own target attribute, so the file builds with the generic flags and runs
 * only when kern_variants() found the CPU able to.
 *
 * The matmul works in tiles of NX rows of x by NW rows of W: each W vector is widened
 * (bf16: shift left 16; f16: vcvtph2ps) once and used NX times, and the 12 accumulators
 * fill the 16 ymm registers. W is walked in slabs of ~256 KiB that stay in L2 while
 * every row of x passes over them (prefill); for one row of x (decode) this is just a
 * stream over W, four rows at a time, with a software prefetch of the next tile (the
 * hardware prefetchers alone got 10 GB/s where this gets 15). Each y element is one tile
 * accumulator, summed in the same order whatever the tile's shape, so results do not
 * depend on how rows are split between threads or how many positions come at once. */
#if defined(__x86_64__) || defined(__i386__)
#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kern.h"

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

enum { NX = 3, NW = 4, SLAB = 256 * 1024 };

INLINE AVX2 __m256 load_w(const void *w, st_dtype t, size_t k) {
    if (t == ST_F32) return _mm256_loadu_ps((const float *)w + k);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + k));
    if (t == ST_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

INLINE float widen(const void *w, st_dtype t, size_t k) {
    if (t == ST_F32) return ((const float *)w)[k];
    if (t == ST_F16) return kern_f16(((const uint16_t *)w)[k]);
    return kern_bf16(((const uint16_t *)w)[k]);
}

INLINE AVX2 float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* y[a*ldy + b] = x row a . W row b, for a < nx, b < nw (constants after inlining). */
INLINE AVX2 void tile(float *y, size_t ldy, const float *x, const void *w, st_dtype t, size_t in,
                      int nx, int nw) {
    __m256 acc[NX][NW];
    /* the pragmas make GCC -O2 unroll these fully, which keeps acc in registers */
#pragma GCC unroll 4
    for (int a = 0; a < nx; a++)
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) acc[a][b] = _mm256_setzero_ps();
    /* The nw rows are one contiguous block, and so is the next tile's; fetch that one
     * while this one is summed, at the pace this one is read. A decode step reads W
     * once, in blocks of a few KiB, which the hardware prefetchers ramp up to too late. */
    const char *next = (const char *)w + (size_t)nw * in * (t == ST_F32 ? 4 : 2);
    size_t step = 8 * (size_t)nw * (t == ST_F32 ? 4 : 2); /* bytes of W per k step */
    size_t k = 0;
    for (; k + 8 <= in; k += 8) {
        for (size_t off = 0; off < step; off += 64) _mm_prefetch(next + k / 8 * step + off, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) {
            __m256 wv = load_w(w, t, (size_t)b * in + k);
#pragma GCC unroll 4
            for (int a = 0; a < nx; a++)
                acc[a][b] = _mm256_fmadd_ps(_mm256_loadu_ps(x + (size_t)a * in + k), wv, acc[a][b]);
        }
    }
#pragma GCC unroll 4
    for (int a = 0; a < nx; a++)
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) {
            float s = hsum(acc[a][b]);
            for (size_t j = k; j < in; j++) s += x[(size_t)a * in + j] * widen(w, t, (size_t)b * in + j);
            y[(size_t)a * ldy + b] = s;
        }
}

/* One instance of tile per (nx, nw) so that acc stays in registers. */
INLINE AVX2 void tile_any(float *y, size_t ldy, const float *x, const void *w, st_dtype t, size_t in,
                          int nx, int nw) {
    switch (nx * 8 + nw) {
#define T(a, b) case a * 8 + b: tile(y, ldy, x, w, t, in, a, b); break;
        T(1, 1) T(1, 2) T(1, 3) T(1, 4)
        T(2, 1) T(2, 2) T(2, 3) T(2, 4)
        T(3, 1) T(3, 2) T(3, 3) T(3, 4)
#undef T
    }
}

INLINE AVX2 void matmul(float *y, const float *x, const void *w, st_dtype t, size_t n, size_t in,
                        size_t out, size_t o0, size_t o1) {
    size_t wsize = t == ST_F32 ? 4 : 2, slab = SLAB / (in * wsize) / NW * NW;
    if (slab < NW) slab = NW;
    for (size_t s0 = o0; s0 < o1; s0 += slab) {
        size_t s1 = s0 + slab < o1 ? s0 + slab : o1;
        for (size_t i = 0; i < n; i += NX) {
            int nx = n - i < NX ? (int)(n - i) : NX;
            for (size_t o = s0; o < s1; o += NW) {
                int nw = s1 - o < NW ? (int)(s1 - o) : NW;
                tile_any(y + i * out + o, out, x + i * in, (const char *)w + o * in * wsize, t, in, nx, nw);
            }
        }
    }
}

static AVX2 void matmul_f32(float *y, const float *x, const void *w, size_t n, size_t in, size_t out,
                            size_t o0, size_t o1) {
    matmul(y, x, w, ST_F32, n, in, out, o0, o1);
}
static AVX2 void matmul_f16(float *y, const float *x, const void *w, size_t n, size_t in, size_t out,
                            size_t o0, size_t o1) {
    matmul(y, x, w, ST_F16, n, in, out, o0, o1);
}
static AVX2 void matmul_bf16(float *y, const float *x, const void *w, size_t n, size_t in, size_t out,
                             size_t o0, size_t o1) {
    matmul(y, x, w, ST_BF16, n, in, out, o0, o1);
}

/* The 8 sums of a[0..7] as one vector (lane j: the sum of a[j]'s lanes). */
INLINE AVX2 __m256 hsum8(const __m256 *a) {
    __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

/* K and V rows are f32, or f16 (half: kern_attention_f16) widened by vcvtph2ps as they
 * are loaded; the arithmetic is the same, so f16 rows give what their f32 values would. */
INLINE AVX2 __m256 ldkv(const void *p, size_t i, int half) {
    if (half) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
    return _mm256_loadu_ps((const float *)p + i);
}
INLINE float kv1(const void *p, size_t i, int half) {
    return half ? kern_f16(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

/* Eight keys at a time, one accumulator each (eight independent FMA chains sharing each
 * vector of q), reduced together: one horizontal sum per 8 keys rather than per key.
 * The keys past the last 8 (and rows with hd not a multiple of 8) one at a time. */
INLINE AVX2 void scores_kv(float *s, const float *q, const void *k, size_t n, size_t stride, size_t hd, int half) {
    size_t t = 0, h8 = hd / 8 * 8;
    if (h8 == hd)
        for (; t + 8 <= n; t += 8) {
            __m256 a[8];
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) a[i] = _mm256_setzero_ps();
            for (size_t j = 0; j < hd; j += 8) {
                __m256 qv = _mm256_loadu_ps(q + j);
#pragma GCC unroll 8
                for (int i = 0; i < 8; i++) a[i] = _mm256_fmadd_ps(qv, ldkv(k, (t + i) * stride + j, half), a[i]);
            }
            _mm256_storeu_ps(s + t, hsum8(a));
        }
    for (; t < n; t++) {
        __m256 a0 = _mm256_setzero_ps();
        size_t j = 0;
        for (; j < h8; j += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + j), ldkv(k, t * stride + j, half), a0);
        float r = hsum(a0);
        for (; j < hd; j++) r += q[j] * kv1(k, t * stride + j, half);
        s[t] = r;
    }
}

static AVX2 void scores(float *s, const float *q, const float *k, size_t n, size_t stride, size_t hd) {
    scores_kv(s, q, k, n, stride, hd, 0);
}
static AVX2 void scores16(float *s, const float *q, const uint16_t *k, size_t n, size_t stride, size_t hd) {
    scores_kv(s, q, k, n, stride, hd, 1);
}

/* Two queries against the same n keys (GQA: two q heads of one kv head): each key's row
 * is loaded once for both, 6 loads per 8 FMAs where scores_kv makes 9. Every score is the
 * sum scores_kv makes (the same lane chains, reduced by hsum8's tree, or hsum's for the
 * keys past the last 8), so the bits are two scores_kv calls'. */
INLINE AVX2 void scores2_kv(float *s0, float *s1, const float *q0, const float *q1, const void *k, size_t n,
                            size_t stride, size_t hd, int half) {
    if (hd % 8) {
        scores_kv(s0, q0, k, n, stride, hd, half);
        scores_kv(s1, q1, k, n, stride, hd, half);
        return;
    }
    size_t t = 0, full = n / 8 * 8; /* scores_kv's groups of 8 keys; the rest one at a time */
    for (; t < full; t += 4) { /* 4 keys by 2 queries: 8 accumulators, hsum8's lanes */
        __m256 a[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) a[i] = _mm256_setzero_ps();
        for (size_t j = 0; j < hd; j += 8) {
            __m256 x0 = _mm256_loadu_ps(q0 + j), x1 = _mm256_loadu_ps(q1 + j);
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                __m256 kv = ldkv(k, (t + i) * stride + j, half);
                __asm__("" : "+x"(kv)); /* one load for both FMAs: GCC would fold it into each */
                a[i] = _mm256_fmadd_ps(x0, kv, a[i]);
                a[4 + i] = _mm256_fmadd_ps(x1, kv, a[4 + i]);
            }
        }
        __m256 r = hsum8(a);
        _mm_storeu_ps(s0 + t, _mm256_castps256_ps128(r));
        _mm_storeu_ps(s1 + t, _mm256_extractf128_ps(r, 1));
    }
    if (t < n) {
        scores_kv(s0 + t, q0, (const char *)k + t * stride * (half ? 2 : 4), n - t, stride, hd, half);
        scores_kv(s1 + t, q1, (const char *)k + t * stride * (half ? 2 : 4), n - t, stride, hd, half);
    }
}

static AVX2 void scores2(float *s0, float *s1, const float *q0, const float *q1, const float *k, size_t n,
                         size_t stride, size_t hd) {
    scores2_kv(s0, s1, q0, q1, k, n, stride, hd, 0);
}
static AVX2 void scores2_16(float *s0, float *s1, const float *q0, const float *q1, const uint16_t *k, size_t n,
                            size_t stride, size_t hd) {
    scores2_kv(s0, s1, q0, q1, k, n, stride, hd, 1);
}

/* o in registers, 64 floats at a time, while the n rows of V stream past. */
INLINE AVX2 void accum_kv(float *o, const float *p, const void *v, size_t n, size_t stride, size_t hd, int half) {
    size_t j = 0;
    for (; j + 64 <= hd; j += 64) {
        __m256 r[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(o + j + 8 * i);
        for (size_t t = 0; t < n; t++) {
            __m256 pt = _mm256_set1_ps(p[t]);
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) r[i] = _mm256_fmadd_ps(pt, ldkv(v, t * stride + j + 8 * i, half), r[i]);
        }
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) _mm256_storeu_ps(o + j + 8 * i, r[i]);
    }
    for (; j + 8 <= hd; j += 8) {
        __m256 r = _mm256_loadu_ps(o + j);
        for (size_t t = 0; t < n; t++) r = _mm256_fmadd_ps(_mm256_set1_ps(p[t]), ldkv(v, t * stride + j, half), r);
        _mm256_storeu_ps(o + j, r);
    }
    for (; j < hd; j++)
        for (size_t t = 0; t < n; t++) o[j] += p[t] * kv1(v, t * stride + j, half);
}

static AVX2 void accum(float *o, const float *p, const float *v, size_t n, size_t stride, size_t hd) {
    accum_kv(o, p, v, n, stride, hd, 0);
}
static AVX2 void accum16(float *o, const float *p, const uint16_t *v, size_t n, size_t stride, size_t hd) {
    accum_kv(o, p, v, n, stride, hd, 1);
}

/* Two outputs summing the same n rows of V with their own weights: 32 floats of each in
 * registers, each row's vector loaded once for both. Every element is accum_kv's chain
 * (t in order, one FMA each), so the bits are two accum_kv calls'. */
INLINE AVX2 void accum2_kv(float *o0, float *o1, const float *p0, const float *p1, const void *v, size_t n,
                           size_t stride, size_t hd, int half) {
    if (hd % 32) {
        accum_kv(o0, p0, v, n, stride, hd, half);
        accum_kv(o1, p1, v, n, stride, hd, half);
        return;
    }
    for (size_t j = 0; j < hd; j += 32) {
        __m256 r[8];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) r[i] = _mm256_loadu_ps(o0 + j + 8 * i), r[4 + i] = _mm256_loadu_ps(o1 + j + 8 * i);
        for (size_t t = 0; t < n; t++) {
            __m256 a = _mm256_set1_ps(p0[t]), b = _mm256_set1_ps(p1[t]);
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                __m256 x = ldkv(v, t * stride + j + 8 * i, half);
                __asm__("" : "+x"(x)); /* one load for both FMAs */
                r[i] = _mm256_fmadd_ps(a, x, r[i]);
                r[4 + i] = _mm256_fmadd_ps(b, x, r[4 + i]);
            }
        }
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) _mm256_storeu_ps(o0 + j + 8 * i, r[i]), _mm256_storeu_ps(o1 + j + 8 * i, r[4 + i]);
    }
}

static AVX2 void accum2(float *o0, float *o1, const float *p0, const float *p1, const float *v, size_t n,
                        size_t stride, size_t hd) {
    accum2_kv(o0, o1, p0, p1, v, n, stride, hd, 0);
}
static AVX2 void accum2_16(float *o0, float *o1, const float *p0, const float *p1, const uint16_t *v, size_t n,
                           size_t stride, size_t hd) {
    accum2_kv(o0, o1, p0, p1, v, n, stride, hd, 1);
}

/* vcvtps2ph, round to nearest even: kern_to_f16's bits */
static AVX2 void to_f16(uint16_t *h, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(h + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    if (i < n) kern_to_f16(h + i, x + i, n - i);
}

/* exp(x) for x <= 0: x = n ln2 + r (ln2 in two parts, |r| <= ln2/2), exp(r) by Cephes'
 * degree-6 polynomial (expf's to 2 ulp), times 2^n built in the exponent bits. Below
 * -87.3 it is exp(-87.3), 1.2e-38 (nothing beside the softmax's largest term, 1); a NaN
 * passes through. */
INLINE AVX2 __m256 exp_neg(__m256 x) {
    __m256 x0 = x, nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
    __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    return _mm256_blendv_ps(y, x0, nan);
}

static AVX2 float exps(float *s, size_t n, float m) {
    __m256 vm = _mm256_set1_ps(m), acc = _mm256_setzero_ps();
    size_t t = 0;
    for (; t + 8 <= n; t += 8) {
        __m256 e = exp_neg(_mm256_sub_ps(_mm256_loadu_ps(s + t), vm));
        _mm256_storeu_ps(s + t, e);
        acc = _mm256_add_ps(acc, e);
    }
    float sum = hsum(acc);
    for (; t < n; t++) {
        s[t] = expf(s[t] - m);
        sum += s[t];
    }
    return sum;
}

/* ---- quantized weights (quant.h has the layouts; kern.c the reference kernels) ----
 * The same walk as matmul() above: slabs of W that stay in L2, tiles of QX rows of x by
 * QW rows of W, the next tile prefetched. Only the inner step differs per type. */

/* QX x 3 tiles for prefill; one row of x (decode) takes 4 rows of W at a time, more
 * independent streams for the same registers */
enum { QX = 4, QW = 4 };

/* Block g of a Q4 (t) or Q8 row as int16: elements 0..15 in *lo, 16..31 in *hi. Q4: the 16
 * bytes zero-extended to 16-bit lanes (one shuffle), the low nibbles masked and the high
 * ones shifted down, 8 subtracted; Q8: the 32 bytes sign-extended. */
INLINE AVX2 void block16(wq_type t, const void *row, size_t g, __m256i *lo, __m256i *hi) {
    if (t == WQ_Q8) {
        const int8_t *qb = (const int8_t *)row + g * 32;
        *lo = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)qb));
        *hi = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(qb + 16)));
        return;
    }
    const __m256i m15 = _mm256_set1_epi16(15), e8 = _mm256_set1_epi16(8);
    __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)((const uint8_t *)row + g * 16)));
    *lo = _mm256_sub_epi16(_mm256_and_si256(v, m15), e8);
    *hi = _mm256_sub_epi16(_mm256_srli_epi16(v, 4), e8);
}

/* Q4 (w4a8) and Q8 (w8a16), t: activations per block of 32 as int16 (kern_quant_blocks). Per
 * block the 32 weights as int16 (block16); pmaddwd against the block's int16 activations
 * gives 8 exact int32 sums; converted, they are scaled by hs * d (the reference's product;
 * d the block's f16 scale for Q4, the row's f32 scale for Q8) into f32 accumulators. Only
 * the order of the f32 adds differs from the reference (and for Q8, whose block sums can
 * pass 2^24, they are converted as exact partial sums, not rounded whole). */
INLINE AVX2 void tile_w16(wq_type t, float *y, size_t ldy, const kern_xq *xq, const qweight *w, size_t o,
                          size_t in, int nx, int nw) {
    __m256 acc[QX][QW];
    int q8 = t == WQ_Q8;
    size_t nb = in / 32, rb = q8 ? in : in / 2, bb = q8 ? 32 : 16; /* bytes per row and per block */
    size_t ng = q8 ? 1 : in / w->group, gb = q8 ? nb : w->group / 32;
    const uint8_t *q = (const uint8_t *)w->data + o * rb;
    const uint16_t *d = (const uint16_t *)w->scales + o * ng; /* Q4 */
    const float *sw = q8 ? (const float *)w->scales + o : NULL; /* Q8 */
#pragma GCC unroll 4
    for (int a = 0; a < nx; a++)
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) acc[a][b] = _mm256_setzero_ps();
    const char *next = (const char *)(q + (size_t)nw * rb);
    size_t g = 0;
    /* Q4 in groups of 32: eight blocks' d widened at once (vcvtph2ps) and multiplied by their
     * hs, each block's product then taken from its lane: the same products as below. (Q8's
     * row scale the same way, eight blocks at a time, read DRAM a third slower.) */
    for (; !q8 && gb == 1 && g + 8 <= nb; g += 8) {
        for (int b = 0; b < nw; b++)
            for (size_t c = 0; c < 8 * bb; c += 64) _mm_prefetch(next + (size_t)b * rb + g * bb + c, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) {
            __m256 dv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(d + (size_t)b * ng + g)));
            __m256 sc[QX];
#pragma GCC unroll 4
            for (int a = 0; a < nx; a++) sc[a] = _mm256_mul_ps(_mm256_loadu_ps(xq->hs + (size_t)a * nb + g), dv);
            for (int j = 0; j < 8; j++) {
                __m256i lo, hi;
                block16(t, q + (size_t)b * rb, g + (size_t)j, &lo, &hi);
                __m256i lane = _mm256_set1_epi32(j);
#pragma GCC unroll 4
                for (int a = 0; a < nx; a++) {
                    const int16_t *h = xq->h + (size_t)a * in + (g + (size_t)j) * 32;
                    __m256i s = _mm256_add_epi32(_mm256_madd_epi16(lo, _mm256_loadu_si256((const __m256i *)h)),
                                                 _mm256_madd_epi16(hi, _mm256_loadu_si256((const __m256i *)(h + 16))));
                    acc[a][b] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_permutevar8x32_ps(sc[a], lane), acc[a][b]);
                }
            }
        }
    }
    for (; g < nb; g++) {
        if (g % (q8 ? 2 : 4) == 0)
            for (int b = 0; b < nw; b++)
                for (size_t c = 0; c < (q8 ? 2 : 4) * bb; c += 64) _mm_prefetch(next + (size_t)b * rb + g * bb + c, _MM_HINT_T0);
        /* every row's block loaded before any is used, the next tile prefetched a line per row
         * per 64 bytes: Q8's decode streams from DRAM 3-5% faster than otherwise (a tile
         * further ahead or none: 10% slower) */
        __m256i lov[QW], hiv[QW];
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) block16(t, q + (size_t)b * rb, g, &lov[b], &hiv[b]);
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) {
            __m256i lo = lov[b], hi = hiv[b];
            __m256 dw = _mm256_set1_ps(q8 ? sw[b] : _cvtsh_ss(d[(size_t)b * ng + g / gb]));
#pragma GCC unroll 4
            for (int a = 0; a < nx; a++) {
                const int16_t *h = xq->h + (size_t)a * in + g * 32;
                __m256i s = _mm256_add_epi32(_mm256_madd_epi16(lo, _mm256_loadu_si256((const __m256i *)h)),
                                             _mm256_madd_epi16(hi, _mm256_loadu_si256((const __m256i *)(h + 16))));
                __m256 sc = _mm256_mul_ps(_mm256_broadcast_ss(xq->hs + (size_t)a * nb + g), dw);
                acc[a][b] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), sc, acc[a][b]);
            }
        }
    }
#pragma GCC unroll 4
    for (int a = 0; a < nx; a++)
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) y[(size_t)a * ldy + b] = hsum(acc[a][b]);
}

/* Q4 (w4a8: its h within int8, as u = h + 128), two blocks at a time: 32
 * bytes of W are blocks g and g + 1, whose low nibbles are both blocks' columns 0..15 and
 * high nibbles columns 16..31 (quant.h's layout); the activations of the two blocks are
 * rearranged to match (one permute per half, once per row of x for all 4 rows of W). One
 * maddubs per half multiplies q + 8 (unsigned, 0..15, no offset to subtract) with h, and
 * 8 * h (a third maddubs, per row of x) takes the offset back out in int16 (|sum| <=
 * 2 * 3810 + 4064): per lane a partial sum of S exact; pmaddwd by ones, lanes 0..3 block
 * g's, 4..7 block g + 1's, converted and scaled by hs * d (the reference's product) in
 * f32, as tile_w16 (only the order of the f32 adds differs from the reference). */
INLINE AVX2 void tile_q4(float *y, size_t ldy, const kern_xq *xq, const qweight *w, size_t o, size_t in, int nx,
                         int nw) {
    __m256 acc[QX][QW];
    size_t nb = in / 32, rb = in / 2, ng = in / w->group;
    const uint8_t *q = (const uint8_t *)w->data + o * rb;
    const uint16_t *d = (const uint16_t *)w->scales + o * ng;
    const __m256i m15 = _mm256_set1_epi8(15), flip = _mm256_set1_epi8((char)0x80), e8 = _mm256_set1_epi8(8),
                  ones = _mm256_set1_epi16(1);
#pragma GCC unroll 4
    for (int a = 0; a < nx; a++)
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) acc[a][b] = _mm256_setzero_ps();
    const char *next = (const char *)(q + 2 * (size_t)nw * rb); /* two tiles ahead */
    for (size_t g = 0; g < nb; g += 8) {
        for (int b = 0; b < nw; b++) {
            _mm_prefetch(next + (size_t)b * rb + g * 16, _MM_HINT_T0);
            _mm_prefetch(next + (size_t)b * rb + g * 16 + 64, _MM_HINT_T0);
        }
        __m256 sc[QX][QW];
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) {
            const uint16_t *db = d + (size_t)b * ng;
            __m256 dv = w->group == 32 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(db + g)))
                                       : _mm256_setr_m128(_mm_set1_ps(_cvtsh_ss(db[g / 4])), _mm_set1_ps(_cvtsh_ss(db[g / 4 + 1])));
#pragma GCC unroll 4
            for (int a = 0; a < nx; a++) sc[a][b] = _mm256_mul_ps(_mm256_loadu_ps(xq->hs + (size_t)a * nb + g), dv);
        }
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++) {
            __m256i lo[QX], hi[QX], c[QX];
            const __m256i lane = _mm256_setr_epi32(2 * p, 2 * p, 2 * p, 2 * p, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1);
#pragma GCC unroll 4
            for (int a = 0; a < nx; a++) {
                const uint8_t *u = xq->u + (size_t)a * in + (g + 2 * (size_t)p) * 32;
                __m256i A = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)u), flip);
                __m256i B = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(u + 32)), flip);
                lo[a] = _mm256_permute2x128_si256(A, B, 0x20);
                hi[a] = _mm256_permute2x128_si256(A, B, 0x31);
                c[a] = _mm256_add_epi16(_mm256_maddubs_epi16(e8, lo[a]), _mm256_maddubs_epi16(e8, hi[a]));
            }
#pragma GCC unroll 4
            for (int b = 0; b < nw; b++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(q + (size_t)b * rb + (g + 2 * (size_t)p) * 16));
                __m256i wl = _mm256_and_si256(v, m15), wh = _mm256_and_si256(_mm256_srli_epi16(v, 4), m15);
#pragma GCC unroll 4
                for (int a = 0; a < nx; a++) {
                    __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(wl, lo[a]), _mm256_maddubs_epi16(wh, hi[a]));
                    __m256i s = _mm256_madd_epi16(_mm256_sub_epi16(s16, c[a]), ones);
                    acc[a][b] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_permutevar8x32_ps(sc[a][b], lane), acc[a][b]);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int a = 0; a < nx; a++)
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) y[(size_t)a * ldy + b] = hsum(acc[a][b]);
}

/* 8DA4W: integer dot products on the int16 h = xq - zp (in [-255, 255]): per 32-block
 * the weights widened to int16 as Q4's, pmaddwd against h gives 8 exact int32 sums of
 * (xq - zp) * q, converted and scaled by the block's f32 scale into f32 accumulators, the
 * row's scale applied at the end. So each group's integer sum is exact and only the f32
 * adds are ordered differently from the reference. (pmaddwd here does what maddubs +
 * a second maddubs for the zero point + pmaddwd did before, in one instruction fewer per
 * row of x; AVX-512 VNNI / AVX-VNNI would fuse more, with no machine here to test it.) */
INLINE AVX2 void tile_8da4w(float *y, size_t ldy, const kern_xq *xq, const qweight *w, size_t o, size_t in,
                            int nx, int nw) {
    __m256 acc[QX][QW];
    size_t ng = in / 32, rb = in / 2;
    const uint8_t *q = (const uint8_t *)w->data + o * rb;
    const float *sg = (const float *)w->scales + o * ng;
    const __m256i m15 = _mm256_set1_epi16(15), e8 = _mm256_set1_epi16(8);
#pragma GCC unroll 4
    for (int a = 0; a < nx; a++)
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) acc[a][b] = _mm256_setzero_ps();
    const char *next = (const char *)(q + (size_t)nw * rb);
    for (size_t g = 0; g < ng; g++) {
        if (g % 4 == 0)
            for (int b = 0; b < nw; b++) _mm_prefetch(next + (size_t)b * rb + g * 16, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) {
            __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(q + (size_t)b * rb + g * 16)));
            __m256i lo = _mm256_sub_epi16(_mm256_and_si256(v, m15), e8);
            __m256i hi = _mm256_sub_epi16(_mm256_srli_epi16(v, 4), e8);
            __m256 sc = _mm256_broadcast_ss(sg + (size_t)b * ng + g);
#pragma GCC unroll 4
            for (int a = 0; a < nx; a++) {
                const int16_t *h = xq->h + (size_t)a * in + g * 32;
                __m256i s = _mm256_add_epi32(_mm256_madd_epi16(lo, _mm256_loadu_si256((const __m256i *)h)),
                                             _mm256_madd_epi16(hi, _mm256_loadu_si256((const __m256i *)(h + 16))));
                acc[a][b] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), sc, acc[a][b]);
            }
        }
    }
#pragma GCC unroll 4
    for (int a = 0; a < nx; a++)
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) y[(size_t)a * ldy + b] = xq->scale[a] * hsum(acc[a][b]);
}

INLINE AVX2 int32_t hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* 8DA8W: 16 weights widened int8 -> int16 per step; pmaddwd against h = xq - zp gives 8
 * exact int32 sums, added in int32 over the whole row (kern.c: no overflow), so S is the
 * reference's integer and y = (sx * s) * S its bits. */
INLINE AVX2 void tile_8da8w(float *y, size_t ldy, const kern_xq *xq, const qweight *w, size_t o, size_t in,
                            int nx, int nw) {
    __m256i acc[QX][QW];
    const int8_t *q = (const int8_t *)w->data + o * in;
#pragma GCC unroll 4
    for (int a = 0; a < nx; a++)
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) acc[a][b] = _mm256_setzero_si256();
    const char *next = (const char *)(q + (size_t)nw * in);
    size_t k = 0;
    for (; k + 16 <= in; k += 16) {
        if (k % 64 == 0)
            for (int b = 0; b < nw; b++) _mm_prefetch(next + (size_t)b * in + k, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) {
            __m256i wv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(q + (size_t)b * in + k)));
#pragma GCC unroll 4
            for (int a = 0; a < nx; a++)
                acc[a][b] = _mm256_add_epi32(
                    acc[a][b], _mm256_madd_epi16(wv, _mm256_loadu_si256((const __m256i *)(xq->h + (size_t)a * in + k))));
        }
    }
#pragma GCC unroll 4
    for (int a = 0; a < nx; a++)
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) {
            int32_t S = hsum_i32(acc[a][b]);
            for (size_t j = k; j < in; j++) S += xq->h[(size_t)a * in + j] * q[(size_t)b * in + j];
            y[(size_t)a * ldy + b] = (xq->scale[a] * ((const float *)w->scales)[o + (size_t)b]) * (float)S;
        }
}

/* The slab/tile walk of matmul() for quantized weights; t is a constant after inlining. */
INLINE AVX2 void qmatmul(wq_type t, float *y, const float *x, const kern_xq *xq, const qweight *w, size_t n,
                         size_t in, size_t out, size_t o0, size_t o1) {
    (void)x; /* every quantized type reads xq */
    size_t rowb = t == WQ_Q8 || t == WQ_8DA8W ? in : in / 2, qw = n == 1 ? 4 : 3, slab = SLAB / rowb / 12 * 12;
    int q4x = t == WQ_Q4 && in % 256 == 0 && xq->u; /* tile_q4's case (groups of 32 or 128) */
    if (slab < 12) slab = 12;
    for (size_t s0 = o0; s0 < o1; s0 += slab) {
        size_t s1 = s0 + slab < o1 ? s0 + slab : o1;
        for (size_t i = 0; i < n; i += QX) {
            int nx = n - i < QX ? (int)(n - i) : QX;
            kern_xq xi = {0};
            if (t == WQ_8DA4W || t == WQ_8DA8W) xi = (kern_xq){xq->q + i * in, xq->u + i * in, xq->scale + i, xq->zp + i, xq->h + i * in, 0, 0};
            if (t == WQ_Q4 || t == WQ_Q8) xi = (kern_xq){0, t == WQ_Q4 ? xq->u + i * in : 0, 0, 0, xq->h + i * in, xq->hs + i * (in / 32), 0};
            for (size_t o = s0; o < s1; o += qw) {
                int nw = s1 - o < qw ? (int)(s1 - o) : (int)qw;
                float *yt = y + i * out + o;
                switch (nx * 8 + nw) {
#define T(A, B)                                                                                    \
    case A * 8 + B:                                                                                \
        if (t == WQ_Q4 && q4x) tile_q4(yt, out, &xi, w, o, in, A, B);                              \
        else if (t == WQ_Q8 || t == WQ_Q4) tile_w16(t, yt, out, &xi, w, o, in, A, B);              \
        else if (t == WQ_8DA8W) tile_8da8w(yt, out, &xi, w, o, in, A, B);                           \
        else tile_8da4w(yt, out, &xi, w, o, in, A, B);                                             \
        break;
                    T(1, 1) T(1, 2) T(1, 3) T(1, 4) T(2, 1) T(2, 2) T(2, 3) T(3, 1) T(3, 2) T(3, 3) T(4, 1) T(4, 2) T(4, 3)
#undef T
                }
            }
        }
    }
}

static AVX2 void qmatmul_q8(float *y, const float *x, const kern_xq *xq, const qweight *w, size_t n, size_t in,
                            size_t out, size_t o0, size_t o1) {
    qmatmul(WQ_Q8, y, x, xq, w, n, in, out, o0, o1);
}
static AVX2 void qmatmul_q4(float *y, const float *x, const kern_xq *xq, const qweight *w, size_t n, size_t in,
                            size_t out, size_t o0, size_t o1) {
    qmatmul(WQ_Q4, y, x, xq, w, n, in, out, o0, o1);
}
static AVX2 void qmatmul_8da4w(float *y, const float *x, const kern_xq *xq, const qweight *w, size_t n,
                               size_t in, size_t out, size_t o0, size_t o1) {
    qmatmul(WQ_8DA4W, y, x, xq, w, n, in, out, o0, o1);
}

static AVX2 void qmatmul_8da8w(float *y, const float *x, const kern_xq *xq, const qweight *w, size_t n,
                               size_t in, size_t out, size_t o0, size_t o1) {
    qmatmul(WQ_8DA8W, y, x, xq, w, n, in, out, o0, o1);
}

/* kern_rmsnorm's sum: its 8 double sums are lanes of two vectors (the squares are exact
 * in double, so an FMA rounds as its add does), the same tree after; then y = w (x r) with
 * kern_rmsnorm's two roundings. */
static AVX2 void rmsnorm(float *y, const float *x, const float *w, size_t n, size_t dim, float eps) {
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * dim;
        float *yi = y + i * dim;
        __m256d a = _mm256_setzero_pd(), b = _mm256_setzero_pd();
        size_t j = 0;
        for (; j + 8 <= dim; j += 8) {
            __m256d lo = _mm256_cvtps_pd(_mm_loadu_ps(xi + j)), hi = _mm256_cvtps_pd(_mm_loadu_ps(xi + j + 4));
            a = _mm256_fmadd_pd(lo, lo, a);
            b = _mm256_fmadd_pd(hi, hi, b);
        }
        double s8[8];
        _mm256_storeu_pd(s8, a);
        _mm256_storeu_pd(s8 + 4, b);
        double ss = ((s8[0] + s8[1]) + (s8[2] + s8[3])) + ((s8[4] + s8[5]) + (s8[6] + s8[7]));
        for (; j < dim; j++) ss += (double)xi[j] * xi[j];
        float r = 1.0f / sqrtf((float)(ss / (double)dim) + eps);
        __m256 vr = _mm256_set1_ps(r);
        for (j = 0; j + 8 <= dim; j += 8)
            _mm256_storeu_ps(yi + j, _mm256_mul_ps(_mm256_loadu_ps(w + j), _mm256_mul_ps(_mm256_loadu_ps(xi + j), vr)));
        for (; j < dim; j++) yi[j] = w[j] * (xi[j] * r);
    }
}

/* silu(g) * u with e = exp(-|g|): sigmoid(g) = 1/(1+e) for g >= 0, e/(1+e) below (no
 * overflow either way); below -87.3 (where e is clamped) sigmoid is 0, as expf gives
 * there to within a subnormal, and -inf gives NaN as the generic code does; a NaN g gives
 * NaN. */
static AVX2 void swiglu(float *y, const float *g, const float *u, size_t n) {
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gv = _mm256_loadu_ps(g + i);
        __m256 e = exp_neg(_mm256_or_ps(gv, sign)); /* -|g| */
        __m256 r = _mm256_div_ps(one, _mm256_add_ps(one, e));
        __m256 s = _mm256_blendv_ps(r, _mm256_mul_ps(e, r), gv); /* sign bit set: g < 0 */
        s = _mm256_andnot_ps(_mm256_cmp_ps(gv, _mm256_set1_ps(-87.3f), _CMP_LT_OQ), s);
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(gv, s), _mm256_loadu_ps(u + i)));
    }
    kern_swiglu(y + i, g + i, u + i, n - i);
}

#define PT AVX2
#define DOT_UB(s, u, b) _mm256_add_epi16(s, _mm256_maddubs_epi16(u, b))
#define SUM_UB(s) _mm256_madd_epi16(s, _mm256_set1_epi16(1))
#define DOT_WS(s, a, b) _mm256_add_epi32(s, _mm256_madd_epi16(a, b))
#define KEEP(v) __asm__("" : "+x"(v))
#define NIBX 6
#define NIBX_8DA4W 5
#define PAIRX 4
#include "kern_panels.h"

/* ---- activation quantization: kern.c's kern_quant_act and kern_quant_blocks, bit for bit
 * (min, max, one IEEE product or quotient per element, RNE conversion, saturating packs
 * for the clamps), 32 elements at a time. in is a multiple of 32 for every quantized
 * weight; any rest goes to the scalar code. */

INLINE AVX2 float hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE AVX2 float hmin(__m256 v) {
    __m128 s = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_min_ps(s, _mm_movehl_ps(s, s));
    s = _mm_min_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Nonzero if any of x*0 is not 0: a NaN or an infinity among the 8. */
INLINE AVX2 int nonfinite(__m256 x) {
    return _mm256_movemask_ps(_mm256_cmp_ps(_mm256_mul_ps(x, _mm256_setzero_ps()), _mm256_setzero_ps(), _CMP_NEQ_UQ));
}

static AVX2 void quant_act(int8_t *q, uint8_t *u, int16_t *h, float *scale, int32_t *zp, const float *x,
                           size_t in) {
    size_t n32 = in / 32 * 32;
    if (n32 < in) { /* not a layout any weight has: the reference, then u and h */
        kern_quant_act(q, scale, zp, x, in);
        for (size_t k = 0; k < in; k++) u[k] = (uint8_t)(q[k] ^ 0x80), h[k] = (int16_t)(q[k] - *zp);
        return;
    }
    __m256 mn = _mm256_setzero_ps(), mx = _mm256_setzero_ps();
    int bad = 0;
    for (size_t k = 0; k < in; k += 8) {
        __m256 v = _mm256_loadu_ps(x + k);
        mn = _mm256_min_ps(mn, v);
        mx = _mm256_max_ps(mx, v);
        bad |= nonfinite(v);
    }
    if (bad) {
        memset(q, 0, in);
        memset(u, 0x80, in);
        memset(h, 0, in * sizeof *h);
        *scale = NAN;
        *zp = 0;
        return;
    }
    float fmn = hmin(mn), fmx = hmax(mx);
    float s = fmaxf((fmx - fmn) / 255.0f, FLT_MIN), id = 1.0f / s;
    float z = -128.0f - rintf(fmaxf(fmn / s, -1e6f));
    int32_t zi = (int32_t)(z < -128 ? -128 : z > 127 ? 127 : z);
    const __m256 vid = _mm256_set1_ps(id), lo = _mm256_set1_ps(-512), hi = _mm256_set1_ps(512);
    const __m256i vz = _mm256_set1_epi32(zi), perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7),
                  vz16 = _mm256_set1_epi16((short)zi), flip = _mm256_set1_epi8((char)0x80);
    for (size_t k = 0; k < in; k += 32) {
        __m256i r[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            __m256 v = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(x + k + 8 * j), vid), lo), hi);
            r[j] = _mm256_add_epi32(_mm256_cvtps_epi32(v), vz);
        }
        __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
        b = _mm256_permutevar8x32_epi32(b, perm);
        _mm256_storeu_si256((__m256i *)(q + k), b);
        _mm256_storeu_si256((__m256i *)(u + k), _mm256_xor_si256(b, flip));
        _mm256_storeu_si256((__m256i *)(h + k), _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(b)), vz16));
        _mm256_storeu_si256((__m256i *)(h + k + 16),
                            _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(b, 1)), vz16));
    }
    *scale = s;
    *zp = zi;
}

static AVX2 void quant_blocks(int16_t *h, uint8_t *u, float *hs, const float *x, size_t in, int qmax) {
    const float m = (float)qmax;
    const __m256 sign = _mm256_set1_ps(-0.0f), lo = _mm256_set1_ps(-m), hi = _mm256_set1_ps(m);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7), flip = _mm256_set1_epi8((char)0x80);
    for (size_t b = 0; b < in / 32; b++, x += 32, h += 32) {
        __m256 v[4], mx = _mm256_setzero_ps();
        int bad = 0;
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            v[j] = _mm256_loadu_ps(x + 8 * j);
            mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v[j]));
            bad |= nonfinite(v[j]);
        }
        float d = hmax(mx) / m;
        hs[b] = bad ? NAN : d;
        if (!(hs[b] > 0)) {
            memset(h, 0, 32 * sizeof *h);
            if (u) memset(u + b * 32, 128, 32);
            continue;
        }
        __m256 vd = _mm256_set1_ps(d);
        __m256i r[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            r[j] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_div_ps(v[j], vd), lo), hi));
        __m256i p0 = _mm256_packs_epi32(r[0], r[1]), p1 = _mm256_packs_epi32(r[2], r[3]);
        _mm256_storeu_si256((__m256i *)h, _mm256_permute4x64_epi64(p0, 0xd8));
        _mm256_storeu_si256((__m256i *)(h + 16), _mm256_permute4x64_epi64(p1, 0xd8));
        if (u) /* |h| <= 127 here */
            _mm256_storeu_si256((__m256i *)(u + b * 32),
                                _mm256_xor_si256(_mm256_permutevar8x32_epi32(_mm256_packs_epi16(p0, p1), perm), flip));
    }
}

const kern_ops kern_avx2 = {
    .name = "avx2",
    .matmul = {[ST_F32] = matmul_f32, [ST_F16] = matmul_f16, [ST_BF16] = matmul_bf16},
    .qmatmul = {[WQ_Q8] = qmatmul_q8, [WQ_Q4] = qmatmul_q4, [WQ_8DA4W] = qmatmul_8da4w, [WQ_8DA8W] = qmatmul_8da8w},
    .scores = scores,
    .accum = accum,
    .scores16 = scores16,
    .accum16 = accum16,
    .scores2 = scores2,
    .accum2 = accum2,
    .scores2_16 = scores2_16,
    .accum2_16 = accum2_16,
    .to_f16 = to_f16,
    .exps = exps,
    .swiglu = swiglu,
    .rmsnorm = rmsnorm,
    .quant_act = quant_act,
    .quant_blocks = quant_blocks,
    .panel = {[WQ_Q8] = panel_q8, [WQ_Q4] = panel_q4, [WQ_8DA4W] = panel_8da4w, [WQ_8DA8W] = panel_8da8w},
};
#else
/* ISO C wants something in every translation unit. */
typedef int kern_avx2_empty;
#endif

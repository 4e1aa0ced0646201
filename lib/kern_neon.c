/* kern_neon: the matmul and attention's inner loops for AArch64 Advanced SIMD, in two
 * variants: "neon" (every AArch64 CPU: Advanced SIMD is part of the base ISA) and
 * "neon-dot", the same but with 8da4w's and 8da8w's integer dots on SDOT (the dot-product
 * extension: optional from ARMv8.2, required from v8.4; kern_variants() asks getauxval for
 * HWCAP_ASIMDDP). SDOT is written as one inline instruction, so the file builds with the
 * base aarch64 flags and the compiler never emits it anywhere else.
 *
 * The walk is kern_avx2.c's (read its notes): tiles of NX rows of x by NW rows of W, W
 * in slabs of ~256 KiB that stay in L2 while every row of x passes; each W vector is
 * widened to f32 once per tile and used NX times. 4x4 tiles: 16 accumulators of 4 floats
 * plus the widened W fit the 32 vector registers. Each y element is one accumulator
 * summed the same way whatever the tile's shape, so results do not depend on how rows
 * are split between threads or how many positions come at once. Widening is exact
 * (bf16: shift left 16; f16: FCVTL; int8: SXTL then SCVTF), so only the order of the f32
 * adds differs from the generic kernels. No software prefetch: AVX2's earned its place on
 * one x86 machine, and whether it helps a given ARM core only a board can measure. */
#if defined(__aarch64__)
#include <arm_neon.h>
#include <stdint.h>

#include "kern.h"

#define INLINE static inline __attribute__((always_inline))

enum { NX = 4, NW = 4, SLAB = 256 * 1024 };

INLINE float32x4_t load_w(const void *w, st_dtype t, size_t k) {
    if (t == ST_F32) return vld1q_f32((const float *)w + k);
    uint16x4_t h = vld1_u16((const uint16_t *)w + k);
    if (t == ST_F16) return vcvt_f32_f16(vreinterpret_f16_u16(h));
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
}

INLINE float widen(const void *w, st_dtype t, size_t k) {
    if (t == ST_F32) return ((const float *)w)[k];
    if (t == ST_F16) return kern_f16(((const uint16_t *)w)[k]);
    return kern_bf16(((const uint16_t *)w)[k]);
}

/* y[a*ldy + b] = x row a . W row b, for a < nx, b < nw (constants after inlining). */
INLINE void tile(float *y, size_t ldy, const float *x, const void *w, st_dtype t, size_t in, int nx, int nw) {
    float32x4_t acc[NX][NW];
#pragma GCC unroll 4
    for (int a = 0; a < nx; a++)
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) acc[a][b] = vdupq_n_f32(0);
    size_t k = 0;
    for (; k + 4 <= in; k += 4) {
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) {
            float32x4_t wv = load_w(w, t, (size_t)b * in + k);
#pragma GCC unroll 4
            for (int a = 0; a < nx; a++) acc[a][b] = vfmaq_f32(acc[a][b], vld1q_f32(x + (size_t)a * in + k), wv);
        }
    }
#pragma GCC unroll 4
    for (int a = 0; a < nx; a++)
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) {
            float s = vaddvq_f32(acc[a][b]);
            for (size_t j = k; j < in; j++) s += x[(size_t)a * in + j] * widen(w, t, (size_t)b * in + j);
            y[(size_t)a * ldy + b] = s;
        }
}

/* One instance of tile per (nx, nw) so that acc stays in registers. */
INLINE void tile_any(float *y, size_t ldy, const float *x, const void *w, st_dtype t, size_t in, int nx,
                     int nw) {
    switch (nx * 8 + nw) {
#define T(a, b) case a * 8 + b: tile(y, ldy, x, w, t, in, a, b); break;
        T(1, 1) T(1, 2) T(1, 3) T(1, 4)
        T(2, 1) T(2, 2) T(2, 3) T(2, 4)
        T(3, 1) T(3, 2) T(3, 3) T(3, 4)
        T(4, 1) T(4, 2) T(4, 3) T(4, 4)
#undef T
    }
}

INLINE void matmul(float *y, const float *x, const void *w, st_dtype t, size_t n, size_t in, size_t out,
                   size_t o0, size_t o1) {
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

static void matmul_f32(float *y, const float *x, const void *w, size_t n, size_t in, size_t out, size_t o0,
                       size_t o1) {
    matmul(y, x, w, ST_F32, n, in, out, o0, o1);
}
static void matmul_f16(float *y, const float *x, const void *w, size_t n, size_t in, size_t out, size_t o0,
                       size_t o1) {
    matmul(y, x, w, ST_F16, n, in, out, o0, o1);
}
static void matmul_bf16(float *y, const float *x, const void *w, size_t n, size_t in, size_t out, size_t o0,
                        size_t o1) {
    matmul(y, x, w, ST_BF16, n, in, out, o0, o1);
}

/* K and V rows are f32, or f16 (half: kern_attention_f16) widened (FCVTL) as they are
 * loaded; the arithmetic is the same, so f16 rows give what their f32 values would. */
INLINE float32x4_t ldkv(const void *p, size_t i, int half) {
    if (half) return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)p + i)));
    return vld1q_f32((const float *)p + i);
}
INLINE float kv1(const void *p, size_t i, int half) {
    return half ? kern_f16(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

/* Four accumulators: a 128-float row is 32 vectors, four chains of eight FMAs. */
INLINE void scores_kv(float *s, const float *q, const void *k, size_t n, size_t stride, size_t hd, int half) {
    for (size_t t = 0; t < n; t++) {
        size_t r0 = t * stride;
        float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0;
        size_t j = 0;
        for (; j + 16 <= hd; j += 16) {
            a0 = vfmaq_f32(a0, vld1q_f32(q + j), ldkv(k, r0 + j, half));
            a1 = vfmaq_f32(a1, vld1q_f32(q + j + 4), ldkv(k, r0 + j + 4, half));
            a2 = vfmaq_f32(a2, vld1q_f32(q + j + 8), ldkv(k, r0 + j + 8, half));
            a3 = vfmaq_f32(a3, vld1q_f32(q + j + 12), ldkv(k, r0 + j + 12, half));
        }
        for (; j + 4 <= hd; j += 4) a0 = vfmaq_f32(a0, vld1q_f32(q + j), ldkv(k, r0 + j, half));
        float r = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
        for (; j < hd; j++) r += q[j] * kv1(k, r0 + j, half);
        s[t] = r;
    }
}

static void scores(float *s, const float *q, const float *k, size_t n, size_t stride, size_t hd) {
    scores_kv(s, q, k, n, stride, hd, 0);
}
static void scores16(float *s, const float *q, const uint16_t *k, size_t n, size_t stride, size_t hd) {
    scores_kv(s, q, k, n, stride, hd, 1);
}

/* o in registers, 64 floats at a time, while the n rows of V stream past. */
INLINE void accum_kv(float *o, const float *p, const void *v, size_t n, size_t stride, size_t hd, int half) {
    size_t j = 0;
    for (; j + 64 <= hd; j += 64) {
        float32x4_t r[16];
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) r[i] = vld1q_f32(o + j + 4 * i);
        for (size_t t = 0; t < n; t++) {
            float32x4_t pt = vdupq_n_f32(p[t]);
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++) r[i] = vfmaq_f32(r[i], pt, ldkv(v, t * stride + j + 4 * i, half));
        }
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) vst1q_f32(o + j + 4 * i, r[i]);
    }
    for (; j + 4 <= hd; j += 4) {
        float32x4_t r = vld1q_f32(o + j);
        for (size_t t = 0; t < n; t++) r = vfmaq_f32(r, vdupq_n_f32(p[t]), ldkv(v, t * stride + j, half));
        vst1q_f32(o + j, r);
    }
    for (; j < hd; j++)
        for (size_t t = 0; t < n; t++) o[j] += p[t] * kv1(v, t * stride + j, half);
}

static void accum(float *o, const float *p, const float *v, size_t n, size_t stride, size_t hd) {
    accum_kv(o, p, v, n, stride, hd, 0);
}
static void accum16(float *o, const float *p, const uint16_t *v, size_t n, size_t stride, size_t hd) {
    accum_kv(o, p, v, n, stride, hd, 1);
}

/* FCVTN under the default FPCR (round to nearest even, subnormals kept): kern_to_f16's bits */
static void to_f16(uint16_t *h, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1_u16(h + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    if (i < n) kern_to_f16(h + i, x + i, n - i);
}

/* ---- quantized weights (quant.h has the layouts; kern.c the reference kernels) ----
 * The same slab and tile walk; only the inner step differs per type. */

/* Q4 (w4a8) and Q8 (w8a16), t: activations per block of 32 as int16 (kern.h; Q4's within
 * int8, where SDOT would serve on a CPU that has it: none here to test). Per block the
 * weights as int8 (Q4: nibble - 8), widened to int16 (SXTL), multiplied with the block's
 * int16 activations into int32 lanes (SMULL/SMLAL: exact), converted and scaled by hs * d,
 * the reference's product (d the block's f16 scale for Q4, the row's f32 scale for Q8).
 * Only the order of the f32 adds differs from the reference (and for Q8, whose block sums
 * can pass 2^24, the conversion of partial sums rather than whole ones). */
INLINE void tile_w16(wq_type t, float *y, size_t ldy, const kern_xq *xq, const qweight *w, size_t o, size_t in,
                     int nx, int nw) {
    float32x4_t acc[NX][NW];
    int q8 = t == WQ_Q8;
    size_t nb = in / 32, rb = q8 ? in : in / 2, ng = q8 ? 1 : in / w->group, gb = q8 ? nb : w->group / 32;
    const uint8_t *q = (const uint8_t *)w->data + o * rb;
    const uint16_t *d = (const uint16_t *)w->scales + o * ng; /* Q4 */
    const float *sw = q8 ? (const float *)w->scales + o : NULL; /* Q8 */
#pragma GCC unroll 4
    for (int a = 0; a < nx; a++)
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) acc[a][b] = vdupq_n_f32(0);
    for (size_t g = 0; g < nb; g++) {
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) {
            int8x16_t lo, hi;
            if (q8) {
                lo = vld1q_s8((const int8_t *)q + (size_t)b * rb + g * 32);
                hi = vld1q_s8((const int8_t *)q + (size_t)b * rb + g * 32 + 16);
            } else {
                uint8x16_t v = vld1q_u8(q + (size_t)b * rb + g * 16);
                lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(15))), vdupq_n_s8(8));
                hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), vdupq_n_s8(8));
            }
            int16x8_t wv[4] = {vmovl_s8(vget_low_s8(lo)), vmovl_high_s8(lo), vmovl_s8(vget_low_s8(hi)),
                               vmovl_high_s8(hi)};
            float dw = q8 ? sw[b] : kern_f16(d[(size_t)b * ng + g / gb]);
#pragma GCC unroll 4
            for (int a = 0; a < nx; a++) {
                const int16_t *h = xq->h + (size_t)a * in + g * 32;
                int32x4_t s = vdupq_n_s32(0);
#pragma GCC unroll 4
                for (int i = 0; i < 4; i++) {
                    int16x8_t hv = vld1q_s16(h + 8 * i);
                    s = vmlal_s16(s, vget_low_s16(wv[i]), vget_low_s16(hv));
                    s = vmlal_high_s16(s, wv[i], hv);
                }
                acc[a][b] = vfmaq_f32(acc[a][b], vcvtq_f32_s32(s), vdupq_n_f32(xq->hs[(size_t)a * nb + g] * dw));
            }
        }
    }
#pragma GCC unroll 4
    for (int a = 0; a < nx; a++)
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) y[(size_t)a * ldy + b] = vaddvq_f32(acc[a][b]);
}

/* 16 bytes of int4 (32 weights) -> the signed values: elements 0..15 in *lo, 16..31 in *hi. */
INLINE void nibbles(const uint8_t *p, int8x16_t *lo, int8x16_t *hi) {
    uint8x16_t v = vld1q_u8(p);
    *lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(15))), vdupq_n_s8(8));
    *hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), vdupq_n_s8(8));
}

/* sum over a 32-block of xq * q in 4 int32 lanes, without SDOT: int8 x int8 products
 * widened to int16 (four per lane: |.| <= 4 * 128 * 8, no overflow), then pairwise to int32. */
INLINE int32x4_t dot32(int8x16_t x0, int8x16_t x1, int8x16_t w0, int8x16_t w1) {
    int16x8_t p = vmull_s8(vget_low_s8(x0), vget_low_s8(w0));
    p = vmlal_high_s8(p, x0, w0);
    p = vmlal_s8(p, vget_low_s8(x1), vget_low_s8(w1));
    p = vmlal_high_s8(p, x1, w1);
    return vpaddlq_s16(p);
}

/* acc + the four lanes' sums of four int8 products: SDOT. Inline assembly rather than
 * vdotq_s32, whose target("+dotprod") would forbid inlining it into the walk below that
 * the plain variant shares. The directive lets the assembler accept the instruction
 * (binutils wants the ARMv8.2 base for it) in the rest of this file, whose code needs
 * nothing beyond Advanced SIMD; it does not change what the compiler emits. */
INLINE int32x4_t sdot(int32x4_t acc, int8x16_t a, int8x16_t b) {
    __asm__(".arch armv8.2-a+dotprod\n\tsdot %0.4s, %1.16b, %2.16b" : "+w"(acc) : "w"(a), "w"(b));
    return acc;
}

INLINE int32x4_t dot32_sdot(int8x16_t x0, int8x16_t x1, int8x16_t w0, int8x16_t w1) {
    return sdot(sdot(vdupq_n_s32(0), x0, w0), x1, w1);
}

/* 8DA4W: integer dot products, G = sum (xq - zp) * q = sum xq*q - zp * sum q per group,
 * each exact in int32 lanes (|G| < 2^24, so its f32 is exact too), then scaled by the
 * group's f32 scale into f32 accumulators. Only the order of the f32 adds differs from
 * the reference. use_sdot picks SDOT (constant after inlining). */
INLINE void tile_8da4w(float *y, size_t ldy, const kern_xq *xq, const qweight *w, size_t o, size_t in,
                               int nx, int nw, int use_sdot) {
    float32x4_t acc[NX][NW];
    int32x4_t zv[NX];
    size_t ng = in / 32, rb = in / 2;
    const uint8_t *q = (const uint8_t *)w->data + o * rb;
    const float *sg = (const float *)w->scales + o * ng;
    const int8x16_t ones = vdupq_n_s8(1);
#pragma GCC unroll 4
    for (int a = 0; a < nx; a++) {
        zv[a] = vdupq_n_s32(xq->zp[a]);
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) acc[a][b] = vdupq_n_f32(0);
    }
    for (size_t g = 0; g < ng; g++) {
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) {
            int8x16_t w0, w1;
            nibbles(q + (size_t)b * rb + g * 16, &w0, &w1);
            int32x4_t sw = use_sdot ? dot32_sdot(ones, ones, w0, w1) : vpaddlq_s16(vaddq_s16(vpaddlq_s8(w0), vpaddlq_s8(w1)));
            float32x4_t sc = vdupq_n_f32(sg[(size_t)b * ng + g]);
#pragma GCC unroll 4
            for (int a = 0; a < nx; a++) {
                const int8_t *xa = xq->q + (size_t)a * in + g * 32;
                int8x16_t x0 = vld1q_s8(xa), x1 = vld1q_s8(xa + 16);
                int32x4_t d = use_sdot ? dot32_sdot(x0, x1, w0, w1) : dot32(x0, x1, w0, w1);
                d = vmlsq_s32(d, zv[a], sw);
                acc[a][b] = vfmaq_f32(acc[a][b], vcvtq_f32_s32(d), sc);
            }
        }
    }
#pragma GCC unroll 4
    for (int a = 0; a < nx; a++)
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) y[(size_t)a * ldy + b] = xq->scale[a] * vaddvq_f32(acc[a][b]);
}

/* 8DA8W: S = sum (xq - zp) * q over the whole row, exact in int32 lanes, so y = (sx * s) * S
 * is the reference's bits. Plain: the 16 weights of a step widened to int16 (SXTL) once per
 * row of W, multiplied with h = xq - zp (SMLAL/SMLAL2). use_sdot: SDOT of xq against the
 * weights and of ones against them (sum q), folded once as sum xq*q - zp * sum q (lane
 * arithmetic wraps, so the integer is S whenever S fits, as kern.c guarantees). */
INLINE void tile_8da8w(float *y, size_t ldy, const kern_xq *xq, const qweight *w, size_t o, size_t in, int nx,
                       int nw, int use_sdot) {
    int32x4_t acc[NX][NW], sw[NW];
    const int8_t *q = (const int8_t *)w->data + o * in;
    const int8x16_t ones = vdupq_n_s8(1);
#pragma GCC unroll 4
    for (int b = 0; b < nw; b++) {
        sw[b] = vdupq_n_s32(0);
#pragma GCC unroll 4
        for (int a = 0; a < nx; a++) acc[a][b] = vdupq_n_s32(0);
    }
    size_t k = 0;
    for (; k + 16 <= in; k += 16) {
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) {
            int8x16_t wv = vld1q_s8(q + (size_t)b * in + k);
            if (use_sdot) {
                sw[b] = sdot(sw[b], ones, wv);
#pragma GCC unroll 4
                for (int a = 0; a < nx; a++) acc[a][b] = sdot(acc[a][b], vld1q_s8(xq->q + (size_t)a * in + k), wv);
            } else {
                int16x8_t w0 = vmovl_s8(vget_low_s8(wv)), w1 = vmovl_high_s8(wv);
#pragma GCC unroll 4
                for (int a = 0; a < nx; a++) {
                    const int16_t *h = xq->h + (size_t)a * in + k;
                    int16x8_t h0 = vld1q_s16(h), h1 = vld1q_s16(h + 8);
                    int32x4_t s = vmlal_s16(acc[a][b], vget_low_s16(w0), vget_low_s16(h0));
                    s = vmlal_high_s16(s, w0, h0);
                    s = vmlal_s16(s, vget_low_s16(w1), vget_low_s16(h1));
                    acc[a][b] = vmlal_high_s16(s, w1, h1);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int a = 0; a < nx; a++)
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) {
            int32x4_t d = use_sdot ? vmlsq_s32(acc[a][b], vdupq_n_s32(xq->zp[a]), sw[b]) : acc[a][b];
            int32_t S = vaddvq_s32(d);
            for (size_t j = k; j < in; j++) S += xq->h[(size_t)a * in + j] * q[(size_t)b * in + j];
            y[(size_t)a * ldy + b] = (xq->scale[a] * ((const float *)w->scales)[o + (size_t)b]) * (float)S;
        }
}

/* The slab/tile walk of matmul() for quantized weights; t and use_sdot are constants after
 * inlining. */
INLINE void qmatmul(wq_type t, int use_sdot, float *y, const float *x, const kern_xq *xq, const qweight *w,
                            size_t n, size_t in, size_t out, size_t o0, size_t o1) {
    (void)x; /* every quantized type reads xq */
    size_t rowb = t == WQ_Q8 || t == WQ_8DA8W ? in : in / 2, slab = SLAB / rowb / NW * NW;
    if (slab < NW) slab = NW;
    for (size_t s0 = o0; s0 < o1; s0 += slab) {
        size_t s1 = s0 + slab < o1 ? s0 + slab : o1;
        for (size_t i = 0; i < n; i += NX) {
            int nx = n - i < NX ? (int)(n - i) : NX;
            kern_xq xi = {0};
            if (t == WQ_8DA4W || t == WQ_8DA8W) xi = (kern_xq){xq->q + i * in, xq->u + i * in, xq->scale + i, xq->zp + i, xq->h + i * in, 0, 0};
            if (t == WQ_Q4 || t == WQ_Q8) xi = (kern_xq){0, 0, 0, 0, xq->h + i * in, xq->hs + i * (in / 32), 0};
            for (size_t o = s0; o < s1; o += NW) {
                int nw = s1 - o < NW ? (int)(s1 - o) : NW;
                float *yt = y + i * out + o;
                switch (nx * 8 + nw) {
#define T(A, B)                                                                                    \
    case A * 8 + B:                                                                                \
        if (t == WQ_Q8 || t == WQ_Q4) tile_w16(t, yt, out, &xi, w, o, in, A, B);                   \
        else if (t == WQ_8DA8W) tile_8da8w(yt, out, &xi, w, o, in, A, B, use_sdot);                 \
        else tile_8da4w(yt, out, &xi, w, o, in, A, B, use_sdot);                                       \
        break;
                    T(1, 1) T(1, 2) T(1, 3) T(1, 4) T(2, 1) T(2, 2) T(2, 3) T(2, 4)
                    T(3, 1) T(3, 2) T(3, 3) T(3, 4) T(4, 1) T(4, 2) T(4, 3) T(4, 4)
#undef T
                }
            }
        }
    }
}

static void qmatmul_q8(float *y, const float *x, const kern_xq *xq, const qweight *w, size_t n, size_t in,
                       size_t out, size_t o0, size_t o1) {
    qmatmul(WQ_Q8, 0, y, x, xq, w, n, in, out, o0, o1);
}
static void qmatmul_q4(float *y, const float *x, const kern_xq *xq, const qweight *w, size_t n, size_t in,
                       size_t out, size_t o0, size_t o1) {
    qmatmul(WQ_Q4, 0, y, x, xq, w, n, in, out, o0, o1);
}
static void qmatmul_8da4w(float *y, const float *x, const kern_xq *xq, const qweight *w, size_t n, size_t in,
                          size_t out, size_t o0, size_t o1) {
    qmatmul(WQ_8DA4W, 0, y, x, xq, w, n, in, out, o0, o1);
}
static void qmatmul_8da4w_sdot(float *y, const float *x, const kern_xq *xq, const qweight *w, size_t n,
                                       size_t in, size_t out, size_t o0, size_t o1) {
    qmatmul(WQ_8DA4W, 1, y, x, xq, w, n, in, out, o0, o1);
}
static void qmatmul_8da8w(float *y, const float *x, const kern_xq *xq, const qweight *w, size_t n, size_t in,
                          size_t out, size_t o0, size_t o1) {
    qmatmul(WQ_8DA8W, 0, y, x, xq, w, n, in, out, o0, o1);
}
static void qmatmul_8da8w_sdot(float *y, const float *x, const kern_xq *xq, const qweight *w, size_t n,
                               size_t in, size_t out, size_t o0, size_t o1) {
    qmatmul(WQ_8DA8W, 1, y, x, xq, w, n, in, out, o0, o1);
}

const kern_ops kern_neon = {
    .name = "neon",
    .matmul = {[ST_F32] = matmul_f32, [ST_F16] = matmul_f16, [ST_BF16] = matmul_bf16},
    .qmatmul = {[WQ_Q8] = qmatmul_q8, [WQ_Q4] = qmatmul_q4, [WQ_8DA4W] = qmatmul_8da4w,
                [WQ_8DA8W] = qmatmul_8da8w},
    .scores = scores,
    .accum = accum,
    .scores16 = scores16,
    .accum16 = accum16,
    .to_f16 = to_f16,
};

/* Only 8da4w and 8da8w change; the rest is neon's. */
const kern_ops kern_neon_dot = {
    .name = "neon-dot",
    .matmul = {[ST_F32] = matmul_f32, [ST_F16] = matmul_f16, [ST_BF16] = matmul_bf16},
    .qmatmul = {[WQ_Q8] = qmatmul_q8, [WQ_Q4] = qmatmul_q4, [WQ_8DA4W] = qmatmul_8da4w_sdot,
                [WQ_8DA8W] = qmatmul_8da8w_sdot},
    .scores = scores,
    .accum = accum,
    .scores16 = scores16,
    .accum16 = accum16,
    .to_f16 = to_f16,
};
#else
/* ISO C wants something in every translation unit. */
typedef int kern_neon_empty;
#endif

/* kern_avx512: the float matmul for x86 with AVX-512F, the same tiling as kern_avx2.c
 * (read that file's notes) with 16-float vectors and 4x4 tiles, which 32 zmm registers
 * hold. The weights are widened to f32 rather than fed to VDPBF16PS: that instruction
 * would round x to bf16 too, an error of 2^-9 per product that the f32 reference (HF in
 * float32) does not make. Decode is bound by memory bandwidth either way.
 * The attention is AVX2's (kern_avx2.c): its scores take 8 keys per horizontal sum, where
 * a zmm version taking one key at a time was slower on Zen 4 (prefill 4%, decode 2-3%). */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <stdint.h>

#include "kern.h"

#define AVX512 __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline))

enum { NX = 4, NW = 4, SLAB = 256 * 1024 };

INLINE AVX512 __m512 load_w(const void *w, st_dtype t, size_t k) {
    if (t == ST_F32) return _mm512_loadu_ps((const float *)w + k);
    __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)w + k));
    if (t == ST_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

INLINE float widen(const void *w, st_dtype t, size_t k) {
    if (t == ST_F32) return ((const float *)w)[k];
    if (t == ST_F16) return kern_f16(((const uint16_t *)w)[k]);
    return kern_bf16(((const uint16_t *)w)[k]);
}

INLINE AVX512 float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

/* y[a*ldy + b] = x row a . W row b, for a < nx, b < nw (constants after inlining). */
INLINE AVX512 void tile(float *y, size_t ldy, const float *x, const void *w, st_dtype t, size_t in,
                        int nx, int nw) {
    __m512 acc[NX][NW];
    /* the pragmas make GCC -O2 unroll these fully, which keeps acc in registers */
#pragma GCC unroll 4
    for (int a = 0; a < nx; a++)
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) acc[a][b] = _mm512_setzero_ps();
    /* The nw rows are one contiguous block, and so is the next tile's; fetch that one
     * while this one is summed, at the pace this one is read. A decode step reads W
     * once, in blocks of a few KiB, which the hardware prefetchers ramp up to too late. */
    const char *next = (const char *)w + (size_t)nw * in * (t == ST_F32 ? 4 : 2);
    size_t step = 16 * (size_t)nw * (t == ST_F32 ? 4 : 2); /* bytes of W per k step */
    size_t k = 0;
    for (; k + 16 <= in; k += 16) {
        for (size_t off = 0; off < step; off += 64) _mm_prefetch(next + k / 16 * step + off, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) {
            __m512 wv = load_w(w, t, (size_t)b * in + k);
#pragma GCC unroll 4
            for (int a = 0; a < nx; a++)
                acc[a][b] = _mm512_fmadd_ps(_mm512_loadu_ps(x + (size_t)a * in + k), wv, acc[a][b]);
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
INLINE AVX512 void tile_any(float *y, size_t ldy, const float *x, const void *w, st_dtype t,
                            size_t in, int nx, int nw) {
    switch (nx * 8 + nw) {
#define T(a, b) case a * 8 + b: tile(y, ldy, x, w, t, in, a, b); break;
        T(1, 1) T(1, 2) T(1, 3) T(1, 4)
        T(2, 1) T(2, 2) T(2, 3) T(2, 4)
        T(3, 1) T(3, 2) T(3, 3) T(3, 4)
        T(4, 1) T(4, 2) T(4, 3) T(4, 4)
#undef T
    }
}

INLINE AVX512 void matmul(float *y, const float *x, const void *w, st_dtype t, size_t n, size_t in,
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

static AVX512 void matmul_f32(float *y, const float *x, const void *w, size_t n, size_t in, size_t out,
                              size_t o0, size_t o1) {
    matmul(y, x, w, ST_F32, n, in, out, o0, o1);
}
static AVX512 void matmul_f16(float *y, const float *x, const void *w, size_t n, size_t in, size_t out,
                              size_t o0, size_t o1) {
    matmul(y, x, w, ST_F16, n, in, out, o0, o1);
}
static AVX512 void matmul_bf16(float *y, const float *x, const void *w, size_t n, size_t in, size_t out,
                               size_t o0, size_t o1) {
    matmul(y, x, w, ST_BF16, n, in, out, o0, o1);
}

const kern_ops kern_avx512 = {
    .name = "avx512",
    .matmul = {[ST_F32] = matmul_f32, [ST_F16] = matmul_f16, [ST_BF16] = matmul_bf16},
};
#else
/* ISO C wants something in every translation unit. */
typedef int kern_avx512_empty;
#endif

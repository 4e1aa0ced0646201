/* kern_bf16: the bf16a scheme's matmul (kern_ops.matmul_bx) for x86 with AVX512_BF16:
 * VDPBF16PS multiplies 32 pairs of bf16 and adds each pair's two products into one f32
 * lane, twice the multiply-adds per instruction of the f32 FMA that kern_avx512.c widens
 * BF16 weights for. The tiling is kern_avx512.c's (4 rows of x by 4 rows of W, slabs of W
 * that stay in L2, the next tile fetched while this one is summed), 32 columns a step in
 * blocks of KB columns, the last step's columns past in masked to zero; each output's sum
 * (its blocks' sums added in order) runs in the same order
 * whatever the tile's shape, so a row of y does not depend on n. The instruction treats
 * bf16 subnormals as zero and rounds to nearest even without asking MXCSR. Everything
 * else comes from the variants below (kern.c). */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <stdint.h>

#include "kern.h"

#define BF __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define INLINE static inline __attribute__((always_inline))

/* KB: columns of a block of the rows (a 4-row tile of x and one of W, 8 KiB each, stay in L1;
 * at Qwen3-4B's 9728-column rows whole rows did not: 0.73x llama.cpp's prefill) */
enum { NX = 4, NW = 4, SLAB = 256 * 1024, KB = 1024 };

/* y[a*ldy + b] (+)= x row a . W row b over in columns (rows ld apart), for a < nx, b < nw
 * (constants after inlining); add: y plus this block's sum, else this block's sum. pf: the
 * bytes to fetch meanwhile, at this block's pace: the next tile's 4 rows from there on as
 * one run (decode: whole rows), else (0) its rows' same block. */
INLINE BF void tile(float *y, size_t ldy, const uint16_t *x, const uint16_t *w, size_t ld, size_t in, int nx, int nw,
                    int add, const char *pf) {
    __m512 acc[NX][NW];
#pragma GCC unroll 4
    for (int a = 0; a < nx; a++)
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) acc[a][b] = _mm512_setzero_ps();
    const char *next = (const char *)(w + (size_t)nw * ld); /* the next tile's rows (kern_avx512.c) */
    size_t step = 64 * (size_t)nw;                          /* bytes of W per k step */
    size_t k = 0;
    for (; k + 32 <= in; k += 32) {
        for (size_t off = 0; off < step; off += 64)
            _mm_prefetch(pf ? pf + k / 32 * step + off : next + (off / 64 * ld + k) * 2, _MM_HINT_T0);
        __m512i xv[NX];
#pragma GCC unroll 4
        for (int a = 0; a < nx; a++) xv[a] = _mm512_loadu_si512(x + (size_t)a * ld + k);
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) {
            __m512i wv = _mm512_loadu_si512(w + (size_t)b * ld + k);
#pragma GCC unroll 4
            for (int a = 0; a < nx; a++)
                acc[a][b] = _mm512_dpbf16_ps(acc[a][b], (__m512bh)xv[a], (__m512bh)wv);
        }
    }
    if (k < in) {
        __mmask32 m = (__mmask32)((1ull << (in - k)) - 1);
#pragma GCC unroll 4
        for (int b = 0; b < nw; b++) {
            __m512i wv = _mm512_maskz_loadu_epi16(m, w + (size_t)b * ld + k);
#pragma GCC unroll 4
            for (int a = 0; a < nx; a++)
                acc[a][b] = _mm512_dpbf16_ps(acc[a][b], (__m512bh)_mm512_maskz_loadu_epi16(m, x + (size_t)a * ld + k),
                                             (__m512bh)wv);
        }
    }
    /* each row of x's 4 sums at once: lanes added pairwise across the 4 vectors (unpack,
     * shuffle), then the 4 128-bit quarters; a missing row of W is a zero vector, which
     * leaves the others' sums as they are */
#pragma GCC unroll 4
    for (int a = 0; a < nx; a++) {
        __m512 z = _mm512_setzero_ps(), c0 = acc[a][0], c1 = nw > 1 ? acc[a][1] : z, c2 = nw > 2 ? acc[a][2] : z,
               c3 = nw > 3 ? acc[a][3] : z;
        __m512 s01 = _mm512_add_ps(_mm512_unpacklo_ps(c0, c1), _mm512_unpackhi_ps(c0, c1));
        __m512 s23 = _mm512_add_ps(_mm512_unpacklo_ps(c2, c3), _mm512_unpackhi_ps(c2, c3));
        __m512 s = _mm512_add_ps(_mm512_shuffle_ps(s01, s23, 0x44), _mm512_shuffle_ps(s01, s23, 0xee));
        __m256 h = _mm256_add_ps(_mm512_castps512_ps256(s), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1)));
        __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
        __mmask8 mk = (__mmask8)((1u << nw) - 1);
        if (add) q = _mm_add_ps(_mm_maskz_loadu_ps(mk, y + (size_t)a * ldy), q);
        _mm_mask_storeu_ps(y + (size_t)a * ldy, mk, q);
    }
}

/* One instance of tile per (nx, nw) so that acc stays in registers. */
INLINE BF void tile_any(float *y, size_t ldy, const uint16_t *x, const uint16_t *w, size_t ld, size_t in, int nx,
                        int nw, int add, const char *pf) {
    switch (nx * 8 + nw) {
#define T(a, b) case a * 8 + b: tile(y, ldy, x, w, ld, in, a, b, add, pf); break;
        T(1, 1) T(1, 2) T(1, 3) T(1, 4)
        T(2, 1) T(2, 2) T(2, 3) T(2, 4)
        T(3, 1) T(3, 2) T(3, 3) T(3, 4)
        T(4, 1) T(4, 2) T(4, 3) T(4, 4)
#undef T
    }
}

static BF void matmul_bx(float *y, const uint16_t *x, const uint16_t *w, size_t n, size_t in, size_t out, size_t o0,
                         size_t o1) {
    /* decode: each tile's rows through, block after block, so that W streams as 4 whole rows
     * (by slabs, 128 rows' blocks a row apart, 0.6B decode lost 15%) */
    if (n <= NX) {
        for (size_t o = o0; o < o1; o += NW) {
            int nw = o1 - o < NW ? (int)(o1 - o) : NW;
            const char *next = (const char *)(w + (o + NW) * in); /* kern_avx512.c's linear stream */
            for (size_t k0 = 0; k0 < in; k0 += KB)
                tile_any(y + o, out, x + k0, w + o * in + k0, in, in - k0 < KB ? in - k0 : KB, (int)n, nw, k0 > 0,
                         next + k0 / 32 * 64 * NW);
        }
        return;
    }
    /* slabs of W's rows, by blocks of KB columns, that stay in L2; an output's blocks are
     * added in column order whatever n, the slab and the walk */
    size_t kb = in < KB ? in : KB, slab = SLAB / (kb * 2) / NW * NW;
    if (slab < NW) slab = NW;
    for (size_t s0 = o0; s0 < o1; s0 += slab) {
        size_t s1 = s0 + slab < o1 ? s0 + slab : o1;
        for (size_t k0 = 0; k0 < in; k0 += KB) {
            size_t len = in - k0 < KB ? in - k0 : KB;
            for (size_t i = 0; i < n; i += NX) {
                int nx = n - i < NX ? (int)(n - i) : NX;
                for (size_t o = s0; o < s1; o += NW) {
                    int nw = s1 - o < NW ? (int)(s1 - o) : NW;
                    tile_any(y + i * out + o, out, x + i * in + k0, w + o * in + k0, in, len, nx, nw, k0 > 0, NULL);
                }
            }
        }
    }
}

/* VCVTNEPS2BF16, whose rounding kern_to_bf16 spells out */
static BF void to_bf16(uint16_t *h, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm256_storeu_si256((__m256i *)(h + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m256i v = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i));
        _mm256_mask_storeu_epi16(h + i, m, v);
    }
}

const kern_ops kern_bf16dot = {
    .name = "avx512bf16",
    .matmul_bx = matmul_bx,
    .to_bf16 = to_bf16,
};
#else
/* ISO C wants something in every translation unit. */
typedef int kern_bf16_empty;
#endif

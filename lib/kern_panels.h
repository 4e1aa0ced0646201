/* kern_panels.h: the panel kernels (kern.h's kern_pack layouts), written once for two ISA
 * variants: kern_avx2.c includes it with AVX2's integer dot products and kern_vnni.c with
 * AVX-512 VNNI's, which fuse each multiply, pair sum and add into one instruction. The
 * includer defines:
 *   PT               the target attribute of every function here;
 *   DOT_UB(s, u, b)  s plus the products of 32 unsigned bytes u and signed bytes b, summed in
 *                    fours (VNNI: vpdpbusd, into int32 lanes) or in pairs (AVX2: pmaddubsw,
 *                    into int16 lanes, which every caller here keeps from overflowing);
 *   SUM_UB(s)        DOT_UB's sums as 8 int32 lanes (the lane's 4 bytes' products);
 *   DOT_WS(s, a, b)  s plus the pair sums of the int16 products of a and b, in int32 lanes;
 *   KEEP(v)          holds v in a register there: GCC otherwise regroups a loop's integer
 *                    adds into a tree whose partial sums spill to the stack;
 *   NIBX, NIBX_8DA4W, PAIRX  rows of x a Q4 tile takes (6 or 12; 8DA4W's too, with its
 *                    sums of q counted per slab), an 8DA4W tile counting its own (5 or 12)
 *                    and an 8DA8W tile (4 or 6; Q8's, 4): as the registers allow;
 *   QUAD8            (VNNI) 8DA8W by DOT_UB on quads of columns rather than DOT_WS on pairs;
 *   SLAB, INLINE.
 * The sums are exact integers either way, so both variants give the same bits. */
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"

/* ---- Q4 and 8DA4W panels (kern.h's kern_pack): prefill's GEMM and decode's GEMV ----
 * Per block of 32 columns, per pair of quads of 4 columns: the 32 bytes' low nibbles give
 * the first quad's 32 values, byte 4r+c row r's column c, their high nibbles the second's
 * (one load, two masks), each as q + 8: DOT_UB's unsigned operand. x's int8 is its signed
 * one (Q4: h, kern_blocks_i8; 8DA4W: xq): per quad, each of the nx rows of x broadcasts its
 * 4 bytes and one DOT_UB adds per row of W the products (q + 8) * x (AVX2: in int16 over the
 * block's 8 quads, |.| <= 8 * 2 * 15 * 128 = 30720: exact). Minus c8 = 8 * the block's sum
 * of x (once per block for the 8 rows), lane r is row r's S = sum q * x.
 *   Q4: acc + (hs * d) * S, in block order, is the reference's f32 sum, bit for bit.
 *   8DA4W: the reference's block sum is G = sum (xq - zp) * q = S - zp * sum q, and sum q
 *   (sum (q + 8) - 256) comes from DOT_UB by ones: per quad once per slab for all its tiles
 *   of rows of x (nib_qsums), or in the tile when there is one (decode), over the 8 quads'
 *   bytes added first (at most 8 * 15);
 *   acc + s * G in block order, times x's scale at the end: the reference's bits too.
 * A block is 144 bytes (Q4: the 8 rows' f16 d after the nibbles) or 160 (8DA4W: f32 s), the
 * plain layouts' bytes: a 32-byte load can straddle a line, which costs less than padding
 * the blocks would in memory traffic. */

enum { NIB_PF = 16 }; /* blocks ahead to prefetch: 2.3 KB, a panel's stream from memory in decode */

/* y[a][0..nr) for nx rows of x (ldy apart) from one panel (nr of its rows are real). */
INLINE PT void store_rows(float *y, size_t ldy, const __m256 *acc, int nx, int nr) {
#pragma GCC unroll 6
    for (int a = 0; a < nx; a++) {
        if (nr == 8) _mm256_storeu_ps(y + (size_t)a * ldy, acc[a]);
        else {
            float tmp[8];
            _mm256_storeu_ps(tmp, acc[a]);
            memcpy(y + (size_t)a * ldy, tmp, (size_t)nr * sizeof *tmp);
        }
    }
}

/* 8DA4W: sum q of every block of a panel (lane r: row r's), as panel_nib_tile counts it. */
INLINE PT void nib_qsums(int32_t *qs, const uint8_t *pan, size_t nb) {
    const __m256i m15 = _mm256_set1_epi8(15), ones = _mm256_set1_epi8(1);
    for (size_t g = 0; g < nb; g++, pan += KERN_8DA4W_BLOCK) {
        __m256i sq = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(pan + 32 * (j / 2)));
            sq = DOT_UB(sq, _mm256_and_si256(j % 2 ? _mm256_srli_epi16(v, 4) : v, m15), ones);
        }
        _mm256_storeu_si256((__m256i *)(qs + 8 * g), _mm256_sub_epi32(SUM_UB(sq), _mm256_set1_epi32(256)));
    }
}

/* pre: 8DA4W's sums of q are qs's (nib_qsums); else counted here (a decode's one tile). */
INLINE PT void panel_nib_tile(wq_type t, float *y, size_t ldy, const kern_xq *xq, const uint8_t *pan, size_t in,
                              int nx, int nr, int pre, const int32_t *qs) {
    __m256 acc[NIBX];
    size_t nb = in / 32, bb = t == WQ_Q4 ? KERN_Q4_BLOCK : KERN_8DA4W_BLOCK;
    const __m256i m15 = _mm256_set1_epi8(15), ones = _mm256_set1_epi8(1);
#pragma GCC unroll 12
    for (int a = 0; a < nx; a++) acc[a] = _mm256_setzero_ps();
    for (size_t g = 0; g < nb; g++, pan += bb) {
        __m256i sb[NIBX], sq = _mm256_setzero_si256();
#pragma GCC unroll 12
        for (int a = 0; a < nx; a++) sb[a] = _mm256_setzero_si256();
        for (size_t off = 0; off < bb; off += 64) _mm_prefetch((const char *)pan + NIB_PF * bb + off, _MM_HINT_T0);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(pan + 32 * (j / 2)));
            __m256i w = _mm256_and_si256(j % 2 ? _mm256_srli_epi16(v, 4) : v, m15);
            if (t == WQ_8DA4W && !pre) sq = _mm256_add_epi8(sq, w); /* q + 8 by bytes: 8 * 15 at most */
#pragma GCC unroll 12
            for (int a = 0; a < nx; a++) {
                int32_t x4;
                memcpy(&x4, xq->q + (size_t)a * in + g * 32 + 4 * (size_t)j, 4);
                sb[a] = DOT_UB(sb[a], w, _mm256_set1_epi32(x4));
                KEEP(sb[a]);
            }
        }
        __m256 sc = t == WQ_Q4 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(pan + 128)))
                               : _mm256_loadu_ps((const float *)(pan + 128));
        __m256i q1 = pre ? _mm256_loadu_si256((const __m256i *)(qs + 8 * g)) /* 8DA4W: sum q */
                        : _mm256_sub_epi32(SUM_UB(DOT_UB(_mm256_setzero_si256(), sq, ones)), _mm256_set1_epi32(256));
#pragma GCC unroll 12
        for (int a = 0; a < nx; a++) {
            __m256i S = _mm256_sub_epi32(SUM_UB(sb[a]), _mm256_set1_epi32(xq->c8[(size_t)a * nb + g]));
            if (t == WQ_Q4) {
                __m256 f = _mm256_mul_ps(_mm256_set1_ps(xq->hs[(size_t)a * nb + g]), sc);
                acc[a] = _mm256_add_ps(acc[a], _mm256_mul_ps(f, _mm256_cvtepi32_ps(S)));
            } else {
                __m256i G = _mm256_sub_epi32(S, _mm256_mullo_epi32(q1, _mm256_set1_epi32(xq->zp[a])));
                acc[a] = _mm256_add_ps(acc[a], _mm256_mul_ps(sc, _mm256_cvtepi32_ps(G)));
            }
        }
    }
    if (t == WQ_8DA4W)
#pragma GCC unroll 12
        for (int a = 0; a < nx; a++) acc[a] = _mm256_mul_ps(_mm256_set1_ps(xq->scale[a]), acc[a]);
    store_rows(y, ldy, acc, nx, nr);
}

/* The walk of 8DA4W's and Q4's panels (t, a constant after inlining): slabs of panels that
 * stay in L2, NIBX rows of x by one panel at a time. 8DA4W with more than one tile of rows
 * of x counts the slab's sums of q once (nib_qsums) for all its tiles; with one (decode),
 * or no memory for them, each tile counts its own, at the cost of a register (NIBX_8DA4W
 * rows). */
INLINE PT void panel_nib(wq_type t, float *y, const kern_xq *xq, const void *panels, size_t n, size_t in,
                           size_t out, size_t o0, size_t o1) {
    size_t pb = kern_panel_bytes(t, in), slab = SLAB / pb, nb = in / 32;
    if (slab < 1) slab = 1;
    int32_t *qs = t == WQ_8DA4W && n > NIBX_8DA4W ? malloc(slab * nb * 8 * sizeof *qs) : NULL;
    for (size_t p0 = o0 / 8; p0 * 8 < o1; p0 += slab) {
        size_t p1 = (o1 + 7) / 8 < p0 + slab ? (o1 + 7) / 8 : p0 + slab;
        size_t px = t == WQ_8DA4W && !qs ? NIBX_8DA4W : NIBX;
        for (size_t pi = p0; qs && pi < p1; pi++)
            nib_qsums(qs + (pi - p0) * nb * 8, (const uint8_t *)panels + pi * pb, nb);
        for (size_t i = 0; i < n; i += px) {
            int nx = n - i < px ? (int)(n - i) : (int)px;
            kern_xq xi = {.q = xq->q + i * in, .c8 = xq->c8 + i * (in / 32)};
            if (t == WQ_Q4) xi.hs = xq->hs + i * (in / 32);
            else xi.scale = xq->scale + i, xi.zp = xq->zp + i;
            for (size_t pi = p0; pi < p1; pi++) {
                int nr = o1 - pi * 8 < 8 ? (int)(o1 - pi * 8) : 8;
                const uint8_t *pan = (const uint8_t *)panels + pi * pb;
                float *yt = y + i * out + pi * 8;
                const int32_t *qp = qs ? qs + (pi - p0) * nb * 8 : NULL;
                switch (nx) {
#define P(A)                                                                                       \
    case A:                                                                                        \
        if (t == WQ_8DA4W && qp) panel_nib_tile(t, yt, out, &xi, pan, in, A, nr, 1, qp);           \
        else panel_nib_tile(t, yt, out, &xi, pan, in, A, nr, 0, NULL);                             \
        break;
                    P(1) P(2) P(3) P(4) P(5) P(6)
#if NIBX > 6
                    P(7) P(8) P(9) P(10) P(11) P(12)
#endif
#undef P
                }
            }
        }
    }
    free(qs);
}

static PT void panel_8da4w(float *y, const kern_xq *xq, const void *panels, size_t n, size_t in, size_t out,
                             size_t o0, size_t o1) {
    panel_nib(WQ_8DA4W, y, xq, panels, n, in, out, o0, o1);
}
static PT void panel_q4(float *y, const kern_xq *xq, const void *panels, size_t n, size_t in, size_t out,
                          size_t o0, size_t o1) {
    panel_nib(WQ_Q4, y, xq, panels, n, in, out, o0, o1);
}

/* ---- 8DA8W panels (kern.h's kern_pack) ----
 * Per pair of columns, 16 bytes widened to int16 are 8 rows x 2 columns; each of PAIRX rows of
 * x broadcasts its pair of h = xq - zp to all lanes, and one pmaddwd gives per row of W the
 * pair's sum, added in int32 over the whole row: lane r holds row r's S, exact, scaled as
 * the reference, (sx * s) * S. Two panels (16 rows of W) per broadcast.
 * QUAD8 (VNNI): two pairs' 32 bytes regrouped as each row's 4 columns (vpermq, vpshufb; once
 * for all rows of x), and one vpdpbusd per row of x takes its 4 bytes of u = xq + 128: half
 * the dot products. Lane r sums u * q = S + (128 + zp) * sum q, and the panel's sum of q
 * takes that off. Every product is at most 255 * 128 and a row at most 65536 long (quant.c):
 * the int32 sums are exact, wrapping or not, and so is S. */

#ifdef QUAD8
/* The 32 bytes of columns c .. c + 3 (two pairs) as 8 rows' quads, lane r row r's. */
INLINE PT __m256i quads(const uint8_t *p) {
    const __m256i sh = _mm256_setr_epi8(0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15, 0, 1, 8, 9, 2, 3, 10, 11,
                                        4, 5, 12, 13, 6, 7, 14, 15);
    /* qwords 0, 2 | 1, 3: rows 0-3 of both pairs in the low lane, rows 4-7 in the high one */
    return _mm256_shuffle_epi8(_mm256_permute4x64_epi64(_mm256_loadu_si256((const __m256i *)p), 0xd8), sh);
}

/* Columns c .. c + 3 into acc (nx rows of x by np panels). */
INLINE PT void quad_step(__m256i (*acc)[2], const kern_xq *xq, const uint8_t *pan, size_t pb, size_t in, size_t c,
                         int nx, int np) {
    if (c % 8 == 0)
        for (int p = 0; p < np; p++) _mm_prefetch((const char *)(pan + (size_t)p * pb + c * 8 + 512), _MM_HINT_T0);
    __m256i w0 = quads(pan + c * 8), w1 = np > 1 ? quads(pan + pb + c * 8) : w0;
#pragma GCC unroll 6
    for (int a = 0; a < nx; a++) {
        int32_t u4;
        memcpy(&u4, xq->u + (size_t)a * in + c, 4);
        __m256i ub = _mm256_set1_epi32(u4);
        acc[a][0] = DOT_UB(acc[a][0], ub, w0);
        if (np > 1) acc[a][1] = DOT_UB(acc[a][1], ub, w1);
    }
}
#endif

/* One pair of columns c into acc (nx rows of x by np panels). */
INLINE PT void pair_step(__m256i (*acc)[2], const kern_xq *xq, const uint8_t *pan, size_t pb, size_t in, size_t c,
                         int nx, int np) {
    if (c % 8 == 0)
        for (int p = 0; p < np; p++) _mm_prefetch((const char *)(pan + (size_t)p * pb + c * 8 + 512), _MM_HINT_T0);
    __m256i w0 = _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)(pan + c * 8)));
    __m256i w1 = np > 1 ? _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)(pan + pb + c * 8))) : w0;
#pragma GCC unroll 6
    for (int a = 0; a < nx; a++) {
        int32_t h2;
        memcpy(&h2, xq->h + (size_t)a * in + c, 4);
        __m256i hb = _mm256_set1_epi32(h2);
        acc[a][0] = DOT_WS(acc[a][0], w0, hb);
        if (np > 1) acc[a][1] = DOT_WS(acc[a][1], w1, hb);
    }
}

INLINE PT void panel8_tile(float *y, size_t ldy, const kern_xq *xq, const uint8_t *pan, size_t pb, size_t in,
                             int nx, int np, size_t nr) {
    /* ns sums per lane for few rows of x (decode's one): each DOT_WS waits for the last one
     * into its sum (VNNI: 4 or 5 cycles), so one sum per lane would wait more than work */
    const int ns = nx == 1 ? 4 : nx == 2 ? 2 : 1;
    __m256i acc[4][PAIRX][2];
#pragma GCC unroll 4
    for (int u = 0; u < ns; u++)
#pragma GCC unroll 6
        for (int a = 0; a < nx; a++) acc[u][a][0] = acc[u][a][1] = _mm256_setzero_si256();
    size_t c = 0;
#ifdef QUAD8
    /* not for decode's one row of x: its pairs run from memory as fast (and measured 2%
     * faster end to end), and need no sums of q */
    const int quad = nx > 1;
    if (quad)
        for (; c < in; c += 4) quad_step(acc[0], xq, pan, pb, in, c, nx, np); /* in: a multiple of 32 */
#else
    const int quad = 0;
#endif
    for (; c + 2 * (size_t)ns <= in; c += 2 * (size_t)ns)
#pragma GCC unroll 4
        for (int u = 0; u < ns; u++) pair_step(acc[u], xq, pan, pb, in, c + 2 * (size_t)u, nx, np);
    for (; c < in; c += 2) pair_step(acc[0], xq, pan, pb, in, c, nx, np);
#pragma GCC unroll 4
    for (int u = 1; u < ns; u++)
#pragma GCC unroll 6
        for (int a = 0; a < nx; a++)
            for (int p = 0; p < np; p++) acc[0][a][p] = _mm256_add_epi32(acc[0][a][p], acc[u][a][p]);
    for (int p = 0; p < np; p++) {
        __m256 sc = _mm256_loadu_ps((const float *)(pan + (size_t)p * pb + in * 8));
        size_t m = nr - 8 * (size_t)p < 8 ? nr - 8 * (size_t)p : 8;
        if (quad) {
            __m256i sq = _mm256_loadu_si256((const __m256i *)(pan + (size_t)p * pb + in * 8 + 32));
#pragma GCC unroll 6
            for (int a = 0; a < nx; a++)
                acc[0][a][p] = _mm256_sub_epi32(acc[0][a][p], _mm256_mullo_epi32(_mm256_set1_epi32(128 + xq->zp[a]), sq));
        }
#pragma GCC unroll 6
        for (int a = 0; a < nx; a++) {
            __m256 r = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(xq->scale[a]), sc), _mm256_cvtepi32_ps(acc[0][a][p]));
            if (m == 8) _mm256_storeu_ps(y + (size_t)a * ldy + 8 * p, r);
            else {
                float t[8];
                _mm256_storeu_ps(t, r);
                memcpy(y + (size_t)a * ldy + 8 * p, t, m * sizeof *t);
            }
        }
    }
}

/* ---- Q8 panels (kern.h's kern_pack) ----
 * 8DA8W's bytes: per pair of columns 16 bytes, 8 rows x 2 columns of int8 q (row r's pair at
 * bytes 2r, 2r+1), the rows' scales (d) after the last. Each of 4 rows of x broadcasts its
 * pair of int16 h to two panels (16 rows); one pmaddwd per pair adds up each row's exact
 * block sum S in its lane, and per block of 32 acc += (hs * d) * S in f32 as the reference
 * does, in block order: the reference's bits. */

INLINE PT void panel_q8_tile(float *y, size_t ldy, const kern_xq *xq, const uint8_t *pan, size_t pb, size_t in,
                               int nx, int np, size_t nr) {
    __m256 acc[PAIRX][2], dq[2];
    size_t nb = in / 32, bs = 256; /* bytes per block */
#pragma GCC unroll 6
    for (int a = 0; a < nx; a++) acc[a][0] = acc[a][1] = _mm256_setzero_ps();
    for (int p = 0; p < np; p++) dq[p] = _mm256_load_ps((const float *)(pan + (size_t)p * pb + in * 8));
    for (size_t g = 0; g < nb; g++, pan += bs) {
        __m256i S[PAIRX][2];
#pragma GCC unroll 6
        for (int a = 0; a < nx; a++) S[a][0] = S[a][1] = _mm256_setzero_si256();
        for (int p = 0; p < np; p++)
            for (size_t c = 0; c < bs; c += 64) _mm_prefetch((const char *)pan + (size_t)p * pb + 2 * bs + c, _MM_HINT_T0);
        if (nx == 1) { /* decode: 4 sums per lane (VNNI's adds chain), added at the end: exact */
            __m256i e[4][2];
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) e[u][0] = e[u][1] = _mm256_setzero_si256();
#pragma GCC unroll 16
            for (int j = 0; j < 16; j++) {
                int32_t h2;
                memcpy(&h2, xq->h + g * 32 + 2 * (size_t)j, 4);
                __m256i hb = _mm256_set1_epi32(h2);
                e[j % 4][0] = DOT_WS(e[j % 4][0], _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)(pan + 16 * j))), hb);
                if (np > 1)
                    e[j % 4][1] = DOT_WS(e[j % 4][1], _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)(pan + pb + 16 * j))), hb);
            }
            for (int p = 0; p < np; p++)
                S[0][p] = _mm256_add_epi32(_mm256_add_epi32(e[0][p], e[1][p]), _mm256_add_epi32(e[2][p], e[3][p]));
        } else
#pragma GCC unroll 2
        for (int j = 0; j < 16; j++) {
            __m256i w0 = _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)(pan + 16 * j)));
            __m256i w1 = np > 1 ? _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)(pan + pb + 16 * j))) : w0;
#pragma GCC unroll 6
            for (int a = 0; a < nx; a++) {
                int32_t h2;
                memcpy(&h2, xq->h + (size_t)a * in + g * 32 + 2 * (size_t)j, 4);
                __m256i hb = _mm256_set1_epi32(h2);
                S[a][0] = DOT_WS(S[a][0], w0, hb);
                if (np > 1) S[a][1] = DOT_WS(S[a][1], w1, hb);
            }
        }
        for (int p = 0; p < np; p++) {
#pragma GCC unroll 6
            for (int a = 0; a < nx; a++)
                acc[a][p] = _mm256_add_ps(acc[a][p], _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(xq->hs[(size_t)a * nb + g]), dq[p]),
                                                                   _mm256_cvtepi32_ps(S[a][p])));
        }
    }
    for (int p = 0; p < np; p++) {
        size_t m = nr - 8 * (size_t)p < 8 ? nr - 8 * (size_t)p : 8;
#pragma GCC unroll 6
        for (int a = 0; a < nx; a++) {
            if (m == 8) _mm256_storeu_ps(y + (size_t)a * ldy + 8 * p, acc[a][p]);
            else {
                float t[8];
                _mm256_storeu_ps(t, acc[a][p]);
                memcpy(y + (size_t)a * ldy + 8 * p, t, m * sizeof *t);
            }
        }
    }
}

/* The walk of 8DA8W's and Q8's panels (t, a constant after inlining): slabs of panels
 * that stay in L2, PAIRX rows of x by two panels at a time. */
INLINE PT void panel_pairs(wq_type t, float *y, const kern_xq *xq, const void *panels, size_t n, size_t in,
                             size_t out, size_t o0, size_t o1) {
    size_t pb = kern_panel_bytes(t, in), slab = SLAB / pb / 2 * 2;
    if (slab < 2) slab = 2;
    for (size_t p0 = o0 / 8; p0 * 8 < o1; p0 += slab) {
        size_t p1 = (o1 + 7) / 8 < p0 + slab ? (o1 + 7) / 8 : p0 + slab;
        size_t px = t == WQ_8DA8W ? PAIRX : 4; /* Q8's f32 sums take registers too */
        for (size_t i = 0; i < n; i += px) {
            int nx = n - i < px ? (int)(n - i) : (int)px;
            kern_xq xi = {0, t == WQ_8DA8W ? xq->u + i * in : NULL, xq->scale + i, t == WQ_8DA8W ? xq->zp + i : NULL,
                          xq->h + i * in, t != WQ_8DA8W ? xq->hs + i * (in / 32) : NULL, 0};
            for (size_t pi = p0; pi < p1; pi += 2) {
                int np = p1 - pi > 1 ? 2 : 1;
                size_t nr = o1 - pi * 8 < 16 ? o1 - pi * 8 : 16;
                const uint8_t *pan = (const uint8_t *)panels + pi * pb;
                float *yt = y + i * out + pi * 8;
                switch (nx * 2 + np - 1) {
#define P(A, B)                                                                                    \
    case A * 2 + B - 1:                                                                            \
        if (t == WQ_8DA8W) panel8_tile(yt, out, &xi, pan, pb, in, A, B, nr);                       \
        else panel_q8_tile(yt, out, &xi, pan, pb, in, A, B, nr);                               \
        break;
                    P(1, 1) P(1, 2) P(2, 1) P(2, 2) P(3, 1) P(3, 2) P(4, 1) P(4, 2)
#if PAIRX > 4
                    P(5, 1) P(5, 2) P(6, 1) P(6, 2)
#endif
#undef P
                }
            }
        }
    }
}

static PT void panel_8da8w(float *y, const kern_xq *xq, const void *panels, size_t n, size_t in, size_t out,
                             size_t o0, size_t o1) {
    panel_pairs(WQ_8DA8W, y, xq, panels, n, in, out, o0, o1);
}
static PT void panel_q8(float *y, const kern_xq *xq, const void *panels, size_t n, size_t in, size_t out,
                          size_t o0, size_t o1) {
    panel_pairs(WQ_Q8, y, xq, panels, n, in, out, o0, o1);
}

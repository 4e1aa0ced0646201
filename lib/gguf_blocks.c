/* gguf_blocks: Q8_0, Q4_0, Q4_K and Q6_K as ggml computes them (gguf_blocks.h says
 * which of ggml's variants). Block layouts (ggml-common.h), all little-endian:
 *   Q8_0  34 B / 32:  f16 d, int8 qs[32]                      y = qs * d
 *   Q4_0  18 B / 32:  f16 d, u8 qs[16]                        y[j] = (lo(qs[j]) - 8) d, y[j+16] = (hi - 8) d
 *   Q4_K 144 B / 256: f16 d, f16 dmin, u8 scales[12], u8 qs[128]; 6-bit scale and min
 *                     per 32 (get_scale_min_k4)               y = d sc q - dmin m
 *   Q6_K 210 B / 256: u8 ql[128], u8 qh[64], int8 scales[16], f16 d   y = d sc (q - 32)
 * Every f32 expression is written one operation per statement where ggml's C leaves the
 * compiler no room to fuse (GCC's -std=c11 does not contract; clang would, hence the
 * pragma), so the results are ggml's bit for bit. */
#include "gguf_blocks.h"

#include <math.h>
#include <string.h>

#include "gguf.h"
#include "kern.h"
#include "quant.h"
#include "util.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

static float h2f(const uint8_t *p) { return kern_f16(le16(p)); }

/* ---- dequantization (ggml-quants.c dequantize_row_*) ---- */

static void row_q8_0(const uint8_t *b, size_t k, float *y) {
    for (size_t i = 0; i < k / 32; i++, b += 34) {
        float d = h2f(b);
        for (int j = 0; j < 32; j++) y[32 * i + j] = (float)(int8_t)b[2 + j] * d;
    }
}

static void row_q4_0(const uint8_t *b, size_t k, float *y) {
    for (size_t i = 0; i < k / 32; i++, b += 18) {
        float d = h2f(b);
        for (int j = 0; j < 16; j++) {
            y[32 * i + j] = (float)((b[2 + j] & 0xF) - 8) * d;
            y[32 * i + j + 16] = (float)((b[2 + j] >> 4) - 8) * d;
        }
    }
}

/* ggml's get_scale_min_k4: the 6-bit scale and min of sub-block j (< 8). */
static void scale_min(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void row_q4_k(const uint8_t *b, size_t k, float *y) {
    for (size_t i = 0; i < k / 256; i++, b += 144) {
        float d = h2f(b), min = h2f(b + 2);
        const uint8_t *sc = b + 4, *q = b + 16;
        for (int j = 0, is = 0; j < 256; j += 64, q += 32, is += 2) {
            int s, m;
            scale_min(is, sc, &s, &m);
            float d1 = d * (float)s, m1 = min * (float)m;
            scale_min(is + 1, sc, &s, &m);
            float d2 = d * (float)s, m2 = min * (float)m;
            for (int l = 0; l < 32; l++) {
                float v = d1 * (float)(q[l] & 0xF);
                y[j + l] = v - m1;
            }
            for (int l = 0; l < 32; l++) {
                float v = d2 * (float)(q[l] >> 4);
                y[j + 32 + l] = v - m2;
            }
        }
        y += 256;
    }
}

static void row_q6_k(const uint8_t *b, size_t k, float *y) {
    for (size_t i = 0; i < k / 256; i++, b += 210) {
        float d = h2f(b + 208);
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        for (int n = 0; n < 256; n += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0 & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2 & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | ((qh[l] >> 4 & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6 & 3) << 4)) - 32;
                float a = d * (float)sc[is + 0], bb = d * (float)sc[is + 2], c = d * (float)sc[is + 4],
                      e = d * (float)sc[is + 6];
                y[n + l] = a * (float)q1;
                y[n + l + 32] = bb * (float)q2;
                y[n + l + 64] = c * (float)q3;
                y[n + l + 96] = e * (float)q4;
            }
        }
        y += 256;
    }
}

/* ---- activations ---- */

static int8_t sat8(float v) { return v != v ? -128 : v >= 127 ? 127 : v <= -128 ? -128 : (int8_t)v; }

void gguf_quant_q8_0(const float *x, size_t k, gguf_q8_0x *out) {
    for (size_t i = 0; i < k / 32; i++, x += 32) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.f, id = amax != 0.0f ? 127.f / amax : 0.0f;
        out[i].d = kern_f16(quant_f16(d));
        for (int j = 0; j < 32; j++) out[i].q[j] = sat8(rintf(x[j] * id));
    }
}

/* ggml's nearest_int: round half to even through the 1.5 * 2^23 trick, bit for bit (for
 * |v| < 2^22; beyond, and for NaN, whatever the same bits give, as in ggml). */
static int nearest_int(float v) {
    float t = v + 12582912.f;
    int32_t i;
    memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}

void gguf_quant_q8_k(const float *x, size_t k, gguf_q8_kx *out) {
    for (size_t i = 0; i < k / 256; i++, x += 256) {
        gguf_q8_kx *y = &out[i];
        float max = 0, amax = 0;
        for (int j = 0; j < 256; j++) {
            float ax = fabsf(x[j]);
            if (ax > amax) amax = ax, max = x[j];
        }
        memset(y->bsums, 0, sizeof y->bsums);
        if (!amax) {
            y->d = 0;
            memset(y->q, 0, 256);
            continue;
        }
        float iscale = -127.f / max;
        for (int j = 0; j < 256; j++) {
            int v = nearest_int(iscale * x[j]);
            y->q[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < 16; j++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += y->q[16 * j + l];
            y->bsums[j] = (int16_t)s;
        }
        y->d = 1 / iscale;
    }
}

/* ---- dot products (ggml_vec_dot_*_generic) of one weight row with one activation row ---- */

static float dot_q8_0(const uint8_t *b, const gguf_q8_0x *y, size_t k) {
    float sumf = 0;
    for (size_t i = 0; i < k / 32; i++, b += 34) {
        int sumi = 0;
        for (int j = 0; j < 32; j++) sumi += (int8_t)b[2 + j] * y[i].q[j];
        float dd = h2f(b) * y[i].d;
        sumf += (float)sumi * dd;
    }
    return sumf;
}

static float dot_q4_0(const uint8_t *b, const gguf_q8_0x *y, size_t k) {
    float sumf = 0;
    for (size_t i = 0; i < k / 32; i++, b += 18) {
        int s0 = 0, s1 = 0;
        for (int j = 0; j < 16; j++) {
            s0 += ((b[2 + j] & 0xF) - 8) * y[i].q[j];
            s1 += ((b[2 + j] >> 4) - 8) * y[i].q[j + 16];
        }
        float t = (float)(s0 + s1) * h2f(b);
        sumf += t * y[i].d;
    }
    return sumf;
}

/* Q4_K and Q6_K: the weights unpacked to int8 a[256] in element order, integer sums in
 * 8 lanes (element index mod 8) as ggml's aux32, scaled and added in f32 lane by lane,
 * the mins (Q4_K) subtracted per superblock. Written as ggml's generic loops, which the
 * compiler vectorizes. */
static void lanes(int32_t aux32[8], const int8_t *q8, const int8_t *a, int scale) {
    int32_t s[8] = {0};
    for (int k = 0; k < 4; k++, q8 += 8, a += 8)
        for (int l = 0; l < 8; l++) s[l] += q8[l] * a[l];
    for (int l = 0; l < 8; l++) aux32[l] += scale * s[l];
}

static float dot_q4_k(const uint8_t *b, const gguf_q8_kx *y, size_t k) {
    float sums[8] = {0}, sumf = 0;
    int8_t a[256];
    for (size_t i = 0; i < k / 256; i++, b += 144) {
        const uint8_t *q4 = b + 16;
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                a[64 * c + l] = (int8_t)(q4[32 * c + l] & 0xF);
                a[64 * c + 32 + l] = (int8_t)(q4[32 * c + l] >> 4);
            }
        int32_t aux32[8] = {0};
        int sc, mn[8], sumi = 0;
        for (int j = 0; j < 8; j++) {
            scale_min(j, b + 4, &sc, &mn[j]);
            lanes(aux32, y[i].q + 32 * j, a + 32 * j, sc);
        }
        for (int j = 0; j < 16; j++) sumi += y[i].bsums[j] * mn[j / 2];
        float d = h2f(b) * y[i].d;
        for (int l = 0; l < 8; l++) sums[l] += d * (float)aux32[l];
        float dmin = h2f(b + 2) * y[i].d;
        sumf -= dmin * (float)sumi;
    }
    for (int l = 0; l < 8; l++) sumf += sums[l];
    return sumf;
}

static float dot_q6_k(const uint8_t *b, const gguf_q8_kx *y, size_t k) {
    float sums[8] = {0}, sumf = 0;
    int8_t a[256];
    for (size_t i = 0; i < k / 256; i++, b += 210) {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        for (int h = 0; h < 2; h++, ql += 64, qh += 32)
            for (int l = 0; l < 32; l++) {
                a[128 * h + l] = (int8_t)(((ql[l] & 0xF) | ((qh[l] >> 0 & 3) << 4)) - 32);
                a[128 * h + l + 32] = (int8_t)(((ql[l + 32] & 0xF) | ((qh[l] >> 2 & 3) << 4)) - 32);
                a[128 * h + l + 64] = (int8_t)(((ql[l] >> 4) | ((qh[l] >> 4 & 3) << 4)) - 32);
                a[128 * h + l + 96] = (int8_t)(((ql[l + 32] >> 4) | ((qh[l] >> 6 & 3) << 4)) - 32);
            }
        int32_t aux32[8] = {0};
        for (int j = 0; j < 16; j++) { /* a scale per 16: two chunks of 8 */
            int32_t s[8] = {0};
            const int8_t *q8 = y[i].q + 16 * j, *aa = a + 16 * j;
            for (int c = 0; c < 2; c++, q8 += 8, aa += 8)
                for (int l = 0; l < 8; l++) s[l] += q8[l] * aa[l];
            for (int l = 0; l < 8; l++) aux32[l] += sc[j] * s[l];
        }
        float d = h2f(b + 208) * y[i].d;
        for (int l = 0; l < 8; l++) sums[l] += d * (float)aux32[l];
    }
    for (int l = 0; l < 8; l++) sumf += sums[l];
    return sumf;
}

/* ---- the wfmt entries ---- */

size_t gguf_blck(uint32_t t) { return t == GGML_Q8_0 || t == GGML_Q4_0 ? 32 : 256; }
size_t gguf_bsize(uint32_t t) {
    return t == GGML_Q8_0 ? 34 : t == GGML_Q4_0 ? 18 : t == GGML_Q4_K ? 144 : 210;
}

static uint32_t type_of(const qweight *w) { return *(const uint32_t *)w->aux; }
static size_t row_bytes(const qweight *w) { return w->in / gguf_blck(type_of(w)) * gguf_bsize(type_of(w)); }
static int k_act(uint32_t t) { return t == GGML_Q4_K || t == GGML_Q6_K; }
static size_t act_bytes(uint32_t t, size_t in) {
    return k_act(t) ? in / 256 * sizeof(gguf_q8_kx) : in / 32 * sizeof(gguf_q8_0x);
}

static size_t fmt_scratch(const qweight *w, size_t n) { return n * act_bytes(type_of(w), w->in); }

static void fmt_prep(const qweight *w, const float *x, size_t n, void *scratch) {
    uint32_t t = type_of(w);
    size_t ab = act_bytes(t, w->in);
    for (size_t i = 0; i < n; i++) {
        if (k_act(t)) gguf_quant_q8_k(x + i * w->in, w->in, (gguf_q8_kx *)((uint8_t *)scratch + i * ab));
        else gguf_quant_q8_0(x + i * w->in, w->in, (gguf_q8_0x *)((uint8_t *)scratch + i * ab));
    }
}

static void fmt_matmul(float *y, const float *x, const void *scratch, const qweight *w, size_t n, size_t out,
                       size_t o0, size_t o1) {
    (void)x;
    uint32_t t = type_of(w);
    size_t rb = row_bytes(w), ab = act_bytes(t, w->in);
    for (size_t o = o0; o < o1; o++) { /* each weight row read once, for every token */
        const uint8_t *b = (const uint8_t *)w->data + o * rb;
        for (size_t i = 0; i < n; i++) {
            const void *a = (const uint8_t *)scratch + i * ab;
            float v = t == GGML_Q8_0   ? dot_q8_0(b, a, w->in)
                      : t == GGML_Q4_0 ? dot_q4_0(b, a, w->in)
                      : t == GGML_Q4_K ? dot_q4_k(b, a, w->in)
                                       : dot_q6_k(b, a, w->in);
            y[i * out + o] = v;
        }
    }
}

static void fmt_row(const qweight *w, size_t r, float *out) {
    const uint8_t *b = (const uint8_t *)w->data + r * row_bytes(w);
    switch (type_of(w)) {
    case GGML_Q8_0: row_q8_0(b, w->in, out); break;
    case GGML_Q4_0: row_q4_0(b, w->in, out); break;
    case GGML_Q4_K: row_q4_k(b, w->in, out); break;
    default: row_q6_k(b, w->in, out); break;
    }
}

static const wfmt fmts[] = {
    {"gguf Q8_0", fmt_scratch, fmt_prep, fmt_matmul, fmt_row},
    {"gguf Q4_0", fmt_scratch, fmt_prep, fmt_matmul, fmt_row},
    {"gguf Q4_K", fmt_scratch, fmt_prep, fmt_matmul, fmt_row},
    {"gguf Q6_K", fmt_scratch, fmt_prep, fmt_matmul, fmt_row},
};

const wfmt *gguf_wfmt(uint32_t t) {
    switch (t) {
    case GGML_Q8_0: return &fmts[0];
    case GGML_Q4_0: return &fmts[1];
    case GGML_Q4_K: return &fmts[2];
    case GGML_Q6_K: return &fmts[3];
    default: return NULL;
    }
}

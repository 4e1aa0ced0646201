/* msms: msModelSlim (vLLM-Ascend) quantized checkpoints. A directory with config.json,
 * quant_model_description*.json and safetensors opens with model_open; each linear weight
 * whose description type is not FLOAT becomes a WQ_FMT weight whose qweight.aux points at
 * an msms_weight below (qweight.fmt is msms_fmt, qweight.in = K). Schemes mix within one
 * model (read per tensor from the description). The math of each scheme, as vLLM-Ascend
 * runs it (N = out_features, K = in_features, round = msms_round, see msms.c):
 *
 *   W8A8         xq = sat_int8(round(x * (1/input_scale) + input_offset))      per tensor
 *                y[n] = f32(Σ_k xq[k] Wq[n,k] + quant_bias[n]) * deq_scale[n]
 *   W8A8_DYNAMIC s = max_k |x[k]| / 127, xq = round(x / s)                     per token
 *                y[n] = f32(Σ_k xq[k] Wq[n,k]) * weight_scale[n] * s
 *   W4A8_DYNAMIC (dense: vLLM-Ascend's npu_weight_quant_batchmatmul; x is not quantized)
 *                W[n,k] = w4[n,k] * (weight_scale[n] * weight_scale_second[n, k/group])
 *                y[n] = Σ_k x[k] W[n,k]     (per-channel variant: no second level)
 *   W4A4_FLATQUANT_DYNAMIC   X = x as [L,R] row-major, X' = left^T X right,
 *                s = clip_ratio * max|X'| / 7, xq = clamp(round(X' / s), -8, 7)
 *                y[n] = f32(Σ_k xq[k] w4[n,k]) * weight_scale[n] * s
 * then + bias[n] where the checkpoint has a float bias. Offsets of symmetric weights
 * (weight_offset, weight_offset_second) are read but, as in vLLM-Ascend, not used.
 *
 * Integer weights are used in place from the mapping. The small per-channel vectors and
 * the FlatQuant transforms are copied at open into f32 (they come as F32/F16/BF16, and
 * deq_scale also as I64 holding the f32 bit pattern), owned by the model. */
#ifndef MSMS_H
#define MSMS_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef enum {
    MSMS_W8A8,
    MSMS_W8A8_DYNAMIC,
    MSMS_W4A8_DYNAMIC,
    MSMS_W4A4_FLATQUANT_DYNAMIC,
    MSMS_NSCHEMES
} msms_scheme;

/* One quantized linear weight [out = N, in = K]. Arrays are NULL where the scheme has none. */
typedef struct {
    msms_scheme scheme;
    size_t out, in;
    /* int values, row-major [N, K], one per byte: int8 (W8A8*), or int4 in [-8, 7]
     * (W4A4_FLATQUANT, W4A8 old layout). NULL for the packed W4A8 layout. */
    const int8_t *w;
    /* W4A8 `version 1.0.0`: [N/2, K] bytes, two int4 packed along N: byte [j, k] holds
     * row 2j in its low nibble and row 2j+1 in its high one (two's complement). */
    const uint8_t *w_packed;
    /* W8A8 (static) */
    float input_scale, input_offset; /* per tensor */
    const float *deq_scale;          /* [N] */
    const int32_t *quant_bias;       /* [N], in place */
    /* W8A8_DYNAMIC, W4A8_DYNAMIC, W4A4_FLATQUANT: per channel */
    const float *weight_scale;       /* [N] */
    const float *weight_offset;      /* [N] or NULL (unused: symmetric) */
    /* W4A8_DYNAMIC grouped: second level, [N, K/group]; NULL and group 0 when per channel */
    size_t group;
    const float *weight_scale_second;
    const float *weight_offset_second; /* or NULL (unused) */
    const float *scale_bias;           /* [N, scale_bias_cols] or NULL (unused on dense layers) */
    size_t scale_bias_cols;            /* 1 (column-parallel) or 16 (row-parallel) */
    /* W4A4_FLATQUANT_DYNAMIC: K = L * R */
    size_t L, R;
    const float *left_trans;  /* [L, L] as stored */
    const float *right_trans; /* [R, R] as stored; identity if the checkpoint has none */
    float clip_ratio;         /* already through the sigmoid, in (0, 1] */
    /* any scheme: a float bias [N] added after the dequant, or NULL */
    const float *bias;
} msms_weight;

/* The int value of element (n, k) of a 4- or 8-bit weight, whichever layout it has. */
static inline int msms_wval(const msms_weight *q, size_t n, size_t k) {
    if (q->w) return q->w[n * q->in + k];
    int b = q->w_packed[(n / 2) * q->in + k];
    int v = n % 2 ? b >> 4 : b & 15;
    return v >= 8 ? v - 16 : v;
}

/* The format table entry model_open asks (model.c's formats[]). */
extern const model_format msms_format;
/* The math every msms weight carries (qweight.fmt). */
extern const wfmt msms_fmt;

/* The scheme called name in a description ("W8A8", ...), or -1. */
int msms_scheme_find(const char *name);
const char *msms_scheme_name(msms_scheme s);

/* The rounding of activations to integers (x quantizers of W8A8, W8A8_DYNAMIC and
 * W4A4_FLATQUANT): the one documented choice (msms.c says which and why). */
float msms_round(float v);

#endif

/* quant: weight quantization schemes, the quantizers that turn f32 rows into them, and
 * the cache file that holds a quantized model (model_open_q maps it).
 *
 * Schemes (every linear weight: q/k/v/o, gate/up/down and lm_head; norms stay as they are):
 *   none    the checkpoint's F32/F16/BF16 weights, used in place (no cache file)
 *   bf16    F32/F16 linear weights rounded to BF16 (RNE); a BF16 checkpoint is used in place
 *   bf16a   bf16's weights (and cache file), and x rounded to bf16 (kern_to_bf16) for every
 *           BF16 matmul: llama.cpp's BF16 arithmetic (VDPBF16PS: two exact products per f32
 *           lane), twice the f32 FMA's multiply-adds per instruction where the CPU has
 *           AVX512_BF16 (kern_matmul_bx); a BF16 checkpoint's K/V and logits move by about
 *           one bf16 rounding of x (up to 2^-8 relative), so bf16a is a model identity of its
 *           own. It is the CPU backend's arithmetic: the NPU backends keep their own activations
 *   q8      int8 per output row, symmetric: s = amax/127 (f32), q = rne(w/s); x at run time
 *           as int16 per block of 32 (kern_quant_blocks: w8a16 to 2^-16 of each block's largest
 *           |x|), integer int16 x int8 dot products
 *   q4      int4 in groups of 32, llama.cpp Q4_0's rule with RNE: m = the element of largest
 *           |w|, d = f16(m / -8), q = clamp(rne(w / d), -8, 7); x at run time as int8 per block
 *           of 32 (kern_quant_blocks, as llama.cpp's Q8_0 with an f32 scale: w4a8) and integer
 *           int8 x int4 dot products. q4g128: groups of 128
 *   8da4w   torchao Int8DynamicActivationIntxWeightConfig(int4, PerGroup(32)) on an f32 model,
 *           exactly (quant_primitives.py, torchao 0.18): s = max(amax / 7.5, FLT_MIN),
 *           q = clamp(rne(w * (1/s)), -8, 7), f32 scales; the embedding int8 per row
 *           (s = max(amax / 127.5, FLT_MIN), q = clamp(rne(w * (1/s)), -128, 127)); lm_head
 *           untied and int4 g32 like the rest; activations int8 asymmetric per token at run
 *           time (kern_quant_act) and integer int8 x int4 dot products.
 *   8da8w   the same with int8 linears: Int8DynamicActivationIntxWeightConfig(int8,
 *           PerAxis(0)), each linear row as the embedding's (quant_row_e8), f32 scale per
 *           row; activations as 8da4w's, integer int8 x int8 dot products, the whole row's
 *           sum exact in int32 (in <= 65536), so every kernel gives the same bits.
 * All arithmetic is f32 as torch does it on f32 tensors: 1/s is a correctly rounded f32
 * division, w * (1/s) one f32 product, rne = round half to even. Non-finite weights are
 * refused (there is no int4 for NaN).
 *
 * Int4 layout (Q4 and 8DA4W), per row, blocks of 32 elements in 16 bytes, as GGUF Q4_0:
 * byte j holds element j in its low nibble and element j+16 in its high one, each as q+8
 * (0..15). Groups of 128 are four such blocks sharing one scale. */
#ifndef QUANT_H
#define QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef enum { QS_NONE, QS_BF16, QS_Q8, QS_Q4, QS_Q4G128, QS_8DA4W, QS_8DA8W, QS_BF16A, QS_N } quant_scheme;

/* The scheme called name, or -1. quant_names() lists them for messages ("none, bf16, ..."). */
int quant_scheme_find(const char *name);
const char *quant_scheme_name(int scheme);
const char *quant_names(void);

/* Bumped whenever a quantizer or the cache layout changes: old cache files are then
 * another key, never misread. */
enum { QUANT_VERSION = 1 };

/* One row w[in] into a scheme's storage (in must be a multiple of 32, or of group):
 *   q8:     q[in] int8, *scale                              (returns 0)
 *   q4:     nib[in/2], scales f16 [in/group]
 *   8da4w:  nib[in/2], scales f32 [in/32]
 *   e8:     q[in] int8, *scale (torchao int8 per row: 8da4w's embedding, 8da8w's weights)
 * Each returns -1 if w holds a NaN or an Inf. */
int quant_row_q8(int8_t *q, float *scale, const float *w, size_t in);
int quant_row_q4(uint8_t *nib, uint16_t *scales, const float *w, size_t in, size_t group);
int quant_row_8da4w(uint8_t *nib, float *scales, const float *w, size_t in);
int quant_row_e8(int8_t *q, float *scale, const float *w, size_t in);

/* Element k of a row of int4 blocks, as the signed value q in [-8, 7]. */
static inline int quant_nib(const uint8_t *nib, size_t k) {
    uint8_t b = nib[k / 32 * 16 + k % 16];
    return (k % 32 < 16 ? b & 15 : b >> 4) - 8;
}

/* f32 -> f16 / bf16, round to nearest even (NaN stays NaN). */
uint16_t quant_f16(float f);
uint16_t quant_bf16(float f);

/* Quantize m's weights to scheme through the cache file (model_open_q's work; see
 * model.h). On success the weights point into m->qmap. */
int quant_apply(model *m, int scheme, void (*progress)(void *, size_t, size_t), void *pctx, char *err,
                size_t errlen);
/* The cache file path quant_apply uses for m and scheme (for tests and tools). */
int quant_cache_path(const model *m, int scheme, char *out, size_t outlen, char *err, size_t errlen);

#endif

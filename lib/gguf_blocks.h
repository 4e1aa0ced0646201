/* gguf_blocks: the arithmetic of GGUF's quantized tensor types, as ggml defines it, for
 * WQ_FMT weights (model.h's struct wfmt). Per type:
 *   row     ggml's dequantize_row_<type>, exact (the same f32 operations in the same order)
 *   matmul  what llama.cpp's CPU backend computes for y = x @ W^T: x is first quantized
 *           per row to the type's vec_dot_type (Q8_0 blocks of 32 for Q8_0 and Q4_0, Q8_K
 *           superblocks of 256 for Q4_K and Q6_K), then each output is ggml's integer dot
 *           product scaled in f32 (ggml_vec_dot_<type>_q8_<x>_generic's order of operations).
 * Q8_0 activations are quantized as ggml's x86 AVX/AVX2 quantize_row_q8_0 does (the
 * machines we compare with): amax per 32, d = f16(amax / 127), q = rne(x * (127 / amax))
 * saturated to int8 (ggml's generic C and NEON differ from it in the last bit of some q).
 * Q8_K is quantize_row_q8_K_ref (what x86 uses): max = the element of largest |x|,
 * iscale = -127 / max, q = min(127, nearest_int(iscale * x)), d = 1 / iscale, bsums of 16.
 * SIMD builds of ggml add the same exact integer sums in another order of f32 additions
 * (and repacked layouts, sgemm tiles), so llama.cpp's own logits differ from these in
 * the last bits; t/gguf.bats states the tolerance measured against it. */
#ifndef GGUF_BLOCKS_H
#define GGUF_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* The format of ggml type t (GGML_Q8_0, GGML_Q4_0, GGML_Q4_K, GGML_Q6_K), or NULL. */
const wfmt *gguf_wfmt(uint32_t t);

/* Element count per block and bytes per block of those types. */
size_t gguf_blck(uint32_t t);
size_t gguf_bsize(uint32_t t);

/* ggml's fp32 -> q8_0 activations (x86 rounding, above) of one row x[k]: k/32 blocks of
 * {f32 d (the f16 value widened), int8 q[32]} into out. */
typedef struct {
    float d;
    int8_t q[32];
} gguf_q8_0x;
void gguf_quant_q8_0(const float *x, size_t k, gguf_q8_0x *out);

typedef struct {
    float d;
    int8_t q[256];
    int16_t bsums[16];
} gguf_q8_kx;
void gguf_quant_q8_k(const float *x, size_t k, gguf_q8_kx *out);

#endif

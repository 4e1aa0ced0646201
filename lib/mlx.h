/* mlx: checkpoints quantized by MLX (mlx-lm convert -q, e.g. Qwen/Qwen3-8B-MLX-4bit), run
 * as they are, and any opened model written back out as a BF16 Hugging Face directory.
 *
 * MLX affine quantization (quant.md §1): every quantized linear (and the embedding, which
 * a tied model also uses as lm_head) is three tensors, `P.weight` U32 [out, in*bits/32]
 * (element i of a row at bits [i*bits, (i+1)*bits) of the row's little-endian bytes),
 * `P.scales` and `P.biases` [out, in/group] in the model's dtype. bits and group come from
 * the shapes and must agree with config.json's `quantization` block and its per-module
 * entries ({"bits", "group_size"}, or false for a module left unquantized). A module is
 * quantized when `P.scales` exists, as mlx-lm decides.
 *
 * The weight is exactly what mx.dequantize computes: w = s*q + b in the scales' dtype,
 * i.e. for BF16 scales bf16(bf16(s*q) + b) (each operation in f32, rounded to bf16, as
 * MLX's bfloat16 type does), likewise for F16; F32 plain f32. The forward pass then uses
 * these weights in f32 like any other (MLX's own quantized_matmul rounds differently on
 * every device, quant.md §1.6; none is a single exact target). */
#ifndef MLX_H
#define MLX_H

#include <stddef.h>

#include "model.h"

extern const model_format model_format_mlx;

/* Write m (any format) to outdir (created; must not exist or be empty) as a Hugging Face
 * directory: config.json (m->dir's, less its quantization blocks), model.safetensors with
 * every weight in BF16 (each dequantized as its format defines, rounded to nearest even:
 * exact for MLX weights with BF16 scales), and the tokenizer files m->dir has. What
 * mlx-lm's `convert --dequantize` writes, without Python. 0, or -1 with err. */
int mlx_write_hf(const model *m, const char *outdir, char *err, size_t errlen);

#endif

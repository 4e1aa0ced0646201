/* torchao: checkpoints that transformers saved from a torchao-quantized model with
 * safetensors (config.json quantization_config.quant_method "torchao"), run as they are.
 *
 * torchao's safetensors support (torchao/prototype/safetensors, 0.18) flattens each
 * quantized weight P.weight, an IntxUnpackedToInt8Tensor, into P._weight_qdata (I8
 * [out, in], the integers unpacked one per byte), P._weight_scale and
 * P._weight_zero_point ([out, in/group]), and describes it in the header's __metadata__
 * under "P.weight": {"_type": "IntxUnpackedToInt8Tensor", "_data": {"block_size": [1, group],
 * "target_dtype": int4 | int8 ..., "activation_quantization": "int8_asym_per_token" | null}}.
 * The 8da4w recipe (quant.md §2) gives int4 group-32 linears with int8 per-token
 * activations and an int8 per-row embedding (IntxWeightOnlyConfig).
 *
 * The math is torchao's: w = (q - zp) * s; with int8_asym_per_token activations each x
 * row is quantized as kern_quant_act does and y = sx * sum over groups of s_g * (sum
 * (xq - zx) * (q - zp), exact in int32). The recipe's tensors (zero points 0) run through
 * the CPU kernels that already compute exactly this (WQ_8DA4W: the int4 values repacked
 * once at open; WQ_8DA8W for int8 per-row linears with int8 activations, WQ_E8 and WQ_Q8
 * for int8 per-row weight-only tensors, in place, rows a multiple of 32 long: WQ_Q8 takes
 * x as int16 per block of 32, within 2^-16 of the block's largest |x|); any other (zero points, groups other
 * than 32, weight-only int4) through torchao.c's own loops on the mapped integers. A
 * quantized lm_head in the file is used even when config.json says the embeddings are
 * tied: transformers saves the one torchao quantized. */
#ifndef TORCHAO_H
#define TORCHAO_H

#include "model.h"

extern const model_format model_format_torchao;

#endif

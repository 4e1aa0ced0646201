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
 * The math is torchao's, computed in place on the mapped integers: w = (q - zp) * s;
 * with int8_asym_per_token activations each x row is quantized as kern_quant_act does and
 * y = sx * sum over groups of s_g * (sum (xq - zx) * (q - zp), exact in int32): the same
 * numbers as `--quant 8da4w` (lib/quant.h) for the same integers. Weight-only tensors
 * multiply f32 x by the dequantized w. */
#ifndef TORCHAO_H
#define TORCHAO_H

#include "model.h"

extern const model_format model_format_torchao;

#endif

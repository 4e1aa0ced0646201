#!/usr/bin/env python3
"""The 8da4w and 8da8w references from torchao itself, for t/quant.bats (quant_test fixtures).

Takes the seeded tiny-f32 test model (`make models`; lib/gen/tinymodel writes the same
bytes everywhere), loads it with transformers in float32, unties lm_head (a clone of the
embedding, as torchao's release recipe does), and quantizes it with torchao's own API,
the recipe of quant.md 2.1 with f32 scales:
    linears (q/k/v/o, gate/up/down, lm_head): Int8DynamicActivationIntxWeightConfig(
        8da4w: weight_dtype=torch.int4, weight_granularity=PerGroup(32)
        8da8w: weight_dtype=torch.int8, weight_granularity=PerAxis(0))
    embedding: IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0))
Then it runs the prompt through the quantized model (torchao's fake-quant reference:
per-token int8 activations quantized and dequantized, F.linear in f32).

t/fixtures/quant/SCHEME.npy holds .npy records back to back:
    prompt ids int32 (P,)
    subset ids int32 (K,)           every 149th vocabulary id, and V-1
    logits float32 (P, K)           torchao's logits of every prompt position at those ids
    max|logit| float32 (P,)         over the whole vocabulary, the scale for max|diff|
    then per tensor, in this order: layers.0 q_proj, layers.0 k_proj, layers.0 down_proj,
    layers.1 gate_proj, lm_head rows [0, 256), embed_tokens rows [0, 256):
        qdata int32 (rows, in)      torchao's int4 (8da4w) or int8 (8da8w) values;
                                    int8 for the embedding in both
        scale float32 (rows, groups)  groups = in/32 (8da4w linears), else 1
About 300 KB each (8da4w 299468 bytes, 8da8w 296396: its scales are one per row).

    make models
    /work/venv/bin/python t/gen_8da4w_fixture.py [MODELS_DIR]                  # 8da4w.npy
    /work/venv/bin/python t/gen_8da4w_fixture.py --scheme 8da8w [MODELS_DIR]   # 8da8w.npy
MODELS_DIR defaults to build/models.
"""
import argparse
import os

import numpy as np
import torch
import torchao
import transformers
from torchao.quantization import (Int8DynamicActivationIntxWeightConfig, IntxWeightOnlyConfig,
                                  quantize_)
from torchao.quantization.granularity import PerAxis, PerGroup

PROMPT = [151644, 872, 198, 9707, 11, 1879, 0, 42, 1000, 77]
ROWS = 256
# the linears' weight config of each scheme
SCHEMES = {
    "8da4w": dict(weight_dtype=torch.int4, weight_granularity=PerGroup(32)),
    "8da8w": dict(weight_dtype=torch.int8, weight_granularity=PerAxis(0)),
}


def main():
    ap = argparse.ArgumentParser(description="write t/fixtures/quant/SCHEME.npy from torchao")
    ap.add_argument("--scheme", choices=sorted(SCHEMES), default="8da4w")
    ap.add_argument("models", nargs="?", default="build/models", metavar="MODELS_DIR")
    args = ap.parse_args()
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "quant")
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    m = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(args.models, "tiny-f32"),
                                                          dtype=torch.float32,
                                                          attn_implementation="eager")
    m.eval()
    # untie: lm_head gets its own copy of the embedding, quantized like every linear
    m.lm_head.weight = torch.nn.Parameter(m.model.embed_tokens.weight.detach().clone())
    m.config.tie_word_embeddings = False
    quantize_(m, IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0)),
              filter_fn=lambda mod, fqn: isinstance(mod, torch.nn.Embedding))
    quantize_(m, Int8DynamicActivationIntxWeightConfig(**SCHEMES[args.scheme]),
              filter_fn=lambda mod, fqn: isinstance(mod, torch.nn.Linear))
    with torch.no_grad():
        logits = m(torch.tensor([PROMPT])).logits[0].float().numpy()
    V = logits.shape[1]
    sub = np.array(sorted(set(list(range(0, V, 149)) + [V - 1])), dtype=np.int32)
    tensors = [
        m.model.layers[0].self_attn.q_proj.weight, m.model.layers[0].self_attn.k_proj.weight,
        m.model.layers[0].mlp.down_proj.weight, m.model.layers[1].mlp.gate_proj.weight,
        m.lm_head.weight, m.model.embed_tokens.weight,
    ]
    path = os.path.join(out_dir, args.scheme + ".npy")
    with open(path, "wb") as f:
        np.save(f, np.array(PROMPT, dtype=np.int32))
        np.save(f, sub)
        np.save(f, np.ascontiguousarray(logits[:, sub], dtype=np.float32))
        np.save(f, np.abs(logits).max(axis=1).astype(np.float32))
        for t in tensors:
            q = t.qdata[:ROWS].to(torch.int32).numpy()
            s = t.scale[:ROWS].float().reshape(q.shape[0], -1).numpy()
            zp = t.zero_point[:ROWS]
            assert int(zp.abs().max()) == 0, "symmetric: zero points are 0"
            np.save(f, np.ascontiguousarray(q))
            np.save(f, np.ascontiguousarray(s))
    print(f"{path}: torchao {torchao.__version__}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A torchao safetensors export, made by torchao and transformers themselves, for t/torchao.bats.

A seeded Qwen3 (vocab 512, hidden 128, 2 layers, untied, float32) is quantized the way
torchao's model cards do it (quant.md §2.1 with f32 scales), through transformers'
TorchAoConfig at load time, and saved with save_pretrained(safe_serialization=True), which
flattens each IntxUnpackedToInt8Tensor into _weight_qdata/_weight_scale/_weight_zero_point
plus the header metadata (torchao 0.18, torchao/prototype/safetensors):

    linears (q/k/v/o, gate/up/down, lm_head): Int8DynamicActivationIntxWeightConfig(
        weight_dtype=torch.int4, weight_granularity=PerGroup(32))
    embedding: IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0))

t/fixtures/torchao/model: what save_pretrained wrote (config.json, model.safetensors).
t/fixtures/torchao/ref.npy, .npy records back to back:
    prompt ids int32 (P,)
    logits f32 (P, V)            the quantized model's forward (torchao's reference:
                                 activations quantized and dequantized per token, F.linear)
    then per tensor in TENSORS, rows [0, ROWS) of torchao's own dequantize(), f32 (ROWS, in)
t/fixtures/torchao/no-scale: the embedding's tensors without its _weight_scale (the
loader must name it).

    /work/venv/bin/python t/gen_torchao_export.py    # torch, torchao, transformers, safetensors
"""
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
import torchao
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from torchao.quantization import (Int8DynamicActivationIntxWeightConfig, IntxWeightOnlyConfig,
                                  ModuleFqnToConfig)
from torchao.quantization.granularity import PerAxis, PerGroup

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "torchao")
PROMPT = [1, 7, 42, 100, 511, 3, 256, 99, 0, 17]
ROWS = 16
TENSORS = ["model.embed_tokens", "model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj",
           "model.layers.1.self_attn.v_proj", "lm_head"]


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    cfg = transformers.Qwen3Config(
        vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=4096,
        rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    base = transformers.Qwen3ForCausalLM(cfg).float()
    with torch.no_grad():  # weights of the size real checkpoints have, norms not all 1
        for n, p in base.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) * (0.5 if "embed" in n or "lm_head" in n else 1 / p.shape[1] ** 0.5))
    tmp = tempfile.mkdtemp()
    mdir = os.path.join(OUT, "model")
    try:
        base.save_pretrained(tmp)
        qc = ModuleFqnToConfig({
            "_default": Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4,
                                                              weight_granularity=PerGroup(32)),
            "model.embed_tokens": IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0)),
        })
        m = transformers.AutoModelForCausalLM.from_pretrained(
            tmp, dtype=torch.float32, attn_implementation="eager",
            quantization_config=transformers.TorchAoConfig(
                qc, include_input_output_embeddings=True, modules_to_not_convert=[]))
        m.save_pretrained(mdir, safe_serialization=True)
    finally:
        shutil.rmtree(tmp)
    for f in os.listdir(mdir):
        if f not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(mdir, f))
    # the reference from the directory as transformers + torchao load it back
    m = transformers.AutoModelForCausalLM.from_pretrained(mdir, dtype=torch.float32,
                                                          attn_implementation="eager")
    m.eval()
    assert type(m.model.layers[0].self_attn.q_proj.weight).__name__ == "IntxUnpackedToInt8Tensor"
    with torch.no_grad():
        logits = m(torch.tensor([PROMPT])).logits[0].float().numpy()
    with open(os.path.join(OUT, "ref.npy"), "wb") as f:
        np.save(f, np.array(PROMPT, dtype=np.int32))
        np.save(f, np.ascontiguousarray(logits, dtype=np.float32))
        for name in TENSORS:
            mod = m.get_submodule(name)
            np.save(f, np.ascontiguousarray(mod.weight.dequantize()[:ROWS].float().numpy()))

    # bad input: the embedding's _weight_scale left out (a model of vocab 8 holding only
    # the embedding's other tensors, with the header metadata torchao wrote for it)
    src = os.path.join(mdir, "model.safetensors")
    with safe_open(src, "pt") as f:
        meta = f.metadata()
        e = "model.embed_tokens."
        tensors = {k: f.get_tensor(k)[:8].clone() for k in (e + "_weight_qdata", e + "_weight_zero_point")}
    bad = os.path.join(OUT, "no-scale")
    os.makedirs(bad)
    c = json.load(open(os.path.join(mdir, "config.json")))
    c["vocab_size"] = 8
    json.dump(c, open(os.path.join(bad, "config.json"), "w"), indent=2)
    save_file(tensors, os.path.join(bad, "model.safetensors"), metadata=meta)
    print(f"{OUT}: torchao {torchao.__version__}, torch {torch.__version__}, transformers "
          f"{transformers.__version__}, "
          f"{sum(os.path.getsize(os.path.join(r, x)) for r, _, fs in os.walk(OUT) for x in fs)} bytes")


if __name__ == "__main__":
    main()

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
t/fixtures/torchao/asym: the same with what the recipe does not give: asymmetric int4 in
groups of 64 (zero points not 0), a weight-only int4 down_proj in groups of 32, an int8
per-row weight-only lm_head (vocab 64).
t/fixtures/torchao/model.npy, asym.npy and d8.npy, .npy records back to back:
    prompt ids int32 (P,)
    logits f32 (P, V)            the quantized model's forward (torchao's reference:
                                 activations quantized and dequantized per token, F.linear)
    sensitivity f32 (1,)         the most those logits move (/ max|logit| of the row) when
                                 the embeddings move by 1e-6 relative (5 seeded draws)
    then per tensor in TENSORS, rows [0, ROWS) of torchao's own dequantize(), f32 (ROWS, in)
    x f32 (5, 256)               sin(0.37 i), and per module in LINEARS its output for
                                 x[:, :in] through torchao (F.linear, the quantized weight)
t/fixtures/torchao/d8: the same model (vocab 64) with int8 per-row linears and int8 dynamic
activations, Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int8,
weight_granularity=PerAxis(0)) (zero points 0), the embedding int8 per row as the recipe's.
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
from torchao.quantization.quant_primitives import MappingType

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "torchao")
PROMPT = [1, 7, 42, 100, 511, 3, 256, 99, 0, 17]
ROWS = 16
LINEARS = ["model.layers.0.self_attn.q_proj", "model.layers.1.mlp.down_proj", "lm_head"]
TENSORS = ["model.embed_tokens", "model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj",
           "model.layers.1.self_attn.v_proj", "lm_head"]


def export(name, vocab, tied, qc, tensors):
    """A seeded Qwen3 of this vocabulary quantized by qc through TorchAoConfig, saved to
    OUT/name; OUT/name.npy gets the prompt, torchao's logits and the recorded rows."""
    cfg = transformers.Qwen3Config(
        vocab_size=vocab, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=4096,
        rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=tied,
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
    mdir = os.path.join(OUT, name)
    try:
        base.save_pretrained(tmp)
        m = transformers.AutoModelForCausalLM.from_pretrained(
            tmp, dtype=torch.float32, attn_implementation="eager",
            quantization_config=transformers.TorchAoConfig(
                ModuleFqnToConfig(qc), include_input_output_embeddings=True, modules_to_not_convert=[]))
        m.save_pretrained(mdir, safe_serialization=True)
    finally:
        shutil.rmtree(tmp)
    for f in os.listdir(mdir):
        if f not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(mdir, f))
    os.chmod(os.path.join(mdir, "model.safetensors"), 0o644)
    # the reference from the directory as transformers + torchao load it back
    m = transformers.AutoModelForCausalLM.from_pretrained(mdir, dtype=torch.float32,
                                                          attn_implementation="eager")
    m.eval()
    assert type(m.model.layers[0].self_attn.q_proj.weight).__name__ == "IntxUnpackedToInt8Tensor"
    prompt = [i % vocab for i in PROMPT]
    with torch.no_grad():
        logits = m(torch.tensor([prompt])).logits[0].float().numpy()
    # how far torchao's own logits move when the embeddings move by 1e-6 (relative, 5 draws):
    # a per-token int8 rounding that flips amplifies such noise, so this is the scale below
    # which two correct implementations cannot be told apart
    e = m.model.embed_tokens(torch.tensor([prompt]))
    sens = 0.0
    for trial in range(5):
        torch.manual_seed(trial)
        with torch.no_grad():
            moved = m(inputs_embeds=e * (1 + 1e-6 * torch.randn_like(e))).logits[0].float().numpy()
        sens = max(sens, float((np.abs(moved - logits).max(1) / np.abs(logits).max(1)).max()))
    with open(os.path.join(OUT, name + ".npy"), "wb") as f:
        np.save(f, np.array(prompt, dtype=np.int32))
        np.save(f, np.ascontiguousarray(logits, dtype=np.float32))
        np.save(f, np.array([sens], dtype=np.float32))
        for t in tensors:
            np.save(f, np.ascontiguousarray(m.get_submodule(t).weight.dequantize()[:ROWS].float().numpy()))
        x = torch.tensor(np.sin(np.arange(5 * 256, dtype=np.float32) * np.float32(0.37)).reshape(5, 256))
        np.save(f, x.numpy())
        for t in LINEARS:
            mod = m.get_submodule(t)
            with torch.no_grad():
                np.save(f, np.ascontiguousarray(mod(x[:, :mod.weight.shape[1]]).float().numpy()))
    return mdir


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    mdir = export("model", 512, False, {
        "_default": Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4,
                                                          weight_granularity=PerGroup(32)),
        "model.embed_tokens": IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0)),
    }, TENSORS)
    # what the recipe does not give (our generic path): asymmetric int4 in groups of 64
    # (zero points not 0), a weight-only int4 down_proj in groups of 32, and an int8
    # per-row weight-only lm_head (what transformers gives a tied one)
    export("asym", 64, False, {
        "_default": Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4,
                                                          weight_granularity=PerGroup(64),
                                                          weight_mapping_type=MappingType.ASYMMETRIC),
        "model.layers.1.mlp.down_proj": IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32)),
        "lm_head": IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0)),
        "model.embed_tokens": IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0)),
    }, TENSORS)
    # int8 per-row linears with int8 per-token activations (the 8da8w layout)
    export("d8", 64, False, {
        "_default": Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int8,
                                                          weight_granularity=PerAxis(0)),
        "model.embed_tokens": IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0)),
    }, TENSORS)

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

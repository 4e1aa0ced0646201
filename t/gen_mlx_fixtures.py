#!/usr/bin/env python3
"""The MLX reference, made by MLX itself, for t/mlx.bats.

MLX (PyPI `mlx[cpu]` 0.32, its Linux CPU build) and mlx-lm 0.32 quantize a small seeded
Qwen3 (vocab 512, hidden 128, 2 layers; made by transformers, bf16) with per-module
overrides, so that one checkpoint holds every affine width and group:

    model.embed_tokens (tied lm_head)  4 bits, group 64 (the default)
    layers.0 q_proj 2/32, k_proj 3/64, v_proj 5/128, o_proj 6/32,
             gate_proj 8/128, up_proj 4/64, down_proj 6/64
    layers.1 v_proj  false (left in bf16); the rest 4/64

and saves it with mlx-lm's own save_model/save_config (t/fixtures/mlx/model: config.json,
model.safetensors, its index). mlx-lm writes no entry for a module its predicate left
alone; mlx-lm 0.24 wrote `false`, so the script adds that entry to the config and then
reloads the directory with mlx_lm.utils.load_model (which honours it) before computing
anything, so every reference below comes from the checkpoint as MLX reads it.

t/fixtures/mlx/ref.npy, .npy records back to back:
    prompt ids int32 (P,)
    logits f32 (P, V)        mlx-lm's forward of the quantized model as it runs it (bf16
                             activations, quantized_matmul)
    logits f32 (P, V)        mlx-lm's forward in f32 of the same model dequantized by
                             mlx_lm.utils.dequantize_model (mx.dequantize), cast to f32
    then per tensor in TENSORS: mx.dequantize of rows [0, ROWS), as bf16 bits uint16 (ROWS, in)
t/fixtures/mlx/untied, untied.npy: float16 (older mlx-lm's default), vocab 64, an untied
lm_head (8 bits, group 32), the embedding at 3 bits in groups of 128: prompt, both logits,
and the dequantized rows of its embedding, lm_head and layers.0 q_proj as f32.
t/fixtures/mlx/dequant.sha256: SHA-256 of the bytes of every tensor of
mlx_lm.utils.dequantize_model (what `mlx_lm convert --dequantize` saves), one line each.
t/fixtures/mlx/bad-*/: config.json + model.safetensors with only the embedding, each
wrong in one way (the loader must name the tensor and say why).

    /work/venv/bin/python t/gen_mlx_fixtures.py     # needs mlx[cpu], mlx-lm, transformers, torch
"""
import hashlib
import json
import os
import shutil
import sys
import tempfile

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import torch
import transformers
from mlx_lm.utils import (dequantize_model, load_model, quantize_model, save_config,
                          save_model)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "mlx")
PROMPT = [1, 7, 42, 100, 511, 3, 256, 99, 0, 17]
ROWS = 16
OVERRIDES = {
    "model.layers.0.self_attn.q_proj": (2, 32),
    "model.layers.0.self_attn.k_proj": (3, 64),
    "model.layers.0.self_attn.v_proj": (5, 128),
    "model.layers.0.self_attn.o_proj": (6, 32),
    "model.layers.0.mlp.gate_proj": (8, 128),
    "model.layers.0.mlp.down_proj": (6, 64),
}
UNQUANTIZED = "model.layers.1.self_attn.v_proj"
UNTIED_TENSORS = ["model.embed_tokens", "lm_head", "model.layers.0.self_attn.q_proj"]
TENSORS = ["model.embed_tokens"] + list(OVERRIDES) + [
    "model.layers.0.mlp.up_proj", "model.layers.1.mlp.down_proj"]


def base_model(path, vocab=512, tied=True, dtype=torch.bfloat16):
    cfg = transformers.Qwen3Config(
        vocab_size=vocab, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=4096,
        rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=tied,
        bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    m = transformers.Qwen3ForCausalLM(cfg).to(dtype)
    with torch.no_grad():  # weights of the size real checkpoints have, norms not all 1
        for n, p in m.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) * (0.5 if "embed" in n or "lm_head" in n else 1 / p.shape[1] ** 0.5))
    m.save_pretrained(path)


def predicate(path, module):
    if path == UNQUANTIZED:
        return False
    if path in OVERRIDES:
        b, g = OVERRIDES[path]
        return {"group_size": g, "bits": b, "mode": "affine"}
    return True


def logits_of(model, prompt=PROMPT):
    out = model(mx.array([prompt]))[0].astype(mx.float32)
    return np.array(out)


def get(model, name):
    mod = model
    for part in name.split("."):
        mod = mod[int(part)] if part.isdigit() else getattr(mod, part)
    return mod


def untied():
    """OUT/untied: float16 (older mlx-lm's default dtype), vocab 64, an untied lm_head at 8
    bits in groups of 32 and the embedding at 3 bits in groups of 128; OUT/untied.npy:
    prompt, native logits, f32 logits, then the rows of UNTIED_TENSORS as f32 (f16 values)."""
    from pathlib import Path
    tmp = tempfile.mkdtemp()
    mdir = os.path.join(OUT, "untied")
    over = {"lm_head": (8, 32), "model.embed_tokens": (3, 128)}
    try:
        base_model(tmp, vocab=64, tied=False, dtype=torch.float16)
        model, config = load_model(Path(tmp))
        model, config = quantize_model(model, config, 64, 4, quant_predicate=lambda p, m: {
            "group_size": over[p][1], "bits": over[p][0], "mode": "affine"} if p in over else True)
        save_model(mdir, model)
        save_config(config, os.path.join(mdir, "config.json"))
    finally:
        shutil.rmtree(tmp)
    model, config = load_model(Path(mdir))
    prompt = [i % 64 for i in PROMPT]
    native = logits_of(model, prompt)
    deq = []
    for name in UNTIED_TENSORS:
        mod = get(model, name)
        w = mx.dequantize(mod.weight, mod.scales, mod.biases, mod.group_size, mod.bits)
        assert w.dtype == mx.float16
        deq.append(np.array(w[:ROWS].astype(mx.float32)))
    model = dequantize_model(model)
    model.set_dtype(mx.float32)
    f32 = logits_of(model, prompt)
    with open(os.path.join(OUT, "untied.npy"), "wb") as f:
        np.save(f, np.array(prompt, dtype=np.int32))
        np.save(f, native)
        np.save(f, f32)
        for d in deq:
            np.save(f, d)


def bad(name, vocab, tensors, cfg):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    c = dict(cfg, vocab_size=vocab)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    mx.save_safetensors(os.path.join(d, "model.safetensors"), tensors, metadata={"format": "mlx"})


def main():
    mx.set_default_device(mx.cpu)
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    tmp = tempfile.mkdtemp()
    try:
        base_model(tmp)
        model, config = load_model(__import__("pathlib").Path(tmp))
        model, config = quantize_model(model, config, 64, 4, quant_predicate=predicate)
        config["quantization"][UNQUANTIZED] = False
        mdir = os.path.join(OUT, "model")
        save_model(mdir, model)
        save_config(config, os.path.join(mdir, "config.json"))
    finally:
        shutil.rmtree(tmp)
    # everything below from the directory as MLX reads it back
    from pathlib import Path
    model, config = load_model(Path(mdir))
    assert not isinstance(model.model.layers[1].self_attn.v_proj, nn.QuantizedLinear)
    native = logits_of(model)
    deq = {}
    for name in TENSORS:
        mod = get(model, name)
        w = mx.dequantize(mod.weight, mod.scales, mod.biases, mod.group_size, mod.bits)
        assert w.dtype == mx.bfloat16
        deq[name] = np.array(w[:ROWS].view(mx.uint16))
    model = dequantize_model(model)
    # what `mlx_lm convert --dequantize` writes: every tensor's bytes, hashed
    from mlx.utils import tree_flatten
    with open(os.path.join(OUT, "dequant.sha256"), "w") as f:
        for name, v in sorted(tree_flatten(model.parameters())):
            assert v.dtype == mx.bfloat16
            f.write(f"{hashlib.sha256(np.array(v.view(mx.uint16)).tobytes()).hexdigest()}  {name}\n")
    model.set_dtype(mx.float32)
    f32 = logits_of(model)
    with open(os.path.join(OUT, "ref.npy"), "wb") as f:
        np.save(f, np.array(PROMPT, dtype=np.int32))
        np.save(f, native)
        np.save(f, f32)
        for name in TENSORS:
            np.save(f, deq[name])

    untied()

    # bad inputs: the embedding alone, in a model of vocab 8
    cfg = json.load(open(os.path.join(mdir, "config.json")))
    for k in ("quantization", "quantization_config"):
        cfg[k] = {"group_size": 64, "bits": 4, "mode": "affine"}
    rng = np.random.default_rng(0)
    u32 = lambda r, c: mx.array(rng.integers(0, 2**32, (r, c), dtype=np.uint32))
    b16 = lambda r, c: mx.array(rng.standard_normal((r, c)).astype(np.float32)).astype(mx.bfloat16)
    e = "model.embed_tokens."
    bad("bad-bits", 8, {e + "weight": u32(8, 7), e + "scales": b16(8, 2), e + "biases": b16(8, 2)}, cfg)
    bad("bad-config", 8, {e + "weight": u32(8, 32), e + "scales": b16(8, 2), e + "biases": b16(8, 2)}, cfg)
    bad("bad-biases", 8, {e + "weight": u32(8, 16), e + "scales": b16(8, 2), e + "biases": b16(8, 4)}, cfg)
    bad("bad-rows", 8, {e + "weight": u32(7, 16), e + "scales": b16(7, 2), e + "biases": b16(7, 2)}, cfg)
    bad("no-biases", 8, {e + "weight": u32(8, 16), e + "scales": b16(8, 2)}, cfg)
    print(f"{OUT}: mlx {mx.__version__}, mlx-lm {__import__('mlx_lm').__version__}, "
          f"{sum(os.path.getsize(os.path.join(r, x)) for r, _, fs in os.walk(OUT) for x in fs)} bytes")


if __name__ == "__main__":
    main()

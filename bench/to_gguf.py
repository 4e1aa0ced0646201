#!/usr/bin/env python3
"""to_gguf: write one of our Qwen3 model directories (config.json, model.safetensors in
bf16 or f32, tokenizer.json) as a GGUF file that llama.cpp loads, so that llama.cpp runs
the same weights we do (bench/llama.sh).

  python3 bench/to_gguf.py MODEL_DIR OUT.gguf --type bf16|f32|q8_0|q4_0

Metadata, tensor names and tokenizer keys follow llama.cpp's convert_hf_to_gguf.py for
Qwen3 (../shared/reference/quant.md 3.2-3.3): arch "qwen3", GGUF dims innermost first
(numpy's [out, in] shape is what gguf-py reverses), Q/K not permuted, tied lm_head left
out (llama.cpp reuses token_embd). Norms stay F32. With q8_0/q4_0 every matrix is
quantized, token_embd included ("pure", as `llama-quantize --pure`), by gguf-py's
reference quantizers (gguf.quants, bit-exact with ggml's quantize_row_*_ref) from the
f32 value of each weight. bf16 weights are copied bit for bit. Needs numpy and PyPI gguf.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

TYPES = {  # --type: (tensor type, general.file_type)
    "f32": (Q.F32, gguf.LlamaFileType.ALL_F32),
    "bf16": (Q.BF16, gguf.LlamaFileType.MOSTLY_BF16),
    "q8_0": (Q.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
    "q4_0": (Q.Q4_0, gguf.LlamaFileType.MOSTLY_Q4_0),
}

HF_TO_GGUF = {  # per-layer names; "model.layers.N." prefix becomes "blk.N."
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_name(hf):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    p = hf.split(".")
    if len(p) > 3 and p[0] == "model" and p[1] == "layers" and ".".join(p[3:]) in HF_TO_GGUF:
        return f"blk.{int(p[2])}.{HF_TO_GGUF['.'.join(p[3:])]}"
    raise SystemExit(f"to_gguf: {hf}: not a Qwen3 tensor name")


def safetensors_tensors(path):
    """Yield (name, dtype, array) mapped read-only from one safetensors file; bf16 comes
    as its raw uint16 bits."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    base = 8 + n
    np_dtype = {"BF16": np.uint16, "F32": np.float32, "F16": np.float16}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        if v["dtype"] not in np_dtype:
            raise SystemExit(f"to_gguf: {name}: dtype {v['dtype']}: want BF16, F16 or F32")
        lo, hi = v["data_offsets"]
        a = mm[base + lo:base + hi].view(np_dtype[v["dtype"]]).reshape(v["shape"])
        yield name, v["dtype"], a


def to_f32(dtype, a):
    if dtype == "BF16":
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32, copy=False)  # f32 stays the mapped file


def add_vocab(w, d, cfg):
    """The byte-level BPE vocabulary from tokenizer.json, as convert_hf_to_gguf's
    _set_vocab_gpt2 writes it (ids without a token become [PAD<i>], type UNUSED)."""
    tj = json.load(open(os.path.join(d, "tokenizer.json"), encoding="utf-8"))
    n_vocab = cfg["vocab_size"]
    tokens = [f"[PAD{i}]" for i in range(n_vocab)]
    types = [gguf.TokenType.UNUSED] * n_vocab
    for tok, i in tj["model"]["vocab"].items():
        if i < n_vocab:
            tokens[i], types[i] = tok, gguf.TokenType.NORMAL
    for t in tj.get("added_tokens", []):
        if t["id"] < n_vocab:
            tokens[t["id"]] = t["content"]
            types[t["id"]] = gguf.TokenType.CONTROL if t.get("special") else gguf.TokenType.USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    eos = cfg.get("eos_token_id", 151645)
    w.add_eos_token_id(eos[0] if isinstance(eos, list) else eos)
    w.add_bos_token_id(cfg.get("bos_token_id", 151643))
    w.add_pad_token_id(cfg.get("bos_token_id", 151643))
    w.add_add_bos_token(False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--type", choices=TYPES, default="bf16")
    args = ap.parse_args()
    d = args.model_dir
    cfg = json.load(open(os.path.join(d, "config.json")))
    if cfg.get("model_type") != "qwen3":
        raise SystemExit(f"to_gguf: {d}: model_type {cfg.get('model_type')!r}: want qwen3")
    qtype, ftype = TYPES[args.type]
    head_dim = cfg.get("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])

    tmp = args.out + ".tmp"
    w = gguf.GGUFWriter(tmp, "qwen3")
    w.add_name(os.path.basename(os.path.normpath(d)))
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_freq_base(float(cfg["rope_theta"]))
    w.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    rs = cfg.get("rope_scaling") or {}
    if rs.get("rope_type", rs.get("type")) == "yarn":
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(float(rs["factor"]))
        w.add_rope_scaling_orig_ctx_len(int(rs["original_max_position_embeddings"]))
    w.add_file_type(ftype)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_vocab(w, d, cfg)

    st = os.path.join(d, "model.safetensors")
    for name, dtype, a in safetensors_tensors(st):
        if name == "lm_head.weight" and cfg.get("tie_word_embeddings"):
            continue
        gname = gguf_name(name)
        if a.ndim == 1 or qtype == Q.F32:       # norms are F32 in every file type
            w.add_tensor(gname, to_f32(dtype, a))
        elif qtype == Q.BF16 and dtype == "BF16":  # the same bits, no rounding
            w.add_tensor(gname, a, raw_shape=a.shape, raw_dtype=Q.BF16)
        else:                                   # quantizing copies: held until written
            q = np.concatenate([gguf.quants.quantize(to_f32(dtype, a[r:r + 4096]), qtype)
                                for r in range(0, a.shape[0], 4096)])  # 4096 rows at a time
            w.add_tensor(gname, q, raw_dtype=qtype)  # byte shape -> element shape
        out = "F32" if a.ndim == 1 else qtype.name
        print(f"to_gguf: {gname} {list(a.shape)} {dtype} -> {out}", file=sys.stderr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file(progress=sys.stderr.isatty())
    w.close()
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()

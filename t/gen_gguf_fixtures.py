#!/usr/bin/env python3
"""gen_gguf_fixtures: the GGUF fixtures of t/gguf.bats, made and checked with code we did
not write: gguf-py 0.19 (GGUFWriter, its reference quantizers and dequantizers) and
llama.cpp 0.3.36 (llama-quantize for the K-quants, and its CPU backend for logits).

    /work/venv/bin/python t/gen_gguf_fixtures.py [LLAMA_BUILD_DIR [LLAMA_SRC_DIR]]

Writes t/fixtures/gguf/:
  mixed.gguf     dim 256 (every K-quant row needs 256), 1 layer, 4 heads of 64, 2 kv heads,
                 ffn 256, a 263-token byte vocabulary (4 merges), tied. Written in F32 by gguf-py, then
                 llama-quantize with a base type of Q4_0 and per-tensor types: layer 0 mixes
                 Q4_K, Q6_K, F16, Q4_0, Q8_0, BF16; token_embd Q6_K (so the tied lm_head is too).
  untied.gguf    dim 64, 2 layers, 4 heads of 16, 2 kv heads, ffn 128: gguf-py writes BF16
                 matrices (attn_v F16), F32 norms, Q8_0 token_embd and a separate Q8_0 output.weight
                 (gguf-py's quantizer, which is bit-exact with ggml's reference).
  NAME.sha256    per tensor, sha256 of gguf-py's dequantize() of it as little-endian f32
                 (the bytes `gguf_test dequant NAME.gguf TENSOR` must print)
  NAME.ids       the token ids the logits are of
  NAME.logits.npy  llama.cpp's logits (n, vocab) f32, one position at a time (decode
                 path), 1 thread, F32 KV cache, no flash attention, no weight repacking.
  mixed.rows.npy the same logits as n records of (vocab,)
  vocab.gguf.xz  the tokenizer.ggml.* keys (and nothing else) that llama.cpp's own
                 convert_hf_to_gguf.py writes for build/models/tiny (Qwen3's real tokenizer:
                 151936 tokens with 267 [PAD] ids, 151387 merges), xz-compressed (1.3 MB).
and t/fuzz/corpus/gguf/, the seeds of t/fuzz/gguf_fuzz.c (fuzz_seeds below).
The weights are seeded random normals, so every run writes the same files.
"""
import hashlib
import os
import subprocess
import sys
import tempfile

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "gguf")
CACHE = os.path.expanduser("~/.cache/qwen3-pipe/llama.cpp")
BUILD = sys.argv[1] if len(sys.argv) > 1 else os.path.join(CACHE, "build-0.3.36")
SRC = sys.argv[2] if len(sys.argv) > 2 else os.path.join(CACHE, "llama_cpp_python-0.3.36", "vendor", "llama.cpp")
IDS = [151, 7, 42, 0, 255, 258, 99, 3, 128, 200, 17, 262]  # positions 0..11 (262 = <|im_end|>)


def byte_vocab():
    """GPT-2 byte-level tokens for bytes 0..255, then three specials, as the converter
    writes a gpt2 vocabulary (tokens, token types 1 normal / 3 control)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    m = dict(zip(bs, cs))
    toks = [chr(m[b]) for b in range(256)] + ["\u0120t", "he", "\u0120the", "in"]
    toks += ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    return toks, [1] * 260 + [3, 3, 3], ["\u0120 t", "h e", "\u0120t he", "i n"]


def weights(rng, dim, layers, heads, kv, hd, ff, vocab, untied):
    w = {"token_embd.weight": rng.standard_normal((vocab, dim)) * 0.5,
         "output_norm.weight": 1 + 0.1 * rng.standard_normal(dim)}
    if untied:
        w["output.weight"] = rng.standard_normal((vocab, dim)) * 0.1
    for l in range(layers):
        p = f"blk.{l}."
        for name, shape, s in [("attn_norm", (dim,), 0), ("attn_q", (heads * hd, dim), dim),
                               ("attn_k", (kv * hd, dim), dim), ("attn_v", (kv * hd, dim), dim),
                               ("attn_output", (dim, heads * hd), heads * hd), ("attn_q_norm", (hd,), 0),
                               ("attn_k_norm", (hd,), 0), ("ffn_norm", (dim,), 0),
                               ("ffn_gate", (ff, dim), dim), ("ffn_up", (ff, dim), dim),
                               ("ffn_down", (dim, ff), ff)]:
            if s == 0:
                w[p + name + ".weight"] = 1 + 0.1 * rng.standard_normal(shape)
            else:
                w[p + name + ".weight"] = rng.standard_normal(shape) / np.sqrt(s)
    return {k: v.astype(np.float32) for k, v in w.items()}


def write(path, w, dim, layers, heads, kv, hd, ff, types):
    """gguf-py's writer with the converter's qwen3 keys; types: name -> quant type."""
    wr = gguf.GGUFWriter(path, "qwen3")
    wr.add_block_count(layers)
    wr.add_context_length(4096)
    wr.add_embedding_length(dim)
    wr.add_feed_forward_length(ff)
    wr.add_head_count(heads)
    wr.add_head_count_kv(kv)
    wr.add_key_length(hd)
    wr.add_value_length(hd)
    wr.add_rope_freq_base(1e6)
    wr.add_layer_norm_rms_eps(1e-6)
    wr.add_file_type(gguf.LlamaFileType.ALL_F32)
    toks, tt, merges = byte_vocab()
    wr.add_tokenizer_model("gpt2")
    wr.add_tokenizer_pre("qwen2")
    wr.add_token_list(toks)
    wr.add_token_types(tt)
    wr.add_token_merges(merges)
    wr.add_bos_token_id(260)
    wr.add_eos_token_id(262)
    for name, a in w.items():
        t = types.get(name, Q.F32)
        if t == Q.F32:
            wr.add_tensor(name, a)
        else:
            wr.add_tensor(name, gguf.quants.quantize(a, t), raw_dtype=t)
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()


def sha_lines(path):
    r = gguf.GGUFReader(path)
    lines = []
    for t in r.tensors:
        a = gguf.quants.dequantize(t.data, t.tensor_type).astype("<f4")
        lines.append(f"{hashlib.sha256(a.tobytes()).hexdigest()}  {t.name} {t.tensor_type.name}\n")
    return "".join(lines)


DUMP_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include "llama.h"
int main(int argc, char **argv) {
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.use_extra_bufts = 0; /* no repacking: ggml's plain vec_dot kernels */
    struct llama_model *m = llama_model_load_from_file(argv[1], mp);
    if (!m) return 1;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 64; cp.n_batch = 64; cp.n_ubatch = 64; cp.n_threads = 1; cp.n_threads_batch = 1;
    cp.type_k = GGML_TYPE_F32; cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    struct llama_context *c = llama_init_from_model(m, cp);
    if (!c) return 1;
    int nv = llama_vocab_n_tokens(llama_model_get_vocab(m));
    FILE *out = fopen(argv[2], "wb");
    for (int i = 3; i < argc; i++) {
        llama_token t = atoi(argv[i]);
        if (llama_decode(c, llama_batch_get_one(&t, 1))) return 1;
        fwrite(llama_get_logits_ith(c, -1), sizeof(float), nv, out);
    }
    fclose(out);
    printf("%d\n", nv);
    return 0;
}
"""


def llama_dump(tmp):
    exe = os.path.join(tmp, "dump")
    src = os.path.join(tmp, "dump.c")
    open(src, "w").write(DUMP_C)
    libs = [os.path.join(BUILD, p) for p in ["src/libllama.a", "ggml/src/libggml.a", "ggml/src/libggml-cpu.a",
                                             "ggml/src/libggml-base.a"]]
    subprocess.run(["cc", "-O1", "-c", "-o", exe + ".o", src, "-I" + os.path.join(SRC, "include"),
                    "-I" + os.path.join(SRC, "ggml", "include")], check=True)
    subprocess.run(["c++", "-o", exe, exe + ".o"] + libs + ["-fopenmp", "-lpthread", "-lm", "-ldl"], check=True)
    return exe


def logits(exe, model, tmp):
    raw = os.path.join(tmp, "logits.raw")
    r = subprocess.run([exe, model, raw] + [str(i) for i in IDS], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"llama.cpp on {model} failed:\n{r.stderr[-3000:]}")
    nv = int(r.stdout)
    return np.fromfile(raw, dtype="<f4").reshape(len(IDS), nv)


def vocab(tmp):
    """llama.cpp's converter on build/models/tiny; its tokenizer keys copied as they are."""
    conv = os.path.join(tmp, "tiny.gguf")
    subprocess.run([sys.executable, os.path.join(SRC, "convert_hf_to_gguf.py"),
                    os.path.join(HERE, "..", "build", "models", "tiny"), "--outfile", conv, "--outtype", "bf16"],
                   check=True, capture_output=True)
    r = gguf.GGUFReader(conv)
    f = lambda k: r.fields[k].contents()
    assert f("tokenizer.ggml.model") == "gpt2" and f("tokenizer.ggml.pre") == "qwen2"
    path = os.path.join(tmp, "vocab.gguf")
    w = gguf.GGUFWriter(path, "qwen3")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(f("tokenizer.ggml.tokens"))
    w.add_token_types(f("tokenizer.ggml.token_type"))
    w.add_token_merges(f("tokenizer.ggml.merges"))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(os.path.join(OUT, "vocab.gguf.xz"), "wb") as out:
        subprocess.run(["xz", "-9e", "-T1", "-c", path], stdout=out, check=True)


def fuzz_seeds():
    """t/fuzz/corpus/gguf: the fixtures' first bytes, and one whole small file (dim 32,
    Q8_0/Q4_0/F16/BF16/F32 matrices, untied, the byte vocabulary)."""
    d = os.path.join(HERE, "fuzz", "corpus", "gguf")
    os.makedirs(d, exist_ok=True)
    for name, n in [("mixed.gguf", 4096), ("untied.gguf", 8192)]:
        open(os.path.join(d, name.split(".")[0] + "-head"), "wb").write(open(os.path.join(OUT, name), "rb").read(n))
    xz = subprocess.run(["xz", "-dc", os.path.join(OUT, "vocab.gguf.xz")], check=True, capture_output=True).stdout
    open(os.path.join(d, "vocab-head"), "wb").write(xz[:16384])
    w = weights(np.random.default_rng(1), 32, 1, 2, 1, 16, 32, 263, True)
    write(os.path.join(d, "tiny-whole"), w, 32, 1, 2, 1, 16, 32,
          {"blk.0.attn_q.weight": Q.Q8_0, "blk.0.attn_k.weight": Q.Q4_0, "blk.0.attn_v.weight": Q.F16,
           "blk.0.attn_output.weight": Q.BF16, "output.weight": Q.Q8_0, "token_embd.weight": Q.Q8_0})


def main():
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # mixed: F32 by gguf-py, then llama-quantize
        rng = np.random.default_rng(20251123)
        f32 = os.path.join(tmp, "mixed-f32.gguf")
        write(f32, weights(rng, 256, 1, 4, 2, 64, 256, 263, False), 256, 1, 4, 2, 64, 256, {})
        over = ["blk\\.0\\.attn_q=q4_k", "blk\\.0\\.attn_k=q6_k", "blk\\.0\\.attn_v=f32",
                "blk\\.0\\.attn_output=q8_0", "blk\\.0\\.ffn_gate=q4_k",
                "blk\\.0\\.ffn_down=q6_k"]
        args = [os.path.join(BUILD, "bin", "llama-quantize"), "--token-embedding-type", "q6_k"]
        for o in over:
            args += ["--tensor-type", o]
        mixed = os.path.join(OUT, "mixed.gguf")
        subprocess.run(args + [f32, mixed, "Q4_0", "1"], check=True, capture_output=True)
        # untied: gguf-py alone
        rng = np.random.default_rng(64)
        w = weights(rng, 64, 2, 4, 2, 16, 128, 263, True)
        types = {k: Q.BF16 for k, v in w.items() if v.ndim == 2}
        types.update({f"blk.{l}.attn_v.weight": Q.F16 for l in range(2)})
        types["token_embd.weight"] = Q.Q8_0
        types["output.weight"] = Q.Q8_0
        untied = os.path.join(OUT, "untied.gguf")
        write(untied, w, 64, 2, 4, 2, 16, 128, types)

        exe = llama_dump(tmp)
        for name, path in [("mixed", mixed), ("untied", untied)]:
            open(os.path.join(OUT, name + ".sha256"), "w").write(sha_lines(path))
            open(os.path.join(OUT, name + ".ids"), "w").write(" ".join(map(str, IDS)) + "\n")
            lg = logits(exe, path, tmp)
            np.save(os.path.join(OUT, name + ".logits.npy"), lg)
            if name == "mixed":  # the same as one (vocab,) record per position
                with open(os.path.join(OUT, name + ".rows.npy"), "wb") as f:
                    for row in lg:
                        np.save(f, row)
        vocab(tmp)
    fuzz_seeds()
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))


if __name__ == "__main__":
    main()

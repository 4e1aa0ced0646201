#!/usr/bin/env python3
"""Reference logits for the CPU forward pass, from Hugging Face transformers'
Qwen3ForCausalLM (float32, eager attention) over the seeded test models that
lib/gen/tinymodel writes (`make models`).

For each model and prompt (token ids from the real Qwen3 tokenizer, 1 to 70+ tokens,
one a chat turn with special tokens), transformers prefills the prompt, then decodes
32 greedy steps one token at a time with its KV cache, as a generation loop does. That
gives R = n + 32 rows of logits: prefill rows 0..n-1 and decode rows n..n+31 (the rows
after feeding g0..g31), and 33 greedy ids g0..g32 (g_j = argmax of row n-1+j).

A row is 151936 floats, too big to commit for every row, so each row keeps:
  - the logits at a fixed subset of 1024 vocabulary ids (0, V-1 and the rest drawn with
    splitmix64, sorted): enough for a cosine and a max|diff| that any real bug moves;
  - the top 20 ids and values (where greedy decisions are made) and max|logit| over the
    whole vocabulary (the scale for max|diff|);
  - for one row of 0.6b-2l (the last prefill row of the longest prompt), the full
    vocabulary, so that a bug in a part of lm_head the subset misses is still caught.
About 3 MB in all.

Files (t/fixtures/forward/):
  forward.json   versions, whether transformers overrides YaRN's factor (quant.md 4.3),
                 and per model: generator arguments, tolerances, and per prompt the text,
                 ids, greedy ids and the full row (-1 if none)
  NAME.npy       .npy records: subset ids int32 (K,), then per prompt, in order:
                 sub float32 (R,K), top ids int32 (R,20), top values float32 (R,20),
                 max|logit| float32 (R,), and if full_row >= 0 the full row float32 (1,V)
  SHA256SUMS     the model files the reference was computed from (t/forward.bats checks
                 that the generator still writes them byte for byte)

YaRN: tiny-yarn has factor 4 and original_max_position_embeddings 32 (max_pos 40960),
and prompts long enough to run far past 32. transformers before PR #40320 replaced the
factor with max_pos/original (1280 here); the script computes YaRN's inv_freq and
attention factor from the configured factor itself, compares them with the model's
rotary embedding, and installs its own values if they differ, so the reference always
uses the configured factor. forward.json records whether that was needed.

    make models
    /work/venv/bin/python t/gen_forward_reference.py [MODELS_DIR]   # default build/models
"""
import hashlib
import json
import math
import os
import re
import sys

import numpy as np
import torch
import transformers
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "forward")
V = 151936
K = 1024
TOPK = 20
STEPS = 32

PROMPTS = {
    "one": "Hello",
    "short": "The capital of France is",
    "code": "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\nprint(fib(",
    "chat": "<|im_start|>user\nWrite a short story about a lighthouse keeper who finds a message in a "
            "bottle. Keep it under a hundred words, give it a title, and end with a question. "
            "Bonus: one line in French — « la mer est calme » — and one in 中文.<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\n",
}

# bf16 weights get the f32 bar too: transformers widens them exactly and computes in
# float32, as the CPU backend does, so a looser bar would only hide an activation rounded
# to bf16 somewhere (measured: 1-cos ~1e-12, max|diff| ~1e-6 max|logit| for every model).
F32 = {"cos": 0.99999, "maxrel": 1e-4}
BF16 = F32
MODELS = [
    # name, generator arguments, tolerances, prompts, prompt whose last prefill row is kept whole
    ("tiny-f32", "--preset tiny --dtype f32", F32, ["one", "short", "chat"], None),
    ("tiny", "--preset tiny --dtype bf16", BF16, ["short", "chat"], None),
    ("0.6b-2l", "--preset 0.6b-2l --dtype bf16", BF16, ["short", "chat"], "chat"),
    ("tiny-yarn", "--preset tiny --dtype f32 --yarn 4:32", F32, ["chat"], None),
    ("tiny-untied", "--preset tiny --dtype bf16 --untied", BF16, ["code"], None),
]


def splitmix64(seed, n):
    with np.errstate(over="ignore"):
        z = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def subset_ids():
    ids = {0, V - 1}
    for u in splitmix64(0x5155, 4 * K):
        if len(ids) == K:
            break
        ids.add(int(u % np.uint64(V)))
    assert len(ids) == K
    return np.array(sorted(ids), dtype=np.int32)


def yarn_expected(cfg):
    """inv_freq and attention factor per quant.md 4.3, with the configured factor."""
    rs = cfg["rope_scaling"]
    d, base, factor, orig = cfg["head_dim"], float(cfg["rope_theta"]), float(rs["factor"]), rs["original_max_position_embeddings"]
    pos_freqs = base ** (torch.arange(0, d, 2, dtype=torch.float32) / d)
    extrap, interp = 1.0 / pos_freqs, 1.0 / (factor * pos_freqs)

    def corr(rot):
        return d * math.log(orig / (rot * 2 * math.pi)) / (2 * math.log(base))

    low, high = max(math.floor(corr(32)), 0), min(math.ceil(corr(1)), d - 1)
    if low == high:
        high += 0.001
    ramp = torch.clamp((torch.arange(d // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    e = 1 - ramp
    return interp * (1 - e) + extrap * e, 0.1 * math.log(factor) + 1.0


def fix_yarn(model, cfg):
    """Make every rotary embedding use the configured factor; True if transformers did not."""
    inv, att = yarn_expected(cfg)
    quirk = False
    for mod in model.modules():
        if type(mod).__name__.endswith("RotaryEmbedding"):
            same = torch.allclose(mod.inv_freq.float(), inv, rtol=1e-6, atol=0) and abs(mod.attention_scaling - att) < 1e-9
            if not same:
                quirk = True
                mod.inv_freq = inv.to(mod.inv_freq.device)
                mod.original_inv_freq = mod.inv_freq
                mod.attention_scaling = att
    return quirk


@torch.no_grad()
def run(model, ids):
    """Prefill ids, then STEPS greedy decode steps: (rows (n+STEPS, V) float32, greedy ids)."""
    cache = transformers.DynamicCache(config=model.config)
    out = model(torch.tensor([ids]), past_key_values=cache, use_cache=True)
    rows = [out.logits[0].float()]
    gen = [int(rows[-1][-1].argmax())]
    for _ in range(STEPS):
        out = model(torch.tensor([[gen[-1]]]), past_key_values=out.past_key_values, use_cache=True)
        rows.append(out.logits[0].float())
        gen.append(int(rows[-1][-1].argmax()))
    return torch.cat(rows).numpy(), gen


def npy(f, a):
    np.lib.format.write_array(f, np.ascontiguousarray(a), version=(1, 0))


def main():
    models_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "build", "models")
    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    tok = Tokenizer.from_file(os.path.join(HERE, "fixtures", "qwen3-tokenizer", "tokenizer.json"))
    sub = subset_ids()
    meta = {
        "generator": "t/gen_forward_reference.py",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "subset": K, "topk": TOPK, "decode_steps": STEPS,
        "models": [],
    }
    sums = []
    os.makedirs(OUT, exist_ok=True)
    for name, args, tol, prompts, full in MODELS:
        d = os.path.join(models_dir, name)
        for fn in ("config.json", "model.safetensors"):
            with open(os.path.join(d, fn), "rb") as f:
                sums.append(f"{hashlib.sha256(f.read()).hexdigest()}  {name}/{fn}")
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        model = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
        model.eval()
        entry = {"name": name, "args": args, "tol": tol, "prompts": []}
        if cfg.get("rope_scaling"):
            entry["yarn_factor_overridden_by_transformers"] = fix_yarn(model, cfg)
            meta["yarn_factor_quirk"] = entry["yarn_factor_overridden_by_transformers"]
        with open(os.path.join(OUT, name + ".npy"), "wb") as f:
            npy(f, sub)
            for p in prompts:
                ids = tok.encode(PROMPTS[p]).ids
                rows, gen = run(model, ids)
                absrows = np.abs(rows)
                top = np.argsort(-rows, axis=1, kind="stable")[:, :TOPK].astype(np.int32)
                npy(f, rows[:, sub])
                npy(f, top)
                npy(f, np.take_along_axis(rows, top, axis=1))
                npy(f, absrows.max(axis=1))
                full_row = len(ids) - 1 if p == full else -1
                if full_row >= 0:
                    npy(f, rows[full_row:full_row + 1])
                srt = -np.sort(-rows, axis=1)
                gap = srt[len(ids) - 1:, 0] - srt[len(ids) - 1:, 1]
                entry["prompts"].append({"name": p, "text": PROMPTS[p], "ids": ids, "generated": gen,
                                         "full_row": full_row, "min_greedy_gap": float(gap.min())})
                print(f"{name} {p}: n={len(ids)} max|logit|={absrows.max():.3f} "
                      f"min greedy gap={gap.min():.2e} gen={gen[:8]}...", file=sys.stderr)
        meta["models"].append(entry)
        del model
    text = json.dumps(meta, indent=1, ensure_ascii=False)
    text = re.sub(r"\[[-0-9.e,\s]*\]", lambda m: " ".join(m.group(0).split()), text)  # lists of numbers on one line
    with open(os.path.join(OUT, "forward.json"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(OUT, "SHA256SUMS"), "w") as f:
        f.write("\n".join(sums) + "\n")


if __name__ == "__main__":
    main()

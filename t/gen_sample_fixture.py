#!/usr/bin/env python3
"""Reference distributions for lib/sample.c, from Hugging Face transformers' own logits
processors (RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper,
TopPLogitsWarper, MinPLogitsWarper, chained as GenerationMixin does) and vLLM's
presence/frequency formula, and ax-llm's LLMPostprocess for the post_config case.

Logits are not stored: both sides regenerate them from a seed with splitmix64 (every
step exact in float32: a 24-bit integer scaled by powers of two), so the 151936-wide
cases cost nothing on disk. Each line of t/fixtures/sample_hf.jsonl holds one case:
its settings, the surviving ids with their renormalized probabilities, the greedy id,
and the logits of the penalized ids after the penalties.

    /work/venv/bin/python t/gen_sample_fixture.py > t/fixtures/sample_hf.jsonl
"""
import json
import math
import sys

import numpy as np
import torch
import transformers
from transformers.generation.logits_process import (
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

M64 = (1 << 64) - 1


def splitmix64(seed, n):
    """The first n outputs of splitmix64 from seed, as uint64 (as lib's t/sample_test.c)."""
    with np.errstate(over="ignore"):
        z = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def make_logits(vocab, seed, scale, boosts=(), ties=False):
    """Uniform in [-scale, scale) on a 2^-23 grid, or 16 levels 0, 0.5, ... 7.5 when ties;
    then l[id] += val for each boost. Exact in float32, so C gets the same bits."""
    u = splitmix64(seed, vocab)
    if ties:
        x = (u >> np.uint64(60)).astype(np.float32) * np.float32(0.5)
    else:
        x = (u >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-23) - np.float32(1)
        x = x * np.float32(scale)
    for i, v in boosts:
        x[i] = x[i] + np.float32(v)
    return x


def hf_chain(c, logits):
    """Processed scores, in GenerationMixin's order (_get_logits_processor)."""
    s = torch.tensor(logits)[None, :].clone()
    ids = torch.tensor([c["prompt"] + c["generated"]], dtype=torch.long)
    if c["rep"] != 1.0 and ids.shape[1]:
        s = RepetitionPenaltyLogitsProcessor(penalty=float(c["rep"]))(ids, s)
    if c["frequency"] or c["presence"]:
        # vLLM apply_penalties: logits -= f * output_bin_counts; logits -= p * output_mask
        counts = torch.bincount(torch.tensor(c["generated"], dtype=torch.long), minlength=s.shape[1])[None, :]
        s = s - c["frequency"] * counts.to(s.dtype)
        s = s - c["presence"] * (counts > 0).to(s.dtype)
    penalized = s.clone()
    if c["temp"] == 0:
        return penalized, None
    if c["temp"] != 1.0:
        s = TemperatureLogitsWarper(float(c["temp"]))(ids, s)
    if c["top_k"]:
        s = TopKLogitsWarper(top_k=int(c["top_k"]), min_tokens_to_keep=1)(ids, s)
    if c["top_p"] < 1.0:
        s = TopPLogitsWarper(top_p=float(c["top_p"]), min_tokens_to_keep=1)(ids, s)
    if c["min_p"]:
        s = MinPLogitsWarper(min_p=float(c["min_p"]), min_tokens_to_keep=1)(ids, s)
    return penalized, s


def ax_penalty(c, l):
    """ax-llm's apply_repetition_penalty: each distinct id among the last penalty_window
    generated ids, a positive logit divided by sqrt(penalty), any other multiplied."""
    pc = c["post_config"]
    l = l.clone()
    if pc["enable_repetition_penalty"]:
        recent = set(c["generated"][max(0, len(c["generated"]) - pc["penalty_window"]):])
        sq = np.float32(math.sqrt(np.float32(pc["repetition_penalty"])))
        for t in recent:
            l[t] = l[t] / sq if l[t] > 0 else l[t] * sq
    return l


def ax_chain(c, logits):
    """ax-llm LLMPostprocess::apply with top-k sampling on, written from its source, in
    float32 like its std::vector<float>: temperature, then the penalty, then softmax over
    the top k. The penalized logits are reported without the temperature (its division
    commutes with the penalty's), as our penalties-only run sees them."""
    l = torch.tensor(logits)
    pc = c["post_config"]
    penalized = ax_penalty(c, l)
    if pc["enable_temperature"]:
        l = l / np.float32(pc["temperature"])
    l = ax_penalty(c, l)
    assert pc["enable_top_k_sampling"] and not pc["enable_top_p_sampling"]
    top = torch.topk(l, pc["top_k"]).indices
    s = torch.full_like(l, -math.inf)
    s[top] = l[top]
    return penalized[None, :], s[None, :]


def case(name, vocab, seed, scale, temp, top_k=0, top_p=1.0, min_p=0.0, rep=1.0, presence=0.0,
         frequency=0.0, prompt=(), generated=(), boosts=(), ties=False, post_config=None):
    c = dict(name=name, vocab=vocab, seed=seed, scale=scale, ties=ties, boosts=[list(b) for b in boosts],
             temp=temp, top_k=top_k, top_p=top_p, min_p=min_p, rep=rep, presence=presence,
             frequency=frequency, prompt=list(prompt), generated=list(generated))
    if post_config:
        c["post_config"] = post_config
    logits = make_logits(vocab, seed, scale, boosts, ties)
    penalized, s = (ax_chain if post_config else hf_chain)(c, logits)
    touched = sorted(set(c["prompt"]) | set(c["generated"]))
    c["penalized"] = [[t, float(penalized[0, t])] for t in touched]
    c["greedy"] = int(torch.argmax(penalized[0]))  # first maximal index
    if s is not None:
        p = torch.softmax(s[0].double(), dim=-1)
        keep = torch.nonzero(s[0] != -math.inf).flatten().tolist()
        keep.sort(key=lambda i: (-float(p[i]), i))
        c["ids"] = keep
        c["probs"] = [float(p[i]) for i in keep]
    return c


def main():
    rng = np.random.default_rng(7)
    gen = lambda v, n: rng.integers(0, v, n).tolist()
    V = 151936
    cases = [
        case("qwen3 thinking defaults", 1000, 1, 8.0, 0.6, 20, 0.95),
        case("qwen3 no_think defaults", 1000, 2, 8.0, 0.7, 20, 0.8),
        case("top-p alone crosses the threshold", 1000, 3, 2.0, 1.0, 0, 0.9),
        case("min-p alone", 1000, 4, 4.0, 0.8, min_p=0.05),
        case("top-k then min-p, hot", 1000, 5, 4.0, 1.3, 50, min_p=0.1),
        case("no filter: the whole softmax", 1000, 6, 4.0, 1.0),
        case("penalties: repetition over prompt+generated, presence/frequency over generated",
             1000, 7, 4.0, 0.7, 40, 0.9, rep=1.3, presence=0.5, frequency=0.3,
             prompt=gen(1000, 60), generated=gen(1000, 30) + [5, 5, 5, 9, 9]),
        case("repetition penalty < 1 rewards", 1000, 8, 4.0, 1.0, 30, rep=0.8, prompt=gen(1000, 40)),
        case("negative presence/frequency", 1000, 9, 4.0, 0.9, 0, 0.95, presence=-0.7, frequency=-0.2,
             generated=gen(1000, 25)),
        case("ties at the k-th logit all stay", 1000, 10, 0, 1.0, 5, ties=True),
        case("ties with min-p", 1000, 11, 0, 0.5, 0, 1.0, 0.3, ties=True),
        case("greedy with penalties", 1000, 12, 4.0, 0, rep=1.5, frequency=0.4,
             prompt=gen(1000, 50), generated=gen(1000, 20)),
        case("greedy first index on ties", 1000, 13, 0, 0, ties=True),
        case("qwen3 vocab, thinking defaults", V, 14, 8.0, 0.6, 20, 0.95,
             prompt=gen(V, 200), generated=gen(V, 50), rep=1.1),
        case("qwen3 vocab, top-p alone on a peaked distribution", V, 15, 2.0, 1.0, 0, 0.9,
             boosts=[(100, 16.0), (151935, 15.5), (7, 15.0), (99999, 14.0)]),
        case("qwen3 vocab, min-p with temperature", V, 16, 2.0, 0.5, 0, 1.0, 0.2,
             boosts=[(3, 10.0), (4, 9.5), (5, 9.75), (60000, 9.9)]),
        case("qwen3 vocab, greedy", V, 17, 8.0, 0, prompt=gen(V, 100), rep=1.2),
        case("ax-llm post_config: temperature, windowed sqrt penalty, top-k", 1000, 18, 4.0, 0.9, 10,
             generated=gen(1000, 40) + [int(i) for i in np.argsort(-make_logits(1000, 18, 4.0))[:5]],
             post_config=dict(enable_temperature=True, temperature=0.9, enable_repetition_penalty=True,
                              repetition_penalty=1.2, penalty_window=20, enable_top_p_sampling=False,
                              top_p=0.8, enable_top_k_sampling=True, top_k=10)),
    ]
    print(json.dumps({"generator": "t/gen_sample_fixture.py", "transformers": transformers.__version__,
                      "torch": torch.__version__}))
    for c in cases:
        print(json.dumps(c))


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Reference for lib/tok beyond the public corpus: seeded random texts, encoded by HF
tokenizers 0.22.2 (the reference version; pip install tokenizers==0.22.2).

Writes t/fixtures/tok_fuzz.jsonl, one {"text", "ids"} per line like tok_public.jsonl:
  - 2,000 texts drawn from a pool of the pieces the split regex and NFC decide on
    (contractions in every case and with U+017F, whitespace kinds and runs, CR/LF,
    combining marks, Hangul jamo, digits of every kind, added tokens and near misses,
    byte-level look-alikes, NUL, noncharacters), 4 of them 2,000 pieces long;
  - 2,000 texts of random scalar values over all planes (classes and NFC at large).
The same seed always gives the same file. Run from the repo root: python3 t/gen_tok_fuzz.py
"""
import json
import random

from tokenizers import Tokenizer

POOL = list("abcXYZ sSltTdDmMrReEvVL'\"\t\r\n\x0b\x0c.,;:!?-_()[]{}<>|/\\#@$%^&*+=~`0123456789") + [
    "\u017f", "\u212a", "\u1e9e", "\u2019", "\u00a0", "\u3000", "\u0085", "\u2028", "\u2029", "\u200b",
    "\ufeff", "\u180e", "\u0301", "\u0300", "\u0327", "\u0308", "e\u0301", "\u00e9", "\u1100", "\u1161",
    "\u11a8", "\uac00", "\u0928", "\u093f", "\u094d", "\u0e01", "\u0e31", "\u0e48", "\u4e2d", "\u6587",
    "\u3042", "\u30a2", "\uff21", "\uff11", "\u0661", "\u00bd", "\u2167", "\u00b2", "\U0001f600",
    "\U0001f468\u200d\U0001f469", "\u2764\ufe0f", "\U0001f1fa\U0001f1f8", "\u0120", "\u010a", "\u0100",
    "\x00", "\x1b", "\x7f", "\ufdd0", "\uffff", "\U0010ffff", "\u0391", "\u03c9", "\u0416", "\u05d0",
    "\u0627", "\u064b", "\u0915\u094d\u0937", "<|im_start|>", "<|im_end|>", "<think>", "</think>",
    "<|endoftext|>", "<tool_call>", "<|im_sta", "<thin", "<|IM_END|>", "  ", "   ", "\r\n", "\n\n", " \n",
    "\t\t", "'s", "'S", "'ll", "'LL", "'Re", "'ve", "'m", "'d", "'t", "'\u017f", "\u1e0b\u0323",
    "q\u0307\u0323", "\u212b", "\u2126", "\u0958", "\u2adc", "\U0001d15e", "\u0344", "\u0f73", "\u1b06",
]


def scalar(rng):
    r = rng.random()
    if r < 0.3:
        c = rng.randrange(0x20, 0x7F)
    elif r < 0.4:
        c = rng.choice([0x20, 0x20, 0x0A, 0x0D, 0x09, 0x27])
    elif r < 0.7:
        c = rng.randrange(0x80, 0x3000)
    elif r < 0.9:
        c = rng.randrange(0x3000, 0x10000)
    else:
        c = rng.randrange(0x10000, 0x110000)
    return chr(0x41 if 0xD800 <= c < 0xE000 else c)


def main():
    rng = random.Random(20260101)
    tk = Tokenizer.from_file("t/fixtures/qwen3-tokenizer/tokenizer.json")
    texts = []
    for i in range(2000):
        k = 2000 if i % 500 == 0 else rng.choice([1, 2, 3, 5, 8, 13, 30, 60])
        texts.append("".join(rng.choice(POOL) for _ in range(k)))
    for _ in range(2000):
        texts.append("".join(scalar(rng) for _ in range(rng.choice([1, 2, 4, 8, 16, 40]))))
    with open("t/fixtures/tok_fuzz.jsonl", "w", encoding="utf-8", newline="\n") as out:
        for t in texts:
            ids = tk.encode(t, add_special_tokens=False).ids
            out.write(json.dumps({"text": t, "ids": ids}, ensure_ascii=False) + "\n")


main()

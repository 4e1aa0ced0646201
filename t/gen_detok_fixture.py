#!/usr/bin/env python3
"""Reference for detok: HF tokenizers' decode of every document of tok_public.jsonl.

Writes t/fixtures/detok_public.jsonl, one {"text": decode(ids)} per line, serialized the
way detok --jsonl serializes (json.dumps, ensure_ascii=False). Run from the repo root
with a venv that has `tokenizers`:  python3 t/gen_detok_fixture.py
"""
import json
from tokenizers import Tokenizer

tk = Tokenizer.from_file("t/fixtures/qwen3-tokenizer/tokenizer.json")
with open("t/fixtures/tok_public.jsonl", encoding="utf-8") as f, \
        open("t/fixtures/detok_public.jsonl", "w", encoding="utf-8", newline="\n") as out:
    for line in f:
        doc = json.loads(line)
        text = tk.decode(doc["ids"], skip_special_tokens=False)
        assert text == tk.normalizer.normalize_str(doc["text"]), "decode(ids) != NFC(text)"
        out.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")

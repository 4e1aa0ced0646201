#!/usr/bin/env python3
"""tok vs HF tokenizers, side by side in one run, one thread each.

  python3 bench/tok.py [--rounds 7]        (from the repo root, after `make`;
                                            needs a venv with `tokenizers` and `transformers`)

Throughput: the public corpus (t/fixtures/tok_public.jsonl, 2,233 documents) joined into
one text, encoded by `bin/tok -f` (process start and cache load subtracted by also timing an
empty input) and by tokenizers' Tokenizer.encode in-process (RAYON_NUM_THREADS=1); the two
sides are interleaved round by round and medians reported, since this machine is noisy.
Start-up: `tok` cold (no compiled cache: parses tokenizer.json) and warm (maps the cache),
versus what the Python service does before it can answer /get_uid (import transformers and
load the tokenizer twice, as Tokenizer_Http.__init__ does).
Prints a table and writes it to bench/out/tok.md.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("--rounds", type=int, default=7)
ap.add_argument("--tok", default="bin/tok")
args = ap.parse_args()
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["RAYON_RS_NUM_CPUS"] = "1"
from tokenizers import Tokenizer  # noqa: E402

MODEL = "t/fixtures/qwen3-tokenizer"
docs = [json.loads(l)["text"] for l in open("t/fixtures/tok_public.jsonl", encoding="utf-8")]
text = "\n".join(docs)
data = text.encode("utf-8")
tmp = tempfile.mkdtemp()
corpus = os.path.join(tmp, "corpus.txt")
empty = os.path.join(tmp, "empty.txt")
open(corpus, "wb").write(data)
open(empty, "wb").write(b"")
cache = os.path.join(tmp, "cache")
env = dict(os.environ, QWEN_CACHE=cache)

def run_tok(path):
    t0 = time.perf_counter()
    out = subprocess.run([args.tok, "-m", MODEL, "-f", path], env=env, check=True,
                         stdout=subprocess.PIPE).stdout
    return time.perf_counter() - t0, out

hf = Tokenizer.from_file(MODEL + "/tokenizer.json")
ref_ids = hf.encode(text).ids
_, out = run_tok(corpus)  # also builds the cache
ours_ids = [int(x) for x in out.split()]
assert ours_ids == ref_ids, "tok and HF tokenizers disagree on the joined corpus"
ntok = len(ref_ids)

t_ours, t_ref, t_empty = [], [], []
for _ in range(args.rounds):
    t_empty.append(run_tok(empty)[0])
    t_ours.append(run_tok(corpus)[0])
    t0 = time.perf_counter(); hf.encode(text); t_ref.append(time.perf_counter() - t0)
start = statistics.median(t_empty)
ours = max(statistics.median(t_ours) - start, 1e-9)
ref = statistics.median(t_ref)

def cold_warm():
    cold, warm = [], []
    for _ in range(args.rounds):
        c = os.path.join(tmp, "cold%d" % len(cold))
        e = dict(os.environ, QWEN_CACHE=c)
        t0 = time.perf_counter()
        subprocess.run([args.tok, "-m", MODEL, "hi"], env=e, check=True, stdout=subprocess.DEVNULL)
        cold.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run([args.tok, "-m", MODEL, "hi"], env=e, check=True, stdout=subprocess.DEVNULL)
        warm.append(time.perf_counter() - t0)
    return statistics.median(cold), statistics.median(warm)

cold, warm = cold_warm()
py_start = []
for _ in range(3):
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c",
                    "from transformers import AutoTokenizer as A; "
                    f"A.from_pretrained('{MODEL}'); A.from_pretrained('{MODEL}')"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    py_start.append(time.perf_counter() - t0)
py = statistics.median(py_start)

mb = len(data) / 1e6
rows = [
    ("corpus", f"{mb:.2f} MB, {ntok} tokens, {len(docs)} documents joined; identical ids on both sides"),
    ("tok throughput", f"{mb / ours:.2f} MB/s, {ntok / ours / 1e6:.2f} M tokens/s (median of {args.rounds}, start-up subtracted)"),
    ("HF tokenizers", f"{mb / ref:.2f} MB/s, {ntok / ref / 1e6:.2f} M tokens/s (one thread, in-process)"),
    ("ratio", f"{ref / ours:.1f}x"),
    ("tok start, cold", f"{cold * 1e3:.1f} ms (no compiled cache: parses tokenizer.json)"),
    ("tok start, warm", f"{warm * 1e3:.1f} ms (whole process, encoding 'hi')"),
    ("Python service start", f"{py * 1e3:.0f} ms (import transformers, load the tokenizer twice)"),
]
table = "| measure | value |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows) + "\n"
print(table)
os.makedirs("bench/out", exist_ok=True)
open("bench/out/tok.md", "w").write(table)

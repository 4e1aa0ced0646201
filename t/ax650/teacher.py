"""Teacher-forced check of a backend's greedy tokens against the CPU's logits.

usage: teacher.py PROMPT_LEN TOL ALL_LOGITS.npy TOKENS...
ALL_LOGITS is prefill --all-logits (CPU) over the prompt followed by TOKENS; token i
must be the CPU's argmax after prompt + TOKENS[:i], or within TOL of its logit (a
near-tie that bf16 rounding may flip). Prints the largest gap seen. No numpy needed."""
import array, ast, sys

def records(path):
    d = open(path, "rb").read()
    off = 0
    while off < len(d):
        assert d[off:off + 6] == b"\x93NUMPY", "not .npy"
        hl = int.from_bytes(d[off + 8:off + 10], "little")
        h = ast.literal_eval(d[off + 10:off + 10 + hl].decode())
        assert h["descr"] == "<f4", h
        n = 1
        for s in h["shape"]:
            n *= s
        a = array.array("f")
        a.frombytes(d[off + 10 + hl:off + 10 + hl + 4 * n])
        yield h["shape"], a
        off += 10 + hl + 4 * n

plen, tol = int(sys.argv[1]), float(sys.argv[2])
toks = [int(t) for t in sys.argv[4:]]
shape, a = next(records(sys.argv[3]))
n, vocab = shape
assert n == plen + len(toks), (n, plen, len(toks))
worst, flips = 0.0, 0
for i, t in enumerate(toks):
    row = a[(plen - 1 + i) * vocab:(plen + i) * vocab]
    top = max(row)
    gap = top - row[t]
    worst = max(worst, gap)
    if gap > 0:
        flips += 1
    if gap > tol:
        print(f"token {i}: {t} is {gap:.4g} below the CPU's best {top:.4g} (tolerance {tol})")
        sys.exit(1)
print(f"{len(toks)} tokens: {flips} near-ties taken the other way, largest gap {worst:.4g} (tolerance {tol})")

# tie.py SRC DST: the torchao export SRC as a tied model in DST (lm_head.* dropped, config
# tie_word_embeddings true), so that the int8 per-row embedding is also the lm_head. stdlib only.
import json, struct, sys
src, dst = sys.argv[1], sys.argv[2]
d = open(src + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", d[:8])[0]
h = json.loads(d[8:8 + n])
meta = h.pop("__metadata__", {})
meta.pop("lm_head.weight", None)
if "tensor_names" in meta:
    meta["tensor_names"] = json.dumps([t for t in json.loads(meta["tensor_names"]) if not t.startswith("lm_head")])
out, off, hdr = [], 0, {"__metadata__": meta}
for k, v in h.items():
    if k.startswith("lm_head."): continue
    a, b = v["data_offsets"]
    out.append(d[8 + n + a:8 + n + b])
    hdr[k] = dict(v, data_offsets=[off, off + b - a]); off += b - a
hj = json.dumps(hdr).encode(); hj += b" " * (-len(hj) % 8)
open(dst + "/model.safetensors", "wb").write(struct.pack("<Q", len(hj)) + hj + b"".join(out))
c = json.load(open(src + "/config.json")); c["tie_word_embeddings"] = True
json.dump(c, open(dst + "/config.json", "w"))

#!/usr/bin/env bats
# The forward pipeline through the programs: tok | embed | prefill | sample | decode | detok
# on the seeded test models (make models), against HF transformers' greedy tokens
# (t/fixtures/forward/forward.json, made by t/gen_forward_reference.py) and against itself
# across process boundaries.
load helper

MODELS=$PWD/build/models

# ids and greedy continuation of a reference prompt: ref MODEL PROMPT ids|generated
ref() {
    python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
m = next(m for m in d["models"] if m["name"] == sys.argv[2])
p = next(p for p in m["prompts"] if p["name"] == sys.argv[3])
print(" ".join(map(str, p[sys.argv[4]])))' "$FIX/forward/forward.json" "$@"
}

@test "pipeline: tok | embed | prefill | sample | decode | detok runs on the built-in tiny model" {
    run bash -c "set -o pipefail; '$BIN/tok' --chat 'Hello, who are you?' | '$BIN/embed' | '$BIN/prefill' -k s | '$BIN/sample' --greedy | '$BIN/decode' -k s -n 8 --temp 0 | '$BIN/detok'"
    [ "$status" -eq 0 ]
    [ -n "$output" ]
    [ -s "$QWEN_KVSTORE/sessions/s.kvs" ]
}

@test "pipeline: greedy tokens equal HF transformers' for every reference prompt (f32, bf16, YaRN, untied)" {
    for mp in tiny-f32:short tiny-f32:chat tiny:short tiny:chat tiny-yarn:chat tiny-untied:code; do
        m=${mp%%:*} p=${mp#*:}
        want=$(ref "$m" "$p" generated)
        n=$(echo $want | wc -w)
        got=$(set -o pipefail; ref "$m" "$p" ids | "$BIN/embed" -m "$MODELS/$m" |
              "$BIN/prefill" -m "$MODELS/$m" -k $m-$p | "$BIN/sample" --greedy |
              "$BIN/decode" -m "$MODELS/$m" -k $m-$p -n "$n" --temp 0 --stop 999999 | tr '\n' ' ')
        echo "$m $p: want $want"
        echo "$m $p: got  $got"
        [ "$(echo $got)" = "$(echo $want)" ]
    done
}

@test "pipeline: prefill takes ids directly; splitting a prompt into two prefills gives the same logits" {
    ids=$(ref tiny-f32 chat ids)
    first=$(echo $ids | cut -d' ' -f1-40) rest=$(echo $ids | cut -d' ' -f41-)
    echo "$ids" | "$BIN/prefill" -m "$MODELS/tiny-f32" -k one > "$TMP/one.npy"
    printf '%s\n%s\n' "$first" "$rest" | "$BIN/prefill" -m "$MODELS/tiny-f32" -k two > "$TMP/two.npy"
    # the second record of two.npy is the logits after the whole prompt
    python3 -c '
import sys
d = open(sys.argv[1], "rb").read()
hl = int.from_bytes(d[8:10], "little"); n = 10 + hl + 151936 * 4
open(sys.argv[2], "wb").write(d[n:])' "$TMP/two.npy" "$TMP/two-last.npy"
    run "$BIN/npycmp" --tol 0.9999999 "$TMP/one.npy" "$TMP/two-last.npy"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "pipeline: embed writes the ids and exactly the embedding rows of the table" {
    echo "0 9707 151935" | "$BIN/embed" -m "$MODELS/tiny-f32" > "$TMP/e.npy"
    run python3 -c '
import json, struct, sys
d = open(sys.argv[1], "rb").read()
def records(d):
    while d:
        hl = int.from_bytes(d[8:10], "little"); h = d[10:10+hl].decode()
        shape = tuple(int(x) for x in h.split("(")[1].split(")")[0].split(",") if x.strip())
        n = 1
        for s in shape: n *= s
        yield h, shape, d[10+hl:10+hl+4*n]; d = d[10+hl+4*n:]
(h1, s1, ids), (h2, s2, rows) = list(records(d))
assert "<i4" in h1 and s1 == (3,) and struct.unpack("<3i", ids) == (0, 9707, 151935), (h1, s1)
assert "<f4" in h2 and s2 == (3, 64), (h2, s2)
st = open(sys.argv[2] + "/model.safetensors", "rb").read()
n = int.from_bytes(st[:8], "little"); hdr = json.loads(st[8:8+n]); e = hdr["model.embed_tokens.weight"]
assert e["dtype"] == "F32"
base = 8 + n + e["data_offsets"][0]
for i, t in enumerate((0, 9707, 151935)):
    assert rows[i*256:(i+1)*256] == st[base + t*256: base + (t+1)*256], t
print("ok")' "$TMP/e.npy" "$MODELS/tiny-f32"
    echo "$output"
    [ "$output" = "ok" ]
}

@test "pipeline: decode -n 8 in one process equals -n 4 then -n 4 in a new one, bit for bit" {
    ids=$(ref tiny chat ids)
    echo "$ids" | "$BIN/prefill" -k a > /dev/null
    "$BIN/kvstore" fork a b
    "$BIN/decode" -k a -n 8 --temp 0 --stop 999999 > "$TMP/a.ids"
    "$BIN/decode" -k b -n 4 --temp 0 --stop 999999 < /dev/null > "$TMP/b.ids"
    "$BIN/decode" -k b -n 4 --temp 0 --stop 999999 < /dev/null >> "$TMP/b.ids"
    [ "$(wc -l < "$TMP/a.ids")" -eq 8 ]
    cmp "$TMP/a.ids" "$TMP/b.ids"
    # the next step's logits, computed from each session's stored K/V and hidden state
    "$BIN/decode" -k a -n 1 --sampler "python3 '$FIX/../dump_argmax.py' '$TMP/a.npy'" < /dev/null > /dev/null
    "$BIN/decode" -k b -n 1 --sampler "python3 '$FIX/../dump_argmax.py' '$TMP/b.npy'" < /dev/null > /dev/null
    cmp "$TMP/a.npy" "$TMP/b.npy"
    cmp <("$BIN/kvstore" tokens a) <("$BIN/kvstore" tokens b)
}

@test "pipeline: decode's f16 K/V (the default with --quant): -n 8 equals -n 4 twice, bit for bit; --kv-type f32 within cosine 0.99999, the same ids; a bad type is a usage error" {
    ids=$(ref tiny chat ids)
    echo "$ids" | "$BIN/prefill" --quant q8 -k a > /dev/null
    "$BIN/kvstore" fork a b
    "$BIN/kvstore" fork a c
    greedy() { echo "tee -a '$TMP/$1.npy' | '$BIN/sample' --greedy"; }
    "$BIN/decode" --quant q8 -k a -n 8 --stop 999999 --sampler "$(greedy a)" < /dev/null > "$TMP/a.ids"
    # the second process makes its f16 copies from the stored f32 rows: the same bits
    "$BIN/decode" --quant q8 -k b -n 4 --stop 999999 --sampler "$(greedy b)" < /dev/null > "$TMP/b.ids"
    "$BIN/decode" --quant q8 -k b -n 4 --stop 999999 --sampler "$(greedy b)" < /dev/null >> "$TMP/b.ids"
    [ "$(wc -l < "$TMP/a.ids")" -eq 8 ]
    cmp "$TMP/a.ids" "$TMP/b.ids"
    cmp "$TMP/a.npy" "$TMP/b.npy"
    "$BIN/decode" --quant q8 -k c -n 8 --stop 999999 --kv-type f32 --sampler "$(greedy c)" < /dev/null > "$TMP/c.ids"
    cmp "$TMP/a.ids" "$TMP/c.ids"
    run cmp -s "$TMP/a.npy" "$TMP/c.npy"   # f16 was read by default
    [ "$status" -ne 0 ]
    "$BIN/npycmp" --tol 0.99999 "$TMP/a.npy" "$TMP/c.npy"
    run "$BIN/decode" -k a --kv-type bf16
    [ "$status" -eq 2 ]
    [ "$output" = "decode: --kv-type: want f32 or f16, not 'bf16'" ]
}

@test "pipeline: a prompt whose blocks the store holds is reused, with the same logits as computing it" {
    ids=$(ref tiny chat ids)    # 68 tokens: 4 whole blocks of 16
    echo "$ids" | "$BIN/prefill" -k first -v > "$TMP/first.npy" 2> "$TMP/first.err"
    grep -q ' 0 reused' "$TMP/first.err"
    echo "$ids" | "$BIN/prefill" -k second -v > "$TMP/second.npy" 2> "$TMP/second.err"
    cat "$TMP/second.err"
    grep -q '4 positions computed.* 64 reused from the store' "$TMP/second.err"
    run "$BIN/npycmp" --tol 0.9999999 "$TMP/first.npy" "$TMP/second.npy"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "pipeline: the sample program as decode's --sampler gives what in-process sampling gives" {
    ids=$(ref tiny chat ids)
    echo "$ids" | "$BIN/prefill" -k a > /dev/null
    "$BIN/kvstore" fork a b
    "$BIN/decode" -k a -n 12 --seed 7 --temp 1.5 --top-k 50 --stop 999999 < /dev/null > "$TMP/a.ids"
    "$BIN/decode" -k b -n 12 --stop 999999 --sampler "'$BIN/sample' --seed 7 --temp 1.5 --top-k 50" < /dev/null > "$TMP/b.ids"
    [ "$(wc -l < "$TMP/a.ids")" -eq 12 ]
    cmp "$TMP/a.ids" "$TMP/b.ids"
}

@test "pipeline: a user's own sampler in Python (stdlib only) plugs into decode" {
    ids=$(ref tiny short ids)
    want=$(ref tiny short generated | cut -d' ' -f1-6)
    echo "$ids" | "$BIN/prefill" -k p > /dev/null
    got=$("$BIN/decode" -k p -n 6 --stop 999999 --sampler "python3 '$FIX/../dump_argmax.py'" < /dev/null | tr '\n' ' ')
    [ "$(echo $got)" = "$want" ]
}

@test "pipeline: bad input is a clear error: wrong-model session, corrupt session, id >= vocab, wrong width" {
    echo "9707 11" | "$BIN/prefill" -m "$MODELS/tiny" -k s > /dev/null
    run bash -c "echo 9707 | '$BIN/prefill' -m '$MODELS/tiny-f32' -k s 2>&1 >/dev/null"
    [ "$status" -eq 1 ]
    [[ "$output" == "prefill: s: made by a different model"* ]]
    printf 'x' | dd of="$QWEN_KVSTORE/sessions/s.kvs" bs=1 seek=20 conv=notrunc 2>/dev/null
    run "$BIN/decode" -k s -n 2 < /dev/null
    [ "$status" -eq 1 ]
    [[ "$output" == "decode: s: "* ]]
    run bash -c "echo 151936 | '$BIN/embed'"
    [ "$status" -eq 1 ]
    [ "$output" = "embed: stdin: line 1: id 151936 out of range [0, 151936)" ]
    run bash -c "echo '9707 11' | '$BIN/embed' -m '$MODELS/tiny' --no-ids | '$BIN/prefill' -m '$MODELS/0.6b-2l' -k w"
    [ "$status" -eq 1 ]
    [[ "$output" == *"embeddings must have shape (n, 1024)"* ]]
    run "$BIN/kvstore" info w
    [ "$status" -ne 0 ] || [[ "$output" == *" 0 positions"* || "$output" == *"positions: 0"* ]]
}

@test "pipeline: decode with no token and no logits says what to do; -k is required" {
    run "$BIN/decode" -k new -n 2 < /dev/null
    [ "$status" -eq 1 ]
    [[ "$output" == "decode: the session has no position to continue from"* ]]
    run "$BIN/prefill"
    [ "$status" -eq 2 ]
    [[ "${lines[0]}" == "prefill: -k SESSION is required" ]]
}

@test "pipeline: --quant runs every scheme through embed, prefill and decode; a bad scheme is a usage error" {
    ids=$(ref 0.6b-2l short ids)
    want=$(ref 0.6b-2l short generated | cut -d' ' -f1-4)
    for q in none bf16 bf16a q8 q4 8da4w 8da8w; do
        got=$(set -o pipefail; echo "$ids" | "$BIN/embed" -m "$MODELS/0.6b-2l" --quant $q |
              "$BIN/prefill" -m "$MODELS/0.6b-2l" --quant $q -k q-$q | "$BIN/sample" --greedy |
              "$BIN/decode" -m "$MODELS/0.6b-2l" --quant $q -k q-$q -n 4 --temp 0 --stop 999999 | tr '\n' ' ')
        echo "$q: $got (f32 reference: $want)"
        [ "$(echo $got | wc -w)" -eq 4 ]
        # the weight formats that keep every bf16 weight exactly give HF's tokens
        case $q in none|bf16) [ "$(echo $got)" = "$want" ] ;; esac
    done
    # a session made with one scheme is another model for the others
    run bash -c "echo 9707 | '$BIN/prefill' -m '$MODELS/0.6b-2l' --quant q8 -k q-none"
    [ "$status" -eq 1 ]
    [[ "$output" == *"made by a different model"* ]]
    run "$BIN/prefill" --quant q5 -k x
    [ "$status" -eq 2 ]
    [ "$output" = "prefill: --quant: 'q5' is not one of: none, bf16, bf16a, q8, q4, q4g128, 8da4w, 8da8w" ]
}

@test "pipeline: a backend that cannot start leaves no session behind (prefill and decode)" {
    run bash -c "echo '1 2 3' | '$BIN/prefill' -k S --backend ax650"
    [ "$status" -eq 1 ]
    [[ "${lines[0]}" == "prefill: backend ax650: "* ]]
    run bash -c "echo 5 | '$BIN/decode' -k D -n 1 --backend ax650"
    [ "$status" -eq 1 ]
    [[ "${lines[0]}" == "decode: backend ax650: "* ]]
    run "$BIN/kvstore" ls
    [ "$status" -eq 0 ]
    [[ "$output" != *" S "* && "$output" != *" D "* ]]
    [ "${#lines[@]}" -eq 1 ]
    # and the same names then work on the CPU
    run bash -c "echo '1 2 3' | '$BIN/prefill' -k S >/dev/null"
    [ "$status" -eq 0 ]
}

#!/usr/bin/env bats
# msms: msModelSlim (vLLM-Ascend) checkpoints through model_open (lib/msms.c), against the
# reference t/gen_msms_fixtures.py computed from the published formulas in numpy (its float
# forward checked against HF transformers): one directory per scheme and layout, one that
# mixes them with FLOAT layers and the anti-outlier norm bias. Logits within 5e-3 of
# max|logit| (one activation rounded the other way moves a logit by ~2e-3; we measure
# <= 1e-6), greedy tokens the same, and each scheme within its floor of cosine to the
# unquantized model, so that a format read wrong the same way on both sides still fails.
# Then the programs on the mixed model, and broken checkpoints: exit 1, the tensor named.
load helper

MS=$FIX/msms
PROMPT="5 77 3 120 64 9 31 100 17 42 88 7"

# ref NAME FLOOR: msms_test's comparison, and the cosine to the float model >= FLOOR
ref() {
    run "$TBIN/msms_test" ref "$MS/$1" "$MS/$1.ref.npy" 5e-3
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" =~ greedy\ 8/8 ]]
    cos=${output##* }
    python3 -c "import sys; sys.exit(not $cos >= $2)"
}

# record N FILE: the Nth (0-based) .npy record of FILE on stdout (python3's stdlib only)
record() {
    python3 - "$1" "$2" <<'EOF'
import ast, struct, sys
n, data = int(sys.argv[1]), open(sys.argv[2], "rb").read()
pos = 0
for i in range(n + 1):
    hl = struct.unpack("<H", data[pos + 8:pos + 10])[0]
    h = ast.literal_eval(data[pos + 10:pos + 10 + hl].decode())
    size = int(h["descr"][2:])
    for d in h["shape"]:
        size *= d
    end = pos + 10 + hl + size
    if i == n:
        sys.stdout.buffer.write(data[pos:end])
    pos = end
EOF
}

# broken NAME: a copy of fixture NAME in $TMP/m to spoil
broken() {
    rm -rf "$TMP/m"
    cp -r "$MS/$1" "$TMP/m"
}

# refused FIRST-LINE: prefill on $TMP/m exits 1 with that first stderr line (and embed too)
refused() {
    run bash -c "echo 1 2 | '$BIN/prefill' -m '$TMP/m' -k s 2>&1 >/dev/null"
    echo "$output"
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = "prefill: $1" ]
    run bash -c "echo 1 2 | '$BIN/embed' -m '$TMP/m' 2>&1 >/dev/null"
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = "embed: $1" ]
}

# desc_set FILE TENSOR TYPE|-: set (or with -, drop) a tensor's entry of a description
desc_set() {
    python3 - "$@" <<'EOF'
import json, sys
f, k, v = sys.argv[1:]
d = json.load(open(f))
if v == "-":
    del d[k]
else:
    d[k] = v
json.dump(d, open(f, "w"), indent=1)
EOF
}

# st_header FILE TENSOR KEY JSON: set a key (dtype, shape) of a tensor's header entry,
# the header rewritten compactly and padded to its old length (offsets stay valid)
st_header() {
    python3 - "$@" <<'EOF'
import json, struct, sys
f, name, key, val = sys.argv[1:]
b = open(f, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
h[name][key] = json.loads(val)
new = json.dumps(h, separators=(",", ":")).encode()
assert len(new) <= n
open(f, "wb").write(b[:8] + new + b" " * (n - len(new)) + b[8 + n:])
EOF
}

# st_poke FILE TENSOR HEX: overwrite the first bytes of a tensor's data in a safetensors file
st_poke() {
    python3 - "$@" <<'EOF'
import json, struct, sys
f, name, hexb = sys.argv[1:]
b = bytearray(open(f, "rb").read())
n = struct.unpack("<Q", b[:8])[0]
off = 8 + n + json.loads(b[8:8 + n])[name]["data_offsets"][0]
new = bytes.fromhex(hexb)
b[off:off + len(new)] = new
open(f, "wb").write(b)
EOF
}

@test "msms: W8A8 static (v1 layout, f32 scales) against the reference; cosine to float >= 0.995" {
    ref w8a8 0.995
}

@test "msms: W8A8 static of an fp16 model (v0 names, f16 scales, int64 deq_scale) against the reference" {
    ref w8a8-i64 0.995
}

@test "msms: W8A8_DYNAMIC against the reference; cosine to float >= 0.995" {
    ref w8a8-dynamic 0.995
}

@test "msms: W4A8_DYNAMIC two-level, unpacked int4 (old layout), against the reference; cosine >= 0.9" {
    ref w4a8 0.9
}

@test "msms: W4A8_DYNAMIC version 1.0.0 (int4 packed along N, scale_bias) against the reference" {
    ref w4a8-v1 0.9
}

@test "msms: W4A8 old and 1.0.0 layouts of the same values give the same logits, bit for bit" {
    echo "$PROMPT" | "$BIN/prefill" -m "$MS/w4a8" -k a --all-logits > "$TMP/a.npy"
    echo "$PROMPT" | "$BIN/prefill" -m "$MS/w4a8-v1" -k b --all-logits > "$TMP/b.npy"
    cmp "$TMP/a.npy" "$TMP/b.npy"
}

@test "msms: W4A4_FLATQUANT_DYNAMIC (Kronecker transforms, clip ratio; o_proj left only) against the reference" {
    # a transposed left or right transform drops the cosine to 0.42 / 0.54 (measured)
    ref flatquant 0.75
}

@test "msms: schemes mixed per layer, FLOAT down_proj and lm_head, norm biases, against the reference" {
    ref mix 0.85
}

@test "msms: each linear gets the scheme its description names" {
    run "$TBIN/msms_test" schemes "$MS/mix"
    [ "$status" -eq 0 ]
    want=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
ps = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
      "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
print(" ".join([d[f"model.layers.{l}.{p}.weight"] for l in range(2) for p in ps] + [d["lm_head.weight"]]))
' "$MS/mix/quant_model_description.json")
    echo "got:  $output"
    echo "want: $want"
    [ "$output" = "$want" ]
}

@test "msms: the format's matmul: batched = row by row = split columns, zero rows, NaN and Inf rows" {
    for d in w8a8 w8a8-i64 w8a8-dynamic w4a8 w4a8-v1 flatquant mix; do
        run "$TBIN/msms_test" matmul "$MS/$d"
        echo "$d: $output"
        [ "$status" -eq 0 ]
        [[ "${lines[-1]}" =~ ^1[34]\ weights,\ 0\ failures$ ]]
    done
}

@test "msms: the programs: embed | prefill logits and decode --greedy tokens are the reference's" {
    echo "$PROMPT" | "$BIN/embed" -m "$MS/mix" | "$BIN/prefill" -m "$MS/mix" -k s --all-logits > "$TMP/l.npy"
    record 1 "$MS/mix.ref.npy" > "$TMP/want.npy"
    run "$BIN/npycmp" --tol 0.999999 "$TMP/l.npy" "$TMP/want.npy"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "${lines[1]}" =~ \ 12/12$ ]]
    run "$BIN/decode" -m "$MS/mix" -k s -n 8 --greedy < /dev/null
    [ "$status" -eq 0 ]
    got=$(echo $output)
    want=$(record 2 "$MS/mix.ref.npy" | python3 -c '
import struct, sys
b = sys.stdin.buffer.read()
hl = struct.unpack("<H", b[8:10])[0]
print(*struct.unpack("<8i", b[10 + hl:]))')
    echo "got $got, want $want"
    [ "$got" = "$want" ]
}

@test "msms: a plain Hugging Face directory is not taken for an msModelSlim one" {
    [ -f "$PWD/build/models/tiny/config.json" ] || skip "no build/models/tiny: run make models"
    run "$TBIN/msms_test" schemes "$PWD/build/models/tiny"
    [ "$status" -eq 0 ]
    [[ "$output" =~ ^(FLOAT\ )+FLOAT$ ]]
}

@test "msms: a sharded checkpoint (an index and two files) gives the same logits" {
    broken mix
    python3 - "$TMP/m" <<'EOF'
import json, os, struct, sys
d = sys.argv[1]
src = os.path.join(d, "quant_model_weights.safetensors")
b = open(src, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
h.pop("__metadata__", None)
names = sorted(h)
wm = {}
for i, part in enumerate([names[::2], names[1::2]]):
    fn = f"quant_model_weights-{i + 1:05d}-of-00002.safetensors"
    hdr, data = {}, b""
    for k in part:
        lo, hi = h[k]["data_offsets"]
        hdr[k] = dict(h[k], data_offsets=[len(data), len(data) + hi - lo])
        data += b[8 + n + lo:8 + n + hi]
        wm[k] = fn
    j = json.dumps(hdr).encode()
    j += b" " * (-len(j) % 8)
    open(os.path.join(d, fn), "wb").write(struct.pack("<Q", len(j)) + j + data)
json.dump({"metadata": {}, "weight_map": wm}, open(os.path.join(d, "quant_model_weights.safetensors.index.json"), "w"))
os.remove(src)
EOF
    ls "$TMP/m"
    run "$TBIN/msms_test" ref "$TMP/m" "$MS/mix.ref.npy" 5e-3
    echo "$output"
    [ "$status" -eq 0 ]
    echo "$PROMPT" | "$BIN/prefill" -m "$MS/mix" -k a --all-logits > "$TMP/a.npy"
    echo "$PROMPT" | "$BIN/prefill" -m "$TMP/m" -k b --all-logits > "$TMP/b.npy"
    cmp "$TMP/a.npy" "$TMP/b.npy"
}

@test "msms: W4A8 groups that disagree with the description's group_size" {
    broken w4a8
    sed -i 's/"group_size": 32/"group_size": 64/' "$TMP/m/quant_model_description.json"
    refused "tensor model.layers.0.self_attn.q_proj.weight_scale_second: groups of 32, but quant_model_description.json says group_size 64"
}

@test "msms: the description names a tensor the files lack" {
    broken mix
    desc_set "$TMP/m/quant_model_description.json" model.layers.0.self_attn.q_proj.smooth_scale W8A8
    refused "quant_model_description.json: tensor model.layers.0.self_attn.q_proj.smooth_scale: not in the safetensors files"
}

@test "msms: a tensor the description does not name" {
    broken mix
    desc_set "$TMP/m/quant_model_description.json" model.layers.1.mlp.down_proj.weight_offset -
    refused "tensor model.layers.1.mlp.down_proj.weight_offset: not in quant_model_description.json"
}

@test "msms: an unknown scheme string, named with the ones we know" {
    broken mix
    desc_set "$TMP/m/quant_model_description.json" model.layers.1.mlp.up_proj.weight W3A3
    refused 'quant_model_description.json: tensor model.layers.1.mlp.up_proj.weight: type "W3A3" is not one of FLOAT, W8A8, W8A8_DYNAMIC, W4A8_DYNAMIC, W4A4_FLATQUANT_DYNAMIC'
}

@test "msms: a tensor typed otherwise than its layer" {
    broken mix
    desc_set "$TMP/m/quant_model_description.json" model.layers.0.self_attn.q_proj.deq_scale W8A8_DYNAMIC
    refused "quant_model_description.json: tensor model.layers.0.self_attn.q_proj.deq_scale: type W8A8_DYNAMIC, but its layer is W8A8"
}

@test "msms: packed int4 shapes that do not match the config" {
    broken w4a8-v1
    sed -i 's/"num_attention_heads": 4/"num_attention_heads": 2/' "$TMP/m/config.json"
    refused "tensor model.layers.0.self_attn.q_proj.weight: shape [32, 64], config wants [16, 64]"
}

@test "msms: a FlatQuant transform that does not fit the layer" {
    broken flatquant
    sed -i 's/"intermediate_size": 96/"intermediate_size": 80/' "$TMP/m/config.json"
    refused "tensor model.layers.0.mlp.gate_proj.weight: shape [96, 64], config wants [80, 64]"
    broken flatquant
    st_header "$TMP/m/quant_model_weights.safetensors" model.layers.1.mlp.up_proj.left_trans shape '[4, 16]'
    refused "tensor model.layers.1.mlp.up_proj.left_trans: shape [4, 16], want [L, L] with L dividing in_features 64"
    broken flatquant
    st_header "$TMP/m/quant_model_weights.safetensors" model.layers.1.mlp.down_proj.right_trans shape '[8, 18]'
    refused "tensor model.layers.1.mlp.down_proj.right_trans: shape [8, 18], want [12, 12] (left_trans is [8, 8], in_features 96)"
}

@test "msms: a zero input_scale, a NaN clip_ratio: refused, named" {
    broken w8a8
    st_poke "$TMP/m/quant_model_weights.safetensors" model.layers.1.self_attn.k_proj.input_scale 00000000
    refused "tensor model.layers.1.self_attn.k_proj.input_scale: element 0 is 0, not a positive finite scale"
    broken flatquant
    st_poke "$TMP/m/quant_model_weights.safetensors" model.layers.0.mlp.up_proj.clip_ratio 0000c07f
    refused "tensor model.layers.0.mlp.up_proj.clip_ratio: element 0 is nan, not a positive finite scale"
}

@test "msms: a tensor no Qwen3 layer uses, a missing one, a wrong dtype" {
    broken w8a8-i64
    f=$TMP/m/quant_model_weight_w8a8.safetensors
    python3 - "$f" "$TMP/m/quant_model_description_w8a8.json" <<'EOF'
import sys
a, b = b"layers.0.self_attn.q_proj.weight_offset", b"layers.0.self_attn.q_proj.weight_offsez"
for f in sys.argv[1:]:
    d = open(f, "rb").read()
    open(f, "wb").write(d.replace(a, b))
EOF
    refused "tensor model.layers.0.self_attn.q_proj.weight_offsez (W8A8): not one a Qwen3 model uses"
    broken w8a8
    desc_set "$TMP/m/quant_model_description.json" model.layers.0.mlp.up_proj.quant_bias -
    python3 - "$TMP/m/quant_model_weights.safetensors" <<'EOF'
import sys
f = sys.argv[1]
d = open(f, "rb").read()
open(f, "wb").write(d.replace(b"layers.0.mlp.up_proj.quant_bias", b"layers.0.mlp.up_proj.quant_bia_"))
EOF
    desc_set "$TMP/m/quant_model_description.json" model.layers.0.mlp.up_proj.quant_bia_ W8A8
    refused "tensor model.layers.0.mlp.up_proj.quant_bias: missing (W8A8 needs it)"
    broken w8a8
    st_header "$TMP/m/quant_model_weights.safetensors" model.layers.1.self_attn.o_proj.deq_scale dtype '"I32"'
    refused "tensor model.layers.1.self_attn.o_proj.deq_scale: dtype I32, want F32, F16, BF16 or I64"
    broken w8a8
    st_header "$TMP/m/quant_model_weights.safetensors" model.layers.0.mlp.gate_proj.weight dtype '"U8"'
    refused "tensor model.layers.0.mlp.gate_proj.weight: dtype U8, want I8"
}

@test "msms: unreadable pieces: a description that is not JSON, a truncated safetensors file" {
    broken mix
    echo '{"version": ' > "$TMP/m/quant_model_description.json"
    refused "quant_model_description.json: not a JSON object"
    broken mix
    truncate -s 5000 "$TMP/m/quant_model_weights.safetensors"
    run bash -c "echo 1 2 | '$BIN/prefill' -m '$TMP/m' -k s 2>&1 >/dev/null"
    echo "$output"
    [ "$status" -eq 1 ]
    [[ "${lines[0]}" =~ ^prefill:\ .*quant_model_weights.safetensors ]]
}

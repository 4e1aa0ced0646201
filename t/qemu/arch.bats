#!/usr/bin/env bats
# The aarch64 static build (make static ARCH=aarch64) under qemu-aarch64, beside the x86
# one: what the binaries are, both NEON kernel variants (with and without SDOT), and
# that sessions and caches written by one machine are used as they are by the other.
# `make test-aarch64` runs this file, and the suites it lists (t/tok.bats, t/forward.bats,
# ...) with BIN and TBIN set to t/qemu/wrap's scripts. Not part of `bats t`: the other
# builds have no aarch64 binaries to test.
load ../helper

A64=${A64:-$PWD/build/static-aarch64}
QBIN=$A64/qemu/bin QT=$A64/qemu/t
X86=${X86BIN:-$PWD/bin}
case $X86 in /*) ;; *) X86=$PWD/$X86 ;; esac
MODELS=$PWD/build/models

need() {
    [ -x "$QBIN/tok" ] || skip "no aarch64 build under qemu: make test-aarch64 builds one"
    [ -x "$X86/prefill" ] || skip "no host build in $X86: make"
}

# ids of a reference prompt (t/fixtures/forward, made by HF transformers)
ref() {
    python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
m = next(m for m in d["models"] if m["name"] == sys.argv[2])
p = next(p for p in m["prompts"] if p["name"] == sys.argv[3])
print(" ".join(map(str, p["ids"])))' "$FIX/forward/forward.json" "$@"
}

# close A.npy B.npy: the bar t/forward.bats holds our logits to against HF's (cosine >=
# 0.99999, max|d| <= 1e-4 max|logit|) and the same argmax; here it measures how far
# NEON's order of f32 adds takes the logits from AVX2's.
close() {
    run "$X86/npycmp" --tol 0.99999 "$1" "$2"
    echo "$output"
    [ "$status" -eq 0 ]
    python3 -c '
import struct, sys
def load(p):
    d = open(p, "rb").read(); hl = int.from_bytes(d[8:10], "little")
    return struct.unpack("<%df" % ((len(d) - 10 - hl) // 4), d[10 + hl:])
a, b = load(sys.argv[1]), load(sys.argv[2])
md, mx = max(abs(x - y) for x, y in zip(a, b)), max(abs(x) for x in b)
print("max|d| / max|logit| = %.3g" % (md / mx))
assert len(a) == len(b) and md <= 1e-4 * mx
assert a.index(max(a)) == b.index(max(b))' "$1" "$2"
}

@test "arch: every program is one static aarch64 ELF file: no interpreter, no dynamic section" {
    need
    for f in "$A64"/bin/*; do
        p=${f##*/}
        readelf -h "$f" | grep -q 'Machine:.*AArch64'
        [ -z "$(readelf -l "$f" | grep INTERP)" ]
        readelf -d "$f" | grep -q 'no dynamic section'
        echo "$p $(wc -c < "$f") bytes"
    done
}

@test "arch: NEON kernels against generic: neon-dot (SDOT) on -cpu max, plain neon on cortex-a53" {
    need
    run env QEMU_CPU=max "$QT/kern_test"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "variants: generic neon neon-dot (best neon-dot)" ]
    # no dot-product extension: neon is the best, and both test programs hold it to generic
    run env QEMU_CPU=cortex-a53 "$QT/kern_test"
    echo "${lines[0]}"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "variants: generic neon (best neon)" ]
    [[ "${lines[-1]}" == *" checks, 0 failures" ]]
    run env QEMU_CPU=cortex-a53 "$QT/quant_test" kernels
    echo "${lines[0]} ${lines[-1]}"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "variants: generic neon" ]
    [[ "${lines[-1]}" == *" checks, 0 failures" ]]
}

@test "arch: a session started on x86 continues on aarch64 and the reverse: logits within the forward bar, greedy tokens equal" {
    need
    ids=$(ref tiny chat ids)    # 68 tokens
    first=$(echo $ids | cut -d' ' -f1-40) rest=$(echo $ids | cut -d' ' -f41-)
    # r: x86 alone; xa: x86 then aarch64; ax: aarch64 then x86; aa: aarch64 alone
    for s in r:$X86:$X86 xa:$X86:$QBIN ax:$QBIN:$X86 aa:$QBIN:$QBIN; do
        IFS=: read -r k one two <<< "$s"
        echo "$first" | "$one/prefill" -k $k > /dev/null
        echo "$rest" | "$two/prefill" -k $k > "$TMP/$k.npy"
    done
    close "$TMP/xa.npy" "$TMP/r.npy"
    close "$TMP/ax.npy" "$TMP/r.npy"
    close "$TMP/aa.npy" "$TMP/r.npy"
    # the next 8 greedy tokens, each session continued by the other machine
    "$X86/decode" -k r -n 8 --temp 0 --stop 999999 < /dev/null > "$TMP/r.ids"
    "$QBIN/decode" -k ax -n 8 --temp 0 --stop 999999 < /dev/null > "$TMP/ax.ids"
    "$X86/decode" -k xa -n 8 --temp 0 --stop 999999 < /dev/null > "$TMP/xa.ids"
    [ "$(wc -l < "$TMP/r.ids")" -eq 8 ]
    cmp "$TMP/r.ids" "$TMP/ax.ids"
    cmp "$TMP/r.ids" "$TMP/xa.ids"
    # either machine reads what the other committed
    cmp <("$X86/kvstore" tokens ax) <("$QBIN/kvstore" tokens ax)
    "$QBIN/kvstore" verify
}

@test "arch: blocks x86 stored are found by aarch64's prefix reuse (the same names), with the same logits" {
    need
    ids=$(ref tiny chat ids)
    echo "$ids" | "$X86/prefill" -k x > "$TMP/x.npy"
    echo "$ids" | "$QBIN/prefill" -k a -v > "$TMP/a.npy" 2> "$TMP/a.err"
    cat "$TMP/a.err"
    grep -q '4 positions computed.* 64 reused from the store' "$TMP/a.err"
    close "$TMP/a.npy" "$TMP/x.npy"
}

@test "arch: the tokenizer cache and a quantized-weight cache compiled on x86 are mapped as they are on aarch64" {
    need
    "$X86/tok" -m "$MODEL" 'Hello, wörld 你好' > "$TMP/x.ids"
    before=$(ls -l --time-style=+%s.%N "$QWEN_CACHE")
    "$QBIN/tok" -m "$MODEL" 'Hello, wörld 你好' > "$TMP/a.ids"
    cmp "$TMP/x.ids" "$TMP/a.ids"
    [ "$(ls -l --time-style=+%s.%N "$QWEN_CACHE")" = "$before" ]
    echo "9707 11 1879" | "$X86/prefill" -m "$MODELS/tiny-f32" --quant q8 -k x > "$TMP/x.npy"
    before=$(ls -l --time-style=+%s.%N "$QWEN_CACHE")
    echo "9707 11 1879" | "$QBIN/prefill" -m "$MODELS/tiny-f32" --quant q8 -k a > "$TMP/a.npy"
    [ "$(ls -l --time-style=+%s.%N "$QWEN_CACHE")" = "$before" ]
    close "$TMP/a.npy" "$TMP/x.npy"
}

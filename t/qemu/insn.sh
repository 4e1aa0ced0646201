#!/usr/bin/env bash
# t/qemu/insn.sh [MODEL [CPU]]: aarch64 instructions per decoded token under emulation,
# per weight scheme (SCHEMES="none q8 q4 8da4w" by default), for the README. This is a count of guest instructions that
# qemu-aarch64 executed (t/qemu/insn.c, a TCG plugin), one thread, not a speed: qemu
# says nothing of a real core's cycles, caches or memory bandwidth, which is what decode
# on a board is bound by.
#
# Per scheme: the x86 build prefills a prompt (and quantizes the model into the shared
# cache, which the aarch64 build then maps), forks the session twice, and the aarch64
# build continues one fork by 1 greedy token and the other by 5 under the plugin; the
# difference over 4 is the cost of one token (model load and start-up cancel out).
# MODEL defaults to build/models/0.6b (Qwen3-0.6B's dimensions, bf16); CPU to max
# (SDOT present; cortex-a53 has none).
set -euo pipefail
cd "$(dirname "$0")/../.."
model=${1:-build/models/0.6b} cpu=${2:-max}
A64=build/static-aarch64/bin
[ -x "$A64/decode" ] || { echo "insn.sh: no $A64/decode: make static ARCH=aarch64" >&2; exit 1; }
[ -x bin/prefill ] || { echo "insn.sh: no bin/prefill: make" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
${HOSTCC:-cc} -shared -fPIC -O2 -o "$work/insn.so" t/qemu/insn.c
export QWEN_KVSTORE=$work/kv
qemu=$(command -v qemu-aarch64 || command -v qemu-aarch64-static)

count() { # count N SESSION: instructions of decode -n N
    "$qemu" -cpu "$cpu" -plugin "$work/insn.so" -d plugin "$A64/decode" -m "$model" --quant "$q" \
        -k "$2" -n "$1" --temp 0 --stop 999999 -t 1 < /dev/null 2>&1 >/dev/null | sed -n 's/^insn: //p'
}

echo "model $model, qemu -cpu $cpu, one thread"
printf '%-8s %16s\n' scheme insn/token
for q in ${SCHEMES:-none q8 q4 8da4w}; do
    echo "9707 11 1879 0 374 264 1273 13" | bin/prefill -m "$model" --quant "$q" -k "p$q" > /dev/null
    bin/kvstore fork "p$q" "a$q" && bin/kvstore fork "p$q" "b$q"
    c1=$(count 1 "a$q") c5=$(count 5 "b$q")
    printf '%-8s %16d\n' "$q" $(((c5 - c1) / 4))
done

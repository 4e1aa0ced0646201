#!/bin/sh
# ab: two builds of ours, interleaved, on one model and scheme: prefill tokens/s (pp512) or
# decode tokens/s (-n 64 after a 512-token prompt), ROUNDS pairs, each side's runs sorted
# (the middle one is the median). For telling whether a change is faster on this noisy
# machine: the two sides take turns, so a slow minute hits both.
#   git worktree add /tmp/old HEAD~1 && make -C /tmp/old
#   sh bench/ab.sh tg q4 5 0.6b /tmp/old .      # decode, q4, 5 pairs, build/models/0.6b
#   sh bench/ab.sh pp q8 5 0.6b /tmp/old .      # prefill
# MODEL is a directory under build/models (`make build/models/0.6b/config.json` makes it, as
# bench/llama.sh does); both sides read it and the same cache.
set -eu
mode=${1:?usage: ab.sh pp|tg SCHEME ROUNDS MODEL OLDROOT NEWROOT}
q=${2:?scheme}; n=${3:-5}; m=${4:-0.6b}; old=${5:?old build root}; new=${6:-.}
models=$(cd "$(dirname "$0")/.." && pwd)/build/models
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# the 512 ids on one line: one sequence (prefill takes each line as a sequence of its own)
ids() { awk 'BEGIN { for (i = 0; i < 512; i++) printf "%d ", (i * 7919 + 13) % 150000; print "" }'; }
ids > "$tmp/ids"
rate() { sed -n 's/.*(\([0-9.]*\) tokens\/s).*/\1/p' "$1"; }
if [ "$mode" = tg ]; then # one 512-token session per side, copied for every run
    for side in old new; do
        eval root=\$$side
        "$root/bin/prefill" -m "$models/$m" --quant "$q" --store "$tmp/base.$side" -k b -t 2 < "$tmp/ids" > /dev/null
    done
fi
for i in $(seq "$n"); do
    for side in old new; do
        eval root=\$$side
        rm -rf "$tmp/st"
        if [ "$mode" = tg ]; then
            cp -r "$tmp/base.$side" "$tmp/st"
            "$root/bin/decode" -m "$models/$m" --quant "$q" --store "$tmp/st" -k b -t 2 -n 64 --temp 0 -v \
                < /dev/null > /dev/null 2> "$tmp/err"
        else
            "$root/bin/prefill" -m "$models/$m" --quant "$q" --store "$tmp/st" -k b -t 2 -v < "$tmp/ids" \
                > /dev/null 2> "$tmp/err"
        fi
        rate "$tmp/err" >> "$tmp/r.$side"
    done
done
for side in old new; do printf '%s: %s\n' "$side" "$(sort -n "$tmp/r.$side" | tr '\n' ' ')"; done

#!/bin/sh
# Ours beside llama.cpp on the same weights, in one run: prefill pp512 (a 512-token prompt
# from an empty context) and decode tg128 (128 greedy tokens after that prompt), T threads,
# at matched precision, with the peak RSS of each side and the memory-read bandwidth
# (bench/bw.c) measured in the same run:
#   decode limit = read bandwidth / weight bytes read per token (the GGUF's tensor bytes,
#   llama-bench's model_size: every matrix once, the tied lm_head being token_embd).
#   sh bench/llama.sh [threads=2] [reps=3]      (after `make`; writes bench/out/llama.md)
#   SIZES="0.6b 4b" sh bench/llama.sh            (Qwen3-4B dimensions too: 8 GB of bf16)
#   SIZES=4b ONLY="q4 8da4w" sh bench/llama.sh 2 2   (some rows only)
# llama.cpp is built by bench/llama_build.sh (cached outside the repo); the GGUF files are
# written from our model directories by bench/to_gguf.py into build/gguf (never committed).
# llama.cpp side: llama-bench -p 512 -n 0, and -p 0 -n 128 -d 512 (tg128 at depth 512),
# -r 1 per repetition, its default flash-attention and F16 KV cache.
# Ours and theirs are interleaved per repetition and medians reported (the machine is noisy).
set -eu
T=${1:-2} REPS=${2:-3}
SIZES=${SIZES:-0.6b}
cd "$(dirname "$0")/.."
out=bench/out; mkdir -p "$out" build/gguf
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
PY=${PY:-/work/venv/bin/python}; [ -x "$PY" ] || PY=python3
TIME=/usr/bin/time
llama=$(sh bench/llama_build.sh)
cc -O2 -march=native -pthread bench/bw.c -o "$tmp/bw"
prompt=$(awk 'BEGIN { for (i = 0; i < 512; i++) printf "%d ", (i * 7919 + 13) % 150000; print "" }')

# Our quantized schemes (issue 5) arrive with `--quant q8|q4|8da4w|8da8w` on prefill and decode;
# until then their rows show llama.cpp alone.
if bin/prefill --help 2>&1 | grep -q -- --quant; then has_quant=1; else has_quant=0; fi

# The rows: size name our-model-dir our-quant(- = the checkpoint as it is) gguf-type.
# q4 is group 32 (as Q4_0); 8da4w is compared with Q4_0 too, 8da8w with Q8_0; bf16 keeps x in
# f32 (HF's f32 numerics), bf16a rounds it to bf16 as llama.cpp's BF16 does: both against BF16.
rows() {
    for s in $SIZES; do
        case $s in
        0.6b) printf '%s\n' "0.6b bf16 0.6b - bf16" "0.6b bf16a 0.6b bf16a bf16" "0.6b f32 0.6b-f32 - f32" \
                  "0.6b q8 0.6b q8 q8_0" "0.6b q4 0.6b q4 q4_0" "0.6b 8da4w 0.6b 8da4w q4_0" \
                  "0.6b 8da8w 0.6b 8da8w q8_0" ;;
        4b) printf '%s\n' "4b bf16 4b - bf16" "4b bf16a 4b bf16a bf16" "4b q8 4b q8 q8_0" "4b q4 4b q4 q4_0" "4b 8da4w 4b 8da4w q4_0" "4b 8da8w 4b 8da8w q8_0" ;;
        *) echo "llama.sh: $s: unknown size (0.6b, 4b)" >&2; exit 2 ;;
        esac
    done
}
rows > "$tmp/rows"
# ONLY="q4 8da4w": just those rows (the 4B ones take minutes each)
if [ -n "${ONLY:-}" ]; then
    awk -v only=" $ONLY " 'index(only, " " $2 " ")' "$tmp/rows" > "$tmp/rows.only" && mv "$tmp/rows.only" "$tmp/rows"
fi

# Models (ours, generated) and their GGUF twins, written once and kept under build/.
while read -r size name dir quant gt; do
    make -s "build/models/$dir/config.json" < /dev/null >&2
    g=build/gguf/$size-$gt.gguf
    if [ ! -s "$g" ] || [ -n "$(find "build/models/$dir/model.safetensors" -newer "$g")" ]; then
        echo "llama.sh: writing $g" >&2
        "$PY" bench/to_gguf.py "build/models/$dir" "$g" --type "$gt" < /dev/null 2> "$tmp/to_gguf.log" ||
            { cat "$tmp/to_gguf.log" >&2; exit 1; }
    fi
    # first use of --quant writes the quantized cache beside the model: not timed
    if [ "$quant" != - ] && [ "$has_quant" = 1 ]; then
        rm -rf "$tmp/warm"
        echo 1 | bin/prefill -m "build/models/$dir" --quant "$quant" --store "$tmp/warm" -k warm -t "$T" > /dev/null
    fi
done < "$tmp/rows"

median() { sort -g | awk 'NF { a[++n] = $1 } END { if (!n) print "nan"; else print (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }'; }
rss() { sed -n 's/.*Maximum resident set size (kbytes): //p' "$1"; }
tps() { sed -n 's/.*(\([0-9.]*\) tokens\/s).*/\1/p' "$1"; }
jfield() { "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))[0][sys.argv[2]])' "$1" "$2"; }

ours() {  # size name dir quant: one pp512 then tg128, appending tokens/s and peak RSS (kB)
    q=; [ "$4" = - ] || q="--quant $4"
    rm -rf "$tmp/store" "$tmp/warm"   # a fresh store: no prefix reuse between repetitions
    # a warm-up run, as llama-bench's own: the page cache here drops mapped files between
    # rows, and a first touch from disk would be timed with the matmuls
    # shellcheck disable=SC2086
    echo 1 | bin/prefill -m "build/models/$3" $q --store "$tmp/warm" -k warm -t "$T" > /dev/null 2>&1
    # shellcheck disable=SC2086
    echo "$prompt" | $TIME -v -o "$tmp/time" bin/prefill -m "build/models/$3" $q --store "$tmp/store" \
        -k bench -t "$T" -v 2> "$tmp/err" > /dev/null || { cat "$tmp/err" >&2; exit 1; }
    tps "$tmp/err" >> "$tmp/o-$1-$2.pp"; r1=$(rss "$tmp/time")
    # shellcheck disable=SC2086
    # --kv-type f16: llama.cpp's cache type (ours is f32 by default for float weights)
    $TIME -v -o "$tmp/time" bin/decode -m "build/models/$3" $q --store "$tmp/store" -k bench -t "$T" \
        -n 128 --temp 0 --kv-type f16 -v < /dev/null 2> "$tmp/err" > /dev/null || { cat "$tmp/err" >&2; exit 1; }
    tps "$tmp/err" >> "$tmp/o-$1-$2.tg"; r2=$(rss "$tmp/time")
    echo $(( r1 > r2 ? r1 : r2 )) >> "$tmp/o-$1-$2.rss"
}

theirs() {  # size gguf-type: llama-bench pp512, then tg128 at depth 512
    g=build/gguf/$1-$2.gguf
    $TIME -v -o "$tmp/time" "$llama/llama-bench" -m "$g" -t "$T" -r 1 -p 512 -n 0 -o json \
        < /dev/null > "$tmp/j" 2> "$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
    jfield "$tmp/j" avg_ts >> "$tmp/l-$1-$2.pp"; r1=$(rss "$tmp/time")
    jfield "$tmp/j" model_size > "$tmp/l-$1-$2.bytes"   # its tensor bytes
    $TIME -v -o "$tmp/time" "$llama/llama-bench" -m "$g" -t "$T" -r 1 -p 0 -n 128 -d 512 -o json \
        < /dev/null > "$tmp/j" 2> "$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
    jfield "$tmp/j" avg_ts >> "$tmp/l-$1-$2.tg"; r2=$(rss "$tmp/time")
    echo $(( r1 > r2 ? r1 : r2 )) >> "$tmp/l-$1-$2.rss"
}

for rep in $(seq "$REPS"); do
    echo "llama.sh: repetition $rep of $REPS" >&2
    "$tmp/bw" "$T" >> "$tmp/bw.txt"
    : > "$tmp/done"
    while read -r size name dir quant gt; do
        if [ "$quant" = - ] || [ "$has_quant" = 1 ]; then ours "$size" "$name" "$dir" "$quant"; fi
        grep -qxF "$size-$gt" "$tmp/done" || { theirs "$size" "$gt"; echo "$size-$gt" >> "$tmp/done"; }
    done < "$tmp/rows"
done

bw=$(median < "$tmp/bw.txt")
med() { if [ -s "$1" ]; then median < "$1"; else echo nan; fi; }
{
echo "Ours vs llama.cpp ($(basename "$(dirname "$llama")" | sed 's/build-/llama-cpp-python /')), $T threads, median of $REPS interleaved repetitions;"
echo "memory read bandwidth $bw GB/s ($T threads, bench/bw.c); $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -m)"
echo
echo "| dims | ours ↔ llama.cpp | pp512 ours | pp512 llama.cpp | pp ratio | tg128 ours | tg128 llama.cpp | tg ratio | peak RSS ours | peak RSS llama.cpp | GGUF weight bytes/token | decode limit | ours % of limit | llama.cpp % of limit |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
while read -r size name dir quant gt; do
    awk -v size="$size" -v name="$name" -v gt="$gt" -v bw="$bw" -v wb="$(cat "$tmp/l-$size-$gt.bytes")" \
        -v opp="$(med "$tmp/o-$size-$name.pp")" -v otg="$(med "$tmp/o-$size-$name.tg")" -v orss="$(med "$tmp/o-$size-$name.rss")" \
        -v lpp="$(med "$tmp/l-$size-$gt.pp")" -v ltg="$(med "$tmp/l-$size-$gt.tg")" -v lrss="$(med "$tmp/l-$size-$gt.rss")" '
    function f(x, fmt) { return x == "nan" ? "—" : sprintf(fmt, x) }
    function r(a, b) { return (a == "nan" || b == "nan") ? "—" : sprintf("%.2f×", a / b) }
    BEGIN {
        lim = bw * 1e9 / wb
        printf "| %s | %s ↔ %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f MB | %.1f | %s | %s |\n",
            size, name, toupper(gt), f(opp, "%.1f"), f(lpp, "%.1f"), r(opp, lpp),
            f(otg, "%.2f"), f(ltg, "%.2f"), r(otg, ltg), f(orss / 1024, "%.0f MB"), f(lrss / 1024, "%.0f MB"),
            wb / 1e6, lim, f(100 * otg / lim, "%.0f%%"), f(100 * ltg / lim, "%.0f%%") }'
done < "$tmp/rows"
echo
[ "$has_quant" = 1 ] || echo "— : ours has no --quant yet (q8, q4, 8da4w rows show llama.cpp alone)."
echo "ours: bin/prefill -v (pp512, empty context), bin/decode -n 128 --temp 0 --kv-type f16 -v (after the 512-token prompt; f16 K/V as llama.cpp's);"
echo "llama.cpp: llama-bench -t $T -r 1 -p 512 -n 0, and -p 0 -n 128 -d 512. Peak RSS: /usr/bin/time -v, the larger of each side's two processes."
echo "bf16 runs the BF16 checkpoint with x in f32 (HF's f32 numerics), bf16a with x rounded to bf16 (--quant bf16a: llama.cpp's BF16 arithmetic)."
} | tee "$out/llama.md"

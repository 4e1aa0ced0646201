#!/bin/sh
# What the KV store (docs/kvstore.md) costs and saves, on Qwen3-0.6B's exact dimensions
# (28 layers, kv_dim 1024, bf16 random weights from lib/gen/tinymodel, never committed):
#   sh bench/kvstore.sh [threads=2] [lengths="2048 8192"] [reps=3]
# (after `make`; writes bench/out/kvstore.md). For each prompt length L, in a fresh store
# on disk ($KVS_BENCH_DIR, default /tmp):
#   recompute  prefill of L tokens into a new session: what a resume saves (once per L)
#   resume     decode -n 1 from the stored L-token session: process start, model open,
#              session open (every block read and checksummed), one step, its commit
#   reuse hit  prefill of the same L tokens into another new session: every block found
#              in the store, only the last position computed (for its logits)
#   bytes      the store on disk (du) / L, beside the f32 K/V rows a position holds
# and, from the first length's session, the write overhead of persistence on a decode
# step: `decode -n 32` with a uprobe (perf probe) on sess_commit timing each commit against
# the step it ends, and the same decode with the store copied to tmpfs (/dev/shm, where
# fdatasync is free) beside the one on disk. Timings are wall clock, page cache warm,
# medians of REPS where repeated; this machine is shared and noisy.
# An L whose prefill would take longer than $KVS_BENCH_MAX_S seconds (default 300), going
# by the time the length before it took, is halved until it fits, and the output says so.
set -eu
T=${1:-2} LENS=${2:-"2048 8192"} REPS=${3:-3}
MAX_S=${KVS_BENCH_MAX_S:-300}
cd "$(dirname "$0")/.."
out=bench/out; mkdir -p "$out"
M=build/models/0.6b
make -s "$M/config.json" >&2
tmp=$(mktemp -d "${KVS_BENCH_DIR:-/tmp}/kvsbench.XXXXXX")
shm=
probes=
cleanup() {
    rm -rf "$tmp"
    [ -z "$shm" ] || rm -rf "$shm"
    [ -z "$probes" ] || perf probe -q -d "$probes:*" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# L prompt ids, different for every L (no length reuses another's blocks)
prompt() { awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++) printf "%d ", (i * 7919 + n * 31 + 13) % 150000; print "" }'; }
pre() { bin/prefill -m "$M" -t "$T" "$@"; }
dec() { bin/decode -m "$M" -t "$T" --temp 0 --stop 999999 "$@"; }
# the number before "tokens/s)" in a -v line
rate() { sed -n 's/.*(\([0-9.]*\) tokens\/s).*/\1/p'; }

# the floor under every resume: decode -n 1 from a one-block session (process, model, a step)
s0=$tmp/floor
prompt 16 | pre --store "$s0" -k a > /dev/null
for r in $(seq "$REPS"); do
    bin/kvstore --store "$s0" fork a f$r
    t0=$(now); dec --store "$s0" -k f$r -n 1 < /dev/null > /dev/null; since "$t0" >> "$tmp/floor.txt"; echo >> "$tmp/floor.txt"
done
floor=$(median < "$tmp/floor.txt")

rows=$tmp/rows; : > "$rows"
note=
first_store=
last=      # the last length done, and its prefill's time, to predict the next
for L in $LENS; do
    want=$L
    if [ -n "$last" ]; then # attention makes it worse than linear: predict t_last * (L/last)^1.25
        while [ "$L" -gt 512 ] && awk -v l="$L" -v t="$recompute" -v last="$last" -v m="$MAX_S" \
                'BEGIN { exit !(t * (l / last) ^ 1.25 > m) }'; do
            L=$((L / 2))
        done
        [ "$L" -ne "$want" ] && note="$note $want tokens would take more than $MAX_S s to prefill here: $L instead."
        [ "$L" -le "$last" ] && continue
    fi
    s=$tmp/store$L
    prompt "$L" > "$tmp/p$L"
    # recompute: the first prefill
    t0=$(now)
    pre --store "$s" -k a -v < "$tmp/p$L" 2> "$tmp/pre$L.err" > /dev/null
    recompute=$(since "$t0")
    pp_rate=$(rate < "$tmp/pre$L.err")
    last=$L
    bytes=$(du -sb "$s" | cut -f1)
    # resume: open the stored session and take one step (a fork each time: decode appends)
    : > "$tmp/res$L.txt"
    for r in $(seq "$REPS"); do
        bin/kvstore --store "$s" fork a r$r
        t0=$(now); dec --store "$s" -k r$r -n 1 < /dev/null > /dev/null; since "$t0" >> "$tmp/res$L.txt"; echo >> "$tmp/res$L.txt"
    done
    resume=$(median < "$tmp/res$L.txt")
    # reuse hit: the same prompt into a new session
    : > "$tmp/hit$L.txt"
    for r in $(seq "$REPS"); do
        t0=$(now); pre --store "$s" -k h$r -v < "$tmp/p$L" 2> "$tmp/hit$L.err" > /dev/null; since "$t0" >> "$tmp/hit$L.txt"; echo >> "$tmp/hit$L.txt"
    done
    hit=$(median < "$tmp/hit$L.txt")
    reused=$(sed -n 's/.* \([0-9]*\) reused from the store.*/\1/p' "$tmp/hit$L.err")
    echo "$L $recompute $pp_rate $resume $hit $reused $bytes" >> "$rows"
    echo "L=$L: recompute $recompute s ($pp_rate tokens/s), resume $resume s, reuse hit $hit s ($reused reused), $bytes bytes" >&2
    [ -n "$first_store" ] || first_store=$s
    for r in $(seq "$REPS"); do bin/kvstore --store "$s" rm r$r; bin/kvstore --store "$s" rm h$r; done
done

# write overhead of persistence on a decode step, from the first length's session
s=$first_store
L1=$(head -1 "$rows" | cut -d' ' -f1)
N=32
probe_ok=0
if command -v perf > /dev/null 2>&1; then
    probes=kvsbench$$
    if perf probe -q -x "$PWD/bin/decode" -a "$probes:c=sess_commit" -a "$probes:r=sess_commit%return" 2> /dev/null; then
        probe_ok=1
    else
        probes=
    fi
fi
shm=$(mktemp -d /dev/shm/kvsbench.XXXXXX)
cp -a "$s/." "$shm/"
: > "$tmp/disk.txt"; : > "$tmp/shm.txt"; : > "$tmp/commit.txt"
for r in $(seq "$REPS"); do
    for where in disk shm; do
        st=$s; [ "$where" = shm ] && st=$shm
        bin/kvstore --store "$st" fork a d$r
        if [ "$probe_ok" = 1 ] && [ "$where" = disk ]; then
            perf record -q -o "$tmp/perf.data" -e "$probes:c" -e "$probes:r__return" -- \
                bin/decode -m "$M" -t "$T" --temp 0 --stop 999999 --store "$st" -k d$r -n $N -v < /dev/null 2>> "$tmp/$where.txt" > /dev/null
            # per step: the commit's time, and the time from one commit's start to the next
            perf script -i "$tmp/perf.data" -F time,event 2> /dev/null | awk '
                { t = $1 + 0 }
                / [^ ]*:c: *$/ { if (c0) { period += t - c0; np++ } c0 = t }
                /r__return/ { commit += t - c0; nc++ }
                END { printf "%.6f %.6f %d\n", commit / nc, period / np, nc }' >> "$tmp/commit.txt"
        else
            dec --store "$st" -k d$r -n $N -v < /dev/null 2>> "$tmp/$where.txt" > /dev/null
        fi
        bin/kvstore --store "$st" rm d$r
    done
done
tg_disk=$(rate < "$tmp/disk.txt" | median)
tg_shm=$(rate < "$tmp/shm.txt" | median)

{
echo "KV store on Qwen3-0.6B dimensions (28 layers, kv_dim 1024, bf16 random weights), $T threads, store on $(df -P "$tmp" | awk 'NR == 2 { print $1 }') (${KVS_BENCH_DIR:-/tmp}), page cache warm, median of $REPS where repeated${note:+.$note}"
echo
echo "| tokens | recompute: prefill | resume: decode -n 1 | resume speedup | reuse hit: prefill into a new session | store bytes / token |"
echo "|---|---|---|---|---|---|"
while read -r L rec pp res hit reused bytes; do
    awk -v L="$L" -v rec="$rec" -v pp="$pp" -v res="$res" -v hit="$hit" -v reused="$reused" -v b="$bytes" 'BEGIN {
        printf "| %d | %.2f s (%.1f tokens/s) | %.3f s | %.0fx | %.3f s (%d of %d positions reused) | %.0f |\n",
            L, rec, pp, res, rec / res, hit, reused, L, b / L }'
done < "$rows"
echo
echo "Resume floor: decode -n 1 from a 16-position session takes $floor s (process start, model open, a step, its commit)."
echo "A position's K/V in f32: 28 layers x 2 x 1024 x 4 = 229376 bytes; the rest is block and record headers, checksums, the hidden state."
echo
echo "Write overhead of persistence on a decode step (from the $L1-token session, $N steps):"
echo
echo "| measure | value |"
echo "|---|---|"
echo "| decode tokens/s, store on disk | $tg_disk |"
echo "| decode tokens/s, store on tmpfs (no real fdatasync) | $tg_shm |"
awk -v d="$tg_disk" -v s="$tg_shm" 'BEGIN { printf "| step time on disk vs tmpfs | %.1f ms vs %.1f ms: %+.1f%% |\n", 1000 / d, 1000 / s, 100 * (s / d - 1) }'
if [ "$probe_ok" = 1 ]; then
    sort -g "$tmp/commit.txt" | awk '{ c[NR] = $1; p[NR] = $2 } END {
        m = int((NR + 1) / 2)
        printf "| sess_commit per step (uprobe, on disk) | %.2f ms of a %.1f ms step: %.1f%% (target < 5%%) |\n", 1000 * c[m], 1000 * p[m], 100 * c[m] / p[m] }'
else
    echo "| sess_commit per step (uprobe) | not measured: perf probe unavailable (needs perf and root) |"
fi
} | tee "$out/kvstore.md"

#!/usr/bin/env bats
# sample: lib/sample against HF transformers' logits processors, the draw's statistics,
# and the program over a stream of logits records.
load helper

# The sampling flags sample_test's stream mode uses in-process.
STREAM_FLAGS="--repeat-penalty 1.1 --presence-penalty 0.3 --frequency-penalty 0.1 --top-k 40"

# An int32 .npy record of the ids 1 2.
int32_record() {
    local h="{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }"
    h="$h$(printf '%*s' $((64 - 10 - ${#h} - 1)) '')"
    printf '\x93NUMPY\x01\x00'"\\x$(printf %02x $((${#h} + 1)))"'\x00%s\n' "$h"
    printf '\x01\x00\x00\x00\x02\x00\x00\x00'
}

@test "sample: HF transformers' processors: surviving ids, probabilities (1e-6), greedy ids, penalized logits" {
    run "$TBIN/sample_test" fixture "$FIX/sample_hf.jsonl"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = "18 cases, 0 failures" ]
}

@test "sample: 20k draws follow the distribution; a seed replays its ids" {
    run "$TBIN/sample_test" stats
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "sample: the program over a stream of records chooses what the lib chooses in-process" {
    "$TBIN/sample_test" stream "$TMP" 40 1000 7 > "$TMP/want"
    run bash -c "'$BIN/sample' --seed 7 $STREAM_FLAGS --history '$TMP/hist.txt' < '$TMP/all.npy' > '$TMP/got'"
    [ "$status" -eq 0 ]
    cmp "$TMP/want" "$TMP/got"
    [ "$(wc -l < "$TMP/got")" -eq 40 ]
    # the same records from FILE, and from the Qwen3-sized vocabulary
    run bash -c "'$BIN/sample' --seed 7 $STREAM_FLAGS --history '$TMP/hist.txt' '$TMP/all.npy' | cmp - '$TMP/want'"
    [ "$status" -eq 0 ]
    "$TBIN/sample_test" stream "$TMP" 5 151936 9 > "$TMP/want"
    run bash -c "set -o pipefail; '$BIN/sample' --seed 9 $STREAM_FLAGS --history '$TMP/hist.txt' < '$TMP/all.npy' | cmp - '$TMP/want'"
    [ "$status" -eq 0 ]
}

@test "sample: as a coprocess, each record is answered before the next is written" {
    "$TBIN/sample_test" stream "$TMP" 3 1000 5 > "$TMP/want"
    mkfifo "$TMP/fifo"
    "$BIN/sample" --seed 5 $STREAM_FLAGS --history "$TMP/hist.txt" < "$TMP/fifo" > "$TMP/out" 3>&- &
    exec 7> "$TMP/fifo"   # (fd 3 is BATS's own)
    for r in 1 2 3; do
        cat "$TMP/r$r.npy" >&7
        for _ in $(seq 200); do [ "$(wc -l < "$TMP/out")" -ge "$r" ] && break; sleep 0.1; done
        [ "$(wc -l < "$TMP/out")" -eq "$r" ]   # answered while the stream is still open
    done
    exec 7>&-
    wait
    cmp "$TMP/want" "$TMP/out"
}

@test "sample --seed: the same seed gives the same ids, another seed others; --greedy ignores it" {
    "$TBIN/sample_test" stream "$TMP" 40 1000 3 > /dev/null
    a=$("$BIN/sample" --seed 11 --top-k 0 --top-p 1 --temp 1.5 < "$TMP/all.npy")
    b=$("$BIN/sample" --seed 11 --top-k 0 --top-p 1 --temp 1.5 < "$TMP/all.npy")
    c=$("$BIN/sample" --seed 12 --top-k 0 --top-p 1 --temp 1.5 < "$TMP/all.npy")
    [ "$a" = "$b" ]
    [ "$a" != "$c" ]
    g1=$("$BIN/sample" --greedy --seed 1 < "$TMP/all.npy")
    g2=$("$BIN/sample" --temp 0 < "$TMP/all.npy")
    [ "$g1" = "$g2" ]
}

@test "sample --post-config: Axera's Qwen3-4B settings (top_k 1) are greedy; sampling settings sample" {
    "$TBIN/sample_test" stream "$TMP" 20 1000 3 > /dev/null
    printf '%s' '{"enable_temperature":false,"temperature":0.9,"enable_repetition_penalty":false,"repetition_penalty":1.2,"penalty_window":20,"enable_top_p_sampling":false,"top_p":0.8,"enable_top_k_sampling":true,"top_k":1}' > "$TMP/pc.json"
    [ "$("$BIN/sample" --post-config "$TMP/pc.json" < "$TMP/all.npy")" = "$("$BIN/sample" --greedy < "$TMP/all.npy")" ]
    # top-p on: ax-llm's apply takes top-p and ignores top-k; the same as the HF flags
    printf '%s' '{"enable_temperature":true,"temperature":0.9,"enable_repetition_penalty":false,"repetition_penalty":1.2,"penalty_window":20,"enable_top_p_sampling":true,"top_p":0.8,"enable_top_k_sampling":true,"top_k":1}' > "$TMP/pc.json"
    [ "$("$BIN/sample" --seed 4 --post-config "$TMP/pc.json" < "$TMP/all.npy")" = \
      "$("$BIN/sample" --seed 4 --temp 0.9 --top-p 0.8 --top-k 0 < "$TMP/all.npy")" ]
    # options after it override it
    [ "$("$BIN/sample" --post-config "$TMP/pc.json" --greedy < "$TMP/all.npy")" = "$("$BIN/sample" --greedy < "$TMP/all.npy")" ]
}

@test "sample --post-config: a malformed file or a bad value is refused like any bad flag value, exit 2" {
    printf '{"enable_top_k_sampling": "yes"}' > "$TMP/pc.json"
    run "$BIN/sample" --post-config "$TMP/pc.json" < /dev/null
    [ "$status" -eq 2 ]
    [ "${lines[0]}" = "sample: $TMP/pc.json: enable_top_k_sampling: want true or false" ]
    printf '{"enable_top_p_sampling": true, "top_p": 1.5}' > "$TMP/pc.json"
    run "$BIN/sample" --post-config "$TMP/pc.json" < /dev/null
    [ "$status" -eq 2 ]
    [ "${lines[0]}" = "sample: $TMP/pc.json: top_p 1.5: want a number in (0, 1]" ]
    printf '[1, 2' > "$TMP/pc.json"
    run "$BIN/sample" --post-config "$TMP/pc.json" < /dev/null
    [ "$status" -eq 2 ]
    [ "${lines[0]}" = "sample: $TMP/pc.json: not a JSON object" ]
    run "$BIN/sample" --post-config "$TMP/none.json" < /dev/null
    [ "$status" -eq 2 ]
    [ "${lines[0]}" = "sample: $TMP/none.json: No such file or directory" ]
}

@test "sample: bad flag values are refused with the valid range, exit 2" {
    for bad in "--temp -1:a number >= 0 (0 = greedy)" "--temp nan:a number >= 0 (0 = greedy)" \
               "--top-k -3:an integer >= 0 (0 = off)" "--top-k 2.5:an integer >= 0 (0 = off)" \
               "--top-p 1.5:a number in [0, 1]" "--min-p -0.1:a number in [0, 1]" \
               "--repeat-penalty 0:a number > 0 (1 = off)" "--presence-penalty 2.5:a number in [-2, 2]" \
               "--frequency-penalty x:a number in [-2, 2]" "--seed -1:an integer in [0, 18446744073709551615]" \
               "--seed 18446744073709551616:an integer in [0, 18446744073709551615]"; do
        flag=${bad%%:*} want=${bad#*:}
        run "$BIN/sample" $flag < /dev/null
        [ "$status" -eq 2 ]
        [ "${lines[0]}" = "sample: $flag: want $want" ]
    done
    run "$BIN/sample" --nope < /dev/null
    [ "$status" -eq 2 ]
    run "$BIN/sample" a b < /dev/null
    [ "$status" -eq 2 ]
    [ "${lines[0]}" = "sample: one input file at most" ]
    run "$BIN/sample" --help
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "usage: sample [options] [FILE]" ]
}

@test "sample: a truncated record, an int32 record, a changed vocabulary: exit 1 naming the record" {
    "$TBIN/sample_test" stream "$TMP" 3 1000 3 > /dev/null
    size=$(stat -c %s "$TMP/all.npy")
    run bash -c "head -c $((size - 100)) '$TMP/all.npy' | '$BIN/sample' --seed 1"
    [ "$status" -eq 1 ]
    [ "${#lines[@]}" -eq 3 ]   # the two whole records were answered first
    [ "${lines[2]}" = "sample: stdin: record 3: npy: truncated data (want 4000 bytes)" ]
    { cat "$TMP/r1.npy" "$TMP/r2.npy"; int32_record; } > "$TMP/bad.npy"
    run bash -c "'$BIN/sample' --seed 1 < '$TMP/bad.npy'"
    [ "$status" -eq 1 ]
    [ "${lines[2]}" = "sample: stdin: record 3: want float32 logits of shape (vocab) or (n, vocab), got int32 of 1 dims" ]
    run bash -c "'$BIN/sample' '$TMP/bad.npy'"
    [ "${lines[2]}" = "sample: $TMP/bad.npy: record 3: want float32 logits of shape (vocab) or (n, vocab), got int32 of 1 dims" ]
    "$TBIN/sample_test" stream "$TMP/" 1 999 3 > /dev/null
    cat "$TMP/r1.npy" > "$TMP/mixed.npy"
    "$TBIN/sample_test" stream "$TMP" 1 1000 3 > /dev/null
    cat "$TMP/r1.npy" >> "$TMP/mixed.npy"
    run "$BIN/sample" "$TMP/mixed.npy"
    [ "$status" -eq 1 ]
    [ "${lines[1]}" = "sample: $TMP/mixed.npy: record 2: vocab 1000, but earlier records had 999" ]
    printf 'garbage' > "$TMP/junk"
    run "$BIN/sample" "$TMP/junk"
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = "sample: $TMP/junk: record 1: npy: truncated record header" ]
}

@test "sample --history: ids outside the vocabulary or not ids are refused, exit 1" {
    "$TBIN/sample_test" stream "$TMP" 1 1000 3 > /dev/null
    echo '5 1000' > "$TMP/h"
    run "$BIN/sample" --history "$TMP/h" "$TMP/all.npy"
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = "sample: $TMP/h: id 1000 out of range [0, 1000)" ]
    echo '5 x' > "$TMP/h"
    run "$BIN/sample" --history "$TMP/h" "$TMP/all.npy"
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = "sample: $TMP/h: line 1: 'x' is not part of a token id" ]
}

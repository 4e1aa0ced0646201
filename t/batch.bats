#!/usr/bin/env bats
# The README's batch example (docs/batch/Makefile): a directory of prompts answered by
# make -j2, all sharing one system prompt whose KV is computed once; adding a prompt and
# re-running computes only the new answer.
load helper

@test "batch: make -j2 answers every prompt, reusing the system prompt's blocks" {
    mkdir -p "$TMP/job/prompts"
    cp docs/batch/Makefile "$TMP/job/"
    echo "What is a KV cache?" > "$TMP/job/prompts/a.txt"
    echo "Why quantize weights?" > "$TMP/job/prompts/b.txt"
    echo "What does prefill mean?" > "$TMP/job/prompts/c.txt"
    run make -C "$TMP/job" -j2 BIN="$BIN" N=8
    echo "$output"
    [ "$status" -eq 0 ]
    for p in a b c; do
        [ -s "$TMP/job/answers/$p.txt" ]
        grep -q ' 64 reused from the store' "$TMP/job/logs/$p.log"   # the system prompt's 4 blocks
    done
    grep -q ' 0 reused' "$TMP/job/logs/system.log"
    # a new prompt: only its answer is computed, the others are left as they were
    sum_before=$(cat "$TMP/job/answers/"*.txt | cksum)
    echo "What is an NPU?" > "$TMP/job/prompts/d.txt"
    run make -C "$TMP/job" -j2 BIN="$BIN" N=8
    [ "$status" -eq 0 ]
    [ "$(echo "$output" | grep -c 'tok --chat')" -eq 1 ]
    [ -s "$TMP/job/answers/d.txt" ]
    [ "$(cat "$TMP/job/answers/"[abc].txt | cksum)" = "$sum_before" ]
    # the same answers again from scratch: reuse does not change what is generated
    cp "$TMP/job/answers/a.txt" "$TMP/a.before"
    rm "$TMP/job/answers/a.txt"
    make -C "$TMP/job" BIN="$BIN" N=8 > /dev/null
    cmp "$TMP/a.before" "$TMP/job/answers/a.txt"
}

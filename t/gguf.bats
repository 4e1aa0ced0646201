#!/usr/bin/env bats
# gguf: a .gguf file as the model of every stage (lib/gguf.c, gguf_blocks.c, gguf_model.c).
# References we did not write (t/gen_gguf_fixtures.py made them): gguf-py 0.19's
# dequantize() of every tensor (sha256 of the f32 bytes), and llama.cpp 0.3.36's logits on
# the same files (CPU, one thread, F32 KV cache, no weight repacking).
load helper

G=$FIX/gguf

# cmp_logits OURS REF MAXD: max |OURS - REF| <= MAXD and every position's argmax equal.
cmp_logits() {
    run "$BIN/npycmp" "$1" "$2"
    echo "$output"
    [ "$status" -eq 0 ]
    local all=${lines[-1]}
    awk -v d="$(echo "$all" | awk '{print $4}')" -v t="$3" 'BEGIN { exit !(d <= t) }'
    [ "$(echo "$all" | awk '{print $8}')" = "12/12" ]
}

# bad CASE MESSAGE: embed on mixed.gguf broken as CASE (gguf_test mkbad) fails with MESSAGE.
bad() {
    "$TBIN/gguf_test" mkbad "$1" "$G/mixed.gguf" "$TMP/bad.gguf"
    run "$BIN/embed" -m "$TMP/bad.gguf" < "$G/mixed.ids"
    echo "$output"
    [ "$status" -eq 1 ]
    [ "$output" = "embed: $TMP/bad.gguf: $2" ]
}

@test "gguf: the reader lists header, counts and every tensor's type and dims" {
    run "$TBIN/gguf_test" info "$G/mixed.gguf"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "version 3, 20 keys, 24 tensors, alignment 32" ]
    [ "${lines[2]}" = "token_embd.weight Q6_K [256, 263]" ]
    [ "${lines[3]}" = "blk.0.attn_k.weight Q6_K [256, 128]" ]
    [ "${lines[7]}" = "blk.0.attn_q.weight Q4_K [256, 256]" ]
}

@test "gguf: every tensor (Q4_K Q6_K Q8_0 Q4_0 F32 F16 BF16) dequantizes bit-exactly as gguf-py's" {
    local n=0
    for f in mixed untied; do
        while read -r sum name type; do
            got=$("$TBIN/gguf_test" dequant "$G/$f.gguf" "$name" | sha256sum | cut -d' ' -f1)
            [ "$got" = "$sum" ] || { echo "$f $name $type: $got, gguf-py $sum"; return 1; }
            n=$((n + 1))
        done < "$G/$f.sha256"
    done
    [ "$n" -eq 49 ]
}

@test "gguf: each block type's matmul is the exact integer dot of its weight and quantized activations, scaled in f32" {
    for t in blk.0.attn_q.weight blk.0.attn_k.weight blk.0.attn_output.weight blk.1.attn_q.weight token_embd.weight; do
        run "$TBIN/gguf_test" dot "$G/mixed.gguf" "$t"
        echo "$t: $output"
        [ "$status" -eq 0 ]
    done
}

@test "gguf: a Q4_K/Q6_K/Q8_0/Q4_0/F32 mix, tied: logits within 1e-4 of llama.cpp's (max |logit| 64)" {
    "$BIN/prefill" -m "$G/mixed.gguf" -k m --all-logits < "$G/mixed.ids" > "$TMP/ours.npy"
    cmp_logits "$TMP/ours.npy" "$G/mixed.logits.npy" 1e-4
}

@test "gguf: the same one position at a time (decode's shape, n = 1)" {
    for id in $(cat "$G/mixed.ids"); do
        echo "$id" | "$BIN/prefill" -m "$G/mixed.gguf" -k one >> "$TMP/rows.npy"
    done
    run "$BIN/npycmp" "$TMP/rows.npy" "$G/mixed.rows.npy"
    echo "$output"
    [ "$status" -eq 0 ]
    local all=${lines[-1]}
    awk -v d="$(echo "$all" | awk '{print $4}')" 'BEGIN { exit !(d <= 1e-4) }'
    [ "$(echo "$all" | awk '{print $8}')" = "12/12" ]
}

@test "gguf: untied BF16/F16 matrices, Q8_0 token_embd and output.weight: within 0.1 of llama.cpp (it rounds activations to bf16/f16)" {
    run "$TBIN/gguf_test" open "$G/untied.gguf"
    [ "$output" = "ok vocab 263 dim 64 layers 2 tied 0" ]
    "$BIN/prefill" -m "$G/untied.gguf" -k u --all-logits < "$G/untied.ids" > "$TMP/ours.npy"
    cmp_logits "$TMP/ours.npy" "$G/untied.logits.npy" 0.1
    run "$BIN/npycmp" --tol 0.9999 "$TMP/ours.npy" "$G/untied.logits.npy"
    [ "$status" -eq 0 ]
}

@test "gguf: embed | prefill | sample | decode runs on a .gguf, and a session is refused by another model" {
    run bash -c "set -o pipefail; '$BIN/embed' -m '$G/mixed.gguf' < '$G/mixed.ids' | '$BIN/prefill' -m '$G/mixed.gguf' -k p | '$BIN/sample' --greedy | '$BIN/decode' -m '$G/mixed.gguf' -k p -n 4 --temp 0"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${#lines[@]}" -ge 1 ]
    run bash -c "echo 1 2 | '$BIN/prefill' -m '$G/untied.gguf' -k p"
    [ "$status" -eq 1 ]
}

@test "gguf: bad magic, version, absurd counts, duplicate keys" {
    bad magic "not a GGUF file (bad magic)"
    bad version "GGUF version 4 not supported (2 or 3)"
    bad count "4611686018427387904 tensors, more than the file's 713216 bytes can hold"
    bad dup "key general.architecture appears twice"
    printf 'GGU' > "$TMP/short.gguf"
    run "$BIN/prefill" -m "$TMP/short.gguf" -k s < "$G/mixed.ids"
    [ "$status" -eq 1 ]
    [ "$output" = "prefill: $TMP/short.gguf: not a GGUF file (bad magic)" ]
}

@test "gguf: a truncated file names the first tensor past the end" {
    head -c 400000 "$G/mixed.gguf" > "$TMP/t.gguf"
    run "$BIN/embed" -m "$TMP/t.gguf" < "$G/mixed.ids"
    [ "$status" -eq 1 ]
    [ "$output" = "embed: $TMP/t.gguf: tensor blk.0.ffn_gate.weight: bytes [376000, 412864) of the data section past the end of the file (394048 bytes of data): truncated" ]
    head -c 100 "$G/mixed.gguf" > "$TMP/t.gguf"
    run "$BIN/embed" -m "$TMP/t.gguf" < "$G/mixed.ids"
    [ "$output" = "embed: $TMP/t.gguf: 20 metadata keys, more than the file's 100 bytes can hold" ]
}

@test "gguf: an unsupported type, a moved tensor, dims that disagree with the metadata" {
    bad type:blk.1.attn_q.weight "tensor blk.1.attn_q.weight: type IQ4_NL not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)"
    bad type:blk.0.attn_norm.weight "tensor blk.0.attn_norm.weight: type I32 not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)"
    bad offset:blk.1.attn_q.weight "tensor blk.1.attn_q.weight: offset 540128, expected 540096"
    bad meta:qwen3.feed_forward_length=512 "tensor blk.0.ffn_gate.weight: dims [256, 256], metadata wants [256, 512] (GGUF order, innermost first)"
    bad meta:qwen3.block_count=3 "tensor blk.2.attn_norm.weight: missing"
    bad meta:qwen3.attention.head_count=3 "metadata qwen3.attention.head_count: 3 is not a multiple of head_count_kv 2"
}

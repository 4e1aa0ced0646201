#!/usr/bin/env bats
# gguf: a .gguf file as the model of every stage (lib/gguf.c, gguf_blocks.c, gguf_model.c).
# References we did not write (t/gen_gguf_fixtures.py made them): gguf-py 0.19's
# dequantize() of every tensor (sha256 of the f32 bytes), and llama.cpp 0.3.36's logits on
# the same files (CPU, one thread, F32 KV cache, no weight repacking).
load helper

G=$FIX/gguf

setup_file() {
    # Qwen3's real vocabulary as llama.cpp's converter writes it (1.3 MB compressed)
    if command -v xz > /dev/null; then xz -dc "$FIX/gguf/vocab.gguf.xz" > "$BATS_FILE_TMPDIR/vocab.gguf"; fi
}

need_vocab() {
    [ -s "$BATS_FILE_TMPDIR/vocab.gguf" ] || skip "xz missing (make deps installs xz-utils)"
    V=$BATS_FILE_TMPDIR/vocab.gguf
}

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
    [ "${lines[0]}" = "version 3, 20 keys, 13 tensors, alignment 32" ]
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
    [ "$n" -eq 38 ]
}

@test "gguf: each block type's matmul is the exact integer dot of its weight and quantized activations, scaled in f32" {
    for t in blk.0.attn_q.weight blk.0.attn_k.weight blk.0.attn_output.weight blk.0.ffn_up.weight token_embd.weight; do
        run "$TBIN/gguf_test" dot "$G/mixed.gguf" "$t"
        echo "$t: $output"
        [ "$status" -eq 0 ]
    done
}

@test "gguf: a Q4_K/Q6_K/Q8_0/Q4_0/F32 mix, tied: logits within 1e-4 of llama.cpp's" {
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
    [[ "$output" == "prefill: p: made by a different model ("* ]]   # fingerprints: BLAKE2b of the metadata
}

@test "gguf: version 2 (the same layout) reads as version 3" {
    "$TBIN/gguf_test" mkbad v2 "$G/mixed.gguf" "$TMP/v2.gguf"
    run "$TBIN/gguf_test" info "$TMP/v2.gguf"
    [ "${lines[0]}" = "version 2, 20 keys, 13 tensors, alignment 32" ]
    "$BIN/prefill" -m "$TMP/v2.gguf" -k v --all-logits < "$G/mixed.ids" > "$TMP/ours.npy"
    cmp_logits "$TMP/ours.npy" "$G/mixed.logits.npy" 1e-4
}

@test "gguf: bad magic, version, absurd counts and lengths, duplicate keys, unknown value types" {
    bad magic "not a GGUF file (bad magic)"
    bad version "GGUF version 4 not supported (2 or 3)"
    bad count "4611686018427387904 tensors, more than the file's 456064 bytes can hold"
    bad dup "key general.architecture appears twice"
    bad keylen "key at byte 24: length 1152921504606846976, only 456032 bytes left"
    bad vtype "key general.architecture: unknown value type 13"
    printf 'GGU' > "$TMP/short.gguf"
    run "$BIN/prefill" -m "$TMP/short.gguf" -k s < "$G/mixed.ids"
    [ "$status" -eq 1 ]
    [ "$output" = "prefill: $TMP/short.gguf: not a GGUF file (bad magic)" ]
}

@test "gguf: a truncated file names the first tensor past the end" {
    head -c 300000 "$G/mixed.gguf" > "$TMP/t.gguf"
    run "$BIN/embed" -m "$TMP/t.gguf" < "$G/mixed.ids"
    [ "$status" -eq 1 ]
    [ "$output" = "embed: $TMP/t.gguf: tensor blk.0.attn_v.weight: bytes [191168, 322240) of the data section past the end of the file (294688 bytes of data): truncated" ]
    head -c 100 "$G/mixed.gguf" > "$TMP/t.gguf"
    run "$BIN/embed" -m "$TMP/t.gguf" < "$G/mixed.ids"
    [ "$output" = "embed: $TMP/t.gguf: 20 metadata keys, more than the file's 100 bytes can hold" ]
}

@test "gguf: an unsupported type, a moved tensor, dims that disagree with the metadata" {
    bad type:blk.0.ffn_up.weight "tensor blk.0.ffn_up.weight: type IQ4_NL not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)"
    bad type:blk.0.attn_norm.weight "tensor blk.0.attn_norm.weight: type I32 not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)"
    bad offset:blk.0.ffn_up.weight "tensor blk.0.ffn_up.weight: offset 413920, expected 413888"
    bad meta:qwen3.feed_forward_length=512 "tensor blk.0.ffn_gate.weight: dims [256, 256], metadata wants [256, 512] (GGUF order, innermost first)"
    bad meta:qwen3.block_count=2 "tensor blk.1.attn_norm.weight: missing"
    bad meta:qwen3.attention.head_count=3 "metadata qwen3.attention.head_count: 3 is not a multiple of head_count_kv 2"
}

@test "gguf: tok -m FILE.gguf: the public corpus (2,233 documents) encodes exactly as HF tokenizers" {
    need_vocab
    "$BIN/tok" -m "$V" --jsonl < "$FIX/tok_public.jsonl" > "$TMP/ours.jsonl"
    sed -E 's/^\{"ids": \[(.*)\]\}$/\1/; s/, /,/g' "$TMP/ours.jsonl" > "$TMP/ours.ids"
    sed -E 's/.*"ids":\[([^]]*)\]\}$/\1/' "$FIX/tok_public.jsonl" > "$TMP/ref.ids"
    [ "$(wc -l < "$TMP/ref.ids")" -eq 2233 ]
    run diff "$TMP/ref.ids" "$TMP/ours.ids"
    [ "$status" -eq 0 ] || { echo "$output" | head -5; false; }
    run "$BIN/tok" -m "$V" 'x<think>y' '<|fim_prefix|>ab' "$(printf 'a<|im_end|>\x27s')"
    [ "${lines[0]}" = "87 151667 88" ]
    [ "${lines[1]}" = "151659 370" ]
    [ "${lines[2]}" = "64 151645 594" ]
}

@test "gguf: detok -m FILE.gguf: the public corpus decodes exactly as HF tokenizers" {
    need_vocab
    "$BIN/detok" -m "$V" --jsonl < "$FIX/tok_public.jsonl" > "$TMP/ours.jsonl"
    run cmp "$FIX/detok_public.jsonl" "$TMP/ours.jsonl"
    [ "$status" -eq 0 ]
    run bash -c "echo 151935 | '$BIN/detok' -m '$V'"     # a [PAD] id of the GGUF: not a token
    [ "$status" -eq 1 ]
}

@test "gguf: detok --skip-special takes llama.cpp's CONTROL tokens as special (<|fim_prefix|> too, unlike HF)" {
    need_vocab
    run bash -c "echo '151644 872 198 151667 9707 151659 151645 151643' | '$BIN/detok' -m '$V' -s"
    [ "$output" = "$(printf 'user\n<think>Hello')" ]
}

@test "gguf: a small byte vocabulary with merges round-trips through tok and detok" {
    run bash -c "set -o pipefail; '$BIN/tok' -m '$G/mixed.gguf' 'in the thin hen' | '$BIN/detok' -m '$G/mixed.gguf'"
    [ "$status" -eq 0 ]
    [ "$output" = "in the thin hen" ]
    run "$BIN/tok" -m "$G/mixed.gguf" ' the'
    [ "$output" = "258" ]           # the merges "Ġ t", "h e", "Ġt he": one token
}

@test "gguf: a checkpoint converted by llama.cpp's convert_hf_to_gguf.py gives the safetensors' logits exactly" {
    local conv=$HOME/.cache/qwen3-pipe/llama.cpp/llama_cpp_python-0.3.36/vendor/llama.cpp/convert_hf_to_gguf.py
    [ -x /work/venv/bin/python ] && [ -f "$conv" ] && /work/venv/bin/python -c 'import torch, transformers' 2> /dev/null ||
        skip "needs llama.cpp's converter and a Python with torch and transformers (bench/llama_build.sh, /work/venv)"
    [ -f build/models/tiny-f32/config.json ] || skip "make models builds build/models/tiny-f32"
    /work/venv/bin/python "$conv" build/models/tiny-f32 --outfile "$TMP/t.gguf" --outtype f32 > /dev/null 2>&1
    run bash -c "'$BIN/tok' 'The quick brown fox' | '$BIN/prefill' -m build/models/tiny-f32 -k a --all-logits > '$TMP/a.npy'"
    [ "$status" -eq 0 ]
    run bash -c "'$BIN/tok' -m '$TMP/t.gguf' 'The quick brown fox' | '$BIN/prefill' -m '$TMP/t.gguf' -k b --all-logits > '$TMP/b.npy'"
    [ "$status" -eq 0 ]
    run "$BIN/npycmp" "$TMP/a.npy" "$TMP/b.npy"
    echo "$output"
    [ "$(echo "${lines[-1]}" | awk '{print $4}')" = "0.0000e+00" ]
}

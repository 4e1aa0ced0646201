#!/usr/bin/env bats
# quant: the quantization schemes of lib/quant.h. Every ISA variant's quantized matmul
# against the generic one; 8da4w against torchao itself (t/gen_8da4w_fixture.py: the
# int4/int8 values and scales exactly, logits within 1e-5 of max|logit|); each scheme's
# logits against the unquantized model's; the cache file built once and shared.
load helper

@test "quant: kernels of every variant against generic, round trips, activation quantizer" {
    run "$TBIN/quant_test" kernels
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == "variants: generic"* ]]
    [[ "${lines[-1]}" == *" checks, 0 failures" ]]
}

@test "quant: 8da4w equals torchao's weights and scales exactly and its fake-quant logits within 1e-5" {
    run "$TBIN/quant_test" fixture "$FIX/quant" "$PWD/build/models/tiny-f32" 1e-5
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "${lines[-1]}" == *" checks, 0 failures" ]]
}

@test "quant: 8da8w equals torchao's int8 weights and scales exactly and its fake-quant logits within 1e-5" {
    run "$TBIN/quant_test" fixture "$FIX/quant" "$PWD/build/models/tiny-f32" 1e-5 8da8w
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"lm_head: 16384 values, 256 scales equal to torchao's: yes"* ]]
    [[ "${lines[-1]}" == *" checks, 0 failures" ]]
}

# Random-weight models are the hard case for 4 bits (no structure to keep): the worst
# row cosines measured on 0.6b-2l were q8 0.99990, q4 0.9735, q4g128 0.9715, 8da4w 0.9681,
# 8da8w 0.99949.
@test "quant: q8 logits against the unquantized model, cosine >= 0.9995 (0.6b-2l, tiny-untied)" {
    for m in 0.6b-2l tiny-untied; do
        run "$TBIN/quant_test" logits "$PWD/build/models/$m" q8 0.9995
        echo "$output"
        [ "$status" -eq 0 ]
    done
}

@test "quant: q4, q4g128, 8da4w logits against the unquantized model, cosine >= 0.96 (0.6b-2l)" {
    for s in q4 q4g128 8da4w; do
        run "$TBIN/quant_test" logits "$PWD/build/models/0.6b-2l" $s 0.96
        echo "$output"
        [ "$status" -eq 0 ]
    done
}

@test "quant: 8da8w logits against the unquantized model, cosine >= 0.999 (0.6b-2l)" {
    run "$TBIN/quant_test" logits "$PWD/build/models/0.6b-2l" 8da8w 0.999
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "quant: bf16 of an f32 model, cosine >= 0.99995; bf16 of a bf16 model is the model itself, no file" {
    export QWEN_CACHE=$TMP/cache
    run "$TBIN/quant_test" logits "$PWD/build/models/tiny-f32" bf16 0.99995
    echo "$output"
    [ "$status" -eq 0 ]
    rm -rf "$QWEN_CACHE"
    run "$TBIN/quant_test" logits "$PWD/build/models/tiny-untied" bf16 0.9999999
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$(ls "$QWEN_CACHE" | grep -c '^quant-')" -eq 0 ]
}

@test "quant: bf16a (x rounded to bf16 too) cosine >= 0.9999; bf16's cache file, no file for a bf16 model; its own sessions" {
    export QWEN_CACHE=$TMP/cache
    for m in tiny tiny-untied 0.6b-2l; do   # measured worst row 0.999984 (bf16 models)
        run "$TBIN/quant_test" logits "$PWD/build/models/$m" bf16a 0.9999
        echo "$output"
        [ "$status" -eq 0 ]
    done
    [ "$(ls "$QWEN_CACHE" | grep -c '^quant-')" -eq 0 ]
    run "$TBIN/quant_test" logits "$PWD/build/models/tiny-f32" bf16 0.99995
    [ "$status" -eq 0 ]
    run "$TBIN/quant_test" logits "$PWD/build/models/tiny-f32" bf16a 0.9999   # measured 0.999966
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$(ls "$QWEN_CACHE" | grep -c '^quant-.*\.bin$')" -eq 1 ]
    # the K/V of x rounded to bf16 are not the model's own: a session of one is not the other's
    export QWEN_KVSTORE=$TMP/kv
    echo "9707 11" | "$BIN/prefill" -m "$PWD/build/models/tiny" --quant bf16a -k a > /dev/null
    run bash -c "echo 1879 | '$BIN/prefill' -m '$PWD/build/models/tiny' -k a"
    [ "$status" -eq 1 ]
    [[ "$output" == "prefill: a: made by a different model ("* ]]
    echo 1879 | "$BIN/prefill" -m "$PWD/build/models/tiny" --quant bf16a -k a > /dev/null
}

@test "quant: one cache file per scheme, reused; a wrong file is refused by name; unknown schemes listed" {
    export QWEN_CACHE=$TMP/cache
    run "$TBIN/quant_test" logits "$PWD/build/models/tiny-f32" 8da4w 0.9
    [ "$status" -eq 0 ]
    [ "$(ls "$QWEN_CACHE" | grep -c '^quant-.*\.bin$')" -eq 1 ]
    [ "$(ls "$QWEN_CACHE" | grep -c 'tmp')" -eq 0 ]
    f=$(ls "$QWEN_CACHE"/quant-*.bin)
    before=$(stat -c %Y.%s "$f")
    run "$TBIN/quant_test" logits "$PWD/build/models/tiny-f32" 8da4w 0.9
    [ "$status" -eq 0 ]
    [ "$(stat -c %Y.%s "$f")" = "$before" ]
    head -c 100 /dev/zero >"$f"
    run "$TBIN/quant_test" logits "$PWD/build/models/tiny-f32" 8da4w 0.9
    [ "$status" -eq 1 ]
    [[ "$output" == *"not the quantized weights of this model"* ]]
    run "$TBIN/quant_test" logits "$PWD/build/models/tiny-f32" q3 0.9
    [ "$status" -eq 1 ]
    [[ "$output" == *"quantization 'q3': not one of none, bf16, bf16a, q8, q4, q4g128, 8da4w, 8da8w"* ]]
}

@test "quant: panels (q4, q8, 8da8w, 8da4w): one file built once and reused, rebuilt when damaged, in memory when unwritable; the same logits and tokens each way" {
    m=$PWD/build/models/0.6b-2l
    run_q() { # SCHEME SESSION OUT: prefill 5 ids, its logits to OUT, then 3 greedy tokens
        echo "9707 11 1879 374 264" | "$BIN/prefill" -m "$m" --quant "$1" -k "$1-$2" > "$3" &&
            "$BIN/sample" --greedy < "$3" | "$BIN/decode" -m "$m" --quant "$1" -k "$1-$2" -n 3 --temp 0 --stop 999999 > "$3.ids"
    }
    for q in q4 q8 8da8w 8da4w; do
        export QWEN_CACHE=$TMP/cache-$q
        run_q $q a "$TMP/l1"
        [ "$(ls "$QWEN_CACHE" | grep -c '^panels-.*\.bin$')" -eq 1 ]
        [ "$(ls "$QWEN_CACHE" | grep -c 'tmp')" -eq 0 ]
        f=$(ls "$QWEN_CACHE"/panels-*.bin)
        size=$(stat -c %s "$f")
        before=$(stat -c %i "$f")
        [ "$(wc -l < "$TMP/l1.ids")" -eq 3 ]
        run_q $q b "$TMP/l2"
        [ "$(stat -c %i "$f")" = "$before" ]
        cmp "$TMP/l1" "$TMP/l2"
        cmp "$TMP/l1.ids" "$TMP/l2.ids"
        head -c 100 /dev/zero > "$f"   # damaged: built again, whole
        run_q $q c "$TMP/l3"
        [ "$(stat -c %s "$f")" = "$size" ]
        cmp "$TMP/l1" "$TMP/l3"
        cmp "$TMP/l1.ids" "$TMP/l3.ids"
        rm "$f" && mkdir "$f"          # cannot be written: the panels are built in memory
        run_q $q d "$TMP/l4"
        [ -d "$f" ]
        cmp "$TMP/l1" "$TMP/l4"
        cmp "$TMP/l1.ids" "$TMP/l4.ids"
        [ "$(ls "$QWEN_CACHE" | grep -c 'tmp')" -eq 0 ]
    done
}

@test "quant: panels: a checkpoint of the same shapes with other values gets its own panels file" {
    export QWEN_CACHE=$TMP/cache
    cp -r "$PWD/build/models/tiny" "$TMP/tiny2"
    # layer 0's q_proj, first value: 8.0 (bf16 0x4100)
    python3 - "$TMP/tiny2/model.safetensors" <<'PY'
import json, struct, sys
with open(sys.argv[1], "r+b") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    h = json.loads(f.read(n))
    f.seek(8 + n + h["model.layers.0.self_attn.q_proj.weight"]["data_offsets"][0])
    f.write(struct.pack("<H", 0x4100))
PY
    for m in "$PWD/build/models/tiny" "$TMP/tiny2"; do
        echo "9707 11 1879 374 264" | "$BIN/prefill" -m "$m" --quant q4 -k "s$(basename "$m")" > "$TMP/$(basename "$m").logits"
    done
    [ "$(ls "$QWEN_CACHE" | grep -c '^panels-.*\.bin$')" -eq 2 ]
    ! cmp -s "$TMP/tiny.logits" "$TMP/tiny2.logits"
}

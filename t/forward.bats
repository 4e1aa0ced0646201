#!/usr/bin/env bats
# forward: the CPU forward pass against HF transformers' Qwen3ForCausalLM (float32) on the
# seeded models of `make models` (make test builds them), through t/forward_test: logits
# of every prefill and decode row, greedy ids, YaRN past its original context; and the
# stages against each other (prefill + decode, split prefills, small max_batch).
# t/gen_forward_reference.py made t/fixtures/forward and says what each row keeps.
load helper

MODELS=${MODELS:-$PWD/build/models}
FWD=$FIX/forward

# fixture NAME: every prompt of model NAME within its tolerances, every greedy id the same.
fixture() {
    [ -f "$MODELS/$1/config.json" ] || { echo "no $MODELS/$1: run make models"; return 1; }
    run "$TBIN/forward_test" fixture "$FWD" "$MODELS" "$1"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "${lines[-1]}" =~ ^[0-9]+\ rows,\ 0\ failures$ ]]
}

stages() {
    run "$TBIN/forward_test" stages "$MODELS/$1"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = "0 failures" ]
}

@test "forward: the generator still writes the models the reference was computed from" {
    run bash -c "cd '$MODELS' && sha256sum --quiet -c '$FWD/SHA256SUMS'"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "forward: tiny f32 against HF: cosine >= 0.99999, max|d| <= 1e-4 max|logit|, greedy ids" {
    fixture tiny-f32
}

@test "forward: tiny bf16 (the default model) against HF, to the same bar (both compute in f32)" {
    fixture tiny
}

@test "forward: Qwen3-0.6B's dimensions, 2 layers, bf16, against HF (one row over the whole vocabulary)" {
    fixture 0.6b-2l
}

@test "forward: YaRN (factor 4, original 32) over 100 positions against HF" {
    fixture tiny-yarn
}

@test "forward: untied lm_head against HF" {
    fixture tiny-untied
}

@test "forward: prefill + decode, split prefills, max_batch 7 and last-row logits agree with one prefill" {
    stages tiny-f32
    stages tiny-yarn
    stages 0.6b-2l
}

# bf16a rounds x to bf16 before every BF16 matmul (llama.cpp's BF16 arithmetic): measured
# against HF's f32 logits, 1-cos <= 5e-5 and max|d| <= 8.8e-3 max|logit| (tiny-yarn); we ask
# 1e-4 and 2e-2. One near tie (tiny-untied's code prompt, row 35) goes the other way.
@test "forward: bf16a (x rounded to bf16) against HF f32: cosine >= 0.9999, max|d| <= 2e-2 max|logit|" {
    run "$TBIN/forward_test" --quant bf16a --cos 0.9999 --maxrel 2e-2 fixture "$FWD" "$MODELS"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "${lines[-1]}" =~ ^[0-9]+\ rows,\ 0\ failures$ ]]
    run "$TBIN/forward_test" --quant bf16a --cos 0.99999 --maxrel 1e-4 fixture "$FWD" "$MODELS" tiny
    [ "$status" -eq 1 ]   # and not to the f32 bar: the rounding of x is there
    [[ "${lines[-1]}" =~ ^137\ rows,\ [1-9][0-9]*\ failures$ ]]
}

@test "forward: bf16a stages agree (prefill + decode, split prefills, max_batch 7 == one prefill)" {
    run "$TBIN/forward_test" --quant bf16a stages "$MODELS/0.6b-2l"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = "0 failures" ]
}

@test "forward: a model that is not the reference's fails the comparison" {
    mkdir "$TMP/m"
    ln -s "$MODELS/tiny-yarn" "$TMP/m/tiny-f32"   # same weights, other RoPE
    run "$TBIN/forward_test" fixture "$FWD" "$TMP/m" tiny-f32
    [ "$status" -eq 1 ]
    [[ "${lines[-1]}" =~ ^170\ rows,\ [1-9][0-9]*\ failures$ ]]
}

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

@test "forward: a model that is not the reference's fails the comparison" {
    mkdir "$TMP/m"
    ln -s "$MODELS/tiny-yarn" "$TMP/m/tiny-f32"   # same weights, other RoPE
    run "$TBIN/forward_test" fixture "$FWD" "$TMP/m" tiny-f32
    [ "$status" -eq 1 ]
    [[ "${lines[-1]}" =~ ^170\ rows,\ [1-9][0-9]*\ failures$ ]]
}

#!/usr/bin/env bats
# torchao's safetensors export (lib/torchao.h) against torchao itself: t/gen_torchao_export.py
# quantized seeded Qwen3s through transformers' TorchAoConfig (torchao 0.18: the 8da4w
# recipe, one with what the recipe does not give, and int8 per-row linears with int8
# activations) and saved them with
# save_pretrained(safe_serialization=True); it recorded torchao's dequantized weights,
# single matmuls and the quantized model's logits.
load helper

TAO=$FIX/torchao

@test "torchao: the 8da4w export: weights bit for bit torchao's dequantize(), run by the 8da4w/e8 kernels; logits within 1e-5" {
    run "$TBIN/torchao_test" fixture "$TAO" model
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$(grep -c "equal to torchao's dequantize(): yes" <<<"$output")" -eq 5 ]
    [ "${lines[0]}" = "embed_tokens (e8): 2048 values equal to torchao's dequantize(): yes" ]
    [[ "${lines[1]}" == "layers.0.q_proj (8da4w): "* ]]
    [ "$(grep -c "one matmul within .* of torchao's F.linear" <<<"$output")" -eq 3 ]
    [[ "$output" == *"(tolerance 1e-05: "* ]]
    [[ "${lines[-1]}" == *" checks, 0 failures" ]]
}

@test "torchao: int8 per-row linears with int8 activations: bit for bit weights, run by the 8da8w kernels; logits within 1e-5" {
    run "$TBIN/torchao_test" fixture "$TAO" d8
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$(grep -c "equal to torchao's dequantize(): yes" <<<"$output")" -eq 5 ]
    [ "${lines[0]}" = "embed_tokens (e8): 2048 values equal to torchao's dequantize(): yes" ]
    [ "$(grep -c "^[a-z_.0-9]* (8da8w): " <<<"$output")" -eq 7 ]
    [ "$(grep -c "(8da8w): one matmul within .* of torchao's F.linear" <<<"$output")" -eq 3 ]
    [[ "$output" == *"(tolerance 1e-05: "* ]]
    [[ "${lines[-1]}" == *" checks, 0 failures" ]]
}

# zero points not 0, groups of 64, weight-only int4 and int8 linears: torchao.c's own math
# and the q8 kernel (w8a16: within 1e-5 past what its int16 activations' rounding can move). This model's logits are ill-conditioned (torchao's own move by 1e-2
# under 1e-6 of input noise: int8 rounding flips), so the tight checks are per matmul.
@test "torchao: asymmetric, group 64 and weight-only tensors: bit for bit weights, each matmul within 1e-5 of F.linear" {
    run "$TBIN/torchao_test" fixture "$TAO" asym
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$(grep -c "equal to torchao's dequantize(): yes" <<<"$output")" -eq 5 ]
    [[ "$output" == *"layers.0.q_proj (fmt): one matmul within "* ]]
    [[ "$output" == *"layers.1.down_proj (fmt): one matmul within "* ]]
    [[ "$output" == *"lm_head (q8): one matmul within "* ]]
    [[ "${lines[-1]}" == *" checks, 0 failures" ]]
}

@test "torchao: the pipeline runs an export as it is; --quant on it is refused" {
    run bash -c "set -o pipefail; echo '1 7 42 100 511 3' | '$BIN/embed' -m '$TAO/model' | '$BIN/prefill' -m '$TAO/model' -k t |
        '$BIN/sample' --greedy | '$BIN/decode' -m '$TAO/model' -k t -n 6 --temp 0 | wc -l"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" -ge 1 ]
    run "$BIN/prefill" -m "$TAO/model" --quant 8da4w -k u <<<"1 2 3"
    [ "$status" -eq 1 ]
    [[ "$output" == *"is a torchao checkpoint, already in its own format" ]]
}

@test "torchao: a missing _weight_scale, a wrong qdata shape and a missing file are named, exit 1" {
    run "$BIN/prefill" -m "$TAO/no-scale" -k b <<<"1"
    [ "$status" -eq 1 ]
    [ "$output" = "prefill: tensor model.embed_tokens._weight_scale: missing" ]
    mkdir "$TMP/m"
    cp "$TAO/model/model.safetensors" "$TMP/m/"
    sed 's/"intermediate_size": 256/"intermediate_size": 512/' "$TAO/model/config.json" >"$TMP/m/config.json"
    run "$BIN/embed" -m "$TMP/m" <<<"1"
    [ "$status" -eq 1 ]
    [ "$output" = "embed: tensor model.layers.0.mlp.gate_proj._weight_qdata: I8 [256, 128], config wants I8 [512, 128]" ]
    rm "$TMP/m/model.safetensors"
    run "$BIN/embed" -m "$TMP/m" <<<"1"
    [ "$status" -eq 1 ]
    [[ "$output" == "embed: "*"model.safetensors"* ]]
}

@test "torchao: a tied export whose int8 per-row embedding is also the lm_head runs (as w8a16), close to its dequantized BF16 copy" {
    mkdir "$TMP/tied"
    python3 "$PWD/t/torchao/tie.py" "$TAO/model" "$TMP/tied"
    run bash -c "set -o pipefail; echo '1 2 3 4 5 6 7' | '$BIN/embed' -m '$TMP/tied' | '$BIN/prefill' -m '$TMP/tied' -k a --all-logits > '$TMP/a.npy'"
    [ "$status" -eq 0 ]
    "$BIN/model" dequant "$TMP/tied" "$TMP/bf16"
    echo '1 2 3 4 5 6 7' | "$BIN/embed" -m "$TMP/bf16" | "$BIN/prefill" -m "$TMP/bf16" -k b --all-logits > "$TMP/b.npy"
    # the same integers through int8 activations (the lm_head: int16, w8a16) vs bf16 weights and f32 activations
    run "$BIN/npycmp" --tol 0.999 "$TMP/a.npy" "$TMP/b.npy"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "${lines[-1]}" == *" 7/7" ]]
}

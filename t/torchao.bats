#!/usr/bin/env bats
# torchao's safetensors export (lib/torchao.h) against torchao itself: t/gen_torchao_export.py
# quantized a seeded Qwen3 with the 8da4w recipe through transformers' TorchAoConfig
# (torchao 0.18) and saved it with save_pretrained(safe_serialization=True); it recorded
# torchao's dequantized weights and the quantized model's logits.
load helper

TAO=$FIX/torchao

@test "torchao: export weights bit for bit torchao's dequantize(); logits within 1e-5 of max|logit| of its forward" {
    run "$TBIN/torchao_test" fixture "$TAO"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$(grep -c "equal to torchao's dequantize(): yes" <<<"$output")" -eq 5 ]
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

#!/usr/bin/env bats
# MLX affine checkpoints (lib/mlx.h) against MLX itself: t/gen_mlx_fixtures.py quantized a
# seeded Qwen3 with mlx 0.32.4 / mlx-lm 0.32.2 (every width 2/3/4/5/6/8, groups 32/64/128,
# one module left bf16) and recorded mx.dequantize's values, mlx-lm's logits and the
# bytes of mlx-lm's dequantize_model. `model dequant` writes the BF16 directory.
load helper

MLX=$FIX/mlx

@test "mlx: weights bit for bit mx.dequantize's; logits within 1e-5 of mlx-lm's f32 forward, cosine >= 0.998 of its bf16 one" {
    run "$TBIN/mlx_test" fixture "$MLX"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$(grep -c "equal to mx.dequantize's: yes" <<<"$output")" -eq 9 ]
    [[ "${lines[-1]}" == *" checks, 0 failures" ]]
}

@test "mlx: float16 scales (f16(f16(s*q)+b) bit for bit), an untied 8-bit lm_head, a 3-bit embedding" {
    run "$TBIN/mlx_test" untied "$MLX"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$(grep -c "equal to mx.dequantize's: yes" <<<"$output")" -eq 3 ]
    [[ "${lines[-1]}" == *" checks, 0 failures" ]]
}

@test "mlx: model dequant writes mlx-lm's dequantized tensors byte for byte, as a plain BF16 HF directory" {
    run "$BIN/model" dequant "$MLX/model" "$TMP/bf16"
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    run grep -q quantization "$TMP/bf16/config.json"   # (a bare `! cmd` fails no test)
    [ "$status" -ne 0 ]
    run "$TBIN/mlx_test" fixture "$MLX" "$TMP/bf16"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"24 of 24 tensors byte for byte mlx-lm's dequantize_model"* ]]
    [[ "${lines[-1]}" == *" checks, 0 failures" ]]
}

@test "mlx: the pipeline runs an MLX model; greedy tokens equal its BF16 directory's" {
    "$BIN/model" dequant "$MLX/model" "$TMP/bf16"
    k=0
    for m in "$MLX/model" "$TMP/bf16"; do
        k=$((k + 1))
        run bash -c "set -o pipefail; echo '1 7 42 100 511 3' | '$BIN/embed' -m '$m' | '$BIN/prefill' -m '$m' -k $k |
            '$BIN/sample' --greedy | '$BIN/decode' -m '$m' -k $k -n 6 --temp 0 | tr '\n' ' '"
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(wc -w <<<"$output")" -ge 2 ]
        echo "$output" >>"$TMP/tokens"
    done
    [ "$(sed -n 1p "$TMP/tokens")" = "$(sed -n 2p "$TMP/tokens")" ]
}

@test "mlx: bad packings are refused naming the tensor: bits that don't divide, shapes vs config, rows, biases" {
    run "$BIN/prefill" -m "$MLX/bad-bits" -k b <<<"1"
    [ "$status" -eq 1 ]
    [ "$output" = "prefill: tensor model.embed_tokens.weight: [8, 7] packs 224 bits per row of 128 elements: not 2, 3, 4, 5, 6 or 8 bits each" ]
    run "$BIN/prefill" -m "$MLX/bad-config" -k b <<<"1"
    [ "$status" -eq 1 ]
    [ "$output" = "prefill: tensor model.embed_tokens.weight: shapes give 8 bits in groups of 64, config.json quantization says 4 bits, group_size 64" ]
    run "$BIN/prefill" -m "$MLX/bad-rows" -k b <<<"1"
    [ "$status" -eq 1 ]
    [ "$output" = "prefill: tensor model.embed_tokens.weight: U32 [7, 16], want U32 [8, in*bits/32] with in = 128" ]
    run "$BIN/prefill" -m "$MLX/bad-biases" -k b <<<"1"
    [ "$status" -eq 1 ]
    [ "$output" = "prefill: tensor model.embed_tokens.biases: BF16 [8, 4], want BF16 [8, 2] like model.embed_tokens.scales" ]
    run "$BIN/prefill" -m "$MLX/no-biases" -k b <<<"1"
    [ "$status" -eq 1 ]
    [ "$output" = "prefill: tensor model.embed_tokens.biases: missing" ]
}

@test "mlx: per-module config entries (dicts, false, true) are checked against the files; other modes and --quant refused" {
    cp -r "$MLX/model" "$TMP/m"
    # layers.0 q_proj is 2 bits in groups of 32: say 3
    sed -i '0,/"bits": 2/s//"bits": 3/' "$TMP/m/config.json"
    run "$BIN/embed" -m "$TMP/m" <<<"1"
    [ "$status" -eq 1 ]
    [ "$output" = "embed: tensor model.layers.0.self_attn.q_proj.weight: shapes give 2 bits in groups of 32, config.json quantization.model.layers.0.self_attn.q_proj says 3 bits, group_size 32" ]
    cp "$MLX/model/config.json" "$TMP/m/config.json"
    sed -i 's/"model.layers.1.self_attn.v_proj": false/"model.layers.1.self_attn.k_proj": false/' "$TMP/m/config.json"
    run "$BIN/embed" -m "$TMP/m" <<<"1"
    [ "$status" -eq 1 ]
    [ "$output" = "embed: tensor model.layers.1.self_attn.k_proj.scales: present, but config.json says model.layers.1.self_attn.k_proj is not quantized" ]
    # mlx-lm 0.24 wrote true for a module quantized as the default
    cp "$MLX/model/config.json" "$TMP/m/config.json"
    sed -i 's/"model.layers.1.self_attn.v_proj": false/"model.layers.1.self_attn.k_proj": true/' "$TMP/m/config.json"
    run bash -c "echo 1 | '$BIN/embed' -m '$TMP/m' | wc -c"
    [ "$status" -eq 0 ]
    [ "$output" -gt 0 ]
    cp "$MLX/model/config.json" "$TMP/m/config.json"
    sed -i 's/"mode": "affine"/"mode": "mxfp4"/' "$TMP/m/config.json"
    run "$BIN/embed" -m "$TMP/m" <<<"1"
    [ "$status" -eq 1 ]
    [ "$output" = "embed: config.json: quantization: mode mxfp4 not supported (only affine)" ]
    run "$BIN/embed" -m "$MLX/model" --quant q8 <<<"1"
    [ "$status" -eq 1 ]
    [[ "$output" == *"is a mlx checkpoint, already in its own format" ]]
}

@test "mlx: model dequant: a bad source or an unwritable destination is one line, exit 1; no arguments, exit 2" {
    run "$BIN/model" dequant "$MLX/bad-bits" "$TMP/out"
    [ "$status" -eq 1 ]
    [ "$output" = "model: $MLX/bad-bits: tensor model.embed_tokens.weight: [8, 7] packs 224 bits per row of 128 elements: not 2, 3, 4, 5, 6 or 8 bits each" ]
    run "$BIN/model" dequant "$MLX/model" "$TMP/no/such/dir"
    [ "$status" -eq 1 ]
    [ "$output" = "model: dequant: $TMP/no/such/dir: No such file or directory" ]
    run "$BIN/model" dequant "$MLX/model"
    [ "$status" -eq 2 ]
    [ "${lines[0]}" = "model: dequant: want SRC OUT" ]
}

#!/usr/bin/env bats
# model: lib/st (safetensors) and lib/model (config.json, weights) through t/st_test,
# over files it writes itself: values read back exactly, sharded checkpoints, tied and
# untied lm_head, and one clear error line for every kind of broken file or config.
load helper

# st_err CASE MESSAGE: st_open on a file broken as CASE fails with exactly MESSAGE.
st_err() {
    "$TBIN/st_test" mkbad "$1" "$TMP"
    run "$TBIN/st_test" st "$TMP"
    echo "$output"
    [ "$status" -eq 1 ]
    [ "$output" = "$2" ]
}

# model_err MESSAGE MKMODEL-ARGS...: model_open on the tiny model so changed fails with MESSAGE.
model_err() {
    local want=$1
    shift
    "$TBIN/st_test" mkmodel "$TMP/m" "$@"
    run "$TBIN/st_test" open "$TMP/m"
    echo "$output"
    [ "$status" -eq 1 ]
    [ "$output" = "$want" ]
}

@test "st: F32, F16 (every bit pattern), BF16, empty and 4-dim tensors read back exactly; shards; header hash" {
    run "$TBIN/st_test" read "$TMP/r"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = "65699 checks, 0 failures" ]
}

@test "st: a listing of a valid file" {
    "$TBIN/st_test" mkmodel "$TMP/m"
    run "$TBIN/st_test" st "$TMP/m"
    [ "$status" -eq 0 ]
    [ "${#lines[@]}" -eq 25 ]
    [ "${lines[0]}" = "lm_head.weight F32 [3]" ]
    [ "${lines[1]}" = "model.embed_tokens.weight BF16 [16, 8]" ]
    [ "${lines[5]}" = "model.layers.0.mlp.up_proj.weight BF16 [20, 8]" ]
}

@test "st: a file too short for the header length, or empty" {
    st_err truncated "model.safetensors: 3 bytes, too short for the 8-byte header length"
    st_err empty "model.safetensors: 0 bytes, too short for the 8-byte header length"
}

@test "st: a header length past the end of the file, or over the format's limit" {
    st_err header-past-end "model.safetensors: header length 1000 past the end of the file (24 bytes)"
    st_err header-huge "model.safetensors: header length 18446744073709551360 over the format's limit of 100000000"
}

@test "st: data_offsets past the end of the data, or ending before they begin" {
    st_err past-end "model.safetensors: tensor model.norm.weight: data_offsets [10, 4000010] past the end of the file (64 bytes of data)"
    st_err data-truncated "model.safetensors: tensor x: data_offsets [0, 16] past the end of the file (12 bytes of data)"
    st_err backwards "model.safetensors: tensor x: data_offsets [16, 8] end before they begin"
    st_err no-offsets "model.safetensors: tensor x: data_offsets is not two non-negative integers"
}

@test "st: overlapping tensors, and a name listed twice" {
    st_err overlap "model.safetensors: tensor b: data_offsets [12, 20] overlap tensor a [0, 16]"
    st_err duplicate "model.safetensors: tensor a: listed twice"
}

@test "st: a size that is not shape x dtype size; bad shapes" {
    st_err size-mismatch "model.safetensors: tensor x: data_offsets [0, 16] hold 16 bytes, shape [2, 3] of BF16 needs 12"
    st_err five-dims "model.safetensors: tensor x: 5 dims, at most 4 supported"
    st_err negative-shape "model.safetensors: tensor x: shape[0] is not a non-negative integer"
    st_err overflow "model.safetensors: tensor x: shape too large"
}

@test "st: an unknown dtype" {
    st_err unknown-dtype 'model.safetensors: tensor x: unknown dtype "Q4_K"'
}

@test "st: a header that is not JSON, not an object, or has junk after the object" {
    st_err not-json "model.safetensors: header is not valid JSON (at byte 6)"
    st_err not-object "model.safetensors: header does not start with '{'"
    st_err trailing "model.safetensors: header has bytes after its JSON object"
    st_err bad-metadata "model.safetensors: __metadata__ is not a JSON object"
}

@test "st: a sharded index naming a missing shard, the wrong shard, or a path outside the directory" {
    st_err index-missing-shard "$TMP/b.safetensors: No such file or directory"
    rm -f "$TMP"/*
    st_err index-wrong-shard "model.safetensors.index.json: tensor x: in b.safetensors, not in a.safetensors"
    rm -f "$TMP"/*
    st_err index-escape 'model.safetensors.index.json: weight_map: x: bad file name "../a.safetensors"'
}

@test "st: a directory with no weights" {
    run "$TBIN/st_test" st "$TMP"
    [ "$status" -eq 1 ]
    [ "$output" = "$TMP: no model.safetensors or model.safetensors.index.json" ]
}

@test "model: tiny Qwen3 (head_dim != dim/heads): embeddings in BF16/F16/F32, tied and untied lm_head, shards, fingerprint" {
    run "$TBIN/st_test" model "$TMP"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = "288 checks, 0 failures" ]
}

@test "model: config defaults as HF: head_dim = hidden/heads, untied, eos the first of a list, no rope_scaling" {
    "$TBIN/st_test" mkmodel "$TMP" head_dim= tie_word_embeddings= bos_token_id= rope_scaling=
    run "$TBIN/st_test" cfg "$TMP"
    [ "$status" -eq 0 ]
    [[ "$output" == *$'\nhead_dim=4\n'* ]]
    [[ "$output" == *$'\ntie_embeddings=0\nbos_id=-1\neos_id=2\nyarn=0' ]]
}

@test "model: YaRN rope_scaling, defaults and given values" {
    "$TBIN/st_test" mkmodel "$TMP" 'rope_scaling={"rope_type":"yarn","factor":4.0,"original_max_position_embeddings":32}'
    run "$TBIN/st_test" cfg "$TMP"
    [ "$status" -eq 0 ]
    [[ "$output" == *$'\nyarn=1\nyarn_factor=4\nyarn_orig_max_pos=32\nyarn_beta_fast=32\nyarn_beta_slow=1\nyarn_attn_factor=1.138629436\nyarn_truncate=1' ]]
    "$TBIN/st_test" mkmodel "$TMP" 'rope_scaling={"type":"yarn","factor":2,"beta_fast":16,"beta_slow":2,"attention_factor":1.5,"truncate":false}'
    run "$TBIN/st_test" cfg "$TMP"
    [[ "$output" == *$'\nyarn_factor=2\nyarn_orig_max_pos=64\nyarn_beta_fast=16\nyarn_beta_slow=2\nyarn_attn_factor=1.500000000\nyarn_truncate=0' ]]
    run "$TBIN/st_test" open "$TMP"
    [ "$output" = ok ]
    # transformers v5: rope_theta and the scaling inside rope_parameters
    "$TBIN/st_test" mkmodel "$TMP" rope_theta= rope_scaling= 'rope_parameters={"rope_theta":5e5,"rope_type":"yarn","factor":2}'
    run "$TBIN/st_test" cfg "$TMP"
    [[ "$output" == *$'\nrope_theta=500000\n'*$'\nyarn=1\nyarn_factor=2\n'* ]]
}

@test "model: a config with a missing field" {
    model_err "config.json: num_key_value_heads: missing" num_key_value_heads=
    model_err "config.json: rope_theta: missing" rope_theta=
    model_err "config.json: model_type: missing" model_type=
    rm "$TMP/m/config.json"
    run "$TBIN/st_test" open "$TMP/m"
    [ "$status" -eq 1 ]
    [ "$output" = "$TMP/m: no config.json" ]
}

@test "model: a config with a zero, negative, fractional or absurd field" {
    model_err "config.json: hidden_size: 0 not in [1, 65536]" hidden_size=0
    model_err "config.json: num_hidden_layers: -2 not in [1, 1024]" num_hidden_layers=-2
    model_err "config.json: hidden_size: not an integer" hidden_size=8.5
    model_err "config.json: vocab_size: 1000000000 not in [1, 16777216]" vocab_size=1e9
    model_err "config.json: rms_norm_eps: 0 not in (0, 1]" rms_norm_eps=0
    model_err "config.json: head_dim: 7 is odd (RoPE needs pairs)" head_dim=7
    model_err "config.json: eos_token_id: not a token id in [0, 16)" eos_token_id=99
    model_err "config.json: tie_word_embeddings: not true or false" tie_word_embeddings=1
}

@test "model: heads not divisible by kv heads; more kv heads than heads" {
    model_err "config.json: num_attention_heads: 4 is not a multiple of num_key_value_heads (3)" \
        num_attention_heads=4 num_key_value_heads=3
    model_err "config.json: num_key_value_heads: 3 not in [1, 2]" num_key_value_heads=3
}

@test "model: another architecture or rope type is refused by name" {
    model_err 'config.json: model_type: "llama", only qwen3 is supported' model_type='"llama"'
    model_err 'config.json: rope_scaling.rope_type: "linear" not supported (only yarn)' \
        'rope_scaling={"rope_type":"linear","factor":2}'
    model_err "config.json: hidden_act: only silu is supported" hidden_act='"gelu"'
    model_err "config.json: attention_bias: true is not supported" attention_bias=true
}

@test "model: a tensor with the wrong shape for the config" {
    model_err "tensor model.layers.1.self_attn.q_proj.weight: shape [8, 8], config wants [12, 8]" \
        --shape model.layers.1.self_attn.q_proj.weight=8,8
    model_err "tensor model.norm.weight: shape [9], config wants [8]" --shape model.norm.weight=9
    # head_dim read, never derived: without it the checkpoint's q_proj no longer fits
    model_err "tensor model.layers.0.self_attn.q_proj.weight: shape [12, 8], config wants [8, 8]" head_dim=
}

@test "model: a missing tensor; lm_head.weight needed only when untied" {
    model_err "tensor model.layers.1.mlp.up_proj.weight: missing" --drop model.layers.1.mlp.up_proj.weight
    model_err "tensor lm_head.weight: missing" --untied --drop lm_head.weight
    "$TBIN/st_test" mkmodel "$TMP/t" --drop lm_head.weight
    run "$TBIN/st_test" open "$TMP/t"
    [ "$output" = ok ]
}

@test "model: a weight dtype other than F32/F16/BF16, and misaligned data" {
    model_err "tensor model.norm.weight: dtype I32, want F32, F16 or BF16" --dtype model.norm.weight=I32
    model_err "tensor model.embed_tokens.weight: data not aligned to its 2-byte elements" --skip 1
    "$TBIN/st_test" mkmodel "$TMP/t" --skip 8 --dtype model.norm.weight=F16
    run "$TBIN/st_test" open "$TMP/t"
    [ "$output" = ok ]
}

#!/usr/bin/env bats
# model report: the accuracy report of two configurations. Its numbers are checked against
# npycmp's on the same logits, computed apart by prefill (the prompt, then A's greedy
# tokens fed with --all-logits): the same rows must give the same max|diff|, mean|diff|,
# RMSE and argmax count.
load helper

TINY=$PWD/build/models/tiny
F32=$PWD/build/models/tiny-f32

@test "report: one configuration against itself: 0 difference, cosine 1, every argmax, the same continuation" {
    run "$BIN/model" report -n 4 :none :none "Why is the sky blue?" "Hello"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "A: $TINY (scheme none, backend cpu)" ]
    [ "${lines[1]}" = "B: $TINY (scheme none, backend cpu)" ]
    [ "${lines[-1]}" = "overall: 2 prompts, 8 positions: max|diff| 0.0000e+00 mean|diff| 0.0000e+00 RMSE 0.0000e+00 cosine 1.000000 (min 1.000000) argmax 8/8 (100.0%)" ]
    [ "$(grep '^  A: ' <<<"$output" | cut -c6-)" = "$(grep '^  B: ' <<<"$output" | cut -c6-)" ]
    [ "$(grep -c '^  A: ' <<<"$output")" -eq 2 ]
    [ "$(grep -c '^  step ' <<<"$output")" -eq 6 ]
}

@test "report: f32 vs q8, every prompt's numbers equal npycmp's on the same logits from prefill" {
    "$BIN/tok" -m "$F32" "Why is the sky blue?" >"$TMP/prompts"
    "$BIN/tok" -m "$F32" --chat "Hello there" >>"$TMP/prompts"
    echo "5 6 7 8" >>"$TMP/prompts"
    run "$BIN/model" report --ids -n 8 "$F32" "$F32:q8" <"$TMP/prompts"
    echo "$output"
    [ "$status" -eq 0 ]
    mapfile -t rows < <(grep '^  prompt  ' <<<"$output")
    mapfile -t conts < <(grep '^  A: ' <<<"$output")
    [ "${#rows[@]}" -eq 3 ]
    total=0
    for i in 0 1 2; do
        prompt=$(sed -n "$((i + 1))p" "$TMP/prompts")
        cont=(${conts[$i]#  A: })
        # the continuation one token per line: one position per call, as report's steps (q8's
        # prefill panels and its one-position tiles differ in the last bits)
        for s in none q8; do
            { "$BIN/prefill" -m "$F32" --quant $s -k p$i$s <<<"$prompt"
              printf '%s\n' "${cont[@]:0:7}" | "$BIN/prefill" -m "$F32" --quant $s -k p$i$s --all-logits; } >"$TMP/$s.npy"
        done
        run "$BIN/npycmp" "$TMP/none.npy" "$TMP/q8.npy"
        echo "$output"
        [ "$status" -eq 0 ]
        read -r _ _ _ md mean rmse _ arg <<<"${lines[-1]}"
        read -r _ rmd rmean rrmse _ _ _ rarg <<<"${rows[$i]}"
        echo "npycmp: $md $mean $rmse $arg; report: $rmd $rmean $rrmse $rarg"
        [ "$md $mean $rmse $arg" = "$rmd $rmean $rrmse $rarg" ]
        total=$((total + ${arg%/*}))
    done
    # q8 of a random f32 model: cosine 0.9999 (npycmp above), argmax lost only on near ties
    run "$BIN/model" report --ids -n 8 "$F32" "$F32:q8" <"$TMP/prompts"
    [[ "${lines[-1]}" == *"argmax $total/24 ("* ]]
    [ "$total" -ge 18 ]
    [[ "${lines[-1]}" =~ cosine\ 0\.9999[0-9]+ ]]
}

@test "report: two formats (an MLX checkpoint and its BF16 directory) agree to f32 rounding" {
    "$BIN/model" dequant "$FIX/mlx/model" "$TMP/bf16"
    run bash -c "echo '1 7 42 100 511 3' | '$BIN/model' report --ids -n 6 '$FIX/mlx/model' '$TMP/bf16'"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "${lines[-1]}" == *"argmax 6/6 (100.0%)" ]]
    read -r md <<<"$(sed 's/.*max|diff| \([^ ]*\) .*/\1/' <<<"${lines[-1]}")"
    awk -v d="$md" 'BEGIN { exit !(d < 1e-4) }'
}

@test "report: bad configurations are refused with the valid set; no prompts; other vocabularies" {
    run "$BIN/model" report :none :q3 "x"
    [ "$status" -eq 2 ]
    [ "${lines[0]}" = "model: :q3: quantization 'q3': not one of none, bf16, bf16a, q8, q4, q4g128, 8da4w, 8da8w" ]
    run "$BIN/model" report :none ::gpu9 "x"
    [ "$status" -eq 2 ]
    [[ "${lines[0]}" == "model: ::gpu9: backend 'gpu9': not one of cpu"* ]]
    run "$BIN/model" report :none
    [ "$status" -eq 2 ]
    run "$BIN/model" report :none :none </dev/null
    [ "$status" -eq 1 ]
    [[ "$output" == *"model: report: no prompts"* ]]
    run "$BIN/model" report --ids :none "$FIX/mlx/model" <<<"1 2"
    [ "$status" -eq 1 ]
    [[ "$output" == "model: :none and $FIX/mlx/model: vocabularies differ (151936, 512)" ]]
    run "$BIN/model" frobnicate
    [ "$status" -eq 2 ]
    [ "${lines[0]}" = "model: frobnicate: no such command" ]
}

#!/usr/bin/env bats
# kern: the CPU kernels (every ISA variant this CPU runs against the generic C one), the
# thread pool, RoPE/YaRN and attention against double-precision formulas, and the CPU
# backend on a random tiny model against a Qwen3 forward pass in double.
load helper

@test "kern: variants, pool, RoPE/YaRN, attention, CPU backend against double references" {
    run "$TBIN/kern_test"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == "variants: generic"* ]]
    [[ "${lines[-1]}" == *" checks, 0 failures" ]]
}

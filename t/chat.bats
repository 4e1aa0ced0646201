#!/usr/bin/env bats
# lib/chat against transformers' apply_chat_template: every fixture case byte for byte
# (chat_public.jsonl from the reference, chat_extra.jsonl from t/gen_chat_fixtures.py),
# and malformed input refused with a reason.

setup() {
    : "${TBIN:=build/release/t}"
    FIX="$BATS_TEST_DIRNAME/fixtures"
    [ -x "$TBIN/chat_test" ] || skip "$TBIN/chat_test not built (make)"
}

# render TEMPLATE JSON: run chat_test on one case given as JSON on stdin.
render() {
    local tmpl=$1 json=$2
    run "$TBIN/chat_test" --render --template "$tmpl" <<<"$json"
}

@test "chat: the 25 public cases render byte for byte" {
    run "$TBIN/chat_test" "$FIX/chat_public.jsonl"
    [ "$status" -eq 0 ]
    [ "$output" = "25/25 cases passed" ]
}

@test "chat: the extra Qwen3 and Qwen2.5 cases render byte for byte, and fail where transformers raised" {
    n=$(grep -c . "$FIX/chat_extra.jsonl")
    run "$TBIN/chat_test" "$FIX/chat_extra.jsonl"
    [ "$status" -eq 0 ]
    [ "$output" = "$n/$n cases passed" ]
}

@test "chat: a mismatch is reported with its byte offset" {
    line='{"name":"bad","messages":[{"role":"user","content":"Hello!"}],"tools":null,"add_generation_prompt":true,"enable_thinking":null,"rendered":"<|im_start|>user\nHellO!<|im_end|>\n<|im_start|>assistant\n"}'
    printf '%s\n' "$line" >"$BATS_TEST_TMPDIR/bad.jsonl"
    run "$TBIN/chat_test" "$BATS_TEST_TMPDIR/bad.jsonl"
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = "chat_test: bad: differs at byte 21 (want 56 bytes, got 56)" ]
    [ "${lines[-1]}" = "0/1 cases passed" ]
}

@test "chat: --render writes the prompt" {
    render qwen3 '{"messages":[{"role":"user","content":"hi"}],"add_generation_prompt":true,"enable_thinking":false}'
    [ "$status" -eq 0 ]
    [ "$output" = $'<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>' ]
}

@test "chat: messages that are not an array are refused" {
    render qwen3 '{"messages":{"role":"user","content":"hi"}}'
    [ "$status" -eq 1 ]
    [ "$output" = "chat_test: messages: not an array" ]
    render qwen2.5 '{"messages":"hi"}'
    [ "$status" -eq 1 ]
    [ "$output" = "chat_test: messages: not an array" ]
}

@test "chat: an empty conversation is refused" {
    render qwen3 '{"messages":[]}'
    [ "$status" -eq 1 ]
    [ "$output" = "chat_test: messages: empty conversation" ]
}

@test "chat: a message that is not an object is refused" {
    render qwen3 '{"messages":[{"role":"user","content":"hi"},"hello"]}'
    [ "$status" -eq 1 ]
    [ "$output" = "chat_test: messages[1]: not an object" ]
}

@test "chat: a message without a role, or with a null role, is refused" {
    render qwen3 '{"messages":[{"content":"hi"}]}'
    [ "$status" -eq 1 ]
    [ "$output" = "chat_test: messages[0]: no role" ]
    render qwen2.5 '{"messages":[{"role":"user","content":"a"},{"role":null,"content":"hi"}]}'
    [ "$status" -eq 1 ]
    [ "$output" = "chat_test: messages[1]: no role" ]
}

@test "chat: a non-string role is refused" {
    render qwen3 '{"messages":[{"role":5,"content":"hi"}]}'
    [ "$status" -eq 1 ]
    [ "$output" = "chat_test: messages[0]: role is not a string" ]
    render qwen2.5 '{"messages":[{"role":["user"],"content":"hi"}]}'
    [ "$status" -eq 1 ]
    [ "$output" = "chat_test: messages[0]: role is not a string" ]
}

@test "chat: an unknown role is skipped, as the templates skip it" {
    render qwen3 '{"messages":[{"role":"developer","content":"x"},{"role":"user","content":"hi"}]}'
    [ "$status" -eq 0 ]
    [ "$output" = $'<|im_start|>user\nhi<|im_end|>' ]
}

@test "chat: tools that are not a list of objects are refused" {
    render qwen3 '{"messages":[{"role":"user","content":"hi"}],"tools":{"name":"f"}}'
    [ "$status" -eq 1 ]
    [ "$output" = "chat_test: tools: not an array" ]
    render qwen2.5 '{"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"f"},"g"]}'
    [ "$status" -eq 1 ]
    [ "$output" = "chat_test: tools[1]: not an object" ]
}

@test "chat: content the template can't concatenate is refused, naming the message" {
    render qwen3 '{"messages":[{"role":"user","content":"go"},{"role":"assistant","content":null,"tool_calls":[{"function":{"name":"f","arguments":{}}}]}]}'
    [ "$status" -eq 1 ]
    [ "$output" = "chat_test: messages[1] (assistant): content is missing or null, the template needs a string" ]
    render qwen3 '{"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}'
    [ "$status" -eq 1 ]
    [ "$output" = "chat_test: messages[0] (user): content is an array, the template needs a string" ]
}

@test "chat: a tool call without arguments is refused" {
    render qwen2.5 '{"messages":[{"role":"user","content":"go"},{"role":"assistant","content":"","tool_calls":[{"function":{"name":"f"}}]}]}'
    [ "$status" -eq 1 ]
    [ "$output" = "chat_test: messages[1].tool_calls[0]: no arguments" ]
}

@test "chat: number literals are kept; cJSON's doubles alone lose 1.0 and big ints" {
    json='{"messages":[{"role":"user","content":"go"},{"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":{"a":1.0,"b":12345678901234567890,"c":1e-7,"d":-0}}}]}]}'
    render qwen3 "$json"
    [ "$status" -eq 0 ]
    [[ "$output" == *'{"a": 1.0, "b": 12345678901234567890, "c": 1e-07, "d": 0}'* ]]
    run "$TBIN/chat_test" --render --plain-numbers <<<"$json"
    [ "$status" -eq 0 ]
    [[ "$output" == *'{"a": 1, "b": 1.2345678901234567e+19, "c": 1e-07, "d": 0}'* ]]
}

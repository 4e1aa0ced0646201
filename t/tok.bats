#!/usr/bin/env bats
# tok: the program, against the reference encodings made by HF tokenizers.
load helper

@test "tok: the whole public corpus (2,233 documents) encodes exactly as HF tokenizers" {
    "$BIN/tok" -m "$MODEL" --jsonl < "$FIX/tok_public.jsonl" > "$TMP/ours.jsonl"
    sed -E 's/^\{"ids": \[(.*)\]\}$/\1/; s/, /,/g' "$TMP/ours.jsonl" > "$TMP/ours.ids"
    sed -E 's/.*"ids":\[([^]]*)\]\}$/\1/' "$FIX/tok_public.jsonl" > "$TMP/ref.ids"
    [ "$(wc -l < "$TMP/ref.ids")" -eq 2233 ]
    run diff "$TMP/ref.ids" "$TMP/ours.ids"
    [ "$status" -eq 0 ] || { echo "first differing documents:"; echo "$output" | head -5; false; }
}

@test "tok: examples from the reference notes (added tokens, numbers, spaces, NUL)" {
    run "$BIN/tok" -m "$MODEL" 'x<think>y' ' <think> ' '<|IM_START|>' '12345' 'a   b' "$(printf 'a<|im_end|>\x27s')"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "87 151667 88" ]
    [ "${lines[1]}" = "220 151667 220" ]
    [ "${lines[2]}" = "27 91 1791 13044 91 29" ]
    [ "${lines[3]}" = "16 17 18 19 20" ]
    [ "${lines[4]}" = "64 256 293" ]
    [ "${lines[5]}" = "64 151645 594" ]
    run bash -c "printf 'a\0b' | '$BIN/tok' -m '$MODEL'"
    [ "$status" -eq 0 ]
    [ "$output" = "64 188 65" ]
}

@test "tok: stdin is one text, newlines included; -f reads a file" {
    printf 'hello\nworld\n' > "$TMP/in.txt"
    run bash -c "'$BIN/tok' -m '$MODEL' < '$TMP/in.txt'"
    [ "$status" -eq 0 ]
    [ "$output" = "14990 198 14615 198" ]
    run "$BIN/tok" -m "$MODEL" -f "$TMP/in.txt"
    [ "$output" = "14990 198 14615 198" ]
}

@test "tok --npy writes int32 .npy records that detok reads back" {
    run bash -c "set -o pipefail; '$BIN/tok' -m '$MODEL' --npy 'Hello, world' 'again' > '$TMP/ids.npy'"
    [ "$status" -eq 0 ]
    # magic, version 1.0, header padded to 64 bytes, '<i4', shape (n,)
    head -c 10 "$TMP/ids.npy" | od -An -c | grep -q 'N   U   M   P   Y 001  \\0'
    head -c 128 "$TMP/ids.npy" | grep -aq "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }"
    run bash -c "'$BIN/detok' -m '$MODEL' -l < '$TMP/ids.npy'"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "Hello, world" ]
    [ "${lines[1]}" = "again" ]
}

@test "tok --chat renders the Qwen3 template: system, --no-think, generation prompt" {
    run "$BIN/tok" -m "$MODEL" --chat --system 'You are a helpful assistant.' --no-think 'What is 2+2?'
    [ "$status" -eq 0 ]
    [ "$output" = "151644 8948 198 2610 525 264 10950 17847 13 151645 198 151644 872 198 3838 374 220 17 10 17 30 151645 198 151644 77091 198 151667 271 151668 271" ]
}

@test "tok --jsonl --chat: the 25 reference chat renderings, text and ids" {
    "$BIN/tok" -m "$MODEL" --jsonl < "$FIX/chat_public.jsonl" > "$TMP/ours.jsonl"
    [ "$(wc -l < "$TMP/ours.jsonl")" -eq 25 ]
    # compare ids and rendered text, line by line, with the reference's own fields
    paste -d '\n' "$FIX/chat_public.jsonl" "$TMP/ours.jsonl" > "$TMP/pairs"
    run python3 -c '
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().split("\n")
bad = 0
for ref, ours in zip(lines[0::2], lines[1::2]):
    r, o = json.loads(ref), json.loads(ours)
    if r["ids"] != o.get("ids") or r["rendered"] != o.get("text"):
        bad += 1; print("mismatch:", r["name"])
sys.exit(1 if bad else 0)' "$TMP/pairs"
    [ "$status" -eq 0 ]
}

@test "tok --jsonl: a bad line gives an error object in its place and exit 1, the rest goes on" {
    printf '{"text": "ok"}\nnot json\n{"nothing": 1}\n{"text": "\xff"}\n{"text": "a\\u0000b"}\n' > "$TMP/in.jsonl"
    run bash -c "'$BIN/tok' -m '$MODEL' --jsonl < '$TMP/in.jsonl' 2>'$TMP/err'"
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = '{"ids": [562]}' ]
    [[ "${lines[1]}" == '{"error": "line 2: invalid JSON'*'"line": 2}' ]]
    [[ "${lines[2]}" == '{"error": "line 3: want an object with \"text\" or \"messages\"", "line": 3}' ]]
    [[ "${lines[3]}" == '{"error": "line 4: \"text\": invalid UTF-8 at byte 0", "line": 4}' ]]
    [ "${lines[4]}" = '{"ids": [64, 188, 65]}' ]
    grep -q '^tok: line 2: invalid JSON' "$TMP/err"
}

@test "tok: invalid UTF-8 is refused with its byte offset, or replaced with --lossy" {
    run bash -c "printf 'ab\xc3(' | '$BIN/tok' -m '$MODEL'"
    [ "$status" -eq 1 ]
    [ "$output" = "tok: stdin: invalid UTF-8 at byte 2 (use --lossy to replace it)" ]
    run bash -c "printf 'ab\xc3(' | '$BIN/tok' -m '$MODEL' --lossy"
    [ "$status" -eq 0 ]
    [ "$output" = "$("$BIN/tok" -m "$MODEL" "$(printf 'ab\xef\xbf\xbd(')")" ]
}

@test "tok: a missing or corrupt tokenizer.json is a clear error, not a crash" {
    run "$BIN/tok" -m "$TMP/nope" hi
    [ "$status" -eq 1 ]
    [[ "${lines[0]}" == "tok: $TMP/nope/tokenizer.json: "* ]]
    mkdir "$TMP/bad" && head -c 100000 "$MODEL/tokenizer.json" > "$TMP/bad/tokenizer.json"
    run "$BIN/tok" -m "$TMP/bad" hi
    [ "$status" -eq 1 ]
    [[ "${lines[0]}" == "tok: $TMP/bad/tokenizer.json: "* ]]
}

@test "tok: usage errors exit 2 with the usage; --help exits 0" {
    run "$BIN/tok" --bogus
    [ "$status" -eq 2 ]
    run env -u QWEN_MODEL "$BIN/tok" -m "$TMP/nowhere" hi
    [ "$status" -eq 1 ]
    [[ "${lines[0]}" == "tok: $TMP/nowhere/tokenizer.json: "* ]]
    run "$BIN/tok" --help
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == "usage: tok "* ]]
    run "$BIN/tok" -m "$MODEL" --serve 99999
    [ "$status" -eq 2 ]
}

@test "tok: QWEN_MODEL is the default model, else the built-in tiny one; the cache is reused" {
    QWEN_MODEL=$MODEL run "$BIN/tok" hi
    [ "$output" = "6023" ]
    ls "$QWEN_CACHE" | grep -q .
    run env -u QWEN_MODEL "$BIN/tok" hi
    [ "$status" -eq 0 ]
    [ "$output" = "6023" ]
}

@test "tok --jsonl: the extra Qwen3 chat cases (tools with floats, big ints, tool calls) render exactly" {
    python3 -c '
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    c = json.loads(line)
    if c.get("template") == "qwen3" and c.get("error") is None:
        print(line, end="")' "$FIX/chat_extra.jsonl" > "$TMP/cases.jsonl"
    n=$(wc -l < "$TMP/cases.jsonl")
    [ "$n" -ge 20 ]
    "$BIN/tok" -m "$MODEL" --jsonl < "$TMP/cases.jsonl" > "$TMP/ours.jsonl"
    run python3 -c '
import json, sys
bad = 0
for ref, ours in zip(open(sys.argv[1], encoding="utf-8"), open(sys.argv[2], encoding="utf-8")):
    r, o = json.loads(ref), json.loads(ours)
    if r["rendered"] != o.get("text") or ("ids" in r and r["ids"] != o.get("ids")):
        bad += 1; print("mismatch:", r["name"])
sys.exit(1 if bad else 0)' "$TMP/cases.jsonl" "$TMP/ours.jsonl"
    echo "$output"
    [ "$status" -eq 0 ]
}

#!/usr/bin/env bats
# detok: the program, against HF tokenizers' decode.
load helper

@test "detok: the whole public corpus decodes exactly as HF tokenizers (= NFC of the text)" {
    "$BIN/detok" -m "$MODEL" --jsonl < "$FIX/tok_public.jsonl" > "$TMP/ours.jsonl"
    run cmp "$FIX/detok_public.jsonl" "$TMP/ours.jsonl"
    [ "$status" -eq 0 ]
}

@test "detok(tok(x)) is x for NFC text, through a pipe" {
    printf 'Grüße, 世界! 🎉 e\xcc\x81\n\ttabs  and   spaces\r\n<|im_end|>' > "$TMP/x"
    printf 'Grüße, 世界! 🎉 \xc3\xa9\n\ttabs  and   spaces\r\n<|im_end|>' > "$TMP/nfc"
    run bash -c "set -o pipefail; '$BIN/tok' -m '$MODEL' < '$TMP/x' | '$BIN/detok' -m '$MODEL' > '$TMP/y'"
    [ "$status" -eq 0 ]
    cmp "$TMP/nfc" "$TMP/y"
}

@test "detok streams: a character split across ids is held back until complete" {
    # 𓀀 is 4 bytes split over several ids; feed them one per line with a pause between
    ids=$("$BIN/tok" -m "$MODEL" '𓀀')
    set -- $ids
    [ "$#" -ge 2 ]
    mkfifo "$TMP/fifo"
    "$BIN/detok" -m "$MODEL" < "$TMP/fifo" > "$TMP/out" 3>&- &
    exec 7> "$TMP/fifo"   # (fd 3 is BATS's own)
    echo "$1" >&7
    sleep 0.3
    [ ! -s "$TMP/out" ]       # nothing printed yet: the character is incomplete
    shift; for i in "$@"; do echo "$i" >&7; done
    # printed before the stream ended (waiting up to 10 s: a loaded machine may be slow
    # to start detok, so the pause above proves little alone)
    for _ in $(seq 100); do [ -s "$TMP/out" ] && break; sleep 0.1; done
    [ "$(cat "$TMP/out")" = "𓀀" ]
    exec 7>&-
    wait
}

@test "detok: bytes that can never be UTF-8 become U+FFFD, one per maximal subpart" {
    run bash -c "echo 126 | '$BIN/detok' -m '$MODEL' | od -An -tx1"
    [ "$status" -eq 0 ]
    [ "$(echo $output)" = "ef bf bd" ]
}

@test "detok --skip-special drops the 14 special tokens and keeps <think>" {
    run bash -c "echo '151644 872 198 151667 9707 151645 151643' | '$BIN/detok' -m '$MODEL' -s"
    [ "$output" = "$(printf 'user\n<think>Hello')" ]
}

@test "detok: an id out of range, a non-number, a truncated .npy: clear errors, exit 1" {
    run bash -c "echo '9707 151669' | '$BIN/detok' -m '$MODEL'"
    [ "$status" -eq 1 ]
    [ "${lines[-1]}" = "detok: stdin: line 1: id 151669 out of range [0, 151669)" ]
    run bash -c "echo '9707 x' | '$BIN/detok' -m '$MODEL'"
    [ "$status" -eq 1 ]
    [ "${lines[-1]}" = "detok: stdin: line 1: 'x' is not part of a token id" ]
    "$BIN/tok" -m "$MODEL" --npy 'Hello, world' > "$TMP/ids.npy"
    head -c 130 "$TMP/ids.npy" > "$TMP/short.npy"
    run "$BIN/detok" -m "$MODEL" "$TMP/short.npy"
    [ "$status" -eq 1 ]
    [ "${lines[-1]}" = "detok: $TMP/short.npy: record 1: npy: truncated data (want 12 bytes)" ]
    printf '\x93NUMPY\x01\x00\x10\x00{"descr": 1}   \n' > "$TMP/bad.npy"
    run "$BIN/detok" -m "$MODEL" "$TMP/bad.npy"
    [ "$status" -eq 1 ]
    [[ "${lines[-1]}" == "detok: $TMP/bad.npy: record 1: npy: "* ]]
}

@test "detok --jsonl: ids to text; bad lines give error objects and exit 1" {
    printf '{"ids": [9707, 11, 1879]}\n{"ids": [-1]}\n[]\n{"ids": [151643]}\n' > "$TMP/in"
    run bash -c "'$BIN/detok' -m '$MODEL' --jsonl < '$TMP/in' 2>/dev/null"
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = '{"text": "Hello, world"}' ]
    [ "${lines[1]}" = '{"error": "line 2: id 0: not a token id in [0, 151669)", "line": 2}' ]
    [ "${lines[2]}" = '{"error": "line 3: want an object with \"ids\": [...]", "line": 3}' ]
    [ "${lines[3]}" = '{"text": "<|endoftext|>"}' ]
}

@test "detok(tok(x)) == NFC(x) for every document of the corpus (our ids, HF's NFC)" {
    run bash -c "set -o pipefail; '$BIN/tok' -m '$MODEL' --jsonl < '$FIX/tok_public.jsonl' | '$BIN/detok' -m '$MODEL' --jsonl | cmp - '$FIX/detok_public.jsonl'"
    [ "$status" -eq 0 ]
}

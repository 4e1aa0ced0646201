#!/usr/bin/env bats
# kvstore and the store under it (lib/kvs.h). The lib cases run $TBIN/kvs_test, which fills
# K/V rows with values that are a function of position, layer and tokens (no model math)
# and checks every row read back bit for bit; the kvstore cases make sessions the same way
# and drive the program. Crash trials are seeded: KVS_CRASH_TRIALS and KVS_SEED change them.
load helper

kt() { "$TBIN/kvs_test" "$@"; }
ks() { "$BIN/kvstore" --store "$TMP/s" "$@"; }

@test "kvs: commit, reopen and continue: rows, tokens and hidden state bit for bit" {
    run kt roundtrip "$TMP/s"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "kvs: prefix reuse finds another session's blocks, stores a shared prefix once" {
    run kt reuse "$TMP/s"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "kvs: fork shares blocks; diverging (trim + append) leaves the parent intact; trim then append" {
    run kt fork "$TMP/s"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "kvs: a second writer is refused while the first holds the session" {
    run kt writers "$TMP/s"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "kvs: readers during commits always see a whole commit" {
    run kt readers "$TMP/s" 2000
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "kvs: SIGKILL at seeded random moments: the session opens at a commit, rows intact" {
    run kt crash "$TMP/s" "${KVS_CRASH_TRIALS:-300}" "${KVS_SEED:-1}"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"crash: ${KVS_CRASH_TRIALS:-300} trials"* ]]
}

@test "kvs: a commit torn at any byte (and garbage after it) opens at the commit before" {
    run kt torn "$TMP/s"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "kvs: a write failing at any point of a commit (ENOSPC hook): the error, then the previous commit" {
    run kt enospc "$TMP/s" "${KVS_ENOSPC_STEP:-97}"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "kvs: deferred sync (decode's): a write or sync failing at any byte is reported once, in the same words; the session holds every commit before" {
    run kt defer "$TMP/s"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == "defer: "*" failure points, "*" of them the last commit's deferred sync" ]]
}

@test "kvs: a flipped byte in a block: verify names it, open names it, a new commit heals it" {
    run kt corrupt "$TMP/s"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "kvs: truncated header, bad magic, version 2, block count past the end, other model: clear errors" {
    run kt bad "$TMP/s"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "kvs: encrypted store: round trip, wrong key, no key, no tokens in the clear" {
    head -c 32 /dev/urandom > "$TMP/key"
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$TMP/wrong"
    run kt crypt "$TMP/s" "$TMP/key" "$TMP/wrong"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "kvs: gc drops only unreferenced blocks, least recently used first under a budget" {
    run kt gc "$TMP/s"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "kvs: export and import, plain and encrypted" {
    run kt export "$TMP"
    echo "$output"
    [ "$status" -eq 0 ]
    head -c 32 /dev/urandom > "$TMP/key"
    mkdir "$TMP/e"
    run kt export "$TMP/e" --key "$TMP/key"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "kvstore ls, info, tokens" {
    kt make "$TMP/s" chat 40
    kt make "$TMP/s" other 70 2
    run ks ls
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${#lines[@]}" -eq 3 ]
    [[ "${lines[0]}" == "name "*"positions"*"bytes"*"model"*"last used" ]]
    [[ "${lines[1]}" == "chat "*" 40 "*" 1f20212223242526 "* ]]
    [[ "${lines[2]}" == "other "*" 70 "* ]]
    run ks info chat
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[1]}" = "positions   40" ]
    [[ "${lines[2]}" == "blocks      2 (32 positions, "* ]]
    [ "${lines[3]}" = "tail        8 positions" ]
    run ks tokens chat
    [ "$status" -eq 0 ]
    [ "${#lines[@]}" -eq 1 ]
    set -- $output
    [ "$#" -eq 40 ]
    [ "$1" = 104729 ]
}

@test "kvstore fork, trim, rm: blocks shared, parent intact" {
    kt make "$TMP/s" a 70
    n=$(find "$TMP/s/blocks" -type f | wc -l)
    ks fork a b
    [ "$(find "$TMP/s/blocks" -type f | wc -l)" -eq "$n" ]
    run ks fork a b
    [ "$status" -eq 1 ]
    [ "$output" = "kvstore: b: session exists" ]
    ks trim b 20
    run ks info b
    [ "${lines[1]}" = "positions   20" ]
    kt check "$TMP/s" a 70
    kt check "$TMP/s" b 20
    run ks trim b 21
    [ "$status" -eq 1 ]
    [ "$output" = "kvstore: b: cannot trim to 21: it holds 20 positions" ]
    ks rm b
    run ks info b
    [ "$status" -eq 1 ]
    [ "$output" = "kvstore: b: no such session" ]
}

@test "kvstore gc: unreferenced blocks go, referenced stay; --max-size keeps a cache" {
    kt make "$TMP/s" a 64
    kt make "$TMP/s" b 64 2
    [ "$(find "$TMP/s/blocks" -type f | wc -l)" -eq 8 ]
    touch "$TMP/s/tmp/123.0"
    ks rm b
    run ks gc --max-size 1G
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "dropped 0 blocks (0 bytes) and 1 temp files; kept 8 blocks (17920 bytes)" ]
    run ks gc
    [ "$output" = "dropped 4 blocks (8960 bytes) and 0 temp files; kept 4 blocks (8960 bytes)" ]
    kt check "$TMP/s" a 64
    run ks gc --max-size 10X
    [ "$status" -eq 2 ]
    [ "${lines[0]}" = "kvstore: --max-size: '10X' is not a size in bytes (K, M, G suffixes)" ]
}

@test "kvstore verify: clean, then a flipped byte in a block" {
    kt make "$TMP/s" a 40
    run ks verify
    [ "$status" -eq 0 ]
    [ "$output" = "0 problems" ]
    f=$(find "$TMP/s/blocks" -type f | head -1)
    flip "$f" 500
    run ks verify a
    echo "$output"
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = "kvstore: a: block $(basename "$f"): checksum mismatch" ]
    run ks tokens a
    [ "$status" -eq 1 ]
    [ "$output" = "kvstore: a: block $(basename "$f"): checksum mismatch" ]
}

@test "kvstore export, import into another store" {
    kt make "$TMP/s" a 50
    ks export a "$TMP/a.kvx"
    "$BIN/kvstore" --store "$TMP/t" import "$TMP/a.kvx" copy
    kt check "$TMP/t" copy 50
    run "$BIN/kvstore" --store "$TMP/t" import "$TMP/a.kvx" copy
    [ "$status" -eq 1 ]
    [ "$output" = "kvstore: copy: session exists" ]
    run "$BIN/kvstore" --store "$TMP/t" import "$TMP/nosuch" x
    [ "$status" -eq 1 ]
}

@test "kvstore: encrypted store: wrong key and no key refused" {
    head -c 32 /dev/urandom > "$TMP/key"
    head -c 32 /dev/urandom > "$TMP/wrong"
    kt make "$TMP/s" a 20 --key "$TMP/key"
    run ks --key "$TMP/key" ls
    [ "$status" -eq 0 ]
    run ks --key "$TMP/wrong" ls
    [ "$status" -eq 1 ]
    [ "$output" = "kvstore: wrong key for store $TMP/s" ]
    run ks ls
    [ "$status" -eq 1 ]
    [ "$output" = "kvstore: store $TMP/s is encrypted: give its key (--key FILE)" ]
    printf 'short' > "$TMP/bad"
    run ks --key "$TMP/bad" ls
    [ "$status" -eq 1 ]
    [ "$output" = "kvstore: $TMP/bad: a key is 32 raw bytes or 64 hex digits" ]
}

@test "kvstore: a session in use cannot be removed or trimmed" {
    kt make "$TMP/s" a 20
    exec 9>"$TMP/s/sessions/a.lock"
    flock -x 9
    run ks rm a
    [ "$status" -eq 1 ]
    [ "$output" = "kvstore: session a is in use by another process" ]
    run ks trim a 3
    [ "$output" = "kvstore: session a is in use by another process" ]
    exec 9>&-
    ks trim a 3
}

@test "kvstore: usage errors exit 2, data errors 1, --help 0" {
    run "$BIN/kvstore" --help
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == "usage: kvstore "* ]]
    run "$BIN/kvstore"
    [ "$status" -eq 2 ]
    run ks frob
    [ "$status" -eq 2 ]
    [ "${lines[0]}" = "kvstore: unknown command 'frob' (ls, info, tokens, fork, trim, rm, gc, verify, export, import)" ]
    run ks info
    [ "$status" -eq 2 ]
    [ "${lines[0]}" = "kvstore: wrong number of arguments" ]
    run ks trim a x
    [ "$status" -eq 2 ]
    run ks ls --max-size 1
    [ "$status" -eq 2 ]
    run ks info ../etc
    [ "$status" -eq 1 ]
    [ "$output" = "kvstore: session name '../etc': use 1-128 of A-Z a-z 0-9 . _ -, not starting with '.'" ]
    echo "qwen3-pipe kv 9" > "$TMP/s/VERSION"
    run ks ls
    [ "$status" -eq 1 ]
    [ "$output" = "kvstore: store $TMP/s: VERSION says 'qwen3-pipe kv 9', this build reads 'qwen3-pipe kv 1'" ]
}

@test "kvstore -m: only that model's sessions; tokens | detok" {
    [ -f build/models/tiny/config.json ] || skip "no build/models/tiny (make)"
    kt make "$TMP/s" a 20
    run ks -m build/models/tiny ls
    [ "$status" -eq 0 ]
    [ "${#lines[@]}" -eq 1 ]
    run ks -m build/models/tiny info a
    [ "$status" -eq 1 ]
    [[ "$output" == "kvstore: a: made by a different model ("* ]]
    run bash -c "'$BIN/kvstore' --store '$TMP/s' tokens a | '$BIN/detok'"
    [ "$status" -eq 0 ]
    [ -n "$output" ]
}

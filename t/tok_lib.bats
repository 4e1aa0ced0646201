#!/usr/bin/env bats
# tok_lib: lib/tok.h through t/tok_test.c: the corpus against HF tokenizers, the
# compiled cache (built once, reused, rebuilt when corrupt or stale, optional) and the
# errors for a bad tokenizer.json. Each test that looks at the cache has its own.
load helper

cache_bin() { ls "$QWEN_CACHE"/tok-*.bin; }

@test "tok_lib: all 2,233 corpus documents encode exactly, and decode to NFC(text)" {
    export QWEN_CACHE=$TMP/cache
    run "$TBIN/tok_test" "$MODEL" "$FIX/tok_public.jsonl"
    [ "$status" -eq 0 ] || { echo "$output" | head -12; false; }
    [ "${lines[-1]}" = "2233/2233 exact" ]
    # the same again from the cache it wrote
    [ "$(ls "$QWEN_CACHE" | wc -l)" -eq 2 ]
    run "$TBIN/tok_test" "$MODEL" "$FIX/tok_public.jsonl"
    [ "${lines[-1]}" = "2233/2233 exact" ]
}

@test "tok_lib: 4,000 seeded random texts (t/gen_tok_fuzz.py) encode exactly" {
    run "$TBIN/tok_test" "$MODEL" "$FIX/tok_fuzz.jsonl"
    [ "$status" -eq 0 ] || { echo "$output" | head -12; false; }
    [ "${lines[-1]}" = "4000/4000 exact" ]
}

@test "tok_lib: a corrupt or truncated cache file is rebuilt, not trusted" {
    export QWEN_CACHE=$TMP/cache
    "$TBIN/tok_test" -l "$MODEL"
    bin=$(cache_bin)
    cp "$bin" "$TMP/good.bin"
    # a stray write in the merge table, then a cut in half, then a zeroed header
    printf 'garbage!' | dd of="$bin" bs=1 seek=5000000 conv=notrunc status=none
    run "$TBIN/tok_test" -l "$MODEL"
    [ "$status" -eq 0 ]
    cmp "$bin" "$TMP/good.bin"
    truncate -s 3000000 "$bin"
    run "$TBIN/tok_test" -l "$MODEL"
    [ "$status" -eq 0 ]
    cmp "$bin" "$TMP/good.bin"
    dd if=/dev/zero of="$bin" bs=1 count=144 conv=notrunc status=none
    run "$TBIN/tok_test" "$MODEL" "$FIX/tok_public.jsonl"
    [ "${lines[-1]}" = "2233/2233 exact" ]
    cmp "$bin" "$TMP/good.bin"
}

@test "tok_lib: a touched tokenizer.json reuses the image; a changed one gets a new one" {
    export QWEN_CACHE=$TMP/cache
    mkdir "$TMP/m"
    cp "$MODEL/tokenizer.json" "$TMP/m/"
    "$TBIN/tok_test" -l "$TMP/m"
    touch -d '2001-01-01' "$TMP/m/tokenizer.json"
    "$TBIN/tok_test" -l "$TMP/m"
    [ "$(cache_bin | wc -l)" -eq 1 ]
    sed -i 's/"version": "1.0"/"version": "1.1"/' "$TMP/m/tokenizer.json"
    "$TBIN/tok_test" -l "$TMP/m"
    [ "$(cache_bin | wc -l)" -eq 2 ]
}

@test "tok_lib: a warm load trusts the index (same dev, inode, size, mtime) and reads no JSON" {
    export QWEN_CACHE=$TMP/cache
    mkdir "$TMP/m"
    cp "$MODEL/tokenizer.json" "$TMP/m/"
    "$TBIN/tok_test" -l "$TMP/m"
    touch -r "$TMP/m/tokenizer.json" "$TMP/stamp"
    printf 'not json' | dd of="$TMP/m/tokenizer.json" bs=1 seek=0 conv=notrunc status=none
    touch -r "$TMP/stamp" "$TMP/m/tokenizer.json"
    run "$TBIN/tok_test" -l "$TMP/m"
    [ "$status" -eq 0 ]
    # any change to the stat data sends it back to the content, which is now broken
    touch "$TMP/m/tokenizer.json"
    run "$TBIN/tok_test" -l "$TMP/m"
    [ "$status" -eq 1 ]
    [[ "$output" == "tok_test: $TMP/m/tokenizer.json: not valid JSON"* ]]
}

@test "tok_lib: without a usable cache directory the tokenizer still loads" {
    export QWEN_CACHE=/dev/null/cache
    run "$TBIN/tok_test" -l "$MODEL"
    [ "$status" -eq 0 ]
    [ "$output" = "151669 ids" ]
}

@test "tok_lib: a truncated tokenizer.json fails cleanly with its path" {
    export QWEN_CACHE=$TMP/cache
    mkdir "$TMP/m"
    head -c 1000000 "$MODEL/tokenizer.json" > "$TMP/m/tokenizer.json"
    run "$TBIN/tok_test" -l "$TMP/m"
    [ "$status" -eq 1 ]
    [[ "$output" == "tok_test: $TMP/m/tokenizer.json: not valid JSON (near byte "*" of 1000000)" ]]
    [ -z "$(ls "$QWEN_CACHE")" ]
}

@test "tok_lib: a missing tokenizer.json, or one that is not Qwen3's, is refused by name" {
    export QWEN_CACHE=$TMP/cache
    run "$TBIN/tok_test" -l "$TMP/none"
    [ "$status" -eq 1 ]
    [ "$output" = "tok_test: $TMP/none/tokenizer.json: No such file or directory" ]
    mkdir "$TMP/m"
    sed '242s/"NFC"/"NFKC"/' "$MODEL/tokenizer.json" > "$TMP/m/tokenizer.json"
    run "$TBIN/tok_test" -l "$TMP/m"
    [ "$status" -eq 1 ]
    [ "$output" = "tok_test: $TMP/m/tokenizer.json: normalizer is not NFC: not a Qwen3 tokenizer" ]
    sed 's/"\\\\s+(?!\\\\S)|/"/; s/|\\\\s+(?!\\\\S)|/|/' "$MODEL/tokenizer.json" > "$TMP/m/tokenizer.json"
    run "$TBIN/tok_test" -l "$TMP/m"
    [ "$status" -eq 1 ]
    [[ "$output" == *"pre_tokenizer Split is not the Qwen2 regex (Isolated): not a Qwen3 tokenizer" ]]
}

@test "tok_lib: merges written as \"a b\" strings (older tokenizer.json) encode the same" {
    export QWEN_CACHE=$TMP/cache
    mkdir "$TMP/m"
    python3 -c '
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
d["model"]["merges"] = [" ".join(m) for m in d["model"]["merges"]]
json.dump(d, open(sys.argv[2], "w", encoding="utf-8"), ensure_ascii=False)
' "$MODEL/tokenizer.json" "$TMP/m/tokenizer.json"
    grep -q '"merges": \["Ġ Ġ", ' "$TMP/m/tokenizer.json"
    run "$TBIN/tok_test" "$TMP/m" "$FIX/tok_public.jsonl"
    [ "${lines[-1]}" = "2233/2233 exact" ]
}

#!/usr/bin/env bats
# uni: lib/uni.h (regex classes, strict UTF-8, Unicode 9.0 NFC) through t/uni_test.c,
# which checks it against lib/data, Debian's unicode-data and NormalizationTest.txt.
load helper

ROOT=$BATS_TEST_DIRNAME/..

@test "uni_test: every check passes" {
    [ -f /usr/share/unicode/NormalizationTest.txt.bz2 ] || skip "unicode-data is not installed"
    run "$TBIN/uni_test" "$ROOT/lib/data/unicode_classes.json" "$ROOT/lib/data/nfc_unicode9_deltas.txt"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "ok uni_class (1114147 checks)" ]
    [[ "$output" == *"ok utf8 ("* ]]
    [[ "$output" == *"ok nfc examples ("* ]]
    [[ "$output" == *"ok nfc deltas (487 checks)"* ]]
    [[ "$output" == *"ok nfc NormalizationTest ("* ]]
    [[ "${lines[-1]}" == "uni_test: all "*" checks passed" ]]
}

@test "uni_test: a missing data file fails with its name" {
    run "$TBIN/uni_test" "$TMP/missing.json"
    [ "$status" -eq 1 ]
    [[ "$output" == *"FAIL: open $TMP/missing.json"* ]]
}

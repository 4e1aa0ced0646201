#!/usr/bin/env bats
# uni: lib/uni.h (regex classes, strict UTF-8, Unicode 9.0 NFC) through t/uni_test.c,
# which checks it against lib/data and Debian's unicode-data.

setup() {
    cd "$BATS_TEST_DIRNAME/.."
    TBIN=${TBIN:-build/release/t}
}

@test "uni_test: every check passes" {
    [ -f /usr/share/unicode/NormalizationTest.txt.bz2 ] || skip "unicode-data is not installed"
    run "$TBIN/uni_test"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "ok uni_class (1114147 checks)" ]
    [[ "$output" == *"ok utf8 ("* ]]
    [[ "$output" == *"ok nfc examples ("* ]]
    [[ "$output" == *"ok nfc deltas (487 checks)"* ]]
    [[ "$output" == *"ok nfc NormalizationTest ("* ]]
    [[ "${lines[-1]}" == "uni_test: all "*" checks passed" ]]
}

@test "uni_test: a missing data file fails with its name" {
    run "$TBIN/uni_test" /nonexistent/classes.json
    [ "$status" -eq 1 ]
    [[ "$output" == *"FAIL: open /nonexistent/classes.json"* ]]
}

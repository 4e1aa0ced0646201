# Shared setup for every .bats file: the programs under test come from $BIN (make test
# sets it: bin, build/debug/bin or build/static/bin), test programs from $TBIN, and
# each test gets its own scratch dir and tokenizer cache, so the suite is hermetic.
BIN=${BIN:-bin}
TBIN=${TBIN:-build/release/t}
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
case $TBIN in /*) ;; *) TBIN=$PWD/$TBIN ;; esac
MODEL=$PWD/t/fixtures/qwen3-tokenizer
FIX=$PWD/t/fixtures

setup() {
    TMP=$(mktemp -d "${BATS_TMPDIR:-/tmp}/qt.XXXXXX")
    # Share one compiled tokenizer cache across a file's tests (building it costs ~0.2 s)
    export QWEN_CACHE=${QWEN_CACHE_SUITE:-$BATS_FILE_TMPDIR/cache}
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
    export QWEN_KVSTORE=$TMP/store   # every test its own KV store
}

teardown() {
    rm -rf "$TMP"
}

# flip FILE OFFSET: invert every bit of the byte at OFFSET (writing a fixed value changes
# nothing in the 1 case in 256 where the byte already holds it)
flip() {
    python3 -c '
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0xff]))' "$1" "$2"
}

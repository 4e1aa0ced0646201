#!/usr/bin/env bats
# npycmp: record-by-record statistics of two .npy streams, the --tol check, and the
# refusals (shapes, record counts, usage). Inputs are written by python3's struct module.
load helper

# npy OUT DESCR SHAPE VALUES [DESCR SHAPE VALUES ...]: a stream of records, e.g.
#   npy a.npy '<f4' 2,2 1,2,3,4   ('<u2' is bfloat16, given as float values and truncated)
npy() {
    python3 - "$@" <<'EOF'
import struct, sys
out, args = sys.argv[1], sys.argv[2:]
with open(out, "wb") as f:
    for descr, shape, vals in zip(args[0::3], args[1::3], args[2::3]):
        dims = [int(d) for d in shape.split(",")]
        v = [float(x) for x in vals.split(",")]
        if descr == "<u2":
            body = b"".join(struct.pack("<f", x)[2:] for x in v)
        else:
            body = struct.pack("<%d%s" % (len(v), {"<f4": "f", "<f2": "e", "<i4": "i"}[descr]),
                               *[int(x) if descr == "<i4" else x for x in v])
        sh = "(%s)" % (", ".join(map(str, dims)) + ("," if len(dims) == 1 else ""))
        h = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, sh)
        h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + body)
EOF
}

@test "npycmp: identical streams: zero differences, cosine 1, every argmax the same" {
    npy "$TMP/a.npy" '<f4' 2,3 1,5,2,-1,0,4 '<f4' 4 1,2,3,4
    run "$BIN/npycmp" "$TMP/a.npy" "$TMP/a.npy"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "record shape            max|d|      mean|d|     rmse        cosine       argmax" ]
    [ "${lines[1]}" = "0      (2,3)            0.0000e+00  0.0000e+00  0.0000e+00  1.000000000  2/2" ]
    [ "${lines[2]}" = "1      (4)              0.0000e+00  0.0000e+00  0.0000e+00  1.000000000  1/1" ]
    [ "${lines[3]}" = "all    2 records        0.0000e+00  0.0000e+00  0.0000e+00  1.000000000  3/3" ]
}

@test "npycmp: max, mean, RMSE, cosine and argmax per record and overall" {
    npy "$TMP/a.npy" '<f4' 4 1,2,3,4 '<f4' 2,2 1,2,3,0
    npy "$TMP/b.npy" '<f4' 4 1,2,3,5 '<f4' 2,2 1,2,0,3
    run "$BIN/npycmp" "$TMP/a.npy" "$TMP/b.npy"
    echo "$output"
    [ "$status" -eq 0 ]
    # |d| = 0,0,0,1: mean 0.25, RMSE 0.5; cosine 34/sqrt(30*39)
    [ "${lines[1]}" = "0      (4)              1.0000e+00  2.5000e-01  5.0000e-01  0.993999089  1/1" ]
    # |d| = 0,0,3,3: mean 1.5, RMSE sqrt(4.5); cosine 5/sqrt(14*14); argmax 1 and 0 vs 1 and 1
    [ "${lines[2]}" = "1      (2,2)            3.0000e+00  1.5000e+00  2.1213e+00  0.357142857  1/2" ]
    # over all 8 values: mean 7/8, RMSE sqrt(19/8), cosine 39/sqrt(44*53)
    [ "${lines[3]}" = "all    2 records        3.0000e+00  8.7500e-01  1.5411e+00  0.807607482  2/3" ]
}

@test "npycmp --tol: exit 1 when a record's cosine is below it, 0 when none is" {
    npy "$TMP/a.npy" '<f4' 4 1,2,3,4 '<f4' 2 1,0
    npy "$TMP/b.npy" '<f4' 4 1,2,3,5 '<f4' 2 1,0
    run "$BIN/npycmp" --tol 0.99 "$TMP/a.npy" "$TMP/b.npy"
    [ "$status" -eq 0 ]
    run bash -c "'$BIN/npycmp' --tol 0.999 '$TMP/a.npy' '$TMP/b.npy' 2>&1 >/dev/null"
    [ "$status" -eq 1 ]
    [ "$output" = "npycmp: 1 of 2 records have cosine below 0.999" ]
}

@test "npycmp: bfloat16 ('<u2'), float16 and int32 records compare with float32 ones" {
    npy "$TMP/a.npy" '<f4' 3 1.5,-2,0.25 '<f4' 2 3,-7
    npy "$TMP/b.npy" '<u2' 3 1.5,-2,0.25 '<f2' 2 3,-7
    npy "$TMP/c.npy" '<i4' 3 1,-2,0 '<i4' 2 3,-7
    run "$BIN/npycmp" --tol 1 "$TMP/a.npy" "$TMP/b.npy"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[3]}" = "all    2 records        0.0000e+00  0.0000e+00  0.0000e+00  1.000000000  2/2" ]
    run "$BIN/npycmp" "$TMP/c.npy" "$TMP/a.npy"
    [ "$status" -eq 0 ]
    [ "${lines[1]}" = "0      (3)              5.0000e-01  2.5000e-01  3.2275e-01  0.978987151  1/1" ]
}

@test "npycmp: either stream may be stdin" {
    npy "$TMP/a.npy" '<f4' 2 1,2
    run bash -c "'$BIN/npycmp' - '$TMP/a.npy' < '$TMP/a.npy'"
    [ "$status" -eq 0 ]
    [ "${lines[2]}" = "all    1 records        0.0000e+00  0.0000e+00  0.0000e+00  1.000000000  1/1" ]
    run bash -c "'$BIN/npycmp' '$TMP/a.npy' - < '$TMP/a.npy'"
    [ "$status" -eq 0 ]
}

@test "npycmp: different shapes, record counts or a malformed record are errors" {
    npy "$TMP/a.npy" '<f4' 2,2 1,2,3,4
    npy "$TMP/b.npy" '<f4' 4 1,2,3,4
    npy "$TMP/c.npy" '<f4' 2,2 1,2,3,4 '<f4' 1 1
    run bash -c "'$BIN/npycmp' '$TMP/a.npy' '$TMP/b.npy' 2>&1 >/dev/null"
    [ "$status" -eq 1 ]
    [ "$output" = "npycmp: record 0: shapes differ: (2,2) in $TMP/a.npy, (4) in $TMP/b.npy" ]
    run bash -c "'$BIN/npycmp' '$TMP/a.npy' '$TMP/c.npy' 2>&1 >/dev/null"
    [ "$status" -eq 1 ]
    [ "$output" = "npycmp: $TMP/a.npy has 1 records, $TMP/c.npy has more" ]
    run bash -c "'$BIN/npycmp' '$TMP/c.npy' '$TMP/a.npy' 2>&1 >/dev/null"
    [ "$status" -eq 1 ]
    [ "$output" = "npycmp: $TMP/a.npy has 1 records, $TMP/c.npy has more" ]
    printf 'not npy at all' > "$TMP/bad"
    run bash -c "'$BIN/npycmp' '$TMP/a.npy' '$TMP/bad' 2>&1 >/dev/null"
    [ "$status" -eq 1 ]
    [ "$output" = "npycmp: $TMP/bad: record 0: npy: bad magic (not an .npy record)" ]
    run "$BIN/npycmp" "$TMP/a.npy" "$TMP/missing"
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = "npycmp: $TMP/missing: No such file or directory" ]
}

@test "npycmp: usage errors exit 2" {
    run "$BIN/npycmp" only-one
    [ "$status" -eq 2 ]
    [ "${lines[0]}" = "usage: npycmp [--tol COS] A.npy B.npy" ]
    run "$BIN/npycmp" --tol nope a b
    [ "$status" -eq 2 ]
    [ "${lines[0]}" = "npycmp: --tol: 'nope' is not a cosine between -1 and 1" ]
    run "$BIN/npycmp" - -
    [ "$status" -eq 2 ]
    [ "${lines[0]}" = "npycmp: only one of A and B can be stdin" ]
    run "$BIN/npycmp" --help
    [ "$status" -eq 0 ]
}

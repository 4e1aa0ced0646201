#!/usr/bin/env bats
# Crashes and bad input through the programs, over the KV store (docs/kvstore.md): kill -9
# at seeded random moments of decode and of a long prefill, ENOSPC through the store's
# QWEN_KVS_FAIL_AFTER hook, a flipped byte in a block, encryption with --key, a second
# writer. The lib-level cases (every torn byte, every ENOSPC point) are in kvstore.bats;
# here the programs must keep their promises: after any kill the store verifies, the
# session holds at least what was known committed, and going on gives bit for bit what
# an uninterrupted run gives (ids and logits). All on the built-in tiny model.
# CRASH_SEED changes the kill moments; CRASH_DECODE_TRIALS / CRASH_PREFILL_TRIALS the
# counts (defaults 150 and 50; 24 and 8 under ASan, build/debug/bin, where each process
# costs several times more).
load helper

# helper.bash's teardown, and the background decode of a test that failed half way stopped
teardown() {
    [ -z "${BG:-}" ] || kill -9 "$BG" 2>/dev/null || true
    rm -rf "$TMP"
}

SEED=${CRASH_SEED:-1}
DEC_TRIALS=${CRASH_DECODE_TRIALS:-150} PRE_TRIALS=${CRASH_PREFILL_TRIALS:-50} SCALE=""
case ${BIN:-bin} in
*build/debug/bin*) # ASan+UBSan: every process several times slower
    DEC_TRIALS=${CRASH_DECODE_TRIALS:-24} PRE_TRIALS=${CRASH_PREFILL_TRIALS:-8}
    SCALE=" (ASan build: scaled down from 150 and 50)" ;;
esac
WORKERS=${CRASH_WORKERS:-4}   # trials run this many at a time (each in its own store)
REC=607872                    # one logits record of the tiny model: 128-byte header + 151936 f32

# the 68 ids of the tiny model's chat reference prompt (t/fixtures/forward)
prompt_ids() {
    python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
m = next(m for m in d["models"] if m["name"] == "tiny")
print(" ".join(map(str, next(p for p in m["prompts"] if p["name"] == "chat")["ids"])))' "$FIX/forward/forward.json"
}

# N seeded kill moments, one line each, "G D": wait until the program's output holds G
# units (G uniform in [0, GMAX)), then D seconds more: uniform in [0, DMAX), or in
# [0, DMAX0) when G is 0, so that some kills land in the program's start.
# moments N GMAX DMAX DMAX0 SEED. Progress, not the clock alone, places the kill: a loaded
# machine (CI, ASan) slows the program and the clock both, so kills timed from the start
# alone land after the end when the measured span was pessimistic.
moments() {
    python3 -c '
import random, sys
n, gmax, dmax, dmax0, seed = sys.argv[1:]
r = random.Random(int(seed))
for _ in range(int(n)):
    g = r.randrange(int(gmax))
    print(g, "%.4f" % r.uniform(0, float(dmax if g else dmax0)))' "$@"
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

# kill_after FILE BYTES DELAY CMD...: start CMD in the background (stdin and stdout
# redirected by the caller), wait until FILE holds BYTES bytes (or CMD ended), then DELAY
# seconds, then kill -9 it and reap it. Sets KILLED=1 if it was still running.
kill_after() {
    local file=$1 bytes=$2 delay=$3 pid
    shift 3
    "$@" 3>&- &
    pid=$!
    while kill -0 "$pid" 2>/dev/null && [ "$(stat -c %s "$file" 2>/dev/null || echo 0)" -lt "$bytes" ]; do
        sleep 0.01
    done
    sleep "$delay"
    KILLED=0
    kill -9 "$pid" 2>/dev/null && KILLED=1
    wait "$pid" 2>/dev/null || true
}

# worker TRIAL_FN W COUNT: trials W, W+WORKERS, ... below COUNT, one after another,
# stopping at the first that fails; each prints one line of facts to $TMP/facts.W.
worker() {
    local fn=$1 w=$2 i
    for ((i = w; i < $3; i += WORKERS)); do
        "$fn" "$i" >> "$TMP/facts.$w" || { echo "trial $i (seed $SEED, after ${G[$i]} units and ${D[$i]} s) failed" >&2; return 1; }
    done
}

# Seconds that WORKERS uninterrupted runs take side by side (FN j runs the j-th): the
# span the kill moments are drawn from, so that they land inside a run under the same load.
span() {
    local t0 j pids=()
    t0=$(now)
    for ((j = 0; j < WORKERS; j++)); do "$1" "$j" & pids+=($!); done
    for j in "${pids[@]}"; do wait "$j"; done
    elapsed "$t0"
}

# verify_killed STORE [SESSION]: `kvstore verify` after a kill passes, or names only the
# last commit as torn: Linux ends a killed process's write() between pages, so a commit
# can be cut at a page boundary (the session then opens at the commit before; the next
# writer truncates the rest). Sets TORN=1 in that case.
verify_killed() {
    TORN=0
    if "$BIN/kvstore" --store "$1" verify ${2:-} > "$1.v" 2>&1 && [ "$(cat "$1.v")" = "0 problems" ]; then return 0; fi
    if [ "$(wc -l < "$1.v")" -eq 2 ] && [ "$(sed -n 2p "$1.v")" = "1 problem" ] &&
        grep -qE '^kvstore: [a-z]+: [0-9]+ bytes after the last good record at offset [0-9]+ \(an interrupted commit, or corruption\)$' "$1.v"; then
        TORN=1
        return 0
    fi
    echo "verify failed:" >&2; cat "$1.v" >&2
    return 1
}

run_workers() { # run_workers TRIAL_FN COUNT: every trial, WORKERS at a time
    local w pids=() rc=0
    for ((w = 0; w < WORKERS; w++)); do
        worker "$1" "$w" "$2" 2> "$TMP/worker.$w" &
        pids+=($!)
    done
    for w in "${!pids[@]}"; do
        wait "${pids[$w]}" || { rc=1; echo "worker $w:"; cat "$TMP/worker.$w"; }
    done
    return $rc
}

# --- decode ---------------------------------------------------------------------------
# A trial: copy the template store (session base: the prompt, prefilled), run
# `decode -n DN` greedy in it, kill -9 at the trial's moment. Then:
#   - kvstore verify passes (or names only a torn last commit: verify_killed);
#   - every id decode printed is the reference's, and the session holds the prompt then
#     the first c of them, printed-1 <= c <= printed (an id is printed, then fed and
#     committed, so only the one in flight can be missing);
#   - kvstore gc empties tmp/;
#   - decode -n 2 going on from it prints the reference's next ids, and the logits of
#     both steps equal the uninterrupted run's bit for bit (the second step reads every
#     stored K/V row, the first the stored hidden state).
DN=48 DK=2 NP=68
dec_trial() {
    local i=$1 s=$TMP/d$1 printed n c
    cp -a "$TMP/tpl" "$s" || return 1
    kill_after "$s.out" "$(head -n "${G[$i]}" "$TMP/ref.ids" | wc -c)" "${D[$i]}" "$BIN/decode" --store "$s" -k base -n $DN --temp 0 --stop 999999 < /dev/null > "$s.out" 2> "$s.err"
    printed=$(wc -l < "$s.out")
    head -n "$printed" "$s.out" | cmp -s - <(head -n "$printed" "$TMP/ref.ids") ||
        { echo "printed ids differ from the reference's"; diff "$s.out" "$TMP/ref.ids"; return 1; } >&2
    if [ "$KILLED" = 0 ] && [ "$printed" -ne $DN ]; then
        echo "decode ended by itself after $printed ids:" >&2; cat "$s.err" >&2; return 1
    fi
    verify_killed "$s" || return 1
    "$BIN/kvstore" --store "$s" tokens base > "$s.tok" 2>&1 || { echo "tokens failed:" >&2; cat "$s.tok" >&2; return 1; }
    n=$(wc -w < "$s.tok")
    c=$((n - NP))
    if [ "$c" -lt $((printed - 1)) ] || [ "$c" -gt "$printed" ]; then
        echo "session holds $c decoded positions, decode printed $printed ids" >&2; return 1
    fi
    [ "$(cat "$s.tok")" = "$(echo $PROMPT $(head -n "$c" "$TMP/ref.ids"))" ] ||
        { echo "session tokens are not the prompt + the first $c reference ids" >&2; return 1; }
    # gc sweeps what the kill left in tmp/ and drops no block the session names
    "$BIN/kvstore" --store "$s" gc > "$s.gc" 2>&1 || { echo "gc failed:" >&2; cat "$s.gc" >&2; return 1; }
    [ -z "$(ls "$s/tmp")" ] || { echo "gc left files in tmp/" >&2; return 1; }
    "$BIN/decode" --store "$s" -k base -n $DK --stop 999999 \
        --sampler "tee '$s.npy' | '$BIN/sample' --greedy" < /dev/null > "$s.more" 2> "$s.err" ||
        { echo "decode going on failed:" >&2; cat "$s.err" >&2; return 1; }
    cmp -s "$s.more" <(sed -n "$((c + 1)),$((c + DK))p" "$TMP/ref.ids") ||
        { echo "going on from $c: got $(echo $(cat "$s.more")), want $(echo $(sed -n "$((c + 1)),$((c + DK))p" "$TMP/ref.ids"))" >&2; return 1; }
    cmp -n $((DK * REC)) -i $((c * REC)):0 "$TMP/ref.npy" "$s.npy" >&2 ||
        { echo "logits going on from $c differ from the uninterrupted run's" >&2; return 1; }
    local torn=$TORN
    [ "$("$BIN/kvstore" --store "$s" verify)" = "0 problems" ] || { echo "verify after going on failed" >&2; return 1; }
    echo "killed=$KILLED printed=$printed c=$c torn=$torn"
    rm -rf "$s" "$s".*
}

dec_full() {
    cp -a "$TMP/tpl" "$TMP/full$1"
    "$BIN/decode" --store "$TMP/full$1" -k base -n $DN --temp 0 --stop 999999 < /dev/null > /dev/null
}

@test "crash: kill -9 at $DEC_TRIALS seeded moments of decode$SCALE: verify passes, every printed id but the one in flight committed, gc keeps it, going on is bit for bit the uninterrupted run" {
    PROMPT=$(prompt_ids)
    [ "$(echo $PROMPT | wc -w)" -eq $NP ]
    echo "$PROMPT" | "$BIN/prefill" --store "$TMP/tpl" -k base > /dev/null
    # the reference: uninterrupted greedy decode, in-process and through `sample` (every
    # step's logits kept), in copies of the template
    cp -a "$TMP/tpl" "$TMP/r1"
    "$BIN/decode" --store "$TMP/r1" -k base -n $((DN + DK)) --temp 0 --stop 999999 < /dev/null > "$TMP/ref.ids"
    [ "$(wc -l < "$TMP/ref.ids")" -eq $((DN + DK)) ]
    cp -a "$TMP/tpl" "$TMP/r2"
    "$BIN/decode" --store "$TMP/r2" -k base -n $((DN + DK)) --stop 999999 \
        --sampler "tee '$TMP/ref.npy' | '$BIN/sample' --greedy" < /dev/null > "$TMP/ref2.ids"
    cmp "$TMP/ref.ids" "$TMP/ref2.ids"
    [ "$(stat -c %s "$TMP/ref.npy")" -eq $(((DN + DK) * REC)) ]
    # how long an uninterrupted run takes here, WORKERS at once: the scale of the delays
    t=$(span dec_full)
    # kill moments: after G of the DN ids were printed, then up to 3 steps' time more (or
    # anywhere in the first three quarters of a run)
    moments "$DEC_TRIALS" $DN "$(awk -v t="$t" -v n=$DN 'BEGIN { print 3 * t / n }')" "$(awk -v t="$t" 'BEGIN { print 0.75 * t }')" "$SEED" > "$TMP/moments"
    mapfile -t G < <(cut -d' ' -f1 "$TMP/moments")
    mapfile -t D < <(cut -d' ' -f2 "$TMP/moments")
    export PROMPT
    run_workers dec_trial "$DEC_TRIALS"
    cat "$TMP"/facts.* > "$TMP/facts"
    [ "$(wc -l < "$TMP/facts")" -eq "$DEC_TRIALS" ]
    mid=$(grep -c 'killed=1 printed=[1-9]' "$TMP/facts" || true)
    lost=$(awk '{ split($2, p, "="); split($3, c, "="); if (c[2] == p[2] - 1) n++ } END { print n + 0 }' "$TMP/facts")
    early=$(grep -c 'killed=1 printed=0 ' "$TMP/facts" || true)
    echo "# decode: $DEC_TRIALS trials (seed $SEED, an uninterrupted run $t s, $WORKERS at a time): $mid killed mid-generation ($lost between an id's print and its commit), $early before the first id, $(grep -c 'torn=1' "$TMP/facts" || true) cut inside a commit's write" >&3
    # most trials must really have cut a generation short
    [ "$mid" -ge $((DEC_TRIALS / 3)) ]
}

# --- prefill --------------------------------------------------------------------------
# A trial: an empty store, `prefill` of 6 sequences (one commit each, 168 positions in
# all, crossing 10 block boundaries), kill -9 at the trial's moment. Then verify passes,
# the session ends at a sequence boundary holding exactly those sequences' ids, at least
# as many as the logits records prefill wrote (a sequence's record is written only after
# it is committed), and prefill of the remaining sequences gives the reference's logits
# records bit for bit.
pre_trial() {
    local i=$1 s=$TMP/p$1 recs n k=0
    TORN=0
    kill_after "$s.out" $((G[$i] * REC)) "${D[$i]}" "$BIN/prefill" --store "$s" -k p "$TMP/seqs" < /dev/null > "$s.out" 2> "$s.err"
    recs=$(($(stat -c %s "$s.out") / REC))
    cmp -s -n $((recs * REC)) "$s.out" "$TMP/ref.npy" || { echo "logits written before the kill differ" >&2; return 1; }
    if [ "$KILLED" = 0 ] && [ "$recs" -ne "${#CUM[@]}" ]; then
        echo "prefill ended by itself after $recs records:" >&2; cat "$s.err" >&2; return 1
    fi
    if [ ! -e "$s/sessions/p.kvs" ]; then # killed before the session was made
        [ "$recs" -eq 0 ] || { echo "no session after $recs records" >&2; return 1; }
        n=0
    else
        # (the session, not the whole store: `kvstore verify` of a store without a block
        # file trips UBSan, see the last test)
        verify_killed "$s" p || return 1
        "$BIN/kvstore" --store "$s" tokens p > "$s.tok" 2>&1 || { echo "tokens failed:" >&2; cat "$s.tok" >&2; return 1; }
        n=$(wc -w < "$s.tok")
        if [ "$n" -gt 0 ] && [ "$(cat "$s.tok")" != "$(echo $(cat "$TMP/seqs") | cut -d' ' -f1-"$n")" ]; then
            echo "the session's $n tokens are not the input's first $n" >&2; return 1
        fi
    fi
    # the sequences committed: n must be a boundary, and at least the records written
    while [ "$k" -lt "${#CUM[@]}" ] && [ "${CUM[$k]}" -lt "$n" ]; do k=$((k + 1)); done
    if [ "$n" -ne 0 ] && { [ "$k" -eq "${#CUM[@]}" ] || [ "${CUM[$k]}" -ne "$n" ]; }; then
        echo "the session holds $n positions, not a sequence boundary (${CUM[*]})" >&2; return 1
    fi
    [ "$n" -eq 0 ] || k=$((k + 1))   # sequences committed
    [ "$k" -ge "$recs" ] || { echo "$recs logits records written but only $k sequences committed" >&2; return 1; }
    if [ "$k" -lt "${#CUM[@]}" ]; then
        tail -n +$((k + 1)) "$TMP/seqs" | "$BIN/prefill" --store "$s" -k p -v > "$s.more" 2> "$s.err" ||
            { echo "prefill going on failed:" >&2; cat "$s.err" >&2; return 1; }
        cmp -i $((k * REC)):0 "$TMP/ref.npy" "$s.more" >&2 ||
            { echo "logits going on after $k sequences differ from the uninterrupted run's" >&2; return 1; }
    fi
    [ "$("$BIN/kvstore" --store "$s" tokens p)" = "$(echo $(cat "$TMP/seqs"))" ] ||
        { echo "after going on, the session does not hold every input id" >&2; return 1; }
    [ "$("$BIN/kvstore" --store "$s" verify p)" = "0 problems" ] || { echo "verify after going on failed" >&2; return 1; }
    echo "killed=$KILLED records=$recs committed=$k torn=${TORN:-0} reused=$(sed -n 's/.* \([0-9]*\) reused.*/\1/p' "$s.err")"
    rm -rf "$s" "$s".*
}

pre_full() { "$BIN/prefill" --store "$TMP/full$1" -k p "$TMP/seqs" > /dev/null; }

@test "crash: kill -9 at $PRE_TRIALS seeded moments of a 6-sequence prefill$SCALE: verify passes, the session ends at a committed sequence, going on is bit for bit" {
    python3 -c '
import random
r = random.Random(5)
for n in (21, 40, 7, 33, 48, 19): print(" ".join(str(r.randrange(151000)) for _ in range(n)))' > "$TMP/seqs"
    CUM=(21 61 68 101 149 168)
    "$BIN/prefill" --store "$TMP/r" -k p "$TMP/seqs" > "$TMP/ref.npy"
    [ "$(stat -c %s "$TMP/ref.npy")" -eq $((6 * REC)) ]
    t=$(span pre_full)
    # kill moments: after G of the 6 records were written, then up to a sixth of a run more
    # (or anywhere in the first three quarters of a run)
    moments "$PRE_TRIALS" 6 "$(awk -v t="$t" 'BEGIN { print t / 6 }')" "$(awk -v t="$t" 'BEGIN { print 0.75 * t }')" "$((SEED + 1000))" > "$TMP/moments"
    mapfile -t G < <(cut -d' ' -f1 "$TMP/moments")
    mapfile -t D < <(cut -d' ' -f2 "$TMP/moments")
    run_workers pre_trial "$PRE_TRIALS"
    cat "$TMP"/facts.* > "$TMP/facts"
    [ "$(wc -l < "$TMP/facts")" -eq "$PRE_TRIALS" ]
    mid=$(grep -c 'killed=1 records=[0-5] committed=[1-5] ' "$TMP/facts" || true)
    reused=$(grep -c 'reused=[1-9]' "$TMP/facts" || true)
    echo "# prefill: $PRE_TRIALS trials (seed $SEED, an uninterrupted run $t s, $WORKERS at a time): $mid killed with 1-5 of 6 sequences committed, $reused went on reusing blocks sealed before the kill, $(grep -c 'torn=1' "$TMP/facts" || true) cut inside a commit's write" >&3
    [ "$mid" -ge $((PRE_TRIALS / 4)) ]
}

# --- ENOSPC ---------------------------------------------------------------------------
# The store's testing hook QWEN_KVS_FAIL_AFTER=BYTES makes every write and sync fail with
# ENOSPC once BYTES bytes went through it. Swept over a commit (block files, session
# records, the sync) until the program gets through.
NOSPACE='No space left on device'
# the one error line: prog, the session, write, ENOSPC (docs/kvstore.md: `prog: SESSION:
# write: No space left on device`), naming the block when a block's write failed
enospc_line() { # enospc_line PROG LINE
    [[ "$2" =~ ^$1:\ s:\ write:\ $NOSPACE(\ \(block\ [0-9a-f]{64}\))?$ ]]
}

@test "crash: ENOSPC at every 3989th byte of a prefill's commit: one clear error, exit 1, the session at its last commit, verify passes, a retry without the hook is bit for bit" {
    python3 -c '
import random
r = random.Random(9)
for n in (10, 45): print(" ".join(str(r.randrange(151000)) for _ in range(n)))' > "$TMP/seqs"
    "$BIN/prefill" --store "$TMP/ref" -k s "$TMP/seqs" > "$TMP/ref.npy"
    head -1 "$TMP/seqs" | "$BIN/prefill" --store "$TMP/tpl" -k s > /dev/null
    fails=0
    for ((b = 0; ; b += 3989)); do
        rm -rf "$TMP/st"
        cp -a "$TMP/tpl" "$TMP/st"
        tail -1 "$TMP/seqs" > "$TMP/in"
        run env QWEN_KVS_FAIL_AFTER=$b "$BIN/prefill" --store "$TMP/st" -k s < "$TMP/in"
        [ "$status" -ne 0 ] || break    # the hook is past this commit's last byte
        echo "at $b: $output"
        [ "$status" -eq 1 ]
        [ "${#lines[@]}" -eq 1 ]
        enospc_line prefill "$output"
        fails=$((fails + 1))
        # at its last commit: the first sequence, verified, the partial commit cut away
        [ "$(stat -c %s "$TMP/st/sessions/s.kvs")" -eq "$(stat -c %s "$TMP/tpl/sessions/s.kvs")" ]
        [ "$("$BIN/kvstore" --store "$TMP/st" tokens s)" = "$(head -1 "$TMP/seqs")" ]
        [ "$("$BIN/kvstore" --store "$TMP/st" verify s)" = "0 problems" ]
        "$BIN/kvstore" --store "$TMP/st" info s | grep -q '^positions   10$'
        # the retry gets the logits an uninterrupted run got
        "$BIN/prefill" --store "$TMP/st" -k s "$TMP/in" > "$TMP/more.npy"
        cmp -i $REC:0 "$TMP/ref.npy" "$TMP/more.npy"
        [ "$("$BIN/kvstore" --store "$TMP/st" tokens s)" = "$(echo $(cat "$TMP/seqs"))" ]
        [ "$("$BIN/kvstore" --store "$TMP/st" verify)" = "0 problems" ]
    done
    echo "# prefill: ENOSPC at $fails points, the commit went through with the hook at $b bytes" >&3
    # 45 positions: 3 blocks (~16.6 KB each) and the session records
    [ "$fails" -ge 12 ]
}

@test "crash: ENOSPC at every 3331st byte of decode's commits: one clear error, exit 1, every id but the failed one committed, verify passes, going on is bit for bit" {
    echo "$(prompt_ids)" | "$BIN/prefill" --store "$TMP/tpl" -k s > /dev/null
    cp -a "$TMP/tpl" "$TMP/ref"
    n=20
    "$BIN/decode" --store "$TMP/ref" -k s -n $n --stop 999999 \
        --sampler "tee '$TMP/ref.npy' | '$BIN/sample' --greedy" < /dev/null > "$TMP/ref.ids"
    [ "$(wc -l < "$TMP/ref.ids")" -eq $n ]
    fails=0
    for ((b = 0; ; b += 3331)); do
        rm -rf "$TMP/st"
        cp -a "$TMP/tpl" "$TMP/st"
        QWEN_KVS_FAIL_AFTER=$b "$BIN/decode" --store "$TMP/st" -k s -n $n --temp 0 --stop 999999 \
            < /dev/null > "$TMP/out" 2> "$TMP/err" && break  # the hook is past the last commit
        status=$?
        echo "at $b: status $status, $(wc -l < "$TMP/out") ids, $(cat "$TMP/err")"
        [ "$status" -eq 1 ]
        [ "$(wc -l < "$TMP/err")" -eq 1 ]
        enospc_line decode "$(cat "$TMP/err")"
        fails=$((fails + 1))
        # the id whose commit failed was printed; every one before it is in the session
        printed=$(wc -l < "$TMP/out")
        [ "$printed" -ge 1 ]
        head -n "$printed" "$TMP/ref.ids" | cmp - "$TMP/out"
        c=$((printed - 1))
        [ "$("$BIN/kvstore" --store "$TMP/st" tokens s)" = "$(echo $(prompt_ids) $(head -n $c "$TMP/ref.ids"))" ]
        [ "$("$BIN/kvstore" --store "$TMP/st" verify)" = "0 problems" ]
        # going on without the hook: the uninterrupted run's ids and logits
        "$BIN/decode" --store "$TMP/st" -k s -n $((n - c)) --stop 999999 \
            --sampler "tee '$TMP/more.npy' | '$BIN/sample' --greedy" < /dev/null > "$TMP/more.ids"
        tail -n +$((c + 1)) "$TMP/ref.ids" | cmp - "$TMP/more.ids"
        cmp -i $((c * REC)):0 "$TMP/ref.npy" "$TMP/more.npy"
    done
    echo "# decode: ENOSPC at $fails points, $n steps went through with the hook at $b bytes" >&3
    [ "$fails" -ge 12 ]
}

# --- corruption -----------------------------------------------------------------------
# the block files of session NAME in chain order (block i covers positions 16i..16i+15):
# a block's own name is at bytes 32..63 of its file, its parent's at 64..95
chain() {
    python3 -c '
import os, sys
files = {}
for root, _, names in os.walk(sys.argv[1] + "/blocks"):
    for n in names:
        d = open(os.path.join(root, n), "rb").read(96)
        files[d[32:64]] = (d[64:96], os.path.join(root, n))
child = {parent: name for name, (parent, _) in files.items()}
first = [n for n, (p, _) in files.items() if p not in files]
assert len(first) == 1, "one chain expected"
n = first[0]
while n is not None:
    print(files[n][1]); n = child.get(n)' "$1"
}

@test "crash: a flipped byte in a block: verify names it, decode and prefill refuse the session naming it, never crash; recomputing the prompt heals it" {
    ids=$(prompt_ids)   # 68 positions: 4 blocks and a tail of 4
    echo "$ids" | "$BIN/prefill" -k s > /dev/null
    echo "$ids" | "$BIN/prefill" --store "$TMP/ref" -k s > /dev/null
    "$BIN/decode" --store "$TMP/ref" -k s -n 6 --temp 0 --stop 999999 < /dev/null > "$TMP/ref.ids"
    mapfile -t B < <(chain "$QWEN_KVSTORE")
    [ "${#B[@]}" -eq 4 ]
    f=${B[1]} name=$(basename "${B[1]}")
    cp "$f" "$TMP/good"
    flip "$f" 4000
    run cmp -s "$f" "$TMP/good"
    [ "$status" -ne 0 ]
    run "$BIN/kvstore" verify
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = "kvstore: s: block $name: checksum mismatch" ]
    [ "${lines[1]}" = "1 problem" ]
    run "$BIN/kvstore" verify s
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = "kvstore: s: block $name: checksum mismatch" ]
    run "$BIN/decode" -k s -n 2 --temp 0
    [ "$status" -eq 1 ]
    [ "$output" = "decode: s: block $name: checksum mismatch" ]
    run bash -c "echo 5 | '$BIN/decode' -k s -n 2 --temp 0"
    [ "$status" -eq 1 ]
    [ "$output" = "decode: s: block $name: checksum mismatch" ]
    run bash -c "echo 5 6 | '$BIN/prefill' -k s"
    [ "$status" -eq 1 ]
    [ "$output" = "prefill: s: block $name: checksum mismatch" ]
    run "$BIN/kvstore" tokens s
    [ "$status" -eq 1 ]
    [ "$output" = "kvstore: s: block $name: checksum mismatch" ]
    # the flipped byte in the block's tokens instead of its K/V: the same
    cp "$TMP/good" "$f"
    printf '\x01' | dd of="$f" bs=1 seek=100 conv=notrunc status=none
    run "$BIN/decode" -k s -n 2 --temp 0
    [ "$status" -eq 1 ]
    [ "$output" = "decode: s: block $name: checksum mismatch" ]
    # a block cut short
    head -c 1000 "$TMP/good" > "$f"
    run "$BIN/decode" -k s -n 2 --temp 0
    [ "$status" -eq 1 ]
    [[ "$output" == "decode: s: block $name: "* ]]
    # the same prompt in another session: reuse stops at the bad block, and the commit
    # rewrites it from the recomputed rows
    run bash -c "echo '$ids' | '$BIN/prefill' -k t -v 2>&1 >/dev/null"
    [ "$status" -eq 0 ]
    [[ "$output" == *"52 positions computed"*" 16 reused from the store"* ]]
    cmp "$f" "$TMP/good"
    [ "$("$BIN/kvstore" verify)" = "0 problems" ]
    "$BIN/decode" -k s -n 6 --temp 0 --stop 999999 < /dev/null > "$TMP/s.ids"
    cmp "$TMP/ref.ids" "$TMP/s.ids"
}

# --- encryption -----------------------------------------------------------------------
@test "crash: --key through prefill and decode: same logits and ids as a plain store, no token in the clear, no key or a wrong key a clear error" {
    head -c 32 /dev/urandom > "$TMP/key"
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$TMP/wrong"   # 64 hex digits
    ids=$(prompt_ids)
    echo "$ids" | "$BIN/prefill" --key "$TMP/key" -k s > "$TMP/enc.npy"
    echo "$ids" | "$BIN/prefill" --store "$TMP/plain" -k s > "$TMP/plain.npy"
    cmp "$TMP/enc.npy" "$TMP/plain.npy"
    "$BIN/decode" --key "$TMP/key" -k s -n 5 --temp 0 --stop 999999 < /dev/null > "$TMP/enc.ids"
    "$BIN/decode" --store "$TMP/plain" -k s -n 5 --temp 0 --stop 999999 < /dev/null > "$TMP/plain.ids"
    cmp "$TMP/enc.ids" "$TMP/plain.ids"
    # read back with the key in new processes: the tokens, and going on from the stored state
    [ "$("$BIN/kvstore" --key "$TMP/key" tokens s)" = "$(echo $ids $(cat "$TMP/enc.ids"))" ]
    [ "$("$BIN/kvstore" --key "$TMP/key" verify)" = "0 problems" ]
    "$BIN/decode" --key "$TMP/key" -k s -n 3 --temp 0 --stop 999999 < /dev/null >> "$TMP/enc.ids"
    "$BIN/decode" --store "$TMP/plain" -k s -n 3 --temp 0 --stop 999999 < /dev/null >> "$TMP/plain.ids"
    cmp "$TMP/enc.ids" "$TMP/plain.ids"
    # prefix reuse works inside the encrypted store
    run bash -c "echo '$ids' | '$BIN/prefill' --key '$TMP/key' -k t -v 2>&1 >/dev/null"
    [ "$status" -eq 0 ]
    [[ "$output" == *" 64 reused from the store"* ]]
    # no run of 8 prompt ids (int32 LE) in any file of the encrypted store; in the plain one, yes
    python3 -c '
import os, struct, sys
ids = [int(x) for x in sys.argv[3].split()]
def found(store):
    for root, _, names in os.walk(store):
        for n in names:
            d = open(os.path.join(root, n), "rb").read()
            if any(struct.pack("<8i", *ids[i:i + 8]) in d for i in range(0, len(ids) - 8, 4)): return True
    return False
assert not found(sys.argv[1]), "prompt ids in the clear in the encrypted store"
assert found(sys.argv[2]), "the check finds nothing even in the plain store"' "$QWEN_KVSTORE" "$TMP/plain" "$ids"
    # no key, wrong key: one clear line, exit 1, for every program
    for cmd in "decode -n 1" prefill; do
        p=${cmd%% *}
        run bash -c "echo 5 | '$BIN/'$cmd -k s 2>&1 >/dev/null"
        [ "$status" -eq 1 ]
        [ "$output" = "$p: store $QWEN_KVSTORE is encrypted: give its key (--key FILE)" ]
        run bash -c "echo 5 | '$BIN/'$cmd --key '$TMP/wrong' -k s 2>&1 >/dev/null"
        [ "$status" -eq 1 ]
        [ "$output" = "$p: wrong key for store $QWEN_KVSTORE" ]
    done
    run "$BIN/kvstore" tokens s
    [ "$status" -eq 1 ]
    [ "$output" = "kvstore: store $QWEN_KVSTORE is encrypted: give its key (--key FILE)" ]
    # and a key given to a plain store
    run bash -c "'$BIN/decode' --store '$TMP/plain' --key '$TMP/key' -k s -n 1 < /dev/null"
    [ "$status" -eq 1 ]
    [ "$output" = "decode: store $TMP/plain is not encrypted (it was made without a key)" ]
    # nothing above changed the session
    [ "$("$BIN/kvstore" --key "$TMP/key" tokens s)" = "$(echo $ids $(cat "$TMP/enc.ids"))" ]
}

# --- one writer -----------------------------------------------------------------------
@test "crash: while decode runs, a second writer is refused (prefill, decode, trim, rm), readers read; SIGTERM stops decode with every printed id committed" {
    ids=$(prompt_ids)
    echo "$ids" | "$BIN/prefill" -k s > /dev/null
    "$BIN/decode" -k s -n 100000 --temp 0 --stop 999999 < /dev/null > "$TMP/out" 2> "$TMP/err" 3>&- &
    pid=$! BG=$!
    for ((i = 0; i < 600; i++)); do [ -s "$TMP/out" ] && break; sleep 0.05; done
    [ -s "$TMP/out" ]
    run bash -c "echo 5 | '$BIN/prefill' -k s"
    [ "$status" -eq 1 ]
    [ "$output" = "prefill: session s is in use by another process" ]
    run bash -c "echo 5 | '$BIN/decode' -k s -n 1"
    [ "$status" -eq 1 ]
    [ "$output" = "decode: session s is in use by another process" ]
    run "$BIN/kvstore" trim s 10
    [ "$output" = "kvstore: session s is in use by another process" ]
    run "$BIN/kvstore" rm s
    [ "$output" = "kvstore: session s is in use by another process" ]
    # readers see a whole commit: the prompt and then the ids decode printed
    run "$BIN/kvstore" tokens s
    [ "$status" -eq 0 ]
    set -- $output
    [ "$#" -gt 68 ]
    [ "$(echo ${@:1:68})" = "$(echo $ids)" ]
    "$BIN/kvstore" fork s copy
    [ "$(wc -w < <("$BIN/kvstore" tokens copy))" -gt 68 ]
    kill -0 "$pid"    # still generating all along
    kill -TERM "$pid"
    wait "$pid"       # a clean stop: exit 0
    BG=
    [ "$("$BIN/kvstore" tokens s)" = "$(echo $ids $(cat "$TMP/out"))" ]
    [ "$("$BIN/kvstore" verify)" = "0 problems" ]
    echo 5 | "$BIN/prefill" -k s > /dev/null
    [ "$("$BIN/kvstore" tokens s)" = "$(echo $ids $(cat "$TMP/out") 5)" ]
}

# --- empty stores ---------------------------------------------------------------------
@test "crash: kvstore ls, verify and gc on a store with no session, and with sessions but no block file" {
    run "$BIN/kvstore" ls
    [ "$status" -eq 0 ]
    [ "${#lines[@]}" -eq 1 ]
    [[ "${lines[0]}" == "name "* ]]
    run "$BIN/kvstore" verify
    [ "$status" -eq 0 ]
    [ "$output" = "0 problems" ]
    run "$BIN/kvstore" gc
    [ "$status" -eq 0 ]
    echo "1 2 3" | "$BIN/prefill" -k s > /dev/null   # 3 positions: no block
    [ -z "$(find "$QWEN_KVSTORE/blocks" -type f)" ]
    run "$BIN/kvstore" verify
    [ "$status" -eq 0 ]
    [ "$output" = "0 problems" ]
    run "$BIN/kvstore" gc
    [ "$status" -eq 0 ]
    [ "$("$BIN/kvstore" tokens s)" = "1 2 3" ]
}

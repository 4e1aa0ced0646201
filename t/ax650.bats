#!/usr/bin/env bats
# The ax650 backend against the simulated AX engine and AXCL runtimes (t/sim/ax650):
# an ax-llm-style directory made from the seeded tiny model (t/axllm_gen: prefill chunks
# of P=16, shape groups of 1, 32 and 64 history rows, a KV cache of S=96 rows) runs
# through prefill and decode, and is held to the CPU backend on the same weights.
#
# Tolerance: the NPU graph takes and gives bf16 at every layer boundary (hidden state,
# K/V rows, logits), so logits differ from the f32 CPU's by bf16 roundings: we ask a
# cosine of at least 0.9999 per position, and of greedy tokens that each is the CPU's
# argmax given the same prefix or within 0.02 of it (logits of this model lie within
# +-0.76, so 0.02 is ~5 bf16 steps there: a near-tie may go either way).
load helper

MODELS=$PWD/build/models
TINY=$MODELS/tiny

setup_file() {
    export AXDIR=$BATS_FILE_TMPDIR/ax
    "${TBIN:-build/release/t}/axllm_gen" "$PWD/build/models/tiny" "$AXDIR"
}

# The simulated runtimes on the library path; skipped where nothing can be dlopen'd.
sim() {
    case $BIN in */static/*) skip "static build: cannot dlopen the (simulated) AX650 runtime" ;; esac
    [ -f "$TBIN/sim/libax_engine.so" ] || { echo "missing $TBIN/sim/libax_engine.so (make builds it)"; return 1; }
    export LD_LIBRARY_PATH=$TBIN/sim
    AXDIR=$BATS_FILE_TMPDIR/ax
}

# count N: the ids 1..N, one line
ids() { seq -s ' ' 1 "$1"; }

# the greedy tokens and the CPU check of them (see the tolerance above): teacher PROMPT TOKENS...
teacher() {
    local prompt=$1
    shift
    echo "$prompt $*" | "$BIN/prefill" -m "$TINY" --all-logits -k teacher-$RANDOM > "$TMP/all.npy"
    python3 "$PWD/t/ax650/teacher.py" "$(echo $prompt | wc -w)" 0.02 "$TMP/all.npy" "$@"
}

@test "ax650: prefill and decode --help list the ax650 backend" {
    for p in prefill decode; do
        run "$BIN/$p" --help
        [ "$status" -eq 0 ]
        [[ "$output" == *"--backend NAME"*"ax650"* ]]
    done
}

@test "ax650: the bf16 embedding file is the checkpoint's table byte for byte, and embed -m on the ax-llm directory reads it" {
    # tiny is a BF16 checkpoint: ax-llm's truncation to bf16 must leave its bytes as they are
    python3 -c '
import json, struct, sys
d = open(sys.argv[1] + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", d[:8])[0]
t = json.loads(d[8:8 + n])["model.embed_tokens.weight"]
assert t["dtype"] == "BF16", t
a, b = t["data_offsets"]
open(sys.argv[2], "wb").write(d[8 + n + a:8 + n + b])' "$TINY" "$TMP/embed.bin"
    cmp "$TMP/embed.bin" "$AXDIR/qwen3-ax650/model.embed_tokens.weight.bfloat16.bin"
    echo "0 9707 151935" | "$BIN/embed" -m "$AXDIR" > "$TMP/ax.npy"
    echo "0 9707 151935" | "$BIN/embed" -m "$TINY" > "$TMP/cpu.npy"
    cmp "$TMP/ax.npy" "$TMP/cpu.npy"
}

@test "ax650: tok and detok take the ax-llm directory itself (its qwen3_tokenizer/), as the checkpoint's tokenizer" {
    run bash -c "set -o pipefail; echo 'Hello, AX650' | '$BIN/tok' -m '$AXDIR'"
    [ "$status" -eq 0 ]
    want=$(echo 'Hello, AX650' | "$BIN/tok" -m "$TINY")
    [ "$output" = "$want" ]
    run bash -c "set -o pipefail; echo '$want' | '$BIN/detok' -m '$AXDIR'"
    [ "$status" -eq 0 ]
    [ "$output" = "Hello, AX650" ]
    run "$BIN/tok" -m "$TMP" </dev/null
    [ "$status" -eq 1 ]
    [[ "${lines[0]}" == *"$TMP/tokenizer.json: No such file or directory" ]]
}

@test "ax650: an HTTP-era directory (empty config.json, the files named by its run script's flags) runs the same" {
    sim
    cp -r "$AXDIR" "$TMP/http"
    : > "$TMP/http/config.json"
    # as AXERA-TECH/Qwen3-4B ships them: the on-board script, and an AXCL one (other paths: not taken)
    cat > "$TMP/http/run_qwen3_sim_ax650.sh" <<'EOF'
./main_ax650 --system_prompt "You are Qwen." \
  --template_filename_axmodel "qwen3-ax650/qwen3_p16_l%d_together.axmodel" --axmodel_num 2 \
  --url_tokenizer_model "http://127.0.0.1:12345" --filename_post_axmodel qwen3-ax650/qwen3_post.axmodel \
  --filename_tokens_embed 'qwen3-ax650/model.embed_tokens.weight.bfloat16.bin' \
  --tokens_embed_num 151936 --tokens_embed_size 64 --use_mmap_load_embed 1 --live_print 1
EOF
    sed 's/qwen3-ax650/elsewhere/g' "$TMP/http/run_qwen3_sim_ax650.sh" > "$TMP/http/run_qwen3_sim_axcl_x86.sh"
    ids 20 | "$BIN/prefill" -m "$AXDIR" --backend ax650 -k new > "$TMP/new.npy"
    ids 20 | "$BIN/prefill" -m "$TMP/http" --backend ax650 -k old > "$TMP/old.npy"
    cmp "$TMP/new.npy" "$TMP/old.npy"
    rm "$TMP/http/run_qwen3_sim_ax650.sh" "$TMP/http/run_qwen3_sim_axcl_x86.sh"
    run bash -c "echo 1 | '$BIN/prefill' -m '$TMP/http' --backend ax650 -k old2"
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = "prefill: config.json: not a JSON object" ] # no longer an ax-llm directory: an empty HF one
}

@test "ax650: an ax-llm directory without the HF config takes the released Qwen3 sizes; a wrong embedding file is refused" {
    d=$TMP/q06
    mkdir -p "$d/qwen3-ax650"
    sed -e 's/"axmodel_num": 2/"axmodel_num": 28/' -e 's/"tokens_embed_size": 64/"tokens_embed_size": 1024/' \
        "$AXDIR/config.json" > "$d/config.json"
    truncate -s $((151936 * 1024 * 2)) "$d/qwen3-ax650/model.embed_tokens.weight.bfloat16.bin" # sparse: zeros
    echo "1 151935" | "$BIN/embed" -m "$d" > "$TMP/e.npy"
    python3 -c '
import sys
d = open(sys.argv[1], "rb").read()
assert b"(2, 1024)" in d, d[:200]' "$TMP/e.npy"
    sed -i 's/"axmodel_num": 28/"axmodel_num": 27/' "$d/config.json"
    run bash -c "echo 1 | '$BIN/embed' -m '$d'"
    [ "$status" -eq 1 ]
    [[ "${lines[0]}" == *"no qwen3_tokenizer/config.json"*"hidden 1024 with 27 layers is no Qwen3 we know" ]]
    cp -r "$AXDIR/qwen3_tokenizer" "$d/"
    sed -i 's/"axmodel_num": 27/"axmodel_num": 2/; s/"tokens_embed_size": 1024/"tokens_embed_size": 64/' "$d/config.json"
    run bash -c "echo 1 | '$BIN/embed' -m '$d'"
    [ "$status" -eq 1 ]
    [[ "${lines[0]}" == *"model.embed_tokens.weight.bfloat16.bin: 311164928 bytes, want 19447808 (bf16 [151936][64], tokens_embed_num x tokens_embed_size)" ]]
}

@test "ax650: sample takes the ax-llm directory's post_config.json (top-k 1: the argmax)" {
    sim
    ids 12 | "$BIN/prefill" -m "$AXDIR" --backend ax650 -k p > "$TMP/l.npy"
    got=$("$BIN/sample" --post-config "$AXDIR/post_config.json" < "$TMP/l.npy")
    want=$(python3 -c '
import array, sys
d = open(sys.argv[1], "rb").read(); hl = int.from_bytes(d[8:10], "little")
a = array.array("f"); a.frombytes(d[10 + hl:])
print(max(range(len(a)), key=a.__getitem__))' "$TMP/l.npy")
    [ "$got" = "$want" ]
}

@test "ax650: prefill logits match the CPU's at every position, chunks crossing every shape group and past the last (engine)" {
    sim
    # 90 positions: chunks of 16 over histories 0 (group S_g=1), 16, 32 (32), 48, 64 (64),
    # then past the last group one position at a time through the decode group
    ids 90 | "$BIN/prefill" -m "$TINY" --all-logits -k c > "$TMP/cpu.npy"
    ids 90 | "$BIN/prefill" -m "$AXDIR" --backend ax650 --all-logits -k a > "$TMP/ax.npy"
    run "$BIN/npycmp" --tol 0.9999 "$TMP/cpu.npy" "$TMP/ax.npy"
    echo "$output"
    [ "$status" -eq 0 ]
    # and through every chunk boundary on its own: prompts of 2, 15, 16, 17, 33, 65 positions
    for n in 2 15 16 17 33 65; do
        ids $n | "$BIN/prefill" -m "$TINY" -k c$n > "$TMP/c.npy"
        ids $n | "$BIN/prefill" -m "$AXDIR" --backend ax650 -k a$n > "$TMP/a.npy"
        "$BIN/npycmp" --tol 0.9999 "$TMP/c.npy" "$TMP/a.npy"
    done
}

@test "ax650: Qwen3-0.6B's dimensions (hidden 1024, 8 KV heads x 128, P 128) through two shape groups, both transports" {
    sim
    [ -f "$MODELS/0.6b-2l/config.json" ] || skip "no $MODELS/0.6b-2l (make models)"
    "$TBIN/axllm_gen" --prefill 128 --kv 512 --groups 1,256 "$MODELS/0.6b-2l" "$TMP/ax06"
    seq -s ' ' 1000 1140 | "$BIN/prefill" -m "$MODELS/0.6b-2l" --all-logits -k c > "$TMP/c.npy"
    for t in engine axcl; do
        seq -s ' ' 1000 1140 | AX650_TRANSPORT=$t "$BIN/prefill" -m "$TMP/ax06" --backend ax650 --all-logits -k $t > "$TMP/$t.npy"
        run "$BIN/npycmp" --tol 0.9999 "$TMP/c.npy" "$TMP/$t.npy"
        echo "$t: ${lines[-1]}"
        [ "$status" -eq 0 ]
    done
}

@test "ax650: AXCL gives the engine's logits exactly (the same graphs), from its own device thread" {
    sim
    ids 40 | AX650_TRANSPORT=engine "$BIN/prefill" -m "$AXDIR" --backend ax650 --all-logits -k e > "$TMP/e.npy"
    ids 40 | AX650_TRANSPORT=axcl "$BIN/prefill" -m "$AXDIR" --backend ax650 --all-logits -k x > "$TMP/x.npy"
    run "$BIN/npycmp" "$TMP/e.npy" "$TMP/x.npy"
    echo "$output"
    [[ "${lines[-1]}" == *"0.0000e+00  0.0000e+00  0.0000e+00  1.000000000"* ]]
}

@test "ax650: greedy tokens are the CPU's given the same prefix (engine and AXCL)" {
    sim
    p=$(ids 20)
    for t in engine axcl; do
        toks=$(set -o pipefail; echo "$p" | AX650_TRANSPORT=$t "$BIN/prefill" -m "$AXDIR" --backend ax650 -k g$t |
               "$BIN/sample" --greedy | AX650_TRANSPORT=$t "$BIN/decode" -m "$AXDIR" --backend ax650 -k g$t -n 40 --temp 0 --stop 999999 | tr '\n' ' ')
        [ $(echo $toks | wc -w) -eq 40 ]
        run teacher "$p" $toks
        echo "$t: $output"
        [ "$status" -eq 0 ]
    done
}

@test "ax650: the accuracy report compares the NPU with the CPU (model report CHECKPOINT AXDIR::ax650)" {
    sim
    run bash -c "ids() { seq -s ' ' 1 \$1; }; ids 24 | '$BIN/model' report --ids -n 8 '$TINY' '$AXDIR::ax650'"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"B: $AXDIR (scheme none, backend ax650)"* ]]
    cos=$(echo "$output" | sed -n 's/^overall:.* cosine \([0-9.]*\) (min \([0-9.]*\)).*/\2/p')
    python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) >= 0.9999 else 1)" "$cos"
}

@test "ax650: a multi-turn session moves between processes and backends (AX650_MODEL beside the checkpoint)" {
    sim
    export AX650_MODEL=$AXDIR
    p1=$(ids 20) p2=$(seq -s ' ' 300 330) p3=$(seq -s ' ' 500 505)
    g1=$(set -o pipefail; echo "$p1" | "$BIN/prefill" -m "$TINY" --backend ax650 -k s | "$BIN/sample" --greedy |
         "$BIN/decode" -m "$TINY" --backend ax650 -k s -n 6 --temp 0 --stop 999999 | tr '\n' ' ')
    # turn 2 on the CPU, its answer on the NPU
    g2=$(set -o pipefail; echo "$p2" | "$BIN/prefill" -m "$TINY" -k s | "$BIN/sample" --greedy |
         AX650_TRANSPORT=axcl "$BIN/decode" -m "$TINY" --backend ax650 -k s -n 6 --temp 0 --stop 999999 | tr '\n' ' ')
    # turn 3 on the NPU again: its device cache is rebuilt from the session
    echo "$p3" | "$BIN/prefill" -m "$TINY" --backend ax650 -k s > "$TMP/ax.npy"
    all="$p1 $g1 $p2 $g2 $p3"
    echo "$all" | "$BIN/prefill" -m "$TINY" -k whole > "$TMP/cpu.npy"
    run "$BIN/npycmp" --tol 0.9999 "$TMP/cpu.npy" "$TMP/ax.npy"
    echo "$output"
    [ "$status" -eq 0 ]
    run "$BIN/kvstore" ls
    echo "$output"
    [[ "$output" == *"s"*"$(echo $all | wc -w)"* ]]
}

@test "ax650: a session of the ax-llm directory resumes in a later process" {
    sim
    ids 30 | "$BIN/prefill" -m "$AXDIR" --backend ax650 -k r > /dev/null
    seq -s ' ' 100 120 | "$BIN/prefill" -m "$AXDIR" --backend ax650 -k r > "$TMP/two.npy"
    (ids 30; seq -s ' ' 100 120) | tr '\n' ' ' | "$BIN/prefill" -m "$TINY" -k one > "$TMP/one.npy"
    "$BIN/npycmp" --tol 0.9999 "$TMP/one.npy" "$TMP/two.npy"
}

@test "ax650: the context limit (kv_cache_num) is a clear error; the CPU goes on with the same session" {
    sim
    run bash -c "seq -s ' ' 1 97 | '$BIN/prefill' -m '$AXDIR' --backend ax650 -k big"
    [ "$status" -eq 1 ]
    [[ "$output" == *"backend ax650: context full: positions "*"the axmodels hold 96 (kv_cache_num)"* ]]
    export AX650_MODEL=$AXDIR
    run bash -c "set -o pipefail; seq -s ' ' 1 90 | '$BIN/prefill' -m '$TINY' --backend ax650 -k lim | '$BIN/sample' --greedy |
                 '$BIN/decode' -m '$TINY' --backend ax650 -k lim -n 20 --temp 0 --stop 999999"
    echo "$output"
    [ "$status" -eq 1 ]
    [[ "$output" == *"decode: backend ax650: context full: positions 96..96 asked, the axmodels hold 96 (kv_cache_num)"* ]]
    [ $(echo "$output" | grep -c '^[0-9]*$') -eq 7 ] # tokens for positions 90..96: 6 fitted, the 7th's row did not
    run bash -c "echo 5 | '$BIN/decode' -m '$TINY' -k lim -n 3 --temp 0 --stop 999999"
    [ "$status" -eq 0 ]
    [ "${#lines[@]}" -eq 3 ]
}

@test "ax650: misuse: not an ax-llm directory, the CPU on one, a missing layer file, IO that does not match" {
    sim
    run bash -c "echo 1 2 3 | '$BIN/prefill' -m '$TINY' --backend ax650 -k m1"
    [ "$status" -eq 1 ]
    [[ "${lines[0]}" == "prefill: backend ax650: $TINY is not an ax-llm model directory"* ]]
    run bash -c "echo 1 2 3 | '$BIN/prefill' -m '$AXDIR' -k m2"
    [ "$status" -eq 1 ]
    [[ "${lines[0]}" == "prefill: cpu backend: weights must be"* ]]
    cp -r "$AXDIR" "$TMP/ax"
    rm "$TMP/ax/qwen3-ax650/qwen3_p16_l1_together.axmodel"
    run bash -c "echo 1 2 3 | AX650_MODEL='$TMP/ax' '$BIN/prefill' -m '$TINY' --backend ax650 -k m3"
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = "prefill: backend ax650: $TMP/ax/qwen3-ax650/qwen3_p16_l1_together.axmodel: No such file or directory" ]
    cp "$AXDIR/qwen3-ax650/qwen3_p16_l0_together.axmodel" "$TMP/ax/qwen3-ax650/qwen3_p16_l1_together.axmodel"
    sed -i 's/"layer": 0/"layer": 1/; s/"hidden": 64/"hidden": 48/' "$TMP/ax/qwen3-ax650/qwen3_p16_l1_together.axmodel"
    run bash -c "echo 1 2 3 | AX650_MODEL='$TMP/ax' '$BIN/prefill' -m '$TINY' --backend ax650 -k m4"
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = "prefill: backend ax650: $TMP/ax/qwen3-ax650/qwen3_p16_l1_together.axmodel: group 0 input 'input': shape [1,1,48] (96 bytes), want [1,1,64] (128 bytes)" ]
    sed -i 's/"hidden": 48/"hidden": 64/; s/"groups": \[1,32,64\]/"groups": [1,32]/' "$TMP/ax/qwen3-ax650/qwen3_p16_l1_together.axmodel"
    run bash -c "echo 1 2 3 | AX650_TRANSPORT=axcl AX650_MODEL='$TMP/ax' '$BIN/prefill' -m '$TINY' --backend ax650 -k m5"
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = "prefill: backend ax650: $TMP/ax/qwen3-ax650/qwen3_p16_l1_together.axmodel: 3 shape groups, layer 0 has 4" ]
}

@test "ax650: misuse: the runtime missing names the libraries it looked for" {
    dir=$BATS_FILE_TMPDIR/ax
    run bash -c "echo 1 2 3 | AX650_MODEL='$dir' '$BIN/prefill' -m '$dir' --backend ax650 -k m"
    [ "$status" -eq 1 ]
    [[ "${lines[0]}" == "prefill: backend ax650: libax_engine.so: "*"; nor AXCL: libaxcl_rt.so: "* ]]
    case $BIN in */static/*) skip "static build: the message names what dlopen cannot do here" ;; esac
    [ "${lines[0]}" = "prefill: backend ax650: libax_engine.so: cannot open shared object file: No such file or directory (looked on the library path and in /soc/lib; set AX_ENGINE_LIB or LD_LIBRARY_PATH); nor AXCL: libaxcl_rt.so: cannot open shared object file: No such file or directory (looked on the library path and in /usr/lib/axcl; set AXCL_RT_LIB or LD_LIBRARY_PATH)" ]
    run bash -c "echo 1 2 3 | AX_ENGINE_LIB=/nonexistent/libax_engine.so AX650_TRANSPORT=engine '$BIN/prefill' -m '$dir' --backend ax650 -k m"
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = "prefill: backend ax650: /nonexistent/libax_engine.so: cannot open shared object file: No such file or directory (named by AX_ENGINE_LIB)" ]
    run bash -c "echo 1 2 3 | AX650_TRANSPORT=axcl '$BIN/decode' -m '$dir' --backend ax650 -k m"
    [ "$status" -eq 1 ]
    [[ "${lines[0]}" == "decode: backend ax650: libaxcl_rt.so: cannot open shared object file"* ]]
    run bash -c "echo 1 2 3 | AX650_TRANSPORT=npu '$BIN/prefill' -m '$dir' --backend ax650 -k m"
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = "prefill: backend ax650: AX650_TRANSPORT=npu: not engine or axcl" ]
}

@test "ax650: misuse: a failing run call and running out of CMM are clear errors, and the session is kept" {
    sim
    ids 20 | "$BIN/prefill" -m "$AXDIR" --backend ax650 -k f > /dev/null
    for t in engine axcl; do
        fn=AX_ENGINE_RunGroupIOSync
        [ $t = axcl ] && fn=axclrtEngineExecute
        run bash -c "seq -s ' ' 21 40 | AX650_TRANSPORT=$t AXSIM_FAIL_RUN=2 '$BIN/prefill' -m '$AXDIR' --backend ax650 -k f"
        echo "$output"
        [ "$status" -eq 1 ]
        [ "${lines[0]}" = "prefill: backend ax650: $fn(layer 1, group 2): error 0x$([ $t = axcl ] && echo 80030005 || echo 80060004)" ]
        run bash -c "echo 5 | AX650_TRANSPORT=$t AXSIM_CMM_BYTES=20000 '$BIN/decode' -m '$AXDIR' --backend ax650 -k f -n 2"
        echo "$output"
        [ "$status" -eq 1 ]
        if [ $t = engine ]; then
            [[ "${lines[0]}" == "decode: backend ax650: AX_SYS_MemAllocCached("*" bytes for layer "*"): error 0x80010002 (out of CMM? "* ]]
        else
            [[ "${lines[0]}" == "decode: backend ax650: axclrtMalloc("*" bytes for "*"): error 0x80030003 (out of device memory?)" ]]
        fi
    done
    run "$BIN/kvstore" ls
    echo "$output"
    [[ "$output" == *"f"*"20"* ]]
}

@test "ax650: a directory whose name holds printf directives ('%s', '%n') is only a name" {
    d="$TMP/Qwen3 100%s%n%d"
    cp -r "$AXDIR" "$d"
    echo "0 9707" | "$BIN/embed" -m "$AXDIR" > "$TMP/want.npy"
    run bash -c "echo '0 9707' | '$BIN/embed' -m '$d' > '$TMP/got.npy'"
    [ "$status" -eq 0 ]
    cmp "$TMP/want.npy" "$TMP/got.npy"
    sim
    echo "1 2 3" | "$BIN/prefill" -m "$d" --backend ax650 -k p > "$TMP/ax.npy"
    echo "1 2 3" | "$BIN/prefill" -m "$AXDIR" --backend ax650 -k q > "$TMP/ax0.npy"
    cmp "$TMP/ax.npy" "$TMP/ax0.npy"
}

@test "ax650: model dequant refuses an ax-llm directory (its layers are axmodels, not host weights) and writes nothing" {
    run "$BIN/model" dequant "$AXDIR" "$TMP/out"
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = "model: dequant: $AXDIR: no weights on the host to write (an ax-llm directory)" ]
    [ ! -e "$TMP/out" ]
}

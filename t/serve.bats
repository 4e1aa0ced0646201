#!/usr/bin/env bats
# tok --serve: Axera's tokenizer HTTP service, replayed against the answers of a model of
# the Python service on HF transformers (t/gen_serve_fixtures.py), byte for byte; then
# what the Python service could not do: concurrent clients, bad requests, big bodies,
# uid expiry. serve_test ($TBIN) is serve_run with every knob on its command line.
load helper

SESSIONS=$FIX/serve_sessions.jsonl

teardown() {
    stop_server
    rm -rf "$TMP"
}

# start_server CMD...: run CMD (each @PORT@ in it replaced by a free port) in the
# background until it answers; sets PORT and SERVER_PID.
start_server() {
    local try i a args
    for try in 1 2 3 4 5 6 7 8; do
        PORT=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && continue # taken
        args=()
        for a in "$@"; do args+=("${a//@PORT@/$PORT}"); done
        "${args[@]}" 2> "$TMP/server.err" &
        SERVER_PID=$!
        for i in $(seq 200); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            if [ "$(curl -s "http://127.0.0.1:$PORT/" 2>/dev/null)" = '{"error": "Invalid GET endpoint"}' ] &&
                kill -0 "$SERVER_PID" 2>/dev/null; then
                return 0
            fi
            sleep 0.05
        done
        stop_server
    done
    echo "server did not start: $(cat "$TMP/server.err")"
    return 1
}

# stop_server: SIGTERM, as a user's ^C would; SERVER_RC gets its exit status.
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    local i
    for i in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    SERVER_RC=0
    wait "$SERVER_PID" || SERVER_RC=$?
    SERVER_PID=
}

start_tok() { start_server "$BIN/tok" -m "$MODEL" --serve "127.0.0.1:@PORT@" "$@"; }

# The fixture's requests (of one session, or all) as lines of 0x1f-separated fields:
# session, method, path, body, response, bind. No field holds a newline or 0x1f.
fixture_lines() {
    PYTHONIOENCODING=utf-8 python3 -c '
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    d = json.loads(line)
    if sys.argv[2] in ("", d["session"]):
        print("\x1f".join([d["session"], d["method"], d["path"], d.get("body", ""), d["response"],
                           d.get("bind", "")]))' "$SESSIONS" "${1:-}"
}

UUID4='[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}'

# replay [SESSION]: send every recorded request and compare each answer byte for byte.
# A /get_uid binds its placeholder ({{uidN}}) to the uuid the server handed out, and
# that uuid replaces the placeholder in the session's later requests and answers.
replay() {
    local want="$TMP/want.$BASHPID" got="$TMP/got.$BASHPID" n=0 bad=0
    local session method path body response bind k
    local -A uid=()
    while IFS=$'\x1f' read -r session method path body response bind; do
        n=$((n + 1))
        for k in "${!uid[@]}"; do
            path=${path//"$k"/${uid[$k]}}
            body=${body//"$k"/${uid[$k]}}
            response=${response//"$k"/${uid[$k]}}
        done
        if [ "$method" = GET ]; then
            curl -sS -g -o "$got" "http://127.0.0.1:$PORT$path"
        else
            curl -sS -g -o "$got" -H 'Content-Type: application/json' --data-binary "$body" \
                "http://127.0.0.1:$PORT$path"
        fi || { echo "request $n ($session): curl failed"; bad=$((bad + 1)); continue; }
        if [ -n "$bind" ]; then
            if [[ $(cat "$got") =~ ^\{\"uid\":\ \"($UUID4)\"\}$ ]]; then
                uid[$bind]=${BASH_REMATCH[1]}
                response=${response//"$bind"/${uid[$bind]}}
            else
                echo "request $n ($session): not a uuid4 answer: $(cat "$got")"
            fi
        fi
        printf '%s' "$response" > "$want"
        if ! cmp -s "$want" "$got"; then
            echo "request $n ($session): $method $path $body"
            echo "  want $(cat "$want")"
            echo "  got  $(cat "$got")"
            bad=$((bad + 1))
        fi
    done < <(fixture_lines "${1:-}")
    echo "$n requests, $bad answers differ"
    [ "$n" -gt 0 ] && [ "$bad" -eq 0 ]
}

# call METHOD PATH [BODY] -> "STATUS BODY" in $output (a single line: bodies are JSON)
call() {
    local args=(-sS -g -o "$TMP/body" -w '%{http_code}' -X "$1")
    [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
    run curl "${args[@]}" "http://127.0.0.1:$PORT$2"
    output="$output $(cat "$TMP/body")"
}

new_uid() {
    curl -sS "http://127.0.0.1:$PORT/get_uid" | sed -E "s/^\{\"uid\": \"($UUID4)\"\}$/\1/"
}

count_ids() { # the number of ids in the first [...] of $1
    local a=${1#*[}
    a=${a%%]*}
    echo "$a" | tr ',' '\n' | grep -c '[0-9]'
}

@test "serve: every recorded session answers byte for byte as the Python service" {
    [ "$(fixture_lines | wc -l)" -ge 100 ]
    start_tok
    run replay
    echo "$output"
    [ "$status" -eq 0 ]
    stop_server
    [ "$SERVER_RC" -eq 0 ]  # SIGTERM stops it cleanly
}

@test "serve: 8 clients replaying at once each get their own uid and exact answers" {
    start_tok
    local pids=() i
    for i in 1 2 3 4 5 6 7 8; do
        (replay client_cycle > "$TMP/c$i.log" 2>&1) &
        pids+=($!)
    done
    for i in 0 1 2 3 4 5 6 7; do
        wait "${pids[$i]}" || { cat "$TMP/c$((i + 1)).log"; false; }
    done
    run replay decode_streams  # and the server is still right afterwards
    [ "$status" -eq 0 ]
}

@test "serve: concurrent requests on one uid are serialized" {
    start_tok
    local u pids=() i
    u=$(new_uid)
    # 16 decodes at once: each must see the cache the one before it cleared
    for i in $(seq 16); do
        curl -sS -o "$TMP/d$i" -H 'Content-Type: application/json' \
            --data-binary "{\"uid\": \"$u\", \"token_ids\": [9707]}" "http://127.0.0.1:$PORT/decode" &
        pids+=($!)
    done
    wait "${pids[@]}"
    for i in $(seq 16); do [ "$(cat "$TMP/d$i")" = '{"text": "Hello"}' ]; done
    # 16 encodes at once: every turn lands in the history, none is lost
    call POST /reset "{\"uid\": \"$u\"}"
    call POST /encode "{\"uid\": \"$u\", \"text\": \"x\"}"
    local one=$(count_ids "$output")
    call POST /encode "{\"uid\": \"$u\", \"text\": \"x\"}"
    local turn=$(($(count_ids "$output") - one))
    pids=()
    for i in $(seq 16); do
        curl -sS -o /dev/null -H 'Content-Type: application/json' \
            --data-binary "{\"uid\": \"$u\", \"text\": \"x\"}" "http://127.0.0.1:$PORT/encode" &
        pids+=($!)
    done
    wait "${pids[@]}"
    call POST /encode "{\"uid\": \"$u\", \"text\": \"x\"}"
    [ "$(count_ids "$output")" -eq $((one + 18 * turn)) ]
}

@test "serve: no uid, an unknown uid and a bad path are answered 200 with the service's errors" {
    start_tok
    call POST /encode '{"text": "x"}'
    [ "$output" = '200 {"error": "Invalid uid"}' ]
    call POST /decode '{"uid": "00000000-0000-4000-8000-000000000000", "token_ids": [1]}'
    [ "$output" = '200 {"error": "Invalid uid"}' ]
    call GET /eos_id
    [ "$output" = '200 {"error": "Invalid uid"}' ]
    call GET /tokenize
    [ "$output" = '200 {"error": "Invalid GET endpoint"}' ]
    call POST /tokenize '{"uid": "x"}'
    [ "$output" = '200 {"error": "Invalid POST endpoint"}' ]
}

@test "serve: malformed requests get a 400 error body and change nothing" {
    start_tok
    local u
    u=$(new_uid)
    call POST /encode 'not json'
    [ "$output" = '400 {"error": "request body is not valid JSON"}' ]
    call POST /encode ''
    [ "$output" = '400 {"error": "request body is not valid JSON"}' ]
    call POST /encode '["uid", "text"]'
    [ "$output" = '400 {"error": "request body is not a JSON object"}' ]
    call POST /encode "$(printf '{"uid": "%s", "text": "\xff"}' "$u")"
    [ "$output" = '400 {"error": "request body is not UTF-8"}' ]
    call POST /encode "{\"uid\": \"$u\", \"text\": \"a\\u0000b\"}"
    [ "$output" = '400 {"error": "\\u0000 is not supported in strings"}' ]
    call POST /encode "{\"uid\": \"$u\"}"
    [ "$output" = '400 {"error": "text must be a string, last_reply a string or null"}' ]
    call POST /encode "{\"uid\": \"$u\", \"text\": \"x\", \"last_reply\": 3}"
    [ "$output" = '400 {"error": "text must be a string, last_reply a string or null"}' ]
    call POST /reset "{\"uid\": \"$u\", \"system_prompt\": [\"S\"]}"
    [ "$output" = '400 {"error": "system_prompt must be a string or null"}' ]
    local ids
    for ids in '"abc"' '[-1]' '[1.5]' '[4294967296]' '["1"]' '[true]' 'null'; do
        call POST /decode "{\"uid\": \"$u\", \"token_ids\": $ids}"
        [ "$output" = '400 {"error": "token_ids must be an array of token ids"}' ]
    done
    call PUT /encode "{\"uid\": \"$u\", \"text\": \"x\"}"
    [ "$output" = '501 {"error": "Unsupported method"}' ]
    # the uid is untouched: its first /encode still diffs against an empty history
    call POST /encode "{\"uid\": \"$u\", \"text\": \"x\"}"
    [ "$(count_ids "$output")" -eq "$(count_ids "${output#*\"diff\"}")" ]
}

@test "serve: a 10 MB body is refused with 413 and the server lives on" {
    start_tok  # max_body 1 MiB
    head -c 10485760 /dev/zero | tr '\0' ' ' > "$TMP/big"
    # Content-Length over the cap: refused before the body is read (with or without
    # Expect: 100-continue)
    # (curl waits 1 s for the answer to Expect: 100-continue, then sends anyway: on a
    # loaded machine the refusal may then reach it as a reset)
    run curl -sS -o "$TMP/body" -w '%{http_code}' --data-binary @"$TMP/big" "http://127.0.0.1:$PORT/encode"
    if [ "$output" = 413 ]; then
        [ "$(cat "$TMP/body")" = '{"error": "Request body too large"}' ]
    else
        [[ "$output" == *"reset by peer"* || "$output" == *"Send failure"* ]]
    fi
    run curl -sS -o "$TMP/body" -w '%{http_code}' -H 'Expect:' --data-binary @"$TMP/big" \
        "http://127.0.0.1:$PORT/encode"
    [ "$output" = 413 ] || [[ "$output" == *"reset by peer"* || "$output" == *"Send failure"* ]]
    # chunked, so no length up front: cut off once past the cap (413, or the connection dropped)
    run curl -sS -o "$TMP/body" -w '%{http_code}' -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/big" \
        "http://127.0.0.1:$PORT/encode"
    [ "$output" = 413 ] || [ "$status" -ne 0 ]
    kill -0 "$SERVER_PID"
    run replay errors
    [ "$status" -eq 0 ]
}

@test "serve: the body cap is exact: max_body bytes pass, one more is refused" {
    start_server "$TBIN/serve_test" "$MODEL" 127.0.0.1 @PORT@ 100 3600 16
    local b='{"uid": "x", "text": "y"}'
    b=$b$(printf '%*s' $((100 - ${#b})) '')
    [ "${#b}" -eq 100 ]
    call POST /encode "$b"
    [ "$output" = '200 {"error": "Invalid uid"}' ]
    call POST /encode "$b "
    [ "$output" = '413 {"error": "Request body too large"}' ]
}

@test "serve: the least recently used uid goes first beyond max_uids, idle uids expire" {
    # uids expire after 3 s idle: long enough that a loaded machine does not expire u4
    # between its creation and its use below
    start_server "$TBIN/serve_test" "$MODEL" 127.0.0.1 @PORT@ 4096 3 2
    local u1 u2 u3 u4
    u1=$(new_uid) u2=$(new_uid) u3=$(new_uid)
    call GET "/eos_id?uid=$u1"
    [ "$output" = '200 {"error": "Invalid uid"}' ]
    call GET "/eos_id?uid=$u2"  # now u3 is the least recently used
    [ "$output" = '200 {"eos_id": 151645}' ]
    u4=$(new_uid)
    call GET "/bos_id?uid=$u3"
    [ "$output" = '200 {"error": "Invalid uid"}' ]
    call GET "/bos_id?uid=$u4"
    [ "$output" = '200 {"bos_id": -1}' ]
    sleep 4.5
    call POST /decode "{\"uid\": \"$u4\", \"token_ids\": [9707]}"
    [ "$output" = '200 {"error": "Invalid uid"}' ]
}

@test "serve: --system sets the default system prompt of /reset and fresh uids" {
    start_tok --system "Be brief."
    local u want
    u=$(new_uid)
    call POST /reset "{\"uid\": \"$u\", \"system_prompt\": \"Be brief.\"}"
    want=$output
    [[ "$want" == "200 {\"token_ids\": [151644, 8948, 198, 3430, 9814, 13, 151645, 198]}" ]]
    call POST /reset "{\"uid\": \"$u\"}"
    [ "$output" = "$want" ]
}

@test "serve: a port already in use is an error, and the first server keeps serving" {
    start_tok
    run "$BIN/tok" -m "$MODEL" --serve "127.0.0.1:$PORT"
    [ "$status" -eq 1 ]
    [[ "${lines[0]}" == "tok: serve: cannot listen on 127.0.0.1:$PORT: "* ]]
    call GET /
    [ "$output" = '200 {"error": "Invalid GET endpoint"}' ]
}

#!/usr/bin/env bash
# serve.sh - end-to-end checks of `smoe serve` with curl: every endpoint and its OpenAI
# shapes, streaming, stop strings, determinism, the chat templates (Mixtral ids, ChatML, an
# unknown template), hostile input (bad JSON and types, huge bodies, long prompts, unknown
# model/route/method, missing key, idle and flooding connections), a full queue, clients
# that disconnect, 16 concurrent streams, continuous batching with the bundled model (greedy
# text alone == in a busy batch == unbatched, 16 streams on 16 slots, more slots than the
# batch holds), the official openai Python client (in a venv under build/), and a clean exit
# on SIGTERM. The test model has random weights: shapes and counts are checked, not content.
# Skips (0 failed) when smoe was built without server support.
# Prints "N passed, N failed" last.
# usage: tests/serve.sh [path/to/smoe]
set -u
SMOE=${1:-./smoe}
DATA=${TEST_DATA_DIR:-tests/data}
MODEL=$DATA/model/mixtral-tiny-F32.gguf
VENV=${SERVE_VENV:-build/serve-venv}
T=$(mktemp -d)
SERVERS=() CLIENTS=()
cleanup() {
    local p
    for p in "${SERVERS[@]}" "${CLIENTS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
pass=0 fail=0 skipped=0
ok()   { pass=$((pass + 1)); }
bad()  { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
skip() { skipped=$((skipped + 1)); echo "SKIP: $*"; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }
summary() {
    [ "$skipped" -gt 0 ] && echo "$skipped checks skipped"
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit $?
}

# ---------------------------------------------------------------- built without the server?
"$SMOE" serve --help >"$T/out" 2>"$T/err"; rc=$?
if grep -q "built without server support" "$T/err"; then
    check '[ $rc -eq 1 ]' "serve without server support: exit $rc, want 1"
    check 'grep -q "libmicrohttpd-dev and libcjson-dev" "$T/err"' "no-server message names the packages"
    echo "SKIP: smoe was built without server support (install libmicrohttpd-dev libcjson-dev); server tests skipped"
    summary
fi
for tool in curl python3; do
    if ! command -v $tool >/dev/null 2>&1; then
        echo "SKIP: $tool is not installed; server tests skipped"
        summary
    fi
done

# ---------------------------------------------------------------- command line
check '[ $rc -eq 0 ] && grep -q "usage: smoe serve" "$T/out"' "serve --help"
"$SMOE" serve >/dev/null 2>"$T/err"; rc=$?
check '[ $rc -eq 2 ] && grep -q "missing -m" "$T/err"' "serve without -m: exit $rc"
"$SMOE" serve -m "$MODEL" --bogus >/dev/null 2>"$T/err"; rc=$?
check '[ $rc -eq 2 ] && grep -q "unknown option" "$T/err"' "serve --bogus: exit $rc"
"$SMOE" serve -m "$MODEL" --port 70000 >/dev/null 2>"$T/err"; rc=$?
check '[ $rc -eq 2 ] && grep -q "invalid value for --port" "$T/err"' "serve --port 70000: exit $rc"
"$SMOE" serve -m "$MODEL" --parallel 0 >/dev/null 2>"$T/err"; rc=$?
check '[ $rc -eq 2 ]' "serve --parallel 0: exit $rc"
"$SMOE" serve -m "$MODEL" --port >/dev/null 2>"$T/err"; rc=$?
check '[ $rc -eq 2 ] && grep -q "needs a value" "$T/err"' "serve --port without a value: exit $rc"
"$SMOE" serve -m "$T/nope.gguf" --port 0 >/dev/null 2>"$T/err"; rc=$?
check '[ $rc -eq 1 ] && grep -q "cannot load model" "$T/err"' "serve missing model: exit $rc"

# ---------------------------------------------------------------- helpers
# start NAME ARGS... : start a server on a free port; sets PID and BASE (ends the script if it never answers)
start() {
    local name=$1 port="" i
    shift
    "$SMOE" serve --port 0 -t 1 "$@" 2>"$T/$name.log" &
    PID=$!
    SERVERS+=("$PID")
    for i in $(seq 1 300); do
        port=$(sed -n 's|.*listening on http://.*:\([0-9]*\)$|\1|p' "$T/$name.log")
        [ -n "$port" ] && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        bad "server $name did not start: $(tail -n 5 "$T/$name.log")"
        summary
    fi
    BASE=http://127.0.0.1:$port
    for i in $(seq 1 100); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")" = 200 ] && return 0
        sleep 0.1
    done
    bad "server $name: /health never answered"
    summary
}
# stop PID : SIGTERM, then wait (20 s at most); sets STOP_RC
stop() {
    local p=$1 i
    kill -TERM "$p" 2>/dev/null
    for i in $(seq 1 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then STOP_RC=timeout; kill -KILL "$p"; wait "$p" 2>/dev/null; return; fi
    wait "$p"; STOP_RC=$?
}
# call METHOD PATH [curl args...] : body -> $T/body, status -> $CODE
call() {
    local m=$1 p=$2
    shift 2
    CODE=$(curl -s -o "$T/body" -w '%{http_code}' -X "$m" "${AUTH[@]}" "$BASE$p" "$@")
}
# post PATH JSON [curl args...]
post() { local p=$1 d=$2; shift 2; call POST "$p" -H 'Content-Type: application/json' --data-binary "$d" "$@"; }
# js EXPR [FILE] : print a Python expression over j = the JSON in FILE ($T/body)
js() { python3 -c 'import json,sys; j=json.load(open(sys.argv[2])); print(eval(sys.argv[1]))' "$1" "${2:-$T/body}" 2>/dev/null; }
# jcheck EXPR DESC : the Python expression over j = the last body must be true
jcheck() { if [ "$(js "bool($1)")" = True ]; then ok; else bad "$2: $(head -c 400 "$T/body")"; fi; }
# pyck EXPR DESC FILE... : the Python expression over f = [JSON of each FILE] must be true
pyck() {
    local e=$1 d=$2
    shift 2
    if [ "$(python3 -c 'import json,sys; f=[json.load(open(x)) for x in sys.argv[2:]]; print(bool(eval(sys.argv[1])))' "$e" "$@" 2>&1)" = True ]
    then ok; else bad "$d"; fi
}
# status WANT DESC
status() { if [ "$CODE" = "$1" ]; then ok; else bad "$2: HTTP $CODE, want $1: $(head -c 300 "$T/body")"; fi; }
# error WANT_STATUS DESC : the status and OpenAI's error shape
error() {
    status "$1" "$2"
    jcheck "isinstance(j['error']['message'], str) and j['error']['message'] and isinstance(j['error']['type'], str) and 'code' in j['error'] and 'param' in j['error']" "$2: error shape"
}
metric() { curl -s "${AUTH[@]}" "$BASE/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
# wait_metric NAME WANT : poll /metrics (10 s at most)
wait_metric() {
    local i
    for i in $(seq 1 100); do [ "$(metric "$1")" = "$2" ] && return 0; sleep 0.1; done
    return 1
}
# sse_check FILE KIND : a stream of single-line data events, chunks of the right object, [DONE]
# last; prints {"text": all text, "finish": finish_reason}
sse_check() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
raw = open(sys.argv[1]).read()
kind = sys.argv[2]
assert raw.endswith("data: [DONE]\n\n"), "does not end with data: [DONE]"
events = [e for e in raw.split("\n\n") if e]
assert all(e.startswith("data: ") and "\n" not in e for e in events), "not all events are single data lines"
chunks = [json.loads(e[6:]) for e in events[:-1]]
obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
assert chunks and all(c["object"] == obj and c["id"] == chunks[0]["id"] for c in chunks), "chunk objects/ids"
text, finish = "", None
for c in chunks:
    for ch in c["choices"]:
        assert ch["index"] == 0
        text += (ch["delta"].get("content") or "") if kind == "chat" else ch["text"]
        finish = ch["finish_reason"] or finish
if kind == "chat":
    assert chunks[0]["choices"][0]["delta"].get("role") == "assistant", "first delta has no role"
assert finish in ("stop", "length"), "no finish_reason"
print(json.dumps({"text": text, "finish": finish}))
EOF
}

# ---------------------------------------------------------------- server A: endpoints and hostile input
KEY=sk-test-key
start A -m "$MODEL" --api-key "$KEY" --parallel 4 --queue 32 --timeout 3
A_PID=$PID
AUTH=()
call GET /health; status 200 "/health needs no key"; jcheck "j['status'] == 'ok'" "/health body"
call GET /v1/models; error 401 "no API key"; jcheck "j['error']['code'] == 'invalid_api_key'" "401 code"
AUTH=(-H "Authorization: Bearer wrong")
call GET /v1/models; error 401 "wrong API key"
post /v1/completions '{"prompt":"a"}'; error 401 "wrong API key on POST"
AUTH=(-H "Authorization: Bearer $KEY")

call GET /v1/models; status 200 "/v1/models"
jcheck "j['object'] == 'list' and [m['id'] for m in j['data']] == ['mixtral-tiny-F32'] and j['data'][0]['object'] == 'model'" "/v1/models shape"
call GET /v1/models/mixtral-tiny-F32; status 200 "/v1/models/ID"; jcheck "j['id'] == 'mixtral-tiny-F32'" "/v1/models/ID body"
call GET /v1/models/gpt-4; error 404 "/v1/models/unknown"; jcheck "j['error']['code'] == 'model_not_found'" "404 model code"

# completions: shape, usage, max_tokens -> length, determinism
REQ='{"model":"mixtral-tiny-F32","prompt":"Once upon a time","max_tokens":12,"temperature":0}'
SREQ='{"model":"mixtral-tiny-F32","prompt":"Once upon a time","max_tokens":12,"temperature":0,"stream":true}'
post /v1/completions "$REQ"; status 200 "completion"
jcheck "j['object'] == 'text_completion' and j['id'].startswith('cmpl-') and isinstance(j['created'], int) and j['model'] == 'mixtral-tiny-F32'" "completion head"
jcheck "len(j['choices']) == 1 and j['choices'][0]['index'] == 0 and isinstance(j['choices'][0]['text'], str)" "completion choices"
jcheck "j['choices'][0]['finish_reason'] == 'length' and j['usage']['completion_tokens'] == 12" "max_tokens gives length"
jcheck "j['usage']['prompt_tokens'] > 0 and j['usage']['total_tokens'] == j['usage']['prompt_tokens'] + j['usage']['completion_tokens']" "completion usage"
cp "$T/body" "$T/c1"
post /v1/completions "$REQ"; cp "$T/body" "$T/c2"
pyck "f[0]['choices'][0]['text'] and f[0]['choices'][0]['text'] == f[1]['choices'][0]['text']" "temperature 0 gives the same text twice" "$T/c1" "$T/c2"
post /v1/completions '{"prompt":"Once upon a time","max_tokens":12,"temperature":0.9,"seed":5}'; cp "$T/body" "$T/s1"
post /v1/completions '{"prompt":"Once upon a time","max_tokens":12,"temperature":0.9,"seed":5}'; cp "$T/body" "$T/s2"
pyck "f[0]['choices'][0]['text'] and f[0]['choices'][0]['text'] == f[1]['choices'][0]['text']" "same seed gives the same text twice" "$T/s1" "$T/s2"
post /v1/completions '{"prompt":[1,600,700],"max_tokens":3}'; status 200 "prompt as token ids"
jcheck "j['usage']['prompt_tokens'] == 3" "token-id prompt counted"
post /v1/completions '{"prompt":["Hello"],"max_tokens":2}'; status 200 "prompt as [string]"

# streaming completions == whole
post /v1/completions "$SREQ"; status 200 "stream completion"
sse_check "$T/body" completion >"$T/sse.json"; check '[ -s "$T/sse.json" ]' "stream completion shape: $(head -c 300 "$T/body")"
pyck "f[0]['choices'][0]['text'] == f[1]['text'] and f[1]['finish'] == 'length'" "streamed completion == whole" "$T/c1" "$T/sse.json"
curl -s -D "$T/hdr" -o /dev/null "${AUTH[@]}" "$BASE/v1/completions" --data-binary "$SREQ"
check 'grep -qi "^content-type: text/event-stream" "$T/hdr"' "stream content type: $(cat "$T/hdr")"

# stop strings: cut before the first match, finish_reason stop, also when streaming
post /v1/completions '{"prompt":"Once upon a time","max_tokens":40,"temperature":0}'; cp "$T/body" "$T/long"
STOP=$(js "next((t[k:k+3] for k in range(3, len(t) - 3) if t[k:k+3].isascii() and t[k:k+3].isalnum() and t.find(t[k:k+3]) == k), '') if (t := j['choices'][0]['text']) else ''" "$T/long")
if [ -n "$STOP" ]; then
    WANT="f[0]['choices'][0]['text'][:f[0]['choices'][0]['text'].find('$STOP')]"
    for form in "\"$STOP\"" "[\"zzzzqqq\",\"$STOP\"]"; do
        post /v1/completions "{\"prompt\":\"Once upon a time\",\"max_tokens\":40,\"temperature\":0,\"stop\":$form}"
        pyck "f[1]['choices'][0]['finish_reason'] == 'stop' and f[1]['choices'][0]['text'] == $WANT" \
            "stop $form: $(head -c 300 "$T/body"), whole text $(head -c 300 "$T/long")" "$T/long" "$T/body"
    done
    post /v1/completions "{\"prompt\":\"Once upon a time\",\"max_tokens\":40,\"temperature\":0,\"stop\":\"$STOP\",\"stream\":true}"
    status 200 "stream with stop"
    sse_check "$T/body" completion >"$T/sse.json"; check '[ -s "$T/sse.json" ]' "stream with stop: bad stream"
    pyck "f[1]['finish'] == 'stop' and f[1]['text'] == $WANT" "streamed stop text/finish: $(cat "$T/sse.json")" "$T/long" "$T/sse.json"
else
    bad "no 3-letter ASCII stop candidate in $(head -c 300 "$T/long")"
fi

# chat: shape, Mixtral template ids, streaming == whole
CHAT='{"model":"mixtral-tiny-F32","messages":[{"role":"user","content":"Hi there"}],"max_tokens":10,"temperature":0}'
SCHAT='{"model":"mixtral-tiny-F32","messages":[{"role":"user","content":"Hi there"}],"max_tokens":10,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}'
post /v1/chat/completions "$CHAT"; status 200 "chat"
jcheck "j['object'] == 'chat.completion' and j['id'].startswith('chatcmpl-') and j['model'] == 'mixtral-tiny-F32'" "chat head"
jcheck "j['choices'][0]['message']['role'] == 'assistant' and isinstance(j['choices'][0]['message']['content'], str)" "chat message"
jcheck "j['choices'][0]['finish_reason'] in ('stop', 'length') and j['usage']['total_tokens'] == j['usage']['prompt_tokens'] + j['usage']['completion_tokens']" "chat finish/usage"
cp "$T/body" "$T/chat1"
post /v1/chat/completions "$SCHAT"; status 200 "chat stream"
sse_check "$T/body" chat >"$T/sse.json"; check '[ -s "$T/sse.json" ]' "chat stream shape: $(head -c 300 "$T/body")"
pyck "f[0]['choices'][0]['message']['content'] == f[1]['text']" "streamed chat == whole chat" "$T/chat1" "$T/sse.json"
check 'grep -q "\"choices\":\[\],\"usage\":{\"prompt_tokens\"" "$T/body"' "include_usage sends a usage chunk"
# ntok TEXT : token count of TEXT without BOS (via /tokenize)
ntok() { post /tokenize "$(python3 -c 'import json,sys; print(json.dumps({"content": sys.argv[1]}))' "$1")"; js "len(j['tokens'])"; }
# prompt_tokens MESSAGES_JSON : prompt_tokens the server counts for these messages
prompt_tokens() { post /v1/chat/completions "{\"messages\":$1,\"max_tokens\":1}"; js "j['usage']['prompt_tokens']"; }
N_INST=$(ntok "[INST] Hi there [/INST]")
check '[ "$(prompt_tokens "[{\"role\":\"user\",\"content\":\"Hi there\"}]")" = $((1 + N_INST)) ]' "Mixtral template: BOS + [INST] Hi there [/INST]"
N_SYS=$(ntok $'[INST] Be brief.\n\nHi there [/INST]')
check '[ "$(prompt_tokens "[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hi there\"}]")" = $((1 + N_SYS)) ]' "Mixtral template: system prepended to the first user message"
N_A=$(ntok "[INST] a [/INST]") N_B=$(ntok "b") N_C=$(ntok "[INST] c [/INST]")
check '[ "$(prompt_tokens "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"},{\"role\":\"user\",\"content\":\"c\"}]")" = $((1 + N_A + N_B + 1 + N_C)) ]' "Mixtral template: multi-turn, EOS after the answer"
post /v1/chat/completions '{"messages":[{"role":"user","content":[{"type":"text","text":"Hi "},{"type":"text","text":"there"}]}],"max_tokens":1}'
status 200 "chat content as text parts"; jcheck "j['usage']['prompt_tokens'] == 1 + $N_INST" "text parts joined"

# tokenize / detokenize
post /tokenize '{"content":"Hello world"}'; status 200 "/tokenize"
jcheck "isinstance(j['tokens'], list) and len(j['tokens']) > 0 and all(isinstance(t, int) for t in j['tokens'])" "/tokenize shape"
TOKS=$(js "j['tokens']")
post /tokenize '{"content":"Hello world","add_special":true}'; jcheck "j['tokens'][0] == 1" "/tokenize add_special puts BOS first"
post /detokenize "{\"tokens\":$TOKS}"; status 200 "/detokenize"; jcheck "j['content'] == 'Hello world'" "detokenize(tokenize(x)) == x"
post /detokenize '{"tokens":[1,5000]}'; error 400 "/detokenize id out of range"
post /detokenize '{"tokens":"x"}'; error 400 "/detokenize wrong type"
post /tokenize '{"content":5}'; error 400 "/tokenize wrong type"

# hostile JSON and parameters: 400 with the OpenAI error shape, the field named in param
post /v1/completions '{"prompt":'; error 400 "malformed JSON"; jcheck "j['error']['code'] == 'invalid_json'" "malformed JSON code"
post /v1/completions '[1,2,3]'; error 400 "JSON not an object"
post /v1/completions ''; error 400 "empty body"
post /v1/completions "$(printf '%*s' 5000 '' | tr ' ' '[')"; error 400 "deeply nested JSON"
post /v1/completions $'{"prompt":"a\xff\xfe","max_tokens":1}'; status 200 "invalid UTF-8 in a string"
post /v1/completions '{"prompt":"a","max_tokens":"x"}'; error 400 "max_tokens string"; jcheck "j['error']['param'] == 'max_tokens'" "param max_tokens"
post /v1/completions '{"prompt":"a","max_tokens":1.5}'; error 400 "max_tokens fraction"
post /v1/completions '{"prompt":"a","max_tokens":-3}'; error 400 "max_tokens negative"
post /v1/completions '{"prompt":"a","max_tokens":1e300}'; error 400 "max_tokens huge"
post /v1/completions '{"prompt":"a","temperature":"hot"}'; error 400 "temperature string"
post /v1/completions '{"prompt":"a","temperature":7}'; error 400 "temperature out of range"
post /v1/completions '{"prompt":"a","top_p":2}'; error 400 "top_p out of range"
post /v1/completions '{"prompt":"a","stop":5}'; error 400 "stop number"
post /v1/completions '{"prompt":"a","stop":["a","b","c","d","e"]}'; error 400 "five stop strings"
post /v1/completions '{"prompt":"a","stream":"yes"}'; error 400 "stream string"
post /v1/completions '{"prompt":"a","seed":"x"}'; error 400 "seed string"
post /v1/completions '{"prompt":"a","n":3}'; error 400 "n > 1"
post /v1/completions '{"prompt":{}}'; error 400 "prompt object"
post /v1/completions '{"prompt":[1,99999]}'; error 400 "prompt token id out of range"
post /v1/completions '{"max_tokens":3}'; error 400 "prompt missing"
post /v1/completions '{"prompt":"a","model":7}'; error 400 "model number"
post /v1/chat/completions '{"messages":5}'; error 400 "messages number"; jcheck "j['error']['param'] == 'messages'" "param messages"
post /v1/chat/completions '{"messages":[]}'; error 400 "messages empty"
post /v1/chat/completions '{"messages":[{"role":"wizard","content":"x"}]}'; error 400 "unknown role"
post /v1/chat/completions '{"messages":[{"role":"user","content":5}]}'; error 400 "content number"
post /v1/chat/completions '{"messages":[{"role":"user"}]}'; error 400 "content missing"
post /v1/chat/completions '{"messages":["hi"]}'; error 400 "message not an object"
post /v1/chat/completions '{"prompt":"a"}'; error 400 "chat without messages"
post /v1/completions '{"prompt":"a","max_tokens":2,"frobnicate":{"x":[1,2]},"logit_bias":{},"user":"u"}'; status 200 "unknown fields are ignored"
post /v1/completions '{"prompt":"a","model":"gpt-4"}'; error 404 "unknown model"; jcheck "j['error']['code'] == 'model_not_found'" "unknown model code"
post /v1/completions '{"prompt":"a","max_tokens":1,"model":"mixtral-tiny-F32.gguf"}'; status 200 "the file name is accepted as the model"
post /v1/completions "{\"prompt\":[$(seq -s, 1 600)]}"; error 400 "prompt longer than the context"
jcheck "j['error']['code'] == 'context_length_exceeded'" "context_length_exceeded code"
post /v1/completions "{\"prompt\":\"$(printf 'ab %.0s' $(seq 1 3000))\"}"; error 400 "long text prompt"
head -c 1100000 /dev/zero | tr '\0' 'a' >"$T/big"
call POST /v1/completions --data-binary @"$T/big"; error 413 "1.1 MB body"
call POST /v1/completions -H "Transfer-Encoding: chunked" --data-binary @"$T/big"; error 413 "1.1 MB chunked body"
call GET /v1/nothing; error 404 "unknown route"
call POST /; error 404 "unknown route /"
call GET /v1/completions; error 405 "GET on a POST route"
call DELETE /v1/models; error 405 "DELETE on a GET route"
call POST /health; error 405 "POST /health"

# a half-open connection (body never finished) is closed by the idle timeout (3 s)
t0=$SECONDS
if exec 5<>"/dev/tcp/127.0.0.1/${BASE##*:}"; then
    printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 100\r\n\r\n{"pro' "$KEY" >&5
    timeout 15 cat <&5 >/dev/null; rc=$?
    exec 5<&-
    check '[ $rc -ne 124 ] && [ $((SECONDS - t0)) -le 10 ]' "half-open connection not closed by the timeout (rc $rc, $((SECONDS - t0)) s)"
else
    bad "cannot open a raw connection"
fi

# 16 concurrent streaming clients all finish
PIDS=()
for i in $(seq 1 16); do
    curl -s -N "${AUTH[@]}" "$BASE/v1/chat/completions" -o "$T/par$i" \
        --data-binary "{\"messages\":[{\"role\":\"user\",\"content\":\"client $i\"}],\"max_tokens\":24,\"stream\":true,\"seed\":$i}" &
    PIDS+=($!)
done
CLIENTS+=("${PIDS[@]}")
wait "${PIDS[@]}"
n=0
for i in $(seq 1 16); do sse_check "$T/par$i" chat >/dev/null 2>&1 && n=$((n + 1)); done
check '[ $n -eq 16 ]' "16 concurrent streams: $n complete"

# metrics
curl -s "${AUTH[@]}" "$BASE/metrics" >"$T/metrics"
for m in 'smoe_requests_total{endpoint="/v1/completions",status="200"}' \
    'smoe_requests_total{endpoint="/v1/completions",status="400"}' \
    'smoe_requests_total{endpoint="/v1/models",status="401"}' 'smoe_requests_total{endpoint="other",status="404"}' \
    smoe_prompt_tokens_total smoe_generated_tokens_total smoe_generation_tokens_per_second smoe_queue_length \
    smoe_slots_active smoe_slots_total; do
    check 'grep -qF "$m " "$T/metrics"' "/metrics lacks $m"
done
check '[ "$(awk "\$1 == \"smoe_slots_total\" { print \$2 }" "$T/metrics")" = 4 ]' "smoe_slots_total = 4"
check '[ "$(awk "\$1 == \"smoe_generated_tokens_total\" { print (\$2 > 0) }" "$T/metrics")" = 1 ]' "generated tokens counted"
check 'grep -q "^# TYPE smoe_requests_total counter" "$T/metrics"' "/metrics TYPE lines"

# the official openai client, from a venv under build/ (skipped when PyPI cannot be reached)
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import openai' 2>/dev/null; then
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    (python3 -m venv "$VENV" && timeout 300 "$VENV/bin/pip" install -q --disable-pip-version-check openai) \
        >"$T/pip.log" 2>&1 || rm -rf "$VENV"
fi
if [ -x "$VENV/bin/python" ]; then
    out=$("$VENV/bin/python" tests/serve_openai.py "$BASE/v1" "$KEY" mixtral-tiny-F32 2>&1); rc=$?
    line=$(printf '%s\n' "$out" | grep -oE '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -n "$line" ]; then
        read -r p _ f _ <<<"${line//,/}"
        pass=$((pass + p)); fail=$((fail + f))
        [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && bad "serve_openai.py exit $rc"
        [ "$f" -ne 0 ] && printf '%s\n' "$out" | tail -n 20 >&2
    else
        bad "serve_openai.py crashed: $(printf '%s\n' "$out" | tail -n 10)"
    fi
else
    skip "openai Python package unavailable (no venv or no PyPI: $(tail -n 1 "$T/pip.log" 2>/dev/null)); serve_openai.py not run"
fi

call GET /health; status 200 "server A still serves after all of that"
check 'grep -qE "^POST /v1/completions 200 [0-9.]+ ms$" "$T/A.log"' "one log line per request (method path status ms)"
stop "$A_PID"
check '[ "$STOP_RC" = 0 ]' "SIGTERM: server A exit $STOP_RC, want 0: $(tail -n 3 "$T/A.log")"
check 'grep -q "SIGTERM: shutting down" "$T/A.log"' "shutdown logged"

# ---------------------------------------------------------------- server B: queue, disconnects, flood, shutdown
AUTH=()
start B -m "$MODEL" --parallel 1 --queue 1 --ctx 16384 --max-conns 8 --timeout 5
B_PID=$PID
LONGREQ='{"prompt":"Hello","max_tokens":16000,"ignore_eos":true,"temperature":0.8'
curl -s -N "$BASE/v1/completions" --data-binary "$LONGREQ,\"stream\":true}" -o "$T/long1" &
C1_PID=$!; CLIENTS+=("$C1_PID")
check 'wait_metric smoe_slots_active 1' "a long stream occupies the only slot"
curl -s "$BASE/v1/completions" --data-binary "$LONGREQ}" -o "$T/long2" &
C2_PID=$!; CLIENTS+=("$C2_PID")
check 'wait_metric smoe_queue_length 1' "a second request waits in the queue"
post /v1/completions '{"prompt":"a","max_tokens":2}'; error 503 "queue full"
jcheck "j['error']['code'] == 'server_overloaded'" "503 code"
kill "$C1_PID"; wait "$C1_PID" 2>/dev/null
check 'wait_metric smoe_queue_length 0 && wait_metric smoe_slots_active 1' "a disconnected stream frees its slot for the queued request"
check '[ "$(metric smoe_requests_cancelled_total)" -ge 1 ]' "the disconnected stream was cancelled"
kill "$C2_PID"; wait "$C2_PID" 2>/dev/null
check 'wait_metric smoe_slots_active 0' "a disconnected non-streaming request frees its slot"
check '[ "$(metric smoe_requests_cancelled_total)" -ge 2 ]' "the disconnected request was cancelled"

# a flood of connections beyond --max-conns is turned away, then the server serves again
FDS=()
for i in $(seq 1 40); do exec {fd}<>"/dev/tcp/127.0.0.1/${BASE##*:}" && FDS+=("$fd"); done
sleep 0.5
CODE=$(curl -s -o /dev/null -m 3 -w '%{http_code}' "$BASE/health")
check '[ "$CODE" != 200 ]' "connection limit not enforced during a flood (HTTP $CODE)"
for fd in "${FDS[@]}"; do exec {fd}<&-; done
ok_after=0
for i in $(seq 1 50); do
    [ "$(curl -s -o /dev/null -m 3 -w '%{http_code}' "$BASE/health")" = 200 ] && { ok_after=1; break; }
    sleep 0.1
done
check '[ $ok_after -eq 1 ]' "server serves again after the flood"

# SIGTERM with a stream in flight: the stream ends with [DONE], the server exits 0
curl -s -N "$BASE/v1/completions" --data-binary "$LONGREQ,\"stream\":true}" -o "$T/long3" &
C3_PID=$!; CLIENTS+=("$C3_PID")
check 'wait_metric smoe_slots_active 1' "stream running before SIGTERM"
stop "$B_PID"
check '[ "$STOP_RC" = 0 ]' "SIGTERM with a request in flight: exit $STOP_RC, want 0: $(tail -n 3 "$T/B.log")"
wait "$C3_PID" 2>/dev/null
check 'tail -c 300 "$T/long3" | grep -q "data: \[DONE\]"' "in-flight stream closed with [DONE]: $(tail -c 300 "$T/long3")"

# ---------------------------------------------------------------- servers E, F, G: continuous batching (bundled model)
# Every step runs the tokens of all active slots in one forward pass. Greedy text must not
# depend on what else is in the batch: each prompt alone, then three at once while three
# long streams keep other slots busy (prompt chunks and single tokens of six requests share
# steps), and on a server with the old one-pass-per-slot engine (--no-batch). Then 16
# streaming clients at once on 16 slots, and more slots than a step can take tokens for
# (--ctx 8: the batch holds 8 tokens, 12 slots want more).
KJV=${KJV_MODEL:-models/kjv-moe.gguf}
if [ -f "$KJV" ]; then
    AUTH=()
    GP=("In the beginning" "And God said" "The LORD is my shepherd")
    greq() { echo "{\"prompt\":\"${GP[$1]}\",\"max_tokens\":48,\"temperature\":0}"; }
    start E -m "$KJV" --parallel 16 --ctx 4096
    E_PID=$PID
    for k in 0 1 2; do post /v1/completions "$(greq $k)"; cp "$T/body" "$T/g$k.alone"; done
    BG=()
    for k in 1 2 3; do
        curl -s -N "$BASE/v1/completions" -o /dev/null --data-binary \
            "{\"prompt\":\"And it came to pass $k\",\"max_tokens\":4000,\"ignore_eos\":true,\"temperature\":0.8,\"seed\":$k,\"stream\":true}" &
        BG+=($!)
    done
    CLIENTS+=("${BG[@]}")
    check 'wait_metric smoe_slots_active 3' "three long streams running"
    PIDS=()
    for k in 0 1 2; do
        curl -s -m 120 "$BASE/v1/completions" --data-binary "$(greq $k)" -o "$T/g$k.busy" &
        PIDS+=($!)
    done
    CLIENTS+=("${PIDS[@]}")
    wait "${PIDS[@]}"
    check '[ "$(metric smoe_slots_active)" = 3 ]' "the long streams ran throughout the greedy requests"
    for k in 0 1 2; do
        pyck "f[0]['choices'][0]['text'] and f[0]['choices'][0]['text'] == f[1]['choices'][0]['text'] and f[0]['usage'] == f[1]['usage']" \
            "greedy '${GP[$k]}' alone == batched with 5 others: $(head -c 300 "$T/g$k.alone") vs $(head -c 300 "$T/g$k.busy")" \
            "$T/g$k.alone" "$T/g$k.busy"
    done
    kill "${BG[@]}" 2>/dev/null; wait "${BG[@]}" 2>/dev/null
    check 'wait_metric smoe_slots_active 0' "disconnected long streams free their slots"

    # 16 concurrent streaming clients on 16 slots all complete, 64 tokens each
    t0=$SECONDS
    PIDS=()
    for i in $(seq 1 16); do
        curl -s -N -m 120 "$BASE/v1/completions" -o "$T/load$i" --data-binary \
            "{\"prompt\":\"${GP[$((i % 3))]} $i\",\"max_tokens\":64,\"ignore_eos\":true,\"temperature\":0.8,\"seed\":$i,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" &
        PIDS+=($!)
    done
    CLIENTS+=("${PIDS[@]}")
    wait "${PIDS[@]}"
    n=0
    for i in $(seq 1 16); do
        sse_check "$T/load$i" completion >/dev/null 2>&1 && grep -q '"completion_tokens":64,' "$T/load$i" && n=$((n + 1))
    done
    check '[ $n -eq 16 ]' "16 concurrent streams on 16 slots: $n of 16 complete with 64 tokens and [DONE] ($((SECONDS - t0)) s)"
    stop "$E_PID"; check '[ "$STOP_RC" = 0 ]' "server E exit $STOP_RC"

    start F -m "$KJV" --parallel 4 --ctx 4096 --no-batch
    F_PID=$PID
    check 'grep -q "unbatched" "$T/F.log"' "--no-batch is logged at start"
    for k in 0 1 2; do
        post /v1/completions "$(greq $k)"
        pyck "f[0]['choices'][0]['text'] == f[1]['choices'][0]['text']" "greedy '${GP[$k]}': --no-batch == batched" "$T/g$k.alone" "$T/body"
    done
    stop "$F_PID"; check '[ "$STOP_RC" = 0 ]' "server F exit $STOP_RC"

    # --ctx 8: 12 requests of a 4-token prompt each fill their context (5 tokens, "length");
    # the first steps have 48 prompt tokens and later 12 single tokens for a batch of 8
    start G -m "$KJV" --parallel 12 --ctx 8
    G_PID=$PID
    GREQ='{"prompt":"In the beginning","max_tokens":100,"ignore_eos":true,"temperature":0}'
    post /v1/completions "$GREQ"; cp "$T/body" "$T/short.alone"
    jcheck "j['usage'] == {'prompt_tokens': 4, 'completion_tokens': 5, 'total_tokens': 9} and j['choices'][0]['finish_reason'] == 'length'" "--ctx 8: a 4-token prompt gets 5 tokens"
    PIDS=()
    for i in $(seq 1 12); do
        curl -s -m 120 "$BASE/v1/completions" --data-binary "$GREQ" -o "$T/short$i" &
        PIDS+=($!)
    done
    CLIENTS+=("${PIDS[@]}")
    wait "${PIDS[@]}"
    n=0
    for i in $(seq 1 12); do
        [ "$(python3 -c 'import json,sys; a,b=(json.load(open(x)) for x in sys.argv[1:]); print(a["choices"] == b["choices"] and a["usage"] == b["usage"])' "$T/short.alone" "$T/short$i" 2>/dev/null)" = True ] && n=$((n + 1))
    done
    check '[ $n -eq 12 ]' "12 slots sharing an 8-token batch: $n of 12 answers == the request alone"
    stop "$G_PID"; check '[ "$STOP_RC" = 0 ]' "server G exit $STOP_RC"
else
    skip "bundled model $KJV not found: batching checks not run"
fi

# ---------------------------------------------------------------- chat templates from the file
# with_template OUT TEXT : a copy of the model with tokenizer.chat_template = TEXT
with_template() {
    python3 - "$MODEL" "$1" "$2" <<'EOF'
import struct, sys
src, dst, tmpl = sys.argv[1], sys.argv[2], sys.argv[3].encode()
b = open(src, "rb").read()
assert b[:4] == b"GGUF"
version, n_tensors, n_kv = struct.unpack_from("<IQQ", b, 4)
SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
def skip_str(p):
    return p + 8 + struct.unpack_from("<Q", b, p)[0]
def skip_val(p, t):
    if t == 8:
        return skip_str(p)
    if t == 9:
        et, n = struct.unpack_from("<IQ", b, p)
        p += 12
        for _ in range(n):
            p = skip_val(p, et)
        return p
    return p + SIZES[t]
pos, align = 24, 32
for _ in range(n_kv):
    k0 = pos
    pos = skip_str(pos)
    t, = struct.unpack_from("<I", b, pos)
    if b[k0 + 8:pos] == b"general.alignment":
        align, = struct.unpack_from("<I", b, pos + 4)
    pos = skip_val(pos + 4, t)
kv_end = pos
for _ in range(n_tensors):
    pos = skip_str(pos)
    nd, = struct.unpack_from("<I", b, pos)
    pos += 4 + 8 * nd + 4 + 8
data = (pos + align - 1) // align * align
key = b"tokenizer.chat_template"
kv = struct.pack("<Q", len(key)) + key + struct.pack("<IQ", 8, len(tmpl)) + tmpl
head = b[:4] + struct.pack("<IQQ", version, n_tensors, n_kv + 1) + b[24:kv_end] + kv + b[kv_end:pos]
head += b"\0" * (-len(head) % align)
open(dst, "wb").write(head + b[data:])
EOF
}
with_template "$T/chatml.gguf" "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
with_template "$T/mystery.gguf" "{{ messages | tojson }}"
check '[ -s "$T/chatml.gguf" ] && [ -s "$T/mystery.gguf" ]' "could not write the template test models"

start C -m "$T/chatml.gguf" --parallel 1
C_PID=$PID
call GET /v1/models; jcheck "j['data'][0]['meta']['chat_format'] == 'chatml'" "ChatML template recognised"
N=$(( $(ntok "<|im_start|>") + $(ntok $'user\nHi') + $(ntok "<|im_end|>") + $(ntok $'\n') + $(ntok "<|im_start|>") + $(ntok $'assistant\n') ))
post /v1/chat/completions '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":3}'; status 200 "ChatML chat"
jcheck "j['usage']['prompt_tokens'] == 1 + $N" "ChatML prompt = BOS + <|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n ($((N + 1)) tokens)"
stop "$C_PID"; check '[ "$STOP_RC" = 0 ]' "server C exit $STOP_RC"

start D -m "$T/mystery.gguf" --parallel 1
D_PID=$PID
check 'grep -q "chat template is not one smoe knows" "$T/D.log"' "unknown template warned at start"
post /v1/chat/completions '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":3}'; error 500 "unknown chat template"
jcheck "j['error']['code'] == 'unsupported_chat_template'" "unknown template code"
post /v1/completions '{"prompt":"Hi","max_tokens":3}'; status 200 "completions work with an unknown template"
call GET /health; status 200 "server D healthy"
"$SMOE" serve -m "$MODEL" --port "${BASE##*:}" >/dev/null 2>"$T/err"; rc=$?
check '[ $rc -eq 1 ] && grep -q "cannot listen" "$T/err"' "port in use: exit $rc ($(head -c 200 "$T/err"))"
stop "$D_PID"; check '[ "$STOP_RC" = 0 ]' "server D exit $STOP_RC"

summary

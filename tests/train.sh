#!/usr/bin/env bash
# train.sh - end-to-end checks of training from the command line: tokenizer-train,
# prepare-data, train, resume after kill -9 (the same losses and the same model bytes as
# an uninterrupted run), export loaded by `smoe run`, every router trains a few steps,
# hostile flags and inputs, and a full disk while checkpointing (simulated with a file
# size limit) that must leave the previous checkpoint intact.
# usage: tests/train.sh [SMOE]   (prints "N passed, N failed" last)
set -u
SMOE=${1:-./smoe}
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok; else bad "$what"; fi; }
# expect_fail WHAT PATTERN CMD...: non-zero exit, no crash signal, message matching PATTERN
expect_fail() {
    local what=$1 pat=$2; shift 2
    local out rc
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" -eq 0 ] || [ "$rc" -ge 128 ]; then bad "$what: exit $rc"; return; fi
    if printf '%s' "$out" | grep -qiE -e "$pat"; then ok; else bad "$what: message '$out' lacks /$pat/"; fi
}

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
corpus=tests/data/bpe/kjv-slice.txt
[ -f "$corpus" ] || corpus=$(ls tests/data/bpe/*.txt | head -n 1)
check "tokenizer-train" "$SMOE" tokenizer-train --vocab 400 -o "$dir/tok.gguf" -q "$corpus"
check "prepare-data" "$SMOE" prepare-data --tokenizer "$dir/tok.gguf" -o "$dir/data.bin" -q "$corpus"

common=(--data "$dir/data.bin" --tokenizer "$dir/tok.gguf" --dim 32 --layers 2 --heads 4 --kv-heads 2 --ffn 48
        --experts 4 --top-k 2 --seq 16 --batch 4 --steps 24 --warmup 4 --eval-every 8 --save-every 4 -t 2 -q)
check "train 24 steps" "$SMOE" train "${common[@]}" --out "$dir/a"
check "log has 24 lines" test "$(wc -l < "$dir/a/log.jsonl")" -eq 24
check "log has val_loss on step 8" grep -q '"step": 8, .*"val_loss"' "$dir/a/log.jsonl"
check "log fields" grep -q '"loss".*"aux_loss".*"lr".*"load_cv".*"dropped".*"tokens_per_s"' "$dir/a/log.jsonl"
check "loss decreases" python3 -c "
import json,sys; l=[json.loads(x) for x in open('$dir/a/log.jsonl')]
sys.exit(0 if l[-1]['loss'] < l[0]['loss'] - 0.1 else 1)"
check "exported model runs" "$SMOE" run -m "$dir/a/model.gguf" -p "And God" -n 8 --temp 0

# train_killed DIR: start the common run into DIR and kill -9 it once step 10 is logged
# (the last checkpoint is then step 8's)
train_killed() {
    "$SMOE" train "${common[@]}" --out "$1" & local pid=$!
    for _ in $(seq 600); do
        [ "$(wc -l 2>/dev/null < "$1/log.jsonl" || echo 0)" -ge 10 ] && break
        sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
}

# kill -9 after step 10, resume: the same losses and the same model as uninterrupted
train_killed "$dir/b"
check "resume after kill -9" "$SMOE" train "${common[@]}" --out "$dir/b" --resume
strip() { sed 's/, "tokens_per_s": [0-9.]*//' "$1"; }
check "resumed log equals uninterrupted" diff <(strip "$dir/a/log.jsonl") <(strip "$dir/b/log.jsonl")
check "resumed model equals uninterrupted" cmp "$dir/a/model.gguf" "$dir/b/model.gguf"

# text files straight into --data: tokenized once into DIR/data.bin, reused on --resume
text_common=("${common[@]/$dir\/data.bin/$corpus}")
check "train on text files" "$SMOE" train "${text_common[@]}" --steps 4 --eval-every 4 --out "$dir/t"
check "text tokenized into DIR/data.bin" test -s "$dir/t/data.bin"
check "same tokens as prepare-data" bash -c "'$SMOE' train ${common[*]} --steps 4 --eval-every 4 --out '$dir/t2' &&
    diff <(sed 's/, \"tokens_per_s\": [0-9.]*//' '$dir/t/log.jsonl') <(sed 's/, \"tokens_per_s\": [0-9.]*//' '$dir/t2/log.jsonl')"
"$SMOE" tokenizer-train --vocab 300 -o "$dir/tok300.gguf" -q "$corpus" 2>/dev/null
expect_fail "token file of another tokenizer" "another tokenizer" \
    "$SMOE" train "${common[@]/$dir\/tok.gguf/$dir/tok300.gguf}" --out "$dir/x"
expect_fail "token file mixed with text" "token file" "$SMOE" train "${common[@]}" --data "$corpus" --out "$dir/x"

# every router and loss trains a few steps without error and with a finite loss
for r in topk switch softmax-topk softmax-topk-norm noisy-topk expert-choice attention sigmoid-bias; do
    extra=()
    [ "$r" = switch ] && extra=(--top-k 1 --capacity-factor 1.0)
    check "router $r trains" "$SMOE" train "${common[@]}" --steps 3 --eval-every 3 --router "$r" \
        --aux-loss 0.01 --z-loss 0.001 "${extra[@]}" --out "$dir/r-$r"
    check "router $r loss finite" python3 -c "
import json,math,sys; l=[json.loads(x) for x in open('$dir/r-$r/log.jsonl')]
sys.exit(0 if len(l) == 3 and all(math.isfinite(x['loss']) for x in l) else 1)"
done
check "switch capacity drops tokens" python3 -c "
import json,sys; l=[json.loads(x) for x in open('$dir/r-switch/log.jsonl')]
sys.exit(0 if any(x['dropped'] > 0 for x in l) else 1)"

# hostile flags and inputs
expect_fail "no --data" "data" "$SMOE" train --tokenizer "$dir/tok.gguf" --out "$dir/x"
expect_fail "unknown router" "unknown router" "$SMOE" train "${common[@]}" --router nope --out "$dir/x"
expect_fail "bad number" "--dim|integer|number" "$SMOE" train "${common[@]}" --dim 12x --out "$dir/x"
expect_fail "heads not dividing dim" "multiple" "$SMOE" train "${common[@]}" --dim 30 --out "$dir/x"
expect_fail "top-k > experts" "K|top|expert" "$SMOE" train "${common[@]}" --top-k 9 --out "$dir/x"
expect_fail "missing data file" "no such|cannot|open" "$SMOE" train "${common[@]/$dir\/data.bin/$dir/none.bin}" --out "$dir/x"
head -c 100 "$dir/data.bin" > "$dir/trunc.bin"
expect_fail "truncated data file" "truncat|size|short|format" "$SMOE" train "${common[@]/$dir\/data.bin/$dir/trunc.bin}" --out "$dir/x"
expect_fail "resume without checkpoint" "checkpoint|no such" "$SMOE" train "${common[@]}" --out "$dir/empty" --resume
: > "$dir/empty.txt"
expect_fail "empty corpus" "empty|no (lines|tokens|text)" "$SMOE" prepare-data --tokenizer "$dir/tok.gguf" -o "$dir/e.bin" "$dir/empty.txt"
expect_fail "unknown option" "unknown option" "$SMOE" train --frobnicate

# a full disk while checkpointing: stop a run at step 8 (--stop-after), then resume
# under a file size limit (writes past it fail with EFBIG, SIGXFSZ ignored): the step-12
# checkpoint cannot be written, the run fails cleanly and the step-8 checkpoint survives
"$SMOE" train "${common[@]}" --stop-after 8 --out "$dir/full"
before=$(md5sum < "$dir/full/checkpoint.gguf")
size_kb=$(( $(stat -c %s "$dir/full/checkpoint.gguf") / 1024 / 2 ))
expect_fail "full disk (file size limit)" "checkpoint" \
    bash -c "trap '' XFSZ; ulimit -f $size_kb; exec $SMOE train ${common[*]} --out $dir/full --resume"
check "old checkpoint intact after the failed write" test "$(md5sum < "$dir/full/checkpoint.gguf")" = "$before"
check "no temporary files left" bash -c "! ls '$dir/full' | grep -q tmp"
check "and training continues when space is back" "$SMOE" train "${common[@]}" --out "$dir/full" --resume
check "that run equals the uninterrupted one" cmp "$dir/a/model.gguf" "$dir/full/model.gguf"
check "and so does its log" diff <(strip "$dir/a/log.jsonl") <(strip "$dir/full/log.jsonl")

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

#!/usr/bin/env bash
# cli.sh - end-to-end checks of the smoe command-line tool: help for every command, exit
# codes and messages for bad usage and bad files, logits (batch == decode, right size),
# tokenize, info, and deterministic generation. Prints "N passed, N failed" last.
# usage: tests/cli.sh [path/to/smoe]
set -u
SMOE=${1:-./smoe}
DATA=${TEST_DATA_DIR:-tests/data}
MODEL=$DATA/model/mixtral-tiny-F32.gguf
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
# expect CODE DESCRIPTION -- command...   (stdout -> $T/out, stderr -> $T/err)
expect() {
    local want=$1 what=$2; shift 3
    "$@" >"$T/out" 2>"$T/err"; local rc=$?
    if [ "$rc" -eq "$want" ]; then ok; else bad "$what: exit $rc, want $want ($(head -c 300 "$T/err"))"; fi
}
has() { if grep -q -- "$2" "$1"; then ok; else bad "$1 lacks '$2': $(head -c 300 "$1")"; fi; }

# help everywhere
expect 0 "--help" -- "$SMOE" --help; has "$T/out" "usage: smoe COMMAND"
for c in run logits tokenize info quantize synth bench; do
    expect 0 "$c --help" -- "$SMOE" "$c" --help; has "$T/out" "usage: smoe $c"
done
expect 0 "--version" -- "$SMOE" --version; has "$T/out" "smoe "

# usage errors: exit 2 with a message on stderr
expect 2 "no command" -- "$SMOE"
expect 2 "unknown command" -- "$SMOE" frobnicate; has "$T/err" "unknown command"
expect 2 "run without -m" -- "$SMOE" run -p hi; has "$T/err" "missing -m"
expect 2 "run bad -n" -- "$SMOE" run -m "$MODEL" -p hi -n abc; has "$T/err" "invalid value for -n"
expect 2 "run bad --temp" -- "$SMOE" run -m "$MODEL" -p hi --temp -1
expect 2 "run unknown option" -- "$SMOE" run -m "$MODEL" -p hi --bogus; has "$T/err" "unknown option"
expect 2 "run -n missing value" -- "$SMOE" run -m "$MODEL" -p hi -n
expect 2 "logits bad ids" -- "$SMOE" logits -m "$MODEL" --ids "1 x 3" -o "$T/l"; has "$T/err" "not a token id"

# bad files: exit 1 with a message naming the problem
expect 1 "missing model" -- "$SMOE" run -m "$T/nope.gguf" -p hi; has "$T/err" "cannot open"
printf 'not a gguf file at all' >"$T/bad.gguf"
expect 1 "garbage model" -- "$SMOE" run -m "$T/bad.gguf" -p hi; has "$T/err" "bad magic"
head -c 100000 "$MODEL" >"$T/trunc.gguf"
expect 1 "truncated model" -- "$SMOE" info "$T/trunc.gguf"; has "$T/err" "past the end"
expect 1 "out-of-range id" -- "$SMOE" logits -m "$MODEL" --ids "1 2 1024" -o "$T/l"; has "$T/err" "out of range"
expect 1 "unwritable output" -- "$SMOE" logits -m "$MODEL" --ids "1 2" -o "$T/no/such/dir/l"; has "$T/err" "cannot open"

# logits: right size, batch and decode paths agree bit for bit
IDS="650 139 687 420 897 492 58 874"
expect 0 "logits batch" -- "$SMOE" logits -m "$MODEL" --ids "$IDS" -o "$T/b.f32"
expect 0 "logits decode" -- "$SMOE" logits -m "$MODEL" --ids "$IDS" -o "$T/d.f32" --decode -t 2
if [ "$(stat -c %s "$T/b.f32" 2>/dev/null)" = $((8 * 1024 * 4)) ]; then ok; else bad "logits file size"; fi
if cmp -s "$T/b.f32" "$T/d.f32"; then ok; else bad "batch and decode logits differ"; fi

# tokenize and info
expect 0 "tokenize" -- "$SMOE" tokenize -m "$MODEL" -p "Hello world" --bos
if [ "$(head -n 1 "$T/out" | cut -d' ' -f1)" = 1 ]; then ok; else bad "tokenize --bos does not start with 1: $(cat "$T/out")"; fi
expect 0 "tokenize vocab-only gguf" -- "$SMOE" tokenize -m "$DATA/tokenizer/ggml-vocab-llama-spm.gguf" -p "Hello world"
if [ "$(cat "$T/out")" = "15043 3186" ]; then ok; else bad "llama-spm 'Hello world' = $(cat "$T/out")"; fi
expect 0 "info" -- "$SMOE" info "$MODEL"
has "$T/out" "blk.0.ffn_gate_exps.weight"; has "$T/out" "experts:     8, 2 used"; has "$T/out" "llama.expert_count"

# generation: text on stdout, speed on stderr, greedy is deterministic across thread counts
expect 0 "run greedy" -- "$SMOE" run -m "$MODEL" -p "Hello" -n 32 --temp 0
cp "$T/out" "$T/g1"; has "$T/err" "tok/s"
if [ "$(wc -c <"$T/g1")" -gt 10 ]; then ok; else bad "run printed too little: $(cat "$T/g1")"; fi
expect 0 "run greedy 2 threads" -- "$SMOE" run -m "$MODEL" -p "Hello" -n 32 --temp 0 -t 2
if cmp -s "$T/g1" "$T/out"; then ok; else bad "greedy output depends on the thread count"; fi
expect 0 "run seeded" -- "$SMOE" run -m "$MODEL" -p "Hello" -n 24 --seed 7; cp "$T/out" "$T/s1"
expect 0 "run seeded again" -- "$SMOE" run -m "$MODEL" -p "Hello" -n 24 --seed 7
if cmp -s "$T/s1" "$T/out"; then ok; else bad "same seed, different text"; fi
expect 0 "run quantized" -- "$SMOE" run -m "$DATA/model/mixtral-tiny-Q4_K_M.gguf" -p "Hello" -n 8 --temp 0
expect 0 "run -n 0" -- "$SMOE" run -m "$MODEL" -p "Hello" -n 0

# quantize: llama.cpp's mix, loadable, and a clear error for a bad type
expect 0 "quantize Q4_K_M" -- "$SMOE" quantize -q "$MODEL" "$T/q4km.gguf" Q4_K_M
expect 0 "info of quantized" -- "$SMOE" info "$T/q4km.gguf"
has "$T/out" "blk.1.ffn_down_exps.weight *Q6_K"; has "$T/out" "general.file_type *15"
expect 0 "run quantized output" -- "$SMOE" run -m "$T/q4km.gguf" -p "Hello" -n 4 --temp 0
expect 2 "quantize bad type" -- "$SMOE" quantize "$MODEL" "$T/x.gguf" Q9_Z; has "$T/err" "Q9_Z"
expect 1 "quantize missing input" -- "$SMOE" quantize "$T/none.gguf" "$T/x.gguf" Q8_0

# byte-identical to llama-quantize: F16/BF16 (sha256 of the files it wrote, from the
# fixtures manifest; the files themselves are not stored) and Q8_0 (stored)
expect 0 "quantize F16" -- "$SMOE" quantize -q "$MODEL" "$T/f16.gguf" F16
expect 0 "quantize BF16" -- "$SMOE" quantize -q "$MODEL" "$T/bf16.gguf" BF16
expect 0 "quantize Q8_0" -- "$SMOE" quantize -q "$MODEL" "$T/q8.gguf" Q8_0
if [ "$(sha256sum <"$T/f16.gguf" | cut -d' ' -f1)" = f4ae4a6c49803237c0dc730593af92127a6188f7ef9a0ff9a1f209471cae72fc ]; then ok; else bad "F16 file differs from llama-quantize's"; fi
if [ "$(sha256sum <"$T/bf16.gguf" | cut -d' ' -f1)" = 1203959b0c07fe4863ec8c846faaa351fd9c37fdaee55ee5e2871d138772f8de ]; then ok; else bad "BF16 file differs from llama-quantize's"; fi
if cmp -s "$T/q8.gguf" "$DATA/model/mixtral-tiny-Q8_0.gguf"; then ok; else bad "Q8_0 file differs from llama-quantize's"; fi

# synth + bench: a small random model, benchmarked with JSON output
expect 0 "synth small" -- "$SMOE" synth -o "$T/syn.gguf" --type Q8_0 --n-embd 64 --n-layer 2 --n-head 4 \
    --n-head-kv 2 --n-ff 128 --n-expert 4 --n-expert-used 2 --vocab "$DATA/tokenizer/ggml-vocab-mistral-v1.gguf" --vocab-n 512
expect 0 "bench json" -- "$SMOE" bench -m "$T/syn.gguf" -p 16 -n 4 -r 1 -t 1 --json --no-bw
has "$T/out" '"test": *"pp16"'; has "$T/out" '"test": *"tg4"'; has "$T/out" '"tokens_per_s"'
expect 2 "bench without -m" -- "$SMOE" bench -p 8
expect 0 "bench 3 sequences" -- "$SMOE" bench -m "$T/syn.gguf" -p 0 -n 4 -r 1 -t 2 --seqs 3 --json --no-bw
has "$T/out" '"test": *"tg4x3"'; has "$T/out" '"n_seq": *3'
expect 2 "bench --seqs 0" -- "$SMOE" bench -m "$T/syn.gguf" -p 0 -n 4 --seqs 0

# tokenizer-train and prepare-data: help, usage errors, bad input, a small end-to-end run
for c in tokenizer-train prepare-data; do
    expect 0 "$c --help" -- "$SMOE" "$c" --help; has "$T/out" "usage: smoe $c"
done
W=(alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega)
for i in $(seq 1 400); do
    echo "${W[i % 11]} ${W[(i * 7) % 11]}, ${W[(i * 3) % 11]}s and ${W[(i / 5) % 11]}ing: $((i % 97))."
done >"$T/corpus.txt"
printf '\n\r\n\n' >"$T/empty.txt"
expect 2 "tokenizer-train without -o" -- "$SMOE" tokenizer-train --vocab 300 "$T/corpus.txt"; has "$T/err" "missing -o"
expect 2 "tokenizer-train without corpus" -- "$SMOE" tokenizer-train -o "$T/tok.gguf"; has "$T/err" "missing CORPUS"
expect 2 "tokenizer-train bad --vocab" -- "$SMOE" tokenizer-train --vocab 100 -o "$T/tok.gguf" "$T/corpus.txt"
has "$T/err" "invalid value for --vocab"
expect 2 "tokenizer-train bad --coverage" -- "$SMOE" tokenizer-train --coverage 2 -o "$T/tok.gguf" "$T/corpus.txt"
expect 2 "tokenizer-train unknown option" -- "$SMOE" tokenizer-train --bogus -o "$T/tok.gguf" "$T/corpus.txt"
has "$T/err" "unknown option"
expect 1 "tokenizer-train empty corpus" -- "$SMOE" tokenizer-train -q -o "$T/tok.gguf" "$T/empty.txt"; has "$T/err" "no text"
expect 1 "tokenizer-train missing corpus" -- "$SMOE" tokenizer-train -q -o "$T/tok.gguf" "$T/none.txt"
has "$T/err" "cannot open"
expect 1 "tokenizer-train vocab too large" -- "$SMOE" tokenizer-train -q --vocab 100000 -o "$T/tok.gguf" "$T/corpus.txt"
has "$T/err" "largest vocabulary it supports"
if [ ! -e "$T/tok.gguf" ]; then ok; else bad "a failed tokenizer-train left an output"; fi
expect 0 "tokenizer-train" -- "$SMOE" tokenizer-train --vocab 320 -o "$T/tok.gguf" "$T/corpus.txt"
has "$T/err" "merges -> 320 tokens"
expect 0 "tokenizer-train again" -- "$SMOE" tokenizer-train -q --vocab 320 -o "$T/tok2.gguf" "$T/corpus.txt"
if cmp -s "$T/tok.gguf" "$T/tok2.gguf"; then ok; else bad "tokenizer-train is not deterministic"; fi
expect 0 "info of a trained tokenizer" -- "$SMOE" info "$T/tok.gguf"
has "$T/out" 'tokenizer.ggml.model *"llama"'; has "$T/out" "tokenizer.ggml.tokens *\[str x 320\]"
expect 0 "tokenize with a trained tokenizer" -- "$SMOE" tokenize -m "$T/tok.gguf" -p "alpha betas" --pieces
has "$T/out" "▁alpha"
expect 2 "prepare-data without --tokenizer" -- "$SMOE" prepare-data -o "$T/d.bin" "$T/corpus.txt"
has "$T/err" "missing --tokenizer"
expect 2 "prepare-data without -o" -- "$SMOE" prepare-data --tokenizer "$T/tok.gguf" "$T/corpus.txt"
expect 2 "prepare-data without corpus" -- "$SMOE" prepare-data --tokenizer "$T/tok.gguf" -o "$T/d.bin"
expect 2 "prepare-data bad --val-fraction" -- "$SMOE" prepare-data --tokenizer "$T/tok.gguf" -o "$T/d.bin" \
    --val-fraction 1.5 "$T/corpus.txt"
expect 1 "prepare-data empty corpus" -- "$SMOE" prepare-data -q --tokenizer "$T/tok.gguf" -o "$T/d.bin" "$T/empty.txt"
has "$T/err" "no text"
expect 1 "prepare-data missing corpus" -- "$SMOE" prepare-data -q --tokenizer "$T/tok.gguf" -o "$T/d.bin" "$T/none.txt"
expect 1 "prepare-data bad tokenizer" -- "$SMOE" prepare-data -q --tokenizer "$T/corpus.txt" -o "$T/d.bin" "$T/corpus.txt"
has "$T/err" "bad magic"
if [ ! -e "$T/d.bin" ]; then ok; else bad "a failed prepare-data left an output"; fi
expect 0 "prepare-data" -- "$SMOE" prepare-data --tokenizer "$T/tok.gguf" --val-fraction 0.1 -o "$T/d.bin" "$T/corpus.txt"
has "$T/err" "train, [0-9]* validation"
expect 0 "prepare-data 1 thread, stdin" -- bash -c "\"$SMOE\" prepare-data -q -t 1 --tokenizer \"$T/tok.gguf\" \
    --val-fraction 0.1 -o \"$T/d2.bin\" - <\"$T/corpus.txt\""
if cmp -s "$T/d.bin" "$T/d2.bin"; then ok; else bad "prepare-data output depends on threads or input path"; fi
if [ "$(head -c 8 "$T/d.bin")" = SMOETOKS ]; then ok; else bad "token file magic"; fi
ls "$T" | grep -q '\.tmp' && bad "temporary files left behind" || ok

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

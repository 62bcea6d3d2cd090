#!/usr/bin/env bash
# compare_train.sh - smoe's training speed against the PyTorch peer (bench/train_peer.py),
# and optionally their loss curves. See bench/README.md ("Training: smoe against PyTorch").
#
# speed:   bench/compare_train.sh [-t THREADS] [-r RUNS] [-n ROUNDS] [SHAPE OPTIONS...]
#          Runs build/bench_train and train_peer.py --bench alternately, ROUNDS times each
#          (smoe, peer, smoe, ...), same shape, threads and runs; prints each round and the
#          ratio of the median tokens/s. SHAPE OPTIONS go to both (--dim 256 --layers 4 ...;
#          default: the issue's train-s).
# curves:  bench/compare_train.sh --curves DATA.bin TOK.gguf OUTDIR [-t THREADS] [TRAIN OPTIONS...]
#          Runs `smoe train` and train_peer.py --train on the same token file, seed and
#          settings (TRAIN OPTIONS go to both: --steps --lr --warmup --eval-every --dim ...),
#          writes OUTDIR/smoe/log.jsonl and OUTDIR/peer.jsonl, and prints the validation
#          losses side by side.
#
# Environment: PYTHON (default /usr/bin/python3, Debian's python3-torch), SMOE (default ./smoe).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-/usr/bin/python3}
SMOE=${SMOE:-./smoe}
PEER=bench/train_peer.py

median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }
field() { sed -n "s/.*\"$1\": \([-0-9.e+]*\).*/\1/p"; }

if [[ ${1:-} == --curves ]]; then
    [[ $# -ge 4 ]] || { echo "usage: $0 --curves DATA.bin TOK.gguf OUTDIR [-t N] [options]" >&2; exit 2; }
    data=$2 tok=$3 out=$4
    shift 4
    threads=2 opts=()
    while [[ $# -gt 0 ]]; do
        case $1 in
        -t | --threads) threads=$2; shift 2 ;;
        *) opts+=("$1"); shift ;;
        esac
    done
    mkdir -p "$out"
    echo "smoe train ..." >&2
    "$SMOE" train --data "$data" --tokenizer "$tok" --out "$out/smoe" -t "$threads" -q "${opts[@]}"
    echo "train_peer.py --train ..." >&2
    "$PYTHON" "$PEER" --train "$data" -t "$threads" -q --log "$out/peer.jsonl" "${opts[@]}" >/dev/null
    "$PYTHON" - "$out/smoe/log.jsonl" "$out/peer.jsonl" <<'EOF'
import json, statistics, sys
def load(p):
    return {r["step"]: r for r in map(json.loads, open(p))}
s, p = load(sys.argv[1]), load(sys.argv[2])
steps = sorted(k for k in s if "val_loss" in s[k] and k in p and "val_loss" in p[k])
print(f"{'step':>6} {'smoe val':>10} {'torch val':>10} {'diff':>9}   {'smoe train':>10} {'torch train':>11}")
for k in steps:
    print(f"{k:>6} {s[k]['val_loss']:>10.4f} {p[k]['val_loss']:>10.4f} {s[k]['val_loss'] - p[k]['val_loss']:>+9.4f}"
          f"   {s[k]['loss']:>10.4f} {p[k]['loss']:>11.4f}")
common = sorted(set(s) & set(p))
ts = statistics.median(s[k]["tokens_per_s"] for k in common)
tp = statistics.median(p[k]["tokens_per_s"] for k in common)
print(f"median step tokens/s: smoe {ts:.0f}, torch {tp:.0f}, ratio {ts / tp:.2f}")
EOF
    exit 0
fi

threads=2 runs=5 rounds=3 shape=()
while [[ $# -gt 0 ]]; do
    case $1 in
    -t) threads=$2; shift 2 ;;
    -r) runs=$2; shift 2 ;;
    -n) rounds=$2; shift 2 ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    *) shape+=("$1"); shift ;;
    esac
done
if [[ ! -x build/bench_train || build/bench_train -ot build/libsmoe.a || build/bench_train -ot bench/bench_train.c ]]; then
    echo "building build/bench_train" >&2
    gcc -std=c11 -D_GNU_SOURCE -O2 -Iinclude -Isrc bench/bench_train.c build/libsmoe.a -lm -pthread -o build/bench_train
fi
s_all=() p_all=()
printf '%-6s %12s %12s %7s\n' round smoe_tok/s torch_tok/s ratio
for ((i = 1; i <= rounds; i++)); do
    s=$(build/bench_train -t "$threads" -r "$runs" "${shape[@]}" | field tokens_per_s)
    pj=$("$PYTHON" "$PEER" --bench -t "$threads" -r "$runs" "${shape[@]}")
    p=$(field tokens_per_s <<<"$pj")
    s_all+=("$s") p_all+=("$p")
    printf '%-6s %12s %12s %7.2f\n' "$i" "$s" "$p" "$(awk -v a="$s" -v b="$p" 'BEGIN {print a / b}')"
done
sm=$(printf '%s\n' "${s_all[@]}" | median) pm=$(printf '%s\n' "${p_all[@]}" | median)
printf '%-6s %12s %12s %7.2f\n' median "$sm" "$pm" "$(awk -v a="$sm" -v b="$pm" 'BEGIN {print a / b}')"
echo "peer: $pj"

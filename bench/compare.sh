#!/usr/bin/env bash
# compare.sh - smoe and llama.cpp side by side: runs `smoe bench` and llama.cpp's
# llama-bench on the same GGUF files with the same threads / prompt / generation lengths,
# interleaved (smoe, llama, smoe, llama, ... r times, so that machine noise hits both
# alike), and prints one table: file, test, tokens/s of each, their ratio, and the weight
# GB/s each reaches at its tg speed as a share of the measured memory bandwidth.
#
# What it does not do: it builds nothing of llama.cpp (give it a build with LLAMA_CPP_BIN)
# and writes nothing into this repository; models and raw results go to the cache dir.
#
# usage: LLAMA_CPP_BIN=DIR bench/compare.sh [-t N] [-p N] [-n N] [-r N] [FILE.gguf ...]
#   LLAMA_CPP_BIN   llama.cpp build dir holding llama-bench (or bin/llama-bench)
#   SMOE            the smoe binary (default: ./smoe of this tree, built with make if absent)
#   SMOE_BENCH_DIR  cache for models and results (default ~/.cache/smoe-bench)
#   WARMUP=0        pass --no-warmup to both benchmarks
#   With no FILE: bench-m at Q4_K_M, Q8_0 and F16, synthesised into the cache if missing.
set -euo pipefail

die() { echo "compare.sh: $*" >&2; exit 2; }
usage() { sed -n '/^# usage:/,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

repo=$(cd "$(dirname "$0")/.." && pwd)
threads="" p=512 n=128 reps=3
files=()
while [ $# -gt 0 ]; do
    case "$1" in
        -t) threads=${2:?-t needs a value}; shift 2 ;;
        -p) p=${2:?-p needs a value}; shift 2 ;;
        -n) n=${2:?-n needs a value}; shift 2 ;;
        -r) reps=${2:?-r needs a value}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        -*) die "unknown option '$1' (see --help)" ;;
        *) files+=("$1"); shift ;;
    esac
done
for v in "$p" "$n" "$reps" ${threads:+"$threads"}; do
    [[ "$v" =~ ^[0-9]+$ ]] || die "'$v' is not a non-negative integer"
done
[ "$reps" -ge 1 ] || die "-r must be at least 1"

[ -n "${LLAMA_CPP_BIN:-}" ] || die "set LLAMA_CPP_BIN to a llama.cpp build directory holding llama-bench"
llama_bench=""
for c in "$LLAMA_CPP_BIN/llama-bench" "$LLAMA_CPP_BIN/bin/llama-bench"; do
    if [ -x "$c" ]; then llama_bench=$c; break; fi
done
[ -n "$llama_bench" ] || die "no executable llama-bench in $LLAMA_CPP_BIN or $LLAMA_CPP_BIN/bin"

smoe=${SMOE:-$repo/smoe}
if [ ! -x "$smoe" ]; then
    [ -z "${SMOE:-}" ] || die "SMOE=$smoe is not executable"
    echo "compare.sh: building smoe" >&2
    make -C "$repo" -s smoe >&2
fi
command -v python3 >/dev/null || die "python3 is needed to read the JSON results"

# Physical cores, as smoe bench counts them (SMT siblings once); both get the same -t.
if [ -z "$threads" ]; then
    threads=$(lscpu -p=core,socket 2>/dev/null | grep -v '^#' | sort -u | wc -l || true)
    [ "${threads:-0}" -ge 1 ] 2>/dev/null || threads=$(nproc)
fi

cache=${SMOE_BENCH_DIR:-$HOME/.cache/smoe-bench}
mkdir -p "$cache"
if [ ${#files[@]} -eq 0 ]; then
    for t in Q4_K_M Q8_0 F16; do
        f=$cache/bench-m-$t.gguf
        if [ ! -f "$f" ]; then
            echo "compare.sh: synthesising $f" >&2
            "$smoe" synth --preset bench-m --type "$t" -o "$f" >&2
        fi
        files+=("$f")
    done
fi
for f in "${files[@]}"; do [ -f "$f" ] || die "no such file: $f"; done

out=$cache/results-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
warm=()
[ "${WARMUP:-1}" = 0 ] && warm=(--no-warmup)
echo "compare.sh: $threads threads, pp$p / tg$n, $reps interleaved runs per file; raw results in $out" >&2
echo "compare.sh: llama-bench = $llama_bench" >&2

for f in "${files[@]}"; do
    for ((i = 1; i <= reps; i++)); do
        echo "compare.sh: $(basename "$f") run $i/$reps: smoe" >&2
        bw=(--no-bw)
        [ "$i" = 1 ] && bw=()   # measure the memory bandwidth once per file
        if ! "$smoe" bench -m "$f" -p "$p" -n "$n" -t "$threads" -r 1 --json "${bw[@]}" "${warm[@]}" \
            >>"$out/smoe.jsonl" 2>>"$out/smoe.log"; then
            tail -5 "$out/smoe.log" >&2
            die "smoe bench failed on $f (log: $out/smoe.log)"
        fi
        echo "compare.sh: $(basename "$f") run $i/$reps: llama.cpp" >&2
        if ! "$llama_bench" -m "$f" -p "$p" -n "$n" -t "$threads" -r 1 -o jsonl "${warm[@]}" \
            >>"$out/llama.jsonl" 2>>"$out/llama.log"; then
            tail -5 "$out/llama.log" >&2
            die "llama-bench failed on $f (log: $out/llama.log)"
        fi
    done
done

python3 - "$out/smoe.jsonl" "$out/llama.jsonl" <<'EOF'
import json, os, statistics, sys

def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    return rows

smoe, llama = load(sys.argv[1]), load(sys.argv[2])
res = {}          # (file, test) -> {"smoe": [...], "llama": [...]}
bpt, bw = {}, {}  # file -> bytes read per generated token, measured bandwidth
order = []
def slot(f, t):
    k = (f, t)
    if k not in res:
        res[k] = {"smoe": [], "llama": []}
        order.append(k)
    return res[k]

for r in smoe:
    f = os.path.basename(r["model"])
    slot(f, r["test"])["smoe"].append(r["tokens_per_s"])
    bpt[f] = r.get("bytes_per_token")
    if r.get("bw_gb_per_s"):
        bw[f] = r["bw_gb_per_s"]
commit = "?"
for r in llama:
    f = os.path.basename(r["model_filename"])
    test = "pp%d" % r["n_prompt"] if r["n_gen"] == 0 else ("tg%d" % r["n_gen"] if r["n_prompt"] == 0
                                                           else "pp%d+tg%d" % (r["n_prompt"], r["n_gen"]))
    slot(f, test)["llama"].extend(r.get("samples_ts") or [r["avg_ts"]])
    commit = r.get("build_commit", commit)

def fmt(v):
    if not v:
        return "-"
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return "%.2f ± %.2f" % (statistics.median(v), sd)

print("smoe vs llama.cpp (%s); medians of the interleaved runs; ratio = smoe / llama.cpp" % commit)
print()
hdr = ["file", "test", "smoe t/s", "llama.cpp t/s", "ratio", "smoe GB/s (% bw)", "llama GB/s (% bw)"]
rows = []
for f, t in order:
    s, l = res[(f, t)]["smoe"], res[(f, t)]["llama"]
    ratio = "%.3f" % (statistics.median(s) / statistics.median(l)) if s and l and statistics.median(l) > 0 else "-"
    def gbs(v):
        if not v or not t.startswith("tg") or not bpt.get(f):
            return ""
        g = bpt[f] * statistics.median(v) / 1e9
        return "%.2f (%.0f%%)" % (g, 100 * g / bw[f]) if bw.get(f) else "%.2f" % g
    rows.append([f, t, fmt(s), fmt(l), ratio, gbs(s), gbs(l)])
w = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(hdr)]
line = lambda cells: "| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(cells)) + " |"
print(line(hdr))
print("|" + "|".join("-" * (x + 2) for x in w) + "|")
for r in rows:
    print(line(r))
if bw:
    print()
    print("memory read bandwidth (smoe bench, same threads): " +
          ", ".join("%.2f GB/s" % v for v in sorted(set(round(x, 2) for x in bw.values()))))
EOF

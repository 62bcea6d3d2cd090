#!/usr/bin/env bash
# router_compare.sh - smoke test of bench/router-compare: its --quick mode (tiny model, a
# few steps) on committed text (tests/data/bpe/kjv-head200.txt for training, the two
# tests/data/routes/ texts as held-out domains), into a temporary directory, with one
# thread. Checks that results.json, results.md and curves.svg exist and parse (json,
# xml.etree), that the JSON holds every run and router with the fields the report
# promises, that a second run reuses the finished runs and gives the same losses, that
# every router trains (the remaining five in one more quick run, two seeds), and the
# usage errors. Needs python3 (stdlib). About 10 s.
# usage: tests/router_compare.sh [SMOE]   (prints "N passed, N failed" last)
set -u
SMOE=${1:-./smoe}
case $SMOE in /*) ;; *) SMOE=$PWD/$SMOE ;; esac
DATA=${TEST_DATA_DIR:-tests/data}
BENCH=bench/router-compare
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

mkdir -p "$T/corpus/heldout"
cp "$DATA/bpe/kjv-head200.txt" "$T/corpus/train.txt"
cp "$DATA/routes/genesis.txt" "$DATA/routes/modern.txt" "$T/corpus/heldout/"

# check OUT ROUTERS SEEDS ROUTES(0/1): the three files parse and hold what they should;
# prints "passed failed" last
check() {
    python3 - "$@" <<'EOF'
import json, os, sys, xml.etree.ElementTree as ET
out, routers, seeds, routes = sys.argv[1], sys.argv[2].split(","), [int(s) for s in sys.argv[3].split(",")], sys.argv[4] == "1"
P = F = 0
def check(c, what):
    global P, F
    if c: P += 1
    else: F += 1; print("FAIL:", what, file=sys.stderr)
try:
    j = json.load(open(os.path.join(out, "results.json")))
    check(True, "")
except Exception as e:
    check(False, "results.json: %s" % e); print(P, F); sys.exit(0)
check(sorted(j["order"]) == sorted(routers), "order %s" % j["order"])
vals = [j["routers"][r]["final_val_loss"]["mean"] for r in j["order"]]
check(vals == sorted(vals), "order is not by mean validation loss")
check(len(j["runs"]) == len(routers) * len(seeds), "%d runs" % len(j["runs"]))
for x in j["runs"]:
    ok = (x["router"] in routers and x["seed"] in seeds and 0 < x["final_val_loss"] < 20
          and x["best_val_loss"] <= x["final_val_loss"] and x["tokens_per_s"] > 0
          and 0 <= x["dropped_rate"] <= 1 and x["load_cv_final"] >= 0 and x["params"] > 0
          and x["wall_s"] >= 0 and len(x["val_curve"]) >= 2 and x["val_curve"][-1][0] == x["steps"])
    check(ok, "run %s" % {k: x[k] for k in x if k != "val_curve"})
for r in routers:
    p = j["routers"][r]
    v = p["final_val_loss"]
    check(v["min"] <= v["mean"] <= v["max"] and v["n"] == len(seeds) and v["std"] >= 0, "%s spread %s" % (r, v))
    check((p["routes"] is not None) == routes, "%s routes %s" % (r, p["routes"]))
    if p["routes"]:
        q = p["routes"]
        check(0 <= q["topk_overlap_rate"] <= 1 and 0 <= q["same_first_rate"] <= 1 and q["load_cv"] >= 0
              and 0 <= q["domain_tv"] <= 1 and q["domains"] == ["genesis.txt", "modern.txt"], "%s routes %s" % (r, q))
    # equal active compute: the same expert weights per token for every router
    check(p["active_expert_params"] == j["routers"][routers[0]]["active_expert_params"], "%s active params" % r)
if "attention" in routers and "topk" in routers:
    y = j["attention_vs_topk"]
    check(y and abs(y["paper"]["diff"] + 0.008) < 1e-12 and len(y["diff_per_seed"]) == len(seeds), "attention_vs_topk")
md = open(os.path.join(out, "results.md")).read()
rows = [l for l in md.splitlines() if l.startswith("| ") and "`" in l.split("|")[2]]
check(all(("`%s`" % r) in md for r in routers), "results.md lacks a router")
first = [l.split("|")[2].strip().strip("`") for l in rows][:len(routers)]
check(first == j["order"], "results.md order %s vs %s" % (first, j["order"]))
try:
    root = ET.parse(os.path.join(out, "curves.svg")).getroot()
    check(True, "")
except Exception as e:
    check(False, "curves.svg: %s" % e); print(P, F); sys.exit(0)
ns = "{http://www.w3.org/2000/svg}"
check(root.tag == ns + "svg", "svg root %s" % root.tag)
tags = {e.tag for e in root.iter()}
check(not any(t.endswith(("script", "foreignObject", "image")) for t in tags), "svg has %s" % tags)
svgtxt = open(os.path.join(out, "curves.svg")).read()
check("href" not in svgtxt and "http://" not in svgtxt.replace("http://www.w3.org/2000/svg", ""), "svg external reference")
lines = root.findall(".//%spolyline" % ns)
check(len(lines) >= 2 * len(routers) * (1 + len(seeds)), "%d polylines" % len(lines))
texts = [e.text or "" for e in root.iter(ns + "text")]
check(all(any(t.startswith(r + " ") for t in texts) for r in routers), "svg legend")
check(sum(1 for t in texts if t == "step") == 2 and any(t == "validation loss" for t in texts), "svg axis labels")
print(P, F)
EOF
}
# py OUT ROUTERS SEEDS ROUTES WHAT: run check, add its counts
py() {
    local o p f
    o=$(check "$1" "$2" "$3" "$4" 2>&1)
    read -r p f <<<"$(printf '%s\n' "$o" | tail -n 1)"
    if ! [[ "$p" =~ ^[0-9]+$ && "$f" =~ ^[0-9]+$ ]]; then bad "$5: checker crashed: $(printf '%s' "$o" | tail -n 5)"; return; fi
    pass=$((pass + p)); fail=$((fail + f))
    [ "$f" -eq 0 ] || printf '%s\n' "$o" | head -n -1 | sed "s|^|$5: |" >&2
}

# 1. --quick: topk and attention, seed 1, with the routing analysis
t0=$(date +%s)
if "$BENCH" --quick --smoe "$SMOE" --corpus-dir "$T/corpus" --out "$T/out" >"$T/stdout" 2>"$T/stderr"; then ok; else bad "--quick exited $?: $(tail -n 5 "$T/stderr")"; fi
for f in results.json results.md curves.svg; do
    if [ -s "$T/out/$f" ]; then ok; else bad "--quick wrote no $f"; fi
done
py "$T/out" topk,attention 1 1 quick
if grep -q '^| 1 | `' "$T/stdout" && grep -q 'Yuan 2.0-M32' "$T/out/results.md"; then ok; else bad "stdout/results.md lack the table"; fi

# 2. the same again: every run reused, the same losses
cp "$T/out/results.json" "$T/first.json"
"$BENCH" --quick --smoe "$SMOE" --corpus-dir "$T/corpus" --out "$T/out" >/dev/null 2>"$T/stderr2" || bad "second --quick exited $?"
if [ "$(grep -c 'reusing the finished run' "$T/stderr2")" -eq 2 ] && ! grep -q tokenizer "$T/stderr2"; then ok; else bad "second run did not reuse: $(cat "$T/stderr2")"; fi
if python3 -c '
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
sys.exit(0 if [x["val_curve"] for x in a["runs"]] == [x["val_curve"] for x in b["runs"]] else 1)' "$T/first.json" "$T/out/results.json"
then ok; else bad "second run's losses differ"; fi

# 3. the other five routers, two seeds, no routing analysis
if "$BENCH" --quick --smoe "$SMOE" --corpus-dir "$T/corpus" --out "$T/out5" --routers switch,softmax-topk,noisy-topk,expert-choice,sigmoid-bias \
    --seeds 1,2 --steps 10 --routes-tokens 0 >/dev/null 2>"$T/stderr3"; then ok; else bad "five routers exited $?: $(tail -n 5 "$T/stderr3")"; fi
py "$T/out5" switch,softmax-topk,noisy-topk,expert-choice,sigmoid-bias 1,2 0 five
if python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
r = j["routers"]
ok = r["switch"]["top_k"] == 1 and r["switch"]["expert_ffn"] == 2 * j["config"]["model"]["expert_ffn"]
ok &= r["switch"]["params"] > r["softmax-topk"]["params"]
ok &= r["expert-choice"]["load_cv_final"]["max"] == 0 and r["expert-choice"]["dropped_rate"]["max"] == 0
ok &= "no aux" in r["sigmoid-bias"]["balancing"] and "none" in r["expert-choice"]["balancing"]
sys.exit(0 if ok else 1)' "$T/out5/results.json"; then ok; else bad "switch/expert-choice/sigmoid-bias settings"; fi
t1=$(date +%s)
if [ $((t1 - t0)) -lt 60 ]; then ok; else bad "took $((t1 - t0)) s (limit 60)"; fi

# 4. usage
if "$BENCH" --help >"$T/help" 2>&1 && grep -q -- '--quick' "$T/help"; then ok; else bad "--help"; fi
"$BENCH" --routers nope --corpus-dir "$T/corpus" --out "$T/x" >/dev/null 2>&1; rc=$?
if [ "$rc" -eq 2 ]; then ok; else bad "unknown router: exit $rc, want 2"; fi
"$BENCH" --steps ten --out "$T/x" >/dev/null 2>&1; rc=$?
if [ "$rc" -eq 2 ]; then ok; else bad "bad --steps: exit $rc, want 2"; fi
"$BENCH" --bogus >/dev/null 2>&1; rc=$?
if [ "$rc" -eq 2 ]; then ok; else bad "unknown option: exit $rc, want 2"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

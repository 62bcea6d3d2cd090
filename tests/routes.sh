#!/usr/bin/env bash
# routes.sh - end-to-end checks of `smoe routes`: help and errors; routes.json against
# statistics recomputed here (python3, stdlib only) from the --dump of every token's
# routing, on the bundled model with two domains of committed text (tests/data/routes/),
# in windows; the random-routing baselines against their formulas; the routing of the
# mixtral-tiny fixture's ids-n64 against the peer's (llama.cpp chose the same experts as
# the Mistral reference at every position: routing-F32-n64.json, 0 flips); and
# index.html: self-contained, escaped, the tokens' text intact, and rendered by headless
# Chromium without console errors (a line starting with SKIP when Chromium is absent).
# usage: tests/routes.sh [SMOE]   (prints "N passed, N failed" last)
set -u
SMOE=${1:-./smoe}
DATA=${TEST_DATA_DIR:-tests/data}
MODEL=models/kjv-moe.gguf
TINY=$DATA/model/mixtral-tiny-F32.gguf
GEN=$DATA/routes/genesis.txt
MOD=$DATA/routes/modern.txt
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
# py WHAT ARGS... : run the checker below; it prints "P F" (checks passed, failed) last
py() {
    local what=$1; shift
    local out
    out=$(python3 "$T/check.py" "$@" 2>&1)
    local last p f
    last=$(printf '%s\n' "$out" | tail -n 1)
    read -r p f <<<"$last"
    if ! [[ "$p" =~ ^[0-9]+$ && "$f" =~ ^[0-9]+$ ]]; then bad "$what: checker crashed: $(printf '%s' "$out" | tail -n 5)"; return; fi
    pass=$((pass + p)); fail=$((fail + f))
    [ "$f" -eq 0 ] || printf '%s\n' "$out" | head -n -1 | sed "s|^|FAIL: $what: |" >&2
}

# ------------------------------------------------------------------ the independent checker
cat >"$T/check.py" <<'EOF'
# check.py MODE ...: recompute routes.json from the --dump lines; prints "passed failed" last.
import html.parser, json, math, random, sys
P = F = 0
def check(cond, what):
    global P, F
    if cond: P += 1
    else: F += 1; print(what)
def close(a, b, tol=1e-9):
    if a is None or b is None: return a is None and b is None
    return abs(a - b) <= tol * max(1.0, abs(b))

def load_dump(path):
    lines = [json.loads(l) for l in open(path)]
    return lines[0], lines[1:]

def stats(rows, l, E, K):
    """rows: the dump lines of one or more domains, in order. Statistics of layer l."""
    cnt, fst = [0] * E, [0] * E
    pairs = same = meet = 0
    prev = None
    for r in rows:
        ex = r["experts"][l]
        for e in ex: cnt[e] += 1
        fst[ex[0]] += 1
        if prev is not None and prev["domain"] == r["domain"] and prev["window"] == r["window"] \
                and prev["pos"] + 1 == r["pos"]:
            pe = prev["experts"][l]
            pairs += 1
            same += pe[0] == ex[0]
            meet += len(set(pe) & set(ex)) > 0
        prev = r
    n = len(rows)
    tot = K * n
    mean = tot / E
    share = [c / tot for c in cnt]
    return {
        "tokens": n, "counts": cnt, "first_counts": fst, "share": share,
        "first_share": [c / n for c in fst], "pairs": pairs, "same_first": same, "topk_overlap": meet,
        "same_first_rate": same / pairs if pairs else None, "topk_overlap_rate": meet / pairs if pairs else None,
        "max_over_mean": max(cnt) / mean,
        "cv": math.sqrt(sum((c - mean) ** 2 for c in cnt) / E) / mean,
        "entropy": -sum(p * math.log(p) for p in share if p > 0),
        "entropy_norm": -sum(p * math.log(p) for p in share if p > 0) / math.log(E),
        "unused": [e for e in range(E) if cnt[e] == 0],
    }

def compare(got, want, where):
    for k, v in want.items():
        g = got.get(k, "missing")
        if isinstance(v, list) and v and isinstance(v[0], float):
            check(isinstance(g, list) and len(g) == len(v) and all(close(a, b) for a, b in zip(g, v)),
                  f"{where} {k}: {g} != {v}")
        elif isinstance(v, float) or v is None:
            check(close(g, v), f"{where} {k}: {g} != {v}")
        else:
            check(g == v, f"{where} {k}: {g} != {v}")
    check(abs(sum(got["share"]) - 1) < 1e-9, f"{where}: shares sum to {sum(got['share'])}")
    check(abs(sum(got["first_share"]) - 1) < 1e-9, f"{where}: first-choice shares sum to {sum(got['first_share'])}")

def mode_stats(routes_path, dump_path, *token_files):
    """routes.json against the dump; token_files: per domain, the ids `smoe tokenize` gives."""
    R = json.load(open(routes_path))
    hdr, rows = load_dump(dump_path)
    L, E, K, W = hdr["n_layer"], hdr["n_expert"], hdr["k"], hdr["window"]
    check((R["n_layer"], R["n_expert"], R["k"], R["window"], R["bos"]) == (L, E, K, W, hdr["bos"]), "header")
    # the random-routing baselines: 1/E and 1 - C(E-K,K)/C(E,K)
    b = R["random_baseline"]
    check(close(b["same_first"], 1 / E), f"baseline same_first {b['same_first']}")
    check(close(b["topk_overlap"], 1 - math.comb(E - K, K) / math.comb(E, K)), f"baseline topk {b['topk_overlap']}")
    if (E, K) == (8, 2):
        check(close(b["topk_overlap"], 1 - 15 / 28), "E 8 K 2: 1 - 15/28 (Mixtral's 46 %)")
    # every token's routing is well formed: K distinct experts, weights descending, sum 1
    wf = all(len(r["experts"]) == L and all(len(set(x)) == K and all(0 <= e < E for e in x) for x in r["experts"])
             and all(w[0] >= w[-1] and abs(sum(w) - 1) < 1e-5 for w in r["weights"]) for r in rows)
    check(wf, "malformed routing in the dump")
    # windows: positions 1.. (after BOS) or 0.., consecutive, at most W
    p0 = 1 if hdr["bos"] else 0
    byw = {}
    for r in rows: byw.setdefault(r["window"], []).append(r["pos"])
    check(all(ps == list(range(p0, p0 + len(ps))) and p0 + len(ps) <= W for ps in byw.values()), "window positions")
    doms = hdr["domains"]
    check([d["label"] for d in R["domains"]] == doms, "domain labels")
    for d, lab in enumerate(doms):
        dr = [r for r in rows if r["domain"] == d]
        info = R["domains"][d]
        nwin = len({r["window"] for r in dr})
        check((info["tokens"], info["windows"], info["pairs"]) == (len(dr), nwin, len(dr) - nwin),
              f"domain {lab}: tokens/windows/pairs {info} vs {len(dr)}/{nwin}")
        if d < len(token_files):
            want = [int(x) for x in open(token_files[d]).read().split()]
            check([r["token"] for r in dr] == want, f"domain {lab}: tokens differ from `smoe tokenize`")
    for l in range(L):
        lay = R["layers"][l]
        check(lay["layer"] == l, "layer index")
        compare(lay["all"], stats(rows, l, E, K), f"layer {l} all")
        for d, lab in enumerate(doms):
            got = lay["domains"][d]
            check(got["label"] == lab, "label order")
            compare(got, stats([r for r in rows if r["domain"] == d], l, E, K), f"layer {l} {lab}")
    # the baseline formula is what random routing gives (Monte Carlo, 100k pairs)
    rng = random.Random(1)
    n = 100000
    same = meet = 0
    for _ in range(n):
        a, c = rng.sample(range(E), K), rng.sample(range(E), K)
        same += a[0] == c[0]
        meet += len(set(a) & set(c)) > 0
    check(abs(same / n - b["same_first"]) < 0.006, f"simulated same_first {same / n}")
    check(abs(meet / n - b["topk_overlap"]) < 0.006, f"simulated topk overlap {meet / n}")

def mode_fixture(routes_path, dump_path, ref_path):
    """The peer's routing of ids-n64 (experts exact, weights 1e-5, counts per expert)."""
    R = json.load(open(routes_path))
    hdr, rows = load_dump(dump_path)
    ref = json.load(open(ref_path))
    check(len(rows) == len(ref["layers"][0]["experts"]), "token count")
    for l, lay in enumerate(ref["layers"]):
        diff = sum(r["experts"][l] != e for r, e in zip(rows, lay["experts"]))
        check(diff == 0, f"layer {l}: {diff} tokens with other first/second choices than the peer")
        dw = max(abs(a - b) for r, w in zip(rows, lay["weights"]) for a, b in zip(r["weights"][l], w))
        check(dw < 1e-5, f"layer {l}: gate weights differ by {dw}")
        check(R["layers"][l]["all"]["counts"] == lay["counts"], f"layer {l}: counts {R['layers'][l]['all']['counts']} vs {lay['counts']}")
        compare(R["layers"][l]["all"], stats(rows, l, hdr["n_expert"], hdr["k"]), f"fixture layer {l}")

class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.samples, self.cur, self.attrs = [], [], None, []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a.get("class")))
        self.attrs += [(k, v or "") for k, v in attrs]
        if tag == "div" and a.get("class") == "sample": self.cur = [a.get("data-layer"), []]
    def handle_endtag(self, tag):
        if tag == "div" and self.cur is not None:
            self.samples.append((self.cur[0], "".join(self.cur[1]))); self.cur = None
    def handle_data(self, data):
        if self.cur is not None: self.cur[1].append(data)

# every element the page may contain: anything else is markup that escaped escaping
TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "code", "table", "tbody", "tr",
        "th", "td", "span", "div", "figure", "figcaption", "svg", "line", "text", "rect"}

def mode_html(path, n_layer, layers, n_domain, *texts):
    """index.html: self-contained, its charts, and each sample's text equal to the input."""
    raw = open(path, "rb").read()
    try: s = raw.decode("utf-8"); check(True, "")
    except UnicodeDecodeError as e: check(False, f"not UTF-8: {e}"); return
    low = s.lower()
    for bad in ("<script", "http:", "https:", "src=", "href=", "url(", "@import", "<link", "<iframe", "<img"):
        check(bad not in low, f"page contains {bad!r}")
    p = Page(); p.feed(s)
    check(sum(1 for t in p.tags if t == ("svg", "shares")) == int(n_layer), "one share chart per layer")
    check(sum(1 for t in p.tags if t == ("svg", "heat")) == 2, "two heat maps")
    check(not any(k.startswith("on") for k, _ in p.attrs), "event-handler attributes")
    check({t for t, _ in p.tags} <= TAGS, f"unexpected elements {({t for t, _ in p.tags} - TAGS)}")
    want = [l for l in layers.split(",")]
    check([l for l, _ in p.samples] == want * int(n_domain), f"sample layers {[l for l, _ in p.samples]}")
    for d, t in enumerate(texts):
        src = open(t, encoding="utf-8").read()
        for l, txt in p.samples[d * len(want):(d + 1) * len(want)]:
            check(txt.lstrip(" ") == src, f"layer {l}: the sample's text differs from {t}")

def mode_dom(path, n_layer, n_samples):
    """The DOM Chromium built."""
    s = open(path, encoding="utf-8", errors="replace").read()
    p = Page(); p.feed(s)
    check(s.rstrip().endswith("</html>"), "DOM incomplete")
    check(sum(1 for t in p.tags if t == ("svg", "shares")) == int(n_layer), "rendered share charts")
    check(sum(1 for t in p.tags if t == ("svg", "heat")) == 2, "rendered heat maps")
    check(sum(1 for t in p.tags if t[0] == "rect") > 8 * int(n_layer), "rendered bars")
    check(sum(1 for t in p.tags if t == ("div", "sample")) == int(n_samples), "rendered samples")
    check({t for t, _ in p.tags} <= TAGS, f"unexpected elements in the DOM {({t for t, _ in p.tags} - TAGS)}")

{"stats": mode_stats, "fixture": mode_fixture, "html": mode_html, "dom": mode_dom}[sys.argv[1]](*sys.argv[2:])
print(P, F)
EOF

# ------------------------------------------------------------------ help and errors
expect 0 "--help" -- "$SMOE" routes --help; has "$T/out" "usage: smoe routes"
expect 0 "listed in smoe --help" -- "$SMOE" --help; has "$T/out" "routes"
expect 2 "no -m" -- "$SMOE" routes --text "$GEN" -o "$T/x"; has "$T/err" "missing -m"
expect 2 "no input" -- "$SMOE" routes -m "$MODEL" -o "$T/x"; has "$T/err" "missing --text"
expect 2 "no -o" -- "$SMOE" routes -m "$MODEL" --text "$GEN"; has "$T/err" "missing -o"
expect 2 "dangling --label" -- "$SMOE" routes -m "$MODEL" --text "$GEN" --label x -o "$T/x"; has "$T/err" "no --text"
expect 2 "unknown option" -- "$SMOE" routes -m "$MODEL" --text "$GEN" -o "$T/x" --bogus; has "$T/err" "unknown option"
expect 2 "bad --ctx" -- "$SMOE" routes -m "$MODEL" --text "$GEN" -o "$T/x" --ctx 0; has "$T/err" "invalid value for --ctx"
expect 2 "bad --sample" -- "$SMOE" routes -m "$MODEL" --text "$GEN" -o "$T/x" --sample -3
expect 2 "--sample-layers out of range" -- "$SMOE" routes -m "$MODEL" --text "$GEN" -o "$T/x" --sample-layers 0,4
has "$T/err" "sample-layers"
expect 2 "--ctx 1 leaves no room after BOS" -- "$SMOE" routes -m "$MODEL" --text "$GEN" -o "$T/x" --ctx 1
expect 1 "missing model" -- "$SMOE" routes -m "$T/none.gguf" --text "$GEN" -o "$T/x"; has "$T/err" "cannot open"
printf 'not a gguf file at all' >"$T/bad.gguf"
expect 1 "corrupt model" -- "$SMOE" routes -m "$T/bad.gguf" --text "$GEN" -o "$T/x"; has "$T/err" "bad magic"
head -c 100000 "$MODEL" >"$T/trunc.gguf"
expect 1 "truncated model" -- "$SMOE" routes -m "$T/trunc.gguf" --text "$GEN" -o "$T/x"; has "$T/err" "cannot load model"
expect 1 "missing text" -- "$SMOE" routes -m "$MODEL" --text "$T/none.txt" -o "$T/x"; has "$T/err" "cannot open"
: >"$T/empty.txt"
expect 1 "empty text" -- "$SMOE" routes -m "$MODEL" --text "$GEN" --text "$T/empty.txt" -o "$T/x"; has "$T/err" "empty"
expect 1 "a directory as text" -- "$SMOE" routes -m "$MODEL" --text "$T" -o "$T/x"; has "$T/err" "cannot read"
printf '[1, 2, x]' >"$T/badids.json"
expect 1 "ids that are not numbers" -- "$SMOE" routes -m "$TINY" --ids "$T/badids.json" -o "$T/x"; has "$T/err" "not a token id"
printf '1 2 5000' >"$T/bigids.txt"
expect 1 "ids out of range" -- "$SMOE" routes -m "$TINY" --ids "$T/bigids.txt" -o "$T/x"; has "$T/err" "out of range"
"$SMOE" synth -o "$T/dense.gguf" --type Q8_0 --n-embd 64 --n-layer 2 --n-head 4 --n-head-kv 2 --n-ff 128 \
    --n-expert 0 --vocab "$DATA/tokenizer/ggml-vocab-mistral-v1.gguf" --vocab-n 512 >/dev/null 2>&1
expect 1 "a dense model" -- "$SMOE" routes -m "$T/dense.gguf" --text "$GEN" -o "$T/x"; has "$T/err" "dense model"
expect 1 "unwritable output" -- "$SMOE" routes -m "$MODEL" --text "$GEN" -o "$T/no/such/dir" -q; has "$T/err" "cannot create"
if [ ! -e "$T/x" ]; then ok; else bad "a failed run left an output directory"; fi

# ------------------------------------------------------------------ two domains, the bundled model
# the ids `smoe tokenize` gives each text (the trailing newline kept)
for f in "$GEN" "$MOD"; do
    txt=$(cat "$f"; printf x)
    "$SMOE" tokenize -m "$MODEL" -p "${txt%x}" | head -n 1 >"$T/$(basename "$f").ids"
done
LAB='modern <x>&"'"'"   # a label with markup in it: escaped in the JSON and the page
expect 0 "routes, two domains" -- "$SMOE" routes -m "$MODEL" --label kjv --text "$GEN" --label "$LAB" --text "$MOD" \
    -o "$T/r" --dump "$T/r.jsonl" --sample 100000 --sample-layers 0,3 -t 1
has "$T/err" "wrote"
if LAB=$LAB python3 -c "import json,os,sys; d=json.load(open('$T/r/routes.json'))['domains']
sys.exit(not ([x['label'] for x in d] == ['kjv', os.environ['LAB']]))"; then ok; else bad "labels in routes.json"; fi
py "two domains, window 128" stats "$T/r/routes.json" "$T/r.jsonl" "$T/genesis.txt.ids" "$T/modern.txt.ids"
py "index.html" html "$T/r/index.html" 4 0,3 2 "$GEN" "$MOD"
if python3 -c "import json,sys; d=json.load(open('$T/r/routes.json'))['domains']; sys.exit(not (d[0]['windows'] > 3 and d[1]['windows'] > 3))"; then
    ok; else bad "the texts should need several windows of 128 tokens"; fi
expect 0 "routes, 2 threads" -- "$SMOE" routes -m "$MODEL" --label kjv --text "$GEN" --label "$LAB" --text "$MOD" \
    -o "$T/r2" --sample 100000 --sample-layers 0,3 -t 2 -q
if cmp -s "$T/r/routes.json" "$T/r2/routes.json" && cmp -s "$T/r/index.html" "$T/r2/index.html"; then ok
else bad "the reports depend on the thread count"; fi

# short windows, a label shared by two files (one domain), the default label, --max-tokens
cp "$GEN" "$T/genesis-again.txt"
expect 0 "routes, --ctx 33, merged domain" -- "$SMOE" routes -m "$MODEL" --label kjv --text "$GEN" \
    --label kjv --text "$T/genesis-again.txt" --text "$MOD" --ctx 33 --max-tokens 500 -o "$T/c" --dump "$T/c.jsonl" -q
py "window 33" stats "$T/c/routes.json" "$T/c.jsonl"
if python3 -c "
import json,sys; r=json.load(open('$T/c/routes.json')); d=r['domains']
sys.exit(not (r['window'] == 33 and [x['label'] for x in d] == ['kjv', 'modern.txt'] and d[0]['tokens'] == 1000
         and d[0]['windows'] == 2 * 16 and len(d[0]['sources']) == 2 and d[1]['tokens'] == 500))"; then ok
else bad "--ctx 33 / merged label / --max-tokens: $(head -c 600 "$T/c/routes.json")"; fi

# stdin (label "stdin") without BOS: windows of 128 text tokens from position 0
expect 0 "routes, stdin, --no-bos" -- bash -c "\"$SMOE\" routes -m \"$MODEL\" --text - --no-bos -o \"$T/s\" \
    --dump \"$T/s.jsonl\" -q <\"$GEN\""
py "stdin, no BOS" stats "$T/s/routes.json" "$T/s.jsonl" "$T/genesis.txt.ids"
if python3 -c "
import json,sys; r=json.load(open('$T/s/routes.json')); d=r['domains'][0]
sys.exit(not (r['bos'] is False and d['label'] == 'stdin' and d['windows'] == -(-d['tokens'] // 128)))"; then ok
else bad "stdin / --no-bos: $(head -c 400 "$T/s/routes.json")"; fi

# ------------------------------------------------------------------ the mixtral-tiny fixture
expect 0 "routes --ids, mixtral-tiny" -- "$SMOE" routes -m "$TINY" --ids "$DATA/model/ids-n64.json" -o "$T/f" \
    --dump "$T/f.jsonl" -q
py "mixtral-tiny vs the peer's routing" fixture "$T/f/routes.json" "$T/f.jsonl" "$DATA/model/routing-F32-n64.json"
py "mixtral-tiny stats" stats "$T/f/routes.json" "$T/f.jsonl"

# ------------------------------------------------------------------ headless Chromium
CHROME=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$CHROME" ]; then
    echo "SKIP: chromium not installed, index.html not rendered in a browser (apt-get install chromium)"
else
    # render PAGE DOM ERR: the DOM after load on DOM, the browser's log (console messages
    # are its ":CONSOLE" lines) on ERR
    render() {
        timeout 60 "$CHROME" --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$T/chrome" \
            --enable-logging=stderr --v=0 --dump-dom "file://$1" >"$2" 2>"$3"
    }
    console_errors() { grep -E ':CONSOLE|Uncaught' "$1"; }
    # the detection itself: a page with a console error and an uncaught exception
    printf '<!DOCTYPE html><html><head><meta charset="utf-8"><title>t</title></head><body><p>x</p><script>console.error("routes-probe"); undefinedFunction();</script></body></html>' >"$T/probe.html"
    render "$T/probe.html" "$T/probe.dom" "$T/probe.err"
    if grep -q 'routes-probe' "$T/probe.err" && grep -q 'Uncaught' "$T/probe.err"; then ok
    else bad "chromium's console messages are not detected: $(grep -v dbus "$T/probe.err" | tail -n 5)"; fi
    render "$T/r/index.html" "$T/r.dom" "$T/r.err"; rc=$?
    if [ "$rc" -eq 0 ]; then ok; else bad "chromium exit $rc: $(grep -v dbus "$T/r.err" | tail -n 5)"; fi
    if ! console_errors "$T/r.err" >/dev/null; then ok; else bad "console errors: $(console_errors "$T/r.err" | head -n 5)"; fi
    py "rendered DOM" dom "$T/r.dom" 4 4
    timeout 60 "$CHROME" --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$T/chrome" \
        --hide-scrollbars --window-size=1280,2000 --screenshot="$T/page.png" "file://$T/r/index.html" >/dev/null 2>&1
    if [ "$(head -c 4 "$T/page.png" 2>/dev/null | tail -c 3)" = PNG ] && [ "$(stat -c %s "$T/page.png")" -gt 20000 ]; then ok
    else bad "no screenshot of the page"; fi
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

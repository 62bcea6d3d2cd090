#!/usr/bin/env bash
# Run every test program given on the command line, then the CLI checks (tests/cli.sh), the
# training checks (tests/train.sh), the routing-report checks (tests/routes.sh), the
# router comparison's quick mode (tests/router_compare.sh), the multi-domain corpus build
# (tests/corpus.sh) and the server checks (tests/serve.sh),
# and print the sum of their "N passed, N failed" lines as the last line. A program that
# exits non-zero, or prints no summary (a crash), counts as failed.
set -u
passed=0 failed=0
# tally NAME RC OUTPUT: add one program's counts
tally() {
    local name=$1 rc=$2 out=$3 line p f
    line=$(printf '%s\n' "$out" | grep -oE '[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -z "$line" ] || [ "$rc" -ne 0 ]; then printf '%s\n' "$out" | tail -n 40; fi
    if [ -z "$line" ]; then
        echo "CRASH $name (exit $rc, no summary line)"
        failed=$((failed + 1))
        return
    fi
    read -r p _ f _ <<<"${line//,/}"
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    printf '%-36s %5d passed, %d failed\n' "$name" "$p" "$f"
    passed=$((passed + p)); failed=$((failed + f))
}
for t in "$@"; do
    out=$("$t" 2>&1); rc=$?
    tally "$(basename "$t")" "$rc" "$out"
done
if [ -f tests/cli.sh ]; then
    out=$(bash tests/cli.sh "${SMOE_BIN:-./smoe}" 2>&1); rc=$?
    tally cli.sh "$rc" "$out"
fi
if [ -f tests/train.sh ]; then
    out=$(bash tests/train.sh "${SMOE_BIN:-./smoe}" 2>&1); rc=$?
    tally train.sh "$rc" "$out"
fi
if [ -f tests/routes.sh ]; then
    out=$(bash tests/routes.sh "${SMOE_BIN:-./smoe}" 2>&1); rc=$?
    tally routes.sh "$rc" "$out"
    printf '%s\n' "$out" | grep '^SKIP' | sed 's/^/    /'
fi
if [ -f tests/router_compare.sh ]; then
    out=$(bash tests/router_compare.sh "${SMOE_BIN:-./smoe}" 2>&1); rc=$?
    tally router_compare.sh "$rc" "$out"
fi
if [ -f tests/corpus.sh ]; then
    out=$(bash tests/corpus.sh 2>&1); rc=$?
    tally corpus.sh "$rc" "$out"
    printf '%s\n' "$out" | grep '^SKIP' | sed 's/^/    /'
fi
if [ -f tests/serve.sh ]; then
    out=$(bash tests/serve.sh "${SMOE_BIN:-./smoe}" 2>&1); rc=$?
    tally serve.sh "$rc" "$out"
    printf '%s\n' "$out" | grep '^SKIP' | sed 's/^/    /'
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

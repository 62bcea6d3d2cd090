#!/usr/bin/env bash
# Run every test program given on the command line, then the CLI checks, and print the
# sum of their "N passed, N failed" lines as the last line. Exit non-zero if any failed
# or any program crashed.
set -u
passed=0 failed=0 crashed=0
for t in "$@"; do
    out=$("$t" 2>&1); rc=$?
    line=$(printf '%s\n' "$out" | grep -E '[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -z "$line" ] || [ $rc -ne 0 ]; then
        printf '%s\n' "$out" | tail -n 40
    fi
    if [ -z "$line" ]; then
        echo "CRASH $t (exit $rc, no summary line)"
        crashed=$((crashed + 1)); failed=$((failed + 1)); continue
    fi
    p=$(sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed.*/\1/' <<<"$line")
    f=$(sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$line")
    [ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
    printf '%-36s %5d passed, %d failed\n' "$(basename "$t")" "$p" "$f"
    passed=$((passed + p)); failed=$((failed + f))
done
if [ -f tests/cli.sh ]; then
    out=$(bash tests/cli.sh "${SMOE_BIN:-./smoe}" 2>&1); rc=$?
    line=$(printf '%s\n' "$out" | grep -E '[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    [ $rc -ne 0 ] && printf '%s\n' "$out" | tail -n 40
    p=$(sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed.*/\1/' <<<"${line:-0 passed, 1 failed}")
    f=$(sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"${line:-0 passed, 1 failed}")
    printf '%-36s %5d passed, %d failed\n' "cli.sh" "$p" "$f"
    passed=$((passed + p)); failed=$((failed + f))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

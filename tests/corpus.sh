#!/usr/bin/env bash
# corpus.sh - checks of scripts/build-corpus.sh on a small cap (--max-bytes 25000) with the
# committed 200-verse KJV slice: two builds give byte-identical files; every domain file
# and its held-out part is non-empty valid UTF-8 without control characters (TAB aside),
# within the cap together, and listed in MANIFEST with its true size, lines and sha256;
# train.txt is the training parts without blank lines; bad options are usage errors.
# Without the Debian packages (not root, no network) it prints SKIP lines and passes.
# usage: tests/corpus.sh   (prints "N passed, N failed" last)
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=scripts/build-corpus.sh
KJV=tests/data/bpe/kjv-head200.txt
CAP=25000
DOMAINS="kjv code python man fortunes dict licenses"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }

# usage errors: exit 2, before any package is looked at
bash "$BUILD" --help >"$T/help" 2>&1; check "--help exits 0" '[ $? -eq 0 ]'
check "--help names the options" 'grep -q -- "--max-bytes" "$T/help"'
bash "$BUILD" --bogus >/dev/null 2>&1; check "unknown option exits 2" '[ $? -eq 2 ]'
bash "$BUILD" --max-bytes 12x >/dev/null 2>&1; check "bad --max-bytes exits 2" '[ $? -eq 2 ]'
bash "$BUILD" --kjv "$T/none.txt" --out "$T/x" >/dev/null 2>&1; check "missing --kjv file exits 1" '[ $? -eq 1 ]'

for run in a b; do
    SECONDS=0
    bash "$BUILD" --kjv "$KJV" --max-bytes $CAP --out "$T/$run" >"$T/$run.log" 2>&1
    rc=$?
    if [ $rc -ne 0 ] && grep -q "missing Debian packages" "$T/$run.log"; then
        sed 's/^build-corpus: /SKIP corpus: /' "$T/$run.log" | grep '^SKIP'
        echo "SKIP corpus: tests/corpus.sh needs those packages (as root the script installs them)"
        echo "0 passed, 0 failed"
        exit 0
    fi
    check "build $run exits 0 ($(tail -n 3 "$T/$run.log"))" '[ $rc -eq 0 ]'
    echo "build $run: ${SECONDS}s"
done

# determinism: every file byte-identical, MANIFEST included
(cd "$T/a" && find . -type f | LC_ALL=C sort | xargs sha256sum) >"$T/a.sum"
(cd "$T/b" && find . -type f | LC_ALL=C sort | xargs sha256sum) >"$T/b.sum"
check "two builds are byte-identical ($(diff "$T/a.sum" "$T/b.sum" | head -n 4 | tr '\n' ' '))" \
    'cmp -s "$T/a.sum" "$T/b.sum"'
check "15 files and MANIFEST" '[ "$(wc -l <"$T/a.sum")" -eq 16 ]'

O=$T/a
utf8() { python3 -c '
import re, sys
t = open(sys.argv[1], "rb").read().decode("utf-8")   # raises on invalid UTF-8
sys.exit(1 if re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\r\ufeff]", t) or not t.endswith("\n") else 0)' "$1" 2>/dev/null; }
for d in $DOMAINS; do
    for f in "$d.txt" "heldout/$d.txt"; do
        check "$f is non-empty" '[ -s "$O/$f" ]'
        check "$f is valid UTF-8, no control characters, ends with a newline" 'utf8 "$O/$f"'
        check "$f has no trailing spaces" '! grep -qE "[ 	]$" "$O/$f"'
        check "$f has no runs of blank lines" '[ "$(awk "/^$/ { if (b) n++; b = 1; next } { b = 0 } END { print n + 0 }" "$O/$f")" -eq 0 ]'
        read -r bytes lines <<<"$(wc -c <"$O/$f") $(wc -l <"$O/$f")"
        # shellcheck disable=SC2034  # used in the check below
        sum=$(sha256sum <"$O/$f" | cut -d' ' -f1)
        check "MANIFEST lists $f ($bytes bytes, $lines lines)" 'grep -qx "file $f $bytes $lines $sum" "$O/MANIFEST"'
    done
    n=$(( $(wc -c <"$O/$d.txt") + $(wc -c <"$O/heldout/$d.txt") ))
    check "$d: training + held-out = $n bytes, within the cap of $CAP" '[ $n -le $CAP ]'
    check "$d: held-out is at most 10 % ($(wc -c <"$O/heldout/$d.txt") of $n bytes)" \
        '[ $(( 10 * $(wc -c <"$O/heldout/$d.txt") )) -le $n ]'
done
check "the KJV slice is under the cap: kept whole (200 verses)" \
    '[ "$(cat "$O/kjv.txt" "$O/heldout/kjv.txt" | wc -l)" -eq 200 ]'
check "no held-out kjv verse is in kjv.txt" '! grep -qxFf "$O/heldout/kjv.txt" "$O/kjv.txt"'
check "train.txt = the training parts in domain order, blank lines dropped" \
    'for d in $DOMAINS; do grep -v "^\$" "$O/$d.txt"; done | cmp -s - "$O/train.txt"'
check "MANIFEST records the package versions" 'grep -qE "^package libc6-dev:[a-z0-9]+ [0-9]" "$O/MANIFEST"'
check "MANIFEST records the cap" 'grep -qx "option max-bytes $CAP" "$O/MANIFEST"'
check "MANIFEST records the KJV's sha256" \
    'grep -qx "input kjv $(sha256sum <"$KJV" | cut -d" " -f1)" "$O/MANIFEST"'
check "man pages are rendered text, not troff source" '! grep -qE "^\.(TH|SH|B|I) " "$O/man.txt" "$O/heldout/man.txt"'
check "fortunes have no % separators" '! grep -qx "%" "$O/fortunes.txt"'
check "dict lines are 'words (part of speech): gloss'" \
    '[ -z "$(grep -vE "^[^ ].* \((noun|verb|adjective|adverb)\): [^ ]" "$O/dict.txt")" ]'

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

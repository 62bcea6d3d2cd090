#!/usr/bin/env bash
# Sum the final "N passed, N failed" lines of several test logs into one closing line.
passed=0 failed=0
for log in "$@"; do
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [ -z "$line" ]; then echo "no summary in $log"; failed=$((failed + 1)); continue; fi
    passed=$((passed + ${line%% passed*}))
    f=${line#*passed, }; failed=$((failed + ${f%% failed*}))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

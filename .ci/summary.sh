#!/usr/bin/env bash
# Sums a test run for .ci/run, from the logs it captured:
#   bash .ci/summary.sh CARGO_LOG CARGO_STATUS SCHEMATHESIS_LOG SCHEMATHESIS_STATUS
# cargo: every `test result: ... N passed; M failed; ...` line (unit, integration and doc tests).
# schemathesis: its test cases, from the summary's `Test cases:` line (`656 generated, 656 passed`,
# or `656 generated, 12 found 3 unique failures, 2 errored, 1 skipped`: failures and errored cases
# count as failed, skipped ones as neither); when that cannot be read, 1 passed or 1 failed by its
# exit status. A non-zero exit status with no failure counted (a compile error, a crashed test
# binary, a failed check outside the test cases) counts 1 failed, so a red run never reads 0 failed.
# Prints a line per source, then, last and alone on its line, `N passed, M failed`.
# Exits 1 when M > 0, else 0. A missing log reads as an empty one.
set -euo pipefail
if [[ $# -ne 4 ]]; then
    echo "usage: $0 CARGO_LOG CARGO_STATUS SCHEMATHESIS_LOG SCHEMATHESIS_STATUS" >&2
    exit 2
fi
cargo_log=$1 cargo_status=$2 schema_log=$3 schema_status=$4

# Logs without terminal colour codes or carriage returns.
plain() { if [[ -f "$1" ]]; then sed -e 's/\x1b\[[0-9;]*[A-Za-z]//g' -e 's/\r//g' "$1"; fi; }

# "passed failed" summed over the `test result:` lines (POSIX awk: Debian's mawk has no match() arrays).
read -r cargo_passed cargo_failed < <(plain "$cargo_log" | awk '
    /^test result: / {
        for (i = 2; i <= NF; i++) {
            if ($i == "passed;") p += $(i - 1)
            else if ($i == "failed;") f += $(i - 1)
        }
    }
    END { printf "%d %d\n", p, f }')

# "passed failed" from the last `Test cases:` summary (on its line or the next non-empty one), or
# "unparsed".
read -r schema_passed schema_failed < <(plain "$schema_log" | awk '
    function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
    want && trim($0) != "" { counts = trim($0); want = 0; next }
    /^[ \t]*Test cases:/ {
        rest = $0; sub(/^[ \t]*Test cases:/, "", rest); rest = trim(rest)
        if (rest != "") { counts = rest; want = 0 } else { counts = ""; want = 1 }
    }
    END {
        if (counts == "") { print "unparsed"; exit }
        if (counts ~ /^No test cases were generated/) { print "0 0"; exit }
        n = split(counts, parts, ",")
        known = 0; g = -1; p = -1; f = 0; e = 0; s = 0
        for (i = 1; i <= n; i++) {
            m = split(trim(parts[i]), w, /[ \t]+/)
            if (m < 2 || w[1] !~ /^[0-9]+$/) continue
            known = 1
            if (w[2] == "generated") g = w[1] + 0
            else if (w[2] == "passed") p = w[1] + 0
            else if (w[2] == "found" || w[2] == "failed") f += w[1]
            else if (w[2] == "errored") e += w[1]
            else if (w[2] == "skipped") s += w[1]
        }
        if (!known || (g < 0 && p < 0)) { print "unparsed"; exit }
        # Its own "N passed" when it prints one (skipped cases are counted apart from it);
        # otherwise what was generated less what failed, errored or was skipped.
        if (p >= 0) passed = p
        else passed = g - f - e - s
        if (passed < 0) passed = 0
        printf "%d %d\n", passed, f + e
    }')
schema_note=""
if [[ "$schema_passed" == unparsed ]]; then
    schema_note=" (no test-case summary; counted by its exit status $schema_status)"
    if [[ "$schema_status" -eq 0 ]]; then schema_passed=1 schema_failed=0; else schema_passed=0 schema_failed=1; fi
fi

cargo_note=""
if [[ "$cargo_status" -ne 0 && "$cargo_failed" -eq 0 ]]; then
    cargo_failed=1
    cargo_note=" (exit status $cargo_status with no failed test: a compile error or a crashed test binary)"
fi
if [[ "$schema_status" -ne 0 && "$schema_failed" -eq 0 ]]; then
    schema_failed=1
    schema_note=" (exit status $schema_status with no failed test case: see its output)"
fi

passed=$((cargo_passed + schema_passed))
failed=$((cargo_failed + schema_failed))
echo "cargo: $cargo_passed passed, $cargo_failed failed$cargo_note"
echo "schemathesis: $schema_passed passed, $schema_failed failed$schema_note"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]

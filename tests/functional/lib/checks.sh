# checks.sh — the preamble every functional test shares: `. "$(dirname "$0")/lib/checks.sh"`.
#
# The tally: `ok WHAT` / `bad WHAT` for each assertion (`skip_check WHAT` for one that could not
# run here, said with its reason), and `checks_done NAME` last: it prints the tally line
# "NAME: N passed, N failed" (", N skipped" when any were) and its status, non-zero when
# anything failed, is the test's.
# The scratch directory: `checks_tmp [VAR]` makes a fresh directory in $VAR (default: tmp)
# and removes it when the test exits, after calling the test's own `cleanup` function when
# it defines one (to stop what it started, by pid). The test's exit status is kept.
# Not a test itself: ctest registers tests/functional/*.sh only.
passed=0
failed=0
skipped=0
ok() {
    passed=$((passed + 1))
    echo "ok   $*"
}
bad() {
    failed=$((failed + 1))
    echo "FAIL $*"
}
skip_check() {
    skipped=$((skipped + 1))
    echo "SKIP $*"
}
checks_done() {
    local more=""
    [ "$skipped" -gt 0 ] && more=", $skipped skipped"
    echo "$1: $passed passed, $failed failed$more"
    [ "$failed" -eq 0 ]
}

checks_tmp() {
    local d
    d=$(mktemp -d) || {
        echo "FAIL mktemp -d: no scratch directory"
        exit 1
    }
    printf -v "${1:-tmp}" '%s' "$d"
    _checks_tmpdir=$d
    trap _checks_exit EXIT
}
_checks_exit() {
    if declare -F cleanup >/dev/null; then cleanup; fi
    rm -rf "$_checks_tmpdir"
}

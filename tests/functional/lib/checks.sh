# checks.sh — the tally a functional test keeps: `. "$(dirname "$0")/lib/checks.sh"`, then
# `ok WHAT` / `bad WHAT` for each assertion, and `checks_done NAME` last (prints the tally;
# its status, non-zero when anything failed, is the test's). Not a test itself: ctest
# registers tests/functional/*.sh only. (Older tests still define their own ok/bad.)
passed=0
failed=0
ok() {
    passed=$((passed + 1))
    echo "ok   $*"
}
bad() {
    failed=$((failed + 1))
    echo "FAIL $*"
}
checks_done() {
    echo "$1: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}

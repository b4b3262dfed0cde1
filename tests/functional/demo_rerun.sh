#!/usr/bin/env bash
# demo_rerun.sh — the README's first command, `bash contrib/demo.sh`, run twice in a row as a
# new user would (issue 17: the second run refused to overwrite build/demo-results.mpk). The
# demo starts and stops its own world, so this test runs without the ctest world fixture
# (registered apart in tests/CMakeLists.txt, under the same resource lock).
# Env: VALIDORA_SOURCE_DIR.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
: "${VALIDORA_SOURCE_DIR:?}"
cd "$VALIDORA_SOURCE_DIR" || exit 1
want=$(grep -cv '^\s*\(#\|$\)' contrib/sample-list.txt)
for run in 1 2; do
    out=$(timeout 600 bash contrib/demo.sh 2>&1); rc=$?
    [ $rc -eq 0 ] && [[ $out == *"$want addresses; full records"* ]] \
        && ok "demo run $run: exit 0, $want addresses in the table" \
        || bad "demo run $run: rc=$rc $(tail -5 <<<"$out")"
done
n=$("$VALIDORA_SOURCE_DIR/build/validora" cat build/demo-results.mpk | wc -l)
[ "$n" -eq "$want" ] && ok "build/demo-results.mpk holds one record per address ($n)" || bad "demo results: $n records, want $want"
checks_done demo_rerun

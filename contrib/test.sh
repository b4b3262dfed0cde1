#!/usr/bin/env bash
# Installs what the tests need, builds Validora twice (plain, and with AddressSanitizer +
# UndefinedBehaviorSanitizer) and runs the whole suite (ctest) on each build, including the
# functional tests against the test world (tests/world/: unbound, Postfix, postgrey on
# loopback; root is needed for port 25). Ends with "N passed, N failed" over both runs.
set -uo pipefail
export VALIDORA_CONFIG="" # the machine's /etc/validora/validora.lua must not change what we measure or test
cd "$(dirname "$0")/.."
top=$(pwd)
bash contrib/deps.sh --test || { echo "contrib/test.sh: installing dependencies failed" >&2; exit 1; }

passed=0; failed=0; status=0
for variant in plain sanitize; do
  dir="$top/build-ci-$variant"
  flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
  [ "$variant" = sanitize ] && flags+=(-DVALIDORA_SANITIZE=ON)
  echo "== $variant build =="
  if ! cmake -S "$top" -B "$dir" "${flags[@]}" >/dev/null || ! cmake --build "$dir" -j2 >"$dir.build.log" 2>&1; then
    cat "$dir.build.log" 2>/dev/null | tail -50
    echo "contrib/test.sh: $variant build failed" >&2
    status=1; failed=$((failed + 1)); continue
  fi
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  log="$dir/ctest.log"
  (cd "$dir" && ctest --output-on-failure -j2 --timeout 900) 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  [ "$rc" -ne 0 ] && status=1
  total=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\1 \2/p' "$log" | tail -1)
  if [ -n "$total" ]; then
    set -- $total
    failed=$((failed + $1)); passed=$((passed + $2 - $1))
  else
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
exit $status

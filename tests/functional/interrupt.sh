#!/usr/bin/env bash
# interrupt.sh — nothing decided is lost when a run is killed or stopped:
#  - kill -9 mid-run: every record written before the kill reads back whole (flushed per record);
#  - SIGTERM: no new addresses are taken, the ones in flight finish and are written, exit 1.
# Env: VALIDORA, WORLD_DIR (a started world).
set -uo pipefail
: "${VALIDORA:?}" "${WORLD_DIR:?}"
DNS="127.0.0.1:${VALIDORA_DNS_PORT:-5354}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0; failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }

# kill -9 while a tarpit holds one address: the three decided ones are on disk.
"$VALIDORA" verify --allow-private-destinations --state-dir "$tmp/state" --dns "$DNS" --smtp-timeout 30 --mail-from kill@validora.test -o "$tmp/k.mpk" \
  x@tarpit.test alice@valid.test nobody@valid.test x@nullmx.test 2>/dev/null &
pid=$!
for _ in $(seq 50); do
  n=$("$VALIDORA" cat "$tmp/k.mpk" 2>/dev/null | wc -l)
  [ "$n" -ge 3 ] && break
  sleep 0.1
done
kill -9 $pid; wait $pid 2>/dev/null
"$VALIDORA" cat "$tmp/k.mpk" >"$tmp/k.json" 2>"$tmp/k.err"
rc=$?
[ $rc -eq 0 ] && ok || bad "cat after kill -9 exited $rc: $(cat "$tmp/k.err")"
[ "$(wc -l <"$tmp/k.json")" -eq 3 ] && ok || bad "expected 3 records after kill -9, got: $(cat "$tmp/k.json")"
grep -q '"email":"x@tarpit.test"' "$tmp/k.json" && bad "undecided address written" || ok

# SIGTERM: with one address in flight (a tarpit, 3 s timeout) and more waiting, the run
# finishes the one in flight, takes no more and exits 1.
printf 'x@tarpit.test\nalice@valid.test\nbob@valid.test\n' >"$tmp/list"
"$VALIDORA" verify --allow-private-destinations --state-dir "$tmp/state" --dns "$DNS" --smtp-timeout 3 --concurrency 1 --mail-from term@validora.test \
  -i "$tmp/list" -o "$tmp/t.mpk" 2>"$tmp/t.err" &
pid=$!
sleep 1
kill -TERM $pid
wait $pid
rc=$?
[ $rc -eq 1 ] && ok || bad "SIGTERM run exited $rc (want 1)"
"$VALIDORA" cat "$tmp/t.mpk" >"$tmp/t.json"
[ "$(wc -l <"$tmp/t.json")" -eq 1 ] && grep -q '"reason":"timeout"' "$tmp/t.json" && ok ||
  bad "SIGTERM: want exactly the in-flight record (timeout), got: $(cat "$tmp/t.json")"
grep -q "finishing 1 addresses in flight" "$tmp/t.err" && ok || bad "no drain message: $(cat "$tmp/t.err")"

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]

#!/usr/bin/env bash
# interrupt.sh — nothing decided is lost when a run is killed or stopped:
#  - kill -9 mid-run: every record written before the kill reads back whole (flushed per record);
#  - SIGTERM: no new addresses are taken, the ones in flight finish and are written, exit 1.
# Env: VALIDORA, WORLD_DIR (a started world).
set -uo pipefail
: "${VALIDORA:?}" "${WORLD_DIR:?}"
DNS="127.0.0.1:${VALIDORA_DNS_PORT:-5354}"
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp

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
grep -q "finishing the 1 in SMTP sessions" "$tmp/t.err" && ok || bad "no drain message: $(cat "$tmp/t.err")"

# SIGINT against a throttled provider (issue 17: 28 s to finish 256 addresses in flight): the
# addresses only waiting for the throttle are written unknown/deferred at once, the stop says
# how many, and --resume verifies them again.
mkdir -p "$tmp/onebyone"
cat >"$tmp/onebyone/onebyone.lua" <<'LUA'
local default = require "default"
local one = { connections = 1, rcpt_per_minute = 120, rcpt_burst = 2 }
return {
  name = "onebyone",
  match = { domain = { "valid.test" } },
  limits = { provider = one, mx = one, domain = one },
  probe = function(job) return default.probe(job) end,
}
LUA
for i in $(seq -w 1 30); do echo "nobody$i@valid.test"; done >"$tmp/list30"
VI=("$VALIDORA" verify --allow-private-destinations --rules "${VALIDORA_SOURCE_DIR:-$(dirname "$0")/../..}/rules" --rules "$tmp/onebyone"
    --state-dir "$tmp/state-int" --dns "$DNS" --smtp-timeout 5 --mail-from int@validora.test -i "$tmp/list30" -o "$tmp/i.mpk")
"${VI[@]}" 2>"$tmp/i.err" &
pid=$!
for _ in $(seq 100); do
  [ "$("$VALIDORA" cat "$tmp/i.mpk" 2>/dev/null | wc -l)" -ge 1 ] && break
  sleep 0.1
done
t0=$(date +%s%N)
kill -INT $pid
wait $pid
t=$(( ($(date +%s%N) - t0) / 1000000 ))
n=$("$VALIDORA" cat "$tmp/i.mpk" | wc -l)
d=$("$VALIDORA" cat "$tmp/i.mpk" | grep -c '"reason":"deferred"')
[ "$t" -lt 8000 ] && [ "$n" -eq 30 ] && [ "$d" -ge 20 ] && ok ||
  bad "SIGINT with a throttle: ${t} ms, $n records, $d deferred (want < 8 s, 30, >= 20)"
grep -qE "stopping: [0-9]+ addresses that had not reached their SMTP session written unknown/deferred" "$tmp/i.err" && ok ||
  bad "SIGINT: no count of what was left: $(cat "$tmp/i.err")"
"${VI[@]}" --resume 2>"$tmp/i2.err" >/dev/null
[ "$("$VALIDORA" cat "$tmp/i.mpk" | grep -c '"reason":"mailbox_not_found"')" -eq 30 ] && ok ||
  bad "--resume after SIGINT: $("$VALIDORA" cat "$tmp/i.mpk" | grep -c mailbox_not_found) of 30 verified; $(tail -3 "$tmp/i2.err")"

checks_done interrupt

#!/usr/bin/env bash
# rules_bridge.sh — the Lua bridge against the test world: a rule of our own (matching
# valid.test) exercises every yielding call, the sandbox, the instruction budget, runtime
# errors, address validation before the wire, require of default.lua and rule selection;
# a broken rule directory must fail start-up with the file and line; greylisting that
# never clears ends as unknown/greylisted. Env: VALIDORA, WORLD_DIR, VALIDORA_SOURCE_DIR.
set -uo pipefail
: "${VALIDORA:?}" "${WORLD_DIR:?}" "${VALIDORA_SOURCE_DIR:?}"
DNS="127.0.0.1:${VALIDORA_DNS_PORT:-5354}"
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp

rules="$tmp/rules"
cp -r "$VALIDORA_SOURCE_DIR/rules" "$rules"
cat > "$rules/test_bridge.lua" <<'LUA'
local default = require "default"
return {
  name = "bridge",
  match = { domain = { "valid.test" } },
  probe = function(job)
    local l = job.local_part
    if l == "err" then error("boom from the rule") end
    if l == "loop" then while true do end end
    if l == "noverdict" then return end
    if l == "sandbox" then
      job:set("detail", table.concat({ tostring(io), tostring(os.execute), tostring(load),
        tostring(dofile), tostring(debug), tostring(coroutine), tostring(package) }, ","))
      return job:unknown("sandbox")
    end
    if l == "smuggle" then
      local s = assert(job:smtp())
      s:rcpt("bob@valid.test\r\nRSET")
      return job:deliverable("smuggled")
    end
    if l == "dns" then
      local mx = assert(dns.mx("deadfirst.test"))
      local nx, st = dns.mx("nosuch.test")
      job:set("detail", mx.hosts[1].name .. "," .. mx.hosts[2].name .. "," .. tostring(nx) .. "," .. st)
      return job:unknown("dns")
    end
    if l:match("^gen") then
      sleep(1.5)
      return job:unknown("gen_a")
    end
    if l == "sleep" then
      local t0 = now()
      sleep(0.3)
      job:set("detail", string.format("%.3f", now() - t0))
      return job:unknown("slept")
    end
    if l == "once" then
      local n = 0
      local v1 = job:once("k", function() n = n + 1; sleep(0.1); return "first" end)
      local v2 = job:once("k", function() n = n + 1; return "second" end)
      job:set("detail", v1 .. "," .. v2 .. "," .. n)
      return job:unknown("memo")
    end
    return default.probe(job)
  end,
}
LUA

out="$tmp/out.json"
timeout 120 "$VALIDORA" verify --allow-private-destinations --state-dir "$tmp/state" --rules "$rules" --dns "$DNS" --smtp-timeout 5 --format json \
  --mail-from bridge@validora.test \
  err@valid.test loop@valid.test noverdict@valid.test sandbox@valid.test smuggle@valid.test \
  dns@valid.test sleep@valid.test once@valid.test alice@valid.test nobody@valid.test \
  frank@implicit.test >"$out" 2>"$tmp/err"
rc=$?
[ $rc -eq 0 ] && ok || bad "verify exited $rc: $(cat "$tmp/err")"

check() { # address python-condition message
  if python3 - "$out" "$1" "$2" <<'PY'
import json, sys
recs = {}
for line in open(sys.argv[1]):
    if line.strip():
        r = json.loads(line); recs[r["email"]] = r
r = recs.get(sys.argv[2])
if r is None: sys.exit("no record")
d = r.get("detail", "")
sys.exit(0 if eval(sys.argv[3]) else "record: %s" % json.dumps(r))
PY
  then ok; else bad "$1: $3"; fi
}
check err@valid.test 'r["status"] == "unknown" and r["reason"] == "rule_error" and "boom from the rule" in d' "runtime error gives unknown/rule_error with the message"
check loop@valid.test 'r["reason"] == "rule_error" and "instruction budget" in d' "endless loop stopped by the instruction budget"
check noverdict@valid.test 'r["reason"] == "rule_error" and "without a verdict" in d' "no verdict is a rule error"
check sandbox@valid.test 'd == "nil,nil,nil,nil,nil,nil,nil"' "io, os.execute, load, dofile, debug, coroutine, package absent"
check smuggle@valid.test 'r["reason"] == "rule_error" and "refused before the wire" in d' "CR/LF address refused before the wire"
check dns@valid.test 'd == "mx1.deadfirst.test,mx2.deadfirst.test,nil,nxdomain"' "dns.mx yields MX hosts in order, nil+status on NXDOMAIN"
check sleep@valid.test 'r["reason"] == "slept" and float(d) >= 0.29' "sleep yields for the time asked"
check once@valid.test 'd == "first,first,1"' "job:once runs its function once per key"
check alice@valid.test 'r["status"] == "deliverable" and r["provider"] == "bridge"' "rule selected by domain, default.probe reused through require"
check nobody@valid.test 'r["reason"] == "mailbox_not_found" and r["provider"] == "bridge"' "default classifier through require"
check frank@implicit.test 'r["status"] == "deliverable" and r["provider"] == "default"' "other domains fall back to default.lua"

# A rule file that does not load stops start-up with file and line, exit 1.
broken="$tmp/broken"
cp -r "$VALIDORA_SOURCE_DIR/rules" "$broken"
printf 'return {\n  name = "x",\n  probe = function(job) return job:unknown("x") end\n  oops\n}\n' > "$broken/bad.lua"
"$VALIDORA" verify --allow-private-destinations --state-dir "$tmp/state" --rules "$broken" --dns "$DNS" alice@valid.test >"$tmp/o2" 2>"$tmp/e2"
rc=$?
[ $rc -eq 1 ] && grep -q 'bad.lua:4' "$tmp/e2" && ok || bad "broken rule: exit $rc, stderr: $(cat "$tmp/e2")"
[ ! -s "$tmp/o2" ] && ok || bad "broken rule: records written anyway"

# A rule file that returns no probe function is refused too.
printf 'return { name = "y" }\n' > "$broken/bad.lua"
"$VALIDORA" verify --allow-private-destinations --state-dir "$tmp/state" --rules "$broken" --dns "$DNS" alice@valid.test >/dev/null 2>"$tmp/e3"
rc=$?
[ $rc -eq 1 ] && grep -q "no function 'probe'" "$tmp/e3" && ok || bad "rule without probe: exit $rc, $(cat "$tmp/e3")"

# Greylisting that never clears within the tries: unknown/greylisted, attempts counted.
from="bridge-$(LC_ALL=C tr -dc a-z </dev/urandom | head -c 12)@validora.test"
timeout 60 "$VALIDORA" verify --allow-private-destinations --state-dir "$tmp/state" --dns "$DNS" --format json --smtp-timeout 5 --greylist-delay 1 \
  --greylist-tries 2 --mail-from "$from" carol@grey.test >"$out" 2>/dev/null
check carol@grey.test 'r["status"] == "unknown" and r["reason"] == "greylisted" and r["attempts"] == 2 and r["smtp"]["code"] == 450' "greylisting not cleared in time gives unknown/greylisted after 2 attempts"

# Hot reload: SIGHUP loads a new generation; a job in flight finishes on the one it started
# on, later jobs use the new one, and a reload that fails keeps the running rules.
fifo="$tmp/fifo"
mkfifo "$fifo"
"$VALIDORA" verify --allow-private-destinations --state-dir "$tmp/state" --rules "$rules" --dns "$DNS" --format json -i "$fifo" >"$out" 2>"$tmp/e4" &
pid=$!
exec 3>"$fifo"
echo gen1@valid.test >&3
sleep 0.5
sed -i 's/"gen_a"/"gen_b"/' "$rules/test_bridge.lua"
kill -HUP $pid
sleep 0.3
printf 'return {\n  oops\n' > "$rules/zz_bad.lua"
kill -HUP $pid
sleep 0.3
rm -f "$rules/zz_bad.lua"
echo gen2@valid.test >&3
exec 3>&-
wait $pid
rc=$?
[ $rc -eq 0 ] && ok || bad "reload run exited $rc: $(cat "$tmp/e4")"
check gen1@valid.test 'r["reason"] == "gen_a"' "job in flight during a reload finishes on its own generation"
check gen2@valid.test 'r["reason"] == "gen_b"' "job after the reload runs the new rules"
grep -q "rules reloaded" "$tmp/e4" && ok || bad "no 'rules reloaded' message: $(cat "$tmp/e4")"
grep -q "reload (asked) failed, generation [0-9]* (.*) stays: .*zz_bad.lua:" "$tmp/e4" && ok || bad "failed reload not reported with file and line: $(cat "$tmp/e4")"

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]

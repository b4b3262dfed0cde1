#!/usr/bin/env bash
# error_names.sh — the error names C hands to rules (docs/errors.md), pinned from Lua against
# the test world: the sandbox's `errors` table holds exactly the documented list and refuses
# other names; real failures produce those names; and the default rule's retry of a kept
# session the server dropped really happens (tarpit `dropper` closes each connection at its
# second RCPT): every address after the first needs a second session and still comes out
# undeliverable/mailbox_not_found, never unknown/connection_closed.
# Env: VALIDORA, WORLD_DIR, VALIDORA_SOURCE_DIR.
set -uo pipefail
: "${VALIDORA:?}" "${WORLD_DIR:?}" "${VALIDORA_SOURCE_DIR:?}"
DNS="127.0.0.1:${VALIDORA_DNS_PORT:-5354}"
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp

# The documented names, from the tables of docs/errors.md.
documented=$(sed -n 's/^| `\([a-z_]*\)` |.*/\1/p' "$VALIDORA_SOURCE_DIR/docs/errors.md" | sort -u | paste -sd, -)
[ -n "$documented" ] && ok || bad "no names found in docs/errors.md"

rules="$tmp/rules"
cp -r "$VALIDORA_SOURCE_DIR/rules" "$rules"
cat > "$rules/test_errors.lua" <<'LUA'
-- Reports, as the detail of unknown/"names", what the engine hands to rules.
local function names()
  local t = {}
  for k, v in pairs(errors) do
    assert(k == v, "errors." .. k .. " is " .. tostring(v))
    t[#t + 1] = k
  end
  table.sort(t)
  return table.concat(t, ",")
end
return {
  name = "errors",
  match = { domain = { "valid.test", "refused.test", "tarpit.test", "dropper.test" } },
  probe = function(job)
    local l = job.local_part
    if l == "names" then return job:unknown("names", nil, names()) end
    if l == "strict" then
      local ok, e = pcall(function() return errors.closed end)
      return job:unknown("strict", nil, tostring(ok) .. ":" .. tostring(e))
    end
    if l == "nx" then
      local r, e = dns.mx("nosuch.test")
      return job:unknown("dns", nil, tostring(r) .. ":" .. e)
    end
    if l == "nodata" then
      local r, e = dns.txt("mx.valid.test")
      return job:unknown("dns", nil, tostring(r) .. ":" .. e)
    end
    local s, err = job:smtp()
    if not s then return job:unknown("session", nil, err) end
    local r, rerr = s:rcpt(job.address)
    if not r then return job:unknown("rcpt", nil, rerr) end
    return job:unknown("replied", r)
  end,
}
LUA

# job.detail of each address, as "local:detail" lines.
details() {
  python3 -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print("%s:%s" % (r["email"].split("@")[0], r.get("detail", "")))' "$1"
}

timeout 60 "$VALIDORA" verify --allow-private-destinations --state-dir "$tmp/state" --rules "$rules" --dns "$DNS" --format json --smtp-timeout 1 \
  --per-mx-sessions 1 -j 1 names@valid.test strict@valid.test nx@valid.test nodata@valid.test \
  refused@refused.test silent@tarpit.test nobody1@dropper.test nobody2@dropper.test >"$tmp/out" 2>"$tmp/err"
details "$tmp/out" >"$tmp/details"
want_detail() {
  local who=$1 want=$2 got
  got=$(sed -n "s/^$who://p" "$tmp/details")
  if [ "$got" = "$want" ]; then ok; else bad "$who: detail '$got', want '$want' ($(cat "$tmp/err"))"; fi
}
want_detail names "$documented"
sed -i 's/test_errors\.lua:[0-9]*:/test_errors.lua:N:/' "$tmp/details"
want_detail strict "false:$rules/test_errors.lua:N: errors.closed: no such error name (see docs/errors.md)"
want_detail nx nil:nxdomain
want_detail nodata nil:nodata
want_detail refused connect_failed
want_detail silent timeout
want_detail nobody2 "connection_closed"
# every name a real failure produced is a documented one
for n in nxdomain nodata connect_failed timeout connection_closed; do
  case ",$documented," in *",$n,"*) ok ;; *) bad "$n is not in docs/errors.md" ;; esac
done

# The default rule: a dropped kept session is asked again on a fresh one.
for i in 1 2 3 4 5; do echo "nobody$i@dropper.test"; done >"$tmp/list"
timeout 60 "$VALIDORA" verify --allow-private-destinations --state-dir "$tmp/state" --dns "$DNS" --format json --smtp-timeout 5 --per-mx-sessions 1 \
  -j 1 -i "$tmp/list" >"$tmp/out2" 2>"$tmp/err2"
if python3 - "$tmp/out2" <<'PY'
import json, sys
recs = {json.loads(l)["email"]: json.loads(l) for l in open(sys.argv[1])}
bad = []
for i in range(1, 6):
    r = recs.get("nobody%d@dropper.test" % i)
    want = 1 if i == 1 else 2
    if not r or (r["status"], r["reason"], r.get("attempts")) != ("undeliverable", "mailbox_not_found", want):
        bad.append("nobody%d: %s" % (i, r and (r["status"], r["reason"], r.get("attempts"))))
sys.exit("; ".join(bad) if bad else 0)
PY
then ok; else bad "dropped-session retry (exit $(cat "$tmp/err2"))"; fi

checks_done error_names

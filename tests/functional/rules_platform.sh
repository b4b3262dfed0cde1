#!/usr/bin/env bash
# rules_platform.sh — the rules as a platform, against the test world: `rules check` (the
# shipped rules pass; every problem of a broken directory is named file:line; exit codes),
# `rules which` (domain, MX-host and default picks, priority, a later --rules directory
# overriding a rule of the same file name, JSON), the sandbox tested hostile (no way to reach
# files, programs, bytecode or debug; no file can change the base another file sees; no state
# survives a new generation; a runaway rule costs only its own address), and a reload with no
# signal at all: an editor's rename-over save is picked up by inotify, a broken save is
# reported and the running generation stays.
# Env: VALIDORA, WORLD_DIR, VALIDORA_SOURCE_DIR.
set -uo pipefail
: "${VALIDORA:?}" "${WORLD_DIR:?}" "${VALIDORA_SOURCE_DIR:?}"
DNS="127.0.0.1:${VALIDORA_DNS_PORT:-5354}"
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp
cleanup() { kill $(jobs -p) 2>/dev/null; }
shipped="$VALIDORA_SOURCE_DIR/rules"

# --- rules check
"$VALIDORA" rules check --rules "$shipped" >"$tmp/c1" 2>&1; rc=$?
[ $rc -eq 0 ] && grep -q "no problems" "$tmp/c1" && grep -q "default .*default.lua" "$tmp/c1" \
  && ok || bad "check shipped: exit $rc: $(cat "$tmp/c1")"

broken="$tmp/broken"; mkdir "$broken"
printf 'return {\n  name = "syn",\n  probe = function(job)\n    return job:unknown("x"\n  end,\n}\n' >"$broken/a_syntax.lua"
printf 'return {\n  name = "m",\n  match = { domain = { "bad pattern!" }, mxx = {} },\n  probe = function(job) end,\n}\n' >"$broken/b_match.lua"
printf 'return {\n  name = "l",\n  probe = function(job) end,\n  limits = { mx = { conections = 5 } },\n  mach = {},\n}\n' >"$broken/c_limits.lua"
"$VALIDORA" rules check --rules "$shipped" --rules "$broken" >"$tmp/c2" 2>&1; rc=$?
[ $rc -eq 1 ] && ok || bad "check broken: exit $rc"
grep -q "a_syntax.lua:[56]: " "$tmp/c2" && ok || bad "syntax error not named file:line: $(cat "$tmp/c2")"
grep -q "b_match.lua:3: match.domain\[1\]: pattern 'bad pattern!'" "$tmp/c2" && ok || bad "bad pattern: $(cat "$tmp/c2")"
grep -q "b_match.lua:3: unknown key 'mxx'" "$tmp/c2" && ok || bad "bad match key: $(cat "$tmp/c2")"
grep -q "c_limits.lua:4: limits.mx: unknown limit 'conections'" "$tmp/c2" && ok || bad "bad limit: $(cat "$tmp/c2")"
grep -q "c_limits.lua:5: unknown field 'mach'" "$tmp/c2" && ok || bad "typo field: $(cat "$tmp/c2")"
grep -q "^5 problems" "$tmp/c2" && ok || bad "every problem counted: $(tail -1 "$tmp/c2")"
# verify refuses to start on the same directories, naming a problem
"$VALIDORA" verify --allow-private-destinations --state-dir "$tmp/state" --rules "$shipped" --rules "$broken" --dns "$DNS" alice@valid.test >/dev/null 2>"$tmp/e"; rc=$?
[ $rc -eq 1 ] && grep -q "a_syntax.lua" "$tmp/e" && ok || bad "verify with broken rules: exit $rc $(cat "$tmp/e")"

# --- rules which: domain, MX host, default, priority, override by a later directory
user="$tmp/user"; over="$tmp/over"; mkdir "$user" "$over"
cat >"$user/a_mx.lua" <<'LUA'
return { name = "by_mx", match = { mx = { "*.valid.test" } }, probe = function(job) return job:unknown("x") end }
LUA
cat >"$user/b_domain.lua" <<'LUA'
return { name = "by_domain", priority = 5, match = { domain = { "valid.test" } },
  probe = function(job) return job:unknown("from_user") end }
LUA
cat >"$over/b_domain.lua" <<'LUA'
return { name = "overridden", priority = 5, match = { domain = { "valid.test" } },
  probe = function(job) return job:unknown("from_over") end }
LUA
W() { "$VALIDORA" rules which --allow-private-destinations --dns "$DNS" "$@"; }
W --rules "$shipped" --rules "$user" alice@valid.test bob@catchall.test x@nosuch.test >"$tmp/w1" 2>&1
grep -q "^alice@valid.test: by_domain (domain valid.test matches valid.test) $user/b_domain.lua" "$tmp/w1" \
  && ok || bad "which by domain + priority: $(cat "$tmp/w1")"
grep -q "^bob@catchall.test: default (no rule matched" "$tmp/w1" && ok || bad "which default: $(cat "$tmp/w1")"
grep -q "^x@nosuch.test: no rule: the engine decides undeliverable/domain_not_found" "$tmp/w1" \
  && ok || bad "which nxdomain: $(cat "$tmp/w1")"
rm "$user/b_domain.lua.bak" 2>/dev/null
mv "$user/b_domain.lua" "$tmp/b_domain.lua"
W --rules "$shipped" --rules "$user" alice@valid.test >"$tmp/w2" 2>&1
grep -q "^alice@valid.test: by_mx (MX host mx.valid.test matches \*.valid.test)" "$tmp/w2" \
  && ok || bad "which by mx: $(cat "$tmp/w2")"
mv "$tmp/b_domain.lua" "$user/b_domain.lua"
W --rules "$shipped" --rules "$user" --rules "$over" --format json alice@valid.test >"$tmp/w3" 2>&1
python3 - "$tmp/w3" "$over/b_domain.lua" <<'PY' && ok || bad "which override/json: $(cat "$tmp/w3")"
import json, sys
r = json.loads(open(sys.argv[1]).readline())
assert r["rule"] == "overridden" and r["by"] == "domain" and r["file"] == sys.argv[2], r
assert len(r["generation"]) == 12, r
PY
"$VALIDORA" verify --allow-private-destinations --state-dir "$tmp/state" --rules "$shipped" --rules "$user" --rules "$over" --dns "$DNS" alice@valid.test >"$tmp/v3" 2>&1
grep -q '"reason":"from_over".*"provider":"overridden"' "$tmp/v3" && ok || bad "override in verify: $(cat "$tmp/v3")"

# --- the sandbox, hostile
hostile="$tmp/hostile"; mkdir "$hostile"
cat >"$hostile/a_taint.lua" <<'LUA'
-- runs at load: tries to change what other files see
string.upper = nil
config.greylist_tries = 99
table.concat = function() return "tainted" end
dns = nil
return { name = "taint", match = { domain = { "nosuch-taint.test" } }, probe = function(job) return job:unknown("x") end }
LUA
cat >"$hostile/b_probe.lua" <<'LUA'
local count = 0
local function try(f) local ok = pcall(f); return ok and "reached" or "refused" end
return {
  name = "hostile",
  match = { domain = { "valid.test" } },
  probe = function(job)
    local l = job.local_part
    count = count + 1
    if l == "reach" then
      local t = { tostring(io), tostring(os.execute), tostring(os.remove), tostring(load),
        tostring(loadstring), tostring(dofile), tostring(loadfile), tostring(debug),
        tostring(coroutine), tostring(package), tostring(string.dump), tostring(collectgarbage),
        tostring(rawget(_ENV, "_G")),
        try(function() return require("os") end), try(function() return require("../../etc/passwd") end),
        try(function() return require("validora.classify") end),
        tostring(getmetatable("")), tostring(getmetatable(_ENV)) }
      return job:unknown("reach", nil, table.concat(t, ","))
    end
    if l == "base" then
      return job:unknown("base", nil, table.concat({ tostring(string.upper ~= nil),
        tostring(config.greylist_tries), tostring(dns ~= nil), table.concat({ "a", "b" }) }, ","))
    end
    if l == "count" then return job:unknown("count", nil, tostring(count)) end
    if l == "memory" then
      local t = {}
      for i = 1, 1e9 do t[i] = string.rep("x", 4096) .. i end
    end
    return job:unknown("fine")
  end,
}
LUA
H() { "$VALIDORA" verify --allow-private-destinations --state-dir "$tmp/state" --rules "$shipped" --rules "$hostile" --dns "$DNS" --rules-memory 64 -j 1 "$@"; }
H reach@valid.test base@valid.test memory@valid.test after@valid.test >"$tmp/h1" 2>"$tmp/h1e"
detail() { python3 -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["email"].startswith(sys.argv[2] + "@"): print(r["reason"] + "|" + r.get("detail", ""))' "$tmp/h1" "$1"; }
[ "$(detail reach)" = "reach|nil,nil,nil,nil,nil,nil,nil,nil,nil,nil,nil,nil,nil,refused,refused,reached,false,false" ] \
  && ok || bad "sandbox reach: $(detail reach)"
[ "$(detail base)" = "base|true,3,true,ab" ] && ok || bad "a file changed the base another sees: $(detail base)"
case "$(detail memory)" in rule_error\|*"not enough memory"*) ok ;; *) bad "runaway memory: $(detail memory)" ;; esac
[ "$(detail after)" = "fine|" ] && ok || bad "the address after a runaway one: $(detail after)"

# --- no state across generations; reload with no signal (inotify), a broken save reported
live="$tmp/live"; mkdir "$live"; cp "$hostile/b_probe.lua" "$live/"
mkfifo "$tmp/in"
"$VALIDORA" verify --allow-private-destinations --state-dir "$tmp/state" --rules "$shipped" --rules "$live" --dns "$DNS" --reload-delay 0.2 -v -j 1 -i "$tmp/in" \
  >"$tmp/l1" 2>"$tmp/l1e" &
vpid=$!
exec 3>"$tmp/in"
wait_records() { for _ in $(seq 1 100); do [ "$(wc -l <"$tmp/l1")" -ge "$1" ] && return 0; sleep 0.1; done; return 1; }
echo count@valid.test >&3; echo count@valid.test >&3; wait_records 2
# an editor's save: write a new file beside it, then rename it over the old one
{ cat "$live/b_probe.lua"; echo "-- edited"; } >"$live/.b_probe.lua.swp"; mv "$live/.b_probe.lua.swp" "$live/b_probe.lua"
for _ in $(seq 1 50); do grep -q "b_probe.lua changed" "$tmp/l1e" && break; sleep 0.1; done
echo count@valid.test >&3; wait_records 3
# a broken save: reported, the running generation stays
printf 'return {\n  name = \n' >"$live/b_probe.lua.new"; mv "$live/b_probe.lua.new" "$live/b_probe.lua"
for _ in $(seq 1 50); do grep -q "reload (.*) failed" "$tmp/l1e" && break; sleep 0.1; done
echo count@valid.test >&3; wait_records 4
exec 3>&-
wait $vpid; rc=$?
[ $rc -eq 0 ] && ok || bad "verify across reloads: exit $rc $(cat "$tmp/l1e")"
python3 - "$tmp/l1" <<'PY' && ok || bad "generations across an inotify reload: $(cat "$tmp/l1")"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
got = [(r["detail"], r["generation"]) for r in recs]
assert [d for d, _ in got] == ["1", "2", "1", "2"], got   # the count restarts with the new generation
assert got[0][1] == got[1][1] and got[1][1] != got[2][1] and got[2][1] == got[3][1], got
PY
grep -q "b_probe.lua:3: " "$tmp/l1e" && ok || bad "broken save not reported with file:line: $(cat "$tmp/l1e")"
grep -q "generation 2 .* is current: .*b_probe.lua changed" "$tmp/l1e" && ok || bad "log of the new generation: $(cat "$tmp/l1e")"

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]

#!/usr/bin/env bash
# reload_load.sh — hot reload under load, against the test world: 20,000 addresses stream in
# at a steady rate while the rule changes ten times with a SIGHUP after each (one change is a
# broken file), then once more with no signal at all (inotify). No address may be lost or
# duplicated, and every record's `generation` must name the rules it was decided under: each
# version of the rule stamps its records, and each generation hash maps to exactly one
# version. One address in 100 also asks Postfix over SMTP, so sessions are open across the
# reloads. Env: VALIDORA, WORLD_DIR, VALIDORA_SOURCE_DIR.
set -uo pipefail
: "${VALIDORA:?}" "${WORLD_DIR:?}" "${VALIDORA_SOURCE_DIR:?}"
DNS="127.0.0.1:${VALIDORA_DNS_PORT:-5354}"
# VALIDORA_LONG=0 (the sanitized build): a quarter of the run, the same checks
N_FULL=20000; [ "${VALIDORA_LONG:-1}" = 0 ] && N_FULL=5000
N=${RELOAD_LOAD_ADDRESSES:-$N_FULL}
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp
cleanup() { kill $(jobs -p) 2>/dev/null; }

live="$tmp/live"; mkdir "$live"
version() { # version NAME: the rule, stamping its records with NAME; saved as editors do
  cat >"$live/.load.tmp" <<LUA
local V = "$1"
return {
  name = "load",
  match = { domain = { "valid.test" } },
  probe = function(job)
    if tonumber(job.local_part:sub(2)) % 100 == 0 then
      local s = job:smtp()
      if s then s:rcpt(job.address); s:release() end
    end
    return job:unknown(V)
  end,
}
LUA
  mv "$live/.load.tmp" "$live/load.lua"
}
version v0
seq 1 "$N" | sed 's/^/u/; s/$/@valid.test/' >"$tmp/list"

# a steady producer: the list in 40 slices over about 12 s
mkfifo "$tmp/in"
( split -n l/40 "$tmp/list" "$tmp/slice."; for f in "$tmp"/slice.*; do cat "$f"; sleep 0.3; done ) >"$tmp/in" &
# 200 of the addresses open SMTP sessions: past a new IP's first-day budget, hence --no-warmup
"$VALIDORA" verify --allow-private-destinations --state-dir "$tmp/state" --no-warmup --rules "$VALIDORA_SOURCE_DIR/rules" \
  --rules "$live" --dns "$DNS" --smtp-timeout 10 --reload-delay 3 -v -i "$tmp/in" >"$tmp/out" 2>"$tmp/err" &
vpid=$!
sleep 1
for i in 1 2 3 4 5 6 7 8 9 10; do
  if [ $i -eq 5 ]; then printf 'return {\n  name = "load",\n  probe = function(job\n' >"$live/.load.tmp"
    mv "$live/.load.tmp" "$live/load.lua"
  else version "v$i"; fi
  kill -HUP $vpid
  sleep 0.6
done
version v_inotify # no signal: the watcher reloads it after --reload-delay
wait $vpid; rc=$?

[ $rc -eq 0 ] && ok || bad "verify exit $rc: $(tail -5 "$tmp/err")"
python3 - "$tmp/list" "$tmp/out" "$tmp/err" <<'PY' && ok || bad "records under reload"
import collections, json, re, sys
want = [l.strip() for l in open(sys.argv[1])]
recs = [json.loads(l) for l in open(sys.argv[2])]
emails = collections.Counter(r["email"] for r in recs)
lost = set(want) - set(emails)
dups = [e for e, c in emails.items() if c > 1]
problems = []
if lost: problems.append("%d addresses lost (e.g. %s)" % (len(lost), sorted(lost)[:3]))
if dups: problems.append("%d duplicated (e.g. %s)" % (len(dups), dups[:3]))
by_gen = collections.defaultdict(set)
for r in recs:
    by_gen[r.get("generation")].add(r["reason"])
mixed = {g: v for g, v in by_gen.items() if len(v) != 1}
if mixed: problems.append("generations with more than one rule version: %s" % mixed)
versions = set(r["reason"] for r in recs)
logged = set(re.findall(r"generation \d+ \(([0-9a-f]{12})\)", open(sys.argv[3]).read()))
if set(by_gen) - logged: problems.append("records name generations never logged: %s" % (set(by_gen) - logged))
if len(versions) < 6: problems.append("only %d rule versions decided records: %s" % (len(versions), sorted(versions)))
if "v_inotify" not in versions: problems.append("the edit with no signal never became current")
if any(r["reason"] not in {"v%d" % i for i in range(11)} | {"v_inotify"} for r in recs):
    problems.append("a record from no known version")
print("%d records, %d generations, versions %s" % (len(recs), len(by_gen), sorted(versions)))
sys.exit("; ".join(problems) if problems else 0)
PY
grep -q "reload (signal\|reload (asked) failed" "$tmp/err" && ok || bad "the broken version was not reported: $(grep -i reload "$tmp/err" | head -3)"
grep -q "load.lua:[0-9]*: " "$tmp/err" && ok || bad "broken version not named file:line"
grep -q "is current: .*load.lua changed" "$tmp/err" && ok || bad "no reload from inotify: $(grep current "$tmp/err" | tail -2)"
checks_done reload_load

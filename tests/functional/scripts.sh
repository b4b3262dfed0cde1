#!/usr/bin/env bash
# scripts.sh — `validora run` and the shipped scripts (scripts/clean.lua, recheck.lua,
# summary.lua; docs/scripts.md) against the test world: a list with duplicates and every kind
# of verdict is cleaned into the four files, summarised, and its undecided records rechecked
# on a "later day" (a first run without SMTP, then a recheck with it). Also: the script's
# sandbox (no os.execute, no binary chunks), exit statuses, CSV columns, --help.
set -uo pipefail
: "${VALIDORA:?}" "${WORLD_DIR:?}" "${VALIDORA_SOURCE_DIR:?}"
DNS="127.0.0.1:${VALIDORA_DNS_PORT:-5354}"
S=$VALIDORA_SOURCE_DIR/scripts
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp
R() { "$VALIDORA" run --allow-private-destinations --state-dir "$tmp/state" --dns "$DNS" --mail-from scripts@validora.test "$@"; }

cat >"$tmp/list.txt" <<'LIST'
# a list as users have them: comments, blanks, duplicates, junk
alice@valid.test
bob@valid.test

alice@VALID.TEST
nobody@valid.test
anything@catchall.test
x@nosuch.test
not an address
x@servfail.test
LIST
mkdir "$tmp/out"
out=$(R "$S/clean.lua" "$tmp/list.txt" "$tmp/out" 2>"$tmp/err"); rc=$?
[ $rc -eq 0 ] && ok "clean.lua runs" || bad "clean.lua: rc=$rc $out $(cat "$tmp/err")"
[[ $out == *"7 addresses verified, 1 duplicates dropped"* ]] && ok "clean: the duplicate (domain case) verified once" || bad "clean summary: $out"
want() { # FILE: the expected lines, sorted
    local got; got=$(sort "$tmp/out/$1.txt" | tr '\n' ' ')
    [ "$got" = "$2" ] && ok "clean: $1.txt" || bad "clean: $1.txt is '$got', want '$2'"
}
want deliverable "alice@valid.test bob@valid.test "
want risky "anything@catchall.test "
want undeliverable "nobody@valid.test not an address x@nosuch.test "
want unknown "x@servfail.test "
n=$("$VALIDORA" cat "$tmp/out/results.mpk" | wc -l)
[ "$n" -eq 7 ] && ok "clean: results.mpk holds every record" || bad "clean: results.mpk has $n records"

sum=$(R "$S/summary.lua" "$tmp/out/results.mpk" 2>&1)
[[ $sum == "7 records"* ]] && [[ $sum == *"deliverable"*"2"* ]] && ok "summary.lua: totals" || bad "summary: $sum"
js=$(R "$S/summary.lua" --json "$tmp/out/results.mpk")
python3 - "$js" <<'PY' && ok "summary --json: counts by status, reason, provider, domain" || bad "summary json: $js"
import json, sys
d = json.loads(sys.argv[1])
assert d["total"] == 7, d
assert d["status"] == {"deliverable": 2, "risky": 1, "undeliverable": 3, "unknown": 1}, d["status"]
assert d["reason"]["accepted"] == 2 and d["reason"]["mailbox_not_found"] == 1, d["reason"]
assert d["provider"]["default"] == 4, d["provider"]
assert d["domain"]["valid.test"] == 3, d["domain"]
PY

# recheck: a first run without SMTP leaves everything that has an MX unknown (not_probed)
R --no-smtp "$S/clean.lua" "$tmp/list.txt" "$tmp/out" >/dev/null 2>&1
before=$(sort "$tmp/out/unknown.txt" | tr '\n' ' ')
[ "$before" = "alice@valid.test anything@catchall.test bob@valid.test nobody@valid.test x@servfail.test " ] && ok "the --no-smtp run left them unknown" || bad "no-smtp unknown: $before"
out=$(R "$S/recheck.lua" --reasons not_probed "$tmp/out/results.mpk" 2>&1); rc=$?
[ $rc -eq 0 ] && [[ $out == "3 kept, 4 rechecked: 2 deliverable, 1 risky, 1 undeliverable, 0 still unknown"* ]] && ok "recheck.lua: rechecks the undecided" || bad "recheck: rc=$rc $out"
"$VALIDORA" cat "$tmp/out/results.mpk.recheck.mpk" >"$tmp/re.jsonl"
python3 - "$tmp/re.jsonl" <<'PY' && ok "recheck: every address exactly once, with its new verdict" || bad "recheck output: $(cat "$tmp/re.jsonl")"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
emails = [r["email"] for r in recs]
assert len(emails) == len(set(emails)) == 7, emails
st = {r["email"]: (r["status"], r["reason"]) for r in recs}
assert st["alice@valid.test"] == ("deliverable", "accepted"), st
assert st["nobody@valid.test"] == ("undeliverable", "mailbox_not_found"), st
assert st["x@servfail.test"] == ("unknown", "dns_error"), st
assert st["x@nosuch.test"] == ("undeliverable", "domain_not_found"), st
PY

# CSV input with a header, quoting, a comma inside a field
printf 'name,email,note\n"Smith, Alice",alice@valid.test,"said ""hi"""\nBob,bob@valid.test,\n' >"$tmp/list.csv"
mkdir "$tmp/csv"
out=$(R "$S/clean.lua" --column email "$tmp/list.csv" "$tmp/csv" 2>&1)
[[ $(sort "$tmp/csv/deliverable.txt" | tr '\n' ' ') == "alice@valid.test bob@valid.test " ]] && ok "clean --column: CSV with a header and quotes" || bad "csv: $out"
out=$(R "$S/clean.lua" --column mail "$tmp/list.csv" "$tmp/csv" 2>&1); rc=$?
[ $rc -ne 0 ] && [[ $out == *"no column 'mail'"* ]] && ok "clean --column: an unknown column is an error" || bad "csv col: rc=$rc $out"

# the script's environment, exit statuses, usage
cat >"$tmp/env.lua" <<'LUA'
assert(os.execute == nil and io.popen == nil and os.exit == nil and os.remove == nil)
assert(debug == nil and dofile == nil and loadfile == nil)
assert(string.dump == nil)  -- no bytecode (issue 16): nothing to dump, and load refuses it
local f, err = load("\27Lua\84\0")
assert(f == nil and err:find("binary"), err)
assert(load("return 1 + 1")() == 2)
assert(arg[1] == "--x" and select("#", ...) == 2)
local r = validora.verify("alice@valid.test")
assert(r.status == "deliverable" and r.provider == "default" and r.method == "smtp", r.status)
local w = validora.writer("-", "json")
assert(not pcall(w.write, w, { status = "deliverable" }))  -- made-up records are refused
return 7
LUA
out=$(R "$tmp/env.lua" --x y 2>&1); rc=$?
[ $rc -eq 7 ] && ok "run: the sandbox, arg, verify; the script's number is the exit status" || bad "env.lua: rc=$rc $out"
echo 'error("boom")' >"$tmp/err.lua"
out=$(R "$tmp/err.lua" 2>&1); rc=$?
[ $rc -eq 1 ] && [[ $out == *"err.lua:1: boom"* ]] && ok "run: an error is exit 1 with file:line" || bad "err.lua: rc=$rc $out"
out=$("$VALIDORA" run --allow-private-destinations 2>&1); rc=$?
[ $rc -eq 2 ] && ok "run: no script is a usage error" || bad "run no script: rc=$rc"
for s in clean recheck summary; do
    h=$("$VALIDORA" run --allow-private-destinations "$S/$s.lua" --help 2>&1); rc=$?
    [ $rc -eq 0 ] && [[ $h == usage:* ]] && ok "$s.lua --help" || bad "$s --help: rc=$rc $h"
    "$VALIDORA" run --allow-private-destinations "$S/$s.lua" >/dev/null 2>&1; rc=$?
    [ $rc -eq 2 ] && ok "$s.lua without operands: exit 2" || bad "$s no operands: rc=$rc"
done
# docs/scripts.md's worked example, as written: its script, run on a list of the world
python3 - "$VALIDORA_SOURCE_DIR/docs/scripts.md" "$tmp/prune.lua" <<'PY' || bad "docs/scripts.md: no prune.lua example"
import re, sys
doc = open(sys.argv[1]).read()
b = [x for x in re.findall(r"```lua\n(.*?)```", doc, re.S) if "my-scripts/prune.lua" in x]
assert len(b) == 1
open(sys.argv[2], "w").write(b[0])
PY
printf 'alice@valid.test\nnobody@valid.test\nx@servfail.test\n' >"$tmp/subscribers.txt"
out=$(R "$tmp/prune.lua" "$tmp/subscribers.txt" "$tmp/pruned" 2>&1); rc=$?
[ $rc -eq 0 ] && [[ $out == "3 addresses, 1 to remove"* ]] && [ "$(cat "$tmp/pruned/remove.txt")" = "nobody@valid.test	mailbox_not_found" ] \
    && [ "$(sort "$tmp/pruned/keep.txt" | tr '\n' ' ')" = "alice@valid.test x@servfail.test " ] \
    && ok "docs/scripts.md's prune.lua: removes the sure ones only" || bad "prune.lua: rc=$rc $out $(cat "$tmp/pruned"/*.txt 2>&1)"
out=$(R "$tmp/prune.lua" "$tmp/no-such-list" "$tmp/pruned2" 2>&1); rc=$?
[ $rc -eq 1 ] && [[ $out == *"no-such-list"* ]] && ok "prune.lua: a missing list says so, exit 1" || bad "prune.lua missing list: rc=$rc $out"
# validora.set (issue 18, item 13): add says new or seen, has and # agree; and verify_all
# keeps addresses in flight plus records waiting within its concurrency, even when records
# come back at once (--no-smtp: the same domains over and over, from the DNS cache).
cat >"$tmp/set.lua" <<'LUA'
local s = validora.set()
assert(s:add("a@x.test") and not s:add("a@x.test") and s:add("b@x.test"))
assert(s:has("a@x.test") and not s:has("c@x.test") and #s == 2)
local given, got, worst = 0, 0, 0
local function input()
  if given == 3000 then return nil end
  given = given + 1
  return "u" .. given .. "@valid.test"
end
for rec in validora.verify_all(input, { concurrency = 4 }) do
  got = got + 1
  worst = math.max(worst, given - got)
  assert(rec.status)
end
print(got, worst < 4 and "bounded" or ("unbounded " .. worst))
LUA
out=$(R --no-smtp "$tmp/set.lua" 2>&1)
[ "$out" = "3000	bounded" ] && ok "validora.set, and verify_all within its concurrency" || bad "set.lua: $out"

checks_done scripts

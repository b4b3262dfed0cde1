#!/usr/bin/env bash
# ledger_cli.sh — `validora ledger` (docs/ledger.md): show before anything was verified
# (creates nothing), set-age and show in text and JSON Lines (IPv6 in canonical form), usage
# errors, a state directory that cannot be made; show while another process writes; the
# instance lock: `ledger lock` refuses a second process naming the holder's pid, allows
# another IP, and is free again after the holder is killed with SIGKILL.
# Needs no test world (ctest runs it with the world fixture; it does not use it).
# Env: VALIDORA (the CLI).
set -uo pipefail
: "${VALIDORA:?VALIDORA must name the validora CLI binary}"

. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp
holder=""
cleanup() {
    # only the processes this test started, by pid
    [ -n "$holder" ] && kill -9 "$holder" 2>/dev/null
    for p in ${orphans:-}; do kill -9 "$p" 2>/dev/null; done
}
S="$tmp/state"

# ---- show before anything ----
out=$("$VALIDORA" ledger show --state-dir "$S" 2>&1)
rc=$?
[ $rc -eq 0 ] && grep -q "no source IP has been used yet" <<<"$out" && ok "show with no ledger" ||
    bad "show with no ledger: exit $rc: $out"
out=$("$VALIDORA" ledger show --state-dir "$S" --format json 2>&1)
[ $? -eq 0 ] && [ -z "$out" ] && ok "show --format json with no ledger: no lines" ||
    bad "show json with no ledger: $out"
[ ! -e "$S" ] && ok "show creates no state directory" || bad "show created $S"

# ---- set-age, show ----
out=$("$VALIDORA" ledger set-age 127.0.0.1 12 --state-dir "$S" 2>&1)
rc=$?
[ $rc -eq 0 ] && grep -q "source IP 127.0.0.1: first use .*, age 12 days" <<<"$out" &&
    ok "set-age 127.0.0.1 12" || bad "set-age: exit $rc: $out"
[ "$(stat -c %a "$S")" = 700 ] && ok "state directory made with mode 0700" ||
    bad "state directory mode $(stat -c %a "$S")"
"$VALIDORA" ledger set-age --state-dir "$S" 0:0::1 3 >/dev/null 2>&1 && ok "set-age 0:0::1 3" ||
    bad "set-age 0:0::1 3"
"$VALIDORA" ledger show --state-dir "$S" >"$tmp/show.txt" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q "^source IP 127.0.0.1$" "$tmp/show.txt" &&
    grep -q "^source IP ::1$" "$tmp/show.txt" && grep -q "(age 12 days)" "$tmp/show.txt" &&
    grep -q "(age 3 days)" "$tmp/show.txt" &&
    grep -q "today *0 verifications; the budget renews [0-9-]* 00:00:00 UTC" "$tmp/show.txt" &&
    grep -q "deferrals *0 today, 0 in all" "$tmp/show.txt"; then
    ok "show text"
else
    bad "show text: exit $rc"
    sed 's/^/     /' "$tmp/show.txt"
fi
"$VALIDORA" ledger show --state-dir "$S" -f json >"$tmp/show.json" 2>&1
rc=$?
want_first=$(date -u -d "@$(($(date +%s) - 12 * 86400))" +%Y-%m-%dT00:00:00Z)
if [ $rc -eq 0 ] && python3 - "$tmp/show.json" "$want_first" <<'EOF'; then
import json, sys, time
lines = open(sys.argv[1]).read().splitlines()
rows = [json.loads(l) for l in lines]
assert [r["source_ip"] for r in rows] == ["127.0.0.1", "::1"], rows
a = rows[0]
assert a["age_days"] == 12 and rows[1]["age_days"] == 3, rows
assert a["first_use"] == sys.argv[2], (a["first_use"], sys.argv[2])
assert a["used_today"] == 0 and a["breakers"] == [], a
assert a["renews_at_unix"] % 86400 == 0 and 0 < a["renews_at_unix"] - time.time() <= 86400, a
assert a["renews_at"].endswith("T00:00:00Z"), a
for k in ("deferrals_today", "blocks_today", "deferrals_total", "blocks_total"):
    assert a[k] == 0, (k, a)
EOF
    ok "show --format json"
else
    bad "show json: exit $rc"
    sed 's/^/     /' "$tmp/show.json"
fi

# ---- usage errors and bad state directories ----
usage() {
    local what=$1
    shift
    "$VALIDORA" ledger "$@" >"$tmp/u.out" 2>"$tmp/u.err"
    local rc=$?
    [ $rc -eq 2 ] && [ -s "$tmp/u.err" ] && ok "usage error: $what" ||
        bad "usage error: $what: exit $rc: $(cat "$tmp/u.err")"
}
usage "set-age, not an IP" set-age 1.2.3 4 --state-dir "$S"
usage "set-age, bad DAYS" set-age 127.0.0.1 -1 --state-dir "$S"
usage "set-age, DAYS not a number" set-age 127.0.0.1 12x --state-dir "$S"
usage "set-age, no DAYS" set-age 127.0.0.1 --state-dir "$S"
usage "show --format xml" show --format xml --state-dir "$S"
usage "show, an operand" show extra --state-dir "$S"
usage "unknown subcommand" frobnicate
grep -q -- "--state-dir DIR" <<<"$("$VALIDORA" ledger show --help)" && ok "show --help names --state-dir" ||
    bad "show --help"

touch "$tmp/file"
"$VALIDORA" ledger set-age 127.0.0.1 1 --state-dir "$tmp/file/sub" >/dev/null 2>"$tmp/e"
rc=$?
[ $rc -eq 1 ] && grep -q "state directory $tmp/file/sub: cannot create" "$tmp/e" &&
    ok "a state directory that cannot be made: exit 1, named" || bad "bad state dir: exit $rc: $(cat "$tmp/e")"
printf 'not a database, not at all, no no no no no no no no no no no no no no no\n' >"$tmp/junk.sqlite"
mkdir -p "$tmp/junk"
cp "$tmp/junk.sqlite" "$tmp/junk/ledger.sqlite"
"$VALIDORA" ledger show --state-dir "$tmp/junk" >/dev/null 2>"$tmp/e"
rc=$?
[ $rc -eq 1 ] && grep -q "ledger $tmp/junk/ledger.sqlite" "$tmp/e" &&
    ok "a file that is not a ledger: exit 1, named" || bad "junk ledger: exit $rc: $(cat "$tmp/e")"

# ---- show while another process writes ----
(for i in $(seq 1 40); do "$VALIDORA" ledger set-age 192.0.2.9 "$i" --state-dir "$S" >/dev/null || exit 1; done) &
writer=$!
shows_ok=0
for i in $(seq 1 20); do
    "$VALIDORA" ledger show --state-dir "$S" -f json >/dev/null 2>>"$tmp/show.err" && shows_ok=$((shows_ok + 1))
done
wait $writer
wrc=$?
[ $wrc -eq 0 ] && [ $shows_ok -eq 20 ] && ok "20 shows during 40 writes: all succeed" ||
    bad "show while writing: writer exit $wrc, $shows_ok/20 shows: $(head -n 3 "$tmp/show.err")"
"$VALIDORA" ledger show --state-dir "$S" | grep -q "(age 40 days)" && ok "the last write is there" ||
    bad "the last write is missing"
if command -v sqlite3 >/dev/null; then
    [ "$(sqlite3 "$S/ledger.sqlite" 'PRAGMA integrity_check')" = ok ] && ok "integrity_check: ok" ||
        bad "integrity_check"
    [ "$(sqlite3 "$S/ledger.sqlite" 'PRAGMA journal_mode')" = wal ] && ok "journal_mode: wal" ||
        bad "journal_mode"
fi

# ---- the instance lock ----
"$VALIDORA" ledger lock --state-dir "$S" 127.0.0.1 -- sleep 300 &
holder=$!
lockf="$S/instance-127.0.0.1.lock"
for _ in $(seq 1 100); do
    [ "$(cat "$lockf" 2>/dev/null)" = "$holder" ] && break
    sleep 0.05
done
[ "$(cat "$lockf" 2>/dev/null)" = "$holder" ] && ok "the lock file holds the holder's pid" ||
    bad "lock file: '$(cat "$lockf" 2>/dev/null)', holder $holder"
"$VALIDORA" ledger lock --state-dir "$S" 127.0.0.1 -- true >/dev/null 2>"$tmp/e"
rc=$?
if [ $rc -eq 1 ] && grep -q "another validora (pid $holder) is verifying from source IP 127.0.0.1 with state dir $S; one instance per source IP protects its reputation" "$tmp/e"; then
    ok "a second process is refused, naming the holder"
else
    bad "second process: exit $rc: $(cat "$tmp/e")"
fi
"$VALIDORA" ledger lock --state-dir "$S" 127.0.0.2 -- true 2>"$tmp/e" && ok "another source IP is not held" ||
    bad "another IP: $(cat "$tmp/e")"
"$VALIDORA" ledger show --state-dir "$S" >/dev/null 2>&1 && ok "show while the lock is held" ||
    bad "show while the lock is held"
orphans=$(cat "/proc/$holder/task/$holder/children" 2>/dev/null)
kill -9 "$holder"
wait "$holder" 2>/dev/null
holder=""
"$VALIDORA" ledger lock --state-dir "$S" 127.0.0.1 -- sh -c 'exit 7' 2>"$tmp/e"
rc=$?
[ $rc -eq 7 ] && ok "after SIGKILL of the holder the lock is free (and COMMAND's status comes back)" ||
    bad "after SIGKILL: exit $rc: $(cat "$tmp/e")"
for p in $orphans; do kill -9 "$p" 2>/dev/null; done
orphans=""
"$VALIDORA" ledger lock --state-dir "$S" 127.0.0.1 -- /nonexistent/command 2>/dev/null
[ $? -eq 127 ] && ok "a COMMAND that does not exist: 127" || bad "missing COMMAND"

checks_done ledger_cli

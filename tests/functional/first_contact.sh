#!/usr/bin/env bash
# first_contact.sh — what a new user hits in the first hour (issue 17), against the test
# world: a byte-order mark on every input (verify -i, a pipe, run's validora.lines and
# validora.csv through clean.lua, the serve bodies), invisible characters inside an address
# (invalid_syntax, never probed), CSV input to verify (--column, header row, the error without
# it), `run` creating its output directory, `rules check` with a missing optional rules
# directory, no DNS server answering, inputs checked before the state dir is touched, the
# nearest subcommand, the set-age `any` warning and `config show`'s computed values.
# Does not own: the budget after kill -9 (budget.sh), the README walk (readme.sh).
# Env: VALIDORA, WORLD_DIR, VALIDORA_SOURCE_DIR.
set -uo pipefail
: "${VALIDORA:?}" "${WORLD_DIR:?}" "${VALIDORA_SOURCE_DIR:?}"
DNS="127.0.0.1:${VALIDORA_DNS_PORT:-5354}"
S=$VALIDORA_SOURCE_DIR/scripts
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp
# The option the hardened engine needs to reach loopback servers.
PRIV=(--allow-private-destinations) # the world is on loopback (issue 16)
V() { "$VALIDORA" verify --state-dir "$tmp/state" --dns "$DNS" --mail-from first@validora.test \
      --smtp-timeout 5 "${PRIV[@]}" "$@"; }
R() { "$VALIDORA" run --state-dir "$tmp/state" --dns "$DNS" --mail-from first@validora.test \
      "${PRIV[@]}" "$@"; }
status_of() { # FILE EMAIL: "status/reason" of that email's record in a JSON Lines file
    python3 -c 'import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["email"] == sys.argv[2]: print(r["status"] + "/" + r["reason"])' "$1" "$2"
}
BOM=$'\xef\xbb\xbf'

# ---- 1. a byte-order mark at the start of the input is dropped ----
printf '%salice@valid.test\r\nbob@valid.test\r\n' "$BOM" >"$tmp/excel.txt"
V -i "$tmp/excel.txt" >"$tmp/o.json" 2>"$tmp/e"
[ "$(status_of "$tmp/o.json" alice@valid.test)" = deliverable/accepted ] \
    && ok "BOM: the first address of a list is alice@valid.test, deliverable" \
    || bad "BOM (file): $(head -c 300 "$tmp/o.json") $(cat "$tmp/e")"
cat "$tmp/excel.txt" | V -i - >"$tmp/o.json" 2>"$tmp/e"
[ "$(status_of "$tmp/o.json" alice@valid.test)" = deliverable/accepted ] \
    && ok "BOM: from a pipe too" || bad "BOM (pipe): $(head -c 300 "$tmp/o.json")"
# inside an address (not at the start of the input) it is invalid syntax, never probed
printf 'bob@valid.test\n%salice@valid.test\nal\xe2\x80\x8bice@valid.test\nalice@valid\xe2\x81\xa0.test\n' "$BOM" >"$tmp/inv.txt"
V -i "$tmp/inv.txt" >"$tmp/o.json" 2>"$tmp/e"
n=$(grep -c '"reason":"invalid_syntax"' "$tmp/o.json")
[ "$n" -eq 3 ] && ! grep -q mailbox_not_found "$tmp/o.json" \
    && ok "invisible characters inside an address: invalid_syntax, not probed" \
    || bad "invisible characters: $(cat "$tmp/o.json")"
# run: validora.lines and clean.lua --column on an Excel CSV
mkdir -p "$tmp/out1"
R "$S/clean.lua" "$tmp/excel.txt" "$tmp/out1" >"$tmp/e" 2>&1
grep -qx alice@valid.test "$tmp/out1/deliverable.txt" && ok "BOM: run's validora.lines" \
    || bad "BOM (run lines): $(cat "$tmp/e" "$tmp/out1"/*.txt)"
printf '%sname,email\r\nAlice,alice@valid.test\r\nNobody,nobody@valid.test\r\n' "$BOM" >"$tmp/excel.csv"
mkdir -p "$tmp/out2"
R "$S/clean.lua" --column email "$tmp/excel.csv" "$tmp/out2" >"$tmp/e" 2>&1; rc=$?
[ $rc -eq 0 ] && grep -qx alice@valid.test "$tmp/out2/deliverable.txt" \
    && ok "BOM: clean.lua --column email on an Excel CSV" || bad "BOM (clean csv): rc=$rc $(cat "$tmp/e")"

# serve: the bodies of POST /v1/verify and POST /v1/jobs (text and CSV)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
U="http://127.0.0.1:$port"
# with a token: a text/plain job is a type a web page could send, taken only with the token
printf 'first-contact-token\n' >"$tmp/token"
chmod 600 "$tmp/token"
"$VALIDORA" serve --listen "127.0.0.1:$port" --state-dir "$tmp/sstate" --dns "$DNS" --smtp-timeout 5 \
    --mail-from first@validora.test --token-file "$tmp/token" "${PRIV[@]}" 2>"$tmp/serve.err" &
spid=$!
for _ in $(seq 100); do curl -sf "$U/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
printf '%s{"email":"alice@valid.test"}' "$BOM" >"$tmp/body.json"
TA="Authorization: Bearer first-contact-token"
out=$(curl -s -H "$TA" -H 'Content-Type: application/json' --data-binary @"$tmp/body.json" "$U/v1/verify")
python3 -c "import json,sys; r=json.loads(sys.argv[1]); sys.exit(not (r[\"email\"]==\"alice@valid.test\" and r[\"status\"]==\"deliverable\"))" "$out" 2>/dev/null && ok "BOM: serve's /v1/verify body" \
    || bad "BOM (serve verify): $out $(cat "$tmp/serve.err")"
job_of() { # FILE TYPE [QUERY]: the statuses of a job made of FILE, once it is done
    local id
    id=$(curl -s -H "$TA" -H "Content-Type: $2" --data-binary @"$1" "$U/v1/jobs${3:-}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    for _ in $(seq 100); do
        curl -s -H "$TA" "$U/v1/jobs/$id" | grep -Eq '"state": ?"done"' && break
        sleep 0.1
    done
    curl -s -H "$TA" "$U/v1/jobs/$id/results" | python3 -c 'import json,sys
print(" ".join(sorted(json.loads(l)["email"] + "=" + json.loads(l)["status"] for l in sys.stdin)))'
}
got=$(job_of "$tmp/excel.txt" text/plain)
[ "$got" = "alice@valid.test=deliverable bob@valid.test=deliverable" ] && ok "BOM: serve's text/plain job" || bad "BOM (serve text): '$got'"
got=$(job_of "$tmp/excel.csv" text/csv "?column=email")
[ "$got" = "alice@valid.test=deliverable nobody@valid.test=undeliverable" ] && ok "BOM: serve's text/csv job, ?column=email" \
    || bad "BOM (serve csv): '$got'"
kill -TERM "$spid"; wait "$spid" 2>/dev/null

# ---- 4. CSV input ----
printf 'name,city,email\r\nAlice,Paris,alice@valid.test\r\n"Smith, Bob",Rome,bob@valid.test\r\nNone,Oslo,\r\n' >"$tmp/people.csv"
V -i "$tmp/people.csv" >"$tmp/o.json" 2>"$tmp/e"; rc=$?
[ $rc -eq 2 ] && [ ! -s "$tmp/o.json" ] && grep -q -- "--column" "$tmp/e" \
    && ok "verify -i a CSV without --column: usage error naming --column, nothing verified" \
    || bad "CSV without --column: rc=$rc $(cat "$tmp/e") $(head -c 200 "$tmp/o.json")"
cp "$tmp/people.csv" "$tmp/people.txt" # the name does not matter: the first line's comma does
V -i "$tmp/people.txt" >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] && ok "a CSV named .txt is told apart by its commas" || bad "CSV as .txt: rc=$rc"
for col in email EMAIL 3; do
    V -i "$tmp/people.csv" --column "$col" >"$tmp/o.json" 2>"$tmp/e"; rc=$?
    got=$(python3 -c 'import json,sys; print(" ".join(json.loads(l)["email"] + "=" + json.loads(l)["status"] for l in open(sys.argv[1])))' "$tmp/o.json")
    [ $rc -eq 0 ] && [ "$got" = "alice@valid.test=deliverable bob@valid.test=deliverable" ] \
        && ok "verify --column $col: the header skipped, empty cells skipped" \
        || bad "verify --column $col: rc=$rc '$got' $(cat "$tmp/e")"
done
V -i "$tmp/people.csv" --column mail >/dev/null 2>"$tmp/e"; rc=$?
[ $rc -ne 0 ] && grep -q "no column 'mail'" "$tmp/e" && grep -q "'email'" "$tmp/e" \
    && ok "verify --column with an unknown name: says which columns there are" || bad "unknown column: rc=$rc $(cat "$tmp/e")"
printf 'alice@valid.test,x\nbob@valid.test,y\n' >"$tmp/noheader.csv"
V -i "$tmp/noheader.csv" --column 1 >"$tmp/o.json" 2>"$tmp/e"
[ "$(wc -l <"$tmp/o.json")" -eq 2 ] && ok "verify --column 1 without a header row: the first row is an address" \
    || bad "no header: $(cat "$tmp/o.json" "$tmp/e")"
mkdir -p "$tmp/out3"
R "$S/clean.lua" --column 3 "$tmp/people.csv" "$tmp/out3" >"$tmp/e" 2>&1; rc=$?
[ $rc -eq 0 ] && ! grep -qi '^email$' "$tmp/out3"/*.txt && [ "$(cat "$tmp/out3"/*.txt | wc -l)" -eq 2 ] \
    && ok "clean.lua --column 3: the header row is not an address" || bad "clean --column 3: rc=$rc $(cat "$tmp/e" "$tmp/out3"/*.txt)"

# ---- 6. run scripts/clean.lua LIST OUTDIR makes OUTDIR ----
printf 'alice@valid.test\n' >"$tmp/one.txt"
R "$S/clean.lua" "$tmp/one.txt" "$tmp/not/there/yet" >"$tmp/e" 2>&1; rc=$?
[ $rc -eq 0 ] && grep -qx alice@valid.test "$tmp/not/there/yet/deliverable.txt" \
    && ok "clean.lua makes a missing OUTDIR (and its parents)" || bad "clean.lua missing OUTDIR: rc=$rc $(cat "$tmp/e")"
touch "$tmp/afile"
R "$S/clean.lua" "$tmp/one.txt" "$tmp/afile" >"$tmp/e" 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q "afile: Not a directory" "$tmp/e" \
    && ok "clean.lua with OUTDIR a file: says so, exit 1" || bad "clean.lua OUTDIR a file: rc=$rc $(cat "$tmp/e")"

# ---- 3. no DNS server answering: said once, loudly, with the fix; exit non-zero ----
"$VALIDORA" verify --state-dir "$tmp/state" --dns 127.0.0.1:9 alice@valid.test bob@valid.test \
    >"$tmp/o.json" 2>"$tmp/e"; rc=$?
[ $rc -eq 1 ] && [ "$(grep -c "NO DNS SERVER ANSWERS" "$tmp/e")" -eq 1 ] && grep -q -- "--dns" "$tmp/e" \
    && grep -q resolv.conf "$tmp/e" && ok "verify, no DNS server: one loud warning with the fix, exit 1" \
    || bad "verify, no DNS: rc=$rc $(cat "$tmp/e")"
"$VALIDORA" rules which --dns 127.0.0.1:9 alice@valid.test >/dev/null 2>"$tmp/e"; rc=$?
[ $rc -eq 1 ] && grep -q "NO DNS SERVER ANSWERS" "$tmp/e" && ok "rules which, no DNS server: warned, exit 1" \
    || bad "rules which, no DNS: rc=$rc $(cat "$tmp/e")"
V alice@valid.test x@nosuch.test >/dev/null 2>"$tmp/e"; rc=$?
[ $rc -eq 0 ] && ! grep -q "NO DNS" "$tmp/e" && ok "a DNS server that answers (NXDOMAIN too): no warning" \
    || bad "working DNS: rc=$rc $(cat "$tmp/e")"

# ---- 9. set-age of an IP, then a verify without --source-ip ----
"$VALIDORA" ledger set-age 127.0.0.1 365 --state-dir "$tmp/aged" >"$tmp/o" 2>&1
grep -q "counted under 'any'" "$tmp/o" && grep -q "set-age any 365" "$tmp/o" \
    && ok "set-age 127.0.0.1: says runs without --source-ip are 'any'" || bad "set-age note: $(cat "$tmp/o")"
"$VALIDORA" verify --state-dir "$tmp/aged" --dns "$DNS" --mail-from first@validora.test "${PRIV[@]}" \
    alice@valid.test >/dev/null 2>"$tmp/e"
grep -q "'any' is how the ledger counts runs without --source-ip" "$tmp/e" && grep -q "set-age any DAYS" "$tmp/e" \
    && grep -q "127.0.0.1 (365 days)" "$tmp/e" \
    && ok "the new-IP warning for 'any' explains it, names set-age any and the aged 127.0.0.1" \
    || bad "any warning: $(cat "$tmp/e")"

# ---- 13. inputs checked before the state dir is touched ----
"$VALIDORA" verify --state-dir "$tmp/fresh" --dns "$DNS" -i "$tmp/does-not-exist" >/dev/null 2>"$tmp/e"; rc=$?
[ $rc -eq 1 ] && [ ! -e "$tmp/fresh" ] && ! grep -q "new to the ledger" "$tmp/e" && grep -q does-not-exist "$tmp/e" \
    && ok "a missing input file: said first, the state dir untouched" || bad "missing input: rc=$rc $(ls "$tmp") $(cat "$tmp/e")"

checks_done first_contact

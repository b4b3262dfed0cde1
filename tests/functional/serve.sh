#!/usr/bin/env bash
# serve.sh — `validora serve` driven over real HTTP with curl against the test world:
#  - the token: /v1/verify without it (or with a wrong one) is refused 401 with a JSON error,
#    with it works; /healthz needs none;
#  - POST /v1/verify gives the right record for alice@valid.test and nobody@valid.test;
#  - a job of 400 addresses (catchall.test and valid.test), SIGTERM in the middle of it (exit 0,
#    /healthz 503 and POSTs refused while stopping), a torn record appended to its results (as
#    a kill in the middle of a write leaves), a restart that resumes it, a kill -9 in the middle,
#    another restart that finishes it: every address has exactly one record, and the results
#    read the same as JSON Lines and as msgpack; damage before the end of a job's results is
#    refused at the next start (the job fails, saying where; the file is left as it was);
#  - bounds: a body past --max-request-body is 413, a list past --max-job-addresses 413, a job past
#    --max-jobs 429; DELETE removes a job;
#  - /metrics passes `promtool check metrics` (or the prometheus_client parser) and holds the
#    families docs/serve.md lists, with counts that match what was verified.
#  - SIGHUP reloads the rules: /metrics shows the new generation;
#  - --max-connections and --idle-timeout.
# Env: VALIDORA, WORLD_DIR (a started world), VALIDORA_SOURCE_DIR.
set -uo pipefail
: "${VALIDORA:?}" "${WORLD_DIR:?}" "${VALIDORA_SOURCE_DIR:?}"
DNS="127.0.0.1:${VALIDORA_DNS_PORT:-5354}"
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp
pid=
cleanup() { [ -n "$pid" ] && kill -9 $pid 2>/dev/null; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
U="http://127.0.0.1:$port"
printf 'test-token-%s\n' "$RANDOM$RANDOM" >"$tmp/token"
chmod 600 "$tmp/token"
AUTH="Authorization: Bearer $(head -n1 "$tmp/token")"

start() { # start [EXTRA OPTIONS]: serve in the background, until /healthz answers
    "$VALIDORA" serve --allow-private-destinations --listen "127.0.0.1:$port" --token-file "$tmp/token" \
        --state-dir "$tmp/state" --dns "$DNS" --smtp-timeout 3 --mail-from serve@validora.test \
        --no-warmup -j 2 --max-request-body 65536 --max-job-addresses 500 --max-jobs 3 "$@" \
        2>>"$tmp/err" &
    pid=$!
    for _ in $(seq 100); do
        curl -sf "$U/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
api() { curl -s -H "$AUTH" "$@"; }
code() { curl -s -o "$tmp/body" -w '%{http_code}' "$@"; }
progress() { api "$U/v1/jobs/$1" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[sys.argv[1]])' "$2"; }

start && ok "serve starts and /healthz answers" || bad "serve did not start: $(cat "$tmp/err")"
[ "$(curl -s "$U/healthz")" = ok ] && ok "/healthz without the token: ok" || bad "healthz"

# ---- the token
c=$(code -H 'Content-Type: application/json' -d '{"email":"alice@valid.test"}' "$U/v1/verify")
[ "$c" = 401 ] && grep -q '"error":"unauthorized"' "$tmp/body" && ok "no token: 401 with a JSON error" || bad "no token: $c $(cat "$tmp/body")"
c=$(code -H "Authorization: Bearer wrong" -H 'Content-Type: application/json' -d '{"email":"alice@valid.test"}' "$U/v1/verify")
[ "$c" = 401 ] && ok "a wrong token: 401" || bad "wrong token: $c"
c=$(code "$U/metrics")
[ "$c" = 401 ] && ok "/metrics needs the token too" || bad "metrics without token: $c"
grep -q "$(head -n1 "$tmp/token")" "$tmp/err" && bad "the token is in the log" || ok "the token is not logged"

# ---- POST /v1/verify
r=$(api -H 'Content-Type: application/json' -d '{"email":"alice@valid.test"}' "$U/v1/verify")
[[ $r == '{"email":"alice@valid.test"'*'"status":"deliverable","reason":"accepted"'* ]] && ok "verify alice: deliverable/accepted" || bad "alice: $r"
r=$(api -H 'Content-Type: application/json' -d '{"email":"nobody@valid.test"}' "$U/v1/verify")
[[ $r == *'"status":"undeliverable","reason":"mailbox_not_found"'* && $r == *'"code":550'* ]] && ok "verify nobody: undeliverable/mailbox_not_found, 550" || bad "nobody: $r"
c=$(code -H "$AUTH" -H 'Content-Type: application/json' -d '{"email":"a@valid.test","smtp":false}' "$U/v1/verify")
[ "$c" = 400 ] && grep -q bad_request "$tmp/body" && ok "an unknown request key: 400" || bad "unknown key: $c $(cat "$tmp/body")"
c=$(code -H "$AUTH" -H 'Content-Type: application/json' -d 'not json' "$U/v1/verify")
[ "$c" = 400 ] && ok "a body that is not JSON: 400" || bad "not json: $c"

# ---- bounds
head -c 70000 /dev/zero | tr '\0' a >"$tmp/big"
c=$(code -H "$AUTH" -H 'Content-Type: text/plain' --data-binary @"$tmp/big" "$U/v1/jobs")
[ "$c" = 413 ] && ok "a body past --max-request-body: 413" || bad "big body: $c"
seq 1 501 | sed 's/^/x/; s/$/@catchall.test/' >"$tmp/toomany"
c=$(code -H "$AUTH" -H 'Content-Type: text/plain' --data-binary @"$tmp/toomany" "$U/v1/jobs")
[ "$c" = 413 ] && grep -q 'at most 500 addresses' "$tmp/body" && ok "a list past --max-job-addresses: 413" || bad "too many: $c $(cat "$tmp/body")"
c=$(code -H "$AUTH" -H 'Content-Type: application/xml' -d '<a/>' "$U/v1/jobs")
[ "$c" = 415 ] && ok "an unknown Content-Type: 415" || bad "xml: $c"

# ---- a job: SIGTERM in the middle, a torn tail, a restart, kill -9, a restart
{ seq 1 200 | sed 's/^/c/; s/$/@catchall.test/'; seq 1 200 | sed 's/^/v/; s/$/@valid.test/'; } >"$tmp/list"
id=$(api -H 'Content-Type: text/plain' --data-binary @"$tmp/list" "$U/v1/jobs" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
[[ $id =~ ^[0-9a-f]{32}$ ]] && ok "POST /v1/jobs: an id" || bad "job id: '$id'"
[ "$(progress "$id" total)" = 400 ] && ok "the job's total is 400" || bad "total: $(api "$U/v1/jobs/$id")"
for _ in $(seq 300); do
    d=$(progress "$id" done)
    [ "$d" -ge 40 ] && break
    sleep 0.1
done
# a tarpit holds one verification in flight (3 s): the stop must wait for it
api -H 'Content-Type: application/json' -d '{"email":"x@tarpit.test"}' "$U/v1/verify" >"$tmp/tarpit" &
cpid=$!
sleep 0.3
kill -TERM $pid
sleep 0.2
c=$(code "$U/healthz")
c2=$(code -H "$AUTH" -H 'Content-Type: application/json' -d '{"email":"alice@valid.test"}' "$U/v1/verify")
wait $pid
rc=$?
pid=
wait $cpid
[ $rc -eq 0 ] && ok "SIGTERM: exit 0" || bad "SIGTERM exit $rc: $(tail -5 "$tmp/err")"
[ "$c" = 503 ] && ok "/healthz while stopping: 503" || bad "healthz stopping: $c"
[ "$c2" = 503 ] && grep -q '"error":"stopping"' "$tmp/body" && ok "a POST while stopping: 503" || bad "post stopping: $c2"
[[ $(cat "$tmp/tarpit") == '{"email":"x@tarpit.test"'*'"status":"unknown"'* ]] && ok "the verification in flight at SIGTERM got its record" || bad "tarpit: $(cat "$tmp/tarpit")"
res="$tmp/state/serve/jobs/$id/results.mpk"
n1=$("$VALIDORA" cat "$res" 2>/dev/null | wc -l)
{ [ "$n1" -ge 40 ] && [ "$n1" -lt 400 ]; } && ok "stopped in the middle: $n1 of 400 records" || bad "records after SIGTERM: $n1"
printf '\x8f\xa5email\xb0torn@valid.te' >>"$res" # a map of 15 cut in its first value

start || bad "restart after SIGTERM: $(tail -5 "$tmp/err")"
grep -q 'truncated record' "$tmp/err" && ok "the torn record is found and cut" || bad "torn tail not reported: $(tail -5 "$tmp/err")"
for _ in $(seq 300); do
    d=$(progress "$id" done)
    [ "$d" -ge $((n1 + 40)) ] && break
    sleep 0.1
done
kill -9 $pid
wait $pid 2>/dev/null
pid=
n2=$("$VALIDORA" cat "$res" 2>/dev/null | wc -l)
[ "$n2" -gt "$n1" ] && ok "resumed after the restart: $n2 records" || bad "no progress after restart: $n1 -> $n2"
start || bad "restart after kill -9: $(tail -5 "$tmp/err")"
for _ in $(seq 600); do
    [ "$(progress "$id" state)" = done ] && break
    sleep 0.1
done
[ "$(progress "$id" state)" = done ] && ok "the job finishes" || bad "not done: $(api "$U/v1/jobs/$id")"
api "$U/v1/jobs/$id/results" >"$tmp/results.jsonl"
python3 - "$tmp/list" "$tmp/results.jsonl" >"$tmp/check" 2>&1 <<'PY'
import json, sys, collections
want = [l.strip() for l in open(sys.argv[1]) if l.strip()]
got = collections.Counter(json.loads(l)["email"] for l in open(sys.argv[2]))
bad = [a for a in want if got[a] != 1] + [a for a in got if a not in set(want)]
print("missing or repeated:", bad[:10]) if bad else print("ok", len(got))
recs = [json.loads(l) for l in open(sys.argv[2])]
wrong = [r for r in recs if (r["email"].endswith("@catchall.test") and r["reason"] != "catch_all")
         or (r["email"].endswith("@valid.test") and r["reason"] != "mailbox_not_found")]
print("wrong verdicts:", wrong[:3]) if wrong else print("verdicts ok")
PY
grep -q '^ok 400$' "$tmp/check" && ok "every address has exactly one record" || bad "records: $(cat "$tmp/check")"
grep -q '^verdicts ok$' "$tmp/check" && ok "catchall.test: catch_all, unknown valid.test users: mailbox_not_found" || bad "verdicts: $(cat "$tmp/check")"
counts=$(api "$U/v1/jobs/$id" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["done"], d["counts"]["risky"], d["counts"]["undeliverable"])')
[ "$counts" = "400 200 200" ] && ok "progress: done 400, 200 risky, 200 undeliverable" || bad "progress counts: $counts"
api -H 'Accept: application/msgpack' "$U/v1/jobs/$id/results" >"$tmp/results.mpk"
"$VALIDORA" cat "$tmp/results.mpk" >"$tmp/results2.jsonl" &&
    cmp -s "$tmp/results.jsonl" "$tmp/results2.jsonl" && ok "results as msgpack (Accept) read the same" || bad "msgpack results differ"

# ---- more jobs: JSON and CSV lists, --max-jobs, DELETE
j2=$(api -H 'Content-Type: application/json' -d '["alice@valid.test","bob@valid.test"]' "$U/v1/jobs" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
j3=$(printf 'name,Email\nAlice,"alice@valid.test"\n"Info, the",info@valid.test\n' |
    api -H 'Content-Type: text/csv' --data-binary @- "$U/v1/jobs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
[ "$(progress "$j2" total)" = 2 ] && [ "$(progress "$j3" total)" = 2 ] && ok "a JSON array and a CSV column as lists" || bad "json/csv lists: $j2 $j3"
c=$(code -H "$AUTH" -H 'Content-Type: application/json' -d '["a@valid.test"]' "$U/v1/jobs")
[ "$c" = 429 ] && grep -q too_many_jobs "$tmp/body" && ok "a job past --max-jobs: 429" || bad "max jobs: $c $(cat "$tmp/body")"
for _ in $(seq 100); do [ "$(progress "$j3" state)" = done ] && break; sleep 0.1; done
api "$U/v1/jobs/$j3/results" | grep -q '"email":"info@valid.test".*"role":true' && ok "the CSV column's addresses verified" || bad "csv results: $(api "$U/v1/jobs/$j3/results")"
c=$(code -H "$AUTH" -X DELETE "$U/v1/jobs/$j2")
c2=$(code -H "$AUTH" "$U/v1/jobs/$j2")
[ "$c" = 204 ] && [ "$c2" = 404 ] && [ ! -e "$tmp/state/serve/jobs/$j2" ] && ok "DELETE removes the job and its files" || bad "delete: $c $c2"

# ---- /metrics
api "$U/metrics" >"$tmp/metrics"
if command -v promtool >/dev/null; then
    out=$(promtool check metrics <"$tmp/metrics" 2>&1) && ok "promtool check metrics: clean" || bad "promtool: $out"
elif python3 -c 'import prometheus_client' 2>/dev/null; then
    out=$(python3 -c 'import sys; from prometheus_client.parser import text_string_to_metric_families as p; list(p(sys.stdin.read()))' <"$tmp/metrics" 2>&1) &&
        ok "prometheus_client parses /metrics" || bad "parser: $out"
else
    bad "neither promtool nor prometheus_client is installed (contrib/deps.sh --test)"
fi
for fam in validora_verifications_total validora_smtp_replies_total validora_throttle_waits_total \
    validora_throttle_parked validora_breakers_open validora_budget_left validora_rules_info \
    validora_dns_cache_hits_total validora_verification_duration_seconds; do
    grep -q "^# TYPE $fam " "$tmp/metrics" || bad "no family $fam"
done
ok "the families are there"
# this process verified alice, bob (the JSON job) and alice, info (the CSV job): 4 accepted
value() { awk -v k="$1" 'index($0, k " ") == 1 { print $NF }' "$tmp/metrics"; } # value SERIES
n=$(grep '^validora_verifications_total{status="deliverable",reason="accepted",provider="' "$tmp/metrics" | awk '{ s += $NF } END { print s + 0 }')
[ "$n" -ge 4 ] && ok "verifications by status, reason and provider counted ($n accepted)" || bad "verifications: $(grep verifications_total "$tmp/metrics")"
n=$(value 'validora_smtp_replies_total{class="2xx"}')
[ "${n:-0}" -ge 4 ] && ok "SMTP replies by class counted ($n 2xx)" || bad "smtp classes: $(grep smtp_replies "$tmp/metrics")"
grep -q '^validora_rules_info{generation="[0-9a-f]\{12\}",id="1"} 1$' "$tmp/metrics" && ok "the rule generation as a label" || bad "rules_info: $(grep rules_info "$tmp/metrics")"
h=$(grep '^validora_verification_duration_seconds_count ' "$tmp/metrics" | cut -d' ' -f2)
[ "${h:-0}" -ge 1 ] && ok "the duration histogram counts ($h)" || bad "histogram count: $h"

kill -TERM $pid
wait $pid
pid=

# damage before the end of a job's results (not a torn tail) is refused at the next start: the
# job fails saying where, its file is left as it was, the records before the damage still read
r3="$tmp/state/serve/jobs/$j3/results.mpk"
good3=$(stat -c %s "$r3")
cp "$r3" "$tmp/r3.good"
{ printf '\xc1'; cat "$tmp/r3.good"; } >>"$r3"
cp "$r3" "$tmp/r3.damaged"

# with the warm-up budget on, /metrics tells what is left of it for the source IP; SIGHUP
# reloads the rules (a rule of our own, changed: generation 2)
mkdir "$tmp/live"
rule() { printf 'return {\n  name = "hup",\n  match = { domain = { "hup.test" } },\n  probe = function(job) return job:unknown("%s") end,\n}\n' "$1" >"$tmp/live/hup.lua"; }
rule v1
start --warmup --no-watch --rules "$VALIDORA_SOURCE_DIR/rules" --rules "$tmp/live" || bad "restart with --warmup: $(tail -5 "$tmp/err")"
j3p=$(api "$U/v1/jobs/$j3")
[[ $j3p == *'"state":"failed"'* && $j3p == *"damaged, not just a torn last record: invalid msgpack at byte $good3"* &&
    $j3p == *"head -c $good3)"* ]] && ok "damage before the end of a job's results: the job fails, saying where" ||
    bad "damaged results: $j3p"
grep -q "job $j3 failed: results.mpk: damaged" "$tmp/err" && ok "the refused job is in the log" || bad "log: $(tail -5 "$tmp/err")"
cmp -s "$r3" "$tmp/r3.damaged" && ok "the damaged results are left as they were" || bad "damaged results.mpk changed"
[ "$(api "$U/v1/jobs/$j3/results" | wc -l)" = 2 ] && ok "the records before the damage still read" || bad "results of the failed job: $(api "$U/v1/jobs/$j3/results")"
api "$U/metrics" >"$tmp/metrics"
grep -q '^validora_budget_left{source_ip="any"} [0-9][0-9]*$' "$tmp/metrics" && grep -q '^validora_budget{source_ip="any"} [1-9]' "$tmp/metrics" &&
    ok "budget left per source IP" || bad "budget: $(grep budget "$tmp/metrics")"
g1=$(grep '^validora_rules_info' "$tmp/metrics")
rule v2
kill -HUP $pid
for _ in $(seq 50); do
    g2=$(api "$U/metrics" | grep '^validora_rules_info')
    [[ $g2 == *'id="2"'* ]] && break
    sleep 0.1
done
[[ $g1 == *'id="1"'* && $g2 == *'id="2"'* && ${g1%%,*} != "${g2%%,*}" ]] && ok "SIGHUP: a new rule generation" || bad "reload: '$g1' -> '$g2'"
kill -TERM $pid
wait $pid
pid=

# --max-connections: a request on one connection too many gets 503 and is closed; a closed
# connection frees its place, and so does --idle-timeout
start --max-connections 2 --idle-timeout 2 || bad "restart with --max-connections: $(tail -5 "$tmp/err")"
out=$(python3 - "$port" "$AUTH" <<'PY'
import http.client, sys, time
port, auth = int(sys.argv[1]), sys.argv[2].split(": ", 1)[1]
def get(c, path="/healthz"):
    c.request("GET", path, headers={"Authorization": auth})
    r = c.getresponse()
    return r.status, r.read().decode()
cs = [http.client.HTTPConnection("127.0.0.1", port) for _ in range(3)]
print("open", *[get(c)[0] for c in cs])
cs[0].close(); cs[2].close(); time.sleep(0.3)
print("after a close", get(http.client.HTTPConnection("127.0.0.1", port))[0])
time.sleep(2.5)
st, body = get(http.client.HTTPConnection("127.0.0.1", port), "/metrics")
print("after the idle timeout", st, [l for l in body.splitlines() if l.startswith("validora_http_connections ")])
PY
)
[[ $out == *"open 200 200 503"* ]] && ok "one connection too many: 503" || bad "max connections: $out"
[[ $out == *"after a close 200"* ]] && ok "a closed connection frees its place" || bad "after close: $out"
[[ $out == *"after the idle timeout 200 ['validora_http_connections 1']"* ]] && ok "idle connections closed by --idle-timeout" || bad "idle: $out"
kill -TERM $pid
wait $pid
pid=
checks_done serve

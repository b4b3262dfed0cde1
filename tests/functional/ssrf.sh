#!/usr/bin/env bash
# ssrf.sh — probes stay outside the user's network (issue 16, item 4): without
# --allow-private-destinations, verify, run and serve refuse loopback, private and other
# special-purpose destinations, checked on the address after DNS (the test world's MX hosts are
# names that resolve to 127.0.0.x) and on address literals: status unknown, reason
# forbidden_destination, and nothing sent (no SMTP session begins: no transcript). With the
# flag, the same addresses are verified.
# Env: VALIDORA, WORLD_DIR (a started world).
set -uo pipefail
: "${VALIDORA:?}" "${WORLD_DIR:?}"
DNS="127.0.0.1:${VALIDORA_DNS_PORT:-5354}"
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp
pid=
cleanup() { [ -n "$pid" ] && kill -9 $pid 2>/dev/null; }
mkdir "$tmp/tr"
common=(--state-dir "$tmp/st" --dns "$DNS" --smtp-timeout 3 --mail-from ssrf@validora.test --no-warmup)

reason_of() { # FILE EMAIL: the reason of EMAIL's record in the JSON lines of FILE
    python3 -c 'import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["email"] == sys.argv[2]: print(r["status"] + "/" + r["reason"])' "$1" "$2"
}

# verify: a name whose MX resolves to loopback, literals of every kind of special range
"$VALIDORA" verify "${common[@]}" --format json --transcript "$tmp/tr" alice@valid.test 'a@[127.0.0.1]' \
    'a@[10.0.0.5]' 'a@[169.254.169.254]' 'a@[IPv6:::1]' 'a@[IPv6:::ffff:127.0.0.1]' >"$tmp/v.json" 2>"$tmp/v.err"
for a in alice@valid.test 'a@[127.0.0.1]' 'a@[10.0.0.5]' 'a@[169.254.169.254]' 'a@[IPv6:::1]' 'a@[IPv6:::ffff:127.0.0.1]'; do
    got=$(reason_of "$tmp/v.json" "$a")
    [ "$got" = unknown/forbidden_destination ] && ok "verify $a: unknown/forbidden_destination" || bad "verify $a: '$got' $(cat "$tmp/v.err")"
done
grep -q '"detail":"mx.valid.test is 127.0.0.' "$tmp/v.json" && ok "the detail names the host and its address" || bad "detail: $(head -c 400 "$tmp/v.json")"
[ -z "$(ls -A "$tmp/tr")" ] && ok "no SMTP session began (no transcript)" || bad "transcripts: $(ls "$tmp/tr")"

# with the flag: verified as before
"$VALIDORA" verify --allow-private-destinations "${common[@]}" --format json alice@valid.test >"$tmp/a.json" 2>"$tmp/a.err"
[ "$(reason_of "$tmp/a.json" alice@valid.test)" = deliverable/accepted ] && ok "--allow-private-destinations: alice@valid.test deliverable" ||
    bad "allowed: $(cat "$tmp/a.json" "$tmp/a.err")"

# run: the same engine, the same default
cat >"$tmp/s.lua" <<'LUA'
local r = validora.verify(arg[1])
print(r.status .. "/" .. r.reason)
LUA
got=$("$VALIDORA" run "${common[@]}" "$tmp/s.lua" alice@valid.test 2>"$tmp/r.err")
[ "$got" = unknown/forbidden_destination ] && ok "run: unknown/forbidden_destination" || bad "run: '$got' $(cat "$tmp/r.err")"

# serve: the same
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$VALIDORA" serve --listen "127.0.0.1:$port" "${common[@]}" 2>"$tmp/s.err" &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
out=$(curl -s -H 'Content-Type: application/json' -d '{"email":"a@[192.168.1.1]"}' "http://127.0.0.1:$port/v1/verify")
[[ $out == *'"status":"unknown"'*'"reason":"forbidden_destination"'* ]] && ok "serve: a private literal refused" || bad "serve literal: $out"
out=$(curl -s -H 'Content-Type: application/json' -d '{"email":"alice@valid.test"}' "http://127.0.0.1:$port/v1/verify")
[[ $out == *'"reason":"forbidden_destination"'* ]] && ok "serve: an MX on loopback refused" || bad "serve MX: $out"
kill $pid
wait $pid 2>/dev/null
pid=

checks_done ssrf

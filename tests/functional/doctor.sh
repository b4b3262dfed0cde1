#!/usr/bin/env bash
# doctor.sh — `validora doctor` against the world (docs/doctor.md): every check passes for the
# well set-up sender of sender.test; a DNSBL-listed IP, a missing PTR, an SPF that does not
# authorise the IP, a free-mail MAIL FROM and a bare HELO each fail with a fix; Spamhaus-style
# 127.255.255.254 is an error, not a listing; SERVFAIL is "could not tell"; no --test-host is
# a skip; --format json has every check with name/ok/detail/fix.
#
# Runs against an already started world (ctest fixture `world`): unbound on
# 127.0.0.1:${VALIDORA_DNS_PORT:-5354}, Postfix on 127.0.0.10:25. Traffic only to 127.0.0.0/8.
set -uo pipefail

VALIDORA=${VALIDORA:?VALIDORA must name the validora binary}
PORT=${VALIDORA_DNS_PORT:-5354}
DNS=(--dns "127.0.0.1:$PORT" --dns-timeout 1)
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp STATE
cleanup() { kill $(jobs -p) 2>/dev/null; }
GOOD=(--helo mta.sender.test --mail-from verify@sender.test --source-ip 127.0.0.1 "${DNS[@]}"
      --dnsbl dnsbl.test --test-host 127.0.0.10:25 --state-dir "$STATE")

# run NAME WANT_RC ARGS...: runs doctor, prints its output, checks the exit status.
run() {
    local name=$1 want=$2
    shift 2
    out=$(timeout 120 "$VALIDORA" doctor "$@")
    rc=$?
    echo "---- $name (exit $rc)"
    echo "$out"
    [ "$rc" -eq "$want" ] && ok "$name: exit $rc" || bad "$name: exit $rc, want $want"
}

# has NAME REGEX: the last output has a line matching REGEX.
has() {
    grep -Eq -- "$2" <<<"$out" && ok "$1: /$2/" || bad "$1: no line matching /$2/"
}
hasnt() {
    grep -Eq -- "$2" <<<"$out" && bad "$1: a line matches /$2/" || ok "$1: no /$2/"
}

run all-pass 0 "${GOOD[@]}" --dkim-selector mail
for c in helo-fqdn helo-resolves fcrdns spf dmarc dkim own-domain port-25 dnsbl:dnsbl.test; do
    has all-pass "^ok +$c "
done
has all-pass '^ok +port-25 .*220'
has all-pass '^ok +instance-lock '
hasnt all-pass '^FAIL'

# another instance holds the source IP's lock: the check fails and names it
"$VALIDORA" ledger lock 127.0.0.1 --state-dir "$STATE" -- sleep 30 >/dev/null 2>&1 &
for _ in $(seq 1 50); do [ -e "$STATE/instance-127.0.0.1.lock" ] && break; sleep 0.1; done
sleep 0.3
run locked 1 "${GOOD[@]}"
has locked '^FAIL +instance-lock .*another validora'
kill %1 2>/dev/null; wait 2>/dev/null

run listed 1 --helo mta.sender.test --mail-from verify@sender.test --source-ip 127.0.0.66 \
    "${DNS[@]}" --dnsbl dnsbl.test --test-host 127.0.0.10:25
has listed '^FAIL +dnsbl:dnsbl.test .*127\.0\.0\.66 is listed on dnsbl\.test'
has listed '^FAIL +fcrdns .*127\.0\.0\.66 has no PTR'
has listed '^FAIL +spf .*does not authorise 127\.0\.0\.66'
has listed '^FAIL +helo-resolves '
has listed '^ +fix: .*delisting'

run spf-elsewhere 1 --helo mta.sender.test --mail-from verify@elsewhere.sender.test \
    --source-ip 127.0.0.1 "${DNS[@]}" --dnsbl dnsbl.test
has spf-elsewhere '^FAIL +spf .*elsewhere\.sender\.test.*does not authorise 127\.0\.0\.1 \(fail\)'
has spf-elsewhere '^ +fix: add ip4:127\.0\.0\.1 to elsewhere\.sender\.test'
has spf-elsewhere '^ok +dmarc .*_dmarc\.sender\.test'
has spf-elsewhere '^skip +port-25 .*--test-host'
hasnt spf-elsewhere '^ok +port-25'

run gmail 1 --helo mta.sender.test --mail-from verify@gmail.com --source-ip 127.0.0.1 \
    "${DNS[@]}" --dnsbl dnsbl.test
has gmail '^FAIL +own-domain .*gmail\.com is a free-mail'
has gmail '^ +fix: use a MAIL FROM and a HELO name at a domain you own'
# issue 17: never advise publishing records at a domain the user does not own
hasnt gmail 'publish a TXT record at (_dmarc\.)?gmail\.com'
has gmail '^ +fix: gmail\.com is not yours to publish records for .*--mail-from verify@your-domain'

run bare-helo 1 --helo mta --mail-from verify@sender.test --source-ip 127.0.0.1 "${DNS[@]}" \
    --dnsbl dnsbl.test
has bare-helo "^FAIL +helo-fqdn .*'mta' is a bare host name"
has bare-helo '^ +fix: set --helo'
run localhost-helo 1 --helo localhost.localdomain --mail-from verify@sender.test \
    --source-ip 127.0.0.1 "${DNS[@]}" --dnsbl dnsbl.test
has localhost-helo '^FAIL +helo-fqdn .*localdomain'
run ip-helo 1 --helo 127.0.0.1 --mail-from verify@sender.test --source-ip 127.0.0.1 "${DNS[@]}" \
    --dnsbl dnsbl.test
has ip-helo '^FAIL +helo-fqdn .*an IP address'

run spamhaus-like 1 "${GOOD[@]}" --dnsbl spamhaus-like.test --dnsbl servfail.test
has spamhaus-like '^FAIL +dnsbl:spamhaus-like\.test +could not tell: .*127\.255\.255\.254.*not a listing'
hasnt spamhaus-like 'is listed on spamhaus-like'
has spamhaus-like '^FAIL +dnsbl:servfail\.test +could not tell: .*servfail'
has spamhaus-like '^ok +dnsbl:dnsbl\.test '

run dkim-revoked 1 "${GOOD[@]}" --dkim-selector old
has dkim-revoked '^FAIL +dkim .*revoked'
run dkim-missing 1 "${GOOD[@]}" --dkim-selector nosuch
has dkim-missing '^FAIL +dkim .*no DKIM key'

# port 25 to a host that refuses (127.0.0.13: nothing listens) fails with a fix
run refused 1 "${GOOD[@]}" --test-host 127.0.0.13
has refused '^FAIL +port-25 .*could not connect to 127\.0\.0\.13:25'

# no --source-ip: the address the kernel uses to reach the test host (127.0.0.1 on loopback)
run default-ip 0 --helo mta.sender.test --mail-from verify@sender.test "${DNS[@]}" \
    --dnsbl dnsbl.test --test-host 127.0.0.10:25
has default-ip '^ok +fcrdns .*PTR 127\.0\.0\.1'
run no-ip 1 --helo mta.sender.test --mail-from verify@sender.test "${DNS[@]}" --dnsbl dnsbl.test
has no-ip '^FAIL +dnsbl:dnsbl\.test +could not tell: .*--source-ip'

run usage 2 --source-ip not-an-ip "${DNS[@]}"
run usage-format 2 --format yaml
run help 0 --help
has help 'skipped checks do not fail'

run json 0 "${GOOD[@]}" --format json
OUT=$out python3 - <<'EOF' && ok "json: every check as documented" || bad "json: the checks above"
import json, os, sys
d = json.loads(os.environ["OUT"])
names = [c["name"] for c in d["checks"]]
want = ["helo-fqdn", "helo-resolves", "fcrdns", "spf", "dmarc", "dkim", "own-domain", "port-25",
        "dnsbl:dnsbl.test", "instance-lock"]
bad = 0
if names != want:
    print(f"FAIL json: checks {names}, want {want}"); bad += 1
for c in d["checks"]:
    if set(c) < {"name", "ok", "detail", "fix"}:
        print(f"FAIL json: {c} lacks a field"); bad += 1
    if c["name"] in ("dkim",) and c["ok"] is not None:
        print(f"FAIL json: skipped {c['name']} has ok={c['ok']!r}, want null"); bad += 1
    elif c["name"] not in ("dkim",) and c["ok"] is not True:
        print(f"FAIL json: {c['name']} ok={c['ok']!r}"); bad += 1
    if c["ok"] is True and c["fix"] is not None:
        print(f"FAIL json: passed {c['name']} has a fix"); bad += 1
sys.exit(1 if bad else 0)
EOF
run json-fail 1 --helo mta --mail-from verify@gmail.com --source-ip 127.0.0.66 "${DNS[@]}" \
    --dnsbl dnsbl.test --format json
OUT=$out python3 - <<'EOF' && ok "json-fail: every failed check with a fix" || bad "json-fail: the checks above"
import json, os, sys
d = json.loads(os.environ["OUT"])
bad = 0
for c in d["checks"]:
    if c["ok"] is False and not c["fix"]:
        print(f"FAIL json-fail: failed {c['name']} has no fix"); bad += 1
byname = {c["name"]: c for c in d["checks"]}
for n in ("helo-fqdn", "own-domain", "dnsbl:dnsbl.test", "fcrdns"):
    if byname[n]["ok"] is not False:
        print(f"FAIL json-fail: {n} ok={byname[n]['ok']!r}, want false"); bad += 1
sys.exit(1 if bad else 0)
EOF

checks_done doctor

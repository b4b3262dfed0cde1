#!/usr/bin/env bash
# dns_cli.sh — the CLI's DNS verdicts against the world's unbound: null MX, NXDOMAIN, a name
# with no mail server, SERVFAIL, and a normal domain that must get past DNS.
#
# Runs against an already started world (ctest fixture `world`): unbound on
# 127.0.0.1:${VALIDORA_DNS_PORT:-5354}. VALIDORA names the CLI binary. Plan: docs/world.md.
set -uo pipefail

VALIDORA=${VALIDORA:?VALIDORA must name the validora binary}
PORT=${VALIDORA_DNS_PORT:-5354}
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp state # the ledger and the instance lock of this run, never the machine's

out=$(timeout 120 "$VALIDORA" verify --allow-private-destinations --state-dir "$state" --dns "127.0.0.1:$PORT" --format json \
    x@nullmx.test x@nosuch.test x@nomx.test x@servfail.test alice@valid.test)
rc=$?
echo "$out"
[ $rc -eq 0 ] || echo "validora verify exited $rc"

OUT=$out python3 - <<'EOF'
import json, os, sys

want = {
    "x@nullmx.test": ("undeliverable", "null_mx"),
    "x@nosuch.test": ("undeliverable", "domain_not_found"),
    "x@nomx.test": ("undeliverable", "no_mail_server"),
    "x@servfail.test": ("unknown", "dns_error"),
}
dns_reasons = {"null_mx", "domain_not_found", "no_mail_server", "dns_error"}
seen, fail = {}, 0
for line in os.environ["OUT"].splitlines():
    if not line.strip():
        continue
    try:
        rec = json.loads(line)
    except ValueError as e:
        print(f"FAIL not JSON ({e}): {line!r}")
        fail += 1
        continue
    seen[rec.get("email")] = rec

for email, (status, reason) in want.items():
    rec = seen.get(email)
    if rec is None:
        print(f"FAIL {email}: no record")
        fail += 1
    elif (rec.get("status"), rec.get("reason")) != (status, reason):
        print(f"FAIL {email}: {rec.get('status')}/{rec.get('reason')}, want {status}/{reason}")
        fail += 1
    elif rec.get("domain") != email.split("@")[1]:
        print(f"FAIL {email}: domain {rec.get('domain')!r}")
        fail += 1
    else:
        print(f"ok   {email}: {status}/{reason}")

# valid.test resolves: whatever SMTP says, the verdict must not be a DNS one.
rec = seen.get("alice@valid.test")
if rec is None:
    print("FAIL alice@valid.test: no record")
    fail += 1
elif rec.get("reason") in dns_reasons:
    print(f"FAIL alice@valid.test: DNS verdict {rec.get('status')}/{rec.get('reason')}")
    fail += 1
else:
    print(f"ok   alice@valid.test: past DNS ({rec.get('status')}/{rec.get('reason')})")

if len(seen) != 5:
    print(f"FAIL {len(seen)} records for 5 addresses")
    fail += 1
print(f"{fail} failed")
sys.exit(1 if fail else 0)
EOF

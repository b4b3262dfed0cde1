#!/usr/bin/env bash
# breaker.sh — a block opens the provider's circuit breaker (docs/reputation.md): the
# blocked server's later addresses are given back as unknown/deferred without a probe, other
# servers go on, the breaker is in the ledger, and a restarted run finds it still open.
# blocked.test (127.0.0.14) refuses every RCPT with a DNSBL wording (docs/world.md).
# Env: VALIDORA, WORLD_DIR (a started world).
set -uo pipefail
: "${VALIDORA:?}" "${WORLD_DIR:?}"
DNS="127.0.0.1:${VALIDORA_DNS_PORT:-5354}"
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp
state="$tmp/state"
printf '%s\n' a@blocked.test b@blocked.test c@blocked.test alice@valid.test >"$tmp/list"

# one address at a time, so the block is seen before the next blocked.test address goes
timeout 60 "$VALIDORA" verify --allow-private-destinations --state-dir "$state" --no-warmup --dns "$DNS" --format json \
  --concurrency 1 --mail-from breaker@validora.test -i "$tmp/list" >"$tmp/out1" 2>"$tmp/err1"
rc=$?
[ $rc -eq 0 ] && ok "first run exits 0" || bad "first run exit $rc: $(tail -2 "$tmp/err1")"

python3 - "$tmp/out1" <<'PY' && ok "first run: the block, then deferred without a probe, other servers unaffected" || bad "first run records"
import json, sys
recs = {r["email"]: r for r in map(json.loads, open(sys.argv[1]))}
want = {"a@blocked.test": ("unknown", "blocked"), "b@blocked.test": ("unknown", "deferred"),
        "c@blocked.test": ("unknown", "deferred"), "alice@valid.test": ("deliverable", "accepted")}
got = {e: (r["status"], r["reason"]) for e, r in recs.items()}
if got != want:
    sys.exit("got %s" % got)
for e in ("b@blocked.test", "c@blocked.test"):
    if "smtp" in recs[e]:
        sys.exit("%s has an SMTP reply: it was probed" % e)
PY
grep -q 'blocked us.*circuit breaker open' "$tmp/err1" && ok "the block is logged with the breaker" \
  || bad "no breaker line in the log: $(cat "$tmp/err1")"
n=$(grep -c 'RCPT from .*b@blocked.test\|RCPT from .*c@blocked.test' "$WORLD_DIR/postfix/maillog" 2>/dev/null || true)
[ "${n:-0}" -eq 0 ] && ok "the maillog has no RCPT for the deferred addresses" || bad "$n RCPTs for deferred addresses in the maillog"

"$VALIDORA" ledger show --state-dir "$state" --format json >"$tmp/show" 2>"$tmp/show.err"
python3 - "$tmp/show" <<'PY' && ok "ledger show lists the open breaker" || bad "ledger show: $(cat "$tmp/show")"
import json, sys
doc = json.load(open(sys.argv[1]))
text = json.dumps(doc)
# the breaker is the server's, keyed by the address the server judges us by (issue 15)
if not any(b["key"].startswith("p:mx 127.") and "blocked using" in b["reason"] for b in doc["breakers"]):
    sys.exit(1)
PY

# a restarted run: the breaker is still open, nothing is probed
printf '%s\n' d@blocked.test >"$tmp/list2"
timeout 60 "$VALIDORA" verify --allow-private-destinations --state-dir "$state" --no-warmup --dns "$DNS" --format json \
  --mail-from breaker@validora.test -i "$tmp/list2" >"$tmp/out2" 2>"$tmp/err2"
python3 - "$tmp/out2" <<'PY' && ok "restarted run: the breaker is still open (deferred, not probed)" || bad "restarted run: $(cat "$tmp/out2")"
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
if len(r) != 1 or (r[0]["status"], r[0]["reason"]) != ("unknown", "deferred") or "smtp" in r[0]:
    sys.exit(1)
PY
grep -q 'still open from an earlier run' "$tmp/err2" && ok "the restarted run says the breaker is from an earlier run" \
  || bad "no 'earlier run' line: $(cat "$tmp/err2")"

# a fresh state dir knows of no breaker: the first address is probed again
timeout 60 "$VALIDORA" verify --allow-private-destinations --state-dir "$tmp/state2" --no-warmup --dns "$DNS" --format json \
  --mail-from breaker@validora.test -i "$tmp/list2" >"$tmp/out3" 2>"$tmp/err3"
grep -q '"reason":"blocked"' "$tmp/out3" && ok "another state dir: probed (and blocked) again" \
  || bad "another state dir: $(cat "$tmp/out3")"
checks_done breaker

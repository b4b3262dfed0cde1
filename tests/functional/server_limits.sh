#!/usr/bin/env bash
# server_limits.sh — a real server's limits do not turn into wrong verdicts: 200 unknown
# mailboxes at one domain go through kept sessions, Postfix cuts each session after its
# hard error limit (421 and disconnect), and every address must still come out
# undeliverable/mailbox_not_found — none "busy", "closed" or lost.
# Env: VALIDORA, WORLD_DIR (a started world).
set -uo pipefail
: "${VALIDORA:?}" "${WORLD_DIR:?}"
DNS="127.0.0.1:${VALIDORA_DNS_PORT:-5354}"
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp
seq 1 200 | sed 's/^/nobody/; s/$/@valid.test/' >"$tmp/list"
echo alice@valid.test >>"$tmp/list"
for per_mx in 1 4; do
  # 201 addresses over SMTP: more than a new IP's first-day budget, hence --no-warmup
  timeout 120 "$VALIDORA" verify --allow-private-destinations --state-dir "$tmp/state" --no-warmup --dns "$DNS" --format json \
    --smtp-timeout 5 --per-mx-sessions $per_mx --mail-from limits@validora.test -i "$tmp/list" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  if python3 - "$tmp/out" <<'PY'
import json, sys, collections
recs = [json.loads(l) for l in open(sys.argv[1])]
c = collections.Counter((r["status"], r["reason"]) for r in recs)
want = {("undeliverable", "mailbox_not_found"): 200, ("deliverable", "accepted"): 1}
if dict(c) != want:
    sys.exit("got %s" % dict(c))
PY
  then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL per-mx-sessions=$per_mx (exit $rc)"; fi
done
checks_done server_limits

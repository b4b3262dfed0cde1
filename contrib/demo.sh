#!/usr/bin/env bash
# The demo: installs what is missing, builds Validora, starts the test world (DNS, Postfix,
# postgrey and a tarpit on loopback; see docs/world.md), verifies contrib/sample-list.txt
# through it and prints the results as a table. Needs root (port 25 on 127.0.0.x).
set -euo pipefail
export VALIDORA_CONFIG="" # the machine's /etc/validora/validora.lua must not change what we measure or test
cd "$(dirname "$0")/.."
top=$(pwd)
bash contrib/deps.sh --test
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$top/build" -j2 --target validora-cli >/dev/null
world="$top/build/demo-world"
trap 'tests/world/world.sh stop "$world" >/dev/null 2>&1 || true' EXIT
tests/world/world.sh start "$world" >/dev/null
out="$top/build/demo-results.mpk"
echo "Verifying contrib/sample-list.txt against the demo world (greylisted addresses take ~10 s)..."
# The demo's own ledger and instance lock (the list is far below a new IP's first-day budget),
# so the demo never counts against the machine's real source IP in /var/lib/validora. Both
# start afresh on every run, as the world does, and --force overwrites the last run's results:
# the demo can be run again and again (issue 17).
rm -rf "$top/build/demo-state"
"$top/build/validora" verify --allow-private-destinations --state-dir "$top/build/demo-state" --dns 127.0.0.1:${VALIDORA_DNS_PORT:-5354} --smtp-timeout 5 \
  --greylist-delay 6 -i contrib/sample-list.txt -o "$out" --force
"$top/build/validora" cat "$out" | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
cols = ["email", "status", "reason", "mx", "smtp"]
def cell(r, c):
    v = r.get(c, "")
    if c == "smtp" and v: v = "%s %s" % (v.get("code", ""), v.get("enhanced", ""))
    return str(v)
w = {c: max([len(c)] + [len(cell(r, c)) for r in rows]) for c in cols}
print("  ".join(c.upper().ljust(w[c]) for c in cols))
for r in rows: print("  ".join(cell(r, c).ljust(w[c]) for c in cols))
print("\n%d addresses; full records: build/validora cat %s" % (len(rows), sys.argv[1]))
print("build/validora is the binary: cmake --install build puts validora on the PATH (README)")
' "$out"

#!/usr/bin/env bash
# sim_bench.sh — Validora against the test world's strict provider (strict.test on 127.0.0.15,
# tests/world/strictpolicy.py; docs/world.md): a naive run and a run with the shipped
# defaults over the same list, their figures as a table, and the default run's rate as a
# share of the simulator's fastest allowed pace.
#
#   bench/sim_bench.sh BUILD_DIR [ADDRESSES=600]
#
# Uses the world in $WORLD_DIR when one runs there (a ctest fixture, say); otherwise starts
# one in BUILD_DIR/sim-bench-world (needs root; waits for the machine-wide world lock like
# any world.sh start) and stops it at the end. The simulator is reset before each run and
# after the last (world.sh strict-reset).
#
#   naive:   --no-throttle --per-mx-sessions 16 -j 256
#   default: the shipped defaults (the warm-up budget off and a state dir of its own, so a
#            600-address run is not cut at a new IP's first-day budget): a server never
#            talked to starts gently (docs/reputation.md)
#   second:  the same again on the same state dir: it starts near the pace the ledger
#            remembers for strict.test
set -euo pipefail
export VALIDORA_CONFIG="" # the machine's /etc/validora/validora.lua must not change what we measure or test

BUILD=${1:?usage: $0 BUILD_DIR [ADDRESSES]}
N=${2:-600}
BUILD=$(cd "$BUILD" && pwd)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VALIDORA=${VALIDORA:-$BUILD/validora}
DNS="127.0.0.1:${VALIDORA_DNS_PORT:-5354}"
STRICT="127.0.0.1:${VALIDORA_STRICT_PORT:-10024}"
[ -x "$VALIDORA" ] || { echo "sim_bench: $VALIDORA not built (cmake --build $BUILD --target validora-cli)" >&2; exit 1; }

tmp=$(mktemp -d)
started=
cleanup() {
    if [ -n "${WORLD:-}" ]; then bash "$SRC/tests/world/world.sh" strict-reset "$WORLD" >/dev/null 2>&1 || true; fi
    if [ -n "$started" ]; then bash "$SRC/tests/world/world.sh" stop "$WORLD" >/dev/null 2>&1 || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

if [ -n "${WORLD_DIR:-}" ] && bash "$SRC/tests/world/world.sh" status "$WORLD_DIR" >/dev/null 2>&1; then
    WORLD=$WORLD_DIR
else
    WORLD=$BUILD/sim-bench-world
    bash "$SRC/tests/world/world.sh" start "$WORLD"
    started=1
fi

# The list: 80 % user<i>@strict.test, 20 % nouser<i>@strict.test, shuffled (fixed seed; the
# same list as tests/functional/simulator.sh for the same N).
python3 - "$N" >"$tmp/list" <<'PY'
import random, sys
n = int(sys.argv[1]); real = n * 4 // 5
addrs = ["user%d@strict.test" % (i + 1) for i in range(real)]
addrs += ["nouser%d@strict.test" % (i + 1) for i in range(n - real)]
random.Random(20240601).shuffle(addrs)
print("\n".join(addrs))
PY

naive=(--no-throttle --per-mx-sessions 16 -j 256) default=()

# run NAME OPTIONS...: one run from a reset simulator; appends its figures to $tmp/figs.
run() {
    local name=$1 t0 t1
    shift
    bash "$SRC/tests/world/world.sh" strict-reset "$WORLD" >/dev/null
    t0=$(date +%s.%N)
    "$VALIDORA" verify --allow-private-destinations --state-dir "$tmp/state-${STATE:-$name}" --no-warmup --dns "$DNS" --format json "$@" \
        -i "$tmp/list" >"$tmp/$name.out" 2>"$tmp/$name.err" || true
    t1=$(date +%s.%N)
    python3 "$SRC/tests/world/strictpolicy.py" status --connect "$STRICT" 127.0.0.1 >"$tmp/$name.status"
    python3 - "$name" "$tmp/$name.out" "$tmp/$name.status" "$t0" "$t1" "$*" >>"$tmp/figs" <<'PY'
import json, sys
name, out, st, t0, t1, opts = sys.argv[1:]
recs = [json.loads(l) for l in open(out) if l.strip()]
s = json.load(open(st)); c = s["clients"]["127.0.0.1"]; t = c["totals"]
secs = float(t1) - float(t0)
right = sum(1 for r in recs if (r["status"], r["reason"]) == (
    ("deliverable", "accepted") if r["email"].startswith("user") else ("undeliverable", "mailbox_not_found")))
print(json.dumps({"name": name, "opts": opts, "addresses": len(recs), "seconds": secs,
                  "rate": len(recs) / secs if secs > 0 else 0.0, "blocks": len(c["blocks"]),
                  "defers": t.get("defer_rate", 0) + t.get("defer_unknown", 0), "right": right,
                  "max_rate": s["policy"]["max_rate"]}))
PY
}

run naive "${naive[@]}"
STATE=careful run default "${default[@]}"
# the same state dir again: the ledger remembers the pace strict.test allowed
STATE=careful run second "${default[@]}"

python3 - "$tmp/figs" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("%-8s %9s %9s %10s %7s %10s %13s  %s" % ("run", "addresses", "seconds", "addr/s", "blocks",
                                              "deferrals", "right verdicts", "options"))
for r in rows:
    print("%-8s %9d %9.2f %10.2f %7d %10d %8d/%-5d  %s" % (r["name"], r["addresses"], r["seconds"], r["rate"],
          r["blocks"], r["defers"], r["right"], r["addresses"], r["opts"] or "(shipped defaults)"))
d = [r for r in rows if r["name"] == "default"][0]
e = [r for r in rows if r["name"] == "second"][0]
print("simulator's fastest allowed pace: %.2f RCPT/s" % d["max_rate"])
print("sim: default run %.2f addr/s, %d block(s), ratio %.2f; second run %.2f addr/s, %d block(s), ratio %.2f"
      % (d["rate"], d["blocks"], d["rate"] / d["max_rate"], e["rate"], e["blocks"], e["rate"] / e["max_rate"]))
PY

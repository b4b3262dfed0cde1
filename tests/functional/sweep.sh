#!/usr/bin/env bash
# sweep.sh — Validora against a family of strict servers, not one (tests/world/sweep_profiles.json,
# docs/world.md "The sweep", docs/reputation.md "Measured").
#
# Every profile is a real Postfix listener of the test world judged by strictpolicy.py (RCPT
# rates over 10 s and 60 s windows, unknown users, blocks after as few as 3 deferrals) and
# Postfix's own anvil limits (connections at once and a minute, 421 at connect), one of them a
# shared host with 40 domains under 40 MX names, one three servers in one /24 that count a
# client together. For each profile, three runs over its list, each from a reset world:
#
#   naive   --no-throttle -j 256 --per-mx-sessions 16: must be blocked (the policy blocks, or
#           anvil refused it block_after times or more): proof that the profile bites;
#   first   the shipped defaults, a new state dir: 0 blocks, deferrals + anvil refusals below
#           block_after, every verdict right, pace >= 0.3 of the profile's fastest polite pace;
#   second  the same state dir (the ledger remembers each server's pace): the same, >= 0.7.
#
# The profiles run side by side (their servers, windows and state dirs are apart; each run is
# a few processes waiting on timers), phase by phase: every naive run, a reset, every first
# run, a reset, every second run. SWEEP_SET=ci (the default in the suite) runs the profiles
# marked "ci"; SWEEP_SET=all runs every one (bench/sweep_bench.sh), SWEEP_SET=A,B those named. SWEEP_TABLE=FILE writes
# the table as JSON lines. Env: VALIDORA, WORLD_DIR (a started world).
set -uo pipefail
: "${VALIDORA:?}" "${WORLD_DIR:?}"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=${VALIDORA_SOURCE_DIR:-$(cd "$HERE/../.." && pwd)}
DNS="127.0.0.1:${VALIDORA_DNS_PORT:-5354}"
STRICT="127.0.0.1:${VALIDORA_STRICT_PORT:-10024}"
SWEEP="python3 $SRC/tests/world/sweep.py"
SET=${SWEEP_SET:-ci}
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp
cleanup() { bash "$SRC/tests/world/world.sh" strict-reset "$WORLD_DIR" >/dev/null 2>&1; }

case "$SET" in
all) names=$($SWEEP names) ;;
ci) names=$($SWEEP names --ci) ;;
*) names=${SET//,/ } ;; # profiles by name, e.g. SWEEP_SET=shared-host,connections
esac
[ -n "$names" ] || { echo "sweep: no profile to run"; exit 1; }
extra=()
extra+=(--allow-private-destinations) # the world is on loopback (issue 16)

reset() {
    bash "$SRC/tests/world/world.sh" strict-reset "$WORLD_DIR" >"$tmp/reset.log" 2>&1 ||
        { cat "$tmp/reset.log"; bad "world.sh strict-reset failed"; }
}

# run PROFILE PHASE OPTIONS...: one run over the profile's list; leaves PHASE-PROFILE.{out,err,fig}.
run() {
    local p=$1 phase=$2 t0 t1 rc
    shift 2
    local base="$tmp/$phase-$p"
    t0=$(date +%s.%N)
    timeout 900 "$VALIDORA" verify --state-dir "$tmp/state-$p" --no-warmup --dns "$DNS" --format json \
        "${extra[@]}" "$@" -i "$tmp/$p.list" >"$base.out" 2>"$base.err"
    rc=$?
    t1=$(date +%s.%N)
    python3 "$SRC/tests/world/strictpolicy.py" status --connect "$STRICT" --profile "$p" 127.0.0.1 \
        >"$base.status" 2>>"$base.err"
    python3 - "$p" "$phase" "$base" "$t0" "$t1" "$rc" "$($SWEEP right "$p" "$base.out")" \
        "$($SWEEP refusals "$p" "$WORLD_DIR/postfix/maillog" "$(cat "$tmp/offset")")" \
        "$($SWEEP get "$p" polite)" "$($SWEEP get "$p" block_after)" >"$base.fig" <<'PY'
import json, sys
p, phase, base, t0, t1, rc, right, refusals, polite, block_after = sys.argv[1:]
recs = sum(1 for l in open(base + ".out") if l.strip())
try:
    c = json.load(open(base + ".status"))["clients"]["127.0.0.1"]
except (ValueError, KeyError, OSError):
    c = {"blocks": [], "totals": {}}
t = c["totals"]
secs = float(t1) - float(t0)
pace = recs / secs if secs > 0 else 0.0
print(json.dumps({"profile": p, "phase": phase, "exit": int(rc), "addresses": recs,
                  "right": int(right), "seconds": round(secs, 1), "pace": round(pace, 2),
                  "polite": float(polite), "ratio": round(pace / float(polite), 2),
                  "blocks": len(c["blocks"]),
                  "deferrals": t.get("defer_rate", 0) + t.get("defer_unknown", 0),
                  "refusals": int(refusals), "block_after": int(block_after)}, sort_keys=True))
PY
}

# phase NAME OPTIONS...: every profile's run of this phase, side by side, from a reset world.
phase() {
    local name=$1 p
    shift
    reset
    stat -c %s "$WORLD_DIR/postfix/maillog" >"$tmp/offset"
    for p in $names; do run "$p" "$name" "$@" & done
    wait
}

for p in $names; do $SWEEP list "$p" >"$tmp/$p.list"; done
phase naive --no-throttle -j 256 --per-mx-sessions 16 --greylist-delay 1
phase first
phase second

fig() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$tmp/$2-$1.fig" "$3"; }
printf '%-14s %7s | %-22s | %-42s | %-42s\n' profile polite "naive" "first run" "second run (from the ledger)"
for p in $names; do
    n=$($SWEEP get "$p" n)
    cell() {
        printf 'blocks %s defer %s refused %s right %s/%s %5.2f/s %4.2f' "$(fig "$p" "$1" blocks)" \
            "$(fig "$p" "$1" deferrals)" "$(fig "$p" "$1" refusals)" "$(fig "$p" "$1" right)" "$n" \
            "$(fig "$p" "$1" pace)" "$(fig "$p" "$1" ratio)"
    }
    printf '%-14s %5s/s | blocks %s refused %-4s right %3s | %s | %s\n' "$p" "$(fig "$p" first polite)" \
        "$(fig "$p" naive blocks)" "$(fig "$p" naive refusals)" "$(fig "$p" naive right)" "$(cell first)" "$(cell second)"
    [ -n "${SWEEP_TABLE:-}" ] && cat "$tmp/naive-$p.fig" "$tmp/first-$p.fig" "$tmp/second-$p.fig" >>"$SWEEP_TABLE"
done

for p in $names; do
    n=$($SWEEP get "$p" n)
    ba=$(fig "$p" naive block_after)
    if [ "$(fig "$p" naive blocks)" -ge 1 ] || [ "$(fig "$p" naive refusals)" -ge "$ba" ]; then
        ok "$p: the naive run is blocked (the profile bites)"
    else bad "$p: the naive run was not blocked: blocks $(fig "$p" naive blocks), refusals $(fig "$p" naive refusals)"; fi
    for ph in first second; do
        min=0.3; [ "$ph" = second ] && min=0.7
        b=$(fig "$p" $ph blocks) d=$(fig "$p" $ph deferrals) r=$(fig "$p" $ph refusals)
        if [ "$b" -eq 0 ] && [ $((d + r)) -lt "$ba" ]; then ok "$p $ph: no block ($d deferrals, $r refusals < $ba)"
        else bad "$p $ph: blocks $b, deferrals $d, refusals $r (block after $ba)"; tail -n 5 "$tmp/$ph-$p.err"; fi
        if [ "$(fig "$p" $ph right)" -eq "$n" ] && [ "$(fig "$p" $ph addresses)" -eq "$n" ]; then ok "$p $ph: all $n verdicts right"
        else bad "$p $ph: $(fig "$p" $ph right) of $n verdicts right ($(fig "$p" $ph addresses) records)"; fi
        maxr=$($SWEEP get "$p" max_refusals)
        if [ "$maxr" != None ]; then
            if [ "$r" -le "$maxr" ]; then ok "$p $ph: the server's log shows $r connection refusals (at most $maxr)"
            else bad "$p $ph: the server's log shows $r connection refusals (more than $maxr)"; fi
        fi
        if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)' "$(fig "$p" $ph ratio)" "$min"; then
            ok "$p $ph: pace $(fig "$p" $ph ratio) of the polite pace (>= $min)"
        else bad "$p $ph: pace $(fig "$p" $ph ratio) of the polite pace (< $min)"; fi
    done
    # what the first run learned is in the ledger, and `ledger show` tells it
    if [ $(( $(fig "$p" first deferrals) + $(fig "$p" first refusals) )) -gt 0 ]; then
        ip=$($SWEEP get "$p" servers | python3 -c 'import json,sys; print(json.load(sys.stdin)[0])')
        if "$VALIDORA" ledger show --state-dir "$tmp/state-$p" | grep -q "throttled by   server $ip:"; then
            ok "$p: ledger show lists server $ip and the pace it allows"
        else bad "$p: ledger show does not list server $ip"; "$VALIDORA" ledger show --state-dir "$tmp/state-$p" | tail -5; fi
    fi
done
if [ -n "${SWEEP_KEEP:-}" ]; then mkdir -p "$SWEEP_KEEP" && cp -r "$tmp"/. "$SWEEP_KEEP"/; fi
checks_done sweep

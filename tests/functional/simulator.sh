#!/usr/bin/env bash
# simulator.sh — the strict provider (strict.test on 127.0.0.15, tests/world/strictpolicy.py;
# docs/world.md) against Validora: what a limiter is measured by.
#
#   part 1, naive: 600 addresses at strict.test (480 user*, 120 unknown, shuffled with a fixed
#     seed) with --per-mx-sessions 16 -j 256 and no pacing (today's engine has no limiter;
#     later this run gets --no-throttle). It must get blocked: the simulator reports a block
#     of 127.0.0.1, and some records come back unknown (blocked, greylisted...) instead of
#     their true verdict.
#   part 2, careful (needs the limiter; skipped unless `validora verify --help` mentions
#     --no-throttle): the same list with the shipped defaults must finish with no block,
#     every verdict right (user* deliverable/accepted, the rest undeliverable/
#     mailbox_not_found). A server Validora has never talked to starts gently (issue 15), so
#     the first run must reach 30 % of the simulator's fastest allowed pace; a second run
#     from the same state dir starts near the pace the ledger remembers and must reach 70 %.
#
# The naive run gets --greylist-delay 1: the simulator's deferrals read as greylisting, and
# the default 300 s wait would only make the test long, not the run less naive.
# Each part starts from a reset simulator (world.sh strict-reset: the policy service's state
# and Postfix's anvil counts); the world is reset again at the end.
# Env: VALIDORA, WORLD_DIR (a started world). Prints both runs' figures.
set -uo pipefail
: "${VALIDORA:?}" "${WORLD_DIR:?}"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=${VALIDORA_SOURCE_DIR:-$(cd "$HERE/../.." && pwd)}
DNS="127.0.0.1:${VALIDORA_DNS_PORT:-5354}"
STRICT="127.0.0.1:${VALIDORA_STRICT_PORT:-10024}"
N=${SIM_ADDRESSES:-600}
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp
cleanup() { bash "$SRC/tests/world/world.sh" strict-reset "$WORLD_DIR" >/dev/null 2>&1; }

# N addresses, 80 % user<i>@strict.test (real), 20 % nouser<i>@strict.test (unknown), shuffled
# with a fixed seed so every run sees the same list.
python3 - "$N" >"$tmp/list" <<'PY'
import random, sys
n = int(sys.argv[1]); real = n * 4 // 5
addrs = ["user%d@strict.test" % (i + 1) for i in range(real)]
addrs += ["nouser%d@strict.test" % (i + 1) for i in range(n - real)]
random.Random(20240601).shuffle(addrs)
print("\n".join(addrs))
PY

reset() {
    bash "$SRC/tests/world/world.sh" strict-reset "$WORLD_DIR" >"$tmp/reset.log" 2>&1 ||
        { cat "$tmp/reset.log"; bad "world.sh strict-reset failed"; return 1; }
}

# run NAME [verify options...]: one run over the list; leaves NAME.out (records), NAME.err,
# NAME.status (the simulator's view of 127.0.0.1) and NAME.fig (the figures line).
run() {
    local name=$1 t0 t1 rc
    shift
    t0=$(date +%s.%N)
    # thousands of addresses over SMTP: past a new IP's first-day budget, hence --no-warmup
    timeout 170 "$VALIDORA" verify --allow-private-destinations --state-dir "$tmp/${STATE:-state}" --no-warmup --dns "$DNS" --format json \
        "$@" -i "$tmp/list" \
        >"$tmp/$name.out" 2>"$tmp/$name.err"
    rc=$?
    t1=$(date +%s.%N)
    python3 "$SRC/tests/world/strictpolicy.py" status --connect "$STRICT" 127.0.0.1 >"$tmp/$name.status" ||
        bad "$name: the simulator did not answer its status query"
    python3 - "$name" "$tmp/$name.out" "$tmp/$name.status" "$t0" "$t1" "$rc" >"$tmp/$name.fig" <<'PY'
import collections, json, sys
name, out, st, t0, t1, rc = sys.argv[1:]
recs = [json.loads(l) for l in open(out) if l.strip()]
s = json.load(open(st)); c = s["clients"]["127.0.0.1"]; t = c["totals"]
secs = float(t1) - float(t0)
wrong = sum(1 for r in recs if (r["status"], r["reason"]) != (
    ("deliverable", "accepted") if r["email"].startswith("user") else ("undeliverable", "mailbox_not_found")))
verdicts = collections.Counter("%s/%s" % (r["status"], r["reason"]) for r in recs)
print(json.dumps({"name": name, "exit": int(rc), "addresses": len(recs), "seconds": round(secs, 2),
                  "rate": round(len(recs) / secs, 2) if secs > 0 else 0.0,
                  "blocks": len(c["blocks"]), "blocked_since": c["blocked_since_iso"],
                  "defers": t.get("defer_rate", 0) + t.get("defer_unknown", 0),
                  "rcpts": t.get("rcpt", 0) + t.get("blocked", 0), "wrong": wrong,
                  "max_rate": s["policy"]["max_rate"], "verdicts": dict(verdicts)}, sort_keys=True))
PY
    python3 - "$tmp/$name.fig" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))
print("%-8s %5d addresses %7.2f s %8.2f addr/s  blocks %d (since %s)  deferrals %d  RCPTs seen %d  wrong verdicts %d  exit %d"
      % (f["name"], f["addresses"], f["seconds"], f["rate"], f["blocks"], f["blocked_since"] or "-",
         f["defers"], f["rcpts"], f["wrong"], f["exit"]))
print("         verdicts: " + ", ".join("%s %d" % kv for kv in sorted(f["verdicts"].items())))
PY
}

# The naive run switches the limiter off; the careful run uses the shipped defaults.
limiter=1 naive_opts=(--no-throttle)

fig() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$tmp/$1.fig" "$2"; }

# --- part 0: the published pace is real. A reference client (Python, not Validora) sends the
# first PACED addresses of the list at PACE_SHARE of the simulator's fastest pace over 4 kept
# sessions, reconnecting when Postfix cuts one (hard error limit); it must get no deferral,
# no block, and the true answer (250 / 550 5.1.1) for every address.
if reset; then
    max=$(python3 "$SRC/tests/world/strictpolicy.py" status --connect "$STRICT" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["policy"]["max_rate"])')
    head -n "${SIM_PACED:-300}" "$tmp/list" >"$tmp/paced.list"
    python3 - "$max" "${SIM_PACE_SHARE:-0.9}" "$tmp/paced.list" >"$tmp/paced.out" 2>&1 <<'PY'
import socket, sys, threading, time
rate = float(sys.argv[1]) * float(sys.argv[2])
addrs = [l.strip() for l in open(sys.argv[3]) if l.strip()]
lock, nxt, bad, start = threading.Lock(), [0], [], time.time() + 0.2
def session():
    s = socket.create_connection(("127.0.0.15", 25), timeout=10)
    f = s.makefile("rwb")
    def cmd(line):
        if line:
            f.write(line.encode() + b"\r\n"); f.flush()
        while True:
            r = f.readline().decode(errors="replace").rstrip()
            if not r or r[3:4] != "-":
                return r
    for c in ("", "EHLO paced.validora.test", "MAIL FROM:<paced@validora.test>"):
        r = cmd(c)
        if not r.startswith(("220", "250")):
            raise OSError("session refused: " + r)
    return s, cmd
def worker():
    sess = None
    while True:
        with lock:
            i = nxt[0]; nxt[0] += 1
        if i >= len(addrs):
            break
        time.sleep(max(0.0, start + i / rate - time.time()))
        a = addrs[i]
        for attempt in (1, 2):
            try:
                if sess is None:
                    sess = session()
                r = sess[1]("RCPT TO:<%s>" % a)
                if r.startswith("421") or not r:
                    sess = None  # cut by Postfix (hard error limit): ask again on a new one
                    if attempt == 1 and "too many errors" in r.lower():
                        continue
                break
            except OSError as e:
                r, sess = "error %s" % e, None
        want = "250" if a.startswith("user") else "550 5.1.1"
        if not r.startswith(want):
            bad.append("%s: %s" % (a, r))
ts = [threading.Thread(target=worker) for _ in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
secs = time.time() - start
print("paced %d addresses in %.2f s (%.2f RCPT/s, aimed at %.2f), %d wrong" % (len(addrs), secs, len(addrs) / secs, rate, len(bad)))
print("\n".join(bad[:10]))
sys.exit(1 if bad else 0)
PY
    prc=$?
    python3 "$SRC/tests/world/strictpolicy.py" status --connect "$STRICT" 127.0.0.1 >"$tmp/paced.status"
    pst=$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["clients"]["127.0.0.1"]; t=c["totals"]
print("blocks %d deferrals %d" % (len(c["blocks"]), t.get("defer_rate", 0) + t.get("defer_unknown", 0)))' "$tmp/paced.status")
    echo "paced    $(head -n 1 "$tmp/paced.out"); simulator: $pst"
    if [ $prc -eq 0 ] && [ "$pst" = "blocks 0 deferrals 0" ]; then
        ok "reference client at ${SIM_PACE_SHARE:-0.9} of the simulator's $max RCPT/s: no deferral, no block, every answer right"
    else
        bad "reference client at ${SIM_PACE_SHARE:-0.9} of $max RCPT/s: $pst (exit $prc)"; tail -n +2 "$tmp/paced.out"
    fi
fi

# --- part 1: the naive run must get blocked
if reset; then
    run naive "${naive_opts[@]}" --per-mx-sessions 16 -j 256 --greylist-delay 1
    if [ "$(fig naive blocks)" -ge 1 ]; then ok "naive run: the simulator blocked 127.0.0.1 (since $(fig naive blocked_since))"
    else bad "naive run: the simulator reports no block"; fi
    if [ "$(fig naive wrong)" -ge 1 ]; then ok "naive run: $(fig naive wrong) of $(fig naive addresses) records lost their true verdict"
    else bad "naive run: every verdict came back right (no record blocked or deferred)"; fi
    if [ "$(fig naive addresses)" -eq "$N" ]; then ok "naive run: a record for each of the $N addresses"
    else bad "naive run: $(fig naive addresses) records for $N addresses (exit $(fig naive exit))"; tail -n 5 "$tmp/naive.err"; fi
    if grep -q 'action=BLOCK' "$WORLD_DIR/strictpolicy.log"; then ok "naive run: the block is in the decision log"
    else bad "naive run: no action=BLOCK line in $WORLD_DIR/strictpolicy.log"; fi
fi

# --- part 2: the careful run (the limiter's shipped defaults)
if [ "${VALIDORA_LONG:-1}" = 0 ]; then
    skip_check "VALIDORA_LONG=0 (the sanitized build): the careful runs are left to the plain build"
elif [ "$limiter" -eq 1 ]; then
    for pass in careful second; do
        reset || break
        STATE=careful-state run $pass
        max=$(fig $pass max_rate)
        share=0.3; [ $pass = second ] && share=0.7
        if [ "$(fig $pass blocks)" -eq 0 ]; then ok "$pass run: no block"
        else bad "$pass run: blocked (since $(fig $pass blocked_since))"; fi
        if [ "$(fig $pass wrong)" -eq 0 ] && [ "$(fig $pass addresses)" -eq "$N" ]; then
            ok "$pass run: all $N verdicts right"
        else bad "$pass run: $(fig $pass wrong) wrong verdicts, $(fig $pass addresses) records for $N"; fi
        if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[3]) * float(sys.argv[2]) else 1)' \
            "$(fig $pass rate)" "$max" "$share"; then
            ok "$pass run: $(fig $pass rate) addr/s >= $share of the simulator's $max RCPT/s"
        else bad "$pass run: $(fig $pass rate) addr/s < $share of the simulator's $max RCPT/s"; fi
    done
else
    skip_check "needs the limiter (validora verify --help does not mention --no-throttle): careful run not made"
fi

checks_done simulator

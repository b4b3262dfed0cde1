#!/usr/bin/env bash
# Limiter benchmark (engine/limiter.c, issue 8 item 8): what traffic shaping costs when it
# does not bind, and what 100,000 addresses parked behind one throttled domain cost the rest
# of the run. Every figure is a ratio or a difference within this one run (machines are
# noisy); nothing passes or fails on time.
#
#   a) unthrottled path: the same ADDRESSES against a refusing smtp-sink on 127.0.0.1, with
#      --no-throttle and with the limiter on under limits that never bind (ROUNDS of each,
#      alternating); rate ratio limiter / no-throttle.
#   b) parked: PARKED addresses at a sink on 127.0.0.2 throttled to 60 RCPTs a minute, and
#      ADDRESSES at 127.0.0.1 (limits that never bind) interleaved in one input, with
#      --concurrency high enough that all are in flight at once; against the 127.0.0.1 ones
#      alone (ROUNDS of each, alternating). The mixed run goes on for LINGER seconds after the
#      127.0.0.1 addresses are done (to see the slow domain's pace), then is stopped (SIGTERM
#      twice). Reported: the fast domain's rate mixed vs alone, how many were still parked
#      when it was done, the slow domain's pace, peak RSS and RSS per parked address.
#
# Limits come from a rules directory of the bench's own (bench/limiter_rules, given after
# the shipped rules with a second --rules): bench_open matches [127.0.0.1], bench_slow
# [127.0.0.2]; nothing of the shipped rules is overridden. Addresses are literals
# (userN@[127.0.0.1]), so there is no DNS. No test world: two smtp-sinks of its own on loopback.
#
# usage: bench/limiter_bench.sh [BUILD_DIR] [ADDRESSES=20000] [PARKED=100000] [SESSIONS=8]
#                               [ROUNDS=2] [LINGER=15]
set -euo pipefail
export VALIDORA_CONFIG="" # the machine's /etc/validora/validora.lua must not change what we measure or test
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
n=${2:-20000}
parked=${3:-100000}
sessions=${4:-8}
rounds=${5:-2}
linger=${6:-15}
bin="$build/validora"
[ -x "$bin" ] || { echo "limiter_bench: $bin not built" >&2; exit 1; }
command -v smtp-sink >/dev/null || { echo "limiter_bench: smtp-sink (Postfix) not installed" >&2; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

port=${BENCH_PORT:-20035}
# -f RCPT: every RCPT refused ("500 5.3.0"): one full round trip per address, no catch-all
smtp-sink -u nobody -f RCPT 127.0.0.1:$port 2048 & pids+=($!)
smtp-sink -u nobody -f RCPT 127.0.0.2:$port 2048 & pids+=($!)
sleep 0.5

python3 - "$bin" "$top/rules" "$top/bench/limiter_rules" "$port" "$n" "$parked" "$sessions" \
    "$rounds" "$linger" "$tmp" <<'PY'
import json, os, signal, subprocess, sys, threading, time

bin, rules, bench_rules, port, n, nslow, sessions, rounds, linger, tmp = sys.argv[1:11]
n, nslow, sessions, rounds, linger = int(n), int(nslow), int(sessions), int(rounds), float(linger)
FAST, SLOW = b'"domain":"[127.0.0.1]"', b'"domain":"[127.0.0.2]"'
COMMON = [bin, "verify", "--allow-private-destinations", "--no-starttls", "--smtp-port", port, "--per-mx-sessions", str(sessions),
          "--helo", "bench.localdomain", "--mail-from", "bench@bench.localdomain", "--no-watch",
          "--rules", rules, "--rules", bench_rules, "--format", "json",
          # its own ledger, and no warm-up budget: 120,000 probes of our own sinks, not a
          # new IP's first day (docs/reputation.md)
          "--state-dir", os.path.join(tmp, "state"), "--no-warmup"]
LIMIT_S = 300  # one run; past it the run is killed and the bench fails


def write_list(name, lines):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


fast_addrs = ["user%d@[127.0.0.1]" % i for i in range(n)]
mixed = []  # PARKED/ADDRESSES slow ones before each fast one: 5:1 by default
s = 0
for i, a in enumerate(fast_addrs):
    while s < (i + 1) * nslow // n:
        mixed.append("slow%d@[127.0.0.2]" % s)
        s += 1
    mixed.append(a)
fast_list = write_list("fast", fast_addrs)
mixed_list = write_list("mixed", mixed)


def proc_status(pid):
    out = {}
    try:
        for line in open("/proc/%d/status" % pid):
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0])  # KiB
    except OSError:
        pass
    return out


def run(name, lst, extra, stop_when_fast_done=False):
    """One verify run. Returns a dict of timestamps (since the start), counts and RSS."""
    err = open(os.path.join(tmp, name + ".err"), "wb")
    t0 = time.monotonic()
    p = subprocess.Popen(COMMON + extra + ["-i", lst], stdout=subprocess.PIPE, stderr=err)
    killer = threading.Timer(LIMIT_S, p.kill)
    killer.start()
    fast_t, slow_t, wrong, snap, end = [], [], 0, None, None
    slow_delayed = []  # ms each [127.0.0.2] record waited for the limiter

    def stop():  # the first SIGTERM stops taking input and drains; the second stops now
        nonlocal end
        end = {"t": time.monotonic() - t0, "slow_done": len(slow_t), **proc_status(p.pid)}
        p.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        p.send_signal(signal.SIGTERM)

    lingering = None
    for line in p.stdout:
        t = time.monotonic() - t0
        if FAST in line:
            fast_t.append(t)
            rule = b'"provider":"bench_open"'
        elif SLOW in line and b'"reason":"deferred"' in line:
            continue  # parked when the run was stopped: written deferred at once (issue 17)
        elif SLOW in line:
            slow_t.append(t)
            slow_delayed.append(json.loads(line).get("delayed_ms", 0))
            rule = b'"provider":"bench_slow"'
        if b'"reason":"smtp_error"' not in line or rule not in line:
            wrong += 1
        if stop_when_fast_done and snap is None and len(fast_t) == n:
            snap = {"t": t, "slow_done": len(slow_t), **proc_status(p.pid)}
            lingering = threading.Timer(linger, stop)
            lingering.start()
    if lingering:
        lingering.join()
    _, status, ru = os.wait4(p.pid, 0)
    killer.cancel()
    if time.monotonic() - t0 >= LIMIT_S:
        sys.exit("limiter_bench: %s ran past %d s and was killed" % (name, LIMIT_S))
    if len(fast_t) != n:
        sys.exit("limiter_bench: %s: %d of %d records of [127.0.0.1] (see %s.err)"
                 % (name, len(fast_t), n, name))
    if wrong:
        sys.exit("limiter_bench: %s: %d records were not the sink's refusal (smtp_error) from "
                 "the bench rule of their domain" % (name, wrong))
    window = fast_t[-1] - fast_t[0]
    return {"fast_first": fast_t[0], "fast_last": fast_t[-1],
            "rate": (n - 1) / window if window > 0 else float("inf"),
            "slow": slow_t, "slow_delayed": slow_delayed, "snap": snap, "end": end, "maxrss": ru.ru_maxrss}


# a) the unthrottled path
concurrency = ["--concurrency", str(sessions * 4)]
modes = [("--no-throttle", ["--no-throttle"]), ("limiter on", [])]
rates = {m: [] for m, _ in modes}
for r in range(rounds):
    for m, extra in modes:
        rates[m].append(run("a-%d-%s" % (r, m.replace(" ", "")), fast_list, concurrency + extra)["rate"])
best = {m: max(v) for m, v in rates.items()}
print("a) unthrottled path: %d addresses to a refusing sink, %d sessions, -c %d, %d rounds"
      % (n, sessions, sessions * 4, rounds))
print("   %-28s %s   best" % ("", "  ".join("round %d" % (i + 1) for i in range(rounds))))
for m, _ in modes:
    label = m if m == "--no-throttle" else "limiter on, limits never bind"
    print("   %-28s %s   %7.0f addr/s" % (label, "  ".join("%7.0f" % x for x in rates[m]), best[m]))
print("   ratio limiter / no-throttle: %.2f (best of each; per round: %s)"
      % (best["limiter on"] / best["--no-throttle"],
         ", ".join("%.2f" % (a / b) for a, b in zip(rates["limiter on"], rates["--no-throttle"]))))

# b) parked behind one throttled domain
allc = ["--concurrency", str(n + nslow)]
alones, mixes = [], []
for r in range(rounds):
    alones.append(run("b-%d-alone" % r, fast_list, allc))
    mixes.append(run("b-%d-mixed" % r, mixed_list, allc, stop_when_fast_done=True))
print()
print("b) %d addresses at [127.0.0.2] (60 RCPT/min, 4 connections) interleaved with %d at "
      "[127.0.0.1], -c %d, %d rounds" % (nslow, n, n + nslow, rounds))
print("   %-30s %12s %13s %12s %11s" % ("", "[127.0.0.1]", "first record", "last record",
                                       "peak RSS"))
for r in range(rounds):
    a, m = alones[r], mixes[r]
    m_hwm = m["snap"].get("VmHWM", m["maxrss"])
    for label, x, rss in (("round %d: [127.0.0.1] alone" % (r + 1), a, a["maxrss"]),
                          ("         + %d parked" % nslow, m, m_hwm)):
        print("   %-30s %7.0f /s %11.2f s %10.2f s %7.1f MiB" % (label, x["rate"], x["fast_first"],
                                                              x["fast_last"], rss / 1024))
ratios = [m["rate"] / a["rate"] for a, m in zip(alones, mixes)]
best_a, best_m = max(x["rate"] for x in alones), max(x["rate"] for x in mixes)
print("   ratio mixed / alone, [127.0.0.1] rate from its first record to its last: %.2f (best of "
      "each; per round: %s)" % (best_m / best_a, ", ".join("%.2f" % x for x in ratios)))
print("   ratio mixed / alone, time from the start to the last [127.0.0.1] record: %s (includes "
      "taking in the %d parked ones)" % (", ".join("%.2f" % (m["fast_last"] / a["fast_last"])
                                                   for a, m in zip(alones, mixes)), nslow))
m, a = mixes[-1], alones[-1]
snap, end = m["snap"], m["end"]
still = nslow - snap["slow_done"]
print("   last round: still parked when [127.0.0.1] was done: %d of %d; %d still parked %.0f s "
      "later" % (still, nslow, nslow - end["slow_done"], end["t"] - snap["t"]))
span = end["t"] - m["fast_first"]
print("   [127.0.0.2] pace: %d records in the %.1f s from the first record to the stop = %.0f/min "
      "(limit 60/min, which a new key also starts at: the gentle start)"
      % (end["slow_done"], span, end["slow_done"] / span * 60))
print("   [127.0.0.2] records at (s since the start): %s"
      % ", ".join("%.1f" % x for x in m["slow"]))
print("   their delayed_ms (time each waited for the limiter): %s"
      % ", ".join(str(x) for x in m["slow_delayed"]))
hwm = snap.get("VmHWM", m["maxrss"])
print("   RSS per parked address: %.2f KiB ((%.1f - %.1f MiB) / %d); VmRSS %.0f s later %.1f MiB"
      % ((hwm - a["maxrss"]) / still, hwm / 1024, a["maxrss"] / 1024, still,
         end["t"] - snap["t"], end.get("VmRSS", 0) / 1024))
PY

#!/usr/bin/env bash
# SMTP benchmark: addresses per second through `validora verify` against Postfix's
# smtp-sink on loopback, beside Postfix's own smtp-source against a sink in the same run,
# printed as ratios (engine / smtp-source), in two modes:
#   reused  — sessions kept across addresses (engine default; smtp-source -d)
#   fresh   — one connection per address (engine --no-reuse; smtp-source default)
# The engine's sink refuses every RCPT (smtp-sink -f RCPT: "500 5.3.0"), so every address
# gets a full RCPT round trip and no catch-all shortcut applies. smtp-source cannot go on
# after a refused RCPT, so its sink accepts, and it pays for DATA too.
# Then peak RSS of the engine with N probes in flight against a tarpit that never answers.
#
# usage: bench/smtp_bench.sh [BUILD_DIR] [ADDRESSES] [SESSIONS] [INFLIGHT_FOR_RSS]
set -euo pipefail
export VALIDORA_CONFIG="" # the machine's /etc/validora/validora.lua must not change what we measure or test
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
n=${2:-20000}
sessions=${3:-8}
inflight=${4:-10000}
bin="$build/validora"
[ -x "$bin" ] || { echo "smtp_bench: $bin not built" >&2; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

port_refuse=${BENCH_PORT:-20025}
port_accept=$((port_refuse + 1))
port_tarpit=$((port_refuse + 2))
smtp-sink -u nobody -f RCPT 127.0.0.1:$port_refuse 2048 & pids+=($!)
smtp-sink -u nobody 127.0.0.1:$port_accept 2048 & pids+=($!)
sleep 0.5

seq 1 "$n" | sed 's/^/user/; s/$/@[127.0.0.1]/' > "$tmp/list"

now() { date +%s.%N; }
rate() { python3 -c "import sys; print('%.0f' % (float(sys.argv[1]) / (float(sys.argv[3]) - float(sys.argv[2]))))" "$@"; }

engine_run() { # mode flags...
  local t0 t1
  t0=$(now)
  # --no-throttle: this bench measures the SMTP path; shaping is limiter_bench.sh's (a new
  # server's gentle start, about one RCPT a second, would measure the ramp instead)
  "$bin" verify --allow-private-destinations --state-dir "$tmp/state" --no-warmup --no-throttle \
    --no-starttls --smtp-port "$port_refuse" \
    --per-mx-sessions "$sessions" \
    --concurrency $((sessions * 4)) --helo bench.localdomain --mail-from bench@bench.localdomain \
    --format json -i "$tmp/list" "$@" > "$tmp/out.json"
  t1=$(now)
  local got
  got=$(grep -c '"reason":"smtp_error"' "$tmp/out.json" || true)
  [ "$got" -eq "$n" ] || { echo "smtp_bench: expected $n refused-RCPT records, got $got" >&2; head -3 "$tmp/out.json" >&2; exit 1; }
  rate "$n" "$t0" "$t1"
}

source_run() { # flags...
  local t0 t1
  t0=$(now)
  smtp-source -s "$sessions" -m "$n" -r 1 -l 10 -f bench@bench.localdomain -t sink@bench.localdomain "$@" \
    127.0.0.1:$port_accept
  t1=$(now)
  rate "$n" "$t0" "$t1"
}

for mode in reused fresh; do
  if [ $mode = reused ]; then
    e=$(engine_run); s=$(source_run -d)
  else
    e=$(engine_run --no-reuse); s=$(source_run)
  fi
  ratio=$(python3 -c "print('%.2f' % ($e / $s))")
  echo "smtp $mode: engine $e addr/s, smtp-source $s msg/s, ratio $ratio ($n addresses, $sessions sessions)"
done

# Peak RSS with $inflight probes in flight against a tarpit that accepts and never speaks.
python3 "$top/tests/world/tarpit.py" --listen 127.0.0.1:$port_tarpit --mode silent > "$tmp/tarpit.log" 2>&1 & pids+=($!)
sleep 1
seq 1 "$inflight" | sed 's/^/probe/; s/$/@[127.0.0.1]/' > "$tmp/list2"
python3 - "$bin" "$port_tarpit" "$inflight" "$tmp/list2" <<'PY'
import resource, subprocess, sys, json
bin, port, n, lst = sys.argv[1:5]
# --allow-private-destinations: the tarpit is on loopback (refused by default: every probe
# would end at once, forbidden_destination, and nothing would be in flight); --no-throttle: a
# new server's gentle start would hold all but one probe back in the limiter.
p = subprocess.run([bin, "verify", "--allow-private-destinations", "--no-throttle",
                    "--state-dir", lst + ".state", "--no-warmup", "--no-starttls",
                    "--smtp-port", port, "--per-mx-sessions", n,
                    "--concurrency", n, "--smtp-timeout", "15", "--helo", "bench.localdomain",
                    "--format", "json", "-i", lst], stdout=subprocess.PIPE, check=False)
recs = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
timeouts = sum(1 for r in recs if r.get("reason") == "timeout")
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print("rss: %d probes in flight against a tarpit: peak RSS %.1f MiB (%.1f KiB per probe); %d/%d timed out"
      % (int(n), rss / 1024, rss / int(n), timeouts, len(recs)))
if len(recs) != int(n): sys.exit("smtp_bench: missing records")
# every probe must have waited on the tarpit, or the figure is not RSS "in flight"
if timeouts != int(n): sys.exit("smtp_bench: %d of %d probes timed out at the tarpit" % (timeouts, int(n)))
PY

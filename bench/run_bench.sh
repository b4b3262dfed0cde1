#!/usr/bin/env bash
# Scripts benchmark: what a pipeline costs over a plain run. The same list of N addresses
# goes through `validora verify` and through `validora run scripts/clean.lua` (which also
# de-duplicates, converts every record to a Lua table, writes it to results.mpk and its
# address to one of four files) against Postfix's smtp-sink on loopback, refusing every RCPT
# so each address costs a full round trip. Printed as a ratio (script / verify) from the
# same go; the machine is shared, so only the ratio means anything. --no-throttle: the
# shaper would set the pace (bench/limiter_bench.sh measures it), not the pipeline.
#
# usage: bench/run_bench.sh [BUILD_DIR] [ADDRESSES] [SESSIONS]
set -euo pipefail
export VALIDORA_CONFIG="" # the machine's /etc/validora/validora.lua must not change what we measure
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
n=${2:-20000}
sessions=${3:-8}
bin="$build/validora"
[ -x "$bin" ] || { echo "run_bench: $bin not built" >&2; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
port=${BENCH_PORT:-20035}
smtp-sink -u nobody -f RCPT 127.0.0.1:$port 2048 & pids+=($!)
sleep 0.5
seq 1 "$n" | sed 's/^/user/; s/$/@[127.0.0.1]/' >"$tmp/list"
common=(--state-dir "$tmp/state" --no-warmup --no-throttle --no-starttls --smtp-port "$port"
        --per-mx-sessions "$sessions" --helo bench.localdomain --mail-from bench@bench.localdomain)
now() { date +%s.%N; }
rate() { python3 -c "import sys; print('%.0f' % (float(sys.argv[1]) / (float(sys.argv[3]) - float(sys.argv[2]))))" "$@"; }

t0=$(now)
"$bin" verify --allow-private-destinations "${common[@]}" -j $((sessions * 4)) -o "$tmp/v.mpk" -i "$tmp/list"
t1=$(now)
v=$(rate "$n" "$t0" "$t1")
mkdir "$tmp/out"
t0=$(now)
"$bin" run --allow-private-destinations "${common[@]}" "$top/scripts/clean.lua" --concurrency $((sessions * 4)) "$tmp/list" "$tmp/out" >"$tmp/summary"
t1=$(now)
s=$(rate "$n" "$t0" "$t1")
got=$(wc -l <"$tmp/out/unknown.txt")
[ "$got" -eq "$n" ] || { echo "run_bench: expected $n unknown (smtp_error), got $got" >&2; cat "$tmp/summary" >&2; exit 1; }
echo "run: verify $v addr/s, scripts/clean.lua $s addr/s, ratio $(python3 -c "print('%.2f' % ($s / $v))") ($n addresses, $sessions sessions)"

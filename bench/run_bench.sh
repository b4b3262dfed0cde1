#!/usr/bin/env bash
# Scripts benchmark: what a pipeline costs over a plain run. The same list of N addresses
# goes through `validora verify` and through `validora run scripts/clean.lua` (which also
# de-duplicates, converts every record to a Lua table, writes it to results.mpk and its
# address to one of four files) against Postfix's smtp-sink on loopback, refusing every RCPT
# so each address costs a full round trip. Printed as a ratio (script / verify) from the
# same go; the machine is shared, so only the ratio means anything. --no-throttle: the
# shaper would set the pace (bench/limiter_bench.sh measures it), not the pipeline.
#
# Then pipelines at scale (issue 18, item 13), with --no-smtp: BIG generated addresses
# (default 1,000,000) on DOMAINS domains (50,000) through `verify -o`, a script that only
# streams verify_all into a validora.writer, and scripts/clean.lua, each under
# /usr/bin/time: the ratios of time and of peak RSS to verify's, from the same go. DNS comes
# from the world's unbound script (tests/world/unbound.sh) on a port of its own
# (BENCH_DNS_PORT, 5399) serving a generated zone, as bench/dns_bench.sh does (not the test
# world: no lock taken). The domains' MX point at 100 hosts (lists are mostly a few
# providers' domains), so the engine's DNS cache holds every answer and the pipeline, not
# DNS, is what is measured. BIG=0 skips it; ADDRESSES=0 skips the SMTP run.
#
# usage: bench/run_bench.sh [BUILD_DIR] [ADDRESSES] [SESSIONS]
#        (environment: BIG, DOMAINS, BENCH_DNS_PORT)
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
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -d "$tmp/dns/unbound" ]; then
        VALIDORA_DNS_PORT=${BENCH_DNS_PORT:-5399} bash "$top/tests/world/unbound.sh" stop "$tmp/dns" >/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
smtp_run() {
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
}
[ "$n" -eq 0 ] || smtp_run

# ---- pipelines at scale: --no-smtp, BIG addresses on DOMAINS domains
big=${BIG:-1000000}
domains=${DOMAINS:-50000}
dnsport=${BENCH_DNS_PORT:-5399}
[ "$big" -gt 0 ] || exit 0
mkdir -p "$tmp/dns/zones" "$tmp/big"
python3 - "$tmp" "$big" "$domains" <<'PY'
import sys
tmp, big, domains = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(tmp + "/dns/zones/bench.test.zone", "w") as z:
    z.write("$ORIGIN bench.test.\n$TTL 3600\n@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60\n")
    z.write("@ IN NS ns.test.\n")
    for i in range(100):
        z.write("mx%d IN A 127.0.0.10\n" % i)
    for i in range(domains):
        z.write("d%d IN MX 10 mx%d.bench.test.\n" % (i, i % 100))
with open(tmp + "/big/list", "w") as f:
    for i in range(big):
        f.write("user%d@d%d.bench.test\n" % (i, i % domains))
PY
VALIDORA_DNS_PORT=$dnsport VALIDORA_EXTRA_ZONES=$tmp/dns/zones bash "$top/tests/world/unbound.sh" start "$tmp/dns" >/dev/null
cat >"$tmp/big/stream.lua" <<'LUA'
local w = assert(validora.writer(arg[2], "msgpack"))
for rec in validora.verify_all(validora.lines(arg[1])) do
  assert(w:write(rec))
end
assert(w:close())
LUA
nosmtp=(--no-smtp --allow-private-destinations --dns "127.0.0.1:$dnsport" --state-dir "$tmp/big/state")
measure() { # NAME COMMAND...: "SECONDS KIB" of the command's run
    /usr/bin/time -f "%e %M" -o "$tmp/big/$1.time" "${@:2}" >/dev/null
    cat "$tmp/big/$1.time"
}
read -r vt vm < <(measure verify "$bin" verify "${nosmtp[@]}" -o "$tmp/big/v.mpk" -i "$tmp/big/list")
read -r st sm < <(measure stream "$bin" run "${nosmtp[@]}" "$tmp/big/stream.lua" "$tmp/big/list" "$tmp/big/s.mpk")
read -r ct cm < <(measure clean "$bin" run "${nosmtp[@]}" "$top/scripts/clean.lua" "$tmp/big/list" "$tmp/big/clean")
got=$("$bin" cat "$tmp/big/s.mpk" | wc -l)
[ "$got" -eq "$big" ] || { echo "run_bench: the stream script wrote $got records of $big" >&2; exit 1; }
got=$(wc -l <"$tmp/big/clean/unknown.txt")
[ "$got" -eq "$big" ] || { echo "run_bench: clean.lua sorted $got of $big into unknown" >&2; exit 1; }
python3 - "$big" "$domains" "$vt" "$vm" "$st" "$sm" "$ct" "$cm" <<'PY'
import sys
big, domains = sys.argv[1], sys.argv[2]
vt, vm, st, sm, ct, cm = (float(x) for x in sys.argv[3:])
mib = lambda k: k / 1024
print("run --no-smtp (%s addresses, %s domains): verify -o %.1f s %.0f MiB; "
      "stream %.1f s %.0f MiB (%.2fx time, %.2fx RSS); clean.lua %.1f s %.0f MiB (%.2fx time, %.2fx RSS)"
      % (big, domains, vt, mib(vm), st, mib(sm), st / vt, sm / vm, ct, mib(cm), ct / vt, cm / vm))
PY

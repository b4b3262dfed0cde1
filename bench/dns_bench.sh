#!/usr/bin/env bash
# dns_bench.sh — uncached DNS through the engine (engine/dns.c, c-ares on libevent) beside
# dnsperf, against the same unbound with the same queries, in the same run.
#
#   bench/dns_bench.sh [BUILD_DIR]        (BUILD_DIR holds bench/dns_bench; default ./build)
#
# Environment: NAMES (10000), INFLIGHT (200), BENCH_SECONDS (10), VALIDORA_BENCH_DNS_PORT (5397),
# BENCH_DIR (a fresh temporary directory, removed at the end unless given).
#
# Sets up: a generated zone bench.test with NAMES names h<i> (MX 10 m<i>) and m<i> (A
# 127.0.0.10), served by the world's unbound (tests/world/unbound.sh with
# VALIDORA_EXTRA_ZONES) on its own port and directory. The engine does vd_dns_mx with
# no_cache, INFLIGHT at a time: each lookup is three queries (MX h<i>, then A and AAAA m<i>).
# dnsperf gets exactly that query list (MX, A, AAAA per name) with the same number
# outstanding. What is compared is queries answered per second; the engine's MX lookups per
# second (a third of it) are printed too.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
BUILD=${1:-$SRC/build}
BIN=$BUILD/bench/dns_bench
NAMES=${NAMES:-10000}
INFLIGHT=${INFLIGHT:-200}
SECONDS_RUN=${BENCH_SECONDS:-10}
PORT=${VALIDORA_BENCH_DNS_PORT:-5397}

[ -x "$BIN" ] || {
    echo "dns_bench.sh: $BIN not built (cmake --build $BUILD --target dns_bench)" >&2
    exit 1
}
command -v dnsperf >/dev/null || {
    echo "dns_bench.sh: dnsperf not installed (contrib/deps.sh --test)" >&2
    exit 1
}

if [ -n "${BENCH_DIR:-}" ]; then
    DIR=$BENCH_DIR
    mkdir -p "$DIR"
    keep=1
else
    DIR=$(mktemp -d /tmp/validora-dns-bench-XXXXXX)
    keep=0
fi
cleanup() {
    VALIDORA_DNS_PORT=$PORT bash "$SRC/tests/world/unbound.sh" stop "$DIR" || true
    [ "$keep" = 1 ] || rm -rf "$DIR"
}
trap cleanup EXIT

mkdir -p "$DIR/zones"
{
    # shellcheck disable=SC2016 # zone-file directives, not shell variables
    printf '$ORIGIN bench.test.\n$TTL 300\n'
    printf '@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60\n@ IN NS ns.test.\n'
    for ((i = 0; i < NAMES; i++)); do
        printf 'h%d IN MX 10 m%d.bench.test.\nm%d IN A 127.0.0.10\n' "$i" "$i" "$i"
    done
} >"$DIR/zones/bench.test.zone"
for ((i = 0; i < NAMES; i++)); do
    printf 'h%d.bench.test MX\nm%d.bench.test A\nm%d.bench.test AAAA\n' "$i" "$i" "$i"
done >"$DIR/queries.txt"

VALIDORA_DNS_PORT=$PORT VALIDORA_EXTRA_ZONES=$DIR/zones bash "$SRC/tests/world/unbound.sh" \
    start "$DIR" >/dev/null

echo "server: unbound $(unbound -V | sed -n 's/^Version //p') on 127.0.0.1:$PORT, zone bench.test" \
    "($NAMES names), $INFLIGHT outstanding, ${SECONDS_RUN}s each, $(nproc) CPUs"

# Warm-up: loads unbound's answers into the CPU caches for both sides alike.
dnsperf -s 127.0.0.1 -p "$PORT" -d "$DIR/queries.txt" -q "$INFLIGHT" -l 1 >/dev/null 2>&1 || true

# dnsperf runs before and after the engine; the better of the two is compared, so a
# neighbour's load during one run does not flatter the engine.
run_dnsperf() {
    dnsperf -s 127.0.0.1 -p "$PORT" -d "$DIR/queries.txt" -q "$INFLIGHT" -l "$SECONDS_RUN" \
        >"$DIR/dnsperf$1.out" 2>&1 || { cat "$DIR/dnsperf$1.out" >&2; exit 1; }
    sed -n 's/^ *Queries per second: *\([0-9.]*\).*/\1/p' "$DIR/dnsperf$1.out"
}
dq1=$(run_dnsperf 1)

eline=$("$BIN" "127.0.0.1:$PORT" "$NAMES" "$INFLIGHT" "$SECONDS_RUN") || {
    echo "engine run failed or gave wrong answers: $eline" >&2
    exit 1
}
eq=$(awk '{for (i = 1; i < NF; i++) if ($i == "queries_per_s") print $(i + 1)}' <<<"$eline")
el=$(awk '{for (i = 1; i < NF; i++) if ($i == "lookups_per_s") print $(i + 1)}' <<<"$eline")

dq2=$(run_dnsperf 2)
dq=$(awk -v a="$dq1" -v b="$dq2" 'BEGIN { print (a > b ? a : b) }')

for n in 1 2; do
    echo "dnsperf run $n:" \
        "$(sed -n 's/^ *Queries completed: *\([0-9]*\).*/\1 completed/p' "$DIR/dnsperf$n.out")," \
        "$(sed -n 's/^ *Queries lost: *\([0-9]*\).*/\1 lost/p' "$DIR/dnsperf$n.out")," \
        "$(sed -n 's/^ *Queries per second: *\([0-9]*\).*/\1 q\/s/p' "$DIR/dnsperf$n.out")"
done
echo "engine:  $eline"
awk -v e="$eq" -v d="$dq" -v l="$el" 'BEGIN {
    printf "engine %.0f q/s (%.0f MX lookups/s), dnsperf %.0f q/s, ratio %.2f\n", e, l, d, e / d
}'

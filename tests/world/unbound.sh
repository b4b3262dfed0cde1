#!/usr/bin/env bash
# unbound.sh — the test world's DNS: one unbound serving the zones in tests/world/zones/
# authoritatively on 127.0.0.1 (plan: docs/world.md).
#
#   tests/world/unbound.sh start|stop|status DIR
#
# Owns: DIR/unbound/ (unbound.conf, pid file, log). Port: VALIDORA_DNS_PORT (default 5354).
# Extra zone files (e.g. the benchmark's generated bench.test.zone) are served too when
# VALIDORA_EXTRA_ZONES names a directory of <zone>.zone files.
#
# Nothing ever leaves the machine: every zone is an auth-zone answered straight to the
# client (for-downstream, no recursion, no CNAME chasing across zones — the client follows),
# test. itself is a zone so unknown names under it are NXDOMAIN, the providers' real domains
# (gmail.com, outlook.com, …) are zones too, opened one by one, every other name is
# REFUSED by a local-zone on ".", and the iterator (never reached) could only send from
# 127.0.0.1 anyway. servfail.test is an auth-zone with no data: unbound answers SERVFAIL
# for it at once (measured: ~1 ms), which is the honest "server failure" the tests need.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PORT=${VALIDORA_DNS_PORT:-5354}
ZONES=$HERE/zones

say() { printf 'unbound.sh: %s\n' "$*" >&2; }
die() {
    say "ERROR: $*"
    exit 1
}

[ $# -eq 2 ] || {
    echo "usage: $0 start|stop|status DIR" >&2
    exit 2
}
CMD=$1
mkdir -p "$2"
DIR=$(cd "$2" && pwd)
UD=$DIR/unbound
PIDFILE=$UD/unbound.pid

pid_alive() {
    local pid
    [ -s "$PIDFILE" ] || return 1
    pid=$(tr -dc '0-9' <"$PIDFILE")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

stop_unbound() {
    local pid
    if pid=$(pid_alive); then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "unbound $pid did not stop; killing it"
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$PIDFILE"
}

# The local-zone lines that let queries for zones outside test. past the "." refuse below
# (the providers' real domains, docs/world.md "Providers"): one transparent local-zone per
# such zone file, so exactly those names reach their auth-zone and everything else under
# com., net., … stays REFUSED. (test. and the PTR zone are opened by name in write_conf.)
open_zones() {
    local f n
    for f in "$@"; do
        [ -e "$f" ] || continue
        n=$(basename "$f" .zone)
        case $n in *.test | test | *.in-addr.arpa) continue ;; esac
        printf '  local-zone: "%s." transparent\n' "$n"
    done
}

# One auth-zone block per zone file; the zone name is the file name without .zone.
zone_blocks() {
    local f n
    for f in "$@"; do
        [ -e "$f" ] || continue
        n=$(basename "$f" .zone)
        printf 'auth-zone:\n  name: "%s."\n  zonefile: "%s"\n' "$n" "$f"
        printf '  for-downstream: yes\n  for-upstream: no\n  fallback-enabled: no\n'
    done
}

write_conf() {
    local extra=()
    if [ -n "${VALIDORA_EXTRA_ZONES:-}" ]; then
        extra=("$VALIDORA_EXTRA_ZONES"/*.zone)
    fi
    # zones world.sh made from data (the sweep's, tests/world/sweep.py)
    extra+=("$DIR/generated-zones"/*.zone)
    cat >"$UD/unbound.conf" <<EOF
# Written by tests/world/unbound.sh; do not edit (it is rewritten on every start).
server:
  username: ""
  chroot: ""
  directory: "$UD"
  pidfile: "$PIDFILE"
  logfile: "$UD/unbound.log"
  use-syslog: no
  verbosity: 1
  do-daemonize: yes
  interface: 127.0.0.1
  port: $PORT
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  # No validator: no trust anchor to fetch or refresh.
  module-config: "iterator"
  trust-anchor-file: ""
  # Belt and braces: were the iterator ever reached it could only send from loopback.
  outgoing-interface: 127.0.0.1
  # Large enough for the benchmark's bursts: with the default socket buffer a burst of a
  # few hundred queries overflows it and the lost ones come back as client timeouts.
  num-queries-per-thread: 4096
  so-rcvbuf: 4m
  so-sndbuf: 4m
  # Everything outside the world is refused; test. (a default static local zone in
  # unbound, RFC 6761) is handed to the auth-zones below instead.
  local-zone: "." refuse
  local-zone: "test." nodefault
  local-zone: "test." transparent
  # 1.0.0.127.in-addr.arpa (the PTR of 127.0.0.1) is an auth-zone too: transparent lets the
  # query past unbound's built-in 127.in-addr.arpa zone to it. The rest of 127.in-addr.arpa
  # stays built-in (no PTR: NXDOMAIN).
  local-zone: "1.0.0.127.in-addr.arpa." transparent
  # The providers' real domains (google.com, outlook.com, …): only the zones we serve.
$(open_zones "$ZONES"/*.zone "${extra[@]}")
  # Answers in zone-file order: 127.0.0.1 has two PTRs (localhost first), and a shuffled
  # order would make "the first PTR" a coin toss. (The engine shuffles equal MX itself.)
  rrset-roundrobin: no

$(zone_blocks "$ZONES"/*.zone "${extra[@]}")

# servfail.test: an auth-zone without data, which unbound answers with SERVFAIL.
auth-zone:
  name: "servfail.test."
  for-downstream: yes
  for-upstream: no
  fallback-enabled: no
EOF
}

# Sends one DNS query (SOA test.) to 127.0.0.1:PORT and succeeds on an answer with
# rcode NOERROR. python3 is in contrib/deps.sh's test packages; dig is not.
probe() {
    python3 - "$PORT" <<'EOF'
import random, socket, struct, sys
port = int(sys.argv[1])
qid = random.randint(0, 65535)
pkt = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + b"\x04test\x00" + struct.pack(">HH", 6, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
try:
    s.sendto(pkt, ("127.0.0.1", port))
    data, _ = s.recvfrom(65535)
except OSError:
    sys.exit(1)
rid, flags = struct.unpack(">HH", data[:4])
sys.exit(0 if rid == qid and flags & 0x8000 and flags & 15 == 0 else 1)
EOF
}

start_unbound() {
    command -v unbound >/dev/null || die "unbound is not installed (contrib/deps.sh --test)"
    stop_unbound
    mkdir -p "$UD"
    : >"$UD/unbound.log"
    write_conf
    unbound-checkconf "$UD/unbound.conf" >"$UD/checkconf.log" 2>&1 ||
        { cat "$UD/checkconf.log" >&2; die "unbound-checkconf failed on $UD/unbound.conf"; }
    unbound -c "$UD/unbound.conf" >"$UD/start.log" 2>&1 ||
        { cat "$UD/start.log" "$UD/unbound.log" >&2; die "unbound failed to start"; }
    for _ in $(seq 100); do
        if probe; then
            say "answering on 127.0.0.1:$PORT (pid $(pid_alive || echo '?'))"
            return 0
        fi
        sleep 0.1
    done
    echo "---- $UD/unbound.log" >&2
    tail -n 40 "$UD/unbound.log" >&2
    stop_unbound
    die "unbound did not answer on 127.0.0.1:$PORT within 10 s"
}

case $CMD in
start) start_unbound ;;
stop) stop_unbound ;;
status)
    if pid=$(pid_alive); then
        port=$(sed -n 's/^  port: //p' "$UD/unbound.conf" 2>/dev/null || echo "$PORT")
        echo "unbound   running (pid $pid) on 127.0.0.1:$port"
    else
        echo "unbound   stopped"
        exit 1
    fi
    ;;
*)
    echo "usage: $0 start|stop|status DIR" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# world.sh — starts, stops and reports the test world: real servers on loopback that the
# functional tests and the README demo talk to (plan: docs/world.md).
#
#   tests/world/world.sh start|stop|status DIR
#   tests/world/world.sh strict-reset DIR   # forget what the strict provider knows
#
# Owns: the Postfix instance (config from tests/world/postfix/*, queue, logs under
# DIR/postfix), postgrey (DIR/postgrey), the strict provider's policy service
# (tests/world/strictpolicy.py, DIR/strictpolicy.*), the self-signed certificate and the test
# CA with the HTTPS servers' certificates (DIR/tls), the alternative-check HTTPS endpoints
# (tests/world/altcheck.py, DIR/https/), the tarpit listeners (tests/world/tarpit.py) and the
# machine-wide world lock. DNS is unbound.sh's.
# Every server binds 127.0.0.0/8 only; all state lives under DIR. Needs root (Postfix
# binds port 25 and drops to the postfix user).
#
# Only one world can run on a machine (the addresses and ports are fixed), so start takes
# /tmp/validora-world.lock and a small holder process keeps it until stop: a second start
# from another DIR waits for it (VALIDORA_WORLD_LOCK_WAIT seconds, default 600), then fails
# naming the owner.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
POSTGREY_PORT=${VALIDORA_POSTGREY_PORT:-10023}
GREY_DELAY=${VALIDORA_GREY_DELAY:-5}
LOCK_FILE=/tmp/validora-world.lock
LOCK_WAIT=${VALIDORA_WORLD_LOCK_WAIT:-600}
# The strict provider (127.0.0.15, strict.test; docs/world.md): its policy service's port,
# how many users it has, and Postfix's anvil limits on that listener (per client IP; the
# rates are per minute). The policy's own thresholds are strictpolicy.py's STRICT_* knobs,
# passed through from the environment.
STRICT_PORT=${VALIDORA_STRICT_PORT:-10024}
STRICT_USERS=${VALIDORA_STRICT_USERS:-2000}
STRICT_CONN_COUNT=${VALIDORA_STRICT_CONN_COUNT:-8}
STRICT_CONN_RATE=${VALIDORA_STRICT_CONN_RATE:-60}
STRICT_RCPT_RATE=${VALIDORA_STRICT_RCPT_RATE:-900}

# Postfix listeners (address, banner expected): the world's own and the providers'
# (127.0.0.30..41, one per rule: master.cf.in), tarpits (mode, address) and the
# alternative-check HTTPS endpoints (service, address:port, certificate name).
PF_LISTENERS="127.0.0.10 127.0.0.11 127.0.0.12 127.0.0.14 127.0.0.15 $(seq -f '127.0.0.%g' -s ' ' 30 41)"
# The sweep's strict servers (sweep_profiles.json, made into listeners and a zone by sweep.py)
SWEEP_LISTENERS=$(python3 -c 'import json,sys; print(" ".join(ip for p in json.load(open(sys.argv[1]))["profiles"] for ip in p["servers"]))' "$HERE/sweep_profiles.json")
PF_LISTENERS="$PF_LISTENERS $SWEEP_LISTENERS"
TARPITS="silent:127.0.0.20 longline:127.0.0.21 endless:127.0.0.22 dropper:127.0.0.23"
ALTCHECKS="microsoft:127.0.0.50:443:login.microsoft.test yahoo:127.0.0.51:443:login.yahoo.test"

say() { printf 'world: %s\n' "$*" >&2; }
die() {
    say "ERROR: $*"
    exit 1
}

usage() {
    echo "usage: $0 start|stop|status|strict-reset DIR" >&2
    exit 2
}

[ $# -eq 2 ] || usage
CMD=$1
mkdir -p "$2"
DIR=$(cd "$2" && pwd)
PF=$DIR/postfix

# Is process $1 running? A zombie is not: our daemons are reparented to PID 1, which may
# reap them seconds later, and kill -0 succeeds on a zombie.
alive() {
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "${st%% *}" != Z ]
}

# Is the process in pidfile $1 alive? Prints the pid when it is.
pid_alive() {
    local f=$1 pid
    [ -s "$f" ] || return 1
    pid=$(tr -dc '0-9' <"$f")
    [ -n "$pid" ] && alive "$pid" || return 1
    echo "$pid"
}

# Stops the process in pidfile $1 (TERM, then KILL after ~3 s); quiet if it is not running.
kill_pidfile() {
    local f=$1 pid
    if pid=$(pid_alive "$f"); then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 30); do
            alive "$pid" || break
            sleep 0.1
        done
        alive "$pid" && kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$f"
}

# Reads the first line a listener sends (the SMTP banner), or fails after $2 seconds.
banner() {
    timeout "${2:-2}" bash -c 'exec 3<>/dev/tcp/$0/25 && IFS= read -r line <&3 && printf "%s\n" "$line"' "$1" 2>/dev/null | tr -d '\r'
}

# Succeeds when something accepts TCP connections on $1:25.
connects() {
    timeout 2 bash -c 'exec 3<>/dev/tcp/$0/25' "$1" 2>/dev/null
}

stop_postfix() {
    local master_pid
    [ -f "$PF/main.cf" ] || return 0
    master_pid=$(pid_alive "$DIR/postfix-queue/pid/master.pid") || return 0
    postfix -c "$PF" stop >/dev/null 2>&1 || true
    # postfix stop returns before master has gone; wait for it, then make sure.
    for _ in $(seq 50); do
        alive "$master_pid" || break
        sleep 0.1
    done
    if alive "$master_pid"; then
        say "postfix master $master_pid did not stop; killing it"
        pkill -9 -P "$master_pid" 2>/dev/null || true
        kill -9 "$master_pid" 2>/dev/null || true
    fi
}

stop_world() {
    local f
    stop_postfix
    kill_pidfile "$DIR/postgrey.pid"
    kill_pidfile "$DIR/strictpolicy.pid"
    for f in "$DIR"/tarpit-*.pid "$DIR"/altcheck-*.pid; do
        [ -e "$f" ] && kill_pidfile "$f"
    done
    if [ -x "$HERE/unbound.sh" ] || [ -f "$HERE/unbound.sh" ]; then
        bash "$HERE/unbound.sh" stop "$DIR" >/dev/null 2>&1 || say "unbound.sh stop failed (ignored)"
    fi
    # Release the machine-wide lock if this DIR holds it.
    kill_pidfile "$DIR/lock.pid"
}

# Takes the machine-wide world lock and leaves a holder process owning it.
take_lock() {
    exec 9>>"$LOCK_FILE"
    if ! flock -n 9; then
        say "another world holds $LOCK_FILE ($(cat "$LOCK_FILE.owner" 2>/dev/null || echo '?')); waiting up to ${LOCK_WAIT}s"
        flock -w "$LOCK_WAIT" 9 || die "world lock still held by $(cat "$LOCK_FILE.owner" 2>/dev/null || echo '?') — run 'world.sh stop' on that DIR"
    fi
    echo "$DIR" >"$LOCK_FILE.owner"
    # The holder inherits fd 9 (the locked open file); the lock lasts until it is killed.
    setsid sleep infinity </dev/null >/dev/null 2>&1 &
    echo $! >"$DIR/lock.pid"
    exec 9>&-
}

make_cert() {
    mkdir -p "$DIR/tls"
    openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=mx.tls.test -days 2 \
        -addext subjectAltName=DNS:mx.tls.test \
        -keyout "$DIR/tls/key.pem" -out "$DIR/tls/cert.pem" >"$DIR/tls/openssl.log" 2>&1 ||
        { cat "$DIR/tls/openssl.log" >&2; die "openssl could not make the certificate"; }
    chmod 644 "$DIR/tls/cert.pem"
    chmod 600 "$DIR/tls/key.pem"
}

# The test CA ($DIR/tls/ca.pem, what tests pass as --tls-ca) and, signed by it, one server
# certificate per alternative-check endpoint ($DIR/tls/NAME.pem / NAME.key, SAN DNS:NAME).
# EC P-256 keys (fast to make); the CA key stays in $DIR/tls (mode 600) and lives two days.
make_ca() {
    local t=$DIR/tls log=$DIR/tls/openssl.log e name
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/O=Validora test world/CN=Validora test world CA" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        -keyout "$t/ca.key" -out "$t/ca.pem" >>"$log" 2>&1 ||
        { cat "$log" >&2; die "openssl could not make the test CA"; }
    for e in $ALTCHECKS; do
        name=${e##*:}
        printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s\n' \
            "$name" >"$t/$name.ext"
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$name" \
            -keyout "$t/$name.key" -out "$t/$name.csr" >>"$log" 2>&1 &&
            openssl x509 -req -in "$t/$name.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
                -days 2 -extfile "$t/$name.ext" -out "$t/$name.pem" >>"$log" 2>&1 ||
            { cat "$log" >&2; die "openssl could not make the certificate of $name"; }
    done
    chmod 644 "$t"/*.pem
    chmod 600 "$t"/*.key
}

# The alternative-check endpoints (tests/world/altcheck.py; docs/world.md): one HTTPS server
# per service, its request log in $DIR/https/SERVICE.log. Runs as root like the tarpits (port
# 443); binds its loopback address only.
start_altchecks() {
    local e svc rest listen name
    rm -rf "$DIR/https"
    mkdir -p "$DIR/https"
    for e in $ALTCHECKS; do
        svc=${e%%:*}
        rest=${e#*:}
        listen=${rest%:*}
        name=${e##*:}
        : >"$DIR/https/$svc.log"
        setsid python3 "$HERE/altcheck.py" serve --service "$svc" --listen "$listen" \
            --cert "$DIR/tls/$name.pem" --key "$DIR/tls/$name.key" --log "$DIR/https/$svc.log" \
            --pidfile "$DIR/altcheck-$svc.pid" </dev/null >"$DIR/https/$svc.out" 2>&1 &
    done
}

# Succeeds when something accepts TCP connections on $1 (ADDR:PORT).
connects_to() {
    timeout 2 bash -c 'exec 3<>/dev/tcp/$0/$1' "${1%:*}" "${1##*:}" 2>/dev/null
}

start_postfix() {
    local f
    # The config directory must be root-owned throughout (postfix check), so the queue and
    # data directories sit beside it.
    rm -rf "$PF" "$DIR/postfix-queue" "$DIR/postfix-data"
    mkdir -p "$PF" "$DIR/postfix-queue" "$DIR/postfix-data"
    for f in main.cf master.cf; do
        sed -e "s|@PFDIR@|$PF|g" -e "s|@DIR@|$DIR|g" -e "s|@POSTGREY_PORT@|$POSTGREY_PORT|g" \
            -e "s|@STRICT_PORT@|$STRICT_PORT|g" -e "s|@STRICT_CONN_COUNT@|$STRICT_CONN_COUNT|g" \
            -e "s|@STRICT_CONN_RATE@|$STRICT_CONN_RATE|g" -e "s|@STRICT_RCPT_RATE@|$STRICT_RCPT_RATE|g" \
            "$HERE/postfix/$f.in" >"$PF/$f"
    done
    python3 "$HERE/sweep.py" master-cf "$STRICT_PORT" >>"$PF/master.cf" || die "sweep.py master-cf failed"
    # strict.test's mailboxes: user1..userN (everything else is unknown). The policy service
    # reads the same file.
    seq 1 "$STRICT_USERS" | sed 's|.*|user&@strict.test strict.test/user&|' >"$PF/strict_mailboxes"
    for f in virtual_mailboxes virtual_aliases recipient_access blocked_clients.cidr \
        sweep_domains.regexp sweep_mailboxes.regexp; do
        cp "$HERE/postfix/$f" "$PF/$f"
    done
    # The providers' access maps (regexp: read as they are, no postmap).
    cp "$HERE"/postfix/rcpt-*.regexp "$PF/"
    cp "$HERE/postfix/provider_transport" "$PF/provider_transport"
    for f in virtual_mailboxes virtual_aliases recipient_access strict_mailboxes provider_transport; do
        postmap -c "$PF" "hash:$PF/$f" || die "postmap $f failed"
    done
    chown postfix:postfix "$DIR/postfix-data"
    # The daemons run as postfix/postgrey: every directory above DIR must be searchable.
    runuser -u postfix -- test -x "$DIR/postfix-queue" ||
        die "user postfix cannot reach $DIR (a parent directory is not searchable: chmod o+x it)"
    # The maillog is written by postlogd; create it so status/tests can read it at once.
    : >"$PF/maillog"
    # postfix start runs postfix check first, which creates the queue's subdirectories.
    postfix -c "$PF" start >"$DIR/postfix-start.log" 2>&1 ||
        { cat "$DIR/postfix-start.log" "$PF/maillog" >&2; die "postfix start failed"; }
}

start_postgrey() {
    rm -rf "$DIR/postgrey"
    mkdir -p "$DIR/postgrey"
    # Empty whitelists: the system ones would exempt postmaster@ and abuse@.
    : >"$DIR/postgrey/whitelist_clients"
    : >"$DIR/postgrey/whitelist_recipients"
    chown -R postgrey:postgrey "$DIR/postgrey"
    # --auto-whitelist-clients=0: otherwise 127.0.0.1 is whitelisted after 5 passes and the
    # greylisting test would pass for the wrong reason on a reused world.
    postgrey --inet=127.0.0.1:"$POSTGREY_PORT" --delay="$GREY_DELAY" \
        --dbdir="$DIR/postgrey" --pidfile="$DIR/postgrey.pid" \
        --user=postgrey --group=postgrey --auto-whitelist-clients=0 \
        --whitelist-clients="$DIR/postgrey/whitelist_clients" \
        --whitelist-recipients="$DIR/postgrey/whitelist_recipients" \
        --hostname=grey.world.test --daemonize >"$DIR/postgrey.log" 2>&1 ||
        { cat "$DIR/postgrey.log" >&2; die "postgrey failed to start"; }
}

# The strict provider's policy service, which Postfix consults at every RCPT on 127.0.0.15
# (started after Postfix, whose mailbox table strict_mailboxes it reads; wait_ready waits for
# both). Its decision log and status file live in DIR; it starts with no history. Runs as
# root, like the tarpits: it only binds 127.0.0.1 and writes in DIR.
start_strictpolicy() {
    rm -f "$DIR/strictpolicy.status"
    : >"$DIR/strictpolicy.log"
    setsid python3 "$HERE/strictpolicy.py" serve --listen "127.0.0.1:$STRICT_PORT" \
        --profiles "$HERE/sweep_profiles.json" \
        --users "$PF/strict_mailboxes" --log "$DIR/strictpolicy.log" \
        --status "$DIR/strictpolicy.status" --pidfile "$DIR/strictpolicy.pid" \
        </dev/null >"$DIR/strictpolicy.out" 2>&1 &
}

# Forgets everything the strict provider knows about its clients: the policy service's
# windows and blocks (its reset verb) and Postfix's anvil counts (anvil has no reset: its
# process is stopped, and master starts a fresh one at the next connection).
strict_reset() {
    local master_pid anvil_pid
    python3 "$HERE/strictpolicy.py" reset --connect "127.0.0.1:$STRICT_PORT" >/dev/null ||
        die "strictpolicy on 127.0.0.1:$STRICT_PORT did not reset"
    master_pid=$(pid_alive "$DIR/postfix-queue/pid/master.pid") || die "postfix is not running in $DIR"
    for anvil_pid in $(pgrep -P "$master_pid" -x anvil); do
        kill "$anvil_pid" 2>/dev/null || true
        for _ in $(seq 30); do
            alive "$anvil_pid" || break
            sleep 0.1
        done
    done
}

start_tarpits() {
    local t mode addr
    if [ ! -f "$HERE/tarpit.py" ]; then
        say "WARNING: $HERE/tarpit.py does not exist yet; tarpit listeners not started"
        return 0
    fi
    for t in $TARPITS; do
        mode=${t%%:*}
        addr=${t#*:}
        setsid python3 "$HERE/tarpit.py" --listen "$addr:25" --mode "$mode" \
            --pidfile "$DIR/tarpit-$mode.pid" </dev/null >"$DIR/tarpit-$mode.log" 2>&1 &
    done
}

start_dns() {
    # the sweep's zone, made from its profiles (unbound.sh serves $DIR/generated-zones too)
    mkdir -p "$DIR/generated-zones"
    python3 "$HERE/sweep.py" zone >"$DIR/generated-zones/sweep.test.zone" || die "sweep.py zone failed"
    if [ ! -f "$HERE/unbound.sh" ]; then
        say "WARNING: $HERE/unbound.sh does not exist yet; DNS not started"
        return 0
    fi
    bash "$HERE/unbound.sh" start "$DIR" || die "unbound.sh start $DIR failed"
}

# Waits (up to ~10 s) until every listener answers; dumps logs and fails otherwise.
wait_ready() {
    local deadline=$((SECONDS + 10)) missing a t line
    while :; do
        missing=
        for a in $PF_LISTENERS; do
            line=$(banner "$a" 1) || line=
            case $line in 220*) ;; *) missing="$missing postfix@$a" ;; esac
        done
        if pid_alive "$DIR/postgrey.pid" >/dev/null; then
            timeout 1 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0' "$POSTGREY_PORT" 2>/dev/null ||
                missing="$missing postgrey"
        else
            missing="$missing postgrey"
        fi
        pid_alive "$DIR/strictpolicy.pid" >/dev/null &&
            timeout 1 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0' "$STRICT_PORT" 2>/dev/null ||
            missing="$missing strictpolicy"
        if [ -f "$HERE/tarpit.py" ]; then
            for t in $TARPITS; do
                connects "${t#*:}" || missing="$missing tarpit-${t%%:*}@${t#*:}"
            done
        fi
        for t in $ALTCHECKS; do
            t=${t%:*}
            pid_alive "$DIR/altcheck-${t%%:*}.pid" >/dev/null && connects_to "${t#*:}" ||
                missing="$missing altcheck-${t%%:*}@${t#*:}"
        done
        [ -z "$missing" ] && return 0
        [ $SECONDS -ge $deadline ] && break
        sleep 0.2
    done
    say "not answering:$missing"
    for f in "$DIR/postfix-start.log" "$PF/maillog" "$DIR/postgrey.log" "$DIR/strictpolicy.out" \
        "$DIR"/tarpit-*.log "$DIR"/https/*.out; do
        [ -s "$f" ] && { echo "---- $f" >&2; tail -n 30 "$f" >&2; }
    done
    die "world did not come up (logs above)"
}

status_world() {
    local rc=0 a t line pid
    if pid=$(pid_alive "$DIR/postfix-queue/pid/master.pid"); then
        echo "postfix   running (master $pid)"
        for a in $PF_LISTENERS; do
            line=$(banner "$a" 1) || line="(no answer)"
            echo "  $a:25  $line"
        done
    else
        echo "postfix   stopped"
        rc=1
    fi
    if pid=$(pid_alive "$DIR/postgrey.pid"); then
        echo "postgrey  running (pid $pid) on 127.0.0.1:$POSTGREY_PORT"
    else
        echo "postgrey  stopped"
        rc=1
    fi
    if pid=$(pid_alive "$DIR/strictpolicy.pid"); then
        echo "strictpolicy running (pid $pid) on 127.0.0.1:$STRICT_PORT"
    else
        echo "strictpolicy stopped"
        rc=1
    fi
    for t in $TARPITS; do
        if pid=$(pid_alive "$DIR/tarpit-${t%%:*}.pid"); then
            echo "tarpit    ${t%%:*} running (pid $pid) on ${t#*:}:25"
        else
            echo "tarpit    ${t%%:*} stopped"
            rc=1
        fi
    done
    for t in $ALTCHECKS; do
        t=${t%:*}
        if pid=$(pid_alive "$DIR/altcheck-${t%%:*}.pid"); then
            echo "altcheck  ${t%%:*} running (pid $pid) on https://${t#*:}"
        else
            echo "altcheck  ${t%%:*} stopped"
            rc=1
        fi
    done
    if [ -f "$HERE/unbound.sh" ]; then
        bash "$HERE/unbound.sh" status "$DIR" || rc=1
    else
        echo "unbound   not set up (tests/world/unbound.sh missing)"
        rc=1
    fi
    return $rc
}

case $CMD in
start)
    [ "$(id -u)" -eq 0 ] || die "must run as root (Postfix binds port 25)"
    stop_world
    chmod 755 "$DIR"
    take_lock
    # Anything failing from here on leaves nothing half-started behind.
    trap 'rc=$?; [ $rc -eq 0 ] || { say "start failed; stopping what was started"; stop_world; }' EXIT
    make_cert
    make_ca
    start_dns
    start_postgrey
    start_postfix
    start_strictpolicy
    start_tarpits
    start_altchecks
    wait_ready
    say "started in $DIR (${SECONDS}s)"
    ;;
stop)
    stop_world
    say "stopped ($DIR)"
    ;;
status)
    status_world
    ;;
strict-reset)
    strict_reset
    say "strict provider reset ($DIR)"
    ;;
*)
    usage
    ;;
esac

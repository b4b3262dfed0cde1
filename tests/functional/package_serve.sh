#!/usr/bin/env bash
# package_serve.sh — the packaged daemon: unpacks the .deb functional.package built
# ($VALIDORA_BUILD_DIR/package/) into a scratch root, runs the ExecStart line of its systemd
# unit by hand (paths moved into the scratch root, plus --listen 127.0.0.1:PORT and DNS to a
# closed loopback port, so nothing leaves 127.0.0.0/8), as an unprivileged user the way
# DynamicUser= would, and checks GET /healthz, ExecReload's SIGHUP and SIGTERM.
# Exits 77 (ctest: Skipped) with the reason when the packaged binary has no `serve` command.
# Needs no test world.
set -uo pipefail
keep=${VALIDORA_BUILD_DIR:?}/package
export VALIDORA_CONFIG=
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp
pid=
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
}

debs=("$keep"/validora_*.deb)
[ -f "${debs[0]}" ] || { bad "no .deb in $keep (functional.package builds it)"; checks_done package_serve.sh; exit; }
root=$tmp/root
dpkg -x "${debs[0]}" "$root" && ok "unpacked ${debs[0]##*/}" || bad "dpkg -x ${debs[0]}"
B=$root/usr/bin/validora
if ! why=$("$B" serve --help 2>&1 >/dev/null); then
    echo "SKIP: the packaged validora has no 'serve' command (validora serve --help: ${why%%$'\n'*})," \
         "so the unit's ExecStart cannot run and /healthz is not checked"
    exit 77
fi

unit=$root/lib/systemd/system/validora.service
line=$(sed -n 's/^ExecStart=//p' "$unit")
[ -n "$line" ] && ok "ExecStart: $line" || bad "no ExecStart in $unit"
state=$tmp/state
mkdir -m 0750 "$state"
read -r -a argv <<<"$line"
for i in "${!argv[@]}"; do
    case ${argv[i]} in
        /usr/*|/etc/*) argv[i]=$root${argv[i]} ;;
        /var/lib/validora) argv[i]=$state ;;
    esac
done
port=$((20000 + RANDOM % 20000))
while ss -ltnH "sport = :$port" | grep -q .; do port=$((port + 1)); done
argv+=(--listen "127.0.0.1:$port" --dns 127.0.0.1:1)
# The installed rules, where the scratch root has them (the binary's default is /usr/share/...).
export VALIDORA_RULES=$root/usr/share/validora/rules
run=()
if [ "$(id -u)" -eq 0 ]; then
    # As DynamicUser= would: no root, no new privileges, a state directory of its own.
    chmod 0755 "$tmp"
    chown 65534:65534 "$state"
    run=(setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs)
fi
"${run[@]}" "${argv[@]}" >"$tmp/serve.log" 2>&1 &
pid=$!
up=0
for _ in $(seq 50); do
    code=$(curl -s -o "$tmp/healthz" -w '%{http_code}' "http://127.0.0.1:$port/healthz") && [ "$code" = 200 ] && { up=1; break; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
done
[ $up = 1 ] && ok "GET /healthz: 200 ($(head -c 80 "$tmp/healthz"))" || bad "no /healthz on :$port: $(tail -5 "$tmp/serve.log")"
# ExecReload: SIGHUP reloads, the daemon stays.
kill -HUP "$pid"
sleep 0.5
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")
kill -0 "$pid" 2>/dev/null && [ "$code" = 200 ] && ok "SIGHUP (ExecReload): still serving" || bad "after SIGHUP: $code $(tail -5 "$tmp/serve.log")"
kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then
    bad "SIGTERM: still running after 10 s"
else
    wait "$pid"; rc=$?
    pid=
    [ $rc -eq 0 ] && ok "SIGTERM: exits 0" || bad "SIGTERM: exit status $rc: $(tail -5 "$tmp/serve.log")"
fi
checks_done package_serve.sh

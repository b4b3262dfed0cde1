#!/usr/bin/env bash
# Installs the Debian 12 packages Validora needs to build (and, with --test, to run its
# test world and benchmarks). Idempotent: packages already present are left alone.
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config liblua5.4-dev lua5.4 libevent-dev libc-ares-dev
            libssl-dev libmsgpack-dev libidn2-dev libpsl-dev libsqlite3-dev
            libspf2-dev libcsv-dev libjansson-dev)
test_pkgs=(unbound postfix postgrey dnsperf swaks openssl ca-certificates procps iproute2
           python3 lua-check clang-14 libclang-rt-14-dev strace
           debhelper dpkg-dev fakeroot lintian man-db systemd curl jq python3-msgpack
           bash-completion prometheus)
# debhelper, dpkg-dev, fakeroot: contrib/build-deb.sh; lintian, man-db (man --warnings),
# strace: resume.sh; systemd (systemd-analyze), bash-completion, curl, jq, python3-msgpack:
# tests/functional/package*.sh (curl also world_sanity.sh) and the examples; prometheus (promtool): serve.sh's /metrics

want=("${build_pkgs[@]}")
if [ "${1:-}" = "--test" ] || [ "${1:-}" = "--all" ]; then
  want+=("${test_pkgs[@]}")
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: missing packages: ${missing[*]}; run as root or install them yourself" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Postfix must not configure itself as a system mailer: the test world runs its own instance.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
# Keep package scripts from starting system services (unbound, postfix, postgrey) on install.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; made_policy=1
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ "$made_policy" = 1 ] && rm -f "$policy"
exit 0

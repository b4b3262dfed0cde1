#!/usr/bin/env bash
# readme.sh — the README's commands, in order and as written, on the test world (the demo
# world), as a new user would run them after the demo: twice, each walk in a fresh directory,
# the second on the state (ledger, budget) the first left. Every command must exit 0.
# What it changes, all listed here and nowhere else:
#   - `validora` is build/validora, put first on the PATH (the README's own alternative to
#     `cmake --install build`, which would install into /usr/local of a shared machine);
#   - /etc/validora/ becomes DIR/etc/validora/ (the token file), and VALIDORA_CONFIG gives the
#     world's DNS, a state dir of the test's own and a sender (docs/config.md): the machine's
#     /var/lib/validora and /etc are not touched;
#   - the walk's directory has `rules`, `scripts` and `contrib` of the source tree, and a
#     list.txt (contrib/sample-list.txt);
#   - after a line that ends in `&` (serve) the walk waits until /healthz answers, and the
#     background job is stopped at the end of the walk.
#   - the ledger says the IP is 400 days old (`ledger set-age`, as the README says for an IP
#     with a history), so that two walks fit in one day's budget.
# Skipped: `bash contrib/demo.sh` (it starts a world of its own: demo_rerun.sh runs it twice),
# `bash contrib/test.sh` (the whole suite), `cmake --install build` (see above) and the
# package's commands (package.sh builds and installs the package).
# Env: VALIDORA, WORLD_DIR, VALIDORA_SOURCE_DIR.
set -uo pipefail
: "${VALIDORA:?}" "${WORLD_DIR:?}" "${VALIDORA_SOURCE_DIR:?}"
DNS="127.0.0.1:${VALIDORA_DNS_PORT:-5354}"
SRC=$VALIDORA_SOURCE_DIR
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp
mkdir -p "$tmp/bin" "$tmp/state"
ln -s "$VALIDORA" "$tmp/bin/validora"
PRIV="allow_private_destinations = true," # the world is on loopback (issue 16)
cat >"$tmp/validora.lua" <<LUA
return {
  dns = "$DNS",
  state_dir = "$tmp/state",
  mail_from = "readme@validora.test",
  smtp_timeout = 5,
  greylist_delay = 6,
  $PRIV
}
LUA

# The test's IP has a history, as the README tells such a user to say (`ledger set-age`): two
# walks of the sample list are more than a new IP's first day allows.
"$VALIDORA" ledger set-age any 400 --state-dir "$tmp/state" >/dev/null

# The README's sh blocks, one command a line (backslash continuations joined).
python3 - "$SRC/README.md" >"$tmp/commands" <<'PY'
import sys
lines, block, cont = [], False, ""
for l in open(sys.argv[1]):
    l = l.rstrip("\n")
    if l.startswith("```"):
        block = l.strip() == "```sh" if not block else False
        continue
    if not block:
        continue
    if l.rstrip().endswith("\\"):
        cont += l.rstrip()[:-1] + " "
        continue
    lines.append(cont + l)
    cont = ""
for l in lines:
    print(l)
PY
[ "$(wc -l <"$tmp/commands")" -ge 15 ] && ok "README: $(wc -l <"$tmp/commands") commands read" \
    || bad "README: only $(wc -l <"$tmp/commands") commands read"

skip() { # a command this walk does not run (see the header)
    case "$1" in
    "bash contrib/demo.sh"* | "bash contrib/test.sh"* | "cmake --install build"*) return 0 ;;
    "bash contrib/deps.sh"* | "bash contrib/build-deb.sh"* | "apt install"*) return 0 ;;
    esac
    return 1
}

walk() { # N: one walk through the README in a fresh directory
    local dir="$tmp/walk$1" n=0 failed_here=0
    mkdir -p "$dir/etc/validora"
    ln -s "$SRC/rules" "$dir/rules"
    ln -s "$SRC/scripts" "$dir/scripts"
    ln -s "$SRC/contrib" "$dir/contrib"
    cp "$SRC/contrib/sample-list.txt" "$dir/list.txt"
    : >"$dir/walk.log"
    (
        cd "$dir" || exit 1
        export PATH="$tmp/bin:$PATH" VALIDORA_CONFIG="$tmp/validora.lua"
        while IFS= read -r cmd <&3; do
            skip "$cmd" && continue
            run=${cmd//\/etc\/validora\//$dir\/etc\/validora\/}
            n=$((n + 1))
            echo "\$ $cmd" >>walk.log
            if [[ $run =~ \&[[:space:]]*(#.*)?$ ]]; then
                eval "$run" >>walk.log 2>&1 </dev/null
                for _ in $(seq 1 100); do
                    curl -fs http://127.0.0.1:8025/healthz >/dev/null 2>&1 && break
                    sleep 0.1
                done
                continue
            fi
            eval "$run" >>walk.log 2>&1 </dev/null; rc=$? # one shell: TOKEN=... carries on
            if [ $rc -ne 0 ]; then
                echo "FAIL walk $1: exit $rc: $cmd"
                failed_here=1
            fi
        done 3<"$tmp/commands"
        # the README's serve: stopped, and gone before the next walk (it holds the state dir's
        # instance lock while it finishes what is in flight)
        for p in $(jobs -p); do
            kill "$p" 2>/dev/null
            for _ in $(seq 1 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        done
        echo "$n commands run"
        exit $failed_here
    ) >"$tmp/walk$1.out" 2>&1
    local rc=$?
    cat "$tmp/walk$1.out"
    [ $rc -eq 0 ] && ok "README walk $1: every command exits 0" \
        || { bad "README walk $1"; tail -40 "$dir/walk.log"; }
    grep -q '"email":"alice@example.com"' "$dir/walk.log" && grep -qE '"id": ?"' "$dir/walk.log" \
        && ok "README walk $1: serve answered the curl examples (a record, a job id)" \
        || bad "README walk $1: serve's answers: $(grep -A2 curl "$dir/walk.log")"
    [ -s "$dir/out/deliverable.txt" ] && [ -s "$dir/out/results.mpk.recheck.mpk" ] \
        && ok "README walk $1: out/ made by clean.lua, recheck wrote out/results.mpk.recheck.mpk" \
        || bad "README walk $1: out/ $(ls "$dir/out" 2>&1)"
}

walk 1
walk 2
checks_done readme

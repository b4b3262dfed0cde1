#!/usr/bin/env bash
# package.sh — the Debian package (contrib/debian, contrib/build-deb.sh): builds the .deb,
# inspects it (files, conffile, control), installs it, and runs what it installed: the
# binary, the shipped config through `config check`, the rules and their tests, the man
# pages through `man --warnings` (every option of every command's --help in validora(1)),
# the bash completion, the systemd unit (`systemd-analyze verify` and `security`), and the
# examples (contrib/examples) on a record stream made without a test world.
# Where it installs: by default `dpkg -x` into a scratch root, so the machine's /usr is never
# touched (apt-get -s shows the dependencies resolve). With VALIDORA_PKG_INSTALL=1, or CI=true
# on a machine without validora installed, it really installs (dpkg -i), checks the default
# paths, and purges the package again: a CI box is thrown away, a developer's is not.
# The daemon part (the unit's ExecStart run by hand, /healthz) is package_serve.sh; this test
# leaves the .deb for it in $VALIDORA_BUILD_DIR/package/. Needs no test world.
set -uo pipefail
: "${VALIDORA:?VALIDORA must name the validora binary of the build tree}"
src=${VALIDORA_SOURCE_DIR:?}
keep=${VALIDORA_BUILD_DIR:?}/package
export VALIDORA_CONFIG= # the machine's config must not change what is checked
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp
installed_here=0
cleanup() {
    if [ "$installed_here" = 1 ]; then dpkg --purge validora >/dev/null 2>&1; fi
}
cd "$tmp" # no rules/ here: the fallback "rules" of a binary without installed rules finds none

version=$(sed -n 's/^project(validora VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")

# ---- build ----
# The package builds from what contrib/deps.sh installs: every build package is a Build-Depends.
build_pkgs=$(sed -n '/^build_pkgs=(/,/)/p' "$src/contrib/deps.sh" | tr -d '()' | sed 's/build_pkgs=//' | tr -s ' \n' '\n' | grep -v '^$')
bdeps=$(sed -n '/^Build-Depends:/,/^[A-Z]/p' "$src/contrib/debian/control")
missing=""
for p in $build_pkgs; do
    [ "$p" = build-essential ] && continue # implied by every Debian build
    grep -qE "(^|[ ,])$p([ ,(]|$)" <<<"$bdeps" || missing+=" $p"
done
[ -n "$build_pkgs" ] && [ -z "$missing" ] && ok "Build-Depends has every build package of contrib/deps.sh" ||
    bad "contrib/debian/control Build-Depends lacks:$missing"

rm -rf "$keep" && mkdir -p "$keep"
# nocheck: the unit tests run in this suite already (and two copies at once would share ports).
if DEB_BUILD_OPTIONS="nocheck parallel=2" bash "$src/contrib/build-deb.sh" "$keep" >"$tmp/build.out" 2>&1; then
    ok "build-deb.sh builds"
else
    bad "build-deb.sh: $(tail -20 "$tmp/build.out")"
    checks_done package.sh
    exit
fi
deb=$keep/validora_${version}_$(dpkg --print-architecture).deb
[ -f "$deb" ] && ok "the .deb is named for the project's version ($version)" || bad "no $deb: $(ls "$keep")"
[ ! -e "$src/debian" ] && ok "the tree is left without debian/" || bad "build-deb.sh left $src/debian"

# ---- inspect ----
info=$(dpkg-deb -I "$deb")
[[ $info == *"Package: validora"* && $info == *"Version: $version"* ]] && ok "control: package and version" || bad "control: $info"
depends=$(dpkg-deb -f "$deb" Depends)
[[ $depends == *libc6* && $depends == *liblua5.4* && $depends == *libevent* && $depends != *'${'* ]] &&
    ok "Depends: the shared libraries (\${shlibs:Depends} filled in)" || bad "Depends: $depends"
dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's|^\./|/|' >"$tmp/files"
for f in /usr/bin/validora /usr/share/validora/rules/default.lua /usr/share/validora/rules/lists/disposable.txt \
         /usr/share/validora/rules/validora/classify.lua /usr/share/man/man1/validora.1.gz \
         /usr/share/man/man5/validora.lua.5.gz /usr/share/bash-completion/completions/validora \
         /lib/systemd/system/validora.service /etc/validora/validora.lua \
         /usr/share/doc/validora/copyright /usr/share/doc/validora/examples/read_msgpack.py \
         /usr/share/doc/validora/examples/jq.sh; do
    grep -qxF "$f" "$tmp/files" && ok "ships $f" || bad "the .deb lacks $f"
done
nscripts=0; missing=""
while IFS= read -r s; do
    nscripts=$((nscripts + 1))
    grep -qxF "/usr/share/validora/scripts/$s" "$tmp/files" || missing+=" $s"
done < <(cd "$src/scripts" && find . -type f | sed 's|^\./||')
[ "$nscripts" -gt 0 ] && [ -z "$missing" ] && ok "ships the $nscripts files of scripts/" ||
    bad "the .deb lacks scripts:$missing (of $nscripts)"
allowed='^/$|^/(usr|etc|lib)/|^/(usr|etc|lib)$'
stray=$(grep -vE "$allowed" "$tmp/files")
[ -z "$stray" ] && ok "nothing outside /usr, /etc and /lib" || bad "stray paths in the .deb: $stray"
if command -v lintian >/dev/null; then
    # Errors fail; warnings are shown.
    lintian --tag-display-limit 0 "$deb" >"$tmp/lintian.out" 2>&1
    grep '^W:' "$tmp/lintian.out" | sed 's/^/note: lintian: /'
    errs=$(grep '^E:' "$tmp/lintian.out")
    [ -z "$errs" ] && ok "lintian: no errors" || bad "lintian: $errs"
else
    bad "lintian missing (contrib/deps.sh --test installs it)"
fi
dpkg-deb -e "$deb" "$tmp/control"
[ "$(cat "$tmp/control/conffiles" 2>/dev/null)" = /etc/validora/validora.lua ] &&
    ok "conffile: /etc/validora/validora.lua" || bad "conffiles: $(cat "$tmp/control/conffiles" 2>&1)"

# ---- install ----
real=0
if [ "${VALIDORA_PKG_INSTALL:-}" = 1 ] || [ "${CI:-}" = true ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "note: a real install needs root; installing into a scratch root instead"
    elif dpkg-query -W -f='${Status}' validora 2>/dev/null | grep -q "ok installed" || [ -e /usr/bin/validora ]; then
        echo "note: validora is installed on this machine already; installing into a scratch root instead"
    else
        real=1
    fi
fi
if [ "$real" = 1 ]; then
    root=
    if dpkg -i "$deb" >"$tmp/dpkg.out" 2>&1; then
        installed_here=1
        ok "dpkg -i installs it"
    else
        bad "dpkg -i: $(cat "$tmp/dpkg.out")"
    fi
else
    root=$tmp/root
    dpkg -x "$deb" "$root" && ok "dpkg -x unpacks it into a scratch root" || bad "dpkg -x failed"
    sim=$(apt-get -s install "$deb" 2>&1)
    [[ $sim == *"Inst validora ($version"* && $sim != *"unmet dependencies"* ]] &&
        ok "apt-get -s: it installs here, its dependencies resolve" || bad "apt-get -s install: $sim"
fi
B=$root/usr/bin/validora
R=$root/usr/share/validora/rules
out=$("$B" --version 2>&1)
[ "$out" = "validora $version" ] && ok "the installed binary runs: $out" || bad "--version: $out"
# The installed binary knows only the installed rules (VALIDORA_SOURCE_RULES_FALLBACK=OFF).
grep -qa "/usr/share/validora/rules" "$B" && ok "its default rules are /usr/share/validora/rules" || bad "no /usr/share/validora/rules in the binary"
if grep -qa "validora-deb\." "$B"; then bad "a build path is in the binary"; else ok "no build path in the binary"; fi
if [ "$real" = 1 ]; then
    out=$(validora rules check 2>&1) && ok "rules check: the default (installed) rules load" || bad "rules check (default): $out"
    out=$(env -u VALIDORA_CONFIG validora config check 2>&1)
    [[ $out == *"/etc/validora/validora.lua: ok (0 settings)"* ]] && ok "config check: the default file, as shipped" || bad "config check: $out"
    MANWIDTH=80 man --warnings validora >/dev/null 2>"$tmp/man.err" && [ ! -s "$tmp/man.err" ] &&
        MANWIDTH=80 man --warnings 5 validora.lua >/dev/null 2>>"$tmp/man.err" && [ ! -s "$tmp/man.err" ] &&
        ok "man validora, man 5 validora.lua: found where installed" || bad "man by name: $(cat "$tmp/man.err")"
fi

# ---- the shipped config ----
conf=$root/etc/validora/validora.lua
out=$("$B" config check -c "$conf" 2>&1); rc=$?
[ $rc -eq 0 ] && [[ $out == *": ok (0 settings)"* ]] && ok "config check: the shipped config is valid and sets nothing" || bad "config check: rc=$rc $out"
# Every setting the example shows, uncommented: its defaults must all be values the check takes.
sed -E -e 's/^  -- ([a-z_]+ = .*,)( -- .*)?$/  \1/' -e 's/^  -- ([a-z_]+ = \{)$/  \1/' -e 's/^  -- (\},)$/  \1/' \
    -e 's/^  --   ([a-z_]+ = .*,)( -- .*)?$/    \1/' "$conf" >"$tmp/uncommented.lua"
out=$("$B" config check -c "$tmp/uncommented.lua" 2>&1); rc=$?
[ $rc -eq 0 ] && [[ $out =~ ok\ \(([0-9]+)\ settings\) ]] && [ "${BASH_REMATCH[1]}" -ge 20 ] &&
    ok "the example's settings, uncommented, pass config check (${BASH_REMATCH[1]} settings)" ||
    bad "uncommented example: rc=$rc $out"

# ---- rules ----
out=$("$B" rules check --rules "$R" 2>&1) && ok "rules check: the installed rules load" || bad "rules check: $out"
out=$("$B" rules test --rules "$R" 2>&1); rc=$?
[ $rc -eq 0 ] && [[ $out =~ ([1-9][0-9]*)\ passed,\ 0\ failed ]] && ok "rules test: the installed rule tests pass (${BASH_REMATCH[1]})" ||
    bad "rules test: rc=$rc $(echo "$out" | tail -5)"

# ---- man pages ----
for page in man1/validora.1.gz man5/validora.lua.5.gz; do
    MANWIDTH=80 man --warnings -l "$root/usr/share/man/$page" >"$tmp/page.txt" 2>"$tmp/page.err"; rc=$?
    [ $rc -eq 0 ] && [ ! -s "$tmp/page.err" ] && [ -s "$tmp/page.txt" ] && ok "man -l $page renders without warnings" ||
        bad "man $page: rc=$rc $(head -5 "$tmp/page.err")"
done
MANWIDTH=200 man -l "$root/usr/share/man/man1/validora.1.gz" 2>/dev/null >"$tmp/v1.txt"
# Every command the binary lists, and its subcommands, has a section with every option of its --help.
cmds=$("$B" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z-]*\)  .*/\1/p')
missing=""; nopts=0; ncmds=0
for c in $(printf '%s\n' $cmds serve run | awk '!seen[$0]++'); do
    if ! help=$("$B" "$c" --help 2>&1); then
        grep -q "validora $c$" "$tmp/v1.txt" && grep -q "Not in this build: validora $version has no $c command" "$tmp/v1.txt" &&
            ok "validora(1): $c, missing from this build, is marked so" || bad "validora(1): no 'not in this build' for $c"
        continue
    fi
    subs=$(echo "$help" | sed -n 's/^  \([a-z][a-z-]*\)  .*/\1/p')
    for p in ${subs:-""}; do
        words="$c${p:+ $p}"
        h=$("$B" $words --help 2>&1)
        ncmds=$((ncmds + 1))
        grep -q "^   validora $words$" "$tmp/v1.txt" || missing+=" [section: validora $words]"
        for o in $(echo "$h" | grep -E '^ +-' | grep -oE -- '--(\[no-\])?[a-z][a-z0-9-]*|^ +-[a-zA-Z]\b' | tr -d ' '); do
            nopts=$((nopts + 1))
            grep -qF -- "$o" "$tmp/v1.txt" || missing+=" [$words: $o]"
        done
    done
done
[ -z "$missing" ] && [ "$nopts" -gt 50 ] && ok "validora(1): $ncmds commands, each with all its options ($nopts)" ||
    bad "validora(1) lacks:$missing (options seen: $nopts)"
MANWIDTH=200 man -l "$root/usr/share/man/man5/validora.lua.5.gz" 2>/dev/null >"$tmp/v5.txt"
missing=""
for k in $(grep -E '^  -- [a-z_]+ = ' "$conf" | grep -v '= {' | awk '{print $2}'); do
    grep -qE "^       $k = " "$tmp/v5.txt" || missing+=" $k"
done
[ -z "$missing" ] && grep -q "Section verify" "$tmp/v5.txt" && ok "validora.lua(5): every top-level setting of the example, with its default" ||
    bad "validora.lua(5) lacks:$missing"

# ---- bash completion ----
comp=$root/usr/share/bash-completion/completions/validora
complete_words() { # the completions of the words given (the last is the one being typed)
    bash -c '
        [ -r /usr/share/bash-completion/bash_completion ] && . /usr/share/bash-completion/bash_completion
        . "$1"; shift
        COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        _validora validora "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf "%s\n" "${COMPREPLY[@]}"' complete "$comp" "$@"
}
[ "$(complete_words validora ver)" = verify ] && ok "completion: a command" || bad "completion 'ver': $(complete_words validora ver)"
[ "$(complete_words validora rules ch)" = check ] && ok "completion: a subcommand" || bad "completion 'rules ch': $(complete_words validora rules ch)"
[ "$(complete_words validora verify --per-mx)" = --per-mx-sessions ] && ok "completion: an option" || bad "completion '--per-mx': $(complete_words validora verify --per-mx)"
all=$(complete_words validora verify --)
missing=""
for o in $("$B" verify --help | grep -E '^ +-' | grep -oE -- '--[a-z][a-z0-9-]*|--\[no-\][a-z-]+'); do
    case $o in
        --\[no-\]*) for n in "--${o#--\[no-\]}" "--no-${o#--\[no-\]}"; do grep -qxF -- "$n" <<<"$all" || missing+=" $n"; done ;;
        *) grep -qxF -- "$o" <<<"$all" || missing+=" $o" ;;
    esac
done
[ -z "$missing" ] && ok "completion: every option of verify --help" || bad "completion lacks:$missing"
mkdir -p "$tmp/cwd/adir" && touch "$tmp/cwd/list.txt"
got=$(cd "$tmp/cwd" && complete_words validora verify -i l)
[[ $got == *list.txt* ]] && ok "completion: a FILE argument completes file names" || bad "completion -i: '$got'"
got=$(cd "$tmp/cwd" && complete_words validora verify --transcript a)
[[ $got == *adir* ]] && ok "completion: a DIR argument completes directories" || bad "completion --transcript: '$got'"

# ---- systemd unit ----
unit=$root/lib/systemd/system/validora.service
prop() { sed -n "s/^$1=//p" "$unit"; }
execstart=$(prop ExecStart)
[[ $execstart == "/usr/bin/validora serve "* ]] && ok "unit: ExecStart runs validora serve" || bad "ExecStart: $execstart"
[[ $execstart == *"--config /etc/validora/validora.lua"* ]] && ok "unit: ExecStart names the config file" || bad "ExecStart config: $execstart"
[[ $execstart == *"--state-dir /var/lib/$(prop StateDirectory)"* ]] && ok "unit: --state-dir is the StateDirectory" || bad "state dir: $execstart / $(prop StateDirectory)"
for want in DynamicUser=yes StateDirectory=validora ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
            NoNewPrivileges=yes CapabilityBoundingSet= "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" \
            SystemCallFilter=@system-service 'ExecReload=/bin/kill -HUP $MAINPID' Restart=on-failure; do
    grep -qxF -- "$want" "$unit" && ok "unit: $want" || bad "unit lacks $want"
done
if command -v systemd-analyze >/dev/null; then
    # Checked where it is installed: a scratch root's binary and pages stand in for /usr's.
    mkdir -p "$tmp/unit"
    sed "s|/usr/bin/validora|$B|" "$unit" >"$tmp/unit/validora.service"
    out=$(MANPATH=$root/usr/share/man systemd-analyze verify "$tmp/unit/validora.service" 2>&1) && [ -z "$out" ] &&
        ok "systemd-analyze verify: clean" || bad "systemd-analyze verify: $out"
    score=$(systemd-analyze security --offline=yes "$tmp/unit/validora.service" 2>&1 | sed -n 's/.*Overall exposure level for validora.service: \([0-9.]*\).*/\1/p')
    [ -n "$score" ] && awk "BEGIN{exit !($score <= 2.0)}" && ok "systemd-analyze security: exposure $score (<= 2.0)" ||
        bad "systemd-analyze security: exposure '${score:-?}'"
else
    bad "systemd-analyze missing (contrib/deps.sh --test installs systemd)"
fi

# ---- examples: a record stream made without a test world (DNS to a closed port) ----
ex=$root/usr/share/doc/validora/examples
"$B" verify --no-smtp --dns 127.0.0.1:1 --dns-timeout 0.1 --rules "$R" --state-dir "$tmp/state" \
    -o "$tmp/r.mpk" a@b.test not-an-address c@d.test >"$tmp/verify.out" 2>&1
[ -s "$tmp/r.mpk" ] && ok "a record stream to read" || bad "verify: $(cat "$tmp/verify.out")"
# What the stream holds, as validora cat says: the examples must agree with it.
want=$("$B" cat "$tmp/r.mpk" | grep -o '"status":"[a-z]*"' | cut -d'"' -f4 | sort | uniq -c |
    sort -k1,1nr -k2 | awk '{print $2 "\t" $1; n += $1} END {print "total\t" n}')
[ "$(printf '%s\n' "$want" | tail -1)" = "total	3" ] || bad "validora cat: $want"
out=$(/usr/bin/python3 "$ex/read_msgpack.py" "$tmp/r.mpk" 2>&1); rc=$?
[ $rc -eq 0 ] && [ "$out" = "$want" ] && [[ $out == *"unknown	2"* ]] && ok "read_msgpack.py: counts by status" ||
    bad "read_msgpack.py: rc=$rc '$out' want '$want'"
out=$(/usr/bin/python3 "$ex/read_msgpack.py" <"$tmp/r.mpk" 2>&1) && [ "$out" = "$want" ] && ok "read_msgpack.py: reads standard input" ||
    bad "read_msgpack.py stdin: $out"
size=$(stat -c %s "$tmp/r.mpk")
head -c $((size - 3)) "$tmp/r.mpk" >"$tmp/cut.mpk"
out=$(/usr/bin/python3 "$ex/read_msgpack.py" "$tmp/cut.mpk" 2>"$tmp/cut.err"); rc=$?
[ $rc -eq 1 ] && grep -q "truncated" "$tmp/cut.err" && [[ $out == *"total	2"* ]] &&
    ok "read_msgpack.py: a stream cut short is reported, its complete records counted" || bad "read_msgpack.py cut: rc=$rc $out $(cat "$tmp/cut.err")"
out=$(VALIDORA=$B sh "$ex/jq.sh" "$tmp/r.mpk" 2>&1); rc=$?
jq_want=$(printf '%s\n' "$want" | grep -v '^total' | sort; printf '%s\n' "$want" | grep '^total')
[ $rc -eq 0 ] && [ "$out" = "$jq_want" ] && ok "jq.sh: counts by status through validora cat" || bad "jq.sh: rc=$rc '$out' want '$jq_want'"

# ---- the shipped scripts, run from where they are installed ----
S=$root/usr/share/validora/scripts
for s in "$S"/*.lua; do
    out=$("$B" run --rules "$R" "$s" --help 2>&1) && [[ $out == *usage:* ]] && ok "run ${s##*/} --help" || bad "run ${s##*/} --help: $out"
done
out=$("$B" run --rules "$R" --state-dir "$tmp/state" --dns 127.0.0.1:1 "$S/summary.lua" "$tmp/r.mpk" 2>&1); rc=$?
[ $rc -eq 0 ] && [[ $out == *"3 records"* ]] && grep -qE '^ +unknown +2 ' <<<"$out" &&
    ok "run summary.lua: the installed script reads the stream (its lib/ found beside it)" || bad "run summary.lua: rc=$rc $out"

# ---- remove ----
if [ "$installed_here" = 1 ]; then
    if dpkg --purge validora >"$tmp/dpkg.out" 2>&1 && [ ! -e /usr/bin/validora ] && [ ! -e /etc/validora/validora.lua ]; then
        installed_here=0
        ok "dpkg --purge removes it, conffile too"
    else
        bad "dpkg --purge: $(cat "$tmp/dpkg.out")"
    fi
fi
checks_done package.sh

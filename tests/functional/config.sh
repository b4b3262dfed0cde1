#!/usr/bin/env bash
# config.sh — the config file (docs/config.md): `validora config check|show`, a file's values
# reaching a command, the command line winning, sections, and every kind of bad file refused
# with a message naming the file and the key. Needs no test world: DNS goes to a closed port.
set -uo pipefail
V=${VALIDORA:?VALIDORA must name the validora binary}
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp
unset VALIDORA_CONFIG

cat >"$tmp/good.lua" <<'LUA'
-- a config file is Lua: comments, locals and string functions work
local closed = "127.0.0.1:1"
return {
  dns = closed,
  dns_timeout = 0.2,
  smtp = false,
  allow_private_destinations = true,
  rules = { "RULES" },
  verify = { format = "csv", concurrency = 7, dns_timeout = 0.3 },
}
LUA
sed -i "s|RULES|$VALIDORA_SOURCE_DIR/rules|" "$tmp/good.lua"

out=$("$V" config check -c "$tmp/good.lua" 2>&1); rc=$?
[ $rc -eq 0 ] && [[ $out == *"ok (8 settings)"* ]] && ok "check: a good file" || bad "check good: rc=$rc $out"

show=$("$V" config show -c "$tmp/good.lua" --smtp-timeout 5 2>&1); rc=$?
[ $rc -eq 0 ] && ok "show: runs" || bad "show: rc=$rc $show"
[[ $show == *"dns = \"127.0.0.1:1\", -- $tmp/good.lua"* ]] && ok "show: a file's value and its source" || bad "show dns: $show"
[[ $show == *"smtp_timeout = 5, -- command line"* ]] && ok "show: the command line's value wins" || bad "show cli: $show"
[[ $show == *"greylist_delay = 300, -- default"* ]] && ok "show: a default" || bad "show default: $show"
[[ $show == *"dns_timeout = 0.3, -- $tmp/good.lua"* ]] && ok "show: the section's value wins over the top level" || bad "show section: $show"
[[ $show == *"concurrency = 7, -- $tmp/good.lua"* ]] && ok "show: a command's own option from its section" || bad "show own: $show"
[[ $show == *"allow_private_destinations = true, -- $tmp/good.lua"* ]] && ok "show: allow_private_destinations from the file" || bad "show allow_private_destinations: $show"
# what show prints is itself a config file the check accepts
"$V" config show -c "$tmp/good.lua" >"$tmp/shown.lua" 2>/dev/null
out=$("$V" config check -c "$tmp/shown.lua" 2>&1) && ok "show's output is a valid config file" || bad "show output: $out"
show=$("$V" config show doctor -c "$tmp/good.lua" 2>&1)
[[ $show == *"dns_timeout = 0.2, -- $tmp/good.lua"* && $show != *"concurrency"* ]] && ok "show doctor: verify's section does not apply" || bad "show doctor: $show"

# {} is an empty list (or an empty section); `rules` at the top level is the --rules list
printf 'return { rules = {}, doctor = {}, verify = { concurrency = 3 } }\n' >"$tmp/empty.lua"
out=$("$V" config check -c "$tmp/empty.lua" 2>&1) && ok "{}: an empty list and an empty section" || bad "empty: $out"
show=$("$V" config show -c "$tmp/empty.lua" --rules /a 2>&1)
[[ $show == *'rules = { "/a" }, -- command line'* ]] && ok "show: the command line's list replaces the file's" || bad "show list: $show"
out=$("$V" rules check -c "$tmp/good.lua" 2>&1); rc=$?
[ $rc -eq 0 ] && ok "rules check reads the top level (rules = { DIR })" || bad "rules check: rc=$rc $out"

# the file reaches verify: csv (its section), no SMTP, DNS to a closed port -> dns_error fast
out=$("$V" verify --allow-private-destinations -c "$tmp/good.lua" --state-dir "$tmp/st" a@valid.test 2>"$tmp/err"); rc=$?
# (no DNS server answering is exit 1 with a loud warning, issue 17: the records are still written)
[ $rc -eq 1 ] && [[ $out == email,address,* && $out == *",unknown,dns_error,"* ]] && grep -q "NO DNS SERVER ANSWERS" "$tmp/err" \
    && ok "verify reads the file" || bad "verify: rc=$rc $out $(cat "$tmp/err")"
out=$(VALIDORA_CONFIG="$tmp/good.lua" "$V" verify --allow-private-destinations --format json --state-dir "$tmp/st" a@valid.test 2>/dev/null)
[[ $out == '{"email":"a@valid.test"'*'"reason":"dns_error"'* ]] && ok "VALIDORA_CONFIG names the file; --format on the command line wins" || bad "env: $out"
out=$(VALIDORA_CONFIG="$tmp/good.lua" "$V" verify --allow-private-destinations -c '' --no-smtp --dns 127.0.0.1:1 --dns-timeout 0.1 --state-dir "$tmp/st" a@valid.test 2>/dev/null)
[[ $out == '{"email"'* ]] && ok "-c '' reads no file" || bad "-c '': $out"

# bad files: refused, exit 1 for check and 2 for a command, a message naming file and key
bad_file() { # WHAT BODY EXPECTED-MESSAGE-PART
    printf '%s\n' "$2" >"$tmp/bad.lua"
    local out rc out2 rc2
    out=$("$V" config check -c "$tmp/bad.lua" 2>&1); rc=$?
    out2=$("$V" verify --allow-private-destinations -c "$tmp/bad.lua" --state-dir "$tmp/st" a@valid.test 2>&1); rc2=$?
    if [ $rc -eq 1 ] && [ $rc2 -eq 2 ] && [[ $out == *"$tmp/bad.lua"*"$3"* ]] && [[ $out2 == *"$3"* ]]; then
        ok "refused: $1"
    else
        bad "$1: check rc=$rc '$out'; verify rc=$rc2 '$out2'"
    fi
}
bad_file "unknown option" 'return { smtp_timeot = 3 }' "smtp_timeot: no engine option"
bad_file "value out of bounds" 'return { smtp_timeout = -1 }' "not a number of seconds"
bad_file "wrong type" 'return { smtp = "perhaps" }' "smtp"
bad_file "unknown section" 'return { verfy = { concurrency = 3 } }' "no command has a section 'verfy'"
bad_file "section option out of bounds" 'return { verify = { concurrency = 0 } }' "concurrency"
bad_file "not a table" 'return 5' "must return a table"
bad_file "syntax error" 'return {' ":2: unexpected symbol"
bad_file "a runaway loop" 'while true do end' "instruction budget"
bad_file "no os.execute" 'os.execute("touch /tmp/pwned") return {}' "execute"
bad_file "a function value" 'return { helo = function() end }' "not an option value"
bad_file "nested sections" 'return { verify = { x = { y = 1 } } }' "sections do not nest"
bad_file "a config naming a config" 'return { config = "/x" }' "config"
bad_file "{} for an option that is no list" 'return { helo = {} }' "takes no list"
out=$("$V" verify --allow-private-destinations -c "$tmp/none.lua" a@valid.test 2>&1); rc=$?
[ $rc -eq 2 ] && [[ $out == *"none.lua: No such file"* ]] && ok "a missing -c file is an error" || bad "missing: rc=$rc $out"
if [ ! -e /etc/validora/validora.lua ]; then
    out=$("$V" config check 2>&1); rc=$?
    [ $rc -eq 0 ] && [[ $out == *"/etc/validora/validora.lua: no such file"* ]] && ok "no default file: the defaults apply" || bad "default: rc=$rc $out"
fi
# config show: what the engine computes for what is left unset, and from where (issue 17)
show=$(VALIDORA_RULES= "$V" config show -c '' 2>&1)
[[ $show == *'helo = nil, -- computed: "'*'" ('* ]] && [[ $show == *'mail_from = nil, -- computed: "verify@'* ]] \
    && ok "show: the computed HELO and MAIL FROM" || bad "show computed helo: $show"
[[ $show == *'rules = {}, -- computed: { "/'* ]] && [[ $show == *'state_dir = nil, -- computed: "/'* ]] \
    && [[ $show == *"source_ip = nil, -- unset: the kernel picks"* ]] \
    && ok "show: the rules directory and state dir found, what no source IP means" || bad "show computed rules: $show"
show=$("$V" config show -c '' --helo v.example.test 2>&1)
[[ $show == *'mail_from = nil, -- computed: "verify@v.example.test"'* ]] && ok "show: MAIL FROM follows --helo" \
    || bad "show mail_from from helo: $show"
if grep -q '^nameserver' /etc/resolv.conf 2>/dev/null; then
    [[ $("$V" config show -c '' 2>&1) == *'dns = nil, -- computed: "'*'" (the nameservers of /etc/resolv.conf)'* ]] \
        && ok "show: the resolv.conf servers" || bad "show dns"
fi
checks_done config

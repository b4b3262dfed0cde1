#!/usr/bin/env bash
# script_sandbox.sh — what a `validora run` script cannot do (issue 16, items 1 and 8), and a
# rule file that tries the same (`validora rules check`): no world needed.
#  - package is read-only, and require's path is fixed at start (writing package.path through
#    package.loaded.package changes nothing);
#  - no string.dump (nor ("").dump); require and load read text only (a bytecode module is
#    refused);
#  - setmetatable refuses __gc, in a script and in a rule.
# Env: VALIDORA, VALIDORA_SOURCE_DIR.
set -uo pipefail
: "${VALIDORA:?}" "${VALIDORA_SOURCE_DIR:?}"
export VALIDORA_CONFIG=
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp
mkdir -p "$tmp/s" "$tmp/elsewhere" "$tmp/rules"
echo 'return "evil"' >"$tmp/elsewhere/evil.lua"
echo 'return "fine"' >"$tmp/s/good.lua"
BIN="$tmp/s/binmod.lua" lua5.4 -e 'local f = assert(io.open(os.getenv("BIN"), "wb")); f:write(string.dump(function() return "bytecode" end)); f:close()'

script() { # NAME BODY: runs BODY as a script, its stdout and stderr into $tmp/NAME.{out,err}
    printf '%s\n' "$2" >"$tmp/s/$1.lua"
    "$VALIDORA" run --state-dir "$tmp/st" "$tmp/s/$1.lua" >"$tmp/$1.out" 2>"$tmp/$1.err"
}

script path 'package.path = "'"$tmp"'/elsewhere/?.lua"'
grep -q "package is read-only" "$tmp/path.err" && ok "package.path = ...: refused" || bad "package.path: $(cat "$tmp/path.out" "$tmp/path.err")"

script loaded 'package.loaded.package.path = "'"$tmp"'/elsewhere/?.lua"
local ok, e = pcall(require, "evil")
print(ok and "loaded" or "refused", (require("good")))'
[ "$(cat "$tmp/loaded.out")" = "refused	fine" ] && ok "require's path is fixed at start" || bad "package.loaded.package.path: $(cat "$tmp/loaded.out" "$tmp/loaded.err")"

script dump 'print(string.dump, ("").dump)'
[ "$(cat "$tmp/dump.out")" = "nil	nil" ] && ok "no string.dump" || bad "string.dump: $(cat "$tmp/dump.out" "$tmp/dump.err")"

script binary 'print(pcall(require, "binmod"))'
grep -q "attempt to load a binary chunk" "$tmp/binary.out" && ok "a bytecode module is refused" || bad "binary module: $(cat "$tmp/binary.out" "$tmp/binary.err")"

script binload 'local f = io.open("'"$tmp"'/s/binmod.lua", "rb"); local b = f:read("a"); f:close(); print(load(b))'
grep -q "nil.*binary" "$tmp/binload.out" && ok "load of bytecode is refused" || bad "load binary: $(cat "$tmp/binload.out" "$tmp/binload.err")"

script gc 'setmetatable({}, {__gc = function() while true do end end})'
grep -q "__gc is not allowed" "$tmp/gc.err" && ok "a script's __gc: refused" || bad "script __gc: $(cat "$tmp/gc.err")"

# A rule with a finalizer that loops: refused at load, and nothing hangs.
cp -r "$VALIDORA_SOURCE_DIR/rules/." "$tmp/rules/"
cat >"$tmp/rules/zz_gc.lua" <<'LUA'
local t = setmetatable({}, { __gc = function() while true do end end })
return { name = "zz_gc", match = { domains = { "gc.test" } }, probe = function(job) return job:unknown("x") end, t = t }
LUA
out=$(timeout 60 "$VALIDORA" rules check --rules "$tmp/rules" 2>&1); rc=$?
[ $rc -ne 124 ] && [[ $out == *"__gc is not allowed"* ]] && ok "a rule's __gc: refused at load" || bad "rule __gc: rc=$rc $out"

checks_done script_sandbox

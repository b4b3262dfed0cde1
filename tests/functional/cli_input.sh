#!/usr/bin/env bash
# cli_input.sh — the verify command's contract without the network: input forms (arguments,
# file, stdin pipe, CRLF, comments, blank lines, an over-long line, a NUL echoed whole),
# exit codes (0, 1, 2),
# --help and --version, and that invalid input becomes records rather than failures.
# Uses --no-smtp and address literals or syntax errors only: no DNS, no SMTP.
set -uo pipefail
: "${VALIDORA:?}"
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp
V() { "$VALIDORA" verify --allow-private-destinations --no-smtp "$@"; }

printf '# a comment\r\n\r\na@[127.0.0.1]\r\n  b@[127.0.0.1]  \n\nbad..dots@x.test\nlast@[127.0.0.1]' >"$tmp/list"
V -i "$tmp/list" >"$tmp/o1"; rc=$?
[ $rc -eq 0 ] && ok || bad "file input exit $rc"
got=$(python3 -c 'import json,sys; print(" ".join(sorted(json.loads(l)["email"] for l in open(sys.argv[1]))))' "$tmp/o1")
[ "$got" = "a@[127.0.0.1] b@[127.0.0.1] bad..dots@x.test last@[127.0.0.1]" ] && ok || bad "records from file: $got"
grep -q '"email":"bad..dots@x.test".*"reason":"invalid_syntax"' "$tmp/o1" && ok || bad "invalid address not recorded as invalid_syntax"
grep -q '"reason":"not_probed"' "$tmp/o1" && ok || bad "--no-smtp: not_probed missing"

# the same from a pipe, with a pause: records arrive while input is still open
(cat "$tmp/list"; echo; sleep 0.5; echo 'late@[127.0.0.1]') | V -i - >"$tmp/o2"
[ "$(wc -l <"$tmp/o2")" -eq 5 ] && ok || bad "stdin pipe: $(cat "$tmp/o2")"

# an over-long line (3 MB) becomes one invalid record; the lines around it are kept
{ echo 'x@[127.0.0.1]'; head -c 3000000 /dev/zero | tr '\0' 'y'; echo; echo 'z@[127.0.0.1]'; } >"$tmp/long"
V -i "$tmp/long" >"$tmp/o3"
[ "$(wc -l <"$tmp/o3")" -eq 3 ] && ok || bad "long line (file): $(wc -l <"$tmp/o3") records"
[ "$(awk '{ if (length($0) > m) m = length($0) } END { print m }' "$tmp/o3")" -lt 10000 ] && ok || bad "long line kept whole in the record"
V -i - <"$tmp/long" >/dev/null && cat "$tmp/long" | V -i - >"$tmp/o4"
[ "$(wc -l <"$tmp/o4")" -eq 3 ] && grep -q '"email":"z@' "$tmp/o4" && ok || bad "long line (pipe): $(cut -c1-80 "$tmp/o4")"

# input echo: a line holding a NUL comes back whole, escaped, so results join back to the list
# (file and pipe; JSON and the msgpack stream through cat)
printf 'jo\0hn@example.com\nok@[127.0.0.1]\n' >"$tmp/nul"
for how in file pipe; do
  if [ $how = file ]; then V -i "$tmp/nul" >"$tmp/o5"; else cat "$tmp/nul" | V -i - >"$tmp/o5"; fi
  grep -qF '"email":"jo\u0000hn@example.com"' "$tmp/o5" && grep -q '"reason":"invalid_syntax"' "$tmp/o5" \
    && ok || bad "NUL echo ($how): $(head -c 200 "$tmp/o5")"
done
V -i "$tmp/nul" -o "$tmp/nul.mp" && "$VALIDORA" cat "$tmp/nul.mp" | grep -qF '"email":"jo\u0000hn@example.com"' \
  && ok || bad "NUL echo through msgpack and cat"

# exit codes and messages
V >/dev/null 2>"$tmp/e"; rc=$?
[ $rc -eq 2 ] && grep -q "no addresses" "$tmp/e" && ok || bad "no input: exit $rc $(cat "$tmp/e")"
V --concurrency 0 a@[127.0.0.1] >/dev/null 2>"$tmp/e"; rc=$?
[ $rc -eq 2 ] && grep -q -- "--concurrency" "$tmp/e" && ok || bad "bad number: exit $rc"
V --format xml a@[127.0.0.1] >/dev/null 2>"$tmp/e"; rc=$?
[ $rc -eq 2 ] && ok || bad "bad format: exit $rc"
V --bogus >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] && ok || bad "unknown option: exit $rc"
V -i "$tmp/does-not-exist" >/dev/null 2>"$tmp/e"; rc=$?
[ $rc -eq 1 ] && grep -q "does-not-exist" "$tmp/e" && ok || bad "missing input file: exit $rc $(cat "$tmp/e")"
V --rules "$tmp/no-rules" a@[127.0.0.1] >/dev/null 2>"$tmp/e"; rc=$?
[ $rc -eq 1 ] && grep -q "no-rules" "$tmp/e" && ok || bad "missing rules dir: exit $rc $(cat "$tmp/e")"
V -o /nonexistent-dir/out a@[127.0.0.1] 2>"$tmp/e"; rc=$?
[ $rc -eq 1 ] && ok || bad "unwritable output: exit $rc"
V a@[127.0.0.1] >/dev/full 2>"$tmp/e"; rc=$?
[ $rc -eq 1 ] && ok || bad "write error (disk full) not fatal: exit $rc"
"$VALIDORA" verify --allow-private-destinations --help >"$tmp/h"; rc=$?
[ $rc -eq 0 ] && grep -q -- "--greylist-delay" "$tmp/h" && grep -q -- "--smtp-timeout" "$tmp/h" && ok || bad "--help"
"$VALIDORA" --version | grep -Eq '^validora [0-9]+\.[0-9]+' && ok || bad "--version"
"$VALIDORA" frobnicate >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "unknown command not exit 2"
# the nearest command is suggested (issue 17), not a far one
"$VALIDORA" verfy a@b.test >/dev/null 2>"$tmp/e"; rc=$?
[ $rc -eq 2 ] && grep -q "unknown command 'verfy'; did you mean 'verify'?" "$tmp/e" && ok || bad "verfy: rc=$rc $(cat "$tmp/e")"
"$VALIDORA" rules wich a@b.test >/dev/null 2>"$tmp/e"; rc=$?
[ $rc -eq 2 ] && grep -q "did you mean 'which'?" "$tmp/e" && ok || bad "rules wich: rc=$rc $(cat "$tmp/e")"
"$VALIDORA" ledger setage >/dev/null 2>"$tmp/e"; [ $? -eq 2 ] && grep -q "did you mean 'set-age'?" "$tmp/e" && ok || bad "ledger setage: $(cat "$tmp/e")"
"$VALIDORA" frobnicate 2>&1 | grep -q "did you mean" && bad "frobnicate: a suggestion far off" || ok

# msgpack to a file, read back by cat: the same records as JSON
V -o "$tmp/r.mpk" -i "$tmp/list"
"$VALIDORA" cat "$tmp/r.mpk" >"$tmp/r.json"
python3 - "$tmp/o1" "$tmp/r.json" <<'PY' && ok || bad "msgpack round trip differs from JSON output"
import json, sys
def load(p):
    out = {}
    for l in open(p):
        r = json.loads(l); r.pop("elapsed_ms"); r.pop("checked_at"); out[r["email"]] = r
    return out
sys.exit(0 if load(sys.argv[1]) == load(sys.argv[2]) else 1)
PY

checks_done cli_input

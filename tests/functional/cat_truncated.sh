#!/usr/bin/env bash
# cat_truncated.sh — `validora cat` on record streams written by `validora verify --format
# msgpack`: whole streams, streams cut inside a record (from a file and from a pipe), a
# stream holding something that is not a record, several files, CSV, an email holding a NUL
# byte (a hand-made stream), and the command line.
#
# Needs no network and no world: only syntax-invalid addresses are verified, which are
# decided before any DNS lookup (--dns points at the world's port anyway, so a regression
# cannot send queries off the machine). Registered under the world fixture by CMake.
#
# Env: VALIDORA (the CLI binary).
set -uo pipefail

: "${VALIDORA:?VALIDORA must name the validora CLI binary}"
DNS="127.0.0.1:${VALIDORA_DNS_PORT:-5354}"

. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
finish() {
    checks_done cat_truncated
    exit
}

if [ ! -x "$VALIDORA" ]; then
    bad "the CLI '$VALIDORA' is not an executable file (build the validora-cli target)"
    finish
fi

checks_tmp T

# Three records, one file each, so the record boundaries are known from the file sizes.
ADDRS=('a..b@x.test' '@x.test' 'q"uote,comma@x..test')
for i in 0 1 2; do
    if ! "$VALIDORA" verify --allow-private-destinations --state-dir "$T/state" --dns "$DNS" --format msgpack -o "$T/r$i.mp" "${ADDRS[$i]}" \
        2>"$T/verify.err"; then
        bad "validora verify --format msgpack '${ADDRS[$i]}' failed: $(head -3 "$T/verify.err")"
        finish
    fi
done
cat "$T/r0.mp" "$T/r1.mp" "$T/r2.mp" >"$T/all.mp"
size() { stat -c %s "$1"; }
B1=$(size "$T/r0.mp")                  # where record 2 starts
B2=$((B1 + $(size "$T/r1.mp")))        # where record 3 starts
TOTAL=$(size "$T/all.mp")
echo "records start at bytes 0, $B1, $B2; stream is $TOTAL bytes"

# The emails each JSON line holds, one per line ('-' when a line is not a JSON object).
emails() {
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        print(json.loads(line)["email"])
    except Exception:
        print("-")
'
}
EXPECT_ALL=$(printf '%s\n' "${ADDRS[@]}")
EXPECT_TWO=$(printf '%s\n' "${ADDRS[0]}" "${ADDRS[1]}")

# --- the whole stream
"$VALIDORA" cat "$T/all.mp" >"$T/out" 2>"$T/err"
rc=$?
check "whole stream: exit 0 (got $rc)" [ "$rc" -eq 0 ]
check "whole stream: nothing on stderr" [ ! -s "$T/err" ]
check "whole stream: 3 JSON lines with the emails in order" [ "$(emails <"$T/out")" = "$EXPECT_ALL" ]
check "whole stream: every record says invalid_syntax" \
    [ "$(grep -c '"reason":"invalid_syntax"' "$T/out")" -eq 3 ]
"$VALIDORA" cat <"$T/all.mp" >"$T/out2" 2>"$T/err"
check "stdin without FILE gives the same output" cmp -s "$T/out" "$T/out2"

# --- cut inside the last record, from a file
head -c $((B2 + 7)) "$T/all.mp" >"$T/cut.mp"
"$VALIDORA" cat "$T/cut.mp" >"$T/out" 2>"$T/err"
rc=$?
check "truncated file: exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "truncated file: the 2 complete records printed" [ "$(emails <"$T/out")" = "$EXPECT_TWO" ]
want="validora cat: $T/cut.mp: truncated record at byte $B2 (2 complete records before it)"
check "truncated file: stderr is '$want' (got '$(cat "$T/err")')" [ "$(cat "$T/err")" = "$want" ]

# --- every cut inside the last record, through a pipe
good2=$(head -c "$B2" "$T/all.mp" | "$VALIDORA" cat 2>"$T/err")
rc=$?
check "pipe cut exactly between records: exit 0, 2 records" \
    [ "$rc" -eq 0 -a "$(emails <<<"$good2")" = "$EXPECT_TWO" -a ! -s "$T/err" ]
badcuts=0
for ((n = B2 + 1; n < TOTAL; n++)); do
    out=$(head -c "$n" "$T/all.mp" | "$VALIDORA" cat - 2>"$T/err")
    rc=$?
    if [ "$rc" -ne 1 ] || [ "$out" != "$good2" ] ||
        [ "$(<"$T/err")" != "validora cat: -: truncated record at byte $B2 (2 complete records before it)" ]; then
        badcuts=$((badcuts + 1))
        [ "$badcuts" -le 3 ] && echo "  cut at $n: exit $rc, stderr '$(<"$T/err")'"
    fi
done
check "pipe, every cut at $((B2 + 1))..$((TOTAL - 1)): exit 1, the 2 records, the message ($badcuts wrong)" \
    [ "$badcuts" -eq 0 ]

# --- CSV of the truncated stream: header, 2 rows, the quoted third address never appears
"$VALIDORA" cat --csv "$T/cut.mp" >"$T/out" 2>"$T/err"
rc=$?
check "truncated CSV: exit 1" [ "$rc" -eq 1 ]
check "truncated CSV: header + 2 rows" [ "$(wc -l <"$T/out")" -eq 3 ]
check "truncated CSV: header first" \
    [ "$(head -1 "$T/out" | cut -d, -f1-5)" = "email,address,domain,status,reason" ]
check "truncated CSV: same message" [ "$(grep -c 'truncated record at byte' "$T/err")" -eq 1 ]

# --- CSV of the whole stream: RFC 4180 quoting of the third address, read back with python
"$VALIDORA" cat --csv "$T/all.mp" >"$T/out" 2>"$T/err"
got=$(python3 -c 'import csv,sys; print("\n".join(r[0] for r in list(csv.reader(sys.stdin))[1:]))' <"$T/out")
check "CSV reads back (python csv) with the emails intact" [ "$got" = "$EXPECT_ALL" ]

# --- several files: a truncated one does not stop the next; CSV has one header
"$VALIDORA" cat "$T/cut.mp" "$T/all.mp" >"$T/out" 2>"$T/err"
rc=$?
check "truncated then whole file: exit 1, 2 + 3 records" \
    [ "$rc" -eq 1 -a "$(emails <"$T/out" | wc -l)" -eq 5 ]
"$VALIDORA" cat --csv "$T/all.mp" - "$T/all.mp" <"$T/r0.mp" >"$T/out" 2>"$T/err"
rc=$?
check "CSV of three inputs: exit 0, one header, 7 rows" \
    [ "$rc" -eq 0 -a "$(grep -c '^email,' "$T/out")" -eq 1 -a "$(wc -l <"$T/out")" -eq 8 ]

# --- something that is not a record after the first record
{ cat "$T/r0.mp"; printf '\x92\x01\x02'; cat "$T/r1.mp"; } >"$T/notmap.mp"
"$VALIDORA" cat "$T/notmap.mp" >"$T/out" 2>"$T/err"
rc=$?
check "non-map object: exit 1, the record before it printed" \
    [ "$rc" -eq 1 -a "$(emails <"$T/out")" = "${ADDRS[0]}" ]
check "non-map object: stderr names byte $B1 ('$(cat "$T/err")')" \
    grep -q "notmap.mp: the object at byte $B1 is not a map" "$T/err"

# --- an email holding a NUL byte: JSON round-trips it as \u0000, CSV writes U+FFFD and no NUL
printf '\x81\xa5email\xb1jo\x00hn@example.com' >"$T/nul.mp"
check "NUL stream: 25 bytes written" [ "$(size "$T/nul.mp")" -eq 25 ]
"$VALIDORA" cat "$T/nul.mp" >"$T/out" 2>"$T/err"
rc=$?
check "NUL in email, JSON: exit 0, the line is {\"email\":\"jo\\u0000hn@example.com\"}" \
    [ "$rc" -eq 0 -a "$(cat "$T/out")" = '{"email":"jo\u0000hn@example.com"}' ]
check "NUL in email, JSON reads back with the NUL (python json)" python3 -c '
import json, sys
sys.exit(json.loads(open(sys.argv[1]).read())["email"] != "jo\x00hn@example.com")' "$T/out"
"$VALIDORA" cat --csv "$T/nul.mp" >"$T/out" 2>"$T/err"
rc=$?
check "NUL in email, CSV: exit 0, U+FFFD in its place, no NUL byte (python csv)" python3 -c '
import csv, sys
data = open(sys.argv[1], "rb").read()
rows = list(csv.reader(data.decode("utf-8").splitlines()))
sys.exit(not (int(sys.argv[2]) == 0 and b"\0" not in data and rows[1][0] == "jo\ufffdhn@example.com"))
' "$T/out" "$rc"

# --- the command line
"$VALIDORA" cat "$T/does-not-exist.mp" >"$T/out" 2>"$T/err"
rc=$?
check "missing file: exit 1 with the name and the reason" \
    [ "$rc" -eq 1 -a "$(cat "$T/err")" = "validora cat: $T/does-not-exist.mp: No such file or directory" ]
"$VALIDORA" cat --bogus "$T/all.mp" >"$T/out" 2>"$T/err"
rc=$?
check "unknown option: exit 2, nothing printed, points at --help" \
    [ "$rc" -eq 2 -a ! -s "$T/out" -a "$(tail -1 "$T/err")" = "Try 'validora cat --help'." ]
"$VALIDORA" cat --json --csv "$T/all.mp" >"$T/out" 2>"$T/err"
check "--json with --csv: exit 2" [ $? -eq 2 ]
"$VALIDORA" cat --help >"$T/out" 2>"$T/err"
rc=$?
check "--help: exit 0, on stdout, names --csv and the exit statuses" \
    [ "$rc" -eq 0 -a "$(grep -c -e '--csv' -e 'Exit status' "$T/out")" -ge 2 ]

finish

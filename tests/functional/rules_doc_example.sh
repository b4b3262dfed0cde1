#!/usr/bin/env bash
# rules_doc_example.sh — docs/rules.md's worked example works as written: its rule and its
# test, taken from the document's code blocks, pass `validora rules check` and `validora rules
# test` against a transcript of the dialogue the example describes, and the test fails when
# the rule's verdict is changed. Env: VALIDORA, VALIDORA_SOURCE_DIR.
set -uo pipefail
: "${VALIDORA:?}" "${VALIDORA_SOURCE_DIR:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0; failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
mine="$tmp/etc"; mkdir -p "$mine/tests/transcripts"
python3 - "$VALIDORA_SOURCE_DIR/docs/rules.md" "$mine" <<'PY' && ok || bad "code blocks not found in docs/rules.md"
import re, sys, textwrap
doc = open(sys.argv[1]).read()
blocks = [textwrap.dedent(b) for b in re.findall(r"```lua\n(.*?)```", doc, re.S)]
rule = [b for b in blocks if '"*.mail.example.net"' in b and "job:smtp()" in b]
test = [b for b in blocks if "transcripts/example-unknown.txt" in b]
assert len(rule) == 1 and len(test) == 1
open(sys.argv[2] + "/example.lua", "w").write(rule[0])
open(sys.argv[2] + "/tests/example-unknown.lua", "w").write(test[0])
PY
cat >"$mine/tests/transcripts/example-unknown.txt" <<'TXT'
# validora transcript 1
# mx: mx1.mail.example.net 192.0.2.10:25
# started: 2026-12-01T20:00:00.123Z
   0.010 < 220 mx1.mail.example.net ESMTP
   0.011 > EHLO verify.example.org
   0.012 < 250-mx1.mail.example.net
   0.012 < 250 ENHANCEDSTATUSCODES
   0.013 > MAIL FROM:<verify@example.org>
   0.014 < 250 2.1.0 Ok
   0.015 > RCPT TO:<postmaster@example.com>
   0.016 < 250 2.1.5 Ok
   0.017 > RCPT TO:<someone@example.com>
   0.018 < 550 5.1.1 <someone@example.com>: Recipient address rejected: User unknown
   0.020 > QUIT
   0.021 < 221 2.0.0 Bye
# end: 0.021 closed by client
TXT
R=(--rules "$VALIDORA_SOURCE_DIR/rules" --rules "$mine")
"$VALIDORA" rules check "${R[@]}" >"$tmp/c" 2>&1 && grep -qE "^ +[0-9]+  example +$mine/example.lua" "$tmp/c" && ok || bad "check: $(cat "$tmp/c")"
"$VALIDORA" rules test "${R[@]}" "$mine/tests" >"$tmp/t" 2>&1 && grep -q "^1 passed, 0 failed" "$tmp/t" \
  && ok || bad "test: $(cat "$tmp/t")"
sed -i 's/return job\[status\](job, reason, r)/return job:deliverable("accepted", r)/' "$mine/example.lua"
"$VALIDORA" rules test "${R[@]}" "$mine/tests" >"$tmp/t2" 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q "^FAIL example" "$tmp/t2" && ok || bad "a changed verdict still passes: $(cat "$tmp/t2")"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]

#!/usr/bin/env bash
# rules_test_teeth.sh — the shipped rule tests (rules/tests) have teeth: on a copy of rules/,
# each change below to the classifier or to the shared SMTP strategy (validora/provider.lua)
# must make `validora rules test` fail (exit 1) and name the tests it breaks, while the
# untouched copy passes. Then the runner's
# own refusals: a script the client does not follow, a script that runs out, a file that is
# not data, a usage error. No test world: playback runs on loopback inside validora.
# Env: VALIDORA (the binary), VALIDORA_SOURCE_DIR.
set -uo pipefail
: "${VALIDORA:?}" "${VALIDORA_SOURCE_DIR:?}"
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp

# A fresh copy of the source rules in $tmp/NAME. No mutant below touches the alternative
# checks, so a mutant's copy leaves out the tests that play HTTP (their limiter waits are
# most of the suite's time); the untouched copy (`copy plain all`) keeps every test.
copy() {
  rm -rf "$tmp/$1"
  cp -r "$VALIDORA_SOURCE_DIR/rules" "$tmp/$1"
  if [ "${2:-}" != all ]; then
    grep -l '^  http = {' "$tmp/$1"/tests/*.lua | xargs -r rm -f
  fi
}

# Runs the shipped tests of the copy NAME; output in $tmp/NAME.out, exit status in $rc.
run() {
  "$VALIDORA" rules test --rules "$tmp/$1" >"$tmp/$1.out" 2>"$tmp/$1.err"
  rc=$?
}

# mutant NAME FILE WHAT FAILING_TEST... — FILE (under the copy) was changed (by the caller,
# before): the run must exit 1, name each FAILING_TEST on a FAIL line and fail no other test.
mutant() {
  local name=$1 file=$2 what=$3
  shift 3
  if cmp -s "$VALIDORA_SOURCE_DIR/rules/$file" "$tmp/$name/$file"; then
    bad "$name: the change to $file ($what) did not apply: update this test"
    return
  fi
  run "$name"
  if [ "$rc" -ne 1 ]; then
    bad "$name ($what): exit $rc, expected 1"
    sed 's/^/    /' "$tmp/$name.out"
    return
  fi
  local t missing=0
  for t in "$@"; do
    if ! grep -qF "FAIL $t:" "$tmp/$name.out"; then
      bad "$name ($what): the test '$t' did not fail"
      missing=1
    fi
  done
  local nfail
  nfail=$(grep -c '^FAIL ' "$tmp/$name.out")
  if [ "$nfail" -ne "$#" ]; then
    bad "$name ($what): $nfail tests failed, expected $#:"
    grep '^FAIL ' "$tmp/$name.out" | sed 's/^/    /'
    return
  fi
  [ "$missing" -eq 0 ] && ok "$name ($what): $nfail tests fail"
}

# ---- the untouched rules pass
copy plain all
run plain
if [ "$rc" -eq 0 ] && grep -qE '^[1-9][0-9]* passed, 0 failed$' "$tmp/plain.out" &&
  ! grep -q '^FAIL ' "$tmp/plain.out"; then
  ok "untouched rules: $(tail -n 1 "$tmp/plain.out")"
else
  bad "untouched rules: exit $rc"
  sed 's/^/    /' "$tmp/plain.out" "$tmp/plain.err"
fi

# ---- the classifier says "deliverable" for 5.1.1
copy c511
sed -i '/^function M.classify(r)$/a\  if r.enhanced == "5.1.1" then return "deliverable", "accepted", false end' \
  "$tmp/c511/validora/classify.lua"
mutant c511 validora/classify.lua "5.1.1 read as deliverable" \
  "google: Gmail addresses normalised (dots, +tag, googlemail.com), others not" \
  "default: Postfix 550 5.1.1 user unknown" \
  "google: Gmail NoSuchUser (captured, STARTTLS stripped), no catch-all probe"

# ---- two verdicts swapped: disabled <-> not found
copy swap
sed -i -e 's/return "undeliverable", "mailbox_disabled", false/@@DISABLED@@/' \
  -e 's/return "undeliverable", "mailbox_not_found", false/return "undeliverable", "mailbox_disabled", false/' \
  -e 's/@@DISABLED@@/return "undeliverable", "mailbox_not_found", false/' \
  "$tmp/swap/validora/classify.lua"
mutant swap validora/classify.lua "mailbox_disabled and mailbox_not_found swapped" \
  "google: Gmail addresses normalised (dots, +tag, googlemail.com), others not" \
  "google: Gmail 550 5.2.1 disabled account" \
  "default: Postfix 550 5.1.1 user unknown" \
  "google: Gmail NoSuchUser (captured, STARTTLS stripped), no catch-all probe" \
  "microsoft365: SMTP (check off), 550 5.1.10 RecipientNotFound"

# ---- blocked replies read as the mailbox's: the conservative rule gone
copy blocked
sed -i 's/return "unknown", "blocked", false/return "undeliverable", "rejected", false/' \
  "$tmp/blocked/validora/classify.lua"
mutant blocked validora/classify.lua "blocked read as rejected" \
  "default: Spamhaus 554 5.7.1 is blocked, not undeliverable"

# ---- no greylisting retry: the first 4xx is final
copy grey
sed -i 's/if tries >= config.greylist_tries then/if tries >= 1 then/' "$tmp/grey/validora/provider.lua"
mutant grey validora/provider.lua "no greylisting retry" \
  "default: greylisted, accepted on the retry (two sessions)" \
  "default: greylisted, accepted on the retry (kept session)" \
  "default: greylisted until the tries run out" \
  "mimecast: greylisted, accepted on the retry, catch-all probe refused" \
  "mimecast: 451 internal resource greylisting, gives up after the tries"

# ---- a refused catch-all probe read as catch-all
copy probe
sed -i 's/if r.code >= 500 then return false end/if r.code >= 500 then return true end/' \
  "$tmp/probe/validora/provider.lua"
mutant probe validora/provider.lua "a 5xx probe read as catch-all" \
  "google: Gmail addresses normalised (dots, +tag, googlemail.com), others not" \
  "default: accepted, catch-all probe refused" \
  "default: a dropped kept session is retried" \
  "default: greylisted, accepted on the retry (two sessions)" \
  "default: greylisted, accepted on the retry (kept session)" \
  "google: Workspace domain, accepted, catch-all probe refused" \
  "microsoft365: SMTP (check off), DBEB 550 5.4.1 access denied is mailbox_not_found" \
  "mimecast: greylisted, accepted on the retry, catch-all probe refused" \
  "zoho: 550 5.1.1 User does not exist (captured); custom domain probed"

# ---- a dropped kept session is not asked again
copy drop
sed -i 's/if lost and dropped == 0 then/if false then/' "$tmp/drop/validora/provider.lua"
mutant drop validora/provider.lua "no retry after a dropped session" \
  "default: a dropped kept session is retried"

# ---- a provider's own wordings ignored (validora/provider.lua): the generic reading is wrong there
copy own
# (own_reading serves both the rule's signal and its classifier: ignoring the wordings in one
# alone would leave the other's reading in place, as the one reading of a reply means)
sed -i 's/  if code < 400 then return nil end/  if true then return nil end/' \
  "$tmp/own/validora/provider.lua"
mutant own validora/provider.lua "provider wordings ignored" \
  "barracuda: 550 No such user (captured), at barracudanetworks.com and antispamcloud.com" \
  "gmx: reject due to policy restrictions is blocked" \
  "google: 550 5.7.26 unauthenticated sender is blocked, not undeliverable" \
  "microsoft365: SMTP (check off), DBEB 550 5.4.1 access denied is mailbox_not_found" \
  "microsoft365: SMTP (check off), a tenant's Customer Block list opens no breaker" \
  "mimecast: envelope blocked opens no breaker" \
  "mimecast: rejected due to security policies is blocked, the next address deferred"

# ---- the catch-all probe run on consumer domains (gmail.com, comcast.net, me.com, ...)
copy consumer
sed -i 's/    if d == c then return false end/    if d == c then return true end/' "$tmp/consumer/validora/provider.lua"
mutant consumer validora/provider.lua "catch-all probe on consumer domains" \
  "google: Gmail addresses normalised (dots, +tag, googlemail.com), others not" \
  "comcast: RL rate limit, accepted on the retry" \
  "google: Gmail accepted, no catch-all probe" \
  "icloud: 550 5.1.1 user does not exist (captured); me.com accepted, no probe"

# ---- the runner refuses what it cannot play
t="$tmp/own"
mkdir -p "$t/transcripts"
sed 's/> MAIL FROM:/> RSET FROM:/' \
  "$VALIDORA_SOURCE_DIR/rules/tests/transcripts/postfix-user-unknown.txt" >"$t/transcripts/wrong.txt"
cat >"$t/wrong-verb.lua" <<'LUA'
return {
  address = "nobody@valid.test",
  dns = { ["valid.test"] = { mx = { { 10, "mx.valid.test" } } }, ["mx.valid.test"] = { a = { "192.0.2.1" } } },
  sessions = { { transcript = "transcripts/wrong.txt" } },
  expect = { status = "undeliverable", reason = "mailbox_not_found" },
}
LUA
cat >"$t/runs-out.lua" <<'LUA'
return {
  address = "alice@valid.test",
  dns = { ["valid.test"] = { mx = { { 10, "mx.valid.test" } } }, ["mx.valid.test"] = { a = { "192.0.2.1" } } },
  sessions = { { replies = { RCPT = { "250 2.1.5 Ok" } } }, {} },
  expect = { status = "deliverable", reason = "accepted" },
}
LUA
cat >"$t/not-data.lua" <<'LUA'
return { address = "a@b.test", expect = { status = "unknown" }, dns = { ["b.test"] = { mx = function() end } } }
LUA
cat >"$t/code.lua" <<'LUA'
return { address = os.getenv("HOME"), expect = { status = "unknown" } }
LUA
"$VALIDORA" rules test --rules "$VALIDORA_SOURCE_DIR/rules" "$t/wrong-verb.lua" >"$t/out" 2>&1
rc=$?
if [ "$rc" -eq 1 ] && grep -q '^FAIL wrong-verb: session 1 (transcripts/wrong.txt): line 15 expects "RSET FROM:<verify@example.com>", the client sent "MAIL FROM:' "$t/out"; then
  ok "a command that is not the script's fails the test, naming the line"
else
  bad "wrong verb: exit $rc"
  sed 's/^/    /' "$t/out"
fi
"$VALIDORA" rules test --rules "$VALIDORA_SOURCE_DIR/rules" "$t/runs-out.lua" >"$t/out" 2>&1
rc=$?
if [ "$rc" -eq 1 ] && grep -q 'after the script ended' "$t/out" &&
  grep -q 'session 2 (inline) was never connected' "$t/out"; then
  ok "a script that runs out, and a session never used, fail the test"
else
  bad "script ran out: exit $rc"
  sed 's/^/    /' "$t/out"
fi
"$VALIDORA" rules test "$t/not-data.lua" "$t/code.lua" >"$t/out" 2>&1
rc=$?
if [ "$rc" -eq 1 ] && grep -q 'a function is not data' "$t/out" &&
  grep -q "global 'os'" "$t/out" && grep -q '^0 passed, 2 failed$' "$t/out"; then
  ok "test files are data: no functions, no os"
else
  bad "test files as data: exit $rc"
  sed 's/^/    /' "$t/out"
fi
"$VALIDORA" rules test --no-such-option >"$t/out" 2>&1
rc=$?
if [ "$rc" -eq 2 ]; then ok "a usage error exits 2"; else bad "usage error: exit $rc"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

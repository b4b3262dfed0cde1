#!/usr/bin/env bash
# sender_identity.sh — `validora verify` refuses to start with someone else's sender identity
# (issue 8 item 6; engine/sender.c): a --mail-from at a free-mail domain (gmail.com), one at a
# disposable domain (abyssemail.com), a --helo under a free-mail domain (mail.yahoo.com) each
# exit 1 with a message that says which and what to do, write no record and reach no server
# (Postfix's maillog never sees their senders); --allow-foreign-sender runs the same identity
# with a warning (and Postfix does see it: the maillog check has teeth); the defaults and a
# sender of our own run; `doctor` fails own-domain for the same identity with the same fix.
#
# Runs against an already started world (ctest fixture `world`): unbound on
# 127.0.0.1:${VALIDORA_DNS_PORT:-5354}, Postfix (valid.test) on 127.0.0.10:25. Traffic only to
# 127.0.0.0/8.
set -uo pipefail

: "${VALIDORA:?VALIDORA must name the validora CLI binary}"
: "${WORLD_DIR:?WORLD_DIR must name a started world (tests/world/world.sh start DIR)}"
DNS="127.0.0.1:${VALIDORA_DNS_PORT:-5354}"
MAILLOG=$WORLD_DIR/postfix/maillog
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp

# Only what Postfix logs from now on counts (a reused world keeps earlier runs' lines).
start=$(wc -l <"$MAILLOG" 2>/dev/null || echo 0)
newlog() { tail -n +$((start + 1)) "$MAILLOG" 2>/dev/null; }

# Senders unique to this run (letters only), to find our dialogues in Postfix's maillog.
tag=$(LC_ALL=C tr -dc a-z </dev/urandom | head -c 10)
GMAIL="sid-gmail-$tag@gmail.com"
DISPOSABLE="sid-disp-$tag@abyssemail.com"
OURS_HELO="sid-helo-$tag@validora.test" # paired with --helo mail.yahoo.com
FORCED_GMAIL="sid-forcedgmail-$tag@gmail.com"
FORCED_HELO="sid-forcedhelo-$tag@validora.test"
OURS="sid-ours-$tag@validora.test"
RCPT=nobody@valid.test # Postfix refuses it and logs "from=<SENDER> to=<nobody@valid.test>"
for d in gmail.com yahoo.com; do
    grep -qx "$d" "${VALIDORA_SOURCE_DIR:-.}/rules/lists/free.txt" || bad "$d is not in rules/lists/free.txt"
done
grep -qx abyssemail.com "${VALIDORA_SOURCE_DIR:-.}/rules/lists/disposable.txt" ||
    bad "abyssemail.com is not in rules/lists/disposable.txt"

# run NAME ARGS...: verify RCPT; stdout to $tmp/NAME.out, stderr to .err; sets rc
run() {
    local name=$1
    shift
    timeout 60 "$VALIDORA" verify --allow-private-destinations --state-dir "$tmp/state" --dns "$DNS" --smtp-timeout 5 --format json "$@" "$RCPT" \
        >"$tmp/$name.out" 2>"$tmp/$name.err"
    rc=$?
    echo "     $name: exit $rc, $(wc -l <"$tmp/$name.out") records"
    sed 's/^/     stderr: /' "$tmp/$name.err" | head -n 3
}

# refused NAME REGEX ARGS...: exit 1, no record, a message matching REGEX that says what to do
refused() {
    local name=$1 want=$2
    shift 2
    run "$name" "$@"
    [ "$rc" -eq 1 ] && ok "$name: exit 1" || bad "$name: exit $rc, want 1"
    [ ! -s "$tmp/$name.out" ] && ok "$name: no record" || bad "$name: records written"
    local e
    e=$(cat "$tmp/$name.err")
    grep -Eq -- "refusing to probe as .*$want" <<<"$e" && ok "$name: says why" ||
        bad "$name: no /refusing to probe as .*$want/ in: $e"
    grep -q -- "use a MAIL FROM and a HELO name at a domain you own" <<<"$e" &&
        grep -q -- "--allow-foreign-sender starts anyway" <<<"$e" && ok "$name: says what to do" ||
        bad "$name: no fix or no --allow-foreign-sender in: $e"
}

refused gmail "the MAIL FROM domain gmail\.com is a free-mail provider's domain" \
    --mail-from "$GMAIL"
refused disposable "the MAIL FROM domain abyssemail\.com is a disposable-mail service's domain" \
    --mail-from "$DISPOSABLE"
refused yahoo-helo "the HELO domain mail\.yahoo\.com is a free-mail provider's domain" \
    --helo mail.yahoo.com --mail-from "$OURS_HELO"
refused yahoo-helo-default-from "the MAIL FROM and HELO domain mail\.yahoo\.com is a free-mail" \
    --helo mail.yahoo.com
# --no-allow-foreign-sender after the option: the last word counts, refused again
refused taken-back "gmail\.com" --mail-from "$GMAIL" --allow-foreign-sender \
    --no-allow-foreign-sender

# forced: runs, warns, and Postfix sees the identity
run forced-gmail --mail-from "$FORCED_GMAIL" --allow-foreign-sender
[ "$rc" -eq 0 ] && grep -q '"reason":"mailbox_not_found"' "$tmp/forced-gmail.out" &&
    ok "forced gmail MAIL FROM: exit 0, a record" || bad "forced gmail MAIL FROM: exit $rc"
grep -q 'warning: --allow-foreign-sender: probing as .*gmail\.com.*may block and list it' \
    "$tmp/forced-gmail.err" && ok "forced gmail MAIL FROM: a warning" ||
    bad "forced gmail MAIL FROM: no warning"
run forced-helo --helo mail.yahoo.com --mail-from "$FORCED_HELO" --allow-foreign-sender
[ "$rc" -eq 0 ] && grep -q '"reason":"mailbox_not_found"' "$tmp/forced-helo.out" &&
    ok "forced yahoo HELO: exit 0, a record" || bad "forced yahoo HELO: exit $rc"
grep -q 'warning: --allow-foreign-sender: probing as HELO mail\.yahoo\.com' "$tmp/forced-helo.err" &&
    ok "forced yahoo HELO: a warning" || bad "forced yahoo HELO: no warning"

# our own sender and the defaults run, without a word about foreign senders
run ours --helo mta.sender.test --mail-from "$OURS"
[ "$rc" -eq 0 ] && [ "$(wc -l <"$tmp/ours.out")" -eq 1 ] && ! grep -q 'foreign' "$tmp/ours.err" &&
    ok "our own sender: runs quietly" || bad "our own sender: exit $rc"
run defaults
[ "$rc" -eq 0 ] && [ "$(wc -l <"$tmp/defaults.out")" -eq 1 ] &&
    ! grep -Eq 'foreign|refusing' "$tmp/defaults.err" &&
    ok "the default HELO and MAIL FROM: run quietly" || bad "the defaults: exit $rc"

# The maillog is written by postlogd a moment after the dialogue, in order: once the last
# forced run is there, a probe by any refused run before it would be too.
for _ in $(seq 1 20); do
    newlog | grep -q "from=<$FORCED_HELO>" && break
    sleep 0.5
done
newlog >"$tmp/maillog"
grep -q "from=<$FORCED_GMAIL> to=<$RCPT>" "$tmp/maillog" && ok "maillog: the forced gmail sender probed" ||
    bad "maillog: no from=<$FORCED_GMAIL> (the absence checks below would prove nothing)"
grep -q "from=<$FORCED_HELO> to=<$RCPT>.*helo=<mail\.yahoo\.com>" "$tmp/maillog" &&
    ok "maillog: the forced yahoo HELO probed" || bad "maillog: no from=<$FORCED_HELO> helo=<mail.yahoo.com>"
for f in "$GMAIL" "$DISPOSABLE" "$OURS_HELO" verify@mail.yahoo.com; do
    grep -q "from=<$f>" "$tmp/maillog" && bad "maillog: refused sender $f reached Postfix" ||
        ok "maillog: refused sender $f never reached Postfix"
done
others=$(grep "helo=<mail\.yahoo\.com>" "$tmp/maillog" | grep -vc "from=<$FORCED_HELO>")
[ "$others" -eq 0 ] && ok "maillog: HELO mail.yahoo.com only from the forced run" ||
    bad "maillog: HELO mail.yahoo.com in $others lines of other runs"

# doctor judges the same identity with the same words (one home: engine/sender.c)
out=$(timeout 60 "$VALIDORA" doctor --dns "$DNS" --dns-timeout 1 --helo mail.yahoo.com \
    --mail-from "$GMAIL" --source-ip 127.0.0.1 --dnsbl dnsbl.test 2>&1)
grep -Eq "^FAIL +own-domain +the MAIL FROM domain gmail\.com is a free-mail provider's domain; the HELO domain mail\.yahoo\.com is a free-mail" <<<"$out" &&
    grep -q '^ *fix: use a MAIL FROM and a HELO name at a domain you own' <<<"$out" &&
    ok "doctor: own-domain fails with the same words" || bad "doctor own-domain: $out"

checks_done sender_identity.sh

#!/usr/bin/env bash
# rules_doc_example.sh — docs/rules.md's worked example, its steps run in the document's order
# and as written, against the test world (issue 17: the capture of step 1 came from the default
# rule, so the new rule's test could not pass): the rule is written, checked (`rules check`,
# `rules which`), a session of it captured with `verify --transcript`, the capture kept as the
# test's transcript, the test written and passed by `rules test`; then the rule's verdict is
# changed and the same test must fail.
# What it changes, and only that: the example's names become the world's (example.com and
# mail.example.net: docs.test, whose MX mx1.mail.docs.test is 127.0.0.10 and takes postmaster
# and refuses nobody with 550 5.1.1; docs/world.md); /etc/validora/rules, /usr/share/validora/rules and /tmp/t
# become directories of the test; VALIDORA_CONFIG gives the world's DNS, a state dir and a
# sender (docs/config.md).
# Env: VALIDORA, VALIDORA_SOURCE_DIR, WORLD_DIR.
set -uo pipefail
: "${VALIDORA:?}" "${VALIDORA_SOURCE_DIR:?}"
DNS="127.0.0.1:${VALIDORA_DNS_PORT:-5354}"
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp
mine="$tmp/etc-rules"
mkdir -p "$mine" "$tmp/bin" "$tmp/state"
ln -s "$VALIDORA" "$tmp/bin/validora"
PRIV="allow_private_destinations = true," # the world is on loopback (issue 16)
cat >"$tmp/validora.lua" <<LUA
return { dns = "$DNS", state_dir = "$tmp/state", mail_from = "doc@validora.test", smtp_timeout = 5, $PRIV }
LUA

# The steps: the section's code blocks in order. A lua block is written to the file the text
# before it names (/etc/validora/rules/...lua); each line of an sh block is a command.
python3 - "$VALIDORA_SOURCE_DIR/docs/rules.md" "$tmp/steps" <<'PY' || bad "the worked example's steps not found in docs/rules.md"
import re, sys, textwrap
doc = open(sys.argv[1]).read()
sec = doc[doc.index("## A worked example"):]
nxt = sec.find("\n## ", 5)
sec = sec if nxt < 0 else sec[:nxt]
out, pos, n = [], 0, 0
for m in re.finditer(r"```(lua|sh)\n(.*?)```", sec, re.S):
    body = textwrap.dedent(m.group(2))
    if m.group(1) == "lua":
        paths = re.findall(r"`(/etc/validora/rules/[^`]+\.lua)`", sec[pos:m.start()])
        assert paths, "a lua block without its file"
        n += 1
        open("%s.lua%d" % (sys.argv[2], n), "w").write(body)
        out.append("WRITE %s %s.lua%d" % (paths[-1], sys.argv[2], n))
    else:
        out += ["RUN " + l for l in body.splitlines() if l.strip()]
    pos = m.end()
assert n == 2 and sum(l.startswith("RUN ") for l in out) >= 5, out
open(sys.argv[2], "w").write("\n".join(out) + "\n")
PY
subst() { # the document's names to the test's
    local s=$1
    s=${s//\/tmp\/t/$tmp/t} # first: $tmp itself starts with /tmp/t
    s=${s//\/usr\/share\/validora\/rules/$VALIDORA_SOURCE_DIR/rules}
    s=${s//\/etc\/validora\/rules/$mine}
    s=${s//example.net/docs.test}
    s=${s//example.com/docs.test}
    s=${s//192.0.2.10/127.0.0.10}
    printf '%s' "$s"
}
(
    export PATH="$tmp/bin:$PATH" VALIDORA_CONFIG="$tmp/validora.lua"
    i=0
    while IFS= read -r step <&3; do
        i=$((i + 1))
        case "$step" in
        WRITE\ *)
            read -r _ path from <<<"$step"
            path=$(subst "$path")
            mkdir -p "$(dirname "$path")"
            subst "$(cat "$from")" >"$path"
            ;;
        RUN\ *)
            cmd=$(subst "${step#RUN }")
            eval "$cmd" >"$tmp/step$i.out" 2>&1 </dev/null; rc=$?
            echo "step $i: exit $rc: ${step#RUN }"
            cat "$tmp/step$i.out"
            ;;
        esac
    done 3<"$tmp/steps"
) >"$tmp/walk.log" 2>&1
grep -q "exit [1-9]" "$tmp/walk.log" && bad "a step failed: $(cat "$tmp/walk.log")" || ok "every step of the worked example exits 0"
grep -qE "^ +[0-9]+  example +$mine/example.lua" "$tmp/walk.log" && ok "rules check lists the example rule" \
    || bad "rules check: $(cat "$tmp/walk.log")"
grep -qF "example (MX host mx1.mail.docs.test matches *.mail.docs.test)" "$tmp/walk.log" \
    && ok "rules which: the example rule, by its MX host" || bad "rules which: $(cat "$tmp/walk.log")"
[ -s "$mine/tests/transcripts/example-unknown.txt" ] && grep -c "> RCPT TO:" "$mine/tests/transcripts/example-unknown.txt" | grep -qx 2 \
    && ok "the capture is the new rule's dialogue: two RCPTs" || bad "capture: $(cat "$mine/tests/transcripts/example-unknown.txt" 2>&1)"
grep -qE "^ok +example: unknown user on the second RCPT" "$tmp/walk.log" && ok "rules test passes the example's test" \
    || bad "rules test: $(cat "$tmp/walk.log")"
# a test that still passes when the verdict changes is not a test
sed -i 's/return job\[status\](job, reason, r)/return job:deliverable("accepted", r)/' "$mine/example.lua"
"$VALIDORA" rules test --rules "$VALIDORA_SOURCE_DIR/rules" --rules "$mine" "$mine/tests" >"$tmp/t2" 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q "^FAIL example" "$tmp/t2" && ok "a changed verdict fails the test" || bad "a changed verdict still passes: $(cat "$tmp/t2")"
checks_done rules_doc_example

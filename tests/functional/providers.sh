#!/usr/bin/env bash
# providers.sh — the provider rules end to end (issue 9; docs/world.md "The providers"): a
# list mixing every provider is verified against the test world's provider listeners
# (127.0.0.30..41, found through the providers' real MX host names) and its
# alternative-check HTTPS endpoints (127.0.0.50/51, behind the world's test CA). For each
# address it asserts status, reason, provider and method; from the Postfix log that the
# microsoft365 and yahoo listeners got no connection while their alternative checks are on
# (and that the others did, so the log check can fail); from the HTTPS logs that the checks
# asked about each address. A second run with --alt-checks none: microsoft365 falls back to
# SMTP (contoso.test is a catch-all, fabrikam.test refuses nobody), yahoo is skipped and
# still gets no connection, and no HTTPS request is made.
#
# Owns: these assertions. Not the world (tests/world/), not the rules (rules/*.lua).
# Env (set by ctest): VALIDORA, WORLD_DIR, VALIDORA_SOURCE_DIR; optionally VALIDORA_DNS_PORT.
set -uo pipefail

: "${VALIDORA:?VALIDORA must name the validora CLI binary}"
: "${WORLD_DIR:?WORLD_DIR must name a started world (tests/world/world.sh start DIR)}"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=${VALIDORA_SOURCE_DIR:-$(cd "$HERE/../.." && pwd)}
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
DNS="127.0.0.1:${VALIDORA_DNS_PORT:-5354}"
MAILLOG=$WORLD_DIR/postfix/maillog
MSLOG=$WORLD_DIR/https/microsoft.log
YLOG=$WORLD_DIR/https/yahoo.log

checks_tmp T

# The list: every provider, its known users, unknown users and special cases. The expected
# verdicts are in the python below (run 1) and in RUN2 (run 2).
ADDRS=(
    johnsmith@gmail.com J.ohn.Smith+x@googlemail.com nobody@gmail.com disabled@gmail.com
    alice@gws.test nobody@gws.test
    alice@outlook.com nobody@outlook.com nobody@hotmail.com
    alice@contoso.test nobody@contoso.test alice@fabrikam.test nobody@fabrikam.test
    x@federated.test x@othertenant.test throttle@contoso.test malformed@contoso.test
    slow@contoso.test
    alice@yahoo.com bob@yahoo.com nobody@yahoo.com throttle@yahoo.com malformed@yahoo.com
    alice@aol.com
    alice@mimecast-corp.test nobody@mimecast-corp.test grey@mimecast-corp.test
    alice@pp-corp.test nobody@pp-corp.test
    alice@icloud.com nobody@me.com
    alice@comcast.net nobody@comcast.net
    alice@zoho.com nobody@zoho.com
    alice@gmx.net nobody@web.de alice@web.de
    alice@yandex.ru nobody@yandex.ru
    alice@cuda-corp.test nobody@spamexp.test alice@spamexp.test
)

if [ ! -x "$VALIDORA" ]; then
    bad "the CLI '$VALIDORA' is not an executable file (build the validora-cli target)"
    checks_done providers
    exit 1
fi
for f in "$MAILLOG" "$MSLOG" "$YLOG" "$WORLD_DIR/tls/ca.pem"; do
    [ -f "$f" ] || bad "the world has no $f (is it started, and is it this branch's world?)"
done

# Byte offset of a log's end, so a run's lines are what comes after it.
size() { stat -c %s "$1" 2>/dev/null || echo 0; }
since() { tail -c +$(($2 + 1)) "$1" 2>/dev/null; }

# Waits (up to 5 s) until file $1 has stopped growing for half a second.
settle() {
    local n m
    n=$(size "$1")
    for _ in $(seq 10); do
        sleep 0.5
        m=$(size "$1")
        [ "$m" = "$n" ] && return 0
        n=$m
    done
}

# run NAME [extra verify options...]: verifies ADDRS into $T/NAME.mp with its own state dir,
# then $T/NAME.json (validora cat) and the logs' new parts $T/NAME.{maillog,ms,yahoo}.
run() {
    local name=$1 start m0 ms0 y0 rc
    shift
    mkdir -p "$T/state-$name"
    m0=$(size "$MAILLOG")
    ms0=$(size "$MSLOG")
    y0=$(size "$YLOG")
    start=$SECONDS
    timeout 300 "$VALIDORA" verify --allow-private-destinations --state-dir "$T/state-$name" --rules "$SRC/rules" \
        --dns "$DNS" --smtp-timeout 5 --greylist-delay 1 --greylist-tries 2 --http-timeout 3 \
        --mail-from providers@validora.test --tls-ca "$WORLD_DIR/tls/ca.pem" \
        --microsoft-credential-url https://login.microsoft.test/common/GetCredentialType \
        --yahoo-signup-url https://login.yahoo.test/account/create \
        --yahoo-validate-url 'https://login.yahoo.test/account/module/create?validateField=userId' \
        "$@" -o "$T/$name.mp" "${ADDRS[@]}" 2>"$T/$name.err"
    rc=$?
    echo "validora verify ($name): exit $rc after $((SECONDS - start))s"
    if [ $rc -ge 124 ]; then bad "$name: verify killed (exit $rc)"; else ok "$name: verify finished by itself (exit $rc)"; fi
    if [ -s "$T/$name.err" ]; then
        echo "---- stderr (last 15 lines)"
        tail -n 15 "$T/$name.err"
        echo "----"
    fi
    if "$VALIDORA" cat "$T/$name.mp" >"$T/$name.json" 2>"$T/$name.caterr"; then
        ok "$name: validora cat read the records ($(wc -l <"$T/$name.json") lines)"
    else
        bad "$name: validora cat failed: $(head -c 300 "$T/$name.caterr")"
    fi
    settle "$MAILLOG" # postlogd writes the maillog asynchronously
    since "$MAILLOG" "$m0" >"$T/$name.maillog"
    since "$MSLOG" "$ms0" >"$T/$name.ms"
    since "$YLOG" "$y0" >"$T/$name.yahoo"
}

# check NAME: the records of run NAME against the expectations in python (EXPECT_<NAME>),
# printing ok/FAIL lines; the tally is read back from them.
check() {
    local name=$1 out
    out=$(python3 - "$name" "$T" "${ADDRS[@]}" <<'PYEOF'
import json
import re
import sys

name, tdir, addrs = sys.argv[1], sys.argv[2], sys.argv[3:]

def say(ok, msg):
    print(("ok   " if ok else "FAIL ") + name + ": " + msg)

records = {}
with open("%s/%s.json" % (tdir, name), encoding="utf-8", errors="replace") as f:
    for n, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except ValueError as e:
            say(False, "line %d is not JSON (%s): %.100s" % (n, e, line))
            continue
        if not isinstance(r, dict) or "email" not in r:
            say(False, "line %d is not a record: %.100s" % (n, line))
            continue
        if r["email"] in records:
            say(False, "%s: more than one record" % r["email"])
        records[r["email"]] = r
say(len(records) == len(addrs), "%d records for %d addresses" % (len(records), len(addrs)))

def logfile(suffix):
    with open("%s/%s.%s" % (tdir, name, suffix), encoding="utf-8", errors="replace") as f:
        return f.read()

maillog, mslog, ylog = logfile("maillog"), logfile("ms"), logfile("yahoo")

# (status, reason, provider, method) per address; extra fields per address.
D = ("deliverable", "accepted")
U = ("undeliverable", "mailbox_not_found")
def row(sr, provider, method):
    return sr + (provider, method)

SMTP_PROVIDERS = {
    "google": ["johnsmith@gmail.com", "J.ohn.Smith+x@googlemail.com", "alice@gws.test"],
    "mimecast": ["alice@mimecast-corp.test"], "proofpoint": ["alice@pp-corp.test"],
    "icloud": ["alice@icloud.com"], "comcast": ["alice@comcast.net"], "zoho": ["alice@zoho.com"],
    "gmx": ["alice@gmx.net", "alice@web.de"], "yandex": ["alice@yandex.ru"],
    "barracuda": ["alice@cuda-corp.test", "alice@spamexp.test"], "outlook": ["alice@outlook.com"],
}
UNKNOWN_USERS = {
    "google": ["nobody@gmail.com", "nobody@gws.test"], "outlook": ["nobody@outlook.com", "nobody@hotmail.com"],
    "mimecast": ["nobody@mimecast-corp.test"], "proofpoint": ["nobody@pp-corp.test"],
    "icloud": ["nobody@me.com"], "comcast": ["nobody@comcast.net"], "zoho": ["nobody@zoho.com"],
    "gmx": ["nobody@web.de"], "yandex": ["nobody@yandex.ru"], "barracuda": ["nobody@spamexp.test"],
}
want = {}
for p, l in SMTP_PROVIDERS.items():
    for a in l:
        want[a] = row(D, p, "smtp")
for p, l in UNKNOWN_USERS.items():
    for a in l:
        want[a] = row(U, p, "smtp")
want["disabled@gmail.com"] = row(("undeliverable", "mailbox_disabled"), "google", "smtp")
want["grey@mimecast-corp.test"] = row(("unknown", "greylisted"), "mimecast", "smtp")
want["alice@aol.com"] = row(("unknown", "unverifiable"), "yahoo", "skipped")
MS = ["alice@contoso.test", "nobody@contoso.test", "alice@fabrikam.test", "nobody@fabrikam.test",
      "x@federated.test", "x@othertenant.test", "throttle@contoso.test", "malformed@contoso.test",
      "slow@contoso.test"]
YAHOO = ["alice@yahoo.com", "bob@yahoo.com", "nobody@yahoo.com", "throttle@yahoo.com",
         "malformed@yahoo.com"]
if name == "alt":
    for a, sr in [("alice@contoso.test", D), ("nobody@contoso.test", U), ("alice@fabrikam.test", D),
                  ("nobody@fabrikam.test", U), ("x@federated.test", ("unknown", "alt_ambiguous")),
                  ("x@othertenant.test", ("unknown", "alt_ambiguous")),
                  ("throttle@contoso.test", ("unknown", "alt_throttled")),
                  ("malformed@contoso.test", ("unknown", "alt_error")),
                  ("slow@contoso.test", ("unknown", "alt_error"))]:
        want[a] = row(sr, "microsoft365", "http")
    for a, sr in [("alice@yahoo.com", D), ("bob@yahoo.com", D), ("nobody@yahoo.com", U),
                  ("throttle@yahoo.com", ("unknown", "alt_throttled")),
                  ("malformed@yahoo.com", ("unknown", "alt_error"))]:
        want[a] = row(sr, "yahoo", "http")
else:  # --alt-checks none
    CA = ("risky", "catch_all")
    for a, sr in [("alice@contoso.test", CA), ("nobody@contoso.test", CA), ("alice@fabrikam.test", D),
                  ("nobody@fabrikam.test", U), ("x@federated.test", CA), ("x@othertenant.test", CA),
                  ("throttle@contoso.test", CA), ("malformed@contoso.test", CA),
                  ("slow@contoso.test", CA)]:
        want[a] = row(sr, "microsoft365", "smtp")
    for a in YAHOO:
        want[a] = row(("unknown", "unverifiable"), "yahoo", "skipped")
missing = sorted(set(addrs) - set(want))
say(not missing, "every address has an expectation (missing: %s)" % missing)

NAMES = ("status", "reason", "provider", "method")
for a in addrs:
    r = records.get(a)
    if r is None:
        say(False, "%s: no record" % a)
        continue
    got = tuple(r.get(k) for k in NAMES)
    exp = want.get(a)
    if got == exp:
        say(True, "%s: %s" % (a, "/".join(map(str, got))))
    else:
        say(False, "%s: %s, expected %s (detail: %.200s)" % (
            a, "/".join(map(str, got)), "/".join(map(str, exp)), r.get("detail")))
    # A throttled, ambiguous or malformed answer is never a verdict.
    if exp and exp[1] in ("alt_throttled", "alt_error", "alt_ambiguous", "unverifiable"):
        say(r.get("status") == "unknown", "%s: no verdict from a %s answer (status %s)" % (a, exp[1], r.get("status")))

# Gmail normalisation: the address asked about, the email as given.
r = records.get("J.ohn.Smith+x@googlemail.com") or {}
say(r.get("address") == "johnsmith@gmail.com", "J.ohn.Smith+x@googlemail.com: address = %r" % r.get("address"))
say(r.get("email") == "J.ohn.Smith+x@googlemail.com", "J.ohn.Smith+x@googlemail.com: email = %r" % r.get("email"))
r = records.get("alice@gws.test") or {}
say(r.get("address") == "alice@gws.test", "alice@gws.test (Workspace): address = %r, not rewritten" % r.get("address"))

# Which listeners were contacted (maillog: "postfix-<rule>/smtpd[pid]: connect from").
connects = {}
rcpts = {}
for m in re.finditer(r"postfix-([a-z0-9]+)/smtpd\[\d+\]: connect from", maillog):
    connects[m.group(1)] = connects.get(m.group(1), 0) + 1
rejects = {}
# RCPTs per session: "disconnect from … rcpt=N" (all accepted) or "rcpt=ACCEPTED/SENT".
for m in re.finditer(r"postfix-([a-z0-9]+)/smtpd\[\d+\]: disconnect from .* rcpt=(\d+)(?:/(\d+))?", maillog):
    rcpts[m.group(1)] = rcpts.get(m.group(1), 0) + int(m.group(3) or m.group(2))
# Refused RCPTs: "NOQUEUE: reject: RCPT from" ("QUEUEID: reject: …" once one was accepted).
for m in re.finditer(r"postfix-([a-z0-9]+)/smtpd\[\d+\]: (?:NOQUEUE|[0-9A-F]+): reject: RCPT from", maillog):
    rejects[m.group(1)] = rejects.get(m.group(1), 0) + 1
print("     connections this run: %s" % dict(sorted(connects.items())))
print("     RCPTs this run: %s" % dict(sorted(rcpts.items())))
say(connects.get("yahoo", 0) == 0 and rcpts.get("yahoo", 0) == 0,
    "no connection (no RCPT) to the yahoo listener (127.0.0.33): %d, %d" % (connects.get("yahoo", 0), rcpts.get("yahoo", 0)))
if name == "alt":
    say(connects.get("microsoft365", 0) == 0 and rcpts.get("microsoft365", 0) == 0,
        "no connection (no RCPT) to the microsoft365 listener (127.0.0.32) while its check is on: %d, %d"
        % (connects.get("microsoft365", 0), rcpts.get("microsoft365", 0)))
else:
    say(connects.get("microsoft365", 0) >= 1 and rcpts.get("microsoft365", 0) >= len(MS),
        "the microsoft365 listener was asked (SMTP fallback): %d connections, %d RCPTs for %d addresses"
        % (connects.get("microsoft365", 0), rcpts.get("microsoft365", 0), len(MS)))
    say(rejects.get("microsoft365", 0) >= 1,
        "... and refused at RCPT (fabrikam.test's DBEB): %d" % rejects.get("microsoft365", 0))
# The log check has teeth: the SMTP providers were contacted in the same window.
for p in ("google", "outlook", "mimecast", "proofpoint", "icloud", "comcast", "zoho", "gmx", "yandex", "barracuda"):
    say(connects.get(p, 0) >= 1 and rcpts.get(p, 0) >= 1,
        "the %s listener was contacted (%d connections, %d RCPTs)" % (p, connects.get(p, 0), rcpts.get(p, 0)))

# The HTTPS logs: what the alternative checks asked.
ms_users = re.findall(r"method=POST path=/common/GetCredentialType\S* status=\d+ user=(\S+)", mslog)
y_pages = len(re.findall(r"method=GET path=/account/create\S* status=200 ", ylog))
y_users = re.findall(r"method=POST path=/account/module/create\?validateField=userId status=\d+ user=(\S+) outcome=(\S+)", ylog)
if name == "alt":
    low = [u.lower() for u in ms_users]
    for a in MS:
        say(a.lower() in low, "GetCredentialType was asked about %s" % a)
    say(not any(u.endswith(("@outlook.com", "@hotmail.com")) for u in low),
        "GetCredentialType not asked about Outlook.com addresses (its check is off by default)")
    ok_users = [u.lower().split("@")[0] for u, o in y_users if o not in ("no_session", "bad_crumb", "bad_request")]
    for a in YAHOO:
        say(a.split("@")[0].lower() in ok_users, "Yahoo's username check was asked about %s (with cookie and acrumb)" % a)
    say(not any("aol" in u for u, _ in y_users), "Yahoo's check not asked about aol.com")
    say(y_pages >= 1, "Yahoo's sign-up page was fetched (%d times)" % y_pages)
    # Throttle hard: each address asked once, at most one made-up address per domain (the
    # rule's check that the domain does not say "exists" for everyone), one page per check.
    for a in MS:
        n = low.count(a.lower())
        say(n == 1, "GetCredentialType asked about %s once (%d)" % (a, n))
    others = [u for u in low if u not in [a.lower() for a in MS]]
    per_domain = {}
    for u in others:
        per_domain[u.rpartition("@")[2]] = per_domain.get(u.rpartition("@")[2], 0) + 1
    say(all(n == 1 for n in per_domain.values()) and set(per_domain) <= {"contoso.test", "fabrikam.test"},
        "GetCredentialType's control questions: one made-up address per domain that said exists (%s)" % per_domain)
    for a in YAHOO:
        n = ok_users.count(a.split("@")[0].lower())
        say(n == 1, "Yahoo's username check asked about %s once (%d)" % (a, n))
    say(y_pages == len(y_users), "one sign-up page per Yahoo check (%d pages, %d checks)" % (y_pages, len(y_users)))
    bad_session = [u for u, o in y_users if o in ("no_session", "bad_crumb")]
    say(not bad_session, "every Yahoo check came with the session's cookie and acrumb (refused: %s)" % bad_session)
else:
    say(not ms_users and not y_users and y_pages == 0,
        "no HTTPS request with --alt-checks none (%d GetCredentialType, %d Yahoo pages, %d Yahoo checks)"
        % (len(ms_users), y_pages, len(y_users)))
PYEOF
)
    local prc=$?
    echo "$out"
    [ $prc -eq 0 ] || bad "$name: the checker itself failed (python exit $prc)"
    passed=$((passed + $(printf '%s\n' "$out" | grep -c '^ok ')))
    failed=$((failed + $(printf '%s\n' "$out" | grep -c '^FAIL ')))
    printf '%s\n' "$out" | grep -q '^ok \|^FAIL ' || bad "$name: the checker printed nothing"
}

# Run 1: the defaults (alternative checks on for microsoft365 and yahoo).
run alt
check alt
# Run 2: the alternative checks off.
run none --alt-checks none
check none

checks_done providers

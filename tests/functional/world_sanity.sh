#!/usr/bin/env bash
# world_sanity.sh — tests the test world itself, with swaks and plain sockets, not with
# Validora: if a verdict test fails, this one says whether the world or the engine is wrong.
#
# Runs against an already started world (ctest fixture `world`, or tests/world/world.sh
# start DIR by hand); WORLD_DIR names it. Plan: docs/world.md.
set -uo pipefail

WORLD_DIR=${WORLD_DIR:?WORLD_DIR must name a started world (tests/world/world.sh start DIR)}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=${VALIDORA_SOURCE_DIR:-$(cd "$HERE/../.." && pwd)}
GREY_DELAY=${VALIDORA_GREY_DELAY:-5}

. "$HERE/lib/checks.sh"

# Sender unique to this run: postgrey's triplet includes it, so a reused world still
# greylists our first attempt. Letters only: postgrey replaces digits in the local part with
# '#' (VERP) and drops +extensions.
FROM="sanity-$(LC_ALL=C tr -dc a-z </dev/urandom | head -c 12)@validora.test"

# smtp_reply SERVER RCPT [swaks args...]: the server's reply to the last command before
# QUIT (RCPT, or MAIL when MAIL was refused), as one line "CODE TEXT".
smtp_reply() {
    local server=$1 rcpt=$2
    shift 2
    timeout 20 swaks --server "$server" --port 25 --to "$rcpt" --from "$FROM" \
        --helo sanity.validora.test --quit-after RCPT --timeout 10 "$@" 2>&1 |
        sed -n 's/^ *<[-~*]* \{1,\}\([2-5][0-9][0-9][ -].*\)$/\1/p' |
        grep -v '^221 ' | tail -n 1
}

# expect NAME REGEX ACTUAL
expect() {
    if printf '%s\n' "$3" | grep -Eq -- "$2"; then
        ok "$1: $3"
    else
        bad "$1: expected /$2/, got '${3:-<no reply>}'"
    fi
}

# --- Postfix listeners: banners
for a in 127.0.0.10 127.0.0.11 127.0.0.12 127.0.0.14 127.0.0.15; do
    line=$(timeout 3 bash -c 'exec 3<>/dev/tcp/$0/25 && IFS= read -r l <&3 && printf "%s" "$l"' "$a" 2>/dev/null | tr -d '\r')
    expect "banner $a" '^220 mx\.[a-z]+\.test ESMTP' "$line"
done

# --- main listener: mailboxes and the ways they refuse
expect "alice@valid.test" '^250 2\.1\.5' "$(smtp_reply 127.0.0.10 alice@valid.test)"
expect "bob@valid.test" '^250 2\.1\.5' "$(smtp_reply 127.0.0.10 bob@valid.test)"
expect "info@valid.test" '^250 2\.1\.5' "$(smtp_reply 127.0.0.10 info@valid.test)"
expect "nobody@valid.test" '^550 5\.1\.1 .*User unknown' "$(smtp_reply 127.0.0.10 nobody@valid.test)"
expect "full@valid.test" '^452 4\.2\.2 .*Mailbox full' "$(smtp_reply 127.0.0.10 full@valid.test)"
expect "disabled@valid.test" '^550 5\.2\.1 .*Mailbox disabled' "$(smtp_reply 127.0.0.10 disabled@valid.test)"
expect "catch-all random local part" '^250 2\.1\.5' \
    "$(smtp_reply 127.0.0.10 "zz$RANDOM$RANDOM@catchall.test")"
expect "frank@implicit.test" '^250 2\.1\.5' "$(smtp_reply 127.0.0.10 frank@implicit.test)"
expect "erin@deadfirst.test" '^250 2\.1\.5' "$(smtp_reply 127.0.0.10 erin@deadfirst.test)"
expect "user@xn--bcher-kva.test" '^250 2\.1\.5' "$(smtp_reply 127.0.0.10 user@xn--bcher-kva.test)"
expect "alice@mailalias.test" '^250 2\.1\.5' "$(smtp_reply 127.0.0.10 alice@mailalias.test)"
expect "nobody@mailalias.test" '^550 5\.1\.1' "$(smtp_reply 127.0.0.10 nobody@mailalias.test)"
expect "relaying refused" '^554 5\.7\.1 .*Relay access denied' \
    "$(smtp_reply 127.0.0.10 someone@elsewhere.example)"

# --- TLS-required listener
expect "tls.test MAIL without STARTTLS" '^530 5\.7\.0 Must issue a STARTTLS command first' \
    "$(smtp_reply 127.0.0.12 dave@tls.test)"
expect "tls.test with STARTTLS" '^250 2\.1\.5' "$(smtp_reply 127.0.0.12 dave@tls.test --tls)"
subject=$(timeout 5 openssl s_client -connect 127.0.0.12:25 -starttls smtp </dev/null 2>/dev/null |
    openssl x509 -noout -subject 2>/dev/null)
expect "tls.test certificate" 'CN ?= ?mx\.tls\.test' "$subject"

# --- DNSBL-style rejection of the client
expect "blocked.test" '^554 5\.7\.1 .*blocked using zen\.spamhaus\.org' \
    "$(smtp_reply 127.0.0.14 x@blocked.test)"

# --- the strict provider (127.0.0.15 + tests/world/strictpolicy.py): mailboxes, the policy
# service's verbs, anvil's connection limit with loopback not exempt; reset before and after.
STRICT_PORT=${VALIDORA_STRICT_PORT:-10024}
strict_status() { python3 "$SRC/tests/world/strictpolicy.py" status --connect "127.0.0.1:$STRICT_PORT" "$@"; }
if bash "$SRC/tests/world/world.sh" strict-reset "$WORLD_DIR" 2>/dev/null; then
    ok "strict provider reset (world.sh strict-reset)"
else
    bad "world.sh strict-reset failed"
fi
expect "user1@strict.test" '^250 2\.1\.5' "$(smtp_reply 127.0.0.15 user1@strict.test)"
expect "user2000@strict.test" '^250 2\.1\.5' "$(smtp_reply 127.0.0.15 user2000@strict.test)"
expect "user2001@strict.test" '^550 5\.1\.1 .*User unknown' "$(smtp_reply 127.0.0.15 user2001@strict.test)"
expect "strictpolicy status of 127.0.0.1" '^3 rcpts, 1 unknown, blocked False$' "$(strict_status 127.0.0.1 |
    python3 -c 'import json,sys; c=json.load(sys.stdin)["clients"]["127.0.0.1"]; t=c["totals"]
print("%d rcpts, %d unknown, blocked %s" % (t.get("rcpt", 0), t.get("unknown", 0), c["ever_blocked"]))' 2>&1)"
expect "strictpolicy decision log (since the reset)" '^3$' "$(awk '/ reset$/ { n = 0 } /client=127\.0\.0\.1 rcpt=.*action=DUNNO/ { n++ } END { print n + 0 }' \
    "$WORLD_DIR/strictpolicy.log")"
expect "strictpolicy status file" '"max_rate": 10' "$(cat "$WORLD_DIR/strictpolicy.status" 2>&1)"
# anvil: smtpd_client_connection_count_limit (8) applies to 127.0.0.1 too.
expect "127.0.0.15 connection count limit" '^421 4\.7\.0 .*too many connections from 127\.0\.0\.1' "$(python3 - <<'PYEOF'
import socket
held, line = [], ""
for i in range(12):
    s = socket.create_connection(("127.0.0.15", 25), timeout=5)
    held.append(s)
    line = s.makefile("rb").readline().decode(errors="replace").strip()
    if not line.startswith("220"):
        break
print(line)
PYEOF
)"
bash "$SRC/tests/world/world.sh" strict-reset "$WORLD_DIR" 2>/dev/null || bad "world.sh strict-reset failed (after)"
expect "strictpolicy after reset" '^\{\}$' "$(strict_status | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["clients"]))' 2>&1)"

# --- greylisting: refused first, accepted after the delay (same triplet)
expect "carol@grey.test first attempt" '^450 4\.2\.0 .*Greylisted' \
    "$(smtp_reply 127.0.0.11 carol@grey.test)"
expect "carol@grey.test immediate retry" '^450 4\.2\.0 .*Greylisted' \
    "$(smtp_reply 127.0.0.11 carol@grey.test)"
sleep $((GREY_DELAY + 1))
expect "carol@grey.test after ${GREY_DELAY}s" '^250 2\.1\.5' "$(smtp_reply 127.0.0.11 carol@grey.test)"

# --- nothing listens on the dead MX
if timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.13/25' 2>/dev/null; then
    bad "127.0.0.13:25 must refuse connections, but something answers"
else
    ok "127.0.0.13:25 refuses connections"
fi

# --- tarpits (tests/world/tarpit.py)
if [ -f "$SRC/tests/world/tarpit.py" ]; then
    # silent: accepts, never speaks (no byte within 2 s).
    got=$(timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.20/25 || exit 9; IFS= read -r -t 2 l <&3; printf "%s" "$l"' 2>/dev/null)
    rc=$?
    if [ $rc -ne 9 ] && [ -z "$got" ]; then ok "tarpit silent: connected, nothing said"; else bad "tarpit silent: rc=$rc, said '${got:0:60}'"; fi
    # longline: the first reply line is far longer than SMTP's 512-byte limit.
    len=$(timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.21/25 || exit 9; head -c 200000 <&3 | head -n 1 | wc -c' 2>/dev/null)
    if [ "${len:-0}" -gt 100000 ]; then ok "tarpit longline: first line > 100000 bytes ($len)"; else bad "tarpit longline: first line is ${len:-?} bytes"; fi
    # endless: continuation lines keep coming (more than 1000 of them, all "220-").
    n=$(timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.22/25 || exit 9; head -n 2000 <&3 | grep -c "^[0-9][0-9][0-9]-"' 2>/dev/null)
    if [ "${n:-0}" -ge 2000 ]; then ok "tarpit endless: 2000 continuation lines"; else bad "tarpit endless: only ${n:-0} continuation lines"; fi
else
    bad "tests/world/tarpit.py missing: tarpit listeners cannot be checked"
fi

# --- DNS (tests/world/unbound.sh): rcode and answer count of a few queries, by hand
dns_probe() { # NAME QTYPE -> "rcode=N answers=N"
    python3 - "$1" "$2" "${VALIDORA_DNS_PORT:-5354}" <<'PYEOF'
import random, socket, struct, sys
name, qtype, port = sys.argv[1], {"A": 1, "MX": 15, "TXT": 16}[sys.argv[2]], int(sys.argv[3])
qid = random.randrange(65536)
q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
q += struct.pack(">HH", qtype, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
try:
    s.sendto(q, ("127.0.0.1", port))
    r = s.recv(4096)
except OSError as e:
    print("no answer (%s)" % e)
    sys.exit(0)
rid, flags, _, an = struct.unpack(">HHHH", r[:8])
print("rcode=%d answers=%d" % (flags & 15, an) if rid == qid else "wrong id")
PYEOF
}
expect "DNS valid.test MX" '^rcode=0 answers=[1-9]' "$(dns_probe valid.test MX)"
expect "DNS mx.valid.test A" '^rcode=0 answers=1' "$(dns_probe mx.valid.test A)"
expect "DNS nosuch.test MX (NXDOMAIN)" '^rcode=3 ' "$(dns_probe nosuch.test MX)"
expect "DNS servfail.test MX (SERVFAIL)" '^rcode=2 ' "$(dns_probe servfail.test MX)"
expect "DNS example.com A is refused (nothing leaves)" '^rcode=5 ' "$(dns_probe example.com A)"

# --- the providers (127.0.0.30..41, one Postfix listener per rule; docs/world.md "Providers"):
# the DNS names the rules recognise, each banner, a known user and the provider's own wording.
while read -r name addr; do
    expect "DNS $name A" "^rcode=0 answers=1" "$(dns_probe "$name" A)"
done <<'LIST'
gmail-smtp-in.l.google.com 127.0.0.30
outlook-com.olc.protection.outlook.com 127.0.0.31
contoso-test.mail.protection.outlook.com 127.0.0.32
mx-aol.mail.gm0.yahoodns.net 127.0.0.33
mx-ha03.web.de 127.0.0.39
login.microsoft.test 127.0.0.50
login.yahoo.test 127.0.0.51
LIST
expect "DNS gmail.com MX" '^rcode=0 answers=1' "$(dns_probe gmail.com MX)"
expect "DNS nosuch.gmail.com A (NXDOMAIN)" '^rcode=3 ' "$(dns_probe nosuch.gmail.com A)"
expect "DNS www.google.de A is refused (only our zones)" '^rcode=5 ' "$(dns_probe www.google.de A)"
for b in "127.0.0.30 mx\.google\.com ESMTP .* gsmtp" "127.0.0.31 .*\.mail\.protection\.outlook\.com Microsoft ESMTP" \
    "127.0.0.32 .*\.mail\.protection\.outlook\.com Microsoft ESMTP" "127.0.0.33 .*yahoo\.com ESMTP" \
    "127.0.0.34 .*mimecast\.com ESMTP" "127.0.0.35 .*pphosted\.com ESMTP" "127.0.0.36 mx01\.mail\.icloud\.com" \
    "127.0.0.37 .*comcast\.net" "127.0.0.38 mx\.zohomail\.com" "127.0.0.39 mx\.gmx\.net" \
    "127.0.0.40 .*yandex\.net" "127.0.0.41 .*barracudanetworks\.com ESMTP"; do
    a=${b%% *}
    line=$(timeout 3 bash -c 'exec 3<>/dev/tcp/$0/25 && IFS= read -r l <&3 && printf "%s" "$l"' "$a" 2>/dev/null | tr -d '\r')
    expect "banner $a" "^220 ${b#* }" "$line"
done
R='Recipient address rejected: '
while IFS='|' read -r addr rcpt want; do
    expect "$rcpt at $addr" "$want" "$(smtp_reply "$addr" "$rcpt")"
done <<LIST
127.0.0.30|j.ohn.smith+x@googlemail.com|^250 2\.1\.5
127.0.0.30|nobody@gmail.com|^550 5\.1\.1 .*${R}The email account that you tried to reach does not exist\..*NoSuchUser
127.0.0.30|disabled@gmail.com|^550 5\.2\.1 .*${R}The email account that you tried to reach is disabled\.
127.0.0.30|alice@gws.test|^250 2\.1\.5
127.0.0.31|alice@outlook.com|^250 2\.1\.5
127.0.0.31|nobody@hotmail.com|^550 5\.5\.0 .*${R}Requested action not taken: mailbox unavailable
127.0.0.32|nobody$RANDOM@contoso.test|^250 2\.1\.5
127.0.0.32|alice@fabrikam.test|^250 2\.1\.5
127.0.0.32|nobody@fabrikam.test|^550 5\.4\.1 .*Recipient address rejected: Access denied
127.0.0.33|nobody$RANDOM@yahoo.com|^250 2\.1\.5
127.0.0.33|nobody$RANDOM@aol.com|^250 2\.1\.5
127.0.0.34|alice@mimecast-corp.test|^250 2\.1\.5
127.0.0.34|grey@mimecast-corp.test|^451 .*${R}Internal resource temporarily unavailable - https://community\.mimecast\.com/docs/DOC-1369#451
127.0.0.34|nobody@mimecast-corp.test|^550 .*${R}Invalid Recipient - https://community\.mimecast\.com/docs/DOC-1369#550
127.0.0.35|nobody@pp-corp.test|^550 5\.1\.1 .*${R}User Unknown
127.0.0.36|alice@icloud.com|^250 2\.1\.5
127.0.0.36|nobody@me.com|^550 5\.1\.1 .*${R}<nobody@me\.com>: user does not exist
127.0.0.37|nobody@comcast.net|^550 5\.1\.1 .*${R}Not our Customer
127.0.0.38|nobody@zoho.com|^550 5\.1\.1 .*${R}User does not exist - <nobody@zoho\.com>
127.0.0.39|alice@web.de|^250 2\.1\.5
127.0.0.39|nobody@gmx.net|^550 .*${R}Requested action not taken: mailbox unavailable
127.0.0.40|nobody@yandex.ru|^550 5\.7\.1 .*${R}No such user!
127.0.0.41|alice@spamexp.test|^250 2\.1\.5
127.0.0.41|nobody@cuda-corp.test|^550 .*${R}No such user \(nobody@cuda-corp\.test\)
127.0.0.41|alice@valid.test|^250 2\.1\.5
127.0.0.41|alice@gmail.com|^554 5\.7\.1 .*Relay access denied
127.0.0.10|johnsmith@gmail.com|^554 5\.7\.1 .*Relay access denied
LIST
n=$(grep -c 'postfix-yahoo/smtpd\[[0-9]*\]: connect from' "$WORLD_DIR/postfix/maillog" 2>/dev/null)
expect "maillog names the listener (postfix-yahoo)" '^[1-9]' "$n"

# --- the alternative-check endpoints (tests/world/altcheck.py, HTTPS behind DIR/tls/ca.pem)
https() { # HOST ADDR PATH [curl args...] -> "CODE BODY"
    local host=$1 addr=$2 path=$3
    shift 3
    timeout 10 curl -sS --cacert "$WORLD_DIR/tls/ca.pem" --resolve "$host:443:$addr" \
        -w ' [%{http_code}]' "$@" "https://$host$path" 2>&1 | tr -d '\n'
}
ms() { https login.microsoft.test 127.0.0.50 /common/GetCredentialType -H 'Content-Type: application/json' \
    -d "{\"Username\":\"$1\",\"isOtherIdpSupported\":true}"; }
expect "GetCredentialType alice@contoso.test" '"IfExistsResult": 0, .*"ThrottleStatus": 0' "$(ms alice@contoso.test)"
expect "GetCredentialType nobody@contoso.test" '"IfExistsResult": 1,' "$(ms nobody@contoso.test)"
expect "GetCredentialType x@federated.test" '"IfExistsResult": 0, .*FederationRedirectUrl' "$(ms x@federated.test)"
expect "GetCredentialType throttle@contoso.test" '"ThrottleStatus": 1' "$(ms throttle@contoso.test)"
expect "GetCredentialType malformed@contoso.test" '^<html>.* \[200\]$' "$(ms malformed@contoso.test)"
expect "GetCredentialType x@othertenant.test" '"IfExistsResult": 5,' "$(ms x@othertenant.test)"
expect "GetCredentialType not JSON" '\[400\]$' "$(https login.microsoft.test 127.0.0.50 /common/GetCredentialType -d x)"
expect "GetCredentialType 100 KB body" '\[413\]$' "$(head -c 100000 /dev/zero | tr '\0' a |
    https login.microsoft.test 127.0.0.50 /common/GetCredentialType --data-binary @-)"
expect "HTTPS certificate is checked (wrong name)" 'SSL|certificate' "$(https wrong.test 127.0.0.50 /)"
jar=$(mktemp)
page=$(https login.yahoo.test 127.0.0.51 /account/create -c "$jar")
acrumb=$(printf '%s' "$page" | sed -n 's/.*<input type="hidden" value="\([^"]*\)" name="acrumb">.*/\1/p')
sidx=$(printf '%s' "$page" | sed -n 's/.*name="sessionIndex" value="\([^"]*\)".*/\1/p')
expect "Yahoo sign-up page: acrumb, sessionIndex, AS cookie" '^.+ .+ AS$' "$acrumb $sidx $(awk '$6 == "AS" { print $6 }' "$jar")"
yv() { https login.yahoo.test 127.0.0.51 '/account/module/create?validateField=userId' "$@"; }
yf() { yv -b "$jar" --data-urlencode "acrumb=$acrumb" --data-urlencode "sessionIndex=$sidx" --data-urlencode "userId=$1"; }
expect "Yahoo alice taken" '"IDENTIFIER_EXISTS".* \[200\]$' "$(yf alice)"
expect "Yahoo bob taken" '"IDENTIFIER_NOT_AVAILABLE".* \[200\]$' "$(yf bob)"
expect "Yahoo nobody free" '^\{"errors":\[\]\} \[200\]$' "$(yf nobody)"
expect "Yahoo throttle" '\[429\]$' "$(yf throttle)"
expect "Yahoo malformed" '^<html>.* \[200\]$' "$(yf malformed)"
expect "Yahoo without the cookie" '\[400\]$' "$(yv --data-urlencode "acrumb=$acrumb" --data-urlencode "sessionIndex=$sidx" -d userId=alice)"
expect "Yahoo with a wrong acrumb" '\[400\]$' "$(yv -b "$jar" -d acrumb=x --data-urlencode "sessionIndex=$sidx" -d userId=alice)"
rm -f "$jar"
expect "microsoft.log has the Usernames" 'user=nobody@contoso\.test outcome=absent' "$(cat "$WORLD_DIR/https/microsoft.log" 2>&1)"
expect "yahoo.log has the userIds" 'user=bob outcome=taken' "$(cat "$WORLD_DIR/https/yahoo.log" 2>&1)"

# --- nothing of the world listens beyond loopback
outside=$(ss -ltnH 2>/dev/null | awk '{print $4}' |
    grep -E ':(25|443|10023|'"${VALIDORA_STRICT_PORT:-10024}"'|'"${VALIDORA_DNS_PORT:-5354}"')$' | grep -Ev '^127\.' || true)
if [ -z "$outside" ]; then ok "world listens on 127.0.0.0/8 only"; else bad "listening beyond loopback: $outside"; fi

checks_done world_sanity

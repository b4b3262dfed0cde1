#!/usr/bin/env bash
# transcript.sh — `validora verify --transcript DIR` against the test world (docs/world.md):
# the files follow docs/transcripts.md line for line; their `<` lines are what the real
# Postfix said (the banner, EHLO continuation lines, the 550 5.1.1 for nobody, found again in
# Postfix's own maillog); tls.test gets a `# tls:` line that agrees with the record
# (verified=yes with the world's certificate as --tls-ca); the records are the same with and
# without --transcript, also when every transcript write fails (a "full disk": a full tmpfs;
# skipped, saying why, where no tmpfs can be mounted), which is said once on stderr; hostile servers (longline, endless) give bounded files that
# end with the error name; a DIR that cannot be used stops the start with its name.
#
# Env (set by ctest): VALIDORA (the CLI), WORLD_DIR (a started world), optionally
# VALIDORA_DNS_PORT (default 5354).
set -uo pipefail

: "${VALIDORA:?VALIDORA must name the validora CLI binary}"
: "${WORLD_DIR:?WORLD_DIR must name a started world (tests/world/world.sh start DIR)}"
DNS="127.0.0.1:${VALIDORA_DNS_PORT:-5354}"

. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp
full_mounted= # the full-disk case's tmpfs, while mounted in this namespace (below)
cleanup() {
    # VALIDORA_TRANSCRIPT_KEEP=DIR keeps the files of this run there, to look at.
    [ -n "${VALIDORA_TRANSCRIPT_KEEP:-}" ] && cp -r "$tmp/." "$VALIDORA_TRANSCRIPT_KEEP/"
    [ -n "$full_mounted" ] && umount "$full_mounted"
}

# A sender unique to this run, to find our dialogues in Postfix's maillog.
FROM="transcript-$(LC_ALL=C tr -dc a-z </dev/urandom | head -c 12)@validora.test"
ADDRS=(alice@valid.test nobody@valid.test dave@tls.test)
# The ledger and the instance lock of this run, never the machine's. The IP is given a long
# clean history, so the 400-odd addresses here are not held to a new IP's first-day budget
# and no warm-up warning joins what stderr is checked for.
STATE="$tmp/state"
"$VALIDORA" ledger set-age any 400 --state-dir "$STATE" >/dev/null || bad "ledger set-age any 400"
COMMON=(--state-dir "$STATE" --dns "$DNS" --format json --smtp-timeout 5 --mail-from "$FROM")

# run NAME [args...]: verify with COMMON and args; stdout to $tmp/NAME.out, stderr .err
run() {
    local name=$1
    shift
    timeout 120 "$VALIDORA" verify --allow-private-destinations "${COMMON[@]}" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
    local rc=$?
    echo "     $name: exit $rc, $(wc -l <"$tmp/$name.out") records, $(ls "$tmp/$name.d" 2>/dev/null | wc -l) transcripts"
    if [ -s "$tmp/$name.err" ]; then sed 's/^/     stderr: /' "$tmp/$name.err" | head -n 5; fi
    return $rc
}

mkdir "$tmp/plain.d" "$tmp/tr.d" "$tmp/ca.d" "$tmp/hostile.d" "$tmp/full.d"
run plain "${ADDRS[@]}" && ok "verify without --transcript" || bad "verify without --transcript"
run tr --transcript "$tmp/tr.d" "${ADDRS[@]}" && ok "verify --transcript" || bad "verify --transcript"
run ca --transcript "$tmp/ca.d" --tls-ca "$WORLD_DIR/tls/cert.pem" dave@tls.test &&
    ok "verify --transcript --tls-ca" || bad "verify --transcript --tls-ca"
run hostile --transcript "$tmp/hostile.d" x@longline.test x@endless.test &&
    ok "verify --transcript, hostile servers" || bad "verify --transcript, hostile servers"
# A full disk: the transcript directory is a file system with no space left (a tmpfs of one
# page, filled). Every transcript write fails (ENOSPC); the ledger beside it still works, as
# it must for verify to start. (ulimit -f 0 was used before the ledger: it fails the ledger's
# writes too, and with EFBIG. /dev/full cannot stand in: each transcript is a new file, made
# with O_EXCL | O_NOFOLLOW.) The tmpfs is mounted, in order of preference:
#   unshare  in a mount namespace of its own (unshare -m as root, -rm as a user);
#   mount    where namespaces are refused (a container, a chroot), as root: on $tmp/full.d in
#            this namespace, unmounted on exit;
#   skip     neither is allowed: the case is skipped, saying why; never a failure.
# TRANSCRIPT_FULL_DISK=unshare|mount|skip forces one (to test the fallbacks).
# Records and messages go through a pipe and are told apart afterwards (a record is a JSON
# object).
if [ "$(id -u)" -eq 0 ]; then ns=(unshare -m); else ns=(unshare -rm); fi
fill() { # DIR: a tmpfs of one page on DIR, filled
    mount -t tmpfs -o size=4k tmpfs "$1" && { dd if=/dev/zero of="$1/.fill" bs=4k 2>/dev/null; true; }
}
full_how() { # how the full disk can be made here: unshare, mount or "skip: WHY"
    local want=${TRANSCRIPT_FULL_DISK:-} why
    mkdir -p "$tmp/probe.d"
    if [ -z "$want" ] || [ "$want" = unshare ]; then
        why=$("${ns[@]}" sh -c 'mount -t tmpfs -o size=4k tmpfs "$1"' sh "$tmp/probe.d" 2>&1) &&
            { echo unshare; return; }
        [ "$want" = unshare ] && { echo "skip: ${ns[*]} with a tmpfs mount is refused here: $why"; return; }
    fi
    if [ "$want" != skip ]; then
        if [ "$(id -u)" -ne 0 ]; then
            echo "skip: ${ns[*]} is refused here (${why:-forced off}) and a plain mount needs root"
        elif why2=$(mount -t tmpfs -o size=4k tmpfs "$tmp/probe.d" 2>&1) && umount "$tmp/probe.d"; then
            echo mount
        else
            echo "skip: ${ns[*]} is refused here (${why:-forced off}) and so is mount: $why2"
        fi
        return
    fi
    echo "skip: TRANSCRIPT_FULL_DISK=skip"
}
full=$(full_how)
echo "     full disk: $full"
full_cmd=(timeout 120 "$VALIDORA" verify --allow-private-destinations "${COMMON[@]}" --transcript "$tmp/full.d" "${ADDRS[@]}")
case $full in
unshare)
    "${ns[@]}" bash -c "$(declare -f fill)"'
        fill "$1" || exit 99
        shift; exec "$@" 2>&1' bash "$tmp/full.d" "${full_cmd[@]}" | cat >"$tmp/full.mixed"
    rc=${PIPESTATUS[0]}
    ;;
mount)
    if fill "$tmp/full.d"; then
        full_mounted=$tmp/full.d
        "${full_cmd[@]}" 2>&1 | cat >"$tmp/full.mixed"
        rc=${PIPESTATUS[0]}
        umount "$full_mounted" && full_mounted=
    else
        rc=99
    fi
    ;;
*) skip_check "the full-disk case (${full#skip: })" ;;
esac
if [ "$full" = unshare ] || [ "$full" = mount ]; then
    grep '^{' "$tmp/full.mixed" >"$tmp/full.out"
    grep -v '^{' "$tmp/full.mixed" >"$tmp/full.err"
    sed 's/^/     full: /' "$tmp/full.err"
    [ "$rc" -eq 0 ] && ok "verify with a full disk ($full): exit 0" || bad "verify with a full disk ($full): exit $rc"
    export TRANSCRIPT_FULL_RAN=1
else
    export TRANSCRIPT_FULL_RAN=0
fi

# Many sessions: 200 unknown mailboxes (Postfix cuts each session at its error limit), with
# and without transcripts: the same verdicts, and not much slower.
seq 1 200 | sed 's/^/nobody/; s/$/@valid.test/' >"$tmp/list"
mkdir "$tmp/many.d"
t0=$(date +%s.%N)
run many0 --per-mx-sessions 4 -i "$tmp/list"
t1=$(date +%s.%N)
run many --per-mx-sessions 4 -i "$tmp/list" --transcript "$tmp/many.d"
t2=$(date +%s.%N)
if python3 - "$tmp" "$t0" "$t1" "$t2" <<'PY'
import collections, json, sys
tmp, t0, t1, t2 = sys.argv[1], *map(float, sys.argv[2:])
def counts(name):
    return collections.Counter((json.loads(l)["status"], json.loads(l)["reason"])
                               for l in open("%s/%s.out" % (tmp, name)))
a, b = counts("many0"), counts("many")
print("     200 addresses: %.2f s without, %.2f s with transcripts; %s" % (t1 - t0, t2 - t1, dict(b)))
ok = a == b == {("undeliverable", "mailbox_not_found"): 200} and (t2 - t1) <= 1.5 * (t1 - t0) + 1
sys.exit(0 if ok else 1)
PY
then
    ok "200 addresses: the same verdicts with transcripts, and not much slower"
else
    bad "200 addresses: verdicts or time differ with transcripts"
fi
n=$(ls "$tmp/many.d" | wc -l)
ends=$(cat "$tmp"/many.d/* | grep -c '^# end: ')
[ "$n" -ge 2 ] && [ "$ends" -eq "$n" ] && ok "200 addresses: $n transcripts, each with its # end: line" ||
    bad "200 addresses: $n transcripts, $ends # end: lines"

# The Postfix log is written by postlogd, a moment after the dialogue.
for _ in 1 2 3 4 5 6 7 8 9 10; do
    grep -q "from=<$FROM> to=<nobody@valid.test>" "$WORLD_DIR/postfix/maillog" 2>/dev/null && break
    sleep 0.5
done

python3 - "$tmp" "$WORLD_DIR/postfix/maillog" "$FROM" <<'PYEOF'
import glob
import json
import os
import re
import sys

tmp, maillog_path, sender = sys.argv[1:4]
passed = failed = 0


def check(cond, msg):
    global passed, failed
    if cond:
        passed += 1
        print("ok   " + msg)
    else:
        failed += 1
        print("FAIL " + msg)


def records(name):
    out = {}
    with open(os.path.join(tmp, name + ".out"), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                out[r["email"]] = r
    return out


def unescape(s):
    """docs/transcripts.md: \\\\ is a backslash, \\xHH a byte; nothing else follows a backslash."""
    out, i = bytearray(), 0
    while i < len(s):
        if s[i] == 0x5C:
            if s[i + 1:i + 2] == b"\\":
                out.append(0x5C)
                i += 2
                continue
            m = re.match(rb"x([0-9a-fA-F]{2})", s[i + 1:i + 4])
            if not m:
                raise ValueError("bad escape at %d" % i)
            out.append(int(m.group(1), 16))
            i += 4
            continue
        out.append(s[i])
        i += 1
    return bytes(out)


ERRORS = {"connect_failed", "timeout", "connection_closed", "protocol_error", "tls_error", "busy",
          "invalid_argument"}
NAME = re.compile(r"^(\d{8}T\d{6}\.\d{3}Z)-(\d+)-([A-Za-z0-9._-]+)\.txt$")
RECORD = re.compile(rb"^( {0,7}\d+\.\d{3}) ([<>]) (.*)$")
HEAD = [re.compile(rb"^# validora transcript 1$"),
        re.compile(rb"^# mx: (\S+) (\d+\.\d+\.\d+\.\d+|\[[0-9a-f:.]+\]):(\d+)$"),
        re.compile(rb"^# started: (\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z$")]
TLS = re.compile(rb"^# tls: (TLSv1\.[0-3]) (\S+) verified=(yes|no)$")
END = re.compile(rb"^# end: (\d+\.\d{3}) (.*)$")


def parse(path):
    """Checks one file against the format; returns {mx, records: [(t, dir, bytes)], tls, end}."""
    base = os.path.basename(path)
    data = open(path, "rb").read()
    where = "%s:" % base
    m = NAME.match(base)
    check(m is not None, "%s name is YYYYMMDDTHHMMSS.mmmZ-SEQ-MXHOST.txt" % where)
    check(data.endswith(b"\n") and b"\r" not in data, "%s LF line ends, no CR" % where)
    try:
        data.decode("utf-8")
        utf8 = True
    except UnicodeDecodeError:
        utf8 = False
    ctrl = [c for c in data if (c < 0x20 and c != 0x0A) or c == 0x7F]
    check(utf8 and not ctrl, "%s UTF-8 without control characters (safe to cat)" % where)
    lines = data.split(b"\n")[:-1]
    info = {"mx": None, "records": [], "tls": None, "end": None, "truncated": False,
            "size": len(data), "name": base}
    heads = [HEAD[i].match(lines[i]) if i < len(lines) else None for i in range(3)]
    check(all(heads), "%s header: version, mx, started (%r)" % (where, lines[:3]))
    if not all(heads):
        return info
    info["mx"] = heads[1].group(1).decode()
    info["ip"] = heads[1].group(2).decode()
    if m:
        check(m.group(3) == info["mx"], "%s file name names the MX of its header (%s)" %
              (where, info["mx"]))
        s = heads[2].groups()
        stamp = "%s%s%sT%s%s%s.%sZ" % tuple(g.decode() for g in s)
        check(m.group(1) == stamp, "%s file name has the start time of its header" % where)
    last_t, ok_lines, ended = 0.0, True, False
    for n, line in enumerate(lines[3:], 4):
        if ended:
            ok_lines = False
            print("     %s line %d after # end: %r" % (base, n, line[:80]))
            break
        r = RECORD.match(line)
        if r:
            t = float(r.group(1))
            if len(r.group(1)) < 8 or t < last_t or info["truncated"]:
                ok_lines = False
                print("     %s line %d: time %r after %.3f" % (base, n, r.group(1), last_t))
            last_t = t
            info["records"].append((t, r.group(2).decode(), unescape(r.group(3))))
        elif TLS.match(line):
            info["tls"] = TLS.match(line).groups()
            info["tls_at"] = len(info["records"])
        elif line == b"# truncated":
            info["truncated"] = True
        elif END.match(line):
            e = END.match(line)
            info["end"] = e.group(2).decode()
            info["end_at"] = float(e.group(1))
            ok_lines = ok_lines and float(e.group(1)) >= last_t
            ended = True
        else:
            ok_lines = False
            print("     %s line %d is no record: %r" % (base, n, line[:80]))
    check(ok_lines, "%s every line a record, # tls, # truncated or # end; times rise" % where)
    check(info["end"] in ERRORS | {"closed by client", "closed by server"},
          "%s last line '# end: SECONDS REASON' (%r)" % (where, info["end"]))
    return info


def transcripts(name):
    files = sorted(glob.glob(os.path.join(tmp, name + ".d", "*")))
    return [parse(f) for f in files]


def replies_to(t, command_prefix):
    """The reply lines after the first command that starts with command_prefix."""
    recs = t["records"]
    for i, (_, d, text) in enumerate(recs):
        if d == ">" and text.startswith(command_prefix):
            out = []
            for _, d2, text2 in recs[i + 1:]:
                if d2 != "<":
                    break
                out.append(text2)
                if text2[3:4] != b"-":
                    break
            return out
    return None


# Timings differ from run to run: elapsed_ms, and delayed_ms (the limiter's hold: whether the
# second session of a burst waits for the session rate depends on whether the first one has
# connected by then).
def volatile_free(r):
    return {k: v for k, v in r.items() if k not in ("elapsed_ms", "delayed_ms", "checked_at")}


# ---- the ordinary run: the format, and what Postfix said
plain, tr = records("plain"), records("tr")
ts = transcripts("tr")
check(len(ts) >= 2, "--transcript wrote one file per session (%d files)" % len(ts))
by_mx = {}
for t in ts:
    by_mx.setdefault(t["mx"], []).append(t)
check(set(by_mx) == {"mx.valid.test", "mx.tls.test"},
      "files for mx.valid.test and mx.tls.test (%s)" % sorted(by_mx))
names = [t["name"] for t in ts]
check(names == sorted(names, key=lambda n: (n.split("-")[0], int(n.split("-")[1]))),
      "file names sort by time, then SEQ")
seqs = [int(n.split("-")[1]) for n in names]
check(len(set(seqs)) == len(seqs), "SEQ is unique in a run")

for t in ts:
    recs = t["records"]
    first = recs[0] if recs else None
    check(first is not None and first[1] == "<" and re.match(rb"^220 %s ESMTP world$" %
          re.escape(t["mx"].encode()), first[2]) is not None,
          "%s: the first line is Postfix's banner (%r)" % (t["name"], first))
    ehlo = replies_to(t, b"EHLO ")
    check(ehlo is not None and len(ehlo) > 1 and all(l.startswith(b"250-") for l in ehlo[:-1])
          and ehlo[-1].startswith(b"250 "),
          "%s: EHLO's reply line by line, continuations kept (%d lines)" %
          (t["name"], len(ehlo or [])))
    # Over TLS the 221 may be missing: libevent's OpenSSL filter can report the server's
    # close before the data read with it (docs/transcripts.md); in the clear it is always there.
    quit_221 = len(recs) > 2 and recs[-2][2] == b"QUIT" and recs[-1][2].startswith(b"221 ")
    quit_only = t["tls"] is not None and len(recs) > 1 and recs[-1][2] == b"QUIT"
    check(t["end"] == "closed by client" and (quit_221 or quit_only),
          "%s: ends with QUIT, 221%s, closed by client (%r at %r after %r)" %
          (t["name"], " (if read)" if t["tls"] else "", t["end"], t.get("end_at"), recs[-3:]))

valid = by_mx.get("mx.valid.test", [])
nobody = [r for t in valid for r in [replies_to(t, b"RCPT TO:<nobody@valid.test>")] if r]
want550 = (b"550 5.1.1 <nobody@valid.test>: Recipient address rejected: User unknown in "
           b"virtual mailbox table")
check(len(nobody) == 1 and nobody[0] == [want550],
      "RCPT TO:<nobody@valid.test> got Postfix's 550 5.1.1 (%r)" % nobody)
alice = [r for t in valid for r in [replies_to(t, b"RCPT TO:<alice@valid.test>")] if r]
check(len(alice) == 1 and alice[0][0].startswith(b"250 2.1.5 "), "alice: 250 2.1.5 (%r)" % alice)
mail = [r for t in valid for r in [replies_to(t, b"MAIL FROM:<%s>" % sender.encode())] if r]
check(mail and all(m[0].startswith(b"250 2.1.0") for m in mail),
      "MAIL FROM with our sender, 250 2.1.0 (%r)" % mail[:1])
# Postfix's own log of the same refusal
try:
    maillog = open(maillog_path, "rb").read()
except OSError as e:
    maillog = b""
    print("     cannot read %s: %s" % (maillog_path, e))
logged = [l for l in maillog.split(b"\n") if b"from=<%s> to=<nobody@valid.test>" % sender.encode()
          in l]
check(len(logged) >= 1 and want550 in logged[-1],
      "Postfix's maillog has the same 550 line for our sender (%r)" % logged[-1:])

tls = by_mx.get("mx.tls.test", [])
check(len(tls) == 1, "one session to mx.tls.test (%d)" % len(tls))
for t in tls:
    check(t["tls"] is not None and t["tls"][2] == b"no",
          "mx.tls.test: '# tls: PROTOCOL CIPHER verified=no' (%r)" % (t["tls"],))
    recs = t["records"]
    at = t.get("tls_at", 0)
    check(at >= 2 and recs[at - 2][2] == b"STARTTLS" and recs[at - 1][2].startswith(b"220 ")
          and recs[at][2].startswith(b"EHLO "),
          "mx.tls.test: the # tls line sits between the 220 to STARTTLS and the second EHLO")
    dave = replies_to(t, b"RCPT TO:<dave@tls.test>")
    check(dave and dave[0].startswith(b"250 2.1.5") and recs.index(next(
          r for r in recs if r[2].startswith(b"RCPT TO:<dave@"))) > at,
          "dave@tls.test: 250 2.1.5, after the handshake (%r)" % dave)
check(tr.get("dave@tls.test", {}).get("tls") is True
      and tr.get("dave@tls.test", {}).get("tls_verified") in (None, False),
      "the record agrees: tls, not verified")
ca = transcripts("ca")
check(len(ca) == 1 and ca[0]["tls"] is not None and ca[0]["tls"][2] == b"yes",
      "with --tls-ca of the world's certificate: verified=yes (%r)" %
      ([c["tls"] for c in ca],))
check(records("ca").get("dave@tls.test", {}).get("tls_verified") is True,
      "and the record says tls_verified")

# ---- the records do not change
check(sorted(plain) == sorted(tr) and len(plain) == 3, "a record per address, both runs")
for a in sorted(plain):
    check(volatile_free(plain[a]) == volatile_free(tr.get(a, {})),
          "%s: the same record with and without --transcript (%s/%s)" %
          (a, plain[a].get("status"), plain[a].get("reason")))
check(plain.get("nobody@valid.test", {}).get("reason") == "mailbox_not_found",
      "nobody@valid.test: mailbox_not_found")

# ---- a full disk: records unchanged, one warning, transcripts off (when it could be made:
# the shell says when it was skipped, and why)
if os.environ.get("TRANSCRIPT_FULL_RAN") == "1":
    full = records("full")
    for a in sorted(plain):
        check(volatile_free(plain[a]) == volatile_free(full.get(a, {})),
              "%s: the same record with every transcript write failing" % a)
    err = open(os.path.join(tmp, "full.err"), encoding="utf-8", errors="replace").read()
    warn = [l for l in err.splitlines() if "transcript" in l]
    check(len(warn) == 1 and "full.d" in warn[0] and "No space left on device" in warn[0],
          "one warning naming the file and the error (%r)" % warn)
    check(len(err.splitlines()) == 1, "and nothing else on stderr (%d lines)" % len(err.splitlines()))

# ---- hostile servers: bounded, ended by the error
hostile = records("hostile")
for a in ("x@longline.test", "x@endless.test"):
    check(hostile.get(a, {}).get("reason") == "protocol_error", "%s: protocol_error" % a)
hs = {t["mx"]: t for t in transcripts("hostile")}
check(set(hs) == {"mx.longline.test", "mx.endless.test"}, "hostile: a file each (%s)" % sorted(hs))
for mx, t in sorted(hs.items()):
    check(t["end"] == "protocol_error", "%s: '# end: ... protocol_error' (%r)" % (mx, t["end"]))
    check(t["size"] <= 1024 * 1024 + 64, "%s: bounded (%d bytes)" % (mx, t["size"]))
    check(all(d == "<" for _, d, _ in t["records"]), "%s: nothing was sent to it" % mx)
e = hs.get("mx.endless.test", {"records": []})
check(len(e["records"]) == 129 and all(r[2] == b"220-x" for r in e["records"]),
      "endless: 128 continuation lines and the one too many, each as received (%d)" %
      len(e["records"]))
check(len(hs.get("mx.longline.test", {"records": [1]})["records"]) == 0,
      "longline: a line that never ends is not written")

# ---- Postfix's error limit: why a kept session ended is in its file
cut = [t for t in transcripts("many") if t["end"] != "closed by client"]
for t in cut:
    last = t["records"][-1] if t["records"] else (0, "", b"")
    check(t["end"] == "protocol_error" and last[1] == "<" and last[2].startswith(b"421 4.7.0 ")
          and b"too many errors" in last[2],
          "%s: ends with Postfix's unasked 421 and protocol_error (%r, %r)" %
          (t["name"], last, t["end"]))

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
PYEOF
prc=$?

# A DIR that cannot be used stops the start, naming it.
for d in "$tmp/missing" /etc/passwd; do
    out=$("$VALIDORA" verify --allow-private-destinations --state-dir "$STATE" --dns "$DNS" --transcript "$d" alice@valid.test 2>&1 >/dev/null)
    rc=$?
    if [ "$rc" -eq 1 ] && printf '%s' "$out" | grep -qF -- "$d"; then
        ok "--transcript $d: exit 1, '$out'"
    else
        bad "--transcript $d: exit $rc, '$out'"
    fi
done

[ "$prc" -eq 0 ] && ok "the Python checks above (their own tally)" || bad "the Python checks above: $prc (their own tally)"
checks_done transcript

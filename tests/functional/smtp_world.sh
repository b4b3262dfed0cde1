#!/usr/bin/env bash
# smtp_world.sh — the end-to-end verdict test: runs the Validora CLI against the test world
# (real unbound, Postfix, postgrey and tarpits on loopback) and checks every row of
# docs/world.md's verdict table, one assertion per fact, each with a message that says
# which address and which field went wrong.
#
# Env (set by ctest): VALIDORA (the CLI), WORLD_DIR (a started world), optionally
# VALIDORA_DNS_PORT (default 5354). If world_sanity.sh fails too, suspect the world.
set -uo pipefail

: "${VALIDORA:?VALIDORA must name the validora CLI binary}"
: "${WORLD_DIR:?WORLD_DIR must name a started world (tests/world/world.sh start DIR)}"
DNS="127.0.0.1:${VALIDORA_DNS_PORT:-5354}"

# Input addresses, in the order of docs/world.md's table.
ADDRS=(
    alice@valid.test bob@valid.test info@valid.test nobody@valid.test full@valid.test
    disabled@valid.test anything@catchall.test carol@grey.test dave@tls.test
    erin@deadfirst.test frank@implicit.test user@xn--bcher-kva.test 'user@bücher.test'
    alice@mailalias.test x@nullmx.test x@nosuch.test x@nomx.test x@servfail.test
    x@blocked.test x@refused.test x@tarpit.test x@longline.test x@endless.test
)

if [ ! -x "$VALIDORA" ]; then
    echo "FAIL the CLI '$VALIDORA' is not an executable file (build the validora-cli target)"
    echo "0 passed, 1 failed"
    exit 1
fi

. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp
OUT=$tmp/out
ERR=$tmp/err
STATE=$tmp/state # the ledger and the instance lock of this run, never the machine's
mkdir "$STATE"

# A sender unique to this run: postgrey's triplet includes it, so carol@grey.test is
# greylisted on the first try even when the world was used before (by this or another test).
# Letters only: postgrey replaces digits in the local part with '#' (VERP) and drops +ext.
FROM="world-$(LC_ALL=C tr -dc a-z </dev/urandom | head -c 12)@validora.test"

start=$SECONDS
timeout 300 "$VALIDORA" verify --allow-private-destinations --state-dir "$STATE" --dns "$DNS" --format json --smtp-timeout 5 --greylist-delay 6 \
    --mail-from "$FROM" "${ADDRS[@]}" >"$OUT" 2>"$ERR"
rc=$?
echo "validora verify: exit $rc after $((SECONDS - start))s, $(wc -l <"$OUT") lines of output"
if [ -s "$ERR" ]; then
    echo "---- stderr (last 20 lines)"
    tail -n 20 "$ERR"
    echo "----"
fi

python3 - "$OUT" "$rc" "${ADDRS[@]}" <<'PYEOF'
import json
import sys

out_path, rc, addrs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
passed = failed = 0


def check(ok, msg):
    global passed, failed
    if ok:
        passed += 1
        print("ok   " + msg)
    else:
        failed += 1
        print("FAIL " + msg)


# The exit status may encode verdicts; only a timeout (124) or a signal (>= 128) is a failure.
check(rc < 124, "CLI finished by itself (exit %d; 124 = killed by timeout, >= 128 = signal)" % rc)

records = {}
with open(out_path, encoding="utf-8", errors="replace") as f:
    for n, line in enumerate(f, 1):
        line = line.strip()
        if not line:
            continue
        try:
            r = json.loads(line)
        except ValueError as e:
            check(False, "output line %d is not JSON (%s): %.120s" % (n, e, line))
            continue
        if not isinstance(r, dict) or "email" not in r:
            check(False, "output line %d is not a record with 'email': %.120s" % (n, line))
            continue
        if r["email"] in records:
            check(False, "%s: more than one record" % r["email"])
        records[r["email"]] = r

for a in addrs:
    check(a in records, "%s: one record in the output" % a)


def field(r, path):
    v = r
    for k in path.split("."):
        if not isinstance(v, dict) or k not in v:
            return None
        v = v[k]
    return v


def expect(addr, **want):
    """want: status, reason, and dotted field paths (smtp__code -> smtp.code) to values or
    to callables returning a bool."""
    r = records.get(addr)
    if r is None:
        check(False, "%s: no record, cannot check %s" % (addr, ", ".join(sorted(want))))
        return
    for key, exp in want.items():
        path = key.replace("__", ".")
        got = field(r, path)
        if callable(exp):
            ok = False
            try:
                ok = bool(exp(got))
            except Exception:
                ok = False
            check(ok, "%s: %s = %r (%s)" % (addr, path, got, exp.__doc__ or "predicate"))
        else:
            check(got == exp, "%s: %s = %r, expected %r" % (addr, path, got, exp))


def at_least(n):
    def f(v):
        return isinstance(v, int) and v >= n
    f.__doc__ = "expected >= %d" % n
    return f


def contains(s):
    def f(v):
        return isinstance(v, str) and s.lower() in v.lower()
    f.__doc__ = "expected to contain %r" % s
    return f


def absent_or_false(v):
    """expected false or absent"""
    return v in (False, None)


def no_smtp(v):
    """expected absent: no SMTP conversation took place"""
    return v in (None, {})


ACCEPTED = dict(status="deliverable", reason="accepted")

expect("alice@valid.test", **ACCEPTED, smtp__code=250, address="alice@valid.test",
       domain="valid.test")
expect("bob@valid.test", **ACCEPTED, smtp__code=250)
expect("info@valid.test", **ACCEPTED, role=True)
expect("alice@valid.test", role=absent_or_false)
expect("nobody@valid.test", status="undeliverable", reason="mailbox_not_found",
       smtp__code=550, smtp__enhanced="5.1.1")
expect("full@valid.test", status="risky", reason="mailbox_full", smtp__code=452,
       smtp__enhanced="4.2.2", smtp__text=contains("full"))
expect("disabled@valid.test", status="undeliverable", reason="mailbox_disabled",
       smtp__code=550, smtp__enhanced="5.2.1", smtp__text=contains("disabled"))
expect("anything@catchall.test", status="risky", reason="catch_all", catch_all=True)
expect("alice@valid.test", catch_all=absent_or_false)
expect("carol@grey.test", **ACCEPTED, attempts=at_least(2), smtp__code=250)
expect("dave@tls.test", **ACCEPTED, tls=True)
expect("erin@deadfirst.test", **ACCEPTED, mx="mx2.deadfirst.test")
expect("frank@implicit.test", **ACCEPTED)
expect("user@xn--bcher-kva.test", **ACCEPTED, domain="xn--bcher-kva.test")
expect("user@bücher.test", **ACCEPTED, domain="xn--bcher-kva.test",
       address="user@xn--bcher-kva.test")
# mailalias.test is a CNAME to valid.test: same MX host, and Postfix knows alice there.
valid_mx = field(records.get("alice@valid.test", {}), "mx")
check(valid_mx is not None, "alice@valid.test: mx is reported (%r)" % valid_mx)


def same_as_valid_mx(v):
    """expected the MX that alice@valid.test reported"""
    return valid_mx is not None and v == valid_mx


expect("alice@mailalias.test", **ACCEPTED, mx=same_as_valid_mx)
expect("x@nullmx.test", status="undeliverable", reason="null_mx")
expect("x@nosuch.test", status="undeliverable", reason="domain_not_found")
expect("x@nomx.test", status="undeliverable", reason="no_mail_server")
expect("x@servfail.test", status="unknown", reason="dns_error")
expect("x@blocked.test", status="unknown", reason="blocked", smtp__code=554,
       smtp__enhanced="5.7.1", smtp__text=contains("blocked using"))
expect("x@refused.test", status="unknown", reason="connect_failed")
expect("x@tarpit.test", status="unknown", reason="timeout")
expect("x@longline.test", status="unknown", reason="protocol_error")
expect("x@endless.test", status="unknown", reason="protocol_error")
# No SMTP verdict may come from a conversation that never happened.
for a in ("x@nullmx.test", "x@nosuch.test", "x@nomx.test", "x@servfail.test"):
    expect(a, smtp=no_smtp)

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
PYEOF

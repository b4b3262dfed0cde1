#!/usr/bin/env python3
"""sweep.py — the test world's family of strict servers, made from tests/world/sweep_profiles.json.

Owns: turning the profile table into what the world runs (the zone, the Postfix listeners)
and into what a sweep sends (the address lists), and reading a run's outcome the way the
servers saw it (the policy service's status, Postfix's anvil refusals in the maillog).
Does not own: judging RCPTs (strictpolicy.py), starting anything (world.sh), the pass/fail
thresholds (tests/functional/sweep.sh, bench/sweep_bench.sh).

  sweep.py zone                         the sweep.test zone (every profile's names)
  sweep.py master-cf POLICY_PORT        master.cf listeners, one per profile server
  sweep.py names [--ci]                 the profile names, one a line
  sweep.py get NAME KEY                 one field of a profile
  sweep.py list NAME                    the profile's addresses (fixed seed), one a line
  sweep.py right NAME RECORDS           how many JSON-lines records have their true verdict
  sweep.py refusals NAME MAILLOG OFFSET anvil refusals of the profile's listeners logged past
                                        byte OFFSET of the maillog (its size before the run)
"""

import json
import os
import random
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = os.environ.get("SWEEP_PROFILES", os.path.join(HERE, "sweep_profiles.json"))


def profiles():
    with open(TABLE) as f:
        return json.load(f)["profiles"]


def profile(name):
    for p in profiles():
        if p["name"] == name:
            return p
    sys.exit("sweep.py: no profile %r in %s" % (name, TABLE))


def domains(p):
    """(domain, mx name, server address) of a profile."""
    if "shared" in p:
        return [("c%d.shared.sweep.test" % i, "mail.c%d.shared.sweep.test" % i, p["servers"][0])
                for i in range(1, p["shared"] + 1)]
    out = []
    for i, d in enumerate(p["domains"]):
        out.append((d, "mx." + d, p["servers"][i % len(p["servers"])]))
    return out


def zone():
    print("; sweep.test: the sweep's strict servers, written by tests/world/sweep.py from")
    print("; sweep_profiles.json (do not edit; rewritten on every world start).")
    print("$ORIGIN sweep.test.")
    print("$TTL 300")
    print("@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60")
    print("@ IN NS ns.test.")
    for p in profiles():
        for d, mx, ip in domains(p):
            rel = d[: -len(".sweep.test")]
            print("%s IN MX 10 %s." % (rel, mx))
            print("%s IN A %s" % (mx[: -len(".sweep.test")], ip))


def master_cf(port):
    print("# The sweep's strict servers (tests/world/sweep.py from sweep_profiles.json): every")
    print("# RCPT goes to strictpolicy.py, which judges it by the profile of the address it came to;")
    print("# anvil limits where the profile has them (nobody exempt, not even loopback).")
    for p in profiles():
        anvil = p.get("anvil", {})
        for i, ip in enumerate(p["servers"]):
            host = "mx.%s.sweep.test" % ("shared" if "shared" in p else p["name"].replace(".", "-"))
            print("%s:25 inet n - n - - smtpd" % ip)
            print("  -o syslog_name=postfix-sweep-%s" % p["name"])
            print("  -o myhostname=%s" % host)
            print("  -o smtpd_client_event_limit_exceptions=")
            print("  -o smtpd_client_connection_count_limit=%d" % anvil.get("count", 0))
            print("  -o smtpd_client_connection_rate_limit=%d" % anvil.get("rate", 0))
            print("  -o smtpd_recipient_restrictions=check_policy_service,inet:127.0.0.1:%s,"
                  "reject_unauth_destination" % port)


def addresses(p):
    ds = domains(p)
    n = p["n"]
    unknown = int(round(n * p.get("unknown_share", 0.0)))
    out = []
    for i in range(n):
        d = ds[i % len(ds)][0]
        out.append(("nouser%d@%s" if i < unknown else "user%d@%s") % (i + 1, d))
    random.Random(20261207).shuffle(out)
    return out


def right(p, path):
    n = 0
    for line in open(path):
        if not line.strip():
            continue
        r = json.loads(line)
        want = ("deliverable", "accepted") if r["email"].startswith("user") else \
            ("undeliverable", "mailbox_not_found")
        n += (r["status"], r["reason"]) == want
    return n


def refusals(p, maillog, offset):
    """Anvil's refusals (connection count or rate) at this profile's listeners, logged past
    byte `offset` of the maillog."""
    pat = re.compile(r"postfix-sweep-%s/smtpd.*Connection (concurrency|rate) limit exceeded"
                     % re.escape(p["name"]))
    with open(maillog, "rb") as f:
        f.seek(int(offset))
        return sum(1 for line in f.read().decode(errors="replace").splitlines() if pat.search(line))


def main():
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    if a[0] == "zone":
        zone()
    elif a[0] == "master-cf":
        master_cf(a[1])
    elif a[0] == "names":
        for p in profiles():
            if "--ci" not in a or p.get("ci"):
                print(p["name"])
    elif a[0] == "get":
        v = profile(a[1]).get(a[2])
        print(json.dumps(v) if isinstance(v, (dict, list)) else v)
    elif a[0] == "list":
        print("\n".join(addresses(profile(a[1]))))
    elif a[0] == "right":
        print(right(profile(a[1]), a[2]))
    elif a[0] == "refusals":
        print(refusals(profile(a[1]), a[2], a[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

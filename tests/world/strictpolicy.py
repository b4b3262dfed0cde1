#!/usr/bin/env python3
"""strictpolicy.py — the test world's "strict provider" (docs/world.md, strict.test).

A Postfix policy delegation service (check_policy_service inet:127.0.0.1:PORT, used by the
127.0.0.15 listener only) that judges each client IP the way a strict mailbox provider does:

  * per client IP it keeps the RCPTs and the unknown-user RCPTs of the last WINDOW seconds
    (sliding window; every RCPT the client sends while not blocked counts, deferred ones too);
  * more than MAX_RCPT RCPTs in the window: defer,
        450 4.7.1 Error: too many recipients from [IP], slow down
  * UNKNOWN_MIN or more unknown users in the window making up more than UNKNOWN_RATIO of
    its RCPTs: defer and close the session (Postfix disconnects after a 421),
        421 4.7.0 [IP] Too many invalid recipients from your host. Try again later, closing connection.
  * BLOCK_AFTER deferrals within the window (the client kept going while deferred): block
    the IP for BLOCK_SECONDS; that RCPT and every later one until the block expires get
        554 5.7.1 Service unavailable; Client host [IP] blocked using strict-bl.test; poor reputation (until HH:MM:SSZ)
    A block is not extended by attempts made during it; when it expires the IP starts clean.

Postfix puts "<rcpt>: Recipient address rejected: " between the enhanced code and the text.

Known users come from --users, a Postfix map source file (first column = address); a
recipient not in it is "unknown" (Postfix itself then answers 550 5.1.1 for it).

Profiles (--profiles tests/world/sweep_profiles.json, the sweep's family of strict servers):
an RCPT that came to one of a profile's server addresses (Postfix's server_address attribute)
is judged by that profile's knobs instead (window, max_rcpt, unknown_min, unknown_ratio,
block_after within defer_window, block_seconds), its known users are user<N>@..., and the
client is counted per profile (or per "group": several addresses that count together).
`status --profile NAME` shows one profile's view.

Every decision is logged (one line per RCPT) to --log. The state is published three ways:
  * --status FILE, a JSON document rewritten at most once a second and at once on every
    block and reset;
  * the query verbs on the policy socket (one request = name=value lines and an empty line):
        request=strict_status [client_address=IP]   -> status={json}
        request=strict_reset                        -> action=OK reset
  * this script's client commands: `strictpolicy.py status [IP]`, `strictpolicy.py reset`.

Knobs: command-line options, defaulting to environment variables STRICT_* (see --help).
Stdlib only (asyncio). Binds loopback only.
"""

import argparse
import asyncio
import collections
import json
import os
import re
import signal
import socket
import sys
import time


def env(name, default, conv):
    v = os.environ.get(name)
    return conv(v) if v not in (None, "") else default


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


class Client:
    __slots__ = ("rcpts", "unknowns", "defers", "block_until", "blocks", "totals")

    def __init__(self):
        self.rcpts = collections.deque()     # times of RCPTs in the window
        self.unknowns = collections.deque()  # times of unknown-user RCPTs in the window
        self.defers = collections.deque()    # times of deferrals in the window
        self.block_until = 0.0
        self.blocks = []                     # [{"since": t, "until": t, "reason": str}]
        self.totals = collections.Counter()  # per action, since the last reset


class Knobs:
    """One server's thresholds: the command line's (the strict provider) or a profile's."""

    def __init__(self, name, window, max_rcpt, unknown_min, unknown_ratio, block_after,
                 block_seconds, defer_window=None, group=None, known=None):
        self.name, self.window, self.max_rcpt = name, float(window), int(max_rcpt)
        self.unknown_min, self.unknown_ratio = int(unknown_min), float(unknown_ratio)
        self.block_after, self.block_seconds = int(block_after), float(block_seconds)
        self.defer_window = float(defer_window or window)
        self.group = group or name
        self.known = known  # a regexp of known recipients (None: the --users file)


class Policy:
    def __init__(self, a):
        self.a = a
        self.users = set()
        self.clients = {}
        self.default = Knobs("strict", a.window, a.max_rcpt, a.unknown_min, a.unknown_ratio,
                             a.block_after, a.block_seconds)
        self.by_server = {}
        self.by_name = {"strict": self.default}
        if a.profiles:
            with open(a.profiles) as f:
                for p in json.load(f)["profiles"]:
                    k = Knobs(p["name"], p["window"], p["max_rcpt"], p.get("unknown_min", 10 ** 9),
                              p.get("unknown_ratio", 1.0), p["block_after"], p["block_seconds"],
                              p.get("defer_window"), p.get("group"), re.compile(r"^user[0-9]+@"))
                    self.by_name[p["name"]] = k
                    for ip in p["servers"]:
                        self.by_server[ip] = k
        self.started = time.time()
        self.reset_at = self.started
        self.dirty = True
        self.load_users()
        self.log = open(a.log, "a", buffering=1) if a.log else None

    def load_users(self):
        if not self.a.users:
            return
        with open(self.a.users) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    self.users.add(line.split()[0].lower())

    def say(self, msg):
        if self.log:
            self.log.write("%s %s\n" % (iso(time.time()), msg))

    def reset(self):
        self.clients.clear()
        self.reset_at = time.time()
        self.say("reset")
        self.write_status()

    def decide(self, req):
        """One RCPT: returns the action line for Postfix."""
        a = self.by_server.get(req.get("server_address", ""), self.default)
        now = time.time()
        ip = req.get("client_address", "?")
        rcpt = req.get("recipient", "").lower()
        known = bool(a.known.match(rcpt)) if a.known else rcpt in self.users
        c = self.clients.setdefault((a.group, ip), Client())
        if c.block_until > now:
            c.totals["blocked"] += 1
            self.say("client=%s rcpt=%s known=%d action=blocked until=%s" % (
                ip, rcpt, known, iso(c.block_until)))
            return self.block_reply(ip, c.block_until)
        if c.block_until:  # a block has just expired: the IP starts clean
            self.say("client=%s action=unblocked (block expired at %s)" % (ip, iso(c.block_until)))
            c.block_until = 0.0
            c.rcpts.clear(), c.unknowns.clear(), c.defers.clear()
            self.dirty = True
        edge = now - a.window
        for q in (c.rcpts, c.unknowns):
            while q and q[0] <= edge:
                q.popleft()
        while c.defers and c.defers[0] <= now - a.defer_window:
            c.defers.popleft()
        c.rcpts.append(now)
        if not known:
            c.unknowns.append(now)
        n, u = len(c.rcpts), len(c.unknowns)
        c.totals["rcpt"] += 1
        c.totals["unknown"] += (not known)
        why = None
        if n > a.max_rcpt:
            why = "rate"
        elif u >= a.unknown_min and u > a.unknown_ratio * n:
            why = "unknown"
        if why is None:
            c.totals["dunno"] += 1
            self.say("server=%s client=%s rcpt=%s known=%d rcpts=%d unknown=%d defers=%d action=DUNNO" % (
                a.name, ip, rcpt, known, n, u, len(c.defers)))
            self.dirty = True
            return "DUNNO"
        c.defers.append(now)
        d = len(c.defers)
        if d >= a.block_after:
            c.block_until = now + a.block_seconds
            c.blocks.append({"since": now, "since_iso": iso(now), "until": c.block_until,
                             "until_iso": iso(c.block_until),
                             "reason": "%d deferrals (%s) in %gs" % (d, why, a.defer_window)})
            c.totals["block"] += 1
            self.say("client=%s rcpt=%s known=%d rcpts=%d unknown=%d defers=%d action=BLOCK reason=%s until=%s" % (
                ip, rcpt, known, n, u, d, why, iso(c.block_until)))
            self.write_status()
            return self.block_reply(ip, c.block_until)
        c.totals["defer_" + why] += 1
        self.say("client=%s rcpt=%s known=%d rcpts=%d unknown=%d defers=%d action=DEFER reason=%s" % (
            ip, rcpt, known, n, u, d, why))
        self.dirty = True
        if why == "rate":
            return "450 4.7.1 Error: too many recipients from [%s], slow down" % ip
        return ("421 4.7.0 [%s] Too many invalid recipients from your host."
                " Try again later, closing connection." % ip)

    @staticmethod
    def block_reply(ip, until):
        return ("554 5.7.1 Service unavailable; Client host [%s] blocked using strict-bl.test;"
                " poor reputation (until %s)" % (ip, time.strftime("%H:%M:%SZ", time.gmtime(until))))

    def status(self, ip=None, profile=None):
        now = time.time()
        a = self.by_name.get(profile or "strict", self.default)
        out = {
            "now": now, "now_iso": iso(now), "reset_at": self.reset_at, "reset_at_iso": iso(self.reset_at),
            "profile": a.name,
            "policy": {"window": a.window, "max_rcpt": a.max_rcpt, "unknown_min": a.unknown_min,
                       "unknown_ratio": a.unknown_ratio, "block_after": a.block_after,
                       "defer_window": a.defer_window,
                       "block_seconds": a.block_seconds, "max_rate": a.max_rcpt / a.window},
            "clients": {},
        }
        for (group, cip), c in self.clients.items():
            if group != a.group or (ip and cip != ip):
                continue
            edge = now - a.window
            out["clients"][cip] = {
                "blocked_now": c.block_until > now,
                "ever_blocked": bool(c.blocks),
                "blocked_since": c.blocks[-1]["since"] if c.blocks else None,
                "blocked_since_iso": c.blocks[-1]["since_iso"] if c.blocks else None,
                "block_until": c.block_until or None,
                "blocks": c.blocks,
                "window": {"rcpts": sum(1 for t in c.rcpts if t > edge),
                           "unknown": sum(1 for t in c.unknowns if t > edge),
                           "defers": sum(1 for t in c.defers if t > edge)},
                "totals": dict(c.totals),
            }
        if ip and ip not in out["clients"]:
            out["clients"][ip] = {"blocked_now": False, "ever_blocked": False, "blocked_since": None,
                                  "blocked_since_iso": None, "block_until": None, "blocks": [],
                                  "window": {"rcpts": 0, "unknown": 0, "defers": 0}, "totals": {}}
        return out

    def write_status(self):
        self.dirty = False
        if not self.a.status:
            return
        tmp = self.a.status + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.status(), f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, self.a.status)


async def serve(a):
    pol = Policy(a)

    async def handle(reader, writer):
        try:
            while True:
                req = {}
                while True:
                    line = await reader.readline()
                    if not line:
                        return
                    line = line.rstrip(b"\r\n").decode("utf-8", "replace")
                    if not line:
                        break
                    k, _, v = line.partition("=")
                    req[k] = v
                kind = req.get("request")
                if kind == "smtpd_access_policy":
                    if req.get("protocol_state", "RCPT").upper() == "RCPT":
                        resp = "action=%s\n\n" % pol.decide(req)
                    else:
                        resp = "action=DUNNO\n\n"
                elif kind == "strict_status":
                    resp = "status=%s\n\n" % json.dumps(pol.status(req.get("client_address") or None,
                                                                   req.get("profile") or None),
                                                        sort_keys=True)
                elif kind == "strict_reset":
                    pol.reset()
                    resp = "action=OK reset\n\n"
                else:
                    pol.say("bad request %r" % req)
                    resp = "action=DUNNO\n\n"
                writer.write(resp.encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def flusher():
        while True:
            await asyncio.sleep(1)
            if pol.dirty:
                pol.write_status()

    host, _, port = a.listen.rpartition(":")
    if not host.startswith("127."):
        sys.exit("strictpolicy: --listen must be on 127.0.0.0/8")
    server = await asyncio.start_server(handle, host, int(port), reuse_address=True)
    pol.say("listening on %s; users=%d window=%gs max_rcpt=%d unknown_min=%d unknown_ratio=%g "
            "block_after=%d block_seconds=%g" % (a.listen, len(pol.users), a.window, a.max_rcpt,
                                                 a.unknown_min, a.unknown_ratio, a.block_after,
                                                 a.block_seconds))
    pol.write_status()
    if a.pidfile:
        with open(a.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    loop.add_signal_handler(signal.SIGHUP, pol.reset)
    ft = asyncio.ensure_future(flusher())
    async with server:
        await stop.wait()
    ft.cancel()
    pol.say("stopping")


def query(a, lines):
    host, _, port = a.connect.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(("\n".join(lines) + "\n\n").encode())
        buf = b""
        while not buf.endswith(b"\n\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return buf.decode().strip()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the policy service")
    s.add_argument("--listen", default=env("STRICT_LISTEN", "127.0.0.1:10024", str))
    s.add_argument("--users", default=env("STRICT_USERS_FILE", None, str),
                   help="Postfix map source whose first column lists the known addresses")
    s.add_argument("--window", type=float, default=env("STRICT_WINDOW", 10.0, float),
                   help="sliding window, seconds (STRICT_WINDOW, default 10)")
    s.add_argument("--max-rcpt", type=int, default=env("STRICT_MAX_RCPT", 100, int),
                   help="RCPTs allowed per window (STRICT_MAX_RCPT, default 100: 10 RCPT/s)")
    s.add_argument("--unknown-min", type=int, default=env("STRICT_UNKNOWN_MIN", 20, int),
                   help="unknown users per window before the ratio applies (STRICT_UNKNOWN_MIN, default 20)")
    s.add_argument("--unknown-ratio", type=float, default=env("STRICT_UNKNOWN_RATIO", 0.35, float),
                   help="unknown share of the window's RCPTs that defers (STRICT_UNKNOWN_RATIO, default 0.35)")
    s.add_argument("--block-after", type=int, default=env("STRICT_BLOCK_AFTER", 20, int),
                   help="deferrals per window that turn into a block (STRICT_BLOCK_AFTER, default 20)")
    s.add_argument("--block-seconds", type=float, default=env("STRICT_BLOCK_SECONDS", 300.0, float),
                   help="how long a block lasts (STRICT_BLOCK_SECONDS, default 300)")
    s.add_argument("--profiles", default=env("STRICT_PROFILES", None, str),
                   help="the sweep's profiles (sweep_profiles.json): knobs per server address")
    s.add_argument("--log", default=None, help="decision log (appended)")
    s.add_argument("--status", default=None, help="JSON status file (rewritten)")
    s.add_argument("--pidfile", default=None)
    for name in ("status", "reset"):
        c = sub.add_parser(name, help="ask a running service (%s)" % name)
        c.add_argument("--connect", default=env("STRICT_LISTEN", "127.0.0.1:10024", str))
        if name == "status":
            c.add_argument("client", nargs="?", help="one client IP (default: all)")
            c.add_argument("--profile", default=None, help="a sweep profile's view (default: strict)")
    a = p.parse_args()
    if a.cmd == "serve":
        asyncio.run(serve(a))
    elif a.cmd == "status":
        r = query(a, ["request=strict_status"] + (["client_address=" + a.client] if a.client else [])
                  + (["profile=" + a.profile] if a.profile else []))
        if not r.startswith("status="):
            sys.exit("strictpolicy: unexpected answer %r" % r)
        print(json.dumps(json.loads(r[len("status="):]), indent=1, sort_keys=True))
    else:
        r = query(a, ["request=strict_reset"])
        print(r)
        if r != "action=OK reset":
            sys.exit(1)


if __name__ == "__main__":
    main()

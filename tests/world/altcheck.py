#!/usr/bin/env python3
"""altcheck.py — the test world's alternative-check endpoints (docs/world.md, "The
alternative-check endpoints"): HTTPS servers that answer like Microsoft's GetCredentialType
and Yahoo's sign-up username check, so the microsoft365 and yahoo rules can be tested
without the Internet.

    altcheck.py serve --service microsoft|yahoo --listen ADDR:PORT --cert PEM --key PEM
                      --log FILE [--pidfile FILE]

Owns: the two services' answers and their request logs. Not the certificates (world.sh
makes them with its test CA), not DNS (login.microsoft.test / login.yahoo.test are in the
world's test. zone).

microsoft (login.microsoft.test, 127.0.0.50:443):
  POST /common/GetCredentialType[?query]  JSON body {"Username": "...", ...}
    alice@contoso.test, alice@fabrikam.test, alice@outlook.com -> IfExistsResult 0
    anything @federated.test          -> 0 for everyone (a federated tenant), DomainType 4
    throttle@contoso.test             -> 0 with ThrottleStatus 1 (the answer means nothing)
    malformed@contoso.test            -> 200, a body that is not JSON
    slow@contoso.test                 -> IfExistsResult 0, but only after SLOW seconds (a
                                         stuck endpoint: the client's timeout must end it)
    anything @othertenant.test        -> 5 (another tenant)
    anything else                     -> 1 (does not exist)
  A body that is not JSON or has no Username -> 400 (as AAD answers a broken request).

yahoo (login.yahoo.test, 127.0.0.51:443):
  GET  /account/create  -> the sign-up page: Set-Cookie AS=... and the hidden inputs
       acrumb and sessionIndex (new values per session)
  POST /account/module/create?validateField=userId  (form: acrumb, sessionIndex, userId, ...)
       needs the AS cookie of a session and that session's acrumb and sessionIndex, else 400.
       userId (the local part; "@yahoo.com" is stripped, case is ignored):
         alice -> {"errors":[{"name":"userId","error":"IDENTIFIER_EXISTS"}]}
         bob   -> {"errors":[{"name":"userId","error":"IDENTIFIER_NOT_AVAILABLE"}]}
         throttle -> 429;  malformed -> 200, not JSON;  anything else -> {"errors":[]}

Both: GET /_world/stats -> JSON request counts (not logged, not counted). Every other
request is logged, one line each (when answered; slow@ when its wait begins) (time, client, method, path, status, user, outcome), to
--log. Request bodies are bounded (MAX_BODY; larger -> 413, chunked -> 411), headers by
http.server's own limits, a client that stalls is cut after TIMEOUT seconds, and at most
MAX_CLIENTS connections are served at once (more are closed unanswered).
Stdlib only. Binds what --listen says (world.sh: loopback only).
"""

import argparse
import collections
import http.server
import json
import os
import secrets
import signal
import ssl
import sys
import threading
import time
import urllib.parse

MAX_BODY = 64 * 1024  # bytes of request body; the real requests are well under 1 KiB
TIMEOUT = 10  # seconds a client may take to send its request (and to read our answer)
SLOW = 15  # seconds slow@contoso.test waits before its answer (> the test's --http-timeout)
MAX_CLIENTS = 64  # connections served at once (a thread each); more are closed at once
MAX_SESSIONS = 10000  # Yahoo sign-up sessions kept (oldest dropped): bounded memory

MS_KNOWN = {"alice@contoso.test", "alice@fabrikam.test", "alice@outlook.com"}
YAHOO_TAKEN = {"alice": "IDENTIFIER_EXISTS", "bob": "IDENTIFIER_NOT_AVAILABLE"}


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


class State:
    """What the service remembers: its request counts and (Yahoo) the sign-up sessions."""

    def __init__(self, service, log_path):
        self.service = service
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        self.sessions = collections.OrderedDict()  # AS cookie -> (acrumb, sessionIndex)
        self.log = open(log_path, "a", buffering=1) if log_path else None

    def record(self, handler, status, user, outcome):
        with self.lock:
            self.counts["requests"] += 1
            self.counts["%s %s" % (handler.command, handler.path.split("?")[0])] += 1
            self.counts["outcome " + outcome] += 1
            if self.log:
                self.log.write("%s client=%s method=%s path=%s status=%d user=%s outcome=%s\n" % (
                    iso(time.time()), handler.client_address[0], handler.command,
                    handler.path, status, user if user is not None else "-", outcome))

    def new_session(self):
        cookie = "v=1&s=" + secrets.token_urlsafe(24)
        vals = (secrets.token_urlsafe(16), secrets.token_hex(8))
        with self.lock:
            self.sessions[cookie] = vals
            while len(self.sessions) > MAX_SESSIONS:
                self.sessions.popitem(last=False)
        return cookie, vals

    def session(self, cookie):
        with self.lock:
            return self.sessions.get(cookie)


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "world-altcheck"
    sys_version = ""
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's connection reuse is exercised
    timeout = TIMEOUT

    def log_message(self, fmt, *args):  # the request log is State.record's
        pass

    @property
    def st(self):
        return self.server.state

    def reply(self, status, body, ctype="application/json; charset=utf-8", headers=(),
              user=None, outcome="ok", logged=False):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        if not logged:
            self.st.record(self, status, user, outcome)

    def read_body(self):
        """The request body, or None after answering 411/413/400 itself."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self.reply(411, '{"error":"length required"}', outcome="length_required")
            return None
        try:
            n = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            n = -1
        if n < 0:
            self.close_connection = True
            self.reply(400, '{"error":"bad content-length"}', outcome="bad_length")
            return None
        if n > MAX_BODY:
            self.close_connection = True
            self.reply(413, '{"error":"request body too large"}', outcome="too_large")
            return None
        return self.rfile.read(n)

    def cookies(self):
        jar = {}
        for h in self.headers.get_all("Cookie") or []:
            for part in h.split(";"):
                k, sep, v = part.strip().partition("=")
                if sep:
                    jar[k] = v
        return jar

    def stats(self):
        with self.st.lock:
            body = json.dumps({"service": self.st.service, "counts": dict(self.st.counts)})
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def not_found(self):
        self.reply(404, '{"error":"not found"}', outcome="not_found")

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/_world/stats":
            return self.stats()
        if self.st.service == "yahoo" and path == "/account/create":
            return self.yahoo_page()
        return self.not_found()

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        body = self.read_body()
        if body is None:
            return
        if self.st.service == "microsoft" and path == "/common/GetCredentialType":
            return self.microsoft(body)
        if self.st.service == "yahoo" and path == "/account/module/create":
            return self.yahoo_validate(body)
        return self.not_found()

    # ---- Microsoft GetCredentialType
    def microsoft(self, body):
        try:
            req = json.loads(body.decode("utf-8"))
            user = req["Username"]
            if not isinstance(user, str):
                raise ValueError("Username is not a string")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return self.reply(400, '{"error":{"code":"AADSTS90100","message":"invalid request"}}',
                              outcome="bad_request")
        u = user.strip().lower()
        domain = u.rpartition("@")[2]
        if u == "malformed@contoso.test":
            return self.reply(200, "<html><body>Sorry, something went wrong.</body></html>",
                              ctype="text/html; charset=utf-8", user=user, outcome="malformed")
        throttle, domain_type, fed, logged = 0, 3, None, False
        if u == "slow@contoso.test":
            # Logged now: the client has usually gone when the answer is written.
            self.st.record(self, 200, user, "slow")
            logged = True
            time.sleep(SLOW)
            result, outcome = 0, "slow"
        elif u == "throttle@contoso.test":
            result, throttle, outcome = 0, 1, "throttled"
        elif domain == "federated.test":
            result, domain_type, outcome = 0, 4, "federated"
            fed = "https://sts.federated.test/adfs/ls/?username=" + urllib.parse.quote(user)
        elif domain == "othertenant.test":
            result, outcome = 5, "other_tenant"
        elif u in MS_KNOWN:
            result, outcome = 0, "exists"
        else:
            result, outcome = 1, "absent"
        creds = {"PrefCredential": 1, "HasPassword": True, "RemoteNgcParams": None,
                 "FidoParams": None, "SasParams": None, "CertAuthParams": None,
                 "GoogleParams": None, "FacebookParams": None}
        if fed:
            creds["FederationRedirectUrl"] = fed
            creds["PrefCredential"] = 4
        answer = {"Username": user, "Display": user, "IfExistsResult": result,
                  "IsUnmanaged": False, "ThrottleStatus": throttle, "Credentials": creds,
                  "EstsProperties": {"UserTenantBranding": None, "DomainType": domain_type},
                  "IsSignupDisallowed": True, "apiCanary": secrets.token_urlsafe(24)}
        return self.reply(200, json.dumps(answer), user=user, outcome=outcome, logged=logged)

    # ---- Yahoo sign-up
    def yahoo_page(self):
        cookie, (acrumb, sidx) = self.st.new_session()
        page = ("<!DOCTYPE html>\n<html><head><title>Yahoo - Sign up</title></head><body>\n"
                '<form id="regform" method="post" action="/account/create?specId=yidregsimplified">\n'
                '<input type="hidden" value="%s" name="browser-fp-data" id="browser-fp-data">\n'
                '<input type="hidden" value="%s" name="acrumb">\n'
                '<input type="hidden" name="sessionIndex" value="%s">\n'
                '<input type="hidden" name="specId" value="yidregsimplified">\n'
                '<input type="text" name="userId" id="usernamereg-userId" value="">\n'
                "</form></body></html>\n") % ("{}", acrumb, sidx)
        headers = [("Set-Cookie", "AS=%s; Path=/; Domain=login.yahoo.test; Secure; HttpOnly; "
                                  "SameSite=None" % cookie)]
        return self.reply(200, page, ctype="text/html; charset=utf-8", headers=headers,
                          outcome="page")

    def yahoo_validate(self, body):
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        user = (form.get("userId") or [None])[0]
        sess = self.st.session(self.cookies().get("AS", ""))
        if query.get("validateField") != ["userId"]:
            return self.reply(400, '{"errors":[{"name":"validateField","error":"INVALID"}]}',
                              user=user, outcome="bad_request")
        if sess is None:
            return self.reply(400, '{"error":"no session cookie"}', user=user, outcome="no_session")
        if (form.get("acrumb") or [None])[0] != sess[0] or \
                (form.get("sessionIndex") or [None])[0] != sess[1]:
            return self.reply(400, '{"error":"bad crumb"}', user=user, outcome="bad_crumb")
        if not user:
            return self.reply(200, '{"errors":[{"name":"userId","error":"FIELD_EMPTY"}]}',
                              user=user, outcome="empty")
        name = user.strip().lower()
        if name.endswith("@yahoo.com"):
            name = name[: -len("@yahoo.com")]
        if name == "throttle":
            return self.reply(429, "<html><body>Too Many Requests</body></html>",
                              ctype="text/html", user=user, outcome="throttled")
        if name == "malformed":
            return self.reply(200, "<html><body>Oops</body></html>", ctype="text/html",
                              user=user, outcome="malformed")
        if name in YAHOO_TAKEN:
            errs = [{"name": "userId", "error": YAHOO_TAKEN[name]}]
            return self.reply(200, json.dumps({"errors": errs}), user=user, outcome="taken")
        return self.reply(200, '{"errors":[]}', user=user, outcome="free")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, addr, state, ctx):
        super().__init__(addr, Handler)
        self.state = state
        self.ctx = ctx
        self.slots = threading.BoundedSemaphore(MAX_CLIENTS)

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def get_request(self):
        sock, addr = super().get_request()
        sock.settimeout(TIMEOUT)
        # No handshake here (this is the accepting thread): finish_request does it in the
        # request's own thread, so a client that never finishes it holds that thread only.
        return self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def finish_request(self, request, client_address):
        request.do_handshake()
        super().finish_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address):  # handshake failures etc.: not fatal
        pass


def serve(a):
    host, _, port = a.listen.rpartition(":")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(a.cert, a.key)
    srv = Server((host, int(port)), State(a.service, a.log), ctx)
    if a.pidfile:
        with open(a.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    print("altcheck %s listening on %s" % (a.service, a.listen), file=sys.stderr, flush=True)
    srv.serve_forever()
    srv.server_close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--service", choices=("microsoft", "yahoo"), required=True)
    s.add_argument("--listen", required=True, help="ADDR:PORT")
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--log")
    s.add_argument("--pidfile")
    a = p.parse_args()
    serve(a)


if __name__ == "__main__":
    main()

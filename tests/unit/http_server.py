#!/usr/bin/env python3
"""http_server.py — the HTTPS (and plain HTTP) server tests/unit/test_http.c talks to.

Usage: http_server.py CERT KEY. Listens on 127.0.0.1 only, on ports the kernel picks, and
prints one line "HTTPS HTTP SILENT": the TLS server, a plain HTTP server with the same
handler, and a listener that accepts connections and never says anything (for timeouts).
Runs until killed. Paths (every one counts connections server-side, so reuse can be told):
  /hello             200 "hello"
  /echo              200: "METHOD BODY"
  /headers?name      200: the value of request header name (or "-")
  /redirect/N        302 to /redirect/N-1; /redirect/0 is 200 "landed"
  /see-other         303 to /hello (a POST becomes a GET)
  /to-http           302 to the plain server's /hello
  /big?N             200 with N bytes
  /bigheader?N       200 with one header of N bytes
  /setcookie         200, Set-Cookie: a=1; Path=/ and b=2; Path=/other; Max-Age=3600
  /expire            200, Set-Cookie: a=; Max-Age=0
  /conns             200: connections accepted so far
  /hang              never answers
"""
import http.server
import socket
import ssl
import sys
import threading
import time

CONNS = 0
LOCK = threading.Lock()
PORTS = {}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        global CONNS
        with LOCK:
            CONNS += 1
        super().setup()

    def log_message(self, *args):
        pass

    def send(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        path, _, query = self.path.partition("?")
        if path == "/hello":
            self.send(200, b"hello", [("Content-Type", "text/plain")])
        elif path == "/echo":
            self.send(200, self.command.encode() + b" " + body)
        elif path == "/headers":
            self.send(200, (self.headers.get(query) or "-").encode())
        elif path.startswith("/redirect/"):
            k = int(path.rsplit("/", 1)[1])
            if k == 0:
                self.send(200, b"landed")
            else:
                self.send(302, b"", [("Location", "/redirect/%d" % (k - 1))])
        elif path == "/see-other":
            self.send(303, b"", [("Location", "/echo")])
        elif path == "/to-http":
            self.send(302, b"", [("Location", "http://127.0.0.1:%d/hello" % PORTS["http"])])
        elif path == "/big":
            self.send(200, b"x" * int(query))
        elif path == "/bigheader":
            self.send(200, b"ok", [("X-Big", "y" * int(query))])
        elif path == "/setcookie":
            self.send(200, b"ok", [("Set-Cookie", "a=1; Path=/"),
                                   ("Set-Cookie", "b=2; Path=/other; Max-Age=3600")])
        elif path == "/expire":
            self.send(200, b"ok", [("Set-Cookie", "a=; Max-Age=0")])
        elif path == "/conns":
            self.send(200, str(CONNS).encode())
        elif path == "/hang":
            time.sleep(60)
        else:
            self.send(404, b"not found")

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = handle_any


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the client hangs up on purpose (bounds, cancel): nothing to report


def main():
    cert, key = sys.argv[1], sys.argv[2]
    tls = Server(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
    plain = Server(("127.0.0.1", 0), Handler)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    PORTS["http"] = plain.server_address[1]
    for s in (tls, plain):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print(tls.server_address[1], plain.server_address[1], silent.getsockname()[1], flush=True)
    held = []
    while True:  # the silent one: accept, keep, never answer
        c, _ = silent.accept()
        held.append(c)


if __name__ == "__main__":
    main()

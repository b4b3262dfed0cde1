#!/usr/bin/env python3
"""http_server.py — the HTTPS (and plain HTTP) server tests/unit/test_http.c talks to.

Usage: http_server.py CERT KEY. Listens on 127.0.0.1 only, on ports the kernel picks, and
prints one line "HTTPS HTTP SILENT DNS": the TLS server, a plain HTTP server with the same
handler, a listener that accepts connections and never says anything (for timeouts), and a
UDP DNS responder answering every A query with 127.0.0.1, except names starting "nx"
(NXDOMAIN); other types get no records.
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
  /close             200 "bye" with Connection: close, and the server closes
  /drop              closes the connection without a word
  /http10            an HTTP/1.0 answer without Content-Length: the body ends at the close
  /truncated         Content-Length: 100, 10 bytes, and the close
  /sni               200: the server name the last TLS client sent (or "-")
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
SNI = {}


def dns_answer(q):
    """The reply to DNS query q (bytes), or None for garbage."""
    if len(q) < 17:
        return None
    i, labels = 12, []
    while q[i] != 0:
        labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace"))
        i += 1 + q[i]
    qtype = int.from_bytes(q[i + 1:i + 3], "big")
    question = q[12:i + 5]
    name = ".".join(labels).lower()
    nx = name.startswith("nx")
    answer = b""
    if not nx and qtype == 1:
        answer = b"\xc0\x0c" + (1).to_bytes(2, "big") + (1).to_bytes(2, "big") + \
            (60).to_bytes(4, "big") + (4).to_bytes(2, "big") + bytes([127, 0, 0, 1])
    flags = 0x8180 | (3 if nx else 0)
    head = q[:2] + flags.to_bytes(2, "big") + (1).to_bytes(2, "big") + \
        (1 if answer else 0).to_bytes(2, "big") + b"\x00\x00\x00\x00"
    return head + question + answer


def serve_dns(sock):
    while True:
        q, peer = sock.recvfrom(512)
        r = dns_answer(q)
        if r:
            sock.sendto(r, peer)


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
        elif path == "/sni":
            self.send(200, (SNI.get("last") or "-").encode())
        elif path == "/close":
            self.close_connection = True
            self.send(200, b"bye", [("Connection", "close")])
        elif path == "/drop":
            self.close_connection = True
        elif path == "/truncated":
            self.close_connection = True
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        elif path == "/http10":
            self.close_connection = True
            self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nold " + b"y" * 3000)
        elif path == "/badstatus":
            self.close_connection = True
            self.wfile.write(b"HTTP/1.1 30( Found\r\nContent-Length: 2\r\n\r\nok")
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

    def on_sni(sslobj, name, sslctx):
        SNI["last"] = name

    ctx.sni_callback = on_sni
    tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
    plain = Server(("127.0.0.1", 0), Handler)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(("127.0.0.1", 0))
    threading.Thread(target=serve_dns, args=(dns,), daemon=True).start()
    PORTS["http"] = plain.server_address[1]
    for s in (tls, plain):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print(tls.server_address[1], plain.server_address[1], silent.getsockname()[1],
          dns.getsockname()[1], flush=True)
    held = []
    while True:  # the silent one: accept, keep, never answer
        c, _ = silent.accept()
        held.append(c)


if __name__ == "__main__":
    main()

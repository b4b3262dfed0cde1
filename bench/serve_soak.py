#!/usr/bin/env python3
"""serve_soak.py — `validora serve` under N concurrent clients (default 200) mixing good, slow
and garbage requests for a while (default 60 s), on loopback, with no test world: DNS goes to a
closed port, so every good POST /v1/verify is answered at once (unknown/dns_error).

  bench/serve_soak.py BUILD/validora [--clients 200] [--seconds 60]

Good: POST /v1/verify with the token, JSON, on kept-alive connections. Slow: a request head
sent a byte every 0.5 s (cut by --request-timeout). Garbage: random bytes, a 4 MB body
announced without the token, bad JSON, a foreign Host. Prints the good requests served and
failed, their p50/p99 latency, serve's RSS after a warm-up and at the end, and exits 1 when a
good request was not answered 200 or the RSS grew more than 20 %.
"""
import argparse, http.client, json, os, random, socket, subprocess, sys, tempfile, threading, time


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("validora")
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    token = "soak-%d" % random.randrange(10**9)
    with open(os.path.join(tmp, "token"), "w") as f:
        f.write(token + "\n")
    os.chmod(os.path.join(tmp, "token"), 0o600)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    srv = subprocess.Popen([a.validora, "serve", "--listen", "127.0.0.1:%d" % port,
                            "--token-file", os.path.join(tmp, "token"), "--state-dir",
                            os.path.join(tmp, "state"), "--dns", "127.0.0.1:9", "--dns-timeout",
                            "0.2", "--no-smtp", "--max-connections", "512", "--request-timeout", "5",
                            "--idle-timeout", "3"], stderr=open(os.environ.get("SOAK_STDERR") or os.path.join(tmp, "err"), "w"))
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            break
        except OSError:
            time.sleep(0.1)
    lock = threading.Lock()
    lat, failed, other = [], [], {"slow_cut": 0, "garbage": 0}
    stop = time.time() + a.seconds
    body = json.dumps({"email": "soak@nosuch.invalid"})
    hdrs = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}

    def good(conn):
        t = time.time()
        try:
            conn.request("POST", "/v1/verify", body, hdrs)
            r = conn.getresponse()
            r.read()
            ok = r.status == 200
        except (OSError, http.client.HTTPException) as e:
            ok, r = False, e
        with lock:
            if ok:
                lat.append(time.time() - t)
            else:
                failed.append(str(getattr(r, "status", r)))
        return ok

    def slow():
        try:
            c = socket.create_connection(("127.0.0.1", port))
            for b in b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 9":
                if time.time() > stop:
                    break
                c.sendall(bytes([b]))
                time.sleep(0.5)
            c.close()
        except OSError:
            with lock:
                other["slow_cut"] += 1

    def garbage():
        kind = random.randrange(4)
        try:
            c = socket.create_connection(("127.0.0.1", port))
            c.settimeout(5)
            if kind == 0:
                c.sendall(os.urandom(random.randrange(1, 2048)))
            elif kind == 1:
                c.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Content-Type: application/json\r\nContent-Length: 4000000\r\n\r\n")
            elif kind == 2:
                c.sendall(("POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                           "%s\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{\"em"
                           % token).encode())
            else:
                c.sendall(b"GET /healthz HTTP/1.1\r\nHost: evil.example\r\n\r\n")
            c.recv(4096)
            c.close()
        except OSError:
            pass
        with lock:
            other["garbage"] += 1

    def client(i):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        used = time.time()
        while time.time() < stop:
            p = random.random()
            if p < 0.7:
                if time.time() - used > 2:  # serve closes it at --idle-timeout 3: a new one
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                if not good(conn):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                used = time.time()
            elif p < 0.8:
                slow()
            else:
                garbage()
        conn.close()

    warm = [threading.Thread(target=client, args=(i,)) for i in range(a.clients)]
    for t in warm:
        t.start()
    time.sleep(min(5, a.seconds / 4))
    rss0 = rss_kb(srv.pid)
    for t in warm:
        t.join()
    time.sleep(1)
    rss1 = rss_kb(srv.pid)
    srv.terminate()
    srv.wait()
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else 0
    print("clients %d, %.0f s: good requests served %d, failed %d %s; p50 %.1f ms, p99 %.1f ms; "
          "slow clients cut %d, garbage requests %d; RSS after warm-up %d KiB, at the end %d KiB"
          % (a.clients, a.seconds, len(lat), len(failed), sorted(set(failed))[:5], p(0.5), p(0.99),
             other["slow_cut"], other["garbage"], rss0, rss1))
    sys.exit(1 if failed or rss1 > rss0 * 1.2 else 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# serve_hardening.sh — what `validora serve` does with strangers (docs/serve.md, "Security"),
# on loopback, with no test world: DNS goes to a closed port and no address needs SMTP.
#  - the token is checked on the head: a request without it that announces a 4 MB body is
#    refused at once, before the body (which never comes) is read;
#  - --request-timeout: a client trickling a byte a second is cut at the deadline, although
#    --idle-timeout never fires;
#  - every accepted connection is counted, idle or not, with the token or not; past
#    --max-connections, or past the strangers' share (--reserved-connections kept for clients
#    with the token), a request gets 503; a client with the token still gets a reserved slot;
#  - browsers: /v1/verify wants application/json (415 otherwise); without a token, text/plain
#    jobs are refused (415) and text/csv and JSON taken; a foreign Host (DNS rebinding) is 403,
#    --allow-host NAME takes one; any Origin is 403 unless --allow-origin gives it;
#  - a job is durable before its 202: strace shows input and meta.json synced, meta.json renamed,
#    the job's directory and the jobs' directory synced, then the 202 written.
# Env: VALIDORA.
set -uo pipefail
V=${VALIDORA:?VALIDORA must name the validora binary}
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp
pid=
cleanup() { [ -n "$pid" ] && kill -9 $pid 2>/dev/null; }
unset VALIDORA_CONFIG

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
U="http://127.0.0.1:$port"
printf 'hardening-token-%s\n' "$RANDOM$RANDOM" >"$tmp/token"
chmod 600 "$tmp/token"
TOKEN=$(head -n1 "$tmp/token")
AUTH="Authorization: Bearer $TOKEN"

start() { # start [OPTIONS]: serve in the background, until /healthz answers
    "$V" serve --listen "127.0.0.1:$port" --state-dir "$tmp/state" --dns 127.0.0.1:9 \
        --dns-timeout 0.2 --no-smtp "$@" 2>>"$tmp/err" &
    pid=$!
    for _ in $(seq 100); do
        curl -sf "$U/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
stop() {
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=
}
code() { curl -s -o "$tmp/body" -w '%{http_code}' "$@"; }

# ---- 1. the token on the head, before the body
start --token-file "$tmp/token" --idle-timeout 20 || bad "serve did not start: $(cat "$tmp/err")"
out=$(python3 - "$port" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(8)
t = time.time()
s.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
          b"Content-Length: 4000000\r\n\r\n")
data = b""
try:
    while True:
        d = s.recv(4096)
        if not d: break
        data += d
except socket.timeout:
    pass
print(data.split(b"\r\n")[0].decode(), "%.1f" % (time.time() - t), b"Connection: close" in data)
PY
)
read -r _ st secs closed <<<"${out#HTTP/1.1 }"
[[ $out == "HTTP/1.1 401 "* ]] && python3 -c "import sys; sys.exit(not float('$secs') < 2)" &&
    ok "no token, a 4 MB body announced: 401 at once, the body never read ($secs s)" || bad "head check: $out"
[[ $out == *" True" ]] && ok "the refused connection is closed (its body is not read)" || bad "refusal keeps the connection: $out"
c=$(code -H "Content-Type: application/json" -d '{"email":"a@b"}' "$U/v1/verify")
[ "$c" = 401 ] && grep -q '"error":"unauthorized"' "$tmp/body" && ok "no token, a small body: 401 JSON" || bad "small: $c $(cat "$tmp/body")"
c=$(code -H "$AUTH" -H "Content-Type: application/json" -d '{"email":"a@nosuch.invalid"}' "$U/v1/verify")
[ "$c" = 200 ] && grep -q '"status":"unknown"' "$tmp/body" && ok "with the token: 200, a record" || bad "token: $c $(cat "$tmp/body")"
c=$(code "$U/healthz")
[ "$c" = 200 ] && ok "/healthz without the token: 200" || bad "healthz: $c"
c=$(code -X POST -H 'Content-Type: application/json' -d '{}' "$U/healthz")
[ "$c" = 401 ] && ok "a stranger's /healthz with a body: refused on the head" || bad "healthz body: $c"
stop

# ---- 2. the request deadline: a trickle is cut, an idle timeout alone would not
start --token-file "$tmp/token" --idle-timeout 20 --request-timeout 3 || bad "restart: $(tail -3 "$tmp/err")"
out=$(python3 - "$port" "$TOKEN" <<'PY'
import socket, sys, time
port, token = int(sys.argv[1]), sys.argv[2]
req = ("POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
       "Content-Type: application/json\r\nContent-Length: 30\r\n\r\n" % token).encode()
s = socket.create_connection(("127.0.0.1", port))
t = time.time()
s.sendall(req)
body = b'{"email":"a@nosuch.invalid"}  '
cut = None
for b in body:  # a byte a second: 30 s if let be
    try:
        s.sendall(bytes([b]))
        s.settimeout(1)
        if s.recv(1) == b"":
            cut = time.time() - t
            break
    except socket.timeout:
        continue
    except OSError:
        cut = time.time() - t
        break
print("cut" if cut else "never", "%.1f" % (cut or time.time() - t))
PY
)
read -r what secs <<<"$out"
[ "$what" = cut ] && python3 -c "import sys; sys.exit(not 2.5 <= float('$secs') < 6)" &&
    ok "--request-timeout 3: a byte a second is cut after ${secs} s (--idle-timeout 20 never fires)" || bad "trickle: $out"
c=$(code -H "$AUTH" -H "Content-Type: application/json" -d '{"email":"a@nosuch.invalid"}' "$U/v1/verify")
[ "$c" = 200 ] && ok "a whole request in time is answered" || bad "after trickle: $c"
stop

# ---- 3. every connection counted; the strangers' share; reserved slots for the token
start --token-file "$tmp/token" --max-connections 4 --reserved-connections 2 || bad "restart: $(tail -3 "$tmp/err")"
out=$(python3 - "$port" "$TOKEN" <<'PY'
import http.client, socket, sys, time
port, token = int(sys.argv[1]), sys.argv[2]
def get(c, path="/healthz", auth=False):
    c.request("GET", path, headers={"Authorization": "Bearer " + token} if auth else {})
    r = c.getresponse()
    return r.status, r.read().decode()
idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]  # strangers, silent
time.sleep(0.3)
print("stranger", get(http.client.HTTPConnection("127.0.0.1", port))[0])
a = http.client.HTTPConnection("127.0.0.1", port)
b = http.client.HTTPConnection("127.0.0.1", port)
print("token", get(a, auth=True)[0], get(b, auth=True)[0])
st, body = get(a, "/metrics", auth=True)
print("gauge", [l for l in body.splitlines() if l.startswith("validora_http_connections ")])
print("full", get(http.client.HTTPConnection("127.0.0.1", port), auth=True)[0])
for s in idle: s.close()
time.sleep(0.3)
print("freed", get(http.client.HTTPConnection("127.0.0.1", port))[0])
PY
)
[[ $out == *"stranger 503"* ]] && ok "2 silent strangers hold the strangers' 2 slots: a third stranger gets 503" || bad "stranger share: $out"
[[ $out == *"token 200 200"* ]] && ok "clients with the token get the 2 reserved slots" || bad "reserved: $out"
[[ $out == *"gauge ['validora_http_connections 4']"* ]] && ok "silent connections are counted (the gauge says 4)" || bad "gauge: $out"
[[ $out == *"full 503"* ]] && ok "past --max-connections, even the token gets 503" || bad "full: $out"
[[ $out == *"freed 200"* ]] && ok "closed connections free their slots" || bad "freed: $out"
stop

# ---- 4. browsers: content types, Host, Origin (no token: the default loopback setup)
start || bad "restart without a token: $(tail -3 "$tmp/err")"
c=$(code -d '{"email":"a@nosuch.invalid"}' "$U/v1/verify")
[ "$c" = 415 ] && grep -q '"error":"unsupported_media_type"' "$tmp/body" && ok "/v1/verify form-encoded (curl -d): 415" || bad "verify form: $c"
c=$(code -H 'Content-Type: text/plain' -d '{"email":"a@nosuch.invalid"}' "$U/v1/verify")
[ "$c" = 415 ] && ok "/v1/verify text/plain (a page's no-preflight POST): 415" || bad "verify text: $c"
c=$(code -H 'Content-Type: application/json' -d '{"email":"a@nosuch.invalid"}' "$U/v1/verify")
[ "$c" = 200 ] && ok "/v1/verify application/json: 200" || bad "verify json: $c $(cat "$tmp/body")"
out=$(python3 - "$port" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(8)
t = time.time()
s.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
          b"Content-Length: 4000000\r\n\r\n")
try:
    data = s.recv(4096)
except socket.timeout:
    data = b""
print(data.split(b"\r\n")[0].decode(), "%.1f" % (time.time() - t))
PY
)
[[ $out == "HTTP/1.1 415 "* ]] && ok "a page's text/plain POST of 4 MB: 415 on its head, the body not read" || bad "type on the head: $out"
for t in text/plain application/x-www-form-urlencoded multipart/form-data; do
    c=$(code -H "Content-Type: $t" --data-binary 'a@nosuch.invalid' "$U/v1/jobs")
    [ "$c" = 415 ] && ok "no token: a $t job (a simple type) 415" || bad "job $t: $c $(cat "$tmp/body")"
done
c=$(code -H 'Content-Type: text/csv' --data-binary $'email\na@nosuch.invalid\n' "$U/v1/jobs")
[ "$c" = 202 ] && ok "no token: a text/csv job 202" || bad "job csv: $c $(cat "$tmp/body")"
c=$(code -H 'Content-Type: application/json' -d '["a@nosuch.invalid"]' "$U/v1/jobs")
[ "$c" = 202 ] && ok "no token: a JSON job 202" || bad "job json: $c $(cat "$tmp/body")"
for h in "localhost:$port" "127.0.0.1:$port" "[::1]:$port" localhost; do
    c=$(code -H "Host: $h" "$U/healthz")
    [ "$c" = 200 ] && ok "Host $h on loopback: 200" || bad "host $h: $c"
done
for h in "evil.example:$port" evil.example "localhost:1" "10.0.0.1:$port"; do
    c=$(code -H "Host: $h" -H 'Content-Type: application/json' -d '{"email":"a@nosuch.invalid"}' "$U/v1/verify")
    [ "$c" = 403 ] && grep -q '"error":"forbidden_host"' "$tmp/body" && ok "Host $h (DNS rebinding): 403" || bad "host $h: $c $(cat "$tmp/body")"
done
c=$(code -H "Origin: http://evil.example" -H 'Content-Type: application/json' -d '{"email":"a@nosuch.invalid"}' "$U/v1/verify")
[ "$c" = 403 ] && grep -q '"error":"forbidden_origin"' "$tmp/body" && ok "an Origin not configured: 403" || bad "origin: $c $(cat "$tmp/body")"
c=$(code -H "Origin: null" "$U/healthz")
[ "$c" = 403 ] && ok "Origin: null: 403" || bad "origin null: $c"
stop
start --allow-host verifier.internal,api.example --allow-origin https://app.example || bad "restart: $(tail -3 "$tmp/err")"
c=$(code -H "Host: verifier.internal" "$U/healthz")
[ "$c" = 200 ] && ok "--allow-host NAME: Host NAME 200" || bad "allow-host: $c"
c=$(code -H "Host: api.example:443" "$U/healthz")
[ "$c" = 200 ] && ok "--allow-host NAME (a comma list): NAME:PORT 200" || bad "allow-host list: $c"
c=$(code -H "Origin: https://app.example" -H 'Content-Type: application/json' -d '{"email":"a@nosuch.invalid"}' "$U/v1/verify")
[ "$c" = 200 ] && ok "--allow-origin: that Origin 200" || bad "allow-origin: $c $(cat "$tmp/body")"
c=$(code -H "Origin: https://app.example.evil" "$U/healthz")
[ "$c" = 403 ] && ok "--allow-origin: another Origin still 403" || bad "other origin: $c"
stop

# ---- 5. a job is on disk for good before its 202 (strace, as resume.sh checks verify's rewrite)
if command -v strace >/dev/null; then
    strace -f -y -s 64 -e trace=mkdir,fsync,rename,renameat,renameat2,writev,write,sendmsg,sendto \
        -o "$tmp/job.trace" "$V" serve --listen "127.0.0.1:$port" --state-dir "$tmp/sstate" \
        --dns 127.0.0.1:9 --dns-timeout 0.2 --no-smtp 2>>"$tmp/err" &
    spid=$!
    for _ in $(seq 100); do curl -sf "$U/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    id=$(curl -s -H 'Content-Type: application/json' -d '["x@nosuch.invalid"]' "$U/v1/jobs" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    vpid=$(pgrep -P "$spid" | head -1)
    [ -n "$vpid" ] && kill -TERM "$vpid"
    wait "$spid" 2>/dev/null
    python3 - "$tmp/job.trace" "$tmp/sstate/serve/jobs" "$id" <<'PY' && ok "POST /v1/jobs: input and meta.json fsync'd, meta.json renamed, the job's and the jobs' directories fsync'd, then the 202" ||
import re, sys
trace, jobs, jid = sys.argv[1], re.escape(sys.argv[2]), re.escape(sys.argv[3])
job = jobs + "/" + jid
pats = [("sync-input", r"fsync\(\d+<%s/input>\)\s*= 0" % job),
        ("sync-meta", r"fsync\(\d+<%s/meta\.json\.tmp>\)\s*= 0" % job),
        ("rename", r'rename(at2?)?\(.*"%s/meta\.json\.tmp", .*"%s/meta\.json"' % (job, job)),
        ("sync-job-dir", r"fsync\(\d+<%s>\)\s*= 0" % job),
        ("sync-jobs-dir", r"fsync\(\d+<%s>\)\s*= 0" % jobs),
        ("202", r"(writev|write|sendmsg|sendto)\(\d+<(socket|TCP).*HTTP/1\.1 202")]
steps = []
for line in open(trace):
    for name, p in pats:
        if re.search(p, line) and name not in steps:
            steps.append(name)
            break
want = [n for n, _ in pats]
sys.exit(0 if steps == want else "steps: %s" % steps)
PY
        bad "the job's syncs before the 202: $(grep -E 'fsync|rename|202' "$tmp/job.trace" | head -8)"
else
    echo "SKIP: no strace: the job's sync order is not checked"
fi

checks_done serve_hardening

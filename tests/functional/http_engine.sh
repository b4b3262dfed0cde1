#!/usr/bin/env bash
# http_engine.sh — http.request through the whole engine, as `validora verify` runs it: the
# HTTPS context the engine makes (verified; --tls-ca applies), names resolved with --dns, the
# alternative-check URL options reaching config, the record's method. No test world: the
# server is tests/unit/http_server.py on 127.0.0.1 (its DNS responder answers every name with
# 127.0.0.1), with a certificate made here for secure.test; the rule is written here too.
# Env: VALIDORA (the binary), VALIDORA_SOURCE_DIR.
set -uo pipefail
: "${VALIDORA:?}" "${VALIDORA_SOURCE_DIR:?}"
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=secure.test -addext subjectAltName=DNS:secure.test \
  -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null || { bad "openssl req"; exit 1; }
python3 "$VALIDORA_SOURCE_DIR/tests/unit/http_server.py" "$tmp/cert.pem" "$tmp/key.pem" \
  >"$tmp/ports" &
pid=$!
for _ in $(seq 50); do [ -s "$tmp/ports" ] && break; sleep 0.1; done
read -r https _ _ dnsport <"$tmp/ports" || { bad "server did not start"; exit 1; }

mkdir "$tmp/rules"
cat >"$tmp/rules/smoke.lua" <<'LUA'
return { name = "smoke", match = { domain = { "smoke.test" } }, probe = function(job)
  local r, err, d = http.request { method = "POST", url = config.microsoft_credential_url,
                                   body = job.local_part }
  if not r then return job:unknown("alt_error", nil, err .. ": " .. tostring(d)) end
  return job:deliverable("accepted", nil, r.body)
end }
LUA

# verify [OPTION...]: the JSON record of a@smoke.test into $rec
verify() {
  rec=$("$VALIDORA" verify --allow-private-destinations --rules "$VALIDORA_SOURCE_DIR/rules" --rules "$tmp/rules" \
    --dns "127.0.0.1:$dnsport" --state-dir "$tmp/state" --no-warmup --format json \
    --microsoft-credential-url "https://secure.test:$https/echo" "$@" a@smoke.test 2>"$tmp/err")
}

verify --tls-ca "$tmp/cert.pem"
case $rec in
*'"status":"deliverable"'*'"detail":"POST a"'*'"method":"http"'*) ok "with --tls-ca: verified, answered" ;;
*) bad "with --tls-ca: $rec $(cat "$tmp/err")" ;;
esac
verify
case $rec in
*'"reason":"alt_error"'*'tls_error: certificate of secure.test not verified'*) ok "without the CA: tls_error" ;;
*) bad "without the CA: $rec" ;;
esac
verify --tls-ca "$tmp/cert.pem" --microsoft-credential-url "https://nx.test:$https/echo"
case $rec in
*'connect_failed: cannot resolve nx.test: nxdomain'*) ok "a name that does not resolve" ;;
*) bad "nxdomain: $rec" ;;
esac
verify --tls-ca "$tmp/cert.pem" --microsoft-credential-url "https://secure.test:$https/redirect/2" \
  --http-max-redirects 1
case $rec in
*'redirect_limit'*) ok "--http-max-redirects applies" ;;
*) bad "--http-max-redirects: $rec" ;;
esac
verify --tls-ca "$tmp/cert.pem" --microsoft-credential-url "https://secure.test:$https/big?5000" \
  --http-max-body 2048
case $rec in
*'too_large'*) ok "--http-max-body applies" ;;
*) bad "--http-max-body: $rec" ;;
esac
checks_done http_engine

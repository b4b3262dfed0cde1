-- A 200 whose body is not JSON: unknown, never a verdict.
return {
  name = "http: malformed answer",
  address = "alice@httpcheck.test",
  dns = {
    ["httpcheck.test"] = { mx = { { 10, "mx.httpcheck.test" } } },
    ["mx.httpcheck.test"] = { a = { "192.0.2.10" } },
  },
  sessions = {},
  config = { microsoft_credential_url = "$HTTP/common/GetCredentialType" },
  http = {
    { method = "POST", path = "/common/GetCredentialType",
      headers = { ["Content-Type"] = "text/html" }, body = "<html>Sorry</html>" },
  },
  expect = { status = "unknown", reason = "alt_error", http_requests = 1 },
}

-- An alternative check over HTTP: one JSON POST, the account exists, no SMTP at all.
return {
  name = "http: exists, no SMTP connection",
  address = "alice@httpcheck.test",
  dns = {
    ["httpcheck.test"] = { mx = { { 10, "mx.httpcheck.test" } } },
    ["mx.httpcheck.test"] = { a = { "192.0.2.10" } },
  },
  sessions = {},
  config = { microsoft_credential_url = "$HTTP/common/GetCredentialType?mkt=en-US" },
  http = {
    { method = "POST", path = "/common/GetCredentialType?mkt=en-US",
      body_matches = '^{"Username":"alice@httpcheck%.test"}$',
      status = 200, headers = { ["Content-Type"] = "application/json; charset=utf-8" },
      body = '{"Username":"alice@httpcheck.test","Display":"alice@httpcheck.test",'
        .. '"IfExistsResult":0,"IsUnmanaged":false,"ThrottleStatus":0}' },
  },
  expect = { status = "deliverable", reason = "accepted", http_requests = 1,
             fields = { provider = "httpcheck", method = "http" } },
}

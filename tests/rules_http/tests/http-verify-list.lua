-- Two addresses, each one request, served in order; a throttled answer is never a verdict.
return {
  name = "http: not found, then throttled",
  dns = {
    ["httpcheck.test"] = { mx = { { 10, "mx.httpcheck.test" } } },
    ["mx.httpcheck.test"] = { a = { "192.0.2.10" } },
  },
  sessions = {},
  config = { microsoft_credential_url = "$HTTP/common/GetCredentialType" },
  http = {
    { method = "POST", path = "/common/GetCredentialType", body_matches = "nobody@",
      body = '{"IfExistsResult":1,"ThrottleStatus":0}' },
    { method = "POST", path = "/common/GetCredentialType", body_matches = "bob@",
      body = '{"IfExistsResult":0,"ThrottleStatus":1}' },
  },
  verify = {
    { address = "nobody@httpcheck.test",
      expect = { status = "undeliverable", reason = "mailbox_not_found", http_requests = 1,
                 fields = { method = "http" } } },
    { address = "bob@httpcheck.test",
      expect = { status = "unknown", reason = "alt_throttled", http_requests = 1 } },
  },
}

-- Microsoft 365 with its alternative check (on by default): GetCredentialType, no SMTP
-- connection (sessions = {}). alice's 0 is trusted only after a made-up address of the
-- domain got 1 (asked once per domain and run: bob's 0 needs no second question); nobody's 1
-- is no such account.
return {
  name = "microsoft365: GetCredentialType 0 (checked against a made-up address) and 1, no SMTP",
  dns = {
    ["contoso.test"] = { mx = { { 0, "contoso-test.mail.protection.outlook.com" } } },
    ["contoso-test.mail.protection.outlook.com"] = { a = { "52.101.68.1" } },
  },
  config = { microsoft_credential_url = "$HTTP/common/GetCredentialType?mkt=en-US" },
  options = { throttle = false }, -- no limiter wait: these cases are about the answers
  sessions = {},
  http = {
    { method = "POST", path = "/common/GetCredentialType?mkt=en-US",
      headers_match = { ["Content-Type"] = "^application/json" }, body_matches = '"Username":"alice@contoso%.test"',
      status = 200, headers = { ["Content-Type"] = "application/json; charset=utf-8" },
      body = '{"Username":"alice@contoso.test","Display":"alice@contoso.test","IfExistsResult":0,"IsUnmanaged":false,'
        .. '"ThrottleStatus":0}' },
    { method = "POST", path = "/common/GetCredentialType?mkt=en-US",
      headers_match = { ["Content-Type"] = "^application/json" }, body_matches = '"Username":"[a-z][a-z0-9]+@contoso%.test"',
      status = 200, headers = { ["Content-Type"] = "application/json; charset=utf-8" },
      body = '{"Username":"x@contoso.test","Display":"x@contoso.test","IfExistsResult":1,"IsUnmanaged":false,'
        .. '"ThrottleStatus":0}' },
    { method = "POST", path = "/common/GetCredentialType?mkt=en-US",
      headers_match = { ["Content-Type"] = "^application/json" }, body_matches = '"Username":"bob@contoso%.test"',
      status = 200, headers = { ["Content-Type"] = "application/json; charset=utf-8" },
      body = '{"Username":"bob@contoso.test","Display":"bob@contoso.test","IfExistsResult":0,"IsUnmanaged":false,'
        .. '"ThrottleStatus":0}' },
    { method = "POST", path = "/common/GetCredentialType?mkt=en-US",
      headers_match = { ["Content-Type"] = "^application/json" }, body_matches = '"Username":"nobody@contoso%.test"',
      status = 200, headers = { ["Content-Type"] = "application/json; charset=utf-8" },
      body = '{"Username":"nobody@contoso.test","Display":"nobody@contoso.test","IfExistsResult":1,"IsUnmanaged":false,'
        .. '"ThrottleStatus":0}' },
  },
  verify = {
    { address = "alice@contoso.test",
      expect = { status = "deliverable", reason = "accepted", http_requests = 2,
                 fields = { provider = "microsoft365", method = "http", attempts = 0 }, absent = { "smtp", "catch_all" } } },
    { address = "bob@contoso.test",
      expect = { status = "deliverable", reason = "accepted", http_requests = 1, fields = { method = "http" } } },
    { address = "nobody@contoso.test",
      expect = { status = "undeliverable", reason = "mailbox_not_found", http_requests = 1,
                 fields = { provider = "microsoft365", method = "http" } } },
  },
}

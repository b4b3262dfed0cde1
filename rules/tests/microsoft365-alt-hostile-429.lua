-- Hostile: ThrottleStatus set means the answer cannot be trusted (Microsoft is reported to
-- answer falsely when it throttles): alt_throttled, even with IfExistsResult 0. An HTTP 429
-- is alt_throttled too. Neither falls back to SMTP (sessions = {}).
return {
  name = "microsoft365: ThrottleStatus and HTTP 429 are alt_throttled, no SMTP",
  dns = {
    ["contoso.test"] = { mx = { { 0, "contoso-test.mail.protection.outlook.com" } } },
    ["contoso-test.mail.protection.outlook.com"] = { a = { "52.101.68.1" } },
  },
  config = { microsoft_credential_url = "$HTTP/common/GetCredentialType?mkt=en-US" },
  sessions = {},
  http = {
    { method = "POST", path = "/common/GetCredentialType?mkt=en-US",
      headers_match = { ["Content-Type"] = "^application/json" }, body_matches = '"Username":"throttle@contoso%.test"',
      status = 200, headers = { ["Content-Type"] = "application/json; charset=utf-8" },
      body = '{"Username":"throttle@contoso.test","Display":"throttle@contoso.test","IfExistsResult":0,"IsUnmanaged":false,'
        .. '"ThrottleStatus":1}' },
    { method = "POST", path = "/common/GetCredentialType?mkt=en-US",
      headers_match = { ["Content-Type"] = "^application/json" }, body_matches = '"Username":"alice@contoso%.test"',
      status = 429, headers = { ["Content-Type"] = "application/json; charset=utf-8" },
      body = '{"error":"AADSTS90033: too many requests"}' },
  },
  verify = {
    { address = "throttle@contoso.test", expect = { status = "unknown", reason = "alt_throttled", http_requests = 1,
                                                      fields = { method = "http" } } },
    { address = "alice@contoso.test", expect = { status = "unknown", reason = "alt_throttled", http_requests = 1 } },
  },
}

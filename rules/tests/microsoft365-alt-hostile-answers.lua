-- Hostile answers, none a verdict: another identity provider (5) and a domain hint (6) are
-- ambiguous.
return {
  name = "microsoft365: IfExistsResult 5 and 6 are alt_ambiguous",
  dns = {
    ["othertenant.test"] = { mx = { { 0, "othertenant-test.mail.protection.outlook.com" } } },
    ["othertenant-test.mail.protection.outlook.com"] = { a = { "52.101.68.1" } },
  },
  config = { microsoft_credential_url = "$HTTP/common/GetCredentialType?mkt=en-US" },
  options = { throttle = false }, -- no limiter wait: these cases are about the answers
  sessions = {},
  http = {
    { method = "POST", path = "/common/GetCredentialType?mkt=en-US",
      headers_match = { ["Content-Type"] = "^application/json" }, body_matches = '"Username":"a@othertenant%.test"',
      status = 200, headers = { ["Content-Type"] = "application/json; charset=utf-8" },
      body = '{"Username":"a@othertenant.test","Display":"a@othertenant.test","IfExistsResult":5,"IsUnmanaged":false,'
        .. '"ThrottleStatus":0}' },
    { method = "POST", path = "/common/GetCredentialType?mkt=en-US",
      headers_match = { ["Content-Type"] = "^application/json" }, body_matches = '"Username":"b@othertenant%.test"',
      status = 200, headers = { ["Content-Type"] = "application/json; charset=utf-8" },
      body = '{"Username":"b@othertenant.test","Display":"b@othertenant.test","IfExistsResult":6,"IsUnmanaged":false,'
        .. '"ThrottleStatus":0}' },
  },
  verify = {
    { address = "a@othertenant.test", expect = { status = "unknown", reason = "alt_ambiguous", http_requests = 1 } },
    { address = "b@othertenant.test", expect = { status = "unknown", reason = "alt_ambiguous", http_requests = 1 } },
  },
}

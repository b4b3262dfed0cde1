-- Hostile: an IfExistsResult we do not know (7) and an HTTP 500: alt_error, never a verdict.
return {
  name = "microsoft365: IfExistsResult 7 and HTTP 500 are alt_error",
  dns = {
    ["othertenant.test"] = { mx = { { 0, "othertenant-test.mail.protection.outlook.com" } } },
    ["othertenant-test.mail.protection.outlook.com"] = { a = { "52.101.68.1" } },
  },
  config = { microsoft_credential_url = "$HTTP/common/GetCredentialType?mkt=en-US" },
  options = { throttle = false }, -- no limiter wait: these cases are about the answers
  sessions = {},
  http = {
    { method = "POST", path = "/common/GetCredentialType?mkt=en-US",
      headers_match = { ["Content-Type"] = "^application/json" }, body_matches = '"Username":"e@othertenant%.test"',
      status = 200, headers = { ["Content-Type"] = "application/json; charset=utf-8" },
      body = '{"Username":"e@othertenant.test","Display":"e@othertenant.test","IfExistsResult":7,"IsUnmanaged":false,'
        .. '"ThrottleStatus":0}' },
    { method = "POST", path = "/common/GetCredentialType?mkt=en-US",
      headers_match = { ["Content-Type"] = "^application/json" }, body_matches = '"Username":"f@othertenant%.test"',
      status = 500, headers = { ["Content-Type"] = "application/json; charset=utf-8" },
      body = '{"error":"internal"}' },
  },
  verify = {
    { address = "e@othertenant.test", expect = { status = "unknown", reason = "alt_error", http_requests = 1 } },
    { address = "f@othertenant.test", expect = { status = "unknown", reason = "alt_error", http_requests = 1 } },
  },
}

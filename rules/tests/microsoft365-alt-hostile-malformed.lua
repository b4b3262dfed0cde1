-- Hostile: a 200 that is not JSON, and JSON without IfExistsResult: alt_error, never a
-- verdict.
return {
  name = "microsoft365: not JSON, no IfExistsResult are alt_error",
  dns = {
    ["othertenant.test"] = { mx = { { 0, "othertenant-test.mail.protection.outlook.com" } } },
    ["othertenant-test.mail.protection.outlook.com"] = { a = { "52.101.68.1" } },
  },
  config = { microsoft_credential_url = "$HTTP/common/GetCredentialType?mkt=en-US" },
  options = { throttle = false }, -- no limiter wait: these cases are about the answers
  sessions = {},
  http = {
    { method = "POST", path = "/common/GetCredentialType?mkt=en-US",
      headers_match = { ["Content-Type"] = "^application/json" }, body_matches = '"Username":"c@othertenant%.test"',
      status = 200, headers = { ["Content-Type"] = "text/html" },
      body = '<html><body>Sign in</body></html>' },
    { method = "POST", path = "/common/GetCredentialType?mkt=en-US",
      headers_match = { ["Content-Type"] = "^application/json" }, body_matches = '"Username":"d@othertenant%.test"',
      status = 200, headers = { ["Content-Type"] = "application/json; charset=utf-8" },
      body = '{"Username":"d@othertenant.test","ThrottleStatus":0}' },
  },
  verify = {
    { address = "c@othertenant.test", expect = { status = "unknown", reason = "alt_error", http_requests = 1 } },
    { address = "d@othertenant.test", expect = { status = "unknown", reason = "alt_error", http_requests = 1 } },
  },
}

-- Hostile: ThrottleStatus set on the answer about the made-up address: alice's 0 cannot be
-- checked, so alt_throttled. Not kept: the next address asks the made-up question again.
return {
  name = "microsoft365: a throttled answer to the made-up address is alt_throttled, not kept",
  dns = {
    ["contoso.test"] = { mx = { { 0, "contoso-test.mail.protection.outlook.com" } } },
    ["contoso-test.mail.protection.outlook.com"] = { a = { "52.101.68.1" } },
  },
  config = { microsoft_credential_url = "$HTTP/common/GetCredentialType?mkt=en-US" },
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
      body = '{"Username":"r@contoso.test","Display":"r@contoso.test","IfExistsResult":1,"IsUnmanaged":false,'
        .. '"ThrottleStatus":2}' },
    { method = "POST", path = "/common/GetCredentialType?mkt=en-US",
      headers_match = { ["Content-Type"] = "^application/json" }, body_matches = '"Username":"bob@contoso%.test"',
      status = 200, headers = { ["Content-Type"] = "application/json; charset=utf-8" },
      body = '{"Username":"bob@contoso.test","Display":"bob@contoso.test","IfExistsResult":0,"IsUnmanaged":false,'
        .. '"ThrottleStatus":0}' },
    { method = "POST", path = "/common/GetCredentialType?mkt=en-US",
      headers_match = { ["Content-Type"] = "^application/json" }, body_matches = '"Username":"[a-z][a-z0-9]+@contoso%.test"',
      status = 200, headers = { ["Content-Type"] = "application/json; charset=utf-8" },
      body = '{"Username":"r@contoso.test","Display":"r@contoso.test","IfExistsResult":1,"IsUnmanaged":false,'
        .. '"ThrottleStatus":0}' },
  },
  verify = {
    { address = "alice@contoso.test", expect = { status = "unknown", reason = "alt_throttled", http_requests = 2 } },
    { address = "bob@contoso.test", expect = { status = "deliverable", reason = "accepted", http_requests = 2 } },
  },
}

-- A federated tenant answers 0 for everyone: the made-up address gets 0 too, so the 0 cannot
-- tell (alt_ambiguous, and so for the next address of the domain, with no second question).
-- A 0 that says DomainType 4 (federated) is ambiguous without asking.
return {
  name = "microsoft365: federated tenants are alt_ambiguous, never deliverable",
  dns = {
    ["federated.test"] = { mx = { { 0, "federated-test.mail.protection.outlook.com" } } },
    ["adfs.test"] = { mx = { { 0, "adfs-test.mail.protection.outlook.com" } } },
    ["federated-test.mail.protection.outlook.com"] = { a = { "52.101.68.1" } },
    ["adfs-test.mail.protection.outlook.com"] = { a = { "52.101.68.2" } },
  },
  config = { microsoft_credential_url = "$HTTP/common/GetCredentialType?mkt=en-US" },
  options = { throttle = false }, -- no limiter wait: these cases are about the answers
  sessions = {},
  http = {
    { method = "POST", path = "/common/GetCredentialType?mkt=en-US",
      headers_match = { ["Content-Type"] = "^application/json" }, body_matches = '"Username":"x@federated%.test"',
      status = 200, headers = { ["Content-Type"] = "application/json; charset=utf-8" },
      body = '{"Username":"x@federated.test","Display":"x@federated.test","IfExistsResult":0,"IsUnmanaged":false,'
        .. '"ThrottleStatus":0}' },
    { method = "POST", path = "/common/GetCredentialType?mkt=en-US",
      headers_match = { ["Content-Type"] = "^application/json" }, body_matches = '"Username":"[a-z][a-z0-9]+@federated%.test"',
      status = 200, headers = { ["Content-Type"] = "application/json; charset=utf-8" },
      body = '{"Username":"r@federated.test","Display":"r@federated.test","IfExistsResult":0,"IsUnmanaged":false,'
        .. '"ThrottleStatus":0}' },
    { method = "POST", path = "/common/GetCredentialType?mkt=en-US",
      headers_match = { ["Content-Type"] = "^application/json" }, body_matches = '"Username":"y@federated%.test"',
      status = 200, headers = { ["Content-Type"] = "application/json; charset=utf-8" },
      body = '{"Username":"y@federated.test","Display":"y@federated.test","IfExistsResult":0,"IsUnmanaged":false,'
        .. '"ThrottleStatus":0}' },
    { method = "POST", path = "/common/GetCredentialType?mkt=en-US",
      headers_match = { ["Content-Type"] = "^application/json" }, body_matches = '"Username":"alice@adfs%.test"',
      status = 200, headers = { ["Content-Type"] = "application/json; charset=utf-8" },
      body = '{"Username":"alice@adfs.test","Display":"alice@adfs.test","IfExistsResult":0,"IsUnmanaged":false,'
        .. '"ThrottleStatus":0,'
        .. '"EstsProperties":{"DomainType":4,"UserTenantBranding":null}}' },
  },
  verify = {
    { address = "x@federated.test", expect = { status = "unknown", reason = "alt_ambiguous", http_requests = 2,
                                                 fields = { method = "http" } } },
    { address = "y@federated.test", expect = { status = "unknown", reason = "alt_ambiguous", http_requests = 1 } },
    { address = "alice@adfs.test", expect = { status = "unknown", reason = "alt_ambiguous", http_requests = 1 } },
  },
}

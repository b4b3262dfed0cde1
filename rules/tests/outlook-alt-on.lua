-- Outlook.com with its Microsoft check switched on (alt_checks names outlook; off by
-- default): GetCredentialType instead of SMTP, checked against a made-up address first.
return {
  name = "outlook: with the check on, GetCredentialType, no SMTP",
  dns = {
    ["outlook.com"] = { mx = { { 0, "outlook-com.olc.protection.outlook.com" } } },
    ["outlook-com.olc.protection.outlook.com"] = { a = { "52.101.68.1" } },
  },
  config = { microsoft_credential_url = "$HTTP/common/GetCredentialType?mkt=en-US", alt_checks = "outlook,yahoo" },
  options = { throttle = false }, -- no limiter wait: these cases are about the answers
  sessions = {},
  http = {
    { method = "POST", path = "/common/GetCredentialType?mkt=en-US",
      headers_match = { ["Content-Type"] = "^application/json" }, body_matches = '"Username":"alice@outlook%.com"',
      status = 200, headers = { ["Content-Type"] = "application/json; charset=utf-8" },
      body = '{"Username":"alice@outlook.com","Display":"alice@outlook.com","IfExistsResult":0,"IsUnmanaged":false,'
        .. '"ThrottleStatus":0}' },
    { method = "POST", path = "/common/GetCredentialType?mkt=en-US",
      headers_match = { ["Content-Type"] = "^application/json" }, body_matches = '"Username":"[a-z][a-z0-9]+@outlook%.com"',
      status = 200, headers = { ["Content-Type"] = "application/json; charset=utf-8" },
      body = '{"Username":"r@outlook.com","Display":"r@outlook.com","IfExistsResult":1,"IsUnmanaged":false,'
        .. '"ThrottleStatus":0}' },
    { method = "POST", path = "/common/GetCredentialType?mkt=en-US",
      headers_match = { ["Content-Type"] = "^application/json" }, body_matches = '"Username":"nobody@outlook%.com"',
      status = 200, headers = { ["Content-Type"] = "application/json; charset=utf-8" },
      body = '{"Username":"nobody@outlook.com","Display":"nobody@outlook.com","IfExistsResult":1,"IsUnmanaged":false,'
        .. '"ThrottleStatus":0}' },
  },
  verify = {
    { address = "alice@outlook.com", expect = { status = "deliverable", reason = "accepted", http_requests = 2,
                                                  fields = { provider = "outlook", method = "http" } } },
    { address = "nobody@outlook.com", expect = { status = "undeliverable", reason = "mailbox_not_found", http_requests = 1 } },
  },
}

-- A cookie from the first response goes back with the second request of the same probe.
return {
  name = "http: cookie kept for the next request",
  address = "alice@twostep.test",
  dns = {
    ["twostep.test"] = { mx = { { 10, "mx.twostep.test" } } },
    ["mx.twostep.test"] = { a = { "192.0.2.12" } },
  },
  sessions = {},
  config = { yahoo_signup_url = "$HTTP/account/create",
             yahoo_validate_url = "$HTTP/account/module/create?validateField=userId" },
  http = {
    { method = "GET", path = "/account/create",
      headers = { ["Set-Cookie"] = "AS=v=1&s=abc; Path=/; HttpOnly" },
      body = '<input type="hidden" value="crumb123" name="acrumb">'
        .. '<input type="hidden" name="acrumb" value="crumb123">' },
    { method = "POST", path = "/account/module/create?validateField=userId",
      headers_match = { Cookie = "^AS=v=1&s=abc$" }, body_matches = "^acrumb=crumb123&userId=alice$",
      body = '{"errors":[{"name":"userId","error":"IDENTIFIER_EXISTS"}]}' },
  },
  expect = { status = "deliverable", reason = "accepted", http_requests = 2,
             fields = { method = "http", provider = "twostep" } },
}

-- A redirect is followed (two requests for one call); a 429 is throttled.
return {
  name = "http: redirect, then 429",
  address = "alice@httpcheck.test",
  dns = {
    ["httpcheck.test"] = { mx = { { 10, "mx.httpcheck.test" } } },
    ["mx.httpcheck.test"] = { a = { "192.0.2.10" } },
  },
  sessions = {},
  config = { microsoft_credential_url = "$HTTP/old" },
  http = {
    { method = "POST", path = "/old", status = 307, headers = { Location = "/new" } },
    { method = "POST", path = "/new", body_matches = "Username",
      status = 429, headers = { ["Retry-After"] = "60" }, body = "" },
  },
  expect = { status = "unknown", reason = "alt_throttled", http_requests = 2,
             fields = { detail = "60" } },
}

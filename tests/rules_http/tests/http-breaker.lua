-- http.signal("block") opens the breaker of http:twostep: the next address is deferred
-- without a request.
return {
  name = "http: block opens the breaker, the next is deferred",
  dns = {
    ["twostep.test"] = { mx = { { 10, "mx.twostep.test" } } },
    ["mx.twostep.test"] = { a = { "192.0.2.12" } },
  },
  sessions = {},
  config = { yahoo_signup_url = "$HTTP/account/create" },
  http = {
    { method = "GET", path = "/account/create", status = 403, body = "Forbidden" },
  },
  verify = {
    { address = "alice@twostep.test",
      expect = { status = "unknown", reason = "blocked", http_requests = 1 } },
    { address = "bob@twostep.test",
      expect = { status = "unknown", reason = "deferred", http_requests = 0,
                 fields = { method = "http" } } },
  },
}

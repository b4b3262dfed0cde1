-- json.decode / json.encode inside the rules sandbox (tests/rules_http/jsoncheck.lua).
return {
  name = "json: decode, encode, bounds, json.null",
  address = "x@jsoncheck.test",
  dns = {
    ["jsoncheck.test"] = { mx = { { 10, "mx.jsoncheck.test" } } },
    ["mx.jsoncheck.test"] = { a = { "192.0.2.11" } },
  },
  sessions = {},
  expect = { status = "deliverable", reason = "accepted", http_requests = 0,
             fields = { provider = "jsoncheck", method = "skipped" } },
}

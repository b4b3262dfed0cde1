-- Hostile: the form refuses the name for a reason that says nothing about an account
-- (an unexpected userId error): alt_ambiguous, never a verdict. A 403 (the endpoint refuses
-- us) is blocked, and opens the http:yahoo breaker: the next address is deferred unasked.
local page = '<form id="regform"><input type="hidden" value="Zm9vYmFy" name="acrumb">\n'
  .. '<input type="hidden" name="sessionIndex" value="QQ--"><input name="userId" value=""></form>'

return {
  name = "yahoo: an unexpected userId error is ambiguous; a 403 is blocked, the next deferred",
  dns = {
    ["yahoo.com"] = { mx = { { 1, "mta5.am0.yahoodns.net" } } },
    ["aol.com"] = { mx = { { 1, "mx-aol.mail.gm0.yahoodns.net" } } },
    ["mta5.am0.yahoodns.net"] = { a = { "67.195.228.1" } },
    ["mx-aol.mail.gm0.yahoodns.net"] = { a = { "67.195.204.1" } },
  },
  config = { yahoo_signup_url = "$HTTP/account/create",
             yahoo_validate_url = "$HTTP/account/module/create?validateField=userId" },
  sessions = {},
  http = {
    { method = "GET", path = "/account/create",
      headers = { ["Set-Cookie"] = "AS=v=1&s=Ab3dE; Path=/; HttpOnly" }, body = page },
    { method = "POST", path = "/account/module/create?validateField=userId",
      headers_match = { Cookie = "AS=v=1&s=Ab3dE" },
      body_matches = "acrumb=Zm9vYmFy&sessionIndex=QQ%-%-&userId=carol$",
      status = 200, headers = { ["Content-Type"] = "application/json" },
      body = '{"errors":[{"name":"userId","error":"IDENTIFIER_RESERVED_FOR_FUTURE"}]}' },
    { method = "GET", path = "/account/create", status = 403, body = "Forbidden" },
  },
  verify = {
    { address = "carol@yahoo.com", expect = { status = "unknown", reason = "alt_ambiguous", http_requests = 2 } },
    { address = "dave@yahoo.com", expect = { status = "unknown", reason = "blocked", http_requests = 1 } },
    { address = "erin@yahoo.com", expect = { status = "unknown", reason = "deferred", http_requests = 0 } },
  },
}

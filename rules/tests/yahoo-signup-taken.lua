-- The Yahoo check (default on): the sign-up page for its cookie, acrumb and sessionIndex, then
-- the validation POST with them (the cookie sent back) and userId = the local part. A taken
-- Yahoo ID (IDENTIFIER_EXISTS, then IDENTIFIER_NOT_AVAILABLE) exists; no SMTP connection.
local page = '<form id="regform"><input type="hidden" value="Zm9vYmFy" name="acrumb">\n'
  .. '<input type="hidden" name="sessionIndex" value="QQ--"><input name="userId" value=""></form>'

return {
  name = "yahoo: sign-up check, taken IDs exist, no SMTP",
  dns = {
    ["yahoo.com"] = { mx = { { 1, "mta5.am0.yahoodns.net" } } },
    ["aol.com"] = { mx = { { 1, "mx-aol.mail.gm0.yahoodns.net" } } },
    ["mta5.am0.yahoodns.net"] = { a = { "67.195.228.1" } },
    ["mx-aol.mail.gm0.yahoodns.net"] = { a = { "67.195.204.1" } },
  },
  config = { yahoo_signup_url = "$HTTP/account/create",
             yahoo_validate_url = "$HTTP/account/module/create?validateField=userId" },
  options = { throttle = false }, -- no limiter wait: these cases are about the answers
  sessions = {},
  http = {
    { method = "GET", path = "/account/create",
      headers = { ["Set-Cookie"] = "AS=v=1&s=Ab3dE; Path=/; HttpOnly" }, body = page },
    { method = "POST", path = "/account/module/create?validateField=userId",
      headers_match = { Cookie = "AS=v=1&s=Ab3dE" },
      body_matches = "acrumb=Zm9vYmFy&sessionIndex=QQ%-%-&userId=alice$",
      status = 200, headers = { ["Content-Type"] = "application/json" },
      body = '{"errors":[{"name":"userId","error":"IDENTIFIER_EXISTS"}]}' },
    { method = "GET", path = "/account/create",
      headers = { ["Set-Cookie"] = "AS=v=1&s=Ab3dE; Path=/; HttpOnly" }, body = page },
    { method = "POST", path = "/account/module/create?validateField=userId",
      headers_match = { Cookie = "AS=v=1&s=Ab3dE" },
      body_matches = "acrumb=Zm9vYmFy&sessionIndex=QQ%-%-&userId=bob%.smith$",
      status = 200, headers = { ["Content-Type"] = "application/json" },
      body = '{"errors":[{"name":"firstName","error":"FIELD_EMPTY"},'
        .. '{"name":"userId","error":"IDENTIFIER_NOT_AVAILABLE"}]}' },
  },
  verify = {
    { address = "alice@yahoo.com",
      expect = { status = "deliverable", reason = "accepted", http_requests = 2,
                 fields = { provider = "yahoo", method = "http", attempts = 0 }, absent = { "smtp", "catch_all" } } },
    { address = "Bob.Smith@yahoo.com",
      expect = { status = "deliverable", reason = "accepted", http_requests = 2, fields = { method = "http" } } },
  },
}

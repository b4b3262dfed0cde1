-- A free Yahoo ID (no userId error, only the form's other empty fields): no such account.
local page = '<form id="regform"><input type="hidden" value="Zm9vYmFy" name="acrumb">\n'
  .. '<input type="hidden" name="sessionIndex" value="QQ--"><input name="userId" value=""></form>'

return {
  name = "yahoo: sign-up check, a free ID is mailbox_not_found",
  address = "nobody@yahoo.com",
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
      body_matches = "acrumb=Zm9vYmFy&sessionIndex=QQ%-%-&userId=nobody$",
      status = 200, headers = { ["Content-Type"] = "application/json" },
      body = '{"errors":[{"name":"firstName","error":"FIELD_EMPTY"},'
        .. '{"name":"password","error":"FIELD_EMPTY"}]}' },
  },
  expect = { status = "undeliverable", reason = "mailbox_not_found", http_requests = 2,
             fields = { provider = "yahoo", method = "http" } },
}

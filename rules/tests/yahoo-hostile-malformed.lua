-- Hostile: a 200 that is not JSON, and a page without acrumb (Yahoo changed it, or a bot
-- wall): unknown/alt_error, never a verdict. A name the form cannot ask about (a disposable
-- base-keyword address) is not asked: alt_ambiguous, skipped.
local page = '<form id="regform"><input type="hidden" value="Zm9vYmFy" name="acrumb">\n'
  .. '<input type="hidden" name="sessionIndex" value="QQ--"><input name="userId" value=""></form>'

return {
  name = "yahoo: malformed answer, a page without acrumb, an unaskable name: unknown",
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
      body_matches = "acrumb=Zm9vYmFy&sessionIndex=QQ%-%-&userId=malformed$",
      status = 200, headers = { ["Content-Type"] = "text/html" },
      body = '<html><body>Oops</body></html>' },
    { method = "GET", path = "/account/create", body = "<html><body>Please verify you are a human</body></html>" },
  },
  verify = {
    { address = "malformed@yahoo.com", expect = { status = "unknown", reason = "alt_error", http_requests = 2 } },
    { address = "alice@yahoo.com", expect = { status = "unknown", reason = "alt_error", http_requests = 1 } },
    { address = "alice-shop@yahoo.com",
      expect = { status = "unknown", reason = "alt_ambiguous", http_requests = 0, fields = { method = "skipped" } } },
  },
}

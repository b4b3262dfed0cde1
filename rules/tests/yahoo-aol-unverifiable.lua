-- aol.com is on Yahoo's servers, which answer 250 for everyone, and the sign-up check knows
-- only yahoo.com names: unverifiable, with the check on (the default), and nothing asked —
-- no SMTP connection (sessions = {}), no HTTP request (http = {}).
return {
  name = "yahoo: aol.com is unverifiable, no SMTP, no HTTP",
  address = "alice@aol.com",
  dns = {
    ["yahoo.com"] = { mx = { { 1, "mta5.am0.yahoodns.net" } } },
    ["aol.com"] = { mx = { { 1, "mx-aol.mail.gm0.yahoodns.net" } } },
    ["mta5.am0.yahoodns.net"] = { a = { "67.195.228.1" } },
    ["mx-aol.mail.gm0.yahoodns.net"] = { a = { "67.195.204.1" } },
  },
  config = { yahoo_signup_url = "$HTTP/account/create",
             yahoo_validate_url = "$HTTP/account/module/create?validateField=userId" },
  sessions = {},
  http = {},
  expect = { status = "unknown", reason = "unverifiable", http_requests = 0,
             fields = { provider = "yahoo", method = "skipped", attempts = 0 }, absent = { "smtp", "mx" } },
}

-- yahoo.com with the Yahoo check switched off: no SMTP either (an RCPT is worthless there and
-- risks the IP): unverifiable, skipped.
return {
  name = "yahoo: check off, yahoo.com unverifiable, no SMTP",
  address = "alice@yahoo.com",
  dns = {
    ["yahoo.com"] = { mx = { { 1, "mta5.am0.yahoodns.net" } } },
    ["aol.com"] = { mx = { { 1, "mx-aol.mail.gm0.yahoodns.net" } } },
    ["mta5.am0.yahoodns.net"] = { a = { "67.195.228.1" } },
    ["mx-aol.mail.gm0.yahoodns.net"] = { a = { "67.195.204.1" } },
  },
  config = { alt_checks = "microsoft365" },
  sessions = {},
  http = {},
  expect = { status = "unknown", reason = "unverifiable", http_requests = 0,
             fields = { provider = "yahoo", method = "skipped" }, absent = { "smtp" } },
}

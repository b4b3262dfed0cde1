-- Yahoo answers 250 for everyone: no SMTP connection is ever made (no session here: one
-- would fail the test). aol.com is unverifiable always; yahoo.com with the alternative check
-- off too.
return {
  name = "yahoo: no SMTP, aol.com (and yahoo.com, check off) unverifiable",
  verify = {
    { address = "alice@aol.com",
      expect = { status = "unknown", reason = "unverifiable", fields = { provider = "yahoo" }, absent = { "smtp", "mx" } } },
    { address = "alice@yahoo.com",
      expect = { status = "unknown", reason = "unverifiable", fields = { provider = "yahoo", attempts = 0 } } },
  },
  dns = {
    ["aol.com"] = { mx = { { 1, "mx-aol.mail.gm0.yahoodns.net" } } },
    ["yahoo.com"] = { mx = { { 1, "mta5.am0.yahoodns.net" } } },
    ["mx-aol.mail.gm0.yahoodns.net"] = { a = { "67.195.204.1" } },
    ["mta5.am0.yahoodns.net"] = { a = { "67.195.228.1" } },
  },
  sessions = {},
}

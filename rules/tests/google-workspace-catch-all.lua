-- A Workspace domain routes every address to a mailbox: the catch-all probe runs there (not
-- on gmail.com) and finds it. Then a second address of the domain: the answer is remembered.
return {
  name = "google: Workspace domain, catch-all probe runs",
  verify = {
    { address = "alice@gws.test",
      expect = { status = "risky", reason = "catch_all", fields = { provider = "google", catch_all = true } } },
    { address = "nobody@gws.test",
      expect = { status = "risky", reason = "catch_all", fields = { catch_all = true, attempts = 1 } } },
  },
  dns = {
    ["gws.test"] = { mx = { { 1, "aspmx.l.google.com" }, { 5, "alt1.aspmx.l.google.com" } } },
    ["aspmx.l.google.com"] = { a = { "142.250.27.26" } },
    ["alt1.aspmx.l.google.com"] = { a = { "142.250.153.26" } },
  },
  sessions = {
    { banner = "220 mx.google.com ESMTP a1-20020a05600c000000b0040e00000000si1234567wmq.123 - gsmtp",
      replies = { RCPT = { "250 2.1.5 OK a1si1 - gsmtp", "250 2.1.5 OK a1si2 - gsmtp", "250 2.1.5 OK a1si3 - gsmtp" } } },
  },
}

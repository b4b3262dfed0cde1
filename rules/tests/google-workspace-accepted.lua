-- A Workspace domain with real recipient checks: accepted, the made-up name refused with
-- Google's NoSuchUser: deliverable, catch_all false.
return {
  name = "google: Workspace domain, accepted, catch-all probe refused",
  address = "alice@gws.test",
  dns = {
    ["gws.test"] = { mx = { { 1, "aspmx.l.google.com" }, { 5, "alt1.aspmx.l.google.com" } } },
    ["aspmx.l.google.com"] = { a = { "142.250.27.26" } },
    ["alt1.aspmx.l.google.com"] = { a = { "142.250.153.26" } },
  },
  sessions = {
    { banner = "220 mx.google.com ESMTP a1-20020a05600c000000b0040e00000000si1234567wmq.123 - gsmtp",
      replies = { RCPT = {
        "250 2.1.5 OK a1si1 - gsmtp",
        "550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
          .. "550-5.1.1 double-checking the recipient's email address for typos or\n"
          .. "550-5.1.1 unnecessary spaces. For more information, go to\n"
          .. "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser a1si2 - gsmtp",
      } } },
  },
  expect = { status = "deliverable", reason = "accepted", fields = { provider = "google", catch_all = false } },
}

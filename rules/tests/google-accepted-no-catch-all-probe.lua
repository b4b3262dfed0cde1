-- A Gmail address that exists: one RCPT, no catch-all probe (gmail.com takes no made-up
-- names; a second RCPT would find the script ended and fail the test).
return {
  name = "google: Gmail accepted, no catch-all probe",
  address = "johnsmith@gmail.com",
  dns = {
    ["gmail.com"] = { mx = { { 5, "gmail-smtp-in.l.google.com" } } },
    ["gmail-smtp-in.l.google.com"] = { a = { "142.250.102.27" } },
  },
  sessions = {
    { banner = "220 mx.google.com ESMTP a1-20020a05600c000000b0040e00000000si1234567wmq.123 - gsmtp",
      replies = { RCPT = { "250 2.1.5 OK a1-20020a05600c000000b0040e00000000si1234567wmq.123 - gsmtp" } } },
  },
  expect = { status = "deliverable", reason = "accepted",
             fields = { provider = "google", smtp_code = 250, attempts = 1 }, absent = { "catch_all" } },
}

-- postgrey's first answer, then the retry on a new connection is let through. Without
-- reuse the session is closed after the 450, as a real 300 s delay would see it closed.
return {
  name = "default: greylisted, accepted on the retry (two sessions)",
  address = "carol@grey.test",
  options = { reuse = false },
  dns = {
    ["grey.test"] = { mx = { { 10, "mx.grey.test" } } },
    ["mx.grey.test"] = { a = { "192.0.2.27" } },
  },
  sessions = {
    { transcript = "transcripts/postgrey-greylisted.txt" },
    { banner = "220 mx.grey.test ESMTP Postfix (Debian/GNU)",
      replies = { RCPT = {
        "250 2.1.5 Ok",
        "550 5.1.1 <x@grey.test>: Recipient address rejected: User unknown in local recipient table",
      } } },
  },
  expect = { status = "deliverable", reason = "accepted",
             fields = { attempts = 2, smtp_code = 250, catch_all = false } },
}

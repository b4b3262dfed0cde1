-- A mailbox that exists on a domain that refuses made-up local parts: accepted, not catch-all.
return {
  name = "default: accepted, catch-all probe refused",
  address = "alice@valid.test",
  dns = {
    ["valid.test"] = { mx = { { 10, "mx.valid.test" } } },
    ["mx.valid.test"] = { a = { "192.0.2.25" } },
  },
  sessions = {
    { banner = "220 mx.valid.test ESMTP Postfix (Debian/GNU)",
      replies = {
        EHLO = "250-mx.valid.test\n250-PIPELINING\n250-SIZE 10240000\n250-STARTTLS\n250-ENHANCEDSTATUSCODES\n250 8BITMIME",
        RCPT = {
          "250 2.1.5 Ok",
          "550 5.1.1 <x@valid.test>: Recipient address rejected: User unknown in virtual mailbox table",
        },
      } },
  },
  expect = { status = "deliverable", reason = "accepted",
             fields = { smtp_code = 250, smtp_enhanced = "2.1.5", catch_all = false, provider = "default",
                        mx = "mx.valid.test", attempts = 1 } },
}

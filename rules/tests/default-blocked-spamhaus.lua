-- Postfix rejecting *us* through a DNSBL: about the sender, never "the mailbox does not exist".
return {
  name = "default: Spamhaus 554 5.7.1 is blocked, not undeliverable",
  address = "alice@valid.test",
  dns = {
    ["valid.test"] = { mx = { { 10, "mx.valid.test" } } },
    ["mx.valid.test"] = { a = { "192.0.2.25" } },
  },
  sessions = {
    { banner = "220 mx.valid.test ESMTP Postfix (Debian/GNU)",
      replies = {
        RCPT = {
          "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org; "
            .. "https://www.spamhaus.org/query/ip/192.0.2.1",
        },
      } },
  },
  expect = { status = "unknown", reason = "blocked",
             fields = { smtp_code = 554, smtp_enhanced = "5.7.1" } },
}

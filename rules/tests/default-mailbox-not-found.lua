-- Postfix's wording for an unknown virtual mailbox, from a captured transcript.
return {
  name = "default: Postfix 550 5.1.1 user unknown",
  address = "nobody@valid.test",
  dns = {
    ["valid.test"] = { mx = { { 10, "mx.valid.test" } } },
    ["mx.valid.test"] = { a = { "192.0.2.25" } },
  },
  sessions = { { transcript = "transcripts/postfix-user-unknown.txt" } },
  expect = {
    status = "undeliverable", reason = "mailbox_not_found",
    fields = {
      smtp_code = 550, smtp_enhanced = "5.1.1",
      smtp_text = "<nobody@valid.test>: Recipient address rejected: User unknown in virtual mailbox table",
      provider = "default", mx = "mx.valid.test", attempts = 1,
    },
    absent = { "catch_all" },
  },
}

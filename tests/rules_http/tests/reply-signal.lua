-- A reply is read once: reply.signal and classify, inside the rules sandbox
-- (tests/rules_http/replycheck.lua).
return {
  name = "reply: read once, reply.signal carries the rule's reading, classify follows it",
  address = "x@replycheck.test",
  dns = {
    ["replycheck.test"] = { mx = { { 10, "mx.replycheck.test" } } },
    ["mx.replycheck.test"] = { a = { "192.0.2.12" } },
  },
  sessions = {
    { replies = { RCPT = {
      "250 2.1.5 Ok",
      "550 5.1.1 <u2@replycheck.test>: Recipient address rejected: User unknown in virtual mailbox table",
      "450 4.2.0 <u3@replycheck.test>: Recipient address rejected: Greylisted",
      "550 5.1.1 <u4@replycheck.test>: no such user, and the refusal is ours to give",
    } } },
  },
  expect = { status = "deliverable", reason = "accepted",
             fields = { provider = "replycheck", method = "smtp" } },
}

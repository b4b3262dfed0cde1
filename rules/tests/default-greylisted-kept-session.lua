-- With session reuse the retry goes on the session kept from the first try.
return {
  name = "default: greylisted, accepted on the retry (kept session)",
  address = "carol@grey.test",
  dns = {
    ["grey.test"] = { mx = { { 10, "mx.grey.test" } } },
    ["mx.grey.test"] = { a = { "192.0.2.27" } },
  },
  sessions = {
    { replies = { RCPT = {
      "451 4.7.1 <carol@grey.test>: Recipient address rejected: Please try again later",
      "250 2.1.5 Ok",
      "550 5.1.1 <x@grey.test>: Recipient address rejected: User unknown in local recipient table",
    } } },
  },
  expect = { status = "deliverable", reason = "accepted", fields = { attempts = 2 } },
}

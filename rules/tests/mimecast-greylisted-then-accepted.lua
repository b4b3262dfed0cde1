-- Mimecast greylists the first try and takes the second (kept session); the made-up name is
-- an Invalid Recipient: deliverable, catch_all false.
return {
  name = "mimecast: greylisted, accepted on the retry, catch-all probe refused",
  address = "alice@mimecast-corp.test",
  dns = {
    ["mimecast-corp.test"] = { mx = { { 10, "eu-smtp-inbound-1.mimecast.com" }, { 20, "eu-smtp-inbound-2.mimecast.com" } } },
    ["eu-smtp-inbound-1.mimecast.com"] = { a = { "195.130.217.1" } },
    ["eu-smtp-inbound-2.mimecast.com"] = { a = { "195.130.217.2" } },
  },
  sessions = {
    { banner = "220 eu-smtp-inbound-1.mimecast.com ESMTP Service ready",
      replies = { RCPT = { "451 Internal resource temporarily unavailable - https://community.mimecast.com/docs/DOC-1369#451",
        "250 Recipient OK",
        "550 Invalid Recipient - https://community.mimecast.com/docs/DOC-1369#550" } } },
  },
  expect = { status = "deliverable", reason = "accepted", fields = { provider = "mimecast", attempts = 2,
                                                          catch_all = false } },
}

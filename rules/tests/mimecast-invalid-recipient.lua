-- Mimecast's unknown user.
return {
  name = "mimecast: 550 Invalid Recipient",
  address = "nobody@mimecast-corp.test",
  dns = {
    ["mimecast-corp.test"] = { mx = { { 10, "eu-smtp-inbound-1.mimecast.com" }, { 20, "eu-smtp-inbound-2.mimecast.com" } } },
    ["eu-smtp-inbound-1.mimecast.com"] = { a = { "195.130.217.1" } },
    ["eu-smtp-inbound-2.mimecast.com"] = { a = { "195.130.217.2" } },
  },
  sessions = {
    { banner = "220 eu-smtp-inbound-1.mimecast.com ESMTP Service ready",
      replies = { RCPT = { "550 Invalid Recipient - https://community.mimecast.com/docs/DOC-1369#550 "
        .. "[AbCdEfGhIjKlMnOpQrStUv.uk123]" } } },
  },
  expect = { status = "undeliverable", reason = "mailbox_not_found", fields = { provider = "mimecast", smtp_code = 550 } },
}

-- Hostile: one company's own block list at Mimecast (envelope blocked): about us and that
-- company: blocked, but no Mimecast-wide breaker, so the next address is still asked.
return {
  name = "mimecast: envelope blocked opens no breaker",
  verify = {
    { address = "alice@mimecast-corp.test", expect = { status = "unknown", reason = "blocked" } },
    { address = "nobody@mimecast-corp.test", expect = { status = "undeliverable", reason = "mailbox_not_found" } },
  },
  dns = {
    ["mimecast-corp.test"] = { mx = { { 10, "eu-smtp-inbound-1.mimecast.com" }, { 20, "eu-smtp-inbound-2.mimecast.com" } } },
    ["eu-smtp-inbound-1.mimecast.com"] = { a = { "195.130.217.1" } },
    ["eu-smtp-inbound-2.mimecast.com"] = { a = { "195.130.217.2" } },
  },
  sessions = {
    { banner = "220 eu-smtp-inbound-1.mimecast.com ESMTP Service ready",
      replies = { RCPT = { "550 Administrative prohibition - envelope blocked - https://community.mimecast.com/docs/DOC-1369#550",
        "550 Invalid Recipient - https://community.mimecast.com/docs/DOC-1369#550" } } },
  },
}

-- Hostile: Mimecast refusing our IP ("Email rejected due to security policies"): blocked,
-- the breaker opens, and the next Mimecast address is deferred with no connection.
return {
  name = "mimecast: rejected due to security policies is blocked, the next address deferred",
  verify = {
    { address = "alice@mimecast-corp.test", expect = { status = "unknown", reason = "blocked", fields = { smtp_code = 554 } } },
    { address = "bob@mimecast-corp.test", expect = { status = "unknown", reason = "deferred" } },
  },
  dns = {
    ["mimecast-corp.test"] = { mx = { { 10, "eu-smtp-inbound-1.mimecast.com" }, { 20, "eu-smtp-inbound-2.mimecast.com" } } },
    ["eu-smtp-inbound-1.mimecast.com"] = { a = { "195.130.217.1" } },
    ["eu-smtp-inbound-2.mimecast.com"] = { a = { "195.130.217.2" } },
  },
  sessions = {
    { banner = "220 eu-smtp-inbound-1.mimecast.com ESMTP Service ready",
      replies = { RCPT = { "554 Email rejected due to security policies - https://community.mimecast.com/docs/DOC-1369#554" } } },
  },
}

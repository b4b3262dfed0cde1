-- The session kept after alice is dropped by the server as bob's RCPT goes out (Postfix's
-- idle timeout racing us): the rule asks once more, on a fresh session. The catch-all answer
-- is remembered for the domain, so bob's session has no probe.
return {
  name = "default: a dropped kept session is retried",
  verify = {
    { address = "alice@valid.test", expect = { status = "deliverable", reason = "accepted" } },
    { address = "bob@valid.test",
      expect = { status = "deliverable", reason = "accepted", fields = { attempts = 2, catch_all = false } } },
  },
  dns = {
    ["valid.test"] = { mx = { { 10, "mx.valid.test" } } },
    ["mx.valid.test"] = { a = { "192.0.2.25" } },
  },
  sessions = {
    { transcript = "transcripts/postfix-dropped-kept-session.txt" },
    { banner = "220 mx.valid.test ESMTP Postfix (Debian/GNU)", replies = { RCPT = { "250 2.1.5 Ok" } } },
  },
}

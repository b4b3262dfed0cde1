-- iCloud's unknown user (captured shape), and a known one on me.com: no catch-all probe on
-- Apple's own domains.
return {
  name = "icloud: 550 5.1.1 user does not exist (captured); me.com accepted, no probe",
  verify = {
    { address = "nobody@icloud.com",
      expect = { status = "undeliverable", reason = "mailbox_not_found", fields = { provider = "icloud", smtp_enhanced = "5.1.1" } } },
    { address = "alice@me.com",
      expect = { status = "deliverable", reason = "accepted", fields = { provider = "icloud" }, absent = { "catch_all" } } },
  },
  dns = {
    ["icloud.com"] = { mx = { { 10, "mx01.mail.icloud.com" }, { 20, "mx02.mail.icloud.com" } } },
    ["me.com"] = { mx = { { 10, "mx01.mail.icloud.com" } } },
    ["mx01.mail.icloud.com"] = { a = { "17.57.155.1" } },
    ["mx02.mail.icloud.com"] = { a = { "17.57.156.1" } },
  },
  options = { reuse = false },
  sessions = {
    { transcript = "transcripts/icloud-user-does-not-exist.txt" },
    { banner = "220 mx01.mail.icloud.com ESMTP", replies = { RCPT = { "250 2.1.5 Ok" } } },
  },
}

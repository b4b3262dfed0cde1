-- Hostile: our IP on Microsoft's block list (S3150). About us, never the mailbox; the
-- breaker opens, and the next Outlook.com address is held back without a connection.
return {
  name = "outlook: S3150 block list is blocked, the next address deferred",
  verify = {
    { address = "alice@outlook.com",
      expect = { status = "unknown", reason = "blocked",
                 fields = { provider = "outlook", smtp_enhanced = "5.7.1" } } },
    { address = "bob@outlook.com", expect = { status = "unknown", reason = "deferred", fields = { provider = "outlook" } } },
  },
  dns = {
    ["outlook.com"] = { mx = { { 10, "outlook-com.olc.protection.outlook.com" } } },
    ["outlook-com.olc.protection.outlook.com"] = { a = { "52.101.194.1" } },
  },
  sessions = {
    { banner = "220 BN1PEPF000046C2.mail.protection.outlook.com Microsoft ESMTP MAIL Service ready at "
      .. "Tue, 1 Dec 2026 20:00:00 +0000 08DE0F5A3B2C1D4E",
      replies = { RCPT = {
        "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service "
          .. "provider since part of their network is on our block list (S3150). You can also refer your provider "
          .. "to http://mail.live.com/mail/troubleshooting.aspx#errors. [BN1PEPF000046C2.namprd05.prod.outlook.com]",
      } } },
  },
}

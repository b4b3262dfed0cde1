-- A tenant with Directory-Based Edge Blocking, the alternative check off: DBEB's "550 5.4.1
-- Recipient address rejected: Access denied" is an unknown user (the generic classifier reads
-- "access denied" as a block of us); the known user is accepted and the made-up one refused.
local dbeb = "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)"
  .. " [AM4PEPF00027A5F.eurprd83.prod.outlook.com 2026-12-01T20:00:00.000Z 08DC0000000000]"

return {
  name = "microsoft365: SMTP (check off), DBEB 550 5.4.1 access denied is mailbox_not_found",
  verify = {
    { address = "nobody@fabrikam.test",
      expect = { status = "undeliverable", reason = "mailbox_not_found",
                 fields = { provider = "microsoft365", smtp_enhanced = "5.4.1" }, absent = { "catch_all" } } },
    { address = "alice@fabrikam.test",
      expect = { status = "deliverable", reason = "accepted", fields = { provider = "microsoft365", catch_all = false } } },
  },
  config = { alt_checks = "none" },
  dns = {
    ["fabrikam.test"] = { mx = { { 0, "fabrikam-test.mail.protection.outlook.com" } } },
    ["fabrikam-test.mail.protection.outlook.com"] = { a = { "52.101.68.2" } },
  },
  sessions = {
    { banner = "220 AM4PEPF00027A5F.mail.protection.outlook.com Microsoft ESMTP MAIL Service ready at "
      .. "Tue, 1 Dec 2026 20:00:00 +0000 08DC0000000000", replies = { MAIL = "250 2.1.0 Sender OK",
      RCPT = { dbeb, "250 2.1.5 Recipient OK", dbeb } } },
  },
}

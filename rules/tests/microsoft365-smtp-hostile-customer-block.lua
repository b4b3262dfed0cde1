-- Hostile: one tenant's own block list refuses us. About us and that tenant only: blocked,
-- but Microsoft-wide nothing opens (signal none), so another tenant is still asked.
return {
  name = "microsoft365: SMTP (check off), a tenant's Customer Block list opens no breaker",
  verify = {
    { address = "alice@fabrikam.test", expect = { status = "unknown", reason = "blocked" } },
    { address = "alice@contoso.test", expect = { status = "risky", reason = "catch_all" } },
  },
  config = { alt_checks = "none" },
  dns = {
    ["fabrikam.test"] = { mx = { { 0, "fabrikam-test.mail.protection.outlook.com" } } },
    ["contoso.test"] = { mx = { { 0, "contoso-test.mail.protection.outlook.com" } } },
    ["fabrikam-test.mail.protection.outlook.com"] = { a = { "52.101.68.2" } },
    ["contoso-test.mail.protection.outlook.com"] = { a = { "52.101.68.1" } },
  },
  sessions = {
    { host = "fabrikam-test.mail.protection.outlook.com",
      banner = "220 AM4PEPF00027A5F.mail.protection.outlook.com Microsoft ESMTP MAIL Service ready at "
      .. "Tue, 1 Dec 2026 20:00:00 +0000 08DC0000000000",
      replies = { RCPT = { "550 5.7.1 Service unavailable, Client host [192.0.2.1] blocked using Customer Block "
        .. "list (AS16012607). To request removal from this list, contact the recipient's administrator." } } },
    { host = "contoso-test.mail.protection.outlook.com",
      banner = "220 AM4PEPF00027A5F.mail.protection.outlook.com Microsoft ESMTP MAIL Service ready at "
      .. "Tue, 1 Dec 2026 20:00:00 +0000 08DC0000000000",
      replies = { RCPT = { "250 2.1.5 Recipient OK", "250 2.1.5 Recipient OK" } } },
  },
}

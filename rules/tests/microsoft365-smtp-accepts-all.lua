-- A tenant without DBEB, the alternative check off: it takes the made-up address too, so an
-- accept says nothing: risky/catch_all.
return {
  name = "microsoft365: SMTP (check off), a tenant that accepts all is catch_all",
  address = "alice@contoso.test",
  config = { alt_checks = "none" },
  dns = {
    ["contoso.test"] = { mx = { { 0, "contoso-test.mail.protection.outlook.com" } } },
    ["contoso-test.mail.protection.outlook.com"] = { a = { "52.101.68.1" } },
  },
  sessions = {
    { banner = "220 AM4PEPF00027A5F.mail.protection.outlook.com Microsoft ESMTP MAIL Service ready at "
      .. "Tue, 1 Dec 2026 20:00:00 +0000 08DC0000000000", replies = { MAIL = "250 2.1.0 Sender OK",
      RCPT = { "250 2.1.5 Recipient OK", "250 2.1.5 Recipient OK" } } },
  },
  expect = { status = "risky", reason = "catch_all", fields = { provider = "microsoft365", catch_all = true } },
}

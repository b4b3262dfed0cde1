-- An Outlook.com mailbox that exists: one RCPT, no catch-all probe (consumer domains).
return {
  name = "outlook: accepted, no catch-all probe",
  address = "alice@outlook.com",
  dns = {
    ["outlook.com"] = { mx = { { 10, "outlook-com.olc.protection.outlook.com" } } },
    ["outlook-com.olc.protection.outlook.com"] = { a = { "52.101.194.1" } },
  },
  sessions = { { banner = "220 BN1PEPF000046C2.mail.protection.outlook.com Microsoft ESMTP MAIL Service ready at "
      .. "Tue, 1 Dec 2026 20:00:00 +0000 08DE0F5A3B2C1D4E",
      replies = { MAIL = "250 2.1.0 Sender OK", RCPT = { "250 2.1.5 Recipient OK" } } } },
  expect = { status = "deliverable", reason = "accepted", fields = { provider = "outlook" }, absent = { "catch_all" } },
}

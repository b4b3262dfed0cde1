-- Hostile: 451 4.7.500 Server busy, then the retry is accepted: a rate deferral asked again
-- at once (no greylist wait: greylist_delay is long here), not a verdict.
return {
  name = "outlook: 451 4.7.500 server busy, accepted on the retry",
  address = "alice@outlook.com",
  options = { greylist_delay = 30 },
  dns = {
    ["outlook.com"] = { mx = { { 10, "outlook-com.olc.protection.outlook.com" } } },
    ["outlook-com.olc.protection.outlook.com"] = { a = { "52.101.194.1" } },
  },
  sessions = {
    { banner = "220 BN1PEPF000046C2.mail.protection.outlook.com Microsoft ESMTP MAIL Service ready at "
      .. "Tue, 1 Dec 2026 20:00:00 +0000 08DE0F5A3B2C1D4E",
      replies = { RCPT = { "451 4.7.500 Server busy. Please try again later from [192.0.2.1]. (S77719) "
        .. "[BN1PEPF000046C2.namprd05.prod.outlook.com]", "250 2.1.5 Recipient OK" } } },
  },
  expect = { status = "deliverable", reason = "accepted", fields = { provider = "outlook", attempts = 2 } },
}

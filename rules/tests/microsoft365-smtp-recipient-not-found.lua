-- Exchange Online with the alternative check off: RecipientNotFound (550 5.1.10) at RCPT.
return {
  name = "microsoft365: SMTP (check off), 550 5.1.10 RecipientNotFound",
  address = "nobody@contoso.test",
  config = { alt_checks = "none" },
  dns = {
    ["contoso.test"] = { mx = { { 0, "contoso-test.mail.protection.outlook.com" } } },
    ["contoso-test.mail.protection.outlook.com"] = { a = { "52.101.68.1" } },
  },
  sessions = {
    { banner = "220 AM4PEPF00027A5F.mail.protection.outlook.com Microsoft ESMTP MAIL Service ready at "
        .. "Tue, 1 Dec 2026 20:00:00 +0000 08DC0000000000",
      replies = {
        EHLO = "250-AM4PEPF00027A5F.mail.protection.outlook.com Hello [192.0.2.1]\n250-SIZE 157286400\n"
          .. "250-PIPELINING\n250-DSN\n250-ENHANCEDSTATUSCODES\n250-STARTTLS\n250-8BITMIME\n"
          .. "250-BINARYMIME\n250-CHUNKING\n250 SMTPUTF8",
        MAIL = "250 2.1.0 Sender OK",
        RCPT = {
          "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient nobody@contoso.test not found by "
            .. "SMTP address lookup",
        },
      } },
  },
  expect = { status = "undeliverable", reason = "mailbox_not_found",
             fields = { smtp_code = 550, smtp_enhanced = "5.1.10", provider = "microsoft365" } },
}

-- Gmail's wording for a disabled account (550 5.2.1).
return {
  name = "google: Gmail 550 5.2.1 disabled account",
  address = "gone@gmail.com",
  dns = {
    ["gmail.com"] = { mx = { { 5, "gmail-smtp-in.l.google.com" } } },
    ["gmail-smtp-in.l.google.com"] = { a = { "142.250.102.27" } },
  },
  sessions = {
    { banner = "220 mx.google.com ESMTP a1-20020a05600c000000b0040e00000000si1234567wmq.123 - gsmtp",
      replies = {
        EHLO = "250-mx.google.com at your service, [192.0.2.1]\n250-SIZE 157286400\n250-8BITMIME\n"
          .. "250-STARTTLS\n250-ENHANCEDSTATUSCODES\n250-PIPELINING\n250-CHUNKING\n250 SMTPUTF8",
        MAIL = "250 2.1.0 OK a1-20020a05600c000000b0040e00000000si1234567wmq.123 - gsmtp",
        RCPT = {
          "550-5.2.1 The email account that you tried to reach is disabled. Learn more at\n"
            .. "550 5.2.1  https://support.google.com/mail/?p=DisabledUser "
            .. "a1-20020a05600c000000b0040e00000000si1234567wmq.123 - gsmtp",
        },
      } },
  },
  expect = { status = "undeliverable", reason = "mailbox_disabled",
             fields = { smtp_code = 550, smtp_enhanced = "5.2.1", provider = "google" } },
}

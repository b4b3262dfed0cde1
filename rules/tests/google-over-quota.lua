-- Gmail's over-quota reply (452 4.2.2): the mailbox exists but takes nothing now.
return {
  name = "google: Gmail 452 4.2.2 out of storage",
  address = "full@gmail.com",
  dns = {
    ["gmail.com"] = { mx = { { 5, "gmail-smtp-in.l.google.com" } } },
    ["gmail-smtp-in.l.google.com"] = { a = { "142.250.102.27" } },
  },
  sessions = {
    { banner = "220 mx.google.com ESMTP a1-20020a05600c000000b0040e00000000si1234567wmq.123 - gsmtp",
      replies = {
        RCPT = {
          "452-4.2.2 The recipient's inbox is out of storage space. Please direct\n"
            .. "452-4.2.2 the recipient to\n"
            .. "452 4.2.2  https://support.google.com/mail/?p=OverQuotaTemp "
            .. "a1-20020a05600c000000b0040e00000000si1234567wmq.123 - gsmtp",
        },
      } },
  },
  expect = { status = "risky", reason = "mailbox_full",
             fields = { smtp_code = 452, smtp_enhanced = "4.2.2", attempts = 1, provider = "google" } },
}

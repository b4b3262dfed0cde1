-- Hostile: Gmail refusing us at RCPT with a 5.7.26 (our sender is unauthenticated). The
-- generic classifier would read a 550 it does not know as "rejected" (undeliverable); at
-- Google every 5.7.x is about the sender, never the mailbox.
return {
  name = "google: 550 5.7.26 unauthenticated sender is blocked, not undeliverable",
  address = "johnsmith@gmail.com",
  dns = {
    ["gmail.com"] = { mx = { { 5, "gmail-smtp-in.l.google.com" } } },
    ["gmail-smtp-in.l.google.com"] = { a = { "142.250.102.27" } },
  },
  sessions = {
    { banner = "220 mx.google.com ESMTP a1-20020a05600c000000b0040e00000000si1234567wmq.123 - gsmtp",
      replies = { RCPT = {
        "550-5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires\n"
          .. "550-5.7.26 all senders to authenticate with either SPF or DKIM.\n"
          .. "550 5.7.26  https://support.google.com/mail/answer/81126#authentication a1si1 - gsmtp",
      } } },
  },
  expect = { status = "unknown", reason = "blocked", fields = { provider = "google", smtp_enhanced = "5.7.26" } },
}

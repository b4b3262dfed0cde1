-- Hostile: Gmail's rate deferral (421 4.7.28, and the connection closed) on every try: not
-- greylisting (no greylist wait), asked again at the lowered rate up to rate_deferral_tries,
-- then unknown/deferred.
local rate = "421-4.7.28 Gmail has detected an unusual rate of unsolicited mail originating from your IP\n"
  .. "421-4.7.28 address. To protect our users from spam, mail sent from your IP address has been\n"
  .. "421 4.7.28 temporarily rate limited. https://support.google.com/mail/answer/81126 a1si1 - gsmtp\nclose"
return {
  name = "google: 421 4.7.28 unusual rate, deferred after the rate tries",
  address = "johnsmith@gmail.com",
  options = { rate_deferral_tries = 2, greylist_delay = 30 },
  dns = {
    ["gmail.com"] = { mx = { { 5, "gmail-smtp-in.l.google.com" } } },
    ["gmail-smtp-in.l.google.com"] = { a = { "142.250.102.27" } },
  },
  sessions = {
    { banner = "220 mx.google.com ESMTP a1-20020a05600c000000b0040e00000000si1234567wmq.123 - gsmtp", replies = { RCPT = { rate } } },
    { banner = "220 mx.google.com ESMTP a1-20020a05600c000000b0040e00000000si1234567wmq.123 - gsmtp", replies = { RCPT = { rate } } },
  },
  expect = { status = "unknown", reason = "deferred", fields = { provider = "google", smtp_enhanced = "4.7.28", attempts = 2 } },
}

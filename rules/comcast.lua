-- comcast.lua — Comcast / Xfinity (comcast.net): mail hosts under comcast.net. SMTP: an
-- unknown user is `550 5.1.1 Not our Customer` at RCPT; comcast.net takes no made-up names
-- (no catch-all probe). Block and rate replies point at Comcast's code list
-- (postmaster.comcast.net/smtp-error-codes.php#BLnnnnnn / #RLnnnnnn).
-- docs/providers.md says why and how sure.

local provider = require "validora.provider"

return provider.rule {
  name = "comcast",
  match = { mx = { "*.comcast.net" } },
  consumer = { "comcast.net" },
  block = { "comcast block for spam", "smtp-error-codes.php#bl" },
  slow_down = { "smtp-error-codes.php#rl" },
  replies = {
    { words = { "not our customer" }, status = "undeliverable", reason = "mailbox_not_found" },
  },
}

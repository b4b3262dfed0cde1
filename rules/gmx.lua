-- gmx.lua — GMX and WEB.DE (United Internet): mail hosts under gmx.net, gmx.com, web.de.
-- SMTP: an unknown user is `550 Requested action not taken: mailbox unavailable` at RCPT
-- (no enhanced code); their own domains take no made-up names (no catch-all probe). Policy
-- refusals point at postmaster.gmx.net / postmaster.web.de case pages.
-- docs/providers.md says why and how sure.

local provider = require "validora.provider"

return provider.rule {
  name = "gmx",
  match = { mx = { "*.gmx.net", "*.web.de", "*.gmx.com" } },
  consumer = { "gmx.net", "gmx.de", "gmx.at", "gmx.ch", "gmx.com", "web.de" },
  block = { "postmaster.gmx.net/en/case", "postmaster.web.de/en/case", "reject due to policy restrictions" },
  replies = {
    { code = 550, words = { "mailbox unavailable" }, status = "undeliverable", reason = "mailbox_not_found" },
  },
}

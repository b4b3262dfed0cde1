-- icloud.lua — iCloud Mail (icloud.com, me.com, mac.com, and iCloud+ custom domains): mail
-- hosts under icloud.com. SMTP: an unknown user is `550 5.1.1 <x>: user does not exist` at
-- RCPT. No catch-all probe for Apple's own domains; one for custom domains.
-- docs/providers.md says why and how sure.

local provider = require "validora.provider"

return provider.rule {
  name = "icloud",
  match = { mx = { "*.icloud.com" } },
  consumer = { "icloud.com", "me.com", "mac.com" },
  -- KumoMTA's shaping for Apple: 10 connections, 5 RCPTs a connection
  limits = { provider = { connections = 4, rcpt_per_session = 5 } },
  block = { "[cs01]", "[hm08]", "[hm07]" }, -- 554 5.7.1 ... rejected due to local policy
  replies = {
    { enhanced = "5.1.1", words = { "user does not exist" }, status = "undeliverable",
      reason = "mailbox_not_found" },
  },
}

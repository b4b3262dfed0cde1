-- zoho.lua — Zoho Mail (zoho.com, zohomail.com and custom domains): mail hosts under
-- zoho.com, zoho.eu, zohomail.com. SMTP: an unknown user is `550 5.1.1 User does not exist`
-- at RCPT. No catch-all probe for Zoho's own domains; one for custom domains.
-- docs/providers.md says why and how sure.

local provider = require "validora.provider"

return provider.rule {
  name = "zoho",
  match = { mx = { "*.zoho.com", "*.zoho.eu", "*.zohomail.com" } },
  consumer = { "zoho.com", "zohomail.com", "zoho.eu" },
  replies = {
    { enhanced = "5.1.1", words = { "user does not exist" }, status = "undeliverable",
      reason = "mailbox_not_found" },
  },
}

-- barracuda.lua — Barracuda Email Security (barracudanetworks.com, antispamcloud.com), in
-- front of company domains. SMTP with the catch-all probe. An unknown user is
-- `550 No such user (x)`; its replies may name Barracuda's own hosts, and the generic words
-- read "barracuda" as a block list: here only Barracuda's reputation wordings are a block.
-- docs/providers.md says why and how sure.

local provider = require "validora.provider"

return provider.rule {
  name = "barracuda",
  match = { mx = { "*.barracudanetworks.com", "*.antispamcloud.com" } },
  -- no published figure; one key for every customer behind Barracuda
  limits = { provider = { rcpt_per_minute = 600 } },
  block = { "barracuda reputation", "barracudacentral.org", "blocked using" },
  replies = {
    { code = 550, words = { "no such user" }, status = "undeliverable", reason = "mailbox_not_found" },
  },
}

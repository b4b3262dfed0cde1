-- proofpoint.lua — Proofpoint's gateways (pphosted.com, ppe-hosted.com), in front of
-- company domains. SMTP with the catch-all probe: many Proofpoint customers have no
-- recipient verification, and the gateway then takes every address. Its block replies point
-- at ipcheck.proofpoint.com. docs/providers.md says why and how sure.

local provider = require "validora.provider"

return provider.rule {
  name = "proofpoint",
  match = { mx = { "*.pphosted.com", "*.ppe-hosted.com" } },
  -- no published figure; one key for every customer behind Proofpoint
  limits = { provider = { rcpt_per_minute = 600 } },
  block = { "ipcheck.proofpoint.com", "proofpoint.com/dnsbl-lookup" },
  slow_down = { "too many concurrent smtp connections" },
  replies = {
    { enhanced = "5.1.1", words = { "user unknown" }, status = "undeliverable",
      reason = "mailbox_not_found" },
  },
}

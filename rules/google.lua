-- google.lua — Gmail and Google Workspace: mail hosts under google.com / googlemail.com.
-- SMTP is reliable here (an unknown Gmail user is a 550 5.1.1 at RCPT; the old gxlu HTTP
-- trick is dead), so the probe is the shared SMTP strategy, with:
--   * Gmail normalisation: for gmail.com and googlemail.com the record's address is the
--     canonical mailbox (dots and +tag dropped, lower case, googlemail.com -> gmail.com), and
--     RCPT asks for that;
--   * no catch-all probe for gmail.com / googlemail.com (Gmail takes no made-up names), one
--     for Workspace domains (their admins can route every address to a mailbox);
--   * Google's 5.7.x at RCPT is about the sender (policy, reputation, authentication), never
--     the mailbox.
-- docs/providers.md says why and how sure. Owns Google's data; the loop is validora/provider.lua,
-- the canonical form validora/canonical.lua.

local provider = require "validora.provider"
local canonical = require "validora.canonical"

return provider.rule {
  name = "google",
  match = { mx = { "*.google.com", "*.googlemail.com" } },
  consumer = { "gmail.com", "googlemail.com" },
  -- KumoMTA's shaping for Google: 5 connections, 50 RCPTs a connection (we stay at 4);
  -- an unknown user costs 3 tokens: Google counts them (directory harvesting).
  limits = { provider = { connections = 4, rcpt_per_session = 50, unknown_cost = 3 } },
  block = {
    "not authorized to send email directly",  -- 550 5.7.1: a dynamic/residential IP
    "very low reputation", "low reputation of the sending",
  },
  replies = {
    -- 421 4.7.0 IP not in whitelist for RCPT domain: a Workspace domain that takes mail only
    -- from its gateways; about us and that domain, not Google-wide, so no breaker
    { words = { "not in whitelist" }, status = "unknown", reason = "blocked", signal = "none" },
    { enhanced = "5.7", status = "unknown", reason = "blocked" },
  },
  address = function(job)
    local a = canonical.address(job.address)
    if a ~= job.address then job:set_address(a) end
    return a
  end,
}

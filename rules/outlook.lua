-- outlook.lua — Outlook.com consumer mail (outlook.com, hotmail.*, live.*, msn.com): mail
-- hosts under olc.protection.outlook.com. Tried before microsoft365.lua (priority), whose
-- patterns also match these hosts.
-- SMTP is reliable here: an unknown mailbox is `550 5.5.0 Requested action not taken: mailbox
-- unavailable` at RCPT, and consumer domains take no made-up names (no catch-all probe).
-- The Microsoft alternative check (GetCredentialType) is off unless `outlook` is named in
-- config.alt_checks. docs/providers.md says why and how sure.

local provider = require "validora.provider"
local alt = require "validora.alt"
local microsoft = require "validora.alt.microsoft"
local eop = require "validora.eop"

return provider.rule {
  name = "outlook",
  priority = 10,
  match = { mx = { "*.olc.protection.outlook.com" } },
  catch_all = false,
  -- KumoMTA's shaping for Outlook: 5 connections, 50 RCPTs a connection (we stay at 4);
  -- an unknown user costs 3 tokens: Microsoft lists IPs that probe (S3150).
  limits = { provider = { connections = 4, rcpt_per_session = 50, unknown_cost = 3 } },
  block = eop.block, slow_down = eop.slow_down, replies = eop.replies,
  before = function(job)
    if not alt.enabled("outlook") then return false end
    microsoft.check(job)
    return true
  end,
}

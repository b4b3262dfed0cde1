-- microsoft365.lua — Microsoft 365 (Exchange Online) tenants: mail hosts under
-- protection.outlook.com other than Outlook.com's (outlook.lua, tried first).
-- A tenant answers `250 2.1.5 Recipient OK` for any address unless Directory-Based Edge
-- Blocking is on, so SMTP alone often cannot tell. By default the Microsoft alternative check
-- (GetCredentialType, validora/alt/microsoft.lua) decides and no SMTP connection is made.
-- With the check off (config.alt_checks without microsoft365), SMTP with the catch-all probe:
-- DBEB's `550 5.4.1 Recipient address rejected: Access denied` is mailbox_not_found; a tenant
-- that takes the made-up address too is risky/catch_all. docs/providers.md says how sure.

local provider = require "validora.provider"
local alt = require "validora.alt"
local microsoft = require "validora.alt.microsoft"
local eop = require "validora.eop"

return provider.rule {
  name = "microsoft365",
  match = { mx = { "*.protection.outlook.com" } },
  -- the same servers as Outlook.com, the same figures (KumoMTA: 5 connections, 50 a
  -- connection); one provider key for every tenant: EOP sees all of them as one sender
  limits = { provider = { connections = 4, rcpt_per_session = 50, unknown_cost = 3 } },
  block = eop.block, slow_down = eop.slow_down, replies = eop.replies,
  before = function(job)
    if not alt.enabled("microsoft365") then return false end
    microsoft.check(job)
    return true
  end,
}

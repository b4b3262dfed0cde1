-- validora/eop.lua — Exchange Online Protection's reply wordings, shared by outlook.lua
-- (Outlook.com consumer mail) and microsoft365.lua (tenants): both sit behind the same
-- protection.outlook.com servers. Data only; the rules put it into validora/provider.lua.

local M = {}

-- Microsoft-wide: our IP or name is on its lists (S3150/S3140 and 5.7.606 are in
-- reputation.lua's generic words already).
M.block = { "banned sending ip", "banned sender", "part of their network is on our block list" }

-- 4.7.500-699 (reputation.lua knows the codes); the connection ceiling.
M.slow_down = { "maximum number of concurrent", "server busy. please try again later" }

-- Mailbox wordings, and the tenant-local refusals that must not open the breaker of every
-- tenant: a tenant's own block list is about us and that tenant only.
M.replies = {
  { words = { "customer block list" }, status = "unknown", reason = "blocked", signal = "none" },
  -- Outlook.com: an unknown consumer mailbox
  { enhanced = "5.5.0", words = { "mailbox unavailable" }, status = "undeliverable",
    reason = "mailbox_not_found" },
  -- the domain is not an accepted domain of the tenant
  { enhanced = "5.4.1", words = { "relay access denied" }, status = "undeliverable", reason = "rejected",
    signal = "none" },
  -- Directory-Based Edge Blocking: an unknown user of a tenant that turned it on
  { enhanced = "5.4.1", words = { "access denied" }, status = "undeliverable", reason = "mailbox_not_found" },
}

return M

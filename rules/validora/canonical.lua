-- validora/canonical.lua — the canonical form of an address: the one spelling of a mailbox
-- that a provider reaches by several. Gmail ignores dots and everything after a '+' in the
-- local part, and googlemail.com is gmail.com. Used by the google rule (the record's
-- `address`) and by scripts that de-duplicate a list before verifying it.
-- Does not own: syntax (the engine checked it), other providers' aliases (none are as
-- well-defined: Outlook's '+' is per-mailbox, Yahoo's '-' is a user's own base name).

local M = {}

-- Domains whose local parts Google reads without dots and +tags, and the domain they are.
M.GMAIL = { ["gmail.com"] = "gmail.com", ["googlemail.com"] = "gmail.com" }

-- The canonical form of addr ("local@domain"), or addr with its domain lower-cased when no
-- provider rule applies; addr as given when it has no '@'.
function M.address(addr)
  local lp, dom = string.match(addr, "^(.+)@([^@]+)$")
  if not lp then return addr end
  dom = string.lower(dom)
  local g = M.GMAIL[dom]
  if g and not string.find(lp, '^"') then
    -- "+tag@gmail.com" or ".@gmail.com" leave nothing: kept as given (no mailbox is "")
    local c = string.lower((string.gsub(string.gsub(lp, "%+.*$", ""), "%.", "")))
    if c ~= "" then return c .. "@" .. g end
  end
  return lp .. "@" .. dom
end

return M

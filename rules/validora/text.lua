-- validora/text.lua — small text helpers the rule modules share (reading reply texts and
-- HTTP bodies). Owns no policy: which words mean what lives in classify.lua, reputation.lua
-- and each provider's rule.

local M = {}

local find = string.find

-- Does text (already lower-cased) hold any of words (plain substrings, lower-case)?
function M.has_any(text, words)
  for _, w in ipairs(words) do
    if find(text, w, 1, true) then return true end
  end
  return false
end

return M

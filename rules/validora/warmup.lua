-- validora/warmup.lua — the warm-up curve: how many SMTP verifications a source IP may make
-- in one UTC day, by its age and its history. docs/reputation.md ("Warm-up budget") says why.
--
-- One verification is one address that opens its first SMTP session (retries, greylisting and
-- the catch-all probe of the same address are free; addresses decided before SMTP, by syntax
-- or DNS, cost nothing). The engine asks M.budget(age_days, history) once at start-up, at each
-- reload and when a new UTC day begins (it is a figure per source IP, not per provider):
--
--   age_days  whole days since the IP's first use in the ledger (0 on its first day;
--             `validora ledger set-age IP DAYS` records an older IP's real age)
--   history   what the ledger has seen from this IP:
--               blocks_today, deferrals_today   today (UTC)
--               blocks_30d, deferrals_30d       the last 30 UTC days, today included
--               blocks_total, deferrals_total   ever
--
-- and gets a whole number >= 0. To change the curve, ship your own validora/warmup.lua in a
-- later --rules directory (it replaces this file whole) or `require` this one and wrap it.
--
-- The curve (verifications a day):
--
--   age (days)                          budget    why
--   0 (the first day)                      100    a new IP is unknown: stay small
--   1                                      200
--   2                                      300
--   3                                      400
--   4                                      600
--   5                                      800
--   6                                    1,000    1,000 a day within the first week
--   7-13                                 1,500
--   14-20                                2,000
--   21-29                                2,500
--   30 and older                         3,300    about 100,000 a month after the first month
--   90 and older, no block in 30 days  100,000    only after months of clean history

local M = {}

-- { first age of the step, budget from that age on }, by age.
M.STEPS = {
  { 0, 100 }, { 1, 200 }, { 2, 300 }, { 3, 400 }, { 4, 600 }, { 5, 800 }, { 6, 1000 },
  { 7, 1500 }, { 14, 2000 }, { 21, 2500 }, { 30, 3300 },
}
M.SEASONED_AGE = 90      -- days of history before the full budget
M.SEASONED_BUDGET = 100000 -- given when history.blocks_30d is 0: no block in 30 days

-- The day's SMTP verifications for a source IP of this age and history.
function M.budget(age_days, history)
  local age = math.max(0, math.floor(tonumber(age_days) or 0))
  local h = history or {}
  if age >= M.SEASONED_AGE and (h.blocks_30d or 0) == 0 then return M.SEASONED_BUDGET end
  local n = M.STEPS[1][2]
  for _, step in ipairs(M.STEPS) do
    if age >= step[1] then n = step[2] end
  end
  return n
end

return M

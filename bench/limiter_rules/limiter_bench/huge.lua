-- limiter_bench/huge.lua — limits no run of bench/limiter_bench.sh comes near, for one scope
-- or for all of them (the shape of rule.limits: docs/rules.md).
local M = {}

local HUGE = 1e9

-- One scope's limits: every cap the limiter knows, far out of reach.
function M.scope()
  return { connections = HUGE, rcpt_per_session = HUGE, sessions_per_minute = HUGE,
           rcpt_per_minute = HUGE, rcpt_burst = HUGE, unknown_cost = 1,
           start_per_minute = HUGE } -- no gentle start: the bench measures bookkeeping
end

-- Every scope huge, but those given in over (scope -> limits, merged by
-- validora.reputation over its DEFAULT_LIMITS as any rule's limits are).
function M.limits(over)
  local out = {}
  for _, s in ipairs({ "provider", "mx", "network", "domain", "source_ip", "global" }) do
    out[s] = (over or {})[s] or M.scope()
  end
  return out
end

return M

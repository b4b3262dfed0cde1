-- validora/select.lua — chooses the rule for an address, and runs its probe.
--
-- The engine calls this file's function once per generation with the rules in file-name
-- order (default.lua left out) and the default rule; it returns the runner the engine calls
-- for each address as runner(job, domain, mx_names). The first rule whose match.domain fits
-- the domain, or whose match.mx fits an MX host name, wins (Lua patterns); default.lua when
-- none does.

local find = string.find

return function(rules, default)
  local function pick(domain, mxnames)
    for _, r in ipairs(rules) do
      local m = r.match or {}
      for _, p in ipairs(m.domain or {}) do
        if find(domain, p) then return r end
      end
      for _, p in ipairs(m.mx or {}) do
        for _, h in ipairs(mxnames) do
          if find(h, p) then return r end
        end
      end
    end
    return default
  end

  return function(job, domain, mxnames)
    local rule = pick(domain, mxnames)
    job:_provider(rule.name)
    return rule.probe(job)
  end
end

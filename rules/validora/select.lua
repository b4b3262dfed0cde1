-- validora/select.lua — which rule handles an address, in what order rules are tried, and
-- running the chosen rule's probe.
--
-- Rules are tried by `priority` (higher first; absent = 0), then in file-name order; the
-- first whose match.domain fits the domain, or whose match.mx fits one of the MX host names,
-- wins; default.lua when none does. Patterns are domain globs, matched case-insensitively
-- against the whole name: `*` stands for one or more characters (dots included), anything
-- else for itself. "gmail.com" is that domain only; "*.google.com" any name under google.com.

local M = {}

local lower, gsub, find = string.lower, string.gsub, string.find

-- Is p a pattern we accept? Returns true, or false and why.
function M.valid(p)
  if type(p) ~= "string" then return false, "a pattern must be a string" end
  if p == "" then return false, "an empty pattern matches nothing" end
  if find(p, "[^%w%.%-_%*%[%]:]") then
    return false, "pattern '" .. p .. "' may hold only letters, digits, '.', '-', '_', '*'"
      .. " (and [ ] : for address literals)"
  end
  if find(p, "%*%*") then return false, "pattern '" .. p .. "': '**' means nothing more than '*'" end
  return true
end

-- A domain glob as an anchored Lua pattern.
function M.compile(p)
  local q = gsub(lower(p), "[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0")
  return "^" .. gsub(q, "%*", ".+") .. "$"
end

local function compiled(list)
  local out = {}
  for i, p in ipairs(list or {}) do out[i] = { glob = p, lua = M.compile(p) } end
  return out
end

-- entries: { { rule = <table>, name = "gmail", file = "/…/gmail.lua" }, … } in file-name
-- order. Returns them in the order they are tried, each with its compiled patterns.
function M.order(entries)
  local out = {}
  for i, e in ipairs(entries) do
    local m = e.rule.match or {}
    out[i] = { rule = e.rule, name = e.name, file = e.file, index = i,
               priority = tonumber(e.rule.priority) or 0,
               domain = compiled(m.domain), mx = compiled(m.mx) }
  end
  table.sort(out, function(a, b)
    if a.priority ~= b.priority then return a.priority > b.priority end
    return a.index < b.index
  end)
  return out
end

-- The rule for domain and its MX host names, and why: { by = "domain" | "mx" | "default",
-- pattern = the glob, host = the MX host that matched }.
function M.pick(ordered, default, domain, mxnames)
  domain = lower(domain)
  for _, e in ipairs(ordered) do
    for _, p in ipairs(e.domain) do
      if find(domain, p.lua) then return e.rule, { by = "domain", pattern = p.glob, entry = e } end
    end
    for _, p in ipairs(e.mx) do
      for _, h in ipairs(mxnames) do
        if find(lower(h), p.lua) then
          return e.rule, { by = "mx", pattern = p.glob, host = h, entry = e }
        end
      end
    end
  end
  return default, { by = "default" }
end

-- How many (domain, MX names) choices the runner remembers: a list holds many addresses per
-- domain, and choosing walks every rule's patterns. Past it the memo starts again (a generation
-- is the memo's life: a reload makes a new runner).
M.PICK_MEMO = 4096

-- The function the engine calls for each address: runner(job, domain, mx_names).
function M.runner(ordered, default)
  local reputation = require "validora.reputation"
  for _, e in ipairs(ordered) do reputation.register(e.rule.name, e.rule) end
  reputation.register("default", default)
  -- A rule's limits over the defaults, once per rule: rules do not change within a generation.
  local limits = {}
  local memo, n = {}, 0
  return function(job, domain, mxnames)
    local key = domain .. "\0" .. table.concat(mxnames, "\0")
    local rule = memo[key]
    if not rule then
      rule = M.pick(ordered, default, domain, mxnames)
      if n >= M.PICK_MEMO then memo, n = {}, 0 end
      memo[key], n = rule, n + 1
    end
    local lim = limits[rule]
    if not lim then lim = reputation.limits(rule); limits[rule] = lim end
    job:_rule(rule.name, reputation.provider_key(rule, mxnames, job.server), lim)
    return rule.probe(job)
  end
end

return M

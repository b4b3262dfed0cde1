-- validora/check.lua — the shape of a rule file's table, checked when a generation loads
-- (and by `validora rules check`). A rule that does not pass keeps its whole generation from
-- becoming current.
--
-- check(rule) returns a list of problems, each { field = "match", msg = "..." }; empty when
-- the rule is well formed. What the fields mean: docs/rules.md.

local select_ = require "validora.select"

local M = {}

-- The fields a rule may have, and what each must be.
local FIELDS = {
  name = "string", probe = "function", match = "table", priority = "number",
  classify = "function", limits = "table", warmup = "table or function", signal = "function",
}

-- limits = { SCOPE = { KEY = number, ... }, ... }: the scopes and keys the limiter knows.
M.LIMIT_SCOPES = { provider = true, mx = true, network = true, domain = true, source_ip = true,
                   global = true, http = true }
-- limits.http: http.request's own key, http:<rule> (engine/lua_http.c).
M.HTTP_LIMIT_KEYS = {
  concurrency = true, -- requests in flight at once
  per_minute = true,  -- token bucket: refill rate (the adaptive rate's top)
  burst = true,       -- token bucket: size
}
M.LIMIT_KEYS = {
  connections = true,         -- concurrent sessions
  rcpt_per_session = true,    -- RCPTs on one session before it is closed
  sessions_per_minute = true, -- new sessions a minute
  rcpt_per_minute = true,     -- token bucket: refill rate
  rcpt_burst = true,          -- token bucket: size
  unknown_cost = true,        -- tokens an unknown-user reply costs (an accepted one costs 1)
  start_per_minute = true,    -- where a server with no history starts (default 60: gentle)
}

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  return keys
end

local function check_match(m, add)
  for _, k in ipairs(sorted_keys(m)) do
    if k ~= "domain" and k ~= "mx" then
      add("match", "unknown key '" .. k .. "' (match has domain and mx)")
    end
  end
  for _, k in ipairs({ "domain", "mx" }) do
    local list = m[k]
    if list ~= nil then
      if type(list) ~= "table" then
        add("match", "match." .. k .. " must be a list of patterns")
      else
        for i, p in ipairs(list) do
          local ok, why = select_.valid(p)
          if not ok then add("match", "match." .. k .. "[" .. i .. "]: " .. why) end
        end
        if #list == 0 then add("match", "match." .. k .. " is empty") end
        for key in pairs(list) do
          if math.type(key) ~= "integer" or key < 1 or key > #list then
            add("match", "match." .. k .. " must be a list (no other keys)")
            break
          end
        end
      end
    end
  end
end

local function check_limits(l, add)
  for _, scope in ipairs(sorted_keys(l)) do
    local t = l[scope]
    if not M.LIMIT_SCOPES[scope] then
      add("limits", "unknown scope '" .. scope
        .. "' (provider, mx, network, domain, source_ip, global or http)")
    elseif type(t) ~= "table" then
      add("limits", "limits." .. scope .. " must be a table")
    else
      local known = scope == "http" and M.HTTP_LIMIT_KEYS or M.LIMIT_KEYS
      for _, k in ipairs(sorted_keys(t)) do
        local v = t[k]
        if not known[k] then
          add("limits", "limits." .. scope .. ": unknown limit '" .. k .. "'")
        elseif type(v) ~= "number" or v < 0 or v ~= v or v == math.huge then
          add("limits", "limits." .. scope .. "." .. k .. " must be a number >= 0")
        end
      end
    end
  end
end

local function check_warmup(w, add)
  if type(w) == "function" then return end
  local last = 0
  for i, step in ipairs(w) do
    if type(step) ~= "table" or type(step[1]) ~= "number" or type(step[2]) ~= "number" then
      add("warmup", "warmup[" .. i .. "] must be { day, budget }")
    elseif step[1] <= last or step[1] ~= math.floor(step[1]) then
      add("warmup", "warmup[" .. i .. "]: days must be whole and rise (" .. step[1] .. ")")
    elseif step[2] < 0 then
      add("warmup", "warmup[" .. i .. "]: a budget cannot be negative")
    else
      last = step[1]
    end
  end
  if #w == 0 then add("warmup", "warmup must be a function of the IP's age, or { {day, budget}, ... }") end
end

function M.check(rule)
  local problems = {}
  local function add(field, msg) problems[#problems + 1] = { field = field, msg = msg } end
  if type(rule) ~= "table" then
    add(nil, "a rule file must return a table")
    return problems
  end
  for _, k in ipairs(sorted_keys(rule)) do
    local want = FIELDS[k]
    local t = type(rule[k])
    if not want then
      add(k, "unknown field '" .. k .. "'")
    elseif not string.find(want, t, 1, true) then
      add(k, "field '" .. k .. "' must be a " .. want .. ", not a " .. t)
    end
  end
  if type(rule.name) ~= "string" then
    add("name", "rule has no string 'name'")
  elseif not string.find(rule.name, "^[%w_%-]+$") then
    add("name", "name '" .. rule.name .. "' may hold only letters, digits, '_' and '-'")
  end
  if type(rule.probe) ~= "function" then add("probe", "rule has no function 'probe'") end
  if type(rule.match) == "table" then check_match(rule.match, add) end
  if type(rule.limits) == "table" then check_limits(rule.limits, add) end
  if type(rule.warmup) == "table" or type(rule.warmup) == "function" then check_warmup(rule.warmup, add) end
  return problems
end

return M

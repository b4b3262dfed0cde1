-- validora/alt.lua — what the alternative checks (validora/alt/*.lua) share: whether a rule's
-- check is switched on (config.alt_checks), one HTTP call with its failures sorted into kinds,
-- the verdict of each kind (never a guess: anything short of a clear answer is unknown), and
-- form encoding.
-- Owns no provider's protocol (alt/microsoft.lua, alt/yahoo.lua) and no SMTP.

local M = {}

local lower, gsub, format, byte = string.lower, string.gsub, string.format, string.byte

-- The names in config.alt_checks: a list, or a comma list in a string ("none" = empty).
local function names()
  local v = config.alt_checks
  local out = {}
  if type(v) == "table" then
    for _, n in ipairs(v) do out[#out + 1] = lower(tostring(n)) end
  elseif type(v) == "string" then
    for n in string.gmatch(v, "[^,%s]+") do out[#out + 1] = lower(n) end
  end
  return out
end

-- Is the alternative check of the rule `name` switched on?
function M.enabled(name)
  for _, n in ipairs(names()) do
    if n == "none" then return false end
    if n == name then return true end
  end
  return false
end

-- One HTTP request: resp (a 2xx), or nil, kind, detail with kind one of
--   "deferred"   the breaker of the rule's HTTP key is open (nothing was sent)
--   "throttled"  HTTP 429
--   "blocked"    HTTP 403: the endpoint refuses us
--   "error"      no answer (timeout, TLS, connect, a malformed response) or another status
-- what names the step in the detail ("Yahoo sign-up page").
function M.request(what, req)
  local resp, err, detail = http.request(req)
  if not resp then
    if err == errors.deferred then return nil, "deferred", what .. ": " .. tostring(detail) end
    return nil, "error", what .. ": " .. tostring(err) .. (detail and (": " .. tostring(detail)) or "")
  end
  local st = resp.status
  if st == 429 then return nil, "throttled", what .. ": HTTP 429" end
  if st == 403 then return nil, "blocked", what .. ": HTTP 403" end
  if type(st) ~= "number" or st < 200 or st > 299 then
    return nil, "error", what .. ": HTTP " .. tostring(st)
  end
  return resp
end

-- What each kind of answer makes of the address, and what it tells the HTTP key's rate.
--   exists / not_found  a clear answer: deliverable/accepted, undeliverable/mailbox_not_found
--   throttled           unknown/alt_throttled, and the rate slows down
--   blocked             unknown/blocked, and the key's breaker opens
--   ambiguous           unknown/alt_ambiguous: the answer cannot tell
--   error               unknown/alt_error: unavailable, malformed, not understood
--   deferred            unknown/deferred: held back to protect us, for a later run
M.VERDICTS = {
  exists = { "deliverable", "accepted", "ok" },
  not_found = { "undeliverable", "mailbox_not_found", "ok" },
  throttled = { "unknown", "alt_throttled", "slow_down" },
  blocked = { "unknown", "blocked", "block" },
  ambiguous = { "unknown", "alt_ambiguous" },
  error = { "unknown", "alt_error" },
  deferred = { "unknown", "deferred" },
}

-- Sets the verdict of kind, with detail as the record's detail.
function M.verdict(job, kind, detail)
  local v = M.VERDICTS[kind] or M.VERDICTS.error
  if v[3] then http.signal(v[3]) end
  return job[v[1]](job, v[2], detail)
end

local function enc(s)
  return (gsub(tostring(s), "[^%w%-%._~]", function(c) return format("%%%02X", byte(c)) end))
end

-- application/x-www-form-urlencoded, from a list of { name, value } (kept in order).
function M.form(fields)
  local parts = {}
  for i, f in ipairs(fields) do parts[i] = enc(f[1]) .. "=" .. enc(f[2]) end
  return table.concat(parts, "&")
end

return M

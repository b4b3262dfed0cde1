-- validora/alt/microsoft.lua — the Microsoft alternative check: ask the login service's
-- GetCredentialType (config.microsoft_credential_url) whether an account exists, without
-- touching the tenant's mail servers. docs/providers.md says what each answer means.
--
--   IfExistsResult 0  an account exists, unless the domain answers 0 for everyone (federated
--                     tenants do): before a 0 is trusted, a made-up address of the same domain
--                     is asked about, once per domain and run; a 0 for it too is ambiguous
--   IfExistsResult 1  no such account
--   5, 6              another identity provider, a domain hint: ambiguous
--   ThrottleStatus    set (non-zero): the answer cannot be trusted (Microsoft is reported to
--                     feed false answers when it throttles): throttled
--   anything else     not JSON, no IfExistsResult, another value: an error
-- Owns the request and the reading of its answer; not the verdicts (validora/alt.lua) nor
-- when the check runs (rules/microsoft365.lua, rules/outlook.lua).

local alt = require "validora.alt"

local M = {}

local WHAT = "Microsoft GetCredentialType"

-- The JSON body the login page posts (only Username matters to the answer).
function M.body(address)
  return json.encode({
    Username = address, isOtherIdpSupported = true, checkPhones = false,
    isRemoteNGCSupported = true, isCookieBannerShown = false, isFidoSupported = true,
    originalRequest = "", flowToken = "",
  })
end

local function integer(v)
  if math.type(v) == "integer" then return v end
  if math.type(v) == "float" and v == math.floor(v) then return math.tointeger(v) end
  return nil
end

local RESULTS = {
  [0] = { "exists", "IfExistsResult 0: an account exists" },
  [1] = { "not_found", "IfExistsResult 1: no such account" },
  [5] = { "ambiguous", "IfExistsResult 5: the name belongs to another identity provider" },
  [6] = { "ambiguous", "IfExistsResult 6: a domain hint, not an answer about the account" },
}

-- What an answer's body says: kind ("exists", "not_found", "throttled", "ambiguous",
-- "error"), detail.
function M.read(body)
  local v, _, why = json.decode(body)
  if type(v) ~= "table" then
    return "error", "the answer is not a JSON object" .. (why and (" (" .. tostring(why) .. ")") or "")
  end
  local throttle = v.ThrottleStatus
  if throttle ~= nil and throttle ~= json.null and throttle ~= 0 and throttle ~= false then
    return "throttled", "ThrottleStatus " .. tostring(throttle) .. ": the answer cannot be trusted"
  end
  local r = integer(v.IfExistsResult)
  local known = r and RESULTS[r]
  if not known then
    return "error", "IfExistsResult " .. tostring(v.IfExistsResult) .. " is not an answer we know"
  end
  if r == 0 and type(v.EstsProperties) == "table" and integer(v.EstsProperties.DomainType) == 4 then
    return "ambiguous", "IfExistsResult 0 from a federated domain (DomainType 4): it says so for everyone"
  end
  return known[1], known[2]
end

-- Asks about one address: kind, detail.
function M.ask(address)
  local resp, kind, detail = alt.request(WHAT, {
    method = "POST", url = config.microsoft_credential_url,
    headers = { ["Content-Type"] = "application/json; charset=UTF-8", ["Accept"] = "application/json" },
    body = M.body(address),
  })
  if not resp then return kind, detail end
  kind, detail = M.read(resp.body)
  return kind, WHAT .. ": " .. detail
end

-- Why the last control question of a domain got no answer, for the jobs that waited for it.
local control_failure = {}

-- Does the domain answer "exists" for a made-up address? "managed" (no: a 0 can be trusted),
-- "everyone" (yes), or nil, kind, detail when the question got no clear answer (not kept:
-- a later job asks again).
local function control(job)
  local domain = string.lower(job.domain)
  local v = job:once("microsoft_control:" .. domain, function()
    local kind, detail = M.ask(job:random_local() .. "@" .. domain)
    if kind == "not_found" then return "managed" end
    if kind == "exists" or kind == "ambiguous" then return "everyone" end
    control_failure[domain] = { kind, detail .. " (asked about a made-up address of the domain)" }
    return nil
  end)
  if v then return v end
  local f = control_failure[domain]
    or { "error", WHAT .. ": the question about a made-up address of the domain failed" }
  return nil, f[1], f[2]
end

-- The check: sets the verdict of job.address from GetCredentialType.
function M.check(job)
  local kind, detail = M.ask(job.address)
  if kind == "exists" then
    local c, ckind, cdetail = control(job)
    if c == "everyone" then
      kind, detail = "ambiguous", WHAT .. ": IfExistsResult 0, but the domain answers 0 for a "
        .. "made-up address too (a federated tenant): it cannot tell"
    elseif not c then
      kind, detail = ckind, cdetail
    end
  end
  return alt.verdict(job, kind, detail)
end

return M

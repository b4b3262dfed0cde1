-- validora/alt/yahoo.lua — the Yahoo alternative check: Yahoo's sign-up form says whether a
-- Yahoo ID is taken. A GET of the sign-up page (config.yahoo_signup_url) gives the cookies
-- (kept in the job's jar) and the page's `acrumb` and `sessionIndex`; a form POST to
-- config.yahoo_validate_url with userId = the local part gives the answer:
--
--   errors[] holds userId IDENTIFIER_EXISTS or IDENTIFIER_NOT_AVAILABLE  taken: exists
--   errors[] holds another userId error      the form cannot ask about this name: ambiguous
--   errors[] holds no userId error           free: no such account
--   429, 403, not JSON, no errors list, a page without the two fields: throttled / blocked /
--   error (validora/alt.lua)
-- Only for yahoo.com addresses (rules/yahoo.lua decides). docs/providers.md says how sure.
-- Owns the two requests and the reading of the page and the answer; not the verdicts.

local alt = require "validora.alt"

local M = {}

local lower, find, match, gmatch = string.lower, string.find, string.match, string.gmatch

M.TAKEN = { IDENTIFIER_EXISTS = true, IDENTIFIER_NOT_AVAILABLE = true }

-- The value of attribute attr in one HTML tag ('"' or "'" quoted), or nil.
local function attribute(tag, attr)
  local _, v = match(tag, "[%s<]" .. attr .. "%s*=%s*([\"'])(.-)%1")
  return v
end

-- The hidden inputs acrumb and sessionIndex of the sign-up page, in either attribute order.
function M.fields(html)
  local found = {}
  for tag in gmatch(html or "", "<[Ii][Nn][Pp][Uu][Tt][^>]*>") do
    local name = attribute(tag, "name")
    if name == "acrumb" or name == "sessionIndex" then found[name] = attribute(tag, "value") end
  end
  return found.acrumb, found.sessionIndex
end

-- Can the sign-up form ask about this local part? Yahoo IDs start with a letter and hold
-- letters, digits, '.' and '_' (a '-' is a disposable address, base-keyword@yahoo.com).
function M.askable(local_part)
  return find(local_part, "^%a[%w%._]*$") ~= nil and #local_part <= 64
end

-- What the validation answer says: kind, detail.
function M.read(body)
  local v, _, why = json.decode(body)
  if type(v) ~= "table" then
    return "error", "the answer is not a JSON object" .. (why and (" (" .. tostring(why) .. ")") or "")
  end
  if type(v.errors) ~= "table" then return "error", "the answer has no errors list" end
  for _, e in ipairs(v.errors) do
    if type(e) == "table" and e.name == "userId" then
      if M.TAKEN[e.error] then return "exists", "the Yahoo ID is taken (" .. e.error .. ")" end
      return "ambiguous", "the form refuses the name for another reason (" .. tostring(e.error) .. ")"
    end
  end
  return "not_found", "the Yahoo ID is free: no such account"
end

-- The check: sets the verdict of job.address (a yahoo.com address).
function M.check(job)
  local id = lower(job.local_part)
  if not M.askable(id) then
    return alt.verdict(job, "ambiguous", "Yahoo sign-up: '" .. id .. "' is not a name the form can ask about")
  end
  local page, kind, detail = alt.request("Yahoo sign-up page", {
    method = "GET", url = config.yahoo_signup_url, headers = { ["Accept"] = "text/html" },
  })
  if not page then return alt.verdict(job, kind, detail) end
  local acrumb, session = M.fields(page.body)
  if not acrumb or not session then
    return alt.verdict(job, "error", "Yahoo sign-up page: no acrumb and sessionIndex in it (changed?)")
  end
  local resp
  resp, kind, detail = alt.request("Yahoo userId validation", {
    method = "POST", url = config.yahoo_validate_url,
    headers = {
      ["Content-Type"] = "application/x-www-form-urlencoded; charset=UTF-8",
      ["Accept"] = "application/json", ["X-Requested-With"] = "XMLHttpRequest",
      ["Referer"] = config.yahoo_signup_url,
    },
    body = alt.form({ { "specId", "yidreg" }, { "acrumb", acrumb }, { "sessionIndex", session },
                      { "userId", id } }),
  })
  if not resp then return alt.verdict(job, kind, detail) end
  kind, detail = M.read(resp.body)
  return alt.verdict(job, kind, "Yahoo sign-up: " .. detail)
end

return M

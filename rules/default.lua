-- default.lua — the generic probing strategy, used for every address no other rule matches.
-- The reply classifier lives in validora/classify.lua; `default.classify` is the same
-- function, for rules that `require "default"`.

local classify = require "validora.classify"

local M = { name = "default", classify = classify.classify }

-- A failure to get a session: map the transport error (or the refusing reply) to a verdict.
local function session_failed(job, err, detail)
  if type(detail) == "table" then
    local status, reason = M.classify(detail)
    if reason ~= "blocked" then status, reason = "unknown", "smtp_error" end
    return job[status](job, reason, detail)
  end
  if err == errors.timeout or err == errors.connect_failed or err == errors.protocol_error then
    return job:unknown(err, detail)
  end
  return job:unknown("smtp_error", detail)
end

-- Is the domain accepting every address? Asked once per domain and run, on the session we
-- already have; concurrent jobs of the same domain wait for the one answer.
local function catch_all(job, s)
  return job:once("catch_all:" .. job.domain, function()
    local r = s:rcpt(job:random_local() .. "@" .. job.domain)
    if not r then return nil end
    if r.code >= 200 and r.code < 300 then return true end
    if r.code >= 500 then return false end
    return nil
  end)
end

function M.probe(job)
  local tries, rate_tries, dropped = 0, 0, 0
  while true do
    local s, err, detail = job:smtp()
    if not s then
      -- the provider has blocked us and the policy is to defer: a later run redoes it
      if err == errors.deferred then return job:unknown("deferred", nil, detail) end
      return session_failed(job, err, detail)
    end
    local r, rerr, rdetail = s:rcpt(job.address)
    if not r then
      s:release(false)
      -- A kept session the server dropped meanwhile: ask once more on a fresh one.
      local lost = rerr == errors.connection_closed or rerr == errors.busy
      if lost and dropped == 0 then
        dropped = 1
        goto continue
      end
      -- dropped twice in a row: the server will not hold a session for us
      return job:unknown(lost and "protocol_error" or rerr, rdetail)
    end
    local status, reason, retry = M.classify(r)
    if retry and reason == "throttled" then
      -- A rate deferral is not greylisting: the engine has already lowered the rate for this
      -- provider and MX; ask again at once, and the next RCPT waits for its (slower) turn.
      rate_tries = rate_tries + 1
      s:release()
      if rate_tries >= config.rate_deferral_tries then
        return job:unknown("deferred", r, "the server kept deferring us for our rate")
      end
    elseif retry then
      tries = tries + 1
      s:release()
      if tries >= config.greylist_tries then
        return job:unknown("greylisted", r)
      end
      sleep(config.greylist_delay)
    elseif status == "deliverable" then
      local all = catch_all(job, s)
      if all ~= nil then job:set("catch_all", all) end
      if all then return job:risky("catch_all", r) end
      return job:deliverable("accepted", r)
    else
      return job[status](job, reason, r)
    end
    ::continue::
  end
end

return M

-- httpcheck.lua — a tiny rule that exercises http.request, http.signal and json through
-- `validora rules test`'s HTTP playback (tests/rules_http/tests). Not shipped: it asks
-- config.microsoft_credential_url the way an alternative check would, for the domain
-- httpcheck.test only, and never opens an SMTP session.

local M = {
  name = "httpcheck",
  match = { domain = { "httpcheck.test" } },
  limits = { http = { concurrency = 1, per_minute = 600, burst = 5 } },
}

function M.probe(job)
  local r, err, detail = http.request {
    method = "POST",
    url = config.microsoft_credential_url,
    headers = { ["Content-Type"] = "application/json" },
    body = json.encode({ Username = job.address }),
    timeout = 2,
  }
  if not r then
    if err == errors.deferred then return job:unknown("deferred", nil, detail) end
    return job:unknown("alt_error", nil, err .. ": " .. tostring(detail))
  end
  if r.status == 429 then
    http.signal("slow_down")
    return job:unknown("alt_throttled", nil, r.headers["retry-after"])
  end
  local v, jerr, jdetail = json.decode(r.body)
  if not v then return job:unknown("alt_error", nil, jerr .. ": " .. jdetail) end
  if v.ThrottleStatus ~= nil and v.ThrottleStatus ~= json.null and v.ThrottleStatus ~= 0 then
    return job:unknown("alt_throttled")
  end
  http.signal("ok")
  if v.IfExistsResult == 0 then return job:deliverable("accepted") end
  if v.IfExistsResult == 1 then return job:undeliverable("mailbox_not_found") end
  return job:unknown("alt_ambiguous")
end

return M

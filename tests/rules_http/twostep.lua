-- twostep.lua — a two-step flow like Yahoo's sign-up check (tests/rules_http/tests): a GET
-- whose Set-Cookie the probe's jar keeps, then a POST that must carry it back. A 403 says
-- the endpoint has had enough of us: http.signal("block") opens the key's breaker, and the
-- next request of the run is deferred at once. Domain twostep.test; not shipped.

local M = {
  name = "twostep",
  match = { domain = { "twostep.test" } },
  limits = { http = { concurrency = 1, per_minute = 600, burst = 5 } },
}

function M.probe(job)
  local page, err, detail = http.request { url = config.yahoo_signup_url }
  if not page then
    if err == errors.deferred then return job:unknown("deferred", nil, detail) end
    return job:unknown("alt_error", nil, err)
  end
  if page.status == 403 then
    http.signal("block")
    return job:unknown("blocked")
  end
  local crumb = page.body:match('name="acrumb" value="([^"]+)"')
  if not crumb then return job:unknown("alt_error", nil, "no acrumb") end
  local r = http.request {
    method = "POST", url = config.yahoo_validate_url,
    headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
    body = "acrumb=" .. crumb .. "&userId=" .. job.local_part,
  }
  if not r then return job:unknown("alt_error") end
  local v = json.decode(r.body)
  if not v then return job:unknown("alt_error") end
  for _, e in ipairs(v.errors or {}) do
    if e.error == "IDENTIFIER_EXISTS" then return job:deliverable("accepted") end
  end
  return job:undeliverable("mailbox_not_found")
end

return M

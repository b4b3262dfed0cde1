-- replycheck.lua — a reply is read once (issue 18): every reply a rule gets carries the
-- engine's one reading of it, reply.signal (the rule's own `signal` first, then
-- validora.reputation's; "none" when it says nothing of ours), the reading the limiter heard,
-- and validora.classify reads it instead of reading the reply again. Run by
-- tests/rules_http/tests/reply-signal.lua: deliverable when every check holds, else
-- unknown/rule_error naming the first that failed. Domain replycheck.test only.

local classify = require "validora.classify"

local M = { name = "replycheck", match = { domain = { "replycheck.test" } } }

-- The rule's own reading comes first: a refusal that says "ours" is about us (a block),
-- whatever else it says.
function M.signal(r)
  if r.code >= 500 and string.find(r.text, "ours", 1, true) then return "block" end
  return nil
end

-- reply i: the signal it must carry, and what classify must make of it
local WANT = {
  { "ok", "deliverable", "accepted" },
  { "unknown_user", "undeliverable", "mailbox_not_found" },
  { "none", "unknown", "greylisted" },
  { "block", "unknown", "blocked" }, -- a 5.1.1 the rule's signal reads as ours: not "not found"
}

local function checks(job)
  local s, err = job:smtp()
  if not s then return "no session: " .. tostring(err) end
  for i, w in ipairs(WANT) do
    local r, rerr = s:rcpt("u" .. i .. "@" .. job.domain)
    if not r then return "RCPT " .. i .. ": " .. tostring(rerr) end
    if r.signal ~= w[1] then
      return string.format("RCPT %d: reply.signal %s, want %s", i, tostring(r.signal), w[1])
    end
    local status, reason = classify.classify(r)
    if status ~= w[2] or reason ~= w[3] then
      return string.format("RCPT %d: classify %s/%s, want %s/%s", i, status, reason, w[2], w[3])
    end
  end
  s:release()
  return nil
end

function M.probe(job)
  local failed = checks(job)
  if failed then return job:unknown("rule_error", nil, "reply check failed: " .. failed) end
  return job:deliverable("accepted")
end

return M

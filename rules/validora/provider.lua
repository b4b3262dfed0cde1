-- validora/provider.lua — the SMTP strategy every rule shares (default.lua and each provider
-- rule in rules/), and a rule built from a provider's data.
--
-- The strategy: one RCPT for the address on a pooled session; greylisting waited out and
-- rate deferrals asked again, both within bounds; a kept session the server dropped asked
-- again once on a fresh one; after an accept, the catch-all probe (a random local part),
-- once per domain and run, where the rule says it makes sense.
--
-- M.rule(spec) makes a rule table (docs/rules.md) from:
--   name, match, priority, limits  as any rule's
--   block = { words }       the provider's wordings that say *we* are blocked (signal "block")
--   slow_down = { words }   its rate-deferral wordings (signal "slow_down")
--   replies = { entry... }  its own reply wordings, read before the generic classifier; an
--                           entry is { code =, enhanced =, words = { any of }, status =,
--                           reason = [, retry = true] [, signal = ...] } (code, enhanced and
--                           words optional; enhanced compares whole components: "5.7"
--                           matches 5.7.1; the signal follows the reason: blocked -> "block",
--                           throttled -> "slow_down", mailbox_not_found -> "unknown_user";
--                           `signal` overrides it, "none" for none)
--   catch_all = false       never run the catch-all probe (default: run it)
--   consumer = { domains }  domains known to take only real mailboxes: no catch-all probe
--   address = fn(job)       the address RCPT asks for (default job.address)
--   before = fn(job)        a step before SMTP (alternative checks); returns true when it set
--                           the verdict, and then no SMTP connection is made
-- Owns the loop and how a spec becomes a rule. Not the meaning of a reply (classify.lua,
-- reputation.lua and the spec's wordings), nor any HTTP step (validora/alt/*).

local classify = require "validora.classify"
local has_any = require("validora.text").has_any

local M = {}

local lower, sub = string.lower, string.sub

-- Does the enhanced code enh start with the whole components of want ("5.7" ~ "5.7.1")?
local function enhanced_is(enh, want)
  if enh == want then return true end
  return sub(enh, 1, #want + 1) == want .. "."
end

local function entry_fits(e, r, text)
  if e.code and e.code ~= r.code then return false end
  if e.enhanced and not enhanced_is(r.enhanced or "", e.enhanced) then return false end
  if e.words and not has_any(text, e.words) then return false end
  return true
end

-- The signal a verdict reason stands for. A `replies` entry states a verdict; the reading the
-- engine takes of the reply (once, as it arrives: this rule's `signal`, below) follows the
-- verdict's reason, so what the limiter hears agrees with the verdict. An entry's `signal`
-- overrides it ("none": the reply is about nothing of ours, and the generic
-- reputation.signal is not asked).
local SIGNAL_OF = { blocked = "block", throttled = "slow_down", mailbox_not_found = "unknown_user" }

local BLOCKED = { status = "unknown", reason = "blocked" }
local THROTTLED = { status = "unknown", reason = "throttled", retry = true }

-- The provider's reading of a reply (an entry, or BLOCKED / THROTTLED), or nil.
local function own_reading(spec, r)
  local code = r.code or 0
  if code < 400 then return nil end
  local text = lower(r.text or "")
  if spec.block and has_any(text, spec.block) then return BLOCKED end
  if spec.slow_down and code < 500 and has_any(text, spec.slow_down) then return THROTTLED end
  for _, e in ipairs(spec.replies or {}) do
    if entry_fits(e, r, text) then return e end
  end
  return nil
end

-- classify(reply) -> status, reason, retry: the provider's wordings, then the generic ones.
function M.classifier(spec)
  if not (spec.block or spec.slow_down or spec.replies) then return classify.classify end
  return function(r)
    local e = own_reading(spec, r)
    if e then return e.status, e.reason, e.retry == true end
    return classify.classify(r)
  end
end

-- signal(reply, at_connect): what the provider's own wordings say about us; nil leaves it to
-- reputation.signal (the engine reads every reply once, the rule's signal first, and hands the
-- reading to classify as reply.signal).
function M.signaller(spec)
  if not (spec.block or spec.slow_down or spec.replies) then return nil end
  return function(r)
    local e = own_reading(spec, r)
    if not e then return nil end
    if e.signal ~= nil then return e.signal end
    return SIGNAL_OF[e.reason]
  end
end

-- A failure to get a session: map the transport error (or the refusing reply) to a verdict.
local function session_failed(job, classify_fn, err, detail)
  if type(detail) == "table" then
    local status, reason = classify_fn(detail)
    if reason ~= "blocked" then status, reason = "unknown", "smtp_error" end
    return job[status](job, reason, detail)
  end
  if err == errors.timeout or err == errors.connect_failed or err == errors.protocol_error
    or err == errors.forbidden_destination then
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

-- Does the catch-all probe make sense for this job's domain?
local function probes_catch_all(spec, job)
  if spec.catch_all == false then return false end
  local d = lower(job.domain)
  for _, c in ipairs(spec.consumer or {}) do
    if d == c then return false end
  end
  return true
end

-- The SMTP probe: asks RCPT for addr and sets the verdict.
function M.smtp(job, addr, classify_fn, probe_catch_all)
  local tries, rate_tries, dropped = 0, 0, 0
  while true do
    local s, err, detail = job:smtp()
    if not s then
      -- the provider has blocked us and the policy is to defer: a later run redoes it
      if err == errors.deferred then return job:unknown("deferred", nil, detail) end
      -- Refused at connect for our pace (too many connections, or a bare 421: a server
      -- protecting itself): the engine has lowered the connections and new sessions of this
      -- server; ask again, and the session waits for its (slower) turn.
      if type(detail) == "table" and detail.code == 421 then
        local _, why = classify_fn(detail)
        if why == "throttled" or why == "temporary_failure" then
          rate_tries = rate_tries + 1
          if rate_tries >= config.rate_deferral_tries then
            return job:unknown("deferred", detail, "the server kept refusing our connections")
          end
          goto continue
        end
      end
      return session_failed(job, classify_fn, err, detail)
    end
    local r, rerr, rdetail = s:rcpt(addr)
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
    local status, reason, retry = classify_fn(r)
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
      local all = nil
      if probe_catch_all then all = catch_all(job, s) end
      if all ~= nil then job:set("catch_all", all) end
      if all then return job:risky("catch_all", r) end
      return job:deliverable("accepted", r)
    else
      return job[status](job, reason, r)
    end
    ::continue::
  end
end

local SPEC_FIELDS = {
  name = true, match = true, priority = true, limits = true, block = true, slow_down = true,
  replies = true, catch_all = true, consumer = true, address = true, before = true,
}
local ENTRY_FIELDS = { code = true, enhanced = true, words = true, status = true, reason = true,
                       retry = true, signal = true }
local STATUSES = { deliverable = true, undeliverable = true, risky = true, unknown = true }

-- A misspelt field is an error at load (the rule file's line), never silently ignored: an
-- entry whose `words` were misspelt would match every refusal.
local function check_spec(spec)
  for k in pairs(spec) do
    if not SPEC_FIELDS[k] then error("provider.rule: unknown field '" .. tostring(k) .. "'", 3) end
  end
  for i, e in ipairs(spec.replies or {}) do
    for k in pairs(e) do
      if not ENTRY_FIELDS[k] then
        error("provider.rule: replies[" .. i .. "]: unknown field '" .. tostring(k) .. "'", 3)
      end
    end
    if not STATUSES[e.status] or type(e.reason) ~= "string" then
      error("provider.rule: replies[" .. i .. "] needs a status and a reason", 3)
    end
  end
end

-- A rule table from a provider's data (the fields above).
function M.rule(spec)
  check_spec(spec)
  local classify_fn = M.classifier(spec)
  local rule = {
    name = spec.name, match = spec.match, priority = spec.priority, limits = spec.limits,
    classify = classify_fn, signal = M.signaller(spec),
  }
  function rule.probe(job)
    if spec.before and spec.before(job) then return end
    local addr = spec.address and spec.address(job) or job.address
    return M.smtp(job, addr, classify_fn, probes_catch_all(spec, job))
  end
  return rule
end

return M

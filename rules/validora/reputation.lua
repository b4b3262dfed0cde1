-- validora/reputation.lua — what protects the sender's IP, as data the engine enforces:
-- the default limits of every scope, and what a reply says about *us* (a signal).
--
-- The engine charges every session and RCPT to keys (the provider, the server: the MX address
-- we connect to, its network, the destination domain, the source IP, everything) and shapes
-- them by these limits; every reply is read once (signal_for) and it adapts: "slow_down" lowers
-- the pace of that provider, server and network at once, "block" opens the provider's circuit
-- breaker, "unknown_user" costs more tokens.
-- A rule may bring its own `limits` (merged over these) and its own `signal` (tried first).
-- docs/reputation.md says why each default is what it is.

local has_any = require("validora.text").has_any

local M = {}

local find, lower = string.find, string.lower

-- Defaults, safe for a server nobody has configured. These are caps: connections and
-- rcpt_per_minute are the most the adaptive pace may climb to. A provider, server or network
-- we have no history with starts at one connection and about one RCPT a second and grows
-- while it stays quiet; what it allowed is remembered in the ledger (engine/limiter.c). A
-- burst of 5 keeps a server that counts over a window from seeing a spike; 30 sessions a
-- minute stays under half of Postfix anvil's usual connection-rate limits (sessions reused
-- from the pool do not count). `mx` is the server: the address we connect to, shared by every
-- MX name and domain on it; `network` is its /24 (IPv4) or /64 (IPv6), which block lists
-- and providers often judge as one. docs/reputation.md says why each figure is what it is.
M.DEFAULT_LIMITS = {
  provider = { connections = 4, rcpt_per_session = 50, sessions_per_minute = 30,
               rcpt_per_minute = 900, rcpt_burst = 5, unknown_cost = 2 },
  mx = { connections = 4, rcpt_per_session = 50, sessions_per_minute = 30,
         rcpt_per_minute = 900, rcpt_burst = 5, unknown_cost = 2 },
  network = { connections = 8, sessions_per_minute = 60, rcpt_per_minute = 1800,
              rcpt_burst = 10, unknown_cost = 2 },
  domain = { connections = 8, rcpt_per_minute = 900, rcpt_burst = 5, unknown_cost = 2 },
  source_ip = { connections = 64, rcpt_per_minute = 6000, rcpt_burst = 100 },
  global = { connections = 256, rcpt_per_minute = 12000, rcpt_burst = 200 },
  -- http.request's key http:<rule> (an alternative check's endpoint). Hard on purpose:
  -- Microsoft is reported to answer GetCredentialType with false results (everyone exists)
  -- once a client has asked many times, and Yahoo's sign-up form is watched for bots. Two at
  -- once, a burst of two, at most 20 a minute (the adaptive rate starts at half and climbs
  -- while the endpoint stays quiet); http.signal("slow_down") halves it, "block" opens the
  -- breaker. A rule may ask for less, and should not ask for more.
  http = { concurrency = 2, per_minute = 20, burst = 2 },
}

-- The rule's limits over the defaults, scope by scope.
function M.limits(rule)
  local out = {}
  for scope, d in pairs(M.DEFAULT_LIMITS) do
    local t = {}
    for k, v in pairs(d) do t[k] = v end
    -- source_ip and global are keys every rule shares: a rule that sets them sets them for
    -- all (the last rule to ask wins), so set them alike in every rule, or not at all.
    for k, v in pairs((rule.limits or {})[scope] or {}) do t[k] = v end
    out[scope] = t
  end
  return out
end

-- "Slow down": rate deferrals. Postfix anvil, Gmail, Microsoft, generic 4.7.x wordings.
M.SLOW_DOWN_WORDS = {
  "too many connections", "too many recipients", "unusual rate",
  "receiving mail at a rate", "server busy", "rate limited", "rate limit", "slow down",
  "too many messages", "too many concurrent", "temporarily rate",
}
-- Not "try again later" alone: greylisters say exactly that ("451 4.7.1 Please try again
-- later"), and reading a greylist as a rate deferral would retry at once until the tries run
-- out instead of waiting the greylist out. With "rate" or "too many" beside it, it is one.
M.SLOW_DOWN_CODES = { ["4.7.28"] = true, ["4.7.500"] = true, ["4.7.650"] = true,
                      ["4.7.651"] = true }

-- "We don't like you": block lists, reputation, banned IPs. Yahoo's TSS04 is a deferral in
-- form but a suspension in fact (KumoMTA suspends Yahoo 2 h on it).
M.BLOCK_WORDS = {
  "spamhaus", "spamcop", "barracuda", "sorbs", "dnsbl", "blocked using", "listed at",
  "listed on", "listed in", "blocklist", "block list", "blacklist", "poor reputation",
  "bad reputation", "ip reputation", "sender reputation", "banned sending ip", "s3150", "s3140",
  "ipcheck.proofpoint.com", "tss04", "client host rejected", "client host blocked",
}

-- The signal of a reply: "ok", "unknown_user", "slow_down", "block", "none" (it says
-- something, and nothing of ours: greylisting, Postfix's error limit) or nil (nothing
-- recognised). What a refused connection adds is the engine's, at connect (signal_for).
function M.signal(r)
  local code, enh, text = r.code or 0, r.enhanced or "", lower(r.text or "")
  if code >= 200 and code < 400 then return "ok" end
  if find(text, "greylist", 1, true) then return "none" end
  -- Postfix's hard error limit ends one session after too many unknown users: a fresh session
  -- is the answer, and unknown_cost already slows such probing down.
  if find(text, "too many errors", 1, true) then return "none" end
  if M.SLOW_DOWN_CODES[enh] then return "slow_down" end
  if has_any(text, M.BLOCK_WORDS) or (enh == "5.7.1" and has_any(text, { "reputation", "block" }))
      or enh == "5.7.606" then
    return "block"
  end
  if code >= 400 and code < 500 and has_any(text, M.SLOW_DOWN_WORDS) then
    return "slow_down"
  end
  if code >= 400 and code < 500 and find(enh, "^4%.7%.") and has_any(text, { "rate", "too many" }) then
    return "slow_down"
  end
  if enh == "5.1.1" or enh == "5.1.10" or code == 550 and has_any(text, { "unknown", "not exist",
      "no such", "not found" }) then
    return "unknown_user"
  end
  return nil
end

-- Rules by name, so the engine can ask the rule that handled an address first.
M.rules = {}

function M.register(name, rule)
  M.rules[name] = rule
end

-- The key the provider scope uses: a named rule is one provider; the generic rule treats
-- every server (the address we connect to, shared by all its MX names and domains) as a
-- provider of its own, so one server's block does not stop the others.
function M.provider_key(rule, mxnames, server)
  if rule.name == "default" then return "mx " .. (server or lower(mxnames[1] or "?")) end
  return rule.name
end

-- The one reading of a reply, made by the engine as the reply arrives (engine/lua_smtp.c):
-- the rule's own `signal` first, then ours. Returns what the reply says about us (the rule
-- gets it as reply.signal, and classify reads that instead of reading the reply again) and
-- what the limiter hears: the same, but for a reply that refused a new session (at_connect),
-- where a 421 in which we found nothing of ours is a server protecting itself (a connection
-- limit, a busy server): slow down, do not open the breaker. That is a fact of the refusal,
-- not of the mailbox, so reply.signal does not carry it.
function M.signal_for(name, r, at_connect)
  local rule = M.rules[name]
  if rule and rule.signal then
    local s = rule.signal(r, at_connect)
    if s ~= nil then return s, s end
  end
  local s = M.signal(r)
  if at_connect and r.code == 421 and (s == nil or s == "unknown_user") then
    return s, "slow_down"
  end
  return s, s
end

return M

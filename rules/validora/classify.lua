-- validora/classify.lua — what an SMTP reply means for an address: the conservative
-- classifier every rule can reuse (`local classify = require "validora.classify"`).
--
-- Policy in one place. It is conservative where a wrong "undeliverable" would cost a user a
-- real subscriber: replies that say *we* are blocked are never read as "the mailbox does not
-- exist".

local reputation = require "validora.reputation"
local has_any = require("validora.text").has_any

local M = {}

local lower = string.lower

-- Replies that are about the sender (our IP, our name, our reputation), not the mailbox.
local BLOCKED_WORDS = {
  "spamhaus", "spamcop", "barracuda", "sorbs", "dnsbl", "rbl", "blocklist", "block list",
  "blacklist", "black list", "denylist", "blocked using", "listed at", "listed on",
  "listed in", "poor reputation", "bad reputation", "sender reputation", "ip reputation",
  "client host rejected", "client host blocked", "your ip", "banned", "access denied",
  "not allowed to send", "policy violation", "rejected due to", "too many connections",
  "connection refused", "service unavailable; client host", "spam", "abuse",
}

-- The mailbox does not exist.
local NOT_FOUND_WORDS = {
  "user unknown", "unknown user", "no such user", "no such mailbox", "no such recipient",
  "unknown recipient", "recipient unknown", "recipient not found", "user not found",
  "mailbox not found", "address not found", "does not exist", "doesn't exist",
  "not exist", "invalid recipient", "invalid mailbox", "invalid address", "unrouteable address",
  "unknown or illegal alias", "recipient address rejected: user unknown",
  "not a valid mailbox", "no mailbox here", "mailbox unavailable", "unknown local part",
  "address rejected", "recipnotfound", "undeliverable address",
}

local DISABLED_WORDS = {
  "disabled", "deactivated", "inactive", "suspended", "account has been closed",
  "account closed", "no longer active", "not accepting messages", "expired",
}

local FULL_WORDS = {
  "full", "quota", "over quota", "exceeded storage", "insufficient storage", "too many messages",
  "mailbox size limit",
}

local GREYLIST_WORDS = {
  "greylist", "grey-list", "graylist", "gray-list", "greylisted", "try again later",
  "please try again", "temporarily deferred", "deferred", "try later", "come back later",
}

-- classify(reply) -> status, reason, retry
--   status: "deliverable" | "undeliverable" | "risky" | "unknown"
--   retry:  true when the reply is temporary and worth asking again later
function M.classify(r)
  local code = r.code or 0
  local enh = r.enhanced or ""
  local text = lower(r.text or "")
  if code >= 200 and code < 300 then
    return "deliverable", "accepted", false
  end
  -- About our pace, not the mailbox: a rate deferral is not greylisting (the engine has
  -- lowered the rate; ask again, later, slower); a block is never "does not exist". The
  -- engine's replies come read (reply.signal, the rule's reading the limiter heard); a reply
  -- table made by hand is read here.
  local signal = r.signal
  if signal == nil then signal = reputation.signal(r) end
  if signal == "slow_down" then return "unknown", "throttled", true end
  if signal == "block" then return "unknown", "blocked", false end
  -- Quota first: 452/552 and x.2.2 are about the mailbox's size, whatever else they say.
  if enh == "4.2.2" or enh == "5.2.2" or ((code == 452 or code == 552) and has_any(text, FULL_WORDS)) then
    return "risky", "mailbox_full", false
  end
  -- Anything that says it is about us comes before any reading about the mailbox.
  if has_any(text, BLOCKED_WORDS) or (enh == "5.7.1" and not has_any(text, NOT_FOUND_WORDS))
      or enh == "5.7.0" and code >= 500 or enh == "4.7.0" and has_any(text, { "reputation", "block" }) then
    return "unknown", "blocked", false
  end
  if code >= 400 and code < 500 then
    -- temporary: greylisting and its cousins; the caller retries a bounded number of times
    if has_any(text, GREYLIST_WORDS) or enh == "4.2.0" or enh == "4.7.1" or enh == "4.3.0"
        or code == 450 or code == 451 then
      return "unknown", "greylisted", true
    end
    return "unknown", "temporary_failure", false
  end
  if code >= 500 then
    if enh == "5.2.1" or has_any(text, DISABLED_WORDS) then
      return "undeliverable", "mailbox_disabled", false
    end
    if enh == "5.1.1" or enh == "5.1.0" or enh == "5.1.10" or enh == "5.1.6"
        or has_any(text, NOT_FOUND_WORDS) then
      return "undeliverable", "mailbox_not_found", false
    end
    if code == 550 or code == 551 or code == 553 then
      return "undeliverable", "rejected", false
    end
    return "unknown", "smtp_error", false
  end
  return "unknown", "smtp_error", false
end

return M

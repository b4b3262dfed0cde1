-- yahoo.lua — Yahoo and AOL (and the other brands on Yahoo's servers): mail hosts under
-- yahoodns.net.
-- Yahoo answers 250 at RCPT for addresses that do not exist and rejects them only after
-- DATA (`554 delivery error: dd This user doesn't have a yahoo.com account`), so an RCPT
-- tells nothing and costs the IP's standing with Yahoo. This rule never makes an SMTP
-- connection:
--   * yahoo.com with the Yahoo alternative check on (config.alt_checks names yahoo): the
--     sign-up form says whether the Yahoo ID is taken (validora/alt/yahoo.lua);
--   * every other domain (aol.com, ymail.com, ...), or the check off: unknown/unverifiable.
-- The wordings below are Yahoo's, for a rule that probes SMTP on top of this one.
-- docs/providers.md says why and how sure.

local provider = require "validora.provider"
local alt = require "validora.alt"
local yahoo = require "validora.alt.yahoo"

return provider.rule {
  name = "yahoo",
  match = { mx = { "*.yahoodns.net" } },
  block = {
    "[tss04]", "[tss09]", "[ts03]", "[bl21]", "[bl23]", -- suspensions and block lists
    "postmaster.yahooinc.com/error-codes",
  },
  slow_down = { "[ts01]", "[ts02]", "[ts05]" },
  replies = {
    { words = { "doesn't have a yahoo.com account", "doesn't have an aol.com account",
                "this user doesn't have a" },
      status = "undeliverable", reason = "mailbox_not_found" },
  },
  before = function(job)
    if string.lower(job.domain) == "yahoo.com" and alt.enabled("yahoo") then
      yahoo.check(job)
    elseif string.lower(job.domain) == "yahoo.com" then
      job:unknown("unverifiable", "Yahoo accepts every RCPT; the Yahoo alternative check is off")
    else
      job:unknown("unverifiable", "Yahoo accepts every RCPT for " .. job.domain
        .. ", and the sign-up check knows only yahoo.com names")
    end
    return true
  end,
}

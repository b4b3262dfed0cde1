-- Unit test of rules/validora/classify.lua, the reply classifier: real reply texts from common servers.
-- Run: lua5.4 tests/rules/test_classify.lua RULES_DIR
local dir = arg[1] or "rules"
package.path = dir .. "/?.lua;" .. package.path
local env = setmetatable({ config = { greylist_tries = 3, greylist_delay = 1 } }, { __index = _G })
local chunk = assert(loadfile(dir .. "/validora/classify.lua", "t", env))
local default = chunk()

local passed, failed = 0, 0
local function case(code, enh, text, want_status, want_reason, want_retry)
  local s, r, retry = default.classify({ code = code, enhanced = enh, text = text })
  if s == want_status and r == want_reason and (want_retry == nil or retry == want_retry) then
    passed = passed + 1
  else
    failed = failed + 1
    print(string.format("FAIL: %d %s %q -> %s/%s (want %s/%s)", code, enh, text, s, r,
      want_status, want_reason))
  end
end

case(250, "2.1.5", "Ok", "deliverable", "accepted", false)
case(550, "5.1.1", "<x@valid.test>: Recipient address rejected: User unknown in virtual mailbox table",
  "undeliverable", "mailbox_not_found")
case(550, "5.1.1", "The email account that you tried to reach does not exist.", "undeliverable",
  "mailbox_not_found")
case(550, "5.1.10", "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
  "undeliverable", "mailbox_not_found")
case(550, "", "No such user here", "undeliverable", "mailbox_not_found")
case(550, "5.2.1", "<d@valid.test>: Mailbox disabled, not accepting messages", "undeliverable",
  "mailbox_disabled")
case(550, "5.2.1", "The email account that you tried to reach is disabled.", "undeliverable",
  "mailbox_disabled")
case(452, "4.2.2", "<f@valid.test>: Mailbox full", "risky", "mailbox_full")
case(552, "5.2.2", "The email account that you tried to reach is over quota.", "risky", "mailbox_full")
case(452, "", "Mailbox full", "risky", "mailbox_full")
case(554, "5.7.1", "Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org",
  "unknown", "blocked")
case(550, "5.7.1", "Our system has detected an unusual rate of unsolicited mail originating from your IP address",
  "unknown", "blocked")
case(550, "", "5.7.606 Access denied, banned sending IP [1.2.3.4]", "unknown", "blocked")
case(421, "4.7.0", "[1.2.3.4] Our system has detected an unusual rate ... poor reputation", "unknown",
  "blocked")
case(554, "", "rejected because your IP is in the Spamhaus block list", "unknown", "blocked")
case(450, "4.2.0", "<c@grey.test>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/grey.test.html",
  "unknown", "greylisted", true)
-- "try again later" alone is what greylisters say: it is waited out, not read as our rate
case(451, "4.7.1", "Please try again later", "unknown", "greylisted", true)
case(421, "4.7.0", "[1.2.3.4] Too many invalid recipients from your host. Try again later, closing connection.",
  "unknown", "throttled", true)
case(421, "", "Too busy", "unknown", "temporary_failure", false)
case(553, "", "sorry, that domain isn't in my list of allowed rcpthosts", "undeliverable", "rejected")
case(554, "", "Transaction failed", "unknown", "smtp_error")
-- a 5.1.1 that also names a DNSBL is about us: never undeliverable
case(550, "5.1.1", "blocked using b.barracudacentral.org", "unknown", "blocked")

-- Rate deferrals are not greylisting; blocks are never "does not exist" (issue: a strict
-- provider's deferrals were waited out as greylisting, then it blocked us).
case(421, "4.7.0", "mx.example.com Error: too many connections from 192.0.2.1", "unknown", "throttled", true)
case(450, "4.7.1", "<u@example.com>: Recipient address rejected: Error: too many recipients from 192.0.2.1",
  "unknown", "throttled", true)
case(421, "4.7.28", "Gmail has detected an unusual rate of unsolicited mail originating from your IP",
  "unknown", "throttled", true)
case(450, "4.2.1", "The user you are trying to contact is receiving mail at a rate that prevents additional messages",
  "unknown", "throttled", true)
case(451, "4.7.500", "Server busy. Please try again later from [192.0.2.1]. (S77719)", "unknown", "throttled", true)
case(451, "4.7.650", "The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation",
  "unknown", "throttled", true)
case(550, "5.7.606", "Access denied, banned sending IP [192.0.2.1]", "unknown", "blocked", false)
case(421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints",
  "unknown", "blocked", false)
case(550, "5.7.1", "Service unavailable, Client host [192.0.2.1] blocked using Spamhaus", "unknown", "blocked", false)
case(554, "5.7.1", "Blocked - see https://ipcheck.proofpoint.com/?ip=192.0.2.1", "unknown", "blocked", false)
case(450, "4.2.0", "<c@grey.test>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/",
  "unknown", "greylisted", true)

print(string.format("%d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)

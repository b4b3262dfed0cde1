-- Unit test of rules/validora/classify.lua, the reply classifier: real reply texts from common servers.
-- Run: lua5.4 tests/rules/test_classify.lua RULES_DIR
local dir = arg[1] or "rules"
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
case(451, "4.7.1", "Please try again later", "unknown", "greylisted", true)
case(421, "", "Too busy", "unknown", "temporary_failure", false)
case(553, "", "sorry, that domain isn't in my list of allowed rcpthosts", "undeliverable", "rejected")
case(554, "", "Transaction failed", "unknown", "smtp_error")
-- a 5.1.1 that also names a DNSBL is about us: never undeliverable
case(550, "5.1.1", "blocked using b.barracudacentral.org", "unknown", "blocked")

print(string.format("%d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)

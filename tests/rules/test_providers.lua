-- Unit test of the provider rules (rules/*.lua on validora/provider.lua): each rule is well
-- formed (validora/check.lua), picked for its providers' real MX host names (validora/select.lua,
-- outlook before microsoft365), and reads its provider's real reply wordings — the verdict and
-- the signal the engine gets (reputation.signal_for: the rule's own, then the generic one).
-- Also the pure helpers of the alternative checks (form encoding, the sign-up page's fields,
-- config.alt_checks). The probes themselves run in `validora rules test` (rules/tests).
-- Run: lua5.4 tests/rules/test_providers.lua RULES_DIR
local dir = arg[1] or "rules"
package.path = dir .. "/?.lua;" .. package.path
local config = { greylist_tries = 3, greylist_delay = 1, rate_deferral_tries = 6 }
rawset(_G, "config", config)
rawset(_G, "errors", setmetatable({}, { __index = function(_, k) return k end }))

local check = require "validora.check"
local select_ = require "validora.select"
local reputation = require "validora.reputation"

local passed, failed = 0, 0
local function expect(ok, what)
  if ok then
    passed = passed + 1
  else
    failed = failed + 1
    print("FAIL: " .. what)
  end
end

local NAMES = { "google", "outlook", "microsoft365", "yahoo", "mimecast", "proofpoint", "icloud",
                "comcast", "zoho", "gmx", "yandex", "barracuda", "default" }
local rules = {}
for _, n in ipairs(NAMES) do
  local rule = assert(loadfile(dir .. "/" .. n .. ".lua", "t"))()
  rules[n] = rule
  local problems = check.check(rule)
  expect(#problems == 0 and rule.name == n, n .. ": well formed, named " .. n .. " ("
    .. (problems[1] and problems[1].msg or "") .. ")")
  reputation.register(n, rule)
end

-- ---- which rule an MX host gets
local entries = {}
for _, n in ipairs(NAMES) do
  if n ~= "default" then entries[#entries + 1] = { rule = rules[n], name = n, file = n .. ".lua" } end
end
table.sort(entries, function(a, b) return a.file < b.file end)
local ordered = select_.order(entries)
local function picks(mx, want)
  local rule = select_.pick(ordered, rules.default, "example.test", { mx })
  expect(rule.name == want, string.format("MX %s -> %s (got %s)", mx, want, rule.name))
end
picks("gmail-smtp-in.l.google.com", "google")
picks("aspmx.l.google.com", "google")
picks("alt1.aspmx.l.googlemail.com", "google")
picks("outlook-com.olc.protection.outlook.com", "outlook")
picks("hotmail-com.olc.protection.outlook.com", "outlook")
picks("contoso-com.mail.protection.outlook.com", "microsoft365")
picks("mta5.am0.yahoodns.net", "yahoo")
picks("mx-aol.mail.gm0.yahoodns.net", "yahoo")
picks("eu-smtp-inbound-1.mimecast.com", "mimecast")
picks("mx0a-00123401.pphosted.com", "proofpoint")
picks("mx1-eu1.ppe-hosted.com", "proofpoint")
picks("mx01.mail.icloud.com", "icloud")
picks("mx1a1.comcast.net", "comcast")
picks("mx.zoho.com", "zoho")
picks("mx.zoho.eu", "zoho")
picks("mx00.emig.gmx.net", "gmx")
picks("mx-ha03.web.de", "gmx")
picks("mx.yandex.net", "yandex")
picks("d123456a.ess.barracudanetworks.com", "barracuda")
picks("mx.antispamcloud.com", "barracuda")
picks("mx.example.net", "default")
picks("protection.outlook.com.evil.test", "default")

-- ---- replies: case(rule, code, enhanced, text, status, reason, retry, signal)
local function case(n, code, enh, text, want_status, want_reason, want_retry, want_signal)
  local r = { code = code, enhanced = enh, text = text }
  local s, reason, retry = rules[n].classify(r)
  local sig = reputation.signal_for(n, r, false)
  if sig == "none" then sig = nil end
  local ok = s == want_status and reason == want_reason and (retry == true) == (want_retry == true)
    and sig == want_signal
  expect(ok, string.format("%s: %d %s %q -> %s/%s retry %s signal %s (want %s/%s retry %s signal %s)",
    n, code, enh, text, s, reason, tostring(retry), tostring(sig), want_status, want_reason,
    tostring(want_retry == true), tostring(want_signal)))
end

-- Google
case("google", 550, "5.1.1", "The email account that you tried to reach does not exist. Please try\n"
  .. "double-checking the recipient's email address for typos or\nunnecessary spaces. For more "
  .. "information, go to\n https://support.google.com/mail/?p=NoSuchUser a1si123 - gsmtp",
  "undeliverable", "mailbox_not_found", false, "unknown_user")
case("google", 550, "5.2.1", "The email account that you tried to reach is disabled. Learn more at\n"
  .. " https://support.google.com/mail/?p=DisabledUser a1si123 - gsmtp", "undeliverable", "mailbox_disabled")
case("google", 452, "4.2.2", "The recipient's inbox is out of storage space.", "risky", "mailbox_full")
case("google", 421, "4.7.28", "Gmail has detected an unusual rate of unsolicited mail originating from your IP",
  "unknown", "throttled", true, "slow_down")
case("google", 550, "5.7.1", "[192.0.2.1] The IP you're using to send mail is not authorized to send email "
  .. "directly to our servers. Please use the SMTP relay at your service provider instead.",
  "unknown", "blocked", false, "block")
case("google", 550, "5.7.26", "This mail has been blocked because the sender is unauthenticated.",
  "unknown", "blocked", false, "block")
case("google", 421, "4.7.0", "IP not in whitelist for RCPT domain, closing connection.",
  "unknown", "blocked", false, nil)
case("google", 250, "2.1.5", "OK a1si123 - gsmtp", "deliverable", "accepted", false, "ok")

-- Outlook.com and Microsoft 365 (EOP)
for _, n in ipairs({ "outlook", "microsoft365" }) do
  case(n, 550, "5.5.0", "Requested action not taken: mailbox unavailable (S2017062302). [BN1NAM02FT061.eop.test]",
    "undeliverable", "mailbox_not_found", false, "unknown_user")
  case(n, 550, "5.4.1", "Recipient address rejected: Access denied. AS(201806281) [DM6NAM12FT041.eop.test]",
    "undeliverable", "mailbox_not_found", false, "unknown_user")
  case(n, 550, "5.4.1", "Relay Access Denied ATTR36 [AM4PEPF00025F9A.eop.test]", "undeliverable", "rejected")
  case(n, 550, "5.1.10", "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
    "undeliverable", "mailbox_not_found", false, "unknown_user")
  case(n, 550, "5.7.1", "Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet "
    .. "service provider since part of their network is on our block list (S3150).",
    "unknown", "blocked", false, "block")
  case(n, 550, "5.7.606", "Access denied, banned sending IP [192.0.2.1]", "unknown", "blocked", false, "block")
  case(n, 550, "5.7.1", "Service unavailable, Client host [192.0.2.1] blocked using Customer Block list "
    .. "(AS16012607)", "unknown", "blocked", false, nil)
  case(n, 451, "4.7.500", "Server busy. Please try again later from [192.0.2.1]. (S77719)",
    "unknown", "throttled", true, "slow_down")
  case(n, 421, "4.3.2", "The maximum number of concurrent server connections has exceeded a limit, closing "
    .. "transmission channel", "unknown", "throttled", true, "slow_down")
end

-- Yahoo (the rule never probes SMTP; its wordings are pinned for rules built on it)
case("yahoo", 554, "", "delivery error: dd This user doesn't have a yahoo.com account (x@yahoo.com) [0] - "
  .. "mta1234.mail.gq1.yahoo.com", "undeliverable", "mailbox_not_found", false, "unknown_user")
case("yahoo", 421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume "
  .. "or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
  "unknown", "blocked", false, "block")
case("yahoo", 553, "5.7.1", "[BL21] Connections will not be accepted from 192.0.2.1, because the ip is in "
  .. "Spamhaus's list; see https://postmaster.yahooinc.com/error-codes", "unknown", "blocked", false, "block")
case("yahoo", 421, "4.7.0", "[TS01] Messages from 192.0.2.1 temporarily deferred due to user complaints",
  "unknown", "throttled", true, "slow_down")

-- Mimecast
case("mimecast", 451, "", "Internal resource temporarily unavailable - "
  .. "https://community.mimecast.com/docs/DOC-1369#451", "unknown", "greylisted", true, nil)
case("mimecast", 550, "", "Invalid Recipient - https://community.mimecast.com/docs/DOC-1369#550",
  "undeliverable", "mailbox_not_found", false, "unknown_user")
case("mimecast", 554, "", "Email rejected due to security policies - "
  .. "https://community.mimecast.com/docs/DOC-1369#554", "unknown", "blocked", false, "block")
case("mimecast", 550, "", "Administrative prohibition - envelope blocked - "
  .. "https://community.mimecast.com/docs/DOC-1369#550", "unknown", "blocked", false, nil)
case("mimecast", 451, "", "Open relay not allowed - https://community.mimecast.com/docs/DOC-1369#451",
  "unknown", "temporary_failure", false, nil)

-- Proofpoint
case("proofpoint", 550, "5.1.1", "User Unknown", "undeliverable", "mailbox_not_found", false, "unknown_user")
case("proofpoint", 554, "5.7.0", "Blocked - see https://ipcheck.proofpoint.com/?ip=192.0.2.1",
  "unknown", "blocked", false, "block")
case("proofpoint", 421, "4.7.0", "mx0a-00123401.pphosted.com Too many concurrent SMTP connections; please "
  .. "try again later.", "unknown", "throttled", true, "slow_down")

-- iCloud
case("icloud", 550, "5.1.1", "<x@icloud.com>: user does not exist", "undeliverable", "mailbox_not_found",
  false, "unknown_user")
case("icloud", 554, "5.7.1", "[CS01] Message rejected due to local policy. Please visit "
  .. "https://support.apple.com/en-us/HT204137", "unknown", "blocked", false, "block")

-- Comcast
case("comcast", 550, "5.1.1", "Not our Customer", "undeliverable", "mailbox_not_found", false, "unknown_user")
case("comcast", 554, "", "resimta-po-01v.sys.comcast.net resimta-po-01v.sys.comcast.net 192.0.2.1 Comcast "
  .. "block for spam. Please see http://postmaster.comcast.net/smtp-error-codes.php#BL000000",
  "unknown", "blocked", false, "block")
case("comcast", 421, "", "resimta-po-01v.sys.comcast.net 192.0.2.1 rate limit exceeded. Please see "
  .. "http://postmaster.comcast.net/smtp-error-codes.php#RL000001", "unknown", "throttled", true, "slow_down")

-- Zoho
case("zoho", 550, "5.1.1", "User does not exist - <x@zoho.com>", "undeliverable", "mailbox_not_found",
  false, "unknown_user")

-- GMX / WEB.DE
case("gmx", 550, "", "Requested action not taken: mailbox unavailable", "undeliverable", "mailbox_not_found",
  false, "unknown_user")
case("gmx", 554, "", "Transaction failed\nReject due to policy restrictions.\nFor explanation visit "
  .. "https://postmaster.gmx.net/en/case?c=r0601&i=ip&v=192.0.2.1", "unknown", "blocked", false, "block")

-- Yandex: a 5.7.1 that is about the mailbox, and one that is not
case("yandex", 550, "5.7.1", "No such user!", "undeliverable", "mailbox_not_found", false, "unknown_user")
case("yandex", 550, "5.7.1", "Message rejected under suspicion of SPAM; https://ya.cc/1IrBc",
  "unknown", "blocked", false, nil)
case("yandex", 451, "4.7.1", "Sorry, the service is currently unavailable. Please come back later.",
  "unknown", "greylisted", true, nil)
case("yandex", 451, "4.7.1", "Ratelimit exceeded for mailbox. Try again later.", "unknown", "throttled", true,
  "slow_down")

-- Barracuda: its own name in an unknown-user reply is not a block list; its reputation is
case("barracuda", 550, "", "No such user (alice@cuda-corp.test) - d123456a.ess.barracudanetworks.com",
  "undeliverable", "mailbox_not_found", false, "unknown_user")
case("default", 550, "", "No such user (alice@cuda-corp.test) - d123456a.ess.barracudanetworks.com",
  "unknown", "blocked", false, "block")
case("barracuda", 554, "", "Service unavailable; Client host [192.0.2.1] blocked using Barracuda Reputation, "
  .. "see http://www.barracudanetworks.com/reputation/?r=1&ip=192.0.2.1", "unknown", "blocked", false, "block")

-- ---- a misspelt spec is an error at load, not a rule that ignores it
local provider = require "validora.provider"
local ok, err = pcall(provider.rule, { name = "x", consumers = { "x.test" } })
expect(not ok and string.find(err, "unknown field 'consumers'", 1, true), "misspelt spec field: " .. tostring(err))
ok, err = pcall(provider.rule, { name = "x", replies = { { word = { "gone" }, status = "unknown", reason = "x" } } })
expect(not ok and string.find(err, "replies[1]: unknown field 'word'", 1, true), "misspelt entry field: " .. tostring(err))
ok, err = pcall(provider.rule, { name = "x", replies = { { words = { "gone" }, status = "gone", reason = "x" } } })
expect(not ok and string.find(err, "needs a status and a reason", 1, true), "entry without a status: " .. tostring(err))

-- ---- helpers of the alternative checks
local alt = require "validora.alt"
expect(alt.form({ { "userId", "a b+c" }, { "acrumb", "x/y=z" } }) == "userId=a%20b%2Bc&acrumb=x%2Fy%3Dz",
  "alt.form encodes and keeps the order")
config.alt_checks = "microsoft365,yahoo"
expect(alt.enabled("yahoo") and alt.enabled("microsoft365") and not alt.enabled("outlook"),
  "alt_checks as a comma list")
config.alt_checks = { "Outlook" }
expect(alt.enabled("outlook") and not alt.enabled("yahoo"), "alt_checks as a list, any case")
config.alt_checks = "none"
expect(not alt.enabled("yahoo"), "alt_checks none")
config.alt_checks = nil
expect(not alt.enabled("yahoo"), "alt_checks absent: off")

local yahoo = require "validora.alt.yahoo"
local a, s = yahoo.fields('<form><input type="hidden" value="cr-1" name="acrumb">\n'
  .. '<input type="hidden" name="sessionIndex" value="QQ--"/><input name="data-acrumb" value="no"></form>')
expect(a == "cr-1" and s == "QQ--", "sign-up page: both fields, either attribute order")
a, s = yahoo.fields("<input name='acrumb' value='x'>")
expect(a == "x" and s == nil, "sign-up page: one field missing")
expect(yahoo.askable("john.smith_2") and not yahoo.askable("base-keyword") and not yahoo.askable("2abc")
  and not yahoo.askable("a+b"), "which Yahoo IDs the form can ask about")

print(string.format("%d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)

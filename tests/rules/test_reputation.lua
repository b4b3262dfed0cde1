-- Unit test of the one reading of a reply (rules/validora/reputation.lua signal_for, and
-- classify.lua reading reply.signal): what the reply says about us, what the limiter hears
-- (the same, but a 421 at connect in which nothing of ours was found is a slow-down), the
-- rule's own signal first, and classify following the reading it is handed instead of
-- reading the reply again.
-- Run: lua5.4 tests/rules/test_reputation.lua RULES_DIR
local dir = arg[1] or "rules"
package.path = dir .. "/?.lua;" .. package.path

local reputation = require "validora.reputation"
local classify = require "validora.classify"

local passed, failed = 0, 0
local function expect(ok, what)
  if ok then
    passed = passed + 1
  else
    failed = failed + 1
    print("FAIL: " .. what)
  end
end

local function reads(name, code, enh, text, at_connect, want_reading, want_heard)
  local reading, heard = reputation.signal_for(name, { code = code, enhanced = enh, text = text },
    at_connect)
  expect(reading == want_reading and heard == want_heard,
    string.format("%s %d %s %q at_connect %s -> %s, %s (want %s, %s)", name, code, enh, text,
      tostring(at_connect), tostring(reading), tostring(heard), tostring(want_reading),
      tostring(want_heard)))
end

-- the generic reading
reads("nobody", 250, "2.1.5", "Ok", false, "ok", "ok")
reads("nobody", 550, "5.1.1", "User unknown", false, "unknown_user", "unknown_user")
reads("nobody", 554, "5.7.1", "Client host [192.0.2.1] blocked using zen.spamhaus.org", false,
  "block", "block")
reads("nobody", 421, "4.7.0", "mx.example.com Error: too many connections from 192.0.2.1", true,
  "slow_down", "slow_down")
-- greylisting says something, and nothing of ours: not a slow-down, even at connect
reads("nobody", 450, "4.2.0", "Greylisted, see http://postgrey.example/", false, "none", "none")
reads("nobody", 421, "4.7.0", "greylisted, come back later", true, "none", "none")
reads("nobody", 421, "4.7.0", "too many errors", true, "none", "none")
-- a bare 421 at connect: a server protecting itself. The limiter slows down; the reply says
-- nothing of ours, and that is what the rule's classify reads (not "throttled").
reads("nobody", 421, "4.3.2", "Service not available", true, nil, "slow_down")
reads("nobody", 421, "4.3.2", "Service not available", false, nil, nil)
reads("nobody", 421, "5.1.1", "odd", true, "unknown_user", "slow_down")

-- a rule's own signal comes first, at connect too
reputation.register("strict", {
  signal = function(r) if string.find(r.text, "ours", 1, true) then return "block" end end,
})
reads("strict", 550, "5.1.1", "no such user, and ours to say", false, "block", "block")
reads("strict", 550, "5.1.1", "no such user", false, "unknown_user", "unknown_user")
reputation.register("quiet", { signal = function() return "none" end })
reads("quiet", 421, "4.3.2", "Service not available", true, "none", "none")

-- classify follows the reading it is handed (reply.signal); a hand-made reply is read
local function classifies(r, want_status, want_reason)
  local s, reason = classify.classify(r)
  expect(s == want_status and reason == want_reason,
    string.format("classify %d %s %q signal %s -> %s/%s (want %s/%s)", r.code, r.enhanced, r.text,
      tostring(r.signal), s, reason, want_status, want_reason))
end
classifies({ code = 550, enhanced = "5.1.1", text = "no such user" }, "undeliverable",
  "mailbox_not_found")
classifies({ code = 550, enhanced = "5.1.1", text = "no such user", signal = "block" }, "unknown",
  "blocked")
classifies({ code = 450, enhanced = "4.2.0", text = "greylisted", signal = "slow_down" }, "unknown",
  "throttled")
classifies({ code = 554, enhanced = "5.7.1", text = "blocked using zen.spamhaus.org",
  signal = "none" }, "unknown", "blocked") -- the wording itself still reads as about us
classifies({ code = 250, enhanced = "2.1.5", text = "Ok", signal = "none" }, "deliverable", "accepted")

print(string.format("%d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)

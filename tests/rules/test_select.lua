-- Unit test of the runner the engine calls per address (rules/validora/select.lua): the rule
-- it picks is the rule M.pick picks, for a repeated (domain, MX names) as for a new one, past
-- the memo's bound too; a rule's limits are merged once per rule and are what
-- reputation.limits gives.
-- Run: lua5.4 tests/rules/test_select.lua RULES_DIR
local dir = arg[1] or "rules"
package.path = dir .. "/?.lua;" .. package.path

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

local picks = 0
local function rule(name, match, limits)
  return { name = name, match = match, limits = limits,
           probe = function() return name end }
end
local gmail = rule("gmail", { domain = { "gmail.com" } }, { mx = { connections = 2 } })
local corp = rule("corp", { mx = { "*.corp-mx.test" } })
local default = rule("default", {})
local ordered = select_.order({ { rule = gmail, name = "gmail", file = "gmail.lua" },
                                { rule = corp, name = "corp", file = "corp.lua" } })
local pick = select_.pick
select_.pick = function(...) picks = picks + 1; return pick(...) end

local seen = {}
local job = { server = "192.0.2.1" }
job._rule = function(_, name, pkey, limits) seen = { name = name, pkey = pkey, limits = limits } end
local run = select_.runner(ordered, default)

local function runs(domain, mx, want)
  local got = run(job, domain, mx)
  expect(got == want and seen.name == want, string.format("%s %s -> %s (want %s)", domain,
    table.concat(mx, ","), tostring(got), want))
end

runs("gmail.com", { "gmail-smtp-in.l.google.com" }, "gmail")
runs("GMAIL.com", { "x" }, "gmail")
runs("example.com", { "a.corp-mx.test" }, "corp")
runs("example.com", { "mx.example.com" }, "default") -- same domain, other MX names: chosen anew
runs("example.com", { "a.corp-mx.test" }, "corp")
expect(picks == 4, "a repeated (domain, MX names) is remembered: " .. picks .. " picks for 5")

-- limits: merged once per rule, equal to reputation.limits
runs("gmail.com", { "x" }, "gmail")
local first = seen.limits
runs("gmail.com", { "y" }, "gmail")
expect(seen.limits == first, "a rule's limits are merged once")
expect(seen.limits.mx.connections == 2 and seen.limits.mx.rcpt_per_minute ==
  reputation.DEFAULT_LIMITS.mx.rcpt_per_minute, "the limits are the rule's over the defaults")

-- past the bound the memo starts again and still answers right
local before = picks
for i = 1, select_.PICK_MEMO + 10 do
  runs("d" .. i .. ".test", { "mx" .. i .. ".corp-mx.test" }, "corp")
end
runs("gmail.com", { "gmail-smtp-in.l.google.com" }, "gmail")
expect(picks > before + select_.PICK_MEMO, "every new (domain, MX names) is picked")

print(string.format("select: %d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)

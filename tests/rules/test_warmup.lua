-- Unit test of rules/validora/warmup.lua, the warm-up curve: the day's SMTP verifications of a
-- source IP by its age and history (docs/reputation.md, "Warm-up budget").
-- Run: lua5.4 tests/rules/test_warmup.lua RULES_DIR
local dir = arg[1] or "rules"
local env = setmetatable({}, { __index = _G })
local warmup = assert(loadfile(dir .. "/validora/warmup.lua", "t", env))()

local passed, failed = 0, 0
local function case(age, history, want, what)
  local got = warmup.budget(age, history)
  if got == want and math.type(got) == "integer" then
    passed = passed + 1
  else
    failed = failed + 1
    print(string.format("FAIL: %s: budget(%s) = %s, want %s", what, tostring(age), tostring(got),
      tostring(want)))
  end
end

local clean = { blocks_today = 0, deferrals_today = 0, blocks_30d = 0, deferrals_30d = 0,
                blocks_total = 0, deferrals_total = 0 }
local blocked = { blocks_today = 0, deferrals_today = 0, blocks_30d = 3, deferrals_30d = 10,
                  blocks_total = 3, deferrals_total = 10 }

case(0, clean, 100, "day 1 of a new IP")
case(0, {}, 100, "day 1, no history at all")
case(0, nil, 100, "day 1, history nil")
case(6, clean, 1000, "1,000 a day within the first week")
case(7, clean, 1500, "second week")
case(29, clean, 2500, "last day of the first month")
case(30, clean, 3300, "after the first month: about 100,000 a month")
case(89, clean, 3300, "not seasoned before 90 days, however clean")
case(90, clean, 100000, "90 days and no block in 30 days")
case(3650, clean, 100000, "ten years, clean")
case(90, blocked, 3300, "90 days but blocked within 30 days: stays at the monthly pace")
case(400, { blocks_30d = 1, blocks_total = 1 }, 3300, "one block in 30 days is enough to hold it")
case(400, { blocks_30d = 0, blocks_total = 50 }, 100000, "old blocks (past 30 days) do not count")
case(-5, clean, 100, "a negative age (clock went back) is day 1")
case(2.7, clean, 300, "a fractional age counts whole days")

-- The curve never falls as the IP ages (with the same history), and ramps within its bounds.
local last = 0
for age = 0, 400 do
  local n = warmup.budget(age, clean)
  if n < last then
    failed = failed + 1
    print(string.format("FAIL: budget falls from %d to %d at age %d", last, n, age))
  end
  last = n
end
local week = 0
for age = 0, 6 do week = week + warmup.budget(age, clean) end
if week <= 7 * 1000 and warmup.budget(6, clean) == 1000 then passed = passed + 1 else failed = failed + 1 end

print(string.format("%d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)

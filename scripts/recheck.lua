-- scripts/recheck.lua — re-verifies the addresses an earlier run could not decide (status
-- unknown: deferred by the warm-up budget or a provider's breaker, greylisted, timeouts,
-- DNS failures), typically on a later day, and writes a complete result stream: the decided
-- records as they were, the rechecked ones replaced by their new records.
--   validora run scripts/recheck.lua [--reasons LIST] [-o OUT] RESULTS

local args = require "lib.args"

local spec = {
  usage = "usage: validora run scripts/recheck.lua [--reasons LIST] [--output OUT] RESULTS",
  help = "Reads RESULTS (a msgpack stream), verifies again every address whose record is\n"
    .. "unknown (or whose reason is in --reasons), and writes all records to OUT (default\n"
    .. "RESULTS.recheck.mpk): decided ones unchanged, rechecked ones new. RESULTS is not touched.",
  options = {
    reasons = { arg = "LIST", help = "recheck only these reasons (comma list, e.g. deferred,greylisted)" },
    output = { arg = "OUT", help = "where to write (default RESULTS.recheck.mpk)" },
    concurrency = { arg = "N", default = 256, help = "addresses in flight" },
  },
}

local function wanted(reasons)
  if not reasons then return function(rec) return rec.status == "unknown" end end
  local set = {}
  for r in string.gmatch(reasons, "[^,%s]+") do set[r] = true end
  return function(rec) return set[rec.reason] == true end
end

local function main(...)
  local opts, operands = args.parse("recheck.lua", spec, { ... })
  if not opts then return operands end
  if #operands ~= 1 then
    io.stderr:write(spec.usage, "\n")
    return 2
  end
  local path = operands[1]
  local outpath = opts.output or (path .. ".recheck.mpk")
  if outpath == path then
    io.stderr:write("recheck.lua: --output must not be RESULTS itself\n")
    return 2
  end
  local recs, err = validora.records(path)
  if not recs then
    io.stderr:write("recheck.lua: ", err, "\n")
    return 1
  end
  local out = assert(validora.writer(outpath, "msgpack"))
  local redo, seen, kept = {}, {}, 0
  local pick = wanted(opts.reasons)
  for rec in recs do
    if not seen[rec.email] then
      seen[rec.email] = true
      if pick(rec) then
        redo[#redo + 1] = rec.email
      else
        assert(out:write(rec))
        kept = kept + 1
      end
    end
  end
  local now = {}
  for rec in validora.verify_all(redo, { concurrency = math.tointeger(opts.concurrency) }) do
    assert(out:write(rec))
    now[rec.status] = (now[rec.status] or 0) + 1
  end
  assert(out:close())
  print(string.format(
    "%d kept, %d rechecked: %d deliverable, %d risky, %d undeliverable, %d still unknown -> %s",
    kept, #redo, now.deliverable or 0, now.risky or 0, now.undeliverable or 0, now.unknown or 0,
    outpath))
  return 0
end

return main(...)

-- scripts/clean.lua — cleans a mailing list: verifies every address once and writes
-- OUTDIR/{deliverable,risky,undeliverable,unknown}.txt (the addresses as given, one per line),
-- OUTDIR/results.mpk (every record) and a summary on stdout.
--   validora run scripts/clean.lua [--column NAME|N] [--concurrency N] LIST OUTDIR
-- Duplicates (the same canonical address: Gmail's dots and +tags, a domain's case) are
-- verified once; the first spelling is kept, and the count of those dropped is reported.

local args = require "lib.args"
local canonical = require "validora.canonical"

local spec = {
  usage = "usage: validora run scripts/clean.lua [--column NAME|N] [--concurrency N] LIST OUTDIR",
  help = "Verifies LIST (one address per line, or a CSV file with --column) and sorts it into\n"
    .. "OUTDIR/deliverable.txt, risky.txt, undeliverable.txt and unknown.txt, with every\n"
    .. "record in OUTDIR/results.mpk (OUTDIR is made when missing). Redo unknown ones later\n"
    .. "with scripts/recheck.lua OUTDIR/results.mpk (it writes OUTDIR/results.mpk.recheck.mpk).",
  options = {
    column = { arg = "NAME|N",
               help = "LIST is CSV: the column holding the address (a header name or a number)" },
    concurrency = { arg = "N", default = 256, help = "addresses in flight" },
  },
}

local STATUSES = { "deliverable", "risky", "undeliverable", "unknown" }

-- The list's addresses. A CSV column given by name has its header row; given by number, the
-- first row is a header when that cell holds no '@' (as `verify --column N` decides), so a
-- header such as "email" is never verified as an address.
local function input(path, column)
  if not column then return validora.lines(path) end
  local n = math.tointeger(tonumber(column))
  if not n then return validora.csv(path, column) end
  local rows, err, detail = validora.csv(path, n)
  if not rows then return nil, err, detail end
  local first = rows()
  if first and not first:find("@", 1, true) then
    io.stderr:write(string.format("clean.lua: row 1 (%q in column %d) taken as the header\n", first, n))
    first = nil
  end
  return function()
    if first then
      local a = first
      first = nil
      return a
    end
    return rows()
  end
end

-- The list's addresses, each canonical address once; and how many duplicates were dropped.
-- The canonical addresses seen are kept as 64-bit hashes (validora.set, docs/scripts.md), so
-- a list of millions costs megabytes, not a table of strings.
local function unique(next_addr)
  local seen, dropped = validora.set(), 0
  return function()
    for a in next_addr do
      if seen:add(canonical.address(a)) then
        return a
      end
      dropped = dropped + 1
    end
    return nil
  end, function() return dropped end
end

local function main(...)
  local opts, operands = args.parse("clean.lua", spec, { ... })
  if not opts then return operands end
  if #operands ~= 2 then
    io.stderr:write(spec.usage, "\n")
    return 2
  end
  local list, outdir = operands[1], operands[2]
  local addrs, err = input(list, opts.column)
  if not addrs then
    io.stderr:write("clean.lua: ", err, "\n")
    return 1
  end
  local made, merr = validora.mkdir(outdir)
  if not made then
    io.stderr:write("clean.lua: ", merr, "\n")
    return 1
  end
  local out = {}
  for _, st in ipairs(STATUSES) do
    local f, ferr = io.open(outdir .. "/" .. st .. ".txt", "w")
    if not f then
      io.stderr:write("clean.lua: ", ferr, "\n")
      return 1
    end
    out[st] = f
  end
  local all = assert(validora.writer(outdir .. "/results.mpk", "msgpack"))
  local counts, total = {}, 0
  local next_addr, dropped = unique(addrs)
  for rec in validora.verify_all(next_addr, { concurrency = math.tointeger(opts.concurrency) }) do
    assert(all:write(rec))
    out[rec.status]:write(rec.email, "\n")
    counts[rec.status] = (counts[rec.status] or 0) + 1
    total = total + 1
  end
  assert(all:close())
  for _, f in pairs(out) do assert(f:close()) end
  print(string.format("%d addresses verified, %d duplicates dropped", total, dropped()))
  for _, st in ipairs(STATUSES) do
    print(string.format("  %-14s %8d  %s/%s.txt", st, counts[st] or 0, outdir, st))
  end
  return 0
end

return main(...)

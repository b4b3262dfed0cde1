-- scripts/summary.lua — counts the records of a result stream by status, reason, provider
-- and domain.
--   validora run scripts/summary.lua [--top N] [--json] RESULTS...

local args = require "lib.args"

local spec = {
  usage = "usage: validora run scripts/summary.lua [--top N] [--json] RESULTS...",
  help = "Counts the records of RESULTS (msgpack streams, as verify -o writes) by status,\n"
    .. "reason, provider and domain. A damaged stream is an error naming the byte.",
  options = {
    top = { arg = "N", default = 10, help = "domains and providers listed" },
    json = { help = "one JSON object on stdout instead of tables" },
  },
}

local function sorted(counts)
  local out = {}
  for k, n in pairs(counts) do out[#out + 1] = { k, n } end
  table.sort(out, function(a, b) return a[2] > b[2] or (a[2] == b[2] and a[1] < b[1]) end)
  return out
end

local function json_str(s)
  local escaped = string.gsub(s, '[%c"\\]',
    function(c) return string.format("\\u%04x", string.byte(c)) end)
  return '"' .. escaped .. '"'
end

local function json_counts(counts)
  local parts = {}
  for _, kv in ipairs(sorted(counts)) do parts[#parts + 1] = json_str(kv[1]) .. ":" .. kv[2] end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function main(...)
  local opts, operands = args.parse("summary.lua", spec, { ... })
  if not opts then return operands end
  if #operands == 0 then
    io.stderr:write(spec.usage, "\n")
    return 2
  end
  local by = { status = {}, reason = {}, provider = {}, domain = {} }
  local total = 0
  for _, path in ipairs(operands) do
    local recs, err = validora.records(path)
    if not recs then
      io.stderr:write("summary.lua: ", err, "\n")
      return 1
    end
    for rec in recs do
      total = total + 1
      for k, t in pairs(by) do
        local v = rec[k] or "(none)"
        t[v] = (t[v] or 0) + 1
      end
    end
  end
  if opts.json then
    print(string.format('{"total":%d,"status":%s,"reason":%s,"provider":%s,"domain":%s}', total,
      json_counts(by.status), json_counts(by.reason), json_counts(by.provider), json_counts(by.domain)))
    return 0
  end
  print(string.format("%d records", total))
  for _, k in ipairs({ "status", "reason", "provider", "domain" }) do
    print("\nby " .. k .. ":")
    for i, kv in ipairs(sorted(by[k])) do
      if (k == "domain" or k == "provider") and i > opts.top then break end
      print(string.format("  %-32s %8d %6.1f%%", kv[1], kv[2], 100 * kv[2] / total))
    end
  end
  return 0
end

return main(...)

-- scripts/lib/args.lua — command lines of the shipped scripts: --name VALUE, --flag, --help,
-- operands; a usage error names the script and exits 2 (by returning it to the caller).
-- Does not own: what a script does with its options.

local M = {}

-- spec: { usage = "…", help = "…", options = { name = { arg = "N", default = …, help = "…" } } }
-- Returns opts, operands; or nil, exit status after printing help (0) or a usage error (2).
function M.parse(name, spec, argv)
  local opts, operands = {}, {}
  for k, o in pairs(spec.options or {}) do opts[k] = o.default end
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--help" or a == "-h" then
      io.write(spec.usage, "\n", spec.help or "", "\n")
      local names = {}
      for k in pairs(spec.options or {}) do names[#names + 1] = k end
      table.sort(names)
      if #names > 0 then io.write("\nOptions:\n") end
      for _, k in ipairs(names) do
        local o = spec.options[k]
        local left = "  --" .. k .. (o.arg and (" " .. o.arg) or "")
        io.write(string.format("%-24s %s%s\n", left, o.help,
          o.default ~= nil and o.default ~= false and (" (default " .. tostring(o.default) .. ")") or ""))
      end
      return nil, 0
    elseif a == "--" then
      for j = i + 1, #argv do operands[#operands + 1] = argv[j] end
      break
    elseif string.sub(a, 1, 2) == "--" then
      local k, v = string.match(a, "^%-%-([%w%-]+)=(.*)$")
      k = k or string.sub(a, 3)
      local o = (spec.options or {})[k]
      if not o then
        io.stderr:write(name, ": unknown option ", a, "\n", spec.usage, "\n")
        return nil, 2
      end
      if o.arg then
        if not v then
          i = i + 1
          v = argv[i]
        end
        if v == nil then
          io.stderr:write(name, ": --", k, " needs ", o.arg, "\n")
          return nil, 2
        end
        if type(o.default) == "number" then
          local n = tonumber(v)
          if not n then
            io.stderr:write(name, ": --", k, ": not a number: ", v, "\n")
            return nil, 2
          end
          v = n
        end
        opts[k] = v
      else
        opts[k] = true
      end
    else
      operands[#operands + 1] = a
    end
    i = i + 1
  end
  return opts, operands
end

return M

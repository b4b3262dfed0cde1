-- config.lua — makes the example config file (/etc/validora/validora.lua in the package):
-- every setting the binary knows, each under its --help line and commented out with its
-- default, so the file changes nothing until an admin uncomments a line.
-- Usage: lua5.4 config.lua BINARY OUTPUT
-- Owns: the example's layout and wording. Does not own: the settings, their defaults and
-- descriptions (the option tables, through `validora config show` and --help: help.lua).
local help = require("help")

local binary, output = arg[1], arg[2]
if not (binary and output) then
  io.stderr:write("usage: lua5.4 config.lua BINARY OUTPUT\n")
  os.exit(2)
end

local WIDTH = 96

-- Lines of "prefix" .. words, at most WIDTH wide.
local function wrap(prefix, text, out)
  local line = prefix
  for word in text:gmatch("%S+") do
    if #line + 1 + #word > WIDTH and line ~= prefix then
      out[#out + 1] = line
      line = prefix
    end
    line = (line == prefix) and (prefix .. word) or (line .. " " .. word)
  end
  if line ~= prefix then out[#out + 1] = line end
end

-- A setting: its --help line as a comment (prefix note), then the setting itself commented
-- out (prefix: "  -- " at the top level, "  --   " in a section).
local function setting(note, prefix, item, opts, out)
  local o = opts[item.key]
  out[#out + 1] = ""
  wrap(note, o and o.summary or ("(" .. item.note .. ")"), out)
  if item.value == "{}" then
    -- An empty list is shown as a list of one, to be filled in ({} would read as a section).
    out[#out + 1] = ('%s%s = { "%s" }, -- a list; unset by default'):format(prefix, item.key,
      o and o.metavar or "VALUE")
  else
    out[#out + 1] = ("%s%s = %s,"):format(prefix, item.key, item.value)
  end
end

local version = help.version(binary)
local sections = help.config_sections(binary)
local out = {}
local header = {
  "validora.lua: the config file of validora " .. version .. " (validora.lua(5), docs/config.md).",
  "Every setting is here, commented out with its default, so the defaults apply. Uncomment",
  "and change what you need; the command line wins over this file. A setting nil is unset:",
  "its description says what applies then.",
  "`validora config check` checks this file; `validora config show [SECTION]` prints the",
  "settings a command runs with and where each comes from.",
  "The daemon (validora.service) runs `validora serve --config /etc/validora/validora.lua",
  "--state-dir /var/lib/validora`: state_dir here does not change the daemon's.",
  "Set helo and mail_from before you start it: use your FQDN with a matching PTR, and an",
  "address at your own domain (`validora doctor` checks them).",
}
for _, l in ipairs(header) do out[#out + 1] = "-- " .. l end
out[#out + 1] = "return {"
out[#out + 1] = "  -- Engine options, read by every command (a section below may set them for its"
out[#out + 1] = "  -- command alone)."
local first = help.config_show(binary, sections[1])
local engine_opts = help.section_options(binary, sections[1])
for _, item in ipairs(first.top) do setting("  -- ", "  -- ", item, engine_opts, out) end

for _, s in ipairs(sections) do
  local shown = help.config_show(binary, s)
  local opts = help.section_options(binary, s)
  out[#out + 1] = ""
  if #shown.section == 0 then
    out[#out + 1] = ("  -- `validora %s` has no options of its own%s; its section may hold engine"):format(
      s, next(opts) and "" or " in this build")
    out[#out + 1] = "  -- options."
    out[#out + 1] = ("  -- %s = {},"):format(s)
  else
    out[#out + 1] = ("  -- The options of `validora %s` (and engine options for it alone)."):format(s)
    if s == "rules" then
      out[#out + 1] = "  -- One key: the rules section is a table of names, the rules list above a sequence;"
      out[#out + 1] = "  -- to use both, put the list in the section:"
      out[#out + 1] = "  -- rules = { rules = { ... }, format = ... }."
    end
    out[#out + 1] = ("  -- %s = {"):format(s)
    for _, item in ipairs(shown.section) do setting("  --   -- ", "  --   ", item, opts, out) end
    out[#out + 1] = "  -- },"
  end
end
out[#out + 1] = "}"

local f = assert(io.open(output .. ".tmp", "w"))
f:write(table.concat(out, "\n"), "\n")
f:close()
assert(os.rename(output .. ".tmp", output))

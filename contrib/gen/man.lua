-- man.lua — makes a man page from a roff template and the binary's --help, so the option
-- lists never drift from the binary. Usage: lua5.4 man.lua BINARY TEMPLATE OUTPUT
-- Template directives, each alone on a line:
--   @HELP WORDS...      the roff of `BINARY WORDS... --help`: usage, prose, option groups
--   @MISSING WORDS...   up to @END: roff used only when that command has no --help in this
--   ...                 build (a command planned but not built yet), after a marked note
--   @END
--   @REST               every command the binary lists that no @HELP named (a new command
--                       is documented from its --help rather than left out)
--   @SETTINGS           the config file's settings, section by section, each with its default
--                       (`validora config show`) and its --help line
--   @VERSION@, @DATE@   (anywhere) the binary's version; the date of SOURCE_DATE_EPOCH
-- Owns: turning parsed help into roff, the directives. Does not own: parsing help (help.lua),
-- the prose (contrib/man/*.in).
local help = require("help")

local binary, template, output = arg[1], arg[2], arg[3]
if not (binary and template and output) then
  io.stderr:write("usage: lua5.4 man.lua BINARY TEMPLATE OUTPUT\n")
  os.exit(2)
end

-- Text for roff: backslashes, a leading control character, and the hyphens of option names
-- (\- so a copied --name works).
local function esc(s)
  s = s:gsub("\\", "\\e")
  s = (" " .. s):gsub("([%s%(%[%'\"/,])(%-%-?[%w%[][%w%-%[%]=]*)", function(pre, word)
    return pre .. word:gsub("%-", "\\-")
  end):sub(2)
  -- A long word (a URL) may break after / ? & = , (\: is a break point that prints nothing);
  -- without hyphenation it could not break at all.
  s = s:gsub("%S+", function(word)
    if #word <= 40 then return word end
    return (word:gsub("([/?&=,])", "%1\\:"))
  end)
  if s:match("^[%.']") then s = "\\&" .. s end
  return s
end

local function bold(s) return "\\fB" .. esc(s) .. "\\fR" end
local function italic(s) return "\\fI" .. esc(s) .. "\\fR" end

local seen = {} -- option term and summary -> the command first documenting it

local function option_term(o)
  local parts = {}
  for i, flag in ipairs(o.flags) do
    parts[i] = bold(flag)
  end
  local t = table.concat(parts, ", ")
  if o.metavar then t = t .. " " .. italic(o.metavar) end
  return t
end

local function usage_roff(words, usage)
  local prog = "validora" .. (#words > 0 and " " .. table.concat(words, " ") or "")
  local rest = usage:sub(1, #prog) == prog and usage:sub(#prog + 1) or " " .. usage
  return bold(prog) .. esc(rest)
end

local function help_roff(words, h, out)
  out[#out + 1] = ('.SS "validora %s"'):format(table.concat(words, " "))
  if h.usage then
    out[#out + 1] = ".PP"
    out[#out + 1] = usage_roff(words, h.usage)
  end
  local name = "validora " .. table.concat(words, " ")
  local blocks = h.blocks
  local i = 1
  while i <= #blocks do
    local b = blocks[i]
    if b.kind == "para" then
      out[#out + 1] = ".PP"
      for _, l in ipairs(b.lines) do out[#out + 1] = esc(l) end
      i = i + 1
    elseif b.kind == "pre" then
      out[#out + 1] = ".PP"
      out[#out + 1] = ".nf"
      for _, l in ipairs(b.lines) do out[#out + 1] = esc(l:gsub("^  ", "")) end
      out[#out + 1] = ".fi"
      i = i + 1
    elseif b.kind == "group" then
      -- A group of options all documented, word for word, under one earlier command is
      -- named, not repeated (the engine options recur in most commands).
      local items, from, same = {}, nil, true
      local j = i + 1
      while j <= #blocks and blocks[j].kind == "item" do
        local it = blocks[j]
        local where = it.option and seen[it.term .. "\0" .. it.option.summary]
        if not where or (from and where ~= from) then same = false end
        from = from or where
        items[#items + 1] = it
        j = j + 1
      end
      out[#out + 1] = ".PP"
      if same and #items > 0 then
        local flags = {}
        for _, it in ipairs(items) do flags[#flags + 1] = option_term(it.option) end
        out[#out + 1] = ("%s as for \\fB%s\\fR: %s."):format(italic(b.title .. ":"), esc(from),
          table.concat(flags, ", "))
        i = j
      else
        out[#out + 1] = italic(b.title .. ":")
        i = i + 1
      end
    else
      out[#out + 1] = ".TP"
      out[#out + 1] = b.option and option_term(b.option) or bold(b.term)
      out[#out + 1] = esc(table.concat(b.desc, " "))
      if b.option then
        local k = b.term .. "\0" .. b.option.summary
        seen[k] = seen[k] or name
      end
      i = i + 1
    end
  end
end

local version = help.version(binary)
-- The page's date: the package's (dpkg-buildpackage sets SOURCE_DATE_EPOCH from the
-- changelog), so a rebuild makes the same page; none outside a package build.
local epoch = tonumber(os.getenv("SOURCE_DATE_EPOCH") or "")
local date = epoch and os.date("!%Y-%m-%d", epoch) or ""
local covered = {}
local out = {}
local settings_roff

local function emit_help(words)
  covered[table.concat(words, " ")] = true
  local h = help.read(binary, words)
  if h then help_roff(words, h, out) end
  return h ~= nil
end

local function setting_roff(item, opts)
  local o = opts[item.key]
  out[#out + 1] = ".TP"
  out[#out + 1] = ("\\fB%s\\fR = %s"):format(esc(item.key), esc(item.value))
  out[#out + 1] = esc(o and o.summary or "(" .. item.note .. ")")
end

settings_roff = function()
  local sections = help.config_sections(binary)
  out[#out + 1] = '.SS "Engine options (top level)"'
  local opts = help.section_options(binary, sections[1])
  for _, item in ipairs(help.config_show(binary, sections[1]).top) do setting_roff(item, opts) end
  for _, s in ipairs(sections) do
    local shown = help.config_show(binary, s)
    out[#out + 1] = ('.SS "Section %s (validora %s)"'):format(s, s)
    if #shown.section == 0 then
      out[#out + 1] = ".PP"
      out[#out + 1] = ("No options of its own in validora %s; it may hold engine options for " ..
        "\\fBvalidora %s\\fR alone."):format(esc(version), s)
    else
      opts = help.section_options(binary, s)
      for _, item in ipairs(shown.section) do setting_roff(item, opts) end
    end
  end
end

local f = assert(io.open(template))
local lines = {}
for l in f:lines() do lines[#lines + 1] = l end
f:close()

local i = 1
local rest_at
while i <= #lines do
  local l = lines[i]
  local helpw = l:match("^@HELP%s+(.-)%s*$")
  local missw = l:match("^@MISSING%s+(.-)%s*$")
  if helpw then
    local words = {}
    for w in helpw:gmatch("%S+") do words[#words + 1] = w end
    if not emit_help(words) then
      -- The section heading and a note; the @MISSING block that follows says the rest.
      out[#out + 1] = ('.SS "validora %s"'):format(helpw)
      out[#out + 1] = ".PP"
      out[#out + 1] = ("\\fBNot in this build:\\fR validora %s has no \\fB%s\\fR command; " ..
        "what follows describes it as planned."):format(esc(version), esc(helpw))
    end
  elseif missw then
    local body = {}
    i = i + 1
    while i <= #lines and not lines[i]:match("^@END%s*$") do
      body[#body + 1] = lines[i]
      i = i + 1
    end
    assert(i <= #lines, template .. ": @MISSING " .. missw .. " has no @END")
    local words = {}
    for w in missw:gmatch("%S+") do words[#words + 1] = w end
    if not help.text(binary, words) then
      for _, b in ipairs(body) do out[#out + 1] = b end
    end
  elseif l:match("^@SETTINGS%s*$") then
    settings_roff()
  elseif l:match("^@REST%s*$") then
    rest_at = #out + 1
    out[#out + 1] = false -- filled once every @HELP is known
  else
    out[#out + 1] = (l:gsub("@VERSION@", esc(version)):gsub("@DATE@", date))
  end
  i = i + 1
end

if rest_at then
  local rest = {}
  local paths = help.command_paths(binary)
  for _, p in ipairs(paths) do
    local name = table.concat(p, " ")
    if not covered[name] then
      io.stderr:write(("man.lua: %s: no @HELP %s; documented from its --help alone\n"):format(template, name))
      local saved = out
      out = rest
      emit_help(p)
      out = saved
    end
  end
  out[rest_at] = table.concat(rest, "\n")
  if out[rest_at] == "" then table.remove(out, rest_at) end
end

local o = assert(io.open(output .. ".tmp", "w"))
o:write(table.concat(out, "\n"), "\n")
o:close()
assert(os.rename(output .. ".tmp", output))

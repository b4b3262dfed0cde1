-- help.lua — reads `validora ... --help` into a structure the generators (man.lua,
-- completion.lua, config.lua) share: the usage line, paragraphs, option groups, and items
-- (an option with its metavariable and description, or a subcommand with its summary).
-- Owns: running the binary for its help and parsing that text. Does not own: what any
-- generator makes of it, the help text itself (engine/cli_*.c, engine/options.c).
local M = {}

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- The help of `BINARY WORDS... --help`, or nil and why when the command has none (a build
-- without that command: its --help fails).
function M.text(binary, words)
  local argv = { shell_quote(binary) }
  for _, w in ipairs(words) do argv[#argv + 1] = shell_quote(w) end
  local p = assert(io.popen(table.concat(argv, " ") .. " --help 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  if not ok then return nil, ("exit status %s: %s"):format(code, (out:gsub("\n.*", ""))) end
  return out
end

-- One option term ("-i, --input FILE", "--[no-]smtp") into its flags and metavariable:
-- { flags = {"-i", "--input"}, names = {"-i", "--input"}, metavar = "FILE" }; names lists
-- what a user may type (--[no-]smtp: --smtp and --no-smtp).
function M.option_term(term)
  local o = { flags = {}, names = {}, term = term }
  for part in (term .. ", "):gmatch("(.-), ") do
    local flag, metavar = part:match("^(%S+)%s+(%S.*)$")
    flag = flag or part
    if metavar then o.metavar = metavar end
    o.flags[#o.flags + 1] = flag
    local base = flag:match("^%-%-%[no%-%](.+)$")
    if base then
      o.names[#o.names + 1] = "--" .. base
      o.names[#o.names + 1] = "--no-" .. base
      o.negatable = true
    else
      o.names[#o.names + 1] = flag
    end
  end
  return o
end

local function indent(line)
  return #line:match("^ *")
end

-- Parses help text. Blocks, in order: {kind="para", lines}, {kind="pre", lines} (indented
-- text, kept as laid out), {kind="group", title},
-- {kind="item", term, desc (lines), option (option_term) or command (name)}.
function M.parse(text)
  local h = { blocks = {}, options = {}, commands = {} }
  local cur -- the block later lines continue: a para or an item
  for line in (text .. "\n"):gmatch("(.-)\n") do
    local usage = line:match("^Usage: (.+)$")
    local title = line:match("^(%S[^:]*):$")
    local opt_term, opt_desc = line:match("^%s+(%-%S.-)%s%s+(%S.*)$")
    local opt_alone = not opt_term and line:match("^%s+(%-%-?%S+.-)%s*$")
    -- A command is lower-case ("  check   ..."); "  POST  /v1/verify ..." is a table to show.
    local cmd, cmd_desc = line:match("^  ([a-z][a-z0-9%-]*)%s%s+(%S.*)$")
    if cur and cur.kind == "item" and indent(line) > cur.indent + 4 then
      cur.desc[#cur.desc + 1] = line:match("^%s*(.-)%s*$")
    elseif usage and not h.usage then
      h.usage, cur = usage, nil
    elseif line:match("^%s*$") then
      cur = nil
    elseif title then
      h.blocks[#h.blocks + 1] = { kind = "group", title = title }
      cur = nil
    elseif opt_term or opt_alone then
      local o = M.option_term(opt_term or opt_alone)
      cur = { kind = "item", term = o.term, option = o, desc = { opt_desc }, indent = indent(line) }
      h.blocks[#h.blocks + 1] = cur
      h.options[#h.options + 1] = o
    elseif cmd then
      cur = { kind = "item", term = cmd, command = cmd, desc = { cmd_desc }, indent = indent(line) }
      h.blocks[#h.blocks + 1] = cur
      h.commands[#h.commands + 1] = { name = cmd, summary = cmd_desc }
    elseif line:match("^%s") then
      -- Indented text that is no item: shown as it is laid out.
      if not (cur and cur.kind == "pre") then
        cur = { kind = "pre", lines = {} }
        h.blocks[#h.blocks + 1] = cur
      end
      cur.lines[#cur.lines + 1] = line
    elseif cur and cur.kind == "para" then
      cur.lines[#cur.lines + 1] = line
    else
      cur = { kind = "para", lines = { line } }
      h.blocks[#h.blocks + 1] = cur
    end
  end
  for _, o in ipairs(h.options) do o.desc = nil end
  for _, b in ipairs(h.blocks) do
    if b.option then b.option.summary = table.concat(b.desc, " ") end
  end
  return h
end

-- The parsed help of a command, or nil and why.
function M.read(binary, words)
  local text, why = M.text(binary, words)
  if not text then return nil, why end
  return M.parse(text)
end

-- The binary's version string ("0.1.0").
function M.version(binary)
  local p = assert(io.popen("'" .. binary:gsub("'", "'\\''") .. "' --version"))
  local v = p:read("a"):match("(%d[%w%.%-~+]*)")
  p:close()
  return v or "unknown"
end

-- Every command path the binary lists: {"verify"}, {"rules", "check"}, ... (a command whose
-- help lists commands of its own is given by those).
function M.command_paths(binary)
  local top = assert(M.read(binary, {}))
  local paths = {}
  for _, c in ipairs(top.commands) do
    local sub = M.read(binary, { c.name })
    if sub and #sub.commands > 0 then
      for _, s in ipairs(sub.commands) do paths[#paths + 1] = { c.name, s.name } end
    else
      paths[#paths + 1] = { c.name }
    end
  end
  return paths, top
end

-- The config file's sections, from `config show --help` ("Sections: verify, rules, ...").
function M.config_sections(binary)
  local text = assert(M.text(binary, { "config", "show" }))
  local list = assert(text:match("Sections: ([^\n]-)%.?\n"), "config show --help names no sections")
  local s = {}
  for name in list:gmatch("[%w_]+") do s[#s + 1] = name end
  return s
end

-- `validora config show SECTION -c ''` (the defaults) as
-- { top = { {key=, value=, note=}, ... }, section = { ... } }: the engine options at the top,
-- the section's own options in it.
function M.config_show(binary, section)
  local cmd = ("VALIDORA_CONFIG= '%s' config show %s -c ''"):format(binary:gsub("'", "'\\''"), section)
  local p = assert(io.popen(cmd))
  local r = { top = {}, section = {} }
  local into = r.top
  for line in p:lines() do
    local sec = line:match("^  ([%w_]+) = {$")
    local key, value, note = line:match("^%s+([%w_]+) = (.-),%s*%-%-%s*(.*)$")
    if sec then
      into = r.section
    elseif line:match("^  },$") then
      into = r.top
    elseif key then
      into[#into + 1] = { key = key, value = value, note = note }
    end
  end
  assert(p:close(), cmd .. " failed")
  return r
end

-- The options of the command a config section configures, by config key (dns_timeout),
-- from its --help (a command with commands of its own: theirs), or {} when this build has
-- no such command.
function M.section_options(binary, section)
  local by_key = {}
  local function add(h)
    for _, o in ipairs(h.options) do
      for _, n in ipairs(o.names) do
        local long = n:match("^%-%-(.+)$")
        if long and not long:match("^no%-") or (long and not o.negatable) then
          by_key[long:gsub("%-", "_")] = o
        end
      end
    end
  end
  local h = M.read(binary, { section })
  if not h then return by_key end
  add(h)
  for _, c in ipairs(h.commands) do
    local sub = M.read(binary, { section, c.name })
    if sub then add(sub) end
  end
  return by_key
end

return M

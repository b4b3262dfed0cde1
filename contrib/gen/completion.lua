-- completion.lua — makes the bash completion of validora from its --help: the commands, each
-- command's options, and which options take a file or a directory.
-- Usage: lua5.4 completion.lua BINARY OUTPUT
-- Owns: the completion function's shape. Does not own: the commands and options (the
-- binary's --help, parsed by help.lua).
local help = require("help")

local binary, output = arg[1], arg[2]
if not (binary and output) then
  io.stderr:write("usage: lua5.4 completion.lua BINARY OUTPUT\n")
  os.exit(2)
end

-- Metavariables whose values are paths: completed as files or directories.
local FILE_ARGS = { FILE = "file", DIR = "dir", SCRIPT = "file" }

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local paths, top = help.command_paths(binary)
local subs = { [""] = {} } -- command -> its commands
local opts, files, dirs, positional = {}, {}, {}, {}

for _, c in ipairs(top.commands) do subs[""][#subs[""] + 1] = c.name end
for _, p in ipairs(paths) do
  if #p == 2 then
    subs[p[1]] = subs[p[1]] or {}
    table.insert(subs[p[1]], p[2])
  end
  local key = table.concat(p, " ")
  local h = assert(help.read(binary, p))
  local o, f, d = {}, {}, {}
  for _, opt in ipairs(h.options) do
    for _, n in ipairs(opt.names) do
      o[#o + 1] = n
      local kind = opt.metavar and FILE_ARGS[opt.metavar]
      if kind == "file" then f[#f + 1] = n elseif kind == "dir" then d[#d + 1] = n end
    end
  end
  opts[key], files[key], dirs[key] = o, f, d
  -- Arguments that are files (cat FILE..., run SCRIPT.lua): complete file names.
  local after = (h.usage or ""):gsub("^%S+%s+" .. key:gsub("%-", "%%-"), "")
  positional[key] = (after:match("%[FILE%]") or after:match("SCRIPT")) ~= nil
end

local out = {
  "# bash completion for validora, generated from `validora ... --help` by contrib/gen/completion.lua.",
  "# The commands and options of validora " .. help.version(binary) .. ".",
  "_validora() {",
  "  local cur prev words cword",
  "  if declare -F _init_completion >/dev/null; then",
  "    _init_completion || return",
  "  else",
  "    words=(\"${COMP_WORDS[@]}\") cword=$COMP_CWORD",
  "    cur=${words[cword]} prev=${words[cword-1]}",
  "  fi",
  "  local -A subs=(",
}
local function list(t) return q(table.concat(t, " ")) end
local keys = {}
for k in pairs(subs) do keys[#keys + 1] = k end
table.sort(keys)
-- bash has no empty key: the top level's commands are under "_".
for _, k in ipairs(keys) do out[#out + 1] = ("    [%s]=%s"):format(q(k == "" and "_" or k), list(subs[k])) end
out[#out + 1] = "  )"
for _, tbl in ipairs({ { "opts", opts }, { "files", files }, { "dirs", dirs } }) do
  out[#out + 1] = ("  local -A %s=("):format(tbl[1])
  for _, p in ipairs(paths) do
    local k = table.concat(p, " ")
    out[#out + 1] = ("    [%s]=%s"):format(q(k), list(tbl[2][k]))
  end
  out[#out + 1] = "  )"
end
local pos = {}
for _, p in ipairs(paths) do
  local k = table.concat(p, " ")
  if positional[k] then pos[#pos + 1] = k end
end
out[#out + 1] = "  local -A takes_files=("
for _, k in ipairs(pos) do out[#out + 1] = ("    [%s]=1"):format(q(k)) end
out[#out + 1] = "  )"
for _, l in ipairs({
  "  if [ \"$cword\" -eq 1 ]; then",
  "    COMPREPLY=($(compgen -W \"${subs[_]} --help --version\" -- \"$cur\"))",
  "    return",
  "  fi",
  "  local key=${words[1]}",
  "  if [ -n \"${subs[$key]+set}\" ]; then",
  "    if [ \"$cword\" -eq 2 ]; then",
  "      COMPREPLY=($(compgen -W \"${subs[$key]} --help\" -- \"$cur\"))",
  "      return",
  "    fi",
  "    key=\"$key ${words[2]}\"",
  "  fi",
  "  [ -n \"${opts[$key]+set}\" ] || return",
  "  local w",
  "  for w in ${files[$key]}; do",
  "    if [ \"$prev\" = \"$w\" ]; then _validora_paths -f; return; fi",
  "  done",
  "  for w in ${dirs[$key]}; do",
  "    if [ \"$prev\" = \"$w\" ]; then _validora_paths -d; return; fi",
  "  done",
  "  if [[ $cur == -* ]]; then",
  "    COMPREPLY=($(compgen -W \"${opts[$key]}\" -- \"$cur\"))",
  "  elif [ -n \"${takes_files[$key]+set}\" ]; then",
  "    _validora_paths -f",
  "  fi",
  "}",
  "# Files (-f) or directories (-d): bash-completion's _filedir when loaded, else compgen.",
  "_validora_paths() {",
  "  if declare -F _filedir >/dev/null; then",
  "    if [ \"$1\" = -d ]; then _filedir -d; else _filedir; fi",
  "  else",
  "    local IFS=$'\\n'",
  "    if [ \"$1\" = -d ]; then COMPREPLY=($(compgen -d -- \"$cur\"))",
  "    else COMPREPLY=($(compgen -f -- \"$cur\")); fi",
  "  fi",
  "}",
  "complete -F _validora validora",
}) do out[#out + 1] = l end

local f = assert(io.open(output .. ".tmp", "w"))
f:write(table.concat(out, "\n"), "\n")
f:close()
assert(os.rename(output .. ".tmp", output))

-- luacheck config. Rules run in the sandbox of engine/rules.c and may use only what it
-- gives them; luacheck flags anything else (io, load, coroutine, ...).
stds.sandbox = {
  read_globals = {
    "assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber", "tostring",
    "type", "xpcall", "rawequal", "rawget", "rawlen", "rawset", "setmetatable",
    "getmetatable", "_VERSION", "string", "table", "math", "utf8", "require",
    os = { fields = { "time", "clock", "date", "difftime" } },
    "log", "config", "dns", "http", "json", "sleep", "now", "errors",
  },
}
std = "sandbox"
max_line_length = 110
files["tests/rules"] = { std = "lua54", max_line_length = 140 }
-- The generators of installed files (man pages, completion, example config): plain Lua 5.4.
files["contrib/gen"] = { std = "lua54" }
-- Rule test files (validora rules test, docs/rules-test.md) are data loaded in an environment
-- holding only string, table and math; real reply texts make long lines.
stds.rulestest = { read_globals = { "string", "table", "math" } }
files["rules/tests"] = { std = "rulestest", max_line_length = 140 }
files["tests/rules_http/tests"] = { std = "rulestest", max_line_length = 140 }
-- Scripts (validora run, docs/scripts.md): Lua 5.4 minus os.execute/exit/remove/rename,
-- io.popen, dofile/loadfile, debug; plus the validora table.
stds.script = {
  read_globals = {
    "assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber", "tostring",
    "type", "xpcall", "rawequal", "rawget", "rawlen", "rawset", "setmetatable",
    "getmetatable", "_VERSION", "string", "table", "math", "utf8", "require", "print",
    "coroutine", "collectgarbage", "load", "arg",
    os = { fields = { "time", "clock", "date", "difftime", "getenv" } },
    io = { fields = { "open", "lines", "read", "write", "stdout", "stderr", "stdin", "close", "type" } },
    validora = { fields = { "verify", "verify_all", "lines", "csv", "records", "writer", "mkdir", "set", "version" } },
  },
}
files["scripts"] = { std = "script" }

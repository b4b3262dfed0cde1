/* test_lua_state.c — sandbox.c's state factory (issue 18, item 4): each profile gets its own
 * libraries and limits from vd_lua_new.
 *  - config: the rules' base (no io, os.execute, require dirs), 8 MiB, 10 M instructions;
 *  - testfile: string (no dump), table and math in the chunk's _ENV, 64 MiB, 10 M
 *    instructions with its own message;
 *  - script: the standard libraries minus process control and bytecode, package read-only,
 *    setmetatable without __gc, no instruction budget.
 * And vd_lua_pattern_find (lua_pattern.c), string.find for callers without Lua.
 * Does not test: the rule profile (test_sandbox), scripts through `validora run`
 * (tests/functional/scripts.sh, script_sandbox.sh). */
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "check.h"
#include "lua_pattern.h"
#include "sandbox.h"

/* Runs code as a chunk on a state of the profile (the testfile profile through
 * vd_lua_loadtext, the others as a plain text chunk): LUA_OK with the first result as text
 * in out, or the error message in out. */
static int run(vd_lua_profile profile, const char *code, char *out, size_t len)
{
    char err[256];
    lua_State *L = vd_lua_new(profile, NULL, NULL, 0, err, sizeof err);
    if (!L) {
        snprintf(out, len, "%s", err);
        return -1;
    }
    int st;
    if (profile == VD_LUA_TESTFILE) {
        st = vd_lua_loadtext(L, code, strlen(code), "=test");
    } else {
        vd_sandbox_service(L);
        st = luaL_loadbufferx(L, code, strlen(code), "=test", "t");
        if (st == LUA_OK && profile == VD_LUA_CONFIG) { /* as conffile.c: the base's _ENV */
            lua_getfield(L, LUA_REGISTRYINDEX, "validora.sandbox");
            lua_setupvalue(L, -2, 1);
        }
    }
    if (st == LUA_OK) st = lua_pcall(L, 0, 1, 0);
    const char *s = luaL_tolstring(L, -1, NULL);
    snprintf(out, len, "%s", s ? s : "?");
    vd_sandbox_close(L);
    return st;
}

static bool gives(vd_lua_profile profile, const char *code, bool want_ok, const char *want)
{
    char out[512];
    int st = run(profile, code, out, sizeof out);
    bool ok = (st == LUA_OK) == want_ok && strstr(out, want) != NULL;
    if (!ok) fprintf(stderr, "  profile %d: %s -> %s\n", (int)profile, code, out);
    return ok;
}

static void test_limits(void)
{
    vd_sandbox_limits c = vd_lua_limits(VD_LUA_CONFIG), t = vd_lua_limits(VD_LUA_TESTFILE),
                      s = vd_lua_limits(VD_LUA_SCRIPT);
    CHECK(c.memory == 8u << 20 && c.load_instructions == 10000000u);
    CHECK(t.memory == 64u << 20 && t.load_instructions == 10000000u);
    CHECK(s.memory == 0 && s.load_instructions == 0);
    char err[128];
    CHECK(vd_lua_new(VD_LUA_RULE, NULL, NULL, 0, err, sizeof err) == NULL); /* limits: options */
}

static void test_config(void)
{
    CHECK(gives(VD_LUA_CONFIG, "return tostring(io) .. tostring(os.execute) .. tostring(load)",
                true, "nilnilnil"));
    CHECK(gives(VD_LUA_CONFIG, "while true do end", false, "instruction budget"));
    CHECK(gives(VD_LUA_CONFIG, "return #string.rep('x', 16 << 20)", false, "memory"));
    CHECK(gives(VD_LUA_CONFIG, "return setmetatable({}, {__gc = function() end})", false,
                "__gc is not allowed"));
}

static void test_testfile(void)
{
    CHECK(gives(VD_LUA_TESTFILE,
                "local gone = (string.dump or io or os or require or pcall or load or tostring "
                "or setmetatable) == nil and ' none' or ' some'\n"
                "return string.upper('x') .. table.concat({1, 2}) .. math.floor(2.5) .. gone",
                true, "X122 none"));
    CHECK(gives(VD_LUA_TESTFILE, "local n = 0 while true do n = n + 1 end", false,
                "the test file runs too long (it should be data)"));
    CHECK(gives(VD_LUA_TESTFILE, "\x1bLua", false, "binary"));
}

static void test_script(void)
{
    CHECK(gives(VD_LUA_SCRIPT,
                "return tostring(os.execute) .. tostring(io.popen) .. tostring(string.dump) .. "
                "tostring(('').dump) .. tostring(debug) .. tostring(dofile) .. "
                "tostring(package.loadlib) .. type(io.open) .. type(os.time)",
                true, "nilnilnilnilnilnilnilfunctionfunction"));
    CHECK(gives(VD_LUA_SCRIPT, "package.path = '/tmp/?.lua'", false, "package is read-only"));
    CHECK(gives(VD_LUA_SCRIPT, "return setmetatable({}, {__gc = function() end})", false,
                "__gc is not allowed"));
    CHECK(gives(VD_LUA_SCRIPT, "return select(2, load(string.char(27) .. 'Lua'))", true, "binary"));
    /* No budget: a script runs as long as its list (past the config profile's 10 M). */
    CHECK(gives(VD_LUA_SCRIPT, "local n = 0 for i = 1, 20000000 do n = n + 1 end return n", true,
                "20000000"));
}

static void test_pattern(void)
{
    char err[256] = "";
    const char body[] = "login=a%40b.test&x=1";
    CHECK(vd_lua_pattern_find(body, sizeof body - 1, "login=[^&]+", err, sizeof err) == 1);
    CHECK(vd_lua_pattern_find(body, sizeof body - 1, "^x=", err, sizeof err) == 0);
    CHECK(vd_lua_pattern_find("a\0b", 3, "b$", err, sizeof err) == 1); /* a NUL in the subject */
    CHECK(vd_lua_pattern_find(body, sizeof body - 1, "[a", err, sizeof err) == -1);
    CHECK(strstr(err, "malformed pattern") != NULL);
}

int main(void)
{
    test_pattern();
    test_limits();
    test_config();
    test_testfile();
    test_script();
    return check_done();
}

/* lua_pattern.c — string.find for callers without Lua (lua_pattern.h). */
#include <stdio.h>
#include <lauxlib.h>
#include "lua_pattern.h"
#include "sandbox.h"

static int find(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "string");
    lua_getfield(L, -1, "find");
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_call(L, 2, 1);
    return 1;
}

int vd_lua_pattern_find(const char *s, size_t len, const char *pattern, char *err, size_t errlen)
{
    lua_State *L = vd_lua_new(VD_LUA_TESTFILE, NULL, NULL, 0, err, errlen);
    if (!L) return -1;
    lua_pushcfunction(L, find);
    lua_pushlstring(L, s, len);
    lua_pushstring(L, pattern);
    int rc = -1;
    if (lua_pcall(L, 2, 1, 0) != LUA_OK)
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
    else
        rc = !lua_isnil(L, -1);
    vd_sandbox_close(L);
    return rc;
}

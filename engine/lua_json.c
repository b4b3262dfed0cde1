/* lua_json.c — the `json` table rules get: json.decode(s), json.encode(v), json.null.
 *
 * decode: objects become tables, arrays sequences, null json.null (a light userdata, the same
 * value in every rule file), integers Lua integers, other numbers floats; nil, "bad_json",
 * detail for text that is not JSON, is over VD_JSON_MAX_INPUT bytes or nests deeper than
 * VD_JSON_MAX_DEPTH. encode: a table whose keys are exactly 1..n is an array, a table with
 * string keys an object (an empty table is an object, {}), json.null is null; other values
 * (functions, mixed keys, NaN, invalid UTF-8, cycles, too deep) give nil, "bad_json", detail.
 * Does not own: JSON parsing and writing (libjansson). */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <lauxlib.h>
#include "lua_json.h"

#define VD_JSON_MAX_INPUT (4u << 20) /* bytes json.decode reads: four of http's 1 MiB bodies */
#define VD_JSON_MAX_DEPTH 64         /* nesting: real answers nest a handful of levels */

/* The error name rules see (docs/errors.md). */
const char VD_JSON_ERR[] = "bad_json";

static char null_mark;

static bool push_value(lua_State *L, json_t *v, int depth, char *err, size_t errlen);

static bool push_object(lua_State *L, json_t *v, int depth, char *err, size_t errlen)
{
    lua_createtable(L, 0, (int)json_object_size(v));
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x)
    {
        lua_pushstring(L, k);
        if (!push_value(L, x, depth + 1, err, errlen)) return false;
        lua_rawset(L, -3);
    }
    return true;
}

static bool push_value(lua_State *L, json_t *v, int depth, char *err, size_t errlen)
{
    if (depth > VD_JSON_MAX_DEPTH) {
        snprintf(err, errlen, "nested deeper than %d", VD_JSON_MAX_DEPTH);
        return false;
    }
    if (!lua_checkstack(L, 4)) {
        snprintf(err, errlen, "out of stack");
        return false;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return push_object(L, v, depth, err, errlen);
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        lua_createtable(L, (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            if (!push_value(L, json_array_get(v, i), depth + 1, err, errlen)) return false;
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        return true;
    }
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(v), json_string_length(v));
        return true;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(v));
        return true;
    case JSON_REAL:
        lua_pushnumber(L, json_real_value(v));
        return true;
    case JSON_TRUE:
    case JSON_FALSE:
        lua_pushboolean(L, json_is_true(v));
        return true;
    case JSON_NULL:
        lua_pushlightuserdata(L, &null_mark);
        return true;
    }
    snprintf(err, errlen, "unknown JSON type");
    return false;
}

/* convert(json, err): the Lua value of json; a Lua error with err set when it cannot be. */
static int convert(lua_State *L)
{
    json_t *v = lua_touserdata(L, 1);
    char *err = lua_touserdata(L, 2);
    lua_settop(L, 0);
    if (!push_value(L, v, 1, err, 256)) return luaL_error(L, "%s", err);
    return 1;
}

/* push_string(s): s as a Lua string (in protected mode, so that s can be freed after). */
static int push_string(lua_State *L)
{
    lua_pushstring(L, lua_touserdata(L, 1));
    return 1;
}

static int fail(lua_State *L, const char *detail)
{
    lua_pushnil(L);
    lua_pushstring(L, VD_JSON_ERR);
    lua_pushstring(L, detail);
    return 3;
}

static int l_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    char err[256];
    if (len > VD_JSON_MAX_INPUT) {
        snprintf(err, sizeof err, "%zu bytes: over the %u bytes json.decode reads", len,
                 VD_JSON_MAX_INPUT);
        return fail(L, err);
    }
    json_error_t e;
    json_t *v = json_loadb(s, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
    if (!v) {
        snprintf(err, sizeof err, "line %d column %d: %s", e.line, e.column, e.text);
        return fail(L, err);
    }
    /* converted in protected mode: the sandbox's memory cap may raise mid-way, and the
     * jansson value must be freed either way */
    lua_pushcfunction(L, convert);
    lua_pushlightuserdata(L, v);
    lua_pushlightuserdata(L, err);
    int st = lua_pcall(L, 2, 1, 0);
    json_decref(v);
    if (st != LUA_OK) {
        if (st == LUA_ERRMEM) return lua_error(L); /* out of memory stays out of memory */
        lua_pop(L, 1);
        return fail(L, err);
    }
    return 1;
}

/* ---- encode ---- */

static json_t *to_json(lua_State *L, int idx, int depth, char *err, size_t errlen);

/* n when the table at idx has exactly the keys 1..n (n > 0), 0 when it has none, -1 when its
 * keys are all strings, -2 otherwise. */
static lua_Integer table_kind(lua_State *L, int idx)
{
    lua_Integer count = 0, max = 0;
    bool strings = false, others = false;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            strings = true;
        } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0) {
            count++;
            if (lua_tointeger(L, -1) > max) max = lua_tointeger(L, -1);
        } else {
            others = true;
        }
    }
    if (others || (strings && count)) return -2;
    if (strings) return -1;
    return count == max ? count : -2;
}

static json_t *table_json(lua_State *L, int idx, int depth, char *err, size_t errlen)
{
    lua_Integer kind = table_kind(L, idx);
    if (kind == -2) {
        snprintf(err, errlen, "a table with keys that are neither 1..n nor all strings");
        return NULL;
    }
    if (kind > 0) {
        json_t *a = json_array();
        for (lua_Integer i = 1; a && i <= kind; i++) {
            lua_rawgeti(L, idx, i);
            json_t *x = to_json(L, lua_gettop(L), depth + 1, err, errlen);
            lua_pop(L, 1);
            if (!x || json_array_append_new(a, x) != 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    json_t *o = json_object();
    lua_pushnil(L);
    while (o && lua_next(L, idx)) {
        size_t kl;
        const char *k = lua_tolstring(L, -2, &kl);
        json_t *x = to_json(L, lua_gettop(L), depth + 1, err, errlen);
        lua_pop(L, 1);
        if (!x || json_object_setn_new(o, k, kl, x) != 0) {
            if (x && !*err) snprintf(err, errlen, "a key that is not UTF-8");
            lua_pop(L, 1);
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static json_t *to_json(lua_State *L, int idx, int depth, char *err, size_t errlen)
{
    if (depth > VD_JSON_MAX_DEPTH) {
        snprintf(err, errlen, "nested deeper than %d (or a table that holds itself)",
                 VD_JSON_MAX_DEPTH);
        return NULL;
    }
    if (!lua_checkstack(L, 6)) {
        snprintf(err, errlen, "out of stack");
        return NULL;
    }
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        return json_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) return json_integer((json_int_t)lua_tointeger(L, idx));
        if (!isfinite(lua_tonumber(L, idx))) {
            snprintf(err, errlen, "NaN and infinities have no JSON form");
            return NULL;
        }
        return json_real((double)lua_tonumber(L, idx));
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        json_t *j = json_stringn(s, n);
        if (!j) snprintf(err, errlen, "a string that is not UTF-8");
        return j;
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == &null_mark) return json_null();
        break;
    case LUA_TTABLE:
        return table_json(L, idx, depth, err, errlen);
    default:
        break;
    }
    snprintf(err, errlen, "a %s has no JSON form", luaL_typename(L, idx));
    return NULL;
}

static int l_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    char err[256] = "";
    json_t *v = to_json(L, 1, 1, err, sizeof err);
    if (!v) return fail(L, err[0] ? err : "out of memory");
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    if (!s) return fail(L, "out of memory");
    lua_pushcfunction(L, push_string);
    lua_pushlightuserdata(L, s);
    int st = lua_pcall(L, 1, 1, 0);
    free(s);
    if (st != LUA_OK) return lua_error(L);
    return 1;
}

void vd_lua_json_open(lua_State *L)
{
    static const luaL_Reg fns[] = {{"decode", l_decode}, {"encode", l_encode}, {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_pushlightuserdata(L, &null_mark);
    lua_setfield(L, -2, "null");
}

/* conffile.c — the config file (validora/config.h): evaluates it in a state of the config
 * profile (sandbox.c: the rules' base without require, 8 MiB, 10 M instructions) and hands
 * its table to the caller as flat (section, option, text) items.
 *
 * Owns: the shape of its table (top-level options, sections one level deep, lists as
 * sequences), turning Lua values into option text.
 * Does not own: the state's libraries or limits (sandbox.c's config profile), option names,
 * defaults or checks (options.c and the CLI tables), where the file lives or how command-line
 * values override it (cli_common.c). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lua.h>
#include "sandbox.h"
#include "validora/config.h"

#define CONFIG_ITEM_MAX 4096 /* bytes of one value's text */

typedef struct reader {
    lua_State *L;
    const char *path;
    vd_config_item_cb cb;
    void *arg;
    char *err;
    size_t errlen;
} reader;

static int fail(reader *r, const char *section, const char *key, const char *what)
{
    snprintf(r->err, r->errlen, "%s: %s%s%s: %s", r->path, section ? section : "",
             section ? "." : "", key, what);
    return -1;
}

/* The option name of a file key: '_' written '-'. */
static void option_name(const char *key, char *out, size_t len)
{
    snprintf(out, len, "%s", key);
    for (char *p = out; *p; p++)
        if (*p == '_') *p = '-';
}

/* The scalar at idx as option text into buf; false when it is not a scalar. */
static bool scalar_text(lua_State *L, int idx, char *buf, size_t len)
{
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        snprintf(buf, len, "%s", lua_toboolean(L, idx) ? "1" : "0");
        return true;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            snprintf(buf, len, "%lld", (long long)lua_tointeger(L, idx));
        else
            snprintf(buf, len, "%.17g", lua_tonumber(L, idx));
        return true;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (n >= len || strlen(s) != n) return false;
        memcpy(buf, s, n + 1);
        return true;
    }
    default:
        return false;
    }
}

/* An empty table: an empty list, or an empty section; the caller tells which (text NULL). */
static int emit_empty(reader *r, const char *section, const char *key)
{
    char name[128], cberr[512] = "";
    option_name(key, name, sizeof name);
    if (r->cb(r->arg, section, name, NULL, cberr, sizeof cberr) != 0)
        return fail(r, section, key, cberr);
    return 0;
}

static int emit(reader *r, const char *section, const char *key, int idx)
{
    char name[128], text[CONFIG_ITEM_MAX];
    option_name(key, name, sizeof name);
    if (!scalar_text(r->L, idx, text, sizeof text))
        return fail(r, section, key,
                    lua_type(r->L, idx) == LUA_TSTRING
                        ? "a string holding NUL or longer than 4095 bytes"
                        : "not an option value (a boolean, number, string or list of them)");
    char cberr[512] = "";
    if (r->cb(r->arg, section, name, text, cberr, sizeof cberr) != 0)
        return fail(r, section, key, cberr);
    return 0;
}

/* The sorted string keys of the table at idx, as a new sequence on the stack; false (with
 * nothing pushed) when a key is not a string or the table is a sequence. */
static bool sorted_keys(reader *r, int idx, const char *section, int *rc)
{
    lua_State *L = r->L;
    lua_newtable(L);
    lua_Integer n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 2);
            *rc = fail(r, section, "?", "every key must be a name (an option or a section)");
            return false;
        }
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, ++n);
    }
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "sort");
    lua_pushvalue(L, -3);
    lua_call(L, 1, 0);
    lua_pop(L, 1);
    return true;
}

static bool is_sequence(lua_State *L, int idx)
{
    lua_Integer len = (lua_Integer)lua_rawlen(L, idx), count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        count++;
    }
    return len > 0 && count == len;
}

static int read_table(reader *r, int idx, const char *section);

/* One key of a table: a scalar, a list, or (top level only) a section. */
static int read_entry(reader *r, const char *section, const char *key, int v)
{
    lua_State *L = r->L;
    if (lua_type(L, v) != LUA_TTABLE) return emit(r, section, key, v);
    lua_pushnil(L);
    if (!lua_next(L, v)) return emit_empty(r, section, key);
    lua_pop(L, 2);
    if (is_sequence(L, v)) {
        for (lua_Integer i = 1, n = (lua_Integer)lua_rawlen(L, v); i <= n; i++) {
            lua_rawgeti(L, v, i);
            int rc = emit(r, section, key, lua_gettop(L));
            lua_pop(L, 1);
            if (rc) return rc;
        }
        return 0;
    }
    if (section) return fail(r, section, key, "sections do not nest");
    return read_table(r, v, key);
}

/* Is the value at idx a section (a table of named keys)? */
static bool is_section(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TTABLE) return false;
    lua_pushnil(L);
    if (!lua_next(L, idx)) return false; /* {}: emitted with the options, as an empty list */
    lua_pop(L, 2);
    return !is_sequence(L, idx);
}

/* Top-level settings first, then the sections, so a section's value wins over the same
 * option at the top level whatever their names sort like. */
static int read_table(reader *r, int idx, const char *section)
{
    lua_State *L = r->L;
    int rc = 0;
    if (!sorted_keys(r, idx, section, &rc)) return rc;
    int keys = lua_gettop(L);
    for (int pass = 0; pass < (section ? 1 : 2) && !rc; pass++)
        for (lua_Integer i = 1, n = (lua_Integer)lua_rawlen(L, keys); i <= n && !rc; i++) {
            lua_rawgeti(L, keys, i);
            const char *key = lua_tostring(L, -1);
            lua_pushvalue(L, -1);
            lua_rawget(L, idx);
            int v = lua_gettop(L);
            if (section || is_section(L, v) == (pass == 1)) rc = read_entry(r, section, key, v);
            lua_pop(L, 2);
        }
    lua_pop(L, 1);
    return rc;
}

int vd_config_read(const char *path, vd_config_item_cb cb, void *arg, char *err, size_t errlen)
{
    FILE *probe = fopen(path, "r");
    if (!probe) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        errno = e;
        return -1;
    }
    fclose(probe);
    char serr[256];
    lua_State *L = vd_lua_new(VD_LUA_CONFIG, NULL, NULL, 0, serr, sizeof serr);
    if (!L) {
        snprintf(err, errlen, "%s: %s", path, serr);
        errno = ENOMEM;
        return -1;
    }
    reader r = {.L = L, .path = path, .cb = cb, .arg = arg, .err = err, .errlen = errlen};
    int rc = -1;
    vd_sandbox_service(L);
    if (vd_sandbox_loadfile(L, path, "config") != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (!msg) msg = "error";
        bool named = !strncmp(msg, path, strlen(path));
        snprintf(err, errlen, "%s%s%s", named ? "" : path, named ? "" : ": ", msg);
    } else if (lua_type(L, -1) != LUA_TTABLE) {
        snprintf(err, errlen, "%s: must return a table of settings (return { dns = \"...\" })",
                 path);
    } else {
        rc = read_table(&r, lua_gettop(L), NULL);
    }
    vd_sandbox_close(L);
    errno = rc ? EINVAL : 0;
    return rc;
}

/* sandbox.c — the Lua state rule code runs in (see sandbox.h).
 *
 * Rule code sees only the base: the basic functions without load, loadfile, dofile,
 * collectgarbage and print; copies of string, table, math and utf8; os.time, os.clock,
 * os.date and os.difftime; require limited to the rules directory. No io, no os.execute, no
 * debug, no coroutine (a rule's own coroutine would swallow the engine's yields), no binary
 * chunks, no string.dump, no __gc finalizers (setmetatable refuses them: Lua runs finalizers
 * with hooks off, so the budget would never stop one), and pcall/xpcall that stop catching
 * once the budget and a small grace are spent (the budget's error cannot be swallowed). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lauxlib.h>
#include <lualib.h>
#include <openssl/evp.h>
#include "lua_task.h"
#include "sandbox.h"

#define HOOK_EVERY 1000 /* instructions between two budget checks */
/* Instructions past the budget that cleanup code (validora/once.lua waking its waiters) may
 * still run inside a pcall; past them, pcall and xpcall no longer catch the budget's error. */
#define BUDGET_GRACE 20000

static const char BASE_KEY[] = "validora.sandbox";
static const char LOADED_KEY[] = "validora.loaded";
static const char DIRS_KEY[] = "validora.dirs";

typedef struct sandbox {
    vd_sandbox_limits lim;
    size_t mem;
    uint64_t load_count;
    EVP_MD_CTX *digest; /* over every file loaded */
} sandbox;

static sandbox *sandbox_of(lua_State *L)
{
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

static void *sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    sandbox *sb = ud;
    if (!ptr) osize = 0;
    if (nsize == 0) {
        free(ptr);
        sb->mem -= osize;
        return NULL;
    }
    if (nsize > osize && sb->mem + (nsize - osize) > sb->lim.memory) return NULL;
    void *p = realloc(ptr, nsize);
    if (p) sb->mem = sb->mem - osize + nsize;
    return p;
}

/* Instruction budget: code stuck in a loop fails its task (or the load), not the process. */
static void count_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    sandbox *sb = sandbox_of(L);
    vd_task *t = vd_task_of(L);
    if (!t) {
        sb->load_count += HOOK_EVERY;
        if (sb->load_count > sb->lim.load_instructions)
            luaL_error(L, "rule used more than its instruction budget while loading");
        return;
    }
    uint64_t *count = vd_task_counter(t);
    *count += HOOK_EVERY;
    if (*count > sb->lim.task_instructions)
        luaL_error(L, "rule used more than its instruction budget");
}

/* Whether the running budget (the task's, else the load's) is spent, grace included: then no
 * pcall or xpcall may catch an error, so code that catches the budget's error in a loop (a C
 * function calling back, e.g. string.gsub with a table whose __index is pcall) cannot go on. */
static bool budget_spent(lua_State *L)
{
    sandbox *sb = sandbox_of(L);
    vd_task *t = vd_task_of(L);
    if (!t) return sb->load_count > sb->lim.load_instructions + BUDGET_GRACE;
    return *vd_task_counter(t) > sb->lim.task_instructions + BUDGET_GRACE;
}

static int finish_pcall(lua_State *L, int status, lua_KContext extra)
{
    if (status != LUA_OK && status != LUA_YIELD) {
        if (budget_spent(L)) return lua_error(L); /* the error, on top, goes on up */
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)extra;
}

/* pcall and xpcall as the base library's (yieldable: a rule may wait for SMTP inside one),
 * except that they rethrow once the budget is spent. */
static int sb_pcall(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_pushboolean(L, 1);
    lua_insert(L, 1);
    int status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, finish_pcall);
    return finish_pcall(L, status, 0);
}

static int sb_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2); /* handler, true, f, args... */
    int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finish_pcall);
    return finish_pcall(L, status, 2);
}

int vd_sandbox_setmetatable(lua_State *L)
{
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: __gc is not allowed (a finalizer runs outside "
                                 "the instruction budget)");
        lua_pop(L, 1);
    }
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

void vd_sandbox_hook(lua_State *co)
{
    lua_sethook(co, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
}

void vd_sandbox_service(lua_State *L)
{
    sandbox_of(L)->load_count = 0;
}

size_t vd_sandbox_memory(lua_State *L)
{
    return sandbox_of(L)->mem;
}

/* A fresh _ENV: copies of the base's tables (keeping their protected metatables), the rest
 * reached through __index. */
static void push_env(lua_State *L)
{
    lua_newtable(L);
    int env = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, BASE_KEY);
    int base = env + 1;
    lua_pushnil(L);
    while (lua_next(L, base)) {
        if (lua_type(L, -1) == LUA_TTABLE) {
            int from = lua_gettop(L);
            lua_newtable(L);
            lua_pushnil(L);
            while (lua_next(L, from)) {
                lua_pushvalue(L, -2);
                lua_insert(L, -2);
                lua_rawset(L, -4);
            }
            if (lua_getmetatable(L, from)) lua_setmetatable(L, -2);
            lua_pushvalue(L, -3); /* key */
            lua_insert(L, -2);
            lua_rawset(L, env);
        }
        lua_pop(L, 1);
    }
    lua_newtable(L); /* the env's metatable */
    lua_pushvalue(L, base);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, env);
    lua_pop(L, 1); /* base */
}

/* The whole file, at most VD_SANDBOX_MAX_FILE bytes; NULL with a message pushed. */
static char *read_file(lua_State *L, const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        lua_pushfstring(L, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(VD_SANDBOX_MAX_FILE + 1);
    size_t n = buf ? fread(buf, 1, VD_SANDBOX_MAX_FILE + 1, f) : 0;
    bool bad = !buf || ferror(f) || n > VD_SANDBOX_MAX_FILE;
    fclose(f);
    if (bad) {
        lua_pushfstring(L, "%s: %s", path,
                        !buf                      ? "out of memory"
                        : n > VD_SANDBOX_MAX_FILE ? "file too large"
                                                  : "read error");
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

int vd_sandbox_loadfile(lua_State *L, const char *path, const char *name)
{
    size_t len;
    char *src = read_file(L, path, &len);
    if (!src) return LUA_ERRFILE;
    sandbox *sb = sandbox_of(L);
    EVP_DigestUpdate(sb->digest, name, strlen(name) + 1);
    EVP_DigestUpdate(sb->digest, src, len);
    char chunk[4200];
    snprintf(chunk, sizeof chunk, "@%s", path);
    int st = luaL_loadbufferx(L, src, len, chunk, "t");
    free(src);
    if (st != LUA_OK) return st;
    push_env(L);
    if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
    return LUA_OK;
}

void vd_sandbox_digest(lua_State *L, unsigned char out[32])
{
    EVP_MD_CTX *copy = EVP_MD_CTX_new();
    unsigned n = 0;
    if (!copy || !EVP_MD_CTX_copy_ex(copy, sandbox_of(L)->digest) ||
        !EVP_DigestFinal_ex(copy, out, &n))
        memset(out, 0, 32);
    EVP_MD_CTX_free(copy);
}

bool vd_sandbox_find(lua_State *L, const char *name, char *path, size_t len)
{
    lua_getfield(L, LUA_REGISTRYINDEX, DIRS_KEY);
    bool found = false;
    for (lua_Integer i = (lua_Integer)luaL_len(L, -1); i >= 1 && !found; i--) {
        lua_rawgeti(L, -1, i);
        int off = snprintf(path, len, "%s/", lua_tostring(L, -1));
        lua_pop(L, 1);
        for (const char *p = name; *p && off < (int)len - 5; p++)
            path[off++] = *p == '.' ? '/' : *p;
        snprintf(path + off, len - (size_t)off, ".lua");
        found = access(path, R_OK) == 0;
    }
    lua_pop(L, 1);
    return found;
}

static bool module_name_ok(const char *name)
{
    if (!*name || *name == '.') return false;
    for (const char *p = name; *p; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '_' ||
                  (*p == '.' && p[1] != '.' && p[1] != '\0');
        if (!ok) return false;
    }
    return true;
}

/* require(name) inside the sandbox: modules of the rules directory only, each run once per
 * state in its own environment. */
static int l_require(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (!module_name_ok(name)) return luaL_error(L, "require: bad module name '%s'", name);
    lua_getfield(L, LUA_REGISTRYINDEX, LOADED_KEY);
    lua_getfield(L, -1, name);
    if (!lua_isnil(L, -1)) return 1;
    lua_pop(L, 1);
    char path[4096];
    if (!vd_sandbox_find(L, name, path, sizeof path))
        return luaL_error(L, "module '%s' not found in the rules directories", name);
    if (vd_sandbox_loadfile(L, path, name) != LUA_OK) return lua_error(L);
    lua_call(L, 0, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, name);
    return 1;
}

int vd_sandbox_require(lua_State *L, const char *name)
{
    lua_pushcfunction(L, l_require);
    lua_pushstring(L, name);
    return lua_pcall(L, 1, 1, 0);
}

static void copy_fields(lua_State *L, int from, int to, const char *const *names)
{
    for (; *names; names++) {
        lua_getfield(L, from, *names);
        lua_setfield(L, to, *names);
    }
}

/* A copy of library lib of the globals at g, as field lib of base. */
static void copy_lib(lua_State *L, int g, int base, const char *lib)
{
    lua_getfield(L, g, lib);
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, -3)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_settable(L, -4);
    }
    lua_pushnil(L);
    lua_setfield(L, -2, "dump"); /* string.dump makes bytecode: rules get none */
    lua_setfield(L, base, lib);
    lua_pop(L, 1);
}

static void build_base(lua_State *L)
{
    static const char *const globals[] = {
        "assert",   "error",        "ipairs",       "next",     "pairs",    "pcall",  "select",
        "tonumber", "tostring",     "type",         "xpcall",   "rawequal", "rawget", "rawlen",
        "rawset",   "setmetatable", "getmetatable", "_VERSION", NULL};
    static const char *const libs[] = {"string", "table", "math", "utf8", NULL};
    static const char *const oslib[] = {"time", "clock", "date", "difftime", NULL};
    lua_newtable(L);
    int base = lua_gettop(L);
    lua_pushglobaltable(L);
    int g = lua_gettop(L);
    copy_fields(L, g, base, globals);
    static const luaL_Reg guarded[] = {{"pcall", sb_pcall},
                                       {"xpcall", sb_xpcall},
                                       {"setmetatable", vd_sandbox_setmetatable},
                                       {NULL, NULL}};
    for (const luaL_Reg *r = guarded; r->name; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, base, r->name);
    }
    /* string.dump also goes from the string library itself: ("").dump reaches it through
     * the strings' metatable. */
    lua_getfield(L, g, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
    for (const char *const *l = libs; *l; l++)
        copy_lib(L, g, base, *l);
    lua_getfield(L, g, "os");
    lua_newtable(L);
    copy_fields(L, lua_gettop(L) - 1, lua_gettop(L), oslib);
    lua_setfield(L, base, "os");
    lua_pop(L, 2); /* os, globals */
    lua_pushcfunction(L, l_require);
    lua_setfield(L, base, "require");
    lua_setfield(L, LUA_REGISTRYINDEX, BASE_KEY);

    /* string methods must not be changed through ("").__index either */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
}

void vd_sandbox_setglobal(lua_State *L, const char *name)
{
    lua_getfield(L, LUA_REGISTRYINDEX, BASE_KEY);
    lua_insert(L, -2);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

static int setup(lua_State *L)
{
    const char *const *dirs = lua_touserdata(L, 1);
    size_t ndirs = (size_t)lua_tointeger(L, 2);
    luaL_openlibs(L); /* the full libraries stay on the main thread; rules see the base */
    lua_createtable(L, (int)ndirs, 0);
    for (size_t i = 0; i < ndirs; i++) {
        lua_pushstring(L, dirs[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, LUA_REGISTRYINDEX, DIRS_KEY);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, LOADED_KEY);
    build_base(L);
    return 0;
}

lua_State *vd_sandbox_new(const char *const *dirs, size_t ndirs, const vd_sandbox_limits *lim,
                          char *err, size_t errlen)
{
    sandbox *sb = calloc(1, sizeof *sb);
    if (!sb) goto oom;
    sb->lim = *lim;
    sb->digest = EVP_MD_CTX_new();
    if (!sb->digest || !EVP_DigestInit_ex(sb->digest, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(sb->digest);
        free(sb);
        goto oom;
    }
    lua_State *L = lua_newstate(sandbox_alloc, sb);
    if (!L) {
        EVP_MD_CTX_free(sb->digest);
        free(sb);
        goto oom;
    }
    vd_task *none = NULL;
    memcpy(lua_getextraspace(L), &none, sizeof none); /* the main thread is no task */
    lua_pushcfunction(L, setup);
    lua_pushlightuserdata(L, (void *)dirs);
    lua_pushinteger(L, (lua_Integer)ndirs);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        snprintf(err, errlen, "sandbox: %s", lua_tostring(L, -1));
        vd_sandbox_close(L);
        return NULL;
    }
    lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
    return L;
oom:
    snprintf(err, errlen, "out of memory");
    return NULL;
}

void vd_sandbox_close(lua_State *L)
{
    if (!L) return;
    sandbox *sb = sandbox_of(L);
    lua_close(L);
    EVP_MD_CTX_free(sb->digest);
    free(sb);
}

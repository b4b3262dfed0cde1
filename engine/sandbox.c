/* sandbox.c — every Lua state the program makes, by profile (see sandbox.h).
 *
 * Rule code (and the config file) sees only the base: the basic functions without load, loadfile,
 * dofile, collectgarbage and print; copies of string, table, math and utf8; os.time, os.clock,
 * os.date and os.difftime; require limited to the rules directory. No io, no os.execute, no
 * debug, no coroutine (a rule's own coroutine would swallow the engine's yields), no binary
 * chunks, no string.dump, no __gc finalizers (setmetatable refuses them: Lua runs finalizers
 * with hooks off, so the budget would never stop one), and pcall/xpcall that stop catching
 * once the budget and a small grace are spent (the budget's error cannot be swallowed).
 * A test file sees string, table and math; a script the standard libraries minus what reaches
 * past the process's files (open_script_libs). */
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
    vd_lua_profile profile;
    vd_sandbox_limits lim; /* a zero memory: no cap; zero load_instructions: no budget */
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
    if (nsize > osize && sb->lim.memory && sb->mem + (nsize - osize) > sb->lim.memory) return NULL;
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
            luaL_error(L, "%s",
                       sb->profile == VD_LUA_TESTFILE
                           ? "the test file runs too long (it should be data)"
                           : "rule used more than its instruction budget while loading");
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
            return luaL_error(L, "setmetatable: __gc is not allowed (a finalizer runs with hooks "
                                 "off, outside any budget)");
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

/* ---- the script profile ---- */

/* load() with text chunks only: a binary chunk can crash the VM. */
static int safe_load(lua_State *L)
{
    int n = lua_gettop(L);
    if (n > 4) lua_settop(L, n = 4);
    while (lua_gettop(L) < 2)
        lua_pushnil(L);
    lua_pushvalue(L, lua_upvalueindex(1)); /* the real load */
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushstring(L, "t");
    if (n == 4) lua_pushvalue(L, 4); /* an env only when given: nil would be an env too */
    lua_call(L, n == 4 ? 4 : 3, LUA_MULTRET);
    return lua_gettop(L) - (n < 2 ? 2 : n);
}

/* The Lua-file searcher, text only, over the path fixed at start (upvalue 1), never over
 * package.path: a script cannot point require at other directories, or load bytecode. */
static int text_searcher(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_pushvalue(L, lua_upvalueindex(2)); /* package.searchpath */
    lua_pushstring(L, name);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2)) return 1; /* the "no file ..." message */
    const char *file = lua_tostring(L, -2);
    if (luaL_loadfilex(L, file, "t") != LUA_OK)
        return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, file,
                          lua_tostring(L, -1));
    lua_pushstring(L, file);
    return 2;
}

static int package_readonly(lua_State *L)
{
    return luaL_error(L, "package is read-only in a script (modules come from the script's "
                         "directory and the rules directories: docs/scripts.md)");
}

static void remove_field(lua_State *L, const char *table, const char *field)
{
    lua_getglobal(L, table);
    lua_pushnil(L);
    lua_setfield(L, -2, field);
    lua_pop(L, 1);
}

/* require's searchers: the preload one and text_searcher over path, nothing else. */
static void script_searchers(lua_State *L, int pkg, const char *path)
{
    lua_pushstring(L, "");
    lua_setfield(L, pkg, "cpath");
    lua_pushstring(L, path);
    lua_setfield(L, pkg, "path"); /* for reading: the searcher has its own copy */
    lua_getfield(L, pkg, "searchers");
    for (int i = 4; i >= 3; i--) {
        lua_pushnil(L);
        lua_rawseti(L, -2, i);
    }
    lua_pushstring(L, path);
    lua_getfield(L, pkg, "searchpath");
    lua_pushcclosure(L, text_searcher, 2);
    lua_rawseti(L, -2, 2);
    lua_pop(L, 1); /* searchers */
}

/* The global package: a read-only view of the library's table (at pkg). */
static void package_view(lua_State *L, int pkg)
{
    lua_newtable(L);
    lua_newtable(L);
    lua_pushvalue(L, pkg);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, package_readonly);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_setglobal(L, "package");
}

/* Standard libraries minus what reaches outside the process's files: no os.execute, os.exit,
 * os.remove, os.rename, os.tmpname, io.popen, C modules, dofile/loadfile, string.dump or
 * binary chunks (load and require read text only); package is read-only and require's path
 * (dir/?.lua for each directory, in order) is fixed at start; setmetatable refuses __gc. */
static void open_script_libs(lua_State *L, const char *const *dirs, size_t ndirs)
{
    luaL_openlibs(L);
    lua_pushnil(L);
    lua_setglobal(L, "debug");
    static const char *const gone[][2] = {
        {"os", "execute"}, {"os", "exit"},      {"os", "remove"},   {"os", "rename"},
        {"os", "tmpname"}, {"os", "setlocale"}, {"io", "popen"},    {"package", "loadlib"},
        {"_G", "dofile"},  {"_G", "loadfile"},  {"string", "dump"},
    };
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
        remove_field(L, gone[i][0], gone[i][1]);
    lua_getglobal(L, "load");
    lua_pushcclosure(L, safe_load, 1);
    lua_setglobal(L, "load");
    lua_pushcfunction(L, vd_sandbox_setmetatable);
    lua_setglobal(L, "setmetatable");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < ndirs; i++) {
        if (i) luaL_addchar(&b, ';');
        luaL_addstring(&b, dirs[i]);
        luaL_addstring(&b, "/?.lua");
    }
    luaL_pushresult(&b);
    lua_getglobal(L, "package");
    int pkg = lua_gettop(L);
    script_searchers(L, pkg, lua_tostring(L, pkg - 1));
    package_view(L, pkg);
    lua_pop(L, 2); /* the library's table, the path */
}

/* ---- the test-file profile ---- */

static const char TESTFILE_ENV_KEY[] = "validora.testfile_env";

/* The test file's _ENV: string (without dump), table and math. */
static void build_testfile_env(lua_State *L)
{
    lua_newtable(L);
    luaL_requiref(L, "string", luaopen_string, 0);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_setfield(L, -2, "string");
    luaL_requiref(L, "table", luaopen_table, 0);
    lua_setfield(L, -2, "table");
    luaL_requiref(L, "math", luaopen_math, 0);
    lua_setfield(L, -2, "math");
    lua_setfield(L, LUA_REGISTRYINDEX, TESTFILE_ENV_KEY);
}

int vd_lua_loadtext(lua_State *L, const char *text, size_t len, const char *chunkname)
{
    sandbox_of(L)->load_count = 0;
    int st = luaL_loadbufferx(L, text, len, chunkname, "t");
    if (st != LUA_OK) return st;
    lua_getfield(L, LUA_REGISTRYINDEX, TESTFILE_ENV_KEY);
    if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
    return LUA_OK;
}

void vd_lua_unbudget(lua_State *L)
{
    lua_sethook(L, NULL, 0, 0);
}

/* ---- the factory ---- */

typedef struct setup_args {
    vd_lua_profile profile;
    const char *const *dirs;
    size_t ndirs;
} setup_args;

static void rules_registry(lua_State *L, const char *const *dirs, size_t ndirs)
{
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
}

static int setup(lua_State *L)
{
    const setup_args *a = lua_touserdata(L, 1);
    switch (a->profile) {
    case VD_LUA_RULE:
    case VD_LUA_CONFIG:
        rules_registry(L, a->dirs, a->ndirs);
        break;
    case VD_LUA_TESTFILE:
        build_testfile_env(L);
        break;
    case VD_LUA_SCRIPT:
        open_script_libs(L, a->dirs, a->ndirs);
        break;
    }
    return 0;
}

/* Bounds of the profiles that bring their own. A config file is a few dozen settings and a
 * test file is data: generous, and they stop a runaway loop. */
#define CONFIG_MEMORY   (8u << 20)
#define CONFIG_LOAD     10000000u
#define TESTFILE_MEMORY (64u << 20)
#define TESTFILE_LOAD   10000000u

vd_sandbox_limits vd_lua_limits(vd_lua_profile profile)
{
    switch (profile) {
    case VD_LUA_CONFIG:
        return (vd_sandbox_limits){CONFIG_MEMORY, CONFIG_LOAD, CONFIG_LOAD};
    case VD_LUA_TESTFILE:
        return (vd_sandbox_limits){TESTFILE_MEMORY, TESTFILE_LOAD, TESTFILE_LOAD};
    default:
        return (vd_sandbox_limits){0, 0, 0};
    }
}

static sandbox *sandbox_alloc_new(vd_lua_profile profile, const vd_sandbox_limits *lim)
{
    sandbox *sb = calloc(1, sizeof *sb);
    if (!sb) return NULL;
    sb->profile = profile;
    sb->lim = lim ? *lim : vd_lua_limits(profile);
    sb->digest = EVP_MD_CTX_new();
    if (!sb->digest || !EVP_DigestInit_ex(sb->digest, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(sb->digest);
        free(sb);
        return NULL;
    }
    return sb;
}

lua_State *vd_lua_new(vd_lua_profile profile, const vd_sandbox_limits *lim, const char *const *dirs,
                      size_t ndirs, char *err, size_t errlen)
{
    if (profile == VD_LUA_RULE && !lim) {
        snprintf(err, errlen, "sandbox: a rule state needs its limits");
        return NULL;
    }
    sandbox *sb = sandbox_alloc_new(profile, lim);
    lua_State *L = sb ? lua_newstate(sandbox_alloc, sb) : NULL;
    if (!L) {
        if (sb) EVP_MD_CTX_free(sb->digest);
        free(sb);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    vd_task *none = NULL;
    memcpy(lua_getextraspace(L), &none, sizeof none); /* the main thread is no task */
    setup_args a = {profile, dirs, ndirs};
    lua_pushcfunction(L, setup);
    lua_pushlightuserdata(L, &a);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        snprintf(err, errlen, "sandbox: %s", lua_tostring(L, -1));
        vd_sandbox_close(L);
        return NULL;
    }
    if (sb->lim.load_instructions) lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
    return L;
}

lua_State *vd_sandbox_new(const char *const *dirs, size_t ndirs, const vd_sandbox_limits *lim,
                          char *err, size_t errlen)
{
    return vd_lua_new(VD_LUA_RULE, lim, dirs, ndirs, err, errlen);
}

void vd_sandbox_close(lua_State *L)
{
    if (!L) return;
    sandbox *sb = sandbox_of(L);
    lua_close(L);
    EVP_MD_CTX_free(sb->digest);
    free(sb);
}

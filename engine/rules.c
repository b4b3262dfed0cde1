/* rules.c — rule generations: loading rules/NAME.lua into a sandboxed lua_State, choosing
 * the rule for a job, starting its probe as a coroutine, and the yield/resume protocol.
 *
 * A generation is built whole and checked before it becomes current (a reload that fails
 * leaves the running one in place); jobs hold a reference to the generation they started
 * on. Rule code runs in a sandbox: no io, no os.execute, no load/dofile, no binary chunks,
 * no debug library, bounded memory per generation and bounded instructions per job. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <event2/event.h>
#include <lauxlib.h>
#include <lualib.h>
#include "engine_internal.h"

#define RULES_MEM_LIMIT        ((size_t)1 << 30) /* bytes per generation */
#define JOB_INSTRUCTION_LIMIT  20000000ULL       /* VM instructions per job */
#define LOAD_INSTRUCTION_LIMIT 50000000ULL       /* VM instructions to load all rules */
#define HOOK_EVERY             1000

static const char RUNNER_KEY[] = "validora.runner";
static const char BASE_KEY[] = "validora.sandbox";
static const char LOADED_KEY[] = "validora.loaded";
static const char DIR_KEY[] = "validora.rules_dir";

/* Per-thread extra space holds the job a coroutine runs for (NULL on the main thread). */
vd_job *vd_lua_job_of(lua_State *co)
{
    vd_job *j;
    memcpy(&j, lua_getextraspace(co), sizeof j);
    return j;
}

static void set_job_of(lua_State *co, vd_job *j)
{
    memcpy(lua_getextraspace(co), &j, sizeof j);
}

static void *rules_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    vd_rules *r = ud;
    if (!ptr) osize = 0;
    if (nsize == 0) {
        free(ptr);
        r->mem -= osize;
        return NULL;
    }
    if (nsize > osize && r->mem + (nsize - osize) > r->mem_limit) return NULL;
    void *p = realloc(ptr, nsize);
    if (p) r->mem = r->mem - osize + nsize;
    return p;
}

/* Instruction budget: a rule stuck in a loop fails its job instead of the process. */
static void count_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    vd_job *j = vd_lua_job_of(L);
    uint64_t *count = j ? &j->hook_count : NULL;
    if (!count) {
        /* loading, on the main thread: the generation's own counter */
        vd_rules *r = NULL;
        lua_getallocf(L, (void **)&r);
        r->load_count += HOOK_EVERY;
        if (r->load_count > LOAD_INSTRUCTION_LIMIT)
            luaL_error(L, "rule used more than its instruction budget while loading");
        return;
    }
    *count += HOOK_EVERY;
    if (*count > JOB_INSTRUCTION_LIMIT) luaL_error(L, "rule used more than its instruction budget");
}

/* ---- the wait protocol ---- */

vd_waiter *vd_job_wait_begin(vd_job *j, vd_wait_kind kind)
{
    vd_waiter *w = malloc(sizeof *w);
    if (!w) return NULL;
    if (j->waiter) j->waiter->job = NULL;
    j->wait_gen++;
    w->job = j;
    w->gen = j->wait_gen;
    j->waiter = w;
    j->wait_kind = kind;
    j->wait_handle = NULL;
    j->in_call = true;
    j->sync_nargs = -1;
    return w;
}

int vd_job_wait_end(lua_State *L, vd_job *j)
{
    j->in_call = false;
    if (j->sync_nargs >= 0) {
        int n = j->sync_nargs;
        j->sync_nargs = -1;
        j->wait_kind = VD_WAIT_NONE;
        j->wait_handle = NULL;
        return n;
    }
    return lua_yield(L, 0);
}

vd_job *vd_waiter_take(vd_waiter *w)
{
    vd_job *j = w->job;
    if (!j || j->waiter != w || j->wait_gen != w->gen) {
        if (!j) free(w);
        return NULL;
    }
    j->waiter = NULL;
    free(w);
    return j;
}

void vd_job_resume(vd_job *j, int nargs)
{
    if (j->in_call) { /* completed before the binding yielded: it returns the values */
        j->sync_nargs = nargs;
        return;
    }
    j->wait_kind = VD_WAIT_NONE;
    j->wait_handle = NULL;
    int nres = 0;
    int st = lua_resume(j->co, NULL, nargs, &nres);
    if (st == LUA_YIELD) {
        if (j->wait_kind != VD_WAIT_NONE) return; /* waiting for I/O */
        vd_job_verdict(j, "unknown", "rule_error");
        vd_job_set_detail(j, "rule yielded outside an I/O call");
    } else if (st != LUA_OK) {
        const char *msg = lua_tostring(j->co, -1);
        vd_job_verdict(j, "unknown", "rule_error");
        vd_job_set_detail(j, msg ? msg : "error object is not a string");
        vd_engine_log(j->e, 1, "%s: rule error: %s", j->email, msg ? msg : "?");
    } else if (!j->status) {
        vd_job_verdict(j, "unknown", "rule_error");
        vd_job_set_detail(j, "rule returned without a verdict");
    }
    vd_job_end(j);
}

/* ---- sandbox ---- */

/* require(name) inside the sandbox: only rule modules from the rules directory, each run
 * once per generation in its own environment. */
static int load_rule_file(lua_State *L, const char *path, const char *chunkname);

static int sandbox_require(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.'))
            return luaL_error(L, "require: bad module name '%s'", name);
    lua_getfield(L, LUA_REGISTRYINDEX, LOADED_KEY);
    lua_getfield(L, -1, name);
    if (!lua_isnil(L, -1)) return 1;
    lua_pop(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, DIR_KEY);
    char path[4096];
    snprintf(path, sizeof path, "%s/", lua_tostring(L, -1));
    lua_pop(L, 1);
    size_t off = strlen(path);
    for (const char *p = name; *p && off < sizeof path - 5; p++)
        path[off++] = *p == '.' ? '/' : *p;
    snprintf(path + off, sizeof path - off, ".lua");
    if (load_rule_file(L, path, name) != LUA_OK) return lua_error(L);
    lua_call(L, 0, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, name);
    return 1;
}

static int sandbox_log(lua_State *L)
{
    vd_job *j = vd_lua_job_of(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        if (i > 1) luaL_addchar(&b, ' ');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    vd_rules *r = NULL;
    lua_getallocf(L, (void **)&r);
    vd_engine_log(r ? r->engine : NULL, 1, "%s%s%s", j ? j->email : "", j ? ": " : "",
                  lua_tostring(L, -1));
    return 0;
}

/* The read-only table rules see as `config`. */
static void push_config(lua_State *L, const vd_engine *e)
{
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, e->cfg.greylist_delay_s);
    lua_setfield(L, -2, "greylist_delay");
    lua_pushinteger(L, e->cfg.greylist_tries);
    lua_setfield(L, -2, "greylist_tries");
    lua_pushnumber(L, e->cfg.smtp_timeout_ms / 1000.0);
    lua_setfield(L, -2, "smtp_timeout");
    lua_pushstring(L, e->helo);
    lua_setfield(L, -2, "helo");
    lua_pushstring(L, e->mail_from);
    lua_setfield(L, -2, "mail_from");
}

static void copy_fields(lua_State *L, int from, int to, const char *const *names)
{
    for (; *names; names++) {
        lua_getfield(L, from, *names);
        lua_setfield(L, to, *names);
    }
}

/* Builds the shared, read-only base every rule environment inherits from. */
static void build_sandbox(lua_State *L, vd_engine *e)
{
    static const char *const globals[] = {
        "assert",   "error",        "ipairs",       "next",     "pairs",    "pcall",  "select",
        "tonumber", "tostring",     "type",         "xpcall",   "rawequal", "rawget", "rawlen",
        "rawset",   "setmetatable", "getmetatable", "_VERSION", NULL};
    static const char *const oslib[] = {"time", "clock", "date", "difftime", NULL};
    lua_newtable(L); /* base */
    int base = lua_gettop(L);
    lua_pushglobaltable(L);
    int g = lua_gettop(L);
    copy_fields(L, g, base, globals);
    static const char *const libs[] = {"string", "table", "math", "utf8", NULL};
    for (const char *const *l = libs; *l; l++) {
        /* a copy, so one rule cannot change another's string.format */
        lua_getfield(L, g, *l);
        lua_newtable(L);
        lua_pushnil(L);
        while (lua_next(L, -3)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_settable(L, -4);
        }
        lua_setfield(L, base, *l);
        lua_pop(L, 1);
    }
    lua_getfield(L, g, "os");
    lua_newtable(L);
    copy_fields(L, lua_gettop(L) - 1, lua_gettop(L), oslib);
    lua_setfield(L, base, "os");
    lua_pop(L, 1);
    lua_pop(L, 1); /* globals */

    lua_pushcfunction(L, sandbox_require);
    lua_setfield(L, base, "require");
    lua_pushcfunction(L, sandbox_log);
    lua_setfield(L, base, "log");
    push_config(L, e);
    lua_setfield(L, base, "config");
    vd_lua_dns_open(L);
    lua_setfield(L, base, "dns");
    lua_pushvalue(L, base);
    vd_lua_util_open(L); /* sleep, now */
    lua_pop(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, BASE_KEY);

    /* string methods must not be changed through ("").__index either */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
}

/* Loads a rule file as text into a fresh environment inheriting the sandbox base.
 * Leaves the chunk (or the error message) on the stack. */
static int load_rule_file(lua_State *L, const char *path, const char *chunkname)
{
    char name[512];
    snprintf(name, sizeof name, "@%s", path);
    (void)chunkname;
    int st = luaL_loadfilex(L, path, "t");
    if (st != LUA_OK) return st;
    lua_newtable(L); /* _ENV */
    lua_newtable(L); /* its metatable */
    lua_getfield(L, LUA_REGISTRYINDEX, BASE_KEY);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
    return LUA_OK;
}

/* Chooses the rule for a job and runs its probe: the first rule whose match fits the
 * domain or an MX host name, in file-name order; default.lua when none does. */
static const char RUNNER_SRC[] = "local rules, default = ...\n"
                                 "local find = string.find\n"
                                 "local function pick(domain, mxnames)\n"
                                 "  for _, r in ipairs(rules) do\n"
                                 "    local m = r.match or {}\n"
                                 "    for _, p in ipairs(m.domain or {}) do\n"
                                 "      if find(domain, p) then return r end\n"
                                 "    end\n"
                                 "    for _, p in ipairs(m.mx or {}) do\n"
                                 "      for _, h in ipairs(mxnames) do\n"
                                 "        if find(h, p) then return r end\n"
                                 "      end\n"
                                 "    end\n"
                                 "  end\n"
                                 "  return default\n"
                                 "end\n"
                                 "return function(job, domain, mxnames)\n"
                                 "  local rule = pick(domain, mxnames)\n"
                                 "  job:_provider(rule.name)\n"
                                 "  return rule.probe(job)\n"
                                 "end\n";

static int check_rule(lua_State *L, int idx, const char *file, char *err, size_t errlen)
{
    if (!lua_istable(L, idx)) {
        snprintf(err, errlen, "%s: a rule file must return a table", file);
        return -1;
    }
    lua_getfield(L, idx, "name");
    bool ok = lua_type(L, -1) == LUA_TSTRING;
    lua_pop(L, 1);
    if (!ok) {
        snprintf(err, errlen, "%s: rule has no string 'name'", file);
        return -1;
    }
    lua_getfield(L, idx, "probe");
    ok = lua_isfunction(L, -1);
    lua_pop(L, 1);
    if (!ok) {
        snprintf(err, errlen, "%s: rule has no function 'probe'", file);
        return -1;
    }
    lua_getfield(L, idx, "match");
    int t = lua_type(L, -1);
    lua_pop(L, 1);
    if (t != LUA_TNIL && t != LUA_TTABLE) {
        snprintf(err, errlen, "%s: 'match' must be a table", file);
        return -1;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load_all(lua_State *L, vd_rules *r, const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "rules directory %s: %s", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    int rc = -1;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".lua") != 0 || de->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) goto out;
            names = nn;
        }
        names[n] = strdup(de->d_name);
        if (!names[n]) goto out;
        n++;
    }
    if (n) qsort(names, n, sizeof *names, cmp_str);

    lua_newtable(L); /* ordered rules */
    int list = lua_gettop(L);
    int count = 0;
    bool have_default = false;
    for (size_t i = 0; i < n; i++) {
        char path[4096], modname[256];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        snprintf(modname, sizeof modname, "%.*s", (int)(strlen(names[i]) - 4), names[i]);
        /* loaded through require so `require "default"` from another rule gets the same
         * table */
        lua_pushcfunction(L, sandbox_require);
        lua_pushstring(L, modname);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
            snprintf(err, errlen, "%s", lua_tostring(L, -1));
            goto out;
        }
        if (check_rule(L, -1, path, err, errlen) != 0) goto out;
        if (strcmp(modname, "default") == 0) {
            have_default = true;
            lua_setfield(L, LUA_REGISTRYINDEX, "validora.default");
        } else {
            lua_rawseti(L, list, ++count);
        }
    }
    if (!have_default) {
        snprintf(err, errlen, "%s/default.lua: missing (the fallback rule is required)", dir);
        goto out;
    }
    if (luaL_loadbufferx(L, RUNNER_SRC, sizeof RUNNER_SRC - 1, "=runner", "t") != LUA_OK) {
        snprintf(err, errlen, "runner: %s", lua_tostring(L, -1));
        goto out;
    }
    lua_pushvalue(L, list);
    lua_getfield(L, LUA_REGISTRYINDEX, "validora.default");
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        snprintf(err, errlen, "runner: %s", lua_tostring(L, -1));
        goto out;
    }
    lua_setfield(L, LUA_REGISTRYINDEX, RUNNER_KEY);
    lua_pop(L, 1); /* list */
    (void)r;
    rc = 0;
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

vd_rules *vd_rules_load(vd_engine *e, const char *dir, char *err, size_t errlen)
{
    vd_rules *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->engine = e;
    r->refs = 1;
    r->id = ++e->next_rules_id;
    r->mem_limit = RULES_MEM_LIMIT;
    r->L = lua_newstate(rules_alloc, r);
    if (!r->L) {
        free(r);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    lua_State *L = r->L;
    set_job_of(L, NULL);
    luaL_openlibs(L); /* the full libraries stay on the main thread; rules see the sandbox */
    lua_pushstring(L, dir);
    lua_setfield(L, LUA_REGISTRYINDEX, DIR_KEY);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, LOADED_KEY);
    vd_lua_job_open(L);
    vd_lua_smtp_open(L);
    build_sandbox(L, e);
    lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
    if (load_all(L, r, dir, err, errlen) != 0) {
        lua_close(L);
        free(r);
        return NULL;
    }
    lua_settop(L, 0);
    return r;
}

void vd_rules_unref(vd_rules *r)
{
    if (--r->refs > 0) return;
    lua_close(r->L);
    free(r);
}

void vd_rules_start(vd_rules *r, vd_job *j)
{
    lua_State *L = r->L;
    lua_State *co = lua_newthread(L);
    j->co = co;
    j->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    set_job_of(co, j);
    lua_sethook(co, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
    lua_getfield(co, LUA_REGISTRYINDEX, RUNNER_KEY);
    vd_lua_job_push(co, j);
    lua_pushstring(co, j->addr.domain);
    lua_createtable(co, (int)(j->mx ? j->mx->nhosts : 0), 0);
    for (size_t i = 0; j->mx && i < j->mx->nhosts; i++) {
        lua_pushstring(co, j->mx->hosts[i].name);
        lua_rawseti(co, -2, (lua_Integer)i + 1);
    }
    vd_job_resume(j, 3);
}

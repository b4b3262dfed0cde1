/* rules.c — rule generations and probe runs (see rules.h).
 *
 * A generation is one sandboxed lua_State (sandbox.c) holding every rules/NAME.lua, the rule
 * selector (rules/validora/select.lua) and the engine's bindings. It is built whole and
 * checked before the engine may make it current: a reload that fails leaves the running one
 * in place. Each run (one address) holds a reference to the generation it started on, so
 * jobs in flight finish on their own rules.
 * Does not own: the sandbox itself (sandbox.c), the coroutine protocol (lua_task.c), the
 * job, session and dns objects (lua_job.c, lua_smtp.c, lua_dns.c). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "log.h"
#include "lua_bridge.h"
#include "sandbox.h"
#include "smtp.h"
#include "validora/options.h"

static const char RUNNER_KEY[] = "validora.runner";

vd_run *vd_run_of(lua_State *L)
{
    vd_task *t = vd_task_of(L);
    return t ? vd_task_arg(t) : NULL;
}

vd_run *vd_run_check(lua_State *L, const char *what)
{
    vd_run *run = vd_run_of(L);
    if (!run) luaL_error(L, "%s: only inside a rule's probe", what);
    return run;
}

/* ---- what the sandbox base gets from the engine ---- */

static vd_rules *rules_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static int l_log(lua_State *L)
{
    vd_rules *r = rules_of(L);
    vd_run *run = vd_run_of(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        if (i > 1) luaL_addchar(&b, ' ');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    const char *who = run && run->probe->addr ? run->probe->addr->address : NULL;
    vd_log_to(r->env.log, r->env.log_arg, VD_LOG_INFO, "%s%s%s", who ? who : "", who ? ": " : "",
              lua_tostring(L, -1));
    return 0;
}

/* config.NAME for every option marked `rules`, read from the effective settings. */
static void push_config(lua_State *L, const vd_engine_config *cfg)
{
    lua_newtable(L);
    for (const vd_option *o = vd_engine_options; o->name; o++) {
        if (!o->rules) continue;
        const void *v = (const char *)cfg + o->offset;
        switch (o->type) {
        case VD_OPT_FLAG:
            lua_pushboolean(L, *(const bool *)v);
            break;
        case VD_OPT_INT:
        case VD_OPT_COUNT:
            lua_pushinteger(L, *(const int *)v);
            break;
        case VD_OPT_SECONDS:
            lua_pushnumber(L, *(const double *)v);
            break;
        case VD_OPT_STRING:
            if (*(const char *const *)v)
                lua_pushstring(L, *(const char *const *)v);
            else
                lua_pushnil(L);
            break;
        }
        char key[64];
        snprintf(key, sizeof key, "%s", o->name);
        for (char *p = key; *p; p++)
            if (*p == '-') *p = '_';
        lua_setfield(L, -2, key);
    }
}

static int strict_index(lua_State *L)
{
    return luaL_error(L, "errors.%s: no such error name (see docs/errors.md)",
                      luaL_checkstring(L, 2));
}

/* errors.NAME == "NAME" for every error name C hands to rules (docs/errors.md); reading a
 * name that is not one raises an error, so a misspelt comparison fails loudly. */
static void push_errors(lua_State *L)
{
    lua_newtable(L);
    for (const char *const *n = vd_smtp_err_names; *n; n++) {
        lua_pushstring(L, *n);
        lua_pushvalue(L, -1);
        lua_rawset(L, -3);
    }
    for (int s = VD_DNS_NXDOMAIN; s <= VD_DNS_ERROR; s++) {
        lua_pushstring(L, vd_dns_status_name((vd_dns_status)s));
        lua_pushvalue(L, -1);
        lua_rawset(L, -3);
    }
    lua_newtable(L);
    lua_pushcfunction(L, strict_index);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
}

static void open_bindings(lua_State *L, vd_rules *r)
{
    vd_lua_job_open(L);
    vd_lua_smtp_open(L);
    push_config(L, r->env.cfg);
    vd_sandbox_setglobal(L, "config");
    push_errors(L);
    vd_sandbox_setglobal(L, "errors");
    lua_pushlightuserdata(L, r);
    lua_pushcclosure(L, l_log, 1);
    vd_sandbox_setglobal(L, "log");
    vd_lua_dns_open(L);
    vd_sandbox_setglobal(L, "dns");
    lua_newtable(L);
    vd_lua_task_open(L);
    static const char *const task_fns[] = {"sleep", "now", NULL};
    for (const char *const *f = task_fns; *f; f++) {
        lua_getfield(L, -1, *f);
        vd_sandbox_setglobal(L, *f);
    }
    lua_pop(L, 1);
}

/* ---- loading ---- */

static int check_rule(lua_State *L, int idx, const char *file, char *err, size_t errlen)
{
    if (!lua_istable(L, idx)) {
        snprintf(err, errlen, "%s: a rule file must return a table", file);
        return -1;
    }
    static const struct {
        const char *field;
        int type;
        bool required;
    } shape[] = {
        {"name", LUA_TSTRING, true},   {"probe", LUA_TFUNCTION, true},
        {"match", LUA_TTABLE, false},  {"classify", LUA_TFUNCTION, false},
        {"limits", LUA_TTABLE, false}, {"warmup", LUA_TTABLE, false},
    };
    for (size_t i = 0; i < sizeof shape / sizeof shape[0]; i++) {
        lua_getfield(L, idx, shape[i].field);
        int t = lua_type(L, -1);
        lua_pop(L, 1);
        if (t == shape[i].type || (t == LUA_TNIL && !shape[i].required)) continue;
        snprintf(err, errlen, "%s: rule field '%s' must be a %s%s", file, shape[i].field,
                 lua_typename(L, shape[i].type), shape[i].required ? "" : " (or absent)");
        return -1;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The NAME.lua files of dir, sorted by name. */
static char **rule_files(const char *dir, size_t *n, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "rules directory %s: %s", dir, strerror(errno));
        return NULL;
    }
    char **names = NULL;
    size_t cap = 0;
    *n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".lua") != 0 || de->d_name[0] == '.') continue;
        if (*n + 1 >= cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) goto oom;
            names = nn;
        }
        names[*n] = strndup(de->d_name, len - 4);
        if (!names[*n]) goto oom;
        (*n)++;
    }
    closedir(d);
    if (!names) names = calloc(1, sizeof *names);
    if (*n) qsort(names, *n, sizeof *names, cmp_str);
    return names;
oom:
    closedir(d);
    for (size_t i = 0; i < *n; i++)
        free(names[i]);
    free(names);
    snprintf(err, errlen, "out of memory");
    return NULL;
}

static int lua_fail(lua_State *L, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s%s", what, lua_tostring(L, -1));
    return -1;
}

/* Loads the rules (through require, so `require "default"` from another rule gets the same
 * table), the selector and the memo; keeps the runner in the registry. */
static int load_all(lua_State *L, const char *dir, char *const *names, size_t n, char *err,
                    size_t errlen)
{
    lua_newtable(L); /* the rules but default, in file order */
    int list = lua_gettop(L);
    int count = 0, dflt = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.lua", dir, names[i]);
        if (vd_sandbox_require(L, names[i]) != LUA_OK) return lua_fail(L, "", err, errlen);
        if (check_rule(L, -1, path, err, errlen) != 0) return -1;
        if (strcmp(names[i], "default") == 0) {
            dflt = lua_gettop(L);
        } else {
            lua_rawseti(L, list, ++count);
        }
    }
    if (!dflt) {
        snprintf(err, errlen, "%s/default.lua: missing (the fallback rule is required)", dir);
        return -1;
    }
    if (vd_sandbox_require(L, "validora.once") != LUA_OK)
        return lua_fail(L, "validora/once.lua: ", err, errlen);
    vd_lua_job_set_method(L, "once");
    if (vd_sandbox_require(L, "validora.select") != LUA_OK)
        return lua_fail(L, "validora/select.lua: ", err, errlen);
    lua_pushvalue(L, list);
    lua_pushvalue(L, dflt);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) return lua_fail(L, "validora/select.lua: ", err, errlen);
    if (!lua_isfunction(L, -1)) {
        snprintf(err, errlen,
                 "%s/validora/select.lua: must return a function that returns the "
                 "runner",
                 dir);
        return -1;
    }
    lua_setfield(L, LUA_REGISTRYINDEX, RUNNER_KEY);
    return 0;
}

vd_rules *vd_rules_load(const vd_rules_env *env, const char *dir, unsigned id, char *err,
                        size_t errlen)
{
    vd_rules *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->env = *env;
    r->refs = 1;
    r->id = id;
    vd_sandbox_limits lim = {
        .memory = (size_t)env->cfg->rules_memory_mb << 20,
        .load_instructions = (uint64_t)env->cfg->load_instructions,
        .task_instructions = (uint64_t)env->cfg->rule_instructions,
    };
    size_t n = 0;
    char **names = rule_files(dir, &n, err, errlen);
    if (!names) {
        free(r);
        return NULL;
    }
    int rc = -1;
    r->L = vd_sandbox_new(dir, &lim, err, errlen);
    if (r->L) {
        open_bindings(r->L, r);
        rc = load_all(r->L, dir, names, n, err, errlen);
        lua_settop(r->L, 0);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (rc != 0) {
        vd_sandbox_close(r->L);
        free(r);
        return NULL;
    }
    return r;
}

void vd_rules_ref(vd_rules *r)
{
    r->refs++;
}

void vd_rules_unref(vd_rules *r)
{
    if (!r || --r->refs > 0) return;
    vd_sandbox_close(r->L);
    free(r);
}

unsigned vd_rules_id(const vd_rules *r)
{
    return r->id;
}

/* ---- runs ---- */

static void run_free(vd_run *run)
{
    vd_lua_sessions_detach(run);
    vd_probe_release_all(run->probe);
    vd_lua_job_detach(run);
    vd_task_free(run->task);
    if (run->self_ref != LUA_NOREF) luaL_unref(run->gen->L, LUA_REGISTRYINDEX, run->self_ref);
    vd_rules_unref(run->gen);
    free(run);
}

static void on_task_end(vd_task *t, bool ok, const char *msg, void *arg)
{
    (void)t;
    vd_run *run = arg;
    vd_probe *p = run->probe;
    if (!ok) {
        vd_probe_verdict(p, "unknown", "rule_error");
        vd_probe_set_detail(p, msg);
        vd_log_to(run->gen->env.log, run->gen->env.log_arg, VD_LOG_INFO, "%s: rule error: %s",
                  p->addr ? p->addr->address : "?", msg);
    } else if (!p->status) {
        vd_probe_verdict(p, "unknown", "rule_error");
        vd_probe_set_detail(p, "rule returned without a verdict");
    }
    vd_probe_done_cb done = run->done;
    void *done_arg = run->arg;
    run_free(run);
    done(p, done_arg);
}

vd_run *vd_rules_probe_new(vd_rules *r, vd_probe *p, vd_probe_done_cb done, void *arg)
{
    vd_run *run = calloc(1, sizeof *run);
    if (!run) return NULL;
    run->gen = r;
    run->probe = p;
    run->done = done;
    run->arg = arg;
    run->self_ref = LUA_NOREF;
    run->task = vd_task_new(r->L, r->env.base, on_task_end, run);
    if (!run->task) {
        free(run);
        return NULL;
    }
    vd_rules_ref(r);
    vd_sandbox_hook(vd_task_thread(run->task));
    return run;
}

void vd_rules_probe_start(vd_run *run)
{
    lua_State *co = vd_task_thread(run->task);
    const vd_probe *p = run->probe;
    lua_getfield(co, LUA_REGISTRYINDEX, RUNNER_KEY);
    vd_lua_job_push(co, run);
    lua_pushstring(co, p->addr->domain);
    lua_createtable(co, (int)(p->mx ? p->mx->nhosts : 0), 0);
    for (size_t i = 0; p->mx && i < p->mx->nhosts; i++) {
        lua_pushstring(co, p->mx->hosts[i].name);
        lua_rawseti(co, -2, (lua_Integer)i + 1);
    }
    vd_task_start(run->task, 3);
}

void vd_rules_probe_cancel(vd_run *run)
{
    if (run) run_free(run);
}

/* rules.c — rule generations and probe runs (see rules.h).
 *
 * A generation is one sandboxed lua_State (sandbox.c) holding every rules/NAME.lua, the rule
 * selector (rules/validora/select.lua) and the engine's bindings. It is built whole and
 * checked before the engine may make it current: a reload that fails leaves the running one
 * in place. Each run (one address) holds a reference to the generation it started on, so
 * jobs in flight finish on their own rules.
 * Does not own: the sandbox itself (sandbox.c), the coroutine protocol (lua_task.c), the
 * run's accessors (lua_run.c), the job, session, reply and dns objects (lua_job.c, lua_smtp.c,
 * lua_dns.c): it calls down into them, and they never call it. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "http.h"
#include "log.h"
#include "lua_bridge.h"
#include "lua_json.h"
#include "rules.h"
#include "sandbox.h"
#include "smtp.h"
#include "validora/options.h"

static const char RUNNER_KEY[] = "validora.runner";

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
        case VD_OPT_LIST: {
            const vd_strlist *l = v;
            lua_createtable(L, l->n, 0);
            for (int i = 0; i < l->n; i++) {
                lua_pushstring(L, l->v[i]);
                lua_rawseti(L, -2, i + 1);
            }
            break;
        }
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
    lua_pushliteral(L, VD_LIMITER_DEFERRED); /* the limiter: a breaker is open, the policy defers */
    lua_pushvalue(L, -1);
    lua_rawset(L, -3);
    for (const char *const *n = vd_http_err_names; *n; n++) {
        lua_pushstring(L, *n);
        lua_pushvalue(L, -1);
        lua_rawset(L, -3);
    }
    lua_pushstring(L, VD_JSON_ERR);
    lua_pushvalue(L, -1);
    lua_rawset(L, -3);
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
    vd_lua_http_open(L);
    vd_sandbox_setglobal(L, "http");
    vd_lua_json_open(L);
    vd_sandbox_setglobal(L, "json");
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

static const char ORDERED_KEY[] = "validora.ordered";
static const char DEFAULT_KEY[] = "validora.default";
static const char SELECT_KEY[] = "validora.select";
static const char SERVICE_KEY[] = "validora.service";
static const char WARMUP_KEY[] = "validora.warmup";

/* Collects problems while a generation loads. */
typedef struct loader {
    lua_State *L;
    vd_problem_cb cb;
    void *arg;
    int problems;
} loader;

static void problem(loader *ld, const char *file, int line, const char *msg)
{
    ld->problems++;
    if (ld->cb) ld->cb(file, line, msg, ld->arg);
}

/* A Lua error message "path:line: message" as a problem; file when it names none. */
static void lua_problem(loader *ld, const char *file, const char *msg)
{
    const char *m = msg ? msg : "error object is not a string";
    const char *colon = strstr(m, ".lua:");
    if (colon) {
        char path[4096];
        snprintf(path, sizeof path, "%.*s", (int)(colon + 4 - m), m);
        char *end;
        long line = strtol(colon + 5, &end, 10);
        if (end != colon + 5 && *end == ':') {
            problem(ld, path, (int)line, end[1] == ' ' ? end + 2 : end + 1);
            return;
        }
    }
    problem(ld, file, 0, m);
}

/* The first line of path that assigns field ("field =" or "field="), or 0. */
static int field_line(const char *path, const char *field)
{
    FILE *f = field ? fopen(path, "r") : NULL;
    if (!f) return 0;
    char line[4096];
    int n = 0, found = 0;
    size_t flen = strlen(field);
    while (!found && fgets(line, sizeof line, f)) {
        n++;
        for (char *p = strstr(line, field); p && !found; p = strstr(p + 1, field)) {
            bool start = p == line || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');
            const char *q = p + flen;
            while (*q == ' ' || *q == '\t')
                q++;
            if (start && *q == '=' && q[1] != '=') found = n;
        }
    }
    fclose(f);
    return found;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends the NAME.lua files of dir that are not in names yet. */
static void add_rule_files(loader *ld, const char *dir, char ***names, size_t *n, size_t *cap)
{
    DIR *d = opendir(dir);
    if (!d) {
        char msg[512];
        snprintf(msg, sizeof msg, "rules directory: %s", strerror(errno));
        problem(ld, dir, 0, msg);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".lua") != 0 || de->d_name[0] == '.') continue;
        bool seen = false;
        for (size_t i = 0; i < *n && !seen; i++)
            seen = strncmp((*names)[i], de->d_name, len - 4) == 0 && (*names)[i][len - 4] == '\0';
        if (seen) continue;
        if (*n + 1 >= *cap) {
            size_t nc = *cap ? *cap * 2 : 16;
            char **nn = realloc(*names, nc * sizeof *nn);
            if (!nn) break;
            *names = nn;
            *cap = nc;
        }
        if (!((*names)[*n] = strndup(de->d_name, len - 4))) break;
        (*n)++;
    }
    closedir(d);
}

/* Requires module name; leaves its value (or nothing, after a problem) on the stack. */
static bool require_module(loader *ld, const char *name)
{
    char path[4096];
    if (!vd_sandbox_find(ld->L, name, path, sizeof path))
        snprintf(path, sizeof path, "%s.lua", name);
    if (vd_sandbox_require(ld->L, name) == LUA_OK) return true;
    lua_problem(ld, path, lua_tostring(ld->L, -1));
    lua_pop(ld->L, 1);
    return false;
}

/* Checks the rule on top of the stack with validora/check.lua's check (at index checker). */
static bool rule_ok(loader *ld, int checker, const char *path)
{
    lua_State *L = ld->L;
    lua_pushvalue(L, checker);
    lua_pushvalue(L, -2);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_problem(ld, path, lua_tostring(L, -1));
        lua_pop(L, 1);
        return false;
    }
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        lua_getfield(L, -1, "field");
        lua_getfield(L, -2, "msg");
        problem(ld, path, field_line(path, lua_tostring(L, -2)), lua_tostring(L, -1));
        lua_pop(L, 3);
    }
    lua_pop(L, 1);
    return n == 0;
}

/* Calls budget(age, history) at index fn with the table h; leaves the result or the error. */
static int call_budget(lua_State *L, int fn, int age_days, const vd_warmup_history *h)
{
    lua_pushvalue(L, fn);
    lua_pushinteger(L, age_days);
    lua_createtable(L, 0, 6);
    const struct {
        const char *k;
        long v;
    } f[] = {
        {"blocks_today", h->blocks_today}, {"deferrals_today", h->deferrals_today},
        {"blocks_30d", h->blocks_30d},     {"deferrals_30d", h->deferrals_30d},
        {"blocks_total", h->blocks_total}, {"deferrals_total", h->deferrals_total},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        lua_pushinteger(L, f[i].v);
        lua_setfield(L, -2, f[i].k);
    }
    return lua_pcall(L, 2, 1, 0);
}

/* The budget on top of the stack as a whole number >= 0, or -1 with err. */
static long budget_value(lua_State *L, char *err, size_t errlen)
{
    int isint = 0;
    lua_Integer n = lua_tointegerx(L, -1, &isint);
    if (!isint || n < 0 || n > (lua_Integer)1000000000) {
        snprintf(err, errlen, "budget() returned %s, not a whole number of verifications >= 0",
                 luaL_tolstring(L, -1, NULL));
        lua_pop(L, 1);
        return -1;
    }
    return (long)n;
}

/* validora/warmup.lua (a later rules directory may bring its own): its budget() must be a
 * function that answers for a new IP, or the generation does not load. */
static void keep_warmup(loader *ld)
{
    lua_State *L = ld->L;
    char path[4096];
    if (!vd_sandbox_find(L, "validora.warmup", path, sizeof path))
        snprintf(path, sizeof path, "validora/warmup.lua");
    if (!require_module(ld, "validora.warmup")) return;
    if (!lua_istable(L, -1) || lua_getfield(L, -1, "budget") != LUA_TFUNCTION) {
        problem(ld, path, 0, "must return a table with a function budget(age_days, history)");
        return;
    }
    int fn = lua_gettop(L);
    vd_warmup_history none = {0};
    char err[512];
    if (call_budget(L, fn, 0, &none) != LUA_OK) {
        lua_problem(ld, path, lua_tostring(L, -1));
        return;
    }
    if (budget_value(L, err, sizeof err) < 0) {
        problem(ld, path, 0, err);
        return;
    }
    lua_pushvalue(L, fn);
    lua_setfield(L, LUA_REGISTRYINDEX, WARMUP_KEY);
}

/* Orders the entries at index list (validora/select.lua) and keeps the runner. */
static void keep_runner(loader *ld, int list)
{
    lua_State *L = ld->L;
    if (!require_module(ld, "validora.select")) return;
    int sel = lua_gettop(L);
    lua_pushvalue(L, sel);
    lua_setfield(L, LUA_REGISTRYINDEX, SELECT_KEY);
    lua_getfield(L, sel, "order");
    lua_pushvalue(L, list);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_problem(ld, "validora/select.lua", lua_tostring(L, -1));
        return;
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, ORDERED_KEY);
    lua_getfield(L, sel, "runner");
    lua_insert(L, -2);
    lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_KEY);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK || !lua_isfunction(L, -1)) {
        lua_problem(ld, "validora/select.lua",
                    lua_isstring(L, -1) ? lua_tostring(L, -1) : "runner() must return a function");
        return;
    }
    lua_setfield(L, LUA_REGISTRYINDEX, RUNNER_KEY);
    if (!require_module(ld, "validora.reputation")) return;
    lua_getfield(L, -1, "signal_for");
    lua_setfield(L, LUA_REGISTRYINDEX, VD_SIGNAL_KEY);
    keep_warmup(ld);
}

/* Loads every rule (through require, so `require "default"` from another rule gets the same
 * table), checks each, orders them and keeps the runner in the registry. */
static void load_all(loader *ld, const char *const *dirs, size_t ndirs)
{
    lua_State *L = ld->L;
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < ndirs; i++)
        add_rule_files(ld, dirs[i], &names, &n, &cap);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    if (!require_module(ld, "validora.check")) goto out;
    lua_getfield(L, -1, "check");
    int checker = lua_gettop(L);
    lua_newtable(L); /* entries, default left out, in file-name order */
    int list = lua_gettop(L);
    int count = 0;
    bool have_default = false;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        vd_sandbox_find(L, names[i], path, sizeof path);
        if (!require_module(ld, names[i])) continue;
        if (!rule_ok(ld, checker, path)) {
            lua_pop(L, 1);
            continue;
        }
        if (strcmp(names[i], "default") == 0) {
            have_default = true;
            lua_setfield(L, LUA_REGISTRYINDEX, DEFAULT_KEY);
            continue;
        }
        lua_createtable(L, 0, 3);
        lua_insert(L, -2);
        lua_setfield(L, -2, "rule");
        lua_pushstring(L, names[i]);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, path);
        lua_setfield(L, -2, "file");
        lua_rawseti(L, list, ++count);
    }
    if (!have_default) {
        char path[4096];
        snprintf(path, sizeof path, "%s/default.lua", ndirs ? dirs[ndirs - 1] : ".");
        problem(ld, path, 0, "missing: the fallback rule is required");
    }
    if (require_module(ld, "validora.once")) vd_lua_job_set_method(L, "once");
    if (!ld->problems) keep_runner(ld, list);
out:
    lua_settop(L, 0);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

vd_rules *vd_rules_load(const vd_rules_env *env, const char *const *dirs, size_t ndirs, unsigned id,
                        vd_problem_cb cb, void *arg)
{
    loader ld = {.cb = cb, .arg = arg};
    vd_rules *r = calloc(1, sizeof *r);
    if (!r) {
        problem(&ld, ndirs ? dirs[0] : "rules", 0, "out of memory");
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
    char err[512];
    r->L = vd_sandbox_new(dirs, ndirs, &lim, err, sizeof err);
    if (!r->L) {
        problem(&ld, ndirs ? dirs[0] : "rules", 0, err);
        free(r);
        return NULL;
    }
    ld.L = r->L;
    open_bindings(r->L, r);
    load_all(&ld, dirs, ndirs);
    if (ld.problems) {
        vd_sandbox_close(r->L);
        free(r);
        return NULL;
    }
    vd_sandbox_digest(r->L, r->digest);
    r->service = lua_newthread(r->L);
    lua_setfield(r->L, LUA_REGISTRYINDEX, SERVICE_KEY);
    return r;
}

void vd_rules_digest(const vd_rules *r, unsigned char out[32])
{
    memcpy(out, r->digest, sizeof r->digest);
}

void vd_rules_order(vd_rules *r, vd_rule_cb cb, void *arg)
{
    lua_State *L = r->L;
    lua_getfield(L, LUA_REGISTRYINDEX, ORDERED_KEY);
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        lua_getfield(L, -1, "name");
        lua_getfield(L, -2, "file");
        lua_getfield(L, -3, "priority");
        cb((int)i, lua_tostring(L, -3), lua_tostring(L, -2), (double)lua_tonumber(L, -1), arg);
        lua_pop(L, 4);
    }
    lua_pop(L, 1);
    char path[4096];
    vd_sandbox_find(L, "default", path, sizeof path);
    cb((int)n + 1, "default", path, 0, arg);
}

/* Copies the string field key of the table on top into buf ("" when absent). */
static void copy_field(lua_State *L, const char *key, char *buf, size_t len)
{
    lua_getfield(L, -1, key);
    snprintf(buf, len, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
    lua_pop(L, 1);
}

int vd_rules_pick(vd_rules *r, const char *domain, const vd_mx_result *mx, vd_pick *out)
{
    lua_State *L = r->L;
    memset(out, 0, sizeof *out);
    lua_getfield(L, LUA_REGISTRYINDEX, SELECT_KEY);
    lua_getfield(L, -1, "pick");
    lua_getfield(L, LUA_REGISTRYINDEX, ORDERED_KEY);
    lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_KEY);
    lua_pushstring(L, domain);
    lua_createtable(L, mx ? (int)mx->nhosts : 0, 0);
    for (size_t i = 0; mx && i < mx->nhosts; i++) {
        lua_pushstring(L, mx->hosts[i].name);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    int rc = 0;
    if (lua_pcall(L, 4, 2, 0) != LUA_OK) {
        snprintf(out->by, sizeof out->by, "error");
        snprintf(out->pattern, sizeof out->pattern, "%s", lua_tostring(L, -1));
        rc = -1;
    } else {
        lua_pushvalue(L, -2);
        copy_field(L, "name", out->rule, sizeof out->rule);
        lua_pop(L, 1);
        copy_field(L, "by", out->by, sizeof out->by);
        copy_field(L, "pattern", out->pattern, sizeof out->pattern);
        copy_field(L, "host", out->host, sizeof out->host);
        lua_getfield(L, -1, "entry");
        if (lua_istable(L, -1))
            copy_field(L, "file", out->file, sizeof out->file);
        else
            vd_sandbox_find(L, "default", out->file, sizeof out->file);
    }
    lua_settop(L, 0);
    return rc;
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

long vd_rules_budget(vd_rules *r, int age_days, const vd_warmup_history *h, char *err,
                     size_t errlen)
{
    lua_State *L = r->service;
    vd_sandbox_service(r->L);
    lua_getfield(L, LUA_REGISTRYINDEX, WARMUP_KEY);
    long n = -1;
    if (call_budget(L, lua_gettop(L), age_days, h) != LUA_OK)
        snprintf(err, errlen, "validora/warmup.lua: %s", lua_tostring(L, -1));
    else
        n = budget_value(L, err, errlen);
    lua_settop(L, 0);
    return n;
}

/* ---- runs ---- */

static void run_free(vd_run *run)
{
    vd_lua_sessions_detach(run);
    vd_probe_release_all(run->probe);
    vd_lua_job_detach(run);
    vd_task_free(run->task); /* cancels an http.request in flight */
    vd_cookie_jar_free(run->jar);
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
        vd_probe_decide(p, VD_STATUS_UNKNOWN, VD_REASON_RULE_ERROR);
        vd_probe_set_detail(p, msg);
        vd_log_to(run->gen->env.log, run->gen->env.log_arg, VD_LOG_INFO, "%s: rule error: %s",
                  p->addr ? p->addr->address : "?", msg);
    } else if (!p->status) {
        vd_probe_decide(p, VD_STATUS_UNKNOWN, VD_REASON_RULE_ERROR);
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
    char label[128];
    snprintf(label, sizeof label, "the rule probe of %.100s", p->addr->address);
    vd_task_set_label(run->task, label);
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

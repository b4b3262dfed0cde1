/* lua_job.c — the `job` object rules get: what is known of the address, the verdict
 * setters, job:smtp() (a pooled SMTP session, yields), job:once() (a per-run memo shared by
 * all jobs, coalescing concurrent callers), and the park/wake primitive behind it.
 * Does not own: the session object (lua_smtp.c), DNS calls (lua_dns.c). */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include <lauxlib.h>
#include <openssl/rand.h>
#include "engine_internal.h"

#define JOB_MT "validora.job"

typedef struct job_ud {
    vd_job *job;
} job_ud;

static vd_job *check_job(lua_State *L, int idx)
{
    job_ud *u = luaL_checkudata(L, idx, JOB_MT);
    if (!u->job) luaL_error(L, "job has ended");
    return u->job;
}

/* I/O methods must run on the job's own coroutine: that is what gets resumed. */
static vd_job *check_job_io(lua_State *L, int idx)
{
    vd_job *j = check_job(L, idx);
    if (L != j->co) luaL_error(L, "job I/O called outside the job's own probe");
    return j;
}

void vd_lua_job_push(lua_State *L, vd_job *j)
{
    if (j->self_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, j->self_ref);
        return;
    }
    job_ud *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->job = j;
    luaL_setmetatable(L, JOB_MT);
    lua_newtable(L); /* fields cache */
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, -1);
    j->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

void vd_lua_job_detach(vd_job *j)
{
    if (j->self_ref == LUA_NOREF || !j->gen) return;
    lua_State *L = j->gen->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, j->self_ref);
    job_ud *u = lua_touserdata(L, -1);
    if (u) u->job = NULL;
    lua_pop(L, 1);
}

/* job.<field>: facts about the address, computed once and cached in the uservalue. */
static int job_index(lua_State *L)
{
    vd_job *j = check_job(L, 1);
    const char *k = luaL_checkstring(L, 2);
    luaL_getmetafield(L, 1, "methods");
    lua_getfield(L, -1, k);
    if (!lua_isnil(L, -1)) return 1;
    lua_pop(L, 2);
    lua_getiuservalue(L, 1, 1);
    lua_getfield(L, -1, k);
    if (!lua_isnil(L, -1)) return 1;
    lua_pop(L, 1);
    if (!strcmp(k, "email"))
        lua_pushstring(L, j->email);
    else if (!strcmp(k, "address"))
        lua_pushstring(L, j->addr.address);
    else if (!strcmp(k, "local_part"))
        lua_pushstring(L, j->addr.local);
    else if (!strcmp(k, "domain"))
        lua_pushstring(L, j->addr.domain);
    else if (!strcmp(k, "domain_unicode"))
        lua_pushstring(L, j->addr.domain_unicode);
    else if (!strcmp(k, "smtputf8"))
        lua_pushboolean(L, j->addr.smtputf8);
    else if (!strcmp(k, "disposable"))
        lua_pushboolean(L, j->disposable);
    else if (!strcmp(k, "role"))
        lua_pushboolean(L, j->role);
    else if (!strcmp(k, "free"))
        lua_pushboolean(L, j->free_provider);
    else if (!strcmp(k, "mx"))
        vd_lua_push_mx_hosts(L, j->mx);
    else if (!strcmp(k, "implicit_mx"))
        lua_pushboolean(L, j->mx && j->mx->implicit);
    else if (!strcmp(k, "attempts")) {
        lua_pushinteger(L, j->attempts); /* changes: not cached */
        return 1;
    } else
        return 0;
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, k);
    return 1;
}

/* Copies a reply table {code, enhanced, text} into the record, or a string as detail. */
static void take_evidence(lua_State *L, vd_job *j, int idx)
{
    if (lua_istable(L, idx)) {
        lua_getfield(L, idx, "code");
        lua_getfield(L, idx, "enhanced");
        lua_getfield(L, idx, "text");
        if (lua_isinteger(L, -3)) {
            j->has_smtp = true;
            j->smtp_code = (int)lua_tointeger(L, -3);
            const char *enh = lua_tostring(L, -2);
            snprintf(j->smtp_enhanced, sizeof j->smtp_enhanced, "%s", enh ? enh : "");
            const char *text = lua_tostring(L, -1);
            free(j->smtp_text);
            j->smtp_text = strdup(text ? text : "");
        }
        lua_pop(L, 3);
    } else if (lua_type(L, idx) == LUA_TSTRING) {
        vd_job_set_detail(j, lua_tostring(L, idx));
    }
}

static int set_verdict(lua_State *L, const char *status)
{
    vd_job *j = check_job(L, 1);
    const char *reason = luaL_checkstring(L, 2);
    size_t n = strlen(reason);
    if (n == 0 || n >= sizeof j->reason) return luaL_error(L, "verdict reason must be 1-47 chars");
    for (const char *p = reason; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return luaL_error(L, "verdict reason must be one lower-case word: '%s'", reason);
    vd_job_verdict(j, status, reason);
    take_evidence(L, j, 3);
    if (lua_type(L, 4) == LUA_TSTRING) vd_job_set_detail(j, lua_tostring(L, 4));
    return 0;
}

static int job_deliverable(lua_State *L)
{
    return set_verdict(L, "deliverable");
}
static int job_undeliverable(lua_State *L)
{
    return set_verdict(L, "undeliverable");
}
static int job_risky(lua_State *L)
{
    return set_verdict(L, "risky");
}
static int job_unknown(lua_State *L)
{
    return set_verdict(L, "unknown");
}

/* job:set(key, value) for the record facts a rule establishes. */
static int job_set(lua_State *L)
{
    vd_job *j = check_job(L, 1);
    const char *k = luaL_checkstring(L, 2);
    if (!strcmp(k, "catch_all")) {
        j->catch_all = lua_isnil(L, 3) ? VD_UNSET : lua_toboolean(L, 3) ? VD_YES : VD_NO;
    } else if (!strcmp(k, "detail")) {
        vd_job_set_detail(j, luaL_optstring(L, 3, NULL));
    } else if (!strcmp(k, "smtp")) {
        take_evidence(L, j, 3);
    } else {
        return luaL_error(L, "job:set: unknown key '%s'", k);
    }
    return 0;
}

static int job_provider(lua_State *L)
{
    vd_job *j = check_job(L, 1);
    snprintf(j->provider, sizeof j->provider, "%s", luaL_checkstring(L, 2));
    return 0;
}

/* A local part nobody has: for catch-all probes. Letters and digits, starts with a letter. */
static int job_random_local(lua_State *L)
{
    check_job(L, 1);
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char rnd[20];
    char out[21];
    if (RAND_bytes(rnd, sizeof rnd) != 1) return luaL_error(L, "no randomness");
    for (size_t i = 0; i < sizeof rnd; i++)
        out[i] = alphabet[rnd[i] % (i == 0 ? 26 : sizeof alphabet - 1)];
    out[sizeof rnd] = '\0';
    lua_pushstring(L, out);
    return 1;
}

/* ---- job:smtp() ---- */

void vd_lua_session_push(lua_State *L, vd_job *j, vd_lease *lease); /* lua_smtp.c */

static void on_lease(vd_lease *lease, const vd_pool_result *r, void *arg)
{
    vd_job *j = vd_waiter_take(arg);
    if (!j) {
        if (lease) vd_lease_release(lease, true);
        return;
    }
    if (r->mx) {
        free(j->mx_used);
        j->mx_used = strdup(r->mx);
    }
    if (!lease) {
        lua_pushnil(j->co);
        lua_pushstring(j->co, vd_smtp_err_name(r->err));
        if (r->reply) {
            lua_createtable(j->co, 0, 3);
            lua_pushinteger(j->co, r->reply->code);
            lua_setfield(j->co, -2, "code");
            lua_pushstring(j->co, r->reply->enhanced);
            lua_setfield(j->co, -2, "enhanced");
            lua_pushstring(j->co, r->reply->text ? r->reply->text : "");
            lua_setfield(j->co, -2, "text");
            luaL_setmetatable(j->co, "validora.reply");
        } else {
            lua_pushstring(j->co, r->errmsg ? r->errmsg : vd_smtp_err_name(r->err));
        }
        vd_job_resume(j, 3);
        return;
    }
    j->tls = vd_lease_tls(lease) ? VD_YES : VD_NO;
    j->tls_verified = vd_lease_tls_verified(lease) ? VD_YES : VD_NO;
    vd_lua_session_push(j->co, j, lease);
    vd_job_resume(j, 1);
}

static int job_smtp(lua_State *L)
{
    vd_job *j = check_job_io(L, 1);
    int free_slot = -1;
    for (int i = 0; i < VD_JOB_MAX_SESSIONS; i++)
        if (!j->sessions[i]) free_slot = i;
    if (free_slot < 0) return luaL_error(L, "job:smtp: too many open sessions (release one)");
    j->attempts++;
    vd_waiter *w = vd_job_wait_begin(j, VD_WAIT_POOL);
    if (!w) return luaL_error(L, "out of memory");
    vd_pool_req *req = vd_pool_acquire(j->e->pool, j->mx, on_lease, w);
    if (j->sync_nargs < 0) j->wait_handle = req;
    return vd_job_wait_end(L, j);
}

/* ---- park / wake: a job waits until another hands it a value ---- */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    vd_job *j = arg;
    if (j->wait_kind == VD_WAIT_TIMER) {
        if (!vd_waiter_take(j->waiter)) return;
        vd_job_resume(j, 0);
    } else if (j->wait_kind == VD_WAIT_PARK && j->park_ref != LUA_NOREF) {
        if (!vd_waiter_take(j->waiter)) return;
        lua_rawgeti(j->co, LUA_REGISTRYINDEX, j->park_ref);
        luaL_unref(j->co, LUA_REGISTRYINDEX, j->park_ref);
        j->park_ref = LUA_NOREF;
        vd_job_resume(j, 1);
    }
}

static int ensure_timer(vd_job *j)
{
    if (!j->timer) j->timer = evtimer_new(j->e->base, on_timer, j);
    return j->timer ? 0 : -1;
}

int vd_lua_sleep(lua_State *L); /* used by lua_dns.c's util table */
int vd_lua_sleep(lua_State *L)
{
    vd_job *j = vd_lua_job_of(L);
    if (!j || L != j->co) return luaL_error(L, "sleep: only inside a job's probe");
    lua_Number s = luaL_checknumber(L, 1);
    if (s < 0 || s > 86400) return luaL_error(L, "sleep: seconds out of range");
    if (ensure_timer(j) != 0) return luaL_error(L, "out of memory");
    if (!vd_job_wait_begin(j, VD_WAIT_TIMER)) return luaL_error(L, "out of memory");
    struct timeval tv = {(time_t)s, (suseconds_t)((s - (lua_Number)(time_t)s) * 1e6)};
    event_base_update_cache_time(j->e->base); /* the timer counts from now, not loop start */
    evtimer_add(j->timer, &tv);
    return vd_job_wait_end(L, j);
}

static int job_park(lua_State *L)
{
    vd_job *j = check_job_io(L, 1);
    if (ensure_timer(j) != 0) return luaL_error(L, "out of memory");
    if (!vd_job_wait_begin(j, VD_WAIT_PARK)) return luaL_error(L, "out of memory");
    return vd_job_wait_end(L, j);
}

static int job_wake(lua_State *L)
{
    vd_job *j = check_job(L, 1);
    lua_settop(L, 2);
    if (j->wait_kind != VD_WAIT_PARK || j->park_ref != LUA_NOREF) {
        lua_pushboolean(L, 0);
        return 1;
    }
    j->park_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    /* resumed from the loop, not from inside the waker's coroutine */
    struct timeval zero = {0, 0};
    evtimer_add(j->timer, &zero);
    lua_pushboolean(L, 1);
    return 1;
}

/* job:once(key, fn): fn runs once per run and key; concurrent callers wait for its value.
 * An error in fn propagates to its caller; the waiters get nil and the key is forgotten.
 * A nil result ("could not tell") is handed to the waiters but not kept: a later job asks
 * again. */
static const char ONCE_SRC[] = "local memo = {}\n"
                               "return function(job, key, fn)\n"
                               "  local m = memo[key]\n"
                               "  if m then\n"
                               "    if m.done then return m.value end\n"
                               "    m.waiters[#m.waiters + 1] = job\n"
                               "    return job:_park()\n"
                               "  end\n"
                               "  m = { waiters = {} }\n"
                               "  memo[key] = m\n"
                               "  local ok, v = pcall(fn)\n"
                               "  if not ok then\n"
                               "    memo[key] = nil\n"
                               "    for _, w in ipairs(m.waiters) do w:_wake(nil) end\n"
                               "    error(v, 0)\n"
                               "  end\n"
                               "  if v == nil then memo[key] = nil else m.done, m.value = true, v end\n"
                               "  for _, w in ipairs(m.waiters) do w:_wake(v) end\n"
                               "  m.waiters = nil\n"
                               "  return v\n"
                               "end\n";

static int job_gc(lua_State *L)
{
    job_ud *u = luaL_checkudata(L, 1, JOB_MT);
    u->job = NULL;
    return 0;
}

void vd_lua_job_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"smtp", job_smtp},
        {"deliverable", job_deliverable},
        {"undeliverable", job_undeliverable},
        {"risky", job_risky},
        {"unknown", job_unknown},
        {"set", job_set},
        {"random_local", job_random_local},
        {"_provider", job_provider},
        {"_park", job_park},
        {"_wake", job_wake},
        {NULL, NULL},
    };
    luaL_newmetatable(L, JOB_MT);
    lua_pushcfunction(L, job_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, job_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    luaL_newlib(L, methods);
    if (luaL_loadbufferx(L, ONCE_SRC, sizeof ONCE_SRC - 1, "=once", "t") != LUA_OK ||
        lua_pcall(L, 0, 1, 0) != LUA_OK)
        luaL_error(L, "once: %s", lua_tostring(L, -1));
    lua_setfield(L, -2, "once");
    lua_setfield(L, -2, "methods");
    lua_pop(L, 1);
}

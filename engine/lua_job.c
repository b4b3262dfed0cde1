/* lua_job.c — the `job` object a rule's probe gets: what is known of the address, the
 * verdict setters, job:smtp() (a limiter wait, charged to the day's warm-up budget when the
 * probe's first session may open, then a pooled SMTP session; yields) and the park/wake pair behind
 * job:once() (rules/validora/once.lua).
 * Writes only into the run's vd_probe (probe.h); never calls up into the engine.
 * Does not own: the session object (lua_smtp.c), DNS calls (lua_dns.c), the coroutine
 * protocol (lua_task.c). */
#include <stddef.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <lauxlib.h>
#include <openssl/rand.h>
#include "clock.h"
#include "budget.h"
#include "lua_bridge.h"
#include "lua_job.h"

#define JOB_MT "validora.job"

typedef struct job_ud {
    vd_run *run;
} job_ud;

static vd_run *check_job(lua_State *L, int idx)
{
    job_ud *u = luaL_checkudata(L, idx, JOB_MT);
    if (!u->run) luaL_error(L, "job has ended");
    return u->run;
}

/* I/O methods must run on the job's own coroutine: that is what gets resumed. */
static vd_run *check_job_io(lua_State *L, int idx)
{
    vd_run *run = check_job(L, idx);
    if (vd_run_of(L) != run) luaL_error(L, "job I/O called outside the job's own probe");
    return run;
}

void vd_lua_job_push(lua_State *L, vd_run *run)
{
    if (run->self_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, run->self_ref);
        return;
    }
    job_ud *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->run = run;
    luaL_setmetatable(L, JOB_MT);
    lua_newtable(L); /* fields cache */
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, -1);
    run->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

void vd_lua_job_detach(vd_run *run)
{
    if (run->self_ref == LUA_NOREF) return;
    lua_State *L = run->gen->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, run->self_ref);
    job_ud *u = lua_touserdata(L, -1);
    if (u) u->run = NULL;
    lua_pop(L, 1);
}

/* The server a probe judges by: the first address of its first MX host, the one the pool
 * connects to first. false when DNS gave none. */
static bool server_ip(const vd_probe *p, char *out, size_t outlen)
{
    if (!p->mx || !p->mx->nhosts || !p->mx->hosts[0].naddrs) return false;
    const struct sockaddr_storage *ss = &p->mx->hosts[0].addrs[0];
    const void *a = ss->ss_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
    return inet_ntop(ss->ss_family, a, out, (socklen_t)outlen) != NULL;
}

/* Pushes job.<k>; returns false for an unknown key. */
static bool push_field(lua_State *L, const vd_probe *p, const char *k)
{
    const vd_address *a = p->addr;
    if (!strcmp(k, "email"))
        lua_pushlstring(L, p->email, p->email_len);
    else if (!strcmp(k, "address"))
        lua_pushstring(L, a->address);
    else if (!strcmp(k, "local_part"))
        lua_pushstring(L, a->local);
    else if (!strcmp(k, "domain"))
        lua_pushstring(L, a->domain);
    else if (!strcmp(k, "domain_unicode"))
        lua_pushstring(L, a->domain_unicode);
    else if (!strcmp(k, "smtputf8"))
        lua_pushboolean(L, a->smtputf8);
    else if (!strcmp(k, "disposable"))
        lua_pushboolean(L, p->disposable);
    else if (!strcmp(k, "role"))
        lua_pushboolean(L, p->role);
    else if (!strcmp(k, "free"))
        lua_pushboolean(L, p->free_provider);
    else if (!strcmp(k, "mx"))
        vd_lua_push_mx_hosts(L, p->mx);
    else if (!strcmp(k, "implicit_mx"))
        lua_pushboolean(L, p->mx && p->mx->implicit);
    else if (!strcmp(k, "server")) {
        char ip[64];
        if (!server_ip(p, ip, sizeof ip)) return false;
        lua_pushstring(L, ip);
    } else
        return false;
    return true;
}

/* job.<field>: facts about the address, computed once and cached in the uservalue. */
static int job_index(lua_State *L)
{
    vd_run *run = check_job(L, 1);
    const char *k = luaL_checkstring(L, 2);
    luaL_getmetafield(L, 1, "methods");
    lua_getfield(L, -1, k);
    if (!lua_isnil(L, -1)) return 1;
    lua_pop(L, 2);
    if (!strcmp(k, "attempts")) { /* changes: not cached */
        lua_pushinteger(L, run->probe->attempts);
        return 1;
    }
    lua_getiuservalue(L, 1, 1);
    lua_getfield(L, -1, k);
    if (!lua_isnil(L, -1)) return 1;
    lua_pop(L, 1);
    if (!push_field(L, run->probe, k)) return 0;
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, k);
    return 1;
}

/* Copies a reply table {code, enhanced, text} into the record, or a string as detail. */
static void take_evidence(lua_State *L, vd_probe *p, int idx)
{
    if (lua_istable(L, idx)) {
        lua_getfield(L, idx, "code");
        lua_getfield(L, idx, "enhanced");
        lua_getfield(L, idx, "text");
        if (lua_isinteger(L, -3))
            vd_probe_set_reply(p, (int)lua_tointeger(L, -3), lua_tostring(L, -2),
                               lua_tostring(L, -1));
        lua_pop(L, 3);
    } else if (lua_type(L, idx) == LUA_TSTRING) {
        vd_probe_set_detail(p, lua_tostring(L, idx));
    }
}

/* job:STATUS(reason [, evidence [, detail]]) */
static int set_verdict(lua_State *L)
{
    vd_run *run = check_job(L, 1);
    vd_status status = (vd_status)lua_tointeger(L, lua_upvalueindex(1));
    const char *reason = luaL_checkstring(L, 2);
    if (vd_probe_decide(run->probe, status, reason) != 0)
        return luaL_error(L, "verdict reason must be one lower-case word of 1-%d [a-z0-9_]: '%s'",
                          VD_REASON_MAX - 1, reason);
    take_evidence(L, run->probe, 3);
    if (lua_type(L, 4) == LUA_TSTRING) vd_probe_set_detail(run->probe, lua_tostring(L, 4));
    return 0;
}

/* job:set(key, value) for the record facts a rule establishes. */
static int job_set(lua_State *L)
{
    vd_probe *p = check_job(L, 1)->probe;
    const char *k = luaL_checkstring(L, 2);
    if (!strcmp(k, "catch_all"))
        p->catch_all = lua_isnil(L, 3) ? VD_UNSET : lua_toboolean(L, 3) ? VD_YES : VD_NO;
    else if (!strcmp(k, "detail"))
        vd_probe_set_detail(p, luaL_optstring(L, 3, NULL));
    else if (!strcmp(k, "smtp"))
        take_evidence(L, p, 3);
    else
        return luaL_error(L, "job:set: unknown key '%s'", k);
    return 0;
}

/* job:set_address(a): the record's address becomes a, the rule's canonical form of the
 * address (Gmail ignores dots and +tags); `email` stays as given, and so does `domain`, the
 * name whose MX was asked. a must be a valid mailbox; job.address reads it from now on. */
static int job_set_address(lua_State *L)
{
    vd_run *run = check_job(L, 1);
    size_t len;
    const char *in = luaL_checklstring(L, 2, &len);
    vd_address a;
    const char *why = NULL;
    if (!vd_address_parse(in, len, &a, &why))
        return luaL_error(L, "job:set_address: invalid address (%s)", why ? why : "syntax");
    vd_probe_set_address(run->probe, a.address);
    lua_getiuservalue(L, 1, 1);
    lua_pushstring(L, a.address);
    lua_setfield(L, -2, "address");
    return 0;
}

/* job:set_method("smtp" | "http" | "skipped"): how the verdict was reached, when the rule
 * knows better than the calls it made (docs/records.md `method`). */
static int job_set_method(lua_State *L)
{
    vd_run *run = check_job(L, 1);
    const char *name = luaL_checkstring(L, 2);
    vd_method m = vd_probe_method_parse(name);
    if (m == VD_METHOD_NONE)
        return luaL_error(L, "job:set_method: '%s' is not smtp, http or skipped", name);
    vd_probe_force_method(run->probe, m);
    return 0;
}

/* A limits key a rule writes, and the vd_limit field it fills. */
typedef struct limit_field {
    const char *key;
    size_t off;
} limit_field;

/* Fills out's fields from the table on top of the stack (missing or <= 0: 0, no cap). */
static void read_fields(lua_State *L, const limit_field *f, size_t n, vd_limit *out)
{
    for (size_t i = 0; i < n; i++) {
        lua_getfield(L, -1, f[i].key);
        double v = (double)lua_tonumber(L, -1);
        *(double *)((char *)out + f[i].off) = v > 0 ? v : 0;
        lua_pop(L, 1);
    }
}

/* Reads one scope's limits from the table at idx (missing keys are 0: no cap). */
static void read_limit(lua_State *L, int idx, const char *scope, vd_limit *out)
{
    static const limit_field f[] = {
        {"connections", offsetof(vd_limit, connections)},
        {"rcpt_per_session", offsetof(vd_limit, rcpt_per_session)},
        {"sessions_per_minute", offsetof(vd_limit, sessions_per_minute)},
        {"rcpt_per_minute", offsetof(vd_limit, rcpt_per_minute)},
        {"rcpt_burst", offsetof(vd_limit, rcpt_burst)},
        {"unknown_cost", offsetof(vd_limit, unknown_cost)},
        {"start_per_minute", offsetof(vd_limit, start_per_minute)},
    };
    memset(out, 0, sizeof *out);
    if (lua_getfield(L, idx, scope) == LUA_TTABLE) read_fields(L, f, sizeof f / sizeof f[0], out);
    lua_pop(L, 1);
}

/* limits.http = {concurrency, per_minute, burst} (table at index 4): http.request's key. A
 * request holds one of `concurrency` while it runs and takes one token of a bucket of
 * `burst` refilled at up to `per_minute` (the adaptive rate, as RCPTs). */
static void read_http_limit(lua_State *L, vd_run *run, const char *rule)
{
    static const limit_field f[] = {
        {"concurrency", offsetof(vd_limit, connections)},
        {"per_minute", offsetof(vd_limit, rcpt_per_minute)},
        {"burst", offsetof(vd_limit, rcpt_burst)},
    };
    vd_limit lim = {0};
    if (lua_getfield(L, 4, "http") == LUA_TTABLE) read_fields(L, f, sizeof f / sizeof f[0], &lim);
    lua_pop(L, 1);
    vd_lua_http_limits(run, rule, &lim);
}

/* job:_rule(name, provider_key, limits): the rule chosen for the address (select.lua), the
 * key its provider scope is charged to, and the limits of every scope. */
static int job_rule(lua_State *L)
{
    vd_run *run = check_job(L, 1);
    vd_probe *p = run->probe;
    vd_probe_set_provider(p, luaL_checkstring(L, 2));
    vd_probe_note_method(p, VD_METHOD_SKIPPED); /* a rule runs: until it asks anybody */
    const char *pkey = luaL_checkstring(L, 3);
    luaL_checktype(L, 4, LUA_TTABLE);
    for (int i = 0; i < VD_NSCOPES; i++)
        read_limit(L, 4, vd_scope_name((vd_scope)i), &p->limits.limit[i]);
    read_http_limit(L, run, luaL_checkstring(L, 2));
    const char *ip = run->gen->env.cfg->source_ip;
    vd_limit_set *ls = &p->limits;
    vd_scope_key(VD_SCOPE_PROVIDER, pkey, ls->key[VD_SCOPE_PROVIDER], sizeof ls->key[0]);
    /* the server is judged by its address, not its names: every MX name and domain on one
     * server shares its keys (docs/reputation.md, "Keys") */
    char server[64], net[64];
    if (server_ip(p, server, sizeof server)) {
        vd_limiter_network_of(server, net, sizeof net);
        vd_scope_key(VD_SCOPE_MX, server, ls->key[VD_SCOPE_MX], sizeof ls->key[0]);
        vd_scope_key(VD_SCOPE_NETWORK, net, ls->key[VD_SCOPE_NETWORK], sizeof ls->key[0]);
    } else {
        vd_scope_key(VD_SCOPE_MX, p->mx && p->mx->nhosts ? p->mx->hosts[0].name : "?",
                     ls->key[VD_SCOPE_MX], sizeof ls->key[0]);
        ls->key[VD_SCOPE_NETWORK][0] = '\0';
    }
    vd_scope_key(VD_SCOPE_DOMAIN, p->addr->domain, ls->key[VD_SCOPE_DOMAIN], sizeof ls->key[0]);
    vd_scope_key(VD_SCOPE_SOURCE_IP, ip ? ip : "any", ls->key[VD_SCOPE_SOURCE_IP],
                 sizeof ls->key[0]);
    vd_scope_key(VD_SCOPE_GLOBAL, "*", ls->key[VD_SCOPE_GLOBAL], sizeof ls->key[0]);
    p->limiter = run->gen->env.limiter;
    return 0;
}

/* A local part nobody has: for catch-all probes. Letters and digits, starts with a letter. */
static int job_random_local(lua_State *L)
{
    vd_run *run = check_job(L, 1);
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char rnd[20];
    char out[21];
    if (RAND_bytes(rnd, sizeof rnd) != 1) return luaL_error(L, "no randomness");
    for (size_t i = 0; i < sizeof rnd; i++)
        out[i] = alphabet[rnd[i] % (i == 0 ? 26 : sizeof alphabet - 1)];
    out[sizeof rnd] = '\0';
    snprintf(run->made_up, sizeof run->made_up, "%s", out);
    lua_pushstring(L, out);
    return 1;
}

/* ---- job:smtp() ---- */

static void on_lease(vd_lease *lease, const vd_pool_result *r, void *arg)
{
    vd_task *t = vd_waiter_take(arg);
    if (!t) {
        if (lease) vd_lease_release(lease, true);
        return;
    }
    vd_run *run = vd_task_arg(t);
    vd_probe *p = run->probe;
    lua_State *co = vd_task_thread(t);
    if (r->mx) vd_probe_set_mx(run->probe, r->mx);
    if (p->granted > 0) p->granted--; /* the lease (or its failure) takes over the grant */
    if (!lease) {
        vd_limiter_session_end(p->limiter, &p->limits);
        lua_pushnil(co);
        lua_pushstring(co, vd_smtp_err_name(r->err));
        if (r->reply) /* the refusal is read once: the limiter hears it, the rule gets it */
            vd_limiter_feedback(p->limiter, &p->limits,
                                vd_lua_reply_read(co, run, r->reply->code, r->reply->enhanced,
                                                  r->reply->text, true),
                                true, r->reply->text);
        else
            lua_pushstring(co, r->errmsg ? r->errmsg : vd_smtp_err_name(r->err));
        vd_task_resume(t, 3);
        return;
    }
    if (vd_lease_fresh(lease)) vd_limiter_session_fresh(p->limiter, &p->limits);
    vd_probe_note_session(p, lease);
    int slot = vd_probe_lease_add(p, lease);
    vd_lua_session_push(co, run, slot);
    vd_task_resume(t, 1);
}

static void cancel_pool(void *handle)
{
    vd_pool_cancel(handle);
}

/* A job:smtp() waiting for the limiter's leave to open a session, then (the probe's first
 * session) for the day's budget. */
typedef struct smtp_wait {
    vd_hold hold;                  /* run, waiter, the limiter's handle, since */
    struct smtp_wait *prev, *next; /* in env.parked, while waiting */
    vd_budget_wait *bw;
    bool charged;       /* this call charged the budget */
    bool holds_session; /* granted by the limiter, the budget being asked */
} smtp_wait;

static void park_link(smtp_wait *sw)
{
    vd_smtp_parked *p = sw->hold.run->gen->env.parked;
    if (!p) return;
    sw->next = p->head;
    if (p->head) p->head->prev = sw;
    p->head = sw;
}

/* Every free of a smtp_wait goes through here. */
static void smtp_wait_free(smtp_wait *sw)
{
    vd_smtp_parked *p = sw->hold.run->gen->env.parked;
    if (p && (p->head == sw || sw->prev)) {
        if (sw->prev)
            sw->prev->next = sw->next;
        else
            p->head = sw->next;
        if (sw->next) sw->next->prev = sw->prev;
    }
    free(sw);
}

static void cancel_smtp_wait(void *handle)
{
    smtp_wait *sw = handle;
    vd_budget_cancel(sw->bw);
    vd_limiter_cancel(sw->hold.lw);
    smtp_wait_free(sw);
}

static bool pool_has_idle(void *arg)
{
    smtp_wait *sw = arg;
    return vd_pool_has_idle(sw->hold.run->gen->env.pool, sw->hold.run->probe->mx);
}

/* Ends the wait with nil, errors.deferred, why (a rule writes the address unknown/deferred). */
static void defer_smtp(smtp_wait *sw, const char *why)
{
    vd_run *run = sw->hold.run;
    vd_waiter *w = vd_hold_over(&sw->hold);
    smtp_wait_free(sw);
    vd_task_wait_cancel(run->task, NULL, vd_task_no_callback);
    vd_waiter_fail(w, VD_LIMITER_DEFERRED, why);
}

static void on_budget(const char *deny, void *arg);
static void wait_session(smtp_wait *sw);

/* The limiter's leave: the session may open. The address's first one is charged to the day's
 * budget here, when a session is about to be opened, not when job:smtp() is called: with
 * --concurrency 256 most addresses wait at the limiter, and a kill -9 would lose every
 * reservation they held (issue 17). A budget that parks the address (--on-budget wait) or
 * refuses it gives the session back first. */
static void on_session_leave(const char *deny, void *arg)
{
    smtp_wait *sw = arg;
    vd_run *run = sw->hold.run;
    sw->hold.lw = NULL;
    if (deny) {
        if (sw->charged) { /* nothing was sent: the verification goes back to the budget */
            vd_budget_refund(run->gen->env.budget);
            run->probe->charged = false;
        }
        defer_smtp(sw, deny);
        return;
    }
    vd_budget *b = run->gen->env.budget;
    if (b && !run->probe->charged) {
        /* one verification per address: its first session, not each session or retry */
        sw->holds_session = true;
        vd_budget_wait *bw = vd_budget_take(b, on_budget, sw);
        if (!bw) return; /* on_budget ran: it went on, or deferred and freed sw */
        sw->bw = bw;     /* parked until midnight: not on a session slot */
        sw->holds_session = false;
        vd_limiter_session_end(run->probe->limiter, &run->probe->limits);
        return;
    }
    vd_waiter *w = vd_hold_over(&sw->hold);
    smtp_wait_free(sw);
    vd_task_wait_cancel(run->task, NULL, vd_task_no_callback);
    run->probe->granted++;
    vd_pool_req *req = vd_pool_acquire(run->gen->env.pool, run->probe->mx, on_lease, w);
    if (req) vd_task_wait_cancel(run->task, req, cancel_pool);
}

static void wait_session(smtp_wait *sw)
{
    vd_probe *p = sw->hold.run->probe;
    sw->hold.since =
        vd_now_mono(); /* the record's delayed_ms: the limiter's hold, not the budget's */
    vd_limiter_wait *lw =
        p->reuse
            ? vd_limiter_session_reuse(p->limiter, &p->limits, pool_has_idle, on_session_leave, sw)
            : vd_limiter_session(p->limiter, &p->limits, on_session_leave, sw);
    if (lw) sw->hold.lw = lw; /* else on_session_leave ran (and freed sw) */
}

static void on_budget(const char *deny, void *arg)
{
    smtp_wait *sw = arg;
    bool held = sw->holds_session;
    sw->bw = NULL;
    sw->holds_session = false;
    if (deny) {
        if (held)
            vd_limiter_session_end(sw->hold.run->probe->limiter, &sw->hold.run->probe->limits);
        defer_smtp(sw, deny);
        return;
    }
    sw->charged = sw->hold.run->probe->charged = true;
    if (held) /* granted at once: the session the limiter gave goes on */
        on_session_leave(NULL, sw);
    else /* after a wait for the new day: ask the limiter again */
        wait_session(sw);
}

static int job_smtp(lua_State *L)
{
    vd_run *run = check_job_io(L, 1);
    if (!vd_probe_lease_room(run->probe))
        return luaL_error(L, "job:smtp: too many open sessions (release one)");
    run->probe->attempts++;
    vd_probe_note_method(run->probe, VD_METHOD_SMTP);
    smtp_wait *sw = calloc(1, sizeof *sw);
    if (!sw) return luaL_error(L, "out of memory");
    if (!vd_hold_begin(&sw->hold, run, sw, cancel_smtp_wait)) {
        free(sw);
        return luaL_error(L, "out of memory");
    }
    vd_smtp_parked *parked = run->gen->env.parked;
    if (parked && parked->drained) {
        defer_smtp(sw, parked->drained); /* stopping: no new session */
    } else {
        park_link(sw);
        wait_session(sw); /* the budget is charged when the limiter lets the session open */
    }
    return vd_task_wait_end(L, run->task);
}

void vd_smtp_drain(vd_smtp_parked *p, const char *why)
{
    p->drained = why;
    while (p->head) {            /* each defer unlinks it; a probe it resumes finds `drained` set */
        smtp_wait *sw = p->head; /* never one holding a session: that is within one call */
        vd_budget_cancel(sw->bw);
        vd_limiter_cancel(sw->hold.lw);
        sw->bw = NULL;
        sw->hold.lw = NULL;
        defer_smtp(sw, why);
    }
}

/* ---- park / wake: the memo's waiters ---- */

static int job_park(lua_State *L)
{
    vd_run *run = check_job_io(L, 1);
    return vd_task_park(L, run->task);
}

static int job_wake(lua_State *L)
{
    vd_run *run = check_job(L, 1);
    lua_settop(L, 2);
    lua_pushboolean(L, vd_task_wake(run->task, L));
    return 1;
}

static int job_gc(lua_State *L)
{
    job_ud *u = luaL_checkudata(L, 1, JOB_MT);
    u->run = NULL;
    return 0;
}

void vd_lua_job_set_method(lua_State *L, const char *name)
{
    luaL_getmetatable(L, JOB_MT);
    lua_getfield(L, -1, "methods");
    lua_rotate(L, -3, -1); /* value, mt, methods -> mt, methods, value */
    lua_setfield(L, -2, name);
    lua_pop(L, 2);
}

void vd_lua_job_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"smtp", job_smtp},
        {"set", job_set},
        {"random_local", job_random_local},
        {"_rule", job_rule},
        {"_park", job_park},
        {"_wake", job_wake},
        {"set_address", job_set_address},
        {"set_method", job_set_method},
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
    for (int s = 0; s < VD_STATUS_COUNT; s++) {
        lua_pushinteger(L, s);
        lua_pushcclosure(L, set_verdict, 1);
        lua_setfield(L, -2, vd_status_name((vd_status)s));
    }
    lua_setfield(L, -2, "methods");
    lua_pop(L, 1);
}

/* lua_smtp.c — the SMTP session object rules get from job:smtp(), and reply objects.
 *
 * session:rcpt(addr), :mail(from), :rset() yield until the reply and return a reply table
 * {code, enhanced, text, signal} with :matches(p), or nil, err, detail when no reply came (err is
 * one of docs/errors.md). Every address is parsed and validated here before it goes
 * anywhere near the wire. session:release([reusable]) hands the session back; sessions still
 * held when the probe ends are released for it.
 * A reply is read once, here, as it arrives (vd_lua_reply_read): the rule's reading of what it
 * says about us (reputation.signal_for) goes to the limiter and, as reply.signal, to the rule,
 * whose classify reads it instead of reading the reply again.
 * Does not own: what a reply means (rules), which replies end a session or how enhanced codes
 * match (smtp.c), keeping or retiring sessions (pool.c). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <lauxlib.h>
#include "log.h"
#include "lua_bridge.h"
#include "sandbox.h"
#include "smtp.h"

#define SESSION_MT "validora.session"
#define REPLY_MT   "validora.reply"

typedef struct vd_lua_session {
    vd_run *run; /* NULL once released or the probe ended */
    int slot;    /* the lease's slot in run->probe->leases */
} vd_lua_session;

void vd_lua_session_push(lua_State *L, vd_run *run, int slot)
{
    vd_lua_session *s = lua_newuserdatauv(L, sizeof *s, 0);
    s->run = slot >= 0 ? run : NULL;
    s->slot = slot;
    if (slot >= 0) run->sessions[slot] = s;
    luaL_setmetatable(L, SESSION_MT);
}

static void session_release(vd_lua_session *s, bool reusable)
{
    if (!s->run) return;
    vd_run *run = s->run;
    run->sessions[s->slot] = NULL;
    s->run = NULL;
    vd_probe_lease_release(run->probe, s->slot, reusable);
}

void vd_lua_sessions_detach(vd_run *run)
{
    for (int i = 0; i < VD_PROBE_MAX_SESSIONS; i++)
        if (run->sessions[i]) {
            run->sessions[i]->run = NULL;
            run->sessions[i] = NULL;
        }
}

static vd_lua_session *check_session(lua_State *L, int idx)
{
    vd_lua_session *s = luaL_checkudata(L, idx, SESSION_MT);
    if (!s->run) luaL_error(L, "session was released");
    if (vd_run_of(L) != s->run) luaL_error(L, "session used outside its job's probe");
    return s;
}

static vd_lease *lease_of(const vd_lua_session *s)
{
    return s->run->probe->leases[s->slot];
}

static void push_reply(lua_State *L, int code, const char *enhanced, const char *text)
{
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, enhanced ? enhanced : "");
    lua_setfield(L, -2, "enhanced");
    lua_pushstring(L, text ? text : "");
    lua_setfield(L, -2, "text");
    luaL_setmetatable(L, REPLY_MT);
}

/* A signal name as the limiter's vd_signal ("none", nil or an unknown name: none). */
static vd_signal signal_of(const char *s)
{
    static const char *const names[] = {"", "ok", "unknown_user", "slow_down", "block"};
    for (int i = 1; s && i < (int)(sizeof names / sizeof names[0]); i++)
        if (!strcmp(s, names[i])) return (vd_signal)i;
    return VD_SIG_NONE;
}

vd_signal vd_lua_reply_read(lua_State *L, vd_run *run, int code, const char *enhanced,
                            const char *text, bool at_connect)
{
    vd_rules *r = run->gen;
    const char *rule = run->probe->provider;
    lua_State *S = r->service; /* the task is suspended: the reading runs beside it */
    vd_sandbox_service(r->L);
    int reply = lua_gettop(S) + 1;
    push_reply(S, code, enhanced, text);
    lua_getfield(S, LUA_REGISTRYINDEX, VD_SIGNAL_KEY);
    lua_pushstring(S, rule);
    lua_pushvalue(S, reply);
    lua_pushboolean(S, at_connect);
    const char *err = NULL;
    if (lua_pcall(S, 3, 2, 0) != LUA_OK)
        err = lua_tostring(S, -1);
    else if (!lua_isnil(S, -2) && lua_type(S, -2) != LUA_TSTRING)
        err = "returned no signal name";
    if (err)
        vd_log_to(r->env.log, r->env.log_arg, VD_LOG_WARNING, "signal of rule %s: %s", rule, err);
    vd_signal heard = err ? VD_SIG_NONE : signal_of(lua_tostring(S, -1));
    lua_pushstring(S, !err && lua_type(S, -2) == LUA_TSTRING ? lua_tostring(S, -2) : "none");
    lua_setfield(S, reply, "signal");
    lua_settop(S, reply);
    lua_xmove(S, L, 1);
    return heard;
}

/* The fewest RCPTs a session may carry, over the provider and MX scopes (0: no cap). */
static int rcpt_cap(const vd_probe *p)
{
    double a = p->limits.limit[VD_SCOPE_PROVIDER].rcpt_per_session;
    double b = p->limits.limit[VD_SCOPE_MX].rcpt_per_session;
    double cap = a > 0 && b > 0 ? (a < b ? a : b) : a > 0 ? a : b;
    return (int)cap;
}

static void on_reply(vd_smtp *smtp, const vd_smtp_reply *r, void *arg)
{
    (void)smtp;
    vd_task *t = vd_waiter_take(arg);
    if (!t) return;
    vd_run *run = vd_task_arg(t);
    lua_State *co = vd_task_thread(t);
    vd_probe *p = run->probe;
    vd_lease *l = p->leases[run->op_slot];
    if (l) vd_probe_note_session(p, l);
    if (r->err == VD_SMTP_OK) {
        /* read once: the rule gets the reading as reply.signal, the limiter hears it now */
        vd_signal sig = vd_lua_reply_read(co, run, r->code, r->enhanced, r->text, false);
        if (run->op_made_up && sig == VD_SIG_UNKNOWN_USER) sig = VD_SIG_OK; /* paid up front */
        run->op_made_up = false;
        vd_limiter_feedback(p->limiter, &p->limits, sig, false, r->text);
        if (l && rcpt_cap(p) > 0 && vd_lease_rcpts(l) >= rcpt_cap(p))
            p->retire[run->op_slot] = true;
        vd_task_resume(t, 1);
    } else {
        vd_task_resume_error(t, vd_smtp_err_name(r->err),
                             r->errmsg ? r->errmsg : vd_smtp_err_name(r->err));
    }
}

typedef void (*lease_op)(vd_lease *, const char *, vd_smtp_cb, void *);

/* Starts one command on the session and yields until its reply. */
static int session_command(lua_State *L, vd_lua_session *s, lease_op op, const char *arg)
{
    vd_run *run = s->run;
    vd_waiter *w = vd_task_wait_begin(run->task);
    if (!w) return luaL_error(L, "out of memory");
    run->op_slot = s->slot;
    /* the probe's leases are released before its task is freed: no reply comes then */
    vd_task_wait_cancel(run->task, NULL, vd_task_no_callback);
    if (op)
        op(lease_of(s), arg, on_reply, w);
    else
        vd_lease_rset(lease_of(s), on_reply, w);
    return vd_task_wait_end(L, run->task);
}

/* An RCPT waiting for the limiter's token. */
typedef struct rcpt_wait {
    vd_hold hold;
    int slot;
    char to[sizeof(((vd_address *)0)->address)];
} rcpt_wait;

static void cancel_rcpt_wait(void *handle)
{
    rcpt_wait *rw = handle;
    vd_limiter_cancel(rw->hold.lw);
    free(rw);
}

static void on_rcpt_leave(const char *deny, void *arg)
{
    (void)deny; /* RCPTs are paced, never refused */
    rcpt_wait *rw = arg;
    vd_run *run = rw->hold.run;
    vd_waiter *w = vd_hold_over(&rw->hold);
    vd_task_wait_cancel(run->task, NULL, vd_task_no_callback);
    run->op_slot = rw->slot;
    vd_lease *l = run->probe->leases[rw->slot];
    char to[sizeof rw->to];
    memcpy(to, rw->to, sizeof to);
    free(rw);
    if (l) {
        vd_lease_rcpt(l, to, on_reply, w);
        return;
    }
    vd_waiter_fail(w, vd_smtp_err_name(VD_SMTP_ERR_BUSY), /* the session went meanwhile */
                   "the session went while the RCPT waited for its turn");
}

/* RCPT, paced by the limiter: the task stays suspended from the wait to the reply. */
static int session_rcpt_paced(lua_State *L, vd_lua_session *s, const char *to)
{
    vd_run *run = s->run;
    rcpt_wait *rw = malloc(sizeof *rw);
    if (!rw) return luaL_error(L, "out of memory");
    if (!vd_hold_begin(&rw->hold, run, rw, cancel_rcpt_wait)) {
        free(rw);
        return luaL_error(L, "out of memory");
    }
    rw->slot = s->slot;
    snprintf(rw->to, sizeof rw->to, "%s", to);
    /* a mailbox the rule made up (the catch-all probe) is an unknown user in the server's eyes,
     * whatever it answers: it costs as one */
    size_t n = strlen(run->made_up);
    bool made_up = n && !strncmp(to, run->made_up, n) && to[n] == '@';
    run->op_made_up = made_up;
    vd_limiter_wait *lw =
        made_up ? vd_limiter_rcpt_probe(run->probe->limiter, &run->probe->limits, on_rcpt_leave, rw)
                : vd_limiter_rcpt(run->probe->limiter, &run->probe->limits, on_rcpt_leave, rw);
    if (lw) rw->hold.lw = lw; /* else on_rcpt_leave ran (and freed rw) */
    return vd_task_wait_end(L, run->task);
}

static int session_op_addr(lua_State *L, lease_op op, bool allow_empty)
{
    vd_lua_session *s = check_session(L, 1);
    size_t len;
    const char *in = luaL_checklstring(L, 2, &len);
    vd_address a;
    const char *why = NULL;
    const char *wire = "";
    if (!(allow_empty && len == 0)) {
        if (!vd_address_parse(in, len, &a, &why))
            return luaL_error(L, "invalid address (%s): refused before the wire", why);
        wire = a.address;
    }
    if (op == vd_lease_rcpt) return session_rcpt_paced(L, s, wire);
    return session_command(L, s, op, wire);
}

static int session_rcpt(lua_State *L)
{
    return session_op_addr(L, vd_lease_rcpt, false);
}

static int session_mail(lua_State *L)
{
    return session_op_addr(L, vd_lease_mail, true);
}

static int session_rset(lua_State *L)
{
    return session_command(L, check_session(L, 1), NULL, NULL);
}

/* session:release([reusable]): reusable defaults to true; the pool still retires a session
 * whose last reply ended it. */
static int session_release_l(lua_State *L)
{
    vd_lua_session *s = luaL_checkudata(L, 1, SESSION_MT);
    session_release(s, lua_isnoneornil(L, 2) || lua_toboolean(L, 2));
    return 0;
}

static int session_index(lua_State *L)
{
    vd_lua_session *s = luaL_checkudata(L, 1, SESSION_MT);
    const char *k = luaL_checkstring(L, 2);
    luaL_getmetafield(L, 1, "methods");
    lua_getfield(L, -1, k);
    if (!lua_isnil(L, -1)) return 1;
    if (!s->run) return 0;
    const vd_lease *l = lease_of(s);
    if (!strcmp(k, "mx"))
        lua_pushstring(L, vd_lease_mx(l));
    else if (!strcmp(k, "tls"))
        lua_pushboolean(L, vd_lease_tls(l));
    else if (!strcmp(k, "tls_verified"))
        lua_pushboolean(L, vd_lease_tls_verified(l));
    else
        return 0;
    return 1;
}

static int session_gc(lua_State *L)
{
    session_release(luaL_checkudata(L, 1, SESSION_MT), true);
    return 0;
}

/* reply:matches(p): the matching smtp.c defines (vd_smtp_reply_matches). */
static int reply_matches(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *p = luaL_checkstring(L, 2);
    lua_getfield(L, 1, "code");
    lua_getfield(L, 1, "enhanced");
    lua_getfield(L, 1, "text");
    lua_pushboolean(L, vd_smtp_reply_matches((int)lua_tointeger(L, -3), lua_tostring(L, -2),
                                             lua_tostring(L, -1), p));
    return 1;
}

void vd_lua_smtp_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"rcpt", session_rcpt},         {"mail", session_mail}, {"rset", session_rset},
        {"release", session_release_l}, {NULL, NULL},
    };
    luaL_newmetatable(L, SESSION_MT);
    lua_pushcfunction(L, session_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, session_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "methods");
    lua_pop(L, 1);

    luaL_newmetatable(L, REPLY_MT);
    lua_newtable(L);
    lua_pushcfunction(L, reply_matches);
    lua_setfield(L, -2, "matches");
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

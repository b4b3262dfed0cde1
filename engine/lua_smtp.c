/* lua_smtp.c — the SMTP session object rules get from job:smtp(), and SMTP replies.
 *
 * session:rcpt(addr), :mail(from), :rset() yield until the reply and return a reply
 * table {code, enhanced, text} (with :matches()), or nil, err, detail when no reply came
 * (timeout, closed, protocol_error). Every address is parsed and validated here before
 * it goes anywhere near the wire. session:release() hands the session back to the pool;
 * sessions still held when the probe ends are released for it. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "engine_internal.h"

#define SESSION_MT "validora.session"
#define REPLY_MT   "validora.reply"

typedef struct vd_lua_session {
    vd_lease *lease;
    vd_job *job;
    int slot;
    bool broken; /* the last command got no reply: do not reuse */
} vd_lua_session;

void vd_lua_session_push(lua_State *L, vd_job *j, vd_lease *lease);
void vd_lua_session_push(lua_State *L, vd_job *j, vd_lease *lease)
{
    vd_lua_session *s = lua_newuserdatauv(L, sizeof *s, 0);
    s->lease = lease;
    s->job = j;
    s->broken = false;
    s->slot = -1;
    for (int i = 0; i < VD_JOB_MAX_SESSIONS; i++)
        if (!j->sessions[i]) {
            j->sessions[i] = s;
            s->slot = i;
            break;
        }
    luaL_setmetatable(L, SESSION_MT);
}

static void session_release(vd_lua_session *s)
{
    if (s->lease) vd_lease_release(s->lease, !s->broken && s->job && s->job->e->cfg.reuse_sessions);
    s->lease = NULL;
    if (s->job && s->slot >= 0) s->job->sessions[s->slot] = NULL;
    s->job = NULL;
}

void vd_lua_job_release_sessions(vd_job *j)
{
    for (int i = 0; i < VD_JOB_MAX_SESSIONS; i++)
        if (j->sessions[i]) session_release(j->sessions[i]);
}

static vd_lua_session *check_session(lua_State *L, int idx)
{
    vd_lua_session *s = luaL_checkudata(L, idx, SESSION_MT);
    if (!s->lease || !s->job) luaL_error(L, "session was released");
    if (L != s->job->co) luaL_error(L, "session used outside its job's probe");
    return s;
}

static void push_reply(lua_State *L, const vd_smtp_reply *r)
{
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, r->code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, r->enhanced);
    lua_setfield(L, -2, "enhanced");
    lua_pushstring(L, r->text ? r->text : "");
    lua_setfield(L, -2, "text");
    luaL_setmetatable(L, REPLY_MT);
}

static void on_reply(vd_smtp *smtp, const vd_smtp_reply *r, void *arg)
{
    (void)smtp;
    vd_job *j = vd_waiter_take(arg);
    if (!j) return;
    vd_lua_session *s = j->wait_handle; /* set by session_op_* */
    if (s && s->lease) {
        const char *mx = vd_lease_mx(s->lease);
        if (mx && (!j->mx_used || strcmp(j->mx_used, mx) != 0)) {
            free(j->mx_used);
            j->mx_used = strdup(mx);
        }
        j->tls = vd_lease_tls(s->lease) ? VD_YES : VD_NO;
        j->tls_verified = vd_lease_tls_verified(s->lease) ? VD_YES : VD_NO;
    }
    if (r->err == VD_SMTP_OK) {
        if (s && r->code == 421) s->broken = true;
        push_reply(j->co, r);
        vd_job_resume(j, 1);
    } else {
        if (s) s->broken = true;
        lua_pushnil(j->co);
        lua_pushstring(j->co, vd_smtp_err_name(r->err));
        lua_pushstring(j->co, r->errmsg ? r->errmsg : vd_smtp_err_name(r->err));
        vd_job_resume(j, 3);
    }
}

typedef void (*lease_op)(vd_lease *, const char *, vd_smtp_cb, void *);

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
    vd_job *j = s->job;
    vd_waiter *w = vd_job_wait_begin(j, VD_WAIT_SMTP);
    if (!w) return luaL_error(L, "out of memory");
    j->wait_handle = s; /* which session the reply belongs to */
    op(s->lease, wire, on_reply, w);
    return vd_job_wait_end(L, j);
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
    vd_lua_session *s = check_session(L, 1);
    vd_job *j = s->job;
    vd_waiter *w = vd_job_wait_begin(j, VD_WAIT_SMTP);
    if (!w) return luaL_error(L, "out of memory");
    j->wait_handle = s;
    vd_lease_rset(s->lease, on_reply, w);
    return vd_job_wait_end(L, j);
}

/* session:release([reusable]) */
static int session_release_l(lua_State *L)
{
    vd_lua_session *s = luaL_checkudata(L, 1, SESSION_MT);
    if (!lua_isnoneornil(L, 2) && !lua_toboolean(L, 2)) s->broken = true;
    session_release(s);
    return 0;
}

static int session_index(lua_State *L)
{
    vd_lua_session *s = luaL_checkudata(L, 1, SESSION_MT);
    const char *k = luaL_checkstring(L, 2);
    luaL_getmetafield(L, 1, "methods");
    lua_getfield(L, -1, k);
    if (!lua_isnil(L, -1)) return 1;
    if (!s->lease) return 0;
    if (!strcmp(k, "mx"))
        lua_pushstring(L, vd_lease_mx(s->lease));
    else if (!strcmp(k, "tls"))
        lua_pushboolean(L, vd_lease_tls(s->lease));
    else if (!strcmp(k, "tls_verified"))
        lua_pushboolean(L, vd_lease_tls_verified(s->lease));
    else
        return 0;
    return 1;
}

static int session_gc(lua_State *L)
{
    vd_lua_session *s = luaL_checkudata(L, 1, SESSION_MT);
    session_release(s);
    return 0;
}

/* reply:matches(p): p "5.1.1" or "5.1" compares with the enhanced code (prefix by
 * component), "550" with the code, anything else is a case-insensitive plain substring of
 * the text. */
static int reply_matches(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *p = luaL_checkstring(L, 2);
    bool codeish = *p != '\0';
    for (const char *c = p; *c; c++)
        if (!isdigit((unsigned char)*c) && *c != '.') codeish = false;
    if (codeish) {
        if (!strchr(p, '.')) {
            lua_getfield(L, 1, "code");
            lua_pushboolean(L, lua_tointeger(L, -1) == atoi(p));
            return 1;
        }
        lua_getfield(L, 1, "enhanced");
        const char *e = lua_tostring(L, -1);
        size_t n = strlen(p);
        lua_pushboolean(L, e && strncmp(e, p, n) == 0 && (e[n] == '\0' || e[n] == '.'));
        return 1;
    }
    lua_getfield(L, 1, "text");
    const char *t = lua_tostring(L, -1);
    if (!t) {
        lua_pushboolean(L, 0);
        return 1;
    }
    size_t tn = strlen(t), pn = strlen(p);
    bool found = false;
    for (size_t i = 0; !found && pn <= tn && i + pn <= tn; i++) {
        size_t k = 0;
        while (k < pn && tolower((unsigned char)t[i + k]) == tolower((unsigned char)p[k]))
            k++;
        found = k == pn;
    }
    lua_pushboolean(L, found);
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

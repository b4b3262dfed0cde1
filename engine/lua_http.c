/* lua_http.c — the `http` table rules get: http.request{...} (yields until the response) and
 * http.signal(kind).
 *
 * http.request{method =, url =, headers = {[name] = value}, body =, timeout =} waits for the
 * limiter under the rule's key `http:<rule>` (a concurrency cap, a token per request, the
 * breaker: open → nil, errors.deferred, why), then sends the request with the probe's own
 * cookie jar. It returns {status, headers (lower-case names; repeated ones joined with ", ",
 * set-cookie with "\n"), body, url (the final one)}, or nil, err, detail (docs/errors.md). It
 * marks the probe's method http. http.signal("ok"|"slow_down"|"block") feeds the key's
 * adaptive rate and breaker, as SMTP replies do for SMTP keys.
 * Does not own: HTTP itself (http.c), shaping (limiter.c), what an answer means (rules). */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <lauxlib.h>
#include "http.h"
#include "lua_bridge.h"

#define VD_LUA_HTTP_MAX_BODY (1u << 20) /* bytes of a request body a rule may send */
#define VD_LUA_HTTP_MAX_WAIT 600.0      /* seconds a rule may give as a request's timeout */
/* requests one probe may make: an alternative check takes one or two; a loop that asks on
 * and on is a rule's bug, and would spend the endpoint's patience on one address */
#define VD_LUA_HTTP_MAX_PER_PROBE 16

typedef struct http_wait {
    vd_hold hold;    /* run, waiter, the limiter's handle, since */
    vd_limit_set ls; /* the limiter reads it while the wait lasts */
    vd_http_req *hr;
    bool granted; /* counts against the concurrency cap until the response */
    vd_http_request rq;
    vd_http_header hv[VD_HTTP_MAX_REQ_HDRS];
    char *strings; /* one block: url, method, header names and values, body */
} http_wait;

void vd_lua_http_limits(vd_run *run, const char *rule, const vd_limit *lim)
{
    memset(&run->http_limits, 0, sizeof run->http_limits);
    vd_scope_http_key(rule, run->http_limits.key[VD_SCOPE_PROVIDER],
                      sizeof run->http_limits.key[0]);
    run->http_limits.limit[VD_SCOPE_PROVIDER] = *lim;
}

/* The rule the probe runs ("default" before job:_rule named one). */
static const char *rule_of(const vd_run *run)
{
    return run->probe->provider[0] ? run->probe->provider : "default";
}

/* The run's key http:<rule>; a rule that set no limits.http gets it with none of its own. */
static const vd_limit_set *http_key(vd_run *run)
{
    if (!run->http_limits.key[VD_SCOPE_PROVIDER][0]) {
        vd_limit none = {0};
        vd_lua_http_limits(run, rule_of(run), &none);
    }
    return &run->http_limits;
}

static void wait_free(http_wait *hw)
{
    vd_run *run = hw->hold.run;
    vd_limiter_cancel(hw->hold.lw);
    vd_http_cancel(hw->hr);
    if (hw->granted) vd_limiter_session_end(run->gen->env.limiter, &hw->ls);
    free(hw->strings);
    free(hw);
}

static void cancel_http_wait(void *handle)
{
    wait_free(handle);
}

/* Ends the wait: frees hw, and hands the caller the waiter its results go to. */
static vd_waiter *end_wait(http_wait *hw)
{
    vd_run *run = hw->hold.run;
    vd_waiter *w = hw->hold.w;
    hw->hold.lw = NULL;
    hw->hr = NULL;
    vd_task_wait_cancel(run->task, NULL, vd_task_no_callback);
    wait_free(hw);
    return w;
}

static void push_headers(lua_State *L, const vd_http_response *r)
{
    lua_createtable(L, 0, (int)r->nheaders);
    for (size_t i = 0; i < r->nheaders; i++) {
        const char *name = r->headers[i].name;
        lua_getfield(L, -1, name);
        if (lua_isstring(L, -1)) {
            lua_pushstring(L, strcmp(name, "set-cookie") ? ", " : "\n");
            lua_pushstring(L, r->headers[i].value);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushstring(L, r->headers[i].value);
        }
        lua_setfield(L, -2, name);
    }
}

static void on_response(const vd_http_response *r, void *arg)
{
    http_wait *hw = arg;
    hw->hr = NULL; /* done: not to be cancelled */
    vd_waiter *w = end_wait(hw);
    if (r->err) {
        vd_waiter_fail(w, vd_http_err_name(r->err),
                       r->errmsg ? r->errmsg : vd_http_err_name(r->err));
        return;
    }
    vd_task *t = vd_waiter_take(w);
    if (!t) return;
    lua_State *co = vd_task_thread(t);
    lua_createtable(co, 0, 4);
    lua_pushinteger(co, r->status);
    lua_setfield(co, -2, "status");
    push_headers(co, r);
    lua_setfield(co, -2, "headers");
    lua_pushlstring(co, r->body, r->body_len);
    lua_setfield(co, -2, "body");
    lua_pushstring(co, r->url);
    lua_setfield(co, -2, "url");
    vd_task_resume(t, 1);
}

static void on_token(const char *deny, void *arg)
{
    (void)deny; /* tokens pace, never refuse */
    http_wait *hw = arg;
    vd_run *run = hw->hold.run;
    vd_hold_over(&hw->hold); /* the task's cancel stays hw's: it cancels the request too */
    if (run->jar || (run->jar = vd_cookie_jar_new())) {
        hw->rq.jar = run->jar;
        hw->hr = vd_http_start(run->gen->env.http, &hw->rq, on_response, hw);
        if (hw->hr) return;
    }
    vd_waiter_fail(end_wait(hw), vd_http_err_name(VD_HTTP_ERR_INVALID), "out of memory");
}

static void on_leave(const char *deny, void *arg)
{
    http_wait *hw = arg;
    hw->hold.lw = NULL;
    if (deny) {
        vd_hold_over(&hw->hold);
        vd_waiter_fail(end_wait(hw), VD_LIMITER_DEFERRED, deny);
        return;
    }
    hw->granted = true;
    vd_limiter_wait *lw = vd_limiter_rcpt(hw->hold.run->gen->env.limiter, &hw->ls, on_token, hw);
    if (lw) hw->hold.lw = lw; /* else on_token ran */
}

/* Reads the request table at index 1 into hw (strings copied into one block). Raises a Lua
 * error on a bad argument: a rule's mistake, not the server's. */
static void read_request(lua_State *L, http_wait *hw)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    size_t ulen, mlen = 0, blen = 0;
    lua_getfield(L, 1, "url");
    const char *url = lua_tolstring(L, -1, &ulen);
    if (!url) luaL_error(L, "http.request: url must be a string");
    if (ulen >= VD_HTTP_MAX_URL || strlen(url) != ulen)
        luaL_error(L, "http.request: url over %d bytes or with a NUL", VD_HTTP_MAX_URL);
    lua_getfield(L, 1, "method");
    const char *method = lua_isnil(L, -1) ? "GET" : lua_tolstring(L, -1, &mlen);
    if (!method || strlen(method) > 15) luaL_error(L, "http.request: method must be a word");
    mlen = strlen(method);
    lua_getfield(L, 1, "body");
    const char *body = lua_isnil(L, -1) ? NULL : lua_tolstring(L, -1, &blen);
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "http.request: body must be a string");
    if (blen > VD_LUA_HTTP_MAX_BODY)
        luaL_error(L, "http.request: body over %u bytes", VD_LUA_HTTP_MAX_BODY);
    lua_getfield(L, 1, "timeout");
    double timeout = lua_isnil(L, -1) ? 0 : (double)luaL_checknumber(L, -1);
    if (!lua_isnil(L, -1) && !(timeout > 0 && timeout <= VD_LUA_HTTP_MAX_WAIT))
        luaL_error(L, "http.request: timeout must be 0 < seconds <= %g", VD_LUA_HTTP_MAX_WAIT);
    lua_getfield(L, 1, "headers");
    int hidx = lua_gettop(L);
    size_t need = ulen + mlen + blen + 3, nh = 0;
    if (!lua_isnil(L, hidx)) {
        luaL_checktype(L, hidx, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, hidx)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "http.request: headers must map names to strings");
            if (++nh > VD_HTTP_MAX_REQ_HDRS)
                luaL_error(L, "http.request: more than %d headers", VD_HTTP_MAX_REQ_HDRS);
            need += lua_rawlen(L, -2) + lua_rawlen(L, -1) + 2;
            lua_pop(L, 1);
        }
    }
    char *s = hw->strings = malloc(need);
    if (!s) luaL_error(L, "out of memory");
    memcpy(s, url, ulen + 1);
    hw->rq.url = s;
    s += ulen + 1;
    memcpy(s, method, mlen + 1);
    hw->rq.method = s;
    s += mlen + 1;
    if (body) {
        memcpy(s, body, blen);
        hw->rq.body = s;
        hw->rq.body_len = blen;
        s += blen;
    }
    size_t i = 0;
    if (!lua_isnil(L, hidx)) {
        lua_pushnil(L);
        while (lua_next(L, hidx) && i < nh) {
            size_t kl, vl;
            const char *k = lua_tolstring(L, -2, &kl), *v = lua_tolstring(L, -1, &vl);
            memcpy(s, k, kl + 1);
            hw->hv[i].name = s;
            s += kl + 1;
            memcpy(s, v, vl + 1);
            hw->hv[i].value = s;
            s += vl + 1;
            i++;
            lua_pop(L, 1);
        }
    }
    hw->rq.headers = hw->hv;
    hw->rq.nheaders = i;
    hw->rq.timeout = timeout;
    lua_settop(L, 1);
}

static int l_request(lua_State *L)
{
    vd_run *run = vd_run_check(L, "http.request");
    if (!run->gen->env.http) return luaL_error(L, "http.request: no HTTP client");
    if (run->http_requests >= VD_LUA_HTTP_MAX_PER_PROBE)
        return luaL_error(L, "http.request: more than %d requests for one address",
                          VD_LUA_HTTP_MAX_PER_PROBE);
    if (lua_type(L, 1) != LUA_TTABLE)
        return luaL_argerror(L, 1, "a table {url =, method =, headers =, body =, timeout =}");
    http_wait tmp;
    memset(&tmp, 0, sizeof tmp);
    read_request(L, &tmp); /* raises on a bad argument before it allocates anything */
    http_wait *hw = malloc(sizeof *hw);
    if (!hw) {
        free(tmp.strings);
        return luaL_error(L, "out of memory");
    }
    *hw = tmp;
    hw->rq.headers = hw->hv; /* the copy's own array */
    vd_probe_note_method(run->probe, VD_METHOD_HTTP);
    run->http_requests++;
    hw->ls = *http_key(run);
    if (!vd_hold_begin(&hw->hold, run, hw, cancel_http_wait)) {
        free(hw->strings);
        free(hw);
        return luaL_error(L, "out of memory");
    }
    vd_limiter_wait *lw = vd_limiter_session(run->gen->env.limiter, &hw->ls, on_leave, hw);
    if (lw) hw->hold.lw = lw; /* else on_leave ran */
    return vd_task_wait_end(L, run->task);
}

static int l_signal(lua_State *L)
{
    static const struct {
        const char *name;
        vd_signal sig;
    } kinds[] = {{"ok", VD_SIG_OK}, {"slow_down", VD_SIG_SLOW_DOWN}, {"block", VD_SIG_BLOCK}};
    vd_run *run = vd_run_check(L, "http.signal");
    const char *k = luaL_checkstring(L, 1);
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(k, kinds[i].name)) {
            char why[128];
            snprintf(why, sizeof why, "http.signal(\"%s\") of rule %s", k, rule_of(run));
            vd_limiter_feedback(run->gen->env.limiter, http_key(run), kinds[i].sig, false, why);
            return 0;
        }
    return luaL_error(L, "http.signal: kind must be \"ok\", \"slow_down\" or \"block\", not '%s'",
                      k);
}

void vd_lua_http_open(lua_State *L)
{
    static const luaL_Reg fns[] = {{"request", l_request}, {"signal", l_signal}, {NULL, NULL}};
    luaL_newlib(L, fns);
}

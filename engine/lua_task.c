/* lua_task.c — the coroutine wait/resume protocol (see lua_task.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <event2/event.h>
#include <lauxlib.h>
#include "lua_task.h"
#include "watchdog.h"

typedef enum { WAIT_NONE, WAIT_IO, WAIT_TIMER, WAIT_PARK } wait_kind;

struct vd_waiter {
    vd_task *task;
    unsigned gen;
};

struct vd_task {
    lua_State *L, *co;
    int co_ref;
    struct event_base *base;
    vd_task_end_cb end;
    void *arg;
    uint64_t counter;
    unsigned wait_gen;
    wait_kind kind;
    vd_waiter *waiter; /* current token, NULL when not waiting on one */
    void *wait_handle; /* the pending call, for wait_cancel */
    vd_cancel_fn cancel;
    bool in_call;   /* a binding is between wait_begin and wait_end */
    int sync_nargs; /* completion values delivered during in_call, or -1 */
    struct event *timer;
    int park_ref;    /* the value a wake handed over */
    char label[128]; /* what the watchdog says runs while the coroutine does */
};

static void set_task_of(lua_State *co, vd_task *t)
{
    memcpy(lua_getextraspace(co), &t, sizeof t);
}

vd_task *vd_task_of(lua_State *L)
{
    vd_task *t;
    memcpy(&t, lua_getextraspace(L), sizeof t);
    return t;
}

vd_task *vd_task_new(lua_State *L, struct event_base *base, vd_task_end_cb end, void *arg)
{
    vd_task *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->L = L;
    t->base = base;
    t->end = end;
    t->arg = arg;
    t->park_ref = LUA_NOREF;
    t->sync_nargs = -1;
    t->co = lua_newthread(L);
    t->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    set_task_of(t->co, t);
    return t;
}

lua_State *vd_task_thread(const vd_task *t)
{
    return t->co;
}

void *vd_task_arg(const vd_task *t)
{
    return t->arg;
}

void vd_task_set_label(vd_task *t, const char *label)
{
    snprintf(t->label, sizeof t->label, "%s", label ? label : "");
}

uint64_t *vd_task_counter(vd_task *t)
{
    return &t->counter;
}

void vd_task_no_callback(void *handle)
{
    (void)handle;
}

void vd_task_free(vd_task *t)
{
    if (!t) return;
    if (t->waiter) {
        if (t->cancel || t->kind == WAIT_TIMER || t->kind == WAIT_PARK) {
            if (t->cancel) t->cancel(t->wait_handle);
            free(t->waiter);
        } else {
            t->waiter->task = NULL; /* a late completion frees it */
        }
        t->waiter = NULL;
    }
    if (t->timer) event_free(t->timer);
    set_task_of(t->co, NULL);
    if (t->park_ref != LUA_NOREF) luaL_unref(t->L, LUA_REGISTRYINDEX, t->park_ref);
    luaL_unref(t->L, LUA_REGISTRYINDEX, t->co_ref);
    free(t);
}

static vd_waiter *begin(vd_task *t, wait_kind kind)
{
    vd_waiter *w = malloc(sizeof *w);
    if (!w) return NULL;
    if (t->waiter) t->waiter->task = NULL;
    t->wait_gen++;
    w->task = t;
    w->gen = t->wait_gen;
    t->waiter = w;
    t->kind = kind;
    t->wait_handle = NULL;
    t->cancel = NULL;
    t->in_call = true;
    t->sync_nargs = -1;
    return w;
}

vd_waiter *vd_task_wait_begin(vd_task *t)
{
    return begin(t, WAIT_IO);
}

void vd_task_wait_cancel(vd_task *t, void *handle, vd_cancel_fn cancel)
{
    if (t->sync_nargs >= 0 || !t->waiter) return; /* already completed */
    t->wait_handle = handle;
    t->cancel = cancel;
}

static void not_waiting(vd_task *t)
{
    t->kind = WAIT_NONE;
    t->wait_handle = NULL;
    t->cancel = NULL;
}

int vd_task_wait_end(lua_State *L, vd_task *t)
{
    t->in_call = false;
    if (t->sync_nargs >= 0) {
        int n = t->sync_nargs;
        t->sync_nargs = -1;
        not_waiting(t);
        return n;
    }
    return lua_yield(L, 0);
}

vd_task *vd_waiter_take(vd_waiter *w)
{
    vd_task *t = w->task;
    if (!t || t->waiter != w || t->wait_gen != w->gen) {
        if (!t) free(w);
        return NULL;
    }
    t->waiter = NULL;
    free(w);
    return t;
}

void vd_task_resume(vd_task *t, int nargs)
{
    if (t->in_call) { /* completed before the binding yielded: it returns the values */
        t->sync_nargs = nargs;
        return;
    }
    not_waiting(t);
    int nres = 0;
    vd_watchdog_doing(t->label[0] ? t->label : "Lua code of a task");
    int st = lua_resume(t->co, NULL, nargs, &nres);
    vd_watchdog_doing(NULL);
    if (st == LUA_YIELD) {
        if (t->kind != WAIT_NONE) return; /* waiting */
        t->end(t, false, "yielded outside an I/O call", t->arg);
    } else if (st != LUA_OK) {
        const char *msg = lua_tostring(t->co, -1);
        t->end(t, false, msg ? msg : "error object is not a string", t->arg);
    } else {
        t->end(t, true, NULL, t->arg);
    }
}

void vd_task_resume_error(vd_task *t, const char *err, const char *detail)
{
    lua_State *co = vd_task_thread(t);
    lua_pushnil(co);
    lua_pushstring(co, err);
    if (detail) lua_pushstring(co, detail);
    vd_task_resume(t, detail ? 3 : 2);
}

void vd_waiter_fail(vd_waiter *w, const char *err, const char *detail)
{
    vd_task *t = vd_waiter_take(w);
    if (t) vd_task_resume_error(t, err, detail);
}

void vd_task_start(vd_task *t, int nargs)
{
    vd_task_resume(t, nargs);
}

/* ---- sleep, park, wake ---- */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    vd_task *t = arg;
    if (t->kind == WAIT_TIMER) {
        if (!vd_waiter_take(t->waiter)) return;
        vd_task_resume(t, 0);
    } else if (t->kind == WAIT_PARK && t->park_ref != LUA_NOREF) {
        if (!vd_waiter_take(t->waiter)) return;
        lua_rawgeti(t->co, LUA_REGISTRYINDEX, t->park_ref);
        luaL_unref(t->co, LUA_REGISTRYINDEX, t->park_ref);
        t->park_ref = LUA_NOREF;
        vd_task_resume(t, 1);
    }
}

static int ensure_timer(lua_State *L, vd_task *t)
{
    if (!t->timer) t->timer = evtimer_new(t->base, on_timer, t);
    if (!t->timer) return luaL_error(L, "out of memory");
    return 0;
}

int vd_task_sleep(lua_State *L, vd_task *t, double secs)
{
    if (!(secs >= 0 && secs <= 86400)) return luaL_error(L, "sleep: seconds out of range");
    ensure_timer(L, t);
    if (!begin(t, WAIT_TIMER)) return luaL_error(L, "out of memory");
    struct timeval tv = {(time_t)secs, (suseconds_t)((secs - (double)(time_t)secs) * 1e6)};
    event_base_update_cache_time(t->base); /* the timer counts from now, not loop start */
    evtimer_add(t->timer, &tv);
    return vd_task_wait_end(L, t);
}

int vd_task_park(lua_State *L, vd_task *t)
{
    ensure_timer(L, t);
    if (!begin(t, WAIT_PARK)) return luaL_error(L, "out of memory");
    return vd_task_wait_end(L, t);
}

bool vd_task_wake(vd_task *t, lua_State *from)
{
    if (t->kind != WAIT_PARK || t->park_ref != LUA_NOREF || !t->timer) {
        lua_pop(from, 1);
        return false;
    }
    t->park_ref = luaL_ref(from, LUA_REGISTRYINDEX);
    struct timeval zero = {0, 0};
    evtimer_add(t->timer, &zero);
    return true;
}

static int l_sleep(lua_State *L)
{
    vd_task *t = vd_task_of(L);
    if (!t) return luaL_error(L, "sleep: only inside a task (a rule's probe)");
    return vd_task_sleep(L, t, (double)luaL_checknumber(L, 1));
}

static int l_now(lua_State *L)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    lua_pushnumber(L, (lua_Number)tv.tv_sec + (lua_Number)tv.tv_usec / 1e6);
    return 1;
}

void vd_lua_task_open(lua_State *L)
{
    lua_pushcfunction(L, l_sleep);
    lua_setfield(L, -2, "sleep");
    lua_pushcfunction(L, l_now);
    lua_setfield(L, -2, "now");
}

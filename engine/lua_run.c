/* lua_run.c — which run a Lua thread belongs to, and a binding's hold at the limiter before
 * its I/O (see lua_run.h).
 * Does not own: the runs themselves (rules.c), the bindings' I/O (lua_*.c). */
#include <lauxlib.h>
#include "clock.h"
#include "lua_run.h"

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

bool vd_hold_begin(vd_hold *h, vd_run *run, void *rec, vd_cancel_fn cancel)
{
    vd_waiter *w = vd_task_wait_begin(run->task);
    if (!w) return false;
    *h = (vd_hold){.run = run, .w = w, .since = vd_now_mono()};
    vd_task_wait_cancel(run->task, rec, cancel);
    return true;
}

vd_waiter *vd_hold_over(vd_hold *h)
{
    h->lw = NULL;
    h->run->probe->delayed += vd_now_mono() - h->since;
    return h->w;
}

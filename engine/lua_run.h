/* lua_run.h — one probe running on a generation (struct vd_run), as rules.c and the bindings
 * (lua_job.c, lua_smtp.c, lua_dns.c, lua_http.c) both see it: the module they all point down
 * to, so that no binding calls back up into rules.c.
 *
 * Owns: the run's fields, which run a Lua thread belongs to (vd_run_of, vd_run_check), and a
 * binding's hold at the limiter before its I/O (vd_hold: the task's waiter, the probe's
 * delayed time). Does not own: making, starting or ending a run (rules.c), what any binding
 * does (lua_*.c), the coroutine protocol (lua_task.c), shaping (limiter.c). */
#ifndef VALIDORA_LUA_RUN_H
#define VALIDORA_LUA_RUN_H
#include <stdbool.h>
#include "limiter.h"
#include "lua_task.h"
#include "probe.h"

struct vd_rules;
typedef struct vd_run vd_run; /* as rules.h says it: this header does not point up to rules.h */

struct vd_lua_session;

/* One probe running on a generation. */
struct vd_run {
    struct vd_rules *gen;
    vd_task *task;
    vd_probe *probe;
    void (*done)(vd_probe *p, void *arg); /* rules.h's vd_probe_done_cb */
    void *arg;
    int self_ref; /* the job userdata, LUA_NOREF until made */
    int op_slot;  /* the session whose command is in flight */
    struct vd_lua_session *sessions[VD_PROBE_MAX_SESSIONS];
    struct vd_cookie_jar *jar; /* the probe's cookies (http.c), made by its first request */
    vd_limit_set http_limits;  /* http.request's key `http:<rule>` (only the provider scope) */
    int http_requests;         /* http.request calls so far */
    char made_up[24];          /* the last job:random_local(): an RCPT to it is a catch-all probe */
    bool op_made_up;           /* the RCPT in flight is to made_up (charged up front) */
};

/* The run a thread's task belongs to, or NULL (the main thread). */
vd_run *vd_run_of(lua_State *L);
/* The same, but raises a Lua error naming what unless L runs a probe. */
vd_run *vd_run_check(lua_State *L, const char *what);

/* "Wait for the limiter, then start the I/O", as job:smtp(), session:rcpt() and
 * http.request do it. A binding embeds a vd_hold in its call's record and:
 *     if (!vd_hold_begin(&rec->hold, run, rec, cancel_rec)) -> out of memory
 *     lw = vd_limiter_...(..., on_leave, rec); if (lw) rec->hold.lw = lw;  (else on_leave ran)
 *     return vd_task_wait_end(L, run->task);
 * and in on_leave, w = vd_hold_over(&rec->hold) before it starts the I/O with w (or resumes
 * the task with a failure through vd_waiter_take(w)). */
typedef struct vd_hold {
    vd_run *run;
    vd_waiter *w;        /* the task's wait, from the limiter's hold to the I/O's completion */
    vd_limiter_wait *lw; /* the limiter's handle while it holds the call */
    double since;        /* when the hold began (the probe's delayed time) */
} vd_hold;

/* Begins the task's wait: its waiter, cancel(rec) if the task ends first, the clock. false
 * when out of memory (nothing to undo). */
bool vd_hold_begin(vd_hold *h, vd_run *run, void *rec, vd_cancel_fn cancel);
/* The limiter let the call go, or refused it: the hold counts into the probe's delayed time.
 * Returns the waiter the I/O's completion takes. */
vd_waiter *vd_hold_over(vd_hold *h);

#endif

/* lua_task.h — the wait/resume protocol for any Lua coroutine that does I/O through the
 * engine: a rule's probe today, a pipeline script or a daemon request later.
 *
 * A task is one coroutine (lua_newthread) on some lua_State. A C binding that does I/O:
 *     vd_waiter *w = vd_task_wait_begin(t);
 *     start the asynchronous call with w as its callback argument;
 *     vd_task_wait_cancel(t, handle, cancel_fn);   (how to stop it if the task dies first)
 *     return vd_task_wait_end(L, t);
 * The completion callback calls vd_waiter_take(w); when that returns the task, it pushes its
 * results on vd_task_thread(t) and calls vd_task_resume(t, n). A completion that arrives
 * before wait_end (a cache hit) is returned directly instead of yielding. Waiter tokens carry
 * a generation: a completion for a wait the task has moved on from is dropped.
 *
 * Owns: the coroutine's life, waiter tokens, sleep, park/wake, the instruction counter the
 * sandbox charges. Does not own: what a task is for (its owner, through the end callback),
 * the sandbox (sandbox.c), any I/O module. */
#ifndef VALIDORA_LUA_TASK_H
#define VALIDORA_LUA_TASK_H
#include <stdbool.h>
#include <stdint.h>
#include <lua.h>

struct event_base;
typedef struct vd_task vd_task;
typedef struct vd_waiter vd_waiter;

/* Called once, when the coroutine returned (ok, its results on the thread) or failed (msg).
 * The callback may free the task. */
typedef void (*vd_task_end_cb)(vd_task *t, bool ok, const char *msg, void *arg);
/* Stops a pending call so that its completion never comes. */
typedef void (*vd_cancel_fn)(void *handle);

/* A new coroutine on L (its main state). NULL when out of memory. */
vd_task *vd_task_new(lua_State *L, struct event_base *base, vd_task_end_cb end, void *arg);
/* Frees the task: cancels what it waits for, drops the coroutine. No end callback. */
void vd_task_free(vd_task *t);

lua_State *vd_task_thread(const vd_task *t);
/* What the task runs, for the watchdog's message while it runs (copied, cut at 127 bytes). */
void vd_task_set_label(vd_task *t, const char *label);
void *vd_task_arg(const vd_task *t);
/* The task a thread runs; NULL for a thread that is no task (a state's main thread). */
vd_task *vd_task_of(lua_State *L);
/* VM instructions charged to the task so far (the sandbox's hook adds to it). */
uint64_t *vd_task_counter(vd_task *t);

/* Runs the function pushed on the thread with the nargs values above it. */
void vd_task_start(vd_task *t, int nargs);

vd_waiter *vd_task_wait_begin(vd_task *t);
void vd_task_wait_cancel(vd_task *t, void *handle, vd_cancel_fn cancel);
int vd_task_wait_end(lua_State *L, vd_task *t);
/* In a completion: the task when the token is still current (the token is freed), NULL when
 * the completion is stale. */
vd_task *vd_waiter_take(vd_waiter *w);
/* Resumes the task with nargs values pushed on its thread. */
void vd_task_resume(vd_task *t, int nargs);
/* Resumes the task with a failure, the bindings' convention: nil, err (an error name) and,
 * when detail is not NULL, detail (a message for people). */
void vd_task_resume_error(vd_task *t, const char *err, const char *detail);
/* In a completion that failed: takes w and, when it is still current, resumes its task with
 * nil, err, detail (vd_task_resume_error); a stale completion is dropped. */
void vd_waiter_fail(vd_waiter *w, const char *err, const char *detail);
/* A cancel function for calls whose completion can no longer come once the caller has
 * dropped its handle (a released SMTP lease). */
void vd_task_no_callback(void *handle);

/* To be returned from a binding: suspends the task for secs seconds (0 <= secs <= 86400). */
int vd_task_sleep(lua_State *L, vd_task *t, double secs);
/* To be returned from a binding: suspends the task until vd_task_wake hands it a value. */
int vd_task_park(lua_State *L, vd_task *t);
/* Hands the value on top of from's stack (popped) to a parked task, which resumes from the
 * event loop, not inside the caller. Returns false when t is not parked. */
bool vd_task_wake(vd_task *t, lua_State *from);

/* Sets sleep(secs) and now() into the table on top of the stack. */
void vd_lua_task_open(lua_State *L);

#endif

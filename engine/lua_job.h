/* lua_job.h — what the engine holds of lua_job.c: the job:smtp() calls still waiting for the
 * limiter or the budget, engine-wide, and stopping them (a SIGINT's drain).
 * Owns: the list's shape and the drain's promise. Does not own: the waits themselves
 * (lua_job.c), when to drain (engine.c). */
#ifndef VALIDORA_LUA_JOB_H
#define VALIDORA_LUA_JOB_H

/* The job:smtp() calls waiting for the limiter or the budget, engine-wide (lua_job.c). */
typedef struct vd_smtp_parked {
    struct smtp_wait *head;
    const char *drained; /* set by vd_smtp_drain: why a new job:smtp() is deferred at once */
} vd_smtp_parked;
/* A stop (SIGINT): every call still waiting for the limiter or the budget returns nil,
 * errors.deferred, why at once (its address gets unknown/deferred, which --resume verifies
 * again), and so does every job:smtp() from now on. Sessions already open finish. */
void vd_smtp_drain(vd_smtp_parked *p, const char *why);

#endif

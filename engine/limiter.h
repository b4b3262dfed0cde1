/* limiter.h — traffic shaping for one source IP: what may be sent now, per key.
 *
 * Every session and every RCPT of a probe is charged to a set of keys, one per scope: the
 * provider (the rule), the MX host, the destination domain, the source IP, and everything.
 * Per key: a cap on concurrent sessions, on RCPTs per session, a session rate, and a token
 * bucket for RCPTs whose rate adapts (slow start, then additive increase and multiplicative
 * decrease on "slow down" replies), and a circuit breaker that a block opens (exponential
 * back-off with jitter). A request that must wait is parked on a timer and costs little; it
 * never holds up a request of other keys.
 *
 * Owns: the shaping state and its arithmetic, the waits, the breakers.
 * Does not own: the limits themselves (rules' `limits`, rules/validora/reputation.lua), what a
 * reply means (the rules' signal function), the ledger (persistent counts: the engine's
 * on_signal callback writes them). No Lua here. */
#ifndef VALIDORA_LIMITER_H
#define VALIDORA_LIMITER_H
#include <stdbool.h>
#include <stddef.h>
#include "validora/validora.h"

struct event_base;

/* The error name job:smtp() returns when shaping gives the address back (docs/errors.md). */
#define VD_LIMITER_DEFERRED "deferred"

typedef enum vd_scope {
    VD_SCOPE_PROVIDER,
    VD_SCOPE_MX,
    VD_SCOPE_DOMAIN,
    VD_SCOPE_SOURCE_IP,
    VD_SCOPE_GLOBAL,
    VD_NSCOPES
} vd_scope;

/* What a reply says about us (rules/validora/reputation.lua decides). */
typedef enum vd_signal {
    VD_SIG_NONE,         /* nothing about the sender */
    VD_SIG_OK,           /* accepted: the server is content with our pace */
    VD_SIG_UNKNOWN_USER, /* a probe of a mailbox that does not exist: costs more */
    VD_SIG_SLOW_DOWN,    /* a rate deferral: lower the rate at once */
    VD_SIG_BLOCK,        /* we are blocked: open the breaker */
} vd_signal;

/* One key's limits; 0 = no cap of that kind. */
typedef struct vd_limit {
    double connections;         /* concurrent sessions */
    double rcpt_per_session;    /* RCPTs on one session before it is closed */
    double sessions_per_minute; /* new sessions a minute */
    double rcpt_per_minute;     /* the most the RCPT bucket refills (the adaptive rate's top) */
    double rcpt_burst;          /* the bucket's size */
    double unknown_cost;        /* tokens an unknown-user reply costs in all (accepted: 1) */
} vd_limit;

/* The keys (and their limits) a probe is charged to; an empty key is a scope not used. */
typedef struct vd_limit_set {
    char key[VD_NSCOPES][288];
    vd_limit limit[VD_NSCOPES];
} vd_limit_set;

/* Where the state that must outlive a process lives: the circuit breakers, so that a run
 * restarted after a block does not knock on the same door at once. The limiter keeps the
 * live state in memory and reads a key's breaker from the store once, when it first sees the
 * key; it writes every breaker it opens. No store (NULL functions): memory only. A store
 * shared between machines (later) is one more backend of these two calls.
 * Times are unix seconds (wall clock): the store outlives the process's monotonic clock. */
typedef struct vd_limiter_store {
    /* The breaker of key: 0 with *until = 0 when none is open; -1 on error (then none). */
    int (*breaker_get)(void *arg, const char *key, double *until, int *times);
    /* Records that key's breaker is open until `until` (the times-th block in a row). */
    int (*breaker_put)(void *arg, const char *key, double until, int times, const char *reason);
    void *arg;
} vd_limiter_store;

typedef struct vd_limiter_opts {
    bool enabled;      /* false (--no-throttle): every request goes at once */
    bool unpaced;      /* rates and windows never bind, caps and breakers do (playback) */
    bool wait_breaker; /* --on-block wait: park until the breaker closes (else defer) */
    vd_log_cb log;     /* rate cuts (info) and breakers (warning); may be NULL */
    vd_limiter_store store;
    void *log_arg;
    /* Told of every slow_down and block a reply signals for a set with a source-IP key (SMTP;
     * not http.request's), also when shaping is off (the engine counts them in the ledger);
     * why is the reply's text. NULL: nobody is told. */
    void (*on_signal)(vd_signal sig, const char *why, void *arg);
    void *signal_arg;
} vd_limiter_opts;

typedef struct vd_limiter vd_limiter;
typedef struct vd_limiter_wait vd_limiter_wait;

/* deny is NULL when the request may go now, else why it may not (the breaker is open and the
 * policy is to defer): the caller gives up. */
typedef void (*vd_limiter_cb)(const char *deny, void *arg);

vd_limiter *vd_limiter_new(struct event_base *base, const vd_limiter_opts *o);
void vd_limiter_free(vd_limiter *l);

/* s must outlive the wait (until cb runs or vd_limiter_cancel).
 * A new session for the set: waits for the concurrency caps, the session rate and a closed
 * breaker. cb runs once (maybe before this returns: then NULL is returned). Once granted, the
 * session counts against the caps until vd_limiter_session_end. */
vd_limiter_wait *vd_limiter_session(vd_limiter *l, const vd_limit_set *s, vd_limiter_cb cb,
                                    void *arg);
/* The same, for a request that may reuse a kept connection: idle(arg) says, when the request
 * is about to be granted, whether it would (then the session rate, which counts new
 * connections, does not hold it up; the concurrency caps still do). */
vd_limiter_wait *vd_limiter_session_reuse(vd_limiter *l, const vd_limit_set *s,
                                          bool (*idle)(void *arg), vd_limiter_cb cb, void *arg);
/* The granted session is over (fresh: it was a new connection, charged to the session rate). */
void vd_limiter_session_end(vd_limiter *l, const vd_limit_set *s);
void vd_limiter_session_fresh(vd_limiter *l, const vd_limit_set *s);
/* One RCPT for the set: waits for a token in every key's bucket. */
vd_limiter_wait *vd_limiter_rcpt(vd_limiter *l, const vd_limit_set *s, vd_limiter_cb cb, void *arg);
/* Stops a wait; its cb is not called. */
void vd_limiter_cancel(vd_limiter_wait *w);
/* What a reply said: adapts the rates (slow down), opens breakers (block), charges unknown
 * users. why is the reply's text, for the log. */
void vd_limiter_feedback(vd_limiter *l, const vd_limit_set *s, vd_signal sig, const char *why);

/* Counters for the log and the metrics. */
typedef struct vd_limiter_stats {
    unsigned long waits, parked, slow_downs, blocks, breakers_open, deferred;
} vd_limiter_stats;
void vd_limiter_stats_get(const vd_limiter *l, vd_limiter_stats *out);

/* The key's current RCPT rate per minute (after adaptation), or -1 when unknown. */
double vd_limiter_rate(vd_limiter *l, vd_scope scope, const char *key);

#endif

/* limiter.h — traffic shaping for one source IP: what may be sent now, per key.
 *
 * Every session and every RCPT of a probe is charged to a set of keys, one per scope: the
 * provider (the rule), the server (the MX address we connect to), its network (/24, /64), the
 * destination domain, the source IP, and everything. Per key: a cap on concurrent sessions,
 * on RCPTs per session, a session rate, and a token bucket for RCPTs. The sender scopes
 * (provider, server, network) adapt: a key with no history starts gently (one connection,
 * about one RCPT a second) and grows additively while the server stays quiet; a "slow down"
 * sets a ceiling from what we actually sent over the windows a server may count over, halves
 * the rate and pauses the key until those windows drain; a second one in the same episode
 * goes to a floor; a deferral budget per episode rests the key before a server's "N
 * deferrals => block" can trigger. What a key learned (its safe pace, ceiling, connections)
 * is kept in the store, so a later run starts near it. A block opens a circuit breaker
 * (exponential back-off with jitter). A request that must wait is parked on a timer and
 * costs little; it never holds up a request of other keys. Idle keys whose state is the
 * default are evicted, so the table stays bounded; a key that cannot be had makes its
 * request wait, never go unshaped.
 *
 * Owns: the shaping state and its arithmetic, the waits, the breakers, the key table's bound.
 * Does not own: the limits themselves (rules' `limits`, rules/validora/reputation.lua), what a
 * reply means (the rules' signal function), the ledger (persistent counts: the engine's
 * on_signal callback writes them). No Lua here. */
#ifndef VALIDORA_LIMITER_H
#define VALIDORA_LIMITER_H
#include <stdbool.h>
#include <stddef.h>
#include "validora/record.h"
#include "validora/validora.h"

struct event_base;

/* The error name job:smtp() returns when shaping gives the address back (docs/errors.md):
 * the record's reason for the same outcome. */
#define VD_LIMITER_DEFERRED VD_REASON_DEFERRED

typedef enum vd_scope {
    VD_SCOPE_PROVIDER,
    VD_SCOPE_MX,      /* the server: the address we connect to (m:IP) */
    VD_SCOPE_NETWORK, /* the server's network: /24 (IPv4) or /64 (IPv6) (n:PREFIX) */
    VD_SCOPE_DOMAIN,
    VD_SCOPE_SOURCE_IP,
    VD_SCOPE_GLOBAL,
    VD_NSCOPES
} vd_scope;

/* A scope's name as rules write it in their limits ("mx", "network", ...). */
const char *vd_scope_name(vd_scope scope);
/* The key of scope for id ("m:192.0.2.1", "d:example.com", "g:*"): the one spelling of each
 * scope's prefix. */
void vd_scope_key(vd_scope scope, const char *id, char *out, size_t len);
/* The key of an alternative check's HTTP endpoint (http.request, under the rule's name); it
 * sits in the provider slot of its own limit set. */
void vd_scope_http_key(const char *rule, char *out, size_t len);

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
    double start_per_minute;    /* a sender key with no history starts here (0: START_RATE) */
} vd_limit;

/* The keys (and their limits) a probe is charged to; an empty key is a scope not used. */
typedef struct vd_limit_set {
    char key[VD_NSCOPES][288];
    vd_limit limit[VD_NSCOPES];
} vd_limit_set;

/* What a sender-scope key learned about a server, kept across runs (rates a minute; wall
 * clock unix seconds). */
typedef struct vd_pace {
    double rate;        /* the pace last used without a deferral: a later run starts near it */
    double ceil;        /* the ceiling a deferral taught (0: none) */
    double conns;       /* connections the server allowed at once (0: not learned) */
    double sessions;    /* new sessions a minute the server allowed (0: not learned) */
    double deferred_at; /* the last deferral (0: never) */
    double updated_at;  /* when this was written */
    unsigned deferrals; /* deferrals counted in all */
} vd_pace;

/* Where the state that must outlive a process lives: the circuit breakers, so that a run
 * restarted after a block does not knock on the same door at once, and each server's pace. The
 * limiter keeps the live state in memory and reads a key's breaker from the store once, when it
 * first sees the key; it writes every breaker it opens. No store (NULL functions): memory only. A
 * store shared between machines (later) is one more backend of these two calls. Times are unix
 * seconds (wall clock): the store outlives the process's monotonic clock. */
typedef struct vd_limiter_store {
    /* The breaker of key: 0 with *until = 0 when none is open; -1 on error (then none). */
    int (*breaker_get)(void *arg, const char *key, double *until, int *times);
    /* Records that key's breaker is open until `until` (the times-th block in a row). */
    int (*breaker_put)(void *arg, const char *key, double until, int times, const char *reason);
    /* A key's learned pace: 0 found, 1 none, -1 error (then none). NULL: nothing kept. */
    int (*pace_get)(void *arg, const char *key, vd_pace *out);
    int (*pace_put)(void *arg, const char *key, const vd_pace *p);
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
    /* Monotonic seconds (tests and benchmarks drive time by hand); NULL: CLOCK_MONOTONIC. */
    double (*clock)(void *arg);
    void *clock_arg;
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
/* The granted session is over and its connection is being closed: its slot stays taken for
 * CLOSE_GRACE_S, so that a new connection never overlaps it in the server's own count. */
void vd_limiter_session_closed(vd_limiter *l, const vd_limit_set *s);
void vd_limiter_session_fresh(vd_limiter *l, const vd_limit_set *s);
/* One RCPT for the set: waits for a token in every key's bucket. */
vd_limiter_wait *vd_limiter_rcpt(vd_limiter *l, const vd_limit_set *s, vd_limiter_cb cb, void *arg);
/* Stops a wait; its cb is not called. */
void vd_limiter_cancel(vd_limiter_wait *w);
/* One RCPT that probes a made-up mailbox (the catch-all probe): the server counts it as an
 * unknown user whatever it answers, so it waits for unknown_cost tokens. */
vd_limiter_wait *vd_limiter_rcpt_probe(vd_limiter *l, const vd_limit_set *s, vd_limiter_cb cb,
                                       void *arg);
/* What a reply said: adapts the rates (slow down), opens breakers (block), charges unknown
 * users. at_connect: the reply refused a new session (banner, EHLO): a slow-down then lowers
 * the connections and the session rate, not the RCPT rate. why is the reply's text. */
void vd_limiter_feedback(vd_limiter *l, const vd_limit_set *s, vd_signal sig, bool at_connect,
                         const char *why);
/* Writes every key's learned pace to the store now (also done every minute and at free). */
void vd_limiter_flush(vd_limiter *l);

/* Counters for the log and the metrics. */
typedef struct vd_limiter_stats {
    unsigned long waits, parked, slow_downs, blocks, breakers_open, deferred;
    unsigned long keys, evicted, rests; /* keys live now, evicted so far; deferral budgets spent */
} vd_limiter_stats;
void vd_limiter_stats_get(const vd_limiter *l, vd_limiter_stats *out);

/* The key's current RCPT rate per minute (after adaptation), or -1 when unknown. */
double vd_limiter_rate(vd_limiter *l, vd_scope scope, const char *key);
/* The key's learned ceiling (RCPTs a minute; 0: none) and connections allowed now; -1: no key. */
double vd_limiter_ceiling(vd_limiter *l, const char *key);
int vd_limiter_conns(vd_limiter *l, const char *key);
/* Seconds left of the key's RCPT pause (0: none; -1: no key). */
double vd_limiter_paused(vd_limiter *l, const char *key);

/* The network key's prefix of an address ("192.0.2" of 192.0.2.7; the first four groups of an
 * IPv6 address); out must hold 64 bytes. */
void vd_limiter_network_of(const char *ip, char *out, size_t outlen);

#endif

/* rules_env.h — what a rule generation needs from its engine (vd_rules_env): the I/O it may
 * reach and the settings and log it sees. The engine fills it in (engine.c) and hands it down
 * with vd_rules_load (rules.h); the bindings read it through their run's generation
 * (lua_bridge.h), so they need no part of rules.h above them.
 *
 * Owns: the environment's shape. Does not own: any of the things it points at (their modules),
 * loading or running rules (rules.c). No Lua here. */
#ifndef VALIDORA_RULES_ENV_H
#define VALIDORA_RULES_ENV_H
#include "dns.h"
#include "limiter.h"
#include "pool.h"
#include "validora/validora.h"

struct event_base;
struct vd_http;
struct vd_budget;
struct vd_smtp_parked;

/* What a generation needs from its engine; copied, the pointers must outlive it. */
typedef struct vd_rules_env {
    struct event_base *base;
    vd_dns *dns;
    vd_pool *pool;
    vd_limiter *limiter;
    struct vd_http *http;          /* http.request's client; NULL: none */
    struct vd_budget *budget;      /* the day's warm-up budget; NULL: none (no ledger) */
    struct vd_smtp_parked *parked; /* job:smtp() calls not yet on a session (vd_smtp_drain) */
    const vd_engine_config *cfg;   /* effective settings: rules see options marked `rules` */
    vd_log_cb log;
    void *log_arg;
} vd_rules_env;

#endif

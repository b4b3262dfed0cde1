/* rules.h — the Lua bridge as the engine sees it: rule generations, and running one address's
 * probe on a generation.
 *
 * Owns (with lua_bridge.h's files): loading rules/NAME.lua into a sandbox as one generation,
 * checking it whole before it may become current, choosing the rule for an address
 * (rules/validora/select.lua), running its probe(job) as a task, and turning the rule's
 * calls into I/O (lua_job.c, lua_smtp.c, lua_dns.c, lua_http.c; lua_job.h: the drain).
 * Does not own: when a generation becomes current (engine.c), the job's life (job.c), what a
 * reply means (rules/NAME.lua), the protocols (smtp.c, pool.c, dns.c). */
#ifndef VALIDORA_RULES_H
#define VALIDORA_RULES_H
#include "dns.h"
#include "limiter.h"
#include "lua_job.h" /* vd_smtp_parked, vd_smtp_drain: the engine holds and drains it */
#include "pool.h"
#include "probe.h"
#include "rules_env.h" /* vd_rules_env: what a generation needs from its engine */
#include "validora/validora.h"

struct event_base;
typedef struct vd_rules vd_rules;
typedef struct vd_run vd_run;

/* Loads every rule of the directories (a later one adds rules and overrides those of the same
 * file name) as generation id. Every problem found goes to cb (file, line or 0, message);
 * NULL when there was any. */
vd_rules *vd_rules_load(const vd_rules_env *env, const char *const *dirs, size_t ndirs, unsigned id,
                        vd_problem_cb cb, void *arg);
/* SHA-256 over the names and bytes of every rule and module file the generation loaded. */
void vd_rules_digest(const vd_rules *r, unsigned char out[32]);
/* Calls cb for each rule in the order they are tried (default last). */
void vd_rules_order(vd_rules *r, vd_rule_cb cb, void *arg);

/* Which rule would probe an address at domain with these MX hosts, and why. */
typedef struct vd_pick {
    char rule[64];     /* its name */
    char file[4096];   /* its file */
    char by[16];       /* "domain", "mx", "default" ("error": pattern holds the message) */
    char pattern[256]; /* the pattern that matched */
    char host[256];    /* the MX host it matched */
} vd_pick;
int vd_rules_pick(vd_rules *r, const char *domain, const vd_mx_result *mx, vd_pick *out);

/* What the ledger has seen from the source IP, for the warm-up curve. */
typedef struct vd_warmup_history {
    long blocks_today, deferrals_today; /* today (UTC) */
    long blocks_30d, deferrals_30d;     /* the last 30 UTC days, today included */
    long blocks_total, deferrals_total; /* ever */
} vd_warmup_history;
/* The day's SMTP verifications for a source IP age_days old with this history, as the
 * generation's validora/warmup.lua budget() tells; -1 with err when it fails or does not
 * return a whole number >= 0. */
long vd_rules_budget(vd_rules *r, int age_days, const vd_warmup_history *h, char *err,
                     size_t errlen);
void vd_rules_ref(vd_rules *r);
/* The generation is freed when its last reference goes. */
void vd_rules_unref(vd_rules *r);
unsigned vd_rules_id(const vd_rules *r);

/* Called once when a probe has finished: the verdict is in p (unknown/rule_error when the
 * rule failed or set none) and every lease p held has been released. */
typedef void (*vd_probe_done_cb)(vd_probe *p, void *arg);

/* Prepares the probe of p on generation r (which it holds a reference to). NULL when out of
 * memory. */
vd_run *vd_rules_probe_new(vd_rules *r, vd_probe *p, vd_probe_done_cb done, void *arg);
/* Runs it: chooses the rule and calls its probe(job). done may be called before this
 * returns; the run is gone once done has been called. */
void vd_rules_probe_start(vd_run *run);
/* Stops a probe that has not finished; done is not called. */
void vd_rules_probe_cancel(vd_run *run);

#endif

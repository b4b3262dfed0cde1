/* lua_bridge.h — what the files of the Lua bridge share: rules.c (generations, runs),
 * lua_job.c (the job object), lua_smtp.c (sessions and replies), lua_dns.c (the dns table),
 * lua_http.c (the http table); lua_run.h (the run, the limiter's hold) is below them all, and
 * so is lua_json.h (the json table, which needs none of them).
 * Nothing outside the bridge includes this; the engine sees rules.h. Nor does this include
 * rules.h: the bindings below rules.c see the generation's environment through rules_env.h. */
#ifndef VALIDORA_LUA_BRIDGE_H
#define VALIDORA_LUA_BRIDGE_H
#include <lua.h>
#include "lua_run.h"
#include "lua_task.h"
#include "probe.h"
#include "rules_env.h"

typedef struct vd_rules vd_rules; /* as rules.h says it: this header does not point up to rules.h */

struct vd_rules {
    lua_State *L;
    int refs;
    unsigned id;
    vd_rules_env env;
    unsigned char digest[32]; /* of every rule and module file loaded */
    lua_State *service;       /* a thread for the engine's own calls (signals) */
};

/* Where rules.c keeps reputation.signal_for, the rule's one reading of a reply (lua_smtp.c). */
#define VD_SIGNAL_KEY "validora.signal"

/* lua_job.c */
void vd_lua_job_open(lua_State *L);                         /* the job metatable */
void vd_lua_job_set_method(lua_State *L, const char *name); /* pops a value into its methods */
void vd_lua_job_push(lua_State *L, vd_run *run);            /* pushes the run's job userdata */
void vd_lua_job_detach(vd_run *run);                        /* the userdata no longer reaches run */

/* lua_smtp.c */
void vd_lua_smtp_open(lua_State *L); /* session and reply metatables */
/* Pushes a session object for the lease in the probe's slot. */
void vd_lua_session_push(lua_State *L, vd_run *run, int slot);
/* Pushes on L the reply table {code, enhanced, text, signal} with :matches(), read once:
 * signal is the rule's reading of it (reputation.signal_for: the rule's own `signal`, then
 * the generic one; "none" when it says nothing of ours). Returns what the limiter hears of it
 * (at_connect: the reply refused a new session, where a bare 421 is a slow-down). */
vd_signal vd_lua_reply_read(lua_State *L, vd_run *run, int code, const char *enhanced,
                            const char *text, bool at_connect);
/* Cuts every session object of the run from it. */
void vd_lua_sessions_detach(vd_run *run);

/* lua_dns.c */
void vd_lua_dns_open(lua_State *L); /* pushes the dns table */
void vd_lua_push_mx_hosts(lua_State *L, const vd_mx_result *r);

/* lua_http.c */
void vd_lua_http_open(lua_State *L); /* pushes the http table */
/* Sets the run's HTTP key to http:<rule> with lim (job:_rule, from the rule's limits.http). */
void vd_lua_http_limits(vd_run *run, const char *rule, const vd_limit *lim);

#endif

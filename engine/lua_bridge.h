/* lua_bridge.h — what the files of the Lua bridge share: rules.c (generations, runs),
 * lua_job.c (the job object), lua_smtp.c (sessions and replies), lua_dns.c (the dns table),
 * lua_http.c (the http table), lua_json.c (the json table).
 * Nothing outside the bridge includes this; the engine sees rules.h. */
#ifndef VALIDORA_LUA_BRIDGE_H
#define VALIDORA_LUA_BRIDGE_H
#include <lua.h>
#include "lua_task.h"
#include "probe.h"
#include "rules.h"

struct vd_rules {
    lua_State *L;
    int refs;
    unsigned id;
    vd_rules_env env;
    unsigned char digest[32]; /* of every rule and module file loaded */
    lua_State *service;       /* a thread for the engine's own calls (signals) */
};

struct vd_lua_session;

/* One probe running on a generation. */
struct vd_run {
    vd_rules *gen;
    vd_task *task;
    vd_probe *probe;
    vd_probe_done_cb done;
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

/* lua_job.c */
void vd_lua_job_open(lua_State *L);                         /* the job metatable */
void vd_lua_job_set_method(lua_State *L, const char *name); /* pops a value into its methods */
void vd_lua_job_push(lua_State *L, vd_run *run);            /* pushes the run's job userdata */
void vd_lua_job_detach(vd_run *run);                        /* the userdata no longer reaches run */

/* lua_smtp.c */
void vd_lua_smtp_open(lua_State *L); /* session and reply metatables */
/* Pushes a session object for the lease in the probe's slot. */
void vd_lua_session_push(lua_State *L, vd_run *run, int slot);
/* Pushes a reply table {code, enhanced, text} with :matches(). */
void vd_lua_push_reply(lua_State *L, int code, const char *enhanced, const char *text);
/* Cuts every session object of the run from it. */
void vd_lua_sessions_detach(vd_run *run);

/* lua_dns.c */
void vd_lua_dns_open(lua_State *L); /* pushes the dns table */
void vd_lua_push_mx_hosts(lua_State *L, const vd_mx_result *r);

/* lua_http.c */
void vd_lua_http_open(lua_State *L); /* pushes the http table */
/* Sets the run's HTTP key to http:<rule> with lim (job:_rule, from the rule's limits.http). */
void vd_lua_http_limits(vd_run *run, const char *rule, const vd_limit *lim);

/* lua_json.c */
void vd_lua_json_open(lua_State *L); /* pushes the json table */
extern const char VD_JSON_ERR[];     /* "bad_json" */

#endif

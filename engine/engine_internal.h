/* engine_internal.h — what engine.c, rules.c and the lua_*.c bindings share: the engine,
 * a rule generation, a job and the yield/resume protocol between them.
 * Not part of the public API (include/validora/validora.h). */
#ifndef VALIDORA_ENGINE_INTERNAL_H
#define VALIDORA_ENGINE_INTERNAL_H
#include <stdint.h>
#include <sys/time.h>
#include <lua.h>
#include <openssl/ssl.h>
#include "validora/validora.h"
#include "address.h"
#include "dns.h"
#include "lists.h"
#include "pool.h"
#include "validora/record.h"

typedef struct vd_job vd_job;

/* One generation of loaded rules: its own lua_State. Jobs keep the generation they
 * started on alive (refs); a reload makes a new one current and the old one is freed when
 * its last job ends. */
typedef struct vd_rules {
    lua_State *L;
    int refs;
    unsigned id;
    size_t mem, mem_limit; /* bytes in use by L, cap (allocator refuses past it) */
    uint64_t load_count;   /* VM instructions spent loading this generation */
    struct vd_engine *engine;
} vd_rules;

struct vd_engine {
    struct event_base *base;
    vd_engine_config cfg;
    char *dns_servers, *rules_dir, *source_ip;
    char helo[256];
    char mail_from[320];
    struct sockaddr_storage source;
    socklen_t source_len;
    vd_dns *dns;
    vd_lists *lists;
    vd_pool *pool;
    SSL_CTX *tls;
    vd_rules *rules; /* current generation */
    unsigned next_rules_id;
    size_t inflight;
    vd_job *jobs; /* every live job, for vd_engine_free */
};

/* What a suspended job waits for. */
typedef enum vd_wait_kind {
    VD_WAIT_NONE = 0,
    VD_WAIT_DNS,
    VD_WAIT_POOL,
    VD_WAIT_SMTP,
    VD_WAIT_TIMER,
    VD_WAIT_PARK,
} vd_wait_kind;

/* A completion token: handed to an asynchronous call as its callback argument. The job
 * detaches it (job = NULL) when it stops waiting for it, so a late completion is dropped
 * instead of resuming a coroutine that moved on. */
typedef struct vd_waiter {
    vd_job *job;
    unsigned gen;
} vd_waiter;

#define VD_JOB_MAX_SESSIONS 4

struct vd_lua_session;

struct vd_job {
    vd_engine *e;
    vd_rules *gen;
    vd_job *prev, *next;
    vd_result_cb cb;
    void *cb_arg;

    char *email;
    vd_address addr;
    bool addr_ok;
    const char *why;
    bool disposable, role, free_provider;
    const char *suggestion;
    vd_mx_result *mx; /* deep copy of the DNS answer */
    vd_dns_req *dnsreq;
    struct timeval started;

    /* Lua */
    lua_State *co;
    int co_ref;
    int self_ref; /* the job userdata in the registry */
    unsigned wait_gen;
    vd_wait_kind wait_kind;
    vd_waiter *waiter; /* current token, NULL when not waiting on one */
    void *wait_handle; /* vd_dns_req or vd_pool_req to cancel */
    struct event *timer;
    int park_ref; /* value handed over by a wake */
    uint64_t hook_count;
    bool in_call;   /* a binding is between wait_begin and wait_end */
    int sync_nargs; /* completion values delivered during in_call, or -1 */
    struct vd_lua_session *sessions[VD_JOB_MAX_SESSIONS];

    /* verdict */
    const char *status;
    char reason[48];
    char *detail;
    char *mx_used;
    bool has_smtp;
    int smtp_code;
    char smtp_enhanced[16];
    char *smtp_text;
    vd_tristate tls, tls_verified, catch_all;
    char provider[64];
    int attempts;
    bool done;
};

/* Binding entry points (lua_*.c). */
void vd_lua_job_open(lua_State *L);            /* job metatable */
void vd_lua_smtp_open(lua_State *L);           /* session metatable */
void vd_lua_dns_open(lua_State *L);            /* the dns table, left on the stack */
void vd_lua_util_open(lua_State *L);           /* sleep, log, now: set into the table on top */
void vd_lua_job_push(lua_State *L, vd_job *j); /* pushes the job's userdata */

/* Shared by the bindings (lua_dns.c): an address as a string, MX hosts as a Lua list of
 * {name, preference, addrs}. */
void vd_lua_push_sockaddr(lua_State *L, const struct sockaddr_storage *ss);
void vd_lua_push_mx_hosts(lua_State *L, const vd_mx_result *r);

/* The running job of a coroutine (stored in its extra space). */
vd_job *vd_lua_job_of(lua_State *co);

/* The wait protocol of a binding that does I/O:
 *     vd_waiter *w = vd_job_wait_begin(j, VD_WAIT_DNS);
 *     start the asynchronous call with w as its callback argument;
 *     return vd_job_wait_end(L, j);
 * The completion callback calls vd_waiter_take(w), pushes its results on j->co and calls
 * vd_job_resume(j, n). A completion that arrives before wait_end (a cache hit) is returned
 * directly instead of yielding. */
vd_waiter *vd_job_wait_begin(vd_job *j, vd_wait_kind kind);
int vd_job_wait_end(lua_State *L, vd_job *j);
/* Takes a token back in a completion callback: returns the job when the token is still
 * current (and frees the token), NULL when the completion is stale. */
vd_job *vd_waiter_take(vd_waiter *w);
/* Resumes the job's coroutine with nargs values pushed on j->co. */
void vd_job_resume(vd_job *j, int nargs);
/* Sets the verdict (status must be a static string). */
void vd_job_verdict(vd_job *j, const char *status, const char *reason);
/* Releases the job's SMTP sessions back to the pool. */
void vd_lua_job_release_sessions(vd_job *j);
/* Cuts the link from the job's Lua userdata to the job (before the job is freed). */
void vd_lua_job_detach(vd_job *j);
/* Delivers the record and frees the job (engine.c). */
void vd_job_end(vd_job *j);
/* Sets the detail text of the record (copied). */
void vd_job_set_detail(vd_job *j, const char *s);

/* rules.c */
vd_rules *vd_rules_load(vd_engine *e, const char *dir, char *err, size_t errlen);
void vd_rules_unref(vd_rules *r);
/* Starts the job's probe on generation r (pushes the runner into a new coroutine). */
void vd_rules_start(vd_rules *r, vd_job *j);

void vd_engine_log(const vd_engine *e, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif

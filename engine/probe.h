/* probe.h — what the probe of one address knows and finds, as plain data the job owns and
 * hands down to the rule bridge: the facts the engine established before the rule (address,
 * list flags, MX answer), the verdict with its evidence, and the SMTP session leases the
 * probe holds.
 *
 * Owns: this data, its setters (a verdict reason is one lower-case word), releasing leases.
 * Does not own: when a probe starts or ends (job.c), how a rule reaches it (lua_job.c).
 * No Lua here: the bridge writes into a vd_probe; nothing here calls up. */
#ifndef VALIDORA_PROBE_H
#define VALIDORA_PROBE_H
#include <stdbool.h>
#include <stddef.h>
#include "address.h"
#include "dns.h"
#include "limiter.h"
#include "pool.h"
#include "validora/record.h"

#define VD_PROBE_MAX_SESSIONS 4 /* sessions one address may hold at once (probe + catch-all) */
#define VD_REASON_MAX         48

/* How the rule reached its verdict (the record's `method`, docs/records.md). */
typedef enum {
    VD_METHOD_NONE,    /* no rule ran: a syntax or DNS verdict (the key is absent) */
    VD_METHOD_SKIPPED, /* the rule decided without asking anybody */
    VD_METHOD_SMTP,    /* it asked the MX (job:smtp) */
    VD_METHOD_HTTP,    /* it asked an alternative-check endpoint (http.request) */
} vd_method;

typedef struct vd_probe {
    /* facts, set by the job before the rule runs; the rule only reads them */
    const char *email; /* the input, email_len bytes, NULs and all */
    size_t email_len;
    const vd_address *addr;
    bool disposable, role, free_provider;
    const vd_mx_result *mx;
    bool reuse; /* released sessions may be kept for later addresses */

    /* the outcome */
    const char *status; /* vd_status_name()'s string; NULL until a verdict is set */
    char reason[VD_REASON_MAX];
    char *detail;
    char *mx_used;
    bool has_smtp;
    int smtp_code;
    char smtp_enhanced[16];
    char *smtp_text;
    vd_tristate tls, tls_verified, catch_all;
    char provider[64];
    int attempts;
    vd_method method;   /* VD_METHOD_SKIPPED once a rule runs; see vd_probe_note_method */
    bool method_forced; /* job:set_method: the rule said it, notes no longer change it */
    char *address;      /* the rule's canonical form of the address (job:set_address), or NULL */

    vd_lease *leases[VD_PROBE_MAX_SESSIONS];
    bool retire[VD_PROBE_MAX_SESSIONS]; /* the session reached its RCPT cap: do not keep it */

    /* traffic shaping: the keys and limits this probe is charged to (set with its rule) */
    vd_limiter *limiter;
    vd_limit_set limits;
    double delayed; /* seconds the limiter held it */
    int granted;    /* sessions the limiter granted that the pool has not leased yet */
    bool charged;   /* the address was charged to the day's warm-up budget (its first job:smtp) */
} vd_probe;

/* Sets p up with nothing decided. */
void vd_probe_init(vd_probe *p);
/* Releases every lease and frees what the outcome holds. */
void vd_probe_clear(vd_probe *p);

/* Reasons C gives by itself, named once (a rule's own reasons are its words; docs/records.md). */
#define VD_REASON_INTERNAL_ERROR "internal_error" /* the engine failed (out of memory, ...) */
#define VD_REASON_RULE_ERROR     "rule_error"     /* the rule failed or none could be chosen */

/* Sets the verdict: status s, and a reason. Returns 0, or -1 when s is not a status or reason is
 * not one lower-case word of 1-47 [a-z0-9_] (the verdict is then unchanged). */
int vd_probe_decide(vd_probe *p, vd_status s, const char *reason);
void vd_probe_set_detail(vd_probe *p, const char *s); /* copied; NULL clears */
/* The deciding SMTP reply. */
void vd_probe_set_reply(vd_probe *p, int code, const char *enhanced, const char *text);
/* Records the MX host tried or used (copied; NULL leaves it). */
void vd_probe_set_mx(vd_probe *p, const char *mx);
/* Records which server the session reached and whether it used TLS. */
void vd_probe_note_session(vd_probe *p, const vd_lease *l);
void vd_probe_set_provider(vd_probe *p, const char *name);
/* The rule used method m: SMTP over skipped, HTTP over both (an alternative check decided even
 * when SMTP was tried too). Ignored once the rule forced one. */
void vd_probe_note_method(vd_probe *p, vd_method m);
void vd_probe_force_method(vd_probe *p, vd_method m);
/* "skipped", "smtp", "http", or NULL for VD_METHOD_NONE; vd_probe_method_parse the reverse
 * (VD_METHOD_NONE for anything else). */
const char *vd_probe_method_name(vd_method m);
vd_method vd_probe_method_parse(const char *name);
/* The record's address becomes a (copied; the caller validated it). */
void vd_probe_set_address(vd_probe *p, const char *a);

/* Keeps a lease; returns its slot, or -1 when all VD_PROBE_MAX_SESSIONS are taken (the lease
 * is then released). */
int vd_probe_lease_add(vd_probe *p, vd_lease *l);
/* A free slot exists. */
bool vd_probe_lease_room(const vd_probe *p);
/* Gives the lease in slot back to the pool (kept for reuse only when reusable and p->reuse). */
void vd_probe_lease_release(vd_probe *p, int slot, bool reusable);
void vd_probe_release_all(vd_probe *p);

#endif

/* pool.h — SMTP sessions shared by the jobs of a run.
 *
 * Owns: choosing the host (MX hosts in preference order, each host's addresses in turn,
 * until one answers), reusing idle sessions to the same host (keyed by MX host name and
 * port), a cap on concurrent sessions per MX host with a FIFO of waiting requests,
 * retiring sessions whose last reply ended them (vd_smtp_reply_ends_session: 421 or no
 * reply), after a refused MAIL or a transaction count, remembering hosts that refused
 * connections for a short while, and keeping a transaction open across jobs (MAIL FROM
 * once, many RCPTs, RSET between transactions), and the pool's own limits below.
 * Does not own: which replies end a session (smtp.h), what replies mean (rules), rate
 * limits (limiter, later), defaults for user options (the caller's options table). */
#ifndef VALIDORA_POOL_H
#define VALIDORA_POOL_H
#include "dns.h"
#include "smtp.h"

typedef struct vd_pool vd_pool;
typedef struct vd_pool_req vd_pool_req;
typedef struct vd_lease vd_lease;

/* The pool's own limits, not user options: named once here; 0 in vd_pool_opts means these. */
/* RCPTs per transaction, as Postfix's client does (default_destination_recipient_limit) */
#define VD_POOL_RCPT_PER_TXN 50
/* Transactions per connection: servers cap and count per connection; a new one resets them */
#define VD_POOL_TXN_PER_SESSION 100
/* Idle sessions hold a server process; Postfix's smtpd drops idle clients at 10 s under stress */
#define VD_POOL_IDLE_TIMEOUT_MS 10000
/* Skip a host whose addresses all failed to connect: not one connect timeout per queued job */
#define VD_POOL_DEAD_HOST_MS 60000

typedef struct vd_pool_opts {
    vd_smtp_opts smtp;     /* helo, source, timeouts (required, > 0), tls_ctx, trace (its
                              arg must outlive the pool); tls_sni and trace_mx are set per
                              session to the MX host name */
    int port;              /* required: 1-65535 */
    const char *mail_from; /* reverse path for MAIL FROM; "" or NULL = null sender */
    int per_mx_sessions;   /* concurrent sessions per MX host; required, > 0 */
    int rcpt_per_txn;      /* RCPTs before RSET + new MAIL; 0 = VD_POOL_RCPT_PER_TXN */
    int txn_per_session;   /* transactions before QUIT + reconnect; 0 = VD_POOL_TXN_PER_SESSION */
    int idle_timeout_ms;   /* idle sessions are closed after this; 0 = VD_POOL_IDLE_TIMEOUT_MS */
    int dead_host_ms;      /* a host that failed to connect is skipped; 0 = VD_POOL_DEAD_HOST_MS */
} vd_pool_opts;

typedef struct vd_pool_result {
    vd_smtp_err err;            /* VD_SMTP_OK: lease is usable */
    const vd_smtp_reply *reply; /* the deciding reply when a server answered but refused
                                   (banner 554, EHLO/HELO rejected), else NULL */
    const char *mx;             /* host name of the last host tried (or used) */
    int attempts;               /* connection attempts made for this request */
    const char *errmsg;         /* detail when err != OK */
} vd_pool_result;

typedef void (*vd_pool_cb)(vd_lease *lease, const vd_pool_result *r, void *arg);

/* NULL when an option is missing or out of range (no helo; a timeout, port or
 * per_mx_sessions that is zero or negative; a port over 65535; a negative pool limit) or
 * out of memory. User options have no defaults here: they come filled in from the caller's
 * options table. */
vd_pool *vd_pool_new(struct event_base *base, const vd_pool_opts *opts);
/* Closes every session (QUIT); pending requests' callbacks are not called. */
void vd_pool_free(vd_pool *p);

/* Gets a session to one of mx's hosts (mx is copied; it need not outlive the call).
 * cb is called once: with a lease (r->err == OK) or with NULL and the failure.
 * Returns a handle for vd_pool_cancel, or NULL when cb already ran. */
vd_pool_req *vd_pool_acquire(vd_pool *p, const vd_mx_result *mx, vd_pool_cb cb, void *arg);
void vd_pool_cancel(vd_pool_req *r);
/* Is there an idle session to one of mx's hosts, that an acquire now would lease instead of
 * connecting? (For session-rate limits, which count new connections only.) */
bool vd_pool_has_idle(const vd_pool *p, const vd_mx_result *mx);

/* RCPT TO on the leased session, sending MAIL FROM first when no transaction is open
 * (and RSET first when the transaction is full). When MAIL FROM itself is refused, cb
 * gets that reply. */
void vd_lease_rcpt(vd_lease *l, const char *to, vd_smtp_cb cb, void *arg);
/* Ends any open transaction (RSET) and opens one with this reverse path. */
void vd_lease_mail(vd_lease *l, const char *from, vd_smtp_cb cb, void *arg);
void vd_lease_rset(vd_lease *l, vd_smtp_cb cb, void *arg);
const char *vd_lease_mx(const vd_lease *l);
bool vd_lease_tls(const vd_lease *l);
bool vd_lease_tls_verified(const vd_lease *l);
/* Can the lease take another command now: connected and ready, its last reply did not end
 * the session (vd_smtp_reply_ends_session), no operation in flight? A usable lease may
 * still be closed on release (refused MAIL, txn_per_session reached). */
bool vd_lease_usable(const vd_lease *l);
/* RCPTs answered on the leased session so far (all transactions). */
int vd_lease_rcpts(const vd_lease *l);
/* The session is new: nothing was asked on it yet (a new connection, for session rates). */
bool vd_lease_fresh(const vd_lease *l);
/* Gives the session back. The pool decides whether it is reused: a session whose last reply
 * ended it (vd_smtp_reply_ends_session: 421, timeout, closed, protocol error) is closed,
 * never handed out again, whatever reusable says; so is one whose MAIL was refused, one
 * released with an operation in flight, and one released with reusable=false. */
bool vd_lease_release(vd_lease *l, bool reusable); /* true: the session is being closed */

#endif

/* pool.h — SMTP sessions shared by the jobs of a run.
 *
 * Owns: choosing the host (MX hosts in preference order, each host's addresses in turn,
 * until one answers), reusing idle sessions to the same host (keyed by MX host name and
 * port), a cap on concurrent sessions per MX host with a FIFO of waiting requests,
 * retiring sessions whose last reply ended them (vd_smtp_reply_ends_session: 421 or no
 * reply), after a refused MAIL or a transaction count, remembering hosts that refused
 * connections for a short while, and keeping a transaction open across jobs (MAIL FROM
 * once, many RCPTs, RSET between transactions).
 * Does not own: which replies end a session (smtp.h), what replies mean (rules), rate
 * limits (limiter, later). */
#ifndef VALIDORA_POOL_H
#define VALIDORA_POOL_H
#include "dns.h"
#include "smtp.h"

typedef struct vd_pool vd_pool;
typedef struct vd_pool_req vd_pool_req;
typedef struct vd_lease vd_lease;

typedef struct vd_pool_opts {
    vd_smtp_opts smtp;     /* helo, source, timeouts, tls_ctx */
    int port;              /* 0 = 25 */
    const char *mail_from; /* reverse path for MAIL FROM; "" = null sender */
    int per_mx_sessions;   /* concurrent sessions per MX host; 0 = 4 */
    int rcpt_per_txn;      /* RCPTs before RSET + new MAIL; 0 = 50 */
    int txn_per_session;   /* transactions before QUIT + reconnect; 0 = 100 */
    int idle_timeout_ms;   /* idle sessions are closed after this; 0 = 10000 */
    int dead_host_ms;      /* a host that failed to connect is skipped this long; 0 = 60000 */
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

vd_pool *vd_pool_new(struct event_base *base, const vd_pool_opts *opts);
/* Closes every session (QUIT); pending requests' callbacks are not called. */
void vd_pool_free(vd_pool *p);

/* Gets a session to one of mx's hosts (mx is copied; it need not outlive the call).
 * cb is called once: with a lease (r->err == OK) or with NULL and the failure.
 * Returns a handle for vd_pool_cancel, or NULL when cb already ran. */
vd_pool_req *vd_pool_acquire(vd_pool *p, const vd_mx_result *mx, vd_pool_cb cb, void *arg);
void vd_pool_cancel(vd_pool_req *r);

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
/* Gives the session back. The pool decides whether it is reused: a session whose last reply
 * ended it (vd_smtp_reply_ends_session: 421, timeout, closed, protocol error) is closed,
 * never handed out again, whatever reusable says; so is one whose MAIL was refused, one
 * released with an operation in flight, and one released with reusable=false. */
void vd_lease_release(vd_lease *l, bool reusable);

#endif

/* pool.c — SMTP sessions shared by the jobs of a run.
 *
 * Owns: a table of MX hosts (keyed by host name; the port is the pool's), each with its
 * sessions (leased, idle or opening), an index of sessions by the server address they are
 * connected to (an idle session to a server is reused for any MX name that resolves to it:
 * one shared host serving forty domains under forty names sees one connection, not forty;
 * Postfix's connection cache does the same by IP address), a FIFO of requests waiting for a slot,
 * and a "dead until" time after a host could not be connected to; the walk over an MX list (hosts
 * in order, each host's addresses in turn); leases, which open a transaction lazily (MAIL FROM
 * before the first RCPT), RSET when it is full, and give the session back, or retire it when its
 * last reply ended it (vd_smtp_reply_ends_session), after a refused MAIL, or after txn_per_session
 * transactions. Does not own: which replies end a session (smtp.c), what replies mean (rules), rate
 * limits (limiter), defaults of user options (port, per_mx_sessions, timeouts: the caller's
 * options table; vd_pool_new refuses them missing).
 *
 * Policy decisions (docs/smtp.md):
 * - A host that refuses us at the banner or EHLO (e.g. 554, 421) is left for the next MX
 *   (RFC 5321 §3.1/§5.1); when every host refuses, the last refusal is reported with
 *   err VD_SMTP_ERR_CLOSED and r->reply set.
 * - Connection failures (refused, unreachable, connect timeout) on every address of a host
 *   mark it dead for dead_host_ms; later requests skip it. Other failures (banner timeout,
 *   protocol error) move on to the next host but do not mark it dead.
 * - Completions of queued requests run from the loop (a zero timer), never inside the
 *   vd_lease_release() that freed the slot. */
#include "pool.h"
#include "clock.h"
#include "address.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <arpa/inet.h>
#include <netinet/in.h>

typedef struct host host;
typedef struct psess psess;

#define ABUCKETS 4096 /* the index of sessions by server address */

struct vd_lease {
    psess *ps;
};

enum op_stage { OP_NONE, OP_RSET_THEN_MAIL, OP_MAIL, OP_RCPT, OP_RSET };

struct psess {
    vd_pool *p;
    host *h;
    vd_smtp *s;
    psess *next;        /* in h->sessions */
    psess *anext;       /* in the pool's index by server address */
    char addr[64];      /* the server address it connects to ("" until it does) */
    char lease_mx[256]; /* the MX name its current lease was asked for */
    vd_pool_req *req;   /* the request this session is being opened for (may be NULL) */
    bool ready, leased;
    bool ended;  /* the last reply ended the session (vd_smtp_reply_ends_session) */
    bool broken; /* never reuse: ended, or pool policy (refused MAIL, failed RSET) */
    bool in_txn;
    int rcpts, txns;
    int total_rcpts; /* RCPTs answered on this session, for per-session caps */
    struct event *idle_timer;
    vd_lease lease;
    /* the lease operation in progress */
    vd_smtp_cb op_cb;
    void *op_arg;
    char *op_to;   /* RCPT argument, when MAIL/RSET must run first */
    char *op_from; /* MAIL argument */
    bool op_rcpt;  /* the operation ends with RCPT */
};

struct host {
    char name[256];
    host *next;
    psess *sessions;
    int nsessions; /* opening + ready (leased or idle) */
    vd_pool_req *wait_head, *wait_tail;
    int64_t dead_until_ms;
};

struct vd_pool_req {
    vd_pool *p;
    vd_pool_req *next, *prev; /* in p->reqs */
    bool *done;               /* set when completed (vd_pool_acquire watches it) */
    vd_pool_req *wait_next;   /* in a host's wait queue */
    host *queued_on;
    size_t nhosts;
    vd_mx_host *hosts; /* deep copy */
    size_t host_i, addr_i;
    int attempts;
    vd_pool_cb cb;
    void *arg;
    struct event *wake; /* zero timer: continue from the loop */
    psess *handoff;     /* a released session reserved for this request */
    psess *opening;     /* a session being opened for this request */
    vd_smtp_err err;
    char errmsg[600];
    bool have_reply;
    int rcode;
    char renhanced[16];
    char *rtext;
};

struct vd_pool {
    struct event_base *base;
    vd_pool_opts o;
    char *helo, *mail_from;
    host **buckets;            /* hosts by name, chained through host.next */
    psess *abuckets[ABUCKETS]; /* sessions by server address, chained through psess.anext */
    size_t nbuckets, nhosts, sweep_at;
    vd_pool_req *reqs;
};

static void advance(vd_pool_req *r);
static void on_open(vd_smtp *s, const vd_smtp_reply *rep, void *arg);
static void session_ready(psess *ps);

static size_t name_hash(const char *name);

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t len)
{
    const void *a = ss->ss_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
    if (!inet_ntop(ss->ss_family, a, out, (socklen_t)len)) snprintf(out, len, "?");
}

static void addr_link(psess *ps, const struct sockaddr_storage *ss)
{
    addr_text(ss, ps->addr, sizeof ps->addr);
    psess **b = &ps->p->abuckets[name_hash(ps->addr) % ABUCKETS];
    ps->anext = *b;
    *b = ps;
}

static void addr_unlink(psess *ps)
{
    if (!ps->addr[0]) return;
    for (psess **pp = &ps->p->abuckets[name_hash(ps->addr) % ABUCKETS]; *pp; pp = &(*pp)->anext)
        if (*pp == ps) {
            *pp = ps->anext;
            break;
        }
    ps->addr[0] = '\0';
}

/* An idle, usable session to the server at addr, whatever MX name it was opened for. */
static psess *idle_at(const vd_pool *p, const char *addr)
{
    for (psess *ps = p->abuckets[name_hash(addr) % ABUCKETS]; ps; ps = ps->anext)
        if (ps->ready && !ps->leased && !ps->req && !ps->broken && !strcmp(ps->addr, addr) &&
            vd_smtp_usable(ps->s))
            return ps;
    return NULL;
}

/* ---- hosts and sessions ------------------------------------------------------------ */

static size_t name_hash(const char *name)
{
    uint32_t x = 2166136261u; /* FNV-1a */
    for (const unsigned char *c = (const unsigned char *)name; *c; c++)
        x = (x ^ *c) * 16777619u;
    return x;
}

static bool grow(vd_pool *p)
{
    size_t n = p->nbuckets ? 2 * p->nbuckets : 256;
    host **b = calloc(n, sizeof *b);
    if (!b) return false;
    for (size_t i = 0; i < p->nbuckets; i++)
        while (p->buckets[i]) {
            host *h = p->buckets[i];
            p->buckets[i] = h->next;
            size_t j = name_hash(h->name) & (n - 1);
            h->next = b[j];
            b[j] = h;
        }
    free(p->buckets);
    p->buckets = b;
    p->nbuckets = n;
    return true;
}

static host *host_get(vd_pool *p, const char *name)
{
    if (p->nbuckets) {
        for (host *h = p->buckets[name_hash(name) & (p->nbuckets - 1)]; h; h = h->next)
            if (strcmp(h->name, name) == 0) return h;
    }
    if ((p->nhosts >= p->nbuckets) && !grow(p)) return NULL;
    host *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    snprintf(h->name, sizeof h->name, "%s", name);
    size_t i = name_hash(name) & (p->nbuckets - 1);
    h->next = p->buckets[i];
    p->buckets[i] = h;
    p->nhosts++;
    return h;
}

static host *host_find(const vd_pool *p, const char *name)
{
    if (!p->nbuckets) return NULL;
    for (host *h = p->buckets[name_hash(name) & (p->nbuckets - 1)]; h; h = h->next)
        if (strcmp(h->name, name) == 0) return h;
    return NULL;
}

bool vd_pool_has_idle(const vd_pool *p, const vd_mx_result *mx)
{
    for (size_t i = 0; mx && i < mx->nhosts; i++) {
        const host *h = host_find(p, mx->hosts[i].name);
        for (const psess *ps = h ? h->sessions : NULL; ps; ps = ps->next)
            if (ps->ready && !ps->leased && !ps->req && !ps->broken && vd_smtp_usable(ps->s))
                return true;
        for (size_t k = 0; k < mx->hosts[i].naddrs; k++) {
            char a[64];
            addr_text(&mx->hosts[i].addrs[k], a, sizeof a);
            if (idle_at(p, a)) return true;
        }
    }
    return false;
}

/* Forgets hosts with no sessions, no waiters and no dead mark, so that a long run over many
 * domains does not keep one entry per MX host ever seen. Only called from
 * vd_pool_acquire(), where no pool frame holds a host pointer across user code. */
static void sweep_hosts(vd_pool *p)
{
    int64_t now = vd_now_mono_ms();
    for (size_t i = 0; i < p->nbuckets; i++)
        for (host **hp = &p->buckets[i]; *hp;) {
            host *h = *hp;
            if (!h->sessions && !h->wait_head && h->dead_until_ms <= now) {
                *hp = h->next;
                free(h);
                p->nhosts--;
            } else {
                hp = &h->next;
            }
        }
    p->sweep_at = 2 * p->nhosts + 1024;
}

static void unlink_session(psess *ps)
{
    addr_unlink(ps);
    for (psess **pp = &ps->h->sessions; *pp; pp = &(*pp)->next)
        if (*pp == ps) {
            *pp = ps->next;
            break;
        }
    ps->h->nsessions--;
}

static void op_clear(psess *ps)
{
    free(ps->op_to);
    free(ps->op_from);
    ps->op_to = ps->op_from = NULL;
    ps->op_cb = NULL;
    ps->op_arg = NULL;
    ps->op_rcpt = false;
}

static void wake_first_waiter(host *h)
{
    vd_pool_req *r = h->wait_head;
    if (!r) return;
    h->wait_head = r->wait_next;
    if (!h->wait_head) h->wait_tail = NULL;
    r->wait_next = NULL;
    r->queued_on = NULL;
    struct timeval tv = {0, 0};
    evtimer_add(r->wake, &tv);
}

/* A woken request that ends up not taking a slot of h (served by a session opened for another
 * name on the same server, or gone to the next host) passes its wake on: h's waiters are woken
 * only by h's own sessions ending, so a wake that is not used would leave them waiting forever. */
static void pass_wake(vd_pool *p, host *h)
{
    if (h->wait_head && h->nsessions < p->o.per_mx_sessions) wake_first_waiter(h);
}

/* Closes a session (QUIT when it can still talk) and frees its slot. */
static void retire(psess *ps)
{
    host *h = ps->h;
    unlink_session(ps);
    if (ps->s) vd_smtp_quit(ps->s); /* frees the session on the loop; no callback after this */
    if (ps->idle_timer) event_free(ps->idle_timer);
    op_clear(ps);
    free(ps);
    wake_first_waiter(h);
}

static void on_idle_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    retire(arg);
}

static psess *session_new(vd_pool *p, host *h)
{
    psess *ps = calloc(1, sizeof *ps);
    if (!ps) return NULL;
    ps->p = p;
    ps->h = h;
    ps->lease.ps = ps;
    ps->idle_timer = evtimer_new(p->base, on_idle_timeout, ps);
    if (!ps->idle_timer) {
        free(ps);
        return NULL;
    }
    ps->next = h->sessions;
    h->sessions = ps;
    h->nsessions++;
    return ps;
}

/* ---- requests ---------------------------------------------------------------------- */

static void req_unlink(vd_pool_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else if (r->p->reqs == r)
        r->p->reqs = r->next;
    if (r->next) r->next->prev = r->prev;
    r->next = r->prev = NULL;
    if (r->queued_on) {
        host *h = r->queued_on;
        vd_pool_req *prev = NULL;
        for (vd_pool_req *q = h->wait_head; q; prev = q, q = q->wait_next)
            if (q == r) {
                if (prev)
                    prev->wait_next = q->wait_next;
                else
                    h->wait_head = q->wait_next;
                if (h->wait_tail == q) h->wait_tail = prev;
                break;
            }
        r->queued_on = NULL;
    }
}

static void req_free(vd_pool_req *r)
{
    for (size_t i = 0; i < r->nhosts; i++)
        free(r->hosts[i].addrs);
    free(r->hosts);
    if (r->wake) event_free(r->wake);
    free(r->rtext);
    free(r);
}

/* Calls the request's callback once and frees it. */
static void complete(vd_pool_req *r, psess *ps)
{
    req_unlink(r);
    if (r->done) *r->done = true;
    vd_pool_result res = {.err = ps ? VD_SMTP_OK : r->err, .attempts = r->attempts};
    vd_smtp_reply rep = {.code = r->rcode, .text = r->rtext ? r->rtext : ""};
    memcpy(rep.enhanced, r->renhanced, sizeof rep.enhanced);
    if (!ps && r->have_reply) res.reply = &rep;
    if (ps) {
        /* the name this request asked for (the session may have been opened for another name
         * of the same server) */
        const char *name = r->host_i < r->nhosts ? r->hosts[r->host_i].name : ps->h->name;
        snprintf(ps->lease_mx, sizeof ps->lease_mx, "%s", name);
        res.mx = ps->lease_mx;
    } else if (r->nhosts)
        res.mx = r->hosts[r->host_i < r->nhosts ? r->host_i : r->nhosts - 1].name;
    res.errmsg = ps ? NULL : r->errmsg;
    if (!ps && res.err == VD_SMTP_OK) {
        res.err = VD_SMTP_ERR_CONNECT;
        snprintf(r->errmsg, sizeof r->errmsg, "no usable MX host");
    }
    vd_pool_cb cb = r->cb;
    void *arg = r->arg;
    if (ps) {
        ps->leased = true;
        ps->req = NULL;
        evtimer_del(ps->idle_timer);
    }
    /* Keep r (its strings back res) alive through the callback. */
    cb(ps ? &ps->lease : NULL, &res, arg);
    req_free(r);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    vd_pool_req *r = arg;
    (void)fd;
    (void)what;
    if (r->handoff) {
        psess *ps = r->handoff;
        r->handoff = NULL;
        if (ps->broken || !vd_smtp_usable(ps->s)) {
            /* closed by the server between its release and now (e.g. Postfix's 421 after
             * too many errors): drop it and find r another session */
            ps->req = NULL;
            retire(ps);
            advance(r);
            return;
        }
        complete(r, ps);
        return;
    }
    advance(r);
}

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

/* The pool's smtp options for a session to h (SNI and the trace's MX = the MX host name). */
static vd_smtp_opts smtp_opts(vd_pool *p, host *h)
{
    vd_smtp_opts o = p->o.smtp;
    o.helo = p->helo;
    o.tls_sni = h->name;
    o.trace_mx = h->name;
    return o;
}

/* Continues r from (host_i, addr_i): lease an idle session, open one, queue, or fail. */
static void advance(vd_pool_req *r)
{
    vd_pool *p = r->p;
    while (r->host_i < r->nhosts) {
        vd_mx_host *mh = &r->hosts[r->host_i];
        host *h = host_get(p, mh->name);
        if (!h) {
            r->err = VD_SMTP_ERR_CONNECT;
            snprintf(r->errmsg, sizeof r->errmsg, "out of memory");
            break;
        }
        if (r->addr_i == 0) {
            if (h->dead_until_ms > vd_now_mono_ms()) {
                if (!r->have_reply) {
                    r->err = VD_SMTP_ERR_CONNECT;
                    snprintf(r->errmsg, sizeof r->errmsg, "%s: skipped, failed to connect recently",
                             h->name);
                }
                goto next_host;
            }
            /* an idle session to this host */
            for (psess *ps = h->sessions; ps; ps = ps->next) {
                if (!ps->ready || ps->leased || ps->req) continue;
                if (!vd_smtp_usable(ps->s) || ps->broken) {
                    retire(ps); /* closed by the server while idle */
                    advance(r);
                    return;
                }
                complete(r, ps);
                return;
            }
        }
        if (r->addr_i < mh->naddrs) { /* a session to this server opened for another name */
            char a[64];
            addr_text(&mh->addrs[r->addr_i], a, sizeof a);
            psess *ps = idle_at(p, a);
            if (ps) {
                pass_wake(p, h); /* r leaves h's slot to the next waiter */
                complete(r, ps);
                return;
            }
        }
        if (r->addr_i >= mh->naddrs) {
            if (mh->naddrs == 0 && !r->have_reply) {
                r->err = VD_SMTP_ERR_CONNECT;
                snprintf(r->errmsg, sizeof r->errmsg, "%s: no address", mh->name);
            }
            goto next_host;
        }
        if (h->nsessions >= p->o.per_mx_sessions) {
            r->queued_on = h;
            if (h->wait_tail)
                h->wait_tail->wait_next = r;
            else
                h->wait_head = r;
            h->wait_tail = r;
            return;
        }
        psess *ps = session_new(p, h);
        if (!ps) {
            r->err = VD_SMTP_ERR_CONNECT;
            snprintf(r->errmsg, sizeof r->errmsg, "out of memory");
            break;
        }
        struct sockaddr_storage ss = mh->addrs[r->addr_i];
        set_port(&ss, p->o.port);
        socklen_t len =
            ss.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        vd_smtp_opts o = smtp_opts(p, h);
        ps->req = r;
        r->opening = ps;
        r->attempts++;
        addr_link(ps, &ss);
        ps->s = vd_smtp_open(p->base, (struct sockaddr *)&ss, len, &o, on_open, ps);
        if (ps->s) return; /* on_open continues */
        ps->req = NULL;
        r->opening = NULL;
        retire(ps);
        r->err = VD_SMTP_ERR_CONNECT;
        snprintf(r->errmsg, sizeof r->errmsg, "%s: cannot start a connection", mh->name);
        r->addr_i++;
        continue;
    next_host:
        pass_wake(p, h);
        r->host_i++;
        r->addr_i = 0;
    }
    complete(r, NULL);
}

static void on_open(vd_smtp *s, const vd_smtp_reply *rep, void *arg)
{
    psess *ps = arg;
    vd_pool_req *r = ps->req;
    (void)s;
    if (r) r->opening = NULL;
    if (rep->err == VD_SMTP_OK && rep->code == 250) {
        ps->ready = true;
        if (r) {
            complete(r, ps);
        } else {
            session_ready(ps); /* its request was cancelled: idle or to a waiter */
        }
        return;
    }
    host *h = ps->h;
    bool connect_failed = rep->err == VD_SMTP_ERR_CONNECT;
    /* rep's strings live in the session, which QUIT (retire) resets: keep them first (a 421
     * banner's text is what tells a connection limit from a block) */
    char *text = rep->err == VD_SMTP_OK && r ? strdup(rep->text) : NULL;
    char errmsg[300];
    snprintf(errmsg, sizeof errmsg, "%s", rep->errmsg ? rep->errmsg : "");
    ps->req = NULL;
    retire(ps); /* QUITs a server that refused us */
    if (!r) return;
    if (rep->err == VD_SMTP_OK) {
        /* answered but refused (banner 554/421, EHLO/HELO rejected): the next host */
        r->have_reply = true;
        r->rcode = rep->code;
        memcpy(r->renhanced, rep->enhanced, sizeof r->renhanced);
        free(r->rtext);
        r->rtext = text;
        r->err = VD_SMTP_ERR_CLOSED;
        snprintf(r->errmsg, sizeof r->errmsg, "%s refused the session: %d", h->name, rep->code);
        r->host_i++;
        r->addr_i = 0;
    } else if (connect_failed) {
        r->have_reply = false;
        r->err = rep->err;
        snprintf(r->errmsg, sizeof r->errmsg, "%s: %.300s", h->name,
                 errmsg[0] ? errmsg : "connect failed");
        r->addr_i++;
        if (r->addr_i >= r->hosts[r->host_i].naddrs) {
            h->dead_until_ms = vd_now_mono_ms() + r->p->o.dead_host_ms;
            r->host_i++;
            r->addr_i = 0;
        }
    } else {
        r->have_reply = false;
        r->err = rep->err;
        snprintf(r->errmsg, sizeof r->errmsg, "%s: %.300s", h->name,
                 errmsg[0] ? errmsg : vd_smtp_err_name(rep->err));
        r->host_i++;
        r->addr_i = 0;
    }
    advance(r);
}

/* A session with no lease: give it to the first waiter, or park it idle. */
static void session_ready(psess *ps)
{
    host *h = ps->h;
    vd_pool_req *w = h->wait_head;
    if (w) {
        h->wait_head = w->wait_next;
        if (!h->wait_head) h->wait_tail = NULL;
        w->wait_next = NULL;
        w->queued_on = NULL;
        w->handoff = ps;
        ps->req = w; /* reserved */
        struct timeval tv = {0, 0};
        evtimer_add(w->wake, &tv);
        return;
    }
    struct timeval tv = {ps->p->o.idle_timeout_ms / 1000, (ps->p->o.idle_timeout_ms % 1000) * 1000};
    evtimer_add(ps->idle_timer, &tv);
}

/* ---- public: pool ------------------------------------------------------------------ */

vd_pool *vd_pool_new(struct event_base *base, const vd_pool_opts *opts)
{
    /* user options: required (their defaults are the caller's); pool limits: 0 = default */
    if (!base || !opts || !opts->smtp.helo || opts->smtp.connect_timeout_ms <= 0 ||
        opts->smtp.command_timeout_ms <= 0 || opts->port <= 0 || opts->port > 65535 ||
        opts->per_mx_sessions <= 0 || opts->rcpt_per_txn < 0 || opts->txn_per_session < 0 ||
        opts->idle_timeout_ms < 0 || opts->dead_host_ms < 0)
        return NULL;
    vd_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->base = base;
    p->o = *opts;
    p->helo = strdup(opts->smtp.helo);
    p->mail_from = strdup(opts->mail_from ? opts->mail_from : "");
    if (!p->helo || !p->mail_from) {
        free(p->helo);
        free(p->mail_from);
        free(p);
        return NULL;
    }
    p->o.smtp.helo = p->helo;
    p->o.mail_from = p->mail_from;
    p->o.smtp.tls_sni = NULL;  /* per host: smtp_opts */
    p->o.smtp.trace_mx = NULL; /* likewise */
    p->sweep_at = 1024;
    if (p->o.rcpt_per_txn == 0) p->o.rcpt_per_txn = VD_POOL_RCPT_PER_TXN;
    if (p->o.txn_per_session == 0) p->o.txn_per_session = VD_POOL_TXN_PER_SESSION;
    if (p->o.idle_timeout_ms == 0) p->o.idle_timeout_ms = VD_POOL_IDLE_TIMEOUT_MS;
    if (p->o.dead_host_ms == 0) p->o.dead_host_ms = VD_POOL_DEAD_HOST_MS;
    return p;
}

void vd_pool_free(vd_pool *p)
{
    if (!p) return;
    while (p->reqs) {
        vd_pool_req *r = p->reqs;
        p->reqs = r->next;
        req_free(r);
    }
    for (size_t i = 0; i < p->nbuckets; i++)
        while (p->buckets[i]) {
            host *h = p->buckets[i];
            p->buckets[i] = h->next;
            h->wait_head = NULL; /* requests are gone already */
            while (h->sessions) {
                psess *ps = h->sessions;
                h->sessions = ps->next;
                if (ps->s) vd_smtp_quit(ps->s);
                event_free(ps->idle_timer);
                op_clear(ps);
                free(ps);
            }
            free(h);
        }
    free(p->buckets);
    free(p->helo);
    free(p->mail_from);
    free(p);
}

vd_pool_req *vd_pool_acquire(vd_pool *p, const vd_mx_result *mx, vd_pool_cb cb, void *arg)
{
    if (!p || !mx || !cb) return NULL;
    vd_pool_req *r = calloc(1, sizeof *r);
    if (!r) goto oom;
    if (p->nhosts > p->sweep_at) sweep_hosts(p);
    r->p = p;
    r->cb = cb;
    r->arg = arg;
    r->wake = evtimer_new(p->base, on_wake, r);
    r->hosts = mx->nhosts ? calloc(mx->nhosts, sizeof *r->hosts) : NULL;
    if (!r->wake || (mx->nhosts && !r->hosts)) goto oom;
    for (size_t i = 0; i < mx->nhosts; i++) {
        r->hosts[i] = mx->hosts[i];
        r->hosts[i].addrs = NULL;
        r->hosts[i].naddrs = 0;
        if (mx->hosts[i].naddrs) {
            r->hosts[i].addrs = malloc(mx->hosts[i].naddrs * sizeof *r->hosts[i].addrs);
            if (!r->hosts[i].addrs) goto oom;
            memcpy(r->hosts[i].addrs, mx->hosts[i].addrs,
                   mx->hosts[i].naddrs * sizeof *r->hosts[i].addrs);
            r->hosts[i].naddrs = mx->hosts[i].naddrs;
        }
        r->nhosts = i + 1;
    }
    r->nhosts = mx->nhosts;
    r->err = VD_SMTP_ERR_CONNECT;
    snprintf(r->errmsg, sizeof r->errmsg, "no MX host");
    r->next = p->reqs;
    if (p->reqs) p->reqs->prev = r;
    p->reqs = r;
    /* advance() may complete r (and free it) before returning */
    bool done = false;
    r->done = &done;
    advance(r);
    if (done) return NULL;
    r->done = NULL;
    return r;
oom:
    if (r) req_free(r);
    {
        vd_pool_result res = {.err = VD_SMTP_ERR_CONNECT, .errmsg = "out of memory"};
        cb(NULL, &res, arg);
    }
    return NULL;
}

void vd_pool_cancel(vd_pool_req *r)
{
    if (!r) return;
    req_unlink(r);
    /* a session being opened for r stays: it becomes idle (or serves a waiter) */
    if (r->opening) r->opening->req = NULL;
    if (r->handoff) {
        psess *ps = r->handoff;
        r->handoff = NULL;
        ps->req = NULL;
        session_ready(ps);
    }
    req_free(r);
}

/* ---- public: leases ---------------------------------------------------------------- */

static void op_done(psess *ps, vd_smtp *s, const vd_smtp_reply *rep)
{
    vd_smtp_cb cb = ps->op_cb;
    void *arg = ps->op_arg;
    op_clear(ps);
    if (cb) cb(s, rep, arg);
}

/* Notes a reply that ended the session (smtp.h decides which do): never reuse it. Returns
 * whether the command failed (no reply, or not 2xx). */
static bool failed(psess *ps, const vd_smtp_reply *rep)
{
    if (vd_smtp_reply_ends_session(rep)) ps->ended = ps->broken = true;
    return rep->err != VD_SMTP_OK || rep->code / 100 != 2;
}

static void on_rcpt(vd_smtp *s, const vd_smtp_reply *rep, void *arg)
{
    psess *ps = arg;
    failed(ps, rep);
    if (rep->err == VD_SMTP_OK) ps->rcpts++, ps->total_rcpts++;
    op_done(ps, s, rep);
}

static void on_mail(vd_smtp *s, const vd_smtp_reply *rep, void *arg)
{
    psess *ps = arg;
    if (failed(ps, rep)) {
        /* a refused MAIL (4xx rate limits, 5xx policy) will be refused again */
        if (rep->err == VD_SMTP_OK) ps->broken = true;
        op_done(ps, s, rep);
        return;
    }
    ps->in_txn = true;
    ps->rcpts = 0;
    ps->txns++;
    if (ps->op_rcpt) {
        vd_smtp_rcpt(ps->s, ps->op_to, on_rcpt, ps);
        return;
    }
    op_done(ps, s, rep);
}

static void send_mail(psess *ps)
{
    vd_smtp_mail(ps->s, ps->op_from ? ps->op_from : ps->p->mail_from, on_mail, ps);
}

static void on_rset(vd_smtp *s, const vd_smtp_reply *rep, void *arg)
{
    psess *ps = arg;
    if (failed(ps, rep)) {
        ps->broken = true;
        op_done(ps, s, rep);
        return;
    }
    ps->in_txn = false;
    ps->rcpts = 0;
    if (ps->op_rcpt || ps->op_from) {
        send_mail(ps);
        return;
    }
    op_done(ps, s, rep);
}

static bool op_start(vd_lease *l, vd_smtp_cb cb, void *arg)
{
    if (!l || !l->ps || !cb) return false;
    psess *ps = l->ps;
    if (ps->op_cb) {
        vd_smtp_reply rep = {
            .err = VD_SMTP_ERR_BUSY, .text = "", .errmsg = "a command is in flight on this lease"};
        cb(ps->s, &rep, arg);
        return false;
    }
    ps->op_cb = cb;
    ps->op_arg = arg;
    return true;
}

static void op_invalid(psess *ps, const char *what)
{
    vd_smtp_reply rep = {.err = VD_SMTP_ERR_INVALID, .text = "", .errmsg = what};
    op_done(ps, ps->s, &rep);
}

/* RSET first when a transaction is open; on_rset then sends MAIL (and the pending RCPT). */
static void end_txn_then_mail(psess *ps)
{
    if (ps->in_txn)
        vd_smtp_rset(ps->s, on_rset, ps);
    else
        send_mail(ps);
}

void vd_lease_rcpt(vd_lease *l, const char *to, vd_smtp_cb cb, void *arg)
{
    if (!op_start(l, cb, arg)) return;
    psess *ps = l->ps;
    /* checked here too so that an unusable address never opens a transaction */
    if (!to || !vd_address_wire_safe(to, false)) {
        op_invalid(ps, "argument is not a wire-safe address");
        return;
    }
    if (ps->in_txn && ps->rcpts < ps->p->o.rcpt_per_txn) {
        vd_smtp_rcpt(ps->s, to, on_rcpt, ps);
        return;
    }
    ps->op_rcpt = true;
    ps->op_to = strdup(to);
    if (!ps->op_to) {
        op_invalid(ps, "out of memory");
        return;
    }
    end_txn_then_mail(ps);
}

void vd_lease_mail(vd_lease *l, const char *from, vd_smtp_cb cb, void *arg)
{
    if (!op_start(l, cb, arg)) return;
    psess *ps = l->ps;
    if (!from || !vd_address_wire_safe(from, true)) {
        op_invalid(ps, "argument is not a wire-safe address");
        return;
    }
    ps->op_rcpt = false;
    ps->op_from = strdup(from);
    if (!ps->op_from) {
        op_invalid(ps, "out of memory");
        return;
    }
    end_txn_then_mail(ps);
}

void vd_lease_rset(vd_lease *l, vd_smtp_cb cb, void *arg)
{
    if (!op_start(l, cb, arg)) return;
    l->ps->op_rcpt = false;
    vd_smtp_rset(l->ps->s, on_rset, l->ps);
}

const char *vd_lease_mx(const vd_lease *l)
{
    if (!l || !l->ps) return NULL;
    return l->ps->lease_mx[0] ? l->ps->lease_mx : l->ps->h->name;
}

bool vd_lease_tls(const vd_lease *l)
{
    return l && l->ps && vd_smtp_tls(l->ps->s);
}

bool vd_lease_tls_verified(const vd_lease *l)
{
    return l && l->ps && vd_smtp_tls_verified(l->ps->s);
}

int vd_lease_rcpts(const vd_lease *l)
{
    return l && l->ps ? l->ps->total_rcpts : 0;
}

bool vd_lease_fresh(const vd_lease *l)
{
    return l && l->ps && l->ps->total_rcpts == 0 && l->ps->txns == 0 && !l->ps->in_txn;
}

bool vd_lease_usable(const vd_lease *l)
{
    return l && l->ps && !l->ps->ended && !l->ps->op_cb && vd_smtp_usable(l->ps->s);
}

bool vd_lease_release(vd_lease *l, bool reusable)
{
    if (!l || !l->ps) return false;
    psess *ps = l->ps;
    ps->leased = false;
    bool full = !ps->in_txn || ps->rcpts >= ps->p->o.rcpt_per_txn;
    if (!reusable || ps->broken || ps->ended || ps->op_cb || !vd_smtp_usable(ps->s) ||
        (ps->txns >= ps->p->o.txn_per_session && full)) {
        retire(ps);
        return true;
    }
    session_ready(ps);
    return false;
}

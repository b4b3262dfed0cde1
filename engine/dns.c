/* dns.c — asynchronous DNS for the engine: c-ares on the libevent loop, and one
 * cache.
 *
 * Owns: the c-ares channel, driven the pgbouncer way (ARES_OPT_SOCK_STATE_CB,
 * one persistent event per socket c-ares opens, one timer re-armed from
 * ares_timeout() after every pass, timeouts always processed); a small DNS wire
 * parser for answers (TTLs of every type, CNAME chains, the SOA minimum of
 * negative answers), vd_dns_parse_answer: pure, and declared in dns.h for the
 * fuzzer and the unit tests; the cache of (type, name) entries that coalesces
 * concurrent lookups and expires by TTL; MX resolution per RFC 5321 §5.1 and
 * RFC 7505 on top of it.
 * Does not own: what an answer means for an address's verdict (engine.c
 * decides).
 *
 * Shape: a public request (vd_dns_req) holds one or more waiters; a waiter sits
 * on a cache entry until the entry has its answer, then copies what it needs
 * into the request. The request calls its callback once nothing it waits on is
 * outstanding. Entries are refcounted: one reference for being in the cache,
 * one while a query is in flight, one while a cache hit is being delivered.
 * Callbacks must not call vd_dns_free. */
#include "clock.h"
#include "dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Cache policy. Positive answers live their TTL within [TTL_MIN, TTL_MAX];
 * NXDOMAIN and NODATA live the SOA's negative TTL (RFC 2308) up to NEG_TTL_MAX,
 * or NEG_TTL_NOSOA without a SOA; failures (SERVFAIL, timeout, errors) only
 * FAIL_TTL so a flapping server is not hammered but a recovered one is seen
 * soon. */
#define TTL_MIN       1
#define TTL_MAX       3600
#define NEG_TTL_MAX   300
#define NEG_TTL_NOSOA 5
#define FAIL_TTL      2
#define CACHE_MAX     100000
#define CNAME_MAX     8 /* CNAMEs followed, in an answer and across re-queries together */

#define T_A_     1
#define T_CNAME_ 5
#define T_SOA_   6
#define T_PTR_   12
#define T_MX_    15
#define T_TXT_   16
#define T_AAAA_  28

typedef struct centry centry;
typedef struct waiter waiter;
typedef void (*waiter_fn)(waiter *w, const centry *e);

struct centry {
    vd_dns *d;
    centry *hnext;               /* hash chain */
    centry *lru_prev, *lru_next; /* cached entries, most recently used first */
    waiter *waiters;
    unsigned refs;
    bool pending, hashed;
    uint16_t type;
    double expires; /* monotonic seconds */
    uint32_t hash;
    char name[256];    /* key: lower-case, no trailing dot */
    char qname[256];   /* name asked now (the end of the CNAME chain so far) */
    vd_dns_answer ans; /* the answer, and the CNAME chain followed so far */
};

struct waiter {
    waiter *prev, *next;
    centry *e; /* entry waited on; NULL when not attached */
    waiter_fn fn;
    vd_dns_req *req;
};

/* One A or AAAA lookup a request waits for, with a copy of its answer. */
typedef struct addr_part {
    waiter w;
    vd_dns_status status;
    uint32_t ttl;
    size_t n;
    struct sockaddr_storage *addrs;
    char error[128];
} addr_part;

enum req_kind { RK_MX, RK_RECORDS, RK_ADDRS };

struct vd_dns_req {
    vd_dns *d;
    vd_dns_req *prev, *next; /* all outstanding requests, for vd_dns_free */
    enum req_kind kind;
    bool finishing;
    union {
        vd_dns_mx_cb mx;
        vd_dns_records_cb rec;
        vd_dns_addrs_cb addrs;
    } cb;
    void *arg;
    int pending; /* waiters outstanding, plus one while the request is being set
                    up */
    char domain[256];
    waiter main; /* the MX / TXT / PTR lookup */
    vd_mx_result mx;
    vd_dns_records rec;
    addr_part *parts; /* MX: two per host (A, AAAA); addrs: two */
    size_t nparts;
};

typedef struct sockev {
    struct sockev *next;
    ares_socket_t fd;
    short what;
    struct event *ev;
    vd_dns *d;
} sockev;

struct vd_dns {
    struct event_base *base;
    ares_channel ch;
    struct event *timer;
    sockev *socks;
    vd_dns_req *reqs;
    bool no_cache, destroying;
    bool in_pass; /* inside ares_process_fd: the timer is re-armed once at the end */
    centry **table;
    size_t nbuckets, count;
    centry *lru_head, *lru_tail;
    size_t queries_sent, cache_hits;
    size_t answered, unanswered; /* vd_dns_reach */
    void (*unreachable)(const char *why, void *arg);
    void *unreachable_arg;
};

const char *vd_dns_status_name(vd_dns_status s)
{
    switch (s) {
    case VD_DNS_OK:
        return "ok";
    case VD_DNS_NXDOMAIN:
        return "nxdomain";
    case VD_DNS_NODATA:
        return "nodata";
    case VD_DNS_SERVFAIL:
        return "servfail";
    case VD_DNS_TIMEOUT:
        return "timeout";
    case VD_DNS_ERROR:
        return "error";
    }
    return "error";
}

static uint32_t clamp_u32(uint32_t v, uint32_t lo, uint32_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Lower-cases NAME into OUT without a trailing dot; false when it cannot be a
 * DNS name. */
static bool name_normalise(const char *name, char out[256])
{
    size_t len = name ? strlen(name) : 0;
    if (len && name[len - 1] == '.') len--;
    if (len == 0 || len > 253) return false;
    for (size_t i = 0; i < len; i++)
        out[i] = (char)tolower((unsigned char)name[i]);
    out[len] = '\0';
    return true;
}

/* ---- the libevent side of c-ares ---- */

static void timer_rearm(vd_dns *d)
{
    struct timeval tv, *tvp = ares_timeout(d->ch, NULL, &tv);
    if (tvp)
        evtimer_add(d->timer, tvp);
    else
        evtimer_del(d->timer);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    vd_dns *d = arg;
    d->in_pass = true;
    ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    d->in_pass = false;
    timer_rearm(d);
}

static void on_sock(evutil_socket_t fd, short what, void *arg)
{
    vd_dns *d = ((sockev *)arg)->d; /* the sockev may be freed inside ares_process_fd */
    d->in_pass = true;
    ares_process_fd(d->ch, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    d->in_pass = false;
    timer_rearm(d);
}

static void sockev_free(sockev *s)
{
    if (s->ev) event_free(s->ev);
    free(s);
}

/* c-ares says which sockets it has and what it waits for on each. */
static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    vd_dns *d = data;
    sockev **pp = &d->socks, *s;
    while ((s = *pp) && s->fd != fd)
        pp = &s->next;
    if (!readable && !writable) {
        if (s) {
            *pp = s->next;
            sockev_free(s);
        }
        return;
    }
    short what = (short)(EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return; /* the query will time out; nothing better to do */
        s->fd = fd;
        s->d = d;
        s->next = d->socks;
        d->socks = s;
    }
    if (s->ev && s->what == what) return;
    if (s->ev) event_free(s->ev);
    s->what = what;
    s->ev = event_new(d->base, fd, what, on_sock, s);
    if (s->ev) event_add(s->ev, NULL);
}

/* ---- cache entries ---- */

static uint32_t key_hash(uint16_t type, const char *name)
{
    uint32_t h = 2166136261u ^ type;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

void vd_dns_answer_clear(vd_dns_answer *a)
{
    free(a->addrs);
    free(a->mx);
    for (size_t i = 0; a->items && i < a->n; i++)
        free(a->items[i]);
    free(a->items);
    a->addrs = NULL;
    a->mx = NULL;
    a->items = NULL;
    a->n = 0;
}

static void entry_unref(centry *e)
{
    if (--e->refs) return;
    vd_dns_answer_clear(&e->ans);
    free(e);
}

static void lru_unlink(vd_dns *d, centry *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        d->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        d->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push(vd_dns *d, centry *e)
{
    e->lru_prev = NULL;
    e->lru_next = d->lru_head;
    if (d->lru_head) d->lru_head->lru_prev = e;
    d->lru_head = e;
    if (!d->lru_tail) d->lru_tail = e;
}

static centry *cache_find(vd_dns *d, uint16_t type, const char *name)
{
    uint32_t h = key_hash(type, name);
    for (centry *e = d->table[h & (d->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->type == type && strcmp(e->name, name) == 0) return e;
    return NULL;
}

static void cache_remove(vd_dns *d, centry *e)
{
    centry **pp = &d->table[e->hash & (d->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(d, e);
    e->hashed = false;
    d->count--;
    entry_unref(e);
}

static void cache_grow(vd_dns *d)
{
    size_t nb = d->nbuckets * 2;
    centry **t = calloc(nb, sizeof *t);
    if (!t) return; /* longer chains, still correct */
    for (size_t i = 0; i < d->nbuckets; i++) {
        centry *e = d->table[i], *next;
        for (; e; e = next) {
            next = e->hnext;
            e->hnext = t[e->hash & (nb - 1)];
            t[e->hash & (nb - 1)] = e;
        }
    }
    free(d->table);
    d->table = t;
    d->nbuckets = nb;
}

/* Drops least recently used entries nobody waits on until the cache is within
 * bounds. */
static void cache_evict(vd_dns *d)
{
    centry *e = d->lru_tail;
    while (d->count > CACHE_MAX && e) {
        centry *prev = e->lru_prev;
        if (!e->pending && e->refs == 1) cache_remove(d, e);
        e = prev;
    }
}

static void cache_insert(vd_dns *d, centry *e)
{
    if (d->count >= d->nbuckets) cache_grow(d);
    size_t b = e->hash & (d->nbuckets - 1);
    e->hnext = d->table[b];
    d->table[b] = e;
    e->hashed = true;
    e->refs++;
    d->count++;
    lru_push(d, e);
    if (d->count > CACHE_MAX) cache_evict(d);
}

static void waiter_attach(centry *e, waiter *w)
{
    /* Appended, so waiters are answered in the order they asked. */
    w->e = e;
    w->next = NULL;
    if (!e->waiters) {
        w->prev = w; /* the head's prev points at the tail */
        e->waiters = w;
    } else {
        waiter *tail = e->waiters->prev;
        w->prev = tail;
        tail->next = w;
        e->waiters->prev = w;
    }
}

static void waiter_detach(waiter *w)
{
    centry *e = w->e;
    if (!e) return;
    if (e->waiters == w) {
        e->waiters = w->next;
        if (w->next) w->next->prev = w->prev;
    } else {
        w->prev->next = w->next;
        if (w->next)
            w->next->prev = w->prev;
        else
            e->waiters->prev = w->prev;
    }
    w->e = NULL;
    w->prev = w->next = NULL;
}

/* ---- parsing answers: vd_dns_parse_answer, pure (no channel, no cache), so the fuzzer
 * and the unit tests call it on bytes of their own ---- */

typedef struct rrec {
    char owner[256];
    uint16_t type, cls;
    uint32_t ttl;
    const unsigned char *rd;
    uint16_t rdlen;
    bool authority;
} rrec;

/* Whether the name at P (which ares_expand_name read) is the root: its zero
 * byte, or a pointer to one. */
static bool wire_root(const unsigned char *p, const unsigned char *buf, int len)
{
    if (p[0] == 0) return true;
    if ((p[0] & 0xc0) != 0xc0 || buf + len - p < 2) return false;
    int off = (p[0] & 0x3f) << 8 | p[1];
    return off < len && buf[off] == 0;
}

/* Expands the (possibly compressed) name at P; false on a malformed name.
 * c-ares gives the presentation form without the root's dot, a '.' inside a
 * label escaped as "\.", but a label of one NUL byte as a raw NUL (1.18),
 * which cuts the string short. So a name that ends in a dot (a label ending in
 * one, or one cut after a NUL label) is refused, not read as another name with
 * the dot stripped, and "" is the root (a null MX target) only when the name on
 * the wire is the root. */
static bool expand(const unsigned char *p, const unsigned char *buf, int len, char out[256],
                   long *used)
{
    char *s = NULL;
    long enc = 0;
    if (p < buf || p >= buf + len) return false;
    if (ares_expand_name(p, buf, len, &s, &enc) != ARES_SUCCESS) return false;
    size_t sl = strlen(s);
    bool ok;
    if (sl == 0) {
        out[0] = '\0';
        ok = wire_root(p, buf, len);
    } else {
        ok = s[sl - 1] != '.' && name_normalise(s, out);
    }
    ares_free_string(s);
    if (used) *used = enc;
    return ok;
}

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Splits a reply into its answer and authority records (additional ones are not
 * used). */
static bool msg_parse(const unsigned char *buf, int len, int *rcode, rrec **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    if (len < 12) return false;
    *rcode = buf[3] & 0x0f;
    unsigned qd = get16(buf + 4), an = get16(buf + 6), ns = get16(buf + 8);
    const unsigned char *p = buf + 12, *end = buf + len;
    char tmp[256];
    long used;
    for (unsigned i = 0; i < qd; i++) {
        if (!expand(p, buf, len, tmp, &used) || end - (p + used) < 4) return false;
        p += used + 4;
    }
    size_t total = (size_t)an + ns;
    if (total == 0) return true;
    rrec *rr = calloc(total, sizeof *rr);
    if (!rr) return false;
    size_t n = 0;
    for (; n < total; n++) {
        rrec *r = &rr[n];
        if (!expand(p, buf, len, r->owner, &used) || end - (p + used) < 10) break;
        p += used;
        r->type = get16(p);
        r->cls = get16(p + 2);
        r->ttl = get32(p + 4);
        if (r->ttl > 0x7fffffffu) r->ttl = 0; /* RFC 2181 §8 */
        r->rdlen = get16(p + 8);
        p += 10;
        if (end - p < r->rdlen) break;
        r->rd = p;
        r->authority = n >= an;
        p += r->rdlen;
    }
    if (n < total) {
        free(rr);
        return false;
    }
    *out = rr;
    *nout = n;
    return true;
}

__attribute__((format(printf, 3, 4))) static void set_error(vd_dns_answer *a, vd_dns_status st,
                                                            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    a->status = st;
    vsnprintf(a->error, sizeof a->error, fmt, ap);
    va_end(ap);
}

/* Negative-answer TTL from the authority section's SOA (RFC 2308 §5). */
static uint32_t negative_ttl(const unsigned char *buf, int len, const rrec *rr, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!rr[i].authority || rr[i].type != T_SOA_) continue;
        char tmp[256];
        long a, b;
        const unsigned char *p = rr[i].rd, *end = rr[i].rd + rr[i].rdlen;
        if (!expand(p, buf, len, tmp, &a) || !expand(p + a, buf, len, tmp, &b)) break;
        p += a + b;
        if (end - p < 20) break;
        uint32_t min = get32(p + 16), ttl = rr[i].ttl < min ? rr[i].ttl : min;
        return clamp_u32(ttl, TTL_MIN, NEG_TTL_MAX);
    }
    return NEG_TTL_NOSOA;
}

/* Copies the records of TYPE owned by NAME out of the answer into A. */
static bool take_records(vd_dns_answer *a, uint16_t type, const unsigned char *buf, int len,
                         const rrec *rr, size_t n, const char *name, uint32_t *ttl)
{
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++)
        if (!rr[i].authority && rr[i].type == type && rr[i].cls == ns_c_in &&
            strcmp(rr[i].owner, name) == 0)
            cnt++;
    if (cnt == 0) return true;
    if (type == T_A_ || type == T_AAAA_)
        a->addrs = calloc(cnt, sizeof *a->addrs);
    else if (type == T_MX_)
        a->mx = calloc(cnt, sizeof *a->mx);
    else
        a->items = calloc(cnt, sizeof *a->items);
    if (!a->addrs && !a->mx && !a->items) return false;
    for (size_t i = 0; i < n; i++) {
        const rrec *r = &rr[i];
        if (r->authority || r->type != type || r->cls != ns_c_in || strcmp(r->owner, name))
            continue;
        if (type == T_A_ && r->rdlen == 4) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&a->addrs[a->n];
            sin->sin_family = AF_INET;
            memcpy(&sin->sin_addr, r->rd, 4);
        } else if (type == T_AAAA_ && r->rdlen == 16) {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->addrs[a->n];
            sin6->sin6_family = AF_INET6;
            memcpy(&sin6->sin6_addr, r->rd, 16);
        } else if (type == T_MX_ && r->rdlen >= 3) {
            a->mx[a->n].pref = get16(r->rd);
            if (!expand(r->rd + 2, buf, len, a->mx[a->n].name, NULL)) continue;
        } else if (type == T_PTR_) {
            char host[256];
            if (!expand(r->rd, buf, len, host, NULL) || !(a->items[a->n] = strdup(host))) continue;
        } else if (type == T_TXT_) {
            /* One string per record, its character-strings joined. */
            char *s = malloc((size_t)r->rdlen + 1);
            size_t sl = 0;
            if (!s) continue;
            for (const unsigned char *p = r->rd, *end = r->rd + r->rdlen; p < end;) {
                size_t cl = *p++;
                if (cl > (size_t)(end - p)) cl = (size_t)(end - p);
                memcpy(s + sl, p, cl);
                sl += cl;
                p += cl;
            }
            s[sl] = '\0';
            a->items[a->n] = s;
        } else {
            continue; /* malformed record: skipped */
        }
        if (r->ttl < *ttl) *ttl = r->ttl;
        a->n++;
    }
    /* None usable: no array either, or the next take (a CNAME's target in this answer or
     * the next one) would allocate over it. */
    if (a->n == 0) vd_dns_answer_clear(a);
    return true;
}

/* Fills A from a reply (dns.h). An authoritative server for another zone does
 * not resolve a CNAME to it: then the answer ends in that CNAME, and NEXT names
 * its target to ask for next. */
bool vd_dns_parse_answer(vd_dns_answer *a, uint16_t type, const char *qname, int status,
                         const unsigned char *buf, int len, char next[256])
{
    a->status = VD_DNS_OK;
    a->error[0] = '\0';
    uint32_t ttl = a->chain_ttl;
    switch (status) {
    case ARES_SUCCESS:
    case ARES_ENODATA:
    case ARES_ENOTFOUND:
        if (buf && len > 0) break;
        a->status = status == ARES_ENOTFOUND ? VD_DNS_NXDOMAIN : VD_DNS_NODATA;
        a->ttl = NEG_TTL_NOSOA;
        return false;
    case ARES_ESERVFAIL:
        set_error(a, VD_DNS_SERVFAIL, "server failure (SERVFAIL)");
        a->ttl = FAIL_TTL;
        return false;
    case ARES_EREFUSED:
        set_error(a, VD_DNS_SERVFAIL, "query refused (REFUSED)");
        a->ttl = FAIL_TTL;
        return false;
    case ARES_ECONNREFUSED:
        set_error(a, VD_DNS_SERVFAIL, "no DNS server reachable (connection refused)");
        a->ttl = FAIL_TTL;
        return false;
    case ARES_ETIMEOUT:
        set_error(a, VD_DNS_TIMEOUT, "%s", ares_strerror(status));
        a->ttl = FAIL_TTL;
        return false;
    default:
        set_error(a, VD_DNS_ERROR, "%s", ares_strerror(status));
        a->ttl = FAIL_TTL;
        return false;
    }

    int rcode = 0;
    rrec *rr;
    size_t n;
    if (!msg_parse(buf, len, &rcode, &rr, &n)) {
        set_error(a, VD_DNS_ERROR, "%s", "malformed reply");
        a->ttl = FAIL_TTL;
        return false;
    }
    bool follow = false;
    if (rcode == ns_r_servfail || rcode == ns_r_refused) {
        set_error(a, VD_DNS_SERVFAIL, "%s", rcode == ns_r_refused ? "refused" : "server failure");
        a->ttl = FAIL_TTL;
    } else if (rcode != ns_r_noerror && rcode != ns_r_nxdomain) {
        set_error(a, VD_DNS_ERROR, "rcode %d", rcode);
        a->ttl = FAIL_TTL;
    } else {
        /* Walk the CNAME chain from the name asked; take the records at its end. */
        char cur[256];
        snprintf(cur, sizeof cur, "%s", qname);
        if (!take_records(a, type, buf, len, rr, n, cur, &ttl)) {
            set_error(a, VD_DNS_ERROR, "%s", "out of memory");
        } else {
            while (a->n == 0 && type != T_CNAME_) {
                size_t i = 0;
                while (i < n &&
                       (rr[i].authority || rr[i].type != T_CNAME_ || strcmp(rr[i].owner, cur) != 0))
                    i++;
                if (i == n) break;
                if (++a->cname_depth > CNAME_MAX || !expand(rr[i].rd, buf, len, cur, NULL) ||
                    !cur[0]) {
                    set_error(a, VD_DNS_ERROR, "%s", "CNAME chain too long or broken");
                    break;
                }
                if (rr[i].ttl < ttl) ttl = rr[i].ttl;
                if (!take_records(a, type, buf, len, rr, n, cur, &ttl)) {
                    set_error(a, VD_DNS_ERROR, "%s", "out of memory");
                    break;
                }
            }
            if (a->status != VD_DNS_OK) {
                a->ttl = FAIL_TTL;
            } else if (a->n) {
                a->ttl = clamp_u32(ttl, TTL_MIN, TTL_MAX);
            } else if (rcode == ns_r_noerror && strcmp(cur, qname) != 0) {
                /* Dangling CNAME: ask for its target ourselves. */
                a->chain_ttl = ttl;
                snprintf(next, 256, "%s", cur);
                follow = true;
            } else {
                a->status = rcode == ns_r_nxdomain ? VD_DNS_NXDOMAIN : VD_DNS_NODATA;
                uint32_t neg = negative_ttl(buf, len, rr, n);
                a->ttl = neg < ttl ? neg : clamp_u32(ttl, TTL_MIN, NEG_TTL_MAX);
            }
        }
    }
    free(rr);
    return follow;
}

static void entry_query(vd_dns *d, centry *e);

static void entry_deliver(centry *e)
{
    /* Waiters only ever leave this list from here or by cancellation, and the
     * entry is no longer pending so nobody joins it: taking the head each time is
     * safe. */
    waiter *w;
    while ((w = e->waiters)) {
        waiter_detach(w);
        w->fn(w, e);
    }
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    centry *e = arg;
    vd_dns *d = e->d;
    if (status == ARES_EDESTRUCTION || d->destroying) {
        e->pending = false;
        entry_unref(e);
        return;
    }
    if (status == ARES_ECONNREFUSED || status == ARES_ETIMEOUT) { /* no server answered */
        bool first = d->unanswered++ == 0;
        if (first && !d->answered && d->unreachable)
            d->unreachable(status == ARES_ETIMEOUT ? "timed out" : "connection refused",
                           d->unreachable_arg);
    } else {
        d->answered++;
    }
    char next[256];
    if (vd_dns_parse_answer(&e->ans, e->type, e->qname, status, abuf, alen, next)) {
        memcpy(e->qname, next, sizeof e->qname);
        e->refs--; /* entry_query takes the in-flight reference again */
        entry_query(d, e);
        return;
    }
    e->pending = false;
    e->expires = vd_now_mono() + e->ans.ttl;
    entry_deliver(e);
    entry_unref(e);
}

static void entry_query(vd_dns *d, centry *e)
{
    e->refs++;
    e->pending = true;
    d->queries_sent++;
    ares_query(d->ch, e->qname, ns_c_in, e->type, on_answer, e);
    /* ares_timeout() walks every query in flight: once per pass, not once per query. */
    if (!d->in_pass) timer_rearm(d);
}

/* Answers W with a result made up on the spot (bad name, out of memory). */
static void deliver_local_error(vd_dns *d, waiter *w, uint16_t type, const char *why)
{
    centry tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.d = d;
    tmp.type = type;
    tmp.ans.status = VD_DNS_ERROR;
    snprintf(tmp.ans.error, sizeof tmp.ans.error, "%s", why);
    w->fn(w, &tmp);
}

/* Starts (or joins, or answers from the cache) the lookup of (TYPE, NAME) for
 * W. W->fn may run before this returns. */
static void lookup(vd_dns *d, uint16_t type, const char *name, waiter *w)
{
    char key[256];
    if (!name_normalise(name, key)) {
        deliver_local_error(d, w, type, "invalid domain name");
        return;
    }
    centry *e = NULL;
    if (!d->no_cache) {
        e = cache_find(d, type, key);
        if (e && !e->pending && e->expires <= vd_now_mono()) {
            cache_remove(d, e);
            e = NULL;
        }
    }
    if (e) {
        d->cache_hits++;
        if (e->pending) {
            waiter_attach(e, w); /* coalesced with the query in flight */
            return;
        }
        lru_unlink(d, e);
        lru_push(d, e);
        e->refs++;
        w->fn(w, e);
        entry_unref(e);
        return;
    }
    e = calloc(1, sizeof *e);
    if (!e) {
        deliver_local_error(d, w, type, "out of memory");
        return;
    }
    e->d = d;
    e->type = type;
    e->ans.chain_ttl = UINT32_MAX;
    memcpy(e->name, key, sizeof key);
    memcpy(e->qname, key, sizeof key);
    e->hash = key_hash(type, key);
    e->pending = true; /* before cache_insert: a pending entry is never evicted */
    if (!d->no_cache) cache_insert(d, e);
    waiter_attach(e, w);
    entry_query(d, e);
}

/* Seconds an answer may still be used: what is left of the entry's cache
 * lifetime. */
static uint32_t entry_ttl_left(const centry *e)
{
    if (!e->expires) return e->ans.ttl;
    double left = e->expires - vd_now_mono();
    return left <= 0 ? 0 : (uint32_t)(left + 0.5);
}

/* ---- requests ---- */

static void req_free(vd_dns_req *r)
{
    vd_dns *d = r->d;
    waiter_detach(&r->main);
    for (size_t i = 0; i < r->nparts; i++) {
        waiter_detach(&r->parts[i].w);
        free(r->parts[i].addrs);
    }
    free(r->parts);
    for (size_t i = 0; i < r->mx.nhosts; i++)
        free(r->mx.hosts[i].addrs);
    free(r->mx.hosts);
    for (size_t i = 0; i < r->rec.n; i++)
        free(r->rec.items[i]);
    free(r->rec.items);
    if (r->prev)
        r->prev->next = r->next;
    else
        d->reqs = r->next;
    if (r->next) r->next->prev = r->prev;
    free(r);
}

static vd_dns_req *req_new(vd_dns *d, enum req_kind kind, void *arg)
{
    vd_dns_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->d = d;
    r->kind = kind;
    r->arg = arg;
    r->pending = 1; /* held until set-up is over */
    r->main.req = r;
    r->next = d->reqs;
    if (d->reqs) d->reqs->prev = r;
    d->reqs = r;
    return r;
}

/* Combines an A and an AAAA answer: addresses IPv4 first; a name with an
 * address of either family is OK; otherwise NXDOMAIN beats NODATA beats
 * failures of the other family. */
static void parts_combine(const addr_part *a, const addr_part *b, vd_dns_status *status,
                          struct sockaddr_storage **addrs, size_t *n, uint32_t *ttl, char *err,
                          size_t errlen)
{
    *n = 0;
    *addrs = NULL;
    *ttl = a->ttl < b->ttl ? a->ttl : b->ttl;
    if (err) err[0] = '\0';
    if (a->n + b->n) {
        *addrs = malloc((a->n + b->n) * sizeof **addrs);
        if (!*addrs) {
            *status = VD_DNS_ERROR;
            if (err) snprintf(err, errlen, "out of memory");
            return;
        }
        if (a->n) memcpy(*addrs, a->addrs, a->n * sizeof **addrs);
        if (b->n) memcpy(*addrs + a->n, b->addrs, b->n * sizeof **addrs);
        *n = a->n + b->n;
        *status = VD_DNS_OK;
        return;
    }
    const addr_part *worst = a;
    if (a->status == VD_DNS_NXDOMAIN || b->status == VD_DNS_NXDOMAIN) {
        *status = VD_DNS_NXDOMAIN;
    } else if ((a->status == VD_DNS_NODATA || a->status == VD_DNS_OK) &&
               (b->status == VD_DNS_NODATA || b->status == VD_DNS_OK)) {
        *status = VD_DNS_NODATA;
    } else {
        worst = (a->status == VD_DNS_NODATA || a->status == VD_DNS_OK) ? b : a;
        *status = worst->status;
    }
    if (err && worst->error[0]) snprintf(err, errlen, "%s", worst->error);
}

static void req_finish(vd_dns_req *r)
{
    r->finishing = true;
    if (r->kind == RK_RECORDS) {
        r->cb.rec(&r->rec, r->arg);
    } else if (r->kind == RK_ADDRS) {
        vd_dns_addr_list res;
        memset(&res, 0, sizeof res);
        parts_combine(&r->parts[0], &r->parts[1], &res.status, &res.addrs, &res.n, &res.ttl, NULL,
                      0);
        r->cb.addrs(&res, r->arg);
        free(res.addrs);
    } else {
        vd_mx_result *m = &r->mx;
        for (size_t i = 0; i < m->nhosts && r->parts; i++) {
            vd_mx_host *h = &m->hosts[i];
            uint32_t ttl;
            char err[128];
            parts_combine(&r->parts[2 * i], &r->parts[2 * i + 1], &h->addr_status, &h->addrs,
                          &h->naddrs, &ttl, err, sizeof err);
            if (ttl < m->ttl) m->ttl = ttl;
        }
        if (m->implicit) {
            /* The status of an implicit MX is that of the domain's own addresses. */
            vd_mx_host *h = &m->hosts[0];
            m->status = h->addr_status;
            if (m->status != VD_DNS_OK) {
                snprintf(m->error, sizeof m->error, "no MX and no address: %s",
                         vd_dns_status_name(m->status));
                free(h->addrs);
                free(m->hosts);
                m->hosts = NULL;
                m->nhosts = 0;
            }
        }
        r->cb.mx(m, r->arg);
    }
    req_free(r);
}

/* Drops one hold on R; runs its callback when it was the last. True when R is
 * gone. */
static bool req_release(vd_dns_req *r)
{
    if (--r->pending) return false;
    req_finish(r);
    return true;
}

static void on_part(waiter *w, const centry *e)
{
    addr_part *p = (addr_part *)w; /* w is the first member */
    p->status = e->ans.status;
    p->ttl = entry_ttl_left(e);
    snprintf(p->error, sizeof p->error, "%s", e->ans.error);
    if (e->ans.n) {
        p->addrs = malloc(e->ans.n * sizeof *p->addrs);
        if (p->addrs) {
            memcpy(p->addrs, e->ans.addrs, e->ans.n * sizeof *p->addrs);
            p->n = e->ans.n;
        } else {
            p->status = VD_DNS_ERROR;
            snprintf(p->error, sizeof p->error, "out of memory");
        }
    }
    req_release(w->req);
}

/* Starts the A and AAAA lookups of NAME into PARTS[0..1] (the caller holds R).
 */
static void parts_start(vd_dns_req *r, addr_part *parts, const char *name)
{
    for (int k = 0; k < 2; k++) {
        parts[k].w.req = r;
        parts[k].w.fn = on_part;
        parts[k].status = VD_DNS_ERROR;
        parts[k].ttl = UINT32_MAX;
        r->pending++;
    }
    lookup(r->d, T_A_, name, &parts[0].w);
    lookup(r->d, T_AAAA_, name, &parts[1].w);
}

static int mx_cmp(const void *a, const void *b)
{
    const vd_mx_host *x = a, *y = b;
    return (int)x->preference - (int)y->preference;
}

static void on_mx(waiter *w, const centry *e)
{
    vd_dns_req *r = w->req;
    vd_mx_result *m = &r->mx;
    m->status = e->ans.status;
    m->ttl = entry_ttl_left(e);
    snprintf(m->error, sizeof m->error, "%s", e->ans.error);
    if (e->ans.status == VD_DNS_OK) {
        size_t usable = 0;
        for (size_t i = 0; i < e->ans.n; i++)
            usable += e->ans.mx[i].name[0] != '\0';
        if (usable == 0) {
            /* RFC 7505: "MX 0 ." — the domain accepts no mail. */
            m->null_mx = true;
        } else if ((m->hosts = calloc(usable, sizeof *m->hosts)) &&
                   (r->parts = calloc(2 * usable, sizeof *r->parts))) {
            /* A root target beside real ones is a broken null MX: skip it. */
            for (size_t i = 0; i < e->ans.n; i++) {
                if (!e->ans.mx[i].name[0]) continue;
                vd_mx_host *h = &m->hosts[m->nhosts++];
                memcpy(h->name, e->ans.mx[i].name, sizeof h->name);
                h->preference = e->ans.mx[i].pref;
            }
            /* RFC 5321 §5.1: preference order, equal preferences in random order — a
             * fresh shuffle for every request, cached answers included. */
            qsort(m->hosts, m->nhosts, sizeof *m->hosts, mx_cmp);
            for (size_t lo = 0, hi; lo < m->nhosts; lo = hi) {
                for (hi = lo + 1;
                     hi < m->nhosts && m->hosts[hi].preference == m->hosts[lo].preference;)
                    hi++;
                for (size_t i = hi - 1; i > lo; i--) {
                    size_t j = lo + arc4random_uniform((uint32_t)(i - lo + 1));
                    vd_mx_host t = m->hosts[i];
                    m->hosts[i] = m->hosts[j];
                    m->hosts[j] = t;
                }
            }
            r->nparts = 2 * m->nhosts;
            for (size_t i = 0; i < m->nhosts; i++)
                parts_start(r, &r->parts[2 * i], m->hosts[i].name);
        } else {
            free(m->hosts);
            m->hosts = NULL;
            m->status = VD_DNS_ERROR;
            snprintf(m->error, sizeof m->error, "out of memory");
        }
    } else if (e->ans.status == VD_DNS_NODATA) {
        /* RFC 5321 §5.1: no MX — the domain itself is the mail host. */
        m->implicit = true;
        if ((m->hosts = calloc(1, sizeof *m->hosts)) && (r->parts = calloc(2, sizeof *r->parts))) {
            m->nhosts = 1;
            r->nparts = 2;
            snprintf(m->hosts[0].name, sizeof m->hosts[0].name, "%s", r->domain);
            parts_start(r, r->parts, r->domain);
        } else {
            free(m->hosts);
            m->hosts = NULL;
            m->implicit = false;
            m->status = VD_DNS_ERROR;
            snprintf(m->error, sizeof m->error, "out of memory");
        }
    }
    req_release(r);
}

static void on_records(waiter *w, const centry *e)
{
    vd_dns_req *r = w->req;
    r->rec.status = e->ans.status;
    r->rec.ttl = entry_ttl_left(e);
    if (e->ans.n && (r->rec.items = calloc(e->ans.n, sizeof *r->rec.items))) {
        for (size_t i = 0; i < e->ans.n; i++)
            if ((r->rec.items[r->rec.n] = strdup(e->ans.items[i]))) r->rec.n++;
    }
    req_release(r);
}

/* ---- public API ---- */

vd_dns *vd_dns_new(struct event_base *base, const vd_dns_opts *opts, char *err, size_t errlen)
{
    if (!opts || opts->timeout_ms <= 0 || opts->tries < 0) {
        snprintf(err, errlen, "DNS: a timeout (and tries >= 0) must be given");
        return NULL;
    }
    int rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
        return NULL;
    }
    vd_dns *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        ares_library_cleanup();
        return NULL;
    }
    d->base = base;
    d->no_cache = opts->no_cache;
    d->unreachable = opts->unreachable;
    d->unreachable_arg = opts->unreachable_arg;
    d->nbuckets = 1024;
    d->table = calloc(d->nbuckets, sizeof *d->table);
    d->timer = evtimer_new(base, on_timer, d);
    if (!d->table || !d->timer) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    struct ares_options o;
    memset(&o, 0, sizeof o);
    o.sock_state_cb = sock_state_cb;
    o.sock_state_cb_data = d;
    o.timeout = opts->timeout_ms;
    o.tries = opts->tries > 0 ? opts->tries : VD_DNS_TRIES;
    /* NOCHECKRESP: hand SERVFAIL and REFUSED answers to us as they are. Without it c-ares
     * retries them and finally reports "could not contact DNS servers", blurring a server
     * failure into an unreachable server and doubling the queries. */
    o.flags = ARES_FLAG_NOCHECKRESP;
    /* Thousands of lookups in flight share one UDP socket per server: with the default
     * receive buffer a burst of answers overflows it and comes back as timeouts. The
     * kernel caps this at net.core.rmem_max. */
    o.socket_receive_buffer_size = 1 << 20;
    rc = ares_init_options(&d->ch, &o,
                           ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
                               ARES_OPT_FLAGS | ARES_OPT_SOCK_RCVBUF);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares init: %s", ares_strerror(rc));
        d->ch = NULL;
        goto fail;
    }
    if (opts->servers && opts->servers[0]) {
        rc = ares_set_servers_ports_csv(d->ch, opts->servers);
        if (rc != ARES_SUCCESS) {
            snprintf(err, errlen, "DNS servers '%s': %s", opts->servers, ares_strerror(rc));
            goto fail;
        }
    }
    return d;
fail:
    vd_dns_free(d);
    return NULL;
}

void vd_dns_free(vd_dns *d)
{
    if (!d) return;
    /* Requests first: they take their waiters off the entries, so nothing is
     * called back. */
    while (d->reqs)
        req_free(d->reqs);
    d->destroying = true;
    if (d->ch) ares_destroy(d->ch); /* in-flight entries drop their query reference */
    while (d->socks) {
        sockev *s = d->socks;
        d->socks = s->next;
        sockev_free(s);
    }
    while (d->lru_head)
        cache_remove(d, d->lru_head);
    if (d->timer) event_free(d->timer);
    free(d->table);
    free(d);
    ares_library_cleanup();
}

vd_dns_req *vd_dns_mx(vd_dns *d, const char *domain, vd_dns_mx_cb cb, void *arg)
{
    vd_dns_req *r = req_new(d, RK_MX, arg);
    if (!r) {
        vd_mx_result m;
        memset(&m, 0, sizeof m);
        m.status = VD_DNS_ERROR;
        snprintf(m.error, sizeof m.error, "out of memory");
        cb(&m, arg);
        return NULL;
    }
    r->cb.mx = cb;
    r->mx.ttl = UINT32_MAX;
    if (!name_normalise(domain, r->domain)) r->domain[0] = '\0';
    r->main.fn = on_mx;
    r->pending++;
    lookup(d, T_MX_, domain, &r->main);
    return req_release(r) ? NULL : r;
}

static vd_dns_req *records_start(vd_dns *d, uint16_t type, const char *name, vd_dns_records_cb cb,
                                 void *arg)
{
    vd_dns_req *r = req_new(d, RK_RECORDS, arg);
    if (!r) {
        vd_dns_records rec = {.status = VD_DNS_ERROR};
        cb(&rec, arg);
        return NULL;
    }
    r->cb.rec = cb;
    r->main.fn = on_records;
    r->pending++;
    lookup(d, type, name, &r->main);
    return req_release(r) ? NULL : r;
}

vd_dns_req *vd_dns_txt(vd_dns *d, const char *name, vd_dns_records_cb cb, void *arg)
{
    return records_start(d, T_TXT_, name, cb, arg);
}

vd_dns_req *vd_dns_ptr(vd_dns *d, const struct sockaddr *addr, vd_dns_records_cb cb, void *arg)
{
    char name[128] = "";
    if (addr && addr->sa_family == AF_INET) {
        const unsigned char *b =
            (const unsigned char *)&((const struct sockaddr_in *)addr)->sin_addr;
        snprintf(name, sizeof name, "%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1], b[0]);
    } else if (addr && addr->sa_family == AF_INET6) {
        const unsigned char *b =
            (const unsigned char *)&((const struct sockaddr_in6 *)addr)->sin6_addr;
        char *p = name;
        for (int i = 15; i >= 0; i--)
            p += sprintf(p, "%x.%x.", b[i] & 15, b[i] >> 4);
        strcpy(p, "ip6.arpa");
    }
    return records_start(d, T_PTR_, name, cb, arg);
}

vd_dns_req *vd_dns_addrs(vd_dns *d, const char *name, vd_dns_addrs_cb cb, void *arg)
{
    vd_dns_req *r = req_new(d, RK_ADDRS, arg);
    if (r && !(r->parts = calloc(2, sizeof *r->parts))) {
        req_free(r);
        r = NULL;
    }
    if (!r) {
        vd_dns_addr_list a = {.status = VD_DNS_ERROR};
        cb(&a, arg);
        return NULL;
    }
    r->cb.addrs = cb;
    r->nparts = 2;
    parts_start(r, r->parts, name);
    return req_release(r) ? NULL : r;
}

void vd_dns_cancel(vd_dns_req *r)
{
    if (!r || r->finishing) return;
    req_free(r);
}

void vd_dns_reach(const vd_dns *d, size_t *answered, size_t *unanswered)
{
    *answered = d->answered;
    *unanswered = d->unanswered;
}

void vd_dns_stats(vd_dns *d, size_t *queries_sent, size_t *cache_hits)
{
    if (queries_sent) *queries_sent = d->queries_sent;
    if (cache_hits) *cache_hits = d->cache_hits;
}

/* limiter.c — traffic shaping for one source IP (see limiter.h).
 *
 * Waits are queued per key (the key that holds them up) and served in order by one timer per
 * key, so a throttled key costs one timer and a queue entry per parked request, and never
 * delays the requests of other keys. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>
#include <openssl/rand.h>
#include "limiter.h"

/* The adaptation, named once (docs/reputation.md says why each is what it is). */
#define START_MULT   0.5  /* a new key starts at half its top rate */
#define SS_QUIET_S   4.0  /* slow start: the rate doubles after this long without a deferral */
#define AI_QUIET_S   10.0 /* afterwards: it climbs by AI_STEP after this long without one */
#define AI_STEP      0.05 /* of the top rate */
#define MD_FACTOR    0.7  /* a deferral cuts the rate to this share at once */
#define MIN_MULT     0.02 /* the rate never falls below this share of the top */
#define BREAKER_BASE 300.0  /* seconds a first block keeps a provider shut */
#define BREAKER_MAX  7200.0 /* the longest (KumoMTA suspends Yahoo 2 h on TSS04) */
#define JITTER       0.2    /* breakers open for +-20 %, so parked work does not stampede */
#define NBUCKETS     4096
#define MAX_KEYS     200000 /* keys kept; past it a new key goes unshaped, the process lives */

typedef struct kstate kstate;
typedef struct kqueue kqueue;

struct vd_limiter_wait {
    vd_limiter *l;
    bool session; /* a session (else an RCPT) */
    vd_limit_set set;
    vd_limiter_cb cb;
    void *arg;
    kqueue *queued; /* the queue that holds it */
    vd_limiter_wait *prev, *next;
};

/* One key's waits of one kind, served in order by its own timer. Sessions and RCPTs queue
 * apart: an RCPT on a session already held must never wait behind sessions that wait for that
 * very session to end. */
struct kqueue {
    vd_limiter_wait *head, *tail;
    struct event *timer;
    kstate *k;
};

struct kstate {
    char key[300];
    kstate *next; /* hash chain */
    vd_limit lim;
    double tokens, refill_at;
    double mult, quiet_since, used_at;
    bool slow_start;
    int sessions;
    double stokens, srefill_at;
    double breaker_until;
    int breaker_n;
    bool probing; /* half-open: one session is trying */
    kqueue q[2]; /* [0] sessions, [1] RCPTs */
    vd_limiter *l;
};

struct vd_limiter {
    struct event_base *base;
    vd_limiter_opts o;
    kstate *buckets[NBUCKETS];
    size_t nkeys;
    vd_limiter_stats st;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % NBUCKETS;
}

static double jitter(void)
{
    unsigned char b[2];
    if (RAND_bytes(b, sizeof b) != 1) return 1.0;
    double u = (double)(b[0] << 8 | b[1]) / 65535.0;
    return 1.0 - JITTER + 2 * JITTER * u;
}

static void on_key_timer(evutil_socket_t fd, short what, void *arg);

static kstate *get(vd_limiter *l, const char *key, const vd_limit *lim)
{
    unsigned h = hash(key);
    for (kstate *k = l->buckets[h]; k; k = k->next)
        if (!strcmp(k->key, key)) {
            k->lim = *lim;
            return k;
        }
    if (l->nkeys >= MAX_KEYS) return NULL; /* bounded: the key goes unshaped, not the process */
    kstate *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    snprintf(k->key, sizeof k->key, "%s", key);
    k->lim = *lim;
    k->l = l;
    double t = now_s();
    k->tokens = lim->rcpt_burst > 0 ? fmin(lim->rcpt_burst, 1.0 + lim->rcpt_burst * START_MULT) : 1;
    k->refill_at = k->srefill_at = k->quiet_since = t;
    k->mult = START_MULT;
    k->slow_start = true;
    k->stokens = 1;
    k->next = l->buckets[h];
    l->buckets[h] = k;
    l->nkeys++;
    return k;
}

static double rcpt_rate(const kstate *k) /* tokens a second */
{
    return k->lim.rcpt_per_minute / 60.0 * k->mult;
}

/* Refills the buckets and lets the rate climb while the server stays quiet. */
static void refill(kstate *k, double t)
{
    double burst = k->lim.rcpt_burst > 0 ? k->lim.rcpt_burst : 1;
    k->tokens = fmin(burst, k->tokens + rcpt_rate(k) * (t - k->refill_at)); /* at the old rate */
    k->refill_at = t;
    if (k->used_at > k->quiet_since) {
        double quiet = k->slow_start ? SS_QUIET_S : AI_QUIET_S;
        if (t - k->quiet_since >= quiet) {
            k->mult = k->slow_start ? fmin(1.0, k->mult * 2) : fmin(1.0, k->mult + AI_STEP);
            k->quiet_since = t;
        }
    }
    if (k->lim.sessions_per_minute > 0) {
        double cap = fmax(1, k->lim.sessions_per_minute / 10);
        k->stokens = fmin(cap, k->stokens + k->lim.sessions_per_minute / 60 * (t - k->srefill_at));
    }
    k->srefill_at = t;
}

/* Seconds until this key lets one more RCPT (0: now). */
static double rcpt_delay(const kstate *k)
{
    if (k->lim.rcpt_per_minute <= 0 || k->tokens >= 1) return 0;
    return (1 - k->tokens) / rcpt_rate(k);
}

/* Seconds until this key lets a new session (0: now; -1: denied, the breaker is open and the
 * policy is to defer). */
static double session_delay(const vd_limiter *l, const kstate *k, double t)
{
    if (k->breaker_until > t) return l->o.wait_breaker ? k->breaker_until - t : -1;
    if (k->probing) return 1.0; /* half-open: one session tries first */
    if (k->lim.connections > 0 && k->sessions >= (int)k->lim.connections) return 0.25;
    if (k->lim.sessions_per_minute > 0 && k->stokens < 1)
        return (1 - k->stokens) / (k->lim.sessions_per_minute / 60);
    return 0;
}

/* Tries to grant w now: 0 granted, -1 denied, else the delay; *by the key holding it up. */
static double try_grant(vd_limiter *l, vd_limiter_wait *w, kstate **by)
{
    double t = now_s(), worst = 0;
    kstate *keys[VD_NSCOPES] = {0};
    *by = NULL;
    for (int s = 0; s < VD_NSCOPES; s++) {
        if (!w->set.key[s][0]) continue;
        kstate *k = keys[s] = get(l, w->set.key[s], &w->set.limit[s]);
        if (!k) continue;
        refill(k, t);
        double d = w->session ? session_delay(l, k, t) : rcpt_delay(k);
        if (d < 0) return -1;
        if (d > worst) worst = d, *by = k;
    }
    if (worst > 0) return worst;
    for (int s = 0; s < VD_NSCOPES; s++) {
        kstate *k = keys[s];
        if (!k) continue;
        k->used_at = t;
        if (!w->session) {
            if (k->lim.rcpt_per_minute > 0) k->tokens -= 1;
            continue;
        }
        k->sessions++;
        if (k->breaker_n > 0 && k->breaker_until <= t) k->probing = true;
    }
    return 0;
}

static struct timeval tv_of(double d)
{
    return (struct timeval){(time_t)d, (suseconds_t)((d - floor(d)) * 1e6)};
}

static void enqueue(kstate *k, vd_limiter_wait *w, double delay)
{
    kqueue *q = &k->q[w->session ? 0 : 1];
    q->k = k;
    w->queued = q;
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    if (!q->timer) q->timer = evtimer_new(k->l->base, on_key_timer, q);
    if (q->timer && (w == q->head || !evtimer_pending(q->timer, NULL))) {
        struct timeval tv = tv_of(delay);
        evtimer_add(q->timer, &tv);
    }
}

static void dequeue(vd_limiter_wait *w)
{
    kqueue *q = w->queued;
    if (!q) return;
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->queued = NULL;
    w->prev = w->next = NULL;
}

static void finish(vd_limiter_wait *w, const char *deny)
{
    vd_limiter_cb cb = w->cb;
    void *arg = w->arg;
    free(w);
    cb(deny, arg);
}

static const char *deny_msg(vd_limiter *l, const vd_limit_set *s)
{
    static char msg[512];
    const char *key = s->key[VD_SCOPE_PROVIDER][0] ? s->key[VD_SCOPE_PROVIDER] : s->key[0];
    kstate *k = get(l, key, &s->limit[VD_SCOPE_PROVIDER]);
    double left = k ? k->breaker_until - now_s() : 0;
    snprintf(msg, sizeof msg, "circuit breaker open for %s (blocked %d time%s): %.0f s left", key,
             k ? k->breaker_n : 0, k && k->breaker_n == 1 ? "" : "s", left > 0 ? left : 0);
    return msg;
}

/* Serves the key's queue: grants what can go now, requeues what waits on another key. */
static void on_key_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    kqueue *q = arg;
    kstate *k = q->k;
    vd_limiter *l = k->l;
    while (q->head) {
        vd_limiter_wait *w = q->head;
        kstate *by;
        double d = try_grant(l, w, &by);
        if (d > 0 && by == k) {
            struct timeval tv = tv_of(d);
            evtimer_add(q->timer, &tv);
            return;
        }
        dequeue(w);
        if (d > 0) {
            enqueue(by, w, d);
            continue;
        }
        if (d < 0) l->st.deferred++;
        finish(w, d < 0 ? deny_msg(l, &w->set) : NULL);
    }
}

static vd_limiter_wait *request(vd_limiter *l, const vd_limit_set *s, bool session,
                                vd_limiter_cb cb, void *arg)
{
    if (!l || !l->o.enabled) {
        cb(NULL, arg);
        return NULL;
    }
    vd_limiter_wait *w = calloc(1, sizeof *w);
    if (!w) {
        cb(NULL, arg); /* out of memory: do not lose the probe over shaping */
        return NULL;
    }
    *w = (vd_limiter_wait){.l = l, .session = session, .set = *s, .cb = cb, .arg = arg};
    kstate *by;
    double d = try_grant(l, w, &by);
    if (d == 0 || (d > 0 && !by)) {
        finish(w, NULL);
        return NULL;
    }
    if (d < 0) {
        l->st.deferred++;
        finish(w, deny_msg(l, s));
        return NULL;
    }
    l->st.waits++;
    enqueue(by, w, d);
    return w;
}

vd_limiter_wait *vd_limiter_session(vd_limiter *l, const vd_limit_set *s, vd_limiter_cb cb,
                                    void *arg)
{
    return request(l, s, true, cb, arg);
}

vd_limiter_wait *vd_limiter_rcpt(vd_limiter *l, const vd_limit_set *s, vd_limiter_cb cb,
                                 void *arg)
{
    return request(l, s, false, cb, arg);
}

void vd_limiter_cancel(vd_limiter_wait *w)
{
    if (!w) return;
    dequeue(w);
    free(w);
}

/* Wakes k's queue of sessions now (a session ended, a breaker closed). */
static void kick(kstate *k)
{
    kqueue *q = &k->q[0];
    if (!q->head || !q->timer) return;
    struct timeval zero = {0, 0};
    evtimer_add(q->timer, &zero);
}

static void each_key(vd_limiter *l, const vd_limit_set *s, void (*fn)(vd_limiter *, kstate *))
{
    for (int i = 0; i < VD_NSCOPES; i++) {
        if (!s->key[i][0]) continue;
        kstate *k = get(l, s->key[i], &s->limit[i]);
        if (k) fn(l, k);
    }
}

static void end_one(vd_limiter *l, kstate *k)
{
    (void)l;
    if (k->sessions > 0) k->sessions--;
    if (k->breaker_until <= now_s()) k->probing = false; /* the probe ended without a block */
    kick(k);
}

void vd_limiter_session_end(vd_limiter *l, const vd_limit_set *s)
{
    if (l && l->o.enabled) each_key(l, s, end_one);
}

static void fresh_one(vd_limiter *l, kstate *k)
{
    (void)l;
    if (k->lim.sessions_per_minute > 0) k->stokens -= 1;
}

void vd_limiter_session_fresh(vd_limiter *l, const vd_limit_set *s)
{
    if (l && l->o.enabled) each_key(l, s, fresh_one);
}

void vd_limiter_feedback(vd_limiter *l, const vd_limit_set *s, vd_signal sig, const char *why)
{
    if (l && l->o.on_signal && (sig == VD_SIG_SLOW_DOWN || sig == VD_SIG_BLOCK))
        l->o.on_signal(sig, why, l->o.signal_arg);
    if (!l || !l->o.enabled || sig == VD_SIG_NONE) return;
    double t = now_s();
    for (int i = 0; i < VD_NSCOPES; i++) {
        if (!s->key[i][0]) continue;
        kstate *k = get(l, s->key[i], &s->limit[i]);
        if (!k) continue;
        bool sender_scope = i == VD_SCOPE_PROVIDER || i == VD_SCOPE_MX;
        switch (sig) {
        case VD_SIG_OK:
        case VD_SIG_UNKNOWN_USER:
            if (sig == VD_SIG_UNKNOWN_USER && k->lim.unknown_cost > 1 && k->lim.rcpt_per_minute > 0)
                k->tokens -= k->lim.unknown_cost - 1;
            if (k->probing || (k->breaker_n > 0 && k->breaker_until <= t)) {
                k->probing = false;
                k->breaker_n = 0;
                kick(k);
            }
            break;
        case VD_SIG_SLOW_DOWN:
            if (!sender_scope) break;
            k->mult = fmax(MIN_MULT, k->mult * MD_FACTOR);
            k->slow_start = false;
            k->quiet_since = t;
            if (k->tokens > 0) k->tokens = 0; /* stop at once, not after the burst */
            if (i == VD_SCOPE_PROVIDER) l->st.slow_downs++;
            break;
        case VD_SIG_BLOCK:
            if (i != VD_SCOPE_PROVIDER) break;
            k->breaker_n++;
            k->probing = false;
            k->breaker_until =
                t + fmin(BREAKER_MAX, BREAKER_BASE * pow(2, k->breaker_n - 1)) * jitter();
            k->mult = fmax(MIN_MULT, k->mult * 0.5);
            k->slow_start = false;
            l->st.blocks++;
            break;
        case VD_SIG_NONE:
            break;
        }
    }
}

vd_limiter *vd_limiter_new(struct event_base *base, const vd_limiter_opts *o)
{
    vd_limiter *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->base = base;
    l->o = *o;
    return l;
}

void vd_limiter_free(vd_limiter *l)
{
    if (!l) return;
    for (size_t b = 0; b < NBUCKETS; b++)
        for (kstate *k = l->buckets[b], *next; k; k = next) {
            next = k->next;
            for (int i = 0; i < 2; i++) {
                while (k->q[i].head) {
                    vd_limiter_wait *w = k->q[i].head;
                    dequeue(w);
                    free(w);
                }
                if (k->q[i].timer) event_free(k->q[i].timer);
            }
            free(k);
        }
    free(l);
}

void vd_limiter_stats_get(const vd_limiter *l, vd_limiter_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!l) return;
    *out = l->st;
    double t = now_s();
    for (size_t b = 0; b < NBUCKETS; b++)
        for (kstate *k = l->buckets[b]; k; k = k->next) {
            if (k->breaker_until > t) out->breakers_open++;
            for (int i = 0; i < 2; i++)
                for (vd_limiter_wait *w = k->q[i].head; w; w = w->next)
                    out->parked++;
        }
}

double vd_limiter_rate(vd_limiter *l, vd_scope scope, const char *key)
{
    (void)scope;
    if (!l) return -1;
    for (kstate *k = l->buckets[hash(key)]; k; k = k->next)
        if (!strcmp(k->key, key)) return k->lim.rcpt_per_minute * k->mult;
    return -1;
}

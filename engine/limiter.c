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
#include "log.h"

/* The adaptation, named once (docs/reputation.md says why each is what it is). */
/* A key's rate is a share (mult) of its top. It starts at START_MULT and, before the server has
 * ever deferred us, grows by SS_GROWTH every SS_QUIET_S of use (slow start). A "slow down"
 * remembers the share it happened at (the ceiling) and cuts the rate to MD_FACTOR of it at
 * once. The ceiling is set CEIL_BACKOFF below where the first deferral of an episode came
 * (deferrals less than EPISODE_S apart): a server that counts over a window tells us late,
 * when we have been too fast for a while, and goes on deferring while its window drains;
 * those later deferrals cut the rate again but leave the ceiling alone. While the server stays
 * quiet the rate climbs back: quickly (half the gap every RECOVER_S) up to CEIL_NEAR of the
 * ceiling, where nothing went wrong before, then slowly (AI_STEP of the top every AI_QUIET_S) past
 * it, so a server that raised its limit is found again. The ceiling is forgotten once the rate has
 * run CEIL_FORGET above it without a deferral. The replies to RCPTs already in flight when we cut
 * (one per session then, within MD_HOLD_S) are the same event and do not cut again; any further
 * deferral cuts again. */
#define START_MULT   0.5
#define SS_GROWTH    1.25
#define SS_QUIET_S   3.0
#define MD_FACTOR    0.7
#define CUT_PAUSE_S  1.0
#define MD_HOLD_S    2.0
#define CEIL_BACKOFF 0.9
#define EPISODE_S    5.0
#define RECOVER_S    1.0
#define CEIL_NEAR    0.95
#define AI_STEP      0.01
#define AI_QUIET_S   5.0
#define CEIL_FORGET  1.25
#define MIN_MULT     0.02   /* the rate never falls below this share of the top */
#define BREAKER_BASE 300.0  /* seconds a first block keeps a provider shut */
#define BREAKER_MAX  7200.0 /* the longest (KumoMTA suspends Yahoo 2 h on TSS04) */
#define JITTER       0.2    /* breakers open for +-20 %, so parked work does not stampede */
#define NBUCKETS     4096
#define MAX_KEYS     200000 /* keys kept; past it a new key goes unshaped, the process lives */

typedef struct kstate kstate;
typedef struct kqueue kqueue;

struct vd_limiter_wait {
    vd_limiter *l;
    bool session;            /* a session (else an RCPT) */
    bool (*idle)(void *arg); /* may it reuse a kept connection now? (NULL: no) */
    const vd_limit_set *set; /* the caller's (the probe's), which outlives the wait */
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
    double ceil, cut_at; /* the ceiling (0: none yet), and when the last cut was */
    double deferred_at;  /* the last slow-down */
    int hold;            /* deferrals still expected from RCPTs in flight at the last cut */
    bool slow_start;
    int sessions;
    double stokens, srefill_at;
    double breaker_until;
    int breaker_n;
    bool probing; /* half-open: one session is trying */
    kqueue q[2];  /* [0] sessions, [1] RCPTs */
    vd_limiter *l;
};

struct vd_limiter {
    struct event_base *base;
    vd_limiter_opts o;
    kstate *buckets[NBUCKETS];
    size_t nkeys;
    vd_limiter_stats st;
};

/* A key as the log shows it: without the one-letter scope prefix ("p:google" is "google");
 * keys of other shapes (http.request's "http:<rule>") whole. */
static const char *shown(const char *key)
{
    return key[0] && key[1] == ':' ? key + 2 : key;
}

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

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A breaker a previous run opened (the store's), in this process's monotonic time. */
static void load_breaker(vd_limiter *l, kstate *k, double t)
{
    double until = 0;
    int times = 0;
    if (!l->o.store.breaker_get || l->o.store.breaker_get(l->o.store.arg, k->key, &until, &times))
        return;
    double left = until - wall_s();
    if (left <= 0) return;
    k->breaker_until = t + fmin(left, BREAKER_MAX * (1 + JITTER));
    k->breaker_n = times > 0 ? times : 1;
    k->mult = START_MULT / 2;
    k->slow_start = false;
    vd_log_to(l->o.log, l->o.log_arg, VD_LOG_WARNING,
              "%s: circuit breaker still open from an earlier run: %.0f s left", shown(k->key),
              left);
}

static kstate *get(vd_limiter *l, int scope, const char *key, const vd_limit *lim)
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
    k->stokens = lim->sessions_per_minute > 0 ? fmax(1, lim->sessions_per_minute / 10) : 1;
    if (scope == VD_SCOPE_PROVIDER) load_breaker(l, k, t); /* only providers have breakers */
    k->next = l->buckets[h];
    l->buckets[h] = k;
    l->nkeys++;
    return k;
}

static double rcpt_rate(const kstate *k) /* tokens a second */
{
    return k->lim.rcpt_per_minute / 60.0 * k->mult;
}

/* Lets the rate climb while the server stays quiet (see the constants above). */
static void climb(kstate *k, double t)
{
    double quiet = t - k->quiet_since;
    if (k->slow_start) {
        if (quiet < SS_QUIET_S) return;
        k->mult = fmin(1.0, k->mult * SS_GROWTH);
    } else if (k->ceil > 0 && k->mult < CEIL_NEAR * k->ceil) {
        if (quiet < RECOVER_S) return;
        double gap = CEIL_NEAR * k->ceil - k->mult;
        k->mult = fmin(1.0, k->mult + fmax(AI_STEP, gap / 2));
    } else {
        if (quiet < AI_QUIET_S) return;
        k->mult = fmin(1.0, k->mult + AI_STEP);
        if (k->ceil > 0 && k->mult >= CEIL_FORGET * k->ceil) k->ceil = 0;
    }
    k->quiet_since = t;
}

/* Refills the buckets and lets the rate climb while the server stays quiet. */
static void refill(kstate *k, double t)
{
    double burst = k->lim.rcpt_burst > 0 ? k->lim.rcpt_burst : 1;
    k->tokens = fmin(burst, k->tokens + rcpt_rate(k) * (t - k->refill_at)); /* at the old rate */
    k->refill_at = t;
    if (k->used_at > k->quiet_since) climb(k, t);
    if (k->lim.sessions_per_minute > 0) {
        double cap = fmax(1, k->lim.sessions_per_minute / 10);
        k->stokens = fmin(cap, k->stokens + k->lim.sessions_per_minute / 60 * (t - k->srefill_at));
    }
    k->srefill_at = t;
}

/* Seconds until this key lets one more RCPT (0: now). */
static double rcpt_delay(const vd_limiter *l, const kstate *k)
{
    if (l->o.unpaced || k->lim.rcpt_per_minute <= 0 || k->tokens >= 1) return 0;
    return (1 - k->tokens) / rcpt_rate(k);
}

/* Seconds until this key lets a new session (0: now; -1: denied, the breaker is open and the
 * policy is to defer). */
static double session_delay(const vd_limiter *l, const kstate *k, double t, bool reuse)
{
    if (k->breaker_until > t) return l->o.wait_breaker ? k->breaker_until - t : -1;
    if (k->probing) return 1.0; /* half-open: one session tries first */
    if (k->lim.connections > 0 && k->sessions >= (int)k->lim.connections) return 0.25;
    if (!reuse && !l->o.unpaced && k->lim.sessions_per_minute > 0 && k->stokens < 1)
        return (1 - k->stokens) / (k->lim.sessions_per_minute / 60);
    return 0;
}

/* Tries to grant w now: 0 granted, -1 denied, else the delay; *by the key holding it up. */
static double try_grant(vd_limiter *l, vd_limiter_wait *w, kstate **by)
{
    double t = now_s(), worst = 0;
    kstate *keys[VD_NSCOPES] = {0};
    *by = NULL;
    bool reuse = w->session && w->idle && w->idle(w->arg);
    for (int s = 0; s < VD_NSCOPES; s++) {
        if (!w->set->key[s][0]) continue;
        kstate *k = keys[s] = get(l, s, w->set->key[s], &w->set->limit[s]);
        if (!k) continue;
        refill(k, t);
        double d = w->session ? session_delay(l, k, t, reuse) : rcpt_delay(l, k);
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
    kstate *k = get(l, VD_SCOPE_PROVIDER, key, &s->limit[VD_SCOPE_PROVIDER]);
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
        finish(w, d < 0 ? deny_msg(l, w->set) : NULL);
    }
}

static vd_limiter_wait *request(vd_limiter *l, const vd_limit_set *s, bool session,
                                bool (*idle)(void *), vd_limiter_cb cb, void *arg)
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
    *w =
        (vd_limiter_wait){.l = l, .session = session, .idle = idle, .set = s, .cb = cb, .arg = arg};
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
    return request(l, s, true, NULL, cb, arg);
}

vd_limiter_wait *vd_limiter_session_reuse(vd_limiter *l, const vd_limit_set *s,
                                          bool (*idle)(void *arg), vd_limiter_cb cb, void *arg)
{
    return request(l, s, true, idle, cb, arg);
}

vd_limiter_wait *vd_limiter_rcpt(vd_limiter *l, const vd_limit_set *s, vd_limiter_cb cb, void *arg)
{
    return request(l, s, false, NULL, cb, arg);
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
        kstate *k = get(l, i, s->key[i], &s->limit[i]);
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
    /* only traffic charged to the source IP (SMTP) counts for its ledger: an HTTP endpoint's
     * throttle (http.request's key alone) says nothing of the IP's mail reputation */
    if (l && l->o.on_signal && (sig == VD_SIG_SLOW_DOWN || sig == VD_SIG_BLOCK) &&
        s->key[VD_SCOPE_SOURCE_IP][0])
        l->o.on_signal(sig, why, l->o.signal_arg);
    if (!l || !l->o.enabled || sig == VD_SIG_NONE) return;
    double t = now_s();
    for (int i = 0; i < VD_NSCOPES; i++) {
        if (!s->key[i][0]) continue;
        kstate *k = get(l, i, s->key[i], &s->limit[i]);
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
            if (k->tokens > 0) k->tokens = 0; /* stop at once, not after the burst */
            k->quiet_since = t;
            bool episode = k->deferred_at > 0 && t - k->deferred_at < EPISODE_S;
            k->deferred_at = t;
            if (k->hold > 0 && t - k->cut_at < MD_HOLD_S) { /* the same event */
                k->hold--;
                break;
            }
            if (!episode) k->ceil = k->mult * CEIL_BACKOFF;
            k->mult = fmax(MIN_MULT, k->mult * MD_FACTOR);
            k->tokens = -rcpt_rate(k) * CUT_PAUSE_S; /* a pause: the server's window drains */
            k->cut_at = t;
            if (i == VD_SCOPE_PROVIDER)
                vd_log_to(l->o.log, l->o.log_arg, VD_LOG_INFO,
                          "%s asked us to slow down: RCPT rate now %.0f/min (ceiling %.0f/min): %s",
                          shown(k->key), rcpt_rate(k) * 60, k->ceil * k->lim.rcpt_per_minute,
                          why ? why : "");
            k->hold = k->sessions > 1 ? k->sessions - 1 : 0;
            k->slow_start = false;
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
            vd_log_to(l->o.log, l->o.log_arg, VD_LOG_WARNING,
                      "%s blocked us (%d time%s in a row): circuit breaker open for %.0f s: %s",
                      shown(k->key), k->breaker_n, k->breaker_n == 1 ? "" : "s",
                      k->breaker_until - t, why ? why : "");
            if (l->o.store.breaker_put)
                l->o.store.breaker_put(l->o.store.arg, k->key, wall_s() + (k->breaker_until - t),
                                       k->breaker_n, why ? why : "");
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

/* limiter.c — traffic shaping for one source IP (see limiter.h).
 *
 * Owns: the key table (bounded: idle keys at their default are evicted), each key's buckets,
 * caps and adaptive pace, the waits (queued per key, the key that holds them up, and served
 * in order by one timer per key, so a throttled key costs one timer and a queue entry per
 * parked request, and never delays the requests of other keys), the breakers, writing what a
 * key learned to the store.
 * Does not own: the limits (rules' `limits`), what a reply means (rules' signal), where the
 * learned pace and the breakers are kept (the store the engine gives it: the ledger). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <event2/event.h>
#include <openssl/rand.h>
#include "limiter.h"
#include "clock.h"
#include "log.h"
#include "validora/ledger.h"

/* The adaptation of the sender scopes (provider, server, network), named once;
 * docs/reputation.md says why each is what it is. Rates are RCPTs a second here. */
/* A key nobody has talked to starts at START_RATE (capped by its top) on one connection. */
#define START_RATE 1.0
/* While the key is the bottleneck (a request waited for its tokens) and the server stays
 * quiet, the rate grows by ADD_STEP every ADD_QUIET_S: additive, so a server counting over a
 * window sees a ramp, never a jump. */
#define ADD_STEP    0.5
#define ADD_QUIET_S 3.0
/* ... and only while we send at CLIMB_USE of the rate or more (over the last USE_S): a key
 * held back by something else (connections, the list) must not climb to a rate it never
 * tried, and a later run starts at the pace actually kept (over PACE_S), not the one allowed. */
#define CLIMB_USE 0.7
#define USE_S     5
#define PACE_S    10
/* One more connection is allowed for every RATE_PER_CONN RCPTs a second (up to the cap). */
#define RATE_PER_CONN 4.0
/* A deferral estimates the server's limit from what we sent over the windows a server may
 * count over (10, 30, 60 s; the server's window holds the silence before our first RCPT too,
 * so a window is never shortened to the key's life). The first
 * deferral of an episode assumes the shortest window (the pace we were at just then) and sets
 * the ceiling at CEIL_FIRST of it: a server counting over a window tells us late. If the
 * server counts over a longer window, a second deferral comes soon, and the ceiling becomes
 * CEIL_SECOND of the lowest estimate over every window, which no window exceeds. */
#define CEIL_FIRST  0.8
#define CEIL_SECOND 0.8
/* The first deferral of an episode halves the rate (at least) and pauses the key PAUSE1_S at
 * least, longer if a window needs it to drain to DRAIN_SHARE of what the ceiling sends in it. */
#define CUT_FACTOR  0.5
#define PAUSE1_S    20.0
#define DRAIN_SHARE 0.5
/* A second deferral in the same episode: the floor (KumoMTA's 1 a minute) and a longer pause. */
#define FLOOR_RATE (1.0 / 60)
#define PAUSE2_S   120.0
/* An episode: deferrals less than EPISODE_S apart. DEFERRAL_BUDGET deferrals in one episode
 * rest the key for the rest of the episode: servers that block after N deferrals count them
 * over minutes, and N can be as low as 3. */
#define EPISODE_S       600.0
#define DEFERRAL_BUDGET 2
/* Replies to RCPTs already in flight at the cut (one per session, within MD_HOLD_S) are the
 * same event and do not count again. */
#define MD_HOLD_S 2.0
/* At the ceiling the rate stays; once an episode is over it probes PROBE_STEP of the ceiling
 * higher every PROBE_QUIET_S, and forgets the ceiling CEIL_FORGET above it. */
#define PROBE_STEP    0.04
#define PROBE_QUIET_S 30.0
#define CEIL_FORGET   1.25
/* A 421 at connect ("too many connections": Postfix's anvil says so for its count and its rate
 * limit alike): one connection fewer, new sessions a minute at SESS_SHARE of what we opened in
 * the last minute (at least halved, never below SESS_FLOOR), and none for PAUSE1_S. The share is
 * CEIL_FIRST's: the refusal came at the count the server allows plus one, so 0.8 of it stays
 * under a server's limit of 5 a minute and up (0.7 left a second run at 0.7 of an anvil-limited
 * server's pace, sessions being what bounds it). */
#define SESS_FLOOR 2.0
/* A server counts a connection until it sees it closed (Postfix's anvil hears of the
 * disconnect after the 221 and the close): a closed session's slot stays taken this long, so
 * a new connection never overlaps the old one in a "2 at once" count (the shared host's
 * second run drew a 421 that way). */
#define CLOSE_GRACE_S 1.0
#define SESS_SHARE    CEIL_FIRST
/* What is remembered fades: a pace older than PACE_FRESH_S counts for half every PACE_HALF_S
 * (a server's limits change; an old figure is a hint, not a fact). */
#define PACE_FRESH_S 86400.0
#define PACE_HALF_S  (30 * 86400.0)
/* Learned paces are written at least every FLUSH_S. */
#define FLUSH_S 60.0
/* An HTTP endpoint (http.request's key): starts at ENDPOINT_START of its top, grows by
 * ENDPOINT_GROWTH every ENDPOINT_QUIET_S of quiet use; a slow-down halves it (never below
 * ENDPOINT_MIN of the top) and pauses it ENDPOINT_PAUSE_S. */
#define ENDPOINT_START   0.5
#define ENDPOINT_GROWTH  1.25
#define ENDPOINT_QUIET_S 3.0
#define ENDPOINT_MIN     0.02
#define ENDPOINT_PAUSE_S 1.0
/* Breakers. */
#define BREAKER_BASE 300.0  /* seconds a first block keeps a provider shut */
#define BREAKER_MAX  7200.0 /* the longest (KumoMTA suspends Yahoo 2 h on TSS04) */
#define JITTER       0.2    /* breakers open for +-20 %, so parked work does not stampede */
/* The key table: NBUCKETS chains; past SWEEP_AT keys, each new key sweeps SWEEP_BUCKETS
 * buckets for keys idle IDLE_EVICT_S at their default; MAX_KEYS live keys at most (a request
 * whose key cannot be had waits NO_KEY_WAIT_S and asks again: never unshaped). */
#define NBUCKETS      65536
#define SWEEP_AT      10000
#define SWEEP_BUCKETS 64
#define IDLE_EVICT_S  60.0
#define MAX_KEYS      1000000
#define NO_KEY_WAIT_S 1.0
/* The per-second history of RCPTs sent, for the estimates (the longest window counted). */
#define HIST_S 60

typedef struct kstate kstate;
typedef struct kqueue kqueue;

struct vd_limiter_wait {
    vd_limiter *l;
    bool session;            /* a session (else an RCPT) */
    double cost;             /* tokens an RCPT takes (1; a catch-all probe unknown_cost) */
    bool (*idle)(void *arg); /* may it reuse a kept connection now? (NULL: no) */
    const vd_limit_set *set; /* the caller's (the probe's), which outlives the wait */
    vd_limiter_cb cb;
    void *arg;
    kqueue *queued;      /* the queue that holds it (NULL: on the no-key timer) */
    struct event *retry; /* the no-key wait's timer */
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
    int scope;
    bool sender;   /* provider, server, network: adapts; others: fixed at their top */
    bool endpoint; /* http.request's key: starts at half its top, climbs back after a cut */
    bool wide;     /* a network: starts at its top and learns only from deferrals; the servers
                    * in it start gently, each on its own key */
    double tokens, refill_at;
    double rate;        /* RCPTs a second now */
    double ceil;        /* the learned ceiling (0: none) */
    double best;        /* the highest rate used since the last deferral (the safe pace) */
    double quiet_since; /* the last change of rate, or deferral */
    double used_at, starved_at, first_at;
    double pause_until; /* no RCPT before (a cut's pause, a rest) */
    double cut_at;
    int hold; /* deferrals still expected from RCPTs in flight at the last cut */
    double episode_at;
    int episode_n; /* deferrals in the current episode */
    double deferred_wall;
    unsigned deferrals;
    uint16_t hist[HIST_S];
    long hist_sec;          /* the second hist's newest slot counts */
    uint16_t shist[HIST_S]; /* new sessions, second by second */
    long shist_sec;
    int sessions;
    int closing;          /* sessions ended with their connection closing (CLOSE_GRACE_S) */
    double closing_until; /* when those no longer count */
    double stokens, srefill_at;
    double srate;        /* new sessions a minute allowed now (sender: learned; else the limit) */
    int conn_ceil;       /* connections the server allowed at once (0: not learned) */
    double spause_until; /* no new session before */
    double breaker_until;
    int breaker_n;
    bool probing; /* half-open: one session is trying */
    bool dirty;   /* learned something the store has not been told */
    kqueue q[2];  /* [0] sessions, [1] RCPTs */
    vd_limiter *l;
};

struct vd_limiter {
    struct event_base *base;
    vd_limiter_opts o;
    kstate **buckets;
    size_t nkeys, sweep_at;
    double flushed_at;
    vd_limiter_stats st;
};

/* name: as rules write it; prefix: of its keys; word: as a reader says it of a pace the
 * ledger keeps (the sender scopes': the others' keys are written whole). */
static const struct {
    const char *name, *prefix, *word;
} SCOPES[VD_NSCOPES] = {
    [VD_SCOPE_PROVIDER] = {"provider", "p:", "provider"},
    [VD_SCOPE_MX] = {"mx", "m:", "server"},
    [VD_SCOPE_NETWORK] = {"network", "n:", "network"},
    [VD_SCOPE_DOMAIN] = {"domain", "d:", NULL},
    [VD_SCOPE_SOURCE_IP] = {"source_ip", "i:", NULL},
    [VD_SCOPE_GLOBAL] = {"global", "g:", NULL},
};
#define HTTP_PREFIX "http:"

const char *vd_scope_name(vd_scope scope)
{
    return (unsigned)scope < VD_NSCOPES ? SCOPES[scope].name : "?";
}

void vd_scope_key(vd_scope scope, const char *id, char *out, size_t len)
{
    snprintf(out, len, "%s%s", (unsigned)scope < VD_NSCOPES ? SCOPES[scope].prefix : "?:", id);
}

void vd_scope_http_key(const char *rule, char *out, size_t len)
{
    snprintf(out, len, HTTP_PREFIX "%s", rule);
}

void vd_ledger_key_words(const char *key, char *out, size_t len)
{
    for (int i = 0; i < VD_NSCOPES; i++) {
        size_t n = strlen(SCOPES[i].prefix);
        if (SCOPES[i].word && !strncmp(key, SCOPES[i].prefix, n)) {
            snprintf(out, len, "%s %s", SCOPES[i].word, key + n);
            return;
        }
    }
    snprintf(out, len, "%s", key);
}

/* A key as the log shows it: without the one-letter scope prefix ("p:google" is "google");
 * keys of other shapes (http.request's "http:<rule>") whole. */
static const char *shown(const char *key)
{
    return key[0] && key[1] == ':' ? key + 2 : key;
}

static double now_of(const vd_limiter *l)
{
    if (l->o.clock) return l->o.clock(l->o.clock_arg);
    return vd_now_mono();
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
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

static double top_of(const kstate *k) /* RCPTs a second at most */
{
    return k->lim.rcpt_per_minute / 60.0;
}

void vd_limiter_network_of(const char *ip, char *out, size_t outlen)
{
    unsigned char b[16];
    if (inet_pton(AF_INET, ip, b) == 1) {
        snprintf(out, outlen, "%u.%u.%u", b[0], b[1], b[2]);
    } else if (inet_pton(AF_INET6, ip, b) == 1) {
        snprintf(out, outlen, "%x:%x:%x:%x", b[0] << 8 | b[1], b[2] << 8 | b[3], b[4] << 8 | b[5],
                 b[6] << 8 | b[7]);
    } else {
        snprintf(out, outlen, "%s", ip);
    }
}

/* ---- the RCPT history: what we sent, second by second ---- */

static void ring_advance(uint16_t *ring, long *sec, double t)
{
    long s = (long)floor(t);
    if (s <= *sec) return;
    long gap = s - *sec;
    if (gap >= HIST_S)
        memset(ring, 0, HIST_S * sizeof *ring);
    else
        for (long i = 1; i <= gap; i++)
            ring[(*sec + i) % HIST_S] = 0;
    *sec = s;
}

static void ring_note(uint16_t *ring, long *sec, double t, double n)
{
    ring_advance(ring, sec, t);
    uint16_t *slot = &ring[*sec % HIST_S];
    double v = *slot + n;
    *slot = (uint16_t)(v > 65535 ? 65535 : v);
}

/* What the ring counted in the seconds (newest - w + lag, newest]. */
static double ring_count(const uint16_t *ring, long sec, int w, int lag)
{
    double n = 0;
    for (int i = 0; i < w - lag && i < HIST_S; i++)
        n += ring[((sec - i) % HIST_S + HIST_S) % HIST_S];
    return n;
}

static void hist_advance(kstate *k, double t)
{
    ring_advance(k->hist, &k->hist_sec, t);
}

static void hist_note(kstate *k, double t, double n)
{
    ring_note(k->hist, &k->hist_sec, t, n);
}

/* RCPTs sent in the seconds (newest - w + lag, newest]: lag seconds from now on. */
static double hist_count(const kstate *k, int w, int lag)
{
    return ring_count(k->hist, k->hist_sec, w, lag);
}

static const int WINDOWS[] = {10, 30, 60};

/* The server's limit as our own history tells it: over the shortest window, or the lowest
 * rate over every window. */
static double estimate(kstate *k, double t, bool shortest)
{
    hist_advance(k, t);
    double est = INFINITY;
    size_t n = shortest ? 1 : sizeof WINDOWS / sizeof WINDOWS[0];
    for (size_t i = 0; i < n; i++)
        est = fmin(est, hist_count(k, WINDOWS[i], 0) / WINDOWS[i]);
    return isfinite(est) ? est : k->rate;
}

/* Seconds until every window holds at most DRAIN_SHARE of what the ceiling would send in it. */
static double drain_time(kstate *k, double ceil)
{
    for (int p = 0; p < HIST_S; p++) {
        bool ok = true;
        for (size_t i = 0; i < sizeof WINDOWS / sizeof WINDOWS[0] && ok; i++)
            ok = hist_count(k, WINDOWS[i], p) <= DRAIN_SHARE * ceil * WINDOWS[i];
        if (ok) return p;
    }
    return HIST_S;
}

/* ---- keys ---- */

static void on_key_timer(evutil_socket_t fd, short what, void *arg);

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
    k->rate = fmax(FLOOR_RATE, k->rate / 2);
    vd_log_to(l->o.log, l->o.log_arg, VD_LOG_WARNING,
              "%s: circuit breaker still open from an earlier run: %.0f s left", shown(k->key),
              left);
}

/* What an earlier run learned of this server: start near its safe pace, faded by age. */
static void load_pace(vd_limiter *l, kstate *k)
{
    vd_pace p;
    if (!l->o.store.pace_get || l->o.store.pace_get(l->o.store.arg, k->key, &p) != 0) return;
    double age = fmax(0, wall_s() - p.updated_at);
    double fade = age <= PACE_FRESH_S ? 1.0 : pow(0.5, (age - PACE_FRESH_S) / PACE_HALF_S);
    double top = top_of(k) > 0 ? top_of(k) : INFINITY;
    double known = p.rate / 60 * fade;
    if (p.ceil > 0) { /* the ceiling is the pace judged safe (CEIL_FIRST under a deferral): a
                       * second run starts there, not at the slower pace it ramped through */
        k->ceil = fmin(top, p.ceil / 60);
        known = fmin(fmax(known, k->ceil * fade), k->ceil);
    }
    k->rate = fmin(top, fmax(k->rate, known));
    k->best = k->rate;
    if (p.conns >= 1) k->conn_ceil = (int)p.conns;
    if (p.sessions > 0 && (k->srate <= 0 || p.sessions < k->srate))
        k->srate = fmax(SESS_FLOOR, p.sessions);
    k->deferred_wall = p.deferred_at;
    k->deferrals = p.deferrals;
}

static bool is_sender(int scope)
{
    return scope == VD_SCOPE_PROVIDER || scope == VD_SCOPE_MX || scope == VD_SCOPE_NETWORK;
}

static void key_init(vd_limiter *l, kstate *k, int scope, const char *key, const vd_limit *lim,
                     double t)
{
    snprintf(k->key, sizeof k->key, "%s", key);
    k->lim = *lim;
    k->l = l;
    k->scope = scope;
    /* http.request's key sits in the provider slot but is an endpoint, not a mail server */
    k->endpoint = strncmp(key, HTTP_PREFIX, strlen(HTTP_PREFIX)) == 0;
    k->sender = is_sender(scope) && !k->endpoint;
    /* A /24 or /64 holds many unrelated servers (a hosting range, a cloud): starting it gently
     * would let one slow server hold its neighbours to one connection. It is a shared ceiling
     * instead, cut from its own history when a server in it defers. */
    k->wide = scope == VD_SCOPE_NETWORK;
    double top = top_of(k);
    /* a rule may start a key elsewhere (start_per_minute: a lab, one's own MX) */
    double start = lim->start_per_minute > 0 ? lim->start_per_minute / 60 : START_RATE;
    k->rate = k->sender && !k->wide ? (top > 0 ? fmin(top, start) : start) : top;
    if (k->endpoint) k->rate = top * ENDPOINT_START;
    k->refill_at = k->srefill_at = k->quiet_since = k->used_at = k->first_at = t;
    k->hist_sec = k->shist_sec = (long)floor(t);
    k->srate = lim->sessions_per_minute;
    if (k->sender) {
        load_pace(l, k);
        if (scope == VD_SCOPE_PROVIDER) load_breaker(l, k, t); /* only providers have breakers */
    }
    k->best = k->rate;
    double burst = lim->rcpt_burst > 0 ? lim->rcpt_burst : 1;
    k->tokens = k->sender && !k->wide ? fmin(burst, 1.0) : burst; /* a new server: no burst */
    k->stokens = 1;
}

static void key_free(kstate *k)
{
    for (int i = 0; i < 2; i++)
        if (k->q[i].timer) event_free(k->q[i].timer);
    free(k);
}

static void put_pace(vd_limiter *l, kstate *k)
{
    k->dirty = false;
    if (!l->o.store.pace_put) return;
    vd_pace p = {.rate = fmin(k->best, k->ceil > 0 ? k->ceil : INFINITY) * 60,
                 .ceil = k->ceil * 60,
                 .conns = k->conn_ceil,
                 .sessions = k->conn_ceil || k->srate < k->lim.sessions_per_minute ? k->srate : 0,
                 .deferred_at = k->deferred_wall,
                 .updated_at = wall_s(),
                 .deferrals = k->deferrals};
    l->o.store.pace_put(l->o.store.arg, k->key, &p);
}

/* Idle, nothing owed, nothing learned unsaid: a new key would be the same. */
static bool evictable(const kstate *k, double t)
{
    return k->sessions == 0 && !k->q[0].head && !k->q[1].head && !k->probing &&
           k->breaker_until <= t && k->breaker_n == 0 && t - k->used_at >= IDLE_EVICT_S &&
           k->pause_until <= t && k->spause_until <= t &&
           (k->episode_n == 0 || t - k->episode_at >= EPISODE_S);
}

/* Sweeps n buckets from the cursor, evicting what a new key would equal (its pace saved). */
static void sweep(vd_limiter *l, size_t n, double t)
{
    for (size_t i = 0; i < n; i++) {
        size_t b = l->sweep_at++ % NBUCKETS;
        for (kstate **pp = &l->buckets[b]; *pp;) {
            kstate *k = *pp;
            if (!evictable(k, t)) {
                pp = &k->next;
                continue;
            }
            if (k->dirty) put_pace(l, k);
            *pp = k->next;
            key_free(k);
            l->nkeys--;
            l->st.evicted++;
        }
    }
}

static kstate *find(vd_limiter *l, const char *key)
{
    for (kstate *k = l->buckets[hash(key)]; k; k = k->next)
        if (!strcmp(k->key, key)) return k;
    return NULL;
}

/* The key's state, made on first use. NULL: none can be had (the table is full of live keys,
 * or no memory): the caller waits; it never goes unshaped. */
static kstate *get(vd_limiter *l, int scope, const char *key, const vd_limit *lim)
{
    kstate *k = find(l, key);
    if (k) {
        k->lim = *lim;
        double cap = lim->sessions_per_minute;
        if (!k->sender || (cap > 0 && (k->srate <= 0 || k->srate > cap))) k->srate = cap;
        return k;
    }
    double t = now_of(l);
    if (l->nkeys >= SWEEP_AT) sweep(l, SWEEP_BUCKETS, t);
    if (l->nkeys >= MAX_KEYS) sweep(l, NBUCKETS, t);
    if (l->nkeys >= MAX_KEYS) return NULL;
    k = calloc(1, sizeof *k);
    if (!k) return NULL;
    key_init(l, k, scope, key, lim, t);
    unsigned h = hash(key);
    k->next = l->buckets[h];
    l->buckets[h] = k;
    l->nkeys++;
    return k;
}

/* ---- the pace ---- */

static int conns_allowed(const kstate *k)
{
    double cap = k->lim.connections;
    if (!k->sender) return cap > 0 ? (int)cap : 0;
    if (k->wide && cap <= 0 && k->conn_ceil <= 0) return 0; /* no cap, as a fixed key */
    double n = k->wide ? (cap > 0 ? cap : k->conn_ceil) : 1 + floor(k->rate / RATE_PER_CONN);
    if (k->conn_ceil > 0) n = fmin(n, k->conn_ceil);
    if (cap > 0) n = fmin(n, cap);
    return (int)fmax(1, n);
}

/* Lets a sender key's rate climb while the server stays quiet and the key holds work back. */
static double sent_rate(kstate *k, double t, int w)
{
    hist_advance(k, t);
    return hist_count(k, w, 0) / fmax(1.0, fmin((double)w, t - k->first_at));
}

static void climb(kstate *k, double t)
{
    double quiet = t - k->quiet_since, top = top_of(k) > 0 ? top_of(k) : INFINITY;
    bool starved = k->starved_at >= k->quiet_since && t - k->starved_at < ADD_QUIET_S;
    if (t < k->pause_until) return;
    double kept = fmin(sent_rate(k, t, PACE_S), k->rate);
    if (kept > k->best && t - k->first_at >= PACE_S) {
        k->best = kept;
        k->dirty = true;
    }
    if (!starved || k->rate >= top || sent_rate(k, t, USE_S) < CLIMB_USE * k->rate) return;
    bool in_episode = k->episode_n > 0 && t - k->episode_at < EPISODE_S;
    if (k->ceil <= 0 || k->rate < k->ceil) {
        if (quiet < ADD_QUIET_S) return;
        double to = k->ceil > 0 ? fmin(k->ceil, top) : top;
        k->rate = fmin(to, k->rate + ADD_STEP);
    } else {
        if (in_episode || quiet < PROBE_QUIET_S) return;
        k->rate = fmin(top, k->rate + fmax(PROBE_STEP * k->ceil, FLOOR_RATE));
        if (k->rate >= CEIL_FORGET * k->ceil) k->ceil = 0;
    }
    k->quiet_since = t;
}

/* An endpoint's rate climbs back to its top while it stays quiet (multiplicatively: a few
 * requests a minute have no window worth ramping through). */
static void endpoint_climb(kstate *k, double t)
{
    if (t - k->quiet_since < ENDPOINT_QUIET_S || k->used_at <= k->quiet_since) return;
    k->rate = fmin(top_of(k), k->rate * ENDPOINT_GROWTH);
    k->quiet_since = t;
}

/* Refills the buckets and lets the rate climb while the server stays quiet. */
static void refill(kstate *k, double t)
{
    double burst = k->lim.rcpt_burst > 0 ? k->lim.rcpt_burst : 1;
    double from = fmax(k->refill_at, k->pause_until);
    if (t > from) k->tokens = fmin(burst, k->tokens + k->rate * (t - from)); /* at the old rate */
    k->refill_at = t;
    if (k->sender) climb(k, t);
    if (k->endpoint) endpoint_climb(k, t);
    if (k->srate > 0) {
        double cap = fmax(1, k->srate / 10);
        double sfrom = fmax(k->srefill_at, k->spause_until);
        if (t > sfrom) k->stokens = fmin(cap, k->stokens + k->srate / 60 * (t - sfrom));
    }
    k->srefill_at = t;
}

/* Seconds until this key lets one more RCPT of this cost (0: now). */
static double rcpt_delay(const vd_limiter *l, const kstate *k, double t, double cost)
{
    if (l->o.unpaced || k->lim.rcpt_per_minute <= 0) return 0;
    if (k->pause_until > t) return k->pause_until - t;
    double burst = k->lim.rcpt_burst > 0 ? k->lim.rcpt_burst : 1;
    double need = fmin(cost, burst);
    if (k->tokens >= need) return 0;
    return (need - k->tokens) / fmax(k->rate, FLOOR_RATE);
}

/* Seconds until this key lets a new session (0: now; -1: denied, the breaker is open and the
 * policy is to defer). */
static double session_delay(const vd_limiter *l, const kstate *k, double t, bool reuse)
{
    if (k->breaker_until > t) return l->o.wait_breaker ? k->breaker_until - t : -1;
    if (k->probing) return 1.0; /* half-open: one session tries first */
    int cap = l->o.unpaced && k->sender ? (int)k->lim.connections : conns_allowed(k);
    int busy = k->sessions + (t < k->closing_until ? k->closing : 0);
    if (cap > 0 && busy >= cap) return 0.25;
    if (reuse || l->o.unpaced) return 0;
    if (k->spause_until > t) return k->spause_until - t;
    if (k->srate > 0 && k->stokens < 1) return (1 - k->stokens) / (k->srate / 60);
    return 0;
}

/* Tries to grant w now: 0 granted, -1 denied, else the delay; *by the key holding it up (NULL
 * with a delay: a key could not be had). */
static double try_grant(vd_limiter *l, vd_limiter_wait *w, kstate **by)
{
    double t = now_of(l), worst = 0;
    kstate *keys[VD_NSCOPES] = {0};
    *by = NULL;
    bool reuse = w->session && w->idle && w->idle(w->arg);
    for (int s = 0; s < VD_NSCOPES; s++) {
        if (!w->set->key[s][0]) continue;
        kstate *k = keys[s] = get(l, s, w->set->key[s], &w->set->limit[s]);
        if (!k) {
            *by = NULL;
            return NO_KEY_WAIT_S;
        }
        refill(k, t);
    }
    for (int s = 0; s < VD_NSCOPES; s++) {
        kstate *k = keys[s];
        if (!k) continue;
        double d = w->session ? session_delay(l, k, t, reuse) : rcpt_delay(l, k, t, w->cost);
        if (d < 0) return -1;
        if (!w->session && d > 0) k->starved_at = t;
        if (d > worst) worst = d, *by = k;
    }
    if (worst > 0) return worst;
    for (int s = 0; s < VD_NSCOPES; s++) {
        kstate *k = keys[s];
        if (!k) continue;
        k->used_at = t;
        if (!w->session) {
            if (k->lim.rcpt_per_minute > 0) k->tokens -= w->cost;
            if (k->sender) hist_note(k, t, w->cost);
            continue;
        }
        k->sessions++;
        if (k->breaker_n > 0 && k->breaker_until <= t) k->probing = true;
    }
    return 0;
}

/* ---- waits ---- */

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

static void wait_free(vd_limiter_wait *w)
{
    if (w->retry) event_free(w->retry);
    free(w);
}

static void finish(vd_limiter_wait *w, const char *deny)
{
    vd_limiter_cb cb = w->cb;
    void *arg = w->arg;
    wait_free(w);
    cb(deny, arg);
}

static const char *deny_msg(vd_limiter *l, const vd_limit_set *s)
{
    static char msg[512];
    const char *key = s->key[VD_SCOPE_PROVIDER][0] ? s->key[VD_SCOPE_PROVIDER] : s->key[0];
    kstate *k = find(l, key);
    double left = k ? k->breaker_until - now_of(l) : 0;
    snprintf(msg, sizeof msg, "circuit breaker open for %s (blocked %d time%s): %.0f s left", key,
             k ? k->breaker_n : 0, k && k->breaker_n == 1 ? "" : "s", left > 0 ? left : 0);
    return msg;
}

static void park(vd_limiter *l, vd_limiter_wait *w, kstate *by, double d);
static void maybe_flush(vd_limiter *l, double t);

/* A wait whose key could not be had asks again. */
static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    vd_limiter_wait *w = arg;
    vd_limiter *l = w->l;
    kstate *by;
    double d = try_grant(l, w, &by);
    if (d > 0) {
        park(l, w, by, d);
        return;
    }
    if (d < 0) l->st.deferred++;
    finish(w, d < 0 ? deny_msg(l, w->set) : NULL);
}

static void park(vd_limiter *l, vd_limiter_wait *w, kstate *by, double d)
{
    if (by) {
        enqueue(by, w, d);
        return;
    }
    if (!w->retry) w->retry = evtimer_new(l->base, on_retry, w);
    struct timeval tv = tv_of(d);
    if (w->retry) evtimer_add(w->retry, &tv);
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
            park(l, w, by, d);
            continue;
        }
        if (d < 0) l->st.deferred++;
        finish(w, d < 0 ? deny_msg(l, w->set) : NULL);
    }
}

static vd_limiter_wait *request(vd_limiter *l, const vd_limit_set *s, bool session, double cost,
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
    *w = (vd_limiter_wait){
        .l = l, .session = session, .cost = cost, .idle = idle, .set = s, .cb = cb, .arg = arg};
    maybe_flush(l, now_of(l));
    kstate *by;
    double d = try_grant(l, w, &by);
    if (d == 0) {
        finish(w, NULL);
        return NULL;
    }
    if (d < 0) {
        l->st.deferred++;
        finish(w, deny_msg(l, s));
        return NULL;
    }
    l->st.waits++;
    park(l, w, by, d);
    return w;
}

vd_limiter_wait *vd_limiter_session(vd_limiter *l, const vd_limit_set *s, vd_limiter_cb cb,
                                    void *arg)
{
    return request(l, s, true, 0, NULL, cb, arg);
}

vd_limiter_wait *vd_limiter_session_reuse(vd_limiter *l, const vd_limit_set *s,
                                          bool (*idle)(void *arg), vd_limiter_cb cb, void *arg)
{
    return request(l, s, true, 0, idle, cb, arg);
}

vd_limiter_wait *vd_limiter_rcpt(vd_limiter *l, const vd_limit_set *s, vd_limiter_cb cb, void *arg)
{
    return request(l, s, false, 1, NULL, cb, arg);
}

vd_limiter_wait *vd_limiter_rcpt_probe(vd_limiter *l, const vd_limit_set *s, vd_limiter_cb cb,
                                       void *arg)
{
    double cost = 1;
    for (int i = 0; i < VD_NSCOPES; i++)
        if (s->key[i][0] && s->limit[i].unknown_cost > cost) cost = s->limit[i].unknown_cost;
    return request(l, s, false, cost, NULL, cb, arg);
}

void vd_limiter_cancel(vd_limiter_wait *w)
{
    if (!w) return;
    dequeue(w);
    wait_free(w);
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
        kstate *k = find(l, s->key[i]);
        if (k) fn(l, k);
    }
}

static void end_one(vd_limiter *l, kstate *k)
{
    if (k->sessions > 0) k->sessions--;
    if (k->breaker_until <= now_of(l)) k->probing = false; /* the probe ended without a block */
    kick(k);
}

void vd_limiter_session_end(vd_limiter *l, const vd_limit_set *s)
{
    if (l && l->o.enabled) each_key(l, s, end_one);
}

static void closed_one(vd_limiter *l, kstate *k)
{
    double t = now_of(l);
    k->closing = (t < k->closing_until ? k->closing : 0) + 1;
    k->closing_until = t + CLOSE_GRACE_S;
    end_one(l, k);
}

void vd_limiter_session_closed(vd_limiter *l, const vd_limit_set *s)
{
    if (l && l->o.enabled) each_key(l, s, closed_one);
}

static void fresh_one(vd_limiter *l, kstate *k)
{
    if (k->srate > 0) k->stokens -= 1;
    if (k->sender) ring_note(k->shist, &k->shist_sec, now_of(l), 1);
}

void vd_limiter_session_fresh(vd_limiter *l, const vd_limit_set *s)
{
    if (l && l->o.enabled) each_key(l, s, fresh_one);
}

/* ---- feedback ---- */

static bool episode_step(vd_limiter *l, kstate *k, double t)
{
    if (k->episode_n == 0 || t - k->episode_at >= EPISODE_S) {
        k->episode_n = 0;
        k->episode_at = t;
    }
    k->episode_n++;
    k->deferrals++;
    k->deferred_wall = wall_s();
    k->quiet_since = t;
    k->dirty = true;
    if (k->episode_n < DEFERRAL_BUDGET) return false;
    if (k->episode_n == DEFERRAL_BUDGET) {
        l->st.rests++;
        vd_log_to(l->o.log, l->o.log_arg, VD_LOG_WARNING,
                  "%s deferred us %d times within %.0f s: resting it (floor pace) until the "
                  "episode is over",
                  shown(k->key), k->episode_n, EPISODE_S);
    }
    return true;
}

/* A rate deferral of an RCPT: a ceiling from our own history, the rate halved (or the floor
 * after the budget), a pause that lets the server's windows drain. */
static void cut_rcpt(vd_limiter *l, kstate *k, double t, const char *why)
{
    if (k->tokens > 0) k->tokens = 0;               /* stop at once, not after the burst */
    if (k->hold > 0 && t - k->cut_at < MD_HOLD_S) { /* the same event */
        k->hold--;
        return;
    }
    double was = k->rate;
    bool second = episode_step(l, k, t);
    double ceil = second ? CEIL_SECOND * estimate(k, t, false) : CEIL_FIRST * estimate(k, t, true);
    ceil = fmax(FLOOR_RATE, ceil);
    double pause;
    if (!second) {
        k->ceil = ceil;
        k->rate = fmax(FLOOR_RATE, fmin(was * CUT_FACTOR, ceil));
        pause = fmax(PAUSE1_S, drain_time(k, ceil));
    } else {
        k->ceil = k->ceil > 0 ? fmin(k->ceil, ceil) : ceil;
        k->rate = FLOOR_RATE;
        pause = fmax(PAUSE2_S, drain_time(k, k->ceil));
        if (k->episode_n > DEFERRAL_BUDGET) pause = fmax(pause, EPISODE_S - (t - k->episode_at));
    }
    k->best = fmin(k->best, k->ceil);
    k->pause_until = t + pause;
    k->cut_at = t;
    k->hold = k->sessions > 1 ? k->sessions - 1 : 0;
    if (k->scope == VD_SCOPE_PROVIDER) {
        vd_log_to(l->o.log, l->o.log_arg, VD_LOG_INFO,
                  "%s asked us to slow down (%d in this episode): RCPT rate %.1f/min -> %.1f/min, "
                  "ceiling %.1f/min, paused %.0f s: %s",
                  shown(k->key), k->episode_n, was * 60, k->rate * 60, k->ceil * 60, pause,
                  why ? why : "");
        l->st.slow_downs++;
    }
}

/* A slow-down at connect (too many connections): fewer connections, fewer new ones. */
static void cut_sessions(vd_limiter *l, kstate *k, double t, const char *why)
{
    int had = k->sessions > 1 ? k->sessions : 1;
    if (k->hold > 0 && t - k->cut_at < MD_HOLD_S) {
        k->hold--;
        return;
    }
    episode_step(l, k, t);
    if (had > 1 || k->conn_ceil == 0) k->conn_ceil = had > 1 ? had - 1 : 1;
    ring_advance(k->shist, &k->shist_sec, t);
    double opened = ring_count(k->shist, k->shist_sec, HIST_S, 0) + 1; /* this one too */
    double srate = k->srate > 0 ? k->srate : opened;
    k->srate = fmax(SESS_FLOOR, fmin(srate * CUT_FACTOR, SESS_SHARE * opened));
    k->stokens = fmin(k->stokens, 1); /* the pause is the wait: one session when it ends */
    k->spause_until = t + (k->episode_n >= DEFERRAL_BUDGET ? PAUSE2_S : PAUSE1_S);
    k->cut_at = t;
    k->hold = k->sessions > 1 ? k->sessions - 1 : 0;
    if (k->scope == VD_SCOPE_PROVIDER) {
        vd_log_to(l->o.log, l->o.log_arg, VD_LOG_INFO,
                  "%s refused a connection (%d in this episode): %d at once, %.1f new a minute, "
                  "none for %.0f s: %s",
                  shown(k->key), k->episode_n, conns_allowed(k), k->srate, k->spause_until - t,
                  why ? why : "");
    }
    if (k->scope == VD_SCOPE_PROVIDER) l->st.slow_downs++;
}

static void open_breaker(vd_limiter *l, kstate *k, double t, const char *why)
{
    k->breaker_n++;
    k->probing = false;
    k->breaker_until = t + fmin(BREAKER_MAX, BREAKER_BASE * pow(2, k->breaker_n - 1)) * jitter();
    k->rate = fmax(FLOOR_RATE, k->rate * CUT_FACTOR);
    l->st.blocks++;
    vd_log_to(l->o.log, l->o.log_arg, VD_LOG_WARNING,
              "%s blocked us (%d time%s in a row): circuit breaker open for %.0f s: %s",
              shown(k->key), k->breaker_n, k->breaker_n == 1 ? "" : "s", k->breaker_until - t,
              why ? why : "");
    if (l->o.store.breaker_put)
        l->o.store.breaker_put(l->o.store.arg, k->key, wall_s() + (k->breaker_until - t),
                               k->breaker_n, why ? why : "");
}

/* An endpoint's (http.request's) slow-down: the old multiplicative cut, no history. */
static void cut_plain(kstate *k, double t)
{
    if (k->tokens > 0) k->tokens = 0;
    k->rate = fmax(top_of(k) * ENDPOINT_MIN, k->rate * CUT_FACTOR);
    k->pause_until = t + ENDPOINT_PAUSE_S;
    k->quiet_since = t;
}

void vd_limiter_feedback(vd_limiter *l, const vd_limit_set *s, vd_signal sig, bool at_connect,
                         const char *why)
{
    /* only traffic charged to the source IP (SMTP) counts for its ledger: an HTTP endpoint's
     * throttle (http.request's key alone) says nothing of the IP's mail reputation */
    if (l && l->o.on_signal && (sig == VD_SIG_SLOW_DOWN || sig == VD_SIG_BLOCK) &&
        s->key[VD_SCOPE_SOURCE_IP][0])
        l->o.on_signal(sig, why, l->o.signal_arg);
    if (!l || !l->o.enabled || sig == VD_SIG_NONE) return;
    double t = now_of(l);
    for (int i = 0; i < VD_NSCOPES; i++) {
        if (!s->key[i][0]) continue;
        kstate *k = get(l, i, s->key[i], &s->limit[i]);
        if (!k) continue;
        switch (sig) {
        case VD_SIG_OK:
        case VD_SIG_UNKNOWN_USER:
            if (sig == VD_SIG_UNKNOWN_USER && k->lim.unknown_cost > 1 &&
                k->lim.rcpt_per_minute > 0) {
                k->tokens -= k->lim.unknown_cost - 1;
                if (k->sender) hist_note(k, t, k->lim.unknown_cost - 1);
            }
            if (k->probing || (k->breaker_n > 0 && k->breaker_until <= t)) {
                k->probing = false;
                k->breaker_n = 0;
                kick(k);
            }
            break;
        case VD_SIG_SLOW_DOWN:
            if (!is_sender(i)) break;
            if (!k->sender)
                cut_plain(k, t);
            else if (at_connect)
                cut_sessions(l, k, t, why);
            else
                cut_rcpt(l, k, t, why);
            if (k->sender && k->dirty && i != VD_SCOPE_NETWORK) put_pace(l, k);
            break;
        case VD_SIG_BLOCK:
            if (i == VD_SCOPE_PROVIDER) open_breaker(l, k, t, why);
            break;
        case VD_SIG_NONE:
            break;
        }
    }
}

/* ---- the store ---- */

void vd_limiter_flush(vd_limiter *l)
{
    if (!l || !l->o.store.pace_put) return;
    for (size_t b = 0; b < NBUCKETS; b++)
        for (kstate *k = l->buckets[b]; k; k = k->next)
            if (k->dirty && k->sender) put_pace(l, k);
}

/* Every FLUSH_S of use: what was learned goes to the store, and a sixteenth of the table is
 * swept. No timer of its own: a timer would keep the caller's loop alive after the work. */
static void maybe_flush(vd_limiter *l, double t)
{
    if (t - l->flushed_at < FLUSH_S) return;
    l->flushed_at = t;
    vd_limiter_flush(l);
    sweep(l, NBUCKETS / 16, t);
}

vd_limiter *vd_limiter_new(struct event_base *base, const vd_limiter_opts *o)
{
    vd_limiter *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->buckets = calloc(NBUCKETS, sizeof *l->buckets);
    if (!l->buckets) {
        free(l);
        return NULL;
    }
    l->base = base;
    l->o = *o;
    l->flushed_at = now_of(l);
    return l;
}

void vd_limiter_free(vd_limiter *l)
{
    if (!l) return;
    vd_limiter_flush(l);
    for (size_t b = 0; b < NBUCKETS; b++)
        for (kstate *k = l->buckets[b], *next; k; k = next) {
            next = k->next;
            for (int i = 0; i < 2; i++)
                while (k->q[i].head) {
                    vd_limiter_wait *w = k->q[i].head;
                    dequeue(w);
                    wait_free(w);
                }
            key_free(k);
        }
    free(l->buckets);
    free(l);
}

void vd_limiter_stats_get(const vd_limiter *l, vd_limiter_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!l) return;
    *out = l->st;
    out->keys = l->nkeys;
    double t = now_of(l);
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
    kstate *k = l ? find(l, key) : NULL;
    return k ? k->rate * 60 : -1;
}

double vd_limiter_ceiling(vd_limiter *l, const char *key)
{
    kstate *k = l ? find(l, key) : NULL;
    return k ? k->ceil * 60 : -1;
}

int vd_limiter_conns(vd_limiter *l, const char *key)
{
    kstate *k = l ? find(l, key) : NULL;
    return k ? conns_allowed(k) : -1;
}

double vd_limiter_paused(vd_limiter *l, const char *key)
{
    kstate *k = l ? find(l, key) : NULL;
    return k ? fmax(0, k->pause_until - now_of(l)) : -1;
}

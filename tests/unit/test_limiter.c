/* test_limiter.c — the traffic limiter (engine/limiter.c) on a real event loop and on a clock
 * driven by hand: grants, caps, the RCPT bucket, separate queues for sessions and RCPTs (the
 * server_limits stall), no head-of-line blocking across keys, the gentle start and its
 * additive growth, the cut (ceiling from our own history, halving, a pause that drains the
 * window), the floor and the deferral budget, slow-downs at connect, the learned pace kept in
 * the store, breakers on "block", eviction of idle keys, and no request ever unshaped. */
#include "check.h"
#include "limiter.h"
#include "validora/ledger.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>

static struct event_base *base;

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run_for(double s)
{
    struct timeval tv = {(time_t)s, (suseconds_t)((s - floor(s)) * 1e6)};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

typedef struct got {
    int n;
    const char *deny;
    double at;
} got;

static void on_grant(const char *deny, void *arg)
{
    got *g = arg;
    g->n++;
    g->deny = deny;
    g->at = mono();
}

static const vd_limit TIGHT = {.connections = 1,
                               .rcpt_per_session = 0,
                               .sessions_per_minute = 0,
                               .rcpt_per_minute = 120, /* 2/s at the top, 1/s at the start */
                               .rcpt_burst = 1,
                               .unknown_cost = 2};
static const vd_limit LOOSE = {.connections = 100, .rcpt_per_minute = 600000, .rcpt_burst = 1000};

/* Only the global key: a scope that does not adapt (its top is its pace). */
static vd_limit_set set_global(const vd_limit *lim)
{
    vd_limit_set s;
    memset(&s, 0, sizeof s);
    snprintf(s.key[VD_SCOPE_GLOBAL], sizeof s.key[0], "g:*");
    s.limit[VD_SCOPE_GLOBAL] = *lim;
    return s;
}

static vd_limit_set set_for(const char *provider, const vd_limit *lim)
{
    vd_limit_set s;
    memset(&s, 0, sizeof s);
    snprintf(s.key[VD_SCOPE_PROVIDER], sizeof s.key[0], "p:%s", provider);
    snprintf(s.key[VD_SCOPE_GLOBAL], sizeof s.key[0], "g:*");
    s.limit[VD_SCOPE_PROVIDER] = *lim;
    s.limit[VD_SCOPE_GLOBAL] = LOOSE;
    return s;
}

static void test_disabled(void)
{
    vd_limiter_opts o = {.enabled = false};
    vd_limiter *l = vd_limiter_new(base, &o);
    vd_limit_set s = set_for("a", &TIGHT);
    got g = {0};
    for (int i = 0; i < 50; i++)
        CHECK(vd_limiter_rcpt(l, &s, on_grant, &g) == NULL);
    CHECK(g.n == 50); /* --no-throttle: every request at once */
    vd_limiter_free(l);
}

/* The stall server_limits.sh found: a session held by a job whose RCPT waits, and sessions
 * queued behind it. The RCPT must not wait behind those sessions. */
static void test_rcpt_not_behind_sessions(void)
{
    vd_limiter_opts o = {.enabled = true};
    vd_limiter *l = vd_limiter_new(base, &o);
    vd_limit_set s = set_for("a", &TIGHT);
    got s1 = {0}, s2 = {0}, r[3] = {{0}};
    CHECK(vd_limiter_session(l, &s, on_grant, &s1) == NULL && s1.n == 1 && !s1.deny);
    vd_limiter_wait *w2 = vd_limiter_session(l, &s, on_grant, &s2);
    CHECK(w2 != NULL && s2.n == 0); /* the connection cap (1) holds it */
    for (int i = 0; i < 3; i++)
        vd_limiter_rcpt(l, &s, on_grant, &r[i]);
    run_for(3.5);
    CHECK_MSG(r[0].n == 1 && r[1].n == 1 && r[2].n == 1, "RCPTs granted: %d %d %d", r[0].n, r[1].n,
              r[2].n);
    CHECK(s2.n == 0); /* still capped: the first session was never ended */
    vd_limiter_session_end(l, &s);
    run_for(0.1);
    CHECK(s2.n == 1 && !s2.deny); /* ending a session wakes the queue at once */
    vd_limiter_session_end(l, &s);
    vd_limiter_free(l);
}

/* A throttled key parks its requests on a timer; another key's go at once. */
static void test_no_head_of_line(void)
{
    vd_limiter_opts o = {.enabled = true};
    vd_limiter *l = vd_limiter_new(base, &o);
    vd_limit_set slow = set_for("slow", &TIGHT), fast = set_global(&LOOSE);
    got parked = {0}, quick = {0};
    for (int i = 0; i < 1000; i++)
        vd_limiter_rcpt(l, &slow, on_grant, &parked);
    vd_limiter_stats st;
    vd_limiter_stats_get(l, &st);
    CHECK_MSG(st.parked >= 990, "parked %lu", st.parked);
    for (int i = 0; i < 500; i++)
        vd_limiter_rcpt(l, &fast, on_grant, &quick);
    CHECK_MSG(quick.n == 500, "fast key granted %d of 500 while the slow one is parked", quick.n);
    run_for(1.2);
    CHECK_MSG(parked.n >= 2 && parked.n <= 6, "slow key granted %d in 1.2 s (about 1-2/s)",
              parked.n);
    vd_limiter_free(l); /* frees the parked waits without calling them */
}

static double rate_of(vd_limiter *l, const char *key)
{
    return vd_limiter_rate(l, VD_SCOPE_PROVIDER, key);
}

static void test_slow_down_and_block(void)
{
    vd_limiter_opts o = {.enabled = true};
    vd_limiter *l = vd_limiter_new(base, &o);
    vd_limit_set s = set_for("a", &TIGHT);
    got g = {0};
    vd_limiter_rcpt(l, &s, on_grant, &g);
    double before = rate_of(l, "p:a");
    CHECK(before > 0);
    vd_limiter_feedback(l, &s, VD_SIG_SLOW_DOWN, false, "450 4.7.1 slow down");
    double after = rate_of(l, "p:a");
    CHECK_MSG(after <= before * 0.5 && after > 0, "rate %.1f -> %.1f", before, after);
    /* the cut pauses the key for tens of seconds: the next RCPT is parked */
    CHECK_MSG(vd_limiter_paused(l, "p:a") >= 19, "paused %.1f s", vd_limiter_paused(l, "p:a"));
    got p = {0};
    CHECK(vd_limiter_rcpt(l, &s, on_grant, &p) != NULL);
    run_for(0.5);
    CHECK(p.n == 0);
    /* the global scope is not a sender scope: a slow-down does not touch it */
    CHECK(rate_of(l, "g:*") >= 300000 - 1);

    /* a block opens the breaker: a new session is denied (defer), an RCPT is not affected */
    vd_limiter_feedback(l, &s, VD_SIG_BLOCK, false, "554 5.7.1 blocked using strict-bl.test");
    got d = {0};
    CHECK(vd_limiter_session(l, &s, on_grant, &d) == NULL);
    CHECK(d.n == 1 && d.deny && strstr(d.deny, "circuit breaker open for p:a"));
    vd_limiter_stats st;
    vd_limiter_stats_get(l, &st);
    CHECK(st.blocks == 1 && st.breakers_open == 1 && st.deferred == 1);
    /* another provider is not blocked */
    vd_limit_set other = set_for("b", &TIGHT);
    got ok = {0};
    vd_limiter_session(l, &other, on_grant, &ok);
    CHECK(ok.n == 1 && !ok.deny);
    vd_limiter_session_end(l, &other);
    vd_limiter_free(l);

    /* --on-block wait: the session parks instead */
    vd_limiter_opts ow = {.enabled = true, .wait_breaker = true};
    l = vd_limiter_new(base, &ow);
    vd_limiter_feedback(l, &s, VD_SIG_BLOCK, false, "554 5.7.1 blocked");
    got w = {0};
    CHECK(vd_limiter_session(l, &s, on_grant, &w) != NULL);
    run_for(0.3);
    CHECK(w.n == 0);
    vd_limiter_free(l);
}

/* A store backend kept in this test (the engine's is the SQLite ledger): a breaker opened by
 * one limiter is found by the next one, as by a restarted run. */
typedef struct mem_store {
    char key[300];
    double until;
    int times, gets, puts;
    char pkey[300];
    vd_pace pace;
    int pace_puts;
} mem_store;

static int mem_pace_get(void *arg, const char *key, vd_pace *out)
{
    mem_store *m = arg;
    if (strcmp(key, m->pkey) != 0) return 1;
    *out = m->pace;
    return 0;
}

static int mem_pace_put(void *arg, const char *key, const vd_pace *p)
{
    mem_store *m = arg;
    if (strncmp(key, "p:", 2) != 0) return 0; /* this test keeps the provider's */
    snprintf(m->pkey, sizeof m->pkey, "%s", key);
    m->pace = *p;
    m->pace_puts++;
    return 0;
}

static int mem_get(void *arg, const char *key, double *until, int *times)
{
    mem_store *m = arg;
    m->gets++;
    *until = strcmp(key, m->key) == 0 ? m->until : 0;
    *times = m->times;
    return 0;
}

static int mem_put(void *arg, const char *key, double until, int times, const char *reason);
static int mem_pace_get(void *arg, const char *key, vd_pace *out);
static int mem_pace_put(void *arg, const char *key, const vd_pace *p);

static int mem_put(void *arg, const char *key, double until, int times, const char *reason)
{
    mem_store *m = arg;
    (void)reason;
    snprintf(m->key, sizeof m->key, "%s", key);
    m->until = until;
    m->times = times;
    m->puts++;
    return 0;
}

static void test_store(void)
{
    mem_store m = {0};
    vd_limiter_opts o = {.enabled = true,
                         .store = {mem_get, mem_put, mem_pace_get, mem_pace_put, &m}};
    vd_limiter *l = vd_limiter_new(base, &o);
    vd_limit_set s = set_for("a", &TIGHT);
    got g = {0};
    vd_limiter_rcpt(l, &s, on_grant, &g);
    vd_limiter_feedback(l, &s, VD_SIG_BLOCK, false, "554 5.7.1 blocked using strict-bl.test");
    CHECK(m.puts == 1 && strcmp(m.key, "p:a") == 0 && m.times == 1);
    CHECK(m.until > (double)time(NULL) + 200); /* BREAKER_BASE 300 s, jitter 20 % */
    vd_limiter_free(l);

    l = vd_limiter_new(base, &o); /* "restarted" */
    got d = {0};
    vd_limiter_session(l, &s, on_grant, &d);
    CHECK(d.n == 1 && d.deny && strstr(d.deny, "circuit breaker open for p:a"));
    vd_limit_set other = set_for("b", &TIGHT);
    got ok = {0};
    vd_limiter_session(l, &other, on_grant, &ok);
    CHECK(ok.n == 1 && !ok.deny);
    vd_limiter_free(l);
}

/* ---- on a clock driven by hand ---- */

static double fake_t = 1000.0;
static double fake_clock(void *arg)
{
    (void)arg;
    return fake_t;
}

static const vd_limit SERVER = {.connections = 4,
                                .rcpt_per_session = 50,
                                .sessions_per_minute = 30,
                                .rcpt_per_minute = 900,
                                .rcpt_burst = 5,
                                .unknown_cost = 2};

/* Sends RCPTs on s as fast as the key lets them for `secs` (steps of 0.1 s); returns how many. */
static int drive(vd_limiter *l, const vd_limit_set *s, double secs)
{
    int sent = 0;
    for (double end = fake_t + secs; fake_t < end; fake_t += 0.1) {
        for (;;) {
            got g = {0};
            vd_limiter_wait *w = vd_limiter_rcpt(l, s, on_grant, &g);
            if (w) {
                vd_limiter_cancel(w);
                break;
            }
            sent++;
            vd_limiter_feedback(l, s, VD_SIG_OK, false, "250 ok");
        }
    }
    return sent;
}

/* A server nobody has talked to: one connection, about one RCPT a second, additive growth
 * while the key is the bottleneck and the server stays quiet. */
/* A closed session's slot stays taken a moment: the server counts the connection until it
 * sees the close, and a new one must not overlap it in a "1 at once" count. */
static void test_close_grace(void)
{
    vd_limiter_opts o = {.enabled = true, .clock = fake_clock};
    vd_limiter *l = vd_limiter_new(base, &o);
    vd_limit_set s = set_for("closing", &SERVER); /* a new server: one connection */
    got a = {0}, b = {0}, c = {0};
    CHECK(vd_limiter_session(l, &s, on_grant, &a) == NULL && a.n == 1);
    vd_limiter_session_closed(l, &s);
    vd_limiter_wait *w = vd_limiter_session(l, &s, on_grant, &b);
    CHECK_MSG(w != NULL && b.n == 0, "right after a close, the slot is still taken");
    vd_limiter_cancel(w);
    fake_t += 1.5;
    CHECK_MSG(vd_limiter_session(l, &s, on_grant, &c) == NULL && c.n == 1,
              "after the grace, the slot is free");
    vd_limiter_session_end(l, &s);
    got d = {0};
    CHECK_MSG(vd_limiter_session(l, &s, on_grant, &d) == NULL && d.n == 1,
              "a session given back open frees its slot at once");
    vd_limiter_session_end(l, &s);
    vd_limiter_free(l);
}

/* A rule may start a key elsewhere (limits' start_per_minute: a lab, one's own MX). */
static void test_start_given(void)
{
    vd_limiter_opts o = {.enabled = true, .clock = fake_clock};
    vd_limiter *l = vd_limiter_new(base, &o);
    vd_limit lim = SERVER;
    lim.start_per_minute = 600;
    vd_limit_set s = set_for("lab", &lim);
    got g = {0};
    CHECK(vd_limiter_session(l, &s, on_grant, &g) == NULL && g.n == 1);
    CHECK_MSG(fabs(rate_of(l, "p:lab") - 600) < 1, "starts at the rule's 600/min, not %.1f",
              rate_of(l, "p:lab"));
    CHECK_MSG(vd_limiter_conns(l, "p:lab") == 3, "connections follow the pace: %d",
              vd_limiter_conns(l, "p:lab"));
    vd_limiter_free(l);
}

static void test_gentle_start(void)
{
    vd_limiter_opts o = {.enabled = true, .clock = fake_clock};
    vd_limiter *l = vd_limiter_new(base, &o);
    vd_limit_set s = set_for("new", &SERVER);
    CHECK_MSG(rate_of(l, "p:new") < 0, "no key before its first use");
    got g1 = {0}, g2 = {0};
    CHECK(vd_limiter_session(l, &s, on_grant, &g1) == NULL && g1.n == 1);
    vd_limiter_wait *w = vd_limiter_session(l, &s, on_grant, &g2);
    CHECK_MSG(w != NULL && g2.n == 0, "a second connection to a new server waits");
    vd_limiter_cancel(w);
    CHECK_MSG(fabs(rate_of(l, "p:new") - 60) < 1, "starts at 60/min, not %.1f",
              rate_of(l, "p:new"));
    int first10 = drive(l, &s, 10);
    CHECK_MSG(first10 >= 8 && first10 <= 25, "first 10 s: %d RCPTs (about one a second, growing)",
              first10);
    double r1 = rate_of(l, "p:new");
    drive(l, &s, 10);
    double r2 = rate_of(l, "p:new");
    CHECK_MSG(r2 > r1 && r2 - r1 <= 3 * 30 + 1, "grows additively: %.1f -> %.1f /min", r1, r2);
    CHECK_MSG(vd_limiter_conns(l, "p:new") >= 2, "more connections as the pace grows: %d",
              vd_limiter_conns(l, "p:new"));
    /* a key nobody waits on does not grow */
    double idle = rate_of(l, "p:new");
    fake_t += 60;
    got one = {0};
    vd_limiter_rcpt(l, &s, on_grant, &one);
    CHECK_MSG(rate_of(l, "p:new") == idle, "an idle key kept its pace: %.1f -> %.1f", idle,
              rate_of(l, "p:new"));
    vd_limiter_session_end(l, &s);
    vd_limiter_free(l);
}

/* The cut: a ceiling below what we sent over the window, at least halved, a pause of tens of
 * seconds; a second deferral in the episode: the floor and a longer pause; the budget rests
 * the key; nothing past the pause is sent early. */
static void test_cut_floor_budget(void)
{
    vd_limiter_opts o = {.enabled = true, .clock = fake_clock};
    vd_limiter *l = vd_limiter_new(base, &o);
    vd_limit_set s = set_for("strict", &SERVER);
    drive(l, &s, 30);
    double was = rate_of(l, "p:strict");
    vd_limiter_feedback(l, &s, VD_SIG_SLOW_DOWN, false, "450 4.7.1 too many recipients");
    double cut = rate_of(l, "p:strict"), ceil = vd_limiter_ceiling(l, "p:strict");
    CHECK_MSG(cut <= was / 2 + 1e-9, "first deferral halves at least: %.1f -> %.1f", was, cut);
    CHECK_MSG(ceil > 0 && ceil < was, "a ceiling below the pace it came at: %.1f < %.1f", ceil,
              was);
    double pause = vd_limiter_paused(l, "p:strict");
    CHECK_MSG(pause >= 20 && pause <= 61, "paused %.1f s (tens of seconds)", pause);
    CHECK_MSG(drive(l, &s, pause - 0.5) == 0, "nothing sent during the pause");
    fake_t += 1;
    CHECK(drive(l, &s, 5) > 0);
    CHECK_MSG(rate_of(l, "p:strict") <= ceil + 1e-9, "climbs back no higher than the ceiling");
    /* a second deferral in the same episode: the floor */
    vd_limiter_feedback(l, &s, VD_SIG_SLOW_DOWN, false, "450 4.7.1 too many recipients");
    CHECK_MSG(rate_of(l, "p:strict") <= 1.0 + 1e-9, "second deferral: floor 1/min, not %.2f",
              rate_of(l, "p:strict"));
    CHECK_MSG(vd_limiter_paused(l, "p:strict") >= 119, "second pause %.1f s",
              vd_limiter_paused(l, "p:strict"));
    vd_limiter_stats st;
    vd_limiter_stats_get(l, &st);
    CHECK_MSG(st.rests == 1, "the deferral budget (2) is spent: %lu", st.rests);
    /* the same event: a reply to an RCPT in flight at the cut does not count again */
    fake_t += 200;
    drive(l, &s, 2);
    vd_limiter_free(l);
}

/* 421 at connect: fewer connections, fewer new ones, the RCPT pace untouched. */
static void test_connect_slow_down(void)
{
    vd_limiter_opts o = {.enabled = true, .clock = fake_clock};
    vd_limiter *l = vd_limiter_new(base, &o);
    vd_limit_set s = set_for("anvil", &SERVER);
    drive(l, &s, 40); /* grows to 2+ connections */
    int before = vd_limiter_conns(l, "p:anvil");
    got a = {0}, b = {0};
    vd_limiter_session(l, &s, on_grant, &a);
    vd_limiter_session(l, &s, on_grant, &b);
    CHECK(a.n == 1 && b.n == 1 && before >= 2);
    double rate = rate_of(l, "p:anvil");
    vd_limiter_feedback(l, &s, VD_SIG_SLOW_DOWN, true,
                        "421 4.7.0 mx.shared.test Error: too many connections from 127.0.0.1");
    vd_limiter_session_end(l, &s);
    CHECK_MSG(vd_limiter_conns(l, "p:anvil") == 1, "one connection fewer: %d",
              vd_limiter_conns(l, "p:anvil"));
    CHECK(rate_of(l, "p:anvil") == rate);
    got c = {0};
    vd_limiter_wait *w = vd_limiter_session(l, &s, on_grant, &c);
    CHECK_MSG(w != NULL, "no new session right after a refused connection");
    vd_limiter_cancel(w);
    vd_limiter_session_end(l, &s);
    vd_limiter_free(l);
}

/* What a run learned is in the store; the next run starts near it, not from scratch. */
static void test_remembered_pace(void)
{
    mem_store m = {0};
    vd_limiter_opts o = {.enabled = true,
                         .clock = fake_clock,
                         .store = {mem_get, mem_put, mem_pace_get, mem_pace_put, &m}};
    vd_limiter *l = vd_limiter_new(base, &o);
    vd_limit_set s = set_for("kept", &SERVER);
    drive(l, &s, 60);
    vd_limiter_feedback(l, &s, VD_SIG_SLOW_DOWN, false, "450 4.7.1 too many recipients");
    CHECK_MSG(m.pace_puts >= 1 && m.pace.ceil > 0 && m.pace.deferrals == 1,
              "a deferral is written at once: puts %d ceil %.1f", m.pace_puts, m.pace.ceil);
    double ceil = vd_limiter_ceiling(l, "p:kept");
    vd_limiter_free(l);
    l = vd_limiter_new(base, &o); /* the next run */
    got g = {0};
    vd_limiter_rcpt(l, &s, on_grant, &g);
    double start = rate_of(l, "p:kept");
    CHECK_MSG(fabs(start - ceil) < 1e-6 && start > 60,
              "second run starts at %.1f/min, at the ceiling %.1f (not 60, nor the ramp's pace)",
              start, ceil);
    vd_limiter_free(l);
}

/* A million distinct domains: idle keys are evicted (bounded memory), a new key is still shaped. */
static void test_eviction(void)
{
    vd_limiter_opts o = {.enabled = true, .clock = fake_clock};
    vd_limiter *l = vd_limiter_new(base, &o);
    vd_limit_set s;
    memset(&s, 0, sizeof s);
    snprintf(s.key[VD_SCOPE_GLOBAL], sizeof s.key[0], "g:*");
    s.limit[VD_SCOPE_GLOBAL] = LOOSE;
    s.limit[VD_SCOPE_DOMAIN] = SERVER;
    s.limit[VD_SCOPE_MX] = SERVER;
    vd_limiter_stats st;
    size_t most = 0;
    for (int i = 0; i < 200000; i++) {
        snprintf(s.key[VD_SCOPE_DOMAIN], sizeof s.key[0], "d:dom%d.test", i);
        snprintf(s.key[VD_SCOPE_MX], sizeof s.key[0], "m:10.%d.%d.1", (i >> 8) & 255, i & 255);
        got g = {0};
        vd_limiter_wait *w = vd_limiter_rcpt(l, &s, on_grant, &g);
        if (w) vd_limiter_cancel(w);
        if (i % 1000 == 0) {
            fake_t += 2; /* 2,000 s over the run: keys go idle */
            vd_limiter_stats_get(l, &st);
            if (st.keys > most) most = st.keys;
        }
    }
    vd_limiter_stats_get(l, &st);
    CHECK_MSG(st.evicted > 100000, "idle keys evicted: %lu", st.evicted);
    CHECK_MSG(most < 80000, "live keys stayed bounded: at most %zu", most);
    /* shaping still applies at the end: a new server starts gently */
    vd_limit_set n = set_for("last", &SERVER);
    got a = {0}, b = {0};
    CHECK(vd_limiter_session(l, &n, on_grant, &a) == NULL && a.n == 1);
    vd_limiter_wait *w = vd_limiter_session(l, &n, on_grant, &b);
    CHECK_MSG(w != NULL, "the last key is shaped like the first");
    vd_limiter_cancel(w);
    vd_limiter_session_end(l, &n);
    vd_limiter_free(l);
}

/* The scopes' vocabulary has one spelling: a rule's limits name them so, keys carry their
 * prefix, and an alternative check's endpoint is not a mail server's key. */
static void test_scope_names(void)
{
    static const char *const names[VD_NSCOPES] = {"provider", "mx",        "network",
                                                  "domain",   "source_ip", "global"};
    for (int i = 0; i < VD_NSCOPES; i++)
        CHECK_STR(vd_scope_name((vd_scope)i), names[i]);
    CHECK_STR(vd_scope_name(VD_NSCOPES), "?");
    char k[64];
    vd_scope_key(VD_SCOPE_MX, "192.0.2.1", k, sizeof k);
    CHECK_STR(k, "m:192.0.2.1");
    vd_scope_key(VD_SCOPE_GLOBAL, "*", k, sizeof k);
    CHECK_STR(k, "g:*");
    vd_scope_http_key("yahoo", k, sizeof k);
    CHECK_STR(k, "http:yahoo");
}

/* `ledger show` words a pace's key from the limiter's own table: the sender scopes by their
 * reader's word, any other key whole. */
static void test_key_words(void)
{
    static const struct {
        vd_scope scope;
        const char *id, *said;
    } cases[] = {
        {VD_SCOPE_MX, "192.0.2.1", "server 192.0.2.1"},
        {VD_SCOPE_NETWORK, "192.0.2.0/24", "network 192.0.2.0/24"},
        {VD_SCOPE_PROVIDER, "google", "provider google"},
        {VD_SCOPE_DOMAIN, "example.com", "d:example.com"},
        {VD_SCOPE_GLOBAL, "*", "g:*"},
    };
    char key[64], said[80];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        vd_scope_key(cases[i].scope, cases[i].id, key, sizeof key);
        vd_ledger_key_words(key, said, sizeof said);
        CHECK_STR(said, cases[i].said);
    }
    vd_scope_http_key("yahoo", key, sizeof key);
    vd_ledger_key_words(key, said, sizeof said);
    CHECK_STR(said, "http:yahoo");
    vd_ledger_key_words("m", said, sizeof said);
    CHECK_STR(said, "m");
}

int main(void)
{
    test_scope_names();
    test_key_words();
    base = event_base_new();
    test_disabled();
    test_rcpt_not_behind_sessions();
    test_no_head_of_line();
    test_slow_down_and_block();
    test_store();
    test_gentle_start();
    test_start_given();
    test_close_grace();
    test_cut_floor_budget();
    test_connect_slow_down();
    test_remembered_pace();
    test_eviction();
    event_base_free(base);
    return check_done();
}

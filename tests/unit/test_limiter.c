/* test_limiter.c — the traffic limiter (engine/limiter.c) on a real event loop: grants, caps,
 * the RCPT bucket, separate queues for sessions and RCPTs (the server_limits stall), no
 * head-of-line blocking across keys, adaptive cuts on "slow down", breakers on "block". */
#include "check.h"
#include "limiter.h"

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
    vd_limit_set slow = set_for("slow", &TIGHT), fast = set_for("fast", &LOOSE);
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
    vd_limiter_feedback(l, &s, VD_SIG_SLOW_DOWN, "450 4.7.1 slow down");
    double after = rate_of(l, "p:a");
    CHECK_MSG(after < before * 0.8 && after > 0, "rate %.1f -> %.1f", before, after);
    /* the cut pauses the key: the next RCPT waits about a second */
    got p = {0};
    double t0 = mono();
    vd_limiter_rcpt(l, &s, on_grant, &p);
    run_for(6.0);
    CHECK_MSG(p.n == 1 && p.at - t0 >= 0.8 && p.at - t0 < 5.5,
              "after a cut the next RCPT waited %.2f s", p.at - t0);
    /* the global scope is not a sender scope: a slow-down does not touch it */
    CHECK(rate_of(l, "g:*") >= 300000 - 1);

    /* a block opens the breaker: a new session is denied (defer), an RCPT is not affected */
    vd_limiter_feedback(l, &s, VD_SIG_BLOCK, "554 5.7.1 blocked using strict-bl.test");
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
    vd_limiter_feedback(l, &s, VD_SIG_BLOCK, "554 5.7.1 blocked");
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
} mem_store;

static int mem_get(void *arg, const char *key, double *until, int *times)
{
    mem_store *m = arg;
    m->gets++;
    *until = strcmp(key, m->key) == 0 ? m->until : 0;
    *times = m->times;
    return 0;
}

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
    vd_limiter_opts o = {.enabled = true, .store = {mem_get, mem_put, &m}};
    vd_limiter *l = vd_limiter_new(base, &o);
    vd_limit_set s = set_for("a", &TIGHT);
    got g = {0};
    vd_limiter_rcpt(l, &s, on_grant, &g);
    vd_limiter_feedback(l, &s, VD_SIG_BLOCK, "554 5.7.1 blocked using strict-bl.test");
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

int main(void)
{
    base = event_base_new();
    test_disabled();
    test_rcpt_not_behind_sessions();
    test_no_head_of_line();
    test_slow_down_and_block();
    test_store();
    event_base_free(base);
    return check_done();
}

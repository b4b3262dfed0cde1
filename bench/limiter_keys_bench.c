/* limiter_keys_bench.c — a million distinct domains through the limiter (issue 16, item 5):
 * live keys and memory stay bounded (idle keys are evicted), and shaping still applies at
 * the end. The limiter runs on a hand-driven clock, so the figures are counts and sizes, not
 * times: the run takes a few seconds however busy the machine is.
 *
 *   build/bench/limiter_keys_bench [DOMAINS=1000000] [SECONDS_PER_1000=2]
 *
 * Each domain gets its own domain key and a server key (m:10.x.y.z, 65,536 servers, reused);
 * one RCPT is asked for each and the wait cancelled; the clock moves SECONDS_PER_1000 every
 * 1,000 domains, so a key goes idle after IDLE_EVICT_S of fake time. Prints the most live
 * keys, the keys evicted, VmRSS at 10 % and at the end, and whether a new server is still
 * shaped (a second connection waits). Exit 1 when the keys or the memory were unbounded or
 * the last key went unshaped. */
#include "limiter.h"
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double fake_t = 1000.0;
static double fake_clock(void *arg)
{
    (void)arg;
    return fake_t;
}

static void on_grant(const char *deny, void *arg)
{
    (void)deny;
    (*(int *)arg)++;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    if (f) fclose(f);
    return kib;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    double step = argc > 2 ? atof(argv[2]) : 2.0;
    struct event_base *base = event_base_new();
    vd_limiter_opts o = {.enabled = true, .clock = fake_clock};
    vd_limiter *l = base ? vd_limiter_new(base, &o) : NULL;
    if (!l || n <= 0) {
        fprintf(stderr, "limiter_keys_bench: cannot start (DOMAINS %ld)\n", n);
        return 1;
    }
    const vd_limit server = {.connections = 4,
                             .rcpt_per_session = 50,
                             .sessions_per_minute = 30,
                             .rcpt_per_minute = 900,
                             .rcpt_burst = 5,
                             .unknown_cost = 2};
    const vd_limit loose = {.connections = 1e9, .rcpt_per_minute = 1e9, .rcpt_burst = 1e9};
    vd_limit_set s;
    memset(&s, 0, sizeof s);
    snprintf(s.key[VD_SCOPE_GLOBAL], sizeof s.key[0], "g:*");
    s.limit[VD_SCOPE_GLOBAL] = loose;
    s.limit[VD_SCOPE_DOMAIN] = server;
    s.limit[VD_SCOPE_MX] = server;
    vd_limiter_stats st;
    unsigned long most = 0;
    long rss_early = -1;
    for (long i = 0; i < n; i++) {
        snprintf(s.key[VD_SCOPE_DOMAIN], sizeof s.key[0], "d:dom%ld.test", i);
        snprintf(s.key[VD_SCOPE_MX], sizeof s.key[0], "m:10.%ld.%ld.1", (i >> 8) & 255, i & 255);
        int granted = 0;
        vd_limiter_wait *w = vd_limiter_rcpt(l, &s, on_grant, &granted);
        if (w) vd_limiter_cancel(w);
        if (i % 1000 == 0) {
            fake_t += step;
            vd_limiter_stats_get(l, &st);
            if (st.keys > most) most = st.keys;
        }
        if (i == n / 10) rss_early = rss_kib();
    }
    vd_limiter_stats_get(l, &st);
    long rss_end = rss_kib();
    /* shaping still applies: a server never seen gets one connection, the second waits */
    vd_limit_set last;
    memset(&last, 0, sizeof last);
    snprintf(last.key[VD_SCOPE_MX], sizeof last.key[0], "m:192.0.2.99");
    last.limit[VD_SCOPE_MX] = server;
    int a = 0, b = 0;
    vd_limiter_wait *wa = vd_limiter_session(l, &last, on_grant, &a);
    vd_limiter_wait *wb = vd_limiter_session(l, &last, on_grant, &b);
    bool shaped = wa == NULL && a == 1 && wb != NULL && b == 0;
    if (wb) vd_limiter_cancel(wb);
    if (wa) vd_limiter_cancel(wa);
    bool bounded = most < 200000 && (rss_early < 0 || rss_end < 2 * rss_early + 65536);
    printf("limiter_keys_bench: %ld domains: at most %lu live keys, %lu evicted, %lu live at the "
           "end; VmRSS %ld KiB at 10 %%, %ld KiB at the end; a new server after them is %s\n",
           n, most, st.evicted, st.keys, rss_early, rss_end,
           shaped ? "shaped (its second connection waits)" : "NOT SHAPED");
    vd_limiter_free(l);
    event_base_free(base);
    return bounded && shaped ? 0 : 1;
}

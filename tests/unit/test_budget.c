/* test_budget.c — the warm-up budget (engine/budget.c) on a real ledger with an injected
 * clock: charges come from chunks of VD_BUDGET_CHUNK reserved in the ledger and what was not
 * used goes back at free; a spent budget denies with the use, the budget and the renewal, and
 * logs it once; a refund is spent again; --on-budget wait parks (a new figure lets it go, a
 * cancel drops it) and wakes at the UTC midnight with the new day's figure from the callback;
 * --no-warmup grants everything and still counts it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include "budget.h"
#include "check.h"
#include "ledger.h"

#define DAY 86400L
static const long NOON = 1893499200L; /* 2030-01-01 12:00 UTC */
static char root[] = "/tmp/validora-budget-XXXXXX";

static long clock_at(void *arg)
{
    return *(long *)arg;
}

typedef struct logged {
    int warnings;
    char last[1024];
} logged;

static void on_log(vd_log_level level, const char *msg, void *arg)
{
    logged *l = arg;
    if (level == VD_LOG_WARNING) l->warnings++;
    snprintf(l->last, sizeof l->last, "%s", msg);
}

typedef struct got {
    int calls;
    bool denied;
    char why[512];
} got;

static void on_take(const char *deny, void *arg)
{
    got *g = arg;
    g->calls++;
    g->denied = deny != NULL;
    snprintf(g->why, sizeof g->why, "%s", deny ? deny : "");
}

static vd_ledger *open_ledger(const char *name, long *now)
{
    char dir[256], err[1024];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    char *d = vd_state_dir(dir, err, sizeof err);
    CHECK_MSG(d != NULL, "%s", err);
    vd_ledger *l = d ? vd_ledger_open(d, err, sizeof err) : NULL;
    CHECK_MSG(l != NULL, "%s", err);
    free(d);
    if (l) vd_ledger_set_clock(l, clock_at, now);
    return l;
}

static void test_chunks(struct event_base *base)
{
    long now = NOON;
    vd_ledger *l = open_ledger("chunks", &now);
    if (!l) return;
    vd_budget_opts o = {.enabled = true};
    vd_budget *b = vd_budget_new(base, l, "any", 25, &o);
    got g = {0};
    CHECK(vd_budget_take(b, on_take, &g) == NULL && g.calls == 1 && !g.denied);
    CHECK(vd_ledger_used_today(l, "any", NULL) == VD_BUDGET_CHUNK); /* reserved before spent */
    for (int i = 0; i < 10; i++)
        vd_budget_take(b, on_take, &g);
    CHECK(g.calls == 11 && !g.denied);
    CHECK(vd_ledger_used_today(l, "any", NULL) == 2 * VD_BUDGET_CHUNK);
    vd_budget_free(b); /* 11 charged: the other 9 go back */
    CHECK(vd_ledger_used_today(l, "any", NULL) == 11);
    vd_ledger_close(l);
}

static void test_spent(struct event_base *base)
{
    long now = NOON;
    vd_ledger *l = open_ledger("spent", &now);
    if (!l) return;
    logged lg = {0};
    vd_budget_opts o = {.enabled = true, .log = on_log, .log_arg = &lg};
    vd_budget *b = vd_budget_new(base, l, "192.0.2.7", 3, &o);
    got g = {0};
    for (int i = 0; i < 3; i++)
        vd_budget_take(b, on_take, &g);
    CHECK(g.calls == 3 && !g.denied);
    vd_budget_take(b, on_take, &g);
    CHECK(g.calls == 4 && g.denied);
    CHECK_MSG(strstr(g.why, "source IP 192.0.2.7 spent: 3 of 3 SMTP verifications used today") &&
                  strstr(g.why, "renews at 2030-01-02T00:00:00Z") && strstr(g.why, "in 12 h 0 min"),
              "%s", g.why);
    vd_budget_take(b, on_take, &g);
    CHECK(g.calls == 5 && g.denied);
    CHECK_MSG(lg.warnings == 1, "logged %d times", lg.warnings); /* once, not per address */
    CHECK(strstr(lg.last, "unknown/deferred") != NULL);
    vd_budget_refund(b); /* the limiter refused: it sent nothing */
    vd_budget_take(b, on_take, &g);
    CHECK(g.calls == 6 && !g.denied);
    CHECK(vd_ledger_used_today(l, "192.0.2.7", NULL) == 3);
    vd_budget_free(b);
    vd_ledger_close(l);
}

static void test_wait(struct event_base *base)
{
    long now = NOON;
    vd_ledger *l = open_ledger("wait", &now);
    if (!l) return;
    vd_budget_opts o = {.enabled = true, .wait = true};
    vd_budget *b = vd_budget_new(base, l, "any", 1, &o);
    got a = {0}, p = {0}, c = {0};
    CHECK(vd_budget_take(b, on_take, &a) == NULL && a.calls == 1 && !a.denied);
    CHECK(vd_budget_take(b, on_take, &p) != NULL && p.calls == 0); /* parked */
    vd_budget_wait *w = vd_budget_take(b, on_take, &c);
    CHECK(w != NULL && c.calls == 0);
    vd_budget_set(b, 2); /* a reload raised it: the first parked one goes */
    CHECK(p.calls == 1 && !p.denied && c.calls == 0);
    vd_budget_cancel(w);
    vd_budget_set(b, 10);
    CHECK(c.calls == 0); /* cancelled: never called */
    vd_budget_free(b);
    vd_ledger_close(l);
}

typedef struct day_cb {
    int calls;
    long figure;
} day_cb;

static long on_new_day(void *arg)
{
    day_cb *d = arg;
    d->calls++;
    return d->figure;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

static void test_midnight(struct event_base *base)
{
    long midnight = (NOON / DAY + 1) * DAY;
    long now = midnight - 1;
    vd_ledger *l = open_ledger("midnight", &now);
    if (!l) return;
    day_cb d = {.figure = 4};
    vd_budget_opts o = {.enabled = true, .wait = true, .new_day = on_new_day, .new_day_arg = &d};
    vd_budget *b = vd_budget_new(base, l, "any", 1, &o);
    got a = {0}, p = {0};
    vd_budget_take(b, on_take, &a);
    CHECK(vd_budget_take(b, on_take, &p) != NULL && p.calls == 0);
    now = midnight + 1; /* the day changes before the timer (1.5 s) fires */
    struct event *deadline = evtimer_new(base, on_deadline, base);
    struct timeval tv = {4, 0};
    evtimer_add(deadline, &tv);
    while (p.calls == 0 && evtimer_pending(deadline, NULL))
        event_base_loop(base, EVLOOP_ONCE);
    event_free(deadline);
    CHECK_MSG(p.calls == 1 && !p.denied, "parked one: %d calls, %s", p.calls, p.why);
    CHECK(d.calls == 1 && vd_budget_figure(b) == 4);  /* the new day's figure */
    CHECK(vd_ledger_used_today(l, "any", NULL) == 4); /* min(chunk, 4) reserved today */
    vd_budget_free(b);
    CHECK(vd_ledger_used_today(l, "any", NULL) == 1);
    now = midnight - 1;
    CHECK(vd_ledger_used_today(l, "any", NULL) == 1); /* yesterday's stays spent */
    vd_ledger_close(l);
}

static void test_disabled(struct event_base *base)
{
    long now = NOON;
    vd_ledger *l = open_ledger("disabled", &now);
    if (!l) return;
    vd_budget_opts o = {.enabled = false};
    vd_budget *b = vd_budget_new(base, l, "any", 0, &o);
    got g = {0};
    for (int i = 0; i < 15; i++)
        vd_budget_take(b, on_take, &g);
    CHECK(g.calls == 15 && !g.denied);
    vd_budget_free(b);
    CHECK(vd_ledger_used_today(l, "any", NULL) == 15); /* no cap, still counted */
    vd_ledger_close(l);
}

int main(void)
{
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    struct event_base *base = event_base_new();
    test_chunks(base);
    test_spent(base);
    test_wait(base);
    test_midnight(base);
    test_disabled(base);
    event_base_free(base);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
    return check_done();
}

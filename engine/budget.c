/* budget.c — the warm-up budget of one source IP (see budget.h).
 *
 * Parked requests wait in one FIFO behind one timer set for the next UTC midnight (and for the
 * rest of the way when it fires early): a parked address costs a list entry, never a wake-up
 * before the day changes. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>
#include "budget.h"
#include "ledger.h"
#include "log.h"

#define LATE_S 0.5 /* the midnight timer fires this late: the wall clock must be past midnight */

struct vd_budget_wait {
    vd_budget *b;
    vd_budget_cb cb;
    void *arg;
    vd_budget_wait *next;
};

struct vd_budget {
    struct event_base *base;
    vd_ledger *l;
    char ip[64];
    long figure;
    vd_budget_opts o;
    long avail;     /* reserved in the ledger today and not charged yet */
    long renews_at; /* unix time of the next UTC midnight (the ledger's) */
    bool spent_logged, error_logged;
    vd_budget_wait *head, *tail;
    struct event *timer;
    char msg[512];
};

/* The ledger's clock: "today" here is the ledger's today (a test moves both at once). */
static long now_s(const vd_budget *b)
{
    return vd_ledger_time(b->l);
}

static void set_renewal(vd_budget *b)
{
    long at = 0;
    if (vd_ledger_used_today(b->l, b->ip, &at) >= 0 && at > 0)
        b->renews_at = at;
    else
        b->renews_at = (now_s(b) / 86400 + 1) * 86400;
}

/* A new UTC day: yesterday's reservations stay spent, the curve gives today's figure. */
static void roll_over(vd_budget *b)
{
    if (now_s(b) < b->renews_at) return;
    b->avail = 0;
    b->spent_logged = b->error_logged = false;
    set_renewal(b);
    if (b->o.new_day) {
        long f = b->o.new_day(b->o.new_day_arg);
        if (f >= 0) b->figure = f;
    }
}

/* "renews at 2026-12-02T00:00:00Z (in 3 h 5 min)" */
static void renewal_text(const vd_budget *b, char *buf, size_t len)
{
    time_t at = (time_t)b->renews_at;
    struct tm tm;
    char when[32] = "?";
    if (gmtime_r(&at, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    long left = b->renews_at - now_s(b);
    if (left < 0) left = 0;
    snprintf(buf, len, "renews at %s, the next UTC midnight (in %ld h %ld min)", when, left / 3600,
             left % 3600 / 60);
}

/* Why a charge is refused: the budget is spent. */
static const char *spent_msg(vd_budget *b)
{
    char renew[128];
    renewal_text(b, renew, sizeof renew);
    long used = vd_ledger_used_today(b->l, b->ip, NULL);
    snprintf(b->msg, sizeof b->msg,
             "daily warm-up budget of source IP %s spent: %ld of %ld SMTP verifications used "
             "today; %s",
             b->ip, used < 0 ? b->figure : used, b->figure, renew);
    if (!b->spent_logged) {
        b->spent_logged = true;
        vd_log_to(b->o.log, b->o.log_arg, VD_LOG_WARNING, "%s; %s", b->msg,
                  b->o.wait ? "addresses that need SMTP wait until then (--on-budget wait)"
                            : "addresses that need SMTP are written unknown/deferred for a "
                              "later run (--on-budget defer)");
    }
    return b->msg;
}

/* 1 charged, 0 spent, -1 the ledger failed (b->msg says why). */
static int charge(vd_budget *b)
{
    roll_over(b);
    if (b->avail > 0) {
        b->avail--;
        return 1;
    }
    char err[600];
    long cap = b->o.enabled ? b->figure : LONG_MAX;
    long chunk = b->o.enabled ? VD_BUDGET_CHUNK : VD_BUDGET_CHUNK_UNCAPPED;
    long got = vd_ledger_reserve(b->l, b->ip, chunk, cap, err, sizeof err);
    if (got < 0) {
        snprintf(b->msg, sizeof b->msg, "warm-up budget: the ledger failed: %.400s", err);
        if (!b->error_logged) {
            b->error_logged = true;
            vd_log_to(b->o.log, b->o.log_arg, VD_LOG_ERROR, "%s", b->msg);
        }
        return b->o.enabled ? -1 : 1; /* without a budget, nothing to protect by stopping */
    }
    if (got == 0) return 0;
    b->avail = got - 1;
    return 1;
}

static void arm(vd_budget *b)
{
    if (!b->timer) return;
    double left = (double)(b->renews_at - now_s(b)) + LATE_S;
    if (left < 1) left = 1; /* never spin */
    struct timeval tv = {(time_t)left, (suseconds_t)((left - (double)(time_t)left) * 1e6)};
    evtimer_add(b->timer, &tv);
}

/* Grants parked requests while the budget allows; the rest wait for the next midnight. */
static void serve(vd_budget *b)
{
    while (b->head) {
        vd_budget_wait *w = b->head;
        int c = charge(b);
        if (c == 0) break;
        b->head = w->next;
        if (!b->head) b->tail = NULL;
        vd_budget_cb cb = w->cb;
        void *arg = w->arg;
        free(w);
        cb(c > 0 ? NULL : b->msg, arg);
    }
    if (b->head)
        arm(b);
    else if (b->timer)
        evtimer_del(b->timer);
}

static void on_midnight(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    serve(arg);
}

vd_budget *vd_budget_new(struct event_base *base, vd_ledger *l, const char *ip, long figure,
                         const vd_budget_opts *o)
{
    vd_budget *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->base = base;
    b->l = l;
    snprintf(b->ip, sizeof b->ip, "%s", ip && *ip ? ip : "any");
    b->figure = figure < 0 ? 0 : figure;
    b->o = *o;
    if (!(b->timer = evtimer_new(base, on_midnight, b))) {
        free(b);
        return NULL;
    }
    set_renewal(b);
    return b;
}

void vd_budget_free(vd_budget *b)
{
    if (!b) return;
    if (b->avail > 0) vd_ledger_unreserve(b->l, b->ip, b->avail);
    while (b->head) {
        vd_budget_wait *w = b->head;
        b->head = w->next;
        free(w);
    }
    event_free(b->timer);
    free(b);
}

void vd_budget_set(vd_budget *b, long figure)
{
    if (!b) return;
    b->figure = figure < 0 ? 0 : figure;
    b->spent_logged = false;
    if (b->head) serve(b);
}

long vd_budget_figure(const vd_budget *b)
{
    return b ? b->figure : -1;
}

size_t vd_budget_parked(const vd_budget *b)
{
    size_t n = 0;
    for (const vd_budget_wait *w = b ? b->head : NULL; w; w = w->next)
        n++;
    return n;
}

long vd_budget_left(vd_budget *b)
{
    if (!b || !b->o.enabled) return -1;
    roll_over(b);
    long used = vd_ledger_used_today(b->l, b->ip, NULL);
    if (used < 0) return -1;
    long left = b->figure - used + b->avail;
    return left < 0 ? 0 : left;
}

vd_budget_wait *vd_budget_take(vd_budget *b, vd_budget_cb cb, void *arg)
{
    if (!b) {
        cb(NULL, arg);
        return NULL;
    }
    int c = b->head ? 0 : charge(b); /* parked requests go first */
    if (c != 0 || !b->o.wait) {
        cb(c > 0 ? NULL : c < 0 ? b->msg : spent_msg(b), arg);
        return NULL;
    }
    if (!b->head) spent_msg(b); /* logs it once */
    vd_budget_wait *w = calloc(1, sizeof *w);
    if (!w) {
        cb("out of memory", arg);
        return NULL;
    }
    *w = (vd_budget_wait){.b = b, .cb = cb, .arg = arg};
    if (b->tail)
        b->tail->next = w;
    else
        b->head = w;
    b->tail = w;
    arm(b);
    return w;
}

void vd_budget_cancel(vd_budget_wait *w)
{
    if (!w) return;
    vd_budget *b = w->b;
    vd_budget_wait **pp = &b->head, *prev = NULL;
    while (*pp && *pp != w) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = w->next;
        if (b->tail == w) b->tail = prev;
    }
    free(w);
    if (!b->head) evtimer_del(b->timer);
}

void vd_budget_refund(vd_budget *b)
{
    if (b && now_s(b) < b->renews_at) b->avail++; /* yesterday's cannot be spent today */
}

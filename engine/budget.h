/* budget.h — the warm-up budget of one source IP: how many addresses may open their first
 * SMTP session today (docs/reputation.md, "Warm-up budget").
 *
 * One charge is one address (the caller charges when a probe's first SMTP session is about to
 * open, once the limiter lets it, never per session or retry: addresses waiting at the limiter
 * hold no reservation). Charges are served from verifications this process has reserved in the
 * ledger; when none are left it reserves VD_BUDGET_CHUNK more (vd_ledger_reserve commits them
 * before they are spent, so a crash can only under-spend, and a restart the same day goes on
 * with what the ledger says is left). When the day's budget is spent the policy either denies
 * (the caller defers the address; the reason says how much was used, the budget and when it
 * renews) or parks the request on one timer until the next UTC midnight. The figure comes from
 * the engine (the warm-up curve, rules/validora/warmup.lua): at start-up, at each reload
 * (vd_budget_set), and through the callback it gave when a new UTC day begins.
 *
 * Owns: the reservations this process holds, the parked requests and their timer, the
 * "budget spent" message and logging it once a day.
 * Does not own: the figure (the engine asks the curve), the ledger file (ledger.c), what a
 * deferred address becomes (the rules). No Lua. */
#ifndef VALIDORA_BUDGET_H
#define VALIDORA_BUDGET_H
#include <stdbool.h>
#include "validora/ledger.h"
#include "validora/validora.h"

/* Verifications reserved from the ledger at once. Small, because a kill -9 loses what was
 * reserved and not used (at most CHUNK - 1 of the day's budget: under-spent, never
 * over-spent); not 1, because every reservation is an fsync'd SQLite transaction. */
#define VD_BUDGET_CHUNK 10
/* The same without a cap (--no-warmup): the reservations only count what was verified, for
 * the ledger's history, and protect nothing, so a kill -9 may over-count by at most this less
 * one; 10 would be an fsync'd transaction every 10 addresses (400 a second at 4,000 addr/s:
 * the bench's verify -o ran at half its speed). */
#define VD_BUDGET_CHUNK_UNCAPPED 1000

typedef struct vd_budget vd_budget;
typedef struct vd_budget_wait vd_budget_wait;

/* The day's figure after a new UTC day began (the IP is a day older); < 0 keeps the last. */
typedef long (*vd_budget_day_cb)(void *arg);

typedef struct vd_budget_opts {
    bool enabled; /* false (--no-warmup): no cap; what is verified is still counted */
    bool wait;    /* --on-budget wait: park until the next UTC midnight (else deny) */
    vd_log_cb log;
    void *log_arg;
    vd_budget_day_cb new_day; /* may be NULL: the figure stays */
    void *new_day_arg;
} vd_budget_opts;

/* deny is NULL when the charge was granted, else why not (valid during the call). */
typedef void (*vd_budget_cb)(const char *deny, void *arg);

/* A budget of `figure` verifications a day for ip (canonical, or "any") in ledger l, which
 * must outlive it. NULL when out of memory. */
vd_budget *vd_budget_new(struct event_base *base, vd_ledger *l, const char *ip, long figure,
                         const vd_budget_opts *o);
/* Gives back what was reserved and not used (today's only), drops parked requests. */
void vd_budget_free(vd_budget *b);
/* A new figure for today (a reload); parked requests it makes room for go at once. */
void vd_budget_set(vd_budget *b, long figure);
long vd_budget_figure(const vd_budget *b);

/* Requests parked until the next UTC midnight. */
size_t vd_budget_parked(const vd_budget *b);
/* Today's figure minus what the ledger says is used (reservations of running processes
 * count as used), plus what this process reserved and has not charged; -1 without a budget
 * or when the ledger cannot say. */
long vd_budget_left(vd_budget *b);

/* Charges one verification. cb runs once: before this returns (NULL is returned) when
 * granted or denied at once, else later from the loop (a parked request). */
vd_budget_wait *vd_budget_take(vd_budget *b, vd_budget_cb cb, void *arg);
/* Stops a parked request; its cb is not called. */
void vd_budget_cancel(vd_budget_wait *w);
/* A granted charge that sent nothing after all (the limiter refused the session): it goes
 * back to this process's reservations. */
void vd_budget_refund(vd_budget *b);

#endif

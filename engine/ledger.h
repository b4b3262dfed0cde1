/* ledger.h — the engine's view of the ledger (ledger.c): the public API of
 * validora/ledger.h, and what only tests use.
 *
 * Owns: nothing beyond validora/ledger.h but the test hooks below and the ledger's clock for
 * the engine's own modules (budget.c measures "today" by the same clock).
 * Does not own: budgets, warm-up or breaker policy (the engine). No Lua. */
#ifndef VALIDORA_ENGINE_LEDGER_H
#define VALIDORA_ENGINE_LEDGER_H
#include "validora/ledger.h"

/* The ledger's clock, unix seconds: time(NULL), or the test clock below. */
long vd_ledger_time(const vd_ledger *l);
/* Tests only: the ledger's clock (unix seconds), instead of time(NULL); now = NULL restores
 * it. This is how a test crosses UTC midnight; there is no environment variable for it. */
void vd_ledger_set_clock(vd_ledger *l, long (*now)(void *arg), void *arg);
/* Deletes day rows older than VD_LEDGER_KEEP_DAYS and closed breakers (vd_ledger_open does;
 * a test calls it again after setting the clock). 0 or -1 with err. */
int vd_ledger_prune(vd_ledger *l, char *err, size_t errlen);
/* PRAGMA integrity_check: 0 when the file is sound, else -1 with its first complaint. */
int vd_ledger_integrity(vd_ledger *l, char *err, size_t errlen);

#endif

/* cli_progress.h — the progress line of `validora verify` on stderr (cli_progress.c): done of
 * total, rate, ETA, counts by status, and what the engine holds back (vd_engine_stats). On a
 * terminal one line rewritten with \r a few times a second; forced onto anything else
 * (--progress), a line a second. A final line at the end. CLI layer: public headers only. */
#ifndef VALIDORA_CLI_PROGRESS_H
#define VALIDORA_CLI_PROGRESS_H
#include <stdbool.h>
#include <stdio.h>
#include "validora/record.h"
#include "validora/validora.h"

struct event_base;

typedef struct vd_progress vd_progress;

/* total: the addresses of the input, -1 when not known (stdin); by_status (or NULL): the
 * statuses of the records already in the output (--resume), by vd_status. The engine is asked for
 * its stats at each update. NULL when out of memory. */
vd_progress *vd_progress_new(struct event_base *base, FILE *err, vd_engine *e, long total,
                             const long by_status[VD_STATUS_COUNT]);
/* An input line skipped: it had its record already (--resume). It counts as done. */
void vd_progress_skip(vd_progress *p);
/* A record of this run: its status index (as above) and whether its reason is deferred. */
void vd_progress_record(vd_progress *p, int status, bool deferred);
/* Clears the line on a terminal, before something else is printed on stderr (it is drawn
 * again at the next update). */
void vd_progress_clear(vd_progress *p);
/* The final line (ending in \n) and the end of updates. Then free. NULL is a no-op for both. */
void vd_progress_finish(vd_progress *p);
void vd_progress_free(vd_progress *p);

#endif

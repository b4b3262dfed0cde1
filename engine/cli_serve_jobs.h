/* cli_serve_jobs.h — serve's jobs (cli_serve_jobs.c): lists of addresses verified in the
 * background and kept under STATE_DIR/serve/jobs, resumed at start, expired when old.
 * CLI layer: public headers (include/validora/) only; the lists it takes come from the body
 * parser (cli_serve_parse.h), the records it decides are counted in the metrics
 * (cli_serve_metrics.h). */
#ifndef VALIDORA_CLI_SERVE_JOBS_H
#define VALIDORA_CLI_SERVE_JOBS_H
#include <stddef.h>
#include "cli_serve_metrics.h" /* sv_metrics, sv_gauges */
#include "cli_serve_parse.h"   /* sv_list */
#include "validora/record.h"
#include "validora/validora.h"

struct event_base;
struct evbuffer;

typedef struct sv_limits {
    int max_jobs;          /* jobs kept, finished or not */
    int max_job_addresses; /* addresses in one job */
    double job_ttl;        /* seconds a finished job is kept */
    int concurrency;       /* addresses in flight, all jobs together */
} sv_limits;

typedef struct sv_jobs sv_jobs;
typedef struct sv_job sv_job;

/* Opens the job store under dir (STATE_DIR/serve/jobs, created), loads the jobs kept there
 * and queues the unfinished ones again (their addresses without a complete record). Records
 * are counted in m. NULL with err. */
sv_jobs *sv_jobs_open(struct event_base *base, vd_engine *e, const char *dir, const sv_limits *lim,
                      sv_metrics *m, char *err, size_t errlen);
/* Writes every job's state and frees the store; addresses in flight are redone next start. */
void sv_jobs_free(sv_jobs *s);

/* Creates a job for the list (taken over: l is emptied). Returns the job, or NULL with errno:
 * ENOSPC when max_jobs are kept, EIO when its files cannot be written (err says why). */
sv_job *sv_jobs_create(sv_jobs *s, sv_list *l, char *err, size_t errlen);
sv_job *sv_jobs_find(sv_jobs *s, const char *id);
const char *sv_job_id(const sv_job *j);
/* The job's progress as a JSON object, appended to out. */
void sv_job_progress(const sv_job *j, struct evbuffer *out);
/* Appends the job's records so far: JSON Lines, or the msgpack stream (VD_FMT_MSGPACK).
 * Returns 0, or -1 with err (the file could not be read). */
int sv_job_results(const sv_job *j, vd_format fmt, struct evbuffer *out, char *err, size_t errlen);
/* Removes the job and its files; its addresses in flight are dropped when they finish. */
void sv_jobs_delete(sv_jobs *s, sv_job *j);
/* Starts addresses up to the concurrency (after a record, a new job, a stop being lifted). */
void sv_jobs_pump(sv_jobs *s);
/* Stop starting addresses (SIGTERM): those in flight finish and are written. */
void sv_jobs_stop(sv_jobs *s);
/* Addresses of jobs in flight now. */
size_t sv_jobs_inflight(const sv_jobs *s);
void sv_jobs_gauges(const sv_jobs *s, sv_gauges *g);

#endif

/* cli_serve.h — what the files of `validora serve` share: the HTTP front (cli_serve.c), the
 * request bodies (cli_serve_parse.c), the job store (cli_serve_jobs.c) and the metrics
 * (cli_serve_metrics.c).
 * CLI layer: public headers (include/validora/) and cli.h only. */
#ifndef VALIDORA_CLI_SERVE_H
#define VALIDORA_CLI_SERVE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "cli.h"
#include "validora/record.h"

struct event_base;
struct evbuffer;

/* ---- metrics (cli_serve_metrics.c) ---- */

typedef struct sv_metrics sv_metrics;
sv_metrics *sv_metrics_new(void);
void sv_metrics_free(sv_metrics *m);
/* Counts one record: by status, reason and provider; its deciding SMTP reply's class; its
 * duration in the histogram. */
void sv_metrics_record(sv_metrics *m, const vd_record *rec);
/* Counts one HTTP reply by its status code. */
void sv_metrics_http(sv_metrics *m, int code);

/* What the front and the store add to the exposition: gauges of the moment. */
typedef struct sv_gauges {
    long jobs_queued, jobs_running, jobs_done; /* jobs kept, by state */
    long job_addresses_pending;                /* addresses of unfinished jobs without a record */
    long connections;                          /* HTTP connections open */
    long requests_waiting;                     /* POST /v1/verify waiting for their record */
    bool stopping;
} sv_gauges;
/* Appends the Prometheus text exposition (version 0.0.4) of everything to out. */
int sv_metrics_render(sv_metrics *m, vd_engine *e, const sv_gauges *g, struct evbuffer *out);

/* ---- jobs (cli_serve_jobs.c) ---- */

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

/* A list of addresses being parsed from a request body. */
typedef struct sv_list {
    char *buf; /* the addresses, each ending in '\n' */
    size_t len, cap;
    long n;
} sv_list;
/* Appends one address (len bytes, no '\n', '\r' or NUL in it). -1 when out of memory. */
int sv_list_add(sv_list *l, const char *s, size_t len);
void sv_list_free(sv_list *l);

/* ---- request bodies (cli_serve_parse.c) ---- */

#define SV_VERIFY_BODY_MAX 16384 /* POST /v1/verify: {"email": ...} with room for any address */

/* A POST /v1/verify body: a JSON object {"email": "..."} and nothing else (a UTF-8 BOM
 * skipped). 0 with *email (malloc'd, NUL-terminated, *len bytes, NULs possible), or the
 * HTTP status of the error (400, 413, 500) with err. */
int sv_parse_verify(const char *b, size_t n, char **email, size_t *len, char *err, size_t errlen);
/* A POST /v1/jobs body of media type `type` (lower case, no parameters): application/json
 * (an array of strings), text/plain (one a line) or text/csv (a header row, then the column
 * `column`: a name, or N from 1; NULL: "email"); a UTF-8 BOM skipped. Appends at most max
 * addresses to l. 0, or the HTTP status of the error (400 bad list or none, 413 past max,
 * 415 another type, 500 out of memory) with err, l freed. */
int sv_parse_list(const char *type, const char *column, const char *b, size_t n, long max,
                  sv_list *l, char *err, size_t errlen);

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

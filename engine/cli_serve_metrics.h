/* cli_serve_metrics.h — serve's Prometheus exposition (cli_serve_metrics.c): counters from
 * records, the HTTP replies by status, the duration histogram, and the gauges the front and
 * the job store add at render time.
 * CLI layer: public headers (include/validora/) only. */
#ifndef VALIDORA_CLI_SERVE_METRICS_H
#define VALIDORA_CLI_SERVE_METRICS_H
#include <stdbool.h>
#include "validora/record.h"
#include "validora/validora.h"

struct evbuffer;

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

#endif

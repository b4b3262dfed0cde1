/* cli_serve_metrics.c — `GET /metrics` of `validora serve`: the Prometheus text exposition
 * format (version 0.0.4) of what this process has verified, and of the engine's state.
 *
 * Owns: the metric names, their help, the counters kept from records (by status, reason and
 * provider; the deciding SMTP reply's class; the duration histogram) and HTTP replies, and
 * rendering with label values escaped. The label sets are bounded: reasons and providers come
 * from the rules, but past MAX_SERIES combinations the rest are counted as reason="other",
 * provider="other", so a rule with odd reasons cannot grow the exposition without end.
 * Does not own: the engine's numbers (vd_engine_stats_get), the jobs' (cli_serve_jobs.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include "cli_serve_metrics.h"

#define MAX_SERIES 512 /* status x reason x provider combinations kept apart */
#define LABEL_MAX  64  /* bytes of a reason or provider label value; longer ones are cut */

/* Verification durations, seconds: from a cached DNS verdict to a greylisting retry. */
static const double BUCKETS[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900};
#define NBUCKETS (sizeof BUCKETS / sizeof BUCKETS[0])

static const int HTTP_CODES[] = {200, 202, 204, 400, 401, 404, 405, 413, 415, 429, 500, 503};
#define NHTTP (sizeof HTTP_CODES / sizeof HTTP_CODES[0])

typedef struct series {
    char status[16], reason[LABEL_MAX], provider[LABEL_MAX];
    unsigned long n;
} series;

struct sv_metrics {
    series *s;
    size_t n;
    unsigned long smtp_class[6]; /* index 0: no SMTP reply; 1..5: 1xx..5xx */
    unsigned long hist[NBUCKETS];
    unsigned long hist_count;
    double hist_sum;
    unsigned long http[NHTTP + 1]; /* the last: any other code */
};

sv_metrics *sv_metrics_new(void)
{
    sv_metrics *m = calloc(1, sizeof *m);
    if (m && !(m->s = calloc(MAX_SERIES, sizeof *m->s))) {
        free(m);
        return NULL;
    }
    return m;
}

void sv_metrics_free(sv_metrics *m)
{
    if (!m) return;
    free(m->s);
    free(m);
}

static series *find_series(sv_metrics *m, const char *status, const char *reason,
                           const char *provider)
{
    for (size_t i = 0; i < m->n; i++) {
        series *s = &m->s[i];
        if (!strcmp(s->status, status) && !strcmp(s->reason, reason) &&
            !strcmp(s->provider, provider))
            return s;
    }
    return NULL;
}

static series *add_series(sv_metrics *m, const char *status, const char *reason,
                          const char *provider)
{
    series *s = &m->s[m->n++];
    snprintf(s->status, sizeof s->status, "%s", status);
    snprintf(s->reason, sizeof s->reason, "%s", reason);
    snprintf(s->provider, sizeof s->provider, "%s", provider);
    s->n = 0;
    return s;
}

/* Past MAX_SERIES - OVERFLOW_SLOTS combinations, a new one is counted as (status, "other",
 * "other"); past MAX_SERIES - 1, as ("other", "other", "other"), which the last slot is kept
 * for. Whatever the labels (a rule's reason may itself be "other"), m->n never passes
 * MAX_SERIES. */
#define OVERFLOW_SLOTS 8
static void count_series(sv_metrics *m, const char *status_in, const char *reason_in,
                         const char *provider_in)
{
    char status[16], reason[LABEL_MAX], provider[LABEL_MAX]; /* cut as they are kept */
    snprintf(status, sizeof status, "%s", status_in);
    snprintf(reason, sizeof reason, "%s", reason_in);
    snprintf(provider, sizeof provider, "%s", provider_in);
    series *s = find_series(m, status, reason, provider);
    if (!s && m->n < MAX_SERIES - OVERFLOW_SLOTS) s = add_series(m, status, reason, provider);
    if (!s) s = find_series(m, status, "other", "other");
    if (!s && m->n < MAX_SERIES - 1) s = add_series(m, status, "other", "other");
    if (!s) s = find_series(m, "other", "other", "other");
    if (!s) s = add_series(m, "other", "other", "other");
    s->n++;
}

void sv_metrics_record(sv_metrics *m, const vd_record *rec)
{
    count_series(m, rec->status ? rec->status : vd_status_name(VD_STATUS_UNKNOWN),
                 rec->reason ? rec->reason : "", rec->provider ? rec->provider : "");
    int c =
        rec->has_smtp && rec->smtp_code >= 100 && rec->smtp_code < 600 ? rec->smtp_code / 100 : 0;
    m->smtp_class[c]++;
    double secs = (double)rec->elapsed_ms / 1000.0;
    for (size_t i = 0; i < NBUCKETS; i++)
        if (secs <= BUCKETS[i]) m->hist[i]++;
    m->hist_count++;
    m->hist_sum += secs;
}

void sv_metrics_http(sv_metrics *m, int code)
{
    size_t i = 0;
    while (i < NHTTP && HTTP_CODES[i] != code)
        i++;
    m->http[i]++;
}

/* A label value: backslash, double quote and line feed escaped. */
static void label(struct evbuffer *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            evbuffer_add_printf(out, "\\%c", *v);
        else if (*v == '\n')
            evbuffer_add(out, "\\n", 2);
        else
            evbuffer_add(out, v, 1);
    }
}

static void head(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(struct evbuffer *out, const char *name, const char *type, const char *help,
                double v)
{
    head(out, name, type, help);
    evbuffer_add_printf(out, "%s %.17g\n", name, v);
}

static void render_records(const sv_metrics *m, struct evbuffer *out)
{
    head(out, "validora_verifications_total", "counter",
         "Addresses verified by this process, by status, reason and provider (the rule).");
    for (size_t i = 0; i < m->n; i++) {
        const series *s = &m->s[i];
        evbuffer_add_printf(out, "validora_verifications_total{status=\"");
        label(out, s->status);
        evbuffer_add_printf(out, "\",reason=\"");
        label(out, s->reason);
        evbuffer_add_printf(out, "\",provider=\"");
        label(out, s->provider);
        evbuffer_add_printf(out, "\"} %lu\n", s->n);
    }
    head(out, "validora_smtp_replies_total", "counter",
         "The deciding SMTP reply of each verification, by code class (none: no reply).");
    static const char *const cls[] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    for (int c = 0; c < 6; c++)
        evbuffer_add_printf(out, "validora_smtp_replies_total{class=\"%s\"} %lu\n", cls[c],
                            m->smtp_class[c]);
    head(out, "validora_verification_duration_seconds", "histogram",
         "Time from an address's start to its record (a record's elapsed_ms).");
    for (size_t i = 0; i < NBUCKETS; i++)
        evbuffer_add_printf(out, "validora_verification_duration_seconds_bucket{le=\"%g\"} %lu\n",
                            BUCKETS[i], m->hist[i]);
    evbuffer_add_printf(out,
                        "validora_verification_duration_seconds_bucket{le=\"+Inf\"} %lu\n"
                        "validora_verification_duration_seconds_sum %.17g\n"
                        "validora_verification_duration_seconds_count %lu\n",
                        m->hist_count, m->hist_sum, m->hist_count);
}

static void render_engine(vd_engine *e, struct evbuffer *out)
{
    vd_engine_stats st;
    vd_engine_stats_get(e, &st);
    head(out, "validora_rules_info", "gauge",
         "The current rule generation: its hash and load number as labels, value 1.");
    evbuffer_add_printf(out, "validora_rules_info{generation=\"%s\",id=\"%u\"} 1\n", st.generation,
                        st.generation_id);
    one(out, "validora_in_flight", "gauge", "Addresses started and without a record yet.",
        (double)st.inflight);
    one(out, "validora_dns_queries_total", "counter", "DNS queries sent.", (double)st.dns_queries);
    one(out, "validora_dns_cache_hits_total", "counter", "DNS lookups answered from the TTL cache.",
        (double)st.dns_cache_hits);
    one(out, "validora_throttle_waits_total", "counter",
        "SMTP sessions and RCPTs the traffic shaper made wait.", (double)st.throttle_waits);
    one(out, "validora_throttle_parked", "gauge",
        "SMTP sessions and RCPTs waiting in the traffic shaper now.", (double)st.parked_throttle);
    one(out, "validora_throttle_deferred_total", "counter",
        "Addresses the traffic shaper gave back unprobed (a circuit breaker open).",
        (double)st.throttle_deferred);
    one(out, "validora_slow_downs_total", "counter", "Rate deferrals (\"slow down\") received.",
        (double)st.slow_downs);
    one(out, "validora_blocks_total", "counter", "Blocks received (each opens a breaker).",
        (double)st.blocks);
    one(out, "validora_breakers_open", "gauge", "Circuit breakers open now.",
        (double)st.breakers_open);
    head(out, "validora_budget_left", "gauge",
         "What is left of today's warm-up budget of the source IP (absent: no budget).");
    if (st.budget_left >= 0) {
        evbuffer_add_printf(out, "validora_budget_left{source_ip=\"");
        label(out, st.source_ip);
        evbuffer_add_printf(out, "\"} %ld\n", st.budget_left);
    }
    head(out, "validora_budget", "gauge", "Today's warm-up budget of the source IP.");
    if (st.budget >= 0) {
        evbuffer_add_printf(out, "validora_budget{source_ip=\"");
        label(out, st.source_ip);
        evbuffer_add_printf(out, "\"} %ld\n", st.budget);
    }
    one(out, "validora_budget_parked", "gauge",
        "Addresses waiting for the next day's budget (--on-budget wait).",
        (double)st.parked_budget);
}

int sv_metrics_render(sv_metrics *m, vd_engine *e, const sv_gauges *g, struct evbuffer *out)
{
    render_records(m, out);
    render_engine(e, out);
    head(out, "validora_jobs", "gauge", "Jobs kept, by state.");
    evbuffer_add_printf(out,
                        "validora_jobs{state=\"queued\"} %ld\nvalidora_jobs{state=\"running\"} "
                        "%ld\nvalidora_jobs{state=\"done\"} %ld\n",
                        g->jobs_queued, g->jobs_running, g->jobs_done);
    one(out, "validora_job_addresses_pending", "gauge",
        "Addresses of unfinished jobs without a record yet.", (double)g->job_addresses_pending);
    one(out, "validora_http_connections", "gauge", "HTTP connections open.",
        (double)g->connections);
    one(out, "validora_verify_requests_waiting", "gauge",
        "POST /v1/verify requests waiting for their record.", (double)g->requests_waiting);
    one(out, "validora_stopping", "gauge", "1 after SIGTERM: no new work is taken.",
        g->stopping ? 1 : 0);
    head(out, "validora_http_responses_total", "counter", "HTTP responses sent, by status code.");
    for (size_t i = 0; i < NHTTP; i++)
        evbuffer_add_printf(out, "validora_http_responses_total{code=\"%d\"} %lu\n", HTTP_CODES[i],
                            m->http[i]);
    evbuffer_add_printf(out, "validora_http_responses_total{code=\"other\"} %lu\n", m->http[NHTTP]);
    return 0;
}

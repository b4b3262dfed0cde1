/* test_metrics.c — serve's /metrics label sets (engine/cli_serve_metrics.c, compiled in here:
 * it is CLI code, not in libvalidora): however many odd reasons and providers the rules give,
 * and whatever they are ("other" included), the series never pass their array, and every
 * record is counted once.
 * Does not test: the exposition's syntax (tests/functional/serve.sh runs promtool). */
#include "../../engine/cli_serve_metrics.c"
#include "check.h"

static unsigned long total(const sv_metrics *m)
{
    unsigned long t = 0;
    for (size_t i = 0; i < m->n; i++)
        t += m->s[i].n;
    return t;
}

static void record(sv_metrics *m, const char *status, const char *reason, const char *provider)
{
    vd_record r = {.status = status, .reason = reason, .provider = provider};
    sv_metrics_record(m, &r);
}

int main(void)
{
    char reason[80], provider[80];
    /* The old overflow: reason exactly "other", providers all different. */
    sv_metrics *m = sv_metrics_new();
    CHECK(m != NULL);
    for (int i = 0; i < 2000; i++) {
        snprintf(provider, sizeof provider, "p%d", i);
        record(m, "unknown", "other", provider);
    }
    CHECK_MSG(m->n <= MAX_SERIES, "%zu series", m->n);
    CHECK(total(m) == 2000);
    sv_metrics_free(m);

    /* Many statuses (longer than the label keeps), reasons and providers. */
    m = sv_metrics_new();
    for (int i = 0; i < 5000; i++) {
        char status[40];
        snprintf(status, sizeof status, "status-number-%d-long", i % 700);
        snprintf(reason, sizeof reason, "%s", i % 3 ? "other" : "r");
        snprintf(provider, sizeof provider, "%s%d", i % 5 ? "other" : "p", i);
        record(m, status, reason, provider);
    }
    CHECK_MSG(m->n <= MAX_SERIES, "%zu series", m->n);
    CHECK(total(m) == 5000);
    /* The exposition of the records renders every series. */
    struct evbuffer *out = evbuffer_new();
    render_records(m, out);
    CHECK(evbuffer_get_length(out) > 0);
    evbuffer_free(out);
    sv_metrics_free(m);

    /* A long status is cut, and the cut one is matched: one series, not one per record. */
    m = sv_metrics_new();
    for (int i = 0; i < 100; i++)
        record(m, "a-status-longer-than-sixteen", "r", "p");
    CHECK(m->n == 1);
    CHECK(total(m) == 100);
    sv_metrics_free(m);
    return check_done();
}

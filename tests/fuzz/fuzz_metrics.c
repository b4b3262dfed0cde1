/* fuzz_metrics.c — libFuzzer target for serve's /metrics label path (engine/cli_serve_metrics.c,
 * compiled in): records whose status, reason and provider come from the input are counted,
 * then the records' exposition is rendered.
 *
 * Input: NUL-separated triples status, reason, provider (a missing field is ""), repeated.
 * Invariants: the series never pass MAX_SERIES, every record is counted exactly once, and
 * every rendered line is either a comment or a sample whose label values hold no raw line
 * feed. ASan catches writes past the series array. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../engine/cli_serve_metrics.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The engine's part of the exposition is not under test: never called here. */
void vd_engine_stats_get(vd_engine *e, vd_engine_stats *st)
{
    (void)e;
    memset(st, 0, sizeof *st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    sv_metrics *m = sv_metrics_new();
    const char *f[3];
    size_t at = 0, records = 0;
    /* Each input is also replayed a few times, so small inputs reach the overflow. */
    for (int round = 0; round < 4 && m; round++) {
        at = 0;
        while (at <= size) {
            for (int k = 0; k < 3; k++) {
                f[k] = at <= size ? buf + at : "";
                at += strlen(f[k]) + 1;
            }
            char status[32], provider[96];
            snprintf(status, sizeof status, "%s", f[0]);
            snprintf(provider, sizeof provider, "%s%d", f[2], (int)(records % 300));
            vd_record r = {.status = status, .reason = f[1], .provider = provider};
            sv_metrics_record(m, &r);
            records++;
        }
    }
    if (m) {
        if (m->n > MAX_SERIES) abort();
        unsigned long t = 0;
        for (size_t i = 0; i < m->n; i++)
            t += m->s[i].n;
        if (t != records) abort();
        struct evbuffer *out = evbuffer_new();
        render_records(m, out);
        size_t len = evbuffer_get_length(out);
        const char *text = (const char *)evbuffer_pullup(out, -1);
        /* Every line: a comment or NAME{...} VALUE: a label's raw line feed would start a line
         * with something else. */
        for (size_t i = 0; i < len;) {
            const char *nl = memchr(text + i, '\n', len - i);
            size_t e = nl ? (size_t)(nl - text) : len;
            if (text[i] != '#' && strncmp(text + i, "validora_", 9) != 0) abort();
            i = e + 1;
        }
        evbuffer_free(out);
    }
    sv_metrics_free(m);
    free(buf);
    return 0;
}

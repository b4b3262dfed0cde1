/* cli_progress.c — the progress line of `validora verify` (cli_progress.h):
 *   validora verify: 12345/20000 (61.7%), 850/s, ETA 0:00:09; 5000 deliverable, 3000
 *   undeliverable, 4000 risky, 345 unknown (12 deferred); 256 in flight, 3 throttled,
 *   0 waiting for budget, 0 breakers open, budget 970 left
 * (one line). The rate is this run's (records written / seconds since it started), the ETA
 * what is left of total at that rate.
 *
 * Owns: the line's content and wording, its pace, drawing and clearing it.
 * Does not own: whether it is shown (cli_verify.c decides: --progress, a terminal), counting
 * the input (cli_verify.c), the engine's numbers (vd_engine_stats_get). */
#include "cli_progress.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <unistd.h>
#include <event2/event.h>

#define TTY_EVERY_S 0.25 /* a terminal: redrawn 4 times a second, which reads as live */
#define LOG_EVERY_S 1.0  /* anything else (forced): a line a second, for a log */

struct vd_progress {
    FILE *err;
    bool tty, drawn;
    vd_engine *engine;
    struct event *tick;
    long total, before, written, deferred; /* before: skipped (--resume) */
    long by_status[VD_STATUS_COUNT];       /* by vd_status */
    struct timeval started;
};

static double since(const struct timeval *t)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_usec - t->tv_usec) / 1e6;
}

static void clock_text(char *buf, size_t len, double secs)
{
    long s = (long)(secs + 0.5);
    snprintf(buf, len, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
}

/* The line, without a line end. */
static void render(vd_progress *p, char *buf, size_t len)
{
    double secs = since(&p->started);
    double rate = secs > 0 ? (double)p->written / secs : 0;
    long done = p->before + p->written;
    size_t n = 0;
#define ADD(...)                                                                                   \
    do {                                                                                           \
        int k = snprintf(buf + n, len - n, __VA_ARGS__);                                           \
        if (k > 0) n = (size_t)k < len - n ? n + (size_t)k : len - 1;                              \
    } while (0)
    ADD("validora verify: %ld", done);
    if (p->total >= 0) {
        ADD("/%ld (%.1f%%)", p->total, p->total ? 100.0 * (double)done / (double)p->total : 100.0);
    }
    ADD(", %.0f/s", rate);
    if (p->total >= 0 && done < p->total) {
        char eta[32] = "?";
        if (rate > 0) clock_text(eta, sizeof eta, (double)(p->total - done) / rate);
        ADD(", ETA %s", eta);
    }
    for (int s = 0; s < VD_STATUS_COUNT; s++)
        ADD("%s %ld %s", s ? "," : ";", p->by_status[s], vd_status_name((vd_status)s));
    ADD(" (%ld %s)", p->deferred, VD_REASON_DEFERRED);
    vd_engine_stats st;
    vd_engine_stats_get(p->engine, &st);
    ADD("; %zu in flight, %zu throttled, %zu waiting for budget, %zu breakers open", st.inflight,
        st.parked_throttle, st.parked_budget, st.breakers_open);
    if (st.budget_left >= 0) ADD(", budget %ld left", st.budget_left);
#undef ADD
}

static void draw(vd_progress *p, bool last)
{
    char line[512];
    render(p, line, sizeof line);
    if (p->tty) {
        struct winsize ws;
        /* never wider than the terminal: a wrapped line cannot be rewritten with \r */
        if (ioctl(fileno(p->err), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 &&
            strlen(line) >= ws.ws_col)
            line[ws.ws_col - 1] = '\0';
        fprintf(p->err, "\r%s\033[K%s", line, last ? "\n" : "");
        p->drawn = !last;
    } else {
        fprintf(p->err, "%s\n", line);
    }
    fflush(p->err);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    draw(arg, false);
}

vd_progress *vd_progress_new(struct event_base *base, FILE *err, vd_engine *e, long total,
                             const long by_status[VD_STATUS_COUNT])
{
    vd_progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->err = err;
    p->tty = isatty(fileno(err));
    p->engine = e;
    p->total = total;
    if (by_status) memcpy(p->by_status, by_status, sizeof p->by_status);
    gettimeofday(&p->started, NULL);
    double every = p->tty ? TTY_EVERY_S : LOG_EVERY_S;
    struct timeval tv = {(time_t)every, (suseconds_t)((every - (double)(time_t)every) * 1e6)};
    if (!(p->tick = event_new(base, -1, EV_PERSIST, on_tick, p)) || event_add(p->tick, &tv)) {
        vd_progress_free(p);
        return NULL;
    }
    return p;
}

void vd_progress_skip(vd_progress *p)
{
    if (p) p->before++;
}

void vd_progress_record(vd_progress *p, int status, bool deferred)
{
    if (!p) return;
    p->written++;
    p->by_status[status >= 0 && status < 4 ? status : 3]++;
    if (deferred) p->deferred++;
}

void vd_progress_clear(vd_progress *p)
{
    if (!p || !p->drawn) return;
    fputs("\r\033[K", p->err);
    p->drawn = false;
}

void vd_progress_finish(vd_progress *p)
{
    if (!p || !p->tick) return;
    event_free(p->tick);
    p->tick = NULL;
    draw(p, true);
}

void vd_progress_free(vd_progress *p)
{
    if (!p) return;
    if (p->tick) event_free(p->tick);
    free(p);
}

/* cli_verify.c — `validora verify`: reads addresses (arguments, a file or stdin), keeps up to
 * --concurrency of them in flight on one engine, and writes one record per address as soon
 * as it is known, flushed, so a kill loses nothing already decided.
 * Owns: verify's own options (input, output, format, concurrency, verbose) and its run.
 * Does not own: engine options (validora/options.h), input, signals, --help (cli_common.c). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
#include <event2/event.h>
#include "cli.h"
#include "validora/record.h"

typedef struct verify_opts {
    const char *input, *output, *format;
    int concurrency;
    int verbose;
} verify_opts;

#define VOFF(f) offsetof(verify_opts, f)
const vd_option vd_cli_verify_options[] = {
    {"input", 'i', VD_OPT_STRING, VOFF(input), 0, NULL, 0, 0, "FILE", "Input and output",
     "read addresses from FILE, one per line ('-' = stdin); blank lines and lines starting "
     "with '#' are skipped",
     false},
    {"output", 'o', VD_OPT_STRING, VOFF(output), 0, NULL, 0, 0, "FILE", "Input and output",
     "write records to FILE (default: standard output)", false},
    {"format", 'f', VD_OPT_STRING, VOFF(format), 0, NULL, 0, 0, "FMT", "Input and output",
     "msgpack, json (JSON Lines) or csv (default: json on standard output, msgpack with "
     "--output)",
     false},
    {"concurrency", 'j', VD_OPT_INT, VOFF(concurrency), 256, NULL, 1, 1000000, "N", "Run",
     "addresses in flight", false},
    {"verbose", 'v', VD_OPT_COUNT, VOFF(verbose), 0, NULL, 0, 0, NULL, "Run",
     "progress every 5 s, a summary and rule messages on stderr (-vv: debug)", false},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL, NULL, NULL, false},
};

static const vd_cli_usage USAGE = {
    .cmd = "verify",
    .section = "verify",
    .head = "Usage: validora verify [OPTION]... [ADDRESS]...\n"
            "Tells for each email address whether it can receive mail, without sending any.\n",
    .tail = "Exit status: 0 when every address got a record, 1 on a fatal error, 2 on a usage "
            "error.\n"
            "Each record has email, address, domain, status (deliverable, undeliverable, risky,\n"
            "unknown) and reason; see docs/records.md.\n"
            "Signals: SIGHUP reloads the rules (running addresses finish on the old ones);\n"
            "SIGINT/SIGTERM stop reading input and finish the addresses in flight (again: stop).\n",
};

typedef struct run {
    struct event_base *base;
    vd_engine *engine;
    vd_writer *writer;
    FILE *out;
    vd_cli_input *input;
    int concurrency;
    bool draining; /* SIGINT/SIGTERM: take no new addresses */
    bool fatal;
    long submitted, written;
    struct event *pump_ev;
    struct event *progress_ev; /* --verbose: a line on stderr every 5 s */
    long by_status[4];         /* deliverable, undeliverable, risky, unknown */
    struct timeval started;
} run;

static void on_record(const struct vd_record *rec, void *arg)
{
    run *r = arg;
    if (r->fatal) return;
    if (vd_writer_put(r->writer, rec) != 0) {
        fprintf(stderr, "validora verify: writing results: %s\n", strerror(errno));
        r->fatal = true;
        event_base_loopbreak(r->base);
        return;
    }
    r->written++;
    static const char *const statuses[] = {"deliverable", "undeliverable", "risky"};
    int k = 0;
    while (k < 3 && strcmp(rec->status, statuses[k]) != 0)
        k++;
    r->by_status[k]++;
    event_active(r->pump_ev, EV_TIMEOUT, 0); /* refill from the loop, not from here */
}

static void pump(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run *r = arg;
    while (!r->fatal && !r->draining && (int)vd_engine_inflight(r->engine) < r->concurrency) {
        const char *addr;
        ssize_t n = vd_cli_input_next(r->input, &addr);
        if (n < 0) break;
        r->submitted++;
        if (vd_engine_submit(r->engine, addr, (size_t)n, on_record, r) != 0) {
            fprintf(stderr, "validora verify: out of memory\n");
            r->fatal = true;
        }
    }
    if (vd_cli_input_failed(r->input)) r->fatal = true;
    bool exhausted = r->draining || r->fatal || vd_cli_input_done(r->input);
    if (exhausted && vd_engine_inflight(r->engine) == 0) event_base_loopbreak(r->base);
}

static void on_readable(void *arg)
{
    pump(-1, 0, arg);
}

static void report(const run *r, const char *what)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    double secs =
        (double)(now.tv_sec - r->started.tv_sec) + (double)(now.tv_usec - r->started.tv_usec) / 1e6;
    fprintf(stderr,
            "validora verify: %s %ld records in %.1f s (%.0f/s): %ld deliverable, %ld "
            "undeliverable, %ld risky, %ld unknown; %zu in flight\n",
            what, r->written, secs, secs > 0 ? (double)r->written / secs : 0.0, r->by_status[0],
            r->by_status[1], r->by_status[2], r->by_status[3], vd_engine_inflight(r->engine));
}

static void on_progress(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    report(arg, "progress:");
}

static void on_stop(void *arg, bool now)
{
    run *r = arg;
    if (!now) {
        r->draining = true;
        fprintf(stderr, "validora verify: finishing %zu addresses in flight (again to stop now)\n",
                vd_engine_inflight(r->engine));
        event_active(r->pump_ev, EV_TIMEOUT, 0);
        return;
    }
    fprintf(stderr, "validora verify: stopped; %ld records written\n", r->written);
    r->fatal = true;
    event_base_loopbreak(r->base);
}

static void on_reload(void *arg)
{
    vd_cli_reload("verify", ((run *)arg)->engine);
}

static int parse_format(const verify_opts *o, vd_format *fmt)
{
    *fmt = o->output ? VD_FMT_MSGPACK : VD_FMT_JSON;
    if (!o->format) return 0;
    if (!strcmp(o->format, "msgpack"))
        *fmt = VD_FMT_MSGPACK;
    else if (!strcmp(o->format, "json") || !strcmp(o->format, "jsonl"))
        *fmt = VD_FMT_JSON;
    else if (!strcmp(o->format, "csv"))
        *fmt = VD_FMT_CSV;
    else
        return vd_cli_usage_error("verify", "--format: not msgpack, json or csv: '%s'", o->format);
    return 0;
}

/* Runs the loop until every address has its record (or a stop). Returns the exit status. */
static int verify_run(run *r, const verify_opts *o)
{
    vd_cli_signals *sig = vd_cli_signals_new(r->base, on_stop, on_reload, r);
    r->pump_ev = event_new(r->base, -1, 0, pump, r);
    if (!sig || !r->pump_ev) {
        fprintf(stderr, "validora verify: out of memory\n");
        vd_cli_signals_free(sig);
        return VD_EXIT_FATAL;
    }
    gettimeofday(&r->started, NULL);
    if (o->verbose) {
        struct timeval every = {5, 0};
        r->progress_ev = event_new(r->base, -1, EV_PERSIST, on_progress, r);
        if (r->progress_ev) event_add(r->progress_ev, &every);
    }
    event_active(r->pump_ev, EV_TIMEOUT, 0);
    event_base_dispatch(r->base);
    int rc = !r->fatal && r->written == r->submitted && !r->draining ? VD_EXIT_OK : VD_EXIT_FATAL;
    if (r->draining && !r->fatal)
        fprintf(stderr, "validora verify: interrupted after %ld records\n", r->written);
    if (r->progress_ev) {
        report(r, "done:");
        event_free(r->progress_ev);
    }
    event_free(r->pump_ev);
    vd_cli_signals_free(sig);
    return rc;
}

static int close_output(run *r, const char *output)
{
    if (r->writer) vd_writer_free(r->writer);
    if (r->out && r->out != stdout) {
        if (fclose(r->out) != 0) {
            fprintf(stderr, "validora verify: %s: %s\n", output, strerror(errno));
            return VD_EXIT_FATAL;
        }
    } else if (fflush(stdout) != 0) {
        return VD_EXIT_FATAL;
    }
    return VD_EXIT_OK;
}

int vd_cli_verify(int argc, char **argv)
{
    vd_engine_config cfg;
    vd_engine_config_init(&cfg);
    verify_opts o;
    vd_options_defaults(vd_cli_verify_options, &o);
    vd_cli_table tables[] = {{vd_cli_verify_options, &o}, {vd_engine_options, &cfg}};
    int first = vd_cli_parse(&USAGE, argc, argv, tables, 2);
    if (first == -2) return VD_EXIT_OK;
    if (first < 0) return VD_EXIT_USAGE;
    vd_format fmt;
    if (parse_format(&o, &fmt) != 0) return VD_EXIT_USAGE;
    if (first >= argc && !o.input)
        return vd_cli_usage_error("verify", "no addresses: give ADDRESS... or --input FILE");
    if (fmt == VD_FMT_MSGPACK && !o.output && isatty(STDOUT_FILENO))
        return vd_cli_usage_error(
            "verify", "refusing to write msgpack to a terminal: use -o FILE or --format json");

    vd_cli_log log = {.cmd = "verify", .verbose = o.verbose};
    cfg.log = vd_cli_log_cb;
    cfg.log_arg = &log;
    run r = {.concurrency = o.concurrency, .out = stdout};
    if (!(r.base = event_base_new())) {
        fprintf(stderr, "validora verify: cannot create the event loop\n");
        return VD_EXIT_FATAL;
    }
    int rc = VD_EXIT_FATAL;
    char err[1024];
    if (!(r.engine = vd_engine_new(r.base, &cfg, err, sizeof err))) {
        fprintf(stderr, "validora verify: %s\n", err);
        goto out;
    }
    if (o.output && strcmp(o.output, "-") != 0 && !(r.out = fopen(o.output, "w"))) {
        fprintf(stderr, "validora verify: %s: %s\n", o.output, strerror(errno));
        goto out;
    }
    r.input =
        vd_cli_input_new(r.base, "verify", argv + first, argc - first, o.input, on_readable, &r);
    if (!(r.writer = vd_writer_new(r.out, fmt)) || !r.input) {
        fprintf(stderr, "validora verify: out of memory\n");
        goto out;
    }
    rc = verify_run(&r, &o);
out:
    vd_cli_close_engine(r.base, r.engine);
    if (close_output(&r, o.output) != VD_EXIT_OK) rc = VD_EXIT_FATAL;
    vd_cli_input_free(r.input);
    event_base_free(r.base);
    return rc;
}

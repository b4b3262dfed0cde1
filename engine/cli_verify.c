/* cli_verify.c — `validora verify`: reads addresses (arguments, a file or stdin), keeps up to
 * --concurrency of them in flight on one engine, and writes one record per address as soon
 * as it is known, flushed, so a kill loses nothing already decided; with --resume, skips the
 * input lines that already have a record in -o FILE.
 * Owns: verify's own options (input, output, format, resume, force, sync, concurrency,
 * progress, verbose) and its run.
 * Does not own: engine options (validora/options.h), input, signals, --help (cli_common.c),
 * the records file's policy, resume and sync (cli_output.c), the progress line
 * (cli_progress.c). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <event2/event.h>
#include "cli.h"
#include "cli_output.h"
#include "cli_progress.h"
#include "validora/record.h"

typedef struct verify_opts {
    const char *input, *column, *output, *format;
    bool resume, force;
    double sync;
    int concurrency;
    bool progress;
    int verbose;
} verify_opts;

#define VOFF(f) offsetof(verify_opts, f)
const vd_option vd_cli_verify_options[] = {
    {"input", 'i', VD_OPT_STRING, VOFF(input), 0, NULL, 0, 0, "FILE", "Input and output",
     "read addresses from FILE, one per line ('-' = stdin); blank lines and lines starting "
     "with '#' are skipped",
     false},
    {"column", 0, VD_OPT_STRING, VOFF(column), 0, NULL, 0, 0, "NAME|N", "Input and output",
     "--input FILE is CSV: verify the column with that header name (case ignored) or number "
     "(from 1; the first row is taken as a header when that cell holds no '@'). Without it, a "
     "FILE that looks like CSV is refused",
     false},
    {"output", 'o', VD_OPT_STRING, VOFF(output), 0, NULL, 0, 0, "FILE", "Input and output",
     "write records to FILE (default: standard output)", false},
    {"format", 'f', VD_OPT_STRING, VOFF(format), 0, NULL, 0, 0, "FMT", "Input and output",
     "msgpack, json (JSON Lines) or csv (default: json on standard output, msgpack with "
     "--output)",
     false},
    {"resume", 0, VD_OPT_FLAG, VOFF(resume), 0, NULL, 0, 0, NULL, "Input and output",
     "carry on the run that wrote --output FILE (msgpack) after a crash, kill -9 or power loss: "
     "input lines that have a complete record there are skipped; a torn last record is cut "
     "off and deferred records dropped, and their addresses verified again (docs/records.md)",
     false},
    {"force", 0, VD_OPT_FLAG, VOFF(force), 0, NULL, 0, 0, NULL, "Input and output",
     "overwrite a non-empty --output FILE; without --force or --resume, verify refuses to", false},
    {"sync", 0, VD_OPT_SECONDS, VOFF(sync), 1, NULL, 0, 3600, "SECS", "Input and output",
     "fdatasync --output FILE at most every SECS while records are written, and at the end; 0: "
     "after every record. A power loss loses at most the last SECS of records, which --resume "
     "verifies again; a flush a second costs nothing next to SMTP, a flush per record can "
     "(a disk that does 100 a second would cap the run at that)",
     false},
    {"concurrency", 'j', VD_OPT_INT, VOFF(concurrency), 256, NULL, 1, 1000000, "N", "Run",
     "addresses in flight", false},
    {"progress", 0, VD_OPT_FLAG, VOFF(progress), 0,
     "when stderr is a terminal and stdout is not one with the records", 0, 0, NULL, "Run",
     "a progress line on stderr: done/total, rate, ETA, counts by status, addresses throttled "
     "or waiting for the budget, the budget left",
     false},
    {"verbose", 'v', VD_OPT_COUNT, VOFF(verbose), 0, NULL, 0, 0, NULL, "Run",
     "a summary and rule messages on stderr, and without a progress line a progress report every "
     "5 s (-vv: debug)",
     false},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL, NULL, NULL, false},
};

static const vd_cli_usage USAGE = {
    .cmd = "verify",
    .section = "verify",
    .head = "Usage: validora verify [OPTION]... [ADDRESS]...\n"
            "Tells for each email address whether it can receive mail, without sending any.\n",
    .tail = "Exit status: 0 when every address got a record, 1 on a fatal error or when no DNS "
            "server answered at all, 2 on a usage error.\n"
            "Long runs: records are flushed one by one (a kill loses none) and synced to disk\n"
            "every --sync seconds (a power loss loses at most those); run the same command\n"
            "with --resume to carry on, as often as needed: in the end FILE holds one record\n"
            "per input line.\n"
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
    vd_out *outf;          /* --output FILE; NULL for standard output */
    vd_progress *progress; /* NULL: no progress line */
    vd_cli_log log;
    vd_cli_input *input;
    int concurrency;
    bool draining; /* SIGINT/SIGTERM: take no new addresses */
    bool fatal;
    long submitted, written, skipped;
    struct event *pump_ev;
    struct event *progress_ev;       /* --verbose: a line on stderr every 5 s */
    struct event *left_ev;           /* stopping: how many are left, every 2 s */
    long by_status[VD_STATUS_COUNT]; /* by vd_status */
    struct timeval started;
} run;

static void on_record(const struct vd_record *rec, void *arg)
{
    run *r = arg;
    if (r->fatal) return;
    if (vd_writer_put(r->writer, rec) != 0) {
        vd_progress_clear(r->progress);
        fprintf(stderr, "validora verify: writing results: %s\n", strerror(errno));
        r->fatal = true;
        event_base_loopbreak(r->base);
        return;
    }
    if (r->outf && vd_out_wrote(r->outf) != 0) {
        vd_progress_clear(r->progress);
        fprintf(stderr, "validora verify: syncing results: %s\n", strerror(errno));
        r->fatal = true;
        event_base_loopbreak(r->base);
        return;
    }
    r->written++;
    vd_status k = VD_STATUS_UNKNOWN;
    (void)vd_status_parse(rec->status, strlen(rec->status), &k);
    r->by_status[k]++;
    vd_progress_record(r->progress, (int)k,
                       rec->reason && !strcmp(rec->reason, VD_REASON_DEFERRED));
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
        if (vd_out_skip(r->outf, addr, (size_t)n)) { /* --resume: it has its record */
            r->skipped++;
            vd_progress_skip(r->progress);
            continue;
        }
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
    fprintf(stderr, "validora verify: %s %ld records in %.1f s (%.0f/s): ", what, r->written, secs,
            secs > 0 ? (double)r->written / secs : 0.0);
    for (int k = 0; k < VD_STATUS_COUNT; k++)
        fprintf(stderr, "%s%ld %s", k ? ", " : "", r->by_status[k], vd_status_name((vd_status)k));
    fprintf(stderr, "; %zu in flight\n", vd_engine_inflight(r->engine));
}

static void on_progress(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    report(arg, "progress:");
}

/* While stopping: how many addresses are left, every 2 s (issue 17). */
static void on_left(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run *r = arg;
    vd_progress_clear(r->progress);
    fprintf(stderr,
            "validora verify: stopping: %zu addresses left in SMTP sessions (again to stop "
            "now)\n",
            vd_engine_inflight(r->engine));
}

static void on_stop(void *arg, bool now)
{
    run *r = arg;
    vd_progress_clear(r->progress);
    if (!now) {
        r->draining = true;
        size_t before = vd_engine_inflight(r->engine);
        /* what only waits for the throttle or the budget is written deferred at once */
        vd_engine_drain(r->engine);
        size_t left = vd_engine_inflight(r->engine);
        fprintf(stderr,
                "validora verify: stopping: %zu addresses that had not reached their SMTP "
                "session written unknown/deferred (--resume verifies them again); finishing "
                "the %zu in SMTP sessions (again to stop now)\n",
                before - left, left);
        struct timeval every = {2, 0};
        if (left && (r->left_ev = event_new(r->base, -1, EV_PERSIST, on_left, r)))
            event_add(r->left_ev, &every);
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

/* The log printer, clearing the progress line first. */
static void verify_log(vd_log_level level, const char *msg, void *arg)
{
    run *r = arg;
    if ((int)level <= VD_LOG_WARNING + r->log.verbose) vd_progress_clear(r->progress);
    vd_cli_log_cb(level, msg, &r->log);
}

static void noop(void *arg)
{
    (void)arg;
}

/* The addresses the input holds: the arguments and a regular file's lines (read once more, as
 * the reader will: blank and '#' lines do not count); -1 when that cannot be known (stdin, a
 * pipe) or the file cannot be read (the run itself says why). */
static long count_input(struct event_base *base, char **args, int nargs, const char *path,
                        const char *column)
{
    struct stat st;
    if (path && (!strcmp(path, "-") || stat(path, &st) != 0 || !S_ISREG(st.st_mode))) return -1;
    vd_cli_input *in = vd_cli_input_new(base, "verify", args, nargs, path, noop, NULL);
    if (!in) return -1;
    if (column) vd_cli_input_csv(in, column);
    long n = 0;
    const char *addr;
    while (vd_cli_input_next(in, &addr) >= 0)
        n++;
    if (vd_cli_input_failed(in) || !vd_cli_input_done(in)) n = -1;
    vd_cli_input_free(in);
    return n;
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
    if (o->verbose && !r->progress) { /* the progress line says more, and more often */
        struct timeval every = {5, 0};
        r->progress_ev = event_new(r->base, -1, EV_PERSIST, on_progress, r);
        if (r->progress_ev) event_add(r->progress_ev, &every);
    }
    event_active(r->pump_ev, EV_TIMEOUT, 0);
    event_base_dispatch(r->base);
    vd_progress_finish(r->progress);
    int rc = !r->fatal && r->written == r->submitted && !r->draining ? VD_EXIT_OK : VD_EXIT_FATAL;
    vd_engine_stats st;
    vd_engine_stats_get(r->engine, &st);
    if (st.dns_unanswered > 0 && st.dns_answered == 0) { /* the engine said why, at the start */
        fprintf(stderr, "validora verify: no DNS server answered: nothing that needs DNS could be "
                        "decided (--dns, /etc/resolv.conf)\n");
        rc = VD_EXIT_FATAL;
    }
    if (r->draining && !r->fatal)
        fprintf(stderr, "validora verify: interrupted after %ld records\n", r->written);
    if (o->verbose) report(r, "done:");
    if (r->progress_ev) event_free(r->progress_ev);
    if (r->left_ev) event_free(r->left_ev);
    event_free(r->pump_ev);
    vd_cli_signals_free(sig);
    return rc;
}

static int close_output(run *r)
{
    if (r->writer) vd_writer_free(r->writer);
    if (r->outf) {
        char err[512];
        if (vd_out_close(r->outf, err, sizeof err) != 0) {
            fprintf(stderr, "validora verify: %s\n", err);
            return VD_EXIT_FATAL;
        }
    } else if (fflush(stdout) != 0) {
        return VD_EXIT_FATAL;
    }
    return VD_EXIT_OK;
}

/* Says what --resume found in FILE. */
static void say_resumed(const char *path, const vd_out_found *f)
{
    if (!f->existed) {
        fprintf(stderr, "validora verify: --resume: %s does not exist yet: a new run\n", path);
        return;
    }
    fprintf(stderr, "validora verify: resuming %s: %ld records kept, %ld deferred to verify again",
            path, f->kept, f->deferred);
    if (f->cut_at >= 0 && f->cut_zeros)
        fprintf(stderr, "; %lld zero bytes at byte %lld (a power cut) cut off", f->cut_bytes,
                f->cut_at);
    else if (f->cut_at >= 0)
        fprintf(stderr, "; a torn last record (%lld bytes at byte %lld) cut off, to verify again",
                f->cut_bytes, f->cut_at);
    fputc('\n', stderr);
}

/* Usage errors of the output options; 0 when they fit together. */
static int check_output_opts(const verify_opts *o, vd_format fmt)
{
    bool file = o->output && strcmp(o->output, "-") != 0;
    if (o->resume && !file)
        return vd_cli_usage_error("verify",
                                  "--resume needs --output FILE: the records to carry on");
    if (o->resume && fmt != VD_FMT_MSGPACK)
        return vd_cli_usage_error("verify", "--resume reads --output FILE back, so it needs "
                                            "--format msgpack (the default with --output)");
    if (o->resume && o->force)
        return vd_cli_usage_error("verify", "--resume keeps FILE, --force overwrites it: not both");
    return 0;
}

/* The index of the option called name in table; the table's size when there is none. */
static size_t option_index(const vd_option *table, const char *name)
{
    size_t i = 0;
    while (table[i].name && strcmp(table[i].name, name) != 0)
        i++;
    return i;
}

#define MAX_OPTIONS 256 /* of verify's and the engine's tables together, for `given` */

int vd_cli_verify(int argc, char **argv)
{
    vd_engine_config cfg;
    vd_engine_config_init(&cfg);
    verify_opts o;
    vd_options_defaults(vd_cli_verify_options, &o);
    vd_cli_table tables[] = {{vd_cli_verify_options, &o}, {vd_engine_options, &cfg}};
    bool given[MAX_OPTIONS] = {false}; /* which options the command line gave */
    if (option_index(vd_cli_verify_options, "") + option_index(vd_engine_options, "") >
        MAX_OPTIONS) {
        fprintf(stderr, "validora verify: MAX_OPTIONS is too small\n"); /* a build mistake */
        return VD_EXIT_FATAL;
    }
    int first = vd_cli_parse_given(&USAGE, argc, argv, tables, 2, given);
    if (first < 0) return vd_cli_parse_exit(first);
    vd_format fmt;
    if (parse_format(&o, &fmt) != 0 || check_output_opts(&o, fmt) != 0) return VD_EXIT_USAGE;
    if (first >= argc && !o.input)
        return vd_cli_usage_error("verify", "no addresses: give ADDRESS... or --input FILE");
    if (o.column && !o.input)
        return vd_cli_usage_error("verify", "--column needs --input FILE, a CSV file");
    /* The input before anything touches the state dir or the output file. */
    if (o.input && strcmp(o.input, "-") != 0 && access(o.input, R_OK) != 0) {
        fprintf(stderr, "validora verify: %s: %s\n", o.input, strerror(errno));
        return VD_EXIT_FATAL;
    }
    char first_line[96];
    if (o.input && !o.column && vd_cli_input_looks_csv(o.input, first_line, sizeof first_line))
        return vd_cli_usage_error(
            "verify",
            "%s looks like CSV (first line: '%s'): give --column NAME or --column N, the header "
            "name or number of the column that holds the addresses",
            o.input, first_line);
    if (fmt == VD_FMT_MSGPACK && !o.output && isatty(STDOUT_FILENO))
        return vd_cli_usage_error(
            "verify", "refusing to write msgpack to a terminal: use -o FILE or --format json");
    /* by default on a terminal, unless the records go to that terminal: they are the progress */
    bool to_stdout = !o.output || !strcmp(o.output, "-");
    bool progress = given[option_index(vd_cli_verify_options, "progress")]
                        ? o.progress
                        : isatty(STDERR_FILENO) && !(to_stdout && isatty(STDOUT_FILENO));

    run r = {.concurrency = o.concurrency, .out = stdout};
    r.log = (vd_cli_log){.cmd = "verify", .verbose = o.verbose};
    cfg.log = verify_log;
    cfg.log_arg = &r;
    if (!(r.base = event_base_new())) {
        fprintf(stderr, "validora verify: cannot create the event loop\n");
        return VD_EXIT_FATAL;
    }
    int rc = VD_EXIT_FATAL;
    char err[1024];
    if (o.output && strcmp(o.output, "-") != 0) {
        vd_out_opts oo = {
            .path = o.output, .fmt = fmt, .resume = o.resume, .force = o.force, .sync_s = o.sync};
        if (!(r.outf = vd_out_open(r.base, &oo, err, sizeof err))) {
            fprintf(stderr, "validora verify: %s\n", err);
            goto out;
        }
        r.out = vd_out_file(r.outf);
        if (o.resume) say_resumed(o.output, vd_out_found_get(r.outf));
    }
    if (!(r.engine = vd_engine_new(r.base, &cfg, err, sizeof err))) {
        fprintf(stderr, "validora verify: %s\n", err);
        goto out;
    }
    r.input =
        vd_cli_input_new(r.base, "verify", argv + first, argc - first, o.input, on_readable, &r);
    if (r.input && o.column) vd_cli_input_csv(r.input, o.column);
    if (!(r.writer = vd_writer_new(r.out, fmt)) || !r.input) {
        fprintf(stderr, "validora verify: out of memory\n");
        goto out;
    }
    if (progress) {
        const vd_out_found *f = r.outf ? vd_out_found_get(r.outf) : NULL;
        long total = count_input(r.base, argv + first, argc - first, o.input, o.column);
        r.progress = vd_progress_new(r.base, stderr, r.engine, total, f ? f->by_status : NULL);
    }
    rc = verify_run(&r, &o);
out:
    vd_progress_free(r.progress);
    /* The output first: its sync timer would keep the polite close waiting its full 3 s. */
    if (close_output(&r) != VD_EXIT_OK) rc = VD_EXIT_FATAL;
    r.fatal = true; /* nothing is written from here on */
    vd_cli_close_engine(r.base, r.engine);
    vd_cli_input_free(r.input);
    event_base_free(r.base);
    return rc;
}

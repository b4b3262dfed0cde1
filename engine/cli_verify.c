/* cli_verify.c — `validora verify`: reads addresses (arguments, a file or stdin), keeps
 * up to --concurrency of them in flight on one engine, and writes one record per address
 * as soon as it is known, flushed, so a kill loses nothing already decided.
 * Exit: 0 every address got a record; 1 fatal error; 2 usage error. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include "cli_verify.h"
#include "validora/record.h"
#include "validora/validora.h"

/* Longest input line passed on whole; longer ones are cut here (no address is longer
 * than 254 octets, so the cut line still gets its invalid_syntax record). */
#define MAX_LINE 4096

static const char USAGE[] =
    "Usage: validora verify [OPTION]... [ADDRESS]...\n"
    "Tells for each email address whether it can receive mail, without sending any.\n"
    "\n"
    "Input and output:\n"
    "  -i, --input FILE         read addresses from FILE, one per line ('-' = stdin);\n"
    "                           blank lines and lines starting with '#' are skipped\n"
    "  -o, --output FILE        write records to FILE (default: standard output)\n"
    "  -f, --format FMT         msgpack, json (JSON Lines) or csv; default: json on\n"
    "                           standard output, msgpack with --output\n"
    "DNS:\n"
    "      --dns SERVERS        HOST[:PORT][,...] ([v6addr]:PORT for IPv6);\n"
    "                           default: the servers in /etc/resolv.conf\n"
    "      --dns-timeout SECS   per-try DNS timeout (default 3)\n"
    "SMTP:\n"
    "      --no-smtp            stop after DNS (reason not_probed)\n"
    "      --smtp-timeout SECS  connect, banner and per-command timeout (default 30)\n"
    "      --smtp-port N        port of the mail servers (default 25)\n"
    "      --helo NAME          EHLO name (default: /etc/mailname or the host name)\n"
    "      --mail-from ADDR     MAIL FROM address (default: verify@HELO-NAME; '' = <>)\n"
    "      --source-ip ADDR     local address for outgoing connections\n"
    "      --no-starttls        never use STARTTLS\n"
    "      --greylist-delay S   wait before retrying a greylisted address (default 300)\n"
    "      --greylist-tries N   RCPT tries in all for a greylisted address (default 3)\n"
    "      --per-mx-sessions N  concurrent sessions per mail server (default 4)\n"
    "      --no-reuse           one SMTP session per address (default: sessions are\n"
    "                           kept and reused for later addresses at the same server)\n"
    "Engine:\n"
    "  -c, --concurrency N      addresses in flight (default 256)\n"
    "      --rules DIR          rule scripts (default: installed rules, or $VALIDORA_RULES)\n"
    "  -v, --verbose            progress every 5 s, a summary and rule messages on stderr\n"
    "  -h, --help               show this help\n"
    "      --version            show the version\n"
    "\n"
    "Exit status: 0 when every address got a record, 1 on a fatal error, 2 on a usage error.\n"
    "Each record has email, address, domain, status (deliverable, undeliverable, risky,\n"
    "unknown) and reason; see docs/records.md.\n"
    "Signals: SIGHUP reloads the rules (running addresses finish on the old ones);\n"
    "SIGINT/SIGTERM stop reading input and finish the addresses in flight (again: stop).\n";

typedef struct run {
    struct event_base *base;
    vd_engine *engine;
    vd_writer *writer;
    FILE *out;
    FILE *in; /* current input file or NULL */
    bool in_is_stdin;
    char **args; /* addresses from the command line */
    int nargs, next_arg;
    const char *input_path;
    bool input_opened, input_done;
    /* A pipe, terminal or socket is read without blocking the loop: jobs in flight go on
     * while the producer is slow. Regular files are read with getline. */
    bool stream;
    int in_fd;
    struct evbuffer *inbuf;
    struct event *in_ev;
    bool skip_to_eol;
    int in_flags; /* restored at exit: a shared terminal or pipe must not stay non-blocking */
    int concurrency;
    bool draining; /* SIGINT/SIGTERM: take no new addresses */
    bool fatal;
    long submitted, written;
    struct event *pump_ev;
    struct event *progress_ev; /* --verbose: a line on stderr every 5 s */
    long by_status[4];         /* deliverable, undeliverable, risky, unknown */
    struct timeval started;
    char *line;
    size_t linecap;
} run;

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("validora verify: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'validora verify --help'.\n", stderr);
    return 2;
}

static bool parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool parse_secs(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return false;
    *out = v;
    return true;
}

static void pump(evutil_socket_t fd, short what, void *arg);
static void pump_ev_cb(evutil_socket_t fd, short what, void *arg)
{
    pump(fd, what, arg);
}

/* Next address from the arguments, then the input file. Returns its length or -1. */
static ssize_t next_address(run *r, const char **addr)
{
    if (r->next_arg < r->nargs) {
        *addr = r->args[r->next_arg++];
        return (ssize_t)strlen(*addr);
    }
    if (!r->input_path || r->input_done) return -1;
    if (!r->input_opened) {
        r->input_opened = true;
        if (strcmp(r->input_path, "-") == 0) {
            r->in = stdin;
            r->in_is_stdin = true;
        } else {
            r->in = fopen(r->input_path, "r");
            if (!r->in) {
                fprintf(stderr, "validora verify: %s: %s\n", r->input_path, strerror(errno));
                r->fatal = true;
                r->input_done = true;
                return -1;
            }
        }
        struct stat st;
        r->in_fd = fileno(r->in);
        if (fstat(r->in_fd, &st) == 0 && !S_ISREG(st.st_mode)) {
            r->stream = true;
            r->in_flags = fcntl(r->in_fd, F_GETFL);
            r->inbuf = evbuffer_new();
            r->in_ev = event_new(r->base, r->in_fd, EV_READ, pump_ev_cb, r);
            if (!r->inbuf || !r->in_ev || evutil_make_socket_nonblocking(r->in_fd) != 0) {
                fprintf(stderr, "validora verify: cannot watch %s\n", r->input_path);
                r->fatal = true;
                r->input_done = true;
                return -1;
            }
        }
    }
    for (;;) {
        ssize_t n;
        if (r->stream) {
            size_t len;
            if (r->skip_to_eol) { /* the rest of an over-long line */
                struct evbuffer_ptr eol = evbuffer_search(r->inbuf, "\n", 1, NULL);
                if (eol.pos >= 0) {
                    evbuffer_drain(r->inbuf, (size_t)eol.pos + 1);
                    r->skip_to_eol = false;
                } else {
                    evbuffer_drain(r->inbuf, evbuffer_get_length(r->inbuf));
                }
            }
            char *ln = r->skip_to_eol ? NULL : evbuffer_readln(r->inbuf, &len, EVBUFFER_EOL_LF);
            if (!ln && evbuffer_get_length(r->inbuf) > MAX_LINE) {
                /* no address is this long: keep the start (it gets its invalid_syntax
                 * record) and drop the rest of the line, so memory stays bounded */
                len = MAX_LINE;
                ln = malloc(len + 1);
                if (!ln) {
                    r->fatal = r->input_done = true;
                    return -1;
                }
                evbuffer_remove(r->inbuf, ln, len);
                ln[len] = '\0';
                r->skip_to_eol = true;
            }
            if (!ln) {
                int got = evbuffer_read(r->inbuf, r->in_fd, 65536);
                if (got > 0) continue;
                if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    event_add(r->in_ev, NULL); /* pump again when more arrives */
                    return -1;
                }
                if (got < 0) {
                    fprintf(stderr, "validora verify: reading %s: %s\n", r->input_path,
                            strerror(errno));
                    r->fatal = true;
                }
                /* end of input: a last line without a newline still counts */
                len = evbuffer_get_length(r->inbuf);
                ln = len ? malloc(len + 1) : NULL;
                if (!ln) {
                    r->input_done = true;
                    return -1;
                }
                evbuffer_remove(r->inbuf, ln, len);
                ln[len] = '\0';
            }
            free(r->line);
            r->line = ln;
            n = (ssize_t)len;
        } else {
            n = getline(&r->line, &r->linecap, r->in);
            if (n < 0) {
                if (ferror(r->in)) {
                    fprintf(stderr, "validora verify: reading %s: %s\n", r->input_path,
                            strerror(errno));
                    r->fatal = true;
                }
                r->input_done = true;
                return -1;
            }
        }
        if (n > MAX_LINE) n = MAX_LINE;
        char *s = r->line;
        while (n > 0 &&
               (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        while (n > 0 && (*s == ' ' || *s == '\t'))
            s++, n--;
        if (n == 0 || *s == '#') continue;
        *addr = s;
        return n;
    }
}

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
    const char *st = rec->status;
    int k = !strcmp(st, "deliverable")     ? 0
            : !strcmp(st, "undeliverable") ? 1
            : !strcmp(st, "risky")         ? 2
                                           : 3;
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
        ssize_t n = next_address(r, &addr);
        if (n < 0) break;
        r->submitted++;
        if (vd_engine_submit(r->engine, addr, (size_t)n, on_record, r) != 0) {
            fprintf(stderr, "validora verify: out of memory\n");
            r->fatal = true;
        }
    }
    bool exhausted =
        r->draining || r->fatal || (r->next_arg >= r->nargs && (!r->input_path || r->input_done));
    if (exhausted && vd_engine_inflight(r->engine) == 0) event_base_loopbreak(r->base);
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

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    run *r = arg;
    if (!r->draining) {
        r->draining = true;
        fprintf(stderr,
                "validora verify: %s: finishing %zu addresses in flight (again to stop now)\n",
                strsignal((int)sig), vd_engine_inflight(r->engine));
        event_active(r->pump_ev, EV_TIMEOUT, 0);
        return;
    }
    fprintf(stderr, "validora verify: stopped; %ld records written\n", r->written);
    r->fatal = true;
    event_base_loopbreak(r->base);
}

/* SIGHUP: load the rules again as a new generation; jobs in flight finish on the old one.
 * A rule that fails to load is reported and the running rules stay. */
static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    run *r = arg;
    char err[512];
    if (vd_engine_reload(r->engine, err, sizeof err) == 0)
        fprintf(stderr, "validora verify: rules reloaded\n");
    else
        fprintf(stderr, "validora verify: reload failed, keeping the running rules: %s\n", err);
}

int vd_cli_verify(int argc, char **argv)
{
    enum {
        O_DNS = 256,
        O_DNS_TIMEOUT,
        O_NO_SMTP,
        O_SMTP_TIMEOUT,
        O_SMTP_PORT,
        O_HELO,
        O_MAIL_FROM,
        O_SOURCE_IP,
        O_NO_STARTTLS,
        O_GREY_DELAY,
        O_GREY_TRIES,
        O_PER_MX,
        O_RULES,
        O_VERSION,
        O_NO_REUSE
    };
    static const struct option opts[] = {
        {"input", required_argument, NULL, 'i'},
        {"output", required_argument, NULL, 'o'},
        {"format", required_argument, NULL, 'f'},
        {"dns", required_argument, NULL, O_DNS},
        {"dns-timeout", required_argument, NULL, O_DNS_TIMEOUT},
        {"no-smtp", no_argument, NULL, O_NO_SMTP},
        {"smtp-timeout", required_argument, NULL, O_SMTP_TIMEOUT},
        {"smtp-port", required_argument, NULL, O_SMTP_PORT},
        {"helo", required_argument, NULL, O_HELO},
        {"mail-from", required_argument, NULL, O_MAIL_FROM},
        {"source-ip", required_argument, NULL, O_SOURCE_IP},
        {"no-starttls", no_argument, NULL, O_NO_STARTTLS},
        {"greylist-delay", required_argument, NULL, O_GREY_DELAY},
        {"greylist-tries", required_argument, NULL, O_GREY_TRIES},
        {"per-mx-sessions", required_argument, NULL, O_PER_MX},
        {"no-reuse", no_argument, NULL, O_NO_REUSE},
        {"concurrency", required_argument, NULL, 'c'},
        {"rules", required_argument, NULL, O_RULES},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, O_VERSION},
        {NULL, 0, NULL, 0},
    };
    vd_engine_config cfg;
    vd_engine_config_init(&cfg);
    const char *input = NULL, *output = NULL, *format = NULL;
    long concurrency = 256, lv;
    double dv;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "i:o:f:c:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            input = optarg;
            break;
        case 'o':
            output = optarg;
            break;
        case 'f':
            format = optarg;
            break;
        case O_DNS:
            cfg.dns_servers = optarg;
            break;
        case O_DNS_TIMEOUT:
            if (!parse_secs(optarg, 0.05, 600, &dv))
                return usage_error("--dns-timeout: not a number of seconds: '%s'", optarg);
            cfg.dns_timeout_ms = (int)(dv * 1000);
            break;
        case O_NO_SMTP:
            cfg.smtp = false;
            break;
        case O_SMTP_TIMEOUT:
            if (!parse_secs(optarg, 0.05, 3600, &dv))
                return usage_error("--smtp-timeout: not a number of seconds: '%s'", optarg);
            cfg.smtp_timeout_ms = (int)(dv * 1000);
            break;
        case O_SMTP_PORT:
            if (!parse_int(optarg, 1, 65535, &lv))
                return usage_error("--smtp-port: not a port number: '%s'", optarg);
            cfg.smtp_port = (int)lv;
            break;
        case O_HELO:
            cfg.helo = optarg;
            break;
        case O_MAIL_FROM:
            cfg.mail_from = optarg;
            break;
        case O_SOURCE_IP:
            cfg.source_ip = optarg;
            break;
        case O_NO_STARTTLS:
            cfg.starttls = false;
            break;
        case O_GREY_DELAY:
            if (!parse_int(optarg, 0, 86400, &lv))
                return usage_error("--greylist-delay: not a number of seconds: '%s'", optarg);
            cfg.greylist_delay_s = (int)lv;
            break;
        case O_GREY_TRIES:
            if (!parse_int(optarg, 1, 100, &lv))
                return usage_error("--greylist-tries: not a count 1-100: '%s'", optarg);
            cfg.greylist_tries = (int)lv;
            break;
        case O_PER_MX:
            if (!parse_int(optarg, 1, 100000, &lv))
                return usage_error("--per-mx-sessions: not a count 1-100000: '%s'", optarg);
            cfg.per_mx_sessions = (int)lv;
            break;
        case O_NO_REUSE:
            cfg.reuse_sessions = false;
            break;
        case 'c':
            if (!parse_int(optarg, 1, 1000000, &concurrency))
                return usage_error("--concurrency: not a count 1-1000000: '%s'", optarg);
            break;
        case O_RULES:
            cfg.rules_dir = optarg;
            break;
        case 'v':
            cfg.verbose++;
            break;
        case 'h':
            fputs(USAGE, stdout);
            return 0;
        case O_VERSION:
            printf("validora %s\n", vd_version());
            return 0;
        default:
            fputs("Try 'validora verify --help'.\n", stderr);
            return 2;
        }
    }
    vd_format fmt = output ? VD_FMT_MSGPACK : VD_FMT_JSON;
    if (format) {
        if (!strcmp(format, "msgpack"))
            fmt = VD_FMT_MSGPACK;
        else if (!strcmp(format, "json") || !strcmp(format, "jsonl"))
            fmt = VD_FMT_JSON;
        else if (!strcmp(format, "csv"))
            fmt = VD_FMT_CSV;
        else
            return usage_error("--format: not msgpack, json or csv: '%s'", format);
    }
    if (optind >= argc && !input)
        return usage_error("%s", "no addresses: give ADDRESS... or --input FILE");
    if (fmt == VD_FMT_MSGPACK && !output && isatty(STDOUT_FILENO))
        return usage_error("%s",
                           "refusing to write msgpack to a terminal: use -o FILE or --format json");

    int rc = 1;
    run r = {0};
    r.args = argv + optind;
    r.nargs = argc - optind;
    r.input_path = input;
    r.concurrency = (int)concurrency;
    r.base = event_base_new();
    struct event *sigint = NULL, *sigterm = NULL, *sighup = NULL;
    if (!r.base) {
        fprintf(stderr, "validora verify: cannot create the event loop\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    char err[512];
    r.engine = vd_engine_new(r.base, &cfg, err, sizeof err);
    if (!r.engine) {
        fprintf(stderr, "validora verify: %s\n", err);
        goto out;
    }
    r.out = stdout;
    if (output && strcmp(output, "-") != 0) {
        r.out = fopen(output, "w");
        if (!r.out) {
            fprintf(stderr, "validora verify: %s: %s\n", output, strerror(errno));
            goto out;
        }
    }
    r.writer = vd_writer_new(r.out, fmt);
    r.pump_ev = event_new(r.base, -1, 0, pump, &r);
    sigint = evsignal_new(r.base, SIGINT, on_signal, &r);
    sigterm = evsignal_new(r.base, SIGTERM, on_signal, &r);
    sighup = evsignal_new(r.base, SIGHUP, on_hup, &r);
    if (!r.writer || !r.pump_ev || !sigint || !sigterm || !sighup) {
        fprintf(stderr, "validora verify: out of memory\n");
        goto out;
    }
    evsignal_add(sigint, NULL);
    evsignal_add(sigterm, NULL);
    evsignal_add(sighup, NULL);
    gettimeofday(&r.started, NULL);
    if (cfg.verbose) {
        struct timeval every = {5, 0};
        r.progress_ev = event_new(r.base, -1, EV_PERSIST, on_progress, &r);
        if (r.progress_ev) event_add(r.progress_ev, &every);
    }
    event_active(r.pump_ev, EV_TIMEOUT, 0);
    event_base_dispatch(r.base);
    if (!r.fatal && r.written == r.submitted && !r.draining) rc = 0;
    if (r.draining && !r.fatal) {
        fprintf(stderr, "validora verify: interrupted after %ld records\n", r.written);
        rc = 1;
    }
out:
    if (sigint) event_free(sigint);
    if (sigterm) event_free(sigterm);
    if (sighup) event_free(sighup);
    if (r.pump_ev) event_free(r.pump_ev);
    if (r.progress_ev) {
        report(&r, "done:");
        event_free(r.progress_ev);
    }
    if (r.in_ev) event_free(r.in_ev);
    r.in_ev = NULL;
    vd_engine_free(r.engine);
    /* Freeing the engine says QUIT on every open session; give the servers a moment to
     * answer (a polite close is part of a sender's reputation) and the sessions to free
     * themselves. The loop ends when none is left, or after 3 s. */
    time_t deadline = time(NULL) + 3;
    while (event_base_get_num_events(r.base, EVENT_BASE_COUNT_ADDED) > 0 && time(NULL) < deadline)
        event_base_loop(r.base, EVLOOP_ONCE);
    if (r.writer) vd_writer_free(r.writer);
    if (r.out && r.out != stdout) {
        if (fclose(r.out) != 0) {
            fprintf(stderr, "validora verify: %s: %s\n", output, strerror(errno));
            rc = 1;
        }
    } else if (fflush(stdout) != 0) {
        rc = 1;
    }
    if (r.stream && r.in_flags >= 0) fcntl(r.in_fd, F_SETFL, r.in_flags);
    if (r.inbuf) evbuffer_free(r.inbuf);
    if (r.in && !r.in_is_stdin) fclose(r.in);
    free(r.line);
    event_base_free(r.base);
    return rc;
}

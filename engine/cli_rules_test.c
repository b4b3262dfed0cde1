/* cli_rules_test.c — `validora rules test`: runs rule tests without a live server. Each test
 * gets an engine made through the public API on one event loop with the playback servers of
 * playback_world.h: DNS from the test's answers on 127.0.0.1, SMTP played from its sessions on
 * 127.0.0.x, HTTP from its http entries, so the engine's real DNS, pool, SMTP, HTTP and rule
 * code paths run. Each address's record is compared with what the test expects.
 * Owns: the command line of `rules test`, finding test files, running them one by one,
 * comparing records (any key, through the public record reader), the report.
 * Does not own: the test-file format (testfile.c), transcripts (transcript.c), the servers
 * (playback_dns.c, playback_smtp.c, playback_http.c), engine
 * options (validora/options.h; --rules and the other Rules options come from there). */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <event2/event.h>
#include "cli.h"
#include "playback_world.h"
#include "testfile.h"
#include "validora/record.h"

#define CMD "rules test"

typedef struct test_opts {
    int verbose;
} test_opts;

static const vd_option TEST_OPTIONS[] = {
    {"verbose", 'v', VD_OPT_COUNT, offsetof(test_opts, verbose), 0, NULL, 0, 0, NULL, "Run",
     "print each record; engine and rule messages on stderr (-vv: debug)", false},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL, NULL, NULL, false},
};

static const vd_cli_usage USAGE = {
    .cmd = CMD,
    .head = "Usage: validora rules test [OPTION]... [TEST]...\n"
            "Runs rule tests without a live server: each TEST file names an address, the DNS\n"
            "answers and the server's side of the SMTP dialogue (inline or a captured\n"
            "transcript), and the record it expects. The engine asks an in-process DNS\n"
            "responder on 127.0.0.1 and SMTP playback servers on 127.0.0.x, through its real\n"
            "DNS and SMTP code. A TEST that is a directory means its *.lua files. With no TEST,\n"
            "the tests beside the rules run: RULES/tests/*.lua.\n",
    .tail = "Prints 'ok NAME' or 'FAIL NAME: what differed' per test, then 'N passed, N failed'.\n"
            "Exit status: 0 when every test passed, 1 when one failed, 2 on a usage error.\n"
            "The test file format: docs/rules-test.md.\n",
};

/* The engine's Rules options (--rules and the rule budgets), taken from its table. */
static vd_option rules_options[16];

static void pick_rules_options(void)
{
    size_t k = 0;
    for (const vd_option *o = vd_engine_options; o->name && k + 1 < 16; o++)
        if (o->group && !strcmp(o->group, "Rules")) rules_options[k++] = *o;
    rules_options[k] = (vd_option){0};
}

/* ---- finding tests ---- */

typedef struct paths {
    char **v;
    size_t n;
} paths;

static int add_path(paths *p, const char *s)
{
    char **v = realloc(p->v, (p->n + 1) * sizeof *v);
    if (!v) return -1;
    p->v = v;
    if (!(p->v[p->n] = strdup(s))) return -1;
    p->n++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.lua files of dir, sorted; -1 when dir cannot be read. */
static int add_dir(paths *p, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    size_t first = p->n;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (de->d_name[0] == '.' || n < 5 || strcmp(de->d_name + n - 4, ".lua") != 0) continue;
        char full[8192];
        snprintf(full, sizeof full, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(full, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (add_path(p, full) != 0) rc = -1;
    }
    closedir(d);
    qsort(p->v + first, p->n - first, sizeof *p->v, cmp_str);
    return rc;
}

/* The rules directories: those of --rules, else the default one. */
static int rules_dirs(const vd_engine_config *cfg, paths *out)
{
    for (int i = 0; i < cfg->rules_dirs.n; i++)
        if (add_path(out, cfg->rules_dirs.v[i]) != 0) return -1;
    return cfg->rules_dirs.n ? 0 : add_path(out, vd_rules_default_dir());
}

/* ---- comparing a record ---- */

/* The value of key in rec: a top-level key, "smtp_code" as the smtp map's "code" when the
 * record has no key of that name, or "map.key". */
static vd_field_type lookup(const vd_record_view *rec, const char *key, vd_record_view *in,
                            const char **k)
{
    *in = *rec;
    *k = key;
    vd_field_type t = vd_record_type(rec, key);
    if (t != VD_FIELD_ABSENT) return t;
    const char *dot = strchr(key, '.');
    char map[64];
    if (dot && (size_t)(dot - key) < sizeof map) {
        snprintf(map, sizeof map, "%.*s", (int)(dot - key), key);
        *k = dot + 1;
    } else if (!strncmp(key, "smtp_", 5)) {
        snprintf(map, sizeof map, "smtp");
        *k = key + 5;
    } else {
        return VD_FIELD_ABSENT;
    }
    if (vd_record_map(rec, map, in) != 0) return VD_FIELD_ABSENT;
    return vd_record_type(in, *k);
}

/* What the record holds at key, for a message. */
static void describe(const vd_record_view *rec, const char *key, char *buf, size_t size)
{
    vd_record_view in;
    const char *k;
    const char *s;
    size_t len;
    int64_t i;
    bool b;
    switch (lookup(rec, key, &in, &k)) {
    case VD_FIELD_ABSENT:
        snprintf(buf, size, "absent");
        return;
    case VD_FIELD_STR:
        vd_record_str(&in, k, &s, &len);
        vd_pb_quote(buf, size, s, len, 160);
        return;
    case VD_FIELD_INT:
        if (vd_record_int(&in, k, &i) == 0)
            snprintf(buf, size, "%" PRId64, i);
        else
            snprintf(buf, size, "a large integer");
        return;
    case VD_FIELD_BOOL:
        vd_record_bool(&in, k, &b);
        snprintf(buf, size, "%s", b ? "true" : "false");
        return;
    case VD_FIELD_NIL:
        snprintf(buf, size, "nil");
        return;
    case VD_FIELD_MAP:
        snprintf(buf, size, "a map");
        return;
    default:
        snprintf(buf, size, "a value of another type");
        return;
    }
}

static bool matches(const vd_record_view *rec, const vd_pb_expect *e)
{
    vd_record_view in;
    const char *k;
    vd_field_type t = lookup(rec, e->key, &in, &k);
    const char *s;
    size_t len;
    int64_t i;
    bool b;
    switch (e->type) {
    case VD_PB_ABSENT:
        return t == VD_FIELD_ABSENT;
    case VD_PB_STR:
        return vd_record_str(&in, k, &s, &len) == 0 && len == e->slen && !memcmp(s, e->s, len);
    case VD_PB_INT:
        return vd_record_int(&in, k, &i) == 0 && i == e->i;
    case VD_PB_NUM:
        return vd_record_int(&in, k, &i) == 0 && (double)i == e->d;
    case VD_PB_BOOL:
        return vd_record_bool(&in, k, &b) == 0 && b == e->b;
    }
    return false;
}

static void describe_expect(const vd_pb_expect *e, char *buf, size_t size)
{
    switch (e->type) {
    case VD_PB_ABSENT:
        snprintf(buf, size, "absent");
        break;
    case VD_PB_STR:
        vd_pb_quote(buf, size, e->s, e->slen, 160);
        break;
    case VD_PB_INT:
        snprintf(buf, size, "%" PRId64, e->i);
        break;
    case VD_PB_NUM:
        snprintf(buf, size, "%.17g", e->d);
        break;
    case VD_PB_BOOL:
        snprintf(buf, size, "%s", e->b ? "true" : "false");
        break;
    }
}

/* Compares rec with c's expectations; differences go to msgs. */
static void compare(const vd_record_view *rec, const vd_pb_check *c, bool name_address,
                    vd_pb_msgs *msgs)
{
    bool verdict_wrong = false;
    char pre[300] = "";
    if (name_address) snprintf(pre, sizeof pre, "%.250s: ", c->address);
    for (size_t i = 0; i < c->nexpect; i++) {
        const vd_pb_expect *e = &c->expect[i];
        if (matches(rec, e)) continue;
        char want[200], got[200];
        describe_expect(e, want, sizeof want);
        describe(rec, e->key, got, sizeof got);
        vd_pb_msg(msgs, "%s%s: expected %s, got %s", pre, e->key, want, got);
        if (!strcmp(e->key, "status") || !strcmp(e->key, "reason")) verdict_wrong = true;
    }
    const char *s;
    size_t len;
    if (verdict_wrong && vd_record_str(rec, "detail", &s, &len) == 0) {
        char q[300];
        vd_pb_quote(q, sizeof q, s, len, 200);
        vd_pb_msg(msgs, "%sdetail %s", pre, q);
    }
}

/* ---- running one test ---- */

typedef struct trun {
    struct event_base *base;
    vd_engine *engine;
    const vd_pb_test *t;
    const test_opts *o;
    vd_pb_msgs *msgs;
    size_t next; /* the check to submit */
    size_t done; /* records compared */
    bool failed; /* the engine could not take an address */
    struct event *submit_ev;
    vd_pb_world *w;
    size_t http_before; /* the playback's HTTP requests when the address was submitted */
} trun;

static void on_record(const struct vd_record *rec, void *arg)
{
    trun *r = arg;
    const vd_pb_check *c = &r->t->checks[r->done++];
    size_t made = vd_pb_world_http_requests(r->w) - r->http_before;
    if (c->http_requests >= 0 && made != (size_t)c->http_requests)
        vd_pb_msg(r->msgs, "%s%shttp_requests: expected %ld, got %zu",
                  r->t->nchecks > 1 ? c->address : "", r->t->nchecks > 1 ? ": " : "",
                  c->http_requests, made);
    /* Through the public writer and reader, so that any key can be compared. */
    size_t size = 0;
    char *buf = vd_record_pack(rec, VD_FMT_MSGPACK, &size);
    FILE *in = buf ? fmemopen(buf, size, "rb") : NULL;
    vd_reader *rd = in ? vd_reader_new(in) : NULL;
    vd_record_view view;
    if (rd && vd_reader_next(rd, &view) == VD_READ_RECORD) {
        compare(&view, c, r->t->nchecks > 1, r->msgs);
        if (r->o->verbose) {
            printf("  record: ");
            vd_record_fprint(&view, VD_FMT_JSON, stdout);
        }
    } else {
        vd_pb_msg(r->msgs, "%s: the record could not be read back", c->address);
    }
    if (rd) vd_reader_free(rd);
    if (in) fclose(in);
    free(buf);
    if (r->done < r->t->nchecks)
        event_active(r->submit_ev, EV_TIMEOUT, 0);
    else
        event_base_loopbreak(r->base);
}

/* The next address, from the loop (never from inside the record callback). */
static void on_submit(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    trun *r = arg;
    if (r->next >= r->t->nchecks || r->next > r->done) return;
    const char *a = r->t->checks[r->next++].address;
    r->http_before = vd_pb_world_http_requests(r->w);
    if (vd_engine_submit(r->engine, a, strlen(a), on_record, r) != 0) {
        vd_pb_msg(r->msgs, "%s: out of memory", a);
        r->failed = true;
        event_base_loopbreak(r->base);
    }
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

/* value with every "$HTTP" written base (malloc'd). */
static char *subst_http(const char *value, const char *base)
{
    size_t n = 0;
    for (const char *p = strstr(value, "$HTTP"); p; p = strstr(p + 5, "$HTTP"))
        n++;
    char *out = malloc(strlen(value) + n * strlen(base) + 1);
    if (!out) return NULL;
    char *o = out;
    for (const char *p = value; *p;) {
        if (!strncmp(p, "$HTTP", 5)) {
            o = stpcpy(o, base);
            p += 5;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

/* The runner's settings: the playback servers, no STARTTLS, short waits. Then the test's
 * options, then its config (values kept in owned, freed by the caller). */
static int configure(vd_engine_config *cfg, const vd_pb_test *t, char *dns, size_t dnslen,
                     int dns_port, int smtp_port, int http_port, char **owned, vd_pb_msgs *msgs)
{
    snprintf(dns, dnslen, "127.0.0.1:%d", dns_port);
    cfg->dns_servers = dns;
    cfg->dns_timeout = 1;
    cfg->smtp = true;
    cfg->smtp_port = smtp_port;
    cfg->starttls = false;
    cfg->tls_ca = NULL;
    cfg->source_ip = NULL;
    cfg->smtp_timeout = 2;
    cfg->greylist_delay = 0.01;
    cfg->helo = "rules-test.invalid";
    cfg->mail_from = NULL;
    for (size_t i = 0; i < t->noptions; i++) {
        const vd_option *o = vd_option_find(vd_engine_options, t->options[i].name);
        char err[256];
        if (!o || vd_option_parse(o, cfg, t->options[i].value, err, sizeof err) != 0) {
            vd_pb_msg(msgs, "options: %s", o ? err : "unknown option");
            return -1;
        }
    }
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", http_port);
    for (size_t i = 0; i < t->nconfig; i++) {
        const vd_option *o = vd_option_find(vd_engine_options, t->config[i].name);
        char err[256];
        if (!(owned[i] = subst_http(t->config[i].value, base))) {
            vd_pb_msg(msgs, "out of memory");
            return -1;
        }
        if (!o || vd_option_parse(o, cfg, owned[i], err, sizeof err) != 0) {
            vd_pb_msg(msgs, "config: %s", o ? err : "unknown option");
            return -1;
        }
    }
    return 0;
}

/* Runs t; its problems go to msgs. */
static void run_test(vd_pb_test *t, const vd_engine_config *base_cfg, const test_opts *o,
                     vd_pb_msgs *msgs)
{
    char err[1024], dns[64];
    char **owned = NULL; /* config values with $HTTP written out */
    struct event_base *base = event_base_new();
    if (!base) {
        vd_pb_msg(msgs, "cannot create the event loop");
        return;
    }
    vd_pb_world *w = vd_pb_world_new(base, t, msgs, vd_pb_pattern_match, NULL, err, sizeof err);
    trun r = {.base = base, .t = t, .o = o, .msgs = msgs};
    bool expired = false;
    struct event *deadline = evtimer_new(base, on_deadline, &expired);
    r.submit_ev = event_new(base, -1, 0, on_submit, &r);
    vd_cli_log log = {.cmd = CMD, .verbose = o->verbose};
    vd_engine_config cfg = *base_cfg;
    cfg.no_ledger = true; /* playback servers of its own: no budget, no lock, no ledger */
    cfg.unpaced = true;   /* and no pace to keep with them (caps and breakers still work) */
    cfg.allow_private_destinations = true; /* its playback servers are on loopback */
    cfg.log = vd_cli_log_cb;
    cfg.log_arg = &log;
    if (!w) {
        vd_pb_msg(msgs, "%s", err);
        goto out;
    }
    if (!deadline || !r.submit_ev) {
        vd_pb_msg(msgs, "out of memory");
        goto out;
    }
    r.w = w;
    owned = calloc(t->nconfig + 1, sizeof *owned);
    if (!owned || configure(&cfg, t, dns, sizeof dns, vd_pb_world_dns_port(w),
                            vd_pb_world_smtp_port(w), vd_pb_world_http_port(w), owned, msgs) != 0)
        goto out;
    if (!(r.engine = vd_engine_new(base, &cfg, err, sizeof err))) {
        vd_pb_msg(msgs, "engine: %s", err);
        goto out;
    }
    struct timeval tv = {(time_t)t->timeout,
                         (suseconds_t)((t->timeout - (double)(time_t)t->timeout) * 1e6)};
    event_add(deadline, &tv);
    event_active(r.submit_ev, EV_TIMEOUT, 0);
    while (!expired && !r.failed && r.done < t->nchecks)
        event_base_loop(base, EVLOOP_ONCE);
    if (expired)
        vd_pb_msg(msgs, "no record for %s within %g s (timeout = ... raises it)",
                  t->checks[r.done].address, t->timeout);
    /* The engine's polite close: QUIT on every session it kept, answered by playback. */
    vd_engine_free(r.engine);
    r.engine = NULL;
    struct timeval grace = {3, 0};
    expired = false;
    event_del(deadline);
    event_add(deadline, &grace);
    while (!expired && vd_pb_world_connections(w) > 0)
        event_base_loop(base, EVLOOP_ONCE);
    vd_pb_world_finish(w);
    /* The servers are gone: what is left on the loop is the engine's closing sessions (and
     * the deadline), which free themselves once they have seen the close. */
    while (!expired && event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED) > 1)
        event_base_loop(base, EVLOOP_ONCE);
out:
    if (r.engine) vd_engine_free(r.engine);
    for (size_t i = 0; owned && i < t->nconfig; i++)
        free(owned[i]);
    free(owned);
    vd_pb_world_free(w);
    if (deadline) event_free(deadline);
    if (r.submit_ev) event_free(r.submit_ev);
    event_base_free(base);
}

/* One line per message after "FAIL NAME: ", joined with "; ". */
static void print_fail(const char *name, const vd_pb_msgs *m)
{
    printf("FAIL %s: ", name);
    for (size_t i = 0; i < m->n; i++)
        printf("%s%s", i ? "; " : "", m->v[i]);
    printf("\n");
}

int vd_cli_rules_test(int argc, char **argv)
{
    pick_rules_options();
    vd_engine_config cfg;
    vd_engine_config_init(&cfg);
    test_opts o;
    vd_options_defaults(TEST_OPTIONS, &o);
    vd_cli_table tables[] = {{TEST_OPTIONS, &o}, {rules_options, &cfg}};
    int first = vd_cli_parse(&USAGE, argc, argv, tables, 2);
    if (first < 0) return vd_cli_parse_exit(first);

    paths tests = {0};
    int rc = VD_EXIT_OK;
    if (first >= argc) {
        paths dirs = {0};
        if (rules_dirs(&cfg, &dirs) != 0) {
            fprintf(stderr, "validora %s: out of memory\n", CMD);
            rc = VD_EXIT_FATAL;
        } else if (!dirs.n) {
            rc = vd_cli_usage_error(CMD, "no TEST given and no rules directory to find tests "
                                         "in: give --rules DIR (or set VALIDORA_RULES)");
        }
        for (size_t i = 0; rc == VD_EXIT_OK && i < dirs.n; i++) {
            char tdir[4096];
            snprintf(tdir, sizeof tdir, "%s/tests", dirs.v[i]);
            /* with several directories, one without tests is fine */
            if (add_dir(&tests, tdir) != 0 && (dirs.n == 1 || errno != ENOENT)) {
                fprintf(stderr, "validora %s: %s: %s\n", CMD, tdir, strerror(errno));
                rc = VD_EXIT_FATAL;
            }
        }
        if (rc == VD_EXIT_OK && !tests.n) {
            fprintf(stderr, "validora %s: no tests in %s/tests%s\n", CMD, dirs.v[0],
                    dirs.n > 1 ? " or the other rules directories" : "");
            rc = VD_EXIT_FATAL;
        }
        for (size_t i = 0; i < dirs.n; i++)
            free(dirs.v[i]);
        free(dirs.v);
        if (rc != VD_EXIT_OK) goto out;
    }
    for (int i = first; i < argc; i++) {
        struct stat st;
        int r = stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode) ? add_dir(&tests, argv[i])
                                                               : add_path(&tests, argv[i]);
        if (r != 0) {
            fprintf(stderr, "validora %s: %s: %s\n", CMD, argv[i], strerror(errno));
            rc = VD_EXIT_FATAL;
            goto out;
        }
    }

    size_t passed = 0, failed = 0;
    for (size_t i = 0; i < tests.n; i++) {
        vd_pb_test t;
        vd_pb_msgs msgs = {0};
        char err[2048];
        if (vd_pb_test_load(tests.v[i], &t, err, sizeof err) != 0) {
            size_t pl = strlen(tests.v[i]);
            bool prefixed = !strncmp(err, tests.v[i], pl) && !strncmp(err + pl, ": ", 2);
            vd_pb_msg(&msgs, "%s", prefixed ? err + pl + 2 : err);
            print_fail(tests.v[i], &msgs);
            failed++;
        } else {
            run_test(&t, &cfg, &o, &msgs);
            if (msgs.n) {
                print_fail(t.name, &msgs);
                failed++;
            } else {
                printf("ok   %s\n", t.name);
                passed++;
            }
        }
        fflush(stdout);
        vd_pb_msgs_clear(&msgs);
        vd_pb_test_clear(&t);
    }
    printf("%zu passed, %zu failed\n", passed, failed);
    rc = failed ? VD_EXIT_FATAL : VD_EXIT_OK;
out:
    for (size_t i = 0; i < tests.n; i++)
        free(tests.v[i]);
    free(tests.v);
    return rc;
}

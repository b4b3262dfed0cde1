/* cli_rules.c — `validora rules check` and `validora rules which`, and the dispatch of
 * `validora rules SUBCOMMAND`.
 * Owns: those subcommands' command lines and output.
 * Does not own: loading or choosing rules (the engine: vd_rules_check, vd_engine_which), the
 * rule tests (cli_rules_test.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include "cli.h"
#include "validora/record.h"

static const char RULES_USAGE[] =
    "Usage: validora rules COMMAND [OPTION]...\n"
    "\n"
    "Commands:\n"
    "  check    load the rules exactly as a reload would; report every problem as\n"
    "           file:line: message, and the order rules are tried in\n"
    "  which    tell which rule would handle each address, and why\n"
    "  test     play rule tests through the real DNS and SMTP code paths\n"
    "\n"
    "'validora rules COMMAND --help' tells more of each.\n";

/* ---- check ---- */

typedef struct check_out {
    int problems;
} check_out;

static void print_problem(const char *file, int line, const char *msg, void *arg)
{
    check_out *o = arg;
    o->problems++;
    if (line > 0)
        printf("%s:%d: %s\n", file, line, msg);
    else
        printf("%s: %s\n", file, msg);
}

static void print_rule(int pos, const char *name, const char *file, double priority, void *arg)
{
    (void)arg;
    if (priority != 0)
        printf("  %2d  %-20s priority %-6g %s\n", pos, name, priority, file);
    else
        printf("  %2d  %-20s %-15s %s\n", pos, name, "", file);
}

static const vd_cli_usage CHECK_USAGE = {
    .cmd = "rules check",
    .section = "", /* the top level only: `rules` there is the --rules list */
    .head = "Usage: validora rules check [--rules DIR]...\n"
            "Loads the rules and lists exactly as a reload would and reports every problem as\n"
            "file:line: message (line 0 when it is not known). When there is none, prints the\n"
            "generation's hash and the order rules are tried in (the first that matches wins;\n"
            "default last).\n",
    .tail = "Exit status: 0 when the rules load, 1 when there is a problem, 2 on a usage error.\n",
};

static int rules_check(int argc, char **argv)
{
    vd_engine_config cfg;
    vd_engine_config_init(&cfg);
    vd_cli_table tables[] = {{vd_engine_options, &cfg}};
    int first = vd_cli_parse(&CHECK_USAGE, argc, argv, tables, 1);
    if (first < 0) return vd_cli_parse_exit(first);
    if (first < argc)
        return vd_cli_usage_error("rules check", "unexpected argument '%s'", argv[first]);
    check_out out = {0};
    char generation[13] = "";
    printf("rules checked in order: the first rule that matches an address wins\n");
    int n = vd_rules_check(&cfg, print_problem, print_rule, &out, generation);
    if (n) {
        printf("%d problem%s: the rules would not load (a reload keeps the running ones)\n", n,
               n == 1 ? "" : "s");
        return VD_EXIT_FATAL;
    }
    printf("generation %s: no problems\n", generation);
    return fflush(stdout) == 0 ? VD_EXIT_OK : VD_EXIT_FATAL;
}

/* ---- which ---- */

typedef struct which_opts {
    const char *format;
} which_opts;

const vd_option vd_cli_which_options[] = {
    {"format", 'f', VD_OPT_STRING, offsetof(which_opts, format), 0, "text", 0, 0, "FMT", "Output",
     "text (a line per address) or json (JSON Lines)", false},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL, NULL, NULL, false},
};

static const vd_cli_usage WHICH_USAGE = {
    .cmd = "rules which",
    .section = "", /* the top level only: `rules` there is the --rules list */
    .head = "Usage: validora rules which [OPTION]... ADDRESS...\n"
            "Tells which rule would handle each address and why: the domain or MX-host pattern\n"
            "that matched, or that no rule matched and the default handles it. Looks up the MX\n"
            "hosts as a probe would; sends nothing to any mail server. An address the engine\n"
            "decides by itself (bad syntax, no such domain, null MX) names that verdict.\n",
    .tail = "Exit status: 0 when every address got an answer, 1 on a fatal error, 2 on a usage "
            "error.\n",
};

typedef struct which_run {
    struct event_base *base;
    bool json;
    int pending;
} which_run;

static void json_str(const char *s, size_t len)
{
    vd_record_json_str(stdout, s, len);
}

static void json_field(const char *key, const char *v, bool *first)
{
    if (!v) return;
    printf("%s\"%s\":", *first ? "" : ",", key);
    json_str(v, strlen(v));
    *first = false;
}

static void print_which_json(const vd_which *w)
{
    bool first = false;
    printf("{\"email\":");
    json_str(w->email, w->email_len);
    json_field("domain", w->domain, &first);
    json_field("rule", w->rule, &first);
    json_field("by", w->by, &first);
    json_field("pattern", w->pattern, &first);
    json_field("host", w->host, &first);
    json_field("file", w->file, &first);
    json_field("status", w->status, &first);
    json_field("reason", w->reason, &first);
    json_field("detail", w->detail, &first);
    json_field("generation", w->generation, &first);
    printf("}\n");
}

static void print_which_text(const vd_which *w)
{
    printf("%.*s: ", (int)w->email_len, w->email);
    if (!w->rule)
        printf("no rule: the engine decides %s/%s%s%s\n", w->status, w->reason,
               w->detail ? " - " : "", w->detail ? w->detail : "");
    else if (!strcmp(w->by, "default"))
        printf("%s (no rule matched %s or its MX hosts) %s\n", w->rule, w->domain, w->file);
    else if (!strcmp(w->by, "domain"))
        printf("%s (domain %s matches %s) %s\n", w->rule, w->domain, w->pattern, w->file);
    else
        printf("%s (MX host %s matches %s) %s\n", w->rule, w->host, w->pattern, w->file);
}

static void on_which(const vd_which *w, void *arg)
{
    which_run *r = arg;
    if (r->json)
        print_which_json(w);
    else
        print_which_text(w);
    if (--r->pending == 0) event_base_loopbreak(r->base);
}

static int rules_which(int argc, char **argv)
{
    vd_engine_config cfg;
    vd_engine_config_init(&cfg);
    which_opts o;
    vd_options_defaults(vd_cli_which_options, &o);
    vd_cli_table tables[] = {{vd_cli_which_options, &o}, {vd_engine_options, &cfg}};
    int first = vd_cli_parse(&WHICH_USAGE, argc, argv, tables, 2);
    if (first < 0) return vd_cli_parse_exit(first);
    if (strcmp(o.format, "text") != 0 && strcmp(o.format, "json") != 0)
        return vd_cli_usage_error("rules which", "--format: not text or json: '%s'", o.format);
    if (first >= argc) return vd_cli_usage_error("rules which", "no addresses");
    vd_cli_log log = {.cmd = "rules which", .verbose = 0};
    cfg.log = vd_cli_log_cb;
    cfg.log_arg = &log;
    cfg.watch = false;
    cfg.no_ledger = true; /* tells, sends nothing: no budget, and no lock to refuse a verify */
    which_run r = {.json = !strcmp(o.format, "json")};
    if (!(r.base = event_base_new())) {
        fprintf(stderr, "validora rules which: cannot create the event loop\n");
        return VD_EXIT_FATAL;
    }
    char err[1024];
    vd_engine *e = vd_engine_new(r.base, &cfg, err, sizeof err);
    int rc = VD_EXIT_FATAL;
    if (!e) {
        fprintf(stderr, "validora rules which: %s\n", err);
    } else {
        r.pending = argc - first;
        for (int i = first; i < argc; i++)
            if (vd_engine_which(e, argv[i], strlen(argv[i]), on_which, &r) != 0) r.pending--;
        if (r.pending > 0) event_base_dispatch(r.base);
        rc = r.pending == 0 && fflush(stdout) == 0 ? VD_EXIT_OK : VD_EXIT_FATAL;
        vd_engine_stats st;
        vd_engine_stats_get(e, &st);
        if (st.dns_unanswered > 0 && st.dns_answered == 0) { /* the engine said why */
            fprintf(stderr, "validora rules which: no DNS server answered: the rules that "
                            "match on MX hosts could not be told\n");
            rc = VD_EXIT_FATAL;
        }
    }
    vd_cli_close_engine(r.base, e);
    event_base_free(r.base);
    return rc;
}

int vd_cli_rules(int argc, char **argv)
{
    if (argc < 2) {
        fputs(RULES_USAGE, stderr);
        return VD_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "check")) return rules_check(argc - 1, argv + 1);
    if (!strcmp(cmd, "which")) return rules_which(argc - 1, argv + 1);
    if (!strcmp(cmd, "test")) return vd_cli_rules_test(argc - 1, argv + 1);
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        fputs(RULES_USAGE, stdout);
        return VD_EXIT_OK;
    }
    static const char *const names[] = {"check", "which", "test", NULL};
    return vd_cli_unknown_command("validora rules", cmd, names);
}

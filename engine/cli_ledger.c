/* cli_ledger.c — `validora ledger show`, `validora ledger set-age` and `validora ledger lock`,
 * and the dispatch of `validora ledger SUBCOMMAND`.
 * Owns: those subcommands' command lines and output (text, JSON Lines).
 * Does not own: the ledger file, the state directory or the lock (validora/ledger.h), what a
 * budget or an age allows (the engine), the wording of a pace's key (vd_ledger_key_words). */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "validora/record.h"
#include "validora/ledger.h"

static const char LEDGER_USAGE[] =
    "Usage: validora ledger COMMAND [OPTION]...\n"
    "\n"
    "Commands:\n"
    "  show     per source IP: first use and age, today's verifications and when the\n"
    "           budget renews, deferrals and blocks, open circuit breakers, and the\n"
    "           servers that have throttled it with the pace each allows\n"
    "  set-age  set an IP's first use to DAYS ago (an IP with a history before Validora)\n"
    "  lock     run a command holding an IP's instance lock, as a verify would\n"
    "\n"
    "'validora ledger COMMAND --help' tells more of each.\n";

/* The engine's --state-dir entry, alone: its help and default live in options.c. */
static vd_option state_table[2];

static void init_state_table(void)
{
    const vd_option *o = vd_option_find(vd_engine_options, "state-dir");
    if (o) state_table[0] = *o;
}

/* "2030-01-01 00:00:00 UTC" (with_time) or "2030-01-01". */
static void utc(long t, bool with_time, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) ||
        !strftime(buf, len, with_time ? "%Y-%m-%d %H:%M:%S UTC" : "%Y-%m-%d", &tm))
        snprintf(buf, len, "%ld", t);
}

/* ISO 8601 for JSON: "2030-01-01T00:00:00Z". */
static void iso(long t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, len, "%ld", t);
}

/* "in 5h 12m" */
static void in(long secs, char *buf, size_t len)
{
    if (secs < 0) secs = 0;
    if (secs >= 3600)
        snprintf(buf, len, "in %ldh %02ldm", secs / 3600, secs % 3600 / 60);
    else
        snprintf(buf, len, "in %ldm %02lds", secs / 60, secs % 60);
}

static void json_str(const char *s)
{
    vd_record_json_str(stdout, s, s ? strlen(s) : 0);
}

/* ---- show ---- */

typedef struct show_opts {
    const char *format;
} show_opts;

const vd_option vd_cli_ledger_options[] = {
    {"format", 'f', VD_OPT_STRING, offsetof(show_opts, format), 0, "text", 0, 0, "FMT", "Output",
     "text, or json (JSON Lines: one object per source IP)", false},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL, NULL, NULL, false},
};

static const vd_cli_usage SHOW_USAGE = {
    .cmd = "ledger show",
    .section = "ledger",
    .head = "Usage: validora ledger show [OPTION]...\n"
            "Shows the ledger of every source IP Validora has verified from: its first use\n"
            "and age in days, today's verifications (days are UTC) and when the budget\n"
            "renews, deferrals and blocks seen today and in all, open circuit breakers, and\n"
            "the servers, networks and providers that have throttled it: the pace each\n"
            "allowed (RCPTs a minute), the ceiling its deferrals taught, the connections it\n"
            "allowed, and when it last deferred us. A later verify starts near that pace.\n"
            "Safe to run while a verify runs.\n",
    .tail = "Exit status: 0 when shown, 1 when the ledger cannot be read, 2 on a usage error.\n",
};

typedef struct show_run {
    vd_ledger *l;
    bool json;
    long now;
    int n, failed;
    bool first_breaker, first_pace;
} show_run;

static void on_pace(const char *key, const vd_ledger_pace *p, void *arg)
{
    show_run *r = arg;
    char when[64], what[300];
    if (r->json) {
        iso(p->deferred_at, when, sizeof when);
        printf("%s{\"key\":", r->first_pace ? "" : ",");
        json_str(key);
        printf(",\"pace_per_minute\":%.1f,\"ceiling_per_minute\":%.1f,\"connections\":%ld,"
               "\"sessions_per_minute\":%.1f,\"deferrals\":%ld,\"last_deferral\":\"%s\","
               "\"updated_unix\":%ld}",
               p->rate, p->ceil, p->conns, p->sessions, p->deferrals, when, p->updated_at);
    } else {
        utc(p->deferred_at, true, when, sizeof when);
        vd_ledger_key_words(key, what, sizeof what);
        printf("  throttled by   %s: %.1f RCPT/min (ceiling %.1f)", what, p->rate, p->ceil);
        if (p->conns > 0) printf(", %ld connection%s", p->conns, p->conns == 1 ? "" : "s");
        if (p->sessions > 0) printf(", %.1f new a minute", p->sessions);
        printf("; %ld deferral%s, the last %s\n", p->deferrals, p->deferrals == 1 ? "" : "s", when);
    }
    r->first_pace = false;
}

static void on_breaker(const vd_ledger_breaker *b, void *arg)
{
    show_run *r = arg;
    char when[64], left[32];
    if (r->json) {
        iso(b->until, when, sizeof when);
        printf("%s{\"key\":", r->first_breaker ? "" : ",");
        json_str(b->key);
        printf(",\"until\":\"%s\",\"until_unix\":%ld,\"reason\":", when, b->until);
        json_str(b->reason);
        putchar('}');
    } else {
        utc(b->until, true, when, sizeof when);
        in(b->until - r->now, left, sizeof left);
        printf("  breaker        %s: open until %s (%s)%s%s\n", b->key, when, left,
               b->reason[0] ? ": " : "", b->reason);
    }
    r->first_breaker = false;
}

static void on_ip(const vd_ledger_ip *ip, void *arg)
{
    show_run *r = arg;
    char first[32], renews[64], left[32], err[1024];
    r->n++;
    r->first_breaker = true;
    if (r->json) {
        iso(ip->first_use, first, sizeof first);
        iso(ip->renews_at, renews, sizeof renews);
        printf("{\"source_ip\":");
        json_str(ip->ip);
        printf(",\"first_use\":\"%s\",\"age_days\":%d,\"used_today\":%ld,\"renews_at\":\"%s\","
               "\"renews_at_unix\":%ld,\"deferrals_today\":%ld,\"blocks_today\":%ld,"
               "\"deferrals_total\":%ld,\"blocks_total\":%ld,\"breakers\":[",
               first, ip->age_days, ip->used_today, renews, ip->renews_at, ip->deferrals_today,
               ip->blocks_today, ip->deferrals_total, ip->blocks_total);
    } else {
        utc(ip->first_use, false, first, sizeof first);
        utc(ip->renews_at, true, renews, sizeof renews);
        in(ip->renews_at - r->now, left, sizeof left);
        printf("%ssource IP %s\n", r->n > 1 ? "\n" : "", ip->ip);
        printf("  first use      %s (age %d day%s)\n", first, ip->age_days,
               ip->age_days == 1 ? "" : "s");
        printf("  today          %ld verification%s; the budget renews %s (%s)\n", ip->used_today,
               ip->used_today == 1 ? "" : "s", renews, left);
        printf("  deferrals      %ld today, %ld in all\n", ip->deferrals_today,
               ip->deferrals_total);
        printf("  blocks         %ld today, %ld in all\n", ip->blocks_today, ip->blocks_total);
    }
    if (vd_ledger_each_breaker(r->l, ip->ip, on_breaker, r, err, sizeof err) != 0) {
        fprintf(stderr, "validora ledger show: %s\n", err);
        r->failed++;
    }
    if (r->json) printf("],\"throttled_by\":[");
    r->first_pace = true;
    if (vd_ledger_each_pace(r->l, ip->ip, true, on_pace, r, err, sizeof err) != 0) {
        fprintf(stderr, "validora ledger show: %s\n", err);
        r->failed++;
    }
    if (r->json) printf("]}\n");
}

static int ledger_show(int argc, char **argv)
{
    vd_engine_config cfg;
    vd_engine_config_init(&cfg);
    show_opts o;
    vd_options_defaults(vd_cli_ledger_options, &o);
    vd_cli_table tables[] = {{vd_cli_ledger_options, &o}, {state_table, &cfg}};
    int first = vd_cli_parse(&SHOW_USAGE, argc, argv, tables, 2);
    if (first < 0) return vd_cli_parse_exit(first);
    if (strcmp(o.format, "text") != 0 && strcmp(o.format, "json") != 0)
        return vd_cli_usage_error("ledger show", "--format: not text or json: '%s'", o.format);
    if (first < argc)
        return vd_cli_usage_error("ledger show", "unexpected argument '%s'", argv[first]);
    char err[1024];
    /* Showing creates nothing: no directory, no ledger means nothing was verified yet. */
    char *dir = vd_state_dir_path(cfg.state_dir, err, sizeof err);
    if (!dir) {
        fprintf(stderr, "validora ledger show: %s\n", err);
        return VD_EXIT_FATAL;
    }
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", dir, VD_LEDGER_FILE);
    struct stat sb;
    show_run r = {.json = !strcmp(o.format, "json"), .now = (long)time(NULL)};
    int rc = VD_EXIT_OK;
    if (stat(path, &sb) != 0 && errno == ENOENT) {
        if (!r.json) printf("no ledger at %s: no source IP has been used yet\n", path);
    } else if (!(r.l = vd_ledger_open(dir, err, sizeof err))) {
        fprintf(stderr, "validora ledger show: %s\n", err);
        rc = VD_EXIT_FATAL;
    } else {
        if (vd_ledger_each_ip(r.l, on_ip, &r, err, sizeof err) != 0) {
            fprintf(stderr, "validora ledger show: %s\n", err);
            rc = VD_EXIT_FATAL;
        } else if (r.failed) {
            rc = VD_EXIT_FATAL;
        } else if (r.n == 0 && !r.json) {
            printf("no source IP in the ledger %s yet\n", path);
        }
        vd_ledger_close(r.l);
    }
    free(dir);
    if (fflush(stdout) != 0) rc = VD_EXIT_FATAL;
    return rc;
}

/* ---- set-age ---- */

static const vd_cli_usage SET_AGE_USAGE = {
    .cmd = "ledger set-age",
    .section = "ledger",
    .head = "Usage: validora ledger set-age [OPTION]... IP DAYS\n"
            "Sets the first use of source IP (an IPv4 or IPv6 address, or 'any' for runs\n"
            "without --source-ip) to DAYS days ago, for an IP that has sent mail since before\n"
            "Validora knew it. Today's count, deferrals, blocks and breakers stay.\n",
    .tail = "Exit status: 0 when set, 1 when the ledger cannot be written, 2 on a usage error.\n",
};

static int ledger_set_age(int argc, char **argv)
{
    vd_engine_config cfg;
    vd_engine_config_init(&cfg);
    vd_cli_table tables[] = {{state_table, &cfg}};
    int first = vd_cli_parse(&SET_AGE_USAGE, argc, argv, tables, 1);
    if (first < 0) return vd_cli_parse_exit(first);
    if (argc - first != 2) return vd_cli_usage_error("ledger set-age", "want IP and DAYS");
    const char *ip = argv[first], *days_text = argv[first + 1];
    char canon[64], err[1024];
    if (vd_ledger_canon_ip(ip, canon, sizeof canon, err, sizeof err) != 0)
        return vd_cli_usage_error("ledger set-age", "%s", err);
    char *end;
    errno = 0;
    long days = strtol(days_text, &end, 10);
    if (errno || end == days_text || *end || days < 0 || days > VD_LEDGER_MAX_AGE)
        return vd_cli_usage_error("ledger set-age",
                                  "DAYS: not a whole number between 0 and %d: '%s'",
                                  VD_LEDGER_MAX_AGE, days_text);
    char *dir = vd_state_dir(cfg.state_dir, err, sizeof err);
    if (!dir) {
        fprintf(stderr, "validora ledger set-age: %s\n", err);
        return VD_EXIT_FATAL;
    }
    int rc = VD_EXIT_FATAL;
    vd_ledger *l = vd_ledger_open(dir, err, sizeof err);
    if (l && vd_ledger_set_age(l, canon, (int)days, err, sizeof err) == 0) {
        char when[32];
        utc((long)time(NULL) - days * 86400L, false, when, sizeof when);
        printf("source IP %s: first use %s, age %ld day%s\n", canon, when, days,
               days == 1 ? "" : "s");
        if (strcmp(canon, "any") != 0) /* issue 17 */
            printf("note: runs without --source-ip are counted under 'any', not %s: give them "
                   "--source-ip %s, or age 'any' too (validora ledger set-age any %ld)\n",
                   canon, canon, days);
        rc = fflush(stdout) == 0 ? VD_EXIT_OK : VD_EXIT_FATAL;
    } else {
        fprintf(stderr, "validora ledger set-age: %s\n", err);
    }
    vd_ledger_close(l);
    free(dir);
    return rc;
}

/* ---- lock ---- */

static const vd_cli_usage LOCK_USAGE = {
    .cmd = "ledger lock",
    .section = "ledger",
    .head = "Usage: validora ledger lock [OPTION]... IP -- COMMAND [ARG]...\n"
            "Takes the instance lock of source IP (or 'any') in the state directory, as a\n"
            "verify from it would, runs COMMAND while holding it, and lets go when COMMAND\n"
            "ends. Refuses at once when another validora holds it. COMMAND does not inherit\n"
            "the lock: it is held by this process, and freed when this process ends, however.\n",
    .tail = "Exit status: COMMAND's; 1 when the lock is held elsewhere or cannot be taken, 2 on a "
            "usage error, 126 or 127 when COMMAND cannot be run.\n",
};

static int ledger_lock(int argc, char **argv)
{
    vd_engine_config cfg;
    vd_engine_config_init(&cfg);
    vd_cli_table tables[] = {{state_table, &cfg}};
    int first = vd_cli_parse(&LOCK_USAGE, argc, argv, tables, 1);
    if (first < 0) return vd_cli_parse_exit(first);
    if (argc - first < 2) return vd_cli_usage_error("ledger lock", "want IP and COMMAND");
    char canon[64], err[1024];
    if (vd_ledger_canon_ip(argv[first], canon, sizeof canon, err, sizeof err) != 0)
        return vd_cli_usage_error("ledger lock", "%s", err);
    char *dir = vd_state_dir(cfg.state_dir, err, sizeof err);
    if (!dir) {
        fprintf(stderr, "validora ledger lock: %s\n", err);
        return VD_EXIT_FATAL;
    }
    int fd = vd_instance_lock(dir, canon, err, sizeof err);
    free(dir);
    if (fd < 0) {
        fprintf(stderr, "validora ledger lock: %s\n", err);
        return VD_EXIT_FATAL;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "validora ledger lock: fork: %s\n", strerror(errno));
        vd_instance_unlock(fd);
        return VD_EXIT_FATAL;
    }
    if (pid == 0) {
        execvp(argv[first + 1], argv + first + 1);
        int e = errno;
        fprintf(stderr, "validora ledger lock: %s: %s\n", argv[first + 1], strerror(e));
        _exit(e == ENOENT ? 127 : 126);
    }
    /* As system() does: the terminal's ^C and ^\ are COMMAND's to handle. */
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    vd_instance_unlock(fd);
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

int vd_cli_ledger(int argc, char **argv)
{
    init_state_table();
    if (argc < 2) {
        fputs(LEDGER_USAGE, stderr);
        return VD_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "show")) return ledger_show(argc - 1, argv + 1);
    if (!strcmp(cmd, "set-age")) return ledger_set_age(argc - 1, argv + 1);
    if (!strcmp(cmd, "lock")) return ledger_lock(argc - 1, argv + 1);
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        fputs(LEDGER_USAGE, stdout);
        return VD_EXIT_OK;
    }
    static const char *const names[] = {"show", "set-age", "lock", NULL};
    return vd_cli_unknown_command("validora ledger", cmd, names);
}

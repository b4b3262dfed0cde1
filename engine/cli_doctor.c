/* cli_doctor.c — `validora doctor`: checks the sender's own setup as a receiving mail server
 * sees it and says, for each check, what to fix (docs/doctor.md).
 * Owns: doctor's command line (its own options, and the engine options it shares with
 * verify, taken from vd_engine_options), the text and JSON output, the exit status.
 * Does not own: the checks (vd_doctor_run, engine/doctor.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "validora/record.h"
#include "validora/doctor.h"

typedef struct doctor_cli {
    vd_doctor_opts d;
    const char *format;
} doctor_cli;

const vd_option vd_cli_doctor_options[] = {
    {"test-host", 0, VD_OPT_STRING, offsetof(doctor_cli, d.test_host), 0, NULL, 0, 0, "HOST[:PORT]",
     "Doctor",
     "an SMTP server to open a session with as verify does (220 banner, EHLO, STARTTLS, QUIT), "
     "to check outbound port 25 (port 25 by default; without one the check is skipped)",
     false},
    {"dnsbl", 0, VD_OPT_LIST, offsetof(doctor_cli, d.dnsbl), 0, NULL, 0, 0, "ZONE", "Doctor",
     "a DNSBL zone to look the source IP up on; repeatable (default zen.spamhaus.org, "
     "bl.spamcop.net, b.barracudacentral.org)",
     false},
    {"dkim-selector", 0, VD_OPT_STRING, offsetof(doctor_cli, d.dkim_selector), 0, NULL, 0, 0,
     "NAME", "Doctor",
     "check that NAME._domainkey.DOMAIN has a DKIM key (DOMAIN: the MAIL FROM's); without one "
     "the check is skipped",
     false},
    {"state-dir", 0, VD_OPT_STRING, offsetof(doctor_cli, d.state_dir), 0, NULL, 0, 0, "DIR",
     "Doctor", "where the instance lock lives (the instance-lock check)", false},
    {"format", 'f', VD_OPT_STRING, offsetof(doctor_cli, format), 0, "text", 0, 0, "FMT", "Output",
     "text (a line per check, a fix: line under each failure) or json", false},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL, NULL, NULL, false},
};

/* The engine options doctor uses, out of vd_engine_options (their defaults and help stay
 * there). */
static const char *const SHARED[] = {
    "dns",          "dns-timeout", "helo",   "mail-from", "source-ip",
    "smtp-timeout", "starttls",    "tls-ca", "rules",     NULL};
static vd_option shared_options[sizeof SHARED / sizeof SHARED[0]];

static void make_shared_options(void)
{
    size_t n = 0;
    for (const vd_option *o = vd_engine_options; o->name; o++)
        for (size_t i = 0; SHARED[i]; i++)
            if (!strcmp(o->name, SHARED[i])) shared_options[n++] = *o;
    memset(&shared_options[n], 0, sizeof shared_options[n]);
}

static const vd_cli_usage DOCTOR_USAGE = {
    .cmd = "doctor",
    .section = "doctor",
    .head = "Usage: validora doctor [OPTION]...\n"
            "Checks this sender's own setup the way a receiving mail server sees it, and says\n"
            "for each check what to fix: the HELO name (an FQDN that resolves to the source IP,\n"
            "and the IP's PTR naming it back), SPF, DMARC and DKIM of the MAIL FROM domain,\n"
            "that HELO and MAIL FROM are not at a free-mail domain, outbound port 25, DNSBL\n"
            "listings of the source IP, the instance lock. Probing from a badly set-up IP gets it\n"
            "blacklisted. Without --source-ip, the source IP is the address this host would use\n"
            "to reach --test-host. See docs/doctor.md.\n",
    .tail = "Output: a line per check, 'ok', 'FAIL' or 'skip', its name and what was found;\n"
            "under each failure a 'fix:' line. A check that could not tell (a DNS timeout or\n"
            "SERVFAIL, no source IP) is a FAIL: it is not a pass.\n"
            "Exit status: 0 when every check passed (skipped checks do not fail), 1 when one\n"
            "failed or could not tell, 2 on a usage error.\n",
};

typedef struct out {
    bool json;
    int n, ok, failed, skipped;
} out;

static void json_str(const char *s)
{
    if (!s)
        fputs("null", stdout);
    else
        vd_record_json_str(stdout, s, strlen(s));
}

static void on_check(const vd_doctor_check *c, void *arg)
{
    out *o = arg;
    bool skip = c->status == VD_DOCTOR_SKIP, pass = c->status == VD_DOCTOR_PASS;
    if (pass)
        o->ok++;
    else if (skip)
        o->skipped++;
    else
        o->failed++;
    if (o->json) {
        printf("%s\n  {\"name\": ", o->n++ ? "," : "");
        json_str(c->name);
        printf(", \"ok\": %s, \"status\": \"%s\", \"detail\": ",
               skip   ? "null"
               : pass ? "true"
                      : "false",
               vd_doctor_status_name(c->status));
        json_str(c->detail);
        printf(", \"fix\": ");
        json_str(c->fix);
        putchar('}');
        return;
    }
    o->n++;
    printf("%-4s %-24s %s\n", pass ? "ok" : skip ? "skip" : "FAIL", c->name, c->detail);
    if (!pass && !skip && c->fix) printf("     fix: %s\n", c->fix);
}

int vd_cli_doctor(int argc, char **argv)
{
    vd_engine_config cfg;
    vd_engine_config_init(&cfg);
    doctor_cli o;
    vd_options_defaults(vd_cli_doctor_options, &o);
    make_shared_options();
    vd_cli_table tables[] = {{vd_cli_doctor_options, &o}, {shared_options, &cfg}};
    int first = vd_cli_parse(&DOCTOR_USAGE, argc, argv, tables, 2);
    if (first < 0) return vd_cli_parse_exit(first);
    if (first < argc) return vd_cli_usage_error("doctor", "unexpected argument '%s'", argv[first]);
    if (strcmp(o.format, "text") != 0 && strcmp(o.format, "json") != 0)
        return vd_cli_usage_error("doctor", "--format: not text or json: '%s'", o.format);
    char err[1024];
    if (vd_options_check(shared_options, &cfg, err, sizeof err) != 0)
        return vd_cli_usage_error("doctor", "%s", err);
    out r = {.json = !strcmp(o.format, "json")};
    if (r.json) printf("{\"checks\": [");
    int n = vd_doctor_run(&cfg, &o.d, on_check, &r, err, sizeof err);
    if (n == -2) return vd_cli_usage_error("doctor", "%s", err);
    if (n < 0) {
        if (r.json) printf("]}\n");
        fprintf(stderr, "validora doctor: %s\n", err);
        return VD_EXIT_FATAL;
    }
    if (r.json)
        printf("\n]}\n");
    else
        printf("doctor: %d ok, %d FAIL, %d skip%s\n", r.ok, r.failed, r.skipped,
               r.failed ? ": fix the FAIL lines before verifying from this IP" : "");
    if (fflush(stdout) != 0) return VD_EXIT_FATAL;
    return n == 0 ? VD_EXIT_OK : VD_EXIT_FATAL;
}

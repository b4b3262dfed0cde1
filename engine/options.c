/* options.c — the engine's option table, and parsing, checking and formatting option values
 * for any table (validora/options.h).
 *
 * Owns: every engine option's name, default, bounds and help line, and the limits a user may
 * change (each with why it has the default it has).
 * Does not own: what an option does (dns.c, smtp.c, pool.c, rules.c read the values), the
 * command line (engine/cli_*.c), options of one subcommand (their own tables in the CLI). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "validora/options.h"
#include "validora/validora.h"

#define OFF(field) offsetof(vd_engine_config, field)

const vd_option vd_engine_options[] = {
    {"dns", 0, VD_OPT_STRING, OFF(dns_servers), 0, NULL, 0, 0, "SERVERS", "DNS",
     "servers to ask, HOST[:PORT][,...] ([v6addr]:PORT for IPv6); default: the servers in "
     "/etc/resolv.conf",
     false},
    {"dns-timeout", 0, VD_OPT_SECONDS, OFF(dns_timeout), 3, NULL, 0.05, 600, "SECS", "DNS",
     "per-try DNS timeout", false},

    {"smtp", 0, VD_OPT_FLAG, OFF(smtp), 1, NULL, 0, 0, NULL, "SMTP",
     "ask the mail servers (--no-smtp: stop after DNS, reason not_probed)", true},
    {"smtp-timeout", 0, VD_OPT_SECONDS, OFF(smtp_timeout), 30, NULL, 0.05, 3600, "SECS", "SMTP",
     "connect, banner and per-command timeout (RFC 5321 §4.5.3.2 asks for minutes; 30 s "
     "keeps a dead server from holding a session)",
     true},
    {"smtp-port", 0, VD_OPT_INT, OFF(smtp_port), 25, NULL, 1, 65535, "N", "SMTP",
     "port of the mail servers", true},
    {"helo", 0, VD_OPT_STRING, OFF(helo), 0, NULL, 0, 0, "NAME", "SMTP",
     "EHLO name (default: /etc/mailname or the host name); use your FQDN with a matching PTR",
     true},
    {"mail-from", 0, VD_OPT_STRING, OFF(mail_from), 0, NULL, 0, 0, "ADDR", "SMTP",
     "MAIL FROM address (default: verify@HELO-NAME; '' = <>)", true},
    {"allow-foreign-sender", 0, VD_OPT_FLAG, OFF(allow_foreign_sender), 0, NULL, 0, 0, NULL, "SMTP",
     "start even when the HELO name or the MAIL FROM domain is a free-mail provider's or a "
     "disposable-mail service's (refused otherwise): its SPF and DMARC do not authorise your "
     "IP, and probing as its user gets your IP blocked and listed (Spamhaus)",
     false},
    {"allow-private-destinations", 0, VD_OPT_FLAG, OFF(allow_private_destinations), 0, NULL, 0, 0,
     NULL, "SMTP",
     "connect to loopback, private (RFC 1918), link-local, unique-local and other "
     "special-purpose addresses, SMTP and HTTP alike (refused by default: status unknown, "
     "reason forbidden_destination, nothing sent), e.g. a test lab on 127.0.0.0/8",
     false},
    {"source-ip", 0, VD_OPT_STRING, OFF(source_ip), 0, NULL, 0, 0, "ADDR", "SMTP",
     "local address for outgoing connections", true},
    {"starttls", 0, VD_OPT_FLAG, OFF(starttls), 1, NULL, 0, 0, NULL, "SMTP",
     "use STARTTLS when offered (--no-starttls: never)", true},
    {"tls-ca", 0, VD_OPT_STRING, OFF(tls_ca), 0, NULL, 0, 0, "FILE", "SMTP",
     "PEM file of CAs to verify servers with, SMTP's STARTTLS and HTTPS alike (default: the "
     "system store)",
     false},
    {"greylist-delay", 0, VD_OPT_SECONDS, OFF(greylist_delay), 300, NULL, 0, 86400, "SECS", "SMTP",
     "wait before retrying a greylisted address (postgrey's default delay is 300 s)", true},
    {"greylist-tries", 0, VD_OPT_INT, OFF(greylist_tries), 3, NULL, 1, 100, "N", "SMTP",
     "RCPT tries in all for a greylisted address", true},
    {"rate-deferral-tries", 0, VD_OPT_INT, OFF(rate_deferral_tries), 6, NULL, 1, 100, "N", "SMTP",
     "RCPT tries in all for an address the server deferred for our rate (each retry waits for "
     "the lowered rate, never for a greylist delay)",
     true},
    {"per-mx-sessions", 0, VD_OPT_INT, OFF(per_mx_sessions), 4, NULL, 1, 100000, "N", "SMTP",
     "concurrent sessions per mail server (Postfix's anvil allows 50 per client; big "
     "providers publish 5-20)",
     true},
    {"reuse", 0, VD_OPT_FLAG, OFF(reuse), 1, NULL, 0, 0, NULL, "SMTP",
     "keep sessions for later addresses at the same server (--no-reuse: one session per "
     "address)",
     true},
    {"transcript", 0, VD_OPT_STRING, OFF(transcript_dir), 0, NULL, 0, 0, "DIR", "SMTP",
     "write each SMTP session to a file in DIR, an existing directory: commands, replies, "
     "timings (docs/transcripts.md)",
     false},

    {"http-timeout", 0, VD_OPT_SECONDS, OFF(http_timeout), 10, NULL, 0.05, 600, "SECS", "HTTP",
     "seconds an alternative check's HTTP request may take in all, redirects included (the "
     "endpoints answer in well under a second; 10 s keeps a stuck one from holding a probe)",
     true},
    {"http-max-body", 0, VD_OPT_INT, OFF(http_max_body), 1 << 20, NULL, 1024, 64 << 20, "BYTES",
     "HTTP",
     "largest response body read (the JSON answers are a few KiB, Yahoo's sign-up page some "
     "hundred; 1 MiB bounds a hostile server)",
     false},
    {"http-max-headers", 0, VD_OPT_INT, OFF(http_max_headers), 16 << 10, NULL, 1024, 1 << 20,
     "BYTES", "HTTP",
     "largest response status line and headers (16 KiB: nginx's and Apache's own limit is "
     "8 KiB a line)",
     false},
    {"http-max-redirects", 0, VD_OPT_INT, OFF(http_max_redirects), 3, NULL, 0, 20, "N", "HTTP",
     "redirects followed for one request (the endpoints redirect at most once; https -> http is "
     "always refused)",
     false},
    {"alt-checks", 0, VD_OPT_STRING, OFF(alt_checks), 0, "microsoft365,yahoo", 0, 0, "LIST",
     "Alternative checks",
     "comma list of the rules whose alternative check (an HTTPS endpoint instead of RCPT, "
     "docs/providers.md) is on; 'none' = all off",
     true},
    {"microsoft-credential-url", 0, VD_OPT_STRING, OFF(microsoft_credential_url), 0,
     "https://login.microsoftonline.com/common/GetCredentialType?mkt=en-US", 0, 0, "URL",
     "Alternative checks", "Microsoft's GetCredentialType endpoint (rule microsoft365)", true},
    {"yahoo-signup-url", 0, VD_OPT_STRING, OFF(yahoo_signup_url), 0,
     "https://login.yahoo.com/account/create", 0, 0, "URL", "Alternative checks",
     "Yahoo's sign-up page, for its cookies, acrumb and sessionIndex (rule yahoo)", true},
    {"yahoo-validate-url", 0, VD_OPT_STRING, OFF(yahoo_validate_url), 0,
     "https://login.yahoo.com/account/module/create?validateField=userId", 0, 0, "URL",
     "Alternative checks", "Yahoo's sign-up user-name validation (rule yahoo)", true},

    {"throttle", 0, VD_OPT_FLAG, OFF(throttle), 1, NULL, 0, 0, NULL, "Reputation",
     "shape traffic per provider, MX host, domain and source IP, adapt to 'slow down' replies "
     "and stop at blocks (--no-throttle: as fast as servers answer, for labs only)",
     false},
    {"on-block", 0, VD_OPT_STRING, OFF(on_block), 0, "defer", 0, 0, "WHAT", "Reputation",
     "when a provider has blocked us: 'defer' writes its addresses unknown/deferred for a later "
     "run, 'wait' holds them until the circuit breaker closes",
     false},
    {"warmup", 0, VD_OPT_FLAG, OFF(warmup), 1, NULL, 0, 0, NULL, "Reputation",
     "cap the addresses that open an SMTP session each UTC day by the source IP's age and "
     "history in the ledger (the warm-up curve: rules/validora/warmup.lua, "
     "docs/reputation.md); for an IP that has sent mail before, tell its age with 'validora "
     "ledger set-age' (--no-warmup: no cap, for labs)",
     false},
    {"on-budget", 0, VD_OPT_STRING, OFF(on_budget), 0, "defer", 0, 0, "WHAT", "Reputation",
     "when the day's warm-up budget is spent: 'defer' writes the addresses still to probe "
     "unknown/deferred for a later run, 'wait' holds them until the budget renews at the next "
     "UTC midnight",
     false},
    {"rules", 0, VD_OPT_LIST, OFF(rules_dirs), 0, NULL, 0, 0, "DIR", "Rules",
     "a directory of rules; repeat it to add your own beside the shipped ones: a later "
     "directory adds rules and overrides those of the same file name (default: "
     "$VALIDORA_RULES, else the installed rules)",
     false},
    {"watch", 0, VD_OPT_FLAG, OFF(watch), 1, NULL, 0, 0, NULL, "Rules",
     "reload the rules when a file under a rules directory changes (SIGHUP reloads too)", false},
    {"reload-delay", 0, VD_OPT_SECONDS, OFF(reload_delay), 0.5, NULL, 0.01, 60, "SECS", "Rules",
     "quiet time after the last change under a rules directory before reloading (an editor's "
     "save is several steps)",
     false},
    {"rules-memory", 0, VD_OPT_INT, OFF(rules_memory_mb), 1024, NULL, 1, 65536, "MIB", "Rules",
     "memory one rule generation may allocate (a runaway rule fails, the process lives)", false},
    {"rule-instructions", 0, VD_OPT_INT, OFF(rule_instructions), 20000000, NULL, 10000, 2000000000,
     "N", "Rules",
     "Lua instructions one address's rule may run (an endless loop costs only its address)", false},
    {"rules-load-instructions", 0, VD_OPT_INT, OFF(load_instructions), 50000000, NULL, 10000,
     2000000000, "N", "Rules", "Lua instructions loading all rules may take", false},

    {"watchdog", 0, VD_OPT_SECONDS, OFF(watchdog), 60, NULL, 0, 86400, "SECS", "Rules",
     "when the event loop makes no progress this long (a hang no budget caught), say what was "
     "running and exit 1 instead of hanging silently; 0 = off (run: off unless given, a script "
     "may wait for its own input)",
     false},

    {"state-dir", 0, VD_OPT_STRING, OFF(state_dir), 0, NULL, 0, 0, "DIR", "State",
     "where the ledger and the instance lock live (default: /var/lib/validora for root, else "
     "$XDG_STATE_HOME/validora or ~/.local/state/validora)",
     false},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL, NULL, NULL, false},
};

void *vd_option_value(const vd_option *o, void *target)
{
    return (char *)target + o->offset;
}

static const void *cvalue(const vd_option *o, const void *target)
{
    return (const char *)target + o->offset;
}

void vd_options_defaults(const vd_option *table, void *target)
{
    for (const vd_option *o = table; o->name; o++) {
        void *v = vd_option_value(o, target);
        switch (o->type) {
        case VD_OPT_FLAG:
            *(bool *)v = o->def != 0;
            break;
        case VD_OPT_INT:
        case VD_OPT_COUNT:
            *(int *)v = (int)o->def;
            break;
        case VD_OPT_SECONDS:
            *(double *)v = o->def;
            break;
        case VD_OPT_STRING:
            *(const char **)v = o->def_str;
            break;
        case VD_OPT_LIST:
            memset(v, 0, sizeof(vd_strlist));
            break;
        }
    }
}

const vd_option *vd_option_find(const vd_option *table, const char *name)
{
    for (const vd_option *o = table; o->name; o++)
        if (!strcmp(o->name, name)) return o;
    return NULL;
}

/* "between 1 and 100" */
static void format_bounds(const vd_option *o, char *buf, size_t len)
{
    snprintf(buf, len, "between %.15g and %.15g", o->min, o->max);
}

static int bounds_error(const vd_option *o, const char *what, const char *text, char *err,
                        size_t errlen)
{
    char b[64];
    format_bounds(o, b, sizeof b);
    snprintf(err, errlen, "--%s: not %s %s: '%s'", o->name, what, b, text);
    return -1;
}

int vd_option_parse(const vd_option *o, void *target, const char *text, char *err, size_t errlen)
{
    void *v = vd_option_value(o, target);
    char *end;
    switch (o->type) {
    case VD_OPT_COUNT:
        *(int *)v += 1;
        return 0;
    case VD_OPT_STRING:
        *(const char **)v = text;
        return 0;
    case VD_OPT_LIST: {
        vd_strlist *l = v;
        if (!text || l->n >= VD_STRLIST_MAX) {
            snprintf(err, errlen, "--%s: at most %d", o->name, VD_STRLIST_MAX);
            return -1;
        }
        l->v[l->n++] = text;
        return 0;
    }
    case VD_OPT_FLAG:
        if (!text || !strcasecmp(text, "true") || !strcasecmp(text, "yes") || !strcmp(text, "1"))
            *(bool *)v = true;
        else if (!strcasecmp(text, "false") || !strcasecmp(text, "no") || !strcmp(text, "0"))
            *(bool *)v = false;
        else {
            snprintf(err, errlen, "--%s: not true or false: '%s'", o->name, text);
            return -1;
        }
        return 0;
    case VD_OPT_INT: {
        errno = 0;
        long n = text ? strtol(text, &end, 10) : 0;
        if (!text || errno || end == text || *end || n < (long)o->min || n > (long)o->max)
            return bounds_error(o, "a whole number", text ? text : "", err, errlen);
        *(int *)v = (int)n;
        return 0;
    }
    case VD_OPT_SECONDS: {
        errno = 0;
        double d = text ? strtod(text, &end) : 0;
        if (!text || errno || end == text || *end || !(d >= o->min && d <= o->max))
            return bounds_error(o, "a number of seconds", text ? text : "", err, errlen);
        *(double *)v = d;
        return 0;
    }
    }
    return 0;
}

int vd_options_check(const vd_option *table, const void *target, char *err, size_t errlen)
{
    for (const vd_option *o = table; o->name; o++) {
        const void *v = cvalue(o, target);
        char text[64];
        if (o->type == VD_OPT_INT) {
            int n = *(const int *)v;
            if (n < o->min || n > o->max) {
                snprintf(text, sizeof text, "%d", n);
                return bounds_error(o, "a whole number", text, err, errlen);
            }
        } else if (o->type == VD_OPT_SECONDS) {
            double d = *(const double *)v;
            if (!(d >= o->min && d <= o->max)) {
                snprintf(text, sizeof text, "%g", d);
                return bounds_error(o, "a number of seconds", text, err, errlen);
            }
        }
    }
    return 0;
}

static void format_value(const vd_option *o, const void *v, char *buf, size_t len)
{
    switch (o->type) {
    case VD_OPT_FLAG:
        snprintf(buf, len, "%s", *(const bool *)v ? "true" : "false");
        break;
    case VD_OPT_INT:
    case VD_OPT_COUNT:
        snprintf(buf, len, "%d", *(const int *)v);
        break;
    case VD_OPT_SECONDS:
        snprintf(buf, len, "%g", *(const double *)v);
        break;
    case VD_OPT_STRING: {
        const char *s = *(const char *const *)v;
        snprintf(buf, len, "%s", s ? s : "");
        break;
    }
    case VD_OPT_LIST: {
        const vd_strlist *l = v;
        size_t at = 0;
        buf[0] = '\0';
        for (int i = 0; i < l->n && at < len; i++)
            at += (size_t)snprintf(buf + at, len - at, "%s%s", i ? "," : "", l->v[i]);
        break;
    }
    }
}

void vd_option_format(const vd_option *o, const void *target, char *buf, size_t len)
{
    format_value(o, cvalue(o, target), buf, len);
}

void vd_option_format_default(const vd_option *o, char *buf, size_t len)
{
    switch (o->type) {
    case VD_OPT_STRING:
        snprintf(buf, len, "%s", o->def_str ? o->def_str : "");
        break;
    case VD_OPT_LIST:
        snprintf(buf, len, "%s", "");
        break;
    case VD_OPT_INT:
    case VD_OPT_COUNT:
        snprintf(buf, len, "%d", (int)o->def);
        break;
    case VD_OPT_SECONDS:
        snprintf(buf, len, "%g", o->def);
        break;
    case VD_OPT_FLAG:
        snprintf(buf, len, "%s", o->def != 0 ? "true" : "false");
        break;
    }
}

void vd_engine_config_init(vd_engine_config *c)
{
    memset(c, 0, sizeof *c);
    vd_options_defaults(vd_engine_options, c);
}

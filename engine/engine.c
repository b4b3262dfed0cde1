/* engine.c — the engine: start-up, reload, and the public calls of validora.h.
 *
 * Owns: checking the settings against the options table, resolving HELO, MAIL FROM (their
 * defaults: sender.c) and the rules directory, refusing a foreign sender identity at
 * start-up (--allow-foreign-sender), making the DNS channel, the lists, the TLS context
 * (tls.c), the transcript sink, the SMTP pool and the first rule generation; making a new
 * generation current on reload; the log callback; the source IP's state (the instance lock,
 * the ledger, the day's warm-up budget asked of the current generation's warm-up curve at
 * start-up, at each reload and on a new UTC day; counting deferrals and blocks).
 * Does not own: an address's life (job.c), rules (rules.h), option defaults (options.c), the
 * budget's arithmetic (budget.c), the ledger file (ledger.c), which identities are foreign
 * (sender.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <openssl/ssl.h>
#include "budget.h"
#include "destination.h"
#include "dns.h"
#include "generation.h"
#include "http.h"
#include "job.h"
#include "limiter.h"
#include "log.h"
#include "pool.h"
#include "sender.h"
#include "tls.h"
#include "transcript.h"
#include "watch.h"
#include "watchdog.h"
#include "validora/ledger.h"
#include "validora/options.h"
#include "validora/validora.h"

/* The engine itself: what it made at start-up and keeps until vd_engine_free. */
struct vd_engine {
    struct event_base *base;
    struct vd_watchdog *watchdog; /* --watchdog, from vd_engine_new to vd_engine_free */
    vd_engine_config cfg;         /* effective settings; strings point at the copies below */
    char *dns_servers, *source_ip, *tls_ca, *transcript_dir;
    char *alt_checks, *microsoft_credential_url, *yahoo_signup_url, *yahoo_validate_url;
    char *dirs[VD_STRLIST_MAX]; /* the rules directories */
    size_t ndirs;
    char helo[256];
    char mail_from[320];
    struct sockaddr_storage source;
    socklen_t source_len;
    vd_dns *dns;
    vd_pool *pool;
    SSL_CTX *tls;       /* SMTP STARTTLS: opportunistic */
    SSL_CTX *https_tls; /* http.request: verifying */
    struct vd_http *http;
    vd_transcript_sink *transcripts;
    vd_gen *gen; /* the current generation */
    struct vd_watch *watch;
    vd_limiter *limiter;
    /* the state of the source IP (validora/ledger.h), when SMTP is on: its lock, its ledger,
     * today's warm-up budget */
    char ip[64];     /* canonical source IP, "any" without --source-ip */
    char *state_dir; /* resolved */
    int lock_fd;     /* the instance lock, -1 when not held */
    vd_ledger *ledger;
    struct vd_budget *budget;
    bool note_failed; /* a ledger note failed: said once */
    unsigned next_gen_id;
    vd_jobs jobs;          /* every live job (job.h), for vd_engine_free */
    vd_smtp_parked parked; /* job:smtp() calls before their session (vd_engine_drain) */
};

#ifndef VALIDORA_VERSION
#define VALIDORA_VERSION "0"
#endif

const char *vd_version(void)
{
    return VALIDORA_VERSION;
}

/* Says something through the embedder's log callback. */
#define engine_log(e, level, ...) vd_log_to((e)->cfg.log, (e)->cfg.log_arg, level, __VA_ARGS__)

/* Copies the caller's strings so the engine owns its settings. */
static int own_strings(vd_engine *e, const vd_engine_config *c)
{
    struct {
        const char *from;
        char **to;
        const char **field;
    } s[] = {
        {c->dns_servers, &e->dns_servers, &e->cfg.dns_servers},
        {c->source_ip, &e->source_ip, &e->cfg.source_ip},
        {c->tls_ca, &e->tls_ca, &e->cfg.tls_ca},
        {c->transcript_dir, &e->transcript_dir, &e->cfg.transcript_dir},
        {c->alt_checks, &e->alt_checks, &e->cfg.alt_checks},
        {c->microsoft_credential_url, &e->microsoft_credential_url,
         &e->cfg.microsoft_credential_url},
        {c->yahoo_signup_url, &e->yahoo_signup_url, &e->cfg.yahoo_signup_url},
        {c->yahoo_validate_url, &e->yahoo_validate_url, &e->cfg.yahoo_validate_url},
    };
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        *s[i].field = NULL;
        if (!s[i].from) continue;
        if (!(*s[i].to = strdup(s[i].from))) return -1;
        *s[i].field = *s[i].to;
    }
    e->ndirs = vd_gen_dirs(c, e->dirs, VD_STRLIST_MAX);
    e->cfg.rules_dirs.n = (int)e->ndirs;
    for (size_t i = 0; i < e->ndirs; i++)
        e->cfg.rules_dirs.v[i] = e->dirs[i];
    return e->ndirs ? 0 : -1;
}

/* HELO name, MAIL FROM and the source address, resolved and checked. */
static int resolve_sender(vd_engine *e, const vd_engine_config *c, char *err, size_t errlen)
{
    if (c->helo) {
        if (strlen(c->helo) >= sizeof e->helo || strpbrk(c->helo, " \t\r\n") || !c->helo[0]) {
            snprintf(err, errlen, "--helo: not a host name: '%s'", c->helo);
            return -1;
        }
        snprintf(e->helo, sizeof e->helo, "%s", c->helo);
    } else {
        vd_default_helo(e->helo, sizeof e->helo);
    }
    if (c->mail_from)
        snprintf(e->mail_from, sizeof e->mail_from, "%s", c->mail_from);
    else
        vd_sender_default_mail_from(e->helo, e->mail_from, sizeof e->mail_from);
    if (!vd_address_wire_safe(e->mail_from, true)) {
        snprintf(err, errlen, "sender address '%s' is not a valid address%s", e->mail_from,
                 c->mail_from ? "" : " (set --mail-from or --helo)");
        return -1;
    }
    e->cfg.helo = e->helo;
    e->cfg.mail_from = e->mail_from;
    if (!e->source_ip) return 0;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&e->source;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&e->source;
    if (inet_pton(AF_INET, e->source_ip, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        e->source_len = sizeof *s4;
    } else if (inet_pton(AF_INET6, e->source_ip, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        e->source_len = sizeof *s6;
    } else {
        snprintf(err, errlen, "--source-ip: not an IP address: '%s'", e->source_ip);
        return -1;
    }
    return 0;
}

/* Refuses to probe as someone else: a HELO name or MAIL FROM domain at a free-mail provider
 * or a disposable-mail service (by the generation's lists; sender.c judges), unless
 * --allow-foreign-sender. Without SMTP our identity goes nowhere. */
static int check_sender(vd_engine *e, const vd_engine_config *c, char *err, size_t errlen)
{
    char why[640];
    int foreign = e->cfg.smtp ? vd_sender_identity_check(e->gen->lists, e->helo, e->mail_from, why,
                                                         sizeof why)
                              : 0;
    if (!foreign) return 0;
    if (e->cfg.allow_foreign_sender) {
        engine_log(e, VD_LOG_WARNING,
                   "--allow-foreign-sender: probing as HELO %s, MAIL FROM <%s> although %s; "
                   "servers will see another domain's name from this IP, and may block and "
                   "list it",
                   e->helo, e->mail_from, why);
        return 0;
    }
    bool default_helo = !c->helo && (foreign & VD_SENDER_FOREIGN_HELO ||
                                     (!c->mail_from && foreign & VD_SENDER_FOREIGN_MAIL_FROM));
    snprintf(err, errlen,
             "refusing to probe as HELO %s, MAIL FROM <%s>: %s%s; %s. --allow-foreign-sender "
             "starts anyway, at your IP's risk",
             e->helo, e->mail_from, why,
             default_helo ? " (the default HELO: /etc/mailname or the host name; set --helo)" : "",
             vd_sender_foreign_fix);
    return -1;
}

/* A reply said slow down or we are blocked: the ledger counts it for the source IP. */
static void note_signal(vd_signal sig, const char *why, void *arg)
{
    (void)why;
    vd_engine *e = arg;
    if (!e->ledger || vd_ledger_note(e->ledger, e->ip, sig == VD_SIG_BLOCK) == 0) return;
    if (!e->note_failed)
        engine_log(e, VD_LOG_WARNING, "ledger: counting a %s: %s",
                   sig == VD_SIG_BLOCK ? "block" : "deferral", vd_ledger_error(e->ledger));
    e->note_failed = true;
}

/* The limiter's breakers in the ledger (its store interface, limiter.h), so that a run
 * restarted after a block finds the breaker still open. No ledger (rules test, --no-smtp):
 * memory only. */
static int store_breaker_get(void *arg, const char *key, double *until, int *times)
{
    vd_engine *e = arg;
    long u = 0;
    char reason[VD_LEDGER_REASON_MAX + 1];
    *until = 0;
    *times = 0;
    if (!e->ledger || vd_ledger_breaker_get(e->ledger, e->ip, key, &u, reason, sizeof reason))
        return e->ledger ? -1 : 0;
    *until = (double)u;
    const char *n = strstr(reason, "(block ");
    *times = n ? atoi(n + 7) : 1;
    return 0;
}

static int store_breaker_put(void *arg, const char *key, double until, int times,
                             const char *reason)
{
    vd_engine *e = arg;
    if (!e->ledger) return 0;
    char r[VD_LEDGER_REASON_MAX + 1];
    snprintf(r, sizeof r, "(block %d) %s", times, reason);
    if (vd_ledger_breaker_set(e->ledger, e->ip, key, (long)ceil(until), r) == 0) return 0;
    engine_log(e, VD_LOG_WARNING, "ledger: recording the breaker of %s: %s", key,
               vd_ledger_error(e->ledger));
    return -1;
}

/* What the limiter learned of each server, in the ledger: a later run starts near it. */
static int store_pace_get(void *arg, const char *key, vd_pace *out)
{
    vd_engine *e = arg;
    vd_ledger_pace p;
    if (!e->ledger) return 1;
    int rc = vd_ledger_pace_get(e->ledger, e->ip, key, &p);
    if (rc != 0) return rc;
    *out = (vd_pace){.rate = p.rate,
                     .ceil = p.ceil,
                     .conns = (double)p.conns,
                     .sessions = p.sessions,
                     .deferred_at = (double)p.deferred_at,
                     .updated_at = (double)p.updated_at,
                     .deferrals = (unsigned)p.deferrals};
    return 0;
}

static int store_pace_put(void *arg, const char *key, const vd_pace *in)
{
    vd_engine *e = arg;
    if (!e->ledger) return 0;
    vd_ledger_pace p = {.rate = in->rate,
                        .ceil = in->ceil,
                        .conns = (long)in->conns,
                        .sessions = in->sessions,
                        .deferred_at = (long)in->deferred_at,
                        .updated_at = (long)in->updated_at,
                        .deferrals = (long)in->deferrals};
    if (vd_ledger_pace_set(e->ledger, e->ip, key, &p) == 0) return 0;
    if (!e->note_failed)
        engine_log(e, VD_LOG_WARNING, "ledger: recording the pace of %s: %s", key,
                   vd_ledger_error(e->ledger));
    e->note_failed = true;
    return -1;
}

/* No DNS server answers: every address would quietly become unknown/dns_error. Said once,
 * loudly, with the fix (issue 17); vd_engine_stats_get's dns_answered tells the CLI whether
 * anything could be decided. */
static void on_dns_unreachable(const char *why, void *arg)
{
    vd_engine *e = arg;
    engine_log(e, VD_LOG_ERROR,
               "NO DNS SERVER ANSWERS (%s: %s): every address that needs DNS will be "
               "unknown/dns_error. Give working servers with --dns HOST[:PORT][,...] (the "
               "config's dns), or fix the nameserver lines of /etc/resolv.conf",
               e->dns_servers ? e->dns_servers : "the servers of /etc/resolv.conf", why);
}

/* --on-block and --on-budget: "defer" or "wait". The default is the options table's
 * (vd_engine_config_init); a missing value is refused, not defaulted again here. */
static int check_defer_or_wait(const char *opt, const char *v, char *err, size_t errlen)
{
    if (v && (!strcmp(v, "defer") || !strcmp(v, "wait"))) return 0;
    if (v)
        snprintf(err, errlen, "--%s: not defer or wait: '%s'", opt, v);
    else
        snprintf(err, errlen, "--%s: missing (defer or wait)", opt);
    return -1;
}

/* DNS, TLS, the transcript sink and the SMTP pool. */
static int open_io(vd_engine *e, char *err, size_t errlen)
{
    char sub[512];
    /* first: a --transcript DIR that cannot be written fails the start, naming DIR */
    if (e->transcript_dir && !(e->transcripts = vd_transcript_sink_new(
                                   e->transcript_dir, e->cfg.log, e->cfg.log_arg, err, errlen)))
        return -1;
    vd_dns_opts dopts = {.servers = e->dns_servers,
                         .timeout_ms = (int)(e->cfg.dns_timeout * 1000),
                         .unreachable = on_dns_unreachable,
                         .unreachable_arg = e};
    if (!(e->dns = vd_dns_new(e->base, &dopts, sub, sizeof sub))) {
        snprintf(err, errlen, "DNS: %s", sub);
        return -1;
    }
    e->jobs.dns = e->dns;
    if (e->cfg.smtp && e->cfg.starttls) {
        vd_tls_opts topts = {.ca_file = e->tls_ca, .require_verified = false};
        if (!(e->tls = vd_tls_client_ctx_new(&topts, sub, sizeof sub))) {
            snprintf(err, errlen, "TLS: %s", sub);
            return -1;
        }
    }
    /* HTTPS for rules' alternative checks: always verified, against --tls-ca when given */
    vd_tls_opts hopts = {.ca_file = e->tls_ca, .require_verified = true};
    if (!(e->https_tls = vd_tls_client_ctx_new(&hopts, sub, sizeof sub))) {
        snprintf(err, errlen, "TLS (HTTPS): %s", sub);
        return -1;
    }
    vd_http_opts httpopts = {
        .tls_ctx = e->https_tls,
        .dns = e->dns,
        .timeout = e->cfg.http_timeout,
        .max_body = (size_t)e->cfg.http_max_body,
        .max_headers = (size_t)e->cfg.http_max_headers,
        .max_redirects = e->cfg.http_max_redirects,
        .user_agent = "Validora/" VALIDORA_VERSION,
    };
    if (!(e->http = vd_http_new(e->base, &httpopts))) {
        snprintf(err, errlen, "HTTP client: %s",
                 errno == EINVAL ? "a bound is missing" : "out of memory");
        return -1;
    }
    int timeout_ms = (int)(e->cfg.smtp_timeout * 1000);
    vd_pool_opts popts = {
        .smtp =
            {
                .helo = e->helo,
                .source = e->source_ip ? (const struct sockaddr *)&e->source : NULL,
                .source_len = e->source_len,
                .connect_timeout_ms = timeout_ms,
                .command_timeout_ms = timeout_ms,
                .tls_ctx = e->tls,
                .trace = vd_transcript_sink_trace(e->transcripts),
            },
        .port = e->cfg.smtp_port,
        .mail_from = e->mail_from,
        .per_mx_sessions = e->cfg.per_mx_sessions,
    };
    if (check_defer_or_wait("on-block", e->cfg.on_block, err, errlen) != 0) return -1;
    vd_limiter_opts lopts = {
        .enabled = e->cfg.throttle,
        .unpaced = e->cfg.unpaced,
        .log = e->cfg.log,
        .log_arg = e->cfg.log_arg,
        .wait_breaker = !strcmp(e->cfg.on_block, "wait"),
        .on_signal = note_signal,
        .signal_arg = e,
        .store = {store_breaker_get, store_breaker_put, store_pace_get, store_pace_put, e}};
    if (!(e->limiter = vd_limiter_new(e->base, &lopts))) {
        snprintf(err, errlen, "limiter: out of memory");
        return -1;
    }
    if (!e->cfg.throttle)
        engine_log(e, VD_LOG_WARNING,
                   "--no-throttle: no traffic shaping, no back-off, no circuit breaker; servers "
                   "that watch their clients will defer and then block this IP");
    if (!(e->pool = vd_pool_new(e->base, &popts))) {
        snprintf(err, errlen, "SMTP pool: out of memory");
        return -1;
    }
    return 0;
}

/* ---- the source IP's state: lock, ledger, warm-up budget ---- */

/* history.blocks_30d of the warm-up curve: a month without a block is a clean history
 * (rules/validora/warmup.lua decides what that earns). */
#define WARMUP_HISTORY_DAYS 30

typedef struct ip_totals {
    const char *ip;
    long deferrals, blocks;
} ip_totals;

static void on_ip_totals(const vd_ledger_ip *row, void *arg)
{
    ip_totals *t = arg;
    if (strcmp(row->ip, t->ip) != 0) return;
    t->deferrals = row->deferrals_total;
    t->blocks = row->blocks_total;
}

/* Today's budget for the source IP by generation g's warm-up curve; -1 with err. */
static long warmup_figure(vd_engine *e, vd_gen *g, int *age_out, bool *is_new, char *err,
                          size_t errlen)
{
    int age = vd_ledger_age(e->ledger, e->ip, is_new, err, errlen);
    if (age < 0) return -1;
    vd_warmup_history h = {0};
    ip_totals t = {.ip = e->ip};
    if (vd_ledger_recent(e->ledger, e->ip, 1, &h.deferrals_today, &h.blocks_today) != 0 ||
        vd_ledger_recent(e->ledger, e->ip, WARMUP_HISTORY_DAYS, &h.deferrals_30d, &h.blocks_30d) !=
            0) {
        snprintf(err, errlen, "%s", vd_ledger_error(e->ledger));
        return -1;
    }
    if (vd_ledger_each_ip(e->ledger, on_ip_totals, &t, err, errlen) != 0) return -1;
    h.deferrals_total = t.deferrals;
    h.blocks_total = t.blocks;
    if (age_out) *age_out = age;
    return vd_rules_budget(g->rules, age, &h, err, errlen);
}

/* A new UTC day began (budget.c asks): the IP is a day older. */
static long on_new_day(void *arg)
{
    vd_engine *e = arg;
    char err[1024];
    int age = 0;
    long n = warmup_figure(e, e->gen, &age, NULL, err, sizeof err);
    if (n < 0)
        engine_log(e, VD_LOG_ERROR, "warm-up: a new UTC day, the budget stays %ld: %s",
                   vd_budget_figure(e->budget), err);
    else
        engine_log(e, VD_LOG_INFO,
                   "warm-up: a new UTC day; source IP %s is %d days old: today's budget is %ld "
                   "SMTP verifications",
                   e->ip, age, n);
    return n;
}

/* The instance lock, the ledger and the budget (its figure comes with the first generation).
 * Only when SMTP is on: with --no-smtp nobody sees this IP. */
static int open_state(vd_engine *e, char *err, size_t errlen)
{
    if (check_defer_or_wait("on-budget", e->cfg.on_budget, err, errlen) != 0) return -1;
    if (!e->cfg.smtp || e->cfg.no_ledger) return 0;
    if (vd_ledger_canon_ip(e->source_ip, e->ip, sizeof e->ip, err, errlen) != 0) return -1;
    if (!(e->state_dir = vd_state_dir(e->cfg.state_dir, err, errlen))) return -1;
    if ((e->lock_fd = vd_instance_lock(e->state_dir, e->ip, err, errlen)) < 0) return -1;
    if (!(e->ledger = vd_ledger_open(e->state_dir, err, errlen))) return -1;
    vd_budget_opts bo = {
        .enabled = e->cfg.warmup,
        .wait = !strcmp(e->cfg.on_budget, "wait"),
        .log = e->cfg.log,
        .log_arg = e->cfg.log_arg,
        .new_day = e->cfg.warmup ? on_new_day : NULL,
        .new_day_arg = e,
    };
    if (!(e->budget = vd_budget_new(e->base, e->ledger, e->ip, 0, &bo))) {
        snprintf(err, errlen, "warm-up budget: out of memory");
        return -1;
    }
    return 0;
}

/* Today's figure from the first generation's curve, and what the operator must know. */

/* Appends "IP (N days)" of each IP but 'any' the ledger knows, for the new-IP warning. */
static void other_ips(const vd_ledger_ip *ip, void *arg)
{
    char *out = arg;
    size_t len = strlen(out);
    if (!strcmp(ip->ip, "any") || len > 400) return;
    snprintf(out + len, 512 - len, "%s%s (%d days)", len ? ", " : "", ip->ip, ip->age_days);
}

static int start_budget(vd_engine *e, char *err, size_t errlen)
{
    if (!e->budget) return 0;
    if (!e->cfg.warmup) {
        engine_log(e, VD_LOG_WARNING,
                   "--no-warmup: no daily budget for source IP %s; a new IP that probes "
                   "thousands of mailboxes a day is throttled, then blocklisted, and a listed IP "
                   "cannot verify anything. An IP that has sent mail before can say so instead: "
                   "validora ledger set-age %s DAYS --state-dir %s",
                   e->ip, e->ip, e->state_dir);
        return 0;
    }
    bool is_new = false;
    int age = 0;
    char sub[1024];
    long n = warmup_figure(e, e->gen, &age, &is_new, sub, sizeof sub);
    if (n < 0) {
        snprintf(err, errlen, "warm-up budget: %s", sub);
        return -1;
    }
    vd_budget_set(e->budget, n);
    long used = vd_ledger_used_today(e->ledger, e->ip, NULL);
    if (is_new && !strcmp(e->ip, "any")) {
        /* issue 17: `ledger set-age 127.0.0.1 365` does not age the runs without --source-ip */
        char others[512] = "";
        vd_ledger_each_ip(e->ledger, other_ips, others, sub, sizeof sub);
        engine_log(e, VD_LOG_WARNING,
                   "source IP any is new to the ledger in %s: warm-up day 1, today's budget is "
                   "%ld SMTP verifications (docs/reputation.md). 'any' is how the ledger counts "
                   "runs without --source-ip (the kernel picks the outgoing address). If this "
                   "machine's address has sent mail before, give its age: validora ledger "
                   "set-age any DAYS --state-dir %s%s%s",
                   e->state_dir, n, e->state_dir,
                   others[0] ? "; or run with --source-ip set to an address whose age the "
                               "ledger knows: "
                             : "",
                   others);
    } else if (is_new) {
        engine_log(e, VD_LOG_WARNING,
                   "source IP %s is new to the ledger in %s: warm-up day 1, today's budget is %ld "
                   "SMTP verifications (docs/reputation.md). If this IP has sent mail before, "
                   "give its age: validora ledger set-age %s DAYS --state-dir %s",
                   e->ip, e->state_dir, n, e->ip, e->state_dir);
    } else
        engine_log(e, VD_LOG_INFO,
                   "warm-up: source IP %s is %d days old: today's budget is %ld SMTP "
                   "verifications, %ld used",
                   e->ip, age, n, used < 0 ? 0 : used);
    return 0;
}

/* Joins problems into one message: "file:line: message; ..." (the first ones that fit). */
typedef struct problems {
    char *buf;
    size_t len, at;
    int n;
} problems;

static void collect_problem(const char *file, int line, const char *msg, void *arg)
{
    problems *p = arg;
    if (p->at + 1 >= p->len) return;
    int w = line > 0
                ? snprintf(p->buf + p->at, p->len - p->at, "%s%s:%d: %s", p->n ? "; " : "", file,
                           line, msg)
                : snprintf(p->buf + p->at, p->len - p->at, "%s%s: %s", p->n ? "; " : "", file, msg);
    p->n++;
    if (w > 0) p->at += (size_t)w < p->len - p->at ? (size_t)w : p->len - p->at - 1;
}

static vd_rules_env rules_env(vd_engine *e)
{
    return (vd_rules_env){
        .base = e->base,
        .dns = e->dns,
        .pool = e->pool,
        .limiter = e->limiter,
        .http = e->http,
        .budget = e->budget,
        .parked = &e->parked,
        .cfg = &e->cfg,
        .log = e->cfg.log,
        .log_arg = e->cfg.log_arg,
    };
}

static vd_gen *load_generation(vd_engine *e, char *err, size_t errlen)
{
    vd_rules_env env = rules_env(e);
    problems p = {.buf = err, .len = errlen};
    if (errlen) err[0] = '\0';
    vd_gen *g = vd_gen_load(&env, e->dirs, e->ndirs, e->next_gen_id + 1, collect_problem, &p);
    if (g) e->next_gen_id++;
    return g;
}

static void say_current(const vd_engine *e, const char *why)
{
    char dirs[1024] = "";
    size_t at = 0;
    for (size_t i = 0; i < e->ndirs && at < sizeof dirs; i++)
        at += (size_t)snprintf(dirs + at, sizeof dirs - at, "%s%s", i ? ", " : "", e->dirs[i]);
    engine_log(e, VD_LOG_INFO, "rules generation %u (%s) from %s is current%s%s", e->gen->id,
               e->gen->hash, dirs, why ? ": " : "", why ? why : "");
}

static void on_change(const char *what, void *arg);

vd_engine *vd_engine_new(struct event_base *base, const vd_engine_config *c, char *err,
                         size_t errlen)
{
    if (vd_options_check(vd_engine_options, c, err, errlen) != 0) return NULL;
    vd_engine *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->base = base;
    e->cfg = *c;
    e->jobs.cfg = &e->cfg;
    e->lock_fd = -1;
    /* Process-wide: smtp.c and http.c check every address they connect to (destination.h). */
    vd_destination_allow_private(c->allow_private_destinations);
    if (own_strings(e, c) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (resolve_sender(e, c, err, errlen) != 0 || open_io(e, err, errlen) != 0 ||
        open_state(e, err, errlen) != 0)
        goto fail;
    if (!(e->gen = load_generation(e, err, errlen)) || check_sender(e, c, err, errlen) != 0)
        goto fail;
    say_current(e, NULL);
    if (start_budget(e, err, errlen) != 0) goto fail;
    if (e->cfg.watch && !(e->watch = vd_watch_new(base, e->dirs, e->ndirs, e->cfg.reload_delay,
                                                  on_change, e, err, errlen)))
        goto fail;
    if (e->cfg.watchdog > 0 &&
        !(e->watchdog = vd_watchdog_start(base, e->cfg.watchdog, "validora"))) {
        snprintf(err, errlen, "--watchdog: cannot start its thread");
        goto fail;
    }
    return e;
fail:
    vd_engine_free(e);
    return NULL;
}

/* Builds a new generation and makes it current when it loaded whole and differs. */
static int reload(vd_engine *e, const char *why, char *err, size_t errlen)
{
    vd_gen *g = load_generation(e, err, errlen);
    if (!g) {
        engine_log(e, VD_LOG_ERROR, "reload (%s) failed, generation %u (%s) stays: %s", why,
                   e->gen->id, e->gen->hash, err);
        return -1;
    }
    if (strcmp(g->hash, e->gen->hash) == 0) {
        engine_log(e, VD_LOG_DEBUG,
                   "reload (%s): no rule or list file changed, generation %u stays", why,
                   e->gen->id);
        vd_gen_unref(g);
        return 0;
    }
    long figure = -1;
    if (e->budget && e->cfg.warmup) {
        char sub[1024];
        if ((figure = warmup_figure(e, g, NULL, NULL, sub, sizeof sub)) < 0) {
            snprintf(err, errlen, "warm-up budget: %s", sub);
            engine_log(e, VD_LOG_ERROR, "reload (%s) failed, generation %u (%s) stays: %s", why,
                       e->gen->id, e->gen->hash, err);
            vd_gen_unref(g);
            return -1;
        }
    }
    vd_gen *old = e->gen;
    e->gen = g;
    vd_gen_unref(old);
    say_current(e, why);
    if (figure >= 0 && figure != vd_budget_figure(e->budget)) {
        engine_log(e, VD_LOG_INFO, "warm-up: today's budget for source IP %s is now %ld", e->ip,
                   figure);
        vd_budget_set(e->budget, figure);
    }
    return 0;
}

/* A file under a rules directory changed (and things have been quiet since). */
static void on_change(const char *what, void *arg)
{
    char why[4200], err[1024];
    snprintf(why, sizeof why, "%s changed", what);
    reload(arg, why, err, sizeof err);
}

int vd_engine_reload(vd_engine *e, char *err, size_t errlen)
{
    return reload(e, "asked", err, errlen);
}

int vd_engine_which(vd_engine *e, const char *email, size_t len, vd_which_cb cb, void *arg)
{
    return vd_job_which(&e->jobs, e->gen, email, len, cb, arg);
}

/* Counts the problems it passes on. */
typedef struct relay {
    vd_problem_cb cb;
    void *arg;
    int n;
} relay;

static void relay_problem(const char *file, int line, const char *msg, void *arg)
{
    relay *r = arg;
    r->n++;
    if (r->cb) r->cb(file, line, msg, r->arg);
}

int vd_rules_check(const vd_engine_config *c, vd_problem_cb problem, vd_rule_cb rule, void *arg,
                   char *generation)
{
    relay r = {problem, arg, 0};
    char msg[512];
    if (vd_options_check(vd_engine_options, c, msg, sizeof msg) != 0) {
        relay_problem("options", 0, msg, &r);
        return r.n;
    }
    char *dirs[VD_STRLIST_MAX];
    size_t ndirs = vd_gen_dirs(c, dirs, VD_STRLIST_MAX);
    if (!ndirs) {
        relay_problem("rules", 0, "out of memory", &r);
        return r.n;
    }
    vd_rules_env env = {.cfg = c};
    vd_gen *g = vd_gen_load(&env, dirs, ndirs, 1, relay_problem, &r);
    if (g) {
        if (rule) vd_rules_order(g->rules, rule, arg);
        if (generation) snprintf(generation, 13, "%s", g->hash);
        vd_gen_unref(g);
    } else if (!r.n) {
        relay_problem(dirs[0], 0, "the rules did not load", &r);
    }
    vd_gen_dirs_free(dirs, ndirs);
    return r.n;
}

int vd_engine_submit(vd_engine *e, const char *email, size_t len, vd_result_cb cb, void *arg)
{
    return vd_job_submit(&e->jobs, e->gen, email, len, cb, arg);
}

size_t vd_engine_inflight(const vd_engine *e)
{
    return e->jobs.inflight;
}

void vd_engine_stats_get(vd_engine *e, vd_engine_stats *out)
{
    vd_limiter_stats ls;
    vd_limiter_stats_get(e->limiter, &ls);
    *out = (vd_engine_stats){.inflight = e->jobs.inflight,
                             .parked_throttle = ls.parked,
                             .parked_budget = vd_budget_parked(e->budget),
                             .breakers_open = ls.breakers_open,
                             .budget_left = e->cfg.warmup ? vd_budget_left(e->budget) : -1};
    /* for metrics */
    out->budget = e->cfg.warmup && e->budget ? vd_budget_figure(e->budget) : -1;
    out->source_ip = e->ip[0] ? e->ip : "any";
    snprintf(out->generation, sizeof out->generation, "%s", e->gen->hash);
    out->generation_id = e->gen->id;
    if (e->dns) vd_dns_stats(e->dns, &out->dns_queries, &out->dns_cache_hits);
    if (e->dns) vd_dns_reach(e->dns, &out->dns_answered, &out->dns_unanswered);
    out->throttle_waits = ls.waits;
    out->throttle_deferred = ls.deferred;
    out->slow_downs = ls.slow_downs;
    out->blocks = ls.blocks;
}

void vd_engine_drain(vd_engine *e)
{
    vd_smtp_drain(&e->parked, "stopped before its SMTP session (a signal): verify it again "
                              "(verify --resume does)");
}

void vd_engine_free(vd_engine *e)
{
    if (!e) return;
    vd_watchdog_stop(e->watchdog);
    vd_watch_free(e->watch);
    vd_jobs_free_all(&e->jobs);
    vd_gen_unref(e->gen);
    vd_limiter_free(e->limiter);
    if (e->pool) vd_pool_free(e->pool);
    vd_http_free(e->http); /* after the jobs: their requests are cancelled */
    if (e->dns) vd_dns_free(e->dns);
    if (e->tls) vd_tls_ctx_free(e->tls);
    if (e->https_tls) vd_tls_ctx_free(e->https_tls);
    vd_transcript_sink_free(e->transcripts); /* after the pool: closing sessions keep theirs */
    vd_budget_free(e->budget); /* after the jobs: gives back what was reserved and not used */
    vd_ledger_close(e->ledger);
    if (e->lock_fd >= 0) vd_instance_unlock(e->lock_fd);
    free(e->state_dir);
    free(e->dns_servers);
    vd_gen_dirs_free(e->dirs, e->ndirs);
    free(e->source_ip);
    free(e->tls_ca);
    free(e->transcript_dir);
    free(e->alt_checks);
    free(e->microsoft_credential_url);
    free(e->yahoo_signup_url);
    free(e->yahoo_validate_url);
    free(e);
}

/* validora.h — the embedding API of libvalidora.
 *
 * An engine lives on the caller's libevent event_base. Addresses are submitted one at a
 * time; each gets exactly one record through the callback given with it, when its verdict
 * is known. The library prints nothing: what it has to say goes to the log callback in the
 * config. The CLI (`validora verify`) is one user of this API. Records: validora/record.h.
 * Options and their defaults: validora/options.h (vd_engine_options). */
#ifndef VALIDORA_VALIDORA_H
#define VALIDORA_VALIDORA_H
#include <stdbool.h>
#include <stddef.h>
#include "validora/strlist.h"

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;
struct vd_record; /* validora/record.h */

typedef struct vd_engine vd_engine;

typedef enum vd_log_level {
    VD_LOG_ERROR = 0, /* something failed that the caller should see (a reload) */
    VD_LOG_WARNING,   /* something is wrong but work goes on */
    VD_LOG_INFO,      /* what happened: a generation became current, rule log() lines */
    VD_LOG_DEBUG,     /* detail for debugging */
} vd_log_level;

/* Receives every message of the library; msg is valid only during the call. */
typedef void (*vd_log_cb)(vd_log_level level, const char *msg, void *arg);

/* The engine's settings. Every field but the last three is an option of vd_engine_options
 * (validora/options.h), which holds its default, bounds and help text; vd_engine_config_init
 * fills them in from there. Strings are copied by vd_engine_new. */
typedef struct vd_engine_config {
    const char *dns_servers; /* --dns: "HOST[:PORT][,...]"; NULL = /etc/resolv.conf */
    double dns_timeout;      /* --dns-timeout, seconds per try */
    bool throttle;           /* --throttle: traffic shaping (off: --no-throttle, labs only) */
    const char *on_block;    /* --on-block: "defer" or "wait" */
    bool warmup;             /* --warmup: a daily budget per source IP (warmup.lua) */
    const char *on_budget;   /* --on-budget: "defer" or "wait" once the day's is spent */
    vd_strlist rules_dirs;   /* --rules, repeatable; none = $VALIDORA_RULES, the installed rules */
    bool smtp;               /* --smtp; false: stop after DNS (reason not_probed) */
    const char *helo;        /* --helo; NULL = /etc/mailname or the host name */
    const char *mail_from;   /* --mail-from; NULL = verify@<helo>, "" = the null sender */
    const char *source_ip;   /* --source-ip: bind outgoing SMTP connections; NULL = any */
    int smtp_port;           /* --smtp-port */
    double smtp_timeout;     /* --smtp-timeout: connect, banner, each command (seconds) */
    bool starttls;           /* --starttls: opportunistic STARTTLS */
    const char *tls_ca;      /* --tls-ca: PEM file of trusted CAs; NULL = the system store */
    double greylist_delay;   /* --greylist-delay: seconds before a greylisted RCPT is retried */
    int greylist_tries;      /* --greylist-tries: RCPT tries in all for a greylisted address */
    int rate_deferral_tries; /* --rate-deferral-tries: RCPT tries for a rate-deferred address */
    int per_mx_sessions;     /* --per-mx-sessions: concurrent SMTP sessions per MX host */
    bool reuse;              /* --reuse: keep SMTP sessions for later addresses */
    bool watch;              /* --watch: reload when a file under a rules directory changes */
    double reload_delay;     /* --reload-delay: quiet seconds before such a reload */
    int rules_memory_mb;     /* --rules-memory: MiB a rule generation may allocate */
    int rule_instructions;   /* --rule-instructions: Lua VM instructions per address */
    int load_instructions;   /* --rules-load-instructions: to load a rule generation */
    double watchdog;         /* --watchdog: seconds without loop progress that stop the
                                process (watchdog.h); 0 = off */
    double http_timeout;     /* --http-timeout: seconds an HTTP request may take in all */
    int http_max_body;       /* --http-max-body: bytes of a response body */
    int http_max_headers;    /* --http-max-headers: bytes of a response's headers */
    int http_max_redirects;  /* --http-max-redirects: redirects followed per request */
    const char *alt_checks;  /* --alt-checks: rules whose alternative check is on; "none" */
    const char *microsoft_credential_url; /* --microsoft-credential-url */
    const char *yahoo_signup_url;         /* --yahoo-signup-url */
    const char *yahoo_validate_url;       /* --yahoo-validate-url */

    /* --transcript: write each SMTP session to a file in this directory, which must exist
     * and be writable (docs/transcripts.md); NULL = none */
    const char *transcript_dir;

    /* --state-dir: the ledger and the instance lock (validora/ledger.h); NULL = the default */
    const char *state_dir;

    /* --allow-foreign-sender: start even when the HELO name or the MAIL FROM domain is at a
     * free-mail or disposable-mail domain (refused otherwise) */
    bool allow_foreign_sender;
    /* --allow-private-destinations: connect to loopback, private, link-local and other
     * special-purpose addresses (refused otherwise: forbidden_destination) */
    bool allow_private_destinations;
    /* Not an option: the embedder probes only servers of its own (validora rules test's
     * playback, rules which): no ledger, no instance lock, no budget. --no-smtp has the same
     * effect, since nothing is sent then. */
    bool no_ledger;
    /* Not an option: the shaper's rates never bind, its caps and circuit breakers do (validora
     * rules test: its playback servers are its own, and a rule's hard HTTP pace would only make
     * the tests slow). */
    bool unpaced;

    vd_log_cb log; /* NULL = messages are dropped */
    void *log_arg;
} vd_engine_config;

/* Fills c with the defaults of vd_engine_options (and no log callback). */
void vd_engine_config_init(vd_engine_config *c);

/* Creates an engine. Returns NULL and writes a message to err on failure (a value out of
 * bounds, bad DNS servers, unreadable lists or CA file, a rule that does not load). */
vd_engine *vd_engine_new(struct event_base *base, const vd_engine_config *c, char *err,
                         size_t errlen);

/* The record is valid only during the callback. */
typedef void (*vd_result_cb)(const struct vd_record *rec, void *arg);

/* Starts verifying one address (len bytes at email, no terminator needed; the bytes are
 * echoed whole in the record's email, NULs included). The callback may run before this
 * returns (an invalid address). Returns 0, or -1 when out of memory. */
int vd_engine_submit(vd_engine *e, const char *email, size_t len, vd_result_cb cb, void *arg);

/* Addresses submitted whose record has not been delivered yet. */
size_t vd_engine_inflight(const vd_engine *e);

/* What the engine is doing now: for a progress line (verify) or metrics. */
typedef struct vd_engine_stats {
    size_t inflight;        /* submitted, no record yet (vd_engine_inflight) */
    size_t parked_throttle; /* waiting for the traffic shaper: a rate, a session slot, or an
                             * open circuit breaker with --on-block wait */
    size_t parked_budget;   /* waiting for the next UTC day's warm-up budget (--on-budget wait) */
    size_t breakers_open;   /* circuit breakers open now */
    long budget_left;       /* SMTP verifications left in today's warm-up budget of the source
                             * IP; -1 when there is none (--no-warmup, --no-smtp, a playback) */
    /* for metrics (validora serve's /metrics): counters since vd_engine_new, and more state */
    long budget;                     /* today's warm-up budget; -1 when there is none */
    const char *source_ip;           /* canonical, or "any"; valid as long as the engine */
    char generation[13];             /* the current generation's hash (12 hex digits) */
    unsigned generation_id;          /* 1, 2, ... in the order generations were loaded */
    size_t dns_queries;              /* DNS queries sent */
    size_t dns_cache_hits;           /* lookups answered from the TTL cache */
    size_t dns_answered;             /* queries a DNS server answered (any reply) */
    size_t dns_unanswered;           /* queries no DNS server answered (refused, timed out) */
    unsigned long throttle_waits;    /* sessions and RCPTs the traffic shaper made wait */
    unsigned long throttle_deferred; /* given back unprobed (a breaker open, --on-block defer) */
    unsigned long slow_downs;        /* "slow down" replies seen */
    unsigned long blocks;            /* "blocked" replies seen */
} vd_engine_stats;
/* Fills out. Cheap enough for a few calls a second (budget_left reads the ledger). */
void vd_engine_stats_get(vd_engine *e, vd_engine_stats *out);

/* Loads the rules again as a new generation; running jobs finish on the old one.
 * Returns 0, or -1 with a message in err (the current generation stays). */
int vd_engine_reload(vd_engine *e, char *err, size_t errlen);

/* The rules directory used when the config names none: $VALIDORA_RULES, else the installed
 * rules, else the source tree's. */
const char *vd_rules_default_dir(void);

/* A problem found in the rules: its file, line (0 when not known) and message. */
typedef void (*vd_problem_cb)(const char *file, int line, const char *msg, void *arg);
/* One rule, in the order rules are tried: position from 1, name, file, priority. */
typedef void (*vd_rule_cb)(int position, const char *name, const char *file, double priority,
                           void *arg);

/* Loads the rules and lists of c exactly as a reload would, without starting an engine:
 * problem gets every problem found; when there is none, rule (if not NULL) gets every rule in
 * the order they are tried and generation (13 bytes, if not NULL) the generation's hash.
 * Returns the number of problems. */
int vd_rules_check(const vd_engine_config *c, vd_problem_cb problem, vd_rule_cb rule, void *arg,
                   char *generation);

/* Which rule would handle an address, and why. */
typedef struct vd_which {
    const char *email; /* as given, email_len bytes */
    size_t email_len;
    const char *domain;     /* normalised; NULL when the address is invalid */
    const char *rule;       /* NULL when no rule runs: the engine decides (status, reason) */
    const char *file;       /* the rule's file */
    const char *by;         /* "domain", "mx" or "default" */
    const char *pattern;    /* the match pattern that fitted; NULL for default */
    const char *host;       /* the MX host it fitted, for by = "mx" */
    const char *status;     /* when no rule runs: the verdict the engine gives */
    const char *reason;     /* (invalid_syntax, domain_not_found, null_mx, dns_error, ...) */
    const char *detail;     /* more about that verdict, or NULL */
    const char *generation; /* the generation that chose */
} vd_which;
typedef void (*vd_which_cb)(const vd_which *w, void *arg);

/* Looks up the address's MX hosts (the same DNS as a probe) and tells which rule would probe
 * it, through cb (called once, maybe before this returns). Nothing is sent to any mail
 * server. Returns 0, or -1 when out of memory. */
int vd_engine_which(vd_engine *e, const char *email, size_t len, vd_which_cb cb, void *arg);

/* Frees the engine. Jobs still in flight are dropped without a record. Open SMTP sessions
 * get a polite QUIT: keep running the event loop for a moment afterwards to let it out. */
/* A stop: the addresses still waiting for the traffic shaper or the warm-up budget get their
 * record at once (unknown/deferred, which --resume verifies again), and no new SMTP session
 * starts; the sessions open now finish. For a first SIGINT/SIGTERM, so that it does not wait
 * for a throttled provider's whole queue. */
void vd_engine_drain(vd_engine *e);
void vd_engine_free(vd_engine *e);

/* The HELO name used when none is configured: /etc/mailname, else the host name (".localdomain"
 * added to a name without a dot), lower-case. Never asks DNS. */
void vd_default_helo(char *out, size_t len);

const char *vd_version(void);

#ifdef __cplusplus
}
#endif
#endif

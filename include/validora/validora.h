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

/* The engine's settings. Every field but the last two is an option of vd_engine_options
 * (validora/options.h), which holds its default, bounds and help text; vd_engine_config_init
 * fills them in from there. Strings are copied by vd_engine_new. */
typedef struct vd_engine_config {
    const char *dns_servers; /* --dns: "HOST[:PORT][,...]"; NULL = /etc/resolv.conf */
    double dns_timeout;      /* --dns-timeout, seconds per try */
    const char *rules_dir;   /* --rules; NULL = $VALIDORA_RULES, the installed or source rules */
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
    int per_mx_sessions;     /* --per-mx-sessions: concurrent SMTP sessions per MX host */
    bool reuse;              /* --reuse: keep SMTP sessions for later addresses */
    int rules_memory_mb;     /* --rules-memory: MiB a rule generation may allocate */
    int rule_instructions;   /* --rule-instructions: Lua VM instructions per address */
    int load_instructions;   /* --rules-load-instructions: to load a rule generation */

    /* --transcript: write each SMTP session to a file in this directory, which must exist
     * and be writable (docs/transcripts.md); NULL = none */
    const char *transcript_dir;

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

/* Loads the rules again as a new generation; running jobs finish on the old one.
 * Returns 0, or -1 with a message in err (the current generation stays). */
int vd_engine_reload(vd_engine *e, char *err, size_t errlen);

/* Frees the engine. Jobs still in flight are dropped without a record. Open SMTP sessions
 * get a polite QUIT: keep running the event loop for a moment afterwards to let it out. */
void vd_engine_free(vd_engine *e);

const char *vd_version(void);

#ifdef __cplusplus
}
#endif
#endif

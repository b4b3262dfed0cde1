/* validora.h — the embedding API of libvalidora.
 *
 * An engine lives on the caller's libevent event_base. Addresses are submitted one at a
 * time; each gets exactly one record through the callback given with it, when its verdict
 * is known. The CLI (`validora verify`) is one user of this API. */
#ifndef VALIDORA_VALIDORA_H
#define VALIDORA_VALIDORA_H
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;
struct vd_record; /* engine/record.h: the result record */

typedef struct vd_engine vd_engine;

typedef struct vd_engine_config {
    const char *dns_servers; /* "HOST[:PORT][,...]"; NULL = /etc/resolv.conf */
    int dns_timeout_ms;      /* 0 = 3000 */
    const char *rules_dir;   /* NULL = the installed or source rules directory */
    bool smtp;               /* false: stop after DNS (reason not_probed) */
    const char *helo;        /* NULL = the host's FQDN */
    const char *mail_from;   /* NULL = verify@<helo> */
    const char *source_ip;   /* bind outgoing SMTP connections; NULL = any */
    int smtp_port;           /* 0 = 25 */
    int smtp_timeout_ms;     /* connect, banner, each command; 0 = 30000 */
    int greylist_delay_s;    /* seconds before a greylisted RCPT is retried; 0 = 300 */
    int greylist_tries;      /* RCPT tries in all for a greylisted address; 0 = 3 */
    int per_mx_sessions;     /* concurrent SMTP sessions per MX host; 0 = 4 */
    bool starttls;           /* opportunistic STARTTLS (default true via vd_engine_config_init) */
    bool reuse_sessions;     /* keep SMTP sessions for later addresses (default true) */
    int verbose;             /* 0 quiet; 1 rule messages and errors */
} vd_engine_config;

/* Fills c with the defaults. */
void vd_engine_config_init(vd_engine_config *c);

/* Creates an engine. Returns NULL and writes a message to err on failure (bad DNS servers,
 * unreadable lists, a rule that does not load). */
vd_engine *vd_engine_new(struct event_base *base, const vd_engine_config *c, char *err,
                         size_t errlen);

/* The record is valid only during the callback. */
typedef void (*vd_result_cb)(const struct vd_record *rec, void *arg);

/* Starts verifying one address (len bytes at email, no terminator needed). The callback may
 * run before this returns (an invalid address). Returns 0, or -1 when out of memory. */
int vd_engine_submit(vd_engine *e, const char *email, size_t len, vd_result_cb cb, void *arg);

/* Addresses submitted whose record has not been delivered yet. */
size_t vd_engine_inflight(const vd_engine *e);

/* Loads the rules again as a new generation; running jobs finish on the old one.
 * Returns 0, or -1 with a message in err (the current generation stays). */
int vd_engine_reload(vd_engine *e, char *err, size_t errlen);

/* Frees the engine. Jobs still in flight are dropped without a record. */
void vd_engine_free(vd_engine *e);

const char *vd_version(void);

#ifdef __cplusplus
}
#endif
#endif

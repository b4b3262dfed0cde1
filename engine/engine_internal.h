/* engine_internal.h — what engine.c and job.c (the engine layer) share: the engine itself.
 * No Lua here: the engine reaches rules only through rules.h. Not part of the public API
 * (include/validora/). */
#ifndef VALIDORA_ENGINE_INTERNAL_H
#define VALIDORA_ENGINE_INTERNAL_H
#include <sys/socket.h>
#include <openssl/ssl.h>
#include "dns.h"
#include "generation.h"
#include "pool.h"
#include "transcript.h"
#include "validora/ledger.h"
#include "validora/validora.h"

struct vd_job;

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
    size_t inflight;
    struct vd_job *jobs;   /* every live job, for vd_engine_free */
    vd_smtp_parked parked; /* job:smtp() calls before their session (vd_engine_drain) */
};

/* job.c: the life of one address, from vd_engine_submit to its record. */
int vd_job_submit(vd_engine *e, const char *email, size_t len, vd_result_cb cb, void *arg);
/* vd_engine_which: the DNS stage of a job, then the rule it would get instead of a probe. */
int vd_job_which(vd_engine *e, const char *email, size_t len, vd_which_cb cb, void *arg);
/* Drops every job without a record. */
void vd_jobs_free_all(vd_engine *e);

#endif

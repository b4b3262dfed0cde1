/* doctor.h — `validora doctor`'s checks of the sender's own setup, as a receiving mail server
 * sees it: the HELO name, forward and reverse DNS of the source IP, SPF, DMARC, DKIM, whose
 * domains the HELO and MAIL FROM are, outbound port 25, DNSBL listings, the instance lock.
 * Each check is reported with what to fix (docs/doctor.md).
 *
 * Runs synchronously on an event loop of its own: one call, every check in turn, each DNS
 * lookup bounded by the config's --dns-timeout, each step of the port-25 SMTP session by
 * --smtp-timeout and the SPF evaluation by VD_DOCTOR_SPF_DEADLINE. DNS goes to the config's
 * --dns servers only. The port-25 session is the engine's (smtp.c): banner, EHLO (HELO
 * fallback) with --helo, STARTTLS when offered (unless --no-starttls; --tls-ca), QUIT. */
#ifndef VALIDORA_DOCTOR_H
#define VALIDORA_DOCTOR_H
#include <stddef.h>
#include "validora/options.h"
#include "validora/validora.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VD_DOCTOR_SPF_DEADLINE 20.0 /* seconds for one SPF evaluation, every lookup included */

/* The DNSBLs asked when opts->dnsbl names none. */
extern const char *const vd_doctor_default_dnsbls[];

typedef struct vd_doctor_opts {
    const char *test_host;     /* "HOST[:PORT]" (port 25; "[v6]:port"); NULL: port 25 skipped */
    const char *dkim_selector; /* NAME._domainkey.DOMAIN is checked; NULL: skipped */
    vd_strlist dnsbl;          /* DNSBL zones; none = vd_doctor_default_dnsbls */
    const char *state_dir;     /* for the instance lock; NULL = its default */
} vd_doctor_opts;

typedef enum vd_doctor_status {
    VD_DOCTOR_PASS = 0,
    VD_DOCTOR_FAIL,    /* a receiving server would hold it against the sender */
    VD_DOCTOR_UNKNOWN, /* could not tell (DNS timeout, SERVFAIL, no source IP): not a pass */
    VD_DOCTOR_SKIP,    /* not configured or not available; does not count as a failure */
} vd_doctor_status;

typedef struct vd_doctor_check {
    const char *name; /* "helo-fqdn", "dnsbl:zen.spamhaus.org", ... (docs/doctor.md) */
    vd_doctor_status status;
    const char *detail; /* what was found */
    const char *fix;    /* what to do about it; NULL when it passed */
} vd_doctor_check;

/* Called once per check, in order; the check is valid only during the call. */
typedef void (*vd_doctor_cb)(const vd_doctor_check *c, void *arg);

/* "pass", "fail", "unknown", "skip". */
const char *vd_doctor_status_name(vd_doctor_status s);

/* Runs every check with the config's --helo, --mail-from, --source-ip, --dns, --dns-timeout,
 * --smtp-timeout, --starttls, --tls-ca and --rules (for the free-mail list). Returns the number of
 * checks that did not pass (fail or unknown; skips do not count); -2 with a message in err when a
 * setting is unusable (a --source-ip that is not an IP address, a malformed --test-host, no
 * positive
 * --smtp-timeout: its default is the options table's, vd_engine_config_init); -1 with err
 * when the checks could not run at all (out of memory, the DNS or lists could not be set up). */
int vd_doctor_run(const vd_engine_config *cfg, const vd_doctor_opts *o, vd_doctor_cb cb, void *arg,
                  char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif

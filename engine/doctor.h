/* doctor.h — the engine side of `validora doctor` (public API: validora/doctor.h).
 *
 * Owns: the checks of the sender's own setup (doctor.c), driving dns.c on an event loop of
 * its own, the SPF evaluation through libspf2 with dns.c as its DNS layer, the port-25
 * check (a session through smtp.c, as the engine opens one); and the pure judgements below,
 * exposed for tests.
 * Does not own: printing (cli_doctor.c), the free-mail list (lists.c), the instance lock
 * (ledger.c, not built yet). */
#ifndef VALIDORA_ENGINE_DOCTOR_H
#define VALIDORA_ENGINE_DOCTOR_H
#include <stddef.h>
#include <stdint.h>
#include "validora/doctor.h"

/* Why name is not a usable HELO name (an FQDN a receiving server can look up), written to
 * why; or NULL when it is one. Rejects: empty, over 253 bytes, IP literals, names without a
 * dot, localhost and *.localhost, *.localdomain, *.local, labels that are not LDH (RFC 1123
 * §2.1) or over 63 bytes, a numeric last label. A trailing dot is allowed. */
const char *vd_doctor_helo_problem(const char *name, char *why, size_t whylen);

/* What one A record of a DNSBL answer means. */
typedef enum vd_dnsbl_answer {
    VD_DNSBL_LISTED,     /* 127.0.0.x: listed (x is the list's return code) */
    VD_DNSBL_ERROR,      /* 127.255.255.x: Spamhaus-style error code, never a listing */
    VD_DNSBL_UNEXPECTED, /* anything else: a wildcarding or hijacking resolver, not a list */
} vd_dnsbl_answer;

/* addr is an IPv4 address in network byte order. meaning (may be NULL) gets a short text for
 * the error codes Spamhaus documents (127.255.255.252, .254, .255), else "". */
vd_dnsbl_answer vd_doctor_dnsbl_answer(uint32_t addr, const char **meaning);

/* The port-25 check alone, set up as vd_doctor_run sets it up (o->test_host, the config's
 * --helo, --source-ip, --smtp-timeout, --starttls, --tls-ca); returns as vd_doctor_run. For
 * tests: the SMTP session without the DNS checks around it. */
int vd_doctor_port25(const vd_engine_config *cfg, const vd_doctor_opts *o, vd_doctor_cb cb,
                     void *arg, char *err, size_t errlen);

#endif

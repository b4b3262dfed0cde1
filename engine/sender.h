/* sender.h — who we say we are on the wire: the HELO name and the MAIL FROM address, their
 * computed defaults, and the identities we refuse to probe with.
 *
 * Owns: the default HELO (vd_default_helo, declared in validora/validora.h) and MAIL FROM
 * (verify@HELO); the judgement that a HELO or MAIL FROM domain is someone else's (a free-mail
 * provider's or a disposable-mail service's, by rules/lists), its wording and its fix. One
 * home, so that `validora doctor` (doctor.c, check own-domain) and the engine's start-up
 * (engine.c) say the same thing.
 * Does not own: the lists and their lookups (lists.c), whether a refusal may be overridden
 * (engine.c reads --allow-foreign-sender), the doctor's report (doctor.c). */
#ifndef VALIDORA_SENDER_H
#define VALIDORA_SENDER_H
#include <stddef.h>
#include "lists.h"

/* The MAIL FROM used when none is configured: verify@HELO. */
void vd_sender_default_mail_from(const char *helo, char *out, size_t len);

/* What to do about a foreign identity (doctor's fix line; the engine's refusal ends with it). */
extern const char vd_sender_foreign_fix[];

/* Judges the HELO name and the MAIL FROM address ("" = the null sender: only the HELO counts)
 * against the lists: a domain at a free-mail provider or a disposable-mail service (a
 * subdomain counts; an address literal never does) is someone else's. Returns 0 when neither
 * is, else VD_SENDER_FOREIGN_MAIL_FROM | VD_SENDER_FOREIGN_HELO for those that are, and why
 * says which, e.g. "the HELO domain mail.yahoo.com is a free-mail provider's domain" (why is
 * "" when none is). */
#define VD_SENDER_FOREIGN_MAIL_FROM 1
#define VD_SENDER_FOREIGN_HELO      2
int vd_sender_identity_check(const vd_lists *l, const char *helo, const char *mail_from, char *why,
                             size_t len);

#endif

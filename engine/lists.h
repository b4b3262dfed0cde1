/* lists.h — flags from well-kept public lists: disposable domains, free providers,
 * role local parts, and typo suggestions for big providers' domains.
 *
 * Owns: loading the list files (rules/lists/NAME.txt) into hash sets (once per rule
 * generation), their digest, lookups.
 * Does not own: refreshing the lists (contrib/update-lists.sh). */
#ifndef VALIDORA_LISTS_H
#define VALIDORA_LISTS_H
#include <stdbool.h>
#include <stddef.h>

typedef struct vd_lists vd_lists;

/* Loads every list from dir (e.g. "<rules>/lists"). Returns NULL and writes a message to
 * err when a list is missing or unreadable. */
vd_lists *vd_lists_new(const char *dir, char *err, size_t errlen);
void vd_lists_free(vd_lists *l);
/* SHA-256 over the names and bytes of the list files as they were read. */
void vd_lists_digest(const vd_lists *l, unsigned char out[32]);

/* domain is the normalised (lower-case A-label) domain. A subdomain of a listed domain
 * counts (mail.mailinator.com), judged on the registrable domain through libpsl. */
bool vd_lists_is_disposable(const vd_lists *l, const char *domain);
bool vd_lists_is_free(const vd_lists *l, const char *domain);
/* local is the local part as parsed (unquoted forms compare case-insensitively;
 * "+tag" and separators are ignored: "Info+x" and "info" are both role). */
bool vd_lists_is_role(const vd_lists *l, const char *local);
/* A likely intended domain for a typo of a big provider's domain ("gmial.com" ->
 * "gmail.com"), or NULL when none is close or the domain is itself known. The returned
 * string lives as long as l. */
const char *vd_lists_suggest(const vd_lists *l, const char *domain);

#endif

/* address.h — parsing, validation and normalisation of email addresses.
 *
 * Owns: deciding whether a string is a mailbox a server would accept in RCPT TO
 * (RFC 5321 §4.1.2, RFC 6531 for UTF-8 local parts, IDNA2008/UTS#46 domains).
 * Does not own: any I/O. Nothing that fails here may ever reach an SMTP command line. */
#ifndef VALIDORA_ADDRESS_H
#define VALIDORA_ADDRESS_H
#include <stdbool.h>
#include <stddef.h>

#define VD_ADDR_LOCAL_MAX  64  /* octets, RFC 5321 §4.5.3.1.1 */
#define VD_ADDR_DOMAIN_MAX 255 /* octets, RFC 5321 §4.5.3.1.2 */
#define VD_ADDR_PATH_MAX   254 /* octets of local@domain (RFC 3696 erratum 1690) */

typedef struct vd_address {
    char local[4 * VD_ADDR_LOCAL_MAX + 3]; /* local part as it goes on the wire (quotes kept) */
    char domain[VD_ADDR_DOMAIN_MAX + 1];   /* lower-case A-label form, or "[literal]" */
    char domain_unicode[4 * VD_ADDR_DOMAIN_MAX + 1]; /* U-label form for display; = domain
                                                        when ASCII or a literal */
    char address[4 * VD_ADDR_LOCAL_MAX + VD_ADDR_DOMAIN_MAX + 8]; /* local@domain */
    bool is_literal; /* domain is an address literal [1.2.3.4] or [IPv6:...] */
    bool smtputf8;   /* local part has non-ASCII characters: needs SMTPUTF8 */
    bool quoted;     /* local part is a quoted string */
} vd_address;

/* Parses the len bytes at in (no terminator needed). Returns true and fills *out when the
 * address is acceptable; otherwise false, and *why (never NULL on failure) names the
 * problem in one short lower-case phrase, e.g. "control character", "local part too long". */
bool vd_address_parse(const char *in, size_t len, vd_address *out, const char **why);

/* True when s (NUL-terminated) is safe to put on an SMTP command line as a path argument:
 * it parses with vd_address_parse. The empty string (null reverse path) is allowed only
 * when allow_empty is set. */
bool vd_address_wire_safe(const char *s, bool allow_empty);

#endif

/* fuzz_address.c — libFuzzer target for vd_address_parse (engine/address.c) on arbitrary bytes.
 *
 * Owns: the invariants an accepted address must keep, because whatever parses goes onto an
 * SMTP command line: the normalised form re-parses to itself (one mailbox, one spelling), holds
 * no control byte, keeps the RFC 5321 length limits, its flags agree with its text, and
 * vd_address_wire_safe says yes exactly when vd_address_parse does. Any violation aborts, and
 * libFuzzer saves the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_address: %s:%d: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_accepted(const vd_address *a)
{
    size_t llen = strnlen(a->local, sizeof a->local);
    size_t dlen = strnlen(a->domain, sizeof a->domain);
    size_t alen = strnlen(a->address, sizeof a->address);
    REQUIRE(llen < sizeof a->local && dlen < sizeof a->domain && alen < sizeof a->address,
            "unterminated field");
    REQUIRE(strnlen(a->domain_unicode, sizeof a->domain_unicode) < sizeof a->domain_unicode,
            "unterminated domain_unicode");

    /* The canonical local part is never longer than the given one, which was <= 64. */
    REQUIRE(llen >= 1 && llen <= VD_ADDR_LOCAL_MAX, "local part length %zu", llen);
    REQUIRE(dlen >= 1 && dlen <= VD_ADDR_DOMAIN_MAX, "domain length %zu", dlen);
    REQUIRE(alen == llen + 1 + dlen && alen <= VD_ADDR_PATH_MAX, "address length %zu", alen);
    REQUIRE(memcmp(a->address, a->local, llen) == 0 && a->address[llen] == '@' &&
                strcmp(a->address + llen + 1, a->domain) == 0,
            "address '%s' is not local '%s' @ domain '%s'", a->address, a->local, a->domain);

    bool high = false;
    for (size_t i = 0; i < alen; i++) {
        unsigned char c = (unsigned char)a->address[i];
        REQUIRE(c >= 0x20 && c != 0x7f, "control byte 0x%02x in '%s'", c, a->address);
        if (i < llen && c >= 0x80) high = true;
    }
    /* The domain goes on the wire as an A-label or literal: ASCII, lower case. */
    for (size_t i = 0; i < dlen; i++) {
        unsigned char c = (unsigned char)a->domain[i];
        REQUIRE(c < 0x80 && !(c >= 'A' && c <= 'Z' && !a->is_literal), "domain byte 0x%02x in '%s'",
                c, a->domain);
    }
    REQUIRE(high == a->smtputf8, "smtputf8 flag %d for '%s'", a->smtputf8, a->local);
    REQUIRE(a->quoted == (a->local[0] == '"'), "quoted flag %d for '%s'", a->quoted, a->local);
    REQUIRE(a->is_literal == (a->domain[0] == '['), "literal flag %d for '%s'", a->is_literal,
            a->domain);
    if (a->is_literal)
        REQUIRE(strcmp(a->domain, a->domain_unicode) == 0, "literal '%s' has unicode form '%s'",
                a->domain, a->domain_unicode);

    /* Idempotence: the normalised form is itself accepted, unchanged. */
    vd_address b;
    const char *why = NULL;
    REQUIRE(vd_address_parse(a->address, alen, &b, &why), "'%s' does not re-parse: %s", a->address,
            why ? why : "?");
    REQUIRE(strcmp(a->address, b.address) == 0, "'%s' re-parses as '%s'", a->address, b.address);
    REQUIRE(strcmp(a->local, b.local) == 0 && strcmp(a->domain, b.domain) == 0 &&
                strcmp(a->domain_unicode, b.domain_unicode) == 0 && a->quoted == b.quoted &&
                a->smtputf8 == b.smtputf8 && a->is_literal == b.is_literal,
            "'%s' re-parses with other fields", a->address);
    REQUIRE(vd_address_wire_safe(a->address, false), "'%s' not wire safe", a->address);

    /* The U-label form shown to people reads back as the same domain. 1024 is the parser's
     * input limit (INPUT_MAX in address.c). */
    if (!a->is_literal && strcmp(a->domain, a->domain_unicode) != 0) {
        char u[sizeof a->local + 1 + sizeof a->domain_unicode];
        int n = snprintf(u, sizeof u, "%s@%s", a->local, a->domain_unicode);
        if (n > 0 && n <= 1024) {
            REQUIRE(vd_address_parse(u, (size_t)n, &b, &why), "'%s' (from '%s') does not parse: %s",
                    u, a->address, why ? why : "?");
            REQUIRE(strcmp(b.domain, a->domain) == 0, "'%s' reads back as '%s', not '%s'", u,
                    b.domain, a->domain);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vd_address a;
    const char *why = NULL;
    memset(&a, 0xAA, sizeof a); /* so that a field left unterminated is caught */
    bool ok = vd_address_parse((const char *)data, size, &a, &why);
    if (ok)
        check_accepted(&a);
    else
        REQUIRE(why != NULL && *why != '\0', "rejected without a reason");

    bool has_nul = memchr(data, '\0', size) != NULL;
    REQUIRE(!(ok && has_nul), "accepted an input with NUL");

    /* vd_address_wire_safe sees a C string: with no NUL in the input it must agree with parse. */
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (!has_nul) {
        REQUIRE(vd_address_wire_safe(s, false) == ok, "wire_safe disagrees with parse (%d)", ok);
        REQUIRE(vd_address_wire_safe(s, true) == (ok || size == 0),
                "wire_safe(allow_empty) disagrees with parse (%d)", ok);
    } else {
        size_t n = strlen(s);
        REQUIRE(vd_address_wire_safe(s, false) == vd_address_parse(s, n, NULL, &why),
                "wire_safe disagrees with parse on the prefix before NUL");
    }
    free(s);
    return 0;
}

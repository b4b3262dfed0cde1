/* fuzz_serve_body.c — libFuzzer target for what strangers send `validora serve` in a body
 * (engine/cli_serve_parse.c): the POST /v1/verify object and the POST /v1/jobs lists, a JSON
 * array of strings, text one address a line and a CSV column.
 *
 * Input: byte 0 picks the parser (bits 0-1: verify, JSON list, text list, CSV list) and for a
 * CSV the column (bit 2: "email", else bits 3-5 as N from 1, or "Mail" when 0); byte 1 the
 * bound of addresses (1 + byte 1); the rest is the body.
 *
 * Invariants: the status is 0 or one of 400, 413, 415 (500 only when memory runs out) with a
 * message, 0 without; a verify's email is NUL-terminated at its length and no longer than the
 * body; a list holds 1..bound addresses, each ending in '\n', none empty (but a JSON ""),
 * none holding '\r' or NUL or longer than VD_CLI_MAX_LINE, with as many lines as it counts,
 * and no more bytes than the body gives (plus a '\n' each); after an error the list is
 * freed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h" /* VD_CLI_MAX_LINE */
#include "cli_serve_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_serve_body: %s:%d: %s: ", __FILE__, __LINE__, #cond);            \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* cli_common.c's, which brings the whole CLI with it. */
size_t vd_cli_bom_len(const char *s, size_t n)
{
    return n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3) ? 3 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    unsigned kind = data[0] & 3, col = data[0] >> 2;
    long max = 1 + (long)data[1];
    /* A copy of its own size, so ASan sees any read past the body (no NUL after it). */
    size_t n = size - 2;
    char *b = malloc(n ? n : 1);
    if (!b) return 0;
    memcpy(b, data + 2, n);
    char err[512] = "";
    if (kind == 0) {
        char *email = NULL;
        size_t len = 0;
        int rc = sv_parse_verify(b, n, &email, &len, err, sizeof err);
        REQUIRE(rc == 0 || rc == 400 || rc == 413 || rc == 500, "status %d", rc);
        if (rc == 0) {
            REQUIRE(email && email[len] == 0 && len <= n, "email of %zu bytes", len);
        } else {
            REQUIRE(!email && *err, "error %d: email %p, message '%s'", rc, (void *)email, err);
        }
        free(email);
    } else {
        static const char *const types[] = {"", "application/json", "text/plain", "text/csv"};
        char column[8] = "Mail";
        if (col & 1)
            snprintf(column, sizeof column, "email");
        else if (col >> 1)
            snprintf(column, sizeof column, "%u", col >> 1);
        sv_list l = {0};
        int rc =
            sv_parse_list(types[kind], kind == 3 ? column : NULL, b, n, max, &l, err, sizeof err);
        REQUIRE(rc == 0 || rc == 400 || rc == 413 || rc == 500, "status %d", rc);
        if (rc) {
            REQUIRE(*err && !l.buf && l.n == 0, "error %d: list %ld, message '%s'", rc, l.n, err);
        } else {
            REQUIRE(l.n >= 1 && l.n <= max, "%ld addresses, bound %ld", l.n, max);
            REQUIRE(l.len <= n + (size_t)l.n, "%zu bytes of list from %zu", l.len, n);
            long lines = 0;
            for (size_t at = 0; at < l.len;) {
                const char *nl = memchr(l.buf + at, '\n', l.len - at);
                REQUIRE(nl, "the last address does not end in a line feed");
                size_t k = (size_t)(nl - (l.buf + at));
                /* A JSON item "" is an address (it gets its record, one for one with the
                 * array); text and CSV skip blank ones. */
                REQUIRE((k >= 1 || kind == 1) && k <= VD_CLI_MAX_LINE, "address of %zu bytes", k);
                REQUIRE(!memchr(l.buf + at, '\r', k) && !memchr(l.buf + at, 0, k),
                        "address with CR or NUL");
                lines++;
                at += k + 1;
            }
            REQUIRE(lines == l.n, "%ld lines, %ld counted", lines, l.n);
            sv_list_free(&l);
        }
    }
    free(b);
    return 0;
}

/* cli_serve_parse.h — serve's request bodies without a server (cli_serve_parse.c): the
 * /v1/verify object and the /v1/jobs lists, their bounds, and the HTTP status of each error.
 * CLI layer: public headers (include/validora/) and cli.h only. */
#ifndef VALIDORA_CLI_SERVE_PARSE_H
#define VALIDORA_CLI_SERVE_PARSE_H
#include <stddef.h>

#define SV_VERIFY_BODY_MAX 16384 /* POST /v1/verify: {"email": ...} with room for any address */

/* A list of addresses being parsed from a request body. */
typedef struct sv_list {
    char *buf; /* the addresses, each ending in '\n' */
    size_t len, cap;
    long n;
} sv_list;
/* Appends one address (len bytes, no '\n', '\r' or NUL in it). -1 when out of memory. */
int sv_list_add(sv_list *l, const char *s, size_t len);
void sv_list_free(sv_list *l);

/* A POST /v1/verify body: a JSON object {"email": "..."} and nothing else (a UTF-8 BOM
 * skipped). 0 with *email (malloc'd, NUL-terminated, *len bytes, NULs possible), or the
 * HTTP status of the error (400, 413, 500) with err. */
int sv_parse_verify(const char *b, size_t n, char **email, size_t *len, char *err, size_t errlen);
/* A POST /v1/jobs body of media type `type` (lower case, no parameters): application/json
 * (an array of strings), text/plain (one a line) or text/csv (a header row, then the column
 * `column`: a name, or N from 1; NULL: "email"); a UTF-8 BOM skipped. Appends at most max
 * addresses to l. 0, or the HTTP status of the error (400 bad list or none, 413 past max,
 * 415 another type, 500 out of memory) with err, l freed. */
int sv_parse_list(const char *type, const char *column, const char *b, size_t n, long max,
                  sv_list *l, char *err, size_t errlen);

#endif

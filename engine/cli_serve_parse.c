/* cli_serve_parse.c — what `validora serve` reads from a request body, without a server: the
 * POST /v1/verify object and the POST /v1/jobs lists (a JSON array of strings, text one a
 * line, a CSV column), so tests/fuzz/fuzz_serve_body.c can drive them on their own.
 *
 * Owns: the body formats, their bounds (addresses a list, bytes an address), the messages of
 * their errors and the HTTP status each one means.
 * Does not own: which types a request may use (the token and CSRF policy are cli_serve.c's),
 * the replies, the job made of a list (cli_serve_jobs.c). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "csv_reader.h"
#include "cli.h"
#include "cli_serve_parse.h"

int sv_list_add(sv_list *l, const char *s, size_t len)
{
    if (l->len + len + 1 > l->cap) {
        size_t cap = l->cap ? l->cap : 4096;
        while (cap < l->len + len + 1)
            cap *= 2;
        char *b = realloc(l->buf, cap);
        if (!b) return -1;
        l->buf = b;
        l->cap = cap;
    }
    memcpy(l->buf + l->len, s, len);
    l->len += len;
    l->buf[l->len++] = '\n';
    l->n++;
    return 0;
}

void sv_list_free(sv_list *l)
{
    free(l->buf);
    *l = (sv_list){0};
}

int sv_parse_verify(const char *b, size_t n, char **email, size_t *len, char *err, size_t errlen)
{
    *email = NULL;
    *len = 0;
    if (n > SV_VERIFY_BODY_MAX) {
        snprintf(err, errlen, "a POST /v1/verify body holds at most %d bytes", SV_VERIFY_BODY_MAX);
        return 413;
    }
    size_t bom = vd_cli_bom_len(b, n);
    json_error_t je;
    json_t *o = json_loadb(b + bom, n - bom, 0, &je);
    int rc = 0;
    if (!o || !json_is_object(o)) {
        snprintf(err, errlen, "the body must be a JSON object {\"email\": \"...\"}%s%s",
                 o ? "" : ": ", o ? "" : je.text);
        json_decref(o);
        return 400;
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        if (strcmp(key, "email") != 0) {
            snprintf(err, errlen,
                     "unknown key '%.100s': a request takes only \"email\" (the options are "
                     "the daemon's, docs/serve.md)",
                     key);
            rc = 400;
            break;
        }
    }
    json_t *e = json_object_get(o, "email");
    if (!rc && !json_is_string(e)) {
        snprintf(err, errlen, "\"email\" must be a string");
        rc = 400;
    }
    if (!rc) {
        *len = json_string_length(e);
        if (!(*email = malloc(*len + 1))) {
            snprintf(err, errlen, "out of memory");
            rc = 500;
        } else {
            memcpy(*email, json_string_value(e), *len);
            (*email)[*len] = 0;
        }
    }
    json_decref(o);
    return rc;
}

/* Adds one address; the status of the error otherwise. */
static int list_add(sv_list *l, long max, const char *a, size_t n, char *err, size_t errlen)
{
    if (l->n >= max) {
        snprintf(err, errlen, "a job holds at most %ld addresses (--max-job-addresses)", max);
        return 413;
    }
    if (n > VD_CLI_MAX_LINE || memchr(a, '\n', n) || memchr(a, '\r', n) || memchr(a, 0, n)) {
        snprintf(err, errlen, "address %ld: longer than %d bytes, or holds a line break or NUL",
                 l->n + 1, VD_CLI_MAX_LINE);
        return 400;
    }
    if (sv_list_add(l, a, n) != 0) {
        snprintf(err, errlen, "out of memory");
        return 500;
    }
    return 0;
}

static int parse_json_list(const char *b, size_t n, long max, sv_list *l, char *err, size_t errlen)
{
    json_error_t je;
    json_t *a = json_loadb(b, n, 0, &je);
    if (!a || !json_is_array(a)) {
        snprintf(err, errlen, "the body must be a JSON array of strings%s%s", a ? "" : ": ",
                 a ? "" : je.text);
        json_decref(a);
        return 400;
    }
    int rc = 0;
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v)) {
            snprintf(err, errlen, "item %zu is not a string", i + 1);
            rc = 400;
        } else {
            rc = list_add(l, max, json_string_value(v), json_string_length(v), err, errlen);
        }
        if (rc) break;
    }
    json_decref(a);
    return rc;
}

/* text/plain: one address a line; blank lines and '#' lines skipped, blanks trimmed (as
 * verify's input). */
static int parse_text_list(const char *b, size_t n, long max, sv_list *l, char *err, size_t errlen)
{
    const char *end = b + n;
    while (b < end) {
        const char *nl = memchr(b, '\n', (size_t)(end - b));
        const char *e = nl ? nl : end, *a = b;
        b = nl ? nl + 1 : end;
        while (a < e && (*a == ' ' || *a == '\t'))
            a++;
        while (e > a && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
            e--;
        if (a == e || *a == '#') continue;
        int rc = list_add(l, max, a, (size_t)(e - a), err, errlen);
        if (rc) return rc;
    }
    return 0;
}

/* text/csv (RFC 4180, on libcsv through csv_reader.c): a header row, then the column NAME
 * (case ignored) or N (from 1) of each row; empty cells skipped. */
static int parse_csv_list(const char *column, const char *b, size_t n, long max, sv_list *l,
                          char *err, size_t errlen)
{
    const char *col_name = column ? column : "email";
    char *endp;
    long want = strtol(col_name, &endp, 10);
    if (*endp || want < 1) want = 0; /* a name, found in the header row */
    FILE *f = n ? fmemopen((void *)(uintptr_t)b, n, "r") : NULL;
    vd_csv *c = f ? vd_csv_new(f, "the CSV body", true) : NULL;
    if (f && !c) fclose(f);
    const char *const *fields;
    size_t nf;
    int rc = 0, r = 0;
    for (long row = 0; rc == 0 && c && (r = vd_csv_next(c, &fields, &nf)) == 1; row++) {
        if (row == 0) {
            for (size_t i = 0; !want && i < nf; i++)
                if (!strcasecmp(fields[i], col_name)) want = (long)i + 1;
            if (!want) {
                snprintf(err, errlen,
                         "CSV: no column named '%.100s' in the header row (?column=NAME or N)",
                         col_name);
                rc = 400;
            }
        } else if ((size_t)want <= nf && fields[want - 1][0]) {
            rc = list_add(l, max, fields[want - 1], strlen(fields[want - 1]), err, errlen);
        }
    }
    if (rc == 0 && r < 0) {
        snprintf(err, errlen, "%s", vd_csv_error(c));
        rc = 400;
    } else if (rc == 0 && n && !c) {
        snprintf(err, errlen, "out of memory");
        rc = 500;
    }
    vd_csv_free(c);
    return rc;
}

int sv_parse_list(const char *type, const char *column, const char *b, size_t n, long max,
                  sv_list *l, char *err, size_t errlen)
{
    size_t bom = vd_cli_bom_len(b, n); /* a list saved by Excel or Notepad */
    b += bom, n -= bom;
    int rc;
    if (!strcmp(type, "application/json"))
        rc = parse_json_list(b, n, max, l, err, errlen);
    else if (!strcmp(type, "text/plain"))
        rc = parse_text_list(b, n, max, l, err, errlen);
    else if (!strcmp(type, "text/csv"))
        rc = parse_csv_list(column, b, n, max, l, err, errlen);
    else {
        snprintf(err, errlen,
                 "Content-Type '%.100s': application/json (an array of strings), text/plain "
                 "(one address a line) or text/csv",
                 type);
        return 415;
    }
    if (rc == 0 && l->n == 0) {
        snprintf(err, errlen, "the list holds no address");
        rc = 400;
    }
    if (rc) sv_list_free(l);
    return rc;
}

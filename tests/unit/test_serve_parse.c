/* test_serve_parse.c — serve's request bodies (engine/cli_serve_parse.c and the CSV reader,
 * built into this test: CLI code, not in libvalidora): the /v1/verify object, the /v1/jobs lists
 * (JSON, text, CSV), a BOM, their bounds and the HTTP status of each error.
 * Does not test: which types a request may use, the replies (functional/serve_hardening.sh);
 * arbitrary bytes (tests/fuzz/fuzz_serve_body.c). */
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "cli.h" /* vd_cli_bom_len, which this test stands in for */
#include "cli_serve_parse.h"

size_t vd_cli_bom_len(const char *s, size_t n) /* cli_common.c's */
{
    return n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3) ? 3 : 0;
}

static char err[512];

static int list(const char *type, const char *column, const char *body, long max, sv_list *l)
{
    *l = (sv_list){0};
    err[0] = 0;
    return sv_parse_list(type, column, body, strlen(body), max, l, err, sizeof err);
}

static void test_verify(void)
{
    char *e;
    size_t n;
    const char *ok = "\xef\xbb\xbf{\"email\": \"alice@example.com\"}";
    CHECK(sv_parse_verify(ok, strlen(ok), &e, &n, err, sizeof err) == 0);
    CHECK_STR(e, "alice@example.com");
    CHECK(n == 17);
    free(e);
    const char *nul = "{\"email\": \"a\\u0000b\"}"; /* jansson refuses a NUL: 400 */
    CHECK(sv_parse_verify(nul, strlen(nul), &e, &n, err, sizeof err) == 400 && !e);
    const char *bad[] = {"", "[]", "{\"email\": 1}", "{\"email\": \"a@b\", \"smtp\": false}",
                         "{\"email\": \"a@b\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        CHECK_MSG(sv_parse_verify(bad[i], strlen(bad[i]), &e, &n, err, sizeof err) == 400 && !e &&
                      *err,
                  "'%s'", bad[i]);
    }
    char big[SV_VERIFY_BODY_MAX + 2];
    memset(big, ' ', sizeof big);
    CHECK(sv_parse_verify(big, sizeof big, &e, &n, err, sizeof err) == 413 && !e);
}

static void test_lists(void)
{
    sv_list l;
    CHECK(list("application/json", NULL, "[\"a@b\", \"\", \"c@d\"]", 10, &l) == 0);
    CHECK(l.n == 3 && l.len == 9 && !memcmp(l.buf, "a@b\n\nc@d\n", 9)); /* "" is an item */
    sv_list_free(&l);
    CHECK(list("application/json", NULL, "[\"a@b\", 2]", 10, &l) == 400 && !l.buf);
    CHECK(list("application/json", NULL, "[\"a\\nb\"]", 10, &l) == 400);
    CHECK(list("application/json", NULL, "{}", 10, &l) == 400);
    CHECK(list("application/json", NULL, "[]", 10, &l) == 400 && strstr(err, "no address"));

    CHECK(list("text/plain", NULL, "\xef\xbb\xbf# a list\r\n a@b \r\n\n\tc@d\n", 10, &l) == 0);
    CHECK(l.n == 2 && !memcmp(l.buf, "a@b\nc@d\n", l.len));
    sv_list_free(&l);
    CHECK(list("text/plain", NULL, "a\nb\nc\n", 2, &l) == 413 && !l.buf &&
          strstr(err, "at most 2"));

    const char *csv = "name,E-Mail,email\r\nA,x@y,a@b\r\n\"B, b\",,\r\nC,\"q\"\"@r\",c@d\r\n";
    CHECK(list("text/csv", NULL, csv, 10, &l) == 0); /* "email" by default, case ignored */
    CHECK(l.n == 2 && !memcmp(l.buf, "a@b\nc@d\n", l.len));
    sv_list_free(&l);
    CHECK(list("text/csv", "e-mail", csv, 10, &l) == 0);
    CHECK(l.n == 2 && !memcmp(l.buf, "x@y\nq\"@r\n", l.len));
    sv_list_free(&l);
    CHECK(list("text/csv", "2", csv, 10, &l) == 0 && l.n == 2);
    sv_list_free(&l);
    CHECK(list("text/csv", "mail", csv, 10, &l) == 400 && strstr(err, "no column named 'mail'"));
    CHECK(list("text/csv", NULL, "", 10, &l) == 400);

    CHECK(list("application/xml", NULL, "<a/>", 10, &l) == 415 && !l.buf);
    CHECK(list("", NULL, "a@b", 10, &l) == 415);
}

int main(void)
{
    test_verify();
    test_lists();
    return check_done();
}

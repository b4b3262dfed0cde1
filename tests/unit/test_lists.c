/* test_lists.c — list flags against the shipped rules/lists: disposable (with
 * subdomains), free, role (case, +tag, separators), typo suggestions, and a
 * clear error for a bad dir. */
#include "check.h"
#include "lists.h"

#include <stdlib.h>
#include <string.h>

static void test_missing(void)
{
    char err[512] = "";
    vd_lists *l = vd_lists_new("/nonexistent/validora-lists", err, sizeof err);
    CHECK(l == NULL);
    CHECK_MSG(strstr(err, "/nonexistent/validora-lists/") != NULL, "err: %s", err);
    CHECK_MSG(strstr(err, "No such file") != NULL, "err: %s", err);
    err[0] = '\0';
    CHECK(vd_lists_new("", err, sizeof err) == NULL);
    CHECK(err[0] != '\0');
}

static void test_flags(const vd_lists *l)
{
    CHECK(vd_lists_is_disposable(l, "mailinator.com"));
    CHECK(vd_lists_is_disposable(l, "mail.mailinator.com"));
    CHECK(vd_lists_is_disposable(l, "a.b.mailinator.com"));
    CHECK(vd_lists_is_disposable(l, "MAILINATOR.COM"));
    CHECK(!vd_lists_is_disposable(l, "gmail.com"));
    CHECK(!vd_lists_is_disposable(l, "example.org"));
    CHECK(!vd_lists_is_disposable(l, "com"));
    CHECK(!vd_lists_is_disposable(l, "[192.0.2.1]"));
    CHECK(!vd_lists_is_disposable(l, ""));
    CHECK(!vd_lists_is_disposable(l, NULL));
    /* The look-alike "mailinator.com.example" is somebody else's name. */
    CHECK(!vd_lists_is_disposable(l, "mailinator.com.example"));
    CHECK(!vd_lists_is_disposable(l, "othermailinator.com"));
    /* U-label entries in the source list are stored as A-labels (gmaıl.net,
     * dotless i). */
    CHECK(vd_lists_is_disposable(l, "xn--gmal-nza.net"));

    CHECK(vd_lists_is_free(l, "gmail.com"));
    CHECK(vd_lists_is_free(l, "yahoo.com"));
    CHECK(vd_lists_is_free(l, "web.de"));
    CHECK(!vd_lists_is_free(l, "example.org"));
    CHECK(!vd_lists_is_free(l, "iana.org"));

    CHECK(vd_lists_is_role(l, "info"));
    CHECK(vd_lists_is_role(l, "Postmaster"));
    CHECK(vd_lists_is_role(l, "sales+x"));
    CHECK(vd_lists_is_role(l, "Info+newsletter"));
    CHECK(vd_lists_is_role(l, "no-reply"));
    CHECK(vd_lists_is_role(l, "no.reply"));
    CHECK(vd_lists_is_role(l, "NoReply"));
    CHECK(!vd_lists_is_role(l, "john.smith"));
    CHECK(!vd_lists_is_role(l, "hans"));
    CHECK(!vd_lists_is_role(l, "+info"));
    CHECK(!vd_lists_is_role(l, "\"info x\""));
    CHECK(!vd_lists_is_role(l, ""));
    CHECK(!vd_lists_is_role(l, NULL));
}

static void test_suggest(const vd_lists *l)
{
    CHECK_STR(vd_lists_suggest(l, "gmial.com"), "gmail.com");
    CHECK_STR(vd_lists_suggest(l, "gmai.com"), "gmail.com");
    CHECK_STR(vd_lists_suggest(l, "gmail.co"), "gmail.com");
    CHECK_STR(vd_lists_suggest(l, "gmail.con"), "gmail.com");
    CHECK_STR(vd_lists_suggest(l, "gmail.cm"), "gmail.com");
    CHECK_STR(vd_lists_suggest(l, "GMIAL.COM"), "gmail.com");
    CHECK_STR(vd_lists_suggest(l, "hotmial.com"), "hotmail.com");
    CHECK_STR(vd_lists_suggest(l, "hotmal.com"), "hotmail.com");
    CHECK_STR(vd_lists_suggest(l, "yaho.com"), "yahoo.com");
    CHECK_STR(vd_lists_suggest(l, "yahooo.com"), "yahoo.com");
    CHECK_STR(vd_lists_suggest(l, "outlok.com"), "outlook.com");
    CHECK_STR(vd_lists_suggest(l, "icloud.con"), "icloud.com");
    CHECK(vd_lists_suggest(l, "gmail.com") == NULL);
    CHECK(vd_lists_suggest(l, "example.org") == NULL);
    CHECK(vd_lists_suggest(l, "example.com") == NULL);
    /* Listed domains: real providers near big ones get none, typo-squatters get
     * one. */
    CHECK(vd_lists_suggest(l, "mailinator.com") == NULL);
    CHECK(vd_lists_suggest(l, "gmx.at") == NULL);
    CHECK(vd_lists_suggest(l, "mail.com") == NULL);
    CHECK(vd_lists_suggest(l, "ymail.com") == NULL);
    CHECK(vd_lists_suggest(l, "email.com") == NULL);
    CHECK(vd_lists_suggest(l, "hotmail.gr") == NULL);
    CHECK(vd_lists_suggest(l, "foxmail.com") == NULL);
    CHECK(vd_lists_is_free(l, "gmial.com")); /* sic: the free list holds this squatter */
    CHECK(vd_lists_suggest(l, "mail.gmial.com") == NULL); /* a host under another name */
    CHECK(vd_lists_suggest(l, "[192.0.2.1]") == NULL);
    CHECK(vd_lists_suggest(l, "") == NULL);
    CHECK(vd_lists_suggest(l, NULL) == NULL);
    /* Short names: no loose matches on them ("aol.com" is one edit from many
     * names). */
    CHECK(vd_lists_suggest(l, "sol.com") == NULL);
    CHECK(vd_lists_suggest(l, "sol.de") == NULL);
    CHECK_STR(vd_lists_suggest(l, "web.dee"), "web.de");
    CHECK_STR(vd_lists_suggest(l, "aol.con"), "aol.com");
    /* The string lives in l: the same pointer each time. */
    CHECK(vd_lists_suggest(l, "gmial.com") == vd_lists_suggest(l, "gmai.com"));
}

int main(void)
{
    test_missing();
    const char *src = getenv("VALIDORA_SOURCE_DIR");
    CHECK_MSG(src != NULL, "VALIDORA_SOURCE_DIR not set");
    if (!src) return check_done();
    char dir[4096], err[512] = "";
    snprintf(dir, sizeof dir, "%s/rules/lists", src);
    vd_lists *l = vd_lists_new(dir, err, sizeof err);
    CHECK_MSG(l != NULL, "vd_lists_new(%s): %s", dir, err);
    if (l) {
        test_flags(l);
        test_suggest(l);
    }
    vd_lists_free(l);
    return check_done();
}

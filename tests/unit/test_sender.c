/* test_sender.c — our identity on the wire (engine/sender.h) against the shipped rules/lists:
 * a free-mail or disposable MAIL FROM or HELO is foreign (subdomains too, case and trailing dot
 * aside), ours and the null sender are not, the computed defaults never are; and the engine's
 * start-up refuses a foreign identity unless --allow-foreign-sender (then it warns), and does
 * not judge it with --no-smtp. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include "check.h"
#include "sender.h"
#include "validora/validora.h"

static void test_check(const vd_lists *l)
{
    char why[512];
    CHECK(vd_sender_identity_check(l, "mta.example.com", "verify@example.com", why, sizeof why) ==
          0);
    CHECK_STR(why, "");
    CHECK(vd_sender_identity_check(l, "mta.example.com", "", why, sizeof why) == 0); /* <> */
    CHECK(vd_sender_identity_check(l, "[192.0.2.1]", "v@[192.0.2.1]", why, sizeof why) == 0);

    CHECK(vd_sender_identity_check(l, "mta.example.com", "x@gmail.com", why, sizeof why) ==
          VD_SENDER_FOREIGN_MAIL_FROM);
    CHECK_STR(why, "the MAIL FROM domain gmail.com is a free-mail provider's domain");
    CHECK(vd_sender_identity_check(l, "MAIL.Yahoo.com.", "v@example.com", why, sizeof why) ==
          VD_SENDER_FOREIGN_HELO);
    CHECK_MSG(strstr(why, "the HELO domain mail.yahoo.com. is a free-mail") != NULL, "%s", why);
    CHECK(vd_sender_identity_check(l, "mta.example.com", "x@abyssemail.com", why, sizeof why) ==
          VD_SENDER_FOREIGN_MAIL_FROM);
    CHECK_STR(why, "the MAIL FROM domain abyssemail.com is a disposable-mail service's domain");
    CHECK(vd_sender_identity_check(l, "mail.yahoo.com", "verify@mail.yahoo.com", why, sizeof why) ==
          (VD_SENDER_FOREIGN_MAIL_FROM | VD_SENDER_FOREIGN_HELO));
    CHECK_STR(why, "the MAIL FROM and HELO domain mail.yahoo.com is a free-mail provider's domain");
    CHECK(vd_sender_identity_check(l, "mx.hotmail.com", "a@gmail.com", why, sizeof why) == 3);
    CHECK_MSG(strstr(why, "gmail.com") && strstr(why, "; the HELO domain mx.hotmail.com"), "%s",
              why);
    /* a look-alike is somebody else's name, not the provider's */
    CHECK(vd_sender_identity_check(l, "gmail.com.example", "v@notgmail.com", why, sizeof why) == 0);
    /* a short buffer is cut, not overrun */
    char tiny[8];
    CHECK(vd_sender_identity_check(l, "x.example", "a@gmail.com", tiny, sizeof tiny) == 1);
    CHECK(strlen(tiny) == sizeof tiny - 1);
}

/* What the engine uses when neither --helo nor --mail-from is given, and the fallbacks
 * vd_default_helo can produce by itself, are never foreign. */
static void test_defaults(const vd_lists *l)
{
    char helo[256], from[320], why[512];
    vd_default_helo(helo, sizeof helo);
    vd_sender_default_mail_from(helo, from, sizeof from);
    CHECK(strncmp(from, "verify@", 7) == 0 && !strcmp(from + 7, helo));
    CHECK_MSG(vd_sender_identity_check(l, helo, from, why, sizeof why) == 0, "%s", why);
    const char *fallbacks[] = {"localhost.localdomain", "vm.localdomain", "mta.localdomain"};
    for (size_t i = 0; i < sizeof fallbacks / sizeof fallbacks[0]; i++) {
        vd_sender_default_mail_from(fallbacks[i], from, sizeof from);
        CHECK_MSG(vd_sender_identity_check(l, fallbacks[i], from, why, sizeof why) == 0, "%s", why);
    }
}

typedef struct logged {
    int warnings;
    char last[1024];
} logged;

static void on_log(vd_log_level level, const char *msg, void *arg)
{
    logged *g = arg;
    if (level != VD_LOG_WARNING) return;
    g->warnings++;
    snprintf(g->last, sizeof g->last, "%s", msg);
}

static vd_engine *engine(struct event_base *base, const char *rules, const char *helo,
                         const char *from, bool smtp, bool allow, logged *g, char *err, size_t n)
{
    vd_engine_config c;
    vd_engine_config_init(&c);
    c.dns_servers = "127.0.0.1:9"; /* never asked: nothing is submitted */
    c.rules_dirs = (vd_strlist){.v = {rules}, .n = 1};
    c.helo = helo;
    c.mail_from = from;
    c.smtp = smtp;
    c.watch = false;
    c.allow_foreign_sender = allow;
    c.no_ledger = true; /* nothing is submitted: no lock, no ledger under /var/lib/validora */
    c.log = on_log;
    c.log_arg = g;
    err[0] = '\0';
    return vd_engine_new(base, &c, err, n);
}

static void test_engine(const char *rules)
{
    struct event_base *base = event_base_new();
    char err[2048];
    logged g = {0};
    vd_engine *e =
        engine(base, rules, "mail.yahoo.com", "v@example.com", true, false, &g, err, sizeof err);
    CHECK(e == NULL);
    CHECK_MSG(strstr(err, "refusing to probe as HELO mail.yahoo.com") != NULL, "%s", err);
    CHECK_MSG(strstr(err, "the HELO domain mail.yahoo.com is a free-mail provider's domain"), "%s",
              err);
    CHECK_MSG(strstr(err, vd_sender_foreign_fix) != NULL, "%s", err);
    CHECK_MSG(strstr(err, "--allow-foreign-sender") != NULL, "%s", err);
    CHECK_MSG(strstr(err, "default HELO") == NULL, "%s", err);
    vd_engine_free(e);

    /* a default HELO with a foreign MAIL FROM: the note is about the MAIL FROM only */
    e = engine(base, rules, NULL, "x@gmail.com", true, false, &g, err, sizeof err);
    CHECK(e == NULL);
    CHECK_MSG(strstr(err, "the MAIL FROM domain gmail.com") != NULL, "%s", err);
    CHECK_MSG(strstr(err, "default HELO") == NULL, "%s", err);
    vd_engine_free(e);

    e = engine(base, rules, "mail.yahoo.com", "v@example.com", true, true, &g, err, sizeof err);
    CHECK_MSG(e != NULL, "%s", err);
    CHECK(g.warnings == 1);
    CHECK_MSG(strstr(g.last, "--allow-foreign-sender") && strstr(g.last, "mail.yahoo.com"), "%s",
              g.last);
    vd_engine_free(e);

    /* --no-smtp: the identity goes nowhere, nothing to refuse */
    g.warnings = 0;
    e = engine(base, rules, "mail.yahoo.com", "x@gmail.com", false, false, &g, err, sizeof err);
    CHECK_MSG(e != NULL, "%s", err);
    CHECK(g.warnings == 0);
    vd_engine_free(e);

    /* the defaults start */
    e = engine(base, rules, NULL, NULL, true, false, &g, err, sizeof err);
    CHECK_MSG(e != NULL, "%s", err);
    vd_engine_free(e);
    event_base_free(base);
}

int main(void)
{
    const char *src = getenv("VALIDORA_SOURCE_DIR");
    CHECK_MSG(src != NULL, "VALIDORA_SOURCE_DIR not set");
    if (!src) return check_done();
    char dir[4096], rules[4096], err[512] = "";
    snprintf(dir, sizeof dir, "%s/rules/lists", src);
    snprintf(rules, sizeof rules, "%s/rules", src);
    vd_lists *l = vd_lists_new(dir, err, sizeof err);
    CHECK_MSG(l != NULL, "vd_lists_new(%s): %s", dir, err);
    if (l) {
        test_check(l);
        test_defaults(l);
    }
    vd_lists_free(l);
    test_engine(rules);
    return check_done();
}

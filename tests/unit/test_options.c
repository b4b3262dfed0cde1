/* test_options.c — the one table of options (validora/options.h): defaults come from the
 * table, parsing honours the bounds and says which option failed, every entry is complete,
 * and the engine refuses a config outside the bounds. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <event2/event.h>
#include "check.h"
#include "validora/options.h"
#include "validora/validora.h"

static void test_table_complete(void)
{
    int n = 0;
    for (const vd_option *o = vd_engine_options; o->name; o++, n++) {
        CHECK_MSG(o->help && o->help[0], "%s: no help", o->name);
        CHECK_MSG(o->group && o->group[0], "%s: no group", o->name);
        bool takes_arg = o->type != VD_OPT_FLAG && o->type != VD_OPT_COUNT;
        CHECK_MSG(takes_arg == (o->arg != NULL), "%s: argument name", o->name);
        if (o->type == VD_OPT_INT || o->type == VD_OPT_SECONDS)
            CHECK_MSG(o->min <= o->def && o->def <= o->max, "%s: default out of bounds", o->name);
        CHECK_MSG(o->offset + sizeof(double) <= sizeof(vd_engine_config) ||
                      o->type != VD_OPT_SECONDS,
                  "%s: offset", o->name);
        CHECK_MSG(vd_option_find(vd_engine_options, o->name) == o, "%s: duplicate name", o->name);
    }
    CHECK(n >= 15);
}

static void test_defaults_from_table(void)
{
    vd_engine_config c;
    vd_engine_config_init(&c);
    char buf[64], def[64];
    for (const vd_option *o = vd_engine_options; o->name; o++) {
        vd_option_format(o, &c, buf, sizeof buf);
        vd_option_format_default(o, def, sizeof def);
        CHECK_MSG(strcmp(buf, def) == 0, "%s: init gives '%s', table says '%s'", o->name, buf, def);
    }
    CHECK(c.smtp && c.starttls && c.reuse);
    CHECK(c.dns_servers == NULL && c.helo == NULL && c.log == NULL);
}

static void test_parse(void)
{
    vd_engine_config c;
    vd_engine_config_init(&c);
    char err[256];
    const vd_option *t = vd_option_find(vd_engine_options, "smtp-timeout");
    const vd_option *port = vd_option_find(vd_engine_options, "smtp-port");
    const vd_option *tls = vd_option_find(vd_engine_options, "starttls");
    CHECK(t && port && tls);
    if (!t || !port || !tls) return;
    CHECK(vd_option_parse(t, &c, "2.5", err, sizeof err) == 0 && fabs(c.smtp_timeout - 2.5) < 1e-9);
    CHECK(vd_option_parse(t, &c, "0", err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "--smtp-timeout") && strstr(err, "between 0.05 and 3600") &&
                  strstr(err, "'0'"),
              "%s", err);
    CHECK(vd_option_parse(t, &c, "abc", err, sizeof err) == -1);
    CHECK(vd_option_parse(port, &c, "2525", err, sizeof err) == 0 && c.smtp_port == 2525);
    CHECK(vd_option_parse(port, &c, "65536", err, sizeof err) == -1);
    CHECK(vd_option_parse(port, &c, "25x", err, sizeof err) == -1);
    CHECK(vd_option_parse(tls, &c, "no", err, sizeof err) == 0 && !c.starttls);
    CHECK(vd_option_parse(tls, &c, "maybe", err, sizeof err) == -1);
    CHECK(vd_option_parse(tls, &c, NULL, err, sizeof err) == 0 && c.starttls);
    CHECK(vd_option_find(vd_engine_options, "no-such-option") == NULL);
}

static void test_engine_checks_bounds(void)
{
    struct event_base *base = event_base_new();
    vd_engine_config c;
    vd_engine_config_init(&c);
    c.per_mx_sessions = 0; /* no more "0 = the default": out of bounds */
    char err[512];
    vd_engine *e = vd_engine_new(base, &c, err, sizeof err);
    CHECK(e == NULL);
    CHECK_MSG(strstr(err, "--per-mx-sessions") != NULL, "%s", err);
    vd_engine_free(e);
    event_base_free(base);
}

int main(void)
{
    test_table_complete();
    test_defaults_from_table();
    test_parse();
    test_engine_checks_bounds();
    return check_done();
}

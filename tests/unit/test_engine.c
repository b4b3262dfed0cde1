/* test_engine.c — the embedding API (include/validora/validora.h) without the network:
 * records for literals with SMTP off, syntax failures, list flags, callbacks exactly once,
 * start-up errors, and reload: a broken rule directory keeps the running generation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include "check.h"
#include "validora/record.h"
#include "validora/validora.h"

typedef struct got {
    int calls;
    char status[32], reason[48], address[320], domain[300];
    bool role, free_, disposable;
    char suggestion[64];
} got;

static void on_rec(const struct vd_record *r, void *arg)
{
    got *g = arg;
    g->calls++;
    snprintf(g->status, sizeof g->status, "%s", r->status);
    snprintf(g->reason, sizeof g->reason, "%s", r->reason);
    snprintf(g->address, sizeof g->address, "%s", r->address ? r->address : "");
    snprintf(g->domain, sizeof g->domain, "%s", r->domain ? r->domain : "");
    snprintf(g->suggestion, sizeof g->suggestion, "%s", r->suggestion ? r->suggestion : "");
    g->role = r->role;
    g->free_ = r->free;
    g->disposable = r->disposable;
}

static char rules_dir[4096];

static vd_engine *engine_new(struct event_base *base, const char *rules, char *err, size_t n)
{
    vd_engine_config c;
    vd_engine_config_init(&c);
    c.smtp = false;
    c.dns_servers = "127.0.0.1:9"; /* never asked: literals and syntax errors only */
    c.rules_dir = rules;
    return vd_engine_new(base, &c, err, n);
}

static void test_records(struct event_base *base)
{
    char err[512];
    vd_engine *e = engine_new(base, rules_dir, err, sizeof err);
    CHECK_MSG(e != NULL, "%s", err);
    if (!e) return;
    got g[4];
    memset(g, 0, sizeof g);
    const char *a = "Info@[127.0.0.1]";
    CHECK(vd_engine_submit(e, a, strlen(a), on_rec, &g[0]) == 0);
    CHECK(g[0].calls == 1); /* decided at once: literal, SMTP off */
    CHECK_STR(g[0].status, "unknown");
    CHECK_STR(g[0].reason, "not_probed");
    CHECK_STR(g[0].domain, "[127.0.0.1]");
    CHECK(g[0].role);

    const char *b = "a..b@example.com";
    vd_engine_submit(e, b, strlen(b), on_rec, &g[1]);
    CHECK(g[1].calls == 1);
    CHECK_STR(g[1].status, "undeliverable");
    CHECK_STR(g[1].reason, "invalid_syntax");
    CHECK_STR(g[1].address, "");

    /* embedded NUL: the whole length counts, the address is invalid */
    vd_engine_submit(e, "x@y.com\0z", 9, on_rec, &g[2]);
    CHECK_STR(g[2].reason, "invalid_syntax");
    CHECK(vd_engine_inflight(e) == 0);
    vd_engine_free(e);
    for (int i = 0; i < 3; i++) CHECK(g[i].calls == 1);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void test_startup_and_reload(struct event_base *base)
{
    char err[512];
    vd_engine *e = engine_new(base, "/nonexistent/rules", err, sizeof err);
    CHECK(e == NULL);
    CHECK_MSG(strstr(err, "/nonexistent/rules") != NULL, "%s", err);

    /* a private copy of the rules we can break */
    char tmp[] = "/tmp/vd-engine-XXXXXX";
    CHECK(mkdtemp(tmp) != NULL);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cp -r '%s'/. '%s'/", rules_dir, tmp);
    CHECK(system(cmd) == 0);
    e = engine_new(base, tmp, err, sizeof err);
    CHECK_MSG(e != NULL, "%s", err);
    if (!e) return;
    char bad[4200];
    snprintf(bad, sizeof bad, "%s/zz_bad.lua", tmp);
    write_file(bad, "return {\n  name = 'x',\n  probe = 42\n}\n");
    CHECK(vd_engine_reload(e, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "zz_bad.lua") && strstr(err, "probe"), "%s", err);
    /* a rule that never finishes loading: stopped by the load budget, every time */
    write_file(bad, "while true do end\n");
    for (int i = 0; i < 3; i++) {
        CHECK(vd_engine_reload(e, err, sizeof err) == -1);
        CHECK_MSG(strstr(err, "instruction budget while loading") != NULL, "%s", err);
    }
    write_file(bad, "return { name = 'x', probe = function(job) end }\n");
    CHECK_MSG(vd_engine_reload(e, err, sizeof err) == 0, "%s", err);
    unlink(bad);
    snprintf(bad, sizeof bad, "%s/default.lua", tmp);
    unlink(bad);
    CHECK(vd_engine_reload(e, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "default.lua") != NULL, "%s", err);
    got g;
    memset(&g, 0, sizeof g);
    vd_engine_submit(e, "ok@[127.0.0.1]", 14, on_rec, &g);
    CHECK(g.calls == 1); /* still working after failed reloads */
    vd_engine_free(e);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    const char *src = getenv("VALIDORA_SOURCE_DIR");
    snprintf(rules_dir, sizeof rules_dir, "%s/rules", src ? src : ".");
    struct event_base *base = event_base_new();
    test_records(base);
    test_startup_and_reload(base);
    event_base_free(base);
    return check_done();
}

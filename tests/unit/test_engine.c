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
    char email[64];
    size_t email_len;
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
    g->email_len = r->email_len < sizeof g->email ? r->email_len : sizeof g->email;
    memcpy(g->email, r->email, g->email_len);
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
    c.rules_dirs = (vd_strlist){.v = {rules}, .n = 1};
    c.allow_private_destinations = true; /* the literals below are loopback */
    return vd_engine_new(base, &c, err, n);
}

/* The defaults are the options table's: a setting left missing is refused, not defaulted again. */
static void test_missing_defaults(struct event_base *base)
{
    static const char *const want[] = {"--on-block: missing", "--on-budget: missing"};
    for (int i = 0; i < 2; i++) {
        vd_engine_config c;
        vd_engine_config_init(&c);
        CHECK(c.on_block && !strcmp(c.on_block, "defer") && c.on_budget &&
              !strcmp(c.on_budget, "defer"));
        c.smtp = false;
        c.dns_servers = "127.0.0.1:9";
        c.rules_dirs = (vd_strlist){.v = {rules_dir}, .n = 1};
        if (i == 0)
            c.on_block = NULL;
        else
            c.on_budget = NULL;
        char err[512] = "";
        vd_engine *e = vd_engine_new(base, &c, err, sizeof err);
        CHECK_MSG(e == NULL && strstr(err, want[i]), "%s", err);
        if (e) vd_engine_free(e);
    }
}

/* The default refuses special-purpose destinations: the literal's address is checked before
 * anything else could be sent (SMTP off here, so a public one gets not_probed). */
static void test_forbidden_destination(struct event_base *base)
{
    vd_engine_config c;
    vd_engine_config_init(&c);
    CHECK(!c.allow_private_destinations); /* the table's default */
    c.smtp = false;
    c.dns_servers = "127.0.0.1:9";
    c.rules_dirs = (vd_strlist){.v = {rules_dir}, .n = 1};
    char err[512];
    vd_engine *e = vd_engine_new(base, &c, err, sizeof err);
    CHECK_MSG(e != NULL, "%s", err);
    if (!e) return;
    static const char *const refused[] = {"a@[127.0.0.1]",
                                          "a@[10.0.0.5]",
                                          "a@[192.168.1.1]",
                                          "a@[169.254.169.254]",
                                          "a@[172.16.0.1]",
                                          "a@[100.64.0.1]",
                                          "a@[0.0.0.0]",
                                          "a@[IPv6:::1]",
                                          "a@[IPv6:fe80::1]",
                                          "a@[IPv6:fd00::1]",
                                          "a@[IPv6:::ffff:10.1.2.3]",
                                          "a@[IPv6:64:ff9b::7f00:1]"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        got g;
        memset(&g, 0, sizeof g);
        CHECK(vd_engine_submit(e, refused[i], strlen(refused[i]), on_rec, &g) == 0);
        CHECK(g.calls == 1);
        CHECK_STR(g.status, "unknown");
        CHECK_MSG(g.reason && !strcmp(g.reason, "forbidden_destination"), "%s: %s", refused[i],
                  g.reason ? g.reason : "(null)");
    }
    got g;
    memset(&g, 0, sizeof g);
    const char *pub = "a@[192.0.43.10]";
    CHECK(vd_engine_submit(e, pub, strlen(pub), on_rec, &g) == 0);
    CHECK_STR(g.reason, "not_probed");
    vd_engine_free(e);
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
    CHECK(g[2].email_len == 9 && memcmp(g[2].email, "x@y.com\0z", 9) == 0); /* echoed whole */
    CHECK(vd_engine_inflight(e) == 0);
    vd_engine_free(e);
    for (int i = 0; i < 3; i++)
        CHECK(g[i].calls == 1);
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

typedef struct logged {
    int n[4];
    char last[4][256];
} logged;

static void on_log(vd_log_level level, const char *msg, void *arg)
{
    logged *l = arg;
    l->n[level]++;
    snprintf(l->last[level], sizeof l->last[level], "%s", msg);
}

/* The library prints nothing itself: rule log() lines, rule errors and reloads reach the log
 * callback, and stderr stays empty. */
static void test_log_callback(struct event_base *base)
{
    char tmp[] = "/tmp/vd-log-XXXXXX";
    CHECK(mkdtemp(tmp) != NULL);
    char cmd[8192], path[4200];
    snprintf(cmd, sizeof cmd, "cp -r '%s'/. '%s'/", rules_dir, tmp);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/zz_log.lua", tmp);
    write_file(path, "return { name = 'log', match = { domain = { '[127.0.0.2]' } },\n"
                     "  probe = function(job)\n"
                     "    if job.local_part == 'boom' then error('kaboom') end\n"
                     "    log('hello', 42); return job:unknown('logged') end }\n");
    fflush(stderr);
    int saved = dup(2);
    char errpath[4200];
    snprintf(errpath, sizeof errpath, "%s/stderr", tmp);
    FILE *cap = fopen(errpath, "w+");
    CHECK(cap != NULL);
    if (!cap) return;
    dup2(fileno(cap), 2);

    logged l;
    memset(&l, 0, sizeof l);
    vd_engine_config c;
    vd_engine_config_init(&c);
    c.dns_servers = "127.0.0.1:9";
    c.rules_dirs = (vd_strlist){.v = {tmp}, .n = 1};
    c.allow_private_destinations = true;
    char state[] = "/tmp/vd-log-state-XXXXXX"; /* the ledger and the lock: never the machine's */
    CHECK(mkdtemp(state) != NULL);
    c.state_dir = state;
    c.log = on_log;
    c.log_arg = &l;
    char err[512];
    vd_engine *e = vd_engine_new(base, &c, err, sizeof err);
    got g[2];
    memset(g, 0, sizeof g);
    if (e) {
        vd_engine_submit(e, "a@[127.0.0.2]", 13, on_rec, &g[0]);
        vd_engine_submit(e, "boom@[127.0.0.2]", 16, on_rec, &g[1]);
        snprintf(path, sizeof path, "%s/zz_bad.lua", tmp);
        write_file(path, "return 42\n");
        CHECK(vd_engine_reload(e, err, sizeof err) == -1);
        vd_engine_free(e);
    }
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    CHECK_MSG(e != NULL, "%s", err);
    CHECK_STR(g[0].reason, "logged");
    CHECK_STR(g[1].reason, "rule_error");
    CHECK(l.n[VD_LOG_INFO] >= 3);  /* generation current, hello, the rule error */
    CHECK(l.n[VD_LOG_ERROR] == 1); /* the failed reload */
    CHECK_MSG(strstr(l.last[VD_LOG_ERROR], "zz_bad.lua") != NULL, "%s", l.last[VD_LOG_ERROR]);
    fseek(cap, 0, SEEK_END);
    CHECK_MSG(ftell(cap) == 0, "the library wrote %ld bytes to stderr", ftell(cap));
    fclose(cap);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", tmp, state);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    const char *src = getenv("VALIDORA_SOURCE_DIR");
    snprintf(rules_dir, sizeof rules_dir, "%s/rules", src ? src : ".");
    struct event_base *base = event_base_new();
    test_records(base);
    test_forbidden_destination(base);
    test_missing_defaults(base);
    test_startup_and_reload(base);
    test_log_callback(base);
    event_base_free(base);
    return check_done();
}

/* test_script.c — the script runtime (engine/script.c, validora/script.h) with a stand-in
 * verifier, no engine (issue 18, items 4 and 13):
 *  - verify_all keeps addresses in flight plus records waiting within its concurrency, when
 *    records come back inside the submit call (a cached domain's, as with --no-smtp) and when
 *    they come back later from the loop: the script counts what it handed out and what it got
 *    (on the old runtime, synchronous records let it read the whole list at once);
 *  - a msgpack writer writes records as verified; validora.records reads them back; a JSON
 *    writer renders them;
 *  - validora.set;
 *  - the script's return value is vd_script_run's, an error is VD_SCRIPT_ERROR.
 * Does not test: the engine behind `validora run` (tests/functional/scripts.sh). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include "check.h"
#include "validora/record.h"
#include "validora/script.h"

static char dir[] = "/tmp/test_script.XXXXXX";

typedef struct verifier {
    struct event_base *base;
    bool later; /* records from the loop, not inside submit */
    int submitted;
} verifier;

typedef struct later_rec {
    char addr[128];
    vd_script_record_cb done;
    void *arg;
} later_rec;

static void deliver(const char *addr, vd_script_record_cb done, void *arg)
{
    vd_record r = {.email = addr, .status = "unknown", .reason = "not_probed"};
    done(&r, arg);
}

static void on_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    later_rec *l = arg;
    deliver(l->addr, l->done, l->arg);
    free(l);
}

static int submit(void *arg, const char *addr, size_t len, vd_script_record_cb done, void *done_arg,
                  char *err, size_t errlen)
{
    verifier *v = arg;
    v->submitted++;
    if (!v->later) {
        char a[128];
        snprintf(a, sizeof a, "%.*s", (int)len, addr);
        deliver(a, done, done_arg);
        return 0;
    }
    later_rec *l = calloc(1, sizeof *l);
    if (!l) return snprintf(err, errlen, "out of memory"), -1;
    snprintf(l->addr, sizeof l->addr, "%.*s", (int)len, addr);
    l->done = done;
    l->arg = done_arg;
    struct timeval now = {0, 0};
    return event_base_once(v->base, -1, EV_TIMEOUT, on_later, l, &now);
}

/* Runs the script text with the stand-in verifier: vd_script_run's result. */
static int run(const char *text, bool later, int *submitted)
{
    char path[256];
    snprintf(path, sizeof path, "%s/s.lua", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -100;
    fputs(text, f);
    fclose(f);
    verifier v = {.base = event_base_new(), .later = later};
    char *argv[] = {dir};
    vd_script_config cfg = {.base = v.base,
                            .path = path,
                            .argc = 1,
                            .argv = argv,
                            .concurrency = 16,
                            .submit = submit,
                            .submit_arg = &v};
    char err[256];
    vd_script *s = vd_script_new(&cfg, err, sizeof err);
    int rc = s ? vd_script_run(s) : -101;
    vd_script_free(s);
    event_base_dispatch(v.base); /* records still due: dropped */
    event_base_free(v.base);
    if (submitted) *submitted = v.submitted;
    return rc;
}

/* Hands out 5000 addresses; after each record, what was handed out and not yet got back must
 * be within the concurrency (8). 0 when it was, 4 when it was not. */
static const char BOUNDED[] =
    "local given, got, worst = 0, 0, 0\n"
    "local function input()\n"
    "  if given == 5000 then return nil end\n"
    "  given = given + 1\n"
    "  return 'u' .. given .. '@example.com'\n"
    "end\n"
    "for rec in validora.verify_all(input, {concurrency = 8}) do\n"
    "  got = got + 1\n"
    "  worst = math.max(worst, given - got)\n"
    "  assert(rec.status == 'unknown' and rec.email:match('^u%d+@example.com$'))\n"
    "end\n"
    "if got ~= 5000 then return 3 end\n"
    "if worst >= 8 then io.stderr:write('waiting at once: ', worst, '\\n') return 4 end\n"
    "return 0\n";

static void test_bounded(void)
{
    int n = 0;
    CHECK_MSG(run(BOUNDED, false, &n) == 0, "records inside submit");
    CHECK(n == 5000);
    CHECK_MSG(run(BOUNDED, true, &n) == 0, "records from the loop");
    CHECK(n == 5000);
}

static void test_writers(void)
{
    static const char W[] =
        "local dir = arg[1]\n"
        "local m = assert(validora.writer(dir .. '/r.mpk', 'msgpack'))\n"
        "local j = assert(validora.writer(dir .. '/r.json', 'json'))\n"
        "local list = {}\n"
        "for i = 1, 100 do list[i] = 'w' .. i .. '@example.com' end\n"
        "for rec in validora.verify_all(list) do assert(m:write(rec)) assert(j:write(rec)) end\n"
        "assert(not pcall(m.write, m, {email = 'made@up'}))\n"
        "assert(m:close() == 100 and j:close() == 100)\n"
        "local n, seen = 0, {}\n"
        "for rec in validora.records(dir .. '/r.mpk') do n = n + 1 seen[rec.email] = true end\n"
        "assert(n == 100 and seen['w1@example.com'] and seen['w100@example.com'])\n"
        "local lines = 0\n"
        "for l in io.lines(dir .. '/r.json') do\n"
        "  lines = lines + 1\n"
        "  assert(l:find('\"status\":\"unknown\"', 1, true))\n"
        "end\n"
        "return lines == 100 and 0 or 5\n";
    CHECK(run(W, false, NULL) == 0);
    CHECK(run(W, true, NULL) == 0);
}

static void test_set_and_results(void)
{
    CHECK(run("local s = validora.set()\n"
              "assert(s:add('a') == true and s:add('a') == false and s:add('b') == true)\n"
              "assert(s:has('a') and not s:has('c') and #s == 2)\n"
              "return 0\n",
              false, NULL) == 0);
    CHECK(run("return 7\n", false, NULL) == 7);
    CHECK(run("return false\n", false, NULL) == 1);
    CHECK(run("error('boom')\n", false, NULL) == VD_SCRIPT_ERROR);
    CHECK(run("this is not Lua\n", false, NULL) == VD_SCRIPT_ERROR);
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    test_bounded();
    test_writers();
    test_set_and_results();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_done();
}

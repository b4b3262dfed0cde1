/* test_ledger.c — the ledger (engine/ledger.c): ages and set-age; reserve never grants past
 * the budget, also with several processes hammering one IP at once; a writer killed with
 * SIGKILL mid-run leaves a sound file whose count is never below what it was granted; the UTC
 * day rolls over (the clock is injected with vd_ledger_set_clock); deferrals, blocks, their
 * recent history (vd_ledger_recent) and breakers; the state directory and its errors (an
 * unwritable one is tried as 'nobody' when the test runs as root); the one-instance lock
 * refuses a second process and is free again after the first is killed with SIGKILL. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "check.h"
#include "ledger.h"

#define DAY 86400L

static char root[] = "/tmp/validora-ledger-XXXXXX";

/* A fresh state directory under root. */
static const char *fresh_dir(const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", root, name);
    char err[512];
    char *p = vd_state_dir(path, err, sizeof err);
    CHECK_MSG(p != NULL, "%s", err);
    free(p);
    return path;
}

/* The injected clock: *arg is the unix time. */
static long clock_at(void *arg)
{
    return *(long *)arg;
}

/* A day and a time within it that no test run crosses by accident: 2030-01-01 12:00 UTC. */
static const long NOON = 1893499200L;

static vd_ledger *open_at(const char *dir, long *now)
{
    char err[1024];
    vd_ledger *l = vd_ledger_open(dir, err, sizeof err);
    CHECK_MSG(l != NULL, "%s", err);
    if (l && now) vd_ledger_set_clock(l, clock_at, now);
    return l;
}

static void test_age(void)
{
    const char *dir = fresh_dir("age");
    long now = NOON;
    vd_ledger *l = open_at(dir, &now);
    if (!l) return;
    char err[1024];
    bool is_new = false;
    CHECK(vd_ledger_age(l, "192.0.2.1", &is_new, err, sizeof err) == 0 && is_new);
    CHECK(vd_ledger_age(l, "192.0.2.1", &is_new, err, sizeof err) == 0 && !is_new);
    now += 3 * DAY;
    CHECK(vd_ledger_age(l, "192.0.2.1", &is_new, err, sizeof err) == 3 && !is_new);
    CHECK(vd_ledger_set_age(l, "192.0.2.1", 30, err, sizeof err) == 0);
    CHECK(vd_ledger_age(l, "192.0.2.1", &is_new, err, sizeof err) == 30);
    /* set-age of an IP never seen records it: it is not new afterwards */
    CHECK(vd_ledger_set_age(l, "2001:db8:0::7", 400, err, sizeof err) == 0);
    CHECK(vd_ledger_age(l, "2001:db8::7", &is_new, err, sizeof err) == 400 && !is_new);
    CHECK(vd_ledger_set_age(l, "192.0.2.1", -1, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "between 0 and") != NULL, "%s", err);
    CHECK(vd_ledger_age(l, "not-an-ip", &is_new, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "not an IP address") && strstr(err, "ledger.sqlite"), "%s", err);
    /* no --source-ip is the IP "any" */
    CHECK(vd_ledger_age(l, NULL, &is_new, err, sizeof err) == 0 && is_new);
    CHECK(vd_ledger_age(l, "any", &is_new, err, sizeof err) == 0 && !is_new);
    /* it persists */
    vd_ledger_close(l);
    l = open_at(dir, &now);
    if (!l) return;
    CHECK(vd_ledger_age(l, "192.0.2.1", &is_new, err, sizeof err) == 30 && !is_new);
    CHECK(vd_ledger_integrity(l, err, sizeof err) == 0);
    vd_ledger_close(l);
}

static void test_reserve(void)
{
    const char *dir = fresh_dir("reserve");
    long now = NOON;
    vd_ledger *a = open_at(dir, &now), *b = open_at(dir, &now);
    if (!a || !b) return;
    char err[1024];
    const char *ip = "198.51.100.9";
    CHECK(vd_ledger_reserve(a, ip, 10, 25, err, sizeof err) == 10);
    CHECK(vd_ledger_reserve(a, ip, 10, 25, err, sizeof err) == 10);
    CHECK(vd_ledger_reserve(a, ip, 10, 25, err, sizeof err) == 5);
    CHECK(vd_ledger_reserve(a, ip, 10, 25, err, sizeof err) == 0);
    CHECK(vd_ledger_reserve(a, ip, 0, 25, err, sizeof err) == 0);
    /* a budget lowered below what is used grants nothing */
    CHECK(vd_ledger_reserve(b, ip, 10, 20, err, sizeof err) == 0);
    long renews = 0;
    CHECK(vd_ledger_used_today(a, ip, &renews) == 25);
    CHECK(renews == (NOON / DAY + 1) * DAY);
    CHECK(vd_ledger_unreserve(a, ip, 3) == 0);
    CHECK(vd_ledger_used_today(b, ip, NULL) == 22);
    CHECK(vd_ledger_reserve(b, ip, 10, 25, err, sizeof err) == 3);
    /* a gives back at most what it holds (22), never b's 3 */
    CHECK(vd_ledger_unreserve(a, ip, 1000) == 0);
    CHECK(vd_ledger_used_today(a, ip, NULL) == 3);
    CHECK(vd_ledger_unreserve(a, ip, 5) == 0);
    CHECK(vd_ledger_used_today(a, ip, NULL) == 3);
    /* another IP has its own budget; an IP reserved from is recorded */
    CHECK(vd_ledger_reserve(a, "198.51.100.10", 7, 100, err, sizeof err) == 7);
    bool is_new = true;
    CHECK(vd_ledger_age(b, "198.51.100.10", &is_new, err, sizeof err) == 0 && !is_new);
    CHECK(vd_ledger_reserve(a, "bad ip", 7, 100, err, sizeof err) == -1);
    CHECK(vd_ledger_unreserve(a, "bad ip", 1) == -1);
    CHECK(strstr(vd_ledger_error(a), "not an IP address") != NULL);
    vd_ledger_close(a);
    vd_ledger_close(b);
}

static void test_rollover(void)
{
    const char *dir = fresh_dir("rollover");
    long midnight = (NOON / DAY + 1) * DAY;
    long now = midnight - 10;
    vd_ledger *l = open_at(dir, &now), *other = open_at(dir, &now);
    if (!l || !other) return;
    char err[1024];
    const char *ip = "203.0.113.5";
    bool is_new;
    CHECK(vd_ledger_age(l, ip, &is_new, err, sizeof err) == 0 && is_new);
    CHECK(vd_ledger_reserve(l, ip, 10, 10, err, sizeof err) == 10);
    CHECK(vd_ledger_reserve(l, ip, 1, 10, err, sizeof err) == 0);
    long renews = 0;
    CHECK(vd_ledger_used_today(l, ip, &renews) == 10 && renews == midnight);
    now = midnight; /* 00:00:00 UTC belongs to the new day */
    CHECK(vd_ledger_used_today(l, ip, &renews) == 0 && renews == midnight + DAY);
    CHECK(vd_ledger_age(l, ip, &is_new, err, sizeof err) == 1 && !is_new);
    CHECK(vd_ledger_reserve(other, ip, 4, 10, err, sizeof err) == 4);
    /* yesterday's 10 are not given back against today's count */
    CHECK(vd_ledger_unreserve(l, ip, 10) == 0);
    CHECK(vd_ledger_used_today(l, ip, NULL) == 4);
    CHECK(vd_ledger_reserve(l, ip, 10, 10, err, sizeof err) == 6);
    CHECK(vd_ledger_unreserve(l, ip, 2) == 0);
    CHECK(vd_ledger_used_today(l, ip, NULL) == 8);
    CHECK(vd_ledger_note(l, ip, false) == 0);
    vd_ledger_close(other);
    vd_ledger_close(l);

    /* day rows older than VD_LEDGER_KEEP_DAYS go at open; totals and first use stay */
    now = midnight + (VD_LEDGER_KEEP_DAYS + 1) * DAY;
    l = open_at(dir, &now);
    if (!l) return;
    CHECK(vd_ledger_prune(l, err, sizeof err) == 0);
    CHECK(vd_ledger_age(l, ip, &is_new, err, sizeof err) == VD_LEDGER_KEEP_DAYS + 2);
    now = midnight;
    CHECK(vd_ledger_used_today(l, ip, NULL) == 0);
    vd_ledger_close(l);
}

typedef struct seen {
    int n;
    vd_ledger_ip last;
    char ip[64];
} seen;

static void on_ip(const vd_ledger_ip *r, void *arg)
{
    seen *s = arg;
    s->n++;
    s->last = *r;
    snprintf(s->ip, sizeof s->ip, "%s", r->ip);
    s->last.ip = s->ip;
}

static void test_notes(void)
{
    const char *dir = fresh_dir("notes");
    long now = NOON;
    vd_ledger *l = open_at(dir, &now);
    if (!l) return;
    char err[1024];
    const char *ip = "::ffff:192.0.2.44";
    CHECK(vd_ledger_note(l, ip, false) == 0);
    CHECK(vd_ledger_note(l, ip, false) == 0);
    CHECK(vd_ledger_note(l, ip, true) == 0);
    CHECK(vd_ledger_reserve(l, ip, 5, 100, err, sizeof err) == 5);
    seen s = {0};
    CHECK(vd_ledger_each_ip(l, on_ip, &s, err, sizeof err) == 0);
    CHECK(s.n == 1);
    CHECK_STR(s.last.ip, "::ffff:192.0.2.44");
    CHECK(s.last.deferrals_today == 2 && s.last.blocks_today == 1);
    CHECK(s.last.deferrals_total == 2 && s.last.blocks_total == 1);
    CHECK(s.last.used_today == 5 && s.last.age_days == 0);
    CHECK(s.last.first_use == NOON / DAY * DAY);
    CHECK(s.last.renews_at == (NOON / DAY + 1) * DAY);
    now += DAY;
    CHECK(vd_ledger_note(l, ip, true) == 0);
    s.n = 0;
    CHECK(vd_ledger_each_ip(l, on_ip, &s, err, sizeof err) == 0);
    CHECK(s.n == 1 && s.last.deferrals_today == 0 && s.last.blocks_today == 1);
    CHECK(s.last.deferrals_total == 2 && s.last.blocks_total == 2);
    CHECK(s.last.used_today == 0 && s.last.age_days == 1);
    /* the warm-up's recent history: over the last N days, today included */
    long d = -1, b = -1;
    CHECK(vd_ledger_recent(l, ip, 1, &d, &b) == 0 && d == 0 && b == 1);
    CHECK(vd_ledger_recent(l, ip, 2, &d, &b) == 0 && d == 2 && b == 2);
    CHECK(vd_ledger_recent(l, ip, 0, &d, &b) == 0 && d == 0 && b == 1); /* today only */
    now += 30 * DAY; /* both days fall out of a 30-day window */
    CHECK(vd_ledger_recent(l, ip, 30, &d, &b) == 0 && d == 0 && b == 0);
    CHECK(vd_ledger_recent(l, ip, 32, &d, &b) == 0 && d == 2 && b == 2);
    CHECK(vd_ledger_recent(l, "203.0.113.99", 30, &d, &b) == 0 && d == 0 && b == 0);
    CHECK(vd_ledger_recent(l, "bad ip", 30, &d, &b) == -1);
    vd_ledger_close(l);
}

typedef struct bseen {
    int n;
    char keys[256];
} bseen;

static void on_breaker(const vd_ledger_breaker *b, void *arg)
{
    bseen *s = arg;
    s->n++;
    size_t at = strlen(s->keys);
    snprintf(s->keys + at, sizeof s->keys - at, "%s%s", at ? "," : "", b->key);
}

static void test_breakers(void)
{
    const char *dir = fresh_dir("breakers");
    long now = NOON;
    vd_ledger *l = open_at(dir, &now);
    if (!l) return;
    char reason[1024], err[1024];
    long until = -1;
    const char *ip = "192.0.2.1";
    CHECK(vd_ledger_breaker_get(l, ip, "mx:gmail.com", &until, reason, sizeof reason) == 0);
    CHECK(until == 0 && reason[0] == '\0');
    CHECK(vd_ledger_breaker_set(l, ip, "mx:gmail.com", now + 600, "421 4.7.0 try later") == 0);
    CHECK(vd_ledger_breaker_set(l, ip, "mx:outlook.com", now + 60, "block") == 0);
    CHECK(vd_ledger_breaker_get(l, ip, "mx:gmail.com", &until, reason, sizeof reason) == 0);
    CHECK(until == now + 600);
    CHECK_STR(reason, "421 4.7.0 try later");
    CHECK(vd_ledger_breaker_get(l, "192.0.2.2", "mx:gmail.com", &until, reason, sizeof reason) ==
          0);
    CHECK(until == 0);
    bseen s = {0};
    CHECK(vd_ledger_each_breaker(l, ip, on_breaker, &s, err, sizeof err) == 0);
    CHECK(s.n == 2);
    CHECK_STR(s.keys, "mx:gmail.com,mx:outlook.com");
    /* expiry */
    now += 61;
    CHECK(vd_ledger_breaker_get(l, ip, "mx:outlook.com", &until, reason, sizeof reason) == 0);
    CHECK(until == 0);
    /* closing by an until in the past */
    CHECK(vd_ledger_breaker_set(l, ip, "mx:gmail.com", 0, NULL) == 0);
    CHECK(vd_ledger_breaker_get(l, ip, "mx:gmail.com", &until, reason, sizeof reason) == 0);
    CHECK(until == 0);
    /* bounds: a key too long is refused, a reason too long is cut (not inside a UTF-8 char) */
    char key[VD_LEDGER_KEY_MAX + 2];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    CHECK(vd_ledger_breaker_set(l, ip, key, now + 60, "x") == -1);
    CHECK(strstr(vd_ledger_error(l), "key") != NULL);
    CHECK(vd_ledger_breaker_set(l, ip, "", now + 60, "x") == -1);
    key[VD_LEDGER_KEY_MAX] = '\0';
    char why[VD_LEDGER_REASON_MAX + 100];
    memset(why, 'r', sizeof why - 1);
    why[sizeof why - 1] = '\0';
    memcpy(why + VD_LEDGER_REASON_MAX - 1, "\xc3\xa9", 2); /* é straddles the bound */
    CHECK(vd_ledger_breaker_set(l, ip, key, now + 60, why) == 0);
    CHECK(vd_ledger_breaker_get(l, ip, key, &until, reason, sizeof reason) == 0);
    CHECK(until == now + 60 && strlen(reason) == VD_LEDGER_REASON_MAX - 1);
    /* persisted */
    vd_ledger_close(l);
    l = open_at(dir, &now);
    if (!l) return;
    CHECK(vd_ledger_breaker_get(l, ip, key, &until, NULL, 0) == 0 && until == now + 60);
    vd_ledger_close(l);
}

/* ---- several processes ---- */

static void write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) _exit(3);
        c += w;
        n -= (size_t)w;
    }
}

/* A child: opens its own handle once the barrier opens and reserves from ip until the budget
 * is spent; writes each grant to out as it returns (so the parent knows what was committed). */
static void hammer(const char *dir, const char *ip, long budget, int barrier, int out,
                   unsigned seed)
{
    char c;
    if (read(barrier, &c, 1) < 0) _exit(4);
    long now = NOON;
    char err[1024];
    vd_ledger *l = vd_ledger_open(dir, err, sizeof err);
    if (!l) {
        fprintf(stderr, "child: %s\n", err);
        _exit(2);
    }
    vd_ledger_set_clock(l, clock_at, &now);
    srand(seed);
    for (;;) {
        long want = 1 + rand() % 7;
        long got = vd_ledger_reserve(l, ip, want, budget, err, sizeof err);
        if (got < 0) {
            fprintf(stderr, "child: %s\n", err);
            _exit(2);
        }
        if (got == 0) break;
        write_all(out, &got, sizeof got);
        if (got > want) _exit(5);
    }
    vd_ledger_close(l);
    _exit(0);
}

/* Reads longs from fd until EOF; their sum. */
static long sum_of(int fd)
{
    long sum = 0, v;
    ssize_t r;
    for (;;) {
        size_t have = 0;
        while (have < sizeof v && (r = read(fd, (char *)&v + have, sizeof v - have)) > 0)
            have += (size_t)r;
        if (have < sizeof v) break;
        sum += v;
    }
    return sum;
}

static int child_status(pid_t pid)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return st;
}

/* What the limiter learned of each server: written, read back, listed (the throttled ones),
 * per source IP, pruned when old. */
static int npaces;
static void count_pace(const char *key, const vd_ledger_pace *p, void *arg)
{
    (void)p;
    (void)arg;
    npaces++;
    CHECK(strncmp(key, "m:", 2) == 0 || strncmp(key, "p:", 2) == 0);
}

static void test_paces(void)
{
    const char *dir = fresh_dir("paces");
    long now = NOON;
    vd_ledger *l = open_at(dir, &now);
    if (!l) return;
    vd_ledger_pace p = {
        .rate = 84, .ceil = 96, .conns = 2, .sessions = 4.5, .deferred_at = now, .deferrals = 1};
    CHECK(vd_ledger_pace_set(l, "192.0.2.1", "m:198.51.100.7", &p) == 0);
    vd_ledger_pace q = {.rate = 300};
    CHECK(vd_ledger_pace_set(l, "192.0.2.1", "n:198.51.100", &q) == 0); /* never deferred */
    CHECK(vd_ledger_pace_set(l, "192.0.2.1", "p:google", &p) == 0);
    vd_ledger_pace got;
    CHECK(vd_ledger_pace_get(l, "192.0.2.1", "m:198.51.100.7", &got) == 0);
    CHECK(got.rate == 84 && got.ceil == 96 && got.conns == 2 && got.sessions == 4.5 &&
          got.deferrals == 1 && got.deferred_at == now && got.updated_at == now);
    CHECK(vd_ledger_pace_get(l, "192.0.2.2", "m:198.51.100.7", &got) == 1); /* another IP's */
    CHECK(vd_ledger_pace_get(l, "192.0.2.1", "m:203.0.113.1", &got) == 1);
    char err[1024];
    npaces = 0;
    CHECK(vd_ledger_each_pace(l, "192.0.2.1", true, count_pace, NULL, err, sizeof err) == 0);
    CHECK_MSG(npaces == 2, "throttled servers listed: %d", npaces);
    vd_ledger_close(l);
    now = NOON + (VD_LEDGER_PACE_KEEP_DAYS + 1) * 86400L; /* pruned (at open) when that old */
    l = open_at(dir, &now);
    if (!l) return;
    CHECK(vd_ledger_prune(l, err, sizeof err) == 0);
    CHECK(vd_ledger_pace_get(l, "192.0.2.1", "m:198.51.100.7", &got) == 1);
    vd_ledger_close(l);
}

static void test_concurrent(void)
{
    /* a fresh directory: the first opens race to create the file and schema too */
    const char *dir = fresh_dir("concurrent");
    enum { N = 4 };
    const long budget = 3000;
    int barrier[2], out[2], out2[2];
    CHECK(pipe(barrier) == 0 && pipe(out) == 0 && pipe(out2) == 0);
    pid_t kids[N + 1];
    for (int i = 0; i <= N; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            close(barrier[1]);
            close(out[0]);
            close(out2[0]);
            if (i == N) /* a verify from another source IP at the same time */
                hammer(dir, "192.0.2.200", 500, barrier[0], out2[1], 99);
            hammer(dir, "192.0.2.100", budget, barrier[0], out[1], (unsigned)i + 1);
        }
    }
    close(barrier[0]);
    close(out[1]);
    close(out2[1]);
    close(barrier[1]); /* EOF: every child starts now */
    long granted = sum_of(out[0]), granted2 = sum_of(out2[0]);
    close(out[0]);
    close(out2[0]);
    for (int i = 0; i <= N; i++) {
        int st = child_status(kids[i]);
        CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d: status %d", i, st);
    }
    CHECK_MSG(granted == budget, "granted %ld of %ld", granted, budget);
    CHECK_MSG(granted2 == 500, "granted %ld of 500", granted2);
    long now = NOON;
    vd_ledger *l = open_at(dir, &now);
    if (!l) return;
    CHECK(vd_ledger_used_today(l, "192.0.2.100", NULL) == budget);
    CHECK(vd_ledger_used_today(l, "192.0.2.200", NULL) == 500);
    char err[1024];
    CHECK_MSG(vd_ledger_integrity(l, err, sizeof err) == 0, "%s", err);
    vd_ledger_close(l);
}

static void test_kill9(void)
{
    const char *dir = fresh_dir("kill9");
    long now = NOON;
    long granted = 0;
    for (int round = 0; round < 8; round++) {
        int barrier[2], out[2];
        CHECK(pipe(barrier) == 0 && pipe(out) == 0);
        pid_t pid = fork();
        if (pid == 0) {
            close(barrier[1]);
            close(out[0]);
            hammer(dir, "192.0.2.7", 1L << 40, barrier[0], out[1], (unsigned)round);
        }
        close(barrier[0]);
        close(out[1]);
        close(barrier[1]);
        /* let it write for a while, a different while each round, then kill it */
        struct timespec ts = {0, (long)(20 + 17 * round) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int st = child_status(pid);
        CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        granted += sum_of(out[0]); /* everything it was told it got, before dying */
        close(out[0]);
        vd_ledger *l = open_at(dir, &now);
        if (!l) return;
        char err[1024];
        CHECK_MSG(vd_ledger_integrity(l, err, sizeof err) == 0, "round %d: %s", round, err);
        long used = vd_ledger_used_today(l, "192.0.2.7", NULL);
        /* never below what was granted; above by at most the grant it was killed in */
        CHECK_MSG(used >= granted && used <= granted + 7, "round %d: used %ld, granted %ld", round,
                  used, granted);
        if (getenv("LEDGER_TEST_VERBOSE"))
            fprintf(stderr, "round %d: used %ld, reported %ld\n", round, used, granted);
        granted = used; /* a grant committed but not reported counts from now on */
        vd_ledger_close(l);
    }
    CHECK_MSG(granted > 0, "the writer never got to write");
}

/* ---- the state directory ---- */

static void test_state_dir(void)
{
    char err[1024], path[512];
    snprintf(path, sizeof path, "%s/sd/a/b/c", root);
    char *p = vd_state_dir(path, err, sizeof err);
    CHECK_MSG(p != NULL, "%s", err);
    struct stat sb;
    CHECK(p && stat(p, &sb) == 0 && S_ISDIR(sb.st_mode) && (sb.st_mode & 0777) == 0700);
    free(p);
    snprintf(path, sizeof path, "%s/sd/a", root);
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0700);
    /* again: it exists, fine */
    p = vd_state_dir(path, err, sizeof err);
    CHECK(p != NULL);
    free(p);

    /* a file where the directory should be */
    snprintf(path, sizeof path, "%s/sd/file", root);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    close(fd);
    CHECK(vd_state_dir(path, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, path) && strstr(err, "not a directory"), "%s", err);
    snprintf(path, sizeof path, "%s/sd/file/sub", root);
    CHECK(vd_state_dir(path, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, path) && strstr(err, "cannot create"), "%s", err);

    /* a file that is not a ledger */
    snprintf(path, sizeof path, "%s/sd/garbage", root);
    p = vd_state_dir(path, err, sizeof err);
    free(p);
    char file[600];
    snprintf(file, sizeof file, "%s/ledger.sqlite", path);
    fd = open(file, O_CREAT | O_WRONLY, 0600);
    CHECK(write(fd, "this is not an SQLite database, not at all, no.\n", 48) == 48);
    close(fd);
    CHECK(vd_ledger_open(path, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, file) != NULL, "%s", err);

    /* the defaults */
    if (geteuid() == 0) {
        p = vd_state_dir_path(NULL, err, sizeof err);
        CHECK_STR(p, "/var/lib/validora");
        free(p);
    }
    p = vd_state_dir_path("/x/y", err, sizeof err);
    CHECK_STR(p, "/x/y");
    free(p);
}

/* Unwritable and unreadable state: run as 'nobody' when root (root can write anywhere). */
static void test_unwritable(void)
{
    char base[512], err[1024];
    snprintf(base, sizeof base, "%s/ro", root);
    CHECK(mkdir(base, 0755) == 0);
    /* a ledger owned by another user that we may not read */
    char locked[600], lf[700];
    snprintf(locked, sizeof locked, "%s/theirs", base);
    CHECK(mkdir(locked, 0755) == 0);
    {
        vd_ledger *l = vd_ledger_open(locked, err, sizeof err);
        CHECK_MSG(l != NULL, "%s", err);
        vd_ledger_close(l);
        snprintf(lf, sizeof lf, "%s/ledger.sqlite", locked);
        CHECK(chmod(lf, 0600) == 0);
    }
    uid_t nobody = 65534;
    struct passwd *pw = getpwnam("nobody");
    if (pw) nobody = pw->pw_uid;
    if (geteuid() != 0) {
        CHECK(chmod(base, 0555) == 0);
        CHECK(chmod(lf, 0000) == 0);
    }
    pid_t pid = fork();
    if (pid == 0) {
        if (geteuid() == 0 &&
            (chmod(root, 0755) != 0 || setgid(nobody) != 0 || setuid(nobody) != 0))
            _exit(9);
        int bad = 0;
        char sub[700];
        snprintf(sub, sizeof sub, "%s/sub", base);
        char *p = vd_state_dir(sub, err, sizeof err);
        if (p || !strstr(err, sub) || !strstr(err, "Permission denied")) {
            fprintf(stderr, "unwritable state dir: %s\n", p ? p : err);
            bad++;
        }
        p = vd_state_dir(base, err, sizeof err);
        if (p || !strstr(err, "cannot write there")) {
            fprintf(stderr, "unwritable state dir: %s\n", p ? p : err);
            bad++;
        }
        vd_ledger *l = vd_ledger_open(base, err, sizeof err);
        if (l || !strstr(err, "ledger.sqlite")) {
            fprintf(stderr, "ledger in an unwritable dir: %s\n", l ? "opened" : err);
            bad++;
        }
        l = vd_ledger_open(locked, err, sizeof err);
        if (l || !strstr(err, lf)) {
            fprintf(stderr, "unreadable ledger: %s\n", l ? "opened" : err);
            bad++;
        }
        int fd = vd_instance_lock(base, "127.0.0.1", err, sizeof err);
        if (fd >= 0 || !strstr(err, "instance-127.0.0.1.lock")) {
            fprintf(stderr, "lock in an unwritable dir: %s\n", fd >= 0 ? "taken" : err);
            bad++;
        }
        _exit(bad);
    }
    int st = child_status(pid);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    if (geteuid() == 0) chmod(root, 0700);
    chmod(base, 0755);
    chmod(lf, 0600);
}

/* ---- the instance lock ---- */

static void test_lock(void)
{
    const char *dir = fresh_dir("lock");
    char err[1024];
    int fd = vd_instance_lock(dir, "127.0.0.1", err, sizeof err);
    CHECK_MSG(fd >= 0, "%s", err);
    /* in-process, a second open of the file is refused as well */
    CHECK(vd_instance_lock(dir, "127.0.0.1", err, sizeof err) == -1);
    char want[128];
    snprintf(want, sizeof want, "another validora (pid %ld)", (long)getpid());
    CHECK_MSG(strstr(err, want) && strstr(err, "from source IP 127.0.0.1") && strstr(err, dir) &&
                  strstr(err, "one instance per source IP protects its reputation"),
              "%s", err);
    int other = vd_instance_lock(dir, "127.0.0.2", err, sizeof err);
    CHECK_MSG(other >= 0, "%s", err);
    int any = vd_instance_lock(dir, NULL, err, sizeof err);
    CHECK_MSG(any >= 0, "%s", err);
    CHECK(vd_instance_lock(dir, "any", err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "without --source-ip") != NULL, "%s", err);
    CHECK(vd_instance_lock(dir, "../../etc/x", err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "not an IP address") != NULL, "%s", err);
    vd_instance_unlock(fd);
    vd_instance_unlock(other);
    vd_instance_unlock(any);

    /* another process holds it; it is killed with SIGKILL; the lock is free again */
    int ready[2];
    CHECK(pipe(ready) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        int f = vd_instance_lock(dir, "::1", err, sizeof err);
        write_all(ready[1], f >= 0 ? "y" : "n", 1);
        pause();
        _exit(0);
    }
    close(ready[1]);
    char c = 0;
    CHECK(read(ready[0], &c, 1) == 1 && c == 'y');
    close(ready[0]);
    CHECK(vd_instance_lock(dir, "0:0::1", err, sizeof err) == -1);
    snprintf(want, sizeof want, "(pid %ld)", (long)pid);
    CHECK_MSG(strstr(err, want) && strstr(err, "::1"), "%s", err);
    kill(pid, SIGKILL);
    child_status(pid);
    fd = vd_instance_lock(dir, "::1", err, sizeof err);
    CHECK_MSG(fd >= 0, "after SIGKILL: %s", err);
    char path[600], buf[32] = "";
    snprintf(path, sizeof path, "%s/instance-::1.lock", dir);
    int r = open(path, O_RDONLY);
    CHECK(r >= 0 && read(r, buf, sizeof buf - 1) > 0 && strtol(buf, NULL, 10) == (long)getpid());
    if (r >= 0) close(r);
    vd_instance_unlock(fd);
}

int main(void)
{
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    test_age();
    test_reserve();
    test_rollover();
    test_notes();
    test_breakers();
    test_paces();
    test_concurrent();
    test_kill9();
    test_state_dir();
    test_unwritable();
    test_lock();
    if (!check_failed) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    } else {
        fprintf(stderr, "kept %s\n", root);
    }
    return check_done();
}

/* ledger.c — the ledger of each source IP in STATE_DIR/ledger.sqlite (validora/ledger.h):
 * first use, verifications, deferrals and blocks per UTC day, open circuit breakers; the state
 * directory; the one-instance-per-source-IP lock. docs/ledger.md tells the schema and why each
 * write is as durable as it is.
 *
 * Owns: the SQLite file (schema, WAL, synchronous level, busy timeout, pruning), what "today"
 * is (the UTC day of the ledger's clock), the reservations this handle holds, the state
 * directory's default and creation, the instance lock files.
 * Does not own: how large a budget is, when a breaker opens or what an age allows (the
 * engine asks and tells). No Lua, no event loop: every call is a short blocking transaction. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>
#include "ledger.h"

#define DAY_SECS        86400L
#define BUSY_TIMEOUT_MS 10000 /* another process's transaction takes milliseconds (an fsync) */
#define SCHEMA_VERSION  2     /* 2: the pace table */
#define IP_MAX          64    /* canonical text of an IPv6 address is at most 45 bytes */

/* Levels of PRAGMA synchronous used here (SQLite's numbering). */
enum { SYNC_NORMAL = 1, SYNC_FULL = 2 };

/* Verifications this handle reserved on one day for one IP and has not given back. */
typedef struct held {
    char ip[IP_MAX];
    long day;
    long n;
} held;

struct vd_ledger {
    sqlite3 *db;
    char path[PATH_MAX];
    long (*now)(void *arg);
    void *now_arg;
    int sync; /* the synchronous level in force */
    held *held;
    size_t nheld, capheld;
    unsigned long pace_puts;  /* every 256th checks the table's bound */
    char err[PATH_MAX + 512]; /* the path and a message */
};

static const char SCHEMA[] = "CREATE TABLE IF NOT EXISTS ip ("
                             " ip TEXT PRIMARY KEY,"
                             " first_day INTEGER NOT NULL,"
                             " deferrals_total INTEGER NOT NULL DEFAULT 0,"
                             " blocks_total INTEGER NOT NULL DEFAULT 0"
                             ") WITHOUT ROWID;"
                             "CREATE TABLE IF NOT EXISTS day ("
                             " ip TEXT NOT NULL,"
                             " day INTEGER NOT NULL,"
                             " used INTEGER NOT NULL DEFAULT 0,"
                             " deferrals INTEGER NOT NULL DEFAULT 0,"
                             " blocks INTEGER NOT NULL DEFAULT 0,"
                             " PRIMARY KEY (ip, day)"
                             ") WITHOUT ROWID;"
                             "CREATE TABLE IF NOT EXISTS breaker ("
                             " ip TEXT NOT NULL,"
                             " key TEXT NOT NULL,"
                             " until INTEGER NOT NULL,"
                             " reason TEXT NOT NULL,"
                             " PRIMARY KEY (ip, key)"
                             ") WITHOUT ROWID;"
                             "CREATE TABLE IF NOT EXISTS pace ("
                             " ip TEXT NOT NULL,"
                             " key TEXT NOT NULL,"
                             " rate REAL NOT NULL,"
                             " ceil REAL NOT NULL,"
                             " conns INTEGER NOT NULL,"
                             " sessions REAL NOT NULL,"
                             " deferred_at INTEGER NOT NULL,"
                             " updated_at INTEGER NOT NULL,"
                             " deferrals INTEGER NOT NULL,"
                             " PRIMARY KEY (ip, key)"
                             ") WITHOUT ROWID;"
                             "CREATE INDEX IF NOT EXISTS pace_updated ON pace(updated_at);";

/* ---- clock ---- */

static long ledger_now(const vd_ledger *l)
{
    return l->now ? l->now(l->now_arg) : (long)time(NULL);
}

/* The UTC day number (days since 1970-01-01) of unix time t. */
static long day_of(long t)
{
    return t >= 0 ? t / DAY_SECS : -((-t + DAY_SECS - 1) / DAY_SECS);
}

static long ledger_today(const vd_ledger *l)
{
    return day_of(ledger_now(l));
}

long vd_ledger_time(const vd_ledger *l)
{
    return ledger_now(l);
}

void vd_ledger_set_clock(vd_ledger *l, long (*now)(void *arg), void *arg)
{
    l->now = now;
    l->now_arg = arg;
}

/* ---- errors and statements ---- */

static int fail(vd_ledger *l, char *err, size_t errlen, const char *what)
{
    snprintf(l->err, sizeof l->err, "ledger %s: %s%s%s", l->path, what, l->db ? ": " : "",
             l->db ? sqlite3_errmsg(l->db) : "");
    if (err && errlen) snprintf(err, errlen, "%s", l->err);
    return -1;
}

static int fail_msg(vd_ledger *l, char *err, size_t errlen, const char *msg)
{
    snprintf(l->err, sizeof l->err, "ledger %s: %s", l->path, msg);
    if (err && errlen) snprintf(err, errlen, "%s", l->err);
    return -1;
}

const char *vd_ledger_error(const vd_ledger *l)
{
    return l ? l->err : "no ledger";
}

/* Prepares sql and binds its parameters: fmt has one letter per parameter, 't' a const char *,
 * 'i' a long, 'd' a double. NULL on error (in l->err). */
static sqlite3_stmt *prepare(vd_ledger *l, const char *sql, const char *fmt, va_list ap)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(l->db, sql, -1, &st, NULL) != SQLITE_OK) {
        fail(l, NULL, 0, "prepare");
        return NULL;
    }
    for (int i = 0; fmt[i]; i++) {
        int rc;
        if (fmt[i] == 't')
            rc = sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
        else if (fmt[i] == 'd')
            rc = sqlite3_bind_double(st, i + 1, va_arg(ap, double));
        else
            rc = sqlite3_bind_int64(st, i + 1, (sqlite3_int64)va_arg(ap, long));
        if (rc != SQLITE_OK) {
            fail(l, NULL, 0, "bind");
            sqlite3_finalize(st);
            return NULL;
        }
    }
    return st;
}

/* Runs a statement that returns no rows. 0 or -1. */
static int run(vd_ledger *l, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqlite3_stmt *st = prepare(l, sql, fmt, ap);
    va_end(ap);
    if (!st) return -1;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) fail(l, NULL, 0, "write");
    sqlite3_finalize(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

/* Runs a query for one integer: 1 with *out, 0 when no row, -1 on error. */
static int query_long(vd_ledger *l, long *out, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqlite3_stmt *st = prepare(l, sql, fmt, ap);
    va_end(ap);
    if (!st) return -1;
    int rc = sqlite3_step(st), found = 0;
    if (rc == SQLITE_ROW) {
        *out = (long)sqlite3_column_int64(st, 0);
        found = 1;
    } else if (rc != SQLITE_DONE) {
        found = fail(l, NULL, 0, "read");
    }
    sqlite3_finalize(st);
    return found;
}

static int set_sync(vd_ledger *l, int level)
{
    if (l->sync == level) return 0;
    if (run(l, level == SYNC_FULL ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", "") !=
        0)
        return -1;
    l->sync = level;
    return 0;
}

/* BEGIN IMMEDIATE takes the write lock at once (waiting up to the busy timeout), so a
 * read-then-write never has to upgrade and fail with SQLITE_BUSY halfway. */
static int begin(vd_ledger *l, int level)
{
    if (set_sync(l, level) != 0) return -1;
    return run(l, "BEGIN IMMEDIATE", "");
}

static int commit(vd_ledger *l)
{
    if (run(l, "COMMIT", "") == 0) return 0;
    char keep[sizeof l->err];
    memcpy(keep, l->err, sizeof keep);
    if (!sqlite3_get_autocommit(l->db)) sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
    memcpy(l->err, keep, sizeof keep);
    return -1;
}

static int rollback(vd_ledger *l)
{
    char keep[sizeof l->err];
    memcpy(keep, l->err, sizeof keep);
    if (!sqlite3_get_autocommit(l->db)) sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
    memcpy(l->err, keep, sizeof keep);
    return -1;
}

/* ---- source IPs ---- */

int vd_ledger_canon_ip(const char *ip, char *out, size_t outlen, char *err, size_t errlen)
{
    unsigned char a[16];
    char buf[INET6_ADDRSTRLEN];
    const char *c = NULL;
    if (!ip || !ip[0] || !strcmp(ip, "any"))
        c = "any";
    else if (inet_pton(AF_INET, ip, a) == 1)
        c = inet_ntop(AF_INET, a, buf, sizeof buf);
    else if (inet_pton(AF_INET6, ip, a) == 1)
        c = inet_ntop(AF_INET6, a, buf, sizeof buf);
    if (!c || strlen(c) >= outlen) {
        if (err && errlen) snprintf(err, errlen, "not an IP address: '%.64s'", ip);
        return -1;
    }
    snprintf(out, outlen, "%s", c);
    return 0;
}

/* Canonical ip into out, or -1 with l->err. */
static int canon(vd_ledger *l, const char *ip, char out[IP_MAX], char *err, size_t errlen)
{
    char msg[128];
    if (vd_ledger_canon_ip(ip, out, IP_MAX, msg, sizeof msg) == 0) return 0;
    return fail_msg(l, err, errlen, msg);
}

/* Records ip with first use today unless known; inside a transaction. 1 when it was new. */
static int ensure_ip(vd_ledger *l, const char *ip, long today)
{
    if (run(l, "INSERT OR IGNORE INTO ip(ip, first_day) VALUES(?, ?)", "ti", ip, today) != 0)
        return -1;
    return sqlite3_changes(l->db) == 1;
}

/* ---- open, close ---- */

static int open_db(vd_ledger *l, char *err, size_t errlen)
{
    int rc = sqlite3_open_v2(l->path, &l->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) return fail(l, err, errlen, "cannot open");
    sqlite3_extended_result_codes(l->db, 1);
    sqlite3_busy_timeout(l->db, BUSY_TIMEOUT_MS);
    /* WAL: a reader (`ledger show`) never blocks a writer, and a commit is one append. Setting
     * it needs a moment alone with the file, and when another process is setting it up too
     * SQLite answers SQLITE_BUSY at once, without the busy handler: so wait here. */
    bool wal = false;
    for (int waited = 0;; waited += 10) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(l->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK)
            rc = sqlite3_errcode(l->db);
        else
            rc = sqlite3_step(st);
        wal = rc == SQLITE_ROW && sqlite3_column_text(st, 0) &&
              !strcmp((const char *)sqlite3_column_text(st, 0), "wal");
        sqlite3_finalize(st);
        if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED) break;
        if (waited >= BUSY_TIMEOUT_MS) break;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (rc != SQLITE_ROW) return fail(l, err, errlen, "cannot read");
    if (!wal) return fail_msg(l, err, errlen, "cannot use write-ahead logging here");
    l->sync = 0;
    if (set_sync(l, SYNC_FULL) != 0) return fail(l, err, errlen, "cannot set up");
    return 0;
}

/* Creates the schema (or checks its version) and prunes old rows, in one transaction. */
static int setup(vd_ledger *l, char *err, size_t errlen)
{
    long version = 0;
    if (begin(l, SYNC_FULL) != 0) return fail(l, err, errlen, "cannot write");
    if (query_long(l, &version, "PRAGMA user_version", "") < 0) goto failed;
    if (version > SCHEMA_VERSION) {
        rollback(l);
        char msg[128];
        snprintf(msg, sizeof msg, "schema version %ld is newer than this validora's (%d)", version,
                 SCHEMA_VERSION);
        return fail_msg(l, err, errlen, msg);
    }
    if (version < SCHEMA_VERSION) {
        if (sqlite3_exec(l->db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
            fail(l, NULL, 0, "cannot create the schema");
            goto failed;
        }
        if (run(l, "PRAGMA user_version=2", "") != 0) goto failed;
    }
    if (commit(l) != 0) goto failed_committed;
    return vd_ledger_prune(l, err, errlen);
failed:
    rollback(l);
failed_committed:
    if (err && errlen) snprintf(err, errlen, "%s", l->err);
    return -1;
}

int vd_ledger_prune(vd_ledger *l, char *err, size_t errlen)
{
    long today = ledger_today(l), now = ledger_now(l);
    /* NORMAL: a prune lost to a power cut is done again at the next open. */
    if (begin(l, SYNC_NORMAL) != 0) goto failed;
    if (run(l, "DELETE FROM day WHERE day < ?", "i", today - VD_LEDGER_KEEP_DAYS) != 0 ||
        run(l, "DELETE FROM breaker WHERE until <= ?", "i", now) != 0 ||
        run(l, "DELETE FROM pace WHERE updated_at < ?", "i",
            now - VD_LEDGER_PACE_KEEP_DAYS * DAY_SECS) != 0) {
        rollback(l);
        goto failed;
    }
    if (commit(l) != 0) goto failed;
    return 0;
failed:
    if (err && errlen) snprintf(err, errlen, "%s", l->err);
    return -1;
}

vd_ledger *vd_ledger_open(const char *state_dir, char *err, size_t errlen)
{
    vd_ledger *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "ledger: out of memory");
        return NULL;
    }
    int n = snprintf(l->path, sizeof l->path, "%s/%s", state_dir ? state_dir : ".", VD_LEDGER_FILE);
    if (n < 0 || (size_t)n >= sizeof l->path) {
        snprintf(err, errlen, "ledger %s/%s: path too long", state_dir, VD_LEDGER_FILE);
        free(l);
        return NULL;
    }
    if (open_db(l, err, errlen) != 0 || setup(l, err, errlen) != 0) {
        vd_ledger_close(l);
        return NULL;
    }
    return l;
}

void vd_ledger_close(vd_ledger *l)
{
    if (!l) return;
    sqlite3_close_v2(l->db);
    free(l->held);
    free(l);
}

int vd_ledger_integrity(vd_ledger *l, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(l->db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK)
        return fail(l, err, errlen, "integrity check");
    int rc = sqlite3_step(st), res = -1;
    const unsigned char *t = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    if (t && !strcmp((const char *)t, "ok"))
        res = 0;
    else if (t)
        fail_msg(l, err, errlen, (const char *)t);
    else
        fail(l, err, errlen, "integrity check");
    sqlite3_finalize(st);
    return res;
}

/* ---- age ---- */

int vd_ledger_age(vd_ledger *l, const char *ip, bool *is_new, char *err, size_t errlen)
{
    char c[IP_MAX];
    bool fresh = false;
    if (canon(l, ip, c, err, errlen) != 0) return -1;
    long today = ledger_today(l), first = 0;
    int found = query_long(l, &first, "SELECT first_day FROM ip WHERE ip = ?", "t", c);
    if (found < 0) goto failed;
    if (!found) {
        /* Losing this write to a power cut only makes the IP look new again tomorrow: the
         * cautious side. NORMAL is enough. */
        if (begin(l, SYNC_NORMAL) != 0) goto failed;
        int n = ensure_ip(l, c, today);
        if (n < 0) goto failed_tx;
        fresh = n == 1;
        if (query_long(l, &first, "SELECT first_day FROM ip WHERE ip = ?", "t", c) != 1)
            goto failed_tx;
        if (commit(l) != 0) goto failed;
    }
    if (is_new) *is_new = fresh;
    long age = today - first;
    return age < 0 ? 0 : age > INT_MAX ? INT_MAX : (int)age;
failed_tx:
    rollback(l);
failed:
    if (err && errlen) snprintf(err, errlen, "%s", l->err);
    return -1;
}

int vd_ledger_set_age(vd_ledger *l, const char *ip, int days, char *err, size_t errlen)
{
    char c[IP_MAX];
    if (canon(l, ip, c, err, errlen) != 0) return -1;
    if (days < 0 || days > VD_LEDGER_MAX_AGE) {
        char msg[96];
        snprintf(msg, sizeof msg, "age not between 0 and %d days: %d", VD_LEDGER_MAX_AGE, days);
        return fail_msg(l, err, errlen, msg);
    }
    long first = ledger_today(l) - days;
    if (begin(l, SYNC_FULL) != 0) goto failed;
    if (run(l,
            "INSERT INTO ip(ip, first_day) VALUES(?, ?)"
            " ON CONFLICT(ip) DO UPDATE SET first_day = excluded.first_day",
            "ti", c, first) != 0) {
        rollback(l);
        goto failed;
    }
    if (commit(l) != 0) goto failed;
    return 0;
failed:
    if (err && errlen) snprintf(err, errlen, "%s", l->err);
    return -1;
}

/* ---- budget ---- */

static held *held_find(vd_ledger *l, const char *ip, long day, bool add)
{
    for (size_t i = 0; i < l->nheld; i++)
        if (!strcmp(l->held[i].ip, ip)) {
            if (l->held[i].day != day) {
                if (!add) return NULL;
                l->held[i].day = day; /* yesterday's reservations stay spent */
                l->held[i].n = 0;
            }
            return &l->held[i];
        }
    if (!add) return NULL;
    if (l->nheld == l->capheld) {
        size_t cap = l->capheld ? 2 * l->capheld : 4;
        held *h = realloc(l->held, cap * sizeof *h);
        if (!h) return NULL;
        l->held = h;
        l->capheld = cap;
    }
    held *h = &l->held[l->nheld++];
    snprintf(h->ip, sizeof h->ip, "%s", ip);
    h->day = day;
    h->n = 0;
    return h;
}

long vd_ledger_reserve(vd_ledger *l, const char *ip, long want, long budget, char *err,
                       size_t errlen)
{
    char c[IP_MAX];
    if (canon(l, ip, c, err, errlen) != 0) return -1;
    if (want <= 0) return 0;
    if (budget < 0) budget = 0;
    long today = ledger_today(l), used = 0;
    held *h = held_find(l, c, today, true);
    if (!h) return fail_msg(l, err, errlen, "out of memory");
    /* FULL: once granted, a reservation must be on disk before the caller spends it, or a
     * power cut could hand the same budget out twice. */
    if (begin(l, SYNC_FULL) != 0) goto failed;
    if (ensure_ip(l, c, today) < 0) goto failed_tx;
    if (query_long(l, &used, "SELECT used FROM day WHERE ip = ? AND day = ?", "ti", c, today) < 0)
        goto failed_tx;
    long left = budget > used ? budget - used : 0;
    long granted = want < left ? want : left;
    if (granted > 0 && run(l,
                           "INSERT INTO day(ip, day, used) VALUES(?, ?, ?)"
                           " ON CONFLICT(ip, day) DO UPDATE SET used = used + excluded.used",
                           "tii", c, today, granted) != 0)
        goto failed_tx;
    if (commit(l) != 0) goto failed;
    h->n += granted;
    return granted;
failed_tx:
    rollback(l);
failed:
    if (err && errlen) snprintf(err, errlen, "%s", l->err);
    return -1;
}

int vd_ledger_unreserve(vd_ledger *l, const char *ip, long n)
{
    char c[IP_MAX];
    if (canon(l, ip, c, NULL, 0) != 0) return -1;
    if (n <= 0) return 0;
    long today = ledger_today(l);
    held *h = held_find(l, c, today, false);
    long give = h ? (n < h->n ? n : h->n) : 0;
    if (give <= 0) return 0;
    /* NORMAL: losing a give-back to a power cut under-spends, which is safe. */
    if (set_sync(l, SYNC_NORMAL) != 0) return -1;
    if (run(l, "UPDATE day SET used = MAX(0, used - ?) WHERE ip = ? AND day = ?", "iti", give, c,
            today) != 0)
        return -1;
    h->n -= give;
    return 0;
}

long vd_ledger_used_today(vd_ledger *l, const char *ip, long *renews_at)
{
    char c[IP_MAX];
    if (canon(l, ip, c, NULL, 0) != 0) return -1;
    long today = ledger_today(l), used = 0;
    if (renews_at) *renews_at = (today + 1) * DAY_SECS;
    if (query_long(l, &used, "SELECT used FROM day WHERE ip = ? AND day = ?", "ti", c, today) < 0)
        return -1;
    return used;
}

/* ---- deferrals, blocks ---- */

int vd_ledger_note(vd_ledger *l, const char *ip, bool block)
{
    char c[IP_MAX];
    if (canon(l, ip, c, NULL, 0) != 0) return -1;
    long today = ledger_today(l);
    /* FULL: a lost block could let the engine treat the IP as healthier than it is. */
    if (begin(l, SYNC_FULL) != 0) return -1;
    if (ensure_ip(l, c, today) < 0) return rollback(l);
    const char *day_sql = block ? "INSERT INTO day(ip, day, blocks) VALUES(?, ?, 1)"
                                  " ON CONFLICT(ip, day) DO UPDATE SET blocks = blocks + 1"
                                : "INSERT INTO day(ip, day, deferrals) VALUES(?, ?, 1)"
                                  " ON CONFLICT(ip, day) DO UPDATE SET deferrals = deferrals + 1";
    const char *ip_sql = block ? "UPDATE ip SET blocks_total = blocks_total + 1 WHERE ip = ?"
                               : "UPDATE ip SET deferrals_total = deferrals_total + 1 WHERE ip = ?";
    if (run(l, day_sql, "ti", c, today) != 0 || run(l, ip_sql, "t", c) != 0) return rollback(l);
    return commit(l);
}

int vd_ledger_recent(vd_ledger *l, const char *ip, int days, long *deferrals, long *blocks)
{
    char c[IP_MAX];
    if (canon(l, ip, c, NULL, 0) != 0) return -1;
    if (days < 1) days = 1;
    long since = ledger_today(l) - (days - 1), d = 0, b = 0;
    if (query_long(l, &d, "SELECT COALESCE(SUM(deferrals), 0) FROM day WHERE ip = ? AND day >= ?",
                   "ti", c, since) < 0 ||
        query_long(l, &b, "SELECT COALESCE(SUM(blocks), 0) FROM day WHERE ip = ? AND day >= ?",
                   "ti", c, since) < 0)
        return -1;
    if (deferrals) *deferrals = d;
    if (blocks) *blocks = b;
    return 0;
}

/* ---- breakers ---- */

/* Copies at most max bytes of s into out (max + 1 bytes), not cutting a UTF-8 sequence. */
static void cut_utf8(const char *s, size_t max, char *out)
{
    size_t n = strlen(s);
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(out, s, n);
    out[n] = '\0';
}

int vd_ledger_breaker_set(vd_ledger *l, const char *ip, const char *key, long until,
                          const char *reason)
{
    char c[IP_MAX], why[VD_LEDGER_REASON_MAX + 1];
    if (canon(l, ip, c, NULL, 0) != 0) return -1;
    if (!key || !key[0] || strlen(key) > VD_LEDGER_KEY_MAX) {
        char msg[96];
        snprintf(msg, sizeof msg, "a breaker key is 1 to %d bytes", VD_LEDGER_KEY_MAX);
        return fail_msg(l, NULL, 0, msg);
    }
    cut_utf8(reason ? reason : "", VD_LEDGER_REASON_MAX, why);
    long now = ledger_now(l);
    /* FULL: a breaker lost to a power cut would send us back to a server that blocked us. */
    if (begin(l, SYNC_FULL) != 0) return -1;
    int rc;
    if (until <= now) {
        rc = run(l, "DELETE FROM breaker WHERE ip = ? AND key = ?", "tt", c, key);
    } else {
        rc = ensure_ip(l, c, day_of(now)) < 0 ? -1 : 0;
        if (rc == 0)
            rc = run(l, "INSERT OR REPLACE INTO breaker(ip, key, until, reason) VALUES(?,?,?,?)",
                     "ttit", c, key, until, why);
    }
    if (rc == 0) rc = run(l, "DELETE FROM breaker WHERE until <= ?", "i", now);
    if (rc != 0) return rollback(l);
    return commit(l);
}

int vd_ledger_breaker_get(vd_ledger *l, const char *ip, const char *key, long *until, char *reason,
                          size_t len)
{
    char c[IP_MAX];
    if (until) *until = 0;
    if (reason && len) reason[0] = '\0';
    if (canon(l, ip, c, NULL, 0) != 0 || !key) return -1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(l->db,
                           "SELECT until, reason FROM breaker WHERE ip = ? AND key = ? AND "
                           "until > ?",
                           -1, &st, NULL) != SQLITE_OK)
        return fail(l, NULL, 0, "prepare");
    sqlite3_bind_text(st, 1, c, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)ledger_now(l));
    int rc = sqlite3_step(st), res = 0;
    if (rc == SQLITE_ROW) {
        if (until) *until = (long)sqlite3_column_int64(st, 0);
        const unsigned char *t = sqlite3_column_text(st, 1);
        if (reason && len) snprintf(reason, len, "%s", t ? (const char *)t : "");
    } else if (rc != SQLITE_DONE) {
        res = fail(l, NULL, 0, "read");
    }
    sqlite3_finalize(st);
    return res;
}

/* ---- paces: what each server allowed ---- */

int vd_ledger_pace_set(vd_ledger *l, const char *ip, const char *key, const vd_ledger_pace *p)
{
    char c[IP_MAX];
    if (canon(l, ip, c, NULL, 0) != 0) return -1;
    if (!key || !key[0] || strlen(key) > VD_LEDGER_KEY_MAX) return fail_msg(l, NULL, 0, "bad key");
    /* NORMAL: a pace lost to a power cut is learned again, more slowly; not worth an fsync */
    if (begin(l, SYNC_NORMAL) != 0) return -1;
    int rc = run(l,
                 "INSERT OR REPLACE INTO pace(ip, key, rate, ceil, conns, sessions, deferred_at, "
                 "updated_at, deferrals) VALUES(?,?,?,?,?,?,?,?,?)",
                 "ttddidiii", c, key, p->rate, p->ceil, p->conns, p->sessions, p->deferred_at,
                 p->updated_at ? p->updated_at : ledger_now(l), (long)p->deferrals);
    /* bounded: past VD_LEDGER_PACES_MAX rows the oldest tenth goes (it starts gently again) */
    long n = 0;
    if (rc == 0 && ++l->pace_puts % 256 == 0 &&
        query_long(l, &n, "SELECT count(*) FROM pace", "") == 1 && n > VD_LEDGER_PACES_MAX)
        rc = run(l,
                 "DELETE FROM pace WHERE rowid IN (SELECT rowid FROM pace ORDER BY updated_at "
                 "LIMIT ?)",
                 "i", n - VD_LEDGER_PACES_MAX * 9 / 10);
    if (rc != 0) return rollback(l);
    return commit(l);
}

static void pace_row(sqlite3_stmt *st, int col, vd_ledger_pace *out)
{
    out->rate = sqlite3_column_double(st, col);
    out->ceil = sqlite3_column_double(st, col + 1);
    out->conns = (long)sqlite3_column_int64(st, col + 2);
    out->sessions = sqlite3_column_double(st, col + 3);
    out->deferred_at = (long)sqlite3_column_int64(st, col + 4);
    out->updated_at = (long)sqlite3_column_int64(st, col + 5);
    out->deferrals = (long)sqlite3_column_int64(st, col + 6);
}

int vd_ledger_pace_get(vd_ledger *l, const char *ip, const char *key, vd_ledger_pace *out)
{
    char c[IP_MAX];
    memset(out, 0, sizeof *out);
    if (canon(l, ip, c, NULL, 0) != 0 || !key) return -1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(l->db,
                           "SELECT rate, ceil, conns, sessions, deferred_at, updated_at, deferrals "
                           "FROM pace WHERE ip = ? AND key = ?",
                           -1, &st, NULL) != SQLITE_OK)
        return fail(l, NULL, 0, "prepare");
    sqlite3_bind_text(st, 1, c, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st), res = 1;
    if (rc == SQLITE_ROW) {
        pace_row(st, 0, out);
        res = 0;
    } else if (rc != SQLITE_DONE) {
        res = fail(l, NULL, 0, "read");
    }
    sqlite3_finalize(st);
    return res;
}

int vd_ledger_each_pace(vd_ledger *l, const char *ip, bool throttled_only,
                        void (*cb)(const char *key, const vd_ledger_pace *p, void *arg), void *arg,
                        char *err, size_t errlen)
{
    char c[IP_MAX];
    if (canon(l, ip, c, err, errlen) != 0) return -1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(l->db,
                           "SELECT key, rate, ceil, conns, sessions, deferred_at, updated_at, "
                           "deferrals FROM pace WHERE ip = ? AND deferrals >= ? "
                           "ORDER BY deferred_at DESC, key",
                           -1, &st, NULL) != SQLITE_OK)
        return fail(l, err, errlen, "prepare");
    sqlite3_bind_text(st, 1, c, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, throttled_only ? 1 : 0);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        vd_ledger_pace p;
        pace_row(st, 1, &p);
        const unsigned char *k = sqlite3_column_text(st, 0);
        cb(k ? (const char *)k : "", &p, arg);
    }
    int res = rc == SQLITE_DONE ? 0 : fail(l, err, errlen, "read");
    sqlite3_finalize(st);
    return res;
}

/* ---- reading it all ---- */

int vd_ledger_each_ip(vd_ledger *l, void (*cb)(const vd_ledger_ip *ip, void *arg), void *arg,
                      char *err, size_t errlen)
{
    long today = ledger_today(l);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(l->db,
                           "SELECT ip.ip, ip.first_day, ip.deferrals_total, ip.blocks_total,"
                           " COALESCE(d.used, 0), COALESCE(d.deferrals, 0), COALESCE(d.blocks, 0)"
                           " FROM ip LEFT JOIN day d ON d.ip = ip.ip AND d.day = ?"
                           " ORDER BY ip.ip",
                           -1, &st, NULL) != SQLITE_OK)
        return fail(l, err, errlen, "cannot read");
    sqlite3_bind_int64(st, 1, (sqlite3_int64)today);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        long first = (long)sqlite3_column_int64(st, 1);
        long age = today - first;
        vd_ledger_ip r = {
            .ip = (const char *)sqlite3_column_text(st, 0),
            .first_use = first * DAY_SECS,
            .age_days = age < 0         ? 0
                        : age > INT_MAX ? INT_MAX
                                        : (int)age,
            .used_today = (long)sqlite3_column_int64(st, 4),
            .renews_at = (today + 1) * DAY_SECS,
            .deferrals_today = (long)sqlite3_column_int64(st, 5),
            .blocks_today = (long)sqlite3_column_int64(st, 6),
            .deferrals_total = (long)sqlite3_column_int64(st, 2),
            .blocks_total = (long)sqlite3_column_int64(st, 3),
        };
        if (!r.ip) r.ip = "";
        cb(&r, arg);
    }
    int res = rc == SQLITE_DONE ? 0 : fail(l, err, errlen, "cannot read");
    sqlite3_finalize(st);
    return res;
}

int vd_ledger_each_breaker(vd_ledger *l, const char *ip,
                           void (*cb)(const vd_ledger_breaker *b, void *arg), void *arg, char *err,
                           size_t errlen)
{
    char c[IP_MAX];
    if (canon(l, ip, c, err, errlen) != 0) return -1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(l->db,
                           "SELECT key, until, reason FROM breaker WHERE ip = ? AND until > ?"
                           " ORDER BY key",
                           -1, &st, NULL) != SQLITE_OK)
        return fail(l, err, errlen, "cannot read");
    sqlite3_bind_text(st, 1, c, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)ledger_now(l));
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *k = sqlite3_column_text(st, 0), *r = sqlite3_column_text(st, 2);
        vd_ledger_breaker b = {
            .key = k ? (const char *)k : "",
            .until = (long)sqlite3_column_int64(st, 1),
            .reason = r ? (const char *)r : "",
        };
        cb(&b, arg);
    }
    int res = rc == SQLITE_DONE ? 0 : fail(l, err, errlen, "cannot read");
    sqlite3_finalize(st);
    return res;
}

/* ---- the state directory ---- */

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    while (la > 1 && a[la - 1] == '/')
        la--;
    char *p = malloc(la + 1 + lb + 1);
    if (!p) return NULL;
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
    return p;
}

char *vd_state_dir_path(const char *configured, char *err, size_t errlen)
{
    char *p = NULL;
    if (configured && configured[0]) {
        p = strdup(configured);
    } else if (geteuid() == 0) {
        p = strdup("/var/lib/validora");
    } else {
        const char *x = getenv("XDG_STATE_HOME");
        if (x && x[0] == '/') {
            p = join(x, "validora");
        } else {
            const char *home = getenv("HOME");
            if (!home || home[0] != '/') {
                struct passwd *pw = getpwuid(getuid());
                home = pw && pw->pw_dir && pw->pw_dir[0] == '/' ? pw->pw_dir : NULL;
            }
            if (!home) {
                snprintf(err, errlen,
                         "no state directory: no home directory is known; use --state-dir DIR");
                return NULL;
            }
            p = join(home, ".local/state/validora");
        }
    }
    if (!p) snprintf(err, errlen, "state directory: out of memory");
    return p;
}

char *vd_state_dir(const char *configured, char *err, size_t errlen)
{
    char *p = vd_state_dir_path(configured, err, errlen);
    if (!p) return NULL;
    /* mkdir -p, mode 0700 for every directory made (XDG asks that of ~/.local/state too). */
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0') continue;
        char keep = *s;
        *s = '\0';
        int rc = mkdir(p, 0700);
        int e = errno;
        *s = keep;
        if (rc != 0 && e != EEXIST) {
            char part[PATH_MAX];
            snprintf(part, sizeof part, "%.*s", (int)(s - p), p);
            snprintf(err, errlen, "state directory %s: cannot create %s: %s", p, part, strerror(e));
            free(p);
            return NULL;
        }
        if (!keep) break;
    }
    struct stat sb;
    if (stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "state directory %s: %s", p,
                 stat(p, &sb) != 0 ? strerror(errno) : "not a directory");
        free(p);
        return NULL;
    }
    if (access(p, W_OK | X_OK) != 0) {
        snprintf(err, errlen, "state directory %s: cannot write there: %s", p, strerror(errno));
        free(p);
        return NULL;
    }
    return p;
}

/* ---- one instance per source IP ---- */

int vd_instance_lock(const char *state_dir, const char *source_ip, char *err, size_t errlen)
{
    char c[IP_MAX], msg[128], path[PATH_MAX];
    if (vd_ledger_canon_ip(source_ip, c, sizeof c, msg, sizeof msg) != 0) {
        snprintf(err, errlen, "instance lock: %s", msg);
        return -1;
    }
    int n = snprintf(path, sizeof path, "%s/instance-%s.lock", state_dir, c);
    if (n < 0 || (size_t)n >= sizeof path) {
        snprintf(err, errlen, "instance lock in %s: path too long", state_dir);
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "instance lock %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EWOULDBLOCK) {
            char buf[32] = "";
            ssize_t r = pread(fd, buf, sizeof buf - 1, 0);
            long pid = r > 0 ? strtol(buf, NULL, 10) : 0;
            char who[48];
            if (pid > 0)
                snprintf(who, sizeof who, "pid %ld", pid);
            else
                snprintf(who, sizeof who, "pid unknown");
            char from[96];
            if (!strcmp(c, "any"))
                snprintf(from, sizeof from, "without --source-ip");
            else
                snprintf(from, sizeof from, "from source IP %s", c);
            snprintf(err, errlen,
                     "another validora (%s) is verifying %s with state dir %s; one instance per "
                     "source IP protects its reputation",
                     who, from, state_dir);
        } else {
            snprintf(err, errlen, "instance lock %s: %s", path, strerror(e));
        }
        close(fd);
        return -1;
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != (ssize_t)len) {
        snprintf(err, errlen, "instance lock %s: cannot write the pid: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

void vd_instance_unlock(int fd)
{
    /* The file stays: removing it would let a third process lock a new file of the same name
     * while a second still waits on the old one. */
    if (fd >= 0) close(fd);
}

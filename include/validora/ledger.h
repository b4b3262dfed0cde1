/* ledger.h — the persistent state of a sender's reputation: the ledger of each source IP
 * (STATE_DIR/ledger.sqlite), the state directory, and the one-instance-per-source-IP lock.
 * docs/ledger.md has the schema, the durability choices and the lock.
 *
 * A source IP is written as an IPv4 or IPv6 address (kept in canonical form: "::1", not
 * "0::1"), or NULL / "" / "any" for no --source-ip (the kernel chooses). "Today" is the UTC
 * day; a day's budget renews at the next UTC midnight. Every write is a SQLite transaction:
 * two processes may share one ledger (different source IPs; `ledger show` while a verify
 * runs). A handle belongs to one process: after fork(), open a new one.
 *
 * Owns: the file, its schema and durability; the directory's default and creation; the lock.
 * Does not own: what a budget is or when a breaker opens (the engine decides and tells). */
#ifndef VALIDORA_LEDGER_H
#define VALIDORA_LEDGER_H
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VD_LEDGER_FILE       "ledger.sqlite"
#define VD_LEDGER_KEY_MAX    255   /* bytes of a breaker key; a longer key is refused */
#define VD_LEDGER_REASON_MAX 512   /* bytes of a breaker reason; a longer one is cut */
#define VD_LEDGER_KEEP_DAYS  400   /* day rows older than this are pruned at open */
#define VD_LEDGER_MAX_AGE    36500 /* days vd_ledger_set_age accepts */
/* Servers' paces kept: millions of servers must not grow the file without end. Past this the
 * least recently updated tenth is dropped (those servers start gently again). */
#define VD_LEDGER_PACES_MAX      100000
#define VD_LEDGER_PACE_KEEP_DAYS 180 /* a pace not updated for this long is pruned at open */

typedef struct vd_ledger vd_ledger;

/* Opens (creating) STATE_DIR/ledger.sqlite; NULL with a message naming the file. */
vd_ledger *vd_ledger_open(const char *state_dir, char *err, size_t errlen);
void vd_ledger_close(vd_ledger *l);
/* The last error of a call that has no err argument (unreserve, used_today, note, breakers);
 * "" when none. Valid until the next call on l. */
const char *vd_ledger_error(const vd_ledger *l);

/* The IP's age in whole days (0 on its first day); *is_new is true when the IP was not in the
 * ledger before this call (it is recorded now, first use = today). -1 on error. */
int vd_ledger_age(vd_ledger *l, const char *ip, bool *is_new, char *err, size_t errlen);
/* Sets the IP's first use to `days` days ago (for an IP with history from before Validora);
 * 0 <= days <= VD_LEDGER_MAX_AGE. Returns 0 or -1 with err. */
int vd_ledger_set_age(vd_ledger *l, const char *ip, int days, char *err, size_t errlen);

/* Atomically takes up to `want` verifications of today's budget `budget` for ip: returns how
 * many were granted (0 when spent), -1 on error. Granted ones count as used at once (committed
 * before return), so a crash can only under-spend. Records the IP (first use today) when it
 * is new. */
long vd_ledger_reserve(vd_ledger *l, const char *ip, long want, long budget, char *err,
                       size_t errlen);
/* Gives back reserved verifications that were not used (at a clean exit). Only what this
 * handle reserved today is given back: after midnight, yesterday's reservations stay spent
 * (they cannot be spent today). Returns 0 or -1 (vd_ledger_error). */
int vd_ledger_unreserve(vd_ledger *l, const char *ip, long n);
/* Verifications used today, and the unix time the day's budget renews (next UTC midnight);
 * renews_at may be NULL. -1 on error (vd_ledger_error). */
long vd_ledger_used_today(vd_ledger *l, const char *ip, long *renews_at);

/* Counts a deferral (block false) or a block seen (for `ledger show` and the age logic).
 * Returns 0 or -1 (vd_ledger_error). */
int vd_ledger_note(vd_ledger *l, const char *ip, bool block);

/* Deferrals and blocks noted over the last `days` UTC days, today included (days < 1 counts
 * today only), for the warm-up's "clean history". Records nothing. 0 or -1 (vd_ledger_error). */
int vd_ledger_recent(vd_ledger *l, const char *ip, int days, long *deferrals, long *blocks);

/* Circuit breakers: open until `until` (unix seconds) for (ip, key), with a reason; an until
 * in the past closes it. get returns 0 and until=0 (reason "") when none is open; reason may
 * be NULL. Both return -1 on error (vd_ledger_error). */
int vd_ledger_breaker_set(vd_ledger *l, const char *ip, const char *key, long until,
                          const char *reason);
int vd_ledger_breaker_get(vd_ledger *l, const char *ip, const char *key, long *until, char *reason,
                          size_t len);

/* What the limiter learned of one server (a key: "m:IP", "n:PREFIX", "p:PROVIDER"): rates a
 * minute, times in unix seconds. */
typedef struct vd_ledger_pace {
    double rate;     /* the pace last used without a deferral */
    double ceil;     /* the ceiling a deferral taught (0: none) */
    long conns;      /* connections at once the server allowed (0: not learned) */
    double sessions; /* new sessions a minute it allowed (0: not learned) */
    long deferred_at;
    long updated_at; /* 0 on set: now */
    long deferrals;
} vd_ledger_pace;

/* Writes (ip, key)'s pace, keeping the table bounded (VD_LEDGER_PACES_MAX). 0 or -1. */
int vd_ledger_pace_set(vd_ledger *l, const char *ip, const char *key, const vd_ledger_pace *p);
/* 0 with *out, 1 when none is kept, -1 on error. */
int vd_ledger_pace_get(vd_ledger *l, const char *ip, const char *key, vd_ledger_pace *out);
/* Calls cb for ip's paces (only those with a deferral when throttled_only), the most recently
 * deferred first. 0 or -1 with err. */
int vd_ledger_each_pace(vd_ledger *l, const char *ip, bool throttled_only,
                        void (*cb)(const char *key, const vd_ledger_pace *p, void *arg), void *arg,
                        char *err, size_t errlen);
/* A pace's key as a reader says it: "m:192.0.2.1" is "server 192.0.2.1", "n:PREFIX"
 * "network PREFIX", "p:google" "provider google"; a key of another shape is written whole.
 * The keys' prefixes have one home, the limiter (engine/limiter.c), which implements this. */
void vd_ledger_key_words(const char *key, char *out, size_t len);

/* ---- reading the whole ledger (`validora ledger show`) ---- */

typedef struct vd_ledger_ip {
    const char *ip;       /* canonical, or "any" */
    long first_use;       /* unix time of the UTC midnight that began its first day */
    int age_days;         /* whole days since then (0 on the first day) */
    long used_today;      /* verifications used today */
    long renews_at;       /* when today's budget renews (next UTC midnight) */
    long deferrals_today; /* deferrals seen today */
    long blocks_today;    /* blocks seen today */
    long deferrals_total; /* in all (kept when day rows are pruned) */
    long blocks_total;
} vd_ledger_ip;

typedef struct vd_ledger_breaker {
    const char *key;
    long until; /* unix seconds; always in the future */
    const char *reason;
} vd_ledger_breaker;

/* Calls cb for every source IP in the ledger, in order of address text; the strings are
 * valid during the call. Records nothing. Returns 0 or -1 with err. */
int vd_ledger_each_ip(vd_ledger *l, void (*cb)(const vd_ledger_ip *ip, void *arg), void *arg,
                      char *err, size_t errlen);
/* Calls cb for every open breaker of ip, in order of key. Returns 0 or -1 with err. */
int vd_ledger_each_breaker(vd_ledger *l, const char *ip,
                           void (*cb)(const vd_ledger_breaker *b, void *arg), void *arg, char *err,
                           size_t errlen);

/* ---- the state directory ---- */

/* The state directory: configured when not NULL or "", else /var/lib/validora for root, else
 * $XDG_STATE_HOME/validora (an absolute $XDG_STATE_HOME) or ~/.local/state/validora. Creates
 * it (mode 0700, missing parents too) and checks it can be written. Returns a malloc'd path,
 * or NULL with a message naming it. */
char *vd_state_dir(const char *configured, char *err, size_t errlen);
/* The same path without creating or checking anything (NULL only when no home is known). */
char *vd_state_dir_path(const char *configured, char *err, size_t errlen);

/* Writes ip in canonical form into out ("any" for NULL, "" or "any"). Returns 0, or -1 with
 * a message when it is not an IP address. */
int vd_ledger_canon_ip(const char *ip, char *out, size_t outlen, char *err, size_t errlen);

/* ---- one instance per source IP ---- */

/* Takes STATE_DIR/instance-<ip or "any">.lock (flock LOCK_EX|LOCK_NB; the pid is written
 * inside) and returns its fd, to hold while verifying; or -1 with a message naming the
 * holder's pid when another process has it. The kernel lets go when the process ends, crash
 * or not. The fd is close-on-exec; a forked child shares the lock. */
int vd_instance_lock(const char *state_dir, const char *source_ip, char *err, size_t errlen);
void vd_instance_unlock(int fd);

#ifdef __cplusplus
}
#endif
#endif

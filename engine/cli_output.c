/* cli_output.c — the records file of `validora verify -o FILE` (cli_output.h): the open
 * policy (an existing non-empty FILE is refused without --force or --resume: a typo in a
 * command line must not wipe a day of verifications), --resume's read-back and repair, the
 * multiset of addresses already done, the file lock, and fdatasync every --sync seconds.
 *
 * Resume keeps exactly one final record per input line: complete records stay where they are,
 * a torn tail (a record cut short by a kill or a crash, or the zeros a power loss can leave
 * past the last synced block) is cut off, and records with reason `deferred` are dropped by
 * writing the kept ones to FILE.resume-tmp, syncing it and renaming it over FILE (atomic: a
 * crash leaves either file whole). So `validora cat FILE` shows every address once.
 *
 * Owns: that policy and its messages, the lock, the sync timer.
 * Does not own: the record format (record.c), reading the input, verifying (cli_verify.c). */
#include "cli_output.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <event2/event.h>

#define TMP_SUFFIX ".resume-tmp" /* beside FILE, so the rename stays on one file system */

/* ---- the multiset of addresses with a kept record (open addressing, FNV-1a) ---- */

typedef struct slot {
    char *key; /* NULL: empty */
    size_t len;
    uint64_t hash;
    long n; /* kept records of this line not yet matched by an input line */
} slot;

struct vd_out {
    FILE *fp;
    bool regular; /* a regular file: locked and synced (not /dev/null, a FIFO) */
    double sync_s;
    bool dirty;     /* written since the last fdatasync */
    int sync_errno; /* a failed timed sync, reported by the next vd_out_wrote */
    struct event *tick;
    vd_out_found found;
    slot *slots;
    size_t cap, used;
};

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211u;
    return h;
}

static slot *set_find(vd_out *o, const char *key, size_t len, uint64_t h)
{
    size_t i = (size_t)h & (o->cap - 1);
    while (o->slots[i].key &&
           !(o->slots[i].hash == h && o->slots[i].len == len && !memcmp(o->slots[i].key, key, len)))
        i = (i + 1) & (o->cap - 1);
    return &o->slots[i];
}

static int set_grow(vd_out *o)
{
    size_t cap = o->cap ? o->cap * 2 : 1024;
    slot *old = o->slots;
    size_t oldcap = o->cap;
    if (!(o->slots = calloc(cap, sizeof *o->slots))) {
        o->slots = old;
        return -1;
    }
    o->cap = cap;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].key) *set_find(o, old[i].key, old[i].len, old[i].hash) = old[i];
    free(old);
    return 0;
}

static int set_add(vd_out *o, const char *key, size_t len)
{
    if ((o->used + 1) * 10 > o->cap * 7 && set_grow(o) != 0) return -1;
    uint64_t h = fnv1a(key, len);
    slot *s = set_find(o, key, len, h);
    if (!s->key) {
        if (!(s->key = malloc(len ? len : 1))) return -1;
        if (len) memcpy(s->key, key, len);
        s->len = len;
        s->hash = h;
        o->used++;
    }
    s->n++;
    return 0;
}

bool vd_out_skip(vd_out *o, const char *email, size_t len)
{
    if (!o || !o->used) return false;
    slot *s = set_find(o, email, len, fnv1a(email, len));
    if (!s->key || s->n == 0) return false;
    s->n--;
    return true;
}

/* ---- helpers ---- */

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* fsync of the directory holding path: a new or renamed name survives a power loss. */
static int sync_dir(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Locks fd for this process, and checks that path still names it (not a file renamed over it
 * by another resume in the meantime). */
static int lock_file(int fd, const char *path, char *err, size_t errlen)
{
    if (flock(fd, LOCK_EX | LOCK_NB) != 0)
        return errno == EWOULDBLOCK
                   ? fail(err, errlen, "%s: in use by another validora verify (it holds the lock)",
                          path)
                   : fail(err, errlen, "%s: cannot lock it: %s", path, strerror(errno));
    struct stat a, b;
    if (fstat(fd, &a) != 0 || stat(path, &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev)
        return fail(err, errlen, "%s: replaced while it was being opened: try again", path);
    return 0;
}

static int status_index(const char *s, size_t n)
{
    static const char *const names[] = {"deliverable", "undeliverable", "risky"};
    for (int i = 0; i < 3; i++)
        if (strlen(names[i]) == n && !memcmp(names[i], s, n)) return i;
    return 3;
}

/* Whether every byte of fd from off to its end is zero: what a power loss leaves when the
 * size reached the disk and the data did not. */
static bool zero_tail(int fd, long long off)
{
    char buf[65536];
    ssize_t got;
    while ((got = pread(fd, buf, sizeof buf, (off_t)off)) > 0) {
        for (ssize_t i = 0; i < got; i++)
            if (buf[i]) return false;
        off += got;
    }
    return got == 0;
}

/* ---- resume: reading back ---- */

typedef struct scan_result {
    uint64_t complete;  /* complete records, kept or not */
    long long good_end; /* where the complete records end */
} scan_result;

/* One record read back: counted, and its address added to the done set unless deferred. */
static int take_record(vd_out *o, const vd_record_view *rec, uint64_t at, const char *path,
                       char *err, size_t errlen)
{
    const char *email, *status, *reason;
    size_t elen, slen, rlen;
    if (vd_record_str(rec, "email", &email, &elen) != 0 ||
        vd_record_str(rec, "status", &status, &slen) != 0)
        return fail(err, errlen,
                    "%s: the map at byte %llu has no email or status, so it is not a validora "
                    "record: not resuming",
                    path, (unsigned long long)at);
    if (vd_record_str(rec, "reason", &reason, &rlen) == 0 && rlen == 8 &&
        !memcmp(reason, "deferred", 8)) {
        o->found.deferred++;
        return 0;
    }
    if (set_add(o, email, elen) != 0) return fail(err, errlen, "out of memory");
    o->found.kept++;
    o->found.by_status[status_index(status, slen)]++;
    return 0;
}

static int read_back(vd_out *o, const char *path, int fd, scan_result *res, char *err,
                     size_t errlen)
{
    FILE *in = fopen(path, "rbe");
    if (!in) return fail(err, errlen, "%s: %s", path, strerror(errno));
    vd_reader *r = vd_reader_new(in);
    if (!r) {
        fclose(in);
        return fail(err, errlen, "out of memory");
    }
    vd_record_view rec;
    vd_read_status st = VD_READ_END;
    int rc = 0;
    while (rc == 0 && (st = vd_reader_next(r, &rec)) == VD_READ_RECORD)
        rc = take_record(o, &rec, vd_reader_offset(r), path, err, errlen);
    res->complete = vd_reader_records(r);
    res->good_end = (long long)vd_reader_offset(r);
    struct stat sb;
    long long size = fstat(fd, &sb) == 0 ? (long long)sb.st_size : res->good_end;
    if (rc != 0 || st == VD_READ_END) {
        /* done */
    } else if (st == VD_READ_TRUNCATED ||
               ((st == VD_READ_NOT_MAP || st == VD_READ_INVALID) && zero_tail(fd, res->good_end))) {
        o->found.cut_at = res->good_end;
        o->found.cut_bytes = size - res->good_end;
        o->found.cut_zeros = st != VD_READ_TRUNCATED;
    } else if (st == VD_READ_NOT_MAP && res->complete == 0) {
        rc = fail(err, errlen,
                  "%s: not a msgpack record stream (its first object is not a map: written with "
                  "--format json or csv?); --resume carries on msgpack files only",
                  path);
    } else if (st == VD_READ_IO_ERROR || st == VD_READ_NOMEM) {
        rc = fail(err, errlen, "%s: %s", path, vd_reader_error(r));
    } else {
        rc = fail(err, errlen,
                  "%s: damaged, not just a torn last record: %s; not resuming (its first %lld "
                  "bytes are whole: head -c %lld)",
                  path, vd_reader_error(r), res->good_end, res->good_end);
    }
    vd_reader_free(r);
    fclose(in);
    return rc;
}

/* Writes the kept records (not the deferred ones, not a torn tail) to FILE.resume-tmp, syncs
 * it and renames it over FILE. Returns the new file's descriptor (locked), or -1. */
static int rewrite(const char *path, int oldfd, const scan_result *res, char *err, size_t errlen)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s%s", path, TMP_SUFFIX);
    struct stat sb;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) return fail(err, errlen, "%s: %s", tmp, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) { /* before it has FILE's name */
        close(fd);
        return fail(err, errlen, "%s: cannot lock it: %s", tmp, strerror(errno));
    }
    if (fstat(oldfd, &sb) == 0) (void)fchmod(fd, sb.st_mode & 07777);
    FILE *in = fopen(path, "rbe");
    int dfd = dup(fd);
    FILE *out = dfd >= 0 ? fdopen(dfd, "wb") : NULL;
    if (!out && dfd >= 0) close(dfd);
    vd_reader *r = in ? vd_reader_new(in) : NULL;
    int rc = in && out && r ? 0 : fail(err, errlen, "%s: %s", in ? tmp : path, strerror(errno));
    vd_record_view rec;
    for (uint64_t i = 0; rc == 0 && i < res->complete; i++) {
        const char *reason;
        size_t rlen;
        if (vd_reader_next(r, &rec) != VD_READ_RECORD)
            rc = fail(err, errlen, "%s: changed while it was being read", path);
        else if (vd_record_str(&rec, "reason", &reason, &rlen) == 0 && rlen == 8 &&
                 !memcmp(reason, "deferred", 8))
            continue;
        else if (vd_record_fprint(&rec, VD_FMT_MSGPACK, out) != 0)
            rc = fail(err, errlen, "%s: %s", tmp, strerror(errno));
    }
    if (rc == 0 && (fflush(out) != 0 || fdatasync(fd) != 0))
        rc = fail(err, errlen, "%s: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = fail(err, errlen, "renaming %s to %s: %s", tmp, path, strerror(errno));
    if (rc == 0) (void)sync_dir(path);
    vd_reader_free(r);
    if (in) fclose(in);
    if (out) fclose(out);
    if (rc != 0) {
        unlink(tmp);
        close(fd);
        return -1;
    }
    if (lock_file(fd, path, err, errlen) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads FILE back and repairs it for appending. Returns the descriptor to append to (fd, or
 * the rewritten file's), or -1. */
static int resume(vd_out *o, const char *path, int fd, char *err, size_t errlen)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s%s", path, TMP_SUFFIX);
    (void)unlink(tmp); /* a rewrite a crash cut short: FILE itself is whole, and ours (locked) */
    scan_result res = {0};
    if (read_back(o, path, fd, &res, err, errlen) != 0) return -1;
    if (o->found.deferred > 0) {
        int nfd = rewrite(path, fd, &res, err, errlen);
        if (nfd < 0) return -1;
        close(fd); /* and its lock: the name is the new file's now */
        return nfd;
    }
    if (o->found.cut_at >= 0 && (ftruncate(fd, (off_t)o->found.cut_at) != 0 || fdatasync(fd) != 0))
        return fail(err, errlen, "%s: cutting off the torn last record: %s", path, strerror(errno));
    return fd;
}

/* ---- open, write, close ---- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    vd_out *o = arg;
    if (!o->dirty || o->sync_errno) return;
    o->dirty = false;
    if (fdatasync(fileno(o->fp)) != 0) o->sync_errno = errno;
}

/* The descriptor of a regular FILE, created if need be, locked; -1 when FILE exists and is not a
 * regular file (*other set) or on error. */
static int open_regular(const char *path, bool *other, bool *existed, char *err, size_t errlen)
{
    struct stat sb;
    *existed = stat(path, &sb) == 0;
    if (*existed && !S_ISREG(sb.st_mode)) {
        *other = true;
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) return fail(err, errlen, "%s: %s", path, strerror(errno));
    if (lock_file(fd, path, err, errlen) != 0) {
        close(fd);
        return -1;
    }
    if (!*existed) (void)sync_dir(path);
    return fd;
}

vd_out *vd_out_open(struct event_base *base, const vd_out_opts *opts, char *err, size_t errlen)
{
    vd_out *o = calloc(1, sizeof *o);
    if (!o) {
        fail(err, errlen, "out of memory");
        return NULL;
    }
    o->sync_s = opts->sync_s;
    o->found.cut_at = -1;
    bool other = false, existed = false;
    int fd = open_regular(opts->path, &other, &existed, err, errlen);
    o->found.existed = existed;
    if (other) {
        /* /dev/null, a FIFO, a terminal: nothing to keep, lock or sync */
        if (opts->resume)
            fail(err, errlen, "%s: --resume needs a regular file", opts->path);
        else if (!(o->fp = fopen(opts->path, "we")))
            fail(err, errlen, "%s: %s", opts->path, strerror(errno));
        if (!o->fp) goto fail;
        return o;
    }
    if (fd < 0) goto fail;
    struct stat sb;
    if (!opts->resume && fstat(fd, &sb) == 0 && sb.st_size > 0) {
        if (!opts->force) {
            fail(err, errlen,
                 "%s exists and holds %lld bytes: --resume carries on the run that wrote it, "
                 "--force overwrites it",
                 opts->path, (long long)sb.st_size);
            close(fd);
            goto fail;
        }
        if (ftruncate(fd, 0) != 0) {
            fail(err, errlen, "%s: %s", opts->path, strerror(errno));
            close(fd);
            goto fail;
        }
    }
    if (opts->resume) {
        /* FILE as a symbolic link's target: the rewrite replaces the file, not the link */
        char *real = realpath(opts->path, NULL);
        int nfd = resume(o, real ? real : opts->path, fd, err, errlen);
        free(real);
        if (nfd < 0) {
            close(fd);
            goto fail;
        }
        fd = nfd;
    }
    o->regular = true;
    if (lseek(fd, 0, SEEK_END) < 0 || !(o->fp = fdopen(fd, "ab"))) {
        fail(err, errlen, "%s: %s", opts->path, strerror(errno));
        close(fd);
        goto fail;
    }
    if (o->sync_s > 0) {
        struct timeval tv = {(time_t)o->sync_s,
                             (suseconds_t)((o->sync_s - (double)(time_t)o->sync_s) * 1e6)};
        if (!(o->tick = event_new(base, -1, EV_PERSIST, on_tick, o)) || event_add(o->tick, &tv)) {
            fail(err, errlen, "out of memory");
            goto fail;
        }
    }
    return o;
fail:
    vd_out_close(o, NULL, 0);
    return NULL;
}

FILE *vd_out_file(vd_out *o)
{
    return o->fp;
}

const vd_out_found *vd_out_found_get(const vd_out *o)
{
    return &o->found;
}

int vd_out_wrote(vd_out *o)
{
    if (!o->regular) return 0;
    if (o->sync_errno) {
        errno = o->sync_errno;
        return -1;
    }
    if (o->sync_s > 0) {
        o->dirty = true;
        return 0;
    }
    return fdatasync(fileno(o->fp));
}

int vd_out_close(vd_out *o, char *err, size_t errlen)
{
    if (!o) return 0;
    int rc = 0;
    if (o->tick) event_free(o->tick);
    if (o->fp) {
        if (fflush(o->fp) != 0 || (o->regular && fdatasync(fileno(o->fp)) != 0)) rc = -1;
        if (o->sync_errno) {
            errno = o->sync_errno;
            rc = -1;
        }
        if (fclose(o->fp) != 0) rc = -1; /* and the lock with it */
        if (rc != 0 && err) fail(err, errlen, "writing the records: %s", strerror(errno));
    }
    for (size_t i = 0; i < o->cap; i++)
        free(o->slots[i].key);
    free(o->slots);
    free(o);
    return rc;
}

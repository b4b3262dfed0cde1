/* resume.c — carrying on from a msgpack record stream (validora/resume.h): the one policy for
 * which records are kept, which tail is cut and which damage is refused, and the multiset of
 * input lines already done (open addressing, FNV-1a).
 *
 * Owns: that policy and its messages, the multiset, cutting a torn tail, copying kept records.
 * Does not own: msgpack (record.c's reader), which file is read, locks, renames, printing. */
#include "validora/resume.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct slot {
    char *key; /* NULL: empty */
    size_t len;
    uint64_t hash;
    uint64_t n; /* kept records of this line not yet taken */
} slot;

struct vd_resume {
    unsigned flags;
    vd_resume_found found;
    slot *slots;
    size_t cap, used; /* cap: 0 or a power of two */
};

/* ---- the multiset ---- */

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211u;
    return h;
}

static slot *set_find(const vd_resume *r, const char *key, size_t len, uint64_t h)
{
    size_t i = (size_t)h & (r->cap - 1);
    while (r->slots[i].key &&
           !(r->slots[i].hash == h && r->slots[i].len == len && !memcmp(r->slots[i].key, key, len)))
        i = (i + 1) & (r->cap - 1);
    return &r->slots[i];
}

static int set_grow(vd_resume *r)
{
    size_t cap = r->cap ? r->cap * 2 : 1024, oldcap = r->cap;
    slot *old = r->slots, *fresh = calloc(cap, sizeof *fresh);
    if (!fresh) return -1;
    r->slots = fresh;
    r->cap = cap;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].key) *set_find(r, old[i].key, old[i].len, old[i].hash) = old[i];
    free(old);
    return 0;
}

static int set_add(vd_resume *r, const char *key, size_t len)
{
    if ((r->used + 1) * 10 > r->cap * 7 && set_grow(r) != 0) return -1;
    uint64_t h = fnv1a(key, len);
    slot *s = set_find(r, key, len, h);
    if (!s->key) {
        if (!(s->key = malloc(len ? len : 1))) return -1;
        if (len) memcpy(s->key, key, len);
        s->len = len;
        s->hash = h;
        r->used++;
    }
    s->n++;
    return 0;
}

bool vd_resume_take(vd_resume *r, const char *line, size_t len)
{
    if (!r || !r->used) return false;
    slot *s = set_find(r, line, len, fnv1a(line, len));
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

/* Whether every byte of fd from off to its end is zero. */
static bool zero_tail(int fd, uint64_t off)
{
    char buf[65536];
    ssize_t got;
    while ((got = pread(fd, buf, sizeof buf, (off_t)off)) > 0) {
        for (ssize_t i = 0; i < got; i++)
            if (buf[i]) return false;
        off += (uint64_t)got;
    }
    return got == 0;
}

static bool is_deferred(const vd_record_view *rec)
{
    const char *reason;
    size_t n;
    return vd_record_str(rec, "reason", &reason, &n) == 0 && n == strlen(VD_REASON_DEFERRED) &&
           !memcmp(reason, VD_REASON_DEFERRED, n);
}

/* A record left out of the done set: deferred, and the caller redoes those. */
static bool redone(const vd_resume *r, const vd_record_view *rec)
{
    return !(r->flags & VD_RESUME_DEFERRED_DONE) && is_deferred(rec);
}

/* ---- the scan ---- */

vd_resume *vd_resume_new(unsigned flags)
{
    vd_resume *r = calloc(1, sizeof *r);
    if (!r) {
        errno = ENOMEM;
        return NULL;
    }
    r->flags = flags;
    return r;
}

/* One complete record: its line done, or deferred. */
static int take_record(vd_resume *r, const vd_record_view *rec, uint64_t at, const char *name,
                       char *err, size_t errlen)
{
    const char *email, *status;
    size_t elen, slen;
    if (vd_record_str(rec, "email", &email, &elen) != 0 ||
        vd_record_str(rec, "status", &status, &slen) != 0)
        return fail(err, errlen,
                    "%s: the map at byte %llu has no email or status, so it is not a validora "
                    "record: not resuming",
                    name, (unsigned long long)at);
    if (redone(r, rec)) {
        r->found.deferred++;
        return 0;
    }
    if (set_add(r, email, elen) != 0) return fail(err, errlen, "out of memory");
    vd_status k = VD_STATUS_UNKNOWN;
    (void)vd_status_parse(status, slen, &k);
    r->found.kept++;
    r->found.by_status[k]++;
    return 0;
}

/* After the loop stopped on st: a torn tail noted, or the refusal. */
static int judge_end(vd_resume *r, vd_reader *rd, vd_read_status st, int fd, const char *name,
                     char *err, size_t errlen)
{
    vd_resume_found *f = &r->found;
    if (st == VD_READ_END) return 0;
    struct stat sb;
    uint64_t size = fstat(fd, &sb) == 0 ? (uint64_t)sb.st_size : f->good_end;
    bool zeros = (st == VD_READ_NOT_MAP || st == VD_READ_INVALID) && zero_tail(fd, f->good_end);
    if (st == VD_READ_TRUNCATED || zeros) {
        f->tail_bytes = size > f->good_end ? size - f->good_end : 0;
        f->tail_zeros = zeros;
        if (zeros)
            snprintf(f->tail, sizeof f->tail, "%llu zero bytes at byte %llu (a power cut)",
                     (unsigned long long)f->tail_bytes, (unsigned long long)f->good_end);
        else
            snprintf(f->tail, sizeof f->tail, "%s", vd_reader_error(rd));
        return 0;
    }
    if (st == VD_READ_NOT_MAP && f->records == 0)
        return fail(err, errlen,
                    "%s: not a msgpack record stream (its first object is not a map: written as "
                    "JSON Lines or CSV?); only a msgpack stream can be carried on",
                    name);
    if (st == VD_READ_IO_ERROR || st == VD_READ_NOMEM)
        return fail(err, errlen, "%s: %s", name, vd_reader_error(rd));
    return fail(err, errlen,
                "%s: damaged, not just a torn last record: %s; not resuming (its first %llu "
                "bytes are whole: head -c %llu)",
                name, vd_reader_error(rd), (unsigned long long)f->good_end,
                (unsigned long long)f->good_end);
}

int vd_resume_scan(vd_resume *r, FILE *in, const char *name, char *err, size_t errlen)
{
    vd_reader *rd = vd_reader_new(in);
    if (!rd) return fail(err, errlen, "out of memory");
    vd_record_view rec;
    vd_read_status st = VD_READ_END;
    int rc = 0;
    while (rc == 0 && (st = vd_reader_next(rd, &rec)) == VD_READ_RECORD)
        rc = take_record(r, &rec, vd_reader_offset(rd), name, err, errlen);
    r->found.records = vd_reader_records(rd);
    r->found.good_end = vd_reader_offset(rd);
    if (rc == 0) rc = judge_end(r, rd, st, fileno(in), name, err, errlen);
    vd_reader_free(rd);
    return rc;
}

const vd_resume_found *vd_resume_found_get(const vd_resume *r)
{
    return &r->found;
}

int vd_resume_cut(const vd_resume *r, int fd, const char *name, char *err, size_t errlen)
{
    if (r->found.tail_bytes == 0) return 0;
    if (ftruncate(fd, (off_t)r->found.good_end) != 0 || fdatasync(fd) != 0)
        return fail(err, errlen, "%s: cutting off the torn tail: %s", name, strerror(errno));
    return 0;
}

int vd_resume_copy_kept(const vd_resume *r, FILE *in, FILE *out, const char *name, char *err,
                        size_t errlen)
{
    vd_reader *rd = vd_reader_new(in);
    if (!rd) return fail(err, errlen, "out of memory");
    vd_record_view rec;
    int rc = 0;
    for (uint64_t i = 0; rc == 0 && i < r->found.records; i++) {
        if (vd_reader_next(rd, &rec) != VD_READ_RECORD)
            rc = fail(err, errlen, "%s: changed while it was being read", name);
        else if (!redone(r, &rec) && vd_record_fprint(&rec, VD_FMT_MSGPACK, out) != 0)
            rc = fail(err, errlen, "writing the kept records of %s: %s", name, strerror(errno));
    }
    vd_reader_free(rd);
    return rc;
}

void vd_resume_free(vd_resume *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->cap; i++)
        free(r->slots[i].key);
    free(r->slots);
    free(r);
}

/* test_resume.c — carrying on from a record stream (validora/resume.h): the lines done as a
 * multiset (duplicates, NUL bytes), deferred records redone or counted as done, a torn tail and
 * a power cut's zeros cut off, damage before the end refused with where it is (the file left as
 * it was), a stream that is not msgpack records, copying the kept records. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "validora/resume.h" /* first: the public header stands on its own */
#include "check.h"

static vd_record rec_of(const char *email, vd_status st, const char *reason)
{
    return (vd_record){
        .email = email,
        .status = vd_status_name(st),
        .reason = reason,
        .tls = VD_UNSET,
        .tls_verified = VD_UNSET,
        .catch_all = VD_UNSET,
    };
}

static void put(FILE *f, const vd_record *r)
{
    vd_writer *w = vd_writer_new(f, VD_FMT_MSGPACK);
    CHECK(w && vd_writer_put(w, r) == 0);
    vd_writer_free(w);
}

static void put_bytes(FILE *f, const void *p, size_t n)
{
    CHECK(fwrite(p, 1, n, f) == n && fflush(f) == 0);
}

static long size_of(FILE *f)
{
    fflush(f);
    struct stat sb;
    return fstat(fileno(f), &sb) == 0 ? (long)sb.st_size : -1;
}

/* A scan of f from its start. */
static int scan(vd_resume *r, FILE *f, char *err, size_t errlen)
{
    fflush(f);
    rewind(f);
    err[0] = '\0';
    return vd_resume_scan(r, f, "FILE", err, errlen);
}

static void test_multiset(void)
{
    FILE *f = tmpfile();
    vd_record a = rec_of("a@x.test", VD_STATUS_DELIVERABLE, "accepted");
    vd_record b = rec_of("b@x.test", VD_STATUS_UNDELIVERABLE, "mailbox_not_found");
    vd_record nul = rec_of("n\0l@x.test", VD_STATUS_RISKY, "catch_all");
    nul.email_len = 10;
    put(f, &a);
    put(f, &b);
    put(f, &a);
    put(f, &nul);
    vd_resume *r = vd_resume_new(0);
    char err[512];
    CHECK(scan(r, f, err, sizeof err) == 0);
    const vd_resume_found *found = vd_resume_found_get(r);
    CHECK(found->records == 4 && found->kept == 4 && found->deferred == 0);
    CHECK(found->by_status[VD_STATUS_DELIVERABLE] == 2);
    CHECK(found->by_status[VD_STATUS_UNDELIVERABLE] == 1);
    CHECK(found->by_status[VD_STATUS_RISKY] == 1 && found->by_status[VD_STATUS_UNKNOWN] == 0);
    CHECK(found->good_end == (uint64_t)size_of(f) && found->tail_bytes == 0 && !found->tail[0]);
    /* a line given twice is skipped twice, the third time it is verified */
    CHECK(vd_resume_take(r, "a@x.test", 8));
    CHECK(vd_resume_take(r, "a@x.test", 8));
    CHECK(!vd_resume_take(r, "a@x.test", 8));
    CHECK(vd_resume_take(r, "b@x.test", 8) && !vd_resume_take(r, "b@x.test", 8));
    CHECK(!vd_resume_take(r, "B@x.test", 8)); /* byte for byte */
    CHECK(!vd_resume_take(r, "n", 1));        /* not cut at the NUL */
    CHECK(vd_resume_take(r, "n\0l@x.test", 10));
    CHECK(!vd_resume_take(r, "c@x.test", 8));
    CHECK(!vd_resume_take(NULL, "a@x.test", 8));
    vd_resume_free(r);
    fclose(f);
}

static void test_many(void)
{
    FILE *f = tmpfile();
    char email[32];
    for (int i = 0; i < 3000; i++) { /* past the first table size: it grows */
        snprintf(email, sizeof email, "u%d@x.test", i % 1500);
        vd_record a = rec_of(email, VD_STATUS_DELIVERABLE, "accepted");
        put(f, &a);
    }
    vd_resume *r = vd_resume_new(0);
    char err[512];
    CHECK(scan(r, f, err, sizeof err) == 0 && vd_resume_found_get(r)->kept == 3000);
    int taken = 0;
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 1500; i++) {
            snprintf(email, sizeof email, "u%d@x.test", i);
            taken += vd_resume_take(r, email, strlen(email));
        }
    CHECK(taken == 3000);
    vd_resume_free(r);
    fclose(f);
}

static void test_empty(void)
{
    FILE *f = tmpfile();
    vd_resume *r = vd_resume_new(0);
    char err[512];
    CHECK(scan(r, f, err, sizeof err) == 0);
    const vd_resume_found *found = vd_resume_found_get(r);
    CHECK(found->records == 0 && found->kept == 0 && found->good_end == 0 && !found->tail_bytes);
    CHECK(!vd_resume_take(r, "", 0));
    CHECK(vd_resume_cut(r, fileno(f), "FILE", err, sizeof err) == 0);
    vd_resume_free(r);
    fclose(f);
}

/* Copies what r keeps of f into a new tmpfile and returns its bytes. */
static char *kept_bytes(const vd_resume *r, FILE *f, long *len)
{
    FILE *out = tmpfile();
    char err[512];
    rewind(f);
    CHECK(vd_resume_copy_kept(r, f, out, "FILE", err, sizeof err) == 0);
    *len = size_of(out);
    char *p = calloc(1, (size_t)*len + 1);
    rewind(out);
    CHECK(fread(p, 1, (size_t)*len, out) == (size_t)*len);
    fclose(out);
    return p;
}

static void test_deferred(void)
{
    FILE *f = tmpfile(), *only_a = tmpfile();
    vd_record a = rec_of("a@x.test", VD_STATUS_DELIVERABLE, "accepted");
    vd_record d = rec_of("d@x.test", VD_STATUS_UNKNOWN, VD_REASON_DEFERRED);
    vd_record t = rec_of("t@x.test", VD_STATUS_UNKNOWN, "timeout");
    put(f, &d);
    put(f, &a);
    put(f, &d);
    put(f, &t);
    put(only_a, &a);
    put(only_a, &t);
    char err[512];

    /* verify --resume: deferred records are redone, and left out of the copy */
    vd_resume *r = vd_resume_new(0);
    CHECK(scan(r, f, err, sizeof err) == 0);
    const vd_resume_found *found = vd_resume_found_get(r);
    CHECK(found->records == 4 && found->kept == 2 && found->deferred == 2);
    CHECK(found->by_status[VD_STATUS_UNKNOWN] == 1); /* the timeout: an answer, kept */
    CHECK(!vd_resume_take(r, "d@x.test", 8));
    CHECK(vd_resume_take(r, "t@x.test", 8));
    long n;
    char *copy = kept_bytes(r, f, &n);
    long want_n = size_of(only_a);
    char *want = calloc(1, (size_t)want_n + 1);
    rewind(only_a);
    CHECK(fread(want, 1, (size_t)want_n, only_a) == (size_t)want_n);
    CHECK(n == want_n && !memcmp(copy, want, (size_t)n));
    free(copy);
    vd_resume_free(r);

    /* a serve job: a deferred record is the job's answer */
    r = vd_resume_new(VD_RESUME_DEFERRED_DONE);
    CHECK(scan(r, f, err, sizeof err) == 0);
    found = vd_resume_found_get(r);
    CHECK(found->kept == 4 && found->deferred == 0 && found->by_status[VD_STATUS_UNKNOWN] == 3);
    CHECK(vd_resume_take(r, "d@x.test", 8) && vd_resume_take(r, "d@x.test", 8));
    copy = kept_bytes(r, f, &n);
    CHECK(n == size_of(f));
    free(copy);
    vd_resume_free(r);
    free(want);
    fclose(f);
    fclose(only_a);
}

/* Two good records in a new tmpfile; *good is their length. */
static FILE *two_records(long *good)
{
    FILE *f = tmpfile();
    vd_record a = rec_of("a@x.test", VD_STATUS_DELIVERABLE, "accepted");
    vd_record b = rec_of("b@x.test", VD_STATUS_RISKY, "catch_all");
    put(f, &a);
    put(f, &b);
    *good = size_of(f);
    return f;
}

static void test_torn_tail(void)
{
    long good;
    FILE *f = two_records(&good);
    FILE *third = tmpfile();
    vd_record c = rec_of("c@x.test", VD_STATUS_DELIVERABLE, "accepted");
    put(third, &c);
    char buf[512];
    rewind(third);
    size_t n = fread(buf, 1, sizeof buf, third);
    CHECK(n > 9);
    fseek(f, 0, SEEK_END);
    put_bytes(f, buf, 9); /* c's record cut after 9 bytes */

    vd_resume *r = vd_resume_new(0);
    char err[512], want[192];
    CHECK(scan(r, f, err, sizeof err) == 0);
    const vd_resume_found *found = vd_resume_found_get(r);
    CHECK(found->records == 2 && found->good_end == (uint64_t)good);
    CHECK(found->tail_bytes == 9 && !found->tail_zeros);
    snprintf(want, sizeof want, "truncated record at byte %ld (2 complete records before it)",
             good);
    CHECK_STR(found->tail, want);
    CHECK(!vd_resume_take(r, "c@x.test", 8)); /* the torn one is redone */
    CHECK(vd_resume_cut(r, fileno(f), "FILE", err, sizeof err) == 0);
    CHECK(size_of(f) == good);
    vd_resume_free(r);

    /* after the cut the file is clean */
    r = vd_resume_new(0);
    CHECK(scan(r, f, err, sizeof err) == 0 && vd_resume_found_get(r)->tail_bytes == 0);
    vd_resume_free(r);
    fclose(third);
    fclose(f);
}

static void test_zeros(void)
{
    long good;
    FILE *f = two_records(&good);
    static const char zeros[4096];
    fseek(f, 0, SEEK_END);
    put_bytes(f, zeros, sizeof zeros);
    vd_resume *r = vd_resume_new(0);
    char err[512], want[192];
    CHECK(scan(r, f, err, sizeof err) == 0);
    const vd_resume_found *found = vd_resume_found_get(r);
    CHECK(found->records == 2 && found->kept == 2 && found->good_end == (uint64_t)good);
    CHECK(found->tail_bytes == 4096 && found->tail_zeros);
    snprintf(want, sizeof want, "4096 zero bytes at byte %ld (a power cut)", good);
    CHECK_STR(found->tail, want);
    CHECK(vd_resume_cut(r, fileno(f), "FILE", err, sizeof err) == 0 && size_of(f) == good);
    vd_resume_free(r);
    fclose(f);
}

/* f (two good records, then bad, then more) is refused, untouched, with a message saying
 * where the good part ends. */
static void check_refused(FILE *f, long good, const char *what)
{
    long before = size_of(f);
    vd_resume *r = vd_resume_new(0);
    char err[512], want[128];
    CHECK_MSG(scan(r, f, err, sizeof err) == -1, "%s: not refused", what);
    CHECK_MSG(strstr(err, "FILE: damaged, not just a torn last record: ") == err, "%s: %s", what,
              err);
    snprintf(want, sizeof want, "its first %ld bytes are whole: head -c %ld", good, good);
    CHECK_MSG(strstr(err, want) != NULL, "%s: %s", what, err);
    CHECK(size_of(f) == before);
    vd_resume_free(r);
}

static void test_damage(void)
{
    vd_record c = rec_of("c@x.test", VD_STATUS_DELIVERABLE, "accepted");
    long good;

    FILE *f = two_records(&good); /* an object that is not a map, then a good record */
    const unsigned char arr[] = {0x92, 0x01, 0x02};
    fseek(f, 0, SEEK_END);
    put_bytes(f, arr, sizeof arr);
    put(f, &c);
    check_refused(f, good, "an array mid-file");
    fclose(f);

    f = two_records(&good); /* a byte that is never msgpack */
    fseek(f, 0, SEEK_END);
    put_bytes(f, "\xc1", 1);
    put(f, &c);
    check_refused(f, good, "0xc1 mid-file");
    fclose(f);

    f = two_records(&good); /* zeros that are not the tail */
    static const char zeros[64];
    fseek(f, 0, SEEK_END);
    put_bytes(f, zeros, sizeof zeros);
    put(f, &c);
    check_refused(f, good, "zeros mid-file");
    fclose(f);

    f = two_records(&good); /* a lone invalid byte as the last one is damage too, not a tear */
    fseek(f, 0, SEEK_END);
    put_bytes(f, "\xc1", 1);
    check_refused(f, good, "0xc1 at the end");
    fclose(f);
}

static void test_not_records(void)
{
    char err[512];
    FILE *f = tmpfile(); /* JSON Lines */
    put_bytes(f, "{\"email\":\"a@x.test\"}\n", 21);
    vd_resume *r = vd_resume_new(0);
    CHECK(scan(r, f, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "FILE: not a msgpack record stream") == err, "%s", err);
    vd_resume_free(r);
    fclose(f);

    long good;
    f = two_records(&good); /* a map that is not a record */
    const unsigned char map[] = {0x81, 0xa1, 'k', 0x01};
    fseek(f, 0, SEEK_END);
    put_bytes(f, map, sizeof map);
    r = vd_resume_new(0);
    CHECK(scan(r, f, err, sizeof err) == -1);
    char want[128];
    snprintf(want, sizeof want, "FILE: the map at byte %ld has no email or status", good);
    CHECK_MSG(strstr(err, want) == err, "%s", err);
    vd_resume_free(r);
    fclose(f);
}

static void test_changed(void)
{
    long good;
    FILE *f = two_records(&good);
    vd_resume *r = vd_resume_new(0);
    char err[512];
    CHECK(scan(r, f, err, sizeof err) == 0);
    CHECK(ftruncate(fileno(f), good - 1) == 0); /* shorter than at the scan */
    FILE *out = tmpfile();
    rewind(f);
    CHECK(vd_resume_copy_kept(r, f, out, "FILE", err, sizeof err) == -1);
    CHECK_STR(err, "FILE: changed while it was being read");
    fclose(out);
    vd_resume_free(r);
    fclose(f);
}

int main(void)
{
    test_multiset();
    test_many();
    test_empty();
    test_deferred();
    test_torn_tail();
    test_zeros();
    test_damage();
    test_not_records();
    test_changed();
    return check_done();
}

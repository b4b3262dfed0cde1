/* fuzz_record.c — libFuzzer target for the record reader (engine/record.c, API
 * validora/record.h): arbitrary bytes as a msgpack record stream, rendered as JSON Lines and as
 * CSV, through vd_record_cat and through the public iterator.
 *
 * Owns: running each input through both of the reader's paths — a non-seekable stream
 * (fmemopen has no file descriptor, so it takes the pipe path that reads only the bytes the
 * scanner asks for) and a regular file (a memfd, read in large chunks) — and requiring that
 * both give the same result, output and messages; that rc is 0 or -1 and a failure says why;
 * that the output stays proportional to the input (no amplification). Then the same bytes
 * through vd_reader_next, field access on every listed key (types agree with the getters) and
 * vd_record_render into a small buffer (ERANGE, then the length it gave): the records and the
 * last message must be exactly what vd_record_cat wrote. Memory is bounded by libFuzzer's
 * -malloc_limit_mb / -rss_limit_mb, set in tests/fuzz/CMakeLists.txt.
 * Does not own: the seed corpus (tests/fuzz/corpus/record/) or the smoke run's options. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "validora/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_record: %s:%d: %s: ", __FILE__, __LINE__, #cond);                \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* engine/record.c renders a record read back in at most 32 bytes per msgpack byte plus 64
 * (RENDER_MAX_FACTOR/SLACK there) and says "renders too large" past that: an honest record
 * stays far below (an empty map, 1 byte, is a CSV row of 20; a control character in a string
 * is "\u001b"). Anything past the bound is amplification (nested non-string map keys). */
#define OUTPUT_PER_BYTE   32
#define OUTPUT_PER_RECORD 64
#define OUTPUT_SLACK      4096 /* the CSV header */

typedef struct {
    int rc;
    char *out, *err;
    size_t out_len, err_len;
} result;

static int memfd = -1;

static void run(FILE *in, vd_format fmt, result *r)
{
    FILE *out = open_memstream(&r->out, &r->out_len);
    FILE *err = open_memstream(&r->err, &r->err_len);
    if (!out || !err) abort();
    r->rc = vd_record_cat(in, out, fmt, err, "fuzz");
    fclose(out);
    fclose(err);
}

/* Field access on a record read back: every listed string key is found, and each getter
 * succeeds exactly when the type says it should. The first keys only: each lookup is linear. */
static void touch_fields(const vd_record_view *rec)
{
    size_t count = vd_record_count(rec);
    for (size_t i = 0; i < count && i < 64; i++) {
        const char *k, *s;
        size_t klen, n;
        char key[64];
        if (vd_record_key(rec, i, &k, &klen) != 0 || klen >= sizeof key || memchr(k, 0, klen))
            continue;
        memcpy(key, k, klen);
        key[klen] = 0;
        vd_field_type t = vd_record_type(rec, key);
        int64_t v;
        bool b;
        vd_record_view sub;
        REQUIRE(t != VD_FIELD_ABSENT, "key '%s' listed but not found", key);
        REQUIRE((vd_record_str(rec, key, &s, &n) == 0) == (t == VD_FIELD_STR), "str '%s'", key);
        REQUIRE(vd_record_int(rec, key, &v) != 0 || t == VD_FIELD_INT, "int '%s'", key);
        REQUIRE((vd_record_bool(rec, key, &b) == 0) == (t == VD_FIELD_BOOL), "bool '%s'", key);
        REQUIRE((vd_record_map(rec, key, &sub) == 0) == (t == VD_FIELD_MAP), "map '%s'", key);
        if (t == VD_FIELD_MAP) {
            char buf[16];
            errno = 0;
            int rc = vd_record_render(&sub, VD_FMT_JSON, buf, sizeof buf, &n);
            REQUIRE(rc == 0 || errno == ERANGE || errno == EFBIG, "sub-map render errno %d", errno);
        }
    }
}

/* The public iterator and renderers, writing what vd_record_cat would. */
static void iterate(FILE *in, vd_format fmt, result *r)
{
    FILE *out = open_memstream(&r->out, &r->out_len);
    FILE *err = open_memstream(&r->err, &r->err_len);
    vd_reader *rd = vd_reader_new(in);
    if (!out || !err || !rd) abort();
    if (fmt == VD_FMT_CSV) REQUIRE(vd_record_fprint_csv_header(out) == 0, "CSV header");
    r->rc = -1;
    for (;;) {
        vd_record_view rec;
        vd_read_status st = vd_reader_next(rd, &rec);
        if (st == VD_READ_END) {
            REQUIRE(vd_reader_error(rd)[0] == 0, "a message at a clean end");
            r->rc = 0;
            break;
        }
        if (st != VD_READ_RECORD) {
            REQUIRE(st < 0 && vd_reader_error(rd)[0] != 0, "status %d without a message", st);
            REQUIRE(vd_reader_next(rd, NULL) == st, "status %d not kept", st);
            fprintf(err, "fuzz: %s\n", vd_reader_error(rd));
            break;
        }
        touch_fields(&rec);
        char small[64];
        size_t n = 0, m = 0;
        errno = 0;
        int rc = vd_record_render(&rec, fmt, small, sizeof small, &n);
        if (rc == 0) {
            fwrite(small, 1, n, out);
        } else if (errno == ERANGE) {
            REQUIRE(n >= sizeof small, "ERANGE for %zu bytes", n);
            char *big = malloc(n + 1);
            if (!big) abort();
            REQUIRE(vd_record_render(&rec, fmt, big, n + 1, &m) == 0 && m == n && big[n] == 0,
                    "the length ERANGE gave (%zu) did not fit", n);
            fwrite(big, 1, n, out);
            free(big);
        } else {
            REQUIRE(errno == EFBIG, "render errno %d", errno);
            fprintf(err,
                    "fuzz: the record at byte %" PRIu64
                    " renders too large (over 32 bytes per byte; %" PRIu64
                    " complete records before it)\n",
                    vd_reader_offset(rd), vd_reader_records(rd) - 1);
            break;
        }
    }
    vd_reader_free(rd);
    fclose(out);
    fclose(err);
}

static void result_free(result *r)
{
    free(r->out);
    free(r->err);
}

static void one_format(const uint8_t *data, size_t size, vd_format fmt)
{
    /* Non-seekable path. glibc's fmemopen refuses nothing for size 0 since 2.22, but an empty
     * buffer pointer is not allowed: give it a valid one. */
    static char empty[1];
    FILE *in = fmemopen(size ? (void *)data : empty, size, "r");
    if (!in) abort();
    result a = {0};
    run(in, fmt, &a);
    fclose(in);

    /* Regular-file path: the same bytes in a memfd. */
    if (ftruncate(memfd, 0) != 0 || pwrite(memfd, data, size, 0) != (ssize_t)size ||
        lseek(memfd, 0, SEEK_SET) != 0)
        abort();
    int fd = dup(memfd);
    FILE *fin = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (!fin) abort();
    result b = {0};
    run(fin, fmt, &b);
    fclose(fin);

    REQUIRE(a.rc == 0 || a.rc == -1, "rc %d", a.rc);
    REQUIRE(a.rc == b.rc, "stream rc %d, file rc %d", a.rc, b.rc);
    REQUIRE(a.out_len == b.out_len && memcmp(a.out, b.out, a.out_len) == 0,
            "stream and file output differ (%zu, %zu bytes)", a.out_len, b.out_len);
    REQUIRE(a.err_len == b.err_len && memcmp(a.err, b.err, a.err_len) == 0,
            "stream and file messages differ:\n%s---\n%s", a.err, b.err);
    REQUIRE(a.rc == 0 ? a.err_len == 0 : a.err_len > 0, "rc %d with messages '%s'", a.rc, a.err);
    size_t lines = 0; /* >= records: one line per record, more when a CSV field holds LF */
    for (size_t i = 0; i < a.out_len; i++)
        lines += a.out[i] == '\n';
    REQUIRE(a.out_len <= size * OUTPUT_PER_BYTE + lines * OUTPUT_PER_RECORD + OUTPUT_SLACK,
            "%zu input bytes rendered as %zu output bytes", size, a.out_len);
    /* One line (JSON) or row (CSV) per record, each ending in a newline. */
    REQUIRE(a.out_len == 0 || a.out[a.out_len - 1] == '\n', "output does not end a line");

    /* The public iterator on the regular-file path says exactly what vd_record_cat said. */
    if (lseek(memfd, 0, SEEK_SET) != 0) abort();
    fd = dup(memfd);
    fin = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (!fin) abort();
    result c = {0};
    iterate(fin, fmt, &c);
    fclose(fin);
    REQUIRE(c.rc == b.rc, "vd_record_cat rc %d, iterator rc %d", b.rc, c.rc);
    REQUIRE(c.out_len == b.out_len && memcmp(c.out, b.out, b.out_len) == 0,
            "vd_record_cat and iterator output differ (%zu, %zu bytes)", b.out_len, c.out_len);
    REQUIRE(c.err_len == b.err_len && memcmp(c.err, b.err, b.err_len) == 0,
            "vd_record_cat and iterator messages differ:\n%s---\n%s", b.err, c.err);
    result_free(&a);
    result_free(&b);
    result_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (memfd < 0) {
        memfd = memfd_create("fuzz_record", MFD_CLOEXEC);
        if (memfd < 0) abort();
    }
    one_format(data, size, VD_FMT_JSON);
    one_format(data, size, VD_FMT_CSV);
    return 0;
}

/* fuzz_record.c — libFuzzer target for vd_record_cat (engine/record.c): arbitrary bytes as a
 * msgpack record stream, rendered as JSON Lines and as CSV.
 *
 * Owns: running each input through both of the reader's paths — a non-seekable stream
 * (fmemopen has no file descriptor, so it takes the pipe path that reads only the bytes the
 * scanner asks for) and a regular file (a memfd, read in large chunks) — and requiring that
 * both give the same result, output and messages; that rc is 0 or -1 and a failure says why;
 * that the output stays proportional to the input (no amplification). Memory is bounded by
 * libFuzzer's -malloc_limit_mb / -rss_limit_mb, set in tests/fuzz/CMakeLists.txt. */
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
    result_free(&a);
    result_free(&b);
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

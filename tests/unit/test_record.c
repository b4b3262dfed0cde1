/* test_record.c — the public record API (validora/record.h): the writer, vd_record_cat and the
 * vd_reader iterator under it: msgpack round trips into JSON Lines and CSV, absent keys,
 * quoting, escaping of hostile strings, truncated and damaged streams (read from a regular file
 * and from a pipe, which take different read paths), hostile sizes; field access on records
 * read back (unknown keys kept); the renderers into a buffer and a FILE. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "validora/record.h" /* first: the public header stands on its own */
#include "check.h"

typedef struct {
    char *p;
    size_t len;
} bytes;

static bytes slurp(FILE *f)
{
    bytes b = {0};
    fflush(f);
    long n = ftell(f);
    rewind(f);
    b.p = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
    if (n > 0) b.len = fread(b.p, 1, (size_t)n, f);
    return b;
}

/* Writes the records with a vd_writer in fmt and returns the bytes written. */
static bytes write_records(const vd_record *recs, size_t n, vd_format fmt)
{
    FILE *f = tmpfile();
    vd_writer *w = vd_writer_new(f, fmt);
    CHECK(w != NULL);
    for (size_t i = 0; i < n; i++)
        CHECK(vd_writer_put(w, &recs[i]) == 0);
    vd_writer_free(w);
    bytes b = slurp(f);
    fclose(f);
    return b;
}

typedef struct {
    int rc;
    bytes out, err;
} cat_result;

/* data as an input stream: a regular file, or (via_pipe) a pipe whose writer has closed. */
static FILE *input(const void *data, size_t len, bool via_pipe)
{
    FILE *in;
    if (via_pipe) {
        int fds[2];
        CHECK(pipe(fds) == 0);
        CHECK(len < 65536); /* fits the pipe buffer: no writer thread needed */
        CHECK(write(fds[1], data, len) == (ssize_t)len);
        close(fds[1]);
        in = fdopen(fds[0], "rb");
    } else {
        in = tmpfile();
        fwrite(data, 1, len, in);
        rewind(in);
    }
    return in;
}

/* Runs vd_record_cat on data, from a regular file or (via_pipe) from a pipe. */
static cat_result cat(const void *data, size_t len, vd_format fmt, bool via_pipe)
{
    FILE *in = input(data, len, via_pipe);
    FILE *out = tmpfile(), *err = tmpfile();
    cat_result r;
    r.rc = vd_record_cat(in, out, fmt, err, "in.mp");
    r.out = slurp(out);
    r.err = slurp(err);
    fclose(in);
    fclose(out);
    fclose(err);
    return r;
}

static void cat_free(cat_result *r)
{
    free(r->out.p);
    free(r->err.p);
}

static vd_record full_record(void)
{
    return (vd_record){
        .email = "Alice@Example.COM",
        .address = "Alice@example.com",
        .domain = "example.com",
        .status = "deliverable",
        .reason = "accepted",
        .detail = "ok",
        .mx = "mx1.example.com",
        .has_smtp = true,
        .smtp_code = 250,
        .smtp_enhanced = "2.1.5",
        .smtp_text = "Recipient ok",
        .tls = VD_YES,
        .tls_verified = VD_NO,
        .catch_all = VD_NO,
        .disposable = true,
        .role = true,
        .free = true,
        .suggestion = "example.org",
        .provider = "default",
        .method = "smtp",
        .attempts = 2,
        .elapsed_ms = 1099511627776LL, /* 2^40: needs 64 bits */
        .checked_at = 1700000000,
    };
}

static const char FULL_JSON[] =
    "{\"email\":\"Alice@Example.COM\",\"address\":\"Alice@example.com\",\"domain\":\"example.com\","
    "\"status\":\"deliverable\",\"reason\":\"accepted\",\"detail\":\"ok\",\"mx\":\"mx1.example."
    "com\","
    "\"smtp\":{\"code\":250,\"enhanced\":\"2.1.5\",\"text\":\"Recipient ok\"},\"tls\":true,"
    "\"tls_verified\":false,\"catch_all\":false,\"disposable\":true,\"role\":true,\"free\":true,"
    "\"suggestion\":\"example.org\",\"provider\":\"default\",\"method\":\"smtp\","
    "\"attempts\":2,"
    "\"elapsed_ms\":1099511627776,\"checked_at\":1700000000}\n";

static const char CSV_HEADER[] =
    "email,address,domain,status,reason,mx,smtp_code,smtp_enhanced,smtp_text,tls,catch_all,"
    "disposable,role,free,suggestion,provider,method,generation,attempts,elapsed_ms,checked_at,"
    "detail\n";

static vd_record minimal_record(void)
{
    return (vd_record){
        .email = "a..b@x.test",
        .status = "undeliverable",
        .reason = "invalid_syntax",
        .tls = VD_UNSET,
        .tls_verified = VD_UNSET,
        .catch_all = VD_UNSET,
        .elapsed_ms = -1, /* negative numbers go through msgpack's signed path */
    };
}

static const char MINIMAL_JSON[] =
    "{\"email\":\"a..b@x.test\",\"status\":\"undeliverable\",\"reason\":\"invalid_syntax\","
    "\"disposable\":false,\"role\":false,\"free\":false,\"attempts\":0,\"elapsed_ms\":-1,"
    "\"checked_at\":0}\n";

static void test_round_trip(void)
{
    vd_record recs[2] = {full_record(), minimal_record()};
    bytes mp = write_records(recs, 2, VD_FMT_MSGPACK);
    CHECK(mp.len > 0 && (unsigned char)mp.p[0] == 0xde); /* 19 keys: a map16 */
    char expected[4096];
    snprintf(expected, sizeof expected, "%s%s", FULL_JSON, MINIMAL_JSON);
    for (int pipe_ = 0; pipe_ < 2; pipe_++) {
        cat_result r = cat(mp.p, mp.len, VD_FMT_JSON, pipe_);
        CHECK(r.rc == 0);
        CHECK_STR(r.out.p, expected);
        CHECK_STR(r.err.p, "");
        cat_free(&r);
    }

    /* The writer's JSON format says exactly what cat says about its msgpack. */
    bytes json = write_records(recs, 2, VD_FMT_JSON);
    CHECK_STR(json.p, expected);

    /* CSV: the fixed columns; tls_verified is not one of them; absent is empty. */
    snprintf(expected, sizeof expected,
             "%sAlice@Example.COM,Alice@example.com,example.com,deliverable,accepted,"
             "mx1.example.com,250,2.1.5,Recipient ok,true,false,true,true,true,example.org,"
             "default,smtp,,2,1099511627776,1700000000,ok\n"
             "a..b@x.test,,,undeliverable,invalid_syntax,,,,,,,false,false,false,,,,,0,-1,0,\n",
             CSV_HEADER);
    bytes csv = write_records(recs, 2, VD_FMT_CSV);
    CHECK_STR(csv.p, expected);
    cat_result r = cat(mp.p, mp.len, VD_FMT_CSV, false);
    CHECK(r.rc == 0);
    CHECK_STR(r.out.p, expected);
    cat_free(&r);

    /* SMTP reply without enhanced code or text: only code. */
    vd_record s = minimal_record();
    s.has_smtp = true;
    s.smtp_code = 421;
    bytes one = write_records(&s, 1, VD_FMT_JSON);
    CHECK(strstr(one.p, "\"reason\":\"invalid_syntax\",\"smtp\":{\"code\":421},\"disposable\"") !=
          NULL);
    free(one.p);
    free(mp.p);
    free(json.p);
    free(csv.p);
}

static void test_csv_quoting(void)
{
    vd_record r = minimal_record();
    r.email = "x,y@a.test";
    r.has_smtp = true;
    r.smtp_code = 550;
    r.smtp_text = "5.1.1 <\"bob\"@a.test>, no\r\nsuch user";
    r.detail = "plain";
    bytes csv = write_records(&r, 1, VD_FMT_CSV);
    char expected[1024];
    snprintf(
        expected, sizeof expected,
        "%s\"x,y@a.test\",,,undeliverable,invalid_syntax,,550,,"
        "\"5.1.1 <\"\"bob\"\"@a.test>, no\r\nsuch user\",,,false,false,false,,,,,0,-1,0,plain\n",
        CSV_HEADER);
    CHECK_STR(csv.p, expected);
    free(csv.p);

    /* A lone quote, a lone newline each force quoting too. */
    r.email = "q\"@a.test";
    r.smtp_text = "line1\nline2";
    csv = write_records(&r, 1, VD_FMT_CSV);
    CHECK(strstr(csv.p, "\n\"q\"\"@a.test\",") != NULL);
    CHECK(strstr(csv.p, ",\"line1\nline2\",") != NULL);
    free(csv.p);
}

static void test_truncated(void)
{
    vd_record recs[3] = {full_record(), minimal_record(), full_record()};
    bytes mp = write_records(recs, 3, VD_FMT_MSGPACK);
    bytes two = write_records(recs, 2, VD_FMT_MSGPACK);
    char expected_out[4096];
    snprintf(expected_out, sizeof expected_out, "%s%s", FULL_JSON, MINIMAL_JSON);
    char expected_err[256];
    snprintf(expected_err, sizeof expected_err,
             "in.mp: truncated record at byte %zu (2 complete records before it)\n", two.len);
    int bad = 0;
    for (int pipe_ = 0; pipe_ < 2; pipe_++) {
        /* Cut exactly after the second record: a clean end. */
        cat_result r = cat(mp.p, two.len, VD_FMT_JSON, pipe_);
        CHECK(r.rc == 0);
        CHECK_STR(r.out.p, expected_out);
        cat_free(&r);
        for (size_t cut = two.len + 1; cut < mp.len; cut++) {
            r = cat(mp.p, cut, VD_FMT_JSON, pipe_);
            if (r.rc != -1 || strcmp(r.out.p, expected_out) != 0 ||
                strcmp(r.err.p, expected_err) != 0) {
                if (bad++ < 3)
                    fprintf(stderr, "cut at %zu (pipe %d): rc %d, out '%s', err '%s'\n", cut, pipe_,
                            r.rc, r.out.p, r.err.p);
            }
            cat_free(&r);
        }
    }
    CHECK_MSG(bad == 0, "%d cuts misreported", bad);

    /* CSV: the header and the complete rows come out before the error. */
    cat_result r = cat(mp.p, mp.len - 1, VD_FMT_CSV, false);
    CHECK(r.rc == -1);
    CHECK(strncmp(r.out.p, CSV_HEADER, strlen(CSV_HEADER)) == 0);
    int lines = 0;
    for (size_t i = 0; i < r.out.len; i++)
        lines += r.out.p[i] == '\n';
    CHECK(lines == 3);
    CHECK_STR(r.err.p, expected_err);
    cat_free(&r);
    free(mp.p);
    free(two.p);
}

static void test_not_a_map(void)
{
    vd_record rec = minimal_record();
    bytes mp = write_records(&rec, 1, VD_FMT_MSGPACK);
    char buf[1024];
    memcpy(buf, mp.p, mp.len);
    const unsigned char arr[] = {0x92, 0x01, 0x02}; /* [1, 2] */
    memcpy(buf + mp.len, arr, sizeof arr);
    memcpy(buf + mp.len + sizeof arr, mp.p, mp.len); /* a good record after it is not read */
    for (int pipe_ = 0; pipe_ < 2; pipe_++) {
        cat_result r = cat(buf, 2 * mp.len + sizeof arr, VD_FMT_JSON, pipe_);
        CHECK(r.rc == -1);
        CHECK_STR(r.out.p, MINIMAL_JSON);
        char expected[256];
        snprintf(expected, sizeof expected,
                 "in.mp: the object at byte %zu is not a map, so not a record (1 complete "
                 "records before it)\n",
                 mp.len);
        CHECK_STR(r.err.p, expected);
        cat_free(&r);
    }
    /* A bare integer as the very first object. */
    cat_result r = cat("\x05", 1, VD_FMT_JSON, false);
    CHECK(r.rc == -1 && r.out.len == 0 && strstr(r.err.p, "at byte 0 is not a map") != NULL);
    cat_free(&r);
    free(mp.p);
}

static void test_hostile_strings(void)
{
    vd_record rec = minimal_record();
    /* invalid byte, control char, lone lead byte, quote, backslash, DEL, U+2028, valid
     * 2- and 4-byte characters, an encoded surrogate, a sequence cut short at the end */
    rec.email = "a\xff\x01"
                "b\xc3(\"\\\x7f\xe2\x80\xa8\xc3\xbc\xf0\x9f\x98\x80@x\xed\xa0\x80\t\xe2\x82";
    bytes json = write_records(&rec, 1, VD_FMT_JSON);
    const char *expected = "{\"email\":\"a\xef\xbf\xbd\\u0001b\xef\xbf\xbd(\\\"\\\\\\u007f\\u2028"
                           "\xc3\xbc\xf0\x9f\x98\x80@x\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\\t"
                           "\xef\xbf\xbd\",";
    CHECK_MSG(strncmp(json.p, expected, strlen(expected)) == 0, "got %s", json.p);
    /* No raw control byte anywhere but the final newline. */
    bool clean = true;
    for (size_t i = 0; i + 1 < json.len; i++)
        if ((unsigned char)json.p[i] < 0x20) clean = false;
    CHECK(clean);
    free(json.p);

    /* CSV cleans the UTF-8 the same way, without JSON escapes. */
    rec.email = "a\xff"
                "b";
    bytes csv = write_records(&rec, 1, VD_FMT_CSV);
    CHECK(strstr(csv.p, "\na\xef\xbf\xbd"
                        "b,") != NULL);
    free(csv.p);

    /* A NUL inside a msgpack string (possible in a foreign file) is escaped, not a cut. */
    const unsigned char mp[] = {0x81, 0xa1, 'k', 0xa3, 'a', 0x00, 'b'};
    cat_result r = cat(mp, sizeof mp, VD_FMT_JSON, false);
    CHECK(r.rc == 0);
    CHECK_STR(r.out.p, "{\"k\":\"a\\u0000b\"}\n");
    cat_free(&r);
}

/* The one JSON string escaper, as the CLI's JSON output (doctor, ledger, rules which) uses it:
 * the same bytes as the renderer's. */
static void test_json_str(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f != NULL);
    const char s[] = "a\xff\x01\n\"\\\x7f\xc3\xbc\0z";
    CHECK(vd_record_json_str(f, s, sizeof s - 1) == 0);
    CHECK(vd_record_json_str(f, NULL, 5) == 0);
    fclose(f);
    CHECK_STR(buf, "\"a\xef\xbf\xbd\\u0001\\n\\\"\\\\\\u007f\xc3\xbc\\u0000z\"\"\"");
    free(buf);
}

static void test_empty(void)
{
    cat_result r = cat("", 0, VD_FMT_JSON, false);
    CHECK(r.rc == 0 && r.out.len == 0 && r.err.len == 0);
    cat_free(&r);
    r = cat("", 0, VD_FMT_JSON, true);
    CHECK(r.rc == 0 && r.out.len == 0 && r.err.len == 0);
    cat_free(&r);
    r = cat("", 0, VD_FMT_CSV, false);
    CHECK(r.rc == 0);
    CHECK_STR(r.out.p, CSV_HEADER);
    cat_free(&r);
}

static void test_foreign_keys(void)
{
    /* {"email":"x","zz":[1,-2,true,nil,1.5,bin"\x00\xff",{}],7:"seven","smtp":"odd"} */
    const unsigned char mp[] = {
        0x84, 0xa5, 'e',  'm',  'a', 'i', 'l',  0xa1, 'x', 0xa2, 'z',  'z',  0x97, 0x01, 0xfe, 0xc3,
        0xc0, 0xcb, 0x3f, 0xf8, 0,   0,   0,    0,    0,   0,    0xc4, 0x02, 0x00, 0xff, 0x80, 0x07,
        0xa5, 's',  'e',  'v',  'e', 'n', 0xa4, 's',  'm', 't',  'p',  0xa3, 'o',  'd',  'd'};
    cat_result r = cat(mp, sizeof mp, VD_FMT_JSON, false);
    CHECK(r.rc == 0);
    CHECK_STR(r.out.p, "{\"email\":\"x\",\"zz\":[1,-2,true,null,1.5,\"AP8=\",{}],\"7\":\"seven\","
                       "\"smtp\":\"odd\"}\n");
    cat_free(&r);
    r = cat(mp, sizeof mp, VD_FMT_CSV, false);
    CHECK(r.rc == 0);
    char expected[512];
    snprintf(expected, sizeof expected, "%sx,,,,,,,,,,,,,,,,,,,,,\n", CSV_HEADER);
    CHECK_STR(r.out.p, expected);
    cat_free(&r);

    /* Floats print as the shortest decimal that reads back: 0.1 (float64), 1.1f (float32). */
    const unsigned char fl[] = {0x82, 0xa1, 'd',  0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99,
                                0x99, 0x9a, 0xa1, 'f',  0xca, 0x3f, 0x8c, 0xcc, 0xcd};
    r = cat(fl, sizeof fl, VD_FMT_JSON, false);
    CHECK(r.rc == 0);
    CHECK_STR(r.out.p, "{\"d\":0.1,\"f\":1.1}\n");
    cat_free(&r);
}

/* VD_FMT_MSGPACK copies complete records byte for byte: the good part of a cut stream. */
static void test_msgpack_passthrough(void)
{
    vd_record recs[2] = {full_record(), minimal_record()};
    bytes mp = write_records(recs, 2, VD_FMT_MSGPACK);
    bytes one = write_records(recs, 1, VD_FMT_MSGPACK);
    cat_result r = cat(mp.p, mp.len - 1, VD_FMT_MSGPACK, true);
    CHECK(r.rc == -1);
    CHECK(r.out.len == one.len && memcmp(r.out.p, one.p, one.len) == 0);
    cat_free(&r);
    r = cat(mp.p, mp.len, VD_FMT_MSGPACK, false);
    CHECK(r.rc == 0 && r.out.len == mp.len && memcmp(r.out.p, mp.p, mp.len) == 0);
    cat_free(&r);
    free(mp.p);
    free(one.p);
}

/* From a pipe whose writer is still there, a record is printed as soon as it is complete:
 * the reader must not wait for a full chunk (or for the writer to close). */
static void test_streaming(void)
{
    vd_record rec = minimal_record();
    bytes mp = write_records(&rec, 1, VD_FMT_MSGPACK);
    int to_cat[2], from_cat[2];
    CHECK(pipe(to_cat) == 0 && pipe(from_cat) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(to_cat[1]);
        close(from_cat[0]);
        FILE *in = fdopen(to_cat[0], "rb"), *out = fdopen(from_cat[1], "wb");
        int rc = vd_record_cat(in, out, VD_FMT_JSON, stderr, "pipe");
        fclose(out);
        _exit(rc == 0 ? 0 : 1);
    }
    close(to_cat[0]);
    close(from_cat[1]);
    CHECK(write(to_cat[1], mp.p, mp.len) == (ssize_t)mp.len);
    char line[1024];
    size_t got = 0;
    while (got < sizeof line - 1 && !memchr(line, '\n', got)) {
        struct pollfd pfd = {.fd = from_cat[0], .events = POLLIN};
        if (poll(&pfd, 1, 5000) != 1) break; /* the writer end is open: only a timeout */
        ssize_t n = read(from_cat[0], line + got, sizeof line - 1 - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    line[got] = 0;
    CHECK_STR(line, MINIMAL_JSON);
    close(to_cat[1]);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(from_cat[0]);
    free(mp.p);
}

static void test_hostile_sizes(void)
{
    /* A map claiming 4 billion entries: refused at once, nothing allocated for it. */
    const unsigned char huge_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'k'};
    cat_result r = cat(huge_map, sizeof huge_map, VD_FMT_JSON, false);
    CHECK(r.rc == -1);
    CHECK(strstr(r.err.p, "in.mp: the record at byte 0 is too large") != NULL);
    cat_free(&r);

    /* A string claiming 2 GiB inside an otherwise fine map. */
    const unsigned char huge_str[] = {0x81, 0xa1, 'k', 0xdb, 0x80, 0, 0, 0, 'x'};
    r = cat(huge_str, sizeof huge_str, VD_FMT_JSON, true);
    CHECK(r.rc == -1 && strstr(r.err.p, "too large") != NULL);
    cat_free(&r);

    /* Nesting deeper than any record: 40 one-entry maps. */
    unsigned char deep[200];
    size_t n = 0;
    for (int i = 0; i < 40; i++)
        deep[n++] = 0x81, deep[n++] = 0xa0;
    deep[n++] = 0xc0;
    r = cat(deep, n, VD_FMT_JSON, false);
    CHECK(r.rc == -1 && strstr(r.err.p, "invalid msgpack") != NULL);
    cat_free(&r);

    /* 0xc1 is never used in msgpack. */
    const unsigned char never[] = {0x81, 0xa1, 'k', 0xc1};
    r = cat(never, sizeof never, VD_FMT_JSON, false);
    CHECK(r.rc == -1);
    CHECK_STR(r.err.p, "in.mp: invalid msgpack at byte 3 in the record at byte 0 (0 complete "
                       "records before it)\n");
    cat_free(&r);
}

/* Keys that are not strings are rendered as JSON and escaped as a key: nested, they double at
 * each level. Found by tests/fuzz/fuzz_record: 67 bytes rendered as 33 KB, and a record within
 * the 16 MiB limit could ask for terabytes. The rendering is now bounded by the record's size. */
static void test_hostile_keys(void)
{
    /* A key that is a map (one level) still renders. {{"a":"b"}:1} */
    const unsigned char one[] = {0x81, 0x81, 0xa1, 'a', 0xa1, 'b', 0x01};
    cat_result r = cat(one, sizeof one, VD_FMT_JSON, false);
    CHECK(r.rc == 0);
    CHECK_STR(r.out.p, "{\"{\\\"a\\\":\\\"b\\\"}\":1}\n");
    cat_free(&r);

    /* A good record, then {"email":{{...{"\"\"...":nil}...:nil}:nil}}, 14 maps deep: the
     * value is rendered as JSON in both formats. */
    vd_record rec = minimal_record();
    bytes mp = write_records(&rec, 1, VD_FMT_MSGPACK);
    unsigned char buf[1024];
    size_t n = 0;
    memcpy(buf, mp.p, mp.len);
    n += mp.len;
    const unsigned char head[] = {0x81, 0xa5, 'e', 'm', 'a', 'i', 'l'};
    memcpy(buf + n, head, sizeof head);
    n += sizeof head;
    for (int i = 0; i < 14; i++)
        buf[n++] = 0x81; /* a one-entry map whose key is the next map */
    buf[n++] = 0xd9, buf[n++] = 40;
    memset(buf + n, '"', 40);
    n += 40;
    for (int i = 0; i < 14; i++)
        buf[n++] = 0xc0; /* the maps' values, innermost first */
    for (int fmt = 0; fmt < 2; fmt++) {
        for (int pipe_ = 0; pipe_ < 2; pipe_++) {
            r = cat(buf, n, fmt ? VD_FMT_CSV : VD_FMT_JSON, pipe_);
            CHECK(r.rc == -1);
            if (!fmt) CHECK_STR(r.out.p, MINIMAL_JSON);
            CHECK(r.out.len < 32 * n + 1024);
            CHECK(r.err.p != NULL && strstr(r.err.p, "renders too large") != NULL);
            char expected[256];
            snprintf(expected, sizeof expected,
                     "in.mp: the record at byte %zu renders too large (over 32 bytes per byte; 1 "
                     "complete records before it)\n",
                     mp.len);
            CHECK_STR(r.err.p, expected);
            cat_free(&r);
        }
    }
    free(mp.p);

    /* An empty map as a CSV row: every field empty. Also found by the fuzzer: the first empty
     * field was copied from a NULL buffer (memcpy(NULL, "", 0), which UBSan reports). */
    r = cat("\x80", 1, VD_FMT_CSV, false);
    CHECK(r.rc == 0);
    char expected[512];
    snprintf(expected, sizeof expected, "%s,,,,,,,,,,,,,,,,,,,,,\n", CSV_HEADER);
    CHECK_STR(r.out.p, expected);
    cat_free(&r);
}

static void test_write_errors(void)
{
    FILE *full = fopen("/dev/full", "w");
    if (!full) return; /* not in every sandbox */
    vd_record rec = minimal_record();
    vd_writer *w = vd_writer_new(full, VD_FMT_MSGPACK);
    CHECK(w != NULL);
    errno = 0;
    CHECK(vd_writer_put(w, &rec) == -1 && errno == ENOSPC);
    vd_writer_free(w);
    CHECK(vd_writer_new(full, VD_FMT_CSV) == NULL); /* the header cannot be written */

    bytes mp = write_records(&rec, 1, VD_FMT_MSGPACK);
    FILE *in = tmpfile(), *err = tmpfile();
    fwrite(mp.p, 1, mp.len, in);
    rewind(in);
    CHECK(vd_record_cat(in, full, VD_FMT_JSON, err, "in.mp") == -1);
    bytes e = slurp(err);
    CHECK(strstr(e.p, "in.mp: write error: No space left on device") != NULL);
    free(e.p);
    free(mp.p);
    fclose(in);
    fclose(err);
    fclose(full);
}

/* ---------------------------------------------------------------- vd_reader and fields */

typedef struct {
    FILE *in;
    vd_reader *r;
} reading;

static reading read_from(const void *data, size_t len, bool via_pipe)
{
    reading rd;
    rd.in = input(data, len, via_pipe);
    rd.r = vd_reader_new(rd.in);
    CHECK(rd.r != NULL);
    return rd;
}

static void reading_done(reading *rd)
{
    vd_reader_free(rd->r);
    fclose(rd->in);
}

static bool str_is(const char *s, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(s, want, n) == 0;
}

static void test_reader_clean_end(void)
{
    vd_record recs[2] = {full_record(), minimal_record()};
    bytes mp = write_records(recs, 2, VD_FMT_MSGPACK);
    bytes one = write_records(recs, 1, VD_FMT_MSGPACK);
    for (int pipe_ = 0; pipe_ < 2; pipe_++) {
        reading rd = read_from(mp.p, mp.len, pipe_);
        vd_reader *r = rd.r;
        CHECK(vd_reader_records(r) == 0 && vd_reader_offset(r) == 0);
        CHECK_STR(vd_reader_error(r), "");
        vd_record_view rec, smtp;
        const char *s;
        size_t n;
        int64_t i;
        bool b;
        CHECK(vd_reader_next(r, &rec) == VD_READ_RECORD);
        CHECK(vd_reader_offset(r) == 0 && vd_reader_records(r) == 1);
        CHECK(vd_record_str(&rec, "email", &s, &n) == 0 && str_is(s, n, "Alice@Example.COM"));
        CHECK(vd_record_int(&rec, "elapsed_ms", &i) == 0 && i == 1099511627776LL);
        CHECK(vd_record_int(&rec, "attempts", &i) == 0 && i == 2);
        CHECK(vd_record_bool(&rec, "disposable", &b) == 0 && b);
        CHECK(vd_record_bool(&rec, "tls_verified", &b) == 0 && !b);
        CHECK(vd_record_type(&rec, "smtp") == VD_FIELD_MAP);
        CHECK(vd_record_type(&rec, "email") == VD_FIELD_STR);
        CHECK(vd_record_type(&rec, "attempts") == VD_FIELD_INT);
        CHECK(vd_record_type(&rec, "tls") == VD_FIELD_BOOL);
        CHECK(vd_record_map(&rec, "smtp", &smtp) == 0);
        CHECK(vd_record_int(&smtp, "code", &i) == 0 && i == 250);
        CHECK(vd_record_str(&smtp, "enhanced", &s, &n) == 0 && str_is(s, n, "2.1.5"));
        CHECK(vd_record_str(&smtp, "text", &s, &n) == 0 && str_is(s, n, "Recipient ok"));
        /* Wrong types and absent keys say so. */
        CHECK(vd_record_int(&rec, "email", &i) == -1);
        CHECK(vd_record_str(&rec, "attempts", &s, &n) == -1);
        CHECK(vd_record_bool(&rec, "nope", &b) == -1);
        CHECK(vd_record_type(&rec, "nope") == VD_FIELD_ABSENT);
        CHECK(vd_record_map(&rec, "email", &smtp) == -1);
        /* Every key in order: 20 of them in a full record. */
        CHECK(vd_record_count(&rec) == 20);
        CHECK(vd_record_key(&rec, 0, &s, &n) == 0 && str_is(s, n, "email"));
        CHECK(vd_record_key(&rec, 7, &s, &n) == 0 && str_is(s, n, "smtp"));
        CHECK(vd_record_key(&rec, 19, &s, &n) == 0 && str_is(s, n, "checked_at"));
        CHECK(vd_record_key(&rec, 20, &s, &n) == -1);

        CHECK(vd_reader_next(r, &rec) == VD_READ_RECORD);
        CHECK(vd_reader_offset(r) == one.len && vd_reader_records(r) == 2);
        CHECK(vd_record_str(&rec, "email", &s, &n) == 0 && str_is(s, n, "a..b@x.test"));
        CHECK(vd_record_type(&rec, "address") == VD_FIELD_ABSENT); /* absent keys are left out */
        CHECK(vd_record_type(&rec, "tls") == VD_FIELD_ABSENT);
        CHECK(vd_record_int(&rec, "elapsed_ms", &i) == 0 && i == -1);
        CHECK(vd_reader_next(r, &rec) == VD_READ_END);
        CHECK(vd_reader_offset(r) == mp.len && vd_reader_records(r) == 2);
        CHECK_STR(vd_reader_error(r), "");
        CHECK(vd_record_count(&rec) == 0); /* cleared: no view of a record that is gone */
        CHECK(vd_reader_next(r, NULL) == VD_READ_END); /* and again, without reading */
        reading_done(&rd);
    }

    /* An empty stream ends cleanly at byte 0. */
    reading rd = read_from("", 0, false);
    CHECK(vd_reader_next(rd.r, NULL) == VD_READ_END && vd_reader_offset(rd.r) == 0);
    reading_done(&rd);

    /* vd_reader_ready: a regular file is read in chunks, so after the first record the rest is
     * known without reading; from a pipe only a record's own bytes are read, so the reader has
     * to read (and could wait) before it can say more. */
    for (int pipe_ = 0; pipe_ < 2; pipe_++) {
        rd = read_from(mp.p, mp.len, pipe_);
        CHECK(vd_reader_next(rd.r, NULL) == VD_READ_RECORD);
        CHECK(vd_reader_ready(rd.r) == !pipe_);
        CHECK(vd_reader_ready(rd.r) == !pipe_); /* asking twice changes nothing */
        CHECK(vd_reader_next(rd.r, NULL) == VD_READ_RECORD);
        CHECK(vd_reader_ready(rd.r) == !pipe_);
        CHECK(vd_reader_next(rd.r, NULL) == VD_READ_END);
        CHECK(vd_reader_ready(rd.r));
        reading_done(&rd);
    }
    free(mp.p);
    free(one.p);
}

static void test_reader_truncated(void)
{
    vd_record recs[3] = {full_record(), minimal_record(), full_record()};
    bytes mp = write_records(recs, 3, VD_FMT_MSGPACK);
    bytes two = write_records(recs, 2, VD_FMT_MSGPACK);
    char want[256];
    snprintf(want, sizeof want, "truncated record at byte %zu (2 complete records before it)",
             two.len);
    /* Every cut inside the last record is covered through vd_record_cat (test_truncated); here
     * the first and the last byte it can be cut at, and a cut between records. */
    const size_t cuts[] = {two.len + 1, mp.len - 1};
    for (int pipe_ = 0; pipe_ < 2; pipe_++) {
        for (size_t c = 0; c < 2; c++) {
            reading rd = read_from(mp.p, cuts[c], pipe_);
            CHECK(vd_reader_next(rd.r, NULL) == VD_READ_RECORD);
            CHECK(vd_reader_next(rd.r, NULL) == VD_READ_RECORD);
            CHECK(vd_reader_next(rd.r, NULL) == VD_READ_TRUNCATED);
            CHECK(vd_reader_offset(rd.r) == two.len && vd_reader_records(rd.r) == 2);
            CHECK_STR(vd_reader_error(rd.r), want);
            CHECK(vd_reader_next(rd.r, NULL) == VD_READ_TRUNCATED);
            CHECK(vd_reader_ready(rd.r));
            reading_done(&rd);
        }
        reading rd = read_from(mp.p, two.len, pipe_);
        CHECK(vd_reader_next(rd.r, NULL) == VD_READ_RECORD);
        CHECK(vd_reader_next(rd.r, NULL) == VD_READ_RECORD);
        CHECK(vd_reader_next(rd.r, NULL) == VD_READ_END && vd_reader_offset(rd.r) == two.len);
        reading_done(&rd);
    }
    free(mp.p);
    free(two.p);
}

static void test_reader_damaged(void)
{
    /* The reader prints nothing: its messages come back through vd_reader_error. Whatever
     * reaches stderr meanwhile is caught and must be nothing. */
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    FILE *caught = tmpfile();
    CHECK(saved >= 0 && caught && dup2(fileno(caught), STDERR_FILENO) == STDERR_FILENO);

    vd_record rec = minimal_record();
    bytes mp = write_records(&rec, 1, VD_FMT_MSGPACK);
    char buf[1024], want[256];
    memcpy(buf, mp.p, mp.len);
    const unsigned char arr[] = {0x92, 0x01, 0x02}; /* [1, 2] */
    memcpy(buf + mp.len, arr, sizeof arr);
    memcpy(buf + mp.len + sizeof arr, mp.p, mp.len);
    for (int pipe_ = 0; pipe_ < 2; pipe_++) {
        reading rd = read_from(buf, 2 * mp.len + sizeof arr, pipe_);
        CHECK(vd_reader_next(rd.r, NULL) == VD_READ_RECORD);
        CHECK(vd_reader_next(rd.r, NULL) == VD_READ_NOT_MAP);
        CHECK(vd_reader_offset(rd.r) == mp.len && vd_reader_records(rd.r) == 1);
        snprintf(want, sizeof want,
                 "the object at byte %zu is not a map, so not a record (1 complete records "
                 "before it)",
                 mp.len);
        CHECK_STR(vd_reader_error(rd.r), want);
        CHECK(vd_reader_next(rd.r, NULL) == VD_READ_NOT_MAP); /* the good record after it: no */
        reading_done(&rd);
    }

    const unsigned char never[] = {0x81, 0xa1, 'k', 0xc1};
    reading rd = read_from(never, sizeof never, false);
    CHECK(vd_reader_next(rd.r, NULL) == VD_READ_INVALID && vd_reader_offset(rd.r) == 0);
    CHECK_STR(vd_reader_error(rd.r),
              "invalid msgpack at byte 3 in the record at byte 0 (0 complete records before it)");
    reading_done(&rd);

    const unsigned char huge_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'k'};
    rd = read_from(huge_map, sizeof huge_map, true);
    CHECK(vd_reader_next(rd.r, NULL) == VD_READ_TOO_LARGE);
    CHECK(strncmp(vd_reader_error(rd.r), "the record at byte 0 is too large (over 16 MiB", 46) ==
          0);
    reading_done(&rd);

    /* A read error: a directory opens, but reading it fails (EISDIR). */
    FILE *dir = fopen("/", "rb");
    if (dir) {
        vd_reader *r = vd_reader_new(dir);
        CHECK(vd_reader_next(r, NULL) == VD_READ_IO_ERROR);
        CHECK(strncmp(vd_reader_error(r), "read error: ", 12) == 0);
        vd_reader_free(r);
        fclose(dir);
    }
    free(mp.p);

    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    bytes got = slurp(caught);
    fclose(caught);
    CHECK_MSG(got.len == 0, "the reader wrote to stderr: %s", got.p);
    free(got.p);
}

static void test_reader_unknown_keys(void)
{
    /* {"email":"x","zz":[1,-2,true,nil,1.5,bin"\x00\xff",{}],7:"seven","smtp":"odd"} */
    const unsigned char mp[] = {
        0x84, 0xa5, 'e',  'm',  'a', 'i', 'l',  0xa1, 'x', 0xa2, 'z',  'z',  0x97, 0x01, 0xfe, 0xc3,
        0xc0, 0xcb, 0x3f, 0xf8, 0,   0,   0,    0,    0,   0,    0xc4, 0x02, 0x00, 0xff, 0x80, 0x07,
        0xa5, 's',  'e',  'v',  'e', 'n', 0xa4, 's',  'm', 't',  'p',  0xa3, 'o',  'd',  'd'};
    reading rd = read_from(mp, sizeof mp, false);
    vd_record_view rec, sub;
    const char *s;
    size_t n;
    CHECK(vd_reader_next(rd.r, &rec) == VD_READ_RECORD);
    CHECK(vd_record_count(&rec) == 4);
    CHECK(vd_record_key(&rec, 1, &s, &n) == 0 && str_is(s, n, "zz"));
    CHECK(vd_record_key(&rec, 2, &s, &n) == -1); /* 7 is not a string key */
    CHECK(vd_record_type(&rec, "zz") == VD_FIELD_ARRAY);
    CHECK(vd_record_type(&rec, "smtp") == VD_FIELD_STR);
    CHECK(vd_record_map(&rec, "smtp", &sub) == -1); /* not the map the writer makes */
    char buf[512];
    CHECK(vd_record_render(&rec, VD_FMT_JSON, buf, sizeof buf, &n) == 0);
    CHECK_STR(buf, "{\"email\":\"x\",\"zz\":[1,-2,true,null,1.5,\"AP8=\",{}],\"7\":\"seven\","
                   "\"smtp\":\"odd\"}\n");
    CHECK(n == strlen(buf));
    CHECK(vd_reader_next(rd.r, &rec) == VD_READ_END);
    reading_done(&rd);

    /* Keys the writer never writes, read by name like any other. */
    const unsigned char mp2[] = {0x84, 0xa7, 'n',  'e',  'w',  '_',  'k',  'e',  'y',  0xa1,
                                 'v',  0xa1, 'n',  0xfb, 0xa3, 'b',  'i',  'g',  0xcf, 0xff,
                                 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xa1, 'b',  0xc3};
    rd = read_from(mp2, sizeof mp2, true);
    int64_t i;
    bool b;
    CHECK(vd_reader_next(rd.r, &rec) == VD_READ_RECORD);
    CHECK(vd_record_str(&rec, "new_key", &s, &n) == 0 && str_is(s, n, "v"));
    CHECK(vd_record_int(&rec, "n", &i) == 0 && i == -5);
    CHECK(vd_record_type(&rec, "big") == VD_FIELD_INT);
    CHECK(vd_record_int(&rec, "big", &i) == -1); /* 2^64 - 1 does not fit int64_t */
    CHECK(vd_record_bool(&rec, "b", &b) == 0 && b);
    CHECK(vd_record_render(&rec, VD_FMT_JSON, buf, sizeof buf, NULL) == 0);
    CHECK_STR(buf, "{\"new_key\":\"v\",\"n\":-5,\"big\":18446744073709551615,\"b\":true}\n");
    reading_done(&rd);

    /* {"":"","e":""}: empty strings come back as "" (msgpack-c's pointer for them is NULL, which
     * a caller's memcpy(dst, s, 0) must not get), and the empty key can be looked up. Found by
     * tests/fuzz/fuzz_record (memchr on the NULL key). */
    const unsigned char mp3[] = {0x82, 0xa0, 0xa0, 0xa1, 'e', 0xa0};
    rd = read_from(mp3, sizeof mp3, false);
    CHECK(vd_reader_next(rd.r, &rec) == VD_READ_RECORD);
    s = NULL;
    CHECK(vd_record_key(&rec, 0, &s, &n) == 0 && s != NULL && n == 0);
    s = NULL;
    CHECK(vd_record_str(&rec, "", &s, &n) == 0 && s != NULL && n == 0);
    s = NULL;
    CHECK(vd_record_str(&rec, "e", &s, &n) == 0 && s != NULL && n == 0);
    reading_done(&rd);
}

/* ---------------------------------------------------------------- renderers */

static void test_render_buffer(void)
{
    vd_record recs[1] = {full_record()};
    bytes mp = write_records(recs, 1, VD_FMT_MSGPACK);
    bytes csv = write_records(recs, 1, VD_FMT_CSV);
    const char *row = csv.p + strlen(CSV_HEADER);
    reading rd = read_from(mp.p, mp.len, false);
    vd_record_view rec, smtp;
    CHECK(vd_reader_next(rd.r, &rec) == VD_READ_RECORD);

    /* Asking for the length, then a buffer one short (no room for the NUL), then enough. */
    char buf[4096];
    size_t n = 0, m = 0;
    errno = 0;
    CHECK(vd_record_render(&rec, VD_FMT_JSON, NULL, 0, &n) == -1 && errno == ERANGE);
    CHECK(n == strlen(FULL_JSON));
    errno = 0;
    CHECK(vd_record_render(&rec, VD_FMT_JSON, buf, n, &m) == -1 && errno == ERANGE && m == n);
    memset(buf, 'x', sizeof buf);
    CHECK(vd_record_render(&rec, VD_FMT_JSON, buf, n + 1, &m) == 0 && m == n);
    CHECK_STR(buf, FULL_JSON);

    /* CSV: the writer's row; MSGPACK: the record's bytes as read. */
    CHECK(vd_record_render(&rec, VD_FMT_CSV, buf, sizeof buf, &n) == 0);
    CHECK_STR(buf, row);
    CHECK(vd_record_render(&rec, VD_FMT_MSGPACK, buf, sizeof buf, &n) == 0);
    CHECK(n == mp.len && memcmp(buf, mp.p, n) == 0);

    /* A map inside the record renders as JSON; it has no bytes of its own to copy. */
    CHECK(vd_record_map(&rec, "smtp", &smtp) == 0);
    CHECK(vd_record_render(&smtp, VD_FMT_JSON, buf, sizeof buf, &n) == 0);
    CHECK_STR(buf, "{\"code\":250,\"enhanced\":\"2.1.5\",\"text\":\"Recipient ok\"}\n");
    errno = 0;
    CHECK(vd_record_render(&smtp, VD_FMT_MSGPACK, buf, sizeof buf, &n) == -1 && errno == EINVAL);

    /* No record, or no such format. */
    vd_record_view none = {0};
    errno = 0;
    CHECK(vd_record_render(&none, VD_FMT_JSON, buf, sizeof buf, &n) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(vd_record_render(&rec, (vd_format)42, buf, sizeof buf, &n) == -1 && errno == EINVAL);
    reading_done(&rd);

    /* The CSV header, the same way. */
    CHECK(vd_record_csv_header(buf, sizeof buf, &n) == 0 && n == strlen(CSV_HEADER));
    CHECK_STR(buf, CSV_HEADER);
    errno = 0;
    CHECK(vd_record_csv_header(buf, 10, &n) == -1 && errno == ERANGE && n == strlen(CSV_HEADER));

    /* The render bound (32 bytes per msgpack byte): {"email":{{...{"\"\"...":nil}...:nil}:nil}}
     * as in test_hostile_keys, through the public renderer. */
    unsigned char hostile[128];
    size_t h = 0;
    const unsigned char head[] = {0x81, 0xa5, 'e', 'm', 'a', 'i', 'l'};
    memcpy(hostile, head, sizeof head);
    h += sizeof head;
    for (int i = 0; i < 14; i++)
        hostile[h++] = 0x81;
    hostile[h++] = 0xd9, hostile[h++] = 40;
    memset(hostile + h, '"', 40);
    h += 40;
    for (int i = 0; i < 14; i++)
        hostile[h++] = 0xc0;
    rd = read_from(hostile, h, false);
    CHECK(vd_reader_next(rd.r, &rec) == VD_READ_RECORD); /* it is a record: a map */
    for (int fmt = 0; fmt < 2; fmt++) {
        errno = 0;
        CHECK(vd_record_render(&rec, fmt ? VD_FMT_CSV : VD_FMT_JSON, buf, sizeof buf, &n) == -1 &&
              errno == EFBIG);
    }
    reading_done(&rd);
    free(mp.p);
    free(csv.p);
}

static void test_render_file(void)
{
    vd_record recs[2] = {full_record(), minimal_record()};
    bytes mp = write_records(recs, 2, VD_FMT_MSGPACK);
    for (int fmt = 0; fmt < 2; fmt++) {
        vd_format f = fmt ? VD_FMT_CSV : VD_FMT_JSON;
        bytes want = write_records(recs, 2, f);
        FILE *out = tmpfile();
        if (f == VD_FMT_CSV) CHECK(vd_record_fprint_csv_header(out) == 0);
        reading rd = read_from(mp.p, mp.len, true);
        vd_record_view rec;
        while (vd_reader_next(rd.r, &rec) == VD_READ_RECORD)
            CHECK(vd_record_fprint(&rec, f, out) == 0);
        CHECK(vd_reader_next(rd.r, &rec) == VD_READ_END);
        reading_done(&rd);
        bytes got = slurp(out);
        fclose(out);
        CHECK_STR(got.p, want.p); /* the writer and the reader's renderers agree */
        free(got.p);
        free(want.p);
    }

    FILE *full = fopen("/dev/full", "w");
    if (full) {
        setvbuf(full, NULL, _IONBF, 0); /* so the write itself fails, not a later flush */
        reading rd = read_from(mp.p, mp.len, false);
        vd_record_view rec;
        CHECK(vd_reader_next(rd.r, &rec) == VD_READ_RECORD);
        errno = 0;
        CHECK(vd_record_fprint(&rec, VD_FMT_JSON, full) == -1 && errno == ENOSPC);
        errno = 0;
        CHECK(vd_record_fprint_csv_header(full) == -1 && errno == ENOSPC);
        reading_done(&rd);
        fclose(full);
    }
    free(mp.p);
}

/* ---------------------------------------------------------------- the input line whole */

/* email_len carries the input line whole: a NUL inside it is part of the address, not its end.
 * JSON writes it as \u0000, so the line round-trips; CSV, which has no escape, writes U+FFFD
 * (docs/records.md). */
static void test_email_nul(void)
{
    static const char email[] = "jo\0hn@example.com"; /* 17 bytes, the NUL third */
    vd_record rec = minimal_record();
    rec.email = email;
    rec.email_len = sizeof email - 1;
    bytes mp = write_records(&rec, 1, VD_FMT_MSGPACK);
    /* {"email": str of 17 bytes, ...} */
    CHECK(mp.len > 23 && (unsigned char)mp.p[7] == 0xb1 && memcmp(mp.p + 8, email, 17) == 0);

    const char *want_json = "{\"email\":\"jo\\u0000hn@example.com\",\"status\":";
    const char *want_csv = "jo\xef\xbf\xbdhn@example.com,,,undeliverable,";
    for (int pipe_ = 0; pipe_ < 2; pipe_++) {
        reading rd = read_from(mp.p, mp.len, pipe_);
        vd_record_view v;
        const char *s;
        size_t n;
        char buf[1024];
        CHECK(vd_reader_next(rd.r, &v) == VD_READ_RECORD);
        CHECK(vd_record_str(&v, "email", &s, &n) == 0 && n == 17 && memcmp(s, email, 17) == 0);
        CHECK(vd_record_render(&v, VD_FMT_JSON, buf, sizeof buf, &n) == 0);
        CHECK_MSG(strncmp(buf, want_json, strlen(want_json)) == 0, "got %s", buf);
        CHECK(vd_record_render(&v, VD_FMT_CSV, buf, sizeof buf, &n) == 0);
        CHECK_MSG(strncmp(buf, want_csv, strlen(want_csv)) == 0, "got %s", buf);
        CHECK(memchr(buf, 0, n) == NULL); /* no NUL byte in the CSV */
        reading_done(&rd);
    }
    /* The writer's own JSON and CSV, and `cat`, say the same. */
    bytes json = write_records(&rec, 1, VD_FMT_JSON);
    CHECK_MSG(strncmp(json.p, want_json, strlen(want_json)) == 0, "got %s", json.p);
    bytes csv = write_records(&rec, 1, VD_FMT_CSV);
    CHECK(strncmp(csv.p + strlen(CSV_HEADER), want_csv, strlen(want_csv)) == 0);
    cat_result r = cat(mp.p, mp.len, VD_FMT_JSON, true);
    CHECK(r.rc == 0 && strcmp(r.out.p, json.p) == 0);
    cat_free(&r);
    free(mp.p);
    free(json.p);
    free(csv.p);

    /* email_len 0 is strlen(email), as before the field existed: the NUL ends it there. */
    rec.email_len = 0;
    json = write_records(&rec, 1, VD_FMT_JSON);
    CHECK(strncmp(json.p, "{\"email\":\"jo\",", 14) == 0);
    free(json.p);
    /* An empty input is "" either way; a NULL email leaves the key out. */
    rec.email = "";
    json = write_records(&rec, 1, VD_FMT_JSON);
    CHECK(strncmp(json.p, "{\"email\":\"\",", 12) == 0);
    free(json.p);
    rec.email = NULL;
    rec.email_len = 5;
    json = write_records(&rec, 1, VD_FMT_JSON);
    CHECK(strncmp(json.p, "{\"status\":", 10) == 0);
    free(json.p);
}

/* Every control character: JSON escapes each (RFC 8259 requires U+0000-U+001F; DEL and C1 are
 * escaped too), CSV keeps TAB, LF and CR (inside quotes) and writes U+FFFD for the others. */
static void test_control_characters(void)
{
    char email[32 + 1 + 4 + 1];
    size_t n = 0;
    for (int c = 0; c < 32; c++)
        email[n++] = (char)c;
    email[n++] = 0x7f;
    memcpy(email + n, "\xc2\x80\xc2\x9f", 4); /* U+0080, U+009F */
    n += 4;
    email[n] = 0;

    char want_json[512] = "{\"email\":\"", want_csv[512] = "\"";
    for (int c = 0; c < 32; c++) {
        char e[8];
        switch (c) {
        case '\b':
            strcpy(e, "\\b");
            break;
        case '\t':
            strcpy(e, "\\t");
            break;
        case '\n':
            strcpy(e, "\\n");
            break;
        case '\f':
            strcpy(e, "\\f");
            break;
        case '\r':
            strcpy(e, "\\r");
            break;
        default:
            snprintf(e, sizeof e, "\\u%04x", c);
        }
        strcat(want_json, e);
        if (c == '\t' || c == '\n' || c == '\r') {
            char raw[2] = {(char)c, 0};
            strcat(want_csv, raw);
        } else {
            strcat(want_csv, "\xef\xbf\xbd");
        }
    }
    strcat(want_json, "\\u007f\\u0080\\u009f\",");
    strcat(want_csv, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\",,,undeliverable,");

    vd_record rec = minimal_record();
    rec.email = email;
    rec.email_len = n;
    bytes json = write_records(&rec, 1, VD_FMT_JSON);
    CHECK_MSG(strncmp(json.p, want_json, strlen(want_json)) == 0, "got %s", json.p);
    bytes csv = write_records(&rec, 1, VD_FMT_CSV);
    CHECK_MSG(strncmp(csv.p + strlen(CSV_HEADER), want_csv, strlen(want_csv)) == 0, "got %s",
              csv.p);
    free(json.p);
    free(csv.p);
}

/* vd_record_pack: what a writer would write, into a buffer of its own. */
static void test_pack(void)
{
    vd_record r = full_record();
    size_t len = 0;
    char *json = vd_record_pack(&r, VD_FMT_JSON, &len);
    CHECK(json && len == strlen(FULL_JSON) && json[len] == '\0');
    CHECK_STR(json, FULL_JSON);
    free(json);
    char *csv = vd_record_pack(&r, VD_FMT_CSV, &len);
    CHECK(csv && !strncmp(csv, CSV_HEADER, strlen(CSV_HEADER)) && len > strlen(CSV_HEADER));
    free(csv);
    char *mp = vd_record_pack(&r, VD_FMT_MSGPACK, &len);
    CHECK(mp != NULL);
    FILE *in = mp ? fmemopen(mp, len, "rb") : NULL;
    vd_reader *rd = in ? vd_reader_new(in) : NULL;
    vd_record_view v;
    const char *s;
    size_t n;
    CHECK(rd && vd_reader_next(rd, &v) == VD_READ_RECORD);
    CHECK(rd && vd_record_str(&v, "method", &s, &n) == 0 && n == 4 && !memcmp(s, "smtp", 4));
    CHECK(rd && vd_reader_next(rd, &v) == VD_READ_END); /* exactly one record */
    if (rd) vd_reader_free(rd);
    if (in) fclose(in);
    free(mp);
}

/* The status names: one table, both ways, and nothing else accepted. */
static void test_status_names(void)
{
    static const char *const want[] = {"deliverable", "undeliverable", "risky", "unknown"};
    CHECK(VD_STATUS_COUNT == 4);
    for (int k = 0; k < VD_STATUS_COUNT; k++) {
        const char *name = vd_status_name((vd_status)k);
        CHECK_STR(name, want[k]);
        vd_status back = VD_STATUS_COUNT;
        CHECK(name && vd_status_parse(name, strlen(name), &back) == 0 && back == (vd_status)k);
        CHECK(name == vd_status_name((vd_status)k)); /* one static string */
    }
    CHECK(vd_status_name(VD_STATUS_COUNT) == NULL);
    CHECK(vd_status_name((vd_status)-1) == NULL);
    static const char *const refused[] = {"",       "Deliverable", "deliverable ", "risk",
                                          "riskyy", "valid",       "unknown\n"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        vd_status s = VD_STATUS_RISKY;
        CHECK_MSG(vd_status_parse(refused[i], strlen(refused[i]), &s) == -1 && s == VD_STATUS_RISKY,
                  "'%s' accepted", refused[i]);
    }
    vd_status s = VD_STATUS_RISKY;
    CHECK(vd_status_parse("unknown", 3, &s) == -1 && s == VD_STATUS_RISKY); /* "unk": a prefix */
    CHECK(vd_status_parse("risky\0", 6, &s) == -1);                         /* a NUL inside */
    CHECK(vd_status_parse(NULL, 0, &s) == -1);
}

int main(void)
{
    test_status_names();
    test_pack();
    test_round_trip();
    test_csv_quoting();
    test_truncated();
    test_not_a_map();
    test_hostile_strings();
    test_json_str();
    test_empty();
    test_foreign_keys();
    test_msgpack_passthrough();
    test_streaming();
    test_hostile_sizes();
    test_hostile_keys();
    test_write_errors();
    test_reader_clean_end();
    test_reader_truncated();
    test_reader_damaged();
    test_reader_unknown_keys();
    test_render_buffer();
    test_render_file();
    test_email_nul();
    test_control_characters();
    return check_done();
}

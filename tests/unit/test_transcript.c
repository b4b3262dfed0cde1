/* test_transcript.c — the transcript writer (transcript.h) through its API, without SMTP:
 * the format line by line, file names, escaping of hostile bytes (NUL, ESC, CR, DEL, C1
 * controls, invalid UTF-8, backslash) and its inverse, AUTH redaction, the size bound, an
 * unwritable or vanished directory and a full disk (RLIMIT_FSIZE), the sink outliving its
 * owner, the vd_smtp_trace adapter, and vd_engine_new refusing a bad --transcript DIR.
 * The SMTP side (which lines a session reports) is tests/unit/test_smtp.c; the real world
 * is tests/functional/transcript.sh. */
#include "destination.h"
#include "check.h"
#include "transcript.h"
#include "validora/validora.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <regex.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ----------------------------------------------------------------------- */

typedef struct logged {
    int n;
    vd_log_level level;
    char msg[1024];
} logged;

static void on_log(vd_log_level level, const char *msg, void *arg)
{
    logged *l = arg;
    l->n++;
    l->level = level;
    snprintf(l->msg, sizeof l->msg, "%s", msg);
}

static char *make_dir(void)
{
    static char dirs[8][64];
    static int n;
    char *d = dirs[n++ % 8];
    snprintf(d, 64, "/tmp/vd-transcript-XXXXXX");
    if (!mkdtemp(d)) {
        perror("mkdtemp");
        exit(2);
    }
    return d;
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char p[512];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static struct sockaddr_in sin4(const char *ip, int port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

/* The whole file (NUL-terminated; *len without it); NULL if unreadable. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    fclose(f);
    b[got] = '\0';
    if (len) *len = got;
    return b;
}

/* Splits text into lines (in place); returns their number. */
static int lines_of(char *text, char **lines, int max)
{
    int n = 0;
    char *p = text;
    while (*p && n < max) {
        lines[n++] = p;
        char *e = strchr(p, '\n');
        if (!e) break;
        *e = '\0';
        p = e + 1;
    }
    return n;
}

static bool matches(const char *s, const char *re)
{
    regex_t r;
    if (regcomp(&r, re, REG_EXTENDED | REG_NOSUB) != 0) return false;
    bool ok = regexec(&r, s, 0, NULL, 0) == 0;
    regfree(&r);
    return ok;
}

/* A record line "%8.3f D text": the text after the direction, or NULL. */
static const char *record_text(const char *line, char dir)
{
    if (strlen(line) < 11 || line[8] != ' ' || line[9] != dir || line[10] != ' ') return NULL;
    if (!matches(line, "^ *[0-9]+\\.[0-9]{3} [<>] ")) return NULL;
    return line + 11;
}

/* Every byte is LF, printable ASCII, or part of a valid UTF-8 sequence of a code point
 * that is no control: safe to cat, one record per line. Decodes by arithmetic, not by the
 * byte ranges transcript.c uses, so the two check each other. */
static bool cat_safe(const char *text, size_t n)
{
    const unsigned char *b = (const unsigned char *)text;
    for (size_t i = 0; i < n;) {
        unsigned c = b[i];
        if (c == '\n' || (c >= 0x20 && c < 0x7f)) {
            i++;
            continue;
        }
        size_t len = c >= 0xf0 && c < 0xf8   ? 4
                     : c >= 0xe0 && c < 0xf0 ? 3
                     : c >= 0xc0 && c < 0xe0 ? 2
                                             : 0;
        if (len == 0 || i + len > n) return false;
        unsigned long cp = c & (0xffu >> (len + 1));
        for (size_t k = 1; k < len; k++) {
            if ((b[i + k] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (b[i + k] & 0x3f);
        }
        static const unsigned long min[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
            (cp >= 0x80 && cp <= 0x9f))
            return false;
        i += len;
    }
    return true;
}

/* ---- the format -------------------------------------------------------------------- */

static void test_format(void)
{
    char *dir = make_dir();
    char err[512] = "";
    logged lg = {0};
    vd_transcript_sink *k = vd_transcript_sink_new(dir, on_log, &lg, err, sizeof err);
    CHECK_MSG(k != NULL, "%s", err);
    CHECK(vd_transcript_sink_on(k));
    CHECK_STR(vd_transcript_sink_dir(k), dir);
    struct sockaddr_in a = sin4("127.0.0.10", 25);
    vd_transcript *t = vd_transcript_open(k, "mx.valid.test", (struct sockaddr *)&a, sizeof a);
    CHECK(t != NULL);
    char path[512];
    snprintf(path, sizeof path, "%s", vd_transcript_path(t));

#define RECV(s) vd_transcript_received(t, s, strlen(s))
#define SENT(s) vd_transcript_sent(t, s, strlen(s))
    RECV("220 mx.valid.test ESMTP Postfix");
    SENT("EHLO verify.example.com");
    RECV("250-mx.valid.test");
    RECV("250-PIPELINING");
    RECV("250 ENHANCEDSTATUSCODES");
    SENT("STARTTLS");
    RECV("220 2.0.0 Ready to start TLS");
    vd_transcript_tls(t, "TLSv1.3", "TLS_AES_256_GCM_SHA384", false);
    SENT("EHLO verify.example.com");
    RECV("250 mx.valid.test");
    SENT("RCPT TO:<alice@valid.test>");
    RECV("250 2.1.5 Ok");
    SENT("QUIT");
    RECV("221 2.0.0 Bye");
    vd_transcript_end(t, VD_TRANSCRIPT_CLOSED_BY_CLIENT);
#undef RECV
#undef SENT

    /* DIR/YYYYMMDDTHHMMSS.mmmZ-SEQ-MXHOST.txt */
    const char *base = path + strlen(dir) + 1;
    CHECK_MSG(strncmp(path, dir, strlen(dir)) == 0 && path[strlen(dir)] == '/', "%s", path);
    CHECK_MSG(matches(base, "^[0-9]{8}T[0-9]{6}\\.[0-9]{3}Z-[0-9]{6,}-mx\\.valid\\.test\\.txt$"),
              "%s", base);

    size_t n;
    char *text = slurp(path, &n);
    CHECK(text != NULL);
    if (!text) return;
    CHECK(n > 0 && text[n - 1] == '\n');
    CHECK(strchr(text, '\r') == NULL);
    char *l[64];
    int nl = lines_of(text, l, 64);
    CHECK_MSG(nl == 18, "%d lines", nl);
    if (nl == 18) {
        CHECK_STR(l[0], "# validora transcript 1");
        CHECK_STR(l[1], "# mx: mx.valid.test 127.0.0.10:25");
        CHECK_MSG(matches(l[2], "^# started: [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                                "\\.[0-9]{3}Z$"),
                  "%s", l[2]);
        /* the name's time is the header's: 20261201T200000.123Z and 2026-12-01T20:00:00.123Z */
        char want[32];
        snprintf(want, sizeof want, "%.4s%.2s%.2sT%.2s%.2s%.2s.%.3sZ", l[2] + 11, l[2] + 16,
                 l[2] + 19, l[2] + 22, l[2] + 25, l[2] + 28, l[2] + 31);
        CHECK_MSG(strncmp(base, want, strlen(want)) == 0, "%s vs %s", base, want);
        CHECK_STR(record_text(l[3], '<'), "220 mx.valid.test ESMTP Postfix");
        CHECK_STR(record_text(l[4], '>'), "EHLO verify.example.com");
        CHECK_STR(record_text(l[5], '<'), "250-mx.valid.test");
        CHECK_STR(record_text(l[6], '<'), "250-PIPELINING");
        CHECK_STR(record_text(l[7], '<'), "250 ENHANCEDSTATUSCODES");
        CHECK_STR(record_text(l[8], '>'), "STARTTLS");
        CHECK_STR(record_text(l[9], '<'), "220 2.0.0 Ready to start TLS");
        CHECK_STR(l[10], "# tls: TLSv1.3 TLS_AES_256_GCM_SHA384 verified=no");
        CHECK_STR(record_text(l[11], '>'), "EHLO verify.example.com");
        CHECK_STR(record_text(l[14], '<'), "250 2.1.5 Ok");
        CHECK_STR(record_text(l[15], '>'), "QUIT");
        CHECK_STR(record_text(l[16], '<'), "221 2.0.0 Bye");
        /* %8.3f: the time field is 8 wide, and a fast session starts at 0.000 */
        CHECK_MSG(strncmp(l[3], "   0.0", 6) == 0, "%s", l[3]);
        CHECK_MSG(matches(l[17], "^# end: [0-9]+\\.[0-9]{3} closed by client$"), "%s", l[17]);
    }
    free(text);
    CHECK(lg.n == 0);

    /* IPv6, no MX name (the address stands in), verified TLS, other end reasons */
    struct sockaddr_in6 a6;
    memset(&a6, 0, sizeof a6);
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(2525);
    inet_pton(AF_INET6, "::1", &a6.sin6_addr);
    t = vd_transcript_open(k, NULL, (struct sockaddr *)&a6, sizeof a6);
    CHECK(t != NULL);
    snprintf(path, sizeof path, "%s", vd_transcript_path(t));
    vd_transcript_tls(t, "TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384", true);
    vd_transcript_end(t, "timeout");
    text = slurp(path, NULL);
    nl = text ? lines_of(text, l, 64) : 0;
    CHECK_MSG(nl == 5, "%d", nl);
    if (nl == 5) {
        CHECK_STR(l[1], "# mx: ::1 [::1]:2525");
        CHECK_STR(l[3], "# tls: TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384 verified=yes");
        CHECK_MSG(matches(l[4], "^# end: [0-9]+\\.[0-9]{3} timeout$"), "%s", l[4]);
    }
    CHECK_MSG(strstr(path, "-__1.txt") != NULL, "%s", path); /* ':' is not kept in a name */
    free(text);

    /* a hostile MX name: escaped in the header, tamed in the file name */
    t = vd_transcript_open(k, "evil/../\x1b[2J\nhost", (struct sockaddr *)&a, sizeof a);
    CHECK(t != NULL);
    snprintf(path, sizeof path, "%s", vd_transcript_path(t));
    vd_transcript_end(t, VD_TRANSCRIPT_CLOSED_BY_SERVER);
    CHECK_MSG(strchr(path + strlen(dir) + 1, '/') == NULL, "%s", path);
    CHECK_MSG(strstr(path, "-evil_..___2J_host.txt") != NULL, "%s", path);
    text = slurp(path, NULL);
    nl = text ? lines_of(text, l, 64) : 0;
    CHECK_MSG(nl == 4, "%d", nl);
    if (nl == 4) {
        CHECK_STR(l[1], "# mx: evil/../\\x1b[2J\\x0ahost 127.0.0.10:25");
        CHECK_MSG(matches(l[3], "^# end: [0-9]+\\.[0-9]{3} closed by server$"), "%s", l[3]);
    }
    free(text);

    /* file names sort by time, then by SEQ */
    char names[3][512];
    for (int i = 0; i < 3; i++) {
        t = vd_transcript_open(k, "mx.sort.test", (struct sockaddr *)&a, sizeof a);
        snprintf(names[i], sizeof names[i], "%s", vd_transcript_path(t));
        vd_transcript_end(t, NULL);
    }
    CHECK(strcmp(names[0], names[1]) < 0 && strcmp(names[1], names[2]) < 0);

    /* NULL everywhere is a no-op */
    vd_transcript_sent(NULL, "x", 1);
    vd_transcript_received(NULL, "x", 1);
    vd_transcript_tls(NULL, "a", "b", true);
    vd_transcript_end(NULL, "x");
    CHECK(vd_transcript_open(NULL, "mx", (struct sockaddr *)&a, sizeof a) == NULL);
    CHECK(vd_transcript_sink_trace(NULL) == NULL);
    CHECK(!vd_transcript_sink_on(NULL));
    vd_transcript_sink_free(NULL);

    vd_transcript_sink_free(k);
    CHECK(lg.n == 0);
    remove_dir(dir);
}

/* ---- escaping ---------------------------------------------------------------------- */

static void check_escape(const char *in, size_t len, const char *want)
{
    char out[256];
    size_t n = vd_transcript_escape(out, sizeof out, in, len);
    CHECK_MSG(n == strlen(want) && strcmp(out, want) == 0, "got '%s' want '%s'", out, want);
    /* and back */
    char back[256];
    memcpy(back, out, n);
    long m = vd_transcript_unescape(back, n);
    CHECK_MSG(m == (long)len && memcmp(back, in, len) == 0, "round trip of '%s'", want);
}

static void test_escaping(void)
{
    check_escape("250 Ok", 6, "250 Ok");
    check_escape("a\0b", 3, "a\\x00b");                             /* NUL */
    check_escape("\x1b[31mred\x1b[0m", 12, "\\x1b[31mred\\x1b[0m"); /* ESC */
    check_escape("250 a\rb", 7, "250 a\\x0db");                     /* a stray CR */
    check_escape("x\ny", 3, "x\\x0ay");                             /* LF: never a line end */
    check_escape("tab\there", 8, "tab\\x09here");
    check_escape("\x7f", 1, "\\x7f");                            /* DEL */
    check_escape("C:\\dir\\x41", 10, "C:\\\\dir\\\\x41");        /* backslash, even before "x41" */
    check_escape("\xff\xfe", 2, "\\xff\\xfe");                   /* never UTF-8 */
    check_escape("\xc3", 1, "\\xc3");                            /* a sequence cut short */
    check_escape("\xc3(", 2, "\\xc3(");                          /* a bad continuation */
    check_escape("\xc0\xaf", 2, "\\xc0\\xaf");                   /* overlong '/' */
    check_escape("\xe0\x80\xaf", 3, "\\xe0\\x80\\xaf");          /* overlong, 3 bytes */
    check_escape("\xed\xa0\x80", 3, "\\xed\\xa0\\x80");          /* a surrogate */
    check_escape("\xf4\x90\x80\x80", 4, "\\xf4\\x90\\x80\\x80"); /* above U+10FFFF */
    check_escape("\xc2\x9b", 2, "\\xc2\\x9b");                   /* C1 CSI */
    check_escape("\xc2\x85", 2, "\\xc2\\x85");                   /* C1 NEL */
    /* valid UTF-8 stays as it is */
    check_escape("b\xc3\xbc"
                 "cher",
                 7,
                 "b\xc3\xbc"
                 "cher");                                    /* ü */
    check_escape("\xc2\xa0", 2, "\xc2\xa0");                 /* U+00A0 */
    check_escape("\xe2\x82\xac", 3, "\xe2\x82\xac");         /* € */
    check_escape("\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80"); /* an emoji */
    check_escape("\xf4\x8f\xbf\xbf", 4, "\xf4\x8f\xbf\xbf"); /* U+10FFFF */

    /* every byte value, and random bytes: round trip, output always safe, at most 4x */
    char in[1024], out[4097];
    for (int i = 0; i < 256; i++)
        in[i] = (char)i;
    size_t n = vd_transcript_escape(out, sizeof out, in, 256);
    CHECK(n <= 4 * 256);
    CHECK(cat_safe(out, n));
    long m = vd_transcript_unescape(out, n);
    CHECK(m == 256 && memcmp(out, in, 256) == 0);
    srand(42);
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(rand() % (int)sizeof in);
        for (size_t i = 0; i < len; i++)
            in[i] = (char)(rand() % 4 == 0 ? 0x80 + rand() % 0x80 : rand() % 256);
        n = vd_transcript_escape(out, sizeof out, in, len);
        if (!(n <= 4 * len && strlen(out) == n && cat_safe(out, n))) {
            CHECK_MSG(0, "round %d: unsafe output", round);
            break;
        }
        m = vd_transcript_unescape(out, n);
        if (!(m == (long)len && memcmp(out, in, len) == 0)) {
            CHECK_MSG(0, "round %d: no round trip", round);
            break;
        }
    }
    /* a short buffer: the needed length, and a terminated prefix */
    char small[5];
    CHECK(vd_transcript_escape(small, sizeof small, "\x01\x02", 2) == 8);
    CHECK_STR(small, "\\x01");
    CHECK(vd_transcript_escape(NULL, 0, "\\", 1) == 2);
    /* what a reader refuses */
    char bad1[] = "a\\q", bad2[] = "a\\x4", bad3[] = "a\\xg1", bad4[] = "a\\";
    CHECK(vd_transcript_unescape(bad1, 3) == -1);
    CHECK(vd_transcript_unescape(bad2, 4) == -1);
    CHECK(vd_transcript_unescape(bad3, 5) == -1);
    CHECK(vd_transcript_unescape(bad4, 2) == -1);
    char upper[] = "\\x4A\\x4a";
    CHECK(vd_transcript_unescape(upper, 8) == 2 && memcmp(upper, "JJ", 2) == 0);

    /* hostile bytes through a file: each record is one line, the file is safe to cat */
    char *dir = make_dir();
    char err[512];
    vd_transcript_sink *k = vd_transcript_sink_new(dir, NULL, NULL, err, sizeof err);
    struct sockaddr_in a = sin4("127.0.0.1", 25);
    vd_transcript *t = vd_transcript_open(k, "mx.hostile.test", (struct sockaddr *)&a, sizeof a);
    char path[512];
    snprintf(path, sizeof path, "%s", vd_transcript_path(t));
    static const char hostile[] = "220-a\0b\x1b]0;pwned\x07\r\n\xff\xc3\\x00\\";
    vd_transcript_received(t, hostile, sizeof hostile - 1);
    vd_transcript_sent(t, "EHLO x\r", 7);
    vd_transcript_end(t, VD_TRANSCRIPT_CLOSED_BY_CLIENT);
    size_t len;
    char *text = slurp(path, &len);
    CHECK(text && cat_safe(text, len));
    char *l[16];
    int nl = text ? lines_of(text, l, 16) : 0;
    CHECK_MSG(nl == 6, "%d lines", nl);
    if (nl == 6) {
        const char *r = record_text(l[3], '<');
        CHECK_STR(r, "220-a\\x00b\\x1b]0;pwned\\x07\\x0d\\x0a\\xff\\xc3\\\\x00\\\\");
        char back[256];
        snprintf(back, sizeof back, "%s", r ? r : "");
        long bn = vd_transcript_unescape(back, strlen(back));
        CHECK(bn == (long)(sizeof hostile - 1) && memcmp(back, hostile, sizeof hostile - 1) == 0);
        CHECK_STR(record_text(l[4], '>'), "EHLO x\\x0d");
    }
    free(text);
    vd_transcript_sink_free(k);
    remove_dir(dir);
}

/* ---- AUTH -------------------------------------------------------------------------- */

static void test_auth_redaction(void)
{
    char *dir = make_dir();
    char err[512];
    vd_transcript_sink *k = vd_transcript_sink_new(dir, NULL, NULL, err, sizeof err);
    struct sockaddr_in a = sin4("127.0.0.1", 25);
    vd_transcript *t = vd_transcript_open(k, "mx.auth.test", (struct sockaddr *)&a, sizeof a);
    char path[512];
    snprintf(path, sizeof path, "%s", vd_transcript_path(t));
#define RECV(s) vd_transcript_received(t, s, strlen(s))
#define SENT(s) vd_transcript_sent(t, s, strlen(s))
    RECV("250 AUTH PLAIN LOGIN"); /* the server's AUTH keyword is no secret */
    /* PLAIN with an initial response: "\0user\0s3cret" */
    SENT("AUTH PLAIN AHVzZXIAczNjcmV0");
    RECV("235 2.7.0 Authentication successful");
    SENT("MAIL FROM:<a@b.test>");
    /* LOGIN: the secrets are the client's lines after the command, while the server says 334 */
    SENT("auth login");
    RECV("334 VXNlcm5hbWU6");
    SENT("dXNlcg==");
    RECV("334 UGFzc3dvcmQ6");
    SENT("czNjcmV0");
    RECV("535 5.7.8 Error: authentication failed");
    SENT("RSET");
    /* PLAIN without an initial response, then an empty one */
    SENT("AUTH PLAIN");
    RECV("334 ");
    SENT("AHVzZXIAczNjcmV0");
    RECV("235 2.7.0 Ok");
    /* a mechanism with a space-laden argument and a cancelled exchange */
    SENT("AUTH  CRAM-MD5   x y z");
    RECV("334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+");
    SENT("*");
    RECV("501 5.7.0 Authentication aborted");
    SENT("QUIT");
    vd_transcript_end(t, VD_TRANSCRIPT_CLOSED_BY_CLIENT);
#undef RECV
#undef SENT
    char *text = slurp(path, NULL);
    CHECK(text != NULL);
    if (!text) return;
    CHECK(strstr(text, "AHVzZXIAczNjcmV0") == NULL);
    CHECK(strstr(text, "dXNlcg==") == NULL);
    CHECK(strstr(text, "czNjcmV0") == NULL);
    CHECK(strstr(text, "x y z") == NULL);
    char *l[32];
    int nl = lines_of(text, l, 32);
    CHECK_MSG(nl == 24, "%d lines", nl);
    if (nl == 24) {
        CHECK_STR(record_text(l[3], '<'), "250 AUTH PLAIN LOGIN");
        CHECK_STR(record_text(l[4], '>'), "AUTH PLAIN ***");
        CHECK_STR(record_text(l[6], '>'), "MAIL FROM:<a@b.test>");
        CHECK_STR(record_text(l[7], '>'), "auth login");
        CHECK_STR(record_text(l[8], '<'), "334 VXNlcm5hbWU6");
        CHECK_STR(record_text(l[9], '>'), "***");
        CHECK_STR(record_text(l[11], '>'), "***");
        CHECK_STR(record_text(l[13], '>'), "RSET");
        CHECK_STR(record_text(l[14], '>'), "AUTH PLAIN");
        CHECK_STR(record_text(l[16], '>'), "***");
        CHECK_STR(record_text(l[18], '>'), "AUTH  CRAM-MD5 ***");
        CHECK_STR(record_text(l[20], '>'), "***");
        CHECK_STR(record_text(l[22], '>'), "QUIT");
    }
    free(text);
    vd_transcript_sink_free(k);
    remove_dir(dir);
}

/* ---- the size bound ---------------------------------------------------------------- */

static void test_size_bound(void)
{
    char *dir = make_dir();
    char err[512];
    logged lg = {0};
    vd_transcript_sink *k = vd_transcript_sink_new(dir, on_log, &lg, err, sizeof err);
    struct sockaddr_in a = sin4("127.0.0.22", 25);
    vd_transcript *t = vd_transcript_open(k, "mx.endless.test", (struct sockaddr *)&a, sizeof a);
    char path[512];
    snprintf(path, sizeof path, "%s", vd_transcript_path(t));
    char line[2048];
    memset(line, 'x', sizeof line);
    memcpy(line, "250-", 4);
    for (int i = 0; i < 1000; i++) /* 2 MB of lines, and escaped ones (4x) among them */
        vd_transcript_received(t, line, i % 10 == 0 ? 300 : sizeof line);
    for (int i = 0; i < 100; i++)
        vd_transcript_received(t, "\x01\x02\x03\x04", 4);
    vd_transcript_tls(t, "TLSv1.3", "X", false); /* after the bound: not written */
    vd_transcript_end(t, "protocol_error");
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK_MSG(st.st_size > VD_TRANSCRIPT_MAX_BYTES - 3000 &&
                  st.st_size <= VD_TRANSCRIPT_MAX_BYTES + 64,
              "size %lld", (long long)st.st_size);
    size_t n;
    char *text = slurp(path, &n);
    CHECK(text != NULL);
    if (text) {
        const char *tr = strstr(text, "\n# truncated\n");
        CHECK(tr != NULL);
        CHECK(tr && strstr(tr + 1, "# truncated") == tr + 1); /* once */
        CHECK(tr && strstr(tr, "# tls:") == NULL);
        CHECK(tr && strstr(tr, "\\x01") == NULL);
        /* after the mark, only the end line */
        CHECK(tr && matches(tr + 13, "^# end: [0-9]+\\.[0-9]{3} protocol_error\n$"));
        /* the limit is on bytes before the mark */
        CHECK(tr && (size_t)(tr - text) + 1 <= VD_TRANSCRIPT_MAX_BYTES);
    }
    free(text);
    CHECK(lg.n == 0);
    CHECK(vd_transcript_sink_on(k)); /* a bound is no error */
    vd_transcript_sink_free(k);
    remove_dir(dir);
}

/* ---- directories that cannot be written, a full disk ------------------------------- */

static void test_unwritable(void)
{
    char err[512] = "";
    logged lg = {0};
    /* at start-up: a clear message naming DIR */
    CHECK(vd_transcript_sink_new("/nonexistent/vd-transcripts", on_log, &lg, err, sizeof err) ==
          NULL);
    CHECK_MSG(strstr(err, "/nonexistent/vd-transcripts") && strstr(err, "No such file"), "%s", err);
    CHECK(vd_transcript_sink_new("/etc/passwd", on_log, &lg, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, "/etc/passwd") && strstr(err, "not a directory"), "%s", err);
    CHECK(vd_transcript_sink_new("", on_log, &lg, err, sizeof err) == NULL);
    CHECK(vd_transcript_sink_new(NULL, on_log, &lg, err, sizeof err) == NULL);
    if (geteuid() != 0) { /* root writes a mode 0555 directory all the same */
        char *ro = make_dir();
        chmod(ro, 0555);
        CHECK(vd_transcript_sink_new(ro, on_log, &lg, err, sizeof err) == NULL);
        CHECK_MSG(strstr(err, ro) && strstr(err, "cannot write"), "%s", err);
        chmod(ro, 0755);
        remove_dir(ro);
    }
    CHECK(lg.n == 0);

    /* the directory goes away later: the first failure is said once, then nothing */
    char *dir = make_dir();
    vd_transcript_sink *k = vd_transcript_sink_new(dir, on_log, &lg, err, sizeof err);
    CHECK(k != NULL);
    struct sockaddr_in a = sin4("127.0.0.1", 25);
    rmdir(dir);
    CHECK(vd_transcript_open(k, "mx.a.test", (struct sockaddr *)&a, sizeof a) == NULL);
    CHECK(lg.n == 1 && lg.level == VD_LOG_WARNING);
    CHECK_MSG(strstr(lg.msg, dir) != NULL, "%s", lg.msg);
    CHECK(!vd_transcript_sink_on(k));
    mkdir(dir, 0755); /* even when it is back: off for good */
    CHECK(vd_transcript_open(k, "mx.a.test", (struct sockaddr *)&a, sizeof a) == NULL);
    CHECK(lg.n == 1);
    vd_transcript_sink_free(k);
    remove_dir(dir);
}

static void test_full_disk(void)
{
    /* RLIMIT_FSIZE makes write() fail with EFBIG past the limit, as ENOSPC would */
    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_IGN);
    char *dir = make_dir();
    char err[512];
    logged lg = {0};
    vd_transcript_sink *k = vd_transcript_sink_new(dir, on_log, &lg, err, sizeof err);
    struct sockaddr_in a = sin4("127.0.0.1", 25);
    vd_transcript *t1 = vd_transcript_open(k, "mx.one.test", (struct sockaddr *)&a, sizeof a);
    vd_transcript *t2 = vd_transcript_open(k, "mx.two.test", (struct sockaddr *)&a, sizeof a);
    CHECK(t1 && t2);
    struct rlimit lim = {64 * 1024, old.rlim_max};
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    char line[1000];
    memset(line, 'y', sizeof line);
    for (int i = 0; i < 200; i++) /* 200 KB: past the limit */
        vd_transcript_received(t1, line, sizeof line);
    vd_transcript_received(t2, "250 Ok", 6);
    vd_transcript_end(t1, VD_TRANSCRIPT_CLOSED_BY_CLIENT);
    vd_transcript_end(t2, VD_TRANSCRIPT_CLOSED_BY_CLIENT);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_DFL);
    CHECK_MSG(lg.n == 1 && lg.level == VD_LOG_WARNING, "%d: %s", lg.n, lg.msg);
    CHECK_MSG(strstr(lg.msg, "mx.one.test") && strstr(lg.msg, "too large"), "%s", lg.msg);
    CHECK(!vd_transcript_sink_on(k));
    CHECK(vd_transcript_open(k, "mx.three.test", (struct sockaddr *)&a, sizeof a) == NULL);
    CHECK(lg.n == 1);
    vd_transcript_sink_free(k);
    remove_dir(dir);
}

/* ---- lifetime and the SMTP trace --------------------------------------------------- */

static void test_lifetime_and_trace(void)
{
    char *dir = make_dir();
    char err[512];
    logged lg = {0};
    vd_transcript_sink *k = vd_transcript_sink_new(dir, on_log, &lg, err, sizeof err);
    const vd_smtp_trace *tr = vd_transcript_sink_trace(k);
    CHECK(tr && tr->start && tr->line && tr->tls && tr->end && tr->arg == k);
    struct sockaddr_in a = sin4("127.0.0.12", 25);
    static const struct {
        vd_smtp_end how;
        vd_smtp_err err;
        const char *reason;
    } ends[] = {
        {VD_SMTP_END_CLIENT, VD_SMTP_OK, "closed by client"},
        {VD_SMTP_END_SERVER, VD_SMTP_OK, "closed by server"},
        {VD_SMTP_END_ERROR, VD_SMTP_ERR_TIMEOUT, "timeout"},
        {VD_SMTP_END_ERROR, VD_SMTP_ERR_PROTOCOL, "protocol_error"},
        {VD_SMTP_END_ERROR, VD_SMTP_ERR_CONNECT, "connect_failed"},
    };
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
        void *h = tr->start(tr->arg, "mx.tls.test", (struct sockaddr *)&a, sizeof a);
        CHECK(h != NULL);
        char path[512];
        snprintf(path, sizeof path, "%s", vd_transcript_path(h));
        tr->line(h, false, "220 hi", 6);
        tr->line(h, true, "EHLO x", 6);
        tr->tls(h, "TLSv1.3", "TLS_AES_128_GCM_SHA256", true);
        /* the owner lets go while the session still closes: the file is still finished */
        if (i == 0) {
            vd_transcript_sink_free(k);
            /* which flushed what was said so far, in case the process ends before the QUIT */
            char *early = slurp(path, NULL);
            CHECK(early && strstr(early, "< 220 hi\n") && strstr(early, "# tls:"));
            CHECK(early && !strstr(early, "# end:"));
            free(early);
        }
        tr->end(h, ends[i].how, ends[i].err);
        char *text = slurp(path, NULL);
        char *l[16];
        int nl = text ? lines_of(text, l, 16) : 0;
        CHECK_MSG(nl == 7, "%d", nl);
        if (nl == 7) {
            CHECK_STR(record_text(l[3], '<'), "220 hi");
            CHECK_STR(record_text(l[4], '>'), "EHLO x");
            CHECK_STR(l[5], "# tls: TLSv1.3 TLS_AES_128_GCM_SHA256 verified=yes");
            char want[96];
            snprintf(want, sizeof want, "^# end: [0-9]+\\.[0-9]{3} %s$", ends[i].reason);
            CHECK_MSG(matches(l[6], want), "%s", l[6]);
        }
        free(text);
        if (i == 0) break; /* the sink is gone now (freed with its last transcript) */
    }
    /* the others on a sink that stays */
    k = vd_transcript_sink_new(dir, on_log, &lg, err, sizeof err);
    tr = vd_transcript_sink_trace(k);
    for (size_t i = 1; i < sizeof ends / sizeof ends[0]; i++) {
        void *h = tr->start(tr->arg, "mx.tls.test", (struct sockaddr *)&a, sizeof a);
        char path[512];
        snprintf(path, sizeof path, "%s", vd_transcript_path(h));
        tr->end(h, ends[i].how, ends[i].err);
        char *text = slurp(path, NULL);
        char *l[16];
        int nl = text ? lines_of(text, l, 16) : 0;
        char want[96];
        snprintf(want, sizeof want, "^# end: [0-9]+\\.[0-9]{3} %s$", ends[i].reason);
        CHECK_MSG(nl == 4 && matches(l[3], want), "%s", nl >= 4 ? l[3] : "(short)");
        free(text);
    }
    vd_transcript_sink_free(k);
    CHECK(lg.n == 0);
    remove_dir(dir);
}

/* ---- the engine -------------------------------------------------------------------- */

static void test_engine_refuses_bad_dir(void)
{
    struct event_base *base = event_base_new();
    vd_engine_config c;
    vd_engine_config_init(&c);
    c.dns_servers = "127.0.0.1:5354";
    c.transcript_dir = "/nonexistent/transcripts-dir";
    c.allow_private_destinations = true;
    char err[512] = "";
    vd_engine *e = vd_engine_new(base, &c, err, sizeof err);
    CHECK(e == NULL);
    CHECK_MSG(strstr(err, "/nonexistent/transcripts-dir") != NULL, "%s", err);
    vd_engine_free(e);
    event_base_free(base);
}

/* ---- reading back: vd_transcript_parse ------------------------------------------------- */

/* What the writer wrote, the reader gives back byte for byte (one escaping, one unescaping):
 * the banner, each command's verb and line, each reply, and the end as the last reply's
 * `then`. */
static void test_read_back(void)
{
    char *dir = make_dir();
    char err[512];
    vd_transcript_sink *k = vd_transcript_sink_new(dir, NULL, NULL, err, sizeof err);
    struct sockaddr_in a = sin4("192.0.2.7", 25);
    vd_transcript *t = vd_transcript_open(k, "mx.example", (struct sockaddr *)&a, sizeof a);
    CHECK(t != NULL);
    if (!t) return;
    static const char hostile[] = "250-caf\xc3\xa9 \\ \x01\x1b[2J\x00"
                                  "end";
    size_t hl = sizeof hostile - 1;
    char path[512];
    snprintf(path, sizeof path, "%s", vd_transcript_path(t));
    vd_transcript_received(t, "220 mx.example ESMTP", 20);
    vd_transcript_sent(t, "EHLO client.example", 19);
    vd_transcript_received(t, hostile, hl);
    vd_transcript_received(t, "250 SIZE 1000", 13);
    vd_transcript_sent(t, "MAIL FROM:<a@client.example>", 28);
    vd_transcript_received(t, "250 2.1.0 Ok", 12);
    vd_transcript_sent(t, "rcpt to:<b@example>", 19);
    vd_transcript_received(t, "550 5.1.1 no\\such", 17);
    vd_transcript_end(t, VD_TRANSCRIPT_CLOSED_BY_SERVER);
    vd_transcript_sink_free(k);

    size_t len;
    char *text = slurp(path, &len);
    CHECK(text != NULL);
    vd_transcript_script s;
    int rc = text ? vd_transcript_parse(text, len, &s, err, sizeof err) : -1;
    CHECK_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        CHECK(s.banner.nlines == 1 && s.banner.lens[0] == 20 &&
              !memcmp(s.banner.lines[0], "220 mx.example ESMTP", 20));
        CHECK(s.nsteps == 3);
        CHECK_STR(s.steps[0].verb, "EHLO");
        CHECK_STR(s.steps[0].cmd, "EHLO client.example");
        CHECK(s.steps[0].reply.nlines == 2);
        CHECK(s.steps[0].reply.lens[0] == hl && !memcmp(s.steps[0].reply.lines[0], hostile, hl));
        CHECK_STR(s.steps[1].verb, "MAIL");
        CHECK_STR(s.steps[2].verb, "RCPT"); /* upper case, whatever the capture's */
        CHECK(s.steps[2].reply.lens[0] == 17 &&
              !memcmp(s.steps[2].reply.lines[0], "550 5.1.1 no\\such", 17));
        CHECK_STR(s.end, "closed by server");
        CHECK(s.steps[2].reply.then == VD_TRANSCRIPT_CLOSE);
        CHECK(s.steps[0].reply.then == VD_TRANSCRIPT_GO_ON);
        vd_transcript_script_clear(&s);
    }
    free(text);
    remove_dir(dir);
}

/* STARTTLS goes (playback has no certificate): the keyword, the exchange and the EHLO before
 * an accepted one; a timeout hangs; bad input is refused with its line. */
static void test_read_rules(void)
{
    static const char tls[] = "# validora transcript 1\n"
                              "0.001 < 220 hi\n"
                              "0.002 > EHLO me\n"
                              "0.003 < 250-hi\n"
                              "0.003 < 250 STARTTLS\n"
                              "0.004 > STARTTLS\n"
                              "0.005 < 220 go ahead\n"
                              "# tls: TLSv1.3 TLS_AES_128_GCM_SHA256 verified=no\n"
                              "0.006 > EHLO me\n"
                              "0.007 < 250-hi\n"
                              "0.007 < 250-STARTTLS\n"
                              "0.007 < 250 8BITMIME\n"
                              "0.008 > RCPT TO:<x@y>\n"
                              "# end: 0.009 timeout\n";
    vd_transcript_script s;
    char err[256];
    int rc = vd_transcript_parse(tls, sizeof tls - 1, &s, err, sizeof err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        CHECK(s.nsteps == 2);
        CHECK_STR(s.steps[0].verb, "EHLO");
        CHECK(s.steps[0].reply.nlines == 2);
        CHECK(s.steps[0].reply.lens[1] == 12 &&
              !memcmp(s.steps[0].reply.lines[1], "250 8BITMIME", 12));
        CHECK_STR(s.steps[1].verb, "RCPT");
        CHECK(s.steps[1].reply.nlines == 0 && s.steps[1].reply.then == VD_TRANSCRIPT_HANG);
        vd_transcript_script_clear(&s);
    }
    static const char bad[] = "# validora transcript 1\n0.1 < 220 a\\qb\n";
    CHECK(vd_transcript_parse(bad, sizeof bad - 1, &s, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "line 2:") != NULL, "%s", err);
    static const char v2[] = "# validora transcript 2\n";
    CHECK(vd_transcript_parse(v2, sizeof v2 - 1, &s, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "line 1:") != NULL, "%s", err);

    vd_transcript_reply r;
    CHECK(vd_transcript_reply_parse("550-a\n550 b\nclose", 17, &r, err, sizeof err) == 0);
    CHECK(r.nlines == 2 && r.then == VD_TRANSCRIPT_CLOSE);
    vd_transcript_reply_clear(&r);
    CHECK(vd_transcript_reply_parse("", 0, &r, err, sizeof err) == -1);
}

int main(void)
{
    vd_destination_allow_private(true); /* the servers here are on loopback */
    test_format();
    test_escaping();
    test_auth_redaction();
    test_size_bound();
    test_unwritable();
    test_full_disk();
    test_lifetime_and_trace();
    test_engine_refuses_bad_dir();
    test_read_back();
    test_read_rules();
    return check_done();
}

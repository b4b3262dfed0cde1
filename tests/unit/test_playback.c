/* test_playback.c — a rule test's pieces apart from `validora rules test`: the loader
 * (testfile.h) on a file written here, each loopback server alone (playback_dns.h,
 * playback_smtp.h, playback_http.h) driven by a hand-written client, the HTTP server's
 * patterns through the matcher it is given, and the world's problems (playback_world.h).
 * The whole runner is tests/rules (ctest -R '^rules\.') and tests/functional. */
#include "check.h"
#include "playback_dns.h"
#include "playback_http.h"
#include "playback_smtp.h"
#include "playback_world.h"
#include "testfile.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char TEST_FILE[] =
    "return {\n"
    "  address = 'bob@pb.test',\n"
    "  dns = {\n"
    "    ['pb.test'] = { mx = { { 10, 'mx.pb.test' } } },\n"
    "    ['mx.pb.test'] = { a = { '192.0.2.9' } },\n"
    "  },\n"
    "  sessions = {\n"
    "    { banner = '220 mx.pb.test ESMTP', replies = { RCPT = '550 5.1.1 no such user' } },\n"
    "  },\n"
    "  http = { { method = 'POST', path = '/x', body_matches = '^id=', status = 201,\n"
    "             body = 'made' } },\n"
    "  expect = { status = 'undeliverable' },\n"
    "}\n";

static char test_path[64];

static int load(vd_pb_test *t)
{
    snprintf(test_path, sizeof test_path, "/tmp/vd-playback-XXXXXX.lua");
    int fd = mkstemps(test_path, 4);
    if (fd < 0 || write(fd, TEST_FILE, sizeof TEST_FILE - 1) != (ssize_t)(sizeof TEST_FILE - 1)) {
        perror("test file");
        exit(2);
    }
    close(fd);
    char err[512];
    int rc = vd_pb_test_load(test_path, t, err, sizeof err);
    CHECK_MSG(rc == 0, "%s", err);
    unlink(test_path);
    return rc;
}

/* Runs base for ms milliseconds. */
static void pump(struct event_base *base, int ms)
{
    struct timeval tv = {0, ms * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

/* What the peer sent so far (NUL-terminated). */
static size_t take(int fd, char *buf, size_t size)
{
    ssize_t n = recv(fd, buf, size - 1, MSG_DONTWAIT);
    buf[n > 0 ? n : 0] = '\0';
    return n > 0 ? (size_t)n : 0;
}

static int connect_to(int type, uint32_t ip, int port)
{
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(ip)};
    int fd = socket(AF_INET, type, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("connect");
        exit(2);
    }
    return fd;
}

/* A test file is data: one that runs forever, eats memory, or reaches for os is refused with
 * the profile's message (sandbox.c's testfile profile: its budget and cap). */
static void test_loader_limits(void)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"while true do end return {}", "runs too long"},
        {"local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(4096) .. i end return t", "memory"},
        {"os.exit(3) return {}", "os"},
        {"return { address = string.dump(print) }", "dump"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[64];
        snprintf(path, sizeof path, "/tmp/vd-playback-XXXXXX.lua");
        int fd = mkstemps(path, 4);
        size_t n = strlen(cases[i].text);
        if (fd < 0 || write(fd, cases[i].text, n) != (ssize_t)n) exit(2);
        close(fd);
        vd_pb_test t;
        char err[512] = "";
        int rc = vd_pb_test_load(path, &t, err, sizeof err);
        CHECK_MSG(rc != 0 && strstr(err, cases[i].want), "case %zu: rc %d, %s", i, rc, err);
        vd_pb_test_clear(&t);
        unlink(path);
    }
}

static void test_loader(const vd_pb_test *t)
{
    CHECK(t->nchecks == 1 && !strcmp(t->checks[0].address, "bob@pb.test"));
    CHECK(t->nnames == 2 && t->nsessions == 1 && t->nhttp == 1);
    const vd_pb_name *mx = vd_pb_find_name(t, "mx.pb.test");
    CHECK(mx && mx->a && (mx->ip >> 24) == 127); /* served on loopback, whatever the file says */
    CHECK(vd_pb_find_name(t, "other.test") == NULL);
    CHECK(t->sessions[0].inline_ && t->sessions[0].nverbs == 1);
}

/* The test files' pattern language: Lua patterns, and their errors as "body_matches: ...". */
static void test_pattern(void)
{
    char why[200];
    CHECK(vd_pb_pattern_match(NULL, "id=42", 5, "^id=%d+$", why, sizeof why));
    CHECK(!vd_pb_pattern_match(NULL, "x", 1, "^id=", why, sizeof why));
    CHECK_STR(why, "does not match ^id=");
    CHECK(!vd_pb_pattern_match(NULL, "x", 1, "[", why, sizeof why));
    CHECK_MSG(!strncmp(why, "body_matches: ", 14), "%s", why);
}

/* The DNS responder alone: an MX query for a name of the test is answered from it. */
static void test_dns(struct event_base *base, const vd_pb_test *t)
{
    char err[256];
    vd_pb_dns *d = vd_pb_dns_new(base, t, err, sizeof err);
    CHECK_MSG(d != NULL, "%s", err);
    if (!d) return;
    static const unsigned char q[] = {
        0x12, 0x34, 0x01, 0x00, 0,   1,   0,   0, 0, 0,  0, 0, 2,
        'p',  'b',  4,    't',  'e', 's', 't', 0, 0, 15, 0, 1}; /* pb.test MX IN */
    int fd = connect_to(SOCK_DGRAM, INADDR_LOOPBACK, vd_pb_dns_port(d));
    CHECK(send(fd, q, sizeof q, 0) == (ssize_t)sizeof q);
    pump(base, 50);
    unsigned char a[512];
    ssize_t n = recv(fd, a, sizeof a, MSG_DONTWAIT);
    CHECK(n > 12);
    if (n > 12) {
        CHECK(a[0] == 0x12 && a[1] == 0x34);        /* its id */
        CHECK((a[2] & 0x80) && (a[3] & 0x0f) == 0); /* an answer, NOERROR */
        CHECK(a[6] == 0 && a[7] == 1);              /* one MX */
    }
    close(fd);
    vd_pb_dns_free(d);
}

/* The SMTP playback server alone: the session's banner, its RCPT reply, the defaults for
 * the rest, and a problem for what it has no reply for. */
static void test_smtp(struct event_base *base, vd_pb_test *t)
{
    char err[256], buf[512];
    vd_pb_msgs msgs = {0};
    vd_pb_smtp *s = vd_pb_smtp_new(base, t, &msgs, err, sizeof err);
    CHECK_MSG(s != NULL, "%s", err);
    if (!s) return;
    int fd = connect_to(SOCK_STREAM, vd_pb_find_name(t, "mx.pb.test")->ip, vd_pb_smtp_port(s));
    pump(base, 50);
    take(fd, buf, sizeof buf);
    CHECK_STR(buf, "220 mx.pb.test ESMTP\r\n");
    CHECK(vd_pb_smtp_connections(s) == 1);
    static const char *const dialogue[][2] = {
        {"EHLO me\r\n", "250 playback.invalid\r\n"},
        {"MAIL FROM:<a@me>\r\n", "250 2.1.0 Ok\r\n"},
        {"RCPT TO:<bob@pb.test>\r\n", "550 5.1.1 no such user\r\n"},
        {"RCPT TO:<eve@pb.test>\r\n", "550 5.1.1 no such user\r\n"}, /* a string: every time */
        {"VRFY bob\r\n", "421 4.3.0 playback: no reply for this command\r\n"},
    };
    for (size_t i = 0; i < sizeof dialogue / sizeof dialogue[0]; i++) {
        CHECK(send(fd, dialogue[i][0], strlen(dialogue[i][0]), 0) > 0);
        pump(base, 30);
        take(fd, buf, sizeof buf);
        CHECK_STR(buf, dialogue[i][1]);
    }
    CHECK(vd_pb_smtp_connections(s) == 0); /* the 421 closed it */
    vd_pb_smtp_finish(s);
    CHECK(msgs.n == 1);
    CHECK_MSG(msgs.n && strstr(msgs.v[0], "session 1 (inline): the client sent \"VRFY bob\""), "%s",
              msgs.n ? msgs.v[0] : "");
    close(fd);
    vd_pb_smtp_free(s);
    vd_pb_msgs_clear(&msgs);
}

typedef struct seen {
    int calls;
    char subject[64], pattern[64];
} seen;

static bool match_spy(void *arg, const char *subject, size_t len, const char *pattern, char *why,
                      size_t whylen)
{
    seen *s = arg;
    s->calls++;
    snprintf(s->subject, sizeof s->subject, "%.*s", (int)len, subject);
    snprintf(s->pattern, sizeof s->pattern, "%s", pattern);
    return vd_pb_pattern_match(NULL, subject, len, pattern, why, whylen);
}

static void http_request(struct event_base *base, int port, const char *req, char *buf, size_t size)
{
    int fd = connect_to(SOCK_STREAM, INADDR_LOOPBACK, port);
    CHECK(send(fd, req, strlen(req), 0) == (ssize_t)strlen(req));
    pump(base, 80);
    take(fd, buf, size);
    close(fd);
}

/* The HTTP playback server alone: its entry when the request is the one expected (the body
 * pattern asked of the matcher it was given), a problem and a 500 past the entries. */
static void test_http(struct event_base *base, const vd_pb_test *t)
{
    char err[256], buf[1024];
    vd_pb_msgs msgs = {0};
    seen spy = {0};
    vd_pb_httpd *h = vd_pb_httpd_new(base, t, &msgs, match_spy, &spy, err, sizeof err);
    CHECK_MSG(h != NULL, "%s", err);
    if (!h) return;
    int port = vd_pb_httpd_port(h);
    http_request(base, port, "POST /x HTTP/1.0\r\nContent-Length: 5\r\n\r\nid=42", buf, sizeof buf);
    CHECK_MSG(!strncmp(buf, "HTTP/1.0 201", 12) || !strncmp(buf, "HTTP/1.1 201", 12), "%s", buf);
    CHECK(strstr(buf, "\r\n\r\nmade") != NULL);
    CHECK(spy.calls == 1 && !strcmp(spy.subject, "id=42") && !strcmp(spy.pattern, "^id="));
    http_request(base, port, "GET /y HTTP/1.0\r\n\r\n", buf, sizeof buf);
    CHECK(strstr(buf, " 500 ") != NULL);
    CHECK(vd_pb_httpd_requests(h) == 2);
    vd_pb_httpd_finish(h);
    CHECK(msgs.n == 1);
    CHECK_MSG(msgs.n && strstr(msgs.v[0], "http request 2 (GET \"/y\"): no http entry left"), "%s",
              msgs.n ? msgs.v[0] : "");
    vd_pb_httpd_free(h);
    vd_pb_msgs_clear(&msgs);
}

/* The world: nothing played, each server's problems at the end, HTTP's first. */
static void test_world(struct event_base *base, vd_pb_test *t)
{
    char err[256];
    vd_pb_msgs msgs = {0};
    vd_pb_world *w = vd_pb_world_new(base, t, &msgs, vd_pb_pattern_match, NULL, err, sizeof err);
    CHECK_MSG(w != NULL, "%s", err);
    if (!w) return;
    CHECK(vd_pb_world_dns_port(w) > 0 && vd_pb_world_smtp_port(w) > 0 &&
          vd_pb_world_http_port(w) > 0);
    vd_pb_world_finish(w);
    CHECK(msgs.n == 2);
    if (msgs.n == 2) {
        CHECK_MSG(strstr(msgs.v[0], "http[1] (POST /x) was never requested"), "%s", msgs.v[0]);
        CHECK_MSG(strstr(msgs.v[1], "session 1 (inline) was never connected"), "%s", msgs.v[1]);
    }
    vd_pb_world_free(w);
    vd_pb_msgs_clear(&msgs);
}

int main(void)
{
    vd_pb_test t;
    if (load(&t) != 0) return check_done();
    struct event_base *base = event_base_new();
    test_loader(&t);
    test_pattern();
    test_loader_limits();
    test_dns(base, &t);
    test_smtp(base, &t);
    test_http(base, &t);
    test_world(base, &t);
    vd_pb_test_clear(&t);
    event_base_free(base);
    return check_done();
}

/* test_http.c — engine/http.c against a real HTTPS server on loopback: tests/unit/http_server.py
 * (Python's http.server behind ssl), with a certificate made by `openssl req` for this run.
 * GET and POST, verification with and without the CA, redirects and their bound, https ->
 * http refused, 303, body and header bounds, a timeout against a listener that never answers,
 * cookies sent back and expired, a kept connection reused (counted by the server), cancelling
 * mid-request, bad arguments. And the cookie jar's rules on their own. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>
#include "destination.h"
#include "check.h"
#include "http.h"
#include "tls.h"

static struct event_base *base;
static int https_port, http_port, silent_port, dns_port;
static pid_t server_pid = -1;

typedef struct got {
    bool done;
    vd_http_err err;
    char errmsg[512];
    int status;
    char body[4096];
    size_t body_len;
    char url[512];
    char ctype[128];
} got;

static void on_resp(const vd_http_response *r, void *arg)
{
    got *g = arg;
    g->done = true;
    g->err = r->err;
    snprintf(g->errmsg, sizeof g->errmsg, "%s", r->errmsg ? r->errmsg : "");
    g->status = r->status;
    g->body_len = r->body_len;
    snprintf(g->body, sizeof g->body, "%.*s", (int)(r->body_len < 4000 ? r->body_len : 4000),
             r->body ? r->body : "");
    snprintf(g->url, sizeof g->url, "%s", r->url ? r->url : "");
    for (size_t i = 0; i < r->nheaders; i++)
        if (!strcmp(r->headers[i].name, "content-type"))
            snprintf(g->ctype, sizeof g->ctype, "%s", r->headers[i].value);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void loop_for(double secs)
{
    struct timeval tv = {(time_t)secs, (suseconds_t)((secs - (double)(time_t)secs) * 1e6)};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

/* Runs one request to completion (at most 15 s). */
static got request(vd_http *h, const char *method, const char *url, const char *body,
                   vd_cookie_jar *jar, double timeout)
{
    got g = {0};
    vd_http_request rq = {.method = method,
                          .url = url,
                          .body = body,
                          .body_len = body ? strlen(body) : 0,
                          .jar = jar,
                          .timeout = timeout};
    vd_http_req *r = vd_http_start(h, &rq, on_resp, &g);
    CHECK(r != NULL);
    CHECK(!g.done); /* never before vd_http_start returns */
    double until = now() + 15;
    while (r && !g.done && now() < until)
        event_base_loop(base, EVLOOP_ONCE);
    CHECK_MSG(g.done, "no answer for %s", url);
    return g;
}

static char *url_of(char *buf, size_t len, bool tls, const char *path)
{
    snprintf(buf, len, "%s://127.0.0.1:%d%s", tls ? "https" : "http", tls ? https_port : http_port,
             path);
    return buf;
}

static int start_server(const char *dir)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
             "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1,DNS:secure.test "
             "-keyout %s/key.pem "
             "-out %s/cert.pem 2>/dev/null",
             dir, dir);
    if (system(cmd) != 0) return -1;
    const char *src = getenv("VALIDORA_SOURCE_DIR");
    char script[1024], cert[512], key[512];
    snprintf(script, sizeof script, "%s/tests/unit/http_server.py", src ? src : ".");
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    int fds[2];
    if (pipe(fds) != 0) return -1;
    server_pid = fork();
    if (server_pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execlp("python3", "python3", script, cert, key, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    int n = f ? fscanf(f, "%d %d %d %d", &https_port, &http_port, &silent_port, &dns_port) : 0;
    if (f) fclose(f);
    return n == 4 ? 0 : -1;
}

/* docs/errors.md's "## HTTP" table lists vd_http_err_names, in order. */
static void test_doc_names(void)
{
    const char *src = getenv("VALIDORA_SOURCE_DIR");
    char file[1024], line[1024];
    snprintf(file, sizeof file, "%s/docs/errors.md", src ? src : ".");
    FILE *f = fopen(file, "r");
    CHECK_MSG(f != NULL, "cannot read %s", file);
    if (!f) return;
    int n = 0;
    bool in = false;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "## ", 3)) in = !strncmp(line, "## HTTP", 7);
        if (!in || strncmp(line, "| `", 3) != 0) continue;
        char *e = strchr(line + 3, '`');
        if (!e) continue;
        *e = '\0';
        CHECK_MSG(n < VD_HTTP_ERR_COUNT && !strcmp(line + 3, vd_http_err_names[n]), "row %d: %s",
                  n + 1, line + 3);
        n++;
    }
    fclose(f);
    CHECK_MSG(n == VD_HTTP_ERR_COUNT, "docs/errors.md lists %d HTTP error names", n);
    CHECK(vd_http_err_names[VD_HTTP_ERR_COUNT] == NULL);
}

static void test_jar(void)
{
    vd_cookie_jar *j = vd_cookie_jar_new();
    char buf[1024];
    double t = 1.8e9; /* 2027 */
    vd_cookie_jar_store(j, "login.example.com", "/account/create", true, "AS=xyz; Path=/; Secure",
                        t);
    vd_cookie_jar_store(j, "login.example.com", "/account/create", true,
                        "dom=1; Domain=.example.com; Path=/", t);
    vd_cookie_jar_store(j, "login.example.com", "/", true, "evil=1; Domain=other.com", t);
    vd_cookie_jar_store(j, "login.example.co.uk", "/", true, "psl=1; Domain=co.uk", t);
    vd_cookie_jar_store(j, "login.example.com", "/a/b", true, "p=1", t); /* path /a */
    vd_cookie_jar_store(j, "login.example.com", "/", true,
                        "old=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT", t);
    vd_cookie_jar_store(j, "login.example.com", "/", true, "short=1; Max-Age=10", t);
    CHECK(vd_cookie_jar_count(j) == 4); /* AS, dom, p, short */
    vd_cookie_jar_header(j, "login.example.com", "/account/module/create", true, t, buf,
                         sizeof buf);
    CHECK(strstr(buf, "AS=xyz") && strstr(buf, "dom=1") && strstr(buf, "short=1"));
    CHECK(!strstr(buf, "p=1") && !strstr(buf, "evil") && !strstr(buf, "old"));
    vd_cookie_jar_header(j, "www.example.com", "/", true, t, buf, sizeof buf);
    CHECK_STR(buf, "dom=1"); /* host-only AS stays at login.example.com */
    vd_cookie_jar_header(j, "login.example.com", "/a/b/c", false, t + 20, buf, sizeof buf);
    CHECK(!strstr(buf, "AS=") && strstr(buf, "p=1") && !strstr(buf, "short")); /* secure, aged */
    vd_cookie_jar_header(j, "notexample.com", "/", true, t, buf, sizeof buf);
    CHECK_STR(buf, "");
    vd_cookie_jar_store(j, "login.example.com", "/", true, "AS=new; Path=/", t);
    vd_cookie_jar_header(j, "login.example.com", "/", true, t, buf, sizeof buf);
    CHECK(strstr(buf, "AS=new") && !strstr(buf, "xyz"));
    for (int i = 0; i < 80; i++) {
        char c[32];
        snprintf(c, sizeof c, "c%d=v", i);
        vd_cookie_jar_store(j, "h.example", "/", false, c, t + i);
    }
    CHECK(vd_cookie_jar_count(j) == VD_HTTP_MAX_COOKIES);
    vd_cookie_jar_free(j);
}

int main(void)
{
    vd_destination_allow_private(true); /* the servers here are on loopback */
    signal(SIGPIPE, SIG_IGN);
    test_jar();
    test_doc_names();
    char dir[] = "/tmp/test_http.XXXXXX";
    if (!mkdtemp(dir) || start_server(dir) != 0) {
        fprintf(stderr, "cannot start tests/unit/http_server.py\n");
        return 1;
    }
    base = event_base_new();
    char ca[512], err[256], url[512];
    snprintf(ca, sizeof ca, "%s/cert.pem", dir);
    vd_tls_opts with_ca = {.ca_file = ca, .require_verified = true};
    vd_tls_opts sys_opts = {.require_verified = true};
    SSL_CTX *ctx = vd_tls_client_ctx_new(&with_ca, err, sizeof err);
    SSL_CTX *sys_ctx = vd_tls_client_ctx_new(&sys_opts, err, sizeof err);
    CHECK(ctx && sys_ctx);
    vd_http_opts o = {
        .tls_ctx = ctx, .timeout = 5, .max_body = 65536, .max_headers = 16384, .max_redirects = 3};
    vd_http *h = vd_http_new(base, &o);
    /* The bounds are the caller's (the options table's defaults): a missing one is refused. */
    for (int i = 0; i < 3; i++) {
        vd_http_opts m = o;
        if (i == 0) m.timeout = 0;
        if (i == 1) m.max_body = 0;
        if (i == 2) m.max_headers = 0;
        errno = 0;
        CHECK(vd_http_new(base, &m) == NULL && errno == EINVAL);
    }

    /* GET, POST, plain http */
    got g = request(h, "GET", url_of(url, sizeof url, true, "/hello"), NULL, NULL, 0);
    CHECK_MSG(g.err == VD_HTTP_OK && g.status == 200, "%s", g.errmsg);
    CHECK_STR(g.body, "hello");
    CHECK_STR(g.ctype, "text/plain");
    g = request(h, "POST", url_of(url, sizeof url, true, "/echo"), "a=1&b=2", NULL, 0);
    CHECK_STR(g.body, "POST a=1&b=2");
    g = request(h, "GET", url_of(url, sizeof url, false, "/hello"), NULL, NULL, 0);
    CHECK(g.err == VD_HTTP_OK && g.status == 200);
    g = request(h, "GET", url_of(url, sizeof url, true, "/headers?Host"), NULL, NULL, 0);
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", https_port);
    CHECK_STR(g.body, host); /* one Host header, with the port */

    /* a kept connection is reused: the server counts no new one */
    g = request(h, "GET", url_of(url, sizeof url, true, "/conns"), NULL, NULL, 0);
    int before = atoi(g.body);
    request(h, "GET", url_of(url, sizeof url, true, "/hello"), NULL, NULL, 0);
    g = request(h, "GET", url_of(url, sizeof url, true, "/conns"), NULL, NULL, 0);
    CHECK_MSG(before > 0 && atoi(g.body) == before, "connections %d then %s", before, g.body);
    size_t conns = 0, reused = 0;
    vd_http_stats(h, &conns, &reused);
    CHECK(reused >= 2);
    /* the server closes after a response: the next request gets a new connection (never the
     * spent SSL of the old one), and works */
    g = request(h, "GET", url_of(url, sizeof url, true, "/close"), NULL, NULL, 0);
    CHECK_STR(g.body, "bye");
    g = request(h, "GET", url_of(url, sizeof url, true, "/conns"), NULL, NULL, 0);
    CHECK_MSG(g.err == VD_HTTP_OK && atoi(g.body) == before + 1, "%d %s %s", g.err, g.errmsg,
              g.body);
    /* HTTP/1.0, the body delimited by the close (Python's http.server answers so) */
    g = request(h, "GET", url_of(url, sizeof url, true, "/http10"), NULL, NULL, 0);
    CHECK_MSG(g.err == VD_HTTP_OK && g.body_len == 3004 && !strncmp(g.body, "old ", 4), "%d %s %zu",
              g.err, g.errmsg, g.body_len);
    g = request(h, "GET", url_of(url, sizeof url, true, "/truncated"), NULL, NULL, 0);
    CHECK_MSG(g.err == VD_HTTP_ERR_PROTOCOL, "%d %s", g.err, g.errmsg); /* never a short body */
    g = request(h, "GET", url_of(url, sizeof url, true, "/hello"), NULL, NULL, 0);
    CHECK_STR(g.body, "hello");
    /* TLS to a server that speaks plain HTTP: the handshake fails */
    snprintf(url, sizeof url, "https://127.0.0.1:%d/hello", http_port);
    g = request(h, "GET", url, NULL, NULL, 0);
    CHECK_MSG(g.err == VD_HTTP_ERR_TLS, "%d %s", g.err, g.errmsg);
    /* a status that is no HTTP code (evhttp reads "30(" as 30; found by fuzz_http_response) */
    g = request(h, "GET", url_of(url, sizeof url, true, "/badstatus"), NULL, NULL, 0);
    CHECK_MSG(g.err == VD_HTTP_ERR_PROTOCOL && g.status == 0, "%d %d %s", g.err, g.status,
              g.errmsg);
    /* closed without a response: http_error, and the client goes on */
    g = request(h, "GET", url_of(url, sizeof url, true, "/drop"), NULL, NULL, 0);
    CHECK_MSG(g.err == VD_HTTP_ERR_PROTOCOL, "%d %s", g.err, g.errmsg);
    g = request(h, "GET", url_of(url, sizeof url, true, "/hello"), NULL, NULL, 0);
    CHECK_STR(g.body, "hello");

    /* names through the engine's DNS (the script's responder): SNI sent, the name verified */
    char servers[64];
    snprintf(servers, sizeof servers, "127.0.0.1:%d", dns_port);
    vd_dns_opts dopts = {.servers = servers, .timeout_ms = 1000};
    vd_dns *dns = vd_dns_new(base, &dopts, err, sizeof err);
    CHECK_MSG(dns != NULL, "%s", err);
    vd_http_opts dn = o;
    dn.dns = dns;
    vd_http *hd = vd_http_new(base, &dn);
    snprintf(url, sizeof url, "https://secure.test:%d/hello", https_port);
    g = request(hd, "GET", url, NULL, NULL, 0);
    CHECK_MSG(g.err == VD_HTTP_OK && !strcmp(g.body, "hello"), "%d %s", g.err, g.errmsg);
    snprintf(url, sizeof url, "https://secure.test:%d/sni", https_port);
    g = request(hd, "GET", url, NULL, NULL, 0);
    CHECK_STR(g.body, "secure.test");
    /* Without --allow-private-destinations: the address the name resolved to is checked (not
     * the name), a kept connection to it included, and an IP literal alike. */
    vd_destination_allow_private(false);
    snprintf(url, sizeof url, "https://secure.test:%d/hello", https_port);
    g = request(hd, "GET", url, NULL, NULL, 0);
    CHECK_MSG(g.err == VD_HTTP_ERR_FORBIDDEN && strstr(g.errmsg, "127.0.0.1"), "%d %s", g.err,
              g.errmsg);
    g = request(h, "GET", url_of(url, sizeof url, false, "/redirect/1"), NULL, NULL, 0);
    CHECK_MSG(g.err == VD_HTTP_ERR_FORBIDDEN, "%d %s", g.err, g.errmsg);
    CHECK_STR(vd_http_err_name(VD_HTTP_ERR_FORBIDDEN), "forbidden_destination");
    vd_destination_allow_private(true);
    snprintf(url, sizeof url, "https://wrong.test:%d/hello", https_port); /* not in the cert */
    g = request(hd, "GET", url, NULL, NULL, 0);
    CHECK_MSG(g.err == VD_HTTP_ERR_TLS && strstr(g.errmsg, "not verified"), "%d %s", g.err,
              g.errmsg);
    snprintf(url, sizeof url, "https://nx.test:%d/hello", https_port);
    g = request(hd, "GET", url, NULL, NULL, 0);
    CHECK_MSG(g.err == VD_HTTP_ERR_CONNECT && strstr(g.errmsg, "nxdomain"), "%d %s", g.err,
              g.errmsg);
    g = request(h, "GET", url, NULL, NULL, 0); /* no resolver at all */
    CHECK(g.err == VD_HTTP_ERR_CONNECT);
    vd_http_free(hd);
    vd_dns_free(dns);

    /* verification: the system store does not know our CA */
    vd_http_opts so = o;
    so.tls_ctx = sys_ctx;
    vd_http *hs = vd_http_new(base, &so);
    g = request(hs, "GET", url_of(url, sizeof url, true, "/hello"), NULL, NULL, 0);
    CHECK_MSG(g.err == VD_HTTP_ERR_TLS && strstr(g.errmsg, "not verified"), "%d %s", g.err,
              g.errmsg);
    vd_http_free(hs);
    /* no TLS context at all: https refused */
    vd_http_opts no = o;
    no.tls_ctx = NULL;
    vd_http *hn = vd_http_new(base, &no);
    g = request(hn, "GET", url_of(url, sizeof url, true, "/hello"), NULL, NULL, 0);
    CHECK(g.err == VD_HTTP_ERR_TLS);
    vd_http_free(hn);

    /* redirects */
    g = request(h, "GET", url_of(url, sizeof url, true, "/redirect/3"), NULL, NULL, 0);
    CHECK_MSG(g.err == VD_HTTP_OK && !strcmp(g.body, "landed"), "%s", g.errmsg);
    CHECK(strstr(g.url, "/redirect/0") != NULL);
    g = request(h, "GET", url_of(url, sizeof url, true, "/redirect/4"), NULL, NULL, 0);
    CHECK(g.err == VD_HTTP_ERR_REDIRECTS);
    g = request(h, "GET", url_of(url, sizeof url, true, "/to-http"), NULL, NULL, 0);
    CHECK_MSG(g.err == VD_HTTP_ERR_PROTOCOL && strstr(g.errmsg, "refused"), "%s", g.errmsg);
    g = request(h, "POST", url_of(url, sizeof url, true, "/see-other"), "x=1", NULL, 0);
    CHECK_STR(g.body, "GET ");

    /* bounds */
    g = request(h, "GET", url_of(url, sizeof url, true, "/big?60000"), NULL, NULL, 0);
    CHECK(g.err == VD_HTTP_OK && g.body_len == 60000);
    g = request(h, "GET", url_of(url, sizeof url, true, "/big?200000"), NULL, NULL, 0);
    CHECK_MSG(g.err == VD_HTTP_ERR_TOO_LARGE, "%d %s", g.err, g.errmsg);
    g = request(h, "GET", url_of(url, sizeof url, true, "/bigheader?40000"), NULL, NULL, 0);
    CHECK_MSG(g.err == VD_HTTP_ERR_TOO_LARGE, "%d %s", g.err, g.errmsg);
    g = request(h, "GET", url_of(url, sizeof url, true, "/hello"), NULL, NULL, 0);
    CHECK(g.err == VD_HTTP_OK); /* the client is fine after those */

    /* a listener that never answers: the request's timeout */
    snprintf(url, sizeof url, "https://127.0.0.1:%d/", silent_port);
    double t0 = now();
    g = request(h, "GET", url, NULL, NULL, 0.5);
    CHECK_MSG(g.err == VD_HTTP_ERR_TIMEOUT, "%d %s", g.err, g.errmsg);
    CHECK(now() - t0 < 2.5);
    /* a port nobody listens on */
    g = request(h, "GET", "http://127.0.0.1:1/", NULL, NULL, 0);
    CHECK_MSG(g.err == VD_HTTP_ERR_CONNECT, "%d %s", g.err, g.errmsg);

    /* cookies: stored, sent back where they match, expired by Max-Age=0 */
    vd_cookie_jar *jar = vd_cookie_jar_new();
    request(h, "GET", url_of(url, sizeof url, true, "/setcookie"), NULL, jar, 0);
    CHECK(vd_cookie_jar_count(jar) == 2);
    g = request(h, "GET", url_of(url, sizeof url, true, "/headers?Cookie"), NULL, jar, 0);
    CHECK_STR(g.body, "a=1");
    request(h, "GET", url_of(url, sizeof url, true, "/expire"), NULL, jar, 0);
    g = request(h, "GET", url_of(url, sizeof url, true, "/headers?Cookie"), NULL, jar, 0);
    CHECK_STR(g.body, "-");
    vd_cookie_jar_free(jar);

    /* cancel mid-request: no callback, the client goes on */
    got c = {0};
    vd_http_request rq = {.method = "GET", .url = url_of(url, sizeof url, true, "/hang")};
    vd_http_req *r = vd_http_start(h, &rq, on_resp, &c);
    loop_for(0.3);
    CHECK(!c.done);
    vd_http_cancel(r);
    loop_for(0.3);
    CHECK(!c.done);
    g = request(h, "GET", url_of(url, sizeof url, true, "/hello"), NULL, NULL, 0);
    CHECK(g.err == VD_HTTP_OK);

    /* refused before the wire */
    g = request(h, "GET", "ftp://127.0.0.1/", NULL, NULL, 0);
    CHECK(g.err == VD_HTTP_ERR_INVALID);
    g = request(h, "BREW", url_of(url, sizeof url, true, "/hello"), NULL, NULL, 0);
    CHECK(g.err == VD_HTTP_ERR_INVALID);
    got bad = {0};
    vd_http_header hv[] = {{"X-Evil", "a\r\nInjected: 1"}};
    vd_http_request brq = {
        .url = url_of(url, sizeof url, true, "/hello"), .headers = hv, .nheaders = 1};
    vd_http_req *br = vd_http_start(h, &brq, on_resp, &bad);
    while (br && !bad.done)
        event_base_loop(base, EVLOOP_ONCE);
    CHECK(bad.err == VD_HTTP_ERR_INVALID);
    CHECK_STR(vd_http_err_name(VD_HTTP_ERR_TOO_LARGE), "too_large");

    vd_http_free(h);
    vd_tls_ctx_free(ctx);
    vd_tls_ctx_free(sys_ctx);
    event_base_free(base);
    kill(server_pid, SIGTERM);
    waitpid(server_pid, NULL, 0);
    char rm[600];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    if (system(rm) != 0) fprintf(stderr, "cannot remove %s\n", dir);
    return check_done();
}

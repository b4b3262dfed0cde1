/* fuzz_http_response.c — libFuzzer target for the HTTP client's response reading
 * (engine/http.c on libevent's evhttp): status line, headers, bodies (Content-Length, chunked,
 * to EOF), redirects and Set-Cookie, driven end to end through the public API, as
 * fuzz_smtp_reply.c drives smtp.c.
 *
 * A listening socket on 127.0.0.1 is made once. Per input, vd_http_start asks
 * http://127.0.0.1:PORT/a/b; every connection the client opens (a redirect to the same
 * place opens another, or reuses a kept one) is accepted by an event of the harness, which
 * writes it the next part of the input as everything the "server" will say on it, then shuts
 * its write side, so the client always meets EOF and no timer is waited for.
 *
 * Input: byte 0 holds options (bit 0: HEAD, else GET; bit 1: POST with a body instead; bit 2:
 * a cookie jar; bit 3: a small body bound, 64 bytes); the rest is the servers' parts, split at
 * each "\n--8<--\n".
 *
 * The harness stands in for engine/destination.c: the one destination allowed is 127.0.0.1
 * (a redirect elsewhere is forbidden_destination, nothing sent), so no input makes the client
 * connect off the machine.
 *
 * Invariants: the callback comes exactly once; an OK response has a status 100..999, a body
 * within the bound and headers whose names are lower case and NUL-free text; an error has a
 * name and a message; the final URL is on http://127.0.0.1; a jar holds at most its
 * bound and its Cookie header fits. ASan/LSan catch the rest. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "destination.h"
#include "http.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_http_response: %s:%d: %s: ", __FILE__, __LINE__, #cond);         \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define INPUT_MAX (64 * 1024) /* fits the loopback socket buffers: the write never blocks */
#define MAX_BODY  4096
#define MAX_CONNS 16
#define SEP       "\n--8<--\n"

static struct event_base *base;
static int listen_fd = -1;
static struct sockaddr_in listen_addr;
static struct event *accept_ev;
static char prefix[64]; /* http://127.0.0.1:PORT/ */

typedef struct run {
    const uint8_t *at, *end; /* the parts not served yet */
    int fds[MAX_CONNS];
    int nfds;
    int callbacks;
    size_t max_body;
    vd_cookie_jar *jar;
} run;

static run cur;

/* ---- destination.h, for this harness: 127.0.0.1 only ---- */

void vd_destination_allow_private(bool allow)
{
    (void)allow;
}

bool vd_destination_private_allowed(void)
{
    return true;
}

bool vd_destination_special(const struct sockaddr *addr)
{
    (void)addr;
    return true;
}

bool vd_destination_ok(const struct sockaddr *addr)
{
    const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
    return addr->sa_family == AF_INET && a->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
}

const char *vd_destination_text(const struct sockaddr *addr, char *buf, size_t len)
{
    const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
    if (!inet_ntop(AF_INET, &a->sin_addr, buf, (socklen_t)len)) snprintf(buf, len, "?");
    return buf;
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    int c = accept(fd, NULL, NULL);
    if (c < 0) return;
    if (cur.nfds >= MAX_CONNS) {
        close(c);
        return;
    }
    cur.fds[cur.nfds++] = c;
    const uint8_t *part = cur.at, *next = cur.end;
    size_t n = (size_t)(cur.end - cur.at);
    const uint8_t *sep = memmem(part, n, SEP, sizeof SEP - 1);
    if (sep) {
        n = (size_t)(sep - part);
        next = sep + sizeof SEP - 1;
    }
    cur.at = next;
    for (size_t off = 0; off < n;) {
        ssize_t w = write(c, part + off, n - off);
        if (w <= 0) break; /* the client may have gone */
        off += (size_t)w;
    }
    shutdown(c, SHUT_WR);
}

static void on_response(const vd_http_response *r, void *arg)
{
    (void)arg;
    cur.callbacks++;
    REQUIRE(cur.callbacks == 1, "callback %d times", cur.callbacks);
    if (r->err == VD_HTTP_OK) {
        REQUIRE(r->status >= 100 && r->status <= 999, "status %d", r->status);
        REQUIRE(r->body_len <= cur.max_body, "body %zu bytes past %zu", r->body_len, cur.max_body);
        REQUIRE(r->body_len == 0 || r->body != NULL, "a body without bytes");
        for (size_t i = 0; i < r->nheaders; i++) {
            const char *n = r->headers[i].name, *v = r->headers[i].value;
            REQUIRE(n && v, "header %zu without name or value", i);
            for (const char *p = n; *p; p++)
                REQUIRE(!isupper((unsigned char)*p), "header name '%s' not lower case", n);
        }
        REQUIRE(r->url && !strncmp(r->url, "http://127.0.0.1", 16), "final URL '%s'",
                r->url ? r->url : "(null)");
    } else {
        REQUIRE(strcmp(vd_http_err_name(r->err), "ok") != 0, "error %d has no name", (int)r->err);
        REQUIRE(r->errmsg && *r->errmsg, "error %d without a message", (int)r->err);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    listen_addr.sin_family = AF_INET;
    listen_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof listen_addr;
    if (!base || listen_fd < 0 ||
        bind(listen_fd, (struct sockaddr *)&listen_addr, sizeof listen_addr) != 0 ||
        listen(listen_fd, 64) != 0 ||
        getsockname(listen_fd, (struct sockaddr *)&listen_addr, &len) != 0) {
        perror("fuzz_http_response: set-up");
        abort();
    }
    snprintf(prefix, sizeof prefix, "http://127.0.0.1:%d/", ntohs(listen_addr.sin_port));
    accept_ev = event_new(base, listen_fd, EV_READ | EV_PERSIST, on_accept, NULL);
    event_add(accept_ev, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > INPUT_MAX) return 0;
    unsigned opts = data[0];
    cur = (run){.at = data + 1, .end = data + size, .max_body = (opts & 8) ? 64 : MAX_BODY};
    vd_http_opts ho = {
        .timeout = 5, .max_body = cur.max_body, .max_headers = 8192, .max_redirects = 3};
    vd_http *h = vd_http_new(base, &ho);
    REQUIRE(h != NULL, "vd_http_new failed");
    if (opts & 4) cur.jar = vd_cookie_jar_new();
    char url[128];
    snprintf(url, sizeof url, "%sa/b?c=d", prefix);
    vd_http_header hdr = {"Accept", "*/*"};
    vd_http_request rq = {.method = (opts & 2)   ? "POST"
                                    : (opts & 1) ? "HEAD"
                                                 : "GET",
                          .url = url,
                          .headers = &hdr,
                          .nheaders = 1,
                          .body = (opts & 2) ? "x=1" : NULL,
                          .body_len = (opts & 2) ? 3 : 0,
                          .jar = cur.jar};
    vd_http_req *r = vd_http_start(h, &rq, on_response, NULL);
    REQUIRE(r != NULL, "vd_http_start failed");
    /* Until the answer; the accept event stays, so the loop is run, not dispatched. */
    for (int i = 0; i < 100000 && cur.callbacks == 0; i++)
        event_base_loop(base, EVLOOP_ONCE);
    REQUIRE(cur.callbacks == 1, "no callback");
    vd_http_free(h); /* kept connections too */
    event_base_loop(base, EVLOOP_NONBLOCK);
    for (int c; (c = accept(listen_fd, NULL, NULL)) >= 0;) /* nothing left for the next input */
        close(c);
    if (cur.jar) {
        REQUIRE(vd_cookie_jar_count(cur.jar) <= VD_HTTP_MAX_COOKIES, "%zu cookies",
                vd_cookie_jar_count(cur.jar));
        char cookie[8192];
        vd_cookie_jar_header(cur.jar, "127.0.0.1", "/a/b", false, 0, cookie, sizeof cookie);
        REQUIRE(strlen(cookie) < sizeof cookie, "cookie header");
        vd_cookie_jar_free(cur.jar);
    }
    for (int i = 0; i < cur.nfds; i++)
        close(cur.fds[i]);
    return 0;
}

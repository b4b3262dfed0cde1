/* playback_http.c — the HTTP playback server of a rule test (playback_http.h).
 * Owns: an evhttp server on 127.0.0.1, answering each request with the test's next `http`
 * entry when the request is the one that entry expects (method, path, headers, body), the
 * problems it sees (an unexpected request, entries never requested).
 * Does not own: the entries (playback.h, loaded by testfile.c), the pattern language of
 * headers_match and body_matches (the matcher it is given: testfile.c's Lua patterns), the
 * HTTP client (http.c). No Lua. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include "playback_http.h"

struct vd_pb_httpd {
    const vd_pb_test *t;
    vd_pb_msgs *msgs;
    vd_pb_match_fn match;
    void *match_arg;
    struct evhttp *http;
    int port;
    size_t next;     /* the test's http entry the next request takes */
    size_t requests; /* requests received */
};

static const char *method_name(enum evhttp_cmd_type c)
{
    static const struct {
        enum evhttp_cmd_type c;
        const char *n;
    } m[] = {{EVHTTP_REQ_GET, "GET"},        {EVHTTP_REQ_POST, "POST"},
             {EVHTTP_REQ_HEAD, "HEAD"},      {EVHTTP_REQ_PUT, "PUT"},
             {EVHTTP_REQ_DELETE, "DELETE"},  {EVHTTP_REQ_OPTIONS, "OPTIONS"},
             {EVHTTP_REQ_PATCH, "PATCH"},    {EVHTTP_REQ_TRACE, "TRACE"},
             {EVHTTP_REQ_CONNECT, "CONNECT"}};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (m[i].c == c) return m[i].n;
    return "?";
}

/* Why request er is not entry h ("" when it is). */
static void http_mismatch(const vd_pb_httpd *w, struct evhttp_request *er, const vd_pb_http *h,
                          const char *method, char *why, size_t whylen)
{
    why[0] = '\0';
    const char *uri = evhttp_request_get_uri(er);
    const char *q = strchr(uri, '?');
    size_t plen = q && !strchr(h->path ? h->path : "", '?') ? (size_t)(q - uri) : strlen(uri);
    if (h->method && strcmp(h->method, method) != 0) {
        snprintf(why, whylen, "method %s, expected %s", method, h->method);
    } else if (h->path && (strlen(h->path) != plen || strncmp(h->path, uri, plen) != 0)) {
        snprintf(why, whylen, "path %.*s, expected %s", (int)(plen > 200 ? 200 : plen), uri,
                 h->path);
    } else {
        for (size_t k = 0; k < h->nheaders_match && !why[0]; k++) {
            const vd_pb_header *m = &h->headers_match[k];
            const char *v = evhttp_find_header(evhttp_request_get_input_headers(er), m->name);
            char sub[400];
            if (!v)
                snprintf(why, whylen, "no %s header", m->name);
            else if (!w->match(w->match_arg, v, strlen(v), m->value, sub, sizeof sub))
                snprintf(why, whylen, "header %s: %s", m->name, sub);
        }
    }
    if (!why[0] && h->body_matches) {
        struct evbuffer *b = evhttp_request_get_input_buffer(er);
        size_t len = evbuffer_get_length(b);
        const char *body = (const char *)evbuffer_pullup(b, -1);
        char sub[400];
        if (!w->match(w->match_arg, body ? body : "", body ? len : 0, h->body_matches, sub,
                      sizeof sub))
            snprintf(why, whylen, "body %s", sub);
    }
}

static void on_http(struct evhttp_request *er, void *arg)
{
    vd_pb_httpd *w = arg;
    size_t n = ++w->requests;
    const char *method = method_name(evhttp_request_get_command(er));
    char q[240];
    const char *uri = evhttp_request_get_uri(er);
    vd_pb_quote(q, sizeof q, uri, strlen(uri), 200);
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        evhttp_send_error(er, 500, "playback: out of memory");
        return;
    }
    if (w->next >= w->t->nhttp) {
        vd_pb_msg(w->msgs,
                  "http request %zu (%s %s): no http entry left for it (the test gives %zu)", n,
                  method, q, w->t->nhttp);
        evbuffer_add_printf(out, "playback: no http entry left\n");
        evhttp_send_reply(er, 500, "Playback", out);
        evbuffer_free(out);
        return;
    }
    size_t i = w->next++;
    const vd_pb_http *h = &w->t->http[i];
    char why[512];
    http_mismatch(w, er, h, method, why, sizeof why);
    if (why[0]) {
        vd_pb_msg(w->msgs, "http request %zu (%s %s): not http[%zu]: %s", n, method, q, i + 1, why);
        evbuffer_add_printf(out, "playback: not the request of the test\n");
        evhttp_send_reply(er, 500, "Playback", out);
        evbuffer_free(out);
        return;
    }
    struct evkeyvalq *oh = evhttp_request_get_output_headers(er);
    for (size_t k = 0; k < h->nheaders; k++)
        evhttp_add_header(oh, h->headers[k].name, h->headers[k].value);
    if (h->body_len) evbuffer_add(out, h->body, h->body_len);
    evhttp_send_reply(er, h->status, "Playback", out);
    evbuffer_free(out);
}

vd_pb_httpd *vd_pb_httpd_new(struct event_base *base, const vd_pb_test *t, vd_pb_msgs *msgs,
                             vd_pb_match_fn match, void *match_arg, char *err, size_t errlen)
{
    vd_pb_httpd *w = calloc(1, sizeof *w);
    if (!w || !(w->http = evhttp_new(base))) {
        free(w);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->t = t;
    w->msgs = msgs;
    w->match = match;
    w->match_arg = match_arg;
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_max_body_size(w->http, VD_PB_MAX_BODY);
    evhttp_set_gencb(w->http, on_http, w);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(w->http, "127.0.0.1", 0);
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    if (!bs) {
        snprintf(err, errlen, "HTTP playback on 127.0.0.1: %s", strerror(errno));
    } else if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &sl) != 0) {
        snprintf(err, errlen, "HTTP playback: %s", strerror(errno));
    } else {
        w->port = ntohs(sa.sin_port);
        return w;
    }
    vd_pb_httpd_free(w);
    return NULL;
}

int vd_pb_httpd_port(const vd_pb_httpd *w)
{
    return w->port;
}

size_t vd_pb_httpd_requests(const vd_pb_httpd *w)
{
    return w->requests;
}

void vd_pb_httpd_finish(vd_pb_httpd *w)
{
    if (w->http) evhttp_free(w->http);
    w->http = NULL;
    for (size_t i = w->next; i < w->t->nhttp; i++) {
        const vd_pb_http *h = &w->t->http[i];
        vd_pb_msg(w->msgs, "http[%zu] (%s %s) was never requested (%zu request%s made)", i + 1,
                  h->method ? h->method : "any method", h->path ? h->path : "any path", w->requests,
                  w->requests == 1 ? "" : "s");
    }
}

void vd_pb_httpd_free(vd_pb_httpd *w)
{
    if (!w) return;
    if (w->http) evhttp_free(w->http);
    free(w);
}

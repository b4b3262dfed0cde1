/* http.c — the asynchronous HTTP/1.1 client (see http.h).
 *
 * Owns: one request's life (resolve, connect or reuse, send, read, follow redirects, deliver),
 * the kept connections, cookie jars.
 * Does not own: the SSL_CTX and its verification policy (tls.c), DNS (dns.c), the limiter,
 * defaults for the bounds (the caller's options table; vd_http_new refuses them missing).
 *
 * One evhttp_connection per TCP (or TLS) connection, one request at a time on it. evhttp
 * reconnects a connection object by itself when a request is made on one that has closed,
 * reusing its bufferevent: over TLS that is an SSL object whose session is over, so a
 * connection that evhttp reset (its close callback ran) is never handed a request again; it is
 * freed. Connections are freed from an event of our own, never inside evhttp's callbacks, and
 * results are delivered from an event of the request's own, so a caller never runs inside
 * evhttp and a cancelled request never hears back. */
#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <libpsl.h>
#include "destination.h"
#include "tls.h"

const char *const vd_http_err_names[VD_HTTP_ERR_COUNT + 1] = {
    [VD_HTTP_ERR_CONNECT - 1] = "connect_failed",
    [VD_HTTP_ERR_TIMEOUT - 1] = "timeout",
    [VD_HTTP_ERR_TLS - 1] = "tls_error",
    [VD_HTTP_ERR_PROTOCOL - 1] = "http_error",
    [VD_HTTP_ERR_TOO_LARGE - 1] = "too_large",
    [VD_HTTP_ERR_REDIRECTS - 1] = "redirect_limit",
    [VD_HTTP_ERR_INVALID - 1] = "invalid_argument",
    [VD_HTTP_ERR_FORBIDDEN - 1] = VD_FORBIDDEN_DESTINATION,
    [VD_HTTP_ERR_COUNT] = NULL,
};

const char *vd_http_err_name(vd_http_err e)
{
    if ((int)e >= 1 && (int)e <= VD_HTTP_ERR_COUNT) return vd_http_err_names[(int)e - 1];
    return "ok";
}

/* ---- connections ---- */

typedef struct conn {
    struct conn *next; /* in the idle list or the graveyard */
    vd_http *h;
    struct evhttp_connection *evcon;
    struct bufferevent *bev;
    char key[320]; /* "https://host:port ip" */
    bool dead;     /* evhttp reset it: never to be used again */
    bool reused;   /* the request on it now is not its first */
    size_t rx;     /* bytes received (decrypted), to tell headers too large from malformed */
    bool sent;     /* request bytes went out (over TLS: the handshake was done) */
} conn;

struct vd_http {
    struct event_base *base;
    vd_http_opts o;
    char user_agent[128];
    conn *idle;
    conn *graveyard;
    struct event *reap;
    size_t connections, reused;
};

static void conn_destroy(conn *c)
{
    if (c->evcon) evhttp_connection_free(c->evcon); /* frees the bufferevent and the SSL */
    free(c);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    vd_http *h = arg;
    while (h->graveyard) {
        conn *c = h->graveyard;
        h->graveyard = c->next;
        conn_destroy(c);
    }
}

/* To be freed from the loop, outside any evhttp callback. */
static void conn_bury(conn *c)
{
    vd_http *h = c->h;
    c->next = h->graveyard;
    h->graveyard = c;
    event_active(h->reap, EV_TIMEOUT, 0);
}

static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    ((conn *)arg)->dead = true;
}

/* Hands a connection back after a request: kept when it is alive and there is room. */
static void conn_release(conn *c)
{
    vd_http *h = c->h;
    int same = 0;
    for (conn *i = h->idle; i; i = i->next)
        same += !strcmp(i->key, c->key);
    if (c->dead || same >= VD_HTTP_IDLE_PER_HOST) {
        conn_bury(c);
        return;
    }
    c->next = h->idle;
    h->idle = c;
}

/* A kept connection for key, dropping the dead ones met on the way. */
static conn *conn_take(vd_http *h, const char *key)
{
    for (conn **pp = &h->idle; *pp;) {
        conn *c = *pp;
        if (c->dead) {
            *pp = c->next;
            conn_bury(c);
            continue;
        }
        if (!strcmp(c->key, key)) {
            *pp = c->next;
            c->next = NULL;
            c->reused = true;
            h->reused++;
            return c;
        }
        pp = &c->next;
    }
    return NULL;
}

/* ---- requests ---- */

typedef enum rstate { R_RUNNING, R_REDIRECT, R_DONE } rstate;

typedef struct hdr {
    char *name, *value;
} hdr;

struct vd_http_req {
    vd_http *h;
    vd_http_cb cb;
    void *arg;
    vd_cookie_jar *jar;
    double timeout;
    /* what is asked */
    char method[16];
    enum evhttp_cmd_type type;
    char *url;
    hdr *rq_headers;
    size_t rq_nheaders;
    char *body;
    size_t body_len;
    int redirects;
    bool retried; /* sent again once on a new connection after a kept one failed */
    /* the hop in flight */
    bool https;
    char host[256]; /* lower-case, no brackets */
    int port;
    char *target; /* path and query */
    char ip[INET6_ADDRSTRLEN];
    vd_dns_req *dns;
    conn *c;
    struct evhttp_request *er;
    enum evhttp_request_error everr;
    bool have_everr;
    size_t rx_start; /* the connection's rx when this hop's request went out */
    /* the outcome */
    rstate state;
    vd_http_err err;
    char errmsg[320];
    int status;
    hdr *headers;
    size_t nheaders;
    char *rbody;
    size_t rbody_len;
    struct event *timer, *step;
};

static double now_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void free_hdrs(hdr *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
}

static void clear_response(vd_http_req *r)
{
    free_hdrs(r->headers, r->nheaders);
    r->headers = NULL;
    r->nheaders = 0;
    free(r->rbody);
    r->rbody = NULL;
    r->rbody_len = 0;
    r->status = 0;
}

/* Stops whatever the hop is doing: the DNS lookup, or the connection with its request. */
static void stop_hop(vd_http_req *r)
{
    if (r->dns) vd_dns_cancel(r->dns);
    r->dns = NULL;
    if (r->c) {
        /* Freed now, with its evhttp_request, so that no callback of it can come. Never
         * called inside that connection's callbacks: on_evreq takes r->c first. */
        evhttp_connection_set_closecb(r->c->evcon, NULL, NULL);
        conn_destroy(r->c);
    }
    r->c = NULL;
    r->er = NULL;
}

static void finish(vd_http_req *r, vd_http_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void finish(vd_http_req *r, vd_http_err err, const char *fmt, ...)
{
    r->err = err;
    r->errmsg[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->errmsg, sizeof r->errmsg, fmt, ap);
        va_end(ap);
    }
    r->state = R_DONE;
    event_active(r->step, EV_TIMEOUT, 0);
}

static void req_free(vd_http_req *r)
{
    stop_hop(r);
    if (r->timer) event_free(r->timer);
    if (r->step) event_free(r->step);
    clear_response(r);
    free_hdrs(r->rq_headers, r->rq_nheaders);
    free(r->url);
    free(r->target);
    free(r->body);
    free(r);
}

void vd_http_cancel(vd_http_req *r)
{
    if (r) req_free(r);
}

static void deliver(vd_http_req *r)
{
    vd_http_header *hv = r->nheaders ? calloc(r->nheaders, sizeof *hv) : NULL;
    size_t n = hv ? r->nheaders : 0;
    for (size_t i = 0; i < n; i++)
        hv[i] = (vd_http_header){r->headers[i].name, r->headers[i].value};
    vd_http_response resp = {
        .err = r->err,
        .errmsg = r->err ? r->errmsg : NULL,
        .status = r->err ? 0 : r->status,
        .headers = r->err ? NULL : hv,
        .nheaders = r->err ? 0 : n,
        .body = r->err     ? NULL
                : r->rbody ? r->rbody
                           : "",
        .body_len = r->err ? 0 : r->rbody_len,
        .url = r->url,
    };
    vd_http_cb cb = r->cb;
    void *arg = r->arg;
    stop_hop(r); /* a finished hop has handed its connection back already */
    cb(&resp, arg);
    free(hv);
    req_free(r);
}

static void begin_hop(vd_http_req *r);

static void on_step(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    vd_http_req *r = arg;
    if (r->state == R_DONE)
        deliver(r);
    else if (r->state == R_REDIRECT)
        begin_hop(r);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    vd_http_req *r = arg;
    if (r->state == R_DONE) return;
    stop_hop(r);
    finish(r, VD_HTTP_ERR_TIMEOUT, "no whole response within %g s", r->timeout);
}

/* ---- URLs ---- */

static bool host_ok(const char *s)
{
    if (!*s || strlen(s) >= 256) return false;
    for (const char *p = s; *p; p++)
        if (!(isalnum((unsigned char)*p) || strchr("-._:", *p))) return false;
    return true;
}

/* Splits url into the hop's scheme, host, port and target. Returns false with errmsg. */
static bool parse_url(vd_http_req *r, const char *url)
{
    struct evhttp_uri *u = strlen(url) < VD_HTTP_MAX_URL ? evhttp_uri_parse(url) : NULL;
    const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
    const char *host = u ? evhttp_uri_get_host(u) : NULL;
    bool ok = false;
    if (!u || !scheme || !host) {
        snprintf(r->errmsg, sizeof r->errmsg, "not an absolute http(s) URL");
    } else if (strcasecmp(scheme, "http") && strcasecmp(scheme, "https")) {
        snprintf(r->errmsg, sizeof r->errmsg, "scheme '%.32s': only http and https", scheme);
    } else if (evhttp_uri_get_userinfo(u)) {
        snprintf(r->errmsg, sizeof r->errmsg, "user information in a URL is refused");
    } else {
        size_t n = strlen(host);
        if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
            host++;
            n -= 2;
        }
        snprintf(r->host, sizeof r->host, "%.*s", (int)n, host);
        for (char *p = r->host; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        r->https = !strcasecmp(scheme, "https");
        r->port = evhttp_uri_get_port(u);
        if (r->port <= 0) r->port = r->https ? 443 : 80;
        const char *path = evhttp_uri_get_path(u), *query = evhttp_uri_get_query(u);
        size_t tl = strlen(path ? path : "") + strlen(query ? query : "") + 3;
        free(r->target);
        r->target = malloc(tl);
        if (!host_ok(r->host) || r->port > 65535) {
            snprintf(r->errmsg, sizeof r->errmsg, "bad host or port");
        } else if (r->target) {
            snprintf(r->target, tl, "%s%s%s%s", path && *path ? "" : "/", path ? path : "",
                     query ? "?" : "", query ? query : "");
            ok = true;
        }
    }
    if (u) evhttp_uri_free(u);
    return ok;
}

/* The Location of a redirect from the hop's URL, made absolute (malloc'd), or NULL. */
static char *resolve_location(const vd_http_req *r, const char *loc)
{
    char origin[320];
    bool v6 = strchr(r->host, ':') != NULL;
    bool def = r->port == (r->https ? 443 : 80);
    char portbuf[16] = "";
    if (!def) snprintf(portbuf, sizeof portbuf, ":%d", r->port);
    snprintf(origin, sizeof origin, "%s://%s%s%s%s", r->https ? "https" : "http", v6 ? "[" : "",
             r->host, v6 ? "]" : "", portbuf);
    size_t n = strlen(loc) + strlen(origin) + strlen(r->target) + 8;
    if (n > VD_HTTP_MAX_URL * 2) return NULL;
    char *out = malloc(n);
    if (!out) return NULL;
    if (strstr(loc, "://"))
        snprintf(out, n, "%s", loc);
    else if (loc[0] == '/' && loc[1] == '/')
        snprintf(out, n, "%s:%s", r->https ? "https" : "http", loc);
    else if (loc[0] == '/')
        snprintf(out, n, "%s%s", origin, loc);
    else {
        const char *q = strchr(r->target, '?');
        size_t tl = q ? (size_t)(q - r->target) : strlen(r->target);
        while (tl > 0 && r->target[tl - 1] != '/')
            tl--;
        snprintf(out, n, "%s%.*s%s", origin, (int)tl, r->target, loc);
    }
    return out;
}

/* ---- one hop ---- */

static void add_header(struct evkeyvalq *q, const char *name, const char *value)
{
    evhttp_remove_header(q, name);
    evhttp_add_header(q, name, value);
}

static bool has_rq_header(const vd_http_req *r, const char *name)
{
    for (size_t i = 0; i < r->rq_nheaders; i++)
        if (!strcasecmp(r->rq_headers[i].name, name)) return true;
    return false;
}

static void on_evreq(struct evhttp_request *er, void *arg);

static void on_everr(enum evhttp_request_error e, void *arg)
{
    vd_http_req *r = arg;
    r->everr = e;
    r->have_everr = true;
}

static void on_input(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    (void)b;
    ((conn *)arg)->rx += info->n_added;
}

static void on_output(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    (void)b;
    if (info->n_deleted) ((conn *)arg)->sent = true;
}

static conn *conn_new(vd_http_req *r, const char *key)
{
    vd_http *h = r->h;
    conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->h = h;
    snprintf(c->key, sizeof c->key, "%s", key);
    if (r->https) {
        char err[256];
        SSL *ssl = vd_tls_ssl_new(h->o.tls_ctx, r->host, err, sizeof err);
        if (!ssl) {
            snprintf(r->errmsg, sizeof r->errmsg, "TLS: %s", err);
            free(c);
            return NULL;
        }
        c->bev = bufferevent_openssl_socket_new(h->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (!c->bev)
            SSL_free(ssl);
        else
            bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    } else {
        c->bev = bufferevent_socket_new(h->base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (c->bev)
        c->evcon = evhttp_connection_base_bufferevent_new(h->base, NULL, c->bev, r->ip,
                                                          (unsigned short)r->port);
    if (!c->evcon) {
        if (c->bev) bufferevent_free(c->bev);
        snprintf(r->errmsg, sizeof r->errmsg, "out of memory");
        free(c);
        return NULL;
    }
    /* evhttp's own timeout is per read or write; the request's timer ends it first */
    double t = r->timeout + 1;
    struct timeval tv = {(time_t)t, (suseconds_t)((t - (double)(time_t)t) * 1e6)};
    evhttp_connection_set_timeout_tv(c->evcon, &tv);
    evhttp_connection_set_retries(c->evcon, 0);
    evhttp_connection_set_max_headers_size(c->evcon, (ev_ssize_t)h->o.max_headers);
    evhttp_connection_set_max_body_size(c->evcon, (ev_ssize_t)h->o.max_body);
    evhttp_connection_set_closecb(c->evcon, on_conn_close, c);
    evbuffer_add_cb(bufferevent_get_input(c->bev), on_input, c);
    evbuffer_add_cb(bufferevent_get_output(c->bev), on_output, c);
    h->connections++;
    return c;
}

static void send_hop(vd_http_req *r)
{
    vd_http *h = r->h;
    char key[320], hostport[300];
    bool v6 = strchr(r->host, ':') != NULL;
    snprintf(key, sizeof key, "%s://%s:%d %s", r->https ? "https" : "http", r->host, r->port,
             r->ip);
    if (r->port == (r->https ? 443 : 80))
        snprintf(hostport, sizeof hostport, "%s%s%s", v6 ? "[" : "", r->host, v6 ? "]" : "");
    else
        snprintf(hostport, sizeof hostport, "%s%s%s:%d", v6 ? "[" : "", r->host, v6 ? "]" : "",
                 r->port);
    if (r->https && !h->o.tls_ctx) {
        finish(r, VD_HTTP_ERR_TLS, "no TLS context: https is not available");
        return;
    }
    /* The address connected to (after DNS, on every hop, a redirect's included). */
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, r->ip, &s4->sin_addr) == 1)
        ss.ss_family = AF_INET;
    else if (inet_pton(AF_INET6, r->ip, &s6->sin6_addr) == 1)
        ss.ss_family = AF_INET6;
    if (!vd_destination_ok((const struct sockaddr *)&ss)) {
        finish(r, VD_HTTP_ERR_FORBIDDEN,
               "%s (%s) is a loopback, private or other special-purpose address: refused "
               "(--allow-private-destinations)",
               r->host, r->ip);
        return;
    }
    conn *c = r->retried ? NULL : conn_take(h, key);
    if (!c && !(c = conn_new(r, key))) {
        finish(r, r->https ? VD_HTTP_ERR_TLS : VD_HTTP_ERR_CONNECT, "%s", r->errmsg);
        return;
    }
    struct evhttp_request *er = evhttp_request_new(on_evreq, r);
    if (!er) {
        conn_release(c);
        finish(r, VD_HTTP_ERR_CONNECT, "out of memory");
        return;
    }
    evhttp_request_set_error_cb(er, on_everr);
    struct evkeyvalq *q = evhttp_request_get_output_headers(er);
    for (size_t i = 0; i < r->rq_nheaders; i++)
        add_header(q, r->rq_headers[i].name, r->rq_headers[i].value);
    add_header(q, "Host", hostport);
    if (!has_rq_header(r, "User-Agent")) add_header(q, "User-Agent", h->user_agent);
    if (!has_rq_header(r, "Accept")) add_header(q, "Accept", "*/*");
    if (r->jar) {
        char cookie[8192];
        const char *path = r->target;
        char pbuf[2048];
        const char *qm = strchr(path, '?');
        if (qm) {
            snprintf(pbuf, sizeof pbuf, "%.*s", (int)(qm - path), path);
            path = pbuf;
        }
        vd_cookie_jar_header(r->jar, r->host, path, r->https, now_wall(), cookie, sizeof cookie);
        if (*cookie) add_header(q, "Cookie", cookie);
    }
    if (r->body_len || r->type == EVHTTP_REQ_POST || r->type == EVHTTP_REQ_PUT ||
        r->type == EVHTTP_REQ_PATCH) {
        char len[32];
        snprintf(len, sizeof len, "%zu", r->body_len);
        add_header(q, "Content-Length", len);
        if (r->body_len) evbuffer_add(evhttp_request_get_output_buffer(er), r->body, r->body_len);
    }
    r->c = c;
    r->er = er;
    r->have_everr = false;
    r->rx_start = c->rx;
    if (evhttp_make_request(c->evcon, er, r->type, r->target) != 0) {
        r->er = NULL;
        evhttp_request_free(er);
        stop_hop(r);
        finish(r, VD_HTTP_ERR_CONNECT, "cannot connect to %s port %d", r->ip, r->port);
    }
}

static void on_addrs(const vd_dns_addr_list *l, void *arg)
{
    vd_http_req *r = arg;
    r->dns = NULL;
    if (l->status != VD_DNS_OK || l->n == 0) {
        finish(r, VD_HTTP_ERR_CONNECT, "cannot resolve %s: %s", r->host,
               vd_dns_status_name(l->status));
        return;
    }
    const struct sockaddr_storage *ss = &l->addrs[0];
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, r->ip, sizeof r->ip);
    else
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, r->ip, sizeof r->ip);
    send_hop(r);
}

static void begin_hop(vd_http_req *r)
{
    r->state = R_RUNNING;
    if (!parse_url(r, r->url)) {
        finish(r, r->redirects ? VD_HTTP_ERR_PROTOCOL : VD_HTTP_ERR_INVALID, "%.200s: %s", r->url,
               r->errmsg);
        return;
    }
    unsigned char buf[16];
    if (inet_pton(AF_INET, r->host, buf) == 1 || inet_pton(AF_INET6, r->host, buf) == 1) {
        snprintf(r->ip, sizeof r->ip, "%s", r->host);
        send_hop(r);
        return;
    }
    if (!r->h->o.dns) {
        finish(r, VD_HTTP_ERR_CONNECT, "cannot resolve %s: no resolver", r->host);
        return;
    }
    vd_dns_req *d = vd_dns_addrs(r->h->o.dns, r->host, on_addrs, r);
    if (d) r->dns = d; /* else on_addrs ran */
}

/* Why a hop failed without a response (er NULL, or status 0 on a failed connect). */
static void hop_failed(vd_http_req *r, conn *c)
{
    if (r->have_everr) {
        switch (r->everr) {
        case EVREQ_HTTP_TIMEOUT:
            finish(r, VD_HTTP_ERR_TIMEOUT, "no response within %g s", r->timeout);
            return;
        case EVREQ_HTTP_DATA_TOO_LONG:
            finish(r, VD_HTTP_ERR_TOO_LARGE, "response headers over %zu bytes or body over %zu",
                   r->h->o.max_headers, r->h->o.max_body);
            return;
        case EVREQ_HTTP_INVALID_HEADER: /* evhttp says so for headers over the bound too */
            if (c && c->rx - r->rx_start > r->h->o.max_headers)
                finish(r, VD_HTTP_ERR_TOO_LARGE, "response headers over %zu bytes",
                       r->h->o.max_headers);
            else
                finish(r, VD_HTTP_ERR_PROTOCOL, "malformed response from %s", r->host);
            return;
        default:
            break;
        }
    }
    if (r->https && c) {
        SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
        long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
        unsigned long e = bufferevent_get_openssl_error(c->bev);
        if (vr != X509_V_OK) {
            finish(r, VD_HTTP_ERR_TLS, "certificate of %s not verified: %s", r->host,
                   X509_verify_cert_error_string(vr));
            return;
        }
        if (e && !c->sent) { /* once the request went out, the handshake was done: a close */
            char buf[256];
            ERR_error_string_n(e, buf, sizeof buf);
            finish(r, VD_HTTP_ERR_TLS, "TLS with %s: %s", r->host, buf);
            return;
        }
    }
    if (r->have_everr)
        finish(r, VD_HTTP_ERR_PROTOCOL, "connection to %s closed before a whole response", r->host);
    else
        finish(r, VD_HTTP_ERR_CONNECT, "cannot connect to %s (%s port %d)", r->host, r->ip,
               r->port);
}

static bool is_redirect(int status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* Copies the response out of er; false when the body is over the bound. */
static bool take_response(vd_http_req *r, struct evhttp_request *er)
{
    clear_response(r);
    r->status = evhttp_request_get_response_code(er);
    struct evkeyvalq *q = evhttp_request_get_input_headers(er);
    size_t n = 0;
    for (struct evkeyval *kv = q->tqh_first; kv; kv = kv->next.tqe_next)
        n++;
    r->headers = n ? calloc(n, sizeof *r->headers) : NULL;
    for (struct evkeyval *kv = q->tqh_first; kv && r->headers; kv = kv->next.tqe_next) {
        hdr *hd = &r->headers[r->nheaders];
        hd->name = strdup(kv->key);
        hd->value = strdup(kv->value);
        if (!hd->name || !hd->value) {
            free(hd->name);
            free(hd->value);
            break;
        }
        for (char *p = hd->name; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        r->nheaders++;
    }
    struct evbuffer *b = evhttp_request_get_input_buffer(er);
    size_t len = evbuffer_get_length(b);
    if (len > r->h->o.max_body) return false;
    r->rbody = malloc(len + 1);
    if (r->rbody) {
        evbuffer_copyout(b, r->rbody, len);
        r->rbody[len] = '\0';
        r->rbody_len = len;
    }
    return true;
}

static const char *header_of(const vd_http_req *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (!strcmp(r->headers[i].name, name)) return r->headers[i].value;
    return NULL;
}

static void follow(vd_http_req *r, const char *loc)
{
    if (r->redirects >= r->h->o.max_redirects) {
        finish(r, VD_HTTP_ERR_REDIRECTS, "more than %d redirects (at %.200s)",
               r->h->o.max_redirects, r->url);
        return;
    }
    char *next = resolve_location(r, loc);
    if (!next) {
        finish(r, VD_HTTP_ERR_PROTOCOL, "redirect to a Location that is too long");
        return;
    }
    if (r->https && strncasecmp(next, "https:", 6) != 0) {
        finish(r, VD_HTTP_ERR_PROTOCOL, "redirect from https to %.200s refused", next);
        free(next);
        return;
    }
    /* RFC 9110 §15.4: 303 is a GET; after 301/302 a POST becomes a GET, as browsers do */
    if (r->status == 303 ||
        ((r->status == 301 || r->status == 302) && r->type == EVHTTP_REQ_POST)) {
        if (r->type != EVHTTP_REQ_HEAD) {
            r->type = EVHTTP_REQ_GET;
            snprintf(r->method, sizeof r->method, "GET");
        }
        free(r->body);
        r->body = NULL;
        r->body_len = 0;
    }
    free(r->url);
    r->url = next;
    r->redirects++;
    r->retried = false;
    clear_response(r);
    r->state = R_REDIRECT;
    event_active(r->step, EV_TIMEOUT, 0);
}

static void on_evreq(struct evhttp_request *er, void *arg)
{
    vd_http_req *r = arg;
    conn *c = r->c;
    r->er = NULL;
    r->c = NULL;
    if (!er || evhttp_request_get_response_code(er) == 0) {
        if (c) c->dead = true; /* reset by evhttp: its SSL is spent */
        bool again = c && c->reused && !r->retried && r->have_everr && r->everr == EVREQ_HTTP_EOF;
        if (!again) hop_failed(r, c);
        if (c) conn_bury(c);
        if (again) { /* the server closed a kept connection as we used it: once more, anew */
            r->retried = true;
            send_hop(r);
        }
        return;
    }
    /* evhttp reads any three characters as the code ("30(" is 30): only 1xx..5xx are HTTP's
     * (RFC 9110 §15), and a connection that spoke otherwise is not kept. */
    int code = evhttp_request_get_response_code(er);
    if (code < 100 || code > 599) {
        if (c) {
            c->dead = true;
            conn_bury(c);
        }
        finish(r, VD_HTTP_ERR_PROTOCOL, "malformed status line (code %d)", code);
        return;
    }
    bool fits = take_response(r, er);
    conn_release(c);
    if (!fits) {
        finish(r, VD_HTTP_ERR_TOO_LARGE, "response body over %zu bytes", r->h->o.max_body);
        return;
    }
    if (r->jar)
        for (size_t i = 0; i < r->nheaders; i++)
            if (!strcmp(r->headers[i].name, "set-cookie")) {
                char path[2048];
                const char *qm = strchr(r->target, '?');
                snprintf(path, sizeof path, "%.*s",
                         (int)(qm ? (size_t)(qm - r->target) : strlen(r->target)), r->target);
                vd_cookie_jar_store(r->jar, r->host, path, r->https, r->headers[i].value,
                                    now_wall());
            }
    const char *loc = header_of(r, "location");
    if (is_redirect(r->status) && loc) {
        follow(r, loc);
        return;
    }
    finish(r, VD_HTTP_OK, NULL);
}

static const struct {
    const char *name;
    enum evhttp_cmd_type type;
} methods[] = {
    {"GET", EVHTTP_REQ_GET},         {"POST", EVHTTP_REQ_POST},     {"HEAD", EVHTTP_REQ_HEAD},
    {"PUT", EVHTTP_REQ_PUT},         {"DELETE", EVHTTP_REQ_DELETE}, {"PATCH", EVHTTP_REQ_PATCH},
    {"OPTIONS", EVHTTP_REQ_OPTIONS},
};

/* A header name is a token; a value has no CR, LF or NUL. */
static bool header_ok(const char *name, const char *value)
{
    if (!name || !*name || !value || strlen(name) > 256 || strlen(value) > 8192) return false;
    for (const char *p = name; *p; p++)
        if (!(isalnum((unsigned char)*p) || strchr("!#$%&'*+-.^_`|~", *p))) return false;
    for (const char *p = value; *p; p++)
        if (*p == '\r' || *p == '\n') return false;
    static const char *const reserved[] = {"host", "content-length", "transfer-encoding",
                                           "connection", NULL};
    for (const char *const *rs = reserved; *rs; rs++)
        if (!strcasecmp(name, *rs)) return false;
    return true;
}

vd_http_req *vd_http_start(vd_http *h, const vd_http_request *rq, vd_http_cb cb, void *arg)
{
    vd_http_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->h = h;
    r->cb = cb;
    r->arg = arg;
    r->jar = rq->jar;
    r->timeout = rq->timeout > 0 ? rq->timeout : h->o.timeout;
    r->url = strdup(rq->url ? rq->url : "");
    r->timer = evtimer_new(h->base, on_timer, r);
    r->step = event_new(h->base, -1, 0, on_step, r);
    if (rq->body_len) {
        r->body = malloc(rq->body_len);
        if (r->body) memcpy(r->body, rq->body, rq->body_len);
        r->body_len = rq->body_len;
    }
    size_t nh = rq->nheaders;
    r->rq_headers = nh ? calloc(nh, sizeof *r->rq_headers) : NULL;
    if (!r->url || !r->timer || !r->step || (rq->body_len && !r->body) || (nh && !r->rq_headers)) {
        req_free(r);
        return NULL;
    }
    struct timeval tv = {(time_t)r->timeout,
                         (suseconds_t)((r->timeout - (double)(time_t)r->timeout) * 1e6)};
    evtimer_add(r->timer, &tv);
    const char *m = rq->method ? rq->method : "GET";
    bool known = false;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0] && !known; i++)
        if (!strcasecmp(m, methods[i].name)) {
            r->type = methods[i].type;
            snprintf(r->method, sizeof r->method, "%s", methods[i].name);
            known = true;
        }
    if (!known) {
        finish(r, VD_HTTP_ERR_INVALID,
               "method '%.32s' is not one of GET, POST, HEAD, PUT, "
               "DELETE, PATCH, OPTIONS",
               m);
        return r;
    }
    if (nh > VD_HTTP_MAX_REQ_HDRS) {
        finish(r, VD_HTTP_ERR_INVALID, "more than %d request headers", VD_HTTP_MAX_REQ_HDRS);
        return r;
    }
    for (size_t i = 0; i < nh; i++) {
        if (!header_ok(rq->headers[i].name, rq->headers[i].value)) {
            finish(r, VD_HTTP_ERR_INVALID,
                   "request header '%.64s' refused (a token name, no "
                   "CR/LF; Host, Content-Length, Transfer-Encoding, Connection are the client's)",
                   rq->headers[i].name ? rq->headers[i].name : "");
            return r;
        }
        r->rq_headers[i].name = strdup(rq->headers[i].name);
        r->rq_headers[i].value = strdup(rq->headers[i].value);
        r->rq_nheaders = i + 1;
        if (!r->rq_headers[i].name || !r->rq_headers[i].value) {
            finish(r, VD_HTTP_ERR_INVALID, "out of memory");
            return r;
        }
    }
    /* started from an event, so that the callback never runs before this returns */
    r->state = R_REDIRECT;
    event_active(r->step, EV_TIMEOUT, 0);
    return r;
}

vd_http *vd_http_new(struct event_base *base, const vd_http_opts *o)
{
    /* The bounds are the caller's (the options table's defaults): missing ones are refused. */
    if (!(o->timeout > 0) || !o->max_body || !o->max_headers) {
        errno = EINVAL;
        return NULL;
    }
    vd_http *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->base = base;
    h->o = *o;
    snprintf(h->user_agent, sizeof h->user_agent, "%s", o->user_agent ? o->user_agent : "Validora");
    h->o.user_agent = h->user_agent;
    h->reap = event_new(base, -1, 0, on_reap, h);
    if (!h->reap) {
        free(h);
        errno = ENOMEM;
        return NULL;
    }
    return h;
}

void vd_http_free(vd_http *h)
{
    if (!h) return;
    while (h->idle) {
        conn *c = h->idle;
        h->idle = c->next;
        conn_destroy(c);
    }
    on_reap(-1, 0, h);
    event_free(h->reap);
    free(h);
}

void vd_http_stats(const vd_http *h, size_t *connections, size_t *reused)
{
    if (connections) *connections = h->connections;
    if (reused) *reused = h->reused;
}

/* ---- cookie jars (RFC 6265 §5, a subset) ---- */

typedef struct cookie {
    char *name, *value;
    char domain[256];
    char path[256];
    bool host_only, secure;
    double expires; /* unix seconds; 0 = the session's */
    double created;
} cookie;

struct vd_cookie_jar {
    cookie v[VD_HTTP_MAX_COOKIES];
    size_t n;
};

vd_cookie_jar *vd_cookie_jar_new(void)
{
    return calloc(1, sizeof(vd_cookie_jar));
}

static void cookie_drop(vd_cookie_jar *j, size_t i)
{
    free(j->v[i].name);
    free(j->v[i].value);
    j->v[i] = j->v[--j->n];
}

void vd_cookie_jar_free(vd_cookie_jar *j)
{
    if (!j) return;
    while (j->n)
        cookie_drop(j, 0);
    free(j);
}

size_t vd_cookie_jar_count(const vd_cookie_jar *j)
{
    return j ? j->n : 0;
}

/* RFC 6265 §5.1.3 */
static bool domain_match(const char *host, const char *domain)
{
    size_t hl = strlen(host), dl = strlen(domain);
    if (!strcasecmp(host, domain)) return true;
    unsigned char b[16];
    if (inet_pton(AF_INET, host, b) == 1 || inet_pton(AF_INET6, host, b) == 1) return false;
    return hl > dl && host[hl - dl - 1] == '.' && !strcasecmp(host + hl - dl, domain);
}

/* RFC 6265 §5.1.4 */
static bool path_match(const char *req, const char *cp)
{
    size_t n = strlen(cp);
    if (strncmp(req, cp, n) != 0) return false;
    return req[n] == '\0' || cp[n - 1] == '/' || req[n] == '/';
}

static void default_path(const char *req, char *out, size_t len)
{
    const char *last = strrchr(req, '/');
    if (req[0] != '/' || !last || last == req)
        snprintf(out, len, "/");
    else
        snprintf(out, len, "%.*s", (int)(last - req), req);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        *--e = '\0';
    return s;
}

/* An HTTP date (RFC 1123 form, the one servers send) as unix seconds, or -1. */
static double parse_date(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *forms[] = {"%a, %d %b %Y %H:%M:%S", "%a, %d-%b-%Y %H:%M:%S",
                           "%A, %d-%b-%y %H:%M:%S"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(s, forms[i], &tm);
        if (end) return (double)timegm(&tm);
    }
    return -1;
}

static const psl_ctx_t *psl(void)
{
    return psl_builtin();
}

void vd_cookie_jar_store(vd_cookie_jar *j, const char *host, const char *path, bool secure,
                         const char *set_cookie, double now)
{
    if (!j || !set_cookie || strlen(set_cookie) > 2 * VD_HTTP_MAX_COOKIE) return;
    char *copy = strdup(set_cookie);
    if (!copy) return;
    char *save = NULL;
    char *pair = strtok_r(copy, ";", &save);
    char *eq = pair ? strchr(pair, '=') : NULL;
    if (!eq) goto out;
    *eq = '\0';
    char *name = trim(pair), *value = trim(eq + 1);
    if (!*name || strlen(name) + strlen(value) > VD_HTTP_MAX_COOKIE) goto out;
    cookie c = {.host_only = true, .created = now};
    snprintf(c.domain, sizeof c.domain, "%s", host);
    default_path(path, c.path, sizeof c.path);
    bool have_max_age = false;
    for (char *a = strtok_r(NULL, ";", &save); a; a = strtok_r(NULL, ";", &save)) {
        char *v = strchr(a, '=');
        if (v) *v++ = '\0';
        char *k = trim(a);
        v = v ? trim(v) : NULL;
        if (!strcasecmp(k, "domain") && v && *v) {
            if (*v == '.') v++;
            for (char *p = v; *p; p++)
                *p = (char)tolower((unsigned char)*p);
            /* a Domain the host is not in, or a public suffix (co.uk), is refused */
            if (!domain_match(host, v) || (strcmp(host, v) && psl_is_public_suffix(psl(), v)))
                goto out;
            c.host_only = false;
            snprintf(c.domain, sizeof c.domain, "%s", v);
        } else if (!strcasecmp(k, "path") && v && *v == '/') {
            snprintf(c.path, sizeof c.path, "%s", v);
        } else if (!strcasecmp(k, "max-age") && v) {
            char *end;
            long n = strtol(v, &end, 10);
            if (end != v && !*end) {
                have_max_age = true;
                c.expires = n <= 0 ? -1 : now + (double)n;
            }
        } else if (!strcasecmp(k, "expires") && v && !have_max_age) {
            double t = parse_date(v);
            if (t >= 0) c.expires = t <= now ? -1 : t;
        } else if (!strcasecmp(k, "secure")) {
            c.secure = true;
        }
    }
    if (c.secure && !secure) goto out; /* RFC 6265bis: only a secure origin sets Secure */
    /* replace one of the same name, domain and path */
    for (size_t i = 0; i < j->n; i++)
        if (!strcmp(j->v[i].name, name) && !strcmp(j->v[i].domain, c.domain) &&
            !strcmp(j->v[i].path, c.path)) {
            c.created = j->v[i].created;
            cookie_drop(j, i);
            break;
        }
    if (c.expires < 0) goto out;       /* expired: deleted */
    if (j->n == VD_HTTP_MAX_COOKIES) { /* full: the oldest goes */
        size_t old = 0;
        for (size_t i = 1; i < j->n; i++)
            if (j->v[i].created < j->v[old].created) old = i;
        cookie_drop(j, old);
    }
    c.name = strdup(name);
    c.value = strdup(value);
    if (!c.name || !c.value) {
        free(c.name);
        free(c.value);
        goto out;
    }
    j->v[j->n++] = c;
out:
    free(copy);
}

void vd_cookie_jar_header(vd_cookie_jar *j, const char *host, const char *path, bool secure,
                          double now, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = '\0';
    if (!j) return;
    for (size_t i = 0; i < j->n;) {
        cookie *c = &j->v[i];
        if (c->expires > 0 && c->expires <= now) {
            cookie_drop(j, i);
            continue;
        }
        i++;
        bool host_ok_ = c->host_only ? !strcasecmp(host, c->domain) : domain_match(host, c->domain);
        if (!host_ok_ || !path_match(path, c->path) || (c->secure && !secure)) continue;
        size_t need = strlen(c->name) + strlen(c->value) + 3;
        if (at + need >= len) break;
        at += (size_t)snprintf(buf + at, len - at, "%s%s=%s", at ? "; " : "", c->name, c->value);
    }
}

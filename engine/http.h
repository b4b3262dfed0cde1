/* http.h — an asynchronous HTTP/1.1 client on the engine's libevent loop, for rules'
 * alternative checks (http.request in lua_http.c).
 *
 * Owns: URLs (http and https only), names resolved with the engine's DNS (dns.h; the client
 * connects to the address, sends the Host header and, over TLS, SNI and host-name
 * verification from tls.c), evhttp connections over plain or OpenSSL bufferevents, kept
 * alive and reused per scheme, host and port, the bounds (timeout, response body and headers,
 * redirects), following redirects (303, and 301/302 after a POST, become GET; https -> http
 * refused), cookie jars (a subset of RFC 6265), and cancelling a request.
 * Does not own: who may send how much (the limiter, through lua_http.c), what an answer
 * means (rules), the SSL_CTX (tls.c makes it; the engine hands it over), DNS (dns.c). */
#ifndef VALIDORA_HTTP_H
#define VALIDORA_HTTP_H
#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>
#include "dns.h"

struct event_base;
typedef struct vd_http vd_http;
typedef struct vd_http_req vd_http_req;
typedef struct vd_cookie_jar vd_cookie_jar;

/* Fixed bounds of what a caller hands in (not options: they protect the client itself). */
#define VD_HTTP_MAX_URL       4096 /* bytes of a URL, a Location included */
#define VD_HTTP_MAX_REQ_HDRS  64   /* headers a request may set */
#define VD_HTTP_MAX_COOKIES   50   /* cookies a jar keeps (RFC 6265 §6.1 asks for 50 a domain) */
#define VD_HTTP_MAX_COOKIE    4096 /* bytes of one cookie's name and value (RFC 6265 §6.1) */
#define VD_HTTP_IDLE_PER_HOST 2    /* idle kept-alive connections per scheme, host and port */

typedef enum vd_http_err {
    VD_HTTP_OK = 0,
    VD_HTTP_ERR_CONNECT,   /* the name did not resolve, refused, unreachable */
    VD_HTTP_ERR_TIMEOUT,   /* no whole response within the request's timeout */
    VD_HTTP_ERR_TLS,       /* handshake failed or the certificate did not verify */
    VD_HTTP_ERR_PROTOCOL,  /* closed early, malformed response, https -> http redirect */
    VD_HTTP_ERR_TOO_LARGE, /* body or headers beyond the bound */
    VD_HTTP_ERR_REDIRECTS, /* more redirects than the bound */
    VD_HTTP_ERR_INVALID,   /* a bad URL, method or header: nothing sent */
    VD_HTTP_ERR_FORBIDDEN, /* the address (a redirect's too) is special (destination.h): nothing
                              sent to it */
    VD_HTTP_ERR_COUNT = VD_HTTP_ERR_FORBIDDEN,
} vd_http_err;

/* The names rules see (docs/errors.md), indexed by err - 1, NULL-terminated. */
extern const char *const vd_http_err_names[VD_HTTP_ERR_COUNT + 1];
const char *vd_http_err_name(vd_http_err e);

typedef struct vd_http_opts {
    SSL_CTX *tls_ctx;       /* a verifying client context (tls.c); NULL: https is refused */
    vd_dns *dns;            /* resolves names; NULL: only IP literals */
    double timeout;         /* seconds a request may take, redirects included (default) */
    size_t max_body;        /* bytes of a response body */
    size_t max_headers;     /* bytes of a response's status line and headers */
    int max_redirects;      /* redirects followed for one request (0: none) */
    const char *user_agent; /* sent unless the request sets one; NULL: "Validora" */
} vd_http_opts;

/* The bounds (timeout, max_body, max_headers, max_redirects) are the caller's, from its options
 * table: a missing timeout, max_body or max_headers (0) is refused, NULL with errno EINVAL;
 * otherwise NULL means out of memory. */
vd_http *vd_http_new(struct event_base *base, const vd_http_opts *o);
/* Frees the client and its kept connections. Requests still running must have been
 * cancelled (or completed) first. NULL is fine. */
void vd_http_free(vd_http *h);

typedef struct vd_http_header {
    const char *name;
    const char *value;
} vd_http_header;

typedef struct vd_http_request {
    const char *method; /* "GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS" */
    const char *url;    /* http:// or https:// */
    const vd_http_header *headers;
    size_t nheaders;
    const char *body; /* may be NULL */
    size_t body_len;
    double timeout;     /* seconds; 0 = the client's */
    vd_cookie_jar *jar; /* cookies sent and stored; NULL = none */
} vd_http_request;

/* What came back; valid only during the callback. */
typedef struct vd_http_response {
    vd_http_err err;
    const char *errmsg; /* detail when err, else NULL */
    int status;
    const vd_http_header *headers; /* names lower-case, in the order received */
    size_t nheaders;
    const char *body;
    size_t body_len;
    const char *url; /* the final URL, after redirects */
} vd_http_response;

typedef void (*vd_http_cb)(const vd_http_response *r, void *arg);

/* Starts a request. cb is called exactly once, never before this returns, unless the request
 * is cancelled. NULL when out of memory (no callback then). */
vd_http_req *vd_http_start(vd_http *h, const vd_http_request *rq, vd_http_cb cb, void *arg);
/* Stops a request that has not completed: its callback is not called, its connection is
 * closed. */
void vd_http_cancel(vd_http_req *r);

/* Counters since vd_http_new, for tests: connections opened, requests sent over a kept one. */
void vd_http_stats(const vd_http *h, size_t *connections, size_t *reused);

/* ---- cookie jars: name=value with Domain, Path, Max-Age, Expires, Secure; host-only cookies
 * without Domain; a Domain the request host is not in is ignored; bounded count and size. */
vd_cookie_jar *vd_cookie_jar_new(void);
void vd_cookie_jar_free(vd_cookie_jar *j); /* NULL is fine */
/* Stores one Set-Cookie header received from host for path (now: unix seconds). */
void vd_cookie_jar_store(vd_cookie_jar *j, const char *host, const char *path, bool secure,
                         const char *set_cookie, double now);
/* The Cookie header value for a request to host and path ("" when none) into buf. */
void vd_cookie_jar_header(vd_cookie_jar *j, const char *host, const char *path, bool secure,
                          double now, char *buf, size_t len);
size_t vd_cookie_jar_count(const vd_cookie_jar *j);

#endif

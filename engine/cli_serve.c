/* cli_serve.c — `validora serve`: a daemon answering verifications over HTTP (libevent's
 * evhttp) on one engine, with the same engine options as `verify` (docs/serve.md).
 *
 * Owns: serve's own options (listen address, token file, bounds, stop timeout), the token
 * check, the routes and their replies (JSON errors), which body types a request may use,
 * the connections (counted from accept, their slots and deadlines, each request's head
 * judged before its body: docs/serve.md, Security), and the daemon's life: start-up,
 * SIGHUP reload, SIGTERM drain and exit.
 * Does not own: the body formats (cli_serve_parse.c), jobs and their files
 * (cli_serve_jobs.c), metric names (cli_serve_metrics.c),
 * engine options (validora/options.h), signals' plumbing (cli_common.c). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include "cli.h"
#include "cli_serve_jobs.h"
#include "cli_serve_metrics.h"
#include "cli_serve_parse.h"
#include "validora/ledger.h"

#define HEADERS_MAX   16384 /* request line and headers: a token and an Accept fit easily */
#define TOKEN_MAX     4096  /* bytes of the token file's line */
#define DRAIN_POLL_MS 100   /* after SIGTERM: how often to look whether work is done */

typedef struct serve_opts {
    const char *listen, *token_file;
    int concurrency;
    int max_body, max_jobs, max_job_addresses, max_connections, reserved_connections;
    double job_ttl, http_timeout, request_timeout, stop_timeout;
    vd_strlist allow_hosts, allow_origins;
    int verbose;
} serve_opts;

#define SOFF(f) offsetof(serve_opts, f)
const vd_option vd_cli_serve_options[] = {
    {"listen", 0, VD_OPT_STRING, SOFF(listen), 0, "127.0.0.1:8025", 0, 0, "ADDR:PORT", "Serve",
     "listen there ([ADDR]:PORT for IPv6); loopback by default: anything else is reachable "
     "from other machines: give it with --token-file (serve warns without one)",
     false},
    {"token-file", 0, VD_OPT_STRING, SOFF(token_file), 0, NULL, 0, 0, "FILE", "Serve",
     "every path but /healthz needs 'Authorization: Bearer TOKEN', TOKEN being FILE's first "
     "line (read once at start, never logged)",
     false},
    {"concurrency", 'j', VD_OPT_INT, SOFF(concurrency), 256, NULL, 1, 1000000, "N", "Serve",
     "addresses of jobs in flight, all jobs together (POST /v1/verify goes at once)", false},
    {"stop-timeout", 0, VD_OPT_SECONDS, SOFF(stop_timeout), 30, NULL, 0, 3600, "SECS", "Serve",
     "after SIGTERM, wait this long for the addresses in flight (jobs' unfinished ones are "
     "redone at the next start); below systemd's default 90 s stop timeout",
     false},
    {"verbose", 'v', VD_OPT_COUNT, SOFF(verbose), 0, NULL, 0, 0, NULL, "Serve",
     "a line per request and rule messages on stderr (-vv: debug)", false},
    {"max-request-body", 0, VD_OPT_INT, SOFF(max_body), 4194304, NULL, 1024, 1073741824, "BYTES",
     "Bounds",
     "largest request body (a job's list: 4 MiB holds about 100,000 addresses; it is held in "
     "memory while parsed); beyond: 413",
     false},
    {"max-jobs", 0, VD_OPT_INT, SOFF(max_jobs), 64, NULL, 1, 100000, "N", "Bounds",
     "jobs kept, finished or not (each is a directory of files); beyond: 429 until one is "
     "deleted or expires",
     false},
    {"max-job-addresses", 0, VD_OPT_INT, SOFF(max_job_addresses), 100000, NULL, 1, 100000000, "N",
     "Bounds", "addresses in one job (its results are read whole for GET .../results); beyond: 413",
     false},
    {"max-connections", 0, VD_OPT_INT, SOFF(max_connections), 256, NULL, 1, 100000, "N", "Bounds",
     "HTTP connections served at once, counted from accept, with a token or not (each may "
     "hold a POST /v1/verify waiting for its record); a request on one more gets 503 and the "
     "connection is closed",
     false},
    {"reserved-connections", 0, VD_OPT_INT, SOFF(reserved_connections), 8, NULL, 0, 99999, "N",
     "Bounds",
     "with --token-file: of --max-connections, this many are kept for connections that have "
     "shown the token, so strangers cannot take every slot (at most --max-connections - 1)",
     false},
    {"job-ttl", 0, VD_OPT_SECONDS, SOFF(job_ttl), 86400, NULL, 60, 31536000, "SECS", "Bounds",
     "a finished job and its results are removed this long after it finished", false},
    {"idle-timeout", 0, VD_OPT_SECONDS, SOFF(http_timeout), 30, NULL, 1, 3600, "SECS", "Bounds",
     "an idle connection, or one that sends its request this slowly, is closed", false},
    {"request-timeout", 0, VD_OPT_SECONDS, SOFF(request_timeout), 60, NULL, 1, 3600, "SECS",
     "Bounds",
     "a request must arrive whole (headers and body) this long after the connection opened or "
     "its last reply began, else the connection is closed: a client trickling a byte at a "
     "time is cut here (--idle-timeout restarts at every byte)",
     false},
    {"allow-host", 0, VD_OPT_LIST, SOFF(allow_hosts), 0, NULL, 0, 0, "NAME[,NAME]", "Serve",
     "a Host header accepted besides the listen address (and localhost, 127.0.0.1, [::1] on "
     "loopback): NAME with any port, NAME:PORT with that one; any other is 403 (DNS "
     "rebinding)",
     false},
    {"allow-origin", 0, VD_OPT_LIST, SOFF(allow_origins), 0, NULL, 0, 0, "ORIGIN[,ORIGIN]", "Serve",
     "an Origin header (scheme://host[:port]) accepted; a request carrying any other Origin "
     "(a web page's) is 403",
     false},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL, NULL, NULL, false},
};

static const vd_cli_usage USAGE = {
    .cmd = "serve",
    .section = "serve",
    .head =
        "Usage: validora serve [OPTION]...\n"
        "Answers verifications over HTTP until stopped (docs/serve.md).\n"
        "\n"
        "  POST   /v1/verify            {\"email\": \"...\"} as application/json: the record\n"
        "  POST   /v1/jobs              a list (application/json array of strings, text/csv\n"
        "                               with ?column=NAME, default email; text/plain one a\n"
        "                               line, with --token-file only): 202 {\"id\": \"...\"}\n"
        "  GET    /v1/jobs/ID           progress: state, total, done, counts by status\n"
        "  GET    /v1/jobs/ID/results   records so far: JSON Lines, or msgpack with\n"
        "                               Accept: application/msgpack (or application/x-msgpack)\n"
        "  DELETE /v1/jobs/ID           removes the job and its results\n"
        "  GET    /metrics              Prometheus text format\n"
        "  GET    /healthz              'ok' (503 'stopping' after SIGTERM); needs no token\n"
        "Jobs are kept under STATE_DIR/serve/jobs; a restart resumes unfinished ones.\n"
        "Refused before anything else (docs/serve.md, Security): a Host that is not this\n"
        "server's (--allow-host), an Origin not given (--allow-origin), no token on its head.\n",
    .tail = "Exit status: 0 after SIGTERM/SIGINT, 1 when it cannot start, 2 on a usage error.\n"
            "Signals: SIGHUP reloads the rules (so does editing them, with --watch);\n"
            "SIGTERM/SIGINT: new POSTs get 503, work in flight finishes (up to --stop-timeout),\n"
            "then exit 0 (again: exit now; jobs' unfinished addresses are redone at the next "
            "start).\n",
};

typedef struct server server;

/* An accepted connection (docs/serve.md, "Security"). Counted from accept (evhttp's
 * bufferevent hook); each of its requests gets a header callback, so serve judges the head
 * before evhttp reads a body: a refused request is handed on without its body, and its
 * reply is the refusal. */
typedef enum slot_kind {
    SLOT_STRANGER, /* holds a slot, has not shown the token (yet) */
    SLOT_TRUSTED,  /* holds a slot, has shown the token (or no token is set) */
    SLOT_WAITING,  /* holds no slot: its first request gets one only with the token */
} slot_kind;

typedef struct conn {
    server *srv;
    struct bufferevent *bev;
    struct evhttp_connection *evcon; /* known from the hook on */
    struct conn *prev, *next;
    slot_kind kind;
    bool busy;  /* a request is being answered: no deadline */
    int refuse; /* the status its request gets, or 0 */
    const char *refuse_name;
    char refuse_msg[256];
    struct event *deadline, *hook;
} conn;

/* A POST /v1/verify waiting for its record. */
typedef struct pending {
    server *srv;
    struct evhttp_request *req;
    struct pending *prev, *next;
} pending;

struct server {
    struct event_base *base;
    vd_engine *engine;
    struct evhttp *http;
    serve_opts o;
    bool has_token;
    unsigned char token_hash[SHA256_DIGEST_LENGTH];
    sv_metrics *metrics;
    sv_jobs *jobs;
    conn *conns;             /* every accepted connection */
    long nslots, nstrangers; /* connections holding a slot; of them, without the token */
    long nwaiting_conns;     /* connections holding none (refused or on probation) */
    char listen_host[256];   /* --listen's address, and its port */
    int listen_port;
    pending *waiting;
    long nwaiting;
    bool stopping;
    struct event *drain_ev;
    struct timeval stop_at;
};

/* ---- replies ---- */

static void conn_replied(server *s, struct evhttp_request *req);

static void reply(server *s, struct evhttp_request *req, int code, const char *type,
                  struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    if (type) evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    sv_metrics_http(s->metrics, code);
    conn_replied(s, req);
    if (s->o.verbose) {
        const char *uri = evhttp_request_get_uri(req);
        fprintf(stderr, "validora serve: %d %s\n", code, uri ? uri : "?");
    }
    static const struct {
        int code;
        const char *why;
    } reasons[] = {{200, "OK"},
                   {202, "Accepted"},
                   {204, "No Content"},
                   {400, "Bad Request"},
                   {401, "Unauthorized"},
                   {403, "Forbidden"},
                   {404, "Not Found"},
                   {405, "Method Not Allowed"},
                   {413, "Payload Too Large"},
                   {415, "Unsupported Media Type"},
                   {429, "Too Many Requests"},
                   {500, "Internal Server Error"},
                   {503, "Service Unavailable"}};
    const char *why = "Error";
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (reasons[i].code == code) why = reasons[i].why;
    evhttp_send_reply(req, code, why, body);
}

/* {"error": NAME, "message": "..."} with the code. */
__attribute__((format(printf, 5, 6))) static void
reply_error(server *s, struct evhttp_request *req, int code, const char *name, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:s, s:s}", "error", name, "message", msg);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    struct evbuffer *b = evbuffer_new();
    if (b && text) evbuffer_add_printf(b, "%s\n", text);
    if (code == 401)
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"validora\"");
    reply(s, req, code, "application/json", b);
    if (b) evbuffer_free(b);
    free(text);
    json_decref(o);
}

static void reply_text(server *s, struct evhttp_request *req, int code, const char *type,
                       const char *text)
{
    struct evbuffer *b = evbuffer_new();
    if (b) evbuffer_add(b, text, strlen(text));
    reply(s, req, code, type, b);
    if (b) evbuffer_free(b);
}

/* ---- token ---- */

static int read_token(server *s, char *err, size_t errlen)
{
    const char *path = s->o.token_file;
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, errlen, "--token-file %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
        fprintf(stderr,
                "validora serve: warning: --token-file %s can be read by others "
                "(chmod 600 it)\n",
                path);
    char line[TOKEN_MAX + 2];
    size_t n = 0;
    if (fgets(line, sizeof line, f)) n = strcspn(line, "\r\n");
    fclose(f);
    while (n > 0 && isspace((unsigned char)line[n - 1]))
        n--;
    if (n == 0 || n > TOKEN_MAX) {
        snprintf(err, errlen,
                 "--token-file %s: its first line must hold the token (1 to %d "
                 "bytes)",
                 path, TOKEN_MAX);
        return -1;
    }
    SHA256((const unsigned char *)line, n, s->token_hash);
    OPENSSL_cleanse(line, sizeof line);
    s->has_token = true;
    return 0;
}

/* An Authorization value (n bytes) against the token. Constant-time: both sides are hashed
 * first, so neither length nor content leaks. */
static bool token_matches(const server *s, const char *h, size_t n)
{
    if (n < 7 || strncasecmp(h, "Bearer ", 7) != 0) return false;
    h += 7, n -= 7;
    while (n > 0 && *h == ' ')
        h++, n--;
    unsigned char got[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)h, n, got);
    return CRYPTO_memcmp(got, s->token_hash, sizeof got) == 0;
}

static bool authorized(const server *s, struct evhttp_request *req)
{
    if (!s->has_token) return true;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    return h && token_matches(s, h, strlen(h));
}

/* ---- connections ---- */

/* libevent 2.1 has no hook at a server request's creation (2.2's evhttp_set_newreqcb): the
 * request a connection is reading is found at the head of the connection's queue, whose
 * offset in the opaque struct evhttp_connection is learnt at start from a request queued on
 * a client connection (probe_queue_offset); -1 when it could not be (then every check is
 * made after the body, in on_request, and the log says so). */
static long queue_off = -1;

static void probe_cb(struct evhttp_request *req, void *arg)
{
    (void)req;
    (void)arg;
}

static void probe_queue_offset(struct event_base *base, const char *host, int port)
{
    struct evhttp_connection *ec = evhttp_connection_base_new(base, NULL, host, (ev_uint16_t)port);
    struct evhttp_request *r = ec ? evhttp_request_new(probe_cb, NULL) : NULL;
    /* (On a failure evhttp may have freed the request or not: it is left alone.) */
    if (r && evhttp_make_request(ec, r, EVHTTP_REQ_GET, "/healthz") == 0) {
        /* The request is the queue's only one: its back link is the queue's head. */
        char *head = (char *)r->next.tqe_prev;
        long off = (long)(head - (char *)ec);
        if (r->evcon == ec && off > 0 && off < 4096 && *(struct evhttp_request **)head == r)
            queue_off = off;
    }
    if (ec) evhttp_connection_free(ec); /* frees the request queued on it, unsent */
}

static struct evhttp_request *current_request(struct evhttp_connection *ec)
{
    if (queue_off < 0 || !ec) return NULL;
    struct evhttp_request *r = *(struct evhttp_request **)(void *)((char *)ec + queue_off);
    return r && r->evcon == ec ? r : NULL;
}

static void conn_refuse(conn *c, int code, const char *name, const char *msg)
{
    c->refuse = code;
    c->refuse_name = name;
    snprintf(c->refuse_msg, sizeof c->refuse_msg, "%s", msg);
}

/* The connection has shown the token: it keeps its slot as trusted, or gets one (it was
 * waiting), or is refused when every slot is taken. */
static void conn_trust(conn *c)
{
    server *s = c->srv;
    if (c->kind == SLOT_STRANGER) {
        s->nstrangers--;
    } else if (c->kind == SLOT_WAITING) {
        if (s->nslots >= s->o.max_connections) {
            conn_refuse(c, 503, "too_many_connections",
                        "every connection slot is taken (--max-connections)");
            return;
        }
        s->nwaiting_conns--;
        s->nslots++;
    }
    c->kind = SLOT_TRUSTED;
}

static bool loopback(const char *host);
static conn *conn_of(server *s, struct evhttp_request *req);

/* The media type of the body, without parameters, lower-case. */
static void media_type(struct evhttp_request *req, char *out, size_t len)
{
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
    size_t i = 0;
    for (; ct && ct[i] && ct[i] != ';' && i + 1 < len; i++)
        out[i] = (char)tolower((unsigned char)ct[i]);
    while (i > 0 && out[i - 1] == ' ')
        i--;
    out[i] = 0;
}

/* CSRF: the types a web page may POST without asking first (text/plain, a form) are refused
 * where a browser could drive serve: /v1/verify takes application/json only, /v1/jobs no
 * text/plain without the token. False with the message. */
static bool type_allowed(const server *s, struct evhttp_request *req, const char *path, char *msg,
                         size_t len)
{
    char type[128];
    media_type(req, type, sizeof type);
    if (!strcmp(path, "/v1/verify") && strcmp(type, "application/json") != 0) {
        snprintf(msg, len, "Content-Type '%.100s': POST /v1/verify takes application/json", type);
        return false;
    }
    if (!strcmp(path, "/v1/jobs") && !strcmp(type, "text/plain") && !s->has_token) {
        snprintf(msg, len,
                 "Content-Type 'text/plain' is one a web page can send without asking (CSRF): "
                 "without --token-file, send application/json (an array of strings) or text/csv "
                 "(a header row, ?column=NAME or N)");
        return false;
    }
    return true;
}

static server *the_server; /* on_head's: evhttp passes it its own argument */
static bool head_allowed(server *s, struct evhttp_request *req, int *code, const char **name,
                         char *msg, size_t len);

/* The head of a request is read: decides on it before evhttp reads a body. A refused
 * request loses its body headers (so evhttp reads no body and calls on_request at once) and
 * the connection is closed after the reply, which is the refusal (on_request). */
static int on_head(struct evhttp_request *req, void *arg)
{
    (void)arg;
    server *s = the_server;
    conn *c = conn_of(s, req);
    if (!c) return 0;
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *auth = evhttp_find_header(in, "Authorization");
    if (s->has_token && auth && token_matches(s, auth, strlen(auth))) {
        conn_trust(c);
    } else if (c->kind == SLOT_WAITING) {
        conn_refuse(c, 503, "too_many_connections",
                    s->has_token ? "every connection slot a client without the token may take "
                                   "is taken (--max-connections, --reserved-connections)"
                                 : "every connection slot is taken (--max-connections)");
    } else if (s->has_token) {
        /* Without the token: GET or HEAD /healthz, without a body; the rest is refused
         * here, before its body is read. */
        const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
        enum evhttp_cmd_type m = evhttp_request_get_command(req);
        const char *cl = evhttp_find_header(in, "Content-Length");
        bool body = evhttp_find_header(in, "Transfer-Encoding") || (cl && strcmp(cl, "0") != 0);
        if (!(path && !strcmp(path, "/healthz") && !body &&
              (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD)))
            conn_refuse(c, 401, "unauthorized",
                        "this path needs 'Authorization: Bearer TOKEN' (--token-file)");
    }
    int code;
    const char *name;
    char msg[sizeof c->refuse_msg];
    if (!c->refuse && !head_allowed(s, req, &code, &name, msg, sizeof msg))
        conn_refuse(c, code, name, msg);
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (!c->refuse && evhttp_request_get_command(req) == EVHTTP_REQ_POST && path &&
        !type_allowed(s, req, path, msg, sizeof msg))
        conn_refuse(c, 415, "unsupported_media_type", msg);
    if (c->refuse) {
        while (evhttp_remove_header(in, "Content-Length") == 0)
            ;
        while (evhttp_remove_header(in, "Transfer-Encoding") == 0)
            ;
        while (evhttp_remove_header(in, "Expect") == 0) /* no 100 Continue: no body wanted */
            ;
    }
    return 0;
}

/* Closes the connection: evhttp sees the end of the stream and frees it. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn *c = arg;
    evutil_socket_t sock = bufferevent_getfd(c->bev);
    if (sock >= 0) shutdown(sock, SHUT_RDWR);
}

static void conn_arm(conn *c)
{
    double t = c->srv->o.request_timeout;
    struct timeval tv = {(time_t)t, (suseconds_t)((t - (double)(time_t)t) * 1e6)};
    event_add(c->deadline, &tv);
}

static void on_conn_close(struct evhttp_connection *ec, void *arg)
{
    (void)ec;
    conn *c = arg;
    server *s = c->srv;
    if (c->kind == SLOT_WAITING) {
        s->nwaiting_conns--;
    } else {
        s->nslots--;
        if (c->kind == SLOT_STRANGER) s->nstrangers--;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    event_free(c->deadline);
    event_free(c->hook);
    free(c);
}

static void on_reply_done(struct evhttp_request *req, void *arg)
{
    (void)req;
    conn *c = arg;
    c->refuse = 0;
    event_active(c->hook, EV_TIMEOUT, 0); /* after evhttp queued the next request */
}

/* Runs after evhttp set the connection up, and after each reply: hooks the request it reads
 * now. */
static void on_hook(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn *c = arg;
    if (!c->evcon) {
        void *cbarg = NULL; /* evhttp's callbacks on the bufferevent take the connection */
        bufferevent_getcb(c->bev, NULL, NULL, NULL, &cbarg);
        if (!cbarg) return;
        c->evcon = cbarg;
        evhttp_connection_set_closecb(c->evcon, on_conn_close, c);
    }
    struct evhttp_request *r = current_request(c->evcon);
    if (r) {
        evhttp_request_set_header_cb(r, on_head);
        evhttp_request_set_on_complete_cb(r, on_reply_done, c);
    }
}

/* evhttp's hook at accept: the bufferevent it will read the connection through. */
static struct bufferevent *on_accept(struct event_base *base, void *arg)
{
    server *s = arg;
    conn *c = calloc(1, sizeof *c);
    if (!c) return NULL; /* evhttp makes its own: served, but neither counted nor hooked */
    *c = (conn){.srv = s};
    c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    c->deadline = evtimer_new(base, on_deadline, c);
    c->hook = evtimer_new(base, on_hook, c);
    if (!c->bev || !c->deadline || !c->hook) {
        if (c->bev) bufferevent_free(c->bev);
        if (c->deadline) event_free(c->deadline);
        if (c->hook) event_free(c->hook);
        free(c);
        return NULL;
    }
    long cap = s->o.max_connections - (s->has_token ? s->o.reserved_connections : 0);
    if (s->nslots < s->o.max_connections && (!s->has_token || s->nstrangers < cap)) {
        c->kind = s->has_token ? SLOT_STRANGER : SLOT_TRUSTED;
        s->nslots++;
        if (c->kind == SLOT_STRANGER) s->nstrangers++;
    } else {
        c->kind = SLOT_WAITING;
        s->nwaiting_conns++;
    }
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    event_active(c->hook, EV_TIMEOUT, 0); /* evhttp has not set the connection up yet */
    if (c->kind == SLOT_WAITING && s->nwaiting_conns > s->o.max_connections)
        event_active(c->deadline, EV_TIMEOUT, 0); /* too many waiting too: closed at once */
    else
        conn_arm(c);
    return c->bev;
}

/* The connection record of a request (NULL when its client is gone). */
static conn *conn_of(server *s, struct evhttp_request *req)
{
    struct evhttp_connection *ec = evhttp_request_get_connection(req);
    struct bufferevent *b = ec ? evhttp_connection_get_bufferevent(ec) : NULL;
    for (conn *c = s->conns; b && c; c = c->next)
        if (c->bev == b) return c;
    return NULL;
}

/* A reply begins: the connection's next request must arrive whole by the deadline. */
static void conn_replied(server *s, struct evhttp_request *req)
{
    conn *c = conn_of(s, req);
    if (c && c->busy) {
        c->busy = false;
        conn_arm(c);
    }
}

/* Whether item (of a --allow-* value: NAME[,NAME]...) names what (n bytes), case ignored. */
static bool in_list(const vd_strlist *l, const char *what, size_t n)
{
    for (int i = 0; i < l->n; i++)
        for (const char *p = l->v[i]; *p;) {
            size_t k = strcspn(p, ",");
            const char *a = p, *e = p + k;
            while (a < e && *a == ' ')
                a++;
            while (e > a && e[-1] == ' ')
                e--;
            if ((size_t)(e - a) == n && n && !strncasecmp(a, what, n)) return true;
            p += k + (p[k] == ',');
        }
    return false;
}

static bool is_ip(const char *name)
{
    unsigned char a[16];
    return inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1;
}

/* The Host header (DNS rebinding: a name the attacker controls, pointed at us, is refused).
 * Taken: --allow-host NAME (any port, or exactly NAME:PORT); the listen address; on loopback
 * localhost, 127.0.0.1 and [::1]; on a wildcard listen any IP address. The built-in ones
 * with the listen port or none. No Host at all (HTTP/1.0) is no browser's: taken. */
static bool host_ok(const server *s, const char *h)
{
    if (!h) return true;
    if (in_list(&s->o.allow_hosts, h, strlen(h))) return true;
    char name[256];
    const char *rest;
    if (h[0] == '[') {
        const char *rb = strchr(h, ']');
        if (!rb || (size_t)(rb - h - 1) >= sizeof name) return false;
        snprintf(name, sizeof name, "%.*s", (int)(rb - h - 1), h + 1);
        rest = rb + 1;
    } else {
        size_t n = strcspn(h, ":");
        if (n >= sizeof name) return false;
        snprintf(name, sizeof name, "%.*s", (int)n, h);
        rest = h + n;
    }
    if (in_list(&s->o.allow_hosts, name, strlen(name))) return true; /* any port */
    if (*rest) {
        char *end;
        if (*rest != ':' || strtol(rest + 1, &end, 10) != s->listen_port || *end || end == rest + 1)
            return false;
    }
    if (!strcasecmp(name, s->listen_host)) return true;
    const char *l = s->listen_host;
    bool wildcard = !strcmp(l, "0.0.0.0") || !strcmp(l, "::") || !strcmp(l, "[::]");
    if (wildcard) return is_ip(name);
    if (loopback(l))
        return !strcasecmp(name, "localhost") || !strcmp(name, "127.0.0.1") || !strcmp(name, "::1");
    return false;
}

/* ---- POST /v1/verify ---- */

static void pending_unlink(pending *p)
{
    server *s = p->srv;
    if (p->prev)
        p->prev->next = p->next;
    else
        s->waiting = p->next;
    if (p->next) p->next->prev = p->prev;
    s->nwaiting--;
}

static void on_verify_record(const vd_record *rec, void *arg)
{
    pending *p = arg;
    server *s = p->srv;
    sv_metrics_record(s->metrics, rec);
    size_t len = 0;
    char *text = vd_record_pack(rec, VD_FMT_JSON, &len);
    if (text) {
        struct evbuffer *b = evbuffer_new();
        if (b) evbuffer_add(b, text, len);
        reply(s, p->req, 200, "application/json", b);
        if (b) evbuffer_free(b);
    } else {
        reply_error(s, p->req, 500, "internal", "rendering the record failed");
    }
    free(text);
    pending_unlink(p);
    free(p);
}

static void handle_verify(server *s, struct evhttp_request *req)
{
    char msg[512];
    if (!type_allowed(s, req, "/v1/verify", msg, sizeof msg))
        return reply_error(s, req, 415, "unsupported_media_type", "%s", msg);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    const char *b = n && n <= SV_VERIFY_BODY_MAX ? (const char *)evbuffer_pullup(in, -1) : "";
    char *email, err[512];
    size_t len;
    int code = sv_parse_verify(b, n, &email, &len, err, sizeof err);
    if (code)
        return reply_error(s, req, code,
                           code == 413   ? "too_large"
                           : code == 400 ? "bad_request"
                                         : "internal",
                           "%s", err);
    pending *p = calloc(1, sizeof *p);
    if (!p) {
        free(email);
        return reply_error(s, req, 500, "internal", "out of memory");
    }
    *p = (pending){.srv = s, .req = req, .next = s->waiting};
    if (s->waiting) s->waiting->prev = p;
    s->waiting = p;
    s->nwaiting++;
    if (vd_engine_submit(s->engine, email, len, on_verify_record, p) != 0) {
        pending_unlink(p);
        free(p);
        reply_error(s, req, 500, "internal", "out of memory");
    }
    free(email);
}

/* ---- POST /v1/jobs ---- */

static void handle_jobs_post(server *s, struct evhttp_request *req)
{
    char type[128], msg[512];
    if (!type_allowed(s, req, "/v1/jobs", msg, sizeof msg))
        return reply_error(s, req, 415, "unsupported_media_type", "%s", msg);
    media_type(req, type, sizeof type);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    const char *b = n ? (const char *)evbuffer_pullup(in, -1) : "";
    struct evkeyvalq q = {0};
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    const char *column = NULL;
    if (query && evhttp_parse_query_str(query, &q) == 0) column = evhttp_find_header(&q, "column");
    sv_list l = {0};
    char err[512];
    int code = sv_parse_list(type, column, b, n, s->o.max_job_addresses, &l, err, sizeof err);
    evhttp_clear_headers(&q);
    if (code)
        return reply_error(s, req, code,
                           code == 413   ? "too_large"
                           : code == 415 ? "unsupported_media_type"
                           : code == 400 ? "bad_request"
                                         : "internal",
                           "%s", err);
    sv_job *j = sv_jobs_create(s->jobs, &l, err, sizeof err);
    if (!j) {
        sv_list_free(&l);
        if (errno == ENOSPC)
            return reply_error(s, req, 429, "too_many_jobs",
                               "%d jobs are kept (--max-jobs): delete one (DELETE /v1/jobs/ID) "
                               "or wait until finished ones expire (--job-ttl)",
                               s->o.max_jobs);
        fprintf(stderr, "validora serve: creating a job: %s\n", err);
        return reply_error(s, req, 500, "internal", "the job could not be stored");
    }
    struct evbuffer *out = evbuffer_new();
    if (out) evbuffer_add_printf(out, "{\"id\":\"%s\"}\n", sv_job_id(j));
    char loc[64];
    snprintf(loc, sizeof loc, "/v1/jobs/%s", sv_job_id(j));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc);
    reply(s, req, 202, "application/json", out);
    if (out) evbuffer_free(out);
}

/* ---- GET/DELETE /v1/jobs/ID[/results] ---- */

static bool wants_msgpack(struct evhttp_request *req)
{
    const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "Accept");
    return a && (strcasestr(a, "application/msgpack") || strcasestr(a, "application/x-msgpack"));
}

static void handle_job(server *s, struct evhttp_request *req, enum evhttp_cmd_type m,
                       const char *rest)
{
    char id[64];
    const char *slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
    bool results = slash && !strcmp(slash, "/results");
    if (n >= sizeof id || (slash && !results))
        return reply_error(s, req, 404, "not_found", "no such path");
    memcpy(id, rest, n);
    id[n] = 0;
    sv_job *j = sv_jobs_find(s->jobs, id);
    if (!j) return reply_error(s, req, 404, "not_found", "no job '%.64s'", id);
    struct evbuffer *out = evbuffer_new();
    if (!out) return reply_error(s, req, 500, "internal", "out of memory");
    if (results && m == EVHTTP_REQ_GET) {
        bool mp = wants_msgpack(req);
        char err[256];
        if (sv_job_results(j, mp ? VD_FMT_MSGPACK : VD_FMT_JSON, out, err, sizeof err) != 0)
            reply_error(s, req, 500, "internal", "%s", err);
        else
            reply(s, req, 200, mp ? "application/msgpack" : "application/x-ndjson", out);
    } else if (!results && m == EVHTTP_REQ_GET) {
        sv_job_progress(j, out);
        reply(s, req, 200, "application/json", out);
    } else if (!results && m == EVHTTP_REQ_DELETE) {
        sv_jobs_delete(s->jobs, j);
        reply(s, req, 204, NULL, NULL);
    } else {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                          results ? "GET" : "GET, DELETE");
        reply_error(s, req, 405, "method_not_allowed", "not a method of this path");
    }
    evbuffer_free(out);
}

/* ---- /metrics, /healthz ---- */

static void gauges(server *s, sv_gauges *g)
{
    *g = (sv_gauges){
        .connections = s->nslots, .requests_waiting = s->nwaiting, .stopping = s->stopping};
    sv_jobs_gauges(s->jobs, g);
}

static void handle_metrics(server *s, struct evhttp_request *req)
{
    struct evbuffer *out = evbuffer_new();
    if (!out) return reply_error(s, req, 500, "internal", "out of memory");
    sv_gauges g;
    gauges(s, &g);
    sv_metrics_render(s->metrics, s->engine, &g, out);
    reply(s, req, 200, "text/plain; version=0.0.4; charset=utf-8", out);
    evbuffer_free(out);
}

/* ---- routing ---- */

static bool method_is(server *s, struct evhttp_request *req, enum evhttp_cmd_type want,
                      const char *allow)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (m == want || (want == EVHTTP_REQ_GET && m == EVHTTP_REQ_HEAD)) return true;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    reply_error(s, req, 405, "method_not_allowed", "this path takes %s", allow);
    return false;
}

/* Host and Origin: false with the refusal. */
static bool head_allowed(server *s, struct evhttp_request *req, int *code, const char **name,
                         char *msg, size_t len)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *host = evhttp_find_header(in, "Host");
    const char *origin = evhttp_find_header(in, "Origin");
    *code = 403;
    if (!host_ok(s, host)) {
        *name = "forbidden_host";
        snprintf(msg, len, "Host '%.60s' is not this server's name (--allow-host NAME)", host);
        return false;
    }
    if (origin && !in_list(&s->o.allow_origins, origin, strlen(origin))) {
        *name = "forbidden_origin";
        snprintf(msg, len, "a web page's request (Origin '%.60s') is refused (--allow-origin)",
                 origin);
        return false;
    }
    return true;
}

/* Every request, in this order (docs/serve.md, "Security"): a refusal decided on its head
 * (the token, the connection slots), Host, Origin, then /healthz, the token, the route; the
 * routes check the Content-Type. */
static void on_request(struct evhttp_request *req, void *arg)
{
    server *s = arg;
    conn *c = conn_of(s, req);
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    if (c) {
        c->busy = true; /* whole: the deadline stops until the reply */
        event_del(c->deadline);
    }
    if (c && c->refuse) {
        evhttp_add_header(out, "Connection", "close");
        if (c->refuse == 503) evhttp_add_header(out, "Retry-After", "1");
        return reply_error(s, req, c->refuse, c->refuse_name, "%s", c->refuse_msg);
    }
    int code;
    const char *name;
    char msg[160];
    if (!head_allowed(s, req, &code, &name, msg, sizeof msg))
        return reply_error(s, req, code, name, "%s", msg);
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (!path) path = "/";
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (!strcmp(path, "/healthz")) {
        if (!method_is(s, req, EVHTTP_REQ_GET, "GET")) return;
        return s->stopping ? reply_text(s, req, 503, "text/plain", "stopping\n")
                           : reply_text(s, req, 200, "text/plain", "ok\n");
    }
    if (!authorized(s, req))
        return reply_error(s, req, 401, "unauthorized",
                           "this path needs 'Authorization: Bearer TOKEN' (--token-file)");
    if (m == EVHTTP_REQ_POST && s->stopping)
        return reply_error(s, req, 503, "stopping", "the daemon is stopping: no new work");
    if (!strcmp(path, "/metrics")) {
        if (method_is(s, req, EVHTTP_REQ_GET, "GET")) handle_metrics(s, req);
    } else if (!strcmp(path, "/v1/verify")) {
        if (method_is(s, req, EVHTTP_REQ_POST, "POST")) handle_verify(s, req);
    } else if (!strcmp(path, "/v1/jobs")) {
        if (method_is(s, req, EVHTTP_REQ_POST, "POST")) handle_jobs_post(s, req);
    } else if (!strncmp(path, "/v1/jobs/", 9)) {
        handle_job(s, req, m, path + 9);
    } else {
        reply_error(s, req, 404, "not_found", "no such path (see docs/serve.md)");
    }
}

/* ---- the daemon's life ---- */

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    server *s = arg;
    struct timeval now;
    event_base_gettimeofday_cached(s->base, &now);
    bool late = timercmp(&now, &s->stop_at, >=);
    if (vd_engine_inflight(s->engine) == 0 || late) {
        if (late && vd_engine_inflight(s->engine))
            fprintf(stderr,
                    "validora serve: --stop-timeout: stopping with %zu addresses in flight "
                    "(jobs' are redone at the next start)\n",
                    vd_engine_inflight(s->engine));
        event_base_loopbreak(s->base);
    }
}

static void on_stop(void *arg, bool now)
{
    server *s = arg;
    if (now) {
        fprintf(stderr, "validora serve: stopping now\n");
        event_base_loopbreak(s->base);
        return;
    }
    s->stopping = true;
    sv_jobs_stop(s->jobs);
    fprintf(stderr,
            "validora serve: stopping: no new work; finishing %zu addresses in flight (again to "
            "stop now)\n",
            vd_engine_inflight(s->engine));
    struct timeval every = {0, DRAIN_POLL_MS * 1000}, now_tv,
                   grace = {(time_t)s->o.stop_timeout,
                            (suseconds_t)((s->o.stop_timeout - (double)(time_t)s->o.stop_timeout) *
                                          1e6)};
    event_base_gettimeofday_cached(s->base, &now_tv);
    timeradd(&now_tv, &grace, &s->stop_at);
    event_add(s->drain_ev, &every);
    on_drain(-1, 0, s);
}

static void on_reload(void *arg)
{
    vd_cli_reload("serve", ((server *)arg)->engine);
}

static bool loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return !strcmp(host, "localhost");
}

/* "ADDR:PORT" or "[V6]:PORT" into host and port. */
static int parse_listen(const char *l, char *host, size_t hlen, int *port)
{
    const char *colon;
    size_t n;
    if (l[0] == '[') {
        const char *rb = strchr(l, ']');
        if (!rb || rb[1] != ':') return -1;
        n = (size_t)(rb - l - 1);
        if (n >= hlen) return -1;
        memcpy(host, l + 1, n);
        colon = rb + 1;
    } else {
        if (!(colon = strrchr(l, ':')) || strchr(l, ':') != colon) return -1;
        n = (size_t)(colon - l);
        if (n >= hlen) return -1;
        memcpy(host, l, n);
    }
    host[n] = 0;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (!n || *end || end == colon + 1 || p < 1 || p > 65535) return -1;
    *port = (int)p;
    return 0;
}

static int start_http(server *s, char *err, size_t errlen)
{
    char host[256];
    int port;
    if (parse_listen(s->o.listen, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "--listen: not ADDR:PORT or [ADDR]:PORT: '%s'", s->o.listen);
        return -1;
    }
    if (!loopback(host) && !s->has_token)
        fprintf(stderr,
                "validora serve: warning: listening on %s, which other machines may "
                "reach, without --token-file: anyone who reaches it can verify through "
                "this sender's reputation\n",
                s->o.listen);
    snprintf(s->listen_host, sizeof s->listen_host, "%s", host);
    s->listen_port = port;
    if (s->o.reserved_connections >= s->o.max_connections) /* strangers keep one at least */
        s->o.reserved_connections = s->o.max_connections - 1;
    if (!(s->http = evhttp_new(s->base))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    evhttp_set_max_body_size(s->http, s->o.max_body);
    evhttp_set_max_headers_size(s->http, HEADERS_MAX);
    evhttp_set_timeout(s->http, (int)s->o.http_timeout);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_HEAD);
    evhttp_set_default_content_type(s->http, "application/json");
    evhttp_set_gencb(s->http, on_request, s);
    evhttp_set_bevcb(s->http, on_accept, s);
    the_server = s;
    if (!evhttp_bind_socket_with_handle(s->http, host, (ev_uint16_t)port)) {
        snprintf(err, errlen, "--listen %s: cannot listen there: %s", s->o.listen, strerror(errno));
        return -1;
    }
    probe_queue_offset(s->base, loopback(host) || strcmp(host, "0.0.0.0") ? host : "127.0.0.1",
                       port);
    if (queue_off < 0)
        fprintf(stderr, "validora serve: warning: this libevent hides a request before its "
                        "body: the token is checked after the body is read\n");
    fprintf(stderr, "validora serve: listening on http://%s/%s\n", s->o.listen,
            s->has_token ? " (token required)" : "");
    return 0;
}

static int start(server *s, vd_engine_config *cfg, char *err, size_t errlen)
{
    if (s->o.token_file && read_token(s, err, errlen) != 0) return -1;
    char sub[1024];
    char *state = vd_state_dir(cfg->state_dir, sub, sizeof sub);
    if (!state) {
        snprintf(err, errlen, "%s", sub);
        return -1;
    }
    char jobs_dir[4096];
    snprintf(jobs_dir, sizeof jobs_dir, "%s/serve/jobs", state);
    free(state);
    if (!(s->metrics = sv_metrics_new()) ||
        !(s->drain_ev = event_new(s->base, -1, EV_PERSIST, on_drain, s))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (!(s->engine = vd_engine_new(s->base, cfg, err, errlen))) return -1;
    sv_limits lim = {.max_jobs = s->o.max_jobs,
                     .max_job_addresses = s->o.max_job_addresses,
                     .job_ttl = s->o.job_ttl,
                     .concurrency = s->o.concurrency};
    if (!(s->jobs =
              sv_jobs_open(s->base, s->engine, jobs_dir, &lim, s->metrics, sub, sizeof sub))) {
        snprintf(err, errlen, "jobs: %.900s", sub);
        return -1;
    }
    return start_http(s, err, errlen);
}

int vd_cli_serve(int argc, char **argv)
{
    vd_engine_config cfg;
    vd_engine_config_init(&cfg);
    server s = {0};
    vd_options_defaults(vd_cli_serve_options, &s.o);
    vd_cli_table tables[] = {{vd_cli_serve_options, &s.o}, {vd_engine_options, &cfg}};
    int first = vd_cli_parse(&USAGE, argc, argv, tables, 2);
    if (first < 0) return vd_cli_parse_exit(first);
    if (first < argc)
        return vd_cli_usage_error("serve", "takes no operands: '%s' (addresses come by HTTP)",
                                  argv[first]);
    vd_cli_log log = {.cmd = "serve", .verbose = s.o.verbose};
    cfg.log = vd_cli_log_cb;
    cfg.log_arg = &log;
    if (!(s.base = event_base_new())) {
        fprintf(stderr, "validora serve: cannot create the event loop\n");
        return VD_EXIT_FATAL;
    }
    int rc = VD_EXIT_FATAL;
    char err[1024];
    vd_cli_signals *sig = NULL;
    if (start(&s, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "validora serve: %s\n", err);
    } else if (!(sig = vd_cli_signals_new(s.base, on_stop, on_reload, &s))) {
        fprintf(stderr, "validora serve: out of memory\n");
    } else {
        event_base_dispatch(s.base);
        rc = VD_EXIT_OK;
        fprintf(stderr, "validora serve: stopped\n");
    }
    vd_cli_signals_free(sig);
    if (s.jobs) sv_jobs_stop(s.jobs); /* nothing new starts while sessions say QUIT */
    if (s.http) evhttp_free(s.http);  /* replies still owed are dropped with their connections */
    while (s.waiting) {
        pending *p = s.waiting;
        s.waiting = p->next;
        free(p);
    }
    if (s.drain_ev) event_free(s.drain_ev);
    vd_cli_close_engine(s.base, s.engine); /* no record comes after this */
    sv_jobs_free(s.jobs);
    sv_metrics_free(s.metrics);
    event_base_free(s.base);
    return rc;
}

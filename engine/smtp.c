/* smtp.c — one SMTP client session as a bufferevent state machine.
 *
 * Owns: the socket (created here so the source address can be bound before connect), the
 * connect/banner/command timer, reading replies with hard bounds (VD_SMTP_MAX_LINE octets
 * per line, VD_SMTP_MAX_LINES lines per reply, a read watermark so the input buffer never
 * grows past a few KB), EHLO with HELO fallback, STARTTLS through an OpenSSL filter
 * bufferevent, MAIL/RCPT/RSET/QUIT, and the one function that puts a command on the wire
 * (send_cmd), which refuses CR, LF and NUL whatever its caller checked; the protocol's
 * facts about replies (vd_smtp_reply_ends_session, RFC 3463 matching, vd_smtp_reply_matches)
 * and the table of error names rules see; telling the trace (a transcript) each line written
 * (send_cmd) and read (on_read), the handshake, and the close (close_conn).
 * Does not own: choosing hosts or reusing sessions (pool.c), TLS contexts, SNI and
 * certificate checks (tls.c), defaults for user options (timeouts: the caller's options
 * table; vd_smtp_open refuses them missing), what replies mean for an address (rules), the
 * transcript format (transcript.c).
 *
 * Re-entrancy: every entry point (libevent callbacks and public calls that may call back
 * synchronously) holds s->depth; vd_smtp_free() inside a callback only marks the session
 * dead and closes the connection, and the outermost entry point frees the memory. */
#include "smtp.h"
#include "address.h"
#include "tls.h"
#include "destination.h"
#include <arpa/inet.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <fcntl.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>

/* Read at most this much ahead: one maximal line plus room for the next ones. */
#define READ_HIGH_WATER (4 * VD_SMTP_MAX_LINE)
#define QUIT_WAIT_MS    2000
#define MAX_CMD         1024

typedef enum state {
    ST_CONNECTING,
    ST_BANNER,
    ST_EHLO,
    ST_HELO,
    ST_STARTTLS,
    ST_HANDSHAKE,
    ST_EHLO_TLS,
    ST_READY,   /* idle, usable */
    ST_CMD,     /* MAIL/RCPT/RSET in flight */
    ST_REFUSED, /* connected, but the server refused us (banner, EHLO, 421): only QUIT */
    ST_BROKEN,  /* connection closed after an error */
    ST_QUIT,    /* QUIT sent (or being freed): waiting for reply, close or timer */
} state;

struct vd_smtp {
    struct event_base *base;
    struct bufferevent *bev;
    struct event *timer;
    state st;
    int depth;               /* entry points on the stack */
    bool dead;               /* vd_smtp_free called while depth > 0 */
    vd_smtp_err pending_err; /* socket()/bind() failed, or a forbidden destination: reported
                                from the timer (0: none) */

    char *helo;
    char *sni;
    int connect_timeout_ms;
    int command_timeout_ms;
    SSL_CTX *tls_ctx;
    bool require_tls;

    vd_smtp_cb cb;
    void *cbarg;

    /* the reply being read */
    int code;
    int nlines;
    char enhanced[16];
    char *text;
    size_t text_len, text_cap;
    char errbuf[256];

    /* EHLO reply kept while STARTTLS runs, for the ready callback when STARTTLS is refused */
    char *ehlo_text;

    char **exts; /* EHLO keyword lines after the first, as sent */
    int nexts;

    bool tls, tls_verified;
    int commands;
    size_t input_peak; /* largest input buffer seen (test hook below) */

    vd_smtp_trace trace; /* copy of opts->trace (functions NULL: none) */
    void *th;            /* its handle, until the connection closes; NULL = no trace */
};

/* Test hook, not part of the contract: the largest input buffer a session has held. */
size_t vd_smtp_input_peak_(const vd_smtp *s);
size_t vd_smtp_input_peak_(const vd_smtp *s)
{
    return s->input_peak;
}

/* ---- error names ------------------------------------------------------------------- */

_Static_assert(VD_SMTP_ERR_CONNECT == 1 && VD_SMTP_ERR_FORBIDDEN == VD_SMTP_ERR_COUNT,
               "vd_smtp_err_names lists the errors 1 .. VD_SMTP_ERR_COUNT in enum order");

/* Rules see these strings: renaming one breaks rules. Indexed by err - 1. */
const char *const vd_smtp_err_names[VD_SMTP_ERR_COUNT + 1] = {
    [VD_SMTP_ERR_CONNECT - 1] = "connect_failed",
    [VD_SMTP_ERR_TIMEOUT - 1] = "timeout",
    [VD_SMTP_ERR_CLOSED - 1] = "connection_closed",
    [VD_SMTP_ERR_PROTOCOL - 1] = "protocol_error",
    [VD_SMTP_ERR_TLS - 1] = "tls_error",
    [VD_SMTP_ERR_BUSY - 1] = "busy",
    [VD_SMTP_ERR_INVALID - 1] = "invalid_argument",
    [VD_SMTP_ERR_FORBIDDEN - 1] = VD_FORBIDDEN_DESTINATION,
    [VD_SMTP_ERR_COUNT] = NULL,
};

const char *vd_smtp_err_name(vd_smtp_err e)
{
    if (e == VD_SMTP_OK) return "ok";
    if ((int)e >= 1 && (int)e <= VD_SMTP_ERR_COUNT) return vd_smtp_err_names[(int)e - 1];
    return "unknown";
}

/* ---- what replies say -------------------------------------------------------------- */

bool vd_smtp_reply_ends_session(const vd_smtp_reply *r)
{
    if (!r) return false;
    switch (r->err) {
    case VD_SMTP_OK:
        return r->code == 421; /* RFC 5321 §3.8: the server is closing the channel */
    case VD_SMTP_ERR_INVALID:  /* refused before the wire: nothing changed */
    case VD_SMTP_ERR_BUSY:     /* likewise; an unusable session is vd_smtp_usable's to say */
        return false;
    case VD_SMTP_ERR_CONNECT:
    case VD_SMTP_ERR_TIMEOUT:
    case VD_SMTP_ERR_CLOSED:
    case VD_SMTP_ERR_PROTOCOL:
    case VD_SMTP_ERR_TLS:
    case VD_SMTP_ERR_FORBIDDEN: /* never connected */
        return true;
    }
    return true; /* not an error we know: do not reuse */
}

bool vd_smtp_enhanced_matches(const char *code, const char *prefix)
{
    if (!code || !prefix || !*prefix) return false;
    size_t n = strlen(prefix);
    if (prefix[n - 1] == '.') return false; /* "5." is no whole component */
    return strncmp(code, prefix, n) == 0 && (code[n] == '\0' || code[n] == '.');
}

static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

bool vd_smtp_reply_matches(int code, const char *enhanced, const char *text, const char *p)
{
    if (!p) return false;
    bool codeish = *p != '\0', dotted = false;
    for (const char *c = p; *c; c++) {
        if (*c == '.')
            dotted = true;
        else if (*c < '0' || *c > '9')
            codeish = false;
    }
    if (codeish && !dotted) {
        long long v = 0; /* by value, as the Lua bridge's atoi did, but without overflow */
        for (const char *c = p; *c; c++) {
            v = v * 10 + (*c - '0');
            if (v > 2147483647LL) return false;
        }
        return v == code;
    }
    if (codeish) return vd_smtp_enhanced_matches(enhanced, p);
    if (!text) return false;
    size_t tn = strlen(text), pn = strlen(p);
    for (size_t i = 0; i + pn <= tn; i++) {
        size_t k = 0;
        while (k < pn && ascii_lower(text[i + k]) == ascii_lower(p[k]))
            k++;
        if (k == pn) return true;
    }
    return false;
}

static void on_read(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

/* ---- lifetime ---------------------------------------------------------------------- */

static void clear_exts(vd_smtp *s)
{
    for (int i = 0; i < s->nexts; i++)
        free(s->exts[i]);
    free(s->exts);
    s->exts = NULL;
    s->nexts = 0;
}

/* Closes the connection; the first close ends the trace with how (and err for
 * VD_SMTP_END_ERROR): nothing is read or written after it. */
static void close_conn(vd_smtp *s, vd_smtp_end how, vd_smtp_err err)
{
    if (s->bev) {
        bufferevent_free(s->bev); /* safe inside its own callback: libevent holds a ref */
        s->bev = NULL;
    }
    if (s->timer) evtimer_del(s->timer);
    if (s->th) {
        void *h = s->th;
        s->th = NULL;
        s->trace.end(h, how, how == VD_SMTP_END_ERROR ? err : VD_SMTP_OK);
    }
}

/* Tells the trace up to max complete lines still in the input buffer, without consuming
 * them: lines the session refuses or drops unread (an unsolicited reply, data behind the 220
 * to STARTTLS, what follows a refusal or comes with the close) were still sent by the server.
 * Only the trace sees them; the session's handling is unchanged. */
static void trace_unread(vd_smtp *s, int max)
{
    if (!s->th || !s->bev) return;
    struct evbuffer *in = bufferevent_get_input(s->bev);
    struct evbuffer_ptr at;
    if (evbuffer_ptr_set(in, &at, 0, EVBUFFER_PTR_SET) != 0) return;
    for (int n = 0; n < max; n++) {
        size_t eol_len = 0;
        struct evbuffer_ptr p = evbuffer_search_eol(in, &at, &eol_len, EVBUFFER_EOL_CRLF);
        if (p.pos < 0 || (size_t)(p.pos - at.pos) > VD_SMTP_MAX_LINE) return;
        char line[VD_SMTP_MAX_LINE + 1];
        size_t len = (size_t)(p.pos - at.pos);
        if (evbuffer_copyout_from(in, &at, line, len) != (ev_ssize_t)len) return;
        s->trace.line(s->th, false, line, len);
        if ((size_t)p.pos + eol_len >= evbuffer_get_length(in) ||
            evbuffer_ptr_set(in, &at, (size_t)p.pos + eol_len, EVBUFFER_PTR_SET) != 0)
            return;
    }
}

static void destroy(vd_smtp *s)
{
    close_conn(s, VD_SMTP_END_CLIENT, VD_SMTP_OK);
    if (s->timer) event_free(s->timer);
    clear_exts(s);
    free(s->helo);
    free(s->sni);
    free(s->text);
    free(s->ehlo_text);
    free(s);
}

static void enter(vd_smtp *s)
{
    s->depth++;
}

/* Returns false when s was freed: the caller must not touch it. */
static bool leave(vd_smtp *s)
{
    if (--s->depth == 0 && s->dead) {
        destroy(s);
        return false;
    }
    return true;
}

static void arm_timer(vd_smtp *s, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(s->timer, &tv);
}

/* ---- replies ----------------------------------------------------------------------- */

static void reply_reset(vd_smtp *s)
{
    s->code = 0;
    s->nlines = 0;
    s->enhanced[0] = '\0';
    s->text_len = 0;
    if (s->text) s->text[0] = '\0';
    s->errbuf[0] = '\0';
}

static bool text_append(vd_smtp *s, const char *p, size_t n)
{
    if (s->text_len + n + 2 > s->text_cap) {
        size_t cap = s->text_cap ? s->text_cap : 256;
        while (cap < s->text_len + n + 2)
            cap *= 2;
        char *t = realloc(s->text, cap);
        if (!t) return false;
        s->text = t;
        s->text_cap = cap;
    }
    memcpy(s->text + s->text_len, p, n);
    s->text_len += n;
    s->text[s->text_len] = '\0';
    return true;
}

/* Length of an RFC 3463 code "c.sss.ddd" at p whose class is cls, followed by space or end;
 * 0 when there is none. */
static size_t enhanced_len(const char *p, char cls)
{
    if (p[0] != cls || p[1] != '.') return 0;
    size_t i = 2, n = 0;
    while (p[i] >= '0' && p[i] <= '9' && n < 3)
        i++, n++;
    if (n == 0 || p[i] != '.') return 0;
    i++, n = 0;
    while (p[i] >= '0' && p[i] <= '9' && n < 3)
        i++, n++;
    if (n == 0 || (p[i] != ' ' && p[i] != '\0')) return 0;
    return i;
}

/* The reply read so far, as callbacks see it. */
static vd_smtp_reply current_reply(const vd_smtp *s, vd_smtp_err err, const char *errmsg)
{
    vd_smtp_reply r = {.err = err, .code = s->code, .text = s->text ? s->text : ""};
    memcpy(r.enhanced, s->enhanced, sizeof r.enhanced);
    r.errmsg = errmsg;
    return r;
}

static void deliver(vd_smtp *s, vd_smtp_err err, const char *errmsg)
{
    vd_smtp_cb cb = s->cb;
    void *arg = s->cbarg;
    s->cb = NULL;
    if (!cb) return;
    vd_smtp_reply r = current_reply(s, err, errmsg);
    if (err != VD_SMTP_OK && errmsg && errmsg != s->errbuf) {
        snprintf(s->errbuf, sizeof s->errbuf, "%s", errmsg);
        r.errmsg = s->errbuf;
    }
    cb(s, &r, arg);
}

/* A fatal error: the connection is closed and the pending callback (if any) gets err.
 * A partial reply is not reported (code 0). */
static void fail(vd_smtp *s, vd_smtp_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(vd_smtp *s, vd_smtp_err err, const char *fmt, ...)
{
    char msg[sizeof s->errbuf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    close_conn(s, VD_SMTP_END_ERROR, err);
    bool quitting = s->st == ST_QUIT;
    s->st = ST_BROKEN;
    if (quitting) {
        s->dead = true; /* vd_smtp_quit promised to free it */
        return;
    }
    reply_reset(s);
    snprintf(s->errbuf, sizeof s->errbuf, "%s", msg);
    deliver(s, err, s->errbuf);
}

/* The single place where commands are written. Refuses CR, LF and NUL whatever the caller
 * checked, so that no argument can smuggle a second command. */
static bool send_cmd(vd_smtp *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool send_cmd(vd_smtp *s, const char *fmt, ...)
{
    char line[MAX_CMD + 3];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, MAX_CMD + 1, fmt, ap);
    va_end(ap);
    if (n < 0 || n > MAX_CMD || strpbrk(line, "\r\n") || strlen(line) != (size_t)n) return false;
    memcpy(line + n, "\r\n", 2);
    if (!s->bev || bufferevent_write(s->bev, line, (size_t)n + 2) != 0) return false;
    if (s->th) s->trace.line(s->th, true, line, (size_t)n);
    s->commands++;
    reply_reset(s);
    arm_timer(s, s->command_timeout_ms);
    return true;
}

static void parse_exts(vd_smtp *s)
{
    clear_exts(s);
    if (s->nlines < 2) return;
    s->exts = calloc((size_t)s->nlines, sizeof *s->exts);
    if (!s->exts) return;
    /* text is "greeting\nKEYWORD params\n..." */
    const char *p = strchr(s->text, '\n');
    while (p) {
        p++;
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char *x = strndup(p, n);
        if (x) s->exts[s->nexts++] = x;
        p = e;
    }
}

static void became_ready(vd_smtp *s)
{
    s->st = ST_READY;
    evtimer_del(s->timer);
    deliver(s, VD_SMTP_OK, NULL);
}

static void refused(vd_smtp *s)
{
    /* The server answered, but not with what lets us go on: it stays connected for QUIT. */
    s->st = ST_REFUSED;
    evtimer_del(s->timer);
    deliver(s, VD_SMTP_OK, NULL);
}

static void start_tls(vd_smtp *s)
{
    /* SNI, the name to verify and the policy (opportunistic: recorded, not enforced) are
     * tls.c's; the result is read after the handshake. */
    char why[200];
    SSL *ssl = vd_tls_ssl_new(s->tls_ctx, s->sni, why, sizeof why);
    if (!ssl) {
        fail(s, VD_SMTP_ERR_TLS, "TLS: %s", why);
        return;
    }
    struct bufferevent *f = bufferevent_openssl_filter_new(
        s->base, s->bev, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (!f) {
        SSL_free(ssl);
        fail(s, VD_SMTP_ERR_TLS, "cannot create TLS filter");
        return;
    }
    s->bev = f; /* owns the socket bufferevent and the SSL now */
    bufferevent_setcb(f, on_read, NULL, on_event, s);
    bufferevent_setwatermark(f, EV_READ, 0, READ_HIGH_WATER);
    bufferevent_enable(f, EV_READ | EV_WRITE);
    s->st = ST_HANDSHAKE;
    arm_timer(s, s->command_timeout_ms);
}

static void after_ehlo(vd_smtp *s)
{
    bool offered = vd_smtp_has_ext(s, "STARTTLS");
    if (!s->tls && offered && s->tls_ctx) {
        free(s->ehlo_text);
        s->ehlo_text = strdup(s->text ? s->text : "");
        if (!send_cmd(s, "STARTTLS")) {
            fail(s, VD_SMTP_ERR_CLOSED, "cannot send STARTTLS");
            return;
        }
        s->st = ST_STARTTLS;
        return;
    }
    if (!s->tls && s->require_tls) {
        s->st = ST_REFUSED;
        evtimer_del(s->timer);
        deliver(s, VD_SMTP_ERR_TLS,
                offered ? "TLS required but no TLS context" : "STARTTLS not offered");
        return;
    }
    became_ready(s);
}

static void reply_complete(vd_smtp *s)
{
    switch (s->st) {
    case ST_BANNER:
        if (s->code != 220) {
            refused(s);
            return;
        }
        if (!send_cmd(s, "EHLO %s", s->helo))
            fail(s, VD_SMTP_ERR_CLOSED, "cannot send EHLO");
        else
            s->st = ST_EHLO;
        return;
    case ST_EHLO:
        if (s->code == 250) {
            parse_exts(s);
            after_ehlo(s);
        } else if (s->code == 500 || s->code == 502 || s->code == 504 || s->code == 550) {
            if (!send_cmd(s, "HELO %s", s->helo))
                fail(s, VD_SMTP_ERR_CLOSED, "cannot send HELO");
            else
                s->st = ST_HELO;
        } else {
            refused(s);
        }
        return;
    case ST_HELO:
        if (s->code == 250)
            became_ready(s);
        else
            refused(s);
        return;
    case ST_STARTTLS:
        if (s->code == 220) {
            /* Anything already buffered was sent before TLS: it must not be read as if it
             * came through the secure channel (CVE-2011-0411 style injection). */
            if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0) {
                trace_unread(s, 1); /* the injected line */
                fail(s, VD_SMTP_ERR_PROTOCOL, "data after STARTTLS reply");
                return;
            }
            start_tls(s);
            return;
        }
        if (s->require_tls) {
            s->st = ST_REFUSED;
            evtimer_del(s->timer);
            deliver(s, VD_SMTP_ERR_TLS, "STARTTLS refused");
            return;
        }
        /* Refused STARTTLS leaves the session as it was after EHLO: go on in clear. */
        reply_reset(s);
        s->code = 250;
        text_append(s, s->ehlo_text ? s->ehlo_text : "", s->ehlo_text ? strlen(s->ehlo_text) : 0);
        became_ready(s);
        return;
    case ST_EHLO_TLS:
        if (s->code == 250) {
            parse_exts(s);
            became_ready(s);
        } else {
            refused(s);
        }
        return;
    case ST_CMD:
        evtimer_del(s->timer);
        {
            /* e.g. 421: the server is closing the channel; only QUIT may follow */
            vd_smtp_reply r = current_reply(s, VD_SMTP_OK, NULL);
            s->st = vd_smtp_reply_ends_session(&r) ? ST_REFUSED : ST_READY;
        }
        deliver(s, VD_SMTP_OK, NULL);
        return;
    case ST_QUIT:
        close_conn(s, VD_SMTP_END_CLIENT, VD_SMTP_OK);
        s->dead = true;
        return;
    default:
        /* A reply nobody asked for (e.g. "421 timeout" while idle): the session is over. */
        fail(s, VD_SMTP_ERR_PROTOCOL, "unexpected reply %d", s->code);
        return;
    }
}

/* Handles one reply line (without EOL). */
static void handle_line(vd_smtp *s, const char *line, size_t len)
{
    if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
        line[2] < '0' || line[2] > '9' || (len > 3 && line[3] != ' ' && line[3] != '-')) {
        fail(s, VD_SMTP_ERR_PROTOCOL, "malformed reply line");
        return;
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (s->nlines > 0 && code != s->code) {
        fail(s, VD_SMTP_ERR_PROTOCOL, "reply code changed within a reply (%d, %d)", s->code, code);
        return;
    }
    if (++s->nlines > VD_SMTP_MAX_LINES) {
        fail(s, VD_SMTP_ERR_PROTOCOL, "reply longer than %d lines", VD_SMTP_MAX_LINES);
        return;
    }
    s->code = code;
    const char *t = len > 4 ? line + 4 : "";
    /* The enhanced code comes from the first line; the same code is stripped from any line
     * that repeats it (Postfix prefixes every line), the rest is kept as written. */
    size_t el = enhanced_len(t, line[0]);
    if (s->nlines == 1 && el > 0 && el < sizeof s->enhanced) {
        memcpy(s->enhanced, t, el);
        s->enhanced[el] = '\0';
    }
    if (el > 0 && el == strlen(s->enhanced) && memcmp(t, s->enhanced, el) == 0) {
        t += el;
        if (*t == ' ') t++;
    }
    if (s->nlines > 1 && !text_append(s, "\n", 1)) {
        fail(s, VD_SMTP_ERR_PROTOCOL, "out of memory");
        return;
    }
    if (!text_append(s, t, strlen(t))) {
        fail(s, VD_SMTP_ERR_PROTOCOL, "out of memory");
        return;
    }
    if (len == 3 || line[3] == ' ') reply_complete(s);
}

static bool expecting_reply(const vd_smtp *s)
{
    switch (s->st) {
    case ST_BANNER:
    case ST_EHLO:
    case ST_HELO:
    case ST_STARTTLS:
    case ST_EHLO_TLS:
    case ST_CMD:
    case ST_QUIT:
        return true;
    default:
        return false;
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    vd_smtp *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    enter(s);
    size_t have = evbuffer_get_length(in);
    if (have > s->input_peak) s->input_peak = have;
    while (!s->dead && s->bev == bev && evbuffer_get_length(in) > 0) {
        if (!expecting_reply(s)) {
            if (s->st == ST_REFUSED) {
                trace_unread(s, INT_MAX);
                evbuffer_drain(in, evbuffer_get_length(in)); /* only QUIT remains */
                break;
            }
            trace_unread(s, 1); /* e.g. Postfix's "421 ... too many errors" */
            fail(s, VD_SMTP_ERR_PROTOCOL, "unsolicited data from server");
            break;
        }
        size_t eol_len = 0;
        struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
        if (p.pos < 0) {
            if (evbuffer_get_length(in) > VD_SMTP_MAX_LINE)
                fail(s, VD_SMTP_ERR_PROTOCOL, "reply line longer than %d octets", VD_SMTP_MAX_LINE);
            break;
        }
        if ((size_t)p.pos > VD_SMTP_MAX_LINE) {
            fail(s, VD_SMTP_ERR_PROTOCOL, "reply line longer than %d octets", VD_SMTP_MAX_LINE);
            break;
        }
        char line[VD_SMTP_MAX_LINE + 1];
        size_t len = (size_t)p.pos;
        evbuffer_remove(in, line, len);
        evbuffer_drain(in, eol_len);
        line[len] = '\0';
        if (s->th) s->trace.line(s->th, false, line, len); /* as read, before it is judged */
        if (memchr(line, '\0', len)) {
            fail(s, VD_SMTP_ERR_PROTOCOL, "NUL in reply");
            break;
        }
        handle_line(s, line, len);
    }
    leave(s);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    vd_smtp *s = arg;
    (void)bev;
    enter(s);
    if (what & BEV_EVENT_CONNECTED) {
        if (s->st == ST_CONNECTING) {
            s->st = ST_BANNER;
            reply_reset(s);
            arm_timer(s, s->command_timeout_ms);
        } else if (s->st == ST_HANDSHAKE) {
            SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
            s->tls = true;
            s->tls_verified = vd_tls_verified(ssl);
            if (s->th)
                s->trace.tls(s->th, SSL_get_version(ssl), SSL_get_cipher_name(ssl),
                             s->tls_verified);
            if (!send_cmd(s, "EHLO %s", s->helo))
                fail(s, VD_SMTP_ERR_CLOSED, "cannot send EHLO");
            else
                s->st = ST_EHLO_TLS;
        }
    } else if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
        int e = EVUTIL_SOCKET_ERROR();
        trace_unread(s, INT_MAX); /* complete lines not read before the close */
        if (s->st == ST_CONNECTING) {
            fail(s, VD_SMTP_ERR_CONNECT, "connect: %s",
                 e ? evutil_socket_error_to_string(e) : "failed");
        } else if (s->st == ST_HANDSHAKE) {
            unsigned long ssl_err = bufferevent_get_openssl_error(s->bev);
            char buf[160] = "handshake failed";
            if (ssl_err) ERR_error_string_n(ssl_err, buf, sizeof buf);
            fail(s, VD_SMTP_ERR_TLS, "TLS: %s", buf);
        } else if (s->st == ST_QUIT) {
            close_conn(s, VD_SMTP_END_CLIENT, VD_SMTP_OK); /* after our QUIT */
            s->dead = true;
        } else if (s->st == ST_READY || s->st == ST_REFUSED) {
            /* Nobody waits: just note that the session is gone. */
            close_conn(s, VD_SMTP_END_SERVER, VD_SMTP_OK);
            s->st = ST_BROKEN;
        } else {
            fail(s, VD_SMTP_ERR_CLOSED, "%s",
                 (what & BEV_EVENT_EOF) ? "connection closed by server"
                                        : evutil_socket_error_to_string(e));
        }
    }
    leave(s);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    vd_smtp *s = arg;
    (void)fd;
    (void)what;
    enter(s);
    switch (s->st) {
    case ST_CONNECTING:
        if (s->pending_err)
            fail(s, s->pending_err, "%s", s->errbuf);
        else
            fail(s, VD_SMTP_ERR_CONNECT, "connect timeout");
        break;
    case ST_QUIT:
        close_conn(s, VD_SMTP_END_CLIENT, VD_SMTP_OK); /* no reply to QUIT in time */
        s->dead = true;
        break;
    case ST_HANDSHAKE:
        fail(s, VD_SMTP_ERR_TIMEOUT, "timeout in TLS handshake");
        break;
    case ST_BANNER:
        fail(s, VD_SMTP_ERR_TIMEOUT, "timeout waiting for banner");
        break;
    default:
        fail(s, VD_SMTP_ERR_TIMEOUT, "timeout waiting for reply");
        break;
    }
    leave(s);
}

/* ---- public ------------------------------------------------------------------------ */

vd_smtp *vd_smtp_open(struct event_base *base, const struct sockaddr *addr, socklen_t addrlen,
                      const vd_smtp_opts *opts, vd_smtp_cb cb, void *arg)
{
    if (!base || !addr || !opts || !opts->helo || !*opts->helo || !cb ||
        (addr->sa_family != AF_INET && addr->sa_family != AF_INET6) ||
        strpbrk(opts->helo, "\r\n ") || strlen(opts->helo) > 255 || opts->connect_timeout_ms <= 0 ||
        opts->command_timeout_ms <= 0)
        return NULL;
    vd_smtp *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->base = base;
    s->helo = strdup(opts->helo);
    s->sni = opts->tls_sni && *opts->tls_sni ? strdup(opts->tls_sni) : NULL;
    s->connect_timeout_ms = opts->connect_timeout_ms;
    s->command_timeout_ms = opts->command_timeout_ms;
    s->tls_ctx = opts->tls_ctx;
    s->require_tls = opts->require_tls;
    s->cb = cb;
    s->cbarg = arg;
    s->st = ST_CONNECTING;
    s->timer = evtimer_new(base, on_timer, s);
    if (!s->helo || (opts->tls_sni && *opts->tls_sni && !s->sni) || !s->timer ||
        !text_append(s, "", 0)) {
        destroy(s);
        return NULL;
    }

    /* The last check before a packet: the address actually to be connected to. */
    if (!vd_destination_ok(addr)) {
        char ip[INET6_ADDRSTRLEN];
        snprintf(s->errbuf, sizeof s->errbuf,
                 "%s is a loopback, private or other special-purpose address: refused "
                 "(--allow-private-destinations)",
                 vd_destination_text(addr, ip, sizeof ip));
        s->pending_err = VD_SMTP_ERR_FORBIDDEN;
        arm_timer(s, 0);
        return s;
    }

    /* Before the socket: its times count from here, and a transcript takes its descriptor
     * before the session does (when they run out, transcripts go off first). */
    if (opts->trace && opts->trace->start && opts->trace->line && opts->trace->tls &&
        opts->trace->end) {
        s->trace = *opts->trace;
        s->th = s->trace.start(s->trace.arg, opts->trace_mx, addr, addrlen);
    }

    evutil_socket_t fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || (opts->source && bind(fd, opts->source, opts->source_len) != 0)) {
        /* Reported through cb like any connect failure, from the loop. */
        snprintf(s->errbuf, sizeof s->errbuf, "%s: %s", fd < 0 ? "socket" : "bind",
                 strerror(errno));
        if (fd >= 0) close(fd);
        s->pending_err = VD_SMTP_ERR_CONNECT;
        arm_timer(s, 0);
        return s;
    }
    s->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!s->bev) {
        close(fd);
        close_conn(s, VD_SMTP_END_ERROR, VD_SMTP_ERR_CONNECT);
        destroy(s);
        return NULL;
    }
    bufferevent_setcb(s->bev, on_read, NULL, on_event, s);
    bufferevent_setwatermark(s->bev, EV_READ, 0, READ_HIGH_WATER);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    arm_timer(s, s->connect_timeout_ms);
    /* An immediate failure (e.g. ECONNREFUSED) is reported later through on_event. */
    if (bufferevent_socket_connect(s->bev, addr, (int)addrlen) != 0) {
        snprintf(s->errbuf, sizeof s->errbuf, "connect: %s", strerror(errno));
        close_conn(s, VD_SMTP_END_ERROR, VD_SMTP_ERR_CONNECT);
        s->pending_err = VD_SMTP_ERR_CONNECT;
        arm_timer(s, 0);
    }
    return s;
}

/* Starts a command or reports why it cannot; cb may run before this returns. */
static void command(vd_smtp *s, vd_smtp_cb cb, void *arg, const char *path, bool allow_empty,
                    const char *verb)
{
    if (!s || !cb) return;
    enter(s);
    if (!vd_smtp_usable(s)) {
        vd_smtp_reply r = {.err = VD_SMTP_ERR_BUSY,
                           .text = "",
                           .errmsg =
                               s->st == ST_CMD ? "a command is in flight" : "session not usable"};
        cb(s, &r, arg);
        leave(s);
        return;
    }
    if (path && !vd_address_wire_safe(path, allow_empty)) {
        vd_smtp_reply r = {.err = VD_SMTP_ERR_INVALID,
                           .text = "",
                           .errmsg = "argument is not a wire-safe address"};
        cb(s, &r, arg);
        leave(s);
        return;
    }
    bool ok;
    if (strcmp(verb, "MAIL") == 0)
        ok = send_cmd(s, "MAIL FROM:<%s>%s", path,
                      vd_smtp_has_ext(s, "SMTPUTF8") ? " SMTPUTF8" : "");
    else if (strcmp(verb, "RCPT") == 0)
        ok = send_cmd(s, "RCPT TO:<%s>", path);
    else
        ok = send_cmd(s, "RSET");
    if (!ok) {
        vd_smtp_reply r = {
            .err = VD_SMTP_ERR_INVALID, .text = "", .errmsg = "command refused by the writer"};
        cb(s, &r, arg);
        leave(s);
        return;
    }
    s->st = ST_CMD;
    s->cb = cb;
    s->cbarg = arg;
    leave(s);
}

void vd_smtp_mail(vd_smtp *s, const char *from, vd_smtp_cb cb, void *arg)
{
    command(s, cb, arg, from ? from : "", true, "MAIL");
}

void vd_smtp_rcpt(vd_smtp *s, const char *to, vd_smtp_cb cb, void *arg)
{
    command(s, cb, arg, to ? to : "", false, "RCPT");
}

void vd_smtp_rset(vd_smtp *s, vd_smtp_cb cb, void *arg)
{
    command(s, cb, arg, NULL, false, "RSET");
}

void vd_smtp_quit(vd_smtp *s)
{
    if (!s || s->st == ST_QUIT) return;
    s->cb = NULL;
    bool talk = s->bev && (s->st == ST_READY || s->st == ST_REFUSED || s->st == ST_CMD ||
                           s->st == ST_BANNER || s->st == ST_EHLO || s->st == ST_HELO ||
                           s->st == ST_EHLO_TLS);
    /* In ST_CMD a reply is still due: QUIT goes after it and the first reply ends it. */
    s->st = ST_QUIT;
    if (talk && send_cmd(s, "QUIT")) {
        arm_timer(s, QUIT_WAIT_MS);
        return;
    }
    close_conn(s, VD_SMTP_END_CLIENT, VD_SMTP_OK);
    arm_timer(s, 0); /* freed from the loop, never under the caller's feet */
}

void vd_smtp_free(vd_smtp *s)
{
    if (!s) return;
    s->cb = NULL;
    if (s->depth > 0) {
        close_conn(s, VD_SMTP_END_CLIENT, VD_SMTP_OK);
        s->st = ST_BROKEN;
        s->dead = true;
        return;
    }
    destroy(s);
}

bool vd_smtp_usable(const vd_smtp *s)
{
    return s && !s->dead && s->bev && s->st == ST_READY;
}

bool vd_smtp_tls(const vd_smtp *s)
{
    return s && s->tls;
}

bool vd_smtp_tls_verified(const vd_smtp *s)
{
    return s && s->tls_verified;
}

bool vd_smtp_has_ext(const vd_smtp *s, const char *ext)
{
    if (!s || !ext) return false;
    size_t n = strlen(ext);
    for (int i = 0; i < s->nexts; i++) {
        const char *x = s->exts[i];
        if (strncasecmp(x, ext, n) == 0 && (x[n] == '\0' || x[n] == ' ' || x[n] == '='))
            return true;
    }
    return false;
}

int vd_smtp_commands(const vd_smtp *s)
{
    return s ? s->commands : 0;
}

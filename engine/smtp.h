/* smtp.h — one SMTP client session as a bufferevent state machine, and what the SMTP
 * protocol itself says about replies.
 *
 * Owns: connecting (with a timeout, optional source address), banner, EHLO with HELO
 * fallback, STARTTLS via bufferevent_openssl_filter_new (opportunistic, verification
 * result recorded), MAIL/RCPT/RSET/QUIT, reply parsing (multi-line, RFC 3463 enhanced
 * codes) with bounded line length and line count, per-step timeouts; the protocol's facts
 * about a reply: which replies end a session, RFC 3463 code matching, the reply matching
 * rules use (reply:matches); the error names rules see, and their list; telling the
 * session's trace (vd_smtp_trace: a transcript, when it has one) every line sent and
 * received, the TLS result and how the connection ended.
 * Does not own: which host to connect to, pooling (pool.h), TLS contexts, SNI and
 * certificate checks (tls.h), defaults for user options (the caller's options table),
 * what a reply means for an address (rules), the transcript format and files
 * (transcript.h, which implements vd_smtp_trace).
 * Refuses any command argument that is not wire-safe (vd_address_wire_safe). */
#ifndef VALIDORA_SMTP_H
#define VALIDORA_SMTP_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include "tls.h" /* SSL_CTX: tls_ctx comes from vd_tls_client_ctx_new */

struct event_base;
typedef struct vd_smtp vd_smtp;

#define VD_SMTP_MAX_LINE  2048 /* octets per reply line (RFC 5321: 512) */
#define VD_SMTP_MAX_LINES 128  /* lines per multi-line reply */

typedef enum vd_smtp_err {
    VD_SMTP_OK = 0,
    VD_SMTP_ERR_CONNECT,   /* refused, unreachable, or connect timeout */
    VD_SMTP_ERR_TIMEOUT,   /* no (complete) reply in time */
    VD_SMTP_ERR_CLOSED,    /* the server closed the connection */
    VD_SMTP_ERR_PROTOCOL,  /* garbage, over-long line, too many lines */
    VD_SMTP_ERR_TLS,       /* STARTTLS handshake failed */
    VD_SMTP_ERR_BUSY,      /* a command is already in flight / session not usable */
    VD_SMTP_ERR_INVALID,   /* argument not wire-safe: nothing was sent */
    VD_SMTP_ERR_FORBIDDEN, /* a special-range address (destination.h): nothing was sent */
} vd_smtp_err;

/* The errors, VD_SMTP_OK not counted: VD_SMTP_ERR_CONNECT (1) .. VD_SMTP_ERR_FORBIDDEN
 * (VD_SMTP_ERR_COUNT), in enum order. */
#define VD_SMTP_ERR_COUNT 8

/* The name of e as rules see it: "connect_failed", "timeout", "connection_closed",
 * "protocol_error", "tls_error", "busy", "invalid_argument" ("ok" for VD_SMTP_OK, "unknown"
 * outside the enum). Part of the rule interface: stable, never renamed. */
const char *vd_smtp_err_name(vd_smtp_err e);
/* Every error name in enum order, for publishing the full list to rules:
 * vd_smtp_err_names[e - 1] is vd_smtp_err_name(e) for e = 1 .. VD_SMTP_ERR_COUNT, and
 * vd_smtp_err_names[VD_SMTP_ERR_COUNT] is NULL. "ok" is not in it: it is no error. */
extern const char *const vd_smtp_err_names[VD_SMTP_ERR_COUNT + 1];

typedef struct vd_smtp_reply {
    vd_smtp_err err;    /* VD_SMTP_OK when a reply was read */
    int code;           /* 3-digit reply code, 0 when none */
    char enhanced[16];  /* "5.1.1", "" when absent */
    char *text;         /* all lines' text joined by "\n", without codes; never NULL */
    const char *errmsg; /* detail when err != OK */
} vd_smtp_reply;

/* How a session's connection ended, as its trace is told. */
typedef enum vd_smtp_end {
    VD_SMTP_END_CLIENT, /* this client closed it: after QUIT, or vd_smtp_quit/free */
    VD_SMTP_END_SERVER, /* the server closed it while no command was waiting */
    VD_SMTP_END_ERROR,  /* a failure closed it (the vd_smtp_err passed along) */
} vd_smtp_end;

/* A trace: what a session tells an observer such as a transcript (transcript.h gives one),
 * in the order it happens. vd_smtp_open copies the struct; start runs there, before the
 * connect, and returns the session's handle (NULL: nothing more for this session); the
 * others get that handle. Called from inside the session: they must not call into it. */
typedef struct vd_smtp_trace {
    void *(*start)(void *arg, const char *mx, const struct sockaddr *addr, socklen_t addrlen);
    /* a line written (sent = true, without CRLF) or read (as read, without its line end) */
    void (*line)(void *h, bool sent, const char *line, size_t len);
    void (*tls)(void *h, const char *protocol, const char *cipher, bool verified);
    /* the connection closed: the last call for h (err VD_SMTP_OK unless how is ERROR) */
    void (*end)(void *h, vd_smtp_end how, vd_smtp_err err);
    void *arg;
} vd_smtp_trace;

typedef struct vd_smtp_opts {
    const char *helo;              /* EHLO/HELO name; required */
    const struct sockaddr *source; /* bind before connect; NULL = any */
    socklen_t source_len;
    int connect_timeout_ms; /* required, > 0 */
    int command_timeout_ms; /* banner, TLS handshake and each command; required, > 0 */
    SSL_CTX *tls_ctx;       /* from vd_tls_client_ctx_new; NULL = never STARTTLS. Its policy
                               applies: require_verified=false for opportunistic STARTTLS
                               (with true a certificate that does not verify is tls_error) */
    bool require_tls;       /* fail when STARTTLS is not offered or fails */
    const char *tls_sni;    /* server name for SNI/verification, e.g. the MX host; NULL:
                               STARTTLS still, but tls_verified is never true */

    const vd_smtp_trace *trace; /* told of this session's lines (copied); NULL = none */
    const char *trace_mx;       /* MX host name given to trace->start; NULL = none */
} vd_smtp_opts;

/* Called once per operation. The reply is valid only during the callback. */
typedef void (*vd_smtp_cb)(vd_smtp *s, const vd_smtp_reply *r, void *arg);

/* Connects and runs banner, EHLO (HELO fallback), STARTTLS when offered and tls_ctx set,
 * EHLO again. cb gets the last reply: code 250 and err OK when ready for MAIL; otherwise
 * the failing reply (e.g. a 554 banner) or error. Returns NULL only on immediate failure
 * (bad arguments: no or unsafe helo, a timeout that is zero or negative, an address that is
 * not IPv4/IPv6; out of memory); then cb is not called. The options hold no defaults: user
 * options come filled in from the caller's options table.
 * With opts->trace, its start runs here (before the connect, also when the connect then
 * fails) and its end when the connection closes, with how (vd_smtp_end); nothing is read or
 * written after that. */
vd_smtp *vd_smtp_open(struct event_base *base, const struct sockaddr *addr, socklen_t addrlen,
                      const vd_smtp_opts *opts, vd_smtp_cb cb, void *arg);

/* One command each; cb is called with its reply. A second command while one is in flight
 * gets VD_SMTP_ERR_BUSY through its cb. from/to must be wire-safe; from may be "". */
void vd_smtp_mail(vd_smtp *s, const char *from, vd_smtp_cb cb, void *arg);
void vd_smtp_rcpt(vd_smtp *s, const char *to, vd_smtp_cb cb, void *arg);
void vd_smtp_rset(vd_smtp *s, vd_smtp_cb cb, void *arg);
/* Sends QUIT (best effort, no callback) and frees the session later on the loop. */
void vd_smtp_quit(vd_smtp *s);
/* Closes at once; a pending callback is not called. */
void vd_smtp_free(vd_smtp *s);

bool vd_smtp_usable(const vd_smtp *s);       /* connected, ready, no command in flight */
bool vd_smtp_tls(const vd_smtp *s);          /* STARTTLS done */
bool vd_smtp_tls_verified(const vd_smtp *s); /* certificate verified against the CA store */
bool vd_smtp_has_ext(const vd_smtp *s, const char *ext); /* EHLO keyword, e.g. "SMTPUTF8" */
int vd_smtp_commands(const vd_smtp *s);                  /* commands sent so far */

/* ---- what the protocol says about a reply (no session needed) ---------------------- */

/* RFC 3463: does enhanced code `code` ("5.1.1") start with `prefix` by whole components
 * ("5", "5.1", "5.1.1" match; "5.1.10" is not matched by "5.1.1")? Components compare as
 * text ("5.01" is not "5.1"). NULL or "" (either), or a prefix ending in ".": false. */
bool vd_smtp_enhanced_matches(const char *code, const char *prefix);
/* The matching rules see as reply:matches(p): p of digits only ("550") compares the reply code;
 * digits and dots ("5.1", "5.1.1") the enhanced code by vd_smtp_enhanced_matches; anything
 * else is a case-insensitive substring of the reply text. code/enhanced/text as in vd_smtp_reply.
 * Digits compare by value ("0550" is 550; "5" is code 5, never a class: use code // 100).
 * "" is a substring of every text: true (NULL text: false). p NULL: false. ASCII case
 * folding, whatever the locale. */
bool vd_smtp_reply_matches(int code, const char *enhanced, const char *text, const char *p);
/* Does this reply (or transport error) end the session, so that it must not be used again?
 * - err VD_SMTP_OK: only code 421 ("closing transmission channel", RFC 5321 §3.8), which a
 *   server may send in reply to any command.
 * - connect_failed, timeout, connection_closed, protocol_error, tls_error: yes; the
 *   connection is closed (or, for tls_error with require_tls, only QUIT is left).
 * - invalid_argument and busy: no. Both are refusals by this client before anything was
 *   written, so the session is as it was: invalid_argument leaves it usable; busy means a
 *   command is in flight (which goes on) or the session was already unusable, which
 *   vd_smtp_usable() says, not this reply.
 * For replies to MAIL/RCPT/RSET. The open callback's own rule is stricter: anything but
 * err OK with code 250 there (e.g. a 554 banner) leaves the session only QUIT. NULL: false. */
bool vd_smtp_reply_ends_session(const vd_smtp_reply *r);

#endif

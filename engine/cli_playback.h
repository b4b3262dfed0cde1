/* cli_playback.h — what `validora rules test` plays: rule test files, SMTP transcripts, and the
 * in-process servers that play a test's DNS answers and SMTP dialogue on loopback.
 *
 * Owns: loading a test file (Lua text in an empty environment, data only, every key checked),
 * parsing a transcript (`validora verify --transcript`, docs/transcripts.md) into a script,
 * the DNS responder (UDP on 127.0.0.1), the SMTP playback server (TCP on 127.0.0.x, one
 * address per mail host of the test), the HTTP playback server (evhttp on 127.0.0.1, the
 * test's `http` answers in order), and the problems playback saw (a command the script did
 * not expect, a script not played to its end). docs/rules-test.md is the user's description.
 * Does not own: the engine (the runner makes one through the public API), comparing records
 * (cli_rules_test.c). CLI layer: public headers and cli.h only; libevent and Lua directly.
 *
 * Everything read here may come from a hostile server's capture: lengths, counts and sizes
 * are bounded, and a file that breaks a bound is refused with its line, never truncated. */
#ifndef VALIDORA_CLI_PLAYBACK_H
#define VALIDORA_CLI_PLAYBACK_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

/* Bounds of what is read. */
#define VD_PB_MAX_FILE    (8u << 20) /* bytes of a test file or a transcript */
#define VD_PB_MAX_LINE    65536      /* bytes of one transcript line (after unescaping) */
#define VD_PB_MAX_STEPS   100000     /* commands in one script */
#define VD_PB_MAX_LINES   100000     /* reply lines in one script */
#define VD_PB_MAX_NAMES   1000       /* DNS names in one test */
#define VD_PB_MAX_HOSTS   200        /* names with an A answer: 127.0.0.2 .. 127.0.0.201 */
#define VD_PB_MAX_SESSION 1000       /* sessions in one test */
#define VD_PB_MAX_CHECKS  1000       /* addresses in one test */
#define VD_PB_MAX_HTTP    1000       /* HTTP requests in one test */
#define VD_PB_MAX_BODY    (1u << 20) /* bytes of one HTTP body, either way */

/* ---- messages ---- */

/* A growing list of one-line messages (problems of a test). */
typedef struct vd_pb_msgs {
    char **v;
    size_t n, cap;
} vd_pb_msgs;
void vd_pb_msg(vd_pb_msgs *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vd_pb_msgs_clear(vd_pb_msgs *m);
/* Writes s (len bytes) quoted as "...", non-printable bytes as \xHH, cut after max bytes with
 * "..." appended; buf always ends in NUL. */
void vd_pb_quote(char *buf, size_t size, const char *s, size_t len, size_t max);

/* ---- scripts: what the server side says ---- */

typedef enum vd_pb_then {
    VD_PB_GO_ON = 0, /* wait for the next command */
    VD_PB_CLOSE,     /* close the connection once the lines are out */
    VD_PB_HANG,      /* stop answering; the client's timeout ends it */
} vd_pb_then;

/* Lines sent as one reply (each followed by CRLF), then what the server does. */
typedef struct vd_pb_reply {
    char **lines;
    size_t *lens;
    size_t nlines;
    vd_pb_then then;
} vd_pb_reply;

/* A client command the script expects, and the server's answer to it. */
typedef struct vd_pb_step {
    char verb[16]; /* upper case: EHLO, MAIL, RCPT, ... */
    char *cmd;     /* the line as captured, for messages */
    int lineno;    /* in the transcript */
    vd_pb_reply reply;
} vd_pb_step;

/* A transcript, as played: the banner, then one step per command in order. */
typedef struct vd_pb_script {
    vd_pb_reply banner;
    vd_pb_step *steps;
    size_t nsteps;
    char end[64]; /* the REASON of "# end:", "" when the transcript has none */
} vd_pb_script;

/* Parses a transcript (len bytes, need not end in NUL): "# validora transcript 1", entries
 * "SECONDS < LINE" / "SECONDS > LINE" with \xHH and \\ escapes, "# end: SECONDS REASON".
 * STARTTLS is taken out (the EHLO keyword, the STARTTLS exchange and, when it was accepted, the
 * EHLO before it) since playback has no certificate. The end becomes the last reply's `then`:
 * "closed by server" and connection_closed close, timeout hangs. Returns 0, or -1 with
 * "line N: what" in err. */
int vd_pb_transcript_parse(const char *text, size_t len, vd_pb_script *s, char *err, size_t errlen);
void vd_pb_script_clear(vd_pb_script *s);
/* Reply text of an inline session ("550-a\n550 b", or "close", "timeout") into r. */
int vd_pb_reply_parse(const char *text, size_t len, vd_pb_reply *r, char *err, size_t errlen);
void vd_pb_reply_clear(vd_pb_reply *r);

/* ---- a test file ---- */

typedef struct vd_pb_mx {
    uint16_t pref;
    char *host; /* "." for a null MX (RFC 7505) */
} vd_pb_mx;

typedef enum vd_pb_rcode {
    VD_PB_ANSWER = 0, /* answer from the records (NODATA when the type has none) */
    VD_PB_SERVFAIL,
    VD_PB_REFUSED,
    VD_PB_NXDOMAIN,
    VD_PB_DROP, /* no answer: the resolver times out */
} vd_pb_rcode;

typedef struct vd_pb_name {
    char *name; /* lower case, no trailing dot */
    vd_pb_rcode rcode;
    vd_pb_mx *mx;
    size_t nmx;
    bool a;      /* served as this name's loopback address */
    uint32_t ip; /* 127.0.0.x in host order, when a */
    char **txt;
    size_t ntxt;
    char **ptr;
    size_t nptr;
    char *cname;
} vd_pb_name;

/* An SMTP connection's server side: a transcript, or inline replies by verb. */
typedef struct vd_pb_verb {
    char verb[16];
    vd_pb_reply *replies; /* in order; a verb given one string answers it every time */
    size_t n;
    bool every_time;
    size_t used;
} vd_pb_verb;

typedef struct vd_pb_session {
    char *what; /* "transcripts/x.txt" or "inline", for messages */
    char *host; /* only connections to this host take it; NULL = any */
    bool inline_;
    vd_pb_script script; /* transcript */
    vd_pb_reply banner;  /* inline */
    vd_pb_verb *verbs;
    size_t nverbs;
    /* playing */
    bool opened;
    bool broken; /* a problem was noted: no "not played to the end" on top */
    size_t next_step;
} vd_pb_session;

typedef enum vd_pb_vtype { VD_PB_STR, VD_PB_INT, VD_PB_NUM, VD_PB_BOOL, VD_PB_ABSENT } vd_pb_vtype;

typedef struct vd_pb_expect {
    char *key; /* a record key; smtp_code/smtp_enhanced/smtp_text are the smtp map's */
    vd_pb_vtype type;
    char *s;
    size_t slen;
    int64_t i;
    double d;
    bool b;
} vd_pb_expect;

/* One address and what its record must say. */
typedef struct vd_pb_check {
    char *address;
    vd_pb_expect *expect;
    size_t nexpect;
    long http_requests; /* expect.http_requests: requests made while it ran; -1 = not asked */
} vd_pb_check;

typedef struct vd_pb_header {
    char *name, *value;
} vd_pb_header;

/* One HTTP request the test expects (http = { ... }, served in order) and its answer. */
typedef struct vd_pb_http {
    char *method;                /* upper case; NULL = any */
    char *path;                  /* the request's path (and ?query, when it has one); NULL = any */
    char *body_matches;          /* a Lua pattern the request body must match; NULL = any */
    vd_pb_header *headers_match; /* request headers (by name, any case) and Lua patterns */
    size_t nheaders_match;
    int status;
    vd_pb_header *headers;
    size_t nheaders;
    char *body;
    size_t body_len;
} vd_pb_http;

typedef struct vd_pb_option {
    char *name; /* an engine option, '_' written '-' */
    char *value;
} vd_pb_option;

typedef struct vd_pb_test {
    char *path;
    char *name;
    double timeout; /* seconds for the whole test */
    vd_pb_name *names;
    size_t nnames;
    vd_pb_session *sessions;
    size_t nsessions;
    vd_pb_check *checks;
    size_t nchecks;
    vd_pb_option *options;
    size_t noptions;
    vd_pb_option *config; /* options rules see; "$HTTP" stands for the HTTP playback server */
    size_t nconfig;
    vd_pb_http *http;
    size_t nhttp;
} vd_pb_test;

/* Loads the test file at path (transcripts relative to its directory). Returns 0, or -1 with
 * the reason in err ("file.lua:3: ...", "dns[\"x\"].mx: ..."). */
int vd_pb_test_load(const char *path, vd_pb_test *t, char *err, size_t errlen);
void vd_pb_test_clear(vd_pb_test *t);

/* ---- the servers ---- */

typedef struct vd_pb_world vd_pb_world;

/* Starts the DNS responder on 127.0.0.1 and an SMTP listener on each mail host's loopback
 * address (one port for all) on base. Problems of the playback go to msgs. NULL with err. */
vd_pb_world *vd_pb_world_new(struct event_base *base, vd_pb_test *t, vd_pb_msgs *msgs, char *err,
                             size_t errlen);
int vd_pb_world_dns_port(const vd_pb_world *w);
int vd_pb_world_smtp_port(const vd_pb_world *w);
/* The HTTP playback server (plain HTTP on 127.0.0.1), and the requests it got so far. */
int vd_pb_world_http_port(const vd_pb_world *w);
size_t vd_pb_world_http_requests(const vd_pb_world *w);
/* Connections still open. */
size_t vd_pb_world_connections(const vd_pb_world *w);
/* Closes every connection and stops serving (DNS and SMTP); notes sessions never opened and
 * scripts not played to their end. */
void vd_pb_world_finish(vd_pb_world *w);
void vd_pb_world_free(vd_pb_world *w);

#endif
